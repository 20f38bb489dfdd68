/* Voice calls: B/call/dial, answer, hangup, dtmf, and the call service's
 * events (B/call/state, B/call/ring, B/call/dtmf/received). */
#include <errno.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/call.h"

static void call_cmd_done(void *ctx, const struct m2m_error *err)
{
    command_finish(ctx, NULL, err);
}

/* A refused dial leaves no alarm behind for the next call. */
static void dial_done(void *ctx, const struct m2m_error *err)
{
    struct command *cmd = ctx;

    if (err)
        cmd_audio_alarm_disarm(cmd->inst);
    command_finish(cmd, NULL, err);
}

void cmd_call_dial(struct instance *inst, struct command *cmd, struct route_req *req)
{
    /* From here a call may begin: a crash must not dial twice. */
    if (cmd->seq)
        journal_started(inst->journal, cmd->seq, 1);
    if (req->dial.alarm.file)
        cmd_audio_alarm_arm(inst, &req->dial.alarm);
    call_dial(inst->call, req->dial.to, dial_done, cmd);
}

void cmd_call_answer(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    call_answer(inst->call, call_cmd_done, cmd);
}

void cmd_call_hangup(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    call_hangup(inst->call, call_cmd_done, cmd);
}

void cmd_call_dtmf(struct instance *inst, struct command *cmd, struct route_req *req)
{
    call_dtmf(inst->call, req->text, call_cmd_done, cmd);
}

static void on_call_state(void *ctx, const struct call_state *st)
{
    struct instance *inst = ctx;

    log_info("call: %s", call_st_name(st->state));
    if (st->state != CALL_IDLE && !inst->in_call)
        cmd_stats_count(inst, STATS_CALLS);
    inst->in_call = st->state != CALL_IDLE;
    events_call_state(inst, st);
    cmd_audio_call_state(inst, st);
}

static void on_call_ring(void *ctx, const char *from)
{
    events_call_ring(ctx, from);
}

static void on_call_dtmf(void *ctx, char key)
{
    log_info("call: DTMF %c received", key);
    events_call_dtmf(ctx, key);
}

int cmd_call_open(struct instance *inst)
{
    const struct call_opts co = { .allow_to = inst->cfg->calls.allow_to,
                                  .n_allow_to = inst->cfg->calls.n_allow_to };
    const struct call_cbs cc = { .state = on_call_state, .ring = on_call_ring,
                                  .dtmf = on_call_dtmf };

    inst->call = call_new(inst->loop, inst->modem, &co, &cc, inst);
    return inst->call ? 0 : -ENOMEM;
}
