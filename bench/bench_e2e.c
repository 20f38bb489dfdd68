/* End to end over loopback: a local mosquitto, the A7670 simulator and the
 * bridge, all real processes. Measures sms/send commands per second through
 * the whole chain (MQTT publish -> journal -> AT+CMGS on the pty -> the
 * simulator's +CMGS -> result on MQTT) and the bridge's peak RSS.
 *
 * Each repetition publishes N commands (QoS 1, distinct ids), keeping at
 * most WINDOW of them without a result (the bridge answers "busy" to
 * commands beyond its modem queue of 64), and stops the clock when the
 * N-th result arrived. op = one SMS command. Results must all be ok and the
 * simulator must have seen N more `sent` lines. Then one burst of N with no
 * window is reported (ok/error counts), for information. Last, a burst of
 * M2M_BENCH_E2E_BURST (2000) messages published at once on a second
 * mosquitto, the "remote" broker the simulated module is connected to,
 * must all come out on B/remote/message of the local broker: lost ones
 * are counted.
 *
 * Besides its table rows, it prints "#summary|<key>|<label>|<value>" lines
 * that bench/run gathers into the end-to-end summary table.
 *
 * Environment: M2M_BENCH_E2E_N (default 200), M2M_BENCH_E2E_REPS (default
 * 3), M2M_BENCH_E2E_WINDOW (default 32; 0: none), M2M_BENCH_E2E_TIMEOUT
 * (seconds for the whole run, default 60), M2M_BENCH_KEEP=1 (keep the
 * temporary directory and its logs), M2M_BENCH_E2E_LOG (the bridge's -l,
 * default warn; debug slows it down), M2M_BENCH_E2E_NODELAY=1 (the local
 * mosquitto with set_tcp_nodelay true, rows tagged [broker nodelay]; see
 * bench/README.md), M2M_BENCH_E2E_BURST (remote messages in the burst, 0:
 * none).
 *
 * The benchmark's own MQTT client always sets TCP_NODELAY on its socket
 * (client_nodelay), so that the figures are the bridge's and the broker's. 
 *
 * Bounded: every wait has the run's deadline; SIGALRM 15 s after it (or
 * SIGINT/SIGTERM) kills the children; the children get PR_SET_PDEATHSIG. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <cjson/cJSON.h>

#include "bench.h"

#ifndef M2M_BRIDGE_PATH
#error "M2M_BRIDGE_PATH must name the bridge binary"
#endif
#ifndef M2M_SIM_PATH
#error "M2M_SIM_PATH must name the simulator binary"
#endif
#define MOSQUITTO_PATH "/usr/sbin/mosquitto"
#define BASE "bench"
#define MAX_N 100000
#define WARMUP 10
#define ONE_AT_A_TIME 30 /* commands per repetition of the window-1 series */

/* ---- children ------------------------------------------------------- */

enum { P_BROKER, P_REMOTE, P_SIM, P_BRIDGE, P_COUNT };
static volatile pid_t g_pids[P_COUNT];
static char g_dir[256];
static uint64_t g_deadline_ns;

static void on_fatal_signal(int sig)
{
    static const char msg[] = "bench_e2e: interrupted, killing the children\n";

    for (int i = 0; i < P_COUNT; i++) {
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
    }
    if (write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do */
    }
    _exit(128 + sig);
}

static bool expired(void)
{
    return bench_now_ns() >= g_deadline_ns;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

extern char **environ;

/* fork + exec with stdin/stdout/stderr redirected (-1: /dev/null), with
 * envp (NULL: this process's environment). */
static pid_t spawn(char *const argv[], int in_fd, int out_fd, int err_fd, char *const envp[])
{
    char *const *env = envp ? envp : environ;
    pid_t pid = fork();

    if (pid < 0)
        bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd >= 0 ? out_fd : null, 1);
        dup2(err_fd >= 0 ? err_fd : null, 2);
        for (int fd = 3; fd < 256; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        execve(argv[0], argv, env);
        _exit(127);
    }
    return pid;
}

/* SIGTERM (or nothing when term is false), wait up to ms, then SIGKILL. */
static int stop_child(int which, bool term, int ms)
{
    pid_t pid = g_pids[which];
    int status = 0;

    if (pid <= 0)
        return 0;
    if (term)
        kill(pid, SIGTERM);
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            break;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        sleep_ms(10);
    }
    g_pids[which] = 0;
    return status;
}

static bool child_alive(int which)
{
    int status;

    return g_pids[which] > 0 && waitpid(g_pids[which], &status, WNOHANG) == 0;
}

static int open_log(const char *name)
{
    char path[400];

    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void write_file(const char *name, const char *text)
{
    char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        bench_fail("writing %s: %s", path, strerror(errno));
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        bench_fail("free port: %s", strerror(errno));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* VmHWM / VmRSS of a process in KiB, -1 if unknown. */
static long proc_kib(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* paho (1.3.12) sets no TCP_NODELAY and has no option for it (paho.mqtt.c
 * issue #530): Nagle then holds a PUBLISH written right after a PUBACK
 * until the broker's delayed ACK, about 40 ms. The bridge pays that on its
 * result; the benchmark's own client must not add it on its next command,
 * so it finds its socket to the broker and sets TCP_NODELAY on it. */
static int client_nodelay(int broker_port)
{
    int done = 0;

    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int type = 0, one = 1;
        socklen_t tlen = sizeof(type);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
            continue;
        if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0 || peer.sin_family != AF_INET ||
            ntohs(peer.sin_port) != broker_port)
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
            done++;
    }
    return done;
}

/* ---- the simulator's stdout ------------------------------------------ */

static atomic_long g_sim_sent;
static atomic_bool g_sim_pty;
static int g_sim_in = -1;

static void *sim_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192], line[4096];
    size_t n = 0;
    ssize_t r;

    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] != '\n') {
                if (n < sizeof(line) - 1)
                    line[n++] = buf[i];
                continue;
            }
            line[n] = 0;
            if (strncmp(line, "sent ", 5) == 0)
                atomic_fetch_add(&g_sim_sent, 1);
            else if (strncmp(line, "pty ", 4) == 0)
                atomic_store(&g_sim_pty, true);
            n = 0;
        }
    }
    close(fd);
    return NULL;
}

/* ---- MQTT client -------------------------------------------------------- */

struct client {
    MQTTAsync cli;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool connected, subscribed, ready;
    int conn_failed;
    /* Results by id: id = rep * MAX_N + i (rep 0 is the warm-up). */
    long base_id;          /* first id of the current batch */
    long n;                /* batch size */
    uint64_t *sent_ns;     /* publish time per id of the batch */
    uint64_t *got_ns;      /* result time, 0 until it came */
    long sent, got, ok, errors;
    char last_error[256];
    bool remote_connected;   /* B/status "remote":"connected" */
    long remote_got;         /* B/remote/message of the burst */
    uint64_t remote_last_ns; /* when the last one came */
    long overflow_errors;    /* B/error "queue_overflow" */
};

static struct client g_c;

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct client *c = ctx;
    uint64_t now = bench_now_ns();
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    cJSON *root = cJSON_ParseWithLength(m->payload, (size_t)m->payloadlen);

    pthread_mutex_lock(&c->mu);
    if (root && tlen == strlen(BASE "/status") && memcmp(topic, BASE "/status", tlen) == 0) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "state");
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "remote");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "ready") == 0)
            c->ready = true;
        c->remote_connected = cJSON_IsString(rs) && strcmp(rs->valuestring, "connected") == 0;
    } else if (tlen == strlen(BASE "/remote/message") &&
               memcmp(topic, BASE "/remote/message", tlen) == 0) {
        c->remote_got++;
        c->remote_last_ns = now;
    } else if (root && tlen == strlen(BASE "/error") && memcmp(topic, BASE "/error", tlen) == 0) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
        if (cJSON_IsString(code) && strcmp(code->valuestring, "queue_overflow") == 0)
            c->overflow_errors++;
    } else if (root && ((tlen == strlen(BASE "/sms/send/result") &&
                         memcmp(topic, BASE "/sms/send/result", tlen) == 0) ||
                        (tlen == strlen(BASE "/at/send/result") &&
                         memcmp(topic, BASE "/at/send/result", tlen) == 0))) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
        long i = cJSON_IsNumber(id) ? (long)id->valuedouble - c->base_id : -1;

        if (i >= 0 && i < c->n && c->got_ns[i] == 0) {
            c->got_ns[i] = now;
            c->got++;
            if (cJSON_IsTrue(ok)) {
                c->ok++;
            } else {
                c->errors++;
                snprintf(c->last_error, sizeof(c->last_error), "%.*s", m->payloadlen,
                         (const char *)m->payload);
            }
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cJSON_Delete(root);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_connected(void *ctx, MQTTAsync_successData *d)
{
    struct client *c = ctx;
    (void)d;
    pthread_mutex_lock(&c->mu);
    c->connected = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *d)
{
    struct client *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->conn_failed = d ? d->code : -1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *d)
{
    struct client *c = ctx;
    (void)d;
    pthread_mutex_lock(&c->mu);
    c->subscribed = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static bool g_bridge_dead;

/* The bridge exited (reaped here): every wait ends at once. */
static bool bridge_dead(void)
{
    int status;

    if (!g_bridge_dead && g_pids[P_BRIDGE] > 0 &&
        waitpid(g_pids[P_BRIDGE], &status, WNOHANG) == g_pids[P_BRIDGE]) {
        g_pids[P_BRIDGE] = 0;
        g_bridge_dead = true;
        fprintf(stderr, "bench_e2e: the bridge exited (%s %d), see its log\n",
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    return g_bridge_dead;
}

/* Waits (mutex held) until pred, the deadline or the bridge's exit; false
 * unless pred. */
static bool wait_until(struct client *c, bool (*pred)(struct client *))
{
    while (!pred(c)) {
        struct timespec ts;
        uint64_t now = bench_now_ns();

        if (now >= g_deadline_ns || bridge_dead())
            return false;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L; /* re-check the deadline every 100 ms */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    return true;
}

static bool p_connected(struct client *c) { return c->connected || c->conn_failed; }
static bool p_subscribed(struct client *c) { return c->subscribed; }
static bool p_ready(struct client *c) { return c->ready; }
static bool p_remote(struct client *c) { return c->remote_connected; }
static bool p_batch_done(struct client *c) { return c->got >= c->n; }

static void client_connect(struct client *c, const char *uri)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char *topics[5] = {BASE "/status", BASE "/sms/send/result", BASE "/at/send/result",
                       BASE "/remote/message", BASE "/error"};
    int qos[5] = {1, 1, 1, 1, 0};

    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (MQTTAsync_create(&c->cli, uri, "m2m-bench", MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTASYNC_SUCCESS)
        bench_fail("MQTTAsync_create");
    MQTTAsync_setCallbacks(c->cli, c, NULL, on_message, NULL);
    co.keepAliveInterval = 30;
    co.cleansession = 1;
    co.maxInflight = 1024;
    co.onSuccess = on_connected;
    co.onFailure = on_connect_failed;
    co.context = c;
    for (;;) {
        if (MQTTAsync_connect(c->cli, &co) != MQTTASYNC_SUCCESS)
            bench_fail("MQTTAsync_connect");
        pthread_mutex_lock(&c->mu);
        if (!wait_until(c, p_connected))
            bench_fail("timeout connecting to the broker");
        bool ok = c->connected;
        c->conn_failed = 0;
        pthread_mutex_unlock(&c->mu);
        if (ok)
            break;
        sleep_ms(100);
    }
    ro.onSuccess = on_subscribed;
    ro.context = c;
    if (MQTTAsync_subscribeMany(c->cli, 5, topics, qos, &ro) != MQTTASYNC_SUCCESS)
        bench_fail("MQTTAsync_subscribeMany");
    pthread_mutex_lock(&c->mu);
    if (!wait_until(c, p_subscribed))
        bench_fail("timeout subscribing");
    pthread_mutex_unlock(&c->mu);
}

static long g_window;
static bool g_at;       /* batch() sends at/send AT+CSQ instead of sms/send */
static bool p_window(struct client *c) { return c->got + g_window > c->sent; }

/* Publishes n sms/send commands with ids base_id.. and waits for their n
 * results. window > 0: at most that many commands without a result yet.
 * Returns the wall time from the first publish to the last result, 0 on
 * timeout. */
static uint64_t batch(struct client *c, long base_id, long n, long window)
{
    uint64_t t0, t1;

    pthread_mutex_lock(&c->mu);
    c->base_id = base_id;
    c->n = n;
    c->got = c->ok = c->errors = c->sent = 0;
    memset(c->got_ns, 0, (size_t)n * sizeof(*c->got_ns));
    pthread_mutex_unlock(&c->mu);

    t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        char payload[160];
        int len = g_at ? snprintf(payload, sizeof(payload), "{\"id\":%ld,\"command\":\"AT+CSQ\"}",
                                  base_id + i)
                       : snprintf(payload, sizeof(payload),
                                  "{\"id\":%ld,\"to\":\"+4917012345678\",\"text\":\"bench "
                                  "%ld: the quick brown fox jumps over the lazy dog\"}",
                                  base_id + i, i);
        MQTTAsync_message m = MQTTAsync_message_initializer;
        int rc;

        if (window > 0) {
            pthread_mutex_lock(&c->mu);
            g_window = window;
            bool room = wait_until(c, p_window);
            pthread_mutex_unlock(&c->mu);
            if (!room)
                return 0;
        }
        m.payload = payload;
        m.payloadlen = len;
        m.qos = 1;
        c->sent_ns[i] = bench_now_ns();
        while ((rc = MQTTAsync_sendMessage(c->cli, g_at ? BASE "/at/send" : BASE "/sms/send", &m,
                                           NULL)) ==
               MQTTASYNC_MAX_MESSAGES_INFLIGHT) {
            if (expired())
                return 0;
            sleep_ms(1);
        }
        if (rc != MQTTASYNC_SUCCESS)
            bench_fail("MQTTAsync_sendMessage: %d", rc);
        pthread_mutex_lock(&c->mu);
        c->sent++;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&c->mu);
    bool done = wait_until(c, p_batch_done);
    t1 = 0;
    for (long i = 0; i < n; i++)
        t1 = c->got_ns[i] > t1 ? c->got_ns[i] : t1;
    pthread_mutex_unlock(&c->mu);
    return done ? t1 - t0 : 0;
}

/* ---- the remote burst ---------------------------------------------------- */

static const char *g_tag = "";  /* row name suffix */

struct pub_done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long acked, failed;
};

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
    struct pub_done *p = ctx;
    (void)d;
    pthread_mutex_lock(&p->mu);
    p->acked++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
    struct pub_done *p = ctx;
    (void)d;
    pthread_mutex_lock(&p->mu);
    p->failed++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static bool p_connected_flag;
static void on_rconnected(void *ctx, MQTTAsync_successData *d)
{
    struct pub_done *p = ctx;
    (void)d;
    pthread_mutex_lock(&p->mu);
    p_connected_flag = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits (p->mu held) for pred or the deadline. */
static bool pub_wait(struct pub_done *p, bool (*pred)(struct pub_done *))
{
    while (!pred(p)) {
        struct timespec ts;
        if (expired())
            return false;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    return true;
}

static long g_burst_n;
static bool p_rconn(struct pub_done *p) { (void)p; return p_connected_flag; }
static bool p_all_acked(struct pub_done *p) { return p->acked + p->failed >= g_burst_n; }
static bool p_burst_in(struct client *c) { return c->remote_got >= g_burst_n; }

/* n QoS 1 messages published at once on the remote broker (port rport);
 * counts what comes out on B/remote/message. Prints a row-like note and
 * a summary line; -1 on a setup failure. */
static int remote_burst(int rport, long n)
{
    char ruri[64];
    MQTTAsync cli;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    struct pub_done p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    uint64_t t0, quiet_since;
    long got = 0, prev = -1;

    g_burst_n = n;
    snprintf(ruri, sizeof(ruri), "tcp://127.0.0.1:%d", rport);
    /* No create options: paho then buffers any number of requests. */
    if (MQTTAsync_create(&cli, ruri, "m2m-bench-cloud", MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTASYNC_SUCCESS)
        return -1;
    co.cleansession = 1;
    co.maxInflight = 65535;
    co.onSuccess = on_rconnected;
    co.context = &p;
    pthread_mutex_lock(&p.mu);
    bool up = MQTTAsync_connect(cli, &co) == MQTTASYNC_SUCCESS && pub_wait(&p, p_rconn);
    pthread_mutex_unlock(&p.mu);
    if (!up) {
        MQTTAsync_destroy(&cli);
        return -1;
    }
    pthread_mutex_lock(&g_c.mu);
    g_c.remote_got = 0;
    g_c.overflow_errors = 0;
    pthread_mutex_unlock(&g_c.mu);

    t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        char payload[64];
        MQTTAsync_message m = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        m.payloadlen = snprintf(payload, sizeof(payload), "reading %ld: 21.5 C", i);
        m.payload = payload;
        m.qos = 1;
        ro.onSuccess = on_pub_ok;
        ro.onFailure = on_pub_fail;
        ro.context = &p;
        if (MQTTAsync_sendMessage(cli, "burst/sensor", &m, &ro) != MQTTASYNC_SUCCESS)
            on_pub_fail(&p, NULL);
    }
    pthread_mutex_lock(&p.mu);
    pub_wait(&p, p_all_acked);
    double pub_ms = (double)(bench_now_ns() - t0) / 1e6;
    long acked = p.acked;
    pthread_mutex_unlock(&p.mu);

    /* All of them, or nothing new for 3 s (then the rest is lost). */
    quiet_since = bench_now_ns();
    pthread_mutex_lock(&g_c.mu);
    while (!p_burst_in(&g_c) && !expired() && !bridge_dead() &&
           bench_now_ns() - quiet_since < 3000000000u) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g_c.cv, &g_c.mu, &ts);
        if (g_c.remote_got != prev) {
            prev = g_c.remote_got;
            quiet_since = bench_now_ns();
        }
    }
    got = g_c.remote_got;
    double in_ms = got ? (double)(g_c.remote_last_ns - t0) / 1e6 : 0;
    long overflows = g_c.overflow_errors;
    pthread_mutex_unlock(&g_c.mu);

    printf("- e2e%s: remote burst: %ld published at once on the remote broker (%ld acked in "
           "%.1f ms), %ld on B/remote/message within %.1f ms (%.0f/s), %ld lost, %ld "
           "B/error queue_overflow\n",
           g_tag, n, acked, pub_ms, got, in_ms, in_ms > 0 ? (double)got * 1000.0 / in_ms : 0,
           n - got, overflows);
    printf("#summary|4|inbound burst of %ld remote messages: lost|%ld\n", n, n - got);
    printf("#summary|5|inbound burst: remote messages/s through the bridge|%.0f\n",
           in_ms > 0 ? (double)got * 1000.0 / in_ms : 0);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(cli, &d);
    sleep_ms(50);
    MQTTAsync_destroy(&cli);
    return 0;
}

/* ---- measurement -------------------------------------------------------- */

static char g_state[400];

/* The bridge's counters from its health socket (one loop wakeup). */
struct counters {
    unsigned long long wakeups, fsyncs, commands;
};

static int ask_bridge(struct counters *k)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[256] = "";
    size_t got = 0;
    ssize_t r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *p;

    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.90s/health.sock", g_state);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    if (!(p = strstr(buf, "wakeups=")) || sscanf(p, "wakeups=%llu fsyncs=%llu commands=%llu",
                                                 &k->wakeups, &k->fsyncs, &k->commands) != 3)
        return -1;
    return 0;
}

/* USS: the bridge's private pages (Private_Clean + Private_Dirty of
 * smaps_rollup), in KiB; -1 if unknown. */
static long uss_kib(pid_t pid)
{
    char path[64], line[128];
    long v, sum = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
            sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
            sum = (sum < 0 ? 0 : sum) + v;
    fclose(f);
    return sum;
}

/* write_bytes (to storage) and syscw (write calls) of /proc/<pid>/io. */
static void io_counts(pid_t pid, long long *bytes, long long *calls)
{
    char path[64], line[128];
    long long v;
    FILE *f;

    *bytes = *calls = -1;
    snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
    if (!(f = fopen(path, "r")))
        return;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "write_bytes: %lld", &v) == 1)
            *bytes = v;
        else if (sscanf(line, "syscw: %lld", &v) == 1)
            *calls = v;
    }
    fclose(f);
}

/* Figures of their own table ("=|" lines, gathered by bench/run). */
static void figure(const char *name, const char *value)
{
    printf("=| %-58s | %28s |\n", name, value);
}

/* Waits (bounded) until one query follows the previous with no wakeup
 * between: the start-up work is over. */
static bool settle(struct counters *k)
{
    struct counters a;

    if (ask_bridge(&a) < 0)
        return false;
    for (int i = 0; i < 100 && !expired(); i++) {
        sleep_ms(200);
        if (ask_bridge(k) < 0)
            return false;
        if (k->wakeups == a.wakeups + 1)
            return true;
        a = *k;
    }
    return false;
}

static char g_notes[4][256];
static size_t g_n_notes;

/* reps repetitions of batch(n, window) with ids from id0 (spaced by MAX_N);
 * prints a table row (per-op = wall time / n) and keeps a latency note.
 * -1 when a repetition failed (message printed). */
static int series(long n, long window, long reps, long id0, bool throughput)
{
    double per_op[20];
    double *lat = calloc((size_t)(n * reps), sizeof(double));
    size_t n_lat = 0;
    long done = 0;
    int rc = 0;

    if (!lat)
        bench_fail("out of memory");
    for (long r = 0; r < reps && r < 20; r++) {
        long sent_before = atomic_load(&g_sim_sent);
        uint64_t t = batch(&g_c, id0 + r * MAX_N, n, window);

        if (t == 0 || g_c.ok != n) {
            fprintf(stderr,
                    "bench_e2e: window %ld, repetition %ld: %ld of %ld results, %ld ok, %ld "
                    "errors%s%s%s\n",
                    window, r + 1, g_c.got, n, g_c.ok, g_c.errors,
                    t == 0 ? " (deadline reached)" : "", g_c.errors ? "; last: " : "",
                    g_c.last_error);
            rc = -1;
            break;
        }
        /* The simulator prints `sent` with the +CMGS result, just before the
         * bridge can see it: all should be there once the results are. */
        for (int w = 0; w < 100 && atomic_load(&g_sim_sent) - sent_before < n; w++)
            sleep_ms(10);
        if (atomic_load(&g_sim_sent) - sent_before != n) {
            fprintf(stderr, "bench_e2e: the simulator saw %ld SMS, %ld expected\n",
                    atomic_load(&g_sim_sent) - sent_before, n);
            rc = -1;
            break;
        }
        per_op[done++] = (double)t / (double)n;
        for (long i = 0; i < n; i++)
            lat[n_lat++] = (double)(g_c.got_ns[i] - g_c.sent_ns[i]);
        if (expired())
            break;
    }
    if (done > 0) {
        char name[96];
        double min = per_op[0], med;

        for (long i = 1; i < done; i++)
            min = per_op[i] < min ? per_op[i] : min;
        med = bench_median(per_op, (size_t)done);
        if (throughput)
            snprintf(name, sizeof(name), "e2e%s: sms/send window %ld, N=%ld (op=SMS)", g_tag,
                     window, n);
        else
            snprintf(name, sizeof(name), "e2e%s: sms/send one by one, N=%ld (op=SMS)", g_tag, n);
        bench_print_row(name, (int)done, (uint64_t)n, min, med, 0,
                        proc_kib(g_pids[P_BRIDGE], "VmHWM"));
        bench_median(lat, n_lat); /* sorts */
        if (throughput) {
            printf("#summary|1|%ld in flight: SMS/s (median of %ld repetitions of %ld)|%.0f\n",
                   window, done, n, 1e9 / med);
            printf("#summary|2|%ld in flight: publish -> result p99|%.1f ms\n", window,
                   lat[(size_t)((double)(n_lat - 1) * 0.99)] / 1e6);
            printf("#summary|3|%ld in flight: publish -> result max|%.1f ms\n", window,
                   lat[n_lat - 1] / 1e6);
        } else {
            printf("#summary|0|one command at a time: publish -> result median|%.2f ms\n",
                   lat[n_lat / 2] / 1e6);
        }
        if (g_n_notes < 4)
            snprintf(g_notes[g_n_notes++], sizeof(g_notes[0]),
                     "e2e%s, window %ld: latency publish -> result over %zu SMS: p50 %.2f ms, "
                     "p99 %.2f ms, max %.2f ms",
                     g_tag, window, n_lat, lat[n_lat / 2] / 1e6,
                     lat[(size_t)((double)(n_lat - 1) * 0.99)] / 1e6, lat[n_lat - 1] / 1e6);
    }
    free(lat);
    return rc;
}

/* ---- setup and teardown ----------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(bool keep)
{
    if (g_c.cli) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        MQTTAsync_disconnect(g_c.cli, &d);
        sleep_ms(50);
        MQTTAsync_destroy(&g_c.cli);
    }
    stop_child(P_BRIDGE, true, 5000);
    if (g_sim_in >= 0) {
        if (write(g_sim_in, "quit\n", 5) < 0) {
            /* it is gone already */
        }
        close(g_sim_in);
        g_sim_in = -1;
    }
    stop_child(P_SIM, false, 2000);
    stop_child(P_BROKER, true, 3000);
    stop_child(P_REMOTE, true, 3000);
    if (!keep && g_dir[0])
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (g_dir[0])
        fprintf(stderr, "bench_e2e: logs kept in %s\n", g_dir);
}

/* bench_fail() exits from anywhere: the children must not outlive us (they
 * also have PR_SET_PDEATHSIG), and the logs stay for a look. */
static void cleanup_at_exit(void)
{
    bool any = false;

    for (int i = 0; i < P_COUNT; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
            any = true;
        }
    }
    if (any && g_dir[0])
        fprintf(stderr, "bench_e2e: logs kept in %s\n", g_dir);
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    long v = s && *s ? strtol(s, NULL, 10) : def;

    return v < lo ? lo : v > hi ? hi : v;
}

int main(int argc, char **argv)
{
    long n = env_long("M2M_BENCH_E2E_N", 200, 1, MAX_N - 1);
    long reps = env_long("M2M_BENCH_E2E_REPS", 3, 1, 20);
    long timeout_s = env_long("M2M_BENCH_E2E_TIMEOUT", 60, 5, 3600);
    long window = env_long("M2M_BENCH_E2E_WINDOW", 32, 0, MAX_N);
    long idle_s = env_long("M2M_BENCH_E2E_IDLE_S", 0, 0, 3600);
    long load_n = env_long("M2M_BENCH_E2E_LOAD_N", 0, 0, MAX_N);
    struct counters k0, k1;
    long uss_idle = -1;
    bool nodelay = env_long("M2M_BENCH_E2E_NODELAY", 0, 0, 1) == 1;
    bool keep = getenv("M2M_BENCH_KEEP") && strcmp(getenv("M2M_BENCH_KEEP"), "1") == 0;
    char uri[64], conf[1024], path_cfg[400], link[400], port_s[16], state[400];
    long hwm = -1, rss_idle = -1, rss_end = -1;
    long burst_n = env_long("M2M_BENCH_E2E_BURST", 2000, 0, MAX_N);
    int port, rport, rc = 0;
    struct sigaction sa = {0};
    pthread_t reader;

    bench_init(argc, argv);
    if (nodelay)
        g_tag = " [broker nodelay]";
    g_deadline_ns = bench_now_ns() + (uint64_t)timeout_s * 1000000000u;
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)timeout_s + 15);

    snprintf(g_dir, sizeof(g_dir), "%s/m2m-bench-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir))
        bench_fail("mkdtemp: %s", strerror(errno));
    atexit(cleanup_at_exit);

    /* Broker. */
    port = free_port();
    snprintf(conf, sizeof(conf),
             "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
             "max_queued_messages 100000\nlog_dest file %s/mosquitto.log\n%s%s",
             port, g_dir, geteuid() == 0 ? "user root\n" : "",
             nodelay ? "set_tcp_nodelay true\n" : "");
    write_file("mosquitto.conf", conf);
    snprintf(path_cfg, sizeof(path_cfg), "%s/mosquitto.conf", g_dir);
    {
        char *av[] = {MOSQUITTO_PATH, "-c", path_cfg, NULL};
        g_pids[P_BROKER] = spawn(av, -1, -1, open_log("mosquitto.stderr"), NULL);
    }
    while (!port_open(port)) {
        if (expired() || !child_alive(P_BROKER)) {
            teardown(true);
            bench_fail("mosquitto did not start (logs in %s)", g_dir);
        }
        sleep_ms(20);
    }
    snprintf(uri, sizeof(uri), "mqtt://127.0.0.1:%d", port);

    /* The remote broker, which the simulated module's MQTT client talks
     * to; its queue must hold the whole burst. */
    rport = free_port();
    snprintf(conf, sizeof(conf),
             "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
             "max_queued_messages 100000\nlog_dest file %s/remote.log\n%s",
             rport, g_dir, geteuid() == 0 ? "user root\n" : "");
    write_file("remote.conf", conf);
    snprintf(path_cfg, sizeof(path_cfg), "%s/remote.conf", g_dir);
    {
        char *av[] = {MOSQUITTO_PATH, "-c", path_cfg, NULL};
        g_pids[P_REMOTE] = spawn(av, -1, -1, open_log("remote.stderr"), NULL);
    }
    while (!port_open(rport)) {
        if (expired() || !child_alive(P_REMOTE)) {
            teardown(true);
            bench_fail("the remote mosquitto did not start (logs in %s)", g_dir);
        }
        sleep_ms(20);
    }

    /* Simulator. */
    {
        int in[2], out[2];
        snprintf(link, sizeof(link), "%s/modem", g_dir);
        char *av[] = {M2M_SIM_PATH, "--link", link, "--quiet", NULL};
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
            bench_fail("pipe: %s", strerror(errno));
        g_pids[P_SIM] = spawn(av, in[0], out[1], open_log("sim.stderr"), NULL);
        close(in[0]);
        close(out[1]);
        g_sim_in = in[1];
        if (pthread_create(&reader, NULL, sim_reader, (void *)(intptr_t)out[0]) != 0)
            bench_fail("pthread_create");
        pthread_detach(reader);
    }
    while (!atomic_load(&g_sim_pty) || access(link, F_OK) != 0) {
        if (expired() || !child_alive(P_SIM)) {
            teardown(true);
            bench_fail("the simulator did not start (logs in %s)", g_dir);
        }
        sleep_ms(10);
    }

    /* Bridge. */
    snprintf(state, sizeof(state), "%s/state", g_dir);
    snprintf(g_state, sizeof(g_state), "%s", state);
    /* status_interval: the idle figure is taken with no poll due. */
    snprintf(conf, sizeof(conf),
             "{\"state_dir\": \"%s\", \"sms\": {\"rate_per_hour\": 100000},\n"
             " \"allow_raw_at\": true, \"modem\": {\"status_interval\": 3600},\n"
             " \"remote\": {\"server\": \"tcp://127.0.0.1:%d\", \"client_id\": \"bench\",\n"
             "   \"subscribe\": [{\"topic\": \"burst/#\", \"qos\": 1}]}}\n",
             state, rport);
    write_file("config.json", conf);
    snprintf(path_cfg, sizeof(path_cfg), "%s/config.json", g_dir);
    snprintf(port_s, sizeof(port_s), "%d", port);
    {
        char *level = getenv("M2M_BENCH_E2E_LOG") && *getenv("M2M_BENCH_E2E_LOG")
                          ? getenv("M2M_BENCH_E2E_LOG")
                          : "warn";
        char *av[] = {M2M_BRIDGE_PATH, "-c", path_cfg, "-p", link, "-H", uri, "-t", BASE,
                      "-l", level, NULL};
        g_pids[P_BRIDGE] = spawn(av, -1, -1, open_log("bridge.log"), NULL);
    }

    /* Client, readiness. */
    client_connect(&g_c, uri);
    if (client_nodelay(port) != 1)
        fprintf(stderr, "bench_e2e: could not set TCP_NODELAY on the client's socket\n");
    long slots = n > WARMUP ? n : WARMUP;
    slots = load_n > slots ? load_n : slots;
    g_c.sent_ns = calloc((size_t)slots, sizeof(uint64_t));
    g_c.got_ns = calloc((size_t)slots, sizeof(uint64_t));
    if (!g_c.sent_ns || !g_c.got_ns)
        bench_fail("out of memory");
    pthread_mutex_lock(&g_c.mu);
    bool ready = wait_until(&g_c, p_ready);
    pthread_mutex_unlock(&g_c.mu);
    if (!ready || !child_alive(P_BRIDGE)) {
        fprintf(stderr, "bench_e2e: the bridge did not become ready\n");
        rc = 1;
        goto out;
    }
    rss_idle = proc_kib(g_pids[P_BRIDGE], "VmRSS");

    /* Idle: no poll due, nothing to do. Wakeups besides the two queries,
     * and what the bridge wrote, over idle_s seconds. */
    if (idle_s > 0 && !nodelay) {
        long long b0, c0, b1, c1;
        char v[64];

        if (!settle(&k0)) {
            fprintf(stderr, "bench_e2e: the bridge did not go idle\n");
            rc = 1;
            goto out;
        }
        uss_idle = uss_kib(g_pids[P_BRIDGE]);
        io_counts(g_pids[P_BRIDGE], &b0, &c0);
        for (long t = 0; t < idle_s * 10 && !expired(); t++)
            sleep_ms(100);
        io_counts(g_pids[P_BRIDGE], &b1, &c1);
        if (ask_bridge(&k1) == 0) {
            snprintf(v, sizeof(v), "%llu", k1.wakeups - k0.wakeups - 1);
            char name[96];
            snprintf(name, sizeof(name), "idle %ld s: main-loop wakeups (no poll due)", idle_s);
            figure(name, v);
            snprintf(v, sizeof(v), "%lld bytes, %lld write calls", b1 - b0, c1 - c0);
            snprintf(name, sizeof(name), "idle %ld s: written to storage (write_bytes, syscw)",
                     idle_s);
            figure(name, v);
        }
        snprintf(v, sizeof(v), "%ld KiB (RSS %ld KiB)", uss_idle,
                 proc_kib(g_pids[P_BRIDGE], "VmRSS"));
        figure("USS idle, after start-up (Private_Clean+Private_Dirty)", v);
    }

    /* Warm-up (not timed): pages, pty, journal files. */
    if (batch(&g_c, 0, WARMUP, window) == 0 || g_c.ok != WARMUP) {
        fprintf(stderr, "bench_e2e: warm-up failed (%ld ok, %ld errors) %s\n", g_c.ok,
                g_c.errors, g_c.last_error);
        rc = 1;
        goto out;
    }

    /* Throughput: n commands per repetition, at most `window` outstanding. */
    bool counted = ask_bridge(&k0) == 0;
    if (series(n, window, reps, 1 * MAX_N, true) < 0)
        rc = 1;
    if (counted && ask_bridge(&k1) == 0 && k1.commands > k0.commands) {
        char v[64], name[96];
        snprintf(v, sizeof(v), "%.2f (%llu for %llu)",
                 (double)(k1.fsyncs - k0.fsyncs) / (double)(k1.commands - k0.commands),
                 k1.fsyncs - k0.fsyncs, k1.commands - k0.commands);
        snprintf(name, sizeof(name), "journal fsyncs per sms/send%s, window %ld", g_tag, window);
        figure(name, v);
    }
    /* Round trip: one command at a time (window 1), fewer of them. */
    counted = ask_bridge(&k0) == 0;
    if (rc == 0 && !expired() &&
        series(n < ONE_AT_A_TIME ? n : ONE_AT_A_TIME, 1, reps, 50 * MAX_N, false) < 0)
        rc = 1;
    if (counted && ask_bridge(&k1) == 0 && k1.commands > k0.commands) {
        char v[64], name[96];
        snprintf(v, sizeof(v), "%.2f (%llu for %llu)",
                 (double)(k1.fsyncs - k0.fsyncs) / (double)(k1.commands - k0.commands),
                 k1.fsyncs - k0.fsyncs, k1.commands - k0.commands);
        snprintf(name, sizeof(name), "journal fsyncs per sms/send%s, one by one", g_tag);
        figure(name, v);
    }
    /* Memory after many commands: at/send AT+CSQ (no SMS rate limit), at
     * most `window` in flight. USS must not grow with the count. */
    if (rc == 0 && load_n > 0 && !nodelay && !expired()) {
        char v[96], name[96];
        long uss_mid = -1;
        g_at = true;
        counted = ask_bridge(&k0) == 0;
        for (int h = 0; h < 2 && rc == 0; h++) {
            long chunk = h ? load_n - load_n / 2 : load_n / 2;
            if (chunk > 0 && (batch(&g_c, 95 * (long)MAX_N, chunk, window ? window : 32) == 0 ||
                              g_c.ok != chunk)) {
                fprintf(stderr, "bench_e2e: load: %ld of %ld ok; %s\n", g_c.ok, chunk,
                        g_c.last_error);
                rc = 1;
            }
            if (h == 0)
                uss_mid = uss_kib(g_pids[P_BRIDGE]);
        }
        g_at = false;
        if (rc == 0 && counted && ask_bridge(&k1) == 0) {
            snprintf(v, sizeof(v), "%.2f (%llu for %llu)",
                     (double)(k1.fsyncs - k0.fsyncs) / (double)(k1.commands - k0.commands),
                     k1.fsyncs - k0.fsyncs, k1.commands - k0.commands);
            snprintf(name, sizeof(name), "journal fsyncs per at/send, window %ld, N=%ld",
                     window ? window : 32, load_n);
            figure(name, v);
            snprintf(v, sizeof(v), "%ld KiB (half-way %ld, RSS %ld)", uss_kib(g_pids[P_BRIDGE]),
                     uss_mid, proc_kib(g_pids[P_BRIDGE], "VmRSS"));
            snprintf(name, sizeof(name), "USS after %ld commands (+ the series above)", load_n);
            figure(name, v);
        }
    }
    /* One burst: all n published at once, to show what the bridge does
     * with more commands than its queues hold. Informational. */
    long burst_ok = -1, burst_err = 0, burst_sim = 0;
    char burst_last[256] = "";
    double burst_ms = 0;
    if (rc == 0 && !expired()) {
        long sent_before = atomic_load(&g_sim_sent);
        uint64_t t = batch(&g_c, 90 * MAX_N, n, 0);

        if (t > 0) {
            burst_ok = g_c.ok;
            burst_err = g_c.errors;
            burst_ms = (double)t / 1e6;
            snprintf(burst_last, sizeof(burst_last), "%s", g_c.last_error);
            for (int w = 0; w < 100 && atomic_load(&g_sim_sent) - sent_before < burst_ok; w++)
                sleep_ms(10);
            burst_sim = atomic_load(&g_sim_sent) - sent_before;
        }
    }

    /* Messages from the remote broker, as fast as it sends them. */
    if (rc == 0 && burst_n > 0 && !expired()) {
        pthread_mutex_lock(&g_c.mu);
        bool rup = wait_until(&g_c, p_remote);
        pthread_mutex_unlock(&g_c.mu);
        if (!rup || remote_burst(rport, burst_n) < 0) {
            fprintf(stderr, "bench_e2e: the remote burst could not run (remote %s)\n",
                    rup ? "connected" : "never connected");
            rc = 1;
        }
    }

    hwm = proc_kib(g_pids[P_BRIDGE], "VmHWM");
    rss_end = proc_kib(g_pids[P_BRIDGE], "VmRSS");

    printf("\n");
    for (size_t i = 0; i < g_n_notes; i++)
        printf("- %s\n", g_notes[i]);
    printf("- e2e%s: bridge RSS %ld KiB when ready, %ld KiB at the end (after the burst), "
           "peak (VmHWM) %ld KiB; the e2e rows' RSS column is VmHWM after their series\n",
           g_tag, rss_idle, rss_end, hwm);
    if (burst_ok >= 0)
        printf("- e2e%s: burst of %ld published at once: %ld ok, %ld errors (the simulator sent "
               "%ld) in %.1f ms%s%s\n",
               g_tag, n, burst_ok, burst_err, burst_sim, burst_ms,
               burst_err ? "; last error: " : "", burst_last);
    fflush(stdout);

out:
    if (rc != 0)
        keep = true;
    teardown(keep);
    free(g_c.sent_ns);
    free(g_c.got_ns);
    return rc;
}
