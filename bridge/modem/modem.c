/* The modem: port ownership, bring-up script, recovery. See modem.h.
 *
 * This file holds the state and its changes, the chat's transport (its
 * writes, clock and timer), the boot URCs, the public API and the TE
 * character set; the port's life cycle (modem_port.c), the bring-up
 * (modem_bringup.c) and power and reset (modem_power.c) are its
 * siblings', listed in modem_int.h. */
#include "modem/modem_int.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "at/chat.h"
#include "at/port.h"
#include "at/script.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/cmqtt.h"

/* The chat's longest command line (its lexer's line bound, also the
 * send limit). */
#define CHAT_MAX_LINE 4096

/* Every single write the chat makes fits the port's output buffer: a
 * command line, or the data after a prompt with at most a line ahead of
 * it. (A larger one would be refused with -EMSGSIZE, never cut.) */
_Static_assert(AT_PORT_OUT_MAX >= CHAT_MAX_LINE + CMQTT_CA_MAX &&
                   AT_PORT_OUT_MAX >= CHAT_MAX_LINE + CMQTT_CERT_MAX &&
                   AT_PORT_OUT_MAX >= CHAT_MAX_LINE + CMQTT_PAYLOAD_MAX,
               "the port's output buffer holds the largest write");

/* --- state --------------------------------------------------------------- */

const char *modem_state_name(enum modem_state st)
{
    switch (st) {
    case MODEM_CLOSED: return "closed";
    case MODEM_PROBING: return "probing";
    case MODEM_BRINGUP: return "bringup";
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "sim_locked";
    case MODEM_NO_SIM: return "no_sim";
    case MODEM_LOW_POWER: return "low_power";
    case MODEM_RESETTING: return "resetting";
    default: return "?";
    }
}

void modem_set_state(struct modem *m, enum modem_state st)
{
    if (m->state == st)
        return;
    log_debug("modem: state %s -> %s", modem_state_name(m->state), modem_state_name(st));
    m->state = st;
    if (m->cbs.state_changed)
        m->cbs.state_changed(m->ctx, st);
}

void modem_cancel_retry(struct modem *m)
{
    loop_cancel_timer(m->loop, m->retry_timer);
    m->retry_timer = 0;
}

void modem_retry_in(struct modem *m, int64_t ms, loop_timer_cb cb)
{
    modem_cancel_retry(m);
    if (loop_add_timer(m->loop, ms, cb, m, &m->retry_timer) < 0)
        log_error("modem: cannot arm a timer");
}

/* --- chat transport ----------------------------------------------------- */

/* Never waits: what the port cannot write now it keeps and on_port
 * flushes. 0 means the port will deliver the bytes or be reported lost. */
static int tr_write(void *ctx, const uint8_t *buf, size_t len)
{
    struct modem *m = ctx;
    int r;

    if (!m->port)
        return -EPIPE;
    r = at_port_write(m->port, buf, len);
    if (r == 0)
        modem_output_moved(m, false);
    return r;
}

/* The bring-up's commands go straight to the chat (modem_send refuses
 * them until the modem is ready). */
static int chat_send(void *ctx, const char *cmd, const struct at_cmd_opts *o, at_done_cb cb,
                     void *cb_ctx)
{
    struct modem *m = ctx;

    return at_chat_send(m->chat, cmd, o, cb, cb_ctx);
}

static int tr_set_dtr(void *ctx, bool on)
{
    struct modem *m = ctx;

    return m->port ? at_port_set_dtr(m->port, on) : -EPIPE;
}

static int64_t tr_now(void *ctx)
{
    (void)ctx;
    return loop_now_ms();
}

static int64_t chat_timer_fired(void *ctx)
{
    struct modem *m = ctx;

    m->chat_timer = 0;
    at_chat_tick(m->chat);
    return 0;
}

static void tr_schedule(void *ctx, int64_t deadline_ms)
{
    struct modem *m = ctx;
    int64_t delay;

    loop_cancel_timer(m->loop, m->chat_timer);
    m->chat_timer = 0;
    if (deadline_ms < 0)
        return;
    delay = deadline_ms - loop_now_ms();
    if (loop_add_timer(m->loop, delay > 0 ? delay : 0, chat_timer_fired, m, &m->chat_timer) < 0)
        log_error("modem: cannot arm the command timer");
}

/* --- boot URCs ------------------------------------------------------------ */

/* A module that reboots on its own (watchdog, brown-out) announces itself;
 * echo is on again and our settings are gone: bring it up again. */
static void urc_boot(void *ctx, const char *const *lines, size_t n)
{
    struct modem *m = ctx;

    (void)n;
    if (m->state == MODEM_PROBING || m->state == MODEM_CLOSED)
        return;
    log_warn("modem: module restarted (%s); bringing it up again", lines[0]);
    at_chat_cancel_all(m->chat);
    modem_start_sync(m, false, "module restarted");
}

static const struct at_urc boot_urcs[] = {
    { "*ATREADY", 0, urc_boot },
    { "RDY", 0, urc_boot },
};
#define N_BOOT_URCS (sizeof(boot_urcs) / sizeof(boot_urcs[0]))

/* --- public --------------------------------------------------------------- */

struct modem *modem_new(struct loop *loop, const struct modem_opts *opts,
                        const struct modem_cbs *cbs, void *ctx)
{
    struct modem *m = calloc(1, sizeof(*m));
    const struct at_transport tr = {
        .write = tr_write, .now_ms = tr_now, .schedule = tr_schedule, .ctx = m,
        .synced = modem_tr_synced, .set_dtr = tr_set_dtr,
    };
    const struct at_script_host host = {
        .send = chat_send, .send_ctx = m, .default_timeout_ms = opts->command_timeout_ms,
        .ended = modem_bringup_ended, .ctx = m,
    };
    const struct at_chat_opts co = {
        .default_timeout_ms = opts->command_timeout_ms,
        .max_queue = 64,
        .max_line = CHAT_MAX_LINE,
        .max_block = CMQTT_PAYLOAD_MAX,   /* blocks are +CMQTTRX chunks only */
        /* Another process's marker must never look like ours. */
        .sync_seed = (uint32_t)getpid() * 2654435761u ^ (uint32_t)loop_now_ms() ^
                     (uint32_t)time(NULL),
    };

    if (!m)
        return NULL;
    m->loop = loop;
    m->opts = *opts;
    if (cbs)
        m->cbs = *cbs;
    m->ctx = ctx;
    m->backoff_ms = BACKOFF_MIN_MS;
    m->watch_fd = -1;
    m->chat = at_chat_new(&co, &tr);
    if (m->chat)
        m->run = at_script_run_new(&host);
    if (!m->run || at_chat_add_urcs(m->chat, boot_urcs, N_BOOT_URCS, m) < 0) {
        modem_free(m);
        return NULL;
    }
    return m;
}

void modem_free(struct modem *m)
{
    if (!m)
        return;
    modem_cancel_retry(m);
    loop_cancel_timer(m->loop, m->reset_timer);
    loop_cancel_timer(m->loop, m->chat_timer);
    modem_close_port(m);
    if (m->chat) {
        m->state = MODEM_CLOSED;   /* callbacks during cancel see "not ready" */
        at_chat_cancel_all(m->chat);
        at_chat_free(m->chat);
    }
    at_script_run_free(m->run);   /* after the chat: it held the run's command */
    free(m);
}

int modem_start(struct modem *m)
{
    modem_retry_in(m, 0, modem_reopen_fired);
    return 0;
}

enum modem_state modem_state(const struct modem *m)
{
    return m->state;
}

bool modem_quiet(const struct modem *m)
{
    return m->quiet;
}

uint64_t modem_reopens(const struct modem *m)
{
    return m->opens > 1 ? m->opens - 1 : 0;
}

struct at_chat *modem_chat(struct modem *m)
{
    return m->chat;
}

bool modem_sms_supported(const struct modem *m)
{
    return m->sms_supported;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    if (m->state != MODEM_READY)
        return -EAGAIN;
    return at_chat_send(m->chat, cmd, opts, cb, ctx);
}

/* --- TE character set --- */

void modem_set_charset_ucs2(struct modem *m, bool on)
{
    if (m->charset_ucs2 != on)
        log_debug("modem: TE character set now %s", on ? "UCS2" : "IRA");
    m->charset_ucs2 = on;
}

bool modem_charset_ucs2(const struct modem *m)
{
    return m->charset_ucs2;
}
