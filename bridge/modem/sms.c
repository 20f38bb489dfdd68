/* SMS service. See sms.h.
 *
 * Incoming: every stored message belongs to a group (a single SMS is a
 * group of one part). A group is published when all its parts are there,
 * or when the reassembly timeout passes with parts missing. Its SIM
 * indexes are deleted only after the broker acknowledged the publish; a
 * failed publish leaves the group complete-but-unpublished, retried at the
 * next drain. So at every moment each stored message is either on the SIM
 * and known to us, or on the SIM and found by the next AT+CMGL.
 *
 * A status report is a group of one that goes out through cbs.report
 * instead; a stored one is deleted after the ack even with keep_on_sim
 * (that option keeps the user's messages; reports would only fill the
 * store).
 *
 * Outgoing: PDU mode only; parts are sent one after another, and a failed
 * part stops the rest.
 *
 * This file holds the groups and the service's life cycle; reading from
 * the module (sms_read.c) and sending (sms_send.c) are its siblings',
 * listed in sms_int.h. */
#include "modem/sms_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/pdu.h"

#define MAX_GROUPS 64

/* --- bookkeeping of SIM indexes -------------------------------------------- */

bool sms_index_known(const struct sms *sms, int idx)
{
    for (size_t i = 0; i < sms->n_pending; i++)
        if (sms->pending[i] == idx)
            return true;
    /* Until its AT+CMGD completed, a listing queued before it still shows
     * the message: taking it again would publish it twice, and its second
     * ack would delete whatever SMS took the slot meanwhile. */
    for (size_t i = 0; i < sms->n_deleting; i++)
        if (sms->deleting[i] == idx)
            return true;
    for (const struct group *g = sms->groups; g; g = g->next)
        for (size_t i = 0; i < g->n_indexes; i++)
            if (g->indexes[i] == idx)
                return true;
    return false;
}

void sms_group_free(struct group *g)
{
    if (!g)
        return;
    if (g->parts)
        for (size_t i = 0; i < g->total; i++)
            free(g->parts[i]);
    free(g->parts);
    free(g->raw_pdu);
    free(g);
}

void sms_group_unlink(struct sms *sms, struct group *g)
{
    for (struct group **p = &sms->groups; *p; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            sms->n_groups--;
            return;
        }
    }
}

struct group *sms_group_new(struct sms *sms, uint8_t total)
{
    struct group *g;

    if (sms->n_groups >= MAX_GROUPS)
        return NULL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->total = total ? total : 1;
    g->parts = calloc(g->total, sizeof(*g->parts));
    if (!g->parts) {
        free(g);
        return NULL;
    }
    g->next = sms->groups;
    sms->groups = g;
    sms->n_groups++;
    return g;
}

void sms_group_add_index(struct group *g, int idx)
{
    if (idx < 0)
        return;
    if (g->n_indexes < MAX_GROUP_INDEXES)
        g->indexes[g->n_indexes++] = idx;
    else
        log_warn("sms: too many copies of one message; index %d left on the SIM", idx);
}

/* --- publishing and deleting ----------------------------------------------- */

static void deleted(void *ctx, const struct at_response *rsp)
{
    struct sms *sms = ctx;

    /* The chat completes commands in the order they were sent. */
    if (sms->n_deleting)
        memmove(sms->deleting, sms->deleting + 1, --sms->n_deleting * sizeof(sms->deleting[0]));
    if (rsp->final != AT_FINAL_OK)
        log_warn("sms: delete failed (%s); the next drain publishes that message again",
                 at_final_name(rsp->final));
    else if (sms->cbs.store_changed)
        sms->cbs.store_changed(sms->ctx);
}

/* Whether the broker's ack deletes the group from the SIM. */
static bool deleted_after_ack(const struct sms *sms, const struct group *g)
{
    return g->report || !sms->opts.keep_on_sim;
}

static void delete_indexes(struct sms *sms, const struct group *g)
{
    char cmd[32];

    if (!deleted_after_ack(sms, g))
        return;
    for (size_t i = 0; i < g->n_indexes; i++) {
        snprintf(cmd, sizeof(cmd), "AT+CMGD=%d", g->indexes[i]);
        if (sms->n_deleting == MAX_PENDING_READS ||
            modem_send(sms->modem, cmd, NULL, deleted, sms) < 0) {
            log_warn("sms: cannot delete index %d now; the next drain finds it again",
                     g->indexes[i]);
        } else {
            sms->deleting[sms->n_deleting++] = g->indexes[i];
            log_debug("sms: deleting index %d", g->indexes[i]);
        }
    }
}

void sms_message_id(const char *from, const char *time, const uint8_t *text, size_t len,
                    char out[17])
{
    uint64_t h = 0xcbf29ce484222325u;   /* FNV-1a 64 */
    const uint8_t sep = 0;

    const struct { const void *p; size_t n; } fields[] = {
        {from ? from : "", from ? strlen(from) : 0}, {&sep, 1},
        {time ? time : "", time ? strlen(time) : 0}, {&sep, 1},
        {text, text ? len : 0},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        for (size_t i = 0; i < fields[f].n; i++) {
            h ^= ((const uint8_t *)fields[f].p)[i];
            h *= 0x100000001b3u;
        }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* "<message_id>@<index>,<index>...": the same message in the same slots. */
static void group_key(struct group *g, const char *message_id)
{
    size_t o = (size_t)snprintf(g->key, sizeof(g->key), "%s@", message_id);

    for (size_t i = 0; i < g->n_indexes && o < sizeof(g->key); i++)
        o += (size_t)snprintf(g->key + o, sizeof(g->key) - o, "%s%d", i ? "," : "",
                              g->indexes[i]);
}

/* Acknowledged before a restart (killed between the PUBACK and the
 * delete): deleted now, not published twice. */
static bool acked_before(struct sms *sms, struct group *g)
{
    if (!sms->cbs.acked_before || !sms->cbs.acked_before(sms->ctx, g->key))
        return false;
    log_info("sms: message %s was published before a restart; deleting it", g->key);
    delete_indexes(sms, g);
    sms_group_unlink(sms, g);
    sms_group_free(g);
    return true;
}

/* The key of a report: the same report read twice (before and after a
 * restart) gets the same one. */
static void publish_report(struct sms *sms, struct group *g)
{
    const struct pdu_msg *r = g->parts[0];
    char what[64], id[17];
    int n = snprintf(what, sizeof(what), "%u %u %s", r->mr, r->status, r->discharge_time);

    sms_message_id(r->addr, r->time, (const uint8_t *)what, (size_t)n, id);
    group_key(g, id);
    if (acked_before(sms, g))
        return;
    if (sms->cbs.report)
        sms->cbs.report(sms->ctx, r, g->token);
}

void sms_publish_group(struct sms *sms, struct group *g)
{
    uint8_t *text = NULL;
    size_t len = 0;
    unsigned missing[255];
    size_t n_missing = 0;
    const struct pdu_msg *first = NULL;
    enum pdu_alphabet alphabet = PDU_GSM7;

    g->publishing = true;
    g->token = ++sms->next_token;

    if (g->report) {
        publish_report(sms, g);
        return;
    }
    if (g->raw_pdu) {
        char id[17];

        sms_message_id(NULL, NULL, (const uint8_t *)g->raw_pdu, strlen(g->raw_pdu), id);
        group_key(g, id);
        if (acked_before(sms, g))
            return;
        if (sms->cbs.undecodable)
            sms->cbs.undecodable(sms->ctx, g->raw_pdu, "undecodable PDU", g->token);
        return;
    }
    text = malloc((size_t)g->total * (PDU_TEXT_MAX + 1) + 1);
    if (!text) {
        g->publishing = false;
        return;
    }
    for (size_t i = 0; i < g->total; i++) {
        const struct pdu_msg *p = g->parts[i];
        if (!p) {
            missing[n_missing++] = (unsigned)i + 1;
            continue;
        }
        if (!first)
            first = p;
        if (p->alphabet == PDU_8BIT)
            alphabet = PDU_8BIT;
        else if (alphabet != PDU_8BIT && p->alphabet == PDU_UCS2)
            alphabet = PDU_UCS2;
        memcpy(text + len, p->text, p->text_len);
        len += p->text_len;
    }
    text[len] = '\0';
    char id[17];
    sms_message_id(first->addr, first->time, text, len, id);
    group_key(g, id);
    if (acked_before(sms, g)) {
        free(text);
        return;
    }
    if (n_missing)
        log_warn("sms: message from %s incomplete after %d s: %zu of %u parts missing", g->from,
                 sms->opts.reassembly_timeout_ms / 1000, n_missing, g->total);

    const struct sms_received m = {
        .from = first->addr,
        .smsc = first->smsc,
        .time = first->time,
        .alphabet = alphabet,
        .text = text,
        .text_len = len,
        .parts = g->total,
        .parts_missing = n_missing ? missing : NULL,
        .n_parts_missing = n_missing,
        .message_id = id,
    };
    if (sms->cbs.received)
        sms->cbs.received(sms->ctx, &m, g->token);
    free(text);
}

void sms_received_done(struct sms *sms, uint64_t token, int status)
{
    struct group *g;

    for (g = sms->groups; g && !(g->publishing && g->token == token); g = g->next)
        ;
    if (!g)
        return;                    /* a stale attempt */
    g->publishing = false;
    if (status < 0) {
        log_info("sms: publish not acknowledged (%s); kept on the SIM for the next attempt",
                 strerror(-status));
        return;
    }
    /* Recorded before the delete: a kill in between must not publish it
     * again after the restart. A report that came as +CDS has nothing to
     * delete, so nothing to record (a write less per sent SMS). */
    if (sms->cbs.acked && deleted_after_ack(sms, g) && (g->n_indexes || !g->report))
        sms->cbs.acked(sms->ctx, g->key);
    delete_indexes(sms, g);
    sms_group_unlink(sms, g);
    sms_group_free(g);
}

bool sms_group_complete(const struct group *g)
{
    for (size_t i = 0; i < g->total; i++)
        if (!g->parts[i])
            return false;
    return true;
}

/* Parts missing and the deadline still ahead. An undecodable PDU or a group
 * that timed out and whose publish failed is not: sms_drain retries those
 * (broker back), or a refused publish would re-arm the timer at 0 for ever. */
static bool group_waiting(const struct group *g)
{
    return !g->publishing && !g->raw_pdu && !g->expired && !sms_group_complete(g);
}

static int64_t reassembly_fired(void *ctx);

void sms_arm_reassembly(struct sms *sms)
{
    int64_t next = -1, now = loop_now_ms();

    loop_cancel_timer(sms->loop, sms->reassembly_timer);
    sms->reassembly_timer = 0;
    for (const struct group *g = sms->groups; g; g = g->next)
        if (group_waiting(g) && (next < 0 || g->deadline < next))
            next = g->deadline;
    if (next >= 0)
        loop_add_timer(sms->loop, next > now ? next - now : 0, reassembly_fired, sms,
                       &sms->reassembly_timer);
}

static int64_t reassembly_fired(void *ctx)
{
    struct sms *sms = ctx;
    int64_t now = loop_now_ms();

    sms->reassembly_timer = 0;
    for (struct group *g = sms->groups; g; g = g->next) {
        if (group_waiting(g) && g->deadline <= now) {
            g->expired = true;
            sms_publish_group(sms, g);
        }
    }
    sms_arm_reassembly(sms);
    return 0;
}

/* --- life cycle ---------------------------------------------------------- */

struct sms *sms_new(struct loop *loop, struct modem *modem, const struct sms_opts *opts,
                    const struct sms_cbs *cbs, void *ctx)
{
    struct sms *sms = calloc(1, sizeof(*sms));

    if (!sms)
        return NULL;
    sms->loop = loop;
    sms->modem = modem;
    sms->opts = *opts;
    if (sms->opts.reassembly_timeout_ms <= 0)
        sms->opts.reassembly_timeout_ms = 10 * 60 * 1000;
    if (cbs)
        sms->cbs = *cbs;
    sms->ctx = ctx;
    sms->jobs_tail = &sms->jobs;
    sms->concat_ref = (uint8_t)(time(NULL) & 0xFF);
    if (opts->rate_per_hour > 0)
        sms->sent_at = calloc((size_t)opts->rate_per_hour, sizeof(*sms->sent_at));
    if ((opts->rate_per_hour > 0 && !sms->sent_at) ||
        at_chat_add_urcs(modem_chat(modem), sms_urcs, sms_n_urcs, sms) < 0) {
        free(sms->sent_at);
        free(sms);
        return NULL;
    }
    return sms;
}

void sms_free(struct sms *sms)
{
    if (!sms)
        return;
    loop_cancel_timer(sms->loop, sms->reassembly_timer);
    while (sms->groups) {
        struct group *g = sms->groups;
        sms->groups = g->next;
        sms_group_free(g);
    }
    /* Jobs still here had their commands cancelled by modem_free, which
     * finished them; any left are freed without a callback. */
    while (sms->jobs) {
        struct send_job *j = sms->jobs;
        sms->jobs = j->next;
        free(j->parts);
        free(j);
    }
    free(sms->sent_at);
    free(sms);
}
