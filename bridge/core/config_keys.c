/* The configuration's vocabulary: every key of the file, variable of the
 * environment and option of the command line, with the check of its value
 * (NULL when fine, else the reason, which never quotes the value), and
 * config_number_allowed. The reader that applies them is config.c. */
#include "core/config_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"
#include "core/netaddr.h"
#include "core/topic.h"
#include "core/utf8.h"

#define PATH_LEN_MAX        4095

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

/* Decimal digits only: "115200". No sign, no spaces, no 0x. */
bool config_parse_uint(const char *s, int *out)
{
    if (!all_digits(s, 1, 9))
        return false;
    *out = (int)strtol(s, NULL, 10);
    return true;
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


static const char *check_client_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CLIENT_ID_MAX || !str_utf8_valid(s) || has_ctrl(s))
        return "expected 1-256 bytes of UTF-8 without control characters";
    return NULL;
}

/* A modem's name goes into topics, client ids, a directory name and log
 * lines: a short word of a-z 0-9 _ -. */
static const char *check_modem_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 32 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
        return "expected 1-32 of a-z 0-9 _ -";
    /* The files a one-modem bridge keeps in state_dir (REFMAP_FILE,
     * HASS_STATE_FILE; the others have a '.'): not a directory's name. */
    if (strcmp(s, "sms-references") == 0 || strcmp(s, "hass-discovery") == 0)
        return "the name of a file in state_dir; choose another";
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

static const char *check_sleep(const char *s)
{
    if (strcmp(s, "off") == 0 || strcmp(s, "rx") == 0 || strcmp(s, "dtr") == 0)
        return NULL;
    return "expected \"off\", \"rx\" or \"dtr\"";
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

/* AT+CMQTTWILLMSG: counted bytes after the prompt, so any text; the
 * module's client needs at least one. */
static const char *check_will_payload(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REMOTE_WILL_MAX)
        return "expected 1-1024 bytes";
    return NULL;
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
const char config_baud_why[] = "expected a standard serial rate (300-4000000, e.g. 9600, "
                               "115200, 921600)";

bool config_baud_ok(int v)
{
    for (size_t i = 0; i < sizeof std_bauds / sizeof std_bauds[0]; i++)
        if (std_bauds[i] == v)
            return true;
    return false;
}



/* A device server's registry or heartbeat packet: at most 40 bytes, as
 * device servers allow. */
#define DEVICE_SERVER_PACKET_MAX 40
static const char *check_packet(const char *s)
{
    uint8_t pkt[DEVICE_SERVER_PACKET_MAX];
    size_t n;

    return hex_or_text(s, pkt, sizeof(pkt), &n) < 0 ? "expected 1-40 bytes of text, or hex: and 2-80 "
                                            "hex digits"
                                          : NULL;
}

static const struct key device_server_keys[] = {
    NSTR("registry", modem.device_server.registry, check_packet),
    NSTR("heartbeat", modem.device_server.heartbeat, check_packet),
    {0},
};

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
    BOOL("roaming", modem.roaming),
    STR("sleep", modem.sleep, check_sleep),
    OBJ("device_server", device_server_keys),
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

/* Present means set: the remote broker publishes it when the module drops. */
static const struct key will_keys[] = {
    STR("topic", remote.will.topic, check_remote_name),
    STR("payload", remote.will.payload, check_will_payload),
    INT("qos", remote.will.qos, 0, 2),
    BOOL("retain", remote.will.retain),
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
    {.name = "will", .kind = K_OBJ, .off = OFF(remote.will.enabled), .sub = will_keys},
    {0},
};

static const struct key metrics_keys[] = {
    NSTR("listen", metrics.listen, check_listen),
    {0},
};

/* "modems": the top-level objects a modem may override, key by key. */
const struct key config_modem_entry_keys[] = {
    STR("name", name, check_modem_name),
    STR("base_topic", mqtt.base_topic, check_topic_root),
    OBJ("modem", modem_keys),
    OBJ("sms", sms_keys),
    OBJ("calls", calls_keys),
    {.name = "remote", .kind = K_OBJ, .off = OFF(remote.enabled), .sub = remote_keys},
    {0},
};

const struct key config_root_keys[] = {
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
    {.name = "modems", .kind = K_MODEMS},
    {0},
};

/* The command line's options that set a key, in struct config_cli's order
 * (apply_cli). */
const struct key config_cli_keys[] = {
    STR("--port", modem.port, check_port),
    STR("--broker", mqtt.broker, check_broker),
    STR("--base-topic", mqtt.base_topic, check_topic_root),
    STR("--log-level", log_level, check_log_level),
    {0},
};

/* The environment, in the order the README lists it. */
const struct key config_env_keys[] = {
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



const struct entry_field config_sub_fields[] = {
    {"topic", true, false, check_remote_filter, offsetof(struct config_remote_sub, topic)},
    {"qos", false, false, NULL, offsetof(struct config_remote_sub, qos)},
    {"local", false, true, check_local_name, offsetof(struct config_remote_sub, local)},
    {0},
};

const struct entry_field config_fwd_fields[] = {
    {"local", true, false, check_local_filter, offsetof(struct config_remote_fwd, local)},
    {"remote", true, false, check_remote_name, offsetof(struct config_remote_fwd, remote)},
    {"qos", false, false, NULL, offsetof(struct config_remote_fwd, qos)},
    {0},
};


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
