/* Durable command journal: one file per record in dir/pending.
 *
 * dir/pending/<seq, 20 digits>.rec, written as <seq>.tmp, fsync'd, renamed
 * and the directory fsync'd: after journal_append returns, the record
 * survives a crash or power loss, and a crash mid-append leaves only a
 * .tmp file, which the next open removes (the append never returned, so
 * the broker never got its PUBACK and will redeliver).
 *
 * Record: a 16-byte header, then the topic (no NUL), then the payload
 * (binary-safe):
 *
 *   0  "M2J1"       magic and format version
 *   4  u32 LE       topic length (1..65535, the MQTT limit)
 *   8  u32 LE       payload length (0..JOURNAL_PAYLOAD_MAX)
 *  12  u32 LE       CRC-32 (IEEE) of topic and payload
 *
 * The CRC catches what a length check cannot: a sector of zeros or a
 * torn write on file systems that do not order data before the rename.
 *
 * Sequence numbers must increase across restarts even when every record
 * was done (and deleted) before the restart. dir/journal.seq holds a
 * high-water mark reserved in blocks of JOURNAL_SEQ_BLOCK, so an append
 * needs no extra fsync except once per block.
 *
 * Beside a record: <seq>.started (u32 LE: the part that began last) and
 * <seq>.result ("M2R1", u32 LE length, u32 LE CRC-32, the blob), each
 * written like a record (through <seq>.stmp / <seq>.rtmp).
 *
 * dir/published: the ids of acknowledged incoming messages, one a line,
 * oldest first, rewritten durably on every change.
 *
 * dir/pending is flock'd for the journal's lifetime: two bridges sharing
 * one state_dir would replay each other's commands. */
#include "core/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define JOURNAL_MAGIC "M2J1"
#define JOURNAL_HDR_LEN 16
#define JOURNAL_TOPIC_MAX 65535u
#define JOURNAL_PAYLOAD_MAX (1024u * 1024u)
#define JOURNAL_SEQ_BLOCK 1024u
#define JOURNAL_SEQ_FILE "journal.seq"
#define JOURNAL_SEQ_DIGITS 20
#define JOURNAL_NAME_MAX 32 /* 20 digits + ".started" + NUL, with room */
#define RESULT_MAGIC "M2R1"
#define RESULT_HDR_LEN 12
#define PUBLISHED_FILE "published"
#define PUBLISHED_ID_MAX 200

struct journal {
    pthread_mutex_t lock;
    int dirfd;        /* state_dir: journal.seq */
    int pendfd;       /* state_dir/pending: the records; flock'd */
    uint64_t next;    /* the seq the next append gets */
    uint64_t reserved; /* next may go up to this without rewriting journal.seq */
    char *dir;        /* for log messages */
    /* The published ids, a ring: pub[(pub_head + i) % MAX], oldest first. */
    char pub[JOURNAL_PUBLISHED_MAX][PUBLISHED_ID_MAX + 1];
    size_t pub_head, n_pub;
};

/* ---- helpers ---- */

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* shrank under us */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "<20 digits><suffix>" -> seq; false for anything else. */
static bool parse_name(const char *name, const char *suffix, uint64_t *seq)
{
    uint64_t v = 0;
    for (int i = 0; i < JOURNAL_SEQ_DIGITS; i++) {
        char c = name[i];
        if (c < '0' || c > '9')
            return false;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (strcmp(name + JOURNAL_SEQ_DIGITS, suffix) != 0 || v == 0)
        return false;
    *seq = v;
    return true;
}

static void make_name(char *buf, size_t size, uint64_t seq, const char *suffix)
{
    snprintf(buf, size, "%020" PRIu64 "%s", seq, suffix);
}

/* Writes name in dirfd atomically and durably: tmp, fsync, rename, fsync dir. */
static int write_file_durable(int dirfd, const char *tmp, const char *name, const void *a,
                              size_t alen, const void *b, size_t blen)
{
    int ret;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    ret = write_all(fd, a, alen);
    if (ret == 0 && blen > 0)
        ret = write_all(fd, b, blen);
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    if (close(fd) < 0 && ret == 0)
        ret = -errno;
    if (ret < 0)
        goto err;
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        ret = -errno;
        goto err;
    }
    if (fsync(dirfd) < 0)
        return -errno; /* renamed but perhaps not durable: report it */
    return 0;

err:
    unlinkat(dirfd, tmp, 0);
    return ret;
}

/* Reserves seqs up to upto in journal.seq. Caller holds the lock (or owns j). */
static int seq_reserve(struct journal *j, uint64_t upto)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", upto);
    int ret = write_file_durable(j->dirfd, JOURNAL_SEQ_FILE ".tmp", JOURNAL_SEQ_FILE, text,
                                 (size_t)len, NULL, 0);
    if (ret < 0) {
        log_error("journal: %s/%s: %s", j->dir, JOURNAL_SEQ_FILE, strerror(-ret));
        return ret;
    }
    j->reserved = upto;
    return 0;
}

/* The high-water mark from journal.seq, or 0 when missing or unreadable. */
static uint64_t seq_load(struct journal *j)
{
    char text[32] = "";
    int fd = openat(j->dirfd, JOURNAL_SEQ_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT)
            log_warn("journal: %s/%s: %s", j->dir, JOURNAL_SEQ_FILE, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        goto bad;
    text[n] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || (*end != '\n' && *end != '\0'))
        goto bad;
    return (uint64_t)v;

bad:
    /* Lost high-water mark: seqs continue after the pending records only. */
    log_warn("journal: %s/%s is corrupt; ignoring it", j->dir, JOURNAL_SEQ_FILE);
    return 0;
}

/* A directory stream over pending/, from its start. The dup shares its
 * offset with pendfd, left at the end by an earlier pass: hence the rewind. */
static int open_pending(struct journal *j, DIR **out)
{
    int fd = dup(j->pendfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int ret = -errno;
        close(fd);
        return ret;
    }
    rewinddir(d);
    *out = d;
    return 0;
}

/* Scans pending: removes leftover .tmp files, returns the largest seq. */
static int scan_pending(struct journal *j, uint64_t *max)
{
    DIR *d = NULL;
    int ret = open_pending(j, &d);
    if (ret < 0)
        return ret;
    *max = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (parse_name(de->d_name, ".rec", &seq)) {
            if (seq > *max)
                *max = seq;
        } else if (parse_name(de->d_name, ".tmp", &seq)) {
            if (seq > *max)
                *max = seq;
            log_info("journal: removing incomplete record %s/pending/%s", j->dir, de->d_name);
            unlinkat(j->pendfd, de->d_name, 0);
        } else if (parse_name(de->d_name, ".stmp", &seq) ||
                   parse_name(de->d_name, ".rtmp", &seq)) {
            unlinkat(j->pendfd, de->d_name, 0);       /* a mark cut short */
        } else if (parse_name(de->d_name, ".started", &seq) ||
                   parse_name(de->d_name, ".result", &seq)) {
            char rec[JOURNAL_NAME_MAX];
            make_name(rec, sizeof(rec), seq, ".rec");
            if (faccessat(j->pendfd, rec, F_OK, 0) < 0)
                unlinkat(j->pendfd, de->d_name, 0);   /* a done cut short */
        }
    }
    closedir(d);
    return 0;
}

static void pub_load(struct journal *j);

static int mkdir_if_missing(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* ---- API ---- */

int journal_open(const char *dir, struct journal **out)
{
    if (!dir || !*dir || !out)
        return -EINVAL;
    *out = NULL;

    int ret;
    char *pend = NULL;
    struct journal *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->dirfd = -1;
    j->pendfd = -1;
    pthread_mutex_init(&j->lock, NULL);
    j->dir = strdup(dir);
    if (!j->dir || asprintf(&pend, "%s/pending", dir) < 0) {
        pend = NULL;
        ret = -ENOMEM;
        goto err;
    }

    const char *failed = dir;
    ret = mkdir_if_missing(dir);
    if (ret == 0) {
        failed = pend;
        ret = mkdir_if_missing(pend);
    }
    if (ret < 0) {
        log_error("journal: cannot create %s: %s", failed, strerror(-ret));
        goto err;
    }
    j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        ret = -errno;
        log_error("journal: %s: %s", dir, strerror(-ret));
        goto err;
    }
    j->pendfd = open(pend, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->pendfd < 0) {
        ret = -errno;
        log_error("journal: %s: %s", pend, strerror(-ret));
        goto err;
    }
    if (flock(j->pendfd, LOCK_EX | LOCK_NB) < 0) {
        ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
        log_error("journal: %s is in use by another modem2mqtt (one state_dir per instance)",
                  pend);
        goto err;
    }
    /* pending may be new: make its directory entry durable too. */
    fsync(j->dirfd);

    uint64_t max = 0;
    ret = scan_pending(j, &max);
    if (ret < 0) {
        log_error("journal: %s: %s", pend, strerror(-ret));
        goto err;
    }
    pub_load(j);
    uint64_t hwm = seq_load(j);
    j->next = (hwm > max ? hwm : max) + 1;
    ret = seq_reserve(j, j->next - 1 + JOURNAL_SEQ_BLOCK);
    if (ret < 0)
        goto err;

    log_debug("journal: %s open, next seq %" PRIu64, dir, j->next);
    free(pend);
    *out = j;
    return 0;

err:
    free(pend);
    journal_close(j);
    return ret;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    if (j->pendfd >= 0)
        close(j->pendfd); /* releases the flock */
    if (j->dirfd >= 0)
        close(j->dirfd);
    pthread_mutex_destroy(&j->lock);
    free(j->dir);
    free(j);
}

int journal_append(struct journal *j, const char *topic, const void *payload, size_t len,
                   uint64_t *seq)
{
    if (!j || !topic || (!payload && len > 0))
        return -EINVAL;
    size_t tlen = strnlen(topic, JOURNAL_TOPIC_MAX + 1);
    if (tlen == 0)
        return -EINVAL;
    if (tlen > JOURNAL_TOPIC_MAX || len > JOURNAL_PAYLOAD_MAX)
        return -EMSGSIZE;

    /* Header, topic and payload in one buffer: one write, one fsync. */
    size_t total = JOURNAL_HDR_LEN + tlen + len;
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, JOURNAL_MAGIC, 4);
    put_le32(buf + 4, (uint32_t)tlen);
    put_le32(buf + 8, (uint32_t)len);
    memcpy(buf + JOURNAL_HDR_LEN, topic, tlen);
    if (len > 0)
        memcpy(buf + JOURNAL_HDR_LEN + tlen, payload, len);
    put_le32(buf + 12, crc32_update(0, buf + JOURNAL_HDR_LEN, tlen + len));

    int ret;
    char name[JOURNAL_NAME_MAX], tmp[JOURNAL_NAME_MAX];
    pthread_mutex_lock(&j->lock);
    if (j->next > j->reserved) {
        ret = seq_reserve(j, j->next - 1 + JOURNAL_SEQ_BLOCK);
        if (ret < 0)
            goto out;
    }
    /* A failed append burns its seq: gaps are harmless, reuse is not. */
    uint64_t s = j->next++;
    make_name(name, sizeof(name), s, ".rec");
    make_name(tmp, sizeof(tmp), s, ".tmp");
    ret = write_file_durable(j->pendfd, tmp, name, buf, total, NULL, 0);
    if (ret < 0) {
        log_error("journal: append to %s/pending: %s", j->dir, strerror(-ret));
        goto out;
    }
    if (seq)
        *seq = s;

out:
    pthread_mutex_unlock(&j->lock);
    free(buf);
    return ret;
}

int journal_done(struct journal *j, uint64_t seq)
{
    if (!j || seq == 0)
        return -EINVAL;
    char name[JOURNAL_NAME_MAX];
    make_name(name, sizeof(name), seq, ".rec");

    int ret = 0;
    pthread_mutex_lock(&j->lock);
    if (unlinkat(j->pendfd, name, 0) < 0) {
        ret = -errno;
        if (ret != -ENOENT)
            log_error("journal: done %s: %s", name, strerror(-ret));
        goto out;
    }
    make_name(name, sizeof(name), seq, ".started");
    unlinkat(j->pendfd, name, 0);
    make_name(name, sizeof(name), seq, ".result");
    unlinkat(j->pendfd, name, 0);
    /* Durable removal: a done command replayed after a crash would run
     * twice (an SMS sent twice). */
    if (fsync(j->pendfd) < 0) {
        ret = -errno;
        log_error("journal: fsync %s/pending: %s", j->dir, strerror(-ret));
    }

out:
    pthread_mutex_unlock(&j->lock);
    return ret;
}

/* Reads a side file of at most max bytes: 0, or -errno (-ENOENT: none). */
static int read_side(struct journal *j, uint64_t seq, const char *suffix, size_t max,
                     uint8_t **out, size_t *len)
{
    char name[JOURNAL_NAME_MAX];
    struct stat st;
    int ret = 0;

    *out = NULL;
    make_name(name, sizeof(name), seq, suffix);
    int fd = openat(j->pendfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
    } else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        ret = -EBADMSG;
    } else {
        *len = (size_t)st.st_size;
        *out = malloc(*len + 1);
        ret = *out ? read_all(fd, *out, *len) : -ENOMEM;
        if (ret < 0) {
            free(*out);
            *out = NULL;
        }
    }
    close(fd);
    return ret;
}

static int write_side(struct journal *j, uint64_t seq, const char *suffix, const char *tmp_suffix,
                      const void *a, size_t alen, const void *b, size_t blen)
{
    char name[JOURNAL_NAME_MAX], tmp[JOURNAL_NAME_MAX];

    make_name(name, sizeof(name), seq, suffix);
    make_name(tmp, sizeof(tmp), seq, tmp_suffix);
    pthread_mutex_lock(&j->lock);
    int ret = write_file_durable(j->pendfd, tmp, name, a, alen, b, blen);
    pthread_mutex_unlock(&j->lock);
    if (ret < 0)
        log_error("journal: %s of %" PRIu64 ": %s", suffix + 1, seq, strerror(-ret));
    return ret;
}

int journal_started(struct journal *j, uint64_t seq, unsigned part)
{
    uint8_t v[4];

    if (!j || seq == 0 || part == 0)
        return -EINVAL;
    put_le32(v, part);
    return write_side(j, seq, ".started", ".stmp", v, sizeof(v), NULL, 0);
}

unsigned journal_started_part(struct journal *j, uint64_t seq)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    unsigned part = 0;

    pthread_mutex_lock(&j->lock);
    int ret = read_side(j, seq, ".started", 4, &buf, &len);
    pthread_mutex_unlock(&j->lock);
    if (ret == 0)
        /* An empty mark (a journal of an earlier version) is part 1. */
        part = len == 4 && get_le32(buf) > 0 ? get_le32(buf) : 1;
    else if (ret != -ENOENT)
        part = 1;       /* unreadable: assume the worst, never run it again */
    free(buf);
    return part;
}

bool journal_is_started(struct journal *j, uint64_t seq)
{
    return journal_started_part(j, seq) > 0;
}

int journal_result(struct journal *j, uint64_t seq, const void *blob, size_t len)
{
    uint8_t hdr[RESULT_HDR_LEN];

    if (!j || seq == 0 || (!blob && len > 0))
        return -EINVAL;
    if (len > JOURNAL_PAYLOAD_MAX)
        return -EMSGSIZE;
    memcpy(hdr, RESULT_MAGIC, 4);
    put_le32(hdr + 4, (uint32_t)len);
    put_le32(hdr + 8, crc32_update(0, blob, len));
    return write_side(j, seq, ".result", ".rtmp", hdr, sizeof(hdr), blob, len);
}

int journal_result_load(struct journal *j, uint64_t seq, uint8_t **blob, size_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0;

    *blob = NULL;
    *len = 0;
    pthread_mutex_lock(&j->lock);
    int ret = read_side(j, seq, ".result", RESULT_HDR_LEN + JOURNAL_PAYLOAD_MAX, &buf, &n);
    pthread_mutex_unlock(&j->lock);
    if (ret < 0)
        return ret;
    if (n < RESULT_HDR_LEN || memcmp(buf, RESULT_MAGIC, 4) != 0 ||
        get_le32(buf + 4) != n - RESULT_HDR_LEN ||
        crc32_update(0, buf + RESULT_HDR_LEN, n - RESULT_HDR_LEN) != get_le32(buf + 8)) {
        log_warn("journal: the stored result of %" PRIu64 " is corrupt", seq);
        free(buf);
        return -EBADMSG;
    }
    memmove(buf, buf + RESULT_HDR_LEN, n - RESULT_HDR_LEN);
    *blob = buf;
    *len = n - RESULT_HDR_LEN;
    return 0;
}

/* ---- published ids ---- */

static bool id_ok(const char *id)
{
    size_t n = strnlen(id, PUBLISHED_ID_MAX + 1);

    if (n == 0 || n > PUBLISHED_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

static void pub_add(struct journal *j, const char *id)
{
    size_t slot = (j->pub_head + j->n_pub) % JOURNAL_PUBLISHED_MAX;

    if (j->n_pub == JOURNAL_PUBLISHED_MAX) {
        slot = j->pub_head;     /* the oldest goes */
        j->pub_head = (j->pub_head + 1) % JOURNAL_PUBLISHED_MAX;
    } else {
        j->n_pub++;
    }
    snprintf(j->pub[slot], sizeof(j->pub[slot]), "%s", id);
}

/* At open; a missing or damaged file only means fewer ids. */
static void pub_load(struct journal *j)
{
    char line[PUBLISHED_ID_MAX + 8];
    int fd = openat(j->dirfd, PUBLISHED_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;

    if (!f) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (id_ok(line))
            pub_add(j, line);
    }
    fclose(f);
}

int journal_mark_published(struct journal *j, const char *id)
{
    char *text;
    size_t len = 0;
    int ret;

    if (!j || !id || !id_ok(id))
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    pub_add(j, id);
    text = malloc((size_t)JOURNAL_PUBLISHED_MAX * (PUBLISHED_ID_MAX + 1));
    if (!text) {
        ret = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < j->n_pub; i++) {
        const char *s = j->pub[(j->pub_head + i) % JOURNAL_PUBLISHED_MAX];
        size_t n = strlen(s);

        memcpy(text + len, s, n);
        text[len + n] = '\n';
        len += n + 1;
    }
    ret = write_file_durable(j->dirfd, PUBLISHED_FILE ".tmp", PUBLISHED_FILE, text, len, NULL, 0);
    if (ret < 0)
        log_error("journal: %s/%s: %s", j->dir, PUBLISHED_FILE, strerror(-ret));
    free(text);
out:
    pthread_mutex_unlock(&j->lock);
    return ret;
}

bool journal_was_published(struct journal *j, const char *id)
{
    bool found = false;

    if (!j || !id)
        return false;
    pthread_mutex_lock(&j->lock);
    for (size_t i = 0; i < j->n_pub && !found; i++)
        found = strcmp(j->pub[(j->pub_head + i) % JOURNAL_PUBLISHED_MAX], id) == 0;
    pthread_mutex_unlock(&j->lock);
    return found;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The pending seqs, sorted. Caller holds the lock. */
static int list_pending(struct journal *j, uint64_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = NULL;
    int ret = open_pending(j, &d);
    if (ret < 0)
        return ret;

    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (!parse_name(de->d_name, ".rec", &seq))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            uint64_t *p = realloc(seqs, ncap * sizeof(*p));
            if (!p) {
                ret = -ENOMEM;
                goto out;
            }
            seqs = p;
            cap = ncap;
        }
        seqs[n++] = seq;
    }
    if (n > 0) /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(seqs, n, sizeof(*seqs), cmp_u64);
    *out = seqs;
    *count = n;
    seqs = NULL;

out:
    free(seqs);
    closedir(d);
    return ret;
}

/* Reads and checks one record. 0, -ENOENT (done meanwhile), -EBADMSG
 * (corrupt: *why says how), or another -errno. *rec holds a NUL after the
 * topic, so the topic is a C string. */
static int read_record(struct journal *j, const char *name, uint8_t **rec, uint32_t *tlen,
                       uint32_t *plen, const char **why)
{
    *rec = NULL;
    *why = NULL;
    int ret;
    uint8_t *buf = NULL;
    int fd = openat(j->pendfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ELOOP)
            return -errno;
        *why = "a symbolic link";
        return -EBADMSG;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        ret = -EBADMSG;
        goto out;
    }
    if (st.st_size < JOURNAL_HDR_LEN) {
        *why = "truncated header";
        ret = -EBADMSG;
        goto out;
    }
    if ((uint64_t)st.st_size > JOURNAL_HDR_LEN + JOURNAL_TOPIC_MAX + JOURNAL_PAYLOAD_MAX) {
        *why = "too large";
        ret = -EBADMSG;
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    ret = read_all(fd, buf, size);
    if (ret < 0)
        goto out;

    ret = -EBADMSG;
    uint32_t t = get_le32(buf + 4), p = get_le32(buf + 8);
    if (memcmp(buf, JOURNAL_MAGIC, 4) != 0) {
        *why = "bad magic";
        goto out;
    }
    if (t == 0 || t > JOURNAL_TOPIC_MAX || p > JOURNAL_PAYLOAD_MAX) {
        *why = "bad lengths";
        goto out;
    }
    if ((uint64_t)JOURNAL_HDR_LEN + t + p != size) {
        *why = (uint64_t)JOURNAL_HDR_LEN + t + p > size ? "truncated" : "trailing bytes";
        goto out;
    }
    if (crc32_update(0, buf + JOURNAL_HDR_LEN, (size_t)t + p) != get_le32(buf + 12)) {
        *why = "checksum mismatch";
        goto out;
    }
    if (memchr(buf + JOURNAL_HDR_LEN, '\0', t)) {
        *why = "NUL in topic";
        goto out;
    }
    /* The topic becomes a C string: move the payload up by one byte. */
    memmove(buf + JOURNAL_HDR_LEN + t + 1, buf + JOURNAL_HDR_LEN + t, p);
    buf[JOURNAL_HDR_LEN + t] = '\0';
    *tlen = t;
    *plen = p;
    *rec = buf;
    buf = NULL;
    ret = 0;

out:
    free(buf);
    close(fd);
    return ret;
}

int journal_replay(struct journal *j, journal_replay_fn fn, void *ctx)
{
    if (!j || !fn)
        return -EINVAL;

    /* The list is taken under the lock; each record is read under the lock
     * and fn runs without it, so fn may call journal_done or
     * journal_append (records appended meanwhile are not replayed). */
    uint64_t *seqs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&j->lock);
    int ret = list_pending(j, &seqs, &n);
    pthread_mutex_unlock(&j->lock);
    if (ret < 0) {
        log_error("journal: listing %s/pending: %s", j->dir, strerror(-ret));
        return ret;
    }

    int replayed = 0;
    for (size_t i = 0; i < n; i++) {
        char name[JOURNAL_NAME_MAX];
        make_name(name, sizeof(name), seqs[i], ".rec");
        uint8_t *rec = NULL;
        uint32_t tlen = 0, plen = 0;
        const char *why = NULL;

        pthread_mutex_lock(&j->lock);
        ret = read_record(j, name, &rec, &tlen, &plen, &why);
        if (ret == -EBADMSG) {
            log_warn("journal: removing corrupt record %s/pending/%s (%s)", j->dir, name, why);
            if (unlinkat(j->pendfd, name, 0) == 0)
                fsync(j->pendfd);
        }
        pthread_mutex_unlock(&j->lock);

        if (ret == -ENOENT || ret == -EBADMSG)
            continue; /* done meanwhile, or corrupt and removed */
        if (ret < 0) {
            log_error("journal: reading %s/pending/%s: %s", j->dir, name, strerror(-ret));
            goto out;
        }
        fn(ctx, seqs[i], (const char *)rec + JOURNAL_HDR_LEN,
           rec + JOURNAL_HDR_LEN + tlen + 1, plen);
        free(rec);
        replayed++;
    }
    ret = replayed;

out:
    free(seqs);
    return ret;
}
