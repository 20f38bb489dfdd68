/* Voice call service: dialling (ATD<number>;), answering (ATA), hanging up
 * (AT+CHUP), DTMF (AT+VTS), and one call state machine driven by the
 * module's URCs (RING, +CLIP, VOICE CALL: BEGIN/END, NO CARRIER, BUSY,
 * NO ANSWER, MISSED_CALL, +CLCC) and checked against AT+CLCC where the URCs
 * leave it open (a missed call that just stops ringing; an outcome line
 * swallowed as the final result of someone else's command; a bridge
 * restart in the middle of a call).
 *
 *   idle --ATD OK--> dialing --(+CLCC 3)--> alerting --BEGIN--> active
 *   idle --RING/+CLIP--> ringing --ATA/BEGIN--> active
 *   any --END/NO CARRIER/BUSY/NO ANSWER/missed/CLCC empty--> idle
 *
 * The service knows nothing of MQTT: every state change goes out through
 * cbs.state, an incoming call once through cbs.ring, a key the far end
 * pressed (+RXDTMF) through cbs.dtmf. */
#ifndef M2M_MODEM_CALL_H
#define M2M_MODEM_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "modem/error.h"

struct loop;
struct modem;

#define CALL_NUMBER_MAX 40        /* what ATD takes here; +CLIP numbers are cut */

enum call_st { CALL_IDLE = 0, CALL_DIALING, CALL_ALERTING, CALL_RINGING, CALL_ACTIVE };
enum call_dir { CALL_DIR_NONE = 0, CALL_DIR_IN, CALL_DIR_OUT };
enum call_end { CALL_END_NONE = 0, CALL_END_HANGUP, CALL_END_BUSY, CALL_END_NO_ANSWER,
                CALL_END_NO_CARRIER };

/* "idle", "dialing", ...; "in"/"out"/NULL; "hangup", ... /NULL. */
const char *call_st_name(enum call_st st);
const char *call_dir_name(enum call_dir d);
const char *call_end_name(enum call_end e);

struct call_state {
    enum call_st state;
    enum call_dir dir;            /* the current call's, or the one that ended */
    char number[CALL_NUMBER_MAX]; /* "" when unknown or withheld */
    time_t since;                 /* wall clock of this state's start */
    enum call_end ended;          /* idle after a call: how it ended */
    int duration;                 /* idle after a call: seconds active; else -1 */
    bool playing;                 /* an audio file plays into the call (call_set_playing) */
    unsigned seq;                 /* which call: one more for every call that begins */
};

struct call_opts {
    char *const *allow_to;        /* calls.allow_to (config_number_allowed) */
    size_t n_allow_to;
    int ring_gap_ms;              /* no RING for this long: ask AT+CLCC; 0: 8000 */
    int poll_ms;                  /* AT+CLCC while a call is up; 0: 5000 */
    int clip_wait_ms;             /* RING without +CLIP: ring event after; 0: 1000 */
};

struct call_cbs {
    /* Every change, and the first state known after modem ready. Borrowed. */
    void (*state)(void *ctx, const struct call_state *st);
    /* Once per incoming call; from NULL when withheld or not given. */
    void (*ring)(void *ctx, const char *from);
    /* A key the far end pressed during an active call: 0-9 * # A-D. */
    void (*dtmf)(void *ctx, char key);
};

struct call *call_new(struct loop *loop, struct modem *modem, const struct call_opts *opts,
                      const struct call_cbs *cbs, void *ctx);
void call_free(struct call *c);

/* At ready: AT+CLCC=1 (optional) and AT+CLCC, which recovers a call that
 * was up when the bridge (re)started. Not ready: in-flight checks are
 * forgotten; the state stays until the next ready's AT+CLCC. */
void call_modem_ready(struct call *c, bool ready);

/* The current state; NULL until the first AT+CLCC after modem ready told
 * it (so a restart does not publish "idle" over a call that is up). */
const struct call_state *call_get_state(const struct call *c);

/* err NULL: done. Rejections (invalid_number, not_allowed, busy, no_call,
 * unavailable) are reported before the function returns, with nothing
 * written to the modem. */
typedef void (*call_done_cb)(void *ctx, const struct m2m_error *err);
/* The dial is handed to the modem: from here a call may begin (a
 * crash-safe caller records that). */
typedef void (*call_written_cb)(void *ctx);

/* to: validated here (call_number_valid, then calls.allow_to, where a
 * service code, a to with '*' or '#', needs its own exact entry). The
 * result comes when the module accepted the dial (OK) or refused it.
 * written (may be NULL) is called with ctx when the ATD is written. */
void call_dial(struct call *c, const char *to, call_written_cb written, call_done_cb cb,
               void *ctx);
void call_answer(struct call *c, call_done_cb cb, void *ctx);
void call_hangup(struct call *c, call_done_cb cb, void *ctx);
/* Hangs up the call numbered seq (call_state.seq) only: checked again just
 * before AT+CHUP is written (it may wait behind a long command while that
 * call ends and another rings), and dropped unwritten ("no_call") when
 * that call is no longer up. */
void call_hangup_seq(struct call *c, unsigned seq, call_done_cb cb, void *ctx);
/* An audio file plays into the call (true) or stopped (false): the call's
 * state says so (cbs.state) while the call is up; its end clears it. */
void call_set_playing(struct call *c, bool playing);
/* digits: 1-32 of 0-9 * # A-D (also checked by json_parse_dtmf). */
void call_dtmf(struct call *c, const char *digits, call_done_cb cb, void *ctx);

/* +RXDTMF: <key>, a key the far end pressed: *key is exactly one of
 * 0-9 * # A-D, or -EINVAL (another prefix, another key, more than one, a
 * quoted one, more fields) and *key is left alone. Pure. */
int call_parse_rxdtmf(const char *line, char *key);

/* What may follow ATD: an optional leading '+', then 1-32 of 0-9 * #.
 * Nothing else (';' would end the dial string, a quote or letter is not a
 * number). Pure. */
bool call_number_valid(const char *s);

#endif
