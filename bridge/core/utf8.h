/* UTF-8 validation (RFC 3629), repair of text that is not, and decoding of
 * the modem's UCS-2 hex: pure. */
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

/* A string the module gives in UCS-2 as hex (AT+CSCS="UCS2", a USSD text
 * with dcs 72): groups of 4 hex digits (either case), big-endian 16-bit
 * units, a surrogate pair joined into one character (as UTF-16BE). hex
 * needs no NUL; n is its length. Writes UTF-8 and a NUL into out (size >
 * 0; out is "" on failure). Returns the UTF-8 length, or -EINVAL (n not a
 * multiple of 4, a non-hex digit, U+0000, a surrogate without its other
 * half) or -EMSGSIZE (does not fit: nothing is truncated mid-character,
 * the string is refused). */
int utf8_from_ucs2_hex(const char *hex, size_t n, char *out, size_t size);

/* The code point of the valid sequence of k bytes at p (k from utf8_seq). */
uint32_t utf8_decode(const uint8_t *p, size_t k);

/* Repairs n bytes of text (not NUL-terminated; a NUL is kept as it is)
 * into valid UTF-8: valid sequences are copied, a byte that starts none
 * becomes U+00A0-U+00FF when it is 0xA0-0xFF (Latin-1: what the A7670
 * sends for operator names like "Telef\xf3nica") and U+FFFD otherwise.
 * Writes whole characters into out while they fit in cap bytes (out may
 * be NULL when cap is 0) and returns the length of the whole repaired
 * text, at most 3 * n: with cap >= 3 * n nothing is cut. No NUL is added. */
size_t utf8_repair(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif
