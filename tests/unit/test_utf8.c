/* Unit tests of UTF-8 validation and repair (bridge/core/utf8.[ch]). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repair_table),
        cmocka_unit_test(test_repair_cut),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
