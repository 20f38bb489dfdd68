/* Power: AT+CFUN, AT+CRESET and AT+CSCLK.
 *
 * AT+CFUN=0 (or 4) switches the radio off: OK, then the enabled
 * +CREG/+CEREG URCs say 0, AT+CSQ says 99, AT+COPS? has no operator.
 * AT+CFUN=1 switches it on again: OK, then the URCs with the real state.
 * AT+CRESET answers OK and reboots: echo on, settings gone, the boot URCs
 * after --boot-ms. With --reset-unplug the pty is closed 200 ms after the OK
 * and a new one opened (--link follows), as a USB module re-enumerates.
 * AT+CSCLK=2 lets the module sleep after SLEEP_IDLE_MS without a byte from
 * the host (its own URCs do not keep it awake, and still go out while it
 * sleeps): the byte that wakes it is lost, so a lone "AT" answers nothing
 * (the module sees "T"). AT+CSCLK=1 sleeps while DTR is off: a pty has no
 * DTR, so the value is only kept. The module forgets both at boot.
 * `wake-late-ms <ms>` makes a slow waker of it: the byte that wakes it is
 * kept, and a lone AT that woke it is answered ms later (what follows
 * waits, as behind any deferred result).
 * Events: `cfun <n>`, `reset`, `csclk <n>`, `sleep` (fell asleep),
 * `wake <hex>` (the lost byte), `wake-kept <hex>`, `wake-answered`. */
#include <string.h>
#include <strings.h>

#include "sim.h"

#define RESET_UNPLUG_MS 200
/* The bridge's own threshold (AT_CHAT_WAKE_IDLE_MS): the same 5 s. */
#define SLEEP_IDLE_MS 5000

static void radio_changed(struct sim *s)
{
    sim_modem_reg_urcs(s);
}

static struct sim_result cmd_cfun(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long n, rst = 0;

    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CFUN: %d", s->radio_off ? 0 : 1);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CFUN: (0,1,4),(0-1)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        break;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
    if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 2 ||
        !sim_param_int(&p, 0, 0, 4, &n) || (n != 0 && n != 1 && n != 4) ||
        (p.n == 2 && !sim_param_int(&p, 1, 0, 1, &rst)))
        return SIM_RES_CME(50);
    sim_event(s, "cfun %ld", n);
    bool off = n != 1;
    if (off != s->radio_off) {
        s->radio_off = off;
        sim_log(s, "radio %s", off ? "off" : "on");
        if (s->card == SIM_CARD_READY)
            sim_timer_set(s, SIM_TIMER_POWER, 0, radio_changed);
    }
    return SIM_RES_OK;
}

static void reset_now(struct sim *s)
{
    if (s->opt.reset_unplug) {
        sim_pty_flush(s);            /* the OK goes out before the port does */
        sim_modem_stop(s);
        sim_pty_close(s);
        int err = sim_pty_open(s);
        if (err < 0) {
            sim_log(s, "reset: cannot create a pty: %s", strerror(-err));
            return;
        }
    }
    sim_modem_boot(s);
}

static struct sim_result cmd_creset(struct sim *s, const struct sim_at *at)
{
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    sim_event(s, "reset");
    /* A USB module drops off the bus a moment after its OK; a pty closed
     * at once would take the unread OK with it (hangup flushes). */
    sim_timer_set(s, SIM_TIMER_POWER, s->opt.reset_unplug ? RESET_UNPLUG_MS : 0, reset_now);
    return SIM_RES_OK;
}

static void fall_asleep(struct sim *s)
{
    s->asleep = true;
    sim_log(s, "asleep (AT+CSCLK=2, %d ms without input)", SLEEP_IDLE_MS);
    sim_event(s, "sleep");
}

bool sim_power_byte_lost(struct sim *s, uint8_t c)
{
    if (s->csclk == 2)
        sim_timer_set(s, SIM_TIMER_SLEEP, SLEEP_IDLE_MS, fall_asleep);
    if (!s->asleep)
        return false;
    s->asleep = false;
    if (s->wake_late_ms > 0) {
        s->wake_late = true;
        sim_log(s, "woken by 0x%02X, which is kept (wake-late-ms)", c);
        sim_event(s, "wake-kept %02X", c);
        return false;
    }
    sim_log(s, "woken by 0x%02X, which is lost", c);
    sim_event(s, "wake %02X", c);
    return true;
}

static void wake_answered(struct sim *s)
{
    sim_event(s, "wake-answered");
    sim_final(s, SIM_RES_OK);
}

bool sim_power_wake_line(struct sim *s, const char *line)
{
    if (!s->wake_late)
        return false;
    s->wake_late = false;
    if (strcasecmp(line, "AT") != 0)
        return false;
    sim_log(s, "answering the AT that woke the module in %d ms", s->wake_late_ms);
    sim_defer(s, s->wake_late_ms, wake_answered);
    return true;
}

static struct sim_result cmd_csclk(struct sim *s, const struct sim_at *at)
{
    struct sim_result r = sim_int_setting(s, at, "+CSCLK", &s->csclk, 2, "");

    if (at->kind != SIM_AT_SET || r.final != SIM_OK)
        return r;
    sim_event(s, "csclk %d", s->csclk);
    /* The clock runs from this command, the last input. */
    if (s->csclk == 2)
        sim_timer_set(s, SIM_TIMER_SLEEP, SLEEP_IDLE_MS, fall_asleep);
    else
        sim_timer_stop(s, SIM_TIMER_SLEEP);
    return r;
}

const struct sim_cmd sim_power_cmds[] = {
    {"+CFUN", false, 0, cmd_cfun},
    {"+CRESET", false, 0, cmd_creset},
    {"+CSCLK", false, 0, cmd_csclk},
    {NULL, false, 0, NULL},
};

/* wake-late-ms <ms>: how late a lone AT that woke the module is answered;
 * 0 (the default): the byte that wakes it is lost. Kept across boots. */
static void ctl_wake_late_ms(struct sim *s, char *args)
{
    long v;

    if (!sim_parse_long(args, 0, 60000, &v)) {
        sim_ctl_error(s, "usage: wake-late-ms <0-60000>");
        return;
    }
    s->wake_late_ms = (int)v;
}

const struct sim_ctl sim_power_ctls[] = {
    {"wake-late-ms", ctl_wake_late_ms},
    {NULL, NULL},
};
