/* Integration: voice calls through mosquitto, the bridge and the simulator
 * (B/call/dial, answer, hangup, dtmf and their
 * results; B/call/state retained, B/call/ring once per incoming call,
 * B/call/dtmf/received for each key the far end presses). */
#include "harness.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>

#define TO "+4917012345678"
#define FROM "+4930123456"

static const struct h_env_opts default_opts = { 0 };

/* ---- helpers ---- */

static void topic_of(const struct h_env *e, const char *suffix, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", e->base, suffix);
}

static bool iso8601_offset(const char *s)
{
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                             "[+-][0-9]{2}:[0-9]{2}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* Takes B/call/state messages until one has this state; checks the shape.
 * dir/number/ended NULL: must be null. */
#define wait_state(e, st, dir, number, ended) \
    wait_state_at(__FILE__, __LINE__, (e), (st), (dir), (number), (ended))
static cJSON *wait_state_at(const char *file, int line, struct h_env *e, const char *st,
                            const char *dir, const char *number, const char *ended)
{
    char t[160];
    snprintf(t, sizeof t, "%s/call/state", e->base);
    cJSON *s = h_mqtt_wait_json_where_at(file, line, &e->mqtt, t, "state", st, H_TIMEOUT_MS * 2);
    const struct { const char *key, *want; } f[] = {
        { "direction", dir }, { "number", number }, { "ended_reason", ended },
    };
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, f[i].key);
        if (!v)
            h_fail_at(file, line, "call/state has no \"%s\"", f[i].key);
        if (f[i].want)
            h_json_str_eq_at(file, line, s, f[i].key, f[i].want);
        else if (!cJSON_IsNull(v))
            h_fail_at(file, line, "call/state \"%s\" should be null", f[i].key);
    }
    if (!iso8601_offset(h_json_str_at(file, line, s, "since")))
        h_fail_at(file, line, "since '%s' is not ISO 8601 with offset",
                  h_json_str_at(file, line, s, "since"));
    bool has_duration = cJSON_GetObjectItemCaseSensitive(s, "duration") != NULL;
    if (has_duration != (ended != NULL))
        h_fail_at(file, line, "\"duration\" %s", has_duration ? "before the end" : "missing");
    return s;
}

/* Dials TO, the far end answers: the call is active. */
static void call_up(struct h_env *e)
{
    h_command(e, "call/dial", "{\"id\":1,\"to\":\"" TO "\"}");
    cJSON *r = h_result(e, "call/dial");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "id", 1);
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "rx ATD" TO ";", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_state(e, "dialing", "out", TO, NULL));
    cJSON_Delete(wait_state(e, "active", "out", TO, NULL));
}

/* ---- calls out, and how they end ---- */

static void test_dial_answered_dtmf_local_hangup(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "answer-ms 400", NULL, 0);
    h_command(e, "call/dial", "{\"id\":1,\"to\":\"" TO "\"}");
    h_expect_ok(e, "call/dial");
    h_sim_wait_line(&e->sim, "rx ATD" TO ";", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_state(e, "dialing", "out", TO, NULL));
    /* alerting comes from the +CLCC URC (AT+CLCC=1 at ready) */
    cJSON_Delete(wait_state(e, "alerting", "out", TO, NULL));
    cJSON_Delete(wait_state(e, "active", "out", TO, NULL));

    h_command(e, "call/dtmf", "{\"digits\":\"12#A\"}");
    h_expect_ok(e, "call/dtmf");
    h_sim_wait_line(&e->sim, "rx AT+VTS=\"12#A\"", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "dtmf 12#A", NULL, 0, H_TIMEOUT_MS);

    h_command(e, "call/hangup", "{}");
    h_expect_ok(e, "call/hangup");
    h_sim_wait_line(&e->sim, "rx AT+CHUP", NULL, 0, H_TIMEOUT_MS);
    cJSON *s = wait_state(e, "idle", "out", TO, "hangup");
    assert_true(h_json_int(s, "duration") >= 0);
    cJSON_Delete(s);
    H_PASS(e);
}

/* dial-outcome -> ended_reason, the dial itself accepted (ATD answered OK). */
static void dial_ending(struct h_env *e, const char *outcome, const char *ended)
{
    char cmd[64];
    h_env_up(e, &default_opts);
    snprintf(cmd, sizeof cmd, "dial-outcome %s", outcome);
    h_sim_cmd_ok(&e->sim, cmd, NULL, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\"}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_state(e, "dialing", "out", TO, NULL));
    cJSON *s = wait_state(e, "idle", "out", TO, ended);
    h_json_int_eq(s, "duration", 0);
    cJSON_Delete(s);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 1);
}

static void test_dial_busy(void **state)
{
    struct h_env *e = *state;
    dial_ending(e, "busy", "busy");
    H_PASS(e);
}

static void test_dial_no_answer(void **state)
{
    struct h_env *e = *state;
    dial_ending(e, "no-answer", "no_answer");
    H_PASS(e);
}

static void test_dial_no_carrier(void **state)
{
    struct h_env *e = *state;
    dial_ending(e, "no-carrier", "no_carrier");
    H_PASS(e);
}

static void test_dial_refused(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "dial-outcome error", NULL, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\"}");
    h_expect_error(e, "call/dial", "modem_error", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 1);
    /* Nothing began: a dial right after goes through. */
    h_command(e, "call/dial", "{\"to\":\"" TO "\"}");
    h_expect_ok(e, "call/dial");
    H_PASS(e);
}

static void test_remote_hangup(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    call_up(e);
    h_sim_cmd_ok(&e->sim, "remote-hangup", NULL, 0);
    cJSON *s = wait_state(e, "idle", "out", TO, "hangup");
    assert_true(h_json_int(s, "duration") >= 0);
    cJSON_Delete(s);
    /* NO CARRIER after VOICE CALL: END did not publish a second ending. */
    h_command(e, "call/hangup", "{}");
    h_expect_error(e, "call/hangup", "no_call", NULL);
    char t[160];
    topic_of(e, "call/state", t, sizeof t);
    assert_int_equal(h_mqtt_pending(&e->mqtt, t), 0);
    H_PASS(e);
}

/* The next B/call/dtmf/received: {"digit"}, QoS 1. */
static void expect_key(struct h_env *e, const char *t, const char *digit)
{
    cJSON *k = h_mqtt_wait_json(&e->mqtt, t, H_TIMEOUT_MS);
    h_json_str_eq(k, "digit", digit);
    if (cJSON_GetArraySize(k) != 1)
        h_fail("call/dtmf/received has more than \"digit\"");
    if (e->mqtt.last_qos != 1)
        h_fail("call/dtmf/received qos %d", e->mqtt.last_qos);
    cJSON_Delete(k);
}

/* A late subscriber gets no key: the broker kept none. It subscribes to
 * the key first and to the retained call state second; the broker sends
 * what it keeps per subscription, in order, so a kept key would be there
 * before the state. */
static void expect_no_retained_key(struct h_env *e, const char *t)
{
    char t_state[160];
    struct h_mqtt late;

    topic_of(e, "call/state", t_state, sizeof t_state);
    h_mqtt_connect(&late, e->broker.uri, "late-dtmf", true);
    h_mqtt_subscribe(&late, t);
    h_mqtt_subscribe(&late, t_state);
    cJSON_Delete(h_mqtt_wait_json(&late, t_state, H_TIMEOUT_MS));
    if (h_mqtt_pending(&late, t) != 0)
        h_fail("call/dtmf/received is retained");
    h_mqtt_disconnect(&late);
}

/* The far end presses keys (an alarm call acknowledged): one event each,
 * not retained; after the call the simulator has no audio to carry one. */
static void test_dtmf_received(void **state)
{
    struct h_env *e = *state;
    char t[160];
    h_env_up(e, &default_opts);
    topic_of(e, "call/dtmf/received", t, sizeof t);
    call_up(e);
    h_sim_cmd_ok(&e->sim, "dtmf 5", NULL, 0);
    expect_key(e, t, "5");
    h_sim_cmd_ok(&e->sim, "dtmf #", NULL, 0);
    expect_key(e, t, "#");
    expect_no_retained_key(e, t);

    h_sim_cmd_ok(&e->sim, "remote-hangup", NULL, 0);
    cJSON_Delete(wait_state(e, "idle", "out", TO, "hangup"));
    assert_int_equal(h_sim_cmd(&e->sim, "dtmf 5", NULL, 0), -1);
    assert_int_equal(h_mqtt_pending(&e->mqtt, t), 0);
    H_PASS(e);
}

/* ---- calls in ---- */

static void test_incoming_answered_one_ring_event(void **state)
{
    struct h_env *e = *state;
    char t_ring[160];
    h_env_up(e, &default_opts);
    topic_of(e, "call/ring", t_ring, sizeof t_ring);
    h_sim_cmd_ok(&e->sim, "ring-ms 150", NULL, 0);
    h_sim_cmd_ok(&e->sim, "ring " FROM, NULL, 0);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, t_ring, H_TIMEOUT_MS);
    h_json_str_eq(r, "from", FROM);
    if (e->mqtt.last_retained)
        h_fail("call/ring must not be retained");
    cJSON_Delete(r);
    cJSON_Delete(wait_state(e, "ringing", "in", FROM, NULL));
    /* Four RINGs (with +CLIP each) so far: still one ring event. */
    for (int i = 0; i < 4; i++)
        h_sim_wait_line(&e->sim, "ringing " FROM, NULL, 0, H_TIMEOUT_MS);
    h_command(e, "call/answer", "{\"id\":\"a\"}");
    h_expect_ok(e, "call/answer");
    h_sim_wait_line(&e->sim, "rx ATA", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_state(e, "active", "in", FROM, NULL));
    assert_int_equal(h_mqtt_pending(&e->mqtt, t_ring), 0);

    h_command(e, "call/hangup", "{}");
    h_expect_ok(e, "call/hangup");
    cJSON_Delete(wait_state(e, "idle", "in", FROM, "hangup"));
    H_PASS(e);
}

static void test_incoming_withheld(void **state)
{
    struct h_env *e = *state;
    char t_ring[160];
    h_env_up(e, &default_opts);
    topic_of(e, "call/ring", t_ring, sizeof t_ring);
    h_sim_cmd_ok(&e->sim, "ring withheld", NULL, 0);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, t_ring, H_TIMEOUT_MS);
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(r, "from");
    if (!from || !cJSON_IsNull(from))
        h_fail("a withheld caller must give \"from\":null");
    cJSON_Delete(r);
    cJSON_Delete(wait_state(e, "ringing", "in", NULL, NULL));
    H_PASS(e);
}

static void test_caller_gave_up(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "ring " FROM, NULL, 0);
    cJSON_Delete(wait_state(e, "ringing", "in", FROM, NULL));
    h_sim_cmd_ok(&e->sim, "ring-stop", NULL, 0);     /* MISSED_CALL */
    cJSON *s = wait_state(e, "idle", "in", FROM, "no_answer");
    h_json_int_eq(s, "duration", 0);
    cJSON_Delete(s);
    h_command(e, "call/answer", "{}");
    h_expect_error(e, "call/answer", "no_call", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATA"), 0);
    H_PASS(e);
}

/* Older firmware just stops ringing: after ~8 s without RING the bridge
 * asks AT+CLCC, which lists no call. */
static void test_caller_gave_up_silently(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "ring " FROM, NULL, 0);
    cJSON_Delete(wait_state(e, "ringing", "in", FROM, NULL));
    size_t mark = h_sim_mark(&e->sim);
    h_sim_cmd_ok(&e->sim, "ring-stop silent", NULL, 0);
    cJSON_Delete(wait_state(e, "idle", "in", FROM, "no_answer"));
    /* The simulator's event may be read after the MQTT message: wait. */
    static const char *const clcc[] = {"rx AT+CLCC", NULL};
    h_sim_wait_any(&e->sim, mark, clcc, NULL, 0, H_TIMEOUT_MS);
    H_PASS(e);
}

/* ---- refusals: nothing written ---- */

static void test_no_call(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    cJSON_Delete(wait_state(e, "idle", NULL, NULL, NULL));
    h_command(e, "call/answer", "{}");
    h_expect_error(e, "call/answer", "no_call", NULL);
    h_command(e, "call/hangup", "{}");
    h_expect_error(e, "call/hangup", "no_call", NULL);
    h_command(e, "call/dtmf", "{\"digits\":\"1\"}");
    h_expect_error(e, "call/dtmf", "no_call", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATA"), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CHUP"), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+VTS"), 0);
    H_PASS(e);
}

static void test_dtmf_invalid(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    call_up(e);
    h_command(e, "call/dtmf", "{\"digits\":\"12x\"}");
    h_expect_error(e, "call/dtmf", "invalid_request", NULL);
    h_command(e, "call/dtmf", "{\"digits\":\"1\\\"\"}");
    h_expect_error(e, "call/dtmf", "invalid_request", NULL);
    h_command(e, "call/dtmf", "{\"digits\":\"123456789012345678901234567890123\"}");
    h_expect_error(e, "call/dtmf", "invalid_request", NULL);
    h_command(e, "call/dtmf", "{}");
    h_expect_error(e, "call/dtmf", "invalid_request", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+VTS"), 0);
    /* A valid one still goes through after them. */
    h_command(e, "call/dtmf", "{\"digits\":\"*0#\"}");
    h_expect_ok(e, "call/dtmf");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+VTS"), 1);
    H_PASS(e);
}

static void test_dial_invalid_number(void **state)
{
    struct h_env *e = *state;
    static const char *const bad[] = {
        "{\"to\":\"+49170abc\"}", "{\"to\":\"+49170\\\"1\"}", "{\"to\":\"+49170;ATH\"}",
        "{\"to\":\"+49 170\"}",   "{\"to\":\"\"}",            "{\"to\":\"+4917\\r\\nAT\"}",
    };
    h_env_up(e, &default_opts);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_command(e, "call/dial", bad[i]);
        h_expect_error(e, "call/dial", "invalid_number", NULL);
    }
    h_command(e, "call/dial", "{\"to\":4917}");
    h_expect_error(e, "call/dial", "invalid_request", NULL);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"x\":1}");
    h_expect_error(e, "call/dial", "invalid_request", NULL);
    h_command(e, "call/dial", "{}");
    h_expect_error(e, "call/dial", "invalid_request", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 0);
    H_PASS(e);
}

static void test_dial_not_allowed(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = "\"calls\":{\"allow_to\":[\"+33*\"]}" };
    h_env_up(e, &o);
    h_command(e, "call/dial", "{\"to\":\"" TO "\"}");
    h_expect_error(e, "call/dial", "not_allowed", NULL);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 0);
    h_command(e, "call/dial", "{\"to\":\"+33123456789\"}");
    h_expect_ok(e, "call/dial");
    H_PASS(e);
}

/* ---- a restart of the bridge in the middle of a call ---- */

static void test_restart_mid_call(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    call_up(e);
    h_bridge_kill(&e->bridge);
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e);
    /* The first state the new bridge publishes is the call, from AT+CLCC. */
    char t[160];
    topic_of(e, "call/state", t, sizeof t);
    cJSON *s = h_mqtt_wait_json(&e->mqtt, t, H_TIMEOUT_MS * 2);
    h_json_str_eq(s, "state", "active");
    h_json_str_eq(s, "direction", "out");
    h_json_str_eq(s, "number", TO);
    cJSON_Delete(s);
    /* The simulator's event may be read after the MQTT message: wait. */
    static const char *const clcc[] = {"rx AT+CLCC", NULL};
    h_sim_wait_any(&e->sim, mark, clcc, NULL, 0, H_TIMEOUT_MS);
    /* Retained: a client that comes later sees the call. */
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "late-call", true);
    h_mqtt_subscribe(&late, t);
    s = h_mqtt_wait_json(&late, t, H_TIMEOUT_MS);
    if (!late.last_retained)
        h_fail("call/state is not retained");
    h_json_str_eq(s, "state", "active");
    cJSON_Delete(s);
    h_mqtt_disconnect(&late);
    /* And the recovered call can be ended. */
    h_command(e, "call/hangup", "{}");
    h_expect_ok(e, "call/hangup");
    cJSON_Delete(wait_state(e, "idle", "out", TO, "hangup"));
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_dial_answered_dtmf_local_hangup),
        T(test_dial_busy),
        T(test_dial_no_answer),
        T(test_dial_no_carrier),
        T(test_dial_refused),
        T(test_remote_hangup),
        T(test_dtmf_received),
        T(test_incoming_answered_one_ring_event),
        T(test_incoming_withheld),
        T(test_caller_gave_up),
        T(test_caller_gave_up_silently),
        T(test_no_call),
        T(test_dtmf_invalid),
        T(test_dial_invalid_number),
        T(test_dial_not_allowed),
        T(test_restart_mid_call),
    };
    return cmocka_run_group_tests_name("integration_call", tests, NULL, NULL);
}
