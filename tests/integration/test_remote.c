/* Integration: a remote broker through the module's own MQTT stack
 * ("remote", B/remote/publish, subscribe,
 * unsubscribe, B/remote/message, B/status "remote").
 *
 * Two real mosquittos: the harness's (the local broker) and a second one,
 * "remote", which the simulator's AT+CMQTT* client connects to through
 * paho. A test client on the remote broker plays the cloud side. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/json.h"

struct rt {
    struct h_env e;               /* first: h_env_down works on it */
    struct h_broker remote;
    struct h_mqtt rc;             /* the cloud side, on the remote broker */
    bool rc_up;
    struct h_mqtt sc;             /* B/status watcher: gets the retained one first */
    bool sc_up;
    char *cfg;                    /* the bridge's config members (e.opts borrows it) */
    char t_pub[128], t_pub_result[128], t_sub[128], t_sub_result[128];
    char t_unsub[128], t_unsub_result[128], t_message[128];
};

static int rt_setup(void **state)
{
    struct rt *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->e.sim.in_fd = r->e.sim.out_fd = -1;
    *state = r;
    return 0;
}

static int rt_teardown(void **state)
{
    struct rt *r = *state;
    int rc = 0;
    if (r) {
        /* The bridge first: its clean CMQTT shutdown talks to the remote. */
        rc = h_env_down(&r->e);
        if (r->rc_up)
            h_mqtt_disconnect(&r->rc);
        if (r->sc_up)
            h_mqtt_disconnect(&r->sc);
        h_broker_cleanup(&r->remote, !r->e.passed);
        free(r->cfg);
        free(r);
    }
    *state = NULL;
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The remote broker must already run (or have run: its port). remote_extra:
 * more members of "remote" (e.g. subscribe, forward), may be "". */
#define rt_up(r, remote_extra, start_bridge) rt_up_at(__FILE__, __LINE__, (r), (remote_extra), (start_bridge))
static void rt_up_at(const char *file, int line, struct rt *r, const char *remote_extra,
                     bool start_bridge)
{
    char *cfg = h_strdupf("\"remote\":{\"server\":\"tcp://127.0.0.1:%d\",\"client_id\":\"m2m-it\","
                          "\"keepalive\":60%s%s}",
                          r->remote.port, *remote_extra ? "," : "", remote_extra);
    struct h_env_opts o = { .config = cfg, .no_bridge = true };
    h_env_up_at(file, line, &r->e, &o);
    snprintf(r->t_pub, sizeof r->t_pub, "%s/remote/publish", r->e.base);
    snprintf(r->t_pub_result, sizeof r->t_pub_result, "%s/remote/publish/result", r->e.base);
    snprintf(r->t_sub, sizeof r->t_sub, "%s/remote/subscribe", r->e.base);
    snprintf(r->t_sub_result, sizeof r->t_sub_result, "%s/remote/subscribe/result", r->e.base);
    snprintf(r->t_unsub, sizeof r->t_unsub, "%s/remote/unsubscribe", r->e.base);
    snprintf(r->t_unsub_result, sizeof r->t_unsub_result, "%s/remote/unsubscribe/result",
             r->e.base);
    snprintf(r->t_message, sizeof r->t_message, "%s/remote/message", r->e.base);
    r->cfg = cfg;   /* e->opts borrows it for the bridge's restarts */
    if (start_bridge)
        h_env_start_bridge_at(file, line, &r->e);
}

#define wait_remote(r, state) wait_remote_at(__FILE__, __LINE__, (r), (state))
static cJSON *wait_remote_at(const char *file, int line, struct rt *r, const char *state)
{
    /* Its own client: h_wait_ready may have taken the status we want from
     * e.mqtt; a new subscription starts with the retained one. */
    if (!r->sc_up) {
        h_mqtt_connect_at(file, line, &r->sc, r->e.broker.uri, "status-watch", true, 4);
        r->sc_up = true;
        h_mqtt_subscribe_at(file, line, &r->sc, r->e.t_status);
    }
    return h_mqtt_wait_json_where_at(file, line, &r->sc, r->e.t_status, "remote", state, 30000);
}

static void rc_connect(struct rt *r, bool clean, const char *filter)
{
    h_mqtt_connect(&r->rc, r->remote.uri, "cloud-side", clean);
    r->rc_up = true;
    if (filter)
        h_mqtt_subscribe(&r->rc, filter);
}

/* Takes the next result on topic and checks "ok". */
#define expect_ok(r, topic) expect_ok_at(__FILE__, __LINE__, (r), (topic))
static void expect_ok_at(const char *file, int line, struct rt *r, const char *topic)
{
    cJSON *res = h_mqtt_wait_json_at(file, line, &r->e.mqtt, topic, 30000);
    h_json_bool_eq_at(file, line, res, "ok", true);
    cJSON_Delete(res);
}

#define expect_error(r, topic, code) expect_error_at(__FILE__, __LINE__, (r), (topic), (code))
static void expect_error_at(const char *file, int line, struct rt *r, const char *topic,
                            const char *code)
{
    cJSON *res = h_mqtt_wait_json_at(file, line, &r->e.mqtt, topic, 30000);
    h_json_bool_eq_at(file, line, res, "ok", false);
    h_json_str_eq_at(file, line, h_json_get_at(file, line, res, "error", cJSON_Object), "code",
                     code);
    cJSON_Delete(res);
}

/* ---- tests ---- */

/* Local command -> remote broker, remote message -> B/remote/message and
 * the mapped local topic. */
static void test_round_trip(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"cloud/in/+\",\"qos\":1,\"local\":\"home/in\"}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, true, "dev/#");
    h_mqtt_subscribe(&r->e.mqtt, "home/in");

    h_mqtt_publish(&r->e.mqtt, r->t_pub,
                   "{\"id\":7,\"topic\":\"dev/x\",\"payload\":\"hello cloud\",\"qos\":1}", 1, false);
    cJSON *res = h_mqtt_wait_json(&r->e.mqtt, r->t_pub_result, 30000);
    h_json_bool_eq(res, "ok", true);
    h_json_int_eq(res, "id", 7);
    cJSON_Delete(res);
    h_mqtt_wait_payload(&r->rc, "dev/x", "hello cloud", 10000);

    h_mqtt_publish(&r->rc, "cloud/in/a", "ping \xc3\xa4", 1, false);
    cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
    h_json_str_eq(m, "topic", "cloud/in/a");
    h_json_str_eq(m, "payload", "ping \xc3\xa4");
    h_json_str_eq(m, "encoding", "utf8");
    h_json_int_eq(m, "qos", 1);
    cJSON_Delete(m);
    h_mqtt_wait_payload(&r->e.mqtt, "home/in", "ping \xc3\xa4", 10000);

    /* SIGTERM: the session is closed cleanly before the bridge exits 0. */
    h_bridge_stop(&r->e.bridge);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTDISC=0,60", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTREL=0", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTSTOP", NULL, 0, 5000);
    H_PASS(&r->e);
}

/* 4 KiB with CR, LF, NUL and Ctrl-Z both ways, byte exact (base64). The
 * receive side comes in three +CMQTTRXPAYLOAD chunks (1500 bytes each),
 * then in 997-byte chunks. */
static void test_binary_4k(void **state)
{
    struct rt *r = *state;
    uint8_t bin[4096];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 7 + 3);
    memcpy(bin, "\r\n\0\x1a\x1b" "OK\r\n", 9);
    memcpy(bin + 1499, "\r\n", 2);     /* across the first chunk border */
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"bin/in\",\"qos\":0}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, true, "bin/out");

    char *b64 = json_base64_encode(bin, sizeof bin);
    char *cmd = h_strdupf("{\"topic\":\"bin/out\",\"payload\":\"%s\",\"encoding\":\"base64\",\"qos\":1}",
                          b64);
    h_mqtt_publish(&r->e.mqtt, r->t_pub, cmd, 1, false);
    expect_ok(r, r->t_pub_result);
    struct h_msg *got = h_mqtt_take(&r->rc, "bin/out", h_ms(10000));
    if (!got)
        h_fail("nothing on bin/out");
    assert_int_equal(got->len, sizeof bin);
    assert_memory_equal(got->payload, bin, sizeof bin);
    h_msg_free(got);

    for (int round = 0; round < 2; round++) {
        if (round == 1)
            h_sim_cmd_ok(&r->e.sim, "cmqtt_chunk 997", NULL, 0);
        h_mqtt_publish_len(&r->rc, "bin/in", bin, sizeof bin, 1, false);
        cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
        h_json_str_eq(m, "topic", "bin/in");
        h_json_str_eq(m, "encoding", "base64");
        h_json_str_eq(m, "payload", b64);
        cJSON_Delete(m);
    }
    free(cmd);
    free(b64);
    H_PASS(&r->e);
}

/* remote.forward with wildcards: matching local messages go out raw,
 * others do not; the forward topics are not commands (no result). */
static void test_forward_rules(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r,
          "\"forward\":[{\"local\":\"sensors/+/temp\",\"remote\":\"devices/x/temp\",\"qos\":1},"
          "{\"local\":\"meters/#\",\"remote\":\"devices/x/meters\",\"qos\":1}]",
          true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, true, "devices/#");

    h_mqtt_publish(&r->e.mqtt, "sensors/kitchen/temp", "21.5", 1, false);
    h_mqtt_wait_payload(&r->rc, "devices/x/temp", "21.5", 10000);
    h_mqtt_publish(&r->e.mqtt, "sensors/kitchen/humidity", "40", 1, false);
    h_mqtt_publish(&r->e.mqtt, "meters/a/b/c", "m1", 1, false);
    /* The marker went through the same single job queue after the
     * humidity message, so had that been forwarded, it would be here. */
    h_mqtt_wait_payload(&r->rc, "devices/x/meters", "m1", 10000);
    h_mqtt_publish(&r->e.mqtt, "meters", "m0", 1, false);
    h_mqtt_wait_payload(&r->rc, "devices/x/meters", "m0", 10000);
    assert_int_equal(h_mqtt_pending(&r->rc, "devices/x/temp"), 0);
    H_PASS(&r->e);
}

/* B/remote/subscribe and B/remote/unsubscribe at run time. */
static void test_runtime_subscribe(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"marker\",\"qos\":1}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, true, NULL);

    h_mqtt_publish(&r->e.mqtt, r->t_sub, "{\"topic\":\"rt/#\",\"qos\":1,\"id\":\"s\"}", 1, false);
    expect_ok(r, r->t_sub_result);
    h_mqtt_publish(&r->rc, "rt/a/b", "one", 1, false);
    cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
    h_json_str_eq(m, "topic", "rt/a/b");
    h_json_str_eq(m, "payload", "one");
    cJSON_Delete(m);

    h_mqtt_publish(&r->e.mqtt, r->t_unsub, "{\"topic\":\"rt/#\"}", 1, false);
    expect_ok(r, r->t_unsub_result);
    h_mqtt_publish(&r->rc, "rt/a/b", "two", 1, false);
    h_mqtt_publish(&r->rc, "marker", "m", 1, false);
    for (;;) {
        cJSON *x = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
        const char *p = h_json_str(x, "payload");
        if (strcmp(p, "two") == 0)
            h_fail("a message on an unsubscribed topic was delivered");
        bool done = strcmp(p, "m") == 0;
        cJSON_Delete(x);
        if (done)
            break;
    }
    /* Bad input: a JSON error naming the field, nothing sent. */
    h_mqtt_publish(&r->e.mqtt, r->t_sub, "{\"topic\":\"a/#/b\"}", 1, false);
    expect_error(r, r->t_sub_result, "invalid_request");
    H_PASS(&r->e);
}

/* The remote broker dies and comes back: reconnect, subscriptions back
 * (config and run time), a QoS 1 publish made meanwhile is delivered, a
 * QoS 0 one is refused. */
static void test_remote_restart(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"cfg/in\",\"qos\":1}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, false, "out/#");   /* persistent: the broker keeps its queue */
    h_mqtt_publish(&r->e.mqtt, r->t_sub, "{\"topic\":\"run/in\",\"qos\":1}", 1, false);
    expect_ok(r, r->t_sub_result);

    h_broker_stop(&r->remote);
    cJSON *st = wait_remote(r, "disconnected");
    h_json_str(st, "remote_error");
    cJSON_Delete(st);
    h_mqtt_publish(&r->e.mqtt, r->t_pub, "{\"topic\":\"out/q0\",\"payload\":\"zero\"}", 1, false);
    expect_error(r, r->t_pub_result, "unavailable");
    h_mqtt_publish(&r->e.mqtt, r->t_pub,
                   "{\"topic\":\"out/q1\",\"payload\":\"queued\",\"qos\":1,\"id\":\"q\"}", 1,
                   false);

    h_broker_restart(&r->remote);
    cJSON_Delete(wait_remote(r, "connected"));
    cJSON *res = h_mqtt_wait_json(&r->e.mqtt, r->t_pub_result, 30000);
    h_json_bool_eq(res, "ok", true);
    h_json_str_eq(res, "id", "q");
    cJSON_Delete(res);
    h_mqtt_reconnect(&r->rc, h_ms(15000));
    h_mqtt_wait_payload(&r->rc, "out/q1", "queued", 10000);

    h_mqtt_publish(&r->rc, "cfg/in", "c", 1, false);
    cJSON_Delete(h_mqtt_wait_json_where(&r->e.mqtt, r->t_message, "topic", "cfg/in", 10000));
    h_mqtt_publish(&r->rc, "run/in", "r", 1, false);
    cJSON_Delete(h_mqtt_wait_json_where(&r->e.mqtt, r->t_message, "topic", "run/in", 10000));
    H_PASS(&r->e);
}

/* A refused password: a readable reason in B/status, and retries that
 * back off instead of hammering the broker. */
static void test_wrong_password(void **state)
{
    struct rt *r = *state;
    char conf[320], pw[320];
    h_broker_start(&r->remote);
    h_broker_stop(&r->remote);
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", r->remote.dir);
    snprintf(pw, sizeof pw, "%s/passwd", r->remote.dir);
    char *cmd = h_strdupf(
             "mosquitto_passwd -c -b '%s' cloud right >/dev/null 2>&1 && chmod 600 '%s' && "
             "sed -i 's|^allow_anonymous true$|allow_anonymous false\\npassword_file %s|' '%s'",
             pw, pw, pw, conf);
    if (system(cmd) != 0)
        h_fail("cannot set up the password file: %s", cmd);
    free(cmd);
    h_broker_restart(&r->remote);
    rt_up(r, "\"username\":\"cloud\",\"password\":\"Wr0ngPa55\"", true);

    cJSON *st = wait_remote(r, "disconnected");
    const char *why = h_json_str(st, "remote_error");
    if (!strstr(why, "bad user name or password") && !strstr(why, "not authorized"))
        h_fail("remote_error '%s' does not say why", why);
    cJSON_Delete(st);
    /* Three attempts take at least 1 + 2 s of backoff. */
    size_t from = h_sim_mark(&r->e.sim);
    const char *const pre[] = { "rx AT+CMQTTCONNECT", NULL };
    h_sim_wait_any(&r->e.sim, from, pre, NULL, 0, 15000);
    int64_t t0 = mono_ms();
    h_sim_wait_any(&r->e.sim, from, pre, NULL, 0, 15000);
    h_sim_wait_any(&r->e.sim, from, pre, NULL, 0, 15000);
    int64_t dt = mono_ms() - t0;
    if (dt < 2500)
        h_fail("two reconnects within %lld ms: no backoff", (long long)dt);
    /* The password never reaches the bridge's log. */
    char grep[400];
    snprintf(grep, sizeof grep, "grep -q 'Wr0ngPa55' '%s'", r->e.bridge.log_path);
    if (system(grep) == 0)
        h_fail("the remote password appears in the bridge log");
    H_PASS(&r->e);
}

/* Over 10240 bytes: too_long, and no AT+CMQTTPAYLOAD reaches the module. */
static void test_payload_too_long(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "", true);
    cJSON_Delete(wait_remote(r, "connected"));
    char *big = malloc(10242);
    memset(big, 'x', 10241);
    big[10241] = '\0';
    char *cmd = h_strdupf("{\"topic\":\"t\",\"payload\":\"%s\",\"qos\":1}", big);
    h_mqtt_publish(&r->e.mqtt, r->t_pub, cmd, 1, false);
    expect_error(r, r->t_pub_result, "too_long");
    /* A topic with a wildcard, and one with a CR: invalid_request. */
    h_mqtt_publish(&r->e.mqtt, r->t_pub, "{\"topic\":\"a/+\",\"payload\":\"p\"}", 1, false);
    expect_error(r, r->t_pub_result, "invalid_request");
    h_mqtt_publish(&r->e.mqtt, r->t_pub, "{\"topic\":\"a\\r\\nAT\",\"payload\":\"p\"}", 1, false);
    expect_error(r, r->t_pub_result, "invalid_request");
    assert_int_equal(h_sim_saw(&r->e.sim, "rx AT+CMQTTPAYLOAD"), 0);
    assert_int_equal(h_sim_saw(&r->e.sim, "rx AT+CMQTTTOPIC"), 0);
    /* 10240 exactly goes through. */
    big[10240] = '\0';
    free(cmd);
    cmd = h_strdupf("{\"topic\":\"t\",\"payload\":\"%s\",\"qos\":1}", big);
    h_mqtt_publish(&r->e.mqtt, r->t_pub, cmd, 1, false);
    expect_ok(r, r->t_pub_result);
    assert_int_equal(h_sim_saw(&r->e.sim, "rx AT+CMQTTPAYLOAD=0,10240"), 1);
    free(cmd);
    free(big);
    H_PASS(&r->e);
}

/* Without "remote": B/status says disabled, commands answer unavailable,
 * the module's MQTT stack is never touched. */
static void test_disabled(void **state)
{
    struct rt *r = *state;
    struct h_env_opts o = { 0 };
    h_env_up(&r->e, &o);
    snprintf(r->t_pub, sizeof r->t_pub, "%s/remote/publish", r->e.base);
    snprintf(r->t_pub_result, sizeof r->t_pub_result, "%s/remote/publish/result", r->e.base);
    cJSON_Delete(wait_remote(r, "disabled"));
    h_mqtt_publish(&r->e.mqtt, r->t_pub, "{\"topic\":\"t\",\"payload\":\"p\",\"qos\":1}", 1, false);
    expect_error(r, r->t_pub_result, "unavailable");
    assert_int_equal(h_sim_saw(&r->e.sim, "rx AT+CMQTT"), 0);
    H_PASS(&r->e);
}

/* Makes the remote broker's listener TLS with a fresh CA (ca.pem) and a
 * server certificate for 127.0.0.1; also a second, unrelated CA
 * (other-ca.pem). require_client: the CA also signs a client certificate
 * (client.pem, client.key) and the listener demands one. */
static void remote_tls(struct rt *r, bool require_client)
{
    const char *d = r->remote.dir;
    h_broker_start(&r->remote);
    h_broker_stop(&r->remote);
    char *cmd = h_strdupf(
        "( cd '%s' && printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=m2m-test-ca && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout other.key -out other-ca.pem -days 2 -subj /CN=m2m-other-ca && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out srv.pem -days 2 -extfile ext.cnf && "
        "printf 'cafile %s/ca.pem\\ncertfile %s/srv.pem\\nkeyfile %s/srv.key\\n' >> mosquitto.conf"
        "%s ) >/dev/null 2>&1",
        d, d, d, d,
        require_client
            ? " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout client.key -out client.csr -subj /CN=m2m-client && "
              "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
              "-out client.pem -days 2 && "
              "printf 'require_certificate true\\n' >> mosquitto.conf"
            : "");
    if (system(cmd) != 0)
        h_fail("cannot make the TLS certificates: %s", cmd);
    free(cmd);
    h_broker_restart(&r->remote);
}

/* remote.tls: the CA goes to the module (AT+CCERTDOWN), the session runs
 * over TLS to a mosquitto TLS listener, a message makes the round trip. */
static void test_tls_round_trip(void **state)
{
    struct rt *r = *state;
    remote_tls(r, false);
    char *extra = h_strdupf("\"tls\":true,\"ca_file\":\"%s/ca.pem\","
                            "\"subscribe\":[{\"topic\":\"loop/#\",\"qos\":1}]",
                            r->remote.dir);
    rt_up(r, extra, true);
    free(extra);
    cJSON_Delete(wait_remote(r, "connected"));
    h_sim_wait_line(&r->e.sim, "rx AT+CCERTDOWN=\"m2m_ca.pem\",", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTACCQ=0,\"m2m-it\",1", NULL, 0, 5000);
    h_mqtt_publish(&r->e.mqtt, r->t_pub,
                   "{\"topic\":\"loop/x\",\"payload\":\"over tls\",\"qos\":1}", 1, false);
    expect_ok(r, r->t_pub_result);
    cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
    h_json_str_eq(m, "topic", "loop/x");
    h_json_str_eq(m, "payload", "over tls");
    cJSON_Delete(m);
    H_PASS(&r->e);
}

/* A server the configured CA did not sign: no session, a readable reason. */
static void test_tls_wrong_ca(void **state)
{
    struct rt *r = *state;
    remote_tls(r, false);
    char *extra = h_strdupf("\"tls\":true,\"ca_file\":\"%s/other-ca.pem\"", r->remote.dir);
    rt_up(r, extra, true);
    free(extra);
    cJSON *st = wait_remote(r, "disconnected");
    const char *why = h_json_str(st, "remote_error");
    if (!strstr(why, "handshake failed (32)"))
        h_fail("remote_error '%s': expected the TLS handshake failure", why);
    cJSON_Delete(st);
    H_PASS(&r->e);
}

/* A whole small file, NUL-terminated (the caller frees it). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        h_fail("cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap + 1);
            if (!buf)
                h_fail("out of memory");
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* remote.cert_file/key_file: a broker that demands a client certificate
 * (require_certificate) takes the bridge's; the certificate and key go to
 * the module, authmode 2, a message makes the round trip. The key's bytes
 * never reach the bridge's log (which runs at debug, AT traffic included). */
static void test_tls_client_cert(void **state)
{
    struct rt *r = *state;
    remote_tls(r, true);
    const char *d = r->remote.dir;
    char *extra = h_strdupf("\"tls\":true,\"ca_file\":\"%s/ca.pem\","
                            "\"cert_file\":\"%s/client.pem\",\"key_file\":\"%s/client.key\","
                            "\"subscribe\":[{\"topic\":\"loop/#\",\"qos\":1}]",
                            d, d, d);
    rt_up(r, extra, true);
    free(extra);
    cJSON_Delete(wait_remote(r, "connected"));
    h_sim_wait_line(&r->e.sim, "rx AT+CCERTDOWN=\"client.pem\",", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CCERTDOWN=\"client.key\",", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CSSLCFG=\"authmode\",0,2", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CSSLCFG=\"clientcert\",0,\"client.pem\"", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CSSLCFG=\"clientkey\",0,\"client.key\"", NULL, 0, 5000);
    h_mqtt_publish(&r->e.mqtt, r->t_pub,
                   "{\"topic\":\"loop/c\",\"payload\":\"with a client certificate\",\"qos\":1}",
                   1, false);
    expect_ok(r, r->t_pub_result);
    cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 10000);
    h_json_str_eq(m, "topic", "loop/c");
    h_json_str_eq(m, "payload", "with a client certificate");
    cJSON_Delete(m);

    /* Every line of the key's base64 body is absent from the log. */
    char *kp = h_strdupf("%s/client.key", d);
    char *key = slurp(kp);
    char *log = slurp(r->e.bridge.log_path);
    size_t checked = 0;
    for (char *save = NULL, *ln = strtok_r(key, "\n", &save); ln;
         ln = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ln, "-----", 5) == 0 || strlen(ln) < 16)
            continue;
        if (strstr(log, ln))
            h_fail("the bridge log holds a line of the private key: %s", ln);
        checked++;
    }
    if (checked == 0)
        h_fail("%s: no key lines to look for", kp);
    if (!strstr(log, "bytes of data]"))
        h_fail("the bridge log has no AT data lines: is it at debug?");
    free(log);
    free(key);
    free(kp);
    H_PASS(&r->e);
}

/* The same broker without remote.cert_file/key_file: the TLS handshake is
 * refused, B/status says why, and the bridge keeps retrying. */
static void test_tls_client_cert_missing(void **state)
{
    struct rt *r = *state;
    remote_tls(r, true);
    char *extra = h_strdupf("\"tls\":true,\"ca_file\":\"%s/ca.pem\"", r->remote.dir);
    rt_up(r, extra, true);
    free(extra);
    cJSON *st = wait_remote(r, "disconnected");
    const char *why = h_json_str(st, "remote_error");
    if (!strstr(why, "handshake failed (32)"))
        h_fail("remote_error '%s': expected the TLS handshake failure", why);
    cJSON_Delete(st);
    assert_int_equal(h_sim_saw(&r->e.sim, "rx AT+CSSLCFG=\"clientcert\""), 0);
    h_sim_wait_line(&r->e.sim, "rx AT+CSSLCFG=\"authmode\",0,1", NULL, 0, 5000);
    H_PASS(&r->e);
}


/* ---- a URC that ends the session; lengths the module cannot send ---- */

/* Waits (bounded, polling the file) until the bridge's log holds needle. */
#define wait_log(r, needle, ms) wait_log_at(__FILE__, __LINE__, (r), (needle), (ms))
static void wait_log_at(const char *file, int line, struct rt *r, const char *needle, int ms)
{
    int64_t end = mono_ms() + h_ms(ms);
    static char buf[1 << 20];
    for (;;) {
        FILE *f = fopen(r->e.bridge.log_path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
            if (strstr(buf, needle))
                return;
        }
        if (mono_ms() > end)
            h_fail_at(file, line, "the bridge never logged '%s'", needle);
        struct timespec ts = { 0, 20 * 1000000 };
        nanosleep(&ts, NULL);   /* polling interval of a bounded wait */
    }
}

#define SMS_JSON "{\"id\":\"m1\",\"to\":\"+4917012345678\",\"text\":\"hi\"}"

/* The remote broker drops the module (+CMQTTCONNLOST: 0,3) while a run-time
 * AT+CMQTTSUB waits for its result and an SMS waits behind it in the AT
 * queue: the SMS result comes within seconds (the old bridge let the queue
 * wait 65 s for the SUB's timeout), the subscribe answers "unavailable",
 * and the session comes back. */
static void test_dropped_while_subscribing(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "", true);
    cJSON_Delete(wait_remote(r, "connected"));

    h_sim_cmd_ok(&r->e.sim, "cmqtt_sub_hold", NULL, 0);
    h_mqtt_publish(&r->e.mqtt, r->t_sub, "{\"id\":\"s1\",\"topic\":\"held/#\",\"qos\":1}", 1,
                   false);
    h_sim_wait_line(&r->e.sim, "cmqtt sub-held held/#", NULL, 0, H_TIMEOUT_MS);
    h_mqtt_publish(&r->e.mqtt, r->e.t_send, SMS_JSON, 1, false);
    /* The SMS job has queued its AT+CMGS behind the SUB. */
    wait_log(r, "sms: sending 1 part(s)", H_TIMEOUT_MS);
    if (h_sim_saw(&r->e.sim, "rx AT+CMGS") != 0)
        h_fail("AT+CMGS went out while the SUB waited: the test proves nothing");

    int64_t t0 = mono_ms();
    h_sim_cmd_ok(&r->e.sim, "cmqtt_drop 3", NULL, 0);
    cJSON *res = h_mqtt_wait_json(&r->e.mqtt, r->e.t_result, 5000);
    h_json_str_eq(res, "id", "m1");
    h_json_bool_eq(res, "ok", true);
    cJSON_Delete(res);
    if (mono_ms() - t0 > h_ms(5000))
        h_fail("the SMS result took %lld ms after the drop", (long long)(mono_ms() - t0));
    res = h_mqtt_wait_json(&r->e.mqtt, r->t_sub_result, 5000);
    h_json_str_eq(res, "id", "s1");
    h_json_bool_eq(res, "ok", false);
    h_json_str_eq(h_json_get_at(__FILE__, __LINE__, res, "error", cJSON_Object), "code",
                  "unavailable");
    cJSON_Delete(res);
    cJSON_Delete(wait_remote(r, "disconnected"));
    cJSON_Delete(wait_remote(r, "connected"));
    H_PASS(&r->e);
}

/* A false +CMQTTRXPAYLOAD length (9999 for a 5-byte payload) does not
 * swallow the module's following replies: the message is dropped with
 * B/error, the SMS sent right after gets its result, and a real message
 * after it is delivered. (The old bridge read 9999 bytes as payload.) */
static void test_false_rx_length(void **state)
{
    struct rt *r = *state;
    char t_error[160];
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"cloud/#\",\"qos\":1}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    rc_connect(r, true, NULL);
    snprintf(t_error, sizeof t_error, "%s/error", r->e.base);

    static const char bad[] = "\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
                              "+CMQTTRXPAYLOAD: 0,9999\r\nhello\r\n+CMQTTRXEND: 0\r\n";
    char hex[2 * sizeof bad + 8];
    for (size_t i = 0; i + 1 < sizeof bad; i++)
        snprintf(hex + 2 * i, 3, "%02X", (unsigned char)bad[i]);
    char *cmd = h_strdupf("raw %s", hex);
    h_sim_cmd_ok(&r->e.sim, cmd, NULL, 0);
    free(cmd);

    cJSON *err = h_mqtt_wait_json(&r->e.mqtt, t_error, H_TIMEOUT_MS);
    h_json_str_eq(err, "code", "remote_message_dropped");
    cJSON_Delete(err);
    h_mqtt_publish(&r->e.mqtt, r->e.t_send, SMS_JSON, 1, false);
    cJSON *res = h_mqtt_wait_json(&r->e.mqtt, r->e.t_result, 5000);
    h_json_str_eq(res, "id", "m1");
    h_json_bool_eq(res, "ok", true);
    cJSON_Delete(res);
    h_mqtt_publish(&r->rc, "cloud/x", "after", 1, false);
    cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, H_TIMEOUT_MS);
    h_json_str_eq(m, "topic", "cloud/x");
    h_json_str_eq(m, "payload", "after");
    cJSON_Delete(m);
    H_PASS(&r->e);
}

/* Publishes n QoS 1 messages "<prefix>0", "<prefix>1", ... (each padded
 * with 'x' to pad bytes when pad > 0) on topic to the remote broker with
 * mosquitto_pub -l, as fast as it goes; returns when all were accepted. */
static void remote_burst(struct rt *r, const char *topic, const char *prefix, int n, size_t pad)
{
    char *cmd = h_strdupf("mosquitto_pub -h 127.0.0.1 -p %d -q 1 -i burst-%d -t '%s' -l",
                          r->remote.port, (int)getpid(), topic);
    FILE *p = popen(cmd, "w");
    if (!p)
        h_fail("popen %s", cmd);
    for (int i = 0; i < n; i++) {
        int w = fprintf(p, "%s%d", prefix, i);
        for (size_t k = w > 0 ? (size_t)w : 0; k < pad; k++)
            fputc('x', p);
        fputc('\n', p);
    }
    if (pclose(p) != 0)
        h_fail("%s failed", cmd);
    free(cmd);
}

/* A burst of 2,000 messages from the remote broker, as fast as the module
 * delivers them: every one reaches B/remote/message, none is dropped, and
 * no B/error. The old bridge dropped most of them: paho held the results
 * beyond mosquitto's Receive Maximum (20) and refused new requests once
 * 100 waited, and each refusal was a message lost with one log line. */
static void test_burst_2000(void **state)
{
    struct rt *r = *state;
    enum { N = 2000 };
    char t_error[160];
    static bool seen[N];
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"cloud/#\",\"qos\":1}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    snprintf(t_error, sizeof t_error, "%s/error", r->e.base);
    h_mqtt_subscribe(&r->e.mqtt, t_error);
    memset(seen, 0, sizeof seen);

    remote_burst(r, "cloud/burst", "m", N, 0);
    int got = 0, dup = 0;
    while (got < N) {
        struct h_msg *m = h_mqtt_take(&r->e.mqtt, r->t_message, h_ms(20000));
        if (!m)
            h_fail("%d of %d remote messages arrived, then nothing for 20 s", got, N);
        cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(j, "payload");
        int i = cJSON_IsString(pl) && pl->valuestring[0] == 'm' ? atoi(pl->valuestring + 1) : -1;
        if (i < 0 || i >= N)
            h_fail("unexpected B/remote/message %s", m->payload);
        if (seen[i])
            dup++;
        else
            got++;
        seen[i] = true;
        cJSON_Delete(j);
        h_msg_free(m);
    }
    assert_int_equal(dup, 0);
    /* A marker after the burst: had a B/error been published, it would
     * have come before the marker's message. */
    remote_burst(r, "cloud/marker", "end", 1, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&r->e.mqtt, r->t_message, "topic", "cloud/marker",
                                        H_TIMEOUT_MS));
    assert_int_equal(h_mqtt_pending(&r->e.mqtt, t_error), 0);
    H_PASS(&r->e);
}

/* The local broker stops taking messages (SIGSTOP) while big ones keep
 * coming from the remote broker: once 1 MiB waits for it, the bridge drops
 * what comes, says so once on B/error ("queue_overflow"), counts the
 * drops, and delivers everything it kept once the broker is back. */
static void test_backlog_overflow(void **state)
{
    struct rt *r = *state;
    enum { N = 150, SIZE = 9000 };
    char t_error[160];
    h_broker_start(&r->remote);
    rt_up(r, "\"subscribe\":[{\"topic\":\"cloud/#\",\"qos\":1}]", true);
    cJSON_Delete(wait_remote(r, "connected"));
    snprintf(t_error, sizeof t_error, "%s/error", r->e.base);
    h_mqtt_subscribe(&r->e.mqtt, t_error);

    if (kill(r->e.broker.pid, SIGSTOP) != 0)
        h_fail("SIGSTOP mosquitto: %s", strerror(errno));
    remote_burst(r, "cloud/big", "b", N, SIZE);
    remote_burst(r, "cloud/end", "end", 1, SIZE);
    /* The bridge has read every message when the last one is dropped. */
    wait_log(r, "message on cloud/end dropped (backlog full)", 30000);
    kill(r->e.broker.pid, SIGCONT);

    cJSON *err = h_mqtt_wait_json(&r->e.mqtt, t_error, 30000);
    h_json_str_eq(err, "code", "queue_overflow");
    cJSON_Delete(err);
    /* Then every kept message, and a new one once the backlog drained. */
    int got = 0;
    for (;;) {
        struct h_msg *m = h_mqtt_take(&r->e.mqtt, r->t_message, h_ms(30000));
        if (!m)
            h_fail("%d big messages arrived, then nothing", got);
        bool big = strstr(m->payload, "\"topic\":\"cloud/big\"") != NULL;
        h_msg_free(m);
        if (!big)
            h_fail("a message other than cloud/big came first");
        if (++got >= N)
            h_fail("all %d arrived: nothing was dropped, the test proves nothing", N);
        if (h_mqtt_pending(&r->e.mqtt, r->t_message) == 0) {
            wait_log(r, "remote: backlog down to", 30000);
            break;
        }
    }
    remote_burst(r, "cloud/after", "after", 1, 0);
    for (;;) {
        cJSON *m = h_mqtt_wait_json(&r->e.mqtt, r->t_message, 30000);
        bool after = strcmp(h_json_str(m, "topic"), "cloud/after") == 0;
        cJSON_Delete(m);
        if (after)
            break;
        got++;
    }
    /* One B/error for the episode; the log counts every drop. */
    assert_int_equal(h_mqtt_pending(&r->e.mqtt, t_error), 0);
    char *log = NULL;
    {
        FILE *f = fopen(r->e.bridge.log_path, "r");
        size_t cap = 0;
        if (!f || getdelim(&log, &cap, '\0', f) < 0)
            h_fail("cannot read %s", r->e.bridge.log_path);
        fclose(f);
    }
    const char *line = strstr(log, "remote: backlog down to");
    unsigned long long dropped = 0;
    const char *semi = line ? strchr(line, ';') : NULL;
    if (!semi || sscanf(semi, "; %llu dropped since the start", &dropped) != 1)
        h_fail("no drop count in the log");
    free(log);
    if ((unsigned long long)got + dropped != N + 1)
        h_fail("%d delivered + %llu counted as dropped != %d sent", got, dropped, N + 1);
    H_PASS(&r->e);
}

/* remote.will: the module sets it before CONNECT (topic and message as
 * counted bytes), and when the connection to the remote broker ends
 * without a DISCONNECT (cmqtt_drop: a network loss) the remote broker
 * publishes it. A clean stop (DISC) does not: the next message on the
 * will topic is the cloud side's own marker. */
static void test_will_on_drop(void **state)
{
    struct rt *r = *state;
    char line[256];
    h_broker_start(&r->remote);
    rt_up(r, "\"will\":{\"topic\":\"dev/m2m-it/state\",\"payload\":\"offline \\r\\n\",\"qos\":1}",
          true);
    cJSON_Delete(wait_remote(r, "connected"));
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTWILLTOPIC=0,16", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTWILLMSG=0,10,1", NULL, 0, H_TIMEOUT_MS);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTCONNECT=", line, sizeof line, H_TIMEOUT_MS);
    rc_connect(r, true, "dev/m2m-it/state");

    h_sim_cmd_ok(&r->e.sim, "cmqtt_drop 3", NULL, 0);
    struct h_msg *m = h_mqtt_take(&r->rc, "dev/m2m-it/state", h_ms(H_TIMEOUT_MS));
    if (!m)
        h_fail("the remote broker published no will after the drop");
    assert_string_equal(m->payload, "offline \r\n");
    assert_int_equal(m->qos, 1);
    assert_false(m->retained);
    h_msg_free(m);

    /* The reconnect sets the will again; a clean stop closes the session
     * with DISC, and the broker keeps the will to itself. */
    cJSON_Delete(wait_remote(r, "connected"));
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTWILLMSG=0,10,1", NULL, 0, H_TIMEOUT_MS);
    h_bridge_stop(&r->e.bridge);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTDISC=0,60", NULL, 0, 5000);
    h_sim_wait_line(&r->e.sim, "rx AT+CMQTTSTOP", NULL, 0, 5000);
    h_mqtt_publish(&r->rc, "dev/m2m-it/state", "marker", 1, false);
    h_mqtt_wait_payload(&r->rc, "dev/m2m-it/state", "marker", 10000);
    H_PASS(&r->e);
}

/* A module slow to close its session (DISC answered OK, its result
 * pending) does not hold a SIGTERM: the bridge waits for it only as long
 * as its stop bound, then exits 0. */
static void test_slow_disc_on_stop(void **state)
{
    struct rt *r = *state;
    h_broker_start(&r->remote);
    rt_up(r, "", true);
    cJSON_Delete(wait_remote(r, "connected"));
    h_sim_cmd_ok(&r->e.sim, "cmqtt_disc_hold", NULL, 0);
    int64_t t0 = mono_ms();
    h_bridge_stop(&r->e.bridge);
    if (mono_ms() - t0 > h_ms(6000))
        h_fail("the bridge took %lld ms to stop", (long long)(mono_ms() - t0));
    h_sim_wait_line(&r->e.sim, "cmqtt disc-held", NULL, 0, 5000);
    if (h_bridge_log_count(&r->e.bridge, "did not close the session within") != 1)
        h_fail("the bridge did not say why it stopped without the module's answer");
    if (h_sim_saw(&r->e.sim, "rx AT+CMQTTREL") != 0)
        h_fail("REL went out although DISC was never answered");
    H_PASS(&r->e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, rt_setup, rt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_binary_4k),
        T(test_forward_rules),
        T(test_runtime_subscribe),
        T(test_remote_restart),
        T(test_wrong_password),
        T(test_payload_too_long),
        T(test_disabled),
        T(test_tls_round_trip),
        T(test_tls_wrong_ca),
        T(test_tls_client_cert),
        T(test_tls_client_cert_missing),
        T(test_dropped_while_subscribing),
        T(test_will_on_drop),
        T(test_slow_disc_on_stop),
        T(test_false_rx_length),
        T(test_burst_2000),
        T(test_backlog_overflow),
    };
    return cmocka_run_group_tests_name("integration_remote", tests, NULL, NULL);
}
