/* libFuzzer target: the configuration parser (config_build, the pure part
 * of config_load).
 *
 * The input is a config file's text, then optionally, after the first
 * "\0\0", an environment: "NAME=value" entries separated by NUL bytes that
 * a fake getenv serves. The text sits in a buffer of exactly its size
 * (config_load reads the file into one; config_build gets the length), so
 * ASan catches a read past its end.
 *
 * On success the configuration is freed (LeakSanitizer checks that); on
 * failure the error must be a non-empty, terminated message and cfg must be
 * zeroed, as config.h promises. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define ENV_MAX 32

static struct {
    const char *name[ENV_MAX];
    size_t name_len[ENV_MAX];
    const char *value[ENV_MAX];
    size_t n;
} env;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_config: invariant failed: %s\n", what);
        abort();
    }
}

static const char *fake_getenv(const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < env.n; i++) {
        if (env.name_len[i] == len && memcmp(env.name[i], name, len) == 0)
            return env.value[i];
    }
    return NULL;
}

/* Splits "A=1\0B=2\0..." (NUL-terminated by the caller) into env. */
static void parse_env(char *p, const char *end)
{
    env.n = 0;
    while (p < end && env.n < ENV_MAX) {
        size_t len = strlen(p);
        char *eq = memchr(p, '=', len);

        if (eq) {
            env.name[env.n] = p;
            env.name_len[env.n] = (size_t)(eq - p);
            env.value[env.n] = eq + 1;
            env.n++;
        }
        p += len + 1;
    }
}

static bool in(int v, int lo, int hi)
{
    return v >= lo && v <= hi;
}

/* What the rest of the bridge takes for granted once config_build said 0:
 * the ranges config/README.md documents, and complete lists. */
static void check_built(const struct config *c)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    bool level = false;

    check(c->mqtt.broker && c->mqtt.base_topic && c->mqtt.client_id && c->modem.port &&
              c->state_dir && c->log_level,
          "a built config without broker, base topic, client id, port, state dir or level");
    for (size_t i = 0; i < 4; i++)
        level = level || strcmp(c->log_level, levels[i]) == 0;
    check(level, "log_level not one of error, warn, info, debug");
    check(in(c->modem.baud, 300, 4000000), "modem.baud out of range");
    check(in(c->mqtt.keepalive, 5, 65535), "mqtt.keepalive out of range");
    check(in(c->modem.status_interval, 5, 86400), "modem.status_interval out of range");
    check(in(c->modem.command_timeout_ms, 100, 600000), "modem.command_timeout_ms out of range");
    check(in(c->sms.max_parts, 1, 16), "sms.max_parts out of range");
    check(in(c->sms.rate_per_hour, 1, 100000), "sms.rate_per_hour out of range");
    check(in(c->remote.keepalive, 1, 64800), "remote.keepalive out of range");
    for (size_t i = 0; i < c->modem.n_init; i++)
        check(c->modem.init[i] != NULL, "modem.init has a NULL entry");
    for (size_t i = 0; i < c->sms.n_allow_to; i++)
        check(c->sms.allow_to[i] != NULL, "sms.allow_to has a NULL entry");
    for (size_t i = 0; i < c->calls.n_allow_to; i++)
        check(c->calls.allow_to[i] != NULL, "calls.allow_to has a NULL entry");
    for (size_t i = 0; i < c->remote.n_subscribe; i++)
        check(c->remote.subscribe[i].topic && in(c->remote.subscribe[i].qos, 0, 2),
              "remote.subscribe entry without topic or with a bad qos");
    for (size_t i = 0; i < c->remote.n_forward; i++)
        check(c->remote.forward[i].local && c->remote.forward[i].remote &&
                  in(c->remote.forward[i].qos, 0, 2),
              "remote.forward entry incomplete or with a bad qos");
    check(!c->remote.cert_file == !c->remote.key_file, "a client certificate without its key");
    check(!c->remote.will.enabled ||
              (c->remote.will.topic && c->remote.will.payload &&
               in((long)strlen(c->remote.will.payload), 1, 1024) && in(c->remote.will.qos, 0, 2) &&
               !c->remote.will.retain),
          "remote.will without topic or payload, too long, or with a bad qos or retain");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct config zero;
    struct config cfg;
    char err[256];
    const uint8_t *sep = NULL;
    size_t json_len = size;
    char *json, *envbuf = NULL;
    int rc;

    for (size_t i = 0; i + 1 < size; i++) {
        if (data[i] == 0 && data[i + 1] == 0) {
            sep = data + i;
            json_len = i;
            break;
        }
    }
    json = malloc(json_len ? json_len : 1);
    check(json != NULL, "malloc");
    memcpy(json, data, json_len);
    if (sep) {
        size_t n = size - json_len - 2;

        envbuf = malloc(n + 1);
        check(envbuf != NULL, "malloc");
        memcpy(envbuf, sep + 2, n);
        envbuf[n] = 0;
        parse_env(envbuf, envbuf + n);
    }

    memset(err, 'x', sizeof(err));
    rc = config_build(&cfg, json, json_len, sep ? fake_getenv : NULL, NULL, err, sizeof(err));
    if (rc == 0) {
        check_built(&cfg);
        config_free(&cfg);
        config_free(&cfg); /* documented as safe again */
    } else {
        check(rc < 0, "positive return");
        check(memchr(err, 0, sizeof(err)) != NULL && err[0] != 0, "no error message");
        check(memcmp(&cfg, &zero, sizeof(cfg)) == 0, "cfg not zeroed on error");
    }
    free(envbuf);
    free(json);
    return 0;
}
