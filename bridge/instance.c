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
        log_info("modem: %s", instance_state(inst));
    inst->last_state = instance_state(inst);
    status_modem_ready(inst->status, ready);
    sms_modem_ready(inst->sms, ready);
    cmqtt_modem_ready(inst->cmqtt, ready);
    call_modem_ready(inst->call, ready);
    ussd_modem_ready(inst->ussd, ready);
    events_availability(inst);
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
    };
}

int instance_metrics(const struct instance *inst, char *buf, size_t size)
{
    return cmd_stats_render(inst, buf, size);
}

bool instance_stop(struct instance *inst, void (*done)(void *ctx), void *ctx)
{
    if (cmqtt_state(inst->cmqtt) != CMQTT_CONNECTED)
        return false;
    cmqtt_shutdown(inst->cmqtt, done, ctx);
    return true;
}

/* --- life cycle ---------------------------------------------------------------- */

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
    r = journal_open(cfg->state_dir, &inst->journal);
    if (r < 0) {
        log_error("state_dir %s: %s", cfg->state_dir, strerror(-r));
        goto err;
    }
    r = refmap_open(cfg->state_dir, time(NULL), &inst->refs);
    if (r < 0) {
        log_error("state_dir %s: %s: %s", cfg->state_dir, REFMAP_FILE, strerror(-r));
        goto err;
    }

    const struct modem_opts mo = {
        .port = cfg->modem.port,
        .baud = cfg->modem.baud,
        .pin = cfg->modem.pin,
        .apn = cfg->modem.apn,
        .init = cfg->modem.init,
        .n_init = cfg->modem.n_init,
        .command_timeout_ms = cfg->modem.command_timeout_ms,
    };
    const struct modem_cbs mc = { .state_changed = on_modem_state, .info_changed = on_modem_info };
    r = -ENOMEM;
    inst->modem = modem_new(inst->loop, &mo, &mc, inst);
    if (!inst->modem)
        goto err;
    if ((r = cmd_sms_open(inst)) < 0)
        goto err;
    const struct status_cbs stc = { .changed = on_status, .tick = on_status_tick,
                                    .storage_full = on_storage_full };
    r = -ENOMEM;
    inst->status = status_new(inst->loop, inst->modem, cfg->modem.status_interval, &stc, inst);
    if (!inst->status)
        goto err;
    /* The network may take 30 s to answer a USSD code: six command
     * timeouts (30 s with the default 5000 ms) rather than a new key. */
    inst->ussd = ussd_new(inst->loop, inst->modem, cfg->modem.command_timeout_ms * 6);
    if (!inst->ussd)
        goto err;
    if ((r = cmd_remote_open(inst)) < 0 || (r = cmd_call_open(inst)) < 0 ||
        (r = session_open(inst)) < 0)
        goto err;
    *out = inst;
    return 0;

err:
    instance_free(inst);
    return r;
}

int instance_start(struct instance *inst)
{
    int r = mqtt_link_start(inst->link);

    if (r < 0) {
        log_error("mqtt: cannot use broker %s: %s", inst->cfg->mqtt.broker, strerror(-r));
        return r;
    }
    r = session_replay(inst);
    if (r < 0)
        log_warn("journal: replay failed: %s", strerror(-r));
    hold_start(inst);
    modem_start(inst->modem);
    return 0;
}

void instance_finish(struct instance *inst, int timeout_ms)
{
    mqtt_link_stop(inst->link, timeout_ms);
}

void instance_free(struct instance *inst)
{
    if (!inst)
        return;
    /* The modem first: cancelling its commands calls back into the services
     * and into commands, which must still exist then. */
    modem_free(inst->modem);
    sms_free(inst->sms);
    status_free(inst->status);
    ussd_free(inst->ussd);
    cmd_remote_close(inst);
    call_free(inst->call);
    mqtt_link_free(inst->link);
    hass_free(inst->hass);
    hold_free_all(inst);
    results_free_all(inst);     /* the journal keeps those not acknowledged */
    journal_close(inst->journal);
    refmap_close(inst->refs);
    free(inst->last_status);
    free(inst);
}
