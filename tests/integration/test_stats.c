/* Integration: B/stats and the Prometheus endpoint as a user reads them.
 * The counters follow what happened (an SMS sent, one that failed, one
 * received, the commands), B/stats/get answers at once, also while the
 * modem is unplugged, and GET /metrics serves the same figures. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ALLOWED "+4917012345678"

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        h_fail("no free port");
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET /metrics on 127.0.0.1:port; the whole response in out. */
static void get_metrics(int port, char *out, size_t size)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { h_ms(H_TIMEOUT_MS) / 1000, 0 };
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
        h_fail("cannot reach /metrics on port %d", port);
    while (got + 1 < size && (n = read(fd, out + got, size - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
}

static void test_stats_follow_events(void **state)
{
    struct h_env *e = *state;
    int port = free_port();
    char cfg[128], t_stats[160], body[8192], want[160];
    snprintf(cfg, sizeof cfg, "\"metrics\":{\"listen\":\"127.0.0.1:%d\"}", port);
    const struct h_env_opts o = { .config = cfg };
    h_env_up(e, &o);
    snprintf(t_stats, sizeof t_stats, "%s/stats", e->base);

    /* Published at connect, retained: nothing counted yet. */
    cJSON *s = h_retained_json(e, t_stats);
    h_json_int_eq(s, "commands", 0);
    h_json_int_eq(s, "sms_sent", 0);
    cJSON_Delete(s);

    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":1,\"to\":\"" ALLOWED "\",\"text\":\"one\"}", 1,
                   false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    h_sim_cmd_ok(&e->sim, "cms 331", NULL, 0);
    h_mqtt_publish(&e->mqtt, e->t_send, "{\"id\":2,\"to\":\"" ALLOWED "\",\"text\":\"two\"}", 1,
                   false);
    r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", false);
    cJSON_Delete(r);
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 hello", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json(&e->mqtt, e->t_received, H_TIMEOUT_MS));

    s = h_stats_get(e, 3);
    h_json_int_eq(s, "sms_sent", 1);
    h_json_int_eq(s, "sms_failed", 1);
    h_json_int_eq(s, "sms_received", 1);
    h_json_int_eq(s, "commands", 3);        /* two sms/send, this stats/get */
    h_json_int_eq(s, "queue_depth", 1);     /* this stats/get */
    h_json_int_eq(s, "mqtt_reconnects", 0);
    h_json_int_eq(s, "calls", 0);
    cJSON_Delete(s);
    /* ... and B/stats with it, retained. */
    for (;;) {      /* the one at connect may come first */
        s = h_mqtt_wait_json(&e->mqtt, t_stats, H_TIMEOUT_MS);
        long long n = h_json_int(s, "commands");
        cJSON_Delete(s);
        if (n == 3)
            break;
    }
    s = h_retained_json(e, t_stats);
    h_json_int_eq(s, "commands", 3);
    h_json_int_eq(s, "sms_failed", 1);
    cJSON_Delete(s);

    /* The same figures on /metrics. */
    get_metrics(port, body, sizeof body);
    if (!strstr(body, "HTTP/1.0 200 OK\r\n"))
        h_fail("/metrics: %s", body);
    snprintf(want, sizeof want, "modem2mqtt_sms_sent_total{modem=\"%s\"} 1\n", e->base);
    if (!strstr(body, want))
        h_fail("/metrics lacks '%s':\n%s", want, body);
    snprintf(want, sizeof want, "modem2mqtt_sms_received_total{modem=\"%s\"} 1\n", e->base);
    if (!strstr(body, want))
        h_fail("/metrics lacks '%s':\n%s", want, body);
    H_PASS(e);
}

/* B/stats/get needs no modem: answered while it is unplugged, which the
 * counters then show (a reopen). */
static void test_stats_without_modem(void **state)
{
    const struct h_env_opts o = { 0 };
    struct h_env *e = *state;
    h_env_up(e, &o);

    h_sim_cmd_ok(&e->sim, "unplug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, e->t_status, "state", "unavailable",
                                        H_TIMEOUT_MS));
    cJSON *s = h_stats_get(e, 7);
    h_json_int_eq(s, "commands", 1);
    cJSON_Delete(s);
    h_sim_cmd_ok(&e->sim, "replug", NULL, 0);
    h_wait_modem_ready(e);
    s = h_stats_get(e, 8);
    if (h_json_int(s, "modem_reopens") < 1)
        h_fail("modem_reopens %lld after an unplug", h_json_int(s, "modem_reopens"));
    cJSON_Delete(s);

    /* A payload it does not take: an error result, counted all the same. */
    char t[160], rt[168];
    snprintf(t, sizeof t, "%s/stats/get", e->base);
    snprintf(rt, sizeof rt, "%s/result", t);
    h_mqtt_publish(&e->mqtt, t, "{\"id\":9,\"reset\":true}", 1, false);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, rt, H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "invalid_request");
    cJSON_Delete(r);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stats_follow_events),
        T(test_stats_without_modem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
