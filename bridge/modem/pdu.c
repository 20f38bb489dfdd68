/* SMS PDU codec (3GPP TS 23.040 / 23.038). See pdu.h.
 *
 * Pure: no I/O, no clock, no allocation. Every buffer is sized for the
 * largest legal PDU, and every octet read from modem input is checked
 * against the input's length before it is read.
 *
 * This file splits a text into parts and encodes them; decoding
 * (pdu_decode.c) and the GSM 7-bit alphabet with UTF-8 (pdu_gsm7.c) are
 * its siblings', listed in pdu_int.h. */
#include "modem/pdu_int.h"

#include <errno.h>
#include <string.h>
/* ---- splitting a text into parts ------------------------------------------ */

/* Septets (GSM) or UTF-16 units (UCS-2) one character takes. */
static unsigned char_cost(uint32_t cp, enum pdu_alphabet a)
{
    uint8_t code;
    if (a == PDU_UCS2)
        return cp > 0xFFFF ? 2 : 1;
    return pdu_gsm7_lookup(cp, &code);
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
        if (pdu_utf8_next(s, len, &p, &cp) < 0)
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
        int rc = pdu_utf8_next(s, len, &pos, &cp);
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
        if (pdu_utf8_next((const uint8_t *)s, n, &pos, &cp) < 0)
            return -EINVAL;
        unsigned c = pdu_gsm7_lookup(cp, &code);
        if (c == 0 || ns + c > ALNUM_SEPTETS_MAX)
            return -EINVAL;
        if (c == 2)
            sept[ns++] = GSM7_ESC;
        sept[ns++] = code;
    }
    memset(a->val, 0, sizeof a->val);
    pdu_gsm7_pack(a->val, 0, sept, ns);
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
            (void)pdu_utf8_next(s, to, &pos, &cp); /* validated by plan_text() */
            if (pdu_gsm7_lookup(cp, &code) == 2)
                sept[n++] = GSM7_ESC;
            sept[n++] = code;
        }
        /* Fill bits put the first character on a septet boundary
         * (23.040 9.2.3.24): 6 octets of UDH = 48 bits -> 7 septets. */
        size_t hsep = (hdr * 8 + 6) / 7;
        pdu_gsm7_pack(ud, hsep * 7, sept, n);
        udl = hsep + n;
        ud_len = (udl * 7 + 7) / 8;
    } else {
        size_t at = hdr, pos = from;
        while (pos < to) {
            uint32_t cp = 0;
            (void)pdu_utf8_next(s, to, &pos, &cp); /* validated by plan_text() */
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

