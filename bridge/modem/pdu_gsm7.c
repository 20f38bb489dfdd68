/* The GSM 7-bit default alphabet for the PDU codec (see pdu_int.h for the
 * other files): the basic and extension tables, packing and unpacking
 * septets, UTF-8 in (checked as RFC 3629 says) and out through a bounded
 * buffer. */
#include "modem/pdu_int.h"

#include <errno.h>

#include "core/utf8.h"
/* ---- GSM 7-bit default alphabet (23.038 6.2.1) --------------------------- */

/* Septet -> Unicode. 0x1B is the escape to the extension table; shown as a
 * space where it cannot be resolved (23.038 6.2.1 note 1). */
static const uint16_t gsm7_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, /* @£$¥èéùì */
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5, /* òÇ\nØø\rÅå */
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, /* Δ_ΦΓΛΩΠΨ */
    0x03A3, 0x0398, 0x039E, 0x0020, 0x00C6, 0x00E6, 0x00DF, 0x00C9, /* ΣΘΞ ÆæßÉ */
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027, /*  !"#¤%&' */
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F, /* ()*+,-./ */
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F,
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047, /* ¡A-G */
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F,
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7, /* XYZÄÖÑÜ§ */
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, /* ¿a-g */
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F,
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0, /* xyzäöñüà */
};

/* The extension table (23.038 6.2.1.1): reached through ESC. */
static const struct {
    uint8_t code;
    uint16_t cp;
} gsm7_ext[] = {
    {0x0A, 0x000C}, /* page break */
    {0x14, '^'}, {0x28, '{'}, {0x29, '}'}, {0x2F, '\\'}, {0x3C, '['},
    {0x3D, '~'}, {0x3E, ']'}, {0x40, '|'}, {0x65, 0x20AC}, /* EURO SIGN */
};

/* Septets cp takes in GSM 7-bit: 1 (basic, *code), 2 (ESC + *code), or 0
 * when it is not in the alphabet. */
unsigned pdu_gsm7_lookup(uint32_t cp, uint8_t *code)
{
    /* Most of printable ASCII sits at its own code point. */
    if (cp < 128 && gsm7_basic[cp] == cp) {
        *code = (uint8_t)cp;
        return 1;
    }
    for (unsigned i = 0; i < 128; i++) {
        if (i != GSM7_ESC && gsm7_basic[i] == cp) {
            *code = (uint8_t)i;
            return 1;
        }
    }
    for (size_t i = 0; i < sizeof gsm7_ext / sizeof gsm7_ext[0]; i++) {
        if (gsm7_ext[i].cp == cp) {
            *code = gsm7_ext[i].code;
            return 2;
        }
    }
    return 0;
}

/* Extension code -> Unicode. 23.038 6.2.1.1: ESC ESC (the escape to a
 * further table) shows a space; any other code without a symbol shows the
 * default-alphabet character of that code. */
static uint32_t gsm7_ext_cp(uint8_t code)
{
    for (size_t i = 0; i < sizeof gsm7_ext / sizeof gsm7_ext[0]; i++)
        if (gsm7_ext[i].code == code)
            return gsm7_ext[i].cp;
    if (code == GSM7_ESC)
        return ' ';
    return gsm7_basic[code & 0x7F];
}

/* Packs septets LSB first, the first one at bit `bit` of ud
 * (23.038 6.1.2.1.1). ud must be zeroed and hold bit + 7 * n bits. */
void pdu_gsm7_pack(uint8_t *ud, size_t bit, const uint8_t *sept, size_t n)
{
    for (size_t i = 0; i < n; i++, bit += 7) {
        size_t o = bit / 8;
        unsigned sh = bit % 8;
        ud[o] |= (uint8_t)(sept[i] << sh);
        if (sh > 1)
            ud[o + 1] |= (uint8_t)(sept[i] >> (8 - sh));
    }
}

/* The septet at bit `bit`; the caller guarantees bit + 7 bits lie in ud. */
static uint8_t gsm7_septet(const uint8_t *ud, size_t bit)
{
    size_t o = bit / 8;
    unsigned sh = bit % 8;
    unsigned v = ud[o] >> sh;
    if (sh > 1)
        v |= (unsigned)ud[o + 1] << (8 - sh);
    return (uint8_t)(v & 0x7F);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Next code point of s; rejects what RFC 3629 rejects (overlong forms,
 * surrogates, past U+10FFFF, truncated sequences). */
int pdu_utf8_next(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp)
{
    size_t i = *pos, n;
    uint32_t v, min;
    uint8_t c = s[i];

    if (c < 0x80) {
        *cp = c;
        *pos = i + 1;
        return 0;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 1, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 2, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 3, v = c & 0x07, min = 0x10000;
    } else {
        return -EINVAL;
    }
    if (len - i - 1 < n)
        return -EINVAL;
    for (size_t k = 1; k <= n; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return -EINVAL;
        v = v << 6 | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -EINVAL;
    *cp = v;
    *pos = i + 1 + n;
    return 0;
}

void pdu_wbuf_put(struct wbuf *w, uint8_t c)
{
    if (w->n < w->cap)
        w->b[w->n++] = c;
    else
        w->overflow = true;
}

void pdu_wbuf_utf8(struct wbuf *w, uint32_t cp)
{
    uint8_t b[4];
    size_t n = utf8_encode(cp, b);

    for (size_t i = 0; i < n; i++)
        pdu_wbuf_put(w, b[i]);
}

/* Unpacks n septets from bit `bit` of ud into UTF-8. */
void pdu_gsm7_to_utf8(const uint8_t *ud, size_t bit, size_t n, struct wbuf *w)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = gsm7_septet(ud, bit + 7 * i);
        if (c != GSM7_ESC) {
            pdu_wbuf_utf8(w, gsm7_basic[c]);
        } else if (i + 1 < n) {
            i++;
            pdu_wbuf_utf8(w, gsm7_ext_cp(gsm7_septet(ud, bit + 7 * i)));
        } else {
            pdu_wbuf_utf8(w, ' '); /* an escape with nothing after it */
        }
    }
}

