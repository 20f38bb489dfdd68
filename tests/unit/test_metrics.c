/* core/metrics: the listen address and request parsers (tables), and the
 * responder on a real loop over loopback: the page, 404, 405, 400, a
 * renderer that fails, and a request that arrives in pieces. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/loop.h"
#include "core/metrics.h"
#include "core/netaddr.h"

struct listen_case {
    const char *s;
    int ok;
    int family;
    int port;
};

static const struct listen_case listen_cases[] = {
    { "127.0.0.1:9713", 1, AF_INET, 9713 },
    { "0.0.0.0:1", 1, AF_INET, 1 },
    { "[::1]:65535", 1, AF_INET6, 65535 },
    { "[::]:9713", 1, AF_INET6, 9713 },
    { "127.0.0.1:0", 0, 0, 0 },
    { "127.0.0.1:65536", 0, 0, 0 },
    { "127.0.0.1:", 0, 0, 0 },
    { "127.0.0.1:97a3", 0, 0, 0 },
    { "127.0.0.1:+9713", 0, 0, 0 },
    { "127.0.0.1:000009713", 0, 0, 0 },
    { "localhost:9713", 0, 0, 0 },      /* no names: nothing waits for DNS */
    { "::1:9713", 0, 0, 0 },            /* IPv6 needs brackets */
    { "[127.0.0.1]:9713", 0, 0, 0 },
    { "[::1]9713", 0, 0, 0 },
    { "[::1", 0, 0, 0 },
    { "9713", 0, 0, 0 },
    { "", 0, 0, 0 },
};

static void test_parse_listen(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof listen_cases / sizeof listen_cases[0]; i++) {
        const struct listen_case *c = &listen_cases[i];
        struct sockaddr_storage ss;
        socklen_t len = 0;
        int r = netaddr_parse(c->s, &ss, &len);
        if ((r == 0) != c->ok) {
            print_error("case '%s': got %d\n", c->s, r);
            fail();
        }
        if (!c->ok)
            continue;
        assert_int_equal(ss.ss_family, c->family);
        int port = c->family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                        : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        assert_int_equal(port, c->port);
    }
    assert_int_equal(netaddr_parse(NULL, NULL, NULL), -EINVAL);
}

struct request_case {
    const char *req;
    int want;
};

static const struct request_case request_cases[] = {
    { "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 200 },
    { "GET /metrics HTTP/1.0\r\n\r\n", 200 },
    { "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", 200 },
    { "GET /metrics HTTP/1.1\n\n", 200 },
    { "GET / HTTP/1.1\r\n\r\n", 404 },
    { "GET /metricsx HTTP/1.1\r\n\r\n", 404 },
    { "GET /metrics/ HTTP/1.1\r\n\r\n", 404 },
    { "POST /metrics HTTP/1.1\r\n\r\n", 405 },
    { "HEAD /metrics HTTP/1.1\r\n\r\n", 405 },
    { "get /metrics HTTP/1.1\r\n\r\n", 400 },
    { "GET  /metrics HTTP/1.1\r\n\r\n", 400 },
    { "GET /metrics HTTP/2.0\r\n\r\n", 400 },
    { "GET /metrics\r\n\r\n", 400 },
    { "\r\n\r\n", 400 },
    { "GET /metrics HTTP/1.1\r\n", 0 },     /* the head goes on */
    { "GET /metr", 0 },
    { "", 0 },
};

static void test_parse_request(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof request_cases / sizeof request_cases[0]; i++) {
        const struct request_case *c = &request_cases[i];
        int r = metrics_parse_request(c->req, strlen(c->req));
        if (r != c->want) {
            print_error("case %zu: got %d, want %d\n", i, r, c->want);
            fail();
        }
    }
}

/* ---- live ---- */

static int render_ok(void *ctx, char *buf, size_t size)
{
    (void)ctx;
    return snprintf(buf, size, "modem2mqtt_commands_total{modem=\"m\"} 7\n");
}

static int render_fails(void *ctx, char *buf, size_t size)
{
    (void)ctx;
    (void)buf;
    (void)size;
    return -1;
}

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

struct exchange {
    struct loop *loop;
    int fd;
    const char *parts[4];   /* sent one per loop wakeup; NULL-terminated */
    size_t next;
    char got[8192];
    size_t got_len;
    bool done;
};

static void client_ready(void *ctx, int fd, short revents)
{
    struct exchange *x = ctx;
    (void)revents;
    if (x->parts[x->next]) {
        const char *p = x->parts[x->next++];
        assert_int_equal(write(fd, p, strlen(p)), (ssize_t)strlen(p));
        if (!x->parts[x->next])
            loop_mod_fd(x->loop, fd, POLLIN);
        return;
    }
    ssize_t n = read(fd, x->got + x->got_len, sizeof x->got - 1 - x->got_len);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        x->done = true;
        loop_del_fd(x->loop, fd);
        loop_stop(x->loop);
        return;
    }
    x->got_len += (size_t)n;
    x->got[x->got_len] = '\0';
}

static int64_t deadline(void *ctx)
{
    loop_stop(ctx);
    return 0;
}

/* Sends parts to a responder rendering with render, after `idle`
 * connections that send nothing; returns the response. */
static void exchange_after(int idle, metrics_render_fn render, const char *const *parts,
                           char *out, size_t size)
{
    struct loop *loop = loop_new();
    struct metrics *m = NULL;
    char addr[32];
    int port = free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(metrics_open(loop, addr, render, NULL, &m), 0);

    struct exchange x = { .loop = loop };
    for (size_t i = 0; i < 3 && parts[i]; i++)
        x.parts[i] = parts[i];
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int idle_fd[METRICS_CLIENTS + 2];
    assert_true(idle <= METRICS_CLIENTS + 2);
    for (int i = 0; i < idle; i++) {
        idle_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(idle_fd[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    x.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(x.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(x.fd, F_SETFL, O_NONBLOCK);
    assert_int_equal(loop_add_fd(loop, x.fd, POLLOUT, client_ready, &x), 0);
    assert_int_equal(loop_add_timer(loop, 5000, deadline, loop, NULL), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_true(x.done);
    snprintf(out, size, "%s", x.got);
    close(x.fd);
    for (int i = 0; i < idle; i++)
        close(idle_fd[i]);
    metrics_close(m);
    loop_free(loop);
}

static void exchange(metrics_render_fn render, const char *const *parts, char *out, size_t size)
{
    exchange_after(0, render, parts, out, size);
}

static void test_live(void **state)
{
    char got[8192];
    (void)state;

    const char *ok[] = { "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", NULL };
    exchange(render_ok, ok, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(got, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(got, "Content-Length: 39\r\n"));
    assert_non_null(strstr(got, "\r\n\r\nmodem2mqtt_commands_total{modem=\"m\"} 7\n"));

    const char *pieces[] = { "GET /met", "rics HTTP/1.1\r\n", "\r\n" };
    exchange(render_ok, pieces, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 200 OK\r\n"));

    const char *other[] = { "GET /other HTTP/1.1\r\n\r\n", NULL };
    exchange(render_ok, other, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 404 Not Found\r\n"));

    const char *post[] = { "POST /metrics HTTP/1.1\r\n\r\n", NULL };
    exchange(render_ok, post, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 405 Method Not Allowed\r\n"));

    const char *junk[] = { "\x16\x03\x01 hello\r\n\r\n", NULL };
    exchange(render_ok, junk, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 400 Bad Request\r\n"));

    exchange(render_fails, ok, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 500 Internal Server Error\r\n"));

    /* More idle connections than slots: the scraper still gets its page. */
    exchange_after(METRICS_CLIENTS + 2, render_ok, ok, got, sizeof got);
    assert_non_null(strstr(got, "HTTP/1.0 200 OK\r\n"));
}

static void test_open_errors(void **state)
{
    struct loop *loop = loop_new();
    struct metrics *m = NULL, *m2 = NULL;
    char addr[32];
    (void)state;
    assert_int_equal(metrics_open(loop, "localhost:80", render_ok, NULL, &m), -EINVAL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    assert_int_equal(metrics_open(loop, addr, render_ok, NULL, &m), 0);
    assert_int_equal(metrics_open(loop, addr, render_ok, NULL, &m2), -EADDRINUSE);
    metrics_close(m);
    metrics_close(NULL);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
