/* Integration: the SIM's SMS store. B/status "storage" follows what is
 * stored and deleted (and the poll); a full store is reported on B/error
 * as storage_full once per episode, also when the broker was down then;
 * SMS FULL between AT+CMGR and its answer costs no message; an
 * undecodable stored PDU does not stay on the SIM. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define FROM "+4917099999999"
/* An SMS-SUBMIT (one we "sent", stat 3): the bridge leaves it on the SIM,
 * so it fills a slot for as long as a test wants. */
#define SUBMIT_PDU "0011000C919419513254760000AA0AE8329BFD4697D9EC37"
/* An SMS-DELIVER cut short: it does not decode. */
#define BAD_PDU "07919730071111F1000B919746121611F100002111"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes B/status messages until "storage" is {"used":used,"total":total}. */
#define wait_storage(e, used, total, ms) wait_storage_at(__FILE__, __LINE__, (e), (used), (total), (ms))
static void wait_storage_at(const char *file, int line, struct h_env *e, int used, int total,
                            int ms)
{
    int64_t deadline = mono_ms() + h_ms(ms);
    char last[600] = "(none)";

    for (int64_t left; (left = deadline - mono_ms()) > 0;) {
        struct h_msg *m = h_mqtt_take(&e->mqtt, e->t_status, (int)left);
        if (!m)
            break;
        snprintf(last, sizeof last, "%s", m->payload);
        cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
        h_msg_free(m);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "storage");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(st, "used");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(st, "total");
        bool hit = cJSON_IsNumber(u) && cJSON_IsNumber(t) && u->valueint == used &&
                   t->valueint == total;
        cJSON_Delete(j);
        if (hit)
            return;
    }
    h_fail_at(file, line, "no B/status with \"storage\":{\"used\":%d,\"total\":%d}; last: %s",
              used, total, last);
}

static void error_topic(const struct h_env *e, char *t, size_t size)
{
    snprintf(t, size, "%s/error", e->base);
}

/* Takes the next B/error, which must have this code; returns its message. */
#define wait_error(e, code, msg, size) wait_error_at(__FILE__, __LINE__, (e), (code), (msg), (size))
static void wait_error_at(const char *file, int line, struct h_env *e, const char *code,
                          char *msg, size_t size)
{
    char t[128];
    error_topic(e, t, sizeof t);
    cJSON *j = h_mqtt_wait_json_at(file, line, &e->mqtt, t, H_READY_TIMEOUT_MS);
    h_json_str_eq_at(file, line, j, "code", code);
    snprintf(msg, size, "%s", h_json_str_at(file, line, j, "message"));
    cJSON_Delete(j);
}

static size_t errors_pending(struct h_env *e)
{
    char t[128];
    error_topic(e, t, sizeof t);
    return h_mqtt_pending(&e->mqtt, t);
}

/* Takes the next B/sms/received, which must be text from FROM. */
static void expect_received(struct h_env *e, const char *text, int ms)
{
    cJSON *m = h_mqtt_wait_json(&e->mqtt, e->t_received, ms);
    h_json_str_eq(m, "from", FROM);
    h_json_str_eq(m, "text", text);
    cJSON_Delete(m);
}

static void expect_deleted(struct h_env *e, const char *idx, int ms)
{
    char want[64], line[64];
    snprintf(want, sizeof want, "deleted %s", idx);
    h_sim_wait_line(&e->sim, "deleted ", line, sizeof line, ms);
    assert_string_equal(line, want);
}

/* ---- 1. a received SMS: stored (1 of 10), deleted (0 of 10) ---- */

/* The poll interval is an hour: only the refreshes after the read and
 * the delete can explain the updates, with one AT+CPMS? each. */
static void test_storage_follows_sms(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}" };
    struct h_env *e = *state;
    h_env_up(e, &o);
    wait_storage(e, 0, 10, H_TIMEOUT_MS);
    size_t mark = h_sim_mark(&e->sim);

    char idx[32];
    h_sim_cmd_ok(&e->sim, "sms " FROM " counted", idx, sizeof idx);
    wait_storage(e, 1, 10, H_TIMEOUT_MS);
    expect_received(e, "counted", H_TIMEOUT_MS);
    expect_deleted(e, idx, H_TIMEOUT_MS);
    wait_storage(e, 0, 10, H_TIMEOUT_MS);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "rx AT+CPMS?"), 2);
    assert_int_equal(errors_pending(e), 0);
    H_PASS(e);
}

/* ---- 2. the poll reads the store: a message nobody announced ---- */

static void test_storage_follows_poll(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":5}" };
    struct h_env *e = *state;
    h_env_up(e, &o);
    wait_storage(e, 0, 10, H_TIMEOUT_MS);

    /* Stored without a URC (another program wrote it): the next round. */
    h_sim_cmd_ok(&e->sim, "store " SUBMIT_PDU " 3", NULL, 0);
    wait_storage(e, 1, 10, 15000);
    H_PASS(e);
}

/* ---- 3. full twice: one storage_full per episode ---- */

static void test_storage_full_once_per_episode(void **state)
{
    static const char *const sim_args[] = { "--capacity", "2", NULL };
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}",
                                  .sim_args = sim_args };
    struct h_env *e = *state;
    h_env_up(e, &o);
    wait_storage(e, 0, 2, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "store " SUBMIT_PDU " 3", NULL, 0);    /* slot 1, for good */
    char msg[256], idx[32];

    for (int episode = 0; episode < 2; episode++) {
        /* Another text each time: the same one in the same slot within a
         * second would be the same message to the bridge. */
        char cmd[64], text[32];
        snprintf(text, sizeof text, "the last slot %d", episode);
        snprintf(cmd, sizeof cmd, "sms " FROM " %s", text);
        h_sim_cmd_ok(&e->sim, cmd, idx, sizeof idx);
        wait_error(e, "storage_full", msg, sizeof msg);
        if (!strstr(msg, "2 of 2"))
            h_fail("storage_full message '%s' does not say 2 of 2", msg);
        wait_storage(e, 2, 2, H_TIMEOUT_MS);
        expect_received(e, text, H_TIMEOUT_MS);
        expect_deleted(e, idx, H_TIMEOUT_MS);
        wait_storage(e, 1, 2, H_TIMEOUT_MS);            /* the episode is over */
        assert_int_equal(errors_pending(e), 0);
    }
    H_PASS(e);
}

/* ---- 4. full while the broker is down: published once it is back ---- */

static void test_storage_full_broker_down(void **state)
{
    static const char *const sim_args[] = { "--capacity", "2", NULL };
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}",
                                  .sim_args = sim_args, .persistent_client = true };
    struct h_env *e = *state;
    static const char *const cpms[] = { "rx AT+CPMS?", NULL };
    h_env_up(e, &o);
    wait_storage(e, 0, 2, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "store " SUBMIT_PDU " 3", NULL, 0);    /* slot 1, for good */

    h_broker_stop(&e->broker);
    size_t mark = h_sim_mark(&e->sim);
    char idx[32], msg[256];
    h_sim_cmd_ok(&e->sim, "sms " FROM " fills it", idx, sizeof idx);
    h_sim_wait_any(&e->sim, mark, cpms, NULL, 0, H_TIMEOUT_MS);    /* it read 2 of 2 */
    /* One more from the network: no room, the module says SMS FULL. The
     * same episode. */
    assert_int_equal(h_sim_cmd(&e->sim, "sms " FROM " lost", NULL, 0), -1);
    h_sim_wait_any(&e->sim, mark, cpms, NULL, 0, H_TIMEOUT_MS);
    assert_int_equal(h_sim_saw_since(&e->sim, mark, "rx AT+CMGD"), 0);

    h_broker_restart(&e->broker);
    h_mqtt_reconnect(&e->mqtt, H_TIMEOUT_MS);
    wait_error(e, "storage_full", msg, sizeof msg);
    expect_received(e, "fills it", H_READY_TIMEOUT_MS);
    expect_deleted(e, idx, H_READY_TIMEOUT_MS);
    wait_storage(e, 1, 2, H_TIMEOUT_MS);
    assert_int_equal(errors_pending(e), 0);
    H_PASS(e);
}

/* ---- 5. SMS FULL between AT+CMGR and its answer ---- */

/* The module says SMS FULL while it answers the read: the message must
 * still be published and deleted at once (the hour-long poll cannot
 * help), and the URC still counts as a full store. */
static void test_sms_full_inside_cmgr(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}" };
    struct h_env *e = *state;
    h_env_up(e, &o);
    h_sim_cmd_ok(&e->sim, "urc-in AT+CMGR SMS FULL", NULL, 0);
    char idx[32], msg[256];
    h_sim_cmd_ok(&e->sim, "sms " FROM " read through SMS FULL", idx, sizeof idx);

    expect_received(e, "read through SMS FULL", H_TIMEOUT_MS);
    expect_deleted(e, idx, H_TIMEOUT_MS);
    assert_int_equal(h_sim_count(&e->sim), 0);
    wait_error(e, "storage_full", msg, sizeof msg);
    if (!strstr(msg, "SMS FULL"))
        h_fail("storage_full message '%s' does not name SMS FULL", msg);
    wait_storage(e, 0, 10, H_TIMEOUT_MS);
    assert_int_equal(errors_pending(e), 0);
    H_PASS(e);
}

/* ---- 6. an undecodable stored PDU: B/error, then deleted ---- */

static void test_undecodable_deleted(void **state)
{
    const struct h_env_opts o = { .config = "\"modem\":{\"status_interval\":3600}" };
    struct h_env *e = *state;
    h_env_up(e, &o);
    char idx[32], t[128];
    h_sim_cmd_ok(&e->sim, "pdu " BAD_PDU, idx, sizeof idx);

    error_topic(e, t, sizeof t);
    cJSON *j = h_mqtt_wait_json(&e->mqtt, t, H_TIMEOUT_MS);
    h_json_str_eq(j, "code", "undecodable_sms");
    h_json_str_eq(j, "pdu", BAD_PDU);
    cJSON_Delete(j);
    expect_deleted(e, idx, H_TIMEOUT_MS);
    assert_int_equal(h_sim_count(&e->sim), 0);
    wait_storage(e, 0, 10, H_TIMEOUT_MS);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_storage_follows_sms),
        T(test_storage_follows_poll),
        T(test_storage_full_once_per_episode),
        T(test_storage_full_broker_down),
        T(test_sms_full_inside_cmgr),
        T(test_undecodable_deleted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
