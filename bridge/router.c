/* The router: a command topic's row, its parser, and the dispatch of one
 * command through the checks every command passes. See router.h. */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "instance_int.h"

#define POOL_SUFFIX "/sms/send"

/* The parsers of mqtt/json, shaped for the table. */
/* The parsers of mqtt/json, shaped for the table. */
static int parse_sms(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_sms_send(root, &q->sms, err);
}

static int parse_dial(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    int r = json_parse_call_dial(root, &q->dial.to, err);

    return r < 0 ? r : json_parse_call_alarm(root, &q->dial.alarm, err);
}

static int parse_audio_play(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_audio_play(root, &q->play, err);
}

static int parse_audio_record(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_audio_record(root, &q->record.file, &q->record.seconds, err);
}

static int parse_audio_upload(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_audio_upload(root, &q->upload, err);
}

static int parse_dtmf(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_dtmf(root, &q->text, err);
}

static int parse_ussd(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_ussd(root, &q->text, err);
}

static int parse_publish(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_remote_publish(root, &q->publish, err);
}

static int parse_subscribe(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_remote_subscribe(root, &q->subscribe.topic, &q->subscribe.qos, err);
}

static int parse_unsubscribe(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_remote_unsubscribe(root, &q->text, err);
}

static int parse_power(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_modem_power(root, &q->power, err);
}

static int parse_select(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_network_select(root, &q->text, err);
}

static int parse_at(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    return json_parse_at_send(root, &q->text, err);
}

/* Commands without fields (but "id"). */
static int parse_empty(const cJSON *root, struct route_req *q, struct m2m_error *err)
{
    static const char *const none[] = { NULL };

    (void)q;
    return json_check_fields(root, none, err);
}

/* Every command topic of the contract, and Home Assistant's buttons.
 * Those of later releases answer "unsupported" rather than nothing, so a
 * script never waits in vain. */
static const struct route routes[] = {
    { "sms/send", parse_sms, cmd_sms_send, ROUTE_HOME_ONLY, cmd_sms_left },
    { "call/dial", parse_dial, cmd_call_dial, ROUTE_HOME_ONLY, NULL },
    { "call/answer", parse_empty, cmd_call_answer, 0, NULL },
    { "call/hangup", parse_empty, cmd_call_hangup, 0, NULL },
    { "call/dtmf", parse_dtmf, cmd_call_dtmf, 0, NULL },
    { "audio/play", parse_audio_play, cmd_audio_play, 0, NULL },
    { "audio/stop", parse_empty, cmd_audio_stop, 0, NULL },
    { "audio/record", parse_audio_record, cmd_audio_record, 0, NULL },
    { "audio/upload", parse_audio_upload, cmd_audio_upload, ROUTE_LARGE, NULL },
    { "audio/list", parse_empty, cmd_audio_list, 0, NULL },
    { "ussd/send", parse_ussd, cmd_ussd_send, ROUTE_HOME_ONLY, NULL },
    { "remote/publish", parse_publish, cmd_remote_publish, 0, NULL },
    { "remote/subscribe", parse_subscribe, cmd_remote_subscribe, 0, NULL },
    { "remote/unsubscribe", parse_unsubscribe, cmd_remote_unsubscribe, 0, NULL },
    { "modem/power", parse_power, cmd_modem_power, ROUTE_ANY_STATE, NULL },
    { "at/send", parse_at, cmd_at_send, ROUTE_RAW_AT, NULL },
    { "stats/get", parse_empty, cmd_stats_get, ROUTE_ANY_STATE | ROUTE_NO_MODEM, NULL },
    { "network/scan", parse_empty, cmd_network_scan, 0, NULL },
    { "network/select", parse_select, cmd_network_select, 0, NULL },
    /* Home Assistant's buttons: the request is made of its text fields. */
    { "ha/sms/send", parse_empty, cmd_ha_sms_send, ROUTE_HOME_ONLY, NULL },
    { "ha/call/dial", parse_empty, cmd_ha_call_dial, ROUTE_HOME_ONLY, NULL },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

bool router_is_pool_topic(const struct config *cfg, const char *t)
{
    const char *p = cfg->mqtt.pool.topic;
    size_t n = p ? strlen(p) : 0;

    return cfg->mqtt.pool.enabled && strncmp(t, p, n) == 0 && strcmp(t + n, POOL_SUFFIX) == 0;
}

const struct route *router_find(const struct config *cfg, const char *t)
{
    size_t blen = strlen(cfg->mqtt.base_topic);

    if (router_is_pool_topic(cfg, t))
        t = "sms/send";
    else if (strncmp(t, cfg->mqtt.base_topic, blen) != 0 || t[blen] != '/')
        return NULL;
    else
        t += blen + 1;
    return router_route(t);
}

const struct route *router_route(const char *suffix)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(suffix, routes[i].suffix) == 0)
            return &routes[i];
    return NULL;
}

const char *router_suffix(size_t i)
{
    return i < N_ROUTES ? routes[i].suffix : NULL;
}

void router_subscribe(struct instance *inst)
{
    char t[TOPIC_MAX];

    for (size_t i = 0; i < N_ROUTES; i++)
        if (events_topic(inst, routes[i].suffix, t, sizeof(t)) == 0)
            mqtt_link_subscribe(inst->link, t, 1);
}

static struct command *command_new(struct instance *inst, const struct held *h)
{
    struct command *cmd = calloc(1, sizeof(*cmd));
    size_t tlen = strlen(h->topic) + sizeof("/result");

    if (!cmd || !(cmd->result_topic = malloc(tlen))) {
        free(cmd);
        log_error("out of memory; command on %s dropped", h->topic);
        return NULL;
    }
    snprintf(cmd->result_topic, tlen, "%s/result", h->topic);
    cmd->inst = inst;
    cmd->pool = router_is_pool_topic(inst->cfg, h->topic);
    inst->n_running++;
    cmd->seq = h->seq;
    if (h->response_topic)
        cmd->response_topic = strdup(h->response_topic);
    if (h->correlation_len && (cmd->correlation = malloc(h->correlation_len))) {
        memcpy(cmd->correlation, h->correlation, h->correlation_len);
        cmd->correlation_len = h->correlation_len;
    }
    return cmd;
}

static cJSON *parse_payload(const struct route *r, const struct held *h, const cJSON **id,
                            struct m2m_error *err)
{
    size_t max = (r->flags & ROUTE_LARGE) ? JSON_UPLOAD_PAYLOAD_MAX : JSON_PAYLOAD_MAX;

    return json_parse_command_max(h->payload, h->len, max, id, err);
}

/* h->started > 0: the command had begun when the bridge stopped
 * (journal; for an SMS, the part whose AT+CMGS was written last): what
 * may have taken effect is answered, never run a second time. The checks
 * in the order of their answers: the payload, a restart, the modem's
 * state, raw AT, the route's parser; nothing reaches the line before all
 * passed, a roaming refusal (modem.roaming) last: bad input is told
 * first. */
void router_dispatch(struct instance *inst, const struct held *h)
{
    const struct route *r = router_find(inst->cfg, h->topic);
    struct m2m_error err = { .cme = -1, .cms = -1 };
    struct route_req req = { 0 };
    const cJSON *id = NULL;
    struct command *cmd;

    if (!r) {
        if (h->seq)
            journal_done(inst->journal, h->seq);
        return;
    }
    cmd = command_new(inst, h);
    if (!cmd)
        return;
    req.root = parse_payload(r, h, &id, &err);
    if (id)
        cmd->id = cJSON_Duplicate(id, true);
    if (!req.root) {
        command_finish(cmd, NULL, &err);
        return;
    }
    if (h->started > 0 && !r->resume) {
        command_fail(cmd, "unavailable", STOPPED_MSG);
    } else if (!h->started && !(r->flags & ROUTE_ANY_STATE) && instance_not_ready(inst)) {
        command_fail(cmd, "unavailable", instance_not_ready(inst));
    } else if ((r->flags & ROUTE_RAW_AT) && !inst->cfg->allow_raw_at) {
        command_fail(cmd, "not_allowed", "raw AT commands are disabled (allow_raw_at)");
    } else if (r->parse(req.root, &req, &err) < 0) {
        command_finish(cmd, NULL, &err);
    } else if ((r->flags & ROUTE_HOME_ONLY) && cmd_network_refuses(inst)) {
        command_fail(cmd, "not_allowed", cmd_network_refusal());
    } else {
        log_debug("command %s", h->topic);
        cmd->started = h->started;
        r->handle(inst, cmd, &req);
    }
    cJSON_Delete(req.root);
}

/* A replayed command begun before the restart with work it had not begun
 * (route's resume): that work runs, so it waits for the modem like a new
 * command. */
bool router_work_left(const struct instance *inst, const struct held *h)
{
    const struct route *r = router_find(inst->cfg, h->topic);
    struct m2m_error err;
    struct route_req req = { 0 };
    const cJSON *id;
    bool left = false;

    if (!r || !r->resume)
        return false;
    req.root = parse_payload(r, h, &id, &err);
    if (req.root && r->parse(req.root, &req, &err) == 0)
        left = r->resume(&req, h->started);
    cJSON_Delete(req.root);
    return left;
}
