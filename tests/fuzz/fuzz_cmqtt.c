/* libFuzzer target: the remote-broker service's receive path and session
 * URCs (modem/cmqtt: +CMQTTRXSTART/TOPIC/PAYLOAD/END with their raw
 * blocks, +CMQTTCONNLOST, +CMQTTNONET) through the real chat, with the
 * service connected (one subscription, "a/#" at QoS 1).
 *
 * The input is module bytes after the connect; its first byte sets the
 * chunk size they are fed in (0: whole). Then the live timers fire (the
 * receive timeout, a reconnect) and everything is freed.
 *
 * Checks: every delivered message has a topic of 1-CMQTT_TOPIC_MAX bytes,
 * NUL-terminated after them, a payload of at most CMQTT_PAYLOAD_MAX, the
 * QoS of the subscription that matches it (1) or 0; the delivered count is
 * the service's; every error is a dropped message; the state is one of
 * the four. ASan/UBSan and the leak checker do the rest.
 *
 * Link seams as in tests/unit/test_cmqtt.c: modem_chat and modem_send
 * (the chat), loop_add_timer and loop_cancel_timer (a list fired here), so
 * modem.o and loop.o stay out of the link. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/cmqtt.h"
#include "modem/modem.h"

#define MAX_TIMERS 8

static struct {
    struct at_chat *chat;
    struct {
        bool live;
        uint64_t id;
        loop_timer_cb cb;
        void *ctx;
    } timers[MAX_TIMERS];
    uint64_t next_id;
    uint64_t messages;
} F;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_cmqtt: invariant failed: %s\n", what);
        abort();
    }
}

struct at_chat *modem_chat(struct modem *m)
{
    (void)m;
    return F.chat;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    (void)m;
    return at_chat_send(F.chat, cmd, opts, cb, ctx);
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx, uint64_t *id)
{
    (void)loop;
    (void)delay_ms;
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (!F.timers[i].live) {
            F.timers[i].live = true;
            F.timers[i].id = ++F.next_id;
            F.timers[i].cb = cb;
            F.timers[i].ctx = ctx;
            if (id)
                *id = F.next_id;
            return 0;
        }
    }
    return -ENOMEM;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    (void)loop;
    for (size_t i = 0; id && i < MAX_TIMERS; i++)
        if (F.timers[i].live && F.timers[i].id == id)
            F.timers[i].live = false;
}

/* Each live timer once (what they start is not fired again). */
static void fire_timers(void)
{
    uint64_t last = F.next_id;

    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (F.timers[i].live && F.timers[i].id <= last) {
            F.timers[i].live = false;
            F.timers[i].cb(F.timers[i].ctx);
        }
    }
}

static int tr_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

static int64_t tr_now(void *ctx)
{
    (void)ctx;
    return 1000;
}

static void tr_schedule(void *ctx, int64_t deadline)
{
    (void)ctx;
    (void)deadline;
}

static void on_message(void *ctx, const char *topic, size_t tlen, const uint8_t *payload,
                       size_t len, int qos)
{
    (void)ctx;
    check(tlen >= 1 && tlen <= CMQTT_TOPIC_MAX, "topic length");
    check(topic[tlen] == '\0', "topic terminated");
    check(len <= CMQTT_PAYLOAD_MAX && (payload || len == 0), "payload");
    check(qos == (cmqtt_topic_match("a/#", topic, tlen) ? 1 : 0), "qos of the matching filter");
    F.messages++;
}

static void on_error(void *ctx, const char *code, const char *message)
{
    (void)ctx;
    check(strcmp(code, "remote_message_dropped") == 0 && message[0], "error code");
}

static void feed(const char *s)
{
    at_chat_feed(F.chat, (const uint8_t *)s, strlen(s));
}

/* START, ACCQ, CFG, CONNECT, SUB "a/#": connected. */
static void connect_service(struct cmqtt *c)
{
    cmqtt_modem_ready(c, true);
    feed("\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n\r\nOK\r\n\r\nOK\r\n"
         "\r\nOK\r\n\r\n+CMQTTCONNECT: 0,0\r\n\r\n> \r\nOK\r\n\r\n+CMQTTSUB: 0,0\r\n");
    check(cmqtt_state(c) == CMQTT_CONNECTED, "connected before the input");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cmqtt_sub_opt subs[] = { { "a/#", 1 } };
    const struct cmqtt_opts o = { .server = "tcp://127.0.0.1:1883", .client_id = "dev1",
                                  .keepalive = 60, .subs = subs, .n_subs = 1 };
    const struct cmqtt_cbs cbs = { .message = on_message, .error = on_error };
    const struct at_chat_opts co = { .default_timeout_ms = 5000, .max_queue = 16,
                                     .max_line = 4096, .max_block = CMQTT_PAYLOAD_MAX };
    const struct at_transport tr = { tr_write, tr_now, tr_schedule, NULL };
    size_t chunk;
    struct cmqtt *c;
    enum cmqtt_state st;

    log_set_level(LOG_ERROR);
    memset(&F, 0, sizeof(F));
    F.chat = at_chat_new(&co, &tr);
    check(F.chat != NULL, "chat");
    c = cmqtt_new(NULL, NULL, &o, &cbs, NULL);
    check(c != NULL, "cmqtt_new");
    connect_service(c);
    chunk = size > 0 && data[0] ? data[0] : size;
    for (size_t off = size > 0 ? 1 : 0; off < size; off += chunk)
        at_chat_feed(F.chat, data + off, size - off < chunk ? size - off : chunk);
    fire_timers();
    st = cmqtt_state(c);
    check(st == CMQTT_CONNECTING || st == CMQTT_CONNECTED || st == CMQTT_DISCONNECTED, "state");
    check(cmqtt_stats(c)->received == F.messages, "received count");
    at_chat_cancel_all(F.chat);
    cmqtt_free(c);
    at_chat_free(F.chat);
    return 0;
}
