/* Integration: nothing a modem port does blocks the bridge's event loop.
 *
 * The loop answers state_dir/health.sock itself, so the time an answer
 * takes is how long the loop was busy. Each test keeps asking while the
 * modem is stuck and fails when one answer takes longer than
 * LOOP_BOUND_MS:
 *  - a module that takes no bytes (its pty's buffer is full, as under
 *    a hung USB-serial adapter): the bridge reports the output stalled and
 *    reopens the port;
 *  - a tcp:// device server that never completes the TCP handshake (its
 *    accept queue is full): the bridge gives the connect 5 s, then retries;
 *  - and the good case: a device server that relays to the simulator, over
 *    which the bridge comes up as over a pty. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Not scaled with M2M_IT_TIMEOUT_SCALE: it must stay below the 2 s a
 * blocking write used to hold the loop (and the 5 s of a blocking
 * connect). An answer normally takes a few milliseconds. */
#define LOOP_BOUND_MS 1000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One health query: the milliseconds until the answer is complete. -1
 * while the socket is not there yet (the bridge is starting). */
static int health_query_ms(struct h_env *e)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int64_t t0 = mono_ms();
    char buf[256];

    if (fd < 0)
        h_fail("socket: %s", strerror(errno));
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.80s/health.sock", e->bridge.state_dir);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 10000) <= 0)
            h_fail("health.sock: no answer within 10 s");
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
    }
    close(fd);
    return (int)(mono_ms() - t0);
}

/* The bridge log holds text (bounded wait). */
static bool log_has(struct h_env *e, const char *text)
{
    FILE *f = fopen(e->bridge.log_path, "r");
    char line[1024];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

/* Keeps asking the loop for window_ms (after the socket appears) and
 * fails on a slow answer; returns once the log also holds `until` (if
 * given) after at least window_ms. */
#define watch_loop(e, window_ms, until) watch_loop_at(__FILE__, __LINE__, (e), (window_ms), (until))
static void watch_loop_at(const char *file, int line, struct h_env *e, int window_ms,
                          const char *until)
{
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    int64_t start = mono_ms(), deadline = start + h_ms(H_READY_TIMEOUT_MS);
    int64_t end = -1;
    int queries = 0, worst = 0;

    for (;;) {
        int ms = health_query_ms(e);
        if (ms > LOOP_BOUND_MS)
            h_fail_at(file, line, "the loop took %d ms to answer (bound %d ms)", ms,
                      LOOP_BOUND_MS);
        if (ms >= 0 && end < 0)
            end = mono_ms() + window_ms;
        if (ms >= 0) {
            queries++;
            worst = ms > worst ? ms : worst;
        }
        if (end >= 0 && mono_ms() >= end && (!until || log_has(e, until)))
            break;
        if (mono_ms() > deadline)
            h_fail_at(file, line, "'%s' not in the bridge log", until ? until : "");
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "loop answered %d queries, the slowest in %d ms\n", queries, worst);
}

/* h_bridge_start takes the port from the simulator's link. */
static void start_bridge_on(struct h_env *e, const char *port)
{
    char saved[sizeof e->sim.link];

    memcpy(saved, e->sim.link, sizeof saved);
    snprintf(e->sim.link, sizeof e->sim.link, "%s", port);
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, NULL);
    memcpy(e->sim.link, saved, sizeof saved);
}

static int listen_loopback(int backlog, int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, backlog) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0)
        h_fail("listen: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return s;
}

/* ---- a module that takes no bytes ---- */

static void test_module_not_reading(void **state)
{
    struct h_env *e = *state;
    char slave[128];
    uint8_t junk[512] = { 0 };
    int m, s;

    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    /* A pty whose slave-to-master buffer is full: every write the bridge
     * makes on the slave finds no room, as on a stuck serial line. */
    m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, sizeof slave) != 0)
        h_fail("pty: %s", strerror(errno));
    s = open(slave, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    struct termios t;
    if (s < 0 || tcgetattr(s, &t) < 0)
        h_fail("%s: %s", slave, strerror(errno));
    cfmakeraw(&t);
    tcsetattr(s, TCSANOW, &t);
    /* Full means full: the kernel moves buffered bytes on to the master's
     * line discipline a little later, which makes room again. Fill until
     * the pty stays without room for 200 ms. */
    for (;;) {
        while (write(s, junk, sizeof junk) > 0) {
        }
        if (errno != EAGAIN)
            h_fail("filling the pty: %s", strerror(errno));
        struct pollfd room = { .fd = s, .events = POLLOUT };
        if (poll(&room, 1, 200) == 0)
            break;
    }
    close(s);

    start_bridge_on(e, slave);
    /* It gives up on the port and opens it again, and stays responsive. */
    watch_loop(e, 3000, "output stalled: the module takes no bytes");
    watch_loop(e, 0, "port lost (output stalled");

    /* The module reads again: what the bridge writes now arrives (the
     * resync's ESC first). */
    uint8_t buf[4096];
    int64_t deadline = mono_ms() + h_ms(H_TIMEOUT_MS);
    bool esc = false;
    while (!esc) {
        struct pollfd pfd = { .fd = m, .events = POLLIN };
        if (mono_ms() > deadline)
            h_fail("no ESC from the bridge after the pty drained");
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(m, buf, sizeof buf);
        esc = n > 0 && memchr(buf, 0x1b, (size_t)n) != NULL;
    }
    h_bridge_stop(&e->bridge);
    close(m);
    H_PASS(e);
}

/* ---- a device server that never completes the handshake ---- */

static void test_tcp_connect_hangs(void **state)
{
    struct h_env *e = *state;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    char spec[64];
    int port, ls, filler;

    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    /* Backlog 0 queues one connection; with that one never accepted, the
     * kernel drops every further SYN: a connect that neither succeeds nor
     * fails. */
    ls = listen_loopback(0, &port);
    a.sin_port = htons((uint16_t)port);
    filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (filler < 0 || connect(filler, (struct sockaddr *)&a, sizeof a) < 0)
        h_fail("filler connect: %s", strerror(errno));
    snprintf(spec, sizeof spec, "tcp://127.0.0.1:%d", port);
    start_bridge_on(e, spec);
    /* Past the 5 s connect bound: given up and tried again. */
    watch_loop(e, 6000, "no connection after 5 s");
    watch_loop(e, 0, "cannot open tcp://127.0.0.1");
    h_bridge_stop(&e->bridge);
    close(filler);
    close(ls);
    H_PASS(e);
}

/* ---- a device server that relays to the simulator ---- */

struct relay {
    int ls;
    int stop[2];
    const char *dev;
    pthread_t thread;
};

static bool pass_bytes(int from, int to)
{
    uint8_t buf[4096];
    ssize_t n = read(from, buf, sizeof buf);

    if (n <= 0)
        return n < 0 && errno == EAGAIN;
    for (ssize_t done = 0; done < n;) {
        ssize_t w = write(to, buf + done, (size_t)(n - done));
        if (w < 0 && errno != EAGAIN)
            return false;
        if (w < 0) {
            struct pollfd pfd = { .fd = to, .events = POLLOUT };
            poll(&pfd, 1, 1000);
            continue;
        }
        done += w;
    }
    return true;
}

/* One connection at a time, relayed to the simulator's pty until either
 * side closes; then the next (the bridge reconnects). */
static void *relay_main(void *arg)
{
    struct relay *r = arg;

    for (;;) {
        struct pollfd pl[2] = { { .fd = r->ls, .events = POLLIN },
                                { .fd = r->stop[0], .events = POLLIN } };
        if (poll(pl, 2, -1) < 0 || pl[1].revents)
            return NULL;
        int c = accept4(r->ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int d = open(r->dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        struct termios t;
        if (c < 0 || d < 0 || tcgetattr(d, &t) < 0) {
            close(c);
            close(d);
            continue;
        }
        cfmakeraw(&t);
        tcsetattr(d, TCSANOW, &t);
        for (bool up = true; up;) {
            struct pollfd p[3] = { { .fd = c, .events = POLLIN },
                                   { .fd = d, .events = POLLIN },
                                   { .fd = r->stop[0], .events = POLLIN } };
            if (poll(p, 3, -1) < 0 || p[2].revents) {
                close(c);
                close(d);
                return NULL;
            }
            if (p[0].revents)
                up = pass_bytes(c, d);
            if (up && p[1].revents)
                up = pass_bytes(d, c);
        }
        close(c);
        close(d);
    }
}

static void test_tcp_device_server(void **state)
{
    struct h_env *e = *state;
    struct relay r = { .dev = NULL };
    char spec[64];
    int port;

    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    r.dev = e->sim.link;
    r.ls = listen_loopback(4, &port);
    if (pipe2(r.stop, O_CLOEXEC) < 0 || pthread_create(&r.thread, NULL, relay_main, &r) != 0)
        h_fail("relay: %s", strerror(errno));
    /* A name, so the lookup runs in the background too. */
    snprintf(spec, sizeof spec, "tcp://localhost:%d", port);
    start_bridge_on(e, spec);
    h_wait_ready(e);
    cJSON *info = h_retained_json(e, e->t_info);
    h_json_str_eq(info, "model", "A7670E");
    cJSON_Delete(info);
    h_bridge_stop(&e->bridge);
    if (write(r.stop[1], "x", 1) != 1)
        h_fail("relay stop");
    pthread_join(r.thread, NULL);
    close(r.stop[0]);
    close(r.stop[1]);
    close(r.ls);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_module_not_reading),
        T(test_tcp_connect_hangs),
        T(test_tcp_device_server),
    };
    return cmocka_run_group_tests_name("integration_stall", tests, NULL, NULL);
}
