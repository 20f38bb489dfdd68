/* The PDU codec's private parts, shared by its files (pdu.c says what the
 * codec is):
 *   pdu.c         splitting a text into parts, and encoding them
 *   pdu_decode.c  decoding a PDU from the modem
 *   pdu_gsm7.c    the GSM 7-bit default alphabet and its packing, UTF-8 in
 *                 and out, the bounded output buffer */
#ifndef M2M_MODEM_PDU_INT_H
#define M2M_MODEM_PDU_INT_H

#include "modem/pdu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* A bounded output buffer; one overflow flag instead of a check per call. */
struct wbuf {
    uint8_t *b;
    size_t cap, n;
    bool overflow;
};


/* Shared between the files above (each was a static of the one pdu.c). */

/* pdu_gsm7.c: the alphabet, for encoding. */
unsigned pdu_gsm7_lookup(uint32_t cp, uint8_t *code);
void pdu_gsm7_pack(uint8_t *ud, size_t bit, const uint8_t *sept, size_t n);
int pdu_utf8_next(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp);
/* pdu_gsm7.c: the output buffer and the alphabet, for decoding. */
void pdu_wbuf_put(struct wbuf *w, uint8_t c);
void pdu_wbuf_utf8(struct wbuf *w, uint32_t cp);
void pdu_gsm7_to_utf8(const uint8_t *ud, size_t bit, size_t n, struct wbuf *w);

#endif
