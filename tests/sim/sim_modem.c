/* The AT engine of the simulated A7670, and its general commands.
 *
 * Host bytes -> echo (exactly the bytes received, while ATE1) -> command
 * lines ended by CR (an LF is ignored, so CRLF works) -> the command tables
 * -> an information response and one final result, in ATV1 framing
 * (`\r\n<info>\r\n`, `\r\nOK\r\n`) or ATV0 (`<info>\r\n`, `0\r`).
 *
 * A handler may open the data mode (sim_prompt: "\r\n> ", then bytes until
 * Ctrl-Z/ESC or an announced count) or defer its final result
 * (sim_defer). While a result is deferred the engine reads nothing more
 * from the host: a module works one command at a time, the kernel buffers
 * what the host sends meanwhile.
 *
 * Before the boot URCs the module does not answer: host bytes are read and
 * dropped. Boot: *ATREADY after --boot-ms, then the SIM (--sim-init-ms
 * later): +CPIN: READY, SMS DONE, PB DONE, or +CPIN: SIM PIN with --pin
 * (SMS DONE and PB DONE follow the PIN then, as on the real module). */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#define SIM_MANUFACTURER "SIMCOM INCORPORATED"
#define SIM_MODEL "A7670E"
#define SIM_REVISION "A011B07A7670M7"
#define SIM_IMEI "869951030012345"
#define SIM_IMSI "262011234567890"
#define SIM_ICCID "89490200001234567890"
#define SIM_NUMBER "+4917000000000"
#define SIM_LOCATION "\"1A2B\",\"01C2D3E4\",7"

/* The tables the engine searches, in order. A new feature adds its own. */
static const struct sim_cmd *const cmd_tables[] = {
    sim_modem_cmds,
    sim_sms_cmds,
    sim_call_cmds,
    sim_audio_cmds,
    sim_ussd_cmds,
    sim_network_cmds,
    sim_power_cmds,
    sim_cmqtt_cmds,
};

/* ---- output ---- */

/* Writes pre, the text, CR LF; returns the text (for the log). */
static const char *vwrite_line(struct sim *s, char *buf, size_t size, const char *pre,
                               const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static const char *vwrite_line(struct sim *s, char *buf, size_t size, const char *pre,
                               const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= size)
        n = (int)size - 1;
    buf[n] = '\0';
    sim_writes(s, pre);
    sim_write(s, buf, (size_t)n);
    sim_writes(s, "\r\n");
    return buf;
}

void sim_info(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* 27.007: one CR LF before the first information text of a response,
     * one after each: "\r\n+CMGR: ...\r\n<pdu>\r\n\r\nOK\r\n". */
    char buf[SIM_LINE_MAX + 64];
    vwrite_line(s, buf, sizeof(buf), s->verbose && !s->resp_open ? "\r\n" : "", fmt, ap);
    va_end(ap);
    s->resp_open = true;
}

void sim_urc(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[SIM_LINE_MAX + 64];
    sim_log(s, "urc: %s", vwrite_line(s, buf, sizeof(buf), s->verbose ? "\r\n" : "", fmt, ap));
    va_end(ap);
}

static const char *cme_text(int code)
{
    static const struct {
        int code;
        const char *text;
    } texts[] = {
        {0, "phone failure"},          {3, "operation not allowed"},
        {4, "operation not supported"}, {10, "SIM not inserted"},
        {11, "SIM PIN required"},       {12, "SIM PUK required"},
        {13, "SIM failure"},            {14, "SIM busy"},
        {15, "SIM wrong"},              {16, "incorrect password"},
        {20, "memory full"},            {21, "invalid index"},
        {22, "not found"},              {23, "memory failure"},
        {30, "no network service"},     {31, "network timeout"},
        {32, "network not allowed - emergency calls only"},
        {50, "incorrect parameters"},   {100, "unknown"},
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (texts[i].code == code)
            return texts[i].text;
    return "unknown";
}

/* A host must wait for a command's final result before it sends the
 * next one. Bytes already waiting when the result is written were sent
 * before it: a whole command line among them is reported as `overlap`. */
static void check_overlap(struct sim *s)
{
    if (s->master >= 0) {
        if (s->in_pos >= s->in_len)
            s->in_pos = s->in_len = 0;
        ssize_t n = read(s->master, s->in + s->in_len, sizeof(s->in) - s->in_len);
        if (n > 0)
            s->in_len += (size_t)n;
    }
    const uint8_t *p = s->in + s->in_pos;
    size_t n = s->in_len - s->in_pos;
    const uint8_t *cr = memchr(p, '\r', n);
    if (!cr)
        return;
    char shown[80];
    size_t k = 0;
    for (const uint8_t *q = p; q < cr && k + 1 < sizeof(shown); q++)
        if (*q >= 0x20 && *q < 0x7f)
            shown[k++] = (char)*q;
    shown[k] = '\0';
    sim_event(s, "overlap %s", shown);
    sim_log(s, "the host sent \"%s\" before this final result", shown);
}

void sim_final(struct sim *s, struct sim_result res)
{
    char text[64];
    int numeric = -1; /* ATV0 code for OK / ERROR */
    switch (res.final) {
    case SIM_OK:
        snprintf(text, sizeof(text), "OK");
        numeric = 0;
        break;
    case SIM_CME:
        if (s->cmee == 1) {
            snprintf(text, sizeof(text), "+CME ERROR: %d", res.code);
            break;
        }
        if (s->cmee == 2) {
            snprintf(text, sizeof(text), "+CME ERROR: %s", cme_text(res.code));
            break;
        }
        /* AT+CMEE=0: a plain ERROR */
        /* fall through */
    case SIM_ERROR:
        snprintf(text, sizeof(text), "ERROR");
        numeric = 4;
        break;
    case SIM_CMS:
        /* Reported as a number whatever AT+CMEE says. */
        snprintf(text, sizeof(text), "+CMS ERROR: %d", res.code);
        break;
    case SIM_NO_FINAL:
    default:
        return;
    }
    check_overlap(s);
    if (s->verbose) {
        sim_writes(s, "\r\n");
        sim_writes(s, text);
        sim_writes(s, "\r\n");
    } else if (numeric >= 0) {
        char num[8];
        snprintf(num, sizeof(num), "%d\r", numeric);
        sim_writes(s, num);
    } else {
        sim_writes(s, text);
        sim_writes(s, "\r\n");
    }
    s->resp_open = false;
    sim_log(s, "-> %s", text);
}

struct sim_result sim_prompt(struct sim *s, size_t want, sim_data_fn done)
{
    s->data.active = true;
    s->data.want = want;
    s->data.done = done;
    s->data.len = 0;
    s->data.overflow = false;
    /* 27.005: CR LF '>' space, and no line feed after it. */
    sim_writes(s, s->verbose ? "\r\n> " : "> ");
    return SIM_RES_PENDING;
}

struct sim_result sim_defer(struct sim *s, int64_t ms, sim_timer_fn fn)
{
    sim_timer_set(s, SIM_TIMER_BUSY, ms, fn);
    return SIM_RES_PENDING;
}

/* ---- input ---- */

static void reset_input(struct sim *s)
{
    s->line_len = 0;
    s->line_overflow = false;
    s->last_cr = false;
    s->data.active = false;
    s->data.len = 0;
    s->resp_open = false;
}

static const struct sim_cmd *lookup(const char *body, struct sim_at *at)
{
    for (size_t t = 0; t < sizeof(cmd_tables) / sizeof(cmd_tables[0]); t++) {
        for (const struct sim_cmd *c = cmd_tables[t]; c->name; c++) {
            size_t n = strlen(c->name);
            if (strncasecmp(body, c->name, n) != 0)
                continue;
            const char *rest = body + n;
            at->arg = "";
            if (c->basic) {
                at->kind = SIM_AT_EXEC;
                at->arg = rest;
            } else if (*rest == '\0') {
                at->kind = SIM_AT_EXEC;
            } else if (strcmp(rest, "?") == 0) {
                at->kind = SIM_AT_QUERY;
            } else if (strcmp(rest, "=?") == 0) {
                at->kind = SIM_AT_TEST;
            } else if (*rest == '=') {
                at->kind = SIM_AT_SET;
                at->arg = rest + 1;
            } else {
                continue; /* a longer name, e.g. +CMGS vs +CMGSX */
            }
            return c;
        }
    }
    return NULL;
}

static struct sim_result check_flags(struct sim *s, const struct sim_cmd *c,
                                     const struct sim_at *at)
{
    bool sms = c->flags & SIM_F_SMS;
    if (sms && s->opt.no_sms)
        return SIM_RES_ERROR; /* A7670E-LNXY-UBL: no SMS at all */
    if (!(c->flags & (SIM_F_CARD | SIM_F_SMS)) || at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    switch (s->card) {
    case SIM_CARD_INIT:
        return sms ? SIM_RES_CMS(314) : SIM_RES_CME(14);
    case SIM_CARD_LOCKED:
        return sms ? SIM_RES_CMS(311) : SIM_RES_CME(11);
    case SIM_CARD_READY:
    default:
        return SIM_RES_OK;
    }
}

static void execute(struct sim *s, char *line)
{
    /* Zero-delay timers armed by the previous command ("just after OK")
     * fire before this one is answered. */
    sim_timers_run(s);
    if (!sim_prefix_ci(line, "AT")) {
        sim_log(s, "ignored: not an AT command");
        return;
    }
    if (sim_power_wake_line(s, line))
        return;
    for (size_t i = 0; i < s->opt.n_reject; i++) {
        if (sim_prefix_ci(line, s->opt.reject[i])) {
            sim_log(s, "rejected (--reject %s)", s->opt.reject[i]);
            sim_final(s, SIM_RES_ERROR);
            return;
        }
    }
    sim_modem_urc_in(s, line);
    /* V.250 concatenation: AT+CMEE=1;+CREG?;+CSQ runs each, one final
     * result (the first error ends the line). ATD's ';' (voice) is its own. */
    char body[SIM_LINE_MAX];
    snprintf(body, sizeof(body), "%s", line + 2);
    char *cur = body;
    for (;;) {
        char *next = NULL;
        if (*cur != 'D' && *cur != 'd') {
            bool quoted = false;
            for (char *c = cur; *c; c++) {
                if (*c == '"')
                    quoted = !quoted;
                else if (*c == ';' && !quoted) {
                    *c = '\0';
                    next = c + 1;
                    break;
                }
            }
        }
        if (*cur != '\0') {
            struct sim_at at = {.line = line};
            const struct sim_cmd *c = lookup(cur, &at);
            if (!c) {
                sim_log(s, "unknown command %s", cur);
                sim_final(s, SIM_RES_ERROR);
                return;
            }
            /* V.250: basic commands (a letter and a number) follow each
             * other without ';' (ATE0V1). */
            char digits[16];
            if (c->basic && strcasecmp(c->name, "D") != 0) {
                size_t k = 0;
                while (at.arg[k] >= '0' && at.arg[k] <= '9' && k + 1 < sizeof(digits))
                    k++;
                if (isalpha((unsigned char)at.arg[k]) && !next) {
                    memcpy(digits, at.arg, k);
                    digits[k] = '\0';
                    next = (char *)at.arg + k;
                    at.arg = digits;
                }
            }
            struct sim_result res = check_flags(s, c, &at);
            if (res.final == SIM_OK)
                res = c->fn(s, &at);
            if (res.final != SIM_OK) {
                sim_final(s, res); /* nothing for SIM_NO_FINAL */
                return;
            }
            s->resp_open = false; /* each command's response has its CR LF */
        }
        if (!next)
            break;
        cur = next;
    }
    sim_final(s, SIM_RES_OK);
}

static void line_end(struct sim *s)
{
    size_t len = s->line_len;
    bool overflow = s->line_overflow;
    s->line_len = 0;
    s->line_overflow = false;
    if (len == 0 && !overflow)
        return; /* an empty line: no answer */
    while (len > 0 && s->line[len - 1] == ' ')
        len--;
    s->line[len] = '\0';
    sim_event(s, "rx %s", s->line);
    sim_log(s, "<- %s", s->line);
    if (overflow) {
        sim_log(s, "line longer than %d chars", SIM_LINE_MAX - 1);
        sim_final(s, SIM_RES_ERROR);
        return;
    }
    execute(s, s->line);
}

static void data_done(struct sim *s, bool cancelled)
{
    char *hex = malloc(2 * s->data.len + 1);
    if (hex) {
        sim_hex_encode(s->data.buf, s->data.len, hex);
        sim_event(s, "rx-data %s", hex);
        free(hex);
    }
    sim_log(s, "<- %zu data bytes%s%s", s->data.len, cancelled ? ", cancelled (ESC)" : "",
            s->data.overflow ? ", overflow" : "");
    s->data.active = false;
    struct sim_result res =
        s->data.done(s, s->data.buf, s->data.len, cancelled, s->data.overflow);
    sim_final(s, res);
}

static void data_byte(struct sim *s, uint8_t c)
{
    bool after_cr = s->last_cr;
    s->last_cr = false;
    /* The LF of a host that ends its command lines with CRLF. */
    if (after_cr && c == '\n' && s->data.len == 0 && s->data.want == 0)
        return;
    if (s->echo)
        sim_write(s, &c, 1);
    if (s->data.want == 0 && (c == 0x1A || c == 0x1B)) {
        data_done(s, c == 0x1B);
        return;
    }
    if (s->data.len < SIM_DATA_MAX)
        s->data.buf[s->data.len++] = c;
    else
        s->data.overflow = true;
    if (s->data.want && s->data.len == s->data.want)
        data_done(s, false);
}

static void feed_byte(struct sim *s, uint8_t c)
{
    if (s->data.active) {
        data_byte(s, c);
        return;
    }
    if (s->echo)
        sim_write(s, &c, 1);
    s->last_cr = c == '\r';
    if (c == '\r') {
        line_end(s);
        return;
    }
    if (c == '\b' || c == 0x7F) { /* S5: a person at a terminal */
        if (s->line_len > 0)
            s->line_len--;
        return;
    }
    if (c < 0x20)
        return; /* LF (of CRLF) and other control characters */
    if (s->line_len < SIM_LINE_MAX - 1)
        s->line[s->line_len++] = (char)c;
    else
        s->line_overflow = true;
}

bool sim_modem_wants_input(const struct sim *s)
{
    return s->master >= 0 && s->in_pos >= s->in_len && !sim_timer_armed(s, SIM_TIMER_BUSY) &&
           !s->stalled;
}

void sim_modem_pump(struct sim *s)
{
    if (s->stalled)
        return; /* answered when the hang is over */
    while (s->in_pos < s->in_len) {
        if (s->phase != SIM_READY || s->hung) {
            sim_log(s, "%s: %zu bytes from the host ignored",
                    s->hung ? "hanging" : "not booted", s->in_len - s->in_pos);
            s->in_pos = s->in_len;
            break;
        }
        if (sim_timer_armed(s, SIM_TIMER_BUSY))
            return; /* the rest waits for the deferred result */
        uint8_t c = s->in[s->in_pos++];
        if (!sim_power_byte_lost(s, c))
            feed_byte(s, c);
    }
    s->in_pos = s->in_len = 0;
}

void sim_modem_hang(struct sim *s, bool on, bool late)
{
    if (on && late) {
        /* A module that stops reading and answers everything later. */
        s->stalled = true;
        return;
    }
    s->stalled = false;
    s->hung = on;
    if (on) {
        /* Whatever was in progress is lost, as on a module that locks up. */
        reset_input(s);
        s->in_pos = s->in_len = 0;
        sim_timer_stop(s, SIM_TIMER_BUSY);
    } else {
        sim_timer_stop(s, SIM_TIMER_HANG);
    }
}

/* ---- boot, SIM card, registration ---- */

static void reg_urcs(struct sim *s)
{
    int stat = sim_reg_stat(s);
    bool loc = stat == 1 || stat == 5;
    if (s->creg_n == 1 || (s->creg_n == 2 && !loc))
        sim_urc(s, "+CREG: %d", stat);
    else if (s->creg_n == 2)
        sim_urc(s, "+CREG: %d," SIM_LOCATION, stat);
    if (s->cereg_n == 1 || (s->cereg_n == 2 && !loc))
        sim_urc(s, "+CEREG: %d", stat);
    else if (s->cereg_n == 2)
        sim_urc(s, "+CEREG: %d," SIM_LOCATION, stat);
}

static void card_done(struct sim *s)
{
    if (s->opt.pin && !s->pin_ok) {
        s->card = SIM_CARD_LOCKED;
        sim_log(s, "SIM locked (--pin)");
        sim_urc(s, "+CPIN: SIM PIN");
        return;
    }
    s->card = SIM_CARD_READY;
    sim_log(s, "SIM ready");
    sim_urc(s, "+CPIN: READY");
    sim_urc(s, "SMS DONE");
    sim_urc(s, "PB DONE");
    if (sim_reg_stat(s) != 0)
        reg_urcs(s);
}

static void boot_done(struct sim *s)
{
    s->phase = SIM_READY;
    sim_log(s, "booted");
    sim_urc(s, "*ATREADY: 1");
    if (s->opt.sim_init_ms > 0)
        sim_timer_set(s, SIM_TIMER_CARD, s->opt.sim_init_ms, card_done);
    else
        card_done(s);
}

static void forget_session(struct sim *s)
{
    reset_input(s);
    s->in_pos = s->in_len = 0;
    s->hung = false;
    /* Not saved by the module: back to defaults at every boot. */
    s->echo = true;
    s->verbose = true;
    s->cmee = 0;
    s->creg_n = s->cereg_n = 0;
    s->clip = false;
    s->card = SIM_CARD_INIT;
    s->pin_ok = false;
    for (int t = 0; t < SIM_TIMER_COUNT; t++)
        sim_timer_stop(s, (enum sim_timer)t);
    sim_sms_reset(s);
    sim_call_reset(s);
    sim_audio_reset(s);
    sim_ussd_reset(s);
    sim_network_reset(s);
    sim_cmqtt_reset(s);
    s->radio_off = false;        /* a module boots with AT+CFUN=1 */
    s->csclk = 0;                /* and awake */
    s->asleep = false;
    s->wake_late = false;
}

void sim_modem_boot(struct sim *s)
{
    forget_session(s);
    s->phase = SIM_BOOTING;
    sim_log(s, "booting (%d ms)", s->opt.boot_ms);
    sim_timer_set(s, SIM_TIMER_BOOT, s->opt.boot_ms, boot_done);
}

void sim_modem_stop(struct sim *s)
{
    forget_session(s);
    s->phase = SIM_UNPLUGGED;
}

int sim_reg_stat(const struct sim *s)
{
    return s->card == SIM_CARD_READY && !s->radio_off ? s->reg_stat : 0;
}

bool sim_registered(const struct sim *s)
{
    int stat = sim_reg_stat(s);
    return stat == 1 || stat == 5;
}

void sim_modem_reg_urcs(struct sim *s)
{
    reg_urcs(s);
}

void sim_modem_urc_in(struct sim *s, const char *line)
{
    if (!s->urc_in_prefix[0] || !sim_prefix_ci(line, s->urc_in_prefix))
        return;
    s->urc_in_prefix[0] = '\0';
    sim_urc(s, "%s", s->urc_in_text);
}

void sim_modem_set_reg(struct sim *s, int stat)
{
    s->reg_stat = stat;
    if (s->phase == SIM_READY && s->card == SIM_CARD_READY)
        reg_urcs(s);
}

/* ---- general commands ---- */

static struct sim_result cmd_e(struct sim *s, const struct sim_at *at)
{
    if (strcmp(at->arg, "") == 0 || strcmp(at->arg, "0") == 0)
        s->echo = false;
    else if (strcmp(at->arg, "1") == 0)
        s->echo = true;
    else
        return SIM_RES_ERROR;
    return SIM_RES_OK;
}

static struct sim_result cmd_v(struct sim *s, const struct sim_at *at)
{
    if (strcmp(at->arg, "") == 0 || strcmp(at->arg, "0") == 0)
        s->verbose = false;
    else if (strcmp(at->arg, "1") == 0)
        s->verbose = true;
    else
        return SIM_RES_ERROR;
    return SIM_RES_OK;
}

static const char *imei(const struct sim *s)
{
    return s->opt.imei ? s->opt.imei : SIM_IMEI;
}

static struct sim_result cmd_i(struct sim *s, const struct sim_at *at)
{
    if (strcmp(at->arg, "") != 0 && strcmp(at->arg, "0") != 0)
        return SIM_RES_ERROR;
    sim_info(s, "Manufacturer: " SIM_MANUFACTURER);
    sim_info(s, "Model: " SIM_MODEL);
    sim_info(s, "Revision: " SIM_REVISION);
    sim_info(s, "IMEI: %s", imei(s));
    sim_info(s, "+GCAP: +CGSM,+FCLASS,+DS");
    return SIM_RES_OK;
}

/* &W, &F, Z: accepted, nothing to do. */
static struct sim_result cmd_nop(struct sim *s, const struct sim_at *at)
{
    (void)s;
    (void)at;
    return SIM_RES_OK;
}

/* An identity command: EXEC prints the value, TEST is OK, else ERROR. */
static struct sim_result identity(struct sim *s, const struct sim_at *at, const char *value)
{
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    sim_info(s, "%s", value);
    return SIM_RES_OK;
}

static struct sim_result cmd_cgmi(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, SIM_MANUFACTURER);
}

static struct sim_result cmd_cgmm(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, SIM_MODEL);
}

static struct sim_result cmd_cgmr(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, "+CGMR: " SIM_REVISION);
}

static struct sim_result cmd_cgsn(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, imei(s));
}

static struct sim_result cmd_cimi(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, SIM_IMSI);
}

static struct sim_result cmd_ciccid(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, "+ICCID: " SIM_ICCID);
}

static struct sim_result cmd_cnum(struct sim *s, const struct sim_at *at)
{
    return identity(s, at, "+CNUM: ,\"" SIM_NUMBER "\",145");
}

/* A small integer setting (sim.h). */
struct sim_result sim_int_setting(struct sim *s, const struct sim_at *at, const char *name,
                                  int *value, long max, const char *query_suffix)
{
    struct sim_params p;
    long v;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "%s: %d%s", name, *value, query_suffix);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "%s: (0-%ld)", name, max);
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !sim_param_int(&p, 0, 0, max, &v))
            return SIM_RES_CME(50);
        *value = (int)v;
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_cmee(struct sim *s, const struct sim_at *at)
{
    return sim_int_setting(s, at, "+CMEE", &s->cmee, 2, "");
}

static struct sim_result cmd_clip(struct sim *s, const struct sim_at *at)
{
    int v = s->clip;
    /* +CLIP: <n>,<m>: m 1 = CLIP provisioned. */
    struct sim_result r = sim_int_setting(s, at, "+CLIP", &v, 1, ",1");
    s->clip = v;
    return r;
}

static struct sim_result cmd_cpin(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    switch (at->kind) {
    case SIM_AT_TEST:
        return SIM_RES_OK;
    case SIM_AT_QUERY:
        if (s->card == SIM_CARD_INIT)
            return SIM_RES_CME(14);
        sim_info(s, "+CPIN: %s", s->card == SIM_CARD_LOCKED ? "SIM PIN" : "READY");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 2)
            return SIM_RES_CME(50);
        if (s->card == SIM_CARD_INIT)
            return SIM_RES_CME(14);
        if (s->card != SIM_CARD_LOCKED)
            return SIM_RES_CME(3);
        if (strcmp(p.v[0], s->opt.pin) != 0) {
            sim_log(s, "wrong PIN");
            return SIM_RES_CME(16);
        }
        s->pin_ok = true;
        s->card = SIM_CARD_INIT;
        /* +CPIN: READY, SMS DONE, PB DONE come after the OK. */
        sim_timer_set(s, SIM_TIMER_CARD, s->opt.sim_init_ms, card_done);
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result reg_cmd(struct sim *s, const struct sim_at *at, const char *name,
                                 int *n)
{
    struct sim_params p;
    long v;
    int stat = sim_reg_stat(s);
    switch (at->kind) {
    case SIM_AT_QUERY:
        if (*n == 2 && (stat == 1 || stat == 5))
            sim_info(s, "%s: %d,%d," SIM_LOCATION, name, *n, stat);
        else
            sim_info(s, "%s: %d,%d", name, *n, stat);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "%s: (0-2)", name);
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !sim_param_int(&p, 0, 0, 2, &v))
            return SIM_RES_CME(50);
        *n = (int)v;
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_creg(struct sim *s, const struct sim_at *at)
{
    return reg_cmd(s, at, "+CREG", &s->creg_n);
}

static struct sim_result cmd_cereg(struct sim *s, const struct sim_at *at)
{
    return reg_cmd(s, at, "+CEREG", &s->cereg_n);
}

static struct sim_result cmd_csq(struct sim *s, const struct sim_at *at)
{
    if (at->kind == SIM_AT_TEST) {
        sim_info(s, "+CSQ: (0-31,99),(0-7,99)");
        return SIM_RES_OK;
    }
    if (at->kind != SIM_AT_EXEC)
        return SIM_RES_ERROR;
    sim_info(s, "+CSQ: %d,99", s->radio_off ? 99 : s->csq);
    return SIM_RES_OK;
}

/* The A76xx prints the supply voltage in volts: "+CBC: 3.978V". */
static struct sim_result cmd_cbc(struct sim *s, const struct sim_at *at)
{
    if (at->kind != SIM_AT_EXEC || s->cbc_mv == 0)
        return SIM_RES_ERROR;
    sim_info(s, "+CBC: %d.%03dV", s->cbc_mv / 1000, s->cbc_mv % 1000);
    return SIM_RES_OK;
}

static struct sim_result cmd_cpsi(struct sim *s, const struct sim_at *at)
{
    switch (at->kind) {
    case SIM_AT_QUERY:
        if (sim_registered(s))
            sim_info(s, "+CPSI: LTE,Online,262-01,0x1A2B,12345678,300,EUTRAN-BAND3,1300,5,5,"
                        "-94,-1050,-720,15");
        else
            sim_info(s, "+CPSI: NO SERVICE,Online");
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CPSI: (0-255)");
        return SIM_RES_OK;
    case SIM_AT_SET: /* periodic reports: accepted, not simulated */
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_cgatt(struct sim *s, const struct sim_at *at)
{
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CGATT: %d", sim_registered(s) ? 1 : 0);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CGATT: (0,1)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_cgdcont(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long cid;
    switch (at->kind) {
    case SIM_AT_QUERY:
        for (int i = 0; i < SIM_PDP_MAX; i++)
            if (s->pdp[i].used)
                sim_info(s, "+CGDCONT: %d,\"%s\",\"%s\",\"0.0.0.0\",0,0,0,0", i + 1,
                         s->pdp[i].type, s->pdp[i].apn);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CGDCONT: (1-%d),\"IP\",,,(0-2),(0-4),(0-1),(0-1)", SIM_PDP_MAX);
        sim_info(s, "+CGDCONT: (1-%d),\"IPV6\",,,(0-2),(0-4),(0-1),(0-1)", SIM_PDP_MAX);
        sim_info(s, "+CGDCONT: (1-%d),\"IPV4V6\",,,(0-2),(0-4),(0-1),(0-1)", SIM_PDP_MAX);
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || !sim_param_int(&p, 0, 1, SIM_PDP_MAX, &cid))
            return SIM_RES_CME(50);
        if (p.n == 1) { /* AT+CGDCONT=<cid>: undefine */
            s->pdp[cid - 1].used = false;
            return SIM_RES_OK;
        }
        if (strcasecmp(p.v[1], "IP") != 0 && strcasecmp(p.v[1], "IPV6") != 0 &&
            strcasecmp(p.v[1], "IPV4V6") != 0)
            return SIM_RES_CME(50);
        struct sim_pdp *pdp = &s->pdp[cid - 1];
        pdp->used = true;
        snprintf(pdp->type, sizeof(pdp->type), "%.15s", p.v[1]);
        snprintf(pdp->apn, sizeof(pdp->apn), "%s", p.n > 2 ? p.v[2] : "");
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

const struct sim_cmd sim_modem_cmds[] = {
    /* basic (V.250) */
    {"E", true, 0, cmd_e},
    {"V", true, 0, cmd_v},
    {"I", true, 0, cmd_i},
    {"&W", true, 0, cmd_nop},
    /* identity */
    {"+CGMI", false, 0, cmd_cgmi},
    {"+CGMM", false, 0, cmd_cgmm},
    {"+CGMR", false, 0, cmd_cgmr},
    {"+CGSN", false, 0, cmd_cgsn},
    {"+CIMI", false, SIM_F_CARD, cmd_cimi},
    {"+CICCID", false, 0, cmd_ciccid},
    {"+CNUM", false, SIM_F_CARD, cmd_cnum},
    /* settings */
    {"+CMEE", false, 0, cmd_cmee},
    {"+CLIP", false, 0, cmd_clip},
    {"+CPIN", false, 0, cmd_cpin},
    /* network */
    {"+CREG", false, 0, cmd_creg},
    {"+CEREG", false, 0, cmd_cereg},
    {"+CSQ", false, 0, cmd_csq},
    {"+CBC", false, 0, cmd_cbc},
    {"+CPSI", false, 0, cmd_cpsi},
    {"+CGATT", false, 0, cmd_cgatt},
    {"+CGDCONT", false, 0, cmd_cgdcont},
    {NULL, false, 0, NULL},
};
