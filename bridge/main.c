/* modem2mqtt: options, configuration, run. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "at/port.h"
#include "bridge.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "devsrv.h"
#include "version.h"

int main(int argc, char **argv)
{
    struct config_cli cli;
    struct config cfg = { 0 };
    struct bridge *b = NULL;
    enum log_level level;
    char err[512];
    int r;

    log_init();
    if (config_parse_cli(argc, argv, &cli, err, sizeof(err)) < 0) {
        fprintf(stderr, "modem2mqtt: %s (try --help)\n", err);
        return 2;
    }
    switch (cli.action) {
    case CONFIG_HELP:
        config_print_usage(stdout, argv[0]);
        return 0;
    case CONFIG_VERSION:
        printf("modem2mqtt %s\n", M2M_VERSION);
        return 0;
    case CONFIG_LIST_PORTS:
        return at_port_list(stdout) < 0 ? 1 : 0;
    case CONFIG_HEALTH:
    case CONFIG_DEVICE_SERVER:
    case CONFIG_RUN:
    default:
        break;
    }

    if (config_load(&cfg, &cli, err, sizeof(err)) < 0) {
        fprintf(stderr, "modem2mqtt: %s\n", err);
        return 2;
    }
    if (cli.action == CONFIG_DEVICE_SERVER) {
        /* The configuration only for the modem's baud, which the device
         * server's UART must match. */
        r = devsrv_run(cli.device_server, cfg.modem.baud, cli.sets, cli.n_sets, stdout, stderr);
        config_free(&cfg);
        return r;
    }
    if (cli.action == CONFIG_HEALTH) {
        /* The same configuration sources as the bridge, for its state_dir. */
        char msg[PATH_MAX + 128];
        r = health_check(cfg.state_dir, msg, sizeof(msg), NULL, 0);
        puts(msg);
        config_free(&cfg);
        return r < 0 ? 1 : 0;
    }
    if (log_level_parse(cfg.log_level, &level) == 0)
        log_set_level(level);
    if (cfg.n_modems)
        log_info("modem2mqtt %s: broker %s, %zu modem%s", M2M_VERSION, cfg.mqtt.broker,
                 cfg.n_modems, cfg.n_modems == 1 ? "" : "s");
    else
        log_info("modem2mqtt %s: port %s, broker %s, base topic %s", M2M_VERSION,
                 cfg.modem.port, cfg.mqtt.broker, cfg.mqtt.base_topic);

    r = bridge_new(&cfg, &b);
    if (r == 0)
        r = bridge_run(b);
    bridge_free(b);
    config_free(&cfg);
    return r < 0 ? 1 : 0;
}
