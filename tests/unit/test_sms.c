/* modem/sms: the SMS service in isolation, through link seams.
 *
 * This file defines the functions the service's files (sms.c, sms_read.c,
 * sms_send.c) call on their neighbours:
 *   modem.o  modem_send, modem_state, modem_state_name, modem_chat,
 *            modem_sms_supported
 *   chat.o   at_chat_add_urcs, at_final_name
 *   loop.o   loop_add_timer, loop_cancel_timer, loop_now_ms
 * The linker resolves them here and never pulls modem.o, chat.o or loop.o
 * out of libm2m.a. That only works if EVERY symbol the sms*.o need from
 * one of those objects is defined here: they also call at_final_name
 * (chat.o), and one missing definition would pull the whole of chat.o,
 * whose at_chat_add_urcs then collides with ours ("multiple definition").
 * Everything else they need (pdu.o, json.o, config.o, log.o) is real,
 * and none of those objects refers back to modem/chat/loop.
 *
 * The fake modem records every command in order (string, opts with the
 * data bytes, callback and context) and completes them one at a time,
 * oldest first, like the chat does; the tests script the at_response of
 * each (final result, info lines). The fake chat keeps the URC table so the
 * tests can "receive" +CMTI and +CMT lines. The fake loop has a clock the
 * tests advance and a timer list they fire by hand. */
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

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/pdu.h"
#include "modem/sms.h"
#include "mqtt/json.h"

#define T0 1000000                /* the fake clock's start (ms) */
#define REASSEMBLY_MS 30000
#define SAFETY_DRAIN_MS 60000     /* any span: the service has no periodic drain */
#define TS 1795237200             /* 2026-11-21T05:00:00Z */
#define TIME_STR "2026-11-21T06:00:00+01:00"   /* TS at +01:00 */
#define FROM "+491701234567"

#define MAX_CMDS 512
#define MAX_RX 32
#define MAX_TIMERS 16
#define MAX_SENT 300

/* --- the fakes' state -------------------------------------------------------- */

static char fake_loop_obj, fake_modem_obj, fake_chat_obj;
#define FAKE_LOOP ((struct loop *)(void *)&fake_loop_obj)
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)
#define FAKE_CHAT ((struct at_chat *)(void *)&fake_chat_obj)

struct cmd_rec {
    char cmd[64];
    bool has_opts;
    char info_prefix[16];
    int timeout_ms;
    bool has_data;
    uint8_t data[PDU_HEX_MAX + 8];
    size_t data_len;
    at_done_cb cb;
    void *ctx;
};

struct rx_rec {
    bool undecodable;
    bool report;                  /* a status report: from is TP-RA, time TP-SCTS */
    uint8_t mr, status;
    char discharge[32];
    uint64_t token;
    char from[PDU_ADDR_MAX], smsc[PDU_ADDR_MAX], time[32];
    enum pdu_alphabet alphabet;
    char text[4096];              /* NUL-terminated copy */
    size_t text_len;
    unsigned parts;
    bool missing_null;
    unsigned missing[16];
    size_t n_missing;
    char pdu[1024];
    char reason[64];
};

struct fake_timer {
    bool live;
    uint64_t id;
    int64_t due;
    loop_timer_cb cb;
    void *ctx;
};

struct sent_rec {
    bool ok;
    struct sms_send_result res;
    struct m2m_error err;
};

static struct {
    enum modem_state state;
    bool sms_supported;
    int send_ret;                 /* modem_send's answer when READY (0: queued) */

    struct cmd_rec cmds[MAX_CMDS];
    size_t n_cmds, n_completed;

    const struct at_urc *urcs;
    size_t n_urcs;
    void *urc_ctx;
    int urc_tables;

    int64_t now;
    struct fake_timer timers[MAX_TIMERS];
    uint64_t next_timer_id;

    struct rx_rec rx[MAX_RX];
    size_t n_rx;
    int sync_status;              /* != 0: the owner refuses at once (cmd_sms.c, link down) */

    struct sent_rec sent[MAX_SENT];
    size_t n_sent;
    /* Keys the owner recorded as acknowledged (cbs.acked). */
    char acked[8][64];
    size_t n_acked;
    /* sms_send's written hook: "<part>/<parts>@<commands recorded>" each. */
    char written[256];
    /* Its sent hook: "<part>/<parts>=<reference>@<commands recorded>" each;
     * a result already given shows as "!". */
    char part_sent[256];

    unsigned store_changes;       /* store_changed callbacks */

    struct sms *sms;
} F;

/* --- link seams: modem.o ----------------------------------------------------- */

enum modem_state modem_state(const struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return F.state;
}

const char *modem_state_name(enum modem_state st)
{
    switch (st) {
    case MODEM_CLOSED: return "closed";
    case MODEM_PROBING: return "probing";
    case MODEM_BRINGUP: return "bringup";
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "sim_locked";
    case MODEM_NO_SIM: return "no_sim";
    default: return "?";
    }
}

struct at_chat *modem_chat(struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return FAKE_CHAT;
}

bool modem_sms_supported(const struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return F.sms_supported;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    struct cmd_rec *c;

    assert_ptr_equal(m, FAKE_MODEM);
    if (F.state != MODEM_READY)
        return -EAGAIN;          /* as modem.c */
    if (F.send_ret)
        return F.send_ret;
    /* The chat would refuse these; a service must never try. */
    assert_non_null(cmd);
    assert_true(cmd[0] != '\0');
    assert_null(strpbrk(cmd, "\r\n\x1a\x1b"));
    assert_true(strlen(cmd) < sizeof(c->cmd));
    assert_true(F.n_cmds < MAX_CMDS);
    /* The fake chat writes at once: the hook runs before the line. */
    if (opts && opts->written)
        opts->written(ctx);
    c = &F.cmds[F.n_cmds++];
    memset(c, 0, sizeof(*c));
    snprintf(c->cmd, sizeof(c->cmd), "%s", cmd);
    if (opts) {
        c->has_opts = true;
        c->timeout_ms = opts->timeout_ms;
        if (opts->info_prefix)
            snprintf(c->info_prefix, sizeof(c->info_prefix), "%s", opts->info_prefix);
        if (opts->data) {
            assert_true(opts->data_len <= sizeof(c->data));
            c->has_data = true;
            memcpy(c->data, opts->data, opts->data_len);
            c->data_len = opts->data_len;
        }
    }
    c->cb = cb;
    c->ctx = ctx;
    return 0;
}

/* --- link seams: chat.o ------------------------------------------------------ */

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    assert_ptr_equal(chat, FAKE_CHAT);
    F.urcs = table;
    F.n_urcs = n;
    F.urc_ctx = ctx;
    F.urc_tables++;
    return 0;
}

/* The names chat.h documents (the service puts them into error messages). */
const char *at_final_name(enum at_final f)
{
    static const char *const names[] = {
        "OK", "ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER",
        "BUSY", "NO ANSWER", "NO DIALTONE", "TIMEOUT", "CANCELLED",
    };
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

/* --- link seams: loop.o ------------------------------------------------------ */

int64_t loop_now_ms(void)
{
    return F.now;
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    assert_non_null(cb);
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

static size_t timers_live(void)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_TIMERS; i++)
        n += F.timers[i].live;
    return n;
}

/* Timers due now: after a pass, a non-zero count means something re-armed
 * itself at delay 0 (a busy loop in the real poll loop). */
static size_t timers_due(void)
{
    size_t n = 0;
    for (size_t i = 0; i < MAX_TIMERS; i++)
        n += F.timers[i].live && F.timers[i].due <= F.now;
    return n;
}

/* One pass of the loop: the timers due at its start, earliest first
 * (then in the order added); ones added by callbacks wait for the next. */
static void run_timers(void)
{
    uint64_t ids[MAX_TIMERS];
    size_t n = 0;

    for (size_t i = 0; i < MAX_TIMERS; i++)
        if (F.timers[i].live && F.timers[i].due <= F.now)
            ids[n++] = F.timers[i].id;
    for (size_t a = 1; a < n; a++)             /* insertion sort by (due, id) */
        for (size_t b = a; b > 0; b--) {
            const struct fake_timer *x = NULL, *y = NULL;
            for (size_t i = 0; i < MAX_TIMERS; i++) {
                if (F.timers[i].id == ids[b - 1])
                    x = &F.timers[i];
                if (F.timers[i].id == ids[b])
                    y = &F.timers[i];
            }
            if (x->due < y->due || (x->due == y->due && x->id < y->id))
                break;
            uint64_t tmp = ids[b];
            ids[b] = ids[b - 1];
            ids[b - 1] = tmp;
        }
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < MAX_TIMERS; i++) {
            struct fake_timer *t = &F.timers[i];
            if (!t->live || t->id != ids[k])
                continue;
            int64_t again = t->cb(t->ctx);
            if (t->live && t->id == ids[k]) {   /* a cancel in the callback wins */
                if (again > 0)
                    t->due = F.now + again;
                else
                    t->live = false;
            }
            break;
        }
    }
}

static void advance(int64_t ms)
{
    F.now += ms;
    run_timers();
}

/* --- the owner's callbacks --------------------------------------------------- */

static void on_received(void *ctx, const struct sms_received *m, uint64_t token)
{
    struct rx_rec *r;

    assert_ptr_equal(ctx, &F);
    assert_true(F.n_rx < MAX_RX);
    r = &F.rx[F.n_rx++];
    memset(r, 0, sizeof(*r));
    r->token = token;
    snprintf(r->from, sizeof(r->from), "%s", m->from ? m->from : "(null)");
    snprintf(r->smsc, sizeof(r->smsc), "%s", m->smsc ? m->smsc : "(null)");
    snprintf(r->time, sizeof(r->time), "%s", m->time ? m->time : "(null)");
    r->alphabet = m->alphabet;
    assert_true(m->text_len < sizeof(r->text));
    memcpy(r->text, m->text, m->text_len);
    r->text_len = m->text_len;
    r->parts = m->parts;
    r->missing_null = m->parts_missing == NULL;
    assert_true(m->n_parts_missing <= 16);
    for (size_t i = 0; i < m->n_parts_missing; i++)
        r->missing[i] = m->parts_missing[i];
    r->n_missing = m->n_parts_missing;
    if (F.sync_status)
        sms_received_done(F.sms, token, F.sync_status);
}

static void on_undecodable(void *ctx, const char *pdu_hex, const char *reason, uint64_t token)
{
    struct rx_rec *r;

    assert_ptr_equal(ctx, &F);
    assert_true(F.n_rx < MAX_RX);
    r = &F.rx[F.n_rx++];
    memset(r, 0, sizeof(*r));
    r->undecodable = true;
    r->token = token;
    snprintf(r->pdu, sizeof(r->pdu), "%s", pdu_hex);
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    if (F.sync_status)
        sms_received_done(F.sms, token, F.sync_status);
}

static void on_report(void *ctx, const struct pdu_msg *m, uint64_t token)
{
    struct rx_rec *r;

    assert_ptr_equal(ctx, &F);
    assert_int_equal(m->type, PDU_STATUS_REPORT);
    assert_true(F.n_rx < MAX_RX);
    r = &F.rx[F.n_rx++];
    memset(r, 0, sizeof(*r));
    r->report = true;
    r->token = token;
    r->mr = m->mr;
    r->status = m->status;
    snprintf(r->from, sizeof(r->from), "%s", m->addr);
    snprintf(r->time, sizeof(r->time), "%s", m->time);
    snprintf(r->discharge, sizeof(r->discharge), "%s", m->discharge_time);
    if (F.sync_status)
        sms_received_done(F.sms, token, F.sync_status);
}

static bool on_acked_before(void *ctx, const char *key)
{
    assert_ptr_equal(ctx, &F);
    for (size_t i = 0; i < F.n_acked; i++)
        if (strcmp(F.acked[i], key) == 0)
            return true;
    return false;
}

static void on_acked(void *ctx, const char *key)
{
    assert_ptr_equal(ctx, &F);
    assert_true(F.n_acked < 8);
    snprintf(F.acked[F.n_acked++], sizeof(F.acked[0]), "%s", key);
}

static void on_sent(void *ctx, const struct sms_send_result *res, const struct m2m_error *err)
{
    struct sent_rec *s;

    assert_ptr_equal(ctx, &F);
    assert_true(F.n_sent < MAX_SENT);
    assert_true((res == NULL) != (err == NULL));   /* exactly one of them */
    s = &F.sent[F.n_sent++];
    memset(s, 0, sizeof(*s));
    s->ok = err == NULL;
    if (res)
        s->res = *res;
    if (err)
        s->err = *err;
}

static void on_written(void *ctx, unsigned part, unsigned n_parts)
{
    size_t n = strlen(F.written);

    assert_ptr_equal(ctx, &F);
    snprintf(F.written + n, sizeof(F.written) - n, "%u/%u@%zu ", part, n_parts, F.n_cmds);
}

static void on_part_sent(void *ctx, const struct sms_send_result *res, unsigned part)
{
    size_t n = strlen(F.part_sent);

    assert_ptr_equal(ctx, &F);
    assert_int_equal(res->n_references, part);
    snprintf(F.part_sent + n, sizeof(F.part_sent) - n, "%u/%u=%d@%zu%s ", part, res->parts,
             res->references[part - 1], F.n_cmds, F.n_sent ? "!" : "");
}

static const struct sms_part_hooks hooks = { .written = on_written, .sent = on_part_sent };

/* --- set-up ------------------------------------------------------------------ */

static char *allow_all[] = { "*" };
static char *allow_49[] = { "+49*" };

static struct sms_opts default_opts(void)
{
    return (struct sms_opts){
        .allow_to = allow_49,
        .n_allow_to = 1,
        .max_parts = 5,
        .rate_per_hour = 0,
        .keep_on_sim = false,
        .reassembly_timeout_ms = REASSEMBLY_MS,
    };
}

static void stop(void)
{
    if (F.sms) {
        sms_free(F.sms);
        F.sms = NULL;
        /* sms_free cancels everything it armed. */
        assert_int_equal(timers_live(), 0);
    }
}

static void on_store_changed(void *ctx)
{
    assert_ptr_equal(ctx, &F);
    F.store_changes++;
}

/* The owner's callbacks; with_acked: also the acknowledged-keys record
 * (cmd_sms.c keeps it in the journal). */
static void start_cbs(const struct sms_opts *o, bool with_acked)
{
    const struct sms_cbs cbs = {
        .received = on_received, .undecodable = on_undecodable, .report = on_report,
        .store_changed = on_store_changed,
        .acked_before = with_acked ? on_acked_before : NULL,
        .acked = with_acked ? on_acked : NULL,
    };

    stop();
    memset(&F, 0, sizeof(F));
    F.state = MODEM_READY;
    F.sms_supported = true;
    F.now = T0;
    F.sms = sms_new(FAKE_LOOP, FAKE_MODEM, o, &cbs, &F);
    assert_non_null(F.sms);
    /* One table: +CMTI and +CDSI alone, +CMT and +CDS with their PDU
     * line. Nothing sent yet. */
    assert_int_equal(F.urc_tables, 1);
    assert_int_equal(F.n_urcs, 4);
    assert_string_equal(F.urcs[0].prefix, "+CMTI:");
    assert_int_equal(F.urcs[0].extra_lines, 0);
    assert_string_equal(F.urcs[1].prefix, "+CMT:");
    assert_int_equal(F.urcs[1].extra_lines, 1);
    assert_string_equal(F.urcs[2].prefix, "+CDSI:");
    assert_int_equal(F.urcs[2].extra_lines, 0);
    assert_string_equal(F.urcs[3].prefix, "+CDS:");
    assert_int_equal(F.urcs[3].extra_lines, 1);
    assert_ptr_equal(F.urc_ctx, F.sms);
    assert_int_equal(F.n_cmds, 0);
}

static void start_with(const struct sms_opts *o)
{
    start_cbs(o, false);
}

static void start(void)
{
    const struct sms_opts o = default_opts();
    start_with(&o);
}

static int teardown(void **state)
{
    (void)state;
    stop();
    return 0;
}

/* --- commands ---------------------------------------------------------------- */

struct lines {
    char buf[24][1024];
    const char *v[25];
    size_t n;
};

static void lines_add(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lines_add(struct lines *l, const char *fmt, ...)
{
    va_list ap;

    assert_true(l->n < 24);
    va_start(ap, fmt);
    vsnprintf(l->buf[l->n], sizeof(l->buf[0]), fmt, ap);
    va_end(ap);
    l->v[l->n] = l->buf[l->n];
    l->n++;
    l->v[l->n] = NULL;
}

static size_t outstanding(void)
{
    return F.n_cmds - F.n_completed;
}

/* Completes the oldest outstanding command, which must be `expect`. */
static void reply_full(const char *expect, enum at_final final, int code, const char *text,
                       const char *const *lines, size_t n_lines)
{
    static const char *const none[] = { NULL };
    struct cmd_rec *c;

    assert_true(outstanding() > 0);
    c = &F.cmds[F.n_completed++];
    assert_string_equal(c->cmd, expect);
    const struct at_response rsp = {
        .final = final, .code = code, .text = text,
        .lines = lines ? lines : none, .n_lines = lines ? n_lines : 0,
    };
    if (c->cb)
        c->cb(c->ctx, &rsp);
}

static void reply(const char *expect, enum at_final final, const struct lines *l)
{
    reply_full(expect, final, -1, NULL, l ? l->v : NULL, l ? l->n : 0);
}

static void ok(const char *expect)
{
    reply(expect, AT_FINAL_OK, NULL);
}

/* The commands sent since index `from` are exactly `expected`. */
static void expect_cmds_v(size_t from, const char *const *expected)
{
    size_t n = 0;

    while (expected[n])
        n++;
    if (F.n_cmds - from != n) {
        for (size_t i = from; i < F.n_cmds; i++)
            print_error("  sent: %s\n", F.cmds[i].cmd);
        fail_msg("%zu commands sent, %zu expected", F.n_cmds - from, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(F.cmds[from + i].cmd, expected[i]);
}
#define EXPECT_CMDS(from, ...) expect_cmds_v((from), (const char *const[]){ __VA_ARGS__, NULL })
#define EXPECT_NO_CMDS(from) assert_int_equal(F.n_cmds, (from))

/* --- URCs -------------------------------------------------------------------- */

/* As the chat dispatches: first table entry whose prefix starts the line;
 * the entry's extra lines come with it. */
static void urc(const char *line, const char *extra)
{
    const char *lines[2] = { line, extra };

    for (size_t i = 0; i < F.n_urcs; i++) {
        const struct at_urc *u = &F.urcs[i];
        if (strncmp(line, u->prefix, strlen(u->prefix)) != 0)
            continue;
        assert_int_equal(u->extra_lines, extra ? 1 : 0);
        u->fn(F.urc_ctx, lines, 1 + u->extra_lines);
        return;
    }
    fail_msg("no URC entry for %s", line);
}

static void cmti(int idx)
{
    char l[32];
    snprintf(l, sizeof(l), "+CMTI: \"SM\",%d", idx);
    urc(l, NULL);
}

/* --- PDUs -------------------------------------------------------------------- */

struct msg {
    struct pdu_part p[20];
    size_t n;
};

static void make_pdu(struct msg *m, enum pdu_type type, const char *addr, const char *text,
                     uint8_t ref)
{
    const struct pdu_encode_opts o = {
        .type = type, .addr = addr, .concat_ref = ref, .timestamp = TS, .tz_minutes = 60,
    };
    memset(m, 0, sizeof(*m));
    assert_int_equal(pdu_encode(&o, text, strlen(text), m->p, 20, &m->n, NULL), 0);
}

static void make_deliver(struct msg *m, const char *from, const char *text, uint8_t ref)
{
    make_pdu(m, PDU_DELIVER, from, text, ref);
}

/* AT+CMGR=<idx> is the oldest outstanding command: answer it with a stored
 * message of the given stat. */
static void reply_cmgr(int idx, int stat, const struct pdu_part *p)
{
    char cmd[32];
    struct lines l = { 0 };

    snprintf(cmd, sizeof(cmd), "AT+CMGR=%d", idx);
    assert_true(outstanding() > 0);
    assert_string_equal(F.cmds[F.n_completed].info_prefix, "+CMGR:");
    assert_false(F.cmds[F.n_completed].has_data);
    lines_add(&l, "+CMGR: %d,,%zu", stat, p->tpdu_len);
    lines_add(&l, "%s", p->hex);
    reply(cmd, AT_FINAL_OK, &l);
}

/* 153 'A', 153 'B', 50 'C': three GSM parts whose order shows. */
static const char *text3(void)
{
    static char t[153 * 2 + 50 + 1];
    memset(t, 'A', 153);
    memset(t + 153, 'B', 153);
    memset(t + 306, 'C', 50);
    t[356] = '\0';
    return t;
}

static bool is_hex_then_ctrlz(const uint8_t *d, size_t n)
{
    if (n < 2 || d[n - 1] != 0x1A)
        return false;
    for (size_t i = 0; i + 1 < n; i++)
        if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'A' && d[i] <= 'F')))
            return false;
    return true;
}

static void expect_rx(const struct rx_rec *r, const char *from, const char *text, unsigned parts)
{
    assert_false(r->undecodable);
    assert_string_equal(r->from, from);
    assert_string_equal(r->text, text);
    assert_int_equal(r->text_len, strlen(text));
    assert_int_equal(r->parts, parts);
}

/* sms_modem_ready(true): the drain lists the SIM; an empty one here. */
static void go_ready(void)
{
    size_t mark = F.n_cmds;

    sms_modem_ready(F.sms, true);
    EXPECT_CMDS(mark, "AT+CMGL=4");
    assert_string_equal(F.cmds[mark].info_prefix, "+CMGL:");
    assert_int_equal(F.cmds[mark].timeout_ms, 20000);
    assert_false(F.cmds[mark].has_data);
    ok("AT+CMGL=4");
    assert_int_equal(outstanding(), 0);
}

/* ============================================================================ */
/* 1. One SMS via +CMTI: read, published, deleted only after the ack.          */

static void test_single_via_cmti(void **state)
{
    static const struct {
        const char *urc;
        int idx;
        const char *hdr;            /* the +CMGR header up to its length field */
        const char *pdu;            /* NULL: encode text from `from` */
        const char *from, *text, *smsc, *time;
        enum pdu_alphabet alphabet;
    } rows[] = {
        { "+CMTI: \"SM\",3", 3, "+CMGR: 0,,", NULL, FROM, "Hello from the network", "",
          TIME_STR, PDU_GSM7 },
        /* already read (stat 1), alpha field quoted-empty, UCS-2 */
        { "+CMTI: \"ME\",12", 12, "+CMGR: 1,\"\",", NULL, "+31612345678",
          "Gr\xC3\xBC\xC3\x9F" "e \xE2\x98\x83", "", TIME_STR, PDU_UCS2 },
        /* GSM extension table characters, national number */
        { "+CMTI: \"SM\",255", 255, "+CMGR: 0,,", NULL, "01701234567",
          "{json} [x] ~ \\ | ^ \xE2\x82\xAC", "", TIME_STR, PDU_GSM7 },
        /* slot 0: 27.005 allows it, ME storage of other modules uses it */
        { "+CMTI: \"ME\",0", 0, "+CMGR: 0,,", NULL, FROM, "slot zero", "", TIME_STR,
          PDU_GSM7 },
        /* a real network PDU with an SMSC (the classic "hellohello") */
        { "+CMTI: \"SM\",1", 1, "+CMGR: 0,,",
          "07919730071111F1000B919746121611F10000211110312270400AE8329BFD4697D9EC37",
          "+79642161111", "hellohello", "+79037011111", "2012-11-01T13:22:07+01:00",
          PDU_GSM7 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg m;
        struct lines l = { 0 };
        char cmd[32];
        size_t mark;

        start();
        go_ready();
        if (rows[i].pdu) {
            memset(&m, 0, sizeof(m));
            snprintf(m.p[0].hex, sizeof(m.p[0].hex), "%s", rows[i].pdu);
            m.p[0].tpdu_len = 28;
        } else {
            make_deliver(&m, rows[i].from, rows[i].text, 0);
            assert_int_equal(m.n, 1);
        }
        mark = F.n_cmds;
        urc(rows[i].urc, NULL);
        snprintf(cmd, sizeof(cmd), "AT+CMGR=%d", rows[i].idx);
        EXPECT_CMDS(mark, cmd);
        assert_string_equal(F.cmds[mark].info_prefix, "+CMGR:");
        assert_int_equal(F.n_rx, 0);

        lines_add(&l, "%s%zu", rows[i].hdr, m.p[0].tpdu_len);
        lines_add(&l, "%s", m.p[0].hex);
        reply(cmd, AT_FINAL_OK, &l);

        assert_int_equal(F.n_rx, 1);
        expect_rx(&F.rx[0], rows[i].from, rows[i].text, 1);
        assert_string_equal(F.rx[0].smsc, rows[i].smsc);
        assert_string_equal(F.rx[0].time, rows[i].time);
        assert_int_equal(F.rx[0].alphabet, rows[i].alphabet);
        assert_true(F.rx[0].missing_null);
        assert_int_equal(F.rx[0].n_missing, 0);
        assert_true(F.rx[0].token != 0);
        /* Nothing deleted while the broker has not acknowledged. */
        EXPECT_CMDS(mark, cmd);
        advance(REASSEMBLY_MS + 1);                 /* no timer deletes it either */
        EXPECT_CMDS(mark, cmd);

        sms_received_done(F.sms, F.rx[0].token, 0);
        snprintf(cmd, sizeof(cmd), "AT+CMGD=%d", rows[i].idx);
        EXPECT_CMDS(mark + 1, cmd);
        assert_false(F.cmds[mark + 1].has_data);
        ok(cmd);
        /* A second ack for the same token is stale: nothing more. */
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(mark + 1, cmd);
        assert_int_equal(F.n_rx, 1);
        stop();
    }
}

/* ============================================================================ */
/* 2. The broker did not take it: kept; the next drain publishes it again.      */

static void test_publish_failure_then_drain(void **state)
{
    static const struct {
        const char *name;
        bool in_callback;           /* refused inside the callback, as cmd_sms.c
                                       does while the link is down */
    } rows[] = { { "ack fails later", false }, { "refused at once", true } };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg m;
        struct lines l = { 0 };
        size_t mark;
        uint64_t t1, t2;

        start();
        go_ready();
        make_deliver(&m, FROM, "try again", 0);
        mark = F.n_cmds;
        cmti(3);
        if (rows[i].in_callback)
            F.sync_status = -ENOTCONN;
        reply_cmgr(3, 0, &m.p[0]);
        assert_int_equal(F.n_rx, 1);
        t1 = F.rx[0].token;
        if (!rows[i].in_callback)
            sms_received_done(F.sms, t1, -ENOTCONN);
        F.sync_status = 0;
        EXPECT_CMDS(mark, "AT+CMGR=3");            /* no CMGD */

        /* The broker is back: the message goes out again with a new token,
         * before the SIM is listed; the listing does not read index 3 again. */
        mark = F.n_cmds;
        sms_drain(F.sms);
        assert_int_equal(F.n_rx, 2);
        expect_rx(&F.rx[1], FROM, "try again", 1);
        t2 = F.rx[1].token;
        assert_true(t2 != t1);
        EXPECT_CMDS(mark, "AT+CMGL=4");
        lines_add(&l, "+CMGL: 3,1,,%zu", m.p[0].tpdu_len);
        lines_add(&l, "%s", m.p[0].hex);
        reply("AT+CMGL=4", AT_FINAL_OK, &l);
        EXPECT_CMDS(mark, "AT+CMGL=4");
        assert_int_equal(F.n_rx, 2);

        /* The old token is stale. */
        sms_received_done(F.sms, t1, 0);
        EXPECT_CMDS(mark, "AT+CMGL=4");
        sms_received_done(F.sms, t2, 0);
        EXPECT_CMDS(mark, "AT+CMGL=4", "AT+CMGD=3");
        ok("AT+CMGD=3");
        stop();
    }
}

/* ============================================================================ */
/* 3. Three parts in any arrival order: one message, after the last part.       */

static void test_multipart_any_order(void **state)
{
    static const int orders[][3] = {
        { 3, 1, 2 }, { 1, 2, 3 }, { 1, 3, 2 }, { 2, 1, 3 }, { 2, 3, 1 }, { 3, 2, 1 },
    };
    (void)state;
    for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
        struct msg m;
        size_t mark;
        char cmd[3][32];

        start();
        go_ready();
        make_deliver(&m, FROM, text3(), 0x5A);
        assert_int_equal(m.n, 3);
        mark = F.n_cmds;
        /* SIM indexes 5, 6, 7 in arrival order; all three +CMTI at once. */
        for (int k = 0; k < 3; k++)
            cmti(5 + k);
        /* One AT+CMGR at a time. */
        EXPECT_CMDS(mark, "AT+CMGR=5");
        for (int k = 0; k < 3; k++) {
            snprintf(cmd[k], sizeof(cmd[k]), "AT+CMGR=%d", 5 + k);
            assert_int_equal(F.n_rx, 0);
            assert_string_equal(F.cmds[F.n_completed].cmd, cmd[k]);
            assert_int_equal(outstanding(), 1);
            reply_cmgr(5 + k, 0, &m.p[orders[o][k] - 1]);
        }
        EXPECT_CMDS(mark, cmd[0], cmd[1], cmd[2]);
        assert_int_equal(F.n_rx, 1);
        expect_rx(&F.rx[0], FROM, text3(), 3);
        assert_int_equal(F.rx[0].n_missing, 0);
        assert_true(F.rx[0].missing_null);
        assert_string_equal(F.rx[0].time, TIME_STR);
        /* Its reassembly timer is gone: nothing happens at the deadline. */
        advance(REASSEMBLY_MS);
        assert_int_equal(F.n_rx, 1);
        EXPECT_CMDS(mark, cmd[0], cmd[1], cmd[2]);

        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(mark, cmd[0], cmd[1], cmd[2], "AT+CMGD=5", "AT+CMGD=6", "AT+CMGD=7");
        stop();
    }
}

/* ============================================================================ */
/* 4. Reassembly gives up: published with parts_missing, then deleted.          */

static void test_reassembly_timeout(void **state)
{
    (void)state;
    for (int missing = 1; missing <= 3; missing++) {
        struct msg m;
        char expect_text[400] = "";
        int idx = 20;
        int present[2];
        int n_present = 0;
        size_t mark;
        char d0[32], d1[32];

        start();
        go_ready();
        make_deliver(&m, FROM, text3(), 0x77);
        mark = F.n_cmds;
        for (int seq = 1; seq <= 3; seq++) {
            if (seq == missing)
                continue;
            cmti(idx);
            reply_cmgr(idx, 0, &m.p[seq - 1]);
            present[n_present++] = idx++;
        }
        /* The present parts' text, in sequence order. */
        size_t len = 0;
        for (int seq = 1; seq <= 3; seq++) {
            size_t n = seq == 3 ? 50 : 153;
            if (seq == missing)
                continue;
            memcpy(expect_text + len, text3() + (seq - 1) * 153, n);
            len += n;
        }
        expect_text[len] = '\0';
        assert_int_equal(F.n_rx, 0);
        advance(REASSEMBLY_MS - 1);
        assert_int_equal(F.n_rx, 0);
        advance(1);
        assert_int_equal(F.n_rx, 1);
        expect_rx(&F.rx[0], FROM, expect_text, 3);
        assert_false(F.rx[0].missing_null);
        assert_int_equal(F.rx[0].n_missing, 1);
        assert_int_equal(F.rx[0].missing[0], (unsigned)missing);
        assert_int_equal(timers_due(), 0);
        /* Still not deleted, and not published twice. */
        advance(REASSEMBLY_MS / 2);
        assert_int_equal(F.n_rx, 1);
        snprintf(d0, sizeof(d0), "AT+CMGD=%d", present[0]);
        snprintf(d1, sizeof(d1), "AT+CMGD=%d", present[1]);
        EXPECT_CMDS(mark + 2, NULL);
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(mark + 2, d0, d1);
        stop();
    }
}

/* The reassembly gave up while the broker is away (the owner refuses at
 * once, as cmd_sms.c does when the link is down). The timer must not re-arm
 * itself at 0 (a busy loop in the real loop); the next sms_drain (broker
 * back) publishes the incomplete message again. Same for an undecodable
 * PDU refused at once. */
static void test_timeout_while_broker_down(void **state)
{
    struct msg m, other;
    struct lines l = { 0 };
    size_t mark;

    (void)state;
    start();
    go_ready();
    make_deliver(&m, FROM, text3(), 0x31);
    mark = F.n_cmds;
    cmti(1);
    reply_cmgr(1, 0, &m.p[0]);
    cmti(2);
    reply_cmgr(2, 0, &m.p[2]);
    F.sync_status = -ENOTCONN;
    advance(REASSEMBLY_MS);
    assert_int_equal(F.n_rx, 1);
    assert_int_equal(F.rx[0].n_missing, 1);
    assert_int_equal(F.rx[0].missing[0], 2);
    assert_int_equal(timers_due(), 0);           /* no re-arm at delay 0 */
    run_timers();
    run_timers();
    assert_int_equal(F.n_rx, 1);

    /* An undecodable PDU, refused at once; then the first part of another
     * multipart message arrives (arming the reassembly timer again). */
    cmti(3);
    lines_add(&l, "+CMGR: 0,,24");
    lines_add(&l, "NOT A PDU");
    reply("AT+CMGR=3", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 2);
    assert_true(F.rx[1].undecodable);
    make_deliver(&other, "+4915112345678", text3(), 0x32);
    cmti(4);
    reply_cmgr(4, 0, &other.p[1]);
    assert_int_equal(timers_due(), 0);
    run_timers();
    assert_int_equal(F.n_rx, 2);
    EXPECT_CMDS(mark, "AT+CMGR=1", "AT+CMGR=2", "AT+CMGR=3", "AT+CMGR=4");

    /* The broker is back. */
    F.sync_status = 0;
    sms_drain(F.sms);
    assert_int_equal(F.n_rx, 4);                 /* both again, in some order */
    const struct rx_rec *part = F.rx[2].undecodable ? &F.rx[3] : &F.rx[2];
    const struct rx_rec *bad = F.rx[2].undecodable ? &F.rx[2] : &F.rx[3];
    assert_true(bad->undecodable);
    assert_string_equal(bad->pdu, "NOT A PDU");
    assert_false(part->undecodable);
    assert_int_equal(part->n_missing, 1);
    assert_int_equal(part->missing[0], 2);
    ok("AT+CMGL=4");
    sms_received_done(F.sms, part->token, 0);
    sms_received_done(F.sms, bad->token, 0);
    EXPECT_CMDS(mark, "AT+CMGR=1", "AT+CMGR=2", "AT+CMGR=3", "AT+CMGR=4", "AT+CMGL=4",
                "AT+CMGD=1", "AT+CMGD=2", "AT+CMGD=3");
    /* The other message's part still waits for its own deadline. */
    assert_int_equal(F.n_rx, 4);
    advance(REASSEMBLY_MS);
    assert_int_equal(F.n_rx, 5);
    assert_int_equal(F.rx[4].missing[0], 1);
    stop();
}

/* ============================================================================ */
/* 5. Drain at modem ready: AT+CMGL=4, known indexes never read twice.          */

static void test_drain_at_ready(void **state)
{
    struct msg single, multi, sent;
    struct lines l = { 0 };
    size_t mark;

    (void)state;
    start();
    make_deliver(&single, "+4930123456", "stored while we were away", 0);
    make_deliver(&multi, FROM, "first half .. " /* 2 parts */
                 "0123456789012345678901234567890123456789012345678901234567890123456789"
                 "0123456789012345678901234567890123456789012345678901234567890123456789"
                 "0123456789012345678901234567890123456789", 0x42);
    assert_int_equal(multi.n, 2);
    make_pdu(&sent, PDU_SUBMIT, "+491709999999", "an outgoing one kept on the SIM", 0);

    sms_modem_ready(F.sms, true);
    EXPECT_CMDS(0, "AT+CMGL=4");
    sms_drain(F.sms);                            /* one listing at a time */
    EXPECT_CMDS(0, "AT+CMGL=4");
    lines_add(&l, "+CMGL: 1,1,,%zu", single.p[0].tpdu_len);
    lines_add(&l, "%s", single.p[0].hex);
    lines_add(&l, "+CMGL: 2,0,,%zu", multi.p[0].tpdu_len);
    lines_add(&l, "%s", multi.p[0].hex);
    lines_add(&l, "+CMGL: 4,3,,%zu", sent.p[0].tpdu_len);
    lines_add(&l, "%s", sent.p[0].hex);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);
    expect_rx(&F.rx[0], "+4930123456", "stored while we were away", 1);
    EXPECT_CMDS(0, "AT+CMGL=4");

    /* Late +CMTI for what the listing already took: not read again. */
    cmti(2);
    cmti(1);
    EXPECT_CMDS(0, "AT+CMGL=4");
    /* The second part arrives. */
    cmti(5);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGR=5");
    reply_cmgr(5, 0, &multi.p[1]);
    assert_int_equal(F.n_rx, 2);
    assert_int_equal(F.rx[1].parts, 2);
    assert_int_equal(F.rx[1].n_missing, 0);
    assert_string_equal(F.rx[1].from, FROM);
    assert_true(strncmp(F.rx[1].text, "first half .. 0123", 18) == 0);

    mark = F.n_cmds;
    sms_received_done(F.sms, F.rx[1].token, 0);
    EXPECT_CMDS(mark, "AT+CMGD=2", "AT+CMGD=5");
    sms_received_done(F.sms, F.rx[0].token, 0);
    EXPECT_CMDS(mark, "AT+CMGD=2", "AT+CMGD=5", "AT+CMGD=1");
    /* Index 4 (a stored outgoing message) is never touched. */
    for (size_t i = 0; i < F.n_cmds; i++) {
        assert_string_not_equal(F.cmds[i].cmd, "AT+CMGR=4");
        assert_string_not_equal(F.cmds[i].cmd, "AT+CMGD=4");
    }
    stop();
}

/* +CMGL header forms; the message after it must still be read right. */
static void test_drain_listing_forms(void **state)
{
    static const struct {
        const char *hdr;            /* up to the length field */
        bool zero_len;              /* announce length 0 */
        bool taken;
    } rows[] = {
        { "+CMGL: 7,0,,", false, true },
        { "+CMGL: 7,1,\"\",", false, true },
        { "+CMGL: 7,0,\"Alice, Bob\",", false, true },   /* comma inside the alpha */
        { "+CMGL:7,1,,", false, true },
        { "+CMGL: 7,2,,", false, false },               /* stored unsent */
        { "+CMGL: 7,3,,", false, false },               /* stored sent */
        { "+CMGL: 7,0,,", true, false },                /* length 0: unparsable */
        { "+CMGL: x,0,,", false, false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg a, b;
        struct lines l = { 0 };

        start();
        make_deliver(&a, FROM, "row message", 0);
        make_deliver(&b, "+4930123456", "next message", 0);
        sms_modem_ready(F.sms, true);
        lines_add(&l, "%s%zu", rows[i].hdr, rows[i].zero_len ? 0 : a.p[0].tpdu_len);
        lines_add(&l, "%s", a.p[0].hex);
        lines_add(&l, "+CMGL: 9,0,,%zu", b.p[0].tpdu_len);
        lines_add(&l, "%s", b.p[0].hex);
        reply("AT+CMGL=4", AT_FINAL_OK, &l);
        assert_int_equal(F.n_rx, rows[i].taken ? 2 : 1);
        if (rows[i].taken)
            expect_rx(&F.rx[0], FROM, "row message", 1);
        expect_rx(&F.rx[F.n_rx - 1], "+4930123456", "next message", 1);
        EXPECT_CMDS(0, "AT+CMGL=4");
        for (size_t k = 0; k < F.n_rx; k++)
            sms_received_done(F.sms, F.rx[k].token, 0);
        if (rows[i].taken)
            EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=7", "AT+CMGD=9");
        else
            EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=9");
        stop();
    }
}

/* No timer of its own: an idle SMS service never wakes the loop (the
 * bridge's status poll calls sms_drain); the drain lists the SIM when
 * called, and does nothing once the modem went away. */
static void test_safety_drain(void **state)
{
    (void)state;
    start();
    go_ready();
    assert_int_equal(timers_live(), 0);
    advance(10 * SAFETY_DRAIN_MS);
    EXPECT_CMDS(1, NULL);
    sms_drain(F.sms);
    EXPECT_CMDS(1, "AT+CMGL=4");
    ok("AT+CMGL=4");
    F.state = MODEM_CLOSED;
    sms_modem_ready(F.sms, false);
    assert_int_equal(timers_live(), 0);
    sms_drain(F.sms);
    advance(10 * SAFETY_DRAIN_MS);
    EXPECT_CMDS(1, "AT+CMGL=4");
    /* No SMS: no listing, no timer. */
    start();
    F.sms_supported = false;
    sms_modem_ready(F.sms, true);
    EXPECT_CMDS(0, NULL);
    stop();
}

/* ============================================================================ */
/* 6. keep_on_sim: nothing is ever deleted; the drain lists unread only.        */

static void test_keep_on_sim(void **state)
{
    struct sms_opts o = default_opts();
    struct msg a, b, c;
    struct lines l = { 0 };

    (void)state;
    o.keep_on_sim = true;
    start_with(&o);
    make_deliver(&a, FROM, "listed", 0);
    make_deliver(&b, FROM, "announced", 0);
    make_deliver(&c, FROM, text3(), 9);
    sms_modem_ready(F.sms, true);
    EXPECT_CMDS(0, "AT+CMGL=0");
    assert_string_equal(F.cmds[0].info_prefix, "+CMGL:");
    lines_add(&l, "+CMGL: 1,0,,%zu", a.p[0].tpdu_len);
    lines_add(&l, "%s", a.p[0].hex);
    reply("AT+CMGL=0", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);
    expect_rx(&F.rx[0], FROM, "listed", 1);
    sms_received_done(F.sms, F.rx[0].token, 0);

    cmti(2);
    reply_cmgr(2, 0, &b.p[0]);
    assert_int_equal(F.n_rx, 2);
    sms_received_done(F.sms, F.rx[1].token, -ENOTCONN);
    sms_drain(F.sms);                            /* republished, listing unread */
    assert_int_equal(F.n_rx, 3);
    expect_rx(&F.rx[2], FROM, "announced", 1);
    ok("AT+CMGL=0");
    sms_received_done(F.sms, F.rx[2].token, 0);

    for (int k = 0; k < 3; k++) {
        cmti(10 + k);
        reply_cmgr(10 + k, 0, &c.p[k]);
    }
    assert_int_equal(F.n_rx, 4);
    expect_rx(&F.rx[3], FROM, text3(), 3);
    sms_received_done(F.sms, F.rx[3].token, 0);
    EXPECT_CMDS(0, "AT+CMGL=0", "AT+CMGR=2", "AT+CMGL=0", "AT+CMGR=10", "AT+CMGR=11",
                "AT+CMGR=12");
    for (size_t i = 0; i < F.n_cmds; i++)
        assert_null(strstr(F.cmds[i].cmd, "CMGD"));
    stop();
}

/* ============================================================================ */
/* 7. Undecodable PDU: published raw, deleted after its ack; the next is fine.   */

static void test_undecodable(void **state)
{
    static const struct {
        const char *hdr, *pdu;
    } rows[] = {
        { "+CMGR: 0,,24", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ" },
        { "+CMGR: 0,,28", "07919730071111F1000B919746121611F100002111" },   /* cut short */
        { "+CMGR: 0,,30", /* a good PDU announced with the wrong length */
          "07919730071111F1000B919746121611F10000211110312270400AE8329BFD4697D9EC37" },
        { "+CMGR: 1,,3", "00" },                                          /* SMSC only */
        { "+CMGR: 0,,12", "0004" "0B911316325476F8" "00" },               /* odd, truncated */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg good;
        struct lines l = { 0 };

        start();
        go_ready();
        cmti(4);
        lines_add(&l, "%s", rows[i].hdr);
        lines_add(&l, "%s", rows[i].pdu);
        reply("AT+CMGR=4", AT_FINAL_OK, &l);
        assert_int_equal(F.n_rx, 1);
        assert_true(F.rx[0].undecodable);
        assert_string_equal(F.rx[0].pdu, rows[i].pdu);
        assert_string_equal(F.rx[0].reason, "undecodable PDU");
        EXPECT_CMDS(1, "AT+CMGR=4");
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(1, "AT+CMGR=4", "AT+CMGD=4");
        ok("AT+CMGD=4");

        make_deliver(&good, FROM, "still works", 0);
        cmti(5);
        reply_cmgr(5, 0, &good.p[0]);
        assert_int_equal(F.n_rx, 2);
        expect_rx(&F.rx[1], FROM, "still works", 1);
        sms_received_done(F.sms, F.rx[1].token, 0);
        EXPECT_CMDS(1, "AT+CMGR=4", "AT+CMGD=4", "AT+CMGR=5", "AT+CMGD=5");
        stop();
    }
}

/* ============================================================================ */
/* 8. Stored outgoing messages (stat 2/3, or an SMS-SUBMIT) are left alone;     */
/*    replies that hold no message change nothing.                              */

static void test_not_incoming_left_alone(void **state)
{
    static const struct {
        int stat;
        enum pdu_type type;
    } rows[] = {
        { 2, PDU_SUBMIT }, { 3, PDU_SUBMIT }, { 0, PDU_SUBMIT }, { 1, PDU_SUBMIT },
        { 2, PDU_DELIVER }, { 3, PDU_DELIVER },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg m, next;

        start();
        go_ready();
        make_pdu(&m, rows[i].type, "+491709999999", "mine", 0);
        cmti(6);
        reply_cmgr(6, rows[i].stat, &m.p[0]);
        assert_int_equal(F.n_rx, 0);
        advance(REASSEMBLY_MS);
        assert_int_equal(F.n_rx, 0);
        /* The read queue goes on. */
        make_deliver(&next, FROM, "next", 0);
        cmti(7);
        reply_cmgr(7, 0, &next.p[0]);
        assert_int_equal(F.n_rx, 1);
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(1, "AT+CMGR=6", "AT+CMGR=7", "AT+CMGD=7");
        stop();
    }
}

/* AT+CMGR answers without a message: nothing published or deleted, and the
 * queue goes on. (The short line without "+CMGR:" must not be read past its
 * end: read_done read the stat at line + 6.) */
static void test_cmgr_without_message(void **state)
{
    static const struct {
        enum at_final final;
        int code;
        const char *line0, *line1;
    } rows[] = {
        { AT_FINAL_OK, -1, NULL, NULL },                      /* empty slot */
        { AT_FINAL_CMS, 321, NULL, NULL },                    /* invalid memory index */
        { AT_FINAL_ERROR, -1, NULL, NULL },
        { AT_FINAL_TIMEOUT, -1, NULL, NULL },
        { AT_FINAL_OK, -1, "+CMGR: 0,,24", NULL },            /* PDU line missing */
        { AT_FINAL_OK, -1, "0,24", "00" },                    /* no prefix, short */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg next;
        /* Exactly sized heap copies, so ASan sees a read past the end. */
        char *l0 = rows[i].line0 ? strdup(rows[i].line0) : NULL;
        char *l1 = rows[i].line1 ? strdup(rows[i].line1) : NULL;
        const char *lines[3] = { l0, l1, NULL };
        size_t n = l1 ? 2 : l0 ? 1 : 0;

        start();
        go_ready();
        cmti(8);
        reply_full("AT+CMGR=8", rows[i].final, rows[i].code, NULL, n ? lines : NULL, n);
        free(l0);
        free(l1);
        assert_int_equal(F.n_rx, 0);
        make_deliver(&next, FROM, "next", 0);
        cmti(9);
        reply_cmgr(9, 0, &next.p[0]);
        assert_int_equal(F.n_rx, 1);
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(1, "AT+CMGR=8", "AT+CMGR=9", "AT+CMGD=9");
        stop();
    }
}

/* A line no URC table knows (SMS FULL before its entry existed; anything a
 * firmware adds) between AT+CMGR and its answer is one more info line: the
 * message is still read. The owner hears of every read and delete that
 * went through, and of nothing else. */
static void test_cmgr_stray_line_and_store_changes(void **state)
{
    struct msg m, m2;
    struct lines l = { 0 };

    (void)state;
    start();
    go_ready();
    assert_int_equal(F.store_changes, 0);
    make_deliver(&m, FROM, "after a stray line", 0);
    cmti(3);
    lines_add(&l, "SMS FULL");
    lines_add(&l, "+CMGR: 0,,%zu", m.p[0].tpdu_len);
    lines_add(&l, "%s", m.p[0].hex);
    reply("AT+CMGR=3", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);
    expect_rx(&F.rx[0], FROM, "after a stray line", 1);
    assert_int_equal(F.store_changes, 1);
    sms_received_done(F.sms, F.rx[0].token, 0);
    ok("AT+CMGD=3");
    assert_int_equal(F.store_changes, 2);

    /* A failed read, a failed delete: the store did not change. */
    cmti(4);
    reply_full("AT+CMGR=4", AT_FINAL_CMS, 321, NULL, NULL, 0);
    make_deliver(&m2, FROM, "kept", 0);
    cmti(5);
    reply_cmgr(5, 0, &m2.p[0]);
    assert_int_equal(F.store_changes, 3);
    sms_received_done(F.sms, F.rx[1].token, 0);
    reply_full("AT+CMGD=5", AT_FINAL_ERROR, -1, NULL, NULL, 0);
    assert_int_equal(F.store_changes, 3);
    EXPECT_CMDS(1, "AT+CMGR=3", "AT+CMGD=3", "AT+CMGR=4", "AT+CMGR=5", "AT+CMGD=5");
    stop();
}

/* ============================================================================ */
/* 9. +CMT: delivered directly, nothing on the SIM, nothing ever deleted.        */

static void test_cmt_direct(void **state)
{
    static const char *const hdrs[] = { "+CMT: ,", "+CMT: \"\",", "+CMT: \"Alice\"," };
    struct msg m, multi;
    char hdr[64];

    (void)state;
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        start();
        go_ready();
        make_deliver(&m, FROM, "direct", 0);
        snprintf(hdr, sizeof(hdr), "%s%zu", hdrs[i], m.p[0].tpdu_len);
        urc(hdr, m.p[0].hex);
        assert_int_equal(F.n_rx, 1);
        expect_rx(&F.rx[0], FROM, "direct", 1);
        assert_string_equal(F.rx[0].time, TIME_STR);
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(1, NULL);
        stop();
    }

    start();
    go_ready();
    /* Two parts, second first; a failed publish is retried by the drain. */
    make_deliver(&multi, FROM, text3(), 3);
    snprintf(hdr, sizeof(hdr), "+CMT: ,%zu", multi.p[1].tpdu_len);
    urc(hdr, multi.p[1].hex);
    snprintf(hdr, sizeof(hdr), "+CMT: ,%zu", multi.p[0].tpdu_len);
    urc(hdr, multi.p[0].hex);
    snprintf(hdr, sizeof(hdr), "+CMT: ,%zu", multi.p[2].tpdu_len);
    assert_int_equal(F.n_rx, 0);
    urc(hdr, multi.p[2].hex);
    assert_int_equal(F.n_rx, 1);
    expect_rx(&F.rx[0], FROM, text3(), 3);
    sms_received_done(F.sms, F.rx[0].token, -ENOTCONN);
    sms_drain(F.sms);
    assert_int_equal(F.n_rx, 2);
    ok("AT+CMGL=4");
    sms_received_done(F.sms, F.rx[1].token, 0);
    /* Undecodable, and a length that does not parse (dropped). */
    urc("+CMT: ,20", "0004");
    assert_int_equal(F.n_rx, 3);
    assert_true(F.rx[2].undecodable);
    assert_string_equal(F.rx[2].pdu, "0004");
    sms_received_done(F.sms, F.rx[2].token, 0);
    urc("+CMT: ,", "00");
    assert_int_equal(F.n_rx, 3);
    EXPECT_CMDS(1, "AT+CMGL=4");
    stop();
}

/* ============================================================================ */
/* 10. Sending.                                                                 */

static void expect_submit(const struct cmd_rec *c, const char *to, const char *text,
                          struct pdu_msg *out)
{
    size_t len;
    char *end;
    char hex[PDU_HEX_MAX + 8];

    assert_true(c->has_opts);
    assert_string_equal(c->info_prefix, "+CMGS:");
    assert_int_equal(c->timeout_ms, 60000);
    assert_true(c->has_data);
    assert_true(strncmp(c->cmd, "AT+CMGS=", 8) == 0);
    len = strtoul(c->cmd + 8, &end, 10);
    assert_true(*end == '\0' && end > c->cmd + 8);
    /* Hex digits then exactly one Ctrl-Z: no user byte on the line. */
    assert_true(is_hex_then_ctrlz(c->data, c->data_len));
    memcpy(hex, c->data, c->data_len - 1);
    hex[c->data_len - 1] = '\0';
    /* The announced length is the TPDU's (the SMSC field is "00"). */
    assert_true(strncmp(hex, "00", 2) == 0);
    assert_int_equal(c->data_len - 1, 2 + 2 * len);
    assert_int_equal(pdu_decode(hex, strlen(hex), len, out), 0);
    assert_int_equal(out->type, PDU_SUBMIT);
    assert_string_equal(out->addr, to);
    if (text) {
        assert_int_equal(out->text_len, strlen(text));
        assert_memory_equal(out->text, text, strlen(text));
    }
}

static void send_text(const char *to, const char *text, bool flash, bool report)
{
    const struct sms_send_req req = {
        .to = to, .text = text, .text_len = strlen(text), .flash = flash, .report = report,
    };
    sms_send(F.sms, &req, on_sent, &hooks, &F);
}

/* A burst of accepted commands waits in the service's own queue, one
 * AT+CMGS in flight at a time, in arrival order; only beyond 256 waiting
 * SMS is a command refused (busy). The chat's queue is never the limit. */
static void test_send_queue_burst(void **state)
{
    size_t base;

    (void)state;
    start();
    go_ready();
    base = F.n_cmds;
    for (int i = 0; i < 256; i++) {
        char text[16];
        snprintf(text, sizeof(text), "n%d", i);
        send_text("+4917012345678", text, false, false);
    }
    assert_int_equal(F.n_sent, 0);               /* nothing refused */
    assert_int_equal(F.n_cmds - base, 1);        /* one AT+CMGS out */
    send_text("+4917012345678", "one too many", false, false);
    assert_int_equal(F.n_sent, 1);
    assert_false(F.sent[0].ok);
    assert_string_equal(F.sent[0].err.code, "busy");
    assert_int_equal(F.n_cmds - base, 1);
    for (int i = 0; i < 256; i++) {
        struct pdu_msg pm;
        struct lines l = { 0 };
        char want[16];
        struct cmd_rec *c = &F.cmds[F.n_completed];

        assert_int_equal(outstanding(), 1);
        /* the data is the PDU without its Ctrl-Z */
        assert_int_equal(pdu_decode((const char *)c->data, c->data_len - 1, 0, &pm), 0);
        snprintf(want, sizeof(want), "n%d", i);
        assert_string_equal((const char *)pm.text, want);   /* arrival order */
        lines_add(&l, "+CMGS: %d", i);
        reply(c->cmd, AT_FINAL_OK, &l);
        assert_int_equal(F.n_sent, (size_t)i + 2);
        assert_true(F.sent[i + 1].ok);
        assert_int_equal(F.sent[i + 1].res.references[0], i);
    }
    assert_int_equal(outstanding(), 0);
}

static void test_send_single(void **state)
{
    static const struct {
        const char *text;
        bool flash, report;
        const char *cmd;
        const char *hex;            /* NULL: checked by decoding only */
        enum pdu_alphabet alphabet;
    } rows[] = {
        /* 00 SMSC | 11 SUBMIT,VPF | 00 MR | 0C 91 947110325476 | 00 PID | 00 DCS |
         * A7 VP | 05 UDL | C8329BFD06 "Hello" */
        { "Hello", false, false, "AT+CMGS=19", "0011000C91947110325476" "0000A705C8329BFD06",
          PDU_GSM7 },
        { "Hello", false, true, "AT+CMGS=19", "0031000C91947110325476" "0000A705C8329BFD06",
          PDU_GSM7 },
        { "Hello", true, false, "AT+CMGS=19", "0011000C91947110325476" "0010A705C8329BFD06",
          PDU_GSM7 },
        { "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", false, false, "AT+CMGS=26", NULL,
          PDU_UCS2 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct pdu_msg pm;

        start();
        send_text(FROM, rows[i].text, rows[i].flash, rows[i].report);
        assert_int_equal(F.n_sent, 0);           /* waits for the modem */
        EXPECT_CMDS(0, rows[i].cmd);
        expect_submit(&F.cmds[0], FROM, rows[i].text, &pm);
        assert_int_equal(pm.alphabet, rows[i].alphabet);
        assert_int_equal(pm.flash, rows[i].flash);
        assert_int_equal(pm.status_report, rows[i].report);
        assert_false(pm.concat);
        if (rows[i].hex) {
            assert_int_equal(F.cmds[0].data_len, strlen(rows[i].hex) + 1);
            assert_memory_equal(F.cmds[0].data, rows[i].hex, strlen(rows[i].hex));
        }
        struct lines l = { 0 };
        lines_add(&l, "+CMGS: 17");
        reply(rows[i].cmd, AT_FINAL_OK, &l);
        assert_int_equal(F.n_sent, 1);
        assert_true(F.sent[0].ok);
        assert_int_equal(F.sent[0].res.parts, 1);
        assert_int_equal(F.sent[0].res.n_references, 1);
        assert_int_equal(F.sent[0].res.references[0], 17);
        EXPECT_CMDS(0, rows[i].cmd);
        stop();
    }
}

/* A national number or a short code that allow_to lists goes out with
 * type-of-address 129 (0x81, unknown/ISDN): semi-octets swapped, an odd
 * count padded with F. */
static void test_send_national(void **state)
{
    static char *allow[] = { "8888", "0*" };
    static const struct {
        const char *to, *cmd, *hex;
    } rows[] = {
        /* 00 SMSC | 11 SUBMIT,VPF | 00 MR | 04 81 8888 | 00 PID | 00 DCS | A7 VP | 02 "hi" */
        { "8888", "AT+CMGS=12", "0011000481" "8888" "0000A702E834" },
        { "0170123", "AT+CMGS=14", "0011000781" "100721F3" "0000A702E834" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sms_opts o = default_opts();
        struct lines l = { 0 };
        struct pdu_msg pm;

        o.allow_to = allow;
        o.n_allow_to = 2;
        start_with(&o);
        send_text(rows[i].to, "hi", false, false);
        EXPECT_CMDS(0, rows[i].cmd);
        expect_submit(&F.cmds[0], rows[i].to, "hi", &pm);
        assert_int_equal(F.cmds[0].data_len, strlen(rows[i].hex) + 1);
        assert_memory_equal(F.cmds[0].data, rows[i].hex, strlen(rows[i].hex));
        lines_add(&l, "+CMGS: 5");
        reply(rows[i].cmd, AT_FINAL_OK, &l);
        assert_int_equal(F.n_sent, 1);
        assert_true(F.sent[0].ok);
        stop();
    }
}

static void test_send_multipart_in_turn(void **state)
{
    struct pdu_msg pm;
    char got[400] = "";
    size_t got_len = 0;
    int ref = -1;

    (void)state;
    start();
    send_text(FROM, text3(), false, false);
    for (int k = 0; k < 3; k++) {
        char cmd[64]; /* as long as a recorded command */
        struct lines l = { 0 };

        /* Only part k+1 is out: the next waits for this one's answer. */
        assert_int_equal(F.n_cmds, (size_t)k + 1);
        assert_int_equal(outstanding(), 1);
        expect_submit(&F.cmds[k], FROM, NULL, &pm);
        assert_true(pm.concat);
        assert_int_equal(pm.concat_total, 3);
        assert_int_equal(pm.concat_seq, k + 1);
        if (ref < 0)
            ref = pm.concat_ref;
        assert_int_equal(pm.concat_ref, ref);
        assert_true(got_len + pm.text_len < sizeof(got));
        memcpy(got + got_len, pm.text, pm.text_len);
        got_len += pm.text_len;
        got[got_len] = '\0';
        snprintf(cmd, sizeof(cmd), "%s", F.cmds[k].cmd);
        assert_int_equal(F.n_sent, 0);
        lines_add(&l, "+CMGS: %d", 17 + k);
        reply(cmd, AT_FINAL_OK, &l);
    }
    assert_string_equal(got, text3());
    assert_int_equal(F.n_cmds, 3);
    /* Each part was reported started just before its own AT+CMGS, not all
     * at the start: what a crash interrupts is known part by part. */
    assert_string_equal(F.written, "1/3@0 2/3@1 3/3@2 ");
    /* Each part's reference is handed over as soon as its +CMGS came,
     * before the next part is written and before the result: a report for
     * part 1 may arrive before part 2's +CMGS. */
    assert_string_equal(F.part_sent, "1/3=17@1 2/3=18@2 3/3=19@3 ");
    assert_int_equal(F.n_sent, 1);
    assert_true(F.sent[0].ok);
    assert_int_equal(F.sent[0].res.parts, 3);
    assert_int_equal(F.sent[0].res.n_references, 3);
    assert_int_equal(F.sent[0].res.references[0], 17);
    assert_int_equal(F.sent[0].res.references[1], 18);
    assert_int_equal(F.sent[0].res.references[2], 19);
    /* The next message gets another concatenation reference. */
    send_text(FROM, text3(), false, false);
    expect_submit(&F.cmds[3], FROM, NULL, &pm);
    assert_int_equal(pm.concat_ref, (ref + 1) & 0xFF);
    stop();
}

static void test_send_part_fails(void **state)
{
    static const struct {
        enum at_final final;
        int code;
        const char *text;
        const char *err_code, *message;
        int cms, cme;
    } rows[] = {
        { AT_FINAL_CMS, 331, NULL, "modem_error", "no network service (part 2 of 3)", 331, -1 },
        { AT_FINAL_CMS, 500, NULL, "modem_error", "unknown error (part 2 of 3)", 500, -1 },
        { AT_FINAL_CMS, 999, NULL, "modem_error", "SMS error (part 2 of 3)", 999, -1 },
        { AT_FINAL_CMS, -1, "SMSC address unknown", "modem_error",
          "SMSC address unknown (part 2 of 3)", 330, -1 },
        { AT_FINAL_CME, 30, NULL, "modem_error", "no network service (part 2 of 3)", -1, 30 },
        { AT_FINAL_ERROR, -1, NULL, "modem_error",
          "the modem answered ERROR to AT+CMGS (part 2 of 3)", -1, -1 },
        { AT_FINAL_TIMEOUT, -1, NULL, "timeout", "the modem did not answer AT+CMGS (part 2 of 3)",
          -1, -1 },
        { AT_FINAL_CANCELLED, -1, NULL, "unavailable",
          "the modem went away before answering AT+CMGS (part 2 of 3)", -1, -1 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct lines l = { 0 };
        char c1[64], c2[64];

        start();
        send_text(FROM, text3(), false, false);
        snprintf(c1, sizeof(c1), "%s", F.cmds[0].cmd);
        lines_add(&l, "+CMGS: 17");
        reply(c1, AT_FINAL_OK, &l);
        assert_int_equal(F.n_cmds, 2);
        snprintf(c2, sizeof(c2), "%s", F.cmds[1].cmd);
        reply_full(c2, rows[i].final, rows[i].code, rows[i].text, NULL, 0);
        assert_int_equal(F.n_sent, 1);
        assert_false(F.sent[0].ok);
        assert_string_equal(F.sent[0].err.code, rows[i].err_code);
        assert_string_equal(F.sent[0].err.message, rows[i].message);
        assert_int_equal(F.sent[0].err.cms, rows[i].cms);
        assert_int_equal(F.sent[0].err.cme, rows[i].cme);
        /* Part 3 is never sent. */
        assert_int_equal(F.n_cmds, 2);
        assert_int_equal(outstanding(), 0);
        /* Part 1 went out (its report will come); part 2 did not. */
        assert_string_equal(F.part_sent, "1/3=17@1 ");
        stop();
    }
    /* A single part's error says no part number. */
    start();
    send_text(FROM, "x", false, false);
    reply_full("AT+CMGS=15", AT_FINAL_CMS, 331, NULL, NULL, 0);
    assert_string_equal(F.sent[0].err.message, "no network service");
    stop();
}

static void test_send_rejected(void **state)
{
    static char *none[] = { NULL };
    static const struct {
        const char *name;
        const char *to, *text;
        char **allow;
        size_t n_allow;
        int max_parts;
        enum modem_state st;
        bool unsupported;
        int send_ret;
        const char *code, *message;
    } rows[] = {
        { "not allowed", "+442071234567", "hi", allow_49, 1, 5, MODEM_READY, false, 0,
          "not_allowed", "'to' +442071234567 is not in sms.allow_to" },
        { "empty allow list", FROM, "hi", none, 0, 5, MODEM_READY, false, 0, "not_allowed",
          "'to' " FROM " is not in sms.allow_to" },
        { "too many parts", FROM, NULL /* text3 */, allow_49, 1, 2, MODEM_READY, false, 0,
          "too_long", "'text' needs 3 parts; at most 2 allowed (sms.max_parts)" },
        { "more than 16 parts", FROM, "" /* 17 parts */, allow_49, 1, 100, MODEM_READY, false,
          0, "too_long", "'text' needs 17 parts; at most 16 allowed (sms.max_parts)" },
        { "not UTF-8", FROM, "\xff\xfe", allow_49, 1, 5, MODEM_READY, false, 0,
          "invalid_request", "'text' is not valid UTF-8" },
        { "bringup", FROM, "hi", allow_49, 1, 5, MODEM_BRINGUP, false, 0, "unavailable",
          "the modem is not ready (bringup)" },
        { "closed", FROM, "hi", allow_49, 1, 5, MODEM_CLOSED, false, 0, "unavailable",
          "the modem is not ready (closed)" },
        { "sim locked", FROM, "hi", allow_49, 1, 5, MODEM_SIM_LOCKED, false, 0, "unavailable",
          "the modem is not ready (sim_locked)" },
        { "no SMS", FROM, "hi", allow_49, 1, 5, MODEM_READY, true, 0, "unsupported",
          "this module has no SMS (AT+CMGF=0 refused)" },
        { "modem refuses", FROM, "hi", allow_49, 1, 5, MODEM_READY, false, -EAGAIN,
          "unavailable", "the modem is not ready" },
        { "queue full", FROM, "hi", allow_49, 1, 5, MODEM_READY, false, -ENOBUFS, "busy",
          "the modem's command queue is full" },
        { "out of memory", FROM, "hi", allow_49, 1, 5, MODEM_READY, false, -ENOMEM,
          "unavailable", "out of memory" },
        { "national number, \"*\" only", "01701234567", "hi", allow_all, 1, 5, MODEM_READY,
          false, 0, "not_allowed",
          "to \"01701234567\": national numbers and short codes must be listed in "
          "sms.allow_to, exactly or by a digit prefix such as \"0*\" (\"*\" allows E.164 "
          "numbers only)" },
        { "short code, \"+49*\"", "8888", "hi", allow_49, 1, 5, MODEM_READY, false, 0,
          "not_allowed", NULL },
        /* past the allow list by its prefix: the PDU encoder refuses it */
        { "bad address", "+49\r\nAT+CFUN=0", "hi", allow_49, 1, 5, MODEM_READY, false, 0,
          "invalid_request", NULL },
    };
    static char t17[153 * 16 + 2];
    (void)state;
    memset(t17, 'x', sizeof(t17) - 1);
    t17[sizeof(t17) - 1] = '\0';
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sms_opts o = default_opts();
        const char *text = rows[i].text ? (rows[i].text[0] ? rows[i].text : t17) : text3();

        o.allow_to = rows[i].allow;
        o.n_allow_to = rows[i].n_allow;
        o.max_parts = rows[i].max_parts;
        start_with(&o);
        F.state = rows[i].st;
        F.sms_supported = !rows[i].unsupported;
        F.send_ret = rows[i].send_ret;
        send_text(rows[i].to, text, false, false);
        /* Answered before sms_send returned; nothing on the line. */
        assert_int_equal(F.n_sent, 1);
        assert_false(F.sent[0].ok);
        assert_string_equal(F.sent[0].err.code, rows[i].code);
        if (rows[i].message)
            assert_string_equal(F.sent[0].err.message, rows[i].message);
        assert_int_equal(F.sent[0].err.cms, -1);
        assert_int_equal(F.sent[0].err.cme, -1);
        assert_int_equal(F.n_cmds, 0);
        stop();
    }
}

static void test_send_rate_limited(void **state)
{
    struct sms_opts o = default_opts();
    struct lines l = { 0 };

    (void)state;
    o.rate_per_hour = 2;
    start_with(&o);
    lines_add(&l, "+CMGS: 1");
    send_text(FROM, "one", false, false);
    reply(F.cmds[0].cmd, AT_FINAL_OK, &l);
    F.now += 1000;
    send_text("+44123", "refused: does not count", false, false);
    send_text(FROM, "two", false, false);
    reply(F.cmds[1].cmd, AT_FINAL_OK, &l);
    assert_int_equal(F.n_sent, 3);
    assert_true(F.sent[0].ok);
    assert_string_equal(F.sent[1].err.code, "not_allowed");
    assert_true(F.sent[2].ok);

    send_text(FROM, "three", false, false);
    assert_int_equal(F.n_sent, 4);
    assert_string_equal(F.sent[3].err.code, "rate_limited");
    assert_string_equal(F.sent[3].err.message, "more than 2 SMS in the last hour (sms.rate_per_hour)");
    assert_int_equal(F.n_cmds, 2);
    /* An hour after the first, one slot is free again. */
    F.now = T0 + 3600 * 1000 - 1;
    send_text(FROM, "three", false, false);
    assert_string_equal(F.sent[4].err.code, "rate_limited");
    F.now = T0 + 3600 * 1000;
    send_text(FROM, "three", false, false);
    assert_int_equal(F.n_cmds, 3);
    reply(F.cmds[2].cmd, AT_FINAL_OK, &l);
    assert_true(F.sent[5].ok);
    send_text(FROM, "four", false, false);
    assert_string_equal(F.sent[6].err.code, "rate_limited");
    assert_int_equal(F.n_cmds, 3);
    stop();
}

/* User text that would end or add an AT command goes out as hex only. */
static void test_send_injection(void **state)
{
    static const char *const texts[] = {
        "\x1a",
        "\x1b",
        "\r\nAT+CFUN=0\r",
        "a\x1a" "AT+CFUN=0\r\x1b" "b",
        "\"\r\n\x1a\x1b\x00",
        ">\r\n> \x1a",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct pdu_msg pm;
        struct lines l = { 0 };
        const char *t = texts[i];

        start();
        send_text(FROM, t, false, false);
        assert_int_equal(F.n_cmds, 1);
        for (const char *p = F.cmds[0].cmd + 8; *p; p++)
            assert_true(*p >= '0' && *p <= '9');
        expect_submit(&F.cmds[0], FROM, t, &pm);  /* hex + ^Z, decodes back */
        assert_null(memchr(F.cmds[0].data, '\r', F.cmds[0].data_len));
        assert_null(memchr(F.cmds[0].data, '\n', F.cmds[0].data_len));
        assert_null(memchr(F.cmds[0].data, 0x1B, F.cmds[0].data_len));
        assert_ptr_equal(memchr(F.cmds[0].data, 0x1A, F.cmds[0].data_len),
                         F.cmds[0].data + F.cmds[0].data_len - 1);
        lines_add(&l, "+CMGS: 3");
        reply(F.cmds[0].cmd, AT_FINAL_OK, &l);
        assert_true(F.sent[0].ok);
        stop();
    }
}

/* ============================================================================ */
/* 11. The modem goes away with an AT+CMGR in flight.                           */

static void test_modem_gone_mid_read(void **state)
{
    static const struct {
        const char *name;
        bool cancel_first;          /* modem_port.c: state change first, then cancel */
    } rows[] = { { "state then cancel", false }, { "cancel then state", true } };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg a, b;
        struct lines l = { 0 };

        start();
        go_ready();
        make_deliver(&a, FROM, "three", 0);
        make_deliver(&b, FROM, "four", 0);
        cmti(3);
        cmti(4);
        EXPECT_CMDS(1, "AT+CMGR=3");
        if (rows[i].cancel_first)
            reply("AT+CMGR=3", AT_FINAL_CANCELLED, NULL);
        F.state = MODEM_CLOSED;
        sms_modem_ready(F.sms, false);
        if (!rows[i].cancel_first)
            reply("AT+CMGR=3", AT_FINAL_CANCELLED, NULL);
        assert_int_equal(F.n_rx, 0);
        EXPECT_CMDS(1, "AT+CMGR=3");
        assert_int_equal(timers_live(), 0);
        advance(10 * SAFETY_DRAIN_MS);
        EXPECT_CMDS(1, "AT+CMGR=3");

        /* Back: the drain finds both. */
        F.state = MODEM_READY;
        sms_modem_ready(F.sms, true);
        EXPECT_CMDS(1, "AT+CMGR=3", "AT+CMGL=4");
        lines_add(&l, "+CMGL: 3,0,,%zu", a.p[0].tpdu_len);
        lines_add(&l, "%s", a.p[0].hex);
        lines_add(&l, "+CMGL: 4,0,,%zu", b.p[0].tpdu_len);
        lines_add(&l, "%s", b.p[0].hex);
        reply("AT+CMGL=4", AT_FINAL_OK, &l);
        assert_int_equal(F.n_rx, 2);
        expect_rx(&F.rx[0], FROM, "three", 1);
        expect_rx(&F.rx[1], FROM, "four", 1);
        sms_received_done(F.sms, F.rx[0].token, 0);
        sms_received_done(F.sms, F.rx[1].token, 0);
        EXPECT_CMDS(1, "AT+CMGR=3", "AT+CMGL=4", "AT+CMGD=3", "AT+CMGD=4");
        stop();
    }

    /* A listing cancelled the same way is sent again at the next ready. */
    start();
    sms_modem_ready(F.sms, true);
    F.state = MODEM_CLOSED;
    sms_modem_ready(F.sms, false);
    reply("AT+CMGL=4", AT_FINAL_CANCELLED, NULL);
    F.state = MODEM_READY;
    sms_modem_ready(F.sms, true);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGL=4");
    stop();
}

/* A +CMTI that comes while the modem is not ready (after AT+CNMI in the
 * bring-up, before READY) is read once it is. */
static void test_cmti_while_not_ready(void **state)
{
    struct msg a;
    struct lines l = { 0 };

    (void)state;
    start();
    go_ready();
    F.state = MODEM_BRINGUP;
    sms_modem_ready(F.sms, false);
    make_deliver(&a, FROM, "early", 0);
    cmti(7);
    EXPECT_CMDS(1, NULL);
    F.state = MODEM_READY;
    sms_modem_ready(F.sms, true);
    lines_add(&l, "+CMGL: 7,0,,%zu", a.p[0].tpdu_len);
    lines_add(&l, "%s", a.p[0].hex);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    /* Read once, either by the listing or by AT+CMGR. */
    if (F.n_rx == 0) {
        EXPECT_CMDS(1, "AT+CMGL=4", "AT+CMGR=7");
        reply_cmgr(7, 0, &a.p[0]);
    } else {
        EXPECT_CMDS(1, "AT+CMGL=4");
    }
    assert_int_equal(F.n_rx, 1);
    expect_rx(&F.rx[0], FROM, "early", 1);
    stop();
}

/* Never an SMS published twice: the listing must not take a message whose AT+CMGD is queued
 * behind it. Otherwise: published twice, and (the slot is free again once
 * the CMGD ran) the next SMS stored at that index is ignored as "known" and
 * then deleted by the duplicate's ack without ever being published. */
static void test_delete_queued_behind_listing(void **state)
{
    struct msg old, fresh;
    struct lines l = { 0 };
    size_t mark;

    (void)state;
    start();
    go_ready();
    make_deliver(&old, FROM, "old", 0);
    make_deliver(&fresh, "+4930123456", "fresh", 0);
    cmti(3);
    reply_cmgr(3, 0, &old.p[0]);
    assert_int_equal(F.n_rx, 1);
    mark = F.n_cmds;
    sms_drain(F.sms);                            /* broker reconnect / safety drain */
    sms_received_done(F.sms, F.rx[0].token, 0);  /* the ack comes meanwhile */
    EXPECT_CMDS(mark, "AT+CMGL=4", "AT+CMGD=3");
    /* The listing ran before the delete: index 3 is still there. */
    lines_add(&l, "+CMGL: 3,1,,%zu", old.p[0].tpdu_len);
    lines_add(&l, "%s", old.p[0].hex);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);                 /* not published again */
    ok("AT+CMGD=3");
    /* A new SMS takes the free slot 3. */
    cmti(3);
    EXPECT_CMDS(mark, "AT+CMGL=4", "AT+CMGD=3", "AT+CMGR=3");
    reply_cmgr(3, 0, &fresh.p[0]);
    assert_int_equal(F.n_rx, 2);
    expect_rx(&F.rx[1], "+4930123456", "fresh", 1);
    sms_received_done(F.sms, F.rx[1].token, 0);
    EXPECT_CMDS(mark, "AT+CMGL=4", "AT+CMGD=3", "AT+CMGR=3", "AT+CMGD=3");
    /* A delete that failed leaves the message for the next listing. */
    reply("AT+CMGD=3", AT_FINAL_CMS, NULL);
    sms_drain(F.sms);
    memset(&l, 0, sizeof(l));
    lines_add(&l, "+CMGL: 3,1,,%zu", fresh.p[0].tpdu_len);
    lines_add(&l, "%s", fresh.p[0].hex);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 3);
    expect_rx(&F.rx[2], "+4930123456", "fresh", 1);
    stop();
}

/* --- status reports ---------------------------------------------------------- */

/* SMS-STATUS-REPORTs as the A7670 hands them over (no SMSC field):
 * reference 77 to FROM, submitted at TIME_STR, delivered 5 s later; and
 * reference 255, validity period expired (0x46) a week later, TP-PI 00. */
#define REPORT_OK "00064D0C91947110325476621112600000406211126000504000"
#define REPORT_OK_LEN 25
#define REPORT_EXPIRED "0006FF0D91947110325476F862114160000040621112600000404600"
#define REPORT_EXPIRED_LEN 27

static void expect_report(const struct rx_rec *r, uint8_t mr, const char *to, uint8_t status)
{
    assert_true(r->report);
    assert_int_equal(r->mr, mr);
    assert_string_equal(r->from, to);
    assert_int_equal(r->status, status);
}

/* +CDS (AT+CNMI ds=1): published; nothing stored, so nothing deleted and
 * no key recorded. */
static void test_report_cds(void **state)
{
    static const char *const hdrs[] = { "+CDS: 25", "+CDS:25", "+CDS:  25" };
    struct sms_opts o = default_opts();

    (void)state;
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        start_cbs(&o, true);
        go_ready();
        urc(hdrs[i], REPORT_OK);
        assert_int_equal(F.n_rx, 1);
        expect_report(&F.rx[0], 77, FROM, 0x00);
        assert_string_equal(F.rx[0].time, TIME_STR);
        assert_string_equal(F.rx[0].discharge, "2026-11-21T06:00:05+01:00");
        sms_received_done(F.sms, F.rx[0].token, 0);
        EXPECT_CMDS(1, NULL);
        assert_int_equal(F.n_acked, 0);
        stop();
    }
    /* A length that does not parse, or that is not the PDU's: dropped
     * (the latter as an undecodable PDU, like a +CMT). */
    start();
    go_ready();
    urc("+CDS: ", REPORT_OK);
    urc("+CDS: x", REPORT_OK);
    assert_int_equal(F.n_rx, 0);
    urc("+CDS: 24", REPORT_OK);
    assert_int_equal(F.n_rx, 1);
    assert_true(F.rx[0].undecodable);
    EXPECT_CMDS(1, NULL);
}

/* +CDSI (ds=2): read, published, deleted after the ack, also with
 * keep_on_sim (that keeps messages; reports would fill the SIM). */
static void test_report_cdsi(void **state)
{
    struct sms_opts o = default_opts();
    struct lines l = { 0 };

    (void)state;
    o.keep_on_sim = true;
    start_cbs(&o, true);
    sms_modem_ready(F.sms, true);
    ok("AT+CMGL=0");
    urc("+CDSI: \"SM\",4", NULL);
    EXPECT_CMDS(1, "AT+CMGR=4");
    lines_add(&l, "+CMGR: 0,,%d", REPORT_EXPIRED_LEN);
    lines_add(&l, "%s", REPORT_EXPIRED);
    reply("AT+CMGR=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);
    expect_report(&F.rx[0], 255, "+4917012345678", 0x46);
    assert_string_equal(F.rx[0].discharge, "2026-11-21T06:00:00+01:00");
    EXPECT_CMDS(1, "AT+CMGR=4");                 /* not before the ack */
    sms_received_done(F.sms, F.rx[0].token, 0);
    EXPECT_CMDS(1, "AT+CMGR=4", "AT+CMGD=4");
    assert_int_equal(F.n_acked, 1);              /* recorded before the delete */
    assert_non_null(strstr(F.acked[0], "@4"));
    /* A report in the module's own "SR" store is not ours to read. */
    urc("+CDSI: \"SR\",2", NULL);
    urc("+CDSI: \"SM\",x", NULL);
    /* Malformed: the store unquoted, or garbage after the index. */
    urc("+CDSI: SM,5", NULL);
    urc("+CMTI: \"SM\",6,", NULL);
    EXPECT_CMDS(1, "AT+CMGR=4", "AT+CMGD=4");
}

/* Found by the listing next to a message; a failed publish keeps it on
 * the SIM and the next drain publishes it again. */
static void test_report_listed(void **state)
{
    struct msg m;
    struct lines l = { 0 };

    (void)state;
    start();
    make_deliver(&m, FROM, "hello", 0);
    sms_modem_ready(F.sms, true);
    lines_add(&l, "+CMGL: 1,1,,%zu", m.p[0].tpdu_len);
    lines_add(&l, "%s", m.p[0].hex);
    lines_add(&l, "+CMGL: 2,0,,%d", REPORT_OK_LEN);
    lines_add(&l, "%s", REPORT_OK);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 2);
    expect_rx(&F.rx[0], FROM, "hello", 1);
    expect_report(&F.rx[1], 77, FROM, 0x00);
    sms_received_done(F.sms, F.rx[0].token, 0);
    sms_received_done(F.sms, F.rx[1].token, -ENOTCONN);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=1");
    sms_drain(F.sms);
    assert_int_equal(F.n_rx, 3);
    expect_report(&F.rx[2], 77, FROM, 0x00);
    /* The listing that follows does not take index 2 a second time. */
    memset(&l, 0, sizeof(l));
    lines_add(&l, "+CMGL: 2,1,,%d", REPORT_OK_LEN);
    lines_add(&l, "%s", REPORT_OK);
    reply("AT+CMGD=1", AT_FINAL_OK, NULL);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 3);
    sms_received_done(F.sms, F.rx[2].token, 0);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=1", "AT+CMGL=4", "AT+CMGD=2");
}

/* Killed between the ack and the delete: after the restart the report is
 * deleted, not published twice. */
static void test_report_acked_before_restart(void **state)
{
    struct sms_opts o = default_opts();
    struct lines l = { 0 };
    char key[64];

    (void)state;
    lines_add(&l, "+CMGL: 5,1,,%d", REPORT_EXPIRED_LEN);
    lines_add(&l, "%s", REPORT_EXPIRED);
    start_cbs(&o, true);
    sms_modem_ready(F.sms, true);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 1);
    sms_received_done(F.sms, F.rx[0].token, 0);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=5");
    assert_int_equal(F.n_acked, 1);
    snprintf(key, sizeof(key), "%s", F.acked[0]);

    start_cbs(&o, true);                         /* the restart: AT+CMGD never ran */
    snprintf(F.acked[F.n_acked++], sizeof(F.acked[0]), "%s", key);
    sms_modem_ready(F.sms, true);
    reply("AT+CMGL=4", AT_FINAL_OK, &l);
    assert_int_equal(F.n_rx, 0);
    EXPECT_CMDS(0, "AT+CMGL=4", "AT+CMGD=5");
}

/* sms.delivery_reports: TP-SRR on every SMS; the result says a report
 * will come, and to whom the SMS went. */
static void test_send_delivery_reports(void **state)
{
    struct sms_opts o = default_opts();
    struct pdu_msg pm;
    struct lines l = { 0 };

    (void)state;
    lines_add(&l, "+CMGS: 9");
    for (int on = 0; on <= 1; on++) {
        o.delivery_reports = on;
        start_with(&o);
        send_text(FROM, "Hello", false, false);
        expect_submit(&F.cmds[0], FROM, "Hello", &pm);
        assert_int_equal(pm.status_report, on);
        reply(F.cmds[0].cmd, AT_FINAL_OK, &l);
        assert_true(F.sent[0].ok);
        assert_int_equal(F.sent[0].res.report, on);
        assert_string_equal(F.sent[0].res.to, FROM);
        send_text(FROM, "Hello", false, true);   /* "report": true */
        expect_submit(&F.cmds[1], FROM, "Hello", &pm);
        assert_true(pm.status_report);
        reply(F.cmds[1].cmd, AT_FINAL_OK, &l);
        assert_true(F.sent[1].res.report);
    }
}

/* sms_free with messages in reassembly, publishing, reads and sends in
 * flight: no leak (ASan / valgrind), every timer cancelled. */
static void test_free_busy(void **state)
{
    struct msg m;

    (void)state;
    start();
    go_ready();
    make_deliver(&m, FROM, text3(), 1);
    cmti(1);
    reply_cmgr(1, 0, &m.p[0]);                   /* in reassembly */
    cmti(2);
    cmti(3);                                     /* a read in flight, one queued */
    urc("+CMT: ,20", "0004");                    /* undecodable, publishing */
    send_text(FROM, text3(), false, false);      /* a send in flight */
    assert_int_equal(F.n_rx, 1);
    assert_true(F.rx[0].undecodable);
    assert_true(timers_live() >= 1);             /* reassembly */
    stop();                                      /* asserts no timer left */
}

/* test_sms [pattern]: only the tests matching the pattern (cmocka's). */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_send_queue_burst, teardown),
        cmocka_unit_test_teardown(test_single_via_cmti, teardown),
        cmocka_unit_test_teardown(test_publish_failure_then_drain, teardown),
        cmocka_unit_test_teardown(test_multipart_any_order, teardown),
        cmocka_unit_test_teardown(test_reassembly_timeout, teardown),
        cmocka_unit_test_teardown(test_timeout_while_broker_down, teardown),
        cmocka_unit_test_teardown(test_drain_at_ready, teardown),
        cmocka_unit_test_teardown(test_drain_listing_forms, teardown),
        cmocka_unit_test_teardown(test_safety_drain, teardown),
        cmocka_unit_test_teardown(test_keep_on_sim, teardown),
        cmocka_unit_test_teardown(test_undecodable, teardown),
        cmocka_unit_test_teardown(test_not_incoming_left_alone, teardown),
        cmocka_unit_test_teardown(test_cmgr_without_message, teardown),
        cmocka_unit_test_teardown(test_cmgr_stray_line_and_store_changes, teardown),
        cmocka_unit_test_teardown(test_cmt_direct, teardown),
        cmocka_unit_test_teardown(test_send_single, teardown),
        cmocka_unit_test_teardown(test_send_national, teardown),
        cmocka_unit_test_teardown(test_send_multipart_in_turn, teardown),
        cmocka_unit_test_teardown(test_send_part_fails, teardown),
        cmocka_unit_test_teardown(test_send_rejected, teardown),
        cmocka_unit_test_teardown(test_send_rate_limited, teardown),
        cmocka_unit_test_teardown(test_send_injection, teardown),
        cmocka_unit_test_teardown(test_modem_gone_mid_read, teardown),
        cmocka_unit_test_teardown(test_cmti_while_not_ready, teardown),
        cmocka_unit_test_teardown(test_delete_queued_behind_listing, teardown),
        cmocka_unit_test_teardown(test_report_cds, teardown),
        cmocka_unit_test_teardown(test_report_cdsi, teardown),
        cmocka_unit_test_teardown(test_report_listed, teardown),
        cmocka_unit_test_teardown(test_report_acked_before_restart, teardown),
        cmocka_unit_test_teardown(test_send_delivery_reports, teardown),
        cmocka_unit_test_teardown(test_free_busy, teardown),
    };

    log_set_level(LOG_ERROR);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
