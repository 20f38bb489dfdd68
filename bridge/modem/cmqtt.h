/* Remote broker through the module's own MQTT client (AT+CMQTT*, client
 * index 0): session life cycle, publish, subscribe, receive.
 *
 *   DISABLED (no "remote" in the config)
 *   DISCONNECTED --modem ready / backoff over--> CONNECTING
 *   CONNECTING: START (ERROR = already started) -> [TLS: CCERTDOWN of the
 *               CA (and the client certificate and key, if any) once per
 *               modem boot, CSSLCFG sslversion/authmode/cacert/[clientcert/
 *               clientkey]/enableSNI, CMQTTSSLCFG] -> ACCQ (ERROR = already acquired) -> CFG
 *               version 3.1.1 -> [DISC after a failure: the module may
 *               still hold the old session] -> [WILLTOPIC, WILLMSG: the
 *               will, if any] -> CONNECT, whose outcome is
 *               the "+CMQTTCONNECT: 0,<e>" line after OK -> SUB for every
 *               subscription --all done--> CONNECTED
 *   CONNECTED --+CMQTTCONNLOST / +CMQTTNONET / a failed step--> DISCONNECTED
 *   DISCONNECTED retries with exponential backoff (never a storm: a broker
 *   that refuses the password is asked again after 1, 2, 4 ... 60 s).
 *
 * Each job is an AT script (at/script.h; its steps are logged as "remote:
 * connect: acquire: ok"), one at a time (like sms_send.c): a publish is TOPIC
 * (prompt, bytes), PAYLOAD (prompt, bytes), PUB; the module keeps one
 * topic/payload buffer per client, so two publishes must never
 * interleave. Jobs wait in a bounded queue; they run only while
 * CONNECTED. A QoS 0 publish while not connected is refused
 * ("unavailable"), QoS 1/2 wait for the reconnect.
 *
 * Receiving: +CMQTTRXSTART announces the totals, +CMQTTRXTOPIC /
 * +CMQTTRXPAYLOAD chunks are followed by exactly <n> raw bytes (read with
 * at_chat_read_block, so CR, LF and NUL are data), +CMQTTRXEND delivers.
 * Totals beyond CMQTT_TOPIC_MAX/CMQTT_PAYLOAD_MAX, a chunk beyond what
 * remains of its announced total (no bytes are read for it: a false length
 * must not swallow the module's next replies), an RXEND before everything
 * came, or no RXEND within CMQTT_RX_TIMEOUT_MS: the message is dropped and
 * reported through the error callback; the next RXSTART starts afresh.
 *
 * +CMQTTCONNLOST / +CMQTTNONET end the session: the command of ours that
 * waits for it (SUB, UNSUB, PUB; CONNECT on NONET) is aborted at once
 * (at_chat_abort) instead of holding the whole AT queue until its timeout,
 * and its job is answered "unavailable" (a QoS 1/2 publish waits for the
 * reconnect). A job between steps (TOPIC done, PUB next) stops there.
 *
 * The service knows nothing of the local broker: messages and state go out
 * through callbacks. */
#ifndef M2M_MODEM_CMQTT_H
#define M2M_MODEM_CMQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem/error.h"

struct at_script;
struct loop;
struct modem;

#define CMQTT_MAX_SUBS 32          /* remote subscriptions (config + run time) */
#define CMQTT_MAX_QUEUE 64         /* jobs waiting behind the one in flight */
#define CMQTT_RX_TIMEOUT_MS 10000  /* RXSTART -> RXEND */
/* What the module's MQTT stack carries, both ways: AT+CMQTTTOPIC takes
 * 1-1024 bytes, AT+CMQTTPAYLOAD 1-10240, and a received message is
 * announced (+CMQTTRXSTART, +CMQTTRXTOPIC, +CMQTTRXPAYLOAD) within the same
 * totals. An announced length beyond them is not believed: the message is
 * dropped and no bytes are read for it. CMQTT_PAYLOAD_MAX is also the AT
 * lexer's block limit (modem.c), so every chunk believed can be read. */
#define CMQTT_TOPIC_MAX 1024
#define CMQTT_PAYLOAD_MAX 10240
#define CMQTT_PUB_TIMEOUT_S 60     /* AT+CMQTTPUB's <pub_timeout> */
/* AT+CMQTTDISC's <timeout>: the handbook's range is 60-180 s. The least of
 * it: a session is closed as soon as the module can, and the chat waits
 * for the answer a little longer than the module (cmqtt_job.c), so that a
 * slow close never reads as a timeout that resynchronises the line. A
 * process that stops does not wait that long: see cmqtt_shutdown. */
#define CMQTT_DISC_TIMEOUT_S 60
/* The will (AT+CMQTTWILLTOPIC, AT+CMQTTWILLMSG): its topic within
 * CMQTT_TOPIC_MAX. The handbook gives no range for the message; 1024
 * bytes, as for the topic, is what the bridge sends. */
#define CMQTT_WILL_MAX 1024
#define CMQTT_CA_MAX 16384         /* largest CA file uploaded (AT+CCERTDOWN) */
#define CMQTT_CERT_MAX 16384       /* largest client certificate or key uploaded */

enum cmqtt_state {
    CMQTT_DISABLED = 0,
    CMQTT_CONNECTING,
    CMQTT_CONNECTED,
    CMQTT_DISCONNECTED,
};

/* "disabled", "connecting", "connected", "disconnected" (B/status remote). */
const char *cmqtt_state_name(enum cmqtt_state st);

/* The module's <e> codes 0-35 in words ("bad user name or password");
 * "unknown error" otherwise. */
const char *cmqtt_error_text(int e);

/* MQTT 3.1.1 topic filter matching ('+' one level, '#' the rest). Pure. */
bool cmqtt_topic_match(const char *filter, const char *topic, size_t topic_len);

struct cmqtt_sub_opt {
    const char *topic;
    int qos;
};

struct cmqtt_opts {
    const char *server;          /* tcp://host[:port] (config.c checked it) */
    const char *client_id;
    const char *username;        /* NULL: none */
    const char *password;        /* NULL: none; never logged */
    int keepalive;
    bool clean_session;
    bool tls;                    /* TLS: needs ca_pem */
    const uint8_t *ca_pem;       /* the CA the module checks the server with (borrowed; */
    size_t ca_len;               /*  uploaded with AT+CCERTDOWN once per modem boot) */
    const uint8_t *cert_pem;     /* tls: client certificate, NULL: none (borrowed; */
    size_t cert_len;             /*  with key_pem, or neither: authmode 2) */
    const uint8_t *key_pem;      /* its private key (borrowed); never logged */
    size_t key_len;
    const struct cmqtt_sub_opt *subs;
    size_t n_subs;
    /* The last will, set before every connect (AT+CMQTTWILLTOPIC,
     * AT+CMQTTWILLMSG): the remote broker publishes it when the module
     * drops without a DISCONNECT. NULL: none. Borrowed. The module's will
     * has no retain flag. */
    const char *will_topic;
    const uint8_t *will_payload; /* 1-CMQTT_WILL_MAX bytes */
    size_t will_len;
    int will_qos;
    int backoff_min_ms;          /* 0: 1000 */
    int backoff_max_ms;          /* 0: 60000 */
};

struct cmqtt_cbs {
    /* reason: NULL, or why the session is down ("bad user name or password
     * (30)"). Borrowed for the call. */
    void (*state_changed)(void *ctx, enum cmqtt_state st, const char *reason);
    /* A complete message. topic is NUL-terminated as well; qos is that of
     * the best matching subscription (the module does not report it). */
    void (*message)(void *ctx, const char *topic, size_t topic_len, const uint8_t *payload,
                    size_t len, int qos);
    /* A failure that belongs to no command (B/error). */
    void (*error)(void *ctx, const char *code, const char *message);
};

/* NULL on allocation failure or bad options (tls without a CA, a client
 * certificate without its key or the other way round, a will whose topic,
 * message or QoS the module would refuse). */
struct cmqtt *cmqtt_new(struct loop *loop, struct modem *modem, const struct cmqtt_opts *opts,
                        const struct cmqtt_cbs *cbs, void *ctx);
void cmqtt_free(struct cmqtt *c);

enum cmqtt_state cmqtt_state(const struct cmqtt *c);
/* Why the session is down, or NULL. */
const char *cmqtt_reason(const struct cmqtt *c);

/* The modem became ready (the session is set up), or went away (whatever
 * was in flight is forgotten; queued QoS 1/2 publishes stay). */
void cmqtt_modem_ready(struct cmqtt *c, bool ready);

/* err NULL: done. */
typedef void (*cmqtt_done_cb)(void *ctx, const struct m2m_error *err);

/* Copies topic and payload. Errors (too_long, invalid_request, unavailable,
 * busy) are reported through cb before this returns, nothing written. */
void cmqtt_publish(struct cmqtt *c, const char *topic, const uint8_t *payload, size_t len,
                   int qos, bool retain, cmqtt_done_cb cb, void *ctx);
/* Kept across reconnects. While not connected the list is updated and cb
 * answers at once; the module hears of it at the next connect. */
void cmqtt_subscribe(struct cmqtt *c, const char *topic, int qos, cmqtt_done_cb cb, void *ctx);
void cmqtt_unsubscribe(struct cmqtt *c, const char *topic, cmqtt_done_cb cb, void *ctx);

/* Shutdown: DISC, REL, STOP, best effort. done runs once when they are
 * through (or at once when there is nothing to do); the caller bounds the
 * wait with its own timer. Queued jobs are answered "unavailable".
 *
 * The module may take up to CMQTT_DISC_TIMEOUT_S to close the session, and
 * the chat waits that long for its answer; a process that stops bounds the
 * whole sequence with its own, much shorter timer (bridge.c) and exits when
 * it expires: the broker then learns of the end from the module's socket,
 * and the module is set up afresh at the next start. */
void cmqtt_shutdown(struct cmqtt *c, void (*done)(void *ctx), void *ctx);

/* The job scripts (connect, publish, subscribe, unsubscribe, stop), for
 * at_script_check() in the tests; NULL past the last. */
const struct at_script *cmqtt_script(unsigned i);

/* Counters for logs and tests. */
struct cmqtt_stats {
    uint64_t published, received, dropped_qos0, rx_errors, connects;
};
const struct cmqtt_stats *cmqtt_stats(const struct cmqtt *c);

#endif
