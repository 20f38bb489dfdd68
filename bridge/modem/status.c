/* Status service: signal, registration, operator, access technology,
 * supply voltage, SMS store. */
#include "modem/status.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "at/script.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/utf8.h"
#include "modem/modem.h"

/* --- pure parsers ---------------------------------------------------------- */

int status_parse_csq(const char *line, int *csq)
{
    struct at_result_iter it;
    int v, ber;

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CSQ:") || at_result_next_number(&it, 0, 99, &v) < 0 ||
        at_result_next_number(&it, 0, 99, &ber) < 0 || (v > 31 && v != 99))
        return -EINVAL;
    *csq = v;
    return 0;
}

/* Reads a +CREG/+CEREG line up to its <stat>, it then at what follows. */
static int reg_stat_field(struct at_result_iter *it, const char *line, bool is_urc, int *stat)
{
    int n;

    at_result_iter_init(it, line);
    if (!at_result_iter_next(it, "+CEREG:") && !at_result_iter_next(it, "+CREG:"))
        return -EINVAL;
    /* A response carries <n> first; a URC starts with <stat>. */
    if (!is_urc && at_result_next_number(it, 0, 9, &n) < 0)
        return -EINVAL;
    return at_result_next_number(it, 0, 11, stat) < 0 ? -EINVAL : 0;
}

int status_parse_reg(const char *line, bool is_urc, int *stat)
{
    struct at_result_iter it;

    return reg_stat_field(&it, line, is_urc, stat);
}

static bool is_cell_id(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 8 && strspn(s, "0123456789ABCDEFabcdef") == n;
}

int status_parse_cell(const char *line, bool is_urc, struct status_cell *cell)
{
    struct at_result_iter it;
    char lac[sizeof(cell->lac)], ci[sizeof(cell->ci)];
    int stat;

    if (reg_stat_field(&it, line, is_urc, &stat) < 0)
        return -EINVAL;
    if (at_result_at_end(&it))
        return -ENOENT;           /* mode 0/1, or not registered */
    if (at_result_next_string(&it, lac, sizeof(lac)) < 0 || !is_cell_id(lac) ||
        at_result_next_string(&it, ci, sizeof(ci)) < 0 || !is_cell_id(ci))
        return -EINVAL;
    memcpy(cell->lac, lac, sizeof(lac));
    memcpy(cell->ci, ci, sizeof(ci));
    return 0;
}

int status_parse_cops(const char *line, char *name, size_t size)
{
    struct at_result_iter it;
    int mode, format;

    /* +COPS: <mode>[,<format>,"<oper>"[,<AcT>]]: no name while not
     * registered. */
    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+COPS:") || at_result_next_number(&it, 0, 4, &mode) < 0)
        return -EINVAL;
    if (at_result_at_end(&it)) {
        name[0] = '\0';
        return 0;
    }
    if (at_result_next_number(&it, 0, 2, &format) < 0 ||
        at_result_next_string(&it, name, size) < 0)
        return -EINVAL;
    return 0;
}

int status_parse_cpsi(const char *line, char *access, size_t size)
{
    struct at_result_iter it;

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CPSI:") || at_result_next_unquoted(&it, access, size) < 0)
        return -EINVAL;
    if (strcmp(access, "NO SERVICE") == 0)
        access[0] = '\0';
    return 0;
}

int status_parse_cpms(const char *line, int *used, int *total)
{
    struct at_result_iter it;
    char mem[9];
    int u, t;

    /* Three stores of a name and two counts fit many times over: a longer
     * line is no answer to AT+CPMS?. */
    if (strnlen(line, 128) >= 128)
        return -EINVAL;
    /* AT+CPMS= answers counts without names, AT+CPMS=? lists: a store name
     * first tells AT+CPMS? apart. */
    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CPMS:") || at_result_next_string(&it, mem, sizeof(mem)) < 0 ||
        !mem[0] ||
        strspn(mem, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") != strlen(mem) ||
        at_result_next_number(&it, 0, 65535, &u) < 0 ||
        at_result_next_number(&it, 1, 65535, &t) < 0 || u > t)
        return -EINVAL;
    *used = u;
    *total = t;
    return 0;
}

/* "3.978V" -> 3978: one or two digits of volts, up to three decimals, the
 * unit. */
static int volts_to_mv(const char *s, int *mv)
{
    int v = 0, scale = 1000, digits = 0;

    for (; digits < 2 && isdigit((unsigned char)*s); s++, digits++)
        v = v * 10 + (*s - '0');
    if (digits == 0)
        return -EINVAL;
    v *= 1000;
    if (*s == '.') {
        for (s++; scale > 1 && isdigit((unsigned char)*s); s++) {
            scale /= 10;
            v += (*s - '0') * scale;
        }
        if (scale == 1000)
            return -EINVAL;     /* "3.V" */
    }
    if (strcmp(s, "V") != 0 || v > STATUS_CBC_MV_MAX)
        return -EINVAL;
    *mv = v;
    return 0;
}

int status_parse_cbc(const char *line, int *mv)
{
    struct at_result_iter it;
    char volts[16];
    int bcs, bcl, v;

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CBC:"))
        return -EINVAL;
    /* "3.978V" is no number: a number first is 27.007's charger status. */
    if (at_result_next_number(&it, 0, 3, &bcs) == 0) {
        if (at_result_next_number(&it, 0, 100, &bcl) < 0 ||
            at_result_next_number(&it, 0, STATUS_CBC_MV_MAX, &v) < 0)
            return -EINVAL;
    } else if (at_result_next_unquoted(&it, volts, sizeof(volts)) < 0 ||
               volts_to_mv(volts, &v) < 0) {
        return -EINVAL;
    }
    if (!at_result_at_end(&it))
        return -EINVAL;
    *mv = v;
    return 0;
}

bool status_full_episode(bool *episode, bool full)
{
    bool starts = full && !*episode;

    *episode = full;
    return starts;
}

const char *status_reg_name(int stat)
{
    static const char *const names[] = { "unregistered", "home", "searching",
                                         "denied", "unknown", "roaming" };

    return stat >= 0 && stat <= 5 ? names[stat] : "unknown";
}

int status_csq_dbm(int csq)
{
    return csq >= 0 && csq <= 31 ? -113 + 2 * csq : INT_MIN;
}

int status_csq_percent(int csq)
{
    return csq >= 0 && csq <= 31 ? (csq * 100 + 15) / 31 : -1;
}

/* --- the service ------------------------------------------------------------ */

struct status {
    struct loop *loop;
    struct modem *modem;
    int interval_ms;
    struct status_cbs cbs;
    void *ctx;
    uint64_t timer;
    struct at_script_run *run;   /* the poll round */
    bool ready;
    bool polling;              /* a round's commands are queued or running */
    bool again;                /* another round was asked for meanwhile */
    bool storage_queued;       /* a lone AT+CPMS? is queued, not yet written */
    bool full_episode;         /* the SMS store is full (status.h) */
    int creg, cereg;           /* last stat of each, -1 unknown */
    struct status_cell creg_cell, cereg_cell;   /* and the cell each named */
    struct status_info info;
};

static void notify(struct status *st)
{
    /* LTE-only modules (A7670) register in CEREG; others in CREG. The
     * cell is the one of the registration shown. */
    bool lte = st->cereg == 1 || st->cereg == 5 || st->creg < 0;

    st->info.reg_stat = lte ? st->cereg : st->creg;
    st->info.cell = lte ? st->cereg_cell : st->creg_cell;
    if (st->cbs.changed)
        st->cbs.changed(st->ctx, &st->info);
}

/* The operator name; under AT+CSCS="UCS2" (while a USSD request runs) the
 * module prints it as UCS-2 hex. A name that is not UCS-2 hex is kept as
 * given (the flag and the module can disagree for a moment). */
static void parse_operator(struct status *st, const char *line)
{
    char name[sizeof(st->info.operator_name) * 4];
    char dec[sizeof(st->info.operator_name)];
    const char *src = name;
    size_t n;

    if (status_parse_cops(line, name, sizeof(name)) < 0)
        return;
    if (modem_charset_ucs2(st->modem) &&
        utf8_from_ucs2_hex(name, strnlen(name, sizeof(name)), dec, sizeof(dec)) >= 0)
        src = dec;
    n = strnlen(src, sizeof(st->info.operator_name) - 1);
    memcpy(st->info.operator_name, src, n);
    st->info.operator_name[n] = '\0';
}

/* What the counts or the module just showed; the owner hears of a full
 * store once per episode. */
static void storage_observed(struct status *st, bool full, const char *why)
{
    bool was = st->full_episode;

    if (status_full_episode(&st->full_episode, full)) {
        log_warn("status: the SIM's SMS store is full (%s)", why);
        if (st->cbs.storage_full)
            st->cbs.storage_full(st->ctx, why);
    } else if (was && !full) {
        log_info("status: the SIM's SMS store has room again (%s)", why);
    }
}

static void parse_storage(struct status *st, const char *line)
{
    char why[64];
    int used, total;

    if (status_parse_cpms(line, &used, &total) < 0) {
        log_warn("status: unparsable AT+CPMS? answer");
        return;
    }
    st->info.storage_used = used;
    st->info.storage_total = total;
    snprintf(why, sizeof(why), "%d of %d used", used, total);
    storage_observed(st, used >= total, why);
}

/* An AT+CREG?/AT+CEREG? answer: the stat, and the cell, unknown when the
 * line names none or a malformed one. */
static void parse_reg(const char *line, int *stat, struct status_cell *cell)
{
    status_parse_reg(line, false, stat);
    if (status_parse_cell(line, false, cell) < 0)
        cell->lac[0] = cell->ci[0] = '\0';
}

static void poll_done(void *ctx, const struct at_response *rsp)
{
    struct status *st = ctx;

    if (rsp->final != AT_FINAL_OK || rsp->n_lines == 0)
        return;
    for (size_t i = 0; i < rsp->n_lines; i++) {
        const char *l = rsp->lines[i];
        if (strncmp(l, "+CSQ:", 5) == 0)
            status_parse_csq(l, &st->info.csq);
        else if (strncmp(l, "+CREG:", 6) == 0)
            parse_reg(l, &st->creg, &st->creg_cell);
        else if (strncmp(l, "+CEREG:", 7) == 0)
            parse_reg(l, &st->cereg, &st->cereg_cell);
        else if (strncmp(l, "+COPS:", 6) == 0)
            parse_operator(st, l);
        else if (strncmp(l, "+CPSI:", 6) == 0)
            status_parse_cpsi(l, st->info.access, sizeof(st->info.access));
        else if (strncmp(l, "+CPMS:", 6) == 0)
            parse_storage(st, l);
    }
}

/* A round's step: each answer is read as it comes. */
static enum at_script_verdict poll_step_done(void *ctx, const struct at_response *rsp)
{
    poll_done(ctx, rsp);
    return AT_SCRIPT_NEXT;
}

/* AT+CBC, optional: a module without it answers ERROR (or an answer this
 * parser does not know), which makes the voltage unknown; the round goes
 * on either way (a queued round never stops at a step). */
static enum at_script_verdict cbc_done(void *ctx, const struct at_response *rsp)
{
    struct status *st = ctx;

    st->info.voltage_mv = -1;
    if (rsp->final != AT_FINAL_OK)
        return AT_SCRIPT_NEXT;
    for (size_t i = 0; i < rsp->n_lines; i++)
        if (status_parse_cbc(rsp->lines[i], &st->info.voltage_mv) == 0)
            break;
    return AT_SCRIPT_NEXT;
}

static bool build_cpms_query(void *ctx, struct at_script_cmd *out)
{
    struct status *st = ctx;

    if (!modem_sms_supported(st->modem))
        return false;           /* a module without SMS */
    snprintf(out->buf, out->size, "AT+CPMS?");
    return true;
}

/* One round, queued at once. Its last command is never skipped: its
 * answer ends the round. */
static const struct at_script_step poll_steps[] = {
    { .name = "signal", .cmd = "AT+CSQ", .info_prefix = "+CSQ:", .done = poll_step_done },
    { .name = "registration", .cmd = "AT+CREG?", .info_prefix = "+CREG:",
      .done = poll_step_done },
    { .name = "LTE registration", .cmd = "AT+CEREG?", .info_prefix = "+CEREG:",
      .done = poll_step_done },
    { .name = "operator", .cmd = "AT+COPS?", .info_prefix = "+COPS:", .done = poll_step_done },
    { .name = "SMS storage", .build = build_cpms_query, .info_prefix = "+CPMS:",
      .done = poll_step_done },
    { .name = "supply voltage", .cmd = "AT+CBC", .info_prefix = "+CBC:", .done = cbc_done },
    { .name = "access", .cmd = "AT+CPSI?", .info_prefix = "+CPSI:", .done = poll_step_done },
};
static const struct at_script poll_round = { "status", "poll", AT_SCRIPT_STEPS(poll_steps),
                                             .quiet = true, .queue_all = true };

const struct at_script *status_poll_script(void)
{
    return &poll_round;
}

/* A round asked for while one runs is coalesced into one more round after
 * it: its answers may predate what made us ask. */
static void poll_now(struct status *st)
{
    if (st->polling) {
        st->again = true;
        return;
    }
    st->polling = true;
    at_script_start(st->run, &poll_round, NULL);
}

/* The round's end: publish once per round, so every B/status is one
 * snapshot (registration, operator and access read in the same round). */
static void round_ended(void *ctx, const struct at_script_end *e)
{
    struct status *st = ctx;

    st->polling = false;
    if (e->error)
        return;   /* not ready, or the queue is full: the next tick retries */
    if (e->rsp->final == AT_FINAL_CANCELLED) {
        st->again = false;
        return;
    }
    notify(st);
    if (st->again) {
        st->again = false;
        poll_now(st);
    }
}

static int status_send(void *ctx, const char *cmd, const struct at_cmd_opts *o, at_done_cb cb,
                       void *cb_ctx)
{
    return modem_send(ctx, cmd, o, cb, cb_ctx);
}

static int64_t poll_fired(void *ctx)
{
    struct status *st = ctx;

    if (!st->ready) {
        st->timer = 0;
        return 0;
    }
    poll_now(st);
    if (st->cbs.tick)
        st->cbs.tick(st->ctx);
    return st->interval_ms;
}

/* +CREG: <stat>[,<lac>,<ci>] and +CEREG: as URCs: registration changed, so
 * the operator and access technology may have too. The URC only starts a
 * round: taking its value at once would publish it next to the operator
 * of a round that began before the change. */
static void urc_reg(void *ctx, const char *const *lines, size_t n)
{
    struct status *st = ctx;
    int stat;

    (void)n;
    if (status_parse_reg(lines[0], true, &stat) < 0)
        return;
    log_info("status: registration %s", status_reg_name(stat));
    if (st->ready)
        poll_now(st);
}

/* A7670: its SMS store is full. The URC may come between a command and its
 * answer (an AT+CMGR, say): registered here, the chat hands it to us rather
 * than to that command as one of its lines, which cost a message. */
static void urc_sms_full(void *ctx, const char *const *lines, size_t n)
{
    (void)lines;
    (void)n;
    status_storage_full(ctx, "the module reported SMS FULL");
}

static const struct at_urc status_urcs[] = {
    { "+CREG:", 0, urc_reg },
    { "+CEREG:", 0, urc_reg },
    { "SMS FULL", 0, urc_sms_full },
};
#define N_URCS (sizeof(status_urcs) / sizeof(status_urcs[0]))

static void storage_written(void *ctx)
{
    struct status *st = ctx;

    st->storage_queued = false;
}

/* A lone AT+CPMS? (status_storage_refresh). During a round the round's end
 * publishes: a status now would pair registration and operator from two
 * different moments. */
static void storage_done(void *ctx, const struct at_response *rsp)
{
    struct status *st = ctx;
    int used = st->info.storage_used, total = st->info.storage_total;

    st->storage_queued = false;      /* also when cancelled before it was written */
    poll_done(st, rsp);
    if (!st->polling && (used != st->info.storage_used || total != st->info.storage_total))
        notify(st);
}

void status_storage_refresh(struct status *st)
{
    const struct at_cmd_opts o = { .info_prefix = "+CPMS:", .written = storage_written };

    if (!st->ready || st->storage_queued || !modem_sms_supported(st->modem))
        return;
    if (modem_send(st->modem, "AT+CPMS?", &o, storage_done, st) == 0)
        st->storage_queued = true;
}

void status_storage_full(struct status *st, const char *why)
{
    storage_observed(st, true, why);
    status_storage_refresh(st);
}

struct status *status_new(struct loop *loop, struct modem *modem, int interval_s,
                          const struct status_cbs *cbs, void *ctx)
{
    struct status *st = calloc(1, sizeof(*st));
    /* Timeouts 0: the chat's default. */
    const struct at_script_host host = {
        .send = status_send, .send_ctx = modem, .ended = round_ended, .ctx = st,
    };

    if (!st)
        return NULL;
    st->loop = loop;
    st->modem = modem;
    st->interval_ms = interval_s * 1000;
    if (cbs)
        st->cbs = *cbs;
    st->ctx = ctx;
    st->creg = st->cereg = -1;
    st->info.csq = -1;
    st->info.reg_stat = -1;
    st->info.storage_used = st->info.storage_total = -1;
    st->info.voltage_mv = -1;
    st->run = at_script_run_new(&host);
    if (!st->run || at_chat_add_urcs(modem_chat(modem), status_urcs, N_URCS, st) < 0) {
        status_free(st);
        return NULL;
    }
    return st;
}

void status_free(struct status *st)
{
    if (!st)
        return;
    loop_cancel_timer(st->loop, st->timer);
    at_script_run_free(st->run);
    free(st);
}

void status_modem_ready(struct status *st, bool ready)
{
    st->ready = ready;
    loop_cancel_timer(st->loop, st->timer);
    st->timer = 0;
    if (!ready)
        return;
    poll_now(st);
    if (loop_add_timer(st->loop, st->interval_ms, poll_fired, st, &st->timer) < 0)
        log_error("status: cannot arm the poll timer");
}

const struct status_info *status_get(const struct status *st)
{
    return &st->info;
}

void status_refresh(struct status *st)
{
    if (st->ready)
        poll_now(st);
}
