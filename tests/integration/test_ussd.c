/* Integration: B/ussd/send through mosquitto, the bridge and the simulator
 * (CONTRACT.md section 3: ussd/send -> "text", "status"; one session at a
 * time; a bounded wait for the network's answer).
 *
 * modem.command_timeout_ms is 500 here, so the bridge waits 6 x 500 ms =
 * 3 s for the +CUSD answer (30 s with the default 5000 ms). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static const struct h_env_opts fast = {
    .config = "\"modem\":{\"command_timeout_ms\":500}",
};

static void topics(struct h_env *e, char *send, char *result, size_t size)
{
    snprintf(send, size, "%s/ussd/send", e->base);
    snprintf(result, size, "%s/ussd/send/result", e->base);
}

#define wait_result(e, t) wait_result_at(__FILE__, __LINE__, (e), (t))
static cJSON *wait_result_at(const char *file, int line, struct h_env *e, const char *t)
{
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, t, H_TIMEOUT_MS);
    if (e->mqtt.last_retained)
        h_fail_at(file, line, "the result was published retained");
    return r;
}

#define assert_error(r, code) assert_error_at(__FILE__, __LINE__, (r), (code))
static const cJSON *assert_error_at(const char *file, int line, const cJSON *r, const char *code)
{
    h_json_bool_eq_at(file, line, r, "ok", false);
    const cJSON *err = h_json_get_at(file, line, r, "error", cJSON_Object);
    h_json_str_eq_at(file, line, err, "code", code);
    if (!*h_json_str_at(file, line, err, "message"))
        h_fail_at(file, line, "error.message is empty");
    return err;
}

/* Sends code, expects {"ok":true,"text":text,"status":status}. */
#define ussd_ok(e, code, text, status) ussd_ok_at(__FILE__, __LINE__, (e), (code), (text), (status))
static void ussd_ok_at(const char *file, int line, struct h_env *e, const char *code,
                       const char *text, int status)
{
    char send[160], result[160];
    topics(e, send, result, sizeof send);
    char *payload = h_strdupf("{\"id\":\"u1\",\"code\":\"%s\"}", code);
    h_mqtt_publish(&e->mqtt, send, payload, 1, false);
    free(payload);
    cJSON *r = wait_result_at(file, line, e, result);
    h_json_bool_eq_at(file, line, r, "ok", true);
    h_json_str_eq_at(file, line, r, "id", "u1");
    h_json_str_eq_at(file, line, r, "text", text);
    h_json_int_eq_at(file, line, r, "status", status);
    cJSON_Delete(r);
}

static void test_ussd_gsm(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &fast);
    h_sim_cmd_ok(&e->sim, "ussd-reply 0 15 Your balance is 12.34 EUR, valid \"forever\"", NULL, 0);
    ussd_ok(e, "*100#", "Your balance is 12.34 EUR, valid \"forever\"", 0);
    /* Exactly the command of the reference: AT+CUSD=1,"<code>",15. */
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"*100#\",15") != 1)
        h_fail("the bridge did not send AT+CUSD=1,\"*100#\",15 once");
    h_sim_wait_line(&e->sim, "ussd *100#", NULL, 0, H_TIMEOUT_MS);
    H_PASS(e);
}

/* dcs 72: the module gives UCS-2 as hex; the result carries UTF-8. */
static void test_ussd_ucs2(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &fast);
    h_sim_cmd_ok(&e->sim, "ussd-reply 1 72 Баланс: 5 € 😀", NULL, 0);
    ussd_ok(e, "*101#", "Баланс: 5 € 😀", 1);
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"*101#\",15") != 1)
        h_fail("AT+CUSD not sent");
    H_PASS(e);
}

/* A menu: the module writes the line breaks raw inside the quotes; the
 * result has them as "\n". A command in flight meanwhile is not disturbed. */
static void test_ussd_multiline_menu(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &fast);
    h_sim_cmd_ok(&e->sim, "ussd-reply 1 15 Menu\\n1 Balance\\n2 \"Data\"\\n3 Exit", NULL, 0);
    ussd_ok(e, "*100#", "Menu\n1 Balance\n2 \"Data\"\n3 Exit", 1);
    h_sim_cmd_ok(&e->sim, "ussd-reply 0 72 Line 1\\nZeile 2 Ã¼", NULL, 0);
    ussd_ok(e, "1", "Line 1\nZeile 2 Ã¼", 0);
    H_PASS(e);
}

/* Without the simulator's `ussd-reply`: its default answer. And the
 * network's "no string" answers (m 2 terminated, 4 unsupported). */
static void test_ussd_default_and_no_string(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &fast);
    ussd_ok(e, "*100#", "Your balance is 5.00 EUR", 0);
    h_sim_cmd_ok(&e->sim, "ussd-reply 4", NULL, 0);
    ussd_ok(e, "*999#", "", 4);
    h_sim_cmd_ok(&e->sim, "ussd-reply 2", NULL, 0);
    ussd_ok(e, "1", "", 2);
    H_PASS(e);
}

/* No +CUSD: "timeout" after the bounded wait, the session is cancelled
 * (AT+CUSD=2), and the next request works. */
static void test_ussd_timeout(void **state)
{
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    h_sim_cmd_ok(&e->sim, "ussd-silent", NULL, 0);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":7,\"code\":\"*100#\"}", 1, false);
    cJSON *r = wait_result(e, result);
    assert_error(r, "timeout");
    h_json_int_eq(r, "id", 7);
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "ussd-cancel", NULL, 0, H_TIMEOUT_MS);
    ussd_ok(e, "*100#", "Your balance is 5.00 EUR", 0);
    H_PASS(e);
}

/* A second request while one waits: "busy", and it never reaches the line. */
static void test_ussd_busy(void **state)
{
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    h_sim_cmd_ok(&e->sim, "ussd-silent", NULL, 0);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":1,\"code\":\"*100#\"}", 1, false);
    h_sim_wait_line(&e->sim, "ussd *100#", NULL, 0, H_TIMEOUT_MS);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":2,\"code\":\"*101#\"}", 1, false);
    cJSON *r = wait_result(e, result);
    h_json_int_eq(r, "id", 2);
    assert_error(r, "busy");
    cJSON_Delete(r);
    r = wait_result(e, result);
    h_json_int_eq(r, "id", 1);
    assert_error(r, "timeout");
    cJSON_Delete(r);
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"*101#\"") != 0)
        h_fail("the busy request reached the modem");
    H_PASS(e);
}

/* Codes that could end or add a command are refused before the line. */
static void test_ussd_invalid_code(void **state)
{
    static const char *const bad[] = {
        "{\"code\":\"*100#\\\"\"}",            /* a quote */
        "{\"code\":\"*100#\\r\\nAT+CFUN=0\"}", /* CR LF */
        "{\"code\":\"*100#;+CFUN=0\"}",        /* a second command */
        "{\"code\":\"\"}",
        "{\"code\":100}",
        "{}",
        "{\"code\":\"*100#\",\"extra\":1}",
    };
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_mqtt_publish(&e->mqtt, send, bad[i], 1, false);
        cJSON *r = wait_result(e, result);
        assert_error(r, "invalid_request");
        cJSON_Delete(r);
    }
    /* The valid one after them proves the commands above were processed. */
    ussd_ok(e, "*100#", "Your balance is 5.00 EUR", 0);
    if (h_sim_saw(&e->sim, "rx AT+CUSD") != 1)
        h_fail("an invalid code reached the modem");
    if (h_sim_saw(&e->sim, "rx AT+CFUN=0") != 0)
        h_fail("an injected command reached the modem");
    H_PASS(e);
}

/* The network refuses (no service): modem_error with the CME code. */
static void test_ussd_no_network(void **state)
{
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    h_sim_cmd_ok(&e->sim, "creg 0", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "unregistered",
                                        H_TIMEOUT_MS));
    h_mqtt_publish(&e->mqtt, send, "{\"code\":\"*100#\"}", 1, false);
    cJSON *r = wait_result(e, result);
    assert_error(r, "modem_error");
    cJSON_Delete(r);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_ussd_gsm),
        T(test_ussd_ucs2),
        T(test_ussd_multiline_menu),
        T(test_ussd_default_and_no_string),
        T(test_ussd_timeout),
        T(test_ussd_busy),
        T(test_ussd_invalid_code),
        T(test_ussd_no_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
