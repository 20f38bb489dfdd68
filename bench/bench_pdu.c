/* modem/pdu: encodes and decodes per second.
 *
 *  - encode: SMS-SUBMIT (what the bridge writes for AT+CMGS) of a
 *    160-character GSM text, a 70-character UCS-2 text (Cyrillic) and a
 *    6-part GSM text (900 characters, concatenation UDH). op = one
 *    pdu_encode() call, i.e. one whole message (6 PDUs for the last).
 *  - decode: SMS-DELIVER (what the bridge reads with AT+CMGL/+CMT) of the
 *    same texts, with SMSC and time stamp. op = one message: one
 *    pdu_decode() per part (6 for the last). Decoded texts are checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "modem/pdu.h"

#define PARTS_MAX 8

struct pdubench {
    const char *text;
    size_t text_len;
    size_t want_parts;
    enum pdu_alphabet want_alphabet;
    struct pdu_part parts[PARTS_MAX]; /* DELIVER PDUs: decode input */
    struct pdu_part out[PARTS_MAX];   /* encode output */
    size_t n_parts;
    size_t hex_len[PARTS_MAX];
    size_t hex_total;
    size_t utf8_out;                  /* sum of decoded text lengths */
    struct pdu_msg msg;
};

static const struct pdu_encode_opts submit = {
    .type = PDU_SUBMIT,
    .addr = "+4917012345678",
};

static uint64_t run_encode(void *ctx, uint64_t iters)
{
    struct pdubench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        struct pdu_encode_opts o = submit;
        enum pdu_alphabet a;
        size_t n = 0;

        o.concat_ref = (uint8_t)i;
        if (pdu_encode(&o, b->text, b->text_len, b->out, PARTS_MAX, &n, &a) != 0 ||
            n != b->want_parts || a != b->want_alphabet)
            bench_fail("pdu_encode");
        sum += n + (unsigned char)b->out[n - 1].hex[40] + b->out[0].tpdu_len;
    }
    bench_consume(sum);
    return iters;
}

static uint64_t run_decode(void *ctx, uint64_t iters)
{
    struct pdubench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        size_t out = 0;

        for (size_t k = 0; k < b->n_parts; k++) {
            if (pdu_decode(b->parts[k].hex, b->hex_len[k], b->parts[k].tpdu_len, &b->msg) != 0)
                bench_fail("pdu_decode");
            out += b->msg.text_len;
            sum += b->msg.text[0] + b->msg.concat_seq;
        }
        if (out != b->utf8_out)
            bench_fail("pdu_decode: %zu text bytes, %zu expected", out, b->utf8_out);
    }
    bench_consume(sum);
    return iters;
}

static void setup(struct pdubench *b, const char *text, size_t want_parts, enum pdu_alphabet a)
{
    const struct pdu_encode_opts deliver = {
        .type = PDU_DELIVER,
        .addr = "+4917012345678",
        .smsc = "+491770610000",
        .timestamp = 1795000000,
        .tz_minutes = 60,
        .concat_ref = 42,
    };
    size_t decoded = 0;

    memset(b, 0, sizeof(*b));
    b->text = text;
    b->text_len = strlen(text);
    b->want_parts = want_parts;
    b->want_alphabet = a;
    if (pdu_encode(&deliver, text, b->text_len, b->parts, PARTS_MAX, &b->n_parts, NULL) != 0 ||
        b->n_parts != want_parts)
        bench_fail("setup: %zu parts, %zu expected", b->n_parts, want_parts);
    for (size_t k = 0; k < b->n_parts; k++) {
        b->hex_len[k] = strlen(b->parts[k].hex);
        b->hex_total += b->hex_len[k];
        if (pdu_decode(b->parts[k].hex, b->hex_len[k], b->parts[k].tpdu_len, &b->msg) != 0)
            bench_fail("setup: decode");
        if (memcmp(b->msg.text, text + decoded, b->msg.text_len) != 0)
            bench_fail("setup: round trip");
        decoded += b->msg.text_len;
    }
    if (decoded != b->text_len)
        bench_fail("setup: round trip length");
    b->utf8_out = decoded;
}

int main(int argc, char **argv)
{
    static char gsm160[161], gsm900[901];
    static const char sentence[] =
        "The quick brown fox jumps over the lazy dog; meet at 10:30 @ Main St. #42 (bring $5)! ";
    /* 70 characters of Cyrillic and ASCII: UCS-2, one part. */
    static const char ucs70[] =
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80! "
        "\xd0\x92\xd0\xb0\xd1\x88 \xd0\xba\xd0\xbe\xd0\xb4: 482913. "
        "\xd0\x9d\xd0\xb5 \xd1\x81\xd0\xbe\xd0\xbe\xd0\xb1\xd1\x89\xd0\xb0\xd0\xb9\xd1\x82\xd0\xb5 "
        "\xd0\xb5\xd0\xb3\xd0\xbe \xd0\xbd\xd0\xb8\xd0\xba\xd0\xbe\xd0\xbc\xd1\x83, "
        "\xd0\xb4\xd0\xb0\xd0\xb6\xd0\xb5 "
        "\xd0\xbe\xd0\xbf\xd0\xb5\xd1\x80\xd0\xb0\xd1\x82\xd0\xbe\xd1\x80\xd1\x83!";
    static struct pdubench gsm1, ucs1, gsm6;
    struct {
        const char *name;
        struct pdubench *b;
    } rows[] = {
        {"160-char GSM", &gsm1},
        {"70-char UCS-2", &ucs1},
        {"6-part GSM (900 chars)", &gsm6},
    };

    bench_init(argc, argv);
    for (size_t i = 0; i < 160; i++)
        gsm160[i] = sentence[i % (sizeof(sentence) - 1)];
    for (size_t i = 0; i < 900; i++)
        gsm900[i] = sentence[i % (sizeof(sentence) - 1)];

    size_t ucs_chars = 0;
    for (const char *p = ucs70; *p; p++)
        ucs_chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (ucs_chars != 70)
        bench_fail("ucs70 has %zu characters", ucs_chars);

    setup(&gsm1, gsm160, 1, PDU_GSM7);
    setup(&ucs1, ucs70, 1, PDU_UCS2);
    setup(&gsm6, gsm900, 6, PDU_GSM7);

    for (size_t i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof(name), "pdu: encode %s (op=message)", rows[i].name);
        struct bench_case c = {name, run_encode, rows[i].b, (double)rows[i].b->text_len};
        if (bench_run(&c, NULL) < 0)
            return 1;
    }
    for (size_t i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof(name), "pdu: decode %s (op=message)", rows[i].name);
        struct bench_case c = {name, run_decode, rows[i].b, (double)rows[i].b->hex_total};
        if (bench_run(&c, NULL) < 0)
            return 1;
    }
    return 0;
}
