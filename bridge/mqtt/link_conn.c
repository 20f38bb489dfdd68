/* The broker link's connection (see link_int.h for the other files): the
 * broker URI, the paho client and its connect options (the session, the
 * will, TLS), mqtt_link_start, what a connect, a refusal or a loss does,
 * and reconnecting. Requests over the connection are link_ops.c's.
 *
 * Reconnecting is ours, not paho's automaticReconnect: paho reports a
 * CONNACK refusal only for the first attempt of each MQTTAsync_connect, so
 * with its automatic retries a bridge that started while a 3.1.1-only
 * broker was down would retry MQTT 5 forever without a word, and a wrong
 * password would never be logged. A loop timer with the same back-off (1 s
 * doubling to 30 s, jittered) calls MQTTAsync_connect for every attempt. */
#include "mqtt/link_int.h"

#include "core/log.h"
#include "core/loop.h"

#include <MQTTAsync.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int do_connect(struct mqtt_link *l);

/* ---- helpers (loop thread) --------------------------------------------- */

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

/* What to set when the broker refuses the credentials, or their absence
 * (key: the v3 code or the v5 reason, as connect_failure_text's): a
 * clause for the log line, "" for other refusals. */
static const char *auth_advice(const struct mqtt_link *l, int key, char *buf, size_t n)
{
    buf[0] = '\0';
    if (key != 4 && key != 5 && key != MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD &&
        key != MQTTREASONCODE_NOT_AUTHORIZED)
        return buf;
    if (!l->username)
        snprintf(buf, n, ": the broker wants a user name and password: set "
                         "MODEM2MQTT_USERNAME and MODEM2MQTT_PASSWORD_FILE (or mqtt.username "
                         "and mqtt.password_file in the config file)");
    else
        snprintf(buf, n, ": the broker refuses user %s: check MODEM2MQTT_USERNAME and the "
                         "password in MODEM2MQTT_PASSWORD_FILE (or mqtt.username and "
                         "mqtt.password_file in the config file)",
                 l->username);
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

/* ---- the paho client ---------------------------------------------------- */

void link_destroy_client(struct mqtt_link *l)
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
        return link_errno_from_paho(rc);
    }
    rc = MQTTAsync_setCallbacks(c, cc, link_on_lost, link_on_arrived, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setConnected(c, cc, link_on_connected);
    if (rc == MQTTASYNC_SUCCESS && version == MQTTVERSION_5)
        rc = MQTTAsync_setDisconnected(c, cc, link_on_server_disconnect);
    if (rc != MQTTASYNC_SUCCESS) {
        MQTTAsync_destroy(&c);
        free(cc);
        return link_errno_from_paho(rc);
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
        co.onSuccess5 = link_on_connect_success5;
        co.onFailure5 = link_on_connect_failure5;
    } else {
        MQTTAsync_connectOptions v3 = MQTTAsync_connectOptions_initializer;
        co = v3;
        co.cleansession = 0;
        co.onFailure = link_on_connect_failure;
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
        ssl.ssl_error_cb = link_on_tls_error;
        ssl.ssl_error_context = l->cctx;
        co.ssl = &ssl;
    }

    l->state = LS_CONNECTING;
    int rc = MQTTAsync_connect(l->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_warn("mqtt: cannot start connecting to %s (paho %d)", l->uri, rc);
        schedule_retry(l);
        return link_errno_from_paho(rc);
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
            link_op_report(l, op, status);
    }
}

void link_handle_connected(struct mqtt_link *l)
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

void link_handle_lost(struct mqtt_link *l, const char *cause)
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
    link_pend_fail_all(l, -ENOTCONN);
    link_window_reset(l);
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
    link_destroy_client(l);
    int rc = create_client(l, l->version);
    if (rc < 0) {
        log_error("mqtt: cannot create a client to reconnect: %s", strerror(-rc));
        l->state = LS_STOPPED;
        return;
    }
    schedule_retry(l);
}

void link_handle_connect_failed(struct mqtt_link *l, int code, int reason, const char *msg)
{
    char buf[LINK_TEXT_MAX + 32], advice[320];
    if (l->state != LS_CONNECTING)
        return;   /* stopping, or a stale attempt */
    const char *why = connect_failure_text(code, reason, msg, buf, sizeof(buf));

    if (l->version == MQTTVERSION_5 && is_protocol_refusal(code, reason)) {
        /* The version is fixed when a paho client is created. */
        log_warn("mqtt: %s refuses MQTT 5 (%s); falling back to 3.1.1, without "
                 "response topics", l->uri, why);
        link_destroy_client(l);
        int rc = create_client(l, MQTTVERSION_3_1_1);
        if (rc < 0) {
            log_error("mqtt: cannot create a 3.1.1 client: %s", strerror(-rc));
            l->state = LS_STOPPED;
            return;
        }
        do_connect(l);
        return;
    }

    /* Once per kind of failure, then quietly while it lasts. */
    int key = reason >= 0x80 ? reason : code;
    if (key != l->last_fail)
        log_msg(auth_advice(l, key, advice, sizeof(advice))[0] ? LOG_ERROR : LOG_WARN,
                "mqtt: cannot connect to %s: %s%s", l->uri, why, advice);
    else
        log_debug("mqtt: cannot connect to %s: %s", l->uri, why);
    l->last_fail = key;
    schedule_retry(l);
}

int mqtt_link_start(struct mqtt_link *l)
{
    if (!l || l->dead)
        return -EINVAL;
    if (l->state != LS_IDLE)
        return -EALREADY;

    /* A persistent session needs a client id; a will is a topic name. */
    if (!l->client_id[0] || (l->will_topic && !link_topic_name_ok(l->will_topic))) {
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
