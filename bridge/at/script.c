/* AT scripts. See script.h. */
#include "at/script.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/result.h"

struct at_script_run {
    struct at_script_host host;
    const struct at_script *script;   /* NULL: never started, or finished */
    size_t step;
    unsigned retries;
    /* Commands of the run the chat still holds, and how many of the
     * oldest of them belong to an abandoned run (the chat answers in
     * order: they come first, and are dropped). */
    size_t pending;
    size_t stale;
    uint64_t queued;   /* queue_all: the steps sent (a builder may skip some) */
};

static const char *step_name(const struct at_script *s, size_t i)
{
    return s->steps[i].name ? s->steps[i].name : "?";
}

/* The index of the step labelled label, or n_steps. */
static size_t find_label(const struct at_script *s, const char *label)
{
    for (size_t i = 0; i < s->n_steps; i++)
        if (s->steps[i].label && strcmp(s->steps[i].label, label) == 0)
            return i;
    return s->n_steps;
}

static int check_step(const struct at_script *s, size_t i)
{
    const struct at_script_step *st = &s->steps[i];

    if (!st->name)
        return log_error("script %s: step %zu has no name", s->name, i + 1), -EINVAL;
    if (!st->cmd == !st->build || st->timeout_ms < 0) {
        log_error("script %s: step %s: needs one of cmd and build, and a timeout >= 0", s->name,
                  st->name);
        return -EINVAL;
    }
    if (s->queue_all && i >= 64) {
        log_error("script %s: a queued script has at most 64 steps", s->name);
        return -EINVAL;
    }
    if (st->jump && (s->queue_all || find_label(s, st->jump) == s->n_steps)) {
        log_error("script %s: step %s: jump to \"%s\": %s", s->name, st->name, st->jump,
                  s->queue_all ? "a queued script does not jump" : "no such label");
        return -EINVAL;
    }
    if (st->label && find_label(s, st->label) != i) {
        log_error("script %s: label \"%s\" is used twice", s->name, st->label);
        return -EINVAL;
    }
    return 0;
}

int at_script_check(const struct at_script *s)
{
    if (!s || !s->name || !s->service || !s->steps || s->n_steps == 0) {
        log_error("script %s: no steps", s && s->name ? s->name : "?");
        return -EINVAL;
    }
    for (size_t i = 0; i < s->n_steps; i++)
        if (check_step(s, i) < 0)
            return -EINVAL;
    return 0;
}

struct at_script_run *at_script_run_new(const struct at_script_host *host)
{
    struct at_script_run *run;

    if (!host || !host->send)
        return NULL;
    run = calloc(1, sizeof(*run));
    if (run)
        run->host = *host;
    return run;
}

void at_script_run_free(struct at_script_run *run)
{
    free(run);
}

static void step_answered(void *ctx, const struct at_response *rsp);

/* Sends step i. 1: sent; 0: its builder skipped it; a negative errno:
 * the host refused it. */
static int send_step(struct at_script_run *run, size_t i)
{
    const struct at_script_step *st = &run->script->steps[i];
    char buf[AT_SCRIPT_CMD_MAX];
    struct at_script_cmd c = { .buf = buf, .size = sizeof(buf) };
    struct at_cmd_opts o = {
        .timeout_ms = st->timeout_ms ? st->timeout_ms : run->host.default_timeout_ms,
        .info_prefix = st->info_prefix,
        .after_ok_prefix = st->after_ok_prefix,
        .expect_info = st->flags & AT_STEP_EXPECT_INFO,
    };
    int r;

    if (st->build) {
        if (!st->build(run->host.ctx, &c))
            return 0;
    } else {
        snprintf(buf, sizeof(buf), "%s", st->cmd);
    }
    o.data = c.data;
    o.data_len = c.data_len;
    r = run->host.send(run->host.send_ctx, buf, &o, step_answered, run);
    if (r < 0)
        return r;
    run->pending++;
    return 1;
}

/* ended(), after which the run may have been started again. */
static void end(struct at_script_run *run, bool ok, const struct at_response *rsp, int error)
{
    struct at_script_end e = { .ok = ok, .rsp = rsp, .error = error };

    if (ok)
        run->script = NULL;
    else
        e.step = &run->script->steps[run->step];
    if (run->host.ended)
        run->host.ended(run->host.ctx, &e);
}

/* Sends the current step, or the first one after it that is not skipped;
 * ends the run after the last. */
static void run_from(struct at_script_run *run, const struct at_response *last)
{
    for (; run->step < run->script->n_steps; run->step++, run->retries = 0) {
        int r = send_step(run, run->step);
        if (r > 0)
            return;
        if (r < 0) {
            log_warn("%s: %s: %s: cannot send", run->script->service, run->script->name,
                     step_name(run->script, run->step));
            end(run, false, NULL, r);
            return;
        }
    }
    end(run, true, last, 0);
}

/* A queue_all script: every step handed over now. */
static void queue_all(struct at_script_run *run)
{
    run->queued = 0;
    for (size_t i = 0; i < run->script->n_steps; i++) {
        int r = send_step(run, i);
        if (r > 0)
            run->queued |= (uint64_t)1 << i;
        if (r < 0) {
            /* What was queued is dropped as it comes. */
            run->step = i;
            run->stale += run->pending;
            run->pending = 0;
            end(run, false, NULL, r);
            return;
        }
    }
    if (run->pending == 0)
        end(run, true, NULL, 0);
}

int at_script_start(struct at_script_run *run, const struct at_script *script, const char *label)
{
    size_t first = 0;

    if (at_script_check(script) < 0)
        return -EINVAL;
    if (label && (first = find_label(script, label)) == script->n_steps) {
        log_error("script %s: no label \"%s\"", script->name, label);
        return -ENOENT;
    }
    at_script_cancel(run);
    run->script = script;
    run->step = first;
    run->retries = 0;
    if (script->queue_all)
        queue_all(run);
    else
        run_from(run, NULL);
    return 0;
}

int at_script_resume(struct at_script_run *run)
{
    if (!run->script)
        return -ENOENT;
    if (run->pending > 0)
        return -EALREADY;
    run->retries++;
    run_from(run, NULL);
    return 0;
}

void at_script_cancel(struct at_script_run *run)
{
    run->stale += run->pending;
    run->pending = 0;
    run->script = NULL;
}

bool at_script_running(const struct at_script_run *run)
{
    return run->pending > 0;
}

unsigned at_script_retries(const struct at_script_run *run)
{
    return run->retries;
}

static bool answered_ok(const struct at_script *s, const struct at_response *rsp)
{
    return s->ok ? s->ok(rsp) : rsp->final == AT_FINAL_OK;
}

/* What a failed answer says: the CME/CMS text, or for an OK that the
 * script's ok() refuses, the line that made it refuse (the result after
 * OK: "+CMQTTCONNECT: 0,30"), else the final result's name. */
static const char *failure_text(const struct at_response *rsp)
{
    if (rsp->text)
        return rsp->text;
    if (rsp->final == AT_FINAL_OK && rsp->n_lines > 0)
        return rsp->lines[rsp->n_lines - 1];
    return at_result_final_name(rsp->final);
}

static void log_answer(const struct at_script_run *run, size_t i, const struct at_response *rsp)
{
    const struct at_script *s = run->script;

    log_msg(s->quiet ? LOG_DEBUG : LOG_INFO, "%s: %s: %s: %s", s->service, s->name, step_name(s, i),
            answered_ok(s, rsp) ? "ok" : failure_text(rsp));
}

static bool no_answer(const struct at_response *rsp)
{
    return rsp->final == AT_FINAL_TIMEOUT || rsp->final == AT_FINAL_OUT_OF_STEP ||
           rsp->final == AT_FINAL_CANCELLED;
}

/* A queue_all script's answer: step run->step, in order. */
static void queued_answered(struct at_script_run *run, const struct at_response *rsp)
{
    const struct at_script *s = run->script;
    const struct at_script_step *st;

    while (!(run->queued & (uint64_t)1 << run->step))
        run->step++;
    st = &s->steps[run->step];
    if (!no_answer(rsp)) {
        log_answer(run, run->step, rsp);
        if (st->done)
            st->done(run->host.ctx, rsp);
    }
    run->step++;
    if (run->pending == 0)
        end(run, !no_answer(rsp) && answered_ok(s, rsp), rsp, 0);
}

static void step_answered(void *ctx, const struct at_response *rsp)
{
    struct at_script_run *run = ctx;
    const struct at_script_step *st;
    enum at_script_verdict v;

    if (run->stale > 0) {
        run->stale--;
        return;
    }
    run->pending--;
    if (run->script->queue_all) {
        queued_answered(run, rsp);
        return;
    }
    st = &run->script->steps[run->step];
    if (no_answer(rsp)) {
        /* A cancel is the owner's doing (port closed, module restarted). */
        log_msg(rsp->final == AT_FINAL_CANCELLED ? LOG_DEBUG : LOG_WARN, "%s: %s: %s: %s",
                run->script->service, run->script->name, st->name,
                rsp->final == AT_FINAL_TIMEOUT       ? "no answer"
                : rsp->final == AT_FINAL_OUT_OF_STEP ? "answer out of step"
                                                     : "cancelled");
        end(run, false, rsp, 0);
        return;
    }
    log_answer(run, run->step, rsp);
    if (st->done)
        v = st->done(run->host.ctx, rsp);
    else
        v = answered_ok(run->script, rsp) || (st->flags & AT_STEP_OPTIONAL) ? AT_SCRIPT_NEXT
                                                                            : AT_SCRIPT_FAIL;
    switch (v) {
    case AT_SCRIPT_NEXT:
        run->step++;
        run->retries = 0;
        break;
    case AT_SCRIPT_AGAIN:
        break;
    case AT_SCRIPT_JUMP:
        if (!st->jump) {
            log_error("%s: %s: %s: jumps, but names no label", run->script->service,
                      run->script->name, st->name);
            end(run, false, rsp, 0);
            return;
        }
        run->step = find_label(run->script, st->jump);
        run->retries = 0;
        break;
    case AT_SCRIPT_FINISH:
        end(run, true, rsp, 0);
        return;
    case AT_SCRIPT_HOLD:
        return;
    case AT_SCRIPT_FAIL:
    default:
        end(run, false, rsp, 0);
        return;
    }
    run_from(run, rsp);
}
