/* The network: AT+COPS=? and AT+COPS=<mode>. See network.h. */
#include "modem/network.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/log.h"
#include "core/utf8.h"
#include "modem/modem.h"

/* --- the pure decoder ---------------------------------------------------------- */

const char *network_stat_name(enum network_stat stat)
{
    static const char *const names[] = { "unknown", "available", "current", "forbidden" };

    return (unsigned)stat < sizeof(names) / sizeof(names[0]) ? names[stat] : "unknown";
}

const char *network_act_name(int act)
{
    /* 27.007 7.3 <AcT>. */
    static const char *const names[] = {
        "GSM", "GSM", "WCDMA", "GSM", "WCDMA", "WCDMA", "WCDMA",
        "LTE", "EC-GSM-IoT", "NB-IoT", "LTE", "NR", "NR", "NR",
    };

    return act >= 0 && (size_t)act < sizeof(names) / sizeof(names[0]) ? names[act] : NULL;
}

bool network_mccmnc_valid(const char *s)
{
    size_t n = s ? strnlen(s, 7) : 0;

    return (n == 5 || n == 6) && strspn(s, "0123456789") == n;
}

/* A name field: UCS-2 hex under AT+CSCS="UCS2", else the module's bytes
 * (the JSON edge repairs what is not UTF-8). */
static int read_name(struct at_result_iter *it, bool ucs2, char *out)
{
    char raw[4 * NETWORK_NAME_MAX];
    int r = at_result_next_string(it, raw, sizeof(raw));

    if (r == -ENODATA) {
        out[0] = '\0';             /* a name the module does not know */
        return at_result_skip_next(it);
    }
    if (r < 0)
        return r;
    if (ucs2 && utf8_from_ucs2_hex(raw, strlen(raw), out, NETWORK_NAME_MAX) >= 0)
        return 0;
    if (strlen(raw) >= NETWORK_NAME_MAX)
        return -EMSGSIZE;
    strcpy(out, raw);
    return 0;
}

/* One "(<stat>,"<long>","<short>","<numeric>"[,<AcT>])": the iterator is
 * inside the list. */
static int read_operator(struct at_result_iter *it, bool ucs2, struct network_operator *op)
{
    int stat;

    if (at_result_next_number(it, 0, 3, &stat) < 0 || read_name(it, ucs2, op->name) < 0 ||
        read_name(it, ucs2, op->short_name) < 0 ||
        at_result_next_string(it, op->mccmnc, sizeof(op->mccmnc)) < 0 ||
        !network_mccmnc_valid(op->mccmnc) ||
        at_result_next_number_default(it, 0, 255, -1, &op->act) < 0)
        return -EINVAL;
    op->stat = (enum network_stat)stat;
    /* Nothing may follow <AcT>: a longer list is no operator. */
    return at_result_skip_next(it) == -ENOENT ? 0 : -EINVAL;
}

int network_parse_scan(const char *line, bool ucs2, struct network_operator *ops, size_t max,
                       size_t *n)
{
    struct at_result_iter it;
    struct network_operator op;
    size_t got = 0;
    int r;

    *n = 0;
    at_result_iter_init(&it, line);
    if (!at_result_iter_next(&it, "+COPS:"))
        return -EINVAL;
    /* An empty field (",,") or the line's end closes the operators. */
    while ((r = at_result_open_list(&it)) == 0) {
        if (read_operator(&it, ucs2, &op) < 0 || at_result_close_list(&it) < 0)
            return -EINVAL;
        if (got < max)
            ops[got++] = op;
    }
    if (r != -ENODATA && r != -ENOENT)
        return -EINVAL;
    *n = got;
    return 0;
}

/* --- the commands ------------------------------------------------------------------ */

struct scan_req {
    struct modem *modem;
    network_scan_cb cb;
    void *ctx;
};

static void scan_done(void *ctx, const struct at_response *rsp)
{
    struct scan_req req = *(struct scan_req *)ctx;
    struct network_scan *scan = NULL;
    struct m2m_error err;

    free(ctx);
    if (m2m_error_from_at(&err, rsp, "AT+COPS=?")) {
        req.cb(req.ctx, NULL, &err);
        return;
    }
    scan = calloc(1, sizeof(*scan));
    if (!scan) {
        m2m_error_set(&err, "unavailable", "out of memory");
        req.cb(req.ctx, NULL, &err);
        return;
    }
    /* expect_info: an OK reaches here only with its +COPS: line. */
    for (size_t i = 0; i < rsp->n_lines; i++) {
        if (network_parse_scan(rsp->lines[i], modem_charset_ucs2(req.modem), scan->ops,
                               NETWORK_OPERATORS_MAX, &scan->n) == 0) {
            log_info("network: %zu operators in reach", scan->n);
            req.cb(req.ctx, scan, NULL);
            free(scan);
            return;
        }
    }
    free(scan);
    log_warn("network: undecodable AT+COPS=? answer");
    m2m_error_set(&err, "modem_error", "the modem's operator list could not be read");
    req.cb(req.ctx, NULL, &err);
}

void network_scan(struct modem *m, network_scan_cb cb, void *ctx)
{
    const struct at_cmd_opts o = { .timeout_ms = NETWORK_TIMEOUT_MS, .info_prefix = "+COPS:",
                                   .expect_info = true };
    struct scan_req *req = malloc(sizeof(*req));
    struct m2m_error err;
    int r;

    if (!req) {
        m2m_error_set(&err, "unavailable", "out of memory");
        cb(ctx, NULL, &err);
        return;
    }
    *req = (struct scan_req){ m, cb, ctx };
    r = modem_send(m, "AT+COPS=?", &o, scan_done, req);
    if (r < 0) {
        free(req);
        m2m_error_from_send_state(&err, r, modem_state_name(modem_state(m)));
        cb(ctx, NULL, &err);
    }
}

struct select_req {
    network_select_cb cb;
    void *ctx;
};

static void select_done(void *ctx, const struct at_response *rsp)
{
    struct select_req req = *(struct select_req *)ctx;
    struct m2m_error err;

    free(ctx);
    if (m2m_error_from_at(&err, rsp, "AT+COPS")) {
        req.cb(req.ctx, &err);
        return;
    }
    req.cb(req.ctx, NULL);
}

void network_select(struct modem *m, const char *mccmnc, network_select_cb cb, void *ctx)
{
    const struct at_cmd_opts o = { .timeout_ms = NETWORK_TIMEOUT_MS };
    char cmd[sizeof("AT+COPS=1,2,\"123456\"")];
    struct select_req *req;
    struct m2m_error err;
    int r;

    /* The parser checked it; this is the last stop before the line. */
    if (mccmnc && !network_mccmnc_valid(mccmnc)) {
        m2m_error_set(&err, "invalid_request", "'mccmnc' must be 5 or 6 digits");
        cb(ctx, &err);
        return;
    }
    if (!(req = malloc(sizeof(*req)))) {
        m2m_error_set(&err, "unavailable", "out of memory");
        cb(ctx, &err);
        return;
    }
    *req = (struct select_req){ cb, ctx };
    if (mccmnc)
        snprintf(cmd, sizeof(cmd), "AT+COPS=1,2,\"%s\"", mccmnc);
    else
        snprintf(cmd, sizeof(cmd), "AT+COPS=0");
    log_info("network: %s", mccmnc ? "manual selection" : "automatic selection");
    r = modem_send(m, cmd, &o, select_done, req);
    if (r < 0) {
        free(req);
        m2m_error_from_send_state(&err, r, modem_state_name(modem_state(m)));
        cb(ctx, &err);
    }
}
