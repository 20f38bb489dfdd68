/* The AT chat's line dispatch (see chat_int.h for the other files): what
 * each line from the module is, in the order chat.h gives: the echo, a
 * final result, the command's info lines, a URC (collecting its extra
 * lines), bare info; and the lexer's other events (a prompt, a block, an
 * overlong line). Lines during a resync go to chat_sync.c; completing a
 * command is chat.c's. */
#include "at/chat_int.h"

#include "at/lexer.h"
#include "at/result.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
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

/* ---- line classification ------------------------------------------- */

/* OK, ERROR, ... or +CME/+CMS ERROR: with or without the space, numeric or
 * verbose (AT+CMEE=1 or 2; the A7670 logs show both). Returns -1 for
 * anything else. *text points into chat->final_text. */
int chat_parse_final(struct at_chat *chat, const char *s, size_t len, int *code,
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
    if (chat_starts_with(s, len, "+CME ERROR:"))
        f = AT_FINAL_CME;
    else if (chat_starts_with(s, len, "+CMS ERROR:"))
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
                     chat_cmd_log(chat->cur, name, sizeof(name)), chat->max_lines, chat->arena_cap);
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
bool chat_try_urc(struct at_chat *chat, const char *s, size_t len)
{
    for (size_t t = 0; t < chat->n_tables; t++) {
        const struct urc_table *tb = &chat->tables[t];

        for (size_t k = 0; k < tb->n; k++) {
            const struct at_urc *u = &tb->entries[k];

            if (!chat_starts_with(s, len, u->prefix))
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
    f = chat_parse_final(chat, s, len, &code, &text);
    if (f >= 0) {
        if (f == AT_FINAL_OK && cmd->expect_info && !chat->info_seen &&
            !(cmd->after_ok_prefix && !chat->result_seen)) {
            chat_out_of_step(chat, "OK without the expected information line");
            return;
        }
        /* A command with data is answered OK only after its data (an
         * error may come before the prompt): this OK is someone else's. */
        if (f == AT_FINAL_OK && cmd->data && !chat->data_written) {
            chat_out_of_step(chat, "OK before the data prompt");
            return;
        }
        if (f == AT_FINAL_OK && cmd->after_ok_prefix) {
            /* CMQTT: OK only acknowledges the request; the outcome is the
             * result line, which the A7670 sends after OK (or, for
             * CMQTTDISC, sometimes before). */
            chat->ok_seen = true;
            chat->prompt_seen = false;
            if (chat->result_seen)
                chat_complete_cur(chat, AT_FINAL_OK, -1, NULL, 0);
            return;
        }
        chat_complete_cur(chat, (enum at_final)f, code, text, 0);
        return;
    }
    if (cmd->after_ok_prefix && !chat->result_seen &&
        chat_starts_with(s, len, cmd->after_ok_prefix)) {
        add_info(chat, s, len);
        chat->result_seen = true;
        chat->info_seen = true;
        if (chat->ok_seen)
            chat_complete_cur(chat, AT_FINAL_OK, -1, NULL, 0);
        return;
    }
    /* 3. The command's own info lines. */
    if (cmd->info_prefix && chat_starts_with(s, len, cmd->info_prefix)) {
        add_info(chat, s, len);
        chat->info_seen = true;
        return;
    }
    /* 4. URCs. */
    if (chat_try_urc(chat, s, len))
        return;
    /* 5. Bare info lines (CGSN digits, the PDU after +CMGR:). */
    add_info(chat, s, len);
}

/* ---- lexer events ---------------------------------------------------- */

static void on_line(struct at_chat *chat, const char *s, size_t len)
{
    chat_log_traffic("AT<", s, len);
    if (chat->urc) {
        urc_collect(chat, s, len);
        return;
    }
    if (chat->sync != SYNC_NONE) {
        chat_sync_line(chat, s, len);
        return;
    }
    if (chat_wake_line(chat, s, len))
        return;
    if (chat->cur && !chat->failed) {
        line_in_flight(chat, s, len);
        return;
    }
    if (chat_try_urc(chat, s, len))
        return;
    if (chat_is_step_final(chat, s, len)) {
        /* An answer nobody asked for: a late one, or we lost count. */
        chat_resync(chat, false, "a final result with no command in flight");
        return;
    }
    log_debug("AT unsolicited line dropped");
}

static void on_prompt(struct at_chat *chat)
{
    struct at_cmd *cmd = chat->cur;
    char name[64];
    int rc;

    chat_log_traffic("AT<", ">", 1);
    if (!cmd || chat->failed || chat->sync != SYNC_NONE) {
        log_debug("AT prompt with no command in flight, ignored");
        return;
    }
    /* The module now waits for data whatever we meant: a timeout sends
     * ESC to get it out of there. */
    chat->prompt_seen = true;
    if (!cmd->data || chat->data_written) {
        log_debug("AT prompt not expected by %s, ignored", chat_cmd_log(cmd, name, sizeof(name)));
        return;
    }
    chat->data_written = true;
    at_lexer_expect_prompt(chat->lx, false);
    chat->deadline = chat->tr.now_ms(chat->tr.ctx) + cmd->timeout_ms;
    chat_update_schedule(chat);
    log_debug("AT> [%zu bytes of data]", cmd->data_len);
    if (cmd->data_len == 0)
        return;
    rc = chat_write(chat, cmd->data, cmd->data_len);
    if (rc < 0) {
        log_warn("AT write of data for %s failed: %s", chat_cmd_log(cmd, name, sizeof(name)),
                 strerror(-rc));
        chat->failed = rc;
        chat->deadline = chat->tr.now_ms(chat->tr.ctx);
        chat_update_schedule(chat);
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

void chat_lex_cb(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len)
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

