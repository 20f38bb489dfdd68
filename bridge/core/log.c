/* Logging to stderr: "2026-11-21T06:00:00.123Z info  message", or under
 * systemd, when stderr is the journal: "<6>message".
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
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Set by log_init when stderr is the journal. */
static _Atomic bool to_journal;

/* systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it
 * connects stderr to. The variable is inherited by children whose stderr
 * went elsewhere (a shell redirect, a pipe), hence the comparison with
 * stderr itself (sd_journal_stream_fd(3)). */
static bool stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char extra;

    if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &extra) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(void)
{
    atomic_store(&to_journal, stderr_is_journal());
}

static const char *const log_names[] = {
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warn",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};

/* sd-daemon.h's prefixes, which journald turns into PRIORITY=. */
static const char *const journal_prio[] = {
    [LOG_ERROR] = "<3>",
    [LOG_WARN] = "<4>",
    [LOG_INFO] = "<6>",
    [LOG_DEBUG] = "<7>",
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

static void format_stamp(char *stamp, size_t size)
{
    struct timespec ts;
    struct tm tm;

    stamp[0] = '\0';
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm)) {
        size_t n = strftime(stamp, size, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, size - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    if ((int)level < LOG_ERROR || level > LOG_DEBUG)
        level = LOG_ERROR;

    /* errno is preserved: callers often log and then return -errno. */
    int saved_errno = errno;

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

    /* For journald the prefix is the level (journalctl colours and
     * filters by it) and the journal's own timestamp is the time; the
     * tag stays, it names the modem. */
    char tagged[48] = "";
    if (tag)
        snprintf(tagged, sizeof(tagged), "[%s] ", tag);
    bool journal = atomic_load(&to_journal);
    char stamp[40] = "";
    if (!journal)
        format_stamp(stamp, sizeof(stamp));
    flockfile(stderr);
    if (journal)
        fprintf(stderr, "%s%s%s\n", journal_prio[level], tagged, line);
    else
        fprintf(stderr, "%s %-5s %s%s\n", stamp, log_names[level], tagged, line);
    fflush(stderr);
    funlockfile(stderr);

    errno = saved_errno;
}
