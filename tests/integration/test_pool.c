/* Integration: a pool of two bridges (two processes, two simulated modems)
 * on one mosquitto, sharing <pool>/sms/send through a shared
 * subscription. 200 commands: each answered, on the pool's result topic,
 * with the modem that ran it; both modems take some; no SMS reaches the
 * network twice, also when one bridge is killed (SIGKILL) mid-way and
 * restarted. And: a modem that is not ready leaves the pool and the other
 * takes everything until it is back. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/pdu.h"

#define POOL "sms-pool"
#define N_CMDS 200
#define POOL_CFG "\"sms\":{\"rate_per_hour\":100000}," \
                 "\"mqtt\":{\"pool\":{\"topic\":\"" POOL "\",\"group\":\"g1\"}}"

struct cmd {
    int results, ok, unavailable;
    char modem[64];
    int sent;                   /* SMS with this command's text on either network */
};

static struct cmd cmds[N_CMDS];

/* The second member: its own simulator and bridge, its own base topic. */
struct member {
    struct h_sim sim;
    struct h_bridge bridge;
};

static void publish_cmd(struct h_env *e, int i)
{
    char payload[128];
    snprintf(payload, sizeof payload, "{\"id\":%d,\"to\":\"+4917012345678\",\"text\":\"(%d)\"}", i,
             i);
    h_mqtt_publish_len(&e->mqtt, POOL "/sms/send", payload, strlen(payload), 1, false);
}

/* Takes the results that came; the number of commands answered so far. */
static int take_results(struct h_env *e, int timeout_ms)
{
    struct h_msg *m;
    while ((m = h_mqtt_take(&e->mqtt, POOL "/sms/send/result", timeout_ms))) {
        cJSON *r = cJSON_ParseWithLength(m->payload, m->len);
        cJSON *id = r ? cJSON_GetObjectItemCaseSensitive(r, "id") : NULL;
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= N_CMDS)
            h_fail("a pool result that is none of ours: %s", m->payload);
        struct cmd *c = &cmds[id->valueint];
        const char *modem = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "modem"));
        if (!modem)
            h_fail("a pool result without \"modem\": %s", m->payload);
        c->results++;
        snprintf(c->modem, sizeof c->modem, "%s", modem);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
            c->ok++;
        else if (strstr(m->payload, "\"unavailable\""))
            c->unavailable++;
        else
            h_fail("a pool command failed: %s", m->payload);
        cJSON_Delete(r);
        h_msg_free(m);
        timeout_ms = 0;
    }
    int answered = 0;
    for (int i = 0; i < N_CMDS; i++)
        answered += cmds[i].results > 0;
    return answered;
}

/* Until n commands are answered, bounded. */
static void wait_answered(struct h_env *e, int n)
{
    for (int waited = 0; take_results(e, 200) < n; waited += 200)
        if (waited > h_ms(60000))
            h_fail("%d of %d pool commands answered", take_results(e, 0), n);
}

/* The `sent <mr> <pdu>` lines of one simulator, counted per command. */
static void count_sent(struct h_sim *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        char hex[900];
        int mr, id;
        struct pdu_msg pm;
        if (sscanf(s->lines[i], "sent %d %899s", &mr, hex) != 2)
            continue;
        if (pdu_decode(hex, strlen(hex), 0, &pm) != 0 ||
            sscanf((const char *)pm.text, "(%d)", &id) != 1 || id < 0 || id >= N_CMDS) {
            pthread_mutex_unlock(&s->mu);
            h_fail("the network got an SMS that is none of ours: %s", hex);
        }
        cmds[id].sent++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Lines of the bridge's log that contain what. */
static int count_log(const struct h_bridge *br, const char *what)
{
    char line[1024];
    int n = 0;
    FILE *f = fopen(br->log_path, "r");

    while (f && fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void member_up(struct h_env *e, struct member *m, const char *base,
                      const char *const *sim_args)
{
    h_sim_start(&m->sim, sim_args);
    h_bridge_start(&m->bridge, &e->broker, &m->sim, base, POOL_CFG);
    char t[128];
    snprintf(t, sizeof t, "%s/status", base);
    h_mqtt_subscribe(&e->mqtt, t);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, t, "state", "ready", H_TIMEOUT_MS));
}

static void member_down(struct member *m, bool keep)
{
    if (m->bridge.pid)
        h_bridge_stop(&m->bridge);
    h_sim_stop(&m->sim);
    h_bridge_cleanup(&m->bridge, keep);
    h_sim_cleanup(&m->sim, keep);
}

/* The env's bridge and a second member, m2mtest2 (its simulator with
 * sim_args), both in the pool; the test's client takes the pool's results. */
static void pool_up(struct h_env *e, struct member *two, const char *const *sim_args)
{
    const struct h_env_opts o = { .config = POOL_CFG };

    memset(cmds, 0, sizeof cmds);
    h_env_up(e, &o);
    h_mqtt_subscribe(&e->mqtt, POOL "/sms/send/result");
    member_up(e, two, "m2mtest2", sim_args);
}

static void test_pool_exactly_once_across_a_kill(void **state)
{
    struct h_env *e = *state;
    struct member two = { 0 };
    /* A slow network behind m2mtest2: commands it accepted still wait in
     * its journal when it is killed. */
    static const char *const slow[] = { "--cmgs-ms", "150", NULL };

    pool_up(e, &two, slow);

    for (int i = 0; i < 80; i++)
        publish_cmd(e, i);
    wait_answered(e, 40);
    h_bridge_kill(&two.bridge);         /* some of its commands in flight */
    for (int i = 80; i < 140; i++)
        publish_cmd(e, i);
    h_bridge_start(&two.bridge, &e->broker, &two.sim, "m2mtest2", POOL_CFG);
    for (int i = 140; i < N_CMDS; i++)
        publish_cmd(e, i);
    wait_answered(e, N_CMDS);

    count_sent(&e->sim);
    count_sent(&two.sim);
    int by_one = 0, by_two = 0;
    for (int i = 0; i < N_CMDS; i++) {
        struct cmd *c = &cmds[i];
        if (c->sent > 1)
            h_fail("command %d reached the network %d times", i, c->sent);
        if (c->ok && c->sent != 1)
            h_fail("command %d: ok, but sent %d times", i, c->sent);
        if (!c->ok && !c->unavailable)
            h_fail("command %d: no outcome", i);
        by_one += strcmp(c->modem, e->base) == 0;
        by_two += strcmp(c->modem, "m2mtest2") == 0;
    }
    fprintf(stderr, "pool: %d commands ran on %s, %d on m2mtest2\n", by_one, e->base, by_two);
    /* The kill caught m2mtest2 with work: commands it had accepted (or a
     * result it had not delivered) came back from its journal. */
    if (count_log(&two.bridge, "journal: running command") +
            count_log(&two.bridge, "was running when the bridge stopped") +
            count_log(&two.bridge, "journal: publishing the stored result") == 0)
        h_fail("m2mtest2 had nothing in its journal when it was killed: the test proved nothing");
    if (by_one == 0 || by_two == 0 || by_one + by_two != N_CMDS)
        h_fail("the pool did not share the work: %d and %d", by_one, by_two);
    member_down(&two, false);
    H_PASS(e);
}

/* The unplugged modem's bridge leaves the pool: the other takes every
 * command meanwhile; back, it joins again. */
static void test_pool_not_ready_leaves(void **state)
{
    struct h_env *e = *state;
    struct member two = { 0 };

    pool_up(e, &two, NULL);

    h_sim_cmd_ok(&two.sim, "unplug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, "m2mtest2/status", "state", "unavailable",
                                        H_TIMEOUT_MS));
    /* Its unsubscribe is on the way with that status; a command published
     * before the broker's UNSUBACK can still meet the subscription. */
    for (int waited = 0;; waited += 50) {
        if (count_log(&two.bridge, "pool: left") > 0)   /* logged at the UNSUBACK */
            break;
        if (waited > h_ms(H_TIMEOUT_MS))
            h_fail("m2mtest2 did not leave the pool");
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 20; i++)
        publish_cmd(e, i);
    wait_answered(e, 20);
    for (int i = 0; i < 20; i++)
        if (strcmp(cmds[i].modem, e->base) != 0 || !cmds[i].ok)
            h_fail("command %d ran on '%s' while m2mtest2 was out", i, cmds[i].modem);

    h_sim_cmd_ok(&two.sim, "replug", NULL, 0);
    cJSON_Delete(h_mqtt_wait_json_where(&e->mqtt, "m2mtest2/status", "state", "ready",
                                        H_TIMEOUT_MS));
    for (int i = 20; i < 120; i++)
        publish_cmd(e, i);
    wait_answered(e, 120);
    int by_two = 0;
    for (int i = 20; i < 120; i++)
        by_two += strcmp(cmds[i].modem, "m2mtest2") == 0;
    if (by_two == 0)
        h_fail("m2mtest2 did not rejoin the pool");
    member_down(&two, false);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_pool_exactly_once_across_a_kill),
        T(test_pool_not_ready_leaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
