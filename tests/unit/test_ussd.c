/* modem/ussd: the +CUSD decoder (table-driven, from A7670-style
 * transcripts) and the service through link seams.
 *
 * This file defines what ussd.o calls on its neighbours, so the linker
 * never pulls modem.o, chat.o or loop.o out of libm2m.a (see test_sms.c):
 *   modem.o  modem_send, modem_state, modem_state_name, modem_chat,
 *            modem_set_charset_ucs2, modem_charset_ucs2
 *   chat.o   at_chat_add_urcs, at_final_name
 *   loop.o   loop_add_timer, loop_cancel_timer
 * The fake modem records commands; the tests complete them by hand, feed
 * +CUSD lines through the registered URC table and fire the timer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "at/chat.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/ussd.h"

/* --- fakes -------------------------------------------------------------------- */

static char fake_loop_obj, fake_modem_obj, fake_chat_obj;
#define FAKE_LOOP ((struct loop *)(void *)&fake_loop_obj)
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)
#define FAKE_CHAT ((struct at_chat *)(void *)&fake_chat_obj)

#define MAX_CMDS 16

static struct {
    enum modem_state state;
    struct { char cmd[1024]; at_done_cb cb; void *ctx; bool done; } cmds[MAX_CMDS];
    size_t n_cmds;
    const struct at_urc *urcs;
    void *urc_ctx;
    bool ucs2;                    /* the modem's TE character set flag */
    loop_timer_cb timer_cb;
    void *timer_ctx;
    uint64_t timer_id, next_id;
    int64_t timer_delay;
    /* what the service answered */
    int n_answers;
    bool got_reply;
    struct ussd_reply reply;
    struct m2m_error err;
} f;

enum modem_state modem_state(const struct modem *m)
{
    (void)m;
    return f.state;
}

const char *modem_state_name(enum modem_state st)
{
    return st == MODEM_READY ? "ready" : "probing";
}

void modem_set_charset_ucs2(struct modem *m, bool on)
{
    assert_ptr_equal(m, FAKE_MODEM);
    f.ucs2 = on;
}

bool modem_charset_ucs2(const struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return f.ucs2;
}

struct at_chat *modem_chat(struct modem *m)
{
    (void)m;
    return FAKE_CHAT;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    (void)m;
    (void)opts;
    if (f.state != MODEM_READY)
        return -EAGAIN;
    if (strpbrk(cmd, "\r\n\x1a\x1b"))
        return -EINVAL;
    if (f.n_cmds == MAX_CMDS)
        return -ENOBUFS;
    snprintf(f.cmds[f.n_cmds].cmd, sizeof(f.cmds[0].cmd), "%s", cmd);
    f.cmds[f.n_cmds].cb = cb;
    f.cmds[f.n_cmds].ctx = ctx;
    f.cmds[f.n_cmds].done = false;
    f.n_cmds++;
    return 0;
}

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    assert_ptr_equal(chat, FAKE_CHAT);
    assert_int_equal(n, 1);
    f.urcs = table;
    f.urc_ctx = ctx;
    return 0;
}

const char *at_final_name(enum at_final fin)
{
    return fin == AT_FINAL_OK ? "OK" : "ERROR";
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    assert_null(f.timer_cb);       /* the service keeps one timer */
    f.timer_cb = cb;
    f.timer_ctx = ctx;
    f.timer_delay = delay_ms;
    f.timer_id = ++f.next_id;
    if (id)
        *id = f.timer_id;
    return 0;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    (void)loop;
    if (id && id == f.timer_id)
        f.timer_cb = NULL;
}

static void answered(void *ctx, const struct ussd_reply *reply, const struct m2m_error *err)
{
    assert_ptr_equal(ctx, &f);
    f.n_answers++;
    f.got_reply = reply != NULL;
    if (reply)
        f.reply = *reply;
    if (err)
        f.err = *err;
    else
        memset(&f.err, 0, sizeof(f.err));
}

/* Completes command i with final (and code). */
static void complete(size_t i, enum at_final final, int code)
{
    static const char *const none[] = { NULL };
    struct at_response rsp = { .final = final, .code = code, .lines = none };
    assert_true(i < f.n_cmds);
    assert_false(f.cmds[i].done);
    f.cmds[i].done = true;
    f.cmds[i].cb(f.cmds[i].ctx, &rsp);
}

/* A line from the module, as the chat hands it to the URC table: one line,
 * never more. */
static void urc(const char *line)
{
    const char *lines[] = { line, NULL };
    assert_non_null(f.urcs);
    assert_int_equal(strncmp(line, f.urcs[0].prefix, strlen(f.urcs[0].prefix)), 0);
    f.urcs[0].fn(f.urc_ctx, lines, 1);
}

static void fire_timer(void)
{
    loop_timer_cb cb = f.timer_cb;
    assert_non_null(cb);
    f.timer_cb = NULL;
    cb(f.timer_ctx);
}

static int setup(void **state)
{
    memset(&f, 0, sizeof(f));
    f.state = MODEM_READY;
    *state = ussd_new(FAKE_LOOP, FAKE_MODEM, 30000);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    /* As app_free: the modem first, whose chat cancels what is left. */
    for (size_t i = 0; i < f.n_cmds; i++)
        if (!f.cmds[i].done)
            complete(i, AT_FINAL_CANCELLED, -1);
    ussd_free(*state);
    return 0;
}

struct cusd_case {
    const char *name;
    bool ucs2;            /* the module's TE character set is UCS2 */
    const char *line;
    int ret;
    int status;
    bool has_text;
    int dcs;
    const char *text;
};

#define IRA false
#define UCS2 true

static const struct cusd_case cases[] = {
    /* AT+CSCS="UCS2", as the service runs every request: the string is
     * UCS-2 hex whatever the dcs says. */
    { "ucs2 mode, gsm dcs 15", UCS2, "+CUSD: 0,\"00480069\",15", 0, 0, true, 15, "Hi" },
    { "ucs2 mode, dcs 72", UCS2, "+CUSD: 1,\"041F04400438043204350442\",72", 0, 1, true, 72,
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82" },
    { "ucs2 mode, 8-bit dcs", UCS2, "+CUSD: 0,\"0041\",68", 0, 0, true, 68, "A" },
    { "ucs2 mode, no dcs", UCS2, "+CUSD: 0,\"0041\"", 0, 0, true, -1, "A" },
    /* The text that once passed for an SMS and a call: in hex it is text. */
    { "ucs2 mode, modem lines inside", UCS2,
      "+CUSD: 0,\"00780022002C00310035000A002B0043004D0054003A0020002C00330038000A00520049004E0047\",15",
      0, 0, true, 15, "x\",15\n+CMT: ,38\nRING" },
    { "ucs2 mode, empty", UCS2, "+CUSD: 0,\"\",15", 0, 0, true, 15, "" },
    { "ucs2 mode, no string", UCS2, "+CUSD: 2", 0, 2, false, -1, "" },
    { "ucs2 mode, raw text refused", UCS2, "+CUSD: 0,\"Hello\",15", -EINVAL, 0, true, 15, NULL },
    { "ucs2 mode, odd length", UCS2, "+CUSD: 0,\"00410\",15", -EINVAL, 0, true, 15, NULL },
    { "ucs2 mode, lone surrogate", UCS2, "+CUSD: 0,\"D83D\",15", -EINVAL, 0, true, 15, NULL },
    { "ucs2 mode, unterminated", UCS2, "+CUSD: 0,\"0041", -EINVAL, 0, false, -1, NULL },
    { "ucs2 mode, unterminated with a quote inside", UCS2, "+CUSD: 0,\"x\",15 \"y", -EINVAL, 0,
      true, -1, NULL },
    /* GSM text (dcs 15): what the A7670 prints with the default AT+CSCS="IRA". */
    { "gsm balance", IRA, "+CUSD: 0,\"Your balance is 12.34 EUR\",15", 0, 0, true, 15,
      "Your balance is 12.34 EUR" },
    { "gsm menu, more", IRA, "+CUSD: 1,\"1 Balance\n2 Bundles\",15", 0, 1, true, 15,
      "1 Balance\n2 Bundles" },
    { "gsm no spaces", IRA, "+CUSD:0,\"ok\",15", 0, 0, true, 15, "ok" },
    { "gsm spaces around", IRA, "+CUSD: 2 , \"bye\" , 15 ", 0, 2, true, 15, "bye" },
    { "quotes inside the text", IRA, "+CUSD: 0,\"say \"hi\", then\",15", 0, 0, true, 15,
      "say \"hi\", then" },
    { "comma inside the text", IRA, "+CUSD: 0,\"a,b,15\",15", 0, 0, true, 15, "a,b,15" },
    { "empty string", IRA, "+CUSD: 0,\"\",15", 0, 0, true, 15, "" },
    { "no dcs", IRA, "+CUSD: 0,\"text\"", 0, 0, true, -1, "text" },
    { "latin-1 byte becomes ?", IRA, "+CUSD: 0,\"caf\xE9\",15", 0, 0, true, 15, "caf?" },
    { "utf-8 kept", IRA, "+CUSD: 0,\"caf\xC3\xA9\",15", 0, 0, true, 15, "caf\xC3\xA9" },
    /* UCS-2 (dcs 72 = 0x48) as hex. */
    { "ucs2 ascii", IRA, "+CUSD: 0,\"00480069\",72", 0, 0, true, 72, "Hi" },
    { "ucs2 lower-case hex", IRA, "+CUSD: 0,\"00e4\",72", 0, 0, true, 72, "\xC3\xA4" },
    { "ucs2 umlauts and euro", IRA, "+CUSD: 0,\"00C400D620AC\",72", 0, 0, true, 72,
      "\xC3\x84\xC3\x96\xE2\x82\xAC" },
    { "ucs2 surrogate pair", IRA, "+CUSD: 0,\"D83DDE00\",72", 0, 0, true, 72,
      "\xF0\x9F\x98\x80" },
    { "ucs2 lone high surrogate", IRA, "+CUSD: 0,\"D83D0041\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 lone low surrogate", IRA, "+CUSD: 0,\"DE00\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 NUL", IRA, "+CUSD: 0,\"0000\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 dcs 0x11 (language)", IRA, "+CUSD: 0,\"0041\",17", 0, 0, true, 17, "A" },
    { "ucs2 already text (CSCS=IRA firmware)", IRA, "+CUSD: 0,\"Hello\",72", 0, 0, true, 72,
      "Hello" },
    { "ucs2 odd length kept as text", IRA, "+CUSD: 0,\"00410\",72", 0, 0, true, 72, "00410" },
    /* Other coding schemes. */
    { "8-bit data kept as hex", IRA, "+CUSD: 0,\"48656C6C6F\",68", 0, 0, true, 68,
      "48656C6C6F" },
    { "gsm language group", IRA, "+CUSD: 0,\"Hallo\",0", 0, 0, true, 0, "Hallo" },
    { "gsm class group 0xF0", IRA, "+CUSD: 0,\"x\",240", 0, 0, true, 240, "x" },
    /* No string: the network only says how the session ended. */
    { "terminated", IRA, "+CUSD: 2", 0, 2, false, -1, "" },
    { "unsupported", IRA, "+CUSD: 4", 0, 4, false, -1, "" },
    { "network timeout", IRA, "+CUSD: 5", 0, 5, false, -1, "" },
    { "other client", IRA, "+CUSD: 3", 0, 3, false, -1, "" },
    /* Malformed. */
    { "not cusd", IRA, "+CUSDX: 0", -EINVAL, -1, false, -1, NULL },
    { "other urc", IRA, "+CREG: 1", -EINVAL, -1, false, -1, NULL },
    { "no status", IRA, "+CUSD: ", -EINVAL, -1, false, -1, NULL },
    { "status out of range", IRA, "+CUSD: 6,\"x\",15", -EINVAL, -1, false, -1, NULL },
    { "status not a number", IRA, "+CUSD: x", -EINVAL, -1, false, -1, NULL },
    { "negative status", IRA, "+CUSD: -1", -EINVAL, -1, false, -1, NULL },
    { "unterminated string", IRA, "+CUSD: 0,\"abc,15", -EINVAL, 0, false, -1, NULL },
    { "unquoted string", IRA, "+CUSD: 0,abc,15", -EINVAL, 0, false, -1, NULL },
    { "garbage after status", IRA, "+CUSD: 0x", -EINVAL, 0, false, -1, NULL },
    { "garbage after string", IRA, "+CUSD: 0,\"a\"b", -EINVAL, 0, true, -1, NULL },
    { "dcs not a number", IRA, "+CUSD: 0,\"a\",x", -EINVAL, 0, true, -1, NULL },
    { "dcs too large", IRA, "+CUSD: 0,\"a\",256", -EINVAL, 0, true, -1, NULL },
    { "trailing comma", IRA, "+CUSD: 0,", -EINVAL, 0, false, -1, NULL },
};

static void test_cusd_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct cusd_case *c = &cases[i];
        struct ussd_reply r;
        int ret = ussd_parse_cusd(c->line, c->ucs2, &r);

        if (ret != c->ret)
            fail_msg("%s: returned %d, want %d", c->name, ret, c->ret);
        if (ret < 0) {
            if (c->status == -1 && r.status != -1)
                fail_msg("%s: status %d on failure", c->name, r.status);
            continue;
        }
        if (r.status != c->status || r.has_text != c->has_text || r.dcs != c->dcs ||
            strcmp(r.text, c->text) != 0)
            fail_msg("%s: got status %d has_text %d dcs %d text '%s'", c->name, r.status,
                     r.has_text, r.dcs, r.text);
    }
}

/* Bounded: a string longer than the buffer is refused, not truncated into
 * a half character; the longest that fits is kept whole. */
static void test_cusd_bounds(void **state)
{
    static char line[5 * USSD_TEXT_MAX];
    struct ussd_reply r;
    size_t n;

    (void)state;
    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    memset(line + n, 'a', USSD_TEXT_MAX - 1);
    n += USSD_TEXT_MAX - 1;
    snprintf(line + n, sizeof(line) - n, "\",15");
    assert_int_equal(ussd_parse_cusd(line, false, &r), 0);
    assert_int_equal(strlen(r.text), USSD_TEXT_MAX - 1);

    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    memset(line + n, 'a', USSD_TEXT_MAX);
    n += USSD_TEXT_MAX;
    snprintf(line + n, sizeof(line) - n, "\",15");
    assert_int_equal(ussd_parse_cusd(line, false, &r), -EMSGSIZE);

    /* UCS-2: 400 euro signs are 1200 bytes of UTF-8. */
    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    for (int i = 0; i < 400; i++, n += 4)
        memcpy(line + n, "20AC", 4);
    snprintf(line + n, sizeof(line) - n, "\",72");
    assert_int_equal(ussd_parse_cusd(line, false, &r), -EMSGSIZE);
    assert_int_equal(ussd_parse_cusd(line, true, &r), -EMSGSIZE);
    /* 341 of them (1023 bytes) fit. */
    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    for (int i = 0; i < 341; i++, n += 4)
        memcpy(line + n, "20AC", 4);
    snprintf(line + n, sizeof(line) - n, "\",15");
    assert_int_equal(ussd_parse_cusd(line, true, &r), 0);
    assert_int_equal(strlen(r.text), 1023);
}

/* --- the service ------------------------------------------------------------------ */

#define CSCS_UCS2 "AT+CSCS=\"UCS2\""
#define CSCS_IRA "AT+CSCS=\"IRA\""

/* ussd_send, and the module accepts UCS2: AT+CUSD with the code in hex is
 * command i + 1. Returns its index. */
static size_t start(void *u, const char *code, const char *want_cusd)
{
    size_t i = f.n_cmds;

    ussd_send(u, code, answered, &f);
    assert_int_equal(f.n_cmds, i + 1);
    assert_string_equal(f.cmds[i].cmd, CSCS_UCS2);
    complete(i, AT_FINAL_OK, -1);
    assert_true(f.ucs2);
    assert_int_equal(f.n_cmds, i + 2);
    assert_string_equal(f.cmds[i + 1].cmd, want_cusd);
    return i + 1;
}

/* The last command is AT+CSCS="IRA"; the module accepts it. */
static void expect_ira(void)
{
    assert_true(f.n_cmds > 0);
    assert_string_equal(f.cmds[f.n_cmds - 1].cmd, CSCS_IRA);
    complete(f.n_cmds - 1, AT_FINAL_OK, -1);
    assert_false(f.ucs2);
}

static void test_svc_reply(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    assert_int_equal(f.timer_delay, 30000);
    complete(i, AT_FINAL_OK, -1);
    assert_int_equal(f.n_answers, 0);           /* OK is not the answer */
    urc("+CUSD: 1,\"0031002000420061006C0061006E00630065\",15");
    assert_int_equal(f.n_answers, 1);
    assert_true(f.got_reply);
    assert_int_equal(f.reply.status, 1);
    assert_string_equal(f.reply.text, "1 Balance");
    assert_null(f.timer_cb);                    /* the wait is over */
    expect_ira();
    /* The answer to the menu: a new request (the network keeps its session). */
    i = start(*state, "1", "AT+CUSD=1,\"0031\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"00480069\",72");
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.reply.text, "Hi");
    expect_ira();
}

/* A text with line breaks is hex: one line, one answer, nothing of it read
 * as modem lines. */
static void test_svc_line_breaks(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 1,\"004D0065006E0075003A000A00310020002200420022\",15");
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.reply.text, "Menu:\n1 \"B\"");
    expect_ira();
}

/* An unterminated or raw +CUSD is the pending request's error, and the
 * service takes no further line: the next line goes to whoever it
 * belongs to (here: nobody asks the service for more). */
static void test_svc_malformed(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"0041");
    assert_int_equal(f.n_answers, 1);
    assert_false(f.got_reply);
    assert_string_equal(f.err.code, "modem_error");
    expect_ira();
    i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"x\",15");                  /* raw text although UCS2 */
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.err.code, "modem_error");
    expect_ira();
}

/* A module without UCS2: "unsupported", no AT+CUSD, no raw-text fallback. */
static void test_svc_ucs2_refused(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    assert_string_equal(f.cmds[0].cmd, CSCS_UCS2);
    complete(0, AT_FINAL_ERROR, -1);
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "unsupported");
    assert_false(f.ucs2);
    assert_int_equal(f.n_cmds, 1);              /* neither AT+CUSD nor IRA */
    assert_null(f.timer_cb);
    ussd_send(*state, "*100#", answered, &f);
    complete(1, AT_FINAL_CME, 4);
    assert_string_equal(f.err.code, "unsupported");
    assert_int_equal(f.n_cmds, 2);
}

/* AT+CSCS="UCS2" unanswered: "timeout", and IRA is sent anyway (the module
 * may have switched); the flag says UCS2 only after an OK. */
static void test_svc_ucs2_timeout(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_TIMEOUT, -1);
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "timeout");
    assert_false(f.ucs2);
    assert_int_equal(f.n_cmds, 2);
    expect_ira();
    assert_null(f.timer_cb);
}

/* Some firmwares print +CUSD before the OK of AT+CUSD. */
static void test_svc_urc_before_ok(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    urc("+CUSD: 0,\"006F006B\",15");
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.reply.text, "ok");
    complete(i, AT_FINAL_OK, -1);
    assert_int_equal(f.n_answers, 1);
    expect_ira();
}

static void test_svc_busy(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    ussd_send(*state, "*101#", answered, &f);
    assert_int_equal(f.n_answers, 1);
    assert_false(f.got_reply);
    assert_string_equal(f.err.code, "busy");
    assert_int_equal(f.n_cmds, 2);              /* nothing written for it */
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"00660069007200730074\",15");
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.reply.text, "first");
}

/* No answer: "timeout", AT+CUSD=2 then IRA, and a late answer goes nowhere. */
static void test_svc_timeout(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    fire_timer();
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "timeout");
    assert_int_equal(f.n_cmds, 4);
    assert_string_equal(f.cmds[2].cmd, "AT+CUSD=2");
    complete(2, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"006C006100740065\",15");
    assert_int_equal(f.n_answers, 1);
    expect_ira();
    start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
}

/* The timer passes while AT+CSCS or AT+CUSD is still queued: their late
 * answers must not end the next request, and UCS2 is undone. */
static void test_svc_stale_command(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    fire_timer();
    assert_string_equal(f.err.code, "timeout");
    assert_int_equal(f.n_cmds, 2);              /* CSCS, CUSD=2; no IRA yet */
    complete(0, AT_FINAL_OK, -1);               /* CSCS="UCS2" late: undone */
    assert_int_equal(f.n_cmds, 3);
    assert_string_equal(f.cmds[2].cmd, CSCS_IRA);
    complete(1, AT_FINAL_OK, -1);               /* AT+CUSD=2 */
    expect_ira();
    size_t i = start(*state, "*101#", "AT+CUSD=1,\"002A0031003000310023\",15");
    fire_timer();                               /* AT+CUSD still in flight */
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.cmds[i + 1].cmd, "AT+CUSD=2");
    assert_string_equal(f.cmds[i + 2].cmd, CSCS_IRA);
    ussd_send(*state, "*102#", answered, &f);   /* queued behind */
    assert_string_equal(f.cmds[i + 3].cmd, CSCS_UCS2);
    complete(i, AT_FINAL_ERROR, -1);            /* the old one's answer */
    assert_int_equal(f.n_answers, 2);
    complete(i + 1, AT_FINAL_OK, -1);           /* AT+CUSD=2 */
    complete(i + 2, AT_FINAL_OK, -1);           /* IRA */
    assert_false(f.ucs2);
    complete(i + 3, AT_FINAL_OK, -1);           /* UCS2 for *102# */
    assert_true(f.ucs2);
    assert_string_equal(f.cmds[i + 4].cmd, "AT+CUSD=1,\"002A0031003000320023\",15");
}

static void test_svc_errors(void **state)
{
    /* The module refuses AT+CUSD. */
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_CME, 30);
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.err.cme, 30);
    expect_ira();
    /* The module does not answer AT+CUSD. */
    i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_TIMEOUT, -1);
    assert_string_equal(f.err.code, "timeout");
    assert_null(f.timer_cb);
    expect_ira();
    /* An answer that does not decode. */
    i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 9,\"0041\",15");
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.n_answers, 3);
    /* The module refuses to go back to IRA: the flag stays (its strings
     * are still hex), the next request tries again. */
    complete(f.n_cmds - 1, AT_FINAL_ERROR, -1);
    assert_true(f.ucs2);
    i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    urc("+CUSD: 2");
    expect_ira();
}

static void test_svc_invalid_code(void **state)
{
    static const char *const bad[] = { "", "*100#\"", "*100#\r", "*100#;+CFUN=0", "ABC",
                                       NULL };
    static char too_long[200];
    memset(too_long, '1', 161);
    for (size_t i = 0; bad[i]; i++) {
        ussd_send(*state, bad[i], answered, &f);
        assert_string_equal(f.err.code, "invalid_request");
    }
    ussd_send(*state, too_long, answered, &f);
    assert_string_equal(f.err.code, "invalid_request");
    ussd_send(*state, NULL, answered, &f);
    assert_string_equal(f.err.code, "invalid_request");
    assert_int_equal(f.n_cmds, 0);
    too_long[160] = '\0';                      /* 160: the longest allowed */
    ussd_send(*state, too_long, answered, &f);
    assert_int_equal(f.n_cmds, 1);
    complete(0, AT_FINAL_OK, -1);
    assert_int_equal(f.n_cmds, 2);
    assert_int_equal(strlen(f.cmds[1].cmd), strlen("AT+CUSD=1,\"\",15") + 4 * 160);
}

static void test_svc_modem_not_ready(void **state)
{
    f.state = MODEM_PROBING;
    ussd_send(*state, "*100#", answered, &f);
    assert_string_equal(f.err.code, "unavailable");
    assert_int_equal(f.n_cmds, 0);
    assert_null(f.timer_cb);
    /* Ready, sent, then the modem goes: answered once, at once. */
    f.state = MODEM_READY;
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    f.state = MODEM_RESETTING;
    ussd_modem_ready(*state, false);
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.err.code, "unavailable");
    assert_null(f.timer_cb);
    urc("+CUSD: 0,\"006C006100740065\",15");
    assert_int_equal(f.n_answers, 2);
    /* Back (a port reopen need not reset the module): IRA again. */
    f.state = MODEM_READY;
    ussd_modem_ready(*state, true);
    expect_ira();
}

/* A request still waiting when the bridge stops gets its answer, and the
 * service does not touch the modem (freed before it). */
static void test_svc_free_answers(void **state)
{
    size_t i = start(*state, "*100#", "AT+CUSD=1,\"002A0031003000300023\",15");
    complete(i, AT_FINAL_OK, -1);
    size_t n = f.n_cmds;
    ussd_free(*state);
    *state = NULL;
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "unavailable");
    assert_int_equal(f.n_cmds, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cusd_table),
        cmocka_unit_test(test_cusd_bounds),
        cmocka_unit_test_setup_teardown(test_svc_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_line_breaks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_ucs2_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_ucs2_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_urc_before_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_stale_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_invalid_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_modem_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_free_answers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
