/* core/health: the judgement of an answer (table), its format, and
 * listen -> check -> remove in a mkdtemp directory: a stale socket left by
 * a killed bridge, no bridge, and a bridge whose loop does not answer. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/health.h"

struct judge_case {
    const char *answer;
    int want;
    const char *msg_has;
};

static const struct judge_case judge_cases[] = {
    { "mqtt=connected modem=ready wakeups=1 fsyncs=2 commands=3\n", 0,
      "healthy: broker connected, modem ready" },
    { "mqtt=connected modem=ready\n", 0, "healthy" },
    { "mqtt=disconnected modem=ready wakeups=1\n", -1, "not connected to the broker (modem ready)" },
    { "mqtt=connected modem=starting\n", -1, "modem starting" },
    { "mqtt=connected modem=unavailable\n", -1, "modem unavailable" },
    { "mqtt=connected modem=sim_locked\n", -1, "modem sim_locked" },
    /* Several modems: the one that is not well is named. */
    { "mqtt=connected modem=unavailable wakeups=1 fsyncs=2 commands=3 name=garage\n", -1,
      "unhealthy: modem garage unavailable (broker connected)" },
    { "mqtt=disconnected modem=ready wakeups=1 fsyncs=2 commands=3 name=office\n", -1,
      "unhealthy: office not connected to the broker (modem ready)" },
    { "mqtt=connected modem=ready commands=3 name=abcdefghijklmnopqrstuvwxyz012345\n", 0,
      "healthy" },
    { "mqtt=connected modem=starting name=abcdefghijklmnopqrstuvwxyz012345\n", -1,
      "modem abcdefghijklmnopqrstuvwxyz012345 starting" },
    { "", -1, "format" },
    { "garbage\n", -1, "format" },
    { "mqtt=connected\n", -1, "format" },
    /* The file of the earlier versions is not an answer. */
    { "t=100 mqtt=connected modem=ready\n", -1, "format" },
};

static void test_judge_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof judge_cases / sizeof judge_cases[0]; i++) {
        const struct judge_case *c = &judge_cases[i];
        char msg[256] = "";
        int r = health_judge(c->answer, msg, sizeof msg);
        if (r != c->want || !strstr(msg, c->msg_has)) {
            print_error("case %zu: got %d '%s', want %d '%s'\n", i, r, msg, c->want,
                        c->msg_has);
            fail();
        }
    }
}

static void test_format(void **state)
{
    char buf[HEALTH_LINE_MAX];
    const struct health_info h = { true, "ready", 7, UINT64_MAX, 0 };

    (void)state;
    assert_int_equal(health_format(&h, buf, sizeof buf), 0);
    assert_string_equal(buf,
                        "mqtt=connected modem=ready wakeups=7 fsyncs=18446744073709551615 "
                        "commands=0\n");
    assert_int_equal(health_format(&h, buf, 10), -ENOSPC);

    const struct health_info named = { true, "unavailable", 1, 2, 3, "garage" };
    assert_int_equal(health_format(&named, buf, sizeof buf), 0);
    assert_string_equal(buf, "mqtt=connected modem=unavailable wakeups=1 fsyncs=2 "
                             "commands=3 name=garage\n");
}

struct server {
    int fd;
    const char *line;
};

/* The bridge's side: waits for one query (bounded) and answers it. */
static void *serve_one(void *arg)
{
    struct server *s = arg;
    struct pollfd p = { .fd = s->fd, .events = POLLIN };

    if (poll(&p, 1, 10000) == 1)
        health_answer(s->fd, s->line);
    return NULL;
}

static void test_listen_check_remove(void **state)
{
    char dir[] = "/tmp/m2m-health-XXXXXX";
    char path[128], msg[512], raw[HEALTH_LINE_MAX];
    struct server s = { .line = "mqtt=connected modem=ready wakeups=5 fsyncs=0 commands=0\n" };
    pthread_t th;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, HEALTH_SOCKET);

    /* No bridge: not running. */
    assert_int_equal(health_check(dir, msg, sizeof msg, raw, sizeof raw), -1);
    assert_non_null(strstr(msg, "(bridge not running?)"));

    /* A socket file left by a killed bridge: replaced at listen; before
     * that, nobody answers on it (connection refused: not running). */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof sa), 0);
    close(stale);
    assert_int_equal(health_check(dir, msg, sizeof msg, NULL, 0), -1);
    assert_non_null(strstr(msg, "(bridge not running?)"));

    assert_int_equal(health_listen(dir, &s.fd), 0);
    assert_int_equal(pthread_create(&th, NULL, serve_one, &s), 0);
    assert_int_equal(health_check(dir, msg, sizeof msg, raw, sizeof raw), 0);
    pthread_join(th, NULL);
    assert_string_equal(msg, "healthy: broker connected, modem ready");
    assert_string_equal(raw, "mqtt=connected modem=ready wakeups=5 fsyncs=0 commands=0");

    s.line = "mqtt=disconnected modem=ready\n";
    assert_int_equal(pthread_create(&th, NULL, serve_one, &s), 0);
    assert_int_equal(health_check(dir, msg, sizeof msg, NULL, 0), -1);
    pthread_join(th, NULL);
    assert_non_null(strstr(msg, "not connected to the broker"));

    /* Nothing waiting: answer returns at once. */
    health_answer(s.fd, "x\n");
    close(s.fd);
    health_remove(dir);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(rmdir(dir), 0);
}

/* A loop that hangs accepts nothing: the check gives up after
 * HEALTH_ANSWER_MS and says so. */
static void test_hung_bridge(void **state)
{
    char dir[] = "/tmp/m2m-health-XXXXXX";
    char msg[512];
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(health_listen(dir, &fd), 0);
    assert_int_equal(health_check(dir, msg, sizeof msg, NULL, 0), -1);
    assert_non_null(strstr(msg, "did not answer"));
    close(fd);
    health_remove(dir);
    assert_int_equal(rmdir(dir), 0);
}

static void test_path_too_long(void **state)
{
    char dir[200], msg[256];
    int fd;

    (void)state;
    memset(dir, 'a', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    assert_int_equal(health_listen(dir, &fd), -ENAMETOOLONG);
    assert_int_equal(health_check(dir, msg, sizeof msg, NULL, 0), -1);
    assert_non_null(strstr(msg, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_table),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_listen_check_remove),
        cmocka_unit_test(test_hung_bridge),
        cmocka_unit_test(test_path_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
