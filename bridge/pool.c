/* The pool (mqtt.pool): sms/send shared with other modems through the
 * broker's shared subscription. This modem is in it while connected and
 * ready. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "instance_int.h"

#define POOL_RETRY_MS 5000

static int64_t pool_retry_fired(void *ctx);

/* The broker's answer to a join or a leave. Refused, or lost with the
 * connection: tried again later (a new connection tries at once). */
static void pool_acked(void *ctx, int status)
{
    struct instance *inst = ctx;
    bool joining = inst->pool == POOL_JOINING;

    if (status == -ECANCELED)
        return;                 /* shutting down */
    if (status == 0) {
        inst->pool = joining ? POOL_IN : POOL_OUT;
        log_info("pool: %s %s/sms/send", joining ? "joined" : "left", inst->cfg->mqtt.pool.topic);
    } else {
        inst->pool = POOL_UNKNOWN;
        if (status != -ENOTCONN)
            log_warn("pool: the broker refused to %s: %s; trying again in %d s",
                     joining ? "let this modem join" : "let this modem leave", strerror(-status),
                     POOL_RETRY_MS / 1000);
        if (!inst->pool_timer)
            loop_add_timer(inst->loop, POOL_RETRY_MS, pool_retry_fired, inst, &inst->pool_timer);
    }
    pool_update(inst, false);
}

static int64_t pool_retry_fired(void *ctx)
{
    struct instance *inst = ctx;

    inst->pool_timer = 0;
    pool_update(inst, false);
    return 0;
}

/* In the pool while connected and ready (and not refusing to send while
 * roaming), out of it otherwise: a modem that cannot send leaves the work
 * to the others. One join or leave at a time;
 * the answer calls this again, so the last state asked for wins. force: a
 * new connection (the broker's session may hold either). */
void pool_update(struct instance *inst, bool force)
{
    bool want = modem_state(inst->modem) == MODEM_READY && !cmd_network_refuses(inst);
    char filter[TOPIC_MAX];
    int r;

    if (!inst->cfg->mqtt.pool.enabled)
        return;
    if (force)
        inst->pool = POOL_UNKNOWN;
    if (inst->pool == POOL_JOINING || inst->pool == POOL_LEAVING)
        return;                 /* pool_acked comes back here */
    if (inst->pool == (want ? POOL_IN : POOL_OUT))
        return;
    snprintf(filter, sizeof(filter), "$share/%s/%s/sms/send", inst->cfg->mqtt.pool.group,
             inst->cfg->mqtt.pool.topic);
    inst->pool = want ? POOL_JOINING : POOL_LEAVING;
    r = want ? mqtt_link_subscribe_acked(inst->link, filter, 1, pool_acked, inst)
             : mqtt_link_unsubscribe(inst->link, filter, pool_acked, inst);
    if (r < 0) {
        inst->pool = POOL_UNKNOWN;
        if (r != -ENOTCONN && !inst->pool_timer) {
            log_warn("pool: cannot %s %s: %s; trying again in %d s", want ? "join" : "leave",
                     filter, strerror(-r), POOL_RETRY_MS / 1000);
            loop_add_timer(inst->loop, POOL_RETRY_MS, pool_retry_fired, inst, &inst->pool_timer);
        }
    }
}
