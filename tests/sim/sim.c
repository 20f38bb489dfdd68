/* modem2mqtt-sim: main, options, the poll() loop, timers and the control
 * protocol on stdin/stdout (README.md in this directory is the contract).
 *
 * One thread: poll() over stdin, the pty master (readable while the AT
 * engine takes input, writable while output waits) and the nearest timer.
 * The only global is the signal flag. */
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t sim_signal;

static void on_signal(int sig)
{
    sim_signal = sig;
}

/* ---- logging and stdout ---- */

void sim_log(const struct sim *s, const char *fmt, ...)
{
    if (s->opt.quiet)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld sim[%ld] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, (long)getpid(), msg);
}

static void vevent(const char *pre, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vevent(const char *pre, const char *fmt, va_list ap)
{
    /* One line: a single buffered write (stdout is line buffered). */
    fputs(pre, stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void sim_event(struct sim *s, const char *fmt, ...)
{
    (void)s;
    va_list ap;
    va_start(ap, fmt);
    vevent("", fmt, ap);
    va_end(ap);
}

static void ctl_reply(struct sim *s, const char *word, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void ctl_reply(struct sim *s, const char *word, const char *fmt, va_list ap)
{
    if (s->ctl_replied) {
        sim_log(s, "bug: a second reply to one control command");
        return;
    }
    s->ctl_replied = true;
    char text[256];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(text, sizeof(text), fmt, copy);
    va_end(copy);
    if (n == 0) {
        sim_event(s, "%s", word);
        return;
    }
    fputs(word, stdout);
    fputc(' ', stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void sim_ctl_ok(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_reply(s, "ok", fmt, ap);
    va_end(ap);
}

void sim_ctl_error(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_reply(s, "error", fmt, ap);
    va_end(ap);
}

void sim_ctl_done(struct sim *s)
{
    if (!s->ctl_replied) {
        s->ctl_replied = true;
        sim_event(s, "ok");
    }
}

/* ---- timers ---- */

void sim_timer_set(struct sim *s, enum sim_timer t, int64_t ms, sim_timer_fn fn)
{
    s->timers[t].due = sim_now_ms() + (ms > 0 ? ms : 0);
    s->timers[t].fn = fn;
}

void sim_timer_stop(struct sim *s, enum sim_timer t)
{
    s->timers[t].fn = NULL;
}

bool sim_timer_armed(const struct sim *s, enum sim_timer t)
{
    return s->timers[t].fn != NULL;
}

void sim_timers_run(struct sim *s)
{
    int64_t now = sim_now_ms();
    /* A timer may arm another one that is due at once: a few passes. */
    for (int pass = 0; pass < 8; pass++) {
        bool fired = false;
        for (int t = 0; t < SIM_TIMER_COUNT; t++) {
            struct sim_timer_slot *slot = &s->timers[t];
            if (!slot->fn || slot->due > now)
                continue;
            sim_timer_fn fn = slot->fn;
            slot->fn = NULL;
            fn(s);
            fired = true;
        }
        if (!fired)
            return;
    }
}

static int next_timeout(const struct sim *s)
{
    int64_t due = INT64_MAX;
    for (int t = 0; t < SIM_TIMER_COUNT; t++)
        if (s->timers[t].fn && s->timers[t].due < due)
            due = s->timers[t].due;
    if (due == INT64_MAX)
        return -1;
    int64_t ms = due - sim_now_ms();
    return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

uint32_t sim_random(struct sim *s)
{
    /* xorshift64*: concatenation references, nothing secret. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 2685821657736338717ULL) >> 32);
}

/* ---- core control commands ---- */

static bool plugged(struct sim *s)
{
    if (s->phase == SIM_UNPLUGGED) {
        sim_ctl_error(s, "unplugged");
        return false;
    }
    return true;
}

static void ctl_urc(struct sim *s, char *args)
{
    if (plugged(s))
        sim_urc(s, "%s", args);
}

/* urc-in <command prefix> <text> */
static void ctl_urc_in(struct sim *s, char *args)
{
    size_t n = strcspn(args, " ");
    const char *text = args + n + strspn(args + n, " ");

    if (n == 0 || !*text || n >= sizeof(s->urc_in_prefix) ||
        strlen(text) >= sizeof(s->urc_in_text)) {
        sim_ctl_error(s, "usage: urc-in <command prefix> <text>");
        return;
    }
    snprintf(s->urc_in_prefix, sizeof(s->urc_in_prefix), "%.*s", (int)n, args);
    snprintf(s->urc_in_text, sizeof(s->urc_in_text), "%s", text);
}

static void ctl_raw(struct sim *s, char *args)
{
    size_t len = strlen(args);
    uint8_t *bytes = malloc(len / 2 + 1);
    if (!bytes) {
        sim_ctl_error(s, "out of memory");
        return;
    }
    long n = sim_hex_decode(args, len, bytes, len / 2 + 1);
    if (n < 0)
        sim_ctl_error(s, "not hex");
    else if (plugged(s))
        sim_write(s, bytes, (size_t)n);
    free(bytes);
}

static void ctl_csq(struct sim *s, char *args)
{
    long v;
    if (!sim_parse_long(args, 0, 99, &v) || (v > 31 && v != 99)) {
        sim_ctl_error(s, "usage: csq <0-31|99>");
        return;
    }
    s->csq = (int)v;
}

/* `cbc <mV>`: the supply voltage AT+CBC reports; 0 makes it a module
 * without AT+CBC. */
static void ctl_cbc(struct sim *s, char *args)
{
    long v;
    if (!sim_parse_long(args, 0, 9999, &v)) {
        sim_ctl_error(s, "usage: cbc <0-9999>");
        return;
    }
    s->cbc_mv = (int)v;
}

/* `operator <hex>`: the name AT+COPS? reports, as raw bytes, so a test
 * can send what real modules send (Latin-1 "Telef\xf3nica"). */
static void ctl_operator(struct sim *s, char *args)
{
    uint8_t name[sizeof(s->operator_name)];
    long n = sim_hex_decode(args, strlen(args), name, sizeof(name) - 1);

    if (n < 1) {
        sim_ctl_error(s, "usage: operator <hex of 1-%zu bytes, no '\"' or control>",
                      sizeof(name) - 1);
        return;
    }
    for (long i = 0; i < n; i++) {
        if (name[i] < 0x20 || name[i] == '"' || name[i] == 0x7F) {
            sim_ctl_error(s, "usage: operator <hex of 1-%zu bytes, no '\"' or control>",
                          sizeof(name) - 1);
            return;
        }
    }
    memcpy(s->operator_name, name, (size_t)n);
    s->operator_name[n] = '\0';
}

static void ctl_creg(struct sim *s, char *args)
{
    long v;
    if (!sim_parse_long(args, 0, 5, &v)) {
        sim_ctl_error(s, "usage: creg <stat 0-5>");
        return;
    }
    sim_modem_set_reg(s, (int)v);
}

static void hang_over(struct sim *s)
{
    sim_log(s, "hang over");
    sim_modem_hang(s, false, false);
}

static void ctl_hang(struct sim *s, char *args)
{
    long ms;
    char *late = strstr(args, " late");
    if (late)
        *late = '\0';
    if (!sim_parse_long(args, 0, INT_MAX, &ms)) {
        sim_ctl_error(s, "usage: hang <ms> [late] (0: until unhang)");
        return;
    }
    sim_log(s, "hanging %s%s", ms ? args : "until unhang", late ? ", answering later" : "");
    sim_modem_hang(s, true, late != NULL);
    if (ms > 0)
        sim_timer_set(s, SIM_TIMER_HANG, ms, hang_over);
    else
        sim_timer_stop(s, SIM_TIMER_HANG);
}

static void ctl_unhang(struct sim *s, char *args)
{
    (void)args;
    sim_log(s, "unhang");
    sim_modem_hang(s, false, false);
}

static void unplug(struct sim *s)
{
    sim_modem_stop(s);
    sim_pty_close(s);
}

static void ctl_unplug(struct sim *s, char *args)
{
    (void)args;
    if (plugged(s))
        unplug(s);
}

static void ctl_replug(struct sim *s, char *args)
{
    (void)args;
    if (s->phase != SIM_UNPLUGGED)
        unplug(s);
    int err = sim_pty_open(s);
    if (err < 0) {
        sim_ctl_error(s, "cannot create a pty: %s", strerror(-err));
        return;
    }
    sim_modem_boot(s);
}

static void ctl_reboot(struct sim *s, char *args)
{
    (void)args;
    if (plugged(s))
        sim_modem_boot(s);
}

static void ctl_quit(struct sim *s, char *args)
{
    (void)args;
    s->quit = true;
}

static void ctl_help(struct sim *s, char *args);

static const struct sim_ctl core_ctls[] = {
    {"urc", ctl_urc},       {"raw", ctl_raw},         {"csq", ctl_csq},
    {"creg", ctl_creg},     {"hang", ctl_hang},       {"unhang", ctl_unhang},
    {"operator", ctl_operator}, {"urc-in", ctl_urc_in}, {"cbc", ctl_cbc},
    {"unplug", ctl_unplug}, {"replug", ctl_replug},   {"reboot", ctl_reboot},
    {"quit", ctl_quit},     {"help", ctl_help},       {NULL, NULL},
};

/* The control tables, in lookup order. A new feature adds its own. */
static const struct sim_ctl *const ctl_tables[] = {
    core_ctls,
    sim_sms_ctls,
    sim_call_ctls,
    sim_audio_ctls,
    sim_ussd_ctls,
    sim_network_ctls,
    sim_cmqtt_ctls,
    sim_power_ctls,
};

#define N_CTL_TABLES (sizeof(ctl_tables) / sizeof(ctl_tables[0]))

static void ctl_help(struct sim *s, char *args)
{
    (void)args;
    char names[512] = "";
    size_t n = 0;
    for (size_t t = 0; t < N_CTL_TABLES; t++)
        for (const struct sim_ctl *c = ctl_tables[t]; c->name && n < sizeof(names) - 16; c++)
            n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", n ? " " : "", c->name);
    sim_ctl_ok(s, "%s", names);
}

static void ctl_line(struct sim *s, char *line)
{
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == '\0' || *line == '#')
        return;
    char *args = line + strcspn(line, " ");
    if (*args) {
        *args++ = '\0';
        while (*args == ' ')
            args++;
    }
    sim_log(s, "control: %s%s%.200s", line, *args ? " " : "", args);
    s->ctl_replied = false;
    for (size_t t = 0; t < N_CTL_TABLES; t++) {
        for (const struct sim_ctl *c = ctl_tables[t]; c->name; c++) {
            if (strcmp(c->name, line) == 0) {
                c->fn(s, args);
                sim_ctl_done(s);
                return;
            }
        }
    }
    sim_ctl_error(s, "unknown command '%s' (try help)", line);
}

/* stdin readable. false on EOF. */
static bool ctl_read(struct sim *s)
{
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0) {
        if (s->ctl_len > 0 && !s->ctl_overflow) {
            s->ctl[s->ctl_len] = '\0';
            ctl_line(s, s->ctl);
        }
        s->ctl_len = 0;
        return false;
    }
    for (ssize_t i = 0; i < n && !s->quit; i++) {
        char c = buf[i];
        if (c == '\n') {
            if (s->ctl_overflow) {
                s->ctl_replied = false;
                sim_ctl_error(s, "line too long (at most %d bytes)", SIM_CTL_MAX - 1);
            } else {
                s->ctl[s->ctl_len] = '\0';
                ctl_line(s, s->ctl);
            }
            s->ctl_len = 0;
            s->ctl_overflow = false;
        } else if (s->ctl_len < SIM_CTL_MAX - 1) {
            s->ctl[s->ctl_len++] = c;
        } else {
            s->ctl_overflow = true;
        }
    }
    return true;
}

/* ---- main ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: modem2mqtt-sim [--link PATH] [--capacity N] [--no-sms] [--pin PIN]\n"
            "                      [--boot-ms MS] [--reject PREFIX]... [--quiet]\n"
            "                      [--sim-init-ms MS] [--cmgs-ms MS] [--report-ms MS]\n"
            "                      [--reset-unplug] [--imei DIGITS]\n"
            "A simulated SIMCom A7670 on a pseudo-terminal; control protocol on\n"
            "stdin/stdout (type `help`). See tests/sim/README.md.\n");
}

static bool opt_ms(const char *name, const char *arg, int *out)
{
    long v;
    if (!sim_parse_long(arg, 0, 3600 * 1000, &v)) {
        fprintf(stderr, "modem2mqtt-sim: %s: expected milliseconds, got '%s'\n", name, arg);
        return false;
    }
    *out = (int)v;
    return true;
}

static int parse_opts(struct sim *s, int argc, char **argv)
{
    enum { O_BOOT = 256, O_SIM_INIT, O_CMGS, O_REPORT, O_NO_SMS, O_CAPACITY, O_RESET_UNPLUG,
           O_IMEI };
    static const struct option longs[] = {
        {"link", required_argument, NULL, 'l'},
        {"capacity", required_argument, NULL, O_CAPACITY},
        {"no-sms", no_argument, NULL, O_NO_SMS},
        {"pin", required_argument, NULL, 'p'},
        {"boot-ms", required_argument, NULL, O_BOOT},
        {"sim-init-ms", required_argument, NULL, O_SIM_INIT},
        {"cmgs-ms", required_argument, NULL, O_CMGS},
        {"report-ms", required_argument, NULL, O_REPORT},
        {"reset-unplug", no_argument, NULL, O_RESET_UNPLUG},
        {"imei", required_argument, NULL, O_IMEI},
        {"reject", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sim_opts *o = &s->opt;
    o->capacity = 10;
    o->boot_ms = 100;
    o->report_ms = 100;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "l:p:r:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->link = optarg;
            break;
        case O_CAPACITY:
            if (!sim_parse_long(optarg, 1, 1000, &v)) {
                fprintf(stderr, "modem2mqtt-sim: --capacity: expected 1-1000\n");
                return -1;
            }
            o->capacity = (size_t)v;
            break;
        case O_NO_SMS:
            o->no_sms = true;
            break;
        case 'p':
            o->pin = optarg;
            break;
        case O_BOOT:
            if (!opt_ms("--boot-ms", optarg, &o->boot_ms))
                return -1;
            break;
        case O_SIM_INIT:
            if (!opt_ms("--sim-init-ms", optarg, &o->sim_init_ms))
                return -1;
            break;
        case O_CMGS:
            if (!opt_ms("--cmgs-ms", optarg, &o->cmgs_ms))
                return -1;
            break;
        case O_RESET_UNPLUG:
            o->reset_unplug = true;
            break;
        case O_IMEI:
            if (strlen(optarg) != 15 || strspn(optarg, "0123456789") != 15) {
                fprintf(stderr, "modem2mqtt-sim: --imei: expected 15 digits\n");
                return -1;
            }
            o->imei = optarg;
            break;
        case O_REPORT:
            if (!opt_ms("--report-ms", optarg, &o->report_ms))
                return -1;
            break;
        case 'r':
            if (o->n_reject == SIM_REJECT_MAX) {
                fprintf(stderr, "modem2mqtt-sim: at most %d --reject\n", SIM_REJECT_MAX);
                return -1;
            }
            o->reject[o->n_reject++] = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "modem2mqtt-sim: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* sigmask: the mask poll runs with (the signals unblocked), so a signal
 * that comes between the check and the wait still interrupts the wait. */
static void loop(struct sim *s, const sigset_t *sigmask)
{
    bool stdin_open = true;
    while (!s->quit && !sim_signal && stdin_open) {
        sim_pty_flush(s);
        struct pollfd fds[3] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = s->master, .events = 0},
            {.fd = sim_cmqtt_fd(s), .events = POLLIN}, /* paho's events */
        };
        if (s->master >= 0) {
            if (sim_modem_wants_input(s))
                fds[1].events |= POLLIN;
            if (s->out_len > 0)
                fds[1].events |= POLLOUT;
        } else {
            fds[1].fd = -1;
        }
        int ms = next_timeout(s);
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
        int rc = ppoll(fds, 3, ms < 0 ? NULL : &ts, sigmask);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            sim_log(s, "poll: %s", strerror(errno));
            return;
        }
        /* The pty first: a control command below may replace it. */
        if (fds[1].fd >= 0 && fds[1].revents) {
            if (fds[1].revents & POLLOUT)
                sim_pty_flush(s);
            if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                sim_pty_read(s);
                sim_modem_pump(s);
            }
        }
        if (fds[0].revents)
            stdin_open = ctl_read(s);
        sim_timers_run(s);
        /* Host bytes held back while a result was deferred. */
        sim_modem_pump(s);
        /* CMQTT results and messages (also those held back during a data
         * block or a deferred result). */
        sim_cmqtt_pump(s);
    }
    sim_pty_flush(s);
    if (!stdin_open)
        sim_log(s, "stdin closed: exiting");
    if (sim_signal)
        sim_log(s, "signal %d: exiting", (int)sim_signal);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Blocked except inside ppoll(). */
    sigset_t block, poll_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &poll_mask);
    sigdelset(&poll_mask, SIGINT);
    sigdelset(&poll_mask, SIGTERM);
    sigdelset(&poll_mask, SIGHUP);

    struct sim *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(stderr, "modem2mqtt-sim: out of memory\n");
        return 1;
    }
    int status = 1;
    s->master = s->slave = -1;
    if (parse_opts(s, argc, argv) < 0)
        goto out;
    s->csq = 20;
    s->cbc_mv = 3978;
    snprintf(s->operator_name, sizeof(s->operator_name), "Sim Telecom");
    s->reg_stat = 1;
    s->pdp[0].used = true;
    snprintf(s->pdp[0].type, sizeof(s->pdp[0].type), "IP");
    s->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)sim_now_ms();
    if (s->rng == 0)
        s->rng = 1;
    if (sim_sms_init(s) < 0) {
        fprintf(stderr, "modem2mqtt-sim: out of memory\n");
        goto out;
    }
    if (sim_cmqtt_init(s) < 0) {
        fprintf(stderr, "modem2mqtt-sim: cannot set up the CMQTT event pipe\n");
        goto out_sms;
    }
    int err = sim_pty_open(s);
    if (err < 0) {
        fprintf(stderr, "modem2mqtt-sim: cannot create a pty: %s\n", strerror(-err));
        goto out_sms;
    }
    sim_modem_boot(s);
    loop(s, &poll_mask);
    sim_modem_stop(s);
    sim_pty_close(s);
    status = 0;
out_sms:
    sim_cmqtt_free(s);
    sim_sms_free(s);
    sim_audio_free(s);
out:
    free(s);
    return status;
}
