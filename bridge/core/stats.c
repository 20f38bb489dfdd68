#include "core/stats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

struct counter_desc {
    const char *name;
    const char *help;
};

/* Indexed by enum stats_counter. */
static const struct counter_desc counters[STATS_N_COUNTERS] = {
    [STATS_SMS_SENT] = { "sms_sent", "SMS send commands answered ok." },
    [STATS_SMS_FAILED] = { "sms_failed", "SMS send commands answered with an error." },
    [STATS_SMS_RECEIVED] = { "sms_received", "Incoming SMS published." },
    [STATS_REPORTS] = { "reports", "SMS delivery reports published." },
    [STATS_CALLS] = { "calls", "Calls that began, incoming or dialled." },
    [STATS_AT_TIMEOUTS] = { "at_timeouts", "AT commands the module did not answer in time." },
    [STATS_MODEM_REOPENS] = { "modem_reopens", "Times the serial port was reopened." },
    [STATS_MQTT_RECONNECTS] = { "mqtt_reconnects", "Reconnections to the local broker." },
    [STATS_REMOTE_RECONNECTS] = { "remote_reconnects",
                                  "Reconnections of the module to the remote broker." },
    [STATS_COMMANDS] = { "commands", "Commands received." },
    [STATS_ERRORS] = { "errors", "Events published on the error topic." },
};

struct gauge_desc {
    const char *name;       /* in B/stats */
    const char *prom;       /* in /metrics (Prometheus names units in full) */
    const char *help;
    size_t off;
};

static const struct gauge_desc gauges[] = {
    { "queue_depth", "queue_depth", "Commands received and not yet answered.",
      offsetof(struct stats_gauges, queue_depth) },
    { "journal_pending", "journal_pending", "Journal records not yet done.",
      offsetof(struct stats_gauges, journal_pending) },
    { "uptime_s", "uptime_seconds", "Seconds since the bridge started.",
      offsetof(struct stats_gauges, uptime_s) },
};
#define N_GAUGES (sizeof(gauges) / sizeof(gauges[0]))

static uint64_t gauge_value(const struct stats_gauges *g, size_t i)
{
    uint64_t v;
    memcpy(&v, (const char *)g + gauges[i].off, sizeof(v));
    return v;
}

const char *stats_counter_name(enum stats_counter c)
{
    return (unsigned)c < STATS_N_COUNTERS ? counters[c].name : NULL;
}

char *stats_json(const struct stats *s, const struct stats_gauges *g)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;

    if (!o)
        return NULL;
    for (size_t i = 0; i < STATS_N_COUNTERS; i++)
        if (!cJSON_AddNumberToObject(o, counters[i].name, (double)s->counter[i]))
            goto out;
    for (size_t i = 0; i < N_GAUGES; i++)
        if (!cJSON_AddNumberToObject(o, gauges[i].name, (double)gauge_value(g, i)))
            goto out;
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

/* Appends to buf like snprintf, tracking the length needed. */
struct text {
    char *buf;
    size_t size, len;
    bool failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    size_t room = t->len < t->size ? t->size - t->len : 0;

    va_start(ap, fmt);
    int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        t->failed = true;
    else
        t->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label(struct text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(t, "\\%c", *v);
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

/* One metric: its HELP and TYPE, then each modem's sample; value(i)
 * reads sample i's. */
static void put_metric(struct text *t, const char *name, const char *suffix, const char *type,
                       const char *help, const struct stats_sample *samples, size_t n,
                       uint64_t (*value)(const struct stats_sample *, size_t), size_t which)
{
    put(t, "# HELP modem2mqtt_%s%s %s\n# TYPE modem2mqtt_%s%s %s\n", name, suffix, help, name,
        suffix, type);
    for (size_t i = 0; i < n; i++) {
        put(t, "modem2mqtt_%s%s{modem=\"", name, suffix);
        put_label(t, samples[i].modem);
        put(t, "\"} %" PRIu64 "\n", value(&samples[i], which));
    }
}

static uint64_t counter_of(const struct stats_sample *sa, size_t c)
{
    return sa->s.counter[c];
}

static uint64_t gauge_of(const struct stats_sample *sa, size_t i)
{
    return gauge_value(&sa->g, i);
}

int stats_prometheus(const struct stats_sample *samples, size_t n, char *buf, size_t size)
{
    struct text t = { .buf = buf, .size = size };

    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < STATS_N_COUNTERS; i++)
        put_metric(&t, counters[i].name, "_total", "counter", counters[i].help, samples, n,
                   counter_of, i);
    for (size_t i = 0; i < N_GAUGES; i++)
        put_metric(&t, gauges[i].prom, "", "gauge", gauges[i].help, samples, n, gauge_of, i);
    if (t.failed || t.len > INT32_MAX)
        return -1;
    return (int)t.len;
}
