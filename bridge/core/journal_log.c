/* The journal's log format (see journal.c for the layout of an entry, and
 * journal_int.h for the other files): building, checking and reading
 * entries, applying them to the in-memory state (the pending index and
 * the published ids), reading the log at open with its torn tail cut off,
 * and compaction. Writing live entries and flushing them is
 * journal_commit.c's. */
#include "core/journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
/* ---- helpers ---- */

uint32_t jnl_crc32_update(uint32_t crc, const uint8_t *p, size_t len)
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

uint32_t jnl_get_le32(const uint8_t *p)
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
    return (uint64_t)jnl_get_le32(p) | (uint64_t)jnl_get_le32(p + 4) << 32;
}

int jnl_pwrite_all(int fd, const void *buf, size_t len, off_t off)
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
int jnl_pread_all(int fd, void *buf, size_t len, off_t off)
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
uint8_t *jnl_entry_build(int type, uint64_t seq, uint32_t a, const void *p1, size_t l1,
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
    uint32_t crc = jnl_crc32_update(0, e, 24);
    put_le32(e + 24, jnl_crc32_update(crc, e + HDR_LEN, l1 + l2));
    *len = HDR_LEN + l1 + l2;
    return e;
}

/* The body length an entry's header announces, or -1 when absurd. */
static int64_t body_len(const uint8_t *h)
{
    uint32_t a = jnl_get_le32(h + 16), b = jnl_get_le32(h + 20);

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
int jnl_entry_read(int fd, off_t off, uint8_t **e, size_t *len, const char **why)
{
    uint8_t h[HDR_LEN];
    int ret;

    *e = NULL;
    *why = NULL;
    ret = jnl_pread_all(fd, h, HDR_LEN, off);
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
    ret = bl ? jnl_pread_all(fd, buf + HDR_LEN, (size_t)bl, off + HDR_LEN) : 0;
    if (ret == -EIO) {
        *why = "truncated";
        ret = -EBADMSG;
    } else if (ret == 0 && jnl_crc32_update(jnl_crc32_update(0, buf, 24), buf + HDR_LEN,
                                            (size_t)bl) != jnl_get_le32(buf + 24)) {
        *why = "checksum mismatch";
        ret = -EBADMSG;
    } else if (ret == 0 && buf[4] == E_RECORD &&
               memchr(buf + HDR_LEN, '\0', jnl_get_le32(buf + 16))) {
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

struct pend *jnl_pend_find(struct journal *j, uint64_t seq)
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

bool jnl_id_ok(const char *id, size_t n)
{
    if (n == 0 || n > PUBLISHED_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

void jnl_pub_add(struct journal *j, const char *id, size_t n)
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

int jnl_apply(struct journal *j, const uint8_t *e, size_t len, off_t off)
{
    uint64_t seq = get_le64(e + 8);
    struct pend *p;

    if (e[4] != E_PUBLISHED && seq >= j->next)
        j->next = seq + 1;
    switch (e[4]) {
    case E_RECORD:
        /* A duplicate (an import repeated after a crash) keeps the first. */
        return jnl_pend_find(j, seq) ? 0 : pend_add(j, seq, off, (uint32_t)len);
    case E_STARTED:
        if ((p = jnl_pend_find(j, seq)) != NULL) {
            if (!p->started)
                j->live += HDR_LEN;
            p->started = jnl_get_le32(e + 16);
        }
        return 0;
    case E_RESULT:
        if ((p = jnl_pend_find(j, seq)) != NULL) {
            if (!p->res_len)
                j->n_unfinished--;
            j->live += len - p->res_len;
            p->res_off = off;
            p->res_len = (uint32_t)len;
        }
        return 0;
    case E_DONE:
        if ((p = jnl_pend_find(j, seq)) != NULL)
            pend_remove(j, p);
        return 0;
    case E_PUBLISHED:
        if (jnl_id_ok((const char *)e + HDR_LEN, jnl_get_le32(e + 20)))
            jnl_pub_add(j, (const char *)e + HDR_LEN, jnl_get_le32(e + 20));
        return 0;
    default:
        return 0;   /* H: only raised next above */
    }
}

/* Reads the log from its start into the in-memory state; cuts a torn or
 * corrupt tail off. */
int jnl_load(struct journal *j)
{
    off_t off = 0;

    for (;;) {
        uint8_t *e = NULL;
        size_t len = 0;
        const char *why = NULL;
        int ret = jnl_entry_read(j->fd, off, &e, &len, &why);

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
        ret = jnl_apply(j, e, len, off);
        free(e);
        if (ret < 0)
            return ret;
        off += (off_t)len;
    }
    j->end = off;
    return 0;
}

/* ---- compaction ---- */
/* Copies entry [off, off+len) of the current log to fd at *at. */
static int copy_entry(struct journal *j, int fd, off_t off, uint32_t len, off_t *at)
{
    uint8_t *buf = malloc(len);
    int ret;

    if (!buf)
        return -ENOMEM;
    ret = jnl_pread_all(j->fd, buf, len, off);
    if (ret == 0)
        ret = jnl_pwrite_all(fd, buf, len, *at);
    free(buf);
    if (ret == 0)
        *at += len;
    return ret;
}

static int put_entry(int fd, int type, uint64_t seq, uint32_t a, const void *body, size_t blen,
                     off_t *at)
{
    size_t len;
    uint8_t *e = jnl_entry_build(type, seq, a, body, blen, NULL, 0, (uint32_t)blen, &len);
    int ret;

    if (!e)
        return -ENOMEM;
    ret = jnl_pwrite_all(fd, e, len, *at);
    free(e);
    if (ret == 0)
        *at += (off_t)len;
    return ret;
}

/* Rewrites the log with only its live entries: tmp, fsync, rename, fsync
 * dir. Caller holds the lock and no flush runs. */
int jnl_compact_locked(struct journal *j)
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

