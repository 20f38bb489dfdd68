/* The command line: config_parse_cli and config_print_usage. Secrets are
 * refused here with a pointer to the variables that take them. */
#include "core/config_int.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- command line ---------------------------------------------------------- */

enum { OPT_LIST_PORTS = 0x100, OPT_HEALTH, OPT_DEVICE_SERVER, OPT_SET };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"port", required_argument, NULL, 'p'},
    {"baud", required_argument, NULL, 'b'},
    {"broker", required_argument, NULL, 'H'},
    {"base-topic", required_argument, NULL, 't'},
    {"log-level", required_argument, NULL, 'l'},
    {"list-ports", no_argument, NULL, OPT_LIST_PORTS},
    {"health", no_argument, NULL, OPT_HEALTH},
    {"device-server", required_argument, NULL, OPT_DEVICE_SERVER},
    {"set", required_argument, NULL, OPT_SET},
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
            if (!config_parse_uint(optarg, &cli->baud)) {
                cli->baud = 0;
                return config_fail_to(err, err_size, "--baud: expected integer");
            }
            if (!config_baud_ok(cli->baud))
                return config_fail_to(err, err_size, "--baud: %s", config_baud_why);
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
        case OPT_DEVICE_SERVER:
            cli->device_server = optarg;
            break;
        case OPT_SET:
            if (cli->n_sets == CONFIG_SETS_MAX)
                return config_fail_to(err, err_size, "--set: at most %d", CONFIG_SETS_MAX);
            cli->sets[cli->n_sets++] = optarg;
            break;
        case 'V':
            version = true;
            break;
        case 'h':
            help = true;
            break;
        case ':':
            option_name(name, sizeof name, tok, optopt);
            return config_fail_to(err, err_size, "option '%s' requires an argument", name);
        default: /* '?' */
            if (given_value(tok, optopt)) {
                option_name(name, sizeof name, tok, 0);
                return config_fail_to(err, err_size, "option '%s' does not take an argument", name);
            }
            option_name(name, sizeof name, optopt ? NULL : tok, optopt);
            if (looks_secret(name))
                return config_fail_to(err, err_size,
                               "unknown option '%s': secrets are not accepted on the command "
                               "line, use MODEM2MQTT_PASSWORD_FILE or MODEM2MQTT_PASSWORD "
                               "(and MODEM2MQTT_USERNAME)",
                               name);
            return config_fail_to(err, err_size, "unknown option '%s'", name);
        }
    }
    /* Not quoted: it could be a password typed after an option we refused. */
    if (optind < argc)
        return config_fail_to(err, err_size, "unexpected argument #%d: options only",
                       optind);

    cli->action = help ? CONFIG_HELP : version ? CONFIG_VERSION : list ? CONFIG_LIST_PORTS
                                                                      : CONFIG_RUN;
    if (cli->action == CONFIG_RUN && cli->device_server && health)
        return config_fail_to(err, err_size,
                              "--device-server and --health: one at a time (--health checks "
                              "a running bridge, --device-server runs instead of it)");
    if (cli->action == CONFIG_RUN && cli->device_server)
        cli->action = CONFIG_DEVICE_SERVER;
    if (cli->action == CONFIG_RUN && health)
        cli->action = CONFIG_HEALTH;
    if (cli->n_sets && !cli->device_server)
        return config_fail_to(err, err_size, "--set: only with --device-server");
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
            "                         (broker connected, modem ready), else 1\n"
            "\n"
            "Serial device server console (no MQTT; the modem's baud from -b, the\n"
            "environment or the config file):\n"
            "      --device-server PORT  enter the console of the device server on serial\n"
            "                         PORT (+++), print its settings, check them against\n"
            "                         the modem's, leave with AT+ENTM; exit 0 ok, 1 the\n"
            "                         device failed or refused, 2 usage\n"
            "      --set KEY=VALUE    with --device-server: change a setting (repeatable;\n"
            "                         each checked before anything is sent; the warnings\n"
            "                         are about the settings after the change):\n"
            "                         uart=115200,8,1,NONE,NFC  sock=TCPS,0.0.0.0,8899\n"
            "                         regen=off\n",
            prog);
}

