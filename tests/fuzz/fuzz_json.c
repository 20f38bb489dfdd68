/* libFuzzer target: the MQTT command parsers of mqtt/json.
 *
 * The input is an MQTT payload: copied into a buffer of exactly its size
 * (not NUL-terminated, as paho hands it over), so ASan reports any read
 * past its end. json_parse_command and then every json_parse_* run on it,
 * and what they accept is checked against what they promise: the values
 * that go onto the AT line (numbers, DTMF digits, USSD codes, AT commands)
 * hold only their allowed characters, topics are valid, payloads bounded.
 * The result JSON built from the error must parse again. The payload is
 * also the module's answer to a command (its +CME/+CMS text can be any
 * bytes): the error m2m_error_from_at makes of it must be as good. And
 * it is the value of a Home Assistant text field, which a button's press
 * puts into a request. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "at/chat.h"
#include "core/utf8.h"
#include "modem/audio.h"
#include "modem/sms.h"
#include "mqtt/json.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json: invariant failed: %s\n", what);
        abort();
    }
}

static bool only(const char *s, const char *set, size_t min, size_t max)
{
    size_t n = strlen(s);

    return n >= min && n <= max && strspn(s, set) == n;
}

static void check_err(int rc, const struct m2m_error *err)
{
    check(rc == 0 || rc == -EINVAL, "parser returned neither 0 nor -EINVAL");
    if (rc == 0)
        return;
    check(err->code != NULL && err->code[0] != 0, "error without a code");
    check(memchr(err->message, 0, sizeof(err->message)) != NULL, "error message unterminated");
    check(utf8_valid((const uint8_t *)err->message, strlen(err->message)),
          "error message is not UTF-8");
}

/* The error result as it would be published: valid JSON. */
static void check_result(const cJSON *id, const struct m2m_error *err)
{
    char *out = json_result(id, NULL, err);
    cJSON *back;

    if (!out)
        return; /* allocation failure */
    back = cJSON_Parse(out);
    check(back != NULL, "json_result is not JSON");
    cJSON_Delete(back);
    free(out);
}

static void parse_all(const cJSON *root, const cJSON *id)
{
    struct m2m_error err;
    struct sms_send_req sms;
    struct remote_publish_req pub;
    enum json_power_mode mode;
    const char *s;
    int rc, qos;

    rc = json_parse_sms_send(root, &sms, &err);
    check_err(rc, &err);
    if (rc == 0) {
        /* Each recipient goes into a PDU's TP-DA: E.164 or 2-20 digits,
         * nothing else; a list holds 1-SMS_RECIPIENTS_MAX distinct
         * ones. */
        check(sms.n_recipients >= 1 && sms.n_recipients <= SMS_RECIPIENTS_MAX &&
                  (sms.to_list || sms.n_recipients == 1) && sms.to == sms.recipients[0],
              "sms: recipients");
        for (size_t i = 0; i < sms.n_recipients; i++) {
            const char *to = sms.recipients[i];
            check(json_is_e164(to) || only(to, "0123456789", 2, 20), "sms: 'to' not a number");
            for (size_t k = 0; k < i; k++)
                check(strcmp(to, sms.recipients[k]) != 0, "sms: a recipient twice");
        }
        check(sms.text_len > 0 && sms.text_len == strlen(sms.text), "sms: text length");
        check(utf8_valid((const uint8_t *)sms.text, sms.text_len), "sms: text not UTF-8");
    } else {
        check_result(id, &err);
    }

    rc = json_parse_call_dial(root, &s, &err);
    check_err(rc, &err);
    if (rc == 0)
        /* What ATD<to>; can carry and nothing else: no ';', quote or
         * letter that would end or add a command (service codes such as
         * **21*...# pass here; calls.allow_to decides on them). */
        check(only(s[0] == '+' ? s + 1 : s, "0123456789*#", 1, 32), "dial: 'to' not dialable");

    {
        /* The alarm and the audio commands: a file name is all that goes
         * inside AT+...="...", and it can close no quote. */
        struct json_audio_play play;
        struct json_audio_upload up;
        int secs;
        rc = json_parse_call_alarm(root, &play, &err);
        check_err(rc, &err);
        if (rc == 0)
            check((!play.file || audio_file_valid(play.file)) && play.repeat >= 1 &&
                      play.repeat <= AUDIO_REPEAT_MAX, "alarm: file or repeat");
        rc = json_parse_audio_play(root, &play, &err);
        check_err(rc, &err);
        if (rc == 0)
            check(audio_file_valid(play.file) && play.repeat >= 1 &&
                      play.repeat <= AUDIO_REPEAT_MAX, "audio/play: file or repeat");
        rc = json_parse_audio_record(root, &s, &secs, &err);
        check_err(rc, &err);
        if (rc == 0)
            check(audio_file_valid(s) && audio_file_is_wav(s) && secs >= 1 &&
                      secs <= AUDIO_RECORD_MAX_S, "audio/record: file or seconds");
        else
            check(s == NULL, "audio/record: file set on error");
        rc = json_parse_audio_upload(root, &up, &err);
        check_err(rc, &err);
        if (rc == 0) {
            check(audio_file_valid(up.file) && up.len >= 1 && up.len <= AUDIO_UPLOAD_MAX,
                  "audio/upload: file or length");
            free(up.data);
        } else {
            check(up.data == NULL, "audio/upload: data kept on error");
        }
    }

    rc = json_parse_dtmf(root, &s, &err);
    check_err(rc, &err);
    if (rc == 0)
        check(only(s, "0123456789*#ABCDabcd", 1, 32), "dtmf: digits");
    else
        check(s == NULL, "dtmf: digits set on error");

    rc = json_parse_ussd(root, &s, &err);
    check_err(rc, &err);
    if (rc == 0)
        check(only(s, "0123456789*#+", 1, 160), "ussd: code");
    else
        check(s == NULL, "ussd: code set on error");

    rc = json_parse_remote_publish(root, &pub, &err);
    check_err(rc, &err);
    if (rc == 0) {
        check(json_topic_valid(pub.topic, strlen(pub.topic), false), "publish: topic");
        check(strlen(pub.topic) <= JSON_REMOTE_TOPIC_MAX, "publish: topic too long");
        check(pub.payload_len <= JSON_REMOTE_PAYLOAD_MAX, "publish: payload too long");
        check(pub.payload != NULL || pub.payload_len == 0, "publish: payload");
        check(pub.qos >= 0 && pub.qos <= 2, "publish: qos");
        json_remote_publish_clear(&pub);
    } else {
        check(pub.payload_buf == NULL, "publish: buffer kept on error");
    }

    rc = json_parse_remote_subscribe(root, &s, &qos, &err);
    check_err(rc, &err);
    if (rc == 0)
        check(json_topic_valid(s, strlen(s), true) && qos >= 0 && qos <= 2, "subscribe");

    rc = json_parse_remote_unsubscribe(root, &s, &err);
    check_err(rc, &err);
    if (rc == 0)
        check(json_topic_valid(s, strlen(s), true), "unsubscribe: topic");

    rc = json_parse_modem_power(root, &mode, &err);
    check_err(rc, &err);
    if (rc == 0)
        check(mode == JSON_POWER_FULL || mode == JSON_POWER_MIN || mode == JSON_POWER_RESET,
              "power: mode");

    rc = json_parse_at_send(root, &s, &err);
    check_err(rc, &err);
    if (rc == 0) {
        size_t n = strlen(s);

        check(n >= 2 && n <= 1024 && (s[0] | 0x20) == 'a' && (s[1] | 0x20) == 't',
              "at: not an AT command");
        for (size_t i = 0; i < n; i++)
            check(s[i] >= 0x20 && s[i] <= 0x7e, "at: a control byte in the command");
    }

    /* Answer and hangup take no fields. */
    {
        static const char *const none[] = {NULL};

        rc = json_check_fields(root, none, &err);
        check_err(rc, &err);
    }
}

/* base64 is strict: whatever decodes encodes back to the same text. */
static void base64(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc;

    check(text != NULL, "malloc");
    memcpy(text, data, size);
    rc = json_base64_decode(text, size, &out, &out_len);
    check(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "base64: return value");
    if (rc == 0) {
        char *again = json_base64_encode(out, out_len);

        if (again) {
            check(strlen(again) == size && memcmp(again, data, size) == 0,
                  "base64: decode then encode differs");
            free(again);
        }
        free(out);
    }
    free(text);
}

/* The input as an AT answer: the first byte picks the final result (and,
 * with the second, its number), the rest is the module's text. */
static void at_error(const uint8_t *data, size_t size)
{
    struct at_response rsp = { .final = AT_FINAL_OK, .code = -1 };
    struct m2m_error err;
    char *text;

    if (size < 2)
        return;
    rsp.final = (enum at_final)(data[0] % (AT_FINAL_OUT_OF_STEP + 1));
    rsp.code = data[1] == 0xFF ? -1 : data[1] * 4;
    text = malloc(size - 1);
    check(text != NULL, "malloc");
    memcpy(text, data + 2, size - 2);
    text[size - 2] = 0;
    rsp.text = data[0] & 0x80 ? text : NULL;
    if (m2m_error_from_at(&err, &rsp, data[0] & 0x40 ? text : NULL)) {
        check(rsp.final != AT_FINAL_OK, "an error for OK");
        check_err(-EINVAL, &err);
        /* The module's number; without one, a known text's (27.007 0-100,
         * 27.005 300-500) or none. */
        if (rsp.final == AT_FINAL_CME && rsp.code < 0 && rsp.text)
            check(err.cme >= -1 && err.cme <= 100, "cme of a text");
        else
            check(err.cme == (rsp.final == AT_FINAL_CME ? rsp.code : -1), "cme");
        if (rsp.final == AT_FINAL_CMS && rsp.code < 0 && rsp.text)
            check(err.cms == -1 || (err.cms >= 300 && err.cms <= 500), "cms of a text");
        else
            check(err.cms == (rsp.final == AT_FINAL_CMS ? rsp.code : -1), "cms");
        check_result(NULL, &err);
    } else {
        check(rsp.final == AT_FINAL_OK, "no error for a failure");
    }
    free(text);
}

/* The payload as the value of one of Home Assistant's text fields
 * (bridge/cmd_ha.c): kept when it is UTF-8 without NUL, then a press makes
 * {"to":value,"text":value} (an SMS) or {"to":value} (a call) of it with
 * cJSON (no JSON text in between) and runs the same parsers, which must
 * hold the same promises. */
static void ha_field(const uint8_t *data, size_t size)
{
    char *v;

    if (memchr(data, '\0', size) || !utf8_valid(data, size) || !(v = malloc(size + 1)))
        return;
    memcpy(v, data, size);
    v[size] = '\0';
    for (int with_text = 0; with_text < 2; with_text++) {
        cJSON *root = cJSON_CreateObject();
        if (root && cJSON_AddStringToObject(root, "to", v) &&
            (!with_text || cJSON_AddStringToObject(root, "text", v)))
            parse_all(root, NULL);
        cJSON_Delete(root);
    }
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *payload = malloc(size ? size : 1);
    struct m2m_error err;
    const cJSON *id = NULL;
    cJSON *root;

    check(payload != NULL, "malloc");
    memcpy(payload, data, size);
    root = json_parse_command(payload, size, &id, &err);
    if (root) {
        check(cJSON_IsObject(root), "command root not an object");
        if (id)
            check(cJSON_IsString(id) || (cJSON_IsNumber(id) && isfinite(id->valuedouble)),
                  "id neither a string nor a finite number");
        parse_all(root, id);
        cJSON_Delete(root);
    } else {
        check(id == NULL, "id set on error");
        check_err(-EINVAL, &err);
        check_result(NULL, &err);
    }
    /* The payload once more, as a topic and as base64 text. */
    json_topic_valid((const char *)payload, size, true);
    json_topic_valid((const char *)payload, size, false);
    free(payload);
    base64(data, size);
    at_error(data, size);
    ha_field(data, size);
    return 0;
}
