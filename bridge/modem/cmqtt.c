/* Remote broker through AT+CMQTT*. See cmqtt.h. */
#include "modem/cmqtt.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "at/chat.h"
#include "at/result.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/topic.h"
#include "modem/modem.h"

#define CMD_MAX 1024
#define CONNECT_TIMEOUT_MS 40000   /* the module's own connect timeout is ~30 s */
#define SHORT_TIMEOUT_MS 10000
#define PUB_TIMEOUT_MS ((CMQTT_PUB_TIMEOUT_S + 5) * 1000)
#define MAX_ATTEMPTS 3             /* a QoS 1/2 publish is tried this often */
#define CMQTT_CA_NAME "m2m_ca.pem" /* the CA's name in the module's file system */
#define CMQTT_CERT_NAME "client.pem" /* the client certificate's (tls with cert_pem) */
#define CMQTT_KEY_NAME "client.key"  /* its key's */

/* The connect job's steps; the subscriptions follow. The CL* steps run
 * only with a client certificate. */
enum cstep { CS_START, CS_CERT, CS_CLCERT, CS_CLKEY, CS_SSLVER, CS_AUTH, CS_CACERT,
             CS_CLIENTCERT, CS_CLIENTKEY, CS_SNI, CS_SSLCFG, CS_ACCQ, CS_CFG, CS_DISC,
             CS_CONNECT };
static const enum cstep cseq_plain[] = { CS_START, CS_ACCQ, CS_CFG, CS_DISC, CS_CONNECT };
static const enum cstep cseq_tls[] = { CS_START, CS_CERT, CS_CLCERT, CS_CLKEY, CS_SSLVER,
                                       CS_AUTH, CS_CACERT, CS_CLIENTCERT, CS_CLIENTKEY, CS_SNI,
                                       CS_SSLCFG, CS_ACCQ, CS_CFG, CS_DISC, CS_CONNECT };

enum job_kind { JOB_CONNECT, JOB_PUBLISH, JOB_SUB, JOB_UNSUB, JOB_STOP };

struct job {
    struct job *next;
    enum job_kind kind;
    char *topic;
    size_t topic_len;
    uint8_t *payload;
    size_t len;
    int qos;
    bool retain;
    int attempts;
    unsigned step;
    cmqtt_done_cb cb;
    void *ctx;
};

struct sub {
    char *topic;
    int qos;
};

/* The message being received. Pure state; the URC handlers drive it. */
struct rx {
    bool active;
    bool bad;                    /* payload before the topic: dropped at RXEND */
    size_t topic_total, payload_total, topic_got, payload_got;
    char *topic;                 /* topic_total + 1 */
    uint8_t *payload;            /* payload_total (at least 1) */
    bool in_payload;             /* the awaited block is payload, not topic */
    uint64_t timer;
};

struct cmqtt {
    struct loop *loop;
    struct modem *modem;
    struct cmqtt_opts opt;       /* strings borrowed from the config */
    struct cmqtt_cbs cbs;
    void *ctx;

    enum cmqtt_state state;
    char reason[160];
    bool have_reason;
    bool modem_ready;
    bool stopping;
    bool cancelling;             /* in step_done for AT_FINAL_CANCELLED */
    bool aborting;               /* in at_chat_abort() for a CONNLOST/NONET */
    bool need_disc;              /* the next connect sends AT+CMQTTDISC first */
    bool cert_loaded;            /* every AT+CCERTDOWN done since the modem came up */
    bool lost_while_connecting;  /* CONNLOST/NONET during the connect job */
    void (*stopped)(void *ctx);
    void *stopped_ctx;

    struct job *cur;             /* in flight */
    struct job *queue, **tail;
    size_t n_queue;

    struct sub subs[CMQTT_MAX_SUBS];
    size_t n_subs;

    uint64_t retry_timer;
    int backoff_ms;
    struct rx rx;
    struct cmqtt_stats stats;
};

static const char *const error_texts[] = {
    [0] = "ok",
    [1] = "failed",
    [2] = "bad UTF-8 string",
    [3] = "socket connect failed",
    [4] = "socket create failed",
    [5] = "socket close failed",
    [6] = "message receive failed",
    [7] = "network open failed",
    [8] = "network close failed",
    [9] = "network not opened",
    [10] = "client index error",
    [11] = "no connection",
    [12] = "invalid parameter",
    [13] = "not supported operation",
    [14] = "client is busy",
    [15] = "require connection failed",
    [16] = "socket sending failed",
    [17] = "timeout",
    [18] = "topic is empty",
    [19] = "client is used",
    [20] = "client not acquired",
    [21] = "client not released",
    [22] = "length out of range",
    [23] = "network is opened",
    [24] = "packet failed",
    [25] = "DNS error",
    [26] = "socket is closed by server",
    [27] = "connection refused: unaccepted protocol version",
    [28] = "connection refused: identifier rejected",
    [29] = "connection refused: server unavailable",
    [30] = "connection refused: bad user name or password",
    [31] = "connection refused: not authorized",
    [32] = "handshake failed",
    [33] = "not set certificate",
    [34] = "open session failed",
    [35] = "disconnect from server failed",
};

const char *cmqtt_error_text(int e)
{
    if (e >= 0 && (size_t)e < sizeof(error_texts) / sizeof(error_texts[0]))
        return error_texts[e];
    return "unknown error";
}

const char *cmqtt_state_name(enum cmqtt_state st)
{
    switch (st) {
    case CMQTT_DISABLED: return "disabled";
    case CMQTT_CONNECTING: return "connecting";
    case CMQTT_CONNECTED: return "connected";
    case CMQTT_DISCONNECTED: return "disconnected";
    default: return "disconnected";
    }
}

bool cmqtt_topic_match(const char *f, const char *t, size_t tlen)
{
    const char *end = t + tlen;

    /* $SYS-style topics are not matched by a leading wildcard (4.7.2). */
    if (tlen > 0 && t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (f[0] == '#' && f[1] == '\0')
            return true;
        const char *fs = strchr(f, '/');
        size_t flen = fs ? (size_t)(fs - f) : strlen(f);
        const char *ts = memchr(t, '/', (size_t)(end - t));
        size_t lvl = ts ? (size_t)(ts - t) : (size_t)(end - t);

        if (!(flen == 1 && f[0] == '+') && (flen != lvl || memcmp(f, t, lvl) != 0))
            return false;
        if (!fs && !ts)
            return true;
        if (!fs)
            return false;
        if (!ts)
            /* "a/#" matches "a" too */
            return strcmp(fs + 1, "#") == 0;
        f = fs + 1;
        t = ts + 1;
    }
}

/* --- helpers ------------------------------------------------------------------ */

static void set_state(struct cmqtt *c, enum cmqtt_state st, const char *reason)
{
    bool changed = st != c->state || (reason != NULL) != c->have_reason ||
                   (reason && strcmp(reason, c->reason) != 0);

    c->state = st;
    c->have_reason = reason != NULL;
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    if (!changed)
        return;
    if (reason)
        log_info("remote: %s (%s)", cmqtt_state_name(st), reason);
    else
        log_info("remote: %s", cmqtt_state_name(st));
    if (c->cbs.state_changed)
        c->cbs.state_changed(c->ctx, st, reason);
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->topic);
    free(j->payload);
    free(j);
}

/* code NULL: success. */
static void job_answer(struct job *j, const char *code, const char *what, const char *why)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    if (!j->cb)
        return;
    if (!code) {
        j->cb(j->ctx, NULL);
        return;
    }
    m2m_error_set(&err, code, "%s: %s", what, why ? why : "");
    j->cb(j->ctx, &err);
}

static void answer_now(cmqtt_done_cb cb, void *ctx, const char *code, const char *msg)
{
    struct m2m_error err = { .cme = -1, .cms = -1 };

    if (!cb)
        return;
    m2m_error_set(&err, code, "%s", msg);
    cb(ctx, &err);
}

/* The numbers after the colon of a "+CMQTT...: a,b,c" line, at most max
 * of them and nothing else: how many, or -1. */
static int numbers(const char *line, int *v, int max)
{
    const char *colon = strchr(line, ':');
    struct at_result_iter it;
    int n = 0;

    if (!colon)
        return -1;
    at_result_iter_init(&it, colon + 1);
    while (n < max && at_result_next_number(&it, 0, INT_MAX, &v[n]) == 0)
        n++;
    return at_result_at_end(&it) ? n : -1;
}

/* The last number of a result line, its <err>: "+CMQTTPUB: 0,0",
 * "+CMQTTSTART: 0". -1 when there is none. */
static int result_code(const char *line)
{
    int v[2], n = numbers(line, v, 2);

    return n > 0 && v[n - 1] <= 999 ? v[n - 1] : -1;
}

/* The <e> of a failed command: its "+CMQTT...: ..." info line, if any. */
static int rsp_code(const struct at_response *rsp)
{
    for (size_t i = rsp->n_lines; i-- > 0;)
        if (strncmp(rsp->lines[i], "+CMQTT", 6) == 0)
            return result_code(rsp->lines[i]);
    return -1;
}

static void kick(struct cmqtt *c);
static void run_stop_if_queued(struct cmqtt *c);
static void run_step(struct cmqtt *c);

static void rx_reset(struct cmqtt *c)
{
    loop_cancel_timer(c->loop, c->rx.timer);
    free(c->rx.topic);
    free(c->rx.payload);
    c->rx = (struct rx){ 0 };
}

static void rx_error(struct cmqtt *c, const char *msg)
{
    c->stats.rx_errors++;
    log_warn("remote: incoming message dropped: %s", msg);
    if (c->cbs.error)
        c->cbs.error(c->ctx, "remote_message_dropped", msg);
    rx_reset(c);
}

/* --- reconnect ------------------------------------------------------------------ */

static int64_t retry_fired(void *ctx)
{
    struct cmqtt *c = ctx;

    c->retry_timer = 0;
    kick(c);
    return 0;
}

/* The session is down: try again after the backoff. */
static void session_lost(struct cmqtt *c, const char *reason)
{
    if (c->cur && c->cur->kind == JOB_CONNECT)
        c->lost_while_connecting = true;
    set_state(c, CMQTT_DISCONNECTED, reason);
    if (c->stopping || !c->modem_ready || c->retry_timer)
        return;
    log_info("remote: next connection attempt in %d ms", c->backoff_ms);
    loop_add_timer(c->loop, c->backoff_ms, retry_fired, c, &c->retry_timer);
    c->backoff_ms = c->backoff_ms * 2 > c->opt.backoff_max_ms ? c->opt.backoff_max_ms
                                                              : c->backoff_ms * 2;
}

/* --- jobs ------------------------------------------------------------------------ */

struct step {
    char cmd[CMD_MAX];
    const uint8_t *data;
    size_t data_len;
    const char *after_ok;
    bool tolerate_error;
    bool last_upload;            /* the last AT+CCERTDOWN: cert_loaded once it is OK */
    int timeout_ms;
};

static bool cstep_skipped(const struct cmqtt *c, enum cstep st)
{
    bool client = c->opt.cert_pem != NULL;

    switch (st) {
    case CS_DISC:
        return !c->need_disc;
    case CS_CERT:
        return c->cert_loaded;
    case CS_CLCERT:
    case CS_CLKEY:
        return !client || c->cert_loaded;
    case CS_CLIENTCERT:
    case CS_CLIENTKEY:
        return !client;
    default:
        return false;
    }
}

/* Fills s with the job's step number n; false when the job is done. */
static bool build_step(struct cmqtt *c, struct job *j, unsigned n, struct step *s)
{
    memset(s, 0, sizeof(*s));
    s->timeout_ms = SHORT_TIMEOUT_MS;
    switch (j->kind) {
    case JOB_CONNECT: {
        const enum cstep *seq = c->opt.tls ? cseq_tls : cseq_plain;
        size_t nseq = c->opt.tls ? sizeof(cseq_tls) / sizeof(cseq_tls[0])
                                 : sizeof(cseq_plain) / sizeof(cseq_plain[0]);
        /* Steps that have nothing to do this time are skipped here. */
        while (n < nseq && cstep_skipped(c, seq[n]))
            j->step = ++n;
        if (n >= nseq) {
            size_t i = n - nseq;
            if (i >= c->n_subs)
                return false;
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTSUB=0,%zu,%d", strlen(c->subs[i].topic),
                     c->subs[i].qos);
            s->data = (const uint8_t *)c->subs[i].topic;
            s->data_len = strlen(c->subs[i].topic);
            s->after_ok = "+CMQTTSUB:";
            s->timeout_ms = PUB_TIMEOUT_MS;
            return true;
        }
        switch (seq[n]) {
        case CS_START:
            /* ERROR: already started (after a CONNLOST the stack runs on). */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTSTART");
            s->after_ok = "+CMQTTSTART:";
            s->tolerate_error = true;
            return true;
        case CS_CERT:
            /* The CA goes into the module's file system once per boot. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CCERTDOWN=\"%s\",%zu", CMQTT_CA_NAME,
                     c->opt.ca_len);
            s->data = c->opt.ca_pem;
            s->data_len = c->opt.ca_len;
            s->timeout_ms = 20000;
            s->last_upload = !c->opt.cert_pem;
            return true;
        case CS_CLCERT:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CCERTDOWN=\"%s\",%zu", CMQTT_CERT_NAME,
                     c->opt.cert_len);
            s->data = c->opt.cert_pem;
            s->data_len = c->opt.cert_len;
            s->timeout_ms = 20000;
            return true;
        case CS_CLKEY:
            /* The key goes after the prompt: the chat logs only its length. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CCERTDOWN=\"%s\",%zu", CMQTT_KEY_NAME,
                     c->opt.key_len);
            s->data = c->opt.key_pem;
            s->data_len = c->opt.key_len;
            s->timeout_ms = 20000;
            s->last_upload = true;
            return true;
        case CS_SSLVER:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"sslversion\",0,4");
            return true;
        case CS_AUTH:
            /* 1: the module checks the server against the CA; 2: and
             * presents its own certificate as well. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"authmode\",0,%d",
                     c->opt.cert_pem ? 2 : 1);
            return true;
        case CS_CACERT:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"cacert\",0,\"%s\"", CMQTT_CA_NAME);
            return true;
        case CS_CLIENTCERT:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"clientcert\",0,\"%s\"",
                     CMQTT_CERT_NAME);
            return true;
        case CS_CLIENTKEY:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"clientkey\",0,\"%s\"", CMQTT_KEY_NAME);
            return true;
        case CS_SNI:
            /* Virtual hosts (most cloud brokers) need the server name;
             * older firmware lacks the setting: go on. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CSSLCFG=\"enableSNI\",0,1");
            s->tolerate_error = true;
            return true;
        case CS_SSLCFG:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTSSLCFG=0,0");
            return true;
        case CS_ACCQ:
            /* ERROR (+CMQTTACCQ: 0,19): still acquired from before. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTACCQ=0,\"%s\"%s", c->opt.client_id,
                     c->opt.tls ? ",1" : "");
            s->tolerate_error = true;
            return true;
        case CS_CFG:
            /* MQTT 3.1.1; older firmware lacks the command: go on. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTCFG=\"version\",0,4");
            s->tolerate_error = true;
            return true;
        case CS_DISC:
            /* A command failed while the module may still hold the old
             * session (a publish timed out): close it first, whatever the
             * module answers. */
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTDISC=0,10");
            s->after_ok = "+CMQTTDISC:";
            s->tolerate_error = true;
            s->timeout_ms = 15000;
            return true;
        case CS_CONNECT: {
            int k = snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTCONNECT=0,\"%s\",%d,%d",
                             c->opt.server, c->opt.keepalive, c->opt.clean_session ? 1 : 0);
            if (c->opt.username && k > 0 && (size_t)k < sizeof(s->cmd))
                k += snprintf(s->cmd + k, sizeof(s->cmd) - (size_t)k, ",\"%s\"",
                              c->opt.username);
            if (c->opt.username && c->opt.password && k > 0 && (size_t)k < sizeof(s->cmd))
                snprintf(s->cmd + k, sizeof(s->cmd) - (size_t)k, ",\"%s\"", c->opt.password);
            s->after_ok = "+CMQTTCONNECT:";
            s->timeout_ms = CONNECT_TIMEOUT_MS;
            return true;
        }
        }
        return false;
    }
    case JOB_PUBLISH:
        if (n == 0) {
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTTOPIC=0,%zu", j->topic_len);
            s->data = (const uint8_t *)j->topic;
            s->data_len = j->topic_len;
            return true;
        }
        if (n == 1 && j->len > 0) {
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTPAYLOAD=0,%zu", j->len);
            s->data = j->payload;
            s->data_len = j->len;
            return true;
        }
        if (n == 1 || n == 2) {
            j->step = 2;
            if (j->retain)
                snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTPUB=0,%d,%d,1", j->qos,
                         CMQTT_PUB_TIMEOUT_S);
            else
                snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTPUB=0,%d,%d", j->qos,
                         CMQTT_PUB_TIMEOUT_S);
            s->after_ok = "+CMQTTPUB:";
            s->timeout_ms = PUB_TIMEOUT_MS;
            return true;
        }
        return false;
    case JOB_SUB:
        if (n > 0)
            return false;
        snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTSUB=0,%zu,%d", j->topic_len, j->qos);
        s->data = (const uint8_t *)j->topic;
        s->data_len = j->topic_len;
        s->after_ok = "+CMQTTSUB:";
        s->timeout_ms = PUB_TIMEOUT_MS;
        return true;
    case JOB_UNSUB:
        if (n == 0) {
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTUNSUBTOPIC=0,%zu", j->topic_len);
            s->data = (const uint8_t *)j->topic;
            s->data_len = j->topic_len;
            return true;
        }
        if (n > 1)
            return false;
        snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTUNSUB=0,0");
        s->after_ok = "+CMQTTUNSUB:";
        s->timeout_ms = PUB_TIMEOUT_MS;
        return true;
    case JOB_STOP:
        switch (n) {
        case 0:
            if (c->state != CMQTT_CONNECTED)
                j->step = n = 1;
            else {
                snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTDISC=0,60");
                s->after_ok = "+CMQTTDISC:";
                s->tolerate_error = true;
                s->timeout_ms = 5000;
                return true;
            }
            /* fall through */
        case 1:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTREL=0");
            s->tolerate_error = true;
            s->timeout_ms = 3000;
            return true;
        case 2:
            snprintf(s->cmd, sizeof(s->cmd), "AT+CMQTTSTOP");
            s->after_ok = "+CMQTTSTOP:";
            s->tolerate_error = true;
            s->timeout_ms = 3000;
            return true;
        default:
            return false;
        }
    }
    return false;
}

static bool conn_code(int e)
{
    switch (e) {
    case 3: case 4: case 5: case 6: case 9: case 11: case 15: case 16: case 17: case 26:
        return true;
    default:
        return false;
    }
}

static void job_done(struct cmqtt *c, struct job *j, const char *code, const char *why, int e);

static unsigned first_sub_step(const struct cmqtt *c)
{
    return c->opt.tls ? sizeof(cseq_tls) / sizeof(cseq_tls[0])
                      : sizeof(cseq_plain) / sizeof(cseq_plain[0]);
}

static void step_done(void *ctx, const struct at_response *rsp)
{
    struct cmqtt *c = ctx;
    struct job *j = c->cur;
    struct step s;
    int e = 0;
    bool ok;

    if (!j)
        return;
    if (rsp->final == AT_FINAL_CANCELLED && c->aborting) {
        /* +CMQTTCONNLOST/+CMQTTNONET ended the session this step waited
         * for: fail now (a QoS 1/2 publish waits for the reconnect). */
        char why[sizeof(c->reason)];
        snprintf(why, sizeof(why), "%s", c->have_reason ? c->reason : "connection lost");
        job_done(c, j, "unavailable", why, 11);
        return;
    }
    c->cancelling = rsp->final == AT_FINAL_CANCELLED;
    if (c->cancelling) {
        job_done(c, j, m2m_error_code_from_at(rsp), "the modem went away", 17);
        c->cancelling = false;
        return;
    }
    if (!build_step(c, j, j->step, &s)) {
        job_done(c, j, NULL, NULL, 0);
        return;
    }
    if (rsp->final == AT_FINAL_OK) {
        ok = true;
        if (s.after_ok && rsp->n_lines > 0) {
            e = result_code(rsp->lines[rsp->n_lines - 1]);
            ok = e == 0 || s.tolerate_error;
        }
    } else if (rsp->final == AT_FINAL_ERROR && s.tolerate_error) {
        log_debug("remote: %.20s answered ERROR (%d); going on", s.cmd, rsp_code(rsp));
        ok = true;
    } else {
        ok = false;
        e = rsp_code(rsp);
    }
    if (!ok && j->kind == JOB_CONNECT && j->step >= first_sub_step(c) &&
        rsp->final != AT_FINAL_TIMEOUT) {
        /* One refused filter must not take the session down (and retry it
         * forever): reported, and the next one is tried. */
        char msg[200];
        snprintf(msg, sizeof(msg), "subscribing to %s on the remote broker failed: %s (%d)",
                 c->subs[j->step - first_sub_step(c)].topic, cmqtt_error_text(e), e);
        log_warn("remote: %s", msg);
        if (c->cbs.error)
            c->cbs.error(c->ctx, "remote_subscribe_failed", msg);
        ok = true;
    }
    if (!ok) {
        /* OK followed by a failing result line is the module's error too. */
        const char *code = m2m_error_code_from_at(rsp);
        char why[128];
        if (rsp->final == AT_FINAL_TIMEOUT || rsp->final == AT_FINAL_CANCELLED)
            snprintf(why, sizeof(why), "%s", rsp->final == AT_FINAL_TIMEOUT ? "timeout"
                                                                            : "modem went away");
        else if (e >= 0)
            snprintf(why, sizeof(why), "%s (%d)", cmqtt_error_text(e), e);
        else
            snprintf(why, sizeof(why), "%s", rsp->text ? rsp->text : at_final_name(rsp->final));
        job_done(c, j, code ? code : "modem_error", why,
                 rsp->final == AT_FINAL_TIMEOUT || rsp->final == AT_FINAL_CANCELLED ? 17 : e);
        return;
    }
    if (j->kind == JOB_CONNECT && s.last_upload)
        c->cert_loaded = true;
    if (((j->kind == JOB_PUBLISH || j->kind == JOB_SUB || j->kind == JOB_UNSUB) &&
         c->state != CMQTT_CONNECTED) ||
        (j->kind == JOB_CONNECT && c->lost_while_connecting && j->step + 1 >= first_sub_step(c))) {
        /* The session ended between two steps (TOPIC done, PUB next): the
         * rest would only collect "no connection" answers. */
        char why[sizeof(c->reason)];
        snprintf(why, sizeof(why), "%s", c->have_reason ? c->reason : "connection lost");
        job_done(c, j, "unavailable", why, 11);
        return;
    }
    j->step++;
    run_step(c);
}

static void run_step(struct cmqtt *c)
{
    struct job *j = c->cur;
    struct step s;
    struct at_cmd_opts o = { 0 };
    int r;

    if (!build_step(c, j, j->step, &s)) {
        job_done(c, j, NULL, NULL, 0);
        return;
    }
    o.timeout_ms = s.timeout_ms;
    o.data = s.data;
    o.data_len = s.data_len;
    o.after_ok_prefix = s.after_ok;
    r = modem_send(c->modem, s.cmd, &o, step_done, c);
    if (r < 0)
        job_done(c, j, r == -EAGAIN ? "unavailable" : "busy",
                 r == -EAGAIN ? "the modem is not ready" : "the modem's command queue is full",
                 r == -EAGAIN ? 17 : -1);
}

static void job_done(struct cmqtt *c, struct job *j, const char *code, const char *why, int e)
{
    enum job_kind kind = j->kind;   /* j is freed below */

    c->cur = NULL;
    switch (kind) {
    case JOB_CONNECT:
        if (code) {
            char reason[160];
            snprintf(reason, sizeof(reason), "%s", why);
            job_free(j);
            /* Whatever state the module's client is in now, the next
             * attempt starts from a closed session. */
            c->need_disc = true;
            session_lost(c, reason);
            break;
        }
        job_free(j);
        if (c->lost_while_connecting) {
            /* +CMQTTCONNLOST came during the subscriptions: the retry is
             * already scheduled. */
            break;
        }
        c->need_disc = false;
        c->stats.connects++;
        c->backoff_ms = c->opt.backoff_min_ms;
        set_state(c, CMQTT_CONNECTED, NULL);
        break;
    case JOB_PUBLISH:
        if (code && j->qos > 0 && conn_code(e) && ++j->attempts < MAX_ATTEMPTS && !c->stopping) {
            /* The session broke under it: it goes first after the reconnect. */
            log_info("remote: publish on %s failed (%s); kept for the reconnect", j->topic, why);
            j->step = 0;
            j->next = c->queue;
            c->queue = j;
            if (!j->next)
                c->tail = &j->next;
            c->n_queue++;
            break;
        }
        if (!code)
            c->stats.published++;
        job_answer(j, code, "publish on the remote broker failed", why);
        job_free(j);
        break;
    case JOB_SUB:
        if (!code && c->n_subs < CMQTT_MAX_SUBS) {
            c->subs[c->n_subs].topic = j->topic;
            c->subs[c->n_subs].qos = j->qos;
            c->n_subs++;
            j->topic = NULL;
        }
        job_answer(j, code, "subscribe on the remote broker failed", why);
        job_free(j);
        break;
    case JOB_UNSUB:
        job_answer(j, code, "unsubscribe on the remote broker failed", why);
        job_free(j);
        break;
    case JOB_STOP:
        job_free(j);
        set_state(c, CMQTT_DISCONNECTED, "stopped");
        if (c->stopped) {
            void (*fn)(void *) = c->stopped;
            c->stopped = NULL;
            fn(c->stopped_ctx);
        }
        return;
    }
    /* A connection-type failure of a job means the session is gone, even
     * before the module says so with +CMQTTCONNLOST. */
    if (code && kind != JOB_CONNECT && conn_code(e) && c->state == CMQTT_CONNECTED &&
        c->modem_ready && !c->cancelling) {
        c->need_disc = true;
        session_lost(c, why);
    }
    /* Not from inside the chat's cancel_all (port closing, modem freed):
     * cmqtt_modem_ready() restarts things. */
    if (!c->cancelling)
        kick(c);
}

static void start_job(struct cmqtt *c, struct job *j)
{
    c->cur = j;
    j->step = 0;
    run_step(c);
}

static void kick(struct cmqtt *c)
{
    if (c->cur || !c->modem_ready || c->state == CMQTT_DISABLED)
        return;
    if (c->stopping) {
        run_stop_if_queued(c);
        return;
    }
    if (c->state != CMQTT_CONNECTED) {
        struct job *j;
        if (c->retry_timer || c->state == CMQTT_CONNECTING)
            return;
        j = calloc(1, sizeof(*j));
        if (!j)
            return;
        j->kind = JOB_CONNECT;
        c->lost_while_connecting = false;
        set_state(c, CMQTT_CONNECTING, NULL);
        start_job(c, j);
        return;
    }
    if (c->queue) {
        struct job *j = c->queue;
        c->queue = j->next;
        if (!c->queue)
            c->tail = &c->queue;
        c->n_queue--;
        j->next = NULL;
        start_job(c, j);
    }
}

static int enqueue(struct cmqtt *c, struct job *j)
{
    if (c->n_queue >= CMQTT_MAX_QUEUE)
        return -ENOBUFS;
    j->next = NULL;
    *c->tail = j;
    c->tail = &j->next;
    c->n_queue++;
    kick(c);
    return 0;
}

/* --- API ------------------------------------------------------------------------- */

void cmqtt_publish(struct cmqtt *c, const char *topic, const uint8_t *payload, size_t len,
                   int qos, bool retain, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    struct job *j;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (len > CMQTT_PAYLOAD_MAX || tl > CMQTT_TOPIC_MAX) {
        answer_now(cb, ctx, "too_long", len > CMQTT_PAYLOAD_MAX
                                            ? "'payload' is longer than 10240 bytes"
                                            : "'topic' is longer than 1024 bytes");
        return;
    }
    if (tl == 0 || topic_check(topic, tl, false) || qos < 0 || qos > 2) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic name, 'qos' 0-2");
        return;
    }
    if (c->state != CMQTT_CONNECTED && qos == 0) {
        c->stats.dropped_qos0++;
        log_warn("remote: not connected; QoS 0 publish on %s dropped (%llu so far)", topic,
                 (unsigned long long)c->stats.dropped_qos0);
        answer_now(cb, ctx, "unavailable",
                   "the remote broker is not connected (QoS 0 is not queued)");
        return;
    }
    if (c->stopping) {
        answer_now(cb, ctx, "unavailable", "the bridge is stopping");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j) {
        j->topic = strdup(topic);
        j->payload = malloc(len ? len : 1);
    }
    if (!j || !j->topic || !j->payload) {
        job_free(j);
        answer_now(cb, ctx, "busy", "out of memory");
        return;
    }
    memcpy(j->payload, payload, len);
    *j = (struct job){ .kind = JOB_PUBLISH, .topic = j->topic, .topic_len = tl,
                       .payload = j->payload, .len = len, .qos = qos, .retain = retain,
                       .cb = cb, .ctx = ctx };
    if (enqueue(c, j) < 0) {
        job_free(j);
        answer_now(cb, ctx, "busy", "too many remote publishes waiting");
    }
}

static ssize_t find_sub(const struct cmqtt *c, const char *topic)
{
    for (size_t i = 0; i < c->n_subs; i++)
        if (strcmp(c->subs[i].topic, topic) == 0)
            return (ssize_t)i;
    return -1;
}

static void sub_job(struct cmqtt *c, enum job_kind kind, const char *topic, int qos,
                    cmqtt_done_cb cb, void *ctx)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j || !(j->topic = strdup(topic))) {
        free(j);
        answer_now(cb, ctx, "busy", "out of memory");
        return;
    }
    j->kind = kind;
    j->topic_len = strlen(topic);
    j->qos = qos;
    j->cb = cb;
    j->ctx = ctx;
    if (enqueue(c, j) < 0) {
        job_free(j);
        answer_now(cb, ctx, "busy", "too many remote commands waiting");
    }
}

void cmqtt_subscribe(struct cmqtt *c, const char *topic, int qos, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    ssize_t i;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (tl == 0 || tl > CMQTT_TOPIC_MAX || topic_check(topic, tl, true) || qos < 0 ||
        qos > 2) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic filter, 'qos' 0-2");
        return;
    }
    i = find_sub(c, topic);
    if (i < 0 && c->n_subs >= CMQTT_MAX_SUBS) {
        answer_now(cb, ctx, "too_long", "too many remote subscriptions (32)");
        return;
    }
    if (c->state != CMQTT_CONNECTED || c->stopping) {
        /* Kept; the next connect subscribes it. */
        if (i >= 0) {
            c->subs[i].qos = qos;
        } else {
            char *t = strdup(topic);
            if (!t) {
                answer_now(cb, ctx, "busy", "out of memory");
                return;
            }
            c->subs[c->n_subs++] = (struct sub){ t, qos };
        }
        if (cb)
            cb(ctx, NULL);
        return;
    }
    if (i >= 0) {
        /* Re-subscribing replaces the QoS on the broker; keep one entry. */
        free(c->subs[i].topic);
        c->subs[i] = c->subs[--c->n_subs];
    }
    sub_job(c, JOB_SUB, topic, qos, cb, ctx);
}

void cmqtt_unsubscribe(struct cmqtt *c, const char *topic, cmqtt_done_cb cb, void *ctx)
{
    size_t tl = strlen(topic);
    ssize_t i;

    if (c->state == CMQTT_DISABLED) {
        answer_now(cb, ctx, "unavailable", "no remote broker is configured (\"remote\")");
        return;
    }
    if (tl == 0 || tl > CMQTT_TOPIC_MAX || topic_check(topic, tl, true)) {
        answer_now(cb, ctx, "invalid_request", "'topic' must be a topic filter");
        return;
    }
    i = find_sub(c, topic);
    if (i >= 0) {
        /* Gone from the list at once: a reconnect must not bring it back. */
        free(c->subs[i].topic);
        memmove(&c->subs[i], &c->subs[i + 1], (c->n_subs - (size_t)i - 1) * sizeof(c->subs[0]));
        c->n_subs--;
    }
    if (c->state != CMQTT_CONNECTED || c->stopping) {
        if (cb)
            cb(ctx, NULL);
        return;
    }
    sub_job(c, JOB_UNSUB, topic, 0, cb, ctx);
}

static void fail_queue(struct cmqtt *c, bool keep_qos)
{
    struct job **pp = &c->queue;

    while (*pp) {
        struct job *j = *pp;
        if (keep_qos && j->kind == JOB_PUBLISH && j->qos > 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        c->n_queue--;
        job_answer(j, "unavailable", "the remote broker is not connected", "the bridge is stopping or the modem went away");
        job_free(j);
    }
    c->tail = &c->queue;
    for (struct job *j = c->queue; j; j = j->next)
        c->tail = &j->next;
}

void cmqtt_shutdown(struct cmqtt *c, void (*done)(void *ctx), void *ctx)
{
    struct job *j;

    loop_cancel_timer(c->loop, c->retry_timer);
    c->retry_timer = 0;
    fail_queue(c, false);
    if (c->state == CMQTT_DISABLED || !c->modem_ready || c->stopping ||
        !(j = calloc(1, sizeof(*j)))) {
        if (done)
            done(ctx);
        return;
    }
    c->stopping = true;
    c->stopped = done;
    c->stopped_ctx = ctx;
    j->kind = JOB_STOP;
    if (c->cur) {
        /* After the job in flight (its answer comes first). */
        j->next = NULL;
        c->queue = j;
        c->tail = &j->next;
        c->n_queue = 1;
        return;
    }
    start_job(c, j);
}

/* kick() does not start a queued STOP while stopping: do it here. */
static void run_stop_if_queued(struct cmqtt *c)
{
    if (c->stopping && !c->cur && c->queue && c->queue->kind == JOB_STOP) {
        struct job *j = c->queue;
        c->queue = NULL;
        c->tail = &c->queue;
        c->n_queue = 0;
        start_job(c, j);
    }
}

void cmqtt_modem_ready(struct cmqtt *c, bool ready)
{
    if (c->state == CMQTT_DISABLED)
        return;
    if (c->modem_ready == ready)
        return;
    c->modem_ready = ready;
    if (!ready) {
        /* The chat cancels what was in flight (step_done sees CANCELLED);
         * the module's session is gone with it. */
        loop_cancel_timer(c->loop, c->retry_timer);
        c->retry_timer = 0;
        rx_reset(c);
        /* A port reopen need not reboot the module: its session may live on. */
        c->need_disc = true;
        c->cert_loaded = false;   /* a reset may have wiped it */
        set_state(c, CMQTT_DISCONNECTED, "modem not ready");
        fail_queue(c, true);
        return;
    }
    c->backoff_ms = c->opt.backoff_min_ms;
    kick(c);
}

enum cmqtt_state cmqtt_state(const struct cmqtt *c)
{
    return c->state;
}

const char *cmqtt_reason(const struct cmqtt *c)
{
    return c->have_reason ? c->reason : NULL;
}

const struct cmqtt_stats *cmqtt_stats(const struct cmqtt *c)
{
    return &c->stats;
}

/* --- URCs ------------------------------------------------------------------------ */

static int64_t rx_timeout(void *ctx)
{
    struct cmqtt *c = ctx;

    c->rx.timer = 0;
    if (c->rx.active)
        rx_error(c, "+CMQTTRXEND did not come within 10 s");
    return 0;
}

static void urc_rxstart(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    int v[3];
    char msg[160];

    (void)n;
    if (c->rx.active)
        rx_error(c, "a new message began before +CMQTTRXEND of the previous one");
    if (numbers(lines[0], v, 3) != 3 || v[0] != 0 || v[1] < 1) {
        rx_error(c, "malformed +CMQTTRXSTART");
        return;
    }
    if (v[1] > CMQTT_TOPIC_MAX || v[2] > CMQTT_PAYLOAD_MAX) {
        /* The module cannot send that much: a garbled line, not a message.
         * Its chunks are not read on the strength of it. */
        snprintf(msg, sizeof(msg),
                 "+CMQTTRXSTART announces a %d-byte topic and a %d-byte payload; the module "
                 "sends at most %d and %d",
                 v[1], v[2], CMQTT_TOPIC_MAX, CMQTT_PAYLOAD_MAX);
        rx_error(c, msg);
        return;
    }
    c->rx.active = true;
    c->rx.topic_total = (size_t)v[1];
    c->rx.payload_total = (size_t)v[2];
    c->rx.topic = malloc(c->rx.topic_total + 1);
    c->rx.payload = malloc(c->rx.payload_total ? c->rx.payload_total : 1);
    if (!c->rx.topic || !c->rx.payload) {
        rx_error(c, "out of memory");
        return;
    }
    loop_add_timer(c->loop, CMQTT_RX_TIMEOUT_MS, rx_timeout, c, &c->rx.timer);
}

static void rx_block(void *ctx, const uint8_t *data, size_t len)
{
    struct cmqtt *c = ctx;
    struct rx *rx = &c->rx;

    if (!rx->active || rx->bad)
        return;
    if (rx->in_payload) {
        if (rx->payload_total - rx->payload_got < len) {
            rx->bad = true;
            return;
        }
        memcpy(rx->payload + rx->payload_got, data, len);
        rx->payload_got += len;
    } else {
        if (rx->topic_total - rx->topic_got < len) {
            rx->bad = true;
            return;
        }
        memcpy(rx->topic + rx->topic_got, data, len);
        rx->topic_got += len;
    }
}

static void rx_chunk(struct cmqtt *c, const char *line, bool payload)
{
    struct rx *rx = &c->rx;
    const char *what = payload ? "+CMQTTRXPAYLOAD" : "+CMQTTRXTOPIC";
    size_t limit = payload ? CMQTT_PAYLOAD_MAX : CMQTT_TOPIC_MAX;
    char msg[200];
    int v[2];
    int r;

    if (numbers(line, v, 2) != 2 || v[0] != 0) {
        /* The byte count is unknown: nothing to skip, the lexer resyncs
         * on the next line end. */
        if (rx->active)
            rx_error(c, "malformed +CMQTTRXTOPIC/+CMQTTRXPAYLOAD");
        return;
    }
    if (rx->active) {
        /* A chunk is believed only within what its RXSTART announced: a
         * false length would make the bridge read the module's next replies
         * as message bytes. */
        limit = payload ? rx->payload_total - rx->payload_got : rx->topic_total - rx->topic_got;
    }
    if ((size_t)v[1] > limit) {
        snprintf(msg, sizeof(msg), "%s announces %d bytes, %s %zu; not read", what, v[1],
                 rx->active ? "but what remains of the announced total is"
                            : "without +CMQTTRXSTART, and the module sends at most",
                 limit);
        if (rx->active) {
            rx_error(c, msg);
        } else {
            c->stats.rx_errors++;
            log_warn("remote: incoming message dropped: %s", msg);
            if (c->cbs.error)
                c->cbs.error(c->ctx, "remote_message_dropped", msg);
        }
        return;
    }
    if (!rx->active) {
        /* Bytes of a message we do not follow: still consume them. */
        c->stats.rx_errors++;
        log_warn("remote: %s without +CMQTTRXSTART; skipping %d bytes", what, v[1]);
    } else {
        if (payload && rx->topic_got != rx->topic_total)
            rx->bad = true;   /* payload before the whole topic: dropped at RXEND */
        rx->in_payload = payload;
    }
    if (v[1] == 0)
        return;
    r = at_chat_read_block(modem_chat(c->modem), (size_t)v[1], rx_block, c);
    if (r < 0 && rx->active)
        rx_error(c, "cannot read the announced bytes");
}

static void urc_rxtopic(void *ctx, const char *const *lines, size_t n)
{
    (void)n;
    rx_chunk(ctx, lines[0], false);
}

static void urc_rxpayload(void *ctx, const char *const *lines, size_t n)
{
    (void)n;
    rx_chunk(ctx, lines[0], true);
}

static void urc_rxend(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    struct rx *rx = &c->rx;
    int qos = 0;

    (void)lines;
    (void)n;
    if (!rx->active) {
        log_warn("remote: +CMQTTRXEND without +CMQTTRXSTART");
        return;
    }
    if (rx->bad || rx->topic_got != rx->topic_total || rx->payload_got != rx->payload_total) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the message did not match its announced lengths (topic %zu/%zu, payload "
                 "%zu/%zu bytes)",
                 rx->topic_got, rx->topic_total, rx->payload_got, rx->payload_total);
        rx_error(c, msg);
        return;
    }
    rx->topic[rx->topic_total] = '\0';
    for (size_t i = 0; i < c->n_subs; i++)
        if (c->subs[i].qos > qos &&
            cmqtt_topic_match(c->subs[i].topic, rx->topic, rx->topic_total))
            qos = c->subs[i].qos;
    c->stats.received++;
    if (c->cbs.message)
        c->cbs.message(c->ctx, rx->topic, rx->topic_total, rx->payload, rx->payload_total, qos);
    rx_reset(c);
}

/* A URC ended the session: the command of ours that waits for it (its
 * result line comes after OK, and would now come late or never) completes
 * at once, so that the commands queued behind it (SMS, status) go on
 * rather than wait for its timeout (65 s for a SUB). TOPIC, PAYLOAD and
 * the *TOPIC steps are not aborted: they only fill the module's buffer and
 * finish by themselves; their job stops after them (step_done). A
 * CONNECT is aborted for NONET only: after a CONNLOST (of the previous
 * session, maybe) the module still answers it. */
static void abort_waiting(struct cmqtt *c, bool nonet)
{
    static const char *const waiting[] = { "AT+CMQTTSUB=", "AT+CMQTTUNSUB=", "AT+CMQTTPUB=" };
    struct at_chat *chat = modem_chat(c->modem);
    bool done = false;

    if (!c->cur || c->cur->kind == JOB_STOP || !c->modem_ready)
        return;
    c->aborting = true;
    for (size_t i = 0; i < sizeof(waiting) / sizeof(waiting[0]) && !done; i++)
        done = at_chat_abort(chat, waiting[i]);
    if (!done && nonet)
        done = at_chat_abort(chat, "AT+CMQTTCONNECT=");
    c->aborting = false;
    if (done)
        log_info("remote: the command waiting for the session was aborted");
}

static void urc_connlost(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;
    static const char *const causes[] = { "", "closed by the broker", "connection reset",
                                          "network closed" };
    int v[2];
    char why[96];

    (void)n;
    if (numbers(lines[0], v, 2) == 2 && v[1] >= 1 && v[1] <= 3)
        snprintf(why, sizeof(why), "connection lost: %s (%d)", causes[v[1]], v[1]);
    else
        snprintf(why, sizeof(why), "connection lost");
    if (c->state == CMQTT_DISABLED)
        return;
    session_lost(c, why);
    abort_waiting(c, false);
    kick(c);
}

static void urc_nonet(void *ctx, const char *const *lines, size_t n)
{
    struct cmqtt *c = ctx;

    (void)lines;
    (void)n;
    if (c->state == CMQTT_DISABLED)
        return;
    /* The stack stopped: the next attempt starts it again (START). */
    session_lost(c, "the module lost its data connection");
    abort_waiting(c, true);
    kick(c);
}

static const struct at_urc urcs[] = {
    { "+CMQTTRXSTART:", 0, urc_rxstart },
    { "+CMQTTRXTOPIC:", 0, urc_rxtopic },
    { "+CMQTTRXPAYLOAD:", 0, urc_rxpayload },
    { "+CMQTTRXEND:", 0, urc_rxend },
    { "+CMQTTCONNLOST:", 0, urc_connlost },
    { "+CMQTTNONET", 0, urc_nonet },
};

/* --- life cycle ------------------------------------------------------------------- */

struct cmqtt *cmqtt_new(struct loop *loop, struct modem *modem, const struct cmqtt_opts *opts,
                        const struct cmqtt_cbs *cbs, void *ctx)
{
    struct cmqtt *c;

    if (opts && opts->server && opts->tls &&
        (!opts->ca_pem || opts->ca_len == 0 || opts->ca_len > CMQTT_CA_MAX)) {
        /* Without a CA the module would accept any server: refuse rather
         * than give a false sense of security. */
        log_error("remote.tls needs remote.ca_file: a PEM CA certificate of at most %d bytes",
                  CMQTT_CA_MAX);
        return NULL;
    }
    if (opts && opts->server && opts->tls && (opts->cert_pem || opts->key_pem) &&
        (!opts->cert_pem || !opts->key_pem || opts->cert_len == 0 || opts->key_len == 0 ||
         opts->cert_len > CMQTT_CERT_MAX || opts->key_len > CMQTT_CERT_MAX)) {
        log_error("remote.cert_file and remote.key_file: both, PEM, at most %d bytes each",
                  CMQTT_CERT_MAX);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->modem = modem;
    if (cbs)
        c->cbs = *cbs;
    c->ctx = ctx;
    c->tail = &c->queue;
    c->state = CMQTT_DISABLED;
    if (!opts || !opts->server)
        return c;   /* no "remote": every command answers unavailable */
    c->opt = *opts;
    if (c->opt.backoff_min_ms <= 0)
        c->opt.backoff_min_ms = 1000;
    if (c->opt.backoff_max_ms < c->opt.backoff_min_ms)
        c->opt.backoff_max_ms = c->opt.backoff_min_ms > 60000 ? c->opt.backoff_min_ms : 60000;
    c->backoff_ms = c->opt.backoff_min_ms;
    for (size_t i = 0; i < opts->n_subs && c->n_subs < CMQTT_MAX_SUBS; i++) {
        char *t = strdup(opts->subs[i].topic);
        if (!t) {
            cmqtt_free(c);
            return NULL;
        }
        c->subs[c->n_subs++] = (struct sub){ t, opts->subs[i].qos };
    }
    if (at_chat_add_urcs(modem_chat(modem), urcs, sizeof(urcs) / sizeof(urcs[0]), c) < 0) {
        cmqtt_free(c);
        return NULL;
    }
    c->state = CMQTT_DISCONNECTED;
    return c;
}

void cmqtt_free(struct cmqtt *c)
{
    if (!c)
        return;
    loop_cancel_timer(c->loop, c->retry_timer);
    rx_reset(c);
    job_free(c->cur);
    while (c->queue) {
        struct job *j = c->queue;
        c->queue = j->next;
        job_free(j);
    }
    for (size_t i = 0; i < c->n_subs; i++)
        free(c->subs[i].topic);
    free(c);
}
