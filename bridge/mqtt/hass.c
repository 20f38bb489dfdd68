/* Home Assistant MQTT discovery. See hass.h.
 *
 * Templates (Jinja, rendered by HA):
 *  - B/status carries nulls while the modem is not ready; "{{ None }}"
 *    renders "None", which HA's MQTT sensor takes as "unknown" rather than
 *    a bogus 0 dBm.
 *  - An MQTT event entity wants a JSON object with "event_type"; the rest
 *    of the object becomes the event's attributes. dict(value_json,
 *    event_type=...) keeps every field of the bridge's event (from, text,
 *    time, parts, ...) without quoting anything by hand.
 *  - The notify entity's message goes through tojson, so quotes,
 *    backslashes and newlines in it stay one JSON string. */
#include "mqtt/hass.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/log.h"

#define TOPIC_MAX 1280        /* prefix (<= 1024) + component, node and key */
#define NODE_PREFIX "modem2mqtt_"

struct entity {
    const char *component;    /* sensor | binary_sensor | event | button | notify | text */
    const char *key;          /* object id: unique per device */
    const char *name;
    const char *state;        /* state topic after "B/", or NULL */
    const char *value_template;
    const char *command;      /* command topic after "B/", or NULL */
    const char *payload_press;
    const char *device_class;
    const char *unit;
    const char *state_class;
    const char *category;     /* entity_category, or NULL */
    const char *icon;
    const char *event_types[17]; /* an event entity's types, NULL-terminated */
    const char *options[8];   /* an enum sensor's values, NULL-terminated */
    bool notify;              /* needs opts->notify_to */
    bool remote;              /* needs opts->remote (the module's MQTT client) */
    bool retain;              /* a text entity's value stays on the broker */
    /* Works without a ready modem: available whenever the bridge is. The
     * others are unavailable while B/status "state" is not "ready". */
    bool any_state;
};

/* HA reserves the state "unavailable" for an entity it cannot reach: the
 * modem state shows the bridge's "unavailable" (no port: unplugged, or
 * reopened after it stopped answering) as "disconnected". */
#define MODEM_STATE_TEMPLATE \
    "{{ 'disconnected' if value_json.state == 'unavailable' else value_json.state }}"

/* The value sets are the bridge's own: B/status "state", "registration"
 * (modem/status.c), "remote" (modem/cmqtt_text.c), B/call/state "state"
 * (modem/call.c), B/audio/state "state" (modem/audio.c). An enum sensor refuses any other value. */
static const struct entity entities[] = {
    { .component = "sensor", .key = "signal_dbm", .name = "Signal", .state = "status",
      .value_template = "{{ value_json.signal.dbm }}", .device_class = "signal_strength",
      .unit = "dBm", .state_class = "measurement", .category = "diagnostic" },
    { .component = "sensor", .key = "signal_percent", .name = "Signal quality",
      .state = "status", .value_template = "{{ value_json.signal.percent }}", .unit = "%",
      .state_class = "measurement", .category = "diagnostic", .icon = "mdi:signal" },
    { .component = "sensor", .key = "operator", .name = "Operator", .state = "status",
      .value_template = "{{ value_json.operator }}", .icon = "mdi:radio-tower" },
    { .component = "sensor", .key = "registration", .name = "Registration", .state = "status",
      .value_template = "{{ value_json.registration }}", .icon = "mdi:antenna",
      .device_class = "enum",
      .options = { "unregistered", "home", "searching", "denied", "unknown", "roaming" } },
    { .component = "sensor", .key = "access", .name = "Access technology", .state = "status",
      .value_template = "{{ value_json.access }}", .icon = "mdi:access-point-network",
      .category = "diagnostic" },
    { .component = "sensor", .key = "modem_state", .name = "Modem state", .state = "status",
      .value_template = MODEM_STATE_TEMPLATE, .icon = "mdi:sim", .category = "diagnostic",
      .device_class = "enum", .any_state = true,
      .options = { "disconnected", "starting", "ready", "sim_locked", "no_sim", "low_power",
                   "resetting" } },
    { .component = "sensor", .key = "remote", .name = "Remote broker", .state = "status",
      .value_template = "{{ value_json.remote }}", .icon = "mdi:cloud-outline",
      .category = "diagnostic", .device_class = "enum",
      .options = { "disabled", "connecting", "connected", "disconnected" } },
    { .component = "sensor", .key = "call_state", .name = "Call", .state = "call/state",
      .value_template = "{{ value_json.state }}", .icon = "mdi:phone", .device_class = "enum",
      .options = { "idle", "dialing", "alerting", "ringing", "active" } },
    { .component = "event", .key = "sms_received", .name = "SMS received",
      .state = "sms/received", .event_types = { "received" }, .icon = "mdi:message-text",
      .value_template = "{{ dict(value_json, event_type='received') | tojson }}" },
    { .component = "event", .key = "call_ring", .name = "Incoming call", .state = "call/ring",
      .event_types = { "ring" }, .icon = "mdi:phone-incoming",
      .value_template = "{{ dict(value_json, event_type='ring') | tojson }}" },
    /* One event type per B/sms/report "status". */
    { .component = "event", .key = "sms_report", .name = "SMS report", .state = "sms/report",
      .event_types = { "delivered", "pending", "failed" }, .icon = "mdi:message-check",
      .value_template = "{{ dict(value_json, event_type=value_json.status) | tojson }}" },
    /* B/modem/power runs in any state: a reset is what may bring back a
     * module that is not ready. */
    { .component = "button", .key = "modem_reset", .name = "Restart modem",
      .command = "modem/power", .payload_press = "{\"mode\":\"reset\"}",
      .device_class = "restart", .category = "config", .any_state = true },
    { .component = "sensor", .key = "sms_storage_used", .name = "SMS storage used",
      .state = "status", .value_template = "{{ value_json.storage.used }}",
      .state_class = "measurement", .category = "diagnostic", .icon = "mdi:sim" },
    { .component = "sensor", .key = "sms_storage_total", .name = "SMS storage capacity",
      .state = "status", .value_template = "{{ value_json.storage.total }}",
      .category = "diagnostic", .icon = "mdi:sim" },
    { .component = "sensor", .key = "supply_voltage", .name = "Supply voltage",
      .state = "status", .value_template = "{{ value_json.voltage_mv }}",
      .device_class = "voltage", .unit = "mV", .state_class = "measurement",
      .category = "diagnostic" },
    { .component = "notify", .key = "sms", .name = "SMS", .command = "sms/send",
      .icon = "mdi:message-arrow-right", .notify = true },
    { .component = "binary_sensor", .key = "remote_connected", .name = "Remote broker connected",
      .state = "status", .device_class = "connectivity", .category = "diagnostic",
      .value_template = "{{ 'ON' if value_json.remote == 'connected' else 'OFF' }}",
      .remote = true },
    /* Text fields and a button per action: HA's text entity publishes its
     * value alone, so the bridge keeps the last value of each (retained:
     * the broker keeps them too) and a press sends with them (B/ha/...,
     * bridge/cmd_ha.c). */
    { .component = "text", .key = "sms_to", .name = "SMS number", .state = "ha/sms/to",
      .command = "ha/sms/to", .retain = true, .icon = "mdi:dialpad", .any_state = true },
    { .component = "text", .key = "sms_text", .name = "SMS text", .state = "ha/sms/text",
      .command = "ha/sms/text", .retain = true, .icon = "mdi:message-text-outline",
      .any_state = true },
    { .component = "button", .key = "sms_send", .name = "Send SMS", .command = "ha/sms/send",
      .payload_press = "{}", .icon = "mdi:message-arrow-right" },
    { .component = "text", .key = "call_to", .name = "Call number", .state = "ha/call/to",
      .command = "ha/call/to", .retain = true, .icon = "mdi:dialpad", .any_state = true },
    { .component = "button", .key = "call_dial", .name = "Call", .command = "ha/call/dial",
      .payload_press = "{}", .icon = "mdi:phone-outgoing" },
    { .component = "button", .key = "call_answer", .name = "Answer call",
      .command = "call/answer", .payload_press = "{}", .icon = "mdi:phone-in-talk" },
    { .component = "button", .key = "call_hangup", .name = "Hang up", .command = "call/hangup",
      .payload_press = "{}", .icon = "mdi:phone-hangup" },
    /* One event type per key the far end can press: an automation that
     * waits for an acknowledgement triggers on the one it asked for. */
    { .component = "event", .key = "call_dtmf", .name = "DTMF received",
      .state = "call/dtmf/received", .icon = "mdi:dialpad",
      .event_types = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C",
                       "D" },
      .value_template = "{{ dict(value_json, event_type=value_json.digit) | tojson }}" },
    /* The serving cell: "cell" is null while the module names none. */
    { .component = "sensor", .key = "cell_id", .name = "Cell", .state = "status",
      .value_template = "{{ value_json.cell.ci if value_json.cell else none }}",
      .icon = "mdi:radio-tower", .category = "diagnostic" },
    { .component = "sensor", .key = "cell_lac", .name = "Location area", .state = "status",
      .value_template = "{{ value_json.cell.lac if value_json.cell else none }}",
      .icon = "mdi:map-marker-radius", .category = "diagnostic" },
    { .component = "sensor", .key = "audio_state", .name = "Audio", .state = "audio/state",
      .value_template = "{{ value_json.state }}", .icon = "mdi:volume-high",
      .device_class = "enum", .options = { "idle", "playing", "recording" } },
};
#define N_ENTITIES (sizeof(entities) / sizeof(entities[0]))
_Static_assert(N_ENTITIES <= HASS_MAX_ENTITIES, "HASS_MAX_ENTITIES too small");

size_t hass_entity_count(void)
{
    return N_ENTITIES;
}

int hass_status_topic(const char *prefix, char *topic, size_t size)
{
    int n = snprintf(topic, size, "%s/status", prefix);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

bool hass_is_online(const void *payload, size_t len)
{
    return len == 6 && memcmp(payload, "online", 6) == 0;
}

/* HA's node_id and object_id allow [a-zA-Z0-9_-]; an IMEI is digits, but
 * the modem's answer is not trusted to be. */
static int node_id(const struct modem_info *info, char *buf, size_t size)
{
    size_t n = strnlen(info->imei, sizeof(info->imei));
    int w;

    if (n == 0)
        return -EINVAL;
    w = snprintf(buf, size, NODE_PREFIX "%.*s", (int)n, info->imei);
    if (w < 0 || (size_t)w >= size)
        return -ENAMETOOLONG;
    for (char *p = buf + strlen(NODE_PREFIX); *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == '-'))
            *p = '_';
    return 0;
}

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return !v || cJSON_AddStringToObject(o, key, v);
}

static bool add_topic(cJSON *o, const char *key, const char *base, const char *suffix)
{
    char t[TOPIC_MAX];
    int n;

    if (!suffix)
        return true;
    n = snprintf(t, sizeof(t), "%s/%s", base, suffix);
    return n >= 0 && (size_t)n < sizeof(t) && cJSON_AddStringToObject(o, key, t);
}

static cJSON *device(const struct hass_opts *opts, const struct modem_info *info,
                     const char *node)
{
    cJSON *d = cJSON_CreateObject(), *ids;
    char name[160];
    const char *model = info->model[0] ? info->model : "Modem";

    if (!d)
        return NULL;
    snprintf(name, sizeof(name), "%.64s %.80s", model, opts->base);
    ids = cJSON_AddArrayToObject(d, "identifiers");
    if (!ids || !cJSON_AddItemToArray(ids, cJSON_CreateString(node)) ||
        !add_str(d, "name", name) ||
        !add_str(d, "manufacturer", info->manufacturer[0] ? info->manufacturer : NULL) ||
        !add_str(d, "model", info->model[0] ? info->model : NULL) ||
        !add_str(d, "sw_version", info->revision[0] ? info->revision : NULL) ||
        !add_str(d, "serial_number", info->imei)) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* HA's availability list: the bridge's B/availability, and for an entity
 * that needs the modem B/status "state" too (mode "all": available only
 * while both say so). */
#define READY_TEMPLATE "{{ 'online' if value_json.state == 'ready' else 'offline' }}"

static bool add_availability(cJSON *o, const char *base, bool any_state)
{
    cJSON *list = cJSON_AddArrayToObject(o, "availability"), *bridge, *modem;

    if (!list || !(bridge = cJSON_CreateObject()) || !cJSON_AddItemToArray(list, bridge) ||
        !add_topic(bridge, "topic", base, "availability"))
        return false;
    if (any_state)
        return true;
    return (modem = cJSON_CreateObject()) && cJSON_AddItemToArray(list, modem) &&
           add_topic(modem, "topic", base, "status") &&
           add_str(modem, "value_template", READY_TEMPLATE) &&
           add_str(o, "availability_mode", "all");
}

/* A NULL-terminated list as a JSON array of strings under key (none: no
 * key). */
static bool add_list(cJSON *o, const char *key, const char *const *v)
{
    cJSON *a;

    if (!v[0])
        return true;
    a = cJSON_AddArrayToObject(o, key);
    for (size_t i = 0; a && v[i]; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateString(v[i])))
            return false;
    return a != NULL;
}

static bool add_origin(cJSON *o, const struct hass_opts *opts)
{
    cJSON *origin = cJSON_AddObjectToObject(o, "origin");

    return origin && add_str(origin, "name", "modem2mqtt") &&
           add_str(origin, "sw_version", opts->sw_version) &&
           add_str(origin, "support_url", opts->support_url);
}

/* {"to":"+49...","text":{{ value | tojson }}}: notify_to was validated as
 * E.164 (config.c), so it needs no escaping inside the template. */
static bool add_notify_template(cJSON *o, const char *to)
{
    char t[128];
    int n = snprintf(t, sizeof(t), "{\"to\":\"%s\",\"text\":{{ value | tojson }}}", to);

    return n >= 0 && (size_t)n < sizeof(t) && cJSON_AddStringToObject(o, "command_template", t);
}

int hass_config(const struct hass_opts *opts, const struct modem_info *info, size_t i,
                char *topic, size_t size, char **payload)
{
    const struct entity *e;
    char node[sizeof(NODE_PREFIX) + sizeof(info->imei)], uid[160];
    cJSON *o, *d;
    int n, r;

    *payload = NULL;
    if (i >= N_ENTITIES)
        return -EINVAL;
    e = &entities[i];
    if ((e->notify && !(opts->notify_to && *opts->notify_to)) || (e->remote && !opts->remote))
        return -ENOENT;
    r = node_id(info, node, sizeof(node));
    if (r < 0)
        return r;
    n = snprintf(topic, size, "%s/%s/%s/%s/config", opts->prefix, e->component, node, e->key);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    snprintf(uid, sizeof(uid), "%s_%s", node, e->key);

    o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    bool ok = add_str(o, "name", e->name) && add_str(o, "unique_id", uid) &&
              add_topic(o, "state_topic", opts->base, e->state) &&
              add_str(o, "value_template", e->value_template) &&
              add_topic(o, "command_topic", opts->base, e->command) &&
              add_str(o, "payload_press", e->payload_press) &&
              (!e->notify || add_notify_template(o, opts->notify_to)) &&
              (!e->retain || cJSON_AddTrueToObject(o, "retain")) &&
              add_availability(o, opts->base, e->any_state) &&
              add_str(o, "device_class", e->device_class) &&
              add_list(o, "options", e->options) &&
              add_str(o, "unit_of_measurement", e->unit) &&
              add_str(o, "state_class", e->state_class) &&
              add_str(o, "entity_category", e->category) && add_str(o, "icon", e->icon) &&
              /* Commands and SMS events are QoS 1 on the bridge's side too. */
              cJSON_AddNumberToObject(o, "qos", 1) &&
              add_list(o, "event_types", e->event_types);
    if (ok) {
        d = device(opts, info, node);
        ok = d && cJSON_AddItemToObject(o, "device", d);
        if (d && !ok)
            cJSON_Delete(d);
    }
    if (ok && add_origin(o, opts))
        *payload = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *payload ? 0 : -ENOMEM;
}

/* --- the glue ---------------------------------------------------------------- */

#define STATE_MAX (4 * HASS_MAX_ENTITIES)   /* topics remembered across runs */

struct topic_set {
    char *t[STATE_MAX];
    size_t n;
};

struct hass {
    struct hass_opts opts;
    char *prefix, *base, *notify_to, *sw_version, *support_url;
    bool discovery;
    char *state_path;
    bool announced;               /* this process announced announced_imei */
    char announced_imei[sizeof(((struct modem_info *)0)->imei)];
    hass_publish_fn publish;
    void *ctx;
};

static void set_clear(struct topic_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->t[i]);
    s->n = 0;
}

static bool set_has(const struct topic_set *s, const char *t)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i], t) == 0)
            return true;
    return false;
}

/* Adds a copy; a duplicate is not added. -ENOSPC past STATE_MAX. */
static int set_add(struct topic_set *s, const char *t)
{
    if (set_has(s, t))
        return 0;
    if (s->n == STATE_MAX)
        return -ENOSPC;
    if (!(s->t[s->n] = strdup(t)))
        return -ENOMEM;
    s->n++;
    return 0;
}

/* A missing file is an empty set. Lines that are not under our prefix's
 * discovery layout are still taken: the prefix may have changed since. */
static int state_load(const struct hass *h, struct topic_set *s)
{
    FILE *f = fopen(h->state_path, "r");
    char line[TOPIC_MAX + 2];
    int r = 0;

    s->n = 0;
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    while (r == 0 && fgets(line, sizeof(line), f)) {
        size_t n = strcspn(line, "\n");
        line[n] = '\0';
        if (n > 0)
            r = set_add(s, line);
    }
    fclose(f);
    if (r < 0)
        set_clear(s);
    return r;
}

/* Atomically: tmp, fsync, rename. An empty set removes the file. */
static int state_save(const struct hass *h, const struct topic_set *s)
{
    char tmp[PATH_MAX + 8];
    FILE *f;
    int r = 0;

    if (s->n == 0)
        return unlink(h->state_path) == 0 || errno == ENOENT ? 0 : -errno;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", h->state_path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    for (size_t i = 0; i < s->n; i++)
        if (fprintf(f, "%s\n", s->t[i]) < 0)
            r = -EIO;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        r = r ? r : -errno;
    if (fclose(f) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, h->state_path) != 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

struct hass *hass_new(const struct hass_opts *opts, bool discovery, const char *state_dir,
                      hass_publish_fn publish, void *ctx)
{
    struct hass *h;

    if (!opts || !opts->prefix || !opts->base || !state_dir || !publish)
        return NULL;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->prefix = strdup(opts->prefix);
    h->base = strdup(opts->base);
    h->notify_to = opts->notify_to ? strdup(opts->notify_to) : NULL;
    h->sw_version = strdup(opts->sw_version ? opts->sw_version : "");
    h->support_url = opts->support_url ? strdup(opts->support_url) : NULL;
    h->state_path = malloc(strlen(state_dir) + sizeof("/" HASS_STATE_FILE));
    if (!h->prefix || !h->base || (opts->notify_to && !h->notify_to) || !h->sw_version ||
        (opts->support_url && !h->support_url) || !h->state_path) {
        hass_free(h);
        return NULL;
    }
    sprintf(h->state_path, "%s/" HASS_STATE_FILE, state_dir);
    h->opts = (struct hass_opts){ h->prefix, h->base, h->notify_to, h->sw_version,
                                  h->support_url, opts->remote };
    h->discovery = discovery;
    h->publish = publish;
    h->ctx = ctx;
    return h;
}

void hass_free(struct hass *h)
{
    if (!h)
        return;
    free(h->prefix);
    free(h->base);
    free(h->notify_to);
    free(h->sw_version);
    free(h->support_url);
    free(h->state_path);
    free(h);
}

int hass_reannounce(struct hass *h, const struct modem_info *info)
{
    h->announced = false;
    return hass_sync(h, info);
}

int hass_sync(struct hass *h, const struct modem_info *info)
{
    struct topic_set old = { .n = 0 }, want = { .n = 0 }, keep = { .n = 0 };
    char *payloads[HASS_MAX_ENTITIES] = { NULL };
    char topic[TOPIC_MAX];
    int r, first = 0;

    if (h->discovery && !(info && info->imei[0]))
        return 0;   /* nothing to announce before the device's identity is known */
    if (h->discovery && h->announced && strcmp(h->announced_imei, info->imei) == 0)
        return 0;   /* retained on the broker already; HA's "online" re-announces */
    r = state_load(h, &old);
    if (r < 0) {
        log_warn("hass: %s: %s", h->state_path, strerror(-r));
        return r;
    }
    if (!h->discovery && old.n == 0)
        return 0;

    for (size_t i = 0; h->discovery && i < N_ENTITIES; i++) {
        r = hass_config(&h->opts, info, i, topic, sizeof(topic), &payloads[want.n]);
        if (r == -ENOENT) {
            r = 0;   /* off under these options */
            continue;
        }
        if (r == 0)
            r = set_add(&want, topic);
        if (r < 0) {
            free(payloads[want.n]);
            payloads[want.n] = NULL;
            log_warn("hass: entity %s: %s", entities[i].key, strerror(-r));
            goto out;
        }
    }

    /* Remember the union first: whatever happens below, a later run with
     * discovery off knows every topic that may be on the broker. */
    for (size_t i = 0; i < want.n && r == 0; i++)
        r = set_add(&keep, want.t[i]);
    for (size_t i = 0; i < old.n && r == 0; i++)
        r = set_add(&keep, old.t[i]);
    if (r == 0)
        r = state_save(h, &keep);
    if (r < 0) {
        log_warn("hass: cannot record the discovery topics in %s: %s", h->state_path,
                 strerror(-r));
        goto out;
    }

    /* Withdraw what is no longer wanted; what could not be withdrawn stays
     * in the file for the next call. */
    set_clear(&keep);
    for (size_t i = 0; i < old.n; i++) {
        if (set_has(&want, old.t[i]))
            continue;
        int p = h->publish(h->ctx, old.t[i], "");
        if (p < 0 && set_add(&keep, old.t[i]) == 0 && first == 0)
            first = p;
        else if (p == 0)
            log_info("hass: removed %s", old.t[i]);
    }
    for (size_t i = 0; i < want.n; i++) {
        int p = h->publish(h->ctx, want.t[i], payloads[i]);
        if (p < 0 && first == 0)
            first = p;
        r = set_add(&keep, want.t[i]);
        if (r < 0)
            goto out;
    }
    if (want.n)
        log_info("hass: announced %zu entities under %s", want.n, h->prefix);
    r = state_save(h, &keep);
    if (r == 0)
        r = first;
    if (r == 0 && h->discovery) {
        h->announced = true;
        snprintf(h->announced_imei, sizeof(h->announced_imei), "%s", info->imei);
    }

out:
    for (size_t i = 0; i < HASS_MAX_ENTITIES; i++)
        free(payloads[i]);
    set_clear(&old);
    set_clear(&want);
    set_clear(&keep);
    return r;
}
