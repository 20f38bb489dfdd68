/* UTF-8 validation and repair. See utf8.h. */
#include "core/utf8.h"

#include <errno.h>
#include <limits.h>

/* Length of the valid UTF-8 sequence at p (1-4), 0 if invalid (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t b = p[0];
    size_t len;
    uint32_t cp;

    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
        cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        cp = b & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
        return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        return 0;
    return len;
}

bool utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

size_t utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -EINVAL;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

int utf8_from_ucs2_hex(const char *hex, size_t n, char *out, size_t size)
{
    size_t o = 0;

    if (size == 0)
        return -EMSGSIZE;
    if (size > INT_MAX)
        size = INT_MAX;          /* the length is returned as an int */
    out[0] = '\0';
    if (n % 4)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t u, lo;
        uint8_t b[4];
        size_t k;

        if (hex4(hex + i, &u) < 0 || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
            goto bad;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 8 > n || hex4(hex + i + 4, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                goto bad;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i += 4;
        }
        k = utf8_encode(u, b);
        if (o + k >= size) {
            out[0] = '\0';
            return -EMSGSIZE;
        }
        for (size_t j = 0; j < k; j++)
            out[o++] = (char)b[j];
    }
    out[o] = '\0';
    return (int)o;
bad:
    out[0] = '\0';
    return -EINVAL;
}

uint32_t utf8_decode(const uint8_t *p, size_t k)
{
    static const uint8_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = p[0] & lead_mask[k < 5 ? k : 1];

    for (size_t i = 1; i < k && i < 4; i++)
        cp = cp << 6 | (p[i] & 0x3F);
    return cp;
}

size_t utf8_repair(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        uint8_t enc[4];
        const uint8_t *src = in + i;
        size_t k = utf8_seq(in + i, n - i), w = k;

        if (k) {
            i += k;
        } else {
            /* A lone byte from 0xA0 is Latin-1 (the modules' operator
             * names); 0x80-0x9F would be a C1 control there, and a cut or
             * broken sequence is not text at all: U+FFFD. */
            w = utf8_encode(in[i] >= 0xA0 ? in[i] : 0xFFFD, enc);
            src = enc;
            i++;
        }
        if (o + w <= cap) {
            for (size_t j = 0; j < w; j++)
                out[o + j] = src[j];
        } else {
            cap = o;   /* cut here: nothing after a character that did not fit */
        }
        o += w;
    }
    return o;
}
