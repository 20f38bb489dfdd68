/* sd_notify as a datagram: see notify.h. */
#include "core/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct notify {
    int fd;
    struct sockaddr_un sa;
    socklen_t sa_len;
    int64_t watchdog_ms;
};

struct notify *notify_new(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path ? strlen(path) : 0;
    struct notify *n;

    if (len < 2 || len >= sizeof(n->sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return NULL;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->sa.sun_family = AF_UNIX;
    memcpy(n->sa.sun_path, path, len);
    if (path[0] == '@')
        n->sa.sun_path[0] = '\0';   /* abstract: no NUL terminator counted */
    n->sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        free(n);
        return NULL;
    }
    /* WATCHDOG_PID, when set, names the process meant (not a child). */
    const char *wpid = getenv("WATCHDOG_PID");
    const char *usec = getenv("WATCHDOG_USEC");
    if (usec && (!wpid || strtol(wpid, NULL, 10) == (long)getpid())) {
        long long us = strtoll(usec, NULL, 10);
        if (us > 0)
            n->watchdog_ms = us / 2000 > 0 ? us / 2000 : 1;
    }
    return n;
}

void notify_free(struct notify *n)
{
    if (!n)
        return;
    close(n->fd);
    free(n);
}

int notify_send(struct notify *n, const char *msg)
{
    if (!n)
        return 0;
    if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&n->sa, n->sa_len) < 0)
        return -errno;
    return 0;
}

int64_t notify_watchdog_ms(const struct notify *n)
{
    return n ? n->watchdog_ms : 0;
}
