/* at/port: ptys, tcp://, error mapping, the auto table, --list-ports,
 * the output buffer, the background tcp:// open, the advice for a user.
 *
 * Waits are poll() with a bound (WAIT_MS), never fixed sleeps. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "at/port.h"

#define WAIT_MS 5000

static int wait_fd(int fd, short events)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int rc;
    do {
        rc = poll(&pfd, 1, WAIT_MS);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? pfd.revents : 0;
}

/* Reads exactly len bytes from a raw fd (the test's side). */
static void read_exact(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        assert_true(wait_fd(fd, POLLIN) & POLLIN);
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        assert_true(n > 0);
        got += (size_t)n;
    }
}

/* Reads exactly len bytes through at_port_read. */
static void port_read_exact(struct at_port *port, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        assert_true(wait_fd(at_port_fd(port), POLLIN) & POLLIN);
        ssize_t n = at_port_read(port, buf + got, len - got);
        assert_true(n >= 0);
        got += (size_t)n;
    }
}

/* Polls until at_port_read reports something other than "nothing now". */
static ssize_t port_read_event(struct at_port *port)
{
    uint8_t buf[64];
    for (int i = 0; i < 100; i++) {
        assert_true(wait_fd(at_port_fd(port), POLLIN) != 0);
        ssize_t n = at_port_read(port, buf, sizeof(buf));
        if (n != 0)
            return n;
    }
    fail_msg("at_port_read kept returning 0 while poll reported events");
    return 0;
}

static int open_master(char *slave, size_t size)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    assert_true(m >= 0);
    assert_int_equal(grantpt(m), 0);
    assert_int_equal(unlockpt(m), 0);
    assert_int_equal(ptsname_r(m, slave, size), 0);
    return m;
}

static const uint8_t binary[] = { 'A', 'T', '\r', '\n', 0x00, 0xff, 0x1a, 0x1b, 0x03,
                                  0x11, 0x13, '\r', 0x7f, '\n', 0x04 };

static void test_pty_both_ways(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *port = NULL;
    assert_int_equal(at_port_open(slave, 115200, &port), 0);
    assert_non_null(port);
    assert_true(at_port_fd(port) >= 0);
    /* A pty has no DTR line (modem.sleep "dtr" falls back to "off"). */
    assert_int_equal(at_port_set_dtr(port, true), -ENOTSUP);

    /* Nothing waiting: 0, not EOF (the VMIN = 1 setting). */
    uint8_t buf[64];
    assert_int_equal(at_port_read(port, buf, sizeof(buf)), 0);

    /* Raw both ways: no CR/LF translation, no echo, no flow control or
     * signal characters. */
    assert_int_equal(at_port_write(port, binary, sizeof(binary)), 0);
    assert_int_equal(at_port_pending(port), 0);
    read_exact(m, buf, sizeof(binary));
    assert_memory_equal(buf, binary, sizeof(binary));

    assert_int_equal(write(m, binary, sizeof(binary)), (ssize_t)sizeof(binary));
    port_read_exact(port, buf, sizeof(binary));
    assert_memory_equal(buf, binary, sizeof(binary));
    /* No echo came back to the master. */
    assert_int_equal(read(m, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);

    assert_int_equal(at_port_write(port, NULL, 0), 0);
    assert_int_equal(at_port_events(port), POLLIN);
    assert_false(at_port_opening(port));
    assert_int_equal(at_port_open_continue(port), 0);
    assert_int_equal(at_port_read(port, buf, 0), 0);
    at_port_close(port);
    close(m);
}

static void test_pty_master_closed(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *port = NULL;
    assert_int_equal(at_port_open(slave, 115200, &port), 0);
    close(m);
    assert_true(wait_fd(at_port_fd(port), POLLIN) & (POLLHUP | POLLIN | POLLERR));
    assert_int_equal(port_read_event(port), -EPIPE);
    assert_int_equal(at_port_write(port, (const uint8_t *)"AT\r", 3), -EPIPE);
    at_port_close(port);
}

static void test_pty_lock_and_reopen(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *a = NULL, *b = (struct at_port *)1;
    assert_int_equal(at_port_open(slave, 115200, &a), 0);
    /* A second instance is refused (flock; TIOCEXCL unless root). */
    assert_int_equal(at_port_open(slave, 115200, &b), -EBUSY);
    assert_null(b);
    at_port_close(a);
    /* Released: the same slave opens again (TIOCNXCL on close). */
    assert_int_equal(at_port_open(slave, 9600, &b), 0);
    at_port_close(b);
    close(m);
}

static void test_pty_via_symlink(void **state)
{
    (void)state;
    char slave[128], dir[] = "/tmp/m2m-port-XXXXXX", link[256];
    int m = open_master(slave, sizeof(slave));
    assert_non_null(mkdtemp(dir));
    snprintf(link, sizeof(link), "%s/usb-SimTech_A7670-if04-port0", dir);
    assert_int_equal(symlink(slave, link), 0);
    struct at_port *port = NULL;
    assert_int_equal(at_port_open(link, 115200, &port), 0);
    assert_int_equal(write(m, "OK\r\n", 4), 4);
    uint8_t buf[4];
    port_read_exact(port, buf, 4);
    assert_memory_equal(buf, "OK\r\n", 4);
    at_port_close(port);
    close(m);
    unlink(link);
    rmdir(dir);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes `pattern` bytes (i & 0xff from *next on) in chunks until the port
 * refuses one; every call must return at once. Returns the bytes taken. */
static size_t fill_port(struct at_port *port, size_t chunk, size_t *next)
{
    uint8_t *buf = malloc(chunk);
    size_t taken = 0;
    int rc;

    assert_non_null(buf);
    for (;;) {
        for (size_t i = 0; i < chunk; i++)
            buf[i] = (uint8_t)(*next + i);
        size_t before = at_port_pending(port);
        int64_t t0 = mono_ms();
        rc = at_port_write(port, buf, chunk);
        assert_true(mono_ms() - t0 < 100);
        if (rc != 0) {
            /* All or nothing: a refused write leaves no trace. */
            assert_int_equal(at_port_pending(port), before);
            break;
        }
        *next += chunk;
        taken += chunk;
        assert_true(taken < (64u << 20));   /* the fd does fill up */
    }
    assert_int_equal(rc, -ENOBUFS);
    free(buf);
    return taken;
}

/* The master does not read: writes return at once, the output buffer
 * fills to its bound, then refuses; when the master drains, flushes on
 * POLLOUT deliver every byte in order. */
static void test_pty_output_buffer(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *port = NULL;
    size_t next = 0;
    assert_int_equal(at_port_open(slave, 115200, &port), 0);

    size_t taken = fill_port(port, 1000, &next);
    size_t pending = at_port_pending(port);
    assert_true(pending > AT_PORT_OUT_MAX - 1000);
    assert_true(pending <= AT_PORT_OUT_MAX);
    assert_int_equal(at_port_events(port), POLLIN | POLLOUT);
    /* Never fits, whatever is buffered. */
    static uint8_t huge[AT_PORT_OUT_MAX + 1];
    assert_int_equal(at_port_write(port, huge, sizeof(huge)), -EMSGSIZE);
    /* Nothing moves while the master does not read. */
    assert_int_equal(at_port_flush(port), 0);

    uint8_t buf[4096];
    size_t got = 0;
    bool more = false;
    while (got < taken) {
        ssize_t n = read(m, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN) {
            if (at_port_pending(port)) {
                assert_true(wait_fd(at_port_fd(port), POLLOUT) & POLLOUT);
                assert_true(at_port_flush(port) >= 0);
            } else {
                assert_true(wait_fd(m, POLLIN) & POLLIN);
            }
            continue;
        }
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (uint8_t)(got + (size_t)i))
                fail_msg("byte %zu: %u, expected %u", got + (size_t)i, buf[i],
                         (uint8_t)(got + (size_t)i));
        got += (size_t)n;
        /* A write while output waits, when the fd has room again, still
         * queues behind what waits. */
        struct pollfd room = { .fd = at_port_fd(port), .events = POLLOUT };
        if (!more && at_port_pending(port) > 0 && poll(&room, 1, 0) == 1) {
            uint8_t tail[100];
            for (size_t i = 0; i < sizeof(tail); i++)
                tail[i] = (uint8_t)(next + i);
            assert_int_equal(at_port_write(port, tail, sizeof(tail)), 0);
            next += sizeof(tail);
            taken += sizeof(tail);
            more = true;
        }
    }
    assert_true(more);
    assert_int_equal(got, taken);
    assert_int_equal(at_port_pending(port), 0);
    assert_int_equal(at_port_events(port), POLLIN);
    /* The largest write fits an empty buffer. */
    assert_int_equal(at_port_write(port, huge, AT_PORT_OUT_MAX), 0);
    at_port_close(port); /* pending output is dropped, no leak */
    close(m);
}

/* Output waits, then the device goes away: the flush reports it. */
static void test_pty_lost_with_output(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *port = NULL;
    size_t next = 0;
    assert_int_equal(at_port_open(slave, 115200, &port), 0);
    fill_port(port, 1000, &next);
    assert_true(at_port_pending(port) > 0);
    close(m);
    assert_true(wait_fd(at_port_fd(port), POLLOUT) != 0);
    assert_int_equal(at_port_flush(port), -EPIPE);
    at_port_close(port);
}

static void test_bad_baud_and_devices(void **state)
{
    (void)state;
    char slave[128];
    int m = open_master(slave, sizeof(slave));
    struct at_port *port = (struct at_port *)1;
    assert_int_equal(at_port_open(slave, 12345, &port), -EINVAL);
    assert_null(port);
    assert_int_equal(at_port_open(slave, 0, &port), -EINVAL);
    close(m);

    assert_int_equal(at_port_open("/dev/ttyDOES-NOT-EXIST", 115200, &port), -ENOENT);
    assert_int_equal(at_port_open("/nonexistent/dir/tty", 115200, &port), -ENOENT);
    /* A character device that is not a tty. */
    assert_int_equal(at_port_open("/dev/null", 115200, &port), -ENOTTY);
    /* Not a character device at all. */
    assert_int_equal(at_port_open("/tmp", 115200, &port), -ENOTTY);
    assert_null(port);
    assert_int_equal(at_port_open(NULL, 115200, &port), -EINVAL);
    assert_int_equal(at_port_open("", 115200, &port), -EINVAL);
    assert_int_equal(at_port_open("x", 115200, NULL), -EINVAL);
    at_port_close(NULL);
    assert_int_equal(at_port_fd(NULL), -1);
}

/* ---- tcp ---- */

static int listen_local(int family, int *port_out)
{
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    }
    if (bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, 4) < 0) {
        close(s);
        return -1;
    }
    len = sizeof(ss);
    assert_int_equal(getsockname(s, (struct sockaddr *)&ss, &len), 0);
    *port_out = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return s;
}

/* An IPv4 loopback listener, and the tcp:// spec that reaches it. */
static int listen_spec(const char *host, char *spec, size_t size)
{
    int lport = 0;
    int ls = listen_local(AF_INET, &lport);
    assert_true(ls >= 0);
    snprintf(spec, size, "tcp://%s:%d", host, lport);
    return ls;
}

/* Moves a tcp:// port on until it is open (or fails: returns the error). */
static int wait_open(struct at_port *port)
{
    for (int i = 0; i < 100; i++) {
        if (!at_port_opening(port))
            return 0;
        if (!wait_fd(at_port_fd(port), at_port_events(port)))
            fail_msg("no event while opening");
        int rc = at_port_open_continue(port);
        if (rc != -EINPROGRESS)
            return rc;
    }
    fail_msg("still opening");
    return -1;
}

static struct at_port *open_tcp_port(const char *spec)
{
    struct at_port *port = NULL;
    assert_int_equal(at_port_open(spec, 0 /* ignored */, &port), 0);
    assert_non_null(port);
    assert_int_equal(wait_open(port), 0);
    assert_false(at_port_opening(port));
    return port;
}

static void tcp_roundtrip(const char *host, int family)
{
    int lport = 0;
    int ls = listen_local(family, &lport);
    if (ls < 0) {
        assert_int_equal(family, AF_INET6); /* IPv4 loopback must work */
        return;                              /* no IPv6 here */
    }
    char spec[64];
    snprintf(spec, sizeof(spec), "tcp://%s:%d", host, lport);
    struct at_port *port = open_tcp_port(spec);
    assert_int_equal(at_port_set_dtr(port, true), -ENOTSUP);
    assert_true(wait_fd(ls, POLLIN) & POLLIN);
    int peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);

    uint8_t buf[64];
    assert_int_equal(at_port_read(port, buf, sizeof(buf)), 0);
    assert_int_equal(at_port_write(port, binary, sizeof(binary)), 0);
    read_exact(peer, buf, sizeof(binary));
    assert_memory_equal(buf, binary, sizeof(binary));
    assert_int_equal(write(peer, binary, sizeof(binary)), (ssize_t)sizeof(binary));
    port_read_exact(port, buf, sizeof(binary));
    assert_memory_equal(buf, binary, sizeof(binary));

    /* Peer closes: EOF is -EPIPE; writes then fail with -EPIPE, not
     * SIGPIPE (the first may still be accepted by the kernel). */
    close(peer);
    assert_int_equal(port_read_event(port), -EPIPE);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = at_port_write(port, (const uint8_t *)"AT\r", 3);
        if (rc == 0)
            wait_fd(at_port_fd(port), POLLERR | POLLHUP);
    }
    assert_int_equal(rc, -EPIPE);
    at_port_close(port);
    close(ls);
}

static void test_tcp_ipv4(void **state)
{
    (void)state;
    tcp_roundtrip("127.0.0.1", AF_INET);
}

static void test_tcp_ipv6(void **state)
{
    (void)state;
    tcp_roundtrip("[::1]", AF_INET6);
}

static void test_tcp_hostname(void **state)
{
    (void)state;
    /* "localhost" may resolve to ::1 first; the port tries each address. */
    tcp_roundtrip("localhost", AF_INET);
}

static void test_tcp_refused(void **state)
{
    (void)state;
    char spec[64];
    close(listen_spec("127.0.0.1", spec, sizeof(spec))); /* the port is now closed */
    struct at_port *port = (struct at_port *)1;
    /* Loopback may refuse inside connect() or a moment later. */
    int rc = at_port_open(spec, 115200, &port);
    if (rc == 0) {
        assert_true(at_port_opening(port));
        rc = wait_open(port);
        at_port_close(port);
    } else {
        assert_null(port);
    }
    assert_int_equal(rc, -ECONNREFUSED);
}

/* A name is looked up in the background: the open returns before it is
 * resolved (numeric hosts need no lookup). */
static void test_tcp_name_in_background(void **state)
{
    (void)state;
    char spec[64];
    int ls = listen_spec("localhost", spec, sizeof(spec));
    struct at_port *port = NULL;
    assert_int_equal(at_port_open(spec, 0, &port), 0);
    assert_true(at_port_opening(port));
    assert_int_equal(at_port_events(port), POLLIN);
    /* Not open yet: nothing to read or write. */
    uint8_t buf[4];
    assert_int_equal(at_port_write(port, (const uint8_t *)"AT\r", 3), -ENOTCONN);
    assert_int_equal(at_port_read(port, buf, sizeof(buf)), -ENOTCONN);
    at_port_close(port);

    /* Closed while the lookup may still run: the thread cleans up (ASan
     * would see a use after free or a leak). And opened to the end. */
    assert_int_equal(at_port_open(spec, 0, &port), 0);
    at_port_close(port);
    port = open_tcp_port(spec);
    at_port_close(port);
    close(ls);

    /* .invalid never resolves (RFC 6761). */
    assert_int_equal(at_port_open("tcp://modem2mqtt-test.invalid:4001", 0, &port), 0);
    int rc = wait_open(port);
    assert_true(rc == -EHOSTUNREACH || rc == -EAGAIN);
    at_port_close(port);
}

/* A connect the listener never completes (its accept queue is full, so
 * the kernel drops our SYNs): the port stays opening and nothing waits;
 * bounding it is the owner's timer (AT_PORT_CONNECT_MS, modem_port.c). */
static void test_tcp_connect_hangs(void **state)
{
    (void)state;
    char spec[64];
    int ls = listen_spec("127.0.0.1", spec, sizeof(spec));
    assert_int_equal(listen(ls, 0), 0);
    /* Fill the accept queue (backlog 0 holds one), without accepting. */
    struct at_port *filler = open_tcp_port(spec);
    struct at_port *port = NULL;
    int64_t t0 = mono_ms();
    assert_int_equal(at_port_open(spec, 0, &port), 0);
    assert_true(mono_ms() - t0 < 100);
    assert_true(at_port_opening(port));
    struct pollfd pfd = { .fd = at_port_fd(port), .events = at_port_events(port) };
    assert_int_equal(poll(&pfd, 1, 300), 0);
    assert_true(at_port_opening(port));
    at_port_close(port);
    at_port_close(filler);
    close(ls);
}

/* A device server that accepts and never reads: writes return at once
 * until the bounded buffer is full; when it reads, the port flushes; when
 * it closes with output waiting, the flush reports the port lost. */
static void test_tcp_peer_stops_reading(void **state)
{
    (void)state;
    char spec[64];
    int ls = listen_spec("127.0.0.1", spec, sizeof(spec));
    struct at_port *port = open_tcp_port(spec);
    int peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(peer >= 0);

    size_t next = 0;
    size_t taken = fill_port(port, 4000, &next);
    assert_true(at_port_pending(port) > AT_PORT_OUT_MAX - 4000);
    /* It reads until the socket is writable again: a flush moves bytes. */
    uint8_t buf[65536];
    size_t got = 0;
    struct pollfd out = { .fd = at_port_fd(port), .events = POLLOUT };
    while (poll(&out, 1, 0) == 0) {
        assert_true(got < taken);
        ssize_t n = read(peer, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN) {
            assert_true(wait_fd(peer, POLLIN) & POLLIN);
            continue;
        }
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_true(at_port_flush(port) > 0);
    /* It stops again, then closes with our bytes unread (a reset) while
     * output waits: the port is lost. */
    fill_port(port, 4000, &next);
    close(peer);
    ssize_t rc = 0;
    for (int i = 0; i < 100 && rc >= 0; i++) {
        wait_fd(at_port_fd(port), POLLOUT);
        rc = at_port_flush(port);
    }
    assert_int_equal(rc, -EPIPE);
    at_port_close(port);
    close(ls);
}

static void test_tcp_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "tcp://",           "tcp://host",         "tcp://host:",     "tcp://:80",
        "tcp://host:0",     "tcp://host:65536",   "tcp://host:12a",  "tcp://host:-1",
        "tcp://host:123456", "tcp://::1:80",      "tcp://[::1:80",   "tcp://[::1]80",
        "tcp://[]:80",      "tcp://host:80/path", "tcp://ho st:80",  "tcp://host:+80",
        "udp://host:80",    "rfc2217://host:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct at_port *port = (struct at_port *)1;
        int rc = at_port_open(bad[i], 115200, &port);
        if (rc != -EINVAL)
            fail_msg("%s: expected -EINVAL, got %d", bad[i], rc);
        assert_null(port);
    }
}

/* ---- auto table and listing ---- */

static void test_known_modems(void **state)
{
    (void)state;
    /* ModemManager's SIMCom rules: the primary AT interface. */
    assert_non_null(at_port_known_modem(0x1e0e, 0x9011, 4));
    assert_non_null(at_port_known_modem(0x1e0e, 0x9001, 2));
    assert_non_null(at_port_known_modem(0x1e0e, 0x9205, 2));
    assert_non_null(at_port_known_modem(0x1e0e, 0x9206, 2));
    /* Diag, NMEA, PPP and audio interfaces are not the AT port. */
    assert_null(at_port_known_modem(0x1e0e, 0x9011, 2));
    assert_null(at_port_known_modem(0x1e0e, 0x9011, 5));
    assert_null(at_port_known_modem(0x1e0e, 0x9001, 0));
    assert_null(at_port_known_modem(0x1e0e, 0x9001, 3));
    assert_null(at_port_known_modem(0x1e0e, 0x9001, -1));
    assert_null(at_port_known_modem(0x2c7c, 0x0125, 2));
}

static void test_list_and_auto(void **state)
{
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    int n = at_port_list(f);
    fclose(f);
    assert_true(n >= 0);
    assert_non_null(text);
    if (n == 0) {
        assert_string_equal(text, "no serial ports found\n");
    } else {
        /* The header, then one line per port. */
        const char *header = "PORT            USB VID:PID IF       SERIAL  DESCRIPTION\n";
        size_t lines = 0;
        assert_memory_equal(text, header, strlen(header));
        for (const char *c = text; *c; c++)
            lines += *c == '\n';
        assert_int_equal(lines, (size_t)n + 1);
    }
    free(text);
    assert_int_equal(at_port_list(NULL), -EINVAL);

    char path[256];
    int rc = at_port_find_auto(path, sizeof(path));
    /* A build machine normally has no modem; one with a modem finds it. */
    assert_true(rc == 0 || rc == -ENODEV);
    if (rc == 0)
        assert_int_equal(at_port_find_auto(path, 2), -ENOSPC);
    assert_int_equal(at_port_find_auto(NULL, 10), -EINVAL);

    /* "auto" without a modem: -ENODEV from at_port_open too. */
    if (rc == -ENODEV) {
        struct at_port *port = (struct at_port *)1;
        assert_int_equal(at_port_open("auto", 115200, &port), -ENODEV);
        assert_null(port);
    }
}

/* ---- advice (port_hint.c) ---- */

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' not in '%s'", part, text);
}

/* Permission denied names this process's user and the command that lets
 * it in: the device's group when that group may read and write it (the
 * distribution's serial group), else dialout. */
static void test_open_advice_permission(void **state)
{
    (void)state;
    char path[] = "/tmp/m2m-port-hint-XXXXXX", buf[512], want[256];
    struct passwd *pw = getpwuid(geteuid());
    struct group *gr = getgrgid(getegid());
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_non_null(pw);
    assert_non_null(gr);
    assert_int_equal(fchmod(fd, 0660), 0);
    at_port_open_advice(-EACCES, path, buf, sizeof(buf));
    snprintf(want, sizeof(want), ": user %s may not use it; add it to group %s (`sudo usermod -aG %s %s`",
             pw->pw_name, gr->gr_name, gr->gr_name, pw->pw_name);
    assert_contains(buf, want);
    snprintf(want, sizeof(want), "SupplementaryGroups=%s", gr->gr_name);
    assert_contains(buf, want);
    snprintf(want, sizeof(want), "group_add: [%s]", gr->gr_name);
    assert_contains(buf, want);

    /* Only the owner may: the group of the device is no help. */
    assert_int_equal(fchmod(fd, 0600), 0);
    at_port_open_advice(-EACCES, path, buf, sizeof(buf));
    snprintf(want, sizeof(want), "`sudo usermod -aG dialout %s`", pw->pw_name);
    assert_contains(buf, want);
    close(fd);
    unlink(path);
}

static void test_open_advice_others(void **state)
{
    (void)state;
    char buf[512];

    assert_contains(at_port_open_advice(-EBUSY, "/dev/ttyUSB2", buf, sizeof(buf)),
                    "`systemctl stop ModemManager`");
    assert_contains(at_port_open_advice(-ENOENT, "/dev/ttyUSB2", buf, sizeof(buf)),
                    "`modem2mqtt --list-ports`");
    assert_contains(at_port_open_advice(-ENOTTY, "/dev/null", buf, sizeof(buf)),
                    "not a serial port");
    assert_contains(at_port_open_advice(-ENODEV, "auto", buf, sizeof(buf)),
                    "no known modem found for \"auto\"");
    /* Nothing useful to add. */
    assert_string_equal(at_port_open_advice(-EIO, "/dev/ttyUSB2", buf, sizeof(buf)), "");
}

/* The port opens and nothing answers: the port as configured, the baud,
 * and where to look. */
static void test_silent_advice(void **state)
{
    (void)state;
    char slave[128], spec[64], buf[512], want[512];
    struct at_port *port = NULL;
    int m = open_master(slave, sizeof(slave));

    assert_int_equal(at_port_open(slave, 9600, &port), 0);
    at_port_silent_advice(port, slave, 9600, buf, sizeof(buf));
    snprintf(want, sizeof(want),
             "no answer to AT on %s at 9600 baud: check that it is the modem's AT port "
             "(`modem2mqtt --list-ports` marks it) and the baud (modem.baud), and that no "
             "other program uses it (`systemctl stop ModemManager`)",
             slave);
    assert_string_equal(buf, want);
    at_port_close(port);
    close(m);
    /* The port closed meanwhile: the spec says what it was. */
    at_port_silent_advice(NULL, slave, 9600, buf, sizeof(buf));
    assert_string_equal(buf, want);

    /* A device server: no baud of ours, no ModemManager. */
    int ls = listen_spec("127.0.0.1", spec, sizeof(spec));
    assert_int_equal(at_port_open(spec, 115200, &port), 0);
    at_port_silent_advice(port, spec, 115200, buf, sizeof(buf));
    snprintf(want, sizeof(want),
             "no answer to AT from %s: check that the device server is connected to the "
             "modem's AT port, at the modem's baud rate",
             spec);
    assert_string_equal(buf, want);
    at_port_close(port);
    close(ls);
    at_port_silent_advice(NULL, spec, 115200, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pty_both_ways),
        cmocka_unit_test(test_pty_master_closed),
        cmocka_unit_test(test_pty_lock_and_reopen),
        cmocka_unit_test(test_pty_via_symlink),
        cmocka_unit_test(test_pty_output_buffer),
        cmocka_unit_test(test_pty_lost_with_output),
        cmocka_unit_test(test_bad_baud_and_devices),
        cmocka_unit_test(test_tcp_ipv4),
        cmocka_unit_test(test_tcp_ipv6),
        cmocka_unit_test(test_tcp_hostname),
        cmocka_unit_test(test_tcp_refused),
        cmocka_unit_test(test_tcp_name_in_background),
        cmocka_unit_test(test_tcp_connect_hangs),
        cmocka_unit_test(test_tcp_peer_stops_reading),
        cmocka_unit_test(test_tcp_malformed),
        cmocka_unit_test(test_known_modems),
        cmocka_unit_test(test_list_and_auto),
        cmocka_unit_test(test_open_advice_permission),
        cmocka_unit_test(test_open_advice_others),
        cmocka_unit_test(test_silent_advice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
