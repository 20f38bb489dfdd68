/* Audio service: the module's own audio files on its flash (C:/), played
 * on the local speaker or into the call (AT+CCMXPLAY, AT+CCMXPLAYWAV for
 * WAV), stopped (AT+CCMXSTOP / AT+CCMXSTOPWAV), recorded (AT+CREC),
 * written from the host in chunks (AT+FSDEL, then AT+CFTRANRX) and listed
 * (AT+FSLS, AT+FSATTRI).
 *
 *   idle --AT+CCMXPLAY OK--> playing --+AUDIOSTATE/+WAVSTATE stop--> idle
 *   idle --AT+CREC OK--> recording --+RECSTATE: crec stop, AT+CREC=0--> idle
 *   any --AT+CCMXSTOP/AT+CREC=0 OK, modem not ready--> idle
 *
 * One thing at a time: a play or record while another runs is "busy"; so is
 * a second upload or listing while one is under way (each is a chain of
 * commands). Whether a call is up is the caller's question (the service
 * knows nothing of calls or MQTT): every state change goes out through
 * cbs.state. */
#ifndef M2M_MODEM_AUDIO_H
#define M2M_MODEM_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem/error.h"

struct loop;
struct modem;

#define AUDIO_NAME_MAX 64             /* after "c:/" */
#define AUDIO_FILE_MAX (3 + AUDIO_NAME_MAX + 1)
#define AUDIO_REPEAT_MAX 10
#define AUDIO_RECORD_MAX_S 600
#define AUDIO_UPLOAD_MAX (512u * 1024u)
/* Bytes after one AT+CFTRANRX prompt: the largest block the A7670 takes
 * after one data prompt elsewhere (AT+CMQTTPAYLOAD); a file is written in
 * as many commands as it needs. */
#define AUDIO_CHUNK_MAX 10240u
/* A listed name as the module gives it (not necessarily one of ours). */
#define AUDIO_LIST_NAME_MAX 128
#define AUDIO_LIST_MAX 64

enum audio_st { AUDIO_IDLE = 0, AUDIO_PLAYING, AUDIO_RECORDING };

/* "idle", "playing", "recording". */
const char *audio_st_name(enum audio_st st);

struct audio_state {
    enum audio_st state;
    char file[AUDIO_FILE_MAX];    /* "" when not known (started by someone else) */
    bool to_call;                 /* playing: into the call, not on the speaker */
};

struct audio_cbs {
    /* Every change, and idle at the first modem ready. Borrowed. */
    void (*state)(void *ctx, const struct audio_state *st);
};

struct audio_entry {
    char name[AUDIO_LIST_NAME_MAX]; /* "c:/<name as listed>" */
    long size;                    /* -1: not asked (a name we would not quote) */
};

/* err NULL: done. Rejections (invalid_request, busy, unavailable) come
 * before the function returns, with nothing written to the modem. */
typedef void (*audio_done_cb)(void *ctx, const struct m2m_error *err);
/* A play or record's command is handed to the modem: from here it may
 * take effect (a crash-safe caller records that). */
typedef void (*audio_written_cb)(void *ctx);
typedef void (*audio_list_cb)(void *ctx, const struct m2m_error *err,
                              const struct audio_entry *files, size_t n);

struct audio *audio_new(struct loop *loop, struct modem *modem, const struct audio_cbs *cbs,
                        void *ctx);
void audio_free(struct audio *a);

/* Ready: idle is announced, and AT+CREC=0 ends a recording the module may
 * still run for a bridge before this one. Not ready: the module may have
 * rebooted, its playback or recording is over; a recording's stop timer
 * is dropped. */
void audio_modem_ready(struct audio *a, bool ready);

const struct audio_state *audio_get_state(const struct audio *a);

/* file: audio_file_valid; repeat 1-AUDIO_REPEAT_MAX (the module's
 * <repeat> is the number of repetitions after the first: repeat - 1). */
void audio_play(struct audio *a, const char *file, int repeat, bool to_call,
                audio_written_cb written, audio_done_cb cb, void *ctx);
/* Stops a playback or a recording; nothing running: done at once. */
void audio_stop(struct audio *a, audio_done_cb cb, void *ctx);
/* file: audio_file_valid and ".wav" (AT+CREC writes WAV); seconds
 * 1-AUDIO_RECORD_MAX_S, then AT+CREC=0. in_call: both sides of the call
 * (record path 3), else the microphone (1). */
void audio_record(struct audio *a, const char *file, int seconds, bool in_call,
                  audio_written_cb written, audio_done_cb cb, void *ctx);
/* Writes len bytes (1-AUDIO_UPLOAD_MAX) to file, replacing it. Takes data
 * (malloc'd), also on rejection. */
void audio_upload(struct audio *a, const char *file, uint8_t *data, size_t len,
                  audio_done_cb cb, void *ctx);
/* The files on C:/ with their sizes. */
void audio_list(struct audio *a, audio_list_cb cb, void *ctx);

/* ---- pure ---- */

/* "c:/" (any case) and 1-AUDIO_NAME_MAX of A-Z a-z 0-9 _ - ., neither
 * starting nor ending with '.' (the module's rule; ".." is no name), with
 * a '.' inside (an extension: "alarm.amr").
 * Nothing in it can close the quote of AT+CCMXPLAY="...". */
bool audio_file_valid(const char *file);
/* Ends in ".wav" (any case): AT+CCMXPLAYWAV instead of AT+CCMXPLAY. */
bool audio_file_is_wav(const char *file);

enum audio_urc {
    AUDIO_URC_PLAY = 0,   /* +AUDIOSTATE: audio play, +WAVSTATE: wav play */
    AUDIO_URC_PLAY_STOP,  /* +AUDIOSTATE: audio play stop, +WAVSTATE: wav play stop */
    AUDIO_URC_REC_STOP,   /* +RECSTATE: crec stop */
};
/* One of the lines above (spaces after the colon optional, nothing after
 * them), or -EINVAL and *out untouched. */
int audio_parse_urc(const char *line, enum audio_urc *out);

/* AT+FSLS's answer: every line but its headers ("+FSLS: FILES:",
 * "+FSLS: SUBDIRECTORIES:") and empty ones is a name. Returns how many
 * of up to max went to out ("c:/<name>", size -1). */
size_t audio_parse_fsls(const char *const *lines, size_t n_lines, struct audio_entry *out,
                        size_t max);
/* +FSATTRI: <size>[,<date>] -> *size, or -EINVAL. */
int audio_parse_fsattri(const char *line, long *size);

#endif
