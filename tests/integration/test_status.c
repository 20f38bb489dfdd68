/* Integration: B/status that lives: registration
 * URCs update it at once, with the operator, access technology and cell
 * read again; an unchanged poll publishes nothing; the supply voltage follows
 * AT+CBC. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Takes B/status messages until registration is reg; returns it. */
#define wait_reg(e, reg, ms) wait_reg_at(__FILE__, __LINE__, (e), (reg), (ms))
static cJSON *wait_reg_at(const char *file, int line, struct h_env *e, const char *reg, int ms)
{
    return h_mqtt_wait_json_where_at(file, line, &e->mqtt, e->t_status, "registration", reg, ms);
}

static void assert_json_null(const cJSON *o, const char *key)
{
    if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, key)))
        h_fail("\"%s\" is not null", key);
}

/* The poll interval is an hour: only the URCs can explain the updates. */
static void test_status_registration_urcs(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}" };
    struct h_env *e = *state;
    h_env_up(e, &o);

    /* Mode 2: the answers name the cell. */
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CREG=2"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CEREG=2"), 1);
    h_sim_cmd_ok(&e->sim, "creg 2", NULL, 0);
    cJSON *st = wait_reg(e, "searching", H_TIMEOUT_MS);
    h_json_str_eq(st, "state", "ready");
    assert_json_null(st, "operator");
    assert_json_null(st, "access");
    assert_json_null(st, "cell");
    cJSON_Delete(st);

    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    st = wait_reg(e, "roaming", H_TIMEOUT_MS);
    h_json_str_eq(st, "operator", "Sim Telecom");
    h_json_str_eq(st, "access", "LTE");
    h_json_str_eq(h_json_obj(st, "cell"), "lac", "1A2B");
    h_json_str_eq(h_json_obj(st, "cell"), "ci", "01C2D3E4");
    cJSON_Delete(st);

    h_sim_cmd_ok(&e->sim, "creg 3", NULL, 0);
    cJSON_Delete(wait_reg(e, "denied", H_TIMEOUT_MS));
    h_sim_cmd_ok(&e->sim, "creg 1", NULL, 0);
    st = wait_reg(e, "home", H_TIMEOUT_MS);
    h_json_str_eq(st, "operator", "Sim Telecom");
    h_json_str_eq(h_json_obj(st, "cell"), "ci", "01C2D3E4");
    cJSON_Delete(st);
    H_PASS(e);
}

/* Polls that find nothing new publish nothing; a changed signal does. The
 * waits follow the simulator's log of the bridge's polls (AT+CSQ starts a
 * round), not the clock. */
static void test_status_unchanged_not_republished(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":5}" };
    struct h_env *e = *state;
    h_env_up(e, &o);

    /* Rounds in the simulator's log, in order (queue semantics: each wait
     * takes the next "rx AT+CSQ"): the round at "ready", then the next one
     * an interval later, by when the first one's status has long arrived:
     * drop what came until then. */
    h_sim_wait_line(&e->sim, "rx AT+CSQ", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "rx AT+CSQ", NULL, 0, 15000);
    struct h_msg *m;
    while ((m = h_mqtt_take(&e->mqtt, e->t_status, 0)))
        h_msg_free(m);
    /* That round found the same values; by the start of the next one its
     * status would have arrived. */
    h_sim_wait_line(&e->sim, "rx AT+CSQ", NULL, 0, 15000);
    if (h_mqtt_pending(&e->mqtt, e->t_status) != 0) {
        char copy[512];
        m = h_mqtt_take(&e->mqtt, e->t_status, 0);
        snprintf(copy, sizeof copy, "%s", m ? m->payload : "?");
        h_msg_free(m);
        h_fail("B/status republished unchanged: %s", copy);
    }

    /* The control: a new signal value is published by the next round. */
    h_sim_cmd_ok(&e->sim, "csq 25", NULL, 0);
    cJSON *st = h_mqtt_wait_json(&e->mqtt, e->t_status, 15000);
    h_json_int_eq(h_json_obj(st, "signal"), "csq", 25);
    cJSON_Delete(st);
    H_PASS(e);
}

/* Takes B/status messages until "voltage_mv" prints as want ("3978",
 * "null"); each message within ms, a status per change: a few at most. */
static cJSON *wait_voltage(struct h_env *e, const char *want, int ms)
{
    char last[600] = "(none)";

    for (int i = 0; i < 8; i++) {
        cJSON *st = h_mqtt_wait_json(&e->mqtt, e->t_status, ms);
        char *got = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(st, "voltage_mv"));
        bool same = got && strcmp(got, want) == 0;
        char *all = cJSON_PrintUnformatted(st);

        snprintf(last, sizeof last, "%s", all ? all : "?");
        free(all);
        free(got);
        if (same)
            return st;
        cJSON_Delete(st);
    }
    h_fail("no B/status with \"voltage_mv\":%s; last: %s", want, last);
}

/* The module's supply voltage, read with AT+CBC in every round: a new
 * value by the next round; a module without AT+CBC (ERROR) gives null and
 * the round goes on (a new signal is still published). */
static void test_status_voltage(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":5}" };
    struct h_env *e = *state;
    h_env_up(e, &o);

    cJSON *st = wait_voltage(e, "3978", H_TIMEOUT_MS);
    h_json_str_eq(st, "state", "ready");
    cJSON_Delete(st);
    assert_true(h_sim_saw(&e->sim, "rx AT+CBC") >= 1);

    h_sim_cmd_ok(&e->sim, "cbc 3605", NULL, 0);
    cJSON_Delete(wait_voltage(e, "3605", 15000));

    h_sim_cmd_ok(&e->sim, "cbc 0", NULL, 0);
    st = wait_voltage(e, "null", 15000);
    h_json_str_eq(st, "state", "ready");
    cJSON_Delete(st);
    h_sim_cmd_ok(&e->sim, "csq 25", NULL, 0);
    st = h_mqtt_wait_json(&e->mqtt, e->t_status, 15000);
    h_json_int_eq(h_json_obj(st, "signal"), "csq", 25);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "voltage_mv")));
    cJSON_Delete(st);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_status_registration_urcs),
        T(test_status_unchanged_not_republished),
        T(test_status_voltage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
