/* The modem's private parts, shared by its files (modem.h says what the
 * modem does):
 *   modem.c          the state and its changes, the chat's transport (its
 *                    writes, clock and timer), the boot URCs, the public
 *                    API, the TE character set
 *   modem_port.c     the port's life cycle: opening (a tcp:// port in
 *                    steps), watching, reading and flushing, the output
 *                    stall, a lost port and the reopen with backoff
 *   modem_bringup.c  the bring-up script and its steps, getting in step
 *                    (PROBING) and running the script to READY, with its
 *                    retries and the recheck of a locked or missing SIM
 *   modem_power.c    B/modem/power: AT+CFUN and AT+CRESET, and the wait
 *                    for the module's boot after a reset */
#ifndef M2M_MODEM_MODEM_INT_H
#define M2M_MODEM_MODEM_INT_H

#include "modem/modem.h"

#include "at/chat.h"
#include "at/port.h"
#include "at/script.h"
#include "core/loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKOFF_MIN_MS 1000
/* A replugged module is found within this (plus its boot). */
#define BACKOFF_MAX_MS 5000

struct modem {
    struct loop *loop;
    uint64_t opens;              /* successful port opens (modem_reopens) */
    struct modem_opts opts;      /* strings borrowed from the caller */
    struct modem_cbs cbs;
    void *ctx;

    struct at_port *port;
    int watch_fd;                /* the port's fd as registered with the loop, or -1 */
    short watch_events;
    struct at_chat *chat;
    enum modem_state state;

    uint64_t chat_timer;
    uint64_t open_timer;         /* a tcp:// port is slow to connect */
    uint64_t stall_timer;        /* output waits and does not move */
    uint64_t hold_timer;         /* the port holds back bytes (device server packets) */
    uint64_t retry_timer;
    uint64_t reset_timer;        /* MODEM_RESETTING: the boot is overdue */
    int backoff_ms;
    bool open_failed_logged;
    bool silent_logged;          /* told the user nothing answers AT, until it does */
    bool quiet;                  /* reopened since: the retries' lines go to debug */
    enum at_chat_sleep sleep;    /* opts.sleep as the open port allows it */
    bool no_dtr_logged;          /* told the user the port has no DTR */

    struct at_script_run *run;   /* the bring-up script */
    size_t init_index;           /* next of opts.init for the init step */
    bool pin_sent;               /* a PIN is sent at most once per boot */
    bool sms_supported;
    size_t cnmi_index;           /* into cnmi_modes[]: the one being tried */
    bool radio_off;              /* AT+CFUN? said 0 or 4 during the bring-up */

    struct modem_info info;
    bool charset_ucs2;           /* TE character set section at the end */
};

/* Shared between the files above (each was a static of the one modem.c). */

/* modem.c: the state, and the one retry timer. */
void modem_set_state(struct modem *m, enum modem_state st);
void modem_cancel_retry(struct modem *m);
void modem_retry_in(struct modem *m, int64_t ms, loop_timer_cb cb);

/* modem_port.c: the port. */
void modem_output_moved(struct modem *m, bool moved);
void modem_close_port(struct modem *m);
void modem_port_lost(struct modem *m, const char *why);
int64_t modem_reopen_fired(void *ctx);

/* modem_bringup.c: getting in step and the bring-up. */
void modem_start_sync(struct modem *m, bool discard, const char *why);
void modem_tr_synced(void *ctx, bool ok);
void modem_bringup_ended(void *ctx, const struct at_script_end *e);

#endif
