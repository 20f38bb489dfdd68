/* The systemd notification protocol (sd_notify), without libsystemd: one
 * datagram per message on the unix socket named by $NOTIFY_SOCKET (a name
 * starting with '@' is in the abstract namespace). Outside systemd
 * (no NOTIFY_SOCKET) every call is a no-op. */
#ifndef M2M_CORE_NOTIFY_H
#define M2M_CORE_NOTIFY_H

#include <stdint.h>

struct notify;

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the environment.
 * NULL when there is nothing to notify (or out of memory). */
struct notify *notify_new(void);
void notify_free(struct notify *n);

/* Sends "READY=1", "WATCHDOG=1", "STOPPING=1" or "STATUS=..." (several
 * separated by '\n'). 0 or -errno; n NULL: 0. */
int notify_send(struct notify *n, const char *msg);

/* Half the watchdog interval systemd asks for (WatchdogSec=) in ms, 0 when
 * none: then nothing needs to be sent periodically. */
int64_t notify_watchdog_ms(const struct notify *n);

#endif
