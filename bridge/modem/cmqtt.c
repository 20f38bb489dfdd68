/* The remote-broker service's session: its state and reconnect backoff,
 * the job queue (jobs run one at a time: cmqtt_job.c), the API, and the
 * URCs that end a session (+CMQTTCONNLOST, +CMQTTNONET). The receive
 * path is cmqtt_rx.c. See cmqtt.h. */
#include "modem/cmqtt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "at/chat.h"
#include "at/result.h"
#include "at/script.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/topic.h"
#include "modem/cmqtt_int.h"
#include "modem/modem.h"

/* --- helpers ------------------------------------------------------------------ */

void cmqtt_set_state(struct cmqtt *c, enum cmqtt_state st, const char *reason)
{
    bool changed = st != c->state || (reason != NULL) != c->have_reason ||
                   (reason && strcmp(reason, c->reason) != 0);

    c->state = st;
    c->have_reason = reason != NULL;
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    if (!changed)
        return;
    if (reason)
        log_info("remote: %s (%s)", cmqtt_state_name(st), reason);
    else
        log_info("remote: %s", cmqtt_state_name(st));
    if (c->cbs.state_changed)
        c->cbs.state_changed(c->ctx, st, reason);
}

void cmqtt_job_free(struct job *j)
{
    if (!j)
        return;
    free(j->topic);
    free(j->payload);
    free(j);
}

void cmqtt_job_answer(const struct job *j, const char *code, const char *what, const char *why)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    if (!j->cb)
        return;
    if (!code) {
        j->cb(j->ctx, NULL);
        return;
    }
    m2m_error_set(&err, code, "%s: %s", what, why ? why : "");
    j->cb(j->ctx, &err);
}

static void answer_now(cmqtt_done_cb cb, void *ctx, const char *code, const char *msg)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    if (!cb)
        return;
    m2m_error_set(&err, code, "%s", msg);
    cb(ctx, &err);
}

/* --- reconnect ------------------------------------------------------------------ */

static int64_t retry_fired(void *ctx)
{
    struct cmqtt *c = ctx;

    c->retry_timer = 0;
    cmqtt_kick(c);
    return 0;
}

void cmqtt_session_lost(struct cmqtt *c, const char *reason)
{
    if (c->cur && c->cur->kind == JOB_CONNECT)
        c->lost_while_connecting = true;
    cmqtt_set_state(c, CMQTT_DISCONNECTED, reason);
    if (c->stopping || !c->modem_ready || c->retry_timer)
        return;
    log_info("remote: next connection attempt in %d ms", c->backoff_ms);
    loop_add_timer(c->loop, c->backoff_ms, retry_fired, c, &c->retry_timer);
    c->backoff_ms = c->backoff_ms * 2 > c->opt.backoff_max_ms ? c->opt.backoff_max_ms
                                                              : c->backoff_ms * 2;
}

static void run_stop_if_queued(struct cmqtt *c);

void cmqtt_kick(struct cmqtt *c)
{
    if (c->cur || !c->modem_ready || c->state == CMQTT_DISABLED)
        return;
    if (c->stopping) {
        run_stop_if_queued(c);
        return;
    }
    if (c->state != CMQTT_CONNECTED) {
        struct job *j;
        if (c->retry_timer || c->state == CMQTT_CONNECTING)
            return;
        j = calloc(1, sizeof(*j));
        if (!j)
            return;
        j->kind = JOB_CONNECT;
        c->lost_while_connecting = false;
        cmqtt_set_state(c, CMQTT_CONNECTING, NULL);
        cmqtt_start_job(c, j);
        return;
    }
    if (c->queue) {
        struct job *j = c->queue;
        c->queue = j->next;
        if (!c->queue)
            c->tail = &c->queue;
        c->n_queue--;
        j->next = NULL;
        cmqtt_start_job(c, j);
    }
}

static int enqueue(struct cmqtt *c, struct job *j)
{
    if (c->n_queue >= CMQTT_MAX_QUEUE)
        return -ENOBUFS;
    j->next = NULL;
    *c->tail = j;
    c->tail = &j->next;
    c->n_queue++;
    cmqtt_kick(c);
    return 0;
}

/* --- API ------------------------------------------------------------------------- */

void cmqtt_publish(struct cmqtt *c, const char *topic, const uint8_t *payload, size_t len,
                   int qos, bool retain, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    struct job *j;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (len > CMQTT_PAYLOAD_MAX || tl > CMQTT_TOPIC_MAX) {
        answer_now(cb, ctx, "too_long", len > CMQTT_PAYLOAD_MAX
                                            ? "'payload' is longer than 10240 bytes"
                                            : "'topic' is longer than 1024 bytes");
        return;
    }
    if (tl == 0 || topic_check(topic, tl, false) || qos < 0 || qos > 2) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic name, 'qos' 0-2");
        return;
    }
    if (c->state != CMQTT_CONNECTED && qos == 0) {
        c->stats.dropped_qos0++;
        log_warn("remote: not connected; QoS 0 publish on %s dropped (%llu so far)", topic,
                 (unsigned long long)c->stats.dropped_qos0);
        answer_now(cb, ctx, "unavailable",
                   "the remote broker is not connected (QoS 0 is not queued)");
        return;
    }
    if (c->stopping) {
        answer_now(cb, ctx, "unavailable", "the bridge is stopping");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j) {
        j->topic = strdup(topic);
        j->payload = malloc(len ? len : 1);
    }
    if (!j || !j->topic || !j->payload) {
        cmqtt_job_free(j);
        answer_now(cb, ctx, "busy", "out of memory");
        return;
    }
    memcpy(j->payload, payload, len);
    *j = (struct job){ .kind = JOB_PUBLISH, .topic = j->topic, .topic_len = tl,
                       .payload = j->payload, .len = len, .qos = qos, .retain = retain,
                       .cb = cb, .ctx = ctx };
    if (enqueue(c, j) < 0) {
        cmqtt_job_free(j);
        answer_now(cb, ctx, "busy", "too many remote publishes waiting");
    }
}

static ssize_t find_sub(const struct cmqtt *c, const char *topic)
{
    for (size_t i = 0; i < c->n_subs; i++)
        if (strcmp(c->subs[i].topic, topic) == 0)
            return (ssize_t)i;
    return -1;
}

static void sub_job(struct cmqtt *c, enum job_kind kind, const char *topic, int qos,
                    cmqtt_done_cb cb, void *ctx)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j || !(j->topic = strdup(topic))) {
        free(j);
        answer_now(cb, ctx, "busy", "out of memory");
        return;
    }
    j->kind = kind;
    j->topic_len = strlen(topic);
    j->qos = qos;
    j->cb = cb;
    j->ctx = ctx;
    if (enqueue(c, j) < 0) {
        cmqtt_job_free(j);
        answer_now(cb, ctx, "busy", "too many remote commands waiting");
    }
}

void cmqtt_subscribe(struct cmqtt *c, const char *topic, int qos, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    ssize_t i;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (tl == 0 || tl > CMQTT_TOPIC_MAX || topic_check(topic, tl, true) || qos < 0 ||
        qos > 2) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic filter, 'qos' 0-2");
        return;
    }
    i = find_sub(c, topic);
    if (i < 0 && c->n_subs >= CMQTT_MAX_SUBS) {
        answer_now(cb, ctx, "too_long", "too many remote subscriptions (32)");
        return;
    }
    if (c->state != CMQTT_CONNECTED || c->stopping) {
        /* Kept; the next connect subscribes it. */
        if (i >= 0) {
            c->subs[i].qos = qos;
        } else {
            char *t = strdup(topic);
            if (!t) {
                answer_now(cb, ctx, "busy", "out of memory");
                return;
            }
            c->subs[c->n_subs++] = (struct sub){ t, qos };
        }
        if (cb)
            cb(ctx, NULL);
        return;
    }
    if (i >= 0) {
        /* Re-subscribing replaces the QoS on the broker; keep one entry. */
        free(c->subs[i].topic);
        c->subs[i] = c->subs[--c->n_subs];
    }
    sub_job(c, JOB_SUB, topic, qos, cb, ctx);
}

void cmqtt_unsubscribe(struct cmqtt *c, const char *topic, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    ssize_t i;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (tl == 0 || tl > CMQTT_TOPIC_MAX || topic_check(topic, tl, true)) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic filter");
        return;
    }
    i = find_sub(c, topic);
    if (i >= 0) {
        /* Gone from the list at once: a reconnect must not bring it back. */
        free(c->subs[i].topic);
        memmove(&c->subs[i], &c->subs[i + 1], (c->n_subs - (size_t)i - 1) * sizeof(c->subs[0]));
        c->n_subs--;
    }
    if (c->state != CMQTT_CONNECTED || c->stopping) {
        if (cb)
            cb(ctx, NULL);
        return;
    }
    sub_job(c, JOB_UNSUB, topic, 0, cb, ctx);
}

static void fail_queue(struct cmqtt *c, bool keep_qos)
{
    struct job **pp = &c->queue;

    while (*pp) {
        struct job *j = *pp;
        if (keep_qos && j->kind == JOB_PUBLISH && j->qos > 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        c->n_queue--;
        cmqtt_job_answer(j, "unavailable", "the remote broker is not connected",
                         "the bridge is stopping or the modem went away");
        cmqtt_job_free(j);
    }
    c->tail = &c->queue;
    for (struct job *j = c->queue; j; j = j->next)
        c->tail = &j->next;
}

void cmqtt_shutdown(struct cmqtt *c, void (*done)(void *ctx), void *ctx)
{
    struct job *j;

    loop_cancel_timer(c->loop, c->retry_timer);
    c->retry_timer = 0;
    fail_queue(c, false);
    if (c->state == CMQTT_DISABLED || !c->modem_ready || c->stopping ||
        !(j = calloc(1, sizeof(*j)))) {
        if (done)
            done(ctx);
        return;
    }
    c->stopping = true;
    c->stopped = done;
    c->stopped_ctx = ctx;
    j->kind = JOB_STOP;
    if (c->cur) {
        /* After the job in flight (its answer comes first). */
        j->next = NULL;
        c->queue = j;
        c->tail = &j->next;
        c->n_queue = 1;
        return;
    }
    cmqtt_start_job(c, j);
}

/* kick() does not start a queued STOP while stopping: do it here. */
static void run_stop_if_queued(struct cmqtt *c)
{
    if (c->stopping && !c->cur && c->queue && c->queue->kind == JOB_STOP) {
        struct job *j = c->queue;
        c->queue = NULL;
        c->tail = &c->queue;
        c->n_queue = 0;
        cmqtt_start_job(c, j);
    }
}

void cmqtt_modem_ready(struct cmqtt *c, bool ready)
{
    if (c->state == CMQTT_DISABLED)
        return;
    if (c->modem_ready == ready)
        return;
    c->modem_ready = ready;
    if (!ready) {
        /* The chat cancels what was in flight (the job ends CANCELLED);
         * the module's session is gone with it. */
        loop_cancel_timer(c->loop, c->retry_timer);
        c->retry_timer = 0;
        cmqtt_rx_reset(c);
        /* A port reopen need not reboot the module: its session may live on. */
        c->need_disc = true;
        c->cert_loaded = false;   /* a reset may have wiped it */
        cmqtt_set_state(c, CMQTT_DISCONNECTED, "modem not ready");
        fail_queue(c, true);
        return;
    }
    c->backoff_ms = c->opt.backoff_min_ms;
    cmqtt_kick(c);
}

enum cmqtt_state cmqtt_state(const struct cmqtt *c)
{
    return c->state;
}

const char *cmqtt_reason(const struct cmqtt *c)
{
    return c->have_reason ? c->reason : NULL;
}

const struct cmqtt_stats *cmqtt_stats(const struct cmqtt *c)
{
    return &c->stats;
}

/* --- URCs ------------------------------------------------------------------------ */

/* A URC ended the session: the command of ours that waits for it (its
 * result line comes after OK, and would now come late or never) completes
 * at once, so that the commands queued behind it (SMS, status) go on
 * rather than wait for its timeout (65 s for a SUB). TOPIC, PAYLOAD and
 * the *TOPIC steps are not aborted: they only fill the module's buffer and
 * finish by themselves; their job stops after them (done_session). A
 * CONNECT is aborted for NONET only: after a CONNLOST (of the previous
 * session, maybe) the module still answers it. */
static void abort_waiting(struct cmqtt *c, bool nonet)
{
    static const char *const waiting[] = { "AT+CMQTTSUB=", "AT+CMQTTUNSUB=", "AT+CMQTTPUB=" };
    struct at_chat *chat = modem_chat(c->modem);
    bool done = false;

    if (!c->cur || c->cur->kind == JOB_STOP || !c->modem_ready)
        return;
    c->aborting = true;
    for (size_t i = 0; i < sizeof(waiting) / sizeof(waiting[0]) && !done; i++)
        done = at_chat_abort(chat, waiting[i]);
    if (!done && nonet)
        done = at_chat_abort(chat, "AT+CMQTTCONNECT=");
    c->aborting = false;
    if (done)
        log_info("remote: the command waiting for the session was aborted");
}

static void urc_connlost(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    static const char *const causes[] = { "", "closed by the broker", "connection reset",
                                          "network closed" };
    struct at_result_iter it;
    int client, cause;
    char why[96];

    (void)n;
    at_result_iter_init(&it, lines[0]);
    if (at_result_iter_next(&it, "+CMQTTCONNLOST:") &&
        at_result_next_number(&it, 0, INT_MAX, &client) == 0 &&
        at_result_next_number(&it, 1, 3, &cause) == 0 && at_result_at_end(&it))
        snprintf(why, sizeof(why), "connection lost: %s (%d)", causes[cause], cause);
    else
        snprintf(why, sizeof(why), "connection lost");
    if (c->state == CMQTT_DISABLED)
        return;
    cmqtt_session_lost(c, why);
    abort_waiting(c, false);
    cmqtt_kick(c);
}

static void urc_nonet(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;

    (void)lines;
    (void)n;
    if (c->state == CMQTT_DISABLED)
        return;
    /* The stack stopped: the next attempt starts it again (START). */
    cmqtt_session_lost(c, "the module lost its data connection");
    abort_waiting(c, true);
    cmqtt_kick(c);
}

static const struct at_urc urcs[] = {
    { "+CMQTTRXSTART:", 0, cmqtt_urc_rxstart },
    { "+CMQTTRXTOPIC:", 0, cmqtt_urc_rxtopic },
    { "+CMQTTRXPAYLOAD:", 0, cmqtt_urc_rxpayload },
    { "+CMQTTRXEND:", 0, cmqtt_urc_rxend },
    { "+CMQTTCONNLOST:", 0, urc_connlost },
    { "+CMQTTNONET", 0, urc_nonet },
};

/* --- life cycle ------------------------------------------------------------------- */

/* No will, or one the module takes: a topic name, 1-CMQTT_WILL_MAX bytes
 * of message, QoS 0-2. */
static bool will_ok(const struct cmqtt_opts *o)
{
    size_t tl = o->will_topic ? strlen(o->will_topic) : 0;

    if (!o->will_topic)
        return true;
    return tl > 0 && tl <= CMQTT_TOPIC_MAX && !topic_check(o->will_topic, tl, false) &&
           o->will_payload && o->will_len > 0 && o->will_len <= CMQTT_WILL_MAX &&
           o->will_qos >= 0 && o->will_qos <= 2;
}

struct cmqtt *cmqtt_new(struct loop *loop, struct modem *modem, const struct cmqtt_opts *opts,
                        const struct cmqtt_cbs *cbs, void *ctx)
{
    struct cmqtt *c;

    if (opts && opts->server && opts->tls &&
        (!opts->ca_pem || opts->ca_len == 0 || opts->ca_len > CMQTT_CA_MAX)) {
        /* Without a CA the module would accept any server: refuse rather
         * than give a false sense of security. */
        log_error("remote.tls needs remote.ca_file: a PEM CA certificate of at most %d bytes",
                  CMQTT_CA_MAX);
        return NULL;
    }
    if (opts && opts->server && opts->tls && (opts->cert_pem || opts->key_pem) &&
        (!opts->cert_pem || !opts->key_pem || opts->cert_len == 0 || opts->key_len == 0 ||
         opts->cert_len > CMQTT_CERT_MAX || opts->key_len > CMQTT_CERT_MAX)) {
        log_error("remote.cert_file and remote.key_file: both, PEM, at most %d bytes each",
                  CMQTT_CERT_MAX);
        return NULL;
    }
    if (opts && opts->server && !will_ok(opts)) {
        log_error("remote.will: a topic name, a message of 1-%d bytes and a qos of 0-2",
                  CMQTT_WILL_MAX);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->modem = modem;
    if (cbs)
        c->cbs = *cbs;
    c->ctx = ctx;
    c->tail = &c->queue;
    c->state = CMQTT_DISABLED;
    if (!opts || !opts->server)
        return c;   /* no "remote": every command answers unavailable */
    c->opt = *opts;
    if (c->opt.backoff_min_ms <= 0)
        c->opt.backoff_min_ms = 1000;
    if (c->opt.backoff_max_ms < c->opt.backoff_min_ms)
        c->opt.backoff_max_ms = c->opt.backoff_min_ms > 60000 ? c->opt.backoff_min_ms : 60000;
    c->backoff_ms = c->opt.backoff_min_ms;
    for (size_t i = 0; i < opts->n_subs && c->n_subs < CMQTT_MAX_SUBS; i++) {
        char *t = strdup(opts->subs[i].topic);
        if (!t) {
            cmqtt_free(c);
            return NULL;
        }
        c->subs[c->n_subs++] = (struct sub){ t, opts->subs[i].qos };
    }
    c->run = cmqtt_run_new(c);
    if (!c->run ||
        at_chat_add_urcs(modem_chat(modem), urcs, sizeof(urcs) / sizeof(urcs[0]), c) < 0) {
        cmqtt_free(c);
        return NULL;
    }
    c->state = CMQTT_DISCONNECTED;
    return c;
}

void cmqtt_free(struct cmqtt *c)
{
    if (!c)
        return;
    loop_cancel_timer(c->loop, c->retry_timer);
    cmqtt_rx_reset(c);
    cmqtt_job_free(c->cur);
    at_script_run_free(c->run);
    while (c->queue) {
        struct job *j = c->queue;
        c->queue = j->next;
        cmqtt_job_free(j);
    }
    for (size_t i = 0; i < c->n_subs; i++)
        free(c->subs[i].topic);
    free(c);
}
