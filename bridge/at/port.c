/* The modem's byte stream: serial device, pseudo-terminal or TCP.
 *
 * Three ways in, one non-blocking fd out:
 *  - a real serial device (USB ttyUSB/ttyACM, UART): libserialport, which
 *    knows the platform quirks of setting speeds and flow control;
 *  - a pseudo-terminal (the simulator, socat, a test): termios directly,
 *    because libserialport 0.1.1 cannot open one: sp_get_port_by_name
 *    finds no sysfs device for it (SP_ERR_ARG), and sp_open's TIOCMGET
 *    fails with ENOTTY. Other ttys libserialport rejects the same way
 *    take the termios path too;
 *  - tcp://HOST:PORT (ser2net, a serial device server), connected to in
 *    the background (at_port_open_continue).
 *
 * Writes never wait: what the fd does not take is kept in a bounded
 * output buffer that the owner flushes on POLLOUT (port.h).
 *
 * Ports are locked (flock + TIOCEXCL) so a second modem2mqtt, minicom or
 * ModemManager's probing cannot interleave bytes with ours: two writers on
 * one AT port corrupt each other's commands and steal each other's
 * responses, which looks like random timeouts.
 *
 * This file opens a port by its spec, closes it, reads, and keeps the
 * output buffer; devices (port_dev.c), tcp:// (port_tcp.c) and finding
 * and listing ports (port_list.c) are its siblings', listed in
 * port_int.h. */
#include "at/port_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libserialport.h>

#include "core/log.h"
#include "core/loop.h"

/* errno values that mean "the other end is gone" (header: -EPIPE). */
static bool errno_is_gone(int e)
{
    return e == EPIPE || e == EIO || e == ECONNRESET || e == ENODEV || e == ENXIO ||
           e == ETIMEDOUT || e == ESHUTDOWN || e == ENOTCONN;
}

/* ---- API ---- */

int at_port_open(const char *spec, int baud, struct at_port **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!spec || !*spec)
        return -EINVAL;

    int ret;
    char autopath[PATH_MAX];
    struct at_port *port = calloc(1, sizeof(*port));
    if (!port)
        return -ENOMEM;
    port->fd = -1;
    port->lockfd = -1;

    if (strcmp(spec, "auto") == 0) {
        ret = at_port_find_auto(autopath, sizeof(autopath));
        if (ret < 0) {
            log_debug("port: auto: no known modem found (see --list-ports)");
            goto err;
        }
        log_info("port: auto: using %s", autopath);
        spec = autopath;
    }

    if (strncmp(spec, "tcp://", 6) == 0) {
        port->kind = AT_PORT_TCP;
        snprintf(port->name, sizeof(port->name), "%s", spec);
        ret = port_open_tcp(port, spec);
        if (ret == -EINPROGRESS || (ret == 0 && port->phase == PORT_RESOLVING)) {
            log_info("port: connecting to %s", port->name);
            *out = port;
            return 0;
        }
        if (ret == 0) {
            *out = port;
            return 0;
        }
    } else if (strstr(spec, "://")) {
        log_debug("port: %s: unknown scheme (a device path or tcp://HOST:PORT)", spec);
        ret = -EINVAL;
    } else {
        if (baud <= 0) {
            log_debug("port: %s: invalid baud rate %d", spec, baud);
            ret = -EINVAL;
            goto err;
        }
        ret = port_open_device(port, spec, baud);
    }
    if (ret < 0)
        goto err;

    /* The owner says it at info level when it matters (modem: port open). */
    log_debug("port: opened %s (%s)", port->name,
             port->kind == AT_PORT_TCP ? "tcp" : port->kind == AT_PORT_PTY ? "pty" : "serial");
    *out = port;
    return 0;

err:
    at_port_close(port);
    return ret;
}

void at_port_close(struct at_port *port)
{
    if (!port)
        return;
    /* A pty slave's tty outlives our fd while the master is open, and so
     * does its TIOCEXCL: a reopen would be refused with EBUSY. Only ours:
     * clearing another holder's flag would defeat its lock. */
    if (port->excl)
        ioctl(port->fd, TIOCNXCL);
    if (port->job)
        port_job_unref(port->job);
    if (port->addrs)
        freeaddrinfo(port->addrs);
    if (port->sp) {
        sp_close(port->sp);
        sp_free_port(port->sp);
    } else if (port->fd >= 0 && port->fd != port->lockfd) {
        close(port->fd);
    }
    /* Last: releases the flock after the data fd is gone. */
    if (port->lockfd >= 0)
        close(port->lockfd);
    free(port);
}


short at_port_events(const struct at_port *port)
{
    if (!port)
        return 0;
    switch (port->phase) {
    case PORT_RESOLVING:
        return POLLIN;
    case PORT_CONNECTING:
        return POLLOUT;
    case PORT_OPEN:
    default:
        return port->out_len ? POLLIN | POLLOUT : POLLIN;
    }
}

bool at_port_opening(const struct at_port *port)
{
    return port && port->phase != PORT_OPEN;
}

int at_port_strip_packet(struct at_port *port, const uint8_t *pkt, size_t len)
{
    if (!port || !pkt)
        return -EINVAL;
    return at_strip_add(&port->strip, pkt, len);
}

/* On the loop's clock: the owner times its read with a loop timer. */
int64_t at_port_held_ms(const struct at_port *port)
{
    int64_t due = port ? at_strip_due(&port->strip) : -1, now;

    if (due < 0)
        return -1;
    now = loop_now_ms();
    return due > now ? due - now : 0;
}

/* What the fd has now, as read() gives it. */
static ssize_t read_fd(struct at_port *port, uint8_t *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(port->fd, buf, len);
        if (n > 0)
            return n;
        if (n == 0)
            return -EPIPE; /* TCP FIN; a hung-up tty */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        /* EIO: a USB device unplugged, or a pty whose master closed. */
        if (errno_is_gone(errno))
            return -EPIPE;
        return -errno;
    }
}

/* Reads through the strip: until something is left after taking the
 * packets out (a read that was all heartbeat is no "nothing available"),
 * or the fd is empty; then held bytes that are due. */
static ssize_t read_stripped(struct at_port *port, uint8_t *buf, size_t len)
{
    uint8_t raw[4096];
    size_t want = len - AT_STRIP_MAX < sizeof(raw) ? len - AT_STRIP_MAX : sizeof(raw);

    for (;;) {
        ssize_t n = read_fd(port, raw, want);
        if (n < 0)
            return n;
        if (n == 0)
            return (ssize_t)at_strip_release(&port->strip, buf, loop_now_ms());
        size_t out = at_strip_feed(&port->strip, raw, (size_t)n, buf, loop_now_ms());
        if (out > 0)
            return (ssize_t)out;
    }
}

ssize_t at_port_read(struct at_port *port, uint8_t *buf, size_t len)
{
    if (!port || !buf)
        return -EINVAL;
    if (port->phase != PORT_OPEN)
        return -ENOTCONN;
    if (len == 0)
        return 0;
    if (port->strip.n_pkt == 0)
        return read_fd(port, buf, len);
    if (len <= AT_STRIP_MAX)
        return -EINVAL;
    return read_stripped(port, buf, len);
}

/* What the fd takes now, without waiting: bytes written (0 when it is
 * full), or -EPIPE / -errno. */
static ssize_t write_now(struct at_port *port, const uint8_t *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n;
        /* send(MSG_NOSIGNAL): a closed peer must give EPIPE, not SIGPIPE. */
        if (port->kind == AT_PORT_TCP)
            n = send(port->fd, buf + done, len - done, MSG_NOSIGNAL);
        else
            n = write(port->fd, buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            break;      /* a slow UART, a stalled device server */
        return errno_is_gone(errno) ? -EPIPE : -errno;
    }
    return (ssize_t)done;
}

int at_port_write(struct at_port *port, const uint8_t *buf, size_t len)
{
    if (!port || (!buf && len > 0))
        return -EINVAL;
    if (port->phase != PORT_OPEN)
        return -ENOTCONN;
    if (len > AT_PORT_OUT_MAX)
        return -EMSGSIZE;
    /* All or nothing: a command cut in half would be worse than none. */
    if (len > AT_PORT_OUT_MAX - port->out_len)
        return -ENOBUFS;
    /* Straight to the fd only when nothing waits: order is kept. */
    if (port->out_len == 0 && len > 0) {
        ssize_t n = write_now(port, buf, len);
        if (n < 0)
            return (int)n;
        buf += n;
        len -= (size_t)n;
        port->out_head = 0;
    }
    if (len == 0)
        return 0;
    if (port->out_head + port->out_len + len > AT_PORT_OUT_MAX) {
        memmove(port->out, port->out + port->out_head, port->out_len);
        port->out_head = 0;
    }
    memcpy(port->out + port->out_head + port->out_len, buf, len);
    port->out_len += len;
    return 0;
}

ssize_t at_port_flush(struct at_port *port)
{
    if (!port)
        return -EINVAL;
    if (port->phase != PORT_OPEN)
        return -ENOTCONN;
    ssize_t n = write_now(port, port->out + port->out_head, port->out_len);
    if (n <= 0)
        return n;
    port->out_head += (size_t)n;
    port->out_len -= (size_t)n;
    if (port->out_len == 0)
        port->out_head = 0;
    return n;
}

size_t at_port_pending(const struct at_port *port)
{
    return port ? port->out_len : 0;
}
