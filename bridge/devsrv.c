/* modem2mqtt --device-server: a serial device server's configuration
 * console (devsrv.h), in the dialect of USR and CommFront devices:
 *
 *   host "+++" (no CR)      device "a"
 *   host "a"                device "+ok"        (all within 3 s)
 *   host "AT+UART\r"        device "\r\n+OK=115200,8,1,NONE,NFC\r\n"
 *   host "AT+REGEN=OFF\r"   device "\r\n+OK\r\n" or "\r\n+ERR=4\r\n"
 *   host "AT+ENTM\r"        device "\r\n+OK\r\n", back to data mode
 *
 * Some models echo the command line; lines that are not an answer are
 * skipped. Nothing from the user reaches the line unchecked: a --set
 * value is made of letters, digits, '.', ',' and '-' and checked against
 * its key's form before the port is opened. */
#include "devsrv.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "at/port.h"
#include "core/config.h"
#include "core/loop.h"

/* The console's window: "+++" to "+ok". */
#define WINDOW_MS 3000
/* One answer in command mode. */
#define ANSWER_MS 1000

/* ---- --set ---------------------------------------------------------------- */

static const char *const err_meanings[] = {
    "invalid format", "invalid command", "invalid operator", "invalid parameter",
    "invalid operation",
};

const char *devsrv_err_meaning(int code)
{
    return code >= 1 && code <= 5 ? err_meanings[code - 1] : "unknown error";
}

/* Splits v (a copy) at commas into at most max fields; the count. */
static size_t split(char *v, char **f, size_t max)
{
    size_t n = 0;

    for (char *p = v; n < max; p++) {
        f[n++] = p;
        p = strchr(p, ',');
        if (!p)
            return n;
        *p = '\0';
    }
    return max + 1;
}

static bool one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* A decimal number lo..hi. */
static bool number_in(const char *s, long lo, long hi)
{
    char *end;
    long v;

    if (!isdigit((unsigned char)*s) || strlen(s) > 7)
        return false;
    v = strtol(s, &end, 10);
    return *end == '\0' && v >= lo && v <= hi;
}

static bool uart_ok(char *v)
{
    static const char *const parity[] = { "NONE", "ODD", "EVEN", "MARK", "SPACE", NULL };
    static const char *const flow[] = { "NFC", "FC", NULL };
    char *f[5];

    return split(v, f, 5) == 5 && number_in(f[0], 1, 9999999) && config_baud_ok(atoi(f[0])) &&
           number_in(f[1], 5, 8) && number_in(f[2], 1, 2) && one_of(f[3], parity) &&
           one_of(f[4], flow);
}

static bool sock_ok(char *v)
{
    static const char *const proto[] = { "TCPS", "TCPC", "UDPS", "UDPC", NULL };
    char *f[3];

    if (split(v, f, 3) != 3 || !one_of(f[0], proto) || !number_in(f[2], 1, 65535))
        return false;
    size_t n = strlen(f[1]);
    return n >= 1 && n <= 63 && strspn(f[1], "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static bool regen_ok(char *v)
{
    static const char *const modes[] = { "OFF", "MAC", "USER", NULL };

    return one_of(v, modes);
}

static const struct {
    const char *key, *cmd, *form;
    bool (*ok)(char *v);
} set_keys[] = {
    { "uart", "UART", "BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)", uart_ok },
    { "sock", "SOCK", "PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)", sock_ok },
    { "regen", "REGEN", "off, mac or user", regen_ok },
};

int devsrv_parse_set(const char *arg, struct devsrv_set *out, char *why, size_t why_size)
{
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
    char copy[DEVSRV_VALUE_MAX];

    for (size_t i = 0; i < sizeof(set_keys) / sizeof(set_keys[0]); i++) {
        if (strlen(set_keys[i].key) != klen || strncasecmp(arg, set_keys[i].key, klen) != 0)
            continue;
        size_t vlen = eq ? strlen(eq + 1) : 0;
        if (vlen == 0 || vlen >= sizeof(copy)) {
            snprintf(why, why_size, "%s: expected %s", set_keys[i].key, set_keys[i].form);
            return -1;
        }
        /* Upper case: the dialect's words; digits and dots are unchanged. */
        for (size_t k = 0; k <= vlen; k++)
            out->value[k] = copy[k] = (char)toupper((unsigned char)eq[1 + k]);
        if (!set_keys[i].ok(copy)) {
            snprintf(why, why_size, "%s: expected %s", set_keys[i].key, set_keys[i].form);
            return -1;
        }
        out->cmd = set_keys[i].cmd;
        return 0;
    }
    snprintf(why, why_size, "unknown key (uart, sock or regen)");
    return -1;
}

/* ---- the line ------------------------------------------------------------- */

static const char *const queries[] = { "UART", "SOCK", "SOCKLK", "REGEN", "WANN", "MAC" };
#define N_QUERIES (sizeof(queries) / sizeof(queries[0]))

struct console {
    struct at_port *port;
    FILE *out, *err;
    char in[512];           /* received, not yet taken */
    size_t n;
    /* The settings as read (queries' order), then as the --set options
     * left them; "" when unknown. */
    char values[N_QUERIES][DEVSRV_VALUE_MAX];
};

/* Waits for the port until deadline: 1 ready, 0 timed out. */
static int wait_port(struct console *c, short events, int64_t deadline)
{
    int64_t left = deadline - loop_now_ms();
    struct pollfd p = { .fd = at_port_fd(c->port), .events = events };

    if (left <= 0)
        return 0;
    int r = poll(&p, 1, (int)left);
    return r > 0 ? 1 : r < 0 && errno == EINTR ? wait_port(c, events, deadline) : 0;
}

static int send_text(struct console *c, const char *s)
{
    int64_t deadline = loop_now_ms() + ANSWER_MS;
    int r = at_port_write(c->port, (const uint8_t *)s, strlen(s));

    while (r == 0 && at_port_pending(c->port) > 0) {
        if (!wait_port(c, POLLOUT, deadline))
            return -ETIMEDOUT;
        ssize_t n = at_port_flush(c->port);
        r = n < 0 ? (int)n : 0;
    }
    return r;
}

/* More bytes into c->in: 0, -ETIMEDOUT, or the port's -errno. What does
 * not fit drops the oldest bytes: only the latest answer matters. */
static int receive(struct console *c, int64_t deadline)
{
    uint8_t buf[256];

    if (!wait_port(c, POLLIN, deadline))
        return -ETIMEDOUT;
    ssize_t n = at_port_read(c->port, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    if (c->n + (size_t)n >= sizeof(c->in)) {
        c->n = 0;
    }
    memcpy(c->in + c->n, buf, (size_t)n);
    c->n += (size_t)n;
    c->in[c->n] = '\0';
    return 0;
}

/* Takes everything up to and including want (any case) from what arrives
 * before deadline. */
static int expect(struct console *c, const char *want, int64_t deadline)
{
    for (;;) {
        char *at = strcasestr(c->in, want);
        if (at) {
            size_t used = (size_t)(at - c->in) + strlen(want);
            memmove(c->in, c->in + used, c->n - used + 1);
            c->n -= used;
            return 0;
        }
        int r = receive(c, deadline);
        if (r < 0)
            return r;
    }
}

/* The next non-empty line (CR or LF ends it) before deadline. */
static int next_line(struct console *c, char *line, size_t size, int64_t deadline)
{
    for (;;) {
        size_t skip = strspn(c->in, "\r\n"), len = strcspn(c->in + skip, "\r\n");
        if (skip + len < c->n) {
            snprintf(line, size, "%.*s", (int)len, c->in + skip);
            memmove(c->in, c->in + skip + len, c->n - skip - len + 1);
            c->n -= skip + len;
            return 0;
        }
        int r = receive(c, deadline);
        if (r < 0)
            return r;
    }
}

/* An +ERR whose code is no number. */
#define ERR_UNREADABLE 1000

/* One AT+ command: 0 with the value after "+OK=" in value ("" for a bare
 * "+OK"), the n of "+ERR=n" or "+ERR=-n" (> 0; ERR_UNREADABLE), or
 * -ETIMEDOUT / -errno. */
static int command(struct console *c, const char *cmd, char *value, size_t size)
{
    char line[256];
    int64_t deadline = loop_now_ms() + ANSWER_MS;
    int r = send_text(c, cmd);

    while (r == 0 && (r = next_line(c, line, sizeof(line), deadline)) == 0) {
        if (strncasecmp(line, "+ERR=", 5) == 0) {
            /* Some models write the code negative: +ERR=-4. */
            int code = abs(atoi(line + 5));
            return code > 0 && code < ERR_UNREADABLE ? code : ERR_UNREADABLE;
        }
        if (strncasecmp(line, "+OK", 3) == 0 && (line[3] == '\0' || line[3] == '=')) {
            const char *v = line[3] ? line + 4 : "";
            size_t n = strlen(v);

            /* No setting of the dialect is this long: not its answer. */
            if (n >= size)
                return -EMSGSIZE;
            memcpy(value, v, n + 1);
            return 0;
        }
        /* an echo of the command, or noise */
    }
    return r;
}

/* ---- the run -------------------------------------------------------------- */

static void report_failure(struct console *c, const char *what, int r)
{
    if (r == ERR_UNREADABLE)
        fprintf(c->out, "%s: +ERR without a readable code\n", what);
    else if (r > 0)
        fprintf(c->out, "%s: +ERR=%d (%s)\n", what, r, devsrv_err_meaning(r));
    else
        fprintf(c->err, "modem2mqtt: %s: %s\n", what,
                r == -ETIMEDOUT ? "no answer within 1 s" : strerror(-r));
}

/* Drops what the port holds now: stale bytes, which could hold an "a". */
static void drain(struct console *c)
{
    uint8_t buf[256];

    while (at_port_read(c->port, buf, sizeof(buf)) > 0)
        ;
}

/* "+++", "a", "+ok": the console's handshake within its window. */
static int enter_console(struct console *c, int baud, const char *port)
{
    int64_t deadline = loop_now_ms() + WINDOW_MS;
    int r;

    drain(c);
    r = send_text(c, "+++");

    if (r == 0 && (r = expect(c, "a", deadline)) == 0 && (r = send_text(c, "a")) == 0)
        r = expect(c, "+ok", deadline);
    if (r == 0) {
        c->n = 0;
        c->in[0] = '\0';
        return 0;
    }
    fprintf(c->err,
            "modem2mqtt: %s: %s: the device server did not enter its console within 3 s "
            "(is it a device server in data mode, on this port, at %d baud? a different "
            "rate: -b or MODEM2MQTT_BAUD)\n",
            port, r == -ETIMEDOUT ? "no answer to +++" : strerror(-r), baud);
    return -1;
}

static void check_uart(struct console *c, const char *uart, int baud)
{
    char want[DEVSRV_VALUE_MAX];

    snprintf(want, sizeof(want), "%d,8,1,NONE,NFC", baud);
    if (strcasecmp(uart, want) != 0)
        fprintf(c->out,
                "warning: the UART is %s; the modem runs at %d baud, 8N1, no flow "
                "control: --set uart=%s\n",
                uart, baud, want);
}

/* Warnings about the settings as they are now, after the --set options. */
static void check_settings(struct console *c, int baud)
{
    if (c->values[0][0])
        check_uart(c, c->values[0], baud);
    if (c->values[3][0] && strcasecmp(c->values[3], "OFF") != 0)
        fprintf(c->out,
                "warning: registry packets are on (%s): --set regen=off (or name the packet "
                "in modem.device_server.registry)\n",
                c->values[3]);
    if (c->values[1][0] && strncasecmp(c->values[1], "TCPS,", 5) != 0)
        fprintf(c->out,
                "warning: the device server is not a TCP server (%s); the bridge connects to "
                "it: --set sock=TCPS,0.0.0.0,PORT\n",
                c->values[1]);
}

/* The queries, printed, into c->values; the number that failed. */
static int show_settings(struct console *c, const char *port, int baud)
{
    char cmd[32];
    int failed = 0;

    fprintf(c->out, "device server on %s (console at %d baud):\n", port, baud);
    for (size_t i = 0; i < N_QUERIES; i++) {
        snprintf(cmd, sizeof(cmd), "AT+%s\r", queries[i]);
        int r = command(c, cmd, c->values[i], sizeof(c->values[i]));
        if (r == 0) {
            fprintf(c->out, "  %-7s %s\n", queries[i], c->values[i]);
            continue;
        }
        c->values[i][0] = '\0';
        report_failure(c, queries[i], r);
        failed++;
        if (r < 0)
            return failed;      /* the line is gone or silent */
    }
    return failed;
}

/* A set the device server accepted: its value is the setting now. */
static void note_set(struct console *c, const struct devsrv_set *set)
{
    for (size_t i = 0; i < N_QUERIES; i++)
        if (strcmp(queries[i], set->cmd) == 0)
            snprintf(c->values[i], sizeof(c->values[i]), "%s", set->value);
}

static int apply_sets(struct console *c, const struct devsrv_set *sets, size_t n)
{
    char cmd[DEVSRV_VALUE_MAX + 16], what[DEVSRV_VALUE_MAX + 16], ignored[64];
    int failed = 0;

    for (size_t i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd), "AT+%s=%s\r", sets[i].cmd, sets[i].value);
        snprintf(what, sizeof(what), "set %s=%s", sets[i].cmd, sets[i].value);
        int r = command(c, cmd, ignored, sizeof(ignored));
        if (r == 0) {
            fprintf(c->out, "%s: ok\n", what);
            note_set(c, &sets[i]);
        } else {
            report_failure(c, what, r);
        }
        failed += r != 0;
    }
    return failed;
}

static int leave_console(struct console *c)
{
    char ignored[64];
    int r = command(c, "AT+ENTM\r", ignored, sizeof(ignored));

    if (r == 0)
        fprintf(c->out, "back in data mode (AT+ENTM)\n");
    else
        report_failure(c, "AT+ENTM", r);
    return r != 0;
}

static int check_args(const char *port, const char *const *args, size_t n,
                      struct devsrv_set *sets, FILE *err)
{
    char why[160];

    if (strstr(port, "://") || strcmp(port, "auto") == 0) {
        fprintf(err, "modem2mqtt: --device-server: expected the serial device the device "
                     "server's console is on (/dev/ttyUSB0)\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (devsrv_parse_set(args[i], &sets[i], why, sizeof(why)) < 0) {
            fprintf(err, "modem2mqtt: --set %s\n", why);
            return -1;
        }
    return 0;
}

/* What to do about a port that did not open: the port's own advice, but
 * a missing one is the device server's serial side, not the modem. */
static const char *open_advice(int r, const char *port, char *buf, size_t size)
{
    if (r != -ENOENT)
        return at_port_open_advice(r, port, buf, size);
    snprintf(buf, size, ": is the device server's serial side (its USB-serial adapter) "
                        "plugged in? `modem2mqtt --list-ports` shows the serial ports");
    return buf;
}

int devsrv_run(const char *port, int baud, const char *const *args, size_t n_sets, FILE *out,
               FILE *err)
{
    struct devsrv_set sets[CONFIG_SETS_MAX];
    struct console c = { .out = out, .err = err };
    int r, failed;

    if (n_sets > CONFIG_SETS_MAX || check_args(port, args, n_sets, sets, err) < 0)
        return 2;
    r = at_port_open(port, baud, &c.port);
    if (r < 0) {
        char advice[512];
        fprintf(err, "modem2mqtt: cannot open %s: %s%s\n", port, strerror(-r),
                open_advice(r, port, advice, sizeof(advice)));
        return r == -EINVAL ? 2 : 1;
    }
    if (enter_console(&c, baud, port) < 0) {
        at_port_close(c.port);
        return 1;
    }
    failed = show_settings(&c, port, baud);
    failed += apply_sets(&c, sets, n_sets);
    check_settings(&c, baud);
    failed += leave_console(&c);
    fflush(out);
    at_port_close(c.port);
    return failed ? 1 : 0;
}
