/* core/health: the judgement of the health file (table of contents and
 * ages), and write -> check -> remove in a mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/health.h"

struct judge_case {
    const char *content;
    int64_t now_ms;
    int want;
    const char *msg_has;
};

static const struct judge_case judge_cases[] = {
    { "t=100000 mqtt=connected modem=ready\n", 100000, 0, "healthy: broker connected" },
    { "t=100000 mqtt=connected modem=ready\n", 100000 + HEALTH_MAX_AGE_MS, 0, "healthy" },
    /* Stale: the loop stopped rewriting it. */
    { "t=100000 mqtt=connected modem=ready\n", 100001 + HEALTH_MAX_AGE_MS, -1, "stale" },
    /* From the future: a file left by an earlier boot. */
    { "t=900000 mqtt=connected modem=ready\n", 5000, -1, "stale" },
    { "t=100000 mqtt=disconnected modem=ready\n", 100500, -1, "not connected to the broker" },
    { "t=100000 mqtt=connected modem=starting\n", 100500, -1, "modem starting" },
    { "t=100000 mqtt=connected modem=unavailable\n", 100500, -1, "modem unavailable" },
    { "t=100000 mqtt=connected modem=sim_locked\n", 100500, -1, "modem sim_locked" },
    { "", 100, -1, "format" },
    { "garbage\n", 100, -1, "format" },
    { "t=abc mqtt=connected modem=ready\n", 100, -1, "format" },
    { "t=100 mqtt=connected\n", 100, -1, "format" },
};

static void test_judge_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof judge_cases / sizeof judge_cases[0]; i++) {
        const struct judge_case *c = &judge_cases[i];
        char msg[256] = "";
        int r = health_judge(c->content, c->now_ms, msg, sizeof msg);
        if (r != c->want || !strstr(msg, c->msg_has)) {
            print_error("case %zu: got %d '%s', want %d '%s'\n", i, r, msg, c->want,
                        c->msg_has);
            fail();
        }
    }
}

static void test_write_check_remove(void **state)
{
    char dir[] = "/tmp/m2m-health-XXXXXX";
    char path[64], msg[512], buf[128];
    struct stat st;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, HEALTH_FILE);

    /* No file: the bridge is not running. */
    assert_int_equal(health_check(dir, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "not running"));

    assert_int_equal(health_write(dir, true, "ready"), 0);
    assert_int_equal(health_check(dir, msg, sizeof msg), 0);
    assert_string_equal(msg, "healthy: broker connected, modem ready");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777 & ~0022u, 0644 & ~0022u);

    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_true(strncmp(buf, "t=", 2) == 0);
    assert_non_null(strstr(buf, " mqtt=connected modem=ready\n"));

    /* A rewrite replaces the state; no temporary file is left. */
    assert_int_equal(health_write(dir, false, "starting"), 0);
    assert_int_equal(health_check(dir, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "not connected to the broker (modem starting)"));
    snprintf(buf, sizeof buf, "%s/%s.tmp", dir, HEALTH_FILE);
    assert_int_equal(access(buf, F_OK), -1);

    health_remove(dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(health_check(dir, msg, sizeof msg), -1);
    assert_int_equal(rmdir(dir), 0);

    /* A directory that does not exist: an error, not a crash. */
    assert_true(health_write("/nonexistent/m2m-health", true, "ready") < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_table),
        cmocka_unit_test(test_write_check_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
