/* JSON payload codecs for the MQTT side (CONTRACT.md section 3): pure,
 * no I/O. Payloads are not NUL-terminated (cJSON_ParseWithLength). */
#ifndef M2M_MQTT_JSON_H
#define M2M_MQTT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "modem/pdu.h"

/* A command's error, as it goes into {"ok":false,"error":{...}}. */
struct json_error {
    const char *code;     /* "invalid_json", "invalid_request", ... (static) */
    char message[200];
    int cme;              /* -1: absent */
    int cms;              /* -1: absent */
};

void json_error_set(struct json_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A command payload must be a JSON object whose optional "id" is a string
 * or a number. Returns the root (caller frees with cJSON_Delete) and sets
 * *id to the borrowed "id" item or NULL; NULL with err set otherwise
 * (invalid_json, invalid_request). */
cJSON *json_parse_command(const uint8_t *payload, size_t len, const cJSON **id,
                          struct json_error *err);

/* Fields of a command object other than "id" and those in allowed
 * (NULL-terminated) are rejected: invalid_request "unknown field 'x'".
 * 0 or -EINVAL. */
int json_check_fields(const cJSON *root, const char *const *allowed, struct json_error *err);

/* +<7..15 digits>, first digit not 0. */
bool json_is_e164(const char *s);

struct sms_send_req {
    const char *to;       /* borrowed from the cJSON tree */
    const char *text;     /* borrowed, UTF-8 */
    size_t text_len;
    bool flash;
    bool report;
};

/* Validates B/sms/send: "to" E.164 (invalid_number), "text" a non-empty
 * string (invalid_request), "flash"/"report" booleans. Policy checks
 * (allow_to, max_parts, rate) are the SMS service's. 0 or -EINVAL. */
int json_parse_sms_send(const cJSON *root, struct sms_send_req *req, struct json_error *err);

/* {"id":<id>,"ok":true,...data} or {"id":..,"ok":false,"error":{...}}.
 * id may be NULL (then no "id" key). data (may be NULL) is consumed: its
 * members are moved into the result. err NULL means ok. Returns a malloc'd
 * compact JSON string, or NULL on allocation failure. */
char *json_result(const cJSON *id, cJSON *data, const struct json_error *err);

/* B/sms/received. text is UTF-8, or raw octets (base64-encoded in the
 * JSON, with "encoding":"base64") when alphabet is PDU_8BIT.
 * parts_missing: list of missing part numbers (NULL/0 when complete). */
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
};
char *json_sms_received(const struct sms_received *m);

/* {"code":..,"message":..} plus an optional extra string field (e.g. "pdu"). */
char *json_event_error(const char *code, const char *message, const char *extra_key,
                       const char *extra_value);

/* RFC 4648 base64 (for 8-bit SMS and binary payloads). Returns malloc'd. */
char *json_base64_encode(const uint8_t *data, size_t len);

#endif
