/* USSD service: AT+CUSD and its +CUSD answer. See ussd.h. */
#include "modem/ussd.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/utf8.h"
#include "modem/modem.h"

#define CODE_MAX 160
#define MORE_LINES 32           /* lines one +CUSD text may span */

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

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hexval(s[i]) < 0)
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

static int put_utf8(uint32_t cp, char *out, size_t size, size_t *o)
{
    uint8_t b[4];
    size_t n = utf8_encode(cp, b);

    if (*o + n >= size)
        return -EMSGSIZE;
    memcpy(out + *o, b, n);
    *o += n;
    return 0;
}

/* n is a multiple of 4 and all hex. */
static int decode_ucs2(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 4) {
        uint32_t u = (uint32_t)(hexval(s[i]) << 12 | hexval(s[i + 1]) << 8 |
                                hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
        if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return -EINVAL;      /* NUL, or a low surrogate without a high one */
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t lo;
            if (i + 8 > n)
                return -EINVAL;
            i += 4;
            lo = (uint32_t)(hexval(s[i]) << 12 | hexval(s[i + 1]) << 8 |
                            hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
            if (lo < 0xDC00 || lo > 0xDFFF)
                return -EINVAL;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (put_utf8(u, out, size, &o) < 0)
            return -EMSGSIZE;
    }
    out[o] = '\0';
    return 0;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* Digits -> 0..max; NULL when there are none or the value is larger. */
static const char *parse_small(const char *p, int max, int *out)
{
    int v = 0;

    if (*p < '0' || *p > '9')
        return NULL;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > max)
            return NULL;
    }
    *out = v;
    return p;
}

int ussd_parse_cusd(const char *line, struct ussd_reply *out)
{
    const char *p, *q1, *q2;
    size_t n;

    out->status = -1;
    out->has_text = false;
    out->dcs = -1;
    out->text[0] = '\0';
    if (strncmp(line, "+CUSD:", 6) != 0)
        return -EINVAL;
    p = parse_small(skip_spaces(line + 6), USSD_NET_TIMEOUT, &out->status);
    if (!p) {
        out->status = -1;
        return -EINVAL;
    }
    p = skip_spaces(p);
    if (!*p)
        return 0;
    if (*p != ',')
        return -EINVAL;
    q1 = skip_spaces(p + 1);
    if (*q1 != '"' || (q2 = strrchr(q1, '"')) == q1)
        return -EINVAL;
    p = skip_spaces(q2 + 1);
    if (*p == ',') {
        p = parse_small(skip_spaces(p + 1), 255, &out->dcs);
        if (!p)
            return -EINVAL;
        p = skip_spaces(p);
    }
    if (*p)
        return -EINVAL;
    q1++;
    n = (size_t)(q2 - q1);
    out->has_text = true;
    if (dcs_charset(out->dcs) == CS_UCS2 && n % 4 == 0 && all_hex(q1, n))
        return decode_ucs2(q1, n, out->text, sizeof(out->text));
    /* GSM text decoded by the module, 8-bit data as its hex, or UCS-2 the
     * module already turned into text. */
    return copy_text(q1, n, out->text, sizeof(out->text));
}

/* --- the service ------------------------------------------------------------------ */

struct ussd {
    struct loop *loop;
    struct modem *modem;
    int wait_ms;
    uint64_t timer;
    bool busy;                   /* a request waits for its answer */
    unsigned gen;                /* which request an AT+CUSD answer belongs to */
    ussd_cb cb;
    void *ctx;
    struct ussd_reply reply;     /* the last decoded +CUSD (1 KiB: not on the stack) */
    /* A +CUSD whose text holds line breaks: the lexer split it into lines;
     * they are joined here with '\n' until the closing quote. */
    char acc[2 * USSD_TEXT_MAX];
    size_t acc_len;
    unsigned acc_lines;
    bool acc_overflow;
};

struct ussd_tag {
    struct ussd *u;
    unsigned gen;
};

static void finish(struct ussd *u, const struct ussd_reply *reply, const struct json_error *err)
{
    ussd_cb cb = u->cb;
    void *ctx = u->ctx;

    loop_cancel_timer(u->loop, u->timer);
    u->timer = 0;
    u->busy = false;
    u->cb = NULL;
    u->ctx = NULL;
    if (cb)
        cb(ctx, reply, err);
}

static void finish_error(struct ussd *u, const char *code, const char *msg, int cme)
{
    struct json_error err = { .cme = -1, .cms = -1 };

    json_error_set(&err, code, "%s", msg);
    err.cme = cme;              /* after: json_error_set clears it */
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
    finish_error(u, "timeout", msg, -1);
    /* Ends the network side too, so that a late answer does not land in the
     * next request (and the network stops waiting for us). */
    if (modem_send(u->modem, "AT+CUSD=2", NULL, ignore_done, NULL) < 0)
        log_debug("ussd: AT+CUSD=2 not sent");
    return 0;
}

static void cusd_done(void *ctx, const struct at_response *rsp)
{
    struct ussd_tag tag = *(struct ussd_tag *)ctx;
    struct ussd *u = tag.u;
    char msg[160];

    free(ctx);
    if (!u->busy || tag.gen != u->gen)
        return;                  /* answered already (URC first, timeout) */
    switch (rsp->final) {
    case AT_FINAL_OK:
        return;                  /* now the network's +CUSD */
    case AT_FINAL_TIMEOUT:
        finish_error(u, "timeout", "the modem did not answer AT+CUSD", -1);
        return;
    case AT_FINAL_CANCELLED:
        finish_error(u, "unavailable", "the modem went away while sending the USSD code", -1);
        return;
    default:
        snprintf(msg, sizeof(msg), "USSD refused: %s",
                 rsp->text ? rsp->text : at_final_name(rsp->final));
        finish_error(u, "modem_error", msg, rsp->final == AT_FINAL_CME ? rsp->code : -1);
        return;
    }
}

/* Whether line ends a quoted string: its last '"', followed only by
 * ",<dcs>" (optional unless need_dcs), is not the opening quote itself.
 * A later line of a multi-line text needs the dcs: a line of the text may
 * end with a quote too, and the A7670 always gives the dcs with a string. */
static bool string_closed(const char *line, const char *open, bool need_dcs)
{
    const char *q = strrchr(line, '"'), *p;

    if (!q || q == open)
        return false;
    p = skip_spaces(q + 1);
    if (*p == ',') {
        p = skip_spaces(p + 1);
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
        p = skip_spaces(p);
    } else if (need_dcs) {
        return false;
    }
    return *p == '\0';
}

static void handle_cusd(struct ussd *u, const char *line)
{
    struct ussd_reply *reply = &u->reply;
    int r;

    r = ussd_parse_cusd(line, reply);
    if (!u->busy) {
        /* Network-initiated USSD, or the late answer of a cancelled one. */
        log_info("ussd: unsolicited +CUSD (status %d) ignored", reply->status);
    } else if (r < 0) {
        log_warn("ussd: undecodable answer: %s", line);
        finish_error(u, "modem_error",
                     r == -EMSGSIZE ? "the USSD answer is too long" : "undecodable +CUSD answer",
                     -1);
    } else {
        log_info("ussd: answer, status %d", reply->status);
        finish(u, reply, NULL);
    }
}

static void acc_add(struct ussd *u, const char *s)
{
    size_t n = strlen(s);

    if (u->acc_len + n + 1 >= sizeof(u->acc)) {
        u->acc_overflow = true;
        return;
    }
    memcpy(u->acc + u->acc_len, s, n + 1);
    u->acc_len += n;
}

static bool cusd_more(void *ctx, const char *line)
{
    struct ussd *u = ctx;
    bool closed = string_closed(line, NULL, true);

    acc_add(u, "\n");
    acc_add(u, line);
    if (!closed && ++u->acc_lines < MORE_LINES)
        return false;
    if (u->acc_overflow) {
        log_warn("ussd: multi-line answer too long");
        if (u->busy)
            finish_error(u, "modem_error", "the USSD answer is too long", -1);
        return true;
    }
    handle_cusd(u, u->acc);
    return true;
}

static void urc_cusd(void *ctx, const char *const *lines, size_t n)
{
    struct ussd *u = ctx;
    const char *open = strchr(lines[0], '"');

    (void)n;
    /* GSM text may hold line breaks (menus): the module prints them raw
     * inside the quotes, so the string goes on over the next lines. */
    if (open && !string_closed(lines[0], open, false)) {
        u->acc_len = 0;
        u->acc_lines = 0;
        u->acc_overflow = false;
        acc_add(u, lines[0]);
        if (at_chat_urc_more(modem_chat(u->modem), MORE_LINES, cusd_more, u) == 0)
            return;
    }
    handle_cusd(u, lines[0]);
}

static const struct at_urc ussd_urcs[] = {
    { "+CUSD:", 0, urc_cusd },
};

static bool code_valid(const char *code)
{
    size_t n = strlen(code);

    if (n == 0 || n > CODE_MAX)
        return false;
    return strspn(code, "0123456789*#+") == n;
}

void ussd_send(struct ussd *u, const char *code, ussd_cb cb, void *ctx)
{
    struct json_error err = { .cme = -1, .cms = -1 };
    char cmd[sizeof("AT+CUSD=1,\"\",15") + CODE_MAX];
    struct ussd_tag *tag;
    int r;

    if (u->busy) {
        json_error_set(&err, "busy", "a USSD session is already running; wait for its result");
        cb(ctx, NULL, &err);
        return;
    }
    /* json_parse_ussd checked it; this is the last stop before the line. */
    if (!code || !code_valid(code)) {
        json_error_set(&err, "invalid_request", "'code' must be 1-160 of 0-9 * # +");
        cb(ctx, NULL, &err);
        return;
    }
    tag = malloc(sizeof(*tag));
    if (!tag) {
        json_error_set(&err, "unavailable", "out of memory");
        cb(ctx, NULL, &err);
        return;
    }
    *tag = (struct ussd_tag){ u, u->gen + 1 };
    snprintf(cmd, sizeof(cmd), "AT+CUSD=1,\"%s\",15", code);
    r = modem_send(u->modem, cmd, NULL, cusd_done, tag);
    if (r < 0) {
        free(tag);
        if (r == -EAGAIN)
            json_error_set(&err, "unavailable", "the modem is not ready (%s)",
                           modem_state_name(modem_state(u->modem)));
        else
            json_error_set(&err, "busy", "the modem's command queue is full");
        cb(ctx, NULL, &err);
        return;
    }
    u->gen++;
    u->busy = true;
    u->cb = cb;
    u->ctx = ctx;
    if (loop_add_timer(u->loop, u->wait_ms, wait_over, u, &u->timer) < 0)
        log_error("ussd: cannot arm the answer timer");
}

void ussd_modem_ready(struct ussd *u, bool ready)
{
    if (!ready && u->busy)
        finish_error(u, "unavailable", "the modem went away while waiting for the USSD answer",
                     -1);
}

struct ussd *ussd_new(struct loop *loop, struct modem *modem, int wait_ms)
{
    struct ussd *u = calloc(1, sizeof(*u));

    if (!u)
        return NULL;
    u->loop = loop;
    u->modem = modem;
    u->wait_ms = wait_ms > 0 ? wait_ms : 30000;
    if (at_chat_add_urcs(modem_chat(modem), ussd_urcs, 1, u) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

void ussd_free(struct ussd *u)
{
    if (!u)
        return;
    if (u->busy)
        finish_error(u, "unavailable", "the bridge is stopping", -1);
    loop_cancel_timer(u->loop, u->timer);
    free(u);
}
