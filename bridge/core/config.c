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

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/netaddr.h"
#include "core/topic.h"
#include "core/utf8.h"

/* Bounds. A config is a few KiB; anything near these is a mistake. */
#define CONFIG_FILE_MAX     (1024 * 1024)
#define PASSWORD_FILE_MAX   4096
#define PATH_LEN_MAX        4095
#define KEY_PATH_MAX        192     /* "remote.subscribe[31].local" and more */
#define KEY_NAME_SHOWN      48      /* an unknown key is quoted at most this long */
#define ALLOW_TO_MAX        256
#define CALL_CODE_MAX       32      /* what ATD takes after the '+' (JSON_DIAL_MAX) */
#define INIT_MAX            32
#define AT_LINE_MAX         1024    /* the A7670 takes 3071; ours are short */
#define REMOTE_LIST_MAX     32
#define REMOTE_TOPIC_MAX    1024    /* AT+CMQTTTOPIC / AT+CMQTTSUBTOPIC limit */
#define TOPIC_MAX           1024

/* ---- errors ------------------------------------------------------------- */

struct ctx {
    struct config *cfg;
    char *err;
    size_t err_size;
};

__attribute__((format(printf, 4, 0)))
static int vfail(char *err, size_t size, int rc, const char *fmt, va_list ap)
{
    if (err && size)
        vsnprintf(err, size, fmt, ap);
    return rc;
}

__attribute__((format(printf, 3, 4)))
static int fail_to(char *err, size_t size, const char *fmt, ...)
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

/* ---- text checks ---------------------------------------------------------- */


static bool str_utf8_valid(const char *s)
{
    return utf8_valid((const uint8_t *)s, strlen(s));
}

static bool has_ctrl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            return true;
    return false;
}

/* Strings that go into a quoted AT parameter (AT+CGDCONT, AT+CMQTTACCQ,
 * AT+CMQTTCONNECT): a '"' would end the parameter and V.250 reads "\22"
 * as a quote, so neither may appear; only printable ASCII. */
static bool at_quotable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7E || *s == '"' || *s == '\\')
            return false;
    return true;
}

static bool all_digits(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; *s; s++, n++)
        if (*s < '0' || *s > '9')
            return false;
    return n >= min && n <= max;
}

/* "host", "host:port", "[v6]:port"; a port 1-65535. */
static bool host_port_ok(const char *h, bool port_required)
{
    const char *p = h;
    size_t hl = 0;

    if (*p == '[') {
        for (p++; *p && *p != ']'; p++, hl++)
            if (!strchr("0123456789abcdefABCDEF:.", *p))
                return false;
        if (*p != ']' || hl < 2)
            return false;
        p++;
    } else {
        for (; *p && *p != ':'; p++, hl++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
                return false;
        if (hl == 0 || hl > 253)
            return false;
    }
    if (*p == '\0')
        return !port_required;
    if (*p != ':' || !all_digits(p + 1, 1, 5))
        return false;
    long port = strtol(p + 1, NULL, 10);
    return port >= 1 && port <= 65535;
}

/* A topic the broker accepts (core/topic.h), of at most max bytes. */
static const char *topic_ok(const char *t, bool filter, size_t max)
{
    size_t n = strlen(t);

    if (n > max)
        return max == REMOTE_TOPIC_MAX ? "longer than 1024 bytes" : "too long";
    return topic_check(t, n, filter);
}

/* ---- value checks: NULL when fine, else the reason --------------------- */

typedef const char *(*str_check)(const char *s);

static const char *check_broker(const char *s)
{
    static const char why[] =
        "expected mqtt://host[:port], mqtts://host[:port] or unix:///path";
    const char *h;

    if (has_ctrl(s))
        return why;
    if (strncmp(s, "unix://", 7) == 0) {
        /* sun_path holds 108 bytes with the NUL. */
        if (s[7] != '/' || s[8] == '\0')
            return why;
        return strlen(s + 7) > 107 ? "unix socket path longer than 107 bytes" : NULL;
    }
    if (strncmp(s, "mqtt://", 7) == 0)
        h = s + 7;
    else if (strncmp(s, "mqtts://", 8) == 0)
        h = s + 8;
    else
        return why;
    /* user:pass@host would put a secret on the command line and in logs. */
    if (strchr(h, '@'))
        return "credentials in the URI are not accepted, use mqtt.username and "
               "MODEM2MQTT_PASSWORD_FILE";
    return host_port_ok(h, false) ? NULL : why;
}

static const char *check_topic_root(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty";
    if (strchr(s, '+') || strchr(s, '#'))
        return "must not contain '+' or '#'";
    if (s[0] == '/' || s[n - 1] == '/')
        return "must not start or end with '/'";
    /* '$' topics are the broker's ($SYS) and '#' subscriptions skip them. */
    if (s[0] == '$')
        return "must not start with '$'";
    return topic_ok(s, false, TOPIC_MAX);
}

#define CLIENT_ID_MAX 256

static const char *check_client_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CLIENT_ID_MAX || !str_utf8_valid(s) || has_ctrl(s))
        return "expected 1-256 bytes of UTF-8 without control characters";
    return NULL;
}

/* A shared subscription's group: it goes between "$share/" and the
 * filter, so no '/', '+' or '#'; kept to a portable set. */
static const char *check_pool_group(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789_-") != n)
        return "expected 1-64 of a-z A-Z 0-9 _ -";
    return NULL;
}

static const char *check_username(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "must not be empty (use null for none)";
    if (n > 1024 || !str_utf8_valid(s) || has_ctrl(s))
        return "expected at most 1024 bytes of UTF-8 without control characters";
    return NULL;
}

static const char *check_file(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PATH_LEN_MAX || has_ctrl(s))
        return "expected a file path";
    return NULL;
}

static const char *check_dir_abs(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] != '/' || n > PATH_LEN_MAX || has_ctrl(s))
        return "expected an absolute directory path";
    return NULL;
}

static const char *check_port(const char *s)
{
    static const char why[] = "expected \"auto\", a device path or tcp://HOST:PORT";

    if (strcmp(s, "auto") == 0)
        return NULL;
    if (strncmp(s, "tcp://", 6) == 0)
        return host_port_ok(s + 6, true) ? NULL : why;
    if (s[0] != '/' || strlen(s) > PATH_LEN_MAX || has_ctrl(s))
        return why;
    return NULL;
}

static const char *check_pin(const char *s)
{
    return all_digits(s, 4, 8) ? NULL : "expected 4-8 digits";
}

/* 3GPP TS 23.003 allows 100 octets. An empty APN would be ambiguous with
 * "use the SIM's default", which is what null means. */
static const char *check_apn(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || !at_quotable(s))
        return "expected 1-100 printable ASCII characters without '\"' or '\\' "
               "(null for the network default)";
    return NULL;
}

/* Sent to the modem as one command line: CR or LF would end it early and
 * start another, Ctrl-Z (0x1A) and ESC (0x1B) act on an open prompt. */
static const char *check_at_command(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > AT_LINE_MAX || (s[0] != 'A' && s[0] != 'a') ||
        (s[1] != 'T' && s[1] != 't'))
        return "expected one AT command starting with AT";
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7E)
            return "must be printable ASCII (no CR, LF, Ctrl-Z or ESC)";
    return NULL;
}

static bool is_e164(const char *s)
{
    return s[0] == '+' && s[1] != '0' && all_digits(s + 1, 7, 15);
}

/* "*" (every E.164 number), an E.164 number "+4917012345678" or prefix
 * ("+*", "+49*"), a national number or short code of 2-20 digits ("8888",
 * "0171...") or a digit prefix ("0*", "11*"). A number without '+' is
 * allowed only by an entry without '+': "*" does not reach short codes,
 * which can cost money or subscribe to services. */
static const char *check_allow(const char *s)
{
    static const char why[] = "expected an E.164 number, a national number or short code of "
                              "2-20 digits, or a prefix of either ending in '*'";
    size_t n = strlen(s);

    if (strcmp(s, "*") == 0)
        return NULL;
    if (n >= 2 && s[0] == '+' && s[n - 1] == '*') {
        size_t digits = n - 2;
        if (digits > 15 || (digits > 0 && s[1] == '0'))
            return why;
        for (size_t i = 1; i < n - 1; i++)
            if (s[i] < '0' || s[i] > '9')
                return why;
        return NULL;
    }
    if (n >= 2 && s[n - 1] == '*') {
        char body[24];
        if (n - 1 >= sizeof body)
            return why;
        memcpy(body, s, n - 1);
        body[n - 1] = '\0';
        return all_digits(body, 1, 20) ? NULL : why;
    }
    return is_e164(s) || all_digits(s, 2, 20) ? NULL : why;
}

/* An allow_to entry that is "*" or a prefix ("+49*"): its only '*' is the
 * last character, and it has no '#'. Any other entry with '*' or '#' is
 * a service code (check_call_allow). */
static bool allow_is_prefix(const char *e, size_t len)
{
    return !strchr(e, '#') && strchr(e, '*') == e + len - 1;
}

/* calls.allow_to: what sms.allow_to takes, or a service code listed
 * exactly ("**21*+4917012345678#", "*31#"): '*' and '#' make a dial string
 * an order to the network (call forwarding, barring), so such a code is
 * allowed only by its own entry, never by a prefix. An entry is a prefix
 * when its only '*' is the last character and it holds no '#'. */
static const char *check_call_allow(const char *s)
{
    size_t n = strlen(s);

    if (!strpbrk(s, "*#") || (n > 0 && allow_is_prefix(s, n)))
        return check_allow(s) ? "expected an E.164 number, a national number or short code of "
                                "2-20 digits, a prefix of either ending in '*', or a service "
                                "code of digits, '*' and '#'"
                              : NULL;
    const char *p = s[0] == '+' ? s + 1 : s;
    if (!*p || strspn(p, "0123456789*#") != strlen(p) || strlen(p) > CALL_CODE_MAX)
        return "a service code (with '*' or '#') must be 1-32 of digits, '*' and '#' after "
               "an optional '+'";
    return NULL;
}

/* An E.164 number, no prefix: it goes verbatim into the notify entity's
 * command template (mqtt/hass.c), so it must hold no quote or brace. */
static const char *check_e164(const char *s)
{
    if (!is_e164(s))
        return "expected an E.164 number, e.g. +4917012345678";
    return NULL;
}

static const char *check_log_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return NULL;
    return "expected error, warn, info or debug";
}

static const char *check_listen(const char *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (netaddr_parse(s, &ss, &len) < 0)
        return "expected HOST:PORT with an IP address (\"127.0.0.1:9713\", \"[::1]:9713\") "
               "and a port of 1-65535";
    return NULL;
}

/* The module's MQTT client wants "tcp://" even for TLS (SIMCom MQTT(S)
 * application note); TLS is the separate "tls" flag. */
static const char *check_remote_server(const char *s)
{
    static const char why[] = "expected tcp://host[:port] (set \"tls\": true for TLS)";
    if (strlen(s) > 256 || !at_quotable(s) || strncmp(s, "tcp://", 6) != 0 ||
        !host_port_ok(s + 6, false))
        return why;
    return NULL;
}

static const char *check_remote_client_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !at_quotable(s))
        return "expected 1-128 printable ASCII characters without '\"' or '\\'";
    return NULL;
}

static const char *check_remote_credential(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || !at_quotable(s))
        return "expected 1-256 printable ASCII characters without '\"' or '\\' "
               "(null for none)";
    return NULL;
}

static const char *check_remote_filter(const char *s)
{
    return topic_ok(s, true, REMOTE_TOPIC_MAX);
}

static const char *check_remote_name(const char *s)
{
    return topic_ok(s, false, REMOTE_TOPIC_MAX);
}

static const char *check_local_filter(const char *s)
{
    return topic_ok(s, true, TOPIC_MAX);
}

static const char *check_local_name(const char *s)
{
    return topic_ok(s, false, TOPIC_MAX);
}

/* The rates termios can set without a custom divisor (B300..B4000000): a
 * typo like 11520 fails here rather than as silence on the line. */
static const int std_bauds[] = {
    300,    600,    1200,   2400,    4800,    9600,    19200,   38400,
    57600,  115200, 230400, 460800,  500000,  576000,  921600,  1000000,
    1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000,
};
static const char baud_why[] = "expected a standard serial rate (300-4000000, e.g. 9600, "
                               "115200, 921600)";

static bool baud_ok(int v)
{
    for (size_t i = 0; i < sizeof std_bauds / sizeof std_bauds[0]; i++)
        if (std_bauds[i] == v)
            return true;
    return false;
}

/* ---- the key tables --------------------------------------------------- */

enum kind {
    K_STR,      /* string */
    K_NSTR,     /* string or null */
    K_INT,      /* integer min..max */
    K_BAUD,     /* integer, one of std_bauds */
    K_BOOL,
    K_OBJ,      /* nested table; .off: a bool set true when present (or SIZE_MAX) */
    K_LIST,     /* array of strings; .off the char **, .off_n the size_t */
    K_SUBS,     /* remote.subscribe */
    K_FWDS,     /* remote.forward */
};

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t off_n;
    str_check check;
    int min, max;
    const struct key *sub;
    size_t max_items;
};

#define OFF(f) offsetof(struct config, f)
#define STR(n, f, chk)  {.name = n, .kind = K_STR, .off = OFF(f), .check = chk}
#define NSTR(n, f, chk) {.name = n, .kind = K_NSTR, .off = OFF(f), .check = chk}
#define INT(n, f, lo, hi) {.name = n, .kind = K_INT, .off = OFF(f), .min = lo, .max = hi}
#define BOOL(n, f)      {.name = n, .kind = K_BOOL, .off = OFF(f)}
#define LIST(n, f, cnt, chk, mx) \
    {.name = n, .kind = K_LIST, .off = OFF(f), .off_n = OFF(cnt), .check = chk, .max_items = mx}
#define OBJ(n, tbl)     {.name = n, .kind = K_OBJ, .off = SIZE_MAX, .sub = tbl}

static const struct key ha_keys[] = {
    BOOL("discovery", mqtt.ha_discovery),
    STR("prefix", mqtt.ha_prefix, check_topic_root),
    NSTR("notify_to", mqtt.ha_notify_to, check_e164),
    {0},
};

static const struct key pool_keys[] = {
    STR("topic", mqtt.pool.topic, check_topic_root),
    STR("group", mqtt.pool.group, check_pool_group),
    {0},
};

static const struct key mqtt_keys[] = {
    STR("broker", mqtt.broker, check_broker),
    STR("base_topic", mqtt.base_topic, check_topic_root),
    STR("client_id", mqtt.client_id, check_client_id),
    NSTR("username", mqtt.username, check_username),
    NSTR("password_file", mqtt.password_file, check_file),
    NSTR("ca_file", mqtt.ca_file, check_file),
    /* 0 would turn keepalive off and hide a dead broker; 65535 is MQTT's max. */
    INT("keepalive", mqtt.keepalive, 5, 65535),
    OBJ("homeassistant", ha_keys),
    /* Present means enabled: this modem also takes the pool's commands. */
    {.name = "pool", .kind = K_OBJ, .off = OFF(mqtt.pool.enabled), .sub = pool_keys},
    {0},
};

static const struct key modem_keys[] = {
    STR("port", modem.port, check_port),
    {.name = "baud", .kind = K_BAUD, .off = OFF(modem.baud)},
    NSTR("pin", modem.pin, check_pin),
    NSTR("apn", modem.apn, check_apn),
    LIST("init", modem.init, modem.n_init, check_at_command, INIT_MAX),
    INT("status_interval", modem.status_interval, 5, 86400),
    /* AT+CMGS alone can take 40 s; 10 minutes is beyond any command. */
    INT("command_timeout_ms", modem.command_timeout_ms, 100, 600000),
    {0},
};

static const struct key sms_keys[] = {
    LIST("allow_to", sms.allow_to, sms.n_allow_to, check_allow, ALLOW_TO_MAX),
    /* 16: the SMS service reports at most 16 message references. */
    INT("max_parts", sms.max_parts, 1, 16),
    INT("rate_per_hour", sms.rate_per_hour, 1, 100000),
    BOOL("delivery_reports", sms.delivery_reports),
    BOOL("keep_on_sim", sms.keep_on_sim),
    {0},
};

static const struct key calls_keys[] = {
    LIST("allow_to", calls.allow_to, calls.n_allow_to, check_call_allow, ALLOW_TO_MAX),
    {0},
};

static const struct key remote_keys[] = {
    STR("server", remote.server, check_remote_server),
    STR("client_id", remote.client_id, check_remote_client_id),
    NSTR("username", remote.username, check_remote_credential),
    NSTR("password", remote.password, check_remote_credential),
    /* AT+CMQTTCONNECT takes 1-64800. */
    INT("keepalive", remote.keepalive, 1, 64800),
    BOOL("clean_session", remote.clean_session),
    BOOL("tls", remote.tls),
    NSTR("ca_file", remote.ca_file, check_file),
    NSTR("cert_file", remote.cert_file, check_file),
    NSTR("key_file", remote.key_file, check_file),
    {.name = "subscribe", .kind = K_SUBS},
    {.name = "forward", .kind = K_FWDS},
    {0},
};

static const struct key metrics_keys[] = {
    NSTR("listen", metrics.listen, check_listen),
    {0},
};

static const struct key root_keys[] = {
    OBJ("mqtt", mqtt_keys),
    OBJ("modem", modem_keys),
    OBJ("sms", sms_keys),
    OBJ("calls", calls_keys),
    OBJ("metrics", metrics_keys),
    /* Present means enabled: the module's MQTT stack is used. */
    {.name = "remote", .kind = K_OBJ, .off = OFF(remote.enabled), .sub = remote_keys},
    STR("state_dir", state_dir, check_dir_abs),
    BOOL("allow_raw_at", allow_raw_at),
    STR("log_level", log_level, check_log_level),
    {0},
};

/* The environment, in the order the README lists it. */
static const struct key env_keys[] = {
    STR("MODEM2MQTT_PORT", modem.port, check_port),
    {.name = "MODEM2MQTT_BAUD", .kind = K_BAUD, .off = OFF(modem.baud)},
    STR("MODEM2MQTT_BROKER", mqtt.broker, check_broker),
    STR("MODEM2MQTT_BASE_TOPIC", mqtt.base_topic, check_topic_root),
    STR("MODEM2MQTT_USERNAME", mqtt.username, check_username),
    /* Any bytes: it only goes to the broker, never to the modem. */
    STR("MODEM2MQTT_PASSWORD", mqtt.password, NULL),
    STR("MODEM2MQTT_PASSWORD_FILE", mqtt.password_file, check_file),
    STR("MODEM2MQTT_LOG_LEVEL", log_level, check_log_level),
    STR("MODEM2MQTT_CLIENT_ID", mqtt.client_id, check_client_id),
    {0},
};

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

/* Decimal digits only: "115200". No sign, no spaces, no 0x. */
static bool parse_uint(const char *s, int *out)
{
    if (!all_digits(s, 1, 9))
        return false;
    *out = (int)strtol(s, NULL, 10);
    return true;
}

/* A value from the environment or the command line, as text. */
static int put_text(struct ctx *c, const struct key *k, const char *v, const char *name)
{
    int n;
    switch (k->kind) {
    case K_BAUD:
        if (!parse_uint(v, &n))
            return fail(c, "%s: expected integer", name);
        if (!baud_ok(n))
            return fail(c, "%s: %s", name, baud_why);
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

/* One remote.subscribe[] or remote.forward[] entry's fields. */
struct entry_field {
    const char *name;
    bool required;
    bool nullable;
    str_check check;     /* NULL: the qos integer */
    size_t off;          /* in the entry struct */
};

static const struct entry_field sub_fields[] = {
    {"topic", true, false, check_remote_filter, offsetof(struct config_remote_sub, topic)},
    {"qos", false, false, NULL, offsetof(struct config_remote_sub, qos)},
    {"local", false, true, check_local_name, offsetof(struct config_remote_sub, local)},
    {0},
};

static const struct entry_field fwd_fields[] = {
    {"local", true, false, check_local_filter, offsetof(struct config_remote_fwd, local)},
    {"remote", true, false, check_remote_name, offsetof(struct config_remote_fwd, remote)},
    {"qos", false, false, NULL, offsetof(struct config_remote_fwd, qos)},
    {0},
};

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
        rc = put_entry(c, e, subs ? sub_fields : fwd_fields, arr + i * size, ep);
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
        if (!baud_ok(n))
            return fail(c, "%s: %s", kp, baud_why);
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

static int apply_json(struct ctx *c, const char *json, size_t len)
{
    const char *why = NULL;
    size_t bad = text_scan(json, len, &why);
    if (bad != SIZE_MAX)
        return fail(c, "config: %s at line %u", why, line_of(json, bad));

    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts(json, len, &end, 0) : NULL;
    if (!root) {
        size_t pos = end && end >= json ? (size_t)(end - json) : 0;
        return fail(c, "config: invalid JSON at line %u", line_of(json, pos < len ? pos : len));
    }
    /* cJSON stops after the first value: anything but space after it is
     * a syntax error too (two objects, a stray brace). */
    size_t pos = (size_t)(end - json);
    while (pos < len && strchr(" \t\r\n", json[pos]))
        pos++;
    int rc;
    if (pos < len)
        rc = fail(c, "config: invalid JSON at line %u", line_of(json, pos));
    else if (!cJSON_IsObject(root))
        rc = fail(c, "config: expected a JSON object");
    else
        rc = walk(c, root, root_keys, "");
    cJSON_Delete(root);
    return rc;
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
    for (const struct key *k = env_keys; k->name; k++) {
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
    static const struct key port = STR("--port", modem.port, check_port);
    static const struct key broker = STR("--broker", mqtt.broker, check_broker);
    static const struct key topic = STR("--base-topic", mqtt.base_topic, check_topic_root);
    static const struct key level = STR("--log-level", log_level, check_log_level);
    const struct { const struct key *k; const char *v; } opts[] = {
        {&port, cli->port}, {&broker, cli->broker}, {&topic, cli->base_topic},
        {&level, cli->log_level},
    };

    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (!opts[i].v)
            continue;
        int rc = put_text(c, opts[i].k, opts[i].v, opts[i].k->name);
        if (rc)
            return rc;
    }
    if (cli->baud) {
        if (!baud_ok(cli->baud))
            return fail(c, "--baud: %s", baud_why);
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
        return fail(c, "remote.key_file: required with remote.cert_file");
    if (key && !cert)
        return fail(c, "remote.cert_file: required with remote.key_file");
    if (cert && !cfg->remote.tls)
        return fail(c, "remote.cert_file: needs \"tls\": true");
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
        return fail(c, "mqtt.pool.topic: must differ from mqtt.base_topic");
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

int config_build(struct config *cfg, const char *json, size_t json_len,
                 const char *(*getenv_fn)(const char *name), const struct config_cli *cli,
                 char *err, size_t err_size)
{
    struct ctx c = {.cfg = cfg, .err = err, .err_size = err_size};
    int rc;

    memset(cfg, 0, sizeof *cfg);
    if (err && err_size)
        err[0] = '\0';
    if (set_defaults(cfg)) {
        rc = oom(&c);
        goto err;
    }
    if (json && (rc = apply_json(&c, json, json_len)))
        goto err;
    if (getenv_fn && (rc = apply_env(&c, getenv_fn)))
        goto err;
    if (cli && (rc = apply_cli(&c, cli)))
        goto err;
    if (!cfg->mqtt.client_id && (rc = default_client_id(&c)))
        goto err;
    if ((rc = check_pool(&c)))
        goto err;
    if ((rc = check_remote_client_cert(&c)))
        goto err;
    return 0;
err:
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
        return fail_to(err, err_size, "%s: larger than %d bytes", path, PASSWORD_FILE_MAX);
    if (rc)
        return fail_to(err, err_size, "%s: %s", path, strerror(-rc));
    if (len && text[len - 1] == '\n') {
        text[--len] = '\0';
        if (len && text[len - 1] == '\r')
            text[--len] = '\0';
    }
    if (memchr(text, '\0', len)) {
        explicit_bzero(text, len);
        free(text);
        return fail_to(err, err_size, "%s: contains a NUL byte", path);
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
        return fail_to(err, err_size, "%s: larger than 1 MiB", path);
    else if (rc)
        return fail_to(err, err_size, "%s: %s", path, strerror(-rc));

    rc = config_build(cfg, text, len, env_get, cli, err, err_size);
    if (text)
        explicit_bzero(text, len); /* remote.password may be in it */
    free(text);
    if (rc)
        return rc;

    if (!cfg->mqtt.password && cfg->mqtt.password_file) {
        rc = load_password(cfg, err, err_size);
        if (rc) {
            config_free(cfg);
            return rc;
        }
    }
    return 0;
}

/* ---- command line ---------------------------------------------------------- */

enum { OPT_LIST_PORTS = 0x100, OPT_HEALTH };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"port", required_argument, NULL, 'p'},
    {"baud", required_argument, NULL, 'b'},
    {"broker", required_argument, NULL, 'H'},
    {"base-topic", required_argument, NULL, 't'},
    {"log-level", required_argument, NULL, 'l'},
    {"list-ports", no_argument, NULL, OPT_LIST_PORTS},
    {"health", no_argument, NULL, OPT_HEALTH},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The option as the user typed it, without "=value" (which may be a
 * secret), at most 32 characters. */
static void option_name(char *out, size_t size, const char *tok, int opt)
{
    if (tok && strncmp(tok, "--", 2) == 0) {
        size_t n = strcspn(tok, "=");
        if (n > 32)
            n = 32;
        snprintf(out, size, "%.*s", (int)n, tok);
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7F)
                *p = '?';
    } else if (opt > 0x20 && opt < 0x7F) {
        snprintf(out, size, "-%c", opt);
    } else {
        snprintf(out, size, "-?");
    }
}

/* "--help=x": glibc reports '?' with optopt set to the option's val. */
static bool given_value(const char *tok, int opt)
{
    if (!opt || !tok || strncmp(tok, "--", 2) != 0 || !strchr(tok, '='))
        return false;
    size_t n = strcspn(tok + 2, "=");
    for (const struct option *o = long_opts; o->name; o++)
        if (o->val == opt && o->has_arg == no_argument && strncmp(o->name, tok + 2, n) == 0)
            return true;
    return false;
}

/* What mosquitto_pub users type for credentials: -u, -P, --username,
 * --password, and the like. */
static bool looks_secret(const char *name)
{
    static const char *const words[] = {"pass", "pwd", "user", "secret", "token", "cred",
                                        "login", "pin"};
    if (name[0] == '-' && name[1] != '-')
        return name[1] == 'P' || name[1] == 'u' || name[1] == 'U';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(name + 2, words[i]))
            return true;
    return false;
}

int config_parse_cli(int argc, char **argv, struct config_cli *cli, char *err, size_t err_size)
{
    bool help = false, version = false, list = false, health = false;
    char name[40];
    int ch;

    memset(cli, 0, sizeof *cli);
    if (err && err_size)
        err[0] = '\0';
    /* 0, not 1: glibc then also forgets a half-parsed "-xyz" bundle, so
     * this can run again (tests, a re-exec). '+': stop at the first
     * non-option; ':': report a missing argument as ':'. */
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+:c:p:b:H:t:l:Vh", long_opts, NULL)) != -1) {
        const char *tok = optind > 0 && optind <= argc ? argv[optind - 1] : NULL;
        switch (ch) {
        case 'c':
            cli->config_file = optarg;
            break;
        case 'p':
            cli->port = optarg;
            break;
        case 'b':
            if (!parse_uint(optarg, &cli->baud)) {
                cli->baud = 0;
                return fail_to(err, err_size, "--baud: expected integer");
            }
            if (!baud_ok(cli->baud))
                return fail_to(err, err_size, "--baud: %s", baud_why);
            break;
        case 'H':
            cli->broker = optarg;
            break;
        case 't':
            cli->base_topic = optarg;
            break;
        case 'l':
            cli->log_level = optarg;
            break;
        case OPT_LIST_PORTS:
            list = true;
            break;
        case OPT_HEALTH:
            health = true;
            break;
        case 'V':
            version = true;
            break;
        case 'h':
            help = true;
            break;
        case ':':
            option_name(name, sizeof name, tok, optopt);
            return fail_to(err, err_size, "option '%s' requires an argument", name);
        default: /* '?' */
            if (given_value(tok, optopt)) {
                option_name(name, sizeof name, tok, 0);
                return fail_to(err, err_size, "option '%s' does not take an argument", name);
            }
            option_name(name, sizeof name, optopt ? NULL : tok, optopt);
            if (looks_secret(name))
                return fail_to(err, err_size,
                               "unknown option '%s': secrets are not accepted on the command "
                               "line, use MODEM2MQTT_PASSWORD_FILE or MODEM2MQTT_PASSWORD "
                               "(and MODEM2MQTT_USERNAME)",
                               name);
            return fail_to(err, err_size, "unknown option '%s' (see --help)", name);
        }
    }
    /* Not quoted: it could be a password typed after an option we refused. */
    if (optind < argc)
        return fail_to(err, err_size, "unexpected argument #%d: options only (see --help)",
                       optind);

    cli->action = help ? CONFIG_HELP : version ? CONFIG_VERSION : list ? CONFIG_LIST_PORTS
                                                                      : CONFIG_RUN;
    if (cli->action == CONFIG_RUN && health)
        cli->action = CONFIG_HEALTH;
    return 0;
}

void config_print_usage(FILE *out, const char *argv0)
{
    const char *prog = "modem2mqtt";
    if (argv0 && *argv0) {
        const char *slash = strrchr(argv0, '/');
        prog = slash ? slash + 1 : argv0;
    }
    fprintf(out,
            "%s [options]\n"
            "  -c, --config FILE      JSON config (default: " CONFIG_DEFAULT_FILE " if present)\n"
            "  -p, --port PORT        modem AT port: a device (/dev/ttyUSB2, /dev/serial/by-id/...),\n"
            "                         a pseudo-terminal, tcp://HOST:PORT (serial device server,\n"
            "                         ser2net), or \"auto\" (find a known modem by USB VID:PID)\n"
            "  -b, --baud N           serial speed (default 115200)\n"
            "  -H, --broker URI       local broker: mqtt://host[:port] | mqtts://host[:port] |\n"
            "                         unix:///path (default mqtt://localhost:1883)\n"
            "  -t, --base-topic T     topic root (default \"modem\")\n"
            "  -l, --log-level L      error | warn | info | debug (default info)\n"
            "      --list-ports       list serial ports (USB VID:PID, serial, description), exit\n"
            "  -V, --version          print version, exit\n"
            "  -h, --help             usage, exit\n"
            "\n"
            "Environment (overrides the config file; options override it):\n"
            "  MODEM2MQTT_PORT           as --port\n"
            "  MODEM2MQTT_BAUD           as --baud\n"
            "  MODEM2MQTT_BROKER         as --broker\n"
            "  MODEM2MQTT_BASE_TOPIC     as --base-topic\n"
            "  MODEM2MQTT_LOG_LEVEL      as --log-level\n"
            "  MODEM2MQTT_CLIENT_ID      MQTT client id (default modem2mqtt-<base topic>)\n"
            "  MODEM2MQTT_USERNAME       broker user name\n"
            "  MODEM2MQTT_PASSWORD       broker password\n"
            "  MODEM2MQTT_PASSWORD_FILE  file holding the broker password (used when\n"
            "                            MODEM2MQTT_PASSWORD is not set)\n"
            "Secrets are not accepted on the command line (they would show in ps).\n"
            "\n"
            "Health check (the container's HEALTHCHECK; same -c and environment):\n"
            "      --health           exit 0 if the bridge using this state_dir is healthy\n"
            "                         (broker connected, modem ready), else 1\n",
            prog);
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
        &cfg->mqtt.pool.group,
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
    memset(cfg, 0, sizeof *cfg);
}

bool config_number_allowed(char *const *allow, size_t n, const char *number)
{
    if (!number || !*number)
        return false;
    /* A service code ('*' or '#') matches its own entry only: "*" or a
     * prefix means numbers, and "**21*...#" would forward every call. */
    bool code = strpbrk(number, "*#") != NULL;
    /* "00" dials abroad in most of the world: "0*" (national numbers)
     * must not let "0044..." through; only a prefix written with "00"
     * does. */
    bool abroad = strncmp(number, "00", 2) == 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = allow[i];
        size_t len = e ? strlen(e) : 0;
        if (len == 0)
            continue;
        /* "*" alone: E.164 numbers only; a national number or short code
         * must be listed, exactly or by a digit prefix. */
        if (strcmp(e, "*") == 0 ? is_e164(number)
            : allow_is_prefix(e, len) ? !code && strncmp(number, e, len - 1) == 0 &&
                                            (!abroad || strncmp(e, "00", 2) == 0)
                                      : strcmp(number, e) == 0)
            return true;
    }
    return false;
}
