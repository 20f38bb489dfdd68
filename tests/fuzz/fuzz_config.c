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
        check(cfg.mqtt.broker && cfg.mqtt.base_topic && cfg.modem.port,
              "a built config without broker, base topic or port");
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
