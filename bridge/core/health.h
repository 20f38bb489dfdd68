/* Health: the running bridge answers on a unix socket in its state_dir;
 * `modem2mqtt --health` (the container HEALTHCHECK) connects and judges
 * the answer.
 *
 * Why a socket and not a file the loop rewrites: a file needs a write
 * every few seconds to prove the loop runs (8,640 a day, on an SD card),
 * and a timer that wakes the bridge while nothing happens. The socket
 * costs nothing until asked, and the answer itself is the proof of life:
 * it comes from the loop thread, so a hung loop does not answer and the
 * check times out. The answer sends no AT command and takes no lock. */
#ifndef M2M_CORE_HEALTH_H
#define M2M_CORE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_SOCKET "health.sock"
/* How long --health waits for the answer: a loop that takes longer hangs. */
#define HEALTH_ANSWER_MS 5000
#define HEALTH_LINE_MAX 256

struct health_info {
    bool mqtt_connected;
    const char *modem_state;    /* a B/status "state" word */
    uint64_t wakeups;           /* the loop's poll() returns so far */
    uint64_t fsyncs;            /* the journal's flushes so far */
    uint64_t commands;          /* commands journaled since start */
    const char *name;           /* with several modems, the one the
                                   states are of; NULL: the only modem */
};

/* Pure: "mqtt=<connected|disconnected> modem=<state> wakeups=<n> fsyncs=<n>
 * commands=<n>[ name=<name>]\n". 0, or -ENOSPC when size is too small. */
int health_format(const struct health_info *h, char *buf, size_t size);

/* Pure: judges an answer. 0 healthy, -1 not; msg (always set, one line)
 * says why, naming the modem when the answer does. */
int health_judge(const char *answer, char *msg, size_t size);

/* Listens on dir/health.sock (a socket left by a killed bridge is
 * replaced: the caller holds state_dir's lock). *fd: non-blocking,
 * close-on-exec. 0 or -errno (-ENAMETOOLONG: the path does not fit a
 * unix socket address). */
int health_listen(const char *dir, int *fd);

/* Accepts every waiting connection on fd and writes line to each, then
 * closes them: one loop wakeup a query, nothing read. */
void health_answer(int fd, const char *line);

/* Removes dir/health.sock (clean exit): the check then says "not
 * running". */
void health_remove(const char *dir);

/* Asks the bridge using dir and judges its answer. 0 healthy, -1 not (msg
 * says why: also no bridge, or no answer within HEALTH_ANSWER_MS). raw
 * (optional) gets the answer line. */
int health_check(const char *dir, char *msg, size_t size, char *raw, size_t raw_size);

#endif
