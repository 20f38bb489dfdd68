/* Integration: the bridge's life cycle as users see it: B/availability,
 * B/info, B/status, modem unplugged and plugged again, SIGTERM, a module without SMS. */
#include "harness.h"

#include <stdio.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>

static const struct h_env_opts default_opts = { 0 };

static void retained_payload(struct h_env *e, const char *topic, char *out, size_t size)
{
    struct h_mqtt late;
    h_mqtt_connect(&late, e->broker.uri, "late", true);
    h_mqtt_subscribe(&late, topic);
    h_mqtt_wait(&late, topic, out, size, H_TIMEOUT_MS);
    bool retained = late.last_retained;
    h_mqtt_disconnect(&late);
    if (!retained)
        h_fail("'%s' on '%s' is not retained", out, topic);
}

static void assert_signal(const cJSON *status, int csq, int dbm, long long *percent)
{
    const cJSON *sig = h_json_obj(status, "signal");
    h_json_int_eq(sig, "csq", csq);
    h_json_int_eq(sig, "dbm", dbm);
    long long p = h_json_int(sig, "percent");
    if (p < 0 || p > 100)
        h_fail("signal.percent %lld outside 0-100", p);
    if (percent)
        *percent = p;
}

static void test_availability_online_retained(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    char buf[64];
    retained_payload(e, e->t_avail, buf, sizeof buf);
    assert_string_equal(buf, "online");
    H_PASS(e);
}

static void test_info(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    cJSON *info = h_retained_json(e, e->t_info);
    h_json_str_eq(info, "manufacturer", "SIMCOM INCORPORATED");
    h_json_str_eq(info, "model", "A7670E");
    h_json_str_eq(info, "revision", "A011B07A7670M7");
    const char *imei = h_json_str(info, "imei");
    if (strlen(imei) != 15 || strspn(imei, "0123456789") != 15)
        h_fail("imei \"%s\" is not 15 digits", imei);
    cJSON_Delete(info);
    H_PASS(e);
}

/* The SIM's identity the simulator reports (tests/sim/sim_modem.c). */
static void test_info_sim_identity(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    cJSON *info = h_retained_json(e, e->t_info);
    h_json_str_eq(info, "imei", "869951030012345");
    h_json_str_eq(info, "imsi", "262011234567890");
    h_json_str_eq(info, "iccid", "89490200001234567890");
    h_json_str_eq(info, "number", "+4917000000000");
    cJSON_Delete(info);
    H_PASS(e);
}

static void test_status(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    cJSON *st = h_retained_json(e, e->t_status);
    h_json_str_eq(st, "state", "ready");
    h_json_str_eq(st, "sim", "ready");
    h_json_str_eq(st, "registration", "home");
    assert_signal(st, 20, -73, NULL);
    cJSON_Delete(st);
    H_PASS(e);
}

/* The status is polled every modem.status_interval seconds (min 5). */
static void test_status_signal_refresh(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":5}" };
    h_env_up(e, &o);
    cJSON *st = h_retained_json(e, e->t_status);
    long long p20, p25;
    assert_signal(st, 20, -73, &p20);
    cJSON_Delete(st);

    h_sim_cmd_ok(&e->sim, "csq 25", NULL, 0);
    /* Take status updates until the signal changes (bounded: 3 intervals). */
    int64_t budget = h_ms(15000);
    for (;;) {
        struct h_msg *m = h_mqtt_take(&e->mqtt, e->t_status, (int)budget);
        if (!m)
            h_fail("no status with signal.csq 25 within 15 s of 'csq 25'");
        cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
        h_msg_free(m);
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(j, "signal");
        const cJSON *csq = cJSON_GetObjectItemCaseSensitive(sig, "csq");
        if (cJSON_IsNumber(csq) && csq->valueint == 25) {
            h_json_str_eq(j, "state", "ready");
            assert_signal(j, 25, -63, &p25);
            cJSON_Delete(j);
            break;
        }
        cJSON_Delete(j);
    }
    if (p25 <= p20)
        h_fail("signal.percent %lld at csq 25 is not above %lld at csq 20", p25, p20);
    /* And it is what a new subscriber sees. */
    st = h_retained_json(e, e->t_status);
    assert_signal(st, 25, -63, NULL);
    cJSON_Delete(st);
    H_PASS(e);
}

/* Fails unless nothing is queued on topic (what came is shown). */
static void assert_none_on(struct h_env *e, const char *topic)
{
    struct h_msg *m = h_mqtt_take(&e->mqtt, topic, 0);

    if (m) {
        char payload[64];
        snprintf(payload, sizeof payload, "%s", m->payload);
        h_msg_free(m);
        h_fail("unexpected '%s' on %s", payload, topic);
    }
}

/* B/availability is the bridge's, B/status "state" the modem's: an
 * unplugged modem leaves the bridge online (its commands are answered,
 * "unavailable"), and nothing is said on B/availability meanwhile. */
static void test_unplug_replug(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_sim_cmd_ok(&e->sim, "unplug", NULL, 0);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                       H_TIMEOUT_MS);
    char *s = cJSON_PrintUnformatted(st);
    fprintf(stderr, "unplugged: %s %s\n", e->t_status, s);
    free(s);
    cJSON_Delete(st);
    char buf[64];
    retained_payload(e, e->t_avail, buf, sizeof buf);
    assert_string_equal(buf, "online");
    h_sim_cmd_ok(&e->sim, "replug", NULL, 0);
    h_wait_modem_ready(e);
    /* A command's result is published after everything before it: then
     * no availability message may be queued. */
    cJSON_Delete(h_stats_get(e, 1));
    assert_none_on(e, e->t_avail);
    retained_payload(e, e->t_avail, buf, sizeof buf);
    assert_string_equal(buf, "online");
    st = h_retained_json(e, e->t_status);
    h_json_str_eq(st, "state", "ready");
    cJSON_Delete(st);

    /* It works again: an SMS goes out. */
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":1,\"to\":\"+4917012345678\",\"text\":\"back\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* "online" is retained: once per connection is enough, and the modem's
 * bring-up (probing, starting, ready) does not repeat it. */
static void test_availability_once(void **state)
{
    struct h_env *e = *state;
    /* The subscriber's session outlives the broker's restart below, so
     * it gets every publish once, and no retained copy again. */
    const struct h_env_opts o = { .persistent_client = true };
    h_env_up(e, &o);   /* took the first "online", then "ready" */
    cJSON_Delete(h_stats_get(e, 1));
    assert_none_on(e, e->t_avail);

    /* A new connection: "online" once more, once. */
    h_broker_stop(&e->broker);
    h_broker_restart(&e->broker);
    h_mqtt_reconnect(&e->mqtt, H_TIMEOUT_MS);
    h_mqtt_wait_payload(&e->mqtt, e->t_avail, "online", H_READY_TIMEOUT_MS);
    cJSON_Delete(h_stats_get(e, 2));
    assert_none_on(e, e->t_avail);
    H_PASS(e);
}

static void test_sigterm_offline(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_bridge_stop(&e->bridge); /* asserts exit status 0 */
    h_mqtt_wait_payload(&e->mqtt, e->t_avail, "offline", H_TIMEOUT_MS);
    char buf[64];
    retained_payload(e, e->t_avail, buf, sizeof buf);
    assert_string_equal(buf, "offline");
    H_PASS(e);
}

/* A killed bridge: the broker publishes its last will. */
static void test_kill_last_will(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, &default_opts);
    h_bridge_kill(&e->bridge);
    h_mqtt_wait_payload(&e->mqtt, e->t_avail, "offline", H_READY_TIMEOUT_MS);
    char buf[64];
    retained_payload(e, e->t_avail, buf, sizeof buf);
    assert_string_equal(buf, "offline");
    H_PASS(e);
}

static void test_no_sms_unsupported(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--no-sms", NULL };
    const struct h_env_opts o = { .sim_args = args };
    h_env_up(e, &o);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":7,\"to\":\"+4917012345678\",\"text\":\"x\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_int_eq(r, "id", 7);
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "unsupported");
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 0);
    /* Exactly one result: the next request's result is the next one. */
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":8,\"to\":\"+4917012345678\",\"text\":\"y\"}", 1,
                   false);
    r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_int_eq(r, "id", 8);
    cJSON_Delete(r);
    H_PASS(e);
}

/* Reads the whole bridge log (for "no secret in it" checks). */
static char *read_log(const struct h_bridge *br)
{
    FILE *f = fopen(br->log_path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f)
        h_fail("cannot read %s", br->log_path);
    buf = calloc(1, 1 << 20);
    if (buf)
        n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    if (!buf)
        h_fail("out of memory");
    buf[n] = '\0';
    return buf;
}

/* A SIM with a PIN: the configured PIN is sent once, and never logged
 * (the bridge runs at debug level, where it logs AT traffic). Eight
 * digits: a 4-digit PIN can turn up in a port number or a time stamp. */
#define PIN8 "47110815"
static void test_sim_pin(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--pin", PIN8, NULL };
    const struct h_env_opts o = { .sim_args = args, .config = "\"modem\":{\"pin\":\"" PIN8 "\"}" };
    h_env_up(e, &o);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CPIN=\"" PIN8 "\""), 1);
    char *log = read_log(&e->bridge);
    if (strstr(log, PIN8))
        h_fail("the PIN appears in the bridge log");
    free(log);
    H_PASS(e);
}

/* A wrong PIN is sent exactly once (three would lock the SIM), and the
 * bridge reports sim_locked, with commands answered "unavailable". */
static void test_wrong_pin_locked(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--pin", "4711", NULL };
    const struct h_env_opts o = {
        .sim_args = args, .config = "\"modem\":{\"pin\":\"1234\"}", .no_bridge = true,
    };
    h_env_up(e, &o);
    /* Not h_env_start_bridge: it waits for "ready", which never comes. */
    h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, e->opts.config);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "sim_locked",
                                       H_READY_TIMEOUT_MS);
    h_json_str_eq(st, "sim", "locked");
    cJSON_Delete(st);
    cJSON *err = h_mqtt_wait_json_where(&e->mqtt, "m2mtest/error", "code", "sim_locked",
                                        H_TIMEOUT_MS);
    cJSON_Delete(err);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":1,\"to\":\"+4917012345678\",\"text\":\"x\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_str_eq(h_json_obj(r, "error"), "code", "unavailable");
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CPIN=\""), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGS"), 0);
    H_PASS(e);
}

/* Firmware that rejects AT+CNMI=2,1,...: the fallback mode still gives
 * +CMTI (with status reports as +CDS), and an incoming SMS arrives. */
static void test_cnmi_fallback(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--reject", "AT+CNMI=2", NULL };
    const struct h_env_opts o = { .sim_args = args };
    h_env_up(e, &o);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CNMI=1,1,0,1,0"), 1);
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 via fallback", NULL, 0);
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS);
    h_json_str_eq(m, "text", "via fallback");
    cJSON_Delete(m);
    H_PASS(e);
}

/* A module that stops answering: three timeouts in a row count as hung;
 * the bridge reopens the port, reports it, and recovers when the module
 * answers again. */
static void test_hung_module_recovers(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"modem\":{\"status_interval\":5,\"command_timeout_ms\":500}",
    };
    h_env_up(e, &o);
    /* After the start-up listing: AT+CMGL has its own 20 s timeout, and a
     * hang under it would take that long to find. */
    h_sim_wait_line(&e->sim, "rx AT+CMGL", NULL, 0, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "hang 0", NULL, 0);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                       H_READY_TIMEOUT_MS);
    cJSON_Delete(st);
    h_sim_cmd_ok(&e->sim, "unhang", NULL, 0);
    st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", H_READY_TIMEOUT_MS);
    cJSON_Delete(st);
    /* It works again. */
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":2,\"to\":\"+4917012345678\",\"text\":\"ok\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* Bounded wait for text in the bridge's log. */
static bool log_has(const struct h_bridge *br, const char *text, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        FILE *f = fopen(br->log_path, "r");
        char line[1024];
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f))
            found = strstr(line, text) != NULL;
        if (f)
            fclose(f);
        if (found)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > h_ms(timeout_ms))
            return false;
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL); /* polling a file: no event to wait for */
    }
}

/* Bounded wait until the bridge's broker connection number `ups` is up
 * and not yet lost. */
static void wait_connection(const struct h_bridge *br, int ups)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int up = h_bridge_log_count(br, "mqtt: connected to");
        int lost = h_bridge_log_count(br, "mqtt: connection lost") +
                   h_bridge_log_count(br, "mqtt: broker disconnected");
        if (up == ups && lost == ups - 1)
            return;
        if (up > ups || lost >= ups)
            h_fail("connection %d: the bridge connected %d and lost %d times", ups, up, lost);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
            h_ms(H_READY_TIMEOUT_MS))
            h_fail("the bridge's connection %d never came up", ups);
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL); /* polling a file: no event to wait for */
    }
}

/* The default client id is modem2mqtt-<base topic>; a client that takes
 * the session over with the same id is named in a loud log line. */
static void test_client_id_taken_over(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    char id[160];
    snprintf(id, sizeof id, "modem2mqtt-%s", e->base);
    if (!log_has(&e->bridge, id, H_TIMEOUT_MS))
        h_fail("the bridge does not use the client id %s", id);
    /* A second program with the same id, connecting again and again (as a
     * second bridge would): mosquitto 2.0 closes the older connection
     * without a reason code each time. */
    for (int i = 0; i < 3; i++) {
        struct h_mqtt thief;
        /* The thief must find the bridge connected: an "online" taken from
         * the subscription may be an older one (the bridge publishes it at
         * each connect), and a thief that comes while
         * the bridge waits to reconnect knocks nobody off. */
        wait_connection(&e->bridge, i + 1);
        h_mqtt_connect(&thief, e->broker.uri, id, true);
        h_mqtt_disconnect(&thief);
        /* The bridge comes back by itself. */
        h_mqtt_wait_payload(&e->mqtt, e->t_avail, "online", H_READY_TIMEOUT_MS);
    }
    if (!log_has(&e->bridge, "another client probably uses this bridge's client id", H_TIMEOUT_MS))
        h_fail("no log line naming the client id clash");
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_availability_online_retained),
        T(test_info),
        T(test_info_sim_identity),
        T(test_status),
        T(test_status_signal_refresh),
        T(test_unplug_replug),
        T(test_availability_once),
        T(test_sigterm_offline),
        T(test_kill_last_will),
        T(test_no_sms_unsupported),
        T(test_sim_pin),
        T(test_wrong_pin_locked),
        T(test_cnmi_fallback),
        T(test_hung_module_recovers),
        T(test_client_id_taken_over),
    };
    return cmocka_run_group_tests_name("integration_bridge", tests, NULL, NULL);
}
