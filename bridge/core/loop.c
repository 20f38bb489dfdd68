/* The event loop: poll() over registered fds plus monotonic timers.
 *
 * Callbacks may add, modify and remove fds and timers, including their own
 * (a callback may free its caller), so nothing the dispatch pass is iterating over is
 * freed or moved under it:
 *
 *  - fds: loop_del_fd only marks the entry dead; the array is compacted at
 *    the start of the next iteration. pollfd slot i is fd entry i, and
 *    entries added during a pass are appended after the polled ones, so
 *    they are not dispatched until they were polled.
 *  - timers: a binary min-heap of values ordered by (due, seq). A due timer
 *    is popped before its callback runs, so cancelling any other timer can
 *    remove it from the heap at once; cancelling the running timer (from
 *    its own callback, or from a nested call) is recorded and wins over the
 *    callback's return value.
 */
#include "core/loop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

struct loop_fd {
    int fd;
    short events;
    bool dead;
    loop_fd_cb cb;
    void *ctx;
    const char *log_tag; /* log_tag() when it was added: set around cb */
};

struct loop_timer {
    int64_t due;  /* loop_now_ms() value */
    uint64_t seq; /* FIFO among timers with the same due time */
    uint64_t id;
    loop_timer_cb cb;
    void *ctx;
    const char *log_tag; /* as loop_fd's */
};

struct loop {
    struct loop_fd *fds;
    size_t nfds, fds_cap;
    bool fds_dirty; /* some entry is dead: compact before the next poll */
    struct pollfd *pfds;
    size_t pfds_cap;

    struct loop_timer *heap;
    size_t ntimers, timers_cap;
    uint64_t next_id;
    uint64_t next_seq;
    uint64_t running_id; /* timer whose callback runs now, or 0 */
    bool running_cancelled;

    bool stop;
    uint64_t wakeups;
};

uint64_t loop_wakeups(const struct loop *loop)
{
    return loop->wakeups;
}

int64_t loop_now_ms(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid clock id on Linux. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->next_id = 1;
    loop->next_seq = 1;
    return loop;
}

void loop_free(struct loop *loop)
{
    if (!loop)
        return;
    free(loop->heap);
    free(loop->pfds);
    free(loop->fds);
    free(loop);
}

/* Grows *arr so that it holds at least want elements of size elem. */
static int grow(void **arr, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* ---- fds ---- */

static struct loop_fd *fd_find(struct loop *loop, int fd)
{
    for (size_t i = 0; i < loop->nfds; i++) {
        if (loop->fds[i].fd == fd && !loop->fds[i].dead)
            return &loop->fds[i];
    }
    return NULL;
}

int loop_add_fd(struct loop *loop, int fd, short events, loop_fd_cb cb, void *ctx)
{
    if (!loop || fd < 0 || !cb)
        return -EINVAL;
    if (fd_find(loop, fd))
        return -EEXIST;
    int rc = grow((void **)&loop->fds, &loop->fds_cap, loop->nfds + 1, sizeof(*loop->fds));
    if (rc < 0)
        return rc;
    loop->fds[loop->nfds++] = (struct loop_fd){ .fd = fd, .events = events, .cb = cb, .ctx = ctx,
                                               .log_tag = log_tag() };
    return 0;
}

int loop_mod_fd(struct loop *loop, int fd, short events)
{
    struct loop_fd *e = loop ? fd_find(loop, fd) : NULL;
    if (!e)
        return -ENOENT;
    e->events = events;
    return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
    struct loop_fd *e = loop ? fd_find(loop, fd) : NULL;
    if (!e)
        return;
    e->dead = true;
    loop->fds_dirty = true;
}

static void fds_compact(struct loop *loop)
{
    if (!loop->fds_dirty)
        return;
    size_t w = 0;
    for (size_t r = 0; r < loop->nfds; r++) {
        if (!loop->fds[r].dead)
            loop->fds[w++] = loop->fds[r];
    }
    loop->nfds = w;
    loop->fds_dirty = false;
}

/* ---- timers: min-heap on (due, seq) ---- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_swap(struct loop *loop, size_t a, size_t b)
{
    struct loop_timer t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
}

static void heap_up(struct loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(&loop->heap[i], &loop->heap[parent]))
            break;
        heap_swap(loop, i, parent);
        i = parent;
    }
}

static void heap_down(struct loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < loop->ntimers && timer_before(&loop->heap[l], &loop->heap[min]))
            min = l;
        if (r < loop->ntimers && timer_before(&loop->heap[r], &loop->heap[min]))
            min = r;
        if (min == i)
            return;
        heap_swap(loop, i, min);
        i = min;
    }
}

static void heap_remove(struct loop *loop, size_t i)
{
    loop->ntimers--;
    if (i == loop->ntimers)
        return;
    loop->heap[i] = loop->heap[loop->ntimers];
    heap_down(loop, i);
    heap_up(loop, i);
}

/* Capacity is kept one above the count, so re-arming the running timer
 * (which was popped) never needs an allocation that could fail. */
static void heap_push(struct loop *loop, struct loop_timer t)
{
    loop->heap[loop->ntimers] = t;
    heap_up(loop, loop->ntimers++);
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx,
                   uint64_t *id)
{
    if (!loop || !cb)
        return -EINVAL;
    if (delay_ms < 0)
        delay_ms = 0;
    /* The running timer is outside the heap but will come back. */
    size_t reserve = loop->ntimers + 2;
    int rc = grow((void **)&loop->heap, &loop->timers_cap, reserve, sizeof(*loop->heap));
    if (rc < 0)
        return rc;
    struct loop_timer t = {
        .due = loop_now_ms() + delay_ms,
        .seq = loop->next_seq++,
        .id = loop->next_id++,
        .cb = cb,
        .ctx = ctx,
        .log_tag = log_tag(),
    };
    heap_push(loop, t);
    if (id)
        *id = t.id;
    return 0;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    if (!loop || id == 0)
        return;
    if (id == loop->running_id) {
        loop->running_cancelled = true;
        return;
    }
    for (size_t i = 0; i < loop->ntimers; i++) {
        if (loop->heap[i].id == id) {
            heap_remove(loop, i);
            return;
        }
    }
}

/* Runs the timers due at the start of the pass, earliest first. A timer
 * added or re-armed during the pass waits for the next iteration even with
 * delay 0, so a callback that re-adds itself cannot starve the fds. */
static void timers_dispatch(struct loop *loop)
{
    int64_t now = loop_now_ms();
    uint64_t pass_seq = loop->next_seq;

    while (!loop->stop && loop->ntimers > 0) {
        struct loop_timer t = loop->heap[0];
        if (t.due > now || t.seq >= pass_seq)
            break;
        heap_remove(loop, 0);

        loop->running_id = t.id;
        loop->running_cancelled = false;
        log_set_tag(t.log_tag);
        int64_t next = t.cb(t.ctx);
        log_set_tag(NULL);
        loop->running_id = 0;

        if (next > 0 && !loop->running_cancelled) {
            /* From the end of the callback, not from t.due: after a
             * suspend or a long stall, no burst of catch-up runs. */
            t.due = loop_now_ms() + next;
            t.seq = loop->next_seq++;
            heap_push(loop, t);
        }
    }
}

static int next_timeout(const struct loop *loop)
{
    if (loop->ntimers == 0)
        return -1;
    int64_t wait = loop->heap[0].due - loop_now_ms();
    if (wait < 0)
        return 0;
    return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* ---- run ---- */

static void fds_dispatch(struct loop *loop, size_t npolled)
{
    for (size_t i = 0; i < npolled && !loop->stop; i++) {
        short revents = loop->pfds[i].revents;
        if (!revents)
            continue;
        /* Index, not pointer: a callback's loop_add_fd may realloc. */
        if (loop->fds[i].dead)
            continue;
        int fd = loop->fds[i].fd;
        log_set_tag(loop->fds[i].log_tag);
        loop->fds[i].cb(loop->fds[i].ctx, fd, revents);
        log_set_tag(NULL);

        /* An fd closed without loop_del_fd reports POLLNVAL on every poll:
         * drop it rather than spin at 100% CPU. */
        if ((revents & POLLNVAL) && !loop->fds[i].dead) {
            log_error("loop: fd %d is not open (closed without loop_del_fd); removing it", fd);
            loop->fds[i].dead = true;
            loop->fds_dirty = true;
        }
    }
}

int loop_run(struct loop *loop)
{
    if (!loop)
        return -EINVAL;
    int ret = 0;

    while (!loop->stop) {
        fds_compact(loop);
        size_t n = loop->nfds;
        ret = grow((void **)&loop->pfds, &loop->pfds_cap, n ? n : 1, sizeof(*loop->pfds));
        if (ret < 0)
            goto out;
        for (size_t i = 0; i < n; i++) {
            loop->pfds[i] = (struct pollfd){ .fd = loop->fds[i].fd, .events = loop->fds[i].events };
        }

        int rc = poll(loop->pfds, (nfds_t)n, next_timeout(loop));
        loop->wakeups++;
        if (rc < 0) {
            /* Signals are delivered through main.c's self-pipe. */
            if (errno == EINTR)
                continue;
            ret = -errno;
            log_error("loop: poll: %s", strerror(errno));
            goto out;
        }
        if (rc > 0)
            fds_dispatch(loop, n);
        timers_dispatch(loop);
    }

out:
    /* A later loop_run starts afresh. */
    loop->stop = false;
    return ret;
}

void loop_stop(struct loop *loop)
{
    if (loop)
        loop->stop = true;
}
