/* Voice call service. See call.h.
 *
 * A7670 quirks the service handles (reference/a76xx-at.md, "Calls"):
 * - ATD<number>; answers OK at once; the outcome comes later as a URC
 *   (VOICE CALL: BEGIN, BUSY, NO ANSWER, NO CARRIER). The chat treats those
 *   three as final results while a command is in flight, so an outcome may
 *   end somebody else's command and never reach our URC table. Hence the
 *   AT+CLCC poll while a call is up: the list tells what the lines did not.
 * - RING repeats about every 6 s with a +CLIP after each; a caller who gives
 *   up may produce MISSED_CALL, NO CARRIER, or just silence. Silence for
 *   ring_gap_ms is checked with AT+CLCC.
 * - AT+CHUP answers OK, then VOICE CALL: END: HHMMSS.
 *
 * This file holds the state machine and the life cycle; what the module
 * says about calls (call_lines.c) and the commands (call_cmd.c) are its
 * siblings', listed in call_int.h. */
#include "modem/call_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"

#define DEFAULT_RING_GAP_MS 8000
#define DEFAULT_POLL_MS 5000
#define DEFAULT_CLIP_WAIT_MS 1000
#define NUMBER_MAX_DIGITS 32

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

void call_stop_timer(struct call *c, uint64_t *id)
{
    if (*id)
        loop_cancel_timer(c->loop, *id);
    *id = 0;
}

void call_announce(struct call *c)
{
    if (!c->known)
        return;     /* the first AT+CLCC announces whatever happened before */
    c->n_announced++;
    if (c->cbs.state)
        c->cbs.state(c->ctx, &c->st);
}

/* dir and number: of the call the event is about (NULL/NONE: keep). */
void call_fire(struct call *c, enum call_ev ev, enum call_dir dir, const char *number)
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
        c->st.playing = false;
        call_stop_ringing(c);
        call_stop_timer(c, &c->poll_timer);
        break;
    case CALL_ACTIVE:
        c->active_ms = loop_now_ms();
        call_stop_ringing(c);
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
        c->st.seq++;
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
        call_arm_poll(c);
    call_announce(c);
}

void call_set_playing(struct call *c, bool playing)
{
    if (c->st.playing == playing || (playing && c->st.state == CALL_IDLE))
        return;
    c->st.playing = playing;
    call_announce(c);
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
        call_stop_ringing(c);
        call_stop_timer(c, &c->poll_timer);
        return;
    }
    /* +CLCC as a URC gives dialing -> alerting; optional (older firmware). */
    modem_send(c->modem, "AT+CLCC=1", NULL, clcc_urc_done, c);
    call_send_clcc(c);
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
    if (at_chat_add_urcs(modem_chat(modem), call_urcs, call_n_urcs, c) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void call_maybe_free(struct call *c)
{
    if (c->freed && c->busy_reqs == 0)
        free(c);
}

void call_free(struct call *c)
{
    if (!c)
        return;
    call_stop_ringing(c);
    call_stop_timer(c, &c->poll_timer);
    c->freed = true;
    call_maybe_free(c);
}
