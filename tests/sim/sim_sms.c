/* The simulated SIM's SMS store, the SMS AT commands (PDU mode) and the
 * control commands that make messages arrive.
 *
 * Slots are numbered from 1; a new message takes the lowest free one. A
 * full SIM stores nothing more: `sms`/`pdu`/`store` answer "error sim full"
 * (a message from the network also gives the URC SMS FULL), AT+CMGW
 * answers +CMS ERROR: 322.
 *
 * Arrival follows AT+CNMI <mt>: 1 (the default, 2,1,0,0,0) stores and sends
 * +CMTI: "<mem3>",<idx>; 2 sends +CMT: ,<len> and the PDU without storing;
 * 0 only stores. Before boot and while the SIM is not ready, messages are
 * stored silently (they wait on the SIM for the next AT+CMGL).
 *
 * AT+CMGS checks the PDU like the module does: hex, TPDU length equal to
 * the announced <length>, an SMS-SUBMIT (else +CMS ERROR: 304). A SUBMIT
 * asking for a status report (TP-SRR) gets one after --report-ms, as
 * AT+CNMI <ds> says then: 1 a +CDS with the PDU, 2 stored and +CDSI with
 * the index, 0 none. */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SIM_SMSC "+491770610000"
#define SIM_TZ_MINUTES 60
#define SIM_TPDU_MAX 164

int sim_sms_init(struct sim *s)
{
    s->sms.slots = calloc(s->opt.capacity ? s->opt.capacity : 1, sizeof(*s->sms.slots));
    return s->sms.slots ? 0 : -ENOMEM;
}

void sim_sms_free(struct sim *s)
{
    free(s->sms.slots);
    s->sms.slots = NULL;
}

void sim_sms_reset(struct sim *s)
{
    struct sim_sms *m = &s->sms;
    m->text_mode = false;
    static const int cnmi[5] = {2, 1, 0, 0, 0};
    memcpy(m->cnmi, cnmi, sizeof(cnmi));
    for (int i = 0; i < 3; i++)
        memcpy(m->mem[i], "SM", 3);
    static const int csmp[4] = {17, 167, 0, 0};
    memcpy(m->csmp, csmp, sizeof(csmp));
    m->csms = 0;
    snprintf(m->cscs, sizeof(m->cscs), "IRA");
    memset(m->reports, 0, sizeof(m->reports));
    sim_timer_stop(s, SIM_TIMER_REPORT);
}

/* ---- the store ---- */

static size_t used_count(const struct sim *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->opt.capacity; i++)
        n += s->sms.slots[i].used;
    return n;
}

/* The PDU's TPDU length (octets after the SMSC field), or -1 when hex is
 * not a plausible PDU (not hex, no TPDU, too long). */
static long tpdu_length(const char *hex, size_t len)
{
    uint8_t oct[PDU_HEX_MAX / 2];
    if (len == 0 || len >= PDU_HEX_MAX)
        return -1;
    long n = sim_hex_decode(hex, len, oct, sizeof(oct));
    if (n < 2 || 1 + (long)oct[0] >= n)
        return -1;
    long tpdu = n - 1 - oct[0];
    return tpdu > SIM_TPDU_MAX ? -1 : tpdu;
}

/* The index (from 1), or -ENOSPC. */
static int store(struct sim *s, const char *hex, size_t tpdu_len, uint8_t stat)
{
    for (size_t i = 0; i < s->opt.capacity; i++) {
        struct sim_sms_slot *slot = &s->sms.slots[i];
        if (slot->used)
            continue;
        slot->used = true;
        slot->stat = stat;
        slot->tpdu_len = tpdu_len;
        size_t j = 0;
        for (; hex[j] && j < sizeof(slot->hex) - 1; j++)
            slot->hex[j] = (char)(hex[j] >= 'a' && hex[j] <= 'f' ? hex[j] - 32 : hex[j]);
        slot->hex[j] = '\0';
        sim_log(s, "stored at %zu (stat %u)", i + 1, stat);
        return (int)(i + 1);
    }
    sim_log(s, "SIM full (%zu messages): not stored", s->opt.capacity);
    return -ENOSPC;
}

static void urc_pdu(struct sim *s, const char *hex)
{
    sim_writes(s, hex);
    sim_writes(s, "\r\n");
}

static void cmt(struct sim *s, const char *hex, size_t tpdu_len)
{
    sim_log(s, "+CMT: ,%zu (not stored)", tpdu_len);
    sim_urc(s, "+CMT: ,%zu", tpdu_len);
    urc_pdu(s, hex);
}

static bool host_ready(const struct sim *s)
{
    return s->phase == SIM_READY && s->card == SIM_CARD_READY && !s->hung;
}

/* A message from the network. >0: the index it got; 0: delivered with
 * +CMT, not stored; -ENOSPC. */
static int arrive(struct sim *s, const char *hex, size_t tpdu_len)
{
    int mt = s->sms.cnmi[1];
    if (host_ready(s) && mt == 2 && !s->sms.text_mode) {
        cmt(s, hex, tpdu_len);
        return 0;
    }
    int idx = store(s, hex, tpdu_len, 0);
    if (idx > 0 && host_ready(s) && mt != 0)
        sim_urc(s, "+CMTI: \"%s\",%d", s->sms.mem[2], idx);
    if (idx == -ENOSPC && host_ready(s))
        sim_urc(s, "SMS FULL");
    return idx;
}

/* ---- status reports ---- */

static void put_bcd(uint8_t *o, int v)
{
    *o = (uint8_t)((v % 10) << 4 | (v / 10) % 10); /* semi-octets, swapped */
}

static void put_time(uint8_t *o, time_t t, int tz_minutes)
{
    time_t local = t + tz_minutes * 60;
    struct tm tm;
    gmtime_r(&local, &tm);
    put_bcd(o + 0, tm.tm_year % 100);
    put_bcd(o + 1, tm.tm_mon + 1);
    put_bcd(o + 2, tm.tm_mday);
    put_bcd(o + 3, tm.tm_hour);
    put_bcd(o + 4, tm.tm_min);
    put_bcd(o + 5, tm.tm_sec);
    int q = (tz_minutes < 0 ? -tz_minutes : tz_minutes) / 15;
    put_bcd(o + 6, q);
    if (tz_minutes < 0)
        o[6] |= 0x08;
}

/* SMS-STATUS-REPORT (23.040 9.2.2.3) for a numeric recipient; -1 else. */
static int build_report(const struct sim_report *r, int status, char *hex, size_t *tpdu_len)
{
    uint8_t o[64];
    size_t n = 0;
    const char *a = r->addr;
    bool intl = a[0] == '+';
    if (intl)
        a++;
    size_t digits = strlen(a);
    if (digits == 0 || digits > 20 || strspn(a, "0123456789") != digits)
        return -1;
    o[n++] = 0x00;            /* no SMSC field */
    o[n++] = 0x06;            /* TP-MTI status report, TP-MMS */
    o[n++] = r->mr;
    o[n++] = (uint8_t)digits;
    o[n++] = intl ? 0x91 : 0x81;
    for (size_t i = 0; i < digits; i += 2) {
        int lo = a[i] - '0';
        int hi = i + 1 < digits ? a[i + 1] - '0' : 0xF;
        o[n++] = (uint8_t)(hi << 4 | lo);
    }
    time_t now = time(NULL);
    put_time(o + n, now - 2, SIM_TZ_MINUTES); /* TP-SCTS */
    n += 7;
    put_time(o + n, now, SIM_TZ_MINUTES);     /* TP-DT */
    n += 7;
    o[n++] = (uint8_t)status;
    sim_hex_encode(o, n, hex);
    *tpdu_len = n - 1;
    return 0;
}

static void reports_arm(struct sim *s);

/* A status report arrives: ds=1 +CDS (lost while the host is not ready,
 * as with a module that cannot deliver it), ds=2 stored and +CDSI (a full
 * SIM loses it). */
static void report_arrive(struct sim *s, const struct sim_report *r)
{
    char hex[PDU_HEX_MAX];
    size_t len;
    int ds = s->sms.cnmi[3], st = s->sms.report_status;

    if (build_report(r, st, hex, &len) < 0) {
        sim_log(s, "no status report for mr %u: recipient %s not numeric", r->mr, r->addr);
        return;
    }
    if (ds == 1 && host_ready(s)) {
        sim_log(s, "+CDS for mr %u (status %d)", r->mr, st);
        sim_urc(s, "+CDS: %zu", len);
        urc_pdu(s, hex);
    } else if (ds == 2) {
        int idx = store(s, hex, len, 0);
        sim_log(s, "status report for mr %u (status %d) stored at %d", r->mr, st, idx);
        if (idx > 0 && host_ready(s))
            sim_urc(s, "+CDSI: \"%s\",%d", s->sms.mem[2], idx);
    }
}

static void reports_fire(struct sim *s)
{
    int64_t now = sim_now_ms();
    for (size_t i = 0; i < SIM_REPORTS_MAX; i++) {
        struct sim_report *r = &s->sms.reports[i];
        if (!r->used || r->due > now)
            continue;
        r->used = false;
        report_arrive(s, r);
    }
    reports_arm(s);
}

static void reports_arm(struct sim *s)
{
    int64_t due = 0;
    for (size_t i = 0; i < SIM_REPORTS_MAX; i++) {
        const struct sim_report *r = &s->sms.reports[i];
        if (r->used && (due == 0 || r->due < due))
            due = r->due;
    }
    if (due == 0) {
        sim_timer_stop(s, SIM_TIMER_REPORT);
        return;
    }
    int64_t ms = due - sim_now_ms();
    sim_timer_set(s, SIM_TIMER_REPORT, ms > 0 ? ms : 0, reports_fire);
}

static void report_queue(struct sim *s, uint8_t mr, const char *addr)
{
    if (s->sms.cnmi[3] == 0) {
        sim_log(s, "status report for mr %u: none routed (AT+CNMI ds=0)", mr);
        return;
    }
    for (size_t i = 0; i < SIM_REPORTS_MAX; i++) {
        struct sim_report *r = &s->sms.reports[i];
        if (r->used)
            continue;
        r->used = true;
        r->due = sim_now_ms() + s->opt.report_ms;
        r->mr = mr;
        snprintf(r->addr, sizeof(r->addr), "%s", addr);
        reports_arm(s);
        return;
    }
    sim_log(s, "warning: too many status reports in flight, mr %u gets none", mr);
}

/* ---- AT commands ---- */

static struct sim_result cmd_cmgf(struct sim *s, const struct sim_at *at)
{
    int v = s->sms.text_mode;
    struct sim_params p;
    long n;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CMGF: %d", v);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CMGF: (0-1)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !sim_param_int(&p, 0, 0, 1, &n))
            return SIM_RES_ERROR;
        s->sms.text_mode = n == 1;
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        s->sms.text_mode = false; /* AT+CMGF: the default, PDU */
        return SIM_RES_OK;
    }
}

static struct sim_result cmd_cnmi(struct sim *s, const struct sim_at *at)
{
    static const long max[5] = {3, 3, 3, 2, 1};
    struct sim_params p;
    int *c = s->sms.cnmi;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CNMI: %d,%d,%d,%d,%d", c[0], c[1], c[2], c[3], c[4]);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CNMI: (0-3),(0-3),(0,2),(0-2),(0-1)");
        return SIM_RES_OK;
    case SIM_AT_SET: {
        if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 5)
            return SIM_RES_CMS(302);
        int next[5];
        memcpy(next, c, sizeof(next));
        for (size_t i = 0; i < p.n; i++) {
            long v;
            if (p.v[i][0] == '\0')
                continue; /* omitted: unchanged */
            if (!sim_param_int(&p, i, 0, max[i], &v))
                return SIM_RES_CMS(302);
            next[i] = (int)v;
        }
        memcpy(c, next, sizeof(next));
        return SIM_RES_OK;
    }
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_csms(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long v;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CSMS: %d,1,1,1", s->sms.csms);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CSMS: (0-1)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !sim_param_int(&p, 0, 0, 1, &v))
            return SIM_RES_CMS(302);
        s->sms.csms = (int)v;
        sim_info(s, "+CSMS: 1,1,1");
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_cpms(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    size_t used = used_count(s), cap = s->opt.capacity;
    char (*mem)[3] = s->sms.mem;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CPMS: \"%s\",%zu,%zu,\"%s\",%zu,%zu,\"%s\",%zu,%zu", mem[0], used, cap,
                 mem[1], used, cap, mem[2], used, cap);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CPMS: (\"SM\",\"ME\"),(\"SM\",\"ME\"),(\"SM\",\"ME\")");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 3)
            return SIM_RES_CMS(302);
        for (size_t i = 0; i < p.n; i++)
            if (strcmp(p.v[i], "SM") != 0 && strcmp(p.v[i], "ME") != 0)
                return SIM_RES_CMS(302);
        /* One store whatever the name: the simulator has only the SIM. */
        for (size_t i = 0; i < p.n; i++)
            memcpy(mem[i], p.v[i], 3);
        sim_info(s, "+CPMS: %zu,%zu,%zu,%zu,%zu,%zu", used, cap, used, cap, used, cap);
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_csmp(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    int *c = s->sms.csmp;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CSMP: %d,%d,%d,%d", c[0], c[1], c[2], c[3]);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 4)
            return SIM_RES_ERROR;
        for (size_t i = 0; i < p.n; i++) {
            long v;
            if (p.v[i][0] == '\0')
                continue;
            if (!sim_param_int(&p, i, 0, 255, &v))
                return SIM_RES_ERROR;
            c[i] = (int)v;
        }
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

static struct sim_result cmd_csca(struct sim *s, const struct sim_at *at)
{
    if (at->kind == SIM_AT_QUERY)
        sim_info(s, "+CSCA: \"" SIM_SMSC "\",145");
    return at->kind == SIM_AT_EXEC ? SIM_RES_ERROR : SIM_RES_OK;
}

static struct sim_result cmd_cscs(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    switch (at->kind) {
    case SIM_AT_QUERY:
        sim_info(s, "+CSCS: \"%s\"", s->sms.cscs);
        return SIM_RES_OK;
    case SIM_AT_TEST:
        sim_info(s, "+CSCS: (\"IRA\",\"GSM\",\"UCS2\")");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 ||
            (strcmp(p.v[0], "IRA") != 0 && strcmp(p.v[0], "GSM") != 0 &&
             strcmp(p.v[0], "UCS2") != 0))
            return SIM_RES_ERROR;
        snprintf(s->sms.cscs, sizeof(s->sms.cscs), "%.7s", p.v[0]);
        return SIM_RES_OK;
    case SIM_AT_EXEC:
    default:
        return SIM_RES_ERROR;
    }
}

/* The data of AT+CMGS/AT+CMGW: hex, the announced TPDU length, decodable.
 * 0 and *msg, or -1. */
static int check_pdu(struct sim *s, const uint8_t *data, size_t len, struct pdu_msg *msg)
{
    long tpdu = tpdu_length((const char *)data, len);
    if (tpdu < 0) {
        sim_log(s, "PDU rejected: not hex or no TPDU");
        return -1;
    }
    if ((size_t)tpdu != s->sms.announced) {
        sim_log(s, "PDU rejected: TPDU has %ld octets, %zu announced", tpdu, s->sms.announced);
        return -1;
    }
    if (pdu_decode((const char *)data, len, s->sms.announced, msg) < 0) {
        sim_log(s, "PDU rejected: pdu_decode failed");
        return -1;
    }
    return 0;
}

static void cmgs_result(struct sim *s)
{
    struct sim_sms *m = &s->sms;
    sim_event(s, "sent %u %s", m->pending_mr, m->pending_pdu);
    sim_info(s, "+CMGS: %u", m->pending_mr);
    if (m->pending_report)
        report_queue(s, m->pending_mr, m->pending_addr);
}

static void cmgs_deferred(struct sim *s)
{
    cmgs_result(s);
    sim_final(s, SIM_RES_OK);
}

static struct sim_result cmgs_data(struct sim *s, const uint8_t *data, size_t len,
                                   bool cancelled, bool overflow)
{
    struct sim_sms *m = &s->sms;
    if (cancelled) {
        sim_log(s, "AT+CMGS cancelled: nothing sent");
        return SIM_RES_OK;
    }
    struct pdu_msg msg;
    if (overflow || check_pdu(s, data, len, &msg) < 0)
        return SIM_RES_CMS(304);
    if (msg.type != PDU_SUBMIT) {
        sim_log(s, "PDU rejected: not an SMS-SUBMIT");
        return SIM_RES_CMS(304);
    }
    if (m->cms_next) {
        int code = m->cms_next;
        m->cms_next = 0;
        sim_log(s, "failing this AT+CMGS as asked (cms %d)", code);
        return SIM_RES_CMS(code);
    }
    if (!sim_registered(s))
        return SIM_RES_CMS(331);
    m->pending_mr = m->next_mr++;
    memcpy(m->pending_pdu, data, len);
    m->pending_pdu[len] = '\0';
    m->pending_report = msg.status_report;
    snprintf(m->pending_addr, sizeof(m->pending_addr), "%s", msg.addr);
    sim_log(s, "SMS to %s accepted, mr %u%s", msg.addr, m->pending_mr,
            msg.status_report ? ", status report requested" : "");
    if (s->opt.cmgs_ms > 0)
        return sim_defer(s, s->opt.cmgs_ms, cmgs_deferred);
    cmgs_result(s);
    return SIM_RES_OK;
}

static struct sim_result cmd_cmgs(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long len;
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_SET)
        return SIM_RES_ERROR;
    if (s->sms.text_mode)
        return SIM_RES_CMS(303); /* text mode is not simulated */
    if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 ||
        !sim_param_int(&p, 0, 1, SIM_TPDU_MAX, &len))
        return SIM_RES_CMS(304);
    s->sms.announced = (size_t)len;
    return sim_prompt(s, 0, cmgs_data);
}

static struct sim_result cmgw_data(struct sim *s, const uint8_t *data, size_t len,
                                   bool cancelled, bool overflow)
{
    if (cancelled)
        return SIM_RES_OK;
    struct pdu_msg msg;
    if (overflow || check_pdu(s, data, len, &msg) < 0)
        return SIM_RES_CMS(304);
    char hex[PDU_HEX_MAX];
    memcpy(hex, data, len);
    hex[len] = '\0';
    int idx = store(s, hex, s->sms.announced, s->sms.write_stat);
    if (idx < 0)
        return SIM_RES_CMS(322);
    sim_info(s, "+CMGW: %d", idx);
    return SIM_RES_OK;
}

static struct sim_result cmd_cmgw(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long len, stat = 2;
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_SET)
        return SIM_RES_ERROR;
    if (s->sms.text_mode)
        return SIM_RES_CMS(303);
    if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 2 ||
        !sim_param_int(&p, 0, 1, SIM_TPDU_MAX, &len) ||
        (p.n == 2 && !sim_param_int(&p, 1, 0, 3, &stat)))
        return SIM_RES_CMS(304);
    s->sms.announced = (size_t)len;
    s->sms.write_stat = (uint8_t)stat;
    return sim_prompt(s, 0, cmgw_data);
}

static struct sim_result cmd_cmgr(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long idx;
    if (at->kind == SIM_AT_TEST)
        return SIM_RES_OK;
    if (at->kind != SIM_AT_SET)
        return SIM_RES_ERROR;
    if (s->sms.text_mode)
        return SIM_RES_CMS(303);
    if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 ||
        !sim_param_int(&p, 0, 1, (long)s->opt.capacity, &idx) || !s->sms.slots[idx - 1].used)
        return SIM_RES_CMS(321);
    struct sim_sms_slot *slot = &s->sms.slots[idx - 1];
    sim_info(s, "+CMGR: %u,,%zu", slot->stat, slot->tpdu_len);
    sim_info(s, "%s", slot->hex);
    if (slot->stat == 0)
        slot->stat = 1; /* received unread -> received read */
    return SIM_RES_OK;
}

static struct sim_result cmd_cmgl(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long stat = 0; /* 27.005: AT+CMGL alone lists the unread ones */
    switch (at->kind) {
    case SIM_AT_TEST:
        sim_info(s, "+CMGL: (0-4)");
        return SIM_RES_OK;
    case SIM_AT_SET:
        if (sim_params_parse(at->arg, &p) < 0 || p.n != 1 || !sim_param_int(&p, 0, 0, 4, &stat))
            return SIM_RES_CMS(s->sms.text_mode ? 303 : 304);
        break;
    case SIM_AT_EXEC:
        break;
    case SIM_AT_QUERY:
    default:
        return SIM_RES_ERROR;
    }
    if (s->sms.text_mode)
        return SIM_RES_CMS(303);
    for (size_t i = 0; i < s->opt.capacity; i++) {
        struct sim_sms_slot *slot = &s->sms.slots[i];
        if (!slot->used || (stat != 4 && slot->stat != stat))
            continue;
        sim_info(s, "+CMGL: %zu,%u,,%zu", i + 1, slot->stat, slot->tpdu_len);
        sim_info(s, "%s", slot->hex);
        if (slot->stat == 0)
            slot->stat = 1;
    }
    return SIM_RES_OK;
}

static void delete_slot(struct sim *s, size_t i)
{
    s->sms.slots[i].used = false;
    sim_log(s, "deleted %zu", i + 1);
    sim_event(s, "deleted %zu", i + 1);
}

static struct sim_result cmd_cmgd(struct sim *s, const struct sim_at *at)
{
    struct sim_params p;
    long idx, flag = 0;
    size_t cap = s->opt.capacity;
    if (at->kind == SIM_AT_TEST) {
        char list[SIM_LINE_MAX] = "";
        size_t n = 0;
        for (size_t i = 0; i < cap && n < sizeof(list) - 16; i++)
            if (s->sms.slots[i].used)
                n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%zu", n ? "," : "", i + 1);
        sim_info(s, "+CMGD: (%s),(0-4)", list);
        return SIM_RES_OK;
    }
    if (at->kind != SIM_AT_SET)
        return SIM_RES_ERROR;
    if (sim_params_parse(at->arg, &p) < 0 || p.n < 1 || p.n > 2 ||
        (p.n == 2 && !sim_param_int(&p, 1, 0, 4, &flag)))
        return SIM_RES_CMS(304);
    if (flag == 0) {
        if (!sim_param_int(&p, 0, 1, (long)cap, &idx))
            return SIM_RES_CMS(321);
        if (s->sms.slots[idx - 1].used)
            delete_slot(s, (size_t)idx - 1);
        return SIM_RES_OK; /* an empty slot: nothing to do */
    }
    /* With a flag the index is ignored: 1 read, 2 read+sent,
     * 3 read+sent+unsent, 4 all. */
    if (!sim_param_int(&p, 0, 0, (long)cap, &idx))
        return SIM_RES_CMS(321);
    for (size_t i = 0; i < cap; i++) {
        const struct sim_sms_slot *slot = &s->sms.slots[i];
        if (!slot->used)
            continue;
        bool del = flag == 4 || slot->stat == 1 || (flag >= 2 && slot->stat == 3) ||
                   (flag >= 3 && slot->stat == 2);
        if (del)
            delete_slot(s, i);
    }
    return SIM_RES_OK;
}

const struct sim_cmd sim_sms_cmds[] = {
    {"+CMGF", false, SIM_F_SMS, cmd_cmgf},
    {"+CNMI", false, SIM_F_SMS, cmd_cnmi},
    {"+CSMS", false, SIM_F_SMS, cmd_csms},
    {"+CPMS", false, SIM_F_SMS, cmd_cpms},
    {"+CSMP", false, SIM_F_SMS, cmd_csmp},
    {"+CSCA", false, SIM_F_SMS, cmd_csca},
    {"+CSCS", false, 0, cmd_cscs},
    {"+CMGS", false, SIM_F_SMS, cmd_cmgs},
    {"+CMGW", false, SIM_F_SMS, cmd_cmgw},
    {"+CMGR", false, SIM_F_SMS, cmd_cmgr},
    {"+CMGL", false, SIM_F_SMS, cmd_cmgl},
    {"+CMGD", false, SIM_F_SMS, cmd_cmgd},
    {NULL, false, 0, NULL},
};

/* ---- control commands ---- */

/* Splits "word rest": *rest after the spaces; false when no word. */
static bool split_word(char *args, char **word, char **rest)
{
    while (*args == ' ')
        args++;
    if (!*args)
        return false;
    *word = args;
    args += strcspn(args, " ");
    if (*args) {
        *args++ = '\0';
        while (*args == ' ')
            args++;
    }
    *rest = args;
    return true;
}

static bool sms_available(struct sim *s)
{
    if (s->opt.no_sms) {
        sim_ctl_error(s, "no sms (--no-sms)");
        return false;
    }
    return true;
}

/* Text (UTF-8, len bytes) from `from` arrives, split as needed. */
static void sms_text(struct sim *s, const char *from, const char *text, size_t len)
{
    struct pdu_part parts[SIM_SMS_PARTS_MAX];
    size_t n_parts = 0;
    struct pdu_encode_opts o = {
        .type = PDU_DELIVER,
        .addr = from,
        .smsc = SIM_SMSC,
        .concat_ref = (uint8_t)sim_random(s),
        .timestamp = time(NULL),
        .tz_minutes = SIM_TZ_MINUTES,
    };
    int rc = pdu_encode(&o, text, len, parts, SIM_SMS_PARTS_MAX, &n_parts, NULL);
    if (rc == -E2BIG) {
        sim_ctl_error(s, "too long (%zu parts, at most %d)", n_parts, SIM_SMS_PARTS_MAX);
        return;
    }
    if (rc < 0) {
        sim_ctl_error(s, "cannot encode (invalid sender or UTF-8): %s", strerror(-rc));
        return;
    }
    char reply[SIM_SMS_PARTS_MAX * 8] = "";
    size_t r = 0;
    bool cmt_used = false;
    for (size_t i = 0; i < n_parts; i++) {
        int idx = arrive(s, parts[i].hex, parts[i].tpdu_len);
        if (idx == -ENOSPC) {
            if (r)
                sim_ctl_error(s, "sim full (stored %s)", reply);
            else
                sim_ctl_error(s, "sim full");
            return;
        }
        if (idx == 0)
            cmt_used = true;
        else
            r += (size_t)snprintf(reply + r, sizeof(reply) - r, "%s%d", r ? "," : "", idx);
    }
    sim_log(s, "SMS from %s arrived in %zu part(s)", from, n_parts);
    if (cmt_used)
        sim_ctl_ok(s, "cmt");
    else
        sim_ctl_ok(s, "%s", reply);
}

static void ctl_sms(struct sim *s, char *args)
{
    char *from, *text;
    if (!split_word(args, &from, &text)) {
        sim_ctl_error(s, "usage: sms <from> <text...>");
        return;
    }
    if (sms_available(s))
        sms_text(s, from, text, strlen(text));
}

static void ctl_smshex(struct sim *s, char *args)
{
    char *from, *hex;
    if (!split_word(args, &from, &hex)) {
        sim_ctl_error(s, "usage: smshex <from> <utf8-hex>");
        return;
    }
    size_t len = strlen(hex);
    uint8_t *text = malloc(len / 2 + 1);
    if (!text) {
        sim_ctl_error(s, "out of memory");
        return;
    }
    long n = sim_hex_decode(hex, len, text, len / 2 + 1);
    if (n < 0)
        sim_ctl_error(s, "not hex");
    else if (sms_available(s))
        sms_text(s, from, (const char *)text, (size_t)n);
    free(text);
}

/* A PDU given by the test: hex with its SMSC field. */
static long ctl_pdu_arg(struct sim *s, char *hex)
{
    long tpdu = tpdu_length(hex, strlen(hex));
    if (tpdu < 0) {
        sim_ctl_error(s, "not a PDU (hex with SMSC field, TPDU 1-%d octets)", SIM_TPDU_MAX);
        return -1;
    }
    struct pdu_msg msg;
    if (pdu_decode(hex, strlen(hex), (size_t)tpdu, &msg) < 0)
        sim_log(s, "note: this PDU does not decode (kept as given)");
    return tpdu;
}

static void ctl_pdu(struct sim *s, char *args)
{
    long tpdu = ctl_pdu_arg(s, args);
    if (tpdu < 0 || !sms_available(s))
        return;
    int idx = arrive(s, args, (size_t)tpdu);
    if (idx == -ENOSPC)
        sim_ctl_error(s, "sim full");
    else if (idx == 0)
        sim_ctl_ok(s, "cmt");
    else
        sim_ctl_ok(s, "%d", idx);
}

static void ctl_store(struct sim *s, char *args)
{
    char *hex, *rest;
    long stat = 0;
    if (!split_word(args, &hex, &rest) || (*rest && !sim_parse_long(rest, 0, 3, &stat))) {
        sim_ctl_error(s, "usage: store <hex> [stat 0-3]");
        return;
    }
    long tpdu = ctl_pdu_arg(s, hex);
    if (tpdu < 0 || !sms_available(s))
        return;
    int idx = store(s, hex, (size_t)tpdu, (uint8_t)stat);
    if (idx < 0)
        sim_ctl_error(s, "sim full");
    else
        sim_ctl_ok(s, "%d", idx);
}

static void ctl_deliver(struct sim *s, char *args)
{
    long tpdu = ctl_pdu_arg(s, args);
    if (tpdu < 0 || !sms_available(s))
        return;
    if (s->phase == SIM_UNPLUGGED) {
        sim_ctl_error(s, "unplugged");
        return;
    }
    for (char *c = args; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 32);
    cmt(s, args, (size_t)tpdu);
    sim_ctl_done(s);
}

static void ctl_count(struct sim *s, char *args)
{
    (void)args;
    sim_ctl_ok(s, "%zu", used_count(s));
}

static void ctl_list(struct sim *s, char *args)
{
    (void)args;
    size_t cap = s->opt.capacity;
    char *out = malloc(cap * (PDU_HEX_MAX + 32) + 1);
    if (!out) {
        sim_ctl_error(s, "out of memory");
        return;
    }
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cap; i++) {
        const struct sim_sms_slot *slot = &s->sms.slots[i];
        if (slot->used)
            n += (size_t)sprintf(out + n, "%s%zu:%u:%s", n ? " " : "", i + 1, slot->stat,
                                 slot->hex);
    }
    sim_ctl_ok(s, "%s", out);
    free(out);
}

static void ctl_cms(struct sim *s, char *args)
{
    long code;
    if (!sim_parse_long(args, 0, 999, &code)) {
        sim_ctl_error(s, "usage: cms <code> (0 clears)");
        return;
    }
    s->sms.cms_next = (int)code;
    sim_ctl_done(s);
}

static void ctl_cds(struct sim *s, char *args)
{
    static const struct {
        const char *name;
        long st;
    } names[] = {{"delivered", 0x00}, {"pending", 0x20}, {"failed", 0x40}};
    long st = -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(args, names[i].name) == 0)
            st = names[i].st;
    if (st < 0 && !sim_parse_long(args, 0, 255, &st)) {
        sim_ctl_error(s, "usage: cds <TP-Status 0-255 | delivered | pending | failed>");
        return;
    }
    s->sms.report_status = (int)st;
    sim_ctl_done(s);
}

const struct sim_ctl sim_sms_ctls[] = {
    {"sms", ctl_sms},
    {"smshex", ctl_smshex},
    {"pdu", ctl_pdu},
    {"store", ctl_store},
    {"deliver", ctl_deliver},
    {"count", ctl_count},
    {"list", ctl_list},
    {"cms", ctl_cms},
    {"cds", ctl_cds},
    {NULL, NULL},
};
