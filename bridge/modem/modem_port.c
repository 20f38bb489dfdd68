/* The modem's port (see modem_int.h for the other files): opening it by
 * its spec ("auto", a device, tcp:// in steps with its connect timer),
 * keeping the loop's watch in step with it, reading into the chat and
 * flushing what waits, the output stall, and a lost port with the reopen
 * and its backoff. What happens once the port is open (getting in step,
 * the bring-up) is modem_bringup.c's. */
#include "modem/modem_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "at/chat.h"
#include "at/port.h"
#include "at/strip.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/loop.h"

#define READ_CHUNK 4096
/* Output waiting in the port with no byte taken for this long: the module
 * or the device server does not read (a hung USB-serial adapter, a
 * device server whose peer stopped). The port is reopened, as when a
 * blocking write gave up after this long. */
#define OUTPUT_STALL_MS 2000

/* --- the port ------------------------------------------------------------ */

static int64_t open_overdue(void *ctx);
static void on_port(void *ctx, int fd, short revents);
static void port_opened(struct modem *m);
static void open_failed(struct modem *m, int err);

/* Keeps the loop's registration in step with the port: its fd changes
 * while a tcp:// port opens, and POLLOUT is asked for only while output
 * waits (otherwise poll() would return at once, forever). */
static int watch_port(struct modem *m)
{
    int fd = at_port_fd(m->port);
    short ev = at_port_events(m->port);
    int r;

    if (fd == m->watch_fd) {
        if (ev != m->watch_events)
            loop_mod_fd(m->loop, fd, ev);
        m->watch_events = ev;
        return 0;
    }
    if (m->watch_fd >= 0)
        loop_del_fd(m->loop, m->watch_fd);
    m->watch_fd = -1;
    if (fd < 0)
        return 0;
    r = loop_add_fd(m->loop, fd, ev, on_port, m);
    if (r < 0)
        return r;
    m->watch_fd = fd;
    m->watch_events = ev;
    return 0;
}

static int64_t output_stalled(void *ctx)
{
    struct modem *m = ctx;

    m->stall_timer = 0;
    modem_port_lost(m, "output stalled: the module takes no bytes");
    return 0;
}

/* After a write or a flush (moved: the flush wrote bytes): POLLOUT while
 * output waits, and the stall clock, which restarts whenever bytes move. */
void modem_output_moved(struct modem *m, bool moved)
{
    bool waiting = at_port_pending(m->port) > 0;

    if (watch_port(m) < 0)
        log_error("modem: cannot watch the port");
    if (waiting && m->stall_timer && !moved)
        return;
    loop_cancel_timer(m->loop, m->stall_timer);
    m->stall_timer = 0;
    if (waiting && loop_add_timer(m->loop, OUTPUT_STALL_MS, output_stalled, m,
                                  &m->stall_timer) < 0)
        log_error("modem: cannot arm the output timer");
}

/* A tcp:// port moved on (resolved, connected, or failed). */
static void continue_open(struct modem *m)
{
    int r = at_port_open_continue(m->port);

    if (r == -EINPROGRESS)
        r = watch_port(m);
    else if (r == 0 && (r = watch_port(m)) == 0)
        port_opened(m);
    if (r < 0) {
        modem_close_port(m);
        open_failed(m, r);
    }
}

static int64_t hold_due(void *ctx);

/* Reads until EAGAIN; POLLHUP without data means the device vanished.
 * Bytes the port holds back (maybe the start of a device server's
 * packet) come with a later read: the hold timer makes sure there is
 * one. */
static void read_port(struct modem *m, short revents)
{
    uint8_t buf[READ_CHUNK];
    ssize_t n;

    for (;;) {
        n = at_port_read(m->port, buf, sizeof(buf));
        if (n > 0) {
            at_chat_feed(m->chat, buf, (size_t)n);
            if (!m->port)
                return;         /* a handler closed it (recovery) */
            continue;
        }
        if (n == 0 && !(revents & (POLLHUP | POLLERR)))
            break;
        modem_port_lost(m, n < 0 && n != -EPIPE ? strerror((int)-n) : "device vanished");
        return;
    }
    int64_t held = at_port_held_ms(m->port);
    if (held >= 0 && !m->hold_timer &&
        loop_add_timer(m->loop, held, hold_due, m, &m->hold_timer) < 0)
        log_error("modem: cannot arm the hold timer");
}

static int64_t hold_due(void *ctx)
{
    struct modem *m = ctx;

    m->hold_timer = 0;
    read_port(m, 0);
    return 0;
}

static void on_port(void *ctx, int fd, short revents)
{
    struct modem *m = ctx;
    ssize_t n;

    (void)fd;
    if (at_port_opening(m->port)) {
        continue_open(m);
        return;
    }
    if (revents & POLLOUT) {
        n = at_port_flush(m->port);
        if (n < 0) {
            modem_port_lost(m, n == -EPIPE ? "device vanished" : strerror((int)-n));
            return;
        }
        modem_output_moved(m, n > 0);
        if (!(revents & (POLLIN | POLLHUP | POLLERR)))
            return;
    }
    read_port(m, revents);
}

void modem_close_port(struct modem *m)
{
    loop_cancel_timer(m->loop, m->open_timer);
    loop_cancel_timer(m->loop, m->stall_timer);
    loop_cancel_timer(m->loop, m->hold_timer);
    m->open_timer = m->stall_timer = m->hold_timer = 0;
    if (!m->port)
        return;
    if (m->watch_fd >= 0)
        loop_del_fd(m->loop, m->watch_fd);
    m->watch_fd = -1;
    at_port_close(m->port);
    m->port = NULL;
}

static void schedule_reopen(struct modem *m)
{
    modem_retry_in(m, m->backoff_ms, modem_reopen_fired);
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

void modem_port_lost(struct modem *m, const char *why)
{
    log_msg(m->silent_logged ? LOG_DEBUG : LOG_WARN, "modem: port lost (%s); reopening", why);
    modem_close_port(m);
    modem_cancel_retry(m);
    /* After AT+CRESET a USB module re-enumerates: still resetting. */
    modem_set_state(m, m->state == MODEM_RESETTING ? MODEM_RESETTING : MODEM_CLOSED);
    at_chat_cancel_all(m->chat);
    schedule_reopen(m);
}

/* The device server's packets (checked with the configuration). */
static int strip_packets(struct modem *m)
{
    for (size_t i = 0; i < sizeof(m->opts.device_packets) / sizeof(m->opts.device_packets[0]);
         i++) {
        uint8_t pkt[AT_STRIP_MAX];
        size_t n;
        const char *spec = m->opts.device_packets[i];
        int r;

        if (!spec)
            continue;
        if ((r = hex_or_text(spec, pkt, sizeof(pkt), &n)) < 0 ||
            (r = at_port_strip_packet(m->port, pkt, n)) < 0)
            return r;
    }
    return 0;
}

static int open_port(struct modem *m)
{
    char path[PATH_MAX];
    const char *spec = m->opts.port;
    int r;

    if (strcmp(spec, "auto") == 0) {
        r = at_port_find_auto(path, sizeof(path));
        if (r < 0)
            return r;
        spec = path;
    }
    r = at_port_open(spec, m->opts.baud, &m->port);
    if (r < 0)
        return r;
    r = strip_packets(m);
    if (r == 0)
        r = watch_port(m);
    if (r < 0) {
        modem_close_port(m);
        return r;
    }
    if (at_port_opening(m->port)) {
        /* on_port goes on; the state stays CLOSED until connected. */
        if (loop_add_timer(m->loop, AT_PORT_CONNECT_MS, open_overdue, m, &m->open_timer) < 0)
            log_error("modem: cannot arm the connect timer");
        return 0;
    }
    port_opened(m);
    return 0;
}

/* modem.sleep "dtr" needs a DTR line: a pty has none (a tcp:// port is
 * refused by the config). Said once; the module then stays awake, as with
 * "off", since nothing could wake it. */
static void choose_sleep(struct modem *m)
{
    int r;

    m->sleep = m->opts.sleep;
    if (m->sleep == AT_SLEEP_DTR && (r = at_port_set_dtr(m->port, true)) < 0) {
        if (!m->no_dtr_logged)
            log_warn("modem: modem.sleep \"dtr\": %s has no DTR line the bridge can set (%s); "
                     "the module is kept awake, as with \"off\"",
                     m->opts.port, r == -ENOTSUP ? "not a serial device" : strerror(-r));
        m->no_dtr_logged = true;
        m->sleep = AT_SLEEP_OFF;
    }
    at_chat_set_sleep(m->chat, m->sleep);
}

static void port_opened(struct modem *m)
{
    loop_cancel_timer(m->loop, m->open_timer);
    m->open_timer = 0;
    m->quiet = m->silent_logged;
    log_msg(m->quiet ? LOG_DEBUG : LOG_INFO, "modem: port %s open", m->opts.port);
    m->opens++;
    m->open_failed_logged = false;
    choose_sleep(m);
    /* What the port holds now was written before we came: a killed
     * process's answers, a device server's registry packet. */
    modem_start_sync(m, true, "port opened");
}

static void open_failed(struct modem *m, int err)
{
    char advice[512];

    /* Once, then quietly: a modem may be unplugged for days, and a udev
     * rule or a group change may let us in later. */
    if (!m->open_failed_logged)
        log_msg(err == -EACCES ? LOG_ERROR : LOG_WARN,
                "modem: cannot open %s: %s%s; retrying every %d s at most, quietly",
                m->opts.port, strerror(-err),
                at_port_open_advice(err, m->opts.port, advice, sizeof(advice)),
                BACKOFF_MAX_MS / 1000);
    else
        log_debug("modem: cannot open %s: %s", m->opts.port, strerror(-err));
    m->open_failed_logged = true;
    schedule_reopen(m);
}

static int64_t open_overdue(void *ctx)
{
    struct modem *m = ctx;

    m->open_timer = 0;
    log_debug("modem: %s: no connection after %d s", m->opts.port, AT_PORT_CONNECT_MS / 1000);
    modem_close_port(m);
    open_failed(m, -ETIMEDOUT);
    return 0;
}

int64_t modem_reopen_fired(void *ctx)
{
    struct modem *m = ctx;
    int r;

    m->retry_timer = 0;
    r = open_port(m);
    if (r < 0)
        open_failed(m, r);
    return 0;
}

