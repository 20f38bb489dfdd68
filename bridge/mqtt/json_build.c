/* The builders of the JSON codec (json.c lists its files): command results
 * (json_result, json_add_error) and the events' payloads (json_sms_received,
 * json_sms_report, json_remote_message, json_status, json_call_state, ...).
 * Text that may hold a NUL goes through the escaper here, with its length;
 * what cJSON prints has its bytes that are not UTF-8 repaired (utf8_fix).
 * Parsing commands is json.c's and json_parse.c's. */
#include "mqtt/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/utf8.h"
#include "modem/call.h"
#include "modem/sms.h"

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
    cJSON *o = cJSON_CreateObject(), *cell, *sig, *st;
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
    if (!s->lac || !*s->lac || !s->ci || !*s->ci) {
        cJSON_AddNullToObject(o, "cell");
    } else if ((cell = cJSON_AddObjectToObject(o, "cell"))) {
        cJSON_AddStringToObject(cell, "lac", s->lac);
        cJSON_AddStringToObject(cell, "ci", s->ci);
    }
    if ((sig = cJSON_AddObjectToObject(o, "signal"))) {
        add_number_or_null(sig, "csq", signal, s->csq);
        add_number_or_null(sig, "dbm", level, s->dbm);
        add_number_or_null(sig, "percent", level, s->percent);
    }
    if ((st = cJSON_AddObjectToObject(o, "storage"))) {
        add_number_or_null(st, "used", storage, s->storage_used);
        add_number_or_null(st, "total", storage, s->storage_total);
    }
    add_number_or_null(o, "voltage_mv", s->voltage_mv > 0, s->voltage_mv);
    cJSON_AddStringToObject(o, "remote", s->remote);
    if (s->remote_error)
        cJSON_AddStringToObject(o, "remote_error", s->remote_error);
    out = utf8_fix(cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
    return out;
}

char *json_audio_state(const char *state, const char *file)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "state", state);
    if (file && *file)
        cJSON_AddStringToObject(o, "file", file);
    else
        cJSON_AddNullToObject(o, "file");
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
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
    cJSON_AddBoolToObject(o, "playing", st->playing);
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
