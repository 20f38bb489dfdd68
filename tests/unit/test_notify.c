/* core/notify: the sd_notify datagrams on a path and on an abstract
 * socket, the watchdog interval from WATCHDOG_USEC (half of it), and
 * nothing at all outside systemd. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/notify.h"

/* Binds a datagram socket as systemd would; name "@..." is abstract. */
static int listener(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_true(len < sizeof sa.sun_path);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                      (name[0] == '/'))),
                     0);
    struct timeval tv = { 5, 0 };   /* a lost datagram fails, not hangs */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);

    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_path_socket(void **state)
{
    char dir[] = "/tmp/m2m-notify-XXXXXX", path[128];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    struct notify *n = notify_new();
    assert_non_null(n);
    assert_int_equal(notify_watchdog_ms(n), 0);
    assert_int_equal(notify_send(n, "READY=1"), 0);
    expect_datagram(fd, "READY=1");
    assert_int_equal(notify_send(n, "STOPPING=1"), 0);
    expect_datagram(fd, "STOPPING=1");
    notify_free(n);
    close(fd);
    unlink(path);
    rmdir(dir);
}

static void test_abstract_and_watchdog(void **state)
{
    char name[64], pid[32];

    (void)state;
    snprintf(name, sizeof name, "@m2m-notify-test-%d", (int)getpid());
    int fd = listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    setenv("WATCHDOG_USEC", "30000000", 1);     /* WatchdogSec=30 */
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    struct notify *n = notify_new();
    assert_non_null(n);
    assert_int_equal(notify_watchdog_ms(n), 15000);
    assert_int_equal(notify_send(n, "WATCHDOG=1"), 0);
    expect_datagram(fd, "WATCHDOG=1");
    notify_free(n);

    /* Meant for another process: no pings. */
    setenv("WATCHDOG_PID", "1", 1);
    n = notify_new();
    assert_int_equal(notify_watchdog_ms(n), 0);
    notify_free(n);
    close(fd);
}

static void test_outside_systemd(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "30000000", 1);
    struct notify *n = notify_new();
    assert_null(n);
    assert_int_equal(notify_send(n, "READY=1"), 0);
    assert_int_equal(notify_watchdog_ms(n), 0);
    notify_free(n);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_null(notify_new());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_and_watchdog),
        cmocka_unit_test(test_outside_systemd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
