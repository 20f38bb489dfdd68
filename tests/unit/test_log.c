/* core/log: the line format on a terminal or in a file, and journald's
 * when systemd connected stderr to the journal (JOURNAL_STREAM names the
 * device and inode of that stream). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture.h"
#include "core/log.h"

/* JOURNAL_STREAM as systemd sets it: "<device>:<inode>" of the stream. */
static void set_journal_stream(const struct stat *st)
{
    char value[64];

    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino);
    setenv("JOURNAL_STREAM", value, 1);
}

/* The current stderr is the journal. */
static void set_journal_stream_to_stderr(void)
{
    struct stat st;

    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    set_journal_stream(&st);
}

/* Logs one line of each level under the tag "office" (and one untagged),
 * with the environment set up by setup() after stderr was redirected:
 * the text written. */
static const char *log_sample(void (*setup)(void), char *buf, size_t size)
{
    struct capture cap;

    assert_int_equal(capture_begin(&cap), 0);
    if (setup)
        setup();
    log_init();
    log_set_level(LOG_DEBUG);
    log_set_tag("office");
    log_error("modem: gone");
    log_warn("modem: slow");
    log_info("modem: ready");
    log_debug("AT> AT");
    log_set_tag(NULL);
    log_info("signal 15: shutting down");
    capture_end(&cap, buf, size);
    unsetenv("JOURNAL_STREAM");
    log_init();
    return buf;
}

static void test_journal_prefixes(void **state)
{
    (void)state;
    char out[1024];

    assert_string_equal(log_sample(set_journal_stream_to_stderr, out, sizeof out),
                        "<3>[office] modem: gone\n"
                        "<4>[office] modem: slow\n"
                        "<6>[office] modem: ready\n"
                        "<7>[office] AT> AT\n"
                        "<6>signal 15: shutting down\n");
}

static void assert_plain(const char *out)
{
    static const char *const pattern =
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z error \\[office\\] modem: gone\n"
        "[0-9TZ:.-]{24} warn  \\[office\\] modem: slow\n"
        "[0-9TZ:.-]{24} info  \\[office\\] modem: ready\n"
        "[0-9TZ:.-]{24} debug \\[office\\] AT> AT\n"
        "[0-9TZ:.-]{24} info  signal 15: shutting down\n$";
    regex_t re;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, out, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("not the plain format:\n%s", out);
}

static void test_plain_without_journal(void **state)
{
    (void)state;
    char out[1024];

    unsetenv("JOURNAL_STREAM");
    assert_plain(log_sample(NULL, out, sizeof out));
}

/* Inherited from a service whose child wrote to a file or a pipe: not
 * our stderr, so not the journal. */
static void set_journal_stream_to_other(void)
{
    struct stat st;

    assert_int_equal(stat("/", &st), 0);
    set_journal_stream(&st);
}

static void set_journal_stream_garbled(void)
{
    set_journal_stream_to_stderr();
    char value[80];
    snprintf(value, sizeof value, "%sx", getenv("JOURNAL_STREAM"));
    setenv("JOURNAL_STREAM", value, 1);
}

static void test_plain_when_stream_is_another(void **state)
{
    (void)state;
    char out[1024];

    assert_plain(log_sample(set_journal_stream_to_other, out, sizeof out));
    assert_plain(log_sample(set_journal_stream_garbled, out, sizeof out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_prefixes),
        cmocka_unit_test(test_plain_without_journal),
        cmocka_unit_test(test_plain_when_stream_is_another),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
