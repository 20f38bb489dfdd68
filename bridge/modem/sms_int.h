/* The SMS service's private parts, shared by its files (sms.c says what
 * the service does):
 *   sms.c       the groups of received parts: the SIM indexes known,
 *               reassembly with its timeout, publishing a group and
 *               deleting it after the broker's ack; the life cycle
 *   sms_read.c  reading from the module: +CMTI/+CDSI with AT+CMGR, +CMT
 *               and +CDS, the AT+CMGL drain; each PDU decoded and put into
 *               its group
 *   sms_send.c  sending: the job queue, AT+CMGS part by part, the hourly
 *               rate limit */
#ifndef M2M_MODEM_SMS_INT_H
#define M2M_MODEM_SMS_INT_H

#include "modem/sms.h"

#include "at/chat.h"
#include "modem/pdu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_PENDING_READS 256
#define MAX_GROUP_INDEXES 32

struct group {
    struct group *next;
    char from[PDU_ADDR_MAX];
    uint16_t ref;
    uint8_t total;                /* parts expected (1 for a single SMS) */
    bool concat;
    struct pdu_msg **parts;       /* [total], NULL where missing */
    int indexes[MAX_GROUP_INDEXES];  /* SIM indexes to delete; -1: none */
    size_t n_indexes;
    char *raw_pdu;                /* undecodable: the PDU, published as B/error */
    bool report;                  /* parts[0] is a status report */
    int64_t deadline;             /* reassembly gives up at this time */
    bool expired;                 /* it did: published as is; retried by sms_drain */
    bool publishing;              /* waiting for the broker's ack */
    uint64_t token;               /* of the current publish attempt */
    /* message_id "@" the SIM indexes: what the broker acknowledged. */
    char key[17 + 1 + MAX_GROUP_INDEXES * 4];
};

struct send_job {
    struct send_job *next;
    struct sms *sms;
    struct pdu_part *parts;
    size_t n_parts;
    size_t sent;
    sms_send_cb cb;
    struct sms_part_hooks hooks;
    void *ctx;
    struct sms_send_result res;
};

struct sms {
    struct loop *loop;
    struct modem *modem;
    struct sms_opts opts;
    struct sms_cbs cbs;
    void *ctx;
    bool ready;

    struct group *groups;
    size_t n_groups;
    uint64_t next_token;
    uint64_t reassembly_timer;

    int pending[MAX_PENDING_READS];  /* SIM indexes announced by +CMTI */
    size_t n_pending;
    int deleting[MAX_PENDING_READS]; /* SIM indexes with an AT+CMGD queued, in order */
    size_t n_deleting;
    bool reading;                    /* an AT+CMGR is in flight */
    bool draining;                   /* an AT+CMGL is in flight */

    /* Send jobs in arrival order; only the head has a part in flight. The
     * queue is ours, not the chat's: a burst of accepted commands waits
     * here instead of overflowing the chat and being refused. */
    struct send_job *jobs, **jobs_tail;
    size_t n_jobs;
    bool part_in_flight;
    uint8_t concat_ref;
    int64_t *sent_at;                /* ring of send times for rate_per_hour */
    size_t sent_head, sent_count;
};

/* Shared between the files above (each was a static of the one sms.c). */

/* sms.c: the groups. */
bool sms_index_known(const struct sms *sms, int idx);
void sms_group_free(struct group *g);
void sms_group_unlink(struct sms *sms, struct group *g);
struct group *sms_group_new(struct sms *sms, uint8_t total);
void sms_group_add_index(struct group *g, int idx);
void sms_publish_group(struct sms *sms, struct group *g);
bool sms_group_complete(const struct group *g);
void sms_arm_reassembly(struct sms *sms);

/* sms_read.c: the URCs of incoming messages and reports, for sms_new. */
extern const struct at_urc sms_urcs[];
extern const size_t sms_n_urcs;

#endif
