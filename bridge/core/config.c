/* Configuration: built-in defaults < config file < environment < command
 * line (the README's Configuration).
 *
 * Everything but config_load() is pure: the file's text and the
 * environment come in as arguments, so the tests feed them directly.
 *
 * Each layer validates what it sets, with the name the user wrote: a key
 * path for the file ("remote.subscribe[1].qos"), the variable for the
 * environment ("MODEM2MQTT_BAUD"), the option for the command line
 * ("--baud"). Error messages never quote a value: a value may be a secret,
 * and the name alone tells the user where to look. */
#include "core/config.h"
#include "core/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/utf8.h"

/* Bounds. A config is a few KiB; anything near these is a mistake. */
#define CONFIG_FILE_MAX     (1024 * 1024)
#define PASSWORD_FILE_MAX   4096
#define KEY_PATH_MAX        192     /* "remote.subscribe[31].local" and more */
#define KEY_NAME_SHOWN      48      /* an unknown key is quoted at most this long */

/* ---- errors ------------------------------------------------------------- */

struct ctx {
    struct config *cfg;           /* being built: the top level's, or a modem's */
    char *err;
    size_t err_size;
    const cJSON *modems;          /* the file's "modems" array, or NULL */
    char prefix[40];              /* "modems[3]." while a modem's is checked, else "" */
};

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

__attribute__((format(printf, 2, 3)))
static int fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c->err, c->err_size, -EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(struct ctx *c)
{
    if (c->err && c->err_size)
        snprintf(c->err, c->err_size, "config: out of memory");
    return -ENOMEM;
}

#define SLOT(cfg, off, type) ((type *)(void *)((char *)(cfg) + (off)))

/* ---- setting values --------------------------------------------------- */

static int set_str(char **slot, const char *v)
{
    char *copy = NULL;
    if (v && !(copy = strdup(v)))
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* A checked string under its user-facing name. */
static int put_str(struct ctx *c, char **slot, const char *v, str_check check, const char *name)
{
    const char *why = check ? check(v) : NULL;
    if (why)
        return fail(c, "%s: %s", name, why);
    return set_str(slot, v) ? oom(c) : 0;
}

/* A value from the environment or the command line, as text. */
static int put_text(struct ctx *c, const struct key *k, const char *v, const char *name)
{
    int n;
    switch (k->kind) {
    case K_BAUD:
        if (!config_parse_uint(v, &n))
            return fail(c, "%s: expected integer", name);
        if (!config_baud_ok(n))
            return fail(c, "%s: %s", name, config_baud_why);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_STR:
        return put_str(c, SLOT(c->cfg, k->off, char *), v, k->check, name);
    default:
        return fail(c, "%s: internal error", name);
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

static int walk(struct ctx *c, const cJSON *obj, const struct key *keys, const char *path);

static int put_list(struct ctx *c, const struct key *k, const cJSON *it, const char *kp)
{
    if (!cJSON_IsArray(it))
        return fail(c, "%s: expected array", kp);
    size_t n = (size_t)cJSON_GetArraySize(it);
    if (n > k->max_items)
        return fail(c, "%s: at most %zu entries", kp, k->max_items);

    char **list = calloc(n ? n : 1, sizeof *list);
    if (!list)
        return oom(c);
    size_t i = 0;
    int rc = 0;
    for (const cJSON *e = it->child; e; e = e->next, i++) {
        const char *why = !cJSON_IsString(e) ? "expected string" : k->check(e->valuestring);
        if (why) {
            rc = fail(c, "%s[%zu]: %s", kp, i, why);
            break;
        }
        if (!(list[i] = strdup(e->valuestring))) {
            rc = oom(c);
            break;
        }
    }
    if (rc) {
        free_list(list, n);
        return rc;
    }
    char ***slot = SLOT(c->cfg, k->off, char **);
    size_t *count = SLOT(c->cfg, k->off_n, size_t);
    free_list(*slot, *count);
    *slot = list;
    *count = n;
    return 0;
}

static int put_entry(struct ctx *c, const cJSON *e, const struct entry_field *fields, void *entry,
                     const char *ep)
{
    char kp[KEY_PATH_MAX + 24 + KEY_NAME_SHOWN + 8];
    unsigned seen = 0;

    if (!cJSON_IsObject(e))
        return fail(c, "%s: expected object", ep);
    for (const cJSON *f = e->child; f; f = f->next) {
        size_t i = 0;
        while (fields[i].name && strcmp(fields[i].name, f->string) != 0)
            i++;
        key_path(kp, sizeof kp, ep, f->string);
        if (!fields[i].name)
            return fail(c, "%s: unknown key", kp);
        if (seen & (1u << i))
            return fail(c, "%s: duplicate key", kp);
        seen |= 1u << i;

        if (!fields[i].check) {
            int *q = SLOT(entry, fields[i].off, int);
            if (!json_int(f, q) || *q < 0 || *q > 2)
                return fail(c, "%s: expected integer 0-2", kp);
            continue;
        }
        char **slot = SLOT(entry, fields[i].off, char *);
        if (fields[i].nullable && cJSON_IsNull(f))
            continue;
        if (!cJSON_IsString(f))
            return fail(c, "%s: expected string%s", kp, fields[i].nullable ? " or null" : "");
        int rc = put_str(c, slot, f->valuestring, fields[i].check, kp);
        if (rc)
            return rc;
    }
    for (size_t i = 0; fields[i].name; i++)
        if (fields[i].required && !(seen & (1u << i)))
            return fail(c, "%s.%s: missing", ep, fields[i].name);
    return 0;
}

static void free_subs(struct config_remote_sub *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].topic);
        free(s[i].local);
    }
    free(s);
}

static void free_fwds(struct config_remote_fwd *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].local);
        free(f[i].remote);
    }
    free(f);
}

static int put_remote_list(struct ctx *c, const struct key *k, const cJSON *it, const char *kp)
{
    bool subs = k->kind == K_SUBS;
    size_t size = subs ? sizeof(struct config_remote_sub) : sizeof(struct config_remote_fwd);

    if (!cJSON_IsArray(it))
        return fail(c, "%s: expected array", kp);
    size_t n = (size_t)cJSON_GetArraySize(it);
    if (n > REMOTE_LIST_MAX)
        return fail(c, "%s: at most %d entries", kp, REMOTE_LIST_MAX);
    char *arr = calloc(n ? n : 1, size);
    if (!arr)
        return oom(c);

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
            free_subs(a, n);
            return rc;
        }
        free_subs(c->cfg->remote.subscribe, c->cfg->remote.n_subscribe);
        c->cfg->remote.subscribe = a;
        c->cfg->remote.n_subscribe = n;
    } else {
        struct config_remote_fwd *a = (struct config_remote_fwd *)(void *)arr;
        if (rc) {
            free_fwds(a, n);
            return rc;
        }
        free_fwds(c->cfg->remote.forward, c->cfg->remote.n_forward);
        c->cfg->remote.forward = a;
        c->cfg->remote.n_forward = n;
    }
    return 0;
}

/* Checked here; applied once the top level is complete (build_modems). */
static int put_modems(struct ctx *c, const cJSON *it, const char *kp)
{
    size_t i = 0;

    if (!cJSON_IsArray(it))
        return fail(c, "%s: expected array", kp);
    if (cJSON_GetArraySize(it) < 1 || cJSON_GetArraySize(it) > CONFIG_MODEMS_MAX)
        return fail(c, "%s: expected 1-%d entries", kp, CONFIG_MODEMS_MAX);
    for (const cJSON *e = it->child; e; e = e->next, i++)
        if (!cJSON_IsObject(e))
            return fail(c, "%s[%zu]: expected object", kp, i);
    c->modems = it;
    return 0;
}

static int put_json(struct ctx *c, const struct key *k, const cJSON *it, const char *kp)
{
    int n;
    switch (k->kind) {
    case K_STR:
        if (!cJSON_IsString(it))
            return fail(c, "%s: expected string", kp);
        return put_str(c, SLOT(c->cfg, k->off, char *), it->valuestring, k->check, kp);
    case K_NSTR:
        if (cJSON_IsNull(it)) {
            char **slot = SLOT(c->cfg, k->off, char *);
            free(*slot);
            *slot = NULL;
            return 0;
        }
        if (!cJSON_IsString(it))
            return fail(c, "%s: expected string or null", kp);
        return put_str(c, SLOT(c->cfg, k->off, char *), it->valuestring, k->check, kp);
    case K_INT:
        if (!json_int(it, &n) || n < k->min || n > k->max)
            return fail(c, "%s: expected integer %d-%d", kp, k->min, k->max);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_BAUD:
        if (!json_int(it, &n))
            return fail(c, "%s: expected integer", kp);
        if (!config_baud_ok(n))
            return fail(c, "%s: %s", kp, config_baud_why);
        *SLOT(c->cfg, k->off, int) = n;
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(it))
            return fail(c, "%s: expected boolean", kp);
        *SLOT(c->cfg, k->off, bool) = cJSON_IsTrue(it);
        return 0;
    case K_OBJ:
        if (!cJSON_IsObject(it))
            return fail(c, "%s: expected object", kp);
        if (k->off != SIZE_MAX)
            *SLOT(c->cfg, k->off, bool) = true;
        return walk(c, it, k->sub, kp);
    case K_LIST:
        return put_list(c, k, it, kp);
    case K_SUBS:
    case K_FWDS:
        return put_remote_list(c, k, it, kp);
    case K_MODEMS:
        return put_modems(c, it, kp);
    }
    return fail(c, "%s: internal error", kp);
}

/* Every key must be in the table and appear once: cJSON keeps duplicates
 * and would silently use the first. */
static int walk(struct ctx *c, const cJSON *obj, const struct key *keys, const char *path)
{
    char kp[KEY_PATH_MAX];
    uint32_t seen = 0;

    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t i = 0;
        while (keys[i].name && strcmp(keys[i].name, it->string) != 0)
            i++;
        key_path(kp, sizeof kp, path, it->string);
        if (!keys[i].name)
            return fail(c, "%s: unknown key", kp);
        if (seen & (UINT32_C(1) << i))
            return fail(c, "%s: duplicate key", kp);
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
static int parse_json(struct ctx *c, const char *json, size_t len, cJSON **root)
{
    const char *why = NULL;
    size_t bad = text_scan(json, len, &why);
    if (bad != SIZE_MAX)
        return fail(c, "config: %s at line %u", why, line_of(json, bad));

    const char *end = NULL;
    *root = len ? cJSON_ParseWithLengthOpts(json, len, &end, 0) : NULL;
    if (!*root) {
        size_t pos = end && end >= json ? (size_t)(end - json) : 0;
        return fail(c, "config: invalid JSON at line %u", line_of(json, pos < len ? pos : len));
    }
    /* cJSON stops after the first value: anything but space after it is
     * a syntax error too (two objects, a stray brace). */
    size_t pos = (size_t)(end - json);
    while (pos < len && strchr(" \t\r\n", json[pos]))
        pos++;
    if (pos < len)
        return fail(c, "config: invalid JSON at line %u", line_of(json, pos));
    if (!cJSON_IsObject(*root))
        return fail(c, "config: expected a JSON object");
    return 0;
}

/* ---- defaults, env, cli -------------------------------------------------- */

static int set_defaults(struct config *cfg)
{
    static const struct { size_t off; const char *v; } strs[] = {
        {OFF(mqtt.broker), "mqtt://localhost:1883"},
        {OFF(mqtt.base_topic), "modem"},
        {OFF(mqtt.ha_prefix), "homeassistant"},
        {OFF(mqtt.pool.group), "modem2mqtt"},
        {OFF(modem.port), "auto"},
        /* The remote block's defaults apply once "remote" is present. */
        {OFF(remote.server), "tcp://iot.dfrobot.com:1883"},
        {OFF(remote.client_id), "modem2mqtt"},
        {OFF(state_dir), "/var/lib/modem2mqtt"},
        {OFF(log_level), "info"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (set_str(SLOT(cfg, strs[i].off, char *), strs[i].v))
            return -ENOMEM;

    cfg->mqtt.keepalive = 30;
    cfg->mqtt.ha_discovery = true;
    cfg->modem.baud = 115200;
    cfg->modem.status_interval = 60;
    cfg->modem.command_timeout_ms = 5000;
    cfg->sms.max_parts = 6;
    cfg->sms.rate_per_hour = 60;
    cfg->remote.keepalive = 120;
    cfg->remote.clean_session = true;

    cfg->sms.allow_to = calloc(1, sizeof(char *));
    cfg->calls.allow_to = calloc(1, sizeof(char *));
    if (!cfg->sms.allow_to || !cfg->calls.allow_to)
        return -ENOMEM;
    if (!(cfg->sms.allow_to[0] = strdup("*")))
        return -ENOMEM;
    cfg->sms.n_allow_to = 1;
    if (!(cfg->calls.allow_to[0] = strdup("*")))
        return -ENOMEM;
    cfg->calls.n_allow_to = 1;
    return 0;
}

/* An empty variable counts as unset: compose files and systemd units often
 * define a variable with nothing after the '='. */
static int apply_env(struct ctx *c, const char *(*getenv_fn)(const char *name))
{
    for (const struct key *k = config_env_keys; k->name; k++) {
        const char *v = getenv_fn(k->name);
        if (!v || !*v)
            continue;
        int rc = put_text(c, k, v, k->name);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_cli(struct ctx *c, const struct config_cli *cli)
{
    const char *const values[] = {cli->port, cli->broker, cli->base_topic, cli->log_level};

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        const struct key *k = &config_cli_keys[i];

        if (!values[i])
            continue;
        int rc = put_text(c, k, values[i], k->name);
        if (rc)
            return rc;
    }
    if (cli->baud) {
        if (!config_baud_ok(cli->baud))
            return fail(c, "--baud: %s", config_baud_why);
        c->cfg->modem.baud = cli->baud;
    }
    return 0;
}

/* remote.cert_file and remote.key_file: one is useless without the other,
 * and the module presents them only in a TLS session. */
static int check_remote_client_cert(struct ctx *c)
{
    const struct config *cfg = c->cfg;
    bool cert = cfg->remote.cert_file != NULL, key = cfg->remote.key_file != NULL;

    if (cert && !key)
        return fail(c, "%sremote.key_file: required with remote.cert_file", c->prefix);
    if (key && !cert)
        return fail(c, "%sremote.cert_file: required with remote.key_file", c->prefix);
    if (cert && !cfg->remote.tls)
        return fail(c, "%sremote.cert_file: needs \"tls\": true", c->prefix);
    return 0;
}

/* A pool needs its topic; it must not be a modem's own command root. */
static int check_pool(struct ctx *c)
{
    const struct config *cfg = c->cfg;

    if (!cfg->mqtt.pool.enabled)
        return 0;
    if (!cfg->mqtt.pool.topic)
        return fail(c, "mqtt.pool.topic: required with mqtt.pool");
    if (strcmp(cfg->mqtt.pool.topic, cfg->mqtt.base_topic) == 0)
        return *c->prefix ? fail(c, "%sbase_topic: must differ from mqtt.pool.topic", c->prefix)
                          : fail(c, "mqtt.pool.topic: must differ from mqtt.base_topic");
    return 0;
}

/* "modem2mqtt-<base topic, '/' as '-'>": two bridges with different base
 * topics on one broker never share a client id (the broker would let each
 * take the other's session over, again and again). */
static int default_client_id(struct ctx *c)
{
    static const char prefix[] = "modem2mqtt-";
    const char *base = c->cfg->mqtt.base_topic;
    size_t n = strlen(base), max = CLIENT_ID_MAX - (sizeof(prefix) - 1);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)base[n] & 0xC0) == 0x80)
            n--;        /* not inside a UTF-8 sequence */
    }
    char *id = malloc(sizeof(prefix) + n);
    if (!id)
        return oom(c);
    memcpy(id, prefix, sizeof(prefix) - 1);
    for (size_t i = 0; i < n; i++)
        id[sizeof(prefix) - 1 + i] = base[i] == '/' ? '-' : base[i];
    id[sizeof(prefix) - 1 + n] = '\0';
    c->cfg->mqtt.client_id = id;
    return 0;
}

/* Where a top-level base topic came from, when one was given. */
static const char *base_topic_given(const cJSON *root,
                                    const char *(*getenv_fn)(const char *name),
                                    const struct config_cli *cli)
{
    const char *env = getenv_fn ? getenv_fn("MODEM2MQTT_BASE_TOPIC") : NULL;

    if (cli && cli->base_topic)
        return "--base-topic";
    if (env && *env)
        return "MODEM2MQTT_BASE_TOPIC";
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "mqtt"),
                                         "base_topic"))
        return "mqtt.base_topic";
    return NULL;
}

/* A modems entry over the complete top level: its keys, then what is
 * derived from its name. */
static int apply_entry(struct ctx *c, const cJSON *entry, size_t i)
{
    struct config *cfg = c->cfg;
    char path[32], *s;
    int rc;

    snprintf(path, sizeof(path), "modems[%zu]", i);
    if ((rc = walk(c, entry, config_modem_entry_keys, path)))
        return rc;
    if (!cfg->name)
        return fail(c, "%s.name: required", path);
    if (!cJSON_GetObjectItemCaseSensitive(entry, "base_topic")) {
        if (asprintf(&s, "modem/%s", cfg->name) < 0)
            return oom(c);
        free(cfg->mqtt.base_topic);
        cfg->mqtt.base_topic = s;
    }
    if (asprintf(&s, "%s-%s", cfg->mqtt.client_id ? cfg->mqtt.client_id : "modem2mqtt",
                 cfg->name) < 0)
        return oom(c);
    free(cfg->mqtt.client_id);
    cfg->mqtt.client_id = s;
    if (asprintf(&s, "%s/%s", cfg->state_dir, cfg->name) < 0)
        return oom(c);
    free(cfg->state_dir);
    cfg->state_dir = s;
    snprintf(c->prefix, sizeof(c->prefix), "%s.", path);
    return 0;
}

/* One whole configuration into cfg: defaults < file < environment <
 * command line, then (entry not NULL) the modems entry's keys. */
static int build_one(struct ctx *c, struct config *cfg, const cJSON *root,
                     const char *(*getenv_fn)(const char *name), const struct config_cli *cli,
                     const cJSON *entry, size_t i)
{
    int rc;

    c->cfg = cfg;
    c->prefix[0] = '\0';
    if (set_defaults(cfg))
        return oom(c);
    if (root && (rc = walk(c, root, config_root_keys, "")))
        return rc;
    if (getenv_fn && (rc = apply_env(c, getenv_fn)))
        return rc;
    if (cli && (rc = apply_cli(c, cli)))
        return rc;
    if (entry && (rc = apply_entry(c, entry, i)))
        return rc;
    if (!cfg->mqtt.client_id && (rc = default_client_id(c)))
        return rc;
    /* With modems the top level's base topic is no modem's. */
    if ((entry || !c->modems) && (rc = check_pool(c)))
        return rc;
    return check_remote_client_cert(c);
}

/* What two modems of one process must not share. */
static int check_modem_pair(struct ctx *c, const struct config *a, size_t i,
                            const struct config *b, size_t j)
{
    if (strcmp(a->name, b->name) == 0)
        return fail(c, "modems[%zu].name: the same as modems[%zu]'s", j, i);
    if (strcmp(a->mqtt.base_topic, b->mqtt.base_topic) == 0)
        return fail(c, "modems[%zu].base_topic: the same as modems[%zu]'s", j, i);
    if (strcmp(a->modem.port, b->modem.port) == 0)
        return fail(c, "modems[%zu].modem.port: the same as modems[%zu]'s", j, i);
    /* The remote broker would drop one session for the other, forever. */
    if (a->remote.enabled && b->remote.enabled && strcmp(a->remote.server, b->remote.server) == 0 &&
        strcmp(a->remote.client_id, b->remote.client_id) == 0)
        return fail(c, "modems[%zu].remote.client_id: the same as modems[%zu]'s on the same server",
                    j, i);
    return 0;
}

static int build_modems(struct ctx *c, struct config *top, const cJSON *root,
                        const char *(*getenv_fn)(const char *name), const struct config_cli *cli)
{
    const char *given = base_topic_given(root, getenv_fn, cli);
    size_t n = (size_t)cJSON_GetArraySize(c->modems), i = 0;
    int rc;

    if (given)
        return fail(c, "%s: not used with modems (each has its own base_topic, by default "
                       "modem/<name>)", given);
    top->modems = calloc(n, sizeof(*top->modems));
    if (!top->modems)
        return oom(c);
    for (const cJSON *e = c->modems->child; e; e = e->next, i++) {
        top->n_modems = i + 1;      /* config_free frees a half-built one too */
        if ((rc = build_one(c, &top->modems[i], root, getenv_fn, cli, e, i)))
            return rc;
        /* "auto" takes the first modem it finds: the same for each. */
        if (n > 1 && strcmp(top->modems[i].modem.port, "auto") == 0)
            return fail(c, "modems[%zu].modem.port: \"auto\" cannot tell several modems apart; "
                           "name each port (/dev/serial/by-id/...)", i);
        for (size_t k = 0; k < i; k++)
            if ((rc = check_modem_pair(c, &top->modems[k], k, &top->modems[i], i)))
                return rc;
    }
    c->cfg = top;
    return 0;
}

int config_build(struct config *cfg, const char *json, size_t json_len,
                 const char *(*getenv_fn)(const char *name), const struct config_cli *cli,
                 char *err, size_t err_size)
{
    struct ctx c = {.cfg = cfg, .err = err, .err_size = err_size};
    cJSON *root = NULL;
    int rc = 0;

    memset(cfg, 0, sizeof *cfg);
    if (err && err_size)
        err[0] = '\0';
    if (json)
        rc = parse_json(&c, json, json_len, &root);
    if (!rc)
        rc = build_one(&c, cfg, root, getenv_fn, cli, NULL, 0);
    if (!rc && c.modems)
        rc = build_modems(&c, cfg, root, getenv_fn, cli);
    cJSON_Delete(root);
    if (rc)
        config_free(cfg);
    return rc;
}

/* ---- files (config_load only) -------------------------------------------- */

/* Reads at most max bytes; -EFBIG beyond. *out is NUL-terminated. */
static int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;

    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                rc = -EFBIG;
                goto out;
            }
            size_t ncap = cap * 2;
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        rc = -EFBIG;
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* The file's content is the password, with one trailing newline removed
 * (echo and editors add one); nothing of it goes into a message. */
static int load_password(struct config *cfg, char *err, size_t err_size)
{
    const char *path = cfg->mqtt.password_file;
    char *text = NULL;
    size_t len = 0;

    int rc = read_file(path, PASSWORD_FILE_MAX, &text, &len);
    if (rc == -EFBIG)
        return config_fail_to(err, err_size, "%s: larger than %d bytes", path, PASSWORD_FILE_MAX);
    if (rc)
        return config_fail_to(err, err_size, "%s: %s", path, strerror(-rc));
    if (len && text[len - 1] == '\n') {
        text[--len] = '\0';
        if (len && text[len - 1] == '\r')
            text[--len] = '\0';
    }
    if (memchr(text, '\0', len)) {
        explicit_bzero(text, len);
        free(text);
        return config_fail_to(err, err_size, "%s: contains a NUL byte", path);
    }
    cfg->mqtt.password = text;
    return 0;
}

int config_load(struct config *cfg, const struct config_cli *cli, char *err, size_t err_size)
{
    const char *path = cli && cli->config_file ? cli->config_file : CONFIG_DEFAULT_FILE;
    char *text = NULL;
    size_t len = 0;

    memset(cfg, 0, sizeof *cfg);
    int rc = read_file(path, CONFIG_FILE_MAX, &text, &len);
    /* The default file is optional; a named one must exist. */
    if (rc == -ENOENT && !(cli && cli->config_file))
        rc = 0;
    else if (rc == -EFBIG)
        return config_fail_to(err, err_size, "%s: larger than 1 MiB", path);
    else if (rc)
        return config_fail_to(err, err_size, "%s: %s", path, strerror(-rc));

    rc = config_build(cfg, text, len, env_get, cli, err, err_size);
    if (text)
        explicit_bzero(text, len); /* remote.password may be in it */
    free(text);
    if (rc)
        return rc;

    if (!cfg->mqtt.password && cfg->mqtt.password_file) {
        rc = load_password(cfg, err, err_size);
        /* Every modem's session logs in to the one broker alike. */
        for (size_t i = 0; rc == 0 && i < cfg->n_modems; i++)
            if (!cfg->modems[i].mqtt.password &&
                !(cfg->modems[i].mqtt.password = strdup(cfg->mqtt.password)))
                rc = config_fail_to(err, err_size, "config: out of memory");
        if (rc) {
            config_free(cfg);
            return rc;
        }
    }
    return 0;
}

/* ---- the rest ---------------------------------------------------------- */

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    char **strs[] = {
        &cfg->mqtt.broker,  &cfg->mqtt.base_topic, &cfg->mqtt.client_id,
        &cfg->mqtt.username, &cfg->mqtt.password,  &cfg->mqtt.password_file,
        &cfg->mqtt.ca_file, &cfg->mqtt.ha_prefix,  &cfg->modem.port,
        &cfg->modem.pin,    &cfg->modem.apn,       &cfg->remote.server,
        &cfg->remote.client_id, &cfg->remote.username, &cfg->remote.password,
        &cfg->remote.ca_file, &cfg->remote.cert_file, &cfg->remote.key_file,
        &cfg->state_dir,    &cfg->log_level,
        &cfg->mqtt.ha_notify_to, &cfg->metrics.listen, &cfg->mqtt.pool.topic,
        &cfg->mqtt.pool.group, &cfg->name,
    };
    /* Secrets are wiped, not just freed: the heap outlives them. */
    char *secrets[] = {cfg->mqtt.password, cfg->modem.pin, cfg->remote.password};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (secrets[i])
            explicit_bzero(secrets[i], strlen(secrets[i]));
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    free_list(cfg->modem.init, cfg->modem.n_init);
    free_list(cfg->sms.allow_to, cfg->sms.n_allow_to);
    free_list(cfg->calls.allow_to, cfg->calls.n_allow_to);
    free_subs(cfg->remote.subscribe, cfg->remote.n_subscribe);
    free_fwds(cfg->remote.forward, cfg->remote.n_forward);
    for (size_t i = 0; i < cfg->n_modems; i++)
        config_free(&cfg->modems[i]);
    free(cfg->modems);
    memset(cfg, 0, sizeof *cfg);
}
