/* The modem's byte stream: a serial device (libserialport), a
 * pseudo-terminal (termios: libserialport 0.1.1 cannot open ptys, its
 * TIOCMGET fails with ENOTTY), or tcp://HOST:PORT (ser2net, serial device
 * servers). Non-blocking; the owner polls at_port_fd(). */
#ifndef M2M_AT_PORT_H
#define M2M_AT_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct at_port;

/* spec: a device path (symlinks such as /dev/serial/by-id/... followed),
 * a pty, tcp://HOST:PORT (IPv6: tcp://[ADDR]:PORT), or "auto"
 * (at_port_find_auto). 8N1, no flow control, raw; baud is ignored for tcp.
 * Serial ports are locked for exclusive use (flock + TIOCEXCL).
 * 0 or -errno: -ENOENT (no such device), -EBUSY (in use), -EINVAL
 * (malformed spec or unsupported baud), -ECONNREFUSED, -ETIMEDOUT (TCP
 * connect, bounded at 5 s), -EHOSTUNREACH (unresolvable host). */
int at_port_open(const char *spec, int baud, struct at_port **out);
void at_port_close(struct at_port *port);

int at_port_fd(const struct at_port *port);

/* >0 bytes read; 0 when nothing is available now; -EPIPE when the device
 * vanished or the peer closed (EOF, EIO, POLLHUP); other -errno. */
ssize_t at_port_read(struct at_port *port, uint8_t *buf, size_t len);

/* Writes all of buf (waits for POLLOUT up to timeout_ms in total; a
 * negative timeout counts as 0). Never raises SIGPIPE.
 * 0, -ETIMEDOUT, -EPIPE, or another -errno. */
int at_port_write(struct at_port *port, const uint8_t *buf, size_t len, int timeout_ms);

/* "auto": the AT interface of a known SIMCom module, found by USB VID:PID
 * and interface number. Writes the device path. 0, -ENODEV, -ENOSPC. */
int at_port_find_auto(char *path, size_t size);

/* --list-ports: one line per port (path, VID:PID and USB interface,
 * serial, description, /dev/serial/by-id name), marking the one "auto"
 * would pick; "no serial ports found" when there are none.
 * Returns the number listed or -errno. */
int at_port_list(FILE *out);

/* The model name when USB vid:pid interface iface is the AT port of a
 * known modem (the table "auto" uses), else NULL. Pure. */
const char *at_port_known_modem(int vid, int pid, int iface);

#endif
