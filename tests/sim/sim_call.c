/* Voice calls of the simulated A7670 (reference/a76xx-at.md, "Calls").
 *
 * Outgoing: ATD<number>; answers OK at once; the outcome comes later as a
 * URC after answer_ms (`dial-outcome` picks it): VOICE CALL: BEGIN, BUSY,
 * NO ANSWER or NO CARRIER. With AT+CLCC=1 every change of the call also
 * comes as a +CLCC line (stat 2 dialing, 3 alerting half-way, 0 active,
 * 6 disconnected).
 * Incoming (`ring`): RING and, with AT+CLIP=1, +CLIP: "<number>",<type>,,,,
 * <validity> at once and then every ring_ms. A caller who gives up
 * (`ring-stop`) ends it with MISSED_CALL: <time> <number>, as A76XX
 * firmware does; `ring-stop silent` just stops ringing (older firmware).
 * Ending: AT+CHUP/ATH -> OK then VOICE CALL: END: HHMMSS; the far end
 * (`remote-hangup`) -> VOICE CALL: END: HHMMSS then NO CARRIER.
 * A key the far end presses during the call (`dtmf`): +RXDTMF: <key>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define DEFAULT_RING_MS 6000
#define DEFAULT_ANSWER_MS 200

static const char *const outcome_names[] = {
    [SIM_DIAL_ANSWER] = "answer",       [SIM_DIAL_BUSY] = "busy",
    [SIM_DIAL_NO_ANSWER] = "no-answer", [SIM_DIAL_NO_CARRIER] = "no-carrier",
    [SIM_DIAL_ERROR] = "error",
};

static const char *const state_names[] = {
    [SIM_CALL_IDLE] = "idle",         [SIM_CALL_DIALING] = "dialing",
    [SIM_CALL_ALERTING] = "alerting", [SIM_CALL_INCOMING] = "incoming",
    [SIM_CALL_ACTIVE] = "active",
};

/* +CLCC stat of each state; -1: no call. */
static int clcc_stat(enum sim_call_state st)
{
    switch (st) {
    case SIM_CALL_ACTIVE: return 0;
    case SIM_CALL_DIALING: return 2;
    case SIM_CALL_ALERTING: return 3;
    case SIM_CALL_INCOMING: return 4;
    case SIM_CALL_IDLE:
    default: return -1;
    }
}

static int number_type(const char *n)
{
    return n[0] == '+' ? 145 : n[0] ? 129 : 128;
}

static void write_clcc(struct sim *s, int stat, bool urc)
{
    struct sim_call *c = &s->call;
    char line[400], hex[4 * sizeof(c->number) + 1];

    /* The number is a string parameter: UCS-2 hex under AT+CSCS="UCS2". */
    snprintf(line, sizeof(line), "+CLCC: 1,%d,%d,0,0,\"%s\",%d", c->outgoing ? 0 : 1, stat,
             sim_te_str(s, c->number, hex, sizeof(hex)), number_type(c->number));
    if (urc)
        sim_urc(s, "%s", line);
    else
        sim_info(s, "%s", line);
}

static void set_state(struct sim *s, enum sim_call_state st)
{
    struct sim_call *c = &s->call;

    if (c->state == st)
        return;
    sim_log(s, "call: %s -> %s", state_names[c->state], state_names[st]);
    if (c->clcc_urc)
        write_clcc(s, st == SIM_CALL_IDLE ? 6 : clcc_stat(st), true);
    c->state = st;
    if (st == SIM_CALL_ACTIVE)
        c->active_at = sim_now_ms();
    if (st == SIM_CALL_IDLE) {
        sim_timer_stop(s, SIM_TIMER_RING);
        sim_timer_stop(s, SIM_TIMER_CALL);
        sim_audio_call_ended(s);
    }
}

/* VOICE CALL: END: HHMMSS, the time the call was active. */
static void write_end(struct sim *s)
{
    struct sim_call *c = &s->call;
    long secs = c->state == SIM_CALL_ACTIVE ? (long)((sim_now_ms() - c->active_at) / 1000) : 0;

    sim_urc(s, "VOICE CALL: END: %02ld%02ld%02ld", secs / 3600 % 100, secs / 60 % 60, secs % 60);
}

/* A final result sim_final() does not know (NO CARRIER); ATV0: code 3. */
static struct sim_result final_text(struct sim *s, const char *text, int numeric)
{
    if (s->verbose) {
        sim_writes(s, "\r\n");
        sim_writes(s, text);
        sim_writes(s, "\r\n");
    } else {
        char num[8];
        snprintf(num, sizeof(num), "%d\r", numeric);
        sim_writes(s, num);
    }
    s->resp_open = false;
    sim_log(s, "-> %s", text);
    return SIM_RES_PENDING;
}

static void after_ok_fire(struct sim *s)
{
    if (s->call.after_ok[0])
        sim_urc(s, "%s", s->call.after_ok);
    s->call.after_ok[0] = '\0';
}

/* A URC just after this command's OK (the engine runs due timers after
 * the final result). */
static void after_ok(struct sim *s, const char *urc)
{
    snprintf(s->call.after_ok, sizeof(s->call.after_ok), "%s", urc);
    sim_timer_set(s, SIM_TIMER_CALL, 0, after_ok_fire);
}

/* ---- timers ---- */

static void ring_fire(struct sim *s)
{
    struct sim_call *c = &s->call;

    if (c->state != SIM_CALL_INCOMING)
        return;
    sim_urc(s, "RING");
    sim_event(s, "ringing %s", c->number[0] ? c->number : "withheld");
    if (s->clip) {
        char hex[4 * sizeof(c->number) + 1];
        sim_urc(s, "+CLIP: \"%s\",%d,,,,%d", sim_te_str(s, c->number, hex, sizeof(hex)),
                number_type(c->number), c->number[0] ? 0 : 1);
    }
    sim_timer_set(s, SIM_TIMER_RING, c->ring_ms, ring_fire);
}

static void outcome_fire(struct sim *s)
{
    struct sim_call *c = &s->call;

    if (c->state != SIM_CALL_DIALING && c->state != SIM_CALL_ALERTING)
        return;
    switch (c->outcome) {
    case SIM_DIAL_ANSWER:
        set_state(s, SIM_CALL_ACTIVE);
        sim_urc(s, "VOICE CALL: BEGIN");
        break;
    case SIM_DIAL_BUSY:
        set_state(s, SIM_CALL_IDLE);
        sim_urc(s, "BUSY");
        break;
    case SIM_DIAL_NO_ANSWER:
        set_state(s, SIM_CALL_IDLE);
        sim_urc(s, "NO ANSWER");
        break;
    case SIM_DIAL_NO_CARRIER:
    case SIM_DIAL_ERROR:
    default:
        set_state(s, SIM_CALL_IDLE);
        sim_urc(s, "NO CARRIER");
        break;
    }
    c->outcome = SIM_DIAL_ANSWER;   /* `dial-outcome` is for one ATD */
}

static void alerting_fire(struct sim *s)
{
    if (s->call.state != SIM_CALL_DIALING)
        return;
    set_state(s, SIM_CALL_ALERTING);
    sim_timer_set(s, SIM_TIMER_CALL, s->call.answer_ms / 2, outcome_fire);
}

static void dialing_fire(struct sim *s)
{
    /* Just after ATD's OK: the +CLCC stat 2 (with AT+CLCC=1). */
    s->call.state = SIM_CALL_IDLE;
    set_state(s, SIM_CALL_DIALING);
    sim_timer_set(s, SIM_TIMER_CALL, s->call.answer_ms / 2, alerting_fire);
}

/* ---- AT commands ---- */

/* ATD<number>; (the ';' makes it a voice call) */
static struct sim_result cmd_d(struct sim *s, const struct sim_at *at)
{
    struct sim_call *c = &s->call;
    const char *a = at->arg;
    size_t n = strlen(a);

    if (n < 2 || a[n - 1] != ';' || n - 1 >= sizeof(c->number))
        return SIM_RES_ERROR;   /* data calls are not simulated */
    for (size_t i = 0; i + 1 < n; i++)
        if (!strchr("0123456789*#+", a[i]) || (a[i] == '+' && i > 0))
            return SIM_RES_ERROR;
    if (c->state != SIM_CALL_IDLE)
        return SIM_RES_CME(3);
    if (!sim_registered(s))
        return final_text(s, "NO CARRIER", 3);
    if (c->outcome == SIM_DIAL_ERROR) {
        c->outcome = SIM_DIAL_ANSWER;
        return SIM_RES_CME(3);
    }
    c->outgoing = true;
    snprintf(c->number, sizeof(c->number), "%.*s", (int)(n - 1), a);
    sim_event(s, "dial %s", c->number);
    /* The state changes just after the OK, so a +CLCC URC follows it. */
    c->state = SIM_CALL_IDLE;
    sim_timer_set(s, SIM_TIMER_CALL, 0, dialing_fire);
    return SIM_RES_OK;
}

static struct sim_result cmd_a(struct sim *s, const struct sim_at *at)
{
    if (at->arg[0])
        return SIM_RES_ERROR;
    if (s->call.state != SIM_CALL_INCOMING)
        return final_text(s, "NO CARRIER", 3);
    sim_timer_stop(s, SIM_TIMER_RING);
    set_state(s, SIM_CALL_ACTIVE);
    after_ok(s, "VOICE CALL: BEGIN");
    return SIM_RES_OK;
}

static struct sim_result hang_up(struct sim *s)
{
    char end[64];

    if (s->call.state == SIM_CALL_IDLE)
        return SIM_RES_OK;   /* the reference: just OK with no call */
    long secs = s->call.state == SIM_CALL_ACTIVE
                    ? (long)((sim_now_ms() - s->call.active_at) / 1000)
                    : 0;
    snprintf(end, sizeof(end), "VOICE CALL: END: %02ld%02ld%02ld", secs / 3600 % 100,
             secs / 60 % 60, secs % 60);
    sim_event(s, "hangup");
    set_state(s, SIM_CALL_IDLE);
    after_ok(s, end);
    return SIM_RES_OK;
}

static struct sim_result cmd_chup(struct sim *s, const struct sim_at *at)
{
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    return hang_up(s);
}

static struct sim_result cmd_h(struct sim *s, const struct sim_at *at)
{
    if (at->arg[0] && strcmp(at->arg, "0") != 0)
        return SIM_RES_ERROR;
    return hang_up(s);
}

static struct sim_result cmd_clcc(struct sim *s, const struct sim_at *at)
{
    long v;

    switch (at->kind) {
    case SIM_AT_EXEC:
        if (clcc_stat(s->call.state) >= 0)
            write_clcc(s, clcc_stat(s->call.state), false);
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (!sim_parse_long(at->arg, 0, 1, &v))
            return SIM_RES_ERROR;
        s->call.clcc_urc = v == 1;
        return SIM_RES_OK;
    case SIM_AT_QUERY:
        sim_info(s, "+CLCC: %d", s->call.clcc_urc ? 1 : 0);
        return SIM_RES_OK;
    case SIM_AT_TEST:
    default:
        sim_info(s, "+CLCC: (0-1)");
        return SIM_RES_OK;
    }
}

/* AT+VTS="<digits>" (also unquoted), at most 32 of 0-9 * # A-D. */
static struct sim_result cmd_vts(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t n;

    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 1)
        return SIM_RES_ERROR;
    n = strlen(p.v[0]);
    if (n < 1 || n > 32 || strspn(p.v[0], "0123456789*#ABCDabcd") != n)
        return SIM_RES_CME(50);
    if (s->call.state != SIM_CALL_ACTIVE)
        return SIM_RES_CME(3);
    sim_event(s, "dtmf %s", p.v[0]);
    return SIM_RES_OK;
}

const struct sim_cmd sim_call_cmds[] = {
    {"D", true, SIM_F_CARD, cmd_d},
    {"A", true, 0, cmd_a},
    {"H", true, 0, cmd_h},
    {"+CHUP", false, 0, cmd_chup},
    {"+CLCC", false, 0, cmd_clcc},
    {"+VTS", false, 0, cmd_vts},
    {NULL, false, 0, NULL},
};

/* ---- control ---- */

static bool plugged(struct sim *s)
{
    if (s->master >= 0 && s->phase == SIM_READY)
        return true;
    sim_ctl_error(s, "unplugged or booting");
    return false;
}

/* ring <number> | ring withheld */
static void ctl_ring(struct sim *s, char *args)
{
    struct sim_call *c = &s->call;
    size_t n = strlen(args);

    if (!plugged(s))
        return;
    if (c->state != SIM_CALL_IDLE) {
        sim_ctl_error(s, "a call is %s", state_names[c->state]);
        return;
    }
    if (n == 0 || n >= sizeof(c->number) ||
        (strcmp(args, "withheld") != 0 && strspn(args, "+0123456789") != n)) {
        sim_ctl_error(s, "usage: ring <number>|withheld");
        return;
    }
    c->outgoing = false;
    snprintf(c->number, sizeof(c->number), "%s", strcmp(args, "withheld") == 0 ? "" : args);
    set_state(s, SIM_CALL_INCOMING);
    ring_fire(s);
    sim_ctl_done(s);
}

/* ring-stop [silent]: the caller gives up before anybody answered. */
static void ctl_ring_stop(struct sim *s, char *args)
{
    struct sim_call *c = &s->call;
    char when[16];
    time_t now = time(NULL);
    struct tm tm;

    if (!plugged(s))
        return;
    if (c->state != SIM_CALL_INCOMING) {
        sim_ctl_error(s, "not ringing");
        return;
    }
    set_state(s, SIM_CALL_IDLE);
    if (strcmp(args, "silent") != 0) {
        localtime_r(&now, &tm);
        strftime(when, sizeof(when), "%I:%M%p", &tm);
        sim_urc(s, "MISSED_CALL: %s %s", when, c->number);
    }
    sim_ctl_done(s);
}

/* remote-hangup: the far end ends the call (any state but idle). */
static void ctl_remote_hangup(struct sim *s, char *args)
{
    struct sim_call *c = &s->call;

    (void)args;
    if (!plugged(s))
        return;
    if (c->state == SIM_CALL_IDLE) {
        sim_ctl_error(s, "no call");
        return;
    }
    write_end(s);
    set_state(s, SIM_CALL_IDLE);
    sim_urc(s, "NO CARRIER");
    sim_ctl_done(s);
}

/* dtmf <key>: the far end presses a key. Only while the call is up: the
 * tones travel on the call's audio, and the module hears them only then. */
static void ctl_dtmf(struct sim *s, char *args)
{
    if (!plugged(s))
        return;
    if (strlen(args) != 1 || !strchr("0123456789*#ABCD", args[0])) {
        sim_ctl_error(s, "usage: dtmf 0-9|*|#|A-D");
        return;
    }
    if (s->call.state != SIM_CALL_ACTIVE) {
        sim_ctl_error(s, "no active call");
        return;
    }
    sim_urc(s, "+RXDTMF: %s", args);
    sim_ctl_done(s);
}

/* dial-outcome <outcome>: what the next ATD leads to. */
static void ctl_dial_outcome(struct sim *s, char *args)
{
    for (size_t i = 0; i < sizeof(outcome_names) / sizeof(outcome_names[0]); i++)
        if (strcmp(args, outcome_names[i]) == 0) {
            s->call.outcome = (enum sim_dial_outcome)i;
            sim_ctl_done(s);
            return;
        }
    sim_ctl_error(s, "usage: dial-outcome answer|busy|no-answer|no-carrier|error");
}

static void ctl_ms(struct sim *s, char *args, int *out, const char *name)
{
    long v;

    if (!sim_parse_long(args, 1, 3600 * 1000, &v)) {
        sim_ctl_error(s, "usage: %s <ms>", name);
        return;
    }
    *out = (int)v;
    sim_ctl_done(s);
}

static void ctl_ring_ms(struct sim *s, char *args)
{
    ctl_ms(s, args, &s->call.ring_ms, "ring-ms");
}

static void ctl_answer_ms(struct sim *s, char *args)
{
    ctl_ms(s, args, &s->call.answer_ms, "answer-ms");
}

/* call: `ok <state> <in|out|-> <number|->` */
static void ctl_call(struct sim *s, char *args)
{
    const struct sim_call *c = &s->call;

    (void)args;
    sim_ctl_ok(s, "%s %s %s", state_names[c->state],
               c->state == SIM_CALL_IDLE ? "-" : c->outgoing ? "out" : "in",
               c->state != SIM_CALL_IDLE && c->number[0] ? c->number : "-");
}

const struct sim_ctl sim_call_ctls[] = {
    {"ring", ctl_ring},
    {"ring-stop", ctl_ring_stop},
    {"remote-hangup", ctl_remote_hangup},
    {"dtmf", ctl_dtmf},
    {"dial-outcome", ctl_dial_outcome},
    {"ring-ms", ctl_ring_ms},
    {"answer-ms", ctl_answer_ms},
    {"call", ctl_call},
    {NULL, NULL},
};

void sim_call_reset(struct sim *s)
{
    struct sim_call *c = &s->call;

    c->state = SIM_CALL_IDLE;
    c->clcc_urc = false;
    c->after_ok[0] = '\0';
    if (c->ring_ms <= 0)
        c->ring_ms = DEFAULT_RING_MS;
    if (c->answer_ms <= 0)
        c->answer_ms = DEFAULT_ANSWER_MS;
}
