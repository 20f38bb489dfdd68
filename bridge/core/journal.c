/* Durable command journal: one append-only log, dir/journal.log.
 *
 * Why a log: the journal used to write a file per record and per mark,
 * each through tmp + fsync + rename + directory fsync, so a command cost
 * four to seven fsyncs. In a log, every entry written since the last
 * fdatasync is made durable by the next one, whoever calls it: a command
 * arriving on paho's thread and a started mark or a result on the loop's
 * share one flush when they meet (group commit).
 *
 * Entry (little endian), 28 bytes of header, then the body:
 *
 *   0  "M2L1"   magic and format version
 *   4  u8       type: R record, S started, T result, D done, P published
 *               id, H sequence high-water mark
 *   5  u8[3]    zero
 *   8  u64      seq (H: the highest seq given; P: 0)
 *  16  u32      a: R the topic length, S the part, else 0
 *  20  u32      b: R the payload length, T the blob length, P the id length
 *  24  u32      CRC-32 (IEEE) of bytes 0-23 and the body
 *  28           body: R topic then payload; T the blob; P the id
 *
 * Open reads the log from its start. The first entry that is short, has a
 * bad magic, absurd lengths or a bad CRC ends it: what follows is a write
 * torn by a crash (never acknowledged: nothing is acknowledged before the
 * fdatasync that covers it), and the file is cut there. Then the live
 * entries (H, the published ids, every pending record with its latest
 * started mark and result) are copied to journal.log.tmp, which is
 * fsync'd and renamed over the log (compaction). The same compaction runs
 * when done records make up most of a log larger than JOURNAL_COMPACT_MIN.
 *
 * A done mark is written but not flushed: it becomes durable with the
 * next flush or compaction. Lost in a crash, it only means a result
 * published again, which consumers match by its id.
 *
 * The whole state_dir is flock'd for the journal's lifetime: two bridges
 * sharing one would replay each other's commands.
 *
 * A journal of the earlier format (dir/pending/<seq>.rec with .started
 * and .result beside, dir/journal.seq, dir/published) is imported at
 * open, then its files are removed. */
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
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define LOG_FILE "journal.log"
#define LOG_TMP "journal.log.tmp"
#define LOG_MAGIC "M2L1"
#define HDR_LEN 28
#define JOURNAL_TOPIC_MAX 65535u
#define JOURNAL_PAYLOAD_MAX (1024u * 1024u)
#define ENTRY_MAX (HDR_LEN + JOURNAL_TOPIC_MAX + JOURNAL_PAYLOAD_MAX)
#define PUBLISHED_ID_MAX 200
/* Compaction rewrites the live entries: only worth it once the log is this
 * large and mostly done records (an SD card counts every write). */
#define JOURNAL_COMPACT_MIN (1024 * 1024)
/* Who waits for whom in a group commit. Two threads ask for flushes:
 * paho's, for each command it appends (messageArrived is serial and the
 * PUBACK follows the flush), and the loop's, for a started mark before the
 * modem gets the bytes and for results before they are published. One
 * flush covers both when they meet, so the thread that starts a flush
 * while the other side is busy (it asked for one at most COMMIT_BUSY_US
 * ago) waits up to COMMIT_WAIT_US for it. Each side keeps a credit of its
 * waits that were joined minus those that timed out, and stops waiting
 * while it is negative (one command at a time: the next comes only after
 * this result), trying again every COMMIT_PROBE-th time. A single
 * command, or a real module taking seconds per SMS, never waits. */
#define COMMIT_WAIT_US 1000
#define COMMIT_BUSY_US 2000
#define COMMIT_PROBE 8
#define COMMIT_CREDIT_MAX 4

/* Legacy format (import only). */
#define OLD_MAGIC "M2J1"
#define OLD_HDR_LEN 16
#define OLD_RESULT_MAGIC "M2R1"
#define OLD_RESULT_HDR_LEN 12
#define OLD_SEQ_DIGITS 20

enum {
    E_RECORD = 'R',
    E_STARTED = 'S',
    E_RESULT = 'T',
    E_DONE = 'D',
    E_PUBLISHED = 'P',
    E_HWM = 'H',
};

/* Who asks for flushes: paho's thread (appends) and the loop (marks). */
enum side { SIDE_APPEND, SIDE_LOOP, SIDE_NONE };

struct company {
    int64_t last_us;    /* the last request, CLOCK_MONOTONIC */
    uint64_t requests;
    int credit;         /* waits for the other side that it joined, minus timeouts */
    unsigned probe;
};

/* A pending record: where its entries are in the current log. */
struct pend {
    uint64_t seq;
    off_t rec_off;
    uint32_t rec_len;   /* whole entry */
    unsigned started;   /* the latest part marked, 0: none */
    off_t res_off;      /* 0: no result (offset 0 is always an H entry) */
    uint32_t res_len;
};

struct journal {
    pthread_mutex_t lock;
    pthread_cond_t synced_cv;
    int dirfd;          /* state_dir, flock'd */
    int fd;             /* journal.log */
    off_t end;          /* where the next entry goes */
    uint64_t next;      /* the seq the next append gets */
    uint64_t first;     /* the first seq of this run: older ones came before open */
    char *dir;          /* for log messages */

    /* Group commit: entries are numbered as written; synced is the last
     * one a finished fdatasync covers. One thread flushes at a time
     * (syncing), outside the lock; the others wait for it, then flush
     * again only if their entry came after its start. */
    uint64_t written, synced;
    uint64_t marked;    /* the last mark's number (journal_commit's target) */
    bool syncing;
    pthread_cond_t company_cv;  /* a side asked for a flush */
    struct company side[2];
    int64_t wait_us, busy_us;   /* COMMIT_WAIT_US, COMMIT_BUSY_US (tests change them) */

    int error;          /* sticky: after a failed fdatasync nothing is sure */
    uint64_t fsyncs;

    struct pend *pend;  /* sorted by seq */
    size_t n_pend, cap_pend;
    uint64_t live;      /* bytes of the entries a compaction would keep */
    size_t n_unfinished; /* pending records without a result: work ahead */

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
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0, -EIO when the file ends first (a torn tail), or -errno. */
static int pread_all(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Builds an entry in one malloc'd buffer (one pwrite). */
static uint8_t *entry_build(int type, uint64_t seq, uint32_t a, const void *p1, size_t l1,
                            const void *p2, size_t l2, uint32_t b, size_t *len)
{
    uint8_t *e = malloc(HDR_LEN + l1 + l2);

    if (!e)
        return NULL;
    memcpy(e, LOG_MAGIC, 4);
    e[4] = (uint8_t)type;
    e[5] = e[6] = e[7] = 0;
    put_le64(e + 8, seq);
    put_le32(e + 16, a);
    put_le32(e + 20, b);
    if (l1)
        memcpy(e + HDR_LEN, p1, l1);
    if (l2)
        memcpy(e + HDR_LEN + l1, p2, l2);
    uint32_t crc = crc32_update(0, e, 24);
    put_le32(e + 24, crc32_update(crc, e + HDR_LEN, l1 + l2));
    *len = HDR_LEN + l1 + l2;
    return e;
}

/* The body length an entry's header announces, or -1 when absurd. */
static int64_t body_len(const uint8_t *h)
{
    uint32_t a = get_le32(h + 16), b = get_le32(h + 20);

    if (memcmp(h, LOG_MAGIC, 4) != 0 || h[5] || h[6] || h[7])
        return -1;
    switch (h[4]) {
    case E_RECORD:
        if (a == 0 || a > JOURNAL_TOPIC_MAX || b > JOURNAL_PAYLOAD_MAX || get_le64(h + 8) == 0)
            return -1;
        return (int64_t)a + b;
    case E_RESULT:
        return b <= JOURNAL_PAYLOAD_MAX && get_le64(h + 8) ? (int64_t)b : -1;
    case E_PUBLISHED:
        return b > 0 && b <= PUBLISHED_ID_MAX && a == 0 ? (int64_t)b : -1;
    case E_STARTED:
        return a > 0 && b == 0 && get_le64(h + 8) ? 0 : -1;
    case E_DONE:
        return a == 0 && b == 0 && get_le64(h + 8) ? 0 : -1;
    case E_HWM:
        return a == 0 && b == 0 ? 0 : -1;
    default:
        return -1;
    }
}

/* Reads and checks the entry at off: 0 with *e malloc'd (header and body)
 * and *len its size; -EBADMSG with *why when it is not a whole valid
 * entry; -errno on a read error. */
static int entry_read(int fd, off_t off, uint8_t **e, size_t *len, const char **why)
{
    uint8_t h[HDR_LEN];
    int ret;

    *e = NULL;
    *why = NULL;
    ret = pread_all(fd, h, HDR_LEN, off);
    if (ret == -EIO) {
        *why = "truncated header";
        return -EBADMSG;
    }
    if (ret < 0)
        return ret;
    int64_t bl = body_len(h);
    if (bl < 0) {
        *why = memcmp(h, LOG_MAGIC, 4) ? "bad magic" : "bad type or lengths";
        return -EBADMSG;
    }
    uint8_t *buf = malloc(HDR_LEN + (size_t)bl + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, h, HDR_LEN);
    ret = bl ? pread_all(fd, buf + HDR_LEN, (size_t)bl, off + HDR_LEN) : 0;
    if (ret == -EIO) {
        *why = "truncated";
        ret = -EBADMSG;
    } else if (ret == 0 && crc32_update(crc32_update(0, buf, 24), buf + HDR_LEN, (size_t)bl) !=
                               get_le32(buf + 24)) {
        *why = "checksum mismatch";
        ret = -EBADMSG;
    } else if (ret == 0 && buf[4] == E_RECORD && memchr(buf + HDR_LEN, '\0', get_le32(buf + 16))) {
        *why = "NUL in topic";
        ret = -EBADMSG;
    }
    if (ret < 0) {
        free(buf);
        return ret;
    }
    *e = buf;
    *len = HDR_LEN + (size_t)bl;
    return 0;
}

/* ---- the pending index ---- */

static struct pend *pend_find(struct journal *j, uint64_t seq)
{
    size_t lo = 0, hi = j->n_pend;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->pend[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < j->n_pend && j->pend[lo].seq == seq ? &j->pend[lo] : NULL;
}

/* Inserted in order; appends come with increasing seqs, so at the end. */
static int pend_add(struct journal *j, uint64_t seq, off_t off, uint32_t len)
{
    size_t i = j->n_pend;

    if (j->n_pend == j->cap_pend) {
        size_t cap = j->cap_pend ? j->cap_pend * 2 : 16;
        struct pend *p = realloc(j->pend, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        j->pend = p;
        j->cap_pend = cap;
    }
    while (i > 0 && j->pend[i - 1].seq > seq)
        i--;
    memmove(&j->pend[i + 1], &j->pend[i], (j->n_pend - i) * sizeof(*j->pend));
    j->pend[i] = (struct pend){ .seq = seq, .rec_off = off, .rec_len = len };
    j->n_pend++;
    j->n_unfinished++;
    j->live += len;
    return 0;
}

static void pend_remove(struct journal *j, struct pend *p)
{
    j->live -= p->rec_len + (p->started ? HDR_LEN : 0) + p->res_len;
    if (!p->res_len)
        j->n_unfinished--;
    size_t i = (size_t)(p - j->pend);
    memmove(&j->pend[i], &j->pend[i + 1], (j->n_pend - i - 1) * sizeof(*j->pend));
    j->n_pend--;
    /* A burst may have grown the index: give the memory back once idle. */
    if (j->n_pend == 0 && j->cap_pend > 64) {
        free(j->pend);
        j->pend = NULL;
        j->cap_pend = 0;
    }
}

/* ---- published ids ---- */

static bool id_ok(const char *id, size_t n)
{
    if (n == 0 || n > PUBLISHED_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

static void pub_add(struct journal *j, const char *id, size_t n)
{
    size_t slot = (j->pub_head + j->n_pub) % JOURNAL_PUBLISHED_MAX;

    if (j->n_pub == JOURNAL_PUBLISHED_MAX) {
        slot = j->pub_head;     /* the oldest goes */
        j->pub_head = (j->pub_head + 1) % JOURNAL_PUBLISHED_MAX;
    } else {
        j->n_pub++;
    }
    memcpy(j->pub[slot], id, n);
    j->pub[slot][n] = '\0';
}

/* ---- applying an entry to the in-memory state (open and live) ---- */

static int apply(struct journal *j, const uint8_t *e, size_t len, off_t off)
{
    uint64_t seq = get_le64(e + 8);
    struct pend *p;

    if (e[4] != E_PUBLISHED && seq >= j->next)
        j->next = seq + 1;
    switch (e[4]) {
    case E_RECORD:
        /* A duplicate (an import repeated after a crash) keeps the first. */
        return pend_find(j, seq) ? 0 : pend_add(j, seq, off, (uint32_t)len);
    case E_STARTED:
        if ((p = pend_find(j, seq)) != NULL) {
            if (!p->started)
                j->live += HDR_LEN;
            p->started = get_le32(e + 16);
        }
        return 0;
    case E_RESULT:
        if ((p = pend_find(j, seq)) != NULL) {
            if (!p->res_len)
                j->n_unfinished--;
            j->live += len - p->res_len;
            p->res_off = off;
            p->res_len = (uint32_t)len;
        }
        return 0;
    case E_DONE:
        if ((p = pend_find(j, seq)) != NULL)
            pend_remove(j, p);
        return 0;
    case E_PUBLISHED:
        if (id_ok((const char *)e + HDR_LEN, get_le32(e + 20)))
            pub_add(j, (const char *)e + HDR_LEN, get_le32(e + 20));
        return 0;
    default:
        return 0;   /* H: only raised next above */
    }
}

/* ---- writing and group commit ---- */

/* Appends an entry and applies it. Caller holds the lock. *ticket (optional)
 * is what commit_locked needs to make it durable. */
static int write_locked(struct journal *j, uint8_t *e, size_t len, uint64_t *ticket)
{
    if (j->error)
        return j->error;
    int ret = pwrite_all(j->fd, e, len, j->end);
    if (ret < 0) {
        /* Cut a partial entry off, so the next one is not written after
         * garbage (open would stop reading there). */
        if (ftruncate(j->fd, j->end) < 0)
            j->error = -EIO;
        log_error("journal: writing %s/%s: %s", j->dir, LOG_FILE, strerror(-ret));
        return ret;
    }
    ret = apply(j, e, len, j->end);
    if (ret < 0)
        return ret;     /* on disk: the next open knows it */
    j->end += (off_t)len;
    j->written++;
    if (ticket)
        *ticket = j->written;
    return 0;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A thread on side asks for a flush: wakes a leader of the other side
 * waiting for company. */
static void note_request(struct journal *j, enum side side)
{
    if (side == SIDE_NONE)
        return;
    j->side[side].last_us = mono_us();
    j->side[side].requests++;
    pthread_cond_broadcast(&j->company_cv);
}

/* A leader about to flush for side: gives the other side up to
 * COMMIT_WAIT_US to ask for a flush too and share it (see there). */
static void wait_for_company(struct journal *j, enum side side)
{
    if (side == SIDE_NONE)
        return;
    struct company *me = &j->side[side], *other = &j->side[!side];
    int64_t now = mono_us();
    uint64_t seen = other->requests;

    if (!other->last_us || now - other->last_us > j->busy_us)
        return;
    /* The loop flushes again only for a command besides this append's. */
    if (side == SIDE_APPEND && j->n_unfinished < 2)
        return;
    /* Commands sent one at a time come only after the previous result:
     * the wait then always times out. Waits that keep timing out stop,
     * but every COMMIT_PROBE-th is tried again. */
    if (me->credit < 0 && ++me->probe % COMMIT_PROBE != 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + j->wait_us * 1000;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    while (other->requests == seen &&
           pthread_cond_timedwait(&j->company_cv, &j->lock, &until) == 0)
        ;
    bool joined = other->requests != seen;
    me->credit += joined ? 1 : -1;
    me->credit = me->credit > COMMIT_CREDIT_MAX    ? COMMIT_CREDIT_MAX
                 : me->credit < -COMMIT_CREDIT_MAX ? -COMMIT_CREDIT_MAX
                                                   : me->credit;
}

/* Returns once the entry numbered ticket is durable. Caller holds the lock;
 * it is released during the fdatasync. side: who asks (wait_for_company). */
static int commit_locked(struct journal *j, uint64_t ticket, enum side side)
{
    if (j->synced < ticket)
        note_request(j, side);
    while (j->synced < ticket) {
        if (j->error)
            return j->error;
        if (j->syncing) {
            pthread_cond_wait(&j->synced_cv, &j->lock);
            continue;
        }
        j->syncing = true;
        wait_for_company(j, side);  /* the lock is released meanwhile */
        uint64_t target = j->written;
        int fd = j->fd;
        pthread_mutex_unlock(&j->lock);
        int r = fdatasync(fd);
        int err = errno;
        pthread_mutex_lock(&j->lock);
        j->syncing = false;
        j->fsyncs++;
        if (r < 0) {
            /* The kernel may have dropped the pages that failed: a later
             * fdatasync could succeed without them. Refuse from now on. */
            j->error = -err;
            log_error("journal: fdatasync %s/%s: %s; the journal stops recording", j->dir,
                      LOG_FILE, strerror(err));
        } else if (target > j->synced) {
            j->synced = target;
        }
        pthread_cond_broadcast(&j->synced_cv);
    }
    return 0;
}

/* Copies entry [off, off+len) of the current log to fd at *at. */
static int copy_entry(struct journal *j, int fd, off_t off, uint32_t len, off_t *at)
{
    uint8_t *buf = malloc(len);
    int ret;

    if (!buf)
        return -ENOMEM;
    ret = pread_all(j->fd, buf, len, off);
    if (ret == 0)
        ret = pwrite_all(fd, buf, len, *at);
    free(buf);
    if (ret == 0)
        *at += len;
    return ret;
}

static int put_entry(int fd, int type, uint64_t seq, uint32_t a, const void *body, size_t blen,
                     off_t *at)
{
    size_t len;
    uint8_t *e = entry_build(type, seq, a, body, blen, NULL, 0, (uint32_t)blen, &len);
    int ret;

    if (!e)
        return -ENOMEM;
    ret = pwrite_all(fd, e, len, *at);
    free(e);
    if (ret == 0)
        *at += (off_t)len;
    return ret;
}

/* Rewrites the log with only its live entries: tmp, fsync, rename, fsync
 * dir. Caller holds the lock and no flush runs. */
static int compact_locked(struct journal *j)
{
    struct pend *np = NULL;
    off_t at = 0;
    int ret, fd;

    if (j->error)
        return j->error;
    fd = openat(j->dirfd, LOG_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    if (j->n_pend && !(np = malloc(j->n_pend * sizeof(*np)))) {
        ret = -ENOMEM;
        goto err;
    }
    /* First the high-water mark: the seqs must go on increasing when every
     * record was done. */
    ret = put_entry(fd, E_HWM, j->next - 1, 0, NULL, 0, &at);
    for (size_t i = 0; ret == 0 && i < j->n_pub; i++) {
        const char *id = j->pub[(j->pub_head + i) % JOURNAL_PUBLISHED_MAX];
        ret = put_entry(fd, E_PUBLISHED, 0, 0, id, strlen(id), &at);
    }
    for (size_t i = 0; ret == 0 && i < j->n_pend; i++) {
        const struct pend *p = &j->pend[i];
        np[i] = *p;
        np[i].rec_off = at;
        ret = copy_entry(j, fd, p->rec_off, p->rec_len, &at);
        if (ret == 0 && p->started)
            ret = put_entry(fd, E_STARTED, p->seq, p->started, NULL, 0, &at);
        if (ret == 0 && p->res_len) {
            np[i].res_off = at;
            ret = copy_entry(j, fd, p->res_off, p->res_len, &at);
        }
    }
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    j->fsyncs++;
    if (ret == 0 && renameat(j->dirfd, LOG_TMP, j->dirfd, LOG_FILE) < 0)
        ret = -errno;
    if (ret < 0)
        goto err;
    j->fsyncs++;
    if (fsync(j->dirfd) < 0) {
        /* Renamed, perhaps not durably: the old log is still valid. */
        log_warn("journal: fsync %s: %s", j->dir, strerror(errno));
    }
    close(j->fd);
    j->fd = fd;
    j->end = at;
    if (j->n_pend)
        memcpy(j->pend, np, j->n_pend * sizeof(*np));
    free(np);
    /* Everything written so far is in the new file, which is durable. */
    j->synced = j->written;
    j->live = (uint64_t)at;
    return 0;

err:
    free(np);
    close(fd);
    unlinkat(j->dirfd, LOG_TMP, 0);
    log_error("journal: compacting %s/%s: %s", j->dir, LOG_FILE, strerror(-ret));
    return ret;
}

/* ---- the earlier format ---- */

static bool old_name(const char *name, const char *suffix, uint64_t *seq)
{
    uint64_t v = 0;
    for (int i = 0; i < OLD_SEQ_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (strcmp(name + OLD_SEQ_DIGITS, suffix) != 0 || v == 0)
        return false;
    *seq = v;
    return true;
}

/* A small file in dirfd, at most max bytes: 0 with *out malloc'd, or -errno. */
static int slurp(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len)
{
    struct stat st;
    int ret, fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    *out = NULL;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        ret = -errno;
    else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
        ret = -EBADMSG;
    else if (!(*out = malloc((size_t)st.st_size + 1)))
        ret = -ENOMEM;
    else
        ret = pread_all(fd, *out, (size_t)st.st_size, 0);
    if (ret < 0) {
        free(*out);
        *out = NULL;
    } else {
        *len = (size_t)st.st_size;
    }
    close(fd);
    return ret;
}

static int import_entry(struct journal *j, int type, uint64_t seq, uint32_t a, const void *p1,
                        size_t l1, const void *p2, size_t l2, uint32_t b)
{
    size_t len;
    uint8_t *e = entry_build(type, seq, a, p1, l1, p2, l2, b, &len);
    int ret = e ? write_locked(j, e, len, NULL) : -ENOMEM;

    free(e);
    return ret;
}

/* One legacy record with its marks. Corrupt ones are dropped, as the
 * earlier format did at replay. */
static int import_one(struct journal *j, int pendfd, const char *name, uint64_t seq)
{
    char side[OLD_SEQ_DIGITS + 16];
    uint8_t *buf = NULL;
    size_t n = 0;
    int ret = slurp(pendfd, name, OLD_HDR_LEN + JOURNAL_TOPIC_MAX + JOURNAL_PAYLOAD_MAX, &buf, &n);

    if (ret < 0 || n < OLD_HDR_LEN || memcmp(buf, OLD_MAGIC, 4) != 0 ||
        get_le32(buf + 4) == 0 || get_le32(buf + 4) > JOURNAL_TOPIC_MAX ||
        get_le32(buf + 8) > JOURNAL_PAYLOAD_MAX ||
        (uint64_t)OLD_HDR_LEN + get_le32(buf + 4) + get_le32(buf + 8) != n ||
        crc32_update(0, buf + OLD_HDR_LEN, n - OLD_HDR_LEN) != get_le32(buf + 12) ||
        memchr(buf + OLD_HDR_LEN, '\0', get_le32(buf + 4))) {
        log_warn("journal: dropping corrupt record %s/pending/%s", j->dir, name);
        free(buf);
        return ret == -ENOMEM ? ret : 0;
    }
    uint32_t t = get_le32(buf + 4), p = get_le32(buf + 8);
    ret = import_entry(j, E_RECORD, seq, t, buf + OLD_HDR_LEN, t, buf + OLD_HDR_LEN + t, p, p);
    free(buf);
    snprintf(side, sizeof(side), "%020" PRIu64 ".started", seq);
    if (ret == 0 && slurp(pendfd, side, 4, &buf, &n) != -ENOENT) {
        /* Empty or unreadable: assume the worst, never run it again. */
        uint32_t part = buf && n == 4 && get_le32(buf) ? get_le32(buf) : 1;
        ret = import_entry(j, E_STARTED, seq, part, NULL, 0, NULL, 0, 0);
    }
    free(buf);
    buf = NULL;
    snprintf(side, sizeof(side), "%020" PRIu64 ".result", seq);
    if (ret == 0 &&
        slurp(pendfd, side, OLD_RESULT_HDR_LEN + JOURNAL_PAYLOAD_MAX, &buf, &n) == 0 &&
        n >= OLD_RESULT_HDR_LEN && memcmp(buf, OLD_RESULT_MAGIC, 4) == 0 &&
        get_le32(buf + 4) == n - OLD_RESULT_HDR_LEN &&
        crc32_update(0, buf + OLD_RESULT_HDR_LEN, n - OLD_RESULT_HDR_LEN) == get_le32(buf + 8))
        ret = import_entry(j, E_RESULT, seq, 0, buf + OLD_RESULT_HDR_LEN,
                           n - OLD_RESULT_HDR_LEN, NULL, 0, (uint32_t)(n - OLD_RESULT_HDR_LEN));
    free(buf);
    return ret;
}

/* Imports dir/pending, dir/journal.seq and dir/published into the log (not
 * yet durable: the compaction after it is). *found: whether there was any. */
static int import_old(struct journal *j, bool *found)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int ret = 0;

    *found = false;
    if (slurp(j->dirfd, "journal.seq", 31, &buf, &n) == 0) {
        buf[n] = '\0';
        uint64_t v = strtoull((const char *)buf, NULL, 10);
        if (v >= j->next)
            j->next = v + 1;
        *found = true;
    }
    free(buf);
    buf = NULL;
    if (slurp(j->dirfd, "published", (size_t)JOURNAL_PUBLISHED_MAX * (PUBLISHED_ID_MAX + 1), &buf,
              &n) == 0) {
        char *save = NULL;
        buf[n] = '\0';
        for (char *id = strtok_r((char *)buf, "\n", &save); id; id = strtok_r(NULL, "\n", &save))
            if (id_ok(id, strlen(id)))
                pub_add(j, id, strlen(id));
        *found = true;
    }
    free(buf);

    int pendfd = openat(j->dirfd, "pending", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pendfd < 0)
        return 0;
    *found = true;
    DIR *d = fdopendir(dup(pendfd));
    if (!d) {
        close(pendfd);
        return -errno;
    }
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        uint64_t seq;
        if (old_name(de->d_name, ".rec", &seq))
            ret = import_one(j, pendfd, de->d_name, seq);
    }
    closedir(d);
    close(pendfd);
    return ret;
}

/* Once the imported entries are durable in the log. */
static void remove_old(struct journal *j)
{
    int pendfd = openat(j->dirfd, "pending", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pendfd >= 0) {
        DIR *d = fdopendir(dup(pendfd));
        struct dirent *de;
        uint64_t seq;
        while (d && (de = readdir(d)) != NULL)
            if (old_name(de->d_name, ".rec", &seq) || old_name(de->d_name, ".started", &seq) ||
                old_name(de->d_name, ".result", &seq) || old_name(de->d_name, ".tmp", &seq) ||
                old_name(de->d_name, ".stmp", &seq) || old_name(de->d_name, ".rtmp", &seq))
                unlinkat(pendfd, de->d_name, 0);
        if (d)
            closedir(d);
        close(pendfd);
        if (unlinkat(j->dirfd, "pending", AT_REMOVEDIR) < 0 && errno != ENOENT)
            log_warn("journal: %s/pending holds files that are not the journal's; left there",
                     j->dir);
    }
    unlinkat(j->dirfd, "journal.seq", 0);
    unlinkat(j->dirfd, "journal.seq.tmp", 0);
    unlinkat(j->dirfd, "published", 0);
    unlinkat(j->dirfd, "published.tmp", 0);
    fsync(j->dirfd);
}

/* ---- API ---- */

/* Reads the log from its start into the in-memory state; cuts a torn or
 * corrupt tail off. */
static int load(struct journal *j)
{
    off_t off = 0;

    for (;;) {
        uint8_t *e = NULL;
        size_t len = 0;
        const char *why = NULL;
        int ret = entry_read(j->fd, off, &e, &len, &why);

        if (ret == -EBADMSG) {
            struct stat st;
            if (fstat(j->fd, &st) == 0 && st.st_size > off) {
                log_warn("journal: %s/%s: %s at byte %lld; dropping the %lld bytes from there "
                         "(a write cut short by a crash)",
                         j->dir, LOG_FILE, why, (long long)off, (long long)(st.st_size - off));
                if (ftruncate(j->fd, off) < 0)
                    return -errno;
            }
            break;
        }
        if (ret < 0)
            return ret;
        ret = apply(j, e, len, off);
        free(e);
        if (ret < 0)
            return ret;
        off += (off_t)len;
    }
    j->end = off;
    return 0;
}

int journal_open(const char *dir, struct journal **out)
{
    if (!dir || !*dir || !out)
        return -EINVAL;
    *out = NULL;

    int ret;
    bool old = false;
    struct journal *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->dirfd = -1;
    j->fd = -1;
    j->next = 1;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->synced_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->company_cv, &ca);
    j->wait_us = COMMIT_WAIT_US;
    j->busy_us = COMMIT_BUSY_US;
    pthread_condattr_destroy(&ca);
    j->dir = strdup(dir);
    if (!j->dir) {
        ret = -ENOMEM;
        goto err;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        log_error("journal: cannot create %s: %s", dir, strerror(-ret));
        goto err;
    }
    j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        ret = -errno;
        log_error("journal: %s: %s", dir, strerror(-ret));
        goto err;
    }
    if (flock(j->dirfd, LOCK_EX | LOCK_NB) < 0) {
        ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
        log_error("journal: %s is in use by another modem2mqtt (one state_dir per instance)",
                  dir);
        goto err;
    }
    j->fd = openat(j->dirfd, LOG_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (j->fd < 0) {
        ret = -errno;
        log_error("journal: %s/%s: %s", dir, LOG_FILE, strerror(-ret));
        goto err;
    }
    unlinkat(j->dirfd, LOG_TMP, 0);     /* a compaction cut short */
    ret = load(j);
    if (ret == 0)
        ret = import_old(j, &old);
    /* Starts every run with a compact, durable log (and a durable
     * directory entry for it). */
    if (ret == 0)
        ret = compact_locked(j);
    if (ret < 0) {
        log_error("journal: %s/%s: %s", dir, LOG_FILE, strerror(-ret));
        goto err;
    }
    if (old) {
        log_info("journal: imported %zu pending record(s) of the earlier format in %s",
                 j->n_pend, dir);
        remove_old(j);
    }
    j->first = j->next;
    log_debug("journal: %s open, next seq %" PRIu64 ", %zu pending", dir, j->next, j->n_pend);
    *out = j;
    return 0;

err:
    journal_close(j);
    return ret;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    if (j->fd >= 0) {
        /* Lazy done marks become durable now: a clean stop republishes
         * nothing. */
        pthread_mutex_lock(&j->lock);
        commit_locked(j, j->written, SIDE_NONE);
        pthread_mutex_unlock(&j->lock);
        close(j->fd);
    }
    if (j->dirfd >= 0)
        close(j->dirfd); /* releases the flock */
    pthread_cond_destroy(&j->synced_cv);
    pthread_cond_destroy(&j->company_cv);
    pthread_mutex_destroy(&j->lock);
    free(j->pend);
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

    size_t elen;
    uint64_t ticket = 0;
    pthread_mutex_lock(&j->lock);
    /* A failed append burns its seq: gaps are harmless, reuse is not. */
    uint64_t s = j->next;
    uint8_t *e = entry_build(E_RECORD, s, (uint32_t)tlen, topic, tlen, payload, len,
                             (uint32_t)len, &elen);
    int ret = e ? write_locked(j, e, elen, &ticket) : -ENOMEM;
    j->next = s + 1;
    if (ret == 0)
        ret = commit_locked(j, ticket, SIDE_APPEND);
    pthread_mutex_unlock(&j->lock);
    free(e);
    if (ret < 0) {
        log_error("journal: append to %s/%s: %s", j->dir, LOG_FILE, strerror(-ret));
        return ret;
    }
    if (seq)
        *seq = s;
    return 0;
}

/* A mark for a pending seq; durable on return when sync. */
static int mark(struct journal *j, int type, uint64_t seq, uint32_t a, const void *body,
                size_t blen, bool sync)
{
    size_t len;
    uint64_t ticket = 0;
    uint8_t *e = entry_build(type, seq, a, body, blen, NULL, 0, (uint32_t)blen, &len);
    int ret;

    if (!e)
        return -ENOMEM;
    pthread_mutex_lock(&j->lock);
    if (type != E_PUBLISHED && !pend_find(j, seq))
        ret = -ENOENT;
    else
        ret = write_locked(j, e, len, &ticket);
    if (ret == 0)
        j->marked = ticket;
    if (ret == 0 && sync)
        ret = commit_locked(j, ticket, SIDE_LOOP);
    pthread_mutex_unlock(&j->lock);
    free(e);
    return ret;
}

/* Bounds the log: rewritten once it is large and mostly dead entries. */
static void maybe_compact(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    if (j->end > JOURNAL_COMPACT_MIN && (uint64_t)j->end > 4 * j->live) {
        while (j->syncing)      /* the flushing thread uses the old fd */
            pthread_cond_wait(&j->synced_cv, &j->lock);
        compact_locked(j);      /* on failure the old log stays in use */
    }
    pthread_mutex_unlock(&j->lock);
}

int journal_done(struct journal *j, uint64_t seq)
{
    if (!j || seq == 0)
        return -EINVAL;
    int ret = mark(j, E_DONE, seq, 0, NULL, 0, false);
    if (ret < 0) {
        if (ret != -ENOENT)
            log_error("journal: done %" PRIu64 ": %s", seq, strerror(-ret));
        return ret;
    }
    maybe_compact(j);
    return 0;
}

int journal_started(struct journal *j, uint64_t seq, unsigned part)
{
    if (!j || seq == 0 || part == 0)
        return -EINVAL;
    int ret = mark(j, E_STARTED, seq, part, NULL, 0, true);
    if (ret < 0)
        log_error("journal: started mark of %" PRIu64 ": %s", seq, strerror(-ret));
    return ret;
}

unsigned journal_started_part(struct journal *j, uint64_t seq)
{
    pthread_mutex_lock(&j->lock);
    const struct pend *p = pend_find(j, seq);
    unsigned part = p ? p->started : 0;
    pthread_mutex_unlock(&j->lock);
    return part;
}

bool journal_is_started(struct journal *j, uint64_t seq)
{
    return journal_started_part(j, seq) > 0;
}

int journal_result(struct journal *j, uint64_t seq, const void *blob, size_t len)
{
    if (!j || seq == 0 || (!blob && len > 0))
        return -EINVAL;
    if (len > JOURNAL_PAYLOAD_MAX)
        return -EMSGSIZE;
    int ret = mark(j, E_RESULT, seq, 0, blob, len, false);
    if (ret < 0)
        log_error("journal: result of %" PRIu64 ": %s", seq, strerror(-ret));
    return ret;
}

int journal_commit(struct journal *j)
{
    if (!j)
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    int ret = commit_locked(j, j->marked, SIDE_LOOP);
    pthread_mutex_unlock(&j->lock);
    return ret;
}

void journal_set_commit_wait(struct journal *j, int64_t wait_us, int64_t busy_us)
{
    pthread_mutex_lock(&j->lock);
    j->wait_us = wait_us;
    j->busy_us = busy_us;
    pthread_mutex_unlock(&j->lock);
}

int journal_commit_soon(struct journal *j)
{
    if (!j)
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    int ret;
    if (j->synced >= j->marked)
        ret = j->error;
    else if (j->side[SIDE_APPEND].last_us &&
             mono_us() - j->side[SIDE_APPEND].last_us <= j->busy_us &&
             j->side[SIDE_LOOP].credit >= 0)
        ret = -EAGAIN;
    else
        ret = commit_locked(j, j->marked, SIDE_LOOP);
    pthread_mutex_unlock(&j->lock);
    return ret;
}

size_t journal_pending(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    size_t n = j->n_pend;
    pthread_mutex_unlock(&j->lock);
    return n;
}

uint64_t journal_fsyncs(struct journal *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t n = j->fsyncs;
    pthread_mutex_unlock(&j->lock);
    return n;
}

bool journal_find_earlier(struct journal *j, const char *topic, const void *payload, size_t len,
                          uint64_t *seq)
{
    size_t tlen = topic ? strnlen(topic, JOURNAL_TOPIC_MAX + 1) : 0;
    bool found = false;

    if (!j || tlen == 0 || tlen > JOURNAL_TOPIC_MAX || len > JOURNAL_PAYLOAD_MAX)
        return false;
    pthread_mutex_lock(&j->lock);
    for (size_t i = 0; i < j->n_pend && j->pend[i].seq < j->first && !found; i++) {
        const struct pend *p = &j->pend[i];
        uint8_t *e = NULL;
        size_t n = 0;
        const char *why;

        if (p->rec_len != HDR_LEN + tlen + len)
            continue;
        if (entry_read(j->fd, p->rec_off, &e, &n, &why) == 0 && get_le32(e + 16) == tlen &&
            memcmp(e + HDR_LEN, topic, tlen) == 0 &&
            (len == 0 || memcmp(e + HDR_LEN + tlen, payload, len) == 0)) {
            found = true;
            *seq = p->seq;
        }
        free(e);
    }
    pthread_mutex_unlock(&j->lock);
    return found;
}

int journal_result_load(struct journal *j, uint64_t seq, uint8_t **blob, size_t *len)
{
    uint8_t *e = NULL;
    size_t n = 0;
    const char *why = NULL;
    int ret = -ENOENT;

    *blob = NULL;
    *len = 0;
    pthread_mutex_lock(&j->lock);
    const struct pend *p = pend_find(j, seq);
    if (p && p->res_len)
        ret = entry_read(j->fd, p->res_off, &e, &n, &why);
    pthread_mutex_unlock(&j->lock);
    if (ret == -EBADMSG)
        log_warn("journal: the stored result of %" PRIu64 " is corrupt (%s)", seq, why);
    if (ret < 0)
        return ret;
    memmove(e, e + HDR_LEN, n - HDR_LEN);
    *blob = e;
    *len = n - HDR_LEN;
    return 0;
}

int journal_mark_published(struct journal *j, const char *id)
{
    if (!j || !id)
        return -EINVAL;
    size_t n = strnlen(id, PUBLISHED_ID_MAX + 1);
    if (!id_ok(id, n))
        return -EINVAL;
    int ret = mark(j, E_PUBLISHED, 0, 0, id, n, true);
    if (ret < 0)
        log_error("journal: published id %s: %s", id, strerror(-ret));
    else
        maybe_compact(j);
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

int journal_replay(struct journal *j, journal_replay_fn fn, void *ctx)
{
    if (!j || !fn)
        return -EINVAL;

    /* The seqs are taken under the lock; each record is read under the
     * lock and fn runs without it, so fn may call journal_done or
     * journal_append (records appended meanwhile are not replayed). */
    uint64_t *seqs = NULL;
    size_t n;
    pthread_mutex_lock(&j->lock);
    n = j->n_pend;
    if (n && !(seqs = malloc(n * sizeof(*seqs)))) {
        pthread_mutex_unlock(&j->lock);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        seqs[i] = j->pend[i].seq;
    pthread_mutex_unlock(&j->lock);

    int ret = 0, replayed = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = NULL;
        size_t len = 0;
        const char *why = NULL;

        pthread_mutex_lock(&j->lock);
        const struct pend *p = pend_find(j, seqs[i]);
        ret = p ? entry_read(j->fd, p->rec_off, &e, &len, &why) : -ENOENT;
        pthread_mutex_unlock(&j->lock);
        if (ret == -ENOENT)
            continue;   /* done meanwhile */
        if (ret == -EBADMSG) {
            /* Checked at open: the file changed under us. */
            log_warn("journal: record %" PRIu64 " is corrupt (%s); dropping it", seqs[i], why);
            journal_done(j, seqs[i]);
            continue;
        }
        if (ret < 0) {
            log_error("journal: reading record %" PRIu64 ": %s", seqs[i], strerror(-ret));
            goto out;
        }
        uint32_t tlen = get_le32(e + 16), plen = get_le32(e + 20);
        /* The topic becomes a C string: move the payload up by one byte. */
        memmove(e + HDR_LEN + tlen + 1, e + HDR_LEN + tlen, plen);
        e[HDR_LEN + tlen] = '\0';
        fn(ctx, seqs[i], (const char *)e + HDR_LEN, e + HDR_LEN + tlen + 1, plen);
        free(e);
        replayed++;
    }
    ret = replayed;

out:
    free(seqs);
    return ret;
}
