/* The modem's byte stream: a serial device (libserialport), a
 * pseudo-terminal (termios: libserialport 0.1.1 cannot open ptys, its
 * TIOCMGET fails with ENOTTY), or tcp://HOST:PORT (ser2net, serial device
 * servers).
 *
 * Nothing here waits: several modems share one event loop, and a module
 * that stops reading (a hung USB-serial adapter, a device server whose peer
 * stopped) must not stall the others. The owner polls at_port_fd() for
 * at_port_events() and calls:
 *  - at_port_open_continue() on any event while at_port_opening() (a
 *    tcp:// port resolves and connects in the background);
 *  - at_port_flush() on POLLOUT, at_port_read() on POLLIN/POLLHUP/POLLERR.
 * The fd and the events change as the port opens and as output waits:
 * the owner asks again after each call. */
#ifndef M2M_AT_PORT_H
#define M2M_AT_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct at_port;

/* Bytes at_port_write keeps while the fd takes no more: the largest single
 * write the bridge makes (a 16 KiB certificate after AT+CCERTDOWN's
 * prompt) plus a command line of up to 4 KiB still waiting ahead of it. */
#define AT_PORT_OUT_MAX (20 * 1024)
/* How long a tcp:// port may take to resolve and connect: the owner
 * enforces it with a timer (a device server that does not answer must not
 * leave a modem waiting for the kernel's ~2 minutes). */
#define AT_PORT_CONNECT_MS 5000

/* spec: a device path (symlinks such as /dev/serial/by-id/... followed),
 * a pty, tcp://HOST:PORT (IPv6: tcp://[ADDR]:PORT), or "auto"
 * (at_port_find_auto). 8N1, no flow control, raw; baud is ignored for tcp.
 * Serial ports are locked for exclusive use (flock + TIOCEXCL).
 * 0 or -errno: -ENOENT (no such device), -EBUSY (in use), -EINVAL
 * (malformed spec or unsupported baud), -ECONNREFUSED (a numeric address
 * refused at once).
 * tcp:// returns at once with the port still opening (at_port_opening):
 * a numeric host is connected to in non-blocking mode; a host name is
 * first resolved in a helper thread (port_tcp.c says why). */
int at_port_open(const char *spec, int baud, struct at_port **out);
/* Also abandons an open in progress (a lookup still running finishes in
 * its thread and frees what it holds). Pending output is dropped. */
void at_port_close(struct at_port *port);

/* The fd to poll and the poll events wanted now: POLLIN while resolving,
 * POLLOUT while connecting, once open POLLIN plus POLLOUT while output
 * waits. Both may change after at_port_open_continue, at_port_write and
 * at_port_flush. */
int at_port_fd(const struct at_port *port);
short at_port_events(const struct at_port *port);

/* A tcp:// port that has not finished connecting. */
bool at_port_opening(const struct at_port *port);
/* Moves an opening port on after an event on its fd: 0 when it is open
 * now, -EINPROGRESS while it still opens, else the port failed to open
 * (-EHOSTUNREACH unresolvable, -ECONNREFUSED, ...: close it). Every
 * resolved address is tried in turn. 0 for a port already open. */
int at_port_open_continue(struct at_port *port);

/* >0 bytes read (with a device server's packets taken out, see
 * at_port_strip_packet: len must then be more than AT_STRIP_MAX); 0 when
 * nothing is available now; -EPIPE when the device vanished or the peer
 * closed (EOF, EIO, POLLHUP); -ENOTCONN while opening; other -errno. */
ssize_t at_port_read(struct at_port *port, uint8_t *buf, size_t len);

/* A packet a serial device server adds to the stream (its registry packet,
 * its heartbeat; at most AT_STRIP_MAX bytes, two of them): every exact
 * occurrence is taken out of what at_port_read returns, also one split
 * across reads (at/strip.h; bytes that might start a packet are held back
 * for at most AT_STRIP_HOLD_MS after the last of them). 0, -EINVAL
 * (empty, too long), -ENOSPC. */
int at_port_strip_packet(struct at_port *port, const uint8_t *pkt, size_t len);
/* Milliseconds until held-back bytes are due, or -1 when none are held:
 * the owner reads again then (at_port_read returns them). */
int64_t at_port_held_ms(const struct at_port *port);

/* Takes all of buf or none of it, without waiting: what the fd takes now
 * is written, the rest is kept in the port's output buffer, behind what
 * waits there already, for at_port_flush. 0 means the bytes are the
 * port's: in order, they reach the device unless the port is lost (a
 * flush or read reports it) or closed first. Refused, nothing written:
 * -EMSGSIZE (len > AT_PORT_OUT_MAX: it could never fit), -ENOBUFS (the
 * buffer has no room for it now: the device has not been reading),
 * -ENOTCONN (still opening); also -EPIPE (device gone) or another -errno.
 * Never raises SIGPIPE. */
int at_port_write(struct at_port *port, const uint8_t *buf, size_t len);
/* Writes buffered output the fd takes now (call on POLLOUT). Bytes moved
 * (0: none could), or -EPIPE / -errno: the port is lost. */
ssize_t at_port_flush(struct at_port *port);
/* Bytes accepted by at_port_write that the fd has not taken yet. */
size_t at_port_pending(const struct at_port *port);

/* Sets the DTR line of a serial device (modem.sleep "dtr"): on
 * (asserted: a TTL adapter drives the pin low) keeps an A7670 at
 * AT+CSCLK=1 awake, off lets it sleep. -ENOTSUP on a pty or tcp:// port
 * (no line to set), else 0 or -errno. */
int at_port_set_dtr(struct at_port *port, bool on);

/* What a user can do about at_port_open's -err for spec (port_hint.c):
 * a clause to append to the error, such as ": user nobody may not use
 * it; add it to group dialout (`sudo usermod ...`)", or "" when there is
 * no advice. Written to buf, which is returned. */
const char *at_port_open_advice(int err, const char *spec, char *buf, size_t size);
/* The line for an open port where nothing answers AT: names the port
 * (spec, or the device "auto" found) and the baud, and what to check.
 * port may be NULL (closed meanwhile). Written to buf, which is
 * returned. */
const char *at_port_silent_advice(const struct at_port *port, const char *spec, int baud,
                                  char *buf, size_t size);

/* "auto": the AT interface of a known SIMCom module, found by USB VID:PID
 * and interface number. Writes the device path. 0, -ENODEV, -ENOSPC. */
int at_port_find_auto(char *path, size_t size);

/* --list-ports: a header line, then one line per port (path, VID:PID and
 * USB interface, serial, description, /dev/serial/by-id name), marking
 * the one "auto" would pick; "no serial ports found" when there are none.
 * Returns the number listed or -errno. */
int at_port_list(FILE *out);

/* The model name when USB vid:pid interface iface is the AT port of a
 * known modem (the table "auto" uses), else NULL. Pure. */
const char *at_port_known_modem(int vid, int pid, int iface);

#endif
