/* UTF-8 validation (RFC 3629): pure. */
#ifndef M2M_CORE_UTF8_H
#define M2M_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the valid UTF-8 sequence at p, looking at most n bytes;
 * 0 when invalid: overlong, a surrogate, beyond U+10FFFF, truncated. */
size_t utf8_seq(const uint8_t *p, size_t n);

bool utf8_valid(const uint8_t *p, size_t n);

/* Writes the UTF-8 form of code point cp (at most U+10FFFF, no check for
 * surrogates: the caller decides what it accepts) into out; returns its
 * length, 1-4. */
size_t utf8_encode(uint32_t cp, uint8_t out[4]);

#endif
