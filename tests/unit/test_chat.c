/* at/chat: table-driven A7670 transcripts against a fake transport and a
 * fake clock.
 *
 * A case is a script of steps (send, feed bytes, tick, cancel, ...) and the
 * exact trace it must produce: every byte written, every completion, every
 * URC and block, in order. Each case runs
 *   - with every FEED step fed whole ("--" lines mark MARK steps),
 *   - with every FEED step fed one byte at a time,
 *   - with the FEED steps between two other steps joined into one stream
 *     (MARKs dropped) and that stream split in two at every byte boundary,
 * and all runs must give the same trace (less the "--" lines when joined).
 *
 * Trace lines:
 *   W:<bytes>                  a write     Wfail:<bytes>  a write that failed
 *   done#<i> <final> <code>[ "<text>"][ trunc][ err=<e>]{ <line>}
 *   urc<table> <line>{ <extra line>}      blk <bytes>    rb <rc>
 *   send#<i> <rc>              a refused at_chat_send
 *   sched <ms>                 (cases with .sched) a transport->schedule call
 *   idle=<0|1>                 an IDLE step
 *   synced=<0|1>               the transport's synced() (a resync ended)
 *   written#<i>                opts.written of command i (just before its W:)
 *   wanted#<i> <0|1>           opts.still_wanted of command i and its answer
 *   dtr=<0|1>                  (cases with .sleep AT_SLEEP_DTR) tr.set_dtr
 * Bytes outside 0x20..0x7e (and '\') appear as \xNN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at/chat.h"
#include "core/log.h"

#define TRACE_MAX 16384
#define MAX_CMDS 8
#define MAX_STEPS 40
#define T0 100000 /* the fake clock's start */

struct cmd_spec {
    const char *cmd;
    const char *info;
    const char *after_ok;
    const char *data;
    size_t data_len;
    int timeout_ms;
    int then; /* 1 + index of a spec the done callback sends; 0: none */
    bool expect_info;
    bool written; /* trace "written#<i>" from opts.written */
    int wanted;   /* 0: no opts.still_wanted; 1: it answers true; 2: false */
};

enum step_kind { S_END = 0, S_SEND, S_FEED, S_TICK, S_CANCEL, S_MARK, S_WFAIL, S_IDLE, S_RESYNC };

struct step {
    enum step_kind kind;
    const char *bytes;
    size_t len;
    int arg;
};

#define SEND(i) {S_SEND, NULL, 0, (i)}
#define FEED(lit) {S_FEED, (lit), sizeof(lit) - 1, 0}
#define TICK(ms) {S_TICK, NULL, 0, (ms)} /* advance the clock, at_chat_tick() */
#define CANCEL {S_CANCEL, NULL, 0, 0}
#define MARK {S_MARK, NULL, 0, 0}
#define WFAIL {S_WFAIL, NULL, 0, 0} /* the next write fails with -EIO */
#define IDLE {S_IDLE, NULL, 0, 0}
#define RESYNC(discard) {S_RESYNC, NULL, 0, (discard)} /* at_chat_resync() */
#define DATA(lit) .data = (lit), .data_len = sizeof(lit) - 1

struct chat_case {
    const char *name;
    struct cmd_spec cmds[MAX_CMDS];
    struct step steps[MAX_STEPS];
    const char *want;
    size_t max_queue; /* 0: 3 */
    size_t max_lines; /* 0: the chat's default */
    bool sched;
    int cmti_sends; /* 1 + index of a spec the +CMTI handler sends */
    bool owner_cancels; /* synced(false) -> at_chat_cancel_all, as modem_port.c does */
    enum at_chat_sleep sleep; /* at_chat_set_sleep after at_chat_new */
};

struct harness;

struct cmd_ctx {
    struct harness *h;
    int idx;
};

struct harness {
    const struct chat_case *c;
    struct at_chat *chat;
    int64_t now;
    int fail_next;
    char trace[TRACE_MAX];
    size_t n;
    bool print_marks;
    struct cmd_ctx ctx[MAX_CMDS];
};

static void put(struct harness *h, const char *s)
{
    size_t len = strlen(s);

    assert_true(h->n + len < TRACE_MAX);
    memcpy(h->trace + h->n, s, len + 1);
    h->n += len;
}

static void putf(struct harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct harness *h, const char *fmt, ...)
{
    char b[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    put(h, b);
}

static void put_escaped(struct harness *h, const uint8_t *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\')
            putf(h, "%c", d[i]);
        else
            putf(h, "\\x%02x", d[i]);
    }
}

/* ---- fake transport ---- */

static int tr_write(void *ctx, const uint8_t *buf, size_t len)
{
    struct harness *h = ctx;
    int rc = h->fail_next;

    h->fail_next = 0;
    put(h, rc ? "Wfail:" : "W:");
    put_escaped(h, buf, len);
    put(h, "\n");
    return rc;
}

static int64_t tr_now(void *ctx)
{
    return ((struct harness *)ctx)->now;
}

static void tr_synced(void *ctx, bool ok)
{
    struct harness *h = ctx;

    putf(h, "synced=%d\n", ok);
    if (!ok && h->c->owner_cancels)
        at_chat_cancel_all(h->chat);
}

static int tr_set_dtr(void *ctx, bool on)
{
    putf(ctx, "dtr=%d\n", on);
    return 0;
}

static void tr_schedule(void *ctx, int64_t deadline)
{
    struct harness *h = ctx;

    if (h->c->sched)
        putf(h, "sched %lld\n", (long long)deadline);
}

/* ---- callbacks ---- */

static void send_spec(struct harness *h, int idx);

static void done_cb(void *ctx, const struct at_response *rsp)
{
    struct cmd_ctx *cc = ctx;
    struct harness *h = cc->h;

    assert_null(rsp->lines[rsp->n_lines]);
    putf(h, "done#%d %s %d", cc->idx, at_final_name(rsp->final), rsp->code);
    if (rsp->text)
        putf(h, " \"%s\"", rsp->text);
    if (rsp->truncated)
        put(h, " trunc");
    if (rsp->error)
        putf(h, " err=%d", rsp->error);
    for (size_t i = 0; i < rsp->n_lines; i++) {
        put(h, " <");
        put_escaped(h, (const uint8_t *)rsp->lines[i], strlen(rsp->lines[i]));
        put(h, ">");
    }
    put(h, "\n");
    if (h->c->cmds[cc->idx].then)
        send_spec(h, h->c->cmds[cc->idx].then - 1);
}

static void on_written(void *ctx)
{
    struct cmd_ctx *cc = ctx;

    putf(cc->h, "written#%d\n", cc->idx);
}

static bool on_still_wanted(void *ctx)
{
    struct cmd_ctx *cc = ctx;
    bool wanted = cc->h->c->cmds[cc->idx].wanted == 1;

    putf(cc->h, "wanted#%d %d\n", cc->idx, wanted);
    return wanted;
}

static void send_spec(struct harness *h, int idx)
{
    const struct cmd_spec *s = &h->c->cmds[idx];
    struct at_cmd_opts o = {
        .timeout_ms = s->timeout_ms,
        .info_prefix = s->info,
        .after_ok_prefix = s->after_ok,
        .data = (const uint8_t *)s->data,
        .data_len = s->data_len,
        .expect_info = s->expect_info,
        .written = s->written ? on_written : NULL,
        .still_wanted = s->wanted ? on_still_wanted : NULL,
    };
    int rc = at_chat_send(h->chat, s->cmd, &o, done_cb, &h->ctx[idx]);

    if (rc)
        putf(h, "send#%d %d\n", idx, rc);
}

/* The URC table's ctx is the harness; the table name comes from the entry. */
struct urc_ctx {
    struct harness *h;
    const char *table;
};

static struct harness *current; /* for the static tables' handlers */

static void trace_urc(const char *table, const char *const *lines, size_t n)
{
    struct harness *h = current;

    putf(h, "urc%s", table);
    for (size_t i = 0; i < n; i++) {
        put(h, " <");
        put_escaped(h, (const uint8_t *)lines[i], strlen(lines[i]));
        put(h, ">");
    }
    put(h, "\n");
}

static void urc_a(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    trace_urc("a", lines, n);
}

static void urc_b(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    trace_urc("b", lines, n);
}

static void urc_cmti(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    trace_urc("a", lines, n);
    if (current->c->cmti_sends)
        send_spec(current, current->c->cmti_sends - 1);
}

/* "+CMQTTNONET": the network is gone; the test's owner gives up on all. */
static void urc_cancel(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    trace_urc("b", lines, n);
    at_chat_cancel_all(current->chat);
}

static void on_blk(void *ctx, const uint8_t *data, size_t len)
{
    struct harness *h = ctx;

    put(h, "blk ");
    put_escaped(h, data, len);
    put(h, "\n");
}

/* +CMQTTRXTOPIC: 0,<n> and +CMQTTRXPAYLOAD: 0,<n>: n raw bytes follow. */
static void urc_rx(void *ctx, const char *const *lines, size_t n)
{
    const char *comma = strrchr(lines[0], ',');
    int rc;

    (void)ctx;
    trace_urc("a", lines, n);
    assert_non_null(comma);
    rc = at_chat_read_block(current->chat, strtoul(comma + 1, NULL, 10), on_blk, current);
    if (rc)
        putf(current, "rb %d\n", rc);
}

/* "+CMQTTCONNLOST": a pending AT+CMQTTSUB will never get its result. */
static void urc_abort(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    trace_urc("a", lines, n);
    putf(current, "abort=%d\n", at_chat_abort(current->chat, "AT+CMQTTSUB"));
}

static const struct at_urc table_a[] = {
    {"+CMTI:", 0, urc_cmti},
    {"+CMT:", 1, urc_a},
    {"RING", 0, urc_a},
    {"+CLIP:", 0, urc_a},
    {"+CPIN:", 0, urc_a},
    {"*ATREADY:", 0, urc_a},
    {"SMS DONE", 0, urc_a},
    {"PB DONE", 0, urc_a},
    {"RDY", 0, urc_a},
    {"+CMQTTRXSTART:", 0, urc_a},
    {"+CMQTTRXTOPIC:", 0, urc_rx},
    {"+CMQTTRXPAYLOAD:", 0, urc_rx},
    {"+CMQTTRXEND:", 0, urc_a},
    {"+CMQTTCONNLOST:", 0, urc_abort},
};

/* Registered second: "+CPIN: READY" never wins over table_a's "+CPIN:". */
static const struct at_urc table_b[] = {
    {"+CPIN: READY", 0, urc_b},
    {"VOICE CALL:", 0, urc_b},
    {"+CDS:", 1, urc_b},
    {"+CREG:", 0, urc_b},
    {"+CMQTTNONET", 0, urc_cancel},
};

/* ---- running a case ---- */

enum mode { M_STEPS, M_BYTES, M_JOINED };

static void setup(struct harness *h, const struct chat_case *c)
{
    struct at_chat_opts o = {
        .default_timeout_ms = 5000,
        .max_queue = c->max_queue ? c->max_queue : 3,
        .sync_attempts = 3,
        .max_line = 400,
        .max_block = 1500,
        .max_lines = c->max_lines,
    };
    struct at_transport tr = {tr_write, tr_now, tr_schedule, h, tr_synced, tr_set_dtr};

    memset(h, 0, sizeof(*h));
    h->c = c;
    h->now = T0;
    for (int i = 0; i < MAX_CMDS; i++)
        h->ctx[i] = (struct cmd_ctx){h, i};
    current = h;
    h->chat = at_chat_new(&o, &tr);
    assert_non_null(h->chat);
    assert_int_equal(at_chat_add_urcs(h->chat, table_a, sizeof(table_a) / sizeof(table_a[0]), h),
                     0);
    assert_int_equal(at_chat_add_urcs(h->chat, table_b, sizeof(table_b) / sizeof(table_b[0]), h),
                     0);
    assert_int_equal(at_chat_set_sleep(h->chat, c->sleep), 0);
}

static void feed(struct harness *h, const uint8_t *d, size_t len, bool bytewise)
{
    if (bytewise) {
        for (size_t i = 0; i < len; i++)
            at_chat_feed(h->chat, d + i, 1);
    } else {
        at_chat_feed(h->chat, d, len);
    }
}

/* Joined mode: the bytes of consecutive FEED/MARK steps. */
struct joined {
    uint8_t buf[4096];
    size_t len;
    int seg; /* segments flushed so far */
};

static void flush(struct harness *h, struct joined *j, int split_seg, size_t split_at)
{
    if (j->len == 0)
        return;
    if (j->seg == split_seg) {
        assert_true(split_at <= j->len);
        at_chat_feed(h->chat, j->buf, split_at);
        at_chat_feed(h->chat, j->buf + split_at, j->len - split_at);
    } else {
        at_chat_feed(h->chat, j->buf, j->len);
    }
    j->seg++;
    j->len = 0;
}

static void run(struct harness *h, const struct chat_case *c, enum mode mode, int split_seg,
                size_t split_at, struct joined *j)
{
    setup(h, c);
    j->len = 0;
    j->seg = 0;
    for (const struct step *s = c->steps; s->kind != S_END; s++) {
        if (mode == M_JOINED) {
            if (s->kind == S_FEED) {
                assert_true(j->len + s->len <= sizeof(j->buf));
                memcpy(j->buf + j->len, s->bytes, s->len);
                j->len += s->len;
                continue;
            }
            if (s->kind == S_MARK)
                continue;
            flush(h, j, split_seg, split_at);
        }
        switch (s->kind) {
        case S_SEND:
            send_spec(h, s->arg);
            break;
        case S_FEED:
            feed(h, (const uint8_t *)s->bytes, s->len, mode == M_BYTES);
            break;
        case S_TICK:
            h->now += s->arg;
            at_chat_tick(h->chat);
            break;
        case S_CANCEL:
            at_chat_cancel_all(h->chat);
            break;
        case S_MARK:
            put(h, "--\n");
            break;
        case S_WFAIL:
            h->fail_next = -EIO;
            break;
        case S_IDLE:
            putf(h, "idle=%d\n", at_chat_idle(h->chat));
            break;
        case S_RESYNC:
            at_chat_resync(h->chat, s->arg, "test");
            break;
        default:
            fail();
        }
    }
    if (mode == M_JOINED)
        flush(h, j, split_seg, split_at);
    at_chat_free(h->chat);
    current = NULL;
}

/* Segment lengths of the joined mode. */
static int segments(const struct chat_case *c, size_t *lens, int max)
{
    int n = 0;
    size_t cur = 0;

    for (const struct step *s = c->steps; s->kind != S_END; s++) {
        if (s->kind == S_FEED) {
            cur += s->len;
        } else if (s->kind != S_MARK && cur > 0) {
            assert_true(n < max);
            lens[n++] = cur;
            cur = 0;
        }
    }
    if (cur > 0) {
        assert_true(n < max);
        lens[n++] = cur;
    }
    return n;
}

static void strip_marks(const char *in, char *out, size_t size)
{
    size_t o = 0;

    while (*in) {
        if (strncmp(in, "--\n", 3) == 0) {
            in += 3;
            continue;
        }
        assert_true(o + 1 < size);
        out[o++] = *in++;
    }
    out[o] = 0;
}

static void check(const struct chat_case *c, const struct harness *h, const char *want,
                  const char *mode, int seg, size_t at)
{
    if (strcmp(h->trace, want) != 0) {
        print_error("case '%s' (%s, segment %d split at %zu):\n--- want\n%s--- got\n%s", c->name,
                    mode, seg, at, want, h->trace);
        fail();
    }
}

static void run_case(const struct chat_case *c)
{
    static struct harness h;
    static struct joined j;
    static char joined_want[TRACE_MAX];
    size_t lens[16];
    int nseg = segments(c, lens, 16);

    run(&h, c, M_STEPS, -1, 0, &j);
    check(c, &h, c->want, "steps", -1, 0);
    run(&h, c, M_BYTES, -1, 0, &j);
    check(c, &h, c->want, "bytewise", -1, 0);
    strip_marks(c->want, joined_want, sizeof(joined_want));
    for (int s = 0; s < nseg; s++) {
        for (size_t k = 0; k <= lens[s]; k++) {
            run(&h, c, M_JOINED, s, k, &j);
            check(c, &h, joined_want, "joined", s, k);
        }
    }
}

/* ---- transcripts ---- */

/* SMS-SUBMIT to +491591234567, "hellohello": 23 TPDU octets after "00". */
#define SUBMIT_PDU "0011000C919419513254760000AA0AE8329BFD4697D9EC37"
/* SMS-DELIVER from +491591234567, "Hallo Welt!", 29 TPDU octets. */
#define DELIVER_PDU "07919471080000F0040C919419513254760000621112615060800BC8309BFD065DCB6C7A08"
#define DELIVER_PDU2 "07919471080000F0040C919419513254760000621112615070800AE8329BFD4697D9EC37"

/* The resync markers of a chat with the default seed, attempts 1, 2, 3. */
#define M1 "ATV1V1V1V1V1E1V1V1E1V1E1V1V1V1V1V1"
#define M2 "ATV1E1E1V1V1E1V1V1V1V1E1E1E1V1V1V1"
#define M3 "ATV1E1V1E1E1V1E1V1V1V1V1V1V1V1E1E1"
/* A resync that works at the first attempt, from its ESC on (the module
 * answers each step at once; the drains wait AT_CHAT_QUIET_MS). */
#define SYNC_STEPS(marker)                                                            \
    TICK(200), FEED("ATE1\r\r\nOK\r\n"), TICK(200), FEED(marker "\r\r\nOK\r\n"), MARK, \
        FEED("ATE0\r\r\nOK\r\n")
#define SYNC_WANT(marker)                                                             \
    "W:ATE1\\x0d\n"                                                                  \
    "W:" marker "\\x0d\n"                                                            \
    "W:ATE0\\x0d\n"                                                                  \
    "--\n"                                                                            \
    "synced=1\n"

#define X10 "AAAAAAAAAA"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X401 X100 X100 X100 X100 "B"

static const struct chat_case cases[] = {
    {
        .name = "echo on, then ATE0",
        .cmds = {{"ATE0"}, {"AT+CSQ", .info = "+CSQ:"}},
        .steps = {SEND(0), SEND(1), FEED("ATE0\r\r\nOK\r\n"), MARK,
                  FEED("\r\n+CSQ: 14,99\r\n\r\nOK\r\n")},
        .want = "W:ATE0\\x0d\n"
                "done#0 OK -1\n"
                "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#1 OK -1 <+CSQ: 14,99>\n",
    },
    {
        .name = "+CMTI between echo and +CSQ, handler sends AT+CMGR",
        .cmds = {{"AT+CSQ", .info = "+CSQ:"}, {"AT+CMGR=3", .info = "+CMGR:"}},
        .cmti_sends = 2,
        .steps = {SEND(0),
                  FEED("AT+CSQ\r\r\n+CMTI: \"SM\",3\r\n\r\n+CSQ: 14,99\r\n\r\nOK\r\n"),
                  FEED("AT+CMGR=3\r\r\n+CMGR: 0,,29\r\n" DELIVER_PDU "\r\n\r\nOK\r\n")},
        .want = "W:AT+CSQ\\x0d\n"
                "urca <+CMTI: \"SM\",3>\n"
                "done#0 OK -1 <+CSQ: 14,99>\n"
                "W:AT+CMGR=3\\x0d\n"
                "done#1 OK -1 <+CMGR: 0,,29> <" DELIVER_PDU ">\n",
    },
    {
        .name = "+CMTI while idle: the handler's command starts at once",
        .cmds = {{"AT+CMGR=7", .info = "+CMGR:"}},
        .cmti_sends = 1,
        .steps = {FEED("\r\n+CMTI: \"SM\",7\r\n"), MARK,
                  FEED("\r\n+CMGR: 0,,29\r\n" DELIVER_PDU "\r\n\r\nOK\r\n"), IDLE},
        .want = "urca <+CMTI: \"SM\",7>\n"
                "W:AT+CMGR=7\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CMGR: 0,,29> <" DELIVER_PDU ">\n"
                "idle=1\n",
    },
    {
        .name = "URC handler cancels everything mid-command",
        .cmds = {{"AT+CMQTTPUB=0,1,60", .after_ok = "+CMQTTPUB:"}, {"AT+CSQ"}, {"AT"}},
        .steps = {SEND(0), SEND(1), FEED("\r\nOK\r\n\r\n+CMQTTNONET\r\n\r\n+CMQTTPUB: 0,11\r\n"),
                  IDLE, SEND(2), FEED("\r\nOK\r\n")},
        .want = "W:AT+CMQTTPUB=0,1,60\\x0d\n"
                "urcb <+CMQTTNONET>\n"
                "done#0 CANCELLED -1\n"
                "done#1 CANCELLED -1\n"
                "idle=1\n"
                "W:AT\\x0d\n"
                "done#2 OK -1\n",
    },
    {
        .name = "+CMGL two messages",
        .cmds = {{"AT+CMGL=4", .info = "+CMGL:"}},
        .steps = {SEND(0), FEED("\r\n+CMGL: 1,1,,29\r\n" DELIVER_PDU "\r\n+CMGL: 2,0,,28\r\n"
                                DELIVER_PDU2 "\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGL=4\\x0d\n"
                "done#0 OK -1 <+CMGL: 1,1,,29> <" DELIVER_PDU "> <+CMGL: 2,0,,28> <" DELIVER_PDU2
                ">\n",
    },
    {
        .name = "+CMGL bounded to max_lines",
        .max_lines = 3,
        .cmds = {{"AT+CMGL=4", .info = "+CMGL:"}, {"AT"}},
        .steps = {SEND(0), SEND(1),
                  FEED("\r\n+CMGL: 1,1,,29\r\n" DELIVER_PDU "\r\n+CMGL: 2,0,,28\r\n" DELIVER_PDU2
                       "\r\n\r\nOK\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGL=4\\x0d\n"
                "done#0 OK -1 trunc <+CMGL: 1,1,,29> <" DELIVER_PDU "> <+CMGL: 2,0,,28>\n"
                "W:AT\\x0d\n"
                "done#1 OK -1\n",
    },
    {
        .name = "CMGS: data only after the prompt",
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000}},
        .steps = {SEND(0), MARK, FEED("\r\n"), MARK, FEED("> "), MARK,
                  FEED("\r\n+CMGS: 5\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGS=23\\x0d\n"
                "--\n"
                "--\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#0 OK -1 <+CMGS: 5>\n",
    },
    {
        .name = "CMGS with echo on: command and data echo dropped",
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000}},
        .steps = {SEND(0), FEED("AT+CMGS=23\r\r\n> "), MARK,
                  FEED(SUBMIT_PDU "\x1a\r\n+CMGS: 6\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGS=23\\x0d\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#0 OK -1 <+CMGS: 6>\n",
    },
    {
        .name = "+CMS ERROR: 331 after the prompt",
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a")}, {"AT+CNMA"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n> "), MARK,
                  FEED("\r\n+CMS ERROR: 331\r\n\r\n+CMS ERROR:340\r\n")},
        .want = "W:AT+CMGS=23\\x0d\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#0 +CMS ERROR 331\n"
                "W:AT+CNMA\\x0d\n"
                "done#1 +CMS ERROR 340\n",
    },
    {
        .name = "CMQTTSTART: OK, a URC, then the result",
        .cmds = {{"AT+CMQTTSTART", .after_ok = "+CMQTTSTART:", .timeout_ms = 12000},
                 {"AT+CMQTTACCQ=0,\"m2m\",0"}},
        .steps = {SEND(0), SEND(1), FEED("AT+CMQTTSTART\r\r\nOK\r\n"), MARK,
                  FEED("\r\nRING\r\n"), MARK, FEED("\r\n+CMQTTSTART: 0\r\n"), MARK,
                  FEED("AT+CMQTTACCQ=0,\"m2m\",0\r\r\nOK\r\n")},
        .want = "W:AT+CMQTTSTART\\x0d\n"
                "--\n"
                "urca <RING>\n"
                "--\n"
                "done#0 OK -1 <+CMQTTSTART: 0>\n"
                "W:AT+CMQTTACCQ=0,\"m2m\",0\\x0d\n"
                "--\n"
                "done#1 OK -1\n",
    },
    {
        .name = "CMQTTDISC: result before OK, then after",
        .cmds = {{"AT+CMQTTDISC=0,120", .after_ok = "+CMQTTDISC:"},
                 {"AT+CMQTTDISC=1,120", .after_ok = "+CMQTTDISC:"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n+CMQTTDISC: 0,0\r\n"), MARK, FEED("\r\nOK\r\n"), MARK,
                  FEED("\r\nOK\r\n"), MARK, FEED("\r\n+CMQTTDISC: 1,0\r\n")},
        .want = "W:AT+CMQTTDISC=0,120\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CMQTTDISC: 0,0>\n"
                "W:AT+CMQTTDISC=1,120\\x0d\n"
                "--\n"
                "--\n"
                "done#1 OK -1 <+CMQTTDISC: 1,0>\n",
    },
    {
        .name = "CMQTTSTOP failure: result then ERROR; CMQTT errors without OK",
        .cmds = {{"AT+CMQTTSTOP", .after_ok = "+CMQTTSTOP:"},
                 {"AT+CMQTTSTART", .after_ok = "+CMQTTSTART:"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n+CMQTTSTOP: 21\r\n\r\nERROR\r\n"),
                  FEED("\r\n+CME ERROR: 14\r\n")},
        .want = "W:AT+CMQTTSTOP\\x0d\n"
                "done#0 ERROR -1 <+CMQTTSTOP: 21>\n"
                "W:AT+CMQTTSTART\\x0d\n"
                "done#1 +CME ERROR 14\n",
    },
    {
        .name = "+CME ERROR numeric and verbose, +CPIN: READY later",
        .cmds = {{"AT+CPIN?", .info = "+CPIN:"},
                 {"AT+CPIN?", .info = "+CPIN:"},
                 {"AT+CPIN?", .info = "+CPIN:"},
                 {"AT+CMGD=1"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n+CME ERROR: 13\r\n"),
                  FEED("\r\n+CME ERROR: SIM busy \r\n\r\n+CPIN: READY\r\n"), SEND(2),
                  FEED("\r\n+CPIN: READY\r\n\r\nOK\r\n"), SEND(3), FEED("\r\n+CMS ERROR: 304\r\n")},
        .want = "W:AT+CPIN?\\x0d\n"
                "done#0 +CME ERROR 13\n"
                "W:AT+CPIN?\\x0d\n"
                "done#1 +CME ERROR -1 \"SIM busy\"\n"
                "urca <+CPIN: READY>\n"
                "W:AT+CPIN?\\x0d\n"
                "done#2 OK -1 <+CPIN: READY>\n"
                "W:AT+CMGD=1\\x0d\n"
                "done#3 +CMS ERROR 304\n",
    },
    {
        .name = "timeout: resync; the late answer is dropped, not the next command's",
        .sched = true,
        .cmds = {{"AT+CSQ", .info = "+CSQ:", .timeout_ms = 1000}, {"AT+CREG?", .info = "+CREG:"}},
        .steps = {SEND(0), SEND(1), FEED("AT+CSQ\r\r\n"), TICK(999), MARK, TICK(1), MARK,
                  FEED("\r\n+CSQ: 14,99\r\n\r\nOK\r\n"), TICK(200), FEED("ATE1\r\r\nOK\r\n"),
                  TICK(200), FEED(M1 "\r\r\nOK\r\n"), MARK, FEED("ATE0\r\r\nOK\r\n"), MARK,
                  FEED("\r\n+CREG: 0,1\r\n\r\nOK\r\n"), IDLE},
        .want = "W:AT+CSQ\\x0d\n"
                "sched 101000\n"
                "sched 101000\n"
                "--\n"
                "done#0 TIMEOUT -1\n"
                "sched 101200\n"
                "W:\\x1b\n"
                "--\n"
                "W:ATE1\\x0d\n"
                "sched 101400\n"
                "W:" M1 "\\x0d\n"
                "sched 102400\n"
                "W:ATE0\\x0d\n"
                "--\n"
                "synced=1\n"
                "W:AT+CREG?\\x0d\n"
                "sched 106400\n"
                "--\n"
                "done#1 OK -1 <+CREG: 0,1>\n"
                "sched -1\n"
                "idle=1\n",
    },
    {
        /* A hung module shows in 5 s, not in CMGS's minute; once the data
         * is written the network gets the whole minute. */
        .name = "CMGS: the prompt within the plain timeout, then its own from the data",
        .sched = true,
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000}},
        .steps = {SEND(0), TICK(3000), MARK, FEED("\r\n> "), MARK, TICK(10000), MARK,
                  FEED("\r\n+CMGS: 5\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGS=23\\x0d\n"
                "sched 105000\n"
                "sched 105000\n"
                "--\n"
                "sched 163000\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "sched 163000\n"
                "--\n"
                "done#0 OK -1 <+CMGS: 5>\n"
                "sched -1\n",
    },
    {
        .name = "CMGS: no prompt within the plain timeout: timeout, nothing sent",
        .sched = true,
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000}},
        .steps = {SEND(0), TICK(4999), MARK, TICK(1)},
        .want = "W:AT+CMGS=23\\x0d\n"
                "sched 105000\n"
                "sched 105000\n"
                "--\n"
                "done#0 TIMEOUT -1\n"
                "sched 105200\n"
                "W:\\x1b\n",   /* the resync begins; the PDU never went */
    },
    {
        .name = "timeout at the prompt: ESC, and its OK is not the next command's",
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000},
                 {"AT+CSQ", .info = "+CSQ:"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n> "), MARK, TICK(60000), MARK,
                  FEED("\r\n+CMTI: \"SM\",4\r\n"), MARK, FEED("\r\nOK\r\n"), MARK, SYNC_STEPS(M1),
                  MARK, FEED("\r\n+CSQ: 20,99\r\n\r\nOK\r\n")},
        .want = "W:AT+CMGS=23\\x0d\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#0 TIMEOUT -1\n"
                "W:\\x1b\n"
                "--\n"
                "urca <+CMTI: \"SM\",4>\n"
                "--\n"
                "--\n" SYNC_WANT(M1) "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#1 OK -1 <+CSQ: 20,99>\n",
    },
    {
        .name = "no answer to the marker: a new attempt with a new marker",
        .cmds = {{"AT+CMQTTPAYLOAD=0,5", DATA("hello"), .timeout_ms = 3000}, {"AT"}},
        .steps = {SEND(0), SEND(1), FEED("\r\n>"), TICK(3000), IDLE, TICK(200), TICK(200),
                  FEED(M1 "\r\r\n"), MARK, TICK(1000), MARK, SYNC_STEPS(M2), MARK,
                  FEED("\r\nOK\r\n")},
        .want = "W:AT+CMQTTPAYLOAD=0,5\\x0d\n"
                "W:hello\n"
                "done#0 TIMEOUT -1\n"
                "W:\\x1b\n"
                "idle=0\n"
                "W:ATE1\\x0d\n"
                "W:" M1 "\\x0d\n"
                "--\n"
                "W:\\x1b\n"
                "--\n" SYNC_WANT(M2) "W:AT\\x0d\n"
                "--\n"
                "done#1 OK -1\n",
    },
    {
        /* A command without data expects no prompt: "> " is a line of text
         * (the one fed before the command is its first half). */
        .name = "'>' while no data is pending is text; resync on timeout",
        .cmds = {{"AT+CMQTTTOPIC=0,9", .timeout_ms = 2000}},
        .steps = {FEED("\r\n> "), SEND(0), FEED("\r\n> "), TICK(2000)},
        .want = "W:AT+CMQTTTOPIC=0,9\\x0d\n"
                "done#0 TIMEOUT -1 <> >\n"
                "W:\\x1b\n",
    },
    {
        /* A killed process left an answer, a RING and a half-open prompt:
         * none of it is taken for ours, and commands wait for the sync. */
        .name = "resync at open: stale output discarded unread, commands held",
        .cmds = {{"AT+CPIN?", .info = "+CPIN:", .expect_info = true}},
        .steps = {RESYNC(1), FEED("\r\nOK\r\n\r\nRING\r\n"), SEND(0), IDLE,
                  FEED("\r\n+CFUN: 1\r\n\r\nOK\r\n\r\nRING\r\n> "), TICK(200),
                  FEED("\r\nOK\r\n\r\nRING\r\n"), TICK(200), FEED("\r\nOK\r\n\r\n+CLIP: \"1\"\r\n"),
                  FEED("ATV1E1V1\r\r\nOK\r\n"), MARK, FEED(M1 "\r\r\n\r\nRING\r\n\r\nOK\r\n"), MARK,
                  FEED("ATE0\r\r\nOK\r\n"), MARK, FEED("\r\n+CPIN: READY\r\n\r\nOK\r\n")},
        .want = "W:\\x1b\n"
                "idle=0\n"
                "W:ATE1\\x0d\n"
                "W:" M1 "\\x0d\n"
                "--\n"
                "urca <RING>\n"
                "W:ATE0\\x0d\n"
                "--\n"
                "synced=1\n"
                "W:AT+CPIN?\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CPIN: READY>\n",
    },
    {
        .name = "a final result with no command in flight: resync before the next",
        .cmds = {{"AT+CSQ", .info = "+CSQ:"}},
        .steps = {FEED("\r\nOK\r\n"), SEND(0), SYNC_STEPS(M1), MARK,
                  FEED("\r\n+CSQ: 9,99\r\n\r\nOK\r\n")},
        .want = "W:\\x1b\n" SYNC_WANT(M1) "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CSQ: 9,99>\n",
    },
    {
        /* AT+CPIN? answered with another command's lines: never read as
         * "no +CPIN: line, so the SIM is locked". */
        .name = "expect_info: OK without the info line is OUT OF STEP and a resync",
        .cmds = {{"AT+CPIN?", .info = "+CPIN:", .expect_info = true},
                 {"AT+CPIN?", .info = "+CPIN:", .expect_info = true}},
        .steps = {SEND(0), SEND(1), FEED("\r\n+CFUN: 1\r\n\r\nOK\r\n"), MARK, SYNC_STEPS(M1), MARK,
                  FEED("\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n")},
        .want = "W:AT+CPIN?\\x0d\n"
                "done#0 OUT OF STEP -1 <+CFUN: 1>\n"
                "W:\\x1b\n"
                "--\n" SYNC_WANT(M1) "W:AT+CPIN?\\x0d\n"
                "--\n"
                "done#1 OK -1 <+CPIN: SIM PIN>\n",
    },
    {
        /* A stray OK before AT+CMQTTTOPIC's prompt: taken as its answer,
         * the topic would never be written and the publish go out with
         * the previous one. An error before the prompt is the command's. */
        .name = "data command: OK before the prompt is OUT OF STEP and a resync",
        .cmds = {{"AT+CMQTTTOPIC=0,9", DATA("m2m/topic"), .timeout_ms = 2000},
                 {"AT+CMQTTTOPIC=0,9", DATA("m2m/topic"), .timeout_ms = 2000}},
        .steps = {SEND(0), SEND(1), FEED("\r\nOK\r\n"), MARK, SYNC_STEPS(M1), MARK,
                  FEED("\r\nERROR\r\n")},
        .want = "W:AT+CMQTTTOPIC=0,9\\x0d\n"
                "done#0 OUT OF STEP -1\n"
                "W:\\x1b\n"
                "--\n" SYNC_WANT(M1) "W:AT+CMQTTTOPIC=0,9\\x0d\n"
                "--\n"
                "done#1 ERROR -1\n",
    },
    {
        .name = "resync gives up after every attempt; the queue waits; cancel_all frees it",
        .cmds = {{"AT+CSQ"}},
        .steps = {RESYNC(0), SEND(0), TICK(200), TICK(200), TICK(1000), TICK(200), TICK(200),
                  TICK(1000), TICK(200), TICK(200), TICK(1000), IDLE, CANCEL, IDLE},
        .max_queue = 3,
        .want = "W:\\x1b\n"
                "W:ATE1\\x0d\n"
                "W:" M1 "\\x0d\n"
                "W:\\x1b\n"
                "W:ATE1\\x0d\n"
                "W:" M2 "\\x0d\n"
                "W:\\x1b\n"
                "W:ATE1\\x0d\n"
                "W:" M3 "\\x0d\n"
                "synced=0\n"
                "idle=0\n"
                "done#0 CANCELLED -1\n"
                "idle=1\n",
    },
    {
        /* What reached the module is what may have taken effect: the hook
         * runs when the line is written, not when it is queued. */
        .name = "written: called right before the command line goes out",
        .cmds = {{"AT+CSQ", .written = true}, {"AT+CMGS=23", DATA(SUBMIT_PDU "\x1a"), .written = true}},
        .steps = {SEND(0), SEND(1), IDLE, FEED("\r\nOK\r\n"), MARK, FEED("\r\n> "), MARK,
                  FEED("\r\n+CMGS: 1\r\n\r\nOK\r\n")},
        .want = "written#0\n"
                "W:AT+CSQ\\x0d\n"
                "idle=0\n"
                "done#0 OK -1\n"
                "written#1\n"
                "W:AT+CMGS=23\\x0d\n"
                "--\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#1 OK -1 <+CMGS: 1>\n",
    },
    {
        /* The alarm's AT+CHUP queued behind a long command, for a call that
         * ended meanwhile: asked when its turn comes, it is dropped with
         * nothing written, and the next command goes. */
        .name = "still_wanted: asked at the command's turn; false drops it unwritten",
        .cmds = {{"AT+COPS=?"}, {"AT+CHUP", .wanted = 2}, {"AT+CLCC", .wanted = 1}},
        .steps = {SEND(0), SEND(1), SEND(2), MARK, FEED("\r\nOK\r\n"), MARK, TICK(0), MARK,
                  FEED("\r\nOK\r\n")},
        .want = "W:AT+COPS=?\\x0d\n"
                "--\n"
                "done#0 OK -1\n"
                "wanted#1 0\n"
                "--\n"
                "done#1 CANCELLED -1 err=-125\n"
                "wanted#2 1\n"
                "W:AT+CLCC\\x0d\n"
                "--\n"
                "done#2 OK -1\n",
    },
    {
        /* Found by fuzz_chat: the resync's ESC fails at once, the owner
         * closes the port (cancel_all) from synced(), all before the timed
         * out command was completed. */
        .name = "timeout, the resync's first write fails, the owner cancels all",
        .owner_cancels = true,
        .cmds = {{"AT+CSQ", .timeout_ms = 1000}, {"AT+CREG?"}},
        .steps = {SEND(0), SEND(1), WFAIL, TICK(1000), IDLE},
        .want = "W:AT+CSQ\\x0d\n"
                "done#0 TIMEOUT -1\n"
                "Wfail:\\x1b\n"
                "synced=0\n"
                "done#1 CANCELLED -1\n"
                "idle=1\n",
    },
    {
        .name = "'>' of a USSD menu while no data is pending is an info line",
        .cmds = {{"AT+CUSD=1,\"*100#\",15"}},
        .steps = {SEND(0), FEED("\r\n> 1 Balance\r\n\r\nOK\r\n")},
        .want = "W:AT+CUSD=1,\"*100#\",15\\x0d\n"
                "done#0 OK -1 <> 1 Balance>\n",
    },
    {
        .name = "+CMT with its PDU line while a command is in flight",
        .cmds = {{"AT+CSQ", .info = "+CSQ:"}},
        .steps = {SEND(0), FEED("AT+CSQ\r\r\n\r\n+CMT: ,29\r\n" DELIVER_PDU
                                "\r\n\r\n+CSQ: 14,99\r\n\r\nOK\r\n")},
        .want = "W:AT+CSQ\\x0d\n"
                "urca <+CMT: ,29> <" DELIVER_PDU ">\n"
                "done#0 OK -1 <+CSQ: 14,99>\n",
    },
    {
        .name = "+CMT's PDU is taken even if it looks like a final result",
        .cmds = {{"AT"}},
        .steps = {FEED("\r\n+CMT: \"\",2\r\n"), SEND(0), FEED("OK\r\n\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "urca <+CMT: \"\",2> <OK>\n"
                "done#0 OK -1\n",
    },
    {
        .name = "RING, +CLIP, ATA, VOICE CALL, BUSY",
        .cmds = {{"ATA"}, {"ATD+491591234567;"}},
        .steps = {FEED("\r\nRING\r\n\r\n+CLIP: \"+491591234567\",145,,,,0\r\n"), SEND(0),
                  FEED("\r\nOK\r\n\r\nVOICE CALL: BEGIN\r\n"), SEND(1), FEED("\r\nBUSY\r\n")},
        .want = "urca <RING>\n"
                "urca <+CLIP: \"+491591234567\",145,,,,0>\n"
                "W:ATA\\x0d\n"
                "done#0 OK -1\n"
                "urcb <VOICE CALL: BEGIN>\n"
                "W:ATD+491591234567;\\x0d\n"
                "done#1 BUSY -1\n",
    },
    {
        .name = "NO CARRIER, NO ANSWER, NO DIALTONE",
        .cmds = {{"ATD112;"}, {"ATD113;"}, {"ATD114;"}},
        .steps = {SEND(0), SEND(1), SEND(2),
                  FEED("\r\nNO CARRIER\r\n\r\nNO ANSWER\r\n\r\nNO DIALTONE\r\n")},
        .want = "W:ATD112;\\x0d\n"
                "done#0 NO CARRIER -1\n"
                "W:ATD113;\\x0d\n"
                "done#1 NO ANSWER -1\n"
                "W:ATD114;\\x0d\n"
                "done#2 NO DIALTONE -1\n",
    },
    {
        .name = "CMQTT RX: blocks with CR, LF, NUL, in two payload chunks",
        .steps = {FEED("\r\n+CMQTTRXSTART: 0,9,7\r\n+CMQTTRXTOPIC: 0,9\r\nhome/cmd1\r\n"
                       "+CMQTTRXPAYLOAD: 0,3\r\nA\r\n\r\n+CMQTTRXPAYLOAD: 0,4\r\nB\0C\n\r\n"
                       "+CMQTTRXEND: 0\r\n")},
        .want = "urca <+CMQTTRXSTART: 0,9,7>\n"
                "urca <+CMQTTRXTOPIC: 0,9>\n"
                "blk home/cmd1\n"
                "urca <+CMQTTRXPAYLOAD: 0,3>\n"
                "blk A\\x0d\\x0a\n"
                "urca <+CMQTTRXPAYLOAD: 0,4>\n"
                "blk B\\x00C\\x0a\n"
                "urca <+CMQTTRXEND: 0>\n",
    },
    {
        .name = "CMQTT RX between OK and +CMQTTPUB, payload looks like results",
        .cmds = {{"AT+CMQTTPUB=0,1,60", .after_ok = "+CMQTTPUB:"}},
        .steps = {SEND(0),
                  FEED("\r\nOK\r\n\r\n+CMQTTRXSTART: 0,1,13\r\n+CMQTTRXTOPIC: 0,1\r\nt\r\n"
                       "+CMQTTRXPAYLOAD: 0,13\r\nOK\r\n> ERROR\r\n\r\n+CMQTTRXEND: 0\r\n"
                       "\r\n+CMQTTPUB: 0,0\r\n")},
        .want = "W:AT+CMQTTPUB=0,1,60\\x0d\n"
                "urca <+CMQTTRXSTART: 0,1,13>\n"
                "urca <+CMQTTRXTOPIC: 0,1>\n"
                "blk t\n"
                "urca <+CMQTTRXPAYLOAD: 0,13>\n"
                "blk OK\\x0d\\x0a> ERROR\\x0d\\x0a\n"
                "urca <+CMQTTRXEND: 0>\n"
                "done#0 OK -1 <+CMQTTPUB: 0,0>\n",
    },
    {
        .name = "CMQTT RX chunk larger than max_block stays lines",
        .steps = {FEED("\r\n+CMQTTRXPAYLOAD: 0,1501\r\nabc\r\n")},
        .want = "urca <+CMQTTRXPAYLOAD: 0,1501>\n"
                "rb -90\n",
    },
    {
        .name = "SIM7600 CR CR LF and boot URCs; unknown URC dropped",
        .cmds = {{"AT+CSQ", .info = "+CSQ:"}},
        .steps = {FEED("\r\nRDY\r\r\n\r\n*ATREADY: 1\r\n\r\n+CPIN: READY\r\r\n\r\n+CGEV: EPS PDN "
                       "ACT 1\r\n\r\nSMS DONE\r\r\n"),
                  SEND(0), FEED("AT+CSQ\r\r\r\n+CSQ: 20,99\r\r\n\r\r\nPB DONE\r\r\nOK\r\r\n")},
        .want = "urca <RDY>\n"
                "urca <*ATREADY: 1>\n"
                "urca <+CPIN: READY>\n"
                "urca <SMS DONE>\n"
                "W:AT+CSQ\\x0d\n"
                "urca <PB DONE>\n"
                "done#0 OK -1 <+CSQ: 20,99>\n",
    },
    {
        .name = "overflow: line dropped, response truncated, recovery",
        .cmds = {{"AT+CMGR=1", .info = "+CMGR:"}, {"AT+CSQ", .info = "+CSQ:"}},
        .steps = {SEND(0), SEND(1),
                  FEED("\r\n+CMGR: 0,,29\r\n" X401 "\r\n\r\nOK\r\n\r\n+CSQ: 9,99\r\n\r\nOK\r\n"),
                  FEED("\r\n+CMT: ,200\r\n" X401 "\r\nRING\r\n")},
        .want = "W:AT+CMGR=1\\x0d\n"
                "done#0 OK -1 trunc <+CMGR: 0,,29>\n"
                "W:AT+CSQ\\x0d\n"
                "done#1 OK -1 <+CSQ: 9,99>\n"
                "urca <RING>\n",
    },
    {
        .name = "queue full; a done callback may still send",
        .max_queue = 1,
        .cmds = {{"AT+CGMI", .then = 4}, {"AT+CGMM"}, {"AT+CGMR"}, {"AT+CGSN"}},
        .steps = {SEND(0), SEND(1), SEND(2), FEED("\r\nSIMCOM INCORPORATED\r\n\r\nOK\r\n"),
                  FEED("\r\nA7670E-LASE\r\n\r\nOK\r\n"), FEED("\r\n860000000000001\r\nOK\r\n")},
        .want = "W:AT+CGMI\\x0d\n"
                "send#2 -105\n"
                "done#0 OK -1 <SIMCOM INCORPORATED>\n"
                "W:AT+CGMM\\x0d\n"
                "done#1 OK -1 <A7670E-LASE>\n"
                "W:AT+CGSN\\x0d\n"
                "done#3 OK -1 <860000000000001>\n",
    },
    {
        .name = "command injection rejected, nothing written",
        .cmds = {{"AT\r+CFUN=0"},
                 {"AT\nAT"},
                 {"AT+CMGS=1\x1a"},
                 {"AT\x1b"},
                 {""},
                 {"AT", .data_len = 3},
                 {"AT", .timeout_ms = -1},
                 {X401}},
        .steps = {SEND(0), SEND(1), SEND(2), SEND(3), SEND(4), SEND(5), SEND(6), SEND(7), IDLE},
        .want = "send#0 -22\n"
                "send#1 -22\n"
                "send#2 -22\n"
                "send#3 -22\n"
                "send#4 -22\n"
                "send#5 -22\n"
                "send#6 -22\n"
                "send#7 -90\n"
                "idle=1\n",
    },
    {
        .name = "done callback sends: FIFO behind the queued one, started once",
        .cmds = {{"AT+CMGF=0", .then = 3}, {"AT+CPMS=\"SM\",\"SM\",\"SM\""}, {"AT+CNMI=2,1,0,0,0"}},
        .steps = {SEND(0), SEND(1), FEED("\r\nOK\r\n"), MARK,
                  FEED("\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n"), MARK, FEED("\r\nOK\r\n")},
        .want = "W:AT+CMGF=0\\x0d\n"
                "done#0 OK -1\n"
                "W:AT+CPMS=\"SM\",\"SM\",\"SM\"\\x0d\n"
                "--\n"
                "done#1 OK -1 <+CPMS: 0,30,0,30,0,30>\n"
                "W:AT+CNMI=2,1,0,0,0\\x0d\n"
                "--\n"
                "done#2 OK -1\n",
    },
    {
        .name = "cancel_all: in flight and queued; callbacks' commands survive",
        .cmds = {{"AT+CMGL=4", .info = "+CMGL:"},
                 {"AT+CSQ", .then = 4},
                 {"AT+CREG?"},
                 {"AT"}},
        .steps = {SEND(0), SEND(1), SEND(2), FEED("\r\n+CMGL: 1,1,,29\r\n0791"), CANCEL, MARK,
                  FEED("9471080000F0\r\n\r\nOK\r\n"), IDLE},
        .want = "W:AT+CMGL=4\\x0d\n"
                "done#0 CANCELLED -1 <+CMGL: 1,1,,29>\n"
                "done#1 CANCELLED -1\n"
                "done#2 CANCELLED -1\n"
                "W:AT\\x0d\n"
                "--\n"
                "done#3 OK -1 <9471080000F0>\n"
                "idle=1\n",
    },
    {
        .name = "+CMQTTCONNLOST aborts the AT+CMQTTSUB waiting after OK, resyncs, not others",
        .cmds = {{"AT+CMQTTSUB=0", .after_ok = "+CMQTTSUB:"}, {"AT+CSQ", .info = "+CSQ:"}},
        .steps = {SEND(0), SEND(1), FEED("\r\nOK\r\n"), MARK, FEED("\r\n+CMQTTCONNLOST: 0,3\r\n"),
                  MARK, SYNC_STEPS(M1), MARK, FEED("\r\n+CSQ: 14,99\r\n\r\nOK\r\n"), MARK,
                  FEED("\r\n+CMQTTCONNLOST: 0,3\r\n")},
        .want = "W:AT+CMQTTSUB=0\\x0d\n"
                "--\n"
                "urca <+CMQTTCONNLOST: 0,3>\n"
                "done#0 CANCELLED -1\n"
                "W:\\x1b\n"
                "abort=1\n"
                "--\n" SYNC_WANT(M1) "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#1 OK -1 <+CSQ: 14,99>\n"
                "--\n"
                "urca <+CMQTTCONNLOST: 0,3>\n"
                "abort=0\n",
    },
    {
        .name = "write failure completes CANCELLED from the tick; a late final resyncs",
        .sched = true,
        .cmds = {{"AT+CSQ"}, {"AT+CREG?"}, {"AT+CMGS=23", DATA(SUBMIT_PDU "\x1a")}},
        .steps = {WFAIL, SEND(0), SEND(1), IDLE, TICK(0), FEED("\r\nOK\r\n"), SEND(2), WFAIL,
                  FEED("\r\n> "), TICK(5), FEED("\r\n+CMS ERROR: 304\r\n")},
        .want = "Wfail:AT+CSQ\\x0d\n"
                "sched 100000\n"
                "idle=0\n"
                "done#0 CANCELLED -1 err=-5\n"
                "W:AT+CREG?\\x0d\n"
                "sched 105000\n"
                "done#1 OK -1\n"
                "sched -1\n"
                "W:AT+CMGS=23\\x0d\n"
                "sched 105000\n"
                "Wfail:" SUBMIT_PDU "\\x1a\n"
                "sched 100000\n"
                "done#2 CANCELLED -1 err=-5\n"
                "sched -1\n"
                /* Its answer, after all: nobody asked for it any more. */
                "W:\\x1b\n"
                "sched 100205\n",
    },

    /* ---- a sleeping module (AT+CSCLK): the chat's clock starts at T0
     * with nothing ever written, so the first command wakes it ---- */
    {
        .name = "sleep rx: a lone AT first; its OK lets the command go at once",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CSQ", .info = "+CSQ:", .expect_info = true}},
        .steps = {SEND(0), FEED("\r\nOK\r\n"), MARK, FEED("\r\n+CSQ: 14,99\r\n\r\nOK\r\n"), IDLE},
        .want = "W:AT\\x0d\n"
                "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CSQ: 14,99>\n"
                "idle=1\n",
    },
    {
        /* The usual case: the 'A' woke the module and was lost. */
        .name = "sleep rx: no answer to the wake: the command after 100 ms, no timeout",
        .sleep = AT_SLEEP_RX,
        .sched = true,
        .cmds = {{"AT+CMGD=1"}},
        .steps = {SEND(0), TICK(99), MARK, TICK(1), MARK, FEED("\r\nOK\r\n"), MARK, TICK(199),
                  MARK, TICK(1), IDLE},
        .want = "W:AT\\x0d\n"
                "sched 100100\n"
                "sched 100100\n"
                "--\n"
                "W:AT+CMGD=1\\x0d\n"
                "sched 105100\n"
                "--\n"
                /* The wake's OK or its own: held until the line is quiet. */
                "sched 100300\n"
                "--\n"
                "sched 100300\n"
                "--\n"
                "done#0 OK -1\n"
                "sched -1\n"
                "idle=1\n",
    },
    {
        .name = "sleep rx: no wake within 5 s of the last write; one after 5 s",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGD=1"}, {"AT+CMGD=2"}, {"AT+CMGD=3"}},
        .steps = {SEND(0), FEED("\r\nOK\r\n"), MARK, FEED("\r\nOK\r\n"), TICK(4999), SEND(1),
                  FEED("\r\nOK\r\n"), TICK(5000), SEND(2), FEED("\r\nOK\r\n"), MARK,
                  FEED("\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "W:AT+CMGD=1\\x0d\n"
                "--\n"
                "done#0 OK -1\n"
                "W:AT+CMGD=2\\x0d\n"
                "done#1 OK -1\n"
                "W:AT\\x0d\n"
                "W:AT+CMGD=3\\x0d\n"
                "--\n"
                "done#2 OK -1\n",
    },
    {
        /* Without the wake's bookkeeping: OUT OF STEP and a resync. */
        .name = "sleep rx: a late wake OK before the info line is the wake's",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CSQ", .info = "+CSQ:", .expect_info = true}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), MARK,
                  FEED("\r\n+CSQ: 14,99\r\n\r\nOK\r\n"), IDLE},
        .want = "W:AT\\x0d\n"
                "W:AT+CSQ\\x0d\n"
                "--\n"
                "done#0 OK -1 <+CSQ: 14,99>\n"
                "idle=1\n",
    },
    {
        /* Never "sent" on the wake's OK: the PDU goes after the prompt. */
        .name = "sleep rx: a late wake OK while AT+CMGS waits for its prompt is the wake's",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), MARK, FEED("\r\n> "), MARK,
                  FEED("\r\n+CMGS: 5\r\n\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "W:AT+CMGS=23\\x0d\n"
                "--\n"
                "W:" SUBMIT_PDU "\\x1a\n"
                "--\n"
                "done#0 OK -1 <+CMGS: 5>\n",
    },
    {
        /* The module answers in order: the first OK was the wake's. */
        .name = "sleep rx: two OKs in the late window: the second is the plain command's",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGD=1"}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), MARK, FEED("\r\nOK\r\n"), IDLE},
        .want = "W:AT\\x0d\n"
                "W:AT+CMGD=1\\x0d\n"
                "--\n"
                "done#0 OK -1\n"
                "idle=1\n",
    },
    {
        /* Without the hold: done OK on the wake's OK, the ERROR swallowed. */
        .name = "sleep rx: a late wake OK, then the plain command's ERROR: it failed",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"ATD+4917012345678;"}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), MARK, TICK(50),
                  FEED("\r\nERROR\r\n"), MARK, TICK(1000), IDLE},
        .want = "W:AT\\x0d\n"
                "W:ATD+4917012345678;\\x0d\n"
                "--\n"
                "done#0 ERROR -1\n"
                "--\n"
                "idle=1\n",
    },
    {
        /* The command never reached the module: no OK can be its own. */
        .name = "sleep rx: the command's write fails; the wake's late OK does not complete it",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"ATD+4917012345678;"}},
        .steps = {SEND(0), WFAIL, TICK(100), MARK, FEED("\r\nOK\r\n"), MARK, TICK(0), IDLE},
        .want = "W:AT\\x0d\n"
                "Wfail:ATD+4917012345678;\\x0d\n"
                "--\n"
                "--\n"
                "done#0 CANCELLED -1 err=-5\n"
                "idle=1\n",
    },
    {
        .name = "sleep rx: a late wake OK, then a plain command's info and OK",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CGMI"}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), MARK,
                  FEED("\r\nSIMCOM INCORPORATED\r\n\r\nOK\r\n"), IDLE},
        .want = "W:AT\\x0d\n"
                "W:AT+CGMI\\x0d\n"
                "--\n"
                "done#0 OK -1 <SIMCOM INCORPORATED>\n"
                "idle=1\n",
    },
    {
        /* Once a final was the command's, no later one can be the wake's. */
        .name = "sleep rx: a final after the plain command's ERROR in the window resyncs",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGD=1"}},
        .steps = {SEND(0), TICK(100), FEED("\r\n+CMS ERROR: 321\r\n"), MARK,
                  FEED("\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "W:AT+CMGD=1\\x0d\n"
                "done#0 +CMS ERROR 321\n"
                "--\n"
                "W:\\x1b\n",
    },
    {
        /* 1 s after the AT the module has long answered or never will. */
        .name = "sleep rx: a stray final after the late window resyncs as ever",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGD=1"}},
        .steps = {SEND(0), TICK(100), FEED("\r\nOK\r\n"), TICK(900), FEED("\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "W:AT+CMGD=1\\x0d\n"
                "done#0 OK -1\n"
                "W:\\x1b\n",
    },
    {
        .name = "sleep rx: URCs while waking are dispatched; only a final ends the wait",
        .sleep = AT_SLEEP_RX,
        .cmds = {{"AT+CMGD=1"}},
        .steps = {SEND(0), FEED("\r\nRING\r\n\r\n+CMTI: \"SM\",3\r\n"), MARK, FEED("\r\nOK\r\n"),
                  MARK, FEED("\r\nOK\r\n")},
        .want = "W:AT\\x0d\n"
                "urca <RING>\n"
                "urca <+CMTI: \"SM\",3>\n"
                "--\n"
                "W:AT+CMGD=1\\x0d\n"
                "--\n"
                "done#0 OK -1\n",
    },
    {
        .name = "sleep dtr: DTR on and 100 ms before a command; off 5 s after it completed",
        .sleep = AT_SLEEP_DTR,
        .sched = true,
        .cmds = {{"AT+CMGD=1"}, {"AT+CMGD=2"}},
        .steps = {SEND(0), TICK(100), MARK, TICK(3000), FEED("\r\nOK\r\n"), TICK(4999), MARK,
                  TICK(1), MARK, SEND(1), TICK(100), FEED("\r\nOK\r\n")},
        .want = "dtr=1\n"
                "sched 100100\n"
                "W:AT+CMGD=1\\x0d\n"
                "sched 105100\n"
                "--\n"
                "sched 105100\n"
                "done#0 OK -1\n"
                "sched 108100\n"
                "sched 108100\n"
                "--\n"
                "dtr=0\n"
                "sched -1\n"
                "--\n"
                "dtr=1\n"
                "sched 108200\n"
                "W:AT+CMGD=2\\x0d\n"
                "sched 113200\n"
                /* Off 5 s after the answer: the same deadline as the
                 * command's own, so no new one. */
                "done#1 OK -1\n",
    },
    {
        .name = "sleep dtr: a resync turns DTR on before its ESC; cancel_all forgets it",
        .sleep = AT_SLEEP_DTR,
        .cmds = {{"AT+CSQ", .info = "+CSQ:"}},
        .steps = {RESYNC(1), SYNC_STEPS(M1), SEND(0), FEED("\r\n+CSQ: 9,99\r\n\r\nOK\r\n"),
                  CANCEL, SEND(0)},
        .want = "dtr=1\n"
                "W:\\x1b\n" SYNC_WANT(M1) "W:AT+CSQ\\x0d\n"
                "done#0 OK -1 <+CSQ: 9,99>\n"
                "dtr=1\n",
    },
};

static void test_transcripts(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        run_case(&cases[k]);
}

/* ---- at_chat_mask ---- */

static void test_mask(void **state)
{
    static const struct {
        const char *in;
        size_t size;
        const char *want;
    } t[] = {
        {"AT+CPIN=\"1234\"", 64, "AT+CPIN=***"},
        {"at+cpin=1234,5678", 64, "at+cpin=***"},
        {"AT+CPIN?", 64, "AT+CPIN?"},
        {"AT+CPIN=", 64, "AT+CPIN="},
        {"AT+CMQTTCONNECT=0,\"tcp://broker:1883\",60,1,\"user\",\"pass\"", 128,
         "AT+CMQTTCONNECT=0,\"tcp://broker:1883\",60,1,***"},
        {"AT+CMQTTCONNECT=0,\"tcp://broker:1883\",60,1", 128,
         "AT+CMQTTCONNECT=0,\"tcp://broker:1883\",60,1"},
        {"AT+CMQTTCONNECT=0,\"tcp://a,b:1883\",60,1,\"u,v\",\"p\"", 128,
         "AT+CMQTTCONNECT=0,\"tcp://a,b:1883\",60,1,***"},
        {"AT+CLCK=\"SC\",1,\"1234\"", 64, "AT+CLCK=\"SC\",1,***"},
        {"AT+CLCK=\"SC\",2", 64, "AT+CLCK=\"SC\",2"},
        {"AT+CPWD=\"SC\",\"1234\",\"4321\"", 64, "AT+CPWD=\"SC\",***"},
        {"AT+CGAUTH=1,1,\"secret\",\"user\"", 64, "AT+CGAUTH=1,1,***"},
        {"AT+CSQ", 64, "AT+CSQ"},
        {"+CPIN: READY", 64, "+CPIN: READY"},
        {"AT+CPIN=1234", 10, "AT+CPIN=*"},
        {"AT+CPIN=1234", 6, "AT+CP"},
        {"AT+CSQ", 1, ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[130];
        size_t n;

        memset(out, 'Z', sizeof(out));
        n = at_chat_mask(t[i].in, strlen(t[i].in), out, t[i].size);
        if (strcmp(out, t[i].want) != 0) {
            print_error("mask(%s, %zu): want '%s' got '%s'\n", t[i].in, t[i].size, t[i].want,
                        out);
            fail();
        }
        assert_int_equal(n, strlen(t[i].want));
        assert_int_equal(out[t[i].size], 'Z'); /* stayed within size */
    }
}

/* The traffic log goes through the mask: the PIN never reaches stderr. */
static void test_debug_log_masks_pin(void **state)
{
    static const struct chat_case c = {.name = "log", .cmds = {{"AT+CPIN=\"4711\""}}};
    static struct harness h;
    char path[] = "/tmp/test_chat_logXXXXXX";
    char buf[4096];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    ssize_t n;

    (void)state;
    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    log_set_level(LOG_DEBUG);
    setup(&h, &c);
    send_spec(&h, 0);
    static const char rx[] = "AT+CPIN=\"4711\"\r\r\n+CSQ: 1\r\x01\r\nOK\r\n";

    at_chat_feed(h.chat, (const uint8_t *)rx, sizeof(rx) - 1);
    at_chat_free(h.chat);
    log_set_level(LOG_ERROR);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = 0;
    assert_non_null(strstr(buf, "AT> AT+CPIN=***"));
    assert_non_null(strstr(buf, "AT< AT+CPIN=***"));
    assert_non_null(strstr(buf, "AT< +CSQ: 1"));
    assert_non_null(strstr(buf, "AT< ."));
    assert_null(strstr(buf, "4711"));
    assert_string_equal(h.trace, "W:AT+CPIN=\"4711\"\\x0d\ndone#0 OK -1 <+CSQ: 1> <\\x01>\n");
}

/* ---- API edges ---- */

static void noop_urc(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    (void)lines;
    (void)n;
}

static void test_new_and_add_urcs_reject(void **state)
{
    struct harness h;
    struct at_transport tr = {tr_write, tr_now, tr_schedule, &h};
    struct at_chat_opts o = {.default_timeout_ms = 1000, .max_queue = 1, .max_line = 64};
    static const struct at_urc empty_prefix[] = {{"", 0, noop_urc}};
    static const struct at_urc no_fn[] = {{"RING", 0, NULL}};
    static const struct at_urc too_many[] = {{"+CMT:", AT_URC_MAX_EXTRA + 1, noop_urc}};
    static const struct at_urc ok[] = {{"RING", AT_URC_MAX_EXTRA, noop_urc}};
    struct at_chat *chat;

    (void)state;
    memset(&h, 0, sizeof(h));
    assert_null(at_chat_new(&(struct at_chat_opts){.max_line = 64, .max_queue = 1}, &tr));
    assert_null(at_chat_new(&(struct at_chat_opts){.default_timeout_ms = 1, .max_line = 8}, &tr));
    assert_null(at_chat_new(&o, &(struct at_transport){tr_write, NULL, tr_schedule, &h}));
    chat = at_chat_new(&o, &tr);
    assert_non_null(chat);
    assert_int_equal(at_chat_add_urcs(chat, empty_prefix, 1, NULL), -EINVAL);
    assert_int_equal(at_chat_add_urcs(chat, no_fn, 1, NULL), -EINVAL);
    assert_int_equal(at_chat_add_urcs(chat, too_many, 1, NULL), -EINVAL);
    for (unsigned i = 0; i < AT_CHAT_MAX_TABLES; i++)
        assert_int_equal(at_chat_add_urcs(chat, ok, 1, NULL), 0);
    assert_int_equal(at_chat_add_urcs(chat, ok, 1, NULL), -ENOSPC);
    assert_true(at_chat_idle(chat));
    at_chat_free(chat);
    at_chat_free(NULL);
}

static void test_final_names(void **state)
{
    static const char *const want[] = {"OK",        "ERROR",     "+CME ERROR",  "+CMS ERROR",
                                       "NO CARRIER", "BUSY",      "NO ANSWER",   "NO DIALTONE",
                                       "TIMEOUT",    "CANCELLED", "OUT OF STEP"};

    (void)state;
    for (int i = AT_FINAL_OK; i <= AT_FINAL_OUT_OF_STEP; i++)
        assert_string_equal(at_final_name((enum at_final)i), want[i]);
    assert_string_equal(at_final_name((enum at_final)99), "?");
}

static int blocks_seen;

static void count_blk(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    blocks_seen += (int)len;
}

static struct at_chat *busy_chat;
static int busy_rc[3];

static void urc_double_read(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    (void)lines;
    (void)n;
    busy_rc[0] = at_chat_read_block(busy_chat, 2, count_blk, NULL);
    busy_rc[1] = at_chat_read_block(busy_chat, 2, count_blk, NULL);
    busy_rc[2] = at_chat_read_block(busy_chat, 2, NULL, NULL);
}

/* A second read_block while one is pending is refused; cancel_all forgets
 * the pending block (the bytes after it are lines again). */
static void test_read_block_busy_and_cancel(void **state)
{
    static const struct at_urc t[] = {{"+X:", 0, urc_double_read}};
    struct harness h;
    struct at_transport tr = {tr_write, tr_now, tr_schedule, &h};
    struct at_chat_opts o = {.default_timeout_ms = 1000, .max_queue = 1, .max_line = 64,
                             .max_block = 16};
    static const struct chat_case c = {.name = "busy"};

    (void)state;
    memset(&h, 0, sizeof(h));
    h.c = &c;
    busy_chat = at_chat_new(&o, &tr);
    assert_non_null(busy_chat);
    assert_int_equal(at_chat_add_urcs(busy_chat, t, 1, NULL), 0);
    at_chat_feed(busy_chat, (const uint8_t *)"+X: 1\r\nab+X: 2\r\n", 16);
    assert_int_equal(busy_rc[0], 0);
    assert_int_equal(busy_rc[1], -EBUSY);
    assert_int_equal(busy_rc[2], -EINVAL);
    assert_int_equal(blocks_seen, 2);
    at_chat_cancel_all(busy_chat);
    at_chat_feed(busy_chat, (const uint8_t *)"cd\r\n", 4);
    assert_int_equal(blocks_seen, 2);
    at_chat_free(busy_chat);
}

static int grp_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR); /* the split runs would log thousands of warnings */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transcripts),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_debug_log_masks_pin),
        cmocka_unit_test(test_new_and_add_urcs_reject),
        cmocka_unit_test(test_final_names),
        cmocka_unit_test(test_read_block_busy_and_cancel),
    };

    return cmocka_run_group_tests(tests, grp_setup, NULL);
}
