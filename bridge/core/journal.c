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
 * open, then its files are removed.
 *
 * This file is the public API; the log format, group commit and the import
 * of the earlier format are in the files journal_int.h lists. */
#include "core/journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* ---- API ---- */

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
    ret = jnl_load(j);
    if (ret == 0)
        ret = jnl_import_old(j, &old);
    /* Starts every run with a compact, durable log (and a durable
     * directory entry for it). */
    if (ret == 0)
        ret = jnl_compact_locked(j);
    if (ret < 0) {
        log_error("journal: %s/%s: %s", dir, LOG_FILE, strerror(-ret));
        goto err;
    }
    if (old) {
        log_info("journal: imported %zu pending record(s) of the earlier format in %s",
                 j->n_pend, dir);
        jnl_remove_old(j);
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
        jnl_commit_locked(j, j->written, SIDE_NONE);
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
    uint8_t *e = jnl_entry_build(E_RECORD, s, (uint32_t)tlen, topic, tlen, payload, len,
                                 (uint32_t)len, &elen);
    int ret = e ? jnl_write_locked(j, e, elen, &ticket) : -ENOMEM;
    j->next = s + 1;
    if (ret == 0)
        ret = jnl_commit_locked(j, ticket, SIDE_APPEND);
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
    uint8_t *e = jnl_entry_build(type, seq, a, body, blen, NULL, 0, (uint32_t)blen, &len);
    int ret;

    if (!e)
        return -ENOMEM;
    pthread_mutex_lock(&j->lock);
    if (type != E_PUBLISHED && !jnl_pend_find(j, seq))
        ret = -ENOENT;
    else
        ret = jnl_write_locked(j, e, len, &ticket);
    if (ret == 0)
        j->marked = ticket;
    if (ret == 0 && sync)
        ret = jnl_commit_locked(j, ticket, SIDE_LOOP);
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
        jnl_compact_locked(j);      /* on failure the old log stays in use */
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
    const struct pend *p = jnl_pend_find(j, seq);
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
        if (jnl_entry_read(j->fd, p->rec_off, &e, &n, &why) == 0 && jnl_get_le32(e + 16) == tlen &&
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
    const struct pend *p = jnl_pend_find(j, seq);
    if (p && p->res_len)
        ret = jnl_entry_read(j->fd, p->res_off, &e, &n, &why);
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
    if (!jnl_id_ok(id, n))
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
        const struct pend *p = jnl_pend_find(j, seqs[i]);
        ret = p ? jnl_entry_read(j->fd, p->rec_off, &e, &len, &why) : -ENOENT;
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
        uint32_t tlen = jnl_get_le32(e + 16), plen = jnl_get_le32(e + 20);
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
