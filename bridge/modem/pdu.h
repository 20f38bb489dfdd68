/* SMS PDU codec (3GPP TS 23.040 / 23.038): pure, no I/O.
 *
 * The bridge always talks PDU mode: a user's text becomes hex digits, so no
 * user byte can reach the serial line as Ctrl-Z (send) or ESC (abort).
 *
 * Encoding turns a UTF-8 text into one or more parts: GSM 7-bit (with the
 * extension table: ^ { } \ [ ~ ] | EUR) when every character fits the GSM
 * alphabet, else UCS-2 (characters outside the BMP as surrogate pairs,
 * never split between two parts). Long texts get a concatenation UDH
 * (8-bit reference, IEI 0x00): 153 septets or 67 UCS-2 units per part; an
 * extension character's escape is never split from it.
 *
 * The same encoder writes SMS-SUBMIT (bridge -> modem, AT+CMGS) and
 * SMS-DELIVER (the simulator's incoming SMS). The decoder reads both. */
#ifndef M2M_MODEM_PDU_H
#define M2M_MODEM_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum pdu_type { PDU_DELIVER = 0, PDU_SUBMIT = 1, PDU_STATUS_REPORT = 2 };
enum pdu_alphabet { PDU_GSM7 = 0, PDU_8BIT = 1, PDU_UCS2 = 2 };

#define PDU_ADDR_MAX 41      /* 20 digits or 11 alphanumeric chars as UTF-8, '+', NUL */
/* Longest decoded user data of one part: 160 GSM chars of up to 3 bytes of
 * UTF-8, or 70 UCS-2 units (4 bytes per surrogate pair, 3 per BMP char). */
#define PDU_TEXT_MAX 484
/* Hex of the longest PDU: SMSC octet(s) (12) + TPDU (at most 164 octets). */
#define PDU_HEX_MAX (2 * 176 + 1)

struct pdu_part {
    char hex[PDU_HEX_MAX];   /* whole PDU as upper-case hex, NUL-terminated,
                                starting with the SMSC field */
    size_t tpdu_len;         /* octets after the SMSC field: AT+CMGS=<n> */
};

struct pdu_encode_opts {
    enum pdu_type type;      /* PDU_SUBMIT or PDU_DELIVER */
    const char *addr;        /* SUBMIT: destination; DELIVER: originator.
                                "+<digits>" international, "<digits>"
                                national/unknown, else alphanumeric (DELIVER) */
    const char *smsc;        /* NULL or "": "00" (the modem's default SMSC) */
    bool flash;              /* class 0 */
    bool status_report;      /* SUBMIT: TP-SRR */
    uint8_t concat_ref;      /* reference for a multi-part text */
    time_t timestamp;        /* DELIVER: TP-SCTS */
    int tz_minutes;          /* DELIVER: offset of TP-SCTS (multiple of 15) */
    bool force_ucs2;         /* tests: encode as UCS-2 even when GSM fits */
};

/* Encodes text (UTF-8, not NUL-terminated) into at most max_parts parts.
 * 0; -EINVAL for invalid UTF-8 or an invalid address; -E2BIG when more than
 * max_parts parts would be needed (*n_parts then says how many). */
int pdu_encode(const struct pdu_encode_opts *opts, const char *text, size_t len,
               struct pdu_part *parts, size_t max_parts, size_t *n_parts,
               enum pdu_alphabet *alphabet);

/* Parts the text needs without encoding it; -EINVAL for invalid UTF-8. */
int pdu_count_parts(const char *text, size_t len, bool force_ucs2, size_t *n_parts,
                    enum pdu_alphabet *alphabet);

struct pdu_msg {
    enum pdu_type type;
    char smsc[PDU_ADDR_MAX];   /* E.164 or "" */
    char addr[PDU_ADDR_MAX];   /* DELIVER: from, SUBMIT: to, STATUS_REPORT:
                                  recipient. International as "+<digits>". */
    char time[32];             /* DELIVER/STATUS_REPORT: ISO 8601 with offset,
                                  "2026-11-21T06:00:00+01:00"; else "" */
    enum pdu_alphabet alphabet;
    uint8_t text[PDU_TEXT_MAX + 1]; /* UTF-8 (NUL-terminated), or raw octets
                                       for PDU_8BIT */
    size_t text_len;
    bool concat;               /* part of a concatenated message */
    uint16_t concat_ref;       /* 8- or 16-bit reference */
    uint8_t concat_total, concat_seq; /* seq counts from 1 */
    bool flash;
    bool status_report;        /* SUBMIT: SRR; DELIVER: SRI */
    uint8_t mr;                /* SUBMIT / STATUS_REPORT: message reference */
    uint8_t status;            /* STATUS_REPORT: TP-ST */
    char discharge_time[32];   /* STATUS_REPORT: TP-DT as ISO 8601 */
};

/* Decodes a whole PDU in hex (with its SMSC field, as AT+CMGR/+CMT give
 * it). expect_tpdu_len: the length the modem announced, or 0 to skip that
 * check. 0, or -EINVAL for anything malformed (never reads past hex_len). */
int pdu_decode(const char *hex, size_t hex_len, size_t expect_tpdu_len, struct pdu_msg *out);

#endif
