/* UTF-8 validation (RFC 3629) and decoding of the modem's UCS-2 hex: pure. */
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

#endif
