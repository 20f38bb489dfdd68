/* Benchmark harness: calibrated repetitions on CLOCK_MONOTONIC, min and
 * median per-op time, throughput, and the process's peak RSS.
 *
 * A benchmark is a function that does `iters` iterations of its work and
 * returns how many operations that was (an "op" is whatever the row's name
 * says: a lexer event, a command, an encode). Results must flow into
 * bench_consume() so that the compiler cannot drop the work.
 *
 * Environment (all optional):
 *   M2M_BENCH_REPS  repetitions per benchmark (default 7, at least 3)
 *   M2M_BENCH_MS    target wall time of one repetition in ms (default 40)
 *
 * Output: one Markdown table row per benchmark on stdout, so that the rows
 * of several programs form one table under bench_print_header(). */
#ifndef M2M_BENCH_H
#define M2M_BENCH_H

#include <stddef.h>
#include <stdint.h>

struct bench_case {
    const char *name;
    /* Runs iters iterations; returns the number of ops done (> 0). */
    uint64_t (*run)(void *ctx, uint64_t iters);
    void *ctx;
    /* Input bytes per op, for the MB/s column (10^6 bytes); 0: no column. */
    double bytes_per_op;
};

struct bench_result {
    double min_ns;       /* per op, fastest repetition */
    double median_ns;    /* per op, median repetition */
    uint64_t ops_per_rep;
    int reps;
};

/* Reads the environment and handles argv: --no-header suppresses the table
 * header (bench/run prints one header for every program). */
void bench_init(int argc, char **argv);

/* The table header (also printed by bench_init unless --no-header). */
void bench_print_header(void);

/* Calibrates, measures, prints a row. Returns 0, or -1 (and prints why)
 * when the benchmark reported 0 ops. */
int bench_run(const struct bench_case *c, struct bench_result *out);

/* Prints a row from figures measured elsewhere (the end-to-end benchmark):
 * per-op times in ns, ops/s from the median, rss_kib of the process that
 * matters (0: this process's peak). */
void bench_print_row(const char *name, int reps, uint64_t ops_per_rep, double min_ns,
                     double median_ns, double bytes_per_op, long rss_kib);

/* Peak resident set size of this process so far (getrusage), in KiB. */
long bench_peak_rss_kib(void);

uint64_t bench_now_ns(void);

/* Median of n values (sorts v in place). */
double bench_median(double *v, size_t n);

/* Keeps a value alive: the optimiser cannot prove it unused. */
extern volatile uint64_t bench_sink;
static inline void bench_consume(uint64_t v)
{
    bench_sink += v;
}

/* Reports a broken benchmark (wrong result): prints and exits 1. */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
