/* Health file: written by the loop thread, judged by `--health`. */
#include "core/health.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest content: "t=" + 20 digits + " mqtt=disconnected modem=" + a state. */
#define HEALTH_LINE_MAX 128

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int path_of(const char *dir, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int health_write(const char *dir, bool mqtt_connected, const char *modem_state)
{
    char path[PATH_MAX], tmp[PATH_MAX], line[HEALTH_LINE_MAX];
    int n, fd, r = 0;

    if (path_of(dir, HEALTH_FILE, path, sizeof path) < 0 ||
        path_of(dir, HEALTH_FILE ".tmp", tmp, sizeof tmp) < 0)
        return -ENAMETOOLONG;
    n = snprintf(line, sizeof line, "t=%" PRId64 " mqtt=%s modem=%s\n", mono_ms(),
                 mqtt_connected ? "connected" : "disconnected", modem_state);
    if (n < 0 || (size_t)n >= sizeof line)
        return -EINVAL;
    /* 0644: the check may run as another user (docker exec -u). */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    if (write(fd, line, (size_t)n) != n)
        r = errno ? -errno : -EIO;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

void health_remove(const char *dir)
{
    char path[PATH_MAX];

    if (path_of(dir, HEALTH_FILE, path, sizeof path) == 0)
        unlink(path);
}

int health_judge(const char *content, int64_t now_ms, char *msg, size_t size)
{
    int64_t t;
    char mqtt[16], modem[32];

    if (sscanf(content, "t=%" SCNd64 " mqtt=%15s modem=%31s", &t, mqtt, modem) != 3) {
        snprintf(msg, size, "unhealthy: health file is not in the expected format");
        return -1;
    }
    /* A time stamp from the future belongs to an earlier boot. */
    if (t > now_ms + 1000 || now_ms - t > HEALTH_MAX_AGE_MS) {
        snprintf(msg, size, "unhealthy: health file is stale (bridge stopped or hung)");
        return -1;
    }
    if (strcmp(mqtt, "connected") != 0) {
        snprintf(msg, size, "unhealthy: not connected to the broker (modem %s)", modem);
        return -1;
    }
    if (strcmp(modem, "ready") != 0) {
        snprintf(msg, size, "unhealthy: modem %s (broker connected)", modem);
        return -1;
    }
    snprintf(msg, size, "healthy: broker connected, modem ready");
    return 0;
}

int health_check(const char *dir, char *msg, size_t size)
{
    char path[PATH_MAX], buf[HEALTH_LINE_MAX];
    ssize_t n;
    int fd;

    if (path_of(dir, HEALTH_FILE, path, sizeof path) < 0) {
        snprintf(msg, size, "unhealthy: state_dir path too long");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, size, "unhealthy: %s: %s (bridge not running?)", path, strerror(errno));
        return -1;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        snprintf(msg, size, "unhealthy: %s: %s", path, strerror(errno));
        return -1;
    }
    buf[n] = '\0';
    return health_judge(buf, mono_ms(), msg, size);
}
