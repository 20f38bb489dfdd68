#include "core/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/netaddr.h"

struct client {
    struct metrics *m;
    int fd;                         /* -1: slot free */
    int64_t since;                  /* accepted at, loop_now_ms() */
    uint64_t timer;
    char in[METRICS_REQUEST_MAX];
    size_t in_len;
    char *out;                      /* the response once known */
    size_t out_len, out_off;
};

struct metrics {
    struct loop *loop;
    int fd;
    uint64_t pause_timer;           /* accept() paused: out of descriptors */
    metrics_render_fn render;
    void *ctx;
    struct client clients[METRICS_CLIENTS];
};

/* ---- pure parts ---- */

/* The end of the request head (an empty line), or NULL. */
static const char *head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            return buf + i + 2;
        if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i + 4;
    }
    return NULL;
}

int metrics_parse_request(const char *buf, size_t len)
{
    if (!head_end(buf, len))
        return 0;
    /* METHOD SP TARGET SP HTTP/1.x CRLF */
    size_t i = 0, m_end, t_start, t_end;
    while (i < len && buf[i] >= 'A' && buf[i] <= 'Z')
        i++;
    m_end = i;
    if (m_end == 0 || i >= len || buf[i] != ' ')
        return 400;
    t_start = ++i;
    while (i < len && buf[i] > ' ' && buf[i] < 0x7f)
        i++;
    t_end = i;
    if (t_end == t_start || i >= len || buf[i] != ' ')
        return 400;
    i++;
    if (len - i < 9 || memcmp(buf + i, "HTTP/1.", 7) != 0 || buf[i + 7] < '0' ||
        buf[i + 7] > '9' || (buf[i + 8] != '\r' && buf[i + 8] != '\n'))
        return 400;
    if (m_end != 3 || memcmp(buf, "GET", 3) != 0)
        return 405;
    size_t tlen = t_end - t_start;
    const char *t = buf + t_start;
    if ((tlen == 8 && memcmp(t, "/metrics", 8) == 0) ||
        (tlen > 8 && memcmp(t, "/metrics?", 9) == 0))
        return 200;
    return 404;
}

/* ---- connections ---- */

static void client_close(struct client *c)
{
    if (c->fd < 0)
        return;
    loop_del_fd(c->m->loop, c->fd);
    loop_cancel_timer(c->m->loop, c->timer);
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->timer = 0;
    c->out = NULL;
    c->in_len = c->out_len = c->out_off = 0;
}

static int64_t client_expired(void *ctx)
{
    struct client *c = ctx;
    c->timer = 0;
    client_close(c);
    return 0;
}

static char *response(struct metrics *m, int code, size_t *len)
{
    const char *reason = code == 200   ? "OK"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                                       : "Bad Request";
    char *body = NULL;
    int blen;

    if (code == 200) {
        blen = m->render(m->ctx, NULL, 0);
        if (blen < 0 || !(body = malloc((size_t)blen + 1)) ||
            m->render(m->ctx, body, (size_t)blen + 1) != blen) {
            free(body);
            body = NULL;
            code = 500;
            reason = "Internal Server Error";
        }
    }
    if (!body) {
        blen = (int)strlen(reason) + 1;
        if (!(body = malloc((size_t)blen + 1)))
            return NULL;
        snprintf(body, (size_t)blen + 1, "%s\n", reason);
    }
    const char *type = code == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain";
#define HEAD "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    int hlen = snprintf(NULL, 0, HEAD, code, reason, type, blen);
    char *out = malloc((size_t)hlen + (size_t)blen + 1);
    if (out) {
        snprintf(out, (size_t)hlen + 1, HEAD, code, reason, type, blen);
#undef HEAD
        memcpy(out + hlen, body, (size_t)blen);
        *len = (size_t)hlen + (size_t)blen;
    }
    free(body);
    return out;
}

static void client_write(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            loop_mod_fd(c->m->loop, c->fd, POLLOUT);
            return;
        }
        if (n <= 0)
            break;
        c->out_off += (size_t)n;
    }
    client_close(c);
}

static void client_ready(void *ctx, int fd, short revents)
{
    struct client *c = ctx;
    (void)fd;

    if (c->out) {
        client_write(c);
        return;
    }
    if (revents & (POLLERR | POLLNVAL)) {
        client_close(c);
        return;
    }
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->in_len += (size_t)n;
    int code = metrics_parse_request(c->in, c->in_len);
    if (code == 0 && c->in_len < sizeof(c->in))
        return;                 /* the rest of the head is on its way */
    if (code == 0)
        code = 400;             /* a head that does not fit */
    c->out = response(c->m, code, &c->out_len);
    if (!c->out) {
        client_close(c);
        return;
    }
    client_write(c);
}

static int64_t accept_resume(void *ctx)
{
    struct metrics *m = ctx;

    m->pause_timer = 0;
    loop_mod_fd(m->loop, m->fd, POLLIN);
    return 0;
}

/* A free slot, or the one held longest by a client that has not been
 * answered yet: a few idle connections must not keep the scraper out. */
static struct client *take_slot(struct metrics *m)
{
    struct client *oldest = NULL;

    for (size_t i = 0; i < METRICS_CLIENTS; i++) {
        struct client *c = &m->clients[i];
        if (c->fd < 0)
            return c;
        if (!c->out && (!oldest || c->since < oldest->since))
            oldest = c;
    }
    if (oldest)
        client_close(oldest);
    return oldest;
}

static void on_accept(void *ctx, int fd, short revents)
{
    struct metrics *m = ctx;
    (void)revents;

    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0) {
            /* Out of descriptors: the pending connection keeps the socket
             * readable, and a level-triggered loop would spin on it. */
            if ((errno == EMFILE || errno == ENFILE) && !m->pause_timer &&
                loop_add_timer(m->loop, METRICS_PAUSE_MS, accept_resume, m, &m->pause_timer) == 0)
                loop_mod_fd(m->loop, fd, 0);
            return;             /* EAGAIN: all taken */
        }
        struct client *c = take_slot(m);
        if (!c || fcntl(cfd, F_SETFL, O_NONBLOCK) < 0 ||
            loop_add_fd(m->loop, cfd, POLLIN, client_ready, c) < 0) {
            close(cfd);         /* all slots answering: the scraper tries again */
            continue;
        }
        c->fd = cfd;
        c->since = loop_now_ms();
        if (loop_add_timer(m->loop, METRICS_TIMEOUT_MS, client_expired, c, &c->timer) < 0)
            client_close(c);
    }
}

int metrics_open(struct loop *loop, const char *listen_on, metrics_render_fn render, void *ctx,
                 struct metrics **out)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    struct metrics *m;
    int one = 1, ret;

    if (netaddr_parse(listen_on, &ss, &slen) < 0)
        return -EINVAL;
    if (!(m = calloc(1, sizeof(*m))))
        return -ENOMEM;
    m->loop = loop;
    m->render = render;
    m->ctx = ctx;
    for (size_t i = 0; i < METRICS_CLIENTS; i++) {
        m->clients[i].m = m;
        m->clients[i].fd = -1;
    }
    m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->fd < 0) {
        ret = -errno;
        free(m);
        return ret;
    }
    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(m->fd, (struct sockaddr *)&ss, slen) < 0 || listen(m->fd, METRICS_BACKLOG) < 0) {
        ret = -errno;
        close(m->fd);
        free(m);
        return ret;
    }
    if ((ret = loop_add_fd(loop, m->fd, POLLIN, on_accept, m)) < 0) {
        close(m->fd);
        free(m);
        return ret;
    }
    *out = m;
    return 0;
}

void metrics_close(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < METRICS_CLIENTS; i++)
        client_close(&m->clients[i]);
    loop_cancel_timer(m->loop, m->pause_timer);
    loop_del_fd(m->loop, m->fd);
    close(m->fd);
    free(m);
}
