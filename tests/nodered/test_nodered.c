/* Integration: the example flow config/node-red-flow.json in a real
 * Node-RED, against mosquitto, the simulator and the bridge.
 *
 * run.sh installs node-red and passes M2M_NODE (node) and M2M_NODE_RED
 * (its red.js). The test's copy of the flow differs from the example only
 * in what a test needs: the broker node points at the test broker, the
 * topics use the test's base topic, and two mqtt out nodes echo what the
 * flow's json nodes produced (the parsed send result and received SMS) to
 * <base>/nodered/..., where the test reads them. The inject node is
 * triggered through Node-RED's admin HTTP API (POST /inject/<id>), as the
 * editor's button does. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "modem/pdu.h"

#define FLOW_PATH M2M_SOURCE_DIR "/config/node-red-flow.json"
#define INJECT_ID "m2m.inject.sms"
#define ALARM_ID "m2m.inject.alarm"
#define START_TIMEOUT_MS 60000     /* node-red start and broker connection */

extern char **environ;

static pid_t g_red;                /* the Node-RED process, 0 when none */
static char g_dir[64];             /* its user directory */
static char g_log[128];

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        h_fail("%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
            if (!buf)
                h_fail("out of memory");
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        h_fail("writing %s: %s", path, strerror(errno));
}

static cJSON *load_flow(void)
{
    char *text = read_text(FLOW_PATH);
    cJSON *flow = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(flow))
        h_fail("%s: not a JSON array of nodes", FLOW_PATH);
    return flow;
}

static cJSON *node_by_id(cJSON *flow, const char *id)
{
    cJSON *n;
    cJSON_ArrayForEach(n, flow) {
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(n, "id");
        if (cJSON_IsString(i) && strcmp(i->valuestring, id) == 0)
            return n;
    }
    h_fail("the flow has no node '%s'", id);
}

static const char *type_of(const cJSON *n)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

/* ---- the example itself (no Node-RED needed) ---- */

/* Only core nodes, so the flow imports into any Node-RED; it sends
 * sms/send and an alarm call/dial from inject nodes, hangs up on a key
 * press, and shows received SMS, delivery reports and calls. */
static void test_example_flow(void **state)
{
    static const char *const core[] = { "tab", "mqtt-broker", "mqtt in", "mqtt out",
                                        "json", "inject", "debug", "switch", "change",
                                        NULL };
    bool send = false, received = false, report = false, ring = false, broker = false;
    cJSON *flow = load_flow(), *n;
    (void)state;

    cJSON_ArrayForEach(n, flow) {
        const char *type = type_of(n);
        size_t i = 0;
        while (core[i] && strcmp(core[i], type) != 0)
            i++;
        if (!core[i])
            h_fail("node type '%s' is not one of the core nodes this example may use", type);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "topic");
        const char *topic = cJSON_IsString(t) ? t->valuestring : "";
        broker |= strcmp(type, "mqtt-broker") == 0;
        send |= strcmp(type, "mqtt out") == 0 && strcmp(topic, "modem/sms/send") == 0;
        received |= strcmp(type, "mqtt in") == 0 && strcmp(topic, "modem/sms/received") == 0;
        report |= strcmp(type, "mqtt in") == 0 && strcmp(topic, "modem/sms/report") == 0;
        ring |= strcmp(type, "mqtt in") == 0 && strcmp(topic, "modem/call/ring") == 0;
    }
    if (!broker || !send || !received || !report || !ring)
        h_fail("the flow lacks a broker (%d), sms/send (%d), sms/received (%d), sms/report (%d) "
               "or call/ring (%d)",
               broker, send, received, report, ring);

    /* The inject node's payload is a valid sms/send command. */
    cJSON *inject = node_by_id(flow, INJECT_ID);
    h_json_str_eq(inject, "payloadType", "json");
    cJSON *cmd = cJSON_Parse(h_json_str(inject, "payload"));
    if (!cmd)
        h_fail("the inject node's payload is not JSON");
    h_json_str(cmd, "to");
    h_json_str(cmd, "text");
    cJSON_Delete(cmd);
    /* The alarm's: a dial that plays the example tone. */
    inject = node_by_id(flow, ALARM_ID);
    cmd = cJSON_Parse(h_json_str(inject, "payload"));
    if (!cmd)
        h_fail("the alarm inject node's payload is not JSON");
    h_json_str(cmd, "to");
    h_json_str_eq(cmd, "play", "c:/alarm-tone.wav");
    cJSON_Delete(cmd);
    cJSON_Delete(flow);
}

/* ---- the running flow ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        h_fail("no free loopback port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void add_echo(cJSON *flow, const char *id, const char *from, const char *topic)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "id", id);
    cJSON_AddStringToObject(n, "type", "mqtt out");
    cJSON_AddStringToObject(n, "z", "m2m.tab");
    cJSON_AddStringToObject(n, "topic", topic);
    cJSON_AddStringToObject(n, "qos", "1");
    cJSON_AddStringToObject(n, "retain", "false");
    cJSON_AddStringToObject(n, "broker", "m2m.broker");
    cJSON_AddItemToObject(n, "wires", cJSON_CreateArray());
    cJSON_AddItemToArray(flow, n);
    /* Wired from the json node, next to its debug node. */
    cJSON *wires = cJSON_GetArrayItem(h_json_arr(node_by_id(flow, from), "wires"), 0);
    cJSON_AddItemToArray(wires, cJSON_CreateString(id));
}

/* The test's copy of the example: see the top of this file. */
static char *test_flow(const struct h_env *e)
{
    cJSON *flow = load_flow(), *n;
    char port[16];

    cJSON_ArrayForEach(n, flow) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "topic");
        if (cJSON_IsString(t) && strncmp(t->valuestring, "modem/", 6) == 0) {
            char *nt = h_strdupf("%s/%s", e->base, t->valuestring + 6);
            cJSON_SetValuestring(t, nt);
            free(nt);
        }
    }
    cJSON *broker = node_by_id(flow, "m2m.broker");
    snprintf(port, sizeof port, "%d", e->broker.port);
    cJSON_ReplaceItemInObjectCaseSensitive(broker, "broker", cJSON_CreateString("127.0.0.1"));
    cJSON_ReplaceItemInObjectCaseSensitive(broker, "port", cJSON_CreateString(port));
    char *t1 = h_strdupf("%s/nodered/result", e->base);
    char *t2 = h_strdupf("%s/nodered/received", e->base);
    add_echo(flow, "t.echo.result", "m2m.json.result", t1);
    add_echo(flow, "t.echo.received", "m2m.json.received", t2);
    free(t1);
    free(t2);
    char *s = cJSON_Print(flow);
    cJSON_Delete(flow);
    return s;
}

static bool log_has(const char *needle)
{
    char *text = read_text(g_log);
    bool hit = strstr(text, needle) != NULL;
    free(text);
    return hit;
}

static void dump_log(void)
{
    char *text = read_text(g_log);
    size_t n = strlen(text);
    fprintf(stderr, "---- Node-RED log (%s), last 4000 bytes:\n%s\n---- end of Node-RED log\n",
            g_log, n > 4000 ? text + n - 4000 : text);
    free(text);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Until the log says what, or Node-RED exits, or the deadline. The log is
 * re-read every 50 ms: a bounded wait for an event, not a fixed sleep. */
static void wait_log(const char *what, int timeout_ms)
{
    int64_t end = now_ms() + h_ms(timeout_ms);
    while (!log_has(what)) {
        int status;
        if (waitpid(g_red, &status, WNOHANG) == g_red) {
            g_red = 0;
            dump_log();
            h_fail("Node-RED exited (status %d) while waiting for '%s'", status, what);
        }
        if (now_ms() > end) {
            dump_log();
            h_fail("Node-RED did not log '%s' within %d ms", what, h_ms(timeout_ms));
        }
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static void red_start(const struct h_env *e, int ui_port)
{
    const char *node = getenv("M2M_NODE"), *red = getenv("M2M_NODE_RED");
    if (!node || !red)
        h_fail("M2M_NODE / M2M_NODE_RED are not set: run this through tests/nodered/run.sh "
               "(ctest -R integration_nodered)");

    snprintf(g_dir, sizeof g_dir, "/tmp/m2m-nodered-XXXXXX");
    if (!mkdtemp(g_dir))
        h_fail("mkdtemp: %s", strerror(errno));
    snprintf(g_log, sizeof g_log, "%s/node-red.log", g_dir);

    char *flow = test_flow(e);
    char *path = h_strdupf("%s/flows.json", g_dir);
    write_text(path, flow);
    free(path);
    free(flow);
    /* Loopback only; no telemetry, update check or projects. */
    char *settings = h_strdupf(
        "module.exports = {\n"
        "  uiHost: '127.0.0.1', uiPort: %d,\n"
        "  userDir: '%s', flowFile: 'flows.json', credentialSecret: false,\n"
        "  logging: { console: { level: 'info', metrics: false, audit: false } },\n"
        "  diagnostics: { enabled: false }, telemetry: { enabled: false },\n"
        "  editorTheme: { projects: { enabled: false } }\n"
        "};\n",
        ui_port, g_dir);
    path = h_strdupf("%s/settings.js", g_dir);
    write_text(path, settings);
    free(settings);

    int log = open(g_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log < 0)
        h_fail("%s: %s", g_log, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, log, 1);
    posix_spawn_file_actions_adddup2(&fa, log, 2);
    char *argv[] = { (char *)node, (char *)red, (char *)"--settings", path,
                     (char *)"--userDir", g_dir, NULL };
    int rc = posix_spawn(&g_red, node, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(log);
    free(path);
    if (rc != 0)
        h_fail("cannot start %s: %s", node, strerror(rc));
}

static void red_stop(void)
{
    if (g_red <= 0)
        return;
    kill(g_red, SIGTERM);
    int64_t end = now_ms() + 10000;
    int status;
    while (waitpid(g_red, &status, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(g_red, SIGKILL);
            waitpid(g_red, &status, 0);
            break;
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    g_red = 0;
}

/* POST /inject/<id> on the admin API: what the inject node's button does.
 * Returns the HTTP status. */
static int http_inject(int port, const char *id)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 10 };
    char req[256], rsp[512];
    int code = -1;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int n = snprintf(req, sizeof req,
                     "POST /inject/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     id, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, req, (size_t)n) == n) {
        ssize_t r = read(fd, rsp, sizeof rsp - 1);
        if (r > 0) {
            rsp[r] = '\0';
            sscanf(rsp, "HTTP/1.%*d %d", &code);
        }
    }
    close(fd);
    return code;
}

static int teardown(void **state)
{
    int rc;
    red_stop();
    struct h_env *e = *state;
    bool keep = !e || !e->passed || getenv("M2M_IT_KEEP");
    rc = h_env_teardown(state);
    if (g_dir[0]) {
        if (keep) {
            fprintf(stderr, "Node-RED directory kept: %s\n", g_dir);
        } else {
            char *cmd = h_strdupf("rm -rf '%s'", g_dir);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", g_dir);
            free(cmd);
        }
        g_dir[0] = '\0';
    }
    return rc;
}

static void test_flow_end_to_end(void **state)
{
    struct h_env *e = *state;
    char l[1024], hex[900];
    int ui_port;

    h_env_up(e, NULL);
    ui_port = free_port();
    int64_t t0 = now_ms();
    red_start(e, ui_port);
    wait_log("Started flows", START_TIMEOUT_MS);
    wait_log("Connected to broker", START_TIMEOUT_MS);
    fprintf(stderr, "nodered: Node-RED up and connected in %lld ms\n",
            (long long)(now_ms() - t0));

    /* The inject node sends the SMS. */
    int code = http_inject(ui_port, INJECT_ID);
    if (code != 200) {
        dump_log();
        h_fail("POST /inject/%s answered %d", INJECT_ID, code);
    }
    h_sim_wait_line(&e->sim, "sent ", l, sizeof l, H_TIMEOUT_MS);
    struct pdu_msg msg;
    int mr;
    if (sscanf(l, "sent %d %899s", &mr, hex) != 2 || pdu_decode(hex, strlen(hex), 0, &msg) != 0)
        h_fail("unexpected simulator line '%s'", l);
    assert_string_equal(msg.addr, "+4917012345678");
    assert_string_equal((const char *)msg.text, "Hello from Node-RED");
    cJSON *r = h_mqtt_wait_json_where(&e->mqtt, e->t_result, "id", "node-red-1", H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);

    /* The flow received the result and its json node parsed it. This also
     * proves the flow's subscriptions are in place for what follows. */
    char *echo = h_strdupf("%s/nodered/result", e->base);
    r = h_mqtt_wait_json_where(&e->mqtt, echo, "id", "node-red-1", H_TIMEOUT_MS);
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
    free(echo);

    /* An SMS arrives at the modem and reaches the flow. */
    h_sim_cmd_ok(&e->sim, "sms +4917099999999 Hello Node-RED", NULL, 0);
    echo = h_strdupf("%s/nodered/received", e->base);
    r = h_mqtt_wait_json_where(&e->mqtt, echo, "text", "Hello Node-RED", H_TIMEOUT_MS);
    h_json_str_eq(r, "from", "+4917099999999");
    cJSON_Delete(r);
    free(echo);

    /* The alarm call: the tone plays into the answered call (long enough
     * that only the key press can end it here), and a 1 from the person
     * called makes the flow hang up. */
    h_sim_cmd_ok(&e->sim, "file-put c:/alarm-tone.wav 52494646", NULL, 0);
    h_sim_cmd_ok(&e->sim, "play-ms 60000", NULL, 0);
    code = http_inject(ui_port, ALARM_ID);
    if (code != 200) {
        dump_log();
        h_fail("POST /inject/%s answered %d", ALARM_ID, code);
    }
    h_sim_wait_line(&e->sim, "rx AT+CCMXPLAYWAV=\"c:/alarm-tone.wav\",1,2", NULL, 0,
                    H_TIMEOUT_MS);
    if (h_sim_saw(&e->sim, "rx AT+CHUP"))
        h_fail("the call was hung up before any key was pressed");
    h_sim_cmd_ok(&e->sim, "dtmf 1", NULL, 0);
    h_sim_wait_line(&e->sim, "rx AT+CHUP", NULL, 0, H_TIMEOUT_MS);
    char *call_state = h_strdupf("%s/call/state", e->base);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, call_state, "state", "idle", H_TIMEOUT_MS));
    free(call_state);

    red_stop();
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_flow),
        cmocka_unit_test_setup_teardown(test_flow_end_to_end, h_env_setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_nodered", tests, NULL, NULL);
}
