/* Integration: two modems in one bridge process ("modems" in the config),
 * each with its own simulator. Each modem has its own base topic, MQTT
 * session (client id, last will), journal directory, Home Assistant
 * device and log tag; a command goes to its own modem only. And one modem
 * hung or unplugged never delays the other: the other's SMS are answered
 * while the first one's command still waits. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define IMEI_A "869951030000001"
#define IMEI_B "869951030000002"
#define TO "+4917012345678"

/* modems[0] ("a") answers a hung AT command after 3 s; "b" after the
 * default 5 s: a delay of b's would show beside a's. */
#define MODEMS_CFG                                                                    \
    "\"sms\":{\"rate_per_hour\":100000},\"modems\":["                                 \
    "{\"name\":\"a\",\"base_topic\":\"m2mtest/a\",\"modem\":{\"port\":\"%s\","        \
    "\"command_timeout_ms\":3000}},"                                                  \
    "{\"name\":\"b\",\"base_topic\":\"m2mtest/b\",\"modem\":{\"port\":\"%s\"}}]"

static const char *const sim_a_args[] = { "--imei", IMEI_A, NULL };
static const char *const sim_b_args[] = { "--imei", IMEI_B, NULL };

/* Until <base>/availability says online and <base>/status ready. */
static void wait_modem_ready(struct h_env *e, const char *base)
{
    char t[128];

    snprintf(t, sizeof t, "%s/availability", base);
    h_mqtt_wait_payload(&e->mqtt, t, "online", h_ms(H_READY_TIMEOUT_MS));
    snprintf(t, sizeof t, "%s/status", base);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, t, "state", "ready", h_ms(H_READY_TIMEOUT_MS)));
}

/* The env's simulator is modem "a", sim_b modem "b"; one bridge runs both
 * (extra: more top-level members of the config, or ""). */
static void modems_up_with(struct h_env *e, struct h_sim *sim_b, const char *extra)
{
    const struct h_env_opts o = { .sim_args = sim_a_args, .no_bridge = true };

    h_env_up(e, &o);
    h_sim_start(sim_b, sim_b_args);
    char *cfg = h_strdupf("%s" MODEMS_CFG, extra, e->sim.link, sim_b->link);
    h_bridge_start(&e->bridge, &e->broker, NULL, NULL, cfg);
    free(cfg);
    wait_modem_ready(e, "m2mtest/a");
    wait_modem_ready(e, "m2mtest/b");
    h_mqtt_subscribe(&e->mqtt, "homeassistant/#");
}

static void modems_up(struct h_env *e, struct h_sim *sim_b)
{
    modems_up_with(e, sim_b, "");
}

static void publish_sms(struct h_env *e, const char *base, int id, const char *text)
{
    char t[128], payload[160];

    snprintf(t, sizeof t, "%s/sms/send", base);
    snprintf(payload, sizeof payload, "{\"id\":%d,\"to\":\"" TO "\",\"text\":\"%s\"}", id, text);
    h_mqtt_publish_len(&e->mqtt, t, payload, strlen(payload), 1, false);
}

/* The result of command id on base, which must be ok. */
static void expect_ok(struct h_env *e, const char *base, int id, int timeout_ms)
{
    char t[128], want[16];

    snprintf(t, sizeof t, "%s/sms/send/result", base);
    snprintf(want, sizeof want, "%d", id);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, t, timeout_ms);
    h_json_eq(r, "id", want);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
}

/* One SMS on base, answered: its latency in ms. */
static long sms_roundtrip(struct h_env *e, const char *base, int id)
{
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    publish_sms(e, base, id, "latency");
    expect_ok(e, base, id, h_ms(H_TIMEOUT_MS));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

/* A retained discovery config names the device by the modem's IMEI and
 * points at that modem's base topic. */
static void expect_ha_device(struct h_env *e, const char *imei, const char *base)
{
    char t[160], want[128];

    snprintf(t, sizeof t, "homeassistant/sensor/modem2mqtt_%s/signal_dbm/config", imei);
    cJSON *c = h_mqtt_wait_json(&e->mqtt, t, h_ms(H_TIMEOUT_MS));
    snprintf(want, sizeof want, "%s/status", base);
    h_json_str_eq(c, "state_topic", want);
    /* Its availability: that modem's bridge session and that modem. */
    const cJSON *avail = h_json_arr(c, "availability");
    snprintf(want, sizeof want, "%s/availability", base);
    h_json_str_eq(cJSON_GetArrayItem(avail, 0), "topic", want);
    snprintf(want, sizeof want, "%s/status", base);
    h_json_str_eq(cJSON_GetArrayItem(avail, 1), "topic", want);
    cJSON_Delete(c);
}

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Lines of a file that contain text. */
static int file_count(const char *path, const char *text)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(path, "r");

    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void test_two_modems_one_process(void **state)
{
    struct h_env *e = *state;
    struct h_sim *b = &e->sim2;       /* torn down with e, also when a test fails */
    char path[400], line[1024];

    modems_up(e, b);

    /* A command goes to its own modem's network, and nowhere else. */
    publish_sms(e, "m2mtest/a", 1, "via a");
    expect_ok(e, "m2mtest/a", 1, h_ms(H_TIMEOUT_MS));
    h_sim_wait_line(&e->sim, "sent ", line, sizeof line, h_ms(H_TIMEOUT_MS));
    publish_sms(e, "m2mtest/b", 2, "via b");
    expect_ok(e, "m2mtest/b", 2, h_ms(H_TIMEOUT_MS));
    h_sim_wait_line(b, "sent ", line, sizeof line, h_ms(H_TIMEOUT_MS));
    assert_int_equal(h_sim_saw(&e->sim, "sent "), 1);
    assert_int_equal(h_sim_saw(b, "sent "), 1);

    /* Two Home Assistant devices, by their IMEIs. */
    expect_ha_device(e, IMEI_A, "m2mtest/a");
    expect_ha_device(e, IMEI_B, "m2mtest/b");

    /* Two sessions with derived client ids; a journal directory each; a
     * log tag each. */
    snprintf(path, sizeof path, "%s/mosquitto.log", e->broker.dir);
    if (file_count(path, " as modem2mqtt-a ") < 1 || file_count(path, " as modem2mqtt-b ") < 1)
        h_fail("the broker saw no sessions modem2mqtt-a and modem2mqtt-b (%s)", path);
    snprintf(path, sizeof path, "%s/a", e->bridge.state_dir);
    assert_true(is_dir(path));
    snprintf(path, sizeof path, "%s/b", e->bridge.state_dir);
    assert_true(is_dir(path));
    assert_true(h_bridge_log_count(&e->bridge, "[a] modem: ready") >= 1);
    assert_true(h_bridge_log_count(&e->bridge, "[b] modem: ready") >= 1);

    /* Each session has its own will: a killed bridge leaves both offline. */
    h_bridge_kill(&e->bridge);
    h_mqtt_wait_payload(&e->mqtt, "m2mtest/a/availability", "offline", h_ms(H_TIMEOUT_MS * 6));
    h_mqtt_wait_payload(&e->mqtt, "m2mtest/b/availability", "offline", h_ms(H_TIMEOUT_MS * 6));

    H_PASS(e);
}

/* Modem a stops answering (hung), then goes away (unplugged): b's SMS are
 * answered meanwhile, before a's command, waiting on the hung module, has
 * its answer. */
static void test_hung_modem_delays_nothing(void **state)
{
    struct h_env *e = *state;
    struct h_sim *b = &e->sim2;       /* torn down with e, also when a test fails */
    long before = 0, during = 0;

    modems_up(e, b);
    for (int i = 0; i < 5; i++) {
        long ms = sms_roundtrip(e, "m2mtest/b", 10 + i);
        before = ms > before ? ms : before;
    }

    h_sim_cmd_ok(&e->sim, "hang 0", NULL, 0);
    publish_sms(e, "m2mtest/a", 1, "to a hung modem");
    for (int i = 0; i < 5; i++) {
        long ms = sms_roundtrip(e, "m2mtest/b", 20 + i);
        during = ms > during ? ms : during;
    }
    /* a's command is still waiting for the module (3 s timeout, then a
     * resync, then a reopen): b did not wait for it. */
    if (h_mqtt_pending(&e->mqtt, "m2mtest/a/sms/send/result") != 0)
        h_fail("modem a answered before modem b's five SMS: b waited for the hung modem");
    fprintf(stderr, "b's slowest SMS: %ld ms before, %ld ms while a hung\n", before, during);
    /* Unchanged, give or take a second of a loaded machine: a loop that
     * waited on a for any part of its 3 s timeout shows here. */
    if (during > before + h_ms(1000))
        h_fail("b's SMS took %ld ms while a hung, %ld ms before", during, before);

    /* Unplugged: a leaves "ready"; b goes on. */
    h_sim_cmd_ok(&e->sim, "unhang", NULL, 0);
    h_sim_cmd_ok(&e->sim, "unplug", NULL, 0);
    for (int i = 0; i < 5; i++)
        (void)sms_roundtrip(e, "m2mtest/b", 30 + i);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, "m2mtest/a/sms/send/result", h_ms(H_TIMEOUT_MS * 3));
    h_json_eq(r, "id", "1");
    cJSON_Delete(r);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, "m2mtest/a/status", "state", "unavailable",
                                        h_ms(H_TIMEOUT_MS)));
    /* The container's health check names the modem that is not well. */
    h_wait_health(e, 1, "unhealthy: modem a unavailable (broker connected)");

    /* Back: a is ready again and takes commands. */
    h_sim_cmd_ok(&e->sim, "replug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, "m2mtest/a/status", "state", "ready",
                                        h_ms(H_READY_TIMEOUT_MS)));
    (void)sms_roundtrip(e, "m2mtest/a", 2);

    H_PASS(e);
}

/* With mqtt.pool every modem of the process is a member: 20 commands on
 * the pool's topic, each answered once, by either modem, and each SMS on
 * one network only. */
static void test_modems_share_a_pool(void **state)
{
    struct h_env *e = *state;
    struct h_sim *b = &e->sim2;       /* torn down with e, also when a test fails */
    int by_a = 0, by_b = 0, seen[20] = { 0 };

    modems_up_with(e, b, "\"mqtt\":{\"pool\":{\"topic\":\"m2mpool\"}},");
    h_mqtt_subscribe(&e->mqtt, "m2mpool/sms/send/result");
    /* Both joined: their SUBACKs are logged. */
    for (int waited = 0; h_bridge_log_count(&e->bridge, "pool: joined") < 2; waited += 100) {
        if (waited > h_ms(H_TIMEOUT_MS))
            h_fail("the two modems did not both join the pool");
        struct h_msg *m = h_mqtt_take(&e->mqtt, "m2mpool/never", 100);
        h_msg_free(m);
    }
    for (int i = 0; i < 20; i++) {
        char payload[96];
        snprintf(payload, sizeof payload, "{\"id\":%d,\"to\":\"" TO "\",\"text\":\"pool %d\"}", i, i);
        h_mqtt_publish_len(&e->mqtt, "m2mpool/sms/send", payload, strlen(payload), 1, false);
    }
    for (int n = 0; n < 20; n++) {
        cJSON *r = h_mqtt_wait_json(&e->mqtt, "m2mpool/sms/send/result", h_ms(H_TIMEOUT_MS));
        h_json_bool_eq(r, "ok", true);
        long long id = h_json_int(r, "id");
        const char *modem = h_json_str(r, "modem");
        if (id < 0 || id >= 20 || seen[id]++)
            h_fail("result %lld unexpected or twice", id);
        by_a += strcmp(modem, "m2mtest/a") == 0;
        by_b += strcmp(modem, "m2mtest/b") == 0;
        cJSON_Delete(r);
    }
    fprintf(stderr, "pool in one process: %d by a, %d by b\n", by_a, by_b);
    if (by_a == 0 || by_b == 0 || by_a + by_b != 20)
        h_fail("the pool did not use both modems: %d and %d", by_a, by_b);
    assert_int_equal(h_sim_saw(&e->sim, "sent ") + h_sim_saw(b, "sent "), 20);

    H_PASS(e);
}

/* A stop waits for the broker's acknowledgements at most once, for all the
 * modems together: with the broker frozen, two modems stop in the time of
 * one (3 s for "offline" and a little for the disconnect), not twice that. */
static void test_stop_does_not_add_up(void **state)
{
    struct h_env *e = *state;
    struct h_sim *b = &e->sim2;       /* torn down with e, also when a test fails */
    struct timespec t0, t1;

    modems_up(e, b);
    assert_int_equal(kill(e->broker.pid, SIGSTOP), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    h_bridge_stop(&e->bridge);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kill(e->broker.pid, SIGCONT);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    fprintf(stderr, "two modems, broker frozen: stopped in %ld ms\n", ms);
    /* One after the other they take at least 2 x 3 s. */
    if (ms > 5500)
        h_fail("the stop took %ld ms: the modems waited one after the other", ms);
    assert_int_equal(h_bridge_log_count(&e->bridge, "[a] mqtt: offline not acknowledged"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, "[b] mqtt: offline not acknowledged"), 1);

    H_PASS(e);
}

int main(void)
{
    h_init_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_modems_one_process, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_hung_modem_delays_nothing, h_env_setup,
                                        h_env_teardown),
        cmocka_unit_test_setup_teardown(test_modems_share_a_pool, h_env_setup, h_env_teardown),
        cmocka_unit_test_setup_teardown(test_stop_does_not_add_up, h_env_setup, h_env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
