/* What the module says about calls (see call_int.h for the other files):
 * the AT+CLCC list, asked for at start, while a call is up and when the
 * RINGs stop, and the +CLCC URC; RING/+CRING and +CLIP with the timers
 * that wait for the caller's number and notice the ringing stopped; VOICE
 * CALL: BEGIN/END and the outcome lines (BUSY, NO ANSWER, NO CARRIER,
 * MISSED_CALL). Each becomes an event for call_fire() (call.c). */
#include "modem/call_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/utf8.h"
#include "modem/modem.h"

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
        call_fire(c, EV_CONNECTED, dir, e->number);
        break;
    case 2:
        call_fire(c, EV_DIALING, dir, e->number);
        break;
    case 3:
        call_fire(c, EV_ALERTING, dir, e->number);
        break;
    case 4:
    case 5:
        call_fire(c, EV_INCOMING, dir, e->number);
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

void call_end_by_final(struct call *c, enum at_final f)
{
    /* Our own command may have taken the outcome line as its final result. */
    switch (f) {
    case AT_FINAL_BUSY: call_fire(c, EV_BUSY, CALL_DIR_NONE, NULL); break;
    case AT_FINAL_NO_ANSWER: call_fire(c, EV_NO_ANSWER, CALL_DIR_NONE, NULL); break;
    case AT_FINAL_NO_CARRIER: call_fire(c, EV_NO_CARRIER, CALL_DIR_NONE, NULL); break;
    default: break;
    }
}

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
        call_maybe_free(c);
        return;
    }
    if (rsp->final == AT_FINAL_CANCELLED)
        return;
    /* Even a module without AT+CLCC has a state to show: idle. */
    c->known = true;
    if (rsp->final != AT_FINAL_OK) {
        call_end_by_final(c, rsp->final);
        if (rsp->final != AT_FINAL_NO_CARRIER)
            log_warn("call: AT+CLCC: %s", rsp->text ? rsp->text : at_final_name(rsp->final));
        if (c->st.state == CALL_RINGING)
            call_fire(c, EV_MISSED, CALL_DIR_NONE, NULL);
    } else {
        struct clcc_entry pick = {0};
        bool only_incoming = true;

        for (size_t i = 0; i < rsp->n_lines; i++) {
            struct clcc_entry e;
            if (strncmp(rsp->lines[i], "+CLCC:", 6) != 0 ||
                parse_clcc(rsp->lines[i], modem_charset_ucs2(c->modem), &e) < 0 || e.mode != 0)
                continue;     /* data and fax calls are not ours */
            if (!any)
                pick = e;     /* one voice call at a time: the first */
            any = true;
            only_incoming = only_incoming && (e.stat == 4 || e.stat == 5);
        }
        /* Nothing but a call ringing in: the one we knew as up ended while
         * nobody listened (a lost link), and the list shows the next. */
        if (!any || (only_incoming && c->st.state != CALL_IDLE && c->st.state != CALL_RINGING))
            call_fire(c, EV_GONE, CALL_DIR_NONE, NULL);
        if (any) {
            if (first && c->st.state == CALL_IDLE)
                log_info("call: a call is up at start (+CLCC stat %d)", pick.stat);
            clcc_handle(c, &pick);
        }
    }
    /* The first state after a (re)start, also when it did not change
     * (idle; or ringing that began while this AT+CLCC was in flight). */
    if (first && c->n_announced == announced) {
        if (c->st.state == CALL_IDLE)
            c->st.since = time(NULL);
        call_announce(c);
    }
}

void call_send_clcc(struct call *c)
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
    call_send_clcc(c);
    return c->opts.poll_ms;
}

void call_arm_poll(struct call *c)
{
    if (!c->poll_timer)
        loop_add_timer(c->loop, c->opts.poll_ms, poll_fired, c, &c->poll_timer);
}

/* --- incoming ---------------------------------------------------------------- */

void call_stop_ringing(struct call *c)
{
    call_stop_timer(c, &c->ring_timer);
    call_stop_timer(c, &c->clip_timer);
}

static int64_t ring_gap_fired(void *ctx)
{
    struct call *c = ctx;

    c->ring_timer = 0;
    /* No RING for a while: the caller gave up, or the RINGs got lost. */
    if (c->st.state == CALL_RINGING)
        call_send_clcc(c);
    return 0;
}

static void ring_alive(struct call *c)
{
    call_stop_timer(c, &c->ring_timer);
    loop_add_timer(c->loop, c->opts.ring_gap_ms, ring_gap_fired, c, &c->ring_timer);
}

static void ring_start(struct call *c, const char *from)
{
    call_stop_timer(c, &c->clip_timer);
    if (c->st.state != CALL_IDLE && c->st.state != CALL_RINGING)
        return;       /* a waiting call during ours: not handled */
    call_fire(c, EV_INCOMING, CALL_DIR_IN, from);
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
        call_fire(c, EV_CONNECTED, CALL_DIR_NONE, NULL);
    } else if (strncmp(p, "END", 3) == 0) {
        /* VOICE CALL: END: HHMMSS, the time the call was up. */
        unsigned h, m, s;
        const char *t = strchr(p, ':');
        if (t && sscanf(t + 1, " %2u%2u%2u", &h, &m, &s) == 3 && m < 60 && s < 60)
            c->end_duration = (int)(h * 3600 + m * 60 + s);
        call_fire(c, EV_HANGUP, CALL_DIR_NONE, NULL);
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
        call_fire(c, EV_BUSY, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "NO ANSWER", 9) == 0)
        call_fire(c, EV_NO_ANSWER, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "NO CARRIER", 10) == 0)
        call_fire(c, EV_NO_CARRIER, CALL_DIR_NONE, NULL);
    else if (strncmp(l, "MISSED_CALL", 11) == 0)
        call_fire(c, EV_MISSED, CALL_DIR_NONE, NULL);
}

static void urc_clcc(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    struct clcc_entry e;

    (void)n;
    if (parse_clcc(lines[0], modem_charset_ucs2(c->modem), &e) == 0 && e.mode == 0)
        clcc_handle(c, &e);
}

/* +RXDTMF: <key>, one tone the far end sent. Only during an active call:
 * before the answer nobody is there to press a key (a tone in the early
 * audio of a dialing call is the network's, not an acknowledgement), and
 * after the hang-up a late one would acknowledge the next alarm. */
int call_parse_rxdtmf(const char *line, char *key)
{
    struct at_result_iter it;
    char k[2];

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+RXDTMF:") || at_result_next_unquoted(&it, k, sizeof(k)) < 0 ||
        !at_result_at_end(&it) || !k[0] || !strchr("0123456789*#ABCD", k[0]))
        return -EINVAL;
    *key = k[0];
    return 0;
}

static void urc_rxdtmf(void *ctx, const char *const *lines, size_t n)
{
    struct call *c = ctx;
    char key;

    (void)n;
    if (call_parse_rxdtmf(lines[0], &key) < 0) {
        log_warn("call: ignored, not one DTMF key: %s", lines[0]);
        return;
    }
    if (c->st.state != CALL_ACTIVE) {
        log_info("call: DTMF %c while %s ignored", key, call_st_name(c->st.state));
        return;
    }
    if (c->cbs.dtmf)
        c->cbs.dtmf(c->ctx, key);
}

const struct at_urc call_urcs[] = {
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
    { "+RXDTMF:", 0, urc_rxdtmf },
};
const size_t call_n_urcs = sizeof(call_urcs) / sizeof(call_urcs[0]);
