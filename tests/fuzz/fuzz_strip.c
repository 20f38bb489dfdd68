/* libFuzzer target: at/strip (a device server's packets taken out of the
 * modem's stream).
 *
 * Input: two length bytes A and B (each mod 41; 0: no such packet), A
 * bytes of the first packet, B of the second, a chunk size byte C, then
 * the stream. The stream is filtered three times: whole, in chunks of
 * C % 16 + 1 bytes, each C / 16 * 50 ms after the one before (from 0 to
 * well past the hold time: late reads that come before the timer), and
 * one byte at a time; the output and the number of packets removed must
 * be the same, and never more bytes than went in. A fourth run takes the
 * same chunks and lets the timer release what is due before each: the
 * output may then differ (a packet whose start was released is no packet
 * any more), but it is still the input with bytes left out, in order, and
 * all of it when no packet was removed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/strip.h"

#define STREAM_MAX 8192

static void invariant(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_strip: invariant failed: %s\n", what);
        abort();
    }
}

struct run {
    uint8_t out[STREAM_MAX + AT_STRIP_MAX];
    size_t n;
    uint64_t removed;
};

/* Feeds in chunks, each gap ms after the one before; with timer, the
 * held bytes due by then are released before each chunk. */
static void filter(const struct at_strip *proto, const uint8_t *in, size_t len, size_t chunk,
                   int64_t gap, int timer, struct run *r)
{
    struct at_strip s = *proto;
    int64_t now = 0;

    r->n = 0;
    for (size_t at = 0; at < len; at += chunk, now += gap) {
        size_t n = len - at < chunk ? len - at : chunk;
        if (timer)
            r->n += at_strip_release(&s, r->out + r->n, now);
        r->n += at_strip_feed(&s, in + at, n, r->out + r->n, now);
    }
    r->n += at_strip_release(&s, r->out + r->n, now + AT_STRIP_HOLD_MS);
    invariant(at_strip_due(&s) == -1, "bytes held after the release");
    r->removed = s.removed;
}

/* Whether out is in with bytes left out, the rest in order. */
static int subsequence(const uint8_t *out, size_t n, const uint8_t *in, size_t len)
{
    size_t k = 0;

    for (size_t i = 0; i < len && k < n; i++)
        if (in[i] == out[k])
            k++;
    return k == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run whole, chunked, bytewise, timed;
    struct at_strip s;
    size_t la, lb;

    if (size < 3)
        return 0;
    la = data[0] % (AT_STRIP_MAX + 1);
    lb = data[1] % (AT_STRIP_MAX + 1);
    data += 2;
    size -= 2;
    if (size < la + lb + 1)
        return 0;
    at_strip_init(&s);
    if (la)
        invariant(at_strip_add(&s, data, la) == 0, "add a");
    if (lb)
        invariant(at_strip_add(&s, data + la, lb) == 0, "add b");
    data += la + lb;
    size_t chunk = data[0] % 16 + 1;
    int64_t gap = data[0] / 16 * 50;
    data++;
    size -= la + lb + 1;
    if (size > STREAM_MAX)
        size = STREAM_MAX;

    filter(&s, data, size, size ? size : 1, 0, 0, &whole);
    filter(&s, data, size, chunk, gap, 0, &chunked);
    filter(&s, data, size, 1, 0, 0, &bytewise);
    filter(&s, data, size, chunk, gap, 1, &timed);
    invariant(whole.n <= size, "more out than in");
    invariant(whole.n == chunked.n && memcmp(whole.out, chunked.out, whole.n) == 0,
              "chunked output differs");
    invariant(whole.n == bytewise.n && memcmp(whole.out, bytewise.out, whole.n) == 0,
              "bytewise output differs");
    invariant(whole.removed == chunked.removed && whole.removed == bytewise.removed,
              "removed counts differ");
    invariant(whole.removed || whole.n == size, "bytes lost without a packet removed");
    invariant(subsequence(timed.out, timed.n, data, size), "bytes not from the input (timer)");
    invariant(timed.removed || timed.n == size, "bytes lost without a packet removed (timer)");
    return 0;
}
