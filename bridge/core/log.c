/* Logging to stderr: "2026-11-21T06:00:00.123Z info  message".
 *
 * Each line is formatted into a local buffer and written with one
 * fprintf under flockfile, so lines from paho's threads and the loop
 * thread never interleave. UTC with milliseconds: the same clock a user
 * compares against the broker's and journald's timestamps. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Bounded: a longer message is truncated, never split over two lines. */
#define LOG_LINE_MAX 2048

/* The one process-wide setting (see log.h). Atomic because any thread logs. */
static _Atomic int log_level = LOG_INFO;

/* Per thread: the loop's and each of paho's threads tag their own lines. */
static _Thread_local const char *tag;

void log_set_tag(const char *t)
{
    tag = t;
}

const char *log_tag(void)
{
    return tag;
}

static const char *const log_names[] = {
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warn",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
    if ((int)level < LOG_ERROR)
        level = LOG_ERROR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

int log_level_parse(const char *name, enum log_level *out)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
        if (strcmp(name, log_names[i]) == 0) {
            if (out)
                *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    if ((int)level < LOG_ERROR || level > LOG_DEBUG)
        level = LOG_ERROR;

    /* errno is preserved: callers often log and then return -errno. */
    int saved_errno = errno;

    char stamp[40] = "";
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm)) {
        size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
    }

    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (len < 0)
        snprintf(line, sizeof(line), "(log format error)");

    /* Trailing newlines from callers would produce blank lines; control
     * characters from modem input would corrupt the terminal or split a
     * record in journald. */
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 && c != '\t')
            line[i] = '?';
    }

    flockfile(stderr);
    if (tag)
        fprintf(stderr, "%s %-5s [%s] %s\n", stamp, log_names[level], tag, line);
    else
        fprintf(stderr, "%s %-5s %s\n", stamp, log_names[level], line);
    fflush(stderr);
    funlockfile(stderr);

    errno = saved_errno;
}
