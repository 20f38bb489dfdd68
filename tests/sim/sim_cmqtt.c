/* The module's MQTT client (AT+CMQTT*, client index 0), backed by a REAL
 * broker through paho MQTTAsync: AT+CMQTTCONNECT connects to the server it
 * names (a mosquitto on loopback in the tests).
 *
 * Framing as on the A7670 (reference/a76xx-at.md, CMQTT):
 *   - OK first, the outcome after it: "+CMQTTSTART: 0", "+CMQTTCONNECT:
 *     0,<e>", "+CMQTTPUB: 0,<e>", "+CMQTTSUB: 0,<e>", "+CMQTTUNSUB: 0,<e>",
 *     "+CMQTTDISC: 0,<e>", "+CMQTTSTOP: 0"; START when started: ERROR;
 *     ACCQ when acquired: "+CMQTTACCQ: 0,19" then ERROR.
 *   - TOPIC, PAYLOAD, SUBTOPIC, UNSUBTOPIC and the one-step SUB take exactly
 *     the announced bytes after the "> " prompt.
 *   - Receive: +CMQTTRXSTART, +CMQTTRXTOPIC + bytes, +CMQTTRXPAYLOAD + bytes
 *     in chunks of at most 1500 (`cmqtt_chunk <n>` makes them smaller),
 *     +CMQTTRXEND.
 *   - The will: AT+CMQTTWILLTOPIC and AT+CMQTTWILLMSG (prompt, bytes) set it
 *     for the next CONNECT, which hands it to paho; the real broker
 *     publishes it when the connection ends without a DISCONNECT
 *     (`cmqtt_drop` cuts the socket under paho so that none goes out).
 *   - The broker going away: +CMQTTCONNLOST: 0,1.
 *   - Error codes: 11 no connection, 20 not acquired, 3 socket connect
 *     failed, 26 closed by the server, 27-31 the broker's CONNACK refusals
 *     (30 bad user name or password, 31 not authorized).
 *
 * paho calls back on its own threads: the callbacks only append an event
 * to a mutex-protected queue and write a byte to a pipe; the sim's poll
 * loop reads the pipe and turns events into output (sim_cmqtt_pump), so
 * all sim state stays on the sim's thread. Result lines that follow an OK
 * go through the same queue, so they come after the OK. Events of a client
 * that has since been destroyed (a generation number) are dropped. */
#include "sim.h"

#include <MQTTAsync.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CM_TOPIC_MAX 1024
#define CM_PAYLOAD_MAX 10240
#define CM_CHUNK 1500
#define CM_WILL_MAX 1024        /* AT+CMQTTWILLMSG (the bridge's bound; see README) */
#define SIM_CERT_FILES 4        /* AT+CCERTDOWN files kept (CA, client cert, key) */

enum ev_kind { EV_LINE, EV_CONNECTED, EV_CONNECT_FAILED, EV_LOST, EV_RX, EV_PUB, EV_SUB,
               EV_UNSUB, EV_DISC };

struct ev {
    struct ev *next;
    enum ev_kind kind;
    unsigned gen;
    int code;
    char *topic;
    size_t topic_len;
    uint8_t *payload;
    size_t len;
    char line[64];
};

struct sim_cmqtt {
    int pipe[2];
    pthread_mutex_t mu;
    struct ev *head, **tail;       /* under mu */

    /* the sim's thread only */
    bool started, acquired, connected, connecting;
    char client_id[SIM_PARAM_LEN];
    int version;
    MQTTAsync client;
    unsigned gen;
    char topic[CM_TOPIC_MAX + 1];
    size_t topic_len;
    uint8_t payload[CM_PAYLOAD_MAX];
    size_t payload_len;
    char subtopic[CM_TOPIC_MAX + 1];
    int subqos;
    bool have_subtopic;
    char unsubtopic[CM_TOPIC_MAX + 1];
    bool have_unsubtopic;
    int pending_qos;               /* one-step AT+CMQTTSUB=0,<len>,<qos> */
    size_t chunk;
    bool sub_hold;                 /* `cmqtt_sub_hold`: the next SUB gets no result */
    bool disc_hold;                /* `cmqtt_disc_hold`: the next DISC gets no result */
    int broker_port;               /* the CONNECT's port, for `cmqtt_drop` */

    /* The will for the next CONNECT (AT+CMQTTWILLTOPIC, AT+CMQTTWILLMSG). */
    char will_topic[CM_TOPIC_MAX + 1];
    bool have_will_topic;
    uint8_t will_msg[CM_WILL_MAX];
    size_t will_len;               /* 0: no message set */
    int will_qos;

    /* TLS: AT+CCERTDOWN files (kept in temporary files), SSL context 0 */
    struct {
        char name[SIM_PARAM_LEN];  /* the name AT+CCERTDOWN gave it; "" free */
        char path[64];
    } certs[SIM_CERT_FILES];
    char cert_pending[SIM_PARAM_LEN]; /* AT+CCERTDOWN waiting for its data */
    int authmode;                  /* 0 none, 1 server, 2 server+client, 3 client */
    char cacert[SIM_PARAM_LEN];
    char clientcert[SIM_PARAM_LEN];
    char clientkey[SIM_PARAM_LEN];
    bool ssl_ctx_bound;            /* AT+CMQTTSSLCFG=0,0 */
    bool ssl;                      /* AT+CMQTTACCQ=0,"id",1 */
};

static struct sim_cmqtt *cm(struct sim *s)
{
    return s->cmqtt;
}

/* The temporary file behind the module file name, or NULL (none, or ""). */
static const char *cert_file(const struct sim_cmqtt *c, const char *name)
{
    if (!name[0])
        return NULL;
    for (size_t i = 0; i < SIM_CERT_FILES; i++)
        if (strcmp(c->certs[i].name, name) == 0)
            return c->certs[i].path;
    return NULL;
}

/* --- events (any thread) ------------------------------------------------------- */

static void post(struct sim_cmqtt *c, struct ev *e)
{
    char b = 1;
    pthread_mutex_lock(&c->mu);
    e->next = NULL;
    *c->tail = e;
    c->tail = &e->next;
    pthread_mutex_unlock(&c->mu);
    if (write(c->pipe[1], &b, 1) < 0) {
        /* Full pipe: a wakeup is pending anyway. */
    }
}

static void post_simple(struct sim_cmqtt *c, enum ev_kind kind, unsigned gen, int code)
{
    struct ev *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->kind = kind;
    e->gen = gen;
    e->code = code;
    post(c, e);
}

/* A result line to write after the current final result: "<name>: 0,<e>"
 * ("<name>: <e>" for START and STOP, which have no client index). */
static void post_line(struct sim *s, const char *name, int code)
{
    struct ev *e = calloc(1, sizeof(*e));
    bool bare = strcmp(name, "+CMQTTSTART") == 0 || strcmp(name, "+CMQTTSTOP") == 0;
    if (!e)
        return;
    e->kind = EV_LINE;
    e->gen = cm(s)->gen;
    snprintf(e->line, sizeof(e->line), bare ? "%s: %d" : "%s: 0,%d", name, code);
    post(cm(s), e);
}

/* paho's context: the generation in the pointer's low bits would be a hack;
 * one small heap object per client instead. */
struct cb_ctx {
    struct sim_cmqtt *c;
    unsigned gen;
    bool ssl;
};

static struct cb_ctx *cur_ctx;   /* the live client's; freed with it */

static void on_lost(void *context, char *cause)
{
    struct cb_ctx *x = context;
    (void)cause;
    post_simple(x->c, EV_LOST, x->gen, 1);
}

static int on_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct cb_ctx *x = context;
    struct ev *e = calloc(1, sizeof(*e));
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);

    if (e) {
        e->kind = EV_RX;
        e->gen = x->gen;
        e->code = m->qos;
        e->topic = malloc(tl + 1);
        e->payload = malloc(m->payloadlen > 0 ? (size_t)m->payloadlen : 1);
        if (e->topic && e->payload) {
            memcpy(e->topic, topic, tl);
            e->topic[tl] = '\0';
            e->topic_len = tl;
            memcpy(e->payload, m->payload, (size_t)m->payloadlen);
            e->len = (size_t)m->payloadlen;
            post(x->c, e);
        } else {
            free(e->topic);
            free(e->payload);
            free(e);
        }
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_conn_ok(void *context, MQTTAsync_successData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_CONNECTED, x->gen, 0);
}

static void on_conn_fail(void *context, MQTTAsync_failureData *r)
{
    struct cb_ctx *x = context;
    int code = x->ssl ? 32 : 3; /* handshake failed / socket connect failed */
    /* CONNACK return codes 1-5 -> the module's 27-31. */
    if (r && r->code >= 1 && r->code <= 5)
        code = 26 + r->code;
    post_simple(x->c, EV_CONNECT_FAILED, x->gen, code);
}

static void on_pub_ok(void *context, MQTTAsync_successData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_PUB, x->gen, 0);
}

static void on_pub_fail(void *context, MQTTAsync_failureData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_PUB, x->gen, 11);
}

static void on_sub_ok(void *context, MQTTAsync_successData *r)
{
    struct cb_ctx *x = context;
    /* A refused filter comes back as granted QoS 0x80. */
    post_simple(x->c, EV_SUB, x->gen, r && r->alt.qos == 0x80 ? 1 : 0);
}

static void on_sub_fail(void *context, MQTTAsync_failureData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_SUB, x->gen, 1);
}

static void on_unsub_ok(void *context, MQTTAsync_successData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_UNSUB, x->gen, 0);
}

static void on_unsub_fail(void *context, MQTTAsync_failureData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_UNSUB, x->gen, 1);
}

static void on_disc_ok(void *context, MQTTAsync_successData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_DISC, x->gen, 0);
}

static void on_disc_fail(void *context, MQTTAsync_failureData *r)
{
    struct cb_ctx *x = context;
    (void)r;
    post_simple(x->c, EV_DISC, x->gen, 35);
}

/* --- the client (sim thread) ------------------------------------------------------ */

static void destroy_client(struct sim_cmqtt *c)
{
    if (c->client) {
        if (MQTTAsync_isConnected(c->client)) {
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = 100;
            MQTTAsync_disconnect(c->client, &d);
        }
        MQTTAsync_destroy(&c->client);
        c->client = NULL;
    }
    /* paho's threads may still hold cur_ctx for a moment after destroy
     * only through callbacks of this client, which destroy has stopped. */
    free(cur_ctx);
    cur_ctx = NULL;
    c->gen++;
    c->connected = c->connecting = false;
}

int sim_cmqtt_init(struct sim *s)
{
    struct sim_cmqtt *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (pipe(c->pipe) < 0) {
        free(c);
        return -errno;
    }
    fcntl(c->pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(c->pipe[1], F_SETFL, O_NONBLOCK);
    fcntl(c->pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(c->pipe[1], F_SETFD, FD_CLOEXEC);
    pthread_mutex_init(&c->mu, NULL);
    c->tail = &c->head;
    c->chunk = CM_CHUNK;
    s->cmqtt = c;
    return 0;
}

static void ev_free(struct ev *e)
{
    free(e->topic);
    free(e->payload);
    free(e);
}

void sim_cmqtt_reset(struct sim *s)
{
    struct sim_cmqtt *c = cm(s);
    if (!c)
        return;
    destroy_client(c);
    c->started = c->acquired = false;
    c->ssl = c->ssl_ctx_bound = false;
    c->authmode = 0;
    c->cacert[0] = c->clientcert[0] = c->clientkey[0] = '\0';
    c->topic_len = c->payload_len = 0;
    c->have_subtopic = c->have_unsubtopic = false;
    c->have_will_topic = false;
    c->will_len = 0;
}

void sim_cmqtt_free(struct sim *s)
{
    struct sim_cmqtt *c = cm(s);
    if (!c)
        return;
    destroy_client(c);
    while (c->head) {
        struct ev *e = c->head;
        c->head = e->next;
        ev_free(e);
    }
    for (size_t i = 0; i < SIM_CERT_FILES; i++)
        if (c->certs[i].path[0])
            unlink(c->certs[i].path);
    close(c->pipe[0]);
    close(c->pipe[1]);
    pthread_mutex_destroy(&c->mu);
    free(c);
    s->cmqtt = NULL;
}

int sim_cmqtt_fd(const struct sim *s)
{
    return s->cmqtt ? s->cmqtt->pipe[0] : -1;
}

static void write_rx(struct sim *s, const struct ev *e)
{
    struct sim_cmqtt *c = cm(s);
    char buf[96];

    sim_log(s, "cmqtt: message on %s, %zu bytes", e->topic, e->len);
    snprintf(buf, sizeof(buf), "\r\n+CMQTTRXSTART: 0,%zu,%zu\r\n", e->topic_len, e->len);
    sim_writes(s, buf);
    snprintf(buf, sizeof(buf), "+CMQTTRXTOPIC: 0,%zu\r\n", e->topic_len);
    sim_writes(s, buf);
    sim_write(s, e->topic, e->topic_len);
    sim_writes(s, "\r\n");
    for (size_t off = 0; off < e->len; off += c->chunk) {
        size_t n = e->len - off < c->chunk ? e->len - off : c->chunk;
        snprintf(buf, sizeof(buf), "+CMQTTRXPAYLOAD: 0,%zu\r\n", n);
        sim_writes(s, buf);
        sim_write(s, e->payload + off, n);
        sim_writes(s, "\r\n");
    }
    sim_writes(s, "+CMQTTRXEND: 0\r\n");
}

/* The most bytes write_rx writes for e. */
static size_t rx_size(const struct sim_cmqtt *c, const struct ev *e)
{
    size_t chunks = e->len / c->chunk + 1;
    return 96 + e->topic_len + e->len + chunks * 32;
}

/* Whether output may go to the host now: not in the middle of a data
 * block, and not between a command and its deferred final result. */
static bool may_write(const struct sim *s)
{
    return s->phase == SIM_READY && !s->data.active && !sim_timer_armed(s, SIM_TIMER_BUSY) &&
           !s->hung;
}

void sim_cmqtt_pump(struct sim *s)
{
    struct sim_cmqtt *c = cm(s);
    char drain[64];

    if (!c)
        return;
    while (read(c->pipe[0], drain, sizeof(drain)) > 0) {
    }
    while (may_write(s)) {
        pthread_mutex_lock(&c->mu);
        struct ev *e = c->head;
        /* The module keeps a received message in its memory until the line
         * has room for it: it is paced by the serial line, never lost on
         * it. A host that reads slowly gets it later (the pty's POLLOUT
         * brings us back here). */
        if (e && e->kind == EV_RX && rx_size(c, e) > SIM_OUT_MAX - s->out_len) {
            pthread_mutex_unlock(&c->mu);
            sim_pty_flush(s);
            if (rx_size(c, e) > SIM_OUT_MAX - s->out_len)
                return;
            pthread_mutex_lock(&c->mu);
        }
        if (e) {
            c->head = e->next;
            if (!c->head)
                c->tail = &c->head;
        }
        pthread_mutex_unlock(&c->mu);
        if (!e)
            return;
        if (e->gen != c->gen) {
            ev_free(e);
            continue;
        }
        switch (e->kind) {
        case EV_LINE:
            sim_urc(s, "%s", e->line);
            break;
        case EV_CONNECTED:
            c->connecting = false;
            c->connected = true;
            sim_event(s, "cmqtt connected");
            sim_urc(s, "+CMQTTCONNECT: 0,0");
            break;
        case EV_CONNECT_FAILED:
            c->connecting = false;
            sim_event(s, "cmqtt connect-failed %d", e->code);
            sim_urc(s, "+CMQTTCONNECT: 0,%d", e->code);
            break;
        case EV_LOST:
            c->connected = false;
            sim_event(s, "cmqtt lost");
            sim_urc(s, "+CMQTTCONNLOST: 0,%d", e->code);
            break;
        case EV_RX:
            write_rx(s, e);
            break;
        case EV_PUB:
            sim_urc(s, "+CMQTTPUB: 0,%d", e->code);
            break;
        case EV_SUB:
            sim_urc(s, "+CMQTTSUB: 0,%d", e->code);
            break;
        case EV_UNSUB:
            sim_urc(s, "+CMQTTUNSUB: 0,%d", e->code);
            break;
        case EV_DISC:
            c->connected = false;
            sim_urc(s, "+CMQTTDISC: 0,%d", e->code);
            break;
        }
        ev_free(e);
    }
}

/* --- AT commands ------------------------------------------------------------------- */

static bool idx0(const struct sim_params *p)
{
    long v;
    return sim_param_int(p, 0, 0, 0, &v);
}

static struct sim_result cmd_start(struct sim *s, const struct sim_at *at)
{
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    if (cm(s)->started)
        return SIM_RES_ERROR;
    cm(s)->started = true;
    post_line(s, "+CMQTTSTART", 0);
    return SIM_RES_OK;
}

static struct sim_result cmd_stop(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    if (!c->started) {
        sim_info(s, "+CMQTTSTOP: 1");
        return SIM_RES_ERROR;
    }
    destroy_client(c);
    c->started = c->acquired = false;
    c->have_will_topic = false;
    c->will_len = 0;
    post_line(s, "+CMQTTSTOP", 0);
    return SIM_RES_OK;
}

static struct sim_result cmd_accq(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long ssl = 0;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n < 2 || p.n > 3 ||
        !idx0(&p) || !p.quoted[1] || p.v[1][0] == '\0' ||
        (p.n == 3 && !sim_param_int(&p, 2, 0, 1, &ssl)))
        return SIM_RES_ERROR;
    if (!c->started) {
        sim_info(s, "+CMQTTACCQ: 0,9");
        return SIM_RES_ERROR;
    }
    if (c->acquired) {
        sim_info(s, "+CMQTTACCQ: 0,19");
        return SIM_RES_ERROR;
    }
    c->acquired = true;
    c->ssl = ssl == 1;
    snprintf(c->client_id, sizeof(c->client_id), "%s", p.v[1]);
    return SIM_RES_OK;
}

static struct sim_result cmd_rel(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !idx0(&p))
        return SIM_RES_ERROR;
    if (!c->acquired) {
        sim_info(s, "+CMQTTREL: 0,20");
        return SIM_RES_ERROR;
    }
    if (c->connected) {
        sim_info(s, "+CMQTTREL: 0,21");
        return SIM_RES_ERROR;
    }
    destroy_client(c);
    c->acquired = false;
    c->have_will_topic = false;      /* the will belongs to the released client */
    c->will_len = 0;
    return SIM_RES_OK;
}

static struct sim_result cmd_cfg(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long v;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 3 ||
        strcmp(p.v[0], "version") != 0 || !sim_param_int(&p, 1, 0, 0, &v) ||
        !sim_param_int(&p, 2, 3, 4, &v))
        return SIM_RES_ERROR;
    cm(s)->version = (int)v;
    return SIM_RES_OK;
}

static struct sim_result cmd_connect(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long ka, clean;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n < 4 || p.n > 6 ||
        !idx0(&p) || !p.quoted[1] || strncmp(p.v[1], "tcp://", 6) != 0 ||
        !sim_param_int(&p, 2, 1, 64800, &ka) || !sim_param_int(&p, 3, 0, 1, &clean))
        return SIM_RES_ERROR;
    if (!c->acquired) {
        post_line(s, "+CMQTTCONNECT", 20);
        return SIM_RES_OK;
    }
    if (c->connected || c->connecting) {
        post_line(s, "+CMQTTCONNECT", 13);
        return SIM_RES_OK;
    }
    destroy_client(c);
    if (MQTTAsync_create(&c->client, p.v[1], c->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTASYNC_SUCCESS) {
        c->client = NULL;
        post_line(s, "+CMQTTCONNECT", 12);
        return SIM_RES_OK;
    }
    cur_ctx = calloc(1, sizeof(*cur_ctx));
    if (!cur_ctx) {
        destroy_client(c);
        return SIM_RES_ERROR;
    }
    cur_ctx->c = c;
    cur_ctx->gen = c->gen;
    cur_ctx->ssl = c->ssl;
    MQTTAsync_setCallbacks(c->client, cur_ctx, on_lost, on_arrived, NULL);
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    o.keepAliveInterval = (int)ka;
    o.cleansession = (int)clean;
    o.MQTTVersion = c->version == 3 ? MQTTVERSION_3_1 : MQTTVERSION_3_1_1;
    o.connectTimeout = 5;
    o.username = p.n >= 5 ? p.v[4] : NULL;
    o.password = p.n >= 6 ? p.v[5] : NULL;
    o.onSuccess = on_conn_ok;
    o.onFailure = on_conn_fail;
    o.context = cur_ctx;
    /* paho copies the will at connect. */
    MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
    if (c->have_will_topic && c->will_len) {
        w.topicName = c->will_topic;
        w.payload.data = c->will_msg;
        w.payload.len = (int)c->will_len;
        w.qos = c->will_qos;
        o.will = &w;
        sim_log(s, "cmqtt: will on %s, %zu bytes, qos %d", c->will_topic, c->will_len,
                c->will_qos);
    }
    const char *colon = strrchr(p.v[1] + 6, ':');
    c->broker_port = colon && !strchr(colon, ']') ? atoi(colon + 1) : 1883;
    MQTTAsync_SSLOptions so = MQTTAsync_SSLOptions_initializer;
    if (c->ssl) {
        /* The module takes "tcp://" for TLS too; paho wants "ssl://". The
         * client was created with the tcp URI: pass the ssl one here. */
        static char uri[SIM_PARAM_LEN + 8];
        /* The precision bounds it for gcc; a parameter is at most SIM_PARAM_LEN. */
        snprintf(uri, sizeof(uri), "ssl://%.*s", (int)(sizeof(uri) - 7), p.v[1] + 6);
        static char *uris[1];
        uris[0] = uri;
        o.serverURIs = uris;
        o.serverURIcount = 1;
        bool verify = c->authmode == 1 || c->authmode == 2;
        bool client = c->authmode >= 2;
        const char *ca = cert_file(c, c->cacert);
        const char *cert = cert_file(c, c->clientcert);
        const char *key = cert_file(c, c->clientkey);
        if ((verify && !ca) || (client && (!cert || !key))) {
            post_line(s, "+CMQTTCONNECT", 33);   /* no certificate */
            destroy_client(c);
            return SIM_RES_OK;
        }
        so.trustStore = verify ? ca : NULL;
        so.keyStore = client ? cert : NULL;
        so.privateKey = client ? key : NULL;
        so.enableServerCertAuth = verify;
        so.verify = verify;
        so.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        o.ssl = &so;
    }
    sim_log(s, "cmqtt: connecting to %s as %s", p.v[1], c->client_id);
    if (MQTTAsync_connect(c->client, &o) != MQTTASYNC_SUCCESS) {
        destroy_client(c);
        post_line(s, "+CMQTTCONNECT", 3);
        return SIM_RES_OK;
    }
    c->connecting = true;
    return SIM_RES_OK;
}

static struct sim_result cmd_disc(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long t;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 2 || !idx0(&p) ||
        !sim_param_int(&p, 1, 1, 180, &t))
        return SIM_RES_ERROR;
    if (!c->connected || !c->client) {
        post_line(s, "+CMQTTDISC", 11);
        return SIM_RES_OK;
    }
    if (c->disc_hold) {
        /* A module still busy closing: OK and, within the host's
         * patience, no result. */
        c->disc_hold = false;
        sim_event(s, "cmqtt disc-held");
        return SIM_RES_OK;
    }
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = (int)t * 1000;
    d.onSuccess = on_disc_ok;
    d.onFailure = on_disc_fail;
    d.context = cur_ctx;
    if (MQTTAsync_disconnect(c->client, &d) != MQTTASYNC_SUCCESS)
        post_line(s, "+CMQTTDISC", 35);
    return SIM_RES_OK;
}

static struct sim_result topic_done(struct sim *s, const uint8_t *d, size_t n, bool cancelled,
                                    bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->topic, d, n);
    c->topic[n] = '\0';
    c->topic_len = n;
    return SIM_RES_OK;
}

static struct sim_result payload_done(struct sim *s, const uint8_t *d, size_t n, bool cancelled,
                                      bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->payload, d, n);
    c->payload_len = n;
    return SIM_RES_OK;
}

/* "0,<len>" within [1, max]: the length, or 0. */
static size_t len_arg(const struct sim_at *at, size_t max, struct sim_params *p)
{
    long len;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, p) < 0 || p->n < 2 || !idx0(p) ||
        !sim_param_int(p, 1, 1, (long)max, &len))
        return 0;
    return (size_t)len;
}

static struct sim_result cmd_topic(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t n = len_arg(at, CM_TOPIC_MAX, &p);
    if (!n || p.n != 2)
        return SIM_RES_ERROR;
    return sim_prompt(s, n, topic_done);
}

static struct sim_result cmd_payload(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t n = len_arg(at, CM_PAYLOAD_MAX, &p);
    if (!n || p.n != 2)
        return SIM_RES_ERROR;
    return sim_prompt(s, n, payload_done);
}

static struct sim_result willtopic_done(struct sim *s, const uint8_t *d, size_t n,
                                       bool cancelled, bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->will_topic, d, n);
    c->will_topic[n] = '\0';
    c->have_will_topic = true;
    return SIM_RES_OK;
}

static struct sim_result willmsg_done(struct sim *s, const uint8_t *d, size_t n, bool cancelled,
                                      bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->will_msg, d, n);
    c->will_len = n;
    return SIM_RES_OK;
}

/* The will is the acquired client's: before ACCQ, "not acquired" (20). */
static bool will_client(struct sim *s, const char *name)
{
    if (cm(s)->acquired)
        return true;
    sim_info(s, "%s: 0,20", name);
    return false;
}

static struct sim_result cmd_willtopic(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t n = len_arg(at, CM_TOPIC_MAX, &p);
    if (!n || p.n != 2 || !will_client(s, "+CMQTTWILLTOPIC"))
        return SIM_RES_ERROR;
    return sim_prompt(s, n, willtopic_done);
}

static struct sim_result cmd_willmsg(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long qos;
    size_t n = len_arg(at, CM_WILL_MAX, &p);
    if (!n || p.n != 3 || !sim_param_int(&p, 2, 0, 2, &qos) ||
        !will_client(s, "+CMQTTWILLMSG"))
        return SIM_RES_ERROR;
    cm(s)->will_qos = (int)qos;
    return sim_prompt(s, n, willmsg_done);
}

static struct sim_result cmd_pub(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long qos, t, retain = 0, dup = 0;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n < 3 || p.n > 5 ||
        !idx0(&p) || !sim_param_int(&p, 1, 0, 2, &qos) || !sim_param_int(&p, 2, 1, 180, &t) ||
        (p.n >= 4 && !sim_param_int(&p, 3, 0, 1, &retain)) ||
        (p.n == 5 && !sim_param_int(&p, 4, 0, 1, &dup)))
        return SIM_RES_ERROR;
    if (!c->connected || !c->client) {
        post_line(s, "+CMQTTPUB", 11);
        return SIM_RES_OK;
    }
    if (c->topic_len == 0) {
        post_line(s, "+CMQTTPUB", 18);
        return SIM_RES_OK;
    }
    MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
    r.onSuccess = on_pub_ok;
    r.onFailure = on_pub_fail;
    r.context = cur_ctx;
    sim_log(s, "cmqtt: publish %s, %zu bytes, qos %ld%s", c->topic, c->payload_len, qos,
            retain ? ", retained" : "");
    if (MQTTAsync_send(c->client, c->topic, (int)c->payload_len, c->payload, (int)qos,
                       (int)retain, &r) != MQTTASYNC_SUCCESS)
        post_line(s, "+CMQTTPUB", 24);
    /* The module clears its buffers after a publish. */
    c->topic_len = c->payload_len = 0;
    return SIM_RES_OK;
}

static void subscribe_now(struct sim *s, const char *topic, int qos)
{
    struct sim_cmqtt *c = cm(s);
    if (!c->connected || !c->client) {
        post_line(s, "+CMQTTSUB", 11);
        return;
    }
    if (c->sub_hold) {
        /* A broker that never acknowledges: the host waits for the result
         * line after OK until `cmqtt_drop` (or its own timeout). */
        c->sub_hold = false;
        sim_log(s, "cmqtt: subscribe %s held (no result)", topic);
        sim_event(s, "cmqtt sub-held %s", topic);
        return;
    }
    MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
    r.onSuccess = on_sub_ok;
    r.onFailure = on_sub_fail;
    r.context = cur_ctx;
    sim_log(s, "cmqtt: subscribe %s qos %d", topic, qos);
    if (MQTTAsync_subscribe(c->client, topic, qos, &r) != MQTTASYNC_SUCCESS)
        post_line(s, "+CMQTTSUB", 24);
}

static struct sim_result subtopic_done(struct sim *s, const uint8_t *d, size_t n, bool cancelled,
                                       bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->subtopic, d, n);
    c->subtopic[n] = '\0';
    c->have_subtopic = true;
    return SIM_RES_OK;
}

static struct sim_result sub_onestep_done(struct sim *s, const uint8_t *d, size_t n,
                                          bool cancelled, bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->subtopic, d, n);
    c->subtopic[n] = '\0';
    subscribe_now(s, c->subtopic, c->pending_qos);
    return SIM_RES_OK;
}

static struct sim_result cmd_subtopic(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long qos;
    size_t n = len_arg(at, CM_TOPIC_MAX, &p);
    if (!n || p.n != 3 || !sim_param_int(&p, 2, 0, 2, &qos))
        return SIM_RES_ERROR;
    cm(s)->subqos = (int)qos;
    return sim_prompt(s, n, subtopic_done);
}

static struct sim_result cmd_sub(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long qos;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || !idx0(&p))
        return SIM_RES_ERROR;
    if (p.n == 1) {
        if (!c->have_subtopic)
            return SIM_RES_ERROR;
        c->have_subtopic = false;
        subscribe_now(s, c->subtopic, c->subqos);
        return SIM_RES_OK;
    }
    size_t n = len_arg(at, CM_TOPIC_MAX, &p);
    if (!n || p.n != 3 || !sim_param_int(&p, 2, 0, 2, &qos))
        return SIM_RES_ERROR;
    c->pending_qos = (int)qos;
    return sim_prompt(s, n, sub_onestep_done);
}

static struct sim_result unsubtopic_done(struct sim *s, const uint8_t *d, size_t n,
                                         bool cancelled, bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    memcpy(c->unsubtopic, d, n);
    c->unsubtopic[n] = '\0';
    c->have_unsubtopic = true;
    return SIM_RES_OK;
}

static struct sim_result cmd_unsubtopic(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t n = len_arg(at, CM_TOPIC_MAX, &p);
    if (!n || p.n != 2)
        return SIM_RES_ERROR;
    return sim_prompt(s, n, unsubtopic_done);
}

static struct sim_result cmd_unsub(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long dup;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 2 || !idx0(&p) ||
        !sim_param_int(&p, 1, 0, 1, &dup) || !c->have_unsubtopic)
        return SIM_RES_ERROR;
    c->have_unsubtopic = false;
    if (!c->connected || !c->client) {
        post_line(s, "+CMQTTUNSUB", 11);
        return SIM_RES_OK;
    }
    MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
    r.onSuccess = on_unsub_ok;
    r.onFailure = on_unsub_fail;
    r.context = cur_ctx;
    sim_log(s, "cmqtt: unsubscribe %s", c->unsubtopic);
    if (MQTTAsync_unsubscribe(c->client, c->unsubtopic, &r) != MQTTASYNC_SUCCESS)
        post_line(s, "+CMQTTUNSUB", 24);
    return SIM_RES_OK;
}

/* ---- TLS ---- */

static struct sim_result certdown_done(struct sim *s, const uint8_t *d, size_t n, bool cancelled,
                                       bool overflow)
{
    struct sim_cmqtt *c = cm(s);
    char path[] = "/tmp/m2m-sim-cert-XXXXXX";
    if (cancelled || overflow)
        return SIM_RES_ERROR;
    int fd = mkstemp(path);
    if (fd < 0)
        return SIM_RES_ERROR;
    bool ok = write(fd, d, n) == (ssize_t)n;
    close(fd);
    if (!ok) {
        unlink(path);
        return SIM_RES_ERROR;
    }
    /* A file of the same name is replaced; else the first free slot. */
    size_t slot = SIM_CERT_FILES;
    for (size_t i = 0; i < SIM_CERT_FILES; i++) {
        if (strcmp(c->certs[i].name, c->cert_pending) == 0) {
            slot = i;
            break;
        }
        if (!c->certs[i].name[0] && slot == SIM_CERT_FILES)
            slot = i;
    }
    if (slot == SIM_CERT_FILES) {
        unlink(path);
        return SIM_RES_ERROR;
    }
    if (c->certs[slot].path[0])
        unlink(c->certs[slot].path);
    snprintf(c->certs[slot].path, sizeof(c->certs[slot].path), "%s", path);
    snprintf(c->certs[slot].name, sizeof(c->certs[slot].name), "%s", c->cert_pending);
    /* The size only: a key's bytes stay out of the log. */
    sim_log(s, "cmqtt: certificate %s, %zu bytes", c->certs[slot].name, n);
    return SIM_RES_OK;
}

static struct sim_result cmd_certdown(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long len;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 2 ||
        !p.quoted[0] || !p.v[0][0] || strlen(p.v[0]) >= sizeof(cm(s)->cert_pending) ||
        !sim_param_int(&p, 1, 1, SIM_DATA_MAX, &len))
        return SIM_RES_ERROR;
    snprintf(cm(s)->cert_pending, sizeof(cm(s)->cert_pending), "%s", p.v[0]);
    return sim_prompt(s, (size_t)len, certdown_done);
}

static struct sim_result cmd_csslcfg(struct sim *s, const struct sim_at *at)
{
    struct sim_cmqtt *c = cm(s);
    struct sim_params p;
    long v;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 3 ||
        !sim_param_int(&p, 1, 0, 9, &v) || v != 0)
        return SIM_RES_ERROR;
    if (strcmp(p.v[0], "sslversion") == 0 && sim_param_int(&p, 2, 0, 4, &v))
        return SIM_RES_OK;
    if (strcmp(p.v[0], "authmode") == 0 && sim_param_int(&p, 2, 0, 3, &v)) {
        c->authmode = (int)v;
        return SIM_RES_OK;
    }
    if (strcmp(p.v[0], "cacert") == 0 && p.quoted[2] && strlen(p.v[2]) < sizeof(c->cacert)) {
        snprintf(c->cacert, sizeof(c->cacert), "%s", p.v[2]);
        return SIM_RES_OK;
    }
    if (strcmp(p.v[0], "clientcert") == 0 && p.quoted[2] &&
        strlen(p.v[2]) < sizeof(c->clientcert)) {
        snprintf(c->clientcert, sizeof(c->clientcert), "%s", p.v[2]);
        return SIM_RES_OK;
    }
    if (strcmp(p.v[0], "clientkey") == 0 && p.quoted[2] &&
        strlen(p.v[2]) < sizeof(c->clientkey)) {
        snprintf(c->clientkey, sizeof(c->clientkey), "%s", p.v[2]);
        return SIM_RES_OK;
    }
    if (strcmp(p.v[0], "enableSNI") == 0 && sim_param_int(&p, 2, 0, 1, &v))
        return SIM_RES_OK;
    return SIM_RES_ERROR;
}

static struct sim_result cmd_sslcfg(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long v;
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 2 || !idx0(&p) ||
        !sim_param_int(&p, 1, 0, 9, &v) || v != 0)
        return SIM_RES_ERROR;
    cm(s)->ssl_ctx_bound = true;
    return SIM_RES_OK;
}

/* Longest names first: "+CMQTTSUB" is a prefix of "+CMQTTSUBTOPIC". */
const struct sim_cmd sim_cmqtt_cmds[] = {
    {"+CMQTTSTART", false, 0, cmd_start},
    {"+CMQTTSTOP", false, 0, cmd_stop},
    {"+CMQTTACCQ", false, 0, cmd_accq},
    {"+CMQTTREL", false, 0, cmd_rel},
    {"+CMQTTCFG", false, 0, cmd_cfg},
    {"+CMQTTCONNECT", false, 0, cmd_connect},
    {"+CMQTTDISC", false, 0, cmd_disc},
    {"+CMQTTTOPIC", false, 0, cmd_topic},
    {"+CMQTTPAYLOAD", false, 0, cmd_payload},
    {"+CMQTTPUB", false, 0, cmd_pub},
    {"+CMQTTWILLTOPIC", false, 0, cmd_willtopic},
    {"+CMQTTWILLMSG", false, 0, cmd_willmsg},
    {"+CMQTTSUBTOPIC", false, 0, cmd_subtopic},
    {"+CMQTTSUB", false, 0, cmd_sub},
    {"+CMQTTUNSUBTOPIC", false, 0, cmd_unsubtopic},
    {"+CMQTTUNSUB", false, 0, cmd_unsub},
    {"+CMQTTSSLCFG", false, 0, cmd_sslcfg},
    {"+CSSLCFG", false, 0, cmd_csslcfg},
    {"+CCERTDOWN", false, 0, cmd_certdown},
    {NULL, false, 0, NULL},
};

/* ---- control ---- */

/* `cmqtt_chunk <n>`: payload chunks of n bytes (1-1500) from now on. */
static void ctl_chunk(struct sim *s, char *args)
{
    long n;
    if (!sim_parse_long(args, 1, CM_CHUNK, &n)) {
        sim_ctl_error(s, "usage: cmqtt_chunk <1-1500>");
        return;
    }
    cm(s)->chunk = (size_t)n;
    sim_ctl_done(s);
}

/* `cmqtt_sub_hold`: the next AT+CMQTTSUB gets its OK and then nothing. */
static void ctl_sub_hold(struct sim *s, char *args)
{
    (void)args;
    cm(s)->sub_hold = true;
    sim_ctl_done(s);
}

/* `cmqtt_disc_hold`: the next AT+CMQTTDISC gets its OK and then nothing. */
static void ctl_disc_hold(struct sim *s, char *args)
{
    (void)args;
    cm(s)->disc_hold = true;
    sim_ctl_done(s);
}

/* The connection to the broker ends as a network loss ends it: the TCP
 * socket (paho's, found by its peer's port) is shut down under paho before
 * anything else, so no DISCONNECT reaches the broker, which therefore
 * publishes the will. */
static void cut_connection(struct sim *s, int port)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        struct stat st;
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);

        if (de->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) < 0 ||
            !S_ISSOCK(st.st_mode) || getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
            continue;
        if ((peer.ss_family == AF_INET &&
             ntohs(((struct sockaddr_in *)&peer)->sin_port) == port) ||
            (peer.ss_family == AF_INET6 &&
             ntohs(((struct sockaddr_in6 *)&peer)->sin6_port) == port)) {
            shutdown(fd, SHUT_RDWR);
            sim_log(s, "cmqtt: connection to port %d cut", port);
        }
    }
    closedir(d);
}

/* `cmqtt_drop [<cause 1-3>]`: the remote broker drops the module: the
 * connection is cut without a DISCONNECT (the broker sees the client
 * leave, and publishes its will) and +CMQTTCONNLOST: 0,<cause> (default
 * 3, network closed) comes when output may flow. A command waiting for
 * its result line (a held SUB) gets none. */
static void ctl_drop(struct sim *s, char *args)
{
    struct sim_cmqtt *c = cm(s);
    long cause = 3;

    if (*args && !sim_parse_long(args, 1, 3, &cause)) {
        sim_ctl_error(s, "usage: cmqtt_drop [<cause 1-3>]");
        return;
    }
    if (!c->connected) {
        sim_ctl_error(s, "not connected");
        return;
    }
    cut_connection(s, c->broker_port);
    destroy_client(c);                /* gen++: its late events are dropped */
    post_simple(c, EV_LOST, c->gen, (int)cause);
    sim_ctl_done(s);
}

const struct sim_ctl sim_cmqtt_ctls[] = {
    {"cmqtt_chunk", ctl_chunk},
    {"cmqtt_sub_hold", ctl_sub_hold},
    {"cmqtt_disc_hold", ctl_disc_hold},
    {"cmqtt_drop", ctl_drop},
    {NULL, NULL},
};
