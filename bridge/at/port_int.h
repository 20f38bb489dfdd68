/* The modem port's private parts, shared by its files (port.c says what
 * the port does):
 *   port.c       opening by spec, closing, reading, and the output buffer
 *   port_dev.c   device paths: termios for ptys, libserialport for real
 *                serial devices, locking
 *   port_tcp.c   tcp://: the resolver thread, the non-blocking connect
 *   port_list.c  the known modems, finding the AT port, listing ports
 *   port_hint.c  what a user can do when the port fails */
#ifndef M2M_AT_PORT_INT_H
#define M2M_AT_PORT_INT_H

#include "at/port.h"
#include "at/strip.h"

#include <libserialport.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
enum at_port_kind { AT_PORT_TTY, AT_PORT_PTY, AT_PORT_TCP };

/* Devices are open from the start; tcp:// passes through the others. */
enum at_port_phase { PORT_OPEN = 0, PORT_RESOLVING, PORT_CONNECTING };

struct resolve_job;

struct at_port {
    int fd;
    enum at_port_kind kind;
    enum at_port_phase phase;
    int lockfd;         /* ttys: our own fd, holds the flock; ptys: == fd */
    struct sp_port *sp; /* AT_PORT_TTY via libserialport: owns fd */
    bool excl;          /* we set TIOCEXCL on fd */
    char name[PATH_MAX];  /* for log messages */

    /* tcp:// while opening */
    struct resolve_job *job;        /* PORT_RESOLVING: the lookup, shared */
    struct addrinfo *addrs;         /* resolved, until connected */
    const struct addrinfo *next;    /* the address after the one tried */

    /* A device server's packets, taken out of what is read (strip.h). */
    struct at_strip strip;

    /* Accepted output the fd has not taken: out[out_head..+out_len). */
    size_t out_head, out_len;
    uint8_t out[AT_PORT_OUT_MAX];
};

/* Shared between the files above (each was a static of the one port.c). */

/* port_dev.c: opens a device path (not tcp://) into port. */
int port_open_device(struct at_port *port, const char *spec, int baud);
/* port_dev.c: a libserialport result as -errno. */
int port_sp_errno(enum sp_return r);
/* port_tcp.c: starts opening tcp://HOST:PORT; drops a lookup's job. */
int port_open_tcp(struct at_port *port, const char *spec);
void port_job_unref(struct resolve_job *job);

#endif
