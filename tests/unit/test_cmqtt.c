/* modem/cmqtt: the remote-broker service through link seams and a REAL
 * AT chat.
 *
 * This file defines what cmqtt*.c call on their neighbours outside chat.o:
 *   modem.o  modem_send (forwards to the real chat), modem_chat
 *   loop.o   loop_add_timer, loop_cancel_timer (a timer list the tests
 *            fire by hand)
 * so the linker never pulls modem.o or loop.o out of libm2m.a. The chat is
 * the real one (chat.o, lexer.o) over a fake transport that records what
 * is written: the module's answers are fed as byte transcripts, which is
 * how the receive path (+CMQTTRX* with raw blocks through
 * at_chat_read_block) is exercised at every possible byte split. */
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
#include "capture.h"
#include "core/loop.h"
#include "modem/cmqtt.h"
#include "modem/cmqtt_int.h"
#include "modem/modem.h"

#define MAX_TIMERS 16
#define MAX_MSGS 8

static char fake_loop_obj, fake_modem_obj;
#define FAKE_LOOP ((struct loop *)(void *)&fake_loop_obj)
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)

struct fake_timer {
    bool live;
    uint64_t id;
    int64_t delay;
    loop_timer_cb cb;
    void *ctx;
};

struct msg {
    char topic[1100];
    uint8_t payload[12000];
    size_t len;
    int qos;
};

static struct {
    struct at_chat *chat;
    bool ready;                     /* modem_send answers -EAGAIN unless */
    int send_rc;                    /* not 0: modem_send answers it */
    uint8_t out[65536];             /* written by the chat */
    size_t out_len;
    int64_t now;

    struct fake_timer timers[MAX_TIMERS];
    uint64_t next_id;

    struct msg msgs[MAX_MSGS];
    size_t n_msgs;
    size_t n_errors;
    char last_error[256];
    enum cmqtt_state state;
    char reason[200];
    size_t n_states;

    size_t n_done;
    bool done_ok;
    char done_code[32];

    struct cmqtt *c;
} F;

/* --- seams ------------------------------------------------------------------------ */

struct at_chat *modem_chat(struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return F.chat;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    assert_ptr_equal(m, FAKE_MODEM);
    if (!F.ready)
        return -EAGAIN;
    if (F.send_rc)
        return F.send_rc;
    return at_chat_send(F.chat, cmd, opts, cb, ctx);
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx, uint64_t *id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (F.timers[i].live)
            continue;
        F.timers[i] = (struct fake_timer){ true, ++F.next_id, delay_ms, cb, ctx };
        if (id)
            *id = F.next_id;
        return 0;
    }
    fail_msg("too many timers");
    return -ENOMEM;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    for (size_t i = 0; id && i < MAX_TIMERS; i++)
        if (F.timers[i].live && F.timers[i].id == id)
            F.timers[i].live = false;
}

/* Fires the one live timer with this delay; false when there is none. */
static bool fire_timer(int64_t delay)
{
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (F.timers[i].live && F.timers[i].delay == delay) {
            F.timers[i].live = false;
            F.timers[i].cb(F.timers[i].ctx);
            return true;
        }
    }
    return false;
}

static int tr_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    assert_true(F.out_len + len <= sizeof(F.out));
    memcpy(F.out + F.out_len, buf, len);
    F.out_len += len;
    return 0;
}

static int64_t tr_now(void *ctx)
{
    (void)ctx;
    return F.now;
}

static void tr_schedule(void *ctx, int64_t deadline)
{
    (void)ctx;
    (void)deadline;
}

/* --- callbacks ------------------------------------------------------------------- */

static void on_state(void *ctx, enum cmqtt_state st, const char *reason)
{
    (void)ctx;
    F.state = st;
    F.n_states++;
    snprintf(F.reason, sizeof(F.reason), "%s", reason ? reason : "");
}

static void on_message(void *ctx, const char *topic, size_t tlen, const uint8_t *payload,
                       size_t len, int qos)
{
    (void)ctx;
    assert_true(F.n_msgs < MAX_MSGS);
    assert_true(tlen < sizeof(F.msgs[0].topic) && len <= sizeof(F.msgs[0].payload));
    assert_int_equal(topic[tlen], '\0');
    memcpy(F.msgs[F.n_msgs].topic, topic, tlen + 1);
    memcpy(F.msgs[F.n_msgs].payload, payload, len);
    F.msgs[F.n_msgs].len = len;
    F.msgs[F.n_msgs].qos = qos;
    F.n_msgs++;
}

static void on_error(void *ctx, const char *code, const char *message)
{
    (void)ctx;
    F.n_errors++;
    snprintf(F.last_error, sizeof(F.last_error), "%s: %s", code, message);
}

static void on_done(void *ctx, const struct m2m_error *err)
{
    (void)ctx;
    F.n_done++;
    F.done_ok = err == NULL;
    snprintf(F.done_code, sizeof(F.done_code), "%s", err ? err->code : "");
}

/* --- helpers --------------------------------------------------------------------- */

static const struct cmqtt_sub_opt SUBS[] = { { "cloud/+", 1 } };

static struct cmqtt_opts base_opts(void)
{
    return (struct cmqtt_opts){ .server = "tcp://127.0.0.1:1883", .client_id = "dev1",
                                .username = "user", .password = "secret", .keepalive = 60,
                                .clean_session = true, .subs = SUBS, .n_subs = 1 };
}

static void new_chat(void)
{
    const struct at_chat_opts co = { .default_timeout_ms = 5000, .max_queue = 16,
                                     .max_line = 4096, .max_block = CMQTT_PAYLOAD_MAX };
    const struct at_transport tr = { tr_write, tr_now, tr_schedule, NULL };
    F.chat = at_chat_new(&co, &tr);
    assert_non_null(F.chat);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    new_chat();
    F.now = 1000;
    F.ready = true;
    const struct cmqtt_opts o = base_opts();
    const struct cmqtt_cbs cb = { on_state, on_message, on_error };
    F.c = cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL);
    assert_non_null(F.c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    at_chat_cancel_all(F.chat);
    cmqtt_free(F.c);
    at_chat_free(F.chat);
    return 0;
}

static void feed(const char *s)
{
    at_chat_feed(F.chat, (const uint8_t *)s, strlen(s));
}

static void feed_bytes(const void *b, size_t n)
{
    at_chat_feed(F.chat, b, n);
}

/* The chat wrote exactly want (then forget it). */
static void expect_written(const char *want, size_t len)
{
    if (F.out_len != len || memcmp(F.out, want, len) != 0)
        fail_msg("written '%.*s' (%zu bytes), expected '%.*s' (%zu)", (int)F.out_len,
                 (const char *)F.out, F.out_len, (int)len, want, len);
    F.out_len = 0;
}
#define EXPECT(lit) expect_written((lit), sizeof(lit) - 1)

/* The chat's resync after an abort (at/chat.h): ESC, a drain, ATE1, the
 * echoed marker, ATE0; queued commands wait until it is done. */
static void resync_ok(void)
{
    char marker[64];

    EXPECT("\x1b");
    F.now += AT_CHAT_QUIET_MS;
    at_chat_tick(F.chat);
    EXPECT("ATE1\r");
    feed("ATE1\r\r\nOK\r\n");
    F.now += AT_CHAT_QUIET_MS;
    at_chat_tick(F.chat);
    assert_true(F.out_len > 3 && F.out_len < sizeof(marker) && F.out[F.out_len - 1] == '\r');
    memcpy(marker, F.out, F.out_len);
    marker[F.out_len] = '\0';
    F.out_len = 0;
    feed(marker);                               /* its echo */
    feed("\r\nOK\r\n");
    EXPECT("ATE0\r");
    feed("\r\nOK\r\n");
}

/* Up to AT+CMQTTCONNECT written (ACCQ and CFG answered OK unread). */
static void start_to_connect(void)
{
    cmqtt_modem_ready(F.c, true);
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
    for (int i = 0; i < 2; i++) {
        F.out_len = 0;
        feed("\r\nOK\r\n");
    }
}

/* Runs the connect sequence to CONNECTED with the module's real framing:
 * START already started (ERROR), OK before every result line. */
static void connect_ok(void)
{
    cmqtt_modem_ready(F.c, true);
    assert_int_equal(F.state, CMQTT_CONNECTING);
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nERROR\r\n");
    EXPECT("AT+CMQTTACCQ=0,\"dev1\"\r");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTCONNECT=0,\"tcp://127.0.0.1:1883\",60,1,\"user\",\"secret\"\r");
    feed("\r\nOK\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTING);   /* OK alone is not success */
    feed("\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    feed("\r\n> ");
    EXPECT("cloud/+");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
    assert_int_equal(F.out_len, 0);
}

/* After a CONNLOST: the retry after the backoff, to CONNECTED again. */
static void connect_ok_again(void)
{
    assert_true(fire_timer(1000));
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nERROR\r\n");                    /* START: already started */
    EXPECT("AT+CMQTTACCQ=0,\"dev1\"\r");
    feed("\r\nERROR\r\n");                    /* ACCQ: still acquired */
    EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
    feed("\r\nOK\r\n");                       /* no DISC after a CONNLOST */
    EXPECT("AT+CMQTTCONNECT=0,\"tcp://127.0.0.1:1883\",60,1,\"user\",\"secret\"\r");
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    feed("\r\n> ");
    EXPECT("cloud/+");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
}

/* --- tests: pure ------------------------------------------------------------------ */

static void test_topic_match(void **state)
{
    static const struct {
        const char *filter, *topic;
        bool match;
    } cases[] = {
        { "a/b", "a/b", true },       { "a/b", "a/c", false },    { "a/+", "a/b", true },
        { "a/+", "a/b/c", false },    { "a/#", "a/b/c", true },   { "a/#", "a", true },
        { "#", "a/b", true },         { "+/+", "a/b", true },     { "+", "a/b", false },
        { "a/+/c", "a//c", true },    { "+", "", true },          { "#", "$SYS/x", false },
        { "+/x", "$SYS/x", false },   { "$SYS/#", "$SYS/x", true }, { "sensors/+/temp",
                                                                      "sensors/k/temp", true },
        { "sensors/+/temp", "sensors/k/hum", false }, { "ab", "a", false }, { "a", "ab", false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (cmqtt_topic_match(cases[i].filter, cases[i].topic, strlen(cases[i].topic)) !=
            cases[i].match)
            fail_msg("'%s' vs '%s': expected %d", cases[i].filter, cases[i].topic,
                     cases[i].match);
}

static void test_error_texts(void **state)
{
    (void)state;
    assert_string_equal(cmqtt_error_text(30), "connection refused: bad user name or password");
    assert_string_equal(cmqtt_error_text(11), "no connection");
    assert_string_equal(cmqtt_error_text(26), "socket is closed by server");
    assert_string_equal(cmqtt_error_text(35), "disconnect from server failed");
    assert_string_equal(cmqtt_error_text(36), "unknown error");
    assert_string_equal(cmqtt_error_text(-1), "unknown error");
    for (int e = 0; e <= 35; e++)
        assert_non_null(cmqtt_error_text(e));
    assert_string_equal(cmqtt_state_name(CMQTT_DISABLED), "disabled");
    assert_string_equal(cmqtt_state_name(CMQTT_CONNECTED), "connected");
}

/* What an answer means, from the module's transcripts: the <e> of the
 * last +CMQTT line, and whether the step succeeded. */
static void test_answer_codes(void **state)
{
    static const struct {
        enum at_final final;
        const char *line;       /* NULL: none */
        int code;
        bool ok;
    } cases[] = {
        { AT_FINAL_OK, NULL, -1, true },                           /* ACCQ */
        { AT_FINAL_OK, "+CMQTTSTART: 0", 0, true },
        { AT_FINAL_OK, "+CMQTTCONNECT: 0,0", 0, true },
        { AT_FINAL_OK, "+CMQTTCONNECT: 0,30", 30, false },         /* bad password */
        { AT_FINAL_OK, "+CMQTTPUB: 0,11", 11, false },
        { AT_FINAL_OK, "+CMQTTDISC: 0,11", 11, false },
        { AT_FINAL_ERROR, "+CMQTTACCQ: 0,19", 19, false },         /* already acquired */
        { AT_FINAL_ERROR, NULL, -1, false },
        /* Not "[<client>,]<e>": no code, and no success after OK. */
        { AT_FINAL_OK, "+CMQTTCONNECT: 0,3x", -1, false },
        { AT_FINAL_OK, "+CMQTTCONNECT: 0,0,0", -1, false },
        { AT_FINAL_OK, "+CMQTTCONNECT: 0,1000", -1, false },
        { AT_FINAL_OK, "+CMQTTCONNECT:", -1, false },
        /* A line of no CMQTT command says nothing. */
        { AT_FINAL_OK, "+CSQ: 14,99", -1, true },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *lines[2] = { cases[i].line, NULL };
        const struct at_response rsp = { .final = cases[i].final, .code = -1, .lines = lines,
                                         .n_lines = cases[i].line ? 1 : 0 };
        if (cmqtt_answer_code(&rsp) != cases[i].code || cmqtt_answer_ok(&rsp) != cases[i].ok)
            fail_msg("%s: code %d ok %d", cases[i].line ? cases[i].line : "(none)",
                     cmqtt_answer_code(&rsp), cmqtt_answer_ok(&rsp));
    }
    assert_true(cmqtt_conn_code(11));
    assert_false(cmqtt_conn_code(30));
}

/* --- tests: session --------------------------------------------------------------- */

/* Each step is logged with its script's name; a refusal after OK names
 * the module's result line. */
static void test_steps_logged(void **state)
{
    struct capture cap;
    char log[8192];

    (void)state;
    assert_int_equal(capture_begin(&cap), 0);
    start_to_connect();
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,30\r\n");
    capture_end(&cap, log, sizeof(log));
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_non_null(strstr(log, "remote: connect: start: ok"));
    assert_non_null(strstr(log, "remote: connect: acquire: ok"));
    assert_non_null(strstr(log, "remote: connect: MQTT version: ok"));
    assert_non_null(strstr(log, "remote: connect: connect: +CMQTTCONNECT: 0,30"));
    assert_null(strstr(log, "secret"));   /* the password stays out */
}

static void test_connect_sequence(void **state)
{
    (void)state;
    connect_ok();
    assert_int_equal(cmqtt_stats(F.c)->connects, 1);
}

/* A fresh start up to what follows CFG: START, ACCQ, CFG answered OK. */
static void start_to_cfg(void)
{
    cmqtt_modem_ready(F.c, true);
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
    EXPECT("AT+CMQTTACCQ=0,\"dev1\"\r");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
    feed("\r\nOK\r\n");
}

/* The retry after a backoff of delay ms up to what follows CFG: START
 * already started, ACCQ still acquired ("+CMQTTACCQ: 0,19" then ERROR:
 * go on). */
static void retry_to_cfg(int64_t delay)
{
    assert_true(fire_timer(delay));
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nERROR\r\n");
    EXPECT("AT+CMQTTACCQ=0,\"dev1\"\r");
    feed("\r\n+CMQTTACCQ: 0,19\r\n\r\nERROR\r\n");
    EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
    feed("\r\nOK\r\n");
}

static void test_connect_refused_backoff(void **state)
{
    (void)state;
    start_to_cfg();
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,30\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_non_null(strstr(F.reason, "bad user name or password (30)"));
    assert_string_equal(cmqtt_reason(F.c), F.reason);
    /* Nothing is sent until the backoff is over: 1 s, then 2 s, 4 s. */
    assert_int_equal(F.out_len, 0);
    for (int64_t d = 1000; d <= 8000; d *= 2) {
        retry_to_cfg(d);
        /* After a failed attempt: close whatever is left first; the
         * module's answer (here "not connected", 11) does not matter. */
        EXPECT("AT+CMQTTDISC=0,60\r");
        feed("\r\nOK\r\n\r\n+CMQTTDISC: 0,11\r\n");
        F.out_len = 0;
        feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,30\r\n");
        assert_int_equal(F.state, CMQTT_DISCONNECTED);
    }
    assert_false(fire_timer(1000));
    assert_true(fire_timer(16000));
}

static void test_connlost_reconnects_and_resubscribes(void **state)
{
    (void)state;
    connect_ok();
    feed("\r\n+CMQTTCONNLOST: 0,1\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_non_null(strstr(F.reason, "closed by the broker"));
    /* A run-time subscription while down: kept for the reconnect. */
    cmqtt_subscribe(F.c, "rt/#", 2, on_done, NULL);
    assert_true(F.done_ok);
    assert_int_equal(F.out_len, 0);
    retry_to_cfg(1000);
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    feed("\r\n> ");
    EXPECT("cloud/+");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,4,2\r");
    feed("\r\n> ");
    EXPECT("rt/#");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
}

/* --- tests: publish ----------------------------------------------------------------- */

static void test_publish_binary(void **state)
{
    static const uint8_t payload[] = { 'a', '\r', '\n', 0, 0x1a, 0x1b, 'O', 'K', '\r', '\n' };
    (void)state;
    connect_ok();
    cmqtt_publish(F.c, "dev/x", payload, sizeof(payload), 1, true, on_done, NULL);
    EXPECT("AT+CMQTTTOPIC=0,5\r");
    feed("\r\n> ");
    EXPECT("dev/x");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTPAYLOAD=0,10\r");
    feed("\r\n> ");
    expect_written((const char *)payload, sizeof(payload));
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTPUB=0,1,60,1\r");
    feed("\r\nOK\r\n");
    assert_int_equal(F.n_done, 0);
    feed("\r\n+CMQTTPUB: 0,0\r\n");
    assert_int_equal(F.n_done, 1);
    assert_true(F.done_ok);
}

/* A command the chat refuses: a full queue is "busy" (try again), any
 * other refusal a fault that no retry mends. */
static void test_publish_send_refused(void **state)
{
    static const struct { int rc; const char *code; } cases[] = {
        { -ENOBUFS, "busy" }, { -EMSGSIZE, "modem_error" }, { -ENOMEM, "modem_error" },
    };
    (void)state;
    connect_ok();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        F.send_rc = cases[i].rc;
        cmqtt_publish(F.c, "t", (const uint8_t *)"p", 1, 1, false, on_done, NULL);
        assert_false(F.done_ok);
        assert_string_equal(F.done_code, cases[i].code);
    }
    F.send_rc = 0;
}

static void test_publish_rejections(void **state)
{
    static uint8_t big[10241];
    (void)state;
    /* Not connected: QoS 0 refused at once, nothing written. */
    cmqtt_publish(F.c, "t", (const uint8_t *)"p", 1, 0, false, on_done, NULL);
    assert_string_equal(F.done_code, "unavailable");
    assert_int_equal(cmqtt_stats(F.c)->dropped_qos0, 1);
    connect_ok();
    cmqtt_publish(F.c, "t", big, sizeof(big), 1, false, on_done, NULL);
    assert_string_equal(F.done_code, "too_long");
    cmqtt_publish(F.c, "t/+", (const uint8_t *)"p", 1, 1, false, on_done, NULL);
    assert_string_equal(F.done_code, "invalid_request");
    cmqtt_publish(F.c, "t\r\nAT", (const uint8_t *)"p", 1, 1, false, on_done, NULL);
    assert_string_equal(F.done_code, "invalid_request");
    assert_int_equal(F.n_done, 4);
    assert_int_equal(F.out_len, 0);
}

static void test_publish_queued_until_connected(void **state)
{
    (void)state;
    cmqtt_publish(F.c, "q", (const uint8_t *)"v", 1, 1, false, on_done, NULL);
    assert_int_equal(F.n_done, 0);
    assert_int_equal(F.out_len, 0);
    cmqtt_modem_ready(F.c, true);
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
    F.out_len = 0;
    feed("\r\nOK\r\n");
    F.out_len = 0;
    feed("\r\nOK\r\n");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    F.out_len = 0;
    feed("\r\n> ");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    /* Connected: the queued publish goes out first thing. */
    EXPECT("AT+CMQTTTOPIC=0,1\r");
    feed("\r\n> ");
    EXPECT("q");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTPAYLOAD=0,1\r");
    feed("\r\n> ");
    EXPECT("v");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTPUB=0,1,60\r");
    feed("\r\nOK\r\n\r\n+CMQTTPUB: 0,0\r\n");
    assert_true(F.done_ok);
}

/* --- tests: receive ------------------------------------------------------------------ */

static const uint8_t RX_PAYLOAD[20] = { 'x', '\r', '\n', 0, '+', 'C', 'M', 'Q', 'T', 'T', 'R',
                                        'X', 'E', 'N', 'D', ':', ' ', '0', '\r', '\n' };

/* One message: topic in two chunks, payload in two chunks of 12 and 8,
 * the payload holding CR LF NUL and a fake RXEND line. */
static size_t rx_transcript(uint8_t *buf)
{
    size_t n = 0;
#define PUT(s) (memcpy(buf + n, (s), strlen(s)), n += strlen(s))
    PUT("\r\n+CMQTTRXSTART: 0,9,20\r\n");
    PUT("+CMQTTRXTOPIC: 0,6\r\ncloud/\r\n");
    PUT("+CMQTTRXTOPIC: 0,3\r\nabc\r\n");
    PUT("+CMQTTRXPAYLOAD: 0,12\r\n");
    memcpy(buf + n, RX_PAYLOAD, 12);
    n += 12;
    PUT("\r\n+CMQTTRXPAYLOAD: 0,8\r\n");
    memcpy(buf + n, RX_PAYLOAD + 12, 8);
    n += 8;
    PUT("\r\n+CMQTTRXEND: 0\r\n");
#undef PUT
    return n;
}

static void expect_rx_message(size_t i)
{
    assert_true(F.n_msgs > i);
    assert_string_equal(F.msgs[i].topic, "cloud/abc");
    assert_int_equal(F.msgs[i].len, sizeof(RX_PAYLOAD));
    assert_memory_equal(F.msgs[i].payload, RX_PAYLOAD, sizeof(RX_PAYLOAD));
    assert_int_equal(F.msgs[i].qos, 1);   /* "cloud/+" was subscribed with QoS 1 */
}

static void test_rx_every_split(void **state)
{
    uint8_t t[512];
    size_t n = rx_transcript(t);
    (void)state;
    connect_ok();
    for (size_t cut = 0; cut <= n; cut++) {
        F.n_msgs = 0;
        feed_bytes(t, cut);
        feed_bytes(t + cut, n - cut);
        if (F.n_msgs != 1)
            fail_msg("split at %zu: %zu messages", cut, F.n_msgs);
        expect_rx_message(0);
    }
    /* Byte by byte, and two cuts at once. */
    F.n_msgs = 0;
    for (size_t i = 0; i < n; i++)
        feed_bytes(t + i, 1);
    expect_rx_message(0);
    for (size_t a = 0; a < n; a += 7) {
        for (size_t b = a; b <= n; b += 5) {
            F.n_msgs = 0;
            feed_bytes(t, a);
            feed_bytes(t + a, b - a);
            feed_bytes(t + b, n - b);
            if (F.n_msgs != 1)
                fail_msg("splits at %zu and %zu: %zu messages", a, b, F.n_msgs);
            expect_rx_message(0);
        }
    }
    assert_int_equal(F.n_errors, 0);
    assert_int_equal(F.out_len, 0);
}

/* A message arriving between a command's OK and its result line. */
static void test_rx_inside_command(void **state)
{
    uint8_t t[512];
    size_t n = rx_transcript(t);
    (void)state;
    connect_ok();
    cmqtt_publish(F.c, "d", (const uint8_t *)"", 0, 1, false, on_done, NULL);
    EXPECT("AT+CMQTTTOPIC=0,1\r");
    feed("\r\n> ");
    EXPECT("d");
    feed("\r\nOK\r\n");
    /* Empty payload: no AT+CMQTTPAYLOAD (the module takes 1-10240). */
    EXPECT("AT+CMQTTPUB=0,1,60\r");
    feed("\r\nOK\r\n");
    feed_bytes(t, n);
    feed("\r\n+CMQTTPUB: 0,0\r\n");
    expect_rx_message(0);
    assert_true(F.done_ok);
}

static void test_rx_longer_than_announced(void **state)
{
    uint8_t t[512];
    size_t n = rx_transcript(t);
    (void)state;
    connect_ok();
    feed("\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
         "+CMQTTRXPAYLOAD: 0,6\r\n123456\r\n+CMQTTRXEND: 0\r\n");
    assert_int_equal(F.n_msgs, 0);
    assert_int_equal(F.n_errors, 1);
    assert_non_null(strstr(F.last_error, "remote_message_dropped"));
    /* Recovered: the next one is delivered. */
    feed_bytes(t, n);
    expect_rx_message(0);
}

static void test_rx_short_and_missing_end(void **state)
{
    uint8_t t[512];
    size_t n = rx_transcript(t);
    (void)state;
    connect_ok();
    /* RXEND before the payload came. */
    feed("\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n+CMQTTRXEND: 0\r\n");
    assert_int_equal(F.n_errors, 1);
    /* No RXEND at all: the timeout drops it. */
    feed("\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
         "+CMQTTRXPAYLOAD: 0,4\r\n1234\r\n");
    assert_true(fire_timer(CMQTT_RX_TIMEOUT_MS));
    assert_int_equal(F.n_errors, 2);
    assert_non_null(strstr(F.last_error, "RXEND"));
    assert_int_equal(F.n_msgs, 0);
    feed_bytes(t, n);
    expect_rx_message(0);
    /* A new RXSTART in the middle of a message: the old one is dropped. */
    feed("\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n");
    feed_bytes(t, n);
    assert_int_equal(F.n_errors, 3);
    expect_rx_message(1);
}


/* --- tests: lengths the module cannot send ------------------------------------------ */

/* Announced lengths are believed only within what the module can send and
 * within what RXSTART announced: beyond, the message is dropped with an
 * error and NO bytes are read, so the module's next output (here: a whole
 * message) is still parsed. The old code read a false 9999-byte chunk and
 * swallowed what followed. */
static void test_rx_false_lengths(void **state)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t errors;
    } cases[] = {
        { "payload chunk beyond the announced total",
          "\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,9999\r\nhello\r\n+CMQTTRXEND: 0\r\n", 1 },
        { "topic chunk beyond the announced total",
          "\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,200\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,5\r\nhello\r\n+CMQTTRXEND: 0\r\n", 1 },
        { "second payload chunk beyond what remains",
          "\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,3\r\nhel\r\n+CMQTTRXPAYLOAD: 0,3\r\nlo\r\n+CMQTTRXEND: 0\r\n", 1 },
        { "payload total beyond 10240",
          "\r\n+CMQTTRXSTART: 0,3,10241\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,10241\r\nhello\r\n+CMQTTRXEND: 0\r\n", 2 },
        { "topic total beyond 1024",
          "\r\n+CMQTTRXSTART: 0,1025,5\r\n+CMQTTRXTOPIC: 0,1025\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,5\r\nhello\r\n+CMQTTRXEND: 0\r\n", 2 },
        { "chunk of 65536 without RXSTART",
          "\r\n+CMQTTRXPAYLOAD: 0,65536\r\nhello\r\n", 1 },
        { "chunk of 10241 without RXSTART",
          "\r\n+CMQTTRXPAYLOAD: 0,10241\r\nhello\r\n", 1 },
        { "topic chunk of 1025 without RXSTART",
          "\r\n+CMQTTRXTOPIC: 0,1025\r\nabc\r\n", 1 },
        /* Malformed: no total is believed (the chunks are skipped). */
        { "garbage after the payload total",
          "\r\n+CMQTTRXSTART: 0,3,5x\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
          "+CMQTTRXPAYLOAD: 0,5\r\nhello\r\n+CMQTTRXEND: 0\r\n", 1 },
    };
    uint8_t t[512];
    size_t n = rx_transcript(t);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        teardown(NULL);
        setup(NULL);
        connect_ok();
        feed(cases[i].bytes);
        if (F.n_msgs != 0)
            fail_msg("%s: a message was delivered", cases[i].name);
        if (F.n_errors != cases[i].errors)
            fail_msg("%s: %zu errors, want %zu (last: %s)", cases[i].name, F.n_errors,
                     cases[i].errors, F.last_error);
        if (!strstr(F.last_error, "remote_message_dropped"))
            fail_msg("%s: error '%s'", cases[i].name, F.last_error);
        /* Nothing was read for it: what the module says next is parsed. */
        feed_bytes(t, n);
        if (F.n_msgs != 1)
            fail_msg("%s: the next message was swallowed", cases[i].name);
        expect_rx_message(0);
    }
}

/* The largest message the module can send, in 1500-byte chunks as it does,
 * and a single 10240-byte chunk (the chat's block limit is the same
 * constant), are delivered whole. */
static void test_rx_at_the_limits(void **state)
{
    static uint8_t buf[2 * (CMQTT_TOPIC_MAX + CMQTT_PAYLOAD_MAX) + 1024];
    static char topic[CMQTT_TOPIC_MAX + 1];
    static uint8_t payload[CMQTT_PAYLOAD_MAX];
    size_t n = 0;

    (void)state;
    memset(topic, 't', CMQTT_TOPIC_MAX);
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    connect_ok();
    for (int pass = 0; pass < 2; pass++) {
        size_t chunk = pass == 0 ? 1500 : CMQTT_PAYLOAD_MAX;
        n = (size_t)sprintf((char *)buf, "\r\n+CMQTTRXSTART: 0,%d,%d\r\n+CMQTTRXTOPIC: 0,%d\r\n",
                            CMQTT_TOPIC_MAX, CMQTT_PAYLOAD_MAX, CMQTT_TOPIC_MAX);
        memcpy(buf + n, topic, CMQTT_TOPIC_MAX);
        n += CMQTT_TOPIC_MAX;
        for (size_t off = 0; off < sizeof(payload); off += chunk) {
            size_t k = sizeof(payload) - off < chunk ? sizeof(payload) - off : chunk;
            n += (size_t)sprintf((char *)buf + n, "\r\n+CMQTTRXPAYLOAD: 0,%zu\r\n", k);
            memcpy(buf + n, payload + off, k);
            n += k;
        }
        n += (size_t)sprintf((char *)buf + n, "\r\n+CMQTTRXEND: 0\r\n");
        feed_bytes(buf, n);
        assert_int_equal(F.n_errors, 0);
        assert_int_equal(F.n_msgs, (size_t)pass + 1);
        assert_int_equal(F.msgs[pass].len, CMQTT_PAYLOAD_MAX);
        assert_memory_equal(F.msgs[pass].payload, payload, CMQTT_PAYLOAD_MAX);
        assert_int_equal(strlen(F.msgs[pass].topic), CMQTT_TOPIC_MAX);
    }
}

/* --- tests: a URC that ends the session ------------------------------------------- */

static int other_final = -1;

static void other_done(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    other_final = (int)rsp->final;
}

/* +CMQTTCONNLOST while AT+CMQTTSUB waits for its result after OK: the SUB
 * is answered "unavailable" at once and the command queued behind it (an
 * SMS, a status poll) is written at once. The old code let the whole queue
 * wait for the SUB's 65 s timeout. */
static void test_connlost_aborts_waiting_sub(void **state)
{
    (void)state;
    connect_ok();
    cmqtt_subscribe(F.c, "a/#", 1, on_done, NULL);
    EXPECT("AT+CMQTTSUB=0,3,1\r");
    feed("\r\n> ");
    EXPECT("a/#");
    feed("\r\nOK\r\n");
    other_final = -1;
    assert_int_equal(at_chat_send(F.chat, "AT+CSQ", NULL, other_done, NULL), 0);
    assert_int_equal(F.out_len, 0);              /* behind the SUB */
    feed("\r\n+CMQTTCONNLOST: 0,3\r\n");
    assert_int_equal(F.n_done, 1);
    assert_string_equal(F.done_code, "unavailable");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    /* The SUB's result, if it still comes, completes nothing: the chat
     * drains it in its resync, then AT+CSQ goes on. */
    feed("\r\n+CMQTTSUB: 0,11\r\n");
    resync_ok();
    EXPECT("AT+CSQ\r");
    assert_int_equal(other_final, -1);
    feed("\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    assert_int_equal(other_final, AT_FINAL_OK);
    /* Not kept: the next session subscribes cloud/+ only. */
    connect_ok_again();
    assert_int_equal(F.out_len, 0);
}

/* Runs a publish of "v" on "q" up to the OK of its AT+CMQTTPUB. */
static void publish_to_pub(int qos)
{
    EXPECT("AT+CMQTTTOPIC=0,1\r");
    feed("\r\n> ");
    EXPECT("q");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTPAYLOAD=0,1\r");
    feed("\r\n> ");
    EXPECT("v");
    feed("\r\nOK\r\n");
    if (qos == 1)
        EXPECT("AT+CMQTTPUB=0,1,60\r");
    else
        EXPECT("AT+CMQTTPUB=0,0,60\r");
    feed("\r\nOK\r\n");
}

/* The same for a publish waiting for +CMQTTPUB: a QoS 1 one is kept for
 * the reconnect (not answered), a QoS 0 one is answered "unavailable". */
static void test_connlost_aborts_waiting_pub(void **state)
{
    (void)state;
    connect_ok();
    cmqtt_publish(F.c, "q", (const uint8_t *)"v", 1, 1, false, on_done, NULL);
    publish_to_pub(1);
    feed("\r\n+CMQTTCONNLOST: 0,1\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_int_equal(F.n_done, 0);
    resync_ok();
    assert_true(at_chat_idle(F.chat));
    connect_ok_again();
    publish_to_pub(1);                           /* the kept one, first */
    feed("\r\n+CMQTTPUB: 0,0\r\n");
    assert_int_equal(F.n_done, 1);
    assert_true(F.done_ok);

    cmqtt_publish(F.c, "q", (const uint8_t *)"v", 1, 0, false, on_done, NULL);
    publish_to_pub(0);
    feed("\r\n+CMQTTCONNLOST: 0,1\r\n");
    assert_int_equal(F.n_done, 2);
    assert_string_equal(F.done_code, "unavailable");
    resync_ok();
    assert_true(at_chat_idle(F.chat));
}

/* The session ends between two steps of a publish (TOPIC done): the job
 * stops there instead of sending PAYLOAD and PUB into "no connection". */
static void test_connlost_between_steps(void **state)
{
    (void)state;
    connect_ok();
    cmqtt_publish(F.c, "q", (const uint8_t *)"v", 1, 0, false, on_done, NULL);
    EXPECT("AT+CMQTTTOPIC=0,1\r");
    feed("\r\n> ");
    EXPECT("q");
    feed("\r\n+CMQTTCONNLOST: 0,2\r\n");         /* TOPIC is not aborted */
    assert_int_equal(F.n_done, 0);
    feed("\r\nOK\r\n");
    assert_int_equal(F.n_done, 1);
    assert_string_equal(F.done_code, "unavailable");
    assert_int_equal(F.out_len, 0);              /* no PAYLOAD, no PUB */
}

/* +CMQTTNONET while AT+CMQTTCONNECT waits for its result: aborted, the
 * retry comes after the backoff. */
static void test_nonet_aborts_connect(void **state)
{
    (void)state;
    start_to_connect();
    EXPECT("AT+CMQTTCONNECT=0,\"tcp://127.0.0.1:1883\",60,1,\"user\",\"secret\"\r");
    feed("\r\nOK\r\n\r\n+CMQTTNONET\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    resync_ok();
    assert_true(at_chat_idle(F.chat));
    assert_true(fire_timer(1000));
    EXPECT("AT+CMQTTSTART\r");
}

/* --- tests: subscribe, shutdown, modem loss ----------------------------------------- */

static void test_subscribe_unsubscribe(void **state)
{
    (void)state;
    connect_ok();
    cmqtt_subscribe(F.c, "a/#", 0, on_done, NULL);
    EXPECT("AT+CMQTTSUB=0,3,0\r");
    feed("\r\n> ");
    EXPECT("a/#");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_true(F.done_ok);
    cmqtt_unsubscribe(F.c, "a/#", on_done, NULL);
    EXPECT("AT+CMQTTUNSUBTOPIC=0,3\r");
    feed("\r\n> ");
    EXPECT("a/#");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTUNSUB=0,0\r");
    feed("\r\nOK\r\n\r\n+CMQTTUNSUB: 0,0\r\n");
    assert_int_equal(F.n_done, 2);
    assert_true(F.done_ok);
    /* A refused subscription: modem_error with the reason. */
    cmqtt_subscribe(F.c, "b", 1, on_done, NULL);
    F.out_len = 0;
    feed("\r\n> ");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,1\r\n");
    assert_string_equal(F.done_code, "modem_error");
    /* Bad filters: nothing written. */
    cmqtt_subscribe(F.c, "a/#/b", 0, on_done, NULL);
    assert_string_equal(F.done_code, "invalid_request");
    assert_int_equal(F.out_len, 0);
}

static void stopped(void *ctx)
{
    (*(int *)ctx)++;
}

/* A connected session stopped: DISC written, its answer awaited. */
static void stop_connected(int *n)
{
    connect_ok();
    cmqtt_shutdown(F.c, stopped, n);
    EXPECT("AT+CMQTTDISC=0,60\r");
}

/* The end of a stop once DISC is answered: REL, STOP. */
static void rel_and_stop(void)
{
    EXPECT("AT+CMQTTREL=0\r");
    feed("\r\nOK\r\n");
    EXPECT("AT+CMQTTSTOP\r");
    feed("\r\nOK\r\n\r\n+CMQTTSTOP: 0\r\n");
}

static void test_shutdown(void **state)
{
    int n = 0;
    (void)state;
    stop_connected(&n);
    feed("\r\n+CMQTTDISC: 0,0\r\n\r\nOK\r\n");   /* result before OK: also fine */
    rel_and_stop();
    assert_int_equal(n, 1);
    assert_int_equal(F.out_len, 0);
}

/* The module may take CMQTT_DISC_TIMEOUT_S to close a session: the chat
 * waits that long and more for DISC's result, on the way out and before a
 * reconnect, rather than call a slow close a timeout. */
static void test_disc_waits_for_the_module(void **state)
{
    int n = 0;
    (void)state;
    stop_connected(&n);
    feed("\r\nOK\r\n");
    F.now += CMQTT_DISC_TIMEOUT_S * 1000 + 1000;
    at_chat_tick(F.chat);
    assert_int_equal(F.out_len, 0);          /* no timeout, no resync, no REL yet */
    feed("\r\n+CMQTTDISC: 0,0\r\n");
    rel_and_stop();
    assert_int_equal(n, 1);
}

/* A fresh service with a will (QoS 1) over a fresh chat. */
static const char WILL_PAYLOAD[] = "gone\r\nAT+CMGS=\"1\"\r\x1a";

static void new_with_will(const char *topic, const uint8_t *payload, size_t len, int qos)
{
    const struct cmqtt_cbs cb = { on_state, on_message, on_error };
    struct cmqtt_opts o = base_opts();

    cmqtt_free(F.c);
    at_chat_free(F.chat);
    new_chat();
    o.n_subs = 0;
    o.will_topic = topic;
    o.will_payload = payload;
    o.will_len = len;
    o.will_qos = qos;
    F.c = cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL);
}

/* remote.will: topic and message go to the module after ACCQ and before
 * CONNECT, each as exactly its counted bytes after the prompt (CR, LF,
 * Ctrl-Z and "AT" in the message are data, never a command), on every
 * connect. */
static void test_will_sequence(void **state)
{
    (void)state;
    new_with_will("dev/1/state", (const uint8_t *)WILL_PAYLOAD, sizeof(WILL_PAYLOAD) - 1, 1);
    assert_non_null(F.c);
    for (int round = 0; round < 2; round++) {
        if (round == 0)
            start_to_cfg();
        else
            retry_to_cfg(1000);
        EXPECT("AT+CMQTTWILLTOPIC=0,11\r");
        feed("\r\n>");
        EXPECT("dev/1/state");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTWILLMSG=0,19,1\r");
        feed("\r\n>");
        expect_written(WILL_PAYLOAD, sizeof(WILL_PAYLOAD) - 1);
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTCONNECT=0,\"tcp://127.0.0.1:1883\",60,1,\"user\",\"secret\"\r");
        feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
        assert_int_equal(F.state, CMQTT_CONNECTED);
        assert_int_equal(F.out_len, 0);
        feed("\r\n+CMQTTCONNLOST: 0,3\r\n");
    }
}

/* A will the module refuses is no quiet loss: the attempt fails with the
 * module's reason and no CONNECT goes out; the topic (round 0) as the
 * message (round 1). */
static void test_will_refused(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        new_with_will("dev/1/state", (const uint8_t *)"off", 3, 0);
        assert_non_null(F.c);
        start_to_cfg();
        EXPECT("AT+CMQTTWILLTOPIC=0,11\r");
        feed("\r\n>");
        EXPECT("dev/1/state");
        if (round == 0) {
            feed("\r\n+CMQTTWILLTOPIC: 0,22\r\n\r\nERROR\r\n");
        } else {
            feed("\r\nOK\r\n");
            EXPECT("AT+CMQTTWILLMSG=0,3,0\r");
            feed("\r\n>");
            EXPECT("off");
            feed("\r\n+CMQTTWILLMSG: 0,22\r\n\r\nERROR\r\n");
        }
        assert_int_equal(F.state, CMQTT_DISCONNECTED);
        assert_non_null(strstr(F.reason, "(22)"));
        assert_int_equal(F.out_len, 0);
    }
}

/* A will the module would refuse is refused up front. */
static void test_will_options(void **state)
{
    static const uint8_t big[CMQTT_WILL_MAX + 1];
    static const struct {
        const char *topic;
        size_t len;
        int qos;
        bool ok;
    } cases[] = {
        { "s", 1, 0, true },
        { "s", CMQTT_WILL_MAX, 2, true },
        { "s", CMQTT_WILL_MAX + 1, 0, false },
        { "s", 0, 0, false },
        { "s/#", 1, 0, false },
        { "s/+/x", 1, 0, false },
        { "", 1, 0, false },
        { "s", 1, 3, false },
        { "s", 1, -1, false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        new_with_will(cases[i].topic, big, cases[i].len, cases[i].qos);
        if ((F.c != NULL) != cases[i].ok)
            fail_msg("case %zu (%s, %zu bytes, qos %d): %s", i, cases[i].topic, cases[i].len,
                     cases[i].qos, F.c ? "accepted" : "refused");
    }
}

static void test_modem_lost(void **state)
{
    (void)state;
    connect_ok();
    cmqtt_publish(F.c, "q", (const uint8_t *)"v", 1, 1, false, on_done, NULL);
    EXPECT("AT+CMQTTTOPIC=0,1\r");
    F.ready = false;
    at_chat_cancel_all(F.chat);
    cmqtt_modem_ready(F.c, false);
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_int_equal(F.n_done, 0);   /* QoS 1: kept for the next session */
    F.ready = true;
    cmqtt_modem_ready(F.c, true);
    EXPECT("AT+CMQTTSTART\r");
    feed("\r\nERROR\r\n");
    F.out_len = 0;
    feed("\r\nERROR\r\n");
    F.out_len = 0;
    feed("\r\nOK\r\n");
    /* The module may still hold the old session: DISC before CONNECT,
     * whose answer may take the module's whole DISC timeout. */
    EXPECT("AT+CMQTTDISC=0,60\r");
    feed("\r\nOK\r\n");
    F.now += CMQTT_DISC_TIMEOUT_S * 1000 + 1000;
    at_chat_tick(F.chat);
    assert_int_equal(F.out_len, 0);
    feed("\r\n+CMQTTDISC: 0,0\r\n");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    F.out_len = 0;
    feed("\r\n> ");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
    /* The kept QoS 1 publish goes out. */
    EXPECT("AT+CMQTTTOPIC=0,1\r");
}

/* +CMQTTNONET: the stack stopped; START again after the backoff. */
static void test_nonet(void **state)
{
    (void)state;
    connect_ok();
    feed("\r\n+CMQTTNONET\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_non_null(strstr(F.reason, "data connection"));
    assert_int_equal(F.out_len, 0);
    assert_true(fire_timer(1000));
    EXPECT("AT+CMQTTSTART\r");
}

/* One subscription refused at connect: reported, the session stays up. */
static void test_connect_sub_refused(void **state)
{
    (void)state;
    start_to_connect();
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    feed("\r\n> ");
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,1\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
    assert_int_equal(F.n_errors, 1);
    assert_non_null(strstr(F.last_error, "remote_subscribe_failed"));
}

/* +CMQTTCONNLOST while a renewed subscription still waits in the chat's
 * queue (behind a status poll): there is nothing to abort; once it has
 * been answered the connect stops there: no next filter, not
 * "connected", the retry after the backoff. */
static void test_lost_before_resub(void **state)
{
    (void)state;
    cmqtt_subscribe(F.c, "b", 0, NULL, NULL);
    start_to_connect();
    F.out_len = 0;
    assert_int_equal(at_chat_send(F.chat, "AT+CSQ", NULL, other_done, NULL), 0);
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CSQ\r");                         /* the SUB waits behind it */
    feed("\r\n+CMQTTCONNLOST: 0,3\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    feed("\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    feed("\r\n> ");
    EXPECT("cloud/+");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.out_len, 0);             /* no SUB of "b" */
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_true(fire_timer(1000));
    EXPECT("AT+CMQTTSTART\r");
}

/* The chat resynchronises while a renewed subscription waits for its
 * prompt (its answer is out of step): that filter counts as refused, as a
 * refusal by the broker would, and the next one follows the resync. */
static void test_resub_out_of_step(void **state)
{
    (void)state;
    cmqtt_subscribe(F.c, "b", 0, NULL, NULL);   /* kept for the connect */
    start_to_connect();
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    at_chat_resync(F.chat, false, "test");
    assert_int_equal(F.n_errors, 1);
    assert_non_null(strstr(F.last_error, "remote_subscribe_failed"));
    assert_non_null(strstr(F.last_error, "cloud/+"));
    resync_ok();
    EXPECT("AT+CMQTTSUB=0,1,0\r");
    feed("\r\n> ");
    EXPECT("b");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    assert_int_equal(F.state, CMQTT_CONNECTED);
}

/* +CMQTTCONNLOST while the subscriptions of a connect run: not "connected". */
static void test_lost_while_subscribing(void **state)
{
    (void)state;
    start_to_connect();
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
    EXPECT("AT+CMQTTSUB=0,7,1\r");
    /* Lost before the prompt: the abort's resync writes ESC, which the
     * module reads at that prompt (it leaves data mode), and drains the
     * late answers; nothing of ours is taken for topic bytes. */
    feed("\r\n+CMQTTCONNLOST: 0,3\r\n");
    feed("\r\n> ");
    feed("\r\nOK\r\n\r\n+CMQTTSUB: 0,11\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    resync_ok();
    assert_true(fire_timer(1000));
    EXPECT("AT+CMQTTSTART\r");
}

static void test_disabled(void **state)
{
    const struct cmqtt_cbs cb = { on_state, on_message, on_error };
    struct cmqtt *d = cmqtt_new(FAKE_LOOP, FAKE_MODEM, NULL, &cb, NULL);
    (void)state;
    assert_non_null(d);
    assert_int_equal(cmqtt_state(d), CMQTT_DISABLED);
    cmqtt_modem_ready(d, true);
    cmqtt_publish(d, "t", (const uint8_t *)"p", 1, 1, false, on_done, NULL);
    assert_string_equal(F.done_code, "unavailable");
    assert_int_equal(F.out_len, 0);
    cmqtt_free(d);
    /* TLS is refused rather than silently sent in clear. */
    struct cmqtt_opts o = base_opts();
    o.tls = true;
    assert_null(cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL));
}

static void test_tls_sequence(void **state)
{
    static const char ca[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const struct cmqtt_cbs cb = { on_state, on_message, on_error };
    struct cmqtt_opts o = base_opts();
    (void)state;
    /* A fresh chat: the old service's URC table cannot be removed. */
    cmqtt_free(F.c);
    at_chat_free(F.chat);
    new_chat();
    o.tls = true;
    o.ca_pem = (const uint8_t *)ca;
    o.ca_len = sizeof(ca) - 1;
    o.n_subs = 0;
    F.c = cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL);
    assert_non_null(F.c);
    for (int round = 0; round < 2; round++) {
        if (round == 0)
            cmqtt_modem_ready(F.c, true);
        else
            assert_true(fire_timer(1000));
        EXPECT("AT+CMQTTSTART\r");
        feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
        if (round == 0) {
            /* The CA once per modem boot, byte exact after the prompt. */
            EXPECT("AT+CCERTDOWN=\"m2m_ca.pem\",59\r");
            feed("\r\n>");
            expect_written(ca, sizeof(ca) - 1);
            feed("\r\nOK\r\n");
        }
        EXPECT("AT+CSSLCFG=\"sslversion\",0,4\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"authmode\",0,1\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"cacert\",0,\"m2m_ca.pem\"\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"enableSNI\",0,1\r");
        feed("\r\nERROR\r\n");   /* older firmware: fine */
        EXPECT("AT+CMQTTSSLCFG=0,0\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTACCQ=0,\"dev1\",1\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
        feed("\r\nOK\r\n");
        F.out_len = 0;
        feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
        assert_int_equal(F.state, CMQTT_CONNECTED);
        feed("\r\n+CMQTTCONNLOST: 0,2\r\n");
    }
    /* A TLS handshake failure reads as such. */
    assert_true(fire_timer(1000));
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
    for (int i = 0; i < 7; i++) {
        F.out_len = 0;
        feed("\r\nOK\r\n");
    }
    F.out_len = 0;
    feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,32\r\n");
    assert_int_equal(F.state, CMQTT_DISCONNECTED);
    assert_non_null(strstr(F.reason, "handshake failed (32)"));
}

/* A client certificate (remote.cert_file/key_file): the certificate and
 * its key go to the module after the CA, authmode 2 (server and client),
 * clientcert/clientkey name them. An upload that fails sends all three
 * again on the next attempt. Half a pair is refused. */
static void test_tls_client_cert_sequence(void **state)
{
    static const char ca[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    static const char cert[] = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
    static const char key[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    const struct cmqtt_cbs cb = { on_state, on_message, on_error };
    struct cmqtt_opts o = base_opts();
    (void)state;
    cmqtt_free(F.c);
    at_chat_free(F.chat);
    new_chat();
    o.tls = true;
    o.ca_pem = (const uint8_t *)ca;
    o.ca_len = sizeof(ca) - 1;
    o.cert_pem = (const uint8_t *)cert;
    o.cert_len = sizeof(cert) - 1;
    o.n_subs = 0;
    /* Half a pair: refused. */
    assert_null(cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL));
    o.key_pem = (const uint8_t *)key;
    o.key_len = sizeof(key) - 1;
    F.c = cmqtt_new(FAKE_LOOP, FAKE_MODEM, &o, &cb, NULL);
    assert_non_null(F.c);
    cmqtt_modem_ready(F.c, true);
    for (int round = 0; round < 3; round++) {
        if (round > 0)
            assert_true(fire_timer(1000));   /* a success reset the backoff */
        EXPECT("AT+CMQTTSTART\r");
        feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n");
        if (round < 2) {
            EXPECT("AT+CCERTDOWN=\"m2m_ca.pem\",59\r");
            feed("\r\n>");
            expect_written(ca, sizeof(ca) - 1);
            feed("\r\nOK\r\n");
            EXPECT("AT+CCERTDOWN=\"client.pem\",59\r");
            feed("\r\n>");
            expect_written(cert, sizeof(cert) - 1);
            feed("\r\nOK\r\n");
            EXPECT("AT+CCERTDOWN=\"client.key\",59\r");
            feed("\r\n>");
            expect_written(key, sizeof(key) - 1);
            if (round == 0) {
                /* The key's upload fails: the session is down, and the
                 * next attempt starts the uploads over. */
                feed("\r\nERROR\r\n");
                assert_int_equal(F.state, CMQTT_DISCONNECTED);
                continue;
            }
            feed("\r\nOK\r\n");
        }
        EXPECT("AT+CSSLCFG=\"sslversion\",0,4\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"authmode\",0,2\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"cacert\",0,\"m2m_ca.pem\"\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"clientcert\",0,\"client.pem\"\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"clientkey\",0,\"client.key\"\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CSSLCFG=\"enableSNI\",0,1\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTSSLCFG=0,0\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTACCQ=0,\"dev1\",1\r");
        feed("\r\nOK\r\n");
        EXPECT("AT+CMQTTCFG=\"version\",0,4\r");
        feed("\r\nOK\r\n");
        if (round == 1) {
            /* After the failed attempt: the old session is closed first. */
            EXPECT("AT+CMQTTDISC=0,60\r");
            feed("\r\nOK\r\n\r\n+CMQTTDISC: 0,11\r\n");
        }
        F.out_len = 0;
        feed("\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n");
        assert_int_equal(F.state, CMQTT_CONNECTED);
        feed("\r\n+CMQTTCONNLOST: 0,2\r\n");
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_topic_match),
        T(test_error_texts),
        T(test_answer_codes),
        T(test_steps_logged),
        T(test_connect_sequence),
        T(test_connect_refused_backoff),
        T(test_connlost_reconnects_and_resubscribes),
        T(test_publish_binary),
        T(test_publish_rejections),
        T(test_publish_send_refused),
        T(test_publish_queued_until_connected),
        T(test_rx_every_split),
        T(test_rx_inside_command),
        T(test_rx_longer_than_announced),
        T(test_rx_short_and_missing_end),
        T(test_rx_false_lengths),
        T(test_rx_at_the_limits),
        T(test_connlost_aborts_waiting_sub),
        T(test_connlost_aborts_waiting_pub),
        T(test_connlost_between_steps),
        T(test_nonet_aborts_connect),
        T(test_subscribe_unsubscribe),
        T(test_shutdown),
        T(test_disc_waits_for_the_module),
        T(test_will_sequence),
        T(test_will_refused),
        T(test_will_options),
        T(test_modem_lost),
        T(test_nonet),
        T(test_connect_sub_refused),
        T(test_lost_while_subscribing),
        T(test_resub_out_of_step),
        T(test_lost_before_resub),
        T(test_disabled),
        T(test_tls_sequence),
        T(test_tls_client_cert_sequence),
    };
    return cmocka_run_group_tests_name("cmqtt", tests, NULL, NULL);
}
