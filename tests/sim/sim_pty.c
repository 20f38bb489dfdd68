/* The simulator's end of the line: a pseudo-terminal master.
 *
 * The simulator keeps a slave fd open itself while "plugged". Without it,
 * the master reports POLLHUP (and read() EIO) whenever no host has the
 * slave open, which would spin the loop before the bridge connects and
 * between its reopens; with it, the slave keeps the raw termios set here.
 * Unplugging closes both: the kernel then hangs up the host's slave fd, so
 * the host sees EOF/EIO/POLLHUP like a vanished USB serial port.
 *
 * Output is buffered (SIM_OUT_MAX) and written non-blocking: a host that
 * does not read never blocks the simulator; past the bound, bytes are
 * dropped with a warning. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static int set_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) < 0)
        return -errno;
    /* No echo, no CR/LF translation, no signals, byte-wise reads: the
     * host's side of the line then passes bytes like a USB serial port. */
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    cfsetispeed(&t, B115200);
    cfsetospeed(&t, B115200);
    if (tcsetattr(fd, TCSANOW, &t) < 0)
        return -errno;
    return 0;
}

/* Replace --link atomically: a host resolving it never sees it missing
 * while we switch ptys. */
static void update_link(struct sim *s)
{
    if (!s->opt.link)
        return;
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", s->opt.link, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        sim_log(s, "warning: --link path too long");
        return;
    }
    unlink(tmp);
    if (symlink(s->pty_path, tmp) < 0) {
        sim_log(s, "warning: symlink %s: %s", tmp, strerror(errno));
        return;
    }
    if (rename(tmp, s->opt.link) < 0) {
        sim_log(s, "warning: rename %s -> %s: %s", tmp, s->opt.link, strerror(errno));
        unlink(tmp);
        return;
    }
    sim_log(s, "link %s -> %s", s->opt.link, s->pty_path);
}

/* Removes --link if it still points at our pty. */
static void pty_unlink(struct sim *s)
{
    if (!s->opt.link || !s->pty_path[0])
        return;
    char target[PATH_MAX];
    ssize_t n = readlink(s->opt.link, target, sizeof(target) - 1);
    if (n < 0)
        return;
    target[n] = '\0';
    /* Only ours: another simulator may have taken the name over. */
    if (strcmp(target, s->pty_path) == 0)
        unlink(s->opt.link);
}

int sim_pty_open(struct sim *s)
{
    int err;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0)
        return -errno;
    if (grantpt(master) < 0 || unlockpt(master) < 0) {
        err = -errno;
        goto err_master;
    }
    char path[sizeof(s->pty_path)];
    if ((err = ptsname_r(master, path, sizeof(path))) != 0) {
        err = -err;
        goto err_master;
    }
    int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        err = -errno;
        goto err_master;
    }
    if ((err = set_raw(slave)) < 0)
        goto err_slave;
    int fl = fcntl(master, F_GETFL);
    if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(master, F_SETFD, FD_CLOEXEC) < 0) {
        err = -errno;
        goto err_slave;
    }

    s->master = master;
    s->slave = slave;
    memcpy(s->pty_path, path, sizeof(path));
    s->out_len = 0;
    update_link(s);
    sim_log(s, "plugged in: %s", s->pty_path);
    sim_event(s, "pty %s", s->pty_path);
    return 0;

err_slave:
    close(slave);
err_master:
    close(master);
    return err;
}

void sim_pty_close(struct sim *s)
{
    if (s->master < 0)
        return;
    pty_unlink(s);
    close(s->master);
    close(s->slave);
    s->master = s->slave = -1;
    if (s->out_len)
        sim_log(s, "unplug: %zu bytes for the host discarded", s->out_len);
    s->out_len = 0;
    s->in_len = s->in_pos = 0;
    sim_log(s, "unplugged: %s", s->pty_path);
}

void sim_pty_flush(struct sim *s)
{
    while (s->master >= 0 && s->out_len > 0) {
        ssize_t n = write(s->master, s->out, s->out_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sim_log(s, "warning: write to pty: %s (%zu bytes dropped)", strerror(errno),
                        s->out_len);
                s->out_len = 0;
            }
            return;
        }
        memmove(s->out, s->out + n, s->out_len - (size_t)n);
        s->out_len -= (size_t)n;
    }
}

void sim_write(struct sim *s, const void *buf, size_t len)
{
    if (s->master < 0 || len == 0)
        return;
    if (len > SIM_OUT_MAX - s->out_len)
        sim_pty_flush(s);
    if (len > SIM_OUT_MAX - s->out_len) {
        /* The host is not reading: like a UART without flow control, the
         * bytes are lost. */
        s->out_dropped += len;
        sim_log(s, "warning: host not reading, %zu bytes dropped (%llu in total)", len,
                (unsigned long long)s->out_dropped);
        return;
    }
    memcpy(s->out + s->out_len, buf, len);
    s->out_len += len;
}

void sim_writes(struct sim *s, const char *str)
{
    sim_write(s, str, strlen(str));
}

void sim_pty_read(struct sim *s)
{
    if (s->master < 0 || s->in_pos < s->in_len)
        return;
    s->in_len = s->in_pos = 0;
    ssize_t n = read(s->master, s->in, sizeof(s->in));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            sim_log(s, "warning: read from pty: %s", strerror(errno));
        return;
    }
    s->in_len = (size_t)n;
}
