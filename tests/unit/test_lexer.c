/* at/lexer: table-driven transcripts, each fed whole, split in two at every
 * byte boundary, and one byte at a time; the event trace must be the same.
 *
 * Trace: "L:<line>" "P" "B:<block>" "O:<dropped prefix length>" and
 * "E:<errno>" when expect_block refused; bytes outside 0x20..0x7e as \xNN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/lexer.h"

#define TRACE_MAX 8192

struct harness {
    struct at_lexer *lx;
    char trace[TRACE_MAX];
    size_t n;
};

static void put(struct harness *h, const char *s)
{
    size_t len = strlen(s);

    assert_true(h->n + len < TRACE_MAX);
    memcpy(h->trace + h->n, s, len + 1);
    h->n += len;
}

static void put_escaped(struct harness *h, const uint8_t *d, size_t len)
{
    char b[8];

    for (size_t i = 0; i < len; i++) {
        if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '\\')
            snprintf(b, sizeof(b), "%c", d[i]);
        else
            snprintf(b, sizeof(b), "\\x%02x", d[i]);
        put(h, b);
    }
}

/* "+CMQTTRXTOPIC: 0,<n>" / "+CMQTTRXPAYLOAD: 0,<n>" announce n raw bytes. */
static void maybe_expect(struct harness *h, const char *line)
{
    const char *comma;
    char b[32];
    int rc;

    if (strncmp(line, "+CMQTTRXTOPIC:", 14) != 0 && strncmp(line, "+CMQTTRXPAYLOAD:", 16) != 0)
        return;
    comma = strrchr(line, ',');
    assert_non_null(comma);
    rc = at_lexer_expect_block(h->lx, strtoul(comma + 1, NULL, 10));
    if (rc != 0) {
        snprintf(b, sizeof(b), "E:%d\n", rc);
        put(h, b);
    }
}

static void cb(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len)
{
    struct harness *h = ctx;
    char b[32];

    switch (ev) {
    case AT_LEX_LINE:
        assert_int_equal(data[len], 0);
        assert_true(len > 0);
        put(h, "L:");
        put_escaped(h, data, len);
        put(h, "\n");
        maybe_expect(h, (const char *)data);
        break;
    case AT_LEX_PROMPT:
        put(h, "P\n");
        break;
    case AT_LEX_BLOCK:
        put(h, "B:");
        put_escaped(h, data, len);
        put(h, "\n");
        break;
    case AT_LEX_OVERFLOW:
        snprintf(b, sizeof(b), "O:%zu\n", len);
        put(h, b);
        break;
    default:
        fail();
    }
}

struct lex_case {
    const char *name;
    const char *in;
    size_t len;
    const char *want;
    /* The chat expects no data prompt now: '>' is text. */
    bool no_prompt;
};

#define IN(lit) lit, sizeof(lit) - 1

#define MAX_LINE 32
#define MAX_BLOCK 40

static const struct lex_case cases[] = {
    {"crlf", IN("\r\nOK\r\n"), "L:OK\n"},
    {"bare cr and lf", IN("ATE0\rOK\rA\nB\n"), "L:ATE0\nL:OK\nL:A\nL:B\n"},
    {"empty lines dropped", IN("\r\n\r\n\n\r\r\r\nX\r\n\r\n"), "L:X\n"},
    {"echo on then ATE0", IN("ATE0\r\r\nOK\r\n\r\n+CSQ: 14,99\r\n\r\nOK\r\n"),
     "L:ATE0\nL:OK\nL:+CSQ: 14,99\nL:OK\n"},
    {"sim7600 cr cr lf", IN("\r\nRDY\r\r\n\r\n+CPIN: READY\r\r\n\r\nSMS DONE\r\r\n"),
     "L:RDY\nL:+CPIN: READY\nL:SMS DONE\n"},
    {"urc inside a response",
     IN("AT+CSQ\r\r\n+CMTI: \"SM\",3\r\n+CSQ: 14,99\r\n\r\nOK\r\n"),
     "L:AT+CSQ\nL:+CMTI: \"SM\",3\nL:+CSQ: 14,99\nL:OK\n"},
    {"cmgs prompt", IN("AT+CMGS=23\r\r\n> \r\n+CMGS: 5\r\n\r\nOK\r\n"),
     "L:AT+CMGS=23\nP\nL:+CMGS: 5\nL:OK\n"},
    {"prompt eats one space only", IN("\r\n>  x\r\n"), "P\nL: x\n"},
    {"prompt without space (cmqtt)", IN("\r\n>\r\nOK\r\n"), "P\nL:OK\n"},
    {"prompt at stream start", IN(">ab\r\n"), "P\nL:ab\n"},
    {"gt inside a line is text", IN("a>b\r\n> >\r\n"), "L:a>b\nP\nP\n"},
    {"nul inside a line", IN("a\0b\r\n"), "L:a\\x00b\n"},
    {"exactly max_line", IN("0123456789abcdef0123456789ABCDEF\r\nOK\r\n"),
     "L:0123456789abcdef0123456789ABCDEF\nL:OK\n"},
    {"overflow then recovery",
     IN("0123456789abcdef0123456789ABCDEFx>yz\r\n\r\nOK\r\n> \r\n"),
     "O:32\nL:OK\nP\n"},
    {"overflow ended by bare lf", IN("0123456789abcdef0123456789ABCDEF0\nOK\r"),
     "O:32\nL:OK\n"},
    {"cmqtt rx with cr lf nul in blocks",
     IN("\r\n+CMQTTRXSTART: 0,5,9\r\n+CMQTTRXTOPIC: 0,5\r\na/b\r\n\r\n"
        "+CMQTTRXPAYLOAD: 0,9\r\n\r\nOK\0\r\n>\n\r\n+CMQTTRXEND: 0\r\n"),
     "L:+CMQTTRXSTART: 0,5,9\nL:+CMQTTRXTOPIC: 0,5\nB:a/b\\x0d\\x0a\n"
     "L:+CMQTTRXPAYLOAD: 0,9\nB:\\x0d\\x0aOK\\x00\\x0d\\x0a>\\x0a\nL:+CMQTTRXEND: 0\n"},
    {"block after bare cr: only one lf skipped",
     IN("+CMQTTRXPAYLOAD: 0,3\r\n\nab\r\n"), "L:+CMQTTRXPAYLOAD: 0,3\nB:\\x0aab\n"},
    {"block after bare cr, no lf", IN("+CMQTTRXPAYLOAD: 0,3\rabc\r\nOK\r\n"),
     "L:+CMQTTRXPAYLOAD: 0,3\nB:abc\nL:OK\n"},
    {"block after bare lf keeps a leading lf", IN("+CMQTTRXPAYLOAD: 0,2\n\nx\nOK\n"),
     "L:+CMQTTRXPAYLOAD: 0,2\nB:\\x0ax\nL:OK\n"},
    {"block of a prompt and space", IN("+CMQTTRXPAYLOAD: 0,2\r\n> OK\r\n"),
     "L:+CMQTTRXPAYLOAD: 0,2\nB:> \nL:OK\n"},
    {"empty block", IN("+CMQTTRXPAYLOAD: 0,0\r\n\r\n+CMQTTRXEND: 0\r\n"),
     "L:+CMQTTRXPAYLOAD: 0,0\nB:\nL:+CMQTTRXEND: 0\n"},
    {"empty block at the end of the stream", IN("+CMQTTRXPAYLOAD: 0,0\r"),
     "L:+CMQTTRXPAYLOAD: 0,0\nB:\n"},
    {"block at max_block",
     IN("+CMQTTRXPAYLOAD: 0,40\r\n0123456789012345678901234567890123456789\r\n"),
     "L:+CMQTTRXPAYLOAD: 0,40\nB:0123456789012345678901234567890123456789\n"},
    {"block too large stays lines", IN("+CMQTTRXPAYLOAD: 0,41\r\nabc\r\n"),
     "L:+CMQTTRXPAYLOAD: 0,41\nE:-90\nL:abc\n"},
    /* A USSD menu line is not a prompt when no command waits for one: the
     * pending data of a command must never be written in command mode. */
    {"no prompt expected: '>' is text", IN("\r\n> 1 Balance\r\n>\r\n"),
     "L:> 1 Balance\nL:>\n", true},
    {"no prompt expected: cmgs answer", IN("\r\n> \r\n+CMGS: 5\r\n\r\nOK\r\n"),
     "L:> \nL:+CMGS: 5\nL:OK\n", true},
};

static void run(const struct lex_case *c, size_t split, bool bytewise, const char *mode)
{
    struct harness h = {0};

    h.lx = at_lexer_new(MAX_LINE, MAX_BLOCK, cb, &h);
    assert_non_null(h.lx);
    at_lexer_expect_prompt(h.lx, !c->no_prompt);
    if (bytewise) {
        for (size_t i = 0; i < c->len; i++)
            at_lexer_feed(h.lx, (const uint8_t *)c->in + i, 1);
    } else {
        at_lexer_feed(h.lx, (const uint8_t *)c->in, split);
        at_lexer_feed(h.lx, (const uint8_t *)c->in + split, c->len - split);
    }
    if (strcmp(h.trace, c->want) != 0) {
        print_error("case '%s' (%s, split %zu):\n--- want\n%s--- got\n%s", c->name, mode, split,
                    c->want, h.trace);
        fail();
    }
    at_lexer_free(h.lx);
}

static void test_transcripts(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct lex_case *c = &cases[k];

        run(c, c->len, false, "whole");
        for (size_t s = 0; s <= c->len; s++)
            run(c, s, false, "split");
        run(c, 0, true, "bytewise");
    }
}

static void test_reset_drops_partial_line_and_block(void **state)
{
    struct harness h = {0};

    (void)state;
    h.lx = at_lexer_new(MAX_LINE, MAX_BLOCK, cb, &h);
    assert_non_null(h.lx);
    at_lexer_expect_prompt(h.lx, true);
    at_lexer_feed(h.lx, (const uint8_t *)"+CSQ: 1", 7);
    at_lexer_reset(h.lx);
    at_lexer_feed(h.lx, (const uint8_t *)"OK\r\n+CMQTTRXPAYLOAD: 0,5\r\nab", 28);
    at_lexer_reset(h.lx);
    /* After a reset no prompt is expected any more and no block is pending. */
    at_lexer_feed(h.lx, (const uint8_t *)"> x\r\n", 5);
    /* '>' is at line start again. */
    at_lexer_expect_prompt(h.lx, true);
    at_lexer_feed(h.lx, (const uint8_t *)"> y\r\n", 5);
    assert_string_equal(h.trace, "L:OK\nL:+CMQTTRXPAYLOAD: 0,5\nL:> x\nP\nL:y\n");
    at_lexer_free(h.lx);
}

static void test_expect_block_bounds(void **state)
{
    struct harness h = {0};

    (void)state;
    h.lx = at_lexer_new(MAX_LINE, MAX_BLOCK, cb, &h);
    assert_int_equal(at_lexer_expect_block(h.lx, MAX_BLOCK + 1), -EMSGSIZE);
    /* Nothing changed: still lines. */
    at_lexer_feed(h.lx, (const uint8_t *)"abc\r\n", 5);
    assert_int_equal(at_lexer_expect_block(h.lx, 2), 0);
    at_lexer_feed(h.lx, (const uint8_t *)"\r\nde\r\n", 6);
    /* Outside a callback the block starts with the next byte (no CR before
     * it, so the CR LF is data). */
    assert_string_equal(h.trace, "L:abc\nB:\\x0d\\x0a\nL:de\n");
    at_lexer_free(h.lx);
}

static void test_new_rejects(void **state)
{
    (void)state;
    assert_null(at_lexer_new(0, 10, cb, NULL));
    assert_null(at_lexer_new(10, 10, NULL, NULL));
    at_lexer_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transcripts),
        cmocka_unit_test(test_reset_drops_partial_line_and_block),
        cmocka_unit_test(test_expect_block_bounds),
        cmocka_unit_test(test_new_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
