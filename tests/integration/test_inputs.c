/* Integration: user input that must never reach the modem, and module
 * text that must reach MQTT as valid UTF-8.
 *
 * For each refused request: a JSON error result arrives, and the
 * simulator, which reports every command line it receives (`rx <line>`)
 * and every data byte after a prompt (`rx-data <hex>`), saw none of it.
 * A later request that is accepted acts as a barrier: the bridge writes
 * commands in order, so once its line arrived an earlier one would have
 * too. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/utf8.h"

struct it {
    struct h_env e;               /* first: h_env_down works on it */
    struct h_broker remote;       /* test_remote_topics only */
    bool remote_up;
    struct h_mqtt sc;             /* B/status watcher (gets the retained one first) */
    bool sc_up;
    char *cfg;
};

static int it_setup(void **state)
{
    struct it *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->e.sim.in_fd = t->e.sim.out_fd = -1;
    *state = t;
    return 0;
}

static int it_teardown(void **state)
{
    struct it *t = *state;
    int rc = 0;
    if (t) {
        rc = h_env_down(&t->e);
        if (t->sc_up)
            h_mqtt_disconnect(&t->sc);
        if (t->remote_up)
            h_broker_cleanup(&t->remote, !t->e.passed);
        free(t->cfg);
        free(t);
    }
    *state = NULL;
    return rc;
}

/* ---- helpers ---- */

/* Simulator lines at index >= from that contain needle. */
static size_t saw_containing(struct h_sim *s, size_t from, const char *needle)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = from; i < s->n; i++)
        n += strstr(s->lines[i], needle) != NULL;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits for the barrier's line (the simulator's events may trail the
 * MQTT result a little). */
#define wait_line(s, from, prefix) wait_line_at(__FILE__, __LINE__, (s), (from), (prefix))
static void wait_line_at(const char *file, int line, struct h_sim *s, size_t from,
                         const char *prefix)
{
    const char *const prefixes[] = { prefix, NULL };
    h_sim_wait_any_at(file, line, s, from, prefixes, NULL, 0, 10000);
}

/* ---- B/at/send ---- */

/* Each is refused by the one parser, with nothing written: control bytes
 * (BEL, BS, DEL), an 8-bit byte, ';', and prompt commands anywhere in
 * the line. probe: what its `rx` line would start with. */
static void test_at_send_refused(void **state)
{
    struct it *t = *state;
    static const struct {
        const char *payload;
        const char *probe;
        const char *why;
    } bad[] = {
        { "{\"command\":\"AT;+CMGS=10\"}", "rx AT;", "';' is not allowed" },
        { "{\"command\":\"AT+CCLK?\\u0007\"}", "rx AT+CCLK", "byte 0x07" },
        { "{\"command\":\"AT+CPAS\\b\"}", "rx AT+CPA", "byte 0x08" },
        { "{\"command\":\"AT+CPMUTEMP\\u007f\"}", "rx AT+CPMUTEMP", "byte 0x7F" },
        { "{\"command\":\"AT+CGMI\\u00e9\"}", "rx AT+CGMI\xc3", "byte 0xC3" },
        { "{\"command\":\"ATE0+CMGS=10\"}", "rx ATE0+CMGS", "AT+CMGS" },
        { "{\"command\":\"at+cmqttsub=0,9,1\"}", "rx at+cmqttsub", "AT+CMQTTSUB" },
        { "{\"command\":\"AT+CCERTDOWN=\\\"x.pem\\\",10\"}", "rx AT+CCERTDOWN", "AT+CCERTDOWN" },
    };
    const struct h_env_opts o = { .config = "\"allow_raw_at\":true" };

    h_env_up(&t->e, &o);
    size_t mark = h_sim_mark(&t->e.sim);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_command(&t->e, "at/send", bad[i].payload);
        h_expect_error(&t->e, "at/send", "invalid_request", bad[i].why);
    }
    /* The barrier: an accepted command's line arrives. */
    h_command(&t->e, "at/send", "{\"command\":\"ATI\"}");
    cJSON *r = h_result(&t->e, "at/send");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    wait_line(&t->e.sim, mark, "rx ATI");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (h_sim_saw_since(&t->e.sim, mark, bad[i].probe))
            h_fail("%s reached the module", bad[i].payload);
    assert_int_equal(h_sim_saw_since(&t->e.sim, mark, "rx-data"), 0);
    H_PASS(&t->e);
}

/* ---- B/call/dial ---- */

#define FORWARD "**21*004917012345678#"

/* The default allow_to ["*"] means numbers: a code that would forward
 * every call is refused, and the message says how to allow it. */
static void test_dial_service_code_default(void **state)
{
    struct it *t = *state;
    const struct h_env_opts o = { 0 };

    h_env_up(&t->e, &o);
    size_t mark = h_sim_mark(&t->e.sim);
    h_command(&t->e, "call/dial", "{\"id\":1,\"to\":\"" FORWARD "\"}");
    h_expect_error(&t->e, "call/dial", "not_allowed", FORWARD);
    h_command(&t->e, "call/dial", "{\"to\":\"*31#\"}");
    h_expect_error(&t->e, "call/dial", "not_allowed", "calls.allow_to");
    h_command(&t->e, "call/dial", "{\"to\":\"+4917012345678#\"}");
    h_expect_error(&t->e, "call/dial", "not_allowed", "service code");
    /* The barrier: a number is dialled. */
    h_command(&t->e, "call/dial", "{\"to\":\"+4917012345678\"}");
    h_expect_ok(&t->e, "call/dial");
    wait_line(&t->e.sim, mark, "rx ATD+4917012345678;");
    assert_int_equal(h_sim_saw_since(&t->e.sim, mark, "rx ATD"), 1);
    H_PASS(&t->e);
}

/* Listed exactly, the same code is dialled as it is. */
static void test_dial_service_code_listed(void **state)
{
    struct it *t = *state;
    const struct h_env_opts o = { .config = "\"calls\":{\"allow_to\":[\"*\",\"" FORWARD "\"]}" };

    h_env_up(&t->e, &o);
    size_t mark = h_sim_mark(&t->e.sim);
    h_command(&t->e, "call/dial", "{\"to\":\"**21*0049170123456789#\"}");
    h_expect_error(&t->e, "call/dial", "not_allowed", "**21*0049170123456789#");
    h_command(&t->e, "call/dial", "{\"to\":\"" FORWARD "\"}");
    h_expect_ok(&t->e, "call/dial");
    wait_line(&t->e.sim, mark, "rx ATD" FORWARD ";");
    assert_int_equal(h_sim_saw_since(&t->e.sim, mark, "rx ATD"), 1);
    H_PASS(&t->e);
}

/* ---- remote topics ---- */

/* A topic with U+0085 (NEL, a C1 control) would make the remote broker
 * drop the module: refused naming 'topic', no byte of it written. */
static void test_remote_topics(void **state)
{
    struct it *t = *state;

    h_broker_start(&t->remote);
    t->remote_up = true;
    t->cfg = h_strdupf("\"remote\":{\"server\":\"tcp://127.0.0.1:%d\",\"client_id\":\"m2m-in\","
                       "\"keepalive\":60}",
                       t->remote.port);
    const struct h_env_opts o = { .config = t->cfg };
    h_env_up(&t->e, &o);
    h_mqtt_connect(&t->sc, t->e.broker.uri, "status-watch", true);
    t->sc_up = true;
    h_mqtt_subscribe(&t->sc, t->e.t_status);
    cJSON_Delete(h_mqtt_wait_json_where(&t->sc, t->e.t_status, "remote", "connected", 30000));

    size_t mark = h_sim_mark(&t->e.sim);
    h_command(&t->e, "remote/subscribe", "{\"topic\":\"a/\\u0085\",\"qos\":1}");
    h_expect_error(&t->e, "remote/subscribe", "invalid_request", "'topic' must not contain control");
    h_command(&t->e, "remote/subscribe", "{\"topic\":\"a/\xc2\x85/#\"}");
    h_expect_error(&t->e, "remote/subscribe", "invalid_request", "'topic'");
    h_command(&t->e, "remote/unsubscribe", "{\"topic\":\"a/\\u0085\"}");
    h_expect_error(&t->e, "remote/unsubscribe", "invalid_request", "'topic'");
    h_command(&t->e, "remote/publish", "{\"topic\":\"a/\\u0085\",\"payload\":\"p\"}");
    h_expect_error(&t->e, "remote/publish", "invalid_request", "'topic'");
    h_command(&t->e, "remote/publish", "{\"topic\":\"a/\\uffff\",\"payload\":\"p\"}");
    h_expect_error(&t->e, "remote/publish", "invalid_request", "noncharacters");
    /* The barrier: a valid subscription goes out, its topic as rx-data. */
    h_command(&t->e, "remote/subscribe", "{\"topic\":\"ok/x\",\"qos\":1}");
    h_expect_ok(&t->e, "remote/subscribe");
    wait_line(&t->e.sim, mark, "rx-data 6F6B2F78");               /* "ok/x" */
    assert_int_equal(saw_containing(&t->e.sim, mark, "C285"), 0);   /* U+0085 in hex */
    assert_int_equal(saw_containing(&t->e.sim, mark, "EFBFBF"), 0); /* U+FFFF */
    assert_int_equal(saw_containing(&t->e.sim, mark, "\xc2\x85"), 0);
    assert_int_equal(h_sim_saw_since(&t->e.sim, mark, "rx AT+CMQTTTOPIC"), 0);
    assert_int_equal(h_sim_saw_since(&t->e.sim, mark, "rx AT+CMQTTUNSUB"), 0);
    H_PASS(&t->e);
}

/* ---- module text into JSON ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The A7670 reports "Telef\xf3nica" (Latin-1): B/status must carry
 * valid UTF-8, "Telefónica". */
static void test_operator_latin1(void **state)
{
    struct it *t = *state;
    const struct h_env_opts o = { .no_bridge = true };
    cJSON *st = NULL;

    h_env_up(&t->e, &o);
    h_sim_cmd_ok(&t->e.sim, "operator 54656c6566f36e696361", NULL, 0);
    h_env_start_bridge(&t->e);
    h_mqtt_connect(&t->sc, t->e.broker.uri, "status-watch", true);
    t->sc_up = true;
    h_mqtt_subscribe(&t->sc, t->e.t_status);
    for (int64_t end = mono_ms() + h_ms(30000); !st && mono_ms() < end;) {
        struct h_msg *m = h_mqtt_take(&t->sc, t->e.t_status, 1000);
        if (!m)
            continue;
        /* Every B/status is valid UTF-8, not only the one we wait for. */
        if (!utf8_valid((const uint8_t *)m->payload, m->len))
            h_fail("B/status is not UTF-8: %s", m->payload);
        cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "operator");
        if (cJSON_IsString(op))
            st = j;
        else
            cJSON_Delete(j);
        h_msg_free(m);
    }
    if (!st)
        h_fail("no B/status with an operator");
    h_json_str_eq(st, "operator", "Telef\xc3\xb3nica");
    cJSON_Delete(st);
    H_PASS(&t->e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, it_setup, it_teardown)
    const struct CMUnitTest tests[] = {
        T(test_at_send_refused),
        T(test_dial_service_code_default),
        T(test_dial_service_code_listed),
        T(test_remote_topics),
        T(test_operator_latin1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
