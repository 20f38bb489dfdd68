/* Command results: each stays in the journal with its command until the
 * broker acknowledged it, so a crash cannot lose it and a restart never
 * runs the command again.
 *
 * finish: the result is stored in the journal, then published on
 * T/result (and on the MQTT 5 Response Topic) once the broker connection
 * is up -> the broker's PUBACK -> journal record done. A result still
 * unacknowledged at a crash is published after the restart. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/journal.h"
#include "core/log.h"
#include "core/loop.h"
#include "instance_int.h"

#define RESULT_COMMIT_TRIES 2     /* see commit_fired */
#define RESULT_COMMIT_RETRY_MS 1

/* A result until the broker acknowledged it; also kept in the journal
 * with its command (seq) so that a crash cannot lose it. */
struct result {
    struct result *next;
    struct instance *inst;
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

static void result_unlink(struct instance *inst, struct result *r)
{
    for (struct result **pp = &inst->results; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

static void flush(struct instance *inst);

static void result_acked(void *ctx, int status)
{
    struct result *r = ctx;
    struct instance *inst = r->inst;

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
        if (r->seq && inst->journal)
            journal_done(inst->journal, r->seq);
        result_unlink(inst, r);
        result_free(r);
    } else {
        r->parked = true;       /* not again and again: at the next connect */
    }
    flush(inst);
}

/* Publishes what is not in flight; what the link refuses now (not
 * connected, its queue full) waits for the next connect or for an ack of
 * ours (a result's or a remote message's), which means the link has room. */
static void flush(struct instance *inst)
{
    inst->results_refused = false;
    for (struct result *r = inst->results; r; r = r->next) {
        if (r->in_flight || r->parked || !r->durable)
            continue;
        if (events_publish_text(inst, r->topic, r->payload, 1, false, NULL, 0, result_acked,
                                r) < 0) {
            inst->results_refused = true;
            return;
        }
        r->in_flight = true;
        if (r->response_topic &&
            events_publish_text(inst, r->response_topic, r->payload, 1, false, r->correlation,
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
    struct instance *inst = ctx;
    int ret = inst->commit_tries++ < RESULT_COMMIT_TRIES ? journal_commit_soon(inst->journal)
                                                     : journal_commit(inst->journal);

    if (ret == -EAGAIN)
        return RESULT_COMMIT_RETRY_MS;
    inst->commit_timer = 0;
    inst->commit_tries = 0;
    if (ret < 0)
        log_error("journal: results not flushed; publishing them anyway (a crash now could "
                  "run their commands again)");
    for (struct result *r = inst->results; r; r = r->next)
        r->durable = true;
    flush(inst);
    return 0;
}

static void results_add(struct instance *inst, struct result *r)
{
    struct result **pp = &inst->results;

    r->inst = inst;
    if (!r->durable && !inst->commit_timer &&
        loop_add_timer(inst->loop, 0, commit_fired, inst, &inst->commit_timer) < 0) {
        journal_commit(inst->journal);
        r->durable = true;
    }
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;            /* in order: results go out as commands finished */
    flush(inst);
}

static void command_free(struct command *cmd)
{
    if (!cmd)
        return;
    cmd->inst->n_running--;
    free(cmd->result_topic);
    cJSON_Delete(cmd->id);
    free(cmd->response_topic);
    free(cmd->correlation);
    free(cmd);
}

/* Publishes the one result of a command; consumes data. */
void command_finish(struct command *cmd, cJSON *data, const struct m2m_error *err)
{
    struct instance *inst = cmd->inst;
    char *s;
    struct result *r;

    /* Which modem of the pool ran it. */
    if (cmd->pool && (data || (data = cJSON_CreateObject())))
        cJSON_AddStringToObject(data, "modem", inst->name);
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
    if (r->seq && inst->journal) {
        size_t len = 0;
        uint8_t *blob = result_encode(r, &len);

        /* Kept with the command until the broker has it: a crash before
         * that publishes it after the restart, never runs it again. It
         * goes out once flushed (commit_fired). */
        if (!blob || journal_result(inst->journal, r->seq, blob, len) < 0)
            log_error("journal: the result on %s is not stored; a crash now would lose it",
                      r->topic);
        else
            r->durable = false;
        free(blob);
    }
    results_add(inst, r);
    command_free(cmd);
}

void command_fail(struct command *cmd, const char *code, const char *message)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    m2m_error_set(&err, code, "%s", message);
    command_finish(cmd, NULL, &err);
}

int results_replay(struct instance *inst, uint64_t seq, const uint8_t *blob, size_t len)
{
    struct result *r = result_decode(blob, len);

    if (!r)
        return -EINVAL;
    r->seq = seq;
    r->durable = true;
    results_add(inst, r);
    return 0;
}

void results_flush(struct instance *inst, bool again)
{
    for (struct result *r = inst->results; again && r; r = r->next)
        r->parked = false;
    flush(inst);
}

void results_link_room(struct instance *inst)
{
    if (inst->results_refused)
        flush(inst);
}

/* The journal keeps those not acknowledged. */
void results_free_all(struct instance *inst)
{
    while (inst->results) {
        struct result *r = inst->results;
        inst->results = r->next;
        result_free(r);
    }
}
