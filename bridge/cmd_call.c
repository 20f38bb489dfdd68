/* Voice calls: B/call/dial, answer, hangup, dtmf, and the call service's
 * events (B/call/state, B/call/ring, B/call/dtmf/received). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/call.h"

static void call_cmd_done(void *ctx, const struct m2m_error *err)
{
    command_finish(ctx, NULL, err);
}

/* A dial and, with "play", its alarm: armed only once the modem took
 * this dial, so a refused one (a call is already up) leaves the alarm of
 * the call that is up alone. */
struct dial {
    struct command *cmd;
    bool with_alarm;
    struct alarm_spec alarm;
};

/* The ATD reached the modem: from here a call may begin, and a crash must
 * not dial twice. A dial still queued runs after a restart. */
static void dial_written(void *ctx)
{
    struct dial *d = ctx;

    if (d->cmd->seq)
        journal_started(d->cmd->inst->journal, d->cmd->seq, 1);
}

static void dial_done(void *ctx, const struct m2m_error *err)
{
    struct dial *d = ctx;

    if (!err && d->with_alarm)
        cmd_audio_alarm_arm(d->cmd->inst, &d->alarm);
    command_finish(d->cmd, NULL, err);
    free(d);
}

void cmd_call_dial(struct instance *inst, struct command *cmd, struct route_req *req)
{
    const struct json_audio_play *a = &req->dial.alarm;
    struct dial *d = calloc(1, sizeof(*d));

    if (!d) {
        command_fail(cmd, "unavailable", "out of memory");
        return;
    }
    d->cmd = cmd;
    if (a->file) {
        d->with_alarm = true;
        snprintf(d->alarm.file, sizeof(d->alarm.file), "%s", a->file);
        d->alarm.repeat = a->repeat;
        d->alarm.hangup = a->hangup;
    }
    call_dial(inst->call, req->dial.to, dial_written, dial_done, d);
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
