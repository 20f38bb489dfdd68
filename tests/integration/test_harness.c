/* Self-tests of the integration harness against mosquitto and the
 * simulator alone (no bridge): if these fail, the other integration tests'
 * failures say nothing about the bridge. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "modem/pdu.h"

/* Publish/subscribe, per-topic queues in arrival order, retained flag. */
static void test_broker_pubsub(void **state)
{
    struct h_env *e = *state;
    h_broker_start(&e->broker);
    h_mqtt_connect(&e->mqtt, e->broker.uri, "self-a", true);
    h_mqtt_subscribe(&e->mqtt, "t/#");

    struct h_mqtt pub;
    h_mqtt_connect(&pub, e->broker.uri, "self-pub", true);
    h_mqtt_publish(&pub, "t/a", "1", 1, false);
    h_mqtt_publish(&pub, "t/b", "x", 1, false);
    h_mqtt_publish(&pub, "t/a", "2", 0, false);
    h_mqtt_publish(&pub, "t/r", "kept", 1, true);

    char buf[64];
    /* t/b first although it arrived second: queues are per topic. */
    assert_int_equal(h_mqtt_wait(&e->mqtt, "t/b", buf, sizeof buf, H_TIMEOUT_MS), 1);
    assert_string_equal(buf, "x");
    h_mqtt_wait(&e->mqtt, "t/a", buf, sizeof buf, H_TIMEOUT_MS);
    assert_string_equal(buf, "1");
    assert_int_equal(e->mqtt.last_qos, 1);
    h_mqtt_wait(&e->mqtt, "t/a", buf, sizeof buf, H_TIMEOUT_MS);
    assert_string_equal(buf, "2");
    assert_int_equal(e->mqtt.last_qos, 0);
    h_mqtt_wait(&e->mqtt, "t/r", buf, sizeof buf, H_TIMEOUT_MS);
    assert_false(e->mqtt.last_retained); /* live delivery: retain flag cleared (3.1.1) */

    /* A new subscriber gets the retained message with the flag. */
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "self-late", true);
    h_mqtt_subscribe(&late, "t/r");
    cJSON *j = NULL;
    h_mqtt_wait(&late, "t/r", buf, sizeof buf, H_TIMEOUT_MS);
    assert_string_equal(buf, "kept");
    assert_true(late.last_retained);
    (void)j;

    /* Nothing else is pending; a timed take returns NULL. */
    assert_null(h_mqtt_take(&e->mqtt, "t/a", 50));
    assert_int_equal(h_mqtt_pending(&e->mqtt, "t/a"), 0);

    /* JSON helpers. */
    h_mqtt_publish(&pub, "t/j", "{\"id\":\"42\",\"ok\":true,\"n\":3}", 1, false);
    j = h_mqtt_wait_json(&e->mqtt, "t/j", H_TIMEOUT_MS);
    h_json_str_eq(j, "id", "42");
    h_json_bool_eq(j, "ok", true);
    h_json_int_eq(j, "n", 3);
    cJSON_Delete(j);

    h_mqtt_disconnect(&late);
    h_mqtt_disconnect(&pub);
    H_PASS(e);
}

/* What the "nothing deleted before PUBACK" test relies on: a persistent
 * session's subscription and a QoS 1 message published while its client is
 * away survive a broker restart, and so do retained messages. */
static void test_broker_restart_keeps_session(void **state)
{
    struct h_env *e = *state;
    h_broker_start(&e->broker);
    int port = e->broker.port;
    h_mqtt_connect(&e->mqtt, e->broker.uri, "self-persistent", false);
    h_mqtt_subscribe(&e->mqtt, "q/#");

    struct h_mqtt pub;
    h_mqtt_connect(&pub, e->broker.uri, "self-pub", true);
    h_mqtt_publish(&pub, "q/retained", "r", 1, true);
    h_mqtt_disconnect(&pub);
    char buf[64];
    h_mqtt_wait(&e->mqtt, "q/retained", buf, sizeof buf, H_TIMEOUT_MS);

    h_broker_stop(&e->broker);
    h_broker_restart(&e->broker);
    assert_int_equal(e->broker.port, port);

    /* Published before the persistent client is back: queued for it. */
    h_mqtt_connect(&pub, e->broker.uri, "self-pub2", true);
    h_mqtt_publish(&pub, "q/while-away", "queued", 1, false);
    h_mqtt_disconnect(&pub);

    h_mqtt_reconnect(&e->mqtt, H_TIMEOUT_MS);
    assert_true(e->mqtt.session_present);
    h_mqtt_wait(&e->mqtt, "q/while-away", buf, sizeof buf, H_TIMEOUT_MS);
    assert_string_equal(buf, "queued");

    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "self-late", true);
    h_mqtt_subscribe(&late, "q/retained");
    h_mqtt_wait(&late, "q/retained", buf, sizeof buf, H_TIMEOUT_MS);
    assert_string_equal(buf, "r");
    assert_true(late.last_retained);
    h_mqtt_disconnect(&late);
    H_PASS(e);
}

static int open_raw(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

/* The control protocol: pty line, rx events, count/sms/pdu/store. */
static void test_sim_protocol(void **state)
{
    struct h_env *e = *state;
    h_sim_start(&e->sim, NULL);
    assert_int_equal(h_sim_count(&e->sim), 0);

    int fd = open_raw(e->sim.link);
    if (fd < 0)
        h_fail("open %s: %s", e->sim.link, strerror(-fd));
    /* The module drops host bytes until it has booted: wait for *ATREADY. */
    char boot[512];
    size_t got = 0;
    boot[0] = 0;
    while (!strstr(boot, "*ATREADY")) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, h_ms(H_TIMEOUT_MS)) <= 0)
            h_fail("no *ATREADY from the simulator; got '%s'", boot);
        ssize_t r = read(fd, boot + got, sizeof boot - 1 - got);
        if (r <= 0)
            h_fail("read from the pty: %zd", r);
        got += (size_t)r;
        boot[got] = 0;
        if (got == sizeof boot - 1)
            h_fail("no *ATREADY in '%s'", boot);
    }
    static const char at[] = "AT+CSQ\r";
    assert_int_equal(write(fd, at, sizeof at - 1), (ssize_t)(sizeof at - 1));
    char line[256];
    h_sim_wait_line(&e->sim, "rx ", line, sizeof line, H_TIMEOUT_MS);
    assert_string_equal(line, "rx AT+CSQ");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CSQ"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 0);

    char reply[256];
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 hi there", reply, sizeof reply);
    assert_int_equal(h_sim_count(&e->sim), 1);

    /* A DELIVER made by the codec, stored without URC. */
    struct pdu_encode_opts o = { .type = PDU_DELIVER, .addr = "+4917011111111",
                                 .smsc = "+491720000000", .timestamp = 1795237200,
                                 .tz_minutes = 60 };
    struct pdu_part part;
    size_t n = 0;
    enum pdu_alphabet alpha;
    assert_int_equal(pdu_encode(&o, "stored", 6, &part, 1, &n, &alpha), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "store %s", part.hex);
    h_sim_cmd_ok(&e->sim, cmd, reply, sizeof reply);
    assert_int_equal(h_sim_count(&e->sim), 2);
    h_sim_cmd_ok(&e->sim, "list", reply, sizeof reply);
    assert_non_null(strstr(reply, part.hex));

    /* An unknown command is an error, not a hang. */
    assert_int_equal(h_sim_cmd(&e->sim, "no-such-command", reply, sizeof reply), -1);
    close(fd);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broker_pubsub, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart_keeps_session, h_env_setup,
                                        h_env_teardown),
        cmocka_unit_test_setup_teardown(test_sim_protocol, h_env_setup, h_env_teardown),
    };
    return cmocka_run_group_tests_name("integration_harness", tests, NULL, NULL);
}
