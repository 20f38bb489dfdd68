#include "modem/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "at/chat.h"
#include "core/utf8.h"

/* The buffer may have cut a multi-byte character, and a modem's text may
 * be anything: keep the message valid UTF-8. */
static void repair(char *message)
{
    uint8_t *m = (uint8_t *)message;
    size_t n = strlen(message);

    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(m + i, n - i);
        if (!k) {
            m[i++] = '?';
            continue;
        }
        i += k;
    }
}

void m2m_error_set(struct m2m_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    err->code = code;
    err->cme = -1;
    err->cms = -1;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    repair(err->message);
}

void m2m_error_append(struct m2m_error *err, const char *fmt, ...)
{
    size_t n = strlen(err->message);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof err->message - n, fmt, ap);
    va_end(ap);
    repair(err->message);
}

const char *m2m_error_code_from_at(const struct at_response *rsp)
{
    switch (rsp->final) {
    case AT_FINAL_OK: return NULL;
    case AT_FINAL_TIMEOUT: return "timeout";
    case AT_FINAL_CANCELLED: return "unavailable";
    default: return "modem_error";
    }
}

/* The numbers and texts of +CME/+CMS ERROR, so that a result carries
 * both whichever form the module used: it gives +CMS ERROR as a number
 * whatever AT+CMEE says, and +CME ERROR as text under AT+CMEE=2 (which
 * the bridge sets, for readable logs). */
struct at_error_text {
    int code;
    const char *text;
};

/* 27.007 section 9.2, and the A7670's 50. */
static const struct at_error_text cme_texts[] = {
    { 0, "phone failure" },          { 1, "no connection to phone" },
    { 3, "operation not allowed" },  { 4, "operation not supported" },
    { 5, "PH-SIM PIN required" },    { 10, "SIM not inserted" },
    { 11, "SIM PIN required" },      { 12, "SIM PUK required" },
    { 13, "SIM failure" },           { 14, "SIM busy" },
    { 15, "SIM wrong" },             { 16, "incorrect password" },
    { 17, "SIM PIN2 required" },     { 18, "SIM PUK2 required" },
    { 20, "memory full" },           { 21, "invalid index" },
    { 22, "not found" },             { 23, "memory failure" },
    { 24, "text string too long" },  { 25, "invalid characters in text string" },
    { 26, "dial string too long" },  { 27, "invalid characters in dial string" },
    { 30, "no network service" },    { 31, "network timeout" },
    { 32, "network not allowed - emergency calls only" },
    { 50, "incorrect parameters" },  { 100, "unknown" },
};

/* 27.005 section 3.2.5. */
static const struct at_error_text cms_texts[] = {
    { 300, "ME failure" },           { 302, "operation not allowed" },
    { 303, "operation not supported" }, { 304, "invalid PDU parameter" },
    { 305, "invalid text parameter" }, { 310, "SIM not inserted" },
    { 311, "SIM PIN required" },     { 313, "SIM failure" },
    { 314, "SIM busy" },             { 320, "memory failure" },
    { 321, "invalid memory index" }, { 322, "memory full" },
    { 330, "SMSC address unknown" }, { 331, "no network service" },
    { 332, "network timeout" },      { 500, "unknown error" },
};

#define TEXTS(t) (t), sizeof(t) / sizeof((t)[0])

static const char *text_of(const struct at_error_text *t, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].code == code)
            return t[i].text;
    return NULL;
}

/* Case-insensitive: firmwares differ in capitals ("SIM busy", "Sim
 * busy"). -1 for a text the table does not know. */
static int code_of(const struct at_error_text *t, size_t n, const char *text)
{
    for (size_t i = 0; text && i < n; i++)
        if (strcasecmp(t[i].text, text) == 0)
            return t[i].code;
    return -1;
}

bool m2m_error_from_at(struct m2m_error *err, const struct at_response *rsp, const char *what)
{
    const char *code = m2m_error_code_from_at(rsp);
    const char *text = rsp->text;
    const char *sep = what ? " " : "";
    const char *to = what ? " to " : "";

    if (!code)
        return false;
    what = what ? what : "";
    switch (rsp->final) {
    case AT_FINAL_TIMEOUT:
        m2m_error_set(err, code, "the modem did not answer%s%s", sep, what);
        break;
    case AT_FINAL_CANCELLED:
        m2m_error_set(err, code, "the modem went away before answering%s%s", sep, what);
        break;
    case AT_FINAL_CMS:
        text = text ? text : text_of(TEXTS(cms_texts), rsp->code);
        m2m_error_set(err, code, "%s", text ? text : "SMS error");
        err->cms = rsp->code >= 0 ? rsp->code : code_of(TEXTS(cms_texts), text);
        break;
    case AT_FINAL_CME:
        text = text ? text : text_of(TEXTS(cme_texts), rsp->code);
        m2m_error_set(err, code, "%s", text ? text : "modem error");
        err->cme = rsp->code >= 0 ? rsp->code : code_of(TEXTS(cme_texts), text);
        break;
    default:
        m2m_error_set(err, code, "the modem answered %s%s%s", at_final_name(rsp->final), to,
                      what);
        break;
    }
    return true;
}

void m2m_error_from_send(struct m2m_error *err, int rc)
{
    m2m_error_from_send_state(err, rc, NULL);
}

void m2m_error_from_send_state(struct m2m_error *err, int rc, const char *state)
{
    if (rc == -EAGAIN && state)
        m2m_error_set(err, "unavailable", "the modem is not ready (%s)", state);
    else if (rc == -EAGAIN)
        m2m_error_set(err, "unavailable", "the modem is not ready");
    else if (rc == -EINVAL)
        m2m_error_set(err, "invalid_request", "not a valid command");
    else if (rc == -EMSGSIZE)
        m2m_error_set(err, "invalid_request", "the command is too long for the modem");
    else if (rc == -ENOMEM)
        m2m_error_set(err, "unavailable", "out of memory");
    else
        m2m_error_set(err, "busy", "the modem's command queue is full");
}
