/* Integration: what a user sees in the log in the first hour, each
 * mistake said once, with what to do about it:
 *  - a port where nothing answers AT (the modem's NMEA or diagnostic
 *    port, a wrong baud, a hung module): one line naming the port and the
 *    baud, not a warning for every retry; said again only after the
 *    module answered in between;
 *  - a port the bridge's user may not open: the usermod command for this
 *    user, the systemd and compose settings; retries quietly, and comes
 *    up once the device is accessible;
 *  - a broker that wants a password, or refuses the one given: the
 *    settings to check;
 *  - an unknown option: one "(try --help)". */
#include "harness.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Long enough for a resync's ten attempts, with sanitizers. */
#define EPISODE_MS 60000

/* Every line with text: the hint itself, once, at error level. */
static void assert_said_once(struct h_env *e, const char *text)
{
    char line[1024];

    int n = h_bridge_log_count(&e->bridge, text);
    if (n != 1)
        h_fail("%d log lines with '%s', want 1", n, text);
    snprintf(line, sizeof line, "error %s", text);
    if (h_bridge_log_count(&e->bridge, line) != 1)
        h_fail("'%s' is not logged as an error", text);
}

static void test_silent_port(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .no_bridge = true, .config = "\"modem\":{\"status_interval\":5}" };
    char hint[1024];

    h_env_up(e, &o);
    snprintf(hint, sizeof hint,
             "modem: no answer to AT on %s at 115200 baud: check that it is the modem's AT "
             "port (`modem2mqtt --list-ports` marks it) and the baud (modem.baud), and that "
             "no other program uses it (`systemctl stop ModemManager`); retrying quietly",
             e->sim.link);
    h_sim_cmd_ok(&e->sim, "hang 0", NULL, 0);
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, o.config);

    /* Two failed resyncs, two reopens: the hint once, the second round
     * at debug level only. */
    h_bridge_wait_log(&e->bridge, "port lost (module not answering)", 2, 2 * EPISODE_MS);
    assert_said_once(e, hint);
    assert_int_equal(h_bridge_log_count(&e->bridge, "info  AT resynchronising: port opened"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "warn  AT resynchronising: port opened"), 0);
    assert_true(h_bridge_log_count(&e->bridge, "debug AT resynchronising: port opened") >= 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "warn  modem: port lost"), 0);
    /* The retries' states and opens are not repeated at info level either:
     * a silent port must not fill the journal for days. */
    assert_int_equal(h_bridge_log_count(&e->bridge, "info  modem: unavailable"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "info  modem: port "), 1);

    /* It answers: the bridge comes up. When it stops answering again (a
     * status poll times out), that is a new episode, said again. */
    h_sim_cmd_ok(&e->sim, "unhang", NULL, 0);
    h_wait_ready(e);
    h_sim_cmd_ok(&e->sim, "hang 0", NULL, 0);
    h_bridge_wait_log(&e->bridge, hint, 2, 2 * EPISODE_MS);
    H_PASS(e);
}

/* A user may not open the device: the bridge runs as "nobody" (which is
 * in no group) on the simulator's pty, which only root may open. Root
 * bypasses file permissions, so the test needs root to drop them. */
static void test_port_permission(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .no_bridge = true };
    struct passwd *pw = getpwnam("nobody");
    char hint[1024];

    if (geteuid() != 0 || !pw) {
        fprintf(stderr, "skipped: needs root and a user nobody to run the bridge without "
                        "access to the port\n");
        skip();
    }
    h_env_up(e, &o);
    /* The way to the link is open to all; the device is not. */
    assert_int_equal(chmod(e->sim.dir, 0755), 0);
    assert_int_equal(chmod(e->sim.pty, 0600), 0);
    snprintf(hint, sizeof hint,
             "modem: cannot open %s: Permission denied: user %s may not use it; add it to "
             "group dialout (`sudo usermod -aG dialout %s`, then log in again; systemd: "
             "SupplementaryGroups=dialout; docker compose: group_add: [dialout]); retrying "
             "every 5 s at most, quietly",
             e->sim.link, pw->pw_name, pw->pw_name);
    e->bridge.uid = pw->pw_uid;
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, NULL);

    /* Retried (at debug level), said once. */
    h_bridge_wait_log(&e->bridge, "debug modem: cannot open", 2, EPISODE_MS);
    assert_said_once(e, hint);

    /* A udev rule or a group change lets it in: it comes up by itself. */
    assert_int_equal(chmod(e->sim.pty, 0666), 0);
    h_wait_ready(e);
    H_PASS(e);
}

/* A broker that knows one user, alice, and the bridge, which logs in as
 * alice with password (a password file in the broker's directory) or
 * anonymously (NULL). */
static void start_auth(struct h_env *e, const char *password)
{
    char path[320], extra[512] = "";
    FILE *f;

    h_broker_start_auth(&e->broker, "alice", "secret");
    if (password) {
        snprintf(path, sizeof path, "%s/bridge-password", e->broker.dir);
        f = fopen(path, "w");
        if (!f || fprintf(f, "%s\n", password) < 0 || fclose(f) != 0)
            h_fail("writing %s", path);
        snprintf(extra, sizeof extra,
                 "\"mqtt\":{\"username\":\"alice\",\"password_file\":\"%s\"}", path);
    }
    h_sim_start(&e->sim, NULL);
    h_bridge_start(&e->bridge, &e->broker, &e->sim, "m2mtest", extra);
}

/* Once, though the bridge keeps trying (each try logs at debug level). */
static void wait_refusals(struct h_env *e, const char *hint)
{
    h_bridge_wait_log(&e->bridge, "cannot connect to", 3, EPISODE_MS);
    assert_said_once(e, hint);
}

static void test_broker_wants_password(void **state)
{
    struct h_env *e = *state;
    char hint[1024];

    start_auth(e, NULL);
    snprintf(hint, sizeof hint,
             "mqtt: cannot connect to %s: Not authorized: the broker wants a user name and "
             "password: set MODEM2MQTT_USERNAME and MODEM2MQTT_PASSWORD_FILE (or "
             "mqtt.username and mqtt.password_file in the config file)",
             e->broker.uri);
    wait_refusals(e, hint);
    H_PASS(e);
}

static void test_broker_refuses_password(void **state)
{
    struct h_env *e = *state;
    char hint[1024];

    start_auth(e, "wrong");
    snprintf(hint, sizeof hint,
             "mqtt: cannot connect to %s: Not authorized: the broker refuses user alice: "
             "check MODEM2MQTT_USERNAME and the password in MODEM2MQTT_PASSWORD_FILE (or "
             "mqtt.username and mqtt.password_file in the config file)",
             e->broker.uri);
    wait_refusals(e, hint);
    H_PASS(e);
}

/* The right password: connected, no advice. */
static void test_broker_takes_password(void **state)
{
    struct h_env *e = *state;

    start_auth(e, "secret");
    h_bridge_wait_log(&e->bridge, "mqtt: connected to", 1, H_READY_TIMEOUT_MS);
    assert_int_equal(h_bridge_log_count(&e->bridge, "cannot connect"), 0);
    H_PASS(e);
}

/* stderr and the exit status of the bridge run with args. */
static int run_bridge(const char *args, char *out, size_t size)
{
    char cmd[512];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof cmd, "timeout 10 '%s' %s 2>&1", M2M_BRIDGE_PATH, args);
    p = popen(cmd, "r");
    if (!p)
        h_fail("popen: cannot run %s", cmd);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    st = pclose(p);
    if (st < 0 || !WIFEXITED(st))
        h_fail("'%s' did not exit normally", cmd);
    return WEXITSTATUS(st);
}

static void test_unknown_option(void **state)
{
    struct h_env *e = *state;
    char out[512];

    assert_int_equal(run_bridge("-x", out, sizeof out), 2);
    assert_string_equal(out, "modem2mqtt: unknown option '-x' (try --help)\n");
    assert_int_equal(run_bridge("-p /dev/ttyUSB2 extra", out, sizeof out), 2);
    assert_string_equal(out, "modem2mqtt: unexpected argument #3: options only (try --help)\n");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_silent_port, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_port_permission, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_broker_wants_password, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_broker_refuses_password, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_broker_takes_password, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_option, h_env_setup, h_env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
