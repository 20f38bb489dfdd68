/* Logging to stderr, one line per call, with a level filter; in
 * journald's format when stderr is the journal.
 *
 * The level is process-wide (like syslog's mask): it is the only piece of
 * global state in the bridge, and it holds no modem or broker state. */
#ifndef M2M_CORE_LOG_H
#define M2M_CORE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Once at start, before any thread: under systemd, when stderr is the
 * journal (JOURNAL_STREAM matches it), lines get journald's "<N>"
 * priority prefix instead of a timestamp and a level name. */
void log_init(void);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* "error" | "warn" | "info" | "debug" -> 0, else -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

/* The tag of this thread's lines: "[office] modem: ready". NULL (the
 * default): none. The string is borrowed and must outlive its use; the
 * loop sets it around each callback (core/loop.h). */
void log_set_tag(const char *tag);
const char *log_tag(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
