/* The network: B/network/scan, B/network/select, and modem.roaming (the
 * refusal of what costs money abroad, and its B/error). */
#include <stdlib.h>

#include "core/config.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/network.h"
#include "modem/status.h"

#define ROAMING_REFUSED                                                                    \
    "the modem is registered roaming and modem.roaming is false: outgoing SMS, calls and " \
    "USSD are refused until it is home again"

/* "" -> null: a name the network did not give. */
static void add_name(cJSON *o, const char *key, const char *name)
{
    if (*name)
        cJSON_AddStringToObject(o, key, name);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *operator_json(const struct network_operator *op)
{
    cJSON *o = cJSON_CreateObject();
    const char *access = network_act_name(op->act);

    if (!o)
        return NULL;
    add_name(o, "name", op->name);
    add_name(o, "short", op->short_name);
    cJSON_AddStringToObject(o, "mccmnc", op->mccmnc);
    cJSON_AddStringToObject(o, "status", network_stat_name(op->stat));
    if (access)
        cJSON_AddStringToObject(o, "access", access);
    else
        cJSON_AddNullToObject(o, "access");
    return o;
}

static void scanned(void *ctx, const struct network_scan *scan, const struct m2m_error *err)
{
    struct command *cmd = ctx;
    cJSON *data, *list;

    cmd->inst->scanning = false;
    if (err) {
        command_finish(cmd, NULL, err);
        return;
    }
    data = cJSON_CreateObject();
    list = data ? cJSON_AddArrayToObject(data, "operators") : NULL;
    for (size_t i = 0; list && i < scan->n; i++)
        cJSON_AddItemToArray(list, operator_json(&scan->ops[i]));
    command_finish(cmd, data, NULL);
}

/* One search at a time: a second gives the same list, after the first
 * has held the line for minutes. */
void cmd_network_scan(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    if (inst->scanning) {
        command_fail(cmd, "busy", "a network scan is already running; wait for its result");
        return;
    }
    inst->scanning = true;
    network_scan(inst->modem, scanned, cmd);
}

static void selected(void *ctx, const struct m2m_error *err)
{
    struct command *cmd = ctx;
    struct instance *inst = cmd->inst;

    command_finish(cmd, NULL, err);
    /* The operator changed: B/status need not wait for the next poll. */
    if (!err)
        status_refresh(inst->status);
}

void cmd_network_select(struct instance *inst, struct command *cmd, struct route_req *req)
{
    network_select(inst->modem, req->text, selected, cmd);
}

bool cmd_network_refuses(const struct instance *inst)
{
    return !inst->cfg->modem.roaming && status_get(inst->status)->reg_stat == 5;
}

const char *cmd_network_refusal(void)
{
    return ROAMING_REFUSED;
}

/* A new B/status: the start of a roaming episode is told once on B/error
 * (with modem.roaming false), and the pool learns whether this modem can
 * send. */
void cmd_network_status(struct instance *inst)
{
    bool refuses = cmd_network_refuses(inst);

    if (refuses == inst->roaming_refused)
        return;
    inst->roaming_refused = refuses;
    pool_update(inst, false);
    if (!refuses) {
        log_info("network: home again; outgoing SMS, calls and USSD allowed");
        return;
    }
    log_warn("network: %s", ROAMING_REFUSED);
    events_error(inst, "roaming", ROAMING_REFUSED);
}
