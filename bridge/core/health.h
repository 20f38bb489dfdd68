/* The health file: the bridge's loop rewrites <state_dir>/health with the
 * broker and modem state; `modem2mqtt --health` (the container
 * HEALTHCHECK) reads and judges it.
 *
 * Why a file: the check must be cheap and must not disturb the bridge. It
 * opens no socket, sends no AT command and takes no lock; a bridge whose
 * loop hangs stops rewriting the file, which the age check catches. The
 * time stamp is CLOCK_MONOTONIC, not the wall clock, which jumps on
 * machines without an RTC when NTP sets it (a Raspberry Pi after boot);
 * containers share the host's monotonic clock. */
#ifndef M2M_CORE_HEALTH_H
#define M2M_CORE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_FILE "health"
/* The bridge rewrites the file this often, and at each state change. */
#define HEALTH_INTERVAL_MS 10000
/* Older than this: the bridge stopped or its loop hangs. */
#define HEALTH_MAX_AGE_MS 60000

/* Writes "t=<monotonic ms> mqtt=<connected|disconnected> modem=<state>\n"
 * to dir/health through a temporary file and rename(), so a reader never
 * sees half a line. No fsync: the file is only meaningful while the bridge
 * runs. modem_state: a B/status "state" word. 0 or -errno. */
int health_write(const char *dir, bool mqtt_connected, const char *modem_state);

/* Removes dir/health (clean exit): then the check says "not running"
 * rather than "stale". */
void health_remove(const char *dir);

/* Pure: judges a file's content at monotonic time now_ms. 0 healthy, -1
 * not; msg (always set, one line) says why. */
int health_judge(const char *content, int64_t now_ms, char *msg, size_t size);

/* Reads dir/health and judges it now. 0 healthy, -1 not (msg says why:
 * also a missing or unreadable file). */
int health_check(const char *dir, char *msg, size_t size);

#endif
