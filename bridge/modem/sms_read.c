/* Reading incoming messages and status reports from the module (see
 * sms_int.h for the other files): +CMTI and +CDSI with the AT+CMGR that
 * reads the index, +CMT and +CDS with the PDU in the URC, and the AT+CMGL
 * drain that finds what no URC announced (sms_drain, also on
 * sms_modem_ready). Each PDU is decoded and put into its group;
 * publishing, reassembly and deleting are sms.c's. */
#include "modem/sms_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/pdu.h"

/* --- reading ------------------------------------------------------------ */

/* A status report: a group of one, published at once. */
static void take_report(struct sms *sms, int idx, struct pdu_msg *msg)
{
    struct group *g = sms_group_new(sms, 1);

    if (!g) {
        log_warn("sms: too many messages in flight; the report at index %d waits for the next "
                 "drain", idx);
        free(msg);
        return;
    }
    g->report = true;
    g->parts[0] = msg;
    snprintf(g->from, sizeof(g->from), "%s", msg->addr);
    sms_group_add_index(g, idx);
    sms_publish_group(sms, g);
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
        g = sms_group_new(sms, 1);
        if (!g || !(g->raw_pdu = strdup(hex))) {
            if (g) {
                sms_group_unlink(sms, g);
                sms_group_free(g);
            }
            return;
        }
        sms_group_add_index(g, idx);
        sms_publish_group(sms, g);
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
        g = sms_group_new(sms, concat ? msg->concat_total : 1);
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
    sms_group_add_index(g, idx);
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
    if (sms_group_complete(g))
        sms_publish_group(sms, g);
    else
        sms_arm_reassembly(sms);
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
    if (sms_index_known(sms, idx))
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

const struct at_urc sms_urcs[] = {
    { "+CMTI:", 0, urc_stored },
    { "+CMT:", 1, urc_direct },
    { "+CDSI:", 0, urc_stored },
    { "+CDS:", 1, urc_direct },
};
const size_t sms_n_urcs = sizeof(sms_urcs) / sizeof(sms_urcs[0]);

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
        if (stat > 1 || sms_index_known(sms, idx))
            continue;
        take_pdu(sms, idx, rsp->lines[i], len);
    }
}

void sms_drain(struct sms *sms)
{
    /* Unpublished complete (or timed-out, or undecodable) groups first: the
     * broker may be back. */
    for (struct group *g = sms->groups; g; g = g->next)
        if (!g->publishing && (g->raw_pdu || g->expired || sms_group_complete(g)))
            sms_publish_group(sms, g);

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
