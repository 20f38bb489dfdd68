/* libFuzzer target: at/lexer.
 *
 * Input: one length byte L, then L control bytes, then the module's byte
 * stream. The stream is lexed three times: fed whole, fed in chunks whose
 * sizes come from the control bytes, and fed one byte at a time. The three
 * event sequences must be identical, because the lexer promises that a
 * transcript split at any byte boundary lexes the same (the port delivers
 * whatever read() returned).
 *
 * The callback asks for blocks the way the chat does for CMQTT RX
 * ("+CMQTTRX...: 0,<n>" announces n raw bytes), and also on events chosen
 * by the control bytes with sizes chosen by them, so blocks start after
 * prompts, overflows and other blocks too. Those decisions depend only on
 * the event's index and content, never on the split, so all three runs must
 * still agree.
 *
 * Per event: a line is non-empty, at most max_line bytes, holds no CR or LF
 * and has data[len] == 0; a prompt is ">"; a block has exactly the
 * requested size; an overflow reports max_line bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/lexer.h"

/* Events kept per run: enough for any input libFuzzer makes with
 * -max_len 4096 (every byte can be at most one event). */
#define EV_MAX 8192
/* Bytes of event data kept per run. Blocks are bounded by max_block. */
#define DATA_MAX (1u << 20)

struct ev {
    enum at_lex_event kind;
    size_t off, len;
};

struct run {
    struct at_lexer *lx;
    const uint8_t *ctl;
    size_t n_ctl;
    size_t max_line, max_block;
    struct ev ev[EV_MAX];
    size_t n_ev;
    uint8_t data[DATA_MAX];
    size_t n_data;
    bool truncated;         /* more events than kept: compare what we have */
    size_t block_want;      /* size of the block requested, SIZE_MAX: none */
};

static struct run runs[3];

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_lexer: invariant failed: %s\n", what);
        abort();
    }
}

/* Which size of block, if any, to ask for after event k. */
static bool block_choice(const struct run *r, size_t k, size_t *len)
{
    uint8_t c;

    if (r->n_ctl == 0)
        return false;
    c = r->ctl[k % r->n_ctl];
    if ((c & 0x07) != 0x07)
        return false;
    /* Sometimes beyond max_block, so the refusal path runs too. */
    *len = (size_t)(c >> 3) % (r->max_block + 2);
    return true;
}

/* The chat's rule for CMQTT RX lines: the number after the last comma. */
static bool announced(const uint8_t *d, size_t len, size_t *n)
{
    static const char *const pre[] = {"+CMQTTRXTOPIC:", "+CMQTTRXPAYLOAD:"};
    const char *comma;
    size_t v = 0;

    for (size_t i = 0; i < 2; i++) {
        size_t pl = strlen(pre[i]);

        if (len < pl || memcmp(d, pre[i], pl) != 0)
            continue;
        comma = strrchr((const char *)d, ',');
        if (!comma)
            return false;
        for (const char *p = comma + 1; *p >= '0' && *p <= '9' && v < 100000; p++)
            v = v * 10 + (size_t)(*p - '0');
        *n = v;
        return true;
    }
    return false;
}

static void cb(void *ctx, enum at_lex_event kind, const uint8_t *data, size_t len)
{
    struct run *r = ctx;
    size_t k = r->n_ev, want;
    bool ask;

    switch (kind) {
    case AT_LEX_LINE:
        check(len > 0, "empty line");
        check(len <= r->max_line, "line longer than max_line");
        check(data[len] == 0, "line not NUL-terminated");
        check(!memchr(data, '\r', len) && !memchr(data, '\n', len), "CR or LF inside a line");
        break;
    case AT_LEX_PROMPT:
        check(len == 1 && data[0] == '>', "prompt is not \">\"");
        break;
    case AT_LEX_BLOCK:
        check(r->block_want != SIZE_MAX, "block nobody asked for");
        check(len == r->block_want, "block of the wrong size");
        check(data[len] == 0, "block not NUL-terminated");
        r->block_want = SIZE_MAX;
        break;
    case AT_LEX_OVERFLOW:
        check(len == r->max_line, "overflow not of max_line bytes");
        check(data[len] == 0, "overflow data not NUL-terminated");
        break;
    default:
        check(false, "unknown event");
    }
    if (k < EV_MAX && r->n_data + len <= DATA_MAX) {
        r->ev[k] = (struct ev){kind, r->n_data, len};
        memcpy(r->data + r->n_data, data, len);
        r->n_data += len;
        r->n_ev++;
    } else {
        r->truncated = true;
        r->n_ev++;
    }

    ask = block_choice(r, k, &want);
    /* An empty block asking for another empty block would never end. */
    if (ask && want == 0 && kind == AT_LEX_BLOCK && len == 0)
        ask = false;
    if (!ask && kind == AT_LEX_LINE)
        ask = announced(data, len, &want);
    if (ask) {
        int rc = at_lexer_expect_block(r->lx, want);

        check(rc == 0 ? want <= r->max_block : want > r->max_block,
              "expect_block accepted/refused the wrong size");
        if (rc == 0)
            r->block_want = want;
    }
}

static void lex(struct run *r, const uint8_t *ctl, size_t n_ctl, size_t max_line,
                size_t max_block, const uint8_t *s, size_t n, int mode)
{
    size_t i = 0, k = 0;
    bool was_empty = false;

    r->ctl = ctl;
    r->n_ctl = n_ctl;
    r->max_line = max_line;
    r->max_block = max_block;
    r->n_ev = 0;
    r->n_data = 0;
    r->truncated = false;
    r->block_want = SIZE_MAX;
    r->lx = at_lexer_new(max_line, max_block, cb, r);
    check(r->lx != NULL, "at_lexer_new failed");
    while (i < n) {
        size_t chunk;

        if (mode == 0)
            chunk = n;
        else if (mode == 1)
            chunk = n_ctl ? ctl[k++ % n_ctl] % 9 : 1; /* 0: an empty feed */
        else
            chunk = 1;
        if (chunk == 0 && was_empty)
            chunk = 1; /* progress after an empty feed */
        was_empty = chunk == 0;
        if (chunk > n - i)
            chunk = n - i;
        at_lexer_feed(r->lx, s + i, chunk);
        i += chunk;
    }
    at_lexer_free(r->lx);
    r->lx = NULL;
}

static void same(const struct run *a, const struct run *b)
{
    size_t n = a->n_ev < b->n_ev ? a->n_ev : b->n_ev;

    if (!a->truncated && !b->truncated)
        check(a->n_ev == b->n_ev, "split feed: different number of events");
    if (n > EV_MAX)
        n = EV_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct ev *x = &a->ev[i], *y = &b->ev[i];

        if (x->off + x->len > a->n_data || y->off + y->len > b->n_data)
            break; /* beyond what was kept */
        check(x->kind == y->kind && x->len == y->len, "split feed: different event");
        check(memcmp(a->data + x->off, b->data + y->off, x->len) == 0,
              "split feed: different event data");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_ctl, max_line, max_block;
    const uint8_t *ctl, *s;

    if (size < 1)
        return 0;
    n_ctl = data[0] % 32;
    if (n_ctl > size - 1)
        n_ctl = size - 1;
    ctl = data + 1;
    s = data + 1 + n_ctl;
    /* Small bounds so overflows and refused blocks happen; the first
     * control byte picks them. */
    max_line = 1 + (n_ctl ? ctl[0] % 64 : 63);
    max_block = n_ctl > 1 ? ctl[1] % 48 : 40;
    for (int m = 0; m < 3; m++)
        lex(&runs[m], ctl, n_ctl, max_line, max_block, s, size - 1 - n_ctl, m);
    same(&runs[0], &runs[1]);
    same(&runs[0], &runs[2]);
    return 0;
}
