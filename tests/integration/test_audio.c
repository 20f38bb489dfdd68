/* Integration: audio through mosquitto, the bridge and the simulator: the
 * voice alarm of B/call/dial with "play" (AT+CCMXPLAY into the call,
 * "playing" in B/call/state, the hang-up after it), B/audio/play, stop,
 * record, upload (raw bytes after the AT+CFTRANRX prompt, byte-exact in
 * the simulator's file) and list, and B/audio/state. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mqtt/json.h"

#define TO "+4917012345678"
/* A few bytes of an AMR file: the simulator only needs the file to exist. */
#define AMR_HEX "2321414D520A3C"

static const struct h_env_opts default_opts = { 0 };

/* ---- helpers ---- */

/* Takes B/<suffix> messages until one has string key == value and the
 * boolean "playing" (call/state; -1: any) as wanted. */
#define wait_where(e, suffix, key, value, playing) \
    wait_where_at(__FILE__, __LINE__, (e), (suffix), (key), (value), (playing))
static cJSON *wait_where_at(const char *file, int line, struct h_env *e, const char *suffix,
                            const char *key, const char *value, int playing)
{
    char t[160];
    snprintf(t, sizeof t, "%s/%s", e->base, suffix);
    for (;;) {
        cJSON *s = h_mqtt_wait_json_where_at(file, line, &e->mqtt, t, key, value,
                                             H_TIMEOUT_MS * 2);
        if (playing < 0 || h_json_bool_at(file, line, s, "playing") == (playing == 1))
            return s;
        cJSON_Delete(s);
    }
}

/* The next B/audio/state with this state; file NULL: must be null. */
#define expect_audio(e, st, file) expect_audio_at(__FILE__, __LINE__, (e), (st), (file))
static void expect_audio_at(const char *file_, int line, struct h_env *e, const char *st,
                            const char *file)
{
    cJSON *s = wait_where_at(file_, line, e, "audio/state", "state", st, -1);
    if (file)
        h_json_str_eq_at(file_, line, s, "file", file);
    else if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "file")))
        h_fail_at(file_, line, "audio/state \"file\" should be null");
    cJSON_Delete(s);
}

/* Bridge, broker and simulator up, c:/alarm.amr on the module, and a
 * repetition of a playback play_ms long. */
static void up_with_alarm(struct h_env *e, int play_ms)
{
    char cmd[64];
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "file-put c:/alarm.amr " AMR_HEX, NULL, 0);
    snprintf(cmd, sizeof cmd, "play-ms %d", play_ms);
    h_sim_cmd_ok(&e->sim, cmd, NULL, 0);
}

/* Something that reaches the modem, answered: every command line written
 * before it has reached the simulator by then. */
static void line_in_step(struct h_env *e)
{
    h_command(e, "audio/list", "{}");
    h_expect_ok(e, "audio/list");
    h_sim_wait_line(&e->sim, "rx AT+FSLS=2", NULL, 0, H_TIMEOUT_MS);
}

/* The bridge hung up after the alarm: AT+CHUP, and the call idle. */
#define expect_hung_up(e) expect_hung_up_at(__FILE__, __LINE__, (e))
static void expect_hung_up_at(const char *file, int line, struct h_env *e)
{
    h_sim_wait_line_at(file, line, &e->sim, "rx AT+CHUP", NULL, 0, H_TIMEOUT_MS);
    cJSON *s = wait_where_at(file, line, e, "call/state", "state", "idle", 0);
    h_json_str_eq_at(file, line, s, "ended_reason", "hangup");
    cJSON_Delete(s);
}

/* ---- the voice alarm ---- */

static void test_alarm_plays_then_hangs_up(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 300);
    h_command(e, "call/dial", "{\"id\":7,\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"repeat\":3}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    /* <repeat> counts the repetitions after the first. */
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAY=\"c:/alarm.amr\",1,2", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "play c:/alarm.amr path 1 times 3", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    expect_audio(e, "playing", "c:/alarm.amr");
    h_sim_wait_line(&e->sim, "play-stop c:/alarm.amr", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    expect_audio(e, "idle", NULL);
    expect_hung_up(e);
    H_PASS(e);
}

static void test_alarm_hangup_false_keeps_the_call(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 200);
    h_command(e, "call/dial",
            "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"hangup\":false}");
    h_expect_ok(e, "call/dial");
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAY=\"c:/alarm.amr\",1,0", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_sim_wait_line(&e->sim, "play-stop c:/alarm.amr", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    expect_audio(e, "idle", NULL);
    /* Still up: DTMF goes out, and no AT+CHUP went before it. */
    h_command(e, "call/dtmf", "{\"digits\":\"1\"}");
    h_expect_ok(e, "call/dtmf");
    if (h_sim_saw(&e->sim, "rx AT+CHUP"))
        h_fail("the bridge hung up although \"hangup\":false");
    h_command(e, "call/hangup", "{}");
    h_expect_ok(e, "call/hangup");
    cJSON_Delete(wait_where(e, "call/state", "state", "idle", 0));
    H_PASS(e);
}

static void test_alarm_far_end_hangs_up_mid_play(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 5000);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"repeat\":10}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    expect_audio(e, "playing", "c:/alarm.amr");
    int resyncs = h_bridge_log_count(&e->bridge, "resynchronising");
    h_sim_cmd_ok(&e->sim, "remote-hangup", NULL, 0);
    cJSON *s = wait_where(e, "call/state", "state", "idle", 0);
    h_json_str_eq(s, "ended_reason", "hangup");
    cJSON_Delete(s);
    expect_audio(e, "idle", NULL);
    char reply[64];
    h_sim_cmd_ok(&e->sim, "audio", reply, sizeof reply);
    assert_string_equal(reply, "idle -");
    /* The module ends a playback into a call that ends: no stop command,
     * which the call's trailing NO CARRIER would have answered. */
    line_in_step(e);
    if (h_bridge_log_count(&e->bridge, "resynchronising") != resyncs ||
        h_bridge_log_count(&e->bridge, "stopping the playback"))
        h_fail("the line resynchronised after the far end hung up");
    if (h_sim_saw(&e->sim, "rx AT+CCMXSTOP"))
        h_fail("a stop went to the modem after the call ended");
    H_PASS(e);
}

/* A second dial while the alarm call is being dialled, and a third while
 * it plays, are refused as busy; the alarm still plays, and ends the
 * call. */
static void test_alarm_survives_a_second_dial(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 1000);
    h_sim_cmd_ok(&e->sim, "hang 0 late", NULL, 0);
    h_command(e, "call/dial",
            "{\"id\":1,\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"repeat\":2}");
    h_command(e, "call/dial", "{\"id\":2,\"to\":\"" TO "\",\"play\":\"c:/other.amr\"}");
    cJSON *r = h_result(e, "call/dial");
    h_json_int_eq(r, "id", 2);
    h_json_str_eq(h_json_obj(r, "error"), "code", "busy");
    cJSON_Delete(r);
    h_sim_cmd_ok(&e->sim, "unhang", NULL, 0);
    r = h_result(e, "call/dial");
    h_json_int_eq(r, "id", 1);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_command(e, "call/dial", "{\"id\":3,\"to\":\"" TO "\"}");
    r = h_result(e, "call/dial");
    h_json_int_eq(r, "id", 3);
    h_json_str_eq(h_json_obj(r, "error"), "code", "busy");
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "play-stop c:/alarm.amr", NULL, 0, H_TIMEOUT_MS);
    expect_hung_up(e);
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CCMXPLAY"), 1);
    H_PASS(e);
}

/* A file so short that the module reports its end before the OK of
 * AT+CCMXPLAY: the alarm is over all the same, and the call ends. */
static void test_alarm_over_before_its_ok(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\"}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    h_sim_wait_line(&e->sim, "play-stop c:/alarm.amr", NULL, 0, H_TIMEOUT_MS);
    expect_hung_up(e);
    H_PASS(e);
}

/* The alarm's AT+CHUP waits behind a network scan; meanwhile the far end
 * hangs up and a new call rings in: the hang-up was for the alarm's call
 * only, and is dropped unwritten. The new call still rings. */
static void test_alarm_hangup_spares_the_next_call(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 300);
    h_sim_cmd_ok(&e->sim, "scan-ms 4000", NULL, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"repeat\":3}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_command(e, "network/scan", "{}");
    h_sim_wait_line(&e->sim, "rx AT+COPS=?", NULL, 0, H_TIMEOUT_MS);
    h_bridge_wait_log(&e->bridge, "alarm: played; hanging up", 1, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "remote-hangup", NULL, 0);
    cJSON_Delete(wait_where(e, "call/state", "state", "idle", 0));
    h_sim_cmd_ok(&e->sim, "ring +4917099999", NULL, 0);
    cJSON_Delete(wait_where(e, "call/state", "state", "ringing", -1));
    /* The far end's NO CARRIER may have ended the scan: any result. */
    cJSON_Delete(h_result(e, "network/scan"));
    h_sim_wait_line(&e->sim, "scan done", NULL, 0, h_ms(10000));
    line_in_step(e);
    char reply[128];
    h_sim_cmd_ok(&e->sim, "call", reply, sizeof reply);
    assert_string_equal(reply, "incoming in +4917099999");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CHUP"), 0);
    assert_int_equal(h_bridge_log_count(&e->bridge, "AT+CHUP: dropped, no longer wanted"), 1);
    H_PASS(e);
}

/* The modem link is lost while the alarm plays; the module keeps the call.
 * Once the modem is back the call is hung up. */
static void test_alarm_link_lost_hangs_up_when_back(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"modem\":{\"status_interval\":5,\"command_timeout_ms\":1000}",
    };
    h_env_up(e, &o);
    h_sim_cmd_ok(&e->sim, "file-put c:/alarm.amr " AMR_HEX, NULL, 0);
    h_sim_cmd_ok(&e->sim, "play-ms 5000", NULL, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\",\"repeat\":10}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_sim_cmd_ok(&e->sim, "hang 0", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                        h_ms(60000)));
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CHUP"), 0);
    h_sim_cmd_ok(&e->sim, "unhang", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", h_ms(90000)));
    expect_hung_up(e);
    char reply[128];
    h_sim_cmd_ok(&e->sim, "call", reply, sizeof reply);
    assert_string_equal(reply, "idle - -");
    H_PASS(e);
}

/* A speaker playback asked for while the alarm call is being dialled is
 * refused: the alarm's file plays once the call is answered, then the
 * bridge hangs up (not at the answer). */
static void test_play_refused_while_the_alarm_dials(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 300);
    h_sim_cmd_ok(&e->sim, "answer-ms 2000", NULL, 0);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\"}");
    h_expect_ok(e, "call/dial");
    h_command(e, "audio/play", "{\"file\":\"c:/alarm.amr\"}");
    h_expect_error(e, "audio/play", "busy", "alarm");
    h_command(e, "audio/record", "{\"file\":\"c:/rec.wav\",\"seconds\":5}");
    h_expect_error(e, "audio/record", "busy", "alarm");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_sim_wait_line(&e->sim, "play-stop c:/alarm.amr", NULL, 0, H_TIMEOUT_MS);
    expect_hung_up(e);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CCMXPLAY"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CREC=1"), 0);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CREC=3"), 0);
    H_PASS(e);
}

/* The far end hangs up just as the playback ends (the module reports the
 * playback's end first): the bridge waits a moment before its hang-up,
 * sees the call end, and writes no AT+CHUP for the trailing NO CARRIER to
 * answer. */
static void test_alarm_far_end_hangs_up_as_it_ends(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 300);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/alarm.amr\"}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    int resyncs = h_bridge_log_count(&e->bridge, "resynchronising");
    expect_audio(e, "playing", "c:/alarm.amr");
    expect_audio(e, "idle", NULL);   /* the bridge has seen the playback's end */
    h_sim_cmd_ok(&e->sim, "remote-hangup", NULL, 0);
    cJSON *s = wait_where(e, "call/state", "state", "idle", 0);
    h_json_str_eq(s, "ended_reason", "hangup");
    cJSON_Delete(s);
    line_in_step(e);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CHUP"), 0);
    assert_int_equal(h_bridge_log_count(&e->bridge, "resynchronising"), resyncs);
    H_PASS(e);
}

static void test_alarm_invalid_writes_nothing(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/../x.amr\"}");
    h_expect_error(e, "call/dial", "invalid_request", "'play'");
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"c:/a.amr\",\"repeat\":11}");
    h_expect_error(e, "call/dial", "invalid_request", "'repeat'");
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"play\":\"d:/a.amr\"}");
    h_expect_error(e, "call/dial", "invalid_request", "'play'");
    h_command(e, "call/dial", "{\"to\":\"" TO "\",\"repeat\":2}");
    h_expect_error(e, "call/dial", "invalid_request", "'play'");
    line_in_step(e);
    if (h_sim_saw(&e->sim, "rx ATD"))
        h_fail("a refused dial reached the modem");
    H_PASS(e);
}

/* ---- B/audio/... ---- */

static void test_play_stop_busy_no_call(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "file-put c:/x.mp3 " AMR_HEX, NULL, 0);
    h_sim_cmd_ok(&e->sim, "play-ms 10000", NULL, 0);
    expect_audio(e, "idle", NULL);   /* retained, at the start */
    h_command(e, "audio/play", "{\"file\":\"c:/x.mp3\",\"repeat\":2}");
    h_expect_ok(e, "audio/play");
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAY=\"c:/x.mp3\",0,1", NULL, 0, H_TIMEOUT_MS);
    expect_audio(e, "playing", "c:/x.mp3");
    char t[160];
    snprintf(t, sizeof t, "%s/audio/state", e->base);
    cJSON *late = h_retained_json(e, t);
    h_json_str_eq(late, "state", "playing");
    cJSON_Delete(late);
    h_command(e, "audio/play", "{\"file\":\"c:/x.mp3\"}");
    h_expect_error(e, "audio/play", "busy", NULL);
    h_command(e, "audio/record", "{\"file\":\"c:/r.wav\",\"seconds\":5}");
    h_expect_error(e, "audio/record", "busy", NULL);
    h_command(e, "audio/stop", "{}");
    h_expect_ok(e, "audio/stop");
    h_sim_wait_line(&e->sim, "rx AT+CCMXSTOP", NULL, 0, H_TIMEOUT_MS);
    expect_audio(e, "idle", NULL);
    h_command(e, "audio/play", "{\"file\":\"c:/x.mp3\",\"to_call\":true}");
    h_expect_error(e, "audio/play", "no_call", NULL);
    h_command(e, "audio/play", "{\"file\":\"c:/missing.amr\"}");
    h_expect_error(e, "audio/play", "modem_error", NULL);
    h_command(e, "audio/play", "{\"file\":\"c:/x.mp3;AT\"}");
    h_expect_error(e, "audio/play", "invalid_request", "'file'");
    H_PASS(e);
}

/* B/audio/play into a call that is up: B/call/state says so too. */
static void test_play_into_call(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 10000);
    h_command(e, "call/dial", "{\"to\":\"" TO "\"}");
    h_expect_ok(e, "call/dial");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    h_command(e, "audio/play", "{\"file\":\"c:/alarm.amr\",\"to_call\":true}");
    h_expect_ok(e, "audio/play");
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAY=\"c:/alarm.amr\",1,0", NULL, 0, H_TIMEOUT_MS);
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 1));
    h_command(e, "audio/stop", "{}");
    h_expect_ok(e, "audio/stop");
    cJSON_Delete(wait_where(e, "call/state", "state", "active", 0));
    expect_audio(e, "idle", NULL);
    /* Not an alarm: the call stays up. */
    h_command(e, "call/hangup", "{}");
    h_expect_ok(e, "call/hangup");
    if (h_sim_saw(&e->sim, "rx AT+CHUP") != 1)
        h_fail("the bridge hung up after a B/audio/play");
    H_PASS(e);
}

static void test_play_wav_ends_by_itself(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "file-put C:/Tone.WAV 52494646", NULL, 0);
    h_sim_cmd_ok(&e->sim, "play-ms 200", NULL, 0);
    h_command(e, "audio/play", "{\"file\":\"C:/Tone.WAV\"}");
    h_expect_ok(e, "audio/play");
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAYWAV=\"C:/Tone.WAV\",0,0", NULL, 0, H_TIMEOUT_MS);
    expect_audio(e, "playing", "C:/Tone.WAV");
    expect_audio(e, "idle", NULL);
    H_PASS(e);
}

/* A recording the bridge started and then was restarted over (its stop
 * timer gone): the restarted bridge stops it, and a new one can start. */
static void test_record_stopped_after_restart(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_command(e, "audio/record", "{\"file\":\"c:/long.wav\",\"seconds\":600}");
    h_expect_ok(e, "audio/record");
    expect_audio(e, "recording", "c:/long.wav");
    h_bridge_stop(&e->bridge);
    h_env_start_bridge(e);
    h_sim_wait_line(&e->sim, "record-stop c:/long.wav", NULL, 0, H_TIMEOUT_MS);
    char reply[64];
    h_sim_cmd_ok(&e->sim, "audio", reply, sizeof reply);
    assert_string_equal(reply, "idle -");
    h_command(e, "audio/record", "{\"file\":\"c:/next.wav\",\"seconds\":1}");
    h_expect_ok(e, "audio/record");
    h_sim_wait_line(&e->sim, "record c:/next.wav", NULL, 0, H_TIMEOUT_MS);
    H_PASS(e);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The modem away and back (modem/power min, then full) in the middle of
 * a recording: the bridge ends it after its seconds, not at the ready. */
static void test_record_outlives_power_min(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_command(e, "audio/record", "{\"file\":\"c:/keep.wav\",\"seconds\":5}");
    h_expect_ok(e, "audio/record");
    int64_t started = mono_ms();
    expect_audio(e, "recording", "c:/keep.wav");
    h_command(e, "modem/power", "{\"mode\":\"min\"}");
    h_expect_ok(e, "modem/power");
    h_command(e, "modem/power", "{\"mode\":\"full\"}");
    h_expect_ok(e, "modem/power");
    h_sim_wait_line(&e->sim, "record-stop c:/keep.wav", NULL, 0, H_TIMEOUT_MS);
    int64_t after = mono_ms() - started;
    if (after < 4500)
        fail_msg("the recording stopped %lld ms after it started, not after its 5 s",
                 (long long)after);
    H_PASS(e);
}

static void test_record_stops_itself(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_command(e, "audio/record", "{\"file\":\"c:/rec.wav\",\"seconds\":1}");
    h_expect_ok(e, "audio/record");
    h_sim_wait_line(&e->sim, "rx AT+CREC=1,\"c:/rec.wav\"", NULL, 0, H_TIMEOUT_MS);
    expect_audio(e, "recording", "c:/rec.wav");
    h_sim_wait_line(&e->sim, "rx AT+CREC=0", NULL, 0, H_TIMEOUT_MS);
    expect_audio(e, "idle", NULL);
    h_command(e, "audio/record", "{\"file\":\"c:/rec.amr\",\"seconds\":1}");
    h_expect_error(e, "audio/record", "invalid_request", "'file'");
    h_command(e, "audio/record", "{\"file\":\"c:/rec.wav\",\"seconds\":601}");
    h_expect_error(e, "audio/record", "invalid_request", "'seconds'");
    H_PASS(e);
}

/* 100000 bytes: ten chunks (and a payload beyond the 64 KiB of other
 * commands), with every byte the serial line could take for
 * something else (CR, LF, NUL, '>', Ctrl-Z, ESC). */
static void blob(uint8_t *b, size_t n)
{
    static const uint8_t tricky[] = { '\r', '\n', 0, '>', 0x1A, 0x1B, '\r', '\n', 'O', 'K',
                                      '\r', '\n' };
    for (size_t i = 0; i < n; i++)
        b[i] = i < sizeof tricky ? tricky[i] : (uint8_t)(i * 7 + 3);
}

static void test_upload_byte_exact_and_list(void **state)
{
    struct h_env *e = *state;
    enum { N = 100000 };
    static uint8_t data[N];
    h_env_up(e, &default_opts);
    blob(data, N);
    char *b64 = json_base64_encode(data, N);
    char *payload = malloc(strlen(b64) + 64);
    assert_non_null(payload);
    sprintf(payload, "{\"file\":\"c:/blob.amr\",\"data\":\"%s\"}", b64);
    h_command(e, "audio/upload", payload);
    free(payload);
    free(b64);
    h_expect_ok(e, "audio/upload");
    h_sim_wait_line(&e->sim, "rx AT+FSDEL=\"c:/blob.amr\"", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "rx AT+CFTRANRX=\"c:/blob.amr\",10240", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "rx AT+CFTRANRX=\"c:/blob.amr\",10240,0,10240", NULL, 0,
                    H_TIMEOUT_MS);
    h_sim_wait_line(&e->sim, "rx AT+CFTRANRX=\"c:/blob.amr\",7840,0,92160", NULL, 0,
                    H_TIMEOUT_MS);

    static char reply[2 * N + 64], want[2 * N + 1];
    /* h_sim_cmd: h_sim_cmd_ok keeps only the first KiB of the reply. */
    assert_int_equal(h_sim_cmd(&e->sim, "file c:/blob.amr", reply, sizeof reply), 0);
    for (size_t i = 0; i < N; i++)
        sprintf(want + 2 * i, "%02X", data[i]);
    if (strncmp(reply, "100000 ", 7) != 0 || strcmp(reply + 7, want) != 0)
        h_fail("the simulator's file differs from the upload (%.40s...)", reply);

    /* Again: the old file is deleted first, so it is replaced. */
    h_command(e, "audio/upload", "{\"file\":\"c:/blob.amr\",\"data\":\"AAEC\"}");
    h_expect_ok(e, "audio/upload");
    h_sim_cmd_ok(&e->sim, "file c:/blob.amr", reply, sizeof reply);
    assert_string_equal(reply, "3 000102");

    h_command(e, "audio/list", "{\"id\":\"l\"}");
    cJSON *r = h_result(e, "audio/list");
    h_json_bool_eq(r, "ok", true);
    const cJSON *files = h_json_arr(r, "files");
    assert_int_equal(cJSON_GetArraySize(files), 1);
    h_json_str_eq(cJSON_GetArrayItem(files, 0), "name", "c:/blob.amr");
    h_json_int_eq(cJSON_GetArrayItem(files, 0), "size", 3);
    cJSON_Delete(r);
    H_PASS(e);
}

/* The file that plays cannot be replaced: refused before AT+FSDEL, with
 * the reason. */
static void test_upload_of_the_playing_file_refused(void **state)
{
    struct h_env *e = *state;
    up_with_alarm(e, 10000);
    h_command(e, "audio/play", "{\"file\":\"c:/alarm.amr\"}");
    h_expect_ok(e, "audio/play");
    expect_audio(e, "playing", "c:/alarm.amr");
    h_command(e, "audio/upload", "{\"file\":\"C:/ALARM.amr\",\"data\":\"AAEC\"}");
    h_expect_error(e, "audio/upload", "busy", "plays");
    line_in_step(e);
    if (h_sim_saw(&e->sim, "rx AT+FSDEL"))
        h_fail("the upload of the playing file reached the modem");
    H_PASS(e);
}

static void test_upload_invalid_writes_nothing(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_command(e, "audio/upload", "{\"file\":\"c:/a b.amr\",\"data\":\"AAEC\"}");
    h_expect_error(e, "audio/upload", "invalid_request", "'file'");
    h_command(e, "audio/upload", "{\"file\":\"c:/..\",\"data\":\"AAEC\"}");
    h_expect_error(e, "audio/upload", "invalid_request", "'file'");
    h_command(e, "audio/upload", "{\"file\":\"c:/a.amr\",\"data\":\"AA=C\"}");
    h_expect_error(e, "audio/upload", "invalid_request", "'data'");
    h_command(e, "audio/upload", "{\"file\":\"c:/a.amr\",\"data\":\"\"}");
    h_expect_error(e, "audio/upload", "invalid_request", "'data'");
    /* 513 KiB decoded: too long, and so is a payload beyond 700 KiB. */
    enum { BIG = 513 * 1024 };
    uint8_t *big = calloc(1, BIG);
    assert_non_null(big);
    char *b64 = json_base64_encode(big, BIG);
    char *payload = h_strdupf("{\"file\":\"c:/a.amr\",\"data\":\"%s\"}", b64);
    h_command(e, "audio/upload", payload);
    h_expect_error(e, "audio/upload", "too_long", "'data'");
    free(payload);
    payload = h_strdupf("{\"file\":\"c:/a.amr\",\"data\":\"%s%s\"}", b64, b64);
    h_command(e, "audio/upload", payload);
    h_expect_error(e, "audio/upload", "too_long", NULL);
    free(payload);
    free(b64);
    free(big);
    line_in_step(e);
    if (h_sim_saw(&e->sim, "rx AT+FSDEL") || h_sim_saw(&e->sim, "rx AT+CFTRANRX"))
        h_fail("a refused upload reached the modem");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_alarm_plays_then_hangs_up),
        T(test_alarm_hangup_false_keeps_the_call),
        T(test_alarm_far_end_hangs_up_mid_play),
        T(test_alarm_survives_a_second_dial),
        T(test_alarm_over_before_its_ok),
        T(test_alarm_hangup_spares_the_next_call),
        T(test_alarm_link_lost_hangs_up_when_back),
        T(test_play_refused_while_the_alarm_dials),
        T(test_alarm_far_end_hangs_up_as_it_ends),
        T(test_alarm_invalid_writes_nothing),
        T(test_play_stop_busy_no_call),
        T(test_play_into_call),
        T(test_play_wav_ends_by_itself),
        T(test_record_stopped_after_restart),
        T(test_record_outlives_power_min),
        T(test_record_stops_itself),
        T(test_upload_byte_exact_and_list),
        T(test_upload_of_the_playing_file_refused),
        T(test_upload_invalid_writes_nothing),
    };
    return cmocka_run_group_tests_name("integration_audio", tests, NULL, NULL);
}
