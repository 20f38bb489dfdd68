/* The command parsers of the JSON codec (json.c lists its files): the
 * field getters and one json_parse_* per command, each checking its
 * payload's fields with json_check_fields first and every value before
 * the caller may act on it; the checks that keep a value from ending or
 * adding an AT command live here. The payload's own checks
 * (json_parse_command) and base64 are json.c's. */
#include "mqtt/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/topic.h"
#include "modem/network.h"
#include "modem/audio.h"
#include "modem/sms.h"

/* %s: the field ("to", "to[2]"). */
#define INVALID_NUMBER_FMT                                                                   \
    "'%s' must be E.164, e.g. +4917012345678, or a national number or short code of 2-20 " \
    "digits"

bool json_is_e164(const char *s)
{
    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return false;
    return n >= 7 && n <= 15;
}

/* Field getters: absent leaves *out as it is (the default) unless required. */

static const cJSON *field(const cJSON *root, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(root, name);
}

static int get_string(const cJSON *root, const char *name, bool required, const char **out,
                      struct m2m_error *err)
{
    const cJSON *it = field(root, name);
    if (!it) {
        if (!required)
            return 0;
        m2m_error_set(err, "invalid_request", "missing field '%s'", name);
        return -EINVAL;
    }
    if (!cJSON_IsString(it)) {
        m2m_error_set(err, "invalid_request", "'%s' must be a string", name);
        return -EINVAL;
    }
    *out = it->valuestring;
    return 0;
}

static int get_bool(const cJSON *root, const char *name, bool *out, struct m2m_error *err)
{
    const cJSON *it = field(root, name);
    if (!it)
        return 0;
    if (!cJSON_IsBool(it)) {
        m2m_error_set(err, "invalid_request", "'%s' must be true or false", name);
        return -EINVAL;
    }
    *out = cJSON_IsTrue(it);
    return 0;
}

static int get_qos(const cJSON *root, int *out, struct m2m_error *err)
{
    const cJSON *it = field(root, "qos");
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) ||
        (it->valuedouble != 0 && it->valuedouble != 1 && it->valuedouble != 2)) {
        m2m_error_set(err, "invalid_request", "'qos' must be 0, 1 or 2");
        return -EINVAL;
    }
    *out = (int)it->valuedouble;
    return 0;
}

/* Every character of s in set, length min..max. */
static bool only_chars(const char *s, const char *set, size_t min, size_t max)
{
    size_t n = strlen(s);
    return n >= min && n <= max && strspn(s, set) == n;
}

bool json_is_sms_number(const char *s)
{
    return json_is_e164(s) || (s && s[0] != '+' && only_chars(s, "0123456789", 2, 20));
}

/* One recipient: a string (invalid_request) that json_is_sms_number
 * accepts (invalid_number). name: "to" or "to[i]". */
static int get_recipient(const cJSON *it, const char *name, const char **to,
                         struct m2m_error *err)
{
    if (!cJSON_IsString(it)) {
        m2m_error_set(err, "invalid_request", "'%s' must be a string, e.g. \"+4917012345678\"",
                      name);
        return -EINVAL;
    }
    if (!json_is_sms_number(it->valuestring)) {
        m2m_error_set(err, "invalid_number", INVALID_NUMBER_FMT, name);
        return -EINVAL;
    }
    *to = it->valuestring;
    return 0;
}

/* "to": one number, or an array of 1-SMS_RECIPIENTS_MAX distinct
 * ones. Any bad entry refuses the whole request: a list is checked
 * before anything is sent. The same number twice is refused too: it
 * would get the SMS twice, and its two results could not be told apart. */
static int get_recipients(const cJSON *root, struct sms_send_req *req, struct m2m_error *err)
{
    const cJSON *it = field(root, "to");
    char name[16];
    size_t n = 0;

    if (!it) {
        m2m_error_set(err, "invalid_request", "missing field 'to'");
        return -EINVAL;
    }
    if (cJSON_IsString(it)) {
        if (get_recipient(it, "to", &req->recipients[0], err) < 0)
            return -EINVAL;
        req->n_recipients = 1;
        req->to = req->recipients[0];
        return 0;
    }
    if (!cJSON_IsArray(it)) {
        m2m_error_set(err, "invalid_request",
                      "'to' must be a string, e.g. \"+4917012345678\", or an array of 1-%d of "
                      "them",
                      SMS_RECIPIENTS_MAX);
        return -EINVAL;
    }
    for (const cJSON *e = it->child; e; e = e->next)
        n++;
    if (n == 0 || n > SMS_RECIPIENTS_MAX) {
        m2m_error_set(err, "invalid_request", "'to' must list 1-%d numbers, not %zu",
                      SMS_RECIPIENTS_MAX, n);
        return -EINVAL;
    }
    n = 0;
    for (const cJSON *e = it->child; e; e = e->next, n++) {
        snprintf(name, sizeof name, "to[%zu]", n);
        if (get_recipient(e, name, &req->recipients[n], err) < 0)
            return -EINVAL;
        for (size_t k = 0; k < n; k++)
            if (strcmp(req->recipients[k], req->recipients[n]) == 0) {
                m2m_error_set(err, "invalid_request", "'to' lists \"%s\" twice",
                              req->recipients[n]);
                return -EINVAL;
            }
    }
    req->n_recipients = n;
    req->to_list = true;
    req->to = req->recipients[0];
    return 0;
}

int json_parse_sms_send(const cJSON *root, struct sms_send_req *req, struct m2m_error *err)
{
    static const char *const allowed[] = {"to", "text", "flash", "report", NULL};

    memset(req, 0, sizeof *req);
    if (json_check_fields(root, allowed, err) || get_recipients(root, req, err) ||
        get_string(root, "text", true, &req->text, err))
        return -EINVAL;
    if (req->text[0] == '\0') {
        m2m_error_set(err, "invalid_request", "'text' must not be empty");
        return -EINVAL;
    }
    req->text_len = strlen(req->text); /* no NUL inside: json_parse_command */
    if (get_bool(root, "flash", &req->flash, err) || get_bool(root, "report", &req->report, err))
        return -EINVAL;
    return 0;
}

int json_parse_call_dial(const cJSON *root, const char **to, struct m2m_error *err)
{
    static const char *const allowed[] = {"to", "play", "repeat", "hangup", NULL};
    const cJSON *it = field(root, "to");

    *to = NULL;
    if (json_check_fields(root, allowed, err))
        return -EINVAL;
    if (!it) {
        m2m_error_set(err, "invalid_request", "missing field 'to'");
        return -EINVAL;
    }
    if (!cJSON_IsString(it)) {
        m2m_error_set(err, "invalid_request", "'to' must be a string, e.g. \"+4917012345678\"");
        return -EINVAL;
    }
    /* Goes behind ATD as it is: ';' would end the dial string, a quote or
     * a letter (I, G, > are dial modifiers) is not a number. Whether a
     * service code may be dialled is calls.allow_to's question. */
    const char *s = it->valuestring;
    if (!only_chars(s[0] == '+' ? s + 1 : s, "0123456789*#", 1, JSON_DIAL_MAX)) {
        m2m_error_set(err, "invalid_number",
                      "'to' must be a number (digits with an optional leading +, e.g. "
                      "+4917012345678) or a service code of digits, * and #; at most %d",
                      JSON_DIAL_MAX);
        return -EINVAL;
    }
    *to = s;
    return 0;
}

int json_parse_dtmf(const cJSON *root, const char **digits, struct m2m_error *err)
{
    static const char *const allowed[] = {"digits", NULL};
    *digits = NULL;
    if (json_check_fields(root, allowed, err) || get_string(root, "digits", true, digits, err))
        return -EINVAL;
    /* Goes inside AT+VTS="...": the set leaves no way to close the quote. */
    if (!only_chars(*digits, "0123456789*#ABCDabcd", 1, 32)) {
        m2m_error_set(err, "invalid_request", "'digits' must be 1-32 of 0-9 * # A-D");
        *digits = NULL;
        return -EINVAL;
    }
    return 0;
}

int json_parse_ussd(const cJSON *root, const char **code, struct m2m_error *err)
{
    static const char *const allowed[] = {"code", NULL};
    *code = NULL;
    if (json_check_fields(root, allowed, err) || get_string(root, "code", true, code, err))
        return -EINVAL;
    /* Goes inside AT+CUSD=1,"...",15; 160 GSM characters fill a USSD
     * string (182 septets) with room to spare. */
    if (!only_chars(*code, "0123456789*#+", 1, 160)) {
        m2m_error_set(err, "invalid_request", "'code' must be 1-160 of 0-9 * # +");
        *code = NULL;
        return -EINVAL;
    }
    return 0;
}

/* An optional integer in [min, max]; absent leaves *out alone. */
static int get_int(const cJSON *root, const char *name, int min, int max, int *out,
                   struct m2m_error *err)
{
    const cJSON *it = field(root, name);
    if (!it)
        return 0;
    /* The range first: a double beyond int's is no int to cast to. */
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= min && it->valuedouble <= max) ||
        it->valuedouble != (double)(int)it->valuedouble) {
        m2m_error_set(err, "invalid_request", "'%s' must be an integer %d-%d", name, min, max);
        return -EINVAL;
    }
    *out = (int)it->valuedouble;
    return 0;
}

/* A module file name (audio_file_valid): it goes inside AT+...="..." and
 * its set cannot close the quote. */
static int get_audio_file(const cJSON *root, const char *name, bool required, const char **out,
                          struct m2m_error *err)
{
    if (get_string(root, name, required, out, err))
        return -EINVAL;
    if (*out && !audio_file_valid(*out)) {
        m2m_error_set(err, "invalid_request",
                      "'%s' must be c:/ and 1-%d of A-Z a-z 0-9 _ - . with an extension (not "
                      "starting or ending with .), e.g. \"c:/alarm.amr\"",
                      name, AUDIO_NAME_MAX);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

int json_parse_call_alarm(const cJSON *root, struct json_audio_play *req, struct m2m_error *err)
{
    *req = (struct json_audio_play){ .repeat = 1, .to_call = true, .hangup = true };
    if (get_audio_file(root, "play", false, &req->file, err) ||
        get_int(root, "repeat", 1, AUDIO_REPEAT_MAX, &req->repeat, err) ||
        get_bool(root, "hangup", &req->hangup, err))
        return -EINVAL;
    if (!req->file && (field(root, "repeat") || field(root, "hangup"))) {
        m2m_error_set(err, "invalid_request", "'repeat' and 'hangup' need 'play'");
        return -EINVAL;
    }
    return 0;
}

int json_parse_audio_play(const cJSON *root, struct json_audio_play *req, struct m2m_error *err)
{
    static const char *const allowed[] = {"file", "repeat", "to_call", NULL};

    *req = (struct json_audio_play){ .repeat = 1 };
    if (json_check_fields(root, allowed, err) ||
        get_audio_file(root, "file", true, &req->file, err) ||
        get_int(root, "repeat", 1, AUDIO_REPEAT_MAX, &req->repeat, err) ||
        get_bool(root, "to_call", &req->to_call, err))
        return -EINVAL;
    return 0;
}

int json_parse_audio_record(const cJSON *root, const char **file, int *seconds,
                            struct m2m_error *err)
{
    static const char *const allowed[] = {"file", "seconds", NULL};

    *seconds = 0;
    *file = NULL;
    if (json_check_fields(root, allowed, err) || get_audio_file(root, "file", true, file, err))
        return -EINVAL;
    if (!audio_file_is_wav(*file))
        m2m_error_set(err, "invalid_request", "'file' must end in .wav (the module records WAV)");
    else if (!field(root, "seconds"))
        m2m_error_set(err, "invalid_request", "missing field 'seconds'");
    else if (get_int(root, "seconds", 1, AUDIO_RECORD_MAX_S, seconds, err) == 0)
        return 0;
    *file = NULL;
    return -EINVAL;
}

int json_parse_audio_upload(const cJSON *root, struct json_audio_upload *req,
                            struct m2m_error *err)
{
    static const char *const allowed[] = {"file", "data", NULL};
    const char *data = NULL;
    int rc;

    memset(req, 0, sizeof *req);
    if (json_check_fields(root, allowed, err) ||
        get_audio_file(root, "file", true, &req->file, err) ||
        get_string(root, "data", true, &data, err))
        return -EINVAL;
    rc = json_base64_decode(data, strlen(data), &req->data, &req->len);
    if (rc == -ENOMEM) {
        m2m_error_set(err, "unavailable", "out of memory");
        return -EINVAL;
    }
    if (rc == 0 && req->len > AUDIO_UPLOAD_MAX)
        m2m_error_set(err, "too_long", "'data' decodes to more than %u bytes", AUDIO_UPLOAD_MAX);
    else if (rc == 0 && req->len == 0)
        m2m_error_set(err, "invalid_request", "'data' must not be empty");
    else if (rc)
        m2m_error_set(err, "invalid_request", "'data' is not valid base64 (RFC 4648, padded)");
    if (rc || req->len == 0 || req->len > AUDIO_UPLOAD_MAX) {
        free(req->data);
        memset(req, 0, sizeof *req);
        return -EINVAL;
    }
    return 0;
}

bool json_topic_valid(const char *t, size_t n, bool filter)
{
    return topic_check(t, n, filter) == NULL;
}

/* "topic" for the remote commands: a string, a valid name or filter, at
 * most JSON_REMOTE_TOPIC_MAX bytes (too_long). */
static int get_remote_topic(const cJSON *root, bool filter, const char **topic,
                            struct m2m_error *err)
{
    if (get_string(root, "topic", true, topic, err))
        return -EINVAL;
    size_t n = strlen(*topic);
    if (n > JSON_REMOTE_TOPIC_MAX) {
        m2m_error_set(err, "too_long", "'topic' is longer than %d bytes",
                      JSON_REMOTE_TOPIC_MAX);
        return -EINVAL;
    }
    /* Checked here, before a byte goes to the module: the remote broker
     * drops the module's whole session over one topic it refuses. */
    const char *why = topic_check(*topic, n, filter);
    if (why) {
        m2m_error_set(err, "invalid_request", "'topic' %s", why);
        return -EINVAL;
    }
    return 0;
}

int json_parse_remote_publish(const cJSON *root, struct remote_publish_req *req,
                              struct m2m_error *err)
{
    static const char *const allowed[] = {"topic", "payload", "qos", "retain", "encoding", NULL};
    const char *payload = NULL, *encoding = "utf8";

    memset(req, 0, sizeof *req);
    if (json_check_fields(root, allowed, err) || get_remote_topic(root, false, &req->topic, err) ||
        get_string(root, "payload", true, &payload, err) || get_qos(root, &req->qos, err) ||
        get_bool(root, "retain", &req->retain, err) ||
        get_string(root, "encoding", false, &encoding, err))
        goto err;

    size_t n = strlen(payload);
    if (strcmp(encoding, "utf8") == 0) {
        req->payload = (const uint8_t *)payload;
        req->payload_len = n;
    } else if (strcmp(encoding, "base64") == 0) {
        int rc = json_base64_decode(payload, n, &req->payload_buf, &req->payload_len);
        if (rc == -ENOMEM) {
            m2m_error_set(err, "unavailable", "out of memory");
            goto err;
        }
        if (rc) {
            m2m_error_set(err, "invalid_request", "'payload' is not valid base64");
            goto err;
        }
        req->payload = req->payload_buf;
    } else {
        m2m_error_set(err, "invalid_request", "'encoding' must be \"utf8\" or \"base64\"");
        goto err;
    }
    if (req->payload_len > JSON_REMOTE_PAYLOAD_MAX) {
        m2m_error_set(err, "too_long", "'payload' is longer than %d bytes",
                      JSON_REMOTE_PAYLOAD_MAX);
        goto err;
    }
    return 0;
err:
    json_remote_publish_clear(req);
    return -EINVAL;
}

void json_remote_publish_clear(struct remote_publish_req *req)
{
    if (!req)
        return;
    free(req->payload_buf);
    memset(req, 0, sizeof *req);
}

int json_parse_remote_subscribe(const cJSON *root, const char **topic, int *qos,
                                struct m2m_error *err)
{
    static const char *const allowed[] = {"topic", "qos", NULL};
    *topic = NULL;
    *qos = 0;
    if (json_check_fields(root, allowed, err) || get_remote_topic(root, true, topic, err) ||
        get_qos(root, qos, err)) {
        *topic = NULL;
        return -EINVAL;
    }
    return 0;
}

int json_parse_remote_unsubscribe(const cJSON *root, const char **topic, struct m2m_error *err)
{
    static const char *const allowed[] = {"topic", NULL};
    *topic = NULL;
    if (json_check_fields(root, allowed, err) || get_remote_topic(root, true, topic, err)) {
        *topic = NULL;
        return -EINVAL;
    }
    return 0;
}

int json_parse_modem_power(const cJSON *root, enum json_power_mode *mode,
                           struct m2m_error *err)
{
    static const char *const allowed[] = {"mode", NULL};
    static const char *const names[] = {
        [JSON_POWER_FULL] = "full", [JSON_POWER_MIN] = "min", [JSON_POWER_RESET] = "reset"};
    const char *s = NULL;

    if (json_check_fields(root, allowed, err) || get_string(root, "mode", true, &s, err))
        return -EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *mode = (enum json_power_mode)i;
            return 0;
        }
    }
    m2m_error_set(err, "invalid_request", "'mode' must be \"full\", \"min\" or \"reset\"");
    return -EINVAL;
}

int json_parse_network_select(const cJSON *root, const char **mccmnc, struct m2m_error *err)
{
    static const char *const allowed[] = {"mode", "mccmnc", NULL};
    const char *mode = NULL;

    *mccmnc = NULL;
    if (json_check_fields(root, allowed, err) || get_string(root, "mode", false, &mode, err) ||
        get_string(root, "mccmnc", false, mccmnc, err))
        return -EINVAL;
    if (mode && *mccmnc) {
        m2m_error_set(err, "invalid_request", "give either 'mode' or 'mccmnc', not both");
    } else if (mode) {
        if (strcmp(mode, "auto") == 0)
            return 0;
        m2m_error_set(err, "invalid_request", "'mode' must be \"auto\" (or give 'mccmnc')");
    } else if (!*mccmnc) {
        m2m_error_set(err, "invalid_request", "missing field 'mccmnc' (or 'mode':\"auto\")");
    } else if (network_mccmnc_valid(*mccmnc)) {
        return 0;
    } else {
        m2m_error_set(err, "invalid_request", "'mccmnc' must be 5 or 6 digits, e.g. \"26201\"");
    }
    *mccmnc = NULL;
    return -EINVAL;
}

/* Commands that open a '>' data prompt (or a DOWNLOAD data phase): the
 * module would take the next bytes we send as their data, and at/send has
 * none to give. min_commas: the prompt comes only with a length
 * parameter, i.e. with at least that many commas after the name
 * (AT+CMQTTSUB=0,9,1 prompts, AT+CMQTTSUB=0 does not). From the A76XX AT
 * manual (SMS, MQTT, SSL, TCP/IP, HTTP, FTP, file system) and 27.005. */
static const struct {
    const char *name;
    unsigned min_commas;
} prompt_cmds[] = {
    {"+CMGS", 0},          {"+CMGW", 0},          {"+CMGC", 0},
    {"+CNMA", 1},          {"+CMQTTTOPIC", 0},    {"+CMQTTPAYLOAD", 0},
    {"+CMQTTSUBTOPIC", 0}, {"+CMQTTUNSUBTOPIC", 0}, {"+CMQTTWILLTOPIC", 0},
    {"+CMQTTWILLMSG", 0},  {"+CMQTTSUB", 2},      {"+CMQTTUNSUB", 2},
    {"+CCERTDOWN", 0},     {"+CFTRANRX", 0},      {"+HTTPDATA", 0},
    {"+CIPSEND", 0},       {"+CCHSEND", 0},       {"+CFTPSPUT", 0},
    {"+CSMTPSBODY", 0},    {"+CMMSDOWN", 0},
};

/* The first prompt command in the n bytes of s (case-insensitive,
 * anywhere: "ATE0+CMGS=10" is one line for the module), or NULL. */
static const char *prompt_command(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '+')
            continue;
        for (size_t c = 0; c < sizeof prompt_cmds / sizeof prompt_cmds[0]; c++) {
            const char *name = prompt_cmds[c].name;
            size_t len = strlen(name);
            if (len > n - i || strncasecmp(s + i, name, len) != 0)
                continue;
            unsigned commas = 0;
            for (size_t j = i + len; j < n; j++)
                commas += s[j] == ',';
            if (commas >= prompt_cmds[c].min_commas)
                return name;
        }
    }
    return NULL;
}

int json_parse_at_send(const cJSON *root, const char **command, struct m2m_error *err)
{
    static const char *const allowed[] = {"command", NULL};
    const char *s = NULL, *prompt;

    *command = NULL;
    if (json_check_fields(root, allowed, err) || get_string(root, "command", true, &s, err))
        return -EINVAL;
    size_t n = strnlen(s, JSON_AT_MAX + 1);
    if (n < 2 || n > JSON_AT_MAX) {
        m2m_error_set(err, "invalid_request", "'command' must be 2-%d characters",
                      JSON_AT_MAX);
        return -EINVAL;
    }
    /* Printable ASCII only: CR/LF would end the line and start another
     * command, Ctrl-Z/ESC act on an open prompt, BS/DEL edit the line in
     * the module's buffer, and 8-bit bytes are not in V.250's alphabet. */
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7E) {
            m2m_error_set(err, "invalid_request",
                          "'command' must be printable ASCII: byte 0x%02X at %zu is a "
                          "control or 8-bit character",
                          (unsigned)(uint8_t)s[i], i);
            return -EINVAL;
        }
    }
    if (strncasecmp(s, "AT", 2) != 0) {
        m2m_error_set(err, "invalid_request", "'command' must start with AT");
        return -EINVAL;
    }
    /* One command per request: ';' chains commands on one line, so the
     * checks below (and the single result) would see only part of it. */
    if (memchr(s, ';', n)) {
        m2m_error_set(err, "invalid_request",
                      "'command' must be one command: ';' is not allowed");
        return -EINVAL;
    }
    if ((prompt = prompt_command(s, n))) {
        m2m_error_set(err, "invalid_request",
                      "'command' must not use AT%s: it opens a '>' data prompt, which "
                      "at/send cannot fill",
                      prompt);
        return -EINVAL;
    }
    /* The basic commands before the first extended one (+..., *..., $...):
     * D dials (a data call, ATD*99#, leaves command mode; voice calls go
     * through call/dial) and O returns to a data connection. Both would
     * take the line out of command mode. &D is a setting, not a dial. */
    for (size_t i = 2; i < n && !strchr("+*$^%#", s[i]); i++) {
        char c = (char)(s[i] & ~0x20);

        if (s[i] == '&') {
            i++;
            continue;
        }
        if (c == 'D' || c == 'O') {
            m2m_error_set(err, "invalid_request",
                          "'command' must not use AT%c: it would leave command mode (calls: "
                          "use call/dial)",
                          c);
            return -EINVAL;
        }
    }
    *command = s;
    return 0;
}
