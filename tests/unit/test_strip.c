/* at/strip: a device server's registry and heartbeat packets taken out of
 * the modem's stream. Each case is fed whole, split in two at every byte
 * boundary, split in three at every pair of boundaries, and one byte at a
 * time; the output must be the same every time (the port delivers
 * whatever read() returned). Then the hold: bytes that might start a
 * packet wait at most AT_STRIP_HOLD_MS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "at/strip.h"
#include "core/hex.h"

#define MAC "\xD8\xB0\x4C\xFC\x00\x01"
#define HB "www.usr.cn"

struct strip_case {
    const char *name;
    const char *pkt[AT_STRIP_PACKETS];  /* hex_or_text's form; NULL: none */
    const char *in;
    size_t in_len;                      /* 0: strlen(in) */
    const char *out;
    size_t out_len;                     /* 0: strlen(out) */
    unsigned removed;
};

static const struct strip_case cases[] = {
    { "heartbeat inside a line", { "hex:D8B04CFC0001", HB },
      "\r\n+CMGS: 1" HB "2\r\n\r\nOK\r\n", 0, "\r\n+CMGS: 12\r\n\r\nOK\r\n", 0, 1 },
    { "MAC registry packet at connect", { "hex:D8B04CFC0001", HB },
      MAC "\r\nOK\r\n", 12, "\r\nOK\r\n", 0, 1 },
    { "MAC with a zero byte, then a heartbeat", { "hex:D8B04CFC0001", HB },
      MAC HB "AT\r\r\nOK\r\n", 6 + 10 + 9, "AT\r\r\nOK\r\n", 0, 2 },
    { "heartbeats back to back", { HB, NULL },
      "A" HB HB "B", 0, "AB", 0, 2 },
    { "a heartbeat after its own first letters", { HB, NULL },
      "+CUSD: 0,\"ww" HB "w\"\r\n", 0, "+CUSD: 0,\"www\"\r\n", 0, 1 },
    { "a packet's start that goes on differently passes", { HB, NULL },
      "+CMT: \"www.usr.c\",\"\"\r\n", 0, "+CMT: \"www.usr.c\",\"\"\r\n", 0, 0 },
    { "the longer of two packets that start alike", { "ab", "abc" },
      "xabcxabx", 0, "xxx", 0, 2 },
    { "a heartbeat with CR LF of its own", { "\r\nHB\r\n", NULL },
      "\r\nOK\r\n\r\nHB\r\n\r\n+CREG: 1\r\n", 0, "\r\nOK\r\n\r\n+CREG: 1\r\n", 0, 1 },
    { "no packets: everything passes", { NULL, NULL },
      "\r\nOK\r\n" HB, 0, "\r\nOK\r\n" HB, 0, 0 },
    { "a packet at the very end", { HB, NULL },
      "\r\nOK\r\n" HB, 0, "\r\nOK\r\n", 0, 1 },
};

static void setup_strip(struct at_strip *s, const struct strip_case *c)
{
    at_strip_init(s);
    for (size_t k = 0; k < AT_STRIP_PACKETS && c->pkt[k]; k++) {
        uint8_t p[AT_STRIP_MAX];
        size_t n = 0;

        assert_int_equal(hex_or_text(c->pkt[k], p, AT_STRIP_MAX, &n), 0);
        assert_int_equal(at_strip_add(s, p, n), 0);
    }
}

/* Feeds in at the cut points (ascending, ncut of them), each piece gap
 * milliseconds after the one before (no timer ran in between: the loop
 * was busy), then releases what is held at the end; the output into
 * out. */
static size_t run(const struct strip_case *c, const size_t *cuts, size_t ncut, int64_t gap,
                  uint8_t *out, uint64_t *removed)
{
    struct at_strip s;
    size_t len = c->in_len ? c->in_len : strlen(c->in), from = 0, o = 0;

    setup_strip(&s, c);
    for (size_t k = 0; k <= ncut; k++) {
        size_t to = k < ncut ? cuts[k] : len;

        o += at_strip_feed(&s, (const uint8_t *)c->in + from, to - from, out + o,
                           (int64_t)k * gap);
        from = to;
    }
    o += at_strip_release(&s, out + o, (int64_t)(ncut + 1) * gap + AT_STRIP_HOLD_MS);
    *removed = s.removed;
    return o;
}

/* The same output whether the pieces came at once or each one after the
 * hold time: bytes that were held too long are still matched with the
 * bytes that came after them, if those are in hand before the timer. */
static void check(const struct strip_case *c, const size_t *cuts, size_t ncut)
{
    static const int64_t gaps[] = { 0, AT_STRIP_HOLD_MS, 5 * AT_STRIP_HOLD_MS };
    size_t want = c->out_len ? c->out_len : strlen(c->out);

    for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        uint8_t out[256];
        uint64_t removed;
        size_t n = run(c, cuts, ncut, gaps[g], out, &removed);

        if (n != want || memcmp(out, c->out, want) != 0 || removed != c->removed)
            fail_msg("%s: cut at %zu/%zu (%zu cuts, %lld ms apart): %zu bytes out, "
                     "%llu removed", c->name, ncut ? cuts[0] : 0, ncut > 1 ? cuts[1] : 0,
                     ncut, (long long)gaps[g], n, (unsigned long long)removed);
    }
}

static void test_splits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct strip_case *c = &cases[i];
        size_t len = c->in_len ? c->in_len : strlen(c->in);
        size_t cuts[256];

        check(c, NULL, 0);
        for (size_t a = 0; a <= len; a++) {
            check(c, &a, 1);
            for (size_t b = a; b <= len; b++)
                check(c, (size_t[]){ a, b }, 2);
        }
        for (size_t k = 0; k < len; k++)
            cuts[k] = k;
        check(c, cuts, len);
    }
}

/* Bytes that might start a heartbeat wait AT_STRIP_HOLD_MS at most,
 * counted from the last of them, and go out as they are. */
static void test_hold_is_bounded(void **state)
{
    struct at_strip s;
    uint8_t out[128];

    (void)state;
    at_strip_init(&s);
    assert_int_equal(at_strip_add(&s, (const uint8_t *)HB, strlen(HB)), 0);
    assert_int_equal(at_strip_due(&s), -1);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"OK\r\nww", 6, out, 1000), 4);
    assert_memory_equal(out, "OK\r\n", 4);
    assert_int_equal(at_strip_due(&s), 1000 + AT_STRIP_HOLD_MS);
    /* More of the same start: still held, now due from the last byte. */
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"w.", 2, out, 1150), 0);
    assert_int_equal(at_strip_due(&s), 1150 + AT_STRIP_HOLD_MS);
    assert_int_equal(at_strip_release(&s, out, 1150 + AT_STRIP_HOLD_MS - 1), 0);
    assert_int_equal(at_strip_release(&s, out, 1150 + AT_STRIP_HOLD_MS), 4);
    assert_memory_equal(out, "www.", 4);
    assert_int_equal(at_strip_due(&s), -1);
    /* The rest of a packet after the hold ran out is no packet any more. */
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"usr.cn", 6, out, 2000), 6);
    /* Late bytes that are no packet's rest: the held ones go out as they
     * are, ahead of them. */
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"www", 3, out, 3000), 0);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"\r\n", 2, out, 3000 + AT_STRIP_HOLD_MS),
                     5);
    assert_memory_equal(out, "www\r\n", 5);
    /* Completed in time: gone. */
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"1ww", 3, out, 4000), 1);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"w.usr.cn2", 9, out, 4100), 1);
    assert_int_equal(out[0], '2');
    assert_int_equal(s.removed, 1);
}

/* The loop was busy past the hold time: the read that brings a packet's
 * rest still comes before the timer, and completes the packet. */
static void test_late_rest_completes_packet(void **state)
{
    struct at_strip s;
    uint8_t out[128];

    (void)state;
    at_strip_init(&s);
    assert_int_equal(at_strip_add(&s, (const uint8_t *)HB, strlen(HB)), 0);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"\r\nOK\r\nwww.u", 11, out, 1000), 6);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"sr.cn\r\nOK\r\n", 11, out, 1250), 6);
    assert_memory_equal(out, "\r\nOK\r\n", 6);
    assert_int_equal(s.removed, 1);
    assert_int_equal(at_strip_due(&s), -1);
    /* Late and still undecided: held, due from the last byte, then the
     * timer lets everything out at once. */
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"www", 3, out, 2000), 0);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)".us", 3, out, 2300), 0);
    assert_int_equal(at_strip_due(&s), 2300 + AT_STRIP_HOLD_MS);
    assert_int_equal(at_strip_release(&s, out, 2300 + AT_STRIP_HOLD_MS - 1), 0);
    assert_int_equal(at_strip_release(&s, out, 2300 + AT_STRIP_HOLD_MS), 6);
    assert_memory_equal(out, "www.us", 6);
}

/* The rest of a packet in two late pieces: the port reads the first
 * (still undecided), finds the fd empty and lets out what is due; that
 * must not be the packet's start, since the last bytes just came. */
static void test_late_rest_in_two_pieces(void **state)
{
    struct at_strip s;
    uint8_t out[128];

    (void)state;
    at_strip_init(&s);
    assert_int_equal(at_strip_add(&s, (const uint8_t *)HB, strlen(HB)), 0);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"\r\nOK\r\nwww.u", 11, out, 1000), 6);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"sr.", 3, out, 1250), 0);
    assert_int_equal(at_strip_due(&s), 1250 + AT_STRIP_HOLD_MS);
    assert_int_equal(at_strip_release(&s, out, 1250), 0);
    assert_int_equal(at_strip_feed(&s, (const uint8_t *)"cn\r\nOK\r\n", 8, out, 1260), 6);
    assert_memory_equal(out, "\r\nOK\r\n", 6);
    assert_int_equal(s.removed, 1);
    assert_int_equal(at_strip_due(&s), -1);
}

static void test_parse(void **state)
{
    static const struct {
        const char *spec;
        int rc;
        size_t len;
        const char *bytes;
    } t[] = {
        { "hex:D8B04CFC0001", 0, 6, MAC },
        { "hex:d8b04cfc0001", 0, 6, MAC },
        { "www.usr.cn", 0, 10, HB },
        { "hex:0D0A", 0, 2, "\r\n" },
        { "0123456789012345678901234567890123456789", 0, 40,
          "0123456789012345678901234567890123456789" },
        { "01234567890123456789012345678901234567890", -EINVAL, 0, NULL },
        { "hex:00112233445566778899001122334455667788990011223344556677889900112233445566"
          "7788990011", -EINVAL, 0, NULL },
        { "", -EINVAL, 0, NULL },
        { "hex:", -EINVAL, 0, NULL },
        { "hex:0", -EINVAL, 0, NULL },
        { "hex:zz", -EINVAL, 0, NULL },
    };
    uint8_t out[AT_STRIP_MAX];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = hex_or_text(t[i].spec, out, AT_STRIP_MAX, &n);
        if (rc != t[i].rc)
            fail_msg("%s: %d", t[i].spec, rc);
        if (rc == 0) {
            assert_int_equal(n, t[i].len);
            assert_memory_equal(out, t[i].bytes, n);
        }
    }
}

static void test_add_limits(void **state)
{
    struct at_strip s;
    uint8_t p[AT_STRIP_MAX + 1] = { 0 };

    (void)state;
    at_strip_init(&s);
    assert_int_equal(at_strip_add(&s, p, 0), -EINVAL);
    assert_int_equal(at_strip_add(&s, p, AT_STRIP_MAX + 1), -EINVAL);
    assert_int_equal(at_strip_add(&s, p, AT_STRIP_MAX), 0);
    assert_int_equal(at_strip_add(&s, p, 1), 0);
    assert_int_equal(at_strip_add(&s, p, 1), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_hold_is_bounded),
        cmocka_unit_test(test_late_rest_completes_packet),
        cmocka_unit_test(test_late_rest_in_two_pieces),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_add_limits),
    };
    return cmocka_run_group_tests_name("unit_strip", tests, NULL, NULL);
}
