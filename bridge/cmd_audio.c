/* Audio: B/audio/play, stop, record, upload and list, the audio service's
 * event (B/audio/state) and "playing" in B/call/state, and the voice alarm
 * of B/call/dial with "play": once that call is active its file plays into
 * the call, and when the playback is over the bridge hangs up (unless
 * "hangup":false). A call that ends first ends the playback (the module
 * does that). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/journal.h"
#include "core/log.h"
#include "core/loop.h"
#include "instance_int.h"
#include "modem/audio.h"
#include "modem/call.h"

static void audio_cmd_done(void *ctx, const struct m2m_error *err)
{
    command_finish(ctx, NULL, err);
}

/* The play or record command reached the modem: from here a playback or
 * recording may begin, and a restart answers the command "unavailable"
 * rather than starting it a second time. One still queued runs after a
 * restart. An upload or a listing runs again (the same file, written
 * again). */
static void mark_started(void *ctx)
{
    struct command *cmd = ctx;

    if (cmd->seq)
        journal_started(cmd->inst->journal, cmd->seq, 1);
}

static bool call_active(const struct instance *inst)
{
    const struct call_state *st = call_get_state(inst->call);

    return st && st->state == CALL_ACTIVE;
}

/* The alarm call is being dialled: its file is to play once the call is
 * answered, and anything else started now would keep it from playing. */
static bool alarm_due(struct instance *inst, struct command *cmd)
{
    if (inst->alarm.phase != ALARM_ARMED)
        return false;
    command_fail(cmd, "busy", "an alarm call is being dialled; its file plays when it is answered");
    return true;
}

void cmd_audio_play(struct instance *inst, struct command *cmd, struct route_req *req)
{
    const struct json_audio_play *p = &req->play;

    if (alarm_due(inst, cmd))
        return;

    if (p->to_call && !call_active(inst)) {
        command_fail(cmd, "no_call", "'to_call' needs an active call");
        return;
    }
    audio_play(inst->audio, p->file, p->repeat, p->to_call, mark_started, audio_cmd_done, cmd);
}

void cmd_audio_stop(struct instance *inst, struct command *cmd, struct route_req *req)
{
    (void)req;
    audio_stop(inst->audio, audio_cmd_done, cmd);
}

void cmd_audio_record(struct instance *inst, struct command *cmd, struct route_req *req)
{
    if (alarm_due(inst, cmd))
        return;
    audio_record(inst->audio, req->record.file, req->record.seconds, call_active(inst),
                 mark_started, audio_cmd_done, cmd);
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

/* Its phases, all changed here:
 *   none --dial answered OK--> armed --call active--> starting
 *   starting --AT+CCMXPLAY OK, playing--> playing --audio idle--> ending
 *   starting --refused, or over before its OK--> ending
 *   ending --ALARM_HANGUP_DELAY_MS--> AT+CHUP of its own call --> none
 *   any --call ended--> none
 * The module ends a playback into a call that ends by itself: no stop is
 * written then (the call's trailing NO CARRIER would answer it). Ending
 * outlives a lost modem link: the call may still be up when the modem is
 * back, and is hung up then (what the module played meanwhile is not
 * known). */

/* The module may report the playback's end just before the call's own end
 * (the far end hung up as it ended): an AT+CHUP then would meet the call's
 * trailing NO CARRIER. A moment's wait lets that end arrive first. */
#define ALARM_HANGUP_DELAY_MS 1000

static bool modem_ready(const struct instance *inst)
{
    return modem_state(inst->modem) == MODEM_READY;
}

static void alarm_hung_up(void *ctx, const struct m2m_error *err)
{
    struct instance *inst = ctx;

    if (inst->alarm.phase != ALARM_ENDING)
        return;   /* the call ended (and a new alarm may be armed) */
    if (err && strcmp(err->code, "unavailable") == 0) {
        log_warn("alarm: the hang-up waits for the modem: %s", err->message);
        return;   /* cmd_audio_modem_ready tries again */
    }
    if (err)
        log_warn("alarm: the hang-up after the playback failed: %s", err->message);
    inst->alarm.phase = ALARM_NONE;
}

/* Only the alarm's own call: checked again when AT+CHUP is written. */
static void alarm_hang_up(struct instance *inst)
{
    log_info("alarm: played; hanging up");
    call_hangup_seq(inst->call, inst->alarm.call_seq, alarm_hung_up, inst);
}

static int64_t alarm_delay_over(void *ctx)
{
    struct instance *inst = ctx;

    inst->alarm.end_timer = 0;
    alarm_hang_up(inst);
    return 0;
}

static void alarm_stop_timer(struct instance *inst)
{
    if (inst->alarm.end_timer)
        loop_cancel_timer(inst->loop, inst->alarm.end_timer);
    inst->alarm.end_timer = 0;
}

/* The playback is over (played, or it could not play): the call ends
 * unless it was asked to stay, a moment later or, with the modem away,
 * once it is back. */
static void alarm_over(struct instance *inst)
{
    if (!inst->alarm.spec.hangup) {
        inst->alarm.phase = ALARM_NONE;
        return;
    }
    inst->alarm.phase = ALARM_ENDING;
    if (!modem_ready(inst))
        log_warn("alarm: the modem went away during the playback; its call is hung up "
                 "once the modem is back");
    else if (loop_add_timer(inst->loop, ALARM_HANGUP_DELAY_MS, alarm_delay_over, inst,
                            &inst->alarm.end_timer) < 0)
        alarm_hang_up(inst);
}

static void alarm_started(void *ctx, const struct m2m_error *err)
{
    struct instance *inst = ctx;

    if (inst->alarm.phase != ALARM_STARTING)
        return;   /* the call ended meanwhile, and with it the playback */
    if (err) {
        char msg[sizeof(inst->alarm.spec.file) + sizeof(err->message) + 32];
        snprintf(msg, sizeof(msg), "the alarm %s could not play: %s", inst->alarm.spec.file,
                 err->message);
        log_warn("alarm: %s", msg);
        events_error(inst, err->code, msg);
        alarm_over(inst);
    } else if (audio_get_state(inst->audio)->state == AUDIO_PLAYING) {
        inst->alarm.phase = ALARM_PLAYING;
    } else {
        alarm_over(inst);   /* so short it was over before its OK */
    }
}

static void alarm_start(struct instance *inst)
{
    const struct alarm_spec *sp = &inst->alarm.spec;

    log_info("alarm: playing %s %d time(s) into the call", sp->file, sp->repeat);
    inst->alarm.phase = ALARM_STARTING;
    audio_play(inst->audio, sp->file, sp->repeat, true, NULL, alarm_started, inst);
}

void cmd_audio_alarm_arm(struct instance *inst, const struct alarm_spec *spec)
{
    const struct call_state *st = call_get_state(inst->call);

    /* The dialled call may have failed before its ATD was answered. */
    if (!st || st->state == CALL_IDLE)
        return;
    inst->alarm.spec = *spec;
    inst->alarm.phase = ALARM_ARMED;
    inst->alarm.call_seq = st->seq;
    if (st->state == CALL_ACTIVE)
        alarm_start(inst);
}

void cmd_audio_call_state(struct instance *inst, const struct call_state *st)
{
    if (st->state == CALL_ACTIVE && inst->alarm.phase == ALARM_ARMED)
        alarm_start(inst);
    else if (st->state == CALL_IDLE) {
        alarm_stop_timer(inst);
        inst->alarm.phase = ALARM_NONE;
    }
}

void cmd_audio_modem_ready(struct instance *inst, bool ready)
{
    /* The hang-up waits for the modem; then the AT+CLCC of the ready (it
     * goes first) tells whether the alarm's call is still up. */
    alarm_stop_timer(inst);
    if (ready && inst->alarm.phase == ALARM_ENDING)
        alarm_hang_up(inst);
}

void cmd_audio_close(struct instance *inst)
{
    alarm_stop_timer(inst);
}

static void on_audio_state(void *ctx, const struct audio_state *st)
{
    struct instance *inst = ctx;

    log_info("audio: %s%s%s", audio_st_name(st->state), st->file[0] ? " " : "", st->file);
    events_audio_state(inst, st);
    /* B/call/state "playing": whatever plays into the call, an alarm or
     * B/audio/play with "to_call". */
    call_set_playing(inst->call, st->state == AUDIO_PLAYING && st->to_call);
    if (st->state == AUDIO_IDLE && inst->alarm.phase == ALARM_PLAYING)
        alarm_over(inst);
}

int cmd_audio_open(struct instance *inst)
{
    const struct audio_cbs cbs = { .state = on_audio_state };

    inst->audio = audio_new(inst->loop, inst->modem, &cbs, inst);
    return inst->audio ? 0 : -ENOMEM;
}
