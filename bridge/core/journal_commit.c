/* The journal's writes and group commit (see journal_int.h for the other
 * files): appending an entry to the log, and making it durable with one
 * fdatasync shared by paho's thread and the loop when they meet (the
 * flush leader waits a little for company from the other side: struct
 * company, its credit and probe). The entry format and compaction are
 * journal_log.c's. */
#include "core/journal_int.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
/* ---- writing and group commit ---- */

/* Appends an entry and applies it. Caller holds the lock. *ticket (optional)
 * is what jnl_commit_locked needs to make it durable. */
int jnl_write_locked(struct journal *j, uint8_t *e, size_t len, uint64_t *ticket)
{
    if (j->error)
        return j->error;
    int ret = jnl_pwrite_all(j->fd, e, len, j->end);
    if (ret < 0) {
        /* Cut a partial entry off, so the next one is not written after
         * garbage (open would stop reading there). */
        if (ftruncate(j->fd, j->end) < 0)
            j->error = -EIO;
        log_error("journal: writing %s/%s: %s", j->dir, LOG_FILE, strerror(-ret));
        return ret;
    }
    ret = jnl_apply(j, e, len, j->end);
    if (ret < 0)
        return ret;     /* on disk: the next open knows it */
    j->end += (off_t)len;
    j->written++;
    if (ticket)
        *ticket = j->written;
    return 0;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A thread on side asks for a flush: wakes a leader of the other side
 * waiting for company. */
static void note_request(struct journal *j, enum side side)
{
    if (side == SIDE_NONE)
        return;
    j->side[side].last_us = mono_us();
    j->side[side].requests++;
    pthread_cond_broadcast(&j->company_cv);
}

/* A leader about to flush for side: gives the other side up to
 * COMMIT_WAIT_US to ask for a flush too and share it (see there). */
static void wait_for_company(struct journal *j, enum side side)
{
    if (side == SIDE_NONE)
        return;
    struct company *me = &j->side[side], *other = &j->side[!side];
    int64_t now = mono_us();
    uint64_t seen = other->requests;

    if (!other->last_us || now - other->last_us > j->busy_us)
        return;
    /* The loop flushes again only for a command besides this append's. */
    if (side == SIDE_APPEND && j->n_unfinished < 2)
        return;
    /* Commands sent one at a time come only after the previous result:
     * the wait then always times out. Waits that keep timing out stop,
     * but every COMMIT_PROBE-th is tried again. */
    if (me->credit < 0 && ++me->probe % COMMIT_PROBE != 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + j->wait_us * 1000;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    while (other->requests == seen &&
           pthread_cond_timedwait(&j->company_cv, &j->lock, &until) == 0)
        ;
    bool joined = other->requests != seen;
    me->credit += joined ? 1 : -1;
    me->credit = me->credit > COMMIT_CREDIT_MAX    ? COMMIT_CREDIT_MAX
                 : me->credit < -COMMIT_CREDIT_MAX ? -COMMIT_CREDIT_MAX
                                                   : me->credit;
}

/* Returns once the entry numbered ticket is durable. Caller holds the lock;
 * it is released during the fdatasync. side: who asks (wait_for_company). */
int jnl_commit_locked(struct journal *j, uint64_t ticket, enum side side)
{
    if (j->synced < ticket)
        note_request(j, side);
    while (j->synced < ticket) {
        if (j->error)
            return j->error;
        if (j->syncing) {
            pthread_cond_wait(&j->synced_cv, &j->lock);
            continue;
        }
        j->syncing = true;
        wait_for_company(j, side);  /* the lock is released meanwhile */
        uint64_t target = j->written;
        int fd = j->fd;
        pthread_mutex_unlock(&j->lock);
        int r = fdatasync(fd);
        int err = errno;
        pthread_mutex_lock(&j->lock);
        j->syncing = false;
        j->fsyncs++;
        if (r < 0) {
            /* The kernel may have dropped the pages that failed: a later
             * fdatasync could succeed without them. Refuse from now on. */
            j->error = -err;
            log_error("journal: fdatasync %s/%s: %s; the journal stops recording", j->dir,
                      LOG_FILE, strerror(err));
        } else if (target > j->synced) {
            j->synced = target;
        }
        pthread_cond_broadcast(&j->synced_cv);
    }
    return 0;
}


int journal_commit(struct journal *j)
{
    if (!j)
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    int ret = jnl_commit_locked(j, j->marked, SIDE_LOOP);
    pthread_mutex_unlock(&j->lock);
    return ret;
}

void journal_set_commit_wait(struct journal *j, int64_t wait_us, int64_t busy_us)
{
    pthread_mutex_lock(&j->lock);
    j->wait_us = wait_us;
    j->busy_us = busy_us;
    pthread_mutex_unlock(&j->lock);
}

int journal_commit_soon(struct journal *j)
{
    if (!j)
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    int ret;
    if (j->synced >= j->marked)
        ret = j->error;
    else if (j->side[SIDE_APPEND].last_us &&
             mono_us() - j->side[SIDE_APPEND].last_us <= j->busy_us &&
             j->side[SIDE_LOOP].credit >= 0)
        ret = -EAGAIN;
    else
        ret = jnl_commit_locked(j, j->marked, SIDE_LOOP);
    pthread_mutex_unlock(&j->lock);
    return ret;
}

