/* Integration: a modem behind a serial device server.
 *
 *  - modem2mqtt-devsrv-sim relays tcp:// to the simulator as a device
 *    server does, sending its MAC as a registry packet at connect and a
 *    "www.usr.cn" heartbeat every 3 ms, put at random points of the
 *    modem's output (inside lines, sometimes in two parts); with both
 *    named in modem.device_server, 20 SMS go out and 5 come in, every
 *    result with its own references and every SMS exactly as sent;
 *  - a registry packet alone, not named, is discarded by the resync at
 *    open;
 *  - modem2mqtt --device-server against the simulated console: the
 *    settings printed, the warnings (about the settings as the --set
 *    options left them), a refused --set with the meaning of its +ERR,
 *    AT+ENTM last; a console that does not answer +++ is an error within
 *    about 3 s; with --health it is a usage error. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "modem/pdu.h"

#define HEARTBEAT "www.usr.cn"
#define MAC_HEX "D8B04CFC0001"

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- modem2mqtt-devsrv-sim, driven over its stdin / stdout ---- */

struct devsrv {
    pid_t pid;
    int in, out;
    char buf[4096];
    size_t n;
};

static void devsrv_start(struct devsrv *d, const char *const *args)
{
    int in[2], out[2];
    const char *argv[16] = { M2M_DEVSRV_SIM_PATH };
    size_t n = 1;

    while (args[n - 1] && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        h_fail("pipe: %s", strerror(errno));
    d->pid = fork();
    if (d->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    d->in = in[1];
    d->out = out[0];
    d->n = 0;
}

/* The next line starting with prefix (earlier other lines are skipped). */
static void devsrv_line(struct devsrv *d, const char *prefix, char *line, size_t size)
{
    int64_t end = mono_ms() + h_ms(H_TIMEOUT_MS);

    for (;;) {
        char *nl = memchr(d->buf, '\n', d->n);
        if (nl) {
            size_t len = (size_t)(nl - d->buf);
            bool match = strncmp(d->buf, prefix, strlen(prefix)) == 0;
            snprintf(line, size, "%.*s", (int)len, d->buf);
            memmove(d->buf, nl + 1, d->n - len - 1);
            d->n -= len + 1;
            if (match)
                return;
            continue;
        }
        struct pollfd p = { .fd = d->out, .events = POLLIN };
        int64_t left = end - mono_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            h_fail("modem2mqtt-devsrv-sim: no line '%s...'", prefix);
        ssize_t r = read(d->out, d->buf + d->n, sizeof(d->buf) - 1 - d->n);
        if (r <= 0)
            h_fail("modem2mqtt-devsrv-sim exited before '%s...'", prefix);
        d->n += (size_t)r;
    }
}

static void devsrv_stop(struct devsrv *d)
{
    if (write(d->in, "quit\n", 5) != 5)
        kill(d->pid, SIGKILL);
    close(d->in);
    waitpid(d->pid, NULL, 0);
    close(d->out);
}

/* ---- 1. heartbeats and a registry packet in the stream ---- */

/* The broker, the simulator and the relay in front of it, extra its
 * options; the bridge connects to the relay with config in its
 * configuration, and is ready. */
static void start_behind_relay(struct h_env *e, struct devsrv *d, const char *const *extra,
                               const char *config)
{
    const char *args[12] = { "relay", e->sim.link };
    char line[64], spec[64], saved[sizeof e->sim.link];
    size_t n = 2;
    int port;

    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    for (; *extra && n < 11; extra++)
        args[n++] = *extra;
    devsrv_start(d, args);
    devsrv_line(d, "listen ", line, sizeof line);
    if (sscanf(line, "listen %d", &port) != 1)
        h_fail("relay: '%s'", line);
    snprintf(spec, sizeof spec, "tcp://127.0.0.1:%d", port);
    memcpy(saved, e->sim.link, sizeof saved);
    snprintf(e->sim.link, sizeof e->sim.link, "%s", spec);
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, config);
    memcpy(e->sim.link, saved, sizeof saved);
    h_wait_ready(e);
}

static void stop_behind_relay(struct h_env *e, struct devsrv *d)
{
    h_bridge_stop(&e->bridge);
    devsrv_stop(d);
}

/* The only resync is the one at open: nothing the device server added was
 * ever taken for the module's answer. */
static void assert_never_out_of_step(struct h_env *e)
{
    int all = h_bridge_log_count(&e->bridge, "AT resynchronising");
    int at_open = h_bridge_log_count(&e->bridge, "AT resynchronising: port opened");

    if (all != at_open)
        h_fail("the bridge resynchronised %d times besides at open", all - at_open);
}

/* What arrived over MQTT, for the log. */
static void show(const char *what, const cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j);

    fprintf(stderr, "%s: %s\n", what, text ? text : "?");
    free(text);
}

#define N_OUT 20
#define N_IN 5

static void send_sms(struct h_env *e, int mr[N_OUT + 1])
{
    char payload[128], line[1024], hex[900];
    struct pdu_msg msg;
    int m, id;

    for (int i = 1; i <= N_OUT; i++) {
        snprintf(payload, sizeof payload,
                 "{\"id\":%d,\"to\":\"+4917012345678\",\"text\":\"message %d\"}", i, i);
        h_mqtt_publish_len(&e->mqtt, e->t_send, payload, strlen(payload), 1, false);
    }
    /* The module's reference for each text, as the simulator gave it. */
    for (int i = 1; i <= N_OUT; i++) {
        h_sim_wait_line(&e->sim, "sent ", line, sizeof line, H_TIMEOUT_MS);
        if (sscanf(line, "sent %d %899s", &m, hex) != 2 ||
            pdu_decode(hex, strlen(hex), 0, &msg) != 0 ||
            sscanf((const char *)msg.text, "message %d", &id) != 1 || id < 1 || id > N_OUT)
            h_fail("unexpected simulator line '%s'", line);
        mr[id] = m;
    }
}

static void check_results(struct h_env *e, const int mr[N_OUT + 1])
{
    bool seen[N_OUT + 1] = { false };

    for (int i = 1; i <= N_OUT; i++) {
        cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
        int id = (int)h_json_int(r, "id");
        if (id < 1 || id > N_OUT || seen[id])
            h_fail("result with id %d (twice or unknown)", id);
        seen[id] = true;
        h_json_bool_eq(r, "ok", true);
        cJSON *refs = h_json_arr(r, "references");
        assert_int_equal(cJSON_GetArraySize(refs), 1);
        if (cJSON_GetArrayItem(refs, 0)->valueint != mr[id])
            h_fail("result %d has reference %d, the module gave %d", id,
                   cJSON_GetArrayItem(refs, 0)->valueint, mr[id]);
        show("result", r);
        cJSON_Delete(r);
    }
}

static void receive_sms(struct h_env *e)
{
    char cmd[128], from[32], text[64];

    for (int i = 1; i <= N_IN; i++) {
        snprintf(from, sizeof from, "+49170555000%d", i);
        snprintf(text, sizeof text, "incoming %d: www.usr.c ww OK", i);
        snprintf(cmd, sizeof cmd, "sms %s %s", from, text);
        h_sim_cmd_ok(&e->sim, cmd, NULL, 0);
        cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
        h_json_str_eq(m, "from", from);
        h_json_str_eq(m, "text", text);
        h_json_int_eq(m, "parts", 1);
        show("received", m);
        cJSON_Delete(m);
        /* Deleted from the SIM once published. */
        h_sim_wait_line(&e->sim, "deleted ", NULL, 0, H_TIMEOUT_MS);
    }
}

static void test_heartbeats_and_registry(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    int mr[N_OUT + 1] = { 0 };
    unsigned long beats, inside, split, registry;
    char line[128];

    start_behind_relay(e, &d,
                       (const char *const[]){ "--registry", "hex:" MAC_HEX, "--heartbeat",
                                              HEARTBEAT, "--heartbeat-ms", "3", NULL },
                       "\"modem\":{\"device_server\":{\"registry\":\"hex:" MAC_HEX "\","
                       "\"heartbeat\":\"" HEARTBEAT "\"}}");
    send_sms(e, mr);
    check_results(e, mr);
    receive_sms(e);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS="), N_OUT);
    assert_never_out_of_step(e);

    /* The heartbeats did land inside the modem's output, some in parts. */
    if (write(d.in, "stats\n", 6) != 6)
        h_fail("relay: stats");
    devsrv_line(&d, "ok heartbeats", line, sizeof line);
    if (sscanf(line, "ok heartbeats %lu inside %lu split %lu registry %lu", &beats, &inside,
               &split, &registry) != 4)
        h_fail("relay: '%s'", line);
    fprintf(stderr, "relay: %s\n", line);
    assert_true(registry >= 1);
    assert_true(inside >= 5);
    assert_true(split >= 5);
    stop_behind_relay(e, &d);
    H_PASS(e);
}

/* A registry packet that nobody named: the resync at open drops it. */
static void test_registry_dropped_at_open(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;

    start_behind_relay(e, &d, (const char *const[]){ "--registry", "hex:" MAC_HEX, NULL },
                       NULL);
    cJSON *info = h_retained_json(e, e->t_info);
    h_json_str_eq(info, "model", "A7670E");
    cJSON_Delete(info);
    stop_behind_relay(e, &d);
    H_PASS(e);
}

/* A named heartbeat that starts like the module's "> " prompt: the
 * prompt is held back as the start of a packet, and released after the
 * hold (AT_STRIP_HOLD_MS), since no heartbeat follows it. */
static void test_prompt_like_heartbeat(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    int mr[N_OUT + 1] = { 0 };
    char line[1024];

    start_behind_relay(e, &d, (const char *const[]){ NULL },
                       "\"modem\":{\"device_server\":{\"heartbeat\":\"> keepalive\"}}");
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":7,\"to\":\"+4917012345678\",\"text\":\"x\"}", 1,
                   false);
    h_sim_wait_line(&e->sim, "sent ", line, sizeof line, H_TIMEOUT_MS);
    assert_int_equal(sscanf(line, "sent %d", &mr[7]), 1);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_int_eq(r, "id", 7);
    h_json_bool_eq(r, "ok", true);
    assert_int_equal(cJSON_GetArrayItem(h_json_arr(r, "references"), 0)->valueint, mr[7]);
    cJSON_Delete(r);
    assert_never_out_of_step(e);
    stop_behind_relay(e, &d);
    H_PASS(e);
}

/* ---- 2. the console: modem2mqtt --device-server ---- */

struct run {
    int status;
    int64_t ms;
    char out[4096], err[2048];
};

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;

    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* modem2mqtt --device-server pty [args...], bounded; its output. */
static void run_console(struct h_env *e, const char *pty, const char *const *args,
                        struct run *r)
{
    char out[320], err[320], cfg[320];
    const char *argv[16] = { M2M_BRIDGE_PATH, "-c", cfg, "--device-server", pty };
    size_t n = 5;
    int64_t t0 = mono_ms();

    snprintf(out, sizeof out, "%s/console.out", e->sim.dir);
    snprintf(err, sizeof err, "%s/console.err", e->sim.dir);
    snprintf(cfg, sizeof cfg, "%s/console.json", e->sim.dir);
    FILE *f = fopen(cfg, "w");
    if (!f || fputs("{\"modem\":{\"baud\":115200}}", f) < 0 || fclose(f) != 0)
        h_fail("%s: %s", cfg, strerror(errno));
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr))
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (;;) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid)
            break;
        if (mono_ms() - t0 > h_ms(H_TIMEOUT_MS)) {
            kill(pid, SIGKILL);
            h_fail("modem2mqtt --device-server did not end");
        }
        poll(NULL, 0, 10);      /* polling a child's exit, not synchronising */
    }
    r->ms = mono_ms() - t0;
    read_file(out, r->out, sizeof r->out);
    read_file(err, r->err, sizeof r->err);
    fprintf(stderr, "--- stdout:\n%s--- stderr:\n%s", r->out, r->err);
}

/* The simulated console (console args): its pty's path into pty. */
static void start_console(struct h_env *e, struct devsrv *d, const char *const *args, char *pty,
                          size_t size)
{
    char line[300];

    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    devsrv_start(d, args);
    devsrv_line(d, "pty ", line, sizeof line);
    snprintf(pty, size, "%s", line + 4);
}

static void expect_text(const char *where, const char *text, const char *want)
{
    if (!strstr(text, want))
        h_fail("%s lacks '%s'", where, want);
}

static void test_console(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300], line[300];

    start_console(e, &d, (const char *const[]){ "console", "--uart", "9600,8,1,NONE,NFC", "--regen",
                                            "MAC", "--refuse", "REGEN=4", NULL }, pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ "--set", "uart=115200,8,1,none,nfc", "--set",
                                               "regen=off", NULL },
                &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 1);
    expect_text("stdout", r.out, "  UART    9600,8,1,NONE,NFC\n");
    expect_text("stdout", r.out, "  MAC     " MAC_HEX "\n");
    expect_text("stdout", r.out, "  WANN    STATIC,192.168.0.7,255.255.255.0,192.168.0.1\n");
    /* The warnings are about the settings after the --set options: the
     * UART was set, the registry packets are still on. */
    if (strstr(r.out, "warning: the UART"))
        h_fail("a warning about the UART that --set just changed");
    expect_text("stdout", r.out, "set UART=115200,8,1,NONE,NFC: ok\n"
                                 "set REGEN=OFF: +ERR=4 (invalid parameter)\n"
                                 "warning: registry packets are on (MAC): --set regen=off");
    expect_text("stdout", r.out, "back in data mode (AT+ENTM)\n");
    /* On the line: the handshake, the queries, the sets, AT+ENTM last. */
    static const char *const want[] = {
        "rx +++", "command mode", "rx AT+UART", "rx AT+SOCK", "rx AT+SOCKLK", "rx AT+REGEN",
        "rx AT+WANN", "rx AT+MAC", "rx AT+UART=115200,8,1,NONE,NFC", "rx AT+REGEN=OFF",
        "rx AT+ENTM", "entm",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        devsrv_line(&d, "", line, sizeof line);
        assert_string_equal(line, want[i]);
    }
    devsrv_stop(&d);
    H_PASS(e);
}

/* Without a --set, a UART that does not match the modem is a warning
 * with the --set that fixes it; status 0 all the same. */
static void test_console_uart_warning(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300];

    start_console(e, &d, (const char *const[]){ "console", "--uart", "9600,8,1,NONE,NFC", NULL },
                  pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
    expect_text("stdout", r.out,
                "warning: the UART is 9600,8,1,NONE,NFC; the modem runs at 115200 baud, 8N1, "
                "no flow control: --set uart=115200,8,1,NONE,NFC\n");
    devsrv_stop(&d);
    H_PASS(e);
}

/* A console that echoes, set up as the modem wants it: the settings,
 * no warning, status 0. */
static void test_console_echo_all_well(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300];

    start_console(e, &d, (const char *const[]){ "console", "--echo", "--sock",
                                                "TCPS,0.0.0.0,8899", NULL },
                  pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ NULL }, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 0);
    char head[400];
    snprintf(head, sizeof head, "device server on %s (console at 115200 baud):\n", pty);
    if (strncmp(r.out, head, strlen(head)) != 0)
        h_fail("stdout does not start with '%s'", head);
    expect_text("stdout", r.out, "  UART    115200,8,1,NONE,NFC\n  SOCK    TCPS,0.0.0.0,8899\n"
                                 "  SOCKLK  disconnect\n  REGEN   OFF\n");
    if (strstr(r.out, "warning"))
        h_fail("a warning for a device server set up right");
    expect_text("stdout", r.out, "back in data mode (AT+ENTM)\n");
    assert_string_equal(r.err, "");
    devsrv_stop(&d);
    H_PASS(e);
}

/* A model that writes its error codes negative: the same meanings. */
static void test_console_minus_errors(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300];

    start_console(e, &d, (const char *const[]){ "console", "--minus-errors", "--refuse", "SOCK=5",
                                                NULL },
                  pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ "--set", "sock=TCPS,0.0.0.0,8899", NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 1);
    expect_text("stdout", r.out, "set SOCK=TCPS,0.0.0.0,8899: +ERR=5 (invalid operation)\n");
    expect_text("stdout", r.out, "back in data mode (AT+ENTM)\n");
    devsrv_stop(&d);
    H_PASS(e);
}

/* A --set that could add a command never reaches the line, nor does
 * anything with a tcp:// port or with --health: usage, 2. */
static void test_console_bad_set(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300], line[300];

    start_console(e, &d, (const char *const[]){ "console", NULL }, pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ "--set", "sock=TCPS,0.0.0.0,8899\rAT+Z", NULL },
                &r);
    assert_int_equal(WEXITSTATUS(r.status), 2);
    expect_text("stderr", r.err, "--set sock: expected PROTOCOL,ADDRESS,PORT");
    run_console(e, pty, (const char *const[]){ "--set", "mac=D8B04CFC0002", NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 2);
    expect_text("stderr", r.err, "--set unknown key (uart, sock or regen)");
    run_console(e, "tcp://127.0.0.1:8899", (const char *const[]){ NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 2);
    expect_text("stderr", r.err, "--device-server: expected the serial device");
    run_console(e, pty, (const char *const[]){ "--health", NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 2);
    expect_text("stderr", r.err, "--device-server and --health: one at a time");
    /* The console saw nothing: its next line is the reply to this. */
    if (write(d.in, "ping\n", 5) != 5)
        h_fail("console: ping");
    devsrv_line(&d, "", line, sizeof line);
    assert_string_equal(line, "error unknown command");
    devsrv_stop(&d);
    H_PASS(e);
}

static void test_console_no_handshake(void **state)
{
    struct h_env *e = *state;
    struct devsrv d;
    struct run r;
    char pty[300];

    start_console(e, &d, (const char *const[]){ "console", "--mute", NULL }, pty, sizeof pty);
    run_console(e, pty, (const char *const[]){ NULL }, &r);
    assert_int_equal(WEXITSTATUS(r.status), 1);
    expect_text("stderr", r.err, "no answer to +++");
    expect_text("stderr", r.err, "within 3 s");
    if (r.ms < 2900 || r.ms > h_ms(4500))
        h_fail("gave up after %lld ms, expected about 3 s", (long long)r.ms);
    assert_string_equal(r.out, "");
    devsrv_stop(&d);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_heartbeats_and_registry),
        T(test_registry_dropped_at_open),
        T(test_prompt_like_heartbeat),
        T(test_console),
        T(test_console_uart_warning),
        T(test_console_echo_all_well),
        T(test_console_minus_errors),
        T(test_console_bad_set),
        T(test_console_no_handshake),
    };
    return cmocka_run_group_tests_name("integration_devsrv", tests, NULL, NULL);
}
