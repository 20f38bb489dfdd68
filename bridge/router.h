/* The command topics of an instance: a table of routes, one row a topic
 * {suffix, parse, handle, flags}, as mosquitto's read_handle.c dispatches
 * packets. A payload is parsed only by the json_parse_* function of its
 * row (mqtt/json.h), before anything reaches a service. */
#ifndef M2M_ROUTER_H
#define M2M_ROUTER_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "modem/sms.h"
#include "mqtt/json.h"

struct command;
struct config;
struct instance;

/* A command's request as its route's parser leaves it. Strings borrow
 * from root, the payload's tree, freed when the handler returns; a
 * handler that needs them later takes the tree (root = NULL) and frees
 * it. */
struct route_req {
    cJSON *root;
    union {
        struct sms_send_req sms;
        struct remote_publish_req publish;   /* its payload_buf: the handler clears it */
        struct {
            const char *topic;
            int qos;
        } subscribe;
        struct {
            const char *to;
            struct json_audio_play alarm;   /* alarm.file NULL: no "play" */
        } dial;
        struct json_audio_play play;
        struct {
            const char *file;
            int seconds;
        } record;
        struct json_audio_upload upload;    /* its data: the handler takes it */
        const char *text;         /* call/dtmf "digits", ussd/send
                                     "code", at/send "command", remote/unsubscribe
                                     "topic", network/select "mccmnc" (NULL: auto) */
        enum json_power_mode power;
    };
};

/* One command topic: its payload is checked by parse before handle runs;
 * handle answers the command, now or later (command_finish). */
struct route {
    const char *suffix;           /* after "<base>/" */
    int (*parse)(const cJSON *root, struct route_req *req, struct m2m_error *err);
    void (*handle)(struct instance *inst, struct command *cmd, struct route_req *req);
    unsigned flags;
    /* A replayed command begun before a restart: NULL answers it
     * "unavailable" without running it; else handle gets it (cmd->started)
     * and resume says whether some of its work never began (then it
     * waits for the modem like a new command). */
    bool (*resume)(const struct route_req *req, unsigned started);
};
/* Runs whatever the modem's state (else answered "unavailable" while the
 * modem is not ready). */
#define ROUTE_ANY_STATE 1u
/* Needs no modem at all: never held while the modem starts. */
#define ROUTE_NO_MODEM 2u
/* Raw AT: answered "not_allowed" unless allow_raw_at. */
#define ROUTE_RAW_AT 4u
/* Costs money abroad (an outgoing SMS, call or USSD): answered
 * "not_allowed" while roaming with modem.roaming false. */
#define ROUTE_HOME_ONLY 8u
/* Takes payloads up to JSON_UPLOAD_PAYLOAD_MAX (else JSON_PAYLOAD_MAX). */
#define ROUTE_LARGE 16u

/* The route of topic under cfg's base topic, or of the pool's shared
 * topic (mqtt.pool): NULL when it is no command topic. */
const struct route *router_find(const struct config *cfg, const char *topic);

/* The route of a suffix ("sms/send"), NULL when it is none. */
const struct route *router_route(const char *suffix);

/* <mqtt.pool.topic>/sms/send, where the pool's commands arrive (the
 * broker strips "$share/<group>/" from the topic it delivers them on). */
bool router_is_pool_topic(const struct config *cfg, const char *topic);

/* The i-th command topic's suffix, NULL past the last. */
const char *router_suffix(size_t i);

#endif
