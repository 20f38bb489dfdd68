/* The broker link's requests (see link_int.h for the other files): each
 * publish, subscribe and unsubscribe handed to paho as a struct op, the
 * window of publishes in paho's hands and the queue behind it, and the
 * acks to the caller. Connecting and the events are other files'. */
#include "mqtt/link_int.h"

#include "core/log.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void pump(struct mqtt_link *l);

int link_errno_from_paho(int rc)
{
    switch (rc) {
    case MQTTASYNC_SUCCESS:
        return 0;
    case MQTTASYNC_DISCONNECTED:
        return -ENOTCONN;
    case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
    case MQTTASYNC_MAX_BUFFERED_MESSAGES:
        return -EAGAIN;
    case MQTTASYNC_BAD_PROTOCOL:
        return -EPROTONOSUPPORT;
    case -99:   /* PAHO_MEMORY_ERROR, not in the public header */
        return -ENOMEM;
    case MQTTASYNC_BAD_UTF8_STRING:
    case MQTTASYNC_NULL_PARAMETER:
    case MQTTASYNC_TOPICNAME_TRUNCATED:
    case MQTTASYNC_BAD_STRUCTURE:
    case MQTTASYNC_BAD_QOS:
    case MQTTASYNC_BAD_MQTT_OPTION:
    case MQTTASYNC_WRONG_MQTT_VERSION:
    case MQTTASYNC_0_LEN_WILL_TOPIC:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static void ops_insert(struct mqtt_link *l, struct op *op)
{
    op->next = NULL;
    op->prev = l->ops_tail;
    if (l->ops_tail)
        l->ops_tail->next = op;
    else
        l->ops_head = op;
    l->ops_tail = op;
    l->n_ops++;
}

static void ops_remove(struct mqtt_link *l, struct op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        l->ops_head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        l->ops_tail = op->prev;
    l->n_ops--;
}

struct op *link_op_new(struct mqtt_link *l, enum op_kind kind, const char *topic)
{
    size_t tlen = topic ? strlen(topic) + 1 : 0;
    struct op *op = calloc(1, sizeof(*op) + tlen);
    if (!op)
        return NULL;
    op->link = l;
    op->kind = kind;
    op->ev.type = EV_OP_DONE;
    if (topic)
        memcpy(op->topic, topic, tlen);
    ops_insert(l, op);
    return op;
}

void link_op_drop(struct mqtt_link *l, struct op *op)
{
    ops_remove(l, op);
    free(op);
}

/* Reports an op's ack once. After mqtt_link_free every ack gets
 * -ECANCELED, whatever paho said. */
void link_op_report(struct mqtt_link *l, struct op *op, int status)
{
    mqtt_link_ack_cb ack = op->ack;
    if (!ack)
        return;
    op->ack = NULL;
    ack(op->ack_ctx, l->dead ? -ECANCELED : status);
}

static void fill_response_options(struct mqtt_link *l, MQTTAsync_responseOptions *ro,
                                  struct op *op)
{
    ro->context = op;
    if (l->version == MQTTVERSION_5) {
        ro->onSuccess5 = link_on_op_success5;
        ro->onFailure5 = link_on_op_failure5;
    } else {
        ro->onSuccess = link_on_op_success;
        ro->onFailure = link_on_op_failure;
    }
}


void link_handle_op(struct mqtt_link *l, struct op *op)
{
    switch (op->kind) {
    case OP_PUBLISH:
        if (op->windowed) {
            op->windowed = false;
            l->win_all--;
            if (op->qos > 0)
                l->win_acked--;
        }
        link_op_report(l, op, op->status);
        break;
    case OP_SUBSCRIBE:
        if (op->status < 0 && !l->dead)
            log_error("mqtt: the broker refused the subscription to %s: %s", op->topic,
                      strerror(-op->status));
        else if (!l->dead)
            log_debug("mqtt: subscribed to %s", op->topic);
        link_op_report(l, op, op->status);
        break;
    case OP_UNSUBSCRIBE:
        if (op->status < 0 && !l->dead)
            log_warn("mqtt: unsubscribing from %s failed: %s", op->topic,
                     strerror(-op->status));
        else if (!l->dead)
            log_debug("mqtt: unsubscribed from %s", op->topic);
        link_op_report(l, op, op->status);
        break;
    case OP_DISCONNECT:
        l->stop_disconnect_done = true;
        break;
    }
    bool was_publish = op->kind == OP_PUBLISH;
    link_op_drop(l, op);
    if (was_publish)
        pump(l);
}

bool link_topic_name_ok(const char *topic)
{
    return topic && topic[0] && !strpbrk(topic, "+#");
}


/* A subscribe or unsubscribe; ack (optional) gets the broker's answer. */
static int sub_op(struct mqtt_link *l, enum op_kind kind, const char *topic, int qos,
                  mqtt_link_ack_cb ack, void *ack_ctx)
{
    if (!l || !topic || !topic[0] || qos < 0 || qos > 2)
        return -EINVAL;
    if (l->dead || l->state != LS_UP)
        return -ENOTCONN;
    if (l->n_ops >= LINK_MAX_OPS)
        return -EAGAIN;
    struct op *op = link_op_new(l, kind, topic);
    if (!op)
        return -ENOMEM;
    op->ack = ack;
    op->ack_ctx = ack_ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    fill_response_options(l, &ro, op);
    int rc;
    if (kind == OP_SUBSCRIBE) {
        /* MQTT 5: a message published with retain keeps its flag when it
         * is delivered live, so a retained command is recognised whenever
         * it comes, not only at subscribe time (3.1.1 clears it). */
        if (l->connected_version == MQTTVERSION_5)
            ro.subscribeOptions.retainAsPublished = 1;
        rc = MQTTAsync_subscribe(l->client, topic, qos, &ro);
    } else {
        rc = MQTTAsync_unsubscribe(l->client, topic, &ro);
    }
    if (rc != MQTTASYNC_SUCCESS) {
        /* Not queued: paho will not call back for it. */
        op->ack = NULL;
        link_op_drop(l, op);
        return link_errno_from_paho(rc);
    }
    return 0;
}

int mqtt_link_subscribe(struct mqtt_link *l, const char *topic, int qos)
{
    return sub_op(l, OP_SUBSCRIBE, topic, qos, NULL, NULL);
}

int mqtt_link_subscribe_acked(struct mqtt_link *l, const char *topic, int qos,
                              mqtt_link_ack_cb ack, void *ack_ctx)
{
    return sub_op(l, OP_SUBSCRIBE, topic, qos, ack, ack_ctx);
}

int mqtt_link_unsubscribe(struct mqtt_link *l, const char *topic, mqtt_link_ack_cb ack,
                          void *ack_ctx)
{
    return sub_op(l, OP_UNSUBSCRIBE, topic, 0, ack, ack_ctx);
}

/* Hands one publish to paho. 0 or -errno; the ack is not called then. */
static int submit(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                  int qos, bool retain, const uint8_t *correlation, size_t correlation_len,
                  mqtt_link_ack_cb ack, void *ack_ctx)
{
    struct op *op = link_op_new(l, OP_PUBLISH, NULL);
    if (!op)
        return -ENOMEM;
    op->ack = ack;
    op->ack_ctx = ack_ctx;
    op->qos = qos;

    MQTTAsync_message msg = MQTTAsync_message_initializer;
    /* paho copies the payload; it only lacks const. */
    msg.payload = len ? (void *)(uintptr_t)payload : (void *)(uintptr_t)"";
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retain;
    if (l->version == MQTTVERSION_5 && correlation && correlation_len > 0) {
        MQTTProperty cd = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
        cd.value.data.data = (char *)(uintptr_t)correlation;
        cd.value.data.len = (int)correlation_len;
        if (MQTTProperties_add(&msg.properties, &cd) != 0) {
            link_op_drop(l, op);
            return -ENOMEM;
        }
    }

    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    fill_response_options(l, &ro, op);
    /* op is in l->ops before paho can call back: the callback only queues
     * it, and the queue is read on this thread after we return. */
    int rc = MQTTAsync_sendMessage(l->client, topic, &msg, &ro);
    MQTTProperties_free(&msg.properties);
    if (rc != MQTTASYNC_SUCCESS) {
        link_op_drop(l, op);
        return link_errno_from_paho(rc);
    }
    op->windowed = true;
    l->win_all++;
    if (qos > 0)
        l->win_acked++;
    return 0;
}

static bool window_open(const struct mqtt_link *l, int qos)
{
    return l->win_all < LINK_WINDOW_MAX && (qos == 0 || l->win_acked < l->win_acked_max);
}

/* After a loss the old client's answers no longer count: its publishes
 * were failed, and a new client starts empty. */
void link_window_reset(struct mqtt_link *l)
{
    for (struct op *op = l->ops_head; op; op = op->next)
        op->windowed = false;
    l->win_all = 0;
    l->win_acked = 0;
}

static int pend_add(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                    int qos, bool retain, const uint8_t *correlation, size_t correlation_len,
                    mqtt_link_ack_cb ack, void *ack_ctx)
{
    size_t tlen = strlen(topic) + 1;
    size_t bytes = sizeof(struct pend) + tlen + len + correlation_len;
    if (l->pend_bytes + bytes > LINK_MAX_QUEUED_OUT_BYTES)
        return -ENOBUFS;
    struct pend *p = malloc(bytes);
    if (!p)
        return -ENOMEM;
    unsigned char *d = p->data;
    p->next = NULL;
    p->bytes = bytes;
    p->qos = qos;
    p->retain = retain;
    p->len = len;
    p->corr_len = correlation_len;
    p->ack = ack;
    p->ack_ctx = ack_ctx;
    p->topic = (char *)d;
    memcpy(d, topic, tlen);
    d += tlen;
    p->payload = d;
    if (len)
        memcpy(d, payload, len);
    d += len;
    p->corr = correlation_len ? d : NULL;
    if (correlation_len)
        memcpy(d, correlation, correlation_len);
    *l->pend_tail = p;
    l->pend_tail = &p->next;
    l->pend_bytes += bytes;
    return 0;
}

static struct pend *pend_pop(struct mqtt_link *l)
{
    struct pend *p = l->pend_head;
    if (!p)
        return NULL;
    l->pend_head = p->next;
    if (!l->pend_head)
        l->pend_tail = &l->pend_head;
    l->pend_bytes -= p->bytes;
    return p;
}

/* Fails every queued publish (connection lost, link freed). An ack may
 * publish again: it is refused then (not connected) or queued anew after
 * the ones failed here, which are already off the list. */
void link_pend_fail_all(struct mqtt_link *l, int status)
{
    struct pend *head = l->pend_head;
    l->pend_head = NULL;
    l->pend_tail = &l->pend_head;
    l->pend_bytes = 0;
    while (head) {
        struct pend *p = head;
        head = p->next;
        if (p->ack)
            p->ack(p->ack_ctx, l->dead ? -ECANCELED : status);
        free(p);
    }
}

/* Moves queued publishes to paho while the window has room. */
static void pump(struct mqtt_link *l)
{
    while (l->pend_head && l->client && (l->state == LS_UP || l->state == LS_STOPPING) &&
           window_open(l, l->pend_head->qos)) {
        struct pend *p = pend_pop(l);
        int rc = submit(l, p->topic, p->payload, p->len, p->qos, p->retain, p->corr,
                        p->corr_len, p->ack, p->ack_ctx);
        if (rc < 0 && p->ack)
            p->ack(p->ack_ctx, l->dead ? -ECANCELED : rc);
        free(p);
    }
}

/* In order: straight to paho when nothing waits and the window has room,
 * else behind what waits. */
int link_publish_op(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                    int qos, bool retain, const uint8_t *correlation, size_t correlation_len,
                    mqtt_link_ack_cb ack, void *ack_ctx)
{
    if (!l->pend_head && window_open(l, qos))
        return submit(l, topic, payload, len, qos, retain, correlation, correlation_len, ack,
                      ack_ctx);
    return pend_add(l, topic, payload, len, qos, retain, correlation, correlation_len, ack,
                    ack_ctx);
}

int mqtt_link_publish(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                      int qos, bool retain, const uint8_t *correlation, size_t correlation_len,
                      mqtt_link_ack_cb ack, void *ack_ctx)
{
    if (!l || !link_topic_name_ok(topic) || qos < 0 || qos > 2 || (len && !payload) ||
        (correlation_len && !correlation) || correlation_len > 65535)
        return -EINVAL;
    if (len > LINK_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (l->dead || l->state != LS_UP)
        return -ENOTCONN;
    return link_publish_op(l, topic, payload, len, qos, retain, correlation, correlation_len, ack,
                           ack_ctx);
}

