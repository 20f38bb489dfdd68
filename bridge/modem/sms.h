/* SMS service: sending (AT+CMGS, PDU mode) and receiving (+CMTI, +CMT,
 * AT+CMGR, AT+CMGL drain), multipart reassembly, and deletion from the SIM
 * only after the broker acknowledged the publish. Status reports (+CDS,
 * +CDSI, or found stored) take the same way: published, then deleted.
 *
 * The service knows nothing of MQTT: a received message goes out through
 * the `received` callback with a token, and the owner calls
 * sms_received_done(token, status) when the broker acknowledged (or refused)
 * it. Only then is the message deleted (or kept for the next attempt). */
#ifndef M2M_MODEM_SMS_H
#define M2M_MODEM_SMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem/error.h"
#include "modem/pdu.h"

struct loop;
struct modem;

struct sms_opts {
    char *const *allow_to;
    size_t n_allow_to;
    int max_parts;
    int rate_per_hour;
    bool keep_on_sim;           /* messages only: reports are always deleted */
    bool delivery_reports;      /* TP-SRR on every SMS, not only on request */
    int reassembly_timeout_ms;  /* parts missing after this: published as is */
};

/* A received SMS (B/sms/received: json_sms_received). text is UTF-8, or
 * raw octets (base64-encoded in the JSON, with "encoding":"base64") when
 * alphabet is PDU_8BIT. parts_missing: list of missing part numbers
 * (NULL/0 when complete). */
struct sms_received {
    const char *from;
    const char *smsc;
    const char *time;
    enum pdu_alphabet alphabet;
    const uint8_t *text;
    size_t text_len;
    unsigned parts;
    const unsigned *parts_missing;
    size_t n_parts_missing;
    /* 16 hex digits from sender, time stamp and text: the same every time
     * the same message is published, so a consumer can drop a repeat. */
    const char *message_id;
};

struct sms_cbs {
    /* A complete (or timed-out) incoming message. Borrowed for the call.
     * The owner must call sms_received_done(sms, token, status) once. */
    void (*received)(void *ctx, const struct sms_received *msg, uint64_t token);
    /* A PDU that would not decode: published as B/error, then treated like
     * a message (token, deleted after the ack). */
    void (*undecodable)(void *ctx, const char *pdu_hex, const char *reason, uint64_t token);
    /* A status report (one part of a sent SMS), borrowed for the call;
     * like received: the owner calls sms_received_done(sms, token, status)
     * once, and a stored report is deleted after the ack. */
    void (*report)(void *ctx, const struct pdu_msg *report, uint64_t token);
    /* Whether the broker already acknowledged this message (key: its
     * message_id and SIM indexes) before a restart: then it is deleted
     * without being published again. May be NULL. */
    bool (*acked_before)(void *ctx, const char *key);
    /* The broker acknowledged it: record the key durably; the delete
     * follows. May be NULL. */
    void (*acked)(void *ctx, const char *key);
    /* The SIM store changed: a message announced by +CMTI was read, or an
     * AT+CMGD went through (the owner reads the store's counts again).
     * May be NULL. */
    void (*store_changed)(void *ctx);
};

struct sms *sms_new(struct loop *loop, struct modem *modem, const struct sms_opts *opts,
                    const struct sms_cbs *cbs, void *ctx);
void sms_free(struct sms *sms);

/* status 0: the broker has it, delete from the SIM; else keep it and try
 * again at the next drain. */
void sms_received_done(struct sms *sms, uint64_t token, int status);

/* Reads everything stored (AT+CMGL): at modem ready, after every broker
 * reconnect, and on each status poll (the bridge calls it: a safety net
 * for a +CMTI lost during a reopen, and a retry of publishes that
 * failed). Messages already in flight are not read twice. */
void sms_drain(struct sms *sms);

/* The modem became ready, or went away (in-flight reads are forgotten:
 * the messages are still on the SIM and the next drain finds them). */
void sms_modem_ready(struct sms *sms, bool ready);

struct sms_send_result {
    char to[PDU_ADDR_MAX];       /* the recipient, as sent */
    bool report;                 /* TP-SRR was set: reports will come */
    unsigned parts;
    int references[16];          /* message references, one per part sent */
    unsigned n_references;
};

/* err is NULL on success. */
typedef void (*sms_send_cb)(void *ctx, const struct sms_send_result *res,
                            const struct m2m_error *err);

/* What the sender hears of each part before the outcome. Either may be
 * NULL. */
struct sms_part_hooks {
    /* Part `part` (1-based) of n_parts is about to be written to the
     * modem (AT+CMGS): from here it may go out. */
    void (*written)(void *ctx, unsigned part, unsigned n_parts);
    /* Part `part` went out: the module answered +CMGS, and
     * res->references[part - 1] is its reference (negative: the module
     * named none). res (to, report, parts, the references so far) is
     * borrowed for the call. Comes before the next part is written, so a
     * status report for this part, which may arrive before the next
     * part's +CMGS, finds it remembered. */
    void (*sent)(void *ctx, const struct sms_send_result *res, unsigned part);
};

/* B/sms/send's "to" as an array: at most this many recipients. */
#define SMS_RECIPIENTS_MAX 10

/* One B/sms/send, as json_parse_sms_send reads it. */
struct sms_send_req {
    const char *to;       /* borrowed from the cJSON tree: the SMS's recipient
                             (json_parse_sms_send: the first of "to") */
    const char *text;     /* borrowed, UTF-8 */
    size_t text_len;
    bool flash;
    bool report;
    /* Every recipient, in order (borrowed), and whether "to" was an array:
     * then the result lists each recipient's outcome. */
    const char *recipients[SMS_RECIPIENTS_MAX];
    size_t n_recipients;
    bool to_list;
};

/* Policy checks, encoding and sending. Rejections (not_allowed, too_long,
 * rate_limited, unavailable, unsupported) are reported through cb before
 * this returns, with nothing written to the modem. hooks may be NULL;
 * it is copied. */
void sms_send(struct sms *sms, const struct sms_send_req *req, sms_send_cb cb,
              const struct sms_part_hooks *hooks, void *ctx);

/* The message_id of a received message: 16 lower-case hex digits (FNV-1a,
 * 64 bits) of the sender, the time stamp and the text. out: 17 bytes. */
void sms_message_id(const char *from, const char *time, const uint8_t *text, size_t len,
                    char out[17]);

#endif
