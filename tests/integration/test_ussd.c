/* Integration: B/ussd/send through mosquitto, the bridge and the simulator
 * (ussd/send -> "text", "status"; one session at a
 * time; a bounded wait for the network's answer).
 *
 * modem.command_timeout_ms is 500 here, so the bridge waits 6 x 500 ms =
 * 3 s for the +CUSD answer (30 s with the default 5000 ms). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "modem/pdu.h"

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
    /* In UCS2, the code as UCS-2 hex: AT+CUSD=1,"<hex>",15; IRA after. */
    if (h_sim_saw(&e->sim, "rx AT+CSCS=\"UCS2\"") != 1)
        h_fail("the bridge did not send AT+CSCS=\"UCS2\" once");
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"002A0031003000300023\",15") != 1)
        h_fail("the bridge did not send AT+CUSD=1,\"<*100# in UCS-2 hex>\",15 once");
    h_sim_wait_line(&e->sim, "ussd *100#", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "rx AT+CSCS=\"IRA\"", NULL, 0, H_TIMEOUT_MS);
    H_PASS(e);
}

/* dcs 72: the module gives UCS-2 as hex; the result carries UTF-8. */
static void test_ussd_ucs2(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &fast);
    h_sim_cmd_ok(&e->sim, "ussd-reply 1 72 Баланс: 5 € 😀", NULL, 0);
    ussd_ok(e, "*101#", "Баланс: 5 € 😀", 1);
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"002A0031003000310023\",15") != 1)
        h_fail("AT+CUSD not sent");
    H_PASS(e);
}

/* A menu: line breaks in the text travel as UCS-2 hex (000A); the result
 * has them as "\n". */
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
    if (h_sim_saw(&e->sim, "rx AT+CUSD=1,\"002A0031003000310023\"") != 0 ||
        h_sim_saw(&e->sim, "ussd *101#") != 0)
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


/* ---- never fooled by what the network sends ---- */

#define SMS_TO "+4917012345678"

static void sms_topics(struct h_env *e, char *send, char *result, size_t size)
{
    snprintf(send, size, "%s/sms/send", e->base);
    snprintf(result, size, "%s/sms/send/result", e->base);
}

/* An SMS sent now gets its proper result quickly: the module's "+CMGS:"
 * and "OK" were taken as the command's, not swallowed by a USSD text. */
#define sms_ok_soon(e, id) sms_ok_soon_at(__FILE__, __LINE__, (e), (id))
static void sms_ok_soon_at(const char *file, int line, struct h_env *e, int id)
{
    char send[160], result[160];
    sms_topics(e, send, result, sizeof send);
    char *payload = h_strdupf("{\"id\":%d,\"to\":\"" SMS_TO "\",\"text\":\"after\"}", id);
    h_mqtt_publish(&e->mqtt, send, payload, 1, false);
    free(payload);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, result, 5000);
    h_json_int_eq_at(file, line, r, "id", id);
    h_json_bool_eq_at(file, line, r, "ok", true);
    h_json_int_eq_at(file, line, r, "parts", 1);
    cJSON_Delete(r);
}

/* A reply whose text holds what looks like modem output: an SMS (+CMT and
 * its PDU), a RING and a +CLIP. It travels as UCS-2 hex, so it is one
 * result with the whole text, no B/sms/received, no B/call/ring, and the
 * SMS sent right after gets its result. (The old bridge read the reply
 * raw in IRA: "x" as the text, then a fake SMS and a fake call.) */
static void test_ussd_text_that_looks_like_modem_lines(void **state)
{
    struct h_env *e = *state;
    struct pdu_part part;
    size_t n_parts;
    const struct pdu_encode_opts o = {
        .type = PDU_DELIVER, .addr = "+4915112345678", .smsc = "+491770610000",
        .timestamp = time(NULL), .tz_minutes = 60,
    };
    char t_received[160], t_ring[160];

    h_env_up(e, &fast);
    snprintf(t_received, sizeof t_received, "%s/sms/received", e->base);
    snprintf(t_ring, sizeof t_ring, "%s/call/ring", e->base);
    assert_int_equal(pdu_encode(&o, "fake", 4, &part, 1, &n_parts, NULL), 0);
    char *text = h_strdupf("x\",15\n+CMT: ,%zu\n%s\nRING\n+CLIP: \"+4930123456\",145,,,,0",
                           part.tpdu_len, part.hex);
    char *ctl = h_strdupf("ussd-reply 0 15 x\",15\\n+CMT: ,%zu\\n%s\\nRING\\n"
                          "+CLIP: \"+4930123456\",145,,,,0", part.tpdu_len, part.hex);
    h_sim_cmd_ok(&e->sim, ctl, NULL, 0);
    ussd_ok(e, "*100#", text, 0);
    sms_ok_soon(e, 77);
    /* The SMS result came after anything the reply could have caused. */
    if (h_mqtt_pending(&e->mqtt, t_received) != 0)
        h_fail("a USSD text was published as a received SMS");
    if (h_mqtt_pending(&e->mqtt, t_ring) != 0)
        h_fail("a USSD text was published as a ringing call");
    free(text);
    free(ctl);
    H_PASS(e);
}

/* An unterminated +CUSD (a broken reply) is the request's error and
 * nothing more: the next command's "+CMGS: <mr>" and "OK" are its own.
 * (The old bridge collected up to 32 lines for the string: the SMS was
 * sent, its result said timeout.) */
static void test_ussd_unterminated_reply(void **state)
{
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    h_sim_cmd_ok(&e->sim, "ussd-silent", NULL, 0);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":5,\"code\":\"*100#\"}", 1, false);
    h_sim_wait_line(&e->sim, "ussd *100#", NULL, 0, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "urc +CUSD: 0,\"00410042", NULL, 0);
    sms_ok_soon(e, 78);
    cJSON *r = wait_result(e, result);
    h_json_int_eq(r, "id", 5);
    assert_error(r, "modem_error");
    cJSON_Delete(r);
    H_PASS(e);
}

/* A module that refuses AT+CSCS="UCS2": "unsupported", and the code never
 * goes out for a raw-text answer. */
static void test_ussd_no_ucs2(void **state)
{
    static const char *const args[] = { "--reject", "AT+CSCS=\"UCS2\"", NULL };
    const struct h_env_opts o = { .config = fast.config, .sim_args = args };
    struct h_env *e = *state;
    char send[160], result[160];
    h_env_up(e, &o);
    topics(e, send, result, sizeof send);
    h_mqtt_publish(&e->mqtt, send, "{\"id\":9,\"code\":\"*100#\"}", 1, false);
    cJSON *r = wait_result(e, result);
    h_json_int_eq(r, "id", 9);
    assert_error(r, "unsupported");
    cJSON_Delete(r);
    if (h_sim_saw(&e->sim, "rx AT+CUSD") != 0)
        h_fail("AT+CUSD was sent although the module refused UCS2");
    H_PASS(e);
}

/* While a request waits, the module is in UCS2 and prints the operator and
 * a caller's number as hex: B/status and B/call/ring still read right. */
static void test_ussd_other_strings_while_ucs2(void **state)
{
    struct h_env *e = *state;
    char send[160], result[160], t_ring[160];
    h_env_up(e, &fast);
    topics(e, send, result, sizeof send);
    snprintf(t_ring, sizeof t_ring, "%s/call/ring", e->base);
    h_sim_cmd_ok(&e->sim, "ussd-silent", NULL, 0);
    size_t mark = h_sim_mark(&e->sim); /* the bring-up sets IRA too */
    h_mqtt_publish(&e->mqtt, send, "{\"id\":3,\"code\":\"*100#\"}", 1, false);
    h_sim_wait_line(&e->sim, "ussd *100#", NULL, 0, H_TIMEOUT_MS);
    /* A registration URC starts a status round (AT+COPS? among it). */
    h_sim_cmd_ok(&e->sim, "creg 5", NULL, 0);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "registration", "roaming",
                                       H_TIMEOUT_MS);
    h_json_str_eq(st, "operator", "Sim Telecom");
    cJSON_Delete(st);
    h_sim_cmd_ok(&e->sim, "ring +4930123456", NULL, 0);
    cJSON *ring = h_mqtt_wait_json(&e->mqtt, t_ring, H_TIMEOUT_MS);
    h_json_str_eq(ring, "from", "+4930123456");
    cJSON_Delete(ring);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CSCS=\"IRA\"") != 0)
        h_fail("the character set went back to IRA while the request waited");
    cJSON *r = wait_result(e, result);
    assert_error(r, "timeout");
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "rx AT+CSCS=\"IRA\"", NULL, 0, H_TIMEOUT_MS);
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
        T(test_ussd_text_that_looks_like_modem_lines),
        T(test_ussd_unterminated_reply),
        T(test_ussd_no_ucs2),
        T(test_ussd_other_strings_while_ucs2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
