/* The modem port on a device path (see port.c for why two ways, port_int.h
 * for the other files): checking and locking the device, libserialport
 * for real serial devices (and their DTR line), termios for ptys and the
 * ttys libserialport cannot open. */
#include "at/port_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

#include "core/log.h"
/* Unix98 pty slaves: majors 136..143 (Documentation/admin-guide/devices.txt,
 * UNIX98_PTY_SLAVE_MAJOR, UNIX98_PTY_MAJOR_COUNT = 8). */
#define PTY_SLAVE_MAJOR_FIRST 136
#define PTY_SLAVE_MAJOR_LAST 143

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

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

int port_sp_errno(enum sp_return r)
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
        return port_sp_errno(r);
    r = sp_open(sp, SP_MODE_READ_WRITE);
    if (r != SP_OK) {
        ret = port_sp_errno(r);
        sp_free_port(sp);
        return ret;
    }
    if ((r = sp_set_baudrate(sp, baud)) != SP_OK || (r = sp_set_bits(sp, 8)) != SP_OK ||
        (r = sp_set_parity(sp, SP_PARITY_NONE)) != SP_OK ||
        (r = sp_set_stopbits(sp, 1)) != SP_OK ||
        (r = sp_set_flowcontrol(sp, SP_FLOWCONTROL_NONE)) != SP_OK) {
        ret = port_sp_errno(r);
        goto err;
    }
    int fd = -1;
    if ((r = sp_get_port_handle(sp, &fd)) != SP_OK || fd < 0) {
        ret = r != SP_OK ? port_sp_errno(r) : -EBADF;
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

int at_port_set_dtr(struct at_port *port, bool on)
{
    enum sp_return r;

    if (port->kind != AT_PORT_TTY || !port->sp)
        return -ENOTSUP;
    r = sp_set_dtr(port->sp, on ? SP_DTR_ON : SP_DTR_OFF);
    return r == SP_OK ? 0 : port_sp_errno(r);
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
int port_open_device(struct at_port *port, const char *spec, int baud)
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

