/* The instance's counters: B/stats, B/stats/get and its part of /metrics.
 *
 * Published retained on B/stats 60 s after the first change since the last
 * publish, at connect and on B/stats/get: an idle bridge publishes nothing
 * and wakes for nothing (the retained copy stays right, but for uptime_s). */
#include <stdlib.h>

#include "at/chat.h"
#include "core/config.h"
#include "core/journal.h"
#include "core/loop.h"
#include "instance_int.h"

#define STATS_INTERVAL_MS 60000

/* The counters the instance keeps, with those its parts keep. */
static void stats_now(const struct instance *inst, struct stats *s, struct stats_gauges *g)
{
    *s = inst->stats;
    s->counter[STATS_AT_TIMEOUTS] = at_chat_timeouts(modem_chat(inst->modem));
    s->counter[STATS_MODEM_REOPENS] = modem_reopens(inst->modem);
    g->queue_depth = inst->n_held + inst->n_running;
    g->journal_pending = inst->journal ? journal_pending(inst->journal) : 0;
    g->uptime_s = (uint64_t)((loop_now_ms() - inst->started_ms) / 1000);
}

static char *stats_payload(const struct instance *inst)
{
    struct stats s;
    struct stats_gauges g;

    stats_now(inst, &s, &g);
    return stats_json(&s, &g);
}

void cmd_stats_publish(struct instance *inst)
{
    struct stats_gauges g;
    char *s = stats_payload(inst);

    stats_now(inst, &inst->stats_said, &g);
    loop_cancel_timer(inst->loop, inst->stats_timer);
    inst->stats_timer = 0;
    if (s)
        events_publish(inst, "stats", s, 1, true, NULL, NULL);
    free(s);
}

static int64_t stats_fired(void *ctx)
{
    struct instance *inst = ctx;

    inst->stats_timer = 0;
    cmd_stats_publish(inst);
    return 0;
}

/* Something B/stats shows changed: published within STATS_INTERVAL_MS. */
static void stats_changed(struct instance *inst)
{
    if (!inst->stats_timer)
        loop_add_timer(inst->loop, STATS_INTERVAL_MS, stats_fired, inst, &inst->stats_timer);
}

void cmd_stats_count(struct instance *inst, enum stats_counter c)
{
    inst->stats.counter[c]++;
    stats_changed(inst);
}

/* The counters the modem keeps (timeouts, reopens) come with state
 * changes: compared with what B/stats last said. */
void cmd_stats_modem_changed(struct instance *inst)
{
    struct stats s;
    struct stats_gauges g;

    stats_now(inst, &s, &g);
    if (s.counter[STATS_AT_TIMEOUTS] != inst->stats_said.counter[STATS_AT_TIMEOUTS] ||
        s.counter[STATS_MODEM_REOPENS] != inst->stats_said.counter[STATS_MODEM_REOPENS])
        stats_changed(inst);
}

void cmd_stats_sample(const struct instance *inst, struct stats_sample *out)
{
    out->modem = inst->name;
    stats_now(inst, &out->s, &out->g);
}

void cmd_stats_get(struct instance *inst, struct command *cmd, struct route_req *req)
{
    char *s;

    (void)req;
    cmd_stats_publish(inst);
    s = stats_payload(inst);
    command_finish(cmd, s ? cJSON_Parse(s) : NULL, NULL);
    free(s);
}
