/* Voice call service. See call.h.
 *
 * A7670 quirks handled here (reference/a76xx-at.md, "Calls"):
 * - ATD<number>; answers OK at once; the outcome comes later as a URC
 *   (VOICE CALL: BEGIN, BUSY, NO ANSWER, NO CARRIER). The chat treats those
 *   three as final results while a command is in flight, so an outcome may
 *   end somebody else's command and never reach our URC table. Hence the
 *   AT+CLCC poll while a call is up: the list tells what the lines did not.
 * - RING repeats about every 6 s with a +CLIP after each; a caller who gives
 *   up may produce MISSED_CALL, NO CARRIER, or just silence. Silence for
 *   ring_gap_ms is checked with AT+CLCC.
 * - AT+CHUP answers OK, then VOICE CALL: END: HHMMSS. */
#include "modem/call.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/utf8.h"
#include "modem/modem.h"

#define DEFAULT_RING_GAP_MS 8000
#define DEFAULT_POLL_MS 5000
#define DEFAULT_CLIP_WAIT_MS 1000
#define DIAL_TIMEOUT_MS 30000
#define VTS_TIMEOUT_MS 20000     /* 32 tones of about 100 ms each, and pauses */
#define NUMBER_MAX_DIGITS 32

enum call_ev {
    EV_DIAL_OK = 0,   /* ATD answered OK */
    EV_DIALING,       /* +CLCC stat 2 */
    EV_ALERTING,      /* +CLCC stat 3 */
    EV_CONNECTED,     /* VOICE CALL: BEGIN, ATA OK, +CLCC stat 0/1 */
    EV_INCOMING,      /* RING/+CLIP, +CLCC stat 4/5 */
    EV_HANGUP,        /* VOICE CALL: END, AT+CHUP OK */
    EV_BUSY,
    EV_NO_ANSWER,
    EV_NO_CARRIER,
    EV_MISSED,        /* MISSED_CALL */
    EV_GONE,          /* AT+CLCC lists no call, or +CLCC stat 6 */
    EV_COUNT
};

static const char *const ev_names[EV_COUNT] = {
    "dial ok", "clcc dialing", "clcc alerting", "connected", "incoming", "hangup",
    "busy", "no answer", "no carrier", "missed", "gone",
};

struct transition {
    enum call_st from;
    enum call_ev ev;
    enum call_st to;
    enum call_end reason;         /* when to is idle */
};

/* Everything not listed leaves the state alone (a NO CARRIER after the
 * VOICE CALL: END that already ended the call, a RING while ringing). An
 * incoming call that ends unanswered is "no_answer" whatever line said so:
 * nobody took it. */
static const struct transition transitions[] = {
    { CALL_IDLE, EV_DIAL_OK, CALL_DIALING, CALL_END_NONE },
    { CALL_IDLE, EV_DIALING, CALL_DIALING, CALL_END_NONE },
    { CALL_IDLE, EV_ALERTING, CALL_ALERTING, CALL_END_NONE },
    { CALL_IDLE, EV_CONNECTED, CALL_ACTIVE, CALL_END_NONE },
    { CALL_IDLE, EV_INCOMING, CALL_RINGING, CALL_END_NONE },

    { CALL_DIALING, EV_ALERTING, CALL_ALERTING, CALL_END_NONE },
    { CALL_DIALING, EV_CONNECTED, CALL_ACTIVE, CALL_END_NONE },
    { CALL_DIALING, EV_HANGUP, CALL_IDLE, CALL_END_HANGUP },
    { CALL_DIALING, EV_BUSY, CALL_IDLE, CALL_END_BUSY },
    { CALL_DIALING, EV_NO_ANSWER, CALL_IDLE, CALL_END_NO_ANSWER },
    { CALL_DIALING, EV_NO_CARRIER, CALL_IDLE, CALL_END_NO_CARRIER },
    { CALL_DIALING, EV_GONE, CALL_IDLE, CALL_END_NO_CARRIER },

    { CALL_ALERTING, EV_CONNECTED, CALL_ACTIVE, CALL_END_NONE },
    { CALL_ALERTING, EV_HANGUP, CALL_IDLE, CALL_END_HANGUP },
    { CALL_ALERTING, EV_BUSY, CALL_IDLE, CALL_END_BUSY },
    { CALL_ALERTING, EV_NO_ANSWER, CALL_IDLE, CALL_END_NO_ANSWER },
    { CALL_ALERTING, EV_NO_CARRIER, CALL_IDLE, CALL_END_NO_CARRIER },
    { CALL_ALERTING, EV_GONE, CALL_IDLE, CALL_END_NO_CARRIER },

    { CALL_RINGING, EV_CONNECTED, CALL_ACTIVE, CALL_END_NONE },
    { CALL_RINGING, EV_HANGUP, CALL_IDLE, CALL_END_HANGUP },
    { CALL_RINGING, EV_NO_ANSWER, CALL_IDLE, CALL_END_NO_ANSWER },
    { CALL_RINGING, EV_NO_CARRIER, CALL_IDLE, CALL_END_NO_ANSWER },
    { CALL_RINGING, EV_MISSED, CALL_IDLE, CALL_END_NO_ANSWER },
    { CALL_RINGING, EV_GONE, CALL_IDLE, CALL_END_NO_ANSWER },

    { CALL_ACTIVE, EV_HANGUP, CALL_IDLE, CALL_END_HANGUP },
    { CALL_ACTIVE, EV_NO_CARRIER, CALL_IDLE, CALL_END_NO_CARRIER },
    /* The list is empty: the call ended by a line we did not see. */
    { CALL_ACTIVE, EV_GONE, CALL_IDLE, CALL_END_HANGUP },
};
#define N_TRANSITIONS (sizeof(transitions) / sizeof(transitions[0]))

enum req_kind { REQ_DIAL, REQ_ANSWER, REQ_HANGUP, REQ_DTMF };

struct req {
    struct call *c;
    enum req_kind kind;
    char number[CALL_NUMBER_MAX];
    call_done_cb cb;
    void *ctx;
};

struct call {
    struct loop *loop;
    struct modem *modem;
    struct call_opts opts;
    struct call_cbs cbs;
    void *ctx;
    bool ready;
    bool known;                   /* an AT+CLCC answered since ready */
    unsigned n_announced;         /* states given to cbs.state */

    struct call_state st;
    int64_t active_ms;            /* monotonic start of the active phase; -1 */
    int end_duration;             /* from VOICE CALL: END: HHMMSS; -1 */

    bool dial_in_flight;
    bool clcc_in_flight;
    bool ring_announced;          /* B/call/ring went out for this call */
    uint64_t ring_timer;          /* ring_gap_ms after the last RING */
    uint64_t clip_timer;          /* RING seen, +CLIP awaited */
    uint64_t poll_timer;          /* AT+CLCC while a call is up */
    /* Commands in flight hold a pointer to us: defer the free. */
    unsigned busy_reqs;
    bool freed;
};

const char *call_st_name(enum call_st st)
{
    switch (st) {
    case CALL_IDLE: return "idle";
    case CALL_DIALING: return "dialing";
    case CALL_ALERTING: return "alerting";
    case CALL_RINGING: return "ringing";
    case CALL_ACTIVE: return "active";
    default: return "idle";
    }
}

const char *call_dir_name(enum call_dir d)
{
    switch (d) {
    case CALL_DIR_IN: return "in";
    case CALL_DIR_OUT: return "out";
    case CALL_DIR_NONE:
    default: return NULL;
    }
}

const char *call_end_name(enum call_end e)
{
    switch (e) {
    case CALL_END_HANGUP: return "hangup";
    case CALL_END_BUSY: return "busy";
    case CALL_END_NO_ANSWER: return "no_answer";
    case CALL_END_NO_CARRIER: return "no_carrier";
    case CALL_END_NONE:
    default: return NULL;
    }
}

bool call_number_valid(const char *s)
{
    size_t n = 0;

    if (!s)
        return false;
    if (*s == '+')
        s++;
    for (; *s; s++, n++)
        if (!((*s >= '0' && *s <= '9') || *s == '*' || *s == '#'))
            return false;
    return n >= 1 && n <= NUMBER_MAX_DIGITS;
}

/* --- the state machine ------------------------------------------------------- */

static void stop_timer(struct call *c, uint64_t *id)
{
    if (*id)
        loop_cancel_timer(c->loop, *id);
    *id = 0;
}

static void announce(struct call *c)
{
    if (!c->known)
        return;     /* the first AT+CLCC announces whatever happened before */
    c->n_announced++;
    if (c->cbs.state)
        c->cbs.state(c->ctx, &c->st);
}

static void arm_poll(struct call *c);
static void stop_ringing(struct call *c);

/* dir and number: of the call the event is about (NULL/NONE: keep). */
static void fire(struct call *c, enum call_ev ev, enum call_dir dir, const char *number)
{
    const struct transition *t = NULL;
    enum call_st from = c->st.state;

    for (size_t i = 0; i < N_TRANSITIONS; i++)
        if (transitions[i].from == from && transitions[i].ev == ev) {
            t = &transitions[i];
            break;
        }
    if (!t) {
        log_debug("call: %s in %s: no change", ev_names[ev], call_st_name(from));
        return;
    }
    switch (t->to) {
    case CALL_IDLE:
        c->st.ended = t->reason;
        if (c->end_duration >= 0)
            c->st.duration = c->end_duration;
        else if (c->active_ms >= 0)
            c->st.duration = (int)((loop_now_ms() - c->active_ms) / 1000);
        else
            c->st.duration = 0;
        c->active_ms = -1;
        c->end_duration = -1;
        c->ring_announced = false;
        stop_ringing(c);
        stop_timer(c, &c->poll_timer);
        break;
    case CALL_ACTIVE:
        c->active_ms = loop_now_ms();
        stop_ringing(c);
        break;
    case CALL_DIALING:
    case CALL_ALERTING:
    case CALL_RINGING:
        break;
    default:
        return;
    }
    if (from == CALL_IDLE) {
        /* A new call: forget the previous one's number and ending. */
        c->st.dir = CALL_DIR_NONE;
        c->st.number[0] = '\0';
        c->st.ended = CALL_END_NONE;
        c->st.duration = -1;
        c->active_ms = t->to == CALL_ACTIVE ? loop_now_ms() : -1;
    }
    if (dir != CALL_DIR_NONE)
        c->st.dir = dir;
    if (number && *number)
        snprintf(c->st.number, sizeof(c->st.number), "%s", number);
    c->st.state = t->to;
    c->st.since = time(NULL);
    log_debug("call: %s -> %s (%s)", call_st_name(from), call_st_name(t->to), ev_names[ev]);
    if (t->to != CALL_IDLE && t->to != CALL_RINGING)
        arm_poll(c);
    announce(c);
}

/* --- AT+CLCC ----------------------------------------------------------------- */

struct clcc_entry {
    int dir, stat, mode;
    char number[CALL_NUMBER_MAX];
};

/* Reads the quoted number at the iterator (bounded, control bytes
 * dropped); "" when there is none. ucs2: the module's TE character set is
 * UCS2 (a USSD request runs), so it prints the number as UCS-2 hex:
 * decoded. A string that is not UCS-2 hex is kept as given (the flag and
 * the module disagree for the moment a URC crosses the switch, and
 * "+49..." is not hex). */
static void read_number(struct at_result_iter *it, bool ucs2, char *out, size_t size)
{
    char raw[4 * CALL_NUMBER_MAX + 1], dec[CALL_NUMBER_MAX];
    const char *src = raw;
    size_t n = 0;

    if (at_result_next_string(it, raw, sizeof(raw)) < 0)
        raw[0] = '\0';
    if (ucs2 && utf8_from_ucs2_hex(raw, strlen(raw), dec, sizeof(dec)) >= 0)
        src = dec;
    for (; *src && n + 1 < size; src++)
        if ((unsigned char)*src >= 0x20 && *src != 0x7F)
            out[n++] = *src;
    out[n] = '\0';
}

/* +CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,"<number>",<type>] */
static int parse_clcc(const char *line, bool ucs2, struct clcc_entry *e)
{
    struct at_result_iter it;
    int v[5];

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CLCC:"))
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (at_result_next_number(&it, 0, 255, &v[i]) < 0)
            return -EINVAL;
    e->dir = v[1];
    e->stat = v[2];
    e->mode = v[3];
    read_number(&it, ucs2, e->number, sizeof(e->number));
    return 0;
}

static void clcc_apply(struct call *c, const struct clcc_entry *e)
{
    enum call_dir dir = e->dir == 1 ? CALL_DIR_IN : CALL_DIR_OUT;

    switch (e->stat) {
    case 0:
    case 1:   /* held: still a call that is up */
        fire(c, EV_CONNECTED, dir, e->number);
        break;
    case 2:
        fire(c, EV_DIALING, dir, e->number);
        break;
    case 3:
        fire(c, EV_ALERTING, dir, e->number);
        break;
    case 4:
    case 5:
        fire(c, EV_INCOMING, dir, e->number);
        break;
    case 6:
        /* Disconnecting: the line that says why (BUSY, VOICE CALL: END...)
         * follows; if it gets lost, the next poll finds the list empty. */
        log_debug("call: +CLCC stat 6, waiting for the outcome");
        break;
    default:
        log_debug("call: +CLCC stat %d ignored", e->stat);
        break;
    }
}

static void end_by_final(struct call *c, enum at_final f)
{
    /* Our own command may have taken the outcome line as its final result. */
    switch (f) {
    case AT_FINAL_BUSY: fire(c, EV_BUSY, CALL_DIR_NONE, NULL); break;
    case AT_FINAL_NO_ANSWER: fire(c, EV_NO_ANSWER, CALL_DIR_NONE, NULL); break;
    case AT_FINAL_NO_CARRIER: fire(c, EV_NO_CARRIER, CALL_DIR_NONE, NULL); break;
    default: break;
    }
}

static void maybe_free(struct call *c);
static void ring_alive(struct call *c);
static void ring_start(struct call *c, const char *from);

/* One entry of the list (a reply line or a +CLCC URC). */
static void clcc_handle(struct call *c, const struct clcc_entry *e)
{
    if (e->stat == 4 || e->stat == 5) {
        ring_alive(c);
        if (!c->ring_announced)
            ring_start(c, e->number);
        return;
    }
    clcc_apply(c, e);
}

static void clcc_done(void *ctx, const struct at_response *rsp)
{
    struct call *c = ctx;
    bool first = !c->known;
    bool any = false;
    unsigned announced = c->n_announced;

    c->busy_reqs--;
    c->clcc_in_flight = false;
    if (c->freed) {
        maybe_free(c);
        return;
    }
    if (rsp->final == AT_FINAL_CANCELLED)
        return;
    /* Even a module without AT+CLCC has a state to show: idle. */
    c->known = true;
    if (rsp->final != AT_FINAL_OK) {
        end_by_final(c, rsp->final);
        if (rsp->final != AT_FINAL_NO_CARRIER)
            log_warn("call: AT+CLCC: %s", rsp->text ? rsp->text : at_final_name(rsp->final));
        if (c->st.state == CALL_RINGING)
            fire(c, EV_MISSED, CALL_DIR_NONE, NULL);
    } else {
        for (size_t i = 0; i < rsp->n_lines; i++) {
            struct clcc_entry e;
            if (strncmp(rsp->lines[i], "+CLCC:", 6) != 0 ||
                parse_clcc(rsp->lines[i], modem_charset_ucs2(c->modem), &e) < 0 || e.mode != 0)
                continue;     /* data and fax calls are not ours */
            any = true;
            if (first && c->st.state == CALL_IDLE)
                log_info("call: a call is up at start (+CLCC stat %d)", e.stat);
            clcc_handle(c, &e);
            break;            /* one voice call at a time */
        }
        if (!any)
            fire(c, EV_GONE, CALL_DIR_NONE, NULL);
    }
    /* The first state after a (re)start, also when it did not change
     * (idle; or ringing that began while this AT+CLCC was in flight). */
    if (first && c->n_announced == announced) {
        if (c->st.state == CALL_IDLE)
            c->st.since = time(NULL);
        announce(c);
    }
}

static void send_clcc(struct call *c)
{
    const struct at_cmd_opts o = { .info_prefix = "+CLCC:" };

    if (!c->ready || c->clcc_in_flight)
        return;
    if (modem_send(c->modem, "AT+CLCC", &o, clcc_done, c) == 0) {
        c->clcc_in_flight = true;
        c->busy_reqs++;
    }
}

static int64_t poll_fired(void *ctx)
{
    struct call *c = ctx;

    if (c->st.state == CALL_IDLE || c->st.state == CALL_RINGING) {
        c->poll_timer = 0;
        return 0;
    }
    send_clcc(c);
    return c->opts.poll_ms;
}

static void arm_poll(struct call *c)
{
    if (!c->poll_timer)
        loop_add_timer(c->loop, c->opts.poll_ms, poll_fired, c, &c->poll_timer);
}

/* --- incoming ---------------------------------------------------------------- */

static void stop_ringing(struct call *c)
{
    stop_timer(c, &c->ring_timer);
    stop_timer(c, &c->clip_timer);
}

static int64_t ring_gap_fired(void *ctx)
{
    struct call *c = ctx;

    c->ring_timer = 0;
    /* No RING for a while: the caller gave up, or the RINGs got lost. */
    if (c->st.state == CALL_RINGING)
        send_clcc(c);
    return 0;
}

static void ring_alive(struct call *c)
{
    stop_timer(c, &c->ring_timer);
    loop_add_timer(c->loop, c->opts.ring_gap_ms, ring_gap_fired, c, &c->ring_timer);
}

static void ring_start(struct call *c, const char *from)
{
    stop_timer(c, &c->clip_timer);
    if (c->st.state != CALL_IDLE && c->st.state != CALL_RINGING)
        return;       /* a waiting call during ours: not handled */
    fire(c, EV_INCOMING, CALL_DIR_IN, from);
    if (c->st.state == CALL_RINGING && !c->ring_announced) {
        c->ring_announced = true;
        if (c->cbs.ring)
            c->cbs.ring(c->ctx, from && *from ? from : NULL);
    }
}

static int64_t clip_wait_fired(void *ctx)
{
    struct call *c = ctx;

    c->clip_timer = 0;
    ring_start(c, NULL);   /* AT+CLIP off or not provisioned */
    return 0;
}

static void urc_ring(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;

    (void)n;
    /* +CRING: VOICE (AT+CRC=1); data/fax rings are not ours. */
    if (strncmp(lines[0], "+CRING:", 7) == 0 && !strstr(lines[0], "VOICE"))
        return;
    if (c->st.state != CALL_IDLE && c->st.state != CALL_RINGING)
        return;
    ring_alive(c);
    if (!c->ring_announced && !c->clip_timer)
        loop_add_timer(c->loop, c->opts.clip_wait_ms, clip_wait_fired, c, &c->clip_timer);
}

/* +CLIP: "<number>",<type>,,,,<validity>: validity 1 withheld, 2 unknown. */
static void urc_clip(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    struct at_result_iter it;
    char number[CALL_NUMBER_MAX];
    int validity;

    (void)n;
    if (c->st.state != CALL_IDLE && c->st.state != CALL_RINGING)
        return;
    at_result_iter_init(&it, lines[0]);
    at_result_iter_next(&it, "+CLIP:");
    read_number(&it, modem_charset_ucs2(c->modem), number, sizeof(number));
    for (int i = 0; i < 4; i++)          /* <type>,<subaddr>,<satype>,<alpha> */
        at_result_skip_next(&it);
    if (at_result_next_number_default(&it, 0, 255, 0, &validity) == 0 && validity != 0)
        number[0] = '\0';
    ring_alive(c);
    if (c->ring_announced)
        return;
    ring_start(c, number);
}

/* --- other URCs ------------------------------------------------------------------ */

static void urc_voice_call(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    const char *p = lines[0] + strlen("VOICE CALL:");

    (void)n;
    while (*p == ' ')
        p++;
    if (strncmp(p, "BEGIN", 5) == 0) {
        fire(c, EV_CONNECTED, CALL_DIR_NONE, NULL);
    } else if (strncmp(p, "END", 3) == 0) {
        /* VOICE CALL: END: HHMMSS, the time the call was up. */
        unsigned h, m, s;
        const char *t = strchr(p, ':');
        if (t && sscanf(t + 1, " %2u%2u%2u", &h, &m, &s) == 3 && m < 60 && s < 60)
            c->end_duration = (int)(h * 3600 + m * 60 + s);
        fire(c, EV_HANGUP, CALL_DIR_NONE, NULL);
        c->end_duration = -1;
    } else {
        log_debug("call: unknown %s", lines[0]);
    }
}

static void urc_outcome(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    const char *l = lines[0];

    (void)n;
    if (strncmp(l, "BUSY", 4) == 0)
        fire(c, EV_BUSY, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "NO ANSWER", 9) == 0)
        fire(c, EV_NO_ANSWER, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "NO CARRIER", 10) == 0)
        fire(c, EV_NO_CARRIER, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "MISSED_CALL", 11) == 0)
        fire(c, EV_MISSED, CALL_DIR_NONE, NULL);
}

static void urc_clcc(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    struct clcc_entry e;

    (void)n;
    if (parse_clcc(lines[0], modem_charset_ucs2(c->modem), &e) == 0 && e.mode == 0)
        clcc_handle(c, &e);
}

static const struct at_urc call_urcs[] = {
    { "RING", 0, urc_ring },
    { "+CRING:", 0, urc_ring },
    { "+CLIP:", 0, urc_clip },
    { "VOICE CALL:", 0, urc_voice_call },
    { "+CLCC:", 0, urc_clcc },
    /* Outcomes that come while no command is in flight. */
    { "NO CARRIER", 0, urc_outcome },
    { "BUSY", 0, urc_outcome },
    { "NO ANSWER", 0, urc_outcome },
    { "MISSED_CALL", 0, urc_outcome },
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
                fire(c, EV_DIAL_OK, CALL_DIR_OUT, r->number);
            else if (r->kind == REQ_ANSWER)
                fire(c, EV_CONNECTED, CALL_DIR_IN, NULL);
            else if (r->kind == REQ_HANGUP)
                fire(c, EV_HANGUP, CALL_DIR_NONE, NULL);
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
        m2m_error_from_at(&err, rsp, NULL);
        break;
    }
    /* ATD refused: no call began. Another command's NO CARRIER/BUSY may be
     * the end of the call that is up. */
    if (!c->freed && r->kind != REQ_DIAL)
        end_by_final(c, rsp->final);
    r->cb(r->ctx, &err);
out:
    free(r);
    maybe_free(c);
}

static void submit(struct call *c, enum req_kind kind, const char *cmd, int timeout_ms,
                   const char *number, call_done_cb cb, void *ctx)
{
    const struct at_cmd_opts o = { .timeout_ms = timeout_ms };
    struct req *r = calloc(1, sizeof(*r));
    int rc;

    if (!r) {
        reject(cb, ctx, "unavailable", "out of memory");
        return;
    }
    *r = (struct req){ .c = c, .kind = kind, .cb = cb, .ctx = ctx };
    if (number)
        snprintf(r->number, sizeof(r->number), "%s", number);
    rc = modem_send(c->modem, cmd, &o, req_done, r);
    if (rc < 0) {
        free(r);
        if (rc == -EAGAIN)
            reject(cb, ctx, "unavailable", "the modem is not ready");
        else if (rc == -EINVAL)
            reject(cb, ctx, "invalid_request", "not a valid command");
        else
            reject(cb, ctx, "busy", "the modem's command queue is full");
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

void call_dial(struct call *c, const char *to, call_done_cb cb, void *ctx)
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
    submit(c, REQ_DIAL, cmd, DIAL_TIMEOUT_MS, to, cb, ctx);
}

void call_answer(struct call *c, call_done_cb cb, void *ctx)
{
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state != CALL_RINGING) {
        reject(cb, ctx, "no_call", "no call is ringing");
        return;
    }
    submit(c, REQ_ANSWER, "ATA", 0, NULL, cb, ctx);
}

void call_hangup(struct call *c, call_done_cb cb, void *ctx)
{
    if (!check_ready(c, cb, ctx))
        return;
    if (c->st.state == CALL_IDLE && !c->dial_in_flight) {
        reject(cb, ctx, "no_call", "there is no call");
        return;
    }
    submit(c, REQ_HANGUP, "AT+CHUP", 0, NULL, cb, ctx);
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
    submit(c, REQ_DTMF, cmd, VTS_TIMEOUT_MS, NULL, cb, ctx);
}

/* --- life cycle -------------------------------------------------------------- */

const struct call_state *call_get_state(const struct call *c)
{
    return c->known ? &c->st : NULL;
}

static void clcc_urc_done(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    if (rsp->final != AT_FINAL_OK && rsp->final != AT_FINAL_CANCELLED)
        log_info("call: AT+CLCC=1 refused; no \"alerting\" state");
}

void call_modem_ready(struct call *c, bool ready)
{
    c->ready = ready;
    if (!ready) {
        /* The module may have rebooted: the next ready's AT+CLCC tells. */
        stop_ringing(c);
        stop_timer(c, &c->poll_timer);
        return;
    }
    /* +CLCC as a URC gives dialing -> alerting; optional (older firmware). */
    modem_send(c->modem, "AT+CLCC=1", NULL, clcc_urc_done, c);
    send_clcc(c);
}

struct call *call_new(struct loop *loop, struct modem *modem, const struct call_opts *opts,
                      const struct call_cbs *cbs, void *ctx)
{
    struct call *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->loop = loop;
    c->modem = modem;
    c->opts = *opts;
    if (c->opts.ring_gap_ms <= 0)
        c->opts.ring_gap_ms = DEFAULT_RING_GAP_MS;
    if (c->opts.poll_ms <= 0)
        c->opts.poll_ms = DEFAULT_POLL_MS;
    if (c->opts.clip_wait_ms <= 0)
        c->opts.clip_wait_ms = DEFAULT_CLIP_WAIT_MS;
    c->cbs = *cbs;
    c->ctx = ctx;
    c->st.duration = -1;
    c->active_ms = -1;
    c->end_duration = -1;
    if (at_chat_add_urcs(modem_chat(modem), call_urcs, sizeof(call_urcs) / sizeof(call_urcs[0]),
                         c) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void maybe_free(struct call *c)
{
    if (c->freed && c->busy_reqs == 0)
        free(c);
}

void call_free(struct call *c)
{
    if (!c)
        return;
    stop_ringing(c);
    stop_timer(c, &c->poll_timer);
    c->freed = true;
    maybe_free(c);
}
