/* The modem: port ownership, bring-up script, recovery. See modem.h. */
#include "modem/modem.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "at/chat.h"
#include "at/port.h"
#include "at/result.h"
#include "at/script.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/cmqtt.h"

#define STEP_RETRY_MS 1000
#define SIM_BUSY_ATTEMPTS 30        /* "+CME ERROR: SIM busy" right after boot */
/* A step whose answer was lost or out of step is tried again (the chat has
 * resynchronised meanwhile); this often means the module is not itself. */
#define STEP_DOUBT_ATTEMPTS 5
#define LOCKED_RECHECK_MS 30000
#define BACKOFF_MIN_MS 1000
/* A replugged module is found within this (plus its boot). */
#define BACKOFF_MAX_MS 5000
#define READ_CHUNK 4096
/* Output waiting in the port with no byte taken for this long: the module
 * or the device server does not read (a hung USB-serial adapter, a
 * device server whose peer stopped). The port is reopened, as when a
 * blocking write gave up after this long. */
#define OUTPUT_STALL_MS 2000
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

struct modem {
    struct loop *loop;
    uint64_t opens;              /* successful port opens (modem_reopens) */
    struct modem_opts opts;      /* strings borrowed from the caller */
    struct modem_cbs cbs;
    void *ctx;

    struct at_port *port;
    int watch_fd;                /* the port's fd as registered with the loop, or -1 */
    short watch_events;
    struct at_chat *chat;
    enum modem_state state;

    uint64_t chat_timer;
    uint64_t open_timer;         /* a tcp:// port is slow to connect */
    uint64_t stall_timer;        /* output waits and does not move */
    uint64_t retry_timer;
    uint64_t reset_timer;        /* MODEM_RESETTING: the boot is overdue */
    int backoff_ms;
    bool open_failed_logged;
    bool silent_logged;          /* told the user nothing answers AT, until it does */

    struct at_script_run *run;   /* the bring-up script */
    size_t init_index;           /* next of opts.init for the init step */
    bool pin_sent;               /* a PIN is sent at most once per boot */
    bool sms_supported;
    size_t cnmi_index;           /* into cnmi_modes[]: the one being tried */
    bool radio_off;              /* AT+CFUN? said 0 or 4 during the bring-up */

    struct modem_info info;
    bool charset_ucs2;           /* TE character set section at the end */
};

/* --- the bring-up script ------------------------------------------------ */

/* The steps (at/script.h) run on the modem's own chat. A step that fails
 * (a step without done() that is not answered OK, or a done() saying
 * AT_SCRIPT_FAIL) is tried again after STEP_RETRY_MS; one whose answer was
 * lost, out of step, or did not fit (done() said AT_SCRIPT_FAIL on OK) is
 * tried again at once, behind the chat's resync; a step that set another
 * state (SIM locked or missing) ends the bring-up there: see
 * bringup_ended(). */

static void set_state(struct modem *m, enum modem_state st);
static void port_lost(struct modem *m, const char *why);
static void retry_in(struct modem *m, int64_t ms, loop_timer_cb cb);

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

    /* The recheck of a locked or missing SIM (bringup_ended) is not acted
     * on: bring-up answers count only during the bring-up. */
    if (m->state != MODEM_BRINGUP)
        return AT_SCRIPT_HOLD;
    if (is_no_sim(rsp)) {
        log_error("modem: no SIM inserted");
        set_state(m, MODEM_NO_SIM);
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
        set_state(m, MODEM_NO_SIM);
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
    set_state(m, MODEM_SIM_LOCKED);
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
        set_state(m, MODEM_SIM_LOCKED);
        return AT_SCRIPT_FAIL;
    }
    /* AT+CPIN? again: the SIM needs a moment. */
    retry_in(m, STEP_RETRY_MS, sim_fired);
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
};
#undef OPT
#undef INFO

static const struct at_script bringup = { "modem", "bring-up", AT_SCRIPT_STEPS(bringup_steps) };

const struct at_script *modem_bringup_script(void)
{
    return &bringup;
}

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

static void set_state(struct modem *m, enum modem_state st)
{
    if (m->state == st)
        return;
    log_debug("modem: state %s -> %s", modem_state_name(m->state), modem_state_name(st));
    m->state = st;
    if (m->cbs.state_changed)
        m->cbs.state_changed(m->ctx, st);
}

static void cancel_retry(struct modem *m)
{
    loop_cancel_timer(m->loop, m->retry_timer);
    m->retry_timer = 0;
}

static void retry_in(struct modem *m, int64_t ms, loop_timer_cb cb)
{
    cancel_retry(m);
    if (loop_add_timer(m->loop, ms, cb, m, &m->retry_timer) < 0)
        log_error("modem: cannot arm a timer");
}

/* --- chat transport ----------------------------------------------------- */

static void output_moved(struct modem *m, bool moved);

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
        output_moved(m, false);
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

/* --- the port ------------------------------------------------------------ */

static int64_t reopen_fired(void *ctx);
static int64_t open_overdue(void *ctx);
static void start_sync(struct modem *m, bool discard, const char *why);
static void on_port(void *ctx, int fd, short revents);
static void port_opened(struct modem *m);
static void open_failed(struct modem *m, int err);
static void close_port(struct modem *m);

/* Keeps the loop's registration in step with the port: its fd changes
 * while a tcp:// port opens, and POLLOUT is asked for only while output
 * waits (otherwise poll() would return at once, forever). */
static int watch_port(struct modem *m)
{
    int fd = at_port_fd(m->port);
    short ev = at_port_events(m->port);
    int r;

    if (fd == m->watch_fd) {
        if (ev != m->watch_events)
            loop_mod_fd(m->loop, fd, ev);
        m->watch_events = ev;
        return 0;
    }
    if (m->watch_fd >= 0)
        loop_del_fd(m->loop, m->watch_fd);
    m->watch_fd = -1;
    if (fd < 0)
        return 0;
    r = loop_add_fd(m->loop, fd, ev, on_port, m);
    if (r < 0)
        return r;
    m->watch_fd = fd;
    m->watch_events = ev;
    return 0;
}

static int64_t output_stalled(void *ctx)
{
    struct modem *m = ctx;

    m->stall_timer = 0;
    port_lost(m, "output stalled: the module takes no bytes");
    return 0;
}

/* After a write or a flush (moved: the flush wrote bytes): POLLOUT while
 * output waits, and the stall clock, which restarts whenever bytes move. */
static void output_moved(struct modem *m, bool moved)
{
    bool waiting = at_port_pending(m->port) > 0;

    if (watch_port(m) < 0)
        log_error("modem: cannot watch the port");
    if (waiting && m->stall_timer && !moved)
        return;
    loop_cancel_timer(m->loop, m->stall_timer);
    m->stall_timer = 0;
    if (waiting && loop_add_timer(m->loop, OUTPUT_STALL_MS, output_stalled, m,
                                  &m->stall_timer) < 0)
        log_error("modem: cannot arm the output timer");
}

/* A tcp:// port moved on (resolved, connected, or failed). */
static void continue_open(struct modem *m)
{
    int r = at_port_open_continue(m->port);

    if (r == -EINPROGRESS)
        r = watch_port(m);
    else if (r == 0 && (r = watch_port(m)) == 0)
        port_opened(m);
    if (r < 0) {
        close_port(m);
        open_failed(m, r);
    }
}

static void on_port(void *ctx, int fd, short revents)
{
    struct modem *m = ctx;
    uint8_t buf[READ_CHUNK];
    ssize_t n;

    (void)fd;
    if (at_port_opening(m->port)) {
        continue_open(m);
        return;
    }
    if (revents & POLLOUT) {
        n = at_port_flush(m->port);
        if (n < 0) {
            port_lost(m, n == -EPIPE ? "device vanished" : strerror((int)-n));
            return;
        }
        output_moved(m, n > 0);
        if (!(revents & (POLLIN | POLLHUP | POLLERR)))
            return;
    }
    /* Read until EAGAIN; POLLHUP without data means the device vanished. */
    for (;;) {
        n = at_port_read(m->port, buf, sizeof(buf));
        if (n > 0) {
            at_chat_feed(m->chat, buf, (size_t)n);
            if (!m->port)
                return;         /* a handler closed it (recovery) */
            continue;
        }
        if (n == 0 && !(revents & (POLLHUP | POLLERR)))
            return;
        port_lost(m, n < 0 && n != -EPIPE ? strerror((int)-n) : "device vanished");
        return;
    }
}

static void close_port(struct modem *m)
{
    loop_cancel_timer(m->loop, m->open_timer);
    loop_cancel_timer(m->loop, m->stall_timer);
    m->open_timer = m->stall_timer = 0;
    if (!m->port)
        return;
    if (m->watch_fd >= 0)
        loop_del_fd(m->loop, m->watch_fd);
    m->watch_fd = -1;
    at_port_close(m->port);
    m->port = NULL;
}

static void schedule_reopen(struct modem *m)
{
    retry_in(m, m->backoff_ms, reopen_fired);
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

static void port_lost(struct modem *m, const char *why)
{
    log_msg(m->silent_logged ? LOG_DEBUG : LOG_WARN, "modem: port lost (%s); reopening", why);
    close_port(m);
    cancel_retry(m);
    /* After AT+CRESET a USB module re-enumerates: still resetting. */
    set_state(m, m->state == MODEM_RESETTING ? MODEM_RESETTING : MODEM_CLOSED);
    at_chat_cancel_all(m->chat);
    schedule_reopen(m);
}

static int open_port(struct modem *m)
{
    char path[PATH_MAX];
    const char *spec = m->opts.port;
    int r;

    if (strcmp(spec, "auto") == 0) {
        r = at_port_find_auto(path, sizeof(path));
        if (r < 0)
            return r;
        spec = path;
    }
    r = at_port_open(spec, m->opts.baud, &m->port);
    if (r < 0)
        return r;
    r = watch_port(m);
    if (r < 0) {
        close_port(m);
        return r;
    }
    if (at_port_opening(m->port)) {
        /* on_port goes on; the state stays CLOSED until connected. */
        if (loop_add_timer(m->loop, AT_PORT_CONNECT_MS, open_overdue, m, &m->open_timer) < 0)
            log_error("modem: cannot arm the connect timer");
        return 0;
    }
    port_opened(m);
    return 0;
}

static void port_opened(struct modem *m)
{
    loop_cancel_timer(m->loop, m->open_timer);
    m->open_timer = 0;
    log_info("modem: port %s open", m->opts.port);
    m->opens++;
    m->open_failed_logged = false;
    /* What the port holds now was written before we came: a killed
     * process's answers, a device server's registry packet. */
    start_sync(m, true, "port opened");
}

static void open_failed(struct modem *m, int err)
{
    char advice[512];

    /* Once, then quietly: a modem may be unplugged for days, and a udev
     * rule or a group change may let us in later. */
    if (!m->open_failed_logged)
        log_msg(err == -EACCES ? LOG_ERROR : LOG_WARN,
                "modem: cannot open %s: %s%s; retrying every %d s at most, quietly",
                m->opts.port, strerror(-err),
                at_port_open_advice(err, m->opts.port, advice, sizeof(advice)),
                BACKOFF_MAX_MS / 1000);
    else
        log_debug("modem: cannot open %s: %s", m->opts.port, strerror(-err));
    m->open_failed_logged = true;
    schedule_reopen(m);
}

static int64_t open_overdue(void *ctx)
{
    struct modem *m = ctx;

    m->open_timer = 0;
    log_debug("modem: %s: no connection after %d s", m->opts.port, AT_PORT_CONNECT_MS / 1000);
    close_port(m);
    open_failed(m, -ETIMEDOUT);
    return 0;
}

static int64_t reopen_fired(void *ctx)
{
    struct modem *m = ctx;
    int r;

    m->retry_timer = 0;
    r = open_port(m);
    if (r < 0)
        open_failed(m, r);
    return 0;
}

/* --- getting in step and bring-up ----------------------------------------- */

/* PROBING: the chat resynchronises (chat.h); tr_synced() goes on. */
static void start_sync(struct modem *m, bool discard, const char *why)
{
    cancel_retry(m);
    set_state(m, MODEM_PROBING);
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
    set_state(m, MODEM_BRINGUP);
    at_script_start(m->run, &bringup, NULL);
}

static void tr_synced(void *ctx, bool ok)
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
        port_lost(m, "module not answering");
        return;
    }
    m->silent_logged = false;
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
    set_state(m, MODEM_READY);
}

/* The step again, at most limit times in a row, then the port is reopened
 * (the module is not itself). */
static void try_again(struct modem *m, unsigned limit, int64_t delay_ms, const char *why)
{
    if (at_script_retries(m->run) >= limit) {
        port_lost(m, why);
        return;
    }
    if (delay_ms > 0)
        retry_in(m, delay_ms, step_fired);
    else
        at_script_resume(m->run);   /* it waits behind the chat's resync */
}

static void bringup_ended(void *ctx, const struct at_script_end *e)
{
    struct modem *m = ctx;

    if (e->ok) {
        finish_bringup(m);
    } else if (e->error) {
        log_error("modem: %s: cannot send", e->step->name);
        retry_in(m, STEP_RETRY_MS, step_fired);
    } else if (e->rsp->final == AT_FINAL_CANCELLED) {
        return;     /* the port closed or the module restarted: that path goes on */
    } else if (m->state != MODEM_BRINGUP) {
        /* SIM locked or missing: look again later (someone may fix it),
         * without ever resending a PIN that was already tried. */
        retry_in(m, LOCKED_RECHECK_MS, sim_fired);
    } else if (e->rsp->final == AT_FINAL_TIMEOUT || e->rsp->final == AT_FINAL_OUT_OF_STEP ||
               e->rsp->final == AT_FINAL_OK) {
        /* No answer, or one that did not fit: the chat resynchronises. */
        try_again(m, STEP_DOUBT_ATTEMPTS, 0, "bring-up answers keep not fitting");
    } else {
        try_again(m, SIM_BUSY_ATTEMPTS, STEP_RETRY_MS, "bring-up keeps failing");
    }
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
    start_sync(m, false, "module restarted");
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
        .synced = tr_synced,
    };
    const struct at_script_host host = {
        .send = chat_send, .send_ctx = m, .default_timeout_ms = opts->command_timeout_ms,
        .ended = bringup_ended, .ctx = m,
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
    cancel_retry(m);
    loop_cancel_timer(m->loop, m->reset_timer);
    loop_cancel_timer(m->loop, m->chat_timer);
    close_port(m);
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
    retry_in(m, 0, reopen_fired);
    return 0;
}

enum modem_state modem_state(const struct modem *m)
{
    return m->state;
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
        set_state(m, MODEM_CLOSED);     /* the reopen backoff goes on */
        return 0;
    }
    /* Some firmwares reboot without a boot URC (or we missed it). */
    log_warn("modem: no boot URC %d s after AT+CRESET; probing", MODEM_RESET_WAIT_MS / 1000);
    at_chat_cancel_all(m->chat);
    start_sync(m, false, "no boot URC after AT+CRESET");
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
                set_state(m, MODEM_READY);
            }
            break;
        case MODEM_POWER_MIN:
            if (m->state == MODEM_READY) {
                log_info("modem: minimum functionality (AT+CFUN=0)");
                set_state(m, MODEM_LOW_POWER);
            }
            break;
        case MODEM_POWER_RESET:
        default:
            if (m->state == MODEM_READY || m->state == MODEM_LOW_POWER) {
                log_info("modem: resetting (AT+CRESET); waiting for the module to boot");
                /* Nothing more may be written to a module that reboots. */
                cancel_retry(m);
                set_state(m, MODEM_RESETTING);
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
