/* libFuzzer target: at/strip (a device server's packets taken out of the
 * modem's stream).
 *
 * Input: two length bytes A and B (each mod 41; 0: no such packet), A
 * bytes of the first packet, B of the second, a chunk size byte C, then
 * the stream. The stream is filtered three times: whole, in chunks of
 * C % 16 + 1 bytes, and one byte at a time; the output and the number of
 * packets removed must be the same, and never more bytes than went in. */
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

static void filter(const struct at_strip *proto, const uint8_t *in, size_t len, size_t chunk,
                   struct run *r)
{
    struct at_strip s = *proto;

    r->n = 0;
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        r->n += at_strip_feed(&s, in + at, n, r->out + r->n, 0);
    }
    r->n += at_strip_release(&s, r->out + r->n, AT_STRIP_HOLD_MS);
    invariant(at_strip_due(&s) == -1, "bytes held after the release");
    r->removed = s.removed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run whole, chunked, bytewise;
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
    data++;
    size -= la + lb + 1;
    if (size > STREAM_MAX)
        size = STREAM_MAX;

    filter(&s, data, size, size ? size : 1, &whole);
    filter(&s, data, size, chunk, &chunked);
    filter(&s, data, size, 1, &bytewise);
    invariant(whole.n <= size, "more out than in");
    invariant(whole.n == chunked.n && memcmp(whole.out, chunked.out, whole.n) == 0,
              "chunked output differs");
    invariant(whole.n == bytewise.n && memcmp(whole.out, bytewise.out, whole.n) == 0,
              "bytewise output differs");
    invariant(whole.removed == chunked.removed && whole.removed == bytewise.removed,
              "removed counts differ");
    invariant(whole.removed || whole.n == size, "bytes lost without a packet removed");
    return 0;
}
