/* The modem itself: B/ussd/send, B/modem/power and raw AT (B/at/send). */
#include <stdlib.h>

#include "at/chat.h"
#include "core/journal.h"
#include "instance_int.h"
#include "modem/status.h"
#include "modem/ussd.h"

static void ussd_answered(void *ctx, const struct ussd_reply *reply, const struct m2m_error *err)
{
    struct command *cmd = ctx;
    cJSON *data;

    if (err) {
        command_finish(cmd, NULL, err);
        return;
    }
    data = cJSON_CreateObject();
    if (data) {
        cJSON_AddStringToObject(data, "text", reply->text);
        cJSON_AddNumberToObject(data, "status", reply->status);
    }
    command_finish(cmd, data, NULL);
}

void cmd_ussd_send(struct instance *inst, struct command *cmd, struct route_req *req)
{
    ussd_send(inst->ussd, req->text, ussd_answered, cmd);
}

struct power_cmd {
    struct command *cmd;
    enum modem_power_mode mode;
};

static void power_done(void *ctx, const struct at_response *rsp)
{
    static const char *const names[] = {
        [MODEM_POWER_FULL] = "full", [MODEM_POWER_MIN] = "min", [MODEM_POWER_RESET] = "reset",
    };
    struct power_cmd pc = *(struct power_cmd *)ctx;
    struct m2m_error err;
    cJSON *data;

    free(ctx);
    if (m2m_error_from_at(&err, rsp, NULL)) {
        command_finish(pc.cmd, NULL, &err);
        return;
    }
    data = cJSON_CreateObject();
    if (data)
        cJSON_AddStringToObject(data, "mode", names[pc.mode]);
    command_finish(pc.cmd, data, NULL);
}

/* Results: "full" and "min" after the module's OK to AT+CFUN; "reset"
 * after its OK to AT+CRESET (B/status then says "resetting" until the
 * module is back and brought up again: "ready"). */
void cmd_modem_power(struct instance *inst, struct command *cmd, struct route_req *req)
{
    enum json_power_mode jm = req->power;
    struct power_cmd *pc;
    int r;

    pc = malloc(sizeof(*pc));
    if (!pc) {
        command_fail(cmd, "unavailable", "out of memory");
        return;
    }
    pc->cmd = cmd;
    pc->mode = jm == JSON_POWER_FULL ? MODEM_POWER_FULL
               : jm == JSON_POWER_MIN ? MODEM_POWER_MIN
                                      : MODEM_POWER_RESET;
    /* A reset must not run a second time after a crash mid-way. */
    if (cmd->seq)
        journal_started(inst->journal, cmd->seq, 1);
    r = modem_power(inst->modem, pc->mode, power_done, pc);
    if (r < 0) {
        struct m2m_error err;

        free(pc);
        m2m_error_from_send_state(&err, r, instance_state(inst));
        command_finish(cmd, NULL, &err);
    }
}

/* Why no command but modem/power can run now, or NULL: at AT+CFUN=0 the
 * module still answers AT but has no radio; during a reset it is gone. */
const char *instance_not_ready(const struct instance *inst)
{
    if (inst->resetting)
        return "the modem is resetting (modem/power reset); wait for B/status \"ready\"";
    if (modem_state(inst->modem) == MODEM_LOW_POWER)
        return "the modem is in low power mode (modem/power min): no radio; send "
               "{\"mode\":\"full\"} to modem/power first";
    return NULL;
}

static void at_sent(void *ctx, const struct at_response *rsp)
{
    struct command *cmd = ctx;
    struct m2m_error err;
    cJSON *data, *lines;

    if (m2m_error_from_at(&err, rsp, NULL)) {
        /* AT+CMGW and the like: the store had no room. */
        if (rsp->final == AT_FINAL_CMS && rsp->code == 322)
            status_storage_full(cmd->inst->status, "the module answered +CMS ERROR: 322");
        command_finish(cmd, NULL, &err);
        return;
    }
    data = cJSON_CreateObject();
    lines = data ? cJSON_AddArrayToObject(data, "response") : NULL;
    for (size_t i = 0; lines && i < rsp->n_lines; i++)
        cJSON_AddItemToArray(lines, cJSON_CreateString(rsp->lines[i]));
    command_finish(cmd, data, NULL);
}

void cmd_at_send(struct instance *inst, struct command *cmd, struct route_req *req)
{
    int r = modem_send(inst->modem, req->text, NULL, at_sent, cmd);
    struct m2m_error err;

    if (r < 0) {
        m2m_error_from_send_state(&err, r, instance_state(inst));
        command_finish(cmd, NULL, &err);
    }
}
