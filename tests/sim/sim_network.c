/* The networks in reach: AT+COPS? (the one registered on), AT+COPS=? (a
 * search that takes seconds, as on the module: its result is deferred and
 * the engine reads nothing meanwhile, so the host's next commands wait)
 * and AT+COPS=<mode>[,<format>,"<oper>"] (automatic or manual choice).
 *
 * Three operators: the home network (the `operator` name, 26201), another
 * one in reach (26202) and a forbidden one (26203, a name with a comma and
 * parentheses, as network names can have). Choosing one that is not in
 * reach answers +CME ERROR: 30 (no network service), the forbidden one
 * +CME ERROR: 32 (network not allowed). The choice is forgotten at boot. */
#include "sim.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_SCAN_MS 3000
#define N_OPERATORS 3

struct sim_operator {
    const char *name;            /* NULL: the `operator` control's (home) */
    const char *short_name;
    const char *mccmnc;
    int act;
    bool forbidden;
};

static const struct sim_operator operators[N_OPERATORS] = {
    { NULL, "SimTel", "26201", 7, false },
    { "Vodafone.de", "Vodafone", "26202", 7, false },
    { "Telefonica (O2), DE", "o2 - de", "26203", 2, true },
};

static const char *long_name(const struct sim *s, int i)
{
    return operators[i].name ? operators[i].name : s->operator_name;
}

/* The search is over: one list per operator, then the modes and formats. */
static void scan_done(struct sim *s)
{
    char line[512];
    size_t n = (size_t)snprintf(line, sizeof(line), "+COPS: ");

    for (int i = 0; i < N_OPERATORS; i++) {
        int stat = operators[i].forbidden ? 3 : i == s->net.current ? 2 : 1;
        n += (size_t)snprintf(line + n, sizeof(line) - n, "(%d,\"%s\",\"%s\",\"%s\",%d),", stat,
                              long_name(s, i), operators[i].short_name, operators[i].mccmnc,
                              operators[i].act);
    }
    snprintf(line + n, sizeof(line) - n, ",(0-4),(0-2)");
    sim_event(s, "scan done");
    sim_info(s, "%s", line);
    sim_final(s, SIM_RES_OK);
}

/* AT+COPS=1,<format>,"<oper>": format 0 (long name) or 2 (numeric). */
static struct sim_result choose(struct sim *s, const struct sim_params *p)
{
    long format;

    if (p->n < 3 || !sim_param_int(p, 1, 0, 2, &format) || format == 1 || !p->quoted[2])
        return SIM_RES_CME(50);
    for (int i = 0; i < N_OPERATORS; i++) {
        const char *id = format == 2 ? operators[i].mccmnc : long_name(s, i);
        if (strcmp(p->v[2], id) != 0)
            continue;
        if (operators[i].forbidden)
            return SIM_RES_CME(32);
        s->net.current = i;
        s->net.manual = true;
        sim_event(s, "cops manual %s", operators[i].mccmnc);
        return SIM_RES_OK;
    }
    return SIM_RES_CME(30);
}

static struct sim_result cmd_cops(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long mode;

    switch (at->kind) {
    case SIM_AT_QUERY:
        if (sim_registered(s)) {
            /* <oper> is a string parameter: UCS-2 hex under AT+CSCS="UCS2". */
            char hex[4 * sizeof(s->operator_name) + 1];
            const char *name = long_name(s, s->net.current);
            sim_info(s, "+COPS: %d,0,\"%s\",7", s->net.manual ? 1 : 0,
                     sim_te_str(s, name, hex, sizeof(hex)));
        } else {
            sim_info(s, "+COPS: %d", s->net.manual ? 1 : 0);
        }
        return SIM_RES_OK;
    case SIM_AT_TEST:
        if (s->radio_off)
            return SIM_RES_CME(30);
        sim_log(s, "network scan (%d ms)", s->net.scan_ms);
        return sim_defer(s, s->net.scan_ms, scan_done);
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || !sim_param_int(&p, 0, 0, 4, &mode))
            return SIM_RES_CME(50);
        if (mode == 1)
            return choose(s, &p);
        if (mode == 0) {
            s->net.current = 0;
            s->net.manual = false;
            sim_event(s, "cops auto");
        }
        return SIM_RES_OK;      /* 2 (deregister), 3 (format), 4: not simulated */
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

const struct sim_cmd sim_network_cmds[] = {
    {"+COPS", false, 0, cmd_cops},
    {NULL, false, 0, NULL},
};

/* scan-ms <ms>: how long the next AT+COPS=? searches. */
static void ctl_scan_ms(struct sim *s, char *args)
{
    long v;

    if (!sim_parse_long(args, 1, 600000, &v)) {
        sim_ctl_error(s, "usage: scan-ms <1-600000>");
        return;
    }
    s->net.scan_ms = (int)v;
}

const struct sim_ctl sim_network_ctls[] = {
    {"scan-ms", ctl_scan_ms},
    {NULL, NULL},
};

void sim_network_reset(struct sim *s)
{
    s->net.current = 0;
    s->net.manual = false;
    if (s->net.scan_ms <= 0)
        s->net.scan_ms = DEFAULT_SCAN_MS;
}
