/* core/loop: fds over pipes, timers, and mutation from inside callbacks.
 *
 * No fixed sleeps: every test runs the loop until its condition holds,
 * with a guard timer that stops the loop (and fails the test) after a
 * bound, so a broken loop fails instead of hanging. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/loop.h"

#define GUARD_MS 5000

struct guard {
    struct loop *loop;
    int fired;
};

static int64_t guard_cb(void *ctx)
{
    struct guard *g = ctx;
    g->fired = 1;
    loop_stop(g->loop);
    return 0;
}

static void run_guarded(struct loop *loop)
{
    struct guard g = { .loop = loop };
    uint64_t id = 0;
    assert_int_equal(loop_add_timer(loop, GUARD_MS, guard_cb, &g, &id), 0);
    assert_int_equal(loop_run(loop), 0);
    loop_cancel_timer(loop, id);
    assert_int_equal(g.fired, 0);
}

static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* ---- timers ---- */

struct order {
    struct loop *loop;
    int seen[8];
    int n;
    int stop_after;
};

struct order_tag {
    struct order *o;
    int tag;
};

static int64_t order_cb(void *ctx)
{
    struct order_tag *t = ctx;
    t->o->seen[t->o->n++] = t->tag;
    if (t->o->n == t->o->stop_after)
        loop_stop(t->o->loop);
    return 0;
}

static void test_timer_order(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    assert_non_null(loop);
    struct order o = { .loop = loop, .stop_after = 4 };
    struct order_tag t[4] = { { &o, 30 }, { &o, 10 }, { &o, 20 }, { &o, 11 } };
    int64_t start = loop_now_ms();
    assert_int_equal(loop_add_timer(loop, 30, order_cb, &t[0], NULL), 0);
    assert_int_equal(loop_add_timer(loop, 10, order_cb, &t[1], NULL), 0);
    assert_int_equal(loop_add_timer(loop, 20, order_cb, &t[2], NULL), 0);
    /* Same due time as tag 10 (or later): FIFO after it. */
    assert_int_equal(loop_add_timer(loop, 10, order_cb, &t[3], NULL), 0);
    run_guarded(loop);
    assert_true(loop_now_ms() - start >= 30);
    assert_int_equal(o.n, 4);
    assert_int_equal(o.seen[0], 10);
    assert_int_equal(o.seen[1], 11);
    assert_int_equal(o.seen[2], 20);
    assert_int_equal(o.seen[3], 30);
    loop_free(loop);
}

static void test_timer_zero_delay_fifo(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct order o = { .loop = loop, .stop_after = 3 };
    struct order_tag t[3] = { { &o, 1 }, { &o, 2 }, { &o, 3 } };
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_add_timer(loop, 0, order_cb, &t[i], NULL), 0);
    run_guarded(loop);
    assert_int_equal(o.seen[0], 1);
    assert_int_equal(o.seen[1], 2);
    assert_int_equal(o.seen[2], 3);
    loop_free(loop);
}

struct rearm {
    struct loop *loop;
    int count;
    int64_t times[5];
};

static int64_t rearm_cb(void *ctx)
{
    struct rearm *r = ctx;
    r->times[r->count++] = loop_now_ms();
    if (r->count == 5) {
        loop_stop(r->loop);
        return 0;
    }
    return 5;
}

static void test_timer_rearm(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct rearm r = { .loop = loop };
    uint64_t id = 0;
    assert_int_equal(loop_add_timer(loop, 1, rearm_cb, &r, &id), 0);
    assert_true(id != 0);
    run_guarded(loop);
    assert_int_equal(r.count, 5);
    for (int i = 1; i < 5; i++)
        assert_true(r.times[i] - r.times[i - 1] >= 5);
    /* Returned 0: removed; cancelling the stale id is a no-op. */
    loop_cancel_timer(loop, id);
    loop_free(loop);
}

struct cancel_ctx {
    struct loop *loop;
    uint64_t victim;
    int victim_ran;
    int killer_ran;
};

static int64_t victim_cb(void *ctx)
{
    struct cancel_ctx *c = ctx;
    c->victim_ran++;
    return 1;
}

static int64_t killer_cb(void *ctx)
{
    struct cancel_ctx *c = ctx;
    c->killer_ran++;
    loop_cancel_timer(c->loop, c->victim);
    return 0;
}

static int64_t stopper_cb(void *ctx)
{
    loop_stop(ctx);
    return 0;
}

static void test_timer_cancel_from_other_callback(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct cancel_ctx c = { .loop = loop };
    /* Killer and victim due at the same time: killer first (FIFO), so the
     * victim, already due in the same pass, must not run. */
    assert_int_equal(loop_add_timer(loop, 5, killer_cb, &c, NULL), 0);
    assert_int_equal(loop_add_timer(loop, 5, victim_cb, &c, &c.victim), 0);
    assert_int_equal(loop_add_timer(loop, 30, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(c.killer_ran, 1);
    assert_int_equal(c.victim_ran, 0);
    loop_free(loop);
}

static int64_t self_cancel_cb(void *ctx)
{
    struct cancel_ctx *c = ctx;
    c->victim_ran++;
    loop_cancel_timer(c->loop, c->victim);
    return 1; /* cancellation wins over the re-arm */
}

static void test_timer_cancel_self(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct cancel_ctx c = { .loop = loop };
    assert_int_equal(loop_add_timer(loop, 1, self_cancel_cb, &c, &c.victim), 0);
    assert_int_equal(loop_add_timer(loop, 30, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(c.victim_ran, 1);
    loop_free(loop);
}

static void test_timer_cancel_outside(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct cancel_ctx c = { .loop = loop };
    uint64_t ids[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(loop_add_timer(loop, 2 + i, victim_cb, &c, &ids[i]), 0);
    for (int i = 0; i < 6; i++)
        loop_cancel_timer(loop, ids[i]);
    loop_cancel_timer(loop, 0);
    loop_cancel_timer(loop, 999999);
    assert_int_equal(loop_add_timer(loop, 20, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(c.victim_ran, 0);
    loop_free(loop);
}

/* Many timers with random-ish delays: the heap pops them in order. */
struct many {
    struct loop *loop;
    int64_t last_due;
    int64_t slack;      /* ms the test took to add the timers */
    int n, total, bad;
};

struct many_tag {
    struct many *m;
    int64_t due;
};

static int64_t many_cb(void *ctx)
{
    struct many_tag *t = ctx;
    /* The test's clock reading and loop_add_timer's differ by at most the
     * time the adding took (slack): a machine under load may pause there. */
    if (t->due + t->m->slack + 1 < t->m->last_due)
        t->m->bad++;
    if (t->due > t->m->last_due)
        t->m->last_due = t->due;
    if (++t->m->n == t->m->total)
        loop_stop(t->m->loop);
    return 0;
}

static void test_timer_many(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct many m = { .loop = loop, .total = 64 };
    struct many_tag tags[64];
    uint64_t ids[64];
    int64_t base = loop_now_ms();
    for (int i = 0; i < 64; i++) {
        int64_t d = (i * 37) % 41;
        tags[i] = (struct many_tag){ &m, base + d };
        assert_int_equal(loop_add_timer(loop, d, many_cb, &tags[i], &ids[i]), 0);
    }
    m.slack = loop_now_ms() - base;
    /* Cancel a few from the middle of the heap. */
    for (int i = 5; i < 64; i += 9) {
        loop_cancel_timer(loop, ids[i]);
        m.total--;
    }
    run_guarded(loop);
    assert_int_equal(m.bad, 0);
    assert_int_equal(m.n, m.total);
    loop_free(loop);
}

/* ---- fds ---- */

struct reader {
    struct loop *loop;
    int fd;
    char buf[64];
    size_t len;
    int calls;
    int del_self;
    size_t want;
};

static void reader_cb(void *ctx, int fd, short revents)
{
    struct reader *r = ctx;
    assert_int_equal(fd, r->fd);
    r->calls++;
    if (revents & POLLIN) {
        ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
        if (n > 0)
            r->len += (size_t)n;
    }
    if (r->del_self)
        loop_del_fd(r->loop, fd);
    if (r->len >= r->want)
        loop_stop(r->loop);
}

static void test_fd_read(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    struct reader r = { .loop = loop, .fd = p[0], .want = 5 };
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, reader_cb, &r), 0);
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, reader_cb, &r), -EEXIST);
    assert_int_equal(loop_add_fd(loop, -1, POLLIN, reader_cb, &r), -EINVAL);
    assert_int_equal(write(p[1], "hello", 5), 5);
    run_guarded(loop);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.buf, "hello", 5);
    loop_del_fd(loop, p[0]);
    loop_del_fd(loop, p[0]); /* no-op */
    assert_int_equal(loop_mod_fd(loop, p[0], POLLIN), -ENOENT);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

/* Writes from a timer, so the fd becomes readable while the loop sleeps. */
struct writer {
    int fd;
    const char *msg;
};

static int64_t writer_cb(void *ctx)
{
    struct writer *w = ctx;
    assert_int_equal(write(w->fd, w->msg, strlen(w->msg)), (ssize_t)strlen(w->msg));
    return 0;
}

static void test_fd_wakes_from_timer_write(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    struct reader r = { .loop = loop, .fd = p[0], .want = 3 };
    struct writer w = { .fd = p[1], .msg = "abc" };
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, reader_cb, &r), 0);
    assert_int_equal(loop_add_timer(loop, 10, writer_cb, &w, NULL), 0);
    run_guarded(loop);
    assert_memory_equal(r.buf, "abc", 3);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

static void test_fd_del_self(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    /* want is unreachable: only the stopper ends the run. */
    struct reader r = { .loop = loop, .fd = p[0], .del_self = 1, .want = 100 };
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, reader_cb, &r), 0);
    /* The callback removes itself on the first byte; more data written
     * later must not call it again. */
    assert_int_equal(write(p[1], "x", 1), 1);
    struct writer w = { .fd = p[1], .msg = "more" };
    assert_int_equal(loop_add_timer(loop, 10, writer_cb, &w, NULL), 0);
    assert_int_equal(loop_add_timer(loop, 40, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.len, 1);
    /* Deleted: it can be registered again. */
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, reader_cb, &r), 0);
    loop_del_fd(loop, p[0]);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

/* Two readable fds; the first callback removes the second, which was
 * readable in the same poll() result: it must not be called. */
struct pair {
    struct loop *loop;
    int a, b;
    int a_calls, b_calls;
};

static void pair_a_cb(void *ctx, int fd, short revents)
{
    struct pair *p = ctx;
    (void)fd;
    (void)revents;
    p->a_calls++;
    loop_del_fd(p->loop, p->b);
    loop_del_fd(p->loop, p->a);
}

static void pair_b_cb(void *ctx, int fd, short revents)
{
    struct pair *p = ctx;
    (void)fd;
    (void)revents;
    p->b_calls++;
}

static void test_fd_del_other_in_same_pass(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int pa[2], pb[2];
    make_pipe(pa);
    make_pipe(pb);
    struct pair p = { .loop = loop, .a = pa[0], .b = pb[0] };
    assert_int_equal(write(pa[1], "a", 1), 1);
    assert_int_equal(write(pb[1], "b", 1), 1);
    assert_int_equal(loop_add_fd(loop, pa[0], POLLIN, pair_a_cb, &p), 0);
    assert_int_equal(loop_add_fd(loop, pb[0], POLLIN, pair_b_cb, &p), 0);
    assert_int_equal(loop_add_timer(loop, 20, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(p.a_calls, 1);
    assert_int_equal(p.b_calls, 0);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
    loop_free(loop);
}

/* A callback that registers many fds (forcing realloc of the fd table
 * while it is being dispatched) and unregisters itself. */
struct grow_ctx {
    struct loop *loop;
    int pipes[20][2];
    int hits;
};

static void grow_child_cb(void *ctx, int fd, short revents)
{
    struct grow_ctx *g = ctx;
    char c;
    (void)revents;
    assert_int_equal(read(fd, &c, 1), 1);
    loop_del_fd(g->loop, fd);
    if (++g->hits == 20)
        loop_stop(g->loop);
}

static void grow_parent_cb(void *ctx, int fd, short revents)
{
    struct grow_ctx *g = ctx;
    char c;
    (void)revents;
    assert_int_equal(read(fd, &c, 1), 1);
    loop_del_fd(g->loop, fd);
    for (int i = 0; i < 20; i++) {
        make_pipe(g->pipes[i]);
        assert_int_equal(write(g->pipes[i][1], "z", 1), 1);
        assert_int_equal(loop_add_fd(g->loop, g->pipes[i][0], POLLIN, grow_child_cb, g), 0);
    }
}

static void test_fd_add_during_dispatch(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    struct grow_ctx g = { .loop = loop };
    int p[2];
    make_pipe(p);
    assert_int_equal(write(p[1], "p", 1), 1);
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, grow_parent_cb, &g), 0);
    run_guarded(loop);
    assert_int_equal(g.hits, 20);
    for (int i = 0; i < 20; i++) {
        close(g.pipes[i][0]);
        close(g.pipes[i][1]);
    }
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

static void hup_cb(void *ctx, int fd, short revents)
{
    struct reader *r = ctx;
    r->calls++;
    if (revents & POLLHUP) {
        loop_del_fd(r->loop, fd);
        loop_stop(r->loop);
    }
}

static void test_fd_hup(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    struct reader r = { .loop = loop, .fd = p[0] };
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, hup_cb, &r), 0);
    close(p[1]);
    run_guarded(loop);
    assert_true(r.calls >= 1);
    close(p[0]);
    loop_free(loop);
}

/* mod_fd: POLLOUT on a pipe is ready at once; switching it off stops the
 * callbacks. */
struct out_ctx {
    struct loop *loop;
    int calls;
};

static void out_cb(void *ctx, int fd, short revents)
{
    struct out_ctx *o = ctx;
    assert_true(revents & POLLOUT);
    o->calls++;
    assert_int_equal(loop_mod_fd(o->loop, fd, 0), 0);
}

static void test_fd_mod(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    struct out_ctx o = { .loop = loop };
    assert_int_equal(loop_add_fd(loop, p[1], POLLOUT, out_cb, &o), 0);
    assert_int_equal(loop_add_timer(loop, 30, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(o.calls, 1);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

/* An fd closed without loop_del_fd: POLLNVAL is delivered once, then the
 * loop drops it instead of spinning. */
static void nval_cb(void *ctx, int fd, short revents)
{
    struct out_ctx *o = ctx;
    (void)fd;
    assert_true(revents & POLLNVAL);
    o->calls++;
}

static void test_fd_nval(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    int p[2];
    make_pipe(p);
    struct out_ctx o = { .loop = loop };
    assert_int_equal(loop_add_fd(loop, p[0], POLLIN, nval_cb, &o), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(loop_add_timer(loop, 30, stopper_cb, loop, NULL), 0);
    run_guarded(loop);
    assert_int_equal(o.calls, 1);
    loop_free(loop);
}

static void test_stop_before_run_and_rerun(void **state)
{
    (void)state;
    struct loop *loop = loop_new();
    loop_stop(loop);
    assert_int_equal(loop_run(loop), 0); /* returns at once */
    struct order o = { .loop = loop, .stop_after = 1 };
    struct order_tag t = { &o, 7 };
    assert_int_equal(loop_add_timer(loop, 1, order_cb, &t, NULL), 0);
    run_guarded(loop);
    assert_int_equal(o.n, 1);
    assert_int_equal(loop_add_timer(loop, 1, NULL, NULL, NULL), -EINVAL);
    loop_free(loop);
    loop_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_zero_delay_fifo),
        cmocka_unit_test(test_timer_rearm),
        cmocka_unit_test(test_timer_cancel_from_other_callback),
        cmocka_unit_test(test_timer_cancel_self),
        cmocka_unit_test(test_timer_cancel_outside),
        cmocka_unit_test(test_timer_many),
        cmocka_unit_test(test_fd_read),
        cmocka_unit_test(test_fd_wakes_from_timer_write),
        cmocka_unit_test(test_fd_del_self),
        cmocka_unit_test(test_fd_del_other_in_same_pass),
        cmocka_unit_test(test_fd_add_during_dispatch),
        cmocka_unit_test(test_fd_hup),
        cmocka_unit_test(test_fd_mod),
        cmocka_unit_test(test_fd_nval),
        cmocka_unit_test(test_stop_before_run_and_rerun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
