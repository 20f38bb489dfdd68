/* AT lexer: bytes -> line | prompt | block | overflow events.
 *
 * A byte-at-a-time state machine in the style of oFono's gatsyntax: every
 * decision depends only on the current byte and a few flags, so a transcript
 * split at any byte boundary yields the same events. Both buffers are
 * allocated once in at_lexer_new(); feeding never allocates. */
#include "at/lexer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct at_lexer {
    at_lex_cb cb;
    void *ctx;
    size_t max_line;
    size_t max_block;

    uint8_t *line; /* max_line + 1: room for the NUL */
    size_t len;
    /* The line overflowed: drop bytes until the next CR or LF. */
    bool discard;
    /* The previous byte was a CR that ended a line. A following LF belongs
     * to that terminator; this matters only for blocks, because an empty
     * line is never emitted anyway (which is also why CR CR LF works). */
    bool skip_lf;
    /* After a '>' prompt: one space belongs to it (27.005 sends "> "). */
    bool want_space;
    /* A '>' at line start is the prompt only while one is expected. */
    bool prompt_expected;

    bool in_block;
    size_t blk_want;
    size_t blk_got;
    uint8_t *blk; /* max_block + 1 */
};

struct at_lexer *at_lexer_new(size_t max_line, size_t max_block, at_lex_cb cb, void *ctx)
{
    struct at_lexer *lx;

    if (!cb || max_line == 0 || max_line >= SIZE_MAX / 2 || max_block >= SIZE_MAX / 2)
        return NULL;
    lx = calloc(1, sizeof(*lx));
    if (!lx)
        return NULL;
    lx->line = malloc(max_line + 1);
    if (!lx->line)
        goto err;
    lx->blk = malloc(max_block + 1);
    if (!lx->blk)
        goto err;
    lx->cb = cb;
    lx->ctx = ctx;
    lx->max_line = max_line;
    lx->max_block = max_block;
    return lx;

err:
    free(lx->line);
    free(lx);
    return NULL;
}

void at_lexer_free(struct at_lexer *lx)
{
    if (!lx)
        return;
    free(lx->blk);
    free(lx->line);
    free(lx);
}

void at_lexer_reset(struct at_lexer *lx)
{
    lx->len = 0;
    lx->discard = false;
    lx->skip_lf = false;
    lx->want_space = false;
    lx->prompt_expected = false;
    lx->in_block = false;
    lx->blk_want = 0;
    lx->blk_got = 0;
}

void at_lexer_expect_prompt(struct at_lexer *lx, bool on)
{
    lx->prompt_expected = on;
}

int at_lexer_expect_block(struct at_lexer *lx, size_t len)
{
    if (len > lx->max_block)
        return -EMSGSIZE;
    lx->in_block = true;
    lx->blk_want = len;
    lx->blk_got = 0;
    /* A space after a prompt is not part of a block that follows it. */
    lx->want_space = false;
    return 0;
}

/* The state is made consistent before each callback, because the callback
 * may call at_lexer_expect_block() or at_lexer_reset(). The buffer handed
 * out stays untouched until the callback returns. */
static void emit_block(struct at_lexer *lx)
{
    size_t n = lx->blk_got;

    lx->in_block = false;
    lx->blk_want = 0;
    lx->blk_got = 0;
    lx->blk[n] = 0;
    lx->cb(lx->ctx, AT_LEX_BLOCK, lx->blk, n);
}

static void end_line(struct at_lexer *lx, bool by_cr)
{
    size_t n = lx->len;

    lx->len = 0;
    lx->skip_lf = by_cr;
    if (lx->discard) {
        /* The overflow was reported when it happened; the tail is dropped. */
        lx->discard = false;
        return;
    }
    if (n == 0)
        return;
    lx->line[n] = 0;
    lx->cb(lx->ctx, AT_LEX_LINE, lx->line, n);
}

void at_lexer_feed(struct at_lexer *lx, const uint8_t *data, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (lx->in_block) {
            size_t take;

            if (lx->blk_got == lx->blk_want) {
                emit_block(lx); /* an empty block */
                continue;
            }
            /* "...,<n>\r\n<n bytes>": the LF of the announcing line's CR LF
             * is not data. Exactly one LF, and only right after that CR. */
            if (lx->skip_lf) {
                lx->skip_lf = false;
                if (data[i] == '\n') {
                    i++;
                    continue;
                }
            }
            take = lx->blk_want - lx->blk_got;
            if (take > len - i)
                take = len - i;
            memcpy(lx->blk + lx->blk_got, data + i, take);
            lx->blk_got += take;
            i += take;
            if (lx->blk_got == lx->blk_want)
                emit_block(lx);
            continue;
        }

        uint8_t c = data[i++];
        bool after_cr = lx->skip_lf;

        lx->skip_lf = false;
        if (lx->want_space) {
            lx->want_space = false;
            if (c == ' ')
                continue;
        }
        if (c == '\r' || c == '\n') {
            if (c == '\n' && after_cr)
                continue; /* the LF of CR LF */
            end_line(lx, c == '\r');
            continue;
        }
        if (lx->discard)
            continue;
        if (lx->len == 0 && c == '>' && lx->prompt_expected) {
            /* 27.005's "\r\n> " has no line end and CMQTT's ">" neither: the
             * module waits for our data, so the prompt cannot wait for one. */
            lx->want_space = true;
            lx->cb(lx->ctx, AT_LEX_PROMPT, (const uint8_t *)">", 1);
            continue;
        }
        if (lx->len == lx->max_line) {
            size_t n = lx->len;

            lx->len = 0;
            lx->discard = true;
            lx->line[n] = 0;
            lx->cb(lx->ctx, AT_LEX_OVERFLOW, lx->line, n);
            continue;
        }
        lx->line[lx->len++] = c;
    }
    /* A zero-length block requested by the last callback of this feed. */
    while (lx->in_block && lx->blk_want == 0)
        emit_block(lx);
}
