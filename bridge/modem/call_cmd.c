/* The call commands (see call_int.h for the other files): B/call/dial,
 * answer, hangup and dtmf, each checked (number, allow_to, state) before a
 * byte is written, then ATD, ATA, AT+CHUP or AT+VTS; what the answer means
 * for the call goes to call_fire() (call.c), the result to the caller. */
#include "modem/call_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "core/config.h"
#include "modem/modem.h"

#define DIAL_TIMEOUT_MS 30000
#define VTS_TIMEOUT_MS 20000     /* 32 tones of about 100 ms each, and pauses */

enum req_kind { REQ_DIAL, REQ_ANSWER, REQ_HANGUP, REQ_DTMF };

struct req {
    struct call *c;
    enum req_kind kind;
    char number[CALL_NUMBER_MAX];
    call_written_cb written;      /* may be NULL; with ctx */
    call_done_cb cb;
    void *ctx;
    bool for_seq;                 /* a hangup of call number seq only */
    unsigned seq;
    bool dropped;                 /* for_seq: that call had ended, nothing written */
};

/* --- commands ---------------------------------------------------------------- */

static void reject(call_done_cb cb, void *ctx, const char *code, const char *msg)
{
    struct m2m_error err;

    m2m_error_set(&err, code, "%s", msg);
    cb(ctx, &err);
}

static void req_done(void *ctx, const struct at_response *rsp)
{
    struct req *r = ctx;
    struct call *c = r->c;
    struct m2m_error err;
    bool ok = rsp->final == AT_FINAL_OK;

    c->busy_reqs--;
    if (r->kind == REQ_DIAL)
        c->dial_in_flight = false;
    if (ok) {
        if (!c->freed) {
            if (r->kind == REQ_DIAL)
                call_fire(c, EV_DIAL_OK, CALL_DIR_OUT, r->number);
            else if (r->kind == REQ_ANSWER)
                call_fire(c, EV_CONNECTED, CALL_DIR_IN, NULL);
            else if (r->kind == REQ_HANGUP)
                call_fire(c, EV_HANGUP, CALL_DIR_NONE, NULL);
        }
        r->cb(r->ctx, NULL);
        goto out;
    }
    switch (rsp->final) {
    case AT_FINAL_BUSY:
        m2m_error_set(&err, "busy", "the called number is busy");
        break;
    case AT_FINAL_NO_CARRIER:
        if (r->kind == REQ_ANSWER || r->kind == REQ_DTMF) {
            m2m_error_set(&err, "no_call", "there is no call");
            break;
        }
        /* fall through */
    default:
        if (r->dropped)
            m2m_error_set(&err, "no_call", "the call had ended before the hang-up was written");
        else
            m2m_error_from_at(&err, rsp, NULL);
        break;
    }
    /* ATD refused: no call began. Another command's NO CARRIER/BUSY may be
     * the end of the call that is up. */
    if (!c->freed && r->kind != REQ_DIAL)
        call_end_by_final(c, rsp->final);
    r->cb(r->ctx, &err);
out:
    free(r);
    call_maybe_free(c);
}

static void req_written(void *ctx)
{
    struct req *r = ctx;

    if (r->written)
        r->written(r->ctx);
}

/* A hangup for one call: is that call still the one that is up? */
static bool req_still_wanted(void *ctx)
{
    struct req *r = ctx;
    const struct call_state *st = &r->c->st;

    r->dropped = r->for_seq && (r->c->freed || st->state == CALL_IDLE || st->seq != r->seq);
    return !r->dropped;
}

/* seq: NULL, or the only call a hangup may end. */
static void submit(struct call *c, enum req_kind kind, const char *cmd, int timeout_ms,
                   const char *number, const unsigned *seq, call_written_cb written,
                   call_done_cb cb, void *ctx)
{
    const struct at_cmd_opts o = { .timeout_ms = timeout_ms, .written = req_written,
                                   .still_wanted = req_still_wanted };
    struct req *r = calloc(1, sizeof(*r));
    int rc;

    if (!r) {
        reject(cb, ctx, "unavailable", "out of memory");
        return;
    }
    *r = (struct req){ .c = c, .kind = kind, .written = written, .cb = cb, .ctx = ctx,
                       .for_seq = seq != NULL, .seq = seq ? *seq : 0 };
    if (number)
        snprintf(r->number, sizeof(r->number), "%s", number);
    rc = modem_send(c->modem, cmd, &o, req_done, r);
    if (rc < 0) {
        struct m2m_error err;

        free(r);
        m2m_error_from_send(&err, rc);
        cb(ctx, &err);
        return;
    }
    c->busy_reqs++;
    if (kind == REQ_DIAL)
        c->dial_in_flight = true;
}

static bool check_ready(struct call *c, call_done_cb cb, void *ctx)
{
    if (c->ready)
        return true;
    reject(cb, ctx, "unavailable", "the modem is not ready");
    return false;
}

void call_dial(struct call *c, const char *to, call_written_cb written, call_done_cb cb,
               void *ctx)
{
    char cmd[CALL_NUMBER_MAX + 8];

    /* Only digits, * and # go behind ATD: ';' would end the dial string,
     * letters are dial modifiers (I, G, >) with their own meaning. */
    if (!call_number_valid(to)) {
        reject(cb, ctx, "invalid_number",
               "'to' must be digits, * and # with an optional leading +, e.g. +4917012345678");
        return;
    }
    if (!config_number_allowed(c->opts.allow_to, c->opts.n_allow_to, to)) {
        struct m2m_error err;
        /* '*' and '#' make ATD an order to the network (**21*...# forwards
         * every call): only an exact entry allows one, never "*". */
        if (strpbrk(to, "*#"))
            m2m_error_set(&err, "not_allowed",
                          "'to' %s is a service code (it can change call forwarding or "
                          "barring); list it exactly in calls.allow_to to dial it",
                          to);
        else if (to[0] != '+')
            m2m_error_set(&err, "not_allowed",
                          CONFIG_NOT_LISTED_FMT, to, "calls.allow_to");
        else
            m2m_error_set(&err, "not_allowed", "'to' is not in calls.allow_to");
        cb(ctx, &err);
        return;
    }
    if (!check_ready(c, cb, ctx))
        return;
    if (c->dial_in_flight || c->st.state != CALL_IDLE) {
        reject(cb, ctx, "busy", "a call is already in progress");
        return;
    }
    snprintf(cmd, sizeof(cmd), "ATD%s;", to);
    submit(c, REQ_DIAL, cmd, DIAL_TIMEOUT_MS, to, NULL, written, cb, ctx);
}

void call_answer(struct call *c, call_done_cb cb, void *ctx)
{
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state != CALL_RINGING) {
        reject(cb, ctx, "no_call", "no call is ringing");
        return;
    }
    submit(c, REQ_ANSWER, "ATA", 0, NULL, NULL, NULL, cb, ctx);
}

void call_hangup(struct call *c, call_done_cb cb, void *ctx)
{
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state == CALL_IDLE && !c->dial_in_flight) {
        reject(cb, ctx, "no_call", "there is no call");
        return;
    }
    submit(c, REQ_HANGUP, "AT+CHUP", 0, NULL, NULL, NULL, cb, ctx);
}

void call_hangup_seq(struct call *c, unsigned seq, call_done_cb cb, void *ctx)
{
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state == CALL_IDLE || c->st.seq != seq) {
        reject(cb, ctx, "no_call", "the call has ended");
        return;
    }
    submit(c, REQ_HANGUP, "AT+CHUP", 0, NULL, &seq, NULL, cb, ctx);
}

void call_dtmf(struct call *c, const char *digits, call_done_cb cb, void *ctx)
{
    char cmd[64];
    size_t n = digits ? strlen(digits) : 0;

    /* Inside AT+VTS="...": this set cannot close the quote. */
    if (n < 1 || n > 32 || strspn(digits, "0123456789*#ABCDabcd") != n) {
        reject(cb, ctx, "invalid_request", "'digits' must be 1-32 of 0-9 * # A-D");
        return;
    }
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state != CALL_ACTIVE) {
        reject(cb, ctx, "no_call", "DTMF needs an active call");
        return;
    }
    snprintf(cmd, sizeof(cmd), "AT+VTS=\"%s\"", digits);
    submit(c, REQ_DTMF, cmd, VTS_TIMEOUT_MS, NULL, NULL, NULL, cb, ctx);
}
