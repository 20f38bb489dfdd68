/* libFuzzer target: at/chat over a fake transport and a fake clock, through
 * the public API only.
 *
 * The input is a script. Each step's first byte picks an action: send one
 * of a fixed set of realistic A7670 commands (some with data after a
 * prompt, some waiting for a result after OK), feed raw input bytes or a
 * canned module fragment, advance the clock and tick, cancel everything,
 * make the next write fail, let the module sleep (at_chat_set_sleep: a
 * lone AT or DTR before commands). URC handlers read CMQTT RX blocks, abort
 * AT+CMQTTSUB on +CMQTTCONNLOST, cancel all
 * on +CMQTTNONET and send AT+CMGR on +CMTI; done callbacks may send the
 * next command.
 *
 * What reaches the serial line is checked write by write. Every write is
 *   - a well-formed command line: "AT", no CR, LF, Ctrl-Z or ESC, one CR at
 *     the end. Our own commands must come in submission order, and only
 *     once every earlier one has completed (one command in flight). The
 *     chat may write command lines of its own (resynchronising the module),
 *     which pass as long as they are well-formed; or
 *   - exactly the data of the command in flight, once, while feeding the
 *     module's bytes, after a '>' arrived for it; or
 *   - a lone ESC from at_chat_tick() while the command in flight had seen a
 *     '>' (its timeout at a prompt); or
 *   - with AT_SLEEP_RX, "AT\r" as a wake (at_chat_wakes() counted it), with
 *     no command of ours in flight.
 * With AT_SLEEP_DTR nothing is written while DTR is off, and DTR goes off
 * only while the chat is idle.
 * Every accepted command completes exactly once, in submission order, with
 * a module result only if it was written. Responses are well-formed
 * (lines[n_lines] == NULL, strings terminated). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/chat.h"
#include "core/log.h"

#define SUBMIT_PDU "0011000C919419513254760000AA0AE8329BFD4697D9EC37"
#define REPORT_PDU "00064D0C91947110325476621112600000406211126000504000"
#define DELIVER_PDU "07919471080000F0040C919419513254760000621112615060800BC8309BFD065DCB6C7A08"

struct spec {
    const char *cmd;
    const char *info;
    const char *after_ok;
    const char *data;
    size_t data_len;
    int timeout_ms;
};

#define DATA(lit) .data = (lit), .data_len = sizeof(lit) - 1

static const struct spec specs[] = {
    {"AT"},
    {"ATE0"},
    {"AT+CSQ", .info = "+CSQ:"},
    {"AT+CMGS=23", .info = "+CMGS:", DATA(SUBMIT_PDU "\x1a"), .timeout_ms = 60000},
    {"AT+CMQTTSTART", .after_ok = "+CMQTTSTART:", .timeout_ms = 12000},
    {"AT+CMQTTTOPIC=0,9", DATA("a/b/c/d/e")},
    /* CMQTT payloads are raw: CR, LF and NUL are data, not line ends. */
    {"AT+CMQTTPAYLOAD=0,6", DATA("h\r\ni\0>")},
    {"AT+CMQTTPAYLOAD=0,0", .data = "", .data_len = 0},
    {"AT+CMQTTPUB=0,1,60", .after_ok = "+CMQTTPUB:", .timeout_ms = 60000},
    {"AT+CMQTTSUB=0,9,1", DATA("a/b/c/d/e"), .after_ok = "+CMQTTSUB:"},
    {"AT+CMQTTDISC=0,120", .after_ok = "+CMQTTDISC:"},
    {"AT+CMGR=3", .info = "+CMGR:"},
    {"AT+CUSD=1,\"*100#\",15", .timeout_ms = 30000},
    {"AT+CPIN?", .info = "+CPIN:"},
    {"AT+CPIN=\"1234\""},
    {"ATD+491591234567;"},
    {"AT+CMGL=4", .info = "+CMGL:"},
    {"AT+CCERTDOWN=\"c.pem\",5", DATA("ab\x1b\x1a\n")},
    /* Refused by at_chat_send: they would end the line early. */
    {"AT\rAT+CFUN=0"},
    {"AT+CMGS=\"1\"\x1a"},
    {""},
};
#define N_SPECS (sizeof(specs) / sizeof(specs[0]))

/* What the module says, in realistic pieces. */
static const char *const canned[] = {
    "\r\nOK\r\n",
    "\r\nERROR\r\n",
    "\r\n> ",
    ">",
    "\r\n+CME ERROR: 13\r\n",
    "\r\n+CME ERROR: SIM busy\r\n",
    "\r\n+CMS ERROR:340\r\n",
    "\r\n+CSQ: 14,99\r\n",
    "\r\n+CMTI: \"SM\",3\r\n",
    "\r\n+CMT: ,29\r\n",
    DELIVER_PDU "\r\n",
    "\r\n+CMGR: 0,,29\r\n",
    "\r\n+CMGS: 5\r\n",
    "\r\n+CMQTTSTART: 0\r\n",
    "\r\n+CMQTTPUB: 0,0\r\n",
    "\r\n+CMQTTSUB: 0,0\r\n",
    "\r\n+CMQTTDISC: 0,0\r\n",
    "\r\n+CMQTTRXSTART: 0,5,9\r\n",
    "\r\n+CMQTTRXTOPIC: 0,5\r\n",
    "a/b\r\n",
    "\r\n+CMQTTRXPAYLOAD: 0,9\r\n",
    "\r\nOK\0\r\n>\n",
    "\r\n+CMQTTRXEND: 0\r\n",
    "\r\n+CMQTTCONNLOST: 0,1\r\n",
    "\r\n+CMQTTNONET\r\n",
    "\r\nRING\r\n",
    "\r\n+CUSD: 1,\"1 Balance\r\n",
    "2 Bundles\",15\r\n",
    "\r\n+CUSD: 0,\"Your balance is 1 EUR\",15\r\n",
    "AT+CSQ\r",
    "AT+CMGS=23\r\r\n> ",
    SUBMIT_PDU "\x1a\r\n",
    "\r\nNO CARRIER\r\n",
    "\r\nVOICE CALL: BEGIN\r\n",
    "\r\n+CPIN: READY\r\n",
    "\r\nRDY\r\r\n",
    "\r\n*ATREADY: 1\r\n",
    /* Status reports: +CDS with its PDU line, +CDSI alone. */
    "\r\n+CDS: 25\r\n",
    REPORT_PDU "\r\n",
    "\r\n+CDSI: \"SM\",4\r\n",
};
#define N_CANNED (sizeof(canned) / sizeof(canned[0]))

static const int advance_ms[] = {0, 1, 500, 999, 1000, 5000, 12000, 60000};

#define MAX_CMDS 512
#define CHAIN_BUDGET 64

struct cmd {
    int spec;
    int then;          /* spec the done callback sends, -1: none */
    bool written;
    bool data_written;
    bool prompt;       /* a '>' was fed since it was written */
    bool write_failed; /* then it waits for the tick to cancel it */
    unsigned done;
};

static struct {
    struct at_chat *chat;
    int64_t now;
    int64_t deadline;  /* last transport->schedule, -1: none */
    int fail_next;
    bool in_feed, in_tick;
    bool feed_gt; /* the bytes being fed hold a '>' */
    struct cmd cmds[MAX_CMDS];
    size_t n_cmds;
    size_t next_write;  /* first of ours not yet written */
    size_t next_done;   /* first of ours not yet completed */
    long cur;           /* ours in flight (written, not completed), -1: none */
    int chain_budget;
    enum at_chat_sleep sleep;
    uint64_t wakes;     /* at_chat_wakes() at the last wake's write */
    bool dtr;
} S;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_chat: invariant failed: %s\n", what);
        abort();
    }
}

/* FUZZ_CHAT_TRACE=1 prints the script as it runs, to read a crash input. */
static bool tracing;

static void trace(const char *what, const void *p, size_t len)
{
    const uint8_t *b = p;

    if (!tracing)
        return;
    fprintf(stderr, "%s ", what);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, b[i] >= 0x20 && b[i] < 0x7f ? "%c" : "\\x%02x", b[i]);
    fprintf(stderr, "\n");
}

static bool is_command_line(const uint8_t *b, size_t len)
{
    if (len < 3 || b[len - 1] != '\r' || (b[0] | 0x20) != 'a' || (b[1] | 0x20) != 't')
        return false;
    for (size_t i = 0; i + 1 < len; i++) {
        if (b[i] == '\r' || b[i] == '\n' || b[i] == 0x1a || b[i] == 0x1b)
            return false;
    }
    return true;
}

static int tr_write(void *ctx, const uint8_t *buf, size_t len)
{
    int rc = S.fail_next;

    (void)ctx;
    S.fail_next = 0;
    trace(rc ? "write (fails)" : "write", buf, len);
    check(len > 0, "empty write");
    check(S.sleep != AT_SLEEP_DTR || S.dtr, "a write while DTR is off");
    if (at_chat_wakes(S.chat) != S.wakes) {
        S.wakes = at_chat_wakes(S.chat);
        check(S.sleep == AT_SLEEP_RX && len == 3 && memcmp(buf, "AT\r", 3) == 0,
              "a wake that is not a lone AT");
        check(S.cur < 0, "a wake with a command in flight");
        return rc;
    }
    if (len == 1 && buf[0] == 0x1b) {
        /* ESC starts every resync attempt (a timeout, an answer that does
         * not fit, an abort): it leaves a prompt the module may show. */
        check(at_chat_syncing(S.chat), "ESC outside a resync");
        return rc;
    }
    if (is_command_line(buf, len)) {
        if (S.next_write < S.n_cmds) {
            struct cmd *c = &S.cmds[S.next_write];
            const char *s = specs[c->spec].cmd;
            size_t n = strlen(s);

            if (len == n + 1 && memcmp(buf, s, n) == 0) {
                check(S.next_done == S.next_write, "a command written before the last completed");
                c->written = true;
                c->write_failed = rc != 0;
                /* Written from a done callback during a feed: a '>' later
                 * in the same bytes may be its prompt. We cannot tell where
                 * in them the write happened, so any '>' counts; bytewise
                 * feeds (op 1 with the high bit) keep the check exact. */
                c->prompt = S.in_feed && S.feed_gt;
                S.cur = (long)S.next_write;
                S.next_write++;
                return rc;
            }
        }
        /* One the chat writes on its own: well-formed is all we ask. */
        return rc;
    }
    check(S.in_feed, "data written outside at_chat_feed");
    check(S.cur >= 0, "data with no command in flight");
    {
        struct cmd *c = &S.cmds[S.cur];
        const struct spec *sp = &specs[c->spec];

        check(sp->data != NULL, "data for a command without data");
        check(!c->data_written, "data written twice");
        check(c->prompt, "data before a prompt");
        check(len == sp->data_len && memcmp(buf, sp->data, len) == 0, "data not as announced");
        c->data_written = true;
        c->write_failed = rc != 0;
    }
    return rc;
}

static int tr_set_dtr(void *ctx, bool on)
{
    (void)ctx;
    if (tracing)
        fprintf(stderr, "dtr %d\n", on);
    check(S.sleep == AT_SLEEP_DTR, "DTR set without AT_SLEEP_DTR");
    check(on || at_chat_idle(S.chat), "DTR off while busy");
    S.wakes = at_chat_wakes(S.chat); /* a DTR wake writes nothing */
    S.dtr = on;
    return 0;
}

static int64_t tr_now(void *ctx)
{
    (void)ctx;
    return S.now;
}

static void tr_schedule(void *ctx, int64_t deadline)
{
    (void)ctx;
    S.deadline = deadline;
}

/* The owner's part (modem_bringup.c): a resync that failed means a
 * module that does not answer; the owner closes the port, which cancels
 * everything. */
static void tr_synced(void *ctx, bool ok)
{
    (void)ctx;
    if (!ok)
        at_chat_cancel_all(S.chat);
}

static void send_spec(int spec, int then);

static void done_cb(void *ctx, const struct at_response *rsp)
{
    size_t i = (size_t)(uintptr_t)ctx;
    struct cmd *c = &S.cmds[i];

    if (tracing)
        fprintf(stderr, "done #%zu %s %s\n", i, specs[c->spec].cmd, at_final_name(rsp->final));
    check(c->done == 0, "completed twice");
    check(i == S.next_done, "completed out of order");
    c->done++;
    S.next_done++;
    /* Cancelled while queued: it will never be written. */
    if (S.next_write <= i)
        S.next_write = i + 1;
    if ((long)i == S.cur)
        S.cur = -1;
    check(rsp->final <= AT_FINAL_OUT_OF_STEP, "final out of range");
    if (rsp->final != AT_FINAL_CANCELLED)
        check(c->written, "a result for a command never written");
    check(rsp->error == 0 || rsp->final == AT_FINAL_CANCELLED, "error without CANCELLED");
    check(rsp->lines != NULL && rsp->lines[rsp->n_lines] == NULL, "lines not NULL-terminated");
    for (size_t k = 0; k < rsp->n_lines; k++)
        (void)strlen(rsp->lines[k]);
    if (rsp->text)
        (void)strlen(rsp->text); /* may be "" when line noise put a NUL first */
    check(rsp->code >= -1, "negative CME/CMS code");
    /* "OK then +CMQTT...: 0": OK alone must not pass for success. The
     * result line is among the info lines (the last one when it came after
     * OK; CMQTTDISC's may come first, and other lines after it). */
    if (rsp->final == AT_FINAL_OK && specs[c->spec].after_ok && !rsp->truncated) {
        const char *p = specs[c->spec].after_ok;
        bool found = false;

        for (size_t k = 0; k < rsp->n_lines && !found; k++)
            found = strncmp(rsp->lines[k], p, strlen(p)) == 0;
        check(found, "OK without the result line it waits for");
    }
    if (c->then >= 0 && S.chain_budget > 0) {
        S.chain_budget--;
        send_spec(c->then, -1);
    }
}

static void send_spec(int spec, int then)
{
    const struct spec *sp = &specs[spec];
    struct at_cmd_opts o = {
        .timeout_ms = sp->timeout_ms,
        .info_prefix = sp->info,
        .after_ok_prefix = sp->after_ok,
        .data = (const uint8_t *)sp->data,
        .data_len = sp->data_len,
    };
    size_t i = S.n_cmds;
    int rc;

    if (i == MAX_CMDS)
        return;
    /* Queued before the call: at_chat_send may write it at once. */
    S.cmds[i] = (struct cmd){.spec = spec, .then = then};
    S.n_cmds++;
    if (tracing)
        fprintf(stderr, "send #%zu %s\n", i, sp->cmd);
    rc = at_chat_send(S.chat, sp->cmd, &o, done_cb, (void *)(uintptr_t)i);
    if (rc != 0) {
        bool bad = strcspn(sp->cmd, "\r\n\x1a\x1b") != strlen(sp->cmd) || !sp->cmd[0];

        check(rc == -ENOBUFS || (rc == -EINVAL && bad), "at_chat_send refused a good command");
        check(!S.cmds[i].written, "a refused command was written");
        S.n_cmds--;
        return;
    }
    check(sp->cmd[0] && strcspn(sp->cmd, "\r\n\x1a\x1b") == strlen(sp->cmd),
          "at_chat_send accepted a command with CR/LF/Ctrl-Z/ESC");
}

static void feed(const uint8_t *d, size_t len)
{
    S.feed_gt = memchr(d, '>', len) != NULL;
    if (S.cur >= 0 && S.feed_gt)
        S.cmds[S.cur].prompt = true;
    trace("feed", d, len);
    S.in_feed = true;
    at_chat_feed(S.chat, d, len);
    S.in_feed = false;
    S.feed_gt = false;
}

static void tick(void)
{
    if (tracing)
        fprintf(stderr, "tick at %lld\n", (long long)S.now);
    S.in_tick = true;
    at_chat_tick(S.chat);
    S.in_tick = false;
}

/* ---- URC handlers ---- */

static void check_lines(const char *const *lines, size_t n)
{
    check(lines != NULL && n >= 1, "URC without lines");
    for (size_t i = 0; i < n; i++)
        (void)strlen(lines[i]);
}

static void urc_plain(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
}

static void urc_cmt(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
    check(n == 2, "+CMT without its PDU line");
}

static void urc_cmti(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
    if (S.chain_budget > 0) {
        S.chain_budget--;
        send_spec(11, -1); /* AT+CMGR=3, from inside a URC handler */
    }
}

/* +CDSI: one line; its prefix starts like +CDS's, which takes two. */
static void urc_cdsi(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
    check(n == 1 && strncmp(lines[0], "+CDSI:", 6) == 0, "+CDSI taken with a PDU line");
}

static size_t block_want;

static void on_block(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    check(len == block_want, "block of the wrong size");
    check(data != NULL || len == 0, "block without data");
    if (len > 0)
        (void)data[len - 1];
}

static void urc_rx(void *ctx, const char *const *lines, size_t n)
{
    const char *comma;
    unsigned long v;
    int rc;

    (void)ctx;
    check_lines(lines, n);
    comma = strrchr(lines[0], ',');
    if (!comma)
        return;
    v = strtoul(comma + 1, NULL, 10);
    if (v > 4096)
        v = 4096;
    rc = at_chat_read_block(S.chat, v, on_block, NULL);
    check(rc == 0 || rc == -EMSGSIZE || rc == -EBUSY, "at_chat_read_block return value");
    if (rc == 0)
        block_want = v;
}

static void urc_connlost(void *ctx, const char *const *lines, size_t n)
{
    /* A command whose write failed is no longer waiting for the module. */
    bool was = S.cur >= 0 && !S.cmds[S.cur].write_failed &&
               strncmp(specs[S.cmds[S.cur].spec].cmd, "AT+CMQTTSUB", 11) == 0;

    (void)ctx;
    check_lines(lines, n);
    check(at_chat_abort(S.chat, "AT+CMQTTSUB") == was, "at_chat_abort disagrees");
}

static void urc_nonet(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
    at_chat_cancel_all(S.chat);
}

/* +CUSD is one line: the service reads USSD text as hex, so nothing after
 * it belongs to it. */
static void urc_cusd(void *ctx, const char *const *lines, size_t n)
{
    (void)ctx;
    check_lines(lines, n);
}

static const struct at_urc urcs[] = {
    {"+CMTI:", 0, urc_cmti},
    {"+CMT:", 1, urc_cmt},
    {"+CDS:", 1, urc_cmt},
    {"+CDSI:", 0, urc_cdsi},
    {"RING", 0, urc_plain},
    {"+CPIN:", 0, urc_plain},
    {"VOICE CALL:", 0, urc_plain},
    {"+CMQTTRXSTART:", 0, urc_plain},
    {"+CMQTTRXTOPIC:", 0, urc_rx},
    {"+CMQTTRXPAYLOAD:", 0, urc_rx},
    {"+CMQTTRXEND:", 0, urc_plain},
    {"+CMQTTCONNLOST:", 0, urc_connlost},
    {"+CMQTTNONET", 0, urc_nonet},
    {"+CUSD:", 0, urc_cusd},
};

static void quiet(void) __attribute__((constructor));
static void quiet(void)
{
    const char *t = getenv("FUZZ_CHAT_TRACE");

    tracing = t && *t && strcmp(t, "0") != 0;
    /* Timeouts and odd lines log warnings: millions of them otherwise. */
    log_set_level(tracing ? LOG_DEBUG : LOG_ERROR);
}

/* Nothing may hang: while anything is pending, a tick is scheduled, no
 * later than the longest timeout (or a resync's drain) from now. */
static void live(void)
{
    bool idle = at_chat_idle(S.chat);

    check(!idle || S.next_done == S.n_cmds, "idle with a command not completed");
    if (idle)
        return;
    check(S.deadline >= 0, "work pending and no tick scheduled");
    check(S.deadline <= S.now + 60000 + AT_CHAT_DRAIN_MAX_MS, "tick scheduled too late");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct at_chat_opts o = {
        .default_timeout_ms = 5000,
        .max_queue = 4,
        .max_line = 64,
        .max_block = 1500,
        .max_lines = 8,
        .max_info_bytes = 256,
    };
    struct at_transport tr = {tr_write, tr_now, tr_schedule, NULL, tr_synced, tr_set_dtr};
    size_t i = 0;

    memset(&S, 0, sizeof(S));
    S.now = 100000;
    S.deadline = -1;
    S.cur = -1;
    S.chain_budget = CHAIN_BUDGET;
    S.chat = at_chat_new(&o, &tr);
    check(S.chat != NULL, "at_chat_new");
    check(at_chat_add_urcs(S.chat, urcs, sizeof(urcs) / sizeof(urcs[0]), NULL) == 0, "add_urcs");

    while (i < size) {
        uint8_t op = data[i++];
        uint8_t arg = i < size ? data[i] : 0;

        switch (op % 8) {
        case 0: /* send; with the high bit, bits 3-6 pick a follow-up that
                 * the done callback sends */
            i++;
            send_spec(arg % N_SPECS, op & 0x80 ? (int)(((op >> 3) & 0x0F) % N_SPECS) : -1);
            break;
        case 1: { /* raw module bytes */
            size_t n = arg % 48;

            i++;
            if (n > size - i)
                n = size - i;
            if (op & 0x80) {
                for (size_t k = 0; k < n; k++)
                    feed(data + i + k, 1);
            } else {
                feed(data + i, n);
            }
            i += n;
            break;
        }
        case 2: /* a canned fragment */
        case 3:
            i++;
            feed((const uint8_t *)canned[arg % N_CANNED], strlen(canned[arg % N_CANNED]));
            break;
        case 4: /* time passes */
            i++;
            S.now += advance_ms[arg % 8];
            tick();
            break;
        case 5: /* the owner's timer fires on time */
            if (S.deadline >= 0 && S.deadline > S.now)
                S.now = S.deadline;
            tick();
            break;
        case 6:
            if (tracing)
                fprintf(stderr, "cancel all\n");
            at_chat_cancel_all(S.chat);
            break;
        default:
            if (op & 0x80) { /* the module sleeps (or no longer) */
                i++;
                S.sleep = (enum at_chat_sleep)(arg % 3);
                if (tracing)
                    fprintf(stderr, "sleep %d\n", (int)S.sleep);
                check(at_chat_set_sleep(S.chat, S.sleep) == 0, "at_chat_set_sleep");
                S.wakes = at_chat_wakes(S.chat);
                break;
            }
            if (tracing)
                fprintf(stderr, "next write fails\n");
            S.fail_next = -EIO;
            break;
        }
        live();
    }

    /* Done callbacks may queue more while cancelling: repeat until idle. */
    S.chain_budget = 0;
    for (int k = 0; k < 8 && !at_chat_idle(S.chat); k++)
        at_chat_cancel_all(S.chat);
    check(at_chat_idle(S.chat), "not idle after cancelling everything");
    check(S.next_done == S.n_cmds, "an accepted command never completed");
    at_chat_free(S.chat);
    return 0;
}
