/* modem2mqtt-devsrv-sim: a serial device server (USR, CommFront style) in
 * front of the simulated modem, for the tests and for trying the bridge.
 *
 *   relay:   listens on a loopback TCP port and relays to a device (the
 *            simulator's pty) like a device server in TCP server mode, and
 *            adds what such a device server adds on the network side: a
 *            registry packet at connect and heartbeats every N ms, put at
 *            random points of the modem's next output (in the middle of a
 *            line too; alone when the modem is quiet for another N ms),
 *            every fourth in two writes a few milliseconds apart.
 *   console: a pty that speaks the device server's configuration dialect:
 *            "+++" answered "a", "a" answered "+ok" within 3 s, then
 *            AT+<CMD> lines answered "+OK[=...]" or "+ERR=<n>", AT+ENTM
 *            back to data mode.
 *
 * Control on stdin / stdout, one line each, as modem2mqtt-sim's (README.md
 * in this directory). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/hex.h"

#define PKT_MAX 40
#define CONSOLE_WINDOW_MS 3000

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* All of buf, waiting for the fd when it is full. */
static bool write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static int set_raw(int fd)
{
    struct termios t;

    if (tcgetattr(fd, &t) < 0)
        return -1;
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    return tcsetattr(fd, TCSANOW, &t);
}

/* A control line from stdin: 1 line read, 0 none yet, -1 EOF. */
static int read_control(char *line, size_t size)
{
    static char buf[512];
    static size_t n;
    char *nl;

    while (!(nl = memchr(buf, '\n', n))) {
        ssize_t r = read(STDIN_FILENO, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            return r < 0 && errno == EAGAIN ? 0 : -1;
        n += (size_t)r;
        if (n == sizeof(buf) - 1)
            n = 0;      /* an overlong line: dropped */
    }
    size_t len = (size_t)(nl - buf);
    snprintf(line, size, "%.*s", (int)len, buf);
    memmove(buf, nl + 1, n - len - 1);
    n -= len + 1;
    return 1;
}

/* ---- relay ---------------------------------------------------------------- */

struct relay {
    const char *device;
    uint8_t registry[PKT_MAX], heartbeat[PKT_MAX];
    size_t n_registry, n_heartbeat;
    int heartbeat_ms;
    int ls, client, dev;
    int64_t next_beat;
    unsigned long beats, inside, split, registries;
};

/* A heartbeat, every fourth one in two writes a few ms apart, so that the
 * bridge may read it in two parts. */
static bool send_heartbeat(struct relay *r)
{
    size_t half = r->n_heartbeat / 2;

    r->beats++;
    r->next_beat = now_ms() + r->heartbeat_ms;
    if (r->beats % 4 || half == 0)
        return write_all(r->client, r->heartbeat, r->n_heartbeat);
    r->split++;
    if (!write_all(r->client, r->heartbeat, half))
        return false;
    nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000000 }, NULL);
    return write_all(r->client, r->heartbeat + half, r->n_heartbeat - half);
}

static void relay_drop(struct relay *r)
{
    if (r->client >= 0) {
        close(r->client);
        close(r->dev);
        say("disconnected");
    }
    r->client = r->dev = -1;
}

static void relay_accept(struct relay *r)
{
    int c = accept4(r->ls, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0)
        return;
    relay_drop(r);      /* one connection at a time, the newest */
    r->dev = open(r->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (r->dev < 0 || set_raw(r->dev) < 0) {
        say("error cannot open %s: %s", r->device, strerror(errno));
        close(c);
        if (r->dev >= 0)
            close(r->dev);
        r->dev = -1;
        return;
    }
    r->client = c;
    say("connected");
    if (r->n_registry) {
        r->registries++;
        write_all(c, r->registry, r->n_registry);
    }
    r->next_beat = now_ms() + r->heartbeat_ms;
}

/* The modem's output to the network, with a due heartbeat put at a random
 * point of it. */
static bool relay_from_device(struct relay *r)
{
    uint8_t buf[4096];
    ssize_t n = read(r->dev, buf, sizeof(buf));

    if (n < 0 && errno == EAGAIN)
        return true;
    if (n <= 0)
        return false;
    if (!r->n_heartbeat || now_ms() < r->next_beat)
        return write_all(r->client, buf, (size_t)n);
    size_t cut = (size_t)rand() % ((size_t)n + 1);
    if (cut > 0 && cut < (size_t)n)
        r->inside++;
    return write_all(r->client, buf, cut) && send_heartbeat(r) &&
           write_all(r->client, buf + cut, (size_t)n - cut);
}

static bool relay_to_device(struct relay *r)
{
    uint8_t buf[4096];
    ssize_t n = read(r->client, buf, sizeof(buf));

    return n > 0 && write_all(r->dev, buf, (size_t)n);
}

static bool relay_control(struct relay *r)
{
    char line[128];
    int c;

    while ((c = read_control(line, sizeof(line))) > 0) {
        if (strcmp(line, "quit") == 0)
            return false;
        if (strcmp(line, "stats") == 0)
            say("ok heartbeats %lu inside %lu split %lu registry %lu", r->beats, r->inside,
                r->split, r->registries);
        else
            say("error unknown command");
    }
    return c == 0;
}

static int relay_run(struct relay *r)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);

    r->client = r->dev = -1;
    r->ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->ls < 0 || bind(r->ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(r->ls, 4) < 0 ||
        getsockname(r->ls, (struct sockaddr *)&a, &alen) < 0) {
        fprintf(stderr, "modem2mqtt-devsrv-sim: listen: %s\n", strerror(errno));
        return 1;
    }
    say("listen %d", ntohs(a.sin_port));
    for (;;) {
        struct pollfd p[4] = { { .fd = STDIN_FILENO, .events = POLLIN },
                               { .fd = r->ls, .events = POLLIN },
                               { .fd = r->client, .events = POLLIN },
                               { .fd = r->dev, .events = POLLIN } };
        int timeout = -1;
        if (r->client >= 0 && r->n_heartbeat) {
            int64_t left = r->next_beat + r->heartbeat_ms - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        if (poll(p, 4, timeout) < 0 && errno != EINTR)
            return 1;
        if (p[0].revents && !relay_control(r))
            break;
        if (p[1].revents)
            relay_accept(r);
        bool up = r->client >= 0;
        if (up && p[2].revents)
            up = relay_to_device(r);
        if (up && p[3].revents)
            up = relay_from_device(r);
        /* A due heartbeat waits for the modem's next output to go into;
         * with none for another period, it goes alone. */
        if (up && r->n_heartbeat && now_ms() >= r->next_beat + r->heartbeat_ms)
            up = send_heartbeat(r);
        if (!up)
            relay_drop(r);
    }
    relay_drop(r);
    return 0;
}

/* ---- console -------------------------------------------------------------- */

enum console_mode { DATA, WAIT_A, COMMAND };

struct setting {
    const char *name;
    char value[64];
    bool writable;
    int refuse;         /* --refuse NAME=N: a set answers +ERR=N */
};

struct console {
    int master, slave;
    enum console_mode mode;
    int64_t window_end;
    bool mute;
    bool echo;          /* --echo: command mode echoes what it receives */
    bool minus;         /* --minus-errors */
    char data[3];       /* the last bytes in data mode: "+++"? */
    char line[256];
    size_t n;
    struct setting set[6];
};

static struct setting *find_setting(struct console *c, const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(c->set) / sizeof(c->set[0]); i++)
        if (strlen(c->set[i].name) == len && strncasecmp(c->set[i].name, name, len) == 0)
            return &c->set[i];
    return NULL;
}

static void reply(struct console *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct console *c, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    int n;

    buf[0] = '\r';
    buf[1] = '\n';
    va_start(ap, fmt);
    n = vsnprintf(buf + 2, sizeof(buf) - 4, fmt, ap);
    va_end(ap);
    n = n < (int)sizeof(buf) - 4 ? n + 2 : (int)sizeof(buf) - 2;
    buf[n++] = '\r';
    buf[n++] = '\n';
    write_all(c->master, buf, (size_t)n);
}

/* --minus-errors: "+ERR=-4", as some models write it. */
static void reply_err(struct console *c, int code)
{
    reply(c, "+ERR=%s%d", c->minus ? "-" : "", code);
}

/* Fields separated by commas, each of letters, digits, '.' and '-'. */
static int count_fields(const char *v)
{
    int n = 1;

    if (!*v)
        return 0;
    for (; *v; v++) {
        if (*v == ',')
            n++;
        else if (!isalnum((unsigned char)*v) && *v != '.' && *v != '-')
            return 0;
    }
    return n;
}

static bool value_ok(const struct setting *s, const char *v)
{
    if (strcmp(s->name, "UART") == 0)
        return count_fields(v) == 5 && isdigit((unsigned char)v[0]);
    if (strcmp(s->name, "SOCK") == 0)
        return count_fields(v) == 3;
    return strcasecmp(v, "OFF") == 0 || strcasecmp(v, "MAC") == 0 || strcasecmp(v, "USER") == 0;
}

/* One AT+ line in command mode: the dialect's answers. */
static void console_command(struct console *c, const char *l)
{
    if (strncasecmp(l, "AT", 2) != 0) {
        reply_err(c, 1);
        return;
    }
    if (l[2] == '\0') {
        reply(c, "+OK");
        return;
    }
    if (l[2] != '+') {
        reply_err(c, 1);
        return;
    }
    const char *name = l + 3, *eq = strchr(name, '=');
    size_t len = strcspn(name, "=?");
    if (len == 4 && strncasecmp(name, "ENTM", 4) == 0 && !name[4]) {
        reply(c, "+OK");
        c->mode = DATA;
        say("entm");
        return;
    }
    struct setting *s = find_setting(c, name, len);
    if (!s) {
        reply_err(c, 2);
        return;
    }
    if (name[len] == '?' || (eq && eq[1] == '?')) {
        reply_err(c, 3);
        return;
    }
    if (!eq) {
        reply(c, "+OK=%s", s->value);
        return;
    }
    if (!s->writable)
        reply_err(c, 5);
    else if (s->refuse)
        reply_err(c, s->refuse);
    else if (!value_ok(s, eq + 1))
        reply_err(c, 4);
    else {
        snprintf(s->value, sizeof(s->value), "%s", eq + 1);
        reply(c, "+OK");
    }
}

static void console_byte(struct console *c, uint8_t b)
{
    switch (c->mode) {
    case DATA:
        memmove(c->data, c->data + 1, 2);
        c->data[2] = (char)b;
        if (memcmp(c->data, "+++", 3) != 0)
            return;
        memset(c->data, 0, sizeof(c->data));
        say("rx +++");
        if (c->mute)
            return;
        write_all(c->master, "a", 1);
        c->mode = WAIT_A;
        c->window_end = now_ms() + CONSOLE_WINDOW_MS;
        return;
    case WAIT_A:
        if (b != 'a') {
            c->mode = DATA;
            return;
        }
        write_all(c->master, "+ok", 3);
        c->mode = COMMAND;
        c->n = 0;
        say("command mode");
        return;
    case COMMAND:
        /* The echo ends a line with CR LF, as these devices do. */
        if (c->echo)
            write_all(c->master, b == '\r' || b == '\n' ? "\r\n" : (const char *)&b,
                      b == '\r' || b == '\n' ? 2 : 1);
        if (b != '\r' && b != '\n') {
            if (c->n < sizeof(c->line) - 1)
                c->line[c->n++] = (char)b;
            return;
        }
        if (c->n == 0)
            return;
        c->line[c->n] = '\0';
        c->n = 0;
        say("rx %s", c->line);
        console_command(c, c->line);
        return;
    }
}

static int console_open(struct console *c, const char *link)
{
    const char *path;

    c->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (c->master < 0 || grantpt(c->master) < 0 || unlockpt(c->master) < 0 ||
        !(path = ptsname(c->master)))
        return -1;
    /* Held open: without a slave the master reports POLLHUP. */
    c->slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (c->slave < 0 || set_raw(c->slave) < 0)
        return -1;
    fcntl(c->master, F_SETFL, O_NONBLOCK);
    if (link) {
        unlink(link);
        if (symlink(path, link) < 0)
            return -1;
    }
    say("pty %s", path);
    return 0;
}

/* stdin: false on "quit" or EOF. */
static bool console_control(char *line, size_t size)
{
    int r;

    while ((r = read_control(line, size)) > 0) {
        if (strcmp(line, "quit") == 0)
            return false;
        say("error unknown command");
    }
    return r == 0;
}

static int console_run(struct console *c, const char *link)
{
    char line[128];

    if (console_open(c, link) < 0) {
        fprintf(stderr, "modem2mqtt-devsrv-sim: pty: %s\n", strerror(errno));
        return 1;
    }
    for (;;) {
        struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                               { .fd = c->master, .events = POLLIN } };
        int timeout = c->mode == WAIT_A ? (int)(c->window_end - now_ms()) : -1;
        if (c->mode == WAIT_A && timeout <= 0) {
            c->mode = DATA;
            say("window closed");
            continue;
        }
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            return 1;
        if (p[0].revents && !console_control(line, sizeof(line)))
            break;
        if (p[1].revents & POLLIN) {
            uint8_t buf[256];
            ssize_t n = read(c->master, buf, sizeof(buf));
            for (ssize_t i = 0; i < n; i++)
                console_byte(c, buf[i]);
        }
    }
    if (link)
        unlink(link);
    return 0;
}

/* ---- options -------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: modem2mqtt-devsrv-sim relay DEVICE [--registry PKT] [--heartbeat PKT]\n"
            "                             [--heartbeat-ms MS] [--seed N]\n"
            "       modem2mqtt-devsrv-sim console [--link PATH] [--uart V] [--sock V]\n"
            "                             [--regen OFF|MAC|USER] [--refuse NAME=N]... [--mute]\n"
            "                             [--echo] [--minus-errors]\n"
            "PKT: text, or hex: and hex digits (at most %d bytes)\n",
            PKT_MAX);
}

static bool packet_arg(const char *v, uint8_t *out, size_t *len)
{
    if (hex_or_text(v, out, PKT_MAX, len) == 0)
        return true;
    fprintf(stderr, "modem2mqtt-devsrv-sim: expected text or hex: (1-%d bytes)\n", PKT_MAX);
    return false;
}

static int relay_main(int argc, char **argv)
{
    struct relay r = { .heartbeat_ms = 1000 };
    unsigned seed = 1;

    if (argc < 1)
        return usage(stderr), 2;
    r.device = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(stderr), 2;
        if (strcmp(argv[i], "--registry") == 0 && packet_arg(v, r.registry, &r.n_registry))
            i++;
        else if (strcmp(argv[i], "--heartbeat") == 0 &&
                 packet_arg(v, r.heartbeat, &r.n_heartbeat))
            i++;
        else if (strcmp(argv[i], "--heartbeat-ms") == 0 && (r.heartbeat_ms = atoi(v)) > 0)
            i++;
        else if (strcmp(argv[i], "--seed") == 0)
            seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else
            return usage(stderr), 2;
    }
    srand(seed);
    return relay_run(&r);
}

static bool refuse_arg(struct console *c, const char *v)
{
    const char *eq = strchr(v, '=');
    struct setting *s = eq ? find_setting(c, v, (size_t)(eq - v)) : NULL;

    if (!s || atoi(eq + 1) < 1 || atoi(eq + 1) > 5)
        return false;
    s->refuse = atoi(eq + 1);
    return true;
}

static int console_main(int argc, char **argv)
{
    struct console c = {
        .set = { { "UART", "115200,8,1,NONE,NFC", true, 0 },
                 { "SOCK", "TCPS,192.168.0.201,8234", true, 0 },
                 { "SOCKLK", "disconnect", false, 0 },
                 { "REGEN", "OFF", true, 0 },
                 { "WANN", "STATIC,192.168.0.7,255.255.255.0,192.168.0.1", false, 0 },
                 { "MAC", "D8B04CFC0001", false, 0 } },
    };
    const char *link = NULL;

    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        struct setting *s = NULL;
        bool *flag = strcmp(argv[i], "--mute") == 0           ? &c.mute
                     : strcmp(argv[i], "--echo") == 0         ? &c.echo
                     : strcmp(argv[i], "--minus-errors") == 0 ? &c.minus
                                                              : NULL;
        if (flag) {
            *flag = true;
            continue;
        }
        if (strcmp(argv[i], "--link") == 0)
            link = v;
        else if (strcmp(argv[i], "--refuse") == 0 && refuse_arg(&c, v))
            ;
        else if (strncmp(argv[i], "--", 2) == 0 &&
                 (s = find_setting(&c, argv[i] + 2, strlen(argv[i] + 2))) && s->writable)
            snprintf(s->value, sizeof(s->value), "%s", v);
        else
            return usage(stderr), 2;
        i++;
    }
    return console_run(&c, link);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    if (argc >= 2 && strcmp(argv[1], "relay") == 0)
        return relay_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "console") == 0)
        return console_main(argc - 2, argv + 2);
    usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
