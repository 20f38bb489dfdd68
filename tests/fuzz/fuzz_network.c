/* libFuzzer target: the AT+COPS=? decoder of modem/network.
 *
 * The input's first byte chooses the mode (its low bit: the module in
 * AT+CSCS="UCS2", names as hex, or in IRA) and, in its next bits, how
 * many operators the caller keeps (0-7); the rest is one line as the chat
 * hands it over: NUL-terminated, in a buffer of exactly that size. On
 * success every operator kept is what B/network/scan publishes without
 * further checks: stat 0-3, names terminated and made of the line's
 * bytes or (UCS2) UTF-8, an mccmnc of 5-6 digits, act -1 or 0-255, and
 * no more of them than asked for. On failure the count is 0. Nothing is
 * written beyond max. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/network.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_network: invariant failed: %s\n", what);
        abort();
    }
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, 0, size) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct network_operator ops[8];
    bool ucs2 = size > 0 && (data[0] & 1);
    size_t max = size > 0 ? (data[0] >> 1) & 7 : 0, n = 99;
    char *line;
    int rc;

    if (size > 0) {
        data++;
        size--;
    }
    line = malloc(size + 1);
    check(line != NULL, "malloc");
    memcpy(line, data, size);
    line[size] = 0;
    memset(ops, 0x7f, sizeof(ops));
    rc = network_parse_scan(line, ucs2, ops, max, &n);
    check(rc == 0 || rc == -EINVAL, "return value");
    check(rc == 0 ? n <= max : n == 0, "count");
    for (size_t i = 0; i < n; i++) {
        check(ops[i].stat <= NETWORK_FORBIDDEN, "stat out of 0-3");
        check(terminated(ops[i].name, sizeof(ops[i].name)), "name not terminated");
        check(terminated(ops[i].short_name, sizeof(ops[i].short_name)),
              "short name not terminated");
        check(terminated(ops[i].mccmnc, sizeof(ops[i].mccmnc)) &&
                  network_mccmnc_valid(ops[i].mccmnc),
              "mccmnc not 5-6 digits");
        check(ops[i].act >= -1 && ops[i].act <= 255, "act out of range");
    }
    for (size_t i = max; i < 8; i++)
        check(ops[i].act == 0x7f7f7f7f, "written beyond max");
    free(line);
    return 0;
}
