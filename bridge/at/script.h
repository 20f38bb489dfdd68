/* AT scripts: a sequence of commands as static const data, run on the chat.
 *
 * A script is a table of steps (as Zephyr's MODEM_CHAT_SCRIPT_DEFINE).
 * Each step sends one command, fixed (cmd) or written by a builder (for
 * commands with parameters; a builder returning false skips the step),
 * with its info prefix, after-OK prefix, timeout and flags. Its answer
 * goes to the step's done callback, which says what comes next: the next
 * step, this one again (iterating: one init command after another), the
 * step named by the step's jump label, the end of the script, a failure,
 * or a hold (the owner resumes the run later, after a delay of its own).
 *
 * Jumps name labels, never relative positions: inserting a step moves no
 * jump. at_script_check() finds labels that do not exist; a run refuses
 * such a script at start, and a unit test checks every table of the bridge.
 *
 * What is an answer. TIMEOUT and OUT OF STEP (the chat resynchronises)
 * and CANCELLED are no answers: the step's done callback does not see
 * them; the run stops at that step and the owner hears of it through
 * ended() (it may resume the step). Everything else is an answer: the
 * step succeeded when the script's ok() says so (by default: final result
 * OK). A step without done goes on when it succeeded or is OPTIONAL, and
 * fails the run otherwise.
 *
 * Every answered step is logged as "<service>: <script>: <step>: <outcome>"
 * (modem: bring-up: SMS storage: ok) at info level, or debug for quiet
 * scripts (the ones run every minute). A failed outcome is what the
 * module said: the CME/CMS text, the final result, or for an OK that the
 * script's ok() refused, the last line (the result after OK: remote:
 * connect: connect: +CMQTTCONNECT: 0,30).
 *
 * A step may write data after the '>' prompt (its builder sets
 * at_script_cmd.data: CMGS, AT+CMQTTTOPIC) and wait for a result line
 * after OK (after_ok_prefix: "+CMQTTPUB:"); both are the chat's (at_cmd_opts).
 *
 * QUEUE_ALL scripts (a poll round) hand every step to the chat at once:
 * their answers do not steer them. done callbacks see each answer (their
 * verdict is ignored) and the run ends with the last step's.
 *
 * The engine writes through the host's send function: it never calls the
 * chat itself (the owner may refuse commands while the modem is not
 * ready). */
#ifndef M2M_AT_SCRIPT_H
#define M2M_AT_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at/chat.h"
#include "core/log.h"

/* The longest command line a builder may write. */
#define AT_SCRIPT_CMD_MAX 1024

enum at_step_flags {
    /* A failed answer is only logged: the script goes on. */
    AT_STEP_OPTIONAL = 1,
    /* OK without a line starting with info_prefix is out of step
     * (at_cmd_opts.expect_info): nothing is concluded from it. */
    AT_STEP_EXPECT_INFO = 2,
};

enum at_script_verdict {
    AT_SCRIPT_NEXT,    /* the next step (the script ends after the last) */
    AT_SCRIPT_AGAIN,   /* this step again now, its builder asked anew */
    AT_SCRIPT_JUMP,    /* the step labelled with this step's jump */
    AT_SCRIPT_FINISH,  /* the script ends, successfully */
    AT_SCRIPT_FAIL,    /* the run stops at this step: ended(), not ok */
    AT_SCRIPT_HOLD,    /* the run stops at this step quietly: the owner
                          resumes or restarts it later (a retry timer) */
};

/* What a builder writes: the command line (without CR) into buf, and the
 * bytes to write after the '>' prompt, if any (borrowed until at_chat_send
 * copied them, i.e. until the builder's caller returns). */
struct at_script_cmd {
    char *buf;
    size_t size;
    const uint8_t *data;
    size_t data_len;
};

struct at_script_step {
    const char *label;           /* a jump target, or NULL */
    const char *name;            /* for the log */
    const char *cmd;             /* a fixed command, or NULL for build */
    /* Writes the command; false skips the step. ctx is the run's. */
    bool (*build)(void *ctx, struct at_script_cmd *out);
    const char *info_prefix;     /* at_cmd_opts.info_prefix */
    const char *after_ok_prefix; /* at_cmd_opts.after_ok_prefix */
    /* 0: the host's default_timeout_ms (a configured command timeout). */
    int timeout_ms;
    unsigned flags;              /* enum at_step_flags */
    const char *jump;            /* the label AT_SCRIPT_JUMP goes to, or NULL */
    /* The answer (never TIMEOUT, OUT OF STEP or CANCELLED). NULL: go on
     * when the step succeeded or is OPTIONAL, fail otherwise. */
    enum at_script_verdict (*done)(void *ctx, const struct at_response *rsp);
};

struct at_script {
    const char *service;         /* log prefix: "modem" */
    const char *name;            /* "bring-up" */
    const struct at_script_step *steps;
    size_t n_steps;
    /* Whether an answer is a success (CMQTT: OK and then a zero result
     * code). NULL: final result OK. */
    bool (*ok)(const struct at_response *rsp);
    bool quiet;                  /* the per-step lines at debug level, not info */
    bool queue_all;              /* every step queued at once (see above) */
};

#define AT_SCRIPT_STEPS(steps) (steps), (sizeof(steps) / sizeof((steps)[0]))

/* How a run ended (ended()). */
struct at_script_end {
    bool ok;
    /* The last answer, or the TIMEOUT/OUT OF STEP/CANCELLED that stopped
     * the run; NULL when no command was answered (every step skipped, or
     * a send refused). Borrowed: valid during ended() only. */
    const struct at_response *rsp;
    /* The negative errno of a refused send (the host's), else 0. */
    int error;
    /* The step the run stopped at; NULL when it finished. */
    const struct at_script_step *step;
};

struct at_script_host {
    /* at_chat_send or a wrapper of it (modem_send). Required. */
    int (*send)(void *send_ctx, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
                void *cb_ctx);
    void *send_ctx;
    int default_timeout_ms;      /* for steps with timeout_ms 0 */
    /* The run finished, failed or was stopped by a non-answer. Not called
     * for AT_SCRIPT_HOLD, nor after at_script_cancel(). May start, resume
     * or cancel the run. May be NULL. */
    void (*ended)(void *ctx, const struct at_script_end *end);
    void *ctx;                   /* for build, done and ended */
};

/* 0, or -EINVAL (logged, naming the script and the step) when a step has
 * no name, neither or both of cmd and build, a negative timeout, a jump to
 * a label that no step has, or a label two steps have; or when a queue_all
 * script has jumps. Pure but for the log. */
int at_script_check(const struct at_script *script);

/* NULL when host->send is missing or out of memory. host is copied. */
struct at_script_run *at_script_run_new(const struct at_script_host *host);
/* The run must have no command in the chat: free it after the chat's
 * at_chat_cancel_all() or at_chat_free(), or once it ended. */
void at_script_run_free(struct at_script_run *run);

/* Starts script at the step labelled label (NULL: the first step),
 * abandoning a run in progress (at_script_cancel). -EINVAL for a script
 * that fails at_script_check(), -ENOENT for an unknown label. Otherwise 0,
 * also when the first send was refused: ended() reports that. script is
 * borrowed (static const data). */
int at_script_start(struct at_script_run *run, const struct at_script *script,
                    const char *label);

/* The step the run stopped at (HOLD, FAIL, a non-answer, a refused send)
 * again. -EALREADY when a command of the run is still awaited, -ENOENT
 * when the run never started or finished. at_script_retries() counts
 * these until the run reaches another step. */
int at_script_resume(struct at_script_run *run);

/* Stops the run: no callback sees the answer of its command in flight (it
 * is dropped when it comes). ended() is not called. */
void at_script_cancel(struct at_script_run *run);

/* A command of the run is awaited. */
bool at_script_running(const struct at_script_run *run);

/* at_script_resume() calls since the run reached its current step. */
unsigned at_script_retries(const struct at_script_run *run);

#endif
