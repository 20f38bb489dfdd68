/* The optional Prometheus endpoint (config metrics.listen): a tiny HTTP/1.0
 * responder on the event loop that answers GET /metrics and nothing else.
 *
 * Why not a library: one page, rendered from counters the loop owns, to a
 * scraper every 15-60 s. Each connection is read until the end of its
 * request head (at most METRICS_REQUEST_MAX bytes, within
 * METRICS_TIMEOUT_MS), answered, and closed; at most METRICS_CLIENTS at
 * once: a new one takes the slot of the oldest that has not sent its
 * request yet, so idle connections cannot lock the scraper out. Out of
 * descriptors, accepting pauses for METRICS_PAUSE_MS. Nothing here blocks
 * the loop. */
#ifndef M2M_CORE_METRICS_H
#define M2M_CORE_METRICS_H

#include <stddef.h>

struct loop;
struct metrics;

#define METRICS_REQUEST_MAX 2048
#define METRICS_TIMEOUT_MS 5000
#define METRICS_CLIENTS 4
#define METRICS_PAUSE_MS 1000
#define METRICS_BACKLOG 16

/* Renders the page into buf (size bytes, NUL-terminated); returns the
 * length it needed, as snprintf, or -1. */
typedef int (*metrics_render_fn)(void *ctx, char *buf, size_t size);

/* Pure: judges the start of a request. 0: more bytes needed (no end of
 * head yet); 200: GET /metrics; 404: another path; 405: another method;
 * 400: not an HTTP/1.x request line. */
int metrics_parse_request(const char *buf, size_t len);

/* Listens on listen_on (HOST:PORT, core/netaddr.h). 0 or -errno. */
int metrics_open(struct loop *loop, const char *listen_on, metrics_render_fn render, void *ctx,
                 struct metrics **out);
void metrics_close(struct metrics *m);

#endif
