/* AT chat: command queue, timeouts, final results, URC dispatch.
 *
 * Everything runs on the loop thread. Entry points are at_chat_send(),
 * at_chat_feed() (lexer callbacks), at_chat_tick() and
 * at_chat_cancel_all(); user callbacks run from inside them, so the state is
 * always made consistent before a callback and re-read after it.
 *
 * This file is the command queue and each command's life cycle, and the
 * public API; what a line is (chat_lines.c) and the resync (chat_sync.c)
 * are its siblings', listed in chat_int.h. */
#include "at/chat_int.h"

#include "at/lexer.h"
#include "at/result.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *at_final_name(enum at_final f)
{
    return at_result_final_name(f);
}


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

bool chat_starts_with(const char *s, size_t len, const char *prefix)
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
void chat_log_traffic(const char *dir, const char *s, size_t len)
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
const char *chat_cmd_log(const struct at_cmd *c, char *buf, size_t size)
{
    at_chat_mask(c->cmd, c->cmd_len, buf, size);
    return buf;
}

/* ---- scheduling ---------------------------------------------------- */

void chat_update_schedule(struct at_chat *chat)
{
    int64_t want = -1;

    if (chat->cur)
        want = chat->ok_held_until > 0 ? chat->ok_held_until : chat->deadline;
    else if (chat->sync == SYNC_DRAIN || chat->sync == SYNC_ECHO_ON)
        want = chat->quiet_at < chat->drain_end ? chat->quiet_at : chat->drain_end;
    else if (chat->sync == SYNC_MARK || chat->sync == SYNC_ECHO_OFF)
        want = chat->sync_deadline;
    else
        want = chat_wake_deadline(chat);
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
    chat->ok_held_until = 0;
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


void chat_complete_cur(struct at_chat *chat, enum at_final final, int code, const char *text,
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
    chat->last_busy = chat->tr.now_ms(chat->tr.ctx);
    reset_cur_state(chat);
    at_lexer_expect_prompt(chat->lx, false);
    log_debug("AT %s -> %s code=%d%s%s", chat_cmd_log(cmd, name, sizeof(name)),
              at_final_name(final), code, text ? " " : "", text ? text : "");
    /* The info lines stay put until chat_pump() starts another command, which
     * it does only after this callback returned. */
    finish(chat, cmd, &rsp);
    chat_pump(chat);
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
    if (cmd->still_wanted && !cmd->still_wanted(cmd->ctx)) {
        char name[64];

        /* Completed from the tick like a failed write: never inside
         * at_chat_send(). */
        log_info("AT %s: dropped, no longer wanted", chat_cmd_log(cmd, name, sizeof(name)));
        chat->failed = -ECANCELED;
        chat->deadline = now;
        return;
    }
    chat_log_traffic("AT>", cmd->cmd, cmd->cmd_len);
    if (cmd->written)
        cmd->written(cmd->ctx);
    rc = chat_write(chat, (const uint8_t *)cmd->cmd, cmd->cmd_len + 1);
    if (rc < 0) {
        /* Completed from the tick, so that no callback runs inside
         * at_chat_send() and a dead port cannot spin us here. */
        char name[64];

        log_warn("AT write of %s failed: %s", chat_cmd_log(cmd, name, sizeof(name)), strerror(-rc));
        chat->failed = rc;
        chat->deadline = now;
    }
}

/* Starts the next command if the line is free. Not from inside a done
 * callback (the command finishing still owns the info lines), and not
 * recursively: the loop picks up whatever the callbacks queued. */
void chat_pump(struct at_chat *chat)
{
    if (chat->completing || chat->pumping)
        return;
    chat->pumping = true;
    if (!chat->cur && chat->sync == SYNC_NONE && chat->q_count > 0 && chat_wake_ready(chat))
        start(chat, q_pop(chat));
    chat->pumping = false;
    chat_update_schedule(chat);
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
    chat->last_write = -1;
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
    chat->lx = at_lexer_new(opts->max_line, opts->max_block, chat_lex_cb, chat);
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
    c->still_wanted = opts->still_wanted;
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
    chat_pump(chat);
    return 0;
}

void at_chat_feed(struct at_chat *chat, const uint8_t *data, size_t len)
{
    if (len == 0)
        return;
    if (chat->sync == SYNC_DRAIN || chat->sync == SYNC_ECHO_ON) {
        int64_t q = chat->tr.now_ms(chat->tr.ctx) + AT_CHAT_QUIET_MS;

        chat->quiet_at = q < chat->drain_end ? q : chat->drain_end;
        chat_update_schedule(chat);
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
    if (chat_wake_held_done(chat, now))
        return;
    if (chat->cur && now >= chat->deadline) {
        if (chat->failed) {
            chat_complete_cur(chat, AT_FINAL_CANCELLED, -1, NULL, chat->failed);
            return;
        }
        log_warn("AT %s: timeout", chat_cmd_log(chat->cur, name, sizeof(name)));
        chat->timeouts++;
        /* The module may answer it yet, or sit at a prompt: resync first,
         * so that nothing the callback sends is written before that. */
        chat_hold_sync(chat, false);
        chat_complete_cur(chat, AT_FINAL_TIMEOUT, -1, NULL, 0);
        chat_first_attempt(chat);
        return;
    }
    switch (chat->sync) {
    case SYNC_DRAIN:
    case SYNC_ECHO_ON:
        if (now >= chat->quiet_at || now >= chat->drain_end)
            chat_sync_drained(chat, now);
        break;
    case SYNC_MARK:
    case SYNC_ECHO_OFF:
        if (now >= chat->sync_deadline) {
            log_debug("AT resync: no answer to %s", chat->sync == SYNC_MARK ? "the marker" : "ATE0");
            chat_sync_attempt(chat);
        }
        break;
    case SYNC_NONE:
    case SYNC_FAILED:
    default:
        break;
    }
    chat_wake_tick(chat, now);
    chat_pump(chat);
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
    chat_wake_reset(chat);
    chat->dtr_on = false;   /* the port closes: whatever it was, set it again */
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
    chat_pump(chat);
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
        !chat_starts_with(chat->cur->cmd, chat->cur->cmd_len, cmd_prefix))
        return false;
    log_warn("AT %s: aborted, the state it waits for has ended",
             chat_cmd_log(chat->cur, name, sizeof(name)));
    /* The module may still show its prompt (it would take the next
     * command's bytes as data) or answer it late: resync first, so that
     * nothing is written before that is settled. */
    chat_hold_sync(chat, false);
    chat_complete_cur(chat, AT_FINAL_CANCELLED, -1, NULL, 0);
    chat_first_attempt(chat);
    return true;
}


bool at_chat_idle(const struct at_chat *chat)
{
    return !chat->cur && chat->q_count == 0 && chat->sync == SYNC_NONE;
}

uint64_t at_chat_timeouts(const struct at_chat *chat)
{
    return chat->timeouts;
}
