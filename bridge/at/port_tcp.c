/* The modem port over tcp:// (ser2net, a serial device server; see
 * port_int.h for the other files): parsing the spec, resolving a host name
 * in a helper thread, the non-blocking connect through the resolved
 * addresses, and the port's fd and open steps while that goes on. */
#include "at/port_int.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#define AT_PORT_HOST_MAX 255

/* "tcp://HOST:PORT" or "tcp://[V6ADDR]:PORT" -> host, port. */
static int parse_tcp(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
    const char *p = spec + strlen("tcp://");
    const char *hbeg, *hend, *colon;

    if (*p == '[') {
        hbeg = p + 1;
        hend = strchr(hbeg, ']');
        if (!hend || hend[1] != ':')
            return -EINVAL;
        colon = hend + 1;
    } else {
        hbeg = p;
        colon = strrchr(p, ':');
        if (!colon)
            return -EINVAL;
        hend = colon;
        /* An unbracketed IPv6 address is ambiguous. */
        if (memchr(hbeg, ':', (size_t)(hend - hbeg)))
            return -EINVAL;
    }
    size_t hlen = (size_t)(hend - hbeg);
    if (hlen == 0 || hlen >= hsize)
        return -EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)hbeg[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%')
            return -EINVAL;
    }

    const char *pbeg = colon + 1;
    size_t plen = strlen(pbeg);
    if (plen == 0 || plen > 5 || plen >= psize)
        return -EINVAL;
    long v = 0;
    for (size_t i = 0; i < plen; i++) {
        if (pbeg[i] < '0' || pbeg[i] > '9')
            return -EINVAL;
        v = v * 10 + (pbeg[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -EINVAL;

    memcpy(host, hbeg, hlen);
    host[hlen] = '\0';
    memcpy(port, pbeg, plen + 1);
    return 0;
}

static int gai_to_errno(int rc, int err)
{
    switch (rc) {
    case EAI_SYSTEM:
        return err ? -err : -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -EHOSTUNREACH;
    default:
        return -EINVAL;
    }
}

/* Host names are resolved in a short-lived thread per open, because
 * getaddrinfo has no non-blocking form and may take the resolver's whole
 * timeout (tens of seconds with a DNS server down) inside the loop.
 * Resolving once at start would be smaller but not robust: a DNS not yet
 * up at boot, or a device server that moved (DHCP), would need a restart.
 * getaddrinfo_a cannot be cancelled once running either, so it would need
 * the same shared-lifetime care as this.
 *
 * The thread and the port share only the job, counted: whoever lets go
 * last frees it. A port closed (or timed out) while the lookup hangs
 * drops its reference and never waits for the thread. */
struct resolve_job {
    atomic_int refs;
    atomic_bool done;      /* rc, err, res are set (release/acquire) */
    int efd;               /* eventfd: readable once done */
    char host[AT_PORT_HOST_MAX + 1];
    char port[8];
    int rc;                /* getaddrinfo's result */
    int err;               /* errno for EAI_SYSTEM */
    struct addrinfo *res;  /* taken by the port, or freed with the job */
};

static const struct addrinfo tcp_hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    /* No AI_ADDRCONFIG: with only loopback configured (a container, a
     * device server on a local bridge) it hides usable addresses. */
    .ai_flags = AI_NUMERICSERV,
};

void port_job_unref(struct resolve_job *job)
{
    if (atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    close(job->efd);
    if (job->res)
        freeaddrinfo(job->res);
    free(job);
}

static void *resolve_main(void *arg)
{
    struct resolve_job *job = arg;
    const uint64_t one = 1;

    errno = 0;
    job->rc = getaddrinfo(job->host, job->port, &tcp_hints, &job->res);
    job->err = errno;
    atomic_store(&job->done, true);
    /* An eventfd write cannot block or raise SIGPIPE. */
    if (write(job->efd, &one, sizeof(one)) < 0)
        log_debug("port: resolver: eventfd: %s", strerror(errno));
    port_job_unref(job);
    return NULL;
}

static int resolve_start(struct at_port *port, const char *host, const char *service)
{
    struct resolve_job *job = calloc(1, sizeof(*job));
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (!job)
        return -ENOMEM;
    job->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (job->efd < 0) {
        rc = -errno;
        free(job);
        return rc;
    }
    snprintf(job->host, sizeof(job->host), "%s", host);
    snprintf(job->port, sizeof(job->port), "%s", service);
    atomic_init(&job->refs, 2);
    atomic_init(&job->done, false);

    /* Signals stay with the loop thread (the self-pipe handlers). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, resolve_main, job);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(job->efd);
        free(job);
        return -rc;
    }
    port->job = job;
    port->phase = PORT_RESOLVING;
    log_debug("port: %s: resolving %s", port->name, host);
    return 0;
}

/* AT commands are short and latency-bound: no Nagle delay. Keepalive
 * notices a device server that vanished without a FIN (power loss):
 * otherwise a half-open connection never reports an error. */
static void tcp_tune(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static int tcp_connected(struct at_port *port)
{
    tcp_tune(port->fd);
    freeaddrinfo(port->addrs);
    port->addrs = NULL;
    port->next = NULL;
    port->phase = PORT_OPEN;
    log_debug("port: opened %s (tcp)", port->name);
    return 0;
}

/* Starts a non-blocking connect to the next resolved address, going on to
 * the following one when it fails at once. 0 (connected), -EINPROGRESS,
 * or the last address's -errno. */
static int connect_next(struct at_port *port)
{
    int ret = -EHOSTUNREACH;

    while (port->next) {
        const struct addrinfo *ai = port->next;

        port->next = ai->ai_next;
        port->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol);
        if (port->fd < 0) {
            ret = -errno;
            continue;
        }
        if (connect(port->fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return tcp_connected(port);
        if (errno == EINPROGRESS) {
            port->phase = PORT_CONNECTING;
            return -EINPROGRESS;
        }
        ret = -errno;
        log_debug("port: %s: connect: %s", port->name, strerror(-ret));
        close(port->fd);
        port->fd = -1;
    }
    return ret;
}

/* POLLOUT (or an error) on a connecting socket: SO_ERROR says how it went;
 * getpeername tells a call before the end apart from success. */
static int connect_result(struct at_port *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int soerr = 0;
    socklen_t el = sizeof(soerr);

    if (getsockopt(port->fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0)
        soerr = errno;
    if (soerr == 0 && getpeername(port->fd, (struct sockaddr *)&ss, &sl) == 0)
        return tcp_connected(port);
    if (soerr == 0 && errno == ENOTCONN)
        return -EINPROGRESS;
    if (soerr == 0)
        soerr = errno;
    log_debug("port: %s: connect: %s", port->name, strerror(soerr));
    close(port->fd);
    port->fd = -1;
    return port->next ? connect_next(port) : -soerr;
}

/* The lookup finished: its addresses, then the first connect. */
static int resolve_result(struct at_port *port)
{
    struct resolve_job *job = port->job;
    uint64_t v;

    if (read(job->efd, &v, sizeof(v)) < 0 || !atomic_load(&job->done))
        return -EINPROGRESS;
    port->job = NULL;
    if (job->rc != 0) {
        int ret = gai_to_errno(job->rc, job->err);

        log_debug("port: %s: %s", port->name, gai_strerror(job->rc));
        port_job_unref(job);
        return ret;
    }
    port->addrs = job->res;
    port->next = job->res;
    job->res = NULL;
    port_job_unref(job);
    return connect_next(port);
}

/* A numeric host connects now; a name goes to the resolver thread. */
int port_open_tcp(struct at_port *port, const char *spec)
{
    char host[AT_PORT_HOST_MAX + 1], service[8];
    struct addrinfo hints = tcp_hints;
    int ret = parse_tcp(spec, host, sizeof(host), service, sizeof(service));

    if (ret < 0) {
        log_debug("port: %s: expected tcp://HOST:PORT (IPv6: tcp://[ADDR]:PORT)", spec);
        return ret;
    }
    /* A numeric host never waits for a resolver. */
    hints.ai_flags |= AI_NUMERICHOST;
    errno = 0;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc == EAI_NONAME)
        return resolve_start(port, host, service);
    if (rc != 0) {
        ret = gai_to_errno(rc, errno);
        log_debug("port: %s: %s", spec, gai_strerror(rc));
        return ret;
    }
    port->addrs = res;
    port->next = res;
    ret = connect_next(port);
    if (ret < 0 && ret != -EINPROGRESS)
        log_debug("port: %s: connect: %s", spec, strerror(-ret));
    return ret;
}

int at_port_fd(const struct at_port *port)
{
    if (!port)
        return -1;
    /* The lookup's eventfd until it is done (then the job is gone). */
    return port->job ? port->job->efd : port->fd;
}

int at_port_open_continue(struct at_port *port)
{
    if (!port)
        return -EINVAL;
    switch (port->phase) {
    case PORT_RESOLVING:
        return resolve_result(port);
    case PORT_CONNECTING:
        return connect_result(port);
    case PORT_OPEN:
    default:
        return 0;
    }
}

