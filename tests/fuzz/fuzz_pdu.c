/* libFuzzer target: modem/pdu.
 *
 * The first input byte picks what the rest is:
 *   0 mod 3: hex text straight to pdu_decode (what AT+CMGR/+CMT hand us,
 *            including garbage); the announced TPDU length from byte 1;
 *   1 mod 3: raw octets, written as hex and decoded, so the decoder's
 *            field parsing (not its hex check) sees the variety;
 *   2 mod 3: an encode -> decode round trip. A valid UTF-8 text and a valid
 *            number are derived from the input; every part must decode, and
 *            the parts' texts joined must give back the text, their address
 *            the number. pdu_count_parts must agree with pdu_encode.
 * The decoder must never crash, never read past hex_len (ASan: the input is
 * copied into a buffer of exactly its size), return 0 or -EINVAL, and on 0
 * give NUL-terminated strings and UTF-8 text (except 8-bit data). A status
 * report becomes the B/sms/report JSON, which must parse, with the status
 * TP-ST says and the reference and recipient the PDU holds. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/utf8.h"
#include "modem/pdu.h"
#include "mqtt/json.h"

static struct pdu_msg msg;
static struct pdu_part parts[PDU_PARTS_MAX];
static char text[4 * 2048];
static uint8_t joined[sizeof(text)];

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_pdu: invariant failed: %s\n", what);
        abort();
    }
}

static bool nul_within(const char *s, size_t size)
{
    return memchr(s, 0, size) != NULL;
}

/* What cmd_sms.c publishes for it, as for a report the bridge did not send. */
static void check_report(const struct pdu_msg *m)
{
    const struct sms_report r = {
        .reference = m->mr, .to = m->addr, .st = m->status, .time = m->discharge_time,
        .submitted = m->time,
    };
    const char *want = m->status < 0x20 ? "delivered" : m->status < 0x40 ? "pending" : "failed";
    char *json = json_sms_report(&r);
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(o, "reference");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "to");

    check(o != NULL, "B/sms/report is not JSON");
    check(cJSON_IsString(status) && strcmp(status->valuestring, want) == 0,
          "B/sms/report status does not follow TP-ST");
    check(cJSON_IsNumber(ref) && ref->valueint == m->mr, "B/sms/report reference");
    check(m->addr[0] ? cJSON_IsString(to) && strcmp(to->valuestring, m->addr) == 0
                     : cJSON_IsNull(to),
          "B/sms/report to");
    check(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "id")) &&
              cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "part")) &&
              cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "parts")),
          "B/sms/report of an unknown SMS: id, part or parts not null");
    cJSON_Delete(o);
    free(json);
}

static void check_msg(int rc, const struct pdu_msg *m)
{
    check(rc == 0 || rc == -EINVAL, "pdu_decode returned neither 0 nor -EINVAL");
    if (rc != 0)
        return;
    check(nul_within(m->smsc, sizeof(m->smsc)) && nul_within(m->addr, sizeof(m->addr)) &&
              nul_within(m->time, sizeof(m->time)) &&
              nul_within(m->discharge_time, sizeof(m->discharge_time)),
          "unterminated string in pdu_msg");
    check(m->text_len <= PDU_TEXT_MAX && m->text[m->text_len] == 0, "text not bounded/terminated");
    if (m->alphabet != PDU_8BIT)
        check(utf8_valid(m->text, m->text_len), "decoded text is not UTF-8");
    check(utf8_valid((const uint8_t *)m->addr, strlen(m->addr)), "decoded address is not UTF-8");
    if (m->concat)
        check(m->concat_seq >= 1 && m->concat_seq <= m->concat_total, "concat seq out of range");
    if (m->type == PDU_STATUS_REPORT)
        check_report(m);
}

static void decode_copy(const char *src, size_t n, size_t expect)
{
    char *hex = malloc(n ? n : 1); /* exactly sized: ASan sees any over-read */
    int rc;

    check(hex != NULL, "malloc");
    memcpy(hex, src, n);
    rc = pdu_decode(hex, n, expect, &msg);
    check_msg(rc, &msg);
    free(hex);
}

static void decode_raw_octets(const uint8_t *d, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    static char hex[2 * 4096];

    if (n > sizeof(hex) / 2)
        n = sizeof(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    /* The TPDU length the module would announce for a well-formed PDU:
     * everything after the SMSC field. */
    decode_copy(hex, 2 * n, n > 0 && (size_t)d[0] + 1 <= n ? n - 1 - d[0] : 0);
    decode_copy(hex, 2 * n, 0);
}

/* A code point from two input bytes, aimed at the interesting sets: the
 * GSM basic and extension tables, the rest of the BMP, and beyond it. */
static uint32_t pick_cp(uint8_t a, uint8_t b)
{
    static const uint32_t gsm[] = {
        '@', 0xA3, '$', 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, '\n', 0xD8, 0xF8, '\r',
        0xC5, 0xE5, 0x394, '_', 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398,
        0x39E, 0xC6, 0xE6, 0xDF, 0xC9, ' ', 0xA4, 0xA1, 0xC4, 0xD6, 0xD1, 0xDC, 0xA7, 0xBF,
        0xE4, 0xF6, 0xF1, 0xFC, 0xE0, 0x0C, '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC,
    };
    uint32_t cp;

    switch (a >> 6) {
    case 0:
        return gsm[b % (sizeof(gsm) / sizeof(gsm[0]))];
    case 1:
        return (uint32_t)(a & 0x3F) << 8 | b;              /* U+0000..U+3FFF */
    case 2:
        cp = (uint32_t)(a & 0x3F) << 10 | (uint32_t)b << 2; /* up to U+FFFF */
        return cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp;
    default:
        return 0x10000 + ((uint32_t)(a & 0x3F) << 14 | (uint32_t)b << 6); /* astral */
    }
}

static void round_trip(const uint8_t *d, size_t n)
{
    struct pdu_encode_opts o = {0};
    char addr[24], smsc[24];
    size_t len = 0, i = 0, n_parts = 0, counted = 0, at = 0, alen;
    enum pdu_alphabet a, ca;
    uint8_t f, digits;
    int rc, crc;

    if (n < 3)
        return;
    f = d[i++];
    digits = d[i++];
    o.type = f & 1 ? PDU_SUBMIT : PDU_DELIVER;
    o.flash = f & 2;
    o.status_report = f & 4;
    o.force_ucs2 = (f & 0x18) == 0x18;
    o.concat_ref = d[i++];
    /* 2000 .. 2049: inside the range the encoder accepts. */
    o.timestamp = (time_t)946684800 + (time_t)(f >> 1) * 12345678;
    o.tz_minutes = ((int)(digits % 113) - 56) * 15;
    /* The number: 1-20 digits, international or not; digits from the input. */
    alen = 0;
    if (f & 0x20)
        addr[alen++] = '+';
    for (size_t k = 0, nd = 1 + digits % 20; k < nd; k++)
        addr[alen++] = (char)('0' + (k < n - i ? d[i + k] : k) % 10);
    addr[alen] = 0;
    o.addr = addr;
    if (f & 0x40) {
        snprintf(smsc, sizeof(smsc), "+49%u", (unsigned)d[2]);
        o.smsc = smsc;
    }
    /* The text: the input itself when it is UTF-8, else code points built
     * from byte pairs. */
    if (utf8_valid(d + i, n - i) && n - i < sizeof(text)) {
        memcpy(text, d + i, n - i);
        len = n - i;
    } else {
        for (; i + 1 < n && len + 4 <= sizeof(text); i += 2)
            len += utf8_encode(pick_cp(d[i], d[i + 1]), (uint8_t *)text + len);
    }

    rc = pdu_encode(&o, text, len, parts, PDU_PARTS_MAX, &n_parts, &a);
    crc = pdu_count_parts(text, len, o.force_ucs2, &counted, &ca);
    check(crc == 0, "pdu_count_parts refused valid UTF-8");
    check(counted == n_parts, "pdu_count_parts and pdu_encode disagree on parts");
    if (rc == -E2BIG) {
        check(n_parts > PDU_PARTS_MAX, "-E2BIG with few parts");
        return;
    }
    if (rc != 0) {
        fprintf(stderr, "fuzz_pdu: pdu_encode(\"%s\", %zu bytes) = %d\n", addr, len, rc);
        check(false, "pdu_encode refused a valid text and number");
    }
    check(ca == a, "pdu_count_parts and pdu_encode disagree on the alphabet");
    for (size_t k = 0; k < n_parts; k++) {
        size_t hl = strnlen(parts[k].hex, sizeof(parts[k].hex));

        check(hl < sizeof(parts[k].hex) && hl % 2 == 0, "encoded hex not terminated or odd");
        rc = pdu_decode(parts[k].hex, hl, parts[k].tpdu_len, &msg);
        check_msg(rc, &msg);
        check(rc == 0, "own PDU does not decode");
        check(msg.type == o.type, "type differs");
        check(strcmp(msg.addr, addr) == 0, "number differs");
        check(strcmp(msg.smsc, o.smsc ? o.smsc : "") == 0, "SMSC differs");
        check(msg.alphabet == a, "alphabet differs");
        check(msg.concat == (n_parts > 1), "concat flag differs");
        if (n_parts > 1)
            check(msg.concat_seq == k + 1 && msg.concat_total == n_parts &&
                      msg.concat_ref == o.concat_ref,
                  "concat IE differs");
        check(at + msg.text_len <= sizeof(joined), "joined text too long");
        memcpy(joined + at, msg.text, msg.text_len);
        at += msg.text_len;
    }
    check(at == len && memcmp(joined, text, len) == 0, "text differs after the round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        decode_copy((const char *)data + 1, size - 1, size > 1 ? data[1] : 0);
        decode_copy((const char *)data + 1, size - 1, 0);
        break;
    case 1:
        decode_raw_octets(data + 1, size - 1);
        break;
    default:
        round_trip(data + 1, size - 1);
        break;
    }
    return 0;
}
