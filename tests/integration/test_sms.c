/* Integration: SMS send and receive through mosquitto, the bridge and the
 * simulator (B/sms/send, B/sms/send/result,
 * B/sms/received; section 4: nothing deleted before the PUBACK). */
#include "harness.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>

#include "modem/pdu.h"

#define TO "+4917012345678"

/* ---- helpers ---- */

struct sent {
    int mr;
    struct pdu_msg msg;
    char hex[900];              /* the PDU as it went over the line */
};

/* Takes the next `sent <mr> <pdu>` line and decodes its PDU. */
#define wait_sent(e, out) wait_sent_at(__FILE__, __LINE__, (e), (out))
static void wait_sent_at(const char *file, int line, struct h_env *e, struct sent *out)
{
    char l[1024];
    h_sim_wait_line_at(file, line, &e->sim, "sent ", l, sizeof l, H_TIMEOUT_MS);
    if (sscanf(l, "sent %d %899s", &out->mr, out->hex) != 2)
        h_fail_at(file, line, "unexpected simulator line '%s'", l);
    int rc = pdu_decode(out->hex, strlen(out->hex), 0, &out->msg);
    if (rc != 0)
        h_fail_at(file, line, "pdu_decode(%s) = %d", out->hex, rc);
    if (out->msg.type != PDU_SUBMIT)
        h_fail_at(file, line, "the PDU the bridge sent is type %d, not SMS-SUBMIT: %s",
                  (int)out->msg.type, out->hex);
}

/* Takes the next result on B/sms/send/result: QoS 1, not retained. */
#define wait_result(e) wait_result_at(__FILE__, __LINE__, (e))
static cJSON *wait_result_at(const char *file, int line, struct h_env *e)
{
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, e->t_result, H_TIMEOUT_MS);
    if (e->mqtt.last_retained)
        h_fail_at(file, line, "the result was published retained");
    if (e->mqtt.last_qos != 1)
        h_fail_at(file, line, "the result came with QoS %d, expected 1", e->mqtt.last_qos);
    return r;
}

/* "id" equals the JSON value want_json, type included (1 is not "1"). */
#define assert_id(r, want_json) assert_id_at(__FILE__, __LINE__, (r), (want_json))
static void assert_id_at(const char *file, int line, const cJSON *r, const char *want_json)
{
    cJSON *want = cJSON_Parse(want_json);
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(r, "id");
    bool eq = want && got && cJSON_Compare(got, want, true);
    char *g = got ? cJSON_PrintUnformatted(got) : NULL;
    char gs[128];
    snprintf(gs, sizeof gs, "%s", g ? g : "(missing)");
    free(g);
    cJSON_Delete(want);
    if (!eq)
        h_fail_at(file, line, "result \"id\" is %s, expected %s", gs, want_json);
}

/* {"ok":false,"error":{"code":code,"message":"..."}}; returns the error. */
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

/* A long GSM text: letters, digits, spaces. */
static char *long_text(size_t n)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789.";
    char *t = malloc(n + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = alpha[(i * 7 + i / 13) % (sizeof alpha - 1)];
    t[n] = 0;
    return t;
}

static void send(struct h_env *e, const char *payload)
{
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
}

/* ISO 8601 with an offset: 2026-11-21T06:00:00+01:00. */
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

/* Encodes a DELIVER (the network's incoming SMS) with the codec. */
static size_t make_deliver(const char *from, const char *text, uint8_t ref, struct pdu_part *parts,
                           size_t max)
{
    struct pdu_encode_opts o = { .type = PDU_DELIVER, .addr = from, .smsc = "+491720000000",
                                 .concat_ref = ref, .timestamp = 1795237200, /* 2026-11-21 */
                                 .tz_minutes = 60 };
    size_t n = 0;
    int rc = pdu_encode(&o, text, strlen(text), parts, max, &n, NULL);
    if (rc != 0)
        h_fail("pdu_encode(DELIVER) = %d", rc);
    return n;
}

/* The ISO time the codec reads from our DELIVER: what the bridge must say. */
static void deliver_time(const struct pdu_part *p, char *out, size_t size)
{
    struct pdu_msg m;
    assert_int_equal(pdu_decode(p->hex, strlen(p->hex), 0, &m), 0);
    snprintf(out, size, "%s", m.time);
}

static const struct h_env_opts default_opts = { 0 };

/* ---- 1. send, GSM 7-bit, one part ---- */

static void test_send_gsm7(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    send(e, "{\"id\":1,\"to\":\"" TO "\",\"text\":\"hello\"}");

    struct sent s;
    wait_sent(e, &s);
    assert_string_equal(s.msg.addr, TO);
    assert_int_equal(s.msg.alphabet, PDU_GSM7);
    assert_string_equal((char *)s.msg.text, "hello");
    assert_false(s.msg.concat);
    assert_false(s.msg.flash);

    cJSON *r = wait_result(e);
    assert_id(r, "1");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 1);
    cJSON *refs = h_json_arr(r, "references");
    assert_int_equal(cJSON_GetArraySize(refs), 1);
    assert_true(cJSON_IsNumber(cJSON_GetArrayItem(refs, 0)));
    assert_int_equal(cJSON_GetArrayItem(refs, 0)->valueint, s.mr);
    cJSON_Delete(r);

    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 1);
    H_PASS(e);
}

/* ---- 2. send, UCS-2 (an emoji outside GSM), one part ---- */

static void test_send_ucs2(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    const char *text = "Gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x91\x8B from Z\xC3\xBCrich";
    char *payload = h_strdupf("{\"id\":2,\"to\":\"" TO "\",\"text\":\"%s\"}", text);
    send(e, payload);
    free(payload);

    struct sent s;
    wait_sent(e, &s);
    assert_string_equal(s.msg.addr, TO);
    assert_int_equal(s.msg.alphabet, PDU_UCS2);
    assert_string_equal((char *)s.msg.text, text);
    assert_false(s.msg.concat);

    cJSON *r = wait_result(e);
    assert_id(r, "2");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 1);
    cJSON *refs = h_json_arr(r, "references");
    assert_int_equal(cJSON_GetArraySize(refs), 1);
    assert_int_equal(cJSON_GetArrayItem(refs, 0)->valueint, s.mr);
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- 2b. send, GSM 7-bit, 400 characters: 3 concatenated parts ---- */

static void test_send_multipart(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    char *text = long_text(400);
    char *payload = h_strdupf("{\"id\":3,\"to\":\"" TO "\",\"text\":\"%s\"}", text);
    send(e, payload);
    free(payload);

    struct sent s[3];
    for (int i = 0; i < 3; i++) {
        wait_sent(e, &s[i]);
        assert_string_equal(s[i].msg.addr, TO);
        assert_int_equal(s[i].msg.alphabet, PDU_GSM7);
        assert_true(s[i].msg.concat);
        assert_int_equal(s[i].msg.concat_total, 3);
        assert_int_equal(s[i].msg.concat_ref, s[0].msg.concat_ref);
    }
    /* seq 1..3, each once; the text reassembled in seq order. */
    char joined[3 * (PDU_TEXT_MAX + 1)] = "";
    for (int seq = 1; seq <= 3; seq++) {
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (s[i].msg.concat_seq == seq) {
                if (found >= 0)
                    h_fail("two parts with seq %d", seq);
                found = i;
            }
        if (found < 0)
            h_fail("no part with seq %d", seq);
        strcat(joined, (char *)s[found].msg.text);
    }
    assert_string_equal(joined, text);

    cJSON *r = wait_result(e);
    assert_id(r, "3");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 3);
    cJSON *refs = h_json_arr(r, "references");
    assert_int_equal(cJSON_GetArraySize(refs), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cJSON_GetArrayItem(refs, i)->valueint, s[i].mr);
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 3);
    free(text);
    H_PASS(e);
}

/* ---- 3. a string id comes back as a string ---- */

static void test_send_id_string(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    send(e, "{\"id\":\"42\",\"to\":\"" TO "\",\"text\":\"string id\"}");
    struct sent s;
    wait_sent(e, &s);
    cJSON *r = wait_result(e);
    assert_id(r, "\"42\"");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- 3a. control characters in the text never reach the line raw ---- */

static void test_send_control_chars(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    /* Ctrl-Z would send, ESC would abort, CR would end the command line. */
    send(e, "{\"id\":5,\"to\":\"" TO "\",\"text\":\"a\\u001ab\\u001bc\\r\\nAT+CFUN=0\\r\"}");
    struct sent s;
    wait_sent(e, &s);
    assert_string_equal((char *)s.msg.text, "a\x1a" "b\x1b" "c\r\nAT+CFUN=0\r");
    cJSON *r = wait_result(e);
    assert_id(r, "5");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    /* (The bring-up asks AT+CFUN? itself: only the injected one counts.) */
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CFUN=0"), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 1);
    H_PASS(e);
}

/* ---- 3b. MQTT 5: the result also goes to the Response Topic ---- */

static void test_send_mqtt5_response_topic(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    struct h_mqtt v5;
    h_mqtt_connect5(&v5, e->broker.uri, "v5-requester", true);
    h_mqtt_subscribe(&v5, "replies/v5-requester");
    h_mqtt_request5(&v5, e->t_send, "{\"id\":\"rt\",\"to\":\"" TO "\",\"text\":\"v5\"}",
                    "replies/v5-requester", "corr-123");
    cJSON *r = h_mqtt_wait_json(&v5, "replies/v5-requester", H_TIMEOUT_MS);
    char corr[256];
    snprintf(corr, sizeof corr, "%s", v5.last_correlation);
    h_mqtt_disconnect(&v5);
    assert_id(r, "\"rt\"");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 1);
    cJSON_Delete(r);
    assert_string_equal(corr, "corr-123");
    /* "also": the usual result topic gets it too. */
    r = wait_result(e);
    assert_id(r, "\"rt\"");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 1);
    H_PASS(e);
}

/* ---- 4. rejected requests: one result each, nothing sent ---- */

/* Only +4930... allowed, at most 2 parts. */
static const struct h_env_opts strict_opts = {
    .config = "\"sms\":{\"allow_to\":[\"+4930*\"],\"max_parts\":2}",
};
#define ALLOWED "+493012345678"

/* Publishes a request that must be rejected with code; then a valid one,
 * whose result must be the next on the topic (so the rejected request got
 * exactly one result). cmgs: AT+CMGS commands the rejected request may
 * cause (0, or 1 for a modem error). Returns the rejected result. */
#define expect_rejected(e, payload, id_json, code, cmgs) \
    expect_rejected_at(__FILE__, __LINE__, (e), (payload), (id_json), (code), (cmgs))
static cJSON *expect_rejected_at(const char *file, int line, struct h_env *e, const char *payload,
                                 const char *id_json, const char *code, size_t cmgs)
{
    static int follow;
    size_t mark = h_sim_mark(&e->sim);
    h_mqtt_publish_at(file, line, &e->mqtt, e->t_send, payload, strlen(payload), 1, false);
    cJSON *r = wait_result_at(file, line, e);
    if (id_json)
        assert_id_at(file, line, r, id_json);
    assert_error_at(file, line, r, code);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CMGS") != cmgs)
        h_fail_at(file, line, "rejected request (%s) caused %zu AT+CMGS, expected %zu", code,
                  h_sim_saw_since(&e->sim, mark, "rx AT+CMGS"), cmgs);

    /* The next result on the topic belongs to the next request. */
    char *next = h_strdupf("{\"id\":\"follow-%d\",\"to\":\"" ALLOWED "\",\"text\":\"next\"}",
                           ++follow);
    char want_id[64];
    snprintf(want_id, sizeof want_id, "\"follow-%d\"", follow);
    h_mqtt_publish_at(file, line, &e->mqtt, e->t_send, next, strlen(next), 1, false);
    free(next);
    cJSON *n = wait_result_at(file, line, e);
    assert_id_at(file, line, n, want_id);
    h_json_bool_eq_at(file, line, n, "ok", true);
    cJSON_Delete(n);
    if (h_sim_saw_since(&e->sim, mark, "rx AT+CMGS") != cmgs + 1)
        h_fail_at(file, line, "after the rejected request (%s) and one valid one: %zu AT+CMGS, "
                  "expected %zu", code, h_sim_saw_since(&e->sim, mark, "rx AT+CMGS"), cmgs + 1);
    return r;
}

static void test_error_invalid_json(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    cJSON_Delete(expect_rejected(e, "{\"id\":1,\"to\":", NULL, "invalid_json", 0));
    cJSON_Delete(expect_rejected(e, "not json at all", NULL, "invalid_json", 0));
    H_PASS(e);
}

static void test_error_invalid_number(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    cJSON_Delete(expect_rejected(e, "{\"id\":10,\"to\":\"0170-123\",\"text\":\"x\"}", "10",
                                 "invalid_number", 0));
    /* An attempt to end the AT command through the number. */
    cJSON_Delete(expect_rejected(e, "{\"id\":11,\"to\":\"+4930\\r\\nAT+CFUN=0\",\"text\":\"x\"}",
                                 "11", "invalid_number", 0));
    H_PASS(e);
}

static void test_error_too_long(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    char *text = long_text(400); /* 3 parts > max_parts 2 */
    char *p = h_strdupf("{\"id\":20,\"to\":\"" ALLOWED "\",\"text\":\"%s\"}", text);
    cJSON_Delete(expect_rejected(e, p, "20", "too_long", 0));
    free(p);
    free(text);

    /* 306 GSM characters are exactly 2 parts: allowed. */
    text = long_text(306);
    p = h_strdupf("{\"id\":21,\"to\":\"" ALLOWED "\",\"text\":\"%s\"}", text);
    send(e, p);
    cJSON *r = wait_result(e);
    assert_id(r, "21");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 2);
    cJSON_Delete(r);
    free(p);
    free(text);
    H_PASS(e);
}

static void test_error_invalid_request(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    cJSON_Delete(expect_rejected(e, "{\"id\":30,\"to\":\"" ALLOWED "\"}", "30", "invalid_request", 0));
    cJSON_Delete(expect_rejected(e, "{\"id\":31,\"to\":\"" ALLOWED "\",\"text\":5}", "31",
                                 "invalid_request", 0));
    cJSON_Delete(expect_rejected(e, "[1,2]", NULL, "invalid_request", 0));
    H_PASS(e);
}

static void test_error_not_allowed(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    cJSON_Delete(expect_rejected(e, "{\"id\":\"na\",\"to\":\"" TO "\",\"text\":\"x\"}", "\"na\"",
                                 "not_allowed", 0));
    H_PASS(e);
}

/* "*" is every E.164 number, never a national number or a short code:
 * refused with no AT+CMGS. */
static void test_error_national_not_listed(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    cJSON *r = expect_rejected(e, "{\"id\":12,\"to\":\"01701234567\",\"text\":\"x\"}", "12",
                               "not_allowed", 0);
    h_json_str_eq(h_json_obj(r, "error"), "message",
                  "to \"01701234567\": national numbers and short codes must be listed in "
                  "sms.allow_to, exactly or by a digit prefix such as \"0*\" (\"*\" allows "
                  "E.164 numbers only)");
    cJSON_Delete(r);
    H_PASS(e);
}

static void test_error_modem_cms(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &strict_opts);
    h_sim_cmd_ok(&e->sim, "cms 331", NULL, 0);
    cJSON *r = expect_rejected(e, "{\"id\":40,\"to\":\"" ALLOWED "\",\"text\":\"no network\"}", "40",
                               "modem_error", 1);
    h_json_int_eq(h_json_obj(r, "error"), "cms", 331);
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- 4b. national numbers, short codes, several recipients ---- */

static const struct h_env_opts listed_opts = {
    .config = "\"sms\":{\"allow_to\":[\"+4930*\",\"8888\",\"0*\"]}",
};

/* The recipients of the `sent` lines since mark, in order, comma-separated. */
static void sent_to_since(struct h_env *e, size_t mark, char *out, size_t size)
{
    size_t n = 0;

    out[0] = '\0';
    pthread_mutex_lock(&e->sim.mu);
    for (size_t i = mark; i < e->sim.n; i++) {
        char hex[900];
        int mr;
        struct pdu_msg pm;
        if (sscanf(e->sim.lines[i], "sent %d %899s", &mr, hex) == 2 &&
            pdu_decode(hex, strlen(hex), 0, &pm) == 0)
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "," : "", pm.addr);
    }
    pthread_mutex_unlock(&e->sim.mu);
}

/* A short code that allow_to lists: TP-DA with type-of-address 129. The
 * result is release 1's (no "recipients"). */
static void test_send_short_code(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &listed_opts);
    send(e, "{\"id\":50,\"to\":\"8888\",\"text\":\"STOP\"}");

    struct sent s;
    wait_sent(e, &s);
    /* 00 SMSC | 11 SUBMIT | 00 MR | 04 digits, 81 = TOA 129 | 8888 */
    if (strncmp(s.hex, "0011000481" "8888", 14) != 0)
        h_fail("TP-DA is not 4 digits with TOA 129 (81): %s", s.hex);
    assert_string_equal(s.msg.addr, "8888");
    assert_string_equal((char *)s.msg.text, "STOP");

    cJSON *r = wait_result(e);
    assert_id(r, "50");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 1);
    assert_int_equal(cJSON_GetArrayItem(h_json_arr(r, "references"), 0)->valueint, s.mr);
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "recipients"));
    cJSON_Delete(r);
    H_PASS(e);
}

/* Three recipients, the second not allowed: the others are sent, in
 * order, one result says what happened to each. */
static void test_send_recipients(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &listed_opts);
    size_t mark = h_sim_mark(&e->sim);
    send(e, "{\"id\":51,\"to\":[\"" ALLOWED "\",\"" TO "\",\"01701234567\"],\"text\":\"hi all\"}");

    struct sent s1, s3;
    wait_sent(e, &s1);
    wait_sent(e, &s3);
    assert_string_equal(s1.msg.addr, ALLOWED);
    assert_string_equal(s3.msg.addr, "01701234567");
    if (strncmp(s3.hex, "0011000B81", 10) != 0)
        h_fail("the national number did not go with TOA 129: %s", s3.hex);

    cJSON *r = wait_result(e);
    assert_id(r, "51");
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "not_allowed");
    h_json_str_eq(h_json_obj(r, "error"), "message", "1 of 3 recipients failed (see recipients)");
    cJSON *rs = h_json_arr(r, "recipients");
    assert_int_equal(cJSON_GetArraySize(rs), 3);
    cJSON *r1 = cJSON_GetArrayItem(rs, 0), *r2 = cJSON_GetArrayItem(rs, 1),
          *r3 = cJSON_GetArrayItem(rs, 2);
    h_json_str_eq(r1, "to", ALLOWED);
    h_json_bool_eq(r1, "ok", true);
    h_json_int_eq(r1, "parts", 1);
    assert_int_equal(cJSON_GetArrayItem(h_json_arr(r1, "references"), 0)->valueint, s1.mr);
    h_json_str_eq(r2, "to", TO);
    h_json_bool_eq(r2, "ok", false);
    assert_error(r2, "not_allowed");
    assert_null(cJSON_GetObjectItemCaseSensitive(r2, "references"));
    h_json_str_eq(r3, "to", "01701234567");
    h_json_bool_eq(r3, "ok", true);
    assert_int_equal(cJSON_GetArrayItem(h_json_arr(r3, "references"), 0)->valueint, s3.mr);
    cJSON_Delete(r);

    char to[256];
    sent_to_since(e, mark, to, sizeof to);
    assert_string_equal(to, ALLOWED ",01701234567");

    /* All allowed: ok, no "error". */
    send(e, "{\"id\":52,\"to\":[\"8888\",\"" ALLOWED "\"],\"text\":\"both\"}");
    r = wait_result(e);
    assert_id(r, "52");
    h_json_bool_eq(r, "ok", true);
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "error"));
    assert_int_equal(cJSON_GetArraySize(h_json_arr(r, "recipients")), 2);
    cJSON_Delete(r);
    sent_to_since(e, mark, to, sizeof to);
    assert_string_equal(to, ALLOWED ",01701234567,8888," ALLOWED);
    H_PASS(e);
}

/* The rate limit counts every SMS of a list. */
static void test_send_recipients_rate_limited(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"sms\":{\"allow_to\":[\"*\",\"8888\"],\"rate_per_hour\":2}",
    };
    h_env_up(e, &o);
    send(e, "{\"id\":53,\"to\":[\"8888\",\"" TO "\",\"" ALLOWED "\"],\"text\":\"x\"}");
    cJSON *r = wait_result(e);
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "rate_limited");
    cJSON *rs = h_json_arr(r, "recipients");
    h_json_bool_eq(cJSON_GetArrayItem(rs, 0), "ok", true);
    h_json_bool_eq(cJSON_GetArrayItem(rs, 1), "ok", true);
    assert_error(cJSON_GetArrayItem(rs, 2), "rate_limited");
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "sent "), 2);
    H_PASS(e);
}

/* A bad list is refused whole: one error, nothing sent to anyone. */
static void test_error_recipients_invalid(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &listed_opts);
    cJSON *r = expect_rejected(e, "{\"id\":60,\"to\":[\"" ALLOWED "\",\"+49 30\"],\"text\":\"x\"}",
                               "60", "invalid_number", 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "recipients"));
    h_json_str_eq(h_json_obj(r, "error"), "message",
                  "'to[1]' must be E.164, e.g. +4917012345678, or a national number or short "
                  "code of 2-20 digits");
    cJSON_Delete(r);
    cJSON_Delete(expect_rejected(e, "{\"id\":61,\"to\":[\"8888\",\"8888\"],\"text\":\"x\"}", "61",
                                 "invalid_request", 0));
    cJSON_Delete(expect_rejected(e, "{\"id\":62,\"to\":[],\"text\":\"x\"}", "62",
                                 "invalid_request", 0));
    cJSON_Delete(expect_rejected(e, "{\"id\":63,\"to\":[\"8888\",7],\"text\":\"x\"}", "63",
                                 "invalid_request", 0));
    cJSON_Delete(expect_rejected(e,
                                 "{\"id\":64,\"to\":[\"10\",\"11\",\"12\",\"13\",\"14\",\"15\","
                                 "\"16\",\"17\",\"18\",\"19\",\"8888\"],\"text\":\"x\"}",
                                 "64", "invalid_request", 0));
    H_PASS(e);
}

/* ---- 5. receive one SMS; deleted after the PUBACK ---- */

static void test_receive_single(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    char idx[64];
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 hi there", idx, sizeof idx);

    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    assert_false(e->mqtt.last_retained);
    assert_int_equal(e->mqtt.last_qos, 1);
    h_json_str_eq(m, "from", "+4917099999999");
    h_json_str_eq(m, "text", "hi there");
    h_json_int_eq(m, "parts", 1);
    const char *t = h_json_str(m, "time");
    if (!iso8601_offset(t))
        h_fail("\"time\" is \"%s\", expected ISO 8601 with offset", t);
    const char *smsc = h_json_str(m, "smsc");
    if (smsc[0] != '+' || strspn(smsc + 1, "0123456789") != strlen(smsc + 1) || !smsc[1])
        h_fail("\"smsc\" is \"%s\", expected E.164", smsc);
    cJSON_Delete(m);

    char want[80], line[80];
    snprintf(want, sizeof want, "deleted %s", idx);
    h_sim_wait_line(&e->sim, "deleted ", line, sizeof line, H_TIMEOUT_MS);
    assert_string_equal(line, want);
    assert_int_equal(h_sim_count(&e->sim), 0);
    H_PASS(e);
}

/* ---- 6. three parts arriving 3, 1, 2: one message ---- */

static void test_receive_multipart_out_of_order(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    char *text = long_text(400);
    struct pdu_part parts[4];
    assert_int_equal(make_deliver("+4917055555555", text, 77, parts, 4), 3);
    char when[40];
    deliver_time(&parts[0], when, sizeof when);

    char idx[3][32];
    static const int order[] = { 2, 0, 1 };
    for (int k = 0; k < 3; k++) {
        char cmd[PDU_HEX_MAX + 8];
        snprintf(cmd, sizeof cmd, "pdu %s", parts[order[k]].hex);
        h_sim_cmd_ok(&e->sim, cmd, idx[k], sizeof idx[k]);
    }

    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "from", "+4917055555555");
    h_json_str_eq(m, "text", text);
    h_json_int_eq(m, "parts", 3);
    h_json_str_eq(m, "smsc", "+491720000000");
    h_json_str_eq(m, "time", when);
    cJSON_Delete(m);

    /* All three deleted, each once. */
    bool seen[3] = { false, false, false };
    for (int k = 0; k < 3; k++) {
        char line[64];
        h_sim_wait_line(&e->sim, "deleted ", line, sizeof line, H_TIMEOUT_MS);
        int hit = -1;
        for (int j = 0; j < 3; j++)
            if (strcmp(line + 8, idx[j]) == 0)
                hit = j;
        if (hit < 0 || seen[hit])
            h_fail("unexpected '%s' (stored as %s, %s, %s)", line, idx[0], idx[1], idx[2]);
        seen[hit] = true;
    }
    assert_int_equal(h_sim_count(&e->sim), 0);

    /* Exactly one message: the next one on the topic is the next SMS. */
    h_sim_cmd_ok(&e->sim, "sms +4917055555555 marker", NULL, 0);
    m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "text", "marker");
    h_json_int_eq(m, "parts", 1);
    cJSON_Delete(m);
    free(text);
    H_PASS(e);
}

/* ---- 7. nothing deleted before the broker acknowledged the event ---- */

static void test_receive_no_delete_before_puback(void **state)
{
    struct h_env *e = *state;
    /* The subscriber's session survives the broker restart (persistence in
     * the broker's dir), so the broker queues the event for it even if the
     * bridge publishes before the test client is back. */
    const struct h_env_opts o = { .persistent_client = true };
    h_env_up(e, &o);

    h_broker_stop(&e->broker);
    size_t mark = h_sim_mark(&e->sim);
    char idx[32];
    h_sim_cmd_ok(&e->sim, "sms +4917011112222 while the broker is down", idx, sizeof idx);
    static const char *const read_cmds[] = { "rx AT+CMGR=", "rx AT+CMGL", NULL };
    h_sim_wait_any(&e->sim, mark, read_cmds, NULL, 0, H_TIMEOUT_MS);
    /* It read the message; it must not delete it while nobody acknowledged. */
    assert_int_equal(h_sim_count(&e->sim), 1);
    assert_int_equal(h_sim_saw(&e->sim, "deleted "), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGD"), 0);

    h_broker_restart(&e->broker);
    h_mqtt_reconnect(&e->mqtt, H_TIMEOUT_MS);
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_READY_TIMEOUT_MS);
    h_json_str_eq(m, "from", "+4917011112222");
    h_json_str_eq(m, "text", "while the broker is down");
    cJSON_Delete(m);

    char want[64], line[64];
    snprintf(want, sizeof want, "deleted %s", idx);
    h_sim_wait_line(&e->sim, "deleted ", line, sizeof line, H_READY_TIMEOUT_MS);
    assert_string_equal(line, want);
    assert_int_equal(h_sim_count(&e->sim), 0);
    /* And it was published once. */
    h_sim_cmd_ok(&e->sim, "sms +4917011112222 after", NULL, 0);
    m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "text", "after");
    cJSON_Delete(m);
    H_PASS(e);
}

/* ---- 8. stored while the bridge was down: published after start ---- */

static void test_receive_stored_before_start(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .no_bridge = true };
    h_env_up(e, &o);
    struct pdu_part p;
    assert_int_equal(make_deliver("+4917033334444", "stored while you were away", 0, &p, 1), 1);
    char when[40];
    deliver_time(&p, when, sizeof when);
    char cmd[PDU_HEX_MAX + 8], idx[32];
    snprintf(cmd, sizeof cmd, "store %s", p.hex);
    h_sim_cmd_ok(&e->sim, cmd, idx, sizeof idx);

    h_env_start_bridge(e);
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "from", "+4917033334444");
    h_json_str_eq(m, "text", "stored while you were away");
    h_json_int_eq(m, "parts", 1);
    h_json_str_eq(m, "smsc", "+491720000000");
    h_json_str_eq(m, "time", when);
    cJSON_Delete(m);

    char want[64], line[64];
    snprintf(want, sizeof want, "deleted %s", idx);
    h_sim_wait_line(&e->sim, "deleted ", line, sizeof line, H_TIMEOUT_MS);
    assert_string_equal(line, want);
    assert_int_equal(h_sim_count(&e->sim), 0);
    H_PASS(e);
}

/* ---- 9. keep_on_sim: published, not deleted ---- */

static void test_receive_keep_on_sim(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = "\"sms\":{\"keep_on_sim\":true}" };
    h_env_up(e, &o);
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 first", NULL, 0);
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "text", "first");
    cJSON_Delete(m);
    /* The second message is the next event (the first is not published
     * again), and by then the first would have been deleted. */
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 second", NULL, 0);
    m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "text", "second");
    cJSON_Delete(m);
    assert_int_equal(h_sim_count(&e->sim), 2);
    assert_int_equal(h_sim_saw(&e->sim, "deleted "), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGD"), 0);
    H_PASS(e);
}

/* ---- 10. a retained command is ignored ---- */

static void test_retained_command_ignored(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .no_bridge = true };
    h_env_up(e, &o);
    /* Retained before the bridge subscribes: it arrives with the retain
     * flag (a retained message published to a live MQTT 3.1.1 subscription
     * loses the flag, so the bridge could not tell). */
    h_mqtt_publish(&e->mqtt, e->t_send,
                   "{\"id\":\"retained-1\",\"to\":\"" TO "\",\"text\":\"must not be sent\"}", 1,
                   true);
    h_env_start_bridge(e);

    send(e, "{\"id\":\"live-1\",\"to\":\"" TO "\",\"text\":\"live\"}");
    cJSON *r = wait_result(e);
    assert_id(r, "\"live-1\"");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    struct sent s;
    wait_sent(e, &s);
    assert_string_equal((char *)s.msg.text, "live");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "sent "), 1);

    /* Clear it (with the bridge stopped: an empty command is no command). */
    h_bridge_stop(&e->bridge);
    h_mqtt_publish_len(&e->mqtt, e->t_send, "", 0, 1, true);
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "late", true);
    h_mqtt_subscribe(&late, e->t_send);
    h_mqtt_publish(&e->mqtt, e->t_send, "marker", 1, false);
    char buf[128];
    h_mqtt_wait(&late, e->t_send, buf, sizeof buf, H_TIMEOUT_MS);
    h_mqtt_disconnect(&late);
    assert_string_equal(buf, "marker");
    H_PASS(e);
}

/* Published retained while the bridge runs (MQTT 5 keeps the flag for live
 * subscribers): ignored; clearing it (empty, retained) says nothing. */
static void test_retained_command_live(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    h_mqtt_publish(&e->mqtt, e->t_send,
                   "{\"id\":\"retained-2\",\"to\":\"" TO "\",\"text\":\"must not be sent\"}", 1,
                   true);
    h_mqtt_publish_len(&e->mqtt, e->t_send, "", 0, 1, true);
    /* Commands are handled in order: once this one is answered, the two
     * before it were seen. */
    send(e, "{\"id\":\"live-2\",\"to\":\"" TO "\",\"text\":\"live\"}");
    cJSON *r = wait_result(e);
    assert_id(r, "\"live-2\"");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    struct sent s;
    wait_sent(e, &s);
    assert_string_equal((char *)s.msg.text, "live");
    assert_int_equal(h_sim_saw(&e->sim, "sent "), 1);
    if (h_mqtt_pending(&e->mqtt, e->t_result) > 0)
        h_fail("a result for the retained command or for clearing it");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_send_gsm7),
        T(test_send_ucs2),
        T(test_send_multipart),
        T(test_send_id_string),
        T(test_send_control_chars),
        T(test_send_mqtt5_response_topic),
        T(test_error_invalid_json),
        T(test_error_invalid_number),
        T(test_error_too_long),
        T(test_error_invalid_request),
        T(test_error_not_allowed),
        T(test_error_national_not_listed),
        T(test_send_short_code),
        T(test_send_recipients),
        T(test_send_recipients_rate_limited),
        T(test_error_recipients_invalid),
        T(test_error_modem_cms),
        T(test_receive_single),
        T(test_receive_multipart_out_of_order),
        T(test_receive_no_delete_before_puback),
        T(test_receive_stored_before_start),
        T(test_receive_keep_on_sim),
        T(test_retained_command_ignored),
        T(test_retained_command_live),
    };
    return cmocka_run_group_tests_name("integration_sms", tests, NULL, NULL);
}
