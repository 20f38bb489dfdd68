/* The one error type of a command, below MQTT: what the modem services,
 * the command parsers and the handlers fill, and what the MQTT edge turns
 * into {"code":..,["cme":..|"cms":..,]"message":..}.
 *
 * Here, in modem/, because its vocabulary is the services' ("timeout",
 * "unavailable", "modem_error" with the module's +CME/+CMS number) and one
 * mapper turns an AT answer into it; the layers above (mqtt/, the
 * instance) include it, at/ and core/ know nothing of it. Pure: no
 * allocation, no I/O. */
#ifndef M2M_MODEM_ERROR_H
#define M2M_MODEM_ERROR_H

#include <stdbool.h>

struct at_response;

struct m2m_error {
    const char *code;     /* "invalid_json", "timeout", "modem_error", ... (static) */
    int cme;              /* the module's +CME ERROR number; -1: absent */
    int cms;              /* the module's +CMS ERROR number; -1: absent */
    char message[200];    /* UTF-8, for people */
};

/* Sets code and message, and cme = cms = -1 (set them after this call).
 * A message cut by the buffer, or with bytes that are not UTF-8 (a
 * modem's text), is repaired: invalid bytes become '?'. err NULL: nothing. */
void m2m_error_set(struct m2m_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds to the message (the part of a multipart SMS that failed), repaired
 * as m2m_error_set does. */
void m2m_error_append(struct m2m_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The code for an AT answer, the same for every command: NULL for OK;
 * "timeout" when the module did not answer in time; "unavailable" when the
 * command was cancelled (the port closed or failed, the modem went away,
 * or the session it waited for ended); "modem_error" for everything the
 * module answered other than OK (ERROR, +CME/+CMS ERROR, NO CARRIER,
 * BUSY, ...) and for an answer out of step. A service may read an answer
 * its own way first (ATD's BUSY is the callee's, "busy"). */
const char *m2m_error_code_from_at(const struct at_response *rsp);

/* The error of a command that was not answered OK, with the code above;
 * false for OK (err untouched). what names the command in the message
 * ("AT+CMGS"; NULL: unnamed):
 *   timeout      "the modem did not answer <what>"
 *   unavailable  "the modem went away before answering <what>"
 *   +CME/+CMS    the module's text, or the meaning of a known number
 *                (27.007 / 27.005), or "modem error" / "SMS error"; cme
 *                or cms holds the number the module gave, or the one of
 *                a known text (-1 for a text of the module's own)
 *   others       "the modem answered <final> to <what>" */
bool m2m_error_from_at(struct m2m_error *err, const struct at_response *rsp, const char *what);

/* The error of a command modem_send refused with rc < 0 (nothing was
 * written): -EAGAIN "unavailable" (the modem is not ready), -EINVAL and
 * -EMSGSIZE "invalid_request" (not a command the chat can send, or too
 * long), -ENOMEM "unavailable" (out of memory), else "busy" (its queue is
 * full). */
void m2m_error_from_send(struct m2m_error *err, int rc);
/* The same, with the modem's state named in a "not ready" ("the modem is
 * not ready (low_power)"); state NULL: as m2m_error_from_send. */
void m2m_error_from_send_state(struct m2m_error *err, int rc, const char *state);

#endif
