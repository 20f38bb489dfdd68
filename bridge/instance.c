/* An instance: one modem with its services, its MQTT session, its journal
 * and its commands. This file wires them (life cycle) and follows the
 * modem's state; the families of commands and events have their own
 * files (instance_int.h lists them). */
#include "instance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/health.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/refmap.h"
#include "instance_int.h"
#include "modem/audio.h"
#include "modem/call.h"
#include "modem/cmqtt.h"
#include "modem/sms.h"
#include "modem/status.h"
#include "modem/ussd.h"
#include "mqtt/hass.h"

static void on_status(void *ctx, const struct status_info *info)
{
    (void)info;
    events_status(ctx);
    cmd_network_status(ctx);
}

/* The status poll's timer: the SMS safety drain rides on it (a +CMTI lost
 * during a reopen, publishes that failed), so an idle bridge wakes once a
 * status_interval. */
static void on_storage_full(void *ctx, const char *why)
{
    events_storage_full(ctx, why);
}

static void on_status_tick(void *ctx)
{
    struct instance *inst = ctx;

    sms_drain(inst->sms);
}

static void on_modem_state(void *ctx, enum modem_state st)
{
    struct instance *inst = ctx;
    bool ready = st == MODEM_READY;

    if (st == MODEM_RESETTING)
        inst->resetting = true;
    else if (st != MODEM_PROBING && st != MODEM_BRINGUP)
        inst->resetting = false;
    if (strcmp(instance_state(inst), inst->last_state) != 0)
        log_msg(modem_quiet(inst->modem) ? LOG_DEBUG : LOG_INFO, "modem: %s",
                instance_state(inst));
    inst->last_state = instance_state(inst);
    status_modem_ready(inst->status, ready);
    sms_modem_ready(inst->sms, ready);
    cmqtt_modem_ready(inst->cmqtt, ready);
    call_modem_ready(inst->call, ready);
    audio_modem_ready(inst->audio, ready);
    cmd_audio_modem_ready(inst, ready);
    ussd_modem_ready(inst->ussd, ready);
    events_status(inst);
    instance_health_update(inst);
    cmd_stats_modem_changed(inst);
    pool_update(inst, false);
    hold_modem_state(inst, st);
    if (st == MODEM_SIM_LOCKED)
        events_sim_locked(inst);
}

static void on_modem_info(void *ctx, const struct modem_info *info)
{
    struct instance *inst = ctx;

    inst->info = *info;
    inst->have_info = true;
    events_info(inst);
    /* The device's identity (IMEI) is known now. */
    session_hass_update(inst, false);
}

/* Every line an instance logs carries its name (with several modems): the
 * calls from the process set it here, the loop keeps it for what the
 * instance registers (core/loop.h). */
#define TAGGED(inst, body)                  \
    do {                                    \
        const char *prev_tag_ = log_tag();  \
        log_set_tag((inst)->cfg->name);     \
        body;                               \
        log_set_tag(prev_tag_);             \
    } while (0)

/* --- what the process asks ------------------------------------------------- */

/* The process's systemd status line follows the link and the modem. */
void instance_health_update(struct instance *inst)
{
    inst->changed(inst->changed_ctx);
}

void instance_health(const struct instance *inst, struct health_info *h)
{
    *h = (struct health_info){
        .mqtt_connected = mqtt_link_connected(inst->link),
        .modem_state = instance_state(inst),
        .fsyncs = inst->journal ? journal_fsyncs(inst->journal) : 0,
        .commands = __atomic_load_n(&inst->commands, __ATOMIC_RELAXED),
        .name = inst->cfg->name,
    };
}

void instance_metrics(const struct instance *inst, struct stats_sample *out)
{
    cmd_stats_sample(inst, out);
}

bool instance_stop(struct instance *inst, void (*done)(void *ctx), void *ctx)
{
    if (cmqtt_state(inst->cmqtt) != CMQTT_CONNECTED)
        return false;
    TAGGED(inst, cmqtt_shutdown(inst->cmqtt, done, ctx));
    return true;
}

/* --- life cycle ---------------------------------------------------------------- */

/* modem.sleep, checked by the config: "off", "rx" or "dtr". */
static enum at_chat_sleep sleep_mode(const char *name)
{
    return strcmp(name, "rx") == 0 ? AT_SLEEP_RX
           : strcmp(name, "dtr") == 0 ? AT_SLEEP_DTR
                                      : AT_SLEEP_OFF;
}

static int instance_open(struct instance *inst, const struct config *cfg)
{
    int r;

    r = journal_open(cfg->state_dir, &inst->journal);
    if (r < 0) {
        log_error("state_dir %s: %s", cfg->state_dir, strerror(-r));
        return r;
    }
    r = refmap_open(cfg->state_dir, time(NULL), &inst->refs);
    if (r < 0) {
        log_error("state_dir %s: %s: %s", cfg->state_dir, REFMAP_FILE, strerror(-r));
        return r;
    }

    const struct modem_opts mo = {
        .port = cfg->modem.port,
        .baud = cfg->modem.baud,
        .pin = cfg->modem.pin,
        .apn = cfg->modem.apn,
        .init = cfg->modem.init,
        .n_init = cfg->modem.n_init,
        .command_timeout_ms = cfg->modem.command_timeout_ms,
        .sleep = sleep_mode(cfg->modem.sleep),
        .device_packets = { cfg->modem.device_server.registry,
                            cfg->modem.device_server.heartbeat },
    };
    const struct modem_cbs mc = { .state_changed = on_modem_state, .info_changed = on_modem_info };
    r = -ENOMEM;
    inst->modem = modem_new(inst->loop, &mo, &mc, inst);
    if (!inst->modem)
        return r;
    if ((r = cmd_sms_open(inst)) < 0)
        return r;
    const struct status_cbs stc = { .changed = on_status, .tick = on_status_tick,
                                    .storage_full = on_storage_full };
    r = -ENOMEM;
    inst->status = status_new(inst->loop, inst->modem, cfg->modem.status_interval, &stc, inst);
    if (!inst->status)
        return r;
    /* The network may take 30 s to answer a USSD code: six command
     * timeouts (30 s with the default 5000 ms) rather than a new key. */
    inst->ussd = ussd_new(inst->loop, inst->modem, cfg->modem.command_timeout_ms * 6);
    if (!inst->ussd)
        return r;
    if ((r = cmd_remote_open(inst)) < 0 || (r = cmd_call_open(inst)) < 0 ||
        (r = cmd_audio_open(inst)) < 0 || (r = session_open(inst)) < 0)
        return r;
    return 0;
}

int instance_new(struct loop *loop, const struct config *cfg, instance_changed_fn changed,
                 void *ctx, struct instance **out)
{
    struct instance *inst = calloc(1, sizeof(*inst));
    int r;

    if (!inst)
        return -ENOMEM;
    inst->cfg = cfg;
    inst->loop = loop;
    inst->name = cfg->mqtt.base_topic;
    inst->changed = changed;
    inst->changed_ctx = ctx;
    inst->held_tail = &inst->held;
    inst->last_state = "";
    inst->started_ms = loop_now_ms();
    TAGGED(inst, r = instance_open(inst, cfg));
    if (r < 0) {
        instance_free(inst);
        return r;
    }
    *out = inst;
    return 0;
}

static int start(struct instance *inst)
{
    const struct config *cfg = inst->cfg;
    int r;

    if (cfg->name)
        log_info("port %s, base topic %s", cfg->modem.port, cfg->mqtt.base_topic);
    r = mqtt_link_start(inst->link);
    if (r < 0) {
        log_error("mqtt: cannot use broker %s: %s", cfg->mqtt.broker, strerror(-r));
        return r;
    }
    r = session_replay(inst);
    if (r < 0)
        log_warn("journal: replay failed: %s", strerror(-r));
    hold_start(inst);
    modem_start(inst->modem);
    return 0;
}

int instance_start(struct instance *inst)
{
    int r;

    TAGGED(inst, r = start(inst));
    return r;
}

struct mqtt_link *instance_link(const struct instance *inst)
{
    return inst->link;
}

static void instance_close(struct instance *inst)
{
    /* The modem first: cancelling its commands calls back into the services
     * and into commands, which must still exist then. */
    modem_free(inst->modem);
    sms_free(inst->sms);
    status_free(inst->status);
    ussd_free(inst->ussd);
    cmd_remote_close(inst);
    call_free(inst->call);
    cmd_audio_close(inst);
    audio_free(inst->audio);
    mqtt_link_free(inst->link);
    hass_free(inst->hass);
    cmd_ha_free(inst);
    hold_free_all(inst);
    results_free_all(inst);     /* the journal keeps those not acknowledged */
    journal_close(inst->journal);
    refmap_close(inst->refs);
    free(inst->last_status);
}

void instance_free(struct instance *inst)
{
    if (!inst)
        return;
    TAGGED(inst, instance_close(inst));
    free(inst);
}
