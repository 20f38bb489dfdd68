/* Differential test of the PDU codec against node-pdu: the C half.
 *
 *   pdu_diff gen <seed> <count>   random texts, encoded by pdu_encode()
 *   pdu_diff check                decodes node-pdu's PDUs (stdin) with
 *                                 pdu_decode() and compares
 *
 * pdu-diff.js drives both and decodes our PDUs with node-pdu. The line
 * formats are plain tokens; every string travels as hex so no quoting is
 * needed.
 *
 * gen, one line per case:
 *   C <id> <S|D> <addr hex> <ref> <timestamp> <tz minutes> <G|U> <text hex>
 *     <n> <pdu 1> ... <pdu n>
 * check, one line per case on stdin:
 *   <id> <S|D> <addr hex> <time|-> <n> <ref>
 *     <pdu 1> <part 1 text hex|-|!> ... <pdu n> <part n text hex|-|!>
 *   ("-" an empty text, "!" a PDU that pdu_decode must reject)
 * and on stdout one "FAIL <id> <why>" per failure, then
 *   B <passed> <failed>
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/pdu.h"

#define MAX_PARTS 8
#define TEXT_CAP 4096 /* 6 parts of 153 septets at <= 2 octets of UTF-8 each, with room */

/* xorshift64*: the same sequence on every platform for a given seed. */
static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

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

/* The GSM default alphabet without ESC, as code points. */
static const uint16_t gsm_basic[] = {
    0x40,  0xA3,  0x24,  0xA5,  0xE8,  0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  0x0A,  0xD8,  0xF8,
    0x0D,  0xC5,  0xE5,  0x394, 0x5F,  0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398,
    0x39E, 0xC6,  0xE6,  0xDF,  0xC9,  0x20,  0x21,  0x22,  0x23,  0xA4,  0x25,  0x26,  0x27,
    0x28,  0x29,  0x2A,  0x2B,  0x2C,  0x2D,  0x2E,  0x2F,  0x30,  0x31,  0x32,  0x33,  0x34,
    0x35,  0x36,  0x37,  0x38,  0x39,  0x3A,  0x3B,  0x3C,  0x3D,  0x3E,  0x3F,  0xA1,  0x41,
    0x42,  0x43,  0x44,  0x45,  0x46,  0x47,  0x48,  0x49,  0x4A,  0x4B,  0x4C,  0x4D,  0x4E,
    0x4F,  0x50,  0x51,  0x52,  0x53,  0x54,  0x55,  0x56,  0x57,  0x58,  0x59,  0x5A,  0xC4,
    0xD6,  0xD1,  0xDC,  0xA7,  0xBF,  0x61,  0x62,  0x63,  0x64,  0x65,  0x66,  0x67,  0x68,
    0x69,  0x6A,  0x6B,  0x6C,  0x6D,  0x6E,  0x6F,  0x70,  0x71,  0x72,  0x73,  0x74,  0x75,
    0x76,  0x77,  0x78,  0x79,  0x7A,  0xE4,  0xF6,  0xF1,  0xFC,  0xE0,
};
/* The extension table without U+000C (page break): node-pdu 2.1.1's
 * EXTENDED_TABLE has '`' at 0x0A, so it would decode our ESC 0x0A as '`'.
 * Our side of that is covered by test_pdu's round trip. */
static const uint16_t gsm_ext[] = {'^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC};

/* A character outside the GSM alphabet in the BMP: mostly scripts (Latin
 * Extended, Greek, Cyrillic, CJK, Arabic...), sometimes Latin-1 or ASCII
 * characters that GSM lacks (` c-cedilla etc.), which must push the text
 * into UCS-2. */
static uint32_t random_bmp(void)
{
    static const uint32_t odd[] = {0x60, 0xC0, 0xE7, 0xA9, 0xAE, 0xB0, 0x7F, 0x01, 0xFFFD,
                                   0xFEFF, 0x2019, 0x201C, 0xFB01, 0xD7FF, 0xE000};
    for (;;) {
        uint32_t cp;
        if (rng() % 5 == 0)
            cp = odd[rng() % (sizeof odd / sizeof odd[0])];
        else
            cp = 0xC1 + rng() % (0xD800 - 0xC1);
        bool in_gsm = false;
        for (size_t i = 0; i < sizeof gsm_basic / sizeof gsm_basic[0]; i++)
            in_gsm |= gsm_basic[i] == cp;
        for (size_t i = 0; i < sizeof gsm_ext / sizeof gsm_ext[0]; i++)
            in_gsm |= gsm_ext[i] == cp;
        if (!in_gsm && cp != 0x0C)
            return cp;
    }
}

static uint32_t random_astral(void)
{
    switch (rng() % 4) {
    case 0: return 0x1F600 + rng() % 0x50;   /* emoticons */
    case 1: return 0x1F300 + rng() % 0x300;  /* pictographs */
    case 2: return 0x20000 + rng() % 0xA6E0; /* CJK extension B */
    default: return 0x10000 + rng() % 0x100000;
    }
}

static bool is_ext(uint32_t cp)
{
    for (size_t i = 0; i < sizeof gsm_ext / sizeof gsm_ext[0]; i++)
        if (gsm_ext[i] == cp)
            return true;
    return false;
}

/* A text that costs at least target septets (mix 0, 1) or UTF-16 units
 * (mix 2, 3), at most one more. mix: 0 GSM, 1 GSM + extension, 2 + BMP,
 * 3 + characters outside the BMP; 2 and 3 hold at least one character
 * that forces UCS-2. */
static size_t random_text(char *out, unsigned mix, size_t target)
{
    size_t len = 0, cost = 0;
    /* Every character costs at most 2: this index is always reached. */
    size_t forced_at = mix >= 2 ? rng() % ((target + 1) / 2) : (size_t)-1;
    /* Some texts are mostly extension characters: they move the escape
     * across part boundaries often. */
    unsigned ext_share = mix == 1 && rng() % 3 == 0 ? 6 : 1;
    /* node-pdu writes 7-bit only when no UTF-16 unit is above 0xC0: half
     * of the GSM texts keep to those characters to reach that path. */
    bool low = mix <= 1 && rng() % 2;
    for (size_t i = 0; cost < target; i++) {
        uint32_t cp;
        unsigned r = rng() % 10;
        if (i == forced_at)
            cp = mix == 3 ? random_astral() : random_bmp();
        else if (mix >= 1 && r < ext_share)
            /* the last one, the euro sign, is above 0xC0 */
            cp = gsm_ext[rng() % (sizeof gsm_ext / sizeof gsm_ext[0] - low)];
        else if (mix >= 2 && r == 1)
            cp = random_bmp();
        else if (mix == 3 && r == 2)
            cp = random_astral();
        else
            do
                cp = gsm_basic[rng() % (sizeof gsm_basic / sizeof gsm_basic[0])];
            while (low && cp > 0xC0);
        if (mix >= 2)
            cost += cp > 0xFFFF ? 2 : 1;
        else
            cost += is_ext(cp) ? 2 : 1;
        len += put_utf8(out + len, cp);
    }
    return len;
}

/* Addresses node-pdu 2.1.1 reads back unchanged. Its type detection uses
 * unanchored regexes (SCA.detectScaType): a number containing "00" and more
 * digits matches /00\d+$/ and loses its first two characters as an
 * "international prefix"; an alphanumeric name ending in a digit matches
 * /\d+$/ and becomes a number of just its digits; leading or trailing
 * spaces are trimmed. Those inputs are not generated. */
static void random_addr(char *out, bool deliver)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -.";
    unsigned kind = rng() % (deliver ? 3 : 2);
    size_t n = 0;
    if (kind == 2) {
        size_t len = 1 + rng() % 11;
        for (size_t i = 0; i < len; i++) {
            char c = alnum[rng() % (sizeof alnum - 1)];
            if (i == len - 1 || i == 0)
                c = alnum[rng() % 52];
            out[n++] = c;
        }
        out[n] = '\0';
        return;
    }
    if (kind == 0)
        out[n++] = '+';
    size_t digits = 3 + rng() % 13;
    for (size_t i = 0; i < digits; i++) {
        char d = (char)('0' + rng() % 10);
        if (d == '0' && n > 0 && out[n - 1] == '0')
            d = '1';
        if (kind == 0 && i == 0 && d == '0')
            d = '4';
        out[n++] = d;
    }
    out[n] = '\0';
}

static void print_hex(const void *p, size_t n)
{
    const uint8_t *b = p;
    if (n == 0) {
        fputs("-", stdout); /* an empty token would vanish */
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("%02X", b[i]);
}

static int cmd_gen(uint64_t seed, unsigned count)
{
    static char text[TEXT_CAP];
    static struct pdu_part parts[MAX_PARTS];
    char addr[64];
    rng_state = seed ? seed : 1;

    for (unsigned id = 0; id < count; id++) {
        unsigned mix = rng() % 4;
        unsigned want_parts = 1 + id % 6;
        size_t single = mix >= 2 ? PDU_UCS2_SINGLE : PDU_GSM7_SINGLE;
        size_t multi = mix >= 2 ? PDU_UCS2_MULTI : PDU_GSM7_MULTI;
        /* A cost that needs exactly want_parts parts: the greedy split
         * loses at most one septet/unit per part (an escape or a pair that
         * moves to the next part), and the text may overshoot by one. */
        size_t lo = want_parts == 1 ? 1 : (want_parts - 1) * multi + 1;
        size_t hi = want_parts == 1 ? single - 1 : want_parts * (multi - 1) - 1;
        if (want_parts == 2 && lo <= single)
            lo = single + 1;
        size_t target = lo + rng() % (hi - lo + 1);
        size_t len = random_text(text, mix, target);

        bool deliver = rng() % 2;
        random_addr(addr, deliver);
        /* One statement per draw: an initializer list's evaluation order
         * is unspecified, and the cases must not depend on the compiler. */
        struct pdu_encode_opts o = {.type = deliver ? PDU_DELIVER : PDU_SUBMIT, .addr = addr};
        o.concat_ref = (uint8_t)rng();
        o.timestamp = (time_t)(946684800 + (int64_t)(rng() % 2100000000u));
        o.tz_minutes = ((int)(rng() % 105) - 48) * 15;
        size_t n;
        enum pdu_alphabet a;
        int rc = pdu_encode(&o, text, len, parts, MAX_PARTS, &n, &a);
        if (rc < 0) {
            fprintf(stderr, "pdu_diff: case %u: pdu_encode: %d\n", id, rc);
            return 1;
        }
        printf("C %u %c ", id, deliver ? 'D' : 'S');
        print_hex(addr, strlen(addr));
        printf(" %u %" PRId64 " %d %c ", o.concat_ref, (int64_t)o.timestamp, o.tz_minutes,
               a == PDU_GSM7 ? 'G' : 'U');
        print_hex(text, len);
        printf(" %zu", n);
        for (size_t k = 0; k < n; k++)
            printf(" %s", parts[k].hex);
        putchar('\n');
    }
    return 0;
}

static int unhex(const char *h, uint8_t *out, size_t cap, size_t *n)
{
    size_t l = strlen(h);
    if (strcmp(h, "-") == 0) {
        *n = 0;
        return 0;
    }
    if (l % 2 || l / 2 > cap)
        return -EINVAL;
    for (size_t i = 0; i < l / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (uint8_t)v;
    }
    *n = l / 2;
    return 0;
}

/* Splits a line into at most max tokens in place. */
static size_t tokens(char *line, char **tok, size_t max)
{
    size_t n = 0;
    for (char *s = strtok(line, " \n"); s && n < max; s = strtok(NULL, " \n"))
        tok[n++] = s;
    return n;
}

static bool check_case(char **t, size_t nt, char *why, size_t why_cap)
{
    static struct pdu_msg m;
    uint8_t addr[64], want[4 * PDU_TEXT_MAX];
    size_t addr_len = 0, want_len = 0;

    if (nt < 6) {
        snprintf(why, why_cap, "short line");
        return false;
    }
    bool deliver = t[1][0] == 'D';
    size_t n = strtoul(t[4], NULL, 10);
    unsigned ref = (unsigned)strtoul(t[5], NULL, 10);
    if (unhex(t[2], addr, sizeof addr - 1, &addr_len) < 0 || nt != 6 + 2 * n) {
        snprintf(why, why_cap, "bad line");
        return false;
    }
    addr[addr_len] = '\0';

    for (size_t k = 0; k < n; k++) {
        const char *pdu = t[6 + 2 * k], *want_hex = t[7 + 2 * k];
        int rc = pdu_decode(pdu, strlen(pdu), 0, &m);
        if (strcmp(want_hex, "!") == 0) {
            if (rc != -EINVAL) {
                snprintf(why, why_cap, "part %zu: accepted an invalid PDU", k + 1);
                return false;
            }
            continue;
        }
        if (rc != 0) {
            snprintf(why, why_cap, "part %zu: pdu_decode %d", k + 1, rc);
            return false;
        }
        if (m.type != (deliver ? PDU_DELIVER : PDU_SUBMIT)) {
            snprintf(why, why_cap, "part %zu: type %d", k + 1, m.type);
            return false;
        }
        if (strcmp(m.addr, (const char *)addr) != 0) {
            snprintf(why, why_cap, "part %zu: address '%s'", k + 1, m.addr);
            return false;
        }
        if (deliver && strcmp(m.time, t[3]) != 0) {
            snprintf(why, why_cap, "part %zu: time %s, want %s", k + 1, m.time, t[3]);
            return false;
        }
        if (m.concat != (n > 1) ||
            (n > 1 && (m.concat_ref != ref || m.concat_total != n || m.concat_seq != k + 1))) {
            snprintf(why, why_cap, "part %zu: concat %d ref %u %u/%u", k + 1, m.concat,
                     m.concat_ref, m.concat_seq, m.concat_total);
            return false;
        }
        if (unhex(want_hex, want, sizeof want, &want_len) < 0 || want_len != m.text_len ||
            memcmp(want, m.text, want_len) != 0) {
            snprintf(why, why_cap, "part %zu: text differs (%zu octets, want %zu)", k + 1,
                     m.text_len, want_len);
            return false;
        }
    }
    return true;
}

static int cmd_check(void)
{
    static char line[1 << 16];
    char *tok[6 + 2 * 64];
    char why[160];
    unsigned passed = 0, failed = 0;

    while (fgets(line, sizeof line, stdin)) {
        if (!strchr(line, '\n') && !feof(stdin)) {
            fprintf(stderr, "pdu_diff: line too long\n");
            return 1;
        }
        size_t nt = tokens(line, tok, sizeof tok / sizeof tok[0]);
        if (nt == 0)
            continue;
        if (check_case(tok, nt, why, sizeof why)) {
            passed++;
        } else {
            failed++;
            printf("FAIL %s %s\n", tok[0], why);
        }
    }
    printf("B %u %u\n", passed, failed);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "gen") == 0)
        return cmd_gen(strtoull(argv[2], NULL, 0), (unsigned)strtoul(argv[3], NULL, 10));
    if (argc == 2 && strcmp(argv[1], "check") == 0)
        return cmd_check();
    fprintf(stderr, "usage: pdu_diff gen <seed> <count> | pdu_diff check\n");
    return 2;
}
