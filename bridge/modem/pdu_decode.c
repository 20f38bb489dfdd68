/* Decoding an SMS PDU from the modem (see pdu_int.h for the other files):
 * a cursor that checks every octet against the input's length, the
 * addresses, the timestamps, TP-DCS, the UDH and the user data, and
 * DELIVER, SUBMIT and STATUS-REPORT. */
#include "modem/pdu_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/hex.h"

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

/* 0-9 * # a b c (23.040 9.1.2.3); 0xF is the filler. */
static const char semi_octet_chars[] = "0123456789*#abc";

/* Semi-octet digits into out; stops at a filler. */
static void digits_decode(const uint8_t *v, size_t n_digits, struct wbuf *w)
{
    for (size_t i = 0; i < n_digits; i++) {
        unsigned d = (v[i / 2] >> (4 * (i % 2))) & 0x0F;
        if (d == 0x0F)
            break;
        pdu_wbuf_put(w, (uint8_t)semi_octet_chars[d]);
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
        pdu_wbuf_put(&w, '+');
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
        pdu_gsm7_to_utf8(v, 0, len * 4u / 7, &w);
    } else {
        if (TON(toa) == TON_INTERNATIONAL && len > 0)
            pdu_wbuf_put(&w, '+');
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
        pdu_gsm7_to_utf8(ud, hsep * 7, udl - hsep, &w);
        break;
    }
    case PDU_8BIT:
        for (size_t i = hdr; i < octets; i++)
            pdu_wbuf_put(&w, ud[i]);
        break;
    case PDU_UCS2:
        if ((octets - hdr) % 2)
            return -EINVAL;
        for (size_t i = hdr; i < octets; i += 2) {
            uint32_t u = (uint32_t)ud[i] << 8 | ud[i + 1];
            if (u >= 0xD800 && u <= 0xDBFF && i + 3 < octets) {
                uint32_t lo = (uint32_t)ud[i + 2] << 8 | ud[i + 3];
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    pdu_wbuf_utf8(&w, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                    i += 2;
                    continue;
                }
            }
            pdu_wbuf_utf8(&w, (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u);
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
    if (!hex || hex_len == 0 || hex_len % 2 || hex_len / 2 > sizeof b ||
        hex_decode(hex, hex_len / 2, b) < 0)
        return -EINVAL;

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
