/* USSD service: one session at a time.
 *
 *   ussd_send("*100#") -> AT+CSCS="UCS2" -> AT+CUSD=1,"002A003100300030
 *   0023",15 -> OK ... +CUSD: <m>,"<UCS-2 hex>",<dcs> -> AT+CSCS="IRA"
 *
 * The module prints a GSM text reply raw inside the quotes with the
 * default character set, line breaks included, so a network text could
 * pass for modem output; in UCS2 the reply is hex and always one line. A
 * module that refuses AT+CSCS="UCS2" gets "unsupported" (no raw fallback).
 * The character set goes back to IRA after the reply, an error or the
 * bounded wait (modem_set_charset_ucs2() tracks it for the other services).
 *
 * The network's answer is a URC that may come many seconds after the OK
 * (30 s is not unusual), so the service waits for it with its own bound and
 * cancels the network session (AT+CUSD=2) when the bound passes. A second
 * request while one waits is refused ("busy"), because +CUSD carries no
 * session identifier to tell two answers apart. The +CUSD decoder is pure
 * and exported for the unit tests. */
#ifndef M2M_MODEM_USSD_H
#define M2M_MODEM_USSD_H

#include <stdbool.h>
#include <stddef.h>

#include "modem/error.h"

struct loop;
struct modem;

/* <m> of +CUSD (27.007 7.15). */
enum ussd_status {
    USSD_DONE = 0,          /* no further action required */
    USSD_MORE = 1,          /* the network waits for an answer: send it as the next code */
    USSD_TERMINATED = 2,    /* terminated by the network */
    USSD_OTHER_CLIENT = 3,  /* another local client has responded */
    USSD_UNSUPPORTED = 4,   /* operation not supported */
    USSD_NET_TIMEOUT = 5,   /* network time out */
};

/* Largest decoded text (UTF-8, NUL included). A USSD string is at most
 * 182 GSM characters or 91 UCS-2 characters; this leaves room for
 * firmwares that pass longer strings through. */
#define USSD_TEXT_MAX 1024

struct ussd_reply {
    int status;              /* <m>, 0-5 */
    bool has_text;           /* the URC carried a string */
    int dcs;                 /* -1 when absent */
    char text[USSD_TEXT_MAX]; /* UTF-8; "" without a string */
};

/* The +CUSD line -> reply. ucs2: the module's TE character set is UCS2
 * (AT+CSCS="UCS2"): the string is UCS-2 hex whatever <dcs> says, decoded to
 * UTF-8; anything else (odd length, not hex) is -EINVAL. Without it, <dcs>
 * per 3GPP 23.038: the UCS-2 alphabet (72 =
 * 0x48, and 0x11, 0x4C-style group values with charset bits 10) arrives as
 * a hex string of UCS-2 big-endian (surrogate pairs allowed) and is decoded
 * to UTF-8; the GSM 7-bit alphabet (15 and the rest) arrives as the
 * module's text and is kept (bytes that are not UTF-8 become '?'); 8-bit
 * data is kept as the hex the module gives. A UCS-2 string that is not hex
 * is kept as text (firmwares set to AT+CSCS="IRA" decode it themselves).
 * The string runs from the first to the last '"' of the line, so quotes
 * inside the text survive. 0, -EINVAL (no "+CUSD:", <m> missing or not
 * 0-5, unterminated string, garbage after it, odd/invalid UCS-2 code
 * units) or -EMSGSIZE (text longer than USSD_TEXT_MAX). Pure. */
int ussd_parse_cusd(const char *line, bool ucs2, struct ussd_reply *out);

/* reply is NULL when err is set; both valid only during the call. err
 * codes: "busy", "unavailable", "timeout", "modem_error" (with cme or cms),
 * "invalid_request", "unsupported" (AT+CSCS="UCS2" refused). */
typedef void (*ussd_cb)(void *ctx, const struct ussd_reply *reply, const struct m2m_error *err);

/* wait_ms bounds the whole exchange, from writing AT+CUSD to the +CUSD. */
struct ussd *ussd_new(struct loop *loop, struct modem *modem, int wait_ms);
/* A waiting request is answered "unavailable". */
void ussd_free(struct ussd *u);

/* Always calls cb exactly once (maybe before returning). code: 1-160 of
 * 0-9 * # + (checked again here: it goes between quotes on the line). */
void ussd_send(struct ussd *u, const char *code, ussd_cb cb, void *ctx);

/* The modem left READY: a waiting request gets "unavailable". */
void ussd_modem_ready(struct ussd *u, bool ready);

#endif
