/* Audio and the C:/ file system of the simulated A7670.
 *
 * Files live in memory (SIM_FS_FILES of them, lost at exit, kept across a
 * reboot like the module's flash). AT+CFTRANRX="<file>",<len>[,<reserved>,
 * <location>] prompts ("> ") and takes exactly <len> raw bytes (at most
 * SIM_FS_CHUNK_MAX); without <location> the file must not exist yet (the
 * module does not overwrite: AT+FSDEL first), with it the bytes go at
 * that offset of an existing file. AT+FSLS lists, AT+FSATTRI gives a
 * size, AT+FSDEL deletes, AT+FSCD only answers.
 *
 * Playback: AT+CCMXPLAY="<file>",<path>,<repeat> (path 0 speaker, 1 into
 * the call, which must be active) answers OK, then "+AUDIOSTATE: audio
 * play" and, after (repeat+1) x play_ms (`play-ms`), "+AUDIOSTATE: audio
 * play stop". AT+CCMXPLAYWAV/AT+CCMXSTOPWAV do the same for WAV files with
 * "+WAVSTATE: wav play [stop]". A call that ends stops a playback into it.
 * With play_ms 0 a playback is over before its OK: both URCs come first.
 * An unknown file, or a play while one runs: ERROR.
 *
 * Recording: AT+CREC=<path>,"<file>" ("+CREC: 1", OK; path 2/3 need an
 * active call), AT+CREC=0 ("+CREC: 0", OK, "+RECSTATE: crec stop"): the
 * file holds a 44-byte WAV header and 16000 bytes a second (8 kHz 16-bit
 * mono). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

#define DEFAULT_PLAY_MS 3000
#define WAV_HEADER 44
#define WAV_BYTES_PER_S 16000

static const char *const state_names[] = {
    [SIM_AUDIO_IDLE] = "idle", [SIM_AUDIO_PLAYING] = "playing",
    [SIM_AUDIO_RECORDING] = "recording",
};

/* ---- the file system ---- */

static struct sim_file *find_file(struct sim *s, const char *name)
{
    for (size_t i = 0; i < SIM_FS_FILES; i++)
        if (s->audio.files[i].used && strcasecmp(s->audio.files[i].name, name) == 0)
            return &s->audio.files[i];
    return NULL;
}

/* A name on C:/ ("c:/x" or "C:/x"), nothing else is simulated. */
static bool on_c(const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(name, "c:/", 3) == 0 && n > 3 && n < SIM_FS_NAME_MAX &&
           !strpbrk(name + 3, "/\\:*?\"<>|,;");
}

static struct sim_file *new_file(struct sim *s, const char *name)
{
    for (size_t i = 0; i < SIM_FS_FILES; i++) {
        struct sim_file *f = &s->audio.files[i];
        if (!f->used) {
            *f = (struct sim_file){ .used = true };
            /* on_c() kept the name short enough */
            if (snprintf(f->name, sizeof(f->name), "%s", name) >= (int)sizeof(f->name))
                *f = (struct sim_file){ 0 };
            return f->used ? f : NULL;
        }
    }
    return NULL;
}

static void delete_file(struct sim_file *f)
{
    free(f->data);
    *f = (struct sim_file){ 0 };
}

/* Writes len bytes at offset (extending the file); false when out of memory. */
static bool write_at(struct sim_file *f, size_t offset, const uint8_t *data, size_t len)
{
    if (offset + len > f->len) {
        uint8_t *p = realloc(f->data, offset + len);
        if (!p)
            return false;
        memset(p + f->len, 0, offset + len - f->len);
        f->data = p;
        f->len = offset + len;
    }
    if (len)
        memcpy(f->data + offset, data, len);
    return true;
}

/* ---- playback and recording ---- */

static void set_state(struct sim *s, enum sim_audio_state st, const char *file)
{
    struct sim_audio *a = &s->audio;

    sim_log(s, "audio: %s -> %s", state_names[a->state], state_names[st]);
    a->state = st;
    snprintf(a->file, sizeof(a->file), "%s", st == SIM_AUDIO_IDLE ? "" : file);
    if (st == SIM_AUDIO_IDLE)
        sim_timer_stop(s, SIM_TIMER_AUDIO);
}

static void play_stop_urc(struct sim *s)
{
    sim_urc(s, s->audio.wav ? "+WAVSTATE: wav play stop" : "+AUDIOSTATE: audio play stop");
}

static void play_over(struct sim *s)
{
    if (s->audio.state != SIM_AUDIO_PLAYING)
        return;
    sim_event(s, "play-stop %s", s->audio.file);
    set_state(s, SIM_AUDIO_IDLE, NULL);
    play_stop_urc(s);
}

/* Just after the OK of the play command: it starts. */
static void play_begin(struct sim *s)
{
    struct sim_audio *a = &s->audio;

    sim_urc(s, a->wav ? "+WAVSTATE: wav play" : "+AUDIOSTATE: audio play");
    sim_timer_set(s, SIM_TIMER_AUDIO, (int64_t)a->play_ms * (a->repeat + 1), play_over);
}

/* AT+CCMXPLAY / AT+CCMXPLAYWAV="<file>"[,<path>[,<repeat>]] */
static struct sim_result play(struct sim *s, const struct sim_at *at, bool wav)
{
    struct sim_audio *a = &s->audio;
    struct sim_params p;
    long path = 0, repeat = 0;

    if (at->kind == SIM_AT_TEST) {
        sim_info(s, "+CCMXPLAY%s: (0-1),(0-255)", wav ? "WAV" : "");
        return SIM_RES_OK;
    }
    if (at->kind == SIM_AT_QUERY) {
        sim_info(s, "+CCMXPLAY%s: %d", wav ? "WAV" : "", a->state == SIM_AUDIO_PLAYING);
        return SIM_RES_OK;
    }
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 3 ||
        !p.quoted[0] || (p.n > 1 && !sim_param_int(&p, 1, 0, 1, &path)) ||
        (p.n > 2 && !sim_param_int(&p, 2, 0, 255, &repeat)))
        return SIM_RES_ERROR;
    if (!find_file(s, p.v[0]) || a->state != SIM_AUDIO_IDLE)
        return SIM_RES_ERROR;
    if (path == 1 && s->call.state != SIM_CALL_ACTIVE)
        return SIM_RES_ERROR;
    a->wav = wav;
    a->to_call = path == 1;
    a->repeat = (int)repeat;
    set_state(s, SIM_AUDIO_PLAYING, find_file(s, p.v[0])->name);
    sim_event(s, "play %s path %ld times %ld", a->file, path, repeat + 1);
    if (a->play_ms == 0) {
        sim_urc(s, a->wav ? "+WAVSTATE: wav play" : "+AUDIOSTATE: audio play");
        play_over(s);
        return SIM_RES_OK;
    }
    sim_timer_set(s, SIM_TIMER_AUDIO, 0, play_begin);
    return SIM_RES_OK;
}

static struct sim_result cmd_ccmxplay(struct sim *s, const struct sim_at *at)
{
    return play(s, at, false);
}

static struct sim_result cmd_ccmxplaywav(struct sim *s, const struct sim_at *at)
{
    return play(s, at, true);
}

static void stop_urc_fire(struct sim *s)
{
    play_stop_urc(s);
}

/* AT+CCMXSTOP / AT+CCMXSTOPWAV: OK also when nothing plays. */
static struct sim_result stop(struct sim *s, const struct sim_at *at, bool wav)
{
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    if (s->audio.state == SIM_AUDIO_PLAYING && s->audio.wav == wav) {
        sim_event(s, "play-stop %s", s->audio.file);
        set_state(s, SIM_AUDIO_IDLE, NULL);
        sim_timer_set(s, SIM_TIMER_AUDIO, 0, stop_urc_fire);
    }
    return SIM_RES_OK;
}

static struct sim_result cmd_ccmxstop(struct sim *s, const struct sim_at *at)
{
    return stop(s, at, false);
}

static struct sim_result cmd_ccmxstopwav(struct sim *s, const struct sim_at *at)
{
    return stop(s, at, true);
}

static void rec_stop_fire(struct sim *s)
{
    sim_urc(s, "+RECSTATE: crec stop");
}

/* The recording ends: its file gets its length. */
static void rec_end(struct sim *s)
{
    struct sim_audio *a = &s->audio;
    struct sim_file *f = find_file(s, a->file);
    int64_t ms = sim_now_ms() - a->rec_since;
    size_t len = WAV_HEADER + (size_t)(ms * WAV_BYTES_PER_S / 1000);

    if (f && len > f->len && !write_at(f, len - 1, (const uint8_t *)"", 1))
        sim_log(s, "audio: out of memory for the recording");
    sim_event(s, "record-stop %s %zu", a->file, f ? f->len : 0);
    set_state(s, SIM_AUDIO_IDLE, NULL);
}

/* AT+CREC=<path>,"<file>" | AT+CREC=0 */
static struct sim_result cmd_crec(struct sim *s, const struct sim_at *at)
{
    struct sim_audio *a = &s->audio;
    struct sim_params p;
    struct sim_file *f;
    long path;

    if (at->kind == SIM_AT_QUERY || at->kind == SIM_AT_TEST) {
        sim_info(s, at->kind == SIM_AT_TEST ? "+CREC: (0-3)" : "+CREC: %d",
                 a->state == SIM_AUDIO_RECORDING);
        return SIM_RES_OK;
    }
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 ||
        !sim_param_int(&p, 0, 0, 3, &path))
        return SIM_RES_ERROR;
    if (path == 0) {
        if (p.n != 1 || a->state != SIM_AUDIO_RECORDING)
            return SIM_RES_ERROR;
        rec_end(s);
        sim_info(s, "+CREC: 0");
        sim_timer_set(s, SIM_TIMER_AUDIO, 0, rec_stop_fire);
        return SIM_RES_OK;
    }
    size_t n = p.n == 2 ? strlen(p.v[1]) : 0;
    if (p.n != 2 || !p.quoted[1] || !on_c(p.v[1]) || n < 4 ||
        strcasecmp(p.v[1] + n - 4, ".wav") != 0 || a->state != SIM_AUDIO_IDLE)
        return SIM_RES_ERROR;
    if (path > 1 && s->call.state != SIM_CALL_ACTIVE)
        return SIM_RES_ERROR;
    f = find_file(s, p.v[1]);
    if (f)
        delete_file(f);
    f = new_file(s, p.v[1]);
    if (!f || !write_at(f, 0, (const uint8_t *)"RIFF", 4) || !write_at(f, WAV_HEADER - 1,
                                                                          (const uint8_t *)"", 1))
        return SIM_RES_CME(20);   /* memory full */
    a->rec_since = sim_now_ms();
    set_state(s, SIM_AUDIO_RECORDING, f->name);
    sim_event(s, "record %s path %ld", f->name, path);
    sim_info(s, "+CREC: 1");
    return SIM_RES_OK;
}

/* ---- file system commands ---- */

/* The one quoted file name of AT+FSDEL / AT+FSATTRI. */
static struct sim_file *named_file(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;

    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 || p.n != 1)
        return NULL;
    return find_file(s, p.v[0]);
}

static struct sim_result cmd_fsdel(struct sim *s, const struct sim_at *at)
{
    struct sim_file *f = named_file(s, at);

    if (!f || (s->audio.state != SIM_AUDIO_IDLE && strcasecmp(f->name, s->audio.file) == 0))
        return SIM_RES_ERROR;
    sim_event(s, "fs-delete %s", f->name);
    delete_file(f);
    return SIM_RES_OK;
}

static struct sim_result cmd_fsattri(struct sim *s, const struct sim_at *at)
{
    struct sim_file *f = named_file(s, at);

    if (!f)
        return SIM_RES_ERROR;
    sim_info(s, "+FSATTRI: %zu,2026/12/05 12:00:00", f->len);
    return SIM_RES_OK;
}

/* AT+FSCD=C:/ (the only directory), AT+FSCD? */
static struct sim_result cmd_fscd(struct sim *s, const struct sim_at *at)
{
    bool c = at->kind == SIM_AT_SET &&
             (strcasecmp(at->arg, "C:/") == 0 || strcasecmp(at->arg, "C:") == 0);

    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (!c && at->kind != SIM_AT_QUERY)
        return SIM_RES_ERROR;
    sim_info(s, "+FSCD: C:/");
    return SIM_RES_OK;
}

/* AT+FSLS[=<type>]: 0 all, 1 directories (there are none), 2 files. */
static struct sim_result cmd_fsls(struct sim *s, const struct sim_at *at)
{
    long type = 0;

    if (at->kind == SIM_AT_TEST) {
        sim_info(s, "+FSLS: (0-2)");
        return SIM_RES_OK;
    }
    if (at->kind == SIM_AT_QUERY || (at->kind == SIM_AT_SET && !sim_parse_long(at->arg, 0, 2,
                                                                                &type)))
        return SIM_RES_ERROR;
    if (type == 1)
        return SIM_RES_OK;
    sim_info(s, "+FSLS: FILES:");
    for (size_t i = 0; i < SIM_FS_FILES; i++)
        if (s->audio.files[i].used)
            sim_info(s, "%s", s->audio.files[i].name + 3);
    return SIM_RES_OK;
}

static struct sim_result cftranrx_data(struct sim *s, const uint8_t *data, size_t len,
                                       bool cancelled, bool overflow)
{
    struct sim_audio *a = &s->audio;
    struct sim_file *f = find_file(s, a->rx_name);

    if (cancelled || overflow || !f)
        return SIM_RES_ERROR;
    if (!write_at(f, a->rx_offset, data, len))
        return SIM_RES_CME(20);
    sim_event(s, "fs-write %s %zu %zu", f->name, a->rx_offset, len);
    return SIM_RES_OK;
}

/* AT+CFTRANRX="<file>",<len>[,<reserved>,<location>] */
static struct sim_result cmd_cftranrx(struct sim *s, const struct sim_at *at)
{
    struct sim_audio *a = &s->audio;
    struct sim_params p;
    struct sim_file *f;
    long len, location = 0;

    if (at->kind == SIM_AT_TEST) {
        sim_info(s, "+CFTRANRX: (1-%d)", SIM_FS_CHUNK_MAX);
        return SIM_RES_OK;
    }
    if (at->kind != SIM_AT_SET || sim_params_parse(at->arg, &p) < 0 ||
        (p.n != 2 && p.n != 4) || !p.quoted[0] || !on_c(p.v[0]) ||
        !sim_param_int(&p, 1, 1, SIM_FS_CHUNK_MAX, &len) ||
        (p.n == 4 && !sim_param_int(&p, 3, 0, 0x7fffffff, &location)))
        return SIM_RES_ERROR;
    f = find_file(s, p.v[0]);
    if (location == 0 && f)
        return SIM_RES_ERROR;   /* no overwriting: AT+FSDEL first */
    if (location > 0 && (!f || (size_t)location > f->len))
        return SIM_RES_ERROR;
    if (!f && !(f = new_file(s, p.v[0])))
        return SIM_RES_CME(20);
    snprintf(a->rx_name, sizeof(a->rx_name), "%s", f->name);
    a->rx_offset = (size_t)location;
    return sim_prompt(s, (size_t)len, cftranrx_data);
}

const struct sim_cmd sim_audio_cmds[] = {
    {"+CCMXPLAYWAV", false, 0, cmd_ccmxplaywav},
    {"+CCMXPLAY", false, 0, cmd_ccmxplay},
    {"+CCMXSTOPWAV", false, 0, cmd_ccmxstopwav},
    {"+CCMXSTOP", false, 0, cmd_ccmxstop},
    {"+CREC", false, 0, cmd_crec},
    {"+CFTRANRX", false, 0, cmd_cftranrx},
    {"+FSDEL", false, 0, cmd_fsdel},
    {"+FSATTRI", false, 0, cmd_fsattri},
    {"+FSCD", false, 0, cmd_fscd},
    {"+FSLS", false, 0, cmd_fsls},
    {NULL, false, 0, NULL},
};

/* ---- control ---- */

/* play-ms <ms>: one repetition of a playback. */
static void ctl_play_ms(struct sim *s, char *args)
{
    long v;

    if (!sim_parse_long(args, 0, 3600 * 1000, &v)) {
        sim_ctl_error(s, "usage: play-ms <ms> (0: over before the OK)");
        return;
    }
    s->audio.play_ms = (int)v;
    s->audio.play_ms_set = true;
    sim_ctl_done(s);
}

/* file <name>: `ok <size> <hex>`, or an error when there is none. */
static void ctl_file(struct sim *s, char *args)
{
    struct sim_file *f = find_file(s, args);
    char *hex;

    if (!f) {
        sim_ctl_error(s, "no such file");
        return;
    }
    hex = malloc(2 * f->len + 1);
    if (!hex) {
        sim_ctl_error(s, "out of memory");
        return;
    }
    sim_hex_encode(f->data, f->len, hex);
    sim_ctl_ok(s, "%zu %s", f->len, hex);
    free(hex);
}

/* file-put <name> <hex>: a file as if uploaded before. */
static void ctl_file_put(struct sim *s, char *args)
{
    char *hex = strchr(args, ' ');
    struct sim_file *f;
    uint8_t *bytes;
    long n;

    if (!hex) {
        sim_ctl_error(s, "usage: file-put <c:/name> <hex>");
        return;
    }
    *hex++ = '\0';
    bytes = malloc(strlen(hex) / 2 + 1);
    n = bytes ? sim_hex_decode(hex, strlen(hex), bytes, strlen(hex) / 2 + 1) : -1;
    if (!on_c(args) || n < 0) {
        free(bytes);
        sim_ctl_error(s, "usage: file-put <c:/name> <hex>");
        return;
    }
    if ((f = find_file(s, args)))
        delete_file(f);
    f = new_file(s, args);
    if (!f || !write_at(f, 0, bytes, (size_t)n))
        sim_ctl_error(s, "file system full");
    else
        sim_ctl_done(s);
    free(bytes);
}

/* audio: `ok <idle|playing|recording> <file|->` */
static void ctl_audio(struct sim *s, char *args)
{
    (void)args;
    sim_ctl_ok(s, "%s %s", state_names[s->audio.state], s->audio.file[0] ? s->audio.file : "-");
}

const struct sim_ctl sim_audio_ctls[] = {
    {"play-ms", ctl_play_ms},
    {"file", ctl_file},
    {"file-put", ctl_file_put},
    {"audio", ctl_audio},
    {NULL, NULL},
};

void sim_audio_call_ended(struct sim *s)
{
    if (s->audio.state == SIM_AUDIO_PLAYING && s->audio.to_call)
        play_over(s);
}

void sim_audio_reset(struct sim *s)
{
    struct sim_audio *a = &s->audio;

    /* The flash keeps its files; what played or recorded is over. */
    a->state = SIM_AUDIO_IDLE;
    a->file[0] = '\0';
    if (!a->play_ms_set)
        a->play_ms = DEFAULT_PLAY_MS;
}

void sim_audio_free(struct sim *s)
{
    for (size_t i = 0; i < SIM_FS_FILES; i++)
        if (s->audio.files[i].used)
            delete_file(&s->audio.files[i]);
}
