/* modem2mqtt-sim: a simulated SIMCom A7670 on a pseudo-terminal.
 *
 * One process, one thread, one struct sim: a poll() loop over stdin (the
 * control protocol of README.md), the pty master and a few timers.
 *
 *   sim.c        main, options, the loop, timers, the control protocol
 *   sim_pty.c    the pty, the --link symlink, bounded output towards the host
 *   sim_modem.c  the AT engine: echo, lines, the "> " data mode, dispatch
 *                through static const command tables; boot, SIM card,
 *                registration, identity commands
 *   sim_sms.c    the SIM's SMS store, AT+CMG* and the SMS control commands
 *   sim_network.c AT+COPS: the operators in reach, the search, the choice
 *   sim_audio.c  the C:/ file system, audio playback and recording
 *   sim_util.c   hex, parameter lists, numbers, the clock
 *
 * A feature (calls, USSD, CMQTT...) is one more sim_<feature>.c with its own
 * `static const` AT and control tables, listed in sim_modem.c / sim.c, its
 * state one more member of struct sim, and its timers more enum sim_timer
 * entries. */
#ifndef M2M_SIM_H
#define M2M_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem/pdu.h"

#define SIM_LINE_MAX 3072          /* A7670 line buffer: 3071 chars + NUL */
#define SIM_IN_MAX 4096            /* host bytes read but not yet processed */
#define SIM_OUT_MAX (64 * 1024)    /* bytes for the host not yet written */
#define SIM_DATA_MAX (16 * 1024)   /* bytes after a "> " prompt */
#define SIM_CTL_MAX (64 * 1024)    /* one control line */
#define SIM_REJECT_MAX 16
#define SIM_PARAMS_MAX 16
#define SIM_PARAM_LEN 256
#define SIM_PDP_MAX 15
#define SIM_SMS_PARTS_MAX 16       /* parts of one `sms` control message */
#define SIM_REPORTS_MAX 32         /* status reports in flight */

/* ---- options ---- */

struct sim_opts {
    const char *link;          /* NULL: no symlink */
    size_t capacity;           /* SMS slots */
    bool no_sms;
    const char *pin;           /* NULL: the SIM is not locked */
    const char *imei;          /* --imei: 15 digits (two modems in one bridge) */
    int boot_ms;               /* power on -> *ATREADY */
    int sim_init_ms;           /* *ATREADY (or the PIN) -> +CPIN: READY */
    int cmgs_ms;               /* AT+CMGS data -> +CMGS result */
    int report_ms;             /* +CMGS -> +CDS status report */
    const char *reject[SIM_REJECT_MAX];
    size_t n_reject;
    bool quiet;
    bool reset_unplug;         /* AT+CRESET closes the pty and opens a new one */
};

/* ---- timers (monotonic ms; one slot per purpose) ---- */

enum sim_timer {
    SIM_TIMER_BOOT = 0,   /* boot delay over: *ATREADY */
    SIM_TIMER_CARD,       /* SIM initialised: +CPIN: READY / SIM PIN */
    SIM_TIMER_HANG,       /* `hang <ms>` over */
    SIM_TIMER_BUSY,       /* a deferred final result (AT+CMGS with --cmgs-ms) */
    SIM_TIMER_REPORT,     /* the next +CDS status report is due */
    SIM_TIMER_RING,       /* the next RING (+CLIP) of an incoming call */
    SIM_TIMER_CALL,       /* the next step of a dialled call, or a URC after OK */
    SIM_TIMER_USSD,       /* the +CUSD answer, just after the OK of AT+CUSD */
    SIM_TIMER_POWER,      /* after AT+CFUN's OK: +CREG URCs; after AT+CRESET's: reboot */
    SIM_TIMER_SLEEP,      /* AT+CSCLK=2: no input for 5 s, the module sleeps */
    SIM_TIMER_AUDIO,      /* a playback starts or ends, a stop's URC after its OK */
    SIM_TIMER_COUNT
};

struct sim;
typedef void (*sim_timer_fn)(struct sim *s);

struct sim_timer_slot {
    int64_t due;          /* monotonic ms */
    sim_timer_fn fn;      /* NULL: not armed */
};

/* ---- AT commands ---- */

enum sim_final { SIM_OK = 0, SIM_ERROR, SIM_CME, SIM_CMS, SIM_NO_FINAL };

/* What a handler answers. SIM_NO_FINAL: the handler opened the data mode
 * (prompt) or deferred its result; the final result comes later. */
struct sim_result {
    enum sim_final final;
    int code;             /* SIM_CME / SIM_CMS */
};

#define SIM_RES_OK ((struct sim_result){SIM_OK, 0})
#define SIM_RES_ERROR ((struct sim_result){SIM_ERROR, 0})
#define SIM_RES_PENDING ((struct sim_result){SIM_NO_FINAL, 0})
#define SIM_RES_CME(n) ((struct sim_result){SIM_CME, (n)})
#define SIM_RES_CMS(n) ((struct sim_result){SIM_CMS, (n)})

enum sim_at_kind {
    SIM_AT_EXEC = 0,      /* AT+X (basic commands: always, arg is the rest) */
    SIM_AT_QUERY,         /* AT+X? */
    SIM_AT_TEST,          /* AT+X=? */
    SIM_AT_SET,           /* AT+X=<arg> */
};

struct sim_at {
    const char *line;     /* the whole command line, NUL-terminated */
    enum sim_at_kind kind;
    const char *arg;      /* SET: after '='; basic: after the name; else "" */
};

enum sim_cmd_flags {
    SIM_F_CARD = 1 << 0,  /* needs a ready SIM: +CME ERROR 14 busy / 11 PIN */
    SIM_F_SMS = 1 << 1,   /* SMS: ERROR with --no-sms, +CMS ERROR 314/311 */
};

struct sim_cmd {
    const char *name;     /* after "AT", e.g. "+CMGS" or "E"; case-insensitive */
    bool basic;           /* V.250 basic syntax: the argument follows directly */
    unsigned flags;       /* enum sim_cmd_flags */
    struct sim_result (*fn)(struct sim *s, const struct sim_at *at);
};

/* Called when a data block after a "> " prompt is complete. cancelled: the
 * host sent ESC (only in Ctrl-Z mode). overflow: more than SIM_DATA_MAX bytes
 * came (the excess was dropped). Returns the final result like a handler. */
typedef struct sim_result (*sim_data_fn)(struct sim *s, const uint8_t *data, size_t len,
                                         bool cancelled, bool overflow);

/* ---- control commands ---- */

struct sim_ctl {
    const char *name;
    /* args: the rest of the line after the name and its spaces (writable,
     * NUL-terminated). Replies with sim_ctl_ok() or sim_ctl_error(); a
     * handler that does neither gets a plain "ok". */
    void (*fn)(struct sim *s, char *args);
};

/* ---- state ---- */

enum sim_phase { SIM_UNPLUGGED = 0, SIM_BOOTING, SIM_READY };
enum sim_card { SIM_CARD_INIT = 0, SIM_CARD_LOCKED, SIM_CARD_READY };

struct sim_sms_slot {
    bool used;
    uint8_t stat;                /* 0 unread, 1 read, 2 unsent, 3 sent */
    size_t tpdu_len;
    char hex[PDU_HEX_MAX];
};

struct sim_report {
    bool used;
    int64_t due;
    uint8_t mr;
    char addr[PDU_ADDR_MAX];
};

struct sim_sms {
    struct sim_sms_slot *slots;  /* opt.capacity of them; index i+1 */
    uint8_t next_mr;
    int cms_next;                /* `cms <code>`: 0 none */
    int report_status;           /* TP-ST of automatic status reports */
    int csms;                    /* AT+CSMS <service> */
    bool text_mode;              /* AT+CMGF=1 */
    int cnmi[5];                 /* mode, mt, bm, ds, bfr */
    char mem[3][3];              /* AT+CPMS <mem1..3>: "SM" or "ME" */
    int csmp[4];
    char cscs[8];
    struct sim_report reports[SIM_REPORTS_MAX];
    /* AT+CMGS=<len> / AT+CMGW=<len>[,<stat>] waiting for the data */
    size_t announced;
    uint8_t write_stat;
    /* the accepted AT+CMGS, until its +CMGS result (--cmgs-ms) */
    uint8_t pending_mr;
    bool pending_report;
    char pending_addr[PDU_ADDR_MAX];
    char pending_pdu[PDU_HEX_MAX];
};

struct sim_pdp {
    bool used;
    char type[16];
    char apn[SIM_PARAM_LEN];
};

enum sim_call_state {
    SIM_CALL_IDLE = 0,
    SIM_CALL_DIALING,            /* ATD accepted (+CLCC stat 2) */
    SIM_CALL_ALERTING,           /* the far end rings (stat 3) */
    SIM_CALL_INCOMING,           /* `ring`: RING/+CLIP repeat (stat 4) */
    SIM_CALL_ACTIVE,             /* stat 0 */
};

enum sim_dial_outcome {
    SIM_DIAL_ANSWER = 0, SIM_DIAL_BUSY, SIM_DIAL_NO_ANSWER, SIM_DIAL_NO_CARRIER, SIM_DIAL_ERROR,
};

struct sim_call {
    enum sim_call_state state;
    bool outgoing;
    char number[64];             /* "" withheld */
    int64_t active_at;           /* monotonic ms the call became active */
    bool clcc_urc;               /* AT+CLCC=1 */
    enum sim_dial_outcome outcome;  /* of the next ATD (`dial-outcome`) */
    int ring_ms;                 /* RING period (`ring-ms`, default 6000) */
    int answer_ms;               /* ATD -> outcome (`answer-ms`, default 200) */
    char after_ok[128];          /* URC written just after the OK */
};

#define SIM_FS_FILES 32
#define SIM_FS_NAME_MAX 80
#define SIM_FS_CHUNK_MAX 10240     /* AT+CFTRANRX <len> */

struct sim_file {
    bool used;
    char name[SIM_FS_NAME_MAX];  /* "c:/..." as first written */
    uint8_t *data;
    size_t len;
};

enum sim_audio_state { SIM_AUDIO_IDLE = 0, SIM_AUDIO_PLAYING, SIM_AUDIO_RECORDING };

struct sim_audio {
    struct sim_file files[SIM_FS_FILES];
    enum sim_audio_state state;
    char file[SIM_FS_NAME_MAX];  /* what plays or records */
    bool wav;                    /* playing through AT+CCMXPLAYWAV */
    bool to_call;                /* playing into the call */
    int repeat;                  /* repetitions after the first */
    int play_ms;                 /* one repetition (`play-ms`, default 3000) */
    bool play_ms_set;            /* by `play-ms` (0 too) */
    int64_t rec_since;
    char rx_name[SIM_FS_NAME_MAX]; /* AT+CFTRANRX waiting for its bytes */
    size_t rx_offset;
};

#define SIM_USSD_TEXT_MAX 512

struct sim_ussd {
    /* `ussd-reply` for the next AT+CUSD=1 (one-shot); else a default */
    bool armed;
    bool silent;                 /* `ussd-silent`: no +CUSD at all */
    int m;                       /* -1: the URC has no string */
    int dcs;
    char text[SIM_USSD_TEXT_MAX]; /* UTF-8 as given */
    char pending[2 * SIM_USSD_TEXT_MAX + 64]; /* the URC after the OK */
};

/* AT+COPS (sim_network.c) */
struct sim_network {
    int scan_ms;                 /* AT+COPS=? search time (`scan-ms`, default 3000) */
    int current;                 /* the operator registered on (its index) */
    bool manual;                 /* AT+COPS=1 chose it */
};

struct sim {
    struct sim_opts opt;
    enum sim_phase phase;
    uint64_t rng;

    /* pty (sim_pty.c) */
    int master, slave;           /* -1 when unplugged */
    char pty_path[128];
    uint8_t out[SIM_OUT_MAX];
    size_t out_len;
    uint64_t out_dropped;

    struct sim_timer_slot timers[SIM_TIMER_COUNT];

    /* AT engine (sim_modem.c) */
    uint8_t in[SIM_IN_MAX];      /* read from the host, not yet processed */
    size_t in_len, in_pos;
    bool hung;                   /* `hang`: host input is read and dropped */
    bool stalled;                /* `hang <ms> late`: host input waits unread */
    bool echo, verbose;          /* ATE, ATV */
    int cmee;
    bool resp_open;              /* an information response has started */
    char line[SIM_LINE_MAX];
    size_t line_len;
    bool line_overflow;
    bool last_cr;
    struct {
        bool active;
        size_t want;             /* 0: until Ctrl-Z / ESC, else a byte count */
        sim_data_fn done;
        uint8_t buf[SIM_DATA_MAX];
        size_t len;
        bool overflow;
    } data;

    /* module state */
    enum sim_card card;
    bool pin_ok;                 /* the PIN was given since boot */
    int reg_stat;                /* network side: `creg <stat>` */
    int creg_n, cereg_n;
    int csq;
    int cbc_mv;                  /* AT+CBC's supply voltage; 0: no AT+CBC (ERROR) */
    char operator_name[33];      /* AT+COPS? (`operator <hex>`: any bytes) */
    bool clip;
    struct sim_pdp pdp[SIM_PDP_MAX];

    struct sim_sms sms;
    struct sim_cmqtt *cmqtt;     /* sim_cmqtt.c (paho client, event queue) */
    struct sim_call call;
    struct sim_ussd ussd;
    struct sim_network net;
    struct sim_audio audio;
    bool radio_off;              /* AT+CFUN=0: not registered, no signal */
    int csclk;                   /* AT+CSCLK: 0 awake, 1 DTR (none on a pty), 2 UART idle */
    bool asleep;                 /* AT+CSCLK=2 and idle: the next byte is lost */
    int wake_late_ms;            /* `wake-late-ms`: 0, or the byte that wakes it is kept */
    bool wake_late;              /* woken so: a lone AT now is answered late */
    /* `urc-in`: a URC written inside the answer of the next command that
     * starts with the prefix (after its echo, before its first line);
     * "" when none is armed */
    char urc_in_prefix[32];
    char urc_in_text[256];

    /* control (sim.c) */
    char ctl[SIM_CTL_MAX];
    size_t ctl_len;
    bool ctl_overflow;
    bool ctl_replied;
    bool quit;
};

/* ---- sim.c ---- */

void sim_log(const struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line on stdout (an event or a control reply). */
void sim_event(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_ctl_ok(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_ctl_error(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_ctl_done(struct sim *s); /* a plain "ok" */
void sim_timer_set(struct sim *s, enum sim_timer t, int64_t ms, sim_timer_fn fn);
void sim_timer_stop(struct sim *s, enum sim_timer t);
bool sim_timer_armed(const struct sim *s, enum sim_timer t);
/* Runs the timers that are due (also right after a final result, so that a
 * zero delay means "just after the OK"). */
void sim_timers_run(struct sim *s);
uint32_t sim_random(struct sim *s);

/* ---- sim_pty.c ---- */

/* New pty, raw, --link updated, `pty <path>` event. 0 or -errno. */
int sim_pty_open(struct sim *s);
/* Closes master and slave (the host's next read gets EOF/EIO) and removes
 * --link if it still points at this pty. */
void sim_pty_close(struct sim *s);
/* Queues bytes for the host (bounded: drops with a warning when full). */
void sim_write(struct sim *s, const void *buf, size_t len);
void sim_writes(struct sim *s, const char *str);
/* Writes what the host will take now. */
void sim_pty_flush(struct sim *s);
/* The master is readable: reads into s->in (when it is empty). */
void sim_pty_read(struct sim *s);

/* ---- sim_modem.c ---- */

/* Power on (again): forgets the session, echo on, boot URCs after boot_ms. */
void sim_modem_boot(struct sim *s);
/* The host is gone (unplug): forget the session, stop the module timers. */
void sim_modem_stop(struct sim *s);
/* Processes s->in as far as possible. */
void sim_modem_pump(struct sim *s);
/* Whether the engine would take more host bytes now. */
bool sim_modem_wants_input(const struct sim *s);
/* `hang`: drop the command in progress; input ignored until unhang. */
void sim_modem_hang(struct sim *s, bool on, bool late);

/* Output for handlers (ATV1 / ATV0 framing). */
void sim_info(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_urc(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_final(struct sim *s, struct sim_result res);
/* Writes "\r\n> " and collects the data block (want 0: until Ctrl-Z/ESC). */
struct sim_result sim_prompt(struct sim *s, size_t want, sim_data_fn done);
/* The final result comes from fn after ms; host input waits until then. */
struct sim_result sim_defer(struct sim *s, int64_t ms, sim_timer_fn fn);
/* The registration state the host sees (0 until the SIM is ready). */
int sim_reg_stat(const struct sim *s);
bool sim_registered(const struct sim *s);
/* `urc-in`: writes the armed URC if line starts with its prefix. */
void sim_modem_urc_in(struct sim *s, const char *line);
/* `creg <stat>`: sets it and sends +CREG/+CEREG when enabled. */
void sim_modem_set_reg(struct sim *s, int stat);

/* AT+X=<n> (0..max) / AT+X? (`<name>: <n><query_suffix>`) / AT+X=? for a
 * small integer setting. */
struct sim_result sim_int_setting(struct sim *s, const struct sim_at *at, const char *name,
                                  int *value, long max, const char *query_suffix);

extern const struct sim_cmd sim_modem_cmds[];

/* ---- sim_sms.c ---- */

int sim_sms_init(struct sim *s);
void sim_sms_free(struct sim *s);
/* Boot: AT+CMGF/CNMI/CPMS/CSMP back to defaults, reports in flight lost. */
void sim_sms_reset(struct sim *s);

extern const struct sim_cmd sim_sms_cmds[];
extern const struct sim_ctl sim_sms_ctls[];

/* ---- sim_cmqtt.c ---- */

int sim_cmqtt_init(struct sim *s);
void sim_cmqtt_free(struct sim *s);
/* Boot / unplug: the MQTT session is gone (the broker sees the client drop). */
void sim_cmqtt_reset(struct sim *s);
/* The fd the loop polls for paho's events (-1 before init). */
int sim_cmqtt_fd(const struct sim *s);
/* Turns queued paho events into output when the host may take it. */
void sim_cmqtt_pump(struct sim *s);

extern const struct sim_cmd sim_cmqtt_cmds[];
extern const struct sim_ctl sim_cmqtt_ctls[];

/* ---- sim_call.c ---- */

/* Boot: the call drops, AT+CLCC=1 off; the control settings stay. */
void sim_call_reset(struct sim *s);

extern const struct sim_cmd sim_call_cmds[];
extern const struct sim_ctl sim_call_ctls[];

/* ---- sim_ussd.c ---- */

/* Boot: a pending answer is lost; the `ussd-reply` setting stays. */
void sim_ussd_reset(struct sim *s);

extern const struct sim_cmd sim_ussd_cmds[];
extern const struct sim_ctl sim_ussd_ctls[];

/* ---- sim_network.c ---- */

/* Boot: back to automatic selection; the `scan-ms` setting stays. */
void sim_network_reset(struct sim *s);

extern const struct sim_cmd sim_network_cmds[];
extern const struct sim_ctl sim_network_ctls[];
/* ---- sim_audio.c ---- */

/* Boot: playback and recording are over; the files stay (flash). */
void sim_audio_reset(struct sim *s);
void sim_audio_free(struct sim *s);
/* The call ended: a playback into it stops. */
void sim_audio_call_ended(struct sim *s);

extern const struct sim_cmd sim_audio_cmds[];
extern const struct sim_ctl sim_audio_ctls[];

/* ---- sim_power.c ---- */

/* AT+CFUN (radio on/off with registration URCs) and AT+CRESET. */
extern const struct sim_cmd sim_power_cmds[];
/* Sends the +CREG/+CEREG URCs the host enabled for the current state. */
void sim_modem_reg_urcs(struct sim *s);
/* A byte from the host: true when it only woke the module (AT+CSCLK=2,
 * asleep) and is lost. Restarts the idle clock. */
bool sim_power_byte_lost(struct sim *s, uint8_t c);
/* A command line: true when it is the lone AT that woke the module with
 * `wake-late-ms` set (its OK then comes that much later). */
bool sim_power_wake_line(struct sim *s, const char *line);
extern const struct sim_ctl sim_power_ctls[];

/* ---- sim_util.c ---- */

struct sim_params {
    size_t n;
    char v[SIM_PARAMS_MAX][SIM_PARAM_LEN];
    bool quoted[SIM_PARAMS_MAX];
};

/* `1,"a,b", 3` -> 3 values; empty values count ("2,,0" has 3). 0 or
 * -EINVAL (unterminated quote, too many, too long). */
int sim_params_parse(const char *arg, struct sim_params *p);
/* Value i as an unquoted integer in [min, max]; false if absent/invalid. */
bool sim_param_int(const struct sim_params *p, size_t i, long min, long max, long *out);
/* A whole string as a decimal integer in [min, max]. */
bool sim_parse_long(const char *str, long min, long max, long *out);
/* Octets written, or -1 (odd length, not hex, more than cap). */
long sim_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap);
/* Upper-case; out holds 2*len+1. */
void sim_hex_encode(const uint8_t *in, size_t len, char *out);
bool sim_prefix_ci(const char *str, const char *prefix);
int64_t sim_now_ms(void);
/* UTF-8 -> UCS-2 big-endian hex (surrogate pairs beyond the BMP), as the
 * A7670 shows a string in AT+CSCS="UCS2" or with dcs 72. false on invalid
 * UTF-8 or no room. */
bool sim_ucs2_hex(const char *utf8, char *out, size_t size);
/* AT+CSCS is "UCS2": string parameters go out as UCS-2 hex. */
bool sim_cscs_ucs2(const struct sim *s);
/* A string parameter in the TE character set: utf8 itself, or (UCS2) its
 * hex in buf. */
const char *sim_te_str(const struct sim *s, const char *utf8, char *buf, size_t size);

#endif
