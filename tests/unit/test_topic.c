/* Unit tests of the MQTT topic rules (bridge/core/topic.[ch]). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/topic.h"

#define OK NULL
#define EMPTY "must not be empty"
#define UTF8 "must be valid UTF-8"
#define CTRL "must not contain control characters (U+0000-U+001F, U+007F-U+009F)"
#define NONCHAR "must not contain Unicode noncharacters (U+FFFE, U+FFFF, U+FDD0-U+FDEF)"
#define WILD "must not contain '+' or '#' (a topic name, not a filter)"
#define LEVEL "must use '+' and '#' only as whole levels, '#' only as the last"

static const struct {
    const char *t;
    size_t len;          /* 0: strlen(t) */
    const char *name;    /* topic_check(filter false) */
    const char *filter;  /* topic_check(filter true) */
} cases[] = {
    {"a", 0, OK, OK},
    {"a/b/c", 0, OK, OK},
    {"/a", 0, OK, OK},
    {"a/", 0, OK, OK},
    {"a//b", 0, OK, OK},
    {"$SYS/x", 0, OK, OK},
    {"caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", 0, OK, OK},
    {"\xc2\xa0", 0, OK, OK},             /* U+00A0: first after C1 */
    {" ", 0, OK, OK},
    {"~", 0, OK, OK},                    /* U+007E: last before DEL */
    {"\xef\xbf\xbd", 0, OK, OK},         /* U+FFFD */
    {"\xef\xb7\x8f\xef\xb7\xb0", 0, OK, OK}, /* U+FDCF, U+FDF0 */
    /* wildcards */
    {"+", 0, WILD, OK},
    {"#", 0, WILD, OK},
    {"a/+/c", 0, WILD, OK},
    {"a/#", 0, WILD, OK},
    {"+/+", 0, WILD, OK},
    {"a/+/#", 0, WILD, OK},
    {"a#", 0, WILD, LEVEL},
    {"a/#/b", 0, WILD, LEVEL},
    {"a/b+", 0, WILD, LEVEL},
    {"+a", 0, WILD, LEVEL},
    {"##", 0, WILD, LEVEL},
    {"#/", 0, WILD, LEVEL},
    /* empty */
    {"", 0, EMPTY, EMPTY},
    /* U+0000, C0, DEL, C1 */
    {"a\0b", 3, CTRL, CTRL},
    {"a\x01", 0, CTRL, CTRL},
    {"a\tb", 0, CTRL, CTRL},
    {"a\x1f", 0, CTRL, CTRL},
    {"a\x7f", 0, CTRL, CTRL},
    {"a\xc2\x80", 0, CTRL, CTRL},        /* U+0080 */
    {"a/\xc2\x85/b", 0, CTRL, CTRL},     /* U+0085 NEL */
    {"\xc2\x9f", 0, CTRL, CTRL},         /* U+009F */
    /* noncharacters */
    {"a\xef\xbf\xbe", 0, NONCHAR, NONCHAR}, /* U+FFFE */
    {"a\xef\xbf\xbf", 0, NONCHAR, NONCHAR}, /* U+FFFF */
    {"\xef\xb7\x90", 0, NONCHAR, NONCHAR},  /* U+FDD0 */
    {"\xef\xb7\xaf", 0, NONCHAR, NONCHAR},  /* U+FDEF */
    {"\xf0\x9f\xbf\xbe", 0, NONCHAR, NONCHAR}, /* U+1FFFE */
    {"\xf4\x8f\xbf\xbf", 0, NONCHAR, NONCHAR}, /* U+10FFFF */
    /* not UTF-8 */
    {"\xff", 0, UTF8, UTF8},
    {"Telef\xf3nica", 0, UTF8, UTF8},
    {"\xc0\xaf", 0, UTF8, UTF8},          /* overlong '/' */
    {"\xed\xa0\x80", 0, UTF8, UTF8},      /* a surrogate */
    {"a\xc3", 0, UTF8, UTF8},             /* cut */
};

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void test_table(void **state)
{
    (void)state;
    size_t failed = 0;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].t);
        const char *name = topic_check(cases[i].t, n, false);
        const char *filter = topic_check(cases[i].t, n, true);
        if (!same(name, cases[i].name) || !same(filter, cases[i].filter)) {
            print_error("case %zu: name \"%s\", filter \"%s\"\n", i, name ? name : "ok",
                        filter ? filter : "ok");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* Only n bytes are read: the text is not NUL-terminated. */
static void test_length(void **state)
{
    (void)state;
    assert_null(topic_check("a/b#", 3, false));
    assert_null(topic_check("a\xc2\x85", 1, false));
    assert_string_equal(topic_check("a", 0, true), EMPTY);
    assert_string_equal(topic_check(NULL, 0, true), EMPTY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
