/* The call service's private parts, shared by its files (call.c says what
 * the service does):
 *   call.c        the state machine: the transitions, call_fire() and
 *                 what it announces; the names; the life cycle
 *   call_lines.c  what the module says about calls: the AT+CLCC list
 *                 (asked for while a call is up) and the +CLCC URC,
 *                 RING/+CRING and +CLIP with the ring timers, VOICE CALL:
 *                 BEGIN/END and the outcome lines, each an event for
 *                 call_fire(); +RXDTMF for cbs.dtmf
 *   call_cmd.c    the commands: dial, answer, hangup and DTMF, their
 *                 checks, and what their answers mean for the call */
#ifndef M2M_MODEM_CALL_INT_H
#define M2M_MODEM_CALL_INT_H

#include "modem/call.h"

#include "at/chat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum call_ev {
    EV_DIAL_OK = 0,   /* ATD answered OK */
    EV_DIALING,       /* +CLCC stat 2 */
    EV_ALERTING,      /* +CLCC stat 3 */
    EV_CONNECTED,     /* VOICE CALL: BEGIN, ATA OK, +CLCC stat 0/1 */
    EV_INCOMING,      /* RING/+CLIP, +CLCC stat 4/5 */
    EV_HANGUP,        /* VOICE CALL: END, AT+CHUP OK */
    EV_BUSY,
    EV_NO_ANSWER,
    EV_NO_CARRIER,
    EV_MISSED,        /* MISSED_CALL */
    EV_GONE,          /* AT+CLCC lists no call, or +CLCC stat 6 */
    EV_COUNT
};

struct call {
    struct loop *loop;
    struct modem *modem;
    struct call_opts opts;
    struct call_cbs cbs;
    void *ctx;
    bool ready;
    bool known;                   /* an AT+CLCC answered since ready */
    unsigned n_announced;         /* states given to cbs.state */

    struct call_state st;
    int64_t active_ms;            /* monotonic start of the active phase; -1 */
    int end_duration;             /* from VOICE CALL: END: HHMMSS; -1 */

    bool dial_in_flight;
    bool clcc_in_flight;
    bool ring_announced;          /* B/call/ring went out for this call */
    uint64_t ring_timer;          /* ring_gap_ms after the last RING */
    uint64_t clip_timer;          /* RING seen, +CLIP awaited */
    uint64_t poll_timer;          /* AT+CLCC while a call is up */
    /* Commands in flight hold a pointer to us: defer the free. */
    unsigned busy_reqs;
    bool freed;
};

/* Shared between the files above (each was a static of the one call.c). */

/* call.c: the state machine, and the free once no command holds us. */
void call_stop_timer(struct call *c, uint64_t *id);
void call_announce(struct call *c);
void call_fire(struct call *c, enum call_ev ev, enum call_dir dir, const char *number);
void call_maybe_free(struct call *c);

/* call_lines.c: the list and its poll, ringing, the URCs for call_new. */
void call_end_by_final(struct call *c, enum at_final f);
void call_send_clcc(struct call *c);
void call_arm_poll(struct call *c);
void call_stop_ringing(struct call *c);
extern const struct at_urc call_urcs[];
extern const size_t call_n_urcs;

#endif
