/* Status service: signal (AT+CSQ), registration (+CREG/+CEREG, also as
 * URCs), operator (AT+COPS?), access technology (AT+CPSI?), the supply
 * voltage (AT+CBC) and the SIM's SMS store (AT+CPMS?), refreshed every status_interval and on
 * registration URCs; the store also when the SMS service changed it. The
 * parsers are pure and exported for the unit tests.
 *
 * A full store: one "full" episode starts when AT+CPMS? counts used >=
 * total or the module says so (its SMS FULL URC, or a +CMS ERROR: 322),
 * and ends when the counts say used < total again. The owner hears of each
 * episode once, when it starts. */
#ifndef M2M_MODEM_STATUS_H
#define M2M_MODEM_STATUS_H

#include <stdbool.h>
#include <stddef.h>

struct at_script;
struct loop;
struct modem;

/* The serving cell, from the +CREG/+CEREG answers in mode 2: location
 * (LAC, or TAC for LTE) and cell id as the module prints them, hex. */
struct status_cell {
    char lac[9];             /* "" unknown */
    char ci[9];
};

struct status_info {
    int csq;                 /* 0-31, 99 unknown, -1 never read */
    int reg_stat;            /* 27.007 stat 0-5, -1 unknown */
    char operator_name[64];
    char access[16];         /* "LTE", "GSM", "" */
    int storage_used;        /* SMS in the store, -1 unknown */
    int storage_total;       /* its capacity, -1 unknown */
    int voltage_mv;          /* the module's supply voltage, -1 unknown */
    struct status_cell cell; /* of the registration reg_stat comes from */
};

/* "+CSQ: 14,99" -> 14. 0 or -EINVAL. */
int status_parse_csq(const char *line, int *csq);
/* "+CREG: 2,1,..." (response, with n) or "+CREG: 1,..." (URC, without n);
 * the same for +CEREG. 0 or -EINVAL. */
int status_parse_reg(const char *line, bool is_urc, int *stat);
/* The location in the same lines: "+CREG: 2,1,\"1A2B\",\"01C2D3E4\",7" ->
 * lac "1A2B", ci "01C2D3E4" (each 1-8 hex digits, quoted; what follows
 * is not read). -ENOENT for a line without one ("+CREG: 2,1"), -EINVAL
 * for a malformed one; cell untouched then. */
int status_parse_cell(const char *line, bool is_urc, struct status_cell *cell);
/* "+COPS: 0,0,\"Operator\",7" -> "Operator" (empty when not registered).
 * -EINVAL (name untouched) for an unquoted name or one of size bytes or
 * more. */
int status_parse_cops(const char *line, char *name, size_t size);
/* "+CPSI: LTE,Online,..." -> "LTE"; "NO SERVICE" -> "". */
int status_parse_cpsi(const char *line, char *access, size_t size);
/* The answer to AT+CPMS?: "+CPMS: \"SM\",3,30,\"SM\",3,30,\"SM\",3,30" ->
 * used 3, total 30 (the first store: the one the bridge reads and deletes
 * in). The memory name quoted (letters and '_'), 0 <= used <= total,
 * 1 <= total <= 65535; else -EINVAL and nothing set. */
int status_parse_cpms(const char *line, int *used, int *total);
/* The answer to AT+CBC in millivolts: the A76xx's "+CBC: 3.978V" (volts,
 * up to three decimals) or 27.007's "+CBC: <bcs>,<bcl>,<mV>" (SIM800's
 * "+CBC: 0,88,4090"). At most STATUS_CBC_MV_MAX; else -EINVAL and *mv
 * untouched. */
#define STATUS_CBC_MV_MAX 20000
int status_parse_cbc(const char *line, int *mv);
/* The episode logic: full is what was just observed (counts at or over the
 * capacity, or the module saying so). Updates *episode; true when this
 * observation starts an episode. */
bool status_full_episode(bool *episode, bool full);

const char *status_reg_name(int stat);   /* "home", "roaming", ... */
int status_csq_dbm(int csq);             /* -113 + 2*csq; INT_MIN for 99/unknown */
int status_csq_percent(int csq);         /* 0-100; -1 for 99/unknown */

struct status_cbs {
    /* Something changed; read it with status_get(). */
    void (*changed)(void *ctx, const struct status_info *info);
    /* The periodic poll fired (every interval while ready; may be NULL).
     * Other periodic work rides on it, so an idle bridge wakes once an
     * interval and not once per service. */
    void (*tick)(void *ctx);
    /* A "full" episode of the SMS store started (once per episode); why
     * says what showed it ("12 of 12 used", "the module reported SMS
     * FULL"). May be NULL. */
    void (*storage_full)(void *ctx, const char *why);
};

struct status *status_new(struct loop *loop, struct modem *modem, int interval_s,
                          const struct status_cbs *cbs, void *ctx);
void status_free(struct status *st);

/* Polls now and then every interval while ready; stops when not ready. */
void status_modem_ready(struct status *st, bool ready);

const struct status_info *status_get(const struct status *st);

/* Something changed the registration (a new operator chosen): a round
 * now, as a registration URC starts one. Nothing while not ready. */
void status_refresh(struct status *st);

/* The poll round's script (at/script.h), for a unit test that checks the
 * labels of every script. */
const struct at_script *status_poll_script(void);

/* The SMS store changed (a message stored or deleted): reads its counts
 * again with one AT+CPMS?, unless one is queued and not yet written (its
 * answer will show this change too). Nothing while not ready. */
void status_storage_refresh(struct status *st);

/* The module refused to store a message for lack of room (+CMS ERROR:
 * 322): a full store, as if the counts had said so. */
void status_storage_full(struct status *st, const char *why);

#endif
