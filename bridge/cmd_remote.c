/* The remote broker through the module (modem/cmqtt): B/remote/publish,
 * subscribe and unsubscribe, remote.forward (local -> remote), and the
 * remote messages published locally (B/remote/message and
 * remote.subscribe[].local) with their backlog. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "instance_int.h"
#include "modem/cmqtt.h"

/* Messages from the remote broker on their way to the local one (waiting
 * in the link or for the broker's PUBACK), in bytes published. The module
 * cannot be told to pause, so beyond this a message is dropped, counted,
 * and reported on B/error once until the backlog has drained to half. A
 * quarter of the link's own queue: results and events still get in. */
#define REMOTE_BACKLOG_MAX_BYTES (1024u * 1024)

/* The command codec checks B/remote/publish against the module's limits. */
_Static_assert(JSON_REMOTE_TOPIC_MAX == CMQTT_TOPIC_MAX, "one topic limit");
_Static_assert(JSON_REMOTE_PAYLOAD_MAX == CMQTT_PAYLOAD_MAX, "one payload limit");

static void remote_cmd_done(void *ctx, const struct m2m_error *err)
{
    command_finish(ctx, NULL, err);
}

/* cmqtt copies the payload: a decoded one (base64) is freed here. */
void cmd_remote_publish(struct instance *inst, struct command *cmd, struct route_req *req)
{
    struct remote_publish_req pub = req->publish;

    cmqtt_publish(inst->cmqtt, pub.topic, pub.payload, pub.payload_len, pub.qos, pub.retain,
                  remote_cmd_done, cmd);
    json_remote_publish_clear(&pub);
}

void cmd_remote_subscribe(struct instance *inst, struct command *cmd, struct route_req *req)
{
    cmqtt_subscribe(inst->cmqtt, req->subscribe.topic, req->subscribe.qos, remote_cmd_done,
                    cmd);
}

void cmd_remote_unsubscribe(struct instance *inst, struct command *cmd, struct route_req *req)
{
    cmqtt_unsubscribe(inst->cmqtt, req->text, remote_cmd_done, cmd);
}

/* remote.forward: a local message on a rule's filter goes to the remote
 * broker as is. Not a command: no result, no journal (on_persist only
 * journals command topics). Returns whether a rule matched. */
bool cmd_remote_forward(struct instance *inst, const struct mqtt_link_msg *m)
{
    bool matched = false;

    for (size_t i = 0; i < inst->cfg->remote.n_forward; i++) {
        const struct config_remote_fwd *f = &inst->cfg->remote.forward[i];
        if (!cmqtt_topic_match(f->local, m->topic, strlen(m->topic)))
            continue;
        matched = true;
        if (m->len > JSON_REMOTE_PAYLOAD_MAX) {
            log_warn("remote: forward %s -> %s: %zu bytes, the module takes at most %d; dropped",
                     m->topic, f->remote, m->len, JSON_REMOTE_PAYLOAD_MAX);
            continue;
        }
        log_debug("remote: forward %s -> %s (%zu bytes)", m->topic, f->remote, m->len);
        cmqtt_publish(inst->cmqtt, f->remote, m->payload, m->len, f->qos, false, NULL, NULL);
    }
    return matched;
}

static void on_remote_state(void *ctx, enum cmqtt_state st, const char *reason)
{
    struct instance *inst = ctx;

    (void)reason;   /* cmqtt logs it */
    if (st == CMQTT_CONNECTED) {
        if (inst->remote_connected_once)
            cmd_stats_count(inst, STATS_REMOTE_RECONNECTS);
        inst->remote_connected_once = true;
    }
    events_status(inst);
}

/* One publish of a remote message, counted in the backlog until its ack. */
struct remote_ack {
    struct instance *inst;
    size_t bytes;
};

static void remote_overflowed(struct instance *inst, const char *t)
{
    char msg[256];

    inst->remote_dropped++;
    if (inst->remote_overflow) {
        log_debug("remote: message on %s dropped (backlog full)", t);
        return;
    }
    inst->remote_overflow = true;
    snprintf(msg, sizeof(msg),
             "the local broker takes remote messages slower than they come: %zu bytes wait for "
             "it; dropping them until half of that is through (%llu dropped since the start)",
             inst->remote_backlog, (unsigned long long)inst->remote_dropped);
    log_error("remote: %s", msg);
    events_error(inst, "queue_overflow", msg);
}

static void remote_acked(void *ctx, int status)
{
    struct remote_ack *ra = ctx;
    struct instance *inst = ra->inst;

    inst->remote_backlog -= ra->bytes;
    free(ra);
    if (status == -ECANCELED)
        return;                  /* shutting down */
    if (status < 0) {
        /* Queued or unacknowledged when the connection dropped: the broker
         * may not have it, and the module will not send it again. */
        inst->remote_dropped++;
        if (!inst->remote_loss_logged)
            log_warn("remote: message(s) lost with the local broker connection (%s); %llu "
                     "dropped since the start",
                     strerror(-status), (unsigned long long)inst->remote_dropped);
        inst->remote_loss_logged = true;
    } else {
        inst->remote_loss_logged = false;
    }
    if (inst->remote_overflow && inst->remote_backlog <= REMOTE_BACKLOG_MAX_BYTES / 2) {
        inst->remote_overflow = false;
        log_info("remote: backlog down to %zu bytes; %llu dropped since the start",
                 inst->remote_backlog, (unsigned long long)inst->remote_dropped);
    }
    results_link_room(inst);
}

/* Publishes one part of a remote message with its backlog accounting; a
 * JSON text (payload NUL-terminated) goes through publish_text. */
static int remote_publish(struct instance *inst, const char *t, const void *payload, size_t len,
                          int qos, bool text)
{
    struct remote_ack *ra = malloc(sizeof(*ra));
    int r;

    if (!ra)
        return -ENOMEM;
    *ra = (struct remote_ack){ inst, len };
    r = text ? events_publish_text(inst, t, payload, qos, false, NULL, 0, remote_acked, ra)
             : mqtt_link_publish(inst->link, t, payload, len, qos, false, NULL, 0, remote_acked,
                                 ra);
    if (r < 0) {
        free(ra);
        return r;
    }
    inst->remote_backlog += len;
    return 0;
}

/* B/remote/message, and the raw payload on remote.subscribe[].local. */
static void on_remote_message(void *ctx, const char *t, size_t tlen, const uint8_t *payload,
                              size_t len, int qos)
{
    struct instance *inst = ctx;
    char *s = json_remote_message(t, tlen, payload, len, qos);
    char tm[TOPIC_MAX];
    size_t need = s ? strlen(s) : 0;
    int r;

    for (size_t i = 0; i < inst->cfg->remote.n_subscribe; i++) {
        const struct config_remote_sub *sub = &inst->cfg->remote.subscribe[i];
        if (sub->local && cmqtt_topic_match(sub->topic, t, tlen))
            need += len;
    }
    /* All of it or nothing: one B/error per episode, not per topic. */
    if (inst->remote_backlog + need > REMOTE_BACKLOG_MAX_BYTES) {
        remote_overflowed(inst, t);
        free(s);
        return;
    }
    r = s && events_topic(inst, "remote/message", tm, sizeof(tm)) == 0
            ? remote_publish(inst, tm, s, strlen(s), 1, true)
            : -ENOMEM;
    if (r == -ENOBUFS)
        remote_overflowed(inst, t);
    else if (r < 0)
        log_warn("remote: message on %s not published locally: %s", t, strerror(-r));
    free(s);
    for (size_t i = 0; i < inst->cfg->remote.n_subscribe; i++) {
        const struct config_remote_sub *sub = &inst->cfg->remote.subscribe[i];
        if (!sub->local || !cmqtt_topic_match(sub->topic, t, tlen))
            continue;
        r = remote_publish(inst, sub->local, payload, len, sub->qos, false);
        if (r == -ENOBUFS)
            remote_overflowed(inst, t);
        else if (r < 0)
            log_warn("remote: message on %s not published on %s: %s", t, sub->local,
                     strerror(-r));
    }
}

static void on_remote_error(void *ctx, const char *code, const char *message)
{
    events_error(ctx, code, message);
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

/* remote.<key>'s file (TLS material). 0 or -errno, logged. */
static int load_file(const char *key, const char *path, size_t max, uint8_t **out, size_t *len)
{
    int r = read_small_file(path, max, out, len);

    if (r == -EFBIG)
        log_error("remote.%s %s: larger than %zu bytes", key, path, max);
    else if (r < 0)
        log_error("remote.%s %s: %s", key, path, strerror(-r));
    return r;
}

/* Without "remote" the service is DISABLED: commands answer "unavailable"
 * and B/status says "disabled". */
int cmd_remote_open(struct instance *inst)
{
    const struct config *cfg = inst->cfg;
    struct cmqtt_sub_opt subs[CMQTT_MAX_SUBS];
    size_t n = cfg->remote.n_subscribe < CMQTT_MAX_SUBS ? cfg->remote.n_subscribe : CMQTT_MAX_SUBS;
    bool tls = cfg->remote.enabled && cfg->remote.tls;
    int r;

    for (size_t i = 0; i < n; i++)
        subs[i] = (struct cmqtt_sub_opt){ cfg->remote.subscribe[i].topic,
                                          cfg->remote.subscribe[i].qos };
    if (tls && cfg->remote.ca_file &&
        (r = load_file("ca_file", cfg->remote.ca_file, CMQTT_CA_MAX, &inst->remote_ca,
                       &inst->remote_ca_len)) < 0)
        return r;
    /* config.c made sure there are both or neither. */
    if (tls && cfg->remote.cert_file && cfg->remote.key_file &&
        ((r = load_file("cert_file", cfg->remote.cert_file, CMQTT_CERT_MAX, &inst->remote_cert,
                        &inst->remote_cert_len)) < 0 ||
         (r = load_file("key_file", cfg->remote.key_file, CMQTT_CERT_MAX, &inst->remote_key,
                        &inst->remote_key_len)) < 0))
        return r;
    const struct cmqtt_opts ro = {
        .server = cfg->remote.enabled ? cfg->remote.server : NULL,
        .client_id = cfg->remote.client_id,
        .username = cfg->remote.username,
        .password = cfg->remote.password,
        .keepalive = cfg->remote.keepalive,
        .clean_session = cfg->remote.clean_session,
        .tls = tls,
        .ca_pem = inst->remote_ca,
        .ca_len = inst->remote_ca_len,
        .cert_pem = inst->remote_cert,
        .cert_len = inst->remote_cert_len,
        .key_pem = inst->remote_key,
        .key_len = inst->remote_key_len,
        .subs = subs,
        .n_subs = n,
        .will_topic = cfg->remote.will.enabled ? cfg->remote.will.topic : NULL,
        .will_payload = (const uint8_t *)cfg->remote.will.payload,
        .will_len = cfg->remote.will.payload ? strlen(cfg->remote.will.payload) : 0,
        .will_qos = cfg->remote.will.qos,
    };
    const struct cmqtt_cbs cbs = { .state_changed = on_remote_state,
                                   .message = on_remote_message,
                                   .error = on_remote_error };
    inst->cmqtt = cmqtt_new(inst->loop, inst->modem, &ro, &cbs, inst);
    return inst->cmqtt ? 0 : -EINVAL;
}

void cmd_remote_close(struct instance *inst)
{
    cmqtt_free(inst->cmqtt);
    inst->cmqtt = NULL;
    free(inst->remote_ca);
    free(inst->remote_cert);
    if (inst->remote_key)
        explicit_bzero(inst->remote_key, inst->remote_key_len);   /* a secret */
    free(inst->remote_key);
    inst->remote_ca = inst->remote_cert = inst->remote_key = NULL;
}
