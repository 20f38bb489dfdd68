/* at/lexer throughput on a realistic A7670 transcript mix, fed in chunks of
 * 1, 64 and 4096 bytes (a tty read() returns anything from one byte to a
 * full buffer).
 *
 * The mix, repeated to about 64 KiB: URCs (+CMTI, +CREG, +CEREG, RING,
 * +CLIP), command answers with echo (AT+CSQ, AT+CPSI?), an AT+CMGL listing
 * of five stored SMS-DELIVER PDUs (160-char GSM, 70-char UCS-2, short
 * texts), an AT+CMGS round with its "> " prompt, and CMQTT RX blocks (topic
 * and a 200-byte payload holding CR LF) read with at_lexer_expect_block()
 * from the line callback, as at/chat does.
 *
 * op = one lexer event (line, prompt or block). Every pass is checked to
 * produce exactly the events of the whole-buffer pass. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/lexer.h"
#include "bench.h"
#include "modem/pdu.h"

#define TRANSCRIPT_TARGET (64 * 1024)
#define MAX_LINE 3072
#define MAX_BLOCK 16384

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            bench_fail("out of memory");
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        bench_fail("buf_fmt: too long");
    buf_add(b, tmp, (size_t)n);
}

/* One SMS-DELIVER PDU for the +CMGL listing. */
static void deliver_pdu(const char *text, struct pdu_part *part)
{
    const struct pdu_encode_opts o = {
        .type = PDU_DELIVER,
        .addr = "+4917012345678",
        .smsc = "+491770610000",
        .timestamp = 1795000000,
        .tz_minutes = 60,
    };
    size_t n = 0;

    if (pdu_encode(&o, text, strlen(text), part, 1, &n, NULL) != 0 || n != 1)
        bench_fail("pdu_encode for the transcript");
}

static void add_cycle(struct buf *b, const struct pdu_part *pdus, size_t n_pdus)
{
    static const char payload_src[] =
        "{\"temperature\":21.5,\"humidity\":48,\"battery\":3.02,\r\n"
        "\"rssi\":-71,\"ts\":\"2026-11-21T06:00:00+01:00\",\"seq\":123456}\r\n";
    char payload[201];

    /* Idle URCs. */
    buf_str(b, "\r\n+CMTI: \"SM\",3\r\n");
    buf_str(b, "\r\n+CREG: 1,\"1A2B\",\"01C2D3E4\",7\r\n");
    buf_str(b, "\r\n+CEREG: 1,\"1A2B\",\"01C2D3E4\",7\r\n");
    buf_str(b, "\r\nRING\r\n\r\n+CLIP: \"+4917012345678\",145,,,,0\r\n");
    /* Status poll, echo on. */
    buf_str(b, "AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    buf_str(b, "AT+CPSI?\r\r\n+CPSI: LTE,Online,262-01,0x1A2B,12345678,300,EUTRAN-BAND3,1300,"
               "5,5,-94,-1050,-720,15\r\n\r\nOK\r\n");
    /* SIM drain. */
    buf_str(b, "AT+CMGL=4\r\r\n");
    for (size_t i = 0; i < n_pdus; i++) {
        buf_fmt(b, "+CMGL: %zu,1,,%zu\r\n", i, pdus[i].tpdu_len);
        buf_fmt(b, "%s\r\n", pdus[i].hex);
    }
    buf_str(b, "\r\nOK\r\n");
    /* An SMS out: echo, prompt, echoed hex and Ctrl-Z, result. */
    buf_str(b, "AT+CMGS=23\r\r\n> ");
    buf_str(b, "0011000B919471109254F60000A70AE8329BFD4697D9EC37\x1a");
    buf_str(b, "\r\n+CMGS: 12\r\n\r\nOK\r\n");
    /* Two CMQTT messages in. */
    _Static_assert(sizeof(payload_src) - 1 <= 200, "payload_src fits the payload");
    memcpy(payload, payload_src, sizeof(payload_src) - 1);
    for (size_t i = sizeof(payload_src) - 1; i < 200; i++)
        payload[i] = (char)('a' + i % 26);
    payload[200] = 0;
    for (int k = 0; k < 2; k++) {
        buf_str(b, "\r\n+CMQTTRXSTART: 0,17,200\r\n+CMQTTRXTOPIC: 0,17\r\nhome/sensor/temp1");
        buf_str(b, "\r\n+CMQTTRXPAYLOAD: 0,200\r\n");
        buf_add(b, payload, 200);
        buf_str(b, "\r\n+CMQTTRXEND: 0\r\n");
    }
}

struct counts {
    uint64_t lines, prompts, blocks, overflows, bytes, mix;
};

struct lexbench {
    struct at_lexer *lx;
    const uint8_t *data;
    size_t len;
    size_t chunk;
    struct counts c;     /* accumulated by the callback */
    struct counts want;  /* one whole-buffer pass */
};

static void on_event(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len)
{
    struct lexbench *b = ctx;

    switch (ev) {
    case AT_LEX_LINE:
        b->c.lines++;
        /* What at/chat's CMQTT handler does: the number after the comma
         * announces a raw block. */
        if (len > 14 && data[0] == '+' &&
            (strncmp((const char *)data, "+CMQTTRXTOPIC:", 14) == 0 ||
             strncmp((const char *)data, "+CMQTTRXPAYLOAD:", 16) == 0)) {
            const char *comma = strchr((const char *)data, ',');
            if (!comma || at_lexer_expect_block(b->lx, strtoul(comma + 1, NULL, 10)) != 0)
                bench_fail("expect_block");
        }
        /* What at/chat does: a '>' is the prompt only while a command with
         * data (here the echoed AT+CMGS) waits for one. */
        if (strncmp((const char *)data, "AT+CMGS=", 8) == 0)
            at_lexer_expect_prompt(b->lx, true);
        break;
    case AT_LEX_PROMPT:
        b->c.prompts++;
        at_lexer_expect_prompt(b->lx, false);
        break;
    case AT_LEX_BLOCK:
        b->c.blocks++;
        break;
    case AT_LEX_OVERFLOW:
        b->c.overflows++;
        break;
    }
    b->c.bytes += len;
    b->c.mix += len ? data[len - 1] : 0;
}

static uint64_t one_pass(struct lexbench *b)
{
    const uint8_t *p = b->data;
    size_t left = b->len;

    while (left > 0) {
        size_t n = left < b->chunk ? left : b->chunk;
        at_lexer_feed(b->lx, p, n);
        p += n;
        left -= n;
    }
    return b->c.lines + b->c.prompts + b->c.blocks;
}

static uint64_t run_lexer(void *ctx, uint64_t iters)
{
    struct lexbench *b = ctx;
    uint64_t events = 0;

    for (uint64_t i = 0; i < iters; i++) {
        memset(&b->c, 0, sizeof(b->c));
        events += one_pass(b);
        if (b->c.lines != b->want.lines || b->c.blocks != b->want.blocks ||
            b->c.prompts != b->want.prompts || b->c.bytes != b->want.bytes ||
            b->c.mix != b->want.mix || b->c.overflows != 0)
            bench_fail("lexer chunk %zu: events differ from the whole-buffer pass", b->chunk);
        bench_consume(b->c.mix);
    }
    return events;
}

int main(int argc, char **argv)
{
    static const char *texts[] = {
        /* 160 GSM characters */
        "Your parcel 4711-0815 will be delivered tomorrow between 10:00 and 12:00. "
        "Reply STOP to opt out. Questions? Call +49 30 1234567 (Mon-Fri 8-18h). Thanks!",
        /* 70 UCS-2 characters */
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80! "
        "\xd0\x92\xd0\xb0\xd1\x88 \xd0\xba\xd0\xbe\xd0\xb4: 482913. "
        "\xd0\x9d\xd0\xb5 \xd1\x81\xd0\xbe\xd0\xbe\xd0\xb1\xd1\x89\xd0\xb0\xd0\xb9\xd1\x82\xd0\xb5 "
        "\xd0\xb5\xd0\xb3\xd0\xbe \xd0\xbd\xd0\xb8\xd0\xba\xd0\xbe\xd0\xbc\xd1\x83, "
        "\xd0\xb4\xd0\xb0\xd0\xb6\xd0\xb5 "
        "\xd0\xbe\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb0\xd1\x82\xd0\xbe\xd1\x80\xd1\x83!",
        "Alarm: front door opened",
        "Battery low (12%)",
        "OK",
    };
    struct pdu_part pdus[5];
    struct buf t = {0};
    struct lexbench b = {0};
    static const size_t chunks[] = {1, 64, 4096};

    bench_init(argc, argv);
    for (size_t i = 0; i < 5; i++)
        deliver_pdu(texts[i], &pdus[i]);
    while (t.len < TRANSCRIPT_TARGET)
        add_cycle(&t, pdus, 5);

    b.lx = at_lexer_new(MAX_LINE, MAX_BLOCK, on_event, &b);
    if (!b.lx)
        bench_fail("at_lexer_new");
    b.data = (const uint8_t *)t.p;
    b.len = t.len;
    b.chunk = t.len;
    one_pass(&b);
    b.want = b.c;
    if (b.want.overflows || b.want.blocks == 0 || b.want.prompts == 0)
        bench_fail("transcript: unexpected events");

    uint64_t events = b.want.lines + b.want.prompts + b.want.blocks;
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "lexer: %zu KiB mix, chunk %zu (op=event)", t.len / 1024,
                 chunks[i]);
        b.chunk = chunks[i];
        struct bench_case c = {name, run_lexer, &b, (double)t.len / (double)events};
        if (bench_run(&c, NULL) < 0)
            return 1;
    }
    at_lexer_free(b.lx);
    free(t.p);
    return 0;
}
