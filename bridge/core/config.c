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
 * and the name alone tells the user where to look.
 *
 * This file layers the sources, checks what spans keys, builds each
 * "modems" entry over the top level, and reads the files. The words are
 * config_keys.c's, the reading of values config_read.c's, the command
 * line config_cli.c's. */
#include "core/config.h"
#include "core/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>


/* Bounds. A config is a few KiB; anything near these is a mistake. */
#define CONFIG_FILE_MAX     (1024 * 1024)
#define PASSWORD_FILE_MAX   4096

/* ---- defaults, env, cli -------------------------------------------------- */

static int set_defaults(struct config *cfg)
{
    static const struct { size_t off; const char *v; } strs[] = {
        {OFF(mqtt.broker), "mqtt://localhost:1883"},
        {OFF(mqtt.base_topic), "modem"},
        {OFF(mqtt.ha_prefix), "homeassistant"},
        {OFF(mqtt.pool.group), "modem2mqtt"},
        {OFF(modem.port), "auto"},
        {OFF(modem.sleep), "off"},
        /* The remote block's defaults apply once "remote" is present. */
        {OFF(remote.server), "tcp://iot.dfrobot.com:1883"},
        {OFF(remote.client_id), "modem2mqtt"},
        {OFF(state_dir), "/var/lib/modem2mqtt"},
        {OFF(log_level), "info"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (config_set_str(SLOT(cfg, strs[i].off, char *), strs[i].v))
            return -ENOMEM;

    cfg->mqtt.keepalive = 30;
    cfg->mqtt.ha_discovery = true;
    cfg->modem.baud = 115200;
    cfg->modem.status_interval = 60;
    cfg->modem.command_timeout_ms = 5000;
    cfg->modem.roaming = true;
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
static int apply_env(struct config_ctx *c, const char *(*getenv_fn)(const char *name))
{
    for (const struct key *k = config_env_keys; k->name; k++) {
        const char *v = getenv_fn(k->name);
        if (!v || !*v)
            continue;
        int rc = config_put_text(c, k, v, k->name);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_cli(struct config_ctx *c, const struct config_cli *cli)
{
    const char *const values[] = {cli->port, cli->broker, cli->base_topic, cli->log_level};

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        const struct key *k = &config_cli_keys[i];

        if (!values[i])
            continue;
        int rc = config_put_text(c, k, values[i], k->name);
        if (rc)
            return rc;
    }
    if (cli->baud) {
        if (!config_baud_ok(cli->baud))
            return config_fail(c, "--baud: %s", config_baud_why);
        c->cfg->modem.baud = cli->baud;
    }
    return 0;
}

/* remote.cert_file and remote.key_file: one is useless without the other,
 * and the module presents them only in a TLS session. */
static int check_remote_client_cert(struct config_ctx *c)
{
    const struct config *cfg = c->cfg;
    bool cert = cfg->remote.cert_file != NULL, key = cfg->remote.key_file != NULL;

    if (cert && !key)
        return config_fail(c, "%sremote.key_file: required with remote.cert_file", c->prefix);
    if (key && !cert)
        return config_fail(c, "%sremote.cert_file: required with remote.key_file", c->prefix);
    if (cert && !cfg->remote.tls)
        return config_fail(c, "%sremote.cert_file: needs \"tls\": true", c->prefix);
    return 0;
}

/* remote.will: its topic and message are required, and the module's
 * AT+CMQTTWILLMSG has no retain flag: a retained will cannot be had. */
static int check_remote_will(struct config_ctx *c)
{
    const struct config *cfg = c->cfg;

    if (!cfg->remote.will.enabled)
        return 0;
    if (!cfg->remote.will.topic)
        return config_fail(c, "%sremote.will.topic: missing", c->prefix);
    if (!cfg->remote.will.payload)
        return config_fail(c, "%sremote.will.payload: missing", c->prefix);
    if (cfg->remote.will.retain)
        return config_fail(c, "%sremote.will.retain: the module's MQTT client cannot retain "
                              "its will (AT+CMQTTWILLMSG has no retain flag); expected false",
                           c->prefix);
    return 0;
}

/* A pool needs its topic; it must not be a modem's own command root. */
static int check_pool(struct config_ctx *c)
{
    const struct config *cfg = c->cfg;

    if (!cfg->mqtt.pool.enabled)
        return 0;
    if (!cfg->mqtt.pool.topic)
        return config_fail(c, "mqtt.pool.topic: required with mqtt.pool");
    if (strcmp(cfg->mqtt.pool.topic, cfg->mqtt.base_topic) == 0)
        return *c->prefix ? config_fail(c, "%sbase_topic: must differ from mqtt.pool.topic", c->prefix)
                          : config_fail(c, "mqtt.pool.topic: must differ from mqtt.base_topic");
    return 0;
}

/* DTR is a wire of a serial port: a device server passes bytes only. (A
 * pty has none either, but a path does not say it is one: the modem finds
 * out when it opens the port.) */
static int check_sleep_port(struct config_ctx *c)
{
    const struct config *cfg = c->cfg;

    if (strcmp(cfg->modem.sleep, "dtr") == 0 && strncmp(cfg->modem.port, "tcp://", 6) == 0)
        return config_fail(c, "%smodem.sleep: \"dtr\" needs a serial port's DTR line, which a "
                              "tcp:// port does not have; use \"rx\"",
                           c->prefix);
    return 0;
}

/* "modem2mqtt-<base topic, '/' as '-'>": two bridges with different base
 * topics on one broker never share a client id (the broker would let each
 * take the other's session over, again and again). */
static int default_client_id(struct config_ctx *c)
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
        return config_oom(c);
    memcpy(id, prefix, sizeof(prefix) - 1);
    for (size_t i = 0; i < n; i++)
        id[sizeof(prefix) - 1 + i] = base[i] == '/' ? '-' : base[i];
    id[sizeof(prefix) - 1 + n] = '\0';
    c->cfg->mqtt.client_id = id;
    return 0;
}

/* What the environment and the command line may not set with modems:
 * each modem has its own base topic, and its own port and speed (a
 * variable or option would lose to an entry's key, against the rule that
 * they override the file). The top level's base topic in the file is no
 * modem's either. The name of the first given, or NULL. */
static const char *per_modem_given(const cJSON *root, const char *(*getenv_fn)(const char *name),
                                   const struct config_cli *cli)
{
    static const char *const vars[] = {"MODEM2MQTT_BASE_TOPIC", "MODEM2MQTT_PORT",
                                       "MODEM2MQTT_BAUD"};

    if (cli && cli->base_topic)
        return "--base-topic";
    if (cli && cli->port)
        return "--port";
    if (cli && cli->baud)
        return "--baud";
    for (size_t i = 0; getenv_fn && i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv_fn(vars[i]);
        if (v && *v)
            return vars[i];
    }
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "mqtt"),
                                         "base_topic"))
        return "mqtt.base_topic";
    return NULL;
}

/* A modems entry over the complete top level: its keys, then what is
 * derived from its name. */
static int apply_entry(struct config_ctx *c, const cJSON *entry, size_t i)
{
    struct config *cfg = c->cfg;
    char path[32], *s;
    int rc;

    snprintf(path, sizeof(path), "modems[%zu]", i);
    if ((rc = config_walk(c, entry, config_modem_entry_keys, path)))
        return rc;
    if (!cfg->name)
        return config_fail(c, "%s.name: required", path);
    if (!cJSON_GetObjectItemCaseSensitive(entry, "base_topic")) {
        if (asprintf(&s, "modem/%s", cfg->name) < 0)
            return config_oom(c);
        free(cfg->mqtt.base_topic);
        cfg->mqtt.base_topic = s;
    }
    if (asprintf(&s, "%s-%s", cfg->mqtt.client_id ? cfg->mqtt.client_id : "modem2mqtt",
                 cfg->name) < 0)
        return config_oom(c);
    free(cfg->mqtt.client_id);
    cfg->mqtt.client_id = s;
    if (asprintf(&s, "%s/%s", cfg->state_dir, cfg->name) < 0)
        return config_oom(c);
    free(cfg->state_dir);
    cfg->state_dir = s;
    snprintf(c->prefix, sizeof(c->prefix), "%s.", path);
    return 0;
}

/* One whole configuration into cfg: defaults < file < environment <
 * command line, then (entry not NULL) the modems entry's keys. */
static int build_one(struct config_ctx *c, struct config *cfg, const cJSON *root,
                     const char *(*getenv_fn)(const char *name), const struct config_cli *cli,
                     const cJSON *entry, size_t i)
{
    int rc;

    c->cfg = cfg;
    c->prefix[0] = '\0';
    if (set_defaults(cfg))
        return config_oom(c);
    if (root && (rc = config_walk(c, root, config_root_keys, "")))
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
    if ((rc = check_remote_will(c)))
        return rc;
    if ((rc = check_sleep_port(c)))
        return rc;
    return check_remote_client_cert(c);
}

/* What two modems of one process must not share. */
static int check_modem_pair(struct config_ctx *c, const struct config *a, size_t i,
                            const struct config *b, size_t j)
{
    if (strcmp(a->name, b->name) == 0)
        return config_fail(c, "modems[%zu].name: the same as modems[%zu]'s", j, i);
    if (strcmp(a->mqtt.base_topic, b->mqtt.base_topic) == 0)
        return config_fail(c, "modems[%zu].base_topic: the same as modems[%zu]'s", j, i);
    if (strcmp(a->modem.port, b->modem.port) == 0)
        return config_fail(c, "modems[%zu].modem.port: the same as modems[%zu]'s", j, i);
    /* The remote broker would drop one session for the other, forever. */
    if (a->remote.enabled && b->remote.enabled && strcmp(a->remote.server, b->remote.server) == 0 &&
        strcmp(a->remote.client_id, b->remote.client_id) == 0)
        return config_fail(c, "modems[%zu].remote.client_id: the same as modems[%zu]'s on the same server",
                    j, i);
    return 0;
}

static int build_modems(struct config_ctx *c, struct config *top, const cJSON *root,
                        const char *(*getenv_fn)(const char *name), const struct config_cli *cli)
{
    const char *given = per_modem_given(root, getenv_fn, cli);
    size_t n = (size_t)cJSON_GetArraySize(c->modems), i = 0;
    int rc;

    if (given)
        return config_fail(c, "%s: not used with modems (each entry has its own base_topic, by "
                              "default modem/<name>, and its own modem.port and modem.baud)",
                           given);
    top->modems = calloc(n, sizeof(*top->modems));
    if (!top->modems)
        return config_oom(c);
    for (const cJSON *e = c->modems->child; e; e = e->next, i++) {
        top->n_modems = i + 1;      /* config_free frees a half-built one too */
        if ((rc = build_one(c, &top->modems[i], root, getenv_fn, cli, e, i)))
            return rc;
        /* "auto" takes the first modem it finds: the same for each. */
        if (n > 1 && strcmp(top->modems[i].modem.port, "auto") == 0)
            return config_fail(c, "modems[%zu].modem.port: \"auto\" cannot tell several modems apart; "
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
    struct config_ctx c = {.cfg = cfg, .err = err, .err_size = err_size};
    cJSON *root = NULL;
    int rc = 0;

    memset(cfg, 0, sizeof *cfg);
    if (err && err_size)
        err[0] = '\0';
    if (json)
        rc = config_parse_json(&c, json, json_len, &root);
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
        &cfg->mqtt.pool.group, &cfg->name, &cfg->remote.will.topic,
        &cfg->remote.will.payload, &cfg->modem.sleep,
        &cfg->modem.device_server.registry,
        &cfg->modem.device_server.heartbeat,
    };
    /* Secrets are wiped, not just freed: the heap outlives them. */
    char *secrets[] = {cfg->mqtt.password, cfg->modem.pin, cfg->remote.password};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (secrets[i])
            explicit_bzero(secrets[i], strlen(secrets[i]));
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    config_free_list(cfg->modem.init, cfg->modem.n_init);
    config_free_list(cfg->sms.allow_to, cfg->sms.n_allow_to);
    config_free_list(cfg->calls.allow_to, cfg->calls.n_allow_to);
    config_free_subs(cfg->remote.subscribe, cfg->remote.n_subscribe);
    config_free_fwds(cfg->remote.forward, cfg->remote.n_forward);
    for (size_t i = 0; i < cfg->n_modems; i++)
        config_free(&cfg->modems[i]);
    free(cfg->modems);
    memset(cfg, 0, sizeof *cfg);
}
