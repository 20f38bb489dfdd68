/* LD_PRELOAD shim for the end-to-end benchmark's diagnostic run
 * (M2M_BENCH_E2E_NODELAY=1): sets TCP_NODELAY on every TCP socket the
 * process connects, which paho 1.3.12 does not do and offers no option for
 * (paho.mqtt.c issue #530). It shows what the bridge would gain from
 * disabling Nagle on its broker connection; it is not part of the bridge. */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static connect_fn real;
    int one = 1, rc;

    if (!real) {
        /* POSIX allows converting dlsym's void * to a function pointer. */
        void *sym = dlsym(RTLD_NEXT, "connect");
        __builtin_memcpy(&real, &sym, sizeof(real));
        if (!real)
            return -1;
    }
    rc = real(fd, addr, len);
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return rc;
}
