/* SMS PDU codec (3GPP TS 23.040 / 23.038): pure, no I/O.
 *
 * The bridge always talks PDU mode: a user's text becomes hex digits, so no
 * user byte can reach the serial line as Ctrl-Z (send) or ESC (abort).
 *
 * Encoding turns a UTF-8 text into one or more parts: GSM 7-bit (with the
 * extension table: ^ { } \ [ ~ ] | EUR, form feed) when every character
 * fits the GSM alphabet, else UCS-2 (characters outside the BMP as
 * surrogate pairs, never split between two parts). Long texts get a concatenation UDH
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

/* Capacity of one part (23.040 9.2.3.24: 140 octets of user data; a
 * concatenated part spends 6 of them, 7 septets, on its UDH). */
#define PDU_GSM7_SINGLE 160
#define PDU_GSM7_MULTI 153
#define PDU_UCS2_SINGLE 70
#define PDU_UCS2_MULTI 67
/* The concatenation IE counts parts in one octet. */
#define PDU_PARTS_MAX 255

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
    bool status_report;      /* SUBMIT: TP-SRR; DELIVER: TP-SRI */
    uint8_t concat_ref;      /* reference for a multi-part text */
    time_t timestamp;        /* DELIVER: TP-SCTS */
    int tz_minutes;          /* DELIVER: offset of TP-SCTS (multiple of 15) */
    bool force_ucs2;         /* tests: encode as UCS-2 even when GSM fits */
};

/* Encodes text (UTF-8, not NUL-terminated) into at most max_parts parts.
 * 0; -EINVAL for invalid UTF-8, an invalid address or SMSC, a DELIVER
 * timestamp outside 1969..2068 or a tz_minutes that is not a multiple of 15
 * within +-19:45; -E2BIG when more than max_parts (or PDU_PARTS_MAX) parts
 * would be needed (*n_parts then says how many).
 *
 * SUBMIT: TP-MR 0 (the modem assigns it), PID 0, TP-VPF relative with
 * TP-VP 0xA7 (24 hours), the 27.005 text-mode default (AT+CSMP=17,167), so
 * a text sent in PDU mode lives as long as one sent in text mode would.
 * DELIVER: TP-MMS set (no more messages waiting), PID 0.
 * alphabet may be NULL. */
int pdu_encode(const struct pdu_encode_opts *opts, const char *text, size_t len,
               struct pdu_part *parts, size_t max_parts, size_t *n_parts,
               enum pdu_alphabet *alphabet);

/* Parts the text needs without encoding it (the same split as pdu_encode,
 * also when that is more than PDU_PARTS_MAX); -EINVAL for invalid UTF-8.
 * alphabet may be NULL. */
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
    uint8_t pid;               /* TP-PID (0x40: "type 0", to be discarded) */
    uint8_t dcs;               /* TP-DCS as received (0 when absent) */
};

/* Decodes a whole PDU in hex (with its SMSC field, as AT+CMGR/+CMT give
 * it). expect_tpdu_len: the length the modem announced, or 0 to skip that
 * check. 0, or -EINVAL for anything malformed (never reads past hex_len;
 * octets left over after the last field are malformed too). *out is zeroed
 * on error.
 *
 * Lenient where 23.038/23.040 tell the receiver to be: an extension-table
 * code with no symbol shows the default-alphabet character of that code
 * (ESC ESC and a trailing ESC show a space); an unpaired UTF-16 surrogate
 * becomes U+FFFD; reserved DCS codings are read as GSM 7-bit; a
 * concatenation IE with seq 0 or seq > total is ignored; unknown IEs are
 * skipped. Compressed text (DCS bit 5) cannot be read: it comes out as
 * PDU_8BIT raw octets. A time stamp that is not a valid date leaves time
 * (or discharge_time) "" rather than dropping the message. */
int pdu_decode(const char *hex, size_t hex_len, size_t expect_tpdu_len, struct pdu_msg *out);

#endif
