/* Commands the broker may deliver twice.
 *
 * paho sends a command's PUBACK after the journal has it; a bridge killed
 * between the two leaves the broker without the PUBACK, and it delivers
 * the command again after the restart with the DUP flag. The journal then
 * holds the first copy (pending, or done already). This set knows the
 * digests of the pending ones; the digests of done ones are kept by the
 * journal (journal_mark_published, key from dedup_key).
 *
 * Thread-safe: paho's thread adds and asks, the loop thread removes. */
#ifndef M2M_CORE_DEDUP_H
#define M2M_CORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedup;

struct dedup *dedup_new(void);
void dedup_free(struct dedup *d);

/* FNV-1a 64 of topic, a NUL, and payload. Pure. */
uint64_t dedup_digest(const char *topic, const void *payload, size_t len);
/* "c" and 16 hex digits: the journal's key for a done command. out: 18. */
void dedup_key(uint64_t digest, char out[18]);

/* 0, -ENOMEM. */
int dedup_add(struct dedup *d, uint64_t digest, uint64_t seq);
bool dedup_pending(struct dedup *d, uint64_t digest);
void dedup_remove(struct dedup *d, uint64_t seq);

#endif
