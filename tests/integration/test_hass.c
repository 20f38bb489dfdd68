/* Integration: Home Assistant MQTT discovery from a simulated modem, end
 * to end (mqtt/hass.h): the whole set of retained config messages, each
 * checked against what HA requires of its component and against the
 * bridge's real topics; re-announced on HA's "online"; removed when the
 * option is turned off. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "modem/pdu.h"

#define PREFIX "hatest"
#define NOTIFY_TO "+4917012345678"
#define HA_CONFIG \
    "\"mqtt\":{\"homeassistant\":{\"prefix\":\"" PREFIX "\",\"notify_to\":\"" NOTIFY_TO "\"}}"

/* Every entity the bridge announces, by component and object id (without
 * a remote broker: no "remote_connected"); any_state: available without a
 * ready modem. */
static const struct {
    const char *component, *key;
    bool any_state;
} expected[] = {
    { "sensor", "signal_dbm" },       { "sensor", "signal_percent" },
    { "sensor", "operator" },         { "sensor", "registration" },
    { "sensor", "access" },           { "sensor", "modem_state", true },
    { "sensor", "remote" },           { "sensor", "call_state" },
    { "event", "sms_received" },      { "event", "call_ring" },
    { "event", "sms_report" },        { "button", "modem_reset", true },
    { "sensor", "sms_storage_used" }, { "sensor", "sms_storage_total" },
    { "sensor", "supply_voltage" },   { "notify", "sms" },
    { "text", "sms_to", true },
    { "text", "sms_text", true },     { "button", "sms_send" },
    { "text", "call_to", true },      { "button", "call_dial" },
    { "button", "call_answer" },      { "button", "call_hangup" },
    { "event", "call_dtmf" },
    { "sensor", "cell_id" },          { "sensor", "cell_lac" },
    { "sensor", "audio_state" },
};
#define N_EXPECTED (sizeof(expected) / sizeof(expected[0]))

static struct h_mqtt g_ha;           /* subscribed to PREFIX/#: HA's view */

static int teardown(void **state)
{
    h_mqtt_disconnect(&g_ha);
    memset(&g_ha, 0, sizeof(g_ha));
    return h_env_teardown(state);
}

static void topic_of(const char *imei, size_t i, char *out, size_t size)
{
    snprintf(out, size, PREFIX "/%s/modem2mqtt_%s/%s/config", expected[i].component, imei,
             expected[i].key);
}

/* The IMEI the bridge published on B/info (retained). */
static void get_imei(struct h_env *e, char *imei, size_t size)
{
    cJSON *info = h_mqtt_wait_json(&e->mqtt, e->t_info, H_TIMEOUT_MS);
    snprintf(imei, size, "%s", h_json_str(info, "imei"));
    cJSON_Delete(info);
}

/* The retained B/status, as HA gets it when it subscribes. */
static cJSON *retained_status(struct h_env *e)
{
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "ha-status", true);
    h_mqtt_subscribe(&late, e->t_status);
    struct h_msg *m = h_mqtt_take(&late, e->t_status, h_ms(H_TIMEOUT_MS));
    h_mqtt_disconnect(&late);
    if (!m)
        h_fail("no retained message on %s", e->t_status);
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    h_msg_free(m);
    if (!j)
        h_fail("%s is not JSON", e->t_status);
    return j;
}

static void ha_connect(struct h_env *e)
{
    h_mqtt_connect(&g_ha, e->broker.uri, "ha-test", true);
    h_mqtt_subscribe(&g_ha, PREFIX "/#");
}

/* The first "value_json.a.b" in a template -> resolves a.b in payload;
 * fails when missing. */
static const cJSON *check_template_path(const char *topic, const char *tmpl,
                                        const cJSON *payload)
{
    char path[128];
    const char *at = strstr(tmpl, "value_json.");
    if (!at || sscanf(at, "value_json.%127[a-z_.]", path) != 1)
        h_fail("%s: unexpected value_template '%s'", topic, tmpl);
    const cJSON *v = payload;
    for (char *save = NULL, *k = strtok_r(path, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        v = cJSON_GetObjectItemCaseSensitive(v, k);
        if (!v)
            h_fail("%s: value_template '%s' names '%s', missing from the state payload", topic,
                   tmpl, k);
    }
    return v;
}

/* HA's availability list: B/availability, and B/status "ready" unless the
 * entity works without a ready modem; all of them. */
static void check_availability(struct h_env *e, const char *topic, const cJSON *c,
                               bool any_state)
{
    const cJSON *list = h_json_arr(c, "availability");
    if (cJSON_GetArraySize(list) != (any_state ? 1 : 2))
        h_fail("%s: %d availability topics", topic, cJSON_GetArraySize(list));
    h_json_str_eq(cJSON_GetArrayItem(list, 0), "topic", e->t_avail);
    if (any_state)
        return;
    h_json_str_eq(cJSON_GetArrayItem(list, 1), "topic", e->t_status);
    h_json_str_eq(cJSON_GetArrayItem(list, 1), "value_template",
                  "{{ 'online' if value_json.state == 'ready' else 'offline' }}");
    h_json_str_eq(c, "availability_mode", "all");
}

/* What HA's MQTT discovery requires of every component, and that each
 * topic is one of the bridge's. status: the retained B/status, to resolve
 * the sensors' templates against. */
static void check_config(struct h_env *e, const char *topic, const cJSON *c, const char *imei,
                         const char *component, bool any_state, const cJSON *status)
{
    char want[160];

    h_json_str(c, "name");
    snprintf(want, sizeof want, "modem2mqtt_%s_", imei);
    if (strncmp(h_json_str(c, "unique_id"), want, strlen(want)) != 0)
        h_fail("%s: unique_id '%s' does not start with %s", topic, h_json_str(c, "unique_id"),
               want);
    const cJSON *dev = h_json_obj(c, "device");
    const cJSON *ids = h_json_arr(dev, "identifiers");
    snprintf(want, sizeof want, "modem2mqtt_%s", imei);
    if (cJSON_GetArraySize(ids) != 1 || !cJSON_IsString(cJSON_GetArrayItem(ids, 0)) ||
        strcmp(cJSON_GetArrayItem(ids, 0)->valuestring, want) != 0)
        h_fail("%s: device.identifiers is not [\"%s\"]", topic, want);
    h_json_str_eq(dev, "manufacturer", "SIMCOM INCORPORATED");
    h_json_str_eq(dev, "model", "A7670E");
    h_json_str_eq(dev, "sw_version", "A011B07A7670M7");
    h_json_str(dev, "name");
    check_availability(e, topic, c, any_state);

    if (strcmp(component, "sensor") == 0 || strcmp(component, "event") == 0 ||
        strcmp(component, "text") == 0) {
        const char *st = h_json_str(c, "state_topic");
        if (strncmp(st, e->base, strlen(e->base)) != 0 || st[strlen(e->base)] != '/')
            h_fail("%s: state_topic '%s' is not under %s/", topic, st, e->base);
    }
    if (cJSON_GetObjectItemCaseSensitive(c, "state_topic") &&
        strcmp(h_json_str(c, "state_topic"), e->t_status) == 0) {
        const cJSON *v = check_template_path(topic, h_json_str(c, "value_template"), status);
        /* An enum's value now is one of its options (HA refuses others). */
        const cJSON *options = cJSON_GetObjectItemCaseSensitive(c, "options"), *o;
        bool found = false;
        cJSON_ArrayForEach(o, options)
            found = found || (cJSON_IsString(v) && strcmp(o->valuestring, v->valuestring) == 0);
        if (options && !found)
            h_fail("%s: B/status value not among the options", topic);
    }
    if (strcmp(component, "event") == 0) {
        const cJSON *types = h_json_arr(c, "event_types");
        if (cJSON_GetArraySize(types) < 1)
            h_fail("%s: event_types is empty", topic);
        if (!strstr(h_json_str(c, "value_template"), "event_type="))
            h_fail("%s: the value_template does not set event_type", topic);
    }
    if (strcmp(component, "button") == 0 || strcmp(component, "notify") == 0 ||
        strcmp(component, "text") == 0) {
        const char *ct = h_json_str(c, "command_topic");
        if (strncmp(ct, e->base, strlen(e->base)) != 0)
            h_fail("%s: command_topic '%s' is not under %s/", topic, ct, e->base);
    }
    if (strcmp(component, "button") == 0)
        h_json_str(c, "payload_press");
    if (strcmp(component, "notify") == 0)
        h_json_str(c, "command_template");
}

/* Takes one config message per expected topic from g_ha; returns them
 * (caller frees) in expected[] order. Then nothing else may be queued. */
static void take_all(struct h_env *e, const char *imei, cJSON **out)
{
    char t[256];
    cJSON *status = retained_status(e);

    for (size_t i = 0; i < N_EXPECTED; i++) {
        topic_of(imei, i, t, sizeof t);
        out[i] = h_mqtt_wait_json(&g_ha, t, H_TIMEOUT_MS);
        check_config(e, t, out[i], imei, expected[i].component, expected[i].any_state, status);
    }
    cJSON_Delete(status);
    pthread_mutex_lock(&g_ha.mu);
    const struct h_msg *extra = g_ha.head;
    char extra_topic[256] = "";
    if (extra)
        snprintf(extra_topic, sizeof extra_topic, "%s", extra->topic);
    pthread_mutex_unlock(&g_ha.mu);
    if (*extra_topic)
        h_fail("unexpected discovery message on %s", extra_topic);
}

static void free_all(cJSON **c)
{
    for (size_t i = 0; i < N_EXPECTED; i++)
        cJSON_Delete(c[i]);
}

static const cJSON *config_of(cJSON **c, const char *key)
{
    for (size_t i = 0; i < N_EXPECTED; i++)
        if (strcmp(expected[i].key, key) == 0)
            return c[i];
    h_fail("no entity %s", key);
}

/* The whole set, then each command entity used the way HA would. */
static void test_discovery_set(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = HA_CONFIG };
    char imei[32], l[1024], hex[900];
    cJSON *c[N_EXPECTED];

    h_env_up(e, &o);
    get_imei(e, imei, sizeof imei);
    ha_connect(e);
    take_all(e, imei, c);

    /* The notify entity: HA renders the command template with the
     * message (tojson: a JSON string, quotes escaped). */
    const char *tmpl = h_json_str(config_of(c, "sms"), "command_template");
    const char *slot = strstr(tmpl, "{{ value | tojson }}");
    if (!slot)
        h_fail("command_template '%s' has no {{ value | tojson }}", tmpl);
    cJSON *text = cJSON_CreateString("HA says \"hi\"");
    char *quoted = cJSON_PrintUnformatted(text);
    char *cmd = h_strdupf("%.*s%s%s", (int)(slot - tmpl), tmpl, quoted,
                          slot + strlen("{{ value | tojson }}"));
    h_mqtt_publish(&e->mqtt, h_json_str(config_of(c, "sms"), "command_topic"), cmd, 1, false);
    h_sim_wait_line(&e->sim, "sent ", l, sizeof l, H_TIMEOUT_MS);
    struct pdu_msg msg;
    int mr;
    if (sscanf(l, "sent %d %899s", &mr, hex) != 2 || pdu_decode(hex, strlen(hex), 0, &msg) != 0)
        h_fail("unexpected simulator line '%s'", l);
    assert_string_equal(msg.addr, NOTIFY_TO);
    assert_string_equal((const char *)msg.text, "HA says \"hi\"");
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    free(cmd);
    free(quoted);
    cJSON_Delete(text);

    /* The button: its payload on its command topic is a routed command
     * (whatever this release answers, it answers). */
    const cJSON *button = config_of(c, "modem_reset");
    char *result_topic = h_strdupf("%s/result", h_json_str(button, "command_topic"));
    h_mqtt_publish(&e->mqtt, h_json_str(button, "command_topic"),
                   h_json_str(button, "payload_press"), 1, false);
    r = h_mqtt_wait_json(&e->mqtt, result_topic, 30000);
    h_json_bool(r, "ok");
    cJSON_Delete(r);
    free(result_topic);

    /* The SMS event's state topic carries what its template reads. */
    const char *sms_topic = h_json_str(config_of(c, "sms_received"), "state_topic");
    assert_string_equal(sms_topic, e->t_received);
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 hello HA", NULL, 0);
    r = h_mqtt_wait_json(&e->mqtt, sms_topic, H_TIMEOUT_MS);
    h_json_str_eq(r, "from", "+4917099999999");
    h_json_str_eq(r, "text", "hello HA");
    cJSON_Delete(r);

    free_all(c);
    H_PASS(e);
}

/* A press of a button, published as HA publishes it; returns its result
 * (the caller deletes it). */
static cJSON *press(struct h_env *e, cJSON **c, const char *key)
{
    const cJSON *button = config_of(c, key);
    char *result_topic = h_strdupf("%s/result", h_json_str(button, "command_topic"));
    h_mqtt_publish(&e->mqtt, h_json_str(button, "command_topic"),
                   h_json_str(button, "payload_press"), 1, false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, result_topic, H_TIMEOUT_MS);
    free(result_topic);
    return r;
}

/* A text entity's value, published as HA publishes it (its command topic,
 * retained as its config says). */
static void type_in(struct h_env *e, cJSON **c, const char *key, const char *value)
{
    const cJSON *text = config_of(c, key);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(text, "retain")));
    h_mqtt_publish(&e->mqtt, h_json_str(text, "command_topic"), value, 1, true);
}

static void expect_sms(struct h_env *e, const char *to, const char *text)
{
    char l[1024], hex[900];
    struct pdu_msg msg;
    int mr;

    h_sim_wait_line(&e->sim, "sent ", l, sizeof l, H_TIMEOUT_MS);
    if (sscanf(l, "sent %d %899s", &mr, hex) != 2 || pdu_decode(hex, strlen(hex), 0, &msg) != 0)
        h_fail("unexpected simulator line '%s'", l);
    assert_string_equal(msg.addr, to);
    assert_string_equal((const char *)msg.text, text);
}

/* Sending an SMS and dialling from HA's UI: text fields, then a button;
 * the same checks as B/sms/send and B/call/dial (sms.allow_to here), the
 * same results; the fields survive a restart of the bridge (retained). */
static void test_text_and_buttons(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = HA_CONFIG ",\"sms\":{\"allow_to\":[\"+49*\"]}",
    };
    char imei[32];
    cJSON *c[N_EXPECTED], *r;

    h_env_up(e, &o);
    get_imei(e, imei, sizeof imei);
    ha_connect(e);
    take_all(e, imei, c);

    /* Nothing typed in yet: the press says which field. */
    r = press(e, c, "sms_send");
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "invalid_request");
    if (!strstr(h_json_str(h_json_obj(r, "error"), "message"), "/ha/sms/to"))
        h_fail("the error does not name the field's topic");
    cJSON_Delete(r);

    type_in(e, c, "sms_to", "+4917012345678");
    type_in(e, c, "sms_text", "Hi from \"HA\"\nline 2");
    r = press(e, c, "sms_send");
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", 1);
    cJSON_Delete(r);
    expect_sms(e, "+4917012345678", "Hi from \"HA\"\nline 2");

    /* sms.allow_to as for B/sms/send: refused, nothing on the line. */
    type_in(e, c, "sms_to", "+4420123456");
    r = press(e, c, "sms_send");
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "not_allowed");
    cJSON_Delete(r);
    /* A number that is no number: the strict parser's answer. */
    type_in(e, c, "sms_to", "+49 170;ATH");
    r = press(e, c, "sms_send");
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "invalid_number");
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 1);

    /* Dial, then the hang-up button. */
    type_in(e, c, "call_to", "+4917012345678");
    r = press(e, c, "call_dial");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "rx ATD+4917012345678;", NULL, 0, H_TIMEOUT_MS);
    r = press(e, c, "call_hangup");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "rx AT+CHUP", NULL, 0, H_TIMEOUT_MS);

    /* The bridge restarted: the values are still there (the broker's). */
    type_in(e, c, "sms_to", "+4917012345678");
    h_bridge_stop(&e->bridge);
    h_env_start_bridge(e);
    r = press(e, c, "sms_send");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    expect_sms(e, "+4917012345678", "Hi from \"HA\"\nline 2");

    free_all(c);
    H_PASS(e);
}

/* HA restarted: "online" on <prefix>/status announces everything again;
 * "offline" does not. */
static void test_reannounce_on_ha_online(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = HA_CONFIG };
    char imei[32];
    cJSON *c[N_EXPECTED];

    h_env_up(e, &o);
    get_imei(e, imei, sizeof imei);
    ha_connect(e);
    take_all(e, imei, c);
    free_all(c);

    h_mqtt_publish(&g_ha, PREFIX "/status", "offline", 1, false);
    h_mqtt_publish(&g_ha, PREFIX "/status", "online", 1, false);
    /* g_ha hears its own birth messages too. */
    h_mqtt_wait_payload(&g_ha, PREFIX "/status", "offline", H_TIMEOUT_MS);
    h_mqtt_wait_payload(&g_ha, PREFIX "/status", "online", H_TIMEOUT_MS);
    take_all(e, imei, c);
    free_all(c);
    /* The birth message is not a command: nothing was answered. */
    if (h_mqtt_pending(&g_ha, PREFIX "/status/result"))
        h_fail("the bridge answered HA's birth message");
    H_PASS(e);
}

/* Discovery turned off: a restart empties every config it announced, and
 * the broker keeps none of them. */
static void test_discovery_off_removes(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = HA_CONFIG };
    char imei[32], t[256], buf[64], path[400];
    cJSON *c[N_EXPECTED];
    struct stat sb;

    h_env_up(e, &o);
    get_imei(e, imei, sizeof imei);
    ha_connect(e);
    take_all(e, imei, c);
    free_all(c);
    snprintf(path, sizeof path, "%s/hass-discovery", e->bridge.state_dir);
    if (stat(path, &sb) != 0)
        h_fail("%s: the announced topics are not recorded", path);

    h_bridge_stop(&e->bridge);
    char *json = h_strdupf("{\"state_dir\":\"%s\",\"mqtt\":{\"homeassistant\":"
                           "{\"discovery\":false,\"prefix\":\"" PREFIX "\"}}}\n",
                           e->bridge.state_dir);
    FILE *f = fopen(e->bridge.config_path, "w");
    if (!f || fputs(json, f) < 0 || fclose(f) != 0)
        h_fail("rewriting %s", e->bridge.config_path);
    free(json);
    h_env_start_bridge(e);

    for (size_t i = 0; i < N_EXPECTED; i++) {
        topic_of(imei, i, t, sizeof t);
        size_t n = h_mqtt_wait(&g_ha, t, buf, sizeof buf, H_TIMEOUT_MS);
        if (n != 0)
            h_fail("%s: expected an empty payload (removal), got '%s'", t, buf);
    }
    if (stat(path, &sb) == 0)
        h_fail("%s still exists after every topic was removed", path);

    /* A fresh subscriber finds no config left: the retained marker on a
     * second filter arrives after every retained message of the first. */
    h_mqtt_publish(&e->mqtt, "hatest-marker", "m", 1, true);
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "ha-late", true);
    h_mqtt_subscribe(&late, PREFIX "/#");
    h_mqtt_subscribe(&late, "hatest-marker");
    h_mqtt_wait_payload(&late, "hatest-marker", "m", H_TIMEOUT_MS);
    for (size_t i = 0; i < N_EXPECTED; i++) {
        topic_of(imei, i, t, sizeof t);
        if (h_mqtt_pending(&late, t)) {
            h_mqtt_disconnect(&late);
            h_fail("%s is still retained on the broker", t);
        }
    }
    h_mqtt_disconnect(&late);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_discovery_set),
        T(test_text_and_buttons),
        T(test_reannounce_on_ha_online),
        T(test_discovery_off_removes),
    };
    return cmocka_run_group_tests_name("integration_hass", tests, NULL, NULL);
}
