/* Hexadecimal digits, as the module writes PDUs and UCS-2 text. */
#ifndef M2M_CORE_HEX_H
#define M2M_CORE_HEX_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The value of a hex digit (either case), or -1. */
static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* n bytes from the 2n hex digits at hex (either case) into out: 0, or
 * -EINVAL at the first pair that is not hex. */
static inline int hex_decode(const char *hex, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Bytes as a configuration writes them: "hex:" and an even number of hex
 * digits (any bytes, "hex:D8B04CFC0001"), or else the text itself. 0 with
 * *len set, or -EINVAL (bad hex, empty, or more than max bytes). out
 * holds max bytes. */
static inline int hex_or_text(const char *spec, uint8_t *out, size_t max, size_t *len)
{
    size_t n = strlen(spec);

    if (strncmp(spec, "hex:", 4) != 0) {
        if (n == 0 || n > max)
            return -EINVAL;
        memcpy(out, spec, n);
        *len = n;
        return 0;
    }
    spec += 4;
    n -= 4;
    if (n == 0 || n % 2 || n / 2 > max || hex_decode(spec, n / 2, out) < 0)
        return -EINVAL;
    *len = n / 2;
    return 0;
}

#endif
