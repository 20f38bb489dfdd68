/* modem/ussd: the +CUSD decoder (table-driven, from A7670-style
 * transcripts) and the service through link seams.
 *
 * This file defines what ussd.o calls on its neighbours, so the linker
 * never pulls modem.o, chat.o or loop.o out of libm2m.a (see test_sms.c):
 *   modem.o  modem_send, modem_state, modem_state_name, modem_chat
 *   chat.o   at_chat_add_urcs, at_chat_urc_more, at_final_name
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
    struct { char cmd[256]; at_done_cb cb; void *ctx; bool done; } cmds[MAX_CMDS];
    size_t n_cmds;
    const struct at_urc *urcs;
    void *urc_ctx;
    bool (*more_fn)(void *ctx, const char *line);
    void *more_ctx;
    size_t more_left;
    loop_timer_cb timer_cb;
    void *timer_ctx;
    uint64_t timer_id, next_id;
    int64_t timer_delay;
    /* what the service answered */
    int n_answers;
    bool got_reply;
    struct ussd_reply reply;
    struct json_error err;
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

int at_chat_urc_more(struct at_chat *chat, size_t max_lines,
                     bool (*fn)(void *ctx, const char *line), void *ctx)
{
    assert_ptr_equal(chat, FAKE_CHAT);
    if (f.more_fn)
        return -EBUSY;
    f.more_fn = fn;
    f.more_ctx = ctx;
    f.more_left = max_lines;
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

static void answered(void *ctx, const struct ussd_reply *reply, const struct json_error *err)
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

/* A line from the module: to a continuation when one was asked for (as
 * the chat does), else to the URC table. */
static void urc(const char *line)
{
    const char *lines[] = { line, NULL };
    if (f.more_fn) {
        bool (*fn)(void *, const char *) = f.more_fn;
        if (--f.more_left == 0)
            f.more_fn = NULL;
        if (fn(f.more_ctx, line))
            f.more_fn = NULL;
        return;
    }
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
    const char *line;
    int ret;
    int status;
    bool has_text;
    int dcs;
    const char *text;
};

static const struct cusd_case cases[] = {
    /* GSM text (dcs 15): what the A7670 prints with the default AT+CSCS="IRA". */
    { "gsm balance", "+CUSD: 0,\"Your balance is 12.34 EUR\",15", 0, 0, true, 15,
      "Your balance is 12.34 EUR" },
    { "gsm menu, more", "+CUSD: 1,\"1 Balance\n2 Bundles\",15", 0, 1, true, 15,
      "1 Balance\n2 Bundles" },
    { "gsm no spaces", "+CUSD:0,\"ok\",15", 0, 0, true, 15, "ok" },
    { "gsm spaces around", "+CUSD: 2 , \"bye\" , 15 ", 0, 2, true, 15, "bye" },
    { "quotes inside the text", "+CUSD: 0,\"say \"hi\", then\",15", 0, 0, true, 15,
      "say \"hi\", then" },
    { "comma inside the text", "+CUSD: 0,\"a,b,15\",15", 0, 0, true, 15, "a,b,15" },
    { "empty string", "+CUSD: 0,\"\",15", 0, 0, true, 15, "" },
    { "no dcs", "+CUSD: 0,\"text\"", 0, 0, true, -1, "text" },
    { "latin-1 byte becomes ?", "+CUSD: 0,\"caf\xE9\",15", 0, 0, true, 15, "caf?" },
    { "utf-8 kept", "+CUSD: 0,\"caf\xC3\xA9\",15", 0, 0, true, 15, "caf\xC3\xA9" },
    /* UCS-2 (dcs 72 = 0x48) as hex. */
    { "ucs2 ascii", "+CUSD: 0,\"00480069\",72", 0, 0, true, 72, "Hi" },
    { "ucs2 lower-case hex", "+CUSD: 0,\"00e4\",72", 0, 0, true, 72, "\xC3\xA4" },
    { "ucs2 umlauts and euro", "+CUSD: 0,\"00C400D620AC\",72", 0, 0, true, 72,
      "\xC3\x84\xC3\x96\xE2\x82\xAC" },
    { "ucs2 cyrillic", "+CUSD: 1,\"041F04400438043204350442\",72", 0, 1, true, 72,
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82" },
    { "ucs2 surrogate pair", "+CUSD: 0,\"D83DDE00\",72", 0, 0, true, 72, "\xF0\x9F\x98\x80" },
    { "ucs2 lone high surrogate", "+CUSD: 0,\"D83D0041\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 lone low surrogate", "+CUSD: 0,\"DE00\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 NUL", "+CUSD: 0,\"0000\",72", -EINVAL, 0, true, 72, NULL },
    { "ucs2 dcs 0x11 (language)", "+CUSD: 0,\"0041\",17", 0, 0, true, 17, "A" },
    { "ucs2 already text (CSCS=IRA firmware)", "+CUSD: 0,\"Hello\",72", 0, 0, true, 72,
      "Hello" },
    { "ucs2 odd length kept as text", "+CUSD: 0,\"00410\",72", 0, 0, true, 72, "00410" },
    /* Other coding schemes. */
    { "8-bit data kept as hex", "+CUSD: 0,\"48656C6C6F\",68", 0, 0, true, 68, "48656C6C6F" },
    { "gsm language group", "+CUSD: 0,\"Hallo\",0", 0, 0, true, 0, "Hallo" },
    { "gsm class group 0xF0", "+CUSD: 0,\"x\",240", 0, 0, true, 240, "x" },
    /* No string: the network only says how the session ended. */
    { "terminated", "+CUSD: 2", 0, 2, false, -1, "" },
    { "unsupported", "+CUSD: 4", 0, 4, false, -1, "" },
    { "network timeout", "+CUSD: 5", 0, 5, false, -1, "" },
    { "other client", "+CUSD: 3", 0, 3, false, -1, "" },
    /* Malformed. */
    { "not cusd", "+CUSDX: 0", -EINVAL, -1, false, -1, NULL },
    { "other urc", "+CREG: 1", -EINVAL, -1, false, -1, NULL },
    { "no status", "+CUSD: ", -EINVAL, -1, false, -1, NULL },
    { "status out of range", "+CUSD: 6,\"x\",15", -EINVAL, -1, false, -1, NULL },
    { "status not a number", "+CUSD: x", -EINVAL, -1, false, -1, NULL },
    { "negative status", "+CUSD: -1", -EINVAL, -1, false, -1, NULL },
    { "unterminated string", "+CUSD: 0,\"abc,15", -EINVAL, 0, false, -1, NULL },
    { "unquoted string", "+CUSD: 0,abc,15", -EINVAL, 0, false, -1, NULL },
    { "garbage after status", "+CUSD: 0x", -EINVAL, 0, false, -1, NULL },
    { "garbage after string", "+CUSD: 0,\"a\"b", -EINVAL, 0, true, -1, NULL },
    { "dcs not a number", "+CUSD: 0,\"a\",x", -EINVAL, 0, true, -1, NULL },
    { "dcs too large", "+CUSD: 0,\"a\",256", -EINVAL, 0, true, -1, NULL },
    { "trailing comma", "+CUSD: 0,", -EINVAL, 0, false, -1, NULL },
};

static void test_cusd_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct cusd_case *c = &cases[i];
        struct ussd_reply r;
        int ret = ussd_parse_cusd(c->line, &r);

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
    static char line[3 * USSD_TEXT_MAX];
    struct ussd_reply r;
    size_t n;

    (void)state;
    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    memset(line + n, 'a', USSD_TEXT_MAX - 1);
    n += USSD_TEXT_MAX - 1;
    snprintf(line + n, sizeof(line) - n, "\",15");
    assert_int_equal(ussd_parse_cusd(line, &r), 0);
    assert_int_equal(strlen(r.text), USSD_TEXT_MAX - 1);

    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    memset(line + n, 'a', USSD_TEXT_MAX);
    n += USSD_TEXT_MAX;
    snprintf(line + n, sizeof(line) - n, "\",15");
    assert_int_equal(ussd_parse_cusd(line, &r), -EMSGSIZE);

    /* UCS-2: 400 euro signs are 1200 bytes of UTF-8. */
    n = (size_t)snprintf(line, sizeof(line), "+CUSD: 0,\"");
    for (int i = 0; i < 400; i++, n += 4)
        memcpy(line + n, "20AC", 4);
    snprintf(line + n, sizeof(line) - n, "\",72");
    assert_int_equal(ussd_parse_cusd(line, &r), -EMSGSIZE);
}

/* --- the service ------------------------------------------------------------------ */

static void test_svc_reply(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    assert_int_equal(f.n_cmds, 1);
    assert_string_equal(f.cmds[0].cmd, "AT+CUSD=1,\"*100#\",15");
    assert_int_equal(f.timer_delay, 30000);
    complete(0, AT_FINAL_OK, -1);
    assert_int_equal(f.n_answers, 0);           /* OK is not the answer */
    urc("+CUSD: 1,\"1 Balance\",15");
    assert_int_equal(f.n_answers, 1);
    assert_true(f.got_reply);
    assert_int_equal(f.reply.status, 1);
    assert_string_equal(f.reply.text, "1 Balance");
    assert_null(f.timer_cb);                    /* the wait is over */
    /* The answer to the menu: a new request (the network keeps its session). */
    ussd_send(*state, "1", answered, &f);
    assert_string_equal(f.cmds[1].cmd, "AT+CUSD=1,\"1\",15");
    complete(1, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"00480069\",72");
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.reply.text, "Hi");
}

/* A GSM text menu with line breaks: the module prints them raw inside the
 * quotes, the lexer splits the URC into lines, the service joins them. */
static void test_svc_multiline(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_OK, -1);
    urc("+CUSD: 1,\"Menu:");
    assert_non_null(f.more_fn);
    urc("1 \"Balance\"");                      /* a quote inside, not the end */
    urc("2 Data\", 15");
    assert_null(f.more_fn);
    assert_int_equal(f.n_answers, 1);
    assert_true(f.got_reply);
    assert_int_equal(f.reply.status, 1);
    assert_string_equal(f.reply.text, "Menu:\n1 \"Balance\"\n2 Data");
    /* Never closed: bounded, then "undecodable". */
    ussd_send(*state, "1", answered, &f);
    complete(1, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"x");
    for (int i = 0; i < 32; i++)
        urc("y");
    assert_null(f.more_fn);
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.err.code, "modem_error");
}

/* Some firmwares print +CUSD before the OK of AT+CUSD. */
static void test_svc_urc_before_ok(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    urc("+CUSD: 0,\"ok\",15");
    assert_int_equal(f.n_answers, 1);
    complete(0, AT_FINAL_OK, -1);
    assert_int_equal(f.n_answers, 1);
}

static void test_svc_busy(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    ussd_send(*state, "*101#", answered, &f);
    assert_int_equal(f.n_answers, 1);
    assert_false(f.got_reply);
    assert_string_equal(f.err.code, "busy");
    assert_int_equal(f.n_cmds, 1);              /* nothing written for it */
    complete(0, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"first\",15");
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.reply.text, "first");
}

/* No answer: "timeout", AT+CUSD=2, and a late answer goes nowhere. */
static void test_svc_timeout(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_OK, -1);
    fire_timer();
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "timeout");
    assert_int_equal(f.n_cmds, 2);
    assert_string_equal(f.cmds[1].cmd, "AT+CUSD=2");
    complete(1, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"late\",15");
    assert_int_equal(f.n_answers, 1);
    ussd_send(*state, "*100#", answered, &f);
    assert_int_equal(f.n_cmds, 3);
}

/* The timer passes while AT+CUSD itself is still queued: its late OK (or
 * error) must not end the next request. */
static void test_svc_stale_command(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    fire_timer();
    assert_string_equal(f.err.code, "timeout");
    ussd_send(*state, "*101#", answered, &f);
    assert_int_equal(f.n_answers, 1);
    complete(0, AT_FINAL_ERROR, -1);            /* the first one's answer */
    assert_int_equal(f.n_answers, 1);
    complete(1, AT_FINAL_OK, -1);               /* AT+CUSD=2 */
    complete(2, AT_FINAL_OK, -1);
    urc("+CUSD: 0,\"second\",15");
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.reply.text, "second");
}

static void test_svc_errors(void **state)
{
    /* The module refuses. */
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_CME, 30);
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.err.cme, 30);
    /* The module does not answer AT+CUSD. */
    ussd_send(*state, "*100#", answered, &f);
    complete(1, AT_FINAL_TIMEOUT, -1);
    assert_string_equal(f.err.code, "timeout");
    assert_null(f.timer_cb);
    /* An answer that does not decode. */
    ussd_send(*state, "*100#", answered, &f);
    complete(2, AT_FINAL_OK, -1);
    urc("+CUSD: 9,\"x\",15");
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.n_answers, 3);
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
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_OK, -1);
    f.state = MODEM_RESETTING;
    ussd_modem_ready(*state, false);
    assert_int_equal(f.n_answers, 2);
    assert_string_equal(f.err.code, "unavailable");
    assert_null(f.timer_cb);
    urc("+CUSD: 0,\"late\",15");
    assert_int_equal(f.n_answers, 2);
}

/* A request still waiting when the bridge stops gets its answer. */
static void test_svc_free_answers(void **state)
{
    ussd_send(*state, "*100#", answered, &f);
    complete(0, AT_FINAL_OK, -1);
    ussd_free(*state);
    *state = NULL;
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "unavailable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cusd_table),
        cmocka_unit_test(test_cusd_bounds),
        cmocka_unit_test_setup_teardown(test_svc_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_urc_before_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_multiline, setup, teardown),
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
