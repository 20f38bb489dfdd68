/* Integration: delivery reports (B/sms/report) through mosquitto, the
 * bridge and the simulator: "report": true on B/sms/send, the report by
 * +CDS (AT+CNMI ds=1) and by +CDSI (ds=2, the fallback), one event per
 * part with the command's id (also a report that comes before the next
 * part went out, and the parts sent before a later one failed), reports
 * the bridge cannot place, stored reports never left on the SIM, and the
 * reference map across a restart. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#include "modem/pdu.h"

#define TO "+4917012345678"

/* Takes the next `sent <mr> <pdu>` line; returns mr, checks TP-SRR. */
#define wait_sent_srr(e) wait_sent_srr_at(__FILE__, __LINE__, (e))
static int wait_sent_srr_at(const char *file, int line, struct h_env *e)
{
    char l[1024], hex[900];
    struct pdu_msg m;
    int mr;

    h_sim_wait_line_at(file, line, &e->sim, "sent ", l, sizeof l, H_TIMEOUT_MS);
    if (sscanf(l, "sent %d %899s", &mr, hex) != 2 || pdu_decode(hex, strlen(hex), 0, &m) != 0)
        h_fail_at(file, line, "unexpected simulator line '%s'", l);
    if (!m.status_report)
        h_fail_at(file, line, "the SMS-SUBMIT does not ask for a report (TP-SRR): %s", hex);
    return mr;
}

/* The next B/sms/report: QoS 1, not retained. */
#define wait_report(e) wait_report_at(__FILE__, __LINE__, (e))
static cJSON *wait_report_at(const char *file, int line, struct h_env *e)
{
    char t[128];
    snprintf(t, sizeof t, "%s/sms/report", e->base);
    cJSON *r = h_mqtt_wait_json_at(file, line, &e->mqtt, t, H_TIMEOUT_MS);
    char *s = cJSON_PrintUnformatted(r);

    fprintf(stderr, "B/sms/report: %s\n", s);
    free(s);
    if (e->mqtt.last_retained || e->mqtt.last_qos != 1)
        h_fail_at(file, line, "the report came retained or with QoS %d", e->mqtt.last_qos);
    return r;
}

/* "id" is exactly want_json (type included); "null" also means part and
 * parts null. */
#define assert_id(r, want_json) assert_id_at(__FILE__, __LINE__, (r), (want_json))
static void assert_id_at(const char *file, int line, const cJSON *r, const char *want_json)
{
    h_json_eq_at(file, line, r, "id", want_json);
    if (strcmp(want_json, "null") == 0 &&
        (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "part")) ||
         !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "parts"))))
        h_fail_at(file, line, "a report of an unknown SMS: part/parts not null");
}

static void assert_report(const cJSON *r, int mr, const char *status, int st)
{
    h_json_int_eq(r, "reference", mr);
    h_json_str_eq(r, "to", TO);
    h_json_str_eq(r, "status", status);
    h_json_int_eq(r, "st", st);
    /* The simulator's SC takes the SMS 2 s before it delivers it, +01:00. */
    if (strlen(h_json_str(r, "time")) != 25 || strlen(h_json_str(r, "submitted")) != 25 ||
        strcmp(h_json_str(r, "time") + 19, "+01:00") != 0)
        h_fail("time/submitted are not ISO 8601 with the offset");
    if (strcmp(h_json_str(r, "submitted"), h_json_str(r, "time")) >= 0)
        h_fail("submitted is not before the discharge time");
}

static void send_and_result(struct h_env *e, const char *payload, int parts)
{
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    h_json_int_eq(r, "parts", parts);
    cJSON_Delete(r);
}

/* An SMS-STATUS-REPORT for (mr, TO) written by the test as the module
 * would (+CDS), status st: a report for an SMS the simulator did not
 * see, or one that comes after a restart. */
static void raw_cds(struct h_env *e, int mr, int st)
{
    /* 00 SMSC | 06 MTI status report, MMS | MR | 0D 91 +4917012345678 |
     * SCTS 2026-11-21 06:00:00 +01:00 | DT 06:00:05 | ST */
    char pdu[128], line[256], hex[520];
    int n = snprintf(pdu, sizeof pdu, "0006%02X0D91947110325476F8" "62111260000040"
                     "62111260005040" "%02X", mr, st);
    snprintf(line, sizeof line, "\r\n+CDS: %d\r\n%s\r\n", (n - 2) / 2, pdu);
    for (size_t i = 0; line[i]; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)line[i]);
    char *cmd = h_strdupf("raw %s", hex);
    h_sim_cmd_ok(&e->sim, cmd, NULL, 0);
    free(cmd);
}

/* What the bridge logs when the module takes no status reports at all. */
#define NO_REPORTS_LOG "the module takes no status reports"

/* ---- delivered, by +CDS, with the command's id ---- */

static void test_report_delivered(void **state)
{
    struct h_env *e = *state;
    h_env_up(e, NULL);
    /* Reports are always on: ds=1 first; and AT+CSMS=0, so that the
     * module acknowledges them itself (no AT+CNMA). */
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CSMS=0"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CNMI=2,1,0,1,0"), 1);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CNMI="), 1);

    h_mqtt_publish(&e->mqtt, e->t_send,
                   "{\"id\":\"r1\",\"to\":\"" TO "\",\"text\":\"hi\",\"report\":true}", 1, false);
    int mr = wait_sent_srr(e);
    cJSON *r = wait_report(e);
    assert_report(r, mr, "delivered", 0);
    assert_id(r, "\"r1\"");
    h_json_int_eq(r, "part", 1);
    h_json_int_eq(r, "parts", 1);
    cJSON_Delete(r);
    /* Counted in B/stats. */
    r = h_stats_get(e, 99);
    h_json_int_eq(r, "reports", 1);
    h_json_int_eq(r, "sms_sent", 1);
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- failed, with a numeric id; sms.delivery_reports without "report" ---- */

static void test_report_failed(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .config = "\"sms\":{\"delivery_reports\":true}" };
    h_env_up(e, &o);
    h_sim_cmd_ok(&e->sim, "cds failed", NULL, 0);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":7,\"to\":\"" TO "\",\"text\":\"hi\"}", 1,
                   false);
    int mr = wait_sent_srr(e);
    cJSON *r = wait_report(e);
    assert_report(r, mr, "failed", 64);
    assert_id(r, "7");
    cJSON_Delete(r);
    H_PASS(e);
}

/* A 400-character SMS (3 parts) with "report": true and this id. */
static void send_three_parts(struct h_env *e, const char *id)
{
    char text[401];

    memset(text, 'x', 400);
    text[400] = '\0';
    char *payload =
        h_strdupf("{\"id\":%s,\"to\":\"" TO "\",\"text\":\"%s\",\"report\":true}", id, text);
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    free(payload);
}

/* ---- a multipart SMS: one report per part ---- */

static void test_report_multipart(void **state)
{
    struct h_env *e = *state;
    int mrs[3];
    bool seen[3] = { false, false, false };

    h_env_up(e, NULL);
    send_three_parts(e, "3");
    for (int i = 0; i < 3; i++)
        mrs[i] = wait_sent_srr(e);
    for (int k = 0; k < 3; k++) {
        cJSON *r = wait_report(e);
        int part = (int)h_json_int(r, "part");
        if (part < 1 || part > 3 || seen[part - 1])
            h_fail("part %d reported twice or out of range", part);
        seen[part - 1] = true;
        assert_report(r, mrs[part - 1], "delivered", 0);
        assert_id(r, "3");
        h_json_int_eq(r, "parts", 3);
        cJSON_Delete(r);
    }
    H_PASS(e);
}

/* ---- each part's report before the next part's +CMGS ---- */

/* On a real network part 1's report can come while part 2 is still being
 * submitted (the module takes seconds per part): it must already name the
 * command. The simulator answers each AT+CMGS after 2 s and reports 50 ms
 * after its +CMGS, so report k comes before part k+1 went out. */
static void test_report_before_next_part(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--cmgs-ms", "2000", "--report-ms", "50", NULL };
    const struct h_env_opts o = { .sim_args = args };

    h_env_up(e, &o);
    send_three_parts(e, "\"early\"");
    for (int k = 1; k <= 3; k++) {
        int mr = wait_sent_srr(e);
        cJSON *r = wait_report(e);
        /* The scenario holds: part k+1 has not gone out yet. */
        assert_int_equal(h_sim_saw(&e->sim, "sent "), k);
        assert_report(r, mr, "delivered", 0);
        assert_id(r, "\"early\"");
        h_json_int_eq(r, "part", k);
        h_json_int_eq(r, "parts", 3);
        cJSON_Delete(r);
    }
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- part 2 of 3 refused: part 1 went out, its report names the command ---- */

static void test_report_part_after_failure(void **state)
{
    struct h_env *e = *state;
    /* Time to make the next AT+CMGS fail once part 1 is on its way. */
    static const char *const args[] = { "--cmgs-ms", "1500", NULL };
    const struct h_env_opts o = { .sim_args = args };

    h_env_up(e, &o);
    send_three_parts(e, "5");
    h_sim_wait_line(&e->sim, "rx-data ", NULL, 0, H_TIMEOUT_MS);  /* part 1 */
    h_sim_cmd_ok(&e->sim, "cms 500", NULL, 0);
    int mr = wait_sent_srr(e);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", false);
    h_json_int_eq(h_json_obj(r, "error"), "cms", 500);
    h_json_str_eq(h_json_obj(r, "error"), "message", "unknown error (part 2 of 3)");
    cJSON_Delete(r);
    r = wait_report(e);
    assert_report(r, mr, "delivered", 0);
    assert_id(r, "5");
    h_json_int_eq(r, "part", 1);
    h_json_int_eq(r, "parts", 3);
    cJSON_Delete(r);
    assert_int_equal(h_sim_saw(&e->sim, "sent "), 1);
    H_PASS(e);
}

/* ---- firmware that refuses ds=1: ds=2, +CDSI, read, deleted after PUBACK ---- */

static void test_report_ds2_fallback(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--reject", "AT+CNMI=2,1,0,1", NULL };
    const struct h_env_opts o = { .sim_args = args };
    char l[256];

    h_env_up(e, &o);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CNMI=2,1,0,2,0"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, NO_REPORTS_LOG), 0);
    h_mqtt_publish(&e->mqtt, e->t_send,
                   "{\"id\":\"s\",\"to\":\"" TO "\",\"text\":\"hi\",\"report\":true}", 1, false);
    int mr = wait_sent_srr(e);
    cJSON *r = wait_report(e);
    assert_report(r, mr, "delivered", 0);
    assert_id(r, "\"s\"");
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "deleted ", l, sizeof l, H_TIMEOUT_MS);
    assert_string_equal(l, "deleted 1");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CMGR=1"), 1);
    assert_int_equal(h_sim_count(&e->sim), 0);
    H_PASS(e);
}

/* ---- firmware that refuses ds=1 and ds=2: no reports, said once in the log ---- */

static void test_report_none_without_ds(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = { "--reject", "AT+CNMI=2,1,0,1",
                                        "--reject", "AT+CNMI=2,1,0,2", NULL };
    const struct h_env_opts o = { .sim_args = args };

    h_env_up(e, &o);
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CNMI=2,1,0,0,0"), 1);
    assert_int_equal(h_bridge_log_count(&e->bridge, NO_REPORTS_LOG), 1);
    send_and_result(e, "{\"id\":1,\"to\":\"" TO "\",\"text\":\"x\",\"report\":true}", 1);
    H_PASS(e);
}

/* ---- reports the bridge cannot place: id null, no part ---- */

static void test_report_unknown(void **state)
{
    struct h_env *e = *state;
    const struct h_env_opts o = { .no_bridge = true };
    char l[256];

    h_env_up(e, &o);
    /* Stored while the bridge was down (another program sent that SMS). */
    h_sim_cmd_ok(&e->sim,
                 "store 0006FF0D91947110325476F862114160000040621112600000404600", NULL, 0);
    h_env_start_bridge(e);
    cJSON *r = wait_report(e);
    h_json_int_eq(r, "reference", 255);
    h_json_str_eq(r, "status", "failed");
    h_json_int_eq(r, "st", 0x46);
    h_json_str_eq(r, "time", "2026-11-21T06:00:00+01:00");
    h_json_str_eq(r, "submitted", "2026-11-14T06:00:00+01:00");
    assert_id(r, "null");
    cJSON_Delete(r);
    h_sim_wait_line(&e->sim, "deleted ", l, sizeof l, H_TIMEOUT_MS);
    assert_int_equal(h_sim_count(&e->sim), 0);
    /* And one by +CDS. */
    raw_cds(e, 200, 0x21);
    r = wait_report(e);
    h_json_int_eq(r, "reference", 200);
    h_json_str_eq(r, "status", "pending");
    assert_id(r, "null");
    cJSON_Delete(r);
    H_PASS(e);
}

/* ---- the reference map survives a restart ---- */

static void test_report_after_restart(void **state)
{
    struct h_env *e = *state;
    /* The simulator's own report would come too late to matter. */
    static const char *const args[] = { "--report-ms", "600000", NULL };
    const struct h_env_opts o = { .sim_args = args };

    h_env_up(e, &o);
    send_and_result(e, "{\"id\":\"before\",\"to\":\"" TO "\",\"text\":\"x\",\"report\":true}", 1);
    int mr = wait_sent_srr(e);
    h_bridge_stop(&e->bridge);
    size_t mark = h_sim_mark(&e->sim);
    h_env_start_bridge(e);
    /* B/availability and B/status are retained: the bridge is up once it
     * listed the SIM, which it does when the modem is ready. */
    static const char *const listing[] = { "rx AT+CMGL", NULL };
    h_sim_wait_any(&e->sim, mark, listing, NULL, 0, H_READY_TIMEOUT_MS);
    raw_cds(e, mr, 0x00);
    cJSON *r = wait_report(e);
    h_json_int_eq(r, "reference", mr);
    h_json_str_eq(r, "status", "delivered");
    assert_id(r, "\"before\"");
    h_json_int_eq(r, "part", 1);
    cJSON_Delete(r);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_report_delivered),
        T(test_report_failed),
        T(test_report_multipart),
        T(test_report_before_next_part),
        T(test_report_part_after_failure),
        T(test_report_ds2_fallback),
        T(test_report_none_without_ds),
        T(test_report_unknown),
        T(test_report_after_restart),
    };
    return cmocka_run_group_tests_name("integration_report", tests, NULL, NULL);
}
