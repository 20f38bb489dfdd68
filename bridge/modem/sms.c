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
 * part stops the rest. */
#include "modem/sms.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/pdu.h"

#define MAX_SEND_PARTS 16         /* sms_send_result.references */
#define CMGS_TIMEOUT_MS 60000     /* the reference gives up to 40 s */
#define MAX_PENDING_READS 256
#define MAX_GROUPS 64
#define MAX_GROUP_INDEXES 32
#define MAX_SEND_JOBS 256

struct group {
    struct group *next;
    char from[PDU_ADDR_MAX];
    uint16_t ref;
    uint8_t total;                /* parts expected (1 for a single SMS) */
    bool concat;
    struct pdu_msg **parts;       /* [total], NULL where missing */
    int indexes[MAX_GROUP_INDEXES];  /* SIM indexes to delete; -1: none */
    size_t n_indexes;
    char *raw_pdu;                /* undecodable: the PDU, published as B/error */
    bool report;                  /* parts[0] is a status report */
    int64_t deadline;             /* reassembly gives up at this time */
    bool expired;                 /* it did: published as is; retried by sms_drain */
    bool publishing;              /* waiting for the broker's ack */
    uint64_t token;               /* of the current publish attempt */
    /* message_id "@" the SIM indexes: what the broker acknowledged. */
    char key[17 + 1 + MAX_GROUP_INDEXES * 4];
};

struct send_job {
    struct send_job *next;
    struct sms *sms;
    struct pdu_part *parts;
    size_t n_parts;
    size_t sent;
    sms_send_cb cb;
    struct sms_part_hooks hooks;
    void *ctx;
    struct sms_send_result res;
};

struct sms {
    struct loop *loop;
    struct modem *modem;
    struct sms_opts opts;
    struct sms_cbs cbs;
    void *ctx;
    bool ready;

    struct group *groups;
    size_t n_groups;
    uint64_t next_token;
    uint64_t reassembly_timer;

    int pending[MAX_PENDING_READS];  /* SIM indexes announced by +CMTI */
    size_t n_pending;
    int deleting[MAX_PENDING_READS]; /* SIM indexes with an AT+CMGD queued, in order */
    size_t n_deleting;
    bool reading;                    /* an AT+CMGR is in flight */
    bool draining;                   /* an AT+CMGL is in flight */

    /* Send jobs in arrival order; only the head has a part in flight. The
     * queue is ours, not the chat's: a burst of accepted commands waits
     * here instead of overflowing the chat and being refused. */
    struct send_job *jobs, **jobs_tail;
    size_t n_jobs;
    bool part_in_flight;
    uint8_t concat_ref;
    int64_t *sent_at;                /* ring of send times for rate_per_hour */
    size_t sent_head, sent_count;
};

/* --- bookkeeping of SIM indexes -------------------------------------------- */

static bool index_known(const struct sms *sms, int idx)
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

static void group_free(struct group *g)
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

static void group_unlink(struct sms *sms, struct group *g)
{
    for (struct group **p = &sms->groups; *p; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            sms->n_groups--;
            return;
        }
    }
}

static struct group *group_new(struct sms *sms, uint8_t total)
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

static void group_add_index(struct group *g, int idx)
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
    group_unlink(sms, g);
    group_free(g);
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

static void publish_group(struct sms *sms, struct group *g)
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
    group_unlink(sms, g);
    group_free(g);
}

static bool group_complete(const struct group *g)
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
    return !g->publishing && !g->raw_pdu && !g->expired && !group_complete(g);
}

static int64_t reassembly_fired(void *ctx);

static void arm_reassembly(struct sms *sms)
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
            publish_group(sms, g);
        }
    }
    arm_reassembly(sms);
    return 0;
}

/* --- reading ------------------------------------------------------------ */

/* A status report: a group of one, published at once. */
static void take_report(struct sms *sms, int idx, struct pdu_msg *msg)
{
    struct group *g = group_new(sms, 1);

    if (!g) {
        log_warn("sms: too many messages in flight; the report at index %d waits for the next "
                 "drain", idx);
        free(msg);
        return;
    }
    g->report = true;
    g->parts[0] = msg;
    snprintf(g->from, sizeof(g->from), "%s", msg->addr);
    group_add_index(g, idx);
    publish_group(sms, g);
}

/* One stored (idx >= 0) or directly delivered (idx < 0) PDU. */
static void take_pdu(struct sms *sms, int idx, const char *hex, size_t tpdu_len)
{
    struct pdu_msg *msg = malloc(sizeof(*msg));
    struct group *g = NULL;
    int r;

    if (!msg)
        return;
    r = pdu_decode(hex, strlen(hex), tpdu_len, msg);
    if (r == 0 && msg->type == PDU_STATUS_REPORT) {
        take_report(sms, idx, msg);
        return;
    }
    if (r == 0 && msg->type != PDU_DELIVER) {
        log_info("sms: index %d holds no incoming message; left alone", idx);
        free(msg);
        return;
    }
    if (r < 0) {
        log_warn("sms: index %d: undecodable PDU, publishing it on the error topic", idx);
        free(msg);
        g = group_new(sms, 1);
        if (!g || !(g->raw_pdu = strdup(hex))) {
            if (g) {
                group_unlink(sms, g);
                group_free(g);
            }
            return;
        }
        group_add_index(g, idx);
        publish_group(sms, g);
        return;
    }
    if (msg->concat && msg->concat_total > 1) {
        for (g = sms->groups; g; g = g->next)
            if (g->concat && g->ref == msg->concat_ref && g->total == msg->concat_total &&
                strcmp(g->from, msg->addr) == 0 && !g->publishing)
                break;
    }
    if (!g) {
        bool concat = msg->concat && msg->concat_total > 1;
        g = group_new(sms, concat ? msg->concat_total : 1);
        if (!g) {
            log_warn("sms: too many messages in reassembly; index %d waits for the next drain",
                     idx);
            free(msg);
            return;
        }
        g->concat = concat;
        g->ref = msg->concat_ref;
        snprintf(g->from, sizeof(g->from), "%s", msg->addr);
        g->deadline = loop_now_ms() + sms->opts.reassembly_timeout_ms;
    }
    group_add_index(g, idx);
    {
        size_t slot = g->concat ? (size_t)msg->concat_seq - 1 : 0;
        if (slot >= g->total || g->parts[slot]) {
            /* A duplicate or a nonsensical sequence number: its index is
             * deleted with the group, the first copy's text is kept. */
            free(msg);
        } else {
            g->parts[slot] = msg;
        }
    }
    if (group_complete(g))
        publish_group(sms, g);
    else
        arm_reassembly(sms);
}

static void read_next(struct sms *sms);

/* The end of a +CMGR, +CMGL, +CMT or +CDS header, the iterator at it:
 * the alpha field where the header has one (empty or quoted), then the PDU
 * length, the last field (a TPDU is at most 176 octets). */
static int pdu_len_field(struct at_result_iter *it, bool alpha, size_t *len)
{
    int v;

    if ((alpha && at_result_skip_next(it) < 0) || at_result_next_number(it, 1, 200, &v) < 0 ||
        !at_result_at_end(it))
        return -EINVAL;
    *len = (size_t)v;
    return 0;
}

/* The +CMGR: line of an answer, or NULL. Not necessarily the first line:
 * a line the chat could not tell from the answer (a URC no service knows)
 * may come before it, and must not cost the message. The PDU follows it. */
static const char *cmgr_line(const struct at_response *rsp, size_t *at)
{
    for (size_t i = 0; i + 1 < rsp->n_lines; i++) {
        if (strncmp(rsp->lines[i], "+CMGR:", 6) == 0) {
            *at = i;
            return rsp->lines[i];
        }
    }
    return NULL;
}

static void read_done(void *ctx, const struct at_response *rsp)
{
    struct sms *sms = ctx;
    int idx = sms->pending[0];
    const char *hdr = NULL;
    struct at_result_iter it;
    size_t at = 0, len;
    int stat;

    sms->reading = false;
    if (rsp->final == AT_FINAL_CANCELLED)
        return;                    /* modem gone; pending was cleared */
    memmove(sms->pending, sms->pending + 1, --sms->n_pending * sizeof(sms->pending[0]));
    if (rsp->final == AT_FINAL_OK)
        hdr = cmgr_line(rsp, &at);
    /* +CMGR: <stat>,[<alpha>],<length>: stat 0/1 received, 2/3 our own. */
    at_result_iter_init(&it, hdr ? hdr : "");
    if (at_result_iter_next(&it, "+CMGR:") && at_result_next_number(&it, 0, 3, &stat) == 0 &&
        pdu_len_field(&it, true, &len) == 0) {
        if (stat <= 1)
            take_pdu(sms, idx, rsp->lines[at + 1], len);
        if (sms->cbs.store_changed)
            sms->cbs.store_changed(sms->ctx);
    } else if (rsp->final != AT_FINAL_OK) {
        log_warn("sms: reading index %d failed: %s", idx,
                 rsp->text ? rsp->text : at_final_name(rsp->final));
    }
    read_next(sms);
}

static void read_next(struct sms *sms)
{
    char cmd[32];
    const struct at_cmd_opts o = { .info_prefix = "+CMGR:" };

    if (sms->reading || sms->n_pending == 0 || !sms->ready)
        return;
    snprintf(cmd, sizeof(cmd), "AT+CMGR=%d", sms->pending[0]);
    if (modem_send(sms->modem, cmd, &o, read_done, sms) == 0)
        sms->reading = true;
}

/* +CMTI: "<mem>",<index> (a message stored) and +CDSI: the same (AT+CNMI
 * ds=2: a status report stored): the index is read. The A7670 counts SIM
 * slots from 1, but 27.005 allows 0 and ME storage on other modules starts
 * there. Some modules keep reports in a store of their own, "SR", which
 * AT+CMGR does not read with the bridge's AT+CPMS="SM": logged, left
 * there. */
static void urc_stored(void *ctx, const char *const *lines, size_t n)
{
    struct sms *sms = ctx;
    struct at_result_iter it;
    char mem[8];
    int idx;

    (void)n;
    at_result_iter_init(&it, lines[0]);
    if ((!at_result_iter_next(&it, "+CMTI:") && !at_result_iter_next(&it, "+CDSI:")) ||
        at_result_next_string(&it, mem, sizeof(mem)) < 0 ||
        at_result_next_number(&it, 0, 65535, &idx) < 0 || !at_result_at_end(&it)) {
        log_warn("sms: unparsable %s", lines[0]);
        return;
    }
    if (strcmp(mem, "SR") == 0) {
        log_warn("sms: %s: reports in the \"SR\" store are not read", lines[0]);
        return;
    }
    if (index_known(sms, idx))
        return;
    if (sms->n_pending == MAX_PENDING_READS) {
        log_warn("sms: read queue full; index %d waits for the next drain", idx);
        return;
    }
    sms->pending[sms->n_pending++] = idx;
    read_next(sms);
}

/* +CMT: [<alpha>],<length> (a message) or +CDS: <length> (AT+CNMI ds=1,
 * a status report), then the PDU: delivered, not stored. The bring-up
 * sets AT+CSMS=0, under which the module acknowledges both to the network
 * itself: no AT+CNMA. */
static void urc_direct(void *ctx, const char *const *lines, size_t n)
{
    struct at_result_iter it;
    bool cmt;
    size_t len;

    at_result_iter_init(&it, lines[0]);
    cmt = at_result_iter_next(&it, "+CMT:");
    if (n < 2 || (!cmt && !at_result_iter_next(&it, "+CDS:")) ||
        pdu_len_field(&it, cmt, &len) < 0) {
        log_warn("sms: unparsable %.40s", lines[0]);
        return;
    }
    take_pdu(ctx, -1, lines[1], len);
}

static const struct at_urc sms_urcs[] = {
    { "+CMTI:", 0, urc_stored },
    { "+CMT:", 1, urc_direct },
    { "+CDSI:", 0, urc_stored },
    { "+CDS:", 1, urc_direct },
};

/* +CMGL: <index>,<stat>,[<alpha>],<length> then the PDU, per message. */
static void drain_done(void *ctx, const struct at_response *rsp)
{
    struct sms *sms = ctx;

    sms->draining = false;
    if (rsp->final != AT_FINAL_OK) {
        if (rsp->final != AT_FINAL_CANCELLED)
            log_warn("sms: listing stored messages failed: %s",
                     rsp->text ? rsp->text : at_final_name(rsp->final));
        return;
    }
    for (size_t i = 0; i + 1 < rsp->n_lines; i++) {
        const char *l = rsp->lines[i];
        struct at_result_iter it;
        int idx, stat;
        size_t len;

        at_result_iter_init(&it, l);
        if (!at_result_iter_next(&it, "+CMGL:"))
            continue;
        if (at_result_next_number(&it, 0, 65535, &idx) < 0 ||
            at_result_next_number(&it, 0, 3, &stat) < 0 || pdu_len_field(&it, true, &len) < 0) {
            log_warn("sms: unparsable %s", l);
            continue;
        }
        i++;
        if (stat > 1 || index_known(sms, idx))
            continue;
        take_pdu(sms, idx, rsp->lines[i], len);
    }
}

void sms_drain(struct sms *sms)
{
    /* Unpublished complete (or timed-out, or undecodable) groups first: the
     * broker may be back. */
    for (struct group *g = sms->groups; g; g = g->next)
        if (!g->publishing && (g->raw_pdu || g->expired || group_complete(g)))
            publish_group(sms, g);

    if (!sms->ready || sms->draining || !modem_sms_supported(sms->modem))
        return;
    /* 4 = all. With keep_on_sim only unread ones (listing marks them read),
     * or every drain would publish the whole SIM again. */
    const struct at_cmd_opts o = { .info_prefix = "+CMGL:", .timeout_ms = 20000 };
    if (modem_send(sms->modem, sms->opts.keep_on_sim ? "AT+CMGL=0" : "AT+CMGL=4", &o,
                   drain_done, sms) == 0)
        sms->draining = true;
}

void sms_modem_ready(struct sms *sms, bool ready)
{
    sms->ready = ready;
    if (!ready) {
        /* Commands were cancelled; the messages are still on the SIM. */
        sms->n_pending = 0;
        sms->reading = false;
        sms->draining = false;
        return;
    }
    sms_drain(sms);
    /* +CMTI that came while not ready (after AT+CNMI in the bring-up): the
     * listing skips indexes queued for reading, so read them now. */
    read_next(sms);
    /* No timer of its own for the safety drain: the bridge calls sms_drain
     * on each status poll, so an idle bridge wakes once per poll. */
}

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

    m2m_error_set(&err, r == -EAGAIN ? "unavailable" : "busy",
                  r == -EAGAIN ? "the modem is not ready" : "the modem's queue is full");
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
        at_chat_add_urcs(modem_chat(modem), sms_urcs, sizeof(sms_urcs) / sizeof(sms_urcs[0]), sms) < 0) {
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
        group_free(g);
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
