/* The configuration's reader: values as text (the environment, the
 * command line) and the JSON file, walked against the key tables of
 * config_keys.c into the config being built. The layering (defaults <
 * file < environment < command line), the checks across keys and the
 * modems are config.c's. */
#include "core/config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/utf8.h"

#define KEY_PATH_MAX        192     /* "remote.subscribe[31].local" and more */
#define KEY_NAME_SHOWN      48      /* an unknown key is quoted at most this long */

/* ---- errors ------------------------------------------------------------- */

__attribute__((format(printf, 4, 0)))
static int vfail(char *err, size_t size, int rc, const char *fmt, va_list ap)
{
    if (err && size)
        vsnprintf(err, size, fmt, ap);
    return rc;
}

int config_fail_to(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(err, size, -EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

int config_fail(struct config_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c->err, c->err_size, -EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

int config_oom(struct config_ctx *c)
{
    if (c->err && c->err_size)
        snprintf(c->err, c->err_size, "config: out of memory");
    return -ENOMEM;
}

/* ---- setting values --------------------------------------------------- */

int config_set_str(char **slot, const char *v)
{
    char *copy = NULL;
    if (v && !(copy = strdup(v)))
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

void config_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* A checked string under its user-facing name. */
static int put_str(struct config_ctx *c, char **slot, const char *v, str_check check,
                   const char *name)
{
    const char *why = check ? check(v) : NULL;
    if (why)
        return config_fail(c, "%s: %s", name, why);
    return config_set_str(slot, v) ? config_oom(c) : 0;
}

/* A value from the environment or the command line, as text. */
int config_put_text(struct config_ctx *c, const struct key *k, const char *v, const char *name)
{
    int n;
    switch (k->kind) {
    case K_BAUD:
        if (!config_parse_uint(v, &n))
            return config_fail(c, "%s: expected integer", name);
        if (!config_baud_ok(n))
            return config_fail(c, "%s: %s", name, config_baud_why);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_STR:
        return put_str(c, SLOT(c->cfg, k->off, char *), v, k->check, name);
    default:
        return config_fail(c, "%s: internal error", name);
    }
}

/* ---- the JSON file ------------------------------------------------------ */

/* cJSON keeps numbers as doubles: an integer is a whole double in int range. */
static bool json_int(const cJSON *it, int *out)
{
    if (!cJSON_IsNumber(it))
        return false;
    double d = it->valuedouble;
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || (double)(int)d != d)
        return false;
    *out = (int)d;
    return true;
}

/* "parent.name" with an unknown name shown safely: control characters as
 * '?', cut at a character boundary. */
static void key_path(char *out, size_t size, const char *parent, const char *name)
{
    char shown[KEY_NAME_SHOWN + 4];
    size_t n = 0;

    for (const char *p = name; *p && n < KEY_NAME_SHOWN; p++)
        shown[n++] = ((unsigned char)*p < 0x20 || *p == 0x7F) ? '?' : *p;
    if (name[n] != '\0') {
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = '\0';
    snprintf(out, size, "%s%s%s", parent, *parent ? "." : "", shown);
}


static int put_list(struct config_ctx *c, const struct key *k, const cJSON *it, const char *kp)
{
    if (!cJSON_IsArray(it))
        return config_fail(c, "%s: expected array", kp);
    size_t n = (size_t)cJSON_GetArraySize(it);
    if (n > k->max_items)
        return config_fail(c, "%s: at most %zu entries", kp, k->max_items);

    char **list = calloc(n ? n : 1, sizeof *list);
    if (!list)
        return config_oom(c);
    size_t i = 0;
    int rc = 0;
    for (const cJSON *e = it->child; e; e = e->next, i++) {
        const char *why = !cJSON_IsString(e) ? "expected string" : k->check(e->valuestring);
        if (why) {
            rc = config_fail(c, "%s[%zu]: %s", kp, i, why);
            break;
        }
        if (!(list[i] = strdup(e->valuestring))) {
            rc = config_oom(c);
            break;
        }
    }
    if (rc) {
        config_free_list(list, n);
        return rc;
    }
    char ***slot = SLOT(c->cfg, k->off, char **);
    size_t *count = SLOT(c->cfg, k->off_n, size_t);
    config_free_list(*slot, *count);
    *slot = list;
    *count = n;
    return 0;
}

static int put_entry(struct config_ctx *c, const cJSON *e, const struct entry_field *fields,
                     void *entry,
                     const char *ep)
{
    char kp[KEY_PATH_MAX + 24 + KEY_NAME_SHOWN + 8];
    unsigned seen = 0;

    if (!cJSON_IsObject(e))
        return config_fail(c, "%s: expected object", ep);
    for (const cJSON *f = e->child; f; f = f->next) {
        size_t i = 0;
        while (fields[i].name && strcmp(fields[i].name, f->string) != 0)
            i++;
        key_path(kp, sizeof kp, ep, f->string);
        if (!fields[i].name)
            return config_fail(c, "%s: unknown key", kp);
        if (seen & (1u << i))
            return config_fail(c, "%s: duplicate key", kp);
        seen |= 1u << i;

        if (!fields[i].check) {
            int *q = SLOT(entry, fields[i].off, int);
            if (!json_int(f, q) || *q < 0 || *q > 2)
                return config_fail(c, "%s: expected integer 0-2", kp);
            continue;
        }
        char **slot = SLOT(entry, fields[i].off, char *);
        if (fields[i].nullable && cJSON_IsNull(f))
            continue;
        if (!cJSON_IsString(f))
            return config_fail(c, "%s: expected string%s", kp, fields[i].nullable ? " or null" : "");
        int rc = put_str(c, slot, f->valuestring, fields[i].check, kp);
        if (rc)
            return rc;
    }
    for (size_t i = 0; fields[i].name; i++)
        if (fields[i].required && !(seen & (1u << i)))
            return config_fail(c, "%s.%s: missing", ep, fields[i].name);
    return 0;
}

void config_free_subs(struct config_remote_sub *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].topic);
        free(s[i].local);
    }
    free(s);
}

void config_free_fwds(struct config_remote_fwd *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].local);
        free(f[i].remote);
    }
    free(f);
}

static int put_remote_list(struct config_ctx *c, const struct key *k, const cJSON *it,
                           const char *kp)
{
    bool subs = k->kind == K_SUBS;
    size_t size = subs ? sizeof(struct config_remote_sub) : sizeof(struct config_remote_fwd);

    if (!cJSON_IsArray(it))
        return config_fail(c, "%s: expected array", kp);
    size_t n = (size_t)cJSON_GetArraySize(it);
    if (n > REMOTE_LIST_MAX)
        return config_fail(c, "%s: at most %d entries", kp, REMOTE_LIST_MAX);
    char *arr = calloc(n ? n : 1, size);
    if (!arr)
        return config_oom(c);

    size_t i = 0;
    int rc = 0;
    for (const cJSON *e = it->child; e && !rc; e = e->next, i++) {
        char ep[KEY_PATH_MAX + 24]; /* kp, "[", 20 digits, "]" */
        snprintf(ep, sizeof ep, "%s[%zu]", kp, i);
        /* calloc: qos 0 unless given, MQTT's default as in a mosquitto
         * bridge's topic line. */
        rc = put_entry(c, e, subs ? config_sub_fields : config_fwd_fields, arr + i * size, ep);
    }
    if (subs) {
        struct config_remote_sub *a = (struct config_remote_sub *)(void *)arr;
        if (rc) {
            config_free_subs(a, n);
            return rc;
        }
        config_free_subs(c->cfg->remote.subscribe, c->cfg->remote.n_subscribe);
        c->cfg->remote.subscribe = a;
        c->cfg->remote.n_subscribe = n;
    } else {
        struct config_remote_fwd *a = (struct config_remote_fwd *)(void *)arr;
        if (rc) {
            config_free_fwds(a, n);
            return rc;
        }
        config_free_fwds(c->cfg->remote.forward, c->cfg->remote.n_forward);
        c->cfg->remote.forward = a;
        c->cfg->remote.n_forward = n;
    }
    return 0;
}

/* Checked here; applied once the top level is complete (build_modems). */
static int put_modems(struct config_ctx *c, const cJSON *it, const char *kp)
{
    size_t i = 0;

    if (!cJSON_IsArray(it))
        return config_fail(c, "%s: expected array", kp);
    if (cJSON_GetArraySize(it) < 1 || cJSON_GetArraySize(it) > CONFIG_MODEMS_MAX)
        return config_fail(c, "%s: expected 1-%d entries", kp, CONFIG_MODEMS_MAX);
    for (const cJSON *e = it->child; e; e = e->next, i++)
        if (!cJSON_IsObject(e))
            return config_fail(c, "%s[%zu]: expected object", kp, i);
    c->modems = it;
    return 0;
}

static int put_json(struct config_ctx *c, const struct key *k, const cJSON *it, const char *kp)
{
    int n;
    switch (k->kind) {
    case K_STR:
        if (!cJSON_IsString(it))
            return config_fail(c, "%s: expected string", kp);
        return put_str(c, SLOT(c->cfg, k->off, char *), it->valuestring, k->check, kp);
    case K_NSTR:
        if (cJSON_IsNull(it)) {
            char **slot = SLOT(c->cfg, k->off, char *);
            free(*slot);
            *slot = NULL;
            return 0;
        }
        if (!cJSON_IsString(it))
            return config_fail(c, "%s: expected string or null", kp);
        return put_str(c, SLOT(c->cfg, k->off, char *), it->valuestring, k->check, kp);
    case K_INT:
        if (!json_int(it, &n) || n < k->min || n > k->max)
            return config_fail(c, "%s: expected integer %d-%d", kp, k->min, k->max);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_BAUD:
        if (!json_int(it, &n))
            return config_fail(c, "%s: expected integer", kp);
        if (!config_baud_ok(n))
            return config_fail(c, "%s: %s", kp, config_baud_why);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(it))
            return config_fail(c, "%s: expected boolean", kp);
        *SLOT(c->cfg, k->off, bool) = cJSON_IsTrue(it);
        return 0;
    case K_OBJ:
        if (!cJSON_IsObject(it))
            return config_fail(c, "%s: expected object", kp);
        if (k->off != SIZE_MAX)
            *SLOT(c->cfg, k->off, bool) = true;
        return config_walk(c, it, k->sub, kp);
    case K_LIST:
        return put_list(c, k, it, kp);
    case K_SUBS:
    case K_FWDS:
        return put_remote_list(c, k, it, kp);
    case K_MODEMS:
        return put_modems(c, it, kp);
    }
    return config_fail(c, "%s: internal error", kp);
}

/* Every key must be in the table and appear once: cJSON keeps duplicates
 * and would silently use the first. */
int config_walk(struct config_ctx *c, const cJSON *obj, const struct key *keys, const char *path)
{
    char kp[KEY_PATH_MAX];
    uint32_t seen = 0;

    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t i = 0;
        while (keys[i].name && strcmp(keys[i].name, it->string) != 0)
            i++;
        key_path(kp, sizeof kp, path, it->string);
        if (!keys[i].name)
            return config_fail(c, "%s: unknown key", kp);
        if (seen & (UINT32_C(1) << i))
            return config_fail(c, "%s: duplicate key", kp);
        seen |= UINT32_C(1) << i;
        int rc = put_json(c, &keys[i], it, kp);
        if (rc)
            return rc;
    }
    return 0;
}

static unsigned line_of(const char *text, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

/* What cJSON accepts but we must not: bytes that are not UTF-8 (they would
 * reach the broker and the modem as is), and NUL, raw or as "\u0000",
 * which cJSON silently cuts a string at. Returns the offending offset or
 * SIZE_MAX. */
static size_t text_scan(const char *text, size_t len, const char **why)
{
    const unsigned char *p = (const unsigned char *)text;
    bool in_str = false;

    for (size_t i = 0; i < len;) {
        if (p[i] == 0) {
            *why = "NUL byte";
            return i;
        }
        size_t k = utf8_seq(p + i, len - i);
        if (!k) {
            *why = "invalid UTF-8";
            return i;
        }
        if (in_str && p[i] == '\\' && i + 1 < len) {
            if (i + 5 < len && memcmp(p + i + 1, "u0000", 5) == 0) {
                *why = "\\u0000 in a string";
                return i;
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
    return SIZE_MAX;
}

/* The file's text as a JSON object in *root (the caller deletes it). */
int config_parse_json(struct config_ctx *c, const char *json, size_t len, cJSON **root)
{
    const char *why = NULL;
    size_t bad = text_scan(json, len, &why);
    if (bad != SIZE_MAX)
        return config_fail(c, "config: %s at line %u", why, line_of(json, bad));

    const char *end = NULL;
    *root = len ? cJSON_ParseWithLengthOpts(json, len, &end, 0) : NULL;
    if (!*root) {
        size_t pos = end && end >= json ? (size_t)(end - json) : 0;
        return config_fail(c, "config: invalid JSON at line %u", line_of(json, pos < len ? pos : len));
    }
    /* cJSON stops after the first value: anything but space after it is
     * a syntax error too (two objects, a stray brace). */
    size_t pos = (size_t)(end - json);
    while (pos < len && strchr(" \t\r\n", json[pos]))
        pos++;
    if (pos < len)
        return config_fail(c, "config: invalid JSON at line %u", line_of(json, pos));
    if (!cJSON_IsObject(*root))
        return config_fail(c, "config: expected a JSON object");
    return 0;
}
