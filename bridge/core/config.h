/* Configuration: built-in defaults < config file < environment < command
 * line (the README's Configuration). Validation errors name the key path:
 * "mqtt.port: unknown key", "modem.baud: expected integer"; the variable
 * or the option for the other sources ("MODEM2MQTT_BAUD: expected
 * integer", "--broker: ..."). No message quotes a value (it may be a
 * secret). Every key, its range and its default: config/README.md. */
#ifndef M2M_CORE_CONFIG_H
#define M2M_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_FILE "/etc/modem2mqtt/config.json"

/* How many modems one process serves ("modems" entries). */
#define CONFIG_MODEMS_MAX 32

/* qos defaults to 0 (MQTT's default, as in a mosquitto bridge line). */
struct config_remote_sub { char *topic; int qos; char *local; /* local may be NULL */ };
struct config_remote_fwd { char *local; char *remote; int qos; };

struct config {
    /* "modems": every entry's own configuration, complete (the top-level
     * objects with the entry's keys over them), name set; NULL with
     * n_modems 0: one modem, this configuration. With modems, this one
     * holds what the process shares: state_dir (the health socket),
     * metrics, log_level. */
    struct config *modems;
    size_t n_modems;
    char *name;                /* a modems entry's name; NULL: the only modem */
    struct {
        char *broker;          /* mqtt://host[:port] | mqtts://... | unix:///path */
        char *base_topic;
        char *client_id;
        char *username;        /* NULL: none */
        char *password;        /* from MODEM2MQTT_PASSWORD or a password file; never logged */
        char *password_file;
        char *ca_file;
        int keepalive;
        bool ha_discovery;
        char *ha_prefix;
        char *ha_notify_to;    /* E.164 for HA's notify entity (SMS); NULL: no entity */
        struct {
            bool enabled;      /* the "pool" object was present */
            char *topic;       /* shared command root: <topic>/sms/send */
            char *group;       /* $share/<group>/...; default "modem2mqtt" */
        } pool;
    } mqtt;
    struct {
        char *port;            /* device, pty, tcp://HOST:PORT or "auto" */
        int baud;              /* a standard termios rate, 300-4000000 */
        char *pin;             /* never logged */
        char *apn;
        char **init;           /* extra AT commands after bring-up */
        size_t n_init;
        int status_interval;   /* seconds */
        int command_timeout_ms;
        bool roaming;          /* false: no SMS, calls, USSD while roaming */
        char *sleep;           /* "off", "rx" (AT+CSCLK=2) or "dtr" (AT+CSCLK=1) */
        struct {               /* a serial device server's own packets, taken
                                  out of the stream: text or "hex:..."; NULL: none */
            char *registry;
            char *heartbeat;
        } device_server;
    } modem;
    struct {
        char **allow_to;       /* numbers or prefixes ending in '*' (config_number_allowed) */
        size_t n_allow_to;
        int max_parts;         /* 1-16 */
        int rate_per_hour;     /* 1-100000 SMS per sliding hour */
        bool delivery_reports;
        bool keep_on_sim;
    } sms;
    struct {
        char **allow_to;
        size_t n_allow_to;
    } calls;
    struct {
        bool enabled;          /* the "remote" object was present; the fields
                                  below hold their defaults either way */
        char *server;
        char *client_id;
        char *username;
        char *password;        /* never logged */
        int keepalive;
        bool clean_session;
        bool tls;
        char *ca_file;         /* PEM CA the module checks the server with (tls) */
        char *cert_file;       /* PEM client certificate (tls; with key_file) */
        char *key_file;        /* its private key (tls; with cert_file); never logged */
        struct config_remote_sub *subscribe;
        size_t n_subscribe;
        struct config_remote_fwd *forward;
        size_t n_forward;
        struct {
            bool enabled;      /* the "will" object was present */
            char *topic;       /* required then */
            char *payload;     /* required then: 1-1024 bytes */
            int qos;           /* 0-2, default 0 */
            bool retain;       /* only false: the module's will has no retain flag */
        } will;
    } remote;
    struct {
        char *listen;          /* Prometheus /metrics on HOST:PORT; NULL: off */
    } metrics;
    char *state_dir;
    bool allow_raw_at;
    char *log_level;           /* "error" | "warn" | "info" | "debug"; also a
                                  top-level "log_level" key in the file */
};

enum config_action { CONFIG_RUN = 0, CONFIG_HELP, CONFIG_VERSION, CONFIG_LIST_PORTS,
                     CONFIG_HEALTH, CONFIG_DEVICE_SERVER };

/* --set KEY=VALUE options one --device-server run takes. */
#define CONFIG_SETS_MAX 8

/* What the command line said; NULL / 0 fields were not given. Strings are
 * borrowed from argv. */
struct config_cli {
    enum config_action action;
    const char *config_file;
    const char *port;
    int baud;
    const char *broker;
    const char *base_topic;
    const char *log_level;
    const char *device_server;   /* --device-server PORT: its console */
    const char *sets[CONFIG_SETS_MAX];  /* --set KEY=VALUE, checked by the console */
    size_t n_sets;
};

/* Parses argv (getopt_long; it resets getopt, so it may be called again).
 * -b is checked here (a standard rate). 0, or -EINVAL with a one-line
 * reason in err ("unknown option '--password': secrets are not accepted on
 * the command line, use MODEM2MQTT_PASSWORD_FILE or MODEM2MQTT_PASSWORD
 * (and MODEM2MQTT_USERNAME)"). --help beats --version beats --list-ports
 * beats --device-server beats --health; --set needs --device-server. */
int config_parse_cli(int argc, char **argv, struct config_cli *cli, char *err, size_t err_size);

/* Usage text for --help. */
void config_print_usage(FILE *out, const char *argv0);

/* Fills cfg with defaults, then the JSON text (may be NULL), then the
 * environment through getenv_fn (may be NULL), then cli (may be NULL), and
 * validates. Pure: reads no file (a password_file is read by
 * config_load). cfg is overwritten (it must not hold a built config). An
 * empty environment variable counts as unset. On error cfg is freed (and
 * zeroed), err says "key.path: reason". */
/*
 * With "modems" (1-CONFIG_MODEMS_MAX entries): each entry's base_topic
 * defaults to "modem/<name>", its client id is "<mqtt.client_id>-<name>"
 * ("modem2mqtt-<name>" when mqtt.client_id is not set), its state_dir
 * "<state_dir>/<name>". A top-level base topic (file, MODEM2MQTT_BASE_TOPIC,
 * --base-topic), a port or baud from the environment or the command line
 * are refused then, as are two entries with the same name,
 * base topic, port, or remote client id on the same server, and the port
 * "auto" with more than one entry. */
int config_build(struct config *cfg, const char *json, size_t json_len,
                 const char *(*getenv_fn)(const char *name), const struct config_cli *cli,
                 char *err, size_t err_size);

/* config_build with the file named by cli->config_file (which must exist)
 * or CONFIG_DEFAULT_FILE when it exists (at most 1 MiB), and the process
 * environment; then reads the password file (MODEM2MQTT_PASSWORD_FILE or
 * mqtt.password_file, at most 4096 bytes, one trailing newline removed)
 * when no password was given (MODEM2MQTT_PASSWORD). Errors name the file
 * ("FILE: No such file or directory") or the key. */
int config_load(struct config *cfg, const struct config_cli *cli, char *err, size_t err_size);

/* The standard serial rates termios sets (B300..B4000000). */
bool config_baud_ok(int v);

/* Frees (and wipes the secrets); safe on a zeroed struct, and again. */
void config_free(struct config *cfg);

/* allow_to matching: an exact entry, or a prefix ending in '*' ("+49*",
 * "0*"); "*" alone matches every E.164 number ("+" and 7-15 digits) and
 * nothing else, so a national number or short code must be listed. A
 * service code ('*' or '#' in number) matches its exact entry only. false
 * for NULL or "" and for n == 0 (an empty list allows none). */
bool config_number_allowed(char *const *allow, size_t n, const char *number);
/* The message for a number without '+' that allow_to refused: the number,
 * then the list's key ("sms.allow_to"). */
#define CONFIG_NOT_LISTED_FMT                                                          \
    "to \"%s\": national numbers and short codes must be listed in %s, exactly or by a " \
    "digit prefix such as \"0*\" (\"*\" allows E.164 numbers only)"

#endif
