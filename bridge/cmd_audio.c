/* Audio: B/audio/play, stop, record, upload and list, the audio service's
 * event (B/audio/state) and "playing" in B/call/state, and the voice alarm
 * of B/call/dial with "play": once that call is active its file plays into
 * the call, and when the playback is over the bridge hangs up (unless
 * "hangup":false). A call that ends first stops the playback. */
#include <errno.h>
#include <stdio.h>

#include "core/journal.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/audio.h"
#include "modem/call.h"

static void audio_cmd_done(void *ctx, const struct m2m_error *err)
{
    command_finish(ctx, NULL, err);
}

/* A playback or recording may begin from here: a restart answers the
 * command "unavailable" rather than starting it a second time. An upload
 * or a listing runs again (the same file, written again). */
static void mark_started(struct instance *inst, const struct command *cmd)
{
    if (cmd->seq)
        journal_started(inst->journal, cmd->seq, 1);
}

static bool call_active(const struct instance *inst)
{
    const struct call_state *st = call_get_state(inst->call);

    return st && st->state == CALL_ACTIVE;
}

void cmd_audio_play(struct instance *inst, struct command *cmd, struct route_req *req)
{
    const struct json_audio_play *p = &req->play;

    if (p->to_call && !call_active(inst)) {
        command_fail(cmd, "no_call", "'to_call' needs an active call");
        return;
    }
    mark_started(inst, cmd);
    audio_play(inst->audio, p->file, p->repeat, p->to_call, audio_cmd_done, cmd);
}

void cmd_audio_stop(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    audio_stop(inst->audio, audio_cmd_done, cmd);
}

void cmd_audio_record(struct instance *inst, struct command *cmd, struct route_req *req)
{
    mark_started(inst, cmd);
    audio_record(inst->audio, req->record.file, req->record.seconds, call_active(inst),
                 audio_cmd_done, cmd);
}

void cmd_audio_upload(struct instance *inst, struct command *cmd, struct route_req *req)
{
    struct json_audio_upload *u = &req->upload;
    uint8_t *data = u->data;

    u->data = NULL;   /* the service's now */
    log_info("audio: writing %zu bytes to %s", u->len, u->file);
    audio_upload(inst->audio, u->file, data, u->len, audio_cmd_done, cmd);
}

static void listed(void *ctx, const struct m2m_error *err, const struct audio_entry *files,
                   size_t n)
{
    cJSON *data = NULL, *arr;

    if (!err && (data = cJSON_CreateObject()) &&
        (arr = cJSON_AddArrayToObject(data, "files"))) {
        for (size_t i = 0; i < n; i++) {
            cJSON *f = cJSON_CreateObject();
            if (!f)
                break;
            cJSON_AddStringToObject(f, "name", files[i].name);
            if (files[i].size >= 0)
                cJSON_AddNumberToObject(f, "size", (double)files[i].size);
            else
                cJSON_AddNullToObject(f, "size");
            cJSON_AddItemToArray(arr, f);
        }
    }
    command_finish(ctx, data, err);
}

void cmd_audio_list(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    audio_list(inst->audio, listed, cmd);
}

/* --- the voice alarm ---------------------------------------------------------------- */

void cmd_audio_alarm_arm(struct instance *inst, const struct json_audio_play *alarm)
{
    inst->alarm.armed = true;
    inst->alarm.playing = false;
    inst->alarm.hangup = alarm->hangup;
    inst->alarm.repeat = alarm->repeat;
    snprintf(inst->alarm.file, sizeof(inst->alarm.file), "%s", alarm->file);
}

void cmd_audio_alarm_disarm(struct instance *inst)
{
    inst->alarm.armed = false;
    inst->alarm.started = false;
    inst->alarm.playing = false;
}

static void alarm_hung_up(void *ctx, const struct m2m_error *err)
{
    (void)ctx;
    if (err)
        log_warn("alarm: hanging up after the playback failed: %s", err->message);
}

static void alarm_stopped(void *ctx, const struct m2m_error *err)
{
    (void)ctx;
    if (err)
        log_warn("alarm: stopping the playback after the call ended failed: %s",
                 err->message);
}

/* The alarm is over (played, or it could not play): the call ends unless
 * it was asked to stay. */
static void alarm_over(struct instance *inst)
{
    bool hangup = inst->alarm.hangup;

    cmd_audio_alarm_disarm(inst);
    if (hangup && call_active(inst)) {
        log_info("alarm: played; hanging up");
        call_hangup(inst->call, alarm_hung_up, inst);
    }
}

static void alarm_started(void *ctx, const struct m2m_error *err)
{
    struct instance *inst = ctx;

    if (!inst->alarm.armed) {
        /* The call ended while AT+CCMXPLAY was under way: nobody listens. */
        if (!err)
            audio_stop(inst->audio, alarm_stopped, inst);
        return;
    }
    if (err) {
        char msg[sizeof(inst->alarm.file) + sizeof(err->message) + 32];
        snprintf(msg, sizeof(msg), "the alarm %s could not play: %s", inst->alarm.file,
                 err->message);
        log_warn("alarm: %s", msg);
        events_error(inst, err->code, msg);
        alarm_over(inst);
        return;
    }
    inst->alarm.playing = true;
}

void cmd_audio_call_state(struct instance *inst, const struct call_state *st)
{
    if (!inst->alarm.armed)
        return;
    if (st->state == CALL_ACTIVE && !inst->alarm.started) {
        log_info("alarm: playing %s %d time(s) into the call", inst->alarm.file,
                 inst->alarm.repeat);
        inst->alarm.started = true;
        audio_play(inst->audio, inst->alarm.file, inst->alarm.repeat, true, alarm_started, inst);
    } else if (st->state == CALL_IDLE) {
        /* The far end hung up (or the call failed): the module's playback
         * into a call that is gone is stopped, if it still runs. */
        bool playing = inst->alarm.playing;
        cmd_audio_alarm_disarm(inst);
        if (playing && audio_get_state(inst->audio)->state == AUDIO_PLAYING)
            audio_stop(inst->audio, alarm_stopped, inst);
    }
}

static void on_audio_state(void *ctx, const struct audio_state *st)
{
    struct instance *inst = ctx;

    log_info("audio: %s%s%s", audio_st_name(st->state), st->file[0] ? " " : "", st->file);
    events_audio_state(inst, st);
    /* B/call/state "playing": whatever plays into the call, an alarm or
     * B/audio/play with "to_call". */
    call_set_playing(inst->call, st->state == AUDIO_PLAYING && st->to_call);
    if (st->state == AUDIO_IDLE && inst->alarm.playing)
        alarm_over(inst);
}

int cmd_audio_open(struct instance *inst)
{
    const struct audio_cbs cbs = { .state = on_audio_state };

    inst->audio = audio_new(inst->loop, inst->modem, &cbs, inst);
    return inst->audio ? 0 : -ENOMEM;
}
