/* An instance: one modem bridged to MQTT: its services, its MQTT session
 * (with its own will), its journal, its commands and its counters. The
 * process (bridge.h) runs one loop for all its instances. */
#ifndef M2M_INSTANCE_H
#define M2M_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/stats.h"

struct config;
struct health_info;
struct instance;
struct loop;

/* Called on the loop thread whenever the instance's broker connection or
 * modem state changed (the process's systemd status line). */
typedef void (*instance_changed_fn)(void *ctx);

/* loop and cfg are borrowed and must outlive the instance; cfg's
 * state_dir holds its journal. 0 or -errno (logged). */
int instance_new(struct loop *loop, const struct config *cfg, instance_changed_fn changed,
                 void *ctx, struct instance **out);

/* Connects to the broker, replays the journal, opens the modem. 0 or
 * -errno (logged): the broker's address cannot be used. */
int instance_start(struct instance *inst);

/* The instance's part of the health answer: mqtt_connected, modem_state
 * (static), fsyncs, commands; wakeups is the process's (left 0). */
void instance_health(const struct instance *inst, struct health_info *h);

/* Its counters and gauges now, labelled with its name (for /metrics). */
void instance_metrics(const struct instance *inst, struct stats_sample *out);

/* Begins an orderly stop: a connected remote session is closed. true:
 * done(ctx) is called when it is; false: nothing to wait for. */
bool instance_stop(struct instance *inst, void (*done)(void *ctx), void *ctx);

/* Its MQTT session: after the loop ended, the process stops every
 * instance's together (mqtt_links_stop: "offline", then disconnect). */
struct mqtt_link *instance_link(const struct instance *inst);

/* Frees everything the instance owns (the journal keeps what is not
 * done). NULL is fine. */
void instance_free(struct instance *inst);

#endif
