/* The local broker connection over paho MQTTAsync (see link.h).
 *
 * Threads. paho runs a send and a receive thread and calls back on them,
 * usually while holding its own client lock. Those callbacks only append an
 * event to a queue under link->lock and write a byte to a pipe; the loop
 * thread drains both and does everything else. link->lock is a leaf: it is
 * never held while calling paho, so a paho callback (which takes it while
 * paho's lock is held) cannot deadlock against the loop thread calling paho.
 *
 * Lifetimes. Anything handed to paho as a callback context (struct op, struct
 * client_ctx) stays allocated until paho has called back for it or the paho
 * client is destroyed; the loop thread frees it, never a paho thread. An op
 * whose ack was already reported (connection loss) stays in link->ops, with
 * its ack cleared, until paho lets go of it.
 *
 * Reconnecting is ours, not paho's automaticReconnect: paho reports a
 * CONNACK refusal only for the first attempt of each MQTTAsync_connect, so
 * with its automatic retries a bridge that started while a 3.1.1-only
 * broker was down would retry MQTT 5 forever without a word, and a wrong
 * password would never be logged. A loop timer with the same back-off (1 s
 * doubling to 30 s, jittered) calls MQTTAsync_connect for every attempt. */
#include "mqtt/link.h"

#include "core/log.h"
#include "core/loop.h"

#include <MQTTAsync.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Publishes and subscribes awaiting paho's answer, including those whose ack
 * was already failed on a connection loss. */
#define LINK_MAX_OPS 1024
/* Publishes handed to paho and not yet answered (sent for QoS 0, PUBACK or
 * PUBCOMP for 1 and 2). paho holds what exceeds the broker's Receive
 * Maximum (mosquitto: 20) in its command queue, and its send thread then
 * sleeps up to 1 s: a PUBACK does not wake it, only a new request does. It
 * also refuses a request once 100 wait there (maxBufferedMessages). So the
 * link never gives paho more QoS 1/2 publishes than the broker takes, nor
 * more publishes in all than this; the rest wait in the link's own queue
 * and go out, in order, as the answers come back. */
#define LINK_WINDOW_MAX 64
/* That queue, in bytes (copies of topic, payload, correlation data, plus
 * bookkeeping). Beyond it mqtt_link_publish returns -ENOBUFS. */
#define LINK_MAX_QUEUED_OUT_BYTES (4u * 1024 * 1024)
/* Incoming messages queued for the loop. Beyond this messageArrived returns
 * 0: paho keeps the message and offers it again later. One message larger
 * than the byte budget still passes when the queue is empty. */
#define LINK_MAX_QUEUED_MSGS 4096
#define LINK_MAX_QUEUED_BYTES (16u * 1024 * 1024)
/* Connection events in flight to the loop; see conn_ev. */
#define LINK_CONN_EVENTS 16
/* MQTT's largest remaining length, minus room for the topic and headers. */
#define LINK_MAX_PAYLOAD (268435455 - 65536 - 1024)
#define LINK_SESSION_EXPIRY_S (7 * 24 * 3600)
#define LINK_CONNECT_TIMEOUT_S 10
/* A connection lost this soon after it came up, this many times in a row,
 * without a reason from the broker: probably a client id clash. */
#define LINK_QUICK_LOSS_MS 10000
#define LINK_QUICK_LOSSES 3
#define LINK_BACKOFF_MIN_MS 1000
#define LINK_BACKOFF_MAX_MS 30000
#define LINK_TEXT_MAX 160

enum ev_type {
    EV_CONNECTED,
    EV_CONNECT_FAILED,
    EV_LOST,
    EV_SERVER_DISCONNECT,
    EV_TLS_ERROR,
    EV_MESSAGE,
    EV_OP_DONE,
};

struct ev {
    struct ev *next;
    enum ev_type type;
};

/* Connection events come from a fixed pool, so a paho callback never fails
 * to report one for want of memory. The pool cannot run dry: each attempt,
 * which only the loop starts, yields at most a failure, or a connect plus
 * a server DISCONNECT plus a loss. TLS error lines, being only logged, take
 * a slot only while half the pool is free. */
struct conn_ev {
    struct ev ev;
    unsigned gen;
    int code;
    int reason;
    char text[LINK_TEXT_MAX];
    struct conn_ev *free_next;
};

struct msg_ev {
    struct ev ev;
    struct mqtt_link_msg msg;
    size_t bytes;
    unsigned char data[];
};

enum op_kind { OP_PUBLISH, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_DISCONNECT };

/* One paho request with callbacks. Its ev is queued when paho answers. */
struct op {
    struct ev ev;
    struct op *prev, *next;
    struct mqtt_link *link;
    enum op_kind kind;
    int status;              /* written on paho's thread before queuing */
    int reason;              /* the broker's MQTT 5 reason code of a failure, or 0 */
    mqtt_link_ack_cb ack;    /* NULL once reported */
    void *ack_ctx;
    int qos;                 /* publish */
    bool windowed;           /* counted in the link's window */
    char topic[];            /* subscribe: for the log */
};

/* A publish waiting for room in the window; one allocation. */
struct pend {
    struct pend *next;
    size_t bytes;            /* counted in pend_bytes */
    int qos;
    bool retain;
    size_t len, corr_len;
    mqtt_link_ack_cb ack;
    void *ack_ctx;
    char *topic;
    uint8_t *payload;
    uint8_t *corr;
    unsigned char data[];
};

/* The context of one paho client's connection callbacks. Events carry its
 * generation, so those still queued from a client replaced by the 3.1.1
 * fallback are recognised and dropped. */
struct client_ctx {
    struct mqtt_link *link;
    unsigned gen;
    /* The broker's Receive Maximum from its CONNACK (0: none given).
     * Written on paho's thread before the connected event is queued, read
     * on the loop thread after taking it: the queue's lock orders them. */
    unsigned recv_max;
};

enum link_state {
    LS_IDLE,        /* not started */
    LS_CONNECTING,  /* MQTTAsync_connect issued */
    LS_UP,
    LS_BACKOFF,     /* waiting for the retry timer */
    LS_STOPPING,
    LS_STOPPED,
};

struct mqtt_link {
    struct loop *loop;
    struct mqtt_link_cbs cbs;
    void *ctx;

    /* Immutable after mqtt_link_new; persist and its ctx are read by paho's
     * receive thread. */
    char *uri, *client_id, *username, *password, *ca_file, *will_topic;
    int keepalive;
    int (*persist)(void *ctx, const char *topic, const void *payload, size_t len,
                   bool redelivered, uint64_t *seq);
    void *persist_ctx;

    /* Loop thread only. */
    char *paho_uri;
    bool tls;
    MQTTAsync client;
    struct client_ctx *cctx;
    unsigned gen;
    int version;             /* MQTTVERSION_5 or MQTTVERSION_3_1_1 */
    int connected_version;   /* 0 before the first connection */
    enum link_state state;
    uint64_t retry_timer;
    int64_t backoff_ms;
    uint32_t rng;
    int server_reason;       /* reason of the broker's DISCONNECT, or -1 */
    int64_t up_since;        /* when the connection came up (monotonic ms) */
    unsigned quick_losses;   /* lost within LINK_QUICK_LOSS_MS of coming up, in a row */
    int last_fail;           /* last connect failure code, to quieten repeats */
    struct op *ops_head, *ops_tail;
    size_t n_ops;
    struct pend *pend_head, **pend_tail;
    size_t pend_bytes;
    unsigned win_all;        /* publishes in paho's hands, all QoS */
    unsigned win_acked;      /* of those, QoS 1/2 */
    unsigned win_acked_max;  /* QoS 1/2 allowed in paho's hands at once */
    int broker_port;         /* for finding paho's socket (TCP_NODELAY) */
    bool broker_addr_known;  /* the URI's host is a numeric address */
    struct sockaddr_storage broker_addr;
    struct ev *work_head, *work_tail;
    int dispatch_depth;
    bool dead;               /* mqtt_link_free called: no more user callbacks */
    bool free_pending;
    bool stop_offline_done, stop_disconnect_done;
    int wake_r, wake_w;

    /* Shared with paho's threads, under lock. */
    pthread_mutex_t lock;
    struct ev *q_head, *q_tail;
    size_t q_msgs, q_bytes;
    struct conn_ev *pool_free;
    size_t pool_nfree;
    struct conn_ev pool[LINK_CONN_EVENTS];
};

static void dispatch(struct mqtt_link *l);
static void link_destroy(struct mqtt_link *l);
static int do_connect(struct mqtt_link *l);
static void pump(struct mqtt_link *l);
static void pend_fail_all(struct mqtt_link *l, int status);
static void window_reset(struct mqtt_link *l);

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

static void on_connected(void *context, char *cause)
{
    (void)cause;
    post_conn(context, EV_CONNECTED, 0, 0, NULL);
}

static void on_lost(void *context, char *cause)
{
    post_conn(context, EV_LOST, 0, 0, cause);
}

static void on_server_disconnect(void *context, MQTTProperties *props,
                                 enum MQTTReasonCodes reason)
{
    (void)props;
    post_conn(context, EV_SERVER_DISCONNECT, 0, (int)reason, NULL);
}

/* Runs on paho's thread just before on_connected (same thread, same
 * CONNACK). */
static void on_connect_success5(void *context, MQTTAsync_successData5 *d)
{
    struct client_ctx *cc = context;
    cc->recv_max = 0;
    if (d && MQTTProperties_hasProperty(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        int v = MQTTProperties_getNumericValue(&d->properties,
                                               MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        cc->recv_max = v > 0 ? (unsigned)v : 0;
    }
}

static void on_connect_failure5(void *context, MQTTAsync_failureData5 *d)
{
    post_conn(context, EV_CONNECT_FAILED, d ? d->code : MQTTASYNC_FAILURE,
              d ? (int)d->reasonCode : 0, d ? d->message : NULL);
}

static void on_connect_failure(void *context, MQTTAsync_failureData *d)
{
    post_conn(context, EV_CONNECT_FAILED, d ? d->code : MQTTASYNC_FAILURE, 0,
              d ? d->message : NULL);
}

static int on_tls_error(const char *str, size_t len, void *context)
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

static void on_op_success5(void *context, MQTTAsync_successData5 *d)
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

static void on_op_failure5(void *context, MQTTAsync_failureData5 *d)
{
    struct op *op = context;

    op->reason = d ? (int)d->reasonCode : 0;
    op_done(op, d ? failure_status(d->code, (int)d->reasonCode) : -EIO);
}

static void on_op_success(void *context, MQTTAsync_successData *d)
{
    (void)d;
    op_done(context, 0);
}

static void on_op_failure(void *context, MQTTAsync_failureData *d)
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
static int on_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m)
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

/* ---- helpers (loop thread) --------------------------------------------- */

static int errno_from_paho(int rc)
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

static const char *version_name(int v)
{
    return v == MQTTVERSION_5 ? "5" : "3.1.1";
}

/* What a CONNACK code or paho failure means, for the log. A 3.1.1 broker
 * answers an MQTT 5 CONNECT with a 3.1.1 CONNACK (codes 1-5); MQTT 5
 * refusals are >= 0x80. */
static const char *connect_failure_text(int code, int reason, const char *msg, char *buf,
                                        size_t n)
{
    static const char *const v3[] = {
        NULL, "unacceptable protocol version", "client identifier rejected",
        "server unavailable", "bad user name or password", "not authorized",
    };
    int rc = reason >= 0x80 ? reason : code;
    if (rc >= 1 && rc <= 5)
        return v3[rc];
    if (rc >= 0x80) {
        const char *s = MQTTReasonCode_toString((enum MQTTReasonCodes)rc);
        return s ? s : "refused";
    }
    if (msg && msg[0])
        snprintf(buf, n, "%s", msg);
    else
        snprintf(buf, n, "network error (paho %d)", code);
    return buf;
}

static bool is_protocol_refusal(int code, int reason)
{
    return code == 1 || code == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION ||
           reason == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION;
}

/* mqtt://host[:port] -> tcp://host:port and the like; host may be [v6]. */
static int parse_uri(const char *uri, char **out, bool *tls)
{
    static const struct {
        const char *scheme, *paho;
        int port;
        bool tls;
    } schemes[] = {
        { "mqtt://", "tcp://", 1883, false },
        { "tcp://", "tcp://", 1883, false },
        { "mqtts://", "ssl://", 8883, true },
        { "ssl://", "ssl://", 8883, true },
    };

    *out = NULL;
    *tls = false;
    if (!uri)
        return -EINVAL;
    if (strncmp(uri, "unix://", 7) == 0) {
        const char *path = uri + 7;
        if (path[0] != '/' || path[1] == '\0')
            return -EINVAL;
        *out = strdup(uri);
        return *out ? 0 : -ENOMEM;
    }

    size_t i;
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(uri, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
            break;
    if (i == sizeof(schemes) / sizeof(schemes[0]))
        return -EINVAL;

    const char *host = uri + strlen(schemes[i].scheme);
    size_t len = strlen(host);
    if (len > 0 && host[len - 1] == '/')
        len--;
    /* No path, query, user info or spaces: credentials come from the
     * config, and a URI is logged. */
    if (len == 0 || strcspn(host, "/?#@ \t") < len)
        return -EINVAL;

    const char *port_str = NULL;
    size_t host_len;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', len);
        if (!close || close == host + 1)
            return -EINVAL;
        host_len = (size_t)(close - host) + 1;
        if (host_len < len) {
            if (host[host_len] != ':')
                return -EINVAL;
            port_str = host + host_len + 1;
        }
    } else {
        const char *colon = memchr(host, ':', len);
        host_len = colon ? (size_t)(colon - host) : len;
        if (colon)
            port_str = colon + 1;
        if (host_len == 0)
            return -EINVAL;
    }

    long port = schemes[i].port;
    if (port_str) {
        size_t plen = len - (size_t)(port_str - host);
        if (plen == 0 || plen > 5 || strspn(port_str, "0123456789") < plen)
            return -EINVAL;
        port = strtol(port_str, NULL, 10);
        if (port < 1 || port > 65535)
            return -EINVAL;
    }

    size_t n = strlen(schemes[i].paho) + host_len + 8;
    *out = malloc(n);
    if (!*out)
        return -ENOMEM;
    snprintf(*out, n, "%s%.*s:%ld", schemes[i].paho, (int)host_len, host, port);
    *tls = schemes[i].tls;
    return 0;
}

/* The port and, when the host is a numeric address, the address of a
 * tcp:// or ssl:// URI as parse_uri wrote it; for finding paho's socket. */
static void note_broker(struct mqtt_link *l)
{
    const char *u = l->paho_uri, *host = strstr(u, "://");
    const char *colon = strrchr(u, ':');
    char h[64];

    l->broker_port = 0;
    l->broker_addr_known = false;
    if (strncmp(u, "unix://", 7) == 0 || !host || !colon || colon < host + 3)
        return;
    host += 3;
    l->broker_port = atoi(colon + 1);
    size_t n = (size_t)(colon - host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(h))
        return;
    memcpy(h, host, n);
    h[n] = '\0';
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l->broker_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->broker_addr;
    memset(&l->broker_addr, 0, sizeof(l->broker_addr));
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        l->broker_addr_known = true;
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        l->broker_addr_known = true;
    }
}

/* Whether peer is the broker: its port, and its address when the URI gave
 * one (an IPv4 peer may show as v4-mapped IPv6). */
static bool is_broker_peer(const struct mqtt_link *l, const struct sockaddr_storage *peer)
{
    const struct sockaddr_in *b4 = (const struct sockaddr_in *)&l->broker_addr;
    const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)&l->broker_addr;

    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *p4 = (const struct sockaddr_in *)peer;
        if (ntohs(p4->sin_port) != l->broker_port)
            return false;
        return !l->broker_addr_known ||
               (b4->sin_family == AF_INET && b4->sin_addr.s_addr == p4->sin_addr.s_addr);
    }
    if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)peer;
        if (ntohs(p6->sin6_port) != l->broker_port)
            return false;
        if (!l->broker_addr_known)
            return true;
        if (b6->sin6_family == AF_INET6)
            return memcmp(&b6->sin6_addr, &p6->sin6_addr, sizeof(p6->sin6_addr)) == 0;
        return IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr) &&
               memcmp(&p6->sin6_addr.s6_addr[12], &b4->sin_addr, 4) == 0;
    }
    return false;
}

/* paho 1.3.12 leaves Nagle on and has neither an option nor a handle for
 * its socket. Nagle holds a small packet written while an earlier one is
 * unacknowledged (a result's PUBLISH right after a command's PUBACK) until
 * the broker's delayed ACK, about 40 ms. So, once connected, the socket is
 * looked up among the process's descriptors: TCP, connected to the
 * broker's port (and address, when the URI names it numerically). Another
 * such socket in this process is another MQTT link to the same broker,
 * which wants the same. Returns how many sockets were set. */
static int set_nodelay(const struct mqtt_link *l)
{
    DIR *d;
    struct dirent *de;
    int n = 0, one = 1;

    if (l->broker_port <= 0 || !(d = opendir("/proc/self/fd")))
        return 0;
    while ((de = readdir(d))) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        int type = 0, proto = 0;
        socklen_t tl = sizeof(type), pl = sizeof(proto);
        struct sockaddr_storage peer;
        socklen_t al = sizeof(peer);

        if (*end || end == de->d_name || fd < 0 || fd > INT_MAX || fd == dirfd(d))
            continue;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
            getsockopt((int)fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) < 0 ||
            proto != IPPROTO_TCP || getpeername((int)fd, (struct sockaddr *)&peer, &al) < 0 ||
            !is_broker_peer(l, &peer))
            continue;
        if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
            n++;
    }
    closedir(d);
    return n;
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

static struct op *op_new(struct mqtt_link *l, enum op_kind kind, const char *topic)
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

static void op_drop(struct mqtt_link *l, struct op *op)
{
    ops_remove(l, op);
    free(op);
}

/* Reports an op's ack once. After mqtt_link_free every ack gets
 * -ECANCELED, whatever paho said. */
static void op_report(struct mqtt_link *l, struct op *op, int status)
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
        ro->onSuccess5 = on_op_success5;
        ro->onFailure5 = on_op_failure5;
    } else {
        ro->onSuccess = on_op_success;
        ro->onFailure = on_op_failure;
    }
}

/* ---- the paho client ---------------------------------------------------- */

static void destroy_client(struct mqtt_link *l)
{
    if (!l->client)
        return;
    /* Never under l->lock: destroy fails pending requests through our
     * callbacks, on this thread, and those take the lock. */
    MQTTAsync_destroy(&l->client);
    l->client = NULL;
    free(l->cctx);
    l->cctx = NULL;
}

static int create_client(struct mqtt_link *l, int version)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.MQTTVersion = version;
    /* We report -ENOTCONN ourselves rather than have paho buffer. */
    co.sendWhileDisconnected = 0;

    struct client_ctx *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return -ENOMEM;
    cc->link = l;
    cc->gen = ++l->gen;

    MQTTAsync c = NULL;
    int rc = MQTTAsync_createWithOptions(&c, l->paho_uri, l->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        if (c)
            MQTTAsync_destroy(&c);
        free(cc);
        return errno_from_paho(rc);
    }
    rc = MQTTAsync_setCallbacks(c, cc, on_lost, on_arrived, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setConnected(c, cc, on_connected);
    if (rc == MQTTASYNC_SUCCESS && version == MQTTVERSION_5)
        rc = MQTTAsync_setDisconnected(c, cc, on_server_disconnect);
    if (rc != MQTTASYNC_SUCCESS) {
        MQTTAsync_destroy(&c);
        free(cc);
        return errno_from_paho(rc);
    }
    l->client = c;
    l->cctx = cc;
    l->version = version;
    return 0;
}

static int64_t retry_cb(void *ctx)
{
    struct mqtt_link *l = ctx;
    l->retry_timer = 0;
    if (l->state == LS_BACKOFF)
        do_connect(l);
    return 0;
}

static void schedule_retry(struct mqtt_link *l)
{
    /* xorshift32: +-20% jitter keeps a fleet of bridges from reconnecting
     * to a restarted broker in lockstep. */
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 17;
    l->rng ^= l->rng << 5;
    int64_t base = l->backoff_ms;
    int64_t delay = base * 8 / 10 + (int64_t)(l->rng % (uint32_t)(base * 4 / 10 + 1));
    l->backoff_ms = base * 2 > LINK_BACKOFF_MAX_MS ? LINK_BACKOFF_MAX_MS : base * 2;

    loop_cancel_timer(l->loop, l->retry_timer);
    l->retry_timer = 0;
    l->state = LS_BACKOFF;
    if (loop_add_timer(l->loop, delay, retry_cb, l, &l->retry_timer) < 0)
        log_error("mqtt: cannot schedule a reconnect; the broker link stays down");
    else
        log_debug("mqtt: reconnecting in %lld ms", (long long)delay);
}

static int do_connect(struct mqtt_link *l)
{
    MQTTAsync_connectOptions co;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;

    if (l->version == MQTTVERSION_5) {
        MQTTAsync_connectOptions v5 = MQTTAsync_connectOptions_initializer5;
        co = v5;
        /* Clean start off plus a session that outlives us: the broker
         * queues QoS 1 commands while the bridge restarts. */
        co.cleanstart = 0;
        MQTTProperty expiry = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
        expiry.value.integer4 = LINK_SESSION_EXPIRY_S;
        if (MQTTProperties_add(&props, &expiry) != 0)
            log_warn("mqtt: cannot set the session expiry; the session ends at disconnect");
        co.connectProperties = &props;
        co.onSuccess5 = on_connect_success5;
        co.onFailure5 = on_connect_failure5;
    } else {
        MQTTAsync_connectOptions v3 = MQTTAsync_connectOptions_initializer;
        co = v3;
        co.cleansession = 0;
        co.onFailure = on_connect_failure;
    }
    co.MQTTVersion = l->version;
    co.context = l->cctx;
    co.keepAliveInterval = l->keepalive;
    co.connectTimeout = LINK_CONNECT_TIMEOUT_S;
    co.automaticReconnect = 0;
    co.username = l->username;
    co.password = l->password;
    if (l->will_topic) {
        will.topicName = l->will_topic;
        will.message = "offline";
        will.retained = 1;
        will.qos = 1;
        co.will = &will;
    }
    if (l->tls) {
        ssl.trustStore = l->ca_file;      /* NULL: the system's trust store */
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;                   /* host name against the certificate */
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = l->cctx;
        co.ssl = &ssl;
    }

    l->state = LS_CONNECTING;
    int rc = MQTTAsync_connect(l->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("mqtt: cannot start connecting to %s (paho %d)", l->uri, rc);
        schedule_retry(l);
        return errno_from_paho(rc);
    }
    log_debug("mqtt: connecting to %s (MQTT %s)", l->uri, version_name(l->version));
    return 0;
}

/* ---- events (loop thread) ------------------------------------------------ */

static void fail_acks(struct mqtt_link *l, int status)
{
    /* An ack may publish; it gets -ENOTCONN since the state already says
     * down, so the list does not grow while we walk it. */
    for (struct op *op = l->ops_head, *next; op; op = next) {
        next = op->next;
        if (op->kind != OP_DISCONNECT)
            op_report(l, op, status);
    }
}

static void handle_connected(struct mqtt_link *l)
{
    if (l->state == LS_STOPPING || l->state == LS_STOPPED)
        return;
    l->state = LS_UP;
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    l->server_reason = -1;
    l->up_since = loop_now_ms();
    l->last_fail = 0;
    l->connected_version = l->version;
    /* One QoS 1/2 slot stays free for paho: a SUBSCRIBE waits behind a
     * full Receive Maximum just like a publish, and sleeps as long. */
    unsigned rm = l->cctx && l->cctx->recv_max ? l->cctx->recv_max : LINK_WINDOW_MAX;
    rm = rm > LINK_WINDOW_MAX ? LINK_WINDOW_MAX : rm;
    l->win_acked_max = rm > 1 ? rm - 1 : 1;
    int n = set_nodelay(l);
    log_info("mqtt: connected to %s (MQTT %s) as %s", l->uri, version_name(l->version),
             l->client_id);
    if (n == 0 && l->broker_port > 0)
        log_warn("mqtt: found no socket to the broker to set TCP_NODELAY on (is /proc "
                 "mounted?); each result may wait about 40 ms");
    log_debug("mqtt: %u QoS 1/2 publishes in flight at most; TCP_NODELAY set on %d socket(s)",
              l->win_acked_max, n);
    if (!l->dead && l->cbs.connected)
        l->cbs.connected(l->ctx);
}

static void handle_lost(struct mqtt_link *l, const char *cause)
{
    char reason[LINK_TEXT_MAX + 96];
    bool was_up = l->state == LS_UP;
    if (was_up && l->server_reason < 0 && loop_now_ms() - l->up_since < LINK_QUICK_LOSS_MS)
        l->quick_losses++;
    else if (was_up)
        l->quick_losses = 0;
    if (l->server_reason == MQTTREASONCODE_SESSION_TAKEN_OVER ||
        (l->quick_losses >= LINK_QUICK_LOSSES && l->quick_losses % LINK_QUICK_LOSSES == 0)) {
        /* Two clients with one id knock each other off, about once a
         * second, for as long as both run: say so, loudly. Brokers that
         * send no reason (mosquitto 2.0) show it as losses right after
         * every connect. */
        log_error("mqtt: %s %s; another client probably uses this bridge's client id '%s': give "
                  "each bridge its own mqtt.client_id (MODEM2MQTT_CLIENT_ID; the default is "
                  "modem2mqtt-<base topic>)",
                  l->uri,
                  l->server_reason == MQTTREASONCODE_SESSION_TAKEN_OVER
                      ? "gave this bridge's session to another client"
                      : "closed the connection right after accepting it, again and again",
                  l->client_id);
    }
    if (l->server_reason == MQTTREASONCODE_SESSION_TAKEN_OVER) {
        snprintf(reason, sizeof(reason), "broker disconnected: session taken over");
    } else if (l->server_reason >= 0) {
        const char *s = MQTTReasonCode_toString((enum MQTTReasonCodes)l->server_reason);
        snprintf(reason, sizeof(reason), "broker disconnected: %s", s ? s : "unknown reason");
    } else {
        snprintf(reason, sizeof(reason), "connection lost%s%s", cause[0] ? ": " : "", cause);
    }
    l->server_reason = -1;

    bool stopping = l->state == LS_STOPPING || l->state == LS_STOPPED;
    if (!stopping)
        l->state = LS_BACKOFF;
    log_warn("mqtt: %s", reason);
    /* paho keeps unacknowledged QoS 1/2 publishes for the session and may
     * still deliver them after reconnecting; the caller is told now and
     * retries, which is at-least-once. */
    fail_acks(l, -ENOTCONN);
    pend_fail_all(l, -ENOTCONN);
    window_reset(l);
    if (was_up && !l->dead && l->cbs.disconnected)
        l->cbs.disconnected(l->ctx, reason);
    if (stopping || l->dead)
        return;
    /* Reconnect on a fresh paho client. paho 1.3.12 can free a publish
     * command queued before the loss while another of its threads still
     * reads it, once MQTTAsync_connect is called again on the same client
     * (ASan: heap-use-after-free inside paho, seen under test load). A new
     * client carries nothing over; the broker keeps our session by client
     * id, the acks were failed above, and subscriptions are renewed on
     * every connect. */
    destroy_client(l);
    int rc = create_client(l, l->version);
    if (rc < 0) {
        log_error("mqtt: cannot create a client to reconnect: %s", strerror(-rc));
        l->state = LS_STOPPED;
        return;
    }
    schedule_retry(l);
}

static void handle_connect_failed(struct mqtt_link *l, int code, int reason, const char *msg)
{
    char buf[LINK_TEXT_MAX + 32];
    if (l->state != LS_CONNECTING)
        return;   /* stopping, or a stale attempt */
    const char *why = connect_failure_text(code, reason, msg, buf, sizeof(buf));

    if (l->version == MQTTVERSION_5 && is_protocol_refusal(code, reason)) {
        /* The version is fixed when a paho client is created. */
        log_warn("mqtt: %s refuses MQTT 5 (%s); falling back to 3.1.1, without "
                 "response topics", l->uri, why);
        destroy_client(l);
        int rc = create_client(l, MQTTVERSION_3_1_1);
        if (rc < 0) {
            log_error("mqtt: cannot create a 3.1.1 client: %s", strerror(-rc));
            l->state = LS_STOPPED;
            return;
        }
        do_connect(l);
        return;
    }

    int key = reason >= 0x80 ? reason : code;
    if (key != l->last_fail)
        log_warn("mqtt: cannot connect to %s: %s", l->uri, why);
    else
        log_debug("mqtt: cannot connect to %s: %s", l->uri, why);
    l->last_fail = key;
    schedule_retry(l);
}

static void handle_op(struct mqtt_link *l, struct op *op)
{
    switch (op->kind) {
    case OP_PUBLISH:
        if (op->windowed) {
            op->windowed = false;
            l->win_all--;
            if (op->qos > 0)
                l->win_acked--;
        }
        op_report(l, op, op->status);
        break;
    case OP_SUBSCRIBE:
        if (op->status < 0 && !l->dead)
            log_error("mqtt: the broker refused the subscription to %s: %s", op->topic,
                      strerror(-op->status));
        else if (!l->dead)
            log_debug("mqtt: subscribed to %s", op->topic);
        op_report(l, op, op->status);
        break;
    case OP_UNSUBSCRIBE:
        if (op->status < 0 && !l->dead)
            log_warn("mqtt: unsubscribing from %s failed: %s", op->topic,
                     strerror(-op->status));
        else if (!l->dead)
            log_debug("mqtt: unsubscribed from %s", op->topic);
        op_report(l, op, op->status);
        break;
    case OP_DISCONNECT:
        l->stop_disconnect_done = true;
        break;
    }
    bool was_publish = op->kind == OP_PUBLISH;
    op_drop(l, op);
    if (was_publish)
        pump(l);
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
        handle_op(l, (struct op *)e);
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
                handle_connected(l);
                break;
            case EV_CONNECT_FAILED:
                handle_connect_failed(l, c->code, c->reason, c->text);
                break;
            case EV_LOST:
                handle_lost(l, c->text);
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

static void dispatch(struct mqtt_link *l)
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

static void on_wake(void *ctx, int fd, short revents)
{
    (void)fd;
    (void)revents;
    dispatch(ctx);
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
    if (loop_add_fd(loop, l->wake_r, POLLIN, on_wake, l) < 0)
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

static bool topic_name_ok(const char *topic)
{
    return topic && topic[0] && !strpbrk(topic, "+#");
}

int mqtt_link_start(struct mqtt_link *l)
{
    if (!l || l->dead)
        return -EINVAL;
    if (l->state != LS_IDLE)
        return -EALREADY;

    /* A persistent session needs a client id; a will is a topic name. */
    if (!l->client_id[0] || (l->will_topic && !topic_name_ok(l->will_topic))) {
        log_error("mqtt: %s", !l->client_id[0] ? "empty client id" : "bad will topic");
        return -EINVAL;
    }
    int rc = parse_uri(l->uri, &l->paho_uri, &l->tls);
    if (rc < 0) {
        log_error("mqtt: bad broker URI '%s': expected mqtt://host[:port], "
                  "mqtts://host[:port] or unix:///path", l->uri);
        return rc;
    }
    note_broker(l);
    rc = create_client(l, MQTTVERSION_5);
    if (rc == -EPROTONOSUPPORT) {
        if (strncmp(l->uri, "unix://", 7) == 0)
            log_error("mqtt: %s: this paho library was built without unix socket "
                      "support (UNIXSOCKET); use mqtt://localhost instead", l->uri);
        else
            log_error("mqtt: %s: this paho library does not support the scheme", l->uri);
        return rc;
    }
    if (rc < 0) {
        log_error("mqtt: cannot create the client for %s: %s", l->uri, strerror(-rc));
        return rc;
    }
    do_connect(l);
    return 0;
}

bool mqtt_link_connected(const struct mqtt_link *l)
{
    return l && l->state == LS_UP;
}

int mqtt_link_protocol(const struct mqtt_link *l)
{
    return l ? l->connected_version : 0;
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
    struct op *op = op_new(l, kind, topic);
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
        op_drop(l, op);
        return errno_from_paho(rc);
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
    struct op *op = op_new(l, OP_PUBLISH, NULL);
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
            op_drop(l, op);
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
        op_drop(l, op);
        return errno_from_paho(rc);
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
static void window_reset(struct mqtt_link *l)
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
static void pend_fail_all(struct mqtt_link *l, int status)
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
static int publish_op(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
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
    if (!l || !topic_name_ok(topic) || qos < 0 || qos > 2 || (len && !payload) ||
        (correlation_len && !correlation) || correlation_len > 65535)
        return -EINVAL;
    if (len > LINK_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (l->dead || l->state != LS_UP)
        return -ENOTCONN;
    return publish_op(l, topic, payload, len, qos, retain, correlation, correlation_len, ack,
                      ack_ctx);
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
        dispatch(l);
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

void mqtt_link_stop(struct mqtt_link *l, int timeout_ms)
{
    if (!l || l->dead || l->state == LS_STOPPING || l->state == LS_STOPPED)
        return;
    if (timeout_ms < 0)
        timeout_ms = 0;
    int64_t deadline = loop_now_ms() + timeout_ms;
    enum link_state was = l->state;
    /* A callback run by wait_for may free the link: defer that to the end. */
    l->dispatch_depth++;

    loop_cancel_timer(l->loop, l->retry_timer);
    l->retry_timer = 0;
    /* From here a lost connection fails what is pending without scheduling
     * a reconnect, and a late CONNACK is ignored. */
    l->state = LS_STOPPING;

    if (was == LS_UP && l->will_topic) {
        l->stop_offline_done = false;
        int rc = publish_op(l, l->will_topic, "offline", 7, 1, true, NULL, 0, stop_offline_ack,
                            l);
        if (rc < 0)
            log_warn("mqtt: cannot publish offline: %s", strerror(-rc));
        else if (!wait_for(l, &l->stop_offline_done, deadline))
            log_warn("mqtt: offline not acknowledged within %d ms", timeout_ms);
        else
            log_debug("mqtt: offline acknowledged");
    }

    if (l->client && (was == LS_UP || was == LS_CONNECTING)) {
        struct op *op = op_new(l, OP_DISCONNECT, NULL);
        if (op) {
            /* The v5 initializer: onSuccess5/onFailure5 exist from struct
             * version 1 on. */
            MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
            MQTTAsync_disconnectOptions d3 = MQTTAsync_disconnectOptions_initializer;
            MQTTAsync_disconnectOptions d = l->version == MQTTVERSION_5 ? d5 : d3;
            int64_t left = deadline - loop_now_ms();
            /* Time for in-flight QoS 1/2 exchanges to finish. */
            d.timeout = left > 0 ? (int)left : 0;
            d.context = op;
            if (l->version == MQTTVERSION_5) {
                d.onSuccess5 = on_op_success5;
                d.onFailure5 = on_op_failure5;
            } else {
                d.onSuccess = on_op_success;
                d.onFailure = on_op_failure;
            }
            l->stop_disconnect_done = false;
            int rc = MQTTAsync_disconnect(l->client, &d);
            if (rc != MQTTASYNC_SUCCESS)
                op_drop(l, op);
            /* paho gives up on its own timeout; a little slack for it. */
            else if (!wait_for(l, &l->stop_disconnect_done, deadline + 500))
                log_warn("mqtt: disconnect did not complete within %d ms", timeout_ms);
        }
    }
    l->state = LS_STOPPED;
    log_info("mqtt: disconnected from %s", l->uri);
    if (--l->dispatch_depth == 0 && l->free_pending)
        link_destroy(l);
}

static void link_destroy(struct mqtt_link *l)
{
    l->dead = true;
    loop_cancel_timer(l->loop, l->retry_timer);
    l->retry_timer = 0;
    loop_del_fd(l->loop, l->wake_r);
    /* After this no paho thread touches the link; requests paho still held
     * were failed through our callbacks and sit in the queue. */
    destroy_client(l);
    l->dispatch_depth++;
    dispatch(l);
    l->dispatch_depth--;
    for (struct op *op = l->ops_head, *next; op; op = next) {
        next = op->next;
        op_report(l, op, -ECANCELED);
        op_drop(l, op);
    }
    pend_fail_all(l, -ECANCELED);
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
