/* Durable command journal in state_dir (DESIGN.md "Durability").
 *
 * A command is appended (written to a temporary file, fsync'd, renamed,
 * directory fsync'd) before paho's messageArrived returns, so the broker's
 * PUBACK means "will be executed". It is marked done once its result was
 * published. At start-up, what is still pending is replayed in order.
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

/* Records durably that the command's effect has begun (an AT+CMGS is about
 * to be written). A replay of a started command must not run it again: its
 * outcome is unknown. 0 or -errno. */
int journal_started(struct journal *j, uint64_t seq);
bool journal_is_started(struct journal *j, uint64_t seq);

/* Removes the record durably (and its started mark). Unknown seq: -ENOENT. */
int journal_done(struct journal *j, uint64_t seq);

/* topic and payload are borrowed: valid only during the call. */
typedef void (*journal_replay_fn)(void *ctx, uint64_t seq, const char *topic,
                                  const uint8_t *payload, size_t len);

/* Calls fn for every record pending when called, oldest first. fn may call
 * journal_done and journal_append (records appended during the replay are
 * not replayed). A corrupt or truncated record is logged and removed.
 * Returns the number replayed or -errno. */
int journal_replay(struct journal *j, journal_replay_fn fn, void *ctx);

#endif
