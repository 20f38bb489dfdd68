/* Integration: modem.sleep. "rx": AT+CSCLK=2 at bring-up; the simulator
 * then sleeps after 5 s without input and loses the byte that wakes it.
 * Before a command after 5 s of silence the bridge sends a lone AT (the
 * simulator sees "T" and answers nothing), then the command: no timeout,
 * no resync. A module that answers the lone AT late (wake-late-ms) gets
 * its dial's own ERROR reported, not the wake's OK. Incoming SMS and calls
 * still arrive while the module sleeps.
 * "dtr" on a pty (no DTR line): said once, the module stays awake.
 * "off" writes AT+CSCLK=0: the module keeps AT+CSCLK across a bridge
 * restart, and must not go on sleeping after an earlier "rx". */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
#define assert_no_hang(e) assert_no_hang_at(__FILE__, __LINE__, (e), 1)
/* The same over a log of several runs of the bridge. */
#define assert_no_hang_runs(e, runs) assert_no_hang_at(__FILE__, __LINE__, (e), (runs))
static void assert_no_hang_at(const char *file, int line, struct h_env *e, int runs)
{
    static const char *const bad[] = {
        ": timeout", "a final result with no command in flight", "OK without the expected",
        "module not answering", "no answer to AT",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (h_bridge_log_count(&e->bridge, bad[i]) != 0)
            h_fail_at(file, line, "the bridge log has \"%s\"", bad[i]);
    /* Once a run, at the port's open; never again. */
    if (h_bridge_log_count(&e->bridge, "AT resynchronising") != runs)
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

/* B/call/dial {"to":TO} (ATD: a plain command, a lone OK or an error):
 * its result. */
static cJSON *dial(struct h_env *e)
{
    char t[160], r[160];

    snprintf(t, sizeof t, "%s/call/dial", e->base);
    snprintf(r, sizeof r, "%s/call/dial/result", e->base);
    h_mqtt_publish(&e->mqtt, t, "{\"to\":\"" TO "\"}", 1, false);
    return h_mqtt_wait_json(&e->mqtt, r, H_TIMEOUT_MS);
}

/* A module that got the whole lone AT and answers it only after the
 * command went (the simulator's wake-late-ms): that late OK is not the
 * dial's, whose own ERROR follows; and a dial that goes through is still
 * ok. */
static void test_rx_late_wake_answer_is_not_the_commands(void **state)
{
    struct h_env *e = *state;
    char l[256];

    h_env_up(e, &rx_opts);
    h_sim_cmd_ok(&e->sim, "wake-late-ms 300", NULL, 0);
    h_sim_cmd_ok(&e->sim, "dial-outcome error", NULL, 0);
    wait_asleep(e);
    size_t mark = h_sim_mark(&e->sim);
    cJSON *r = dial(e);
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_get_at(__FILE__, __LINE__, r, "error", cJSON_Object), "code",
                  "modem_error");
    cJSON_Delete(r);
    size_t kept = h_sim_wait_line(&e->sim, "wake-kept ", l, sizeof l, H_TIMEOUT_MS);
    assert_string_equal(l, "wake-kept 41");
    size_t late = h_sim_wait_line(&e->sim, "wake-answered", NULL, 0, H_TIMEOUT_MS);
    size_t atd = h_sim_wait_line(&e->sim, "rx ATD", NULL, 0, H_TIMEOUT_MS);
    if (!(mark <= kept && kept < late && late < atd))
        h_fail("expected the kept wake byte, the late OK, then ATD: lines %zu, %zu, %zu", kept,
               late, atd);

    wait_asleep(e);
    r = dial(e);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "wake-answered"), 2);
    assert_no_hang(e);
    H_PASS(e);
}

/* A pty has no DTR: the user is told once, the module is kept awake
 * (AT+CSCLK=0, as with "off") and commands go at once. */
static void test_dtr_on_pty_stays_awake(void **state)
{
    struct h_env *e = *state;
    static const struct h_env_opts dtr_opts = {.config = "\"modem\":{\"sleep\":\"dtr\"}"};

    h_env_up(e, &dtr_opts);
    assert_int_equal(h_bridge_log_count(&e->bridge, "modem.sleep \"dtr\""), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "has no DTR line"), 1);
    send_sms_ok(e, "d1");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CSCLK"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "csclk 0"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "csclk"), 1);
    H_PASS(e);
}

/* A module without AT+CSCLK (ERROR): said in the log, the bring-up goes
 * on and commands work. */
static void test_off_without_csclk(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = {"--reject", "AT+CSCLK", NULL};
    static const struct h_env_opts o = {.sim_args = args};

    h_env_up(e, &o);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CSCLK=0"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "bring-up: sleep mode: ERROR"), 1);
    send_sms_ok(e, "n1");
    assert_no_hang(e);
    H_PASS(e);
}

/* Waits ms with the bridge left alone: the silence itself is what a test
 * of a sleeping module needs (nothing happens that could be waited for). */
static void idle_for(int ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&t, &t) != 0)
        ;
}

/* A run with "rx" leaves the module at AT+CSCLK=2 (it keeps it until it
 * restarts); the next run, with "off", writes AT+CSCLK=0: a command after
 * more than 5 s of silence goes through at once, no wake, no timeout. */
static void test_off_after_rx_keeps_awake(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &rx_opts);
    wait_asleep(e);
    h_bridge_stop(&e->bridge);
    char *json = h_strdupf("{\"state_dir\":\"%s\",\"modem\":{\"sleep\":\"off\"}}\n",
                           e->bridge.state_dir);
    FILE *f = fopen(e->bridge.config_path, "w");
    if (!f || fputs(json, f) < 0 || fclose(f) != 0)
        h_fail("rewriting %s", e->bridge.config_path);
    free(json);
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e);
    const char *const csclk0[] = {"csclk 0", NULL};
    h_sim_wait_any(&e->sim, mark, csclk0, NULL, 0, H_TIMEOUT_MS);
    /* The module's 5 s, and a margin: it would be asleep now. */
    idle_for(5500);
    size_t before = h_sim_mark(&e->sim);
    send_sms_ok(e, "o1");
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "sleep"), 0);
    assert_int_equal(h_sim_saw_since(&e->sim, before, "wake "), 0);
    assert_int_equal(h_sim_saw_since(&e->sim, before, "rx T"), 0);
    assert_no_hang_runs(e, 2);
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
        T(test_rx_late_wake_answer_is_not_the_commands),
        T(test_dtr_on_pty_stays_awake),
        T(test_off_after_rx_keeps_awake),
        T(test_off_without_csclk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
