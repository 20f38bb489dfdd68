/* The audio service's private parts, shared by its files (audio.h says
 * what the service does):
 *   audio.c     the state and its URCs, play, stop and record; the life
 *               cycle; the pure checks and parsers
 *   audio_fs.c  the module's file system: upload (AT+FSDEL, AT+CFTRANRX
 *               in chunks) and listing (AT+FSLS, AT+FSATTRI) */
#ifndef M2M_MODEM_AUDIO_INT_H
#define M2M_MODEM_AUDIO_INT_H

#include "modem/audio.h"

#include "at/chat.h"

#include <stdbool.h>
#include <stdint.h>

struct audio {
    struct loop *loop;
    struct modem *modem;
    struct audio_cbs cbs;
    void *ctx;
    bool ready;
    struct audio_state st;
    /* A play (AUDIO_PLAYING) or record (AUDIO_RECORDING) command in
     * flight, or AUDIO_IDLE. */
    enum audio_st starting;
    bool stopped_early;           /* its stop URC came before its OK */
    bool cleared;                 /* the AT+CREC=0 at ready stopped a recording:
                                     its "+RECSTATE: crec stop" is due */
    bool wav;                     /* the playback runs through AT+CCMXPLAYWAV */
    uint64_t rec_timer;           /* the recording's end */
    bool fs_busy;                 /* an upload or a listing runs */
    /* Commands in flight hold a pointer to us: defer the free. */
    unsigned busy_reqs;
    bool freed;
};

/* The refusal of a name audio_file_valid does not accept. */
#define AUDIO_FILE_RULE \
    "'file' must be c:/ and 1-64 of A-Z a-z 0-9 _ - . with an extension " \
    "(not starting or ending with .)"

/* audio.c */
void audio_reject(audio_done_cb cb, void *ctx, const char *code, const char *msg);
/* modem_send's refusal as an error; 0 when it took the command. */
int audio_send(struct audio *a, const char *cmd, const struct at_cmd_opts *o, at_done_cb fn,
               void *req, struct m2m_error *err);
/* A command of ours was answered: the last one lets a freed service go,
 * so call it after the callback's last use of the service. */
void audio_req_done(struct audio *a);

#endif
