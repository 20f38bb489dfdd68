/* The remote-broker service's receive path: +CMQTTRXSTART announces the
 * totals, +CMQTTRXTOPIC / +CMQTTRXPAYLOAD chunks are followed by exactly
 * <n> raw bytes (read with at_chat_read_block), +CMQTTRXEND delivers the
 * message through the message callback. What is believed and what is
 * dropped is described in cmqtt.h. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/result.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/cmqtt_int.h"
#include "modem/modem.h"

void cmqtt_rx_reset(struct cmqtt *c)
{
    loop_cancel_timer(c->loop, c->rx.timer);
    free(c->rx.topic);
    free(c->rx.payload);
    c->rx = (struct rx){ 0 };
}

/* A message (or the bytes of one) was not delivered: counted, logged,
 * reported (B/error). */
static void rx_dropped(struct cmqtt *c, const char *msg)
{
    c->stats.rx_errors++;
    log_warn("remote: incoming message dropped: %s", msg);
    if (c->cbs.error)
        c->cbs.error(c->ctx, "remote_message_dropped", msg);
}

/* The message being received is dropped; the next RXSTART starts afresh. */
static void rx_error(struct cmqtt *c, const char *msg)
{
    rx_dropped(c, msg);
    cmqtt_rx_reset(c);
}

static int64_t rx_timeout(void *ctx)
{
    struct cmqtt *c = ctx;

    c->rx.timer = 0;
    if (c->rx.active)
        rx_error(c, "+CMQTTRXEND did not come within 10 s");
    return 0;
}

/* "<prefix> 0,<n>[,<m>]": the numbers after client 0, nothing else; false
 * when the line is malformed. Counts are read whole (up to INT_MAX) so
 * that one beyond the module's limits can be reported as such. */
static bool read_counts(const char *line, const char *prefix, int *v, size_t n)
{
    struct at_result_iter it;
    int client;

    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, prefix) || at_result_next_number(&it, 0, 0, &client) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (at_result_next_number(&it, 0, INT_MAX, &v[i]) < 0)
            return false;
    return at_result_at_end(&it);
}

void cmqtt_urc_rxstart(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    int v[2];   /* topic and payload totals */
    char msg[160];

    (void)n;
    if (c->rx.active)
        rx_error(c, "a new message began before +CMQTTRXEND of the previous one");
    if (!read_counts(lines[0], "+CMQTTRXSTART:", v, 2) || v[0] < 1) {
        rx_error(c, "malformed +CMQTTRXSTART");
        return;
    }
    if (v[0] > CMQTT_TOPIC_MAX || v[1] > CMQTT_PAYLOAD_MAX) {
        /* The module cannot send that much: a garbled line, not a message.
         * Its chunks are not read on the strength of it. */
        snprintf(msg, sizeof(msg),
                 "+CMQTTRXSTART announces a %d-byte topic and a %d-byte payload; the module "
                 "sends at most %d and %d",
                 v[0], v[1], CMQTT_TOPIC_MAX, CMQTT_PAYLOAD_MAX);
        rx_error(c, msg);
        return;
    }
    c->rx.active = true;
    c->rx.topic_total = (size_t)v[0];
    c->rx.payload_total = (size_t)v[1];
    c->rx.topic = malloc(c->rx.topic_total + 1);
    c->rx.payload = malloc(c->rx.payload_total ? c->rx.payload_total : 1);
    if (!c->rx.topic || !c->rx.payload) {
        rx_error(c, "out of memory");
        return;
    }
    loop_add_timer(c->loop, CMQTT_RX_TIMEOUT_MS, rx_timeout, c, &c->rx.timer);
}

static void rx_block(void *ctx, const uint8_t *data, size_t len)
{
    struct cmqtt *c = ctx;
    struct rx *rx = &c->rx;

    if (!rx->active || rx->bad)
        return;
    if (rx->in_payload) {
        if (rx->payload_total - rx->payload_got < len) {
            rx->bad = true;
            return;
        }
        memcpy(rx->payload + rx->payload_got, data, len);
        rx->payload_got += len;
    } else {
        if (rx->topic_total - rx->topic_got < len) {
            rx->bad = true;
            return;
        }
        memcpy(rx->topic + rx->topic_got, data, len);
        rx->topic_got += len;
    }
}

static void rx_chunk(struct cmqtt *c, const char *line, bool payload)
{
    struct rx *rx = &c->rx;
    const char *what = payload ? "+CMQTTRXPAYLOAD" : "+CMQTTRXTOPIC";
    size_t limit = payload ? CMQTT_PAYLOAD_MAX : CMQTT_TOPIC_MAX;
    char msg[200];
    int n;   /* the announced byte count */
    int r;

    if (!read_counts(line, payload ? "+CMQTTRXPAYLOAD:" : "+CMQTTRXTOPIC:", &n, 1)) {
        /* The byte count is unknown: nothing to skip, the lexer resyncs
         * on the next line end. */
        if (rx->active)
            rx_error(c, "malformed +CMQTTRXTOPIC/+CMQTTRXPAYLOAD");
        return;
    }
    if (rx->active) {
        /* A chunk is believed only within what its RXSTART announced: a
         * false length would make the bridge read the module's next replies
         * as message bytes. */
        limit = payload ? rx->payload_total - rx->payload_got : rx->topic_total - rx->topic_got;
    }
    if ((size_t)n > limit) {
        snprintf(msg, sizeof(msg), "%s announces %d bytes, %s %zu; not read", what, n,
                 rx->active ? "but what remains of the announced total is"
                            : "without +CMQTTRXSTART, and the module sends at most",
                 limit);
        if (rx->active)
            rx_error(c, msg);
        else
            rx_dropped(c, msg);
        return;
    }
    if (!rx->active) {
        /* Bytes of a message we do not follow: still consume them. */
        c->stats.rx_errors++;
        log_warn("remote: %s without +CMQTTRXSTART; skipping %d bytes", what, n);
    } else {
        if (payload && rx->topic_got != rx->topic_total)
            rx->bad = true;   /* payload before the whole topic: dropped at RXEND */
        rx->in_payload = payload;
    }
    if (n == 0)
        return;
    r = at_chat_read_block(modem_chat(c->modem), (size_t)n, rx_block, c);
    if (r < 0 && rx->active)
        rx_error(c, "cannot read the announced bytes");
}

void cmqtt_urc_rxtopic(void *ctx, const char *const *lines, size_t n)
{
    (void)n;
    rx_chunk(ctx, lines[0], false);
}

void cmqtt_urc_rxpayload(void *ctx, const char *const *lines, size_t n)
{
    (void)n;
    rx_chunk(ctx, lines[0], true);
}

void cmqtt_urc_rxend(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    struct rx *rx = &c->rx;
    int qos = 0;

    (void)lines;
    (void)n;
    if (!rx->active) {
        log_warn("remote: +CMQTTRXEND without +CMQTTRXSTART");
        return;
    }
    if (rx->bad || rx->topic_got != rx->topic_total || rx->payload_got != rx->payload_total) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the message did not match its announced lengths (topic %zu/%zu, payload "
                 "%zu/%zu bytes)",
                 rx->topic_got, rx->topic_total, rx->payload_got, rx->payload_total);
        rx_error(c, msg);
        return;
    }
    rx->topic[rx->topic_total] = '\0';
    for (size_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].qos > qos &&
            cmqtt_topic_match(c->subs[i].topic, rx->topic, rx->topic_total))
            qos = c->subs[i].qos;
    c->stats.received++;
    if (c->cbs.message)
        c->cbs.message(c->ctx, rx->topic, rx->topic_total, rx->payload, rx->payload_total, qos);
    cmqtt_rx_reset(c);
}

