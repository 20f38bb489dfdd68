/* Integration: modem.sleep. "rx": AT+CSCLK=2 at bring-up; the simulator
 * then sleeps after 5 s without input and loses the byte that wakes it.
 * Before a command after 5 s of silence the bridge sends a lone AT (the
 * simulator sees "T" and answers nothing), then the command: no timeout,
 * no resync. Incoming SMS and calls still arrive while the module sleeps.
 * "dtr" on a pty (no DTR line): said once, the module stays awake. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#define TO "+4917012345678"
#define FROM "+4917099999999"

static const struct h_env_opts rx_opts = {.config = "\"modem\":{\"sleep\":\"rx\"}"};

/* The simulator's 5 s of silence, plus the bring-up's last commands. */
#define ASLEEP_MS 15000

/* The simulator fell asleep (its `sleep` event). */
#define wait_asleep(e) h_sim_wait_line(&(e)->sim, "sleep", NULL, 0, h_ms(ASLEEP_MS))

/* B/sms/send {"id":id,"to":TO,"text":"..."}: its result is ok. */
#define send_sms_ok(e, id) send_sms_ok_at(__FILE__, __LINE__, (e), (id))
static void send_sms_ok_at(const char *file, int line, struct h_env *e, const char *id)
{
    char *payload = h_strdupf("{\"id\":\"%s\",\"to\":\"" TO "\",\"text\":\"awake?\"}", id);

    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    free(payload);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_str_eq_at(file, line, r, "id", id);
    h_json_bool_eq_at(file, line, r, "ok", true);
    cJSON_Delete(r);
}

/* Nothing in the log says the module hung or answered out of turn. */
#define assert_no_hang(e) assert_no_hang_at(__FILE__, __LINE__, (e))
static void assert_no_hang_at(const char *file, int line, struct h_env *e)
{
    static const char *const bad[] = {
        ": timeout", "a final result with no command in flight", "OK without the expected",
        "module not answering", "no answer to AT",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (h_bridge_log_count(&e->bridge, bad[i]) != 0)
            h_fail_at(file, line, "the bridge log has \"%s\"", bad[i]);
    /* Once, at the port's open; never again. */
    if (h_bridge_log_count(&e->bridge, "AT resynchronising") != 1)
        h_fail_at(file, line, "the bridge resynchronised after the port's open");
    cJSON *s = h_stats_get(e, 7);
    h_json_int_eq_at(file, line, s, "at_timeouts", 0);
    cJSON_Delete(s);
}

static void test_rx_sms_after_idle(void **state)
{
    struct h_env *e = *state;
    char l[256];

    h_env_up(e, &rx_opts);
    h_sim_wait_line(&e->sim, "csclk 2", NULL, 0, H_TIMEOUT_MS);
    wait_asleep(e);
    size_t mark = h_sim_mark(&e->sim);
    send_sms_ok(e, "s1");
    /* The lone AT lost its 'A' waking the module; the command came next. */
    size_t wake = h_sim_wait_line(&e->sim, "wake ", l, sizeof l, H_TIMEOUT_MS);
    assert_string_equal(l, "wake 41");
    size_t t = h_sim_wait_line(&e->sim, "rx T", l, sizeof l, H_TIMEOUT_MS);
    assert_string_equal(l, "rx T");
    size_t cmgs = h_sim_wait_line(&e->sim, "rx AT+CMGS=", NULL, 0, H_TIMEOUT_MS);
    if (!(mark <= wake && wake < t && t < cmgs))
        h_fail("expected the wake, the lone AT, then AT+CMGS: lines %zu, %zu, %zu", wake, t,
               cmgs);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "wake "), 1);
    assert_no_hang(e);
    H_PASS(e);
}

/* The first SMS wakes the module; the second, within 5 s, needs no wake:
 * no lone AT at all (the module is awake, it would answer "rx AT"). */
static void test_rx_no_wake_within_5s(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &rx_opts);
    wait_asleep(e);
    send_sms_ok(e, "s1");
    size_t mark = h_sim_mark(&e->sim);
    send_sms_ok(e, "s2");
    h_sim_wait_line(&e->sim, "sent ", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "sent ", NULL, 0, H_TIMEOUT_MS);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "wake "), 0);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "rx T"), 0);
    /* Every "rx AT..." line since is a command ("rx AT+..."), none bare. */
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "rx AT"),
                     h_sim_saw_since(&e->sim, mark, "rx AT+"));
    assert_true(h_sim_saw_since(&e->sim, mark, "rx AT+CMGS=") == 1);
    assert_no_hang(e);
    H_PASS(e);
}

/* URCs go out while the module sleeps; the bridge wakes it to read. */
static void test_rx_incoming_while_asleep(void **state)
{
    struct h_env *e = *state;
    char t_ring[160];

    h_env_up(e, &rx_opts);
    snprintf(t_ring, sizeof t_ring, "%s/call/ring", e->base);
    wait_asleep(e);
    size_t mark = h_sim_mark(&e->sim);
    h_sim_cmd_ok(&e->sim, "sms " FROM " sent while you slept", NULL, 0);
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "from", FROM);
    h_json_str_eq(m, "text", "sent while you slept");
    cJSON_Delete(m);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "wake 41"), 1);

    wait_asleep(e);
    h_sim_cmd_ok(&e->sim, "ring " FROM, NULL, 0);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, t_ring, H_TIMEOUT_MS);
    h_json_str_eq(r, "from", FROM);
    cJSON_Delete(r);
    assert_no_hang(e);
    H_PASS(e);
}

/* A pty has no DTR: the user is told once, the module is never put to
 * sleep (no AT+CSCLK) and commands go as with "off". */
static void test_dtr_on_pty_stays_awake(void **state)
{
    struct h_env *e = *state;
    static const struct h_env_opts dtr_opts = {.config = "\"modem\":{\"sleep\":\"dtr\"}"};

    h_env_up(e, &dtr_opts);
    assert_int_equal(h_bridge_log_count(&e->bridge, "modem.sleep \"dtr\""), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "has no DTR line"), 1);
    send_sms_ok(e, "d1");
    assert_int_equal(h_sim_saw(&e->sim, "csclk"), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CSCLK"), 0);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_rx_sms_after_idle),
        T(test_rx_no_wake_within_5s),
        T(test_rx_incoming_while_asleep),
        T(test_dtr_on_pty_stays_awake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
