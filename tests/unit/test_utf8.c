/* core/utf8 (table-driven): validation and repair of module text that goes
 * into JSON, and the UCS-2 hex decoder the USSD, status and call services
 * share (what the A7670 prints with AT+CSCS="UCS2"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"

/* Module text in, what goes into the JSON out. */
static const struct {
    const char *in;
    size_t len;        /* 0: strlen(in) */
    const char *out;
} repair_cases[] = {
    /* valid text is copied as it is */
    {"Sim Telecom", 0, "Sim Telecom"},
    {"", 0, ""},
    {"Telef\xc3\xb3nica", 0, "Telef\xc3\xb3nica"},
    {"\xe2\x82\xac \xf0\x9f\x98\x80", 0, "\xe2\x82\xac \xf0\x9f\x98\x80"},
    {"a\0b", 3, "a\0b"},
    /* a lone byte 0xA0-0xFF is Latin-1: what the A7670 sends for operator names */
    {"Telef\xf3nica", 0, "Telef\xc3\xb3nica"},
    {"\xa0", 0, "\xc2\xa0"},
    {"\xff", 0, "\xc3\xbf"},
    {"caf\xe9", 0, "caf\xc3\xa9"},
    {"\xc4\xe4\xd6\xf6\xdc\xfc\xdf", 0, "\xc3\x84\xc3\xa4\xc3\x96\xc3\xb6\xc3\x9c\xc3\xbc\xc3\x9f"},
    /* valid UTF-8 next to a Latin-1 byte stays what it is */
    {"\xc3\xa9\xe9", 0, "\xc3\xa9\xc3\xa9"},
    /* a lead byte whose sequence is cut or broken: Latin-1 as well */
    {"\xc3", 0, "\xc3\x83"},
    {"\xc3(", 0, "\xc3\x83("},
    {"\xe2\x82", 0, "\xc3\xa2\xef\xbf\xbd"},
    /* 0x80-0x9F (C1 controls in Latin-1, stray continuation bytes): U+FFFD */
    {"\x80", 0, "\xef\xbf\xbd"},
    {"a\x85z", 0, "a\xef\xbf\xbdz"},
    {"\x9f\xa0", 0, "\xef\xbf\xbd\xc2\xa0"},
    /* overlong, surrogate, beyond U+10FFFF: never decoded as what they
     * would encode ('/', U+D800, ...), byte by byte by the same two rules */
    {"\xc0\xaf", 0, "\xc3\x80\xc2\xaf"},
    {"\xed\xa0\x80", 0, "\xc3\xad\xc2\xa0\xef\xbf\xbd"},
    {"\xf4\x90\x80\x80", 0, "\xc3\xb4\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf8\x88\x80\x80\x80", 0,
     "\xc3\xb8\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
};

static void test_repair_table(void **state)
{
    (void)state;
    size_t failed = 0;

    for (size_t i = 0; i < sizeof repair_cases / sizeof repair_cases[0]; i++) {
        const uint8_t *in = (const uint8_t *)repair_cases[i].in;
        size_t n = repair_cases[i].len ? repair_cases[i].len : strlen(repair_cases[i].in);
        size_t want = repair_cases[i].len ? repair_cases[i].len : strlen(repair_cases[i].out);
        uint8_t out[64];

        memset(out, 0x55, sizeof out);
        size_t got = utf8_repair(in, n, out, sizeof out);
        if (got != want || memcmp(out, repair_cases[i].out, want) != 0 || out[got] != 0x55 ||
            !utf8_valid(out, got) || got > 3 * n || utf8_repair(in, n, NULL, 0) != got) {
            print_error("case %zu: got %zu bytes \"%.*s\"\n", i, got, (int)got, (char *)out);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* A buffer too small: whole characters only, the full length returned. */
static void test_repair_cut(void **state)
{
    (void)state;
    const uint8_t in[] = "ab\xf3\xc3\xa9";   /* a b ó é: 1+1+2+2 bytes out */
    uint8_t out[8];

    for (size_t cap = 0; cap <= 6; cap++) {
        static const size_t whole[] = {0, 1, 2, 2, 4, 4, 6};
        memset(out, 0x55, sizeof out);
        assert_int_equal(utf8_repair(in, 5, out, cap), 6);
        assert_int_equal(out[whole[cap]], 0x55);
        assert_true(utf8_valid(out, whole[cap]));
    }
    /* the worst case is 3 bytes out per byte in */
    const uint8_t bad[] = {0x80, 0x81, 0x82};
    assert_int_equal(utf8_repair(bad, 3, NULL, 0), 9);
}

static void test_decode(void **state)
{
    (void)state;
    static const struct { const char *s; uint32_t cp; } cases[] = {
        {"A", 0x41}, {"\xc2\x85", 0x85}, {"\xc3\xb3", 0xF3}, {"\xef\xbf\xbf", 0xFFFF},
        {"\xef\xb7\x90", 0xFDD0}, {"\xf0\x9f\x98\x80", 0x1F600}, {"\xf4\x8f\xbf\xbf", 0x10FFFF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = (const uint8_t *)cases[i].s;
        size_t k = utf8_seq(p, strlen(cases[i].s));
        assert_int_equal(k, strlen(cases[i].s));
        assert_int_equal(utf8_decode(p, k), cases[i].cp);
    }
}

struct ucs2_case {
    const char *name;
    const char *hex;
    int ret;              /* UTF-8 length, or the negative errno */
    const char *utf8;     /* NULL on failure (out must then be "") */
};

static const struct ucs2_case cases[] = {
    { "empty", "", 0, "" },
    { "ascii", "00480069", 2, "Hi" },
    { "lower-case hex", "00e4", 2, "\xC3\xA4" },
    { "umlauts and euro", "00C400D620AC", 7, "\xC3\x84\xC3\x96\xE2\x82\xAC" },
    { "cyrillic", "041F04400438043204350442", 12,
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82" },
    { "surrogate pair", "D83DDE00", 4, "\xF0\x9F\x98\x80" },
    { "highest code point", "DBFFDFFF", 4, "\xF4\x8F\xBF\xBF" },
    { "BMP top", "FFFD", 3, "\xEF\xBF\xBD" },
    /* Line breaks and quotes are just characters: in hex they never reach
     * the line as such. */
    { "line break and quote", "00780022000A", 3, "x\"\n" },
    { "international number", "002B0034003900330030", 5, "+4930" },
    { "odd length", "00410", -EINVAL, NULL },
    { "not a multiple of 4", "004100", -EINVAL, NULL },
    { "not hex", "00G1", -EINVAL, NULL },
    { "plain text", "Hello", -EINVAL, NULL },
    { "plain number", "+4930123456", -EINVAL, NULL },
    { "NUL", "0000", -EINVAL, NULL },
    { "lone high surrogate", "D83D0041", -EINVAL, NULL },
    { "high surrogate at the end", "0041D83D", -EINVAL, NULL },
    { "lone low surrogate", "DE00", -EINVAL, NULL },
    { "two high surrogates", "D83DD83D", -EINVAL, NULL },
};

static void test_ucs2_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ucs2_case *c = &cases[i];
        char out[64];
        int ret;

        memset(out, 'x', sizeof(out));
        ret = utf8_from_ucs2_hex(c->hex, strlen(c->hex), out, sizeof(out));
        if (ret != c->ret)
            fail_msg("%s: returned %d, want %d", c->name, ret, c->ret);
        if (strcmp(out, c->utf8 ? c->utf8 : "") != 0)
            fail_msg("%s: got '%s'", c->name, out);
    }
}

/* The input is bounded by n, not by a NUL: a line is not read past. */
static void test_ucs2_length_bound(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(utf8_from_ucs2_hex("00410042", 4, out, sizeof(out)), 1);
    assert_string_equal(out, "A");
    /* A surrogate pair cut by n is a lone surrogate. */
    assert_int_equal(utf8_from_ucs2_hex("D83DDE00", 4, out, sizeof(out)), -EINVAL);
}

/* Output bounds: the longest that fits is kept whole; one more character is
 * refused, never cut into half a character. */
static void test_ucs2_out_bound(void **state)
{
    char out[8];

    (void)state;
    /* Two euro signs: 6 bytes and the NUL fit into 7. */
    assert_int_equal(utf8_from_ucs2_hex("20AC20AC", 8, out, 7), 6);
    assert_string_equal(out, "\xE2\x82\xAC\xE2\x82\xAC");
    assert_int_equal(utf8_from_ucs2_hex("20AC20AC", 8, out, 6), -EMSGSIZE);
    assert_string_equal(out, "");
    assert_int_equal(utf8_from_ucs2_hex("0041", 4, out, 1), -EMSGSIZE);
    assert_int_equal(utf8_from_ucs2_hex("", 0, out, 1), 0);
    assert_int_equal(utf8_from_ucs2_hex("0041", 4, out, 0), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repair_table),
        cmocka_unit_test(test_repair_cut),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_ucs2_table),
        cmocka_unit_test(test_ucs2_length_bound),
        cmocka_unit_test(test_ucs2_out_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
