/* USSD: AT+CUSD and the +CUSD answer of the "network".
 *
 * AT+CUSD=1,"<code>"[,<dcs>] answers OK, then (just after the OK) the
 * +CUSD URC: the one `ussd-reply` set for this request, else a default
 * balance text. `ussd-silent` makes the next request get no answer at all
 * (the host's wait runs out). Every request is reported as the event
 * `ussd <code>`, a cancel (AT+CUSD=2) as `ussd-cancel`. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define DEFAULT_REPLY "Your balance is 5.00 EUR"

void sim_ussd_reset(struct sim *s)
{
    s->ussd.pending[0] = '\0';
}

/* <str> of AT+CUSD in the TE character set -> the code as text. */
static bool te_code(const char *str, bool ucs2, char *out, size_t size)
{
    size_t n = strlen(str), o = 0;

    if (!ucs2) {
        if (n >= size)
            return false;
        memcpy(out, str, n + 1);
        return true;
    }
    if (n % 4 || n / 4 >= size)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        uint8_t b[2];
        if (sim_hex_decode(str + i, 4, b, sizeof(b)) != 2 || b[0] != 0 || b[1] >= 0x80 || !b[1])
            return false;
        out[o++] = (char)b[1];
    }
    out[o] = '\0';
    return true;
}

static void answer(struct sim *s)
{
    if (s->ussd.pending[0])
        sim_urc(s, "%s", s->ussd.pending);
    s->ussd.pending[0] = '\0';
}

static struct sim_result cmd_cusd(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long n;

    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CUSD: 1");
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CUSD: (0-2)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        break;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
    if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 3 ||
        !sim_param_int(&p, 0, 0, 2, &n))
        return SIM_RES_CME(50);
    if (n == 2) {
        sim_event(s, "ussd-cancel");
        sim_timer_stop(s, SIM_TIMER_USSD);
        s->ussd.pending[0] = '\0';
        return SIM_RES_OK;
    }
    if (p.n < 2)
        return SIM_RES_OK;       /* presentation on/off only */
    char code[SIM_PARAM_LEN];
    bool ucs2 = sim_cscs_ucs2(s);
    if (!p.quoted[1] || !p.v[1][0] || !te_code(p.v[1], ucs2, code, sizeof(code)) ||
        strspn(code, "0123456789*#+") != strlen(code))
        return SIM_RES_CME(50);
    if (!sim_registered(s))
        return SIM_RES_CME(30);  /* no network service (also AT+CFUN=0) */
    sim_event(s, "ussd %s", code);

    struct sim_ussd *u = &s->ussd;
    bool silent = u->armed && u->silent;
    char hex[2 * SIM_USSD_TEXT_MAX + 1];
    if (!u->armed) {
        snprintf(u->pending, sizeof(u->pending), "+CUSD: 0,\"%s\",15",
                 sim_te_str(s, DEFAULT_REPLY, hex, sizeof(hex)));
    } else if (u->m < 0 || silent) {
        u->pending[0] = '\0';
    } else if (u->dcs < 0) {
        snprintf(u->pending, sizeof(u->pending), "+CUSD: %d", u->m);
    } else if (ucs2) {
        /* UCS2: every alphabet is converted into UCS-2 hex (27.007 7.15),
         * so no line break reaches the line raw. */
        if (!sim_ucs2_hex(u->text, hex, sizeof(hex)))
            hex[0] = '\0';
        snprintf(u->pending, sizeof(u->pending), "+CUSD: %d,\"%s\",%d", u->m, hex, u->dcs);
    } else if (u->dcs == 72) {
        if (!sim_ucs2_hex(u->text, hex, sizeof(hex)))
            hex[0] = '\0';
        snprintf(u->pending, sizeof(u->pending), "+CUSD: %d,\"%s\",72", u->m, hex);
    } else {
        snprintf(u->pending, sizeof(u->pending), "+CUSD: %d,\"%s\",%d", u->m, u->text, u->dcs);
    }
    u->armed = false;
    if (silent)
        sim_log(s, "USSD %s: no answer (ussd-silent)", p.v[1]);
    else
        sim_timer_set(s, SIM_TIMER_USSD, 0, answer);
    return SIM_RES_OK;
}

const struct sim_cmd sim_ussd_cmds[] = {
    {"+CUSD", false, SIM_F_CARD, cmd_cusd},
    {NULL, false, 0, NULL},
};

/* ussd-reply <m> [<dcs> <text...>] */
static void ctl_ussd_reply(struct sim *s, char *args)
{
    struct sim_ussd *u = &s->ussd;
    char *dcs = NULL, *text = NULL, *sp;
    long m, d = -1;

    sp = strchr(args, ' ');
    if (sp) {
        *sp = '\0';
        dcs = sp + 1;
        while (*dcs == ' ')
            dcs++;
        sp = strchr(dcs, ' ');
        if (sp) {
            *sp = '\0';
            text = sp + 1;
        }
    }
    /* (UCS-2 is checked by encoding it once; the answer is built later.) */
    if (!sim_parse_long(args, 0, 5, &m) || (dcs && *dcs && !sim_parse_long(dcs, 0, 255, &d)) ||
        (text && strlen(text) >= sizeof(u->text)) ||
        (d == 72 && text && !sim_ucs2_hex(text, u->pending, sizeof(u->pending)))) {
        sim_ctl_error(s, "usage: ussd-reply <m 0-5> [<dcs 0-255> <text>] (text < %d bytes, "
                         "UTF-8 for dcs 72)",
                      SIM_USSD_TEXT_MAX);
        return;
    }
    u->pending[0] = '\0';
    u->armed = true;
    u->silent = false;
    u->m = (int)m;
    u->dcs = (int)d;
    snprintf(u->text, sizeof(u->text), "%s", text ? text : "");
    /* "\n" in the control line is a line break in the text: the A7670
     * prints it raw inside the quotes (menus). */
    char *w = u->text;
    for (const char *r = u->text; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') {
            *w++ = '\n';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static void ctl_ussd_silent(struct sim *s, char *args)
{
    (void)args;
    s->ussd.armed = true;
    s->ussd.silent = true;
}

const struct sim_ctl sim_ussd_ctls[] = {
    {"ussd-reply", ctl_ussd_reply},
    {"ussd-silent", ctl_ussd_silent},
    {NULL, NULL},
};
