/* The AT chat's private parts, shared by its files (chat.h says what the
 * chat does):
 *   chat.c        the command queue and each command's life cycle (send,
 *                 start, complete, timeouts, cancel), masking secrets in
 *                 the log, the public API
 *   chat_lines.c  what each line from the module is: a final result, the
 *                 command's info, a URC (with its extra lines), a prompt
 *                 or a block; the lexer's callback
 *   chat_sync.c   staying in step: the resync with its ESC, drain and
 *                 marker, at_chat_resync
 *   chat_wake.c   a sleeping module: the lone AT or DTR before a command,
 *                 the wake's late answer, DTR off when idle */
#ifndef M2M_AT_CHAT_INT_H
#define M2M_AT_CHAT_INT_H

#include "at/chat.h"

#include "at/lexer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#define DEFAULT_MAX_LINES 256u
#define DEFAULT_MAX_INFO_BYTES 65536u
#define MIN_LINE 16u
#define LOG_TRAFFIC_MAX 200u

struct at_cmd {
    at_done_cb cb;
    void *ctx;
    int timeout_ms;
    size_t cmd_len; /* without the CR stored after it */
    const char *cmd; /* "AT...\r": one write; matched with cmd_len */
    const char *info_prefix;     /* NULL: none */
    const char *after_ok_prefix; /* NULL: none */
    const uint8_t *data;         /* NULL: no prompt expected */
    size_t data_len;
    bool expect_info;
    void (*written)(void *ctx);
    bool (*still_wanted)(void *ctx);
    char storage[]; /* cmd "\r" NUL, prefixes, data */
};

#define MARKER_LEN (2 + 2 * 16)

enum sync_phase {
    SYNC_NONE = 0,  /* in step */
    SYNC_DRAIN,     /* ESC written; waiting for the line to go quiet */
    SYNC_ECHO_ON,   /* ATE1 written; draining its answer */
    SYNC_MARK,      /* marker written; waiting for its echo, then its final */
    SYNC_ECHO_OFF,  /* ATE0 written; its final ends the resync */
    SYNC_FAILED,    /* every attempt failed: held until the owner acts */
};

struct urc_table {
    const struct at_urc *entries;
    size_t n;
    void *ctx;
};

struct at_chat {
    struct at_transport tr;
    uint64_t timeouts;          /* at_chat_timeouts */
    int default_timeout_ms;
    size_t max_line;
    struct at_lexer *lx;

    /* Waiting commands: a ring of max_queue + 1 slots, the extra one for a
     * command submitted by the done callback of the command just finished
     * (which no longer occupies the in-flight place). */
    struct at_cmd **q;
    size_t q_cap;
    size_t q_limit;
    size_t q_head;
    size_t q_count;

    /* The command in flight and what was seen of its answer. */
    struct at_cmd *cur;
    int64_t deadline;
    int failed;        /* write error (negative errno): completes at tick */
    bool ok_seen;      /* after_ok_prefix: OK arrived */
    bool result_seen;  /* after_ok_prefix: the result line arrived */
    bool prompt_seen;  /* the module sits at a '>' prompt */
    bool data_written;
    bool truncated;
    bool info_seen;    /* a line with the command's info_prefix arrived */
    int64_t ok_held_until; /* 0, or an OK that may be the wake's is held (chat_wake.c) */

    /* Info lines of the command in flight: an arena and pointers into it. */
    char *arena;
    size_t arena_cap;
    size_t arena_used;
    const char **lines; /* max_lines + 1, NULL-terminated */
    size_t max_lines;
    size_t n_lines;
    char *final_text; /* max_line + 1: CME/CMS verbose text */

    /* Resynchronisation (chat.h): the phase, its deadlines, the marker. */
    enum sync_phase sync;
    bool sync_discard;       /* drop bytes unread until the marker's echo */
    bool marker_seen;
    unsigned sync_attempt;
    unsigned sync_attempts;
    bool quiet;             /* at_chat_set_quiet */
    int64_t quiet_at;        /* draining: done when no byte came until then */
    int64_t drain_end;       /* draining: done at the latest then */
    int64_t sync_deadline;   /* MARK, ECHO_OFF: the attempt failed then */
    uint32_t nonce;
    char marker[MARKER_LEN + 2]; /* the marker, CR, NUL */

    int64_t scheduled; /* last deadline handed to tr.schedule */

    /* Sleep (chat.h, chat_wake.c). */
    enum at_chat_sleep sleep;
    int64_t last_write;      /* bytes last handed to the transport; -1: never */
    int64_t last_busy;       /* a write or a completion, for DTR off */
    bool waking;             /* the wake is written: the next command waits */
    int64_t wake_end;        /* waking: the command goes then at the latest */
    int64_t wake_owed_until; /* a late answer to the wake AT is its own until then */
    bool dtr_on;
    uint64_t wakes;

    struct urc_table tables[AT_CHAT_MAX_TABLES];
    size_t n_tables;
    /* A URC collecting its extra lines. */
    const struct at_urc *urc;
    void *urc_ctx;
    size_t urc_have;
    char *urc_buf; /* (AT_URC_MAX_EXTRA + 1) * (max_line + 1) */
    const char *urc_lines[AT_URC_MAX_EXTRA + 1];

    void (*block_fn)(void *ctx, const uint8_t *data, size_t len);
    void *block_ctx;


    /* Re-entrancy: >0 while a done callback runs; true while chat_pump() runs. */
    unsigned completing;
    bool pumping;
};

/* Shared between the files above (each was a static of the one chat.c). */

/* chat.c: the command life cycle, and the log. */
bool chat_starts_with(const char *s, size_t len, const char *prefix);
void chat_log_traffic(const char *dir, const char *s, size_t len);
const char *chat_cmd_log(const struct at_cmd *c, char *buf, size_t size);
void chat_update_schedule(struct at_chat *chat);
void chat_complete_cur(struct at_chat *chat, enum at_final final, int code, const char *text,
                       int error);
void chat_pump(struct at_chat *chat);

/* chat_lines.c: classifying lines. */
int chat_parse_final(struct at_chat *chat, const char *s, size_t len, int *code,
                     const char **text);
bool chat_try_urc(struct at_chat *chat, const char *s, size_t len);
void chat_lex_cb(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len);

/* chat_sync.c: staying in step. */
bool chat_is_step_final(struct at_chat *chat, const char *s, size_t len);
void chat_sync_line(struct at_chat *chat, const char *s, size_t len);
void chat_sync_attempt(struct at_chat *chat);
void chat_sync_drained(struct at_chat *chat, int64_t now);
void chat_hold_sync(struct at_chat *chat, bool discard);
void chat_first_attempt(struct at_chat *chat);
void chat_resync(struct at_chat *chat, bool discard, const char *why);
void chat_out_of_step(struct at_chat *chat, const char *why);

/* chat_wake.c: a sleeping module. */
int chat_write(struct at_chat *chat, const uint8_t *buf, size_t len);
bool chat_wake_ready(struct at_chat *chat);
bool chat_wake_line(struct at_chat *chat, const char *s, size_t len);
bool chat_wake_held_done(struct at_chat *chat, int64_t now);
void chat_wake_tick(struct at_chat *chat, int64_t now);
int64_t chat_wake_deadline(const struct at_chat *chat);
void chat_wake_reset(struct at_chat *chat);

#endif
