/* Power: AT+CFUN and AT+CRESET.
 *
 * AT+CFUN=0 (or 4) switches the radio off: OK, then the enabled
 * +CREG/+CEREG URCs say 0, AT+CSQ says 99, AT+COPS? has no operator.
 * AT+CFUN=1 switches it on again: OK, then the URCs with the real state.
 * AT+CRESET answers OK and reboots: echo on, settings gone, the boot URCs
 * after --boot-ms. With --reset-unplug the pty is closed 200 ms after the OK
 * and a new one opened (--link follows), as a USB module re-enumerates. Events:
 * `cfun <n>`, `reset`. */
#include <string.h>

#include "sim.h"

#define RESET_UNPLUG_MS 200

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

const struct sim_cmd sim_power_cmds[] = {
    {"+CFUN", false, 0, cmd_cfun},
    {"+CRESET", false, 0, cmd_creset},
    {NULL, false, 0, NULL},
};
