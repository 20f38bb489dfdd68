/* The pending commands' digests: a small array under a lock (as many
 * entries as commands waiting to be answered). See dedup.h. */
#include "core/dedup.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t digest;
    uint64_t seq;
};

struct dedup {
    pthread_mutex_t lock;
    struct entry *v;
    size_t n, cap;
};

struct dedup *dedup_new(void)
{
    struct dedup *d = calloc(1, sizeof(*d));

    if (d)
        pthread_mutex_init(&d->lock, NULL);
    return d;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d->v);
    free(d);
}

uint64_t dedup_digest(const char *topic, const void *payload, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    const uint8_t *p = (const uint8_t *)topic;

    for (size_t i = 0, n = strlen(topic) + 1; i < n; i++) /* with its NUL */
        h = (h ^ p[i]) * 0x100000001b3u;
    p = payload;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

void dedup_key(uint64_t digest, char out[18])
{
    snprintf(out, 18, "c%016llx", (unsigned long long)digest);
}

int dedup_add(struct dedup *d, uint64_t digest, uint64_t seq)
{
    int r = 0;

    pthread_mutex_lock(&d->lock);
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct entry *v = realloc(d->v, cap * sizeof(*v));

        if (!v) {
            r = -ENOMEM;
            goto out;
        }
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = (struct entry){digest, seq};
out:
    pthread_mutex_unlock(&d->lock);
    return r;
}

bool dedup_pending(struct dedup *d, uint64_t digest)
{
    bool found = false;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n && !found; i++)
        found = d->v[i].digest == digest;
    pthread_mutex_unlock(&d->lock);
    return found;
}

void dedup_remove(struct dedup *d, uint64_t seq)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].seq == seq) {
            d->v[i] = d->v[--d->n];
            break;
        }
    pthread_mutex_unlock(&d->lock);
}
