/* AT chat: command queue, timeouts, final results, URC dispatch.
 *
 * Everything runs on the loop thread. Entry points are at_chat_send(),
 * at_chat_feed() (lexer callbacks), at_chat_tick() and
 * at_chat_cancel_all(); user callbacks run from inside them, so the state is
 * always made consistent before a callback and re-read after it. */
#include "at/chat.h"

#include "at/lexer.h"
#include "at/result.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    int64_t quiet_at;        /* draining: done when no byte came until then */
    int64_t drain_end;       /* draining: done at the latest then */
    int64_t sync_deadline;   /* MARK, ECHO_OFF: the attempt failed then */
    uint32_t nonce;
    char marker[MARKER_LEN + 2]; /* the marker, CR, NUL */

    int64_t scheduled; /* last deadline handed to tr.schedule */

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


    /* Re-entrancy: >0 while a done callback runs; true while pump() runs. */
    unsigned completing;
    bool pumping;
};

const char *at_final_name(enum at_final f)
{
    return at_result_final_name(f);
}

/* Final results that are whole lines (V.250 and 27.007). */
static const struct {
    const char *text;
    enum at_final final;
} plain_finals[] = {
    {"OK", AT_FINAL_OK},
    {"ERROR", AT_FINAL_ERROR},
    {"NO CARRIER", AT_FINAL_NO_CARRIER},
    {"BUSY", AT_FINAL_BUSY},
    {"NO ANSWER", AT_FINAL_NO_ANSWER},
    {"NO DIALTONE", AT_FINAL_NO_DIALTONE},
};

/* Commands whose log line would show a secret, and how many top-level
 * commas precede it. */
static const struct {
    const char *prefix;
    unsigned keep_commas;
} secret_cmds[] = {
    {"AT+CPIN=", 0},         /* PIN[,new PIN] or PUK,PIN */
    {"AT+CPWD=", 1},         /* "SC",old,new */
    {"AT+CLCK=", 2},         /* "SC",mode,passwd */
    {"AT+CGAUTH=", 2},       /* cid,type,passwd,user */
    {"AT+CMQTTCONNECT=", 4}, /* idx,"tcp://..",keepalive,clean,user,pass */
};

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    return n <= len && memcmp(s, prefix, n) == 0;
}

static bool starts_with_nocase(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);

    if (n > len)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i], b = prefix[i];

        if (a >= 'a' && a <= 'z')
            a = (char)(a - 'a' + 'A');
        if (a != b)
            return false;
    }
    return true;
}

size_t at_chat_mask(const char *cmd, size_t len, char *out, size_t size)
{
    size_t keep = len, o = 0;

    if (size == 0)
        return 0;
    for (size_t t = 0; t < sizeof(secret_cmds) / sizeof(secret_cmds[0]); t++) {
        size_t i = strlen(secret_cmds[t].prefix);
        unsigned commas = 0;
        bool quoted = false;

        if (!starts_with_nocase(cmd, len, secret_cmds[t].prefix))
            continue;
        /* Keep up to the secret's start; none present: keep it all. */
        for (; i < len && commas < secret_cmds[t].keep_commas; i++) {
            if (cmd[i] == '"')
                quoted = !quoted;
            else if (cmd[i] == ',' && !quoted)
                commas++;
        }
        if (commas == secret_cmds[t].keep_commas && i < len)
            keep = i;
        break;
    }
    for (size_t i = 0; i < keep && o + 1 < size; i++)
        out[o++] = cmd[i];
    if (keep < len) {
        for (const char *m = "***"; *m && o + 1 < size; m++)
            out[o++] = *m;
    }
    out[o] = 0;
    return o;
}

/* "AT> ..." / "AT< ...": masked, control bytes shown as '.', bounded. */
static void log_traffic(const char *dir, const char *s, size_t len)
{
    char buf[LOG_TRAFFIC_MAX + 1];
    size_t n;

    if (log_get_level() < LOG_DEBUG)
        return;
    n = at_chat_mask(s, len, buf, sizeof(buf));
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] == 0x7f)
            buf[i] = '.';
    }
    log_debug("%s %s%s", dir, buf, len > LOG_TRAFFIC_MAX ? "..." : "");
}

/* A command for a log message: masked, without its CR. */
static const char *cmd_log(const struct at_cmd *c, char *buf, size_t size)
{
    at_chat_mask(c->cmd, c->cmd_len, buf, size);
    return buf;
}

/* ---- scheduling ---------------------------------------------------- */

static void update_schedule(struct at_chat *chat)
{
    int64_t want = -1;

    if (chat->cur)
        want = chat->deadline;
    else if (chat->sync == SYNC_DRAIN || chat->sync == SYNC_ECHO_ON)
        want = chat->quiet_at < chat->drain_end ? chat->quiet_at : chat->drain_end;
    else if (chat->sync == SYNC_MARK || chat->sync == SYNC_ECHO_OFF)
        want = chat->sync_deadline;
    if (want != chat->scheduled) {
        chat->scheduled = want;
        chat->tr.schedule(chat->tr.ctx, want);
    }
}

/* ---- completion and starting --------------------------------------- */

static void reset_cur_state(struct at_chat *chat)
{
    chat->failed = 0;
    chat->ok_seen = false;
    chat->result_seen = false;
    chat->prompt_seen = false;
    chat->data_written = false;
    chat->truncated = false;
    chat->info_seen = false;
}

static void finish(struct at_chat *chat, struct at_cmd *cmd, const struct at_response *rsp)
{
    if (cmd->cb) {
        chat->completing++;
        cmd->cb(cmd->ctx, rsp);
        chat->completing--;
    }
    free(cmd);
}

static void pump(struct at_chat *chat);

static void complete_cur(struct at_chat *chat, enum at_final final, int code, const char *text,
                         int error)
{
    struct at_cmd *cmd = chat->cur;
    struct at_response rsp = {
        .final = final,
        .code = code,
        .text = text,
        .lines = chat->lines,
        .n_lines = chat->n_lines,
        .truncated = chat->truncated,
        .error = error,
    };

    char name[64];

    chat->cur = NULL;
    chat->lines[chat->n_lines] = NULL;
    reset_cur_state(chat);
    at_lexer_expect_prompt(chat->lx, false);
    log_debug("AT %s -> %s code=%d%s%s", cmd_log(cmd, name, sizeof(name)), at_final_name(final),
              code, text ? " " : "", text ? text : "");
    /* The info lines stay put until pump() starts another command, which
     * it does only after this callback returned. */
    finish(chat, cmd, &rsp);
    pump(chat);
}

static struct at_cmd *q_pop(struct at_chat *chat)
{
    struct at_cmd *cmd = chat->q[chat->q_head];

    chat->q[chat->q_head] = NULL;
    chat->q_head = (chat->q_head + 1) % chat->q_cap;
    chat->q_count--;
    return cmd;
}

/* A command with data gets its own timeout (AT+CMGS: up to a minute for
 * the network) from the moment its data is written. Its prompt comes as
 * fast as any answer: waiting for it no longer than for a plain command
 * finds a hung module in seconds, not a minute, and nothing was sent then
 * (the data is written only after the prompt). */
static int prompt_timeout(const struct at_chat *chat, const struct at_cmd *cmd)
{
    if (!cmd->data || cmd->timeout_ms <= chat->default_timeout_ms)
        return cmd->timeout_ms;
    return chat->default_timeout_ms;
}

static void start(struct at_chat *chat, struct at_cmd *cmd)
{
    int64_t now = chat->tr.now_ms(chat->tr.ctx);
    int rc;

    chat->cur = cmd;
    reset_cur_state(chat);
    chat->n_lines = 0;
    chat->arena_used = 0;
    chat->deadline = now + prompt_timeout(chat, cmd);
    /* Only a command with data to write waits for a prompt: any other '>'
     * at line start (a USSD menu) is text. */
    at_lexer_expect_prompt(chat->lx, cmd->data != NULL);
    log_traffic("AT>", cmd->cmd, cmd->cmd_len);
    if (cmd->written)
        cmd->written(cmd->ctx);
    rc = chat->tr.write(chat->tr.ctx, (const uint8_t *)cmd->cmd, cmd->cmd_len + 1);
    if (rc < 0) {
        /* Completed from the tick, so that no callback runs inside
         * at_chat_send() and a dead port cannot spin us here. */
        char name[64];

        log_warn("AT write of %s failed: %s", cmd_log(cmd, name, sizeof(name)), strerror(-rc));
        chat->failed = rc;
        chat->deadline = now;
    }
}

/* Starts the next command if the line is free. Not from inside a done
 * callback (the command finishing still owns the info lines), and not
 * recursively: the loop picks up whatever the callbacks queued. */
static void pump(struct at_chat *chat)
{
    if (chat->completing || chat->pumping)
        return;
    chat->pumping = true;
    if (!chat->cur && chat->sync == SYNC_NONE && chat->q_count > 0)
        start(chat, q_pop(chat));
    chat->pumping = false;
    update_schedule(chat);
}

/* ---- line classification ------------------------------------------- */

/* OK, ERROR, ... or +CME/+CMS ERROR: with or without the space, numeric or
 * verbose (AT+CMEE=1 or 2; the A7670 logs show both). Returns -1 for
 * anything else. *text points into chat->final_text. */
static int parse_final(struct at_chat *chat, const char *s, size_t len, int *code,
                       const char **text)
{
    enum at_final f;
    size_t i, end;

    *code = -1;
    *text = NULL;
    for (size_t k = 0; k < sizeof(plain_finals) / sizeof(plain_finals[0]); k++) {
        if (strlen(plain_finals[k].text) == len && memcmp(s, plain_finals[k].text, len) == 0)
            return (int)plain_finals[k].final;
    }
    if (starts_with(s, len, "+CME ERROR:"))
        f = AT_FINAL_CME;
    else if (starts_with(s, len, "+CMS ERROR:"))
        f = AT_FINAL_CMS;
    else
        return -1;
    i = strlen("+CME ERROR:");
    while (i < len && s[i] == ' ')
        i++;
    end = len;
    while (end > i && s[end - 1] == ' ')
        end--;
    if (end > i && end - i <= 6) {
        int v = 0;
        size_t k;

        for (k = i; k < end && s[k] >= '0' && s[k] <= '9'; k++)
            v = v * 10 + (s[k] - '0');
        if (k == end) {
            *code = v;
            return (int)f;
        }
    }
    if (end > i) {
        memcpy(chat->final_text, s + i, end - i);
        chat->final_text[end - i] = 0;
        *text = chat->final_text;
    }
    return (int)f;
}

static void add_info(struct at_chat *chat, const char *s, size_t len)
{
    if (chat->n_lines >= chat->max_lines || len + 1 > chat->arena_cap - chat->arena_used) {
        char name[64];

        if (!chat->truncated)
            log_warn("AT %s: response longer than %zu lines/%zu bytes, dropping lines",
                     cmd_log(chat->cur, name, sizeof(name)), chat->max_lines, chat->arena_cap);
        chat->truncated = true;
        return;
    }
    char *dst = chat->arena + chat->arena_used;

    memcpy(dst, s, len);
    dst[len] = 0;
    chat->arena_used += len + 1;
    chat->lines[chat->n_lines++] = dst;
}

static void dispatch_urc(const struct at_urc *u, void *ctx,
                         const char *const *lines, size_t n)
{
    log_debug("AT URC %s", u->prefix);
    u->fn(ctx, lines, n);
}

/* Rule 4 (and the only rule with nothing in flight). True if a URC took it. */
static bool try_urc(struct at_chat *chat, const char *s, size_t len)
{
    for (size_t t = 0; t < chat->n_tables; t++) {
        const struct urc_table *tb = &chat->tables[t];

        for (size_t k = 0; k < tb->n; k++) {
            const struct at_urc *u = &tb->entries[k];

            if (!starts_with(s, len, u->prefix))
                continue;
            if (u->extra_lines == 0) {
                const char *one[1] = {s};

                dispatch_urc(u, tb->ctx, one, 1);
                return true;
            }
            /* Copied: the lexer's buffer is reused for the next lines. */
            memcpy(chat->urc_buf, s, len);
            chat->urc_buf[len] = 0;
            chat->urc = u;
            chat->urc_ctx = tb->ctx;
            chat->urc_have = 1;
            return true;
        }
    }
    return false;
}

static void urc_collect(struct at_chat *chat, const char *s, size_t len)
{
    char *slot = chat->urc_buf + chat->urc_have * (chat->max_line + 1);
    const struct at_urc *u = chat->urc;
    size_t n;

    memcpy(slot, s, len);
    slot[len] = 0;
    chat->urc_have++;
    if (chat->urc_have < u->extra_lines + 1u)
        return;
    n = chat->urc_have;
    for (size_t i = 0; i < n; i++)
        chat->urc_lines[i] = chat->urc_buf + i * (chat->max_line + 1);
    /* Reset first: the handler may send, read a block or cancel. */
    chat->urc = NULL;
    chat->urc_have = 0;
    dispatch_urc(u, chat->urc_ctx, chat->urc_lines, n);
}

static void out_of_step(struct at_chat *chat, const char *why);
static bool is_step_final(struct at_chat *chat, const char *s, size_t len);

/* With echo on, the module echoes what follows the prompt too. */
static bool is_data_echo(const struct at_cmd *cmd, const char *s, size_t len)
{
    size_t dl = cmd->data_len;

    if (!cmd->data)
        return false;
    while (dl > 0 && cmd->data[dl - 1] == 0x1a)
        dl--;
    while (len > 0 && (uint8_t)s[len - 1] == 0x1a)
        len--;
    return dl > 0 && len == dl && memcmp(s, cmd->data, dl) == 0;
}

static void line_in_flight(struct at_chat *chat, const char *s, size_t len)
{
    struct at_cmd *cmd = chat->cur;
    const char *text;
    int code, f;

    /* 1. Echo (on after every boot until ATE0). */
    if (len == cmd->cmd_len && memcmp(s, cmd->cmd, len) == 0)
        return;
    if (chat->data_written && is_data_echo(cmd, s, len))
        return;
    /* 2. Final result. */
    f = parse_final(chat, s, len, &code, &text);
    if (f >= 0) {
        if (f == AT_FINAL_OK && cmd->expect_info && !chat->info_seen &&
            !(cmd->after_ok_prefix && !chat->result_seen)) {
            out_of_step(chat, "OK without the expected information line");
            return;
        }
        if (f == AT_FINAL_OK && cmd->after_ok_prefix) {
            /* CMQTT: OK only acknowledges the request; the outcome is the
             * result line, which the A7670 sends after OK (or, for
             * CMQTTDISC, sometimes before). */
            chat->ok_seen = true;
            chat->prompt_seen = false;
            if (chat->result_seen)
                complete_cur(chat, AT_FINAL_OK, -1, NULL, 0);
            return;
        }
        complete_cur(chat, (enum at_final)f, code, text, 0);
        return;
    }
    if (cmd->after_ok_prefix && !chat->result_seen && starts_with(s, len, cmd->after_ok_prefix)) {
        add_info(chat, s, len);
        chat->result_seen = true;
        chat->info_seen = true;
        if (chat->ok_seen)
            complete_cur(chat, AT_FINAL_OK, -1, NULL, 0);
        return;
    }
    /* 3. The command's own info lines. */
    if (cmd->info_prefix && starts_with(s, len, cmd->info_prefix)) {
        add_info(chat, s, len);
        chat->info_seen = true;
        return;
    }
    /* 4. URCs. */
    if (try_urc(chat, s, len))
        return;
    /* 5. Bare info lines (CGSN digits, the PDU after +CMGR:). */
    add_info(chat, s, len);
}

/* ---- staying in step (chat.h) ---------------------------------------- */

/* OK, ERROR, +CME ERROR, +CMS ERROR: the finals that end a command. The
 * call results (NO CARRIER, BUSY, ...) also come on their own when a call
 * ends, so they prove nothing. */
static bool is_step_final(struct at_chat *chat, const char *s, size_t len)
{
    const char *text;
    int code, f = parse_final(chat, s, len, &code, &text);

    return f == AT_FINAL_OK || f == AT_FINAL_ERROR || f == AT_FINAL_CME || f == AT_FINAL_CMS;
}

static int sync_write(struct at_chat *chat, const char *what)
{
    size_t n = strlen(what);
    int rc;

    log_traffic("AT>", what, n);
    rc = chat->tr.write(chat->tr.ctx, (const uint8_t *)what, n);
    if (rc < 0)
        log_warn("AT resync: write failed: %s", strerror(-rc));
    return rc;
}

static void sync_end(struct at_chat *chat, bool ok)
{
    chat->sync = ok ? SYNC_NONE : SYNC_FAILED;
    chat->sync_discard = false;
    if (ok)
        log_info("AT in step after %u attempt%s", chat->sync_attempt,
                 chat->sync_attempt == 1 ? "" : "s");
    else
        log_warn("AT resync failed after %u attempts: the module does not answer",
                 chat->sync_attempt);
    chat->sync_attempt = 0;
    if (chat->tr.synced) {
        chat->completing++;
        chat->tr.synced(chat->tr.ctx, ok);
        chat->completing--;
    }
    pump(chat);
}

/* "AT" and 16 basic commands, E1 or V1 by the nonce's bits: harmless (echo
 * on and verbose results are what a resync wants anyway) and different for
 * every attempt. */
static void make_marker(struct at_chat *chat)
{
    uint32_t x = chat->nonce;
    char *p = chat->marker;

    /* xorshift32: nothing secret, only different from the last ones. */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    chat->nonce = x;
    *p++ = 'A';
    *p++ = 'T';
    for (int i = 0; i < 16; i++) {
        *p++ = (x >> i) & 1 ? 'V' : 'E';
        *p++ = '1';
    }
    *p++ = '\r';
    *p = 0;
}

static void drain_start(struct at_chat *chat, enum sync_phase phase, int64_t now)
{
    chat->sync = phase;
    chat->quiet_at = now + AT_CHAT_QUIET_MS;
    chat->drain_end = now + AT_CHAT_DRAIN_MAX_MS;
}

static void sync_attempt(struct at_chat *chat)
{
    if (chat->sync_attempt >= chat->sync_attempts) {
        sync_end(chat, false);
        return;
    }
    chat->sync_attempt++;
    chat->marker_seen = false;
    /* Whatever was half received belongs to the time before. */
    at_lexer_reset(chat->lx);
    chat->urc = NULL;
    chat->urc_have = 0;
    chat->block_fn = NULL;
    log_debug("AT resync attempt %u", chat->sync_attempt);
    /* ESC: out of a data prompt; elsewhere the module ignores it. */
    if (sync_write(chat, "\x1b") < 0) {
        sync_end(chat, false);
        return;
    }
    drain_start(chat, SYNC_DRAIN, chat->tr.now_ms(chat->tr.ctx));
    update_schedule(chat);
}

/* The drain phases are over: the next step. */
static void sync_drained(struct at_chat *chat, int64_t now)
{
    if (chat->sync == SYNC_DRAIN) {
        if (sync_write(chat, "ATE1\r") < 0) {
            sync_end(chat, false);
            return;
        }
        drain_start(chat, SYNC_ECHO_ON, now);
        update_schedule(chat);
        return;
    }
    make_marker(chat);
    if (sync_write(chat, chat->marker) < 0) {
        sync_end(chat, false);
        return;
    }
    chat->sync = SYNC_MARK;
    chat->sync_deadline = now + AT_CHAT_SYNC_STEP_MS;
    update_schedule(chat);
}

static void sync_line(struct at_chat *chat, const char *s, size_t len)
{
    bool after_marker = chat->sync == SYNC_ECHO_OFF || chat->marker_seen;

    if (chat->sync == SYNC_MARK && !chat->marker_seen && len == MARKER_LEN &&
        memcmp(s, chat->marker, len) == 0) {
        chat->marker_seen = true;
        return;
    }
    if (after_marker && is_step_final(chat, s, len)) {
        if (chat->sync == SYNC_MARK) {
            /* The marker's own answer: in step. Echo off again. */
            if (sync_write(chat, "ATE0\r") < 0) {
                sync_end(chat, false);
                return;
            }
            chat->sync = SYNC_ECHO_OFF;
            chat->sync_deadline = chat->tr.now_ms(chat->tr.ctx) + AT_CHAT_SYNC_STEP_MS;
            update_schedule(chat);
            return;
        }
        sync_end(chat, true);
        return;
    }
    if (chat->sync_discard && !after_marker) {
        log_debug("AT resync: stale line dropped");
        return;
    }
    if (try_urc(chat, s, len))
        return;
    log_debug("AT resync: line dropped");
}

/* Holds the queue for a resync, writing nothing yet: the command in
 * flight is completed after this, and its callback may send (the command
 * waits) or cancel everything (which ends the resync: the owner closes the
 * port). first_attempt() then starts it, if it still stands. */
static void hold_sync(struct at_chat *chat, bool discard)
{
    if (chat->sync != SYNC_NONE && chat->sync != SYNC_FAILED) {
        chat->sync_discard = chat->sync_discard || discard;
        return;
    }
    drain_start(chat, SYNC_DRAIN, chat->tr.now_ms(chat->tr.ctx));
    chat->sync_discard = discard;
    chat->sync_attempt = 0;
}

static void first_attempt(struct at_chat *chat)
{
    if (chat->sync == SYNC_DRAIN && chat->sync_attempt == 0)
        sync_attempt(chat);
}

static void resync(struct at_chat *chat, bool discard, const char *why)
{
    char name[64];

    if (chat->sync != SYNC_NONE && chat->sync != SYNC_FAILED) {
        hold_sync(chat, discard);
        return;
    }
    log_warn("AT resynchronising: %s%s%s", why, chat->cur ? "; dropping " : "",
             chat->cur ? cmd_log(chat->cur, name, sizeof(name)) : "");
    hold_sync(chat, discard);
    if (chat->cur)
        complete_cur(chat, AT_FINAL_OUT_OF_STEP, -1, NULL, 0);
    first_attempt(chat);
}

/* The command in flight got an answer that cannot be its own. */
static void out_of_step(struct at_chat *chat, const char *why)
{
    resync(chat, false, why);
}

static void on_line(struct at_chat *chat, const char *s, size_t len)
{
    log_traffic("AT<", s, len);
    if (chat->urc) {
        urc_collect(chat, s, len);
        return;
    }
    if (chat->sync != SYNC_NONE) {
        sync_line(chat, s, len);
        return;
    }
    if (chat->cur && !chat->failed) {
        line_in_flight(chat, s, len);
        return;
    }
    if (try_urc(chat, s, len))
        return;
    if (is_step_final(chat, s, len)) {
        /* An answer nobody asked for: a late one, or we lost count. */
        resync(chat, false, "a final result with no command in flight");
        return;
    }
    log_debug("AT unsolicited line dropped");
}

static void on_prompt(struct at_chat *chat)
{
    struct at_cmd *cmd = chat->cur;
    char name[64];
    int rc;

    log_traffic("AT<", ">", 1);
    if (!cmd || chat->failed || chat->sync != SYNC_NONE) {
        log_debug("AT prompt with no command in flight, ignored");
        return;
    }
    /* The module now waits for data whatever we meant: a timeout sends
     * ESC to get it out of there. */
    chat->prompt_seen = true;
    if (!cmd->data || chat->data_written) {
        log_debug("AT prompt not expected by %s, ignored", cmd_log(cmd, name, sizeof(name)));
        return;
    }
    chat->data_written = true;
    at_lexer_expect_prompt(chat->lx, false);
    chat->deadline = chat->tr.now_ms(chat->tr.ctx) + cmd->timeout_ms;
    update_schedule(chat);
    log_debug("AT> [%zu bytes of data]", cmd->data_len);
    if (cmd->data_len == 0)
        return;
    rc = chat->tr.write(chat->tr.ctx, cmd->data, cmd->data_len);
    if (rc < 0) {
        log_warn("AT write of data for %s failed: %s", cmd_log(cmd, name, sizeof(name)),
                 strerror(-rc));
        chat->failed = rc;
        chat->deadline = chat->tr.now_ms(chat->tr.ctx);
        update_schedule(chat);
    }
}

static void on_overflow(struct at_chat *chat, size_t len)
{
    log_warn("AT line longer than %zu bytes dropped", len);
    if (chat->urc) {
        log_warn("AT URC %s lost its extra line", chat->urc->prefix);
        chat->urc = NULL;
        chat->urc_have = 0;
    } else if (chat->cur && !chat->failed) {
        chat->truncated = true;
    }
}

static void on_block(struct at_chat *chat, const uint8_t *data, size_t len)
{
    void (*fn)(void *, const uint8_t *, size_t) = chat->block_fn;

    log_debug("AT< [block of %zu bytes]", len);
    chat->block_fn = NULL;
    if (fn)
        fn(chat->block_ctx, data, len);
}

static void lex_cb(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len)
{
    struct at_chat *chat = ctx;

    switch (ev) {
    case AT_LEX_LINE:
        on_line(chat, (const char *)data, len);
        break;
    case AT_LEX_PROMPT:
        on_prompt(chat);
        break;
    case AT_LEX_BLOCK:
        on_block(chat, data, len);
        break;
    case AT_LEX_OVERFLOW:
        on_overflow(chat, len);
        break;
    default:
        break;
    }
}

/* ---- public API ---------------------------------------------------- */

struct at_chat *at_chat_new(const struct at_chat_opts *opts, const struct at_transport *tr)
{
    struct at_chat *chat;
    size_t max_lines, info_bytes;

    if (!opts || !tr || !tr->write || !tr->now_ms || !tr->schedule)
        return NULL;
    if (opts->default_timeout_ms <= 0 || opts->max_line < MIN_LINE ||
        opts->max_line > SIZE_MAX / (2 * (AT_URC_MAX_EXTRA + 1)) || opts->max_queue > 65536)
        return NULL;
    max_lines = opts->max_lines ? opts->max_lines : DEFAULT_MAX_LINES;
    info_bytes = opts->max_info_bytes ? opts->max_info_bytes : DEFAULT_MAX_INFO_BYTES;
    if (max_lines > 65536)
        return NULL;

    chat = calloc(1, sizeof(*chat));
    if (!chat)
        return NULL;
    chat->tr = *tr;
    chat->default_timeout_ms = opts->default_timeout_ms;
    chat->max_line = opts->max_line;
    chat->q_limit = opts->max_queue;
    chat->q_cap = opts->max_queue + 1;
    chat->max_lines = max_lines;
    chat->arena_cap = info_bytes;
    chat->scheduled = -1;
    chat->sync_attempts = opts->sync_attempts ? opts->sync_attempts : AT_CHAT_SYNC_ATTEMPTS;
    /* xorshift32 never leaves 0. */
    chat->nonce = opts->sync_seed ? opts->sync_seed : 0x6d326d71u;

    chat->q = calloc(chat->q_cap, sizeof(*chat->q));
    if (!chat->q)
        goto err;
    chat->arena = malloc(info_bytes);
    if (!chat->arena)
        goto err;
    chat->lines = calloc(max_lines + 1, sizeof(*chat->lines));
    if (!chat->lines)
        goto err;
    chat->final_text = malloc(opts->max_line + 1);
    if (!chat->final_text)
        goto err;
    chat->urc_buf = malloc((AT_URC_MAX_EXTRA + 1) * (opts->max_line + 1));
    if (!chat->urc_buf)
        goto err;
    chat->lx = at_lexer_new(opts->max_line, opts->max_block, lex_cb, chat);
    if (!chat->lx)
        goto err;
    return chat;

err:
    at_chat_free(chat);   /* zeroed where not yet allocated */
    return NULL;
}

void at_chat_free(struct at_chat *chat)
{
    if (!chat)
        return;
    while (chat->q_count > 0)
        free(q_pop(chat));
    free(chat->cur);
    at_lexer_free(chat->lx);
    free(chat->urc_buf);
    free(chat->final_text);
    free(chat->lines);
    free(chat->arena);
    free(chat->q);
    free(chat);
}

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    if (!table && n > 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!table[i].prefix || !table[i].prefix[0] || !table[i].fn ||
            table[i].extra_lines > AT_URC_MAX_EXTRA)
            return -EINVAL;
    }
    if (chat->n_tables == AT_CHAT_MAX_TABLES)
        return -ENOSPC;
    chat->tables[chat->n_tables++] = (struct urc_table){table, n, ctx};
    return 0;
}

static char *copy_str(char **p, const char *s)
{
    char *d = *p;
    size_t n = strlen(s) + 1;

    memcpy(d, s, n);
    *p += n;
    return d;
}

int at_chat_send(struct at_chat *chat, const char *cmd, const struct at_cmd_opts *opts,
                 at_done_cb cb, void *ctx)
{
    static const struct at_cmd_opts none = {0};
    const char *info, *after;
    struct at_cmd *c;
    size_t len, size;
    char *p;

    if (!opts)
        opts = &none;
    if (!cmd || !cmd[0])
        return -EINVAL;
    /* Bounded scan: a command is our own string, but never trust its end. */
    len = strnlen(cmd, chat->max_line + 1);
    if (len > chat->max_line)
        return -EMSGSIZE;
    /* CR ends a command line and LF may too; Ctrl-Z and ESC end or cancel a
     * data prompt. Any of them would let a caller's text add a command. */
    if (strcspn(cmd, "\r\n\x1a\x1b") != len)
        return -EINVAL;
    if (opts->timeout_ms < 0 || (!opts->data && opts->data_len > 0))
        return -EINVAL;
    if (opts->data_len > AT_CHAT_MAX_DATA)
        return -EMSGSIZE;
    if (chat->q_count >= chat->q_limit + (chat->cur ? 0 : 1))
        return -ENOBUFS;

    info = opts->info_prefix && opts->info_prefix[0] ? opts->info_prefix : NULL;
    after = opts->after_ok_prefix && opts->after_ok_prefix[0] ? opts->after_ok_prefix : NULL;
    size = len + 2 + (info ? strlen(info) + 1 : 0) + (after ? strlen(after) + 1 : 0) +
           opts->data_len;
    c = malloc(sizeof(*c) + size);
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->ctx = ctx;
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : chat->default_timeout_ms;
    c->expect_info = opts->expect_info && info;
    c->written = opts->written;
    c->cmd_len = len;
    p = c->storage;
    memcpy(p, cmd, len);
    p[len] = '\r'; /* written with the command in one go */
    p[len + 1] = 0;
    c->cmd = p;
    p += len + 2;
    c->info_prefix = info ? copy_str(&p, info) : NULL;
    c->after_ok_prefix = after ? copy_str(&p, after) : NULL;
    c->data = NULL;
    c->data_len = opts->data_len;
    if (opts->data) {
        if (opts->data_len > 0)
            memcpy(p, opts->data, opts->data_len);
        c->data = (const uint8_t *)p;
    }

    chat->q[(chat->q_head + chat->q_count) % chat->q_cap] = c;
    chat->q_count++;
    pump(chat);
    return 0;
}

void at_chat_feed(struct at_chat *chat, const uint8_t *data, size_t len)
{
    if (len == 0)
        return;
    if (chat->sync == SYNC_DRAIN || chat->sync == SYNC_ECHO_ON) {
        int64_t q = chat->tr.now_ms(chat->tr.ctx) + AT_CHAT_QUIET_MS;

        chat->quiet_at = q < chat->drain_end ? q : chat->drain_end;
        update_schedule(chat);
        if (chat->sync_discard) {
            log_debug("AT resync: %zu stale bytes discarded", len);
            return;
        }
    }
    at_lexer_feed(chat->lx, data, len);
}

void at_chat_tick(struct at_chat *chat)
{
    int64_t now = chat->tr.now_ms(chat->tr.ctx);
    char name[64];

    /* The owner's timer fired: announce the deadline again even if it did
     * not change (a failed write completes "now", again and again). */
    chat->scheduled = INT64_MIN;
    if (chat->cur && now >= chat->deadline) {
        if (chat->failed) {
            complete_cur(chat, AT_FINAL_CANCELLED, -1, NULL, chat->failed);
            return;
        }
        log_warn("AT %s: timeout", cmd_log(chat->cur, name, sizeof(name)));
        chat->timeouts++;
        /* The module may answer it yet, or sit at a prompt: resync first,
         * so that nothing the callback sends is written before that. */
        hold_sync(chat, false);
        complete_cur(chat, AT_FINAL_TIMEOUT, -1, NULL, 0);
        first_attempt(chat);
        return;
    }
    switch (chat->sync) {
    case SYNC_DRAIN:
    case SYNC_ECHO_ON:
        if (now >= chat->quiet_at || now >= chat->drain_end)
            sync_drained(chat, now);
        break;
    case SYNC_MARK:
    case SYNC_ECHO_OFF:
        if (now >= chat->sync_deadline) {
            log_debug("AT resync: no answer to %s", chat->sync == SYNC_MARK ? "the marker" : "ATE0");
            sync_attempt(chat);
        }
        break;
    case SYNC_NONE:
    case SYNC_FAILED:
    default:
        break;
    }
    pump(chat);
}

void at_chat_cancel_all(struct at_chat *chat)
{
    static const char *const no_lines[1] = {NULL};
    struct at_response rsp = {.final = AT_FINAL_CANCELLED, .code = -1};
    size_t n = chat->q_count;
    struct at_cmd *cmd = chat->cur;

    at_lexer_reset(chat->lx);
    chat->urc = NULL;
    chat->urc_have = 0;
    chat->block_fn = NULL;
    chat->sync = SYNC_NONE;
    chat->sync_discard = false;
    chat->sync_attempt = 0;
    if (cmd) {
        rsp.lines = chat->lines;
        rsp.n_lines = chat->n_lines;
        rsp.truncated = chat->truncated;
        chat->lines[chat->n_lines] = NULL;
        chat->cur = NULL;
        reset_cur_state(chat);
        finish(chat, cmd, &rsp);
    }
    /* Only those queued now: commands the callbacks send stay queued. */
    rsp.lines = no_lines;
    rsp.n_lines = 0;
    rsp.truncated = false;
    while (n-- > 0 && chat->q_count > 0)
        finish(chat, q_pop(chat), &rsp);
    pump(chat);
}

int at_chat_read_block(struct at_chat *chat, size_t len,
                       void (*fn)(void *ctx, const uint8_t *data, size_t len), void *ctx)
{
    int rc;

    if (!fn)
        return -EINVAL;
    if (chat->block_fn)
        return -EBUSY;
    rc = at_lexer_expect_block(chat->lx, len);
    if (rc < 0)
        return rc;
    chat->block_fn = fn;
    chat->block_ctx = ctx;
    return 0;
}

bool at_chat_abort(struct at_chat *chat, const char *cmd_prefix)
{
    char name[64];

    if (!chat->cur || chat->failed || !cmd_prefix ||
        !starts_with(chat->cur->cmd, chat->cur->cmd_len, cmd_prefix))
        return false;
    log_warn("AT %s: aborted, the state it waits for has ended",
             cmd_log(chat->cur, name, sizeof(name)));
    /* The module may still show its prompt (it would take the next
     * command's bytes as data) or answer it late: resync first, so that
     * nothing is written before that is settled. */
    hold_sync(chat, false);
    complete_cur(chat, AT_FINAL_CANCELLED, -1, NULL, 0);
    first_attempt(chat);
    return true;
}

void at_chat_resync(struct at_chat *chat, bool discard, const char *why)
{
    resync(chat, discard, why ? why : "asked to");
}

bool at_chat_syncing(const struct at_chat *chat)
{
    return chat->sync != SYNC_NONE;
}

bool at_chat_idle(const struct at_chat *chat)
{
    return !chat->cur && chat->q_count == 0 && chat->sync == SYNC_NONE;
}

uint64_t at_chat_timeouts(const struct at_chat *chat)
{
    return chat->timeouts;
}
