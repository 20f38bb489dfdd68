/* core/dedup: the digests of pending commands, for broker redeliveries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/dedup.h"

static void test_digest(void **state)
{
    char key[18];

    (void)state;
    /* FNV-1a 64 of "" and a NUL: the topic's terminator counts. */
    assert_true(dedup_digest("", "", 0) == 0xaf63bd4c8601b7dfu);
    /* Topic and payload are separated: moving a byte across changes it. */
    assert_true(dedup_digest("m/sms/send", "{}", 2) != dedup_digest("m/sms/send{", "}", 1));
    assert_true(dedup_digest("m/sms/send", "{}", 2) == dedup_digest("m/sms/send", "{}", 2));
    /* The payload is binary: a NUL inside counts, nothing after len does. */
    assert_true(dedup_digest("t", "a\0b", 3) != dedup_digest("t", "a\0c", 3));
    assert_true(dedup_digest("t", "abX", 2) == dedup_digest("t", "abY", 2));
    dedup_key(0x0123456789abcdefu, key);
    assert_string_equal(key, "c0123456789abcdef");
}

static void test_pending(void **state)
{
    struct dedup *d = dedup_new();

    (void)state;
    assert_non_null(d);
    assert_false(dedup_pending(d, 42));
    for (uint64_t i = 1; i <= 100; i++)
        assert_int_equal(dedup_add(d, 1000 + i, i), 0);
    assert_true(dedup_pending(d, 1042));
    dedup_remove(d, 42);
    assert_false(dedup_pending(d, 1042));
    assert_true(dedup_pending(d, 1100));
    dedup_remove(d, 4242); /* unknown: nothing happens */
    assert_true(dedup_pending(d, 1001));
    dedup_free(d);
    dedup_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_pending),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
