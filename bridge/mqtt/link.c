/* The local broker connection over paho MQTTAsync (see link.h): the life
 * cycle of struct mqtt_link, mqtt_link_new, _stop and _free. Its other
 * files, and the threads and lifetimes they keep to, are in link_int.h. */
#include "mqtt/link_int.h"

#include "core/log.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers (loop thread) --------------------------------------------- */

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static void free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ---- API ------------------------------------------------------------------ */

struct mqtt_link *mqtt_link_new(struct loop *loop, const struct mqtt_link_opts *opts,
                                const struct mqtt_link_cbs *cbs, void *ctx)
{
    if (!loop || !opts || !cbs)
        return NULL;
    struct mqtt_link *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->loop = loop;
    l->cbs = *cbs;
    l->ctx = ctx;
    l->wake_r = l->wake_w = -1;
    l->pend_tail = &l->pend_head;
    l->win_acked_max = 1;
    l->state = LS_IDLE;
    l->server_reason = -1;
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    l->rng = (uint32_t)loop_now_ms() ^ (uint32_t)getpid() ^ (uint32_t)(uintptr_t)l;
    if (l->rng == 0)
        l->rng = 0x9e3779b9u;

    bool oom = false;
    l->uri = dup_opt(opts->uri ? opts->uri : "mqtt://localhost:1883", &oom);
    l->client_id = dup_opt(opts->client_id ? opts->client_id : "modem2mqtt", &oom);
    l->username = dup_opt(opts->username, &oom);
    l->password = dup_opt(opts->password, &oom);
    l->ca_file = dup_opt(opts->ca_file, &oom);
    l->will_topic = dup_opt(opts->will_topic, &oom);
    l->keepalive = opts->keepalive > 0 ? opts->keepalive : 30;
    l->log_tag = log_tag();
    l->persist = opts->persist;
    l->persist_ctx = opts->persist_ctx;

    for (size_t i = 0; i < LINK_CONN_EVENTS; i++) {
        l->pool[i].free_next = l->pool_free;
        l->pool_free = &l->pool[i];
    }
    l->pool_nfree = LINK_CONN_EVENTS;

    int fds[2];
    if (oom || pthread_mutex_init(&l->lock, NULL) != 0)
        goto err_strings;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        goto err_mutex;
    l->wake_r = fds[0];
    l->wake_w = fds[1];
    if (loop_add_fd(loop, l->wake_r, POLLIN, link_on_wake, l) < 0)
        goto err_pipe;
    return l;

err_pipe:
    close(l->wake_r);
    close(l->wake_w);
err_mutex:
    pthread_mutex_destroy(&l->lock);
err_strings:
    free(l->uri);
    free(l->client_id);
    free(l->username);
    free_secret(l->password);
    free(l->ca_file);
    free(l->will_topic);
    free(l);
    return NULL;
}

bool mqtt_link_connected(const struct mqtt_link *l)
{
    return l && l->state == LS_UP;
}

int mqtt_link_protocol(const struct mqtt_link *l)
{
    return l ? l->connected_version : 0;
}
static void stop_offline_ack(void *ctx, int status)
{
    struct mqtt_link *l = ctx;
    l->stop_offline_done = true;
    if (status < 0)
        log_warn("mqtt: publishing offline failed: %s", strerror(-status));
}

/* Dispatches the link's events until *flag or the deadline. */
static bool wait_for(struct mqtt_link *l, const bool *flag, int64_t deadline)
{
    for (;;) {
        link_dispatch(l);
        if (*flag)
            return true;
        int64_t left = deadline - loop_now_ms();
        if (left <= 0 || l->dead)
            return false;
        struct pollfd p = { .fd = l->wake_r, .events = POLLIN };
        if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR)
            return false;
    }
}

/* The stop in phases, so that several links (one per modem) stop together
 * within one deadline: each phase runs on every link before the next. A
 * link's lines carry its instance's log tag. */

static bool stop_wanted(const struct mqtt_link *l)
{
    return !l->dead && l->state != LS_STOPPING && l->state != LS_STOPPED;
}

/* Phase 1: no reconnect any more; "offline" (retained) on its way. */
static void stop_begin(struct mqtt_link *l)
{
    /* A callback run by wait_for may free the link: defer that to the end. */
    l->dispatch_depth++;
    l->stop_was = l->state;
    loop_cancel_timer(l->loop, l->retry_timer);
    l->retry_timer = 0;
    /* From here a lost connection fails what is pending without scheduling
     * a reconnect, and a late CONNACK is ignored. */
    l->state = LS_STOPPING;
    l->stop_offline_done = true;
    if (l->stop_was == LS_UP && l->will_topic) {
        l->stop_offline_done = false;
        int rc = link_publish_op(l, l->will_topic, "offline", 7, 1, true, NULL, 0, stop_offline_ack,
                                 l);
        if (rc < 0) {
            log_warn("mqtt: cannot publish offline: %s", strerror(-rc));
            l->stop_offline_done = true;
        }
    }
}

/* Phase 2: its PUBACK, until the deadline. */
static void stop_offline_wait(struct mqtt_link *l, int64_t deadline, int timeout_ms)
{
    if (l->stop_offline_done)
        return;
    if (!wait_for(l, &l->stop_offline_done, deadline))
        log_warn("mqtt: offline not acknowledged within %d ms", timeout_ms);
    else
        log_debug("mqtt: offline acknowledged");
}

/* Phase 3: DISCONNECT, with what is left of the deadline for in-flight
 * QoS 1/2 exchanges. */
static void stop_disconnect(struct mqtt_link *l, int64_t deadline)
{
    l->stop_disconnect_done = true;
    if (!l->client || (l->stop_was != LS_UP && l->stop_was != LS_CONNECTING))
        return;
    struct op *op = link_op_new(l, OP_DISCONNECT, NULL);
    if (!op)
        return;
    /* The v5 initializer: onSuccess5/onFailure5 exist from struct version 1
     * on. */
    MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
    MQTTAsync_disconnectOptions d3 = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnectOptions d = l->version == MQTTVERSION_5 ? d5 : d3;
    int64_t left = deadline - loop_now_ms();
    d.timeout = left > 0 ? (int)left : 0;
    d.context = op;
    if (l->version == MQTTVERSION_5) {
        d.onSuccess5 = link_on_op_success5;
        d.onFailure5 = link_on_op_failure5;
    } else {
        d.onSuccess = link_on_op_success;
        d.onFailure = link_on_op_failure;
    }
    l->stop_disconnect_done = false;
    if (MQTTAsync_disconnect(l->client, &d) != MQTTASYNC_SUCCESS) {
        link_op_drop(l, op);
        l->stop_disconnect_done = true;
    }
}

/* Phase 4: paho's answer (it gives up on its own timeout: a little slack
 * for it), then stopped. */
static void stop_finish(struct mqtt_link *l, int64_t deadline, int timeout_ms)
{
    if (!l->stop_disconnect_done && !wait_for(l, &l->stop_disconnect_done, deadline + 500))
        log_warn("mqtt: disconnect did not complete within %d ms", timeout_ms);
    l->state = LS_STOPPED;
    log_info("mqtt: disconnected from %s", l->uri);
    if (--l->dispatch_depth == 0 && l->free_pending)
        link_destroy(l);
}

void mqtt_links_stop(struct mqtt_link *const *links, size_t n, int timeout_ms)
{
    const char *tag = log_tag();

    if (timeout_ms < 0)
        timeout_ms = 0;
    int64_t deadline = loop_now_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++)
        if (links[i])
            links[i]->stop_now = stop_wanted(links[i]);
#define EACH_STOPPING(phase)                                \
    for (size_t i = 0; i < n; i++) {                        \
        if (!links[i] || !links[i]->stop_now)               \
            continue;                                       \
        log_set_tag(links[i]->log_tag);                     \
        phase;                                              \
    }
    EACH_STOPPING(stop_begin(links[i]));
    EACH_STOPPING(stop_offline_wait(links[i], deadline, timeout_ms));
    EACH_STOPPING(stop_disconnect(links[i], deadline));
    /* Last: a link may be freed by its finish. */
    EACH_STOPPING(stop_finish(links[i], deadline, timeout_ms));
#undef EACH_STOPPING
    log_set_tag(tag);
}

void mqtt_link_stop(struct mqtt_link *l, int timeout_ms)
{
    mqtt_links_stop(&l, 1, timeout_ms);
}

void link_destroy(struct mqtt_link *l)
{
    l->dead = true;
    loop_cancel_timer(l->loop, l->retry_timer);
    l->retry_timer = 0;
    loop_del_fd(l->loop, l->wake_r);
    /* After this no paho thread touches the link; requests paho still held
     * were failed through our callbacks and sit in the queue. */
    link_destroy_client(l);
    l->dispatch_depth++;
    link_dispatch(l);
    l->dispatch_depth--;
    for (struct op *op = l->ops_head, *next; op; op = next) {
        next = op->next;
        link_op_report(l, op, -ECANCELED);
        link_op_drop(l, op);
    }
    link_pend_fail_all(l, -ECANCELED);
    close(l->wake_r);
    close(l->wake_w);
    pthread_mutex_destroy(&l->lock);
    free(l->paho_uri);
    free(l->uri);
    free(l->client_id);
    free(l->username);
    free_secret(l->password);
    free(l->ca_file);
    free(l->will_topic);
    free(l);
}

void mqtt_link_free(struct mqtt_link *l)
{
    if (!l)
        return;
    l->dead = true;
    if (l->dispatch_depth > 0) {
        l->free_pending = true;
        return;
    }
    link_destroy(l);
}
