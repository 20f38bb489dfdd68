/* core/stats: the B/stats JSON and the Prometheus text, checked field by
 * field; the label escaping; the size contract of stats_prometheus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "core/stats.h"

static const char *const names[STATS_N_COUNTERS] = {
    "sms_sent",      "sms_failed",      "sms_received",      "reports",
    "calls",         "at_timeouts",     "modem_reopens",     "mqtt_reconnects",
    "remote_reconnects", "commands",    "errors",
};

static void fill(struct stats *s, struct stats_gauges *g)
{
    for (int i = 0; i < STATS_N_COUNTERS; i++)
        s->counter[i] = (uint64_t)(i + 1) * 10;
    g->queue_depth = 3;
    g->journal_pending = 4;
    g->uptime_s = 86400ull * 365;
}

static void test_json(void **state)
{
    struct stats s = { 0 };
    struct stats_gauges g = { 0 };
    (void)state;
    fill(&s, &g);
    char *out = stats_json(&s, &g);
    assert_non_null(out);
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    for (int i = 0; i < STATS_N_COUNTERS; i++) {
        assert_string_equal(stats_counter_name((enum stats_counter)i), names[i]);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, names[i]);
        assert_true(cJSON_IsNumber(v));
        assert_int_equal((uint64_t)v->valuedouble, (uint64_t)(i + 1) * 10);
    }
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "queue_depth")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "journal_pending")->valueint, 4);
    assert_int_equal((uint64_t)cJSON_GetObjectItemCaseSensitive(o, "uptime_s")->valuedouble,
                     86400ull * 365);
    assert_int_equal(cJSON_GetArraySize(o), STATS_N_COUNTERS + 3);
    assert_null(stats_counter_name(STATS_N_COUNTERS));
    cJSON_Delete(o);
    free(out);
}

static void test_prometheus(void **state)
{
    struct stats_sample sa = { .modem = "modem" };
    char buf[8192];
    (void)state;
    fill(&sa.s, &sa.g);
    int n = stats_prometheus(&sa, 1, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_int_equal(strlen(buf), (size_t)n);
    assert_non_null(strstr(buf, "# TYPE modem2mqtt_sms_sent_total counter\n"
                                "modem2mqtt_sms_sent_total{modem=\"modem\"} 10\n"));
    assert_non_null(strstr(buf, "# HELP modem2mqtt_errors_total Events published on the error "
                                "topic.\n"));
    assert_non_null(strstr(buf, "modem2mqtt_errors_total{modem=\"modem\"} 110\n"));
    assert_non_null(strstr(buf, "# TYPE modem2mqtt_queue_depth gauge\n"
                                "modem2mqtt_queue_depth{modem=\"modem\"} 3\n"));
    assert_non_null(strstr(buf, "modem2mqtt_uptime_seconds{modem=\"modem\"} 31536000\n"));
    /* Every line is a comment or a sample; the text ends with a newline. */
    assert_int_equal(buf[n - 1], '\n');
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strncmp(line, "modem2mqtt_", 11) == 0);
        line = nl + 1;
    }
}

/* Several modems: each metric's HELP and TYPE once, then a sample per
 * modem (a repeated TYPE line is an error to Prometheus). */
static void test_prometheus_several(void **state)
{
    struct stats_sample sa[3] = { { .modem = "modem/a" }, { .modem = "modem/b" },
                                  { .modem = "modem/c" } };
    char buf[16384];
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        fill(&sa[i].s, &sa[i].g);
        sa[i].s.counter[STATS_SMS_SENT] = i + 100;
    }
    int n = stats_prometheus(sa, 3, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "# TYPE modem2mqtt_sms_sent_total counter\n"
                                "modem2mqtt_sms_sent_total{modem=\"modem/a\"} 100\n"
                                "modem2mqtt_sms_sent_total{modem=\"modem/b\"} 101\n"
                                "modem2mqtt_sms_sent_total{modem=\"modem/c\"} 102\n"
                                "# HELP modem2mqtt_sms_failed_total "));
    size_t types = 0, helps = 0;
    for (const char *p = buf; (p = strstr(p, "# TYPE ")) != NULL; p++)
        types++;
    for (const char *p = buf; (p = strstr(p, "# HELP ")) != NULL; p++)
        helps++;
    assert_int_equal(types, STATS_N_COUNTERS + 3);
    assert_int_equal(helps, STATS_N_COUNTERS + 3);
}

static void test_prometheus_escapes_and_sizes(void **state)
{
    struct stats_sample sa = { .modem = "a\"b\\c\nd" };
    char buf[8192], small[16];
    (void)state;
    int n = stats_prometheus(&sa, 1, buf, sizeof buf);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "{modem=\"a\\\"b\\\\c\\nd\"} 0\n"));
    /* Like snprintf: the length needed, a NUL-terminated prefix. */
    int need = stats_prometheus(&sa, 1, NULL, 0);
    assert_int_equal(need, n);
    assert_int_equal(stats_prometheus(&sa, 1, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, buf, sizeof small - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_prometheus_several),
        cmocka_unit_test(test_prometheus_escapes_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
