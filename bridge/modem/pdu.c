/* SMS PDU codec (3GPP TS 23.040 / 23.038). See pdu.h.
 *
 * Pure: no I/O, no clock, no allocation. Every buffer is sized for the
 * largest legal PDU, and every octet read from modem input is checked
 * against the input's length before it is read. */
#include "modem/pdu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"

#define UD_MAX 140          /* 23.040 9.2.3.24 */
#define TPDU_MAX 164        /* SUBMIT with a 7-octet VP and a 12-octet DA */
#define SMSC_OCTETS_MAX 12  /* length octet + type + 10 octets of digits */
#define PDU_OCTETS_MAX (SMSC_OCTETS_MAX + TPDU_MAX)
#define ADDR_DIGITS_MAX 20  /* 23.040 9.1.2.5: address value of 10 octets */
#define ALNUM_SEPTETS_MAX 11 /* 10 octets of packed septets */
#define UDH_CONCAT8_LEN 6   /* 05 00 03 ref total seq */
#define SCTS_LEN 7

#define FO_MTI_MASK 0x03
#define FO_MTI_DELIVER 0x00
#define FO_MTI_SUBMIT 0x01
#define FO_MTI_STATUS 0x02
#define FO_MMS 0x04         /* DELIVER: no more messages waiting */
#define FO_VPF_MASK 0x18
#define FO_VPF_RELATIVE 0x10
#define FO_SRR 0x20         /* SUBMIT: SRR, DELIVER: SRI, STATUS: SRQ */
#define FO_UDHI 0x40

#define TOA_INTERNATIONAL 0x91
#define TOA_UNKNOWN 0x81    /* ISDN plan, type unknown: what phones send for
                               national numbers, and always routable */
#define TOA_ALNUM 0xD0
#define TON(toa) (((toa) >> 4) & 0x07)
#define TON_INTERNATIONAL 1
#define TON_ALNUM 5

#define VP_24H 0xA7         /* relative: (0xA7 - 143) * 30 min + 12 h */

#define GSM7_ESC 0x1B

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
static unsigned gsm7_lookup(uint32_t cp, uint8_t *code)
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
static void gsm7_pack(uint8_t *ud, size_t bit, const uint8_t *sept, size_t n)
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
static int utf8_next(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp)
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

/* A bounded output buffer; one overflow flag instead of a check per call. */
struct wbuf {
    uint8_t *b;
    size_t cap, n;
    bool overflow;
};

static void wbuf_put(struct wbuf *w, uint8_t c)
{
    if (w->n < w->cap)
        w->b[w->n++] = c;
    else
        w->overflow = true;
}

static void wbuf_utf8(struct wbuf *w, uint32_t cp)
{
    uint8_t b[4];
    size_t n = utf8_encode(cp, b);

    for (size_t i = 0; i < n; i++)
        wbuf_put(w, b[i]);
}

/* Unpacks n septets from bit `bit` of ud into UTF-8. */
static void gsm7_to_utf8(const uint8_t *ud, size_t bit, size_t n, struct wbuf *w)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = gsm7_septet(ud, bit + 7 * i);
        if (c != GSM7_ESC) {
            wbuf_utf8(w, gsm7_basic[c]);
        } else if (i + 1 < n) {
            i++;
            wbuf_utf8(w, gsm7_ext_cp(gsm7_septet(ud, bit + 7 * i)));
        } else {
            wbuf_utf8(w, ' '); /* an escape with nothing after it */
        }
    }
}

/* ---- splitting a text into parts ------------------------------------------ */

/* Septets (GSM) or UTF-16 units (UCS-2) one character takes. */
static unsigned char_cost(uint32_t cp, enum pdu_alphabet a)
{
    uint8_t code;
    if (a == PDU_UCS2)
        return cp > 0xFFFF ? 2 : 1;
    return gsm7_lookup(cp, &code);
}

struct plan {
    enum pdu_alphabet alphabet;
    size_t parts;
    size_t single, multi; /* capacity of a lone part, of a concatenated part */
};

/* Takes whole characters from *pos while they fit in limit, so neither an
 * escape nor a surrogate pair is split from its other half. The text was
 * validated by plan_text(). */
static size_t take_segment(const uint8_t *s, size_t len, size_t *pos, enum pdu_alphabet a,
                           size_t limit)
{
    size_t used = 0;
    while (*pos < len) {
        size_t p = *pos;
        uint32_t cp;
        if (utf8_next(s, len, &p, &cp) < 0)
            break;
        unsigned c = char_cost(cp, a);
        if (used + c > limit)
            break;
        used += c;
        *pos = p;
    }
    return used;
}

static int plan_text(const uint8_t *s, size_t len, bool force_ucs2, struct plan *pl)
{
    size_t gsm = 0, ucs = 0, pos = 0;
    bool fits = !force_ucs2;

    while (pos < len) {
        uint32_t cp;
        int rc = utf8_next(s, len, &pos, &cp);
        if (rc < 0)
            return rc;
        ucs += char_cost(cp, PDU_UCS2);
        if (fits) {
            unsigned c = char_cost(cp, PDU_GSM7);
            fits = c != 0;
            gsm += c;
        }
    }
    pl->alphabet = fits ? PDU_GSM7 : PDU_UCS2;
    pl->single = fits ? PDU_GSM7_SINGLE : PDU_UCS2_SINGLE;
    pl->multi = fits ? PDU_GSM7_MULTI : PDU_UCS2_MULTI;
    if ((fits ? gsm : ucs) <= pl->single) {
        pl->parts = 1;
        return 0;
    }
    pl->parts = 0;
    for (pos = 0; pos < len; pl->parts++) {
        size_t before = pos;
        take_segment(s, len, &pos, pl->alphabet, pl->multi);
        if (pos == before) /* cannot happen: a character costs at most 2 */
            return -EINVAL;
    }
    return 0;
}

int pdu_count_parts(const char *text, size_t len, bool force_ucs2, size_t *n_parts,
                    enum pdu_alphabet *alphabet)
{
    struct plan pl;
    int rc;

    if (!n_parts || (!text && len))
        return -EINVAL;
    rc = plan_text((const uint8_t *)text, len, force_ucs2, &pl);
    if (rc < 0)
        return rc;
    *n_parts = pl.parts;
    if (alphabet)
        *alphabet = pl.alphabet;
    return 0;
}

/* ---- encoding ------------------------------------------------------------- */

/* An address as it goes on the wire: length field, type, value octets. */
struct addr_enc {
    uint8_t len_field;
    uint8_t toa;
    uint8_t val[10];
    size_t val_len;
};

static void bcd_digits(const char *d, size_t n, struct addr_enc *a)
{
    memset(a->val, 0, sizeof a->val);
    for (size_t i = 0; i < n; i++)
        a->val[i / 2] |= (uint8_t)((unsigned)(d[i] - '0') << (4 * (i % 2)));
    if (n % 2)
        a->val[n / 2] |= 0xF0; /* filler */
    a->val_len = (n + 1) / 2;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* "+<digits>" international, "<digits>" unknown type; anything else is an
 * alphanumeric originator where allowed (DELIVER only: an SMSC will not
 * route to a name). */
static int addr_encode(const char *s, bool allow_alnum, struct addr_enc *a)
{
    size_t n;

    if (!s)
        return -EINVAL;
    /* Bounded: a config or MQTT value longer than any address is invalid. */
    n = strnlen(s, 64);
    if (n == 64)
        return -EINVAL;
    if (n > 1 && s[0] == '+' && n - 1 <= ADDR_DIGITS_MAX && all_digits(s + 1, n - 1)) {
        a->toa = TOA_INTERNATIONAL;
        a->len_field = (uint8_t)(n - 1);
        bcd_digits(s + 1, n - 1, a);
        return 0;
    }
    if (n <= ADDR_DIGITS_MAX && all_digits(s, n)) {
        a->toa = TOA_UNKNOWN;
        a->len_field = (uint8_t)n;
        bcd_digits(s, n, a);
        return 0;
    }
    if (!allow_alnum || n == 0)
        return -EINVAL;

    uint8_t sept[ALNUM_SEPTETS_MAX];
    size_t ns = 0, pos = 0;
    while (pos < n) {
        uint32_t cp;
        uint8_t code;
        if (utf8_next((const uint8_t *)s, n, &pos, &cp) < 0)
            return -EINVAL;
        unsigned c = gsm7_lookup(cp, &code);
        if (c == 0 || ns + c > ALNUM_SEPTETS_MAX)
            return -EINVAL;
        if (c == 2)
            sept[ns++] = GSM7_ESC;
        sept[ns++] = code;
    }
    memset(a->val, 0, sizeof a->val);
    gsm7_pack(a->val, 0, sept, ns);
    a->toa = TOA_ALNUM;
    /* 23.040 9.1.2.5: the length counts the semi-octets actually used. */
    a->len_field = (uint8_t)((ns * 7 + 3) / 4);
    a->val_len = (ns * 7 + 7) / 8;
    return 0;
}

static int smsc_encode(const char *s, struct addr_enc *a)
{
    size_t n;

    if (!s || !s[0]) {
        a->len_field = 0;
        a->val_len = 0;
        return 0;
    }
    n = strnlen(s, 64);
    if (s[0] == '+' && n > 1 && n - 1 <= ADDR_DIGITS_MAX && all_digits(s + 1, n - 1)) {
        a->toa = TOA_INTERNATIONAL;
        bcd_digits(s + 1, n - 1, a);
    } else if (n <= ADDR_DIGITS_MAX && all_digits(s, n)) {
        a->toa = TOA_UNKNOWN;
        bcd_digits(s, n, a);
    } else {
        return -EINVAL;
    }
    a->len_field = (uint8_t)(1 + a->val_len); /* octets, type included */
    return 0;
}

/* Days since 1970-01-01 -> civil date (proleptic Gregorian; H. Hinnant's
 * days_from_civil inverse), so no gmtime() and no dependence on TZ. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* A two-digit field: semi-octets swapped, tens in the low nibble. */
static uint8_t bcd_swapped(unsigned v)
{
    return (uint8_t)((v % 10) << 4 | v / 10);
}

/* TP-SCTS (23.040 9.2.3.11): the SC's local time and its offset from UTC
 * in quarter hours, the sign in bit 3 of the last octet. */
static int scts_encode(time_t ts, int tz_minutes, uint8_t out[SCTS_LEN])
{
    if (tz_minutes % 15 || tz_minutes < -79 * 15 || tz_minutes > 79 * 15)
        return -EINVAL;
    int64_t t = (int64_t)ts + (int64_t)tz_minutes * 60;
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0)
        secs += 86400, days--;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* The decoder reads two-digit years the POSIX %y way (69-99 are 19xx). */
    if (y < 1969 || y > 2068)
        return -EINVAL;
    unsigned q = (unsigned)(tz_minutes < 0 ? -tz_minutes : tz_minutes) / 15;
    out[0] = bcd_swapped((unsigned)(y % 100));
    out[1] = bcd_swapped(m);
    out[2] = bcd_swapped(d);
    out[3] = bcd_swapped((unsigned)(secs / 3600));
    out[4] = bcd_swapped((unsigned)(secs / 60 % 60));
    out[5] = bcd_swapped((unsigned)(secs % 60));
    out[6] = (uint8_t)(bcd_swapped(q) | (tz_minutes < 0 ? 0x08 : 0));
    return 0;
}

static const char hex_digits[] = "0123456789ABCDEF";

static void hex_put(char *out, size_t *at, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[(*at)++] = hex_digits[b[i] >> 4];
        out[(*at)++] = hex_digits[b[i] & 0x0F];
    }
    out[*at] = '\0';
}

struct enc_ctx {
    const struct pdu_encode_opts *opts;
    struct addr_enc smsc, addr;
    uint8_t scts[SCTS_LEN];
    struct plan pl;
};

/* Writes one part: the user data is the characters of s[from, to). */
static void encode_part(const struct enc_ctx *c, const uint8_t *s, size_t from, size_t to,
                        size_t seq, struct pdu_part *out)
{
    uint8_t ud[UD_MAX] = {0};
    size_t hdr = 0, udl, ud_len;
    bool multi = c->pl.parts > 1;

    if (multi) {
        ud[0] = UDH_CONCAT8_LEN - 1; /* UDHL */
        ud[1] = 0x00;                /* IEI: concatenation, 8-bit reference */
        ud[2] = 3;
        ud[3] = c->opts->concat_ref;
        ud[4] = (uint8_t)c->pl.parts;
        ud[5] = (uint8_t)seq;
        hdr = UDH_CONCAT8_LEN;
    }
    if (c->pl.alphabet == PDU_GSM7) {
        uint8_t sept[PDU_GSM7_SINGLE];
        size_t n = 0, pos = from;
        while (pos < to) {
            uint32_t cp = 0;
            uint8_t code = 0;
            (void)utf8_next(s, to, &pos, &cp); /* validated by plan_text() */
            if (gsm7_lookup(cp, &code) == 2)
                sept[n++] = GSM7_ESC;
            sept[n++] = code;
        }
        /* Fill bits put the first character on a septet boundary
         * (23.040 9.2.3.24): 6 octets of UDH = 48 bits -> 7 septets. */
        size_t hsep = (hdr * 8 + 6) / 7;
        gsm7_pack(ud, hsep * 7, sept, n);
        udl = hsep + n;
        ud_len = (udl * 7 + 7) / 8;
    } else {
        size_t at = hdr, pos = from;
        while (pos < to) {
            uint32_t cp = 0;
            (void)utf8_next(s, to, &pos, &cp); /* validated by plan_text() */
            if (cp > 0xFFFF) {
                uint32_t v = cp - 0x10000;
                uint16_t hi = (uint16_t)(0xD800 | v >> 10), lo = (uint16_t)(0xDC00 | (v & 0x3FF));
                ud[at++] = (uint8_t)(hi >> 8), ud[at++] = (uint8_t)hi;
                ud[at++] = (uint8_t)(lo >> 8), ud[at++] = (uint8_t)lo;
            } else {
                ud[at++] = (uint8_t)(cp >> 8), ud[at++] = (uint8_t)cp;
            }
        }
        udl = at;
        ud_len = at;
    }

    uint8_t tp[TPDU_MAX];
    size_t n = 0;
    const struct pdu_encode_opts *o = c->opts;
    uint8_t dcs = c->pl.alphabet == PDU_UCS2 ? 0x08 : 0x00;
    if (o->flash)
        dcs |= 0x10; /* general group, class meaningful, class 0 */

    if (o->type == PDU_SUBMIT) {
        tp[n++] = (uint8_t)(FO_MTI_SUBMIT | FO_VPF_RELATIVE | (o->status_report ? FO_SRR : 0) |
                            (multi ? FO_UDHI : 0));
        tp[n++] = 0x00; /* TP-MR: the modem assigns it */
    } else {
        tp[n++] = (uint8_t)(FO_MTI_DELIVER | FO_MMS | (o->status_report ? FO_SRR : 0) |
                            (multi ? FO_UDHI : 0));
    }
    tp[n++] = c->addr.len_field;
    tp[n++] = c->addr.toa;
    memcpy(tp + n, c->addr.val, c->addr.val_len);
    n += c->addr.val_len;
    tp[n++] = 0x00; /* TP-PID */
    tp[n++] = dcs;
    if (o->type == PDU_SUBMIT) {
        tp[n++] = VP_24H;
    } else {
        memcpy(tp + n, c->scts, SCTS_LEN);
        n += SCTS_LEN;
    }
    tp[n++] = (uint8_t)udl;
    memcpy(tp + n, ud, ud_len);
    n += ud_len;

    size_t at = 0;
    uint8_t smsc[SMSC_OCTETS_MAX];
    size_t sn = 0;
    smsc[sn++] = c->smsc.len_field;
    if (c->smsc.len_field) {
        smsc[sn++] = c->smsc.toa;
        memcpy(smsc + sn, c->smsc.val, c->smsc.val_len);
        sn += c->smsc.val_len;
    }
    hex_put(out->hex, &at, smsc, sn);
    hex_put(out->hex, &at, tp, n);
    out->tpdu_len = n;
}

int pdu_encode(const struct pdu_encode_opts *opts, const char *text, size_t len,
               struct pdu_part *parts, size_t max_parts, size_t *n_parts,
               enum pdu_alphabet *alphabet)
{
    struct enc_ctx c = {.opts = opts};
    const uint8_t *s = (const uint8_t *)text;
    int rc;

    if (!opts || !n_parts || (!text && len) || (max_parts && !parts))
        return -EINVAL;
    *n_parts = 0;
    if (opts->type != PDU_SUBMIT && opts->type != PDU_DELIVER)
        return -EINVAL;
    rc = addr_encode(opts->addr, opts->type == PDU_DELIVER, &c.addr);
    if (rc < 0)
        return rc;
    rc = smsc_encode(opts->smsc, &c.smsc);
    if (rc < 0)
        return rc;
    if (opts->type == PDU_DELIVER) {
        rc = scts_encode(opts->timestamp, opts->tz_minutes, c.scts);
        if (rc < 0)
            return rc;
    }
    rc = plan_text(s, len, opts->force_ucs2, &c.pl);
    if (rc < 0)
        return rc;
    *n_parts = c.pl.parts;
    if (alphabet)
        *alphabet = c.pl.alphabet;
    if (c.pl.parts > PDU_PARTS_MAX || c.pl.parts > max_parts)
        return -E2BIG;

    size_t limit = c.pl.parts == 1 ? c.pl.single : c.pl.multi, pos = 0;
    for (size_t i = 0; i < c.pl.parts; i++) {
        size_t from = pos;
        take_segment(s, len, &pos, c.pl.alphabet, limit);
        encode_part(&c, s, from, pos, i + 1, &parts[i]);
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------- */

/* A cursor over the PDU's octets: the only way the decoder reads them. */
struct rd {
    const uint8_t *b;
    size_t n, pos;
};

static int rd_u8(struct rd *r, uint8_t *v)
{
    if (r->pos >= r->n)
        return -EINVAL;
    *v = r->b[r->pos++];
    return 0;
}

static int rd_take(struct rd *r, size_t k, const uint8_t **p)
{
    if (k > r->n - r->pos)
        return -EINVAL;
    *p = r->b + r->pos;
    r->pos += k;
    return 0;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* 0-9 * # a b c (23.040 9.1.2.3); 0xF is the filler. */
static const char semi_octet_chars[] = "0123456789*#abc";

/* Semi-octet digits into out; stops at a filler. */
static void digits_decode(const uint8_t *v, size_t n_digits, struct wbuf *w)
{
    for (size_t i = 0; i < n_digits; i++) {
        unsigned d = (v[i / 2] >> (4 * (i % 2))) & 0x0F;
        if (d == 0x0F)
            break;
        wbuf_put(w, (uint8_t)semi_octet_chars[d]);
    }
}

static void wbuf_str_end(struct wbuf *w)
{
    /* The caller sized cap one short of the array: room for the NUL. */
    w->b[w->n] = '\0';
}

/* The SMSC field: length in octets, type included; 0 for none. */
static int smsc_decode(struct rd *r, char out[PDU_ADDR_MAX])
{
    struct wbuf w = {(uint8_t *)out, PDU_ADDR_MAX - 1, 0, false};
    uint8_t len, toa;
    const uint8_t *v;

    if (rd_u8(r, &len) < 0)
        return -EINVAL;
    if (len == 0) {
        out[0] = '\0';
        return 0;
    }
    if (len > SMSC_OCTETS_MAX - 1 || rd_u8(r, &toa) < 0 || rd_take(r, len - 1u, &v) < 0)
        return -EINVAL;
    if (TON(toa) == TON_INTERNATIONAL && len > 1)
        wbuf_put(&w, '+');
    digits_decode(v, (len - 1u) * 2, &w);
    wbuf_str_end(&w);
    return 0;
}

/* TP-OA / TP-DA / TP-RA: length in semi-octets of the value. */
static int addr_decode(struct rd *r, char out[PDU_ADDR_MAX])
{
    struct wbuf w = {(uint8_t *)out, PDU_ADDR_MAX - 1, 0, false};
    uint8_t len, toa;
    const uint8_t *v;

    if (rd_u8(r, &len) < 0 || len > ADDR_DIGITS_MAX || rd_u8(r, &toa) < 0 ||
        rd_take(r, (len + 1u) / 2, &v) < 0)
        return -EINVAL;
    if (TON(toa) == TON_ALNUM) {
        /* Packed septets; the length counts the semi-octets used. */
        gsm7_to_utf8(v, 0, len * 4u / 7, &w);
    } else {
        if (TON(toa) == TON_INTERNATIONAL && len > 0)
            wbuf_put(&w, '+');
        digits_decode(v, len, &w);
    }
    if (w.overflow)
        return -EINVAL;
    wbuf_str_end(&w);
    return 0;
}

static bool is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* TP-SCTS / TP-DT -> "YYYY-MM-DDTHH:MM:SS+HH:MM"; "" when it is not a valid
 * date: some SMSCs send nonsense there, and the text still matters. */
static void scts_decode(const uint8_t o[SCTS_LEN], char out[32])
{
    static const uint8_t mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned f[6];

    out[0] = '\0';
    for (int i = 0; i < 6; i++) {
        unsigned lo = o[i] & 0x0F, hi = o[i] >> 4;
        if (lo > 9 || hi > 9)
            return;
        f[i] = lo * 10 + hi;
    }
    unsigned tlo = o[6] & 0x07, thi = o[6] >> 4;
    if (thi > 9)
        return;
    unsigned q = tlo * 10 + thi;
    unsigned year = f[0] < 69 ? 2000 + f[0] : 1900 + f[0];
    if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > mdays[f[1] - 1] ||
        (f[1] == 2 && f[2] == 29 && !is_leap(year)) || f[3] > 23 || f[4] > 59 || f[5] > 59)
        return;
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u%c%02u:%02u", year % 10000u, f[1] % 100u,
             f[2] % 100u, f[3] % 100u, f[4] % 100u, f[5] % 100u, (o[6] & 0x08) ? '-' : '+',
             q * 15 / 60 % 100u, q * 15 % 60);
}

/* TP-DCS (23.038 4) -> alphabet and class 0. Reserved codings read as the
 * GSM 7-bit default alphabet, as 23.038 tells a receiver to. */
static void dcs_decode(uint8_t dcs, enum pdu_alphabet *a, bool *flash)
{
    *a = PDU_GSM7;
    *flash = false;
    switch (dcs >> 4) {
    case 0x0: case 0x1: case 0x2: case 0x3: /* general data coding */
    case 0x4: case 0x5: case 0x6: case 0x7: /* same, marked for deletion */
        if (dcs & 0x20) {
            /* Compressed (23.042): not supported; hand over the octets. */
            *a = PDU_8BIT;
        } else if ((dcs & 0x0C) == 0x04) {
            *a = PDU_8BIT;
        } else if ((dcs & 0x0C) == 0x08) {
            *a = PDU_UCS2;
        }
        *flash = (dcs & 0x10) && (dcs & 0x03) == 0;
        break;
    case 0xC: case 0xD: /* message waiting: discard / store, GSM 7-bit */
        break;
    case 0xE: /* message waiting: store, UCS-2 */
        *a = PDU_UCS2;
        break;
    case 0xF: /* data coding / message class */
        if (dcs & 0x04)
            *a = PDU_8BIT;
        *flash = (dcs & 0x03) == 0;
        break;
    default: /* 0x8-0xB: reserved coding groups */
        break;
    }
}

/* The UDH's information elements: concatenation, 8- or 16-bit reference;
 * everything else skipped (23.040 9.2.3.24). */
static int udh_decode(const uint8_t *h, size_t len, struct pdu_msg *m)
{
    size_t i = 0;
    while (i < len) {
        if (len - i < 2)
            return -EINVAL;
        uint8_t iei = h[i], iel = h[i + 1];
        const uint8_t *d = h + i + 2;
        if (iel > len - i - 2)
            return -EINVAL;
        uint16_t ref = 0;
        uint8_t total = 0, seq = 0;
        bool concat = false;
        if (iei == 0x00 && iel == 3) {
            ref = d[0], total = d[1], seq = d[2], concat = true;
        } else if (iei == 0x08 && iel == 4) {
            ref = (uint16_t)(d[0] << 8 | d[1]), total = d[2], seq = d[3], concat = true;
        }
        /* 23.040 9.2.3.24.1: a sequence number of 0 or past the total
         * means the receiver ignores the whole IE. */
        if (concat && total > 0 && seq > 0 && seq <= total) {
            m->concat = true;
            m->concat_ref = ref;
            m->concat_total = total;
            m->concat_seq = seq;
        }
        i += 2u + iel;
    }
    return 0;
}

/* TP-UDL and TP-UD, the header included when TP-UDHI says so. */
static int ud_decode(struct rd *r, bool udhi, struct pdu_msg *m)
{
    uint8_t udl;
    const uint8_t *ud;
    size_t octets, hdr = 0;
    struct wbuf w = {m->text, PDU_TEXT_MAX, 0, false};

    if (rd_u8(r, &udl) < 0)
        return -EINVAL;
    octets = m->alphabet == PDU_GSM7 ? (udl * 7u + 7) / 8 : udl;
    if (octets > UD_MAX || rd_take(r, octets, &ud) < 0)
        return -EINVAL;
    if (udhi) {
        if (octets < 1 || ud[0] + 1u > octets || udh_decode(ud + 1, ud[0], m) < 0)
            return -EINVAL;
        hdr = ud[0] + 1u;
    }
    switch (m->alphabet) {
    case PDU_GSM7: {
        size_t hsep = (hdr * 8 + 6) / 7; /* the UDH and its fill bits */
        if (hsep > udl)
            return -EINVAL;
        gsm7_to_utf8(ud, hsep * 7, udl - hsep, &w);
        break;
    }
    case PDU_8BIT:
        for (size_t i = hdr; i < octets; i++)
            wbuf_put(&w, ud[i]);
        break;
    case PDU_UCS2:
        if ((octets - hdr) % 2)
            return -EINVAL;
        for (size_t i = hdr; i < octets; i += 2) {
            uint32_t u = (uint32_t)ud[i] << 8 | ud[i + 1];
            if (u >= 0xD800 && u <= 0xDBFF && i + 3 < octets) {
                uint32_t lo = (uint32_t)ud[i + 2] << 8 | ud[i + 3];
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    wbuf_utf8(&w, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                    i += 2;
                    continue;
                }
            }
            wbuf_utf8(&w, (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u);
        }
        break;
    }
    if (w.overflow)
        return -EINVAL;
    m->text_len = w.n;
    m->text[w.n] = '\0';
    return 0;
}

static int deliver_decode(struct rd *r, uint8_t fo, struct pdu_msg *m)
{
    const uint8_t *scts;

    m->type = PDU_DELIVER;
    m->status_report = fo & FO_SRR;
    if (addr_decode(r, m->addr) < 0 || rd_u8(r, &m->pid) < 0 || rd_u8(r, &m->dcs) < 0 ||
        rd_take(r, SCTS_LEN, &scts) < 0)
        return -EINVAL;
    dcs_decode(m->dcs, &m->alphabet, &m->flash);
    scts_decode(scts, m->time);
    return ud_decode(r, fo & FO_UDHI, m);
}

static int submit_decode(struct rd *r, uint8_t fo, struct pdu_msg *m)
{
    static const uint8_t vp_len[4] = {0, 7, 1, 7}; /* none, enhanced, relative, absolute */
    const uint8_t *vp;

    m->type = PDU_SUBMIT;
    m->status_report = fo & FO_SRR;
    if (rd_u8(r, &m->mr) < 0 || addr_decode(r, m->addr) < 0 || rd_u8(r, &m->pid) < 0 ||
        rd_u8(r, &m->dcs) < 0 || rd_take(r, vp_len[(fo & FO_VPF_MASK) >> 3], &vp) < 0)
        return -EINVAL;
    dcs_decode(m->dcs, &m->alphabet, &m->flash);
    return ud_decode(r, fo & FO_UDHI, m);
}

static int status_decode(struct rd *r, uint8_t fo, struct pdu_msg *m)
{
    const uint8_t *scts, *dt;
    uint8_t pi, more;

    m->type = PDU_STATUS_REPORT;
    if (rd_u8(r, &m->mr) < 0 || addr_decode(r, m->addr) < 0 || rd_take(r, SCTS_LEN, &scts) < 0 ||
        rd_take(r, SCTS_LEN, &dt) < 0 || rd_u8(r, &m->status) < 0)
        return -EINVAL;
    scts_decode(scts, m->time);
    scts_decode(dt, m->discharge_time);
    if (r->pos == r->n)
        return 0;
    /* TP-PI (23.040 9.2.3.27): which optional fields follow; bit 7 extends
     * it with further octets whose bits are all reserved. */
    if (rd_u8(r, &pi) < 0)
        return -EINVAL;
    for (more = pi; more & 0x80;)
        if (rd_u8(r, &more) < 0)
            return -EINVAL;
    if ((pi & 0x01) && rd_u8(r, &m->pid) < 0)
        return -EINVAL;
    if ((pi & 0x02) && rd_u8(r, &m->dcs) < 0)
        return -EINVAL;
    dcs_decode(m->dcs, &m->alphabet, &m->flash);
    if (pi & 0x04)
        return ud_decode(r, fo & FO_UDHI, m);
    return 0;
}

int pdu_decode(const char *hex, size_t hex_len, size_t expect_tpdu_len, struct pdu_msg *out)
{
    uint8_t b[PDU_OCTETS_MAX] = {0};
    struct rd r = {b, hex_len / 2, 0};
    uint8_t fo;
    size_t tpdu_start;
    int rc = -EINVAL;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!hex || hex_len == 0 || hex_len % 2 || hex_len / 2 > sizeof b)
        return -EINVAL;
    for (size_t i = 0; i < hex_len / 2; i++) {
        int h = hex_nibble(hex[2 * i]), l = hex_nibble(hex[2 * i + 1]);
        if (h < 0 || l < 0)
            return -EINVAL;
        b[i] = (uint8_t)(h << 4 | l);
    }

    if (smsc_decode(&r, out->smsc) < 0)
        goto err;
    tpdu_start = r.pos;
    if (expect_tpdu_len && expect_tpdu_len != r.n - tpdu_start)
        goto err;
    if (rd_u8(&r, &fo) < 0)
        goto err;
    switch (fo & FO_MTI_MASK) {
    case FO_MTI_DELIVER:
        rc = deliver_decode(&r, fo, out);
        break;
    case FO_MTI_SUBMIT:
        rc = submit_decode(&r, fo, out);
        break;
    case FO_MTI_STATUS:
        rc = status_decode(&r, fo, out);
        break;
    default: /* reserved */
        rc = -EINVAL;
        break;
    }
    /* Octets left over mean we read a field differently from the sender. */
    if (rc == 0 && r.pos != r.n)
        rc = -EINVAL;
    if (rc == 0)
        return 0;
err:
    memset(out, 0, sizeof *out);
    return -EINVAL;
}
