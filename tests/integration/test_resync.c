/* Integration: the serial line never out of step with the module.
 *
 * Stale output at open (a killed process's answers, a RING), a bridge
 * killed while the module works on AT+CMGS and restarted on the same port,
 * a module that stops reading and answers everything late, a module that
 * drops what it is sent for a while: each time the bridge must come back
 * in step on its own, conclude nothing from answers that are not its own,
 * and never send a command while the module still executes another (the
 * simulator reports that as an `overlap` event). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TO "+4917012345678"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends an SMS and expects {"ok":true,...} with the id. */
#define sms_ok(e, id, ms) sms_ok_at(__FILE__, __LINE__, (e), (id), (ms))
static void sms_ok_at(const char *file, int line, struct h_env *e, int id, int timeout_ms)
{
    char *payload = h_strdupf("{\"id\":%d,\"to\":\"" TO "\",\"text\":\"in step %d\"}", id, id);
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    free(payload);
    for (;;) {
        cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, e->t_result, timeout_ms);
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(r, "id");
        if (cJSON_IsNumber(jid) && jid->valueint == id) {
            h_json_bool_eq_at(file, line, r, "ok", true);
            cJSON_Delete(r);
            return;
        }
        cJSON_Delete(r); /* an earlier command's */
    }
}

static void no_overlap_since(struct h_env *e, size_t from)
{
    if (h_sim_saw_since(&e->sim, from, "overlap ") > 0) {
        h_sim_dump(&e->sim, 60);
        h_fail("the bridge sent a command while the module executed another");
    }
}

/* Bytes a killed process left unread on the port: an OK, another
 * command's answer, a call that rang then. The old bridge took the OK for
 * its probe's and ended in sim_locked. */
static void test_stale_output_at_open(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {.no_bridge = true};
    h_env_up(e, &o);
    char ring_topic[160];
    snprintf(ring_topic, sizeof ring_topic, "%s/call/ring", e->base);
    /* "\r\nOK\r\n\r\n+CFUN: 1\r\n\r\nOK\r\n\r\nRING\r\n\r\n+CLIP: "+4930123456",145,,,,0\r\n" */
    h_sim_cmd_ok(&e->sim,
                 "raw 0d0a4f4b0d0a0d0a2b4346554e3a20310d0a0d0a4f4b0d0a0d0a52494e470d0a0d0a2b434c"
                 "49503a20222b34393330313233343536222c3134352c2c2c2c300d0a",
                 NULL, 0);
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e); /* waits for online and state ready */
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", H_TIMEOUT_MS);
    h_json_str_eq(st, "sim", "ready");
    cJSON_Delete(st);
    sms_ok(e, 1, H_TIMEOUT_MS);
    no_overlap_since(e, mark);
    /* The stale RING was no call. */
    if (h_mqtt_pending(&e->mqtt, ring_topic) > 0)
        h_fail("a stale RING was published as a call");
    H_PASS(e);
}

/* Killed after the PDU went out; the module answers +CMGS to nobody; the
 * new process finds that answer on the port. */
static void test_kill_during_cmgs_then_restart(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = {"--cmgs-ms", "1500", NULL};
    const struct h_env_opts o = {.sim_args = args};
    h_env_up(e, &o);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":7,\"to\":\"" TO "\",\"text\":\"killed\"}", 1,
                   false);
    h_sim_wait_line(&e->sim, "rx-data ", NULL, 0, H_TIMEOUT_MS);
    h_bridge_kill(&e->bridge);
    h_sim_wait_line(&e->sim, "sent ", NULL, 0, H_TIMEOUT_MS); /* answered to nobody */
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e);
    sms_ok(e, 8, H_TIMEOUT_MS);
    no_overlap_since(e, mark);
    H_PASS(e);
}

/* Killed and restarted at once: the new process meets the module still
 * working on the old AT+CMGS, then its late answer. */
static void test_kill_during_cmgs_restart_at_once(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = {"--cmgs-ms", "1500", NULL};
    const struct h_env_opts o = {.sim_args = args};
    h_env_up(e, &o);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":9,\"to\":\"" TO "\",\"text\":\"killed\"}", 1,
                   false);
    h_sim_wait_line(&e->sim, "rx-data ", NULL, 0, H_TIMEOUT_MS);
    h_bridge_kill(&e->bridge);
    h_env_start_bridge(e);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", H_TIMEOUT_MS);
    h_json_str_eq(st, "sim", "ready");
    cJSON_Delete(st);
    sms_ok(e, 10, H_TIMEOUT_MS);
    H_PASS(e);
}

/* The module stops reading for 8 s and then answers everything it was
 * sent meanwhile (the bridge's resync attempts among it). An SMS sent
 * during the hang waits and goes out after it, once. A raw AT command
 * goes into the hang first: had the SMS's own AT+CMGS been the first,
 * its prompt would time out and its answer be "timeout" (right, and not
 * what this test is about), which happened when no status poll was in
 * flight as the hang began. */
static void test_hang_then_late_answers(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"modem\":{\"status_interval\":5,\"command_timeout_ms\":1000},"
                  "\"allow_raw_at\":true",
    };
    h_env_up(e, &o);
    size_t sent_before = h_sim_saw(&e->sim, "sent ");
    /* From before the hang: the simulator's acknowledgement of it may come
     * late on a loaded machine, and the hang has begun by then. */
    int64_t t0 = now_ms();
    h_sim_cmd_ok(&e->sim, "hang 8000 late", NULL, 0);
    char at_send[128];
    snprintf(at_send, sizeof at_send, "%s/at/send", e->base);
    h_mqtt_publish(&e->mqtt, at_send, "{\"id\":1,\"command\":\"AT\"}", 1, false);
    sms_ok(e, 11, h_ms(40000));
    int64_t took = now_ms() - t0;
    fprintf(stderr, "hang of 8 s: the SMS sent during it answered after %lld ms\n",
            (long long)took);
    if (took < 8000)
        h_fail("the SMS was answered during the hang (%lld ms)", (long long)took);
    if (h_sim_saw(&e->sim, "sent ") != sent_before + 1)
        h_fail("%zu SMS went out, want 1", h_sim_saw(&e->sim, "sent ") - sent_before);
    /* In step afterwards: the next SMS goes out at once, nothing overlaps. */
    size_t mark = h_sim_mark(&e->sim);
    sms_ok(e, 12, H_TIMEOUT_MS);
    no_overlap_since(e, mark);
    H_PASS(e);
}

/* A late-answering hang longer than the resync's patience: the port is
 * reopened while the module still holds the old session's commands, and
 * answers them all afterwards. The old bridge took one of those answers
 * for its probe's and ended in sim_locked. */
static void test_long_hang_late_answers(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"modem\":{\"status_interval\":5,\"command_timeout_ms\":1000}",
    };
    h_env_up(e, &o);
    /* After the start-up listing (AT+CMGL's own 20 s timeout): a hang that
     * began under it would end before the bridge gave up, and it would be
     * in step again without ever reporting "unavailable". */
    h_sim_wait_line(&e->sim, "rx AT+CMGL", NULL, 0, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "hang 25000 late", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                        h_ms(40000)));
    int64_t t0 = now_ms();
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", h_ms(90000));
    h_json_str_eq(st, "sim", "ready");
    cJSON_Delete(st);
    fprintf(stderr, "late hang of 25 s: ready %lld ms after it was reported unavailable\n",
            (long long)(now_ms() - t0));
    size_t mark = h_sim_mark(&e->sim);
    sms_ok(e, 15, H_TIMEOUT_MS);
    no_overlap_since(e, mark);
    H_PASS(e);
}

/* A module that drops everything for 20 s: the resync gives up, the port
 * is reopened, and the bridge is ready again soon after the hang ends. */
static void test_hang_dropping_recovers(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = {
        .config = "\"modem\":{\"status_interval\":5,\"command_timeout_ms\":1000}",
    };
    h_env_up(e, &o);
    /* The start-up listing first: AT+CMGL has its own 20 s timeout, so a
     * hang that began under it would end just as it timed out, and the
     * bridge, in step at once, would never report "unavailable". (With
     * Nagle off, B/status "ready" reaches the test before that answer.) */
    h_sim_wait_line(&e->sim, "rx AT+CMGL", NULL, 0, H_TIMEOUT_MS);
    h_sim_cmd_ok(&e->sim, "hang 20000", NULL, 0);
    /* A command sent meanwhile is answered too (the module drops it). */
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":20,\"to\":\"" TO "\",\"text\":\"during\"}", 1,
                   false);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                       h_ms(40000));
    cJSON_Delete(st);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, h_ms(60000));
    h_json_int_eq(r, "id", 20);
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "rx ", NULL, 0, h_ms(40000)); /* hang over: it reads again */
    int64_t t0 = now_ms();
    st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", h_ms(90000));
    cJSON_Delete(st);
    fprintf(stderr, "hang of 20 s: ready %lld ms after the module answered again\n",
            (long long)(now_ms() - t0));
    sms_ok(e, 13, H_TIMEOUT_MS);
    H_PASS(e);
}

/* Unplugged for 20 s and plugged in again: ready within 10 s of the
 * replug. */
static void test_replug_within_10s(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    h_sim_cmd_ok(&e->sim, "unplug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                        H_TIMEOUT_MS));
    /* A command while it is away gets its answer at once. */
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":21,\"to\":\"" TO "\",\"text\":\"away\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_int_eq(r, "id", 21);
    h_json_bool_eq(r, "ok", false);
    cJSON_Delete(r);
    /* Unplugged for a while (the scenario, not a synchronisation): the
     * reopen attempts back off meanwhile. */
    int64_t until = now_ms() + 20000;
    while (now_ms() < until)
        h_msg_free(h_mqtt_take(&e->mqtt, e->t_status, (int)(until - now_ms())));
    char reply[64];
    size_t mark = h_sim_mark(&e->sim);
    int64_t t0 = now_ms();
    h_sim_cmd_ok(&e->sim, "replug", reply, sizeof reply);
    cJSON *st = h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "ready", h_ms(10000));
    cJSON_Delete(st);
    fprintf(stderr, "replug: ready after %lld ms\n", (long long)(now_ms() - t0));
    sms_ok(e, 14, H_TIMEOUT_MS);
    no_overlap_since(e, mark);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stale_output_at_open),
        T(test_kill_during_cmgs_then_restart),
        T(test_kill_during_cmgs_restart_at_once),
        T(test_hang_then_late_answers),
        T(test_long_hang_late_answers),
        T(test_hang_dropping_recovers),
        T(test_replug_within_10s),
    };
    return cmocka_run_group_tests_name("integration_resync", tests, NULL, NULL);
}
