/* The broker link's private parts, shared by its files (see link.h for
 * what the link does):
 *   link.c         the life cycle: mqtt_link_new, _stop, _free
 *   link_events.c  paho's threads: their callbacks, the event queue into
 *                  the loop, and the loop's dispatch of those events
 *   link_conn.c    the connection: the URI, the paho client, the connect
 *                  options (session, will, TLS), connect and loss events,
 *                  reconnecting, TCP_NODELAY
 *   link_ops.c     requests to paho (publish, subscribe, unsubscribe), the
 *                  publish window and queue, and their acks
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
 */
#ifndef M2M_MQTT_LINK_INT_H
#define M2M_MQTT_LINK_INT_H

#include "mqtt/link.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
    const char *log_tag;          /* log_tag() at mqtt_link_new: paho's threads log with it */

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
    bool stop_now;                /* mqtt_links_stop: this one is being stopped */
    enum link_state stop_was;     /* its state when the stop began */
    int wake_r, wake_w;

    /* Shared with paho's threads, under lock. */
    pthread_mutex_t lock;
    struct ev *q_head, *q_tail;
    size_t q_msgs, q_bytes;
    struct conn_ev *pool_free;
    size_t pool_nfree;
    struct conn_ev pool[LINK_CONN_EVENTS];
};

/* Shared between the files above (each was a static of the one link.c). */

/* link_events.c: paho's callbacks, registered by link_conn.c and used for
 * requests by link_ops.c and mqtt_link_stop. */
void link_on_connected(void *context, char *cause);
void link_on_lost(void *context, char *cause);
void link_on_server_disconnect(void *context, MQTTProperties *props,
                               enum MQTTReasonCodes reason);
void link_on_connect_success5(void *context, MQTTAsync_successData5 *d);
void link_on_connect_failure5(void *context, MQTTAsync_failureData5 *d);
void link_on_connect_failure(void *context, MQTTAsync_failureData *d);
int link_on_tls_error(const char *str, size_t len, void *context);
void link_on_op_success5(void *context, MQTTAsync_successData5 *d);
void link_on_op_failure5(void *context, MQTTAsync_failureData5 *d);
void link_on_op_success(void *context, MQTTAsync_successData *d);
void link_on_op_failure(void *context, MQTTAsync_failureData *d);
int link_on_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m);
/* Runs the queued events on the loop thread; link_on_wake is the loop's fd
 * callback for the wake pipe. */
void link_dispatch(struct mqtt_link *l);
void link_on_wake(void *ctx, int fd, short revents);

/* link_conn.c: the connection events, and dropping the paho client. */
void link_handle_connected(struct mqtt_link *l);
void link_handle_lost(struct mqtt_link *l, const char *cause);
void link_handle_connect_failed(struct mqtt_link *l, int code, int reason, const char *msg);
void link_destroy_client(struct mqtt_link *l);

/* link_ops.c: requests and their acks. */
int link_errno_from_paho(int rc);
bool link_topic_name_ok(const char *topic);
struct op *link_op_new(struct mqtt_link *l, enum op_kind kind, const char *topic);
void link_op_drop(struct mqtt_link *l, struct op *op);
void link_op_report(struct mqtt_link *l, struct op *op, int status);
void link_handle_op(struct mqtt_link *l, struct op *op);
void link_window_reset(struct mqtt_link *l);
void link_pend_fail_all(struct mqtt_link *l, int status);
int link_publish_op(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                    int qos, bool retain, const uint8_t *correlation, size_t correlation_len,
                    mqtt_link_ack_cb ack, void *ack_ctx);

/* link.c: frees the link once no dispatch runs (link_dispatch calls it
 * when mqtt_link_free came from inside a callback). */
void link_destroy(struct mqtt_link *l);

#endif
