/* The modem: owns the port and the AT chat, brings the module up with a
 * data-driven script, and recovers from a vanished or hung module.
 *
 *   CLOSED --open ok--> PROBING --in step--> BRINGUP --script done--> READY
 *      ^                   |                  |  (SIM locked: SIM_LOCKED,
 *      |                   |                  |   no SIM: NO_SIM; both
 *      |                   |                  |   look again every 30 s)
 *      +---- EOF/EIO, the chat cannot get in step (backoff up to 5 s) ---+
 *
 * PROBING is the chat's resynchronisation (at/chat.h): stale output is
 * discarded and an echoed marker proves that the next answer is ours. Any
 * later doubt (a timeout, an answer that does not fit) resynchronises
 * again while commands wait; when that fails the port is reopened.
 * Nothing is concluded from an answer that does not fit its command.
 *
 * Services (sms, status) use the chat while READY and are told about every
 * state change through the callbacks. */
#ifndef M2M_MODEM_MODEM_H
#define M2M_MODEM_MODEM_H

#include <stdbool.h>
#include <stddef.h>

#include "at/chat.h"

struct at_script;

struct loop;

enum modem_state {
    MODEM_CLOSED = 0,  /* no port (not found, vanished); reopening with backoff */
    MODEM_PROBING,     /* port open, getting in step with the module */
    MODEM_BRINGUP,     /* running the bring-up script */
    MODEM_READY,
    MODEM_SIM_LOCKED,  /* SIM PIN/PUK needed and no (usable) PIN configured */
    MODEM_NO_SIM,
    MODEM_LOW_POWER,   /* AT+CFUN=0 accepted: answers AT, no radio */
    MODEM_RESETTING,   /* AT+CRESET accepted: waiting for the module's boot */
};

const char *modem_state_name(enum modem_state st);

/* B/info: what the bring-up read from the module ("" when unknown). */
struct modem_info {
    char manufacturer[64];
    char model[64];
    char revision[64];
    char imei[32];
    char imsi[32];
    char iccid[32];
    char number[32];
};

struct modem_opts {
    const char *port;            /* device, pty, tcp://..., or "auto" */
    int baud;
    const char *pin;             /* NULL: none. Sent at most once per boot. */
    const char *apn;             /* NULL: leave the module's PDP context */
    char *const *init;           /* extra commands after bring-up */
    size_t n_init;
    int command_timeout_ms;
    /* modem.sleep: AT+CSCLK at bring-up, and how the chat wakes the
     * module (at/chat.h). AT_SLEEP_DTR on a port without DTR (a pty)
     * behaves as AT_SLEEP_OFF, said once. */
    enum at_chat_sleep sleep;
    /* A serial device server's registry and heartbeat packets, taken out
     * of the stream (at_port_strip_packet): text or "hex:..."; NULL: none. */
    const char *device_packets[2];
};

struct modem_cbs {
    void (*state_changed)(void *ctx, enum modem_state st);
    void (*info_changed)(void *ctx, const struct modem_info *info);
};

struct modem *modem_new(struct loop *loop, const struct modem_opts *opts,
                        const struct modem_cbs *cbs, void *ctx);
void modem_free(struct modem *m);

/* Opens the port (retrying with backoff when it is not there). */
int modem_start(struct modem *m);

enum modem_state modem_state(const struct modem *m);
/* Times the port was opened again after the first (lost, hung module). */
uint64_t modem_reopens(const struct modem *m);
/* A port that does not answer was reported once and reopened: until the
 * module answers, the retries' lines (states, reopens) belong in the debug
 * log. */
bool modem_quiet(const struct modem *m);

/* The chat, borrowed; valid for the modem's lifetime (it survives port
 * reopens). Services register their URC tables on it once. */
struct at_chat *modem_chat(struct modem *m);

/* Whether the module accepted AT+CMGF=0 during bring-up. */
bool modem_sms_supported(const struct modem *m);

/* The bring-up script (at/script.h), for a unit test that checks the
 * labels of every script. */
const struct at_script *modem_bringup_script(void);

/* Services send through here rather than at_chat_send(): -EAGAIN unless
 * READY, else as at_chat_send(). A timeout makes the chat resynchronise;
 * a module that does not answer that is reopened and brought up again. */
int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts,
               at_done_cb cb, void *ctx);

/* B/modem/power (power handling: modem_power.c, next to the state it
 * changes).
 *   FULL:  AT+CFUN=1; its OK turns LOW_POWER into READY.
 *   MIN:   AT+CFUN=0; its OK turns READY into LOW_POWER (services stop).
 *   RESET: AT+CRESET; its OK turns the state into RESETTING. The module's
 *          boot URCs (or its port vanishing and coming back, as on USB)
 *          then start the resync and the bring-up again; without either
 *          within MODEM_RESET_WAIT_MS the modem resyncs anyway (port open)
 *          or goes CLOSED (port gone, reopening continues).
 * cb gets the module's answer to the command itself. -EAGAIN unless READY
 * or LOW_POWER (nothing is written), else as at_chat_send(). */
enum modem_power_mode { MODEM_POWER_FULL = 0, MODEM_POWER_MIN, MODEM_POWER_RESET };
#define MODEM_RESET_WAIT_MS 60000
int modem_power(struct modem *m, enum modem_power_mode mode, at_done_cb cb, void *ctx);

/* --- TE character set --- */

/* Whether the module's TE character set (AT+CSCS) is UCS2: set when it
 * accepted AT+CSCS="UCS2" (the USSD service, for a reply in hex), cleared
 * when it accepted AT+CSCS="IRA". While set, the module prints string
 * parameters (+COPS operator, +CLIP/+CLCC numbers, +CUSD text) as UCS-2
 * hex; readers decode them with utf8_from_ucs2_hex(). */
void modem_set_charset_ucs2(struct modem *m, bool on);
bool modem_charset_ucs2(const struct modem *m);

#endif
