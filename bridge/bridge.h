/* The process: one loop, signals, systemd notify and watchdog, the health
 * socket and the metrics endpoint, serving a list of instances (one modem
 * each, instance.h). */
#ifndef M2M_BRIDGE_H
#define M2M_BRIDGE_H

struct bridge;
struct config;

/* Sets up the process and one instance for cfg's modem. cfg is borrowed
 * and must outlive the bridge. 0 or -errno (logged). */
int bridge_new(const struct config *cfg, struct bridge **out);

/* Runs until SIGINT/SIGTERM; then every instance publishes "offline",
 * and it returns 0 (-errno when an instance could not start). */
int bridge_run(struct bridge *b);

void bridge_free(struct bridge *b);

#endif
