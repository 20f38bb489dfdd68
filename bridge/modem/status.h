/* Status service: signal (AT+CSQ), registration (+CREG/+CEREG, also as
 * URCs), operator (AT+COPS?) and access technology (AT+CPSI?), refreshed
 * every status_interval and on registration URCs. The parsers are pure
 * and exported for the unit tests. */
#ifndef M2M_MODEM_STATUS_H
#define M2M_MODEM_STATUS_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct modem;

struct status_info {
    int csq;                 /* 0-31, 99 unknown, -1 never read */
    int reg_stat;            /* 27.007 stat 0-5, -1 unknown */
    char operator_name[64];
    char access[16];         /* "LTE", "GSM", "" */
};

/* "+CSQ: 14,99" -> 14. 0 or -EINVAL. */
int status_parse_csq(const char *line, int *csq);
/* "+CREG: 2,1,..." (response, with n) or "+CREG: 1,..." (URC, without n);
 * the same for +CEREG. 0 or -EINVAL. */
int status_parse_reg(const char *line, bool is_urc, int *stat);
/* "+COPS: 0,0,\"Operator\",7" -> "Operator" (empty when not registered). */
int status_parse_cops(const char *line, char *name, size_t size);
/* "+CPSI: LTE,Online,..." -> "LTE"; "NO SERVICE" -> "". */
int status_parse_cpsi(const char *line, char *access, size_t size);

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
};

struct status *status_new(struct loop *loop, struct modem *modem, int interval_s,
                          const struct status_cbs *cbs, void *ctx);
void status_free(struct status *st);

/* Polls now and then every interval while ready; stops when not ready. */
void status_modem_ready(struct status *st, bool ready);

const struct status_info *status_get(const struct status *st);

#endif
