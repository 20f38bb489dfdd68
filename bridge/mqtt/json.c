/* JSON payload codecs for the MQTT side. Pure: no
 * I/O, no clock, no global state (cJSON's global error pointer is not
 * used: the parse end comes back through cJSON_ParseWithLengthOpts).
 *
 * Two things cJSON does not do for us, handled here:
 *  - It stores strings NUL-terminated without a length, so a "\u0000" in
 *    a command would silently cut the string there. Such commands are
 *    refused. Outgoing text that may hold a NUL (an SMS's UCS-2 U+0000) is
 *    written by our own escaper, with its length.
 *  - It neither checks nor repairs UTF-8. Incoming payloads must be UTF-8;
 *    outgoing bytes that are not (a modem's text) become U+FFFD, so the
 *    bridge never publishes invalid JSON. */
#include "mqtt/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/topic.h"
#include "core/utf8.h"
#include "modem/call.h"
#include "modem/sms.h"

/* %s: the field ("to", "to[2]"). */
#define INVALID_NUMBER_FMT                                                                   \
    "'%s' must be E.164, e.g. +4917012345678, or a national number or short code of 2-20 " \
    "digits"

/* A growable output buffer; an allocation failure is remembered and
 * reported once at the end. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static char *sb_finish(struct sbuf *b)
{
    if (b->oom || !b->p) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

/* A JSON string of n bytes (RFC 8259 escapes). NUL is "\u0000"; a byte
 * that is not UTF-8 is repaired (utf8_repair), one character per byte. */
static void sb_json_string(struct sbuf *b, const uint8_t *s, size_t n)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = utf8_seq(s + i, n - i);
        if (!k) {
            uint8_t r[3];
            sb_put(b, r, utf8_repair(s + i, 1, r, sizeof r));
            i++;
            continue;
        }
        if (k > 1) {
            sb_put(b, s + i, k);
        } else if (c == '"') {
            sb_put(b, "\\\"", 2);
        } else if (c == '\\') {
            sb_put(b, "\\\\", 2);
        } else if (c == '\n') {
            sb_put(b, "\\n", 2);
        } else if (c == '\r') {
            sb_put(b, "\\r", 2);
        } else if (c == '\t') {
            sb_put(b, "\\t", 2);
        } else if (c == '\b') {
            sb_put(b, "\\b", 2);
        } else if (c == '\f') {
            sb_put(b, "\\f", 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, &c, 1);
        }
        i += k;
    }
    sb_put(b, "\"", 1);
}

/* NULL or "" -> null. */
static void sb_json_string_or_null(struct sbuf *b, const char *s)
{
    if (!s || !*s)
        sb_str(b, "null");
    else
        sb_json_string(b, (const uint8_t *)s, strlen(s));
}

/* cJSON prints string bytes as they are: repair those that are not UTF-8
 * (utf8_repair). Only string contents can hold such bytes (the rest is
 * ASCII), so the result stays well-formed. Frees s when it replaces it. */
static char *utf8_fix(char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    if (utf8_valid((const uint8_t *)s, n))
        return s;
    size_t cap = utf8_repair((const uint8_t *)s, n, NULL, 0);
    char *out = malloc(cap + 1);
    if (out) {
        utf8_repair((const uint8_t *)s, n, (uint8_t *)out, cap);
        out[cap] = '\0';
    }
    free(s);
    return out;
}

/* A field name from the payload, quoted in a message: at most 48 bytes,
 * cut at a character boundary. */
static void shown_name(char *out, size_t size, const char *name)
{
    size_t n = strlen(name);
    if (n > 48) {
        n = 48;
        while (n > 0 && ((uint8_t)name[n] & 0xC0) == 0x80)
            n--;
        snprintf(out, size, "%.*s...", (int)n, name);
    } else {
        snprintf(out, size, "%s", name);
    }
}

/* ---- commands ------------------------------------------------------------ */

/* Payload checks before cJSON: UTF-8 throughout (RFC 8259), and no NUL,
 * raw or as "\u0000" inside a string. false with err set. */
static bool payload_ok(const uint8_t *p, size_t len, struct m2m_error *err)
{
    bool in_str = false;

    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i, len - i);
        if (!k) {
            m2m_error_set(err, "invalid_json", "payload is not valid UTF-8 (byte %zu)", i);
            return false;
        }
        if (p[i] == 0) {
            m2m_error_set(err, "invalid_json", "NUL byte in payload (byte %zu)", i);
            return false;
        }
        if (in_str && p[i] == '\\' && i + 1 < len) {
            if (i + 5 < len && memcmp(p + i + 1, "u0000", 5) == 0) {
                m2m_error_set(err, "invalid_request",
                              "strings must not contain \\u0000 (byte %zu)", i);
                return false;
            }
            /* Skip the escaped character; a non-ASCII one is a syntax
             * error cJSON reports, its UTF-8 is still checked here. */
            i += p[i + 1] && p[i + 1] < 0x80 ? 2 : 1;
            continue;
        }
        if (p[i] == '"')
            in_str = !in_str;
        i += k;
    }
    return true;
}

cJSON *json_parse_command(const uint8_t *payload, size_t len, const cJSON **id,
                          struct m2m_error *err)
{
    *id = NULL;
    if (len > JSON_PAYLOAD_MAX) {
        m2m_error_set(err, "too_long", "payload larger than %d bytes", JSON_PAYLOAD_MAX);
        return NULL;
    }
    /* mosquitto_pub -n: "no fields" is what a user means for answer/hangup. */
    if (len == 0) {
        cJSON *root = cJSON_CreateObject();
        if (!root)
            m2m_error_set(err, "unavailable", "out of memory");
        return root;
    }
    if (!payload_ok(payload, len, err))
        return NULL;

    const char *text = (const char *)payload;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= text ? (size_t)(end - text) : 0;
        m2m_error_set(err, "invalid_json", "invalid JSON at byte %zu", pos);
        return NULL;
    }
    /* cJSON stops after the first value: anything but space after it is
     * as malformed as a missing brace. */
    size_t pos = (size_t)(end - text);
    while (pos < len && strchr(" \t\r\n", text[pos]))
        pos++;
    if (pos < len) {
        m2m_error_set(err, "invalid_json", "invalid JSON at byte %zu", pos);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        m2m_error_set(err, "invalid_request", "payload must be a JSON object");
        goto fail;
    }
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (it) {
        /* A number is echoed as cJSON prints a double (as JavaScript
         * would); infinity would come back as null, so it is refused. */
        bool finite = cJSON_IsNumber(it) && it->valuedouble - it->valuedouble == 0;
        if (!cJSON_IsString(it) && !finite) {
            m2m_error_set(err, "invalid_request", "'id' must be a string or a number");
            goto fail;
        }
        *id = it;
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

int json_check_fields(const cJSON *root, const char *const *allowed, struct m2m_error *err)
{
    /* One bit per allowed name, bit 0 for "id": duplicates are found in
     * one pass even in a payload of thousands of fields. */
    uint64_t seen = 0;
    char name[64];

    for (const cJSON *it = root ? root->child : NULL; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        size_t bit;
        if (strcmp(key, "id") == 0) {
            bit = 0;
        } else {
            size_t i = 0;
            while (allowed && allowed[i] && strcmp(allowed[i], key) != 0)
                i++;
            if (!allowed || !allowed[i]) {
                shown_name(name, sizeof name, key);
                m2m_error_set(err, "invalid_request", "unknown field '%s'", name);
                return -EINVAL;
            }
            bit = i + 1 < 64 ? i + 1 : 63;
        }
        if (seen & (UINT64_C(1) << bit)) {
            shown_name(name, sizeof name, key);
            m2m_error_set(err, "invalid_request", "duplicate field '%s'", name);
            return -EINVAL;
        }
        seen |= UINT64_C(1) << bit;
    }
    return 0;
}

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
    static const char *const allowed[] = {"to", NULL};
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

/* ---- results and events ------------------------------------------------ */

int json_add_error(cJSON *obj, const struct m2m_error *err)
{
    cJSON *e = cJSON_AddObjectToObject(obj, "error");

    if (!e || !cJSON_AddStringToObject(e, "code", err->code ? err->code : "modem_error") ||
        (err->cme >= 0 && !cJSON_AddNumberToObject(e, "cme", err->cme)) ||
        (err->cms >= 0 && !cJSON_AddNumberToObject(e, "cms", err->cms)) ||
        !cJSON_AddStringToObject(e, "message", err->message))
        return -ENOMEM;
    return 0;
}

char *json_result(const cJSON *id, cJSON *data, const struct m2m_error *err)
{
    char *out = NULL;
    cJSON *res = cJSON_CreateObject();
    if (!res)
        goto out;
    if (id) {
        cJSON *dup = cJSON_Duplicate(id, 0);
        if (!dup || !cJSON_AddItemToObject(res, "id", dup)) {
            cJSON_Delete(dup);
            goto out;
        }
    }
    if (!cJSON_AddBoolToObject(res, "ok", err == NULL))
        goto out;
    while (data && data->child) {
        cJSON *it = cJSON_DetachItemViaPointer(data, data->child);
        if (!it->string || !cJSON_AddItemToObject(res, it->string, it)) {
            cJSON_Delete(it);
            goto out;
        }
    }
    if (err && json_add_error(res, err) < 0)
        goto out;
    out = utf8_fix(cJSON_PrintUnformatted(res));
out:
    cJSON_Delete(res);
    cJSON_Delete(data);
    return out;
}

char *json_sms_received(const struct sms_received *m)
{
    struct sbuf b = {0};

    sb_str(&b, "{\"from\":");
    sb_json_string_or_null(&b, m->from);
    if (m->message_id)
        sb_printf(&b, ",\"message_id\":\"%s\"", m->message_id);
    sb_str(&b, ",\"text\":");
    if (m->alphabet == PDU_8BIT) {
        char *b64 = json_base64_encode(m->text, m->text ? m->text_len : 0);
        if (!b64)
            b.oom = true;
        else
            sb_json_string(&b, (const uint8_t *)b64, strlen(b64));
        free(b64);
    } else {
        sb_json_string(&b, m->text ? m->text : (const uint8_t *)"", m->text ? m->text_len : 0);
    }
    sb_str(&b, ",\"time\":");
    sb_json_string_or_null(&b, m->time);
    sb_str(&b, ",\"smsc\":");
    sb_json_string_or_null(&b, m->smsc);
    sb_printf(&b, ",\"parts\":%u", m->parts);
    if (m->alphabet == PDU_8BIT)
        sb_str(&b, ",\"encoding\":\"base64\"");
    if (m->parts_missing && m->n_parts_missing) {
        sb_str(&b, ",\"parts_missing\":[");
        for (size_t i = 0; i < m->n_parts_missing; i++)
            sb_printf(&b, "%s%u", i ? "," : "", m->parts_missing[i]);
        sb_str(&b, "]");
    }
    sb_str(&b, "}");
    return sb_finish(&b);
}

const char *json_report_status(uint8_t st)
{
    if (st < 0x20)
        return "delivered";
    return st < 0x40 ? "pending" : "failed";
}

char *json_sms_report(const struct sms_report *r)
{
    struct sbuf b = {0};

    sb_printf(&b, "{\"reference\":%d,\"to\":", r->reference);
    sb_json_string_or_null(&b, r->to);
    sb_printf(&b, ",\"status\":\"%s\",\"st\":%u,\"time\":", json_report_status(r->st), r->st);
    sb_json_string_or_null(&b, r->time);
    sb_str(&b, ",\"submitted\":");
    sb_json_string_or_null(&b, r->submitted);
    sb_str(&b, ",\"id\":");
    sb_str(&b, r->id_json ? r->id_json : "null");
    if (r->id_json)
        sb_printf(&b, ",\"part\":%u,\"parts\":%u", r->part, r->parts);
    else
        sb_str(&b, ",\"part\":null,\"parts\":null");
    sb_str(&b, "}");
    return sb_finish(&b);
}

char *json_remote_message(const char *topic, size_t topic_len, const uint8_t *payload,
                          size_t len, int qos)
{
    struct sbuf b = {0};
    /* NUL is valid in a JSON string, but many consumers (cJSON among them)
     * cut there: such a payload goes as base64 like any binary one. */
    bool utf8 = (!payload || !memchr(payload, 0, len)) &&
                utf8_valid(payload ? payload : (const uint8_t *)"", payload ? len : 0);

    sb_str(&b, "{\"topic\":");
    sb_json_string(&b, (const uint8_t *)(topic ? topic : ""), topic ? topic_len : 0);
    sb_str(&b, ",\"payload\":");
    if (utf8) {
        sb_json_string(&b, payload ? payload : (const uint8_t *)"", payload ? len : 0);
    } else {
        char *b64 = json_base64_encode(payload, len);
        if (!b64)
            b.oom = true;
        else
            sb_json_string(&b, (const uint8_t *)b64, strlen(b64));
        free(b64);
    }
    sb_printf(&b, ",\"encoding\":\"%s\",\"qos\":%d}", utf8 ? "utf8" : "base64", qos);
    return sb_finish(&b);
}

char *json_event_error(const char *code, const char *message, const char *extra_key,
                       const char *extra_value)
{
    char *out = NULL;
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "code", code ? code : "") &&
        cJSON_AddStringToObject(o, "message", message ? message : "") &&
        (!extra_key || cJSON_AddStringToObject(o, extra_key, extra_value ? extra_value : "")))
        out = utf8_fix(cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    return out;
}

static void add_string_or_null(cJSON *o, const char *key, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* A number, or null when known is false. */
static void add_number_or_null(cJSON *o, const char *key, bool known, double v)
{
    if (known)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

char *json_status(const struct json_status *s)
{
    cJSON *o = cJSON_CreateObject(), *sig, *st;
    bool signal = s->csq >= 0, level = signal && s->percent >= 0;
    bool storage = s->storage_total > 0;
    char *out;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "state", s->state);
    cJSON_AddStringToObject(o, "sim", s->sim);
    cJSON_AddStringToObject(o, "registration", s->registration);
    add_string_or_null(o, "operator", s->operator_name);
    add_string_or_null(o, "access", s->access);
    if ((sig = cJSON_AddObjectToObject(o, "signal"))) {
        add_number_or_null(sig, "csq", signal, s->csq);
        add_number_or_null(sig, "dbm", level, s->dbm);
        add_number_or_null(sig, "percent", level, s->percent);
    }
    if ((st = cJSON_AddObjectToObject(o, "storage"))) {
        add_number_or_null(st, "used", storage, s->storage_used);
        add_number_or_null(st, "total", storage, s->storage_total);
    }
    cJSON_AddStringToObject(o, "remote", s->remote);
    if (s->remote_error)
        cJSON_AddStringToObject(o, "remote_error", s->remote_error);
    out = utf8_fix(cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    return out;
}

char *json_call_state(const struct call_state *st)
{
    cJSON *o = cJSON_CreateObject();
    char since[40] = "";
    struct tm tm;
    char *s;

    if (!o)
        return NULL;
    /* strftime's %z is "+0100"; ISO 8601 with offset wants "+01:00". */
    if (localtime_r(&st->since, &tm) &&
        strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%S%z", &tm) == 24) {
        since[25] = '\0';
        since[24] = since[23];
        since[23] = since[22];
        since[22] = ':';
    }
    cJSON_AddStringToObject(o, "state", call_st_name(st->state));
    if (call_dir_name(st->dir))
        cJSON_AddStringToObject(o, "direction", call_dir_name(st->dir));
    else
        cJSON_AddNullToObject(o, "direction");
    if (st->number[0])
        cJSON_AddStringToObject(o, "number", st->number);
    else
        cJSON_AddNullToObject(o, "number");
    cJSON_AddStringToObject(o, "since", since);
    if (call_end_name(st->ended))
        cJSON_AddStringToObject(o, "ended_reason", call_end_name(st->ended));
    else
        cJSON_AddNullToObject(o, "ended_reason");
    if (st->state == CALL_IDLE && st->duration >= 0)
        cJSON_AddNumberToObject(o, "duration", st->duration);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *json_strings(const struct json_member *m, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    char *out;

    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++)
        add_string_or_null(o, m[i].key, m[i].value);
    out = utf8_fix(cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    return out;
}

/* ---- base64 (RFC 4648 section 4) --------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *json_base64_encode(const uint8_t *data, size_t len)
{
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int json_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (len >= 4 && text[len - 1] == '=')
        pad = text[len - 2] == '=' ? 2 : 1;

    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        for (size_t j = 0; j < 4; j++) {
            bool is_pad = last && j >= 4 - pad;
            v[j] = is_pad ? 0 : b64_value(text[i + j]);
            if (v[j] < 0)
                goto bad;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        /* Bits a padded group does not use must be zero (RFC 4648 3.5):
         * otherwise two spellings would give the same bytes. */
        if (last && pad == 2 && (w & 0xFFFF))
            goto bad;
        if (last && pad == 1 && (w & 0xFF))
            goto bad;
        size_t take = last ? 3 - pad : 3;
        buf[n++] = (uint8_t)(w >> 16);
        if (take > 1)
            buf[n++] = (uint8_t)(w >> 8);
        if (take > 2)
            buf[n++] = (uint8_t)w;
    }
    *out = buf;
    *out_len = n;
    return 0;
bad:
    free(buf);
    return -EINVAL;
}
