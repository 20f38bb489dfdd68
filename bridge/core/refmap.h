/* Which B/sms/send command a message reference belongs to, so that a
 * delivery report (B/sms/report) can name the command's id, the part and
 * the recipient long after the command's result went out, also across
 * restarts.
 *
 * A TP-MR is one octet: the module hands out 0-255 and starts again, so
 * an entry is found by (reference, recipient), the newest first, and
 * entries older than REFMAP_MAX_AGE_S are ignored and dropped. At most
 * REFMAP_MAX parts are remembered (the oldest go first).
 *
 * The file (state_dir/REFMAP_FILE) is an append-only text log, one line
 * per part: "<unix time> <reference> <part> <parts> <to> <id as JSON>".
 * A part is added as soon as the module named its reference, and costs
 * one write() and no fsync: losing the last lines to a power cut only
 * makes their reports come with "id": null. When the log
 * holds twice REFMAP_MAX lines, or at open when it holds lines that are
 * no longer wanted (expired, evicted, torn), it is rewritten with the
 * live entries (tmp, fsync, rename). */
#ifndef M2M_CORE_REFMAP_H
#define M2M_CORE_REFMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define REFMAP_FILE "sms-references"
#define REFMAP_MAX 1024
#define REFMAP_MAX_AGE_S (7 * 24 * 3600)
/* The command id as compact JSON, NUL included: a longer id is not
 * remembered (its reports carry "id": null). */
#define REFMAP_ID_MAX 128
#define REFMAP_TO_MAX 41

struct refmap_entry {
    int64_t sent;               /* Unix time of refmap_add */
    int reference;              /* TP-MR, 0-255 */
    unsigned part, parts;       /* 1-based part of parts */
    char to[REFMAP_TO_MAX];
    char id[REFMAP_ID_MAX];     /* "42", "\"abc\"" or "null" */
};

struct refmap;

/* Loads dir/REFMAP_FILE (missing: empty). now: Unix time. A line that
 * does not parse is skipped (a torn write). 0 or -errno. */
int refmap_open(const char *dir, int64_t now, struct refmap **out);
void refmap_close(struct refmap *m);

/* Part `part` (1-based) of `parts` of one sent SMS, with its reference
 * (0-255). id: the command's "id" (a string or a number), or NULL. to:
 * the recipient as sent, printable without spaces. -EINVAL for anything
 * out of range (nothing kept). One write(). 0 or -errno (the entry is
 * kept in memory even when the file could not be written). */
int refmap_add(struct refmap *m, const cJSON *id, const char *to, int reference, unsigned part,
               unsigned parts, int64_t now);

/* The newest live entry for this reference whose recipient is the same
 * number as to (refmap_same_number), or NULL. Borrowed until the next
 * refmap_add. */
const struct refmap_entry *refmap_find(const struct refmap *m, int reference, const char *to,
                                       int64_t now);

/* Whether two recipients are the same number: equal, or one international
 * ("+49170...") and the other national ("0170...") with the same digits
 * after the country code and the trunk zero (an SC may report either
 * form). Pure. */
bool refmap_same_number(const char *a, const char *b);

#endif
