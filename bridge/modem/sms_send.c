/* Sending SMS (see sms_int.h for the other files): the checks of
 * sms_send (allow_to, parts, state, queue, hourly rate), the queue of send
 * jobs, and each job's parts written with AT+CMGS one after another, a
 * failed part stopping the rest. Receiving is sms.c's and sms_read.c's. */
#include "modem/sms_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/pdu.h"

#define MAX_SEND_PARTS 16         /* sms_send_result.references */
#define CMGS_TIMEOUT_MS 60000     /* the reference gives up to 40 s */
#define MAX_SEND_JOBS 256

/* --- sending ---------------------------------------------------------------- */

/* The module's answer to AT+CMGS, naming the part when there are several. */
static void part_error(struct m2m_error *err, const struct at_response *rsp, size_t part,
                       size_t parts)
{
    m2m_error_from_at(err, rsp, "AT+CMGS");
    if (parts > 1)
        m2m_error_append(err, " (part %zu of %zu)", part, parts);
}

/* Removes the head job and reports its outcome. */
static void job_finish(struct send_job *job, const struct m2m_error *err)
{
    struct sms *sms = job->sms;

    sms->jobs = job->next;
    if (!sms->jobs)
        sms->jobs_tail = &sms->jobs;
    sms->n_jobs--;
    job->cb(job->ctx, err ? NULL : &job->res, err);
    free(job->parts);
    free(job);
}

static void part_done(void *ctx, const struct at_response *rsp);

static void part_written(void *ctx)
{
    struct send_job *job = ctx;

    if (job->hooks.written)
        job->hooks.written(job->ctx, (unsigned)job->sent + 1, (unsigned)job->n_parts);
}

static int send_part(struct send_job *job)
{
    const struct pdu_part *p = &job->parts[job->sent];
    char cmd[32];
    uint8_t data[PDU_HEX_MAX + 1];
    size_t n = strlen(p->hex);
    int r;

    /* Hex digits and Ctrl-Z: nothing a user wrote can end the prompt early. */
    memcpy(data, p->hex, n);
    data[n++] = 0x1A;
    snprintf(cmd, sizeof(cmd), "AT+CMGS=%zu", p->tpdu_len);
    const struct at_cmd_opts o = {
        .timeout_ms = CMGS_TIMEOUT_MS, .info_prefix = "+CMGS:", .data = data, .data_len = n,
        .written = part_written,
    };
    r = modem_send(job->sms->modem, cmd, &o, part_done, job);
    if (r == 0)
        job->sms->part_in_flight = true;
    return r;
}

static void fail_send(struct send_job *job, int r)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    m2m_error_from_send(&err, r);
    job_finish(job, &err);
}

/* Starts the head job when no part is in flight. A job that cannot start
 * is answered, and the next one tried. Callbacks may add jobs meanwhile. */
static void pump(struct sms *sms)
{
    while (sms->jobs && !sms->part_in_flight) {
        struct send_job *job = sms->jobs;
        int r = send_part(job);
        if (r < 0)
            fail_send(job, r);
    }
}

static void part_done(void *ctx, const struct at_response *rsp)
{
    struct send_job *job = ctx;
    struct sms *sms = job->sms;
    struct m2m_error err = { .cme = -1, .cms = -1 };
    int mr = -1, r;

    sms->part_in_flight = false;
    if (rsp->final != AT_FINAL_OK) {
        part_error(&err, rsp, job->sent + 1, job->n_parts);
        job_finish(job, &err);
        pump(sms);
        return;
    }
    for (size_t i = 0; i < rsp->n_lines; i++) {
        struct at_result_iter it;
        at_result_iter_init(&it, rsp->lines[i]);
        if (at_result_iter_next(&it, "+CMGS:"))
            at_result_next_number(&it, 0, 255, &mr);
    }
    job->res.references[job->res.n_references++] = mr;
    job->sent++;
    if (job->hooks.sent)
        job->hooks.sent(job->ctx, &job->res, (unsigned)job->sent);
    if (job->sent == job->n_parts)
        job_finish(job, NULL);
    else if ((r = send_part(job)) < 0)
        fail_send(job, r);
    pump(sms);
}

static bool rate_allows(struct sms *sms, int64_t now)
{
    size_t cap = (size_t)sms->opts.rate_per_hour;

    if (cap == 0)
        return true;               /* 0: no limit */
    while (sms->sent_count && now - sms->sent_at[sms->sent_head] >= 3600 * 1000LL) {
        sms->sent_head = (sms->sent_head + 1) % cap;
        sms->sent_count--;
    }
    return sms->sent_count < cap;
}

static void rate_note(struct sms *sms, int64_t now)
{
    size_t cap = (size_t)sms->opts.rate_per_hour;

    if (cap == 0)
        return;
    sms->sent_at[(sms->sent_head + sms->sent_count) % cap] = now;
    sms->sent_count++;
}

void sms_send(struct sms *sms, const struct sms_send_req *req, sms_send_cb cb,
              const struct sms_part_hooks *hooks, void *ctx)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };
    struct send_job *job = NULL;
    enum pdu_alphabet alphabet;
    size_t n_parts;
    size_t max = (size_t)sms->opts.max_parts;
    int64_t now = loop_now_ms();
    int r;

    if (!config_number_allowed(sms->opts.allow_to, sms->opts.n_allow_to, req->to)) {
        if (req->to[0] == '+')
            m2m_error_set(&err, "not_allowed", "'to' %s is not in sms.allow_to", req->to);
        else
            m2m_error_set(&err, "not_allowed",
                          CONFIG_NOT_LISTED_FMT, req->to, "sms.allow_to");
        goto fail;
    }
    r = pdu_count_parts(req->text, req->text_len, false, &n_parts, &alphabet);
    if (r < 0) {
        m2m_error_set(&err, "invalid_request", "'text' is not valid UTF-8");
        goto fail;
    }
    if (max > MAX_SEND_PARTS)
        max = MAX_SEND_PARTS;
    if (n_parts > max) {
        m2m_error_set(&err, "too_long", "'text' needs %zu parts; at most %zu allowed (sms.max_parts)",
                      n_parts, max);
        goto fail;
    }
    if (modem_state(sms->modem) != MODEM_READY) {
        m2m_error_set(&err, "unavailable", "the modem is not ready (%s)",
                      modem_state_name(modem_state(sms->modem)));
        goto fail;
    }
    if (!modem_sms_supported(sms->modem)) {
        m2m_error_set(&err, "unsupported", "this module has no SMS (AT+CMGF=0 refused)");
        goto fail;
    }
    if (sms->n_jobs >= MAX_SEND_JOBS) {
        m2m_error_set(&err, "busy", "%d SMS are already waiting to be sent", MAX_SEND_JOBS);
        goto fail;
    }
    if (!rate_allows(sms, now)) {
        m2m_error_set(&err, "rate_limited", "more than %d SMS in the last hour (sms.rate_per_hour)",
                      sms->opts.rate_per_hour);
        goto fail;
    }

    job = calloc(1, sizeof(*job));
    if (job)
        job->parts = calloc(n_parts, sizeof(*job->parts));
    if (!job || !job->parts) {
        m2m_error_set(&err, "busy", "out of memory");
        goto fail;
    }
    const struct pdu_encode_opts eo = {
        .type = PDU_SUBMIT,
        .addr = req->to,
        .flash = req->flash,
        .status_report = req->report || sms->opts.delivery_reports,
        .concat_ref = sms->concat_ref++,
    };
    r = pdu_encode(&eo, req->text, req->text_len, job->parts, n_parts, &job->n_parts, &alphabet);
    if (r < 0) {
        m2m_error_set(&err, "invalid_request", "the text cannot be encoded (%s)", strerror(-r));
        goto fail;
    }
    log_info("sms: sending %zu part(s) to %s (%s)", job->n_parts, req->to,
             alphabet == PDU_UCS2 ? "UCS-2" : "GSM 7-bit");
    rate_note(sms, now);
    job->sms = sms;
    job->cb = cb;
    if (hooks)
        job->hooks = *hooks;
    job->ctx = ctx;
    job->res.parts = (unsigned)job->n_parts;
    job->res.report = eo.status_report;
    snprintf(job->res.to, sizeof(job->res.to), "%s", req->to);
    *sms->jobs_tail = job;
    sms->jobs_tail = &job->next;
    sms->n_jobs++;
    pump(sms);
    return;

fail:
    if (job)
        free(job->parts);
    free(job);
    cb(ctx, NULL, &err);
}
