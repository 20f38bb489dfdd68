/* libFuzzer target: the status parsers of modem/status (AT+CSQ, AT+CREG? /
 * +CREG URCs and their cell, AT+COPS?, AT+CPSI?, AT+CPMS?, AT+CBC).
 *
 * The input is one line as the chat hands it over: NUL-terminated, in a
 * buffer of exactly that size, given to every parser. Each returns 0 or
 * -EINVAL; on success its values are what the bridge publishes without
 * further checks (csq 0-31 or 99, stat 0-11, terminated names, a cell of
 * two hex ids of 1-8 digits, a store
 * with 0 <= used <= total and 1 <= total <= 65535, a voltage of 0 to
 * STATUS_CBC_MV_MAX mV); on failure it leaves its outputs alone. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/status.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_status: invariant failed: %s\n", what);
        abort();
    }
}

static void check_rc(int rc, const char *what)
{
    check(rc == 0 || rc == -EINVAL, what);
}

static void check_text(const char *buf, size_t size, const char *what)
{
    check(memchr(buf, 0, size) != NULL, what);
}

/* 1-8 hex digits, terminated within size. */
static bool hex_id(const char *s, size_t size)
{
    size_t n = strnlen(s, size);

    return n >= 1 && n <= 8 && n < size && strspn(s, "0123456789ABCDEFabcdef") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    char name[64], access[16];
    int csq = -7, stat = -7, used = -7, total = -7, mv = -7, rc;

    check(line != NULL, "malloc");
    memcpy(line, data, size);
    line[size] = 0;

    rc = status_parse_csq(line, &csq);
    check_rc(rc, "csq: return value");
    check(rc == 0 ? (csq >= 0 && csq <= 31) || csq == 99 : csq == -7, "csq: value");

    for (int urc = 0; urc < 2; urc++) {
        struct status_cell cell = { "-", "-" };

        stat = -7;
        rc = status_parse_reg(line, urc, &stat);
        check_rc(rc, "reg: return value");
        check(rc == 0 ? stat >= 0 && stat <= 11 : stat == -7, "reg: stat");
        rc = status_parse_cell(line, urc, &cell);
        check(rc == 0 || rc == -EINVAL || rc == -ENOENT, "cell: return value");
        if (rc == 0)
            check(hex_id(cell.lac, sizeof(cell.lac)) && hex_id(cell.ci, sizeof(cell.ci)),
                  "cell: ids");
        else
            check(strcmp(cell.lac, "-") == 0 && strcmp(cell.ci, "-") == 0,
                  "cell: changed on failure");
    }

    rc = status_parse_cops(line, name, sizeof(name));
    check_rc(rc, "cops: return value");
    if (rc == 0)
        check_text(name, sizeof(name), "cops: name not terminated");
    rc = status_parse_cpsi(line, access, sizeof(access));
    check_rc(rc, "cpsi: return value");
    if (rc == 0)
        check_text(access, sizeof(access), "cpsi: access not terminated");

    rc = status_parse_cpms(line, &used, &total);
    check_rc(rc, "cpms: return value");
    if (rc == 0)
        check(total >= 1 && total <= 65535 && used >= 0 && used <= total, "cpms: counts");
    else
        check(used == -7 && total == -7, "cpms: outputs changed on failure");

    rc = status_parse_cbc(line, &mv);
    check_rc(rc, "cbc: return value");
    check(rc == 0 ? mv >= 0 && mv <= STATUS_CBC_MV_MAX : mv == -7, "cbc: voltage");
    free(line);
    return 0;
}
