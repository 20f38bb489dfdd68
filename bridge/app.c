/* The bridge: routing, results, events. See app.h.
 *
 * Command path: paho thread -> persist (journal, fsync) -> PUBACK; loop
 * thread -> dispatch -> service -> finish (result on T/result, and on the
 * MQTT 5 Response Topic) -> journal record done.
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
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/sms.h"
#include "modem/status.h"
#include "mqtt/json.h"
#include "mqtt/link.h"

#define MAX_HELD 64
#define SETTLE_TIMEOUT_MS 60000   /* longest a command waits for bring-up */
#define TOPIC_MAX 512
#define RAW_AT_MAX 512

struct command;
typedef void (*route_fn)(struct app *a, struct command *cmd, const cJSON *root);

struct route {
    const char *suffix;           /* after "<base>/" */
    route_fn handle;
};

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
};

struct command {
    struct app *app;
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
    struct mqtt_link *link;
    struct modem *modem;
    struct sms *sms;
    struct status *status;
    int sig_fd;

    bool settled;                 /* the modem left "starting" at least once */
    uint64_t settle_timer;
    struct held *held, **held_tail;
    size_t n_held;

    struct modem_info info;
    bool have_info;
    char *last_status;            /* last published B/status, to skip repeats */
    const char *last_state;       /* status_state() last logged */
};

static void cmd_sms_send(struct app *a, struct command *cmd, const cJSON *root);
static void cmd_at_send(struct app *a, struct command *cmd, const cJSON *root);
static void cmd_not_yet(struct app *a, struct command *cmd, const cJSON *root);

/* Every command topic of the contract. Those of later releases answer
 * "unsupported" rather than nothing, so a script never waits in vain. */
static const struct route routes[] = {
    { "sms/send", cmd_sms_send },
    { "call/dial", cmd_not_yet },
    { "call/answer", cmd_not_yet },
    { "call/hangup", cmd_not_yet },
    { "call/dtmf", cmd_not_yet },
    { "ussd/send", cmd_not_yet },
    { "remote/publish", cmd_not_yet },
    { "remote/subscribe", cmd_not_yet },
    { "remote/unsubscribe", cmd_not_yet },
    { "modem/power", cmd_not_yet },
    { "at/send", cmd_at_send },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* --- publishing ------------------------------------------------------------- */

static int topic(const struct app *a, const char *suffix, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", a->cfg->mqtt.base_topic, suffix);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int publish(struct app *a, const char *suffix, const char *payload, int qos, bool retain,
                   mqtt_link_ack_cb ack, void *ack_ctx)
{
    char t[TOPIC_MAX];
    int r = topic(a, suffix, t, sizeof(t));

    if (r < 0)
        return r;
    return mqtt_link_publish(a->link, t, payload, strlen(payload), qos, retain, NULL, 0, ack,
                             ack_ctx);
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
    default: return "unavailable";
    }
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

static void publish_status(struct app *a)
{
    enum modem_state st = modem_state(a->modem);
    const struct status_info *si = status_get(a->status);
    bool ready = st == MODEM_READY;
    cJSON *o = cJSON_CreateObject(), *sig;
    char *s;

    if (!o)
        return;
    cJSON_AddStringToObject(o, "state", status_state(st));
    cJSON_AddStringToObject(o, "sim", sim_state(st));
    cJSON_AddStringToObject(o, "registration",
                            ready ? status_reg_name(si->reg_stat) : "unknown");
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
    cJSON_AddStringToObject(o, "remote", "disabled");
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

static void publish_error_event(struct app *a, const char *code, const char *message)
{
    char *s = json_event_error(code, message, NULL, NULL);

    if (s)
        publish(a, "error", s, 0, false, NULL, NULL);
    free(s);
}

/* --- commands --------------------------------------------------------------- */

static void command_free(struct command *cmd)
{
    if (!cmd)
        return;
    free(cmd->result_topic);
    cJSON_Delete(cmd->id);
    free(cmd->response_topic);
    free(cmd->correlation);
    free(cmd);
}

/* Publishes the one result of a command; consumes data. */
static void command_finish(struct command *cmd, cJSON *data, const struct json_error *err)
{
    struct app *a = cmd->app;
    char *s = json_result(cmd->id, data, err);

    if (err)
        log_info("command %s: %s: %s", cmd->result_topic, err->code, err->message);
    if (s) {
        if (mqtt_link_publish(a->link, cmd->result_topic, s, strlen(s), 1, false, NULL, 0, NULL,
                              NULL) < 0)
            log_warn("command %s: result not published (broker unreachable)", cmd->result_topic);
        if (cmd->response_topic &&
            mqtt_link_publish(a->link, cmd->response_topic, s, strlen(s), 1, false,
                              cmd->correlation, cmd->correlation_len, NULL, NULL) < 0)
            log_warn("command %s: response not published", cmd->result_topic);
    }
    free(s);
    /* The command has run: a restart must not run it again. */
    if (cmd->seq && a->journal)
        journal_done(a->journal, cmd->seq);
    command_free(cmd);
}

static void finish_error(struct command *cmd, const char *code, const char *message)
{
    struct json_error err = { .cme = -1, .cms = -1 };

    json_error_set(&err, code, "%s", message);
    command_finish(cmd, NULL, &err);
}

static void cmd_not_yet(struct app *a, struct command *cmd, const cJSON *root)
{
    (void)a;
    (void)root;
    finish_error(cmd, "unsupported", "this command is not implemented in this version");
}

static void sms_sent(void *ctx, const struct sms_send_result *res, const struct json_error *err)
{
    struct command *cmd = ctx;
    cJSON *data, *refs;

    if (err) {
        command_finish(cmd, NULL, err);
        return;
    }
    data = cJSON_CreateObject();
    if (data) {
        cJSON_AddNumberToObject(data, "parts", res->parts);
        refs = cJSON_AddArrayToObject(data, "references");
        for (unsigned i = 0; refs && i < res->n_references; i++)
            cJSON_AddItemToArray(refs, cJSON_CreateNumber(res->references[i]));
    }
    command_finish(cmd, data, NULL);
}

static void cmd_sms_send(struct app *a, struct command *cmd, const cJSON *root)
{
    static const char *const fields[] = { "to", "text", "flash", "report", NULL };
    struct json_error err = { .cme = -1, .cms = -1 };
    struct sms_send_req req;

    if (json_check_fields(root, fields, &err) < 0 || json_parse_sms_send(root, &req, &err) < 0) {
        command_finish(cmd, NULL, &err);
        return;
    }
    /* From here an SMS may leave: a crash must not send it twice. */
    if (cmd->seq)
        journal_started(a->journal, cmd->seq);
    sms_send(a->sms, &req, sms_sent, cmd);
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
        command_finish(cmd, NULL, &err);
        return;
    }
    data = cJSON_CreateObject();
    lines = data ? cJSON_AddArrayToObject(data, "response") : NULL;
    for (size_t i = 0; lines && i < rsp->n_lines; i++)
        cJSON_AddItemToArray(lines, cJSON_CreateString(rsp->lines[i]));
    command_finish(cmd, data, NULL);
}

static void cmd_at_send(struct app *a, struct command *cmd, const cJSON *root)
{
    static const char *const fields[] = { "command", NULL };
    struct json_error err = { .cme = -1, .cms = -1 };
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "command");
    const char *s;
    int r;

    if (!a->cfg->allow_raw_at) {
        finish_error(cmd, "not_allowed", "raw AT commands are disabled (allow_raw_at)");
        return;
    }
    if (json_check_fields(root, fields, &err) < 0) {
        command_finish(cmd, NULL, &err);
        return;
    }
    if (!cJSON_IsString(c) || strncasecmp(c->valuestring, "AT", 2) != 0 ||
        strlen(c->valuestring) > RAW_AT_MAX) {
        finish_error(cmd, "invalid_request", "'command' must be a string starting with AT, at most 512 characters");
        return;
    }
    s = c->valuestring;
    /* Prompt commands would leave the module waiting for data we never send. */
    if (strncasecmp(s, "AT+CMGS", 7) == 0 || strncasecmp(s, "AT+CMGW", 7) == 0 ||
        strncasecmp(s, "AT+CMQTT", 8) == 0 || strncasecmp(s, "AT+CCERTDOWN", 12) == 0) {
        finish_error(cmd, "invalid_request", "commands with a data prompt cannot be sent through at/send");
        return;
    }
    r = modem_send(a->modem, s, NULL, at_sent, cmd);
    if (r == -EINVAL)
        finish_error(cmd, "invalid_request", "'command' must not contain CR, LF, Ctrl-Z or ESC");
    else if (r == -EAGAIN)
        finish_error(cmd, "unavailable", "the modem is not ready");
    else if (r < 0)
        finish_error(cmd, "busy", "the modem's command queue is full");
}

static const struct route *find_route(const struct app *a, const char *t)
{
    size_t blen = strlen(a->cfg->mqtt.base_topic);

    if (strncmp(t, a->cfg->mqtt.base_topic, blen) != 0 || t[blen] != '/')
        return NULL;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(t + blen + 1, routes[i].suffix) == 0)
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
    cmd->seq = h->seq;
    if (h->response_topic)
        cmd->response_topic = strdup(h->response_topic);
    if (h->correlation_len && (cmd->correlation = malloc(h->correlation_len))) {
        memcpy(cmd->correlation, h->correlation, h->correlation_len);
        cmd->correlation_len = h->correlation_len;
    }
    return cmd;
}

/* interrupted: the command had begun when the bridge stopped (journal);
 * it is answered, never run a second time. */
static void dispatch(struct app *a, const struct held *h, bool interrupted)
{
    const struct route *r = find_route(a, h->topic);
    struct json_error err = { .cme = -1, .cms = -1 };
    const cJSON *id = NULL;
    struct command *cmd;
    cJSON *root;

    if (!r) {
        if (h->seq)
            journal_done(a->journal, h->seq);
        return;
    }
    cmd = command_new(a, h);
    if (!cmd)
        return;
    root = json_parse_command(h->payload, h->len, &id, &err);
    if (id)
        cmd->id = cJSON_Duplicate(id, true);
    if (!root) {
        command_finish(cmd, NULL, &err);
        return;
    }
    if (interrupted) {
        finish_error(cmd, "unavailable",
                     "the bridge stopped while running this command; it may have taken "
                     "effect and is not repeated");
    } else {
        log_debug("command %s", h->topic);
        r->handle(a, cmd, root);
    }
    cJSON_Delete(root);
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

    return st == MODEM_PROBING || st == MODEM_BRINGUP || (st == MODEM_CLOSED && !a->settled);
}

static void run_held(struct app *a)
{
    while (a->held) {
        struct held *h = a->held;
        a->held = h->next;
        a->n_held--;
        dispatch(a, h, false);
        held_free(h);
    }
    a->held_tail = &a->held;
}

static void take(struct app *a, struct held *h)
{
    if (!modem_starting(a)) {
        dispatch(a, h, false);
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
        dispatch(a, oldest, false);
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

static int on_persist(void *ctx, const char *t, const void *payload, size_t len, uint64_t *seq)
{
    struct app *a = ctx;
    int r;

    /* paho's thread: only the journal and the immutable config are touched. */
    *seq = 0;
    if (!a->journal || !find_route(a, t))
        return 0;
    r = journal_append(a->journal, t, payload, len, seq);
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

static void on_connected(void *ctx)
{
    struct app *a = ctx;
    char t[TOPIC_MAX];

    for (size_t i = 0; i < N_ROUTES; i++)
        if (topic(a, routes[i].suffix, t, sizeof(t)) == 0)
            mqtt_link_subscribe(a->link, t, 1);
    publish_availability(a);
    free(a->last_status);
    a->last_status = NULL;
    publish_status(a);
    publish_info(a);
    /* What could not be published while the broker was away. */
    sms_drain(a->sms);
}

static void on_disconnected(void *ctx, const char *reason)
{
    (void)ctx;
    (void)reason;   /* the link logs it */
}

static void on_message(void *ctx, const struct mqtt_link_msg *m)
{
    struct app *a = ctx;
    struct held *h;

    if (m->retained) {
        /* It would run again at every restart of the bridge. */
        log_warn("ignoring retained command on %s; clear it with: mosquitto_pub -r -n -t '%s'",
                 m->topic, m->topic);
        if (m->seq)
            journal_done(a->journal, m->seq);
        return;
    }
    h = held_new(m->topic, m->payload, m->len, m->response_topic, m->correlation,
                 m->correlation_len, m->seq);
    if (!h) {
        log_error("out of memory; command on %s dropped", m->topic);
        return;
    }
    take(a, h);
}

static void on_replay(void *ctx, uint64_t seq, const char *t, const uint8_t *payload, size_t len)
{
    struct app *a = ctx;
    struct held *h = held_new(t, payload, len, NULL, NULL, 0, seq);

    if (!h)
        return;
    if (journal_is_started(a->journal, seq)) {
        log_warn("journal: command %llu on %s was running when the bridge stopped; "
                 "answering it without running it again",
                 (unsigned long long)seq, t);
        dispatch(a, h, true);
        held_free(h);
        return;
    }
    log_info("journal: running command %llu on %s (accepted before a restart)",
             (unsigned long long)seq, t);
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

    sms_received_done(ack->app->sms, ack->token, status);
    free(ack);
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

static void on_sms_received(void *ctx, const struct sms_received *msg, uint64_t token)
{
    struct app *a = ctx;

    log_info("sms: from %s, %u part(s)", msg->from, msg->parts);
    publish_for_sms(a, "sms/received", json_sms_received(msg), token);
}

static void on_sms_undecodable(void *ctx, const char *pdu, const char *reason, uint64_t token)
{
    struct app *a = ctx;

    publish_for_sms(a, "error", json_event_error("undecodable_sms", reason, "pdu", pdu), token);
}

static void on_status(void *ctx, const struct status_info *info)
{
    (void)info;
    publish_status(ctx);
}

static void on_modem_state(void *ctx, enum modem_state st)
{
    struct app *a = ctx;
    bool ready = st == MODEM_READY;

    if (strcmp(status_state(st), a->last_state) != 0)
        log_info("modem: %s", status_state(st));
    a->last_state = status_state(st);
    if (st != MODEM_PROBING && st != MODEM_BRINGUP && (st != MODEM_CLOSED || a->settled)) {
        a->settled = true;
        loop_cancel_timer(a->loop, a->settle_timer);
        a->settle_timer = 0;
    }
    status_modem_ready(a->status, ready);
    sms_modem_ready(a->sms, ready);
    publish_availability(a);
    publish_status(a);
    if (!modem_starting(a))
        run_held(a);
    if (st == MODEM_SIM_LOCKED)
        publish_error_event(a, "sim_locked", "the SIM needs a PIN or PUK (modem.pin)");
}

static void on_modem_info(void *ctx, const struct modem_info *info)
{
    struct app *a = ctx;

    a->info = *info;
    a->have_info = true;
    publish_info(a);
}

/* --- signals ------------------------------------------------------------------ */

static void on_signal(void *ctx, int fd, short revents)
{
    struct app *a = ctx;
    struct signalfd_siginfo si;

    (void)revents;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info("signal %u: shutting down", si.ssi_signo);
    loop_stop(a->loop);
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
    a->held_tail = &a->held;
    a->last_state = "";
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
    };
    const struct sms_cbs sc = { .received = on_sms_received, .undecodable = on_sms_undecodable };
    a->sms = sms_new(a->loop, a->modem, &so, &sc, a);
    const struct status_cbs stc = { .changed = on_status };
    a->status = status_new(a->loop, a->modem, cfg->modem.status_interval, &stc, a);
    if (!a->sms || !a->status)
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
    r = loop_run(a->loop);
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
    mqtt_link_free(a->link);
    while (a->held) {
        struct held *h = a->held;
        a->held = h->next;
        held_free(h);
    }
    journal_close(a->journal);
    if (a->sig_fd >= 0) {
        if (a->loop)
            loop_del_fd(a->loop, a->sig_fd);
        close(a->sig_fd);
    }
    loop_free(a->loop);
    free(a->last_status);
    free(a);
}
