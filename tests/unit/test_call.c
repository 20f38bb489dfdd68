/* modem/call: the call service in isolation, through link seams.
 *
 * This file defines the functions the service's files (call.c,
 * call_lines.c, call_cmd.c) call on their neighbours:
 *   modem.o  modem_send, modem_chat, modem_charset_ucs2
 *   chat.o   at_chat_add_urcs, at_final_name
 *   loop.o   loop_add_timer, loop_cancel_timer, loop_now_ms
 * so the linker never pulls modem.o, chat.o or loop.o out of libm2m.a
 * (see tests/unit/test_sms.c for why every symbol of those objects that
 * the call*.o need must be here).
 *
 * The tests are scripts: URC lines as the module sends them (from the
 * reference's transcripts), completions of the commands the service wrote
 * (oldest first, as the chat does), clock steps, and the owner's requests.
 * Each script lists the states published on B/call/state, the ring events,
 * the commands written, the results and the keys the far end pressed
 * (B/call/dtmf/received), in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at/chat.h"
#include "core/loop.h"
#include "modem/call.h"
#include "modem/modem.h"
#include "mqtt/json.h"

#define MAX_CMDS 64
#define MAX_TIMERS 16
#define MAX_OUT 32
#define NUM "+491701234567"

static char fake_loop_obj, fake_modem_obj, fake_chat_obj;
#define FAKE_LOOP ((struct loop *)(void *)&fake_loop_obj)
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)
#define FAKE_CHAT ((struct at_chat *)(void *)&fake_chat_obj)

struct cmd_rec {
    char cmd[96];
    at_done_cb cb;
    void *ctx;
};

struct fake_timer {
    bool live;
    uint64_t id;
    int64_t due;
    loop_timer_cb cb;
    void *ctx;
};

static struct {
    bool ready;
    bool ucs2;                 /* the modem's TE character set flag */
    struct cmd_rec cmds[MAX_CMDS];
    size_t n_cmds, n_completed;
    const struct at_urc *urcs;
    size_t n_urcs;
    void *urc_ctx;
    int64_t now;
    struct fake_timer timers[MAX_TIMERS];
    uint64_t next_timer_id;
    char states[MAX_OUT][128];
    size_t n_states;
    char rings[MAX_OUT][64];
    size_t n_rings;
    char results[MAX_OUT][64];
    size_t n_results;
    char keys[MAX_OUT][2];
    size_t n_keys;
    char message[200];            /* the last error's message */
    struct call *call;
    size_t n_written;          /* dials handed to the chat (call_dial's hook) */
} F;

/* --- link seams ---------------------------------------------------------------- */

struct at_chat *modem_chat(struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return FAKE_CHAT;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    struct cmd_rec *c;

    assert_ptr_equal(m, FAKE_MODEM);
    if (!F.ready)
        return -EAGAIN;
    /* The chat would refuse these; a service must never try. */
    assert_null(strpbrk(cmd, "\r\n\x1a\x1b"));
    assert_true(F.n_cmds < MAX_CMDS);
    c = &F.cmds[F.n_cmds++];
    snprintf(c->cmd, sizeof(c->cmd), "%s", cmd);
    c->cb = cb;
    c->ctx = ctx;
    if (opts && opts->written)   /* the chat writes it at once */
        opts->written(ctx);
    return 0;
}

bool modem_charset_ucs2(const struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return F.ucs2;
}

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    assert_ptr_equal(chat, FAKE_CHAT);
    F.urcs = table;
    F.n_urcs = n;
    F.urc_ctx = ctx;
    return 0;
}

const char *at_final_name(enum at_final f)
{
    static const char *const names[] = {
        "OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER",
        "BUSY", "NO ANSWER", "NO DIALTONE", "TIMEOUT", "CANCELLED",
    };
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

int64_t loop_now_ms(void)
{
    return F.now;
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        struct fake_timer *t = &F.timers[i];
        if (t->live)
            continue;
        *t = (struct fake_timer){ true, ++F.next_timer_id, F.now + (delay_ms < 0 ? 0 : delay_ms),
                                  cb, ctx };
        if (id)
            *id = t->id;
        return 0;
    }
    fail_msg("fake loop: too many timers");
    return -ENOMEM;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    for (size_t i = 0; i < MAX_TIMERS; i++)
        if (F.timers[i].live && F.timers[i].id == id && id != 0)
            F.timers[i].live = false;
}

/* Fires what is due, earliest first, until nothing is (ms at a time). */
static void advance(int64_t ms)
{
    int64_t end = F.now + ms;

    for (;;) {
        struct fake_timer *next = NULL;
        for (size_t i = 0; i < MAX_TIMERS; i++) {
            struct fake_timer *t = &F.timers[i];
            if (t->live && t->due <= end &&
                (!next || t->due < next->due || (t->due == next->due && t->id < next->id)))
                next = t;
        }
        if (!next)
            break;
        F.now = next->due;
        uint64_t id = next->id;
        int64_t again = next->cb(next->ctx);
        if (next->live && next->id == id) {
            if (again > 0)
                next->due = F.now + again;
            else
                next->live = false;
        }
    }
    F.now = end;
}

/* --- the owner ----------------------------------------------------------------- */

static void on_state(void *ctx, const struct call_state *st)
{
    char dur[16] = "-";

    assert_ptr_equal(ctx, &F);
    assert_true(F.n_states < MAX_OUT);
    if (st->state == CALL_IDLE && st->duration >= 0)
        snprintf(dur, sizeof(dur), "%d", st->duration);
    snprintf(F.states[F.n_states++], sizeof(F.states[0]), "%s %s %s %s %s",
             call_st_name(st->state), call_dir_name(st->dir) ? call_dir_name(st->dir) : "-",
             st->number[0] ? st->number : "-",
             call_end_name(st->ended) ? call_end_name(st->ended) : "-", dur);
    /* Every published state must serialise. */
    char *j = json_call_state(st);
    assert_non_null(j);
    free(j);
}

static void on_ring(void *ctx, const char *from)
{
    assert_ptr_equal(ctx, &F);
    assert_true(F.n_rings < MAX_OUT);
    snprintf(F.rings[F.n_rings++], sizeof(F.rings[0]), "%s", from ? from : "null");
}

static void on_dtmf(void *ctx, char key)
{
    assert_ptr_equal(ctx, &F);
    assert_true(F.n_keys < MAX_OUT);
    F.keys[F.n_keys][0] = key;
    F.keys[F.n_keys++][1] = '\0';
}

static void on_written(void *ctx)
{
    assert_ptr_equal(ctx, &F);
    F.n_written++;
}

static void on_done(void *ctx, const struct m2m_error *err)
{
    assert_ptr_equal(ctx, &F);
    assert_true(F.n_results < MAX_OUT);
    if (err)
        snprintf(F.message, sizeof(F.message), "%s", err->message);
    if (!err)
        snprintf(F.results[F.n_results++], sizeof(F.results[0]), "ok");
    else if (err->cme >= 0)
        snprintf(F.results[F.n_results++], sizeof(F.results[0]), "%s:%d", err->code, err->cme);
    else
        snprintf(F.results[F.n_results++], sizeof(F.results[0]), "%s", err->code);
}

/* "*" is E.164 numbers only: national numbers need "0*". */
static char *const allow_all[] = { "*", "0*" };
static char *const allow_de[] = { "+49*", "112" };

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    F.now = 1000000;
    const struct call_opts o = { .allow_to = allow_all, .n_allow_to = 2 };
    const struct call_cbs cb = { .state = on_state, .ring = on_ring, .dtmf = on_dtmf };
    F.call = call_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, &F);
    assert_non_null(F.call);
    assert_int_equal(F.n_urcs, 10);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    call_free(F.call);
    return 0;
}

/* --- the script interpreter ------------------------------------------------- */

/* A URC line through the table, first matching prefix wins (as the chat). */
static void urc(const char *line)
{
    for (size_t i = 0; i < F.n_urcs; i++)
        if (strncmp(line, F.urcs[i].prefix, strlen(F.urcs[i].prefix)) == 0) {
            const char *lines[1] = { line };
            F.urcs[i].fn(F.urc_ctx, lines, 1);
            return;
        }
    fail_msg("no URC entry for '%s'", line);
}

/* "line|line|FINAL": info lines, then OK, ERROR, BUSY, NO CARRIER,
 * NO ANSWER, TIMEOUT, CANCELLED or "CME <n>". */
static void complete(const char *spec)
{
    char buf[512], *lines[8], *save = NULL;
    size_t n = 0;
    struct at_response rsp = { .code = -1 };
    static const struct { const char *name; enum at_final f; } finals[] = {
        { "OK", AT_FINAL_OK }, { "ERROR", AT_FINAL_ERROR }, { "BUSY", AT_FINAL_BUSY },
        { "NO CARRIER", AT_FINAL_NO_CARRIER }, { "NO ANSWER", AT_FINAL_NO_ANSWER },
        { "TIMEOUT", AT_FINAL_TIMEOUT }, { "CANCELLED", AT_FINAL_CANCELLED },
    };

    assert_true(F.n_completed < F.n_cmds);
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *p = strtok_r(buf, "|", &save); p && n < 8; p = strtok_r(NULL, "|", &save))
        lines[n++] = p;
    assert_true(n >= 1);
    const char *fin = lines[--n];
    lines[n] = NULL;
    if (strncmp(fin, "CME ", 4) == 0) {
        rsp.final = AT_FINAL_CME;
        rsp.code = atoi(fin + 4);
    } else {
        size_t i;
        for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
            if (strcmp(fin, finals[i].name) == 0)
                break;
        assert_true(i < sizeof(finals) / sizeof(finals[0]));
        rsp.final = finals[i].f;
    }
    rsp.lines = (const char *const *)lines;
    rsp.n_lines = n;
    struct cmd_rec *c = &F.cmds[F.n_completed++];
    if (c->cb)
        c->cb(c->ctx, &rsp);
}

struct script {
    const char *name;
    const char *steps[40];     /* "<op> <arg>", see run() */
    const char *states[12];    /* "state dir number ended duration" */
    const char *rings[4];
    const char *cmds[16];      /* every command written, in order */
    const char *results[16];
    const char *keys[8];       /* given to cbs.dtmf */
};

/* Ops: "U <line>" URC; "C <spec>" completes the oldest command; "T <ms>"
 * clock; "R" modem ready (AT+CLCC=1, AT+CLCC); "D <to>" dial; "A" answer;
 * "H" hang up; "M <digits>" DTMF; "N" modem not ready; "8" the module's
 * TE character set is UCS2 from now on (a USSD request runs). */
static void run(const struct script *s)
{
    size_t n;

    for (size_t i = 0; s->steps[i]; i++) {
        const char *st = s->steps[i];
        const char *arg = st[1] ? st + 2 : "";
        switch (st[0]) {
        case 'U': urc(arg); break;
        case 'C': complete(arg); break;
        case 'T': advance(atoi(arg)); break;
        case 'R': F.ready = true; call_modem_ready(F.call, true); break;
        case 'N': F.ready = false; call_modem_ready(F.call, false); break;
        case '8': F.ucs2 = true; break;
        case 'D': call_dial(F.call, arg, NULL, on_done, &F); break;
        case 'A': call_answer(F.call, on_done, &F); break;
        case 'H': call_hangup(F.call, on_done, &F); break;
        case 'M': call_dtmf(F.call, arg, on_done, &F); break;
        default: fail_msg("%s: bad step '%s'", s->name, st);
        }
    }
    for (n = 0; s->states[n]; n++) {
        if (n >= F.n_states)
            fail_msg("%s: state %zu missing, want '%s'", s->name, n, s->states[n]);
        if (strcmp(F.states[n], s->states[n]) != 0)
            fail_msg("%s: state %zu is '%s', want '%s'", s->name, n, F.states[n], s->states[n]);
    }
    if (n != F.n_states)
        fail_msg("%s: %zu states, want %zu (extra: '%s')", s->name, F.n_states, n, F.states[n]);
    for (n = 0; s->rings[n]; n++)
        if (n >= F.n_rings || strcmp(F.rings[n], s->rings[n]) != 0)
            fail_msg("%s: ring %zu is '%s', want '%s'", s->name, n,
                     n < F.n_rings ? F.rings[n] : "(none)", s->rings[n]);
    if (n != F.n_rings)
        fail_msg("%s: %zu rings, want %zu", s->name, F.n_rings, n);
    for (n = 0; s->cmds[n]; n++)
        if (n >= F.n_cmds || strcmp(F.cmds[n].cmd, s->cmds[n]) != 0)
            fail_msg("%s: command %zu is '%s', want '%s'", s->name, n,
                     n < F.n_cmds ? F.cmds[n].cmd : "(none)", s->cmds[n]);
    if (n != F.n_cmds)
        fail_msg("%s: %zu commands, want %zu (extra: '%s')", s->name, F.n_cmds, n,
                 F.cmds[n].cmd);
    for (n = 0; s->results[n]; n++)
        if (n >= F.n_results || strcmp(F.results[n], s->results[n]) != 0)
            fail_msg("%s: result %zu is '%s', want '%s'", s->name, n,
                     n < F.n_results ? F.results[n] : "(none)", s->results[n]);
    if (n != F.n_results)
        fail_msg("%s: %zu results, want %zu", s->name, F.n_results, n);
    for (n = 0; s->keys[n]; n++)
        if (n >= F.n_keys || strcmp(F.keys[n], s->keys[n]) != 0)
            fail_msg("%s: key %zu is '%s', want '%s'", s->name, n,
                     n < F.n_keys ? F.keys[n] : "(none)", s->keys[n]);
    if (n != F.n_keys)
        fail_msg("%s: %zu keys, want %zu (extra: '%s')", s->name, F.n_keys, n, F.keys[n]);
}

/* Modem ready with no call: AT+CLCC=1 then an empty AT+CLCC. */
#define READY_IDLE "R", "C OK", "C OK"
#define READY_CMDS "AT+CLCC=1", "AT+CLCC"
#define IDLE0 "idle - - - -"
#define CLIP "+CLIP: \"" NUM "\",145,,,,0"
#define CLCC_OUT(stat) "+CLCC: 1,0," #stat ",0,0,\"" NUM "\",145"
#define CLCC_IN(stat) "+CLCC: 1,1," #stat ",0,0,\"" NUM "\",145"
/* NUM as the module prints it under AT+CSCS="UCS2". */
#define NUM_UCS2 "002B003400390031003700300031003200330034003500360037"

static const struct script scripts[] = {
    { "ready, no call: idle published once",
      { READY_IDLE, NULL }, { IDLE0, NULL }, { NULL }, { READY_CMDS, NULL }, { NULL } },
    { "answered, then local hang-up (VOICE CALL: END after OK changes nothing)",
      { READY_IDLE, "D " NUM, "C OK", "U " CLCC_OUT(2), "U " CLCC_OUT(3),
        "U VOICE CALL: BEGIN", "T 12000", "C " CLCC_OUT(0) "|OK", "H", "C OK",
        "U VOICE CALL: END: 000012", "U NO CARRIER", "T 20000", NULL },
      { IDLE0, "dialing out " NUM " - -", "alerting out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 12", NULL },
      { NULL },
      { READY_CMDS, "ATD" NUM ";", "AT+CLCC", "AT+CHUP", NULL },
      { "ok", "ok", NULL } },
    { "busy after OK",
      { READY_IDLE, "D " NUM, "C OK", "U BUSY", NULL },
      { IDLE0, "dialing out " NUM " - -", "idle out " NUM " busy 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL } },
    { "no answer",
      { READY_IDLE, "D " NUM, "C OK", "U " CLCC_OUT(3), "U NO ANSWER", NULL },
      { IDLE0, "dialing out " NUM " - -", "alerting out " NUM " - -",
        "idle out " NUM " no_answer 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL } },
    { "no carrier",
      { READY_IDLE, "D " NUM, "C OK", "U NO CARRIER", NULL },
      { IDLE0, "dialing out " NUM " - -", "idle out " NUM " no_carrier 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL } },
    { "+CLCC stat 6 waits for the line that says why",
      { READY_IDLE, "D " NUM, "C OK", "U " CLCC_OUT(6), "U BUSY", NULL },
      { IDLE0, "dialing out " NUM " - -", "idle out " NUM " busy 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL } },
    { "remote hang-up: END carries the duration, NO CARRIER after it changes nothing",
      { READY_IDLE, "D " NUM, "C OK", "U VOICE CALL: BEGIN", "U VOICE CALL: END: 000107",
        "U NO CARRIER", NULL },
      { IDLE0, "dialing out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 67", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL } },
    { "outcome swallowed by our poll's final result",
      { READY_IDLE, "D " NUM, "C OK", "T 5000", "C BUSY", NULL },
      { IDLE0, "dialing out " NUM " - -", "idle out " NUM " busy 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", "AT+CLCC", NULL }, { "ok", NULL } },
    { "outcome lost: the poll finds no call",
      { READY_IDLE, "D " NUM, "C OK", "U VOICE CALL: BEGIN", "T 5000", "C OK", "T 60000", NULL },
      { IDLE0, "dialing out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 5", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", "AT+CLCC", NULL }, { "ok", NULL } },
    { "ATD refused: BUSY, +CME ERROR, ERROR; no state change",
      { READY_IDLE, "D " NUM, "C BUSY", "D " NUM, "C CME 30", "D " NUM, "C ERROR",
        "D " NUM, "C TIMEOUT", NULL },
      { IDLE0, NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", "ATD" NUM ";", "ATD" NUM ";", "ATD" NUM ";", NULL },
      { "busy", "modem_error:30", "modem_error", "timeout", NULL } },
    { "incoming, answered: one ring event for many RINGs",
      { READY_IDLE, "U RING", "U " CLIP, "T 6000", "U RING", "U " CLIP, "A", "C OK",
        "U VOICE CALL: BEGIN", "M 12#A", "C OK", "H", "C OK", NULL },
      { IDLE0, "ringing in " NUM " - -", "active in " NUM " - -", "idle in " NUM " hangup 0",
        NULL },
      { NUM, NULL },
      { READY_CMDS, "ATA", "AT+VTS=\"12#A\"", "AT+CHUP", NULL },
      { "ok", "ok", "ok", NULL } },
    { "UCS2 character set: +CLIP and +CLCC numbers come as hex and are decoded",
      { READY_IDLE, "8", "U RING", "U +CLIP: \"" NUM_UCS2 "\",145,,,,0", "A", "C OK",
        "U +CLCC: 1,1,0,0,0,\"" NUM_UCS2 "\",145", NULL },
      { IDLE0, "ringing in " NUM " - -", "active in " NUM " - -", NULL },
      { NUM, NULL },
      { READY_CMDS, "ATA", NULL },
      { "ok", NULL } },
    { "UCS2 flag, but the module printed the number as text: kept",
      { READY_IDLE, "8", "U RING", "U " CLIP, NULL },
      { IDLE0, "ringing in " NUM " - -", NULL }, { NUM, NULL }, { READY_CMDS, NULL }, { NULL } },
    { "withheld caller: ring from null",
      { READY_IDLE, "U RING", "U +CLIP: \"\",128,,,,1", NULL },
      { IDLE0, "ringing in - - -", NULL }, { "null", NULL }, { READY_CMDS, NULL }, { NULL } },
    { "+CRING: VOICE without +CLIP: ring event after the wait",
      { READY_IDLE, "U +CRING: VOICE", "T 999", "U +CRING: VOICE", "T 1", NULL },
      { IDLE0, "ringing in - - -", NULL }, { "null", NULL }, { READY_CMDS, NULL }, { NULL } },
    { "caller gives up: MISSED_CALL",
      { READY_IDLE, "U RING", "U " CLIP, "U MISSED_CALL: 10:15AM " NUM, "T 30000", NULL },
      { IDLE0, "ringing in " NUM " - -", "idle in " NUM " no_answer 0", NULL }, { NUM, NULL },
      { READY_CMDS, NULL }, { NULL } },
    { "caller gives up: NO CARRIER while ringing",
      { READY_IDLE, "U RING", "U " CLIP, "U NO CARRIER", NULL },
      { IDLE0, "ringing in " NUM " - -", "idle in " NUM " no_answer 0", NULL }, { NUM, NULL },
      { READY_CMDS, NULL }, { NULL } },
    { "caller gives up silently: AT+CLCC after the gap",
      { READY_IDLE, "U RING", "U " CLIP, "T 6000", "U RING", "U " CLIP, "T 7999", "T 1",
        "C " CLCC_IN(4) "|OK", "T 8000", "C OK", NULL },
      { IDLE0, "ringing in " NUM " - -", "idle in " NUM " no_answer 0", NULL }, { NUM, NULL },
      { READY_CMDS, "AT+CLCC", "AT+CLCC", NULL }, { NULL } },
    { "ATA too late: no_call, and the call is over",
      { READY_IDLE, "U RING", "U " CLIP, "A", "C NO CARRIER", NULL },
      { IDLE0, "ringing in " NUM " - -", "idle in " NUM " no_answer 0", NULL }, { NUM, NULL },
      { READY_CMDS, "ATA", NULL }, { "no_call", NULL } },
    { "restart mid-call: AT+CLCC recovers active",
      { "R", "C OK", "C " CLCC_OUT(0) "|OK", NULL },
      { "active out " NUM " - -", NULL }, { NULL }, { READY_CMDS, NULL }, { NULL } },
    { "restart while ringing: ringing and one ring event",
      { "R", "C OK", "C " CLCC_IN(4) "|OK", "U RING", "U " CLIP, NULL },
      { "ringing in " NUM " - -", NULL }, { NUM, NULL }, { READY_CMDS, NULL }, { NULL } },
    { "a ring while the first AT+CLCC is in flight: ringing published once it answers",
      { "R", "U RING", "U " CLIP, "C OK", "C " CLCC_IN(4) "|OK", "U RING", NULL },
      { "ringing in " NUM " - -", NULL }, { NUM, NULL }, { READY_CMDS, NULL }, { NULL } },
    { "module rebooted during a call: the next ready ends it",
      { READY_IDLE, "D " NUM, "C OK", "U VOICE CALL: BEGIN", "N", "R", "C OK", "C OK", NULL },
      { IDLE0, "dialing out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 0", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", READY_CMDS, NULL }, { "ok", NULL } },
    { "link lost during a call: the next ready lists only a new incoming one, ours ended",
      { READY_IDLE, "D " NUM, "C OK", "U VOICE CALL: BEGIN", "N", "R", "C OK",
        "C " CLCC_IN(4) "|OK", NULL },
      { IDLE0, "dialing out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 0", "ringing in " NUM " - -", NULL }, { NUM, NULL },
      { READY_CMDS, "ATD" NUM ";", READY_CMDS, NULL }, { "ok", NULL } },
    { "AT+CLCC unsupported: idle all the same",
      { "R", "C ERROR", "C ERROR", NULL },
      { IDLE0, NULL }, { NULL }, { READY_CMDS, NULL }, { NULL } },
    { "rejections write nothing",
      { READY_IDLE, "A", "H", "M 12", "M 12x", "D +4917012345a", "D +49170\"1", "D 123;",
        "D ", "D ++49", "D 0301234567", "C OK", "D " NUM, "A", NULL },
      { IDLE0, "dialing out 0301234567 - -", NULL }, { NULL },
      { READY_CMDS, "ATD0301234567;", NULL },
      { "no_call", "no_call", "no_call", "invalid_request", "invalid_number", "invalid_number",
        "invalid_number", "invalid_number", "invalid_number", "ok", "busy", "no_call" } },
    { "far end presses keys during the call: each one to cbs.dtmf",
      { READY_IDLE, "D " NUM, "C OK", "U VOICE CALL: BEGIN", "U +RXDTMF: 5", "U +RXDTMF: #",
        "U +RXDTMF: *", "U +RXDTMF: 0", "U +RXDTMF: D", "U VOICE CALL: END: 000004", NULL },
      { IDLE0, "dialing out " NUM " - -", "active out " NUM " - -",
        "idle out " NUM " hangup 4", NULL }, { NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL },
      { "5", "#", "*", "0", "D", NULL } },
    { "+RXDTMF outside an active call: ignored",
      { READY_IDLE, "U +RXDTMF: 1", "D " NUM, "C OK", "U +RXDTMF: 2", "U " CLCC_OUT(3),
        "U +RXDTMF: 3", "U BUSY", "U +RXDTMF: 4", "U RING", "U " CLIP, "U +RXDTMF: 5", NULL },
      { IDLE0, "dialing out " NUM " - -", "alerting out " NUM " - -",
        "idle out " NUM " busy 0", "ringing in " NUM " - -", NULL }, { NUM, NULL },
      { READY_CMDS, "ATD" NUM ";", NULL }, { "ok", NULL }, { NULL } },
    { "+RXDTMF that is not one key: ignored, the call goes on",
      { READY_IDLE, "U RING", "U " CLIP, "A", "C OK", "U +RXDTMF: 12", "U +RXDTMF: E",
        "U +RXDTMF: a", "U +RXDTMF: ", "U +RXDTMF:", "U +RXDTMF: \"1\"", "U +RXDTMF: 1,2",
        "U +RXDTMF: -", "U +RXDTMF: 9", NULL },
      { IDLE0, "ringing in " NUM " - -", "active in " NUM " - -", NULL }, { NUM, NULL },
      { READY_CMDS, "ATA", NULL }, { "ok", NULL }, { "9", NULL } },
    { "not ready: unavailable",
      { "D " NUM, "A", "H", "M 1", NULL },
      { NULL }, { NULL }, { NULL }, { "unavailable", "unavailable", "unavailable",
                                      "unavailable", NULL } },
};

static void test_scripts(void **state)
{
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
        teardown(state);
        setup(state);
        print_message("  %s\n", scripts[i].name);
        run(&scripts[i]);
    }
}

static void test_allow_to(void **state)
{
    (void)state;
    call_free(F.call);
    memset(&F, 0, sizeof(F));
    const struct call_opts o = { .allow_to = allow_de, .n_allow_to = 2 };
    const struct call_cbs cb = { .state = on_state, .ring = on_ring };
    F.call = call_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, &F);
    F.ready = true;
    call_modem_ready(F.call, true);
    call_dial(F.call, "+331234567", on_written, on_done, &F);
    call_dial(F.call, "110", on_written, on_done, &F);
    call_dial(F.call, "112", on_written, on_done, &F);
    assert_string_equal(F.results[0], "not_allowed");
    assert_string_equal(F.results[1], "not_allowed");
    if (F.n_results != 2)
        fail_msg("third result: %s", F.results[2]);
    assert_int_equal(F.n_cmds, 3);   /* AT+CLCC=1, AT+CLCC, and the dial */
    assert_string_equal(F.cmds[2].cmd, "ATD112;");
    assert_int_equal(F.n_written, 1);   /* the refused ones never were */
    /* The next test's setup forgets F: end what is in flight, or the call
     * (kept alive by it) leaks. */
    while (F.n_completed < F.n_cmds)
        complete("CANCELLED");
}

/* '*' and '#' turn ATD into an order to the network: "**21*<n>#" sets
 * unconditional call forwarding. "*" in allow_to never allows one, an
 * exact entry does. */
static void test_service_codes(void **state)
{
    static char *const codes[] = { "*", "+49*", "**21*004917012345678#" };
    static const struct {
        size_t n_allow;         /* of codes[] */
        const char *to;
        const char *result;     /* NULL: dialled */
    } cases[] = {
        { 1, "**21*004917012345678#", "not_allowed" },
        { 1, "*31#4917012345678", "not_allowed" },
        { 1, "+4917012345678#", "not_allowed" },
        { 1, "#31#", "not_allowed" },
        { 2, "+49*21#", "not_allowed" },
        { 3, "**21*0049170123456789#", "not_allowed" },
        { 3, "**21*004917012345678", "not_allowed" },
        { 3, "**21*004917012345678#", NULL },
        { 1, "+4917012345678", NULL },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* A call with commands in flight outlives call_free: end them. */
        while (F.n_completed < F.n_cmds)
            complete("CANCELLED");
        call_free(F.call);
        memset(&F, 0, sizeof(F));
        const struct call_opts o = { .allow_to = codes, .n_allow_to = cases[i].n_allow };
        const struct call_cbs cb = { .state = on_state, .ring = on_ring };
        F.call = call_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, &F);
        F.ready = true;
        call_modem_ready(F.call, true);
        call_dial(F.call, cases[i].to, NULL, on_done, &F);
        if (cases[i].result) {
            if (F.n_results != 1 || strcmp(F.results[0], cases[i].result) != 0)
                fail_msg("case %zu (%s): %s", i, cases[i].to, F.n_results ? F.results[0] : "-");
            assert_int_equal(F.n_cmds, 2);   /* AT+CLCC=1, AT+CLCC: no ATD */
            if (strpbrk(cases[i].to, "*#")) {
                char want[200];
                snprintf(want, sizeof(want),
                         "'to' %s is a service code (it can change call forwarding or "
                         "barring); list it exactly in calls.allow_to to dial it",
                         cases[i].to);
                assert_string_equal(F.message, want);
            }
        } else {
            char want[64];
            snprintf(want, sizeof(want), "ATD%s;", cases[i].to);
            assert_int_equal(F.n_results, 0);
            assert_int_equal(F.n_cmds, 3);
            assert_string_equal(F.cmds[2].cmd, want);
        }
    }
    while (F.n_completed < F.n_cmds)
        complete("CANCELLED");
}

static void test_number_valid(void **state)
{
    static const struct { const char *s; bool ok; } cases[] = {
        { "+4917012345678", true }, { "0301234567", true }, { "*100#", true }, { "112", true },
        { "+", false }, { "", false }, { "+49 170", false }, { "+49-170", false },
        { "4917a", false }, { "49\"", false }, { "49;", false }, { "49\r", false },
        { "1+2", false }, { "123456789012345678901234567890123", false },
        { "12345678901234567890123456789012", true },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (call_number_valid(cases[i].s) != cases[i].ok)
            fail_msg("call_number_valid(\"%s\") != %d", cases[i].s, cases[i].ok);
    assert_false(call_number_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scripts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_codes, setup, teardown),
        cmocka_unit_test(test_number_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
