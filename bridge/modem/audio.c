/* Audio service: the state, play, stop and record. See audio.h; the file
 * system (upload, list) is audio_fs.c's.
 *
 * A7670 facts the service relies on (SIMCom A76XX AT manual, audio
 * chapter, and published captures):
 * - AT+CCMXPLAY="<file>",<play_path>,<repeat> answers OK, then
 *   "+AUDIOSTATE: audio play" and, when the last repetition is over or
 *   AT+CCMXSTOP stopped it, "+AUDIOSTATE: audio play stop". play_path 0 is
 *   the speaker, 1 the call's uplink (the far end hears it); repeat counts
 *   the repetitions after the first. WAV files go through
 *   AT+CCMXPLAYWAV / AT+CCMXSTOPWAV with "+WAVSTATE: wav play [stop]".
 * - AT+CREC=<path>,"<file>" answers "+CREC: 1" and OK; AT+CREC=0 answers
 *   "+CREC: 0", OK, then "+RECSTATE: crec stop" (ERROR when nothing
 *   records). A recording runs on after the host is gone, until the
 *   flash is full.
 * - A call that ends ends a playback into it ("+AUDIOSTATE: audio play
 *   stop"), by itself.
 * - An unknown file is refused (ERROR or +CME ERROR) before any URC. */
#include "modem/audio_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"

#define PATH_SPEAKER 0
#define PATH_CALL 1
#define REC_PATH_MIC 1
#define REC_PATH_CALL 3           /* both sides of the call */

/* REQ_REC_CLEAR: the AT+CREC=0 at modem ready, for a recording that a
 * bridge before this one started (ERROR when there is none). */
enum req_kind { REQ_PLAY, REQ_STOP, REQ_RECORD, REQ_REC_END, REQ_REC_CLEAR };

struct req {
    struct audio *a;
    enum req_kind kind;
    char file[AUDIO_FILE_MAX];
    bool to_call;
    int seconds;
    audio_done_cb cb;             /* NULL: nobody waits (the recording's end) */
    audio_written_cb written;     /* may be NULL; with ctx */
    void *ctx;
};

const char *audio_st_name(enum audio_st st)
{
    switch (st) {
    case AUDIO_PLAYING: return "playing";
    case AUDIO_RECORDING: return "recording";
    case AUDIO_IDLE:
    default: return "idle";
    }
}

/* --- pure ---------------------------------------------------------------------- */

bool audio_file_valid(const char *file)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";
    size_t n;

    if (!file || strncasecmp(file, "c:/", 3) != 0)
        return false;
    file += 3;
    n = strlen(file);
    /* The dot inside: the module tells the format by the extension, and
     * AT+FSLS lists names as bare lines, where "RING" or "OK" would read
     * as the module's own. */
    return n >= 1 && n <= AUDIO_NAME_MAX && strspn(file, set) == n && file[0] != '.' &&
           file[n - 1] != '.' && strchr(file, '.');
}

bool audio_file_is_wav(const char *file)
{
    size_t n = file ? strlen(file) : 0;

    return n >= 4 && strcasecmp(file + n - 4, ".wav") == 0;
}

int audio_parse_urc(const char *line, enum audio_urc *out)
{
    static const struct {
        const char *prefix, *text;
        enum audio_urc urc;
    } known[] = {
        { "+AUDIOSTATE:", "audio play", AUDIO_URC_PLAY },
        { "+AUDIOSTATE:", "audio play stop", AUDIO_URC_PLAY_STOP },
        { "+WAVSTATE:", "wav play", AUDIO_URC_PLAY },
        { "+WAVSTATE:", "wav play stop", AUDIO_URC_PLAY_STOP },
        { "+RECSTATE:", "crec stop", AUDIO_URC_REC_STOP },
    };

    if (!line)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        size_t n = strlen(known[i].prefix);
        const char *p = line + n;

        if (strncmp(line, known[i].prefix, n) != 0)
            continue;
        p += strspn(p, " ");
        if (strcmp(p, known[i].text) == 0) {
            *out = known[i].urc;
            return 0;
        }
    }
    return -EINVAL;
}

/* --- the state ------------------------------------------------------------------ */

static void announce(struct audio *a)
{
    if (a->cbs.state)
        a->cbs.state(a->ctx, &a->st);
}

static void set_state(struct audio *a, enum audio_st st, const char *file, bool to_call)
{
    if (a->st.state == st && (!file || strcmp(a->st.file, file) == 0))
        return;
    log_debug("audio: %s -> %s", audio_st_name(a->st.state), audio_st_name(st));
    a->st.state = st;
    snprintf(a->st.file, sizeof(a->st.file), "%s", file ? file : "");
    a->st.to_call = st == AUDIO_PLAYING && to_call;
    announce(a);
}

/* Our recording is over: its end is due no more. (Not at not-ready: the
 * module may record on, audio_modem_ready.) */
static void rec_over(struct audio *a)
{
    if (a->rec_timer)
        loop_cancel_timer(a->loop, a->rec_timer);
    a->rec_timer = 0;
    if (a->st.state == AUDIO_RECORDING)
        set_state(a, AUDIO_IDLE, NULL, false);
}

static void urc_state(void *ctx, const char *const *lines, size_t n)
{
    struct audio *a = ctx;
    enum audio_urc u;

    (void)n;
    if (audio_parse_urc(lines[0], &u) < 0) {
        log_debug("audio: unknown state line '%s'", lines[0]);
        return;
    }
    switch (u) {
    case AUDIO_URC_PLAY:
        /* Ours was announced at its OK; a playback someone else started
         * (raw AT) is playing all the same, and stops with the command of
         * its kind. */
        if (a->st.state == AUDIO_IDLE && a->starting == AUDIO_IDLE) {
            a->wav = strncmp(lines[0], "+WAVSTATE:", 10) == 0;
            set_state(a, AUDIO_PLAYING, "", false);
        }
        break;
    case AUDIO_URC_PLAY_STOP:
        if (a->starting == AUDIO_PLAYING)
            a->stopped_early = true;
        else if (a->st.state == AUDIO_PLAYING)
            set_state(a, AUDIO_IDLE, NULL, false);
        break;
    case AUDIO_URC_REC_STOP:
        if (a->cleared)
            a->cleared = false;     /* the end of the recording before ours */
        else if (a->starting == AUDIO_RECORDING)
            a->stopped_early = true;
        else if (a->st.state == AUDIO_RECORDING)
            rec_over(a);
        break;
    default:
        break;
    }
}

static const struct at_urc audio_urcs[] = {
    { "+AUDIOSTATE:", 0, urc_state },
    { "+WAVSTATE:", 0, urc_state },
    { "+RECSTATE:", 0, urc_state },
};

/* --- commands -------------------------------------------------------------------- */

void audio_reject(audio_done_cb cb, void *ctx, const char *code, const char *msg)
{
    struct m2m_error err;

    m2m_error_set(&err, code, "%s", msg);
    cb(ctx, &err);
}

int audio_send(struct audio *a, const char *cmd, const struct at_cmd_opts *o, at_done_cb fn,
               void *req, struct m2m_error *err)
{
    int rc = modem_send(a->modem, cmd, o, fn, req);

    if (rc == 0)
        a->busy_reqs++;
    else
        m2m_error_from_send(err, rc);
    return rc;
}

/* A command of ours answered: the last one lets a freed service go. */
void audio_req_done(struct audio *a)
{
    a->busy_reqs--;
    if (a->freed && a->busy_reqs == 0)
        free(a);
}

static void stop_recording(struct audio *a);

static int64_t rec_timer_fired(void *ctx)
{
    struct audio *a = ctx;

    a->rec_timer = 0;
    log_info("audio: the recording's seconds are over");
    stop_recording(a);
    return 0;
}

/* What an answered command means for the state. */
static void req_effect(struct req *r, bool ok)
{
    struct audio *a = r->a;
    bool early = a->stopped_early;

    if (r->kind == REQ_PLAY || r->kind == REQ_RECORD) {
        a->starting = AUDIO_IDLE;
        a->stopped_early = false;
    }
    /* The stop URC of the recording before ours came ahead of the
     * clearing OK, or not at all: the next stop is this one's. */
    if (r->kind == REQ_RECORD)
        a->cleared = false;
    if (!ok || a->freed)
        return;
    switch (r->kind) {
    case REQ_PLAY:
        a->wav = audio_file_is_wav(r->file);
        if (!early)
            set_state(a, AUDIO_PLAYING, r->file, r->to_call);
        break;
    case REQ_RECORD:
        if (early)
            break;
        set_state(a, AUDIO_RECORDING, r->file, false);
        /* One from before a reconnect: the module took a new one, so
         * that one is over. */
        if (a->rec_timer)
            loop_cancel_timer(a->loop, a->rec_timer);
        loop_add_timer(a->loop, (int64_t)r->seconds * 1000, rec_timer_fired, a, &a->rec_timer);
        break;
    case REQ_STOP:
        /* The stop URC may not come (nothing was playing any more). */
        if (a->st.state == AUDIO_RECORDING)
            rec_over(a);
        set_state(a, AUDIO_IDLE, NULL, false);
        break;
    case REQ_REC_END:
        /* After a reconnect a playback may run meanwhile. */
        rec_over(a);
        break;
    case REQ_REC_CLEAR:
        log_info("audio: stopped a recording that ran before the modem was ready");
        a->cleared = true;
        break;
    default:
        break;
    }
}

/* AT+CREC=0 answers ERROR when nothing records: the recording it was to
 * end is over already (the flash ran full, the module restarted). */
static bool rec_was_over(const struct req *r, const struct at_response *rsp)
{
    bool rec_stop = r->kind == REQ_REC_END ||
                    (r->kind == REQ_STOP && r->a->st.state == AUDIO_RECORDING);

    if (!rec_stop || rsp->final != AT_FINAL_ERROR)
        return false;
    log_info("audio: nothing was recording any more (AT+CREC=0 answered ERROR)");
    return true;
}

static void req_done(void *ctx, const struct at_response *rsp)
{
    struct req *r = ctx;
    struct audio *a = r->a;
    struct m2m_error err;
    bool ok = rsp->final == AT_FINAL_OK || rec_was_over(r, rsp);

    req_effect(r, ok);
    if (!ok) {
        m2m_error_from_at(&err, rsp, NULL);
        if (r->kind == REQ_REC_END)
            log_warn("audio: stopping the recording failed: %s", err.message);
    }
    if (r->cb)
        r->cb(r->ctx, ok ? NULL : &err);
    free(r);
    audio_req_done(a);
}

/* A play or record's command is handed to the modem: from here it may
 * start. */
static void req_written(void *ctx)
{
    struct req *r = ctx;

    if (r->written)
        r->written(r->ctx);
}

static void submit(struct audio *a, struct req *proto, const char *cmd, audio_done_cb cb,
                   void *ctx)
{
    const struct at_cmd_opts o = { .written = req_written };
    struct req *r = malloc(sizeof(*r));
    struct m2m_error err;

    if (!r) {
        if (cb)
            audio_reject(cb, ctx, "unavailable", "out of memory");
        return;
    }
    *r = *proto;
    r->a = a;
    r->cb = cb;
    r->ctx = ctx;
    if (audio_send(a, cmd, &o, req_done, r, &err) < 0) {
        free(r);
        if (cb)
            cb(ctx, &err);
        return;
    }
    if (r->kind == REQ_PLAY || r->kind == REQ_RECORD)
        a->starting = r->kind == REQ_PLAY ? AUDIO_PLAYING : AUDIO_RECORDING;
}

static bool check_free(struct audio *a, audio_done_cb cb, void *ctx)
{
    if (!a->ready) {
        audio_reject(cb, ctx, "unavailable", "the modem is not ready");
        return false;
    }
    if (a->starting != AUDIO_IDLE || a->st.state != AUDIO_IDLE) {
        audio_reject(cb, ctx, "busy", a->st.state == AUDIO_RECORDING
                                          ? "a recording is running"
                                          : "a playback is running");
        return false;
    }
    return true;
}

void audio_play(struct audio *a, const char *file, int repeat, bool to_call,
                audio_written_cb written, audio_done_cb cb, void *ctx)
{
    struct req proto = { .kind = REQ_PLAY, .to_call = to_call, .written = written };
    char cmd[AUDIO_FILE_MAX + 40];

    /* The name goes inside quotes: its set cannot close them. */
    if (!audio_file_valid(file)) {
        audio_reject(cb, ctx, "invalid_request", AUDIO_FILE_RULE);
        return;
    }
    if (repeat < 1 || repeat > AUDIO_REPEAT_MAX) {
        audio_reject(cb, ctx, "invalid_request", "'repeat' must be 1-10");
        return;
    }
    if (!check_free(a, cb, ctx))
        return;
    snprintf(proto.file, sizeof(proto.file), "%s", file);
    snprintf(cmd, sizeof(cmd), "AT+CCMXPLAY%s=\"%s\",%d,%d", audio_file_is_wav(file) ? "WAV" : "",
             file, to_call ? PATH_CALL : PATH_SPEAKER, repeat - 1);
    submit(a, &proto, cmd, cb, ctx);
}

static void stop_recording(struct audio *a)
{
    struct req proto = { .kind = REQ_REC_END };

    submit(a, &proto, "AT+CREC=0", NULL, NULL);
}

void audio_stop(struct audio *a, audio_done_cb cb, void *ctx)
{
    struct req proto = { .kind = REQ_STOP };

    if (!a->ready) {
        audio_reject(cb, ctx, "unavailable", "the modem is not ready");
        return;
    }
    if (a->starting != AUDIO_IDLE) {
        audio_reject(cb, ctx, "busy", "a playback or recording is starting; stop it once it runs");
        return;
    }
    switch (a->st.state) {
    case AUDIO_PLAYING:
        submit(a, &proto, a->wav ? "AT+CCMXSTOPWAV" : "AT+CCMXSTOP", cb, ctx);
        break;
    case AUDIO_RECORDING:
        submit(a, &proto, "AT+CREC=0", cb, ctx);
        break;
    case AUDIO_IDLE:
    default:
        cb(ctx, NULL);    /* nothing runs: what was asked is true */
        break;
    }
}

void audio_record(struct audio *a, const char *file, int seconds, bool in_call,
                  audio_written_cb written, audio_done_cb cb, void *ctx)
{
    struct req proto = { .kind = REQ_RECORD, .seconds = seconds, .written = written };
    char cmd[AUDIO_FILE_MAX + 24];

    if (!audio_file_valid(file) || !audio_file_is_wav(file)) {
        audio_reject(cb, ctx, "invalid_request", AUDIO_FILE_RULE " and end in .wav");
        return;
    }
    if (seconds < 1 || seconds > AUDIO_RECORD_MAX_S) {
        audio_reject(cb, ctx, "invalid_request", "'seconds' must be 1-600");
        return;
    }
    if (!check_free(a, cb, ctx))
        return;
    snprintf(proto.file, sizeof(proto.file), "%s", file);
    snprintf(cmd, sizeof(cmd), "AT+CREC=%d,\"%s\"", in_call ? REC_PATH_CALL : REC_PATH_MIC,
             file);
    submit(a, &proto, cmd, cb, ctx);
}

/* --- life cycle ------------------------------------------------------------------ */

const struct audio_state *audio_get_state(const struct audio *a)
{
    return &a->st;
}

void audio_modem_ready(struct audio *a, bool ready)
{
    struct req clear = { .kind = REQ_REC_CLEAR };

    a->ready = ready;
    /* Both ways nothing plays any more that we know of: a (re)started
     * module is silent, and one that went away plays to nobody. */
    a->starting = AUDIO_IDLE;
    a->stopped_early = false;
    a->cleared = false;
    if (a->st.state != AUDIO_IDLE)
        set_state(a, AUDIO_IDLE, NULL, false);
    else if (ready)
        announce(a);
    /* But a recording of ours keeps its end (rec_timer): the module may
     * record on (the port only reopened), and AT+CREC=0 ends it when its
     * seconds are over (ERROR if the module restarted meanwhile). Without
     * one, the module may record with no end: a recording the bridge
     * before this process started, or one whose end came while the modem
     * was away. */
    if (ready && !a->rec_timer)
        submit(a, &clear, "AT+CREC=0", NULL, NULL);
}

struct audio *audio_new(struct loop *loop, struct modem *modem, const struct audio_cbs *cbs,
                        void *ctx)
{
    struct audio *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->loop = loop;
    a->modem = modem;
    a->cbs = *cbs;
    a->ctx = ctx;
    if (at_chat_add_urcs(modem_chat(modem), audio_urcs, sizeof(audio_urcs) / sizeof(audio_urcs[0]),
                         a) < 0) {
        free(a);
        return NULL;
    }
    return a;
}

void audio_free(struct audio *a)
{
    if (!a)
        return;
    if (a->rec_timer)
        loop_cancel_timer(a->loop, a->rec_timer);
    a->rec_timer = 0;
    a->freed = true;
    if (a->busy_reqs == 0)
        free(a);
}
