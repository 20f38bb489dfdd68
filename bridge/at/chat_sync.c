/* The AT chat staying in step (see chat.h for the protocol, chat_int.h for
 * the other files): the resync that ESC, a drain, ATE1, a marker made of
 * harmless basic commands and its echo, then ATE0 bring about; the lines
 * that arrive meanwhile; at_chat_resync and at_chat_syncing. Timeouts
 * start it from chat.c. */
#include "at/chat_int.h"

#include "at/lexer.h"
#include "core/log.h"

#include <string.h>
/* ---- staying in step (chat.h) ---------------------------------------- */

/* OK, ERROR, +CME ERROR, +CMS ERROR: the finals that end a command. The
 * call results (NO CARRIER, BUSY, ...) also come on their own when a call
 * ends, so they prove nothing. */
bool chat_is_step_final(struct at_chat *chat, const char *s, size_t len)
{
    const char *text;
    int code, f = chat_parse_final(chat, s, len, &code, &text);

    return f == AT_FINAL_OK || f == AT_FINAL_ERROR || f == AT_FINAL_CME || f == AT_FINAL_CMS;
}

static int sync_write(struct at_chat *chat, const char *what)
{
    size_t n = strlen(what);
    int rc;

    chat_log_traffic("AT>", what, n);
    rc = chat_write(chat, (const uint8_t *)what, n);
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
    else  /* the owner tells the user (tr.synced), with what to check */
        log_debug("AT resync failed after %u attempts: the module does not answer",
                  chat->sync_attempt);
    chat->sync_attempt = 0;
    if (chat->tr.synced) {
        chat->completing++;
        chat->tr.synced(chat->tr.ctx, ok);
        chat->completing--;
    }
    chat_pump(chat);
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

void chat_sync_attempt(struct at_chat *chat)
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
    chat_update_schedule(chat);
}

/* The drain phases are over: the next step. */
void chat_sync_drained(struct at_chat *chat, int64_t now)
{
    if (chat->sync == SYNC_DRAIN) {
        if (sync_write(chat, "ATE1\r") < 0) {
            sync_end(chat, false);
            return;
        }
        drain_start(chat, SYNC_ECHO_ON, now);
        chat_update_schedule(chat);
        return;
    }
    make_marker(chat);
    if (sync_write(chat, chat->marker) < 0) {
        sync_end(chat, false);
        return;
    }
    chat->sync = SYNC_MARK;
    chat->sync_deadline = now + AT_CHAT_SYNC_STEP_MS;
    chat_update_schedule(chat);
}

void chat_sync_line(struct at_chat *chat, const char *s, size_t len)
{
    bool after_marker = chat->sync == SYNC_ECHO_OFF || chat->marker_seen;

    if (chat->sync == SYNC_MARK && !chat->marker_seen && len == MARKER_LEN &&
        memcmp(s, chat->marker, len) == 0) {
        chat->marker_seen = true;
        return;
    }
    if (after_marker && chat_is_step_final(chat, s, len)) {
        if (chat->sync == SYNC_MARK) {
            /* The marker's own answer: in step. Echo off again. */
            if (sync_write(chat, "ATE0\r") < 0) {
                sync_end(chat, false);
                return;
            }
            chat->sync = SYNC_ECHO_OFF;
            chat->sync_deadline = chat->tr.now_ms(chat->tr.ctx) + AT_CHAT_SYNC_STEP_MS;
            chat_update_schedule(chat);
            return;
        }
        sync_end(chat, true);
        return;
    }
    if (chat->sync_discard && !after_marker) {
        log_debug("AT resync: stale line dropped");
        return;
    }
    if (chat_try_urc(chat, s, len))
        return;
    log_debug("AT resync: line dropped");
}

/* Holds the queue for a resync, writing nothing yet: the command in
 * flight is completed after this, and its callback may send (the command
 * waits) or cancel everything (which ends the resync: the owner closes the
 * port). chat_first_attempt() then starts it, if it still stands. */
void chat_hold_sync(struct at_chat *chat, bool discard)
{
    if (chat->sync != SYNC_NONE && chat->sync != SYNC_FAILED) {
        chat->sync_discard = chat->sync_discard || discard;
        return;
    }
    drain_start(chat, SYNC_DRAIN, chat->tr.now_ms(chat->tr.ctx));
    chat->sync_discard = discard;
    chat->sync_attempt = 0;
    chat_wake_reset(chat);
}

void chat_first_attempt(struct at_chat *chat)
{
    if (chat->sync == SYNC_DRAIN && chat->sync_attempt == 0)
        chat_sync_attempt(chat);
}

void chat_resync(struct at_chat *chat, bool discard, const char *why)
{
    char name[64];

    if (chat->sync != SYNC_NONE && chat->sync != SYNC_FAILED) {
        chat_hold_sync(chat, discard);
        return;
    }
    /* At every open (discard: what the port held is stale) it is routine,
     * not a warning a new user should worry about. */
    log_msg(chat->quiet ? LOG_DEBUG : discard ? LOG_INFO : LOG_WARN,
            "AT resynchronising: %s%s%s", why, chat->cur ? "; dropping " : "",
            chat->cur ? chat_cmd_log(chat->cur, name, sizeof(name)) : "");
    chat_hold_sync(chat, discard);
    if (chat->cur)
        chat_complete_cur(chat, AT_FINAL_OUT_OF_STEP, -1, NULL, 0);
    chat_first_attempt(chat);
}

/* The command in flight got an answer that cannot be its own. */
void chat_out_of_step(struct at_chat *chat, const char *why)
{
    chat_resync(chat, false, why);
}
void at_chat_resync(struct at_chat *chat, bool discard, const char *why)
{
    chat_resync(chat, discard, why ? why : "asked to");
}

void at_chat_set_quiet(struct at_chat *chat, bool quiet)
{
    chat->quiet = quiet;
}

bool at_chat_syncing(const struct at_chat *chat)
{
    return chat->sync != SYNC_NONE;
}
