/* The event loop: poll() over file descriptors plus monotonic timers.
 *
 * One thread runs the loop and owns every piece of modem and bridge state.
 * Other threads (paho's) never touch that state: they queue work and wake
 * the loop through a file descriptor the loop polls (see mqtt/link.c).
 *
 * Each fd and timer keeps the log tag (core/log.h) that was set when it
 * was added, and its callback runs with that tag: what an instance
 * registers logs under its name, however it got there. */
#ifndef M2M_CORE_LOOP_H
#define M2M_CORE_LOOP_H

#include <stdint.h>

struct loop;

/* revents are poll() flags (POLLIN, POLLOUT, POLLHUP, POLLERR). */
typedef void (*loop_fd_cb)(void *ctx, int fd, short revents);

/* A timer callback returns the delay in ms until it should run again,
 * or 0 to stop (the timer is then removed; its id becomes invalid). */
typedef int64_t (*loop_timer_cb)(void *ctx);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* How many times poll() returned (an fd ready, a timer due, a signal):
 * the loop's wakeups, which an idle bridge keeps at zero between its
 * configured polls. */
uint64_t loop_wakeups(const struct loop *loop);

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
int64_t loop_now_ms(void);

/* One registration per fd; 0 or -EEXIST/-ENOMEM. Removing an fd from inside
 * any callback is safe: its callback is not called again afterwards. */
int loop_add_fd(struct loop *loop, int fd, short events, loop_fd_cb cb, void *ctx);
int loop_mod_fd(struct loop *loop, int fd, short events);
void loop_del_fd(struct loop *loop, int fd);

/* Runs cb after delay_ms (negative counts as 0). *id (optional) gets a
 * non-zero id for loop_cancel_timer. Cancelling an unknown or expired id is
 * a no-op, so a holder may cancel unconditionally; cancelling a timer from
 * its own callback wins over the callback's return value. Timers due
 * together run earliest first, then in the order they were added. A timer
 * added or re-armed from a callback runs no earlier than the next poll()
 * pass, even with delay 0, so fds are never starved. A re-arm counts from
 * the end of the callback (no catch-up bursts after a stall). */
int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id);
void loop_cancel_timer(struct loop *loop, uint64_t id);

/* Runs until loop_stop(); returns 0, or a negative errno if poll() failed.
 * An fd closed without loop_del_fd (POLLNVAL) is reported to its callback
 * once and then removed, with an error logged. */
int loop_run(struct loop *loop);
/* Safe from the loop thread only. Signal handlers use a self-pipe in main.c.
 * No further callback runs after the current one; loop_run returns and may
 * be called again (a stop before loop_run makes it return at once). */
void loop_stop(struct loop *loop);

#endif
