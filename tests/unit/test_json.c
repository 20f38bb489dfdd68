/* Unit tests of the MQTT payload codecs (bridge/mqtt/json.[ch]). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "modem/call.h"
#include "modem/sms.h"
#include "mqtt/json.h"

/* ---- command validation: one table for every parser --------------------- */

enum parser {
    P_NONE,     /* B/call/answer, B/call/hangup: no fields */
    P_SMS,
    P_DIAL,
    P_DTMF,
    P_USSD,
    P_PUB,
    P_SUB,
    P_UNSUB,
    P_POWER,
    P_SELECT,
    P_AT,
    P_ALARM,    /* B/call/dial's "play", "repeat", "hangup" */
    P_APLAY,
    P_AREC,
    P_AUPLOAD,
};

struct cmd_case {
    enum parser parser;
    const char *payload;
    const char *code;     /* NULL: accepted */
    const char *message;  /* the error's message, or what was parsed */
};

/* What a parser extracted, as one comparable line. */
static int run_parser(enum parser p, const cJSON *root, char *out, size_t size,
                      struct m2m_error *err)
{
    const char *s = NULL;
    int rc, qos = -1;

    switch (p) {
    case P_NONE: {
        static const char *const none[] = {NULL};
        rc = json_check_fields(root, none, err);
        snprintf(out, size, "-");
        return rc;
    }
    case P_SMS: {
        struct sms_send_req req;
        rc = json_parse_sms_send(root, &req, err);
        if (rc)
            return rc;
        size_t n = 0;
        if (req.to_list) {
            n = (size_t)snprintf(out, size, "to=[");
            for (size_t i = 0; i < req.n_recipients; i++)
                n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "", req.recipients[i]);
            n += (size_t)snprintf(out + n, size - n, "]");
        } else {
            assert_int_equal(req.n_recipients, 1);
            assert_ptr_equal(req.recipients[0], req.to);
            n = (size_t)snprintf(out, size, "to=%s", req.to);
        }
        snprintf(out + n, size - n, " text=%s len=%zu flash=%d report=%d", req.text, req.text_len,
                 req.flash, req.report);
        return rc;
    }
    case P_DIAL:
        rc = json_parse_call_dial(root, &s, err);
        if (!rc)
            snprintf(out, size, "to=%s", s);
        else
            assert_null(s);
        return rc;
    case P_DTMF:
        rc = json_parse_dtmf(root, &s, err);
        if (!rc)
            snprintf(out, size, "digits=%s", s);
        else
            assert_null(s);
        return rc;
    case P_USSD:
        rc = json_parse_ussd(root, &s, err);
        if (!rc)
            snprintf(out, size, "code=%s", s);
        else
            assert_null(s);
        return rc;
    case P_PUB: {
        struct remote_publish_req req;
        rc = json_parse_remote_publish(root, &req, err);
        if (!rc) {
            snprintf(out, size, "topic=%s payload=%.*s len=%zu qos=%d retain=%d", req.topic,
                     (int)req.payload_len, (const char *)req.payload, req.payload_len, req.qos,
                     req.retain);
            json_remote_publish_clear(&req);
            assert_null(req.payload_buf);
        } else {
            assert_null(req.payload_buf);
        }
        return rc;
    }
    case P_SUB:
        rc = json_parse_remote_subscribe(root, &s, &qos, err);
        if (!rc)
            snprintf(out, size, "topic=%s qos=%d", s, qos);
        else
            assert_null(s);
        return rc;
    case P_UNSUB:
        rc = json_parse_remote_unsubscribe(root, &s, err);
        if (!rc)
            snprintf(out, size, "topic=%s", s);
        else
            assert_null(s);
        return rc;
    case P_POWER: {
        enum json_power_mode mode = JSON_POWER_FULL;
        rc = json_parse_modem_power(root, &mode, err);
        if (!rc)
            snprintf(out, size, "mode=%d", (int)mode);
        return rc;
    }
    case P_SELECT:
        s = "-";
        rc = json_parse_network_select(root, &s, err);
        if (!rc)
            snprintf(out, size, "mccmnc=%s", s ? s : "auto");
        else
            assert_null(s);
        return rc;
    case P_AT:
        rc = json_parse_at_send(root, &s, err);
        if (!rc)
            snprintf(out, size, "command=%s", s);
        else
            assert_null(s);
        return rc;
    case P_ALARM:
    case P_APLAY: {
        struct json_audio_play req;
        rc = p == P_ALARM ? json_parse_call_alarm(root, &req, err)
                          : json_parse_audio_play(root, &req, err);
        if (!rc)
            snprintf(out, size, "file=%s repeat=%d to_call=%d hangup=%d",
                     req.file ? req.file : "-", req.repeat, req.to_call, req.hangup);
        return rc;
    }
    case P_AREC: {
        int seconds;
        rc = json_parse_audio_record(root, &s, &seconds, err);
        if (!rc)
            snprintf(out, size, "file=%s seconds=%d", s, seconds);
        else
            assert_null(s);
        return rc;
    }
    case P_AUPLOAD: {
        struct json_audio_upload req;
        rc = json_parse_audio_upload(root, &req, err);
        if (!rc) {
            size_t n = (size_t)snprintf(out, size, "file=%s len=%zu data=", req.file, req.len);
            for (size_t i = 0; i < req.len && n + 3 < size; i++)
                n += (size_t)snprintf(out + n, size - n, "%02x", req.data[i]);
            free(req.data);
        } else {
            assert_null(req.data);
        }
        return rc;
    }
    }
    return -1;
}

#define NUMBER_MSG(field)                                                                    \
    "'" field "' must be E.164, e.g. +4917012345678, or a national number or short code of " \
    "2-20 digits"
static const char E164_MSG[] = NUMBER_MSG("to");
static const char SMS_TO_TYPE[] =
    "'to' must be a string, e.g. \"+4917012345678\", or an array of 1-10 of them";
#define SMS_TO_COUNT "'to' must list 1-10 numbers, not "
static const char NUM_STRING[] = "'to' must be a string, e.g. \"+4917012345678\"";
static const char DTMF_MSG[] = "'digits' must be 1-32 of 0-9 * # A-D";
static const char USSD_MSG[] = "'code' must be 1-160 of 0-9 * # +";
static const char DIAL_MSG[] = "'to' must be a number (digits with an optional leading +, e.g. "
                               "+4917012345678) or a service code of digits, * and #; at most 32";
static const char FILTER_MSG[] =
    "'topic' must use '+' and '#' only as whole levels, '#' only as the last";
static const char NAME_MSG[] = "'topic' must not contain '+' or '#' (a topic name, not a filter)";
static const char EMPTY_MSG[] = "'topic' must not be empty";
static const char CTRL_MSG[] =
    "'topic' must not contain control characters (U+0000-U+001F, U+007F-U+009F)";
static const char NONCHAR_MSG[] =
    "'topic' must not contain Unicode noncharacters (U+FFFE, U+FFFF, U+FDD0-U+FDEF)";
static const char AT_LEN_MSG[] = "'command' must be 2-1024 characters";
static const char AT_START_MSG[] = "'command' must start with AT";
static const char AT_SEMI_MSG[] = "'command' must be one command: ';' is not allowed";
#define AT_BYTE_MSG(hex, at) \
    "'command' must be printable ASCII: byte 0x" hex " at " at " is a control or 8-bit character"
#define AT_MODE_MSG(c)                                                                     \
    "'command' must not use AT" c ": it would leave command mode (calls: use call/dial)"
#define AT_PROMPT_MSG(cmd) \
    "'command' must not use AT" cmd ": it opens a '>' data prompt, which at/send cannot fill"
static const char POWER_MSG[] = "'mode' must be \"full\", \"min\" or \"reset\"";
static const char MCCMNC_MSG[] = "'mccmnc' must be 5 or 6 digits, e.g. \"26201\"";
static const char QOS_MSG[] = "'qos' must be 0, 1 or 2";
static const char ID_MSG[] = "'id' must be a string or a number";
static const char BIN[] = "invalid_request";
#define FILE_MSG(field)                                                                   \
    "'" field "' must be c:/ and 1-64 of A-Z a-z 0-9 _ - . with an extension (not starting " \
    "or ending with .), e.g. \"c:/alarm.amr\""
#define NAME64 "123456789012345678901234567890123456789012345678901234567890.amr"

static const struct cmd_case cmd_cases[] = {
    /* json_parse_command: the envelope */
    {P_NONE, "", NULL, "-"}, /* mosquitto_pub -n */
    {P_NONE, "{}", NULL, "-"},
    {P_NONE, " \r\n\t{ } \n", NULL, "-"},
    {P_NONE, "{\"id\":\"a\"}", NULL, "-"},
    {P_NONE, "{\"id\":7}", NULL, "-"},
    {P_NONE, "{", "invalid_json", "invalid JSON at byte 0"},
    {P_NONE, "{\"a\":}", "invalid_json", "invalid JSON at byte 5"},
    {P_NONE, "{} {}", "invalid_json", "invalid JSON at byte 3"},
    {P_NONE, "{}x", "invalid_json", "invalid JSON at byte 2"},
    {P_NONE, "nope", "invalid_json", "invalid JSON at byte 0"},
    {P_NONE, "{'to':1}", "invalid_json", "invalid JSON at byte 2"},
    {P_NONE, "\xff{}", "invalid_json", "payload is not valid UTF-8 (byte 0)"},
    {P_NONE, "{\"a\":\"\xc3\x28\"}", "invalid_json", "payload is not valid UTF-8 (byte 6)"},
    {P_NONE, "{\"a\":\"\xed\xa0\x80\"}", "invalid_json", "payload is not valid UTF-8 (byte 6)"},
    {P_NONE, "{\"a\":\"\xc0\xaf\"}", "invalid_json", "payload is not valid UTF-8 (byte 6)"},
    {P_NONE, "[]", BIN, "payload must be a JSON object"},
    {P_NONE, "\"x\"", BIN, "payload must be a JSON object"},
    {P_NONE, "42", BIN, "payload must be a JSON object"},
    {P_NONE, "null", BIN, "payload must be a JSON object"},
    {P_NONE, "{\"id\":true}", BIN, ID_MSG},
    {P_NONE, "{\"id\":null}", BIN, ID_MSG},
    {P_NONE, "{\"id\":{}}", BIN, ID_MSG},
    {P_NONE, "{\"id\":[1]}", BIN, ID_MSG},
    {P_NONE, "{\"id\":1e999}", BIN, ID_MSG},
    {P_NONE, "{\"x\":\"a\\u0000b\"}", BIN, "strings must not contain \\u0000 (byte 7)"},
    {P_NONE, "{\"a\\u0000\":1}", BIN, "strings must not contain \\u0000 (byte 3)"},
    /* an escaped backslash before "u0000" is text, not an escape */
    {P_NONE, "{\"x\":\"a\\\\u0000\"}", BIN, "unknown field 'x'"},
    {P_NONE, "{\"x\":\"\\\xc3\xa9\"}", "invalid_json", "invalid JSON at byte 6"},
    {P_NONE, "{\"x\":\"\\\xc3\"}", "invalid_json", "payload is not valid UTF-8 (byte 7)"},
    {P_NONE, "{\"x\":1}", BIN, "unknown field 'x'"},
    {P_NONE, "{\"ID\":1}", BIN, "unknown field 'ID'"},
    {P_NONE, "{\"id\":1,\"id\":2}", BIN, "duplicate field 'id'"},
    {P_NONE,
     "{\"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij\":1}", BIN,
     "unknown field 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv...'"},
    /* a cut name never splits a character: 47 'a' then "é" (2 bytes) */
    {P_NONE, "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9xyz\":1}", BIN,
     "unknown field 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"},

    /* B/sms/send */
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\"}", NULL,
     "to=+4917012345678 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"id\":\"42\",\"text\":\"hi\",\"to\":\"+4917012345678\",\"flash\":true,"
            "\"report\":true}",
     NULL, "to=+4917012345678 text=hi len=2 flash=1 report=1"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\",\"flash\":false,\"report\":false}",
     NULL, "to=+4917012345678 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":\"+1234567\",\"text\":\"Gr\\u00fc\\u00dfe \\ud83d\\ude00\"}", NULL,
     "to=+1234567 text=Gr\xc3\xbc\xc3\x9f" "e \xf0\x9f\x98\x80 len=12 flash=0 report=0"},
    {P_SMS, "{\"to\":\"+123456789012345\",\"text\":\"a\\nb\"}", NULL,
     "to=+123456789012345 text=a\nb len=3 flash=0 report=0"},
    {P_SMS, "{\"text\":\"hi\"}", BIN, "missing field 'to'"},
    {P_SMS, "{\"to\":4917012345678,\"text\":\"hi\"}", BIN, SMS_TO_TYPE},
    {P_SMS, "{\"to\":null,\"text\":\"hi\"}", BIN, SMS_TO_TYPE},
    {P_SMS, "{\"to\":{\"n\":\"+4917012345678\"},\"text\":\"hi\"}", BIN, SMS_TO_TYPE},
    {P_SMS, "{\"to\":true,\"text\":\"hi\"}", BIN, SMS_TO_TYPE},
    /* national numbers and short codes: 2-20 digits (allow_to decides) */
    {P_SMS, "{\"to\":\"017012345678\",\"text\":\"hi\"}", NULL,
     "to=017012345678 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":\"8888\",\"text\":\"hi\"}", NULL, "to=8888 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":\"11\",\"text\":\"hi\"}", NULL, "to=11 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":\"12345678901234567890\",\"text\":\"hi\"}", NULL,
     "to=12345678901234567890 text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":\"1\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"123456789012345678901\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"0170 1234\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"*100#\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"8888\\r\\nAT\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"Shop\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    /* several recipients: any bad entry refuses the whole request */
    {P_SMS, "{\"to\":[\"+4917012345678\",\"8888\"],\"text\":\"hi\"}", NULL,
     "to=[+4917012345678,8888] text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":[\"+4917012345678\"],\"text\":\"hi\"}", NULL,
     "to=[+4917012345678] text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":[\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\"],"
            "\"text\":\"hi\"}",
     NULL, "to=[10,11,12,13,14,15,16,17,18,19] text=hi len=2 flash=0 report=0"},
    {P_SMS, "{\"to\":[],\"text\":\"hi\"}", BIN, SMS_TO_COUNT "0"},
    {P_SMS, "{\"to\":[\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\",\"20\"],"
            "\"text\":\"hi\"}",
     BIN, SMS_TO_COUNT "11"},
    {P_SMS, "{\"to\":[\"+4917012345678\",5],\"text\":\"hi\"}", BIN,
     "'to[1]' must be a string, e.g. \"+4917012345678\""},
    {P_SMS, "{\"to\":[null],\"text\":\"hi\"}", BIN,
     "'to[0]' must be a string, e.g. \"+4917012345678\""},
    {P_SMS, "{\"to\":[[\"+4917012345678\"]],\"text\":\"hi\"}", BIN,
     "'to[0]' must be a string, e.g. \"+4917012345678\""},
    {P_SMS, "{\"to\":[\"8888\",\"+49 170\"],\"text\":\"hi\"}", "invalid_number",
     NUMBER_MSG("to[1]")},
    {P_SMS, "{\"to\":[\"8888\",\"+4917012345678\",\"8888\"],\"text\":\"hi\"}", BIN,
     "'to' lists \"8888\" twice"},
    {P_SMS, "{\"to\":[\"+4917012345678\",\"+4917012345678\"],\"text\":\"hi\"}", BIN,
     "'to' lists \"+4917012345678\" twice"},
    {P_SMS, "{\"to\":[\"8888\"],\"text\":\"\"}", BIN, "'text' must not be empty"},
    {P_SMS, "{\"to\":\"+017012345678\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+123456\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+1234567890123456\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+49 170 12345678\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+4917012345678;\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"\",\"text\":\"hi\"}", "invalid_number", E164_MSG},
    {P_SMS, "{\"to\":\"+4917012345678\"}", BIN, "missing field 'text'"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":5}", BIN, "'text' must be a string"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":[\"a\"]}", BIN, "'text' must be a string"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"\"}", BIN, "'text' must not be empty"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\",\"flash\":\"yes\"}", BIN,
     "'flash' must be true or false"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\",\"report\":1}", BIN,
     "'report' must be true or false"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\",\"flash\":null}", BIN,
     "'flash' must be true or false"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"text\":\"hi\",\"from\":\"x\"}", BIN,
     "unknown field 'from'"},
    {P_SMS, "{\"To\":\"+4917012345678\",\"text\":\"hi\"}", BIN, "unknown field 'To'"},
    {P_SMS, "{\"to\":\"+4917012345678\",\"to\":\"+4917099999999\",\"text\":\"hi\"}", BIN,
     "duplicate field 'to'"},
    /* unknown fields are found before anything else */
    {P_SMS, "{\"foo\":1}", BIN, "unknown field 'foo'"},

    /* B/call/dial */
    {P_DIAL, "{\"to\":\"+4917012345678\"}", NULL, "to=+4917012345678"},
    {P_DIAL, "{\"id\":1,\"to\":\"+4917012345678\"}", NULL, "to=+4917012345678"},
    {P_DIAL, "{}", BIN, "missing field 'to'"},
    /* national numbers and service codes pass the syntax; calls.allow_to
     * (the call service) decides whether they may be dialled */
    {P_DIAL, "{\"to\":\"110\"}", NULL, "to=110"},
    {P_DIAL, "{\"to\":\"**21*004917012345678#\"}", NULL, "to=**21*004917012345678#"},
    {P_DIAL, "{\"to\":\"+12345678901234567890123456789012\"}", NULL,
     "to=+12345678901234567890123456789012"},
    {P_DIAL, "{\"to\":\"123456789012345678901234567890123\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"+4917012345678;\\r\\nATH\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"+4917012345678;\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"+49170I\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"+49 170\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"++49\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"+\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":\"1\\\"\"}", "invalid_number", DIAL_MSG},
    {P_DIAL, "{\"to\":1}", BIN, NUM_STRING},
    {P_DIAL, "{\"to\":\"+4917012345678\",\"text\":\"x\"}", BIN, "unknown field 'text'"},

    /* B/call/answer, B/call/hangup */
    {P_NONE, "{\"id\":\"x\"}", NULL, "-"},
    {P_NONE, "{\"force\":true}", BIN, "unknown field 'force'"},

    /* B/call/dtmf */
    /* the voice alarm of B/call/dial (json_parse_call_dial checks the fields) */
    {P_DIAL, "{\"to\":\"+4917012345678\",\"play\":\"c:/a.amr\",\"repeat\":2,\"hangup\":false}",
     NULL, "to=+4917012345678"},
    {P_ALARM, "{\"to\":\"+49\"}", NULL, "file=- repeat=1 to_call=1 hangup=1"},
    {P_ALARM, "{\"play\":\"c:/alarm.amr\"}", NULL, "file=c:/alarm.amr repeat=1 to_call=1 hangup=1"},
    {P_ALARM, "{\"play\":\"C:/A_b-9.WAV\",\"repeat\":10,\"hangup\":false}", NULL,
     "file=C:/A_b-9.WAV repeat=10 to_call=1 hangup=0"},
    {P_ALARM, "{\"play\":\"c:/" NAME64 "\"}", NULL, "file=c:/" NAME64 " repeat=1 to_call=1 hangup=1"},
    {P_ALARM, "{\"play\":\"c:/" NAME64 "5\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/..\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/../x\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/.hidden\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/x.\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"d:/x.amr\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"x.amr\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/a\\\",1,0\\r\\nATH\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/a b\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/a;b\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":1}", BIN, "'play' must be a string"},
    {P_ALARM, "{\"play\":\"c:/RING\"}", BIN, FILE_MSG("play")},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":0}", BIN, "'repeat' must be an integer 1-10"},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":11}", BIN, "'repeat' must be an integer 1-10"},
    /* Beyond int: refused before any cast (a cast would be undefined). */
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":3e91}", BIN, "'repeat' must be an integer 1-10"},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":-3e91}", BIN, "'repeat' must be an integer 1-10"},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":1.5}", BIN, "'repeat' must be an integer 1-10"},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"repeat\":\"2\"}", BIN, "'repeat' must be an integer 1-10"},
    {P_ALARM, "{\"play\":\"c:/a.amr\",\"hangup\":1}", BIN, "'hangup' must be true or false"},
    {P_ALARM, "{\"repeat\":2}", BIN, "'repeat' and 'hangup' need 'play'"},
    {P_ALARM, "{\"hangup\":false}", BIN, "'repeat' and 'hangup' need 'play'"},

    /* B/audio/play, record, upload */
    {P_APLAY, "{\"file\":\"c:/x.mp3\"}", NULL, "file=c:/x.mp3 repeat=1 to_call=0 hangup=0"},
    {P_APLAY, "{\"file\":\"c:/x.mp3\",\"repeat\":3,\"to_call\":true}", NULL,
     "file=c:/x.mp3 repeat=3 to_call=1 hangup=0"},
    {P_APLAY, "{}", BIN, "missing field 'file'"},
    {P_APLAY, "{\"file\":\"c:/x.mp3\",\"hangup\":true}", BIN, "unknown field 'hangup'"},
    {P_APLAY, "{\"file\":\"e:/x.mp3\"}", BIN, FILE_MSG("file")},
    {P_APLAY, "{\"file\":\"c:/x.mp3\",\"to_call\":\"yes\"}", BIN,
     "'to_call' must be true or false"},
    {P_AREC, "{\"file\":\"c:/rec.wav\",\"seconds\":600}", NULL, "file=c:/rec.wav seconds=600"},
    {P_AREC, "{\"file\":\"c:/REC.WAV\",\"seconds\":1}", NULL, "file=c:/REC.WAV seconds=1"},
    {P_AREC, "{\"file\":\"c:/rec.amr\",\"seconds\":1}", BIN,
     "'file' must end in .wav (the module records WAV)"},
    {P_AREC, "{\"file\":\"c:/rec.wav\"}", BIN, "missing field 'seconds'"},
    {P_AREC, "{\"file\":\"c:/rec.wav\",\"seconds\":0}", BIN,
     "'seconds' must be an integer 1-600"},
    {P_AREC, "{\"file\":\"c:/rec.wav\",\"seconds\":601}", BIN,
     "'seconds' must be an integer 1-600"},
    {P_AREC, "{\"file\":\"c:/r\\\"c.wav\",\"seconds\":1}", BIN, FILE_MSG("file")},
    {P_AUPLOAD, "{\"file\":\"c:/a.amr\",\"data\":\"DQoAPhob\"}", NULL,
     "file=c:/a.amr len=6 data=0d0a003e1a1b"},
    {P_AUPLOAD, "{\"file\":\"c:/a.amr\",\"data\":\"\"}", BIN, "'data' must not be empty"},
    {P_AUPLOAD, "{\"file\":\"c:/a.amr\",\"data\":\"DQo\"}", BIN,
     "'data' is not valid base64 (RFC 4648, padded)"},
    {P_AUPLOAD, "{\"file\":\"c:/a.amr\",\"data\":\"DQ o=\"}", BIN,
     "'data' is not valid base64 (RFC 4648, padded)"},
    {P_AUPLOAD, "{\"file\":\"c:/a.amr\"}", BIN, "missing field 'data'"},
    {P_AUPLOAD, "{\"file\":\"c:/a b\",\"data\":\"AAAA\"}", BIN, FILE_MSG("file")},

    {P_DTMF, "{\"digits\":\"12#\"}", NULL, "digits=12#"},
    {P_DTMF, "{\"digits\":\"0123456789*#ABCDabcd\"}", NULL, "digits=0123456789*#ABCDabcd"},
    {P_DTMF, "{\"digits\":\"12345678901234567890123456789012\"}", NULL,
     "digits=12345678901234567890123456789012"},
    {P_DTMF, "{\"digits\":\"123456789012345678901234567890123\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":\"\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":\"1\\\"\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":\"1;ATH\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":\"E\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":\"1 2\"}", BIN, DTMF_MSG},
    {P_DTMF, "{\"digits\":12}", BIN, "'digits' must be a string"},
    {P_DTMF, "{}", BIN, "missing field 'digits'"},
    {P_DTMF, "{\"digits\":\"1\",\"duration\":100}", BIN, "unknown field 'duration'"},

    /* B/ussd/send */
    {P_USSD, "{\"code\":\"*100#\"}", NULL, "code=*100#"},
    {P_USSD, "{\"code\":\"1\"}", NULL, "code=1"},
    {P_USSD, "{\"code\":\"*135*+4917012345678#\"}", NULL, "code=*135*+4917012345678#"},
    {P_USSD, "{\"code\":\"\"}", BIN, USSD_MSG},
    {P_USSD, "{\"code\":\"*100#\\\",15\\r\\nAT+CFUN=0\"}", BIN, USSD_MSG},
    {P_USSD, "{\"code\":\"*100#\\u001a\"}", BIN, USSD_MSG},
    {P_USSD, "{\"code\":\"abc\"}", BIN, USSD_MSG},
    {P_USSD, "{\"code\":100}", BIN, "'code' must be a string"},
    {P_USSD, "{}", BIN, "missing field 'code'"},
    {P_USSD, "{\"code\":\"*100#\",\"dcs\":15}", BIN, "unknown field 'dcs'"},

    /* B/remote/publish */
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\"}", NULL, "topic=t payload=p len=1 qos=0 retain=0"},
    {P_PUB, "{\"topic\":\"a/b\",\"payload\":\"x\\r\\ny\",\"qos\":2,\"retain\":true,"
            "\"encoding\":\"utf8\"}",
     NULL, "topic=a/b payload=x\r\ny len=4 qos=2 retain=1"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"aGk=\",\"encoding\":\"base64\"}", NULL,
     "topic=t payload=hi len=2 qos=0 retain=0"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"\",\"encoding\":\"base64\"}", NULL,
     "topic=t payload= len=0 qos=0 retain=0"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"\"}", NULL, "topic=t payload= len=0 qos=0 retain=0"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":1.0}", NULL,
     "topic=t payload=p len=1 qos=1 retain=0"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"aGk\",\"encoding\":\"base64\"}", BIN,
     "'payload' is not valid base64"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"a Gk=\",\"encoding\":\"base64\"}", BIN,
     "'payload' is not valid base64"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"encoding\":\"hex\"}", BIN,
     "'encoding' must be \"utf8\" or \"base64\""},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"encoding\":1}", BIN,
     "'encoding' must be a string"},
    {P_PUB, "{\"topic\":\"a/+\",\"payload\":\"p\"}", BIN, NAME_MSG},
    {P_PUB, "{\"topic\":\"a/#\",\"payload\":\"p\"}", BIN, NAME_MSG},
    {P_PUB, "{\"topic\":\"\",\"payload\":\"p\"}", BIN, EMPTY_MSG},
    {P_PUB, "{\"topic\":\"a\\u0001\",\"payload\":\"p\"}", BIN, CTRL_MSG},
    {P_PUB, "{\"topic\":\"a\\u001f\",\"payload\":\"p\"}", BIN, CTRL_MSG},
    {P_PUB, "{\"topic\":\"a\\u007f\",\"payload\":\"p\"}", BIN, CTRL_MSG},
    {P_PUB, "{\"topic\":\"a\\u0085b\",\"payload\":\"p\"}", BIN, CTRL_MSG},
    {P_PUB, "{\"topic\":\"a\xc2\x9f\",\"payload\":\"p\"}", BIN, CTRL_MSG},
    {P_PUB, "{\"topic\":\"a\\uffff\",\"payload\":\"p\"}", BIN, NONCHAR_MSG},
    {P_PUB, "{\"topic\":\"a\xef\xbf\xbe\",\"payload\":\"p\"}", BIN, NONCHAR_MSG},
    {P_PUB, "{\"topic\":\"a\\ufdd0\",\"payload\":\"p\"}", BIN, NONCHAR_MSG},
    /* the neighbours are fine: U+00A0, U+FFFD, U+FDCF, U+FDF0 */
    {P_PUB, "{\"topic\":\"\\u00a0\\ufffd\\ufdcf\\ufdf0\",\"payload\":\"p\"}", NULL,
     "topic=\xc2\xa0\xef\xbf\xbd\xef\xb7\x8f\xef\xb7\xb0 payload=p len=1 qos=0 retain=0"},
    {P_PUB, "{\"payload\":\"p\"}", BIN, "missing field 'topic'"},
    {P_PUB, "{\"topic\":1,\"payload\":\"p\"}", BIN, "'topic' must be a string"},
    {P_PUB, "{\"topic\":\"t\"}", BIN, "missing field 'payload'"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":{}}", BIN, "'payload' must be a string"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":3}", BIN, QOS_MSG},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":-1}", BIN, QOS_MSG},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":1.5}", BIN, QOS_MSG},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":\"1\"}", BIN, QOS_MSG},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"retain\":\"true\"}", BIN,
     "'retain' must be true or false"},
    {P_PUB, "{\"topic\":\"t\",\"payload\":\"p\",\"dup\":true}", BIN, "unknown field 'dup'"},

    /* B/remote/subscribe */
    {P_SUB, "{\"topic\":\"a/+/#\",\"qos\":1}", NULL, "topic=a/+/# qos=1"},
    {P_SUB, "{\"topic\":\"abc/+\"}", NULL, "topic=abc/+ qos=0"},
    {P_SUB, "{\"topic\":\"#\",\"qos\":2}", NULL, "topic=# qos=2"},
    {P_SUB, "{\"topic\":\"+\"}", NULL, "topic=+ qos=0"},
    {P_SUB, "{\"topic\":\"a/#/b\"}", BIN, FILTER_MSG},
    {P_SUB, "{\"topic\":\"a#\"}", BIN, FILTER_MSG},
    {P_SUB, "{\"topic\":\"a/b+\"}", BIN, FILTER_MSG},
    {P_SUB, "{\"topic\":\"\"}", BIN, EMPTY_MSG},
    {P_SUB, "{\"topic\":\"a/\\u0085/#\"}", BIN, CTRL_MSG},
    {P_SUB, "{\"topic\":\"a/\xc2\x85\"}", BIN, CTRL_MSG},
    {P_SUB, "{\"topic\":\"a\\ufffe\"}", BIN, NONCHAR_MSG},
    {P_SUB, "{\"topic\":\"a\\t\"}", BIN, CTRL_MSG},
    {P_SUB, "{\"topic\":\"a\",\"qos\":5}", BIN, QOS_MSG},
    {P_SUB, "{\"qos\":1}", BIN, "missing field 'topic'"},
    {P_SUB, "{\"topic\":\"a\",\"local\":\"b\"}", BIN, "unknown field 'local'"},

    /* B/remote/unsubscribe */
    {P_UNSUB, "{\"topic\":\"a/#\"}", NULL, "topic=a/#"},
    {P_UNSUB, "{\"topic\":\"a/#/\"}", BIN, FILTER_MSG},
    {P_UNSUB, "{\"topic\":\"a/\\u0085\"}", BIN, CTRL_MSG},
    {P_UNSUB, "{\"topic\":\"a\",\"qos\":1}", BIN, "unknown field 'qos'"},
    {P_UNSUB, "{}", BIN, "missing field 'topic'"},

    /* B/modem/power */
    {P_POWER, "{\"mode\":\"full\"}", NULL, "mode=0"},
    {P_POWER, "{\"mode\":\"min\"}", NULL, "mode=1"},
    {P_POWER, "{\"mode\":\"reset\"}", NULL, "mode=2"},
    {P_POWER, "{\"mode\":\"off\"}", BIN, POWER_MSG},
    {P_POWER, "{\"mode\":\"Full\"}", BIN, POWER_MSG},
    {P_POWER, "{\"mode\":1}", BIN, "'mode' must be a string"},
    {P_POWER, "{}", BIN, "missing field 'mode'"},
    {P_POWER, "{\"mode\":\"min\",\"delay\":5}", BIN, "unknown field 'delay'"},

    /* B/network/select: the mccmnc goes between quotes on the line */
    {P_SELECT, "{\"mode\":\"auto\"}", NULL, "mccmnc=auto"},
    {P_SELECT, "{\"mccmnc\":\"26201\"}", NULL, "mccmnc=26201"},
    {P_SELECT, "{\"mccmnc\":\"310260\"}", NULL, "mccmnc=310260"},
    {P_SELECT, "{\"mccmnc\":\"2620\"}", BIN, MCCMNC_MSG},
    {P_SELECT, "{\"mccmnc\":\"2620111\"}", BIN, MCCMNC_MSG},
    {P_SELECT, "{\"mccmnc\":\"26201\\\"\"}", BIN, MCCMNC_MSG},
    {P_SELECT, "{\"mccmnc\":\"262 1\"}", BIN, MCCMNC_MSG},
    {P_SELECT, "{\"mccmnc\":\"26201\\r\"}", BIN, MCCMNC_MSG},
    {P_SELECT, "{\"mccmnc\":26201}", BIN, "'mccmnc' must be a string"},
    {P_SELECT, "{\"mode\":\"manual\"}", BIN, "'mode' must be \"auto\" (or give 'mccmnc')"},
    {P_SELECT, "{\"mode\":\"auto\",\"mccmnc\":\"26201\"}", BIN,
     "give either 'mode' or 'mccmnc', not both"},
    {P_SELECT, "{}", BIN, "missing field 'mccmnc' (or 'mode':\"auto\")"},
    {P_SELECT, "{\"mccmnc\":\"26201\",\"act\":7}", BIN, "unknown field 'act'"},

    /* B/at/send */
    {P_AT, "{\"command\":\"AT+CSQ\"}", NULL, "command=AT+CSQ"},
    {P_AT, "{\"command\":\"at\"}", NULL, "command=at"},
    {P_AT, "{\"command\":\"AT+COPS=1,2,\\\"26201\\\"\"}", NULL, "command=AT+COPS=1,2,\"26201\""},
    {P_AT, "{\"command\":\"aT+cfun?\"}", NULL, "command=aT+cfun?"},
    {P_AT, "{\"command\":\"AT+CMQTTSUB=0\"}", NULL, "command=AT+CMQTTSUB=0"},
    {P_AT, "{\"command\":\"AT+CMQTTUNSUB=0,0\"}", NULL, "command=AT+CMQTTUNSUB=0,0"},
    {P_AT, "{\"command\":\"AT+CNMA\"}", NULL, "command=AT+CNMA"},
    {P_AT, "{\"command\":\"AT+CMQTTDISC?\"}", NULL, "command=AT+CMQTTDISC?"},
    /* control bytes: each could end, edit or add to the command line */
    {P_AT, "{\"command\":\"ATI\\r\\nAT+CFUN=0\"}", BIN, AT_BYTE_MSG("0D", "3")},
    {P_AT, "{\"command\":\"AT+CSQ\\r\"}", BIN, AT_BYTE_MSG("0D", "6")},
    {P_AT, "{\"command\":\"AT+CMGS=1\\u001a\"}", BIN, AT_BYTE_MSG("1A", "9")},
    {P_AT, "{\"command\":\"AT\\u001b\"}", BIN, AT_BYTE_MSG("1B", "2")},
    {P_AT, "{\"command\":\"AT\\u0007\"}", BIN, AT_BYTE_MSG("07", "2")},
    {P_AT, "{\"command\":\"AT+CFUN=1\\b0\"}", BIN, AT_BYTE_MSG("08", "9")},
    {P_AT, "{\"command\":\"AT+CSQ\\u007f\"}", BIN, AT_BYTE_MSG("7F", "6")},
    {P_AT, "{\"command\":\"AT\\t+CSQ\"}", BIN, AT_BYTE_MSG("09", "2")},
    {P_AT, "{\"command\":\"AT\\u00e9\"}", BIN, AT_BYTE_MSG("C3", "2")},
    {P_AT, "{\"command\":\"AT\\u0085\"}", BIN, AT_BYTE_MSG("C2", "2")},
    {P_AT, "{\"command\":\"CSQ\"}", BIN, AT_START_MSG},
    {P_AT, "{\"command\":\" AT\"}", BIN, AT_START_MSG},
    {P_AT, "{\"command\":\"A\"}", BIN, AT_LEN_MSG},
    {P_AT, "{\"command\":\"\"}", BIN, AT_LEN_MSG},
    /* one command: ';' chains a second one behind the checks */
    {P_AT, "{\"command\":\"AT;+CMGS=10\"}", BIN, AT_SEMI_MSG},
    {P_AT, "{\"command\":\"AT+CSQ;+CFUN=0\"}", BIN, AT_SEMI_MSG},
    {P_AT, "{\"command\":\"ATD+4917012345678;\"}", BIN, AT_SEMI_MSG},
    /* basic commands that leave command mode: a data dial, back online */
    {P_AT, "{\"command\":\"ATD*99#\"}", BIN, AT_MODE_MSG("D")},
    {P_AT, "{\"command\":\"atd0301234567\"}", BIN, AT_MODE_MSG("D")},
    {P_AT, "{\"command\":\"ATO\"}", BIN, AT_MODE_MSG("O")},
    {P_AT, "{\"command\":\"ATE0V1o0\"}", BIN, AT_MODE_MSG("O")},
    {P_AT, "{\"command\":\"AT&D2\"}", NULL, "command=AT&D2"},
    {P_AT, "{\"command\":\"ATE0+COPS?\"}", NULL, "command=ATE0+COPS?"},
    {P_AT, "{\"command\":\"AT+CMGD=1\"}", NULL, "command=AT+CMGD=1"},
    /* prompt commands, anywhere in the line, in any case */
    {P_AT, "{\"command\":\"AT+CMGS=10\"}", BIN, AT_PROMPT_MSG("+CMGS")},
    {P_AT, "{\"command\":\"at+cmgs=\\\"+4917012345678\\\"\"}", BIN, AT_PROMPT_MSG("+CMGS")},
    {P_AT, "{\"command\":\"ATE0+CMGS=10\"}", BIN, AT_PROMPT_MSG("+CMGS")},
    {P_AT, "{\"command\":\"AT+CmGw=10\"}", BIN, AT_PROMPT_MSG("+CMGW")},
    {P_AT, "{\"command\":\"AT+CMGC=10\"}", BIN, AT_PROMPT_MSG("+CMGC")},
    {P_AT, "{\"command\":\"AT+CNMA=0,10\"}", BIN, AT_PROMPT_MSG("+CNMA")},
    {P_AT, "{\"command\":\"AT+CMQTTTOPIC=0,5\"}", BIN, AT_PROMPT_MSG("+CMQTTTOPIC")},
    {P_AT, "{\"command\":\"AT+CMQTTPAYLOAD=0,5\"}", BIN, AT_PROMPT_MSG("+CMQTTPAYLOAD")},
    {P_AT, "{\"command\":\"AT+CMQTTSUBTOPIC=0,5,1\"}", BIN, AT_PROMPT_MSG("+CMQTTSUBTOPIC")},
    {P_AT, "{\"command\":\"AT+CMQTTUNSUBTOPIC=0,5\"}", BIN,
     AT_PROMPT_MSG("+CMQTTUNSUBTOPIC")},
    {P_AT, "{\"command\":\"AT+CMQTTSUB=0,9,1\"}", BIN, AT_PROMPT_MSG("+CMQTTSUB")},
    {P_AT, "{\"command\":\"AT+cmqttsub=0,9,1,0\"}", BIN, AT_PROMPT_MSG("+CMQTTSUB")},
    {P_AT, "{\"command\":\"AT+CMQTTUNSUB=0,9,0\"}", BIN, AT_PROMPT_MSG("+CMQTTUNSUB")},
    {P_AT, "{\"command\":\"AT+CMQTTWILLTOPIC=0,5\"}", BIN, AT_PROMPT_MSG("+CMQTTWILLTOPIC")},
    {P_AT, "{\"command\":\"AT+CMQTTWILLMSG=0,5,1\"}", BIN, AT_PROMPT_MSG("+CMQTTWILLMSG")},
    {P_AT, "{\"command\":\"AT+CCERTDOWN=\\\"ca.pem\\\",100\"}", BIN,
     AT_PROMPT_MSG("+CCERTDOWN")},
    {P_AT, "{\"command\":\"AT+CFTRANRX=\\\"c:/a.txt\\\",10\"}", BIN,
     AT_PROMPT_MSG("+CFTRANRX")},
    {P_AT, "{\"command\":\"AT+HTTPDATA=10,1000\"}", BIN, AT_PROMPT_MSG("+HTTPDATA")},
    {P_AT, "{\"command\":\"AT+CIPSEND=0,10\"}", BIN, AT_PROMPT_MSG("+CIPSEND")},
    {P_AT, "{\"command\":\"AT+CCHSEND=0,10\"}", BIN, AT_PROMPT_MSG("+CCHSEND")},
    {P_AT, "{\"command\":\"AT+CFTPSPUT=\\\"a\\\",10\"}", BIN, AT_PROMPT_MSG("+CFTPSPUT")},
    {P_AT, "{\"command\":\"AT+CSMTPSBODY=10\"}", BIN, AT_PROMPT_MSG("+CSMTPSBODY")},
    {P_AT, "{\"command\":\"AT+CMMSDOWN=\\\"TEXT\\\",10,\\\"a.txt\\\"\"}", BIN,
     AT_PROMPT_MSG("+CMMSDOWN")},
    {P_AT, "{\"command\":[\"AT\"]}", BIN, "'command' must be a string"},
    {P_AT, "{}", BIN, "missing field 'command'"},
    {P_AT, "{\"command\":\"AT\",\"timeout\":1}", BIN, "unknown field 'timeout'"},
};

/* Reports a mismatch and returns false, so one run shows every failing row. */
static bool run_cmd_case(const struct cmd_case *c, size_t len)
{
    bool ok = true;
    struct m2m_error err;
    const cJSON *id = (const cJSON *)1;
    char got[512] = "";

    memset(&err, 0x55, sizeof err);
    cJSON *root = json_parse_command((const uint8_t *)c->payload, len, &id, &err);
    int rc = root ? run_parser(c->parser, root, got, sizeof got, &err) : -1;
    if (!root)
        assert_null(id);

    if (!c->code) {
        if (rc != 0) {
            print_error("payload %s: rejected: %s %s\n", c->payload, err.code, err.message);
            ok = false;
        } else if (strcmp(got, c->message) != 0) {
            print_error("payload %s: got \"%s\", expected \"%s\"\n", c->payload, got,
                        c->message);
            ok = false;
        }
    } else if (rc == 0) {
        print_error("payload %s: accepted (%s), expected %s\n", c->payload, got, c->code);
        ok = false;
    } else if (strcmp(err.code, c->code) != 0 || strcmp(err.message, c->message) != 0 ||
               err.cme != -1 || err.cms != -1) {
        print_error("payload %s: got %s \"%s\", expected %s \"%s\"\n", c->payload, err.code,
                    err.message, c->code, c->message);
        ok = false;
    }
    cJSON_Delete(root);
    return ok;
}

static void test_commands(void **state)
{
    (void)state;
    size_t failed = 0;
    for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++)
        failed += !run_cmd_case(&cmd_cases[i], strlen(cmd_cases[i].payload));
    assert_int_equal(failed, 0);
}

/* A payload is not NUL-terminated: only len bytes are read. */
static void test_command_not_terminated(void **state)
{
    (void)state;
    const char buf[] = "{\"to\":\"+4917012345678\",\"text\":\"hi\"}GARBAGE";
    size_t len = strlen("{\"to\":\"+4917012345678\",\"text\":\"hi\"}");
    char *copy = malloc(len); /* no terminator: ASan sees any overread */
    assert_non_null(copy);
    memcpy(copy, buf, len);
    const cJSON *id;
    struct m2m_error err;
    cJSON *root = json_parse_command((const uint8_t *)copy, len, &id, &err);
    assert_non_null(root);
    struct sms_send_req req;
    assert_int_equal(json_parse_sms_send(root, &req, &err), 0);
    assert_string_equal(req.text, "hi");
    cJSON_Delete(root);
    free(copy);

    /* A NUL byte inside the payload is refused, not cut. */
    const char nul[] = "{\"text\":\"a\0b\"}";
    root = json_parse_command((const uint8_t *)nul, sizeof nul - 1, &id, &err);
    assert_null(root);
    assert_string_equal(err.code, "invalid_json");
    assert_string_equal(err.message, "NUL byte in payload (byte 10)");
}

static void test_command_ids(void **state)
{
    (void)state;
    static const struct { const char *payload; int type; const char *printed; } cases[] = {
        {"{\"id\":\"42\"}", cJSON_String, "\"42\""},
        {"{\"id\":\"\"}", cJSON_String, "\"\""},
        {"{\"id\":42}", cJSON_Number, "42"},
        {"{\"id\":-7}", cJSON_Number, "-7"},
        {"{\"id\":1.5}", cJSON_Number, "1.5"},
        {"{\"id\":12345678901}", cJSON_Number, "12345678901"},
        {"{\"id\":\"caf\\u00e9\"}", cJSON_String, "\"caf\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cJSON *id = NULL;
        struct m2m_error err;
        cJSON *root = json_parse_command((const uint8_t *)cases[i].payload,
                                         strlen(cases[i].payload), &id, &err);
        assert_non_null(root);
        assert_non_null(id);
        assert_int_equal(id->type & 0xFF, cases[i].type);
        char *res = json_result(id, NULL, NULL);
        char want[128];
        snprintf(want, sizeof want, "{\"id\":%s,\"ok\":true}", cases[i].printed);
        assert_string_equal(res, want);
        free(res);
        cJSON_Delete(root);
    }
}

static void test_command_too_long(void **state)
{
    (void)state;
    const cJSON *id;
    struct m2m_error err;

    /* Exactly the limit is parsed; one more byte is too_long. */
    size_t n = JSON_PAYLOAD_MAX;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memset(buf, ' ', n + 1);
    buf[0] = '{';
    buf[n - 1] = '}';
    cJSON *root = json_parse_command((const uint8_t *)buf, n, &id, &err);
    assert_non_null(root);
    cJSON_Delete(root);
    buf[n - 1] = ' ';
    buf[n] = '}';
    root = json_parse_command((const uint8_t *)buf, n + 1, &id, &err);
    assert_null(root);
    assert_string_equal(err.code, "too_long");
    assert_string_equal(err.message, "payload larger than 65536 bytes");
    free(buf);
}

/* The remote limits: topic 1024 bytes, payload 10240 (decoded). */
static void test_remote_limits(void **state)
{
    (void)state;
    static const struct { size_t topic, payload; bool b64; const char *code, *msg; } cases[] = {
        {1024, 10240, false, NULL, NULL},
        {1025, 1, false, "too_long", "'topic' is longer than 1024 bytes"},
        {1, 10241, false, "too_long", "'payload' is longer than 10240 bytes"},
        {1, 10239, true, NULL, NULL},       /* 10239 is a multiple of 3 */
        {1, 10242, true, "too_long", "'payload' is longer than 10240 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t plen = cases[i].b64 ? (cases[i].payload + 2) / 3 * 4 : cases[i].payload;
        size_t size = cases[i].topic + plen + 128;
        char *buf = malloc(size);
        assert_non_null(buf);
        int n = snprintf(buf, size, "{\"topic\":\"%*s\",\"payload\":\"%*s\",\"encoding\":\"%s\"}",
                         (int)cases[i].topic, "", (int)plen, "",
                         cases[i].b64 ? "base64" : "utf8");
        /* spaces are a valid topic; "AAAA" groups are valid base64 */
        char *t = buf + strlen("{\"topic\":\"");
        memset(t, 't', cases[i].topic);
        char *p = t + cases[i].topic + strlen("\",\"payload\":\"");
        memset(p, 'A', plen);
        const cJSON *id;
        struct m2m_error err;
        cJSON *root = json_parse_command((const uint8_t *)buf, (size_t)n, &id, &err);
        assert_non_null(root);
        struct remote_publish_req req;
        int rc = json_parse_remote_publish(root, &req, &err);
        if (!cases[i].code) {
            assert_int_equal(rc, 0);
            assert_int_equal(req.payload_len, cases[i].payload);
            json_remote_publish_clear(&req);
        } else {
            assert_int_not_equal(rc, 0);
            assert_string_equal(err.code, cases[i].code);
            assert_string_equal(err.message, cases[i].msg);
        }
        cJSON_Delete(root);
        free(buf);
    }

    /* Topic length is checked for subscribe too. */
    char sub[1200];
    snprintf(sub, sizeof sub, "{\"topic\":\"%01025d\"}", 0);
    const cJSON *id;
    struct m2m_error err;
    cJSON *root = json_parse_command((const uint8_t *)sub, strlen(sub), &id, &err);
    const char *topic;
    int qos;
    assert_int_not_equal(json_parse_remote_subscribe(root, &topic, &qos, &err), 0);
    assert_string_equal(err.code, "too_long");
    cJSON_Delete(root);
}

/* Thousands of duplicate fields: found in one pass. */
static void test_check_fields_many(void **state)
{
    (void)state;
    size_t n = 6000, size = n * 8 + 16;
    char *buf = malloc(size);
    assert_non_null(buf);
    size_t len = 0;
    buf[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s\"to\":1", i ? "," : "");
    buf[len++] = '}';
    const cJSON *id;
    struct m2m_error err;
    cJSON *root = json_parse_command((const uint8_t *)buf, len, &id, &err);
    assert_non_null(root);
    static const char *const allowed[] = {"to", NULL};
    assert_int_equal(json_check_fields(root, allowed, &err), -EINVAL);
    assert_string_equal(err.message, "duplicate field 'to'");
    cJSON_Delete(root);
    free(buf);
}

/* ---- E.164 and topics ---------------------------------------------------- */

static void test_e164(void **state)
{
    (void)state;
    static const struct { const char *s; bool ok; } cases[] = {
        {"+4917012345678", true}, {"+1234567", true}, {"+123456789012345", true},
        {"+123456", false},       {"+1234567890123456", false}, {"4917012345678", false},
        {"+04917012345678", false}, {"+49170123456a8", false}, {"+49 17012345678", false},
        {"", false},              {"+", false},                 {"++4917012345678", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (json_is_e164(cases[i].s) != cases[i].ok)
            fail_msg("json_is_e164(%s) != %d", cases[i].s ? cases[i].s : "NULL", cases[i].ok);
}

static void test_topics(void **state)
{
    (void)state;
    static const struct { const char *t; bool name, filter; } cases[] = {
        {"a", true, true},       {"a/b/c", true, true},   {"/a", true, true},
        {"a/", true, true},      {"a//b", true, true},    {"$SYS/x", true, true},
        {"+", false, true},      {"#", false, true},      {"a/+/c", false, true},
        {"a/#", false, true},    {"+/+", false, true},    {"a/+/#", false, true},
        {"a#", false, false},    {"a/#/b", false, false}, {"a/b+", false, false},
        {"+a", false, false},    {"##", false, false},    {"", false, false},
        {"a\tb", false, false},  {"a\x7f", false, false}, {"\xff", false, false},
        {"caf\xc3\xa9", true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].t);
        if (json_topic_valid(cases[i].t, n, false) != cases[i].name)
            fail_msg("name %s", cases[i].t);
        if (json_topic_valid(cases[i].t, n, true) != cases[i].filter)
            fail_msg("filter %s", cases[i].t);
    }
    assert_false(json_topic_valid(NULL, 0, true));
    /* length, not the terminator, decides */
    assert_true(json_topic_valid("a/b#", 3, false));
}

/* ---- results -------------------------------------------------------------- */

static const cJSON *parse_id(cJSON **holder, const char *payload)
{
    const cJSON *id = NULL;
    struct m2m_error err;
    *holder = json_parse_command((const uint8_t *)payload, strlen(payload), &id, &err);
    assert_non_null(*holder);
    return id;
}

static void expect_result(const cJSON *id, cJSON *data, const struct m2m_error *err,
                          const char *want)
{
    char *got = json_result(id, data, err);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_result(void **state)
{
    (void)state;
    cJSON *h1, *h2, *h3;
    const cJSON *sid = parse_id(&h1, "{\"id\":\"42\"}");
    const cJSON *nid = parse_id(&h2, "{\"id\":42}");
    const cJSON *fid = parse_id(&h3, "{\"id\":0.25}");
    struct m2m_error err;

    expect_result(sid, NULL, NULL, "{\"id\":\"42\",\"ok\":true}");
    expect_result(nid, NULL, NULL, "{\"id\":42,\"ok\":true}");
    expect_result(fid, NULL, NULL, "{\"id\":0.25,\"ok\":true}");
    expect_result(NULL, NULL, NULL, "{\"ok\":true}");

    /* sms/send data, members in order after "ok" */
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "parts", 2);
    cJSON *refs = cJSON_AddArrayToObject(data, "references");
    cJSON_AddItemToArray(refs, cJSON_CreateNumber(17));
    cJSON_AddItemToArray(refs, cJSON_CreateNumber(18));
    expect_result(sid, data, NULL, "{\"id\":\"42\",\"ok\":true,\"parts\":2,\"references\":[17,18]}");

    /* ussd/send and at/send data */
    data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "text", "Balance: 5.00 \xe2\x82\xac");
    cJSON_AddNumberToObject(data, "status", 0);
    expect_result(nid, data, NULL,
                  "{\"id\":42,\"ok\":true,\"text\":\"Balance: 5.00 \xe2\x82\xac\",\"status\":0}");
    data = cJSON_CreateObject();
    cJSON *lines = cJSON_AddArrayToObject(data, "response");
    cJSON_AddItemToArray(lines, cJSON_CreateString("+CSQ: 14,99"));
    expect_result(NULL, data, NULL, "{\"ok\":true,\"response\":[\"+CSQ: 14,99\"]}");

    /* the contract's error examples */
    m2m_error_set(&err, "invalid_number", "'to' must be E.164, e.g. +4917012345678");
    expect_result(sid, NULL, &err,
                  "{\"id\":\"42\",\"ok\":false,\"error\":{\"code\":\"invalid_number\","
                  "\"message\":\"'to' must be E.164, e.g. +4917012345678\"}}");
    m2m_error_set(&err, "modem_error", "no network service");
    err.cms = 331;
    expect_result(NULL, NULL, &err,
                  "{\"ok\":false,\"error\":{\"code\":\"modem_error\",\"cms\":331,"
                  "\"message\":\"no network service\"}}");
    m2m_error_set(&err, "modem_error", "SIM busy");
    err.cme = 14;
    expect_result(nid, NULL, &err,
                  "{\"id\":42,\"ok\":false,\"error\":{\"code\":\"modem_error\",\"cme\":14,"
                  "\"message\":\"SIM busy\"}}");
    m2m_error_set(&err, "modem_error", "x");
    err.cme = 0; /* 0 is a code, not "absent" */
    expect_result(NULL, NULL, &err,
                  "{\"ok\":false,\"error\":{\"code\":\"modem_error\",\"cme\":0,\"message\":\"x\"}}");

    /* data goes before the error */
    data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "parts", 1);
    m2m_error_set(&err, "timeout", "no answer in %d s", 40);
    expect_result(sid, data, &err,
                  "{\"id\":\"42\",\"ok\":false,\"parts\":1,\"error\":{\"code\":\"timeout\","
                  "\"message\":\"no answer in 40 s\"}}");

    /* escaping, and bytes that are not UTF-8 (a modem's text) */
    data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "text", "a\"b\\c\n\x01\xf3\x85\xc3");
    expect_result(NULL, data, NULL,
                  "{\"ok\":true,\"text\":\"a\\\"b\\\\c\\n\\u0001\xc3\xb3\xef\xbf\xbd\xc3\x83\"}");
    m2m_error_set(&err, "modem_error", "bad \xff byte");
    expect_result(NULL, NULL, &err,
                  "{\"ok\":false,\"error\":{\"code\":\"modem_error\",\"message\":\"bad ? byte\"}}");

    cJSON_Delete(h1);
    cJSON_Delete(h2);
    cJSON_Delete(h3);
}

static void test_error_set(void **state)
{
    (void)state;
    struct m2m_error err;
    char longtext[300];

    memset(&err, 0, sizeof err);
    m2m_error_set(&err, "busy", "a call is %s", "active");
    assert_string_equal(err.code, "busy");
    assert_string_equal(err.message, "a call is active");
    assert_int_equal(err.cme, -1);
    assert_int_equal(err.cms, -1);

    /* cut inside "é": the half character becomes '?' */
    memset(longtext, 'a', 198);
    memcpy(longtext + 198, "\xc3\xa9zz", 5);
    m2m_error_set(&err, "modem_error", "%s", longtext);
    assert_int_equal(strlen(err.message), 199);
    assert_int_equal(err.message[198], '?');

    m2m_error_set(NULL, "x", "nothing happens");
}

/* ---- events ------------------------------------------------------------- */

static void test_sms_received(void **state)
{
    (void)state;
    static const unsigned missing[] = {2, 3};
    static const struct {
        struct sms_received m;
        const char *want;
    } cases[] = {
        {{"+4917012345678", "+491710760000", "2026-11-21T06:00:00+01:00", PDU_GSM7,
          (const uint8_t *)"hi", 2, 1, NULL, 0},
         "{\"from\":\"+4917012345678\",\"text\":\"hi\",\"time\":\"2026-11-21T06:00:00+01:00\","
         "\"smsc\":\"+491710760000\",\"parts\":1}"},
        /* UCS-2 U+0000 decodes to a NUL byte: kept, as \u0000 */
        {{"+4917012345678", "+491710760000", "2026-11-21T06:00:00+01:00", PDU_UCS2,
          (const uint8_t *)"a\0b", 3, 1, NULL, 0},
         "{\"from\":\"+4917012345678\",\"text\":\"a\\u0000b\",\"time\":\"2026-11-21T06:00:00+01:00\","
         "\"smsc\":\"+491710760000\",\"parts\":1}"},
        /* GSM '@' is 0x00 on the air but "@" in UTF-8 */
        {{"+4917012345678", "", "", PDU_GSM7, (const uint8_t *)"@ \"q\" \\ \r\n\t\x1b\xe2\x82\xac",
          15, 1, NULL, 0},
         "{\"from\":\"+4917012345678\",\"text\":\"@ \\\"q\\\" \\\\ \\r\\n\\t\\u001b\xe2\x82\xac\","
         "\"time\":null,\"smsc\":null,\"parts\":1}"},
        {{"Vodafone", NULL, NULL, PDU_GSM7, (const uint8_t *)"x\xff\x80", 3, 1, NULL, 0},
         "{\"from\":\"Vodafone\",\"text\":\"x\xc3\xbf\xef\xbf\xbd\",\"time\":null,\"smsc\":null,"
         "\"parts\":1}"},
        {{"+4917012345678", "+491710760000", "2026-11-21T06:00:00+01:00", PDU_8BIT,
          (const uint8_t *)"\x00\xff\x10", 3, 1, NULL, 0},
         "{\"from\":\"+4917012345678\",\"text\":\"AP8Q\",\"time\":\"2026-11-21T06:00:00+01:00\","
         "\"smsc\":\"+491710760000\",\"parts\":1,\"encoding\":\"base64\"}"},
        {{"+4917012345678", "+491710760000", "2026-11-21T06:00:00+01:00", PDU_GSM7,
          (const uint8_t *)"part one", 8, 3, missing, 2},
         "{\"from\":\"+4917012345678\",\"text\":\"part one\","
         "\"time\":\"2026-11-21T06:00:00+01:00\",\"smsc\":\"+491710760000\",\"parts\":3,"
         "\"parts_missing\":[2,3]}"},
        {{NULL, NULL, NULL, PDU_8BIT, NULL, 0, 2, missing, 1},
         "{\"from\":null,\"text\":\"\",\"time\":null,\"smsc\":null,\"parts\":2,"
         "\"encoding\":\"base64\",\"parts_missing\":[2]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = json_sms_received(&cases[i].m);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        /* and cJSON reads it back */
        cJSON *back = cJSON_Parse(got);
        assert_non_null(back);
        cJSON_Delete(back);
        free(got);
    }
}

static void test_sms_report(void **state)
{
    static const struct {
        uint8_t st;
        const char *status;
    } classes[] = {
        { 0x00, "delivered" }, { 0x02, "delivered" }, { 0x1F, "delivered" },
        { 0x20, "pending" },   { 0x21, "pending" },   { 0x3F, "pending" },
        { 0x40, "failed" },    { 0x46, "failed" },    { 0x60, "failed" },
        { 0x7F, "failed" },    { 0x80, "failed" },    { 0xFF, "failed" },
    };
    static const struct {
        struct sms_report r;
        const char *want;
    } cases[] = {
        { { 77, "+4917012345678", 0x00, "2026-03-14T09:26:58+01:00",
            "2026-03-14T09:26:53+01:00", "\"s-1\"", 2, 3 },
          "{\"reference\":77,\"to\":\"+4917012345678\",\"status\":\"delivered\",\"st\":0,"
          "\"time\":\"2026-03-14T09:26:58+01:00\",\"submitted\":\"2026-03-14T09:26:53+01:00\","
          "\"id\":\"s-1\",\"part\":2,\"parts\":3}" },
        { { 3, "+4917012345678", 0x46, "2026-11-21T06:00:00+01:00", "", "42", 1, 1 },
          "{\"reference\":3,\"to\":\"+4917012345678\",\"status\":\"failed\",\"st\":70,"
          "\"time\":\"2026-11-21T06:00:00+01:00\",\"submitted\":null,\"id\":42,\"part\":1,"
          "\"parts\":1}" },
        /* Not an SMS the bridge knows: id, part and parts null. */
        { { 0, "0170\"1", 0x21, NULL, NULL, NULL, 0, 0 },
          "{\"reference\":0,\"to\":\"0170\\\"1\",\"status\":\"pending\",\"st\":33,\"time\":null,"
          "\"submitted\":null,\"id\":null,\"part\":null,\"parts\":null}" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        assert_string_equal(json_report_status(classes[i].st), classes[i].status);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = json_sms_report(&cases[i].r);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void test_remote_message(void **state)
{
    (void)state;
    static const struct {
        const char *topic;
        const char *payload;
        size_t len;
        int qos;
        const char *want;
    } cases[] = {
        {"abc/1", "21.5", 4, 1,
         "{\"topic\":\"abc/1\",\"payload\":\"21.5\",\"encoding\":\"utf8\",\"qos\":1}"},
        {"abc/1", "", 0, 0, "{\"topic\":\"abc/1\",\"payload\":\"\",\"encoding\":\"utf8\",\"qos\":0}"},
        {"t", "{\"a\":\"\xc3\xa9\"}\n", 11, 2,
         "{\"topic\":\"t\",\"payload\":\"{\\\"a\\\":\\\"\xc3\xa9\\\"}\\n\",\"encoding\":\"utf8\","
         "\"qos\":2}"},
        {"t", "a\0b", 3, 1, "{\"topic\":\"t\",\"payload\":\"YQBi\",\"encoding\":\"base64\",\"qos\":1}"},
        {"t", "\xff\xfe", 2, 0, "{\"topic\":\"t\",\"payload\":\"//4=\",\"encoding\":\"base64\",\"qos\":0}"},
        {"t\xff", "x", 1, 0,
         "{\"topic\":\"t\xc3\xbf\",\"payload\":\"x\",\"encoding\":\"utf8\",\"qos\":0}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = json_remote_message(cases[i].topic, strlen(cases[i].topic),
                                        (const uint8_t *)cases[i].payload, cases[i].len,
                                        cases[i].qos);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void test_event_error(void **state)
{
    (void)state;
    char *s = json_event_error("modem_error", "undecodable PDU", "pdu", "0791AB");
    assert_string_equal(s, "{\"code\":\"modem_error\",\"message\":\"undecodable PDU\",\"pdu\":\"0791AB\"}");
    free(s);
    s = json_event_error("unavailable", "modem \"gone\"\xff\x9f", NULL, NULL);
    assert_string_equal(s, "{\"code\":\"unavailable\",\"message\":\"modem \\\"gone\\\"\xc3\xbf\xef\xbf\xbd\"}");
    free(s);
}

/* B/status as the instance fills it: ready with everything known; not
 * ready (nulls); a CSQ without a level (99: dbm and percent null) and a
 * cell without its id; the remote session's error only when there is
 * one. */
static void test_status(void **state)
{
    (void)state;
    struct json_status ready = {
        .state = "ready", .sim = "ready", .registration = "home",
        .operator_name = "Telekom \xe9", .access = "LTE", .lac = "1A2B", .ci = "01C2D3E4",
        .csq = 20, .dbm = -73,
        .percent = 65, .storage_used = 3, .storage_total = 30, .voltage_mv = 3978,
        .remote = "connected",
    };
    char *s = json_status(&ready);
    assert_string_equal(s, "{\"state\":\"ready\",\"sim\":\"ready\",\"registration\":\"home\","
                           "\"operator\":\"Telekom \xc3\xa9\",\"access\":\"LTE\","
                           "\"cell\":{\"lac\":\"1A2B\",\"ci\":\"01C2D3E4\"},"
                           "\"signal\":{\"csq\":20,\"dbm\":-73,\"percent\":65},"
                           "\"storage\":{\"used\":3,\"total\":30},\"voltage_mv\":3978,"
                           "\"remote\":\"connected\"}");
    free(s);
    struct json_status starting = {
        .state = "starting", .sim = "unknown", .registration = "unknown", .csq = -1,
        .percent = -1, .remote = "disconnected", .remote_error = "connection refused (5)",
    };
    s = json_status(&starting);
    assert_string_equal(s, "{\"state\":\"starting\",\"sim\":\"unknown\",\"registration\":"
                           "\"unknown\",\"operator\":null,\"access\":null,\"cell\":null,"
                           "\"signal\":{\"csq\":null,\"dbm\":null,\"percent\":null},"
                           "\"storage\":{\"used\":null,\"total\":null},\"voltage_mv\":null,"
                           "\"remote\":\"disconnected\",\"remote_error\":\"connection refused (5)\"}");
    free(s);
    struct json_status no_level = ready;
    no_level.csq = 99;
    no_level.percent = -1;
    no_level.operator_name = "";
    no_level.ci = "";             /* half a cell is none */
    s = json_status(&no_level);
    assert_non_null(strstr(s, "\"operator\":null,"));
    assert_non_null(strstr(s, "\"cell\":null,"));
    assert_non_null(strstr(s, "\"signal\":{\"csq\":99,\"dbm\":null,\"percent\":null}"));
    free(s);
}

/* B/info and B/call/ring: strings in order, NULL or "" as null, module
 * text that is not UTF-8 repaired. */
static void test_strings(void **state)
{
    (void)state;
    const struct json_member info[] = {
        { "manufacturer", "SIMCOM INCORPORATED" }, { "model", "A7670E" },
        { "imsi", "" }, { "number", NULL },
    };
    char *s = json_strings(info, 4);
    assert_string_equal(s, "{\"manufacturer\":\"SIMCOM INCORPORATED\",\"model\":\"A7670E\","
                           "\"imsi\":null,\"number\":null}");
    free(s);
    const struct json_member ring[] = { { "from", "+49\"1\xff" } };
    s = json_strings(ring, 1);
    assert_string_equal(s, "{\"from\":\"+49\\\"1\xc3\xbf\"}");
    free(s);
    s = json_strings(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
}

/* B/call/state: null for what is unknown, duration only once idle. */
static void test_call_state(void **state)
{
    struct call_state st = { .state = CALL_IDLE, .dir = CALL_DIR_OUT, .since = 1795237200,
                             .ended = CALL_END_BUSY, .duration = 0 };
    char *j;

    (void)state;
    setenv("TZ", "CET-1", 1);
    tzset();
    snprintf(st.number, sizeof(st.number), "+491701234567");
    j = json_call_state(&st);
    assert_string_equal(j, "{\"state\":\"idle\",\"direction\":\"out\",\"number\":\"+491701234567\","
                           "\"since\":\"2026-11-21T06:00:00+01:00\",\"ended_reason\":\"busy\","
                           "\"duration\":0,\"playing\":false}");
    free(j);
    st = (struct call_state){ .state = CALL_RINGING, .dir = CALL_DIR_IN, .since = 1795237200,
                              .duration = -1 };
    j = json_call_state(&st);
    assert_string_equal(j, "{\"state\":\"ringing\",\"direction\":\"in\",\"number\":null,"
                           "\"since\":\"2026-11-21T06:00:00+01:00\",\"ended_reason\":null,"
                           "\"playing\":false}");
    free(j);
    st = (struct call_state){ .duration = -1, .since = 1795237200 };
    j = json_call_state(&st);
    assert_string_equal(j, "{\"state\":\"idle\",\"direction\":null,\"number\":null,"
                           "\"since\":\"2026-11-21T06:00:00+01:00\",\"ended_reason\":null,"
                           "\"playing\":false}");
    free(j);
    /* A voice alarm plays into the call. */
    st = (struct call_state){ .state = CALL_ACTIVE, .dir = CALL_DIR_OUT, .since = 1795237200,
                              .duration = -1, .playing = true };
    j = json_call_state(&st);
    assert_string_equal(j, "{\"state\":\"active\",\"direction\":\"out\",\"number\":null,"
                           "\"since\":\"2026-11-21T06:00:00+01:00\",\"ended_reason\":null,"
                           "\"playing\":true}");
    free(j);
}

/* B/audio/state: the file null when idle or not known. */
static void test_audio_state(void **state)
{
    static const struct { const char *st, *file, *want; } cases[] = {
        { "playing", "c:/alarm.amr", "{\"state\":\"playing\",\"file\":\"c:/alarm.amr\"}" },
        { "recording", "c:/r.wav", "{\"state\":\"recording\",\"file\":\"c:/r.wav\"}" },
        { "playing", "", "{\"state\":\"playing\",\"file\":null}" },
        { "idle", NULL, "{\"state\":\"idle\",\"file\":null}" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *j = json_audio_state(cases[i].st, cases[i].file);
        assert_string_equal(j, cases[i].want);
        free(j);
    }
}

/* ---- base64 --------------------------------------------------------------- */

static void test_base64_rfc4648(void **state)
{
    (void)state;
    /* RFC 4648 section 10 */
    static const char *const vectors[][2] = {
        {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *plain = vectors[i][0], *enc = vectors[i][1];
        char *got = json_base64_encode((const uint8_t *)plain, strlen(plain));
        assert_string_equal(got, enc);
        free(got);
        uint8_t *dec = NULL;
        size_t n = 99;
        assert_int_equal(json_base64_decode(enc, strlen(enc), &dec, &n), 0);
        assert_non_null(dec);
        assert_int_equal(n, strlen(plain));
        assert_memory_equal(dec, plain, n);
        free(dec);
    }
    char *e = json_base64_encode(NULL, 0);
    assert_string_equal(e, "");
    free(e);
}

static void test_base64_binary(void **state)
{
    (void)state;
    uint8_t all[256];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 0; len <= sizeof all; len++) {
        char *enc = json_base64_encode(all, len);
        assert_non_null(enc);
        assert_int_equal(strlen(enc), (len + 2) / 3 * 4);
        uint8_t *dec;
        size_t n;
        assert_int_equal(json_base64_decode(enc, strlen(enc), &dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, all, len);
        free(dec);
        free(enc);
    }
    char *enc = json_base64_encode((const uint8_t *)"\xfb\xff\xbf", 3);
    assert_string_equal(enc, "+/+/");
    free(enc);
}

static void test_base64_reject(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",        "Zg=",      "Zm9vY",    "Zh==",     "Zm9=",     "Z===",
        "====",      "Zg==Zg==", "Zm9v\n",   "Zm 9v",    "Zm-_",     "Zm9v====",
        "=Zm9",      "Zm=v",     "\xc3\xa9xx", "Zm9\0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *out = (uint8_t *)1;
        size_t n = 99;
        size_t len = strcmp(bad[i], "Zm9") == 0 ? 4 : strlen(bad[i]);
        if (json_base64_decode(bad[i], len, &out, &n) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_null(out);
        assert_int_equal(n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_command_not_terminated),
        cmocka_unit_test(test_command_ids),
        cmocka_unit_test(test_command_too_long),
        cmocka_unit_test(test_remote_limits),
        cmocka_unit_test(test_check_fields_many),
        cmocka_unit_test(test_e164),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_error_set),
        cmocka_unit_test(test_sms_received),
        cmocka_unit_test(test_sms_report),
        cmocka_unit_test(test_remote_message),
        cmocka_unit_test(test_event_error),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_call_state),
        cmocka_unit_test(test_audio_state),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_binary),
        cmocka_unit_test(test_base64_reject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
