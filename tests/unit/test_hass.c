/* Home Assistant discovery (mqtt/hass): every config payload against what
 * HA's MQTT discovery requires of its component, and the glue's memory of
 * what it announced (state file, removals). */
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
#include <cjson/cJSON.h>

#include "modem/call.h"
#include "modem/cmqtt.h"
#include "modem/status.h"
#include "mqtt/hass.h"

#define IMEI "861234567890123"
#define NODE "modem2mqtt_" IMEI
#define TO "+4917012345678"

static const struct modem_info INFO = {
    .manufacturer = "SIMCOM INCORPORATED",
    .model = "A7670E",
    .revision = "A011B07A7670M7",
    .imei = IMEI,
    .imsi = "262011234567890",
    .iccid = "89490200001234567890",
    .number = "+4917099999999",
};

#define URL "https://example.org/modem2mqtt"
#define READY "{{ 'online' if value_json.state == 'ready' else 'offline' }}"

static const struct hass_opts OPTS = {
    .prefix = "homeassistant", .base = "modem", .notify_to = TO, .sw_version = "0.1.0",
    .support_url = URL, .remote = true,
};

/* What each entity must point at: a change here is a change users see. */
struct want {
    const char *topic;
    const char *state_topic;      /* NULL: none */
    const char *command_topic;    /* NULL: none */
    const char *template_has;     /* substring of value_template / command_template;
                                     a button's payload_press */
    const char *list;             /* events: event_types, enum sensors: options (JSON) */
    bool any_state;               /* available without a ready modem */
};

#define SENSOR(key, state, tmpl) \
    "homeassistant/sensor/" NODE "/" key "/config", "modem/" state, NULL, tmpl
#define BUTTON(key, command, press) \
    "homeassistant/button/" NODE "/" key "/config", NULL, "modem/" command, press
#define TEXT(key, topic) \
    "homeassistant/text/" NODE "/" key "/config", "modem/" topic, "modem/" topic, NULL, NULL, true

static const struct want wants[] = {
    { SENSOR("signal_dbm", "status", "signal.dbm") },
    { SENSOR("signal_percent", "status", "signal.percent") },
    { SENSOR("operator", "status", "operator") },
    { SENSOR("registration", "status", "registration"),
      "[\"unregistered\",\"home\",\"searching\",\"denied\",\"unknown\",\"roaming\"]" },
    { SENSOR("access", "status", "access") },
    { SENSOR("modem_state", "status", "'disconnected' if value_json.state == 'unavailable'"),
      "[\"disconnected\",\"starting\",\"ready\",\"sim_locked\",\"no_sim\",\"low_power\","
      "\"resetting\"]", true },
    { SENSOR("remote", "status", "remote"),
      "[\"disabled\",\"connecting\",\"connected\",\"disconnected\"]" },
    { SENSOR("call_state", "call/state", "state"),
      "[\"idle\",\"dialing\",\"alerting\",\"ringing\",\"active\"]" },
    { "homeassistant/event/" NODE "/sms_received/config", "modem/sms/received", NULL,
      "event_type='received'", "[\"received\"]" },
    { "homeassistant/event/" NODE "/call_ring/config", "modem/call/ring", NULL,
      "event_type='ring'", "[\"ring\"]" },
    { "homeassistant/event/" NODE "/sms_report/config", "modem/sms/report", NULL,
      "event_type=value_json.status", "[\"delivered\",\"pending\",\"failed\"]" },
    { BUTTON("modem_reset", "modem/power", "{\"mode\":\"reset\"}"), NULL, true },
    { SENSOR("sms_storage_used", "status", "storage.used") },
    { SENSOR("sms_storage_total", "status", "storage.total") },
    { SENSOR("supply_voltage", "status", "voltage_mv") },
    { "homeassistant/notify/" NODE "/sms/config", NULL, "modem/sms/send",
      "{\"to\":\"" TO "\",\"text\":{{ value | tojson }}}" },
    { "homeassistant/binary_sensor/" NODE "/remote_connected/config", "modem/status", NULL,
      "{{ 'ON' if value_json.remote == 'connected' else 'OFF' }}" },
    { TEXT("sms_to", "ha/sms/to") },
    { TEXT("sms_text", "ha/sms/text") },
    { BUTTON("sms_send", "ha/sms/send", "{}") },
    { TEXT("call_to", "ha/call/to") },
    { BUTTON("call_dial", "ha/call/dial", "{}") },
    { BUTTON("call_answer", "call/answer", "{}") },
    { BUTTON("call_hangup", "call/hangup", "{}") },
    { "homeassistant/event/" NODE "/call_dtmf/config", "modem/call/dtmf/received", NULL,
      "event_type=value_json.digit",
      "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"*\",\"#\","
      "\"A\",\"B\",\"C\",\"D\"]" },
    { SENSOR("cell_id", "status", "value_json.cell.ci if value_json.cell else none") },
    { SENSOR("cell_lac", "status", "value_json.cell.lac if value_json.cell else none") },
    { SENSOR("audio_state", "audio/state", "state"), "[\"idle\",\"playing\",\"recording\"]" },
};
#define N_WANTS (sizeof(wants) / sizeof(wants[0]))
#define NOTIFY 15                 /* wants[]: off without notify_to */
#define REMOTE 16                 /* off without a remote broker */

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool json_is(const cJSON *v, const char *want)
{
    char *got = v ? cJSON_PrintUnformatted(v) : NULL;
    bool same = got && strcmp(got, want) == 0;

    free(got);
    return same;
}

/* The bridge's B/availability, and B/status "ready" unless the entity
 * works in any state; "all" of them. */
static void check_availability(const char *topic, const char *payload, const cJSON *o,
                               const struct want *w)
{
    const char *want = w->any_state
                           ? "[{\"topic\":\"modem/availability\"}]"
                           : "[{\"topic\":\"modem/availability\"},{\"topic\":\"modem/status\","
                             "\"value_template\":\"" READY "\"}]";

    if (!json_is(cJSON_GetObjectItemCaseSensitive(o, "availability"), want))
        fail_msg("%s: availability must be %s: %s", topic, want, payload);
    if (w->any_state)
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "availability_mode"));
    else
        assert_string_equal(str(o, "availability_mode"), "all");
    /* The list replaces the single topic (HA refuses both). */
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "availability_topic"));
}

static void check_sensor(const char *topic, const char *payload, const cJSON *o,
                         const struct want *w)
{
    const char *vt = str(o, "value_template");

    if (!vt || !strstr(vt, "value_json.") || !strstr(vt, w->template_has))
        fail_msg("%s: value_template: %s", topic, payload);
    if (!w->list) {
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "options"));
        return;
    }
    /* An enum: its options, no unit or state class (HA refuses them). */
    assert_string_equal(str(o, "device_class"), "enum");
    if (!json_is(cJSON_GetObjectItemCaseSensitive(o, "options"), w->list))
        fail_msg("%s: options must be %s: %s", topic, w->list, payload);
    assert_null(str(o, "unit_of_measurement"));
    assert_null(str(o, "state_class"));
}

static void check_event(const char *topic, const char *payload, const cJSON *o,
                        const struct want *w)
{
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(o, "event_types");
    const char *vt = str(o, "value_template");

    if (!json_is(types, w->list))
        fail_msg("%s: event_types must be %s: %s", topic, w->list, payload);
    /* The template's event_type is one of event_types: the one type, or
     * the field that holds one of several. */
    char want_type[64];
    snprintf(want_type, sizeof(want_type), "event_type='%s'",
             cJSON_GetArrayItem(types, 0)->valuestring);
    if (cJSON_GetArraySize(types) > 1)
        snprintf(want_type, sizeof(want_type), "event_type=value_json.");
    if (!vt || !strstr(vt, want_type) || !strstr(vt, "| tojson") || !strstr(vt, w->template_has))
        fail_msg("%s: value_template must render {\"event_type\":...}: %s", topic, payload);
}

/* The keys HA requires (or this bridge promises) for the component. */
static void check_payload(const char *topic, const char *payload, const struct want *w)
{
    cJSON *o = cJSON_Parse(payload);
    char component[32] = "";

    if (!o)
        fail_msg("%s: payload is not JSON: %s", topic, payload);
    assert_int_equal(sscanf(topic, "homeassistant/%31[^/]/", component), 1);

    /* Every entity. */
    const char *name = str(o, "name"), *uid = str(o, "unique_id");
    if (!name || !*name || !uid || strncmp(uid, NODE "_", strlen(NODE) + 1) != 0)
        fail_msg("%s: name / unique_id missing or wrong: %s", topic, payload);
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(o, "device");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(dev, "identifiers");
    if (!cJSON_IsObject(dev) || !cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 ||
        !cJSON_IsString(cJSON_GetArrayItem(ids, 0)) ||
        strcmp(cJSON_GetArrayItem(ids, 0)->valuestring, NODE) != 0)
        fail_msg("%s: device.identifiers must be [\"%s\"]: %s", topic, NODE, payload);
    assert_string_equal(str(dev, "manufacturer"), "SIMCOM INCORPORATED");
    assert_string_equal(str(dev, "model"), "A7670E");
    assert_string_equal(str(dev, "sw_version"), "A011B07A7670M7");
    assert_non_null(str(dev, "name"));
    check_availability(topic, payload, o, w);
    const cJSON *origin = cJSON_GetObjectItemCaseSensitive(o, "origin");
    assert_string_equal(str(origin, "name"), "modem2mqtt");
    assert_string_equal(str(origin, "sw_version"), "0.1.0");
    assert_string_equal(str(origin, "support_url"), URL);

    /* Per component. */
    if (w->state_topic)
        assert_string_equal(str(o, "state_topic"), w->state_topic);
    else
        assert_null(str(o, "state_topic"));
    if (w->command_topic)
        assert_string_equal(str(o, "command_topic"), w->command_topic);
    else
        assert_null(str(o, "command_topic"));

    if (strcmp(component, "sensor") == 0) {
        check_sensor(topic, payload, o, w);
    } else if (strcmp(component, "event") == 0) {
        check_event(topic, payload, o, w);
    } else if (strcmp(component, "button") == 0) {
        assert_string_equal(str(o, "payload_press"), w->template_has);
        if (strcmp(w->command_topic, "modem/modem/power") == 0)
            assert_string_equal(str(o, "device_class"), "restart");
    } else if (strcmp(component, "notify") == 0) {
        const char *ct = str(o, "command_template");
        if (!ct || strcmp(ct, w->template_has) != 0)
            fail_msg("%s: command_template: %s", topic, payload);
    } else if (strcmp(component, "binary_sensor") == 0) {
        assert_string_equal(str(o, "device_class"), "connectivity");
        assert_string_equal(str(o, "value_template"), w->template_has);
    } else if (strcmp(component, "text") == 0) {
        /* Its value stays on the broker, where the bridge reads it. */
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "retain")));
    } else {
        fail_msg("%s: unexpected component '%s'", topic, component);
    }
    if (strcmp(component, "text") != 0)
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "retain"));
    cJSON_Delete(o);
}

static void test_every_config(void **state)
{
    char topic[2048], *payload, uids[N_WANTS][128];
    (void)state;

    assert_int_equal(hass_entity_count(), N_WANTS);
    for (size_t i = 0; i < N_WANTS; i++) {
        assert_int_equal(hass_config(&OPTS, &INFO, i, topic, sizeof(topic), &payload), 0);
        assert_string_equal(topic, wants[i].topic);
        check_payload(topic, payload, &wants[i]);
        cJSON *o = cJSON_Parse(payload);
        snprintf(uids[i], sizeof(uids[i]), "%s", str(o, "unique_id"));
        cJSON_Delete(o);
        for (size_t j = 0; j < i; j++)
            if (strcmp(uids[i], uids[j]) == 0)
                fail_msg("unique_id %s used twice", uids[i]);
        free(payload);
    }
}

/* Units, classes and categories HA validates (a wrong unit for
 * signal_strength makes HA refuse the entity). */
static void test_sensor_classes(void **state)
{
    static const struct { size_t i; const char *key, *want; } cases[] = {
        { 0, "device_class", "signal_strength" }, { 0, "unit_of_measurement", "dBm" },
        { 0, "state_class", "measurement" },      { 0, "entity_category", "diagnostic" },
        { 1, "unit_of_measurement", "%" },        { 1, "state_class", "measurement" },
        { 11, "entity_category", "config" },   /* the restart button */
        { 12, "state_class", "measurement" },     { 12, "entity_category", "diagnostic" },
        { 13, "entity_category", "diagnostic" },
        { 14, "name", "Supply voltage" },         { 14, "device_class", "voltage" },
        { 14, "unit_of_measurement", "mV" },      { 14, "state_class", "measurement" },
        { 14, "entity_category", "diagnostic" },
        { 25, "name", "Cell" },                   { 25, "entity_category", "diagnostic" },
        { 26, "name", "Location area" },          { 26, "entity_category", "diagnostic" },
    };
    char topic[2048], *payload;
    (void)state;

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        assert_int_equal(hass_config(&OPTS, &INFO, cases[c].i, topic, sizeof(topic), &payload), 0);
        cJSON *o = cJSON_Parse(payload);
        assert_non_null(o);
        if (!str(o, cases[c].key) || strcmp(str(o, cases[c].key), cases[c].want) != 0)
            fail_msg("%s: %s should be %s: %s", topic, cases[c].key, cases[c].want, payload);
        cJSON_Delete(o);
        free(payload);
    }
}

static void test_without_notify_to(void **state)
{
    struct hass_opts o = OPTS;
    char topic[2048], *payload = (char *)"x";
    (void)state;

    o.notify_to = NULL;
    assert_int_equal(hass_config(&o, &INFO, NOTIFY, topic, sizeof(topic), &payload), -ENOENT);
    assert_null(payload);
    o.notify_to = "";
    assert_int_equal(hass_config(&o, &INFO, NOTIFY, topic, sizeof(topic), &payload), -ENOENT);
    assert_int_equal(hass_config(&o, &INFO, 0, topic, sizeof(topic), &payload), 0);
    free(payload);
}

/* The remote broker's connectivity only when there is one. */
static void test_without_remote(void **state)
{
    struct hass_opts o = OPTS;
    char topic[2048], *payload = (char *)"x";
    (void)state;

    o.remote = false;
    assert_int_equal(hass_config(&o, &INFO, REMOTE, topic, sizeof(topic), &payload), -ENOENT);
    assert_null(payload);
    /* Without a support URL, origin has none. */
    o.support_url = NULL;
    assert_int_equal(hass_config(&o, &INFO, 0, topic, sizeof(topic), &payload), 0);
    cJSON *j = cJSON_Parse(payload);
    assert_null(str(cJSON_GetObjectItemCaseSensitive(j, "origin"), "support_url"));
    cJSON_Delete(j);
    free(payload);
}

/* The options of an enum sensor, as a set of strings. */
static cJSON *options_of(size_t i)
{
    char topic[2048], *payload;
    cJSON *o, *opts;

    assert_int_equal(hass_config(&OPTS, &INFO, i, topic, sizeof(topic), &payload), 0);
    o = cJSON_Parse(payload);
    free(payload);
    opts = cJSON_DetachItemFromObjectCaseSensitive(o, "options");
    cJSON_Delete(o);
    assert_non_null(opts);
    return opts;
}

static bool has(const cJSON *a, const char *v)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, a)
        if (strcmp(e->valuestring, v) == 0)
            return true;
    return false;
}

/* HA refuses an enum sensor's state that is not among its options: every
 * value the bridge's own functions publish is one, and nothing else. */
static void test_enum_values(void **state)
{
    cJSON *reg = options_of(3), *remote = options_of(6), *call = options_of(7);
    (void)state;

    for (int st = -1; st <= 6; st++)
        assert_true(has(reg, status_reg_name(st)));
    assert_int_equal(cJSON_GetArraySize(reg), 6);
    for (int st = CMQTT_DISABLED; st <= CMQTT_DISCONNECTED; st++)
        assert_true(has(remote, cmqtt_state_name(st)));
    assert_int_equal(cJSON_GetArraySize(remote), 4);
    for (int st = CALL_IDLE; st <= CALL_ACTIVE; st++)
        assert_true(has(call, call_st_name(st)));
    assert_int_equal(cJSON_GetArraySize(call), 5);
    cJSON_Delete(reg);
    cJSON_Delete(remote);
    cJSON_Delete(call);
}

static void test_bad_input(void **state)
{
    struct modem_info info = INFO;
    char topic[2048], small[40], *payload;
    (void)state;

    info.imei[0] = '\0';
    assert_int_equal(hass_config(&OPTS, &info, 0, topic, sizeof(topic), &payload), -EINVAL);
    assert_int_equal(hass_config(&OPTS, &INFO, N_WANTS, topic, sizeof(topic), &payload), -EINVAL);
    assert_int_equal(hass_config(&OPTS, &INFO, 0, small, sizeof(small), &payload),
                     -ENAMETOOLONG);
    assert_null(payload);
}

/* Modem strings are data: quotes and backslashes stay inside JSON strings;
 * characters HA does not allow in a node id are replaced. */
static void test_escaping(void **state)
{
    struct modem_info info = INFO;
    char topic[2048], *payload;
    (void)state;

    snprintf(info.model, sizeof(info.model), "A76\"70\\E");
    snprintf(info.imei, sizeof(info.imei), "86/12+#34");
    assert_int_equal(hass_config(&OPTS, &info, 0, topic, sizeof(topic), &payload), 0);
    assert_string_equal(topic, "homeassistant/sensor/modem2mqtt_86_12__34/signal_dbm/config");
    cJSON *o = cJSON_Parse(payload);
    assert_non_null(o);
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(o, "device");
    assert_string_equal(str(dev, "model"), "A76\"70\\E");
    assert_string_equal(str(o, "unique_id"), "modem2mqtt_86_12__34_signal_dbm");
    cJSON_Delete(o);
    free(payload);

    /* An empty manufacturer is left out, not sent as "". */
    info.manufacturer[0] = '\0';
    assert_int_equal(hass_config(&OPTS, &info, 0, topic, sizeof(topic), &payload), 0);
    o = cJSON_Parse(payload);
    assert_null(str(cJSON_GetObjectItemCaseSensitive(o, "device"), "manufacturer"));
    cJSON_Delete(o);
    free(payload);
}

static void test_status_topic(void **state)
{
    char t[64], small[8];
    (void)state;

    assert_int_equal(hass_status_topic("homeassistant", t, sizeof(t)), 0);
    assert_string_equal(t, "homeassistant/status");
    assert_int_equal(hass_status_topic("homeassistant", small, sizeof(small)), -ENAMETOOLONG);
    assert_true(hass_is_online("online", 6));
    assert_false(hass_is_online("offline", 7));
    assert_false(hass_is_online("online\n", 7));
    assert_false(hass_is_online("onlin", 5));
    assert_false(hass_is_online("", 0));
}

/* --- the glue ------------------------------------------------------------------ */

#define MAX_PUB 64

struct pubs {
    char *topic[MAX_PUB];
    char *payload[MAX_PUB];
    size_t n;
    int fail_empty;               /* returned for "" payloads while nonzero */
    char dir[64];
};

static int fake_publish(void *ctx, const char *topic, const char *payload)
{
    struct pubs *p = ctx;

    if (!*payload && p->fail_empty)
        return p->fail_empty;
    assert_true(p->n < MAX_PUB);
    p->topic[p->n] = strdup(topic);
    p->payload[p->n] = strdup(payload);
    p->n++;
    return 0;
}

static void pubs_clear(struct pubs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->topic[i]);
        free(p->payload[i]);
    }
    p->n = 0;
}

static size_t count_empty(const struct pubs *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += p->payload[i][0] == '\0';
    return n;
}

static bool published(const struct pubs *p, const char *topic, bool empty)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->topic[i], topic) == 0 && (p->payload[i][0] == '\0') == empty)
            return true;
    return false;
}

/* Lines in the state file; -1 when there is none. */
static int state_lines(const struct pubs *p)
{
    char path[128], line[2048];
    int n = 0;
    snprintf(path, sizeof(path), "%s/" HASS_STATE_FILE, p->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    return n;
}

static int setup_dir(void **state)
{
    struct pubs *p = calloc(1, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/m2m-hass-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    *state = p;
    return 0;
}

static int teardown_dir(void **state)
{
    struct pubs *p = *state;
    char path[128];
    pubs_clear(p);
    snprintf(path, sizeof(path), "%s/" HASS_STATE_FILE, p->dir);
    unlink(path);
    rmdir(p->dir);
    free(p);
    return 0;
}

static struct hass *new_hass(struct pubs *p, const char *notify_to, bool discovery)
{
    struct hass_opts o = OPTS;
    o.notify_to = notify_to;
    struct hass *h = hass_new(&o, discovery, p->dir, fake_publish, p);
    assert_non_null(h);
    return h;
}

static void test_sync_lifecycle(void **state)
{
    struct pubs *p = *state;
    struct hass *h;

    /* Nothing before the IMEI is known. */
    h = new_hass(p, TO, true);
    assert_int_equal(hass_sync(h, NULL), 0);
    assert_int_equal(p->n, 0);
    assert_int_equal(state_lines(p), -1);

    /* Announce: every entity, nothing removed; the file lists them. */
    assert_int_equal(hass_sync(h, &INFO), 0);
    assert_int_equal(p->n, N_WANTS);
    assert_int_equal(count_empty(p), 0);
    for (size_t i = 0; i < N_WANTS; i++)
        assert_true(published(p, wants[i].topic, false));
    assert_int_equal(state_lines(p), (int)N_WANTS);

    /* A reconnect: retained already, nothing published. */
    pubs_clear(p);
    assert_int_equal(hass_sync(h, &INFO), 0);
    assert_int_equal(p->n, 0);

    /* HA restarted: the same set once more, still no removal. */
    assert_int_equal(hass_reannounce(h, &INFO), 0);
    assert_int_equal(p->n, N_WANTS);
    assert_int_equal(count_empty(p), 0);
    hass_free(h);

    /* Restart without notify_to: the notify entity is removed. */
    pubs_clear(p);
    h = new_hass(p, NULL, true);
    assert_int_equal(hass_sync(h, &INFO), 0);
    assert_int_equal(p->n, N_WANTS);
    assert_int_equal(count_empty(p), 1);
    assert_true(published(p, wants[NOTIFY].topic, true));
    assert_int_equal(state_lines(p), (int)N_WANTS - 1);
    hass_free(h);

    /* Restart with discovery off: everything announced is emptied, once. */
    pubs_clear(p);
    h = new_hass(p, TO, false);
    assert_int_equal(hass_sync(h, NULL), 0);
    assert_int_equal(p->n, N_WANTS - 1);
    assert_int_equal(count_empty(p), N_WANTS - 1);
    for (size_t i = 0; i < N_WANTS; i++)
        assert_true(published(p, wants[i].topic, true) == (i != NOTIFY));
    assert_int_equal(state_lines(p), -1);
    pubs_clear(p);
    assert_int_equal(hass_sync(h, &INFO), 0);
    assert_int_equal(p->n, 0);
    hass_free(h);
}

/* Another modem on the same base topic: the old device's entities go. */
static void test_sync_new_imei(void **state)
{
    struct pubs *p = *state;
    struct modem_info other = INFO;
    struct hass *h = new_hass(p, TO, true);

    assert_int_equal(hass_sync(h, &INFO), 0);
    pubs_clear(p);
    snprintf(other.imei, sizeof(other.imei), "869999999999999");
    assert_int_equal(hass_sync(h, &other), 0);
    assert_int_equal(p->n, 2 * N_WANTS);
    assert_int_equal(count_empty(p), N_WANTS);
    for (size_t i = 0; i < N_WANTS; i++)
        assert_true(published(p, wants[i].topic, true));
    assert_int_equal(state_lines(p), (int)N_WANTS);
    hass_free(h);
}

/* A removal that could not be published stays remembered. */
static void test_sync_failed_removal(void **state)
{
    struct pubs *p = *state;
    struct hass *h = new_hass(p, TO, true);

    assert_int_equal(hass_sync(h, &INFO), 0);
    hass_free(h);
    pubs_clear(p);

    h = new_hass(p, TO, false);
    p->fail_empty = -ENOTCONN;
    assert_int_equal(hass_sync(h, NULL), -ENOTCONN);
    assert_int_equal(state_lines(p), (int)N_WANTS);
    p->fail_empty = 0;
    assert_int_equal(hass_sync(h, NULL), 0);
    assert_int_equal(count_empty(p), N_WANTS);
    assert_int_equal(state_lines(p), -1);
    hass_free(h);
}

/* A state_dir that cannot be written: nothing is announced that could not
 * be remembered. */
static void test_sync_unwritable_state(void **state)
{
    struct pubs *p = *state;
    struct hass_opts o = OPTS;
    struct hass *h = hass_new(&o, true, "/nonexistent-m2m-dir", fake_publish, p);

    assert_non_null(h);
    assert_true(hass_sync(h, &INFO) < 0);
    assert_int_equal(p->n, 0);
    hass_free(h);
    assert_null(hass_new(&o, true, NULL, fake_publish, p));
    assert_null(hass_new(&o, true, p->dir, NULL, p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_config),
        cmocka_unit_test(test_sensor_classes),
        cmocka_unit_test(test_without_notify_to),
        cmocka_unit_test(test_without_remote),
        cmocka_unit_test(test_enum_values),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_status_topic),
        cmocka_unit_test_setup_teardown(test_sync_lifecycle, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sync_new_imei, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sync_failed_removal, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_sync_unwritable_state, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
