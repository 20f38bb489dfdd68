/* Sent SMS by message reference. See refmap.h. */
#include "core/refmap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* One line: time, reference, part, parts, to, id, separators, newline. */
#define LINE_MAX_LEN (20 + 4 + 4 + 4 + REFMAP_TO_MAX + REFMAP_ID_MAX + 8)

struct refmap {
    char *path;                 /* dir/REFMAP_FILE */
    char *tmp;                  /* dir/REFMAP_FILE.tmp */
    int fd;                     /* appending; -1 when it could not be opened */
    struct refmap_entry e[REFMAP_MAX];  /* ring, oldest at head */
    size_t head, n;
    size_t lines;               /* lines in the file */
};

static const struct refmap_entry *entry_at(const struct refmap *m, size_t i)
{
    return &m->e[(m->head + i) % REFMAP_MAX];
}

static void push(struct refmap *m, const struct refmap_entry *e)
{
    if (m->n == REFMAP_MAX) {
        m->head = (m->head + 1) % REFMAP_MAX;
        m->n--;
    }
    m->e[(m->head + m->n) % REFMAP_MAX] = *e;
    m->n++;
}

static bool expired(const struct refmap_entry *e, int64_t now)
{
    return now - e->sent > REFMAP_MAX_AGE_S;
}

/* Printable ASCII without spaces: one field of a line. */
static bool is_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return false;
    return true;
}

static int format_line(const struct refmap_entry *e, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%" PRId64 " %d %u %u %s %s\n", e->sent, e->reference, e->part,
                     e->parts, e->to, e->id);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}

/* The id as compact JSON: a string or a number, short enough; anything
 * else (a corrupt file, a long id) becomes "null". */
static void id_text(const cJSON *id, char out[REFMAP_ID_MAX])
{
    char *s = NULL;

    snprintf(out, REFMAP_ID_MAX, "null");
    if (id && (cJSON_IsString(id) || cJSON_IsNumber(id)))
        s = cJSON_PrintUnformatted(id);
    if (s && strlen(s) < REFMAP_ID_MAX)
        snprintf(out, REFMAP_ID_MAX, "%s", s);
    else if (s)
        log_warn("sms: a command id of %zu characters is too long to remember for its "
                 "delivery reports (at most %d)", strlen(s), REFMAP_ID_MAX - 1);
    free(s);
}

/* "<time> <ref> <part> <parts> <to> <id>" (no newline). */
static int parse_line(const char *line, struct refmap_entry *e)
{
    int64_t sent;
    int ref, off = 0;
    unsigned part, parts;
    char to[REFMAP_TO_MAX];
    cJSON *id;

    if (sscanf(line, "%" SCNd64 " %d %u %u %40s %n", &sent, &ref, &part, &parts, to, &off) != 5 ||
        off == 0 || ref < 0 || ref > 255 || part < 1 || part > parts || parts > 255 ||
        !is_word(to))
        return -EINVAL;
    /* The id must be all that is left: a line with more is corrupt. */
    id = cJSON_ParseWithOpts(line + off, NULL, 1);
    if (!id || !(cJSON_IsString(id) || cJSON_IsNumber(id) || cJSON_IsNull(id))) {
        cJSON_Delete(id);
        return -EINVAL;
    }
    *e = (struct refmap_entry){ .sent = sent, .reference = ref, .part = part, .parts = parts };
    snprintf(e->to, sizeof(e->to), "%s", to);
    id_text(id, e->id);
    cJSON_Delete(id);
    return 0;
}

/* A new, empty tmp file, 0600 like the file it replaces (it holds phone
 * numbers), not the umask's default; a stale one from a crash goes. */
static FILE *open_tmp(const char *tmp)
{
    FILE *f;
    int fd;

    if (unlink(tmp) != 0 && errno != ENOENT)
        return NULL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* Rewrites the file with the live entries: tmp, fsync, rename. */
static int compact(struct refmap *m)
{
    char line[LINE_MAX_LEN];
    FILE *f = open_tmp(m->tmp);
    int r = 0, fd;

    if (!f)
        return -errno;
    for (size_t i = 0; r == 0 && i < m->n; i++) {
        int n = format_line(entry_at(m, i), line, sizeof(line));
        if (n < 0 || fputs(line, f) == EOF)
            r = n < 0 ? n : -EIO;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        r = r ? r : -errno;
    if (fclose(f) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(m->tmp, m->path) != 0)
        r = -errno;
    if (r < 0) {
        unlink(m->tmp);
        return r;
    }
    fd = open(m->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (m->fd >= 0)
        close(m->fd);
    m->fd = fd;
    m->lines = m->n;
    return 0;
}

/* The next line of f into buf, without its newline; false at the end of
 * the file. *bad: the line is too long for buf, holds a NUL byte or has
 * no newline (torn); it ends at its newline all the same, so the next
 * line is read whole. */
static bool read_line(FILE *f, char *buf, size_t size, bool *bad)
{
    size_t n = 0;
    int c;

    *bad = false;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0' || n + 1 >= size)
            *bad = true;
        else
            buf[n++] = (char)c;
    }
    buf[n] = '\0';
    if (c == EOF && n == 0 && !*bad)
        return false;
    if (c == EOF)
        *bad = true;
    return true;
}

/* Reads the file into the ring. *clean: every line was a live entry the
 * ring kept, and the file ends with a newline (appending is safe). */
static int load(struct refmap *m, int64_t now, bool *clean)
{
    char line[LINE_MAX_LEN];
    struct refmap_entry e;
    FILE *f = fopen(m->path, "r");
    bool bad;

    *clean = true;
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    while (read_line(f, line, sizeof(line), &bad)) {
        m->lines++;
        if (bad || parse_line(line, &e) < 0 || expired(&e, now)) {
            *clean = false;
            continue;
        }
        push(m, &e);
    }
    fclose(f);
    if (m->lines != m->n)
        *clean = false;
    return 0;
}

int refmap_open(const char *dir, int64_t now, struct refmap **out)
{
    struct refmap *m = calloc(1, sizeof(*m));
    bool clean;
    int r = -ENOMEM;

    *out = NULL;
    if (!m)
        return -ENOMEM;
    m->fd = -1;
    if (asprintf(&m->path, "%s/" REFMAP_FILE, dir) < 0) {
        m->path = NULL;
        goto err;
    }
    if (asprintf(&m->tmp, "%s/" REFMAP_FILE ".tmp", dir) < 0) {
        m->tmp = NULL;
        goto err;
    }
    r = load(m, now, &clean);
    if (r < 0)
        goto err;
    if (!clean) {
        r = compact(m);
        if (r < 0)
            goto err;
    } else {
        m->fd = open(m->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (m->fd < 0) {
            r = -errno;
            goto err;
        }
    }
    *out = m;
    return 0;

err:
    refmap_close(m);
    return r;
}

void refmap_close(struct refmap *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    free(m->path);
    free(m->tmp);
    free(m);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int refmap_add(struct refmap *m, const cJSON *id, const char *to, int reference, unsigned part,
               unsigned parts, int64_t now)
{
    char line[LINE_MAX_LEN];
    struct refmap_entry e = { .sent = now, .reference = reference, .part = part, .parts = parts };
    int n, r = 0;

    if (!is_word(to) || strlen(to) >= sizeof(e.to) || reference < 0 || reference > 255 ||
        part < 1 || part > parts || parts > 255)
        return -EINVAL;
    snprintf(e.to, sizeof(e.to), "%s", to);
    id_text(id, e.id);
    n = format_line(&e, line, sizeof(line));
    if (n < 0)
        return n;
    push(m, &e);
    m->lines++;
    if (m->fd >= 0)
        r = write_all(m->fd, line, (size_t)n);
    if (r == 0 && m->lines >= 2 * REFMAP_MAX)
        r = compact(m);
    return r;
}

/* 00 international prefix or +: the digits after it; national (one
 * trunk 0): the digits after it, *national set; else the string. */
static const char *significant(const char *s, bool *intl, bool *national)
{
    *intl = *national = false;
    if (s[0] == '+' || (s[0] == '0' && s[1] == '0')) {
        *intl = true;
        return s + (s[0] == '+' ? 1 : 2);
    }
    if (s[0] == '0') {
        *national = true;
        return s + 1;
    }
    return s;
}

bool refmap_same_number(const char *a, const char *b)
{
    bool ai, an, bi, bn;
    const char *da = significant(a, &ai, &an), *db = significant(b, &bi, &bn);
    size_t la = strlen(da), lb = strlen(db);

    if (strcmp(a, b) == 0 || (ai && bi && strcmp(da, db) == 0))
        return true;
    if (bi && an) {                   /* b international, a national */
        const char *t = da;
        da = db, db = t;
        size_t tl = la;
        la = lb, lb = tl;
    } else if (!(ai && bn)) {
        return false;
    }
    /* da: international digits, db: national significant digits; the
     * country code (1-3 digits) is what the international form adds. */
    return lb >= 6 && la > lb && la - lb <= 3 && strspn(db, "0123456789") == lb &&
           strcmp(da + (la - lb), db) == 0;
}

const struct refmap_entry *refmap_find(const struct refmap *m, int reference, const char *to,
                                       int64_t now)
{
    for (size_t i = m->n; i-- > 0;) {
        const struct refmap_entry *e = entry_at(m, i);
        if (e->reference == reference && !expired(e, now) && refmap_same_number(e->to, to))
            return e;
    }
    return NULL;
}
