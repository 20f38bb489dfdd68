/* The bridge: routing, results, events. See app.h.
 *
 * Command path: paho thread -> persist (journal, fsync) -> PUBACK; loop
 * thread -> dispatch -> service (started: journal mark right before the
 * bytes go to the modem) -> finish: the result is stored in the journal,
 * then published on T/result (and on the MQTT 5 Response Topic) once the
 * broker connection is up -> the broker's PUBACK -> journal record done.
 * A result still unacknowledged at a crash is published after the restart.
 *
 * Commands that arrive while the modem is still starting (port just
 * opened, bring-up running) are held, not refused: after a restart the
 * broker hands over the commands it queued at once, before the modem
 * answered its first AT. Once the modem settles they run, or get
 * "unavailable" when it did not come up. */
#include "app.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/health.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/stats.h"
#include "core/utf8.h"
#include "core/loop.h"
#include "core/notify.h"
#include "core/refmap.h"
#include "modem/call.h"
#include "modem/cmqtt.h"
#include "modem/modem.h"
#include "modem/sms.h"
#include "modem/status.h"
#include "modem/ussd.h"
#include "mqtt/hass.h"
#include "version.h"
#include "mqtt/json.h"
#include "mqtt/link.h"

#define MAX_HELD 64
/* Messages from the remote broker on their way to the local one (waiting
 * in the link or for the broker's PUBACK), in bytes published. The module
 * cannot be told to pause, so beyond this a message is dropped, counted,
 * and reported on B/error once until the backlog has drained to half. A
 * quarter of the link's own queue: results and events still get in. */
#define REMOTE_BACKLOG_MAX_BYTES (1024u * 1024)
#define RESULT_COMMIT_TRIES 2     /* see commit_fired */
#define RESULT_COMMIT_RETRY_MS 1
#define SETTLE_TIMEOUT_MS 60000   /* longest a command waits for bring-up */
#define TOPIC_MAX 512

struct command;

/* A command's request as its route's parser leaves it. Strings borrow
 * from root, the payload's tree, freed when the handler returns; a
 * handler that needs them later takes the tree (root = NULL) and frees
 * it. */
struct route_req {
    cJSON *root;
    union {
        struct sms_send_req sms;
        struct remote_publish_req publish;   /* its payload_buf: the handler clears it */
        struct {
            const char *topic;
            int qos;
        } subscribe;
        const char *text;         /* call/dial "to", call/dtmf "digits", ussd/send
                                     "code", at/send "command", remote/unsubscribe
                                     "topic" */
        enum json_power_mode power;
    };
};

/* One command topic: its payload is checked by parse (a json_parse_*
 * function of mqtt/json) before handle runs; handle answers the command,
 * now or later (command_finish). */
struct route {
    const char *suffix;           /* after "<base>/" */
    int (*parse)(const cJSON *root, struct route_req *req, struct json_error *err);
    void (*handle)(struct app *a, struct command *cmd, struct route_req *req);
    unsigned flags;
    /* A replayed command begun before a restart: NULL answers it
     * "unavailable" without running it; else handle gets it (cmd->started)
     * and resume says whether some of its work never began (then it
     * waits for the modem like a new command). */
    bool (*resume)(const struct route_req *req, unsigned started);
};
/* Runs whatever the modem's state (else answered "unavailable" while the
 * modem is not ready). */
#define ROUTE_ANY_STATE 1u
/* Needs no modem at all: never held while the modem starts. */
#define ROUTE_NO_MODEM 2u
/* Raw AT: answered "not_allowed" unless allow_raw_at. */
#define ROUTE_RAW_AT 4u

/* A message received (or replayed) and not yet dispatched. */
struct held {
    struct held *next;
    char *topic;
    uint8_t *payload;
    size_t len;
    char *response_topic;
    uint8_t *correlation;
    size_t correlation_len;
    uint64_t seq;
    unsigned started;             /* replayed: its journal started mark (dispatch) */
};

/* A result until the broker acknowledged it; also kept in the journal
 * with its command (seq) so that a crash cannot lose it. */
struct result {
    struct result *next;
    struct app *app;
    uint64_t seq;                 /* 0: the command was not journaled */
    bool in_flight;               /* published, waiting for the PUBACK */
    bool parked;                  /* its publish failed: again at the next connect */
    bool durable;                 /* its journal copy is flushed: may go out */
    char *topic;                  /* <command topic>/result */
    char *payload;
    char *response_topic;         /* MQTT 5 Response Topic, or NULL */
    uint8_t *correlation;
    size_t correlation_len;
};

struct command {
    struct app *app;
    bool pool;                    /* came from the pool: the result names the modem */
    unsigned started;             /* replayed: its journal started mark, else 0 */
    char *result_topic;
    cJSON *id;                    /* a copy, or NULL */
    char *response_topic;
    uint8_t *correlation;
    size_t correlation_len;
    uint64_t seq;
};

struct app {
    const struct config *cfg;
    struct loop *loop;
    struct journal *journal;
    struct refmap *refs;          /* sent SMS by reference, for B/sms/report */
    struct mqtt_link *link;
    struct modem *modem;
    struct sms *sms;
    struct status *status;
    struct cmqtt *cmqtt;          /* remote broker (always there; DISABLED without "remote") */
    uint64_t remote_stop_timer;   /* bounds the CMQTT shutdown sequence */
    uint8_t *remote_ca;           /* remote.ca_file's contents (TLS) */
    size_t remote_ca_len;
    uint8_t *remote_cert;         /* remote.cert_file's contents (TLS client) */
    size_t remote_cert_len;
    uint8_t *remote_key;          /* remote.key_file's: wiped before it is freed */
    size_t remote_key_len;
    struct call *call;
    struct ussd *ussd;
    bool resetting;               /* AT+CRESET accepted; the module not back yet */
    int sig_fd;

    bool settled;                 /* the modem left "starting" at least once */
    uint64_t settle_timer;
    uint64_t commit_timer;        /* flushes the journal's results, then publishes */
    unsigned commit_tries;        /* commit_fired's, for the results waiting now */
    int health_fd;                /* state_dir/health.sock, or -1 */
    struct notify *notify;        /* systemd's NOTIFY_SOCKET, or NULL */
    uint64_t commands;            /* journaled on paho's thread: atomic */
    struct held *held, **held_tail;
    size_t n_held;
    struct result *results;       /* not yet acknowledged by the broker */
    bool results_refused;         /* the link refused one: retried on the next ack */
    size_t remote_backlog;        /* REMOTE_BACKLOG_MAX_BYTES */
    uint64_t remote_dropped;      /* remote messages dropped since the start */
    bool remote_overflow;         /* in an overflow episode: B/error sent */
    bool remote_loss_logged;      /* a publish lost with the connection: logged */
    /* B/error storage_full, once per episode of a full SMS store: waiting
     * for the broker (down, or the publish was lost), or published and
     * waiting for its PUBACK. */
    bool storage_full_due;
    bool storage_full_in_flight;
    char storage_full_why[192];

    struct modem_info info;
    bool have_info;
    struct hass *hass;            /* Home Assistant discovery (mqtt/hass.h) */
    char *last_status;            /* last published B/status, to skip repeats */

    struct stats stats;           /* B/stats and /metrics (core/stats.h) */
    struct stats stats_said;      /* the counters B/stats last published */
    int64_t started_ms;           /* loop_now_ms() at app_new: uptime */
    uint64_t stats_timer;         /* armed by the first change after a publish */
    size_t n_running;             /* commands dispatched, not yet answered */
    bool connected_once, remote_connected_once, in_call;
    enum { POOL_UNKNOWN, POOL_JOINING, POOL_IN, POOL_LEAVING, POOL_OUT } pool;
    uint64_t pool_timer;          /* retries a refused join or leave */
    struct metrics *metrics;      /* metrics.listen, or NULL */
    const char *last_state;       /* status_state() last logged */
};

static void cmd_sms_send(struct app *a, struct command *cmd, struct route_req *req);
static bool sms_cmd_left(const struct route_req *req, unsigned started);
static void cmd_at_send(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_ussd_send(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_modem_power(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_remote_publish(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_remote_subscribe(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_remote_unsubscribe(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_call_dial(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_call_answer(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_call_hangup(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_call_dtmf(struct app *a, struct command *cmd, struct route_req *req);
static void cmd_stats_get(struct app *a, struct command *cmd, struct route_req *req);

/* The parsers of mqtt/json, shaped for the table. */
static int parse_sms(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_sms_send(root, &q->sms, err);
}

static int parse_dial(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_call_dial(root, &q->text, err);
}

static int parse_dtmf(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_dtmf(root, &q->text, err);
}

static int parse_ussd(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_ussd(root, &q->text, err);
}

static int parse_publish(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_remote_publish(root, &q->publish, err);
}

static int parse_subscribe(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_remote_subscribe(root, &q->subscribe.topic, &q->subscribe.qos, err);
}

static int parse_unsubscribe(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_remote_unsubscribe(root, &q->text, err);
}

static int parse_power(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_modem_power(root, &q->power, err);
}

static int parse_at(const cJSON *root, struct route_req *q, struct json_error *err)
{
    return json_parse_at_send(root, &q->text, err);
}

/* Commands without fields (but "id"). */
static int parse_empty(const cJSON *root, struct route_req *q, struct json_error *err)
{
    static const char *const none[] = { NULL };

    (void)q;
    return json_check_fields(root, none, err);
}

/* Every command topic of the contract. Those of later releases answer
 * "unsupported" rather than nothing, so a script never waits in vain. */
static const struct route routes[] = {
    { "sms/send", parse_sms, cmd_sms_send, 0, sms_cmd_left },
    { "call/dial", parse_dial, cmd_call_dial, 0, NULL },
    { "call/answer", parse_empty, cmd_call_answer, 0, NULL },
    { "call/hangup", parse_empty, cmd_call_hangup, 0, NULL },
    { "call/dtmf", parse_dtmf, cmd_call_dtmf, 0, NULL },
    { "ussd/send", parse_ussd, cmd_ussd_send, 0, NULL },
    { "remote/publish", parse_publish, cmd_remote_publish, 0, NULL },
    { "remote/subscribe", parse_subscribe, cmd_remote_subscribe, 0, NULL },
    { "remote/unsubscribe", parse_unsubscribe, cmd_remote_unsubscribe, 0, NULL },
    { "modem/power", parse_power, cmd_modem_power, ROUTE_ANY_STATE, NULL },
    { "at/send", parse_at, cmd_at_send, ROUTE_RAW_AT, NULL },
    { "stats/get", parse_empty, cmd_stats_get, ROUTE_ANY_STATE | ROUTE_NO_MODEM, NULL },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* --- publishing ------------------------------------------------------------- */

static int topic(const struct app *a, const char *suffix, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", a->cfg->mqtt.base_topic, suffix);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Every text payload the bridge publishes (events, results, discovery)
 * passes here, and here only is it made valid UTF-8: module text (an
 * operator name, a caller's number, a response line) can be Latin-1 or
 * garbage, and a JSON text that is not UTF-8 is invalid for every
 * consumer. Raw remote payloads on remote.subscribe[].local do not come
 * here: they go out as received. */
static int publish_text(struct app *a, const char *t, const char *payload, int qos, bool retain,
                        const uint8_t *corr, size_t corr_len, mqtt_link_ack_cb ack, void *ack_ctx)
{
    size_t n = strlen(payload), fixed_len;
    char *fixed = NULL;
    int r;

    if (!utf8_valid((const uint8_t *)payload, n)) {
        fixed_len = utf8_repair((const uint8_t *)payload, n, NULL, 0);
        fixed = malloc(fixed_len + 1);
        if (!fixed)
            return -ENOMEM;
        utf8_repair((const uint8_t *)payload, n, (uint8_t *)fixed, fixed_len);
        fixed[fixed_len] = '\0';
        payload = fixed;
        n = fixed_len;
    }
    r = mqtt_link_publish(a->link, t, payload, n, qos, retain, corr, corr_len, ack, ack_ctx);
    free(fixed);
    return r;
}

static int publish(struct app *a, const char *suffix, const char *payload, int qos, bool retain,
                   mqtt_link_ack_cb ack, void *ack_ctx)
{
    char t[TOPIC_MAX];
    int r = topic(a, suffix, t, sizeof(t));

    if (r < 0)
        return r;
    return publish_text(a, t, payload, qos, retain, NULL, 0, ack, ack_ctx);
}

static void publish_availability(struct app *a)
{
    /* Online means "the modem is there": a vanished device is offline even
     * though the bridge is still connected to the broker. */
    bool online = modem_state(a->modem) != MODEM_CLOSED;

    publish(a, "availability", online ? "online" : "offline", 1, true, NULL, NULL);
}

static const char *status_state(enum modem_state st)
{
    switch (st) {
    case MODEM_CLOSED: return "unavailable";
    case MODEM_PROBING:
    case MODEM_BRINGUP: return "starting";
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "sim_locked";
    case MODEM_NO_SIM: return "no_sim";
    case MODEM_LOW_POWER: return "low_power";
    case MODEM_RESETTING: return "resetting";
    default: return "unavailable";
    }
}

/* B/status "state": a reset stays "resetting" through the module's boot
 * and bring-up, until it is ready (or stops: SIM, no port). */
static const char *app_state(const struct app *a)
{
    enum modem_state st = modem_state(a->modem);

    if (a->resetting && (st == MODEM_PROBING || st == MODEM_BRINGUP || st == MODEM_RESETTING))
        return "resetting";
    return status_state(st);
}

static const char *sim_state(enum modem_state st)
{
    switch (st) {
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "locked";
    case MODEM_NO_SIM: return "absent";
    default: return "unknown";
    }
}

static void add_string_or_null(cJSON *o, const char *key, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* "storage":{"used":N,"total":M}, nulls while unknown (not ready, not read
 * yet, a module without SMS). */
static void add_storage(cJSON *o, const struct status_info *si)
{
    cJSON *st = cJSON_AddObjectToObject(o, "storage");

    if (!st)
        return;
    if (si && si->storage_total > 0) {
        cJSON_AddNumberToObject(st, "used", si->storage_used);
        cJSON_AddNumberToObject(st, "total", si->storage_total);
    } else {
        cJSON_AddNullToObject(st, "used");
        cJSON_AddNullToObject(st, "total");
    }
}

static void publish_status(struct app *a)
{
    enum modem_state st = modem_state(a->modem);
    const struct status_info *si = status_get(a->status);
    bool ready = st == MODEM_READY;
    cJSON *o = cJSON_CreateObject(), *sig;
    char *s;

    if (!o)
        return;
    cJSON_AddStringToObject(o, "state", app_state(a));
    cJSON_AddStringToObject(o, "sim", sim_state(st));
    /* AT+CFUN=0: the radio is off, so the module is not registered. */
    cJSON_AddStringToObject(o, "registration",
                            ready                      ? status_reg_name(si->reg_stat)
                            : st == MODEM_LOW_POWER    ? "unregistered"
                                                       : "unknown");
    add_string_or_null(o, "operator", ready ? si->operator_name : NULL);
    add_string_or_null(o, "access", ready ? si->access : NULL);
    sig = cJSON_AddObjectToObject(o, "signal");
    if (sig && ready && si->csq >= 0) {
        cJSON_AddNumberToObject(sig, "csq", si->csq);
        if (status_csq_percent(si->csq) >= 0) {
            cJSON_AddNumberToObject(sig, "dbm", status_csq_dbm(si->csq));
            cJSON_AddNumberToObject(sig, "percent", status_csq_percent(si->csq));
        } else {
            cJSON_AddNullToObject(sig, "dbm");
            cJSON_AddNullToObject(sig, "percent");
        }
    } else if (sig) {
        cJSON_AddNullToObject(sig, "csq");
        cJSON_AddNullToObject(sig, "dbm");
        cJSON_AddNullToObject(sig, "percent");
    }
    add_storage(o, ready ? si : NULL);
    cJSON_AddStringToObject(o, "remote", cmqtt_state_name(cmqtt_state(a->cmqtt)));
    /* Why the remote session is down (e.g. "connection refused: bad user
     * name or password (30)"); only while it is. */
    if (cmqtt_reason(a->cmqtt) && cmqtt_state(a->cmqtt) == CMQTT_DISCONNECTED)
        cJSON_AddStringToObject(o, "remote_error", cmqtt_reason(a->cmqtt));
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return;
    if (a->last_status && strcmp(a->last_status, s) == 0) {
        free(s);
        return;
    }
    if (publish(a, "status", s, 1, true, NULL, NULL) == 0) {
        free(a->last_status);
        a->last_status = s;
    } else {
        free(s);
    }
}

static void publish_info(struct app *a)
{
    const struct modem_info *i = &a->info;
    cJSON *o;
    char *s;

    if (!a->have_info || !(o = cJSON_CreateObject()))
        return;
    add_string_or_null(o, "manufacturer", i->manufacturer);
    add_string_or_null(o, "model", i->model);
    add_string_or_null(o, "revision", i->revision);
    add_string_or_null(o, "imei", i->imei);
    add_string_or_null(o, "imsi", i->imsi);
    add_string_or_null(o, "iccid", i->iccid);
    add_string_or_null(o, "number", i->number);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s)
        publish(a, "info", s, 1, true, NULL, NULL);
    free(s);
}

static void count(struct app *a, enum stats_counter c);

static void publish_error_event(struct app *a, const char *code, const char *message)
{
    char *s = json_event_error(code, message, NULL, NULL);

    count(a, STATS_ERRORS);
    if (s)
        publish(a, "error", s, 0, false, NULL, NULL);
    free(s);
}

static void storage_full_acked(void *ctx, int status);

/* QoS 1, so that the PUBACK says the broker has it; a publish lost with
 * the connection is due again at the next connect (a drop between the
 * publish and its PUBACK may deliver it twice: at least once rather than
 * maybe never). */
static void publish_storage_full(struct app *a)
{
    char *s;

    if (!a->storage_full_due || a->storage_full_in_flight || !mqtt_link_connected(a->link))
        return;
    s = json_event_error("storage_full", a->storage_full_why, NULL, NULL);
    if (s && publish(a, "error", s, 1, false, storage_full_acked, a) == 0) {
        a->storage_full_due = false;
        a->storage_full_in_flight = true;
    }
    free(s);
}

static void storage_full_acked(void *ctx, int status)
{
    struct app *a = ctx;

    a->storage_full_in_flight = false;
    if (status == -ECANCELED)
        return;                    /* shutting down */
    /* Lost with the connection: again after the reconnect. A refusal (an
     * ACL) would be refused again and again: logged, not retried. */
    if (status == -ENOTCONN)
        a->storage_full_due = true;
    else if (status < 0)
        log_warn("B/error storage_full refused by the broker: %s", strerror(-status));
    /* Due again, or a new episode began meanwhile: now if connected, else
     * at the next connect. */
    publish_storage_full(a);
}

static void publish_sim_locked(struct app *a)
{
    publish_error_event(a, "sim_locked", "the SIM needs a PIN or PUK (modem.pin)");
}

/* Retained: a dashboard shows the call in progress after its own restart. */
static void publish_call_state(struct app *a, const struct call_state *st)
{
    char *s = st ? call_state_json(st) : NULL;

    if (s)
        publish(a, "call/state", s, 1, true, NULL, NULL);
    free(s);
}

/* --- statistics (B/stats, /metrics) ----------------------------------------- */

/* Published retained on B/stats 60 s after the first change since the last
 * publish, at connect and on B/stats/get: an idle bridge publishes nothing
 * and wakes for nothing (the retained copy stays right, but for uptime_s). */
#define STATS_INTERVAL_MS 60000

/* The counters the app keeps, with those its parts keep. */
static void stats_now(const struct app *a, struct stats *s, struct stats_gauges *g)
{
    *s = a->stats;
    s->counter[STATS_AT_TIMEOUTS] = at_chat_timeouts(modem_chat(a->modem));
    s->counter[STATS_MODEM_REOPENS] = modem_reopens(a->modem);
    g->queue_depth = a->n_held + a->n_running;
    g->journal_pending = a->journal ? journal_pending(a->journal) : 0;
    g->uptime_s = (uint64_t)((loop_now_ms() - a->started_ms) / 1000);
}

static char *stats_payload(const struct app *a)
{
    struct stats s;
    struct stats_gauges g;

    stats_now(a, &s, &g);
    return stats_json(&s, &g);
}

static void publish_stats(struct app *a)
{
    struct stats_gauges g;
    char *s = stats_payload(a);

    stats_now(a, &a->stats_said, &g);
    loop_cancel_timer(a->loop, a->stats_timer);
    a->stats_timer = 0;
    if (s)
        publish(a, "stats", s, 1, true, NULL, NULL);
    free(s);
}

static int64_t stats_fired(void *ctx)
{
    struct app *a = ctx;

    a->stats_timer = 0;
    publish_stats(a);
    return 0;
}

/* Something B/stats shows changed: published within STATS_INTERVAL_MS. */
static void stats_changed(struct app *a)
{
    if (!a->stats_timer)
        loop_add_timer(a->loop, STATS_INTERVAL_MS, stats_fired, a, &a->stats_timer);
}

static void count(struct app *a, enum stats_counter c)
{
    a->stats.counter[c]++;
    stats_changed(a);
}

/* The counters the modem keeps (timeouts, reopens) come with state
 * changes: compared with what B/stats last said. */
static void stats_modem_changed(struct app *a)
{
    struct stats s;
    struct stats_gauges g;

    stats_now(a, &s, &g);
    if (s.counter[STATS_AT_TIMEOUTS] != a->stats_said.counter[STATS_AT_TIMEOUTS] ||
        s.counter[STATS_MODEM_REOPENS] != a->stats_said.counter[STATS_MODEM_REOPENS])
        stats_changed(a);
}

static int render_metrics(void *ctx, char *buf, size_t size)
{
    const struct app *a = ctx;
    struct stats s;
    struct stats_gauges g;

    stats_now(a, &s, &g);
    return stats_prometheus(&s, &g, a->cfg->mqtt.base_topic, buf, size);
}

/* --- commands --------------------------------------------------------------- */

static void command_free(struct command *cmd)
{
    if (!cmd)
        return;
    cmd->app->n_running--;
    free(cmd->result_topic);
    cJSON_Delete(cmd->id);
    free(cmd->response_topic);
    free(cmd->correlation);
    free(cmd);
}

/* --- results: durable until the broker acknowledged them ------------------ */

static void result_free(struct result *r)
{
    if (!r)
        return;
    free(r->topic);
    free(r->payload);
    free(r->response_topic);
    free(r->correlation);
    free(r);
}

/* The journal's copy: topic NUL, response topic NUL ("" for none), u32 LE
 * correlation length, the correlation data, the payload. */
static uint8_t *result_encode(const struct result *r, size_t *len)
{
    size_t tl = strlen(r->topic) + 1, rl = r->response_topic ? strlen(r->response_topic) + 1 : 1;
    size_t pl = strlen(r->payload);
    uint8_t *b = malloc(tl + rl + 4 + r->correlation_len + pl), *p = b;

    if (!b)
        return NULL;
    memcpy(p, r->topic, tl);
    p += tl;
    memcpy(p, r->response_topic ? r->response_topic : "", rl);
    p += rl;
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(r->correlation_len >> (8 * i));
    if (r->correlation_len)
        memcpy(p, r->correlation, r->correlation_len);
    p += r->correlation_len;
    memcpy(p, r->payload, pl);
    *len = tl + rl + 4 + r->correlation_len + pl;
    return b;
}

static struct result *result_decode(const uint8_t *b, size_t len)
{
    struct result *r = calloc(1, sizeof(*r));
    const uint8_t *end = b + len, *t = b, *rt, *p;
    size_t cl = 0;

    if (!r)
        return NULL;
    rt = memchr(t, 0, len);
    p = rt ? memchr(rt + 1, 0, (size_t)(end - rt - 1)) : NULL;
    if (!rt || !p || end - (p + 1) < 4)
        goto bad;
    p++;
    for (int i = 0; i < 4; i++)
        cl |= (size_t)p[i] << (8 * i);
    p += 4;
    if ((size_t)(end - p) < cl)
        goto bad;
    r->topic = strdup((const char *)t);
    if (rt[1])
        r->response_topic = strdup((const char *)rt + 1);
    r->correlation = cl ? malloc(cl) : NULL;
    r->payload = malloc((size_t)(end - p - cl) + 1);
    if (!r->topic || (rt[1] && !r->response_topic) || (cl && !r->correlation) || !r->payload)
        goto bad;
    if (cl)
        memcpy(r->correlation, p, cl);
    r->correlation_len = cl;
    memcpy(r->payload, p + cl, (size_t)(end - p - cl));
    r->payload[end - p - cl] = '\0';
    return r;

bad:
    result_free(r);
    return NULL;
}

static void results_flush(struct app *a);

static void result_unlink(struct app *a, struct result *r)
{
    for (struct result **pp = &a->results; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

static void result_acked(void *ctx, int status)
{
    struct result *r = ctx;
    struct app *a = r->app;

    r->in_flight = false;
    if (status == -ECANCELED)
        return;                 /* shutting down: the journal keeps it */
    /* Dropped only when the broker itself refused it (it would refuse it
     * again); anything else (the connection dropped first) waits for the
     * next connect. */
    if (status == 0 || status == -EACCES || status == -EINVAL || status == -EMSGSIZE ||
        status == -EDQUOT) {
        if (status != 0)
            log_error("command result on %s refused by the broker (%s); dropped", r->topic,
                      strerror(-status));
        /* Answered: a restart must neither run the command nor publish
         * this again. */
        if (r->seq && a->journal)
            journal_done(a->journal, r->seq);
        result_unlink(a, r);
        result_free(r);
    } else {
        r->parked = true;       /* not again and again: at the next connect */
    }
    results_flush(a);
}

/* Publishes what is not in flight; what the link refuses now (not
 * connected, its queue full) waits for the next connect or for an ack of
 * ours (a result's or a remote message's), which means the link has room. */
static void results_flush(struct app *a)
{
    a->results_refused = false;
    for (struct result *r = a->results; r; r = r->next) {
        if (r->in_flight || r->parked || !r->durable)
            continue;
        if (publish_text(a, r->topic, r->payload, 1, false, NULL, 0, result_acked, r) < 0) {
            a->results_refused = true;
            return;
        }
        r->in_flight = true;
        if (r->response_topic &&
            publish_text(a, r->response_topic, r->payload, 1, false, r->correlation,
                         r->correlation_len, NULL, NULL) < 0)
            log_warn("command %s: response not published", r->topic);
    }
}

/* One flush for every result stored since the last, run after the loop
 * pass that finished them, so results finished together share it. Most
 * often it costs nothing: the next command's started mark, written in the
 * same pass, or the flush of a command arriving meanwhile on paho's thread
 * covered them. While commands stream in it waits for the latter, up to
 * RESULT_COMMIT_TRIES times RESULT_COMMIT_RETRY_MS. */
static int64_t commit_fired(void *ctx)
{
    struct app *a = ctx;
    int ret = a->commit_tries++ < RESULT_COMMIT_TRIES ? journal_commit_soon(a->journal)
                                                     : journal_commit(a->journal);

    if (ret == -EAGAIN)
        return RESULT_COMMIT_RETRY_MS;
    a->commit_timer = 0;
    a->commit_tries = 0;
    if (ret < 0)
        log_error("journal: results not flushed; publishing them anyway (a crash now could "
                  "run their commands again)");
    for (struct result *r = a->results; r; r = r->next)
        r->durable = true;
    results_flush(a);
    return 0;
}

static void results_add(struct app *a, struct result *r)
{
    struct result **pp = &a->results;

    r->app = a;
    if (!r->durable && !a->commit_timer &&
        loop_add_timer(a->loop, 0, commit_fired, a, &a->commit_timer) < 0) {
        journal_commit(a->journal);
        r->durable = true;
    }
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;            /* in order: results go out as commands finished */
    results_flush(a);
}

/* Publishes the one result of a command; consumes data. */
static void command_finish(struct command *cmd, cJSON *data, const struct json_error *err)
{
    struct app *a = cmd->app;
    char *s;
    struct result *r;

    /* Which modem of the pool ran it. */
    if (cmd->pool && (data || (data = cJSON_CreateObject())))
        cJSON_AddStringToObject(data, "modem", a->cfg->mqtt.base_topic);
    s = json_result(cmd->id, data, err);
    r = s ? calloc(1, sizeof(*r)) : NULL;
    if (err)
        log_info("command %s: %s: %s", cmd->result_topic, err->code, err->message);
    if (!r) {
        log_error("out of memory; the result on %s is lost", cmd->result_topic);
        free(s);
        command_free(cmd);
        return;
    }
    r->seq = cmd->seq;
    r->durable = true;
    r->payload = s;
    r->topic = cmd->result_topic;
    cmd->result_topic = NULL;
    r->response_topic = cmd->response_topic;
    cmd->response_topic = NULL;
    r->correlation = cmd->correlation;
    r->correlation_len = cmd->correlation_len;
    cmd->correlation = NULL;
    if (r->seq && a->journal) {
        size_t len = 0;
        uint8_t *blob = result_encode(r, &len);

        /* Kept with the command until the broker has it: a crash before
         * that publishes it after the restart, never runs it again. It
         * goes out once flushed (commit_fired). */
        if (!blob || journal_result(a->journal, r->seq, blob, len) < 0)
            log_error("journal: the result on %s is not stored; a crash now would lose it",
                      r->topic);
        else
            r->durable = false;
        free(blob);
    }
    results_add(a, r);
    command_free(cmd);
}

static void finish_error(struct command *cmd, const char *code, const char *message)
{
    struct json_error err = { .cme = -1, .cms = -1 };

    json_error_set(&err, code, "%s", message);
    command_finish(cmd, NULL, &err);
}

/* --- USSD and modem power -------------------------------------------------------- */

static void ussd_answered(void *ctx, const struct ussd_reply *reply, const struct json_error *err)
{
    struct command *cmd = ctx;
    cJSON *data;

    if (err) {
        command_finish(cmd, NULL, err);
        return;
    }
    data = cJSON_CreateObject();
    if (data) {
        cJSON_AddStringToObject(data, "text", reply->text);
        cJSON_AddNumberToObject(data, "status", reply->status);
    }
    command_finish(cmd, data, NULL);
}

static void cmd_ussd_send(struct app *a, struct command *cmd, struct route_req *req)
{
    ussd_send(a->ussd, req->text, ussd_answered, cmd);
}

struct power_cmd {
    struct command *cmd;
    enum modem_power_mode mode;
};

static void power_done(void *ctx, const struct at_response *rsp)
{
    static const char *const names[] = {
        [MODEM_POWER_FULL] = "full", [MODEM_POWER_MIN] = "min", [MODEM_POWER_RESET] = "reset",
    };
    struct power_cmd pc = *(struct power_cmd *)ctx;
    struct json_error err = { .cme = -1, .cms = -1 };
    cJSON *data;

    free(ctx);
    if (rsp->final != AT_FINAL_OK) {
        json_error_set(&err,
                       rsp->final == AT_FINAL_TIMEOUT     ? "timeout"
                       : rsp->final == AT_FINAL_CANCELLED ? "unavailable"
                                                          : "modem_error",
                       "%s",
                       rsp->text                          ? rsp->text
                       : rsp->final == AT_FINAL_CANCELLED ? "the modem went away before answering"
                                                          : at_final_name(rsp->final));
        if (rsp->final == AT_FINAL_CME)
            err.cme = rsp->code;
        command_finish(pc.cmd, NULL, &err);
        return;
    }
    data = cJSON_CreateObject();
    if (data)
        cJSON_AddStringToObject(data, "mode", names[pc.mode]);
    command_finish(pc.cmd, data, NULL);
}

/* Results: "full" and "min" after the module's OK to AT+CFUN; "reset"
 * after its OK to AT+CRESET (B/status then says "resetting" until the
 * module is back and brought up again: "ready"). */
static void cmd_modem_power(struct app *a, struct command *cmd, struct route_req *req)
{
    enum json_power_mode jm = req->power;
    struct power_cmd *pc;
    int r;

    pc = malloc(sizeof(*pc));
    if (!pc) {
        finish_error(cmd, "unavailable", "out of memory");
        return;
    }
    pc->cmd = cmd;
    pc->mode = jm == JSON_POWER_FULL ? MODEM_POWER_FULL
               : jm == JSON_POWER_MIN ? MODEM_POWER_MIN
                                      : MODEM_POWER_RESET;
    /* A reset must not run a second time after a crash mid-way. */
    if (cmd->seq)
        journal_started(a->journal, cmd->seq, 1);
    r = modem_power(a->modem, pc->mode, power_done, pc);
    if (r < 0) {
        free(pc);
        if (r == -EAGAIN) {
            char msg[96];
            snprintf(msg, sizeof(msg), "the modem is not ready (%s)", app_state(a));
            finish_error(cmd, "unavailable", msg);
        } else {
            finish_error(cmd, "busy", "the modem's command queue is full");
        }
    }
}

/* Why no command but modem/power can run now, or NULL: at AT+CFUN=0 the
 * module still answers AT but has no radio; during a reset it is gone. */
static const char *not_ready_reason(const struct app *a)
{
    if (a->resetting)
        return "the modem is resetting (modem/power reset); wait for B/status \"ready\"";
    if (modem_state(a->modem) == MODEM_LOW_POWER)
        return "the modem is in low power mode (modem/power min): no radio; send "
               "{\"mode\":\"full\"} to modem/power first";
    return NULL;
}

/* --- calls ---------------------------------------------------------------------- */

static void call_cmd_done(void *ctx, const struct json_error *err)
{
    command_finish(ctx, NULL, err);
}

static void cmd_call_dial(struct app *a, struct command *cmd, struct route_req *req)
{
    /* From here a call may begin: a crash must not dial twice. */
    if (cmd->seq)
        journal_started(a->journal, cmd->seq, 1);
    call_dial(a->call, req->text, call_cmd_done, cmd);
}

static void cmd_call_answer(struct app *a, struct command *cmd, struct route_req *req)
{
    (void)req;
    call_answer(a->call, call_cmd_done, cmd);
}

static void cmd_call_hangup(struct app *a, struct command *cmd, struct route_req *req)
{
    (void)req;
    call_hangup(a->call, call_cmd_done, cmd);
}

static void cmd_call_dtmf(struct app *a, struct command *cmd, struct route_req *req)
{
    call_dtmf(a->call, req->text, call_cmd_done, cmd);
}

/* --- statistics on request ---------------------------------------------------- */

static void cmd_stats_get(struct app *a, struct command *cmd, struct route_req *req)
{
    char *s;

    (void)req;
    publish_stats(a);
    s = stats_payload(a);
    command_finish(cmd, s ? cJSON_Parse(s) : NULL, NULL);
    free(s);
}

/* --- remote broker (modem/cmqtt) ------------------------------------------------ */

static void remote_cmd_done(void *ctx, const struct json_error *err)
{
    command_finish(ctx, NULL, err);
}

/* cmqtt copies the payload: a decoded one (base64) is freed here. */
static void cmd_remote_publish(struct app *a, struct command *cmd, struct route_req *req)
{
    struct remote_publish_req pub = req->publish;

    cmqtt_publish(a->cmqtt, pub.topic, pub.payload, pub.payload_len, pub.qos, pub.retain,
                  remote_cmd_done, cmd);
    json_remote_publish_clear(&pub);
}

static void cmd_remote_subscribe(struct app *a, struct command *cmd, struct route_req *req)
{
    cmqtt_subscribe(a->cmqtt, req->subscribe.topic, req->subscribe.qos, remote_cmd_done,
                    cmd);
}

static void cmd_remote_unsubscribe(struct app *a, struct command *cmd, struct route_req *req)
{
    cmqtt_unsubscribe(a->cmqtt, req->text, remote_cmd_done, cmd);
}

/* remote.forward: a local message on a rule's filter goes to the remote
 * broker as is. Not a command: no result, no journal (on_persist only
 * journals command topics). Returns whether a rule matched. */
static bool forward_local(struct app *a, const struct mqtt_link_msg *m)
{
    bool matched = false;

    for (size_t i = 0; i < a->cfg->remote.n_forward; i++) {
        const struct config_remote_fwd *f = &a->cfg->remote.forward[i];
        if (!cmqtt_topic_match(f->local, m->topic, strlen(m->topic)))
            continue;
        matched = true;
        if (m->len > JSON_REMOTE_PAYLOAD_MAX) {
            log_warn("remote: forward %s -> %s: %zu bytes, the module takes at most %d; dropped",
                     m->topic, f->remote, m->len, JSON_REMOTE_PAYLOAD_MAX);
            continue;
        }
        log_debug("remote: forward %s -> %s (%zu bytes)", m->topic, f->remote, m->len);
        cmqtt_publish(a->cmqtt, f->remote, m->payload, m->len, f->qos, false, NULL, NULL);
    }
    return matched;
}

/* --- SMS ------------------------------------------------------------------------ */

/* A sent SMS that asked for reports: remembered, so that each report can
 * name the command. Only the id is needed, not the command. */
static void remember_references(const struct command *cmd, const struct sms_send_result *res)
{
    int r;

    if (!res->report)
        return;
    r = refmap_add(cmd->app->refs, cmd->id, res->to, res->references, res->n_references, time(NULL));
    if (r < 0)
        log_warn("sms: cannot remember the references of this SMS (%s); its reports come "
                 "with \"id\": null after a restart",
                 strerror(-r));
}

/* The started mark of recipient i's part p (1-based) in the journal:
 * i * SMS_MARK_STRIDE + p. A single "to" is recipient 0, so its marks are
 * its part numbers, as journals written before lists existed hold them. */
#define SMS_MARK_STRIDE 256
_Static_assert(SMS_MARK_STRIDE > PDU_PARTS_MAX, "a part number must fit below the stride");

static const char STOPPED_MSG[] = "the bridge stopped while running this command; it may have "
                                  "taken effect and is not repeated";

/* One B/sms/send: its recipients one after another (the next only when
 * the previous one's SMS is answered), one result. */
struct sms_cmd {
    struct command *cmd;
    cJSON *root;                  /* the payload's tree, owned: req borrows from it */
    struct sms_send_req req;
    size_t current;               /* the recipient being sent */
    cJSON *recipients;            /* "to" as an array: the outcome of each so far */
    size_t failed;
    const char *first_code;       /* the first failed recipient's error code (static) */
};

static void sms_cmd_free(struct sms_cmd *sc)
{
    cJSON_Delete(sc->root);
    cJSON_Delete(sc->recipients);
    free(sc);
}

static void sms_add_sent(cJSON *obj, const struct sms_send_result *res)
{
    cJSON *refs;

    cJSON_AddNumberToObject(obj, "parts", res->parts);
    refs = cJSON_AddArrayToObject(obj, "references");
    for (unsigned i = 0; refs && i < res->n_references; i++)
        cJSON_AddItemToArray(refs, cJSON_CreateNumber(res->references[i]));
}

/* The bridge stopped while part `part` of an SMS was being written: the
 * parts before it went out (each waited for the previous one's +CMGS),
 * that one may have. Sets err; returns the parts surely sent. */
static unsigned sms_interrupted(struct json_error *err, unsigned part)
{
    json_error_set(err, "unavailable",
                   "the bridge stopped while sending part %u; parts 1-%u were sent, part %u "
                   "may have been; nothing is sent again",
                   part, part - 1, part);
    return part - 1;
}

/* The current recipient's outcome goes into "recipients"; parts_sent > 0
 * adds that member (an interrupted multipart SMS). */
static void sms_recipient_done(struct sms_cmd *sc, const struct sms_send_result *res,
                               const struct json_error *err, unsigned parts_sent)
{
    cJSON *r = cJSON_CreateObject();

    if (err && sc->failed++ == 0)
        sc->first_code = err->code;
    if (!r || !cJSON_AddItemToArray(sc->recipients, r)) {
        cJSON_Delete(r);
        log_error("out of memory; the outcome for %s is missing from the result",
                  sc->req.recipients[sc->current]);
        return;
    }
    cJSON_AddStringToObject(r, "to", sc->req.recipients[sc->current]);
    cJSON_AddBoolToObject(r, "ok", err == NULL);
    if (parts_sent > 0)
        cJSON_AddNumberToObject(r, "parts_sent", parts_sent);
    if (err)
        json_add_error(r, err);
    else
        sms_add_sent(r, res);
}

/* Every recipient answered: "ok" only when each succeeded; else the
 * error is the first failure's code, the details are per recipient. */
static void sms_cmd_finish_list(struct sms_cmd *sc)
{
    struct json_error err = { .cme = -1, .cms = -1 };
    cJSON *data = cJSON_CreateObject();

    if (data) {
        cJSON_AddItemToObject(data, "recipients", sc->recipients);
        sc->recipients = NULL;
    }
    if (sc->failed)
        json_error_set(&err, sc->first_code, "%zu of %zu recipients failed (see recipients)",
                       sc->failed, sc->req.n_recipients);
    command_finish(sc->cmd, data, sc->failed ? &err : NULL);
    sms_cmd_free(sc);
}

static void sms_sent(void *ctx, const struct sms_send_result *res, const struct json_error *err);
static void sms_part_written(void *ctx, unsigned part, unsigned n_parts);

/* Sends to the current recipient, or answers when none is left. A
 * recipient refused at once (not allowed, rate limit) is answered inside
 * sms_send: the next follows from there. */
static void sms_cmd_next(struct sms_cmd *sc)
{
    if (sc->current == sc->req.n_recipients) {
        sms_cmd_finish_list(sc);
        return;
    }
    sc->req.to = sc->req.recipients[sc->current];
    sms_send(sc->cmd->app->sms, &sc->req, sms_sent, sms_part_written, sc);
}

static void sms_sent(void *ctx, const struct sms_send_result *res, const struct json_error *err)
{
    struct sms_cmd *sc = ctx;
    cJSON *data;

    count(sc->cmd->app, err ? STATS_SMS_FAILED : STATS_SMS_SENT);
    if (!err)
        remember_references(sc->cmd, res);
    if (sc->req.to_list) {
        sms_recipient_done(sc, res, err, 0);
        sc->current++;
        sms_cmd_next(sc);
        return;
    }
    data = err ? NULL : cJSON_CreateObject();
    if (data)
        sms_add_sent(data, res);
    command_finish(sc->cmd, data, err);
    sms_cmd_free(sc);
}

/* A part's AT+CMGS is about to be written: from here it may leave, and a
 * crash must not send it again. Queued in the bridge it is not started. */
static void sms_part_written(void *ctx, unsigned part, unsigned n_parts)
{
    struct sms_cmd *sc = ctx;
    struct command *cmd = sc->cmd;

    (void)n_parts;
    if (cmd->seq)
        journal_started(cmd->app->journal, cmd->seq,
                        (unsigned)sc->current * SMS_MARK_STRIDE + part);
}

/* A replayed command the bridge had begun: nothing that may have gone out
 * goes again. One "to": answered unavailable. A list: the recipients up
 * to the one being sent are answered unavailable (those before it were
 * done, but their outcomes were not stored), the rest are sent now. */
static void sms_cmd_resume(struct sms_cmd *sc, unsigned mark)
{
    struct json_error err = { .cme = -1, .cms = -1 };
    size_t k = (mark - 1) / SMS_MARK_STRIDE;
    unsigned part = (mark - 1) % SMS_MARK_STRIDE + 1;

    if (!sc->req.to_list) {
        cJSON *data = part > 1 ? cJSON_CreateObject() : NULL;

        if (part > 1)
            cJSON_AddNumberToObject(data, "parts_sent", sms_interrupted(&err, part));
        else
            json_error_set(&err, "unavailable", "%s", STOPPED_MSG);
        command_finish(sc->cmd, data, &err);
        sms_cmd_free(sc);
        return;
    }
    if (k >= sc->req.n_recipients)
        k = sc->req.n_recipients - 1;
    log_warn("sms: the bridge stopped while sending to %s; recipients 1-%zu are not sent again",
             sc->req.recipients[k], k + 1);
    for (sc->current = 0; sc->current < k; sc->current++) {
        json_error_set(&err, "unavailable",
                       "the bridge stopped while sending to a later recipient; this one's "
                       "outcome is unknown (it may have been sent) and it is not sent again");
        sms_recipient_done(sc, NULL, &err, 0);
    }
    if (part > 1) {
        unsigned sent = sms_interrupted(&err, part);
        sms_recipient_done(sc, NULL, &err, sent);
    } else {
        json_error_set(&err, "unavailable",
                       "the bridge stopped while sending to this recipient; it may have been "
                       "sent and is not sent again");
        sms_recipient_done(sc, NULL, &err, 0);
    }
    sc->current = k + 1;
    sms_cmd_next(sc);
}

/* B/sms/send. It outlives this call: it takes the payload's tree, which
 * its request borrows from. cmd->started: the journal's mark when the
 * bridge had begun it before a restart (sms_cmd_resume), else 0. */
static void cmd_sms_send(struct app *a, struct command *cmd, struct route_req *req)
{
    struct sms_cmd *sc = calloc(1, sizeof(*sc));

    (void)a;
    if (!sc || (req->sms.to_list && !(sc->recipients = cJSON_CreateArray()))) {
        free(sc);
        finish_error(cmd, "busy", "out of memory");
        return;
    }
    sc->cmd = cmd;
    sc->root = req->root;
    req->root = NULL;
    sc->req = req->sms;
    if (cmd->started)
        sms_cmd_resume(sc, cmd->started);
    else
        sms_cmd_next(sc);
}

/* A list of recipients, begun before a restart, has some it had not begun
 * to send to: those are sent, so it waits for the modem like a new
 * command. */
static bool sms_cmd_left(const struct route_req *req, unsigned started)
{
    return req->sms.to_list && (started - 1) / SMS_MARK_STRIDE + 1 < req->sms.n_recipients;
}

static void at_sent(void *ctx, const struct at_response *rsp)
{
    struct command *cmd = ctx;
    struct json_error err = { .cme = -1, .cms = -1 };
    cJSON *data, *lines;

    if (rsp->final != AT_FINAL_OK) {
        json_error_set(&err, rsp->final == AT_FINAL_TIMEOUT ? "timeout" : "modem_error", "%s",
                       rsp->text ? rsp->text : at_final_name(rsp->final));
        if (rsp->final == AT_FINAL_CME)
            err.cme = rsp->code;
        if (rsp->final == AT_FINAL_CMS)
            err.cms = rsp->code;
        /* AT+CMGW and the like: the store had no room. */
        if (rsp->final == AT_FINAL_CMS && rsp->code == 322)
            status_storage_full(cmd->app->status, "the module answered +CMS ERROR: 322");
        command_finish(cmd, NULL, &err);
        return;
    }
    data = cJSON_CreateObject();
    lines = data ? cJSON_AddArrayToObject(data, "response") : NULL;
    for (size_t i = 0; lines && i < rsp->n_lines; i++)
        cJSON_AddItemToArray(lines, cJSON_CreateString(rsp->lines[i]));
    command_finish(cmd, data, NULL);
}

static void cmd_at_send(struct app *a, struct command *cmd, struct route_req *req)
{
    int r = modem_send(a->modem, req->text, NULL, at_sent, cmd);

    if (r == -EAGAIN)
        finish_error(cmd, "unavailable", "the modem is not ready");
    else if (r == -EINVAL)
        finish_error(cmd, "invalid_request", "the modem refused the command line");
    else if (r < 0)
        finish_error(cmd, "busy", "the modem's command queue is full");
}

/* --- the pool: sms/send shared with other modems -------------------------- */

#define POOL_SUFFIX "/sms/send"
#define POOL_RETRY_MS 5000

static int64_t pool_retry_fired(void *ctx);

/* <pool topic>/sms/send, where the pool's commands arrive (the broker
 * strips "$share/<group>/" from the topic it delivers them on). */
static bool is_pool_topic(const struct app *a, const char *t)
{
    const char *p = a->cfg->mqtt.pool.topic;
    size_t n = p ? strlen(p) : 0;

    return a->cfg->mqtt.pool.enabled && strncmp(t, p, n) == 0 && strcmp(t + n, POOL_SUFFIX) == 0;
}

static void pool_update(struct app *a, bool force);

/* The broker's answer to a join or a leave. Refused, or lost with the
 * connection: tried again later (a new connection tries at once). */
static void pool_acked(void *ctx, int status)
{
    struct app *a = ctx;
    bool joining = a->pool == POOL_JOINING;

    if (status == -ECANCELED)
        return;                 /* shutting down */
    if (status == 0) {
        a->pool = joining ? POOL_IN : POOL_OUT;
        log_info("pool: %s %s/sms/send", joining ? "joined" : "left", a->cfg->mqtt.pool.topic);
    } else {
        a->pool = POOL_UNKNOWN;
        if (status != -ENOTCONN)
            log_warn("pool: the broker refused to %s: %s; trying again in %d s",
                     joining ? "let this modem join" : "let this modem leave", strerror(-status),
                     POOL_RETRY_MS / 1000);
        if (!a->pool_timer)
            loop_add_timer(a->loop, POOL_RETRY_MS, pool_retry_fired, a, &a->pool_timer);
    }
    pool_update(a, false);
}

static int64_t pool_retry_fired(void *ctx)
{
    struct app *a = ctx;

    a->pool_timer = 0;
    pool_update(a, false);
    return 0;
}

/* In the pool while connected and ready, out of it otherwise: a modem that
 * cannot send leaves the work to the others. One join or leave at a time;
 * the answer calls this again, so the last state asked for wins. force: a
 * new connection (the broker's session may hold either). */
static void pool_update(struct app *a, bool force)
{
    bool want = modem_state(a->modem) == MODEM_READY;
    char filter[TOPIC_MAX];
    int r;

    if (!a->cfg->mqtt.pool.enabled)
        return;
    if (force)
        a->pool = POOL_UNKNOWN;
    if (a->pool == POOL_JOINING || a->pool == POOL_LEAVING)
        return;                 /* pool_acked comes back here */
    if (a->pool == (want ? POOL_IN : POOL_OUT))
        return;
    snprintf(filter, sizeof(filter), "$share/%s/%s" POOL_SUFFIX, a->cfg->mqtt.pool.group,
             a->cfg->mqtt.pool.topic);
    a->pool = want ? POOL_JOINING : POOL_LEAVING;
    r = want ? mqtt_link_subscribe_acked(a->link, filter, 1, pool_acked, a)
             : mqtt_link_unsubscribe(a->link, filter, pool_acked, a);
    if (r < 0) {
        a->pool = POOL_UNKNOWN;
        if (r != -ENOTCONN && !a->pool_timer) {
            log_warn("pool: cannot %s %s: %s; trying again in %d s", want ? "join" : "leave",
                     filter, strerror(-r), POOL_RETRY_MS / 1000);
            loop_add_timer(a->loop, POOL_RETRY_MS, pool_retry_fired, a, &a->pool_timer);
        }
    }
}

static const struct route *find_route(const struct app *a, const char *t)
{
    size_t blen = strlen(a->cfg->mqtt.base_topic);

    if (is_pool_topic(a, t))
        t = "sms/send";
    else if (strncmp(t, a->cfg->mqtt.base_topic, blen) != 0 || t[blen] != '/')
        return NULL;
    else
        t += blen + 1;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(t, routes[i].suffix) == 0)
            return &routes[i];
    return NULL;
}

static struct command *command_new(struct app *a, const struct held *h)
{
    struct command *cmd = calloc(1, sizeof(*cmd));
    size_t tlen = strlen(h->topic) + sizeof("/result");

    if (!cmd || !(cmd->result_topic = malloc(tlen))) {
        free(cmd);
        log_error("out of memory; command on %s dropped", h->topic);
        return NULL;
    }
    snprintf(cmd->result_topic, tlen, "%s/result", h->topic);
    cmd->app = a;
    cmd->pool = is_pool_topic(a, h->topic);
    a->n_running++;
    cmd->seq = h->seq;
    if (h->response_topic)
        cmd->response_topic = strdup(h->response_topic);
    if (h->correlation_len && (cmd->correlation = malloc(h->correlation_len))) {
        memcpy(cmd->correlation, h->correlation, h->correlation_len);
        cmd->correlation_len = h->correlation_len;
    }
    return cmd;
}

/* h->started > 0: the command had begun when the bridge stopped
 * (journal; for an SMS, the part whose AT+CMGS was written last): what
 * may have taken effect is answered, never run a second time. The checks
 * in the order of their answers: the payload, a restart, the modem's
 * state, raw AT, the route's parser; nothing reaches the line before all
 * passed. */
static void dispatch(struct app *a, const struct held *h)
{
    const struct route *r = find_route(a, h->topic);
    struct json_error err = { .cme = -1, .cms = -1 };
    struct route_req req = { 0 };
    const cJSON *id = NULL;
    struct command *cmd;

    if (!r) {
        if (h->seq)
            journal_done(a->journal, h->seq);
        return;
    }
    cmd = command_new(a, h);
    if (!cmd)
        return;
    req.root = json_parse_command(h->payload, h->len, &id, &err);
    if (id)
        cmd->id = cJSON_Duplicate(id, true);
    if (!req.root) {
        command_finish(cmd, NULL, &err);
        return;
    }
    if (h->started > 0 && !r->resume) {
        finish_error(cmd, "unavailable", STOPPED_MSG);
    } else if (!h->started && !(r->flags & ROUTE_ANY_STATE) && not_ready_reason(a)) {
        finish_error(cmd, "unavailable", not_ready_reason(a));
    } else if ((r->flags & ROUTE_RAW_AT) && !a->cfg->allow_raw_at) {
        finish_error(cmd, "not_allowed", "raw AT commands are disabled (allow_raw_at)");
    } else if (r->parse(req.root, &req, &err) < 0) {
        command_finish(cmd, NULL, &err);
    } else {
        log_debug("command %s", h->topic);
        cmd->started = h->started;
        r->handle(a, cmd, &req);
    }
    cJSON_Delete(req.root);
}

/* --- holding commands while the modem starts ------------------------------- */

static void held_free(struct held *h)
{
    free(h->topic);
    free(h->payload);
    free(h->response_topic);
    free(h->correlation);
    free(h);
}

static struct held *held_new(const char *topic, const void *payload, size_t len,
                             const char *response_topic, const uint8_t *corr, size_t corr_len,
                             uint64_t seq)
{
    struct held *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->topic = strdup(topic);
    h->payload = malloc(len ? len : 1);
    h->response_topic = response_topic ? strdup(response_topic) : NULL;
    h->correlation = corr_len ? malloc(corr_len) : NULL;
    if (!h->topic || !h->payload || (response_topic && !h->response_topic) ||
        (corr_len && !h->correlation)) {
        held_free(h);
        return NULL;
    }
    memcpy(h->payload, payload, len);
    h->len = len;
    if (corr_len)
        memcpy(h->correlation, corr, corr_len);
    h->correlation_len = corr_len;
    h->seq = seq;
    return h;
}

static bool modem_starting(const struct app *a)
{
    enum modem_state st = modem_state(a->modem);

    /* After a reset: answered "unavailable" at once (not_ready_reason). */
    if (a->resetting)
        return false;
    return st == MODEM_PROBING || st == MODEM_BRINGUP || (st == MODEM_CLOSED && !a->settled);
}

static void run_held(struct app *a)
{
    while (a->held) {
        struct held *h = a->held;
        a->held = h->next;
        a->n_held--;
        dispatch(a, h);
        held_free(h);
    }
    a->held_tail = &a->held;
}

static void take(struct app *a, struct held *h)
{
    const struct route *r = find_route(a, h->topic);

    if (!modem_starting(a) || (r && (r->flags & ROUTE_NO_MODEM))) {
        dispatch(a, h);
        held_free(h);
        return;
    }
    if (a->n_held == MAX_HELD) {
        log_warn("%zu commands waiting for the modem; running the oldest now", a->n_held);
        struct held *oldest = a->held;
        a->held = oldest->next;
        a->n_held--;
        if (!a->held)
            a->held_tail = &a->held;
        dispatch(a, oldest);
        held_free(oldest);
    }
    h->next = NULL;
    *a->held_tail = h;
    a->held_tail = &h->next;
    a->n_held++;
}

static int64_t settle_fired(void *ctx)
{
    struct app *a = ctx;

    a->settle_timer = 0;
    if (!a->settled)
        log_warn("modem still not ready after %d s; answering waiting commands",
                 SETTLE_TIMEOUT_MS / 1000);
    a->settled = true;
    run_held(a);
    return 0;
}

/* --- link callbacks ----------------------------------------------------------- */

static int on_persist(void *ctx, const char *t, const void *payload, size_t len,
                      bool redelivered, uint64_t *seq)
{
    struct app *a = ctx;
    int r;

    /* paho's thread: only the journal and the immutable config are
     * touched. */
    *seq = 0;
    if (!a->journal || !find_route(a, t))
        return 0;
    /* Killed after the append and before paho's PUBACK, the broker
     * delivers it again, marked DUP, and the replayed record from before
     * the restart already stands for it. Only a DUP copy is matched: the
     * same command sent again by a user (an alarm text, no id) runs. */
    if (redelivered && journal_find_earlier(a->journal, t, payload, len, seq)) {
        log_info("command on %s delivered again by the broker (it missed the acknowledgement "
                 "when the bridge stopped): command %llu stands for it",
                 t, (unsigned long long)*seq);
        *seq = 0;
        return 1;
    }
    r = journal_append(a->journal, t, payload, len, seq);
    if (r == 0)
        __atomic_add_fetch(&a->commands, 1, __ATOMIC_RELAXED);
    if (r < 0) {
        /* paho acknowledges the message whatever we answer, so refusing
         * would only stall it: run it, without the crash guarantee. */
        log_error("journal: cannot record the command on %s (%s); it runs, but would not "
                  "survive a crash",
                  t, strerror(-r));
        *seq = 0;
    }
    return 0;
}

/* --- health socket (core/health.h; `modem2mqtt --health`) and systemd ----------- */

/* A query: answered at once from the loop thread, so an answer proves the
 * loop runs. Nothing is written to disk and nothing wakes the loop between
 * queries. */
static void on_health(void *ctx, int fd, short revents)
{
    struct app *a = ctx;
    struct health_info h = {
        .mqtt_connected = mqtt_link_connected(a->link),
        .modem_state = app_state(a),
        .wakeups = loop_wakeups(a->loop),
        .fsyncs = a->journal ? journal_fsyncs(a->journal) : 0,
        .commands = __atomic_load_n(&a->commands, __ATOMIC_RELAXED),
    };
    char line[HEALTH_LINE_MAX];

    (void)revents;
    if (health_format(&h, line, sizeof(line)) == 0)
        health_answer(fd, line);
}

/* systemd's STATUS= line (systemctl status), on each state change: a
 * datagram, no disk write. */
static void health_update(struct app *a)
{
    char msg[128];

    if (!a->notify)
        return;
    snprintf(msg, sizeof(msg), "STATUS=broker %s, modem %s",
             mqtt_link_connected(a->link) ? "connected" : "disconnected", app_state(a));
    notify_send(a->notify, msg);
}

/* WatchdogSec=: a ping at half the interval, from the loop thread (a hung
 * loop stops pinging and systemd restarts the bridge). The one periodic
 * wakeup besides the status poll, and only when systemd asks for it. */
static int64_t watchdog_fired(void *ctx)
{
    struct app *a = ctx;

    notify_send(a->notify, "WATCHDOG=1");
    return notify_watchdog_ms(a->notify);
}

/* --- Home Assistant discovery (mqtt/hass.h) ------------------------------------ */

static int hass_publish(void *ctx, const char *t, const char *payload)
{
    struct app *a = ctx;

    return publish_text(a, t, payload, 1, true, NULL, 0, NULL, NULL);
}

/* again: HA asked (its birth message), publish every config once more. */
static void hass_update(struct app *a, bool again)
{
    const struct modem_info *info = a->have_info ? &a->info : NULL;
    int r;

    if (!mqtt_link_connected(a->link))
        return;   /* on_connected syncs */
    r = again ? hass_reannounce(a->hass, info) : hass_sync(a->hass, info);
    if (r < 0)
        log_warn("hass: discovery not (fully) published: %s; retried on the next connect",
                 strerror(-r));
}

/* HA's birth message on <prefix>/status: not a command (never journalled,
 * retained or not). "online" after an HA restart or an HA reconnect to the
 * broker: announce again, as the broker may have lost the retained
 * configs. */
static bool hass_status_message(struct app *a, const struct mqtt_link_msg *m)
{
    char t[TOPIC_MAX];

    if (hass_status_topic(a->cfg->mqtt.ha_prefix, t, sizeof(t)) < 0 || strcmp(m->topic, t) != 0)
        return false;
    if (hass_is_online(m->payload, m->len) && a->cfg->mqtt.ha_discovery) {
        log_info("hass: Home Assistant is online; announcing the entities again");
        hass_update(a, true);
    }
    return true;
}

static void on_connected(void *ctx)
{
    struct app *a = ctx;
    char t[TOPIC_MAX];

    for (size_t i = 0; i < N_ROUTES; i++)
        if (topic(a, routes[i].suffix, t, sizeof(t)) == 0)
            mqtt_link_subscribe(a->link, t, 1);
    /* remote.forward: local filters whose messages go to the remote broker. */
    for (size_t i = 0; a->cfg->remote.enabled && i < a->cfg->remote.n_forward; i++)
        mqtt_link_subscribe(a->link, a->cfg->remote.forward[i].local,
                            a->cfg->remote.forward[i].qos);
    if (a->connected_once)
        count(a, STATS_MQTT_RECONNECTS);
    a->connected_once = true;
    publish_availability(a);
    free(a->last_status);
    a->last_status = NULL;
    publish_status(a);
    publish_info(a);
    publish_stats(a);
    pool_update(a, true);
    /* HA's birth topic, and the discovery configs not yet announced (or
     * removals left from a run with discovery off). */
    if (hass_status_topic(a->cfg->mqtt.ha_prefix, t, sizeof(t)) == 0 && a->cfg->mqtt.ha_discovery)
        mqtt_link_subscribe(a->link, t, 1);
    hass_update(a, false);
    /* What could not be published while the broker was away. */
    for (struct result *r = a->results; r; r = r->next)
        r->parked = false;
    results_flush(a);
    publish_storage_full(a);
    sms_drain(a->sms);
    /* The event may have fired before the broker connection was up. */
    if (modem_state(a->modem) == MODEM_SIM_LOCKED)
        publish_sim_locked(a);
    publish_call_state(a, call_get_state(a->call));
    health_update(a);
}

static void on_disconnected(void *ctx, const char *reason)
{
    (void)reason;   /* the link logs it */
    health_update(ctx);
}

static void on_message(void *ctx, const struct mqtt_link_msg *m)
{
    struct app *a = ctx;
    struct held *h;

    /* remote.forward messages are data, not commands: forwarded, and
     * dropped here unless the topic is a command topic as well. */
    if (a->cfg->remote.enabled && forward_local(a, m) && !find_route(a, m->topic))
        return;
    if (!find_route(a, m->topic) && hass_status_message(a, m))
        return;
    if (m->retained) {
        /* It would run again at every restart of the bridge. An empty one
         * is someone clearing it: nothing to say. Under MQTT 5 a live
         * retained publish keeps its flag too (Retain As Published). */
        if (m->len > 0)
            log_warn("ignoring retained command on %s; clear it with: mosquitto_pub -r -n -t '%s'",
                     m->topic, m->topic);
        if (m->seq)
            journal_done(a->journal, m->seq);
        return;
    }
    count(a, STATS_COMMANDS);
    h = held_new(m->topic, m->payload, m->len, m->response_topic, m->correlation,
                 m->correlation_len, m->seq);
    if (!h) {
        log_error("out of memory; command on %s dropped", m->topic);
        return;
    }
    take(a, h);
}

/* A replayed command begun before the restart with work it had not begun
 * (route's resume): that work runs, so it waits for the modem like a new
 * command. */
static bool work_left(const struct app *a, const struct held *h)
{
    const struct route *r = find_route(a, h->topic);
    struct json_error err;
    struct route_req req = { 0 };
    const cJSON *id;
    bool left = false;

    if (!r || !r->resume)
        return false;
    req.root = json_parse_command(h->payload, h->len, &id, &err);
    if (req.root && r->parse(req.root, &req, &err) == 0)
        left = r->resume(&req, h->started);
    cJSON_Delete(req.root);
    return left;
}

static void on_replay(void *ctx, uint64_t seq, const char *t, const uint8_t *payload, size_t len)
{
    struct app *a = ctx;
    uint8_t *blob = NULL;
    size_t blen = 0;
    struct held *h;

    /* Answered before the restart, not yet acknowledged by the broker:
     * the stored result goes out (once connected), the command never runs
     * again. */
    if (journal_result_load(a->journal, seq, &blob, &blen) == 0) {
        struct result *r = result_decode(blob, blen);

        free(blob);
        if (r) {
            log_info("journal: publishing the stored result of command %llu on %s",
                     (unsigned long long)seq, t);
            r->seq = seq;
            r->durable = true;
            results_add(a, r);
            return;
        }
        log_warn("journal: the stored result of command %llu is unreadable; answering again",
                 (unsigned long long)seq);
    }
    h = held_new(t, payload, len, NULL, NULL, 0, seq);
    if (!h)
        return;
    h->started = journal_started_part(a->journal, seq);
    if (h->started > 0 && !work_left(a, h)) {
        log_warn("journal: command %llu on %s was running when the bridge stopped; "
                 "answering it without running it again",
                 (unsigned long long)seq, t);
        dispatch(a, h);
        held_free(h);
        return;
    }
    log_info("journal: running command %llu on %s (accepted before a restart%s)",
             (unsigned long long)seq, t,
             h->started ? "; only to the recipients it had not begun to send to" : "");
    take(a, h);
}

/* --- service callbacks ------------------------------------------------------- */

struct sms_ack {
    struct app *app;
    uint64_t token;
};

static void sms_acked(void *ctx, int status)
{
    struct sms_ack *ack = ctx;
    struct app *a = ack->app;

    /* From mqtt_link_free at shutdown: the SMS service is gone already
     * (the message stays on the SIM; the next start publishes it). */
    if (status == -ECANCELED) {
        free(ack);
        return;
    }
    sms_received_done(a->sms, ack->token, status);
    free(ack);
    if (status != -ECANCELED && a->results_refused)
        results_flush(a);
}

static void publish_for_sms(struct app *a, const char *suffix, char *payload, uint64_t token)
{
    struct sms_ack *ack = malloc(sizeof(*ack));
    int r = -ENOMEM;

    if (ack && payload) {
        *ack = (struct sms_ack){ a, token };
        r = publish(a, suffix, payload, 1, false, sms_acked, ack);
    }
    if (r < 0) {
        free(ack);
        sms_received_done(a->sms, token, r);
    }
    free(payload);
}

static bool sms_acked_before(void *ctx, const char *key)
{
    struct app *a = ctx;

    return a->journal && journal_was_published(a->journal, key);
}

static void sms_acked_key(void *ctx, const char *key)
{
    struct app *a = ctx;

    if (a->journal && journal_mark_published(a->journal, key) < 0)
        log_error("journal: cannot record that %s was published; a crash before its delete "
                  "would publish it again",
                  key);
}

static void on_sms_received(void *ctx, const struct sms_received *msg, uint64_t token)
{
    struct app *a = ctx;

    log_info("sms: from %s, %u part(s)", msg->from, msg->parts);
    count(a, STATS_SMS_RECEIVED);
    publish_for_sms(a, "sms/received", json_sms_received(msg), token);
}

static void on_sms_report(void *ctx, const struct pdu_msg *rep, uint64_t token)
{
    struct app *a = ctx;
    const struct refmap_entry *e = refmap_find(a->refs, rep->mr, rep->addr, time(NULL));
    const struct sms_report r = {
        .reference = rep->mr,
        .to = rep->addr,
        .st = rep->status,
        .time = rep->discharge_time,
        .submitted = rep->time,
        .id_json = e ? e->id : NULL,
        .part = e ? e->part : 0,
        .parts = e ? e->parts : 0,
    };

    log_info("sms: report for reference %d to %s: %s (TP-ST 0x%02X)%s", r.reference, r.to,
             json_report_status(r.st), r.st, e ? "" : ", not an SMS the bridge knows");
    count(a, STATS_REPORTS);
    publish_for_sms(a, "sms/report", json_sms_report(&r), token);
}

static void on_sms_undecodable(void *ctx, const char *pdu, const char *reason, uint64_t token)
{
    struct app *a = ctx;

    count(a, STATS_ERRORS);
    publish_for_sms(a, "error", json_event_error("undecodable_sms", reason, "pdu", pdu), token);
}

static void on_call_state(void *ctx, const struct call_state *st)
{
    struct app *a = ctx;

    log_info("call: %s", call_st_name(st->state));
    if (st->state != CALL_IDLE && !a->in_call)
        count(a, STATS_CALLS);
    a->in_call = st->state != CALL_IDLE;
    publish_call_state(a, st);
}

static void on_call_ring(void *ctx, const char *from)
{
    struct app *a = ctx;
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (!o)
        return;
    add_string_or_null(o, "from", from);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s)
        publish(a, "call/ring", s, 1, false, NULL, NULL);
    free(s);
}

static void on_remote_state(void *ctx, enum cmqtt_state st, const char *reason)
{
    struct app *a = ctx;

    (void)reason;   /* cmqtt logs it */
    if (st == CMQTT_CONNECTED) {
        if (a->remote_connected_once)
            count(a, STATS_REMOTE_RECONNECTS);
        a->remote_connected_once = true;
    }
    publish_status(a);
}

/* One publish of a remote message, counted in the backlog until its ack. */
struct remote_ack {
    struct app *app;
    size_t bytes;
};

static void remote_overflowed(struct app *a, const char *t)
{
    char msg[256];

    a->remote_dropped++;
    if (a->remote_overflow) {
        log_debug("remote: message on %s dropped (backlog full)", t);
        return;
    }
    a->remote_overflow = true;
    snprintf(msg, sizeof(msg),
             "the local broker takes remote messages slower than they come: %zu bytes wait for "
             "it; dropping them until half of that is through (%llu dropped since the start)",
             a->remote_backlog, (unsigned long long)a->remote_dropped);
    log_error("remote: %s", msg);
    publish_error_event(a, "queue_overflow", msg);
}

static void remote_acked(void *ctx, int status)
{
    struct remote_ack *ra = ctx;
    struct app *a = ra->app;

    a->remote_backlog -= ra->bytes;
    free(ra);
    if (status == -ECANCELED)
        return;                  /* shutting down */
    if (status < 0) {
        /* Queued or unacknowledged when the connection dropped: the broker
         * may not have it, and the module will not send it again. */
        a->remote_dropped++;
        if (!a->remote_loss_logged)
            log_warn("remote: message(s) lost with the local broker connection (%s); %llu "
                     "dropped since the start",
                     strerror(-status), (unsigned long long)a->remote_dropped);
        a->remote_loss_logged = true;
    } else {
        a->remote_loss_logged = false;
    }
    if (a->remote_overflow && a->remote_backlog <= REMOTE_BACKLOG_MAX_BYTES / 2) {
        a->remote_overflow = false;
        log_info("remote: backlog down to %zu bytes; %llu dropped since the start",
                 a->remote_backlog, (unsigned long long)a->remote_dropped);
    }
    if (a->results_refused)
        results_flush(a);
}

/* Publishes one part of a remote message with its backlog accounting; a
 * JSON text (payload NUL-terminated) goes through publish_text. */
static int remote_publish(struct app *a, const char *t, const void *payload, size_t len, int qos,
                          bool text)
{
    struct remote_ack *ra = malloc(sizeof(*ra));
    int r;

    if (!ra)
        return -ENOMEM;
    *ra = (struct remote_ack){ a, len };
    r = text ? publish_text(a, t, payload, qos, false, NULL, 0, remote_acked, ra)
             : mqtt_link_publish(a->link, t, payload, len, qos, false, NULL, 0, remote_acked, ra);
    if (r < 0) {
        free(ra);
        return r;
    }
    a->remote_backlog += len;
    return 0;
}

/* B/remote/message, and the raw payload on remote.subscribe[].local. */
static void on_remote_message(void *ctx, const char *t, size_t tlen, const uint8_t *payload,
                              size_t len, int qos)
{
    struct app *a = ctx;
    char *s = json_remote_message(t, tlen, payload, len, qos);
    char tm[TOPIC_MAX];
    size_t need = s ? strlen(s) : 0;
    int r;

    for (size_t i = 0; i < a->cfg->remote.n_subscribe; i++) {
        const struct config_remote_sub *sub = &a->cfg->remote.subscribe[i];
        if (sub->local && cmqtt_topic_match(sub->topic, t, tlen))
            need += len;
    }
    /* All of it or nothing: one B/error per episode, not per topic. */
    if (a->remote_backlog + need > REMOTE_BACKLOG_MAX_BYTES) {
        remote_overflowed(a, t);
        free(s);
        return;
    }
    r = s && topic(a, "remote/message", tm, sizeof(tm)) == 0
            ? remote_publish(a, tm, s, strlen(s), 1, true)
            : -ENOMEM;
    if (r == -ENOBUFS)
        remote_overflowed(a, t);
    else if (r < 0)
        log_warn("remote: message on %s not published locally: %s", t, strerror(-r));
    free(s);
    for (size_t i = 0; i < a->cfg->remote.n_subscribe; i++) {
        const struct config_remote_sub *sub = &a->cfg->remote.subscribe[i];
        if (!sub->local || !cmqtt_topic_match(sub->topic, t, tlen))
            continue;
        r = remote_publish(a, sub->local, payload, len, sub->qos, false);
        if (r == -ENOBUFS)
            remote_overflowed(a, t);
        else if (r < 0)
            log_warn("remote: message on %s not published on %s: %s", t, sub->local,
                     strerror(-r));
    }
}

static void on_remote_error(void *ctx, const char *code, const char *message)
{
    publish_error_event(ctx, code, message);
}

static void on_status(void *ctx, const struct status_info *info)
{
    (void)info;
    publish_status(ctx);
}

static void on_storage_full(void *ctx, const char *why)
{
    struct app *a = ctx;

    snprintf(a->storage_full_why, sizeof(a->storage_full_why),
             "the SIM's SMS store is full (%s): new messages are not stored until some are "
             "deleted", why);
    a->storage_full_due = true;
    publish_storage_full(a);
}

static void on_sms_store_changed(void *ctx)
{
    struct app *a = ctx;

    status_storage_refresh(a->status);
}

/* The status poll's timer: the SMS safety drain rides on it (a +CMTI lost
 * during a reopen, publishes that failed), so an idle bridge wakes once a
 * status_interval. */
static void on_status_tick(void *ctx)
{
    struct app *a = ctx;

    sms_drain(a->sms);
}

static void on_modem_state(void *ctx, enum modem_state st)
{
    struct app *a = ctx;
    bool ready = st == MODEM_READY;

    if (st == MODEM_RESETTING)
        a->resetting = true;
    else if (st != MODEM_PROBING && st != MODEM_BRINGUP)
        a->resetting = false;
    if (strcmp(app_state(a), a->last_state) != 0)
        log_info("modem: %s", app_state(a));
    a->last_state = app_state(a);
    if (st != MODEM_PROBING && st != MODEM_BRINGUP && (st != MODEM_CLOSED || a->settled)) {
        a->settled = true;
        loop_cancel_timer(a->loop, a->settle_timer);
        a->settle_timer = 0;
    }
    status_modem_ready(a->status, ready);
    sms_modem_ready(a->sms, ready);
    cmqtt_modem_ready(a->cmqtt, ready);
    call_modem_ready(a->call, ready);
    ussd_modem_ready(a->ussd, ready);
    publish_availability(a);
    publish_status(a);
    health_update(a);
    stats_modem_changed(a);
    pool_update(a, false);
    if (!modem_starting(a))
        run_held(a);
    if (st == MODEM_SIM_LOCKED)
        publish_sim_locked(a);
}

static void on_modem_info(void *ctx, const struct modem_info *info)
{
    struct app *a = ctx;

    a->info = *info;
    a->have_info = true;
    publish_info(a);
    /* The device's identity (IMEI) is known now. */
    hass_update(a, false);
}

/* --- signals ------------------------------------------------------------------ */

#define REMOTE_STOP_MS 3000

static void remote_stopped(void *ctx)
{
    struct app *a = ctx;

    loop_cancel_timer(a->loop, a->remote_stop_timer);
    loop_stop(a->loop);
}

static int64_t remote_stop_expired(void *ctx)
{
    struct app *a = ctx;

    log_warn("remote: the module did not close the session within %d ms; stopping anyway",
             REMOTE_STOP_MS);
    loop_stop(a->loop);
    return 0;
}

static void on_signal(void *ctx, int fd, short revents)
{
    struct app *a = ctx;
    struct signalfd_siginfo si;

    (void)revents;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("signal %u: shutting down", si.ssi_signo);
    /* A connected remote session is closed first (DISC, REL, STOP), for at
     * most REMOTE_STOP_MS; a second signal stops at once. */
    if (a->remote_stop_timer || cmqtt_state(a->cmqtt) != CMQTT_CONNECTED) {
        loop_stop(a->loop);
        return;
    }
    loop_add_timer(a->loop, REMOTE_STOP_MS, remote_stop_expired, a, &a->remote_stop_timer);
    cmqtt_shutdown(a->cmqtt, remote_stopped, a);
}

static int open_signals(struct app *a)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked before paho starts its threads, so they inherit the mask and
     * only the signalfd sees these signals. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    a->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a->sig_fd < 0)
        return -errno;
    return loop_add_fd(a->loop, a->sig_fd, POLLIN, on_signal, a);
}

/* Reads a whole file of at most max bytes: 0, -errno, -EFBIG. */
static int read_small_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (!f)
        return -errno;
    buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max || n == 0) {
        free(buf);
        return n ? -EFBIG : -ENODATA;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* --- life cycle ---------------------------------------------------------------- */

int app_new(const struct config *cfg, struct app **out)
{
    struct app *a = calloc(1, sizeof(*a));
    char will[TOPIC_MAX];
    int r = -ENOMEM;

    if (!a)
        return -ENOMEM;
    a->cfg = cfg;
    a->sig_fd = -1;
    a->health_fd = -1;
    a->held_tail = &a->held;
    a->last_state = "";
    a->started_ms = loop_now_ms();
    a->loop = loop_new();
    if (!a->loop)
        goto err;
    r = open_signals(a);
    if (r < 0) {
        log_error("cannot set up signal handling: %s", strerror(-r));
        goto err;
    }

    r = journal_open(cfg->state_dir, &a->journal);
    if (r < 0) {
        log_error("state_dir %s: %s", cfg->state_dir, strerror(-r));
        goto err;
    }
    r = refmap_open(cfg->state_dir, time(NULL), &a->refs);
    if (r < 0) {
        log_error("state_dir %s: %s: %s", cfg->state_dir, REFMAP_FILE, strerror(-r));
        goto err;
    }

    const struct modem_opts mo = {
        .port = cfg->modem.port,
        .baud = cfg->modem.baud,
        .pin = cfg->modem.pin,
        .apn = cfg->modem.apn,
        .init = cfg->modem.init,
        .n_init = cfg->modem.n_init,
        .command_timeout_ms = cfg->modem.command_timeout_ms,
    };
    const struct modem_cbs mc = { .state_changed = on_modem_state, .info_changed = on_modem_info };
    r = -ENOMEM;
    a->modem = modem_new(a->loop, &mo, &mc, a);
    if (!a->modem)
        goto err;

    const struct sms_opts so = {
        .allow_to = cfg->sms.allow_to,
        .n_allow_to = cfg->sms.n_allow_to,
        .max_parts = cfg->sms.max_parts,
        .rate_per_hour = cfg->sms.rate_per_hour,
        .keep_on_sim = cfg->sms.keep_on_sim,
        .delivery_reports = cfg->sms.delivery_reports,
    };
    const struct sms_cbs sc = {
        .received = on_sms_received, .undecodable = on_sms_undecodable,
        .report = on_sms_report,
        .acked_before = sms_acked_before, .acked = sms_acked_key,
        .store_changed = on_sms_store_changed,
    };
    a->sms = sms_new(a->loop, a->modem, &so, &sc, a);
    const struct status_cbs stc = { .changed = on_status, .tick = on_status_tick,
                                    .storage_full = on_storage_full };
    a->status = status_new(a->loop, a->modem, cfg->modem.status_interval, &stc, a);
    if (!a->sms || !a->status)
        goto err;
    /* The network may take 30 s to answer a USSD code: six command
     * timeouts (30 s with the default 5000 ms) rather than a new key. */
    a->ussd = ussd_new(a->loop, a->modem, cfg->modem.command_timeout_ms * 6);
    if (!a->ussd)
        goto err;
    {
        /* Without "remote" the service is DISABLED: commands answer
         * "unavailable" and B/status says "disabled". */
        struct cmqtt_sub_opt subs[CMQTT_MAX_SUBS];
        size_t n = cfg->remote.n_subscribe < CMQTT_MAX_SUBS ? cfg->remote.n_subscribe
                                                            : CMQTT_MAX_SUBS;
        for (size_t i = 0; i < n; i++)
            subs[i] = (struct cmqtt_sub_opt){ cfg->remote.subscribe[i].topic,
                                              cfg->remote.subscribe[i].qos };
        if (cfg->remote.enabled && cfg->remote.tls && cfg->remote.ca_file) {
            r = read_small_file(cfg->remote.ca_file, CMQTT_CA_MAX, &a->remote_ca,
                                &a->remote_ca_len);
            if (r < 0) {
                log_error("remote.ca_file %s: %s", cfg->remote.ca_file,
                          r == -EFBIG ? "larger than 16384 bytes" : strerror(-r));
                goto err;
            }
        }
        if (cfg->remote.enabled && cfg->remote.tls && cfg->remote.cert_file &&
            cfg->remote.key_file) {
            /* config.c made sure there are both or neither. */
            r = read_small_file(cfg->remote.cert_file, CMQTT_CERT_MAX, &a->remote_cert,
                                &a->remote_cert_len);
            if (r < 0) {
                log_error("remote.cert_file %s: %s", cfg->remote.cert_file,
                          r == -EFBIG ? "larger than 16384 bytes" : strerror(-r));
                goto err;
            }
            r = read_small_file(cfg->remote.key_file, CMQTT_CERT_MAX, &a->remote_key,
                                &a->remote_key_len);
            if (r < 0) {
                log_error("remote.key_file %s: %s", cfg->remote.key_file,
                          r == -EFBIG ? "larger than 16384 bytes" : strerror(-r));
                goto err;
            }
        }
        const struct cmqtt_opts ro = {
            .server = cfg->remote.enabled ? cfg->remote.server : NULL,
            .client_id = cfg->remote.client_id,
            .username = cfg->remote.username,
            .password = cfg->remote.password,
            .keepalive = cfg->remote.keepalive,
            .clean_session = cfg->remote.clean_session,
            .tls = cfg->remote.enabled && cfg->remote.tls,
            .ca_pem = a->remote_ca,
            .ca_len = a->remote_ca_len,
            .cert_pem = a->remote_cert,
            .cert_len = a->remote_cert_len,
            .key_pem = a->remote_key,
            .key_len = a->remote_key_len,
            .subs = subs,
            .n_subs = n,
        };
        const struct cmqtt_cbs rc = { .state_changed = on_remote_state,
                                      .message = on_remote_message,
                                      .error = on_remote_error };
        r = -EINVAL;
        a->cmqtt = cmqtt_new(a->loop, a->modem, &ro, &rc, a);
        if (!a->cmqtt)
            goto err;
        r = -ENOMEM;
    }
    const struct call_opts co = { .allow_to = cfg->calls.allow_to,
                                  .n_allow_to = cfg->calls.n_allow_to };
    const struct call_cbs cc = { .state = on_call_state, .ring = on_call_ring };
    a->call = call_new(a->loop, a->modem, &co, &cc, a);
    if (!a->call)
        goto err;

    r = topic(a, "availability", will, sizeof(will));
    if (r < 0)
        goto err;
    const struct mqtt_link_opts lo = {
        .uri = cfg->mqtt.broker,
        .client_id = cfg->mqtt.client_id,
        .username = cfg->mqtt.username,
        .password = cfg->mqtt.password,
        .ca_file = cfg->mqtt.ca_file,
        .keepalive = cfg->mqtt.keepalive,
        .will_topic = will,
        .persist = on_persist,
        .persist_ctx = a,
    };
    const struct mqtt_link_cbs lc = {
        .connected = on_connected, .disconnected = on_disconnected, .message = on_message,
    };
    r = -EINVAL;
    a->link = mqtt_link_new(a->loop, &lo, &lc, a);
    if (!a->link)
        goto err;
    const struct hass_opts ho = { .prefix = cfg->mqtt.ha_prefix, .base = cfg->mqtt.base_topic,
                                  .notify_to = cfg->mqtt.ha_notify_to, .sw_version = M2M_VERSION };
    r = -ENOMEM;
    a->hass = hass_new(&ho, cfg->mqtt.ha_discovery, cfg->state_dir, hass_publish, a);
    if (!a->hass)
        goto err;
    *out = a;
    return 0;

err:
    app_free(a);
    return r;
}

int app_run(struct app *a)
{
    int r;

    r = mqtt_link_start(a->link);
    if (r < 0) {
        log_error("mqtt: cannot use broker %s: %s", a->cfg->mqtt.broker, strerror(-r));
        return r;
    }
    r = journal_replay(a->journal, on_replay, a);
    if (r < 0)
        log_warn("journal: replay failed: %s", strerror(-r));
    loop_add_timer(a->loop, SETTLE_TIMEOUT_MS, settle_fired, a, &a->settle_timer);
    modem_start(a->modem);
    r = health_listen(a->cfg->state_dir, &a->health_fd);
    if (r == 0)
        r = loop_add_fd(a->loop, a->health_fd, POLLIN, on_health, a);
    if (r < 0)
        log_warn("health: cannot listen on %s/%s: %s; --health will say not running",
                 a->cfg->state_dir, HEALTH_SOCKET, strerror(-r));
    /* /metrics is an extra: the bridge runs without it. */
    if (a->cfg->metrics.listen &&
        (r = metrics_open(a->loop, a->cfg->metrics.listen, render_metrics, a, &a->metrics)) < 0)
        log_error("metrics: cannot listen on %s: %s; /metrics is off", a->cfg->metrics.listen,
                  strerror(-r));
    a->notify = notify_new();
    if (notify_watchdog_ms(a->notify) > 0)
        loop_add_timer(a->loop, notify_watchdog_ms(a->notify), watchdog_fired, a, NULL);
    notify_send(a->notify, "READY=1");
    health_update(a);
    r = loop_run(a->loop);
    notify_send(a->notify, "STOPPING=1");
    if (a->health_fd >= 0) {
        loop_del_fd(a->loop, a->health_fd);
        close(a->health_fd);
        a->health_fd = -1;
        health_remove(a->cfg->state_dir);
    }
    metrics_close(a->metrics);
    a->metrics = NULL;
    mqtt_link_stop(a->link, 3000);
    return r;
}

void app_free(struct app *a)
{
    if (!a)
        return;
    /* The modem first: cancelling its commands calls back into the services
     * and into commands, which must still exist then. */
    modem_free(a->modem);
    sms_free(a->sms);
    status_free(a->status);
    ussd_free(a->ussd);
    cmqtt_free(a->cmqtt);
    free(a->remote_ca);
    free(a->remote_cert);
    if (a->remote_key)
        explicit_bzero(a->remote_key, a->remote_key_len);   /* a secret */
    free(a->remote_key);
    call_free(a->call);
    mqtt_link_free(a->link);
    hass_free(a->hass);
    while (a->held) {
        struct held *h = a->held;
        a->held = h->next;
        held_free(h);
    }
    while (a->results) {
        struct result *r = a->results;
        a->results = r->next;
        result_free(r);      /* the journal keeps those not acknowledged */
    }
    journal_close(a->journal);
    refmap_close(a->refs);
    if (a->sig_fd >= 0) {
        if (a->loop)
            loop_del_fd(a->loop, a->sig_fd);
        close(a->sig_fd);
    }
    if (a->health_fd >= 0)
        close(a->health_fd);
    notify_free(a->notify);
    loop_free(a->loop);
    free(a->last_status);
    free(a);
}
