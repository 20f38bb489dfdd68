/* Integration test harness: a real mosquitto, the A7670 simulator and the
 * bridge binary, driven from cmocka tests.
 *
 * Nothing here sleeps for a fixed time: every wait is "until event X",
 * bounded by a deadline, and a timeout fails the current cmocka test with a
 * message saying what was awaited (and, through h_env_down, the tails of
 * the bridge, simulator and broker logs).
 *
 * Functions that can fail the test are macros that pass the caller's
 * __FILE__/__LINE__, so a failure points at the test line, not at here.
 * They must be called from the test's thread (cmocka longjmps out).
 *
 * Each component works in its own mkdtemp directory under $TMPDIR (or
 * /tmp): m2m-broker-XXXXXX, m2m-sim-XXXXXX, m2m-bridge-XXXXXX. They are
 * removed when a test passes and kept (paths printed) when it fails or when
 * M2M_IT_KEEP=1. M2M_IT_TIMEOUT_SCALE=N multiplies every deadline (for
 * sanitizer or valgrind builds). */
#ifndef M2M_IT_HARNESS_H
#define M2M_IT_HARNESS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

/* Default deadlines (milliseconds, before M2M_IT_TIMEOUT_SCALE). */
#define H_TIMEOUT_MS 10000      /* one MQTT message, one sim event */
#define H_READY_TIMEOUT_MS 30000 /* bridge start until availability+status ready */

/* ------------------------------------------------------------------ */
/* Broker                                                               */

struct h_broker {
    int port;
    char uri[64];               /* "mqtt://127.0.0.1:<port>" */
    char dir[256];              /* mosquitto.conf, mosquitto.db, mosquitto.log */
    pid_t pid;                  /* 0 when not running */
    bool auth;                  /* h_broker_start_auth: no anonymous clients */
};

/* Picks a free loopback port, writes mosquitto.conf (persistence on in dir,
 * so h_broker_restart keeps persistent sessions, their subscriptions and
 * queued QoS 1 messages, and retained messages), starts mosquitto and
 * waits until a TCP connect succeeds. */
#define h_broker_start(b) h_broker_start_at(__FILE__, __LINE__, (b))
/* SIGTERM (mosquitto writes its database on the way out), bounded wait,
 * SIGKILL fallback. */
#define h_broker_stop(b) h_broker_stop_at(__FILE__, __LINE__, (b))
/* Starts it again on the same port with the same directory. */
#define h_broker_restart(b) h_broker_restart_at(__FILE__, __LINE__, (b))

/* Same, for a broker that refuses anonymous clients and knows one user
 * (password_file, written by mosquitto_passwd). */
#define h_broker_start_auth(b, user, password) \
    h_broker_start_auth_at(__FILE__, __LINE__, (b), (user), (password))

void h_broker_start_at(const char *file, int line, struct h_broker *b);
void h_broker_start_auth_at(const char *file, int line, struct h_broker *b, const char *user,
                            const char *password);
void h_broker_stop_at(const char *file, int line, struct h_broker *b);
void h_broker_restart_at(const char *file, int line, struct h_broker *b);
/* Teardown: stops without asserting, removes dir unless keep. */
void h_broker_cleanup(struct h_broker *b, bool keep);

/* ------------------------------------------------------------------ */
/* Simulator                                                            */

struct h_sim {
    pid_t pid;
    int in_fd;                  /* its stdin */
    int out_fd;                 /* its stdout */
    char dir[256];
    char link[300];             /* <dir>/modem: what the bridge opens */
    char pty[256];              /* the last `pty <path>` */
    pthread_t reader;
    bool reader_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **lines;               /* every stdout line, in order */
    bool *consumed;             /* taken by a wait or a command reply */
    size_t n, cap;
    bool eof;
};

/* Starts the simulator with --link <dir>/modem plus extra_args (NULL or a
 * NULL-terminated list) and waits for its `pty <path>` line and the link. */
#define h_sim_start(s, extra_args) h_sim_start_at(__FILE__, __LINE__, (s), (extra_args))
/* Writes cmd, waits for the `ok ...` / `error ...` line. reply (may be NULL)
 * gets what follows "ok" / "error" (without the space). 0 for ok, -1 for
 * error. Fails the test on timeout. */
#define h_sim_cmd(s, cmd, reply, size) h_sim_cmd_at(__FILE__, __LINE__, (s), (cmd), (reply), (size))
/* Same, and fails the test unless the answer is ok. */
#define h_sim_cmd_ok(s, cmd, reply, size) \
    h_sim_cmd_ok_at(__FILE__, __LINE__, (s), (cmd), (reply), (size))
/* `count` -> the number. */
#define h_sim_count(s) h_sim_count_at(__FILE__, __LINE__, (s))
/* Waits for the first line (of all lines ever seen) that starts with
 * prefix and was not yet taken by an earlier wait; takes it. out (may be
 * NULL) gets the whole line. Returns the line's index. Event queue
 * semantics: two waits for "sent " take two different lines. */
#define h_sim_wait_line(s, prefix, out, size, timeout_ms) \
    h_sim_wait_line_at(__FILE__, __LINE__, (s), (prefix), (out), (size), (timeout_ms))
/* Same, among lines at index >= from (see h_sim_mark), for any of the
 * NULL-terminated prefixes. */
#define h_sim_wait_any(s, from, prefixes, out, size, timeout_ms) \
    h_sim_wait_any_at(__FILE__, __LINE__, (s), (from), (prefixes), (out), (size), (timeout_ms))

void h_sim_start_at(const char *file, int line, struct h_sim *s, const char *const *extra_args);
int h_sim_cmd_at(const char *file, int line, struct h_sim *s, const char *cmd, char *reply,
                 size_t size);
void h_sim_cmd_ok_at(const char *file, int line, struct h_sim *s, const char *cmd, char *reply,
                     size_t size);
long h_sim_count_at(const char *file, int line, struct h_sim *s);
size_t h_sim_wait_line_at(const char *file, int line, struct h_sim *s, const char *prefix,
                          char *out, size_t size, int timeout_ms);
size_t h_sim_wait_any_at(const char *file, int line, struct h_sim *s, size_t from,
                         const char *const *prefixes, char *out, size_t size, int timeout_ms);

/* Non-failing queries over ALL lines seen so far (taken or not). */
size_t h_sim_mark(struct h_sim *s);                 /* current number of lines */
size_t h_sim_saw(struct h_sim *s, const char *prefix); /* lines starting with prefix */
size_t h_sim_saw_since(struct h_sim *s, size_t from, const char *prefix);
/* Prints the last n lines to stderr. */
void h_sim_dump(struct h_sim *s, size_t n);
/* `quit`, bounded wait, SIGKILL fallback; no assertion. */
void h_sim_stop(struct h_sim *s);
void h_sim_cleanup(struct h_sim *s, bool keep);

/* ------------------------------------------------------------------ */
/* Bridge                                                               */

struct h_bridge {
    pid_t pid;                  /* 0 when not running */
    char dir[256];
    char config_path[300];      /* <dir>/config.json */
    char log_path[300];         /* <dir>/bridge.log: stderr and stdout */
    char state_dir[300];        /* <dir>/state */
    char base[128];
    int status;                 /* waitpid status of the last exit */
    int starts;
    uid_t uid;                  /* set before the first start: run the bridge as this
                                 * user (and group of that number), which gets its
                                 * directory; needs a root test. 0: as the test */
};

/* Writes <dir>/config.json = {"state_dir":"<dir>/state", <config_json_extra>}
 * (extra: NULL, "" or members like "\"sms\":{\"max_parts\":2}") and
 * execs the bridge with -c <file> -p <sim link> -H <broker uri> -t <base>
 * -l debug (sim NULL: no -p, base NULL: no -t, as with "modems" in the
 * config). A second start (after stop/kill) reuses dir, config and
 * state_dir, and appends to the log. Does not wait for readiness: see
 * h_wait_ready. */
#define h_bridge_start(br, broker, sim, base, extra) \
    h_bridge_start_at(__FILE__, __LINE__, (br), (broker), (sim), (base), (extra))
/* SIGTERM; fails unless it exits with status 0 within 10 s. */
#define h_bridge_stop(br) h_bridge_stop_at(__FILE__, __LINE__, (br))
/* SIGKILL and reap (restart tests). */
#define h_bridge_kill(br) h_bridge_kill_at(__FILE__, __LINE__, (br))

void h_bridge_start_at(const char *file, int line, struct h_bridge *br,
                       const struct h_broker *broker, const struct h_sim *sim, const char *base,
                       const char *config_json_extra);
void h_bridge_stop_at(const char *file, int line, struct h_bridge *br);
void h_bridge_kill_at(const char *file, int line, struct h_bridge *br);
/* Not yet exited (reaps it if it has). */
bool h_bridge_running(struct h_bridge *br);
/* Prints the last n lines of the bridge log to stderr. */
void h_bridge_dump_log(const struct h_bridge *br, size_t n);
/* Lines of the bridge log (so far) that contain text. */
int h_bridge_log_count(const struct h_bridge *br, const char *text);
/* The number (from 1) of the first line of the bridge log that contains
 * text; 0 when none does (yet): for what the bridge did in which order. */
int h_bridge_log_line(const struct h_bridge *br, const char *text);
/* Waits until at least count lines of the bridge log contain text; fails
 * the test after timeout_ms. */
#define h_bridge_wait_log(br, text, count, timeout_ms) \
    h_bridge_wait_log_at(__FILE__, __LINE__, (br), (text), (count), (timeout_ms))
void h_bridge_wait_log_at(const char *file, int line, const struct h_bridge *br,
                          const char *text, int count, int timeout_ms);
void h_bridge_cleanup(struct h_bridge *br, bool keep);

/* ------------------------------------------------------------------ */
/* MQTT test client (paho MQTTAsync, the library the bridge links)      */

struct h_msg {
    char *topic;
    char *payload;              /* NUL-terminated copy; len excludes the NUL */
    size_t len;
    int qos;
    bool retained;
    char *correlation;          /* MQTT 5 Correlation Data (NUL-terminated copy) or NULL */
    size_t correlation_len;
    struct h_msg *next;
};

#define H_MQTT_MAX_SUBS 16

struct h_mqtt {
    void *cli;                  /* MQTTAsync */
    char uri[64];
    char client_id[64];
    bool clean;
    int mqtt_version;           /* 4 (3.1.1) or 5 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool inited;
    bool connected;
    bool session_present;
    struct h_msg *head, *tail;  /* not yet taken, arrival order */
    char *subs[H_MQTT_MAX_SUBS];
    size_t n_subs;
    /* Metadata of the last message a wait returned. */
    bool last_retained;
    int last_qos;
    char last_correlation[256]; /* "" when the message had none */
};

/* Connects (MQTT 3.1.1), bounded; retries while the broker refuses. */
#define h_mqtt_connect(c, uri, client_id, clean) \
    h_mqtt_connect_at(__FILE__, __LINE__, (c), (uri), (client_id), (clean), 4)
#define h_mqtt_connect5(c, uri, client_id, clean) \
    h_mqtt_connect_at(__FILE__, __LINE__, (c), (uri), (client_id), (clean), 5)
/* QoS 1 subscription; waits for the SUBACK and checks the granted QoS. */
#define h_mqtt_subscribe(c, topic) h_mqtt_subscribe_at(__FILE__, __LINE__, (c), (topic))
/* Publishes a NUL-terminated payload (NULL: zero length); QoS 1/2 wait for
 * the broker's acknowledgement. */
#define h_mqtt_publish(c, topic, payload, qos, retain) \
    h_mqtt_publish_at(__FILE__, __LINE__, (c), (topic), (payload), (payload) ? strlen(payload) : 0, \
                      (qos), (retain))
#define h_mqtt_publish_len(c, topic, payload, len, qos, retain) \
    h_mqtt_publish_at(__FILE__, __LINE__, (c), (topic), (payload), (len), (qos), (retain))
/* MQTT 5 clients only: a QoS 1 request with a Response Topic and
 * Correlation Data (correlation may be NULL). */
#define h_mqtt_request5(c, topic, payload, response_topic, correlation) \
    h_mqtt_request5_at(__FILE__, __LINE__, (c), (topic), (payload), (response_topic), (correlation))
/* After the broker went away: reconnects with the same client id and clean
 * flag, bounded; re-subscribes unless the broker kept the session. */
#define h_mqtt_reconnect(c, timeout_ms) h_mqtt_reconnect_at(__FILE__, __LINE__, (c), (timeout_ms))
/* Takes the next message on exactly this topic (arrival order). out gets
 * the payload (truncated to size-1, NUL-terminated). Returns its length. */
#define h_mqtt_wait(c, topic, out, size, timeout_ms) \
    h_mqtt_wait_at(__FILE__, __LINE__, (c), (topic), (out), (size), (timeout_ms))
/* Takes the next message on topic and parses it (fails on invalid JSON).
 * The caller cJSON_Delete()s it. */
#define h_mqtt_wait_json(c, topic, timeout_ms) \
    h_mqtt_wait_json_at(__FILE__, __LINE__, (c), (topic), (timeout_ms))
/* Takes messages on topic until one equals payload (the skipped ones are
 * gone). */
#define h_mqtt_wait_payload(c, topic, payload, timeout_ms) \
    h_mqtt_wait_payload_at(__FILE__, __LINE__, (c), (topic), (payload), (timeout_ms))
/* Takes messages on topic until one is a JSON object whose string member
 * key equals value; returns it (caller deletes). */
#define h_mqtt_wait_json_where(c, topic, key, value, timeout_ms) \
    h_mqtt_wait_json_where_at(__FILE__, __LINE__, (c), (topic), (key), (value), (timeout_ms))

void h_mqtt_connect_at(const char *file, int line, struct h_mqtt *c, const char *uri,
                       const char *client_id, bool clean, int mqtt_version);
void h_mqtt_subscribe_at(const char *file, int line, struct h_mqtt *c, const char *topic);
void h_mqtt_publish_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                       const void *payload, size_t len, int qos, bool retain);
void h_mqtt_request5_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                        const char *payload, const char *response_topic, const char *correlation);
void h_mqtt_reconnect_at(const char *file, int line, struct h_mqtt *c, int timeout_ms);
size_t h_mqtt_wait_at(const char *file, int line, struct h_mqtt *c, const char *topic, char *out,
                      size_t size, int timeout_ms);
cJSON *h_mqtt_wait_json_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                           int timeout_ms);
void h_mqtt_wait_payload_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                            const char *payload, int timeout_ms);
cJSON *h_mqtt_wait_json_where_at(const char *file, int line, struct h_mqtt *c, const char *topic,
                                 const char *key, const char *value, int timeout_ms);
/* Non-failing: takes the next message on topic within timeout_ms, or NULL.
 * The caller frees it with h_msg_free. */
struct h_msg *h_mqtt_take(struct h_mqtt *c, const char *topic, int timeout_ms);
void h_msg_free(struct h_msg *m);
/* Messages queued on topic, not yet taken. */
size_t h_mqtt_pending(struct h_mqtt *c, const char *topic);
void h_mqtt_disconnect(struct h_mqtt *c);

/* ------------------------------------------------------------------ */
/* JSON assertions (fail the test with the member's path and the JSON)  */

#define h_json_obj(o, key) h_json_get_at(__FILE__, __LINE__, (o), (key), cJSON_Object)
#define h_json_arr(o, key) h_json_get_at(__FILE__, __LINE__, (o), (key), cJSON_Array)
#define h_json_str(o, key) h_json_str_at(__FILE__, __LINE__, (o), (key))
#define h_json_int(o, key) h_json_int_at(__FILE__, __LINE__, (o), (key))
#define h_json_bool(o, key) h_json_bool_at(__FILE__, __LINE__, (o), (key))
#define h_json_str_eq(o, key, want) h_json_str_eq_at(__FILE__, __LINE__, (o), (key), (want))
#define h_json_int_eq(o, key, want) h_json_int_eq_at(__FILE__, __LINE__, (o), (key), (want))
#define h_json_bool_eq(o, key, want) h_json_bool_eq_at(__FILE__, __LINE__, (o), (key), (want))

cJSON *h_json_get_at(const char *file, int line, const cJSON *o, const char *key, int type);
const char *h_json_str_at(const char *file, int line, const cJSON *o, const char *key);
long long h_json_int_at(const char *file, int line, const cJSON *o, const char *key);
bool h_json_bool_at(const char *file, int line, const cJSON *o, const char *key);
void h_json_str_eq_at(const char *file, int line, const cJSON *o, const char *key, const char *want);
void h_json_int_eq_at(const char *file, int line, const cJSON *o, const char *key, long long want);
void h_json_bool_eq_at(const char *file, int line, const cJSON *o, const char *key, bool want);
/* o[key] is the JSON value want_json, type included (1 is not "1"). */
#define h_json_eq(o, key, want_json) h_json_eq_at(__FILE__, __LINE__, (o), (key), (want_json))
void h_json_eq_at(const char *file, int line, const cJSON *o, const char *key,
                  const char *want_json);

/* Fails the current test with a formatted message, reported at file:line. */
void h_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define h_fail(...) h_fail_at(__FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* A whole environment: broker + simulator + subscriber + bridge        */

struct h_env_opts {
    const char *config;               /* h_bridge_start's config_json_extra */
    const char *const *sim_args;      /* extra simulator arguments */
    bool persistent_client;           /* subscriber with clean session false */
    bool no_bridge;                   /* do not start the bridge (yet) */
};

struct h_env {
    struct h_broker broker;
    struct h_sim sim;
    struct h_sim sim2;                /* a second modem, when a test starts one */
    struct h_bridge bridge;
    struct h_mqtt mqtt;               /* subscribed to "<base>/#", QoS 1 */
    char base[64];                    /* "m2mtest" */
    char t_avail[128], t_status[128], t_info[128];
    char t_send[128], t_result[128], t_received[128];
    struct h_env_opts opts;           /* copied by h_env_up (strings borrowed) */
    bool passed;                      /* set by H_PASS; else teardown dumps logs */
};

/* cmocka setup/teardown: allocate a zeroed h_env in *state; tear it down
 * (processes stopped, logs dumped unless passed, dirs kept on failure;
 * see h_env_down for how teardown itself can fail a test). */
int h_env_setup(void **state);
int h_env_teardown(void **state);

/* Broker, simulator, subscriber on <base>/#, then (unless no_bridge) the
 * bridge and h_wait_ready. */
#define h_env_up(e, opts) h_env_up_at(__FILE__, __LINE__, (e), (opts))
/* Starts the bridge of an env made with no_bridge (or after a stop/kill),
 * waits until ready. */
#define h_env_start_bridge(e) h_env_start_bridge_at(__FILE__, __LINE__, (e))
/* Takes <base>/availability messages until "online" and <base>/status
 * until "state":"ready": a bridge (re)started. */
#define h_wait_ready(e) h_wait_ready_at(__FILE__, __LINE__, (e))
/* Takes <base>/status messages until "state":"ready": the modem is back
 * (B/availability follows the bridge's connection, not the modem). */
#define h_wait_modem_ready(e) h_wait_modem_ready_at(__FILE__, __LINE__, (e))

void h_env_up_at(const char *file, int line, struct h_env *e, const struct h_env_opts *opts);
void h_env_start_bridge_at(const char *file, int line, struct h_env *e);
void h_wait_ready_at(const char *file, int line, struct h_env *e);
void h_wait_modem_ready_at(const char *file, int line, struct h_env *e);
/* Stops everything; dumps logs when !e->passed. -1 (the test then fails
 * in cmocka's teardown) when the bridge, stopped here with SIGTERM, did not
 * exit with status 0, or its log has a sanitizer report; else 0. */
int h_env_down(struct h_env *e);

/* A fresh subscriber's first message on topic, as JSON: fails the test
 * unless it comes, is retained and is JSON. */
#define h_retained_json(e, topic) h_retained_json_at(__FILE__, __LINE__, (e), (topic))
cJSON *h_retained_json_at(const char *file, int line, struct h_env *e, const char *topic);

/* Publishes B/stats/get {"id":id} and returns its result (ok, with the
 * figures of B/stats beside id and ok). */
#define h_stats_get(e, id) h_stats_get_at(__FILE__, __LINE__, (e), (id))
cJSON *h_stats_get_at(const char *file, int line, struct h_env *e, int id);

/* Runs `modem2mqtt --health -c <the bridge's config>`: its exit status,
 * the first line of its output in out. */
int h_run_health(struct h_env *e, char *out, size_t size);
/* The state --health reports changes right after the event a test waits
 * for (or, for the broker, with no event to wait for): retries until it
 * exits with code and says text, bounded; else fails the test. */
#define h_wait_health(e, code, text) h_wait_health_at(__FILE__, __LINE__, (e), (code), (text))
void h_wait_health_at(const char *file, int line, struct h_env *e, int want_code,
                      const char *want_text);

/* Commands and their results under the bridge's base topic (e->base):
 * h_command publishes payload on B/<suffix> (QoS 1, not retained);
 * h_result takes the next message on B/<suffix>/result, which must be
 * QoS 1 and not retained (the caller deletes it); h_expect_ok takes one
 * that is ok; h_expect_error one that failed with code, its message
 * holding want (NULL: any message, but not an empty one). */
void h_command(struct h_env *e, const char *suffix, const char *payload);
#define h_result(e, suffix) h_result_at(__FILE__, __LINE__, (e), (suffix))
cJSON *h_result_at(const char *file, int line, struct h_env *e, const char *suffix);
#define h_expect_ok(e, suffix) h_expect_ok_at(__FILE__, __LINE__, (e), (suffix))
void h_expect_ok_at(const char *file, int line, struct h_env *e, const char *suffix);
#define h_expect_error(e, suffix, code, want) \
    h_expect_error_at(__FILE__, __LINE__, (e), (suffix), (code), (want))
void h_expect_error_at(const char *file, int line, struct h_env *e, const char *suffix,
                       const char *code, const char *want);

/* Marks the test as passed: put it as the test's last statement. */
#define H_PASS(e) ((e)->passed = true)

/* Call first in main(): M2M_IT_FILTER=<pattern> runs only the matching
 * tests (cmocka_set_test_filter; '*' and '?' wildcards). */
void h_init_filter(void);

/* Scaled deadline. */
int h_ms(int timeout_ms);
/* snprintf into a fresh malloc'd string (fails the test on OOM). */
char *h_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
