/* Integration: B/modem/power: AT+CFUN=0/1 and
 * AT+CRESET, the B/status states low_power and resetting, commands while
 * the module is not ready, and a reset in the middle of SMS traffic. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#define TO "+4917012345678"

static void power_topics(struct h_env *e, char *send, char *result, size_t size)
{
    snprintf(send, size, "%s/modem/power", e->base);
    snprintf(result, size, "%s/modem/power/result", e->base);
}

#define assert_error(r, code) assert_error_at(__FILE__, __LINE__, (r), (code))
static const char *assert_error_at(const char *file, int line, const cJSON *r, const char *code)
{
    h_json_bool_eq_at(file, line, r, "ok", false);
    const cJSON *err = h_json_get_at(file, line, r, "error", cJSON_Object);
    h_json_str_eq_at(file, line, err, "code", code);
    const char *msg = h_json_str_at(file, line, err, "message");
    if (!*msg)
        h_fail_at(file, line, "error.message is empty");
    return msg;
}

/* Publishes {"mode":mode}, expects {"ok":true,"mode":mode}. */
#define power_ok(e, mode) power_ok_at(__FILE__, __LINE__, (e), (mode))
static void power_ok_at(const char *file, int line, struct h_env *e, const char *mode)
{
    char send[160], result[160];
    power_topics(e, send, result, sizeof send);
    char *payload = h_strdupf("{\"id\":\"p\",\"mode\":\"%s\"}", mode);
    h_mqtt_publish(&e->mqtt, send, payload, 1, false);
    free(payload);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, result, H_TIMEOUT_MS);
    h_json_bool_eq_at(file, line, r, "ok", true);
    h_json_str_eq_at(file, line, r, "id", "p");
    h_json_str_eq_at(file, line, r, "mode", mode);
    cJSON_Delete(r);
}

/* Takes B/status messages until state and registration are both as
 * wanted (registration NULL: any); returns it. */
#define wait_status(e, state, reg, ms) wait_status_at(__FILE__, __LINE__, (e), (state), (reg), (ms))
static cJSON *wait_status_at(const char *file, int line, struct h_env *e, const char *state,
                             const char *reg, int timeout_ms)
{
    for (;;) {
        cJSON *j = h_mqtt_wait_json_where_at(file, line, &e->mqtt, e->t_status, "state", state,
                                             timeout_ms);
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "registration");
        if (!reg || (cJSON_IsString(r) && strcmp(r->valuestring, reg) == 0))
            return j;
        cJSON_Delete(j);
    }
}

static cJSON *sms_send(struct h_env *e, const char *id)
{
    char *payload = h_strdupf("{\"id\":\"%s\",\"to\":\"" TO "\",\"text\":\"hi\"}", id);
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    free(payload);
    return h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
}

static void test_power_min_then_full(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    power_ok(e, "min");
    if (h_sim_saw(&e->sim, "rx AT+CFUN=0") != 1)
        h_fail("AT+CFUN=0 not sent once");
    cJSON *st = wait_status(e, "low_power", "unregistered", H_TIMEOUT_MS);
    const cJSON *sig = h_json_obj(st, "signal");
    if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(sig, "csq")))
        h_fail("signal.csq is not null in low_power");
    cJSON_Delete(st);
    /* The module answers AT but has no radio: an SMS is refused at once. */
    size_t mark = h_sim_mark(&e->sim);
    cJSON *r = sms_send(e, "s1");
    const char *msg = assert_error(r, "unavailable");
    if (!strstr(msg, "low power"))
        h_fail("the message '%s' does not say why (low power)", msg);
    cJSON_Delete(r);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CMGS") != 0)
        h_fail("an SMS was written to a module in low power mode");

    power_ok(e, "full");
    if (h_sim_saw(&e->sim, "rx AT+CFUN=1") != 1)
        h_fail("AT+CFUN=1 not sent once");
    st = wait_status(e, "ready", "home", H_TIMEOUT_MS);
    h_json_str_eq(st, "operator", "Sim Telecom");
    cJSON_Delete(st);
    r = sms_send(e, "s2");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* Reset: the result after the OK to AT+CRESET, B/status resetting, then
 * the module's boot URCs, the bring-up again (ATE0...) and ready. */
static void test_power_reset(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    size_t mark = h_sim_mark(&e->sim);
    power_ok(e, "reset");
    cJSON_Delete(wait_status(e, "resetting", NULL, H_TIMEOUT_MS));
    const char *const reset[] = { "reset", NULL };
    size_t at = h_sim_wait_any(&e->sim, mark, reset, NULL, 0, H_TIMEOUT_MS);
    const char *const ate0[] = { "rx ATE0", NULL };
    h_sim_wait_any(&e->sim, at, ate0, NULL, 0, H_READY_TIMEOUT_MS);
    cJSON_Delete(wait_status(e, "ready", "home", H_READY_TIMEOUT_MS));
    cJSON *r = sms_send(e, "after");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* As a USB module: the port vanishes after AT+CRESET and a new one comes
 * (--reset-unplug). The bridge reopens it and stays "resetting" meanwhile. */
static void test_power_reset_port_vanishes(void **state)
{
    static const char *const args[] = { "--reset-unplug", NULL };
    const struct h_env_opts o = { .sim_args = args };
    struct h_env *e = *state;
    h_env_up(e, &o);
    size_t mark = h_sim_mark(&e->sim);
    power_ok(e, "reset");
    const char *const pty[] = { "pty ", NULL };
    size_t at = h_sim_wait_any(&e->sim, mark, pty, NULL, 0, H_TIMEOUT_MS);
    /* Until the bridge is back, B/status says resetting, never unavailable. */
    for (;;) {
        cJSON *st = h_mqtt_wait_json(&e->mqtt, e->t_status, H_READY_TIMEOUT_MS);
        const char *s = h_json_str(st, "state");
        if (strcmp(s, "ready") == 0) {
            cJSON_Delete(st);
            break;
        }
        if (strcmp(s, "resetting") != 0)
            h_fail("B/status state '%s' during the reset", s);
        cJSON_Delete(st);
    }
    const char *const ate0[] = { "rx ATE0", NULL };
    h_sim_wait_any(&e->sim, at, ate0, NULL, 0, H_TIMEOUT_MS);
    H_PASS(e);
}

/* Reset during SMS traffic: one AT+CMGS in flight (the simulator answers
 * it after 1 s), a second SMS queued behind it. Every command gets its one
 * definite result, nothing hangs, and the bridge comes back ready. */
static void test_power_reset_during_sms(void **state)
{
    static const char *const args[] = { "--cmgs-ms", "1000", NULL };
    const struct h_env_opts o = { .sim_args = args };
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &o);
    power_topics(e, send, result, sizeof send);

    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":\"s1\",\"to\":\"" TO "\",\"text\":\"one\"}", 1,
                   false);
    h_sim_wait_line(&e->sim, "rx AT+CMGS", NULL, 0, H_TIMEOUT_MS);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":\"s2\",\"to\":\"" TO "\",\"text\":\"two\"}", 1,
                   false);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":\"r\",\"mode\":\"reset\"}", 1, false);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":\"s3\",\"to\":\"" TO "\",\"text\":\"three\"}",
                   1, false);

    cJSON *r = h_mqtt_wait_json(&e->mqtt, result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    bool seen[3] = { false, false, false };
    for (int i = 0; i < 3; i++) {
        r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
        const char *id = h_json_str(r, "id");
        int k = id[0] == 's' && id[1] >= '1' && id[1] <= '3' && !id[2] ? id[1] - '1' : -1;
        if (k < 0 || seen[k])
            h_fail("unexpected or repeated result for '%s'", id);
        seen[k] = true;
        /* The one in flight was accepted by the module before the reset. */
        if (k == 0)
            h_json_bool_eq(r, "ok", true);
        else if (!h_json_bool(r, "ok"))
            assert_error(r, "unavailable");
        cJSON_Delete(r);
    }
    cJSON_Delete(wait_status(e, "resetting", NULL, H_TIMEOUT_MS));
    cJSON_Delete(wait_status(e, "ready", "home", H_READY_TIMEOUT_MS));
    r = sms_send(e, "s4");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    if (h_mqtt_pending(&e->mqtt, e->t_result) != 0)
        h_fail("a command got more than one result");
    H_PASS(e);
}

/* The bridge restarts while the module is at AT+CFUN=0: the bring-up
 * finds it (AT+CFUN?) and switches the radio on before the SIM steps. */
static void test_power_restart_in_low_power(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    power_ok(e, "min");
    cJSON_Delete(wait_status(e, "low_power", NULL, H_TIMEOUT_MS));
    h_bridge_stop(&e->bridge);
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e);
    const char *const cfun1[] = { "cfun 1", NULL };
    h_sim_wait_any(&e->sim, mark, cfun1, NULL, 0, H_TIMEOUT_MS);
    /* h_env_start_bridge saw "ready"; the simulator refuses an SMS while
     * not registered (+CMS ERROR: 331), so this one proves the radio is on. */
    cJSON *r = sms_send(e, "s");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

static void test_power_invalid(void **state)
{
    static const char *const bad[] = {
        "{\"mode\":\"off\"}", "{\"mode\":1}", "{}", "{\"mode\":\"min\",\"x\":1}",
    };
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, NULL);
    power_topics(e, send, result, sizeof send);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_mqtt_publish(&e->mqtt, send, bad[i], 1, false);
        cJSON *r = h_mqtt_wait_json(&e->mqtt, result, H_TIMEOUT_MS);
        assert_error(r, "invalid_request");
        cJSON_Delete(r);
    }
    /* full on a ready module: OK, nothing changes. */
    power_ok(e, "full");
    if (h_sim_saw(&e->sim, "rx AT+CFUN=0") || h_sim_saw(&e->sim, "rx AT+CRESET"))
        h_fail("an invalid request reached the modem");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_power_min_then_full),
        T(test_power_reset),
        T(test_power_reset_port_vanishes),
        T(test_power_reset_during_sms),
        T(test_power_restart_in_low_power),
        T(test_power_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
