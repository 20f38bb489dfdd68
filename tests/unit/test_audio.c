/* modem/audio: the file name rule, the state URCs and the file system
 * answers (pure, table-driven), and the service in isolation through link
 * seams, as tests/unit/test_call.c does:
 *   modem.o  modem_send, modem_chat
 *   chat.o   at_chat_add_urcs, at_final_name
 *   loop.o   loop_add_timer, loop_cancel_timer, loop_now_ms
 * The service scripts are URC lines as the module sends them (A76XX
 * captures), completions of the written commands (oldest first, as the
 * chat does), clock steps and the owner's requests; each lists the
 * commands written, the states announced and the results, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "core/loop.h"
#include "modem/audio.h"
#include "modem/modem.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* --- pure ---------------------------------------------------------------------- */

static void test_file_valid(void **state)
{
    static const struct { const char *file; bool ok; } cases[] = {
        { "c:/alarm.amr", true },
        { "C:/Alarm_1-b.WAV", true },
        { "c:/x.y", true },
        { "c:/a.b.amr", true },
        { "c:/123456789012345678901234567890123456789012345678901234567890.amr", true },
        { "c:/1234567890123456789012345678901234567890123456789012345678901.amr", false },
        /* No extension: no format, and AT+FSLS would list it as a line
         * that reads as the module's own. */
        { "c:/x", false },
        { "c:/RING", false },
        { "c:/OK", false },
        { "c:/1234567890123456789012345678901234567890123456789012345678901234", false },
        { "c:/12345678901234567890123456789012345678901234567890123456789012345", false },
        { "c:/", false },
        { "c:", false },
        { "", false },
        { NULL, false },
        { "d:/x.amr", false },
        { "e:/x.amr", false },
        { "/x.amr", false },
        { "x.amr", false },
        { "c:x.amr", false },
        { "c:/.", false },
        { "c:/..", false },
        { "c:/../x", false },
        { "c:/a/b.amr", false },
        { "c:/.hidden", false },
        { "c:/x.", false },
        { "c:/a b.amr", false },
        { "c:/a\".amr", false },
        { "c:/a\",1,0\r\nATH", false },
        { "c:/a;b", false },
        { "c:/a\x1a", false },
        { "c:/\xc3\xa4.amr", false },
    };

    (void)state;
    for (size_t i = 0; i < N(cases); i++)
        if (audio_file_valid(cases[i].file) != cases[i].ok)
            fail_msg("audio_file_valid(\"%s\") should be %d", cases[i].file ? cases[i].file : "NULL",
                     cases[i].ok);
    assert_true(audio_file_is_wav("c:/x.wav"));
    assert_true(audio_file_is_wav("C:/X.WAV"));
    assert_false(audio_file_is_wav("c:/x.amr"));
    assert_false(audio_file_is_wav("c:/wav"));
    assert_false(audio_file_is_wav(NULL));
}

static void test_parse_urc(void **state)
{
    static const struct { const char *line; int want; } cases[] = {
        /* As the module writes them (A76XX captures). */
        { "+AUDIOSTATE: audio play", AUDIO_URC_PLAY },
        { "+AUDIOSTATE: audio play stop", AUDIO_URC_PLAY_STOP },
        { "+WAVSTATE: wav play", AUDIO_URC_PLAY },
        { "+WAVSTATE: wav play stop", AUDIO_URC_PLAY_STOP },
        { "+RECSTATE: crec stop", AUDIO_URC_REC_STOP },
        /* The space after the colon is optional. */
        { "+AUDIOSTATE:audio play stop", AUDIO_URC_PLAY_STOP },
        { "+RECSTATE:  crec stop", AUDIO_URC_REC_STOP },
        /* Anything else is no state change. */
        { "+AUDIOSTATE: audio play stopped", -EINVAL },
        { "+AUDIOSTATE: audio play stop ", -EINVAL },
        { "+AUDIOSTATE: AUDIO PLAY", -EINVAL },
        { "+AUDIOSTATE: wav play", -EINVAL },
        { "+WAVSTATE: audio play stop", -EINVAL },
        { "+RECSTATE: crecamr stop", -EINVAL },
        { "+AUDIOSTATE:", -EINVAL },
        { "+CREC: crec stop", -EINVAL },
        { "AUDIOSTATE: audio play", -EINVAL },
        { "", -EINVAL },
        { NULL, -EINVAL },
    };

    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        enum audio_urc u = (enum audio_urc)99;
        int rc = audio_parse_urc(cases[i].line, &u);
        if (cases[i].want < 0) {
            if (rc != -EINVAL || u != (enum audio_urc)99)
                fail_msg("'%s' should be refused and leave *out alone", cases[i].line);
        } else if (rc != 0 || (int)u != cases[i].want) {
            fail_msg("'%s': rc %d urc %d, want %d", cases[i].line, rc, (int)u, cases[i].want);
        }
    }
}

static void test_parse_fsls(void **state)
{
    /* AT+FSLS=2 on C:/ (the manual's layout), and AT+FSLS's headers. */
    static const char *const lines[] = {
        "+FSLS: SUBDIRECTORIES:", "", "+FSLS: FILES:", "alarm.amr", "Tone.WAV", "",
        "a name with spaces.mp3",
        "1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678"
        "901234567890123456789012345678901234567890",
    };
    struct audio_entry out[4];
    size_t n;

    (void)state;
    n = audio_parse_fsls(lines, N(lines), out, N(out));
    assert_int_equal(n, 3);
    assert_string_equal(out[0].name, "c:/alarm.amr");
    assert_string_equal(out[1].name, "c:/Tone.WAV");
    assert_string_equal(out[2].name, "c:/a name with spaces.mp3");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].size, -1);
    /* Bounded by max. */
    assert_int_equal(audio_parse_fsls(lines, N(lines), out, 1), 1);
    assert_int_equal(audio_parse_fsls(lines, 2, out, N(out)), 0);
}

static void test_parse_fsattri(void **state)
{
    static const struct { const char *line; long want; } cases[] = {
        { "+FSATTRI: 8604, 2008/04/28 10:24:46", 8604 },
        { "+FSATTRI: 12000,2026/12/05 12:00:00", 12000 },
        { "+FSATTRI: 3800", 3800 },
        { "+FSATTRI:0", 0 },
        { "+FSATTRI: -1", -1 },
        { "+FSATTRI: x", -1 },
        { "+FSATTRI: 99999999999", -1 },
        { "+FSATTRI:", -1 },
        { "+FSLS: FILES:", -1 },
        { NULL, -1 },
    };

    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        long size = -42;
        int rc = audio_parse_fsattri(cases[i].line, &size);
        if (cases[i].want < 0 ? rc != -EINVAL || size != -42 : rc != 0 || size != cases[i].want)
            fail_msg("'%s': rc %d size %ld", cases[i].line, rc, size);
    }
}

/* --- the service, through link seams ----------------------------------------------- */

#define MAX_CMDS 32
#define MAX_OUT 32

static char fake_loop_obj, fake_modem_obj, fake_chat_obj;
#define FAKE_LOOP ((struct loop *)(void *)&fake_loop_obj)
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)
#define FAKE_CHAT ((struct at_chat *)(void *)&fake_chat_obj)

struct cmd_rec {
    char cmd[128];
    size_t data_len;
    at_done_cb cb;
    void *ctx;
};

static struct {
    bool ready;
    struct cmd_rec cmds[MAX_CMDS];
    size_t n_cmds, n_completed;
    const struct at_urc *urcs;
    size_t n_urcs;
    void *urc_ctx;
    int64_t now;
    bool timer_live;
    int64_t timer_due;
    loop_timer_cb timer_cb;
    void *timer_ctx;
    char out[MAX_OUT][128];       /* states and results, in order */
    size_t n_out;
    size_t n_written;             /* play/record written hooks called */
} F;

struct at_chat *modem_chat(struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return FAKE_CHAT;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    struct cmd_rec *c;

    assert_ptr_equal(m, FAKE_MODEM);
    if (!F.ready)
        return -EAGAIN;
    assert_null(strpbrk(cmd, "\r\n\x1a\x1b"));
    assert_true(F.n_cmds < MAX_CMDS);
    c = &F.cmds[F.n_cmds++];
    snprintf(c->cmd, sizeof(c->cmd), "%s", cmd);
    c->data_len = opts ? opts->data_len : 0;
    c->cb = cb;
    c->ctx = ctx;
    if (opts && opts->written)   /* the chat writes it at once */
        opts->written(ctx);
    return 0;
}

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    assert_ptr_equal(chat, FAKE_CHAT);
    F.urcs = table;
    F.n_urcs = n;
    F.urc_ctx = ctx;
    return 0;
}

const char *at_final_name(enum at_final f)
{
    return f == AT_FINAL_OK ? "OK" : f == AT_FINAL_ERROR ? "ERROR" : "?";
}

int64_t loop_now_ms(void)
{
    return F.now;
}

/* The service has one timer at a time (the recording's end). */
int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    assert_false(F.timer_live);
    F.timer_live = true;
    F.timer_due = F.now + delay_ms;
    F.timer_cb = cb;
    F.timer_ctx = ctx;
    if (id)
        *id = 1;
    return 0;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    assert_ptr_equal(loop, FAKE_LOOP);
    if (id == 1)
        F.timer_live = false;
}

/* "<what> <a><b>" */
static void out(const char *what, const char *a, const char *b)
{
    assert_true(F.n_out < MAX_OUT);
    snprintf(F.out[F.n_out++], sizeof(F.out[0]), "%s %s%s", what, a, b);
}

static void on_state(void *ctx, const struct audio_state *st)
{
    char s[96];

    assert_ptr_equal(ctx, &F);

    snprintf(s, sizeof(s), "%s %s", audio_st_name(st->state), st->file[0] ? st->file : "-");
    out("state", s, "");
}

static void on_written(void *ctx)
{
    assert_ptr_equal(ctx, &F);
    F.n_written++;
}

static void on_done(void *ctx, const struct m2m_error *err)
{
    assert_ptr_equal(ctx, &F);
    out("result", err ? err->code : "ok", "");
}

static void on_list(void *ctx, const struct m2m_error *err, const struct audio_entry *files,
                    size_t n)
{
    char buf[128] = "";
    size_t len = 0;

    assert_ptr_equal(ctx, &F);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s=%ld", files[i].name,
                                files[i].size);
    out("list", err ? err->code : "ok", buf);
}

/* Completes the oldest command not yet answered, with info lines. */
static void complete(enum at_final f, const char *const *lines, size_t n)
{
    struct at_response rsp = { .final = f, .code = -1, .lines = lines, .n_lines = n };
    struct cmd_rec *c;

    assert_true(F.n_completed < F.n_cmds);
    c = &F.cmds[F.n_completed++];
    c->cb(c->ctx, &rsp);
}

static void urc(const char *line)
{
    const char *lines[] = { line, NULL };

    for (size_t i = 0; i < F.n_urcs; i++)
        if (strncmp(line, F.urcs[i].prefix, strlen(F.urcs[i].prefix)) == 0) {
            F.urcs[i].fn(F.urc_ctx, lines, 1);
            return;
        }
    fail_msg("no URC entry for '%s'", line);
}

/* Script steps:
 *   "P <file> <repeat> <0|1>"  audio_play (1: into the call)
 *   "S"                        audio_stop
 *   "R <file> <seconds> <0|1>" audio_record (1: in a call)
 *   "W <file> <bytes>"         audio_upload of that many bytes
 *   "L"                        audio_list
 *   "C <final> [line]"         the oldest command answered (OK, ERROR)
 *   "U <line>"                 a URC
 *   "T <ms>"                   the clock moves; a due timer fires
 *   "D" / "Y"                  the modem goes away / is ready again */
struct script {
    const char *name;
    const char *steps[24];
    const char *cmds[16];         /* written, in order */
    const char *outs[20];         /* states and results, in order */
};

static void step(struct audio *a, const char *s)
{
    char file[96];
    int x, y;

    switch (s[0]) {
    case 'P':
        assert_int_equal(sscanf(s + 2, "%95s %d %d", file, &x, &y), 3);
        audio_play(a, file, x, y, on_written, on_done, &F);
        break;
    case 'S':
        audio_stop(a, on_done, &F);
        break;
    case 'R':
        assert_int_equal(sscanf(s + 2, "%95s %d %d", file, &x, &y), 3);
        audio_record(a, file, x, y, on_written, on_done, &F);
        break;
    case 'W': {
        assert_int_equal(sscanf(s + 2, "%95s %d", file, &x), 2);
        uint8_t *data = calloc(1, x ? (size_t)x : 1);
        audio_upload(a, file, data, (size_t)x, on_done, &F);
        break;
    }
    case 'L':
        audio_list(a, on_list, &F);
        break;
    case 'C': {
        const char *line = strchr(s + 2, ' ');
        const char *lines[] = { line ? line + 1 : NULL, NULL };
        complete(strncmp(s + 2, "OK", 2) == 0 ? AT_FINAL_OK : AT_FINAL_ERROR, lines,
                 line ? 1 : 0);
        break;
    }
    case 'U':
        urc(s + 2);
        break;
    case 'T':
        F.now += atoi(s + 2);
        if (F.timer_live && F.timer_due <= F.now) {
            F.timer_live = false;
            F.timer_cb(F.timer_ctx);
        }
        break;
    case 'D':
    case 'Y':
        F.ready = s[0] == 'Y';
        audio_modem_ready(a, F.ready);
        break;
    default:
        fail_msg("bad step '%s'", s);
    }
}

#define BIG "c:/123456789012345678901234567890123456789012345678901234567890.amr"

static const struct script scripts[] = {
    { "play on the speaker until the module says it stopped",
      { "P c:/alarm.amr 3 0", "C OK", "U +AUDIOSTATE: audio play", "U +AUDIOSTATE: audio play stop" },
      { "AT+CCMXPLAY=\"c:/alarm.amr\",0,2" },
      { "state playing c:/alarm.amr", "result ok", "state idle -" } },
    { "into the call; WAV with its own command and URC; stop with its stop",
      { "P C:/T.WAV 1 1", "C OK", "U +WAVSTATE: wav play", "S", "C OK",
        "U +WAVSTATE: wav play stop" },
      { "AT+CCMXPLAYWAV=\"C:/T.WAV\",1,0", "AT+CCMXSTOPWAV" },
      { "state playing C:/T.WAV", "result ok", "state idle -", "result ok" } },
    { "an unknown file: the module's error, no state",
      { "P c:/nope.amr 1 0", "C ERROR" },
      { "AT+CCMXPLAY=\"c:/nope.amr\",0,0" },
      { "result modem_error" } },
    { "busy while playing; a record too; invalid requests write nothing",
      { "P c:/a.amr 1 0", "P c:/a.amr 1 0", "C OK", "P c:/a.amr 1 0",
        "R c:/r.wav 5 0", "P c:/a.amr 0 0", "P c:/a.amr 11 0", "P " BIG "5 1 0",
        "P c:/a\";b 1 0" },
      { "AT+CCMXPLAY=\"c:/a.amr\",0,0" },
      { "result busy", "state playing c:/a.amr", "result ok", "result busy", "result busy",
        "result invalid_request", "result invalid_request", "result invalid_request",
        "result invalid_request" } },
    { "a playback so short that its stop comes before its OK",
      { "P c:/a.amr 1 0", "U +AUDIOSTATE: audio play", "U +AUDIOSTATE: audio play stop",
        "C OK", "P c:/a.amr 1 0" },
      { "AT+CCMXPLAY=\"c:/a.amr\",0,0", "AT+CCMXPLAY=\"c:/a.amr\",0,0" },
      { "result ok" } },
    { "someone else's playback (raw AT) is playing all the same",
      { "U +AUDIOSTATE: audio play", "U +AUDIOSTATE: audio play stop" },
      { NULL },
      { "state playing -", "state idle -" } },
    { "stop while the play command is in flight: busy (nothing is known to stop yet)",
      { "P c:/a.amr 1 0", "S", "C OK", "S", "C OK" },
      { "AT+CCMXPLAY=\"c:/a.amr\",0,0", "AT+CCMXSTOP" },
      { "result busy", "state playing c:/a.amr", "result ok", "state idle -", "result ok" } },
    { "stop with nothing running: done, nothing written",
      { "S" },
      { NULL },
      { "result ok" } },
    { "a recording ends after its seconds",
      { "R c:/rec.wav 2 0", "C OK +CREC: 1", "T 1999", "T 1", "C OK +CREC: 0",
        "U +RECSTATE: crec stop" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -" } },
    { "a recording in a call records both sides; stop ends it early",
      { "R c:/rec.wav 600 1", "C OK", "S", "C OK", "U +RECSTATE: crec stop", "T 600000" },
      { "AT+CREC=3,\"c:/rec.wav\"", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -", "result ok" } },
    { "recording only to WAV, 1-600 s",
      { "R c:/rec.amr 5 0", "R c:/rec.wav 0 0", "R c:/rec.wav 601 0" },
      { NULL },
      { "result invalid_request", "result invalid_request", "result invalid_request" } },
    { "the modem goes away while playing: idle, and busy no more",
      { "P c:/a.amr 1 0", "C OK", "D", "P c:/a.amr 1 0", "Y", "P c:/a.amr 1 0" },
      { "AT+CCMXPLAY=\"c:/a.amr\",0,0", "AT+CREC=0", "AT+CCMXPLAY=\"c:/a.amr\",0,0" },
      { "state playing c:/a.amr", "result ok", "state idle -", "result unavailable",
        "state idle -" } },
    { "at ready a recording from before is stopped; its stop URC is not the next one's",
      { "D", "Y", "R c:/r.wav 5 0", "C OK +CREC: 0", "U +RECSTATE: crec stop", "C OK +CREC: 1" },
      { "AT+CREC=0", "AT+CREC=1,\"c:/r.wav\"" },
      { "state idle -", "state recording c:/r.wav", "result ok" } },
    { "the stop URC of the recording from before ahead of its OK swallows no later stop",
      { "D", "Y", "U +RECSTATE: crec stop", "C OK +CREC: 0", "R c:/r.wav 5 0", "C OK +CREC: 1",
        "U +RECSTATE: crec stop" },
      { "AT+CREC=0", "AT+CREC=1,\"c:/r.wav\"" },
      { "state idle -", "state recording c:/r.wav", "result ok", "state idle -" } },
    { "the recording's end answered ERROR: nothing records any more, idle",
      { "R c:/rec.wav 2 0", "C OK +CREC: 1", "T 2000", "C ERROR", "P c:/a.amr 1 0" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CREC=0", "AT+CCMXPLAY=\"c:/a.amr\",0,0" },
      { "state recording c:/rec.wav", "result ok", "state idle -" } },
    { "a stop of a recording answered ERROR: it was over already, idle and done",
      { "R c:/rec.wav 60 0", "C OK +CREC: 1", "S", "C ERROR", "T 60000" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -", "result ok" } },
    { "a recording of ours outlives a reconnect: no AT+CREC=0 at ready, its end comes",
      { "R c:/rec.wav 10 0", "C OK +CREC: 1", "D", "Y", "P c:/a.amr 1 0", "C OK", "T 10000",
        "C OK +CREC: 0" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CCMXPLAY=\"c:/a.amr\",0,0", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -", "state idle -",
        "state playing c:/a.amr", "result ok" } },
    { "a new recording after a reconnect replaces the old one's end",
      { "R c:/rec.wav 10 0", "C OK", "D", "Y", "R c:/r2.wav 5 0", "C OK", "T 5000", "C OK",
        "T 5000" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CREC=1,\"c:/r2.wav\"", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -", "state idle -",
        "state recording c:/r2.wav", "result ok", "state idle -" } },
    { "a recording's end while the modem is away: AT+CREC=0 at the next ready",
      { "R c:/rec.wav 2 0", "C OK", "D", "T 2000", "Y" },
      { "AT+CREC=1,\"c:/rec.wav\"", "AT+CREC=0" },
      { "state recording c:/rec.wav", "result ok", "state idle -", "state idle -" } },
    { "someone else's WAV playback stops with the WAV stop",
      { "U +WAVSTATE: wav play", "S", "C OK", "U +WAVSTATE: wav play stop" },
      { "AT+CCMXSTOPWAV" },
      { "state playing -", "state idle -", "result ok" } },
    { "upload: delete, then chunks of at most 10240 bytes at their offsets",
      { "W c:/big.amr 25000", "C ERROR", "C OK", "C OK", "C OK" },
      { "AT+FSDEL=\"c:/big.amr\"", "AT+CFTRANRX=\"c:/big.amr\",10240",
        "AT+CFTRANRX=\"c:/big.amr\",10240,0,10240", "AT+CFTRANRX=\"c:/big.amr\",4520,0,20480" },
      { "result ok" } },
    { "upload: a chunk refused ends it with the module's error; then the next may run",
      { "W c:/a.amr 20481", "C OK", "C OK", "W c:/b.amr 1", "C ERROR", "W c:/b.amr 1", "C OK",
        "C OK" },
      { "AT+FSDEL=\"c:/a.amr\"", "AT+CFTRANRX=\"c:/a.amr\",10240",
        "AT+CFTRANRX=\"c:/a.amr\",10240,0,10240", "AT+FSDEL=\"c:/b.amr\"",
        "AT+CFTRANRX=\"c:/b.amr\",1" },
      { "result busy", "result modem_error", "result ok" } },
    { "upload: bounds and names checked before anything is written",
      { "W c:/a.amr 0", "W c:/a.amr 524289", "W c:/a;b 1", "W c:/.. 1", "W c:/a.amr 524288" },
      { "AT+FSDEL=\"c:/a.amr\"" },
      { "result invalid_request", "result too_long", "result invalid_request",
        "result invalid_request" } },
};

/* The modem is ready: idle is announced, and AT+CREC=0 stops a recording
 * from before; there was none (ERROR). Then a clean record. */
static void ready(struct audio *a)
{
    audio_modem_ready(a, true);
    assert_int_equal(F.n_out, 1);
    assert_string_equal(F.out[0], "state idle -");
    assert_int_equal(F.n_cmds, 1);
    assert_string_equal(F.cmds[0].cmd, "AT+CREC=0");
    complete(AT_FINAL_ERROR, NULL, 0);
    assert_int_equal(F.n_out, 1);
    F.n_out = F.n_cmds = F.n_completed = 0;
}

static void run_list_script(void)
{
    /* The listing needs more than one info line per answer: by hand. */
    static const char *const fsls[] = { "+FSLS: FILES:", "alarm.amr", "odd name.mp3", "t.wav" };
    static const char *const attr1[] = { "+FSATTRI: 8604, 2008/04/28 10:24:46" };
    static const char *const attr2[] = { "+FSATTRI: 44" };
    struct audio_cbs cbs = { .state = on_state };
    struct audio *a;

    memset(&F, 0, sizeof(F));
    F.ready = true;
    a = audio_new(FAKE_LOOP, FAKE_MODEM, &cbs, &F);
    ready(a);
    audio_list(a, on_list, &F);
    audio_list(a, on_list, &F);
    complete(AT_FINAL_OK, NULL, 0);
    complete(AT_FINAL_OK, (const char *const *)fsls, N(fsls));
    complete(AT_FINAL_OK, (const char *const *)attr1, 1);
    complete(AT_FINAL_OK, (const char *const *)attr2, 1);
    assert_int_equal(F.n_cmds, 4);
    assert_string_equal(F.cmds[0].cmd, "AT+FSCD=C:/");
    assert_string_equal(F.cmds[1].cmd, "AT+FSLS=2");
    assert_string_equal(F.cmds[2].cmd, "AT+FSATTRI=\"c:/alarm.amr\"");
    assert_string_equal(F.cmds[3].cmd, "AT+FSATTRI=\"c:/t.wav\"");
    assert_int_equal(F.n_out, 2);
    assert_string_equal(F.out[0], "list busy");
    assert_string_equal(F.out[1], "list ok c:/alarm.amr=8604 c:/odd name.mp3=-1 c:/t.wav=44");
    audio_free(a);
}

static void test_scripts(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(scripts); i++) {
        const struct script *sc = &scripts[i];
        struct audio_cbs cbs = { .state = on_state };
        struct audio *a;
        size_t n;

        memset(&F, 0, sizeof(F));
        F.ready = true;
        a = audio_new(FAKE_LOOP, FAKE_MODEM, &cbs, &F);
        assert_non_null(a);
        ready(a);
        for (size_t k = 0; sc->steps[k]; k++)
            step(a, sc->steps[k]);
        for (n = 0; sc->cmds[n]; n++)
            if (n >= F.n_cmds || strcmp(F.cmds[n].cmd, sc->cmds[n]) != 0)
                fail_msg("%s: command %zu is '%s', want '%s'", sc->name, n,
                         n < F.n_cmds ? F.cmds[n].cmd : "(none)", sc->cmds[n]);
        if (n != F.n_cmds)
            fail_msg("%s: %zu commands written, want %zu (extra: '%s')", sc->name, F.n_cmds, n,
                     F.cmds[n].cmd);
        for (n = 0; sc->outs[n]; n++)
            if (n >= F.n_out || strcmp(F.out[n], sc->outs[n]) != 0)
                fail_msg("%s: out %zu is '%s', want '%s'", sc->name, n,
                         n < F.n_out ? F.out[n] : "(none)", sc->outs[n]);
        if (n != F.n_out)
            fail_msg("%s: %zu outputs, want %zu (extra: '%s')", sc->name, F.n_out, n, F.out[n]);
        /* Every play or record written said so, nothing else did. */
        size_t starts = 0;
        for (size_t k = 0; k < F.n_cmds; k++)
            starts += strncmp(F.cmds[k].cmd, "AT+CCMXPLAY", 11) == 0 ||
                      (strncmp(F.cmds[k].cmd, "AT+CREC=", 8) == 0 && F.cmds[k].cmd[8] != '0');
        if (F.n_written != starts)
            fail_msg("%s: %zu written hooks for %zu plays and records", sc->name, F.n_written,
                     starts);
        /* Each chunk carries exactly its announced count. */
        for (size_t k = 0; k < F.n_cmds; k++) {
            const char *c = strstr(F.cmds[k].cmd, "AT+CFTRANRX=");
            if (c)
                assert_int_equal(F.cmds[k].data_len,
                                 strtoul(strchr(F.cmds[k].cmd, ',') + 1, NULL, 10));
        }
        /* The modem goes first: what is still in flight is cancelled. */
        while (F.n_completed < F.n_cmds)
            complete(AT_FINAL_CANCELLED, NULL, 0);
        audio_free(a);
    }
    run_list_script();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_valid),
        cmocka_unit_test(test_parse_urc),
        cmocka_unit_test(test_parse_fsls),
        cmocka_unit_test(test_parse_fsattri),
        cmocka_unit_test(test_scripts),
    };
    return cmocka_run_group_tests_name("audio", tests, NULL, NULL);
}
