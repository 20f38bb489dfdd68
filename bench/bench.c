/* Benchmark harness: see bench.h. */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define REPS_MAX 101

volatile uint64_t bench_sink;

static int g_reps = 7;
static double g_target_ns = 40e6;

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_peak_rss_kib(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* Linux: KiB */
}

void bench_fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("bench: FAILED: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print_header(void)
{
    printf("| %-52s | %4s | %9s | %11s | %11s | %12s | %8s | %9s |\n", "benchmark", "reps",
           "ops/rep", "min ns/op", "med ns/op", "med ops/s", "med MB/s", "peak RSS");
    printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", "------------------------------------------------------",
           "-----:", "----------:", "------------:", "------------:", "-------------:",
           "---------:", "----------:");
    fflush(stdout);
}

void bench_init(int argc, char **argv)
{
    const char *s;
    int header = 1;

    s = getenv("M2M_BENCH_REPS");
    if (s && *s) {
        g_reps = atoi(s);
        if (g_reps < 3)
            g_reps = 3;
        if (g_reps > REPS_MAX)
            g_reps = REPS_MAX;
    }
    s = getenv("M2M_BENCH_MS");
    if (s && *s && atof(s) > 0)
        g_target_ns = atof(s) * 1e6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-header") == 0)
            header = 0;
    }
    if (header)
        bench_print_header();
}

static void fmt_kib(char *buf, size_t size, long kib)
{
    if (kib < 0)
        snprintf(buf, size, "?");
    else if (kib >= 10240)
        snprintf(buf, size, "%.1f MiB", (double)kib / 1024);
    else
        snprintf(buf, size, "%ld KiB", kib);
}

void bench_print_row(const char *name, int reps, uint64_t ops_per_rep, double min_ns,
                     double median_ns, double bytes_per_op, long rss_kib)
{
    char mbs[32] = "-";
    char rss[32];
    double ops_s = median_ns > 0 ? 1e9 / median_ns : 0;

    if (bytes_per_op > 0)
        snprintf(mbs, sizeof(mbs), "%.1f", bytes_per_op * ops_s / 1e6);
    fmt_kib(rss, sizeof(rss), rss_kib ? rss_kib : bench_peak_rss_kib());
    printf("| %-52s | %4d | %9llu | %11.1f | %11.1f | %12.0f | %8s | %9s |\n", name, reps,
           (unsigned long long)ops_per_rep, min_ns, median_ns, ops_s, mbs, rss);
    fflush(stdout);
}

int bench_run(const struct bench_case *c, struct bench_result *out)
{
    double per_op[REPS_MAX];
    uint64_t iters = 1, ops = 0, t;
    struct bench_result r = {0};

    /* Calibration (also the warm-up): grow iters until one run takes a
     * quarter of the target, then scale to the target. */
    for (;;) {
        t = bench_now_ns();
        ops = c->run(c->ctx, iters);
        t = bench_now_ns() - t;
        if (ops == 0) {
            fprintf(stderr, "bench: %s did no work\n", c->name);
            return -1;
        }
        if ((double)t >= g_target_ns / 4 || iters >= (UINT64_C(1) << 40))
            break;
        iters *= t < g_target_ns / 64 ? 8 : 2;
    }
    if (t > 0 && (double)t < g_target_ns) {
        double scaled = (double)iters * g_target_ns / (double)t;
        iters = scaled < 1 ? 1 : (uint64_t)scaled;
    }

    for (int i = 0; i < g_reps; i++) {
        t = bench_now_ns();
        ops = c->run(c->ctx, iters);
        t = bench_now_ns() - t;
        per_op[i] = (double)t / (double)ops;
    }
    r.reps = g_reps;
    r.ops_per_rep = ops;
    r.median_ns = bench_median(per_op, (size_t)g_reps); /* sorts */
    r.min_ns = per_op[0];
    bench_print_row(c->name, r.reps, r.ops_per_rep, r.min_ns, r.median_ns, c->bytes_per_op, 0);
    if (out)
        *out = r;
    return 0;
}
