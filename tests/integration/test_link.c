/* mqtt/link against a real mosquitto (and, for the 3.1.1 fallback, a fake
 * broker that refuses MQTT 5). The loop runs on the test thread; every wait
 * is "run the loop until X", bounded by a deadline, never a fixed sleep.
 *
 * The same binary is its own will-test child: `itest_link --will-child URI
 * TOPIC` connects a link and waits to be killed. */
#include "harness.h"

#include <MQTTAsync.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "mqtt/link.h"

extern char **environ;

/* This program's path, for the will child (readlink, which valgrind
 * answers with the client's path, unlike an exec of /proc/self/exe). */
static char self_path[4096];

#define MAX_RX 64
#define MAX_ACKS 64

struct rx {
    char topic[128];
    uint8_t payload[256];
    size_t len;
    int qos;
    bool retained;
    bool has_rt;
    char rt[128];
    uint8_t corr[64];
    size_t corr_len;
    uint64_t seq;
};

struct t;

struct ack {
    struct t *t;
    int status;
    int calls;
};

struct t {
    struct h_broker broker;
    bool broker_used;
    struct h_mqtt peer, late;
    struct loop *loop;
    struct mqtt_link *link;
    const char *sub_on_connect;   /* subscribed in the connected callback */

    int connected, disconnected;
    char reason[256];
    struct rx rx[MAX_RX];
    size_t n_rx;
    struct ack acks[MAX_ACKS];
    size_t n_acks;
    bool free_in_message;         /* the message callback frees the link */

    int poke[2];                  /* persist (paho's thread) wakes the loop */
    _Atomic int persist_calls;
    _Atomic int persist_refuse;   /* refuse this many calls */
    _Atomic uint64_t next_seq;

    /* run_until */
    bool (*pred)(struct t *);
    size_t want;
    size_t want_ack;
};

/* ---- plumbing ------------------------------------------------------------- */

static bool run_until_at(const char *file, int line, struct t *t, bool (*pred)(struct t *),
                         int timeout_ms, const char *what);
#define RUN_UNTIL(t, pred, ms) run_until_at(__FILE__, __LINE__, (t), (pred), (ms), #pred)

static int64_t deadline_cb(void *ctx)
{
    struct t *t = ctx;
    loop_stop(t->loop);
    return 0;
}

static void check_pred(struct t *t)
{
    if (t->pred && t->pred(t))
        loop_stop(t->loop);
}

static bool run_until_at(const char *file, int line, struct t *t, bool (*pred)(struct t *),
                         int timeout_ms, const char *what)
{
    if (pred(t))
        return true;
    uint64_t id = 0;
    assert_int_equal(loop_add_timer(t->loop, h_ms(timeout_ms), deadline_cb, t, &id), 0);
    t->pred = pred;
    loop_run(t->loop);
    t->pred = NULL;
    loop_cancel_timer(t->loop, id);
    if (!pred(t))
        h_fail_at(file, line, "timed out after %d ms waiting for %s", h_ms(timeout_ms), what);
    return true;
}

static void on_connected(void *ctx)
{
    struct t *t = ctx;
    t->connected++;
    if (t->sub_on_connect)
        assert_int_equal(mqtt_link_subscribe(t->link, t->sub_on_connect, 1), 0);
    check_pred(t);
}

static void on_disconnected(void *ctx, const char *reason)
{
    struct t *t = ctx;
    t->disconnected++;
    snprintf(t->reason, sizeof t->reason, "%s", reason);
    check_pred(t);
}

static void on_message(void *ctx, const struct mqtt_link_msg *m)
{
    struct t *t = ctx;
    if (t->n_rx < MAX_RX) {
        struct rx *r = &t->rx[t->n_rx++];
        snprintf(r->topic, sizeof r->topic, "%s", m->topic);
        r->len = m->len < sizeof r->payload ? m->len : sizeof r->payload;
        memcpy(r->payload, m->payload, r->len);
        r->qos = m->qos;
        r->retained = m->retained;
        r->has_rt = m->response_topic != NULL;
        if (m->response_topic)
            snprintf(r->rt, sizeof r->rt, "%s", m->response_topic);
        r->corr_len = m->correlation_len < sizeof r->corr ? m->correlation_len : sizeof r->corr;
        if (m->correlation)
            memcpy(r->corr, m->correlation, r->corr_len);
        r->seq = m->seq;
    }
    if (t->free_in_message) {
        mqtt_link_free(t->link);
        t->link = NULL;
    }
    check_pred(t);
}

static void on_ack(void *ctx, int status)
{
    struct ack *a = ctx;
    a->status = status;
    a->calls++;
    check_pred(a->t);
}

static int persist(void *ctx, const char *topic, const void *payload, size_t len,
                   bool redelivered, uint64_t *seq)
{
    struct t *t = ctx;
    (void)redelivered;
    (void)topic;
    (void)payload;
    (void)len;
    atomic_fetch_add(&t->persist_calls, 1);
    /* The predicate may be waiting on this call, and nothing else would
     * wake the loop when it refuses. */
    ssize_t w = write(t->poke[1], "", 1);
    (void)w;
    int refuse = atomic_load(&t->persist_refuse);
    if (refuse > 0) {
        atomic_store(&t->persist_refuse, refuse - 1);
        return -EIO;
    }
    *seq = atomic_fetch_add(&t->next_seq, 1) + 1;
    return 0;
}

static bool p_connected1(struct t *t) { return t->connected >= 1; }
static bool p_connected2(struct t *t) { return t->connected >= 2; }
static bool p_disconnected(struct t *t) { return t->disconnected >= 1; }
static bool p_rx(struct t *t) { return t->n_rx >= t->want; }
static bool p_ack(struct t *t) { return t->acks[t->want_ack].calls > 0; }
static bool p_persisted(struct t *t) { return atomic_load(&t->persist_calls) >= (int)t->want; }

static struct ack *new_ack(struct t *t)
{
    assert_true(t->n_acks < MAX_ACKS);
    struct ack *a = &t->acks[t->n_acks++];
    a->t = t;
    a->status = 1;
    a->calls = 0;
    return a;
}

/* Publishes and runs the loop until the ack came; returns its status. */
static int publish_wait(struct t *t, const char *topic, const void *payload, size_t len, int qos,
                        bool retain)
{
    struct ack *a = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, topic, payload, len, qos, retain, NULL, 0, on_ack,
                                       a),
                     0);
    t->want_ack = (size_t)(a - t->acks);
    RUN_UNTIL(t, p_ack, H_TIMEOUT_MS);
    assert_int_equal(a->calls, 1);
    return a->status;
}

static void wait_rx(struct t *t, size_t n)
{
    t->want = n;
    RUN_UNTIL(t, p_rx, H_TIMEOUT_MS);
}

static const struct rx *find_rx(struct t *t, const char *topic)
{
    for (size_t i = 0; i < t->n_rx; i++)
        if (strcmp(t->rx[i].topic, topic) == 0)
            return &t->rx[i];
    h_fail("no message on %s among %zu received", topic, t->n_rx);
}

static struct mqtt_link *make_link_ca(struct t *t, const char *uri, const char *will,
                                      const char *ca_file)
{
    static const struct mqtt_link_cbs cbs = {
        .connected = on_connected,
        .disconnected = on_disconnected,
        .message = on_message,
    };
    char id[64];
    snprintf(id, sizeof id, "link-%d-%zu", (int)getpid(), (size_t)(uintptr_t)t % 100000);
    struct mqtt_link_opts o = {
        .uri = uri,
        .client_id = id,
        .keepalive = 30,
        .will_topic = will,
        .persist = persist,
        .persist_ctx = t,
        .ca_file = ca_file,
    };
    t->link = mqtt_link_new(t->loop, &o, &cbs, t);
    assert_non_null(t->link);
    return t->link;
}

static struct mqtt_link *make_link(struct t *t, const char *uri, const char *will)
{
    return make_link_ca(t, uri, will, NULL);
}

static void on_poke(void *ctx, int fd, short revents)
{
    (void)revents;
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    check_pred(ctx);
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->loop = loop_new();
    if (!t->loop || pipe2(t->poke, O_NONBLOCK | O_CLOEXEC) < 0 ||
        loop_add_fd(t->loop, t->poke[0], POLLIN, on_poke, t) < 0)
        return -1;
    if (getenv("M2M_IT_DEBUG"))
        log_set_level(LOG_DEBUG);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    if (!t)
        return 0;
    mqtt_link_free(t->link);
    h_mqtt_disconnect(&t->peer);
    h_mqtt_disconnect(&t->late);
    if (t->broker_used)
        h_broker_cleanup(&t->broker, false);
    loop_del_fd(t->loop, t->poke[0]);
    close(t->poke[0]);
    close(t->poke[1]);
    loop_free(t->loop);
    free(t);
    *state = NULL;
    return 0;
}

static void start_broker(struct t *t)
{
    h_broker_start(&t->broker);
    t->broker_used = true;
}

/* One MQTT 5 publish with a Response Topic and Correlation Data, through a
 * plain paho client (the harness's client speaks no properties). */
struct p5 {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;     /* 1 ok, -1 failed */
};

static void p5_ok(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    struct p5 *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void p5_fail(void *ctx, MQTTAsync_failureData5 *d)
{
    (void)d;
    struct p5 *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->done = -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static bool p5_wait(struct p5 *p, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (p->done == 0 && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
        ;
    bool ok = p->done == 1;
    p->done = 0;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void publish_v5_request(const struct h_broker *b, const char *topic, const char *payload,
                               const char *response_topic, const char *corr)
{
    char uri[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", b->port);
    MQTTAsync c;
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    assert_int_equal(MQTTAsync_createWithOptions(&c, uri, "link-v5-requester",
                                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co),
                     MQTTASYNC_SUCCESS);
    struct p5 p = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    o.cleanstart = 1;
    o.onSuccess5 = p5_ok;
    o.onFailure5 = p5_fail;
    o.context = &p;
    assert_int_equal(MQTTAsync_connect(c, &o), MQTTASYNC_SUCCESS);
    assert_true(p5_wait(&p, h_ms(H_TIMEOUT_MS)));

    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)payload;
    m.payloadlen = (int)strlen(payload);
    m.qos = 1;
    MQTTProperty rt = { .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };
    rt.value.data.data = (char *)response_topic;
    rt.value.data.len = (int)strlen(response_topic);
    MQTTProperty cd = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
    cd.value.data.data = (char *)corr;
    cd.value.data.len = (int)strlen(corr);
    MQTTProperties_add(&m.properties, &rt);
    MQTTProperties_add(&m.properties, &cd);
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = p5_ok;
    ro.onFailure5 = p5_fail;
    ro.context = &p;
    assert_int_equal(MQTTAsync_sendMessage(c, topic, &m, &ro), MQTTASYNC_SUCCESS);
    MQTTProperties_free(&m.properties);
    assert_true(p5_wait(&p, h_ms(H_TIMEOUT_MS)));

    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    d.onSuccess5 = p5_ok;
    d.onFailure5 = p5_fail;
    d.context = &p;
    if (MQTTAsync_disconnect(c, &d) == MQTTASYNC_SUCCESS)
        p5_wait(&p, h_ms(2000));
    MQTTAsync_destroy(&c);
}

/* ---- tests ---------------------------------------------------------------- */

/* This process's TCP sockets connected to 127.0.0.1:port, and how many of
 * them have TCP_NODELAY set. */
static void broker_sockets(int port, int *n, int *nodelay)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    assert_non_null(d);
    *n = *nodelay = 0;
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name), type = 0, on = 0;
        socklen_t tl = sizeof type, ol = sizeof on;
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        if (fd < 3 || fd == dirfd(d) ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
            getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 || peer.sin_family != AF_INET ||
            ntohs(peer.sin_port) != port || peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
            continue;
        (*n)++;
        if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol) == 0 && on)
            (*nodelay)++;
    }
    closedir(d);
}

/* The link's socket to the broker has Nagle off (paho sets nothing): the
 * only connection of this process to the broker, found from outside the
 * link the way the link finds it, has TCP_NODELAY. After a broker restart
 * the new socket has it too. */
static void test_nodelay(void **state)
{
    struct t *t = *state;
    int n, nd;
    start_broker(t);
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    broker_sockets(t->broker.port, &n, &nd);
    if (n != 1 || nd != 1)
        h_fail("%d socket(s) to the broker, %d with TCP_NODELAY (want 1 and 1)", n, nd);

    h_broker_restart(&t->broker);
    RUN_UNTIL(t, p_connected2, 30000);
    broker_sockets(t->broker.port, &n, &nd);
    if (n != 1 || nd != 1)
        h_fail("after the reconnect: %d socket(s) to the broker, %d with TCP_NODELAY", n, nd);
}

struct burst {
    struct t *t;
    int want, acked, failed;
};

static void on_burst_ack(void *ctx, int status)
{
    struct burst *b = ctx;
    if (status == 0)
        b->acked++;
    else
        b->failed++;
    check_pred(b->t);
}

static struct burst *g_burst;
static bool p_burst_done(struct t *t)
{
    (void)t;
    return g_burst->acked + g_burst->failed >= g_burst->want;
}

/* More QoS 1 publishes at once than the broker's Receive Maximum
 * (mosquitto: 20). paho holds the excess and its send thread sleeps up to
 * 1 s per round, since a PUBACK does not wake it: 60 publishes took about
 * 3 s. The link keeps the excess itself and hands it over as PUBACKs come,
 * so they are all acknowledged well within one such second, and arrive in
 * order. Then 500 at once: paho refuses a request once 100 wait in it
 * (-EAGAIN from the link); the link's queue takes them all. */
static void test_receive_maximum(void **state)
{
    struct t *t = *state;
    struct burst b = { .t = t, .want = 60 };
    char payload[16];
    start_broker(t);
    t->sub_on_connect = "rm/#";
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    /* The subscription is made: a first publish comes back. */
    assert_int_equal(publish_wait(t, "rm/first", "f", 1, 1, false), 0);
    wait_rx(t, 1);

    g_burst = &b;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < b.want; i++) {
        snprintf(payload, sizeof payload, "%d", i);
        int rc = mqtt_link_publish(t->link, "rm/seq", payload, strlen(payload), 1, false, NULL, 0,
                                   on_burst_ack, &b);
        if (rc != 0)
            h_fail("publish %d of %d: %s", i, b.want, strerror(-rc));
    }
    RUN_UNTIL(t, p_burst_done, H_TIMEOUT_MS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_int_equal(b.failed, 0);
    if (ms >= h_ms(900))
        h_fail("%d QoS 1 publishes took %ld ms to be acknowledged", b.want, ms);
    wait_rx(t, 1 + (size_t)b.want);
    for (int i = 0; i < b.want; i++) {
        const struct rx *r = &t->rx[1 + i];
        snprintf(payload, sizeof payload, "%d", i);
        if (strcmp(r->topic, "rm/seq") != 0 || r->len != strlen(payload) ||
            memcmp(r->payload, payload, r->len) != 0)
            h_fail("message %d: '%.*s' on %s, want '%s'", i, (int)r->len, r->payload, r->topic,
                   payload);
    }

    struct burst b2 = { .t = t, .want = 500 };
    g_burst = &b2;
    for (int i = 0; i < b2.want; i++) {
        int rc = mqtt_link_publish(t->link, "rm/many", "0123456789", 10, 1, false, NULL, 0,
                                   on_burst_ack, &b2);
        if (rc != 0)
            h_fail("publish %d of %d: %s", i, b2.want, strerror(-rc));
    }
    RUN_UNTIL(t, p_burst_done, H_TIMEOUT_MS);
    assert_int_equal(b2.failed, 0);
    assert_int_equal(b2.acked, b2.want);
}

/* Malformed URIs are refused at start; unix:// needs a paho built with
 * UNIXSOCKET, which Debian's is not. */
static void test_uris(void **state)
{
    struct t *t = *state;
    static const char *const bad[] = {
        "http://127.0.0.1",   "mqtt://",          "mqtt://:1883",      "mqtt://h:0",
        "mqtt://h:65536",     "mqtt://h:12x",     "mqtt://u:p@h",      "mqtt://h/path",
        "mqtt://[::1",        "mqtt://[]:1",      "mqtt://[::1]x",     "unix://",
        "unix://relative",    "mqtt://h:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_link(t, bad[i], NULL);
        int rc = mqtt_link_start(t->link);
        if (rc != -EINVAL)
            h_fail("'%s': expected -EINVAL, got %d", bad[i], rc);
        mqtt_link_free(t->link);
        t->link = NULL;
    }

    make_link(t, "mqtt://localhost", "bad/+/will");
    assert_int_equal(mqtt_link_start(t->link), -EINVAL);
    mqtt_link_free(t->link);
    t->link = NULL;

    make_link(t, "unix:///tmp/m2m-link-test.sock", NULL);
    int rc = mqtt_link_start(t->link);
    mqtt_link_free(t->link);
    t->link = NULL;
    if (rc == 0)
        print_message("note: this paho supports unix:// sockets\n");
    else
        assert_int_equal(rc, -EPROTONOSUPPORT);

    /* Well-formed: accepted (nothing listens on port 1 of [::1]). */
    make_link(t, "mqtts://[::1]:1", NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    assert_int_equal(mqtt_link_start(t->link), -EALREADY);
    assert_false(mqtt_link_connected(t->link));
    assert_int_equal(mqtt_link_protocol(t->link), 0);
    assert_int_equal(mqtt_link_publish(t->link, "a/b", "x", 1, 1, false, NULL, 0, on_ack,
                                       new_ack(t)),
                     -ENOTCONN);
    assert_int_equal(mqtt_link_subscribe(t->link, "a/#", 1), -ENOTCONN);
    assert_int_equal(t->acks[0].calls, 0);
    mqtt_link_free(t->link);
    t->link = NULL;

    make_link(t, "mqtt://localhost/", NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    mqtt_link_free(t->link);
    t->link = NULL;
}

/* Connect, subscribe in the connected callback, publish to ourselves:
 * binary payload, QoS 1 ack, QoS 0 ack, Correlation Data, persist's seq. */
static void test_round_trip(void **state)
{
    struct t *t = *state;
    start_broker(t);
    t->sub_on_connect = "lt/#";
    make_link(t, t->broker.uri, "lt/availability");
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_true(mqtt_link_connected(t->link));
    assert_int_equal(mqtt_link_protocol(t->link), 5);

    /* The subscription is in flight; our own QoS 1 publish after it is
     * ordered behind it on the same connection. */
    static const uint8_t bin[] = { 'a', 0, 'b', 0xff };
    assert_int_equal(publish_wait(t, "lt/bin", bin, sizeof bin, 1, false), 0);
    wait_rx(t, 1);
    const struct rx *r = find_rx(t, "lt/bin");
    assert_int_equal(r->len, sizeof bin);
    assert_memory_equal(r->payload, bin, sizeof bin);
    assert_int_equal(r->qos, 1);
    assert_false(r->retained);
    assert_false(r->has_rt);
    assert_int_equal(r->seq, 1);
    assert_int_equal(atomic_load(&t->persist_calls), 1);

    /* QoS 0: acked once written. Empty payload. */
    assert_int_equal(publish_wait(t, "lt/q0", NULL, 0, 0, false), 0);
    wait_rx(t, 2);
    r = find_rx(t, "lt/q0");
    assert_int_equal(r->len, 0);
    assert_int_equal(r->qos, 0);

    /* Correlation Data on our publish (a reply to an MQTT 5 request). */
    static const uint8_t corr[] = { 0, 1, 2, 0xfe };
    struct ack *a = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, "lt/reply", "{}", 2, 1, false, corr, sizeof corr,
                                       on_ack, a),
                     0);
    wait_rx(t, 3);
    r = find_rx(t, "lt/reply");
    assert_false(r->has_rt);
    assert_int_equal(r->corr_len, sizeof corr);
    assert_memory_equal(r->corr, corr, sizeof corr);
    t->want_ack = (size_t)(a - t->acks);
    RUN_UNTIL(t, p_ack, H_TIMEOUT_MS);
    assert_int_equal(a->status, 0);

    /* Bad arguments are refused without an ack. */
    assert_int_equal(mqtt_link_publish(t->link, "lt/+", "x", 1, 1, false, NULL, 0, NULL, NULL),
                     -EINVAL);
    assert_int_equal(mqtt_link_publish(t->link, "", "x", 1, 1, false, NULL, 0, NULL, NULL),
                     -EINVAL);
    assert_int_equal(mqtt_link_publish(t->link, "lt/x", "x", 1, 3, false, NULL, 0, NULL, NULL),
                     -EINVAL);
    assert_int_equal(mqtt_link_subscribe(t->link, "lt/#", 3), -EINVAL);
}

/* An MQTT 5 request's Response Topic and Correlation Data reach the message
 * callback; a 3.1.1 publish arrives without them. */
static void test_v5_request_properties(void **state)
{
    struct t *t = *state;
    start_broker(t);
    t->sub_on_connect = "cmd/#";
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    /* The SUBACK is not observable through the link: a QoS 1 publish to
     * ourselves on the subscribed topic proves the subscription is live. */
    assert_int_equal(publish_wait(t, "cmd/ping", "p", 1, 1, false), 0);
    wait_rx(t, 1);

    publish_v5_request(&t->broker, "cmd/sms/send", "{\"to\":\"+49\"}", "reply/here", "abc-42");
    wait_rx(t, 2);
    const struct rx *r = find_rx(t, "cmd/sms/send");
    assert_true(r->has_rt);
    assert_string_equal(r->rt, "reply/here");
    assert_int_equal(r->corr_len, 6);
    assert_memory_equal(r->corr, "abc-42", 6);
    assert_int_equal(r->qos, 1);
    assert_int_equal(r->seq, 2);

    h_mqtt_connect(&t->peer, t->broker.uri, "link-peer", true);
    h_mqtt_publish(&t->peer, "cmd/v3", "plain", 1, false);
    wait_rx(t, 3);
    r = find_rx(t, "cmd/v3");
    assert_false(r->has_rt);
    assert_int_equal(r->corr_len, 0);
    assert_int_equal(r->len, 5);
}

/* The retained flag reaches the callback, and persist is not asked to
 * journal retained messages. */
static void test_retained(void **state)
{
    struct t *t = *state;
    start_broker(t);
    h_mqtt_connect(&t->peer, t->broker.uri, "link-peer", true);
    h_mqtt_publish(&t->peer, "ret/cmd", "stale", 1, true);

    t->sub_on_connect = "ret/#";
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    wait_rx(t, 1);
    const struct rx *r = find_rx(t, "ret/cmd");
    assert_true(r->retained);
    assert_int_equal(r->len, 5);
    assert_int_equal(r->seq, 0);
    assert_int_equal(atomic_load(&t->persist_calls), 0);

    /* A live message on the same topic is not retained, and is journalled. */
    h_mqtt_publish(&t->peer, "ret/cmd", "fresh", 1, false);
    wait_rx(t, 2);
    assert_false(t->rx[1].retained);
    assert_int_equal(t->rx[1].seq, 1);
}

/* persist refusing: paho keeps the message and offers it again on the next
 * packet from the broker; it arrives once, after the accepting call. */
static void test_persist_refusal(void **state)
{
    struct t *t = *state;
    start_broker(t);
    t->sub_on_connect = "pr/#";
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(publish_wait(t, "pr/ping", "p", 1, 1, false), 0);
    wait_rx(t, 1);

    atomic_store(&t->persist_refuse, 1);
    h_mqtt_connect(&t->peer, t->broker.uri, "link-peer", true);
    h_mqtt_publish(&t->peer, "pr/cmd", "once", 1, false);
    t->want = 2;
    RUN_UNTIL(t, p_persisted, H_TIMEOUT_MS);
    assert_int_equal(t->n_rx, 1);

    /* Any packet from the broker makes paho retry: our own publish's PUBACK. */
    assert_int_equal(publish_wait(t, "other/x", "y", 1, 1, false), 0);
    wait_rx(t, 2);
    const struct rx *r = find_rx(t, "pr/cmd");
    assert_int_equal(r->len, 4);
    assert_int_equal(r->seq, 2);
    assert_int_equal(atomic_load(&t->persist_calls), 3);
    assert_int_equal(t->n_rx, 2);
}

/* mqtt_link_stop publishes "offline" retained and disconnects cleanly. */
static void test_stop_publishes_offline(void **state)
{
    struct t *t = *state;
    start_broker(t);
    h_mqtt_connect(&t->peer, t->broker.uri, "link-peer", true);
    h_mqtt_subscribe(&t->peer, "st/availability");

    make_link(t, t->broker.uri, "st/availability");
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(publish_wait(t, "st/availability", "online", 6, 1, true), 0);
    h_mqtt_wait_payload(&t->peer, "st/availability", "online", H_TIMEOUT_MS);

    mqtt_link_stop(t->link, h_ms(5000));
    assert_false(mqtt_link_connected(t->link));
    assert_int_equal(mqtt_link_publish(t->link, "st/x", "x", 1, 1, false, NULL, 0, NULL, NULL),
                     -ENOTCONN);
    h_mqtt_wait_payload(&t->peer, "st/availability", "offline", H_TIMEOUT_MS);
    /* Clean disconnect: no disconnected callback (nothing was lost). */
    assert_int_equal(t->disconnected, 0);

    h_mqtt_connect(&t->late, t->broker.uri, "link-late", true);
    h_mqtt_subscribe(&t->late, "st/availability");
    h_mqtt_wait_payload(&t->late, "st/availability", "offline", H_TIMEOUT_MS);
    assert_true(t->late.last_retained);
}

/* ---- the will, from a process that dies ------------------------------------ */

static void child_connected(void *ctx)
{
    (void)ctx;
    /* Tell the parent; then wait to be killed. */
    ssize_t n = write(STDOUT_FILENO, "ready\n", 6);
    (void)n;
}

static void child_message(void *ctx, const struct mqtt_link_msg *m)
{
    (void)ctx;
    (void)m;
}

static void child_disconnected(void *ctx, const char *reason)
{
    (void)ctx;
    (void)reason;
}

static int64_t child_timeout(void *ctx)
{
    loop_stop(ctx);
    return 0;
}

static int will_child(const char *uri, const char *topic)
{
    struct loop *loop = loop_new();
    static const struct mqtt_link_cbs cbs = {
        .connected = child_connected,
        .disconnected = child_disconnected,
        .message = child_message,
    };
    struct mqtt_link_opts o = {
        .uri = uri, .client_id = "link-will-child", .keepalive = 30, .will_topic = topic,
    };
    struct mqtt_link *l = mqtt_link_new(loop, &o, &cbs, NULL);
    if (!l || mqtt_link_start(l) < 0)
        return 2;
    /* Bounded: the parent kills us long before. */
    uint64_t id;
    loop_add_timer(loop, 60000, child_timeout, loop, &id);
    loop_run(loop);
    mqtt_link_free(l);
    loop_free(loop);
    return 0;
}

static bool read_line_within(int fd, const char *want, int timeout_ms)
{
    char buf[256];
    size_t n = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms)
            return false;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)(timeout_ms - elapsed)) <= 0)
            continue;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = 0;
        if (strstr(buf, want))
            return true;
        if (n == sizeof buf - 1)
            n = 0;
    }
}

static void test_will_on_crash(void **state)
{
    struct t *t = *state;
    start_broker(t);
    h_mqtt_connect(&t->peer, t->broker.uri, "link-peer", true);
    h_mqtt_subscribe(&t->peer, "wc/availability");

    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    char *argv[] = { self_path, (char *)"--will-child", t->broker.uri, (char *)"wc/availability",
                     NULL };
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, self_path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);

    bool ready = read_line_within(out[0], "ready", h_ms(H_TIMEOUT_MS));
    close(out[0]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!ready)
        h_fail("the will child did not connect");

    h_mqtt_wait_payload(&t->peer, "wc/availability", "offline", H_TIMEOUT_MS);
    h_mqtt_connect(&t->late, t->broker.uri, "link-late", true);
    h_mqtt_subscribe(&t->late, "wc/availability");
    h_mqtt_wait_payload(&t->late, "wc/availability", "offline", H_TIMEOUT_MS);
    assert_true(t->late.last_retained);
}

/* ---- broker loss ----------------------------------------------------------- */

/* The broker dies with a QoS 1 publish unacknowledged: the ack fails with
 * -ENOTCONN, once; disconnected is called; a restarted broker on the same
 * port brings connected again, with the subscription renewed. */
static void test_broker_loss(void **state)
{
    struct t *t = *state;
    start_broker(t);
    t->sub_on_connect = "bl/#";
    make_link(t, t->broker.uri, "bl/availability");
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(publish_wait(t, "bl/ping", "1", 1, 1, false), 0);
    wait_rx(t, 1);

    /* Frozen, the broker takes the bytes (kernel buffers) and never acks. */
    assert_int_equal(kill(t->broker.pid, SIGSTOP), 0);
    struct ack *pending = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, "bl/lost", "x", 1, 1, false, NULL, 0, on_ack,
                                       pending),
                     0);
    assert_int_equal(kill(t->broker.pid, SIGKILL), 0);
    int status;
    waitpid(t->broker.pid, &status, 0);
    t->broker.pid = 0;

    RUN_UNTIL(t, p_disconnected, H_TIMEOUT_MS);
    assert_true(strlen(t->reason) > 0);
    assert_false(mqtt_link_connected(t->link));
    assert_int_equal(pending->calls, 1);
    assert_int_equal(pending->status, -ENOTCONN);
    assert_int_equal(mqtt_link_publish(t->link, "bl/x", "x", 1, 1, false, NULL, 0, NULL, NULL),
                     -ENOTCONN);

    h_broker_restart(&t->broker);
    RUN_UNTIL(t, p_connected2, 40000);
    assert_true(mqtt_link_connected(t->link));
    assert_int_equal(publish_wait(t, "bl/again", "2", 1, 1, false), 0);
    t->want = 2;
    for (;;) {
        RUN_UNTIL(t, p_rx, H_TIMEOUT_MS);
        if (strcmp(t->rx[t->n_rx - 1].topic, "bl/again") == 0)
            break;
        t->want = t->n_rx + 1;   /* bl/lost, if paho resent it: fine */
    }
    /* Whatever paho did with the lost publish afterwards, its ack ran once. */
    assert_int_equal(pending->calls, 1);
}

/* ---- 3.1.1 fallback, against a fake broker -------------------------------- */

struct fake {
    int lfd, port;
    pthread_t th;
    int levels[4];
    int n;
    _Atomic bool quit;
};

static bool read_full(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0)
            return false;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* Reads one packet; returns its type nibble, -1 on EOF/timeout. */
static int read_packet(int fd, uint8_t *body, size_t cap, size_t *len, int timeout_ms)
{
    uint8_t h;
    if (!read_full(fd, &h, 1, timeout_ms))
        return -1;
    size_t rl = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        uint8_t b;
        if (!read_full(fd, &b, 1, timeout_ms))
            return -1;
        rl |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (rl > cap)
        return -1;
    if (rl && !read_full(fd, body, rl, timeout_ms))
        return -1;
    *len = rl;
    return h >> 4;
}

/* A 3.1.1-only broker: refuses protocol level 5 with CONNACK code 1 (as
 * mosquitto 1.x does), accepts level 4 and answers PINGREQ. */
static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->quit) && f->n < 4) {
        struct pollfd p = { .fd = f->lfd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        uint8_t body[1024];
        size_t len;
        if (read_packet(c, body, sizeof body, &len, 5000) != 1 || len < 7) {
            close(c);
            continue;
        }
        int level = body[6];   /* after 00 04 'M' 'Q' 'T' 'T' */
        f->levels[f->n++] = level;
        if (level != 4) {
            static const uint8_t refuse[] = { 0x20, 0x02, 0x00, 0x01 };
            ssize_t w = write(c, refuse, sizeof refuse);
            (void)w;
            close(c);
            continue;
        }
        static const uint8_t accept_[] = { 0x20, 0x02, 0x00, 0x00 };
        ssize_t w = write(c, accept_, sizeof accept_);
        (void)w;
        for (;;) {
            int type = read_packet(c, body, sizeof body, &len, 200);
            if (type == 12) {          /* PINGREQ */
                static const uint8_t pong[] = { 0xd0, 0x00 };
                w = write(c, pong, sizeof pong);
            } else if (type == 14) {   /* DISCONNECT */
                break;
            } else if (type < 0) {
                if (atomic_load(&f->quit))
                    break;
                uint8_t probe;
                ssize_t r = recv(c, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                    break;
            }
        }
        close(c);
    }
    return NULL;
}

static void test_v311_fallback(void **state)
{
    struct t *t = *state;
    struct fake f = { .lfd = -1 };
    f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f.lfd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&a, &al), 0);
    f.port = ntohs(a.sin_port);
    assert_int_equal(listen(f.lfd, 4), 0);
    assert_int_equal(pthread_create(&f.th, NULL, fake_main, &f), 0);

    char uri[64];
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%d", f.port);
    make_link(t, uri, "fb/availability");
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(mqtt_link_protocol(t->link), 4);
    /* Correlation Data cannot travel on 3.1.1: dropped, the publish goes. */
    assert_int_equal(publish_wait(t, "fb/x", "y", 1, 0, false), 0);
    struct ack *a2 = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, "fb/y", "z", 1, 0, false, (const uint8_t *)"c", 1,
                                       on_ack, a2),
                     0);
    t->want_ack = (size_t)(a2 - t->acks);
    RUN_UNTIL(t, p_ack, H_TIMEOUT_MS);
    assert_int_equal(a2->status, 0);

    mqtt_link_free(t->link);
    t->link = NULL;
    atomic_store(&f.quit, true);
    pthread_join(f.th, NULL);
    close(f.lfd);
    assert_true(f.n >= 2);
    assert_int_equal(f.levels[0], 5);
    assert_int_equal(f.levels[1], 4);
}

/* ---- lifetime ---------------------------------------------------------------- */

/* Freed from inside its own message callback, with a QoS 1 ack pending:
 * the ack runs once with -ECANCELED or 0, nothing runs afterwards. */
static void test_free_in_callback(void **state)
{
    struct t *t = *state;
    start_broker(t);
    t->sub_on_connect = "fc/#";
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(publish_wait(t, "fc/ping", "1", 1, 1, false), 0);
    wait_rx(t, 1);

    t->free_in_message = true;
    struct ack *a = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, "fc/go", "2", 1, 1, false, NULL, 0, on_ack, a),
                     0);
    wait_rx(t, 2);
    assert_null(t->link);
    assert_int_equal(a->calls, 1);
    assert_true(a->status == 0 || a->status == -ECANCELED);
}

/* mqtt_link_free with publishes outstanding and the broker frozen. */
static void test_free_with_pending(void **state)
{
    struct t *t = *state;
    start_broker(t);
    make_link(t, t->broker.uri, NULL);
    assert_int_equal(mqtt_link_start(t->link), 0);
    RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
    assert_int_equal(kill(t->broker.pid, SIGSTOP), 0);
    struct ack *a = new_ack(t), *b = new_ack(t);
    assert_int_equal(mqtt_link_publish(t->link, "fp/a", "1", 1, 1, false, NULL, 0, on_ack, a), 0);
    assert_int_equal(mqtt_link_publish(t->link, "fp/b", "2", 1, 2, false, NULL, 0, on_ack, b), 0);
    mqtt_link_free(t->link);
    t->link = NULL;
    kill(t->broker.pid, SIGCONT);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->status, -ECANCELED);
    assert_int_equal(b->calls, 1);
    assert_int_equal(b->status, -ECANCELED);
}


/* ---- TLS ----------------------------------------------------------------------- */

static pid_t spawn_quiet(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

/* Runs argv to completion within timeout_ms; true on exit status 0. */
static bool run_cmd(char *const argv[], const char *log_path, int timeout_ms)
{
    pid_t pid = spawn_quiet(argv, log_path);
    if (pid < 0)
        return false;
    for (int waited = 0;; waited += 10) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (r < 0 || waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return false;
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static bool tcp_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void make_ca(const char *dir, const char *name, const char *log)
{
    char key[512], crt[512], subj[128];
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(subj, sizeof subj, "/CN=m2m test %s", name);
    char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                     "-days", "2", "-subj", subj, NULL };
    if (!run_cmd(argv, log, h_ms(20000)))
        h_fail("openssl could not make the %s certificate (see %s)", name, log);
}

/* mqtts:// with the CA file: connects and round-trips. With another CA the
 * server certificate is refused: no connection. */
static void test_tls(void **state)
{
    struct t *t = *state;
    if (access("/usr/bin/openssl", X_OK) != 0) {
        print_message("openssl not installed: TLS test skipped\n");
        skip();
    }
    char dir[] = "/tmp/m2m-link-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char log[300], ext[300], csr[300], key[300], crt[300], ca[300], cakey[300], conf[300];
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(ext, sizeof ext, "%s/ext.cnf", dir);
    snprintf(csr, sizeof csr, "%s/server.csr", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(crt, sizeof crt, "%s/server.crt", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);

    make_ca(dir, "ca", log);
    make_ca(dir, "other", log);
    char *req[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1", NULL };
    assert_true(run_cmd(req, log, h_ms(20000)));
    FILE *f = fopen(ext, "w");
    assert_non_null(f);
    fputs("subjectAltName=IP:127.0.0.1\n", f);
    fclose(f);
    char *sign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
                     "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext, NULL };
    assert_true(run_cmd(sign, log, h_ms(20000)));

    int port = pick_port();
    assert_true(port > 0);
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
               "allow_anonymous true\npersistence false\n%s",
            port, ca, crt, key, geteuid() == 0 ? "user root\n" : "");
    fclose(f);
    char *mosq[] = { "/usr/sbin/mosquitto", "-c", conf, NULL };
    pid_t broker = spawn_quiet(mosq, log);
    assert_true(broker > 0);
    bool up = false;
    for (int waited = 0; waited < h_ms(10000) && !up; waited += 10) {
        up = tcp_accepts(port);
        if (!up) {
            struct timespec ts = { 0, 10 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }

    char uri[64];
    snprintf(uri, sizeof uri, "mqtts://127.0.0.1:%d", port);
    if (up) {
        /* The wrong trust anchor first: refused, and no connected callback
         * within a window in which the right one connects many times over. */
        char other[300];
        snprintf(other, sizeof other, "%s/other.crt", dir);
        make_link_ca(t, uri, NULL, other);
        assert_int_equal(mqtt_link_start(t->link), 0);
        uint64_t id;
        loop_add_timer(t->loop, 3000, deadline_cb, t, &id);
        loop_run(t->loop);
        assert_int_equal(t->connected, 0);
        mqtt_link_free(t->link);
        t->link = NULL;

        t->sub_on_connect = "tls/#";
        make_link_ca(t, uri, NULL, ca);
        assert_int_equal(mqtt_link_start(t->link), 0);
        RUN_UNTIL(t, p_connected1, H_TIMEOUT_MS);
        assert_int_equal(publish_wait(t, "tls/x", "secret", 6, 1, false), 0);
        wait_rx(t, 1);
        assert_int_equal(t->rx[0].len, 6);
        mqtt_link_free(t->link);
        t->link = NULL;
    }
    int status;
    kill(broker, SIGTERM);
    waitpid(broker, &status, 0);
    if (!up)
        h_fail("mosquitto with TLS did not start (see %s)", log);
    char *rm[] = { "rm", "-rf", dir, NULL };
    run_cmd(rm, "/dev/null", 10000);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--will-child") == 0)
        return will_child(argv[2], argv[3]);
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0)
        return 1;
    self_path[n] = 0;

    const struct CMUnitTest all[] = {
        cmocka_unit_test_setup_teardown(test_uris, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodelay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_maximum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v5_request_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_publishes_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_will_on_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v311_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
        /* Last, after any TLS client: paho 1.3.11's MQTTAsync_destroy with
         * QoS 1/2 publishes unacknowledged leaves some of its heap-tracked
         * blocks behind; a later TLS client makes them unreachable and
         * LeakSanitizer fails the run. Here they are still reachable at
         * exit. */
        cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };
    /* M2M_IT_FILTER=test_tls,test_broker_loss runs only those. */
    struct CMUnitTest tests[sizeof all / sizeof all[0]];
    size_t n_tests = 0;
    const char *filter = getenv("M2M_IT_FILTER");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        size_t len = strlen(all[i].name);
        bool want = !filter || !*filter;
        for (const char *p = filter; !want && p && *p;) {
            want = strncmp(p, all[i].name, len) == 0 && (p[len] == ',' || p[len] == '\0');
            p = strchr(p, ',');
            p = p ? p + 1 : NULL;
        }
        if (want)
            tests[n_tests++] = all[i];
    }
    return _cmocka_run_group_tests("integration_link", tests, n_tests, NULL, NULL);
}
