/* Integration: `modem2mqtt --health` (the container HEALTHCHECK) against a
 * running bridge, through the state changes a user sees: ready, modem
 * unplugged and back, broker gone and back, bridge stopped or killed.
 * --health reads the same config file as the bridge (its state_dir) and
 * asks the bridge on state_dir/health.sock. And: an idle bridge does not
 * wake up and writes nothing (the socket's answer counts the wakeups). */
#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const struct h_env_opts default_opts = { 0 };

static void test_health_ready(void **state)
{
    struct h_env *e = *state;
    char out[512];

    h_env_up(e, &default_opts);
    h_wait_health(e, 0, "healthy: broker connected, modem ready");
    /* Exactly that line, exit 0. */
    assert_int_equal(h_run_health(e, out, sizeof out), 0);
    assert_string_equal(out, "healthy: broker connected, modem ready");
    H_PASS(e);
}

static void test_health_modem_unplugged(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &default_opts);
    h_wait_health(e, 0, "healthy");
    h_sim_cmd_ok(&e->sim, "unplug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                        H_TIMEOUT_MS));
    h_wait_health(e, 1, "unhealthy: modem unavailable (broker connected)");
    h_sim_cmd_ok(&e->sim, "replug", NULL, 0);
    h_wait_modem_ready(e);
    h_wait_health(e, 0, "healthy");
    H_PASS(e);
}

static void test_health_broker_gone(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &default_opts);
    h_wait_health(e, 0, "healthy");
    h_broker_stop(&e->broker);
    h_wait_health(e, 1, "unhealthy: not connected to the broker (modem ready)");
    h_broker_restart(&e->broker);
    h_mqtt_reconnect(&e->mqtt, H_READY_TIMEOUT_MS);
    h_wait_health(e, 0, "healthy");
    H_PASS(e);
}

static void test_health_bridge_stopped(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &default_opts);
    h_wait_health(e, 0, "healthy");
    /* A clean stop removes the socket: "not running". */
    h_bridge_stop(&e->bridge);
    h_wait_health(e, 1, "(bridge not running?)");
    H_PASS(e);
}

/* SIGKILL leaves the socket file; nobody listens: "not running" at once,
 * and a new bridge replaces it. */
static void test_health_bridge_killed(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &default_opts);
    h_wait_health(e, 0, "healthy");
    h_bridge_kill(&e->bridge);
    h_wait_health(e, 1, "(bridge not running?)");
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, NULL);
    h_wait_health(e, 0, "healthy");
    H_PASS(e);
}

/* The bridge's raw answer: "mqtt=... modem=... wakeups=N fsyncs=N
 * commands=N". Asked directly, as --health does, to read the counters. */
static uint64_t ask_wakeups(struct h_env *e)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char buf[256] = "";
    size_t got = 0;
    ssize_t n;
    const char *w;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        h_fail("socket");
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.80s/health.sock", e->bridge.state_dir);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        h_fail("connect %s", sa.sun_path);
    /* Blocking read, bounded by the harness's alarm; the bridge answers at
     * once and closes. */
    while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    w = strstr(buf, "wakeups=");
    if (!w)
        h_fail("health answer without wakeups: '%s'", buf);
    return strtoull(w + 8, NULL, 10);
}

static uint64_t storage_writes(pid_t pid)
{
    char path[64], line[128];
    uint64_t v = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;       /* no task I/O accounting: only the wakeups are checked */
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
            break;
    fclose(f);
    return v;
}

/* Idle means idle: with no status poll due (status_interval 3600), the
 * loop does not wake up between two queries (each query is one wakeup:
 * accept and answer) and nothing is written to storage. The window is
 * longer than the 10 s health file rewrite of earlier versions, which
 * this test fails on. */
#define IDLE_WINDOW_MS 12000
static void test_idle_no_wakeups(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}" };
    struct timespec pause = { 0, 200 * 1000 * 1000 };
    uint64_t w0, w1, io0, io1;

    h_env_up(e, &o);
    h_wait_health(e, 0, "healthy");
    /* The start-up settles (bring-up, first poll, SIM listing, discovery):
     * wait until a query follows the previous one with no wakeup between,
     * bounded. */
    int budget = h_ms(H_TIMEOUT_MS) / 200;
    w0 = ask_wakeups(e);
    for (int i = 0;; i++) {
        nanosleep(&pause, NULL);
        w1 = ask_wakeups(e);
        if (w1 == w0 + 1)
            break;
        if (i >= budget)
            h_fail("the bridge never went idle: %" PRIu64 " wakeups in 200 ms", w1 - w0 - 1);
        w0 = w1;
    }
    w0 = w1;
    io0 = storage_writes(e->bridge.pid);
    /* The observation window itself: nothing is awaited. */
    struct timespec window = { IDLE_WINDOW_MS / 1000, 0 };
    nanosleep(&window, NULL);
    io1 = storage_writes(e->bridge.pid);
    w1 = ask_wakeups(e);
    fprintf(stderr, "idle %d ms: %" PRIu64 " wakeups besides the query, %" PRIu64
                    " bytes written to storage\n",
            IDLE_WINDOW_MS, w1 - w0 - 1, io1 - io0);
    assert_int_equal(w1 - w0, 1);
    assert_int_equal(io1 - io0, 0);
    H_PASS(e);
}

/* Under systemd (Type=notify): READY=1 once the loop runs, STATUS= lines,
 * WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 at a clean stop; all
 * datagrams on NOTIFY_SOCKET. */
static int next_datagram(int fd, char *buf, size_t size)
{
    ssize_t n = recv(fd, buf, size - 1, 0);   /* SO_RCVTIMEO bounds it */

    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static void test_systemd_notify(void **state)
{
    struct h_env *e = *state;
    char dir[] = "/tmp/m2m-notify-XXXXXX", path[64], buf[256];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { h_ms(H_TIMEOUT_MS) / 1000, 0 };
    int fd, watchdogs = 0;

    if (!mkdtemp(dir))
        h_fail("mkdtemp");
    snprintf(path, sizeof path, "%s/notify", dir);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        h_fail("bind %s", path);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* The bridge inherits the environment, as from systemd; only the
     * bridge (mosquitto speaks the protocol too). */
    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "400000", 1);       /* a ping every 200 ms */
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");

    if (next_datagram(fd, buf, sizeof buf) < 0)
        h_fail("no READY=1 from the bridge");
    assert_string_equal(buf, "READY=1");
    /* STATUS= lines come with state changes; pings keep coming. */
    while (watchdogs < 3) {
        if (next_datagram(fd, buf, sizeof buf) < 0)
            h_fail("%d WATCHDOG=1 only", watchdogs);
        if (strcmp(buf, "WATCHDOG=1") == 0)
            watchdogs++;
        else if (strncmp(buf, "STATUS=", 7) != 0)
            h_fail("unexpected notification '%s'", buf);
    }
    h_wait_ready(e);
    h_bridge_stop(&e->bridge);
    do {
        if (next_datagram(fd, buf, sizeof buf) < 0)
            h_fail("no STOPPING=1 from the bridge");
    } while (strcmp(buf, "STOPPING=1") != 0);
    close(fd);
    unlink(path);
    rmdir(dir);
    H_PASS(e);
}

static void test_health_bad_config(void **state)
{
    struct h_env *e = *state;
    char out[512];
    FILE *f;

    /* --health reads the configuration like the bridge, and fails like it
     * (exit 2, the key named) when it is wrong. */
    h_env_up(e, &(const struct h_env_opts){ .no_bridge = true });
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, NULL);
    h_wait_ready(e);
    h_bridge_stop(&e->bridge);
    f = fopen(e->bridge.config_path, "w");
    assert_non_null(f);
    fputs("{\"state_dir\": 7}\n", f);
    fclose(f);
    assert_int_equal(h_run_health(e, out, sizeof out), 2);
    assert_non_null(strstr(out, "state_dir: expected"));
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_health_ready),
        T(test_health_modem_unplugged),
        T(test_health_broker_gone),
        T(test_health_bridge_stopped),
        T(test_health_bridge_killed),
        T(test_idle_no_wakeups),
        T(test_systemd_notify),
        T(test_health_bad_config),
    };
    return cmocka_run_group_tests_name("integration_health", tests, NULL, NULL);
}
