/* AT chat: one command in flight, a bounded queue, a timeout per command,
 * final-result matching, and URC dispatch by prefix at any moment.
 *
 * The chat owns a lexer. It writes through a transport (function pointers),
 * so unit tests plug in a scripted fake and a fake clock.
 *
 * Line classification while a command is in flight, in this order:
 *   1. the echo of the command itself (echo is on after every boot): dropped;
 *   2. a final result (OK, ERROR, +CME ERROR, +CMS ERROR, NO CARRIER, BUSY,
 *      NO ANSWER, NO DIALTONE): completes the command, unless the command
 *      waits for a result line after OK (opts.after_ok_prefix);
 *   3. a line starting with the command's opts.info_prefix: an info line;
 *   4. a line matching a registered URC prefix: dispatched as a URC;
 *   5. anything else: an info line of the command (CGSN answers bare digits,
 *      CMGR's PDU line has no prefix).
 * With no command in flight every line goes to the URC table (unmatched
 * ones are logged at debug level and dropped).
 *
 * Before all of these: while a URC entry collects its extra_lines, the next
 * lines are that URC's, whatever they look like and whether or not a command
 * is in flight (the PDU of +CMT may arrive between a command's echo and its
 * OK). A lost (overflowed) line abandons the URC.
 *
 * With opts.data, a line equal to the written data (trailing Ctrl-Z ignored)
 * is the module echoing it (echo on) and is dropped too.
 *
 * Timeouts: a command's clock starts when it is written (handed to the
 * transport, which may still hold the bytes: a module that does not read
 * lets the command time out as one that does not answer). A command that
 * times out completes with AT_FINAL_TIMEOUT and the chat resynchronises
 * (below): the module may still answer it, and that late answer must not
 * be taken for the next command's.
 *
 * Staying in step. An answer is a command's only when it provably is.
 * at_chat_resync() (the owner calls it after opening the port; the chat
 * calls it itself on any doubt) holds the queue and repeats, up to
 * opts.sync_attempts times:
 *   1. ESC (leaves a data prompt a killed process left open), then discard
 *      what arrives until the line is quiet for AT_CHAT_QUIET_MS (at most
 *      AT_CHAT_DRAIN_MAX_MS);
 *   2. "ATE1", and discard its answer the same way;
 *   3. a marker line: "AT" and 16 harmless basic commands, E1 or V1, chosen
 *      by a fresh nonce. Echo is on, so the module echoes the marker before
 *      it runs it: the first final result after that exact echo is the
 *      marker's, and from there on every answer is in step;
 *   4. "ATE0" (echo off again: data written after a prompt must not come
 *      back as lines).
 * When a step is not answered within AT_CHAT_SYNC_STEP_MS the attempt
 * starts again. tr.synced() reports the outcome; after a failure the queue
 * stays held until the owner calls at_chat_resync() or
 * at_chat_cancel_all(). With discard (the port was just opened) everything
 * before the marker's echo is dropped unread: a stale RING or +CMTI of a
 * killed process is no event. Otherwise URCs are still dispatched during a
 * resync and only other lines are dropped.
 * Doubts that start a resync: a timeout; a final result with no command in
 * flight; a command with opts.expect_info answered OK without its info
 * line (it completes with AT_FINAL_OUT_OF_STEP: its real answer may be
 * anywhere).
 *
 * Write failures: the command completes with AT_FINAL_CANCELLED and
 * rsp.error set to the transport's negative errno, from the next
 * at_chat_tick() (scheduled at once), never from inside at_chat_send().
 * The following commands are then tried in turn; the owner is expected to
 * reopen the port (and call at_chat_cancel_all()).
 *
 * Sleep (at_chat_set_sleep; AT+CSCLK on the module). With AT_SLEEP_RX the
 * module sleeps after AT_CHAT_WAKE_IDLE_MS without input and loses the
 * first byte that wakes it: before a command, when nothing was written for
 * that long, the chat writes a lone "AT" and waits up to
 * AT_CHAT_WAKE_WAIT_MS for its answer, then writes the command whether or
 * not one came. A module that got the whole AT answers it at once; one
 * that lost its 'A' saw no command and never does. The wake is no
 * command: no timeout, no resync. An answer may still come late (within
 * AT_CHAT_WAKE_LATE_MS of the AT), after the command went. The module
 * answers in order, so only the first final result from then on can be
 * the wake's, and it is an OK; it is told from the command's by what the
 * command can take:
 *   - an OK the command cannot have earned yet (before its prompt, or
 *     before the info line it expects) is the wake's;
 *   - an OK where the command's whole answer may be a lone OK (ATD,
 *     AT+CHUP, AT+CMGD: no data, no result after OK, no line of its answer
 *     seen yet) is held: a final that follows within AT_CHAT_QUIET_MS is
 *     the command's (the OK held was the wake's: a command that failed is
 *     reported so), else the OK was the command's own. Only such a command
 *     after an unanswered wake waits those 200 ms;
 *   - any other final is the command's.
 * After that first final, or with nothing in flight, a final result is
 * out of step as ever (resync).
 * With AT_SLEEP_DTR the module sleeps while DTR is off: the chat turns it
 * on (tr.set_dtr) before it writes, waits AT_CHAT_WAKE_WAIT_MS before a
 * command, and turns it off once nothing was in flight for
 * AT_CHAT_WAKE_IDLE_MS. URCs come whether or not the module sleeps.
 *
 * Re-entrancy: done callbacks and URC handlers may call at_chat_send(),
 * at_chat_cancel_all() and (URC handlers) at_chat_read_block(). A command
 * sent from a done callback starts after the callback returns. Neither may
 * call at_chat_feed(), at_chat_tick() or at_chat_free(). */
#ifndef M2M_AT_CHAT_H
#define M2M_AT_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum at_final {
    AT_FINAL_OK = 0,
    AT_FINAL_ERROR,
    AT_FINAL_CME,        /* +CME ERROR: <n|text> */
    AT_FINAL_CMS,        /* +CMS ERROR: <n|text> */
    AT_FINAL_NO_CARRIER,
    AT_FINAL_BUSY,
    AT_FINAL_NO_ANSWER,
    AT_FINAL_NO_DIALTONE,
    AT_FINAL_TIMEOUT,    /* no final result within opts.timeout_ms */
    AT_FINAL_CANCELLED,  /* at_chat_cancel_all(): port closed, shutdown */
    AT_FINAL_OUT_OF_STEP, /* the answer did not fit the command (opts.expect_info) */
};

/* "OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER", "BUSY",
 * "NO ANSWER", "NO DIALTONE", "TIMEOUT", "CANCELLED", "OUT OF STEP"; "?"
 * for others. */
const char *at_final_name(enum at_final f);

/* Lines a URC entry may ask for after its own (+CMT, +CDS need one). */
#define AT_URC_MAX_EXTRA 4u
/* URC tables per chat. */
#define AT_CHAT_MAX_TABLES 16u
/* Largest opts.data (CMQTT payloads are at most 10240 bytes, certificates
 * for AT+CCERTDOWN a few KiB). */
#define AT_CHAT_MAX_DATA 65536u
/* Resynchronisation (see above). */
#define AT_CHAT_QUIET_MS 200
#define AT_CHAT_DRAIN_MAX_MS 2000
#define AT_CHAT_SYNC_STEP_MS 1000
#define AT_CHAT_SYNC_ATTEMPTS 10
/* Sleep (see above). The A7670 sleeps after 5 s of silence on its UART
 * (AT+CSCLK=2). Its manual gives no wake-up time; SIMCom's older modules
 * take up to ~50 ms after DTR or the first byte: 100 ms leaves room. */
#define AT_CHAT_WAKE_IDLE_MS 5000
#define AT_CHAT_WAKE_WAIT_MS 100
#define AT_CHAT_WAKE_LATE_MS 1000

enum at_chat_sleep {
    AT_SLEEP_OFF = 0,   /* the module never sleeps (AT+CSCLK=0) */
    AT_SLEEP_RX,        /* it sleeps when its UART is idle (AT+CSCLK=2) */
    AT_SLEEP_DTR,       /* it sleeps while DTR is off (AT+CSCLK=1) */
};

struct at_response {
    enum at_final final;
    int code;              /* CME/CMS number; -1 when absent or verbose text */
    const char *text;      /* CME/CMS verbose text, or NULL. Borrowed. */
    const char *const *lines; /* info lines, NUL-terminated. Borrowed.
                                 lines[n_lines] is NULL. */
    size_t n_lines;
    /* Info lines were dropped: more than max_lines/max_info_bytes, or a line
     * longer than max_line. The final result is still the module's. */
    bool truncated;
    /* AT_FINAL_CANCELLED after a failed write: the transport's negative
     * errno. 0 otherwise. */
    int error;
};

/* The response and its strings are valid only during the callback. The
 * callback may submit further commands; it must not free the chat. */
typedef void (*at_done_cb)(void *ctx, const struct at_response *rsp);

struct at_cmd_opts {
    int timeout_ms;              /* 0: the chat's default */
    const char *info_prefix;     /* e.g. "+CSQ:"; NULL: none */
    /* Bytes written after the '>' prompt (CMGS: hex PDU then 0x1A; CMQTT:
     * exactly the announced count). NULL: the command expects no prompt.
     * Copied at submit time. */
    const uint8_t *data;
    size_t data_len;
    /* Results that follow OK (CMQTT: "OK" then "+CMQTTSTART: 0"). When set,
     * OK does not complete the command: the first line with this prefix
     * does, and is the last info line. ERROR still completes it. */
    const char *after_ok_prefix;
    /* The answer must hold a line starting with info_prefix (AT+CPIN?,
     * AT+CSQ): OK without one is AT_FINAL_OUT_OF_STEP and a resync. */
    bool expect_info;
    /* Called (with the done callback's ctx) right before the command line
     * is handed to the transport: from here on it may take effect (a
     * refused write means it did not, but the owner cannot tell a crash
     * right after this from one after the write). A crash-safe owner
     * records that durably here. May be NULL. Must not send or cancel. */
    void (*written)(void *ctx);
    /* Asked (with the done callback's ctx) when the command's turn comes,
     * before anything of it is written: false drops it, and it completes
     * AT_FINAL_CANCELLED with rsp.error -ECANCELED (from the next tick, as
     * a failed write), nothing written. For a command that is right only
     * while what it was queued for still holds (AT+CHUP for one call, not
     * the next). May be NULL. Must not send or cancel. */
    bool (*still_wanted)(void *ctx);
};

struct at_transport {
    /* Takes all of buf or none of it, without waiting. 0: the bytes are
     * handed over, in order behind earlier ones, and reach the module
     * unless the port is lost first (the owner then reopens it and calls
     * at_chat_cancel_all()). Written, for the chat, means this. A negative
     * errno: refused, nothing of buf written (a full buffer, too long), or
     * the port was lost while writing. */
    int (*write)(void *ctx, const uint8_t *buf, size_t len);
    int64_t (*now_ms)(void *ctx);
    /* The earliest deadline changed: the owner arranges for at_chat_tick()
     * to run at deadline_ms (monotonic), or not at all for -1. */
    void (*schedule)(void *ctx, int64_t deadline_ms);
    void *ctx;
    /* A resync ended: in step again (ok), or every attempt failed (the
     * module does not answer: the owner reopens the port). May be NULL.
     * May send commands; must not free the chat. */
    void (*synced)(void *ctx, bool ok);
    /* AT_SLEEP_DTR: sets the DTR line (on: the module may not sleep).
     * 0 or a negative errno. May be NULL (no DTR: AT_SLEEP_DTR refused). */
    int (*set_dtr)(void *ctx, bool on);
};

/* A URC handler. lines[0] is the URC line; lines[1..] the extra lines the
 * entry asked for (+CMT and +CDS carry their PDU on the next line). */
typedef void (*at_urc_fn)(void *ctx, const char *const *lines, size_t n_lines);

struct at_urc {
    const char *prefix;       /* matched at line start, e.g. "+CMTI:" or "RING" */
    unsigned extra_lines;     /* lines that belong to this URC after it */
    at_urc_fn fn;
};

struct at_chat_opts {
    int default_timeout_ms;   /* commands without their own timeout */
    size_t max_queue;         /* commands waiting behind the one in flight */
    size_t max_line;          /* lexer line bound */
    size_t max_block;         /* lexer block bound */
    size_t max_lines;         /* info lines kept per command; 0: 256 */
    size_t max_info_bytes;    /* their total size; 0: 65536 */
    unsigned sync_attempts;   /* 0: AT_CHAT_SYNC_ATTEMPTS */
    /* Seeds the markers' nonces: differ between processes (pid, clock), so
     * a killed process's marker echo is never taken for ours. */
    uint32_t sync_seed;
};

/* NULL on invalid options (default_timeout_ms <= 0, max_line < 16, a
 * missing transport function) or out of memory. tr is copied. */
struct at_chat *at_chat_new(const struct at_chat_opts *opts, const struct at_transport *tr);
/* Frees queued and in-flight commands without calling their callbacks
 * (call at_chat_cancel_all() first if they must run). */
void at_chat_free(struct at_chat *chat);

/* Registers a static table (borrowed: must outlive the chat). Several tables
 * may be added (one per service); first match wins, in registration order. */
int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx);
/* (0, -EINVAL for an empty/NULL prefix, a NULL fn or extra_lines >
 * AT_URC_MAX_EXTRA, -ENOSPC beyond AT_CHAT_MAX_TABLES tables.) */

/* Queues a command (without the trailing CR, which the chat adds).
 * Returns 0, -EINVAL when cmd holds CR, LF, Ctrl-Z or ESC (it could end or
 * add a command) or is empty, -ENOBUFS when the queue is full. On error
 * nothing is queued and cb is not called. Also -EMSGSIZE when cmd is longer
 * than max_line or data_len > AT_CHAT_MAX_DATA, -EINVAL for a negative
 * timeout or data_len without data. opts may be NULL (defaults). cmd and
 * the opts strings are copied. cb may be NULL. While a done callback runs,
 * the finished command no longer counts against max_queue. */
int at_chat_send(struct at_chat *chat, const char *cmd, const struct at_cmd_opts *opts,
                 at_done_cb cb, void *ctx);

/* Bytes from the port. */
void at_chat_feed(struct at_chat *chat, const uint8_t *data, size_t len);

/* Call at the scheduled deadline: completes a timed-out command with
 * AT_FINAL_TIMEOUT (and resynchronises), moves a resync on, starts the
 * next command. */
void at_chat_tick(struct at_chat *chat);

/* Completes every queued and in-flight command with AT_FINAL_CANCELLED and
 * resets the lexer. Ends a resync without calling tr.synced(). */
void at_chat_cancel_all(struct at_chat *chat);

/* From inside a URC handler: the next len raw bytes are a block for fn
 * (CMQTT RX chunks). 0 or -EMSGSIZE; -EBUSY when a block is already
 * awaited; -EINVAL for a NULL fn. fn may request the next block. A pending
 * block is forgotten by at_chat_cancel_all() (fn is not called). */
int at_chat_read_block(struct at_chat *chat, size_t len,
                       void (*fn)(void *ctx, const uint8_t *data, size_t len), void *ctx);

/* A URC ended the state a command waits for (+CMQTTCONNLOST while
 * AT+CMQTTSUB waits for its result): completes the command in flight with
 * AT_FINAL_CANCELLED at once when its command line starts with cmd_prefix
 * (case-sensitive), rather than letting the whole queue wait for its
 * timeout, and resynchronises (a prompt the module may still show is left
 * with ESC, a late answer is drained). Queued commands are left alone:
 * they run after the resync. Callable from URC handlers. Returns true when
 * a command was aborted. */
bool at_chat_abort(struct at_chat *chat, const char *cmd_prefix);

/* Starts a resynchronisation (see above) unless one runs. The command in
 * flight, if any, completes with AT_FINAL_OUT_OF_STEP. discard: the port
 * was just opened, whatever is buffered is stale. why is for the log. */
void at_chat_resync(struct at_chat *chat, bool discard, const char *why);

/* quiet: the owner has told the user once that the module does not
 * answer; until it clears this, the start of each resync goes to the
 * debug log instead of repeating as a warning. */
void at_chat_set_quiet(struct at_chat *chat, bool quiet);

/* A resync runs or failed: commands wait. */
bool at_chat_syncing(const struct at_chat *chat);

/* Nothing in flight, nothing queued, not resynchronising. */
bool at_chat_idle(const struct at_chat *chat);

/* How the module sleeps (see above); AT_SLEEP_OFF from at_chat_new.
 * -ENOTSUP for AT_SLEEP_DTR without tr.set_dtr (nothing changes). */
int at_chat_set_sleep(struct at_chat *chat, enum at_chat_sleep mode);

/* Times the chat woke the module (a lone AT, or DTR on), since
 * at_chat_new. */
uint64_t at_chat_wakes(const struct at_chat *chat);

/* Commands the module did not answer in time, since at_chat_new. */
uint64_t at_chat_timeouts(const struct at_chat *chat);

/* For logs: copies cmd (len bytes, no NUL needed) to out with secrets
 * replaced by "***": everything after "AT+CPIN=", after the 4th comma of
 * AT+CMQTTCONNECT= (user, password), the 1st of AT+CPWD=, the 2nd of
 * AT+CLCK= and AT+CGAUTH=. Commas inside quotes do not count. Prefixes
 * match case-insensitively. Truncates to size-1 bytes; out is always
 * NUL-terminated (size > 0). Returns the length written. Pure. */
size_t at_chat_mask(const char *cmd, size_t len, char *out, size_t size);

#endif
