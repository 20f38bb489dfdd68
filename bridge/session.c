/* The instance's MQTT session: the link's callbacks (a command persisted
 * on paho's thread, a message, a (re)connection), the journal's replay
 * at the start, and Home Assistant discovery, which follows the session.
 *
 * Command path: paho thread -> persist (journal, fsync) -> PUBACK; loop
 * thread -> hold (while the modem starts) -> router_dispatch -> service
 * (started: journal mark right before the bytes go to the modem) ->
 * command_finish (results.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/audio.h"
#include "modem/call.h"
#include "modem/sms.h"
#include "mqtt/hass.h"
#include "version.h"

static int on_persist(void *ctx, const char *t, const void *payload, size_t len,
                      bool redelivered, uint64_t *seq)
{
    struct instance *inst = ctx;
    int r;

    /* paho's thread: only the journal and the immutable config are
     * touched. */
    *seq = 0;
    if (!inst->journal || !router_find(inst->cfg, t))
        return 0;
    /* Killed after the append and before paho's PUBACK, the broker
     * delivers it again, marked DUP, and the replayed record from before
     * the restart already stands for it. Only a DUP copy is matched: the
     * same command sent again by a user (an alarm text, no id) runs. */
    if (redelivered && journal_find_earlier(inst->journal, t, payload, len, seq)) {
        log_info("command on %s delivered again by the broker (it missed the acknowledgement "
                 "when the bridge stopped): command %llu stands for it",
                 t, (unsigned long long)*seq);
        *seq = 0;
        return 1;
    }
    r = journal_append(inst->journal, t, payload, len, seq);
    if (r == 0)
        __atomic_add_fetch(&inst->commands, 1, __ATOMIC_RELAXED);
    if (r < 0) {
        /* paho acknowledges the message whatever we answer, so refusing
         * would only stall it: run it, without the crash guarantee. */
        log_error("journal: cannot record the command on %s (%s); it runs, but would not "
                  "survive a crash",
                  t, strerror(-r));
        *seq = 0;
    }
    return 0;
}

static int hass_publish(void *ctx, const char *t, const char *payload)
{
    struct instance *inst = ctx;

    return events_publish_text(inst, t, payload, 1, true, NULL, 0, NULL, NULL);
}

/* again: HA asked (its birth message), publish every config once more. */
void session_hass_update(struct instance *inst, bool again)
{
    const struct modem_info *info = inst->have_info ? &inst->info : NULL;
    int r;

    if (!mqtt_link_connected(inst->link))
        return;   /* on_connected syncs */
    r = again ? hass_reannounce(inst->hass, info) : hass_sync(inst->hass, info);
    if (r < 0)
        log_warn("hass: discovery not (fully) published: %s; retried on the next connect",
                 strerror(-r));
}

/* HA's birth message on <prefix>/status: not a command (never journalled,
 * retained or not). "online" after an HA restart or an HA reconnect to the
 * broker: announce again, as the broker may have lost the retained
 * configs. */
static bool hass_status_message(struct instance *inst, const struct mqtt_link_msg *m)
{
    char t[TOPIC_MAX];

    if (hass_status_topic(inst->cfg->mqtt.ha_prefix, t, sizeof(t)) < 0 || strcmp(m->topic, t) != 0)
        return false;
    if (hass_is_online(m->payload, m->len) && inst->cfg->mqtt.ha_discovery) {
        log_info("hass: Home Assistant is online; announcing the entities again");
        session_hass_update(inst, true);
    }
    return true;
}

static void on_connected(void *ctx)
{
    struct instance *inst = ctx;
    char t[TOPIC_MAX];

    router_subscribe(inst);
    cmd_ha_subscribe(inst);
    /* remote.forward: local filters whose messages go to the remote broker. */
    for (size_t i = 0; inst->cfg->remote.enabled && i < inst->cfg->remote.n_forward; i++)
        mqtt_link_subscribe(inst->link, inst->cfg->remote.forward[i].local,
                            inst->cfg->remote.forward[i].qos);
    if (inst->connected_once)
        cmd_stats_count(inst, STATS_MQTT_RECONNECTS);
    inst->connected_once = true;
    events_availability(inst);
    events_status_again(inst);
    events_info(inst);
    cmd_stats_publish(inst);
    pool_update(inst, true);
    /* HA's birth topic, and the discovery configs not yet announced (or
     * removals left from a run with discovery off). */
    if (hass_status_topic(inst->cfg->mqtt.ha_prefix, t, sizeof(t)) == 0 &&
        inst->cfg->mqtt.ha_discovery)
        mqtt_link_subscribe(inst->link, t, 1);
    session_hass_update(inst, false);
    /* What could not be published while the broker was away. */
    results_flush(inst, true);
    events_storage_full_retry(inst);
    sms_drain(inst->sms);
    /* The event may have fired before the broker connection was up. */
    if (modem_state(inst->modem) == MODEM_SIM_LOCKED)
        events_sim_locked(inst);
    events_call_state(inst, call_get_state(inst->call));
    /* Before the modem is ready its first ready announces it. */
    if (modem_state(inst->modem) == MODEM_READY)
        events_audio_state(inst, audio_get_state(inst->audio));
    instance_health_update(inst);
}

static void on_disconnected(void *ctx, const char *reason)
{
    (void)reason;   /* the link logs it */
    instance_health_update(ctx);
}

static void on_message(void *ctx, const struct mqtt_link_msg *m)
{
    struct instance *inst = ctx;
    struct held *h;

    /* remote.forward messages are data, not commands: forwarded, and
     * dropped here unless the topic is a command topic as well. */
    if (inst->cfg->remote.enabled && cmd_remote_forward(inst, m) &&
        !router_find(inst->cfg, m->topic))
        return;
    if (!router_find(inst->cfg, m->topic) &&
        (hass_status_message(inst, m) || cmd_ha_field(inst, m)))
        return;
    if (m->retained) {
        /* It would run again at every restart of the bridge. An empty one
         * is someone clearing it: nothing to say. Under MQTT 5 a live
         * retained publish keeps its flag too (Retain As Published). */
        if (m->len > 0)
            log_warn("ignoring retained command on %s; clear it with: mosquitto_pub -r -n -t '%s'",
                     m->topic, m->topic);
        if (m->seq)
            journal_done(inst->journal, m->seq);
        return;
    }
    cmd_stats_count(inst, STATS_COMMANDS);
    h = hold_new(m->topic, m->payload, m->len, m->response_topic, m->correlation,
                 m->correlation_len, m->seq);
    if (!h) {
        log_error("out of memory; command on %s dropped", m->topic);
        return;
    }
    hold_take(inst, h);
}

static void on_replay(void *ctx, uint64_t seq, const char *t, const uint8_t *payload, size_t len)
{
    struct instance *inst = ctx;
    uint8_t *blob = NULL;
    size_t blen = 0;
    struct held *h;

    /* Answered before the restart, not yet acknowledged by the broker:
     * the stored result goes out (once connected), the command never runs
     * again. */
    if (journal_result_load(inst->journal, seq, &blob, &blen) == 0) {
        int r = results_replay(inst, seq, blob, blen);

        free(blob);
        if (r == 0) {
            log_info("journal: publishing the stored result of command %llu on %s",
                     (unsigned long long)seq, t);
            return;
        }
        log_warn("journal: the stored result of command %llu is unreadable; answering again",
                 (unsigned long long)seq);
    }
    h = hold_new(t, payload, len, NULL, NULL, 0, seq);
    if (!h)
        return;
    h->started = journal_started_part(inst->journal, seq);
    if (h->started > 0 && !router_work_left(inst, h)) {
        log_warn("journal: command %llu on %s was running when the bridge stopped; "
                 "answering it without running it again",
                 (unsigned long long)seq, t);
        hold_run(inst, h);
        return;
    }
    log_info("journal: running command %llu on %s (accepted before a restart%s)",
             (unsigned long long)seq, t,
             h->started ? "; only to the recipients it had not begun to send to" : "");
    hold_take(inst, h);
}

int session_open(struct instance *inst)
{
    const struct config *cfg = inst->cfg;
    char will[TOPIC_MAX];
    int r = events_topic(inst, "availability", will, sizeof(will));

    if (r < 0)
        return r;
    const struct mqtt_link_opts lo = {
        .uri = cfg->mqtt.broker,
        .client_id = cfg->mqtt.client_id,
        .username = cfg->mqtt.username,
        .password = cfg->mqtt.password,
        .ca_file = cfg->mqtt.ca_file,
        .keepalive = cfg->mqtt.keepalive,
        .will_topic = will,
        .persist = on_persist,
        .persist_ctx = inst,
    };
    const struct mqtt_link_cbs lc = {
        .connected = on_connected, .disconnected = on_disconnected, .message = on_message,
    };
    inst->link = mqtt_link_new(inst->loop, &lo, &lc, inst);
    if (!inst->link)
        return -EINVAL;
    const struct hass_opts ho = { .prefix = cfg->mqtt.ha_prefix, .base = cfg->mqtt.base_topic,
                                  .notify_to = cfg->mqtt.ha_notify_to, .sw_version = M2M_VERSION,
                                  .support_url = M2M_HOMEPAGE, .remote = cfg->remote.enabled };
    inst->hass = hass_new(&ho, cfg->mqtt.ha_discovery, cfg->state_dir, hass_publish, inst);
    return inst->hass ? 0 : -ENOMEM;
}

/* The journal's commands from before a restart: their stored results go
 * out, the others run (or are answered) as if they had just arrived. */
int session_replay(struct instance *inst)
{
    return journal_replay(inst->journal, on_replay, inst);
}
