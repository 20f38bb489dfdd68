/* The script engine against a fake chat: commands are recorded, the test
 * answers them in order (as the chat does). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "at/result.h"
#include "at/script.h"
#include "capture.h"
#include "modem/cmqtt.h"
#include "modem/modem.h"
#include "modem/status.h"

#define MAX_CMDS 32

static struct {
    struct {
        char cmd[64];
        struct at_cmd_opts opts;
        at_done_cb cb;
        void *ctx;
    } cmds[MAX_CMDS];
    size_t n_cmds, n_done;
    int refuse;                  /* the next send answers this errno */
    /* what the script's callbacks saw and say */
    int iterations;              /* done_iter: AGAIN while below this */
    int built;
    bool skip_built;
    enum at_script_verdict verdict;
    char seen[8][64];
    size_t n_seen;
    struct at_script_end ended[8];
    enum at_final ended_final[8];
    size_t n_ended;
} F;

static int fake_send(void *sctx, const char *cmd, const struct at_cmd_opts *o, at_done_cb cb,
                     void *ctx)
{
    (void)sctx;
    if (F.refuse) {
        int r = F.refuse;
        F.refuse = 0;
        return r;
    }
    assert_true(F.n_cmds < MAX_CMDS);
    snprintf(F.cmds[F.n_cmds].cmd, sizeof(F.cmds[0].cmd), "%s", cmd);
    F.cmds[F.n_cmds].opts = *o;
    F.cmds[F.n_cmds].cb = cb;
    F.cmds[F.n_cmds].ctx = ctx;
    F.n_cmds++;
    return 0;
}

static void on_ended(void *ctx, const struct at_script_end *e)
{
    (void)ctx;
    assert_true(F.n_ended < 8);
    F.ended_final[F.n_ended] = e->rsp ? e->rsp->final : (enum at_final)-1;
    F.ended[F.n_ended++] = *e;
}

/* The chat completes the oldest outstanding command, which must be cmd. */
static void answer(const char *cmd, enum at_final final, const char *line)
{
    const char *lines[2] = { line, NULL };
    struct at_response rsp = { .final = final, .code = -1, .lines = lines,
                               .n_lines = line ? 1 : 0 };
    size_t i = F.n_done++;

    assert_true(i < F.n_cmds);
    assert_string_equal(F.cmds[i].cmd, cmd);
    F.cmds[i].cb(F.cmds[i].ctx, &rsp);
}

static void expect_idle(void)
{
    assert_int_equal(F.n_done, F.n_cmds);
}

static enum at_script_verdict done_record(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    assert_true(F.n_seen < 8);
    snprintf(F.seen[F.n_seen++], sizeof(F.seen[0]), "%s",
             rsp->n_lines ? rsp->lines[0] : at_result_final_name(rsp->final));
    return F.verdict;
}

static enum at_script_verdict done_iter(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    (void)rsp;
    return ++F.iterations < 3 ? AT_SCRIPT_AGAIN : AT_SCRIPT_NEXT;
}

static bool build_n(void *ctx, struct at_script_cmd *out)
{
    (void)ctx;
    if (F.skip_built)
        return false;
    snprintf(out->buf, out->size, "AT+N=%d", F.built++);
    return true;
}

static const struct at_script_step basic_steps[] = {
    { .name = "first", .cmd = "AT+A", .info_prefix = "+A:", .timeout_ms = 500,
      .flags = AT_STEP_EXPECT_INFO },
    { .name = "optional", .cmd = "AT+B", .flags = AT_STEP_OPTIONAL },
    { .name = "iterate", .build = build_n, .done = done_iter },
    { .label = "last", .name = "last", .cmd = "AT+C" },
};
static const struct at_script basic = { "test", "basic", AT_SCRIPT_STEPS(basic_steps) };

static const struct at_script_host host = {
    .send = fake_send, .default_timeout_ms = 3000, .ended = on_ended,
};

static struct at_script_run *setup_run(void)
{
    memset(&F, 0, sizeof(F));
    return at_script_run_new(&host);
}

/* Next, optional, again: the commands in order, the step's options, one
 * successful end. */
static void test_next_again_optional(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    assert_int_equal(at_script_start(run, &basic, NULL), 0);
    assert_int_equal(F.cmds[0].opts.timeout_ms, 500);
    assert_string_equal(F.cmds[0].opts.info_prefix, "+A:");
    assert_true(F.cmds[0].opts.expect_info);
    answer("AT+A", AT_FINAL_OK, "+A: 1");
    assert_int_equal(F.cmds[1].opts.timeout_ms, 3000);   /* the host's default */
    answer("AT+B", AT_FINAL_ERROR, NULL);                 /* optional: goes on */
    answer("AT+N=0", AT_FINAL_OK, NULL);
    answer("AT+N=1", AT_FINAL_OK, NULL);                  /* again: built anew */
    answer("AT+N=2", AT_FINAL_OK, NULL);
    assert_int_equal(F.n_ended, 0);
    answer("AT+C", AT_FINAL_OK, NULL);
    expect_idle();
    assert_int_equal(F.n_ended, 1);
    assert_true(F.ended[0].ok);
    assert_null(F.ended[0].step);
    assert_int_equal(F.ended_final[0], AT_FINAL_OK);
    assert_false(at_script_running(run));
    at_script_run_free(run);
}

/* A skipped step (its builder said no) is not sent. */
static void test_builder_skips(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    F.skip_built = true;
    at_script_start(run, &basic, NULL);
    answer("AT+A", AT_FINAL_OK, "+A: 1");
    answer("AT+B", AT_FINAL_OK, NULL);
    answer("AT+C", AT_FINAL_OK, NULL);
    expect_idle();
    assert_int_equal(F.n_ended, 1);
    assert_true(F.ended[0].ok);
    at_script_run_free(run);
}

/* A step without done fails the run on ERROR; the run can resume there. */
static void test_fail_and_resume(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    at_script_start(run, &basic, "last");
    answer("AT+C", AT_FINAL_ERROR, NULL);
    assert_int_equal(F.n_ended, 1);
    assert_false(F.ended[0].ok);
    assert_string_equal(F.ended[0].step->name, "last");
    assert_int_equal(F.ended_final[0], AT_FINAL_ERROR);
    expect_idle();
    assert_int_equal(at_script_retries(run), 0);
    assert_int_equal(at_script_resume(run), 0);
    assert_int_equal(at_script_retries(run), 1);
    assert_int_equal(at_script_resume(run), -EALREADY);   /* one at a time */
    answer("AT+C", AT_FINAL_OK, NULL);
    assert_int_equal(F.n_ended, 2);
    assert_true(F.ended[1].ok);
    assert_int_equal(at_script_resume(run), -ENOENT);     /* finished */
    at_script_run_free(run);
}

/* Timeouts and out-of-step answers are no answers: done does not see
 * them, the run stops at the step. */
static enum at_script_verdict done_never(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    (void)rsp;
    fail_msg("a non-answer reached done");
    return AT_SCRIPT_FAIL;
}

static const struct at_script_step guarded_steps[] = {
    { .name = "guarded", .cmd = "AT+G", .done = done_never },
};
static const struct at_script guarded = { "test", "guarded", AT_SCRIPT_STEPS(guarded_steps) };

static void test_no_answer(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    at_script_start(run, &guarded, NULL);
    answer("AT+G", AT_FINAL_TIMEOUT, NULL);
    at_script_resume(run);
    answer("AT+G", AT_FINAL_OUT_OF_STEP, NULL);
    at_script_resume(run);
    answer("AT+G", AT_FINAL_CANCELLED, NULL);
    assert_int_equal(F.n_ended, 3);
    assert_int_equal(F.ended_final[0], AT_FINAL_TIMEOUT);
    assert_int_equal(F.ended_final[1], AT_FINAL_OUT_OF_STEP);
    assert_int_equal(F.ended_final[2], AT_FINAL_CANCELLED);
    assert_false(F.ended[2].ok);
    at_script_run_free(run);
}

/* Jump to a label; finish early; hold. */
static const struct at_script_step jumping_steps[] = {
    { .name = "decide", .cmd = "AT+D", .jump = "end", .done = done_record },
    { .name = "skipped by the jump", .cmd = "AT+S" },
    { .label = "end", .name = "end", .cmd = "AT+E" },
};
static const struct at_script jumping = { "test", "jumping", AT_SCRIPT_STEPS(jumping_steps) };

static void test_jump(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    F.verdict = AT_SCRIPT_JUMP;
    at_script_start(run, &jumping, NULL);
    answer("AT+D", AT_FINAL_OK, "+D: 1");
    assert_string_equal(F.seen[0], "+D: 1");
    answer("AT+E", AT_FINAL_OK, NULL);
    expect_idle();
    assert_true(F.ended[0].ok);

    F.verdict = AT_SCRIPT_NEXT;
    at_script_start(run, &jumping, NULL);
    answer("AT+D", AT_FINAL_OK, NULL);
    answer("AT+S", AT_FINAL_OK, NULL);
    answer("AT+E", AT_FINAL_OK, NULL);
    assert_int_equal(F.n_ended, 2);
    at_script_run_free(run);
}

static void test_finish_and_hold(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    F.verdict = AT_SCRIPT_FINISH;
    at_script_start(run, &jumping, NULL);
    answer("AT+D", AT_FINAL_ERROR, NULL);   /* done decides, not the final result */
    expect_idle();
    assert_int_equal(F.n_ended, 1);
    assert_true(F.ended[0].ok);

    F.verdict = AT_SCRIPT_HOLD;
    at_script_start(run, &jumping, NULL);
    answer("AT+D", AT_FINAL_OK, NULL);
    expect_idle();
    assert_int_equal(F.n_ended, 1);          /* quietly */
    F.verdict = AT_SCRIPT_FAIL;
    assert_int_equal(at_script_resume(run), 0);
    answer("AT+D", AT_FINAL_OK, NULL);
    assert_int_equal(F.n_ended, 2);
    assert_false(F.ended[1].ok);
    assert_string_equal(F.ended[1].step->name, "decide");
    at_script_run_free(run);
}

/* A cancelled run: the answer of its command in flight reaches no one,
 * even when a new run started meanwhile. */
static void test_cancel(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    F.verdict = AT_SCRIPT_NEXT;
    at_script_start(run, &jumping, NULL);
    assert_true(at_script_running(run));
    at_script_cancel(run);
    assert_false(at_script_running(run));
    answer("AT+D", AT_FINAL_OK, "late");
    assert_int_equal(F.n_seen, 0);
    assert_int_equal(F.n_ended, 0);
    expect_idle();

    at_script_start(run, &jumping, NULL);
    at_script_start(run, &jumping, "end");     /* abandons the first */
    answer("AT+D", AT_FINAL_OK, "stale");
    assert_int_equal(F.n_seen, 0);
    assert_int_equal(F.n_cmds, 3);             /* nothing followed the stale answer */
    answer("AT+E", AT_FINAL_OK, NULL);
    assert_int_equal(F.n_ended, 1);
    assert_true(F.ended[0].ok);
    at_script_run_free(run);
}

/* A refused send ends the run with the host's errno; resume tries again. */
static void test_send_refused(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    F.refuse = -ENOBUFS;
    assert_int_equal(at_script_start(run, &jumping, NULL), 0);
    assert_int_equal(F.n_ended, 1);
    assert_false(F.ended[0].ok);
    assert_int_equal(F.ended[0].error, -ENOBUFS);
    assert_null(F.ended[0].rsp);
    assert_int_equal(at_script_resume(run), 0);
    assert_int_equal(F.n_cmds, 1);
    at_script_run_free(run);
}

/* Labels: an unknown jump target, a doubled label, an unknown start. */
static const struct at_script_step bad_jump_steps[] = {
    { .name = "a", .cmd = "AT", .jump = "nowhere", .done = done_record },
};
static const struct at_script_step twice_steps[] = {
    { .label = "x", .name = "a", .cmd = "AT" },
    { .label = "x", .name = "b", .cmd = "AT" },
};
static const struct at_script_step no_cmd_steps[] = {
    { .name = "a" },
};

static void test_check(void **state)
{
    static const struct at_script bad_jump = { "test", "bad", AT_SCRIPT_STEPS(bad_jump_steps) };
    static const struct at_script twice = { "test", "twice", AT_SCRIPT_STEPS(twice_steps) };
    static const struct at_script no_cmd = { "test", "no cmd", AT_SCRIPT_STEPS(no_cmd_steps) };
    static const struct at_script queued_jump = { "test", "queued", AT_SCRIPT_STEPS(jumping_steps),
                                                  .queue_all = true };
    struct at_script_run *run = setup_run();

    (void)state;
    assert_int_equal(at_script_check(&basic), 0);
    assert_int_equal(at_script_check(&jumping), 0);
    assert_int_equal(at_script_check(&bad_jump), -EINVAL);
    assert_int_equal(at_script_check(&twice), -EINVAL);
    assert_int_equal(at_script_check(&no_cmd), -EINVAL);
    assert_int_equal(at_script_check(&queued_jump), -EINVAL);
    assert_int_equal(at_script_start(run, &bad_jump, NULL), -EINVAL);
    assert_int_equal(at_script_start(run, &basic, "nowhere"), -ENOENT);
    assert_int_equal(F.n_cmds, 0);
    at_script_run_free(run);
}

static enum at_script_verdict done_c(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    assert_true(F.n_seen < 8);
    snprintf(F.seen[F.n_seen++], sizeof(F.seen[0]), "c: %s", rsp->n_lines ? rsp->lines[0] : "");
    return AT_SCRIPT_FAIL;   /* ignored: the answers do not steer a round */
}

/* queue_all: every step handed over at once; each answer seen; the last
 * ends the run. A skipped step is not waited for. */
static const struct at_script_step round_steps[] = {
    { .name = "a", .cmd = "AT+A", .done = done_record },
    { .name = "n", .build = build_n, .done = done_record },
    { .name = "c", .cmd = "AT+C", .done = done_c },
};
static const struct at_script poll_round = { "test", "round", AT_SCRIPT_STEPS(round_steps),
                                        .queue_all = true };

static void test_queue_all(void **state)
{
    struct at_script_run *run = setup_run();

    (void)state;
    at_script_start(run, &poll_round, NULL);
    assert_int_equal(F.n_cmds, 3);
    answer("AT+A", AT_FINAL_OK, "a");
    answer("AT+N=0", AT_FINAL_ERROR, NULL);
    assert_int_equal(F.n_ended, 0);
    answer("AT+C", AT_FINAL_OK, "c");
    assert_int_equal(F.n_seen, 3);
    assert_string_equal(F.seen[2], "c: c");
    assert_string_equal(F.seen[1], "ERROR");
    assert_int_equal(F.n_ended, 1);
    assert_true(F.ended[0].ok);

    F.skip_built = true;
    at_script_start(run, &poll_round, NULL);
    assert_int_equal(F.n_cmds, 5);
    answer("AT+A", AT_FINAL_OK, "a2");
    answer("AT+C", AT_FINAL_OK, "c2");
    assert_string_equal(F.seen[4], "c: c2");    /* the skipped step was not waited for */
    assert_int_equal(F.n_ended, 2);
    assert_true(F.ended[1].ok);

    at_script_start(run, &poll_round, NULL);
    answer("AT+A", AT_FINAL_CANCELLED, NULL);
    answer("AT+C", AT_FINAL_CANCELLED, NULL);
    assert_int_equal(F.n_seen, 5);              /* a cancel is no answer */
    assert_int_equal(F.n_ended, 3);
    assert_false(F.ended[2].ok);
    assert_int_equal(F.ended_final[2], AT_FINAL_CANCELLED);
    at_script_run_free(run);
}

/* Data after the prompt and a result after OK: the builder's data and the
 * step's after_ok_prefix reach the chat; a fixed command has no data. */
static bool build_with_data(void *ctx, struct at_script_cmd *out)
{
    (void)ctx;
    out->data = (const uint8_t *)"a/b\r\n";
    out->data_len = 5;
    snprintf(out->buf, out->size, "AT+T=%zu", out->data_len);
    return true;
}

/* Like the CMQTT scripts: OK is a success only when the result line after
 * it (if any) ends in 0. */
static bool result_zero(const struct at_response *rsp)
{
    size_t n = rsp->n_lines;

    return rsp->final == AT_FINAL_OK &&
           (n == 0 || strcmp(rsp->lines[n - 1] + strlen(rsp->lines[n - 1]) - 2, ",0") == 0);
}

static const struct at_script_step result_steps[] = {
    { .name = "topic", .build = build_with_data },
    { .name = "tolerant", .cmd = "AT+O", .after_ok_prefix = "+O:", .flags = AT_STEP_OPTIONAL },
    { .name = "pub", .cmd = "AT+P", .after_ok_prefix = "+P:" },
};
static const struct at_script results = { "test", "results", AT_SCRIPT_STEPS(result_steps),
                                          result_zero };

static void test_prompt_data_and_result_after_ok(void **state)
{
    struct at_script_run *run = setup_run();
    struct capture cap;
    char log[4096];

    (void)state;
    assert_int_equal(capture_begin(&cap), 0);
    at_script_start(run, &results, NULL);
    answer("AT+T=5", AT_FINAL_OK, NULL);
    answer("AT+O", AT_FINAL_OK, "+O: 0,5");      /* refused, but optional */
    answer("AT+P", AT_FINAL_OK, "+P: 0,30");     /* refused: the run fails */
    capture_end(&cap, log, sizeof(log));
    assert_int_equal(F.cmds[0].opts.data_len, 5);
    assert_memory_equal(F.cmds[0].opts.data, "a/b\r\n", 5);
    assert_null(F.cmds[0].opts.after_ok_prefix);
    assert_null(F.cmds[2].opts.data);
    assert_int_equal(F.cmds[2].opts.data_len, 0);
    assert_string_equal(F.cmds[2].opts.after_ok_prefix, "+P:");
    expect_idle();
    assert_int_equal(F.n_ended, 1);
    assert_false(F.ended[0].ok);
    assert_string_equal(F.ended[0].step->name, "pub");
    /* The log names the result line that made an OK a failure. */
    assert_non_null(strstr(log, "test: results: topic: ok"));
    assert_non_null(strstr(log, "test: results: tolerant: +O: 0,5"));
    assert_non_null(strstr(log, "test: results: pub: +P: 0,30"));
    at_script_run_free(run);
}

/* Every script of the bridge: labels that exist, one of cmd and build. */
static void test_bridge_scripts(void **state)
{
    const struct at_script *scripts[] = {
        modem_bringup_script(),
        status_poll_script(),
    };
    unsigned n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
        assert_int_equal(at_script_check(scripts[i]), 0);
    for (const struct at_script *s; (s = cmqtt_script(n)) != NULL; n++)
        assert_int_equal(at_script_check(s), 0);
    assert_int_equal(n, 5);   /* connect, publish, subscribe, unsubscribe, stop */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_again_optional),
        cmocka_unit_test(test_builder_skips),
        cmocka_unit_test(test_fail_and_resume),
        cmocka_unit_test(test_no_answer),
        cmocka_unit_test(test_jump),
        cmocka_unit_test(test_finish_and_hold),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_send_refused),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_queue_all),
        cmocka_unit_test(test_prompt_data_and_result_after_ok),
        cmocka_unit_test(test_bridge_scripts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
