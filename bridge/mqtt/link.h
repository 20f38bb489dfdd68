/* The local broker connection: an adapter over paho MQTTAsync.
 *
 * paho calls back on its own threads. Those callbacks only copy what they
 * got into a queue and wake the loop (a pipe the loop polls); every
 * callback below runs on the loop thread.
 *
 * MQTT 5 when the broker speaks it (for Response Topic / Correlation Data),
 * falling back to 3.1.1. Clean session off, automatic reconnect, last will
 * "offline" retained on the availability topic. */
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
     * command is durable (journal) before the broker sees PUBACK. Optional.
     * Sets *seq (0: not journalled) which comes back in mqtt_link_msg.seq;
     * returns 0 to accept, or a negative errno to refuse (paho then does
     * not acknowledge, and the broker redelivers). */
    int (*persist)(void *ctx, const char *topic, const void *payload, size_t len,
                   uint64_t *seq);
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

struct mqtt_link *mqtt_link_new(struct loop *loop, const struct mqtt_link_opts *opts,
                                const struct mqtt_link_cbs *cbs, void *ctx);
void mqtt_link_free(struct mqtt_link *link);

/* Starts connecting (returns at once). 0 or -errno for a bad URI/options. */
int mqtt_link_start(struct mqtt_link *link);

bool mqtt_link_connected(const struct mqtt_link *link);

int mqtt_link_subscribe(struct mqtt_link *link, const char *topic, int qos);

/* Queues a publish. ack (optional) runs on the loop thread exactly once.
 * correlation may be NULL. 0 or -errno (-ENOTCONN while disconnected: ack
 * is not called then). */
int mqtt_link_publish(struct mqtt_link *link, const char *topic, const void *payload,
                      size_t len, int qos, bool retain, const uint8_t *correlation,
                      size_t correlation_len, mqtt_link_ack_cb ack, void *ack_ctx);

/* Publishes "offline" retained on the will topic and disconnects, waiting at
 * most timeout_ms. Called once, at shutdown. */
void mqtt_link_stop(struct mqtt_link *link, int timeout_ms);

#endif
