/* The broker link's event queue (see link_int.h for the threads and the
 * other files): paho's callbacks, which run on paho's threads and only
 * turn what they got into an event on the queue, and the loop side that
 * takes the queue and hands each event to the connection (link_conn.c),
 * the requests (link_ops.c) or the owner's callbacks. */
#include "mqtt/link_int.h"

#include "core/log.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the queue: paho's threads in, the loop out ------------------------ */

static void wake(struct mqtt_link *l)
{
    static const char byte = 1;
    /* EAGAIN: the pipe is full, so the loop is due to wake anyway. */
    ssize_t n = write(l->wake_w, &byte, 1);
    (void)n;
}

static void enqueue_locked(struct mqtt_link *l, struct ev *e, bool *was_empty)
{
    e->next = NULL;
    *was_empty = l->q_head == NULL;
    if (l->q_tail)
        l->q_tail->next = e;
    else
        l->q_head = e;
    l->q_tail = e;
}

static void enqueue(struct mqtt_link *l, struct ev *e)
{
    bool was_empty;
    pthread_mutex_lock(&l->lock);
    enqueue_locked(l, e, &was_empty);
    pthread_mutex_unlock(&l->lock);
    /* Only the first event needs a byte: the loop drains the pipe before
     * taking the queue, so a later event either is taken with it or finds
     * the queue empty and writes its own byte. */
    if (was_empty)
        wake(l);
}

static struct conn_ev *conn_ev_get(struct mqtt_link *l, size_t keep_free)
{
    struct conn_ev *c = NULL;
    pthread_mutex_lock(&l->lock);
    if (l->pool_nfree > keep_free) {
        c = l->pool_free;
        l->pool_free = c->free_next;
        l->pool_nfree--;
    }
    pthread_mutex_unlock(&l->lock);
    return c;
}

static void conn_ev_put(struct mqtt_link *l, struct conn_ev *c)
{
    pthread_mutex_lock(&l->lock);
    c->free_next = l->pool_free;
    l->pool_free = c;
    l->pool_nfree++;
    pthread_mutex_unlock(&l->lock);
}

static void copy_text(char *dst, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(src, LINK_TEXT_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void post_conn(struct client_ctx *cc, enum ev_type type, int code, int reason,
                      const char *text)
{
    struct mqtt_link *l = cc->link;
    struct conn_ev *c = conn_ev_get(l, type == EV_TLS_ERROR ? LINK_CONN_EVENTS / 2 : 0);
    if (!c)
        return;
    c->ev.type = type;
    c->gen = cc->gen;
    c->code = code;
    c->reason = reason;
    copy_text(c->text, text);
    enqueue(l, &c->ev);
}

/* ---- paho callbacks (paho's threads) ------------------------------------ */

void link_on_connected(void *context, char *cause)
{
    (void)cause;
    post_conn(context, EV_CONNECTED, 0, 0, NULL);
}

void link_on_lost(void *context, char *cause)
{
    post_conn(context, EV_LOST, 0, 0, cause);
}

void link_on_server_disconnect(void *context, MQTTProperties *props,
                               enum MQTTReasonCodes reason)
{
    (void)props;
    post_conn(context, EV_SERVER_DISCONNECT, 0, (int)reason, NULL);
}

/* Runs on paho's thread just before link_on_connected (same thread, same
 * CONNACK). */
void link_on_connect_success5(void *context, MQTTAsync_successData5 *d)
{
    struct client_ctx *cc = context;
    cc->recv_max = 0;
    if (d && MQTTProperties_hasProperty(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        int v = MQTTProperties_getNumericValue(&d->properties,
                                               MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        cc->recv_max = v > 0 ? (unsigned)v : 0;
    }
}

void link_on_connect_failure5(void *context, MQTTAsync_failureData5 *d)
{
    post_conn(context, EV_CONNECT_FAILED, d ? d->code : MQTTASYNC_FAILURE,
              d ? (int)d->reasonCode : 0, d ? d->message : NULL);
}

void link_on_connect_failure(void *context, MQTTAsync_failureData *d)
{
    post_conn(context, EV_CONNECT_FAILED, d ? d->code : MQTTASYNC_FAILURE, 0,
              d ? d->message : NULL);
}

int link_on_tls_error(const char *str, size_t len, void *context)
{
    char text[LINK_TEXT_MAX];
    size_t n = len < sizeof(text) - 1 ? len : sizeof(text) - 1;
    memcpy(text, str, n);
    /* OpenSSL's lines end in a newline. */
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    text[n] = '\0';
    post_conn(context, EV_TLS_ERROR, 0, 0, text);
    return 0;
}

/* A failed request's -errno, from a v5 reason code when the broker gave one
 * (>= 0x80), else from paho's return code. */
static int failure_status(int code, int reason)
{
    if (reason >= 0x80) {
        switch (reason) {
        case MQTTREASONCODE_NOT_AUTHORIZED:
            return -EACCES;
        case MQTTREASONCODE_TOPIC_NAME_INVALID:
        case MQTTREASONCODE_TOPIC_FILTER_INVALID:
            return -EINVAL;
        case MQTTREASONCODE_PACKET_TOO_LARGE:
            return -EMSGSIZE;
        case MQTTREASONCODE_QUOTA_EXCEEDED:
            return -EDQUOT;
        default:
            return -EIO;
        }
    }
    switch (code) {
    /* paho's word for "dropped with the session or the client". */
    case MQTTASYNC_OPERATION_INCOMPLETE:
    case MQTTASYNC_DISCONNECTED:
        return -ENOTCONN;
    default:
        return -EIO;
    }
}

static void op_done(struct op *op, int status)
{
    /* A publish the broker did not refuse with a reason code failed on our
     * side of the connection (paho could not write it, the socket broke):
     * for the caller that is "not delivered, try again once connected".
     * Seen as MQTTASYNC_FAILURE when the broker dies with the publish
     * queued, racing the connection-lost callback. */
    if (op->kind == OP_PUBLISH && status == -EIO && op->reason < 0x80)
        status = -ENOTCONN;
    op->status = status;
    enqueue(op->link, &op->ev);
}

void link_on_op_success5(void *context, MQTTAsync_successData5 *d)
{
    struct op *op = context;

    /* A SUBACK/UNSUBACK may carry a failure code in a "success". */
    if (op->kind != OP_PUBLISH && d && d->reasonCode >= 0x80) {
        op->reason = (int)d->reasonCode;
        op_done(op, failure_status(MQTTASYNC_FAILURE, (int)d->reasonCode));
        return;
    }
    op_done(op, 0);
}

void link_on_op_failure5(void *context, MQTTAsync_failureData5 *d)
{
    struct op *op = context;

    op->reason = d ? (int)d->reasonCode : 0;
    op_done(op, d ? failure_status(d->code, (int)d->reasonCode) : -EIO);
}

void link_on_op_success(void *context, MQTTAsync_successData *d)
{
    (void)d;
    op_done(context, 0);
}

void link_on_op_failure(void *context, MQTTAsync_failureData *d)
{
    op_done(context, d ? failure_status(d->code, 0) : -EIO);
}

static const MQTTProperty *find_prop(MQTTAsync_message *m, enum MQTTPropertyCodes id)
{
    if (m->properties.count <= 0)
        return NULL;
    return MQTTProperties_getProperty(&m->properties, id);
}

/* Returns 1 when the message is ours (paho frees nothing more, acks it), 0
 * to have paho keep it and call again later. */
static int arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct client_ctx *cc = context;
    struct mqtt_link *l = cc->link;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

    /* A topic with a NUL inside is a protocol violation that no consumer
     * could route; drop it rather than truncate it into another topic. */
    if (memchr(topic, '\0', tlen))
        goto consumed;

    const MQTTProperty *rt = find_prop(m, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    const MQTTProperty *cd = find_prop(m, MQTTPROPERTY_CODE_CORRELATION_DATA);
    size_t rtlen = rt && rt->value.data.len > 0 ? (size_t)rt->value.data.len : 0;
    size_t cdlen = cd && cd->value.data.len > 0 ? (size_t)cd->value.data.len : 0;
    if (rtlen && memchr(rt->value.data.data, '\0', rtlen))
        rtlen = 0;

    size_t bytes = sizeof(struct msg_ev) + tlen + 1 + plen + (rtlen ? rtlen + 1 : 0) + cdlen;

    pthread_mutex_lock(&l->lock);
    bool full = l->q_msgs >= LINK_MAX_QUEUED_MSGS ||
                (l->q_msgs > 0 && l->q_bytes + bytes > LINK_MAX_QUEUED_BYTES);
    pthread_mutex_unlock(&l->lock);
    if (full)
        return 0;

    /* Allocate before persisting: a refusal after persist would have paho
     * offer the message again and the journal record it twice. */
    struct msg_ev *e = malloc(bytes);
    if (!e)
        return 0;
    unsigned char *p = e->data;
    memcpy(p, topic, tlen);
    p[tlen] = '\0';
    e->msg.topic = (const char *)p;
    p += tlen + 1;
    if (plen)
        memcpy(p, m->payload, plen);
    e->msg.payload = p;
    e->msg.len = plen;
    p += plen;
    e->msg.response_topic = NULL;
    if (rtlen) {
        memcpy(p, rt->value.data.data, rtlen);
        p[rtlen] = '\0';
        e->msg.response_topic = (const char *)p;
        p += rtlen + 1;
    }
    e->msg.correlation = NULL;
    e->msg.correlation_len = 0;
    if (cdlen) {
        memcpy(p, cd->value.data.data, cdlen);
        e->msg.correlation = p;
        e->msg.correlation_len = cdlen;
    }
    e->msg.qos = m->qos;
    e->msg.retained = m->retained != 0;
    e->msg.seq = 0;
    e->bytes = bytes;
    e->ev.type = EV_MESSAGE;

    /* Durable before paho sends the PUBACK, which it does after we return.
     * Retained messages are not commands the app runs, and the broker keeps
     * them anyway. */
    if (l->persist && !e->msg.retained) {
        uint64_t seq = 0;
        int r = l->persist(l->persist_ctx, e->msg.topic, e->msg.payload, plen, m->dup != 0, &seq);
        if (r < 0) {
            free(e);
            return 0;
        }
        if (r > 0) {
            free(e);            /* the owner has it already */
            goto consumed;
        }
        e->msg.seq = seq;
    }

    bool was_empty;
    pthread_mutex_lock(&l->lock);
    enqueue_locked(l, &e->ev, &was_empty);
    l->q_msgs++;
    l->q_bytes += bytes;
    pthread_mutex_unlock(&l->lock);
    if (was_empty)
        wake(l);

consumed:
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}


static void handle_event(struct mqtt_link *l, struct ev *e)
{
    switch (e->type) {
    case EV_MESSAGE: {
        struct msg_ev *m = (struct msg_ev *)e;
        if (!l->dead && l->cbs.message)
            l->cbs.message(l->ctx, &m->msg);
        free(m);
        break;
    }
    case EV_OP_DONE:
        link_handle_op(l, (struct op *)e);
        break;
    case EV_CONNECTED:
    case EV_CONNECT_FAILED:
    case EV_LOST:
    case EV_SERVER_DISCONNECT:
    case EV_TLS_ERROR: {
        struct conn_ev *c = (struct conn_ev *)e;
        if (c->gen == l->gen && !l->dead) {
            switch (e->type) {
            case EV_CONNECTED:
                link_handle_connected(l);
                break;
            case EV_CONNECT_FAILED:
                link_handle_connect_failed(l, c->code, c->reason, c->text);
                break;
            case EV_LOST:
                link_handle_lost(l, c->text);
                break;
            case EV_SERVER_DISCONNECT:
                log_debug("mqtt: the broker sent DISCONNECT (reason %d)", c->reason);
                l->server_reason = c->reason;
                break;
            case EV_TLS_ERROR:
                log_warn("mqtt: TLS: %s", c->text);
                break;
            default:
                break;
            }
        }
        conn_ev_put(l, c);
        break;
    }
    default:
        log_error("mqtt: unknown event %d", (int)e->type);
        break;
    }
}

void link_dispatch(struct mqtt_link *l)
{
    char buf[64];
    while (read(l->wake_r, buf, sizeof(buf)) > 0)
        ;

    pthread_mutex_lock(&l->lock);
    struct ev *head = l->q_head, *tail = l->q_tail;
    l->q_head = l->q_tail = NULL;
    l->q_msgs = 0;
    l->q_bytes = 0;
    pthread_mutex_unlock(&l->lock);

    /* A work list on the link, not the stack: a callback may re-enter
     * (mqtt_link_stop dispatches) and must see the same order. */
    if (head) {
        if (l->work_tail)
            l->work_tail->next = head;
        else
            l->work_head = head;
        l->work_tail = tail;
    }

    l->dispatch_depth++;
    struct ev *e;
    while ((e = l->work_head)) {
        l->work_head = e->next;
        if (!l->work_head)
            l->work_tail = NULL;
        handle_event(l, e);
    }
    l->dispatch_depth--;
    if (l->dispatch_depth == 0 && l->free_pending)
        link_destroy(l);
}

/* paho's threads serve every link: the persist callback's lines (the
 * journal) carry this link's instance's tag. */
int link_on_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
    const struct client_ctx *cc = context;

    log_set_tag(cc->link->log_tag);
    int r = arrived(context, topic, topic_len, m);
    log_set_tag(NULL);
    return r;
}

void link_on_wake(void *ctx, int fd, short revents)
{
    (void)fd;
    (void)revents;
    link_dispatch(ctx);
}
