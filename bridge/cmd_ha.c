/* B/ha/...: sending an SMS and dialling from Home Assistant's UI.
 *
 * HA's MQTT text entity publishes its value alone, and a button a fixed
 * payload: nothing on HA's side puts a number and a text into one
 * B/sms/send. So the text entities (mqtt/hass.c) publish their values
 * retained on B/ha/sms/to, B/ha/sms/text and B/ha/call/to, which are also
 * their state topics (the broker keeps them across restarts of HA and of
 * the bridge); the bridge remembers the last value of each. A press of a
 * button, B/ha/sms/send or B/ha/call/dial, is a command like the others
 * (journaled, answered on its result topic): the request is built from
 * those values and goes through the same parser and the same policy
 * (allow_to, max_parts, rate) as B/sms/send and B/call/dial. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "instance_int.h"

/* HA's text entity holds at most 255 characters: 4 bytes each at most. */
#define FIELD_MAX 1020

static const struct {
    const char *suffix;           /* after "B/" */
    const char *key;              /* in the request it goes into */
} fields[HA_FIELDS] = {
    [HA_SMS_TO] = { "ha/sms/to", "to" },
    [HA_SMS_TEXT] = { "ha/sms/text", "text" },
    [HA_CALL_TO] = { "ha/call/to", "to" },
};

void cmd_ha_subscribe(struct instance *inst)
{
    char t[TOPIC_MAX];

    for (size_t i = 0; i < HA_FIELDS; i++)
        if (events_topic(inst, fields[i].suffix, t, sizeof(t)) == 0)
            mqtt_link_subscribe(inst->link, t, 1);
}

/* A value that could not be a field of a command (not UTF-8, a NUL, too
 * long) is forgotten rather than kept: a press then says what is
 * missing. An empty payload (a cleared retained value) clears it. */
static void field_set(struct instance *inst, size_t i, const struct mqtt_link_msg *m)
{
    char *v = NULL;

    if (m->len > FIELD_MAX || memchr(m->payload, '\0', m->len) ||
        !utf8_valid(m->payload, m->len))
        log_warn("%s: ignoring a value that is not UTF-8 text of at most %d bytes", m->topic,
                 FIELD_MAX);
    else if (m->len > 0 && (v = malloc(m->len + 1)) != NULL) {
        memcpy(v, m->payload, m->len);
        v[m->len] = '\0';
    }
    free(inst->ha_field[i]);
    inst->ha_field[i] = v;
}

bool cmd_ha_field(struct instance *inst, const struct mqtt_link_msg *m)
{
    char t[TOPIC_MAX];

    for (size_t i = 0; i < HA_FIELDS; i++) {
        if (events_topic(inst, fields[i].suffix, t, sizeof(t)) == 0 && strcmp(m->topic, t) == 0) {
            field_set(inst, i, m);
            return true;
        }
    }
    return false;
}

void cmd_ha_free(struct instance *inst)
{
    for (size_t i = 0; i < HA_FIELDS; i++)
        free(inst->ha_field[i]);
}

/* {"<key>":"<value>",...} of the n fields, or NULL with cmd answered
 * (a field not set). */
static cJSON *request(struct instance *inst, struct command *cmd, const size_t *which, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    char msg[TOPIC_MAX + 64];

    for (size_t k = 0; root && k < n; k++) {
        const char *v = inst->ha_field[which[k]];

        if (!v) {
            snprintf(msg, sizeof(msg), "'%s' is not set: publish it on %s/%s first",
                     fields[which[k]].key, inst->name, fields[which[k]].suffix);
            cJSON_Delete(root);
            command_fail(cmd, "invalid_request", msg);
            return NULL;
        }
        if (!cJSON_AddStringToObject(root, fields[which[k]].key, v)) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root)
        command_fail(cmd, "busy", "out of memory");
    return root;
}

/* A press: the command of route suffix, made of the n fields, through
 * that route's parser and handler. */
static void press(struct instance *inst, struct command *cmd, const char *suffix,
                  const size_t *which, size_t n)
{
    const struct route *r = router_route(suffix);
    struct m2m_error err = { .cme = -1, .cms = -1 };
    struct route_req req = { .root = request(inst, cmd, which, n) };

    if (!req.root)
        return;
    if (r->parse(req.root, &req, &err) < 0)
        command_finish(cmd, NULL, &err);
    else
        r->handle(inst, cmd, &req);
    cJSON_Delete(req.root);
}

/* B/ha/sms/send: B/sms/send to B/ha/sms/to with B/ha/sms/text. */
void cmd_ha_sms_send(struct instance *inst, struct command *cmd, struct route_req *req)
{
    static const size_t which[] = { HA_SMS_TO, HA_SMS_TEXT };

    (void)req;
    press(inst, cmd, "sms/send", which, 2);
}

/* B/ha/call/dial: B/call/dial to B/ha/call/to. */
void cmd_ha_call_dial(struct instance *inst, struct command *cmd, struct route_req *req)
{
    static const size_t which[] = { HA_CALL_TO };

    (void)req;
    press(inst, cmd, "call/dial", which, 1);
}
