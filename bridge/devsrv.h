/* modem2mqtt --device-server PORT [--set KEY=VALUE ...]: the configuration
 * console of a serial device server (USR, CommFront and the like), reached
 * over its serial port, for putting a modem behind it (devsrv.c). */
#ifndef M2M_DEVSRV_H
#define M2M_DEVSRV_H

#include <stddef.h>
#include <stdio.h>

/* The longest value a --set may give. */
#define DEVSRV_VALUE_MAX 64

/* One --set, checked: the dialect's command name ("UART") and its value,
 * made of letters, digits, '.', ',' and '-' only. */
struct devsrv_set {
    const char *cmd;
    char value[DEVSRV_VALUE_MAX];
};

/* Checks "uart=115200,8,1,NONE,NFC", "sock=TCPS,0.0.0.0,8899" or
 * "regen=off" (keys and words in any case): 0 with *out filled, else -1
 * with the reason in why ("uart: expected BAUD,DATA,STOP,PARITY,FLOW"). */
int devsrv_parse_set(const char *arg, struct devsrv_set *out, char *why, size_t why_size);

/* What +ERR=<code> means (1-5), or "unknown error". */
const char *devsrv_err_meaning(int code);

/* The whole run: opens port (a serial device or a pty) at baud, enters the
 * console ("+++", "a", "+ok" within 3 s), queries and prints the settings
 * to out, applies sets in order, checks the settings as they now are
 * against baud 8N1 without flow control, registry packets off and TCP
 * server mode (warnings with the --set to use), and leaves with AT+ENTM
 * (also after a refused set or a query that failed).
 * Errors go to err. Returns the exit code: 0 ok, 1 the device failed or
 * refused something, 2 usage (a bad --set, a port that is no serial
 * device), with nothing written then. */
int devsrv_run(const char *port, int baud, const char *const *sets, size_t n_sets, FILE *out,
               FILE *err);

#endif
