/* Health socket: answered by the loop thread, judged by `--health`. */
#include "core/health.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int sock_addr(const char *dir, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, HEALTH_SOCKET);
    return n < 0 || (size_t)n >= sizeof(sa->sun_path) ? -ENAMETOOLONG : 0;
}

int health_format(const struct health_info *h, char *buf, size_t size)
{
    int n = snprintf(buf, size,
                     "mqtt=%s modem=%s wakeups=%" PRIu64 " fsyncs=%" PRIu64
                     " commands=%" PRIu64 "%s%s\n",
                     h->mqtt_connected ? "connected" : "disconnected", h->modem_state,
                     h->wakeups, h->fsyncs, h->commands, h->name ? " name=" : "",
                     h->name ? h->name : "");
    return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

/* "office " from an answer's " name=office" (modem names are one word),
 * else "": the modem the answer's states are of. */
static void answer_name(const char *answer, char *name, size_t size)
{
    const char *p = strstr(answer, " name=");

    name[0] = '\0';
    if (p && sscanf(p, " name=%32s", name) == 1 && strlen(name) + 1 < size)
        strcat(name, " ");
}

int health_judge(const char *answer, char *msg, size_t size)
{
    char mqtt[16], modem[32], name[40];

    if (sscanf(answer, "mqtt=%15s modem=%31s", mqtt, modem) != 2) {
        snprintf(msg, size, "unhealthy: the bridge's answer is not in the expected format");
        return -1;
    }
    answer_name(answer, name, sizeof(name));
    if (strcmp(mqtt, "connected") != 0) {
        snprintf(msg, size, "unhealthy: %snot connected to the broker (modem %s)", name,
                 modem);
        return -1;
    }
    if (strcmp(modem, "ready") != 0) {
        snprintf(msg, size, "unhealthy: modem %s%s (broker connected)", name, modem);
        return -1;
    }
    snprintf(msg, size, "healthy: broker connected, modem ready");
    return 0;
}

int health_listen(const char *dir, int *out)
{
    struct sockaddr_un sa;
    int fd, r = sock_addr(dir, &sa);

    if (r < 0)
        return r;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by a killed bridge: nobody listens on it any more
     * (state_dir is locked by this process). */
    unlink(sa.sun_path);
    /* The health file of earlier versions, never rewritten again. */
    char old[sizeof(sa.sun_path) + 8];
    snprintf(old, sizeof(old), "%s/health", dir);
    unlink(old);
    /* 0666 through the umask: --health may run as another user (docker
     * exec -u); the directory's mode still decides who reaches it. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

void health_answer(int fd, const char *line)
{
    size_t len = strlen(line);

    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;     /* EAGAIN: none left; anything else: the next poll */
        /* A line of a few dozen bytes fits an empty socket buffer; a
         * client that went away gets EPIPE (MSG_NOSIGNAL), ignored. */
        if (send(c, line, len, MSG_NOSIGNAL) < 0) {
            /* nothing to do: the client judges a missing answer */
        }
        close(c);
    }
}

void health_remove(const char *dir)
{
    struct sockaddr_un sa;

    if (sock_addr(dir, &sa) == 0)
        unlink(sa.sun_path);
}

int health_check(const char *dir, char *msg, size_t size, char *raw, size_t raw_size)
{
    struct sockaddr_un sa;
    char buf[HEALTH_LINE_MAX];
    size_t got = 0;
    int fd;

    if (raw && raw_size)
        raw[0] = '\0';
    if (sock_addr(dir, &sa) < 0) {
        snprintf(msg, size, "unhealthy: state_dir path too long for a unix socket");
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, size, "unhealthy: socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(msg, size, "unhealthy: %s: %s (bridge not running?)", sa.sun_path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    /* Until the line ends or the bridge closes, bounded in time. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = HEALTH_ANSWER_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
                                        (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            snprintf(msg, size, "unhealthy: the bridge did not answer within %d ms (loop hung)",
                     HEALTH_ANSWER_MS);
            close(fd);
            return -1;
        }
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof(buf) - 1 || memchr(buf, '\n', got))
            break;
    }
    close(fd);
    buf[got] = '\0';
    if (raw && raw_size)
        snprintf(raw, raw_size, "%.*s", (int)strcspn(buf, "\n"), buf);
    return health_judge(buf, msg, size);
}
