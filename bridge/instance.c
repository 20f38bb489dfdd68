/* An instance: one modem with its services, its MQTT session, its journal
 * and its commands. This file wires them (life cycle) and follows the
 * modem's state; the families of commands and events have their own
 * files (instance_int.h lists them). */
#include "instance.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/health.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/notify.h"
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

/* --- health socket (core/health.h; `modem2mqtt --health`) and systemd ----------- */

/* A query: answered at once from the loop thread, so an answer proves the
 * loop runs. Nothing is written to disk and nothing wakes the loop between
 * queries. */
static void on_health(void *ctx, int fd, short revents)
{
    struct instance *inst = ctx;
    struct health_info h = {
        .mqtt_connected = mqtt_link_connected(inst->link),
        .modem_state = instance_state(inst),
        .wakeups = loop_wakeups(inst->loop),
        .fsyncs = inst->journal ? journal_fsyncs(inst->journal) : 0,
        .commands = __atomic_load_n(&inst->commands, __ATOMIC_RELAXED),
    };
    char line[HEALTH_LINE_MAX];

    (void)revents;
    if (health_format(&h, line, sizeof(line)) == 0)
        health_answer(fd, line);
}

/* systemd's STATUS= line (systemctl status), on each state change: a
 * datagram, no disk write. */
void instance_health_update(struct instance *inst)
{
    char msg[128];

    if (!inst->notify)
        return;
    snprintf(msg, sizeof(msg), "STATUS=broker %s, modem %s",
             mqtt_link_connected(inst->link) ? "connected" : "disconnected", instance_state(inst));
    notify_send(inst->notify, msg);
}

/* WatchdogSec=: a ping at half the interval, from the loop thread (a hung
 * loop stops pinging and systemd restarts the bridge). The one periodic
 * wakeup besides the status poll, and only when systemd asks for it. */
static int64_t watchdog_fired(void *ctx)
{
    struct instance *inst = ctx;

    notify_send(inst->notify, "WATCHDOG=1");
    return notify_watchdog_ms(inst->notify);
}

/* --- signals ------------------------------------------------------------------ */

#define REMOTE_STOP_MS 3000

static void remote_stopped(void *ctx)
{
    struct instance *inst = ctx;

    loop_cancel_timer(inst->loop, inst->remote_stop_timer);
    loop_stop(inst->loop);
}

static int64_t remote_stop_expired(void *ctx)
{
    struct instance *inst = ctx;

    log_warn("remote: the module did not close the session within %d ms; stopping anyway",
             REMOTE_STOP_MS);
    loop_stop(inst->loop);
    return 0;
}

static void on_signal(void *ctx, int fd, short revents)
{
    struct instance *inst = ctx;
    struct signalfd_siginfo si;

    (void)revents;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("signal %u: shutting down", si.ssi_signo);
    /* A connected remote session is closed first (DISC, REL, STOP), for at
     * most REMOTE_STOP_MS; a second signal stops at once. */
    if (inst->remote_stop_timer || cmqtt_state(inst->cmqtt) != CMQTT_CONNECTED) {
        loop_stop(inst->loop);
        return;
    }
    loop_add_timer(inst->loop, REMOTE_STOP_MS, remote_stop_expired, inst, &inst->remote_stop_timer);
    cmqtt_shutdown(inst->cmqtt, remote_stopped, inst);
}

static int open_signals(struct instance *inst)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked before paho starts its threads, so they inherit the mask and
     * only the signalfd sees these signals. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    inst->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (inst->sig_fd < 0)
        return -errno;
    return loop_add_fd(inst->loop, inst->sig_fd, POLLIN, on_signal, inst);
}

static int render_metrics(void *ctx, char *buf, size_t size)
{
    return cmd_stats_render(ctx, buf, size);
}

/* --- life cycle ---------------------------------------------------------------- */

int instance_new(const struct config *cfg, struct instance **out)
{
    struct instance *inst = calloc(1, sizeof(*inst));
    int r = -ENOMEM;

    if (!inst)
        return -ENOMEM;
    inst->cfg = cfg;
    inst->sig_fd = -1;
    inst->health_fd = -1;
    inst->held_tail = &inst->held;
    inst->last_state = "";
    inst->started_ms = loop_now_ms();
    inst->loop = loop_new();
    if (!inst->loop)
        goto err;
    r = open_signals(inst);
    if (r < 0) {
        log_error("cannot set up signal handling: %s", strerror(-r));
        goto err;
    }

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

int instance_run(struct instance *inst)
{
    int r;

    r = mqtt_link_start(inst->link);
    if (r < 0) {
        log_error("mqtt: cannot use broker %s: %s", inst->cfg->mqtt.broker, strerror(-r));
        return r;
    }
    r = session_replay(inst);
    if (r < 0)
        log_warn("journal: replay failed: %s", strerror(-r));
    hold_start(inst);
    modem_start(inst->modem);
    r = health_listen(inst->cfg->state_dir, &inst->health_fd);
    if (r == 0)
        r = loop_add_fd(inst->loop, inst->health_fd, POLLIN, on_health, inst);
    if (r < 0)
        log_warn("health: cannot listen on %s/%s: %s; --health will say not running",
                 inst->cfg->state_dir, HEALTH_SOCKET, strerror(-r));
    /* /metrics is an extra: the bridge runs without it. */
    if (inst->cfg->metrics.listen &&
        (r = metrics_open(inst->loop, inst->cfg->metrics.listen, render_metrics, inst,
                          &inst->metrics)) < 0)
        log_error("metrics: cannot listen on %s: %s; /metrics is off", inst->cfg->metrics.listen,
                  strerror(-r));
    inst->notify = notify_new();
    if (notify_watchdog_ms(inst->notify) > 0)
        loop_add_timer(inst->loop, notify_watchdog_ms(inst->notify), watchdog_fired, inst, NULL);
    notify_send(inst->notify, "READY=1");
    instance_health_update(inst);
    r = loop_run(inst->loop);
    notify_send(inst->notify, "STOPPING=1");
    if (inst->health_fd >= 0) {
        loop_del_fd(inst->loop, inst->health_fd);
        close(inst->health_fd);
        inst->health_fd = -1;
        health_remove(inst->cfg->state_dir);
    }
    metrics_close(inst->metrics);
    inst->metrics = NULL;
    mqtt_link_stop(inst->link, 3000);
    return r;
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
    if (inst->sig_fd >= 0) {
        if (inst->loop)
            loop_del_fd(inst->loop, inst->sig_fd);
        close(inst->sig_fd);
    }
    if (inst->health_fd >= 0)
        close(inst->health_fd);
    notify_free(inst->notify);
    loop_free(inst->loop);
    free(inst->last_status);
    free(inst);
}
