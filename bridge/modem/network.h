/* The network: the operators in reach (AT+COPS=?) and the choice of one
 * (AT+COPS=0 automatic, AT+COPS=1,2,"<mccmnc>" manual).
 *
 * Both run through the modem's one chat: while the module searches (the
 * A76xx manual gives AT+COPS up to 180 s) every other command, the
 * status poll's included, waits behind it. The chat's clock starts when a
 * command is written, so the commands waiting are not timed out by it.
 *
 * The +COPS=? decoder is pure and exported for the unit tests and the
 * fuzzer. */
#ifndef M2M_MODEM_NETWORK_H
#define M2M_MODEM_NETWORK_H

#include <stdbool.h>
#include <stddef.h>

#include "modem/error.h"

struct modem;

/* How long AT+COPS=? and AT+COPS=<mode>... may take (the manual's bound:
 * a search, or a manual registration, scans every band). */
#define NETWORK_TIMEOUT_MS 180000

/* Operators kept from one answer: more than any place on earth has. */
#define NETWORK_OPERATORS_MAX 32
/* Longest name kept (UTF-8, NUL included); the SIM's and the network's
 * names are 16-24 characters. */
#define NETWORK_NAME_MAX 64

/* <stat> of +COPS=? (27.007 7.3). */
enum network_stat {
    NETWORK_UNKNOWN = 0,
    NETWORK_AVAILABLE = 1,
    NETWORK_CURRENT = 2,
    NETWORK_FORBIDDEN = 3,
};

struct network_operator {
    enum network_stat stat;
    char name[NETWORK_NAME_MAX];     /* long alphanumeric, "" when not given */
    char short_name[NETWORK_NAME_MAX];
    char mccmnc[7];                  /* 5 or 6 digits */
    int act;                         /* <AcT>, -1 when not given */
};

/* "unknown", "available", "current", "forbidden". */
const char *network_stat_name(enum network_stat stat);
/* <AcT> as B/status names the access technology (AT+CPSI's words):
 * 0, 1, 3 "GSM"; 2, 4-6 "WCDMA"; 7 "LTE"; 8 "EC-GSM-IoT"; 9 "NB-IoT";
 * 10 "LTE" (on a 5G core); 11-13 "NR". NULL for others and -1. */
const char *network_act_name(int act);

/* Whether s is an MCC and MNC as AT+COPS takes them: 5 or 6 digits. */
bool network_mccmnc_valid(const char *s);

/* The answer to AT+COPS=?:
 *   +COPS: (2,"Telekom.de","TDG","26201",7),(1,"Vodafone.de","Vodafone",
 *   "26202",7),(3,"o2 - de","o2","26203",7),,(0-4),(0-2)
 * One list per operator: <stat> 0-3, the long and the short name
 * (quoted: commas and parentheses inside are the name's), the numeric id
 * (5-6 digits, quoted) and an optional <AcT> 0-255. An empty field ends
 * the operators: what follows lists the modes and formats the module
 * supports. "+COPS: ,,(0-4),(0-2)" is a search that found nothing.
 * ucs2: the module's TE character set is UCS2 (a USSD request runs), so
 * the names are UCS-2 hex, decoded here; a name that is no UCS-2 hex is
 * kept as given. Operators beyond max are not kept (*n is then max).
 * 0, or -EINVAL for a line that is not such an answer (nothing usable in
 * ops then). Pure. */
int network_parse_scan(const char *line, bool ucs2, struct network_operator *ops, size_t max,
                       size_t *n);

struct network_scan {
    struct network_operator ops[NETWORK_OPERATORS_MAX];
    size_t n;
};

/* scan is NULL when err is set; both valid only during the call. err
 * codes: "timeout", "unavailable", "modem_error" (with cme when the
 * module gave one), "busy" (the chat's queue is full). */
typedef void (*network_scan_cb)(void *ctx, const struct network_scan *scan,
                                const struct m2m_error *err);
/* err NULL: the module accepted the choice (registered). */
typedef void (*network_select_cb)(void *ctx, const struct m2m_error *err);

/* AT+COPS=?. Always calls cb exactly once, maybe before returning. */
void network_scan(struct modem *m, network_scan_cb cb, void *ctx);

/* mccmnc NULL: AT+COPS=0 (automatic); else AT+COPS=1,2,"<mccmnc>"
 * (checked again here with network_mccmnc_valid: it goes between quotes
 * on the line; "invalid_request" otherwise, nothing written). Always
 * calls cb exactly once, maybe before returning. */
void network_select(struct modem *m, const char *mccmnc, network_select_cb cb, void *ctx);

#endif
