/* Durable command journal in state_dir.
 *
 * A command is appended (written to a temporary file, fsync'd, renamed,
 * directory fsync'd) before paho's messageArrived returns, so the broker's
 * PUBACK means "will be executed". Right before its bytes go to the modem
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
 * Thread-safe: append runs on paho's thread, done and replay on the loop's. */
#ifndef M2M_CORE_JOURNAL_H
#define M2M_CORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;

/* Creates dir and dir/pending when missing (mode 0700). Besides pending,
 * the journal owns dir/journal.seq (the sequence high-water mark).
 * dir/pending is locked for the journal's lifetime: a second journal_open
 * of the same dir (another instance) gets -EBUSY. 0 or -errno. */
int journal_open(const char *dir, struct journal **out);
void journal_close(struct journal *j);

/* topic: a non-empty C string of at most 65535 bytes; payload: len bytes,
 * binary-safe, at most 1 MiB (else -EMSGSIZE). Both are copied.
 * *seq (optional) gets a positive id, increasing across restarts.
 * 0 or -errno. */
int journal_append(struct journal *j, const char *topic, const void *payload, size_t len,
                   uint64_t *seq);

/* Records durably that part `part` (1-based; 1 for a command of one part)
 * of the command's effect begins now (an AT+CMGS is about to be written).
 * A replay of a started command must not run it again: its outcome is
 * unknown. 0 or -errno. */
int journal_started(struct journal *j, uint64_t seq, unsigned part);
/* The highest part recorded by journal_started, 0 when none. */
unsigned journal_started_part(struct journal *j, uint64_t seq);
bool journal_is_started(struct journal *j, uint64_t seq);

/* Stores the command's result (an opaque blob of at most 1 MiB) durably,
 * replacing an earlier one. 0 or -errno. */
int journal_result(struct journal *j, uint64_t seq, const void *blob, size_t len);
/* The stored result: 0 with *blob malloc'd (the caller frees it), -ENOENT
 * when there is none, -EBADMSG when it is corrupt. */
int journal_result_load(struct journal *j, uint64_t seq, uint8_t **blob, size_t *len);

/* Removes the record durably (with its started mark and result). Unknown
 * seq: -ENOENT. */
int journal_done(struct journal *j, uint64_t seq);

/* Incoming messages whose publish the broker acknowledged, by key (1-200
 * printable ASCII characters): the last JOURNAL_PUBLISHED_MAX are kept in
 * state_dir/published. 0 or -errno. */
#define JOURNAL_PUBLISHED_MAX 256
int journal_mark_published(struct journal *j, const char *id);
bool journal_was_published(struct journal *j, const char *id);

/* topic and payload are borrowed: valid only during the call. */
typedef void (*journal_replay_fn)(void *ctx, uint64_t seq, const char *topic,
                                  const uint8_t *payload, size_t len);

/* Calls fn for every record pending when called, oldest first. fn may call
 * journal_done and journal_append (records appended during the replay are
 * not replayed). A corrupt or truncated record is logged and removed.
 * Returns the number replayed or -errno. */
int journal_replay(struct journal *j, journal_replay_fn fn, void *ctx);

#endif
