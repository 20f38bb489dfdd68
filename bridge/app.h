/* The bridge: wires config, loop, MQTT link, journal, modem and services,
 * routes commands to services and publishes their results and events. */
#ifndef M2M_APP_H
#define M2M_APP_H

struct config;
struct app;

/* cfg is borrowed and must outlive the app. 0 or -errno (logged). */
int app_new(const struct config *cfg, struct app **out);

/* Runs until SIGINT/SIGTERM; then publishes "offline" and returns 0. */
int app_run(struct app *app);

void app_free(struct app *app);

#endif
