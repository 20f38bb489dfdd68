/* An instance: one modem bridged to MQTT (its services, its MQTT session,
 * its journal). */
#ifndef M2M_INSTANCE_H
#define M2M_INSTANCE_H

struct config;
struct instance;

/* cfg is borrowed and must outlive the instance. 0 or -errno (logged). */
int instance_new(const struct config *cfg, struct instance **out);

/* Runs until SIGINT/SIGTERM; then publishes "offline" and returns 0. */
int instance_run(struct instance *inst);

void instance_free(struct instance *inst);

#endif
