/* Unit tests of the configuration (bridge/core/config.[ch]): defaults, the
 * JSON file, the environment, the command line, their precedence, and
 * every error path, driven by tables. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

/* ---- helpers -------------------------------------------------------------- */

/* The fake environment: "NAME=value" strings, NULL-terminated. */
static const char *const *g_env;

static const char *fake_getenv(const char *name)
{
    size_t n = strlen(name);
    for (const char *const *e = g_env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

struct dump {
    char text[8192];
    size_t len;
};

__attribute__((format(printf, 2, 3)))
static void dump_line(struct dump *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->text + d->len, sizeof d->text - d->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof d->text - d->len);
    d->len += (size_t)n;
}

static const char *nz(const char *s)
{
    return s ? s : "(null)";
}

static void dump_list(struct dump *d, const char *key, char *const *list, size_t n)
{
    dump_line(d, "%s=[", key);
    for (size_t i = 0; i < n; i++)
        dump_line(d, "%s%s", i ? "," : "", list[i]);
    dump_line(d, "]\n");
}

/* Every field of the config, one "key=value" line each. */
static void dump_config(const struct config *c, struct dump *d)
{
    d->len = 0;
    d->text[0] = '\0';
    dump_line(d, "mqtt.broker=%s\n", nz(c->mqtt.broker));
    dump_line(d, "mqtt.base_topic=%s\n", nz(c->mqtt.base_topic));
    dump_line(d, "mqtt.client_id=%s\n", nz(c->mqtt.client_id));
    dump_line(d, "mqtt.username=%s\n", nz(c->mqtt.username));
    dump_line(d, "mqtt.password=%s\n", nz(c->mqtt.password));
    dump_line(d, "mqtt.password_file=%s\n", nz(c->mqtt.password_file));
    dump_line(d, "mqtt.ca_file=%s\n", nz(c->mqtt.ca_file));
    dump_line(d, "mqtt.keepalive=%d\n", c->mqtt.keepalive);
    dump_line(d, "mqtt.homeassistant.discovery=%d\n", c->mqtt.ha_discovery);
    dump_line(d, "mqtt.homeassistant.prefix=%s\n", nz(c->mqtt.ha_prefix));
    dump_line(d, "mqtt.homeassistant.notify_to=%s\n", nz(c->mqtt.ha_notify_to));
    dump_line(d, "modem.port=%s\n", nz(c->modem.port));
    dump_line(d, "modem.baud=%d\n", c->modem.baud);
    dump_line(d, "modem.pin=%s\n", nz(c->modem.pin));
    dump_line(d, "modem.apn=%s\n", nz(c->modem.apn));
    dump_list(d, "modem.init", c->modem.init, c->modem.n_init);
    dump_line(d, "modem.status_interval=%d\n", c->modem.status_interval);
    dump_line(d, "modem.command_timeout_ms=%d\n", c->modem.command_timeout_ms);
    dump_line(d, "modem.roaming=%d\n", c->modem.roaming);
    dump_line(d, "modem.sleep=%s\n", nz(c->modem.sleep));
    dump_line(d, "modem.device_server.registry=%s\n", nz(c->modem.device_server.registry));
    dump_line(d, "modem.device_server.heartbeat=%s\n", nz(c->modem.device_server.heartbeat));
    dump_list(d, "sms.allow_to", c->sms.allow_to, c->sms.n_allow_to);
    dump_line(d, "sms.max_parts=%d\n", c->sms.max_parts);
    dump_line(d, "sms.rate_per_hour=%d\n", c->sms.rate_per_hour);
    dump_line(d, "sms.delivery_reports=%d\n", c->sms.delivery_reports);
    dump_line(d, "sms.keep_on_sim=%d\n", c->sms.keep_on_sim);
    dump_list(d, "calls.allow_to", c->calls.allow_to, c->calls.n_allow_to);
    dump_line(d, "remote.enabled=%d\n", c->remote.enabled);
    dump_line(d, "remote.server=%s\n", nz(c->remote.server));
    dump_line(d, "remote.client_id=%s\n", nz(c->remote.client_id));
    dump_line(d, "remote.username=%s\n", nz(c->remote.username));
    dump_line(d, "remote.password=%s\n", nz(c->remote.password));
    dump_line(d, "remote.keepalive=%d\n", c->remote.keepalive);
    dump_line(d, "remote.clean_session=%d\n", c->remote.clean_session);
    dump_line(d, "remote.tls=%d\n", c->remote.tls);
    dump_line(d, "remote.ca_file=%s\n", nz(c->remote.ca_file));
    dump_line(d, "remote.cert_file=%s\n", nz(c->remote.cert_file));
    dump_line(d, "remote.key_file=%s\n", nz(c->remote.key_file));
    dump_line(d, "remote.subscribe=[");
    for (size_t i = 0; i < c->remote.n_subscribe; i++)
        dump_line(d, "%s%s %d %s", i ? "," : "", c->remote.subscribe[i].topic,
                  c->remote.subscribe[i].qos, nz(c->remote.subscribe[i].local));
    dump_line(d, "]\n");
    dump_line(d, "remote.forward=[");
    for (size_t i = 0; i < c->remote.n_forward; i++)
        dump_line(d, "%s%s %s %d", i ? "," : "", c->remote.forward[i].local,
                  c->remote.forward[i].remote, c->remote.forward[i].qos);
    dump_line(d, "]\n");
    dump_line(d, "remote.will=%d %s %s %d %d\n", c->remote.will.enabled,
              nz(c->remote.will.topic), nz(c->remote.will.payload), c->remote.will.qos,
              c->remote.will.retain);
    dump_line(d, "mqtt.pool=%d %s %s\n", c->mqtt.pool.enabled, nz(c->mqtt.pool.topic),
              nz(c->mqtt.pool.group));
    dump_line(d, "metrics.listen=%s\n", nz(c->metrics.listen));
    dump_line(d, "state_dir=%s\n", nz(c->state_dir));
    dump_line(d, "allow_raw_at=%d\n", c->allow_raw_at);
    dump_line(d, "log_level=%s\n", nz(c->log_level));
    dump_line(d, "name=%s modems=%zu\n", nz(c->name), c->n_modems);
}

static const char DEFAULTS[] =
    "mqtt.broker=mqtt://localhost:1883\n"
    "mqtt.base_topic=modem\n"
    "mqtt.client_id=modem2mqtt-modem\n"
    "mqtt.username=(null)\n"
    "mqtt.password=(null)\n"
    "mqtt.password_file=(null)\n"
    "mqtt.ca_file=(null)\n"
    "mqtt.keepalive=30\n"
    "mqtt.homeassistant.discovery=1\n"
    "mqtt.homeassistant.prefix=homeassistant\n"
    "mqtt.homeassistant.notify_to=(null)\n"
    "modem.port=auto\n"
    "modem.baud=115200\n"
    "modem.pin=(null)\n"
    "modem.apn=(null)\n"
    "modem.init=[]\n"
    "modem.status_interval=60\n"
    "modem.command_timeout_ms=5000\n"
    "modem.roaming=1\n"
    "modem.sleep=off\n"
    "modem.device_server.registry=(null)\n"
    "modem.device_server.heartbeat=(null)\n"
    "sms.allow_to=[*]\n"
    "sms.max_parts=6\n"
    "sms.rate_per_hour=60\n"
    "sms.delivery_reports=0\n"
    "sms.keep_on_sim=0\n"
    "calls.allow_to=[*]\n"
    "remote.enabled=0\n"
    "remote.server=tcp://iot.dfrobot.com:1883\n"
    "remote.client_id=modem2mqtt\n"
    "remote.username=(null)\n"
    "remote.password=(null)\n"
    "remote.keepalive=120\n"
    "remote.clean_session=1\n"
    "remote.tls=0\n"
    "remote.ca_file=(null)\n"
    "remote.cert_file=(null)\n"
    "remote.key_file=(null)\n"
    "remote.subscribe=[]\n"
    "remote.forward=[]\n"
    "remote.will=0 (null) (null) 0 0\n"
    "mqtt.pool=0 (null) modem2mqtt\n"
    "metrics.listen=(null)\n"
    "state_dir=/var/lib/modem2mqtt\n"
    "allow_raw_at=0\n"
    "log_level=info\n"
    "name=(null) modems=0\n";

/* A full configuration that names every key with its default, "remote" present. */
static const char FULL_EXAMPLE[] =
    "{\n"
    "  \"mqtt\":   { \"broker\": \"mqtt://localhost:1883\", \"base_topic\": \"modem\",\n"
    "              \"client_id\": \"modem2mqtt\", \"username\": null, \"password_file\": null,\n"
    "              \"ca_file\": null, \"keepalive\": 30,\n"
    "              \"homeassistant\": { \"discovery\": true, \"prefix\": \"homeassistant\" } },\n"
    "  \"modem\":  { \"port\": \"auto\", \"baud\": 115200, \"pin\": null, \"apn\": null,\n"
    "              \"init\": [], \"status_interval\": 60, \"command_timeout_ms\": 5000,\n"
    "              \"sleep\": \"off\" },\n"
    "  \"sms\":    { \"allow_to\": [\"*\"], \"max_parts\": 6, \"rate_per_hour\": 60,\n"
    "              \"delivery_reports\": false, \"keep_on_sim\": false },\n"
    "  \"calls\":  { \"allow_to\": [\"*\"] },\n"
    "  \"remote\": { \"server\": \"tcp://iot.dfrobot.com:1883\", \"client_id\": \"modem2mqtt\",\n"
    "              \"username\": null, \"password\": null, \"keepalive\": 120,\n"
    "              \"clean_session\": true, \"tls\": false,\n"
    "              \"subscribe\": [ { \"topic\": \"abc/+\", \"qos\": 1, \"local\": \"home/abc\" } ],\n"
    "              \"forward\":   [ { \"local\": \"sensors/#\", \"remote\": \"devices/x\", \"qos\": 1 } ] },\n"
    "  \"state_dir\": \"/var/lib/modem2mqtt\",\n"
    "  \"allow_raw_at\": false\n"
    "}\n";

/* "key=value" (a whole dump line) is in the dump. */
static bool dump_has(const struct dump *d, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = d->text; (p = strstr(p, line)) != NULL; p++)
        if ((p == d->text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* ---- the build table ------------------------------------------------------- */

#define MAX_ARGS 24
#define MAX_EXPECT 12

struct build_case {
    const char *json;                 /* NULL: no file */
    const char *env[8];               /* "NAME=value" */
    const char *argv[MAX_ARGS];       /* after the program name */
    const char *err;                  /* NULL: success */
    const char *expect[MAX_EXPECT];   /* dump lines on success */
};

/* "path: reason", spelled out so a row reads like the message. */
#define E(path, why) path ": " why
#define ALLOW_MSG "expected an E.164 number, a national number or short code of 2-20 digits, or a prefix of either ending in '*'"
#define CALL_ALLOW_MSG "expected an E.164 number, a national number or short code of 2-20 digits, a prefix of either ending in '*', or a service code of digits, '*' and '#'"
#define CALL_CODE_MSG "a service code (with '*' or '#') must be 1-32 of digits, '*' and '#' after an optional '+'"

static const struct build_case build_cases[] = {
    /* ---- defaults and every key set ---- */
    {.json = NULL, .expect = {"mqtt.broker=mqtt://localhost:1883"}},
    {.json = "{}", .expect = {"remote.enabled=0"}},
    {.json = "\xef\xbb\xbf{}", .expect = {"log_level=info"}}, /* UTF-8 BOM */
    {.json = " \n{ }\n\n", .expect = {"log_level=info"}},
    {.json = FULL_EXAMPLE,
     .expect = {"remote.enabled=1", "remote.subscribe=[abc/+ 1 home/abc]",
                "remote.forward=[sensors/# devices/x 1]", "remote.server=tcp://iot.dfrobot.com:1883",
                "mqtt.username=(null)", "sms.allow_to=[*]", "modem.init=[]"}},
    {.json = "{\"mqtt\":{\"broker\":\"mqtts://broker.example.com:8883\",\"base_topic\":\"home/gsm\","
             "\"client_id\":\"gsm-1\",\"username\":\"modem\",\"password_file\":\"/run/secrets/mqtt\","
             "\"ca_file\":\"/etc/ssl/ca.pem\",\"keepalive\":60,"
             "\"homeassistant\":{\"discovery\":false,\"prefix\":\"ha\"}}}",
     .expect = {"mqtt.broker=mqtts://broker.example.com:8883", "mqtt.base_topic=home/gsm",
                "mqtt.client_id=gsm-1", "mqtt.username=modem",
                "mqtt.password_file=/run/secrets/mqtt", "mqtt.ca_file=/etc/ssl/ca.pem",
                "mqtt.keepalive=60", "mqtt.homeassistant.discovery=0",
                "mqtt.homeassistant.prefix=ha", "mqtt.password=(null)"}},
    {.json = "{\"modem\":{\"port\":\"/dev/serial/by-id/usb-SimTech-if02\",\"baud\":921600,"
             "\"pin\":\"1234\",\"apn\":\"internet.t-mobile\",\"init\":[\"AT+CSCLK=0\",\"at+cgreg=2\"],"
             "\"status_interval\":300,\"command_timeout_ms\":10000,\"roaming\":false}}",
     .expect = {"modem.port=/dev/serial/by-id/usb-SimTech-if02", "modem.baud=921600",
                "modem.pin=1234", "modem.apn=internet.t-mobile",
                "modem.init=[AT+CSCLK=0,at+cgreg=2]", "modem.status_interval=300",
                "modem.command_timeout_ms=10000", "modem.roaming=0"}},
    /* national numbers and short codes: exactly, or by a digit prefix */
    {.json = "{\"sms\":{\"allow_to\":[\"*\",\"8888\",\"11\",\"0*\",\"11*\",\"01711234567\","
             "\"12345678901234567890\",\"12345678901234567890*\"]},"
             "\"calls\":{\"allow_to\":[\"110\",\"0*\",\"*31#\"]}}",
     .expect = {"sms.allow_to=[*,8888,11,0*,11*,01711234567,12345678901234567890,"
                "12345678901234567890*]",
                "calls.allow_to=[110,0*,*31#]"}},
    {.json = "{\"sms\":{\"allow_to\":[\"+4917012345678\",\"+4930*\",\"+*\"],\"max_parts\":16,"
             "\"rate_per_hour\":1,\"delivery_reports\":true,\"keep_on_sim\":true},"
             "\"calls\":{\"allow_to\":[]}}",
     .expect = {"sms.allow_to=[+4917012345678,+4930*,+*]", "sms.max_parts=16",
                "sms.rate_per_hour=1", "sms.delivery_reports=1", "sms.keep_on_sim=1",
                "calls.allow_to=[]"}},
    /* service codes are listed exactly; numbers and prefixes as for SMS */
    {.json = "{\"calls\":{\"allow_to\":[\"*\",\"**21*004917012345678#\",\"*31#\",\"#31#\","
             "\"*100#\",\"+4930*\",\"+*\",\"+4917012345678\",\"##002#\","
             "\"*12345678901234567890123456789#\"]}}",
     .expect = {"calls.allow_to=[*,**21*004917012345678#,*31#,#31#,*100#,+4930*,+*,"
                "+4917012345678,##002#,*12345678901234567890123456789#]"}},
    {.json = "{\"remote\":{}}",
     .expect = {"remote.enabled=1", "remote.server=tcp://iot.dfrobot.com:1883",
                "remote.client_id=modem2mqtt", "remote.keepalive=120", "remote.clean_session=1",
                "remote.tls=0", "remote.subscribe=[]", "remote.forward=[]"}},
    {.json = "{\"remote\":{\"server\":\"tcp://10.0.0.1\",\"client_id\":\"dev-1\","
             "\"username\":\"u\",\"password\":\"p@ss word!\",\"keepalive\":64800,"
             "\"clean_session\":false,\"tls\":true,"
             "\"subscribe\":[{\"topic\":\"a/#\"},{\"topic\":\"b\",\"qos\":2,\"local\":null}],"
             "\"forward\":[{\"local\":\"x/+\",\"remote\":\"y\"}]}}",
     .expect = {"remote.server=tcp://10.0.0.1", "remote.client_id=dev-1", "remote.username=u",
                "remote.password=p@ss word!", "remote.keepalive=64800",
                "remote.clean_session=0", "remote.tls=1",
                "remote.subscribe=[a/# 0 (null),b 2 (null)]", "remote.forward=[x/+ y 0]"}},
    {.json = "{\"metrics\":{\"listen\":\"[::1]:9713\"}}", .expect = {"metrics.listen=[::1]:9713"}},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"sms-pool\"}}}",
     .expect = {"mqtt.pool=1 sms-pool modem2mqtt"}},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"a/b\",\"group\":\"g_1-x\"}}}",
     .expect = {"mqtt.pool=1 a/b g_1-x"}},
    {.json = "{\"mqtt\":{\"pool\":{}}}", .err = "mqtt.pool.topic: required with mqtt.pool"},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"modem\"}}}",
     .err = "mqtt.pool.topic: must differ from mqtt.base_topic"},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"p\",\"group\":\"a/b\"}}}",
     .err = "mqtt.pool.group: expected 1-64 of a-z A-Z 0-9 _ -"},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"p/#\"}}}",
     .err = "mqtt.pool.topic: must not contain '+' or '#'"},
    {.json = "{\"metrics\":{\"listen\":null}}", .expect = {"metrics.listen=(null)"}},
    {.json = "{\"metrics\":{\"listen\":\"localhost:9713\"}}",
     .err = "metrics.listen: expected HOST:PORT with an IP address (\"127.0.0.1:9713\", "
            "\"[::1]:9713\") and a port of 1-65535"},
    {.json = "{\"state_dir\":\"/srv/m2m\",\"allow_raw_at\":true,\"log_level\":\"debug\"}",
     .expect = {"state_dir=/srv/m2m", "allow_raw_at=1", "log_level=debug"}},
    /* null is "not set" for the nullable keys */
    {.json = "{\"mqtt\":{\"username\":null,\"password_file\":null,\"ca_file\":null},"
             "\"modem\":{\"pin\":null,\"apn\":null},"
             "\"remote\":{\"username\":null,\"password\":null,"
             "\"subscribe\":[{\"topic\":\"t\",\"local\":null}]}}",
     .expect = {"mqtt.username=(null)", "mqtt.password_file=(null)", "mqtt.ca_file=(null)",
                "modem.pin=(null)", "modem.apn=(null)", "remote.username=(null)",
                "remote.password=(null)", "remote.subscribe=[t 0 (null)]"}},
    /* integers may be written as 3e1 or 9600.0: JSON has one number type */
    {.json = "{\"mqtt\":{\"keepalive\":3e1},\"modem\":{\"baud\":9600.0}}",
     .expect = {"mqtt.keepalive=30", "modem.baud=9600"}},
    /* brokers and ports that are fine */
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://[::1]:1883\"}}", .expect = {"mqtt.broker=mqtt://[::1]:1883"}},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://192.168.1.2\"}}", .expect = {"mqtt.broker=mqtt://192.168.1.2"}},
    {.json = "{\"mqtt\":{\"broker\":\"unix:///run/mosquitto/mqtt.sock\"}}",
     .expect = {"mqtt.broker=unix:///run/mosquitto/mqtt.sock"}},
    {.json = "{\"modem\":{\"port\":\"tcp://ser2net.lan:2000\"}}", .expect = {"modem.port=tcp://ser2net.lan:2000"}},
    {.json = "{\"modem\":{\"port\":\"/dev/pts/3\",\"baud\":300}}", .expect = {"modem.port=/dev/pts/3", "modem.baud=300"}},
    {.json = "{\"modem\":{\"baud\":4000000}}", .expect = {"modem.baud=4000000"}},
    {.json = "{\"mqtt\":{\"base_topic\":\"caf\xc3\xa9/modem-1\"}}", .expect = {"mqtt.base_topic=caf\xc3\xa9/modem-1"}},

    /* ---- precedence: defaults < file < environment < command line ---- */
    {.json = "{\"modem\":{\"port\":\"/dev/ttyUSB1\",\"baud\":9600},"
             "\"mqtt\":{\"broker\":\"mqtt://file\",\"base_topic\":\"file\",\"username\":\"file\"},"
             "\"log_level\":\"error\"}",
     .expect = {"modem.port=/dev/ttyUSB1", "modem.baud=9600", "mqtt.broker=mqtt://file",
                "mqtt.base_topic=file", "mqtt.username=file", "log_level=error"}},
    {.json = "{\"modem\":{\"port\":\"/dev/ttyUSB1\",\"baud\":9600},"
             "\"mqtt\":{\"broker\":\"mqtt://file\",\"base_topic\":\"file\",\"username\":\"file\","
             "\"password_file\":\"/file\"},\"log_level\":\"error\"}",
     .env = {"MODEM2MQTT_PORT=/dev/ttyUSB2", "MODEM2MQTT_BAUD=19200",
             "MODEM2MQTT_BROKER=mqtt://env", "MODEM2MQTT_BASE_TOPIC=env",
             "MODEM2MQTT_USERNAME=env", "MODEM2MQTT_PASSWORD=envpw",
             "MODEM2MQTT_PASSWORD_FILE=/env", "MODEM2MQTT_LOG_LEVEL=warn"},
     .expect = {"modem.port=/dev/ttyUSB2", "modem.baud=19200", "mqtt.broker=mqtt://env",
                "mqtt.base_topic=env", "mqtt.username=env", "mqtt.password=envpw",
                "mqtt.password_file=/env", "log_level=warn"}},
    {.json = "{\"modem\":{\"port\":\"/dev/ttyUSB1\",\"baud\":9600},"
             "\"mqtt\":{\"broker\":\"mqtt://file\",\"base_topic\":\"file\"},\"log_level\":\"error\"}",
     .env = {"MODEM2MQTT_PORT=/dev/ttyUSB2", "MODEM2MQTT_BAUD=19200",
             "MODEM2MQTT_BROKER=mqtt://env", "MODEM2MQTT_BASE_TOPIC=env",
             "MODEM2MQTT_LOG_LEVEL=warn"},
     .argv = {"-p", "/dev/ttyUSB3", "-b", "38400", "-H", "mqtt://cli", "-t", "cli", "-l", "debug"},
     .expect = {"modem.port=/dev/ttyUSB3", "modem.baud=38400", "mqtt.broker=mqtt://cli",
                "mqtt.base_topic=cli", "log_level=debug"}},
    /* the command line over the file without environment */
    {.json = "{\"modem\":{\"port\":\"/dev/ttyUSB1\"}}", .argv = {"--port=auto"},
     .expect = {"modem.port=auto"}},
    /* the client id: derived from the base topic unless set, '/' as '-' */
    {.argv = {"-t", "home/gsm/1"}, .expect = {"mqtt.client_id=modem2mqtt-home-gsm-1"}},
    {.env = {"MODEM2MQTT_BASE_TOPIC=sms"}, .expect = {"mqtt.client_id=modem2mqtt-sms"}},
    {.json = "{\"mqtt\":{\"client_id\":\"file\"}}", .env = {"MODEM2MQTT_CLIENT_ID=env-1"},
     .argv = {"-t", "x"}, .expect = {"mqtt.client_id=env-1"}},
    {.json = "{\"mqtt\":{\"client_id\":\"file\"}}", .argv = {"-t", "x"},
     .expect = {"mqtt.client_id=file"}},
    {.env = {"MODEM2MQTT_CLIENT_ID=a\tb"},
     .err = "MODEM2MQTT_CLIENT_ID: expected 1-256 bytes of UTF-8 without control characters"},
    /* the environment over the defaults without a file */
    {.env = {"MODEM2MQTT_BAUD=57600"}, .expect = {"modem.baud=57600", "modem.port=auto"}},
    /* empty variables count as unset */
    {.json = "{\"mqtt\":{\"username\":\"file\"}}",
     .env = {"MODEM2MQTT_USERNAME=", "MODEM2MQTT_PORT=", "MODEM2MQTT_BAUD="},
     .expect = {"mqtt.username=file", "modem.port=auto", "modem.baud=115200"}},
    /* unrelated variables are not read */
    {.env = {"MODEM2MQTT_PIN=1234", "MODEM2MQTT_APN=x"}, .expect = {"modem.pin=(null)", "modem.apn=(null)"}},

    /* ---- syntax ---- */
    {.json = "", .err = "config: invalid JSON at line 1"},
    {.json = "{", .err = "config: invalid JSON at line 1"},
    {.json = "{\n  \"mqtt\": {\n    \"broker\": \n  }\n}", .err = "config: invalid JSON at line 4"},
    {.json = "{\n\"a\":1,\n}", .err = "config: invalid JSON at line 3"},
    {.json = "{} {}", .err = "config: invalid JSON at line 1"},
    {.json = "{}\n\n]", .err = "config: invalid JSON at line 3"},
    {.json = "// comment\n{}", .err = "config: invalid JSON at line 1"},
    {.json = "{\"a\":\"\\\xc3\xa9\"}", .err = "config: invalid JSON at line 1"},
    {.json = "{\"a\":\n\"\\\xc3\"}", .err = "config: invalid UTF-8 at line 2"},
    {.json = "[]", .err = "config: expected a JSON object"},
    {.json = "null", .err = "config: expected a JSON object"},
    {.json = "{\"mqtt\":{\"base_topic\":\"a\\u0000b\"}}", .err = "config: \\u0000 in a string at line 1"},
    {.json = "{\n\"mqtt\":{\"client_id\":\"\xff\"}}", .err = "config: invalid UTF-8 at line 2"},
    /* an escaped backslash before "u0000" is text */
    {.json = "{\"mqtt\":{\"client_id\":\"a\\\\u0000\"}}", .expect = {"mqtt.client_id=a\\u0000"}},

    /* ---- unknown and duplicate keys, at every depth ---- */
    {.json = "{\"foo\":1}", .err = "foo: unknown key"},
    {.json = "{\"Mqtt\":{}}", .err = "Mqtt: unknown key"},
    {.json = "{\"mqtt\":{\"port\":1883}}", .err = "mqtt.port: unknown key"},
    {.json = "{\"mqtt\":{\"password\":\"x\"}}", .err = "mqtt.password: unknown key"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"enabled\":true}}}", .err = "mqtt.homeassistant.enabled: unknown key"},
    {.json = "{\"modem\":{\"device\":\"/dev/ttyUSB2\"}}", .err = "modem.device: unknown key"},
    {.json = "{\"sms\":{\"allow\":[]}}", .err = "sms.allow: unknown key"},
    {.json = "{\"calls\":{\"max\":1}}", .err = "calls.max: unknown key"},
    {.json = "{\"remote\":{\"enabled\":true}}", .err = "remote.enabled: unknown key"},
    /* ---- remote client certificate: both or neither, only with tls ---- */
    {.json = "{\"remote\":{\"tls\":true,\"ca_file\":\"/c/ca.pem\",\"cert_file\":\"/c/cl.pem\","
             "\"key_file\":\"/c/cl.key\"}}",
     .expect = {"remote.tls=1", "remote.ca_file=/c/ca.pem", "remote.cert_file=/c/cl.pem",
                "remote.key_file=/c/cl.key"}},
    {.json = "{\"remote\":{\"tls\":true,\"cert_file\":null,\"key_file\":null}}",
     .expect = {"remote.cert_file=(null)", "remote.key_file=(null)"}},
    {.json = "{\"remote\":{\"tls\":true,\"cert_file\":\"/c/cl.pem\"}}",
     .err = "remote.key_file: required with remote.cert_file"},
    {.json = "{\"remote\":{\"tls\":true,\"cert_file\":\"/c/cl.pem\",\"key_file\":null}}",
     .err = "remote.key_file: required with remote.cert_file"},
    {.json = "{\"remote\":{\"tls\":true,\"key_file\":\"/c/cl.key\"}}",
     .err = "remote.cert_file: required with remote.key_file"},
    {.json = "{\"remote\":{\"cert_file\":\"/c/cl.pem\",\"key_file\":\"/c/cl.key\"}}",
     .err = "remote.cert_file: needs \"tls\": true"},
    {.json = "{\"remote\":{\"tls\":false,\"cert_file\":\"/c/cl.pem\",\"key_file\":\"/c/cl.key\"}}",
     .err = "remote.cert_file: needs \"tls\": true"},
    {.json = "{\"remote\":{\"tls\":true,\"cert_file\":\"\",\"key_file\":\"/c/cl.key\"}}",
     .err = "remote.cert_file: expected a file path"},
    {.json = "{\"remote\":{\"tls\":true,\"cert_file\":\"/c/cl.pem\",\"key_file\":7}}",
     .err = "remote.key_file: expected string or null"},
    /* ---- remote.will: topic and payload required, a topic name, qos 0-2,
     * retain only false (AT+CMQTTWILLMSG has no retain flag) ---- */
    {.json = "{\"remote\":{\"will\":{\"topic\":\"dev/1/status\",\"payload\":\"offline\"}}}",
     .expect = {"remote.will=1 dev/1/status offline 0 0"}},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"d\",\"payload\":\"a\\r\\nAT+X\\u001a\",\"qos\":2,"
             "\"retain\":false}}}",
     .expect = {"remote.will=1 d a\r\nAT+X\x1a 2 0"}},
    {.json = "{\"remote\":{}}", .expect = {"remote.will=0 (null) (null) 0 0"}},
    {.json = "{\"remote\":{\"will\":{}}}", .err = "remote.will.topic: missing"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\"}}}", .err = "remote.will.payload: missing"},
    {.json = "{\"remote\":{\"will\":{\"payload\":\"x\"}}}", .err = "remote.will.topic: missing"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t/#\",\"payload\":\"x\"}}}",
     .err = "remote.will.topic: must not contain '+' or '#' (a topic name, not a filter)"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"\",\"payload\":\"x\"}}}",
     .err = "remote.will.topic: must not be empty"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\\u0000\",\"payload\":\"x\"}}}",
     .err = "config: \\u0000 in a string at line 1"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"\"}}}",
     .err = "remote.will.payload: expected 1-1024 bytes"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":null}}}",
     .err = "remote.will.payload: expected string"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"x\",\"qos\":3}}}",
     .err = "remote.will.qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"x\",\"retain\":1}}}",
     .err = "remote.will.retain: expected boolean"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"x\",\"retain\":true}}}",
     .err = "remote.will.retain: the module's MQTT client cannot retain its will "
            "(AT+CMQTTWILLMSG has no retain flag); expected false"},
    {.json = "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"x\",\"delay\":5}}}",
     .err = "remote.will.delay: unknown key"},
    {.json = "{\"remote\":{\"will\":\"t\"}}", .err = "remote.will: expected object"},
    /* modem.sleep: three words; DTR is a serial port's wire */
    {.json = "{\"modem\":{\"sleep\":\"rx\"}}", .expect = {"modem.sleep=rx"}},
    {.json = "{\"modem\":{\"sleep\":\"dtr\",\"port\":\"/dev/ttyUSB0\"}}",
     .expect = {"modem.sleep=dtr"}},
    {.json = "{\"modem\":{\"sleep\":\"on\"}}",
     .err = "modem.sleep: expected \"off\", \"rx\" or \"dtr\""},
    {.json = "{\"modem\":{\"sleep\":\"RX\"}}",
     .err = "modem.sleep: expected \"off\", \"rx\" or \"dtr\""},
    {.json = "{\"modem\":{\"sleep\":true}}", .err = "modem.sleep: expected string"},
    {.json = "{\"modem\":{\"sleep\":\"dtr\",\"port\":\"tcp://10.0.0.5:8887\"}}",
     .err = "modem.sleep: \"dtr\" needs a serial port's DTR line, which a tcp:// port does not "
            "have; use \"rx\""},
    {.json = "{\"modem\":{\"sleep\":\"dtr\"}}", .env = {"MODEM2MQTT_PORT=tcp://10.0.0.5:8887"},
     .err = "modem.sleep: \"dtr\" needs a serial port's DTR line, which a tcp:// port does not "
            "have; use \"rx\""},
    {.json = "{\"modem\":{\"sleep\":\"rx\",\"port\":\"tcp://10.0.0.5:8887\"}}",
     .expect = {"modem.sleep=rx"}},
    {.json = "{\"modem\":{\"sleep\":\"dtr\"},\"modems\":[{\"name\":\"a\",\"modem\":"
             "{\"port\":\"tcp://10.0.0.5:8887\"}}]}",
     .err = "modems[0].modem.sleep: \"dtr\" needs a serial port's DTR line, which a tcp:// port "
            "does not have; use \"rx\""},
    {.json = "{\"modems\":[{\"name\":\"a\",\"remote\":{\"will\":{\"payload\":\"x\"}}}]}",
     .err = "modems[0].remote.will.topic: missing"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\"},{\"topic\":\"b\",\"qso\":1}]}}",
     .err = "remote.subscribe[1].qso: unknown key"},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"b\",\"retain\":true}]}}",
     .err = "remote.forward[0].retain: unknown key"},
    {.json = "{\"a\\nb\":1}", .err = "a?b: unknown key"},
    {.json = "{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\":1}",
     .err = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...: unknown key"},
    /* 47 'k' then "é": the cut does not split the character */
    {.json = "{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\xc3\xa9xyz\":1}",
     .err = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...: unknown key"},
    {.json = "{\"mqtt\":{},\"mqtt\":{}}", .err = "mqtt: duplicate key"},
    {.json = "{\"mqtt\":{\"keepalive\":5,\"keepalive\":6}}", .err = "mqtt.keepalive: duplicate key"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"topic\":\"b\"}]}}",
     .err = "remote.subscribe[0].topic: duplicate key"},

    /* ---- types and values: mqtt ---- */
    {.json = "{\"mqtt\":[]}", .err = "mqtt: expected object"},
    {.json = "{\"mqtt\":null}", .err = "mqtt: expected object"},
    {.json = "{\"mqtt\":{\"broker\":1}}", .err = "mqtt.broker: expected string"},
    {.json = "{\"mqtt\":{\"broker\":null}}", .err = "mqtt.broker: expected string"},
    {.json = "{\"mqtt\":{\"broker\":\"tcp://localhost:1883\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://host:0\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://host:65536\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://host:\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://host/x\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://[::1\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"MQTT://host\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"unix://run/sock\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"unix:///\"}}", .err = E("mqtt.broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.json = "{\"mqtt\":{\"broker\":\"unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
     .err = "mqtt.broker: unix socket path longer than 107 bytes"},
    {.json = "{\"mqtt\":{\"broker\":\"mqtt://user:hunter2@host\"}}",
     .err = "mqtt.broker: credentials in the URI are not accepted, use mqtt.username and MODEM2MQTT_PASSWORD_FILE"},
    {.json = "{\"mqtt\":{\"base_topic\":\"\"}}", .err = "mqtt.base_topic: must not be empty"},
    {.json = "{\"mqtt\":{\"base_topic\":\"a/+\"}}", .err = "mqtt.base_topic: must not contain '+' or '#'"},
    {.json = "{\"mqtt\":{\"base_topic\":\"a/#\"}}", .err = "mqtt.base_topic: must not contain '+' or '#'"},
    {.json = "{\"mqtt\":{\"base_topic\":\"/modem\"}}", .err = "mqtt.base_topic: must not start or end with '/'"},
    {.json = "{\"mqtt\":{\"base_topic\":\"modem/\"}}", .err = "mqtt.base_topic: must not start or end with '/'"},
    {.json = "{\"mqtt\":{\"base_topic\":\"$SYS/modem\"}}", .err = "mqtt.base_topic: must not start with '$'"},
    {.json = "{\"mqtt\":{\"base_topic\":\"a\\tb\"}}", .err = "mqtt.base_topic: must not contain control characters (U+0000-U+001F, U+007F-U+009F)"},
    {.json = "{\"mqtt\":{\"base_topic\":7}}", .err = "mqtt.base_topic: expected string"},
    {.json = "{\"mqtt\":{\"client_id\":true}}", .err = "mqtt.client_id: expected string"},
    {.json = "{\"mqtt\":{\"client_id\":\"\"}}", .err = "mqtt.client_id: expected 1-256 bytes of UTF-8 without control characters"},
    {.json = "{\"mqtt\":{\"username\":5}}", .err = "mqtt.username: expected string or null"},
    {.json = "{\"mqtt\":{\"username\":\"\"}}", .err = "mqtt.username: must not be empty (use null for none)"},
    {.json = "{\"mqtt\":{\"password_file\":[]}}", .err = "mqtt.password_file: expected string or null"},
    {.json = "{\"mqtt\":{\"password_file\":\"\"}}", .err = "mqtt.password_file: expected a file path"},
    {.json = "{\"mqtt\":{\"ca_file\":{}}}", .err = "mqtt.ca_file: expected string or null"},
    {.json = "{\"mqtt\":{\"ca_file\":\"a\\nb\"}}", .err = "mqtt.ca_file: expected a file path"},
    {.json = "{\"mqtt\":{\"keepalive\":\"30\"}}", .err = "mqtt.keepalive: expected integer 5-65535"},
    {.json = "{\"mqtt\":{\"keepalive\":4}}", .err = "mqtt.keepalive: expected integer 5-65535"},
    {.json = "{\"mqtt\":{\"keepalive\":65536}}", .err = "mqtt.keepalive: expected integer 5-65535"},
    {.json = "{\"mqtt\":{\"keepalive\":30.5}}", .err = "mqtt.keepalive: expected integer 5-65535"},
    {.json = "{\"mqtt\":{\"keepalive\":1e300}}", .err = "mqtt.keepalive: expected integer 5-65535"},
    {.json = "{\"mqtt\":{\"homeassistant\":true}}", .err = "mqtt.homeassistant: expected object"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"discovery\":\"yes\"}}}", .err = "mqtt.homeassistant.discovery: expected boolean"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"discovery\":1}}}", .err = "mqtt.homeassistant.discovery: expected boolean"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"prefix\":\"\"}}}", .err = "mqtt.homeassistant.prefix: must not be empty"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"prefix\":\"ha/#\"}}}", .err = "mqtt.homeassistant.prefix: must not contain '+' or '#'"},
    /* notify_to goes verbatim into HA's command template: E.164 only. */
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"+4917012345678\"}}}",
     .expect = {"mqtt.homeassistant.notify_to=+4917012345678"}},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":null}}}",
     .expect = {"mqtt.homeassistant.notify_to=(null)"}},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"+49*\"}}}", .err = "mqtt.homeassistant.notify_to: expected an E.164 number, e.g. +4917012345678"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"017012345678\"}}}", .err = "mqtt.homeassistant.notify_to: expected an E.164 number, e.g. +4917012345678"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"+0170123456\"}}}", .err = "mqtt.homeassistant.notify_to: expected an E.164 number, e.g. +4917012345678"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"+49170\\\"}\"}}}", .err = "mqtt.homeassistant.notify_to: expected an E.164 number, e.g. +4917012345678"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":\"+1234567890123456\"}}}", .err = "mqtt.homeassistant.notify_to: expected an E.164 number, e.g. +4917012345678"},
    {.json = "{\"mqtt\":{\"homeassistant\":{\"notify_to\":4917012345678}}}", .err = "mqtt.homeassistant.notify_to: expected string or null"},

    /* ---- modem ---- */
    {.json = "{\"modem\":\"auto\"}", .err = "modem: expected object"},
    {.json = "{\"modem\":{\"port\":5}}", .err = "modem.port: expected string"},
    {.json = "{\"modem\":{\"port\":\"ttyUSB2\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"AUTO\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"tcp://host\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"tcp://host:0\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"tcp://:2000\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"port\":\"/dev/tty\\u001b\"}}", .err = E("modem.port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.json = "{\"modem\":{\"baud\":\"115200\"}}", .err = "modem.baud: expected integer"},
    {.json = "{\"modem\":{\"baud\":115200.5}}", .err = "modem.baud: expected integer"},
    {.json = "{\"modem\":{\"baud\":null}}", .err = "modem.baud: expected integer"},
    {.json = "{\"modem\":{\"baud\":12345}}", .err = E("modem.baud", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},
    {.json = "{\"modem\":{\"baud\":11520}}", .err = E("modem.baud", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},
    {.json = "{\"modem\":{\"baud\":-9600}}", .err = E("modem.baud", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},
    {.json = "{\"modem\":{\"baud\":0}}", .err = E("modem.baud", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},
    {.json = "{\"modem\":{\"pin\":1234}}", .err = "modem.pin: expected string or null"},
    {.json = "{\"modem\":{\"pin\":\"12a4\"}}", .err = "modem.pin: expected 4-8 digits"},
    {.json = "{\"modem\":{\"pin\":\"123\"}}", .err = "modem.pin: expected 4-8 digits"},
    {.json = "{\"modem\":{\"pin\":\"123456789\"}}", .err = "modem.pin: expected 4-8 digits"},
    {.json = "{\"modem\":{\"pin\":\"1234\\\"\"}}", .err = "modem.pin: expected 4-8 digits"},
    {.json = "{\"modem\":{\"apn\":\"\"}}", .err = E("modem.apn", "expected 1-100 printable ASCII characters without '\"' or '\\' (null for the network default)")},
    {.json = "{\"modem\":{\"apn\":\"inter\\\"net\"}}", .err = E("modem.apn", "expected 1-100 printable ASCII characters without '\"' or '\\' (null for the network default)")},
    {.json = "{\"modem\":{\"apn\":\"a\\\\22b\"}}", .err = E("modem.apn", "expected 1-100 printable ASCII characters without '\"' or '\\' (null for the network default)")},
    {.json = "{\"modem\":{\"apn\":\"a\\r\\nAT+CFUN=0\"}}", .err = E("modem.apn", "expected 1-100 printable ASCII characters without '\"' or '\\' (null for the network default)")},
    {.json = "{\"modem\":{\"apn\":false}}", .err = "modem.apn: expected string or null"},
    {.json = "{\"modem\":{\"init\":\"ATI\"}}", .err = "modem.init: expected array"},
    {.json = "{\"modem\":{\"init\":null}}", .err = "modem.init: expected array"},
    {.json = "{\"modem\":{\"init\":[1]}}", .err = "modem.init[0]: expected string"},
    {.json = "{\"modem\":{\"init\":[\"ATI\",\"AT\\r+CFUN=0\"]}}", .err = "modem.init[1]: must be printable ASCII (no CR, LF, Ctrl-Z or ESC)"},
    {.json = "{\"modem\":{\"init\":[\"ATI\\nAT+CFUN=0\"]}}", .err = "modem.init[0]: must be printable ASCII (no CR, LF, Ctrl-Z or ESC)"},
    {.json = "{\"modem\":{\"init\":[\"AT+CMGS=1\\u001a\"]}}", .err = "modem.init[0]: must be printable ASCII (no CR, LF, Ctrl-Z or ESC)"},
    {.json = "{\"modem\":{\"init\":[\"AT\\u001b\"]}}", .err = "modem.init[0]: must be printable ASCII (no CR, LF, Ctrl-Z or ESC)"},
    {.json = "{\"modem\":{\"init\":[\"AT\\u00e9\"]}}", .err = "modem.init[0]: must be printable ASCII (no CR, LF, Ctrl-Z or ESC)"},
    {.json = "{\"modem\":{\"init\":[\"CFUN=1\"]}}", .err = "modem.init[0]: expected one AT command starting with AT"},
    {.json = "{\"modem\":{\"init\":[\"\"]}}", .err = "modem.init[0]: expected one AT command starting with AT"},
    {.json = "{\"modem\":{\"init\":[\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\","
             "\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\","
             "\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\",\"AT\"]}}",
     .err = "modem.init: at most 32 entries"},
    {.json = "{\"modem\":{\"status_interval\":4}}", .err = "modem.status_interval: expected integer 5-86400"},
    {.json = "{\"modem\":{\"status_interval\":86401}}", .err = "modem.status_interval: expected integer 5-86400"},
    {.json = "{\"modem\":{\"command_timeout_ms\":99}}", .err = "modem.command_timeout_ms: expected integer 100-600000"},
    {.json = "{\"modem\":{\"command_timeout_ms\":true}}", .err = "modem.command_timeout_ms: expected integer 100-600000"},
    {.json = "{\"modem\":{\"roaming\":\"no\"}}", .err = "modem.roaming: expected boolean"},
    {.json = "{\"modem\":{\"roaming\":0}}", .err = "modem.roaming: expected boolean"},
    {.json = "{\"modem\":{\"device_server\":{\"registry\":\"hex:D8B04CFC0001\","
             "\"heartbeat\":\"www.usr.cn\"}}}",
     .expect = {"modem.device_server.registry=hex:D8B04CFC0001",
                "modem.device_server.heartbeat=www.usr.cn"}},
    {.json = "{\"modem\":{\"device_server\":{\"heartbeat\":\"hex:0D0\"}}}",
     .err = "modem.device_server.heartbeat: expected 1-40 bytes of text, or hex: and 2-80 hex digits"},
    {.json = "{\"modem\":{\"device_server\":{\"registry\":\"\"}}}",
     .err = "modem.device_server.registry: expected 1-40 bytes of text, or hex: and 2-80 hex digits"},
    {.json = "{\"modem\":{\"device_server\":{\"registry\":\"01234567890123456789012345678901234567890\"}}}",
     .err = "modem.device_server.registry: expected 1-40 bytes of text, or hex: and 2-80 hex digits"},
    {.json = "{\"modem\":{\"device_server\":{\"mac\":\"x\"}}}",
     .err = "modem.device_server.mac: unknown key"},

    /* ---- sms, calls ---- */
    {.json = "{\"sms\":{\"allow_to\":\"*\"}}", .err = "sms.allow_to: expected array"},
    {.json = "{\"sms\":{\"allow_to\":[5]}}", .err = "sms.allow_to[0]: expected string"},
    {.json = "{\"sms\":{\"allow_to\":[\"0170123456\",\"1\"]}}", .err = E("sms.allow_to[1]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"123456789012345678901\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"123456789012345678901*\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"0 171\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"0*1\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"0**\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+49*\",\"49a*\"]}}", .err = E("sms.allow_to[1]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+49*\",\"+4917\"]}}", .err = E("sms.allow_to[1]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+04917012345678\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+49*1\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+0*\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"**\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+1234567890123456\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"+4917 012345678\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"allow_to\":[\"\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},
    {.json = "{\"sms\":{\"max_parts\":0}}", .err = "sms.max_parts: expected integer 1-16"},
    {.json = "{\"sms\":{\"max_parts\":17}}", .err = "sms.max_parts: expected integer 1-16"},
    {.json = "{\"sms\":{\"rate_per_hour\":0}}", .err = "sms.rate_per_hour: expected integer 1-100000"},
    {.json = "{\"sms\":{\"rate_per_hour\":\"60\"}}", .err = "sms.rate_per_hour: expected integer 1-100000"},
    {.json = "{\"sms\":{\"delivery_reports\":1}}", .err = "sms.delivery_reports: expected boolean"},
    {.json = "{\"sms\":{\"keep_on_sim\":\"false\"}}", .err = "sms.keep_on_sim: expected boolean"},
    {.json = "{\"sms\":{\"keep_on_sim\":null}}", .err = "sms.keep_on_sim: expected boolean"},
    {.json = "{\"calls\":[]}", .err = "calls: expected object"},
    {.json = "{\"calls\":{\"allow_to\":[null]}}", .err = "calls.allow_to[0]: expected string"},
    {.json = "{\"calls\":{\"allow_to\":[\"*\",\"110\",\"1\"]}}", .err = E("calls.allow_to[2]", CALL_ALLOW_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"+49*\",\"*31#\",\"+4917 0\"]}}", .err = E("calls.allow_to[2]", CALL_ALLOW_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"**21*004917012345678#x\"]}}", .err = E("calls.allow_to[0]", CALL_CODE_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"*21*\\\"#\"]}}", .err = E("calls.allow_to[0]", CALL_CODE_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"#;\"]}}", .err = E("calls.allow_to[0]", CALL_CODE_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"+#\",\"+\"]}}", .err = E("calls.allow_to[1]", CALL_ALLOW_MSG)},
    {.json = "{\"calls\":{\"allow_to\":[\"*1234567890123456789012345678901#\"]}}", .err = E("calls.allow_to[0]", CALL_CODE_MSG)},
    /* sms.allow_to takes no service code: an SMS goes to a number */
    {.json = "{\"sms\":{\"allow_to\":[\"*100#\"]}}", .err = E("sms.allow_to[0]", ALLOW_MSG)},

    /* ---- remote ---- */
    {.json = "{\"remote\":null}", .err = "remote: expected object"},
    {.json = "{\"remote\":true}", .err = "remote: expected object"},
    {.json = "{\"remote\":{\"server\":\"mqtt://x\"}}", .err = "remote.server: expected tcp://host[:port] (set \"tls\": true for TLS)"},
    {.json = "{\"remote\":{\"server\":\"ssl://x:8883\"}}", .err = "remote.server: expected tcp://host[:port] (set \"tls\": true for TLS)"},
    {.json = "{\"remote\":{\"server\":\"tcp://\"}}", .err = "remote.server: expected tcp://host[:port] (set \"tls\": true for TLS)"},
    {.json = "{\"remote\":{\"server\":\"tcp://a\\\"b\"}}", .err = "remote.server: expected tcp://host[:port] (set \"tls\": true for TLS)"},
    {.json = "{\"remote\":{\"server\":1}}", .err = "remote.server: expected string"},
    {.json = "{\"remote\":{\"client_id\":\"\"}}", .err = "remote.client_id: expected 1-128 printable ASCII characters without '\"' or '\\'"},
    {.json = "{\"remote\":{\"client_id\":\"a\\\"b\"}}", .err = "remote.client_id: expected 1-128 printable ASCII characters without '\"' or '\\'"},
    {.json = "{\"remote\":{\"client_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
     .err = "remote.client_id: expected 1-128 printable ASCII characters without '\"' or '\\'"},
    {.json = "{\"remote\":{\"username\":\"\"}}", .err = E("remote.username", "expected 1-256 printable ASCII characters without '\"' or '\\' (null for none)")},
    {.json = "{\"remote\":{\"username\":[]}}", .err = "remote.username: expected string or null"},
    {.json = "{\"remote\":{\"password\":\"s3cr3t\\\"\"}}", .err = E("remote.password", "expected 1-256 printable ASCII characters without '\"' or '\\' (null for none)")},
    {.json = "{\"remote\":{\"password\":\"s3cr3t\\r\\nAT\"}}", .err = E("remote.password", "expected 1-256 printable ASCII characters without '\"' or '\\' (null for none)")},
    {.json = "{\"remote\":{\"keepalive\":0}}", .err = "remote.keepalive: expected integer 1-64800"},
    {.json = "{\"remote\":{\"keepalive\":64801}}", .err = "remote.keepalive: expected integer 1-64800"},
    {.json = "{\"remote\":{\"clean_session\":\"true\"}}", .err = "remote.clean_session: expected boolean"},
    {.json = "{\"remote\":{\"tls\":0}}", .err = "remote.tls: expected boolean"},
    {.json = "{\"remote\":{\"subscribe\":{}}}", .err = "remote.subscribe: expected array"},
    {.json = "{\"remote\":{\"subscribe\":[\"a/b\"]}}", .err = "remote.subscribe[0]: expected object"},
    {.json = "{\"remote\":{\"subscribe\":[{\"qos\":1}]}}", .err = "remote.subscribe[0].topic: missing"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\"},{\"topic\":\"b\",\"qos\":3}]}}", .err = "remote.subscribe[1].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"qos\":\"1\"}]}}", .err = "remote.subscribe[0].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"qos\":-1}]}}", .err = "remote.subscribe[0].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"qos\":0.5}]}}", .err = "remote.subscribe[0].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"qos\":null}]}}", .err = "remote.subscribe[0].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a/#/b\"}]}}", .err = E("remote.subscribe[0].topic", "must use '+' and '#' only as whole levels, '#' only as the last")},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a+\"}]}}", .err = E("remote.subscribe[0].topic", "must use '+' and '#' only as whole levels, '#' only as the last")},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"\"}]}}", .err = "remote.subscribe[0].topic: must not be empty"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":null}]}}", .err = "remote.subscribe[0].topic: expected string"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"local\":\"home/+\"}]}}", .err = "remote.subscribe[0].local: must not contain '+' or '#' (a topic name, not a filter)"},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a\",\"local\":5}]}}", .err = "remote.subscribe[0].local: expected string or null"},
    {.json = "{\"remote\":{\"forward\":null}}", .err = "remote.forward: expected array"},
    {.json = "{\"remote\":{\"forward\":[[]]}}", .err = "remote.forward[0]: expected object"},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\"}]}}", .err = "remote.forward[0].remote: missing"},
    {.json = "{\"remote\":{\"forward\":[{\"remote\":\"a\"}]}}", .err = "remote.forward[0].local: missing"},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"x/+\"}]}}", .err = "remote.forward[0].remote: must not contain '+' or '#' (a topic name, not a filter)"},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"#/a\",\"remote\":\"x\"}]}}", .err = E("remote.forward[0].local", "must use '+' and '#' only as whole levels, '#' only as the last")},
    /* C1 controls and noncharacters: the remote broker drops the module */
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a/\\u0085\"}]}}", .err = E("remote.subscribe[0].topic", "must not contain control characters (U+0000-U+001F, U+007F-U+009F)")},
    {.json = "{\"remote\":{\"subscribe\":[{\"topic\":\"a/+\"},{\"topic\":\"b\\u009f\"}]}}", .err = E("remote.subscribe[1].topic", "must not contain control characters (U+0000-U+001F, U+007F-U+009F)")},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"x\\uffff\"}]}}", .err = E("remote.forward[0].remote", "must not contain Unicode noncharacters (U+FFFE, U+FFFF, U+FDD0-U+FDEF)")},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"x\\u007f\"}]}}", .err = E("remote.forward[0].remote", "must not contain control characters (U+0000-U+001F, U+007F-U+009F)")},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\\u0080\",\"remote\":\"x\"}]}}", .err = E("remote.forward[0].local", "must not contain control characters (U+0000-U+001F, U+007F-U+009F)")},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"x\",\"qos\":7}]}}", .err = "remote.forward[0].qos: expected integer 0-2"},
    {.json = "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":5}]}}", .err = "remote.forward[0].remote: expected string"},

    /* ---- top level ---- */
    {.json = "{\"state_dir\":\"var/lib/m2m\"}", .err = "state_dir: expected an absolute directory path"},
    {.json = "{\"state_dir\":\"\"}", .err = "state_dir: expected an absolute directory path"},
    {.json = "{\"state_dir\":1}", .err = "state_dir: expected string"},
    {.json = "{\"allow_raw_at\":\"yes\"}", .err = "allow_raw_at: expected boolean"},
    {.json = "{\"log_level\":\"verbose\"}", .err = "log_level: expected error, warn, info or debug"},
    {.json = "{\"log_level\":\"INFO\"}", .err = "log_level: expected error, warn, info or debug"},
    {.json = "{\"log_level\":null}", .err = "log_level: expected string"},

    /* ---- the environment ---- */
    {.env = {"MODEM2MQTT_BAUD=abc"}, .err = "MODEM2MQTT_BAUD: expected integer"},
    {.env = {"MODEM2MQTT_BAUD=-9600"}, .err = "MODEM2MQTT_BAUD: expected integer"},
    {.env = {"MODEM2MQTT_BAUD= 9600"}, .err = "MODEM2MQTT_BAUD: expected integer"},
    {.env = {"MODEM2MQTT_BAUD=9600.0"}, .err = "MODEM2MQTT_BAUD: expected integer"},
    {.env = {"MODEM2MQTT_BAUD=99999999999"}, .err = "MODEM2MQTT_BAUD: expected integer"},
    {.env = {"MODEM2MQTT_BAUD=12345"}, .err = E("MODEM2MQTT_BAUD", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},
    {.env = {"MODEM2MQTT_PORT=ttyUSB0"}, .err = E("MODEM2MQTT_PORT", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.env = {"MODEM2MQTT_BROKER=tcp://x:1883"}, .err = E("MODEM2MQTT_BROKER", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.env = {"MODEM2MQTT_BROKER=mqtt://me:pw@x"}, .err = "MODEM2MQTT_BROKER: credentials in the URI are not accepted, use mqtt.username and MODEM2MQTT_PASSWORD_FILE"},
    {.env = {"MODEM2MQTT_BASE_TOPIC=a/#"}, .err = "MODEM2MQTT_BASE_TOPIC: must not contain '+' or '#'"},
    {.env = {"MODEM2MQTT_LOG_LEVEL=trace"}, .err = "MODEM2MQTT_LOG_LEVEL: expected error, warn, info or debug"},
    {.env = {"MODEM2MQTT_USERNAME=a\nb"}, .err = "MODEM2MQTT_USERNAME: expected at most 1024 bytes of UTF-8 without control characters"},
    {.env = {"MODEM2MQTT_PASSWORD_FILE=/a\nb"}, .err = "MODEM2MQTT_PASSWORD_FILE: expected a file path"},
    /* the password itself is not checked: it only goes to the broker */
    {.env = {"MODEM2MQTT_PASSWORD=\"x\\y z\""}, .expect = {"mqtt.password=\"x\\y z\""}},
    /* the file is checked first */
    {.json = "{\"log_level\":\"x\"}", .env = {"MODEM2MQTT_LOG_LEVEL=y"}, .err = "log_level: expected error, warn, info or debug"},
    /* the environment does not hide a bad file value it overrides */
    {.json = "{\"modem\":{\"baud\":1}}", .env = {"MODEM2MQTT_BAUD=9600"}, .err = E("modem.baud", "expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)")},

    /* ---- the command line ---- */
    {.argv = {"-p", "ttyUSB0"}, .err = E("--port", "expected \"auto\", a device path or tcp://HOST:PORT")},
    {.argv = {"-H", "tcp://x"}, .err = E("--broker", "expected mqtt://host[:port], mqtts://host[:port] or unix:///path")},
    {.argv = {"--broker=mqtt://u:p@x"}, .err = "--broker: credentials in the URI are not accepted, use mqtt.username and MODEM2MQTT_PASSWORD_FILE"},
    {.argv = {"-t", "a/+"}, .err = "--base-topic: must not contain '+' or '#'"},
    {.argv = {"-t", ""}, .err = "--base-topic: must not be empty"},
    {.argv = {"-l", "trace"}, .err = "--log-level: expected error, warn, info or debug"},
    {.env = {"MODEM2MQTT_LOG_LEVEL=trace"}, .argv = {"-l", "debug"}, .err = "MODEM2MQTT_LOG_LEVEL: expected error, warn, info or debug"},

    /* modems: the entries' shape, names, and what two modems must not share */
    {.json = "{\"modems\":{}}", .err = "modems: expected array"},
    {.json = "{\"modems\":[]}", .err = "modems: expected 1-32 entries"},
    {.json = "{\"modems\":[1]}", .err = "modems[0]: expected object"},
    {.json = "{\"modems\":[{}]}", .err = "modems[0].name: required"},
    {.json = "{\"modems\":[{\"name\":\"A\"}]}", .err = "modems[0].name: expected 1-32 of a-z 0-9 _ -"},
    {.json = "{\"modems\":[{\"name\":\"a/b\"}]}", .err = "modems[0].name: expected 1-32 of a-z 0-9 _ -"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"mqtt\":{}}]}", .err = "modems[0].mqtt: unknown key"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"modems\":[]}]}", .err = "modems[0].modems: unknown key"},
    {.json = "{\"modems\":[{\"name\":\"a\"}],\"modems\":[{\"name\":\"b\"}]}", .err = "modems: duplicate key"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"sms\":{\"max_parts\":0}}]}", .err = "modems[0].sms.max_parts: expected integer 1-16"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"modem\":{\"port\":\"/dev/a\"}},{\"name\":\"a\",\"modem\":{\"port\":\"/dev/b\"}}]}", .err = "modems[1].name: the same as modems[0]'s"},
    {.json = "{\"modems\":[{\"name\":\"a\"},{\"name\":\"b\"}]}", .err = "modems[0].modem.port: \"auto\" cannot tell several modems apart; name each port (/dev/serial/by-id/...)"},
    {.json = "{\"modem\":{\"port\":\"/dev/a\"},\"modems\":[{\"name\":\"a\"},{\"name\":\"b\"}]}", .err = "modems[1].modem.port: the same as modems[0]'s"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"base_topic\":\"x\",\"modem\":{\"port\":\"/dev/a\"}},{\"name\":\"b\",\"base_topic\":\"x\",\"modem\":{\"port\":\"/dev/b\"}}]}", .err = "modems[1].base_topic: the same as modems[0]'s"},
    {.json = "{\"remote\":{},\"modems\":[{\"name\":\"a\",\"modem\":{\"port\":\"/dev/a\"}},{\"name\":\"b\",\"modem\":{\"port\":\"/dev/b\"}}]}", .err = "modems[1].remote.client_id: the same as modems[0]'s on the same server"},
    {.json = "{\"mqtt\":{\"base_topic\":\"m\"},\"modems\":[{\"name\":\"a\"}]}", .err = "mqtt.base_topic: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.env = {"MODEM2MQTT_BASE_TOPIC=m"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "MODEM2MQTT_BASE_TOPIC: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.argv = {"-p", "/dev/ttyUSB0"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "--port: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.argv = {"-b", "9600"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "--baud: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.env = {"MODEM2MQTT_PORT=/dev/ttyUSB0"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "MODEM2MQTT_PORT: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.env = {"MODEM2MQTT_BAUD=9600"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "MODEM2MQTT_BAUD: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.argv = {"-t", "m"}, .json = "{\"modems\":[{\"name\":\"a\"}]}", .err = "--base-topic: not used with modems (each entry has its own base_topic, by default modem/<name>, and its own modem.port and modem.baud)"},
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"modem/a\"}},\"modems\":[{\"name\":\"a\"}]}", .err = "modems[0].base_topic: must differ from mqtt.pool.topic"},
    {.json = "{\"modems\":[{\"name\":\"a\",\"remote\":{\"cert_file\":\"/c\"}}]}", .err = "modems[0].remote.key_file: required with remote.cert_file"},
    /* one entry: "auto" is fine, and the pool topic may be the top level's base topic */
    {.json = "{\"mqtt\":{\"pool\":{\"topic\":\"modem\"}},\"modems\":[{\"name\":\"a\"}]}", .expect = {"name=(null) modems=1"}},
};

static bool run_build_case(size_t idx, const struct build_case *c)
{
    char *argv[MAX_ARGS + 2] = {(char *)"modem2mqtt"};
    int argc = 1;
    for (; c->argv[argc - 1]; argc++)
        argv[argc] = (char *)c->argv[argc - 1];
    argv[argc] = NULL;

    struct config_cli cli;
    char err[256];
    assert_int_equal(config_parse_cli(argc, argv, &cli, err, sizeof err), 0);

    g_env = c->env;
    struct config cfg;
    memset(err, 'x', sizeof err);
    int rc = config_build(&cfg, c->json, c->json ? strlen(c->json) : 0, fake_getenv, &cli, err,
                          sizeof err);
    g_env = NULL;

    bool ok = true;
    if (c->err) {
        if (rc != -EINVAL || strcmp(err, c->err) != 0) {
            print_error("case %zu (%s): rc %d, err \"%s\", expected \"%s\"\n", idx,
                        c->json ? c->json : "-", rc, rc ? err : "", c->err);
            ok = false;
        }
        /* freed on error */
        static const struct config zero;
        if (memcmp(&cfg, &zero, sizeof cfg) != 0) {
            print_error("case %zu: config not cleared on error\n", idx);
            ok = false;
        }
        /* no value ever appears in a message */
        if (strstr(err, "s3cr3t") || strstr(err, "hunter2")) {
            print_error("case %zu: secret in \"%s\"\n", idx, err);
            ok = false;
        }
        return ok;
    }
    if (rc != 0) {
        print_error("case %zu (%s): rejected: %s\n", idx, c->json ? c->json : "-", err);
        return false;
    }
    struct dump d;
    dump_config(&cfg, &d);
    for (size_t i = 0; i < MAX_EXPECT && c->expect[i]; i++) {
        if (!dump_has(&d, c->expect[i])) {
            print_error("case %zu: missing \"%s\" in\n%s", idx, c->expect[i], d.text);
            ok = false;
        }
    }
    config_free(&cfg);
    return ok;
}

static void test_build_table(void **state)
{
    (void)state;
    size_t failed = 0, n = sizeof build_cases / sizeof build_cases[0];
    for (size_t i = 0; i < n; i++)
        failed += !run_build_case(i, &build_cases[i]);
    print_message("%zu config cases\n", n);
    assert_int_equal(failed, 0);
}

static void test_defaults_exact(void **state)
{
    (void)state;
    struct config cfg;
    struct dump d;
    char err[128];

    assert_int_equal(config_build(&cfg, NULL, 0, NULL, NULL, err, sizeof err), 0);
    dump_config(&cfg, &d);
    assert_string_equal(d.text, DEFAULTS);
    config_free(&cfg);

    /* {} and an empty environment change nothing */
    g_env = (const char *const[]){NULL};
    assert_int_equal(config_build(&cfg, "{}", 2, fake_getenv, NULL, err, sizeof err), 0);
    g_env = NULL;
    dump_config(&cfg, &d);
    assert_string_equal(d.text, DEFAULTS);
    config_free(&cfg);
}

/* The file of the same values as the defaults gives the defaults, with the
 * remote block enabled: that is what the contract's example means. */
static void test_contract_example(void **state)
{
    (void)state;
    struct config cfg;
    struct dump d;
    char err[128];
    char want[sizeof DEFAULTS + 64];

    assert_int_equal(
        config_build(&cfg, FULL_EXAMPLE, strlen(FULL_EXAMPLE), NULL, NULL, err, sizeof err), 0);
    dump_config(&cfg, &d);
    snprintf(want, sizeof want, "%s", DEFAULTS);
    /* The example names the client id "modem2mqtt" itself. */
    char *p = strstr(want, "mqtt.client_id=modem2mqtt-modem\n");
    memmove(p + strlen("mqtt.client_id=modem2mqtt"), p + strlen("mqtt.client_id=modem2mqtt-modem"),
            strlen(p + strlen("mqtt.client_id=modem2mqtt-modem")) + 1);
    p = strstr(want, "remote.enabled=0");
    p[strlen("remote.enabled=")] = '1';
    p = strstr(want, "remote.subscribe=[]\nremote.forward=[]\n");
    snprintf(p, sizeof want - (size_t)(p - want),
             "remote.subscribe=[abc/+ 1 home/abc]\nremote.forward=[sensors/# devices/x 1]\n"
             "remote.will=0 (null) (null) 0 0\n"
             "mqtt.pool=0 (null) modem2mqtt\nmetrics.listen=(null)\nstate_dir=/var/lib/modem2mqtt\nallow_raw_at=0\nlog_level=info\n"
             "name=(null) modems=0\n");
    assert_string_equal(d.text, want);
    config_free(&cfg);
}

/* config/<name> loaded with our own parser (config_load), as a dump. */
static void load_example(const char *name, struct dump *d)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof path - (size_t)(slash - path), "/../../config/%s", name);

    struct config_cli cli = {.config_file = path};
    struct config cfg;
    char err[256];
    if (config_load(&cfg, &cli, err, sizeof err) != 0)
        fail_msg("%s: %s", name, err);
    dump_config(&cfg, d);
    config_free(&cfg);
}

/* config/config.example.json must load with our own parser. */
static void test_example_file(void **state)
{
    (void)state;
    struct dump d;
    load_example("config.example.json", &d);
    /* Safe when copied unedited: no cloud link, no number but a placeholder. */
    assert_true(dump_has(&d, "remote.enabled=0"));
    assert_true(dump_has(&d, "sms.allow_to=[+4917012345678]"));
    assert_true(dump_has(&d, "calls.allow_to=[+4917012345678]"));
    assert_true(dump_has(&d, "mqtt.broker=mqtt://localhost:1883"));
}

/* config/dfrobot.example.json loads too, its will included. */
static void test_dfrobot_example(void **state)
{
    (void)state;
    struct dump d;
    load_example("dfrobot.example.json", &d);
    assert_true(dump_has(&d, "remote.enabled=1"));
    assert_true(dump_has(&d, "remote.will=1 YOUR_STATUS_TOPIC_ID offline 1 0"));
}

/* Input is read by length, not to a terminator. */
static void test_build_length(void **state)
{
    (void)state;
    struct config cfg;
    char err[128];
    const char text[] = "{\"log_level\":\"debug\"}garbage";
    size_t n = strlen("{\"log_level\":\"debug\"}");
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, text, n);
    assert_int_equal(config_build(&cfg, copy, n, NULL, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.log_level, "debug");
    config_free(&cfg);
    free(copy);

    const char nul[] = "{\n\"log_level\":\"de\0bug\"}";
    assert_int_equal(config_build(&cfg, nul, sizeof nul - 1, NULL, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "config: NUL byte at line 2");

    /* a small error buffer is filled, not overrun; NULL is fine too */
    char tiny[8];
    assert_int_equal(config_build(&cfg, "{\"x\":1}", 7, NULL, NULL, tiny, sizeof tiny), -EINVAL);
    assert_string_equal(tiny, "x: unkn");
    assert_int_equal(config_build(&cfg, "{\"x\":1}", 7, NULL, NULL, NULL, 0), -EINVAL);
}

/* Limits on lists: exactly the maximum passes. */
static void test_list_limits(void **state)
{
    (void)state;
    static const struct { const char *fmt_head, *item, *fmt_tail; size_t max; const char *err; } cases[] = {
        {"{\"sms\":{\"allow_to\":[", "\"+4917012345678\"", "]}}", 256, "sms.allow_to: at most 256 entries"},
        {"{\"calls\":{\"allow_to\":[", "\"*\"", "]}}", 256, "calls.allow_to: at most 256 entries"},
        {"{\"modem\":{\"init\":[", "\"AT\"", "]}}", 32, "modem.init: at most 32 entries"},
        {"{\"remote\":{\"subscribe\":[", "{\"topic\":\"a\"}", "]}}", 32, "remote.subscribe: at most 32 entries"},
        {"{\"remote\":{\"forward\":[", "{\"local\":\"a\",\"remote\":\"b\"}", "]}}", 32, "remote.forward: at most 32 entries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t n = cases[i].max; n <= cases[i].max + 1; n++) {
            size_t size = strlen(cases[i].fmt_head) + n * (strlen(cases[i].item) + 1) + 16;
            char *buf = malloc(size);
            assert_non_null(buf);
            size_t len = (size_t)snprintf(buf, size, "%s", cases[i].fmt_head);
            for (size_t k = 0; k < n; k++)
                len += (size_t)snprintf(buf + len, size - len, "%s%s", k ? "," : "", cases[i].item);
            len += (size_t)snprintf(buf + len, size - len, "%s", cases[i].fmt_tail);
            struct config cfg;
            char err[128];
            int rc = config_build(&cfg, buf, len, NULL, NULL, err, sizeof err);
            if (n == cases[i].max) {
                if (rc)
                    fail_msg("%s", err);
                config_free(&cfg);
            } else {
                assert_int_equal(rc, -EINVAL);
                assert_string_equal(err, cases[i].err);
            }
            free(buf);
        }
    }

    /* remote topic of 1024 bytes passes, 1025 does not */
    char buf[1200];
    snprintf(buf, sizeof buf, "{\"remote\":{\"subscribe\":[{\"topic\":\"%01024d\"}]}}", 0);
    struct config cfg;
    char err[128];
    assert_int_equal(config_build(&cfg, buf, strlen(buf), NULL, NULL, err, sizeof err), 0);
    config_free(&cfg);
    snprintf(buf, sizeof buf, "{\"remote\":{\"forward\":[{\"local\":\"a\",\"remote\":\"%01025d\"}]}}", 0);
    assert_int_equal(config_build(&cfg, buf, strlen(buf), NULL, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "remote.forward[0].remote: longer than 1024 bytes");

    /* a will message of 1024 bytes passes, 1025 does not */
    snprintf(buf, sizeof buf, "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"%01024d\"}}}", 0);
    assert_int_equal(config_build(&cfg, buf, strlen(buf), NULL, NULL, err, sizeof err), 0);
    assert_int_equal(strlen(cfg.remote.will.payload), 1024);
    config_free(&cfg);
    snprintf(buf, sizeof buf, "{\"remote\":{\"will\":{\"topic\":\"t\",\"payload\":\"%01025d\"}}}", 0);
    assert_int_equal(config_build(&cfg, buf, strlen(buf), NULL, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "remote.will.payload: expected 1-1024 bytes");
}

/* ---- the command line ------------------------------------------------------- */

struct cli_case {
    const char *argv[MAX_ARGS];
    const char *err;           /* NULL: success */
    const char *want;          /* success: the parsed fields as one line */
};

#define SECRET(opt) "unknown option '" opt "': secrets are not accepted on the command line, " \
                    "use MODEM2MQTT_PASSWORD_FILE or MODEM2MQTT_PASSWORD (and MODEM2MQTT_USERNAME)"

static const struct cli_case cli_cases[] = {
    {{NULL}, NULL, "action=0 c=- p=- b=0 H=- t=- l=-"},
    {{"-c", "/etc/x.json", "-p", "/dev/ttyUSB2", "-b", "9600", "-H", "mqtt://h", "-t", "t", "-l", "debug"},
     NULL, "action=0 c=/etc/x.json p=/dev/ttyUSB2 b=9600 H=mqtt://h t=t l=debug"},
    {{"--config=/etc/x.json", "--port", "auto", "--baud=921600", "--broker", "unix:///s",
      "--base-topic=a/b", "--log-level", "warn"},
     NULL, "action=0 c=/etc/x.json p=auto b=921600 H=unix:///s t=a/b l=warn"},
    {{"-p/dev/ttyACM0", "-b115200"}, NULL, "action=0 c=- p=/dev/ttyACM0 b=115200 H=- t=- l=-"},
    {{"-p", "a", "-p", "b"}, NULL, "action=0 c=- p=b b=0 H=- t=- l=-"},
    {{"--conf", "f"}, NULL, "action=0 c=f p=- b=0 H=- t=- l=-"}, /* unambiguous prefix */
    {{"--list-ports"}, NULL, "action=3 c=- p=- b=0 H=- t=- l=-"},
    {{"-V"}, NULL, "action=2 c=- p=- b=0 H=- t=- l=-"},
    {{"--version"}, NULL, "action=2 c=- p=- b=0 H=- t=- l=-"},
    {{"-h"}, NULL, "action=1 c=- p=- b=0 H=- t=- l=-"},
    {{"--help"}, NULL, "action=1 c=- p=- b=0 H=- t=- l=-"},
    {{"-Vh"}, NULL, "action=1 c=- p=- b=0 H=- t=- l=-"},        /* help wins */
    {{"--list-ports", "-V"}, NULL, "action=2 c=- p=- b=0 H=- t=- l=-"},
    {{"--health", "-c", "f"}, NULL, "action=4 c=f p=- b=0 H=- t=- l=-"},
    {{"--health", "--list-ports"}, NULL, "action=3 c=- p=- b=0 H=- t=- l=-"},
    {{"--health=1"}, "option '--health' does not take an argument", NULL},
    {{"--device-server", "/dev/ttyUSB0", "--set", "uart=1", "-b", "9600"}, NULL,
     "action=5 c=- p=- b=9600 H=- t=- l=-"},
    {{"--health", "--device-server", "/dev/ttyUSB0"},
     "--device-server and --health: one at a time (--health checks a running bridge, "
     "--device-server runs instead of it)", NULL},
    {{"--device-server", "/dev/ttyUSB0", "--list-ports"}, NULL, "action=3 c=- p=- b=0 H=- t=- l=-"},
    {{"--health", "--device-server", "/dev/ttyUSB0", "-h"}, NULL,
     "action=1 c=- p=- b=0 H=- t=- l=-"},                        /* help wins */
    {{"--set", "regen=off"}, "--set: only with --device-server", NULL},
    {{"--device-server"}, "option '--device-server' requires an argument", NULL},
    {{"--device-server", "d", "--set", "a", "--set", "b", "--set", "c", "--set", "d", "--set", "e",
      "--set", "f", "--set", "g", "--set", "h", "--set", "i"}, "--set: at most 8", NULL},
    {{"-p", "/dev/x", "--"}, NULL, "action=0 c=- p=/dev/x b=0 H=- t=- l=-"},
    {{"--password", "hunter2"}, SECRET("--password"), NULL},
    {{"--password=hunter2"}, SECRET("--password"), NULL},
    {{"--username", "me"}, SECRET("--username"), NULL},
    {{"--user=me"}, SECRET("--user"), NULL},
    {{"--mqtt-pass", "x"}, SECRET("--mqtt-pass"), NULL},
    {{"--pin", "1234"}, SECRET("--pin"), NULL},
    {{"--token=abc"}, SECRET("--token"), NULL},
    {{"-P", "hunter2"}, SECRET("-P"), NULL},
    {{"-Phunter2"}, SECRET("-P"), NULL},
    {{"-u", "me"}, SECRET("-u"), NULL},
    {{"-p", "/dev/x", "-P", "hunter2"}, SECRET("-P"), NULL},
    {{"--foo"}, "unknown option '--foo'", NULL},
    {{"--foo=bar"}, "unknown option '--foo'", NULL},
    {{"-x"}, "unknown option '-x'", NULL},
    {{"--broker=mqtt://h", "-xV"}, "unknown option '-x'", NULL},
    {{"--b", "9600"}, "unknown option '--b'", NULL}, /* ambiguous */
    {{"-p"}, "option '-p' requires an argument", NULL},
    {{"-V", "-c"}, "option '-c' requires an argument", NULL},
    {{"--port"}, "option '--port' requires an argument", NULL},
    {{"--help=x"}, "option '--help' does not take an argument", NULL},
    {{"--list-ports=1"}, "option '--list-ports' does not take an argument", NULL},
    {{"hunter2"}, "unexpected argument #1: options only", NULL},
    {{"-p", "/dev/x", "extra"}, "unexpected argument #3: options only", NULL},
    {{"--", "x"}, "unexpected argument #2: options only", NULL},
    {{"-b", "fast"}, "--baud: expected integer", NULL},
    {{"-b", "-9600"}, "--baud: expected integer", NULL},
    {{"-b", ""}, "--baud: expected integer", NULL},
    {{"-b", "0"}, "--baud: expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)", NULL},
    {{"--baud=11520"}, "--baud: expected a standard serial rate (300-4000000, e.g. 9600, 115200, 921600)", NULL},
};

static bool run_cli_case(size_t idx, const struct cli_case *c)
{
    char *argv[MAX_ARGS + 2] = {(char *)"/usr/bin/modem2mqtt"};
    int argc = 1;
    for (; c->argv[argc - 1]; argc++)
        argv[argc] = (char *)c->argv[argc - 1];
    argv[argc] = NULL;

    struct config_cli cli;
    char err[256] = "";
    int rc = config_parse_cli(argc, argv, &cli, err, sizeof err);
    if (c->err) {
        if (rc != -EINVAL || strcmp(err, c->err) != 0) {
            print_error("cli case %zu: rc %d \"%s\", expected \"%s\"\n", idx, rc, err, c->err);
            return false;
        }
        if (strstr(err, "hunter2")) {
            print_error("cli case %zu: secret in \"%s\"\n", idx, err);
            return false;
        }
        return true;
    }
    if (rc != 0) {
        print_error("cli case %zu: rejected: %s\n", idx, err);
        return false;
    }
    char got[512];
    snprintf(got, sizeof got, "action=%d c=%s p=%s b=%d H=%s t=%s l=%s", (int)cli.action,
             cli.config_file ? cli.config_file : "-", cli.port ? cli.port : "-", cli.baud,
             cli.broker ? cli.broker : "-", cli.base_topic ? cli.base_topic : "-",
             cli.log_level ? cli.log_level : "-");
    if (strcmp(got, c->want) != 0) {
        print_error("cli case %zu: got \"%s\", expected \"%s\"\n", idx, got, c->want);
        return false;
    }
    return true;
}

static void test_cli_table(void **state)
{
    (void)state;
    size_t failed = 0, n = sizeof cli_cases / sizeof cli_cases[0];
    /* twice: getopt's state is reset on every call */
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < n; i++)
            failed += !run_cli_case(i, &cli_cases[i]);
    print_message("%zu cli cases\n", n);
    assert_int_equal(failed, 0);
}

static void test_usage(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print_usage(f, "/usr/local/bin/modem2mqtt");
    fclose(f);

    /* the README's usage text, verbatim */
    static const char contract[] =
        "modem2mqtt [options]\n"
        "  -c, --config FILE      JSON config (default: /etc/modem2mqtt/config.json if present)\n"
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
        "  -h, --help             usage, exit\n";
    assert_true(len > sizeof contract);
    assert_memory_equal(text, contract, sizeof contract - 1);
    static const char *const env[] = {
        "MODEM2MQTT_PORT", "MODEM2MQTT_BAUD", "MODEM2MQTT_BROKER", "MODEM2MQTT_BASE_TOPIC",
        "MODEM2MQTT_USERNAME", "MODEM2MQTT_PASSWORD ", "MODEM2MQTT_PASSWORD_FILE",
        "MODEM2MQTT_LOG_LEVEL",
    };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (!strstr(text, env[i]))
            fail_msg("usage lacks %s", env[i]);
    free(text);

    /* no argv0: the program's name */
    f = open_memstream(&text, &len);
    config_print_usage(f, NULL);
    fclose(f);
    assert_memory_equal(text, "modem2mqtt [options]\n", 21);
    free(text);
}

/* ---- config_load: files ------------------------------------------------------ */

static char g_dir[64];

static void clear_env(void)
{
    static const char *const names[] = {
        "MODEM2MQTT_PORT", "MODEM2MQTT_BAUD", "MODEM2MQTT_BROKER", "MODEM2MQTT_BASE_TOPIC",
        "MODEM2MQTT_USERNAME", "MODEM2MQTT_PASSWORD", "MODEM2MQTT_PASSWORD_FILE",
        "MODEM2MQTT_LOG_LEVEL",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/m2m-test-config-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    clear_env();
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    clear_env();
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    static char path[4][128];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 128, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}

static const char *write_str(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

static void test_load(void **state)
{
    (void)state;
    struct config cfg;
    struct config_cli cli = {0};
    char err[512], want[512];

    /* -c FILE must exist */
    snprintf(want, sizeof want, "%s/missing.json: No such file or directory", g_dir);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.json", g_dir);
    cli.config_file = missing;
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    assert_string_equal(err, want);

    /* a directory is not a config */
    cli.config_file = g_dir;
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s: Is a directory", g_dir);
    assert_string_equal(err, want);

    /* a file is read, then the environment, then the command line */
    cli.config_file = write_str("c.json", "{\"modem\":{\"port\":\"/dev/ttyUSB1\",\"baud\":9600}}");
    setenv("MODEM2MQTT_BAUD", "19200", 1);
    cli.baud = 38400;
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_string_equal(cfg.modem.port, "/dev/ttyUSB1");
    assert_int_equal(cfg.modem.baud, 38400);
    config_free(&cfg);
    cli.baud = 0;
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_int_equal(cfg.modem.baud, 19200);
    config_free(&cfg);
    unsetenv("MODEM2MQTT_BAUD");

    /* errors in the file keep their key path */
    cli.config_file = write_str("bad.json", "{\n\"modem\":{\"baud\":\"fast\"}}");
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    assert_string_equal(err, "modem.baud: expected integer");
    cli.config_file = write_str("syntax.json", "{\n\n\"a\" 1}");
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    assert_string_equal(err, "config: invalid JSON at line 3");

    /* bounded: 1 MiB */
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    cli.config_file = write_file("big.json", text, big);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s: larger than 1 MiB", cli.config_file);
    assert_string_equal(err, want);
    text[1] = '{'; /* exactly 1 MiB: fine */
    cli.config_file = write_file("max.json", text + 1, big - 1);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    config_free(&cfg);
    free(text);
}

static void test_load_password(void **state)
{
    (void)state;
    struct config cfg;
    struct config_cli cli = {0};
    char err[512], want[512], json[512];
    static const struct { const char *content; size_t len; const char *password; } files[] = {
        {"hunter2\n", 8, "hunter2"},
        {"hunter2", 7, "hunter2"},
        {"hunter2\r\n", 9, "hunter2"},
        {"hunter2\n\n", 9, "hunter2\n"},      /* only one newline goes */
        {" pass word ", 11, " pass word "},
        {"", 0, ""},
    };

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *pw = write_file("pw", files[i].content, files[i].len);
        /* named in the file */
        snprintf(json, sizeof json, "{\"mqtt\":{\"username\":\"u\",\"password_file\":\"%s\"}}", pw);
        cli.config_file = write_file("c.json", json, strlen(json));
        assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
        assert_string_equal(cfg.mqtt.password, files[i].password);
        config_free(&cfg);
        /* named in the environment */
        cli.config_file = write_file("empty.json", "{}", 2);
        setenv("MODEM2MQTT_PASSWORD_FILE", pw, 1);
        assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
        assert_string_equal(cfg.mqtt.password, files[i].password);
        assert_string_equal(cfg.mqtt.password_file, pw);
        config_free(&cfg);
        unsetenv("MODEM2MQTT_PASSWORD_FILE");
    }

    /* the environment's file over the config's */
    const char *a = write_file("a", "from-a", 6);
    const char *b = write_file("b", "from-b", 6);
    snprintf(json, sizeof json, "{\"mqtt\":{\"password_file\":\"%s\"}}", a);
    cli.config_file = write_file("c.json", json, strlen(json));
    setenv("MODEM2MQTT_PASSWORD_FILE", b, 1);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_string_equal(cfg.mqtt.password, "from-b");
    config_free(&cfg);

    /* MODEM2MQTT_PASSWORD wins: the file is not even read */
    setenv("MODEM2MQTT_PASSWORD_FILE", "/nonexistent/pw", 1);
    setenv("MODEM2MQTT_PASSWORD", "direct", 1);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_string_equal(cfg.mqtt.password, "direct");
    config_free(&cfg);
    unsetenv("MODEM2MQTT_PASSWORD");

    /* a missing file is an error that names it */
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    assert_string_equal(err, "/nonexistent/pw: No such file or directory");
    unsetenv("MODEM2MQTT_PASSWORD_FILE");

    /* too large, or holding a NUL: refused, and the content is not quoted */
    char big[5000];
    memset(big, 'h', sizeof big);
    const char *pw = write_file("pw", big, 4097);
    snprintf(json, sizeof json, "{\"mqtt\":{\"password_file\":\"%s\"}}", pw);
    cli.config_file = write_file("c.json", json, strlen(json));
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s: larger than 4096 bytes", pw);
    assert_string_equal(err, want);
    write_file("pw", big, 4096);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_int_equal(strlen(cfg.mqtt.password), 4096);
    config_free(&cfg);
    write_file("pw", "hunter2\0x", 9);
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s: contains a NUL byte", pw);
    assert_string_equal(err, want);
    assert_null(strstr(err, "hunter2"));

    /* an unreadable file */
    chmod(pw, 0);
    if (access(pw, R_OK) != 0) { /* not when running as root */
        assert_int_equal(config_load(&cfg, &cli, err, sizeof err), -EINVAL);
        snprintf(want, sizeof want, "%s: Permission denied", pw);
        assert_string_equal(err, want);
    }
    chmod(pw, 0600);
}

/* Without -c, the default file is used only when it exists. */
static void test_load_default(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    if (access(CONFIG_DEFAULT_FILE, F_OK) == 0)
        skip();
    setenv("MODEM2MQTT_LOG_LEVEL", "warn", 1);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.modem.port, "auto");
    config_free(&cfg);
    setenv("MODEM2MQTT_LOG_LEVEL", "loud", 1);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "MODEM2MQTT_LOG_LEVEL: expected error, warn, info or debug");
    unsetenv("MODEM2MQTT_LOG_LEVEL");
}

/* ---- the rest --------------------------------------------------------------- */

/* ---- several modems ------------------------------------------------------- */

static void expect_lines(const struct config *cfg, const char *const *lines)
{
    struct dump d;

    dump_config(cfg, &d);
    for (; *lines; lines++)
        if (!dump_has(&d, *lines))
            fail_msg("missing \"%s\" in\n%s", *lines, d.text);
}

/* Each entry: the top level with its own keys over it, key by key, and
 * what its name derives (base topic, client id, state_dir). */
static void test_modems(void **state)
{
    static const char json[] =
        "{\"mqtt\":{\"pool\":{\"topic\":\"pool\"}},"
        " \"modem\":{\"baud\":9600,\"apn\":\"web\"},"
        " \"sms\":{\"allow_to\":[\"+49*\"],\"max_parts\":3},"
        " \"remote\":{\"server\":\"tcp://r:1883\"}, \"state_dir\":\"/tmp/s\","
        " \"modems\":["
        "  {\"name\":\"office\",\"modem\":{\"port\":\"/dev/ttyUSB0\"},\"sms\":{\"max_parts\":1}},"
        "  {\"name\":\"lte-2\",\"base_topic\":\"home/lte\",\"modem\":{\"port\":\"/dev/ttyUSB3\","
        "   \"baud\":115200},\"sms\":{\"allow_to\":[\"*\"]},\"remote\":{\"client_id\":\"two\"}}]}";
    static const char *const top[] = {"name=(null) modems=2", "state_dir=/tmp/s", NULL};
    static const char *const office[] = {
        "name=office modems=0", "mqtt.base_topic=modem/office", "mqtt.client_id=site-office",
        "modem.port=/dev/ttyUSB0", "modem.baud=9600", "modem.apn=web", "sms.allow_to=[+49*]",
        "sms.max_parts=1", "remote.enabled=1", "remote.server=tcp://r:1883",
        "remote.client_id=modem2mqtt", "mqtt.pool=1 pool modem2mqtt", "state_dir=/tmp/s/office",
        NULL};
    static const char *const lte[] = {
        "name=lte-2 modems=0", "mqtt.base_topic=home/lte", "mqtt.client_id=site-lte-2",
        "modem.port=/dev/ttyUSB3", "modem.baud=115200", "modem.apn=web", "sms.allow_to=[*]",
        "sms.max_parts=3", "remote.client_id=two", "state_dir=/tmp/s/lte-2", NULL};
    static const char *const env[] = {"MODEM2MQTT_CLIENT_ID=site", NULL};
    struct config cfg;
    char err[256];

    (void)state;
    g_env = env;
    assert_int_equal(config_build(&cfg, json, strlen(json), fake_getenv, NULL, err, sizeof err), 0);
    expect_lines(&cfg, top);
    expect_lines(&cfg.modems[0], office);
    expect_lines(&cfg.modems[1], lte);
    config_free(&cfg);

    /* Without a client id anywhere: "modem2mqtt-<name>". */
    g_env = NULL;
    assert_int_equal(config_build(&cfg, json, strlen(json), fake_getenv, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.modems[0].mqtt.client_id, "modem2mqtt-office");
    assert_string_equal(cfg.modems[1].mqtt.client_id, "modem2mqtt-lte-2");
    config_free(&cfg);
}

/* The password file is read once, for every modem's session. */
static void test_modems_password(void **state)
{
    struct config cfg;
    struct config_cli cli = {0};
    char err[512], json[512];

    (void)state;
    const char *pw = write_file("pw", "hunter2\n", 8);
    snprintf(json, sizeof json,
             "{\"mqtt\":{\"username\":\"u\",\"password_file\":\"%s\"},\"modems\":["
             "{\"name\":\"a\",\"modem\":{\"port\":\"/dev/a\"}},"
             "{\"name\":\"b\",\"modem\":{\"port\":\"/dev/b\"}}]}", pw);
    cli.config_file = write_file("c.json", json, strlen(json));
    assert_int_equal(config_load(&cfg, &cli, err, sizeof err), 0);
    assert_int_equal(cfg.n_modems, 2);
    assert_string_equal(cfg.modems[0].mqtt.password, "hunter2");
    assert_string_equal(cfg.modems[1].mqtt.password, "hunter2");
    config_free(&cfg);
}

static void test_number_allowed(void **state)
{
    (void)state;
    char *all[] = {(char *)"*"};
    char *some[] = {(char *)"+4917012345678", (char *)"+4930*"};
    char *intl[] = {(char *)"+*"};
    char *codes[] = {(char *)"*", (char *)"+49*", (char *)"**21*004917012345678#",
                     (char *)"*31#", (char *)"+49*31#"};
    char *national[] = {(char *)"8888", (char *)"0*", (char *)"11*", (char *)"01711234567",
                        (char *)"+4930*"};
    char *abroad[] = {(char *)"0*", (char *)"0044*", (char *)"00491701234567"};
    static const struct { int list; const char *number; bool ok; } cases[] = {
        /* "*" alone: E.164 numbers only, never a national number or short code */
        {0, "+4917012345678", true}, {0, "0170123", false}, {0, "8888", false},
        {0, "+491701", false},       {0, "+0123456789", false}, {0, "", false},
        {0, NULL, false},
        {1, "+4917012345678", true}, {1, "+49170123456789", false}, {1, "+491701234567", false},
        {1, "+4930123456", true},    {1, "+4930", true},    {1, "+493", false},
        {1, "+4940123456", false},   {1, "004930123", false},
        {2, "+4917012345678", true}, {2, "0170123", false},
        {3, "+4917012345678", false},
        /* a service code ('*' or '#') matches its own entry only, never "*"
         * or a prefix: "**21*...#" forwards every call */
        {0, "**21*004917012345678#", false}, {0, "*100#", false}, {0, "#31#", false},
        {0, "+4917012345678#", false},       {0, "*", false},
        {1, "+4930*21#", false},             {2, "+49*31#", false},
        {4, "**21*004917012345678#", true},  {4, "**21*004917012345678", false},
        {4, "**21*0049170123456789#", false}, {4, "*31#", true}, {4, "*31#+4917012345678", false},
        {4, "+49*31#", true},                {4, "+49*31#1", false}, {4, "+4917012345678", true},
        {4, "##21#", false},
        /* national numbers and short codes: exact entries and digit prefixes */
        {5, "8888", true},           {5, "88889", false},   {5, "888", false},
        {5, "01711234567", true},    {5, "0", true},        {5, "+4917012345678", false},
        {5, "1100", true},           {5, "120", false},     {5, "+1100123456", false},
        {5, "0*31#", false},         {5, "+4930123456", true}, {5, "+4940123456", false},
        /* "00" dials abroad: "0*" does not cover it, a prefix written with
         * "00" and an exact entry do */
        {5, "00447911123456", false}, {5, "0030123", false},
        {6, "00447911123456", true},  {6, "00337911123456", false},
        {6, "00491701234567", true},  {6, "0301234567", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static const size_t sizes[] = {1, 2, 1, 0, 5, 5, 3};
        char *const *lists[] = {all, some, intl, NULL, codes, national, abroad};
        if (config_number_allowed(lists[cases[i].list], sizes[cases[i].list], cases[i].number) !=
            cases[i].ok)
            fail_msg("case %zu: %s", i, cases[i].number ? cases[i].number : "NULL");
    }
}

static void test_free_zeroed(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    config_free(&cfg);
    config_free(&cfg);
    config_free(NULL);

    char err[64];
    assert_int_equal(config_build(&cfg, FULL_EXAMPLE, strlen(FULL_EXAMPLE), NULL, NULL, err,
                                  sizeof err), 0);
    config_free(&cfg);
    config_free(&cfg); /* cleared by the first call */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_exact),
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_build_table),
        cmocka_unit_test(test_build_length),
        cmocka_unit_test(test_list_limits),
        cmocka_unit_test(test_cli_table),
        cmocka_unit_test(test_usage),
        cmocka_unit_test_setup_teardown(test_example_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_dfrobot_example, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_load, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_load_password, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_load_default, setup_dir, teardown_dir),
        cmocka_unit_test(test_modems),
        cmocka_unit_test_setup_teardown(test_modems_password, setup_dir, teardown_dir),
        cmocka_unit_test(test_number_allowed),
        cmocka_unit_test(test_free_zeroed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
