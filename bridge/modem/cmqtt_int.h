/* The remote-broker service's insides, shared by its files (cmqtt.h is
 * the interface):
 *
 *   cmqtt.c       the session: state, reconnect backoff, the job queue,
 *                 the API (publish, subscribe, shutdown, modem ready),
 *                 +CMQTTCONNLOST / +CMQTTNONET
 *   cmqtt_job.c   one job at a time as an AT script (at/script.h):
 *                 connect, publish, subscribe, unsubscribe, stop
 *   cmqtt_rx.c    the receive path: +CMQTTRXSTART/TOPIC/PAYLOAD/END
 *   cmqtt_text.c  pure: error codes in words, state names, topic filters
 *
 * Nothing here is for other modules. */
#ifndef M2M_MODEM_CMQTT_INT_H
#define M2M_MODEM_CMQTT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at/chat.h"
#include "modem/cmqtt.h"

struct at_script_run;

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

/* Why a job's script stopped, as a done callback saw it (cmqtt_job.c). */
struct job_failure {
    const char *code;            /* NULL: none recorded */
    char why[160];
    int e;                       /* the module's <e>, or -1 */
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
    bool cancelling;             /* answering a job for AT_FINAL_CANCELLED */
    bool aborting;               /* in at_chat_abort() for a CONNLOST/NONET */
    bool need_disc;              /* the next connect sends AT+CMQTTDISC first */
    bool cert_loaded;            /* every AT+CCERTDOWN done since the modem came up */
    bool lost_while_connecting;  /* CONNLOST/NONET during the connect job */
    void (*stopped)(void *ctx);
    void *stopped_ctx;

    struct job *cur;             /* in flight */
    struct job *queue, **tail;
    size_t n_queue;
    struct at_script_run *run;   /* cur's script */
    size_t sub_index;            /* connect: the subscription being renewed */
    struct job_failure failure;  /* cur's, when a done callback failed it */

    struct sub subs[CMQTT_MAX_SUBS];
    size_t n_subs;

    uint64_t retry_timer;
    int backoff_ms;
    struct rx rx;
    struct cmqtt_stats stats;
};

/* cmqtt.c */
void cmqtt_set_state(struct cmqtt *c, enum cmqtt_state st, const char *reason);
/* The session is down: another attempt after the backoff. */
void cmqtt_session_lost(struct cmqtt *c, const char *reason);
/* Starts the next job if none is in flight: connect, a queued one, stop. */
void cmqtt_kick(struct cmqtt *c);
void cmqtt_job_free(struct job *j);
/* Answers j's caller; code NULL: success. */
void cmqtt_job_answer(const struct job *j, const char *code, const char *what, const char *why);

/* cmqtt_job.c */
/* NULL when out of memory. */
struct at_script_run *cmqtt_run_new(struct cmqtt *c);
/* c->cur = j, and its script started. */
void cmqtt_start_job(struct cmqtt *c, struct job *j);

/* cmqtt_text.c */
/* The <e> of an answer: the last number of its last "+CMQTT...:" line
 * ("+CMQTTPUB: 0,11" after OK, "+CMQTTACCQ: 0,19" before ERROR); -1 when
 * there is none, or that line is not "[<client>,]<e>". */
int cmqtt_answer_code(const struct at_response *rsp);
/* The scripts' ok(): OK, and the "+CMQTT...:" result after it, if any,
 * says <e> 0. */
bool cmqtt_answer_ok(const struct at_response *rsp);
/* An <e> that means the session is gone (socket, network, timeout), even
 * before the module says so with +CMQTTCONNLOST. */
bool cmqtt_conn_code(int e);

/* cmqtt_rx.c: the receive URCs (at_urc_fn, ctx the struct cmqtt), in
 * cmqtt.c's one URC table. */
void cmqtt_urc_rxstart(void *ctx, const char *const *lines, size_t n);
void cmqtt_urc_rxtopic(void *ctx, const char *const *lines, size_t n);
void cmqtt_urc_rxpayload(void *ctx, const char *const *lines, size_t n);
void cmqtt_urc_rxend(void *ctx, const char *const *lines, size_t n);
/* Drops the message being received, quietly (modem gone, freed). */
void cmqtt_rx_reset(struct cmqtt *c);

#endif
