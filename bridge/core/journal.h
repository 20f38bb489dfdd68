/* Durable command journal in state_dir: an append-only log.
 *
 * A command is appended and flushed (fdatasync) before paho's
 * messageArrived returns, so the broker's PUBACK means "will be executed".
 * One flush covers every entry written before it, from either thread
 * (group commit). Right before its bytes go to the modem
 * it is marked started (per part, for a multipart SMS). Its result is
 * stored with it before it is published, and the record is done only when
 * the broker acknowledged that result. At start-up, what is still pending
 * is replayed in order: a stored result is published again, a started
 * command is answered without running it again, the rest runs.
 *
 * It also remembers the ids of the last JOURNAL_PUBLISHED_MAX incoming
 * messages the broker acknowledged, so one read again after a crash
 * (killed between the PUBACK and the delete) is deleted, not republished.
 *
 * Thread-safe: append runs on paho's thread, the rest on the loop's. */
#ifndef M2M_CORE_JOURNAL_H
#define M2M_CORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;

/* Creates dir when missing (mode 0700); the journal owns dir/journal.log
 * (and journal.log.tmp while it compacts). dir is locked for the
 * journal's lifetime: a second journal_open of the same dir (another
 * instance) gets -EBUSY. A journal of the earlier file-per-record format
 * (dir/pending) is imported. 0 or -errno. */
int journal_open(const char *dir, struct journal **out);
void journal_close(struct journal *j);

/* topic: a non-empty C string of at most 65535 bytes; payload: len bytes,
 * binary-safe, at most 1 MiB (else -EMSGSIZE). Both are copied.
 * *seq (optional) gets a positive id, increasing across restarts.
 * 0 or -errno. */
int journal_append(struct journal *j, const char *topic, const void *payload, size_t len,
                   uint64_t *seq);

/* A message the broker delivers again after a crash (the append was
 * durable, the PUBACK never left) is the same command as a record still
 * pending from before this open: same topic, same payload. true with
 * *seq that record's seq; the caller answers the broker without
 * recording the message again (the replayed record runs, once). Only
 * records from before the open are compared: within a run, an identical
 * payload is a new command. */
bool journal_find_earlier(struct journal *j, const char *topic, const void *payload, size_t len,
                          uint64_t *seq);
/* Records durably that part `part` (1-based; 1 for a command of one part)
 * of the command's effect begins now (an AT+CMGS is about to be written).
 * A replay of a started command must not run it again: its outcome is
 * unknown. 0 or -errno. */
int journal_started(struct journal *j, uint64_t seq, unsigned part);
/* The highest part recorded by journal_started, 0 when none. */
unsigned journal_started_part(struct journal *j, uint64_t seq);
bool journal_is_started(struct journal *j, uint64_t seq);

/* Stores the command's result (an opaque blob of at most 1 MiB), replacing
 * an earlier one. Not flushed: it is durable once journal_commit (or any
 * other flush, such as the next append's) returned, so results finished
 * together share one flush. Unknown seq: -ENOENT. 0 or -errno. */
int journal_result(struct journal *j, uint64_t seq, const void *blob, size_t len);
/* Makes every mark (started, result, done, published id) written so far
 * durable; returns at once when an earlier flush already covered them.
 * Appends are the appending thread's to flush. 0 or -errno. */
int journal_commit(struct journal *j);
/* The same, except while commands stream in: each append is flushed
 * within about a millisecond and covers the marks written before it, so
 * then this returns -EAGAIN without flushing; call it again a little
 * later (it flushes itself once the stream has stopped). 0 when the marks
 * are durable, or -errno. */
int journal_commit_soon(struct journal *j);
/* For tests: a flush started while the other thread asked for one within
 * busy_us waits up to wait_us for it (defaults 1 ms and 2 ms). */
void journal_set_commit_wait(struct journal *j, int64_t wait_us, int64_t busy_us);
/* Records not yet done (commands without a result acknowledged). */
size_t journal_pending(struct journal *j);
/* How many fdatasync/fsync calls the journal made since it was opened
 * (compactions included). */
uint64_t journal_fsyncs(struct journal *j);
/* The stored result: 0 with *blob malloc'd (the caller frees it), -ENOENT
 * when there is none, -EBADMSG when it is corrupt. */
int journal_result_load(struct journal *j, uint64_t seq, uint8_t **blob, size_t *len);

/* Removes the record (with its started mark and result). Durable with the
 * next flush, not at once: a done lost in a crash only republishes the
 * stored result, which consumers match by its id. Unknown seq: -ENOENT. */
int journal_done(struct journal *j, uint64_t seq);

/* Incoming messages whose publish the broker acknowledged, by key (1-200
 * printable ASCII characters): the last JOURNAL_PUBLISHED_MAX are kept,
 * durably on return. 0 or -errno. */
#define JOURNAL_PUBLISHED_MAX 256
int journal_mark_published(struct journal *j, const char *id);
bool journal_was_published(struct journal *j, const char *id);

/* topic and payload are borrowed: valid only during the call. */
typedef void (*journal_replay_fn)(void *ctx, uint64_t seq, const char *topic,
                                  const uint8_t *payload, size_t len);

/* Calls fn for every record pending when called, oldest first. fn may call
 * journal_done and journal_append (records appended during the replay are
 * not replayed). A torn or corrupt tail of the log was dropped at open.
 * Returns the number replayed or -errno. */
int journal_replay(struct journal *j, journal_replay_fn fn, void *ctx);

#endif
