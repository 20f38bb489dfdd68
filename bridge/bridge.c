/* The process: see bridge.h. It owns what exists once a process however
 * many modems it serves (the loop, the signals, systemd's socket, the
 * health socket in state_dir, /metrics); each instance owns everything of
 * its modem. The bridge only asks instances (instance.h): their health,
 * their metrics, their orderly stop. */
#include "bridge.h"

#include <errno.h>
#include <sys/file.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/notify.h"
#include "core/stats.h"
#include "instance.h"
#include "mqtt/link.h"

/* How long a stop waits for the instances' remote sessions to close: far
 * less than the module may take (CMQTT_DISC_TIMEOUT_S), so that SIGTERM
 * stays prompt; a module still closing is left to it (cmqtt.h). */
#define STOP_MS 3000
/* How long the links get to publish "offline" at the end. */
#define LINK_STOP_MS 3000

struct bridge {
    const struct config *cfg;     /* borrowed: outlives the bridge */
    struct loop *loop;
    int sig_fd;
    uint64_t stop_timer;          /* bounds the instances' stop; 0: not stopping */
    size_t n_stopping;            /* instances still closing, +1 while starting the stop */
    int health_fd;                /* state_dir/health.sock, or -1 */
    int state_fd;                 /* state_dir, flock'd with "modems" (else the journal's), or -1 */
    struct notify *notify;        /* systemd's NOTIFY_SOCKET, or NULL */
    struct metrics *metrics;      /* metrics.listen, or NULL */
    struct instance **inst;       /* owned, each freed by bridge_free */
    struct stats_sample *samples; /* n_inst of them, for /metrics */
    struct mqtt_link **links;     /* n_inst of them (borrowed), for the stop */
    size_t n_inst;
};

/* --- health socket (core/health.h; `modem2mqtt --health`) and systemd ----------- */

/* The process's health: healthy when every instance is (connected, its
 * modem ready); else the first instance that is not speaks for all, by
 * its name (with several modems). */
static void health_now(const struct bridge *b, struct health_info *h)
{
    *h = (struct health_info){ .mqtt_connected = true, .modem_state = "ready",
                               .wakeups = loop_wakeups(b->loop) };
    for (size_t i = 0; i < b->n_inst; i++) {
        struct health_info ih;

        instance_health(b->inst[i], &ih);
        h->fsyncs += ih.fsyncs;
        h->commands += ih.commands;
        if (!ih.mqtt_connected && h->mqtt_connected) {
            h->mqtt_connected = false;
            h->modem_state = ih.modem_state;
            h->name = ih.name;
        } else if (h->mqtt_connected && strcmp(h->modem_state, "ready") == 0 &&
                   strcmp(ih.modem_state, "ready") != 0) {
            h->modem_state = ih.modem_state;
            h->name = ih.name;
        }
    }
}

/* A query: answered at once from the loop thread, so an answer proves the
 * loop runs. Nothing is written to disk and nothing wakes the loop between
 * queries. */
static void on_health(void *ctx, int fd, short revents)
{
    struct health_info h;
    char line[HEALTH_LINE_MAX];

    (void)revents;
    health_now(ctx, &h);
    if (health_format(&h, line, sizeof(line)) == 0)
        health_answer(fd, line);
}

/* systemd's STATUS= line (systemctl status), on each change of an
 * instance's link or modem: a datagram, no disk write. */
static void on_instance_changed(void *ctx)
{
    struct bridge *b = ctx;
    struct health_info h;
    char msg[128];

    if (!b->notify)
        return;
    health_now(b, &h);
    snprintf(msg, sizeof(msg), "STATUS=broker %s, modem %s%s%s",
             h.mqtt_connected ? "connected" : "disconnected", h.name ? h.name : "",
             h.name ? " " : "", h.modem_state);
    notify_send(b->notify, msg);
}

/* WatchdogSec=: a ping at half the interval, from the loop thread (a hung
 * loop stops pinging and systemd restarts the bridge). The one periodic
 * wakeup besides the status poll, and only when systemd asks for it. */
static int64_t watchdog_fired(void *ctx)
{
    struct bridge *b = ctx;

    notify_send(b->notify, "WATCHDOG=1");
    return notify_watchdog_ms(b->notify);
}

/* /metrics: every instance's counters, labelled with its name. */
static int render_metrics(void *ctx, char *buf, size_t size)
{
    const struct bridge *b = ctx;

    for (size_t i = 0; i < b->n_inst; i++)
        instance_metrics(b->inst[i], &b->samples[i]);
    return stats_prometheus(b->samples, b->n_inst, buf, size);
}

/* --- signals ------------------------------------------------------------------ */

static void instance_stopped(void *ctx)
{
    struct bridge *b = ctx;

    if (--b->n_stopping > 0)
        return;
    loop_cancel_timer(b->loop, b->stop_timer);
    loop_stop(b->loop);
}

static int64_t stop_expired(void *ctx)
{
    struct bridge *b = ctx;

    log_warn("remote: the module did not close the session within %d ms; stopping anyway",
             STOP_MS);
    loop_stop(b->loop);
    return 0;
}

/* Each instance closes its connected remote session first (DISC, REL,
 * STOP), for at most STOP_MS together; a second signal stops at once. */
static void on_signal(void *ctx, int fd, short revents)
{
    struct bridge *b = ctx;
    struct signalfd_siginfo si;

    (void)revents;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("signal %u: shutting down", si.ssi_signo);
    if (b->stop_timer) {
        loop_stop(b->loop);
        return;
    }
    loop_add_timer(b->loop, STOP_MS, stop_expired, b, &b->stop_timer);
    b->n_stopping = b->n_inst + 1;
    for (size_t i = 0; i < b->n_inst; i++)
        if (!instance_stop(b->inst[i], instance_stopped, b))
            b->n_stopping--;
    instance_stopped(b);        /* the stop itself has begun */
}

static int open_signals(struct bridge *b)
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
    b->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (b->sig_fd < 0)
        return -errno;
    return loop_add_fd(b->loop, b->sig_fd, POLLIN, on_signal, b);
}

/* --- life cycle ---------------------------------------------------------------- */

/* With "modems" each modem's journal locks its own directory below
 * state_dir: the process locks state_dir itself, which holds its health
 * socket, so that a second process on it fails at once. A journal left
 * there by a bridge that served one modem is not read any more: say so. */
static int lock_state_dir(struct bridge *b)
{
    const char *dir = b->cfg->state_dir;
    struct stat st;
    char path[PATH_MAX];
    int r;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        log_error("state_dir %s: %s", dir, strerror(-r));
        return r;
    }
    b->state_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->state_fd < 0 || flock(b->state_fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        log_error("state_dir %s: %s", dir,
                  r == -EBUSY ? "in use by another modem2mqtt (one state_dir per process)"
                              : strerror(-r));
        return r;
    }
    snprintf(path, sizeof(path), "%s/journal.log", dir);
    if (stat(path, &st) == 0)
        log_warn("state_dir %s: journal.log and sms-references of a bridge that served one "
                 "modem are not read with \"modems\": stop the bridge and move them into "
                 "%s/<name>/ of the modem they belong to",
                 dir, dir);
    return 0;
}

static int add_instance(struct bridge *b, const struct config *cfg)
{
    struct instance **grown = realloc(b->inst, (b->n_inst + 1) * sizeof(*grown));
    struct stats_sample *samples;
    struct mqtt_link **links;
    int r;

    if (!grown)
        return -ENOMEM;
    b->inst = grown;
    samples = realloc(b->samples, (b->n_inst + 1) * sizeof(*samples));
    if (!samples)
        return -ENOMEM;
    b->samples = samples;
    links = realloc(b->links, (b->n_inst + 1) * sizeof(*links));
    if (!links)
        return -ENOMEM;
    b->links = links;
    r = instance_new(b->loop, cfg, on_instance_changed, b, &b->inst[b->n_inst]);
    if (r == 0)
        b->n_inst++;
    return r;
}

int bridge_new(const struct config *cfg, struct bridge **out)
{
    struct bridge *b = calloc(1, sizeof(*b));
    int r = -ENOMEM;

    if (!b)
        return -ENOMEM;
    b->cfg = cfg;
    b->sig_fd = -1;
    b->health_fd = -1;
    b->state_fd = -1;
    b->loop = loop_new();
    if (!b->loop)
        goto err;
    r = open_signals(b);
    if (r < 0) {
        log_error("cannot set up signal handling: %s", strerror(-r));
        goto err;
    }
    if (cfg->n_modems && (r = lock_state_dir(b)) < 0)
        goto err;
    for (size_t i = 0; i < (cfg->n_modems ? cfg->n_modems : 1); i++)
        if ((r = add_instance(b, cfg->n_modems ? &cfg->modems[i] : cfg)) < 0)
            goto err;
    *out = b;
    return 0;

err:
    bridge_free(b);
    return r;
}

/* The health socket and /metrics are extras: the bridge runs without. */
static void open_endpoints(struct bridge *b)
{
    int r = health_listen(b->cfg->state_dir, &b->health_fd);

    if (r == 0)
        r = loop_add_fd(b->loop, b->health_fd, POLLIN, on_health, b);
    if (r < 0)
        log_warn("health: cannot listen on %s/%s: %s; --health will say not running",
                 b->cfg->state_dir, HEALTH_SOCKET, strerror(-r));
    if (b->cfg->metrics.listen &&
        (r = metrics_open(b->loop, b->cfg->metrics.listen, render_metrics, b, &b->metrics)) < 0)
        log_error("metrics: cannot listen on %s: %s; /metrics is off", b->cfg->metrics.listen,
                  strerror(-r));
}

static void close_endpoints(struct bridge *b)
{
    if (b->health_fd >= 0) {
        loop_del_fd(b->loop, b->health_fd);
        close(b->health_fd);
        b->health_fd = -1;
        health_remove(b->cfg->state_dir);
    }
    metrics_close(b->metrics);
    b->metrics = NULL;
}

int bridge_run(struct bridge *b)
{
    int r;

    for (size_t i = 0; i < b->n_inst; i++)
        if ((r = instance_start(b->inst[i])) < 0)
            return r;
    open_endpoints(b);
    b->notify = notify_new();
    if (notify_watchdog_ms(b->notify) > 0)
        loop_add_timer(b->loop, notify_watchdog_ms(b->notify), watchdog_fired, b, NULL);
    notify_send(b->notify, "READY=1");
    on_instance_changed(b);
    r = loop_run(b->loop);
    notify_send(b->notify, "STOPPING=1");
    close_endpoints(b);
    /* Together, within one LINK_STOP_MS: the stop does not grow with the
     * number of modems (docker stops after 10 s). */
    for (size_t i = 0; i < b->n_inst; i++)
        b->links[i] = instance_link(b->inst[i]);
    mqtt_links_stop(b->links, b->n_inst, LINK_STOP_MS);
    return r;
}

void bridge_free(struct bridge *b)
{
    if (!b)
        return;
    /* First: a modem freed below reports its state change, and systemd
     * needs no status line any more. */
    notify_free(b->notify);
    b->notify = NULL;
    for (size_t i = 0; i < b->n_inst; i++)
        instance_free(b->inst[i]);
    free(b->inst);
    free(b->samples);
    free(b->links);
    if (b->sig_fd >= 0) {
        if (b->loop)
            loop_del_fd(b->loop, b->sig_fd);
        close(b->sig_fd);
    }
    if (b->health_fd >= 0)
        close(b->health_fd);
    if (b->state_fd >= 0)
        close(b->state_fd);       /* releases the flock */
    loop_free(b->loop);
    free(b);
}
