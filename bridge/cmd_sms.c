/* SMS: B/sms/send (struct sms_cmd: its recipients one after another, the
 * references of what was sent) and the SMS service's events
 * (B/sms/received, B/sms/report, undecodable messages), each published
 * before the message leaves the SIM. */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/refmap.h"
#include "instance_int.h"
#include "modem/sms.h"
#include "modem/status.h"

/* The started mark of recipient i's part p (1-based) in the journal:
 * i * SMS_MARK_STRIDE + p. A single "to" is recipient 0, so its marks are
 * its part numbers, as journals written before lists existed hold them. */
#define SMS_MARK_STRIDE 256
_Static_assert(SMS_MARK_STRIDE > PDU_PARTS_MAX, "a part number must fit below the stride");

/* One B/sms/send: its recipients one after another (the next only when
 * the previous one's SMS is answered), one result. */
struct sms_cmd {
    struct command *cmd;
    cJSON *root;                  /* the payload's tree, owned: req borrows from it */
    struct sms_send_req req;
    size_t current;               /* the recipient being sent */
    cJSON *recipients;            /* "to" as an array: the outcome of each so far */
    size_t failed;
    const char *first_code;       /* the first failed recipient's error code (static) */
};

static void sms_cmd_free(struct sms_cmd *sc)
{
    cJSON_Delete(sc->root);
    cJSON_Delete(sc->recipients);
    free(sc);
}

static void sms_add_sent(cJSON *obj, const struct sms_send_result *res)
{
    cJSON *refs;

    cJSON_AddNumberToObject(obj, "parts", res->parts);
    refs = cJSON_AddArrayToObject(obj, "references");
    for (unsigned i = 0; refs && i < res->n_references; i++)
        cJSON_AddItemToArray(refs, cJSON_CreateNumber(res->references[i]));
}

/* The bridge stopped while part `part` of an SMS was being written: the
 * parts before it went out (each waited for the previous one's +CMGS),
 * that one may have. Sets err; returns the parts surely sent. */
static unsigned sms_interrupted(struct m2m_error *err, unsigned part)
{
    m2m_error_set(err, "unavailable",
                  "the bridge stopped while sending part %u; parts 1-%u were sent, part %u "
                  "may have been; nothing is sent again",
                  part, part - 1, part);
    return part - 1;
}

/* The current recipient's outcome goes into "recipients"; parts_sent > 0
 * adds that member (an interrupted multipart SMS). */
static void sms_recipient_done(struct sms_cmd *sc, const struct sms_send_result *res,
                               const struct m2m_error *err, unsigned parts_sent)
{
    cJSON *r = cJSON_CreateObject();

    if (err && sc->failed++ == 0)
        sc->first_code = err->code;
    if (!r || !cJSON_AddItemToArray(sc->recipients, r)) {
        cJSON_Delete(r);
        log_error("out of memory; the outcome for %s is missing from the result",
                  sc->req.recipients[sc->current]);
        return;
    }
    cJSON_AddStringToObject(r, "to", sc->req.recipients[sc->current]);
    cJSON_AddBoolToObject(r, "ok", err == NULL);
    if (parts_sent > 0)
        cJSON_AddNumberToObject(r, "parts_sent", parts_sent);
    if (err)
        json_add_error(r, err);
    else
        sms_add_sent(r, res);
}

/* Every recipient answered: "ok" only when each succeeded; else the
 * error is the first failure's code, the details are per recipient. */
static void sms_cmd_finish_list(struct sms_cmd *sc)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };
    cJSON *data = cJSON_CreateObject();

    if (data) {
        cJSON_AddItemToObject(data, "recipients", sc->recipients);
        sc->recipients = NULL;
    }
    if (sc->failed)
        m2m_error_set(&err, sc->first_code, "%zu of %zu recipients failed (see recipients)",
                      sc->failed, sc->req.n_recipients);
    command_finish(sc->cmd, data, sc->failed ? &err : NULL);
    sms_cmd_free(sc);
}

static void sms_sent(void *ctx, const struct sms_send_result *res, const struct m2m_error *err);
static void sms_part_written(void *ctx, unsigned part, unsigned n_parts);
static void sms_part_sent(void *ctx, const struct sms_send_result *res, unsigned part);
static const struct sms_part_hooks sms_hooks = { .written = sms_part_written,
                                                 .sent = sms_part_sent };

/* Sends to the current recipient, or answers when none is left. A
 * recipient refused at once (not allowed, rate limit) is answered inside
 * sms_send: the next follows from there. */
static void sms_cmd_next(struct sms_cmd *sc)
{
    if (sc->current == sc->req.n_recipients) {
        sms_cmd_finish_list(sc);
        return;
    }
    sc->req.to = sc->req.recipients[sc->current];
    sms_send(sc->cmd->inst->sms, &sc->req, sms_sent, &sms_hooks, sc);
}

static void sms_sent(void *ctx, const struct sms_send_result *res, const struct m2m_error *err)
{
    struct sms_cmd *sc = ctx;
    cJSON *data;

    cmd_stats_count(sc->cmd->inst, err ? STATS_SMS_FAILED : STATS_SMS_SENT);
    if (sc->req.to_list) {
        sms_recipient_done(sc, res, err, 0);
        sc->current++;
        sms_cmd_next(sc);
        return;
    }
    data = err ? NULL : cJSON_CreateObject();
    if (data)
        sms_add_sent(data, res);
    command_finish(sc->cmd, data, err);
    sms_cmd_free(sc);
}

/* A part's AT+CMGS is about to be written: from here it may leave, and a
 * crash must not send it again. Queued in the bridge it is not started. */
static void sms_part_written(void *ctx, unsigned part, unsigned n_parts)
{
    struct sms_cmd *sc = ctx;
    struct command *cmd = sc->cmd;

    (void)n_parts;
    if (cmd->seq)
        journal_started(cmd->inst->journal, cmd->seq,
                        (unsigned)sc->current * SMS_MARK_STRIDE + part);
}

/* A part of an SMS that asked for reports went out: remembered at once,
 * so that its report names the command even when it comes before the
 * next part's +CMGS, or when a later part fails. Only the id is needed,
 * not the command. */
static void sms_part_sent(void *ctx, const struct sms_send_result *res, unsigned part)
{
    const struct sms_cmd *sc = ctx;
    int mr = res->references[part - 1], r;

    if (!res->report)
        return;
    r = refmap_add(sc->cmd->inst->refs, sc->cmd->id, res->to, mr, part, res->parts, time(NULL));
    if (r < 0)
        log_warn("sms: cannot remember reference %d of part %u of %u to %s (%s); its report "
                 "may come with \"id\": null",
                 mr, part, res->parts, res->to, strerror(-r));
}

/* A replayed command the bridge had begun: nothing that may have gone out
 * goes again. One "to": answered unavailable. A list: the recipients up
 * to the one being sent are answered unavailable (those before it were
 * done, but their outcomes were not stored), the rest are sent now. */
static void sms_cmd_resume(struct sms_cmd *sc, unsigned mark)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };
    size_t k = (mark - 1) / SMS_MARK_STRIDE;
    unsigned part = (mark - 1) % SMS_MARK_STRIDE + 1;

    if (!sc->req.to_list) {
        cJSON *data = part > 1 ? cJSON_CreateObject() : NULL;

        if (part > 1)
            cJSON_AddNumberToObject(data, "parts_sent", sms_interrupted(&err, part));
        else
            m2m_error_set(&err, "unavailable", "%s", STOPPED_MSG);
        command_finish(sc->cmd, data, &err);
        sms_cmd_free(sc);
        return;
    }
    if (k >= sc->req.n_recipients)
        k = sc->req.n_recipients - 1;
    log_warn("sms: the bridge stopped while sending to %s; recipients 1-%zu are not sent again",
             sc->req.recipients[k], k + 1);
    for (sc->current = 0; sc->current < k; sc->current++) {
        m2m_error_set(&err, "unavailable",
                      "the bridge stopped while sending to a later recipient; this one's "
                      "outcome is unknown (it may have been sent) and it is not sent again");
        sms_recipient_done(sc, NULL, &err, 0);
    }
    if (part > 1) {
        unsigned sent = sms_interrupted(&err, part);
        sms_recipient_done(sc, NULL, &err, sent);
    } else {
        m2m_error_set(&err, "unavailable",
                      "the bridge stopped while sending to this recipient; it may have been "
                      "sent and is not sent again");
        sms_recipient_done(sc, NULL, &err, 0);
    }
    sc->current = k + 1;
    sms_cmd_next(sc);
}

/* B/sms/send. It outlives this call: it takes the payload's tree, which
 * its request borrows from. cmd->started: the journal's mark when the
 * bridge had begun it before a restart (sms_cmd_resume), else 0. */
void cmd_sms_send(struct instance *inst, struct command *cmd, struct route_req *req)
{
    struct sms_cmd *sc = calloc(1, sizeof(*sc));

    (void)inst;
    if (!sc || (req->sms.to_list && !(sc->recipients = cJSON_CreateArray()))) {
        free(sc);
        command_fail(cmd, "busy", "out of memory");
        return;
    }
    sc->cmd = cmd;
    sc->root = req->root;
    req->root = NULL;
    sc->req = req->sms;
    if (cmd->started)
        sms_cmd_resume(sc, cmd->started);
    else
        sms_cmd_next(sc);
}

/* A list of recipients, begun before a restart, has some it had not begun
 * to send to: those are sent, so it waits for the modem like a new
 * command. */
bool cmd_sms_left(const struct route_req *req, unsigned started)
{
    return req->sms.to_list && (started - 1) / SMS_MARK_STRIDE + 1 < req->sms.n_recipients;
}

/* --- SMS received and reports ------------------------------------------------- */

struct sms_ack {
    struct instance *inst;
    uint64_t token;
};

static void sms_acked(void *ctx, int status)
{
    struct sms_ack *ack = ctx;
    struct instance *inst = ack->inst;

    /* From mqtt_link_free at shutdown: the SMS service is gone already
     * (the message stays on the SIM; the next start publishes it). */
    if (status == -ECANCELED) {
        free(ack);
        return;
    }
    sms_received_done(inst->sms, ack->token, status);
    free(ack);
    if (status != -ECANCELED)
        results_link_room(inst);
}

static void publish_for_sms(struct instance *inst, const char *suffix, char *payload,
                            uint64_t token)
{
    struct sms_ack *ack = malloc(sizeof(*ack));
    int r = -ENOMEM;

    if (ack && payload) {
        *ack = (struct sms_ack){ inst, token };
        r = events_publish(inst, suffix, payload, 1, false, sms_acked, ack);
    }
    if (r < 0) {
        free(ack);
        sms_received_done(inst->sms, token, r);
    }
    free(payload);
}

static bool sms_acked_before(void *ctx, const char *key)
{
    struct instance *inst = ctx;

    return inst->journal && journal_was_published(inst->journal, key);
}

static void sms_acked_key(void *ctx, const char *key)
{
    struct instance *inst = ctx;

    if (inst->journal && journal_mark_published(inst->journal, key) < 0)
        log_error("journal: cannot record that %s was published; a crash before its delete "
                  "would publish it again",
                  key);
}

static void on_sms_received(void *ctx, const struct sms_received *msg, uint64_t token)
{
    struct instance *inst = ctx;

    log_info("sms: from %s, %u part(s)", msg->from, msg->parts);
    cmd_stats_count(inst, STATS_SMS_RECEIVED);
    publish_for_sms(inst, "sms/received", json_sms_received(msg), token);
}

static void on_sms_report(void *ctx, const struct pdu_msg *rep, uint64_t token)
{
    struct instance *inst = ctx;
    const struct refmap_entry *e = refmap_find(inst->refs, rep->mr, rep->addr, time(NULL));
    const struct sms_report r = {
        .reference = rep->mr,
        .to = rep->addr,
        .st = rep->status,
        .time = rep->discharge_time,
        .submitted = rep->time,
        .id_json = e ? e->id : NULL,
        .part = e ? e->part : 0,
        .parts = e ? e->parts : 0,
    };

    log_info("sms: report for reference %d to %s: %s (TP-ST 0x%02X)%s", r.reference, r.to,
             json_report_status(r.st), r.st, e ? "" : ", not an SMS the bridge knows");
    cmd_stats_count(inst, STATS_REPORTS);
    publish_for_sms(inst, "sms/report", json_sms_report(&r), token);
}

static void on_sms_undecodable(void *ctx, const char *pdu, const char *reason, uint64_t token)
{
    struct instance *inst = ctx;

    cmd_stats_count(inst, STATS_ERRORS);
    publish_for_sms(inst, "error", json_event_error("undecodable_sms", reason, "pdu", pdu), token);
}

static void on_sms_store_changed(void *ctx)
{
    struct instance *inst = ctx;

    status_storage_refresh(inst->status);
}

int cmd_sms_open(struct instance *inst)
{
    const struct config *cfg = inst->cfg;
    const struct sms_opts so = {
        .allow_to = cfg->sms.allow_to,
        .n_allow_to = cfg->sms.n_allow_to,
        .max_parts = cfg->sms.max_parts,
        .rate_per_hour = cfg->sms.rate_per_hour,
        .keep_on_sim = cfg->sms.keep_on_sim,
        .delivery_reports = cfg->sms.delivery_reports,
    };
    const struct sms_cbs sc = {
        .received = on_sms_received, .undecodable = on_sms_undecodable,
        .report = on_sms_report,
        .acked_before = sms_acked_before, .acked = sms_acked_key,
        .store_changed = on_sms_store_changed,
    };

    inst->sms = sms_new(inst->loop, inst->modem, &so, &sc, inst);
    return inst->sms ? 0 : -ENOMEM;
}
