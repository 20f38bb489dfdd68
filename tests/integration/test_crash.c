/* Integration: the bridge killed (SIGKILL) at random moments while SMS
 * commands and incoming SMS flow, and restarted on the same state_dir.
 *
 * At the end every command id must have at least one result and at most
 * one copy of each SMS part on the simulated network: exactly one when the
 * result says ok; for "unavailable" (the bridge died while sending) the
 * parts named in parts_sent once and nothing after the next part. Every
 * incoming SMS must have been published at least once, repeats only with
 * the same message_id, and the SIM must be empty.
 *
 *   M2M_CRASH_KILLS=N   kills (default 20; scripts/crash-test runs 200)
 *   M2M_CRASH_SEED=S    the random seed (default: the time; printed)
 *
 * The random delay before each kill is the scenario (a kill "at a random
 * moment"), not a synchronisation: every check waits for its event. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "modem/pdu.h"

#define TO "+4917012345678"
#define MAX_CMDS 1024
#define MAX_IN 1024
#define MAX_PARTS 3
#define PART_CHARS 153 /* GSM 7-bit characters in one part of a long SMS */

struct cmd {
    int parts;
    int results;
    bool ok;
    bool interrupted;           /* unavailable: the bridge stopped while sending */
    int parts_sent;             /* from that result; -1: none given */
    int sent[MAX_PARTS];        /* copies of each part the network got */
    char code[32];
};

struct incoming {
    char tag[32];
    int published;
    char message_id[32];
    bool id_differs;
};

static struct cmd cmds[MAX_CMDS];
static int n_cmds;
static struct incoming ins[MAX_IN];
static int n_ins;
static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_command(struct h_env *e)
{
    int id = n_cmds++;
    struct cmd *c = &cmds[id];
    char text[MAX_PARTS * PART_CHARS + 1];

    if (id >= MAX_CMDS)
        h_fail("too many commands");
    c->parts = rnd() % 5 == 0 ? MAX_PARTS : 1;
    c->parts_sent = -1;
    /* Each part starts with "(<id>:<part>)", so every part sent is known
     * (brackets would cost two GSM septets each and shift the parts). */
    size_t len = 0;
    for (int p = 0; p < c->parts; p++) {
        int n = snprintf(text + len, sizeof text - len, "(%d:%d)", id, p + 1);
        len += (size_t)n;
        size_t fill = c->parts == 1 ? 8 : PART_CHARS - (size_t)n;
        memset(text + len, 'a' + p, fill);
        len += fill;
    }
    text[len] = '\0';
    char *payload = h_strdupf("{\"id\":%d,\"to\":\"" TO "\",\"text\":\"%s\"}", id, text);
    h_mqtt_publish(&e->mqtt, e->t_send, payload, 1, false);
    free(payload);
}

static void send_incoming(struct h_env *e)
{
    char cmd[96], reply[64];
    struct incoming *in = &ins[n_ins];

    if (n_ins >= MAX_IN)
        return;
    snprintf(in->tag, sizeof in->tag, "in-%d", n_ins);
    snprintf(cmd, sizeof cmd, "sms +4915112345678 incoming %s", in->tag);
    if (h_sim_cmd(&e->sim, cmd, reply, sizeof reply) == 0)
        n_ins++; /* else the SIM is full: not sent */
}

static void take_result(struct h_msg *m)
{
    cJSON *r = cJSON_Parse(m->payload);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
    if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= n_cmds)
        h_fail("result without a known id: %s", m->payload);
    struct cmd *c = &cmds[id->valueint];
    c->results++;
    c->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    snprintf(c->code, sizeof c->code, "%s", cJSON_IsString(code) ? code->valuestring : "");
    c->interrupted = cJSON_IsString(msg) && strstr(msg->valuestring, "the bridge stopped");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(r, "parts_sent");
    if (cJSON_IsNumber(ps))
        c->parts_sent = ps->valueint;
    cJSON_Delete(r);
}

static void take_received(struct h_msg *m)
{
    cJSON *r = cJSON_Parse(m->payload);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(r, "message_id");
    if (!cJSON_IsString(text) || !cJSON_IsString(mid) || strlen(mid->valuestring) != 16)
        h_fail("B/sms/received without text or a 16-digit message_id: %s", m->payload);
    const char *tag = strstr(text->valuestring, "in-");
    int k = tag ? atoi(tag + 3) : -1;
    if (k < 0 || k >= n_ins)
        h_fail("an SMS nobody sent: %s", m->payload);
    struct incoming *in = &ins[k];
    if (in->published++ == 0)
        snprintf(in->message_id, sizeof in->message_id, "%s", mid->valuestring);
    else if (strcmp(in->message_id, mid->valuestring) != 0)
        in->id_differs = true;
    cJSON_Delete(r);
}

/* Takes whatever arrives on the two topics until deadline. */
static void collect_until(struct h_env *e, int64_t deadline)
{
    while (now_ms() < deadline) {
        int left = (int)(deadline - now_ms());
        struct h_msg *m = h_mqtt_take(&e->mqtt, e->t_result, 0);
        if (m) {
            take_result(m);
            h_msg_free(m);
            continue;
        }
        m = h_mqtt_take(&e->mqtt, e->t_received, left < 20 ? left : 20);
        if (m) {
            take_received(m);
            h_msg_free(m);
        }
    }
}

/* The simulator's `sent <mr> <pdu>` lines: which part of which command. */
static void count_sent(struct h_env *e)
{
    pthread_mutex_lock(&e->sim.mu);
    for (size_t i = 0; i < e->sim.n; i++) {
        char hex[900];
        int mr, id, part;
        struct pdu_msg pm;
        if (sscanf(e->sim.lines[i], "sent %d %899s", &mr, hex) != 2)
            continue;
        if (pdu_decode(hex, strlen(hex), 0, &pm) != 0 ||
            sscanf((const char *)pm.text, "(%d:%d)", &id, &part) != 2 || id < 0 || id >= n_cmds ||
            part < 1 || part > MAX_PARTS) {
            pthread_mutex_unlock(&e->sim.mu);
            h_fail("the network got an SMS that is none of ours: %s", hex);
        }
        cmds[id].sent[part - 1]++;
    }
    pthread_mutex_unlock(&e->sim.mu);
}

static bool all_answered(void)
{
    for (int i = 0; i < n_cmds; i++)
        if (cmds[i].results == 0)
            return false;
    return true;
}

static bool all_published(void)
{
    for (int i = 0; i < n_ins; i++)
        if (ins[i].published == 0)
            return false;
    return true;
}

static void test_kill_at_random_moments(void **state)
{
    struct h_env *e = *state;
    static const char *const args[] = {"--capacity", "60", "--cmgs-ms", "30", NULL};
    const struct h_env_opts o = {
        .sim_args = args,
        .config = "\"sms\":{\"rate_per_hour\":100000}",
    };
    const char *k = getenv("M2M_CRASH_KILLS");
    const char *s = getenv("M2M_CRASH_SEED");
    int kills = k ? atoi(k) : 20;
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);

    fprintf(stderr, "crash test: %d kills, seed %llu (M2M_CRASH_SEED=%llu repeats it)\n", kills,
            (unsigned long long)seed, (unsigned long long)seed);
    rng = seed * 2654435761u + 1;
    n_cmds = n_ins = 0;
    memset(cmds, 0, sizeof cmds);
    memset(ins, 0, sizeof ins);
    h_env_up(e, &o);

    for (int round = 0; round < kills; round++) {
        int nc = 1 + (int)(rnd() % 3);
        for (int i = 0; i < nc; i++)
            send_command(e);
        if (rnd() % 2)
            send_incoming(e);
        collect_until(e, now_ms() + (int64_t)(rnd() % 1200));
        h_bridge_kill(&e->bridge);
        h_bridge_start(&e->bridge, &e->broker, &e->sim, e->base, o.config);
    }

    /* The last run stays up: every command answered, every SMS published,
     * the SIM emptied. */
    int64_t deadline = now_ms() + h_ms(120000);
    while (now_ms() < deadline && !(all_answered() && all_published() &&
                                    h_sim_count(&e->sim) == 0))
        collect_until(e, now_ms() + 500);
    collect_until(e, now_ms() + 1000); /* a late repeat would show here */
    count_sent(e);

    int missing = 0, twice_answered = 0, sent_twice = 0, sent_once = 0, interrupted = 0,
        wrong = 0, in_lost = 0, in_repeats = 0, in_id_differs = 0;
    for (int i = 0; i < n_cmds; i++) {
        struct cmd *c = &cmds[i];
        int total = 0;
        for (int p = 0; p < c->parts; p++) {
            total += c->sent[p];
            if (c->sent[p] > 1)
                sent_twice++;
        }
        missing += c->results == 0;
        twice_answered += c->results > 1;
        if (c->results == 0)
            continue;
        if (c->ok) {
            bool once = true;
            for (int p = 0; p < c->parts; p++)
                once = once && c->sent[p] == 1;
            sent_once += once;
            if (!once) {
                fprintf(stderr, "command %d: ok, but parts sent %d/%d/%d\n", i, c->sent[0],
                        c->sent[1], c->sent[2]);
                wrong++;
            }
        } else if (strcmp(c->code, "unavailable") == 0 && c->interrupted) {
            interrupted++;
            int confirmed = c->parts_sent < 0 ? 0 : c->parts_sent;
            for (int p = 0; p < c->parts; p++) {
                bool fine = p < confirmed ? c->sent[p] == 1 : p == confirmed ? c->sent[p] <= 1
                                                                                : c->sent[p] == 0;
                if (!fine) {
                    fprintf(stderr, "command %d: unavailable with parts_sent %d, part %d sent %d\n",
                            i, c->parts_sent, p + 1, c->sent[p]);
                    wrong++;
                }
            }
        } else if (total > 0) {
            fprintf(stderr, "command %d: error %s, yet %d part(s) went out\n", i, c->code, total);
            wrong++;
        }
    }
    for (int i = 0; i < n_ins; i++) {
        in_lost += ins[i].published == 0;
        in_repeats += ins[i].published > 1 ? ins[i].published - 1 : 0;
        in_id_differs += ins[i].id_differs;
    }
    long left_on_sim = h_sim_count(&e->sim);
    fprintf(stderr,
            "crash test: kills %d, commands %d, sent once %d, interrupted (unavailable) %d, "
            "results missing %d, answered twice %d, parts sent twice %d, inconsistent %d; "
            "incoming %d, lost %d, repeats %d (message_id differing %d), left on the SIM %ld\n",
            kills, n_cmds, sent_once, interrupted, missing, twice_answered, sent_twice, wrong,
            n_ins, in_lost, in_repeats, in_id_differs, left_on_sim);
    if (missing || sent_twice || wrong || in_lost || in_id_differs || left_on_sim)
        h_fail("the promises did not hold (seed %llu)", (unsigned long long)seed);
    H_PASS(e);
}

/* Copies of the SMS to `to` the simulated network got so far. */
static int sent_to(struct h_env *e, const char *to)
{
    int n = 0;

    pthread_mutex_lock(&e->sim.mu);
    for (size_t i = 0; i < e->sim.n; i++) {
        char hex[900];
        int mr;
        struct pdu_msg pm;
        n += sscanf(e->sim.lines[i], "sent %d %899s", &mr, hex) == 2 &&
             pdu_decode(hex, strlen(hex), 0, &pm) == 0 && strcmp(pm.addr, to) == 0;
    }
    pthread_mutex_unlock(&e->sim.mu);
    return n;
}

/* An SMS to three recipients; the bridge killed right after the first
 * one's PDU went over the line (the module answers +CMGS 1.5 s later, so
 * the second cannot have begun). After the restart the first is reported
 * unavailable and not sent again; the other two are sent. */
static void test_kill_between_recipients(void **state)
{
    static const char *const args[] = {"--cmgs-ms", "1500", NULL};
    static const char *const rcpt[] = {TO, "+493012345678", "8888"};
    const struct h_env_opts o = {
        .sim_args = args,
        .config = "\"sms\":{\"allow_to\":[\"*\",\"8888\"]}",
    };
    struct h_env *e = *state;
    char line[1024];

    h_env_up(e, &o);
    h_mqtt_publish(&e->mqtt, e->t_send,
                   "{\"id\":\"k\",\"to\":[\"" TO "\",\"+493012345678\",\"8888\"],\"text\":\"once\"}",
                   1, false);
    h_sim_wait_line(&e->sim, "rx-data ", line, sizeof line, H_TIMEOUT_MS);
    h_bridge_kill(&e->bridge);
    /* The module still sends it: the network has recipient 1's SMS. */
    h_sim_wait_line(&e->sim, "sent ", line, sizeof line, H_TIMEOUT_MS);
    assert_int_equal(sent_to(e, rcpt[0]), 1);
    assert_int_equal(sent_to(e, rcpt[1]), 0);

    h_env_start_bridge(e);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, e->t_result, H_TIMEOUT_MS);
    h_json_str_eq(r, "id", "k");
    h_json_bool_eq(r, "ok", false);
    h_json_str_eq(h_json_obj(r, "error"), "code", "unavailable");
    cJSON *rs = h_json_arr(r, "recipients");
    assert_int_equal(cJSON_GetArraySize(rs), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *ri = cJSON_GetArrayItem(rs, i);
        h_json_str_eq(ri, "to", rcpt[i]);
        h_json_bool_eq(ri, "ok", i > 0);
    }
    cJSON *err = h_json_obj(cJSON_GetArrayItem(rs, 0), "error");
    h_json_str_eq(err, "code", "unavailable");
    if (!strstr(h_json_str(err, "message"), "not sent again"))
        h_fail("recipient 1's error does not say it is not sent again: %s",
               h_json_str(err, "message"));
    h_json_int_eq(cJSON_GetArrayItem(rs, 2), "parts", 1);
    cJSON_Delete(r);

    /* The result came after the last SMS's +CMGS: every `sent` is in. */
    for (int i = 0; i < 3; i++)
        if (sent_to(e, rcpt[i]) != 1)
            h_fail("recipient %d (%s) got %d copies, expected 1", i + 1, rcpt[i],
                   sent_to(e, rcpt[i]));
    H_PASS(e);
}

/* A command queued behind a slow network scan has not reached the modem
 * when the bridge is killed: after the restart it runs (the scan, which
 * had, is answered unavailable). An invalid request on the same topic
 * after it, answered at once, says the bridge has taken (and journaled)
 * the command. */
static void kill_with_queued(struct h_env *e, const char *suffix, const char *payload,
                             const char *invalid)
{
    char t[160];

    h_sim_cmd_ok(&e->sim, "scan-ms 3000", NULL, 0);
    snprintf(t, sizeof t, "%s/network/scan", e->base);
    h_mqtt_publish(&e->mqtt, t, "{\"id\":\"s\"}", 1, false);
    h_sim_wait_line(&e->sim, "rx AT+COPS=?", NULL, 0, H_TIMEOUT_MS);
    snprintf(t, sizeof t, "%s/%s", e->base, suffix);
    h_mqtt_publish(&e->mqtt, t, payload, 1, false);
    h_mqtt_publish(&e->mqtt, t, invalid, 1, false);
    snprintf(t, sizeof t, "%s/%s/result", e->base, suffix);
    cJSON *r = h_mqtt_wait_json(&e->mqtt, t, H_TIMEOUT_MS);
    h_json_str_eq(r, "id", "bad");
    cJSON_Delete(r);
    h_bridge_kill(&e->bridge);

    h_env_start_bridge(e);
    r = h_mqtt_wait_json(&e->mqtt, t, H_TIMEOUT_MS * 2);
    h_json_str_eq(r, "id", "q");
    h_json_bool_eq(r, "ok", true);
    cJSON_Delete(r);
}

static void test_kill_with_a_play_queued(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &(struct h_env_opts){ 0 });
    h_sim_cmd_ok(&e->sim, "file-put c:/x.amr 2321414D520A", NULL, 0);
    kill_with_queued(e, "audio/play", "{\"id\":\"q\",\"file\":\"c:/x.amr\"}",
                     "{\"id\":\"bad\",\"file\":\"x\"}");
    assert_int_equal(h_sim_saw(&e->sim, "rx AT+CCMXPLAY=\"c:/x.amr\""), 1);
    H_PASS(e);
}

static void test_kill_with_a_dial_queued(void **state)
{
    struct h_env *e = *state;

    h_env_up(e, &(struct h_env_opts){ 0 });
    kill_with_queued(e, "call/dial", "{\"id\":\"q\",\"to\":\"" TO "\"}",
                     "{\"id\":\"bad\",\"to\":\"x\"}");
    assert_int_equal(h_sim_saw(&e->sim, "rx ATD"), 1);
    H_PASS(e);
}

int main(void)
{
    h_init_filter();
#define T(f) cmocka_unit_test_setup_teardown(f, h_env_setup, h_env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_kill_at_random_moments),
        T(test_kill_between_recipients),
        T(test_kill_with_a_play_queued),
        T(test_kill_with_a_dial_queued),
    };
    return cmocka_run_group_tests_name("integration_crash", tests, NULL, NULL);
}
