/* The modem's bring-up (see modem_int.h for the other files): the script
 * and its steps (SIM and PIN, SMS settings, the init commands, what B/info
 * shows), getting in step after the port opened or the module restarted
 * (PROBING), and running the script to READY with its retries and the
 * recheck of a locked or missing SIM. The port is modem_port.c's, the
 * script engine at/script's. */
#include "modem/modem_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "at/script.h"
#include "core/log.h"

#define STEP_RETRY_MS 1000
#define SIM_BUSY_ATTEMPTS 30        /* "+CME ERROR: SIM busy" right after boot */
/* A step whose answer was lost or out of step is tried again (the chat has
 * resynchronised meanwhile); this often means the module is not itself. */
#define STEP_DOUBT_ATTEMPTS 5
#define LOCKED_RECHECK_MS 30000

/* --- the bring-up script ------------------------------------------------ */

/* The steps (at/script.h) run on the modem's own chat. A step that fails
 * (a step without done() that is not answered OK, or a done() saying
 * AT_SCRIPT_FAIL) is tried again after STEP_RETRY_MS; one whose answer was
 * lost, out of step, or did not fit (done() said AT_SCRIPT_FAIL on OK) is
 * tried again at once, behind the chat's resync; a step that set another
 * state (SIM locked or missing) ends the bring-up there: see
 * modem_bringup_ended(). */

static bool final_ok(const struct at_response *rsp)
{
    return rsp->final == AT_FINAL_OK;
}

static bool is_sim_busy(const struct at_response *rsp)
{
    if (rsp->final != AT_FINAL_CME)
        return false;
    if (rsp->code == 14 || rsp->code == 13)
        return true;
    return rsp->text && strstr(rsp->text, "busy");
}

static bool is_no_sim(const struct at_response *rsp)
{
    if (rsp->final != AT_FINAL_CME)
        return false;
    return rsp->code == 10 || (rsp->text && strstr(rsp->text, "not inserted"));
}

/* The first line of the answer that starts with prefix (the first line
 * when NULL), the iterator after the prefix. */
static bool info_line(const struct at_response *rsp, const char *prefix,
                      struct at_result_iter *it)
{
    for (size_t i = 0; i < rsp->n_lines; i++) {
        at_result_iter_init(it, rsp->lines[i]);
        if (at_result_iter_next(it, prefix))
            return true;
    }
    return false;
}

/* Copies the text after "prefix" (and spaces) of the first matching line. */
static void copy_after(const struct at_response *rsp, const char *prefix, char *out, size_t size)
{
    struct at_result_iter it;

    if (info_line(rsp, prefix, &it))
        snprintf(out, size, "%s", at_result_rest(&it));
}

/* 27.007 +CPIN: codes that mean "the SIM wants a code". Anything else
 * (empty, garbage, another command's line) is a doubt, never a lock. */
static const char *const cpin_locks[] = {
    "SIM PIN", "SIM PUK", "SIM PIN2", "SIM PUK2", "PH-SIM PIN", "PH-FSIM PIN", "PH-FSIM PUK",
    "PH-NET PIN", "PH-NET PUK", "PH-NETSUB PIN", "PH-NETSUB PUK", "PH-SP PIN", "PH-SP PUK",
    "PH-CORP PIN", "PH-CORP PUK",
};

static bool cpin_is_lock(const char *val)
{
    for (size_t i = 0; i < sizeof(cpin_locks) / sizeof(cpin_locks[0]); i++)
        if (strcmp(val, cpin_locks[i]) == 0)
            return true;
    return false;
}

static enum at_script_verdict done_cpin(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;
    unsigned attempts = at_script_retries(m->run);
    struct at_result_iter it;
    char val[32] = "";

    /* The recheck of a locked or missing SIM (modem_bringup_ended) is not
     * acted on: bring-up answers count only during the bring-up. */
    if (m->state != MODEM_BRINGUP)
        return AT_SCRIPT_HOLD;
    if (is_no_sim(rsp)) {
        log_error("modem: no SIM inserted");
        modem_set_state(m, MODEM_NO_SIM);
        return AT_SCRIPT_FAIL;
    }
    if (is_sim_busy(rsp) && attempts < SIM_BUSY_ATTEMPTS)
        return AT_SCRIPT_FAIL;  /* too early after boot: +CPIN: READY follows */
    if (!final_ok(rsp)) {
        if (attempts < STEP_DOUBT_ATTEMPTS) {
            log_warn("modem: AT+CPIN? answered %s; asking again",
                     rsp->text ? rsp->text : at_final_name(rsp->final));
            return AT_SCRIPT_FAIL;
        }
        log_error("modem: SIM state unreadable (AT+CPIN? answered %s %u times)",
                  rsp->text ? rsp->text : at_final_name(rsp->final), attempts + 1);
        modem_set_state(m, MODEM_NO_SIM);
        return AT_SCRIPT_FAIL;
    }
    /* One code, nothing after it. */
    if (!info_line(rsp, "+CPIN:", &it) || at_result_next_unquoted(&it, val, sizeof(val)) < 0 ||
        !at_result_at_end(&it))
        val[0] = '\0';
    if (strcmp(val, "READY") == 0)
        return AT_SCRIPT_JUMP;  /* past the PIN */
    if (!cpin_is_lock(val)) {
        /* Not an answer to AT+CPIN?: resynchronise and ask again. */
        log_warn("modem: AT+CPIN? answered \"%.20s\", which is no SIM state; resynchronising",
                 val);
        at_chat_resync(m->chat, false, "AT+CPIN? answer does not fit");
        return AT_SCRIPT_FAIL;
    }
    if (strcmp(val, "SIM PIN") == 0 && m->opts.pin && !m->pin_sent)
        return AT_SCRIPT_NEXT;
    /* Never guess: a wrong PIN sent twice more locks the SIM (PUK). */
    log_error("modem: SIM needs %s%s", val,
              strcmp(val, "SIM PIN") == 0 ? (m->pin_sent ? " (the configured PIN was rejected)"
                                                          : "; set modem.pin")
                                           : "");
    modem_set_state(m, MODEM_SIM_LOCKED);
    return AT_SCRIPT_FAIL;
}

static bool build_pin(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;
    const char *p = m->opts.pin;

    for (size_t i = 0; p[i]; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;       /* config validates; never send anything else */
    snprintf(out->buf, out->size, "AT+CPIN=\"%s\"", p);
    return true;
}

static int64_t sim_fired(void *ctx);

static enum at_script_verdict done_pin(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;

    m->pin_sent = true;
    if (!final_ok(rsp)) {
        log_error("modem: SIM PIN rejected (%s); not retrying", at_final_name(rsp->final));
        modem_set_state(m, MODEM_SIM_LOCKED);
        return AT_SCRIPT_FAIL;
    }
    /* AT+CPIN? again: the SIM needs a moment. */
    modem_retry_in(m, STEP_RETRY_MS, sim_fired);
    return AT_SCRIPT_HOLD;
}

/* A module left at AT+CFUN=0 (B/modem/power "min", then the bridge
 * restarted) may have its SIM switched off too: the bridge starts it at
 * full functionality, as the module itself does after every boot. */
static enum at_script_verdict done_cfun_query(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;
    struct at_result_iter it;
    int fun;

    /* 0 minimum, 4 flight mode */
    m->radio_off = final_ok(rsp) && info_line(rsp, "+CFUN:", &it) &&
                   at_result_next_number(&it, 0, 255, &fun) == 0 && (fun == 0 || fun == 4);
    return AT_SCRIPT_NEXT;
}

static bool build_cfun_full(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;

    if (!m->radio_off)
        return false;
    log_info("modem: the module is at minimum functionality; AT+CFUN=1");
    snprintf(out->buf, out->size, "AT+CFUN=1");
    return true;
}

static enum at_script_verdict done_cmgf(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;

    m->sms_supported = final_ok(rsp);
    if (!m->sms_supported)
        log_warn("modem: AT+CMGF=0 refused: this module variant has no SMS");
    return AT_SCRIPT_NEXT;
}

static bool build_sms_only(const struct modem *m, const char *cmd, struct at_script_cmd *out)
{
    if (!m->sms_supported)
        return false;
    snprintf(out->buf, out->size, "%s", cmd);
    return true;
}

/* Service 0: the module acknowledges incoming messages and status
 * reports to the network itself. Under 1 each +CMT/+CDS would need an
 * AT+CNMA in time, and a missed one stops the routing. 0 is the default;
 * this undoes a 1 left by another program. */
static bool build_csms(void *ctx, struct at_script_cmd *out)
{
    return build_sms_only(ctx, "AT+CSMS=0", out);
}

/* AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>: the first one the module accepts.
 * mt=1: "+CMTI" with the index; the message stays stored until we delete
 * it, which is what makes "delete only after PUBACK" possible. ds=1:
 * status reports as "+CDS" with the PDU; ds=2, for firmware that refuses
 * 1: stored, "+CDSI" with the index. Reports only come for SMS that asked
 * for one (TP-SRR), so they are always on. Some A7670 firmwares reject a
 * CNMI mode; mode 1 keeps +CMTI. */
static const struct {
    const char *cmd;
    int ds;                      /* its <ds>: 0 means no status reports */
} cnmi_modes[] = {
    { "AT+CNMI=2,1,0,1,0", 1 }, { "AT+CNMI=2,1,0,2,0", 2 }, { "AT+CNMI=2,1,0,0,0", 0 },
    { "AT+CNMI=1,1,0,1,0", 1 }, { "AT+CNMI=1,1,0,2,0", 2 }, { "AT+CNMI=1,1,0,0,0", 0 },
};
#define N_CNMI_MODES (sizeof(cnmi_modes) / sizeof(cnmi_modes[0]))

static bool build_cnmi(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;

    return build_sms_only(m, cnmi_modes[m->cnmi_index].cmd, out);
}

static enum at_script_verdict done_cnmi(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;

    if (final_ok(rsp)) {
        if (cnmi_modes[m->cnmi_index].ds == 0)
            log_warn("modem: the module takes no status reports (AT+CNMI <ds> 1 and 2 "
                     "refused); SMS sent with \"report\" get none on B/sms/report");
        return AT_SCRIPT_NEXT;
    }
    if (++m->cnmi_index < N_CNMI_MODES)
        return AT_SCRIPT_AGAIN;
    log_warn("modem: no new-SMS indications (AT+CNMI refused); stored SMS are read at every "
             "status refresh");
    return AT_SCRIPT_NEXT;
}

static enum at_script_verdict done_cscs(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;

    if (final_ok(rsp))
        m->charset_ucs2 = false;
    return AT_SCRIPT_NEXT;
}

static bool build_cpms(void *ctx, struct at_script_cmd *out)
{
    return build_sms_only(ctx, "AT+CPMS=\"SM\",\"SM\",\"SM\"", out);
}

static bool build_apn(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;

    if (!m->opts.apn || !*m->opts.apn)
        return false;
    snprintf(out->buf, out->size, "AT+CGDCONT=1,\"IP\",\"%s\"", m->opts.apn);
    return true;
}

/* modem.sleep: 2 sleeps when the UART is idle, 1 while DTR is off. The
 * module forgets it at every restart, when this runs again. */
/* Written in every mode: the module keeps AT+CSCLK until it restarts, so
 * "off" (and "dtr" fallen back to it on a port without DTR) must undo
 * the "rx" of an earlier run, or every command after 5 s of silence would
 * lose its first byte. A module without AT+CSCLK answers ERROR: the step
 * is optional. */
static bool build_sleep(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;

    snprintf(out->buf, out->size, "AT+CSCLK=%d",
             m->sleep == AT_SLEEP_RX ? 2 : m->sleep == AT_SLEEP_DTR ? 1 : 0);
    return true;
}

static bool build_init(void *ctx, struct at_script_cmd *out)
{
    struct modem *m = ctx;

    if (m->init_index >= m->opts.n_init)
        return false;
    snprintf(out->buf, out->size, "%s", m->opts.init[m->init_index]);
    return true;
}

static enum at_script_verdict done_init(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;

    if (!final_ok(rsp)) {
        const char *cmd = m->opts.init[m->init_index];
        char shown[128];

        /* Masked as the chat's own log is (AT+CGAUTH's password...). */
        at_chat_mask(cmd, strlen(cmd), shown, sizeof(shown));
        log_warn("modem: init command %zu (%s) failed: %s", m->init_index + 1, shown,
                 at_final_name(rsp->final));
    }
    m->init_index++;
    return m->init_index < m->opts.n_init ? AT_SCRIPT_AGAIN : AT_SCRIPT_NEXT;
}

#define INFO_DONE(field, prefix)                                                       \
    static enum at_script_verdict done_##field(void *ctx, const struct at_response *rsp) \
    {                                                                                  \
        struct modem *m = ctx;                                                         \
                                                                                       \
        if (final_ok(rsp))                                                             \
            copy_after(rsp, prefix, m->info.field, sizeof(m->info.field));             \
        return AT_SCRIPT_NEXT;                                                         \
    }
INFO_DONE(manufacturer, NULL)
INFO_DONE(model, NULL)
INFO_DONE(revision, "+CGMR:")
INFO_DONE(imei, NULL)
INFO_DONE(imsi, NULL)
INFO_DONE(iccid, "+ICCID:")

/* +CNUM: [<alpha>],"<number>",<type>: the alpha field is often empty and
 * unquoted (+CNUM: ,"+4917000000000",145). Not every SIM knows its number. */
static enum at_script_verdict done_number(void *ctx, const struct at_response *rsp)
{
    struct modem *m = ctx;
    struct at_result_iter it;

    /* Read into place only when it fits (the reader writes nothing else). */
    if (final_ok(rsp) && info_line(rsp, "+CNUM:", &it) && at_result_skip_next(&it) == 0)
        at_result_next_string(&it, m->info.number, sizeof(m->info.number));
    return AT_SCRIPT_NEXT;
}

#define OPT AT_STEP_OPTIONAL
#define INFO AT_STEP_EXPECT_INFO
static const struct at_script_step bringup_steps[] = {
    { .name = "echo off", .cmd = "ATE0" },
    { .name = "verbose errors", .cmd = "AT+CMEE=2", .flags = OPT },
    { .name = "functionality", .cmd = "AT+CFUN?", .info_prefix = "+CFUN:", .flags = INFO,
      .done = done_cfun_query },
    { .name = "full functionality", .build = build_cfun_full, .timeout_ms = 15000, .flags = OPT },
    { .label = "sim", .name = "SIM", .cmd = "AT+CPIN?", .info_prefix = "+CPIN:", .flags = INFO,
      .jump = "sms", .done = done_cpin },
    { .name = "SIM PIN", .build = build_pin, .timeout_ms = 10000, .done = done_pin },
    { .label = "sms", .name = "SMS PDU mode", .cmd = "AT+CMGF=0", .done = done_cmgf },
    { .name = "SMS service", .build = build_csms, .flags = OPT },
    { .name = "SMS indications", .build = build_cnmi, .done = done_cnmi },
    { .name = "SMS storage", .build = build_cpms, .info_prefix = "+CPMS:", .flags = OPT },
    { .name = "caller id", .cmd = "AT+CLIP=1", .flags = OPT },
    /* Strings in ASCII (the USSD service switches to UCS2 and back; a
     * process killed in between must not leave hex behind). */
    { .name = "character set", .cmd = "AT+CSCS=\"IRA\"", .flags = OPT, .done = done_cscs },
    { .name = "registration URCs", .cmd = "AT+CREG=2", .flags = OPT },
    { .name = "LTE registration URCs", .cmd = "AT+CEREG=2", .flags = OPT },
    { .name = "APN", .build = build_apn, .flags = OPT },
    { .name = "init commands", .build = build_init, .done = done_init },
    { .name = "manufacturer", .cmd = "AT+CGMI", .done = done_manufacturer },
    { .name = "model", .cmd = "AT+CGMM", .done = done_model },
    { .name = "firmware", .cmd = "AT+CGMR", .info_prefix = "+CGMR:", .flags = INFO,
      .done = done_revision },
    { .name = "IMEI", .cmd = "AT+CGSN", .done = done_imei },
    { .name = "IMSI", .cmd = "AT+CIMI", .done = done_imsi },
    { .name = "ICCID", .cmd = "AT+CICCID", .info_prefix = "+ICCID:", .done = done_iccid },
    { .name = "own number", .cmd = "AT+CNUM", .info_prefix = "+CNUM:", .done = done_number },
    { .name = "sleep mode", .build = build_sleep, .flags = OPT },
};
#undef OPT
#undef INFO

static const struct at_script bringup = { "modem", "bring-up", AT_SCRIPT_STEPS(bringup_steps) };

const struct at_script *modem_bringup_script(void)
{
    return &bringup;
}

/* --- getting in step and bring-up ----------------------------------------- */

/* PROBING: the chat resynchronises (chat.h); modem_tr_synced() goes on. */
void modem_start_sync(struct modem *m, bool discard, const char *why)
{
    modem_cancel_retry(m);
    modem_set_state(m, MODEM_PROBING);
    at_chat_resync(m->chat, discard, why);
}

static void start_bringup(struct modem *m)
{
    log_info("modem: answering AT");
    m->backoff_ms = BACKOFF_MIN_MS;
    m->init_index = 0;
    m->pin_sent = false;
    m->sms_supported = false;
    m->cnmi_index = 0;
    memset(&m->info, 0, sizeof(m->info));
    modem_set_state(m, MODEM_BRINGUP);
    at_script_start(m->run, &bringup, NULL);
}

void modem_tr_synced(void *ctx, bool ok)
{
    struct modem *m = ctx;
    char advice[512];

    if (!ok) {
        /* Said once, until the module answers: the resyncs of the
         * reopened port then go to the debug log. */
        if (!m->silent_logged)
            log_error("modem: %s; retrying quietly",
                      at_port_silent_advice(m->port, m->opts.port, m->opts.baud, advice,
                                            sizeof(advice)));
        m->silent_logged = true;
        at_chat_set_quiet(m->chat, true);
        /* A hung module, a wrong port or baud: reopening also resets a
         * USB-serial adapter's state. */
        modem_port_lost(m, "module not answering");
        return;
    }
    m->silent_logged = false;
    m->quiet = false;
    at_chat_set_quiet(m->chat, false);
    if (m->state == MODEM_PROBING)
        start_bringup(m);
}

/* The step the bring-up stopped at, again. */
static int64_t step_fired(void *ctx)
{
    struct modem *m = ctx;

    m->retry_timer = 0;
    at_script_resume(m->run);
    return 0;
}

/* The bring-up from the SIM step: after a PIN, or to look at a locked or
 * missing SIM again. */
static int64_t sim_fired(void *ctx)
{
    struct modem *m = ctx;

    m->retry_timer = 0;
    at_script_start(m->run, &bringup, "sim");
    return 0;
}

static void finish_bringup(struct modem *m)
{
    log_info("modem: ready (%s %s, firmware %s)", m->info.manufacturer, m->info.model,
             m->info.revision);
    if (m->cbs.info_changed)
        m->cbs.info_changed(m->ctx, &m->info);
    modem_set_state(m, MODEM_READY);
}

/* The step again, at most limit times in a row, then the port is reopened
 * (the module is not itself). */
static void try_again(struct modem *m, unsigned limit, int64_t delay_ms, const char *why)
{
    if (at_script_retries(m->run) >= limit) {
        modem_port_lost(m, why);
        return;
    }
    if (delay_ms > 0)
        modem_retry_in(m, delay_ms, step_fired);
    else
        at_script_resume(m->run);   /* it waits behind the chat's resync */
}

void modem_bringup_ended(void *ctx, const struct at_script_end *e)
{
    struct modem *m = ctx;

    if (e->ok) {
        finish_bringup(m);
    } else if (e->error) {
        log_error("modem: %s: cannot send", e->step->name);
        modem_retry_in(m, STEP_RETRY_MS, step_fired);
    } else if (e->rsp->final == AT_FINAL_CANCELLED) {
        return;     /* the port closed or the module restarted: that path goes on */
    } else if (m->state != MODEM_BRINGUP) {
        /* SIM locked or missing: look again later (someone may fix it),
         * without ever resending a PIN that was already tried. */
        modem_retry_in(m, LOCKED_RECHECK_MS, sim_fired);
    } else if (e->rsp->final == AT_FINAL_TIMEOUT || e->rsp->final == AT_FINAL_OUT_OF_STEP ||
               e->rsp->final == AT_FINAL_OK) {
        /* No answer, or one that did not fit: the chat resynchronises. */
        try_again(m, STEP_DOUBT_ATTEMPTS, 0, "bring-up answers keep not fitting");
    } else {
        try_again(m, SIM_BUSY_ATTEMPTS, STEP_RETRY_MS, "bring-up keeps failing");
    }
}

