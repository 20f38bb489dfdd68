/* at/chat with a fake transport (no I/O, a fake clock): how many commands
 * it completes per second, and how many URCs it dispatches per second.
 *
 * The chat has the bridge's three URC tables registered (boot: *ATREADY,
 * RDY; sms: +CMTI, +CMT with its PDU line; status: +CREG, +CEREG), the
 * bridge's queue and line bounds, and the bridge's default log level
 * (info), so the figures include what the bridge pays per line.
 *
 *  - command cycle: at_chat_send("AT+CSQ", info "+CSQ:") then the module's
 *    answer fed as one read: echo, "+CSQ: 20,99", OK. op = one command
 *    completed (done callback checked: OK, one info line).
 *  - URC dispatch: no command in flight; one read holding +CMTI, +CREG,
 *    +CEREG and +CMT + PDU (each table, first and later entries, a URC
 *    with an extra line). op = one URC handler call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "bench.h"
#include "core/log.h"

struct fake {
    int64_t now;
    uint64_t written;
    int64_t deadline;
};

static int fake_write(void *ctx, const uint8_t *buf, size_t len)
{
    struct fake *f = ctx;

    f->written += len + buf[0];
    return 0;
}

static int64_t fake_now(void *ctx)
{
    struct fake *f = ctx;

    return f->now++;
}

static void fake_schedule(void *ctx, int64_t deadline_ms)
{
    struct fake *f = ctx;

    f->deadline = deadline_ms;
}

struct bench {
    struct at_chat *chat;
    struct fake fake;
    uint64_t done, urcs, check;
};

static void urc_count(void *ctx, const char *const *lines, size_t n_lines)
{
    struct bench *b = ctx;

    b->urcs++;
    b->check += n_lines + (unsigned char)lines[n_lines - 1][0];
}

static const struct at_urc boot_urcs[] = {
    {"*ATREADY", 0, urc_count},
    {"RDY", 0, urc_count},
};
static const struct at_urc sms_urcs[] = {
    {"+CMTI:", 0, urc_count},
    {"+CMT:", 1, urc_count},
};
static const struct at_urc status_urcs[] = {
    {"+CREG:", 0, urc_count},
    {"+CEREG:", 0, urc_count},
};

static void csq_done(void *ctx, const struct at_response *rsp)
{
    struct bench *b = ctx;

    if (rsp->final != AT_FINAL_OK || rsp->n_lines != 1 || strncmp(rsp->lines[0], "+CSQ: ", 6) != 0)
        bench_fail("AT+CSQ: final %s, %zu lines", at_final_name(rsp->final), rsp->n_lines);
    b->done++;
    b->check += (unsigned char)rsp->lines[0][6];
}

static const char csq_answer[] = "AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n";

static uint64_t run_commands(void *ctx, uint64_t iters)
{
    static const struct at_cmd_opts opts = {.info_prefix = "+CSQ:", .timeout_ms = 9000};
    struct bench *b = ctx;
    uint64_t before = b->done;

    for (uint64_t i = 0; i < iters; i++) {
        if (at_chat_send(b->chat, "AT+CSQ", &opts, csq_done, b) != 0)
            bench_fail("at_chat_send");
        at_chat_feed(b->chat, (const uint8_t *)csq_answer, sizeof(csq_answer) - 1);
    }
    if (b->done - before != iters || !at_chat_idle(b->chat))
        bench_fail("commands: %llu of %llu completed", (unsigned long long)(b->done - before),
                   (unsigned long long)iters);
    bench_consume(b->check + b->fake.written);
    return iters;
}

static const char urc_read[] =
    "\r\n+CMTI: \"SM\",3\r\n"
    "\r\n+CREG: 1,\"1A2B\",\"01C2D3E4\",7\r\n"
    "\r\n+CEREG: 5\r\n"
    "\r\n+CMT: ,24\r\n07919471060100F0040B919471109254F600006211126000004005E8329BFD06\r\n";
#define URCS_PER_READ 4

static uint64_t run_urcs(void *ctx, uint64_t iters)
{
    struct bench *b = ctx;
    uint64_t before = b->urcs;

    for (uint64_t i = 0; i < iters; i++)
        at_chat_feed(b->chat, (const uint8_t *)urc_read, sizeof(urc_read) - 1);
    if (b->urcs - before != iters * URCS_PER_READ)
        bench_fail("urcs: %llu dispatched, %llu expected", (unsigned long long)(b->urcs - before),
                   (unsigned long long)(iters * URCS_PER_READ));
    bench_consume(b->check);
    return iters * URCS_PER_READ;
}

int main(int argc, char **argv)
{
    /* The bridge's chat (modem/modem.c). */
    const struct at_chat_opts opts = {
        .default_timeout_ms = 9000,
        .max_queue = 64,
        .max_line = 3072,
        .max_block = 16384,
    };
    struct bench b = {0};
    struct at_transport tr = {fake_write, fake_now, fake_schedule, &b.fake};

    bench_init(argc, argv);
    log_set_level(LOG_INFO);
    b.fake.now = 1000;
    b.chat = at_chat_new(&opts, &tr);
    if (!b.chat)
        bench_fail("at_chat_new");
    if (at_chat_add_urcs(b.chat, boot_urcs, 2, &b) < 0 ||
        at_chat_add_urcs(b.chat, sms_urcs, 2, &b) < 0 ||
        at_chat_add_urcs(b.chat, status_urcs, 2, &b) < 0)
        bench_fail("at_chat_add_urcs");

    const struct bench_case cmd = {"chat: AT+CSQ -> +CSQ + OK (op=command)", run_commands, &b,
                                   sizeof(csq_answer) - 1};
    const struct bench_case urc = {"chat: URC dispatch, 3 tables (op=URC)", run_urcs, &b,
                                   (double)(sizeof(urc_read) - 1) / URCS_PER_READ};
    if (bench_run(&cmd, NULL) < 0 || bench_run(&urc, NULL) < 0)
        return 1;
    at_chat_free(b.chat);
    return 0;
}
