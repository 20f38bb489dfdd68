/* B/modem/power (see modem_int.h for the other files): AT+CFUN=1 and =0,
 * which move the state between READY and LOW_POWER, and AT+CRESET, which
 * stops all writing until the module has booted (its boot URC and the
 * bring-up again are modem.c's and modem_bringup.c's) or the wait ends. */
#include "modem/modem_int.h"

#include <errno.h>
#include <stdlib.h>

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"

/* --- power ------------------------------------------------------------------ */

struct power_req {
    struct modem *m;
    enum modem_power_mode mode;
    at_done_cb cb;
    void *ctx;
};

static int64_t reset_overdue(void *ctx)
{
    struct modem *m = ctx;

    m->reset_timer = 0;
    if (m->state != MODEM_RESETTING)
        return 0;
    if (!m->port) {
        log_warn("modem: no port %d s after AT+CRESET", MODEM_RESET_WAIT_MS / 1000);
        modem_set_state(m, MODEM_CLOSED);     /* the reopen backoff goes on */
        return 0;
    }
    /* Some firmwares reboot without a boot URC (or we missed it). */
    log_warn("modem: no boot URC %d s after AT+CRESET; probing", MODEM_RESET_WAIT_MS / 1000);
    at_chat_cancel_all(m->chat);
    modem_start_sync(m, false, "no boot URC after AT+CRESET");
    return 0;
}

static void power_done(void *ctx, const struct at_response *rsp)
{
    struct power_req p = *(struct power_req *)ctx;
    struct modem *m = p.m;

    free(ctx);
    if (rsp->final == AT_FINAL_OK) {
        switch (p.mode) {
        case MODEM_POWER_FULL:
            if (m->state == MODEM_LOW_POWER) {
                log_info("modem: full functionality (AT+CFUN=1)");
                modem_set_state(m, MODEM_READY);
            }
            break;
        case MODEM_POWER_MIN:
            if (m->state == MODEM_READY) {
                log_info("modem: minimum functionality (AT+CFUN=0)");
                modem_set_state(m, MODEM_LOW_POWER);
            }
            break;
        case MODEM_POWER_RESET:
        default:
            if (m->state == MODEM_READY || m->state == MODEM_LOW_POWER) {
                log_info("modem: resetting (AT+CRESET); waiting for the module to boot");
                /* Nothing more may be written to a module that reboots. */
                modem_cancel_retry(m);
                modem_set_state(m, MODEM_RESETTING);
                at_chat_cancel_all(m->chat);
                loop_cancel_timer(m->loop, m->reset_timer);
                m->reset_timer = 0;
                if (loop_add_timer(m->loop, MODEM_RESET_WAIT_MS, reset_overdue, m,
                                   &m->reset_timer) < 0)
                    log_error("modem: cannot arm the reset timer");
            }
            break;
        }
    }
    if (p.cb)
        p.cb(p.ctx, rsp);
}

int modem_power(struct modem *m, enum modem_power_mode mode, at_done_cb cb, void *ctx)
{
    static const char *const cmds[] = {
        [MODEM_POWER_FULL] = "AT+CFUN=1",
        [MODEM_POWER_MIN] = "AT+CFUN=0",
        [MODEM_POWER_RESET] = "AT+CRESET",
    };
    /* The module detaches from / attaches to the network first: slower
     * than an ordinary command on real hardware. */
    const struct at_cmd_opts o = {
        .timeout_ms = m->opts.command_timeout_ms > 15000 ? m->opts.command_timeout_ms : 15000,
    };
    struct power_req *p;
    int r;

    if ((unsigned)mode > MODEM_POWER_RESET)
        return -EINVAL;
    if (m->state != MODEM_READY && m->state != MODEM_LOW_POWER)
        return -EAGAIN;
    p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct power_req){ m, mode, cb, ctx };
    r = at_chat_send(m->chat, cmds[mode], &o, power_done, p);
    if (r < 0)
        free(p);
    return r;
}
