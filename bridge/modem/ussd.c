/* USSD service: AT+CUSD and its +CUSD answer. See ussd.h. */
#include "modem/ussd.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/utf8.h"
#include "modem/modem.h"

#define CODE_MAX 160

/* --- the pure decoder ---------------------------------------------------------- */

enum charset { CS_GSM, CS_8BIT, CS_UCS2 };

/* 3GPP 23.038 section 5 (CBS data coding scheme, which USSD uses). */
static enum charset dcs_charset(int dcs)
{
    if (dcs < 0)
        return CS_GSM;
    if (dcs == 0x11)
        return CS_UCS2;          /* UCS-2 preceded by a language indication */
    switch (dcs >> 4) {
    case 0x4: case 0x5: case 0x6: case 0x7: case 0x9:
        /* General data coding: bits 3-2 are the alphabet. */
        switch ((dcs >> 2) & 3) {
        case 1: return CS_8BIT;
        case 2: return CS_UCS2;
        default: return CS_GSM;
        }
    case 0xF:
        return (dcs & 0x04) ? CS_8BIT : CS_GSM;
    default:
        return CS_GSM;           /* language groups: GSM 7-bit */
    }
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_digit(s[i]) < 0)
            return false;
    return true;
}

/* Text as the module gave it; bytes that do not form UTF-8 become '?'
 * (a module set to another character set must not break the JSON). */
static int copy_text(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;

    if (n >= size)
        return -EMSGSIZE;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const uint8_t *)s + i, n - i);
        if (k == 0) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    return 0;
}

int ussd_parse_cusd(const char *line, bool ucs2, struct ussd_reply *out)
{
    char raw[4 * USSD_TEXT_MAX + 1];     /* UCS-2 hex: four characters a unit */
    struct at_result_iter it;
    size_t n;
    int r;

    out->status = -1;
    out->has_text = false;
    out->dcs = -1;
    out->text[0] = '\0';
    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+CUSD:") ||
        at_result_next_number(&it, 0, USSD_NET_TIMEOUT, &out->status) < 0)
        return -EINVAL;
    if (at_result_at_end(&it))
        return 0;
    /* The A7670 prints GSM text raw under AT+CSCS="IRA", quotes included:
     * the string runs to the line's last quote. */
    r = at_result_next_string_greedy(&it, raw, sizeof(raw));
    if (r == -EMSGSIZE)
        return r;
    if (r < 0 || at_result_next_number_default(&it, 0, 255, -1, &out->dcs) < 0 ||
        !at_result_at_end(&it))
        return -EINVAL;
    n = strlen(raw);
    out->has_text = true;
    if (ucs2 || (dcs_charset(out->dcs) == CS_UCS2 && n % 4 == 0 && all_hex(raw, n))) {
        /* With AT+CSCS="UCS2" the module converts every alphabet into
         * UCS-2 hex, whatever <dcs> says (dcs 15 included). */
        r = utf8_from_ucs2_hex(raw, n, out->text, sizeof(out->text));
        return r < 0 ? r : 0;
    }
    /* GSM text decoded by the module, 8-bit data as its hex, or UCS-2 the
     * module already turned into text. */
    return copy_text(raw, n, out->text, sizeof(out->text));
}

/* --- the service ------------------------------------------------------------------ */

/* A7670 quirk: with the default AT+CSCS="IRA" it prints a GSM text reply
 * raw between the quotes, line breaks included, so a reply could hold
 * lines that look like modem output ("+CMT: ...", "RING", "OK"). Each
 * request therefore runs with the TE character set UCS2:
 *   AT+CSCS="UCS2" -> AT+CUSD=1,"<code as UCS-2 hex>",15 -> OK ...
 *   +CUSD: <m>,"<UCS-2 hex>",<dcs> (one line, whatever the dcs)
 *   -> AT+CSCS="IRA" (after the reply, an error or the bounded wait).
 * A module that refuses UCS2 gets no raw-text fallback: "unsupported". */

struct ussd {
    struct loop *loop;
    struct modem *modem;
    int wait_ms;
    uint64_t timer;
    bool busy;                   /* a request waits for its answer */
    bool restoring;              /* AT+CSCS="IRA" is queued */
    bool freeing;                /* ussd_free: the modem is gone already */
    unsigned gen;                /* which request an AT answer belongs to */
    ussd_cb cb;
    void *ctx;
    char code[CODE_MAX + 1];     /* sent once the module accepted UCS2 */
    struct ussd_reply reply;     /* the last decoded +CUSD (1 KiB: not on the stack) */
};

struct ussd_tag {
    struct ussd *u;
    unsigned gen;
};

static void ira_done(void *ctx, const struct at_response *rsp)
{
    struct ussd *u = ctx;

    u->restoring = false;
    if (rsp->final == AT_FINAL_OK) {
        modem_set_charset_ucs2(u->modem, false);
        return;
    }
    /* The module stays in UCS2: the flag says so, and readers of its
     * strings keep decoding them. The next request tries again. */
    if (rsp->final != AT_FINAL_CANCELLED)
        log_warn("ussd: AT+CSCS=\"IRA\" after the request: %s",
                 rsp->text ? rsp->text : at_final_name(rsp->final));
}

/* Back to the character set the rest of the bridge expects. force: the
 * module may have switched without our seeing its OK (AT+CSCS timed out). */
static void restore_ira_if(struct ussd *u, bool force)
{
    if (u->freeing || u->restoring || (!force && !modem_charset_ucs2(u->modem)))
        return;
    if (modem_send(u->modem, "AT+CSCS=\"IRA\"", NULL, ira_done, u) == 0)
        u->restoring = true;
    else
        log_debug("ussd: AT+CSCS=\"IRA\" not sent (modem not ready or queue full)");
}

static void restore_ira(struct ussd *u)
{
    restore_ira_if(u, false);
}

static void finish(struct ussd *u, const struct ussd_reply *reply, const struct m2m_error *err)
{
    ussd_cb cb = u->cb;
    void *ctx = u->ctx;

    loop_cancel_timer(u->loop, u->timer);
    u->timer = 0;
    u->busy = false;
    u->cb = NULL;
    u->ctx = NULL;
    restore_ira(u);
    if (cb)
        cb(ctx, reply, err);
}

static void finish_error(struct ussd *u, const char *code, const char *msg)
{
    struct m2m_error err;

    m2m_error_set(&err, code, "%s", msg);
    finish(u, NULL, &err);
}

/* The command what was not answered OK. */
static void finish_at_error(struct ussd *u, const struct at_response *rsp, const char *what)
{
    struct m2m_error err;

    m2m_error_from_at(&err, rsp, what);
    finish(u, NULL, &err);
}

static void ignore_done(void *ctx, const struct at_response *rsp)
{
    (void)ctx;
    if (rsp->final != AT_FINAL_OK && rsp->final != AT_FINAL_CANCELLED)
        log_debug("ussd: AT+CUSD=2: %s", at_final_name(rsp->final));
}

static int64_t wait_over(void *ctx)
{
    struct ussd *u = ctx;
    char msg[128];

    u->timer = 0;
    if (!u->busy)
        return 0;
    snprintf(msg, sizeof(msg), "no USSD answer from the network within %d s; session cancelled",
             u->wait_ms / 1000);
    log_warn("ussd: %s", msg);
    /* Ends the network side too, so that a late answer does not land in the
     * next request (and the network stops waiting for us). Queued before
     * AT+CSCS="IRA": an answer that still comes meanwhile is in hex. */
    if (modem_send(u->modem, "AT+CUSD=2", NULL, ignore_done, NULL) < 0)
        log_debug("ussd: AT+CUSD=2 not sent");
    finish_error(u, "timeout", msg);
    return 0;
}

static bool tag_current(const struct ussd_tag *tag)
{
    return tag->u->busy && tag->gen == tag->u->gen;
}

static void cusd_done(void *ctx, const struct at_response *rsp)
{
    struct ussd_tag tag = *(struct ussd_tag *)ctx;
    struct ussd *u = tag.u;

    free(ctx);
    if (!tag_current(&tag))
        return;                  /* answered already (URC first, timeout) */
    if (rsp->final != AT_FINAL_OK)   /* OK: now the network's +CUSD */
        finish_at_error(u, rsp, "AT+CUSD");
}

/* The code as UCS-2 hex: in UCS2 mode the module reads <str> that way. */
static void send_cusd(struct ussd *u, struct ussd_tag *tag)
{
    char cmd[sizeof("AT+CUSD=1,\"\",15") + 4 * CODE_MAX];
    size_t o = (size_t)snprintf(cmd, sizeof(cmd), "AT+CUSD=1,\"");
    int r;

    for (size_t i = 0; u->code[i] && i < CODE_MAX; i++)
        o += (size_t)snprintf(cmd + o, sizeof(cmd) - o, "%04X", (unsigned char)u->code[i]);
    snprintf(cmd + o, sizeof(cmd) - o, "\",15");
    r = modem_send(u->modem, cmd, NULL, cusd_done, tag);
    if (r < 0) {
        struct m2m_error err;

        free(tag);
        m2m_error_from_send_state(&err, r, modem_state_name(modem_state(u->modem)));
        finish_error(u, err.code, err.message);
    }
}

static void ucs2_done(void *ctx, const struct at_response *rsp)
{
    struct ussd_tag *tag = ctx;
    struct ussd *u = tag->u;
    bool current = tag_current(tag);

    if (rsp->final == AT_FINAL_OK)
        modem_set_charset_ucs2(u->modem, true);
    if (!current) {
        /* The request ended meanwhile (its wait ran out): undo. */
        free(tag);
        restore_ira(u);
        return;
    }
    switch (rsp->final) {
    case AT_FINAL_OK:
        send_cusd(u, tag);
        return;
    case AT_FINAL_TIMEOUT:
        free(tag);
        finish_at_error(u, rsp, "AT+CSCS");
        /* Whether it switched is unknown: going back is harmless. */
        restore_ira_if(u, true);
        return;
    case AT_FINAL_CANCELLED:
        free(tag);
        finish_at_error(u, rsp, "AT+CSCS");
        return;
    default:
        free(tag);
        log_warn("ussd: AT+CSCS=\"UCS2\" refused (%s): USSD text would come raw",
                 rsp->text ? rsp->text : at_final_name(rsp->final));
        finish_error(u, "unsupported", "the module cannot give USSD text in hex");
        return;
    }
}

static void urc_cusd(void *ctx, const char *const *lines, size_t n)
{
    struct ussd *u = ctx;
    struct ussd_reply *reply = &u->reply;
    int r;

    (void)n;
    /* One line, always: in UCS2 mode the text is hex and cannot hold a line
     * break. A line that does not parse (an unterminated string) is the
     * pending request's error; the lines after it are not taken. */
    r = ussd_parse_cusd(lines[0], modem_charset_ucs2(u->modem), reply);
    if (!u->busy) {
        /* Network-initiated USSD, or the late answer of a cancelled one. */
        log_info("ussd: unsolicited +CUSD (status %d) ignored", reply->status);
    } else if (r < 0) {
        log_warn("ussd: undecodable answer (%s)",
                 r == -EMSGSIZE ? "too long" : "malformed, or not UCS-2 hex");
        finish_error(u, "modem_error",
                     r == -EMSGSIZE ? "the USSD answer is too long" : "undecodable +CUSD answer");
    } else {
        log_info("ussd: answer, status %d", reply->status);
        finish(u, reply, NULL);
    }
}

static const struct at_urc ussd_urcs[] = {
    { "+CUSD:", 0, urc_cusd },
};
#define N_USSD_URCS (sizeof(ussd_urcs) / sizeof(ussd_urcs[0]))

static bool code_valid(const char *code)
{
    size_t n = strnlen(code, CODE_MAX + 1);

    if (n == 0 || n > CODE_MAX)
        return false;
    return strspn(code, "0123456789*#+") == n;
}

void ussd_send(struct ussd *u, const char *code, ussd_cb cb, void *ctx)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };
    struct ussd_tag *tag;
    int r;

    if (u->busy) {
        m2m_error_set(&err, "busy", "a USSD session is already running; wait for its result");
        cb(ctx, NULL, &err);
        return;
    }
    /* json_parse_ussd checked it; this is the last stop before the line. */
    if (!code || !code_valid(code)) {
        m2m_error_set(&err, "invalid_request", "'code' must be 1-160 of 0-9 * # +");
        cb(ctx, NULL, &err);
        return;
    }
    tag = malloc(sizeof(*tag));
    if (!tag) {
        m2m_error_set(&err, "unavailable", "out of memory");
        cb(ctx, NULL, &err);
        return;
    }
    *tag = (struct ussd_tag){ u, u->gen + 1 };
    r = modem_send(u->modem, "AT+CSCS=\"UCS2\"", NULL, ucs2_done, tag);
    if (r < 0) {
        free(tag);
        m2m_error_from_send_state(&err, r, modem_state_name(modem_state(u->modem)));
        cb(ctx, NULL, &err);
        return;
    }
    snprintf(u->code, sizeof(u->code), "%s", code);
    u->gen++;
    u->busy = true;
    u->cb = cb;
    u->ctx = ctx;
    if (loop_add_timer(u->loop, u->wait_ms, wait_over, u, &u->timer) < 0)
        log_error("ussd: cannot arm the answer timer");
}

void ussd_modem_ready(struct ussd *u, bool ready)
{
    if (!ready) {
        u->restoring = false;    /* the chat cancels what was queued */
        if (u->busy)
            finish_error(u, "unavailable",
                         "the modem went away while waiting for the USSD answer");
        return;
    }
    /* A port reopen need not reset the module: if it may still be in UCS2,
     * put it back. */
    restore_ira(u);
}

struct ussd *ussd_new(struct loop *loop, struct modem *modem, int wait_ms)
{
    struct ussd *u = calloc(1, sizeof(*u));

    if (!u)
        return NULL;
    u->loop = loop;
    u->modem = modem;
    u->wait_ms = wait_ms > 0 ? wait_ms : 30000;
    if (at_chat_add_urcs(modem_chat(modem), ussd_urcs, N_USSD_URCS, u) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

void ussd_free(struct ussd *u)
{
    if (!u)
        return;
    u->freeing = true;
    if (u->busy)
        finish_error(u, "unavailable", "the bridge is stopping");
    loop_cancel_timer(u->loop, u->timer);
    free(u);
}
