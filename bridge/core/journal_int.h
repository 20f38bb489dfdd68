/* The journal's private parts, shared by its files (journal.c says what
 * the journal is and how its log is laid out):
 *   journal.c          the public API: open, close, append, the marks,
 *                      the published ids, replay
 *   journal_log.c      the log format: building, checking and reading
 *                      entries, the in-memory state they make (the
 *                      pending index, the published ids), reading the log
 *                      at open (recovery) and compaction
 *   journal_commit.c   writing entries and group commit: the flush leader,
 *                      the wait for company from the other side
 *   journal_import.c   importing a journal of the earlier format */
#ifndef M2M_CORE_JOURNAL_INT_H
#define M2M_CORE_JOURNAL_INT_H

#include "core/journal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
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

/* Shared between the files above (each was a static of the one
 * journal.c). */

/* journal_log.c: the entry format. */
uint32_t jnl_crc32_update(uint32_t crc, const uint8_t *p, size_t len);
uint32_t jnl_get_le32(const uint8_t *p);
int jnl_pwrite_all(int fd, const void *buf, size_t len, off_t off);
int jnl_pread_all(int fd, void *buf, size_t len, off_t off);
uint8_t *jnl_entry_build(int type, uint64_t seq, uint32_t a, const void *p1, size_t l1,
                         const void *p2, size_t l2, uint32_t b, size_t *len);
int jnl_entry_read(int fd, off_t off, uint8_t **e, size_t *len, const char **why);
/* journal_log.c: the in-memory state, recovery and compaction. */
struct pend *jnl_pend_find(struct journal *j, uint64_t seq);
bool jnl_id_ok(const char *id, size_t n);
void jnl_pub_add(struct journal *j, const char *id, size_t n);
int jnl_apply(struct journal *j, const uint8_t *e, size_t len, off_t off);
int jnl_load(struct journal *j);
int jnl_compact_locked(struct journal *j);

/* journal_commit.c: writing and group commit. */
int jnl_write_locked(struct journal *j, uint8_t *e, size_t len, uint64_t *ticket);
int jnl_commit_locked(struct journal *j, uint64_t ticket, enum side side);

/* journal_import.c: the earlier format. */
int jnl_import_old(struct journal *j, bool *found);
void jnl_remove_old(struct journal *j);

#endif
