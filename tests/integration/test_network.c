/* Integration: B/network/scan (AT+COPS=?, which holds the line while the
 * module searches), B/network/select (AT+COPS=0 / AT+COPS=1,2,"<id>") and
 * modem.roaming false (outgoing SMS, calls and USSD refused while
 * roaming, without a byte on the line; B/error once per episode). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct h_env_opts no_roaming = {
    .config = "\"modem\":{\"roaming\":false}",
};

/* Publishes payload on B/<suffix> and returns its result. */
#define command(e, suffix, payload) command_at(__FILE__, __LINE__, (e), (suffix), (payload))
static cJSON *command_at(const char *file, int line, struct h_env *e, const char *suffix,
                         const char *payload)
{
    char t[160], r[168];

    snprintf(t, sizeof(t), "%s/%s", e->base, suffix);
    snprintf(r, sizeof(r), "%s/result", t);
    h_mqtt_publish(&e->mqtt, t, payload, 1, false);
    return h_mqtt_wait_json_at(file, line, &e->mqtt, r, H_TIMEOUT_MS);
}

#define assert_error(r, code) assert_error_at(__FILE__, __LINE__, (r), (code))
static const cJSON *assert_error_at(const char *file, int line, const cJSON *r, const char *code)
{
    h_json_bool_eq_at(file, line, r, "ok", false);
    const cJSON *err = h_json_get_at(file, line, r, "error", cJSON_Object);
    h_json_str_eq_at(file, line, err, "code", code);
    return err;
}

static void assert_operator(const cJSON *op, const char *name, const char *short_name,
                            const char *mccmnc, const char *status, const char *access)
{
    h_json_str_eq(op, "name", name);
    h_json_str_eq(op, "short", short_name);
    h_json_str_eq(op, "mccmnc", mccmnc);
    h_json_str_eq(op, "status", status);
    h_json_str_eq(op, "access", access);
}

/* The simulator's three operators, decoded; the line carried AT+COPS=?. */
static void test_scan(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    h_sim_cmd_ok(&e->sim, "scan-ms 200", NULL, 0);

    cJSON *r = command(e, "network/scan", "{\"id\":\"s1\"}");
    h_json_bool_eq(r, "ok", true);
    h_json_str_eq(r, "id", "s1");
    const cJSON *ops = h_json_arr(r, "operators");
    if (cJSON_GetArraySize(ops) != 3)
        h_fail("3 operators expected, got %d", cJSON_GetArraySize(ops));
    assert_operator(cJSON_GetArrayItem(ops, 0), "Sim Telecom", "SimTel", "26201", "current", "LTE");
    assert_operator(cJSON_GetArrayItem(ops, 1), "Vodafone.de", "Vodafone", "26202", "available",
                    "LTE");
    assert_operator(cJSON_GetArrayItem(ops, 2), "Telefonica (O2), DE", "o2 - de", "26203",
                    "forbidden", "WCDMA");
    cJSON_Delete(r);
    if (h_sim_saw(&e->sim, "rx AT+COPS=?") != 1)
        h_fail("AT+COPS=? was not sent once");
    H_PASS(e);
}

/* A command sent while the module searches waits behind the search and
 * then runs; its result comes after the scan's. A second scan meanwhile
 * is busy. The search outlasts modem.command_timeout_ms (5 s): the scan
 * has its own bound, and the commands waiting are not timed out. */
static void test_command_waits_for_scan(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    h_sim_cmd_ok(&e->sim, "scan-ms 6500", NULL, 0);

    char scan[160], scan_result[168];
    snprintf(scan, sizeof(scan), "%s/network/scan", e->base);
    snprintf(scan_result, sizeof(scan_result), "%s/result", scan);
    h_mqtt_publish(&e->mqtt, scan, "{\"id\":1}", 1, false);
    h_sim_wait_line(&e->sim, "rx AT+COPS=?", NULL, 0, H_TIMEOUT_MS);

    cJSON *busy = command(e, "network/scan", "{\"id\":2}");
    assert_error(busy, "busy");
    h_json_int_eq(busy, "id", 2);
    cJSON_Delete(busy);

    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":\"m1\",\"to\":\"+4917012345678\",\"text\":\"hi\"}",
                   1, false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, scan_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "id", 1);
    cJSON_Delete(r);
    r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    h_json_str_eq(r, "id", "m1");
    cJSON_Delete(r);
    /* The SMS waited for the scan's answer: the bridge wrote its AT+CMGS
     * only after it read the +COPS list (its log, in its own order; the
     * results' order on MQTT, a few ms apart, would prove nothing more). */
    int cops = h_bridge_log_line(&e->bridge, "AT< +COPS: (");
    int cmgs = h_bridge_log_line(&e->bridge, "AT> AT+CMGS");
    if (!cops || !cmgs || cmgs < cops)
        h_fail("AT+CMGS written at log line %d, the scan's answer read at line %d", cmgs, cops);
    H_PASS(e);
}

#define wait_operator(e, name) \
    h_mqtt_wait_json_where(&(e)->mqtt, (e)->t_status, "operator", (name), H_TIMEOUT_MS)

/* Manual, then automatic: B/status follows at once (the poll interval
 * is a minute). The module's refusals are modem errors with its text (the
 * bridge runs it with AT+CMEE=2: verbose, no number). */
static void test_select(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);

    cJSON *r = command(e, "network/select", "{\"id\":1,\"mccmnc\":\"26202\"}");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    if (h_sim_saw(&e->sim, "rx AT+COPS=1,2,\"26202\"") != 1)
        h_fail("AT+COPS=1,2,\"26202\" was not sent once");
    cJSON_Delete(wait_operator(e, "Vodafone.de"));

    r = command(e, "network/select", "{\"id\":2,\"mode\":\"auto\"}");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    if (h_sim_saw(&e->sim, "rx AT+COPS=0") != 1)
        h_fail("AT+COPS=0 was not sent once");
    cJSON_Delete(wait_operator(e, "Sim Telecom"));

    /* The module's verbose text (AT+CMEE=2) and the number it stands for. */
    r = command(e, "network/select", "{\"mccmnc\":\"26203\"}");
    const cJSON *err = assert_error(r, "modem_error");
    h_json_str_eq(err, "message", "network not allowed - emergency calls only");
    h_json_int_eq(err, "cme", 32);
    cJSON_Delete(r);
    r = command(e, "network/select", "{\"mccmnc\":\"99999\"}");
    err = assert_error(r, "modem_error");
    h_json_str_eq(err, "message", "no network service");
    h_json_int_eq(err, "cme", 30);
    cJSON_Delete(r);
    H_PASS(e);
}

/* A bad mccmnc is refused naming the field, and nothing reaches the line. */
static void test_select_invalid(void **state)
{
    static const char *const bad[] = {
        "{\"mccmnc\":\"2620\"}",
        "{\"mccmnc\":\"26201\\\",0\"}",
        "{\"mccmnc\":\"26201\\r\\nAT+CFUN=0\"}",
        "{\"mccmnc\":26201}",
        "{\"mode\":\"manual\"}",
    };
    struct h_env *e = *state;
    h_env_up(e, NULL);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *r = command(e, "network/select", bad[i]);
        const cJSON *err = assert_error(r, "invalid_request");
        const char *msg = h_json_str(err, "message");
        if (!strstr(msg, "'mccmnc'") && !strstr(msg, "'mode'"))
            h_fail("%s: the message names no field: %s", bad[i], msg);
        cJSON_Delete(r);
    }
    if (h_sim_saw(&e->sim, "rx AT+COPS=") != 0 || h_sim_saw(&e->sim, "rx AT+CFUN=0") != 0)
        h_fail("a rejected request reached the line");
    H_PASS(e);
}

/* roaming false: SMS, calls and USSD refused while roaming, with nothing
 * written; one B/error per episode; allowed again at home. */
static void test_roaming_refused(void **state)
{
    struct h_env *e = *state;
    char t_error[160];
    h_env_up(e, &no_roaming);
    snprintf(t_error, sizeof(t_error), "%s/error", e->base);

    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "roaming",
                                        H_TIMEOUT_MS));
    cJSON *err = h_mqtt_wait_json_where(&e->mqtt, t_error, "code", "roaming", H_TIMEOUT_MS);
    if (!strstr(h_json_str(err, "message"), "modem.roaming"))
        h_fail("the B/error does not name modem.roaming");
    cJSON_Delete(err);

    size_t mark = h_sim_mark(&e->sim);
    cJSON *r = command(e, "sms/send", "{\"id\":7,\"to\":\"+4917012345678\",\"text\":\"hi\"}");
    const cJSON *e1 = assert_error(r, "not_allowed");
    h_json_int_eq(r, "id", 7);
    if (!strstr(h_json_str(e1, "message"), "modem.roaming"))
        h_fail("the refusal does not name modem.roaming");
    cJSON_Delete(r);
    r = command(e, "call/dial", "{\"to\":\"+4917012345678\"}");
    assert_error(r, "not_allowed");
    cJSON_Delete(r);
    r = command(e, "ussd/send", "{\"code\":\"*100#\"}");
    assert_error(r, "not_allowed");
    cJSON_Delete(r);
    /* Bad input is still told as such. */
    r = command(e, "sms/send", "{\"to\":\"+49abc\",\"text\":\"hi\"}");
    assert_error(r, "invalid_number");
    cJSON_Delete(r);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CMGS") != 0 ||
        h_sim_saw_since(&e->sim, mark, "rx ATD") != 0 ||
        h_sim_saw_since(&e->sim, mark, "rx AT+CUSD") != 0 ||
        h_sim_saw_since(&e->sim, mark, "rx AT+CSCS") != 0)
        h_fail("a refused command reached the line");

    /* Still roaming, a new round: no second B/error. */
    h_sim_cmd_ok(&e->sim, "csq 11", NULL, 0);
    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "roaming",
                                       H_TIMEOUT_MS);
    cJSON_Delete(st);
    h_sim_cmd_ok(&e->sim, "creg 1", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "home",
                                        H_TIMEOUT_MS));
    if (h_mqtt_pending(&e->mqtt, t_error) != 0)
        h_fail("a second B/error within one roaming episode");

    r = command(e, "sms/send", "{\"id\":8,\"to\":\"+4917012345678\",\"text\":\"hi\"}");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CMGS") != 1)
        h_fail("the SMS at home did not go out");

    /* A new episode, a new B/error. */
    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, t_error, "code", "roaming", H_TIMEOUT_MS));
    H_PASS(e);
}

/* The default (roaming true): nothing changes while roaming. */
static void test_roaming_allowed_by_default(void **state)
{
    struct h_env *e = *state;
    char t_error[160];
    h_env_up(e, NULL);
    snprintf(t_error, sizeof(t_error), "%s/error", e->base);

    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "roaming",
                                        H_TIMEOUT_MS));
    cJSON *r = command(e, "sms/send", "{\"to\":\"+4917012345678\",\"text\":\"hi\"}");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    if (h_mqtt_pending(&e->mqtt, t_error) != 0)
        h_fail("a B/error while roaming is allowed");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_scan),
        T(test_command_waits_for_scan),
        T(test_select),
        T(test_select_invalid),
        T(test_roaming_refused),
        T(test_roaming_allowed_by_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
