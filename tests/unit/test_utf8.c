/* core/utf8: the UCS-2 hex decoder the USSD, status and call services share
 * (table-driven: what the A7670 prints with AT+CSCS="UCS2"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"

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
        cmocka_unit_test(test_ucs2_table),
        cmocka_unit_test(test_ucs2_length_bound),
        cmocka_unit_test(test_ucs2_out_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
