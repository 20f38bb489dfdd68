/* Unit tests for the SMS PDU codec (bridge/modem/pdu*.c).
 *
 * Published vectors (23.040 examples as reproduced by dreamfabric.com's
 * "SMS messages and the PDU format" and node-pdu's README) and hand-built
 * PDUs that were cross-checked with node-pdu 2.1.1, then properties:
 * boundaries, malformed input at every truncation, byte-flip fuzzing, and
 * an encode -> decode round trip over pseudo-random texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/pdu.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct pdu_msg msg; /* big: keep it off the cmocka stack */

static int decode(const char *hex, struct pdu_msg *m)
{
    return pdu_decode(hex, strlen(hex), 0, m);
}

/* ---- decoding published and cross-checked PDUs ---------------------------- */

struct decode_case {
    const char *name;
    const char *hex;
    enum pdu_type type;
    const char *smsc, *addr, *time, *text;
    enum pdu_alphabet alphabet;
    bool concat;
    uint16_t ref;
    uint8_t total, seq;
    bool flash;
};

static const struct decode_case decode_cases[] = {
    {"dreamfabric DELIVER, 1999, OA type 0xC8 (subscriber number)",
     "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37", PDU_DELIVER,
     "+27381000015", "27838890001", "1999-03-29T15:16:59+02:00", "hellohello"},
    {"classic DELIVER hellohello",
     "07919730071111F1000B919746121611F10000211110312270400AE8329BFD4697D9EC37", PDU_DELIVER,
     "+79037011111", "+79642161111", "2012-11-01T13:22:07+01:00", "hellohello"},
    {"node-pdu README DELIVER",
     "07919730071111F1000B919746121611F10000811170021222230DC8329BFD6681EE6F399B1C02",
     PDU_DELIVER, "+79037011111", "+79642161111", "2018-11-07T20:21:22+08:00", "Hello, world!"},
    {"dreamfabric SUBMIT, VPF relative 0xAA", "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
     PDU_SUBMIT, "", "+46708251358", "", "hellohello"},
    {"node-pdu README SUBMIT", "0001000C9199999999999900000FC8329BFD0695ED6579FEED2E8700",
     PDU_SUBMIT, "", "+999999999999", "", "Hello everyone!"},
    {"16-bit concat reference, negative tz",
     "00440B911316325476F80000621112600000290B0608041234030261F118", PDU_DELIVER, "",
     "+31612345678", "2026-11-21T06:00:00-03:00", "abc", PDU_GSM7, true, 0x1234, 3, 2},
    {"unknown IE skipped, 8-bit concat, 2 fill bits",
     "00440B911316325476F8000062111260000040100B05040B8423F00003AA0201A0D3", PDU_DELIVER, "",
     "+31612345678", "2026-11-21T06:00:00+01:00", "hi", PDU_GSM7, true, 0xAA, 2, 1},
    {"UCS-2 with a surrogate pair",
     "00040B911316325476F80008621112600000400A004800690020D83DDE00", PDU_DELIVER, "",
     "+31612345678", "2026-11-21T06:00:00+01:00", "Hi \xF0\x9F\x98\x80", PDU_UCS2},
    /* 23.038 6.2.1.1: ESC 'A' has no symbol -> 'A'; ESC ESC -> space;
     * a trailing ESC -> space. */
    {"GSM escapes without a symbol", "00040B911316325476F8000062111260000040069BE06683DF00",
     PDU_DELIVER, "", "+31612345678", "2026-11-21T06:00:00+01:00", "A x "},
    {"unpaired surrogates -> U+FFFD",
     "00040B911316325476F800086211126000004006D83D0041DE00", PDU_DELIVER, "", "+31612345678",
     "2026-11-21T06:00:00+01:00", "\xEF\xBF\xBD" "A" "\xEF\xBF\xBD", PDU_UCS2},
    {"high surrogate at the very end", "00040B911316325476F800086211126000004004DE00D83D",
     PDU_DELIVER, "", "+31612345678", "2026-11-21T06:00:00+01:00",
     "\xEF\xBF\xBD\xEF\xBF\xBD", PDU_UCS2},
    {"alphanumeric originator with ESC", "00040ED0C7F7FBCC2E6FCA0000621112600000400161",
     PDU_DELIVER, "", "Google\xE2\x82\xAC", "2026-11-21T06:00:00+01:00", "a"},
    {"national number, quarter-hour tz +05:45", "00040A812143658799000062111260000032016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+05:45", "a"},
    {"DCS 0xF0: class 0 GSM (flash)", "00040A81214365879900F062111260000040016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "a", PDU_GSM7, false, 0, 0,
     0, true},
    {"DCS 0x18: class 0 UCS-2 (flash)", "00040A81214365879900186211126000004002002"
     "0", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", " ", PDU_UCS2, false, 0, 0,
     0, true},
    {"DCS 0xE0: MWI store UCS-2", "00040A81214365879900E06211126000004002004"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "A", PDU_UCS2},
    {"DCS 0xC8: MWI discard GSM", "00040A81214365879900C862111260000040016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "a"},
    {"DCS 0xD3: MWI store GSM", "00040A81214365879900D362111260000040016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "a"},
    {"DCS 0x0C: reserved alphabet read as GSM", "00040A812143658799000C62111260000040016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "a"},
    {"DCS 0x80: reserved group read as GSM", "00040A812143658799008062111260000040016"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "a"},
    {"DCS 0x48: auto-delete group, UCS-2", "00040A81214365879900486211126000004002004"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "A", PDU_UCS2},
    {"SUBMIT with an absolute VP (VPF 11)",
     "0019000A812143658799000062111260000040016"
     "1", PDU_SUBMIT, "", "1234567899", "", "a"},
    {"SUBMIT with an enhanced VP (VPF 01)",
     "0009000A812143658799000001000000000000016"
     "1", PDU_SUBMIT, "", "1234567899", "", "a"},
    {"SUBMIT without VP", "0001000A8121436587990000016"
     "1", PDU_SUBMIT, "", "1234567899", "", "a"},
    {"SCTS with an invalid date keeps the text",
     "00040A812143658799000062311260000040016"
     "1", PDU_DELIVER, "", "1234567899", "", "a"},
    {"SCTS with non-BCD digits keeps the text",
     "00040A8121436587990000621112600A0040016"
     "1", PDU_DELIVER, "", "1234567899", "", "a"},
    {"concat IE with seq 0 is ignored",
     "00440A812143658799000062111260000040080500030102006"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "0", PDU_GSM7},
    {"concat IE with seq > total is ignored",
     "00440A812143658799000062111260000040080500030102036"
     "1", PDU_DELIVER, "", "1234567899", "2026-11-21T06:00:00+01:00", "0", PDU_GSM7},
    {"address digits * # a b c", "0004068112BADC000062111260000040016"
     "1", PDU_DELIVER, "", "21*#ab", "2026-11-21T06:00:00+01:00", "a"},
    {"lower-case hex", "0011000b916407281553f80000aa0ae8329bfd4697d9ec37", PDU_SUBMIT, "",
     "+46708251358", "", "hellohello"},
    {"leap day", "00040A8121436587990000422092000000400161", PDU_DELIVER, "", "1234567899",
     "2024-02-29T00:00:00+01:00", "a"},
    {"empty user data", "00040A81214365879900006211126000004000", PDU_DELIVER, "",
     "1234567899", "2026-11-21T06:00:00+01:00", ""},
};

static void test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(decode_cases); i++) {
        const struct decode_case *c = &decode_cases[i];
        int rc = decode(c->hex, &msg);
        if (rc != 0)
            fail_msg("%s: rc %d", c->name, rc);
        assert_int_equal(msg.type, c->type);
        assert_string_equal(msg.smsc, c->smsc);
        assert_string_equal(msg.addr, c->addr);
        assert_string_equal(msg.time, c->time);
        assert_int_equal(msg.alphabet, c->alphabet);
        assert_int_equal(msg.text_len, strlen(c->text));
        assert_memory_equal(msg.text, c->text, msg.text_len);
        assert_int_equal(msg.text[msg.text_len], 0);
        assert_int_equal(msg.concat, c->concat);
        assert_int_equal(msg.concat_ref, c->ref);
        assert_int_equal(msg.concat_total, c->total);
        assert_int_equal(msg.concat_seq, c->seq);
        if (msg.flash != c->flash)
            fail_msg("%s: flash %d", c->name, msg.flash);
    }
}

static void test_decode_8bit_and_compressed(void **state)
{
    (void)state;
    /* DCS 0x04: raw octets, NUL included. */
    assert_int_equal(decode("00040A8121436587990004621112600000400300FF41", &msg), 0);
    assert_int_equal(msg.alphabet, PDU_8BIT);
    assert_int_equal(msg.text_len, 3);
    assert_memory_equal(msg.text, "\x00\xFF\x41", 3);
    assert_int_equal(msg.dcs, 0x04);
    /* DCS 0xF4: message class group, 8-bit, class 0. */
    assert_int_equal(decode("00040A81214365879900F4621112600000400201020", &msg), -EINVAL);
    assert_int_equal(decode("00040A81214365879900F46211126000004002010203", &msg), -EINVAL);
    assert_int_equal(decode("00040A81214365879900F462111260000040020102", &msg), 0);
    assert_int_equal(msg.alphabet, PDU_8BIT);
    assert_true(msg.flash);
    assert_int_equal(msg.text_len, 2);
    /* DCS 0x24: compressed, which we cannot read: raw octets. */
    assert_int_equal(decode("00040A812143658799002462111260000040021234", &msg), 0);
    assert_int_equal(msg.alphabet, PDU_8BIT);
    assert_memory_equal(msg.text, "\x12\x34", 2);
    /* PID is reported: 0x40 is "type 0", the SMS layer discards it. */
    assert_int_equal(decode("00040A8121436587994000621112600000400161", &msg), 0);
    assert_int_equal(msg.pid, 0x40);
    /* DELIVER with TP-SRI, SUBMIT with TP-SRR and TP-MR. */
    assert_int_equal(decode("00240A8121436587990000621112600000400161", &msg), 0);
    assert_true(msg.status_report);
    assert_int_equal(decode("0031420A8121436587990000A70161", &msg), 0);
    assert_true(msg.status_report);
    assert_int_equal(msg.mr, 0x42);
}

struct status_case {
    const char *name, *hex;
    const char *smsc, *addr, *time, *dt, *text;
    uint8_t mr, status;
};

static const struct status_case status_cases[] = {
    {"delivered, negative tz on TP-DT",
     "07911326040000F006D60B911326880736F4212011120000402120111210002900", "+31624000000",
     "+31628870634", "2012-02-11T21:00:00+01:00", "2012-02-11T21:01:00-03:00", "", 0xD6, 0x00},
    {"failed (0x41), TP-PI with PID and DCS only",
     "0006070A812143658799621112600000406211126010004041030008", "", "1234567899",
     "2026-11-21T06:00:00+01:00", "2026-11-21T06:01:00+01:00", "", 0x07, 0x41},
    {"TP-PI extended, with UD", "0006070A81214365879962111260000040621112601000402084000161",
     "", "1234567899", "2026-11-21T06:00:00+01:00", "2026-11-21T06:01:00+01:00", "a", 0x07, 0x20},
    /* As the A7670 hands them over (+CDS, AT+CMGR): SMSC field, TP-MTI 10
     * with TP-MMS (0x06), TP-MR, TP-RA, TP-SCTS (when the SC took the
     * SUBMIT), TP-DT (when it was delivered or given up), TP-ST. */
    {"delivered, with SMSC, SCTS and discharge time",
     "0791947122723033064D0D91947110325476F8623041906235406230419062854000", "+491722270333",
     "+4917012345678", "2026-03-14T09:26:53+01:00", "2026-03-14T09:26:58+01:00", "", 77, 0x00},
    {"replaced by the SC (0x02): still a completed transaction",
     "0006070D91947110325476F8621112600000406211126000104002", "", "+4917012345678",
     "2026-11-21T06:00:00+01:00", "2026-11-21T06:00:01+01:00", "", 0x07, 0x02},
    {"SME busy (0x21), national recipient, reference 0 after the wrap",
     "0006000B811007214365F7621112600000406211126000034021", "", "01701234567",
     "2026-11-21T06:00:00+01:00", "2026-11-21T06:00:30+01:00", "", 0x00, 0x21},
    {"validity period expired (0x46) after a week, TP-PI 00",
     "0006FF0D91947110325476F862114160000040621112600000404600", "", "+4917012345678",
     "2026-11-14T06:00:00+01:00", "2026-11-21T06:00:00+01:00", "", 0xFF, 0x46},
    {"congestion, SC gave up (0x60)", "0006080D91947110325476F8621112600000406211127000004060",
     "", "+4917012345678", "2026-11-21T06:00:00+01:00", "2026-11-21T07:00:00+01:00", "", 0x08,
     0x60},
};

static void test_decode_status_report(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(status_cases); i++) {
        const struct status_case *c = &status_cases[i];
        if (decode(c->hex, &msg) != 0)
            fail_msg("%s", c->name);
        assert_int_equal(msg.type, PDU_STATUS_REPORT);
        assert_string_equal(msg.smsc, c->smsc);
        assert_string_equal(msg.addr, c->addr);
        assert_string_equal(msg.time, c->time);
        assert_string_equal(msg.discharge_time, c->dt);
        assert_string_equal((const char *)msg.text, c->text);
        assert_int_equal(msg.mr, c->mr);
        assert_int_equal(msg.status, c->status);
    }
    /* TP-PI says a PID follows, and none does. */
    assert_int_equal(decode("0006070A81214365879962111260000040621112601000400001", &msg),
                     -EINVAL);
}

/* ---- malformed input ------------------------------------------------------ */

static void test_decode_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *name, *hex;
    } bad[] = {
        {"empty", ""},
        {"odd length", "0011000B916407281553F80000AA0AE8329BFD4697D9EC3"},
        {"non-hex", "0011000B916407281553F80000AA0AE8329BFD4697D9EC3G"},
        {"space", "0011000B916407281553F8 000AA0AE8329BFD4697D9EC37"},
        {"trailing octet", "0011000B916407281553F80000AA0AE8329BFD4697D9EC3700"},
        {"UDL past the data", "0011000B916407281553F80000AA0BE8329BFD4697D9EC37"},
        {"GSM UDL 161", "0011000B916407281553F80000AAA1"},
        {"MTI 11 reserved", "0003000B916407281553F80000AA00"},
        {"address of 21 digits", "000415910000000000000000000F00006211126000004000"},
        {"SMSC of 12 octets", "0C91000000000000000000000004"},
        {"UDHL past UD", "00440A8121436587990000621112600000400205"},
        {"IE past UDHL", "00440A8121436587990008621112600000400403000301"},
        {"UDH alone, UDL short of it (GSM)", "00440A812143658799000062111260000040060500030102"
                                             "01"},
        {"UCS-2 odd text", "00040A8121436587990008621112600000400300410"
                           "0"},
        {"UDHI with UDL 0", "00440A81214365879900006211126000004000"},
        {"too long", NULL},
    };
    char longhex[2 * 177 + 1];
    memset(longhex, '0', sizeof longhex - 1);
    longhex[sizeof longhex - 1] = '\0';

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *h = bad[i].hex ? bad[i].hex : longhex;
        msg.text_len = 99;
        if (pdu_decode(h, strlen(h), 0, &msg) != -EINVAL)
            fail_msg("%s accepted", bad[i].name);
        assert_int_equal(msg.text_len, 0); /* zeroed on error */
    }
    assert_int_equal(pdu_decode(NULL, 4, 0, &msg), -EINVAL);
    assert_int_equal(pdu_decode("00", 2, 0, NULL), -EINVAL);

    /* expect_tpdu_len: the TPDU without the SMSC field. */
    const char *h = "07919730071111F1000B919746121611F10000211110312270400AE8329BFD4697D9EC37";
    assert_int_equal(pdu_decode(h, strlen(h), 28, &msg), 0);
    assert_int_equal(pdu_decode(h, strlen(h), 27, &msg), -EINVAL);
    assert_int_equal(pdu_decode(h, strlen(h), 29, &msg), -EINVAL);
    assert_int_equal(pdu_decode(h, strlen(h), 36, &msg), -EINVAL);
    /* hex_len bounds the read, not a NUL. */
    assert_int_equal(pdu_decode(h, strlen(h) - 2, 0, &msg), -EINVAL);
}

/* Every proper prefix of a PDU whose last field is length-prefixed is
 * malformed; the decoder must say so without reading past hex_len (ASan
 * checks the latter: the prefix is copied to an exactly sized buffer). */
static void test_decode_truncated_everywhere(void **state)
{
    (void)state;
    const char *all[ARRAY_LEN(decode_cases) + 1];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(decode_cases); i++)
        all[n++] = decode_cases[i].hex;
    all[n++] = status_cases[0].hex; /* no optional fields: no valid prefix */
    size_t prefixes = 0;

    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(all[i]);
        for (size_t cut = 0; cut < len; cut++) {
            char *p = malloc(cut ? cut : 1);
            assert_non_null(p);
            memcpy(p, all[i], cut);
            int rc = pdu_decode(p, cut, 0, &msg);
            free(p);
            if (rc != -EINVAL)
                fail_msg("%s: prefix of %zu accepted", all[i], cut);
            prefixes++;
        }
    }
    assert_true(prefixes > 1500);
    print_message("%zu truncated prefixes of %zu PDUs rejected\n", prefixes, n);
}

/* xorshift64*: fixed seed, same sequence on every platform. */
static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Flipped bits and octets in valid PDUs: any result is fine but a crash,
 * a read out of bounds (ASan), or an unterminated text. */
static void test_decode_mutations(void **state)
{
    (void)state;
    char buf[PDU_HEX_MAX];
    rng_state = 0x5eed5eed5eedULL;
    for (int iter = 0; iter < 200000; iter++) {
        const char *src = decode_cases[rng() % ARRAY_LEN(decode_cases)].hex;
        size_t len = strlen(src);
        memcpy(buf, src, len);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = rng() % len;
            buf[at] = "0123456789ABCDEF"[rng() % 16];
        }
        if (rng() % 8 == 0)
            len -= 2 * (rng() % (len / 2));
        if (pdu_decode(buf, len, 0, &msg) == 0) {
            assert_true(msg.text_len <= PDU_TEXT_MAX);
            assert_int_equal(msg.text[msg.text_len], 0);
            assert_non_null(memchr(msg.addr, 0, sizeof msg.addr));
            assert_non_null(memchr(msg.time, 0, sizeof msg.time));
        }
    }
}

/* ---- encoding ------------------------------------------------------------- */

struct encode_case {
    const char *name;
    struct pdu_encode_opts opts;
    const char *text;
    const char *hex[3];
    size_t tpdu_len[3];
    enum pdu_alphabet alphabet;
};

static const struct encode_case encode_cases[] = {
    /* dreamfabric's SUBMIT, but with our VP: relative 0xA7 (24 h). */
    {"SUBMIT hellohello",
     {.type = PDU_SUBMIT, .addr = "+46708251358"},
     "hellohello",
     {"0011000B916407281553F80000A70AE8329BFD4697D9EC37"},
     {23}},
    {"SUBMIT with SMSC, national number, SRR, flash",
     {.type = PDU_SUBMIT, .addr = "0123456789", .smsc = "+4917", .status_report = true,
      .flash = true},
     "a",
     {"03919471" "3100" "0A811032547698" "0010A70161"},
     {14}},
    /* National numbers and short codes: type-of-address 129 (0x81), the
     * length in digits, an odd count padded with F. */
    {"SUBMIT short code, even digits, TOA 129",
     {.type = PDU_SUBMIT, .addr = "8888"},
     "a",
     {"0011000481" "8888" "0000A70161"},
     {11}},
    {"SUBMIT short code, odd digits, TOA 129",
     {.type = PDU_SUBMIT, .addr = "12345"},
     "a",
     {"0011000581" "2143F5" "0000A70161"},
     {12}},
    {"SUBMIT national number of 20 digits, TOA 129",
     {.type = PDU_SUBMIT, .addr = "12345678901234567890"},
     "a",
     {"0011001481" "21436587092143658709" "0000A70161"},
     {19}},
    {"SUBMIT GSM extension characters",
     {.type = PDU_SUBMIT, .addr = "+49"},
     "^{}\\[~]|\xE2\x82\xAC",
     {"0011000291940000A7121BCA06B5496D5E1BDEA6B7F16D809B32"},
     {25}},
    {"SUBMIT UCS-2 (Cyrillic) and emoji surrogate pair",
     {.type = PDU_SUBMIT, .addr = "+49"},
     "\xD0\x9F\xF0\x9F\x98\x80",
     {"0011000291940008A706041FD83DDE00"},
     {15},
     PDU_UCS2},
    {"SUBMIT forced UCS-2",
     {.type = PDU_SUBMIT, .addr = "1", .force_ucs2 = true},
     "A",
     {"00110001 81F10008A7020041"},
     {11},
     PDU_UCS2},
    /* 2026-11-21 05:00:00 UTC at +01:00 -> "62111260000040". */
    {"DELIVER alphanumeric originator",
     {.type = PDU_DELIVER, .addr = "Google", .timestamp = 1795237200, .tz_minutes = 60},
     "hi",
     {"00040BD0C7F7FBCC2E03000062111260000040" "02E834"},
     {21}},
    {"DELIVER negative tz, SRI, flash",
     {.type = PDU_DELIVER, .addr = "+31612345678", .timestamp = 1795251600, .tz_minutes = -180,
      .status_report = true, .flash = true},
     "abc",
     {"00240B911316325476F80010621112600000290361F118"},
     {22}},
    {"DELIVER +05:45 across midnight UTC",
     {.type = PDU_DELIVER, .addr = "1234567899", .timestamp = 1795209300,
      .tz_minutes = 345},
     "a",
     {"00040A81214365879900006211123000003201" "61"},
     {19}},
    {"empty text",
     {.type = PDU_SUBMIT, .addr = "+49"},
     "",
     {"0011000291940000A700"},
     {9}},
};

static void strip_spaces(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        if (*in != ' ')
            out[n++] = *in;
    out[n] = '\0';
}

static void test_encode_table(void **state)
{
    (void)state;
    struct pdu_part parts[3];
    for (size_t i = 0; i < ARRAY_LEN(encode_cases); i++) {
        const struct encode_case *c = &encode_cases[i];
        size_t n = 0;
        enum pdu_alphabet a;
        int rc = pdu_encode(&c->opts, c->text, strlen(c->text), parts, 3, &n, &a);
        if (rc != 0)
            fail_msg("%s: rc %d", c->name, rc);
        assert_int_equal(a, c->alphabet);
        for (size_t k = 0; k < n; k++) {
            char want[PDU_HEX_MAX];
            strip_spaces(c->hex[k], want, sizeof want);
            if (strcmp(parts[k].hex, want) != 0)
                fail_msg("%s part %zu:\n got %s\nwant %s", c->name, k, parts[k].hex, want);
            if (parts[k].tpdu_len != c->tpdu_len[k])
                fail_msg("%s part %zu: tpdu_len %zu", c->name, k, parts[k].tpdu_len);
        }
        assert_non_null(c->hex[n - 1]);
        if (n < 3)
            assert_null(c->hex[n]);
    }
}

static void test_encode_errors(void **state)
{
    (void)state;
    struct pdu_part parts[2];
    size_t n;
    struct pdu_encode_opts o = {.type = PDU_SUBMIT, .addr = "+49"};
    static const char *const bad_utf8[] = {
        "\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xED\xBF\xBF",
        "\xF0\x80\x80\x80", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xE2\x82",
        "a\xE2\x82", "\xC3", "\xC3\x28", "\xF0\x9F\x98",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad_utf8); i++) {
        if (pdu_encode(&o, bad_utf8[i], strlen(bad_utf8[i]), parts, 2, &n, NULL) != -EINVAL)
            fail_msg("bad UTF-8 %zu accepted", i);
        if (pdu_count_parts(bad_utf8[i], strlen(bad_utf8[i]), false, &n, NULL) != -EINVAL)
            fail_msg("bad UTF-8 %zu counted", i);
    }
    /* Overlong NUL hidden behind the length: len, not NUL, bounds the text. */
    assert_int_equal(pdu_encode(&o, "ab\0\xC0", 4, parts, 2, &n, NULL), -EINVAL);

    static const char *const bad_addr[] = {"", "+", "+12a", "12 34", "123456789012345678901",
                                           "+123456789012345678901", "Google"};
    for (size_t i = 0; i < ARRAY_LEN(bad_addr); i++) {
        o.addr = bad_addr[i];
        if (pdu_encode(&o, "a", 1, parts, 2, &n, NULL) != -EINVAL)
            fail_msg("SUBMIT to '%s' accepted", bad_addr[i]);
    }
    o.addr = NULL;
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, &n, NULL), -EINVAL);

    /* Alphanumeric: DELIVER only, GSM only, at most 11 septets. */
    struct pdu_encode_opts d = {.type = PDU_DELIVER, .timestamp = 1795237200};
    static const char *const bad_alnum[] = {"Twelve chars", "\xD0\x9F", "TenChars\xE2\x82\xAC\xE2\x82\xAC"};
    for (size_t i = 0; i < ARRAY_LEN(bad_alnum); i++) {
        d.addr = bad_alnum[i];
        if (pdu_encode(&d, "a", 1, parts, 2, &n, NULL) != -EINVAL)
            fail_msg("DELIVER from '%s' accepted", bad_alnum[i]);
    }
    d.addr = "Eleven char";
    assert_int_equal(pdu_encode(&d, "a", 1, parts, 2, &n, NULL), 0);
    d.addr = "Nine char\xE2\x82\xAC"; /* 9 + 2 septets */
    assert_int_equal(pdu_encode(&d, "a", 1, parts, 2, &n, NULL), 0);
    assert_int_equal(decode(parts[0].hex, &msg), 0);
    assert_string_equal(msg.addr, "Nine char\xE2\x82\xAC");

    /* Time stamps: tz a multiple of 15 within +-19:45, years 1969..2068. */
    d.addr = "+49";
    static const struct {
        time_t ts;
        int tz;
        int rc;
    } tcase[] = {
        {1795237200, 7, -EINVAL},         {1795237200, 80 * 15, -EINVAL},
        {1795237200, -80 * 15, -EINVAL},  {1795237200, 79 * 15, 0},
        {1795237200, -79 * 15, 0},        {0, 0, 0},
        {-86400 * 365, 0, 0},             {-86400 * 366, 0, -EINVAL},
        {3124223999, 0, 0} /* 2068-12-31T23:59:59Z */, {3124224000, 0, -EINVAL},
    };
    for (size_t i = 0; i < ARRAY_LEN(tcase); i++) {
        d.timestamp = tcase[i].ts;
        d.tz_minutes = tcase[i].tz;
        if (pdu_encode(&d, "a", 1, parts, 2, &n, NULL) != tcase[i].rc)
            fail_msg("time case %zu", i);
    }
    d.timestamp = 0;
    d.tz_minutes = 0;
    assert_int_equal(pdu_encode(&d, "a", 1, parts, 2, &n, NULL), 0);
    assert_int_equal(decode(parts[0].hex, &msg), 0);
    assert_string_equal(msg.time, "1970-01-01T00:00:00+00:00");
    d.timestamp = -1;
    d.tz_minutes = -60;
    assert_int_equal(pdu_encode(&d, "a", 1, parts, 2, &n, NULL), 0);
    assert_int_equal(decode(parts[0].hex, &msg), 0);
    assert_string_equal(msg.time, "1969-12-31T22:59:59-01:00");

    /* SMSC: digits only. */
    o.addr = "+49";
    o.smsc = "+49 171";
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, &n, NULL), -EINVAL);
    o.smsc = "+491710760000";
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, &n, NULL), 0);
    assert_int_equal(decode(parts[0].hex, &msg), 0);
    assert_string_equal(msg.smsc, "+491710760000");
    o.smsc = "";
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, &n, NULL), 0);
    assert_memory_equal(parts[0].hex, "0011", 4);

    o.type = PDU_STATUS_REPORT;
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, &n, NULL), -EINVAL);
    o.type = PDU_SUBMIT;
    assert_int_equal(pdu_encode(NULL, "a", 1, parts, 2, &n, NULL), -EINVAL);
    assert_int_equal(pdu_encode(&o, NULL, 1, parts, 2, &n, NULL), -EINVAL);
    assert_int_equal(pdu_encode(&o, "a", 1, NULL, 2, &n, NULL), -EINVAL);
    assert_int_equal(pdu_encode(&o, "a", 1, parts, 2, NULL, NULL), -EINVAL);
    assert_int_equal(pdu_encode(&o, NULL, 0, parts, 1, &n, NULL), 0);
    assert_int_equal(pdu_count_parts(NULL, 0, false, &n, NULL), 0);
    assert_int_equal(n, 1);
}

/* ---- boundaries ----------------------------------------------------------- */

struct boundary_case {
    const char *name;
    const char *unit; /* repeated */
    size_t repeat;
    const char *tail; /* appended once */
    bool force_ucs2;
    size_t parts;
    enum pdu_alphabet alphabet;
    size_t first_udl; /* TP-UDL of part 1 */
};

static const struct boundary_case boundaries[] = {
    {"160 GSM", "a", 160, "", false, 1, PDU_GSM7, 160},
    {"161 GSM", "a", 161, "", false, 2, PDU_GSM7, 7 + 153},
    {"159 GSM + euro (161 septets)", "a", 159, "\xE2\x82\xAC", false, 2, PDU_GSM7, 160},
    {"158 GSM + euro (160 septets)", "a", 158, "\xE2\x82\xAC", false, 1, PDU_GSM7, 160},
    {"306 GSM", "a", 306, "", false, 2, PDU_GSM7, 160},
    {"307 GSM", "a", 307, "", false, 3, PDU_GSM7, 160},
    /* The escape would be septet 153 of part 1: it moves with its char. */
    {"152 + euro straddles", "a", 152, "\xE2\x82\xAC" "bbbbbbbbbb", false, 2, PDU_GSM7, 7 + 152},
    {"153 euros", "\xE2\x82\xAC", 153, "", false, 3, PDU_GSM7, 7 + 152},
    {"80 euros = 160 septets", "\xE2\x82\xAC", 80, "", false, 1, PDU_GSM7, 160},
    {"70 UCS-2", "\xD0\x96", 70, "", false, 1, PDU_UCS2, 140},
    {"71 UCS-2", "\xD0\x96", 71, "", false, 2, PDU_UCS2, 6 + 134},
    {"134 UCS-2", "\xD0\x96", 134, "", false, 2, PDU_UCS2, 140},
    {"135 UCS-2", "\xD0\x96", 135, "", false, 3, PDU_UCS2, 140},
    {"35 emoji = 70 units", "\xF0\x9F\x98\x80", 35, "", false, 1, PDU_UCS2, 140},
    {"36 emoji", "\xF0\x9F\x98\x80", 36, "", false, 2, PDU_UCS2, 6 + 132},
    {"66 + emoji straddles", "\xD0\x96", 66, "\xF0\x9F\x98\x80\xD0\x96\xD0\x96\xD0\x96", false, 2, PDU_UCS2, 6 + 132},
    {"forced UCS-2 70", "a", 70, "", true, 1, PDU_UCS2, 140},
    {"forced UCS-2 71", "a", 71, "", true, 2, PDU_UCS2, 140},
    {"6 parts GSM", "a", 153 * 6, "", false, 6, PDU_GSM7, 160},
    {"7 parts GSM", "a", 153 * 6 + 1, "", false, 7, PDU_GSM7, 160},
};

static char big[153 * 300 * 4 + 8];

static size_t build(const struct boundary_case *c)
{
    size_t n = 0, ul = strlen(c->unit), tl = strlen(c->tail);
    for (size_t i = 0; i < c->repeat; i++, n += ul)
        memcpy(big + n, c->unit, ul);
    memcpy(big + n, c->tail, tl);
    return n + tl;
}

/* TP-UDL: the octet right before the user data; find it by decoding the
 * header fields we wrote (SMSC "00", SUBMIT, VP). */
static unsigned udl_of(const struct pdu_part *p)
{
    unsigned addr_digits;
    sscanf(p->hex + 6, "%2x", &addr_digits);
    size_t at = 2 + 2 + 2 + 2 + 2 + (addr_digits + 1) / 2 * 2 + 2 + 2 + 2;
    unsigned udl;
    sscanf(p->hex + at, "%2x", &udl);
    return udl;
}

static struct pdu_part many[PDU_PARTS_MAX];

static void test_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(boundaries); i++) {
        const struct boundary_case *c = &boundaries[i];
        struct pdu_encode_opts o = {.type = PDU_SUBMIT, .addr = "+49", .force_ucs2 = c->force_ucs2,
                                    .concat_ref = 0x77};
        size_t len = build(c), n, counted;
        enum pdu_alphabet a, ca;
        int rc = pdu_encode(&o, big, len, many, PDU_PARTS_MAX, &n, &a);
        if (rc != 0 || n != c->parts)
            fail_msg("%s: rc %d, %zu parts", c->name, rc, n);
        assert_int_equal(pdu_count_parts(big, len, c->force_ucs2, &counted, &ca), 0);
        assert_int_equal(counted, n);
        assert_int_equal(ca, a);
        assert_int_equal(a, c->alphabet);
        if (udl_of(&many[0]) != c->first_udl)
            fail_msg("%s: UDL %u", c->name, udl_of(&many[0]));
        /* Reassemble: every part decodes, numbered, text comes back. */
        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(decode(many[k].hex, &msg), 0);
            assert_int_equal(msg.concat, n > 1);
            if (n > 1) {
                assert_int_equal(msg.concat_ref, 0x77);
                assert_int_equal(msg.concat_total, n);
                assert_int_equal(msg.concat_seq, k + 1);
            }
            assert_true(at + msg.text_len <= len);
            assert_memory_equal(big + at, msg.text, msg.text_len);
            at += msg.text_len;
        }
        assert_int_equal(at, len);
    }

    /* -E2BIG: too many for the caller, or for the 8-bit part counter. */
    struct pdu_encode_opts o = {.type = PDU_SUBMIT, .addr = "+49"};
    size_t n;
    memset(big, 'a', 153 * 3);
    assert_int_equal(pdu_encode(&o, big, 153 * 3, many, 2, &n, NULL), -E2BIG);
    assert_int_equal(n, 3);
    memset(big, 'a', 153 * 256 + 1);
    assert_int_equal(pdu_encode(&o, big, 153 * 255, many, PDU_PARTS_MAX, &n, NULL), 0);
    assert_int_equal(n, 255);
    assert_int_equal(pdu_encode(&o, big, 153 * 255 + 1, many, PDU_PARTS_MAX, &n, NULL), -E2BIG);
    assert_int_equal(n, 256);
    assert_int_equal(pdu_count_parts(big, 153 * 256 + 1, false, &n, NULL), 0);
    assert_int_equal(n, 257);
}

/* ---- round trip over pseudo-random texts ---------------------------------- */

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The whole GSM basic table (ESC excluded), written independently of
 * pdu_gsm7.c as UTF-8 strings. */
static const char *const gsm_basic_chars[] = {
    "@", "\xC2\xA3", "$", "\xC2\xA5", "\xC3\xA8", "\xC3\xA9", "\xC3\xB9", "\xC3\xAC", "\xC3\xB2",
    "\xC3\x87", "\n", "\xC3\x98", "\xC3\xB8", "\r", "\xC3\x85", "\xC3\xA5", "\xCE\x94", "_",
    "\xCE\xA6", "\xCE\x93", "\xCE\x9B", "\xCE\xA9", "\xCE\xA0", "\xCE\xA8", "\xCE\xA3",
    "\xCE\x98", "\xCE\x9E", "\xC3\x86", "\xC3\xA6", "\xC3\x9F", "\xC3\x89", " ", "!", "\"",
    "#", "\xC2\xA4", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/", "0", "1", "2", "3",
    "4", "5", "6", "7", "8", "9", ":", ";", "<", "=", ">", "?", "\xC2\xA1", "A", "B", "C", "D",
    "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V",
    "W", "X", "Y", "Z", "\xC3\x84", "\xC3\x96", "\xC3\x91", "\xC3\x9C", "\xC2\xA7", "\xC2\xBF",
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
    "s", "t", "u", "v", "w", "x", "y", "z", "\xC3\xA4", "\xC3\xB6", "\xC3\xB1", "\xC3\xBC",
    "\xC3\xA0",
};
static const char *const gsm_ext_chars[] = {"\f", "^", "{", "}", "\\", "[", "~", "]", "|",
                                            "\xE2\x82\xAC"};

/* One random character: class 0 GSM basic, 1 extension, 2 BMP outside GSM
 * (never a surrogate), 3 outside the BMP. *gsm: whether it is GSM. */
static size_t random_char(char *o, unsigned cls, bool *gsm, size_t *septets, size_t *units)
{
    const char *s;
    uint32_t cp;
    switch (cls) {
    case 0:
        s = gsm_basic_chars[rng() % ARRAY_LEN(gsm_basic_chars)];
        *septets += 1, *units += 1;
        break;
    case 1:
        s = gsm_ext_chars[rng() % ARRAY_LEN(gsm_ext_chars)];
        *septets += 2, *units += 1;
        break;
    case 2:
        do {
            static const uint32_t pick[] = {0x60, 0xC0, 0xE7, 0xA9, 0x0, 0x7F, 0xFFFD, 0xFEFF};
            cp = rng() % 4 ? 0x100 + rng() % (0xD800 - 0x100) : pick[rng() % ARRAY_LEN(pick)];
        } while (cp >= 0x391 && cp <= 0x3A9); /* avoid the Greek capitals in GSM */
        *gsm = false, *units += 1;
        return put_utf8(o, cp);
    default:
        cp = rng() % 2 ? 0x1F300 + rng() % 0x300 : 0x10000 + rng() % 0x100000;
        *gsm = false, *units += 2;
        return put_utf8(o, cp);
    }
    size_t l = strlen(s);
    memcpy(o, s, l);
    return l;
}

static void test_round_trip(void **state)
{
    (void)state;
    static char text[8 * 1024];
    static struct pdu_part parts[8];
    rng_state = 0x1234567887654321ULL;
    size_t total_parts = 0;

    for (int iter = 0; iter < 4000; iter++) {
        unsigned mix = rng() % 4; /* 0 GSM, 1 GSM+ext, 2 +BMP, 3 +emoji */
        size_t span = rng() % 4 ? 180 : 920; /* mostly 1-2 parts, up to 14 */
        size_t target = 1 + rng() % span;
        size_t len = 0, septets = 0, units = 0;
        bool gsm = true;
        for (size_t i = 0; i < target; i++) {
            unsigned cls = mix == 0 ? 0 : rng() % (mix + 1);
            if (cls > 1 && rng() % 3)
                cls = 0; /* mostly GSM even in mixed texts */
            len += random_char(text + len, cls, &gsm, &septets, &units);
        }
        /* One statement per draw: the order in which an initializer list
         * is evaluated is unspecified, and the sequence must not depend on
         * the compiler. */
        struct pdu_encode_opts o = {0};
        o.type = rng() % 2 ? PDU_SUBMIT : PDU_DELIVER;
        o.addr = rng() % 2 ? "+4917612345678" : "0176123";
        o.smsc = rng() % 2 ? NULL : "+491710760000";
        o.flash = rng() % 5 == 0;
        o.status_report = rng() % 2;
        o.concat_ref = (uint8_t)rng();
        o.timestamp = (time_t)(946684800 + rng() % 2000000000u);
        o.tz_minutes = ((int)(rng() % 113) - 56) * 15;
        o.force_ucs2 = rng() % 10 == 0;
        if (o.type == PDU_DELIVER && rng() % 3 == 0)
            o.addr = "Shop 24";
        if (o.timestamp > 3124223999 - 86400)
            o.timestamp = 3124223999 - 86400;
        size_t n, counted;
        enum pdu_alphabet a, ca;
        int rc = pdu_encode(&o, text, len, parts, ARRAY_LEN(parts), &n, &a);
        assert_int_equal(pdu_count_parts(text, len, o.force_ucs2, &counted, &ca), 0);
        assert_int_equal(counted, n);
        assert_int_equal(ca, a);
        bool use_gsm = gsm && !o.force_ucs2;
        assert_int_equal(a, use_gsm ? PDU_GSM7 : PDU_UCS2);
        size_t cost = use_gsm ? septets : units;
        size_t single = use_gsm ? 160 : 70, multi = use_gsm ? 153 : 67;
        if (cost <= single)
            assert_int_equal(n, 1);
        else /* greedy split: at most one unit lost per part to a pair */
            assert_true(n >= (cost + multi - 1) / multi && n <= (cost + multi - 2) / (multi - 1));
        if (rc == -E2BIG) {
            assert_true(n > ARRAY_LEN(parts));
            continue;
        }
        assert_int_equal(rc, 0);
        total_parts += n;

        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
            size_t hl = strlen(parts[k].hex);
            size_t smsc_octets = o.smsc ? 8 : 1;
            assert_int_equal(parts[k].tpdu_len, hl / 2 - smsc_octets);
            assert_int_equal(pdu_decode(parts[k].hex, hl, parts[k].tpdu_len, &msg), 0);
            assert_int_equal(msg.type, o.type);
            assert_string_equal(msg.addr, o.addr);
            assert_string_equal(msg.smsc, o.smsc ? o.smsc : "");
            assert_int_equal(msg.alphabet, a);
            assert_int_equal(msg.flash, o.flash);
            assert_int_equal(msg.status_report, o.status_report);
            assert_int_equal(msg.concat, n > 1);
            if (n > 1) {
                assert_int_equal(msg.concat_ref, o.concat_ref);
                assert_int_equal(msg.concat_total, n);
                assert_int_equal(msg.concat_seq, k + 1);
            }
            if (o.type == PDU_DELIVER)
                assert_int_equal(strlen(msg.time), 25);
            if (at + msg.text_len > len || memcmp(text + at, msg.text, msg.text_len) != 0)
                fail_msg("iteration %d part %zu: text differs", iter, k);
            at += msg.text_len;
        }
        assert_int_equal(at, len);
    }
    assert_true(total_parts > 6000);
    print_message("4000 texts, %zu parts, round trip ok\n", total_parts);
}

/* The time stamp survives the trip for every quarter-hour offset. */
static void test_scts_round_trip(void **state)
{
    (void)state;
    struct pdu_part p;
    size_t n;
    for (int q = -79; q <= 79; q++) {
        struct pdu_encode_opts o = {.type = PDU_DELIVER, .addr = "1",
                                    .timestamp = 1795237200 /* 2026-11-21T05:00Z */,
                                    .tz_minutes = q * 15};
        assert_int_equal(pdu_encode(&o, "x", 1, &p, 1, &n, NULL), 0);
        assert_int_equal(decode(p.hex, &msg), 0);
        /* Local time = UTC + offset; check it through the offset. */
        int minutes = 5 * 60 + q * 15, day = 21;
        while (minutes < 0)
            minutes += 1440, day--;
        while (minutes >= 1440)
            minutes -= 1440, day++;
        char want[64]; /* gcc cannot bound the day and hour here */
        int aq = q < 0 ? -q : q;
        snprintf(want, sizeof want, "2026-11-%02dT%02d:%02d:00%c%02d:%02d", day, minutes / 60,
                 minutes % 60, q < 0 ? '-' : '+', aq * 15 / 60, aq * 15 % 60);
        assert_string_equal(msg.time, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_8bit_and_compressed),
        cmocka_unit_test(test_decode_status_report),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_truncated_everywhere),
        cmocka_unit_test(test_decode_mutations),
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_scts_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
