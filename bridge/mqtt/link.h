/* The local broker connection: an adapter over paho MQTTAsync.
 *
 * paho calls back on its own threads. Those callbacks only copy what they
 * got into a queue and wake the loop (a pipe the loop polls); every
 * callback below runs on the loop thread, except opts.persist.
 *
 * MQTT 5 when the broker speaks it (for Response Topic / Correlation Data),
 * falling back to 3.1.1 when the broker answers CONNACK "unsupported
 * protocol version" (the link then stays on 3.1.1 until it is freed).
 * Clean session off with a 7-day session expiry, so QoS 1 commands queued
 * by the broker survive a bridge restart. Reconnects with a jittered
 * back-off from 1 s to 30 s. Last will "offline" retained QoS 1 on
 * opts.will_topic. TCP_NODELAY on the broker socket: Nagle would hold each
 * result about 40 ms for the broker's delayed ACK.
 *
 * URIs: mqtt://host[:port] (1883), mqtts://host[:port] (8883, server
 * certificate and host name verified), tcp:// and ssl:// as aliases,
 * unix:///path (only when paho was built with UNIXSOCKET; Debian's is not:
 * mqtt_link_start then returns -EPROTONOSUPPORT). */
#ifndef M2M_MQTT_LINK_H
#define M2M_MQTT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

struct mqtt_link_opts {
    const char *uri;          /* mqtt://host[:port] | mqtts://... | unix:///path */
    const char *client_id;
    const char *username;     /* NULL: none */
    const char *password;     /* NULL: none */
    const char *ca_file;      /* mqtts:// trust anchors; NULL: system default */
    int keepalive;            /* seconds */
    const char *will_topic;   /* retained will "offline" */
    /* Called on paho's thread before the message is acknowledged, so a
     * command is durable (journal) before the broker sees PUBACK (paho
     * 1.3.x sends the PUBACK after its messageArrived callback returns).
     * Optional. Not called for retained messages (the app ignores retained
     * commands, and the broker keeps them anyway).
     * Sets *seq (0: not journalled) which comes back in mqtt_link_msg.seq;
     * returns 0 to accept, 1 when the message is one the owner already
     * has (a broker redelivery, redelivered set from the DUP flag: paho
     * acknowledges it and it is not passed on), or a negative errno to
     * refuse. On refusal paho
     * keeps the message in memory and offers it again on the next packet
     * from the broker (within keepalive); it still sends the PUBACK, so a
     * refused message is not durable until a later call accepts it.
     * Runs while paho holds its client lock: it must not wait for anything
     * the loop thread holds while calling into this module. */
    int (*persist)(void *ctx, const char *topic, const void *payload, size_t len,
                   bool redelivered, uint64_t *seq);
    void *persist_ctx;
};

/* An incoming message. Strings and payload are borrowed for the call. */
struct mqtt_link_msg {
    const char *topic;
    const uint8_t *payload;   /* not NUL-terminated */
    size_t len;
    int qos;
    bool retained;
    const char *response_topic;     /* MQTT 5, or NULL */
    const uint8_t *correlation;     /* MQTT 5, or NULL */
    size_t correlation_len;
    uint64_t seq;                   /* journal id from persist, or 0 */
};

struct mqtt_link_cbs {
    void (*connected)(void *ctx);     /* each (re)connect; resubscribe here */
    void (*disconnected)(void *ctx, const char *reason);
    void (*message)(void *ctx, const struct mqtt_link_msg *msg);
};

/* Completion of one publish: status 0 when the broker acknowledged it (PUBACK
 * for QoS 1, PUBCOMP for 2, written to the socket for 0), else -errno. */
typedef void (*mqtt_link_ack_cb)(void *ctx, int status);

/* mqtt_link_new copies every string in opts; it returns NULL on a bad
 * argument (no loop, no cbs) or out of memory.
 * mqtt_link_free: no mqtt_link_cbs callback runs afterwards; an ack still
 * pending runs once with -ECANCELED before its memory goes. Safe to call
 * from inside a link callback (the free is deferred until it returns). */
struct mqtt_link *mqtt_link_new(struct loop *loop, const struct mqtt_link_opts *opts,
                                const struct mqtt_link_cbs *cbs, void *ctx);
void mqtt_link_free(struct mqtt_link *link);

/* Starts connecting (returns at once). 0 or -errno for a bad URI/options:
 * -EINVAL (malformed URI), -EPROTONOSUPPORT (scheme this paho lacks),
 * -EALREADY (started before). */
int mqtt_link_start(struct mqtt_link *link);

bool mqtt_link_connected(const struct mqtt_link *link);

/* The protocol of the current or last connection: 5 (MQTT 5), 4 (3.1.1),
 * or 0 before the first connection. */
int mqtt_link_protocol(const struct mqtt_link *link);

/* 0 once queued, or -ENOTCONN (subscribe in the connected callback: the
 * broker keeps subscriptions in the session, but a lost session does not).
 * A refusal by the broker is logged. */
int mqtt_link_subscribe(struct mqtt_link *link, const char *topic, int qos);
/* The same; ack (run on the loop thread, once, like a publish's) says
 * whether the broker granted it: 0, or -errno (a refusal by reason code,
 * -ENOTCONN when the connection dropped first). */
int mqtt_link_subscribe_acked(struct mqtt_link *link, const char *topic, int qos,
                              mqtt_link_ack_cb ack, void *ack_ctx);
/* Leaves a subscription (the session forgets it); ack as above. */
int mqtt_link_unsubscribe(struct mqtt_link *link, const char *topic, mqtt_link_ack_cb ack,
                          void *ack_ctx);

/* Queues a publish. ack (optional) runs on the loop thread exactly once:
 * 0, a -errno from the broker's reason code (-EACCES not authorized,
 * -EINVAL topic refused, -EMSGSIZE, -EDQUOT, else -EIO), -ENOTCONN when the
 * connection dropped first (the broker may still get it: paho retries an
 * unacknowledged QoS 1/2 publish after reconnecting; it is reported as
 * failed regardless, so the caller's retry makes it at-least-once), or
 * -ECANCELED from mqtt_link_free. correlation (MQTT 5 Correlation Data, for
 * a reply to a Response Topic) may be NULL; it is dropped on 3.1.1.
 * Publishes go out in the order of the calls. The link hands paho no more
 * QoS 1/2 publishes than the broker's Receive Maximum allows (and at most
 * 64 publishes in all); the rest wait in the link, bounded in bytes, and a
 * publish still waiting there when the connection drops gets -ENOTCONN.
 * Returns 0 or -errno, and ack is not called then: -ENOTCONN while
 * disconnected, -EINVAL (bad topic or QoS), -EMSGSIZE, -ENOBUFS (the
 * link's queue is full: 4 MiB waiting), -ENOMEM. */
int mqtt_link_publish(struct mqtt_link *link, const char *topic, const void *payload,
                      size_t len, int qos, bool retain, const uint8_t *correlation,
                      size_t correlation_len, mqtt_link_ack_cb ack, void *ack_ctx);

/* Publishes "offline" retained on the will topic and disconnects, waiting at
 * most timeout_ms. Called once, at shutdown, on the loop thread (not from a
 * link callback). While it waits, it dispatches the link's own events, so
 * acks and message callbacks may run inside it. */
void mqtt_link_stop(struct mqtt_link *link, int timeout_ms);
/* The same for several links within one timeout_ms together (every
 * "offline" is published before the first is awaited, every DISCONNECT
 * sent before the first is awaited): a process with many modems stops in
 * the time of one. NULL entries are skipped. */
void mqtt_links_stop(struct mqtt_link *const *links, size_t n, int timeout_ms);

#endif
