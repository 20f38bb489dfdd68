/* The fields of an instance (one modem, its MQTT session, its journal)
 * and the functions its files share. Internal to bridge/: instance.h is
 * the API.
 *
 * Ownership: an instance owns everything it points to unless a field says
 * "borrowed"; instance_free frees it in reverse order of creation, the
 * modem first (cancelling its commands calls back into the services and
 * into commands, which must still exist then). Everything runs on the
 * loop thread except on_persist (session.c), which runs on paho's thread
 * and touches only the journal, the immutable config and `commands`.
 *
 * The files, one family each:
 *   instance.c   life cycle and wiring, modem state, Home Assistant glue
 *   session.c    the MQTT link's callbacks: persist, connect, message, replay
 *   router.c     topic -> route, the parsers, dispatch of one command
 *   hold.c       commands held while the modem starts
 *   results.c    command results, durable until the broker has them
 *   events.c     B/status, B/info, B/error, B/call/state, ... and publishing
 *   pool.c       membership of the pool's shared subscription
 *   cmd_sms.c    B/sms/send, SMS received and reports
 *   cmd_call.c   B/call/...
 *   cmd_audio.c  B/audio/..., B/audio/state, and the voice alarm of a dial
 *   cmd_modem.c  B/ussd/send, B/modem/power, B/at/send
 *   cmd_remote.c B/remote/..., remote.forward, remote messages
 *   cmd_stats.c  the counters, B/stats, B/stats/get, /metrics
 *   cmd_ha.c     B/ha/...: Home Assistant's text fields and buttons
 *   cmd_network.c B/network/..., modem.roaming */
#ifndef M2M_INSTANCE_INT_H
#define M2M_INSTANCE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/stats.h"
#include "instance.h"
#include "modem/audio.h"
#include "modem/modem.h"
#include "mqtt/json.h"
#include "mqtt/link.h"
#include "router.h"

struct audio_state;
struct call_state;
struct result;

#define TOPIC_MAX 512

/* The answer to a command replayed after a restart that had begun. */
#define STOPPED_MSG                                                                  \
    "the bridge stopped while running this command; it may have taken effect and " \
    "is not repeated"

/* Home Assistant's text fields (cmd_ha.c). */
enum { HA_SMS_TO, HA_SMS_TEXT, HA_CALL_TO, HA_FIELDS };

/* A message received (or replayed) and not yet dispatched. */
struct held {
    struct held *next;
    char *topic;
    uint8_t *payload;
    size_t len;
    char *response_topic;
    uint8_t *correlation;
    size_t correlation_len;
    uint64_t seq;
    unsigned started;             /* replayed: its journal started mark (dispatch) */
};

/* A command being run: created by dispatch, freed by command_finish. */
/* A voice alarm: what a B/call/dial with "play" plays into its call. */
struct alarm_spec {
    char file[AUDIO_FILE_MAX];
    int repeat;
    bool hangup;                  /* hang up when it has played */
};

struct command {
    struct instance *inst;        /* borrowed */
    bool pool;                    /* came from the pool: the result names the modem */
    char *result_topic;
    cJSON *id;                    /* a copy, or NULL */
    char *response_topic;
    uint8_t *correlation;
    size_t correlation_len;
    uint64_t seq;                 /* its journal record, 0 when not journaled */
    unsigned started;             /* replayed: its journal started mark, else 0 */
};

struct instance {
    const struct config *cfg;     /* borrowed: outlives the instance */
    struct loop *loop;            /* borrowed: the process's */
    const char *name;             /* borrowed (cfg's base topic): names it in /metrics and
                                     in pool results */
    instance_changed_fn changed;  /* the process's, with changed_ctx (borrowed) */
    void *changed_ctx;
    struct journal *journal;
    struct refmap *refs;          /* sent SMS by reference, for B/sms/report */
    struct mqtt_link *link;
    struct modem *modem;
    struct sms *sms;
    struct status *status;
    struct cmqtt *cmqtt;          /* remote broker (always there; DISABLED without "remote") */
    uint8_t *remote_ca;           /* remote.ca_file's contents (TLS) */
    size_t remote_ca_len;
    uint8_t *remote_cert;         /* remote.cert_file's contents (TLS client) */
    size_t remote_cert_len;
    uint8_t *remote_key;          /* remote.key_file's: wiped before it is freed */
    size_t remote_key_len;
    struct call *call;
    struct audio *audio;
    struct ussd *ussd;
    struct hass *hass;            /* Home Assistant discovery (mqtt/hass.h) */
    bool resetting;               /* AT+CRESET accepted; the module not back yet */
    const char *last_state;       /* instance_state() last logged (static) */
    struct modem_info info;
    bool have_info;

    /* hold.c */
    bool settled;                 /* the modem left "starting" at least once */
    uint64_t settle_timer;
    struct held *held, **held_tail;
    size_t n_held;

    /* results.c */
    uint64_t commit_timer;        /* flushes the journal's results, then publishes */
    unsigned commit_tries;        /* commit_fired's, for the results waiting now */
    struct result *results;       /* not yet acknowledged by the broker */
    bool results_refused;         /* the link refused one: retried on the next ack */
    size_t n_running;             /* commands dispatched, not yet answered */

    /* session.c */
    uint64_t commands;            /* journaled on paho's thread: atomic */
    bool connected_once;

    /* events.c */
    char *last_status;            /* last published B/status, to skip repeats */
    /* B/error storage_full, once per episode of a full SMS store: waiting
     * for the broker (down, or the publish was lost), or published and
     * waiting for its PUBACK. */
    bool storage_full_due;
    bool storage_full_in_flight;
    char storage_full_why[192];

    /* cmd_remote.c */
    size_t remote_backlog;        /* REMOTE_BACKLOG_MAX_BYTES */
    uint64_t remote_dropped;      /* remote messages dropped since the start */
    bool remote_overflow;         /* in an overflow episode: B/error sent */
    bool remote_loss_logged;      /* a publish lost with the connection: logged */
    bool remote_connected_once;

    /* cmd_call.c */
    bool in_call;

    /* cmd_audio.c: the voice alarm of the dialled call (its phases are
     * explained there) */
    struct {
        enum { ALARM_NONE, ALARM_ARMED, ALARM_STARTING, ALARM_PLAYING, ALARM_ENDING } phase;
        struct alarm_spec spec;
        unsigned call_seq;        /* its call (call_state.seq): the only one it hangs up */
        uint64_t end_timer;       /* ending: the hang-up a moment after the playback */
    } alarm;

    /* cmd_ha.c */
    char *ha_field[HA_FIELDS];    /* their last values, NULL when not set */

    /* cmd_network.c */
    bool scanning;                /* AT+COPS=? runs or waits */
    bool roaming_refused;         /* roaming with modem.roaming false (told on B/error) */

    /* cmd_stats.c */
    struct stats stats;           /* B/stats and /metrics (core/stats.h) */
    struct stats stats_said;      /* the counters B/stats last published */
    int64_t started_ms;           /* loop_now_ms() at instance_new: uptime */
    uint64_t stats_timer;         /* armed by the first change after a publish */

    /* pool.c */
    enum { POOL_UNKNOWN, POOL_JOINING, POOL_IN, POOL_LEAVING, POOL_OUT } pool;
    uint64_t pool_timer;          /* retries a refused join or leave */
};

/* instance.c */
/* Tells the process: the link or the modem changed (its systemd status). */
void instance_health_update(struct instance *inst);

/* events.c: publishing. Every text payload passes publish_text (made
 * valid UTF-8 there). */
int events_topic(const struct instance *inst, const char *suffix, char *buf, size_t size);
int events_publish_text(struct instance *inst, const char *topic, const char *payload, int qos,
                        bool retain, const uint8_t *corr, size_t corr_len, mqtt_link_ack_cb ack,
                        void *ack_ctx);
int events_publish(struct instance *inst, const char *suffix, const char *payload, int qos,
                   bool retain, mqtt_link_ack_cb ack, void *ack_ctx);
/* B/status "state": a reset stays "resetting" through the module's boot
 * and bring-up. */
const char *instance_state(const struct instance *inst);
/* "online": once per broker connection. */
void events_availability(struct instance *inst);
void events_status(struct instance *inst);
/* B/status again even when it did not change (a new connection). */
void events_status_again(struct instance *inst);
void events_info(struct instance *inst);
void events_error(struct instance *inst, const char *code, const char *message);
void events_storage_full(struct instance *inst, const char *why);
/* What could not go out while the broker was away. */
void events_storage_full_retry(struct instance *inst);
void events_sim_locked(struct instance *inst);
void events_call_state(struct instance *inst, const struct call_state *st);
void events_call_ring(struct instance *inst, const char *from);
void events_call_dtmf(struct instance *inst, char key);
void events_audio_state(struct instance *inst, const struct audio_state *st);

/* results.c: consumes data; frees cmd. */
void command_finish(struct command *cmd, cJSON *data, const struct m2m_error *err);
void command_fail(struct command *cmd, const char *code, const char *message);
/* A result stored before a restart (journal blob): published once
 * connected. 0, or -EINVAL when the blob is unreadable. */
int results_replay(struct instance *inst, uint64_t seq, const uint8_t *blob, size_t len);
/* Publishes what waits; again: also what failed before (a new connection). */
void results_flush(struct instance *inst, bool again);
/* An ack of ours came back: the link has room for what it refused. */
void results_link_room(struct instance *inst);
void results_free_all(struct instance *inst);

/* router.c */
/* Runs (or answers) one command, and frees nothing of h. */
void router_dispatch(struct instance *inst, const struct held *h);
/* Subscribes every command topic (a new connection). */
void router_subscribe(struct instance *inst);
bool router_work_left(const struct instance *inst, const struct held *h);

/* hold.c: commands wait for the modem's bring-up */
struct held *hold_new(const char *topic, const void *payload, size_t len,
                      const char *response_topic, const uint8_t *corr, size_t corr_len,
                      uint64_t seq);
void hold_free(struct held *h);
/* Dispatches h now or holds it; takes h. */
void hold_take(struct instance *inst, struct held *h);
/* Dispatches h now; takes h. */
void hold_run(struct instance *inst, struct held *h);
void hold_start(struct instance *inst);       /* arms the settle timer */
void hold_modem_state(struct instance *inst, enum modem_state st);
void hold_free_all(struct instance *inst);

/* pool.c */
void pool_update(struct instance *inst, bool force);

/* session.c */
int session_open(struct instance *inst);      /* creates inst->link and inst->hass */
int session_replay(struct instance *inst);
/* again: HA asked (its birth message), publish every config once more. */
void session_hass_update(struct instance *inst, bool again);

/* cmd_sms.c */
int cmd_sms_open(struct instance *inst);      /* creates inst->sms */
void cmd_sms_send(struct instance *inst, struct command *cmd, struct route_req *req);
bool cmd_sms_left(const struct route_req *req, unsigned started);

/* cmd_call.c */
int cmd_call_open(struct instance *inst);     /* creates inst->call */
void cmd_call_dial(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_call_answer(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_call_hangup(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_call_dtmf(struct instance *inst, struct command *cmd, struct route_req *req);

/* cmd_audio.c */
int cmd_audio_open(struct instance *inst);    /* creates inst->audio */
void cmd_audio_play(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_audio_stop(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_audio_record(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_audio_upload(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_audio_list(struct instance *inst, struct command *cmd, struct route_req *req);
/* The dial of a B/call/dial with "play" was answered OK: its alarm plays
 * once the call is active (at once if it is). */
void cmd_audio_alarm_arm(struct instance *inst, const struct alarm_spec *spec);
/* Every call state: starts the alarm, or cleans up after the call. */
void cmd_audio_call_state(struct instance *inst, const struct call_state *st);
/* The modem's state changed: an alarm's pending hang-up waits for ready. */
void cmd_audio_modem_ready(struct instance *inst, bool ready);
void cmd_audio_close(struct instance *inst);   /* before inst->audio goes */

/* cmd_modem.c */
/* Why no command but modem/power can run now, or NULL. */
const char *instance_not_ready(const struct instance *inst);
void cmd_ussd_send(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_modem_power(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_at_send(struct instance *inst, struct command *cmd, struct route_req *req);

/* cmd_remote.c */
int cmd_remote_open(struct instance *inst);   /* creates inst->cmqtt */
void cmd_remote_close(struct instance *inst);
void cmd_remote_publish(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_remote_subscribe(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_remote_unsubscribe(struct instance *inst, struct command *cmd, struct route_req *req);
/* remote.forward: returns whether a rule matched m's topic. */
bool cmd_remote_forward(struct instance *inst, const struct mqtt_link_msg *m);

/* cmd_ha.c */
void cmd_ha_subscribe(struct instance *inst);   /* the text fields' topics */
/* m is a text field's value: kept; returns whether it was one. */
bool cmd_ha_field(struct instance *inst, const struct mqtt_link_msg *m);
void cmd_ha_sms_send(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_ha_call_dial(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_ha_free(struct instance *inst);

/* cmd_network.c */
void cmd_network_scan(struct instance *inst, struct command *cmd, struct route_req *req);
void cmd_network_select(struct instance *inst, struct command *cmd, struct route_req *req);
/* Outgoing SMS, calls and USSD are refused now (roaming, modem.roaming
 * false); cmd_network_refusal() says why. */
bool cmd_network_refuses(const struct instance *inst);
const char *cmd_network_refusal(void);
/* B/status changed: roaming episodes (B/error once each). */
void cmd_network_status(struct instance *inst);

/* cmd_stats.c */
void cmd_stats_count(struct instance *inst, enum stats_counter c);
void cmd_stats_publish(struct instance *inst);
/* The modem's own counters (timeouts, reopens) may have moved. */
void cmd_stats_modem_changed(struct instance *inst);
void cmd_stats_get(struct instance *inst, struct command *cmd, struct route_req *req);
/* /metrics: its figures now. */
void cmd_stats_sample(const struct instance *inst, struct stats_sample *out);

#endif
