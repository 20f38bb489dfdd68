/* The bridge's counters and gauges, and their two renderings: the JSON of
 * B/stats and the Prometheus text format of /metrics.
 *
 * Pure: no I/O, no clock. Counters are incremented on the loop's thread
 * only (no atomics needed); gauges are sampled by the caller when it
 * renders. */
#ifndef M2M_CORE_STATS_H
#define M2M_CORE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stats_counter {
    STATS_SMS_SENT,          /* SMS sent: one per recipient of an sms/send */
    STATS_SMS_FAILED,        /* SMS not sent (refused or failed), per recipient */
    STATS_SMS_RECEIVED,      /* B/sms/received events */
    STATS_REPORTS,           /* B/sms/report events */
    STATS_CALLS,             /* calls that began (incoming or dialled) */
    STATS_AT_TIMEOUTS,       /* AT commands the module did not answer in time */
    STATS_MODEM_REOPENS,     /* the serial port reopened (lost, hung module) */
    STATS_MQTT_RECONNECTS,   /* connections to the local broker after the first */
    STATS_REMOTE_RECONNECTS, /* the module's connections to the remote broker after the first */
    STATS_COMMANDS,          /* commands received (every topic) */
    STATS_ERRORS,            /* B/error events */
    STATS_N_COUNTERS
};

struct stats {
    uint64_t counter[STATS_N_COUNTERS];
};

struct stats_gauges {
    uint64_t queue_depth;     /* commands received and not yet answered */
    uint64_t journal_pending; /* journal records not yet done */
    uint64_t uptime_s;
};

/* The counter's name in B/stats ("sms_sent"). */
const char *stats_counter_name(enum stats_counter c);

/* {"sms_sent":1,...,"queue_depth":0,"journal_pending":0,"uptime_s":60}:
 * malloc'd, NULL when out of memory. */
char *stats_json(const struct stats *s, const struct stats_gauges *g);

/* One modem's figures at one moment, labelled with its base topic. */
struct stats_sample {
    const char *modem;        /* borrowed */
    struct stats s;
    struct stats_gauges g;
};

/* The Prometheus text exposition format (0.0.4): counters as
 * modem2mqtt_<name>_total, gauges as modem2mqtt_<name> (uptime_s as
 * modem2mqtt_uptime_seconds), each metric's HELP and TYPE lines once,
 * then one sample per modem with the label modem="<base topic>". Writes
 * at most size bytes with a NUL; returns the length it needed (as
 * snprintf), or -1. */
int stats_prometheus(const struct stats_sample *samples, size_t n, char *buf, size_t size);

#endif
