/* JSON payload codecs for the MQTT side. Pure: no
 * I/O, no clock, no global state (cJSON's global error pointer is not
 * used: the parse end comes back through cJSON_ParseWithLengthOpts).
 *
 * Two things cJSON does not do for us, handled by these files:
 *  - It stores strings NUL-terminated without a length, so a "\u0000" in
 *    a command would silently cut the string there. Such commands are
 *    refused. Outgoing text that may hold a NUL (an SMS's UCS-2 U+0000) is
 *    written by our own escaper, with its length.
 *  - It neither checks nor repairs UTF-8. Incoming payloads must be UTF-8;
 *    outgoing bytes that are not (a modem's text) become U+FFFD, so the
 *    bridge never publishes invalid JSON.
 *
 * The codec's files, which share nothing but json.h:
 *   json.c        a command payload up to its checked object
 *                 (json_parse_command: UTF-8, no NUL, one object, the id),
 *                 the field list every parser checks first
 *                 (json_check_fields), and base64, which both sides use
 *   json_parse.c  the field getters and one parser per command
 *                 (json_parse_sms_send ... json_parse_at_send)
 *   json_build.c  results and events (json_result, json_sms_received,
 *                 json_call_state, ...): the escaper that writes text
 *                 with its length, and the UTF-8 repair of cJSON's output */
#include "mqtt/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

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
    return json_parse_command_max(payload, len, JSON_PAYLOAD_MAX, id, err);
}

cJSON *json_parse_command_max(const uint8_t *payload, size_t len, size_t max, const cJSON **id,
                              struct m2m_error *err)
{
    *id = NULL;
    if (len > max) {
        m2m_error_set(err, "too_long", "payload larger than %zu bytes", max);
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
