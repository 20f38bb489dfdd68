/* The AT chat and a module that sleeps (chat.h says when and why; see
 * chat_int.h for the other files): every write passes here to note the
 * time (and, with DTR, to wake the module first); the next command waits
 * for a wake (a lone AT, or DTR on) when the module may be asleep; a late
 * answer to that AT is recognised (a plain command's OK is held until it
 * is told from the wake's); DTR goes off when the chat is idle. */
#include "at/chat_int.h"

#include "core/log.h"

#include <errno.h>
#include <string.h>

static int64_t now_ms(const struct at_chat *chat)
{
    return chat->tr.now_ms(chat->tr.ctx);
}

static void set_dtr(struct at_chat *chat, bool on)
{
    int rc = chat->tr.set_dtr(chat->tr.ctx, on);

    log_debug("AT DTR %s", on ? "on" : "off");
    if (rc < 0)
        log_warn("AT: cannot turn DTR %s: %s", on ? "on" : "off", strerror(-rc));
    /* Failed or not: the next write must not try again and again. */
    chat->dtr_on = on;
}

/* Every write goes through here. */
int chat_write(struct at_chat *chat, const uint8_t *buf, size_t len)
{
    int rc;

    if (chat->sleep == AT_SLEEP_DTR && !chat->dtr_on)
        set_dtr(chat, true);
    rc = chat->tr.write(chat->tr.ctx, buf, len);
    chat->last_write = chat->last_busy = now_ms(chat);
    return rc;
}

/* The module cannot be asleep: DTR is on, or (rx) bytes went to it less
 * than AT_CHAT_WAKE_IDLE_MS ago. */
static bool surely_awake(const struct at_chat *chat, int64_t now)
{
    if (chat->sleep == AT_SLEEP_DTR)
        return chat->dtr_on;
    return chat->last_write >= 0 && now - chat->last_write < AT_CHAT_WAKE_IDLE_MS;
}

/* The next command may be written now; false while a wake goes first
 * (chat_wake_tick or the wake's answer lets it go). */
bool chat_wake_ready(struct at_chat *chat)
{
    int64_t now;

    if (chat->sleep == AT_SLEEP_OFF)
        return true;
    if (chat->waking)
        return false;
    now = now_ms(chat);
    if (surely_awake(chat, now))
        return true;
    /* Counted before it is written: at_chat_wakes() tells a wake's write. */
    chat->wakes++;
    chat->waking = true;
    chat->wake_end = now + AT_CHAT_WAKE_WAIT_MS;
    if (chat->sleep == AT_SLEEP_DTR) {
        set_dtr(chat, true);
        return false;
    }
    log_debug("AT> AT (wake: nothing written for %s)",
              chat->last_write < 0 ? "ever" : "5 s or more");
    if (chat_write(chat, (const uint8_t *)"AT\r", 3) < 0) {
        /* Refused: the command's own write reports the port. */
        chat->waking = false;
        return true;
    }
    return false;
}

/* An OK the command in flight cannot have earned yet: it waits for its
 * prompt, or for the info line without which an OK is out of step. */
static bool too_early_for_ok(const struct at_chat *chat)
{
    const struct at_cmd *cmd = chat->cur;

    return (cmd->data && !chat->data_written) ||
           (cmd->expect_info && !chat->info_seen && !cmd->after_ok_prefix);
}

/* A command whose whole answer may be a lone OK, with nothing of it seen
 * yet (ATD, AT+CHUP, AT+CMGD): the wake's late OK looks just like it. */
static bool plain_so_far(const struct at_chat *chat)
{
    const struct at_cmd *cmd = chat->cur;

    return !cmd->data && !cmd->after_ok_prefix && chat->n_lines == 0;
}

/* While an OK is held: the next final (the command's own: the module
 * answers in order) shows that the OK held was the wake's. */
static void held_line(struct at_chat *chat, const char *s, size_t len)
{
    const char *text;
    int code;

    if (chat_parse_final(chat, s, len, &code, &text) < 0)
        return;
    log_debug("AT wake: another final: the OK held was the wake's");
    chat->ok_held_until = 0;
}

/* The late window: the wake got no answer in time and the command went.
 * The module answers in order, so only the first final from here on may
 * be the wake's; the window closes with it. */
static bool late_window_line(struct at_chat *chat, const char *s, size_t len)
{
    int64_t until;

    chat->wake_owed_until = 0;
    if (!chat->cur || !(len == 2 && memcmp(s, "OK", 2) == 0))
        return false;
    /* A command whose write failed never reached the module: the OK
     * cannot be its own (the tick completes it CANCELLED). */
    if (chat->failed || too_early_for_ok(chat)) {
        log_debug("AT wake: its answer came late");
        return true;
    }
    if (!plain_so_far(chat))
        return false;
    /* The command's OK, or the wake's with the command's answer to
     * follow: held until another final tells, or the line stays quiet
     * (the command's timeout ends the wait too). */
    until = now_ms(chat) + AT_CHAT_QUIET_MS;
    chat->ok_held_until = until < chat->deadline ? until : chat->deadline;
    log_debug("AT wake: an OK that may be the wake's, held %d ms", AT_CHAT_QUIET_MS);
    chat_update_schedule(chat);
    return true;
}

/* A line while no resync runs: true when it was the wake AT's answer (or
 * is held as such). */
bool chat_wake_line(struct at_chat *chat, const char *s, size_t len)
{
    if (chat->cur && chat->ok_held_until > 0) {
        held_line(chat, s, len);
        return false;
    }
    if (!chat->waking && now_ms(chat) >= chat->wake_owed_until)
        return false;
    if (!chat_is_step_final(chat, s, len))
        return false;
    if (chat->waking) {
        log_debug("AT wake: answered");
        chat->waking = false;
        chat_pump(chat);
        return true;
    }
    return late_window_line(chat, s, len);
}

/* An OK held until now with no final after it: the command's own. */
bool chat_wake_held_done(struct at_chat *chat, int64_t now)
{
    if (!chat->cur || chat->ok_held_until == 0 || now < chat->ok_held_until)
        return false;
    log_debug("AT wake: no other final: the OK held was the command's");
    chat_complete_cur(chat, AT_FINAL_OK, -1, NULL, 0);
    return true;
}

void chat_wake_tick(struct at_chat *chat, int64_t now)
{
    if (chat->waking && now >= chat->wake_end) {
        /* The usual case: the module lost the 'A' that woke it and saw no
         * command. Should it answer after all, that OK is the wake's. */
        log_debug("AT wake: no answer; sending the command");
        chat->waking = false;
        if (chat->sleep == AT_SLEEP_RX)
            chat->wake_owed_until = now - AT_CHAT_WAKE_WAIT_MS + AT_CHAT_WAKE_LATE_MS;
    }
    if (chat->sleep == AT_SLEEP_DTR && chat->dtr_on && at_chat_idle(chat) &&
        now >= chat->last_busy + AT_CHAT_WAKE_IDLE_MS)
        set_dtr(chat, false);
}

/* When chat_wake_tick has something to do, or -1. */
int64_t chat_wake_deadline(const struct at_chat *chat)
{
    if (chat->waking)
        return chat->wake_end;
    if (chat->sleep == AT_SLEEP_DTR && chat->dtr_on && at_chat_idle(chat))
        return chat->last_busy + AT_CHAT_WAKE_IDLE_MS;
    return -1;
}

/* A resync (its drain takes any late answer) or cancel_all. */
void chat_wake_reset(struct at_chat *chat)
{
    chat->waking = false;
    chat->wake_owed_until = 0;
}

int at_chat_set_sleep(struct at_chat *chat, enum at_chat_sleep mode)
{
    if (mode == AT_SLEEP_DTR && !chat->tr.set_dtr)
        return -ENOTSUP;
    chat->sleep = mode;
    chat_wake_reset(chat);
    /* Unknown until set: the next write turns it on. */
    chat->dtr_on = false;
    /* A command that waited for a wake goes now (or wakes anew). */
    chat_pump(chat);
    return 0;
}

uint64_t at_chat_wakes(const struct at_chat *chat)
{
    return chat->wakes;
}
