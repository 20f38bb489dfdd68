/* Commands that arrive while the modem is still starting (port just
 * opened, bring-up running) are held, not refused: after a restart the
 * broker hands over the commands it queued at once, before the modem
 * answered its first AT. Once the modem settles they run, or get
 * "unavailable" when it did not come up. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"
#include "instance_int.h"

#define MAX_HELD 64
#define SETTLE_TIMEOUT_MS 60000   /* longest a command waits for bring-up */

void hold_free(struct held *h)
{
    free(h->topic);
    free(h->payload);
    free(h->response_topic);
    free(h->correlation);
    free(h);
}

struct held *hold_new(const char *topic, const void *payload, size_t len,
                      const char *response_topic, const uint8_t *corr, size_t corr_len,
                      uint64_t seq)
{
    struct held *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->topic = strdup(topic);
    h->payload = malloc(len ? len : 1);
    h->response_topic = response_topic ? strdup(response_topic) : NULL;
    h->correlation = corr_len ? malloc(corr_len) : NULL;
    if (!h->topic || !h->payload || (response_topic && !h->response_topic) ||
        (corr_len && !h->correlation)) {
        hold_free(h);
        return NULL;
    }
    memcpy(h->payload, payload, len);
    h->len = len;
    if (corr_len)
        memcpy(h->correlation, corr, corr_len);
    h->correlation_len = corr_len;
    h->seq = seq;
    return h;
}

static bool modem_starting(const struct instance *inst)
{
    enum modem_state st = modem_state(inst->modem);

    /* After a reset: answered "unavailable" at once (not_ready_reason). */
    if (inst->resetting)
        return false;
    return st == MODEM_PROBING || st == MODEM_BRINGUP || (st == MODEM_CLOSED && !inst->settled);
}

void hold_run(struct instance *inst, struct held *h)
{
    router_dispatch(inst, h);
    hold_free(h);
}

static void run_held(struct instance *inst)
{
    while (inst->held) {
        struct held *h = inst->held;
        inst->held = h->next;
        inst->n_held--;
        hold_run(inst, h);
    }
    inst->held_tail = &inst->held;
}

void hold_take(struct instance *inst, struct held *h)
{
    const struct route *r = router_find(inst->cfg, h->topic);

    if (!modem_starting(inst) || (r && (r->flags & ROUTE_NO_MODEM))) {
        hold_run(inst, h);
        return;
    }
    if (inst->n_held == MAX_HELD) {
        log_warn("%zu commands waiting for the modem; running the oldest now", inst->n_held);
        struct held *oldest = inst->held;
        inst->held = oldest->next;
        inst->n_held--;
        if (!inst->held)
            inst->held_tail = &inst->held;
        hold_run(inst, oldest);
    }
    h->next = NULL;
    *inst->held_tail = h;
    inst->held_tail = &h->next;
    inst->n_held++;
}

static int64_t settle_fired(void *ctx)
{
    struct instance *inst = ctx;

    inst->settle_timer = 0;
    if (!inst->settled)
        log_warn("modem still not ready after %d s; answering waiting commands",
                 SETTLE_TIMEOUT_MS / 1000);
    inst->settled = true;
    run_held(inst);
    return 0;
}

void hold_start(struct instance *inst)
{
    loop_add_timer(inst->loop, SETTLE_TIMEOUT_MS, settle_fired, inst, &inst->settle_timer);
}

/* The modem left "starting" (st is not PROBING or BRINGUP, nor the CLOSED
 * of a port not yet opened): what waits runs. */
void hold_modem_state(struct instance *inst, enum modem_state st)
{
    if (st != MODEM_PROBING && st != MODEM_BRINGUP && (st != MODEM_CLOSED || inst->settled)) {
        inst->settled = true;
        loop_cancel_timer(inst->loop, inst->settle_timer);
        inst->settle_timer = 0;
    }
    if (!modem_starting(inst))
        run_held(inst);
}

void hold_free_all(struct instance *inst)
{
    while (inst->held) {
        struct held *h = inst->held;
        inst->held = h->next;
        hold_free(h);
    }
}
