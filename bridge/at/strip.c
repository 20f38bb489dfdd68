/* A device server's packets taken out of the modem's byte stream (strip.h
 * says why and where the limits are).
 *
 * The matcher is the plain one: at each position of the stream, does a
 * packet start here? Packets are at most 40 bytes and at most two, so
 * that costs little, and it is easy to see that it decides the same
 * however the stream was split: a position is decided only once enough
 * bytes are there to decide it, and the undecided tail is held. */
#include "at/strip.h"

#include <errno.h>
#include <string.h>

void at_strip_init(struct at_strip *s)
{
    memset(s, 0, sizeof(*s));
}

int at_strip_add(struct at_strip *s, const uint8_t *pkt, size_t len)
{
    if (len == 0 || len > AT_STRIP_MAX)
        return -EINVAL;
    if (s->n_pkt == AT_STRIP_PACKETS)
        return -ENOSPC;
    memcpy(s->pkt[s->n_pkt], pkt, len);
    s->pkt_len[s->n_pkt++] = len;
    return 0;
}

/* The held bytes followed by the new ones, read as one stream. */
struct view {
    const uint8_t *a, *b;
    size_t na, n;
};

static uint8_t byte_at(const struct view *v, size_t i)
{
    return i < v->na ? v->a[i] : v->b[i - v->na];
}

enum match { NONE, PARTIAL, FULL };

/* What starts at position i: the longest packet there (FULL, its length
 * in *len); PARTIAL while the stream ends inside a packet that still
 * matches, since that one might be longer than any full match; NONE. */
static enum match match_at(const struct at_strip *s, const struct view *v, size_t i,
                           size_t *len)
{
    size_t rest = v->n - i, best = 0;

    for (size_t k = 0; k < s->n_pkt; k++) {
        size_t pl = s->pkt_len[k], m = rest < pl ? rest : pl, j = 0;

        while (j < m && byte_at(v, i + j) == s->pkt[k][j])
            j++;
        if (j < m)
            continue;
        if (m < pl)
            return PARTIAL;
        if (pl > best)
            best = pl;
    }
    *len = best;
    return best ? FULL : NONE;
}

size_t at_strip_release(struct at_strip *s, uint8_t *out, int64_t now_ms)
{
    size_t n = s->n_held;

    if (n == 0 || now_ms < at_strip_due(s))
        return 0;
    memcpy(out, s->held, n);
    s->n_held = 0;
    return n;
}

/* Held bytes are matched with the new ones even when they are already
 * due: the read that brings the rest of a packet may come after the hold
 * ran out (a busy loop), and it decides them as well as a timely one. Only
 * at_strip_release lets them out undecided. */
size_t at_strip_feed(struct at_strip *s, const uint8_t *in, size_t len, uint8_t *out,
                     int64_t now_ms)
{
    size_t o = 0, i = 0, plen;
    uint8_t held[AT_STRIP_MAX];
    size_t old = s->n_held;

    memcpy(held, s->held, old);
    struct view v = { .a = held, .na = old, .b = in, .n = old + len };
    while (i < v.n) {
        enum match r = match_at(s, &v, i, &plen);
        if (r == PARTIAL)
            break;
        if (r == FULL) {
            i += plen;
            s->removed++;
            continue;
        }
        out[o++] = byte_at(&v, i++);
    }
    /* The undecided tail: shorter than the longest packet. It ends with
     * the bytes just read, so it is due a hold after them: a packet's rest
     * that came late in pieces still has its time to complete (and a
     * tail cannot grow past AT_STRIP_MAX, so neither can the delay). */
    s->n_held = v.n - i;
    for (size_t k = 0; k < s->n_held; k++)
        s->held[k] = byte_at(&v, i + k);
    if (s->n_held && len > 0)
        s->held_since = now_ms;
    return o;
}

int64_t at_strip_due(const struct at_strip *s)
{
    return s->n_held ? s->held_since + AT_STRIP_HOLD_MS : -1;
}
