/* The remote-broker service's jobs, one at a time, each an AT script
 * (at/script.h) on the module's MQTT client 0:
 *
 *   connect      START [TLS: CA, client certificate and key uploads,
 *                CSSLCFG ..., CMQTTSSLCFG] ACCQ CFG [DISC] [WILLTOPIC
 *                (prompt, bytes) WILLMSG (prompt, bytes)] CONNECT SUB...
 *   publish      TOPIC (prompt, bytes) [PAYLOAD (prompt, bytes)] PUB
 *   subscribe    SUB (prompt, the filter)
 *   unsubscribe  UNSUBTOPIC (prompt, the filter) UNSUB
 *   stop         [DISC] REL STOP
 *
 * A step succeeds on OK and, for the commands whose result comes after OK
 * ("+CMQTTCONNECT: 0,<e>"), a zero <e> (the chat waits for that line:
 * after_ok_prefix). The steps that tolerate ERROR (already started,
 * already acquired, a setting older firmware lacks) are OPTIONAL.
 *
 * The job's end: the script's ended() answers the job (job_done), with
 * what a done callback recorded in c->failure, or else what the answer
 * says. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/result.h"
#include "at/script.h"
#include "core/log.h"
#include "modem/cmqtt_int.h"
#include "modem/modem.h"

#define CONNECT_TIMEOUT_MS 40000   /* the module's own connect timeout is ~30 s */
#define SHORT_TIMEOUT_MS 10000
#define UPLOAD_TIMEOUT_MS 20000
#define PUB_TIMEOUT_MS ((CMQTT_PUB_TIMEOUT_S + 5) * 1000)
/* The chat waits for DISC's answer longer than the module may take. */
#define DISC_TIMEOUT_MS ((CMQTT_DISC_TIMEOUT_S + 5) * 1000)
#define MAX_ATTEMPTS 3             /* a QoS 1/2 publish is tried this often */
#define CMQTT_CA_NAME "m2m_ca.pem" /* the CA's name in the module's file system */
#define CMQTT_CERT_NAME "client.pem" /* the client certificate's (tls with cert_pem) */
#define CMQTT_KEY_NAME "client.key"  /* its key's */

/* --- answers ------------------------------------------------------------------- */

/* Records why the job fails, for job_ended(). */
static enum at_script_verdict fail(struct cmqtt *c, const char *code, const char *why, int e)
{
    c->failure.code = code;
    snprintf(c->failure.why, sizeof(c->failure.why), "%s", why);
    c->failure.e = e;
    return AT_SCRIPT_FAIL;
}

/* The session ended (CONNLOST, NONET) while the job was between steps
 * (TOPIC done, PUB next): the rest would only collect "no connection". */
static bool session_gone(const struct cmqtt *c)
{
    if (c->cur->kind == JOB_CONNECT)
        return c->lost_while_connecting;
    return c->state != CMQTT_CONNECTED;
}

static enum at_script_verdict fail_gone(struct cmqtt *c)
{
    return fail(c, "unavailable", c->have_reason ? c->reason : "connection lost", 11);
}

/* --- builders ------------------------------------------------------------------ */

static bool put(struct at_script_cmd *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool put(struct at_script_cmd *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out->buf, out->size, fmt, ap);
    va_end(ap);
    return true;
}

/* AT+CCERTDOWN: the file's bytes go after the prompt (the chat logs only
 * their length: a key stays out of the log). */
static bool put_upload(struct at_script_cmd *out, const char *name, const uint8_t *pem,
                       size_t len)
{
    out->data = pem;
    out->data_len = len;
    return put(out, "AT+CCERTDOWN=\"%s\",%zu", name, len);
}

/* The CA goes into the module's file system once per boot. */
static bool build_ca_upload(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return !c->cert_loaded && put_upload(out, CMQTT_CA_NAME, c->opt.ca_pem, c->opt.ca_len);
}

static bool build_cert_upload(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->opt.cert_pem && !c->cert_loaded &&
           put_upload(out, CMQTT_CERT_NAME, c->opt.cert_pem, c->opt.cert_len);
}

static bool build_key_upload(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->opt.cert_pem && !c->cert_loaded &&
           put_upload(out, CMQTT_KEY_NAME, c->opt.key_pem, c->opt.key_len);
}

/* 1: the module checks the server against the CA; 2: and presents its own
 * certificate as well. */
static bool build_authmode(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return put(out, "AT+CSSLCFG=\"authmode\",0,%d", c->opt.cert_pem ? 2 : 1);
}

static bool build_clientcert(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->opt.cert_pem && put(out, "AT+CSSLCFG=\"clientcert\",0,\"%s\"", CMQTT_CERT_NAME);
}

static bool build_clientkey(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->opt.cert_pem && put(out, "AT+CSSLCFG=\"clientkey\",0,\"%s\"", CMQTT_KEY_NAME);
}

/* ERROR (+CMQTTACCQ: 0,19): still acquired from before. */
static bool build_accq(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return put(out, "AT+CMQTTACCQ=0,\"%s\"%s", c->opt.client_id, c->opt.tls ? ",1" : "");
}

/* A command failed while the module may still hold the old session (a
 * publish timed out): close it first, whatever the module answers. */
static bool build_disc_old(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->need_disc && put(out, "AT+CMQTTDISC=0,%d", CMQTT_DISC_TIMEOUT_S);
}

/* The will goes into the module's client before every CONNECT (the
 * CONNECT packet carries it), topic and message as counted bytes after
 * the prompt: nothing in them can end the command. */
static bool build_will_topic(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;
    size_t len = c->opt.will_topic ? strlen(c->opt.will_topic) : 0;

    if (!len)
        return false;
    out->data = (const uint8_t *)c->opt.will_topic;
    out->data_len = len;
    return put(out, "AT+CMQTTWILLTOPIC=0,%zu", len);
}

static bool build_will_msg(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    if (!c->opt.will_topic)
        return false;
    out->data = c->opt.will_payload;
    out->data_len = c->opt.will_len;
    return put(out, "AT+CMQTTWILLMSG=0,%zu,%d", c->opt.will_len, c->opt.will_qos);
}

static bool build_connect(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;
    const struct cmqtt_opts *o = &c->opt;

    if (o->username && o->password)
        return put(out, "AT+CMQTTCONNECT=0,\"%s\",%d,%d,\"%s\",\"%s\"", o->server, o->keepalive,
                   o->clean_session ? 1 : 0, o->username, o->password);
    if (o->username)
        return put(out, "AT+CMQTTCONNECT=0,\"%s\",%d,%d,\"%s\"", o->server, o->keepalive,
                   o->clean_session ? 1 : 0, o->username);
    return put(out, "AT+CMQTTCONNECT=0,\"%s\",%d,%d", o->server, o->keepalive,
               o->clean_session ? 1 : 0);
}

/* AT+CMQTTSUB with the filter after the prompt. */
static bool put_sub(struct at_script_cmd *out, const char *topic, size_t len, int qos)
{
    out->data = (const uint8_t *)topic;
    out->data_len = len;
    return put(out, "AT+CMQTTSUB=0,%zu,%d", len, qos);
}

/* The subscriptions, one after another (done_resub), after a connect. */
static bool build_resub(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    if (c->sub_index >= c->n_subs)
        return false;
    return put_sub(out, c->subs[c->sub_index].topic, strlen(c->subs[c->sub_index].topic),
                   c->subs[c->sub_index].qos);
}

/* AT+CMQTTTOPIC and AT+CMQTTUNSUBTOPIC: the job's topic after the prompt. */
static bool put_topic(struct at_script_cmd *out, const char *cmd, const struct job *j)
{
    out->data = (const uint8_t *)j->topic;
    out->data_len = j->topic_len;
    return put(out, "%s=0,%zu", cmd, j->topic_len);
}

static bool build_topic(void *ctx, struct at_script_cmd *out)
{
    return put_topic(out, "AT+CMQTTTOPIC", ((struct cmqtt *)ctx)->cur);
}

/* Empty payload: no AT+CMQTTPAYLOAD (the module takes 1-10240 bytes). */
static bool build_payload(void *ctx, struct at_script_cmd *out)
{
    struct job *j = ((struct cmqtt *)ctx)->cur;

    if (j->len == 0)
        return false;
    out->data = j->payload;
    out->data_len = j->len;
    return put(out, "AT+CMQTTPAYLOAD=0,%zu", j->len);
}

static bool build_pub(void *ctx, struct at_script_cmd *out)
{
    struct job *j = ((struct cmqtt *)ctx)->cur;

    return put(out, "AT+CMQTTPUB=0,%d,%d%s", j->qos, CMQTT_PUB_TIMEOUT_S,
               j->retain ? ",1" : "");
}

static bool build_sub(void *ctx, struct at_script_cmd *out)
{
    struct job *j = ((struct cmqtt *)ctx)->cur;

    return put_sub(out, j->topic, j->topic_len, j->qos);
}

static bool build_unsubtopic(void *ctx, struct at_script_cmd *out)
{
    return put_topic(out, "AT+CMQTTUNSUBTOPIC", ((struct cmqtt *)ctx)->cur);
}

/* The session is closed only when there is one. */
static bool build_disc(void *ctx, struct at_script_cmd *out)
{
    struct cmqtt *c = ctx;

    return c->state == CMQTT_CONNECTED && put(out, "AT+CMQTTDISC=0,%d", CMQTT_DISC_TIMEOUT_S);
}

/* --- done callbacks ------------------------------------------------------------- */

/* Plain MQTT goes from START straight to the client. ERROR: already
 * started (after a CONNLOST the stack runs on). */
static enum at_script_verdict done_start(void *ctx, const struct at_response *rsp)
{
    struct cmqtt *c = ctx;

    (void)rsp;
    return c->opt.tls ? AT_SCRIPT_NEXT : AT_SCRIPT_JUMP;
}

/* The last upload done: not again until the modem restarts. */
static enum at_script_verdict uploaded(struct cmqtt *c, const struct at_response *rsp,
                                       bool last)
{
    if (!cmqtt_answer_ok(rsp))
        return AT_SCRIPT_FAIL;
    if (last)
        c->cert_loaded = true;
    return AT_SCRIPT_NEXT;
}

static enum at_script_verdict done_ca_upload(void *ctx, const struct at_response *rsp)
{
    struct cmqtt *c = ctx;

    return uploaded(c, rsp, !c->opt.cert_pem);
}

static enum at_script_verdict done_key_upload(void *ctx, const struct at_response *rsp)
{
    return uploaded(ctx, rsp, true);
}

/* CONNECT and the steps of a publish, subscribe, unsubscribe: the job
 * stops when the session ended meanwhile. */
static enum at_script_verdict done_session(void *ctx, const struct at_response *rsp)
{
    struct cmqtt *c = ctx;

    if (!cmqtt_answer_ok(rsp))
        return AT_SCRIPT_FAIL;
    return session_gone(c) ? fail_gone(c) : AT_SCRIPT_NEXT;
}

/* One refused filter must not take the session down (and retry it
 * forever): reported, and the next one is tried. */
static enum at_script_verdict done_resub(void *ctx, const struct at_response *rsp)
{
    struct cmqtt *c = ctx;

    if (!cmqtt_answer_ok(rsp) && c->sub_index < c->n_subs) {
        char msg[200];
        int e = cmqtt_answer_code(rsp);
        snprintf(msg, sizeof(msg), "subscribing to %s on the remote broker failed: %s (%d)",
                 c->subs[c->sub_index].topic, cmqtt_error_text(e), e);
        log_warn("remote: connect: %s", msg);
        if (c->cbs.error)
            c->cbs.error(c->ctx, "remote_subscribe_failed", msg);
    }
    if (session_gone(c))
        return fail_gone(c);
    c->sub_index++;
    return AT_SCRIPT_AGAIN;
}

/* --- scripts -------------------------------------------------------------------- */

#define OPT AT_STEP_OPTIONAL
static const struct at_script_step connect_steps[] = {
    { .name = "start", .cmd = "AT+CMQTTSTART", .after_ok_prefix = "+CMQTTSTART:",
      .jump = "acquire", .done = done_start },
    { .name = "CA upload", .build = build_ca_upload, .timeout_ms = UPLOAD_TIMEOUT_MS,
      .done = done_ca_upload },
    { .name = "client certificate upload", .build = build_cert_upload,
      .timeout_ms = UPLOAD_TIMEOUT_MS },
    { .name = "client key upload", .build = build_key_upload, .timeout_ms = UPLOAD_TIMEOUT_MS,
      .done = done_key_upload },
    { .name = "TLS version", .cmd = "AT+CSSLCFG=\"sslversion\",0,4" },
    { .name = "TLS authentication", .build = build_authmode },
    { .name = "TLS CA", .cmd = "AT+CSSLCFG=\"cacert\",0,\"" CMQTT_CA_NAME "\"" },
    { .name = "TLS client certificate", .build = build_clientcert },
    { .name = "TLS client key", .build = build_clientkey },
    /* Virtual hosts (most cloud brokers) need the server name; older
     * firmware lacks the setting. */
    { .name = "TLS SNI", .cmd = "AT+CSSLCFG=\"enableSNI\",0,1", .flags = OPT },
    { .name = "TLS context", .cmd = "AT+CMQTTSSLCFG=0,0" },
    { .label = "acquire", .name = "acquire", .build = build_accq, .flags = OPT },
    /* MQTT 3.1.1; older firmware lacks the command. */
    { .name = "MQTT version", .cmd = "AT+CMQTTCFG=\"version\",0,4", .flags = OPT },
    { .name = "close the old session", .build = build_disc_old,
      .after_ok_prefix = "+CMQTTDISC:", .timeout_ms = DISC_TIMEOUT_MS, .flags = OPT },
    /* Not optional: a will the module refuses must not vanish quietly. */
    { .name = "will topic", .build = build_will_topic },
    { .name = "will message", .build = build_will_msg },
    { .name = "connect", .build = build_connect, .after_ok_prefix = "+CMQTTCONNECT:",
      .timeout_ms = CONNECT_TIMEOUT_MS, .done = done_session },
    { .name = "subscribe", .build = build_resub, .after_ok_prefix = "+CMQTTSUB:",
      .timeout_ms = PUB_TIMEOUT_MS, .done = done_resub },
};

static const struct at_script_step publish_steps[] = {
    { .name = "topic", .build = build_topic, .done = done_session },
    { .name = "payload", .build = build_payload, .done = done_session },
    { .name = "publish", .build = build_pub, .after_ok_prefix = "+CMQTTPUB:",
      .timeout_ms = PUB_TIMEOUT_MS, .done = done_session },
};

static const struct at_script_step subscribe_steps[] = {
    { .name = "subscribe", .build = build_sub, .after_ok_prefix = "+CMQTTSUB:",
      .timeout_ms = PUB_TIMEOUT_MS, .done = done_session },
};

static const struct at_script_step unsubscribe_steps[] = {
    { .name = "topic", .build = build_unsubtopic, .done = done_session },
    { .name = "unsubscribe", .cmd = "AT+CMQTTUNSUB=0,0", .after_ok_prefix = "+CMQTTUNSUB:",
      .timeout_ms = PUB_TIMEOUT_MS, .done = done_session },
};

/* Best effort: every step goes on whatever the module answers. */
static const struct at_script_step stop_steps[] = {
    { .name = "disconnect", .build = build_disc, .after_ok_prefix = "+CMQTTDISC:",
      .timeout_ms = DISC_TIMEOUT_MS, .flags = OPT },
    { .name = "release", .cmd = "AT+CMQTTREL=0", .timeout_ms = 3000, .flags = OPT },
    { .name = "stop", .cmd = "AT+CMQTTSTOP", .after_ok_prefix = "+CMQTTSTOP:",
      .timeout_ms = 3000, .flags = OPT },
};
#undef OPT

/* Indexed by enum job_kind. A publish is the busiest: its steps are
 * logged at debug level. */
static const struct at_script scripts[] = {
    [JOB_CONNECT] = { "remote", "connect", AT_SCRIPT_STEPS(connect_steps), cmqtt_answer_ok },
    [JOB_PUBLISH] = { "remote", "publish", AT_SCRIPT_STEPS(publish_steps), cmqtt_answer_ok,
                      .quiet = true },
    [JOB_SUB] = { "remote", "subscribe", AT_SCRIPT_STEPS(subscribe_steps), cmqtt_answer_ok },
    [JOB_UNSUB] = { "remote", "unsubscribe", AT_SCRIPT_STEPS(unsubscribe_steps), cmqtt_answer_ok },
    [JOB_STOP] = { "remote", "stop", AT_SCRIPT_STEPS(stop_steps), cmqtt_answer_ok },
};

const struct at_script *cmqtt_script(unsigned i)
{
    return i < sizeof(scripts) / sizeof(scripts[0]) ? &scripts[i] : NULL;
}

/* --- the runner ----------------------------------------------------------------- */

static void connect_done(struct cmqtt *c, const char *code, const char *why)
{
    if (code) {
        /* Whatever state the module's client is in now, the next attempt
         * starts from a closed session. */
        c->need_disc = true;
        cmqtt_session_lost(c, why);
        return;
    }
    if (c->lost_while_connecting)
        return;   /* +CMQTTCONNLOST came during the subscriptions: the retry is scheduled */
    c->need_disc = false;
    c->stats.connects++;
    c->backoff_ms = c->opt.backoff_min_ms;
    cmqtt_set_state(c, CMQTT_CONNECTED, NULL);
}

/* false: j goes first again after the reconnect (not answered, not freed). */
static bool publish_done(struct cmqtt *c, struct job *j, const char *code, const char *why,
                         int e)
{
    if (code && j->qos > 0 && cmqtt_conn_code(e) && ++j->attempts < MAX_ATTEMPTS && !c->stopping) {
        /* The session broke under it. */
        log_info("remote: publish on %s failed (%s); kept for the reconnect", j->topic, why);
        j->next = c->queue;
        c->queue = j;
        if (!j->next)
            c->tail = &j->next;
        c->n_queue++;
        return false;
    }
    if (!code)
        c->stats.published++;
    cmqtt_job_answer(j, code, "publish on the remote broker failed", why);
    return true;
}

static void stop_done(struct cmqtt *c)
{
    void (*fn)(void *) = c->stopped;

    cmqtt_set_state(c, CMQTT_DISCONNECTED, "stopped");
    c->stopped = NULL;
    if (fn)
        fn(c->stopped_ctx);
}

/* The job in flight ended: code NULL for success, else the error code for
 * its caller, why in words, and the module's <e> (-1: none). */
static void job_done(struct cmqtt *c, const char *code, const char *why, int e)
{
    struct job *j = c->cur;
    enum job_kind kind = j->kind;
    bool free_it = true;

    c->cur = NULL;
    switch (kind) {
    case JOB_CONNECT:
        connect_done(c, code, why);
        break;
    case JOB_PUBLISH:
        free_it = publish_done(c, j, code, why, e);
        break;
    case JOB_SUB:
        if (!code && c->n_subs < CMQTT_MAX_SUBS) {
            c->subs[c->n_subs++] = (struct sub){ j->topic, j->qos };
            j->topic = NULL;
        }
        cmqtt_job_answer(j, code, "subscribe on the remote broker failed", why);
        break;
    case JOB_UNSUB:
        cmqtt_job_answer(j, code, "unsubscribe on the remote broker failed", why);
        break;
    case JOB_STOP:
        cmqtt_job_free(j);
        stop_done(c);
        return;
    }
    if (free_it)
        cmqtt_job_free(j);
    if (code && kind != JOB_CONNECT && cmqtt_conn_code(e) && c->state == CMQTT_CONNECTED &&
        c->modem_ready && !c->cancelling) {
        c->need_disc = true;
        cmqtt_session_lost(c, why);
    }
    /* Not from inside the chat's cancel_all (port closing, modem freed):
     * cmqtt_modem_ready() restarts things. */
    if (!c->cancelling)
        cmqtt_kick(c);
}

/* A job's answer the module gave: the failure in words. */
static void answer_failed(struct cmqtt *c, const struct at_response *rsp)
{
    int e = cmqtt_answer_code(rsp);
    char why[128];

    if (e >= 0)
        snprintf(why, sizeof(why), "%s (%d)", cmqtt_error_text(e), e);
    else
        snprintf(why, sizeof(why), "%s", rsp->text ? rsp->text : at_result_final_name(rsp->final));
    /* OK followed by a failing result line is the module's error too. */
    job_done(c, m2m_error_code_from_at(rsp) ? m2m_error_code_from_at(rsp) : "modem_error", why, e);
}

/* CANCELLED: +CMQTTCONNLOST/+CMQTTNONET ended the session the step waited
 * for (at_chat_abort; a QoS 1/2 publish waits for the reconnect), or the
 * modem went away (the chat's cancel_all). */
static void cancelled(struct cmqtt *c)
{
    if (c->aborting) {
        char why[sizeof(c->reason)];
        snprintf(why, sizeof(why), "%s", c->have_reason ? c->reason : "connection lost");
        job_done(c, "unavailable", why, 11);
        return;
    }
    c->cancelling = true;
    job_done(c, "unavailable", "the modem went away", 17);
    c->cancelling = false;
}

/* The job ends with what a done callback recorded. A copy: answering
 * the job may start the next one (its caller publishes again), which
 * clears c->failure. */
static void recorded_failure(struct cmqtt *c)
{
    struct job_failure f = c->failure;

    job_done(c, f.code, f.why, f.e);
}

/* A renewed subscription whose answer was out of step counts as refused,
 * as any other: the next filter follows (behind the chat's resync). */
static void resub_out_of_step(struct cmqtt *c, const struct at_response *rsp)
{
    if (done_resub(c, rsp) == AT_SCRIPT_AGAIN)
        at_script_resume(c->run);
    else
        recorded_failure(c);
}

/* The script's ended(). */
static void job_ended(void *ctx, const struct at_script_end *end)
{
    struct cmqtt *c = ctx;
    const struct at_response *rsp = end->rsp;

    if (!c->cur)
        return;
    if (end->ok)
        job_done(c, NULL, NULL, 0);
    else if (c->failure.code)
        recorded_failure(c);
    else if (end->error == -EAGAIN)
        job_done(c, "unavailable", "the modem is not ready", 17);
    else if (end->error == -ENOBUFS)
        job_done(c, "busy", "the modem's command queue is full", -1);
    else if (end->error < 0 || !rsp)
        /* A command the chat refused (too long, not one line, no memory):
         * a fault of ours, not the module's queue. */
        job_done(c, "modem_error", end->error < 0 ? strerror(-end->error) : "no answer", -1);
    else if (rsp->final == AT_FINAL_CANCELLED)
        cancelled(c);
    else if (rsp->final == AT_FINAL_TIMEOUT)
        job_done(c, "timeout", "timeout", 17);
    else if (rsp->final == AT_FINAL_OUT_OF_STEP && end->step->done == done_resub)
        resub_out_of_step(c, rsp);
    else
        answer_failed(c, rsp);
}

static int send_cmd(void *modem, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
                    void *ctx)
{
    return modem_send(modem, cmd, opts, cb, ctx);
}

struct at_script_run *cmqtt_run_new(struct cmqtt *c)
{
    const struct at_script_host host = {
        .send = send_cmd,
        .send_ctx = c->modem,
        .default_timeout_ms = SHORT_TIMEOUT_MS,
        .ended = job_ended,
        .ctx = c,
    };

    return at_script_run_new(&host);
}

void cmqtt_start_job(struct cmqtt *c, struct job *j)
{
    c->cur = j;
    c->sub_index = 0;
    c->failure = (struct job_failure){ .e = -1 };
    at_script_start(c->run, &scripts[j->kind], NULL);
}
