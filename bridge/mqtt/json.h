/* JSON payload codecs for the MQTT side: pure,
 * no I/O. Payloads are not NUL-terminated (cJSON_ParseWithLength). */
#ifndef M2M_MQTT_JSON_H
#define M2M_MQTT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Errors are struct m2m_error, the type the services fill too: the
 * parsers set it, json_result and json_add_error write it. */
#include "modem/error.h"

struct call_state;
struct sms_received;
struct sms_send_req;

/* Bounds. A command payload is at most JSON_PAYLOAD_MAX bytes (too_long
 * beyond). The remote limits are the module's (AT+CMQTTTOPIC 1-1024,
 * AT+CMQTTPAYLOAD 1-10240). */
#define JSON_PAYLOAD_MAX        65536
/* B/audio/upload carries up to 512 KiB in base64 (4 bytes per 3). */
#define JSON_UPLOAD_PAYLOAD_MAX (700u * 1024u)
#define JSON_REMOTE_TOPIC_MAX   1024
#define JSON_REMOTE_PAYLOAD_MAX 10240
/* B/at/send: one command line (the module's buffer takes 3071). */
#define JSON_AT_MAX             1024
/* B/call/dial: digits, '*' and '#' after an optional '+' (ATD's number). */
#define JSON_DIAL_MAX           32

/* A command payload must be a JSON object whose optional "id" is a string
 * or a (finite) number. Returns the root (caller frees with cJSON_Delete)
 * and sets *id to the borrowed "id" item or NULL; NULL with err set
 * otherwise, and then *id is NULL (the result carries no id):
 *   invalid_json     not UTF-8, not JSON, or text after the value
 *   invalid_request  not an object; a bad "id"; a string holding U+0000
 *                    (cJSON would silently cut it there)
 *   too_long         more than JSON_PAYLOAD_MAX bytes
 * An empty payload (mosquitto_pub -n) is taken as {}. */
cJSON *json_parse_command(const uint8_t *payload, size_t len, const cJSON **id,
                          struct m2m_error *err);
/* The same with another bound than JSON_PAYLOAD_MAX (B/audio/upload). */
cJSON *json_parse_command_max(const uint8_t *payload, size_t len, size_t max, const cJSON **id,
                              struct m2m_error *err);

/* Fields of a command object other than "id" and those in allowed
 * (NULL-terminated) are rejected: invalid_request "unknown field 'x'"; a
 * field given twice: invalid_request "duplicate field 'x'" (cJSON keeps
 * both and every lookup sees the first). 0 or -EINVAL. B/call/answer and
 * B/call/hangup take no fields: allowed = {NULL}. */
int json_check_fields(const cJSON *root, const char *const *allowed, struct m2m_error *err);

/* +<7..15 digits>, first digit not 0. */
bool json_is_e164(const char *s);

/* What B/sms/send's "to" may be: E.164, or a national number or short
 * code of 2-20 digits (sent with type-of-address 129). */
bool json_is_sms_number(const char *s);

/* Validates B/sms/send (struct sms_send_req: modem/sms.h): "to" a number
 * json_is_sms_number accepts, or an array of 1-SMS_RECIPIENTS_MAX distinct
 * ones (invalid_number for a bad number, naming it "to[i]";
 * invalid_request for anything else, also
 * for a number listed twice: any of it refuses the whole request), "text"
 * a non-empty string (invalid_request), "flash"/"report" booleans.
 * Policy checks (allow_to, max_parts, rate) are the SMS service's, per
 * recipient. 0 or -EINVAL. */
int json_parse_sms_send(const cJSON *root, struct sms_send_req *req, struct m2m_error *err);

/* {"id":<id>,"ok":true,...data} or {"id":..,"ok":false,...data,"error":{...}}.
 * id may be NULL (then no "id" key). data (may be NULL) is consumed: its
 * members are moved into the result, in order, after "ok". err NULL means
 * ok; its object is {"code", then "cme"/"cms" when >= 0, then "message"}.
 * Bytes that are not UTF-8 in data strings are repaired (utf8_repair:
 * Latin-1 or U+FFFD). Returns a malloc'd compact JSON string (free()), or
 * NULL on allocation failure. */
char *json_result(const cJSON *id, cJSON *data, const struct m2m_error *err);

/* Adds err to obj as "error":{"code", then "cme"/"cms" when >= 0, then
 * "message"}: the object json_result writes, for results that carry
 * errors inside (one per recipient). 0 or -ENOMEM. */
int json_add_error(cJSON *obj, const struct m2m_error *err);

/* B/call/dial: {"to"} an optional '+' and 1-JSON_DIAL_MAX of 0-9 * #
 * (and the alarm's fields, json_parse_call_alarm's to check)
 * (invalid_number otherwise): numbers and service codes. Which of them
 * may be dialled (calls.allow_to) is the call service's check. *to is
 * borrowed. */
int json_parse_call_dial(const cJSON *root, const char **to, struct m2m_error *err);

/* The voice alarm of B/call/dial and B/audio/play. file NULL: no "play"
 * (the dial plays nothing). */
struct json_audio_play {
    const char *file;           /* borrowed: a name audio_file_valid accepts */
    int repeat;                 /* 1-10, default 1 */
    bool to_call;               /* B/audio/play "to_call"; a dial's alarm: true */
    bool hangup;                /* the dial's "hangup", default true */
};

/* B/call/dial's optional "play" (a module file, audio_file_valid),
 * "repeat" 1-10 (default 1) and "hangup" (default true); "repeat" or
 * "hangup" without "play" is invalid_request. json_parse_call_dial
 * checks the fields and "to". 0 or -EINVAL. */
int json_parse_call_alarm(const cJSON *root, struct json_audio_play *req, struct m2m_error *err);

/* B/audio/play: "file", optional "repeat" 1-10 and "to_call". */
int json_parse_audio_play(const cJSON *root, struct json_audio_play *req, struct m2m_error *err);

/* B/audio/record: "file" (a .wav name) and "seconds" 1-600. */
int json_parse_audio_record(const cJSON *root, const char **file, int *seconds,
                            struct m2m_error *err);

struct json_audio_upload {
    const char *file;           /* borrowed */
    uint8_t *data;              /* owned: the decoded "data" (malloc'd) */
    size_t len;                 /* 1-AUDIO_UPLOAD_MAX */
};
/* B/audio/upload: "file" and "data", base64 (RFC 4648, padded) of 1 byte
 * to 512 KiB (too_long beyond). On 0 the caller owns req->data. */
int json_parse_audio_upload(const cJSON *root, struct json_audio_upload *req,
                            struct m2m_error *err);

/* B/call/dtmf: {"digits"} 1-32 of 0-9 * # A-D (a-d accepted), the AT+VTS
 * set. *digits is borrowed. 0 or -EINVAL (invalid_request). */
int json_parse_dtmf(const cJSON *root, const char **digits, struct m2m_error *err);

/* B/ussd/send: {"code"} 1-160 of 0-9 * # + (codes like "*100#" and the
 * digits answering a USSD menu). *code is borrowed. */
int json_parse_ussd(const cJSON *root, const char **code, struct m2m_error *err);

struct remote_publish_req {
    const char *topic;          /* borrowed from the tree */
    const uint8_t *payload;     /* the tree's string, or payload_buf */
    size_t payload_len;         /* 0 allowed */
    int qos;                    /* default 0 */
    bool retain;                /* default false */
    uint8_t *payload_buf;       /* owned: the decoded "encoding":"base64" payload */
};

/* B/remote/publish: "topic" a topic name (no wildcards) of at most
 * JSON_REMOTE_TOPIC_MAX bytes, "payload" a string of at most
 * JSON_REMOTE_PAYLOAD_MAX bytes once decoded (too_long beyond), optional
 * "qos" 0-2, "retain", "encoding" "utf8" | "base64" (RFC 4648, padded).
 * On 0 the caller calls json_remote_publish_clear(req). */
int json_parse_remote_publish(const cJSON *root, struct remote_publish_req *req,
                              struct m2m_error *err);
void json_remote_publish_clear(struct remote_publish_req *req);

/* B/remote/subscribe: "topic" a topic filter, optional "qos" 0-2 (default
 * 0). B/remote/unsubscribe: "topic" only. *topic is borrowed. */
int json_parse_remote_subscribe(const cJSON *root, const char **topic, int *qos,
                                struct m2m_error *err);
int json_parse_remote_unsubscribe(const cJSON *root, const char **topic,
                                  struct m2m_error *err);

enum json_power_mode { JSON_POWER_FULL = 0, JSON_POWER_MIN, JSON_POWER_RESET };

/* B/modem/power: "mode" "full" | "min" | "reset". */
int json_parse_modem_power(const cJSON *root, enum json_power_mode *mode,
                           struct m2m_error *err);

/* B/network/select: {"mode":"auto"} or {"mccmnc":"26201"} (5 or 6
 * digits), exactly one of them (invalid_request naming the field
 * otherwise). *mccmnc is borrowed, NULL for "auto". */
int json_parse_network_select(const cJSON *root, const char **mccmnc, struct m2m_error *err);

/* B/at/send: "command" one AT command line, the only check it gets
 * (invalid_request naming the reason, nothing sent otherwise):
 * 2-JSON_AT_MAX printable ASCII characters (no CR, LF, BEL, BS, Ctrl-Z,
 * ESC, DEL or 8-bit byte), starting with AT (any case), no ';' (one
 * command per request), and no command that opens a '>' data prompt
 * (AT+CMGS, AT+CMQTTTOPIC, AT+CCERTDOWN, AT+CIPSEND, ...) anywhere in
 * the line, in any case. Whether raw AT is allowed is the router's check
 * (allow_raw_at). *command is borrowed. */
int json_parse_at_send(const cJSON *root, const char **command, struct m2m_error *err);

/* topic_check (core/topic.h) says nothing against the n bytes at topic:
 * what the broker accepts as a topic name or filter. No length limit. */
bool json_topic_valid(const char *topic, size_t len, bool filter);

/* B/sms/received (struct sms_received: modem/sms.h). from, time and
 * smsc: NULL or "" become null. The text is written with its length, so
 * a NUL (UCS-2 U+0000 from the network) comes out as "\u0000" and nothing
 * is cut; bytes that are not UTF-8 are repaired (utf8_repair).
 * Members in this order: from, text, time, smsc, parts, then "encoding"
 * ("base64", only for 8-bit), then "parts_missing" (only when some are).
 * Returns malloc'd JSON or NULL on allocation failure. */
char *json_sms_received(const struct sms_received *m);

/* B/sms/report: the delivery report of one part of a sent SMS. */
struct sms_report {
    int reference;              /* TP-MR */
    const char *to;             /* the recipient (TP-RA) */
    uint8_t st;                 /* TP-ST */
    const char *time;           /* TP-DT, the discharge time */
    const char *submitted;      /* TP-SCTS */
    /* The B/sms/send command's id as JSON text ("42", "\"abc\""), or NULL
     * when the bridge does not know the reference (then "id":null and no
     * part/parts). Written as is: it must be a JSON string or number. */
    const char *id_json;
    unsigned part, parts;
};
/* "delivered" (TP-ST 0x00-0x1F), "pending" (0x20-0x3F) or "failed"
 * (0x40 and up: 0x40-0x7F are permanent errors, above is reserved). */
const char *json_report_status(uint8_t st);
/* {"reference","to","status","st","time","submitted","id"[,"part","parts"]};
 * time, submitted and to: NULL or "" become null. Returns malloc'd JSON or
 * NULL on allocation failure. */
char *json_sms_report(const struct sms_report *r);

/* B/remote/message: {"topic","payload","encoding","qos"}. The payload is
 * "utf8" when it is UTF-8 without NUL, else "base64". A topic that is not
 * UTF-8 is repaired (utf8_repair). Returns malloc'd JSON or NULL. */
char *json_remote_message(const char *topic, size_t topic_len, const uint8_t *payload,
                          size_t len, int qos);

/* {"code":..,"message":..} plus an optional extra string field (e.g. "pdu";
 * extra_key NULL: none). Returns malloc'd JSON or NULL. */
char *json_event_error(const char *code, const char *message, const char *extra_key,
                       const char *extra_value);

/* B/status. */
struct json_status {
    const char *state;            /* "ready", "starting", ... */
    const char *sim;              /* "ready", "locked", "absent", "unknown" */
    const char *registration;
    const char *operator_name;    /* NULL or "": null */
    const char *access;           /* NULL or "": null */
    const char *lac, *ci;         /* the serving cell; either NULL or "": "cell" null */
    int csq;                      /* -1: unknown (csq, dbm and percent null) */
    int dbm;
    int percent;                  /* < 0: dbm and percent null (csq 99) */
    int storage_used;
    int storage_total;            /* <= 0: unknown (used and total null) */
    int voltage_mv;               /* the supply voltage; <= 0: unknown (null) */
    const char *remote;           /* the remote session's state */
    const char *remote_error;     /* why it is down, or NULL (no member) */
};
/* {"state","sim","registration","operator","access","cell":{"lac","ci"},
 *  "signal":{"csq","dbm","percent"},"storage":{"used","total"},
 *  "voltage_mv","remote"[,"remote_error"]}. Returns malloc'd JSON or NULL. */
char *json_status(const struct json_status *s);

/* B/call/state (struct call_state: modem/call.h), malloc'd, NULL on out
 * of memory: state, direction, number, since (ISO 8601, local time with
 * offset), ended_reason, duration when idle after a call, and playing.
 * Pure but for the local time zone. */
char *json_call_state(const struct call_state *st);

/* B/audio/state: {"state","file"} (file null when not known or idle).
 * malloc'd, NULL on out of memory. */
char *json_audio_state(const char *state, const char *file);

/* A flat object of string members (B/info, B/call/ring), in order; NULL
 * or "" values become null. Returns malloc'd JSON or NULL. */
struct json_member {
    const char *key;
    const char *value;
};
char *json_strings(const struct json_member *m, size_t n);

/* RFC 4648 base64 (for 8-bit SMS and binary payloads). Returns malloc'd
 * (NUL-terminated; "" for len 0), NULL on allocation failure. */
char *json_base64_encode(const uint8_t *data, size_t len);

/* RFC 4648 base64, strict: padded to a multiple of 4, no whitespace, no
 * URL alphabet, unused bits zero (so every payload has one spelling).
 * *out is malloc'd (never NULL on success, even for ""). 0, -EINVAL or
 * -ENOMEM. */
int json_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

#endif
