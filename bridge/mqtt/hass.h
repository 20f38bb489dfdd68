/* Home Assistant MQTT discovery: one HA device per modem (identified by its
 * IMEI), with sensors, events, buttons, text fields and a notify entity
 * over the bridge's own topics, so HA needs no YAML. An entity that needs
 * the modem is available while B/availability is "online" and B/status
 * "state" is "ready"; the others (modem state, restart, the text fields)
 * while B/availability is "online".
 *
 * Config topics: <prefix>/<component>/modem2mqtt_<imei>/<key>/config,
 * retained, QoS 1. The payloads point HA at the existing topics
 * (B/status, B/call/state, B/sms/received, ...): the bridge publishes
 * nothing for HA besides the config messages (the text fields' values on
 * B/ha/... are HA's, retained).
 *
 * Two halves:
 *  - pure builders (hass_config, hass_status_topic, hass_is_online): no
 *    I/O, the unit tests check every payload;
 *  - struct hass, the glue: it publishes through a callback and remembers
 *    what it announced in <state_dir>/hass-discovery (one topic a line), so
 *    that turning discovery off, dropping the notify entity or swapping the
 *    modem removes exactly the entities that were announced, even across
 *    restarts and a changed IMEI. */
#ifndef M2M_MQTT_HASS_H
#define M2M_MQTT_HASS_H

#include <stdbool.h>
#include <stddef.h>

#include "modem/modem.h"

#define HASS_STATE_FILE "hass-discovery"
#define HASS_MAX_ENTITIES 32

struct hass_opts {
    const char *prefix;       /* discovery prefix, e.g. "homeassistant" */
    const char *base;         /* the bridge's base topic B */
    const char *notify_to;    /* E.164 number for the notify entity; NULL: none */
    const char *sw_version;   /* the bridge's version (device "origin") */
    const char *support_url;  /* the project's home ("origin"); NULL: none */
    bool remote;              /* the remote broker is configured: its entities */
};

/* Number of entries in the entity table (some may be disabled by opts). */
size_t hass_entity_count(void);

/* Entity i (0 <= i < hass_entity_count()) for this modem: its config topic
 * into topic (size bytes) and its JSON payload (*payload, caller frees).
 * 0; -ENOENT when the entity is off under opts (notify without notify_to);
 * -EINVAL without an IMEI (the device's identity) or i out of range;
 * -ENAMETOOLONG; -ENOMEM. Strings from the modem (model, revision) are
 * JSON-escaped by cJSON. */
int hass_config(const struct hass_opts *opts, const struct modem_info *info, size_t i,
                char *topic, size_t size, char **payload);

/* "<prefix>/status": where HA publishes "online" when it (re)starts. */
int hass_status_topic(const char *prefix, char *topic, size_t size);

/* The birth payload "online" (payload not NUL-terminated). */
bool hass_is_online(const void *payload, size_t len);

/* --- the glue ---------------------------------------------------------------- */

/* Publishes payload (NUL-terminated; "" removes a config) retained, QoS 1.
 * 0 when queued, else -errno. */
typedef int (*hass_publish_fn)(void *ctx, const char *topic, const char *payload);

/* opts' strings and state_dir are copied. discovery false: hass_sync
 * removes what an earlier run announced, and announces nothing. NULL on a
 * bad argument or out of memory. */
struct hass *hass_new(const struct hass_opts *opts, bool discovery, const char *state_dir,
                      hass_publish_fn publish, void *ctx);
void hass_free(struct hass *h);

/* Brings the broker in line: with discovery on and info known (an IMEI),
 * publishes every config and empties the topics announced before but no
 * longer wanted; with discovery off, empties everything announced before.
 * Call it on every broker connect and when the modem's info becomes known.
 * Once this process announced a modem (every publish queued), further
 * calls for the same IMEI publish nothing: the configs are retained, and
 * HA's "online" (hass_reannounce) covers an HA restart and a broker that
 * lost them (HA sends it after every reconnect to the broker). Besides,
 * a burst of publishes at every reconnect is what a flapping broker
 * connection needs least. The state file lists the union of the old and
 * the new set before anything is published, so a crash in between never
 * forgets a topic. 0, or -errno (a publish or the state file failed; the
 * next call tries again). */
int hass_sync(struct hass *h, const struct modem_info *info);

/* hass_sync, publishing every config again (HA said "online"). */
int hass_reannounce(struct hass *h, const struct modem_info *info);

#endif
