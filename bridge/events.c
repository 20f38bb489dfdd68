/* Publishing: the instance's events (B/availability, B/status, B/info,
 * B/error, B/call/state, B/call/ring, B/call/dtmf/received, B/audio/state)
 * and the one
 * path every text payload takes to the link. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/utf8.h"
#include "instance_int.h"
#include "modem/audio.h"
#include "modem/call.h"
#include "modem/cmqtt.h"
#include "modem/status.h"

int events_topic(const struct instance *inst, const char *suffix, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", inst->cfg->mqtt.base_topic, suffix);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Every text payload the bridge publishes (events, results, discovery)
 * passes here, and here only is it made valid UTF-8: module text (an
 * operator name, a caller's number, a response line) can be Latin-1 or
 * garbage, and a JSON text that is not UTF-8 is invalid for every
 * consumer. Raw remote payloads on remote.subscribe[].local do not come
 * here: they go out as received. */
int events_publish_text(struct instance *inst, const char *t, const char *payload, int qos,
                        bool retain, const uint8_t *corr, size_t corr_len, mqtt_link_ack_cb ack,
                        void *ack_ctx)
{
    size_t n = strlen(payload), fixed_len;
    char *fixed = NULL;
    int r;

    if (!utf8_valid((const uint8_t *)payload, n)) {
        fixed_len = utf8_repair((const uint8_t *)payload, n, NULL, 0);
        fixed = malloc(fixed_len + 1);
        if (!fixed)
            return -ENOMEM;
        utf8_repair((const uint8_t *)payload, n, (uint8_t *)fixed, fixed_len);
        fixed[fixed_len] = '\0';
        payload = fixed;
        n = fixed_len;
    }
    r = mqtt_link_publish(inst->link, t, payload, n, qos, retain, corr, corr_len, ack, ack_ctx);
    free(fixed);
    return r;
}

int events_publish(struct instance *inst, const char *suffix, const char *payload, int qos,
                   bool retain, mqtt_link_ack_cb ack, void *ack_ctx)
{
    char t[TOPIC_MAX];
    int r = events_topic(inst, suffix, t, sizeof(t));

    if (r < 0)
        return r;
    return events_publish_text(inst, t, payload, qos, retain, NULL, 0, ack, ack_ctx);
}

/* B/availability says whether the bridge is there (connected to this
 * broker), not the modem: an unplugged or hung modem shows in B/status
 * "state". Retained, so once per connection; the broker's last will and
 * mqtt_link_stop say "offline". */
void events_availability(struct instance *inst)
{
    events_publish(inst, "availability", "online", 1, true, NULL, NULL);
}

static const char *status_state(enum modem_state st)
{
    switch (st) {
    case MODEM_CLOSED: return "unavailable";
    case MODEM_PROBING:
    case MODEM_BRINGUP: return "starting";
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "sim_locked";
    case MODEM_NO_SIM: return "no_sim";
    case MODEM_LOW_POWER: return "low_power";
    case MODEM_RESETTING: return "resetting";
    default: return "unavailable";
    }
}

/* B/status "state": a reset stays "resetting" through the module's boot
 * and bring-up, until it is ready (or stops: SIM, no port). */
const char *instance_state(const struct instance *inst)
{
    enum modem_state st = modem_state(inst->modem);

    if (inst->resetting && (st == MODEM_PROBING || st == MODEM_BRINGUP || st == MODEM_RESETTING))
        return "resetting";
    return status_state(st);
}

static const char *sim_state(enum modem_state st)
{
    switch (st) {
    case MODEM_READY: return "ready";
    case MODEM_SIM_LOCKED: return "locked";
    case MODEM_NO_SIM: return "absent";
    default: return "unknown";
    }
}

/* B/status: what the modem and its services know now; while it is not
 * ready, only its state (the rest is null or "unknown"). */
void events_status(struct instance *inst)
{
    enum modem_state st = modem_state(inst->modem);
    const struct status_info *si = status_get(inst->status);
    bool ready = st == MODEM_READY;
    struct json_status js = {
        .state = instance_state(inst),
        .sim = sim_state(st),
        /* AT+CFUN=0: the radio is off, so the module is not registered. */
        .registration = ready                   ? status_reg_name(si->reg_stat)
                        : st == MODEM_LOW_POWER ? "unregistered"
                                                : "unknown",
        .operator_name = ready ? si->operator_name : NULL,
        .access = ready ? si->access : NULL,
        .lac = ready ? si->cell.lac : NULL,
        .ci = ready ? si->cell.ci : NULL,
        .csq = ready ? si->csq : -1,
        .dbm = ready && si->csq >= 0 ? status_csq_dbm(si->csq) : 0,
        .percent = ready && si->csq >= 0 ? status_csq_percent(si->csq) : -1,
        /* Unknown while not ready, not read yet, or a module without SMS. */
        .storage_used = ready ? si->storage_used : 0,
        .storage_total = ready ? si->storage_total : 0,
        .voltage_mv = ready ? si->voltage_mv : 0,
        .remote = cmqtt_state_name(cmqtt_state(inst->cmqtt)),
        /* Why the remote session is down (e.g. "connection refused: bad
         * user name or password (30)"); only while it is. */
        .remote_error = cmqtt_state(inst->cmqtt) == CMQTT_DISCONNECTED ? cmqtt_reason(inst->cmqtt)
                                                                       : NULL,
    };
    char *s = json_status(&js);

    if (!s)
        return;
    if (inst->last_status && strcmp(inst->last_status, s) == 0) {
        free(s);
        return;
    }
    if (events_publish(inst, "status", s, 1, true, NULL, NULL) == 0) {
        free(inst->last_status);
        inst->last_status = s;
    } else {
        free(s);
    }
}

void events_info(struct instance *inst)
{
    const struct modem_info *i = &inst->info;
    const struct json_member m[] = {
        { "manufacturer", i->manufacturer }, { "model", i->model },
        { "revision", i->revision },         { "imei", i->imei },
        { "imsi", i->imsi },                 { "iccid", i->iccid },
        { "number", i->number },
    };
    char *s = inst->have_info ? json_strings(m, sizeof(m) / sizeof(m[0])) : NULL;

    if (s)
        events_publish(inst, "info", s, 1, true, NULL, NULL);
    free(s);
}

void events_error(struct instance *inst, const char *code, const char *message)
{
    char *s = json_event_error(code, message, NULL, NULL);

    cmd_stats_count(inst, STATS_ERRORS);
    if (s)
        events_publish(inst, "error", s, 0, false, NULL, NULL);
    free(s);
}

static void storage_full_acked(void *ctx, int status);

/* QoS 1, so that the PUBACK says the broker has it; a publish lost with
 * the connection is due again at the next connect (a drop between the
 * publish and its PUBACK may deliver it twice: at least once rather than
 * maybe never). */
static void storage_full(struct instance *inst)
{
    char *s;

    if (!inst->storage_full_due || inst->storage_full_in_flight || !mqtt_link_connected(inst->link))
        return;
    s = json_event_error("storage_full", inst->storage_full_why, NULL, NULL);
    if (s && events_publish(inst, "error", s, 1, false, storage_full_acked, inst) == 0) {
        inst->storage_full_due = false;
        inst->storage_full_in_flight = true;
    }
    free(s);
}

static void storage_full_acked(void *ctx, int status)
{
    struct instance *inst = ctx;

    inst->storage_full_in_flight = false;
    if (status == -ECANCELED)
        return;                    /* shutting down */
    /* Lost with the connection: again after the reconnect. A refusal (an
     * ACL) would be refused again and again: logged, not retried. */
    if (status == -ENOTCONN)
        inst->storage_full_due = true;
    else if (status < 0)
        log_warn("B/error storage_full refused by the broker: %s", strerror(-status));
    /* Due again, or a new episode began meanwhile: now if connected, else
     * at the next connect. */
    storage_full(inst);
}

void events_sim_locked(struct instance *inst)
{
    events_error(inst, "sim_locked", "the SIM needs a PIN or PUK (modem.pin)");
}

/* Retained: a dashboard shows the call in progress after its own restart. */
void events_call_state(struct instance *inst, const struct call_state *st)
{
    char *s = st ? json_call_state(st) : NULL;

    if (s)
        events_publish(inst, "call/state", s, 1, true, NULL, NULL);
    free(s);
}

void events_call_ring(struct instance *inst, const char *from)
{
    const struct json_member m[] = { { "from", from } };
    char *s = json_strings(m, 1);

    if (s)
        events_publish(inst, "call/ring", s, 1, false, NULL, NULL);
    free(s);
}

/* Not retained: a key press acknowledges what is happening now; a retained
 * one would acknowledge the next alarm of whoever subscribes later. */
void events_call_dtmf(struct instance *inst, char key)
{
    const char digit[2] = { key, '\0' };
    const struct json_member m[] = { { "digit", digit } };
    char *s = json_strings(m, 1);

    if (s)
        events_publish(inst, "call/dtmf/received", s, 1, false, NULL, NULL);
    free(s);
}

/* Retained like the call's state: a dashboard shows what plays now. */
void events_audio_state(struct instance *inst, const struct audio_state *st)
{
    char *s = json_audio_state(audio_st_name(st->state), st->file);

    if (s)
        events_publish(inst, "audio/state", s, 1, true, NULL, NULL);
    free(s);
}

/* The SIM's SMS store became full: B/error storage_full, once per
 * episode. */
void events_storage_full(struct instance *inst, const char *why)
{
    snprintf(inst->storage_full_why, sizeof(inst->storage_full_why),
             "the SIM's SMS store is full (%s): new messages are not stored until some are "
             "deleted", why);
    inst->storage_full_due = true;
    storage_full(inst);
}

void events_status_again(struct instance *inst)
{
    free(inst->last_status);
    inst->last_status = NULL;
    events_status(inst);
}

void events_storage_full_retry(struct instance *inst)
{
    storage_full(inst);
}
