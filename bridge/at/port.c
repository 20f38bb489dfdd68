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
 * responses, which looks like random timeouts. */
#include "at/port.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

#include "core/log.h"

#define AT_PORT_HOST_MAX 255

/* Unix98 pty slaves: majors 136..143 (Documentation/admin-guide/devices.txt,
 * UNIX98_PTY_SLAVE_MAJOR, UNIX98_PTY_MAJOR_COUNT = 8). */
#define PTY_SLAVE_MAJOR_FIRST 136
#define PTY_SLAVE_MAJOR_LAST 143

enum at_port_kind { AT_PORT_TTY, AT_PORT_PTY, AT_PORT_TCP };

/* Devices are open from the start; tcp:// passes through the others. */
enum at_port_phase { PORT_OPEN = 0, PORT_RESOLVING, PORT_CONNECTING };

struct resolve_job;

struct at_port {
    int fd;
    enum at_port_kind kind;
    enum at_port_phase phase;
    int lockfd;         /* ttys: our own fd, holds the flock; ptys: == fd */
    struct sp_port *sp; /* AT_PORT_TTY via libserialport: owns fd */
    bool excl;          /* we set TIOCEXCL on fd */
    char name[PATH_MAX];  /* for log messages */

    /* tcp:// while opening */
    struct resolve_job *job;        /* PORT_RESOLVING: the lookup, shared */
    struct addrinfo *addrs;         /* resolved, until connected */
    const struct addrinfo *next;    /* the address after the one tried */

    /* Accepted output the fd has not taken: out[out_head..+out_len). */
    size_t out_head, out_len;
    uint8_t out[AT_PORT_OUT_MAX];
};

/* Known modems: the USB interface that carries the primary AT port.
 *
 * Source: ModemManager's src/plugins/simtech/77-mm-simtech-port-types.rules
 * (ID_MM_PORT_TYPE_AT_PRIMARY per bInterfaceNumber), which agrees with the
 * Linux option driver (drivers/usb/serial/option.c) binding these
 * interfaces, and with SIMCom's usual ttyUSB numbering (the AT port is
 * /dev/ttyUSB2 in both compositions: in 9011 the RNDIS function takes
 * interfaces 0 and 1, so ttyUSB0..2 are interfaces 2..4).
 *
 * Confidence:
 *  - 9001, 9205, 9206: high (ModemManager rules, long-standing).
 *  - 9011 interface 4: high for A7600E-H/A7602E-H (ModemManager rule);
 *    the A7670 family (same ASR platform) uses the same RNDIS composition
 *    by default, which matches the ttyUSB2 AT port users report.
 *  - Not listed, uncertain: 9003 (SIM7600 MBIM mode) and the A76xx ECM
 *    composition; for those, pass --port explicitly. */
struct at_port_usb_id {
    uint16_t vid;
    uint16_t pid;
    uint8_t iface;
    const char *name;
};

static const struct at_port_usb_id at_port_known[] = {
    { 0x1e0e, 0x9011, 4, "SIMCom A76xx/A7600/SIM7600 (RNDIS)" },
    { 0x1e0e, 0x9001, 2, "SIMCom SIM7000/SIM7100/SIM7600" },
    { 0x1e0e, 0x9205, 2, "SIMCom SIM7070/SIM7080/SIM7090" },
    { 0x1e0e, 0x9206, 2, "SIMCom SIM7070/SIM7080/SIM7090 (alt. layout)" },
};

const char *at_port_known_modem(int vid, int pid, int iface)
{
    for (size_t i = 0; i < sizeof(at_port_known) / sizeof(at_port_known[0]); i++) {
        const struct at_port_usb_id *k = &at_port_known[i];
        if (k->vid == vid && k->pid == pid && k->iface == iface)
            return k->name;
    }
    return NULL;
}

/* errno values that mean "the other end is gone" (header: -EPIPE). */
static bool errno_is_gone(int e)
{
    return e == EPIPE || e == EIO || e == ECONNRESET || e == ENODEV || e == ENXIO ||
           e == ETIMEDOUT || e == ESHUTDOWN || e == ENOTCONN;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* ---- tcp:// ---- */

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

static void job_unref(struct resolve_job *job)
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
    job_unref(job);
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
    log_info("port: opened %s (tcp)", port->name);
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
        job_unref(job);
        return ret;
    }
    port->addrs = job->res;
    port->next = job->res;
    job->res = NULL;
    job_unref(job);
    return connect_next(port);
}

/* A numeric host connects now; a name goes to the resolver thread. */
static int open_tcp(struct at_port *port, const char *spec)
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

/* ---- serial devices ---- */

static const struct {
    int baud;
    speed_t speed;
} at_port_speeds[] = {
    { 1200, B1200 },       { 2400, B2400 },       { 4800, B4800 },
    { 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },
    { 57600, B57600 },     { 115200, B115200 },   { 230400, B230400 },
    { 460800, B460800 },   { 921600, B921600 },   { 1000000, B1000000 },
    { 1500000, B1500000 }, { 2000000, B2000000 }, { 3000000, B3000000 },
    { 4000000, B4000000 },
};

static int speed_for(int baud, speed_t *out)
{
    for (size_t i = 0; i < sizeof(at_port_speeds) / sizeof(at_port_speeds[0]); i++) {
        if (at_port_speeds[i].baud == baud) {
            *out = at_port_speeds[i].speed;
            return 0;
        }
    }
    return -EINVAL;
}

/* Raw 8N1, no flow control, receiver on, modem lines ignored.
 *
 * VMIN = 1 matters with O_NONBLOCK: with VMIN = 0 and VTIME = 0 (what
 * libserialport's sp_open sets), Linux's n_tty returns 0 from read() when
 * no byte is waiting instead of EAGAIN, and 0 means EOF to us. HUPCL off:
 * dropping DTR on close can end a call or reset the module (AT&D). */
static int termios_setup(int fd, const speed_t *speed)
{
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    if (speed) {
        cfmakeraw(&t);
        t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS);
        t.c_cflag |= CS8;
        t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
        if (cfsetispeed(&t, *speed) < 0 || cfsetospeed(&t, *speed) < 0)
            return -errno;
    }
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag &= ~(tcflag_t)HUPCL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) < 0)
        return -errno;
    return 0;
}

static int sp_errno(enum sp_return r)
{
    switch (r) {
    case SP_ERR_ARG:
        return -EINVAL;
    case SP_ERR_MEM:
        return -ENOMEM;
    case SP_ERR_SUPP:
        return -ENOTSUP;
    case SP_ERR_FAIL: {
        int e = sp_last_error_code();
        return e > 0 ? -e : -EIO;
    }
    default:
        return -EIO;
    }
}

static int open_serial(struct at_port *port, const char *path, int baud)
{
    int ret;

    struct sp_port *sp = NULL;
    enum sp_return r = sp_get_port_by_name(path, &sp);
    /* SP_ERR_ARG "Device not found": no /sys/class/tty/<name>/device
     * (ptys, some virtual ttys). The caller falls back to termios. */
    if (r == SP_ERR_ARG)
        return -ENOTTY;
    if (r != SP_OK)
        return sp_errno(r);
    r = sp_open(sp, SP_MODE_READ_WRITE);
    if (r != SP_OK) {
        ret = sp_errno(r);
        sp_free_port(sp);
        return ret;
    }
    if ((r = sp_set_baudrate(sp, baud)) != SP_OK || (r = sp_set_bits(sp, 8)) != SP_OK ||
        (r = sp_set_parity(sp, SP_PARITY_NONE)) != SP_OK ||
        (r = sp_set_stopbits(sp, 1)) != SP_OK ||
        (r = sp_set_flowcontrol(sp, SP_FLOWCONTROL_NONE)) != SP_OK) {
        ret = sp_errno(r);
        goto err;
    }
    int fd = -1;
    if ((r = sp_get_port_handle(sp, &fd)) != SP_OK || fd < 0) {
        ret = r != SP_OK ? sp_errno(r) : -EBADF;
        goto err;
    }
    ret = set_nonblock(fd);
    if (ret == 0)
        ret = termios_setup(fd, NULL);
    if (ret < 0)
        goto err;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* Bytes queued before we opened are half-lines and stale URCs. */
    sp_flush(sp, SP_BUF_INPUT);
    port->sp = sp;
    port->fd = fd;
    return 0;

err:
    sp_close(sp);
    sp_free_port(sp);
    return ret;
}

static bool is_pty_slave(const char *real, const struct stat *st)
{
    if (strncmp(real, "/dev/pts/", 9) == 0)
        return true;
    unsigned int maj = major(st->st_rdev);
    return maj >= PTY_SLAVE_MAJOR_FIRST && maj <= PTY_SLAVE_MAJOR_LAST;
}

/* Opens, checks and locks the device on our own fd before anything
 * configures it, so a second instance fails without touching the first
 * one's line settings. That fd holds the flock for the port's lifetime.
 *
 * Exclusive use: flock keeps out a second modem2mqtt (and tools that
 * flock ttys, such as picocom); TIOCEXCL, set once the port is
 * configured, makes any further open() by a non-root process fail with
 * EBUSY. Neither evicts a program that opened the port first. */
static int open_device(struct at_port *port, const char *spec, int baud)
{
    char real[PATH_MAX];
    int ret;
    if (!realpath(spec, real)) {
        ret = -errno;
        log_debug("port: %s: %s", spec, strerror(-ret));
        return ret;
    }
    snprintf(port->name, sizeof(port->name), "%s", real);
    struct stat st;
    if (stat(real, &st) < 0) {
        ret = -errno;
        log_debug("port: %s: %s", real, strerror(-ret));
        return ret;
    }
    if (!S_ISCHR(st.st_mode)) {
        log_debug("port: %s is not a serial device", spec);
        return -ENOTTY;
    }
    speed_t speed;
    if (speed_for(baud, &speed) < 0) {
        log_debug("port: %s: unsupported baud rate %d", real, baud);
        return -EINVAL;
    }

    port->lockfd = open(real, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (port->lockfd < 0) {
        ret = -errno;
        if (ret == -EBUSY)
            log_debug("port: %s is held exclusively by another program (a second "
                      "modem2mqtt? ModemManager: exclude the modem with a udev rule "
                      "setting ID_MM_DEVICE_IGNORE=1)",
                      real);
        else
            log_debug("port: %s: %s", real, strerror(-ret));
        return ret;
    }
    if (!isatty(port->lockfd)) {
        log_debug("port: %s is not a serial device", spec);
        return -ENOTTY;
    }
    if (flock(port->lockfd, LOCK_EX | LOCK_NB) < 0) {
        ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (ret == -EBUSY)
            log_debug("port: %s is in use by another program (a second modem2mqtt?)", real);
        else
            log_debug("port: %s: flock: %s", real, strerror(-ret));
        return ret;
    }

    ret = -ENOTTY;
    if (!is_pty_slave(real, &st)) {
        port->kind = AT_PORT_TTY;
        ret = open_serial(port, real, baud);
        if (ret < 0 && ret != -ENOTTY) {
            log_debug("port: %s: %s", real, strerror(-ret));
            return ret;
        }
        /* Other ttys that reject modem-line ioctls (USB gadget serial,
         * some virtual ports) fail the way ptys do: fall through. */
        if (ret == -ENOTTY)
            log_debug("port: %s: libserialport: %s; using termios", real, strerror(-ret));
    }
    if (ret == -ENOTTY) {
        /* A pty has no line speed, but the master side may read it. */
        port->kind = AT_PORT_PTY;
        ret = termios_setup(port->lockfd, &speed);
        if (ret < 0) {
            log_debug("port: %s: termios: %s", real, strerror(-ret));
            return ret;
        }
        port->fd = port->lockfd;
    }

    if (ioctl(port->fd, TIOCEXCL) < 0)
        log_warn("port: %s: TIOCEXCL: %s", real, strerror(errno));
    else
        port->excl = true;
    return 0;
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
        ret = open_tcp(port, spec);
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
        ret = open_device(port, spec, baud);
    }
    if (ret < 0)
        goto err;

    log_info("port: opened %s (%s)", port->name,
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
        job_unref(port->job);
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

int at_port_fd(const struct at_port *port)
{
    if (!port)
        return -1;
    /* The lookup's eventfd until it is done (then the job is gone). */
    return port->job ? port->job->efd : port->fd;
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

ssize_t at_port_read(struct at_port *port, uint8_t *buf, size_t len)
{
    if (!port || !buf)
        return -EINVAL;
    if (port->phase != PORT_OPEN)
        return -ENOTCONN;
    if (len == 0)
        return 0;
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

/* ---- enumeration ---- */

/* The USB interface number of a tty, from sysfs: ttyACM's device is the
 * interface itself, ttyUSB's is a usb-serial port below the interface.
 * -1 when not a USB interface or unreadable. */
static int usb_iface(const char *devpath)
{
    const char *name = strrchr(devpath, '/');
    name = name ? name + 1 : devpath;
    if (!*name || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return -1;
    static const char *const rel[] = { "device/bInterfaceNumber", "device/../bInterfaceNumber" };
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "/sys/class/tty/%s/%s", name, rel[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned int v;
        int ok = fscanf(f, "%x", &v);
        fclose(f);
        if (ok == 1 && v < 256)
            return (int)v;
    }
    return -1;
}

struct port_info {
    char path[PATH_MAX];
    int vid, pid; /* -1 when not USB */
    int iface;
    const char *model; /* known modem AT port, or NULL */
    char serial[128];
    char desc[256];
};

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const struct port_info *)a)->path, ((const struct port_info *)b)->path);
}

/* All serial ports, sorted by path. Caller frees *out. */
static int enumerate(struct port_info **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    struct sp_port **list = NULL;
    enum sp_return r = sp_list_ports(&list);
    if (r != SP_OK) {
        /* No /sys/class/tty (a minimal container) reads as "no ports". */
        int ret = sp_errno(r);
        log_debug("port: listing serial ports: %s", strerror(-ret));
        return ret == -ENOENT ? 0 : ret;
    }
    size_t n = 0;
    while (list[n])
        n++;
    struct port_info *info = calloc(n ? n : 1, sizeof(*info));
    if (!info) {
        sp_free_port_list(list);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct port_info *p = &info[i];
        const char *name = sp_get_port_name(list[i]);
        snprintf(p->path, sizeof(p->path), "%s", name ? name : "?");
        const char *desc = sp_get_port_description(list[i]);
        snprintf(p->desc, sizeof(p->desc), "%s", desc ? desc : "");
        p->vid = p->pid = p->iface = -1;
        if (sp_get_port_transport(list[i]) == SP_TRANSPORT_USB) {
            if (sp_get_port_usb_vid_pid(list[i], &p->vid, &p->pid) != SP_OK)
                p->vid = p->pid = -1;
            const char *serial = sp_get_port_usb_serial(list[i]);
            snprintf(p->serial, sizeof(p->serial), "%s", serial ? serial : "");
            p->iface = usb_iface(p->path);
            if (p->vid >= 0)
                p->model = at_port_known_modem(p->vid, p->pid, p->iface);
        }
    }
    sp_free_port_list(list);
    qsort(info, n, sizeof(*info), cmp_info);
    *out = info;
    *count = n;
    return 0;
}

/* The first known modem AT port in path order, or NULL. */
static const struct port_info *pick_auto(const struct port_info *info, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (info[i].model)
            return &info[i];
    }
    return NULL;
}

int at_port_find_auto(char *path, size_t size)
{
    if (!path || size == 0)
        return -EINVAL;
    struct port_info *info = NULL;
    size_t n = 0;
    int ret = enumerate(&info, &n);
    if (ret < 0)
        return ret;
    const struct port_info *pick = pick_auto(info, n);
    if (!pick) {
        ret = -ENODEV;
        goto out;
    }
    for (const struct port_info *p = pick + 1; p < info + n; p++) {
        if (p->model)
            log_warn("port: auto: several modems; using %s, ignoring %s (set --port)",
                     pick->path, p->path);
    }
    if (strlen(pick->path) >= size) {
        ret = -ENOSPC;
        goto out;
    }
    memcpy(path, pick->path, strlen(pick->path) + 1);
    log_debug("port: auto: %s is the AT port of a %s", pick->path, pick->model);

out:
    free(info);
    return ret;
}

/* The /dev/serial/by-id name that points at path, for display. */
static bool find_by_id(const char *path, char *out, size_t size)
{
    static const char dir[] = "/dev/serial/by-id";
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char link[PATH_MAX], real[PATH_MAX];
        if (snprintf(link, sizeof(link), "%s/%s", dir, de->d_name) >= (int)sizeof(link))
            continue;
        if (realpath(link, real) && strcmp(real, path) == 0) {
            snprintf(out, size, "%s", link);
            found = true;
        }
    }
    closedir(d);
    return found;
}

int at_port_list(FILE *out)
{
    if (!out)
        return -EINVAL;
    struct port_info *info = NULL;
    size_t n = 0;
    int ret = enumerate(&info, &n);
    if (ret < 0)
        return ret;
    if (n == 0) {
        fprintf(out, "no serial ports found\n");
        free(info);
        return 0;
    }
    const struct port_info *pick = pick_auto(info, n);
    for (size_t i = 0; i < n; i++) {
        const struct port_info *p = &info[i];
        char usb[32] = "-";
        if (p->vid >= 0) {
            if (p->iface >= 0)
                snprintf(usb, sizeof(usb), "%04x:%04x if%02d", p->vid, p->pid, p->iface);
            else
                snprintf(usb, sizeof(usb), "%04x:%04x", p->vid, p->pid);
        }
        fprintf(out, "%-14s  %-19s  serial=%s  %s", p->path, usb, p->serial[0] ? p->serial : "-",
                p->desc[0] ? p->desc : "-");
        char byid[PATH_MAX];
        if (find_by_id(p->path, byid, sizeof(byid)))
            fprintf(out, "  (%s)", byid);
        if (p == pick)
            fprintf(out, "  <- modem AT port (auto): %s", p->model);
        else if (p->model)
            fprintf(out, "  <- modem AT port: %s", p->model);
        fputc('\n', out);
    }
    free(info);
    return (int)n;
}
