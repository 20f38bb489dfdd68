#include "modem/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

/* 27.005 section 3.2.5: the A7670 gives +CMS ERROR as a number whatever
 * AT+CMEE says (its +CME ERROR comes as text under AT+CMEE=2). */
static const struct {
    int code;
    const char *text;
} cms_texts[] = {
    { 300, "ME failure" },           { 302, "operation not allowed" },
    { 303, "operation not supported" }, { 304, "invalid PDU parameter" },
    { 305, "invalid text parameter" }, { 310, "SIM not inserted" },
    { 311, "SIM PIN required" },     { 313, "SIM failure" },
    { 314, "SIM busy" },             { 320, "memory failure" },
    { 321, "invalid memory index" }, { 322, "memory full" },
    { 330, "SMSC address unknown" }, { 331, "no network service" },
    { 332, "network timeout" },      { 500, "unknown error" },
};

static const char *cms_text(int code)
{
    for (size_t i = 0; i < sizeof(cms_texts) / sizeof(cms_texts[0]); i++)
        if (cms_texts[i].code == code)
            return cms_texts[i].text;
    return NULL;
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
        text = text ? text : cms_text(rsp->code);
        m2m_error_set(err, code, "%s", text ? text : "SMS error");
        err->cms = rsp->code;
        break;
    case AT_FINAL_CME:
        m2m_error_set(err, code, "%s", text ? text : "modem error");
        err->cme = rsp->code;
        break;
    default:
        m2m_error_set(err, code, "the modem answered %s%s%s", at_final_name(rsp->final), to,
                      what);
        break;
    }
    return true;
}
