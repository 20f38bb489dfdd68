/* libFuzzer target: the +CUSD decoder of modem/ussd.
 *
 * The input's first byte chooses the mode (its low bit: the module in
 * AT+CSCS="UCS2", strings as hex, or in IRA); the rest is one line as the
 * chat hands it to the URC handler: NUL-terminated, in a buffer of exactly
 * that size. On success the reply must be what the service
 * publishes without further checks: status 0-5, a NUL-terminated UTF-8
 * text, dcs -1 or 0-255. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "modem/ussd.h"

static struct ussd_reply reply;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ussd: invariant failed: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool ucs2 = size > 0 && (data[0] & 1);
    char *line;
    const char *end;
    int rc;

    if (size > 0) {
        data++;
        size--;
    }
    line = malloc(size + 1);
    check(line != NULL, "malloc");
    memcpy(line, data, size);
    line[size] = 0;
    rc = ussd_parse_cusd(line, ucs2, &reply);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE, "return value");
    if (rc == 0) {
        check(reply.status >= 0 && reply.status <= 5, "status out of 0-5");
        check(reply.dcs >= -1 && reply.dcs <= 255, "dcs out of range");
        end = memchr(reply.text, 0, sizeof(reply.text));
        check(end != NULL, "text not NUL-terminated");
        check(utf8_valid((const uint8_t *)reply.text, (size_t)(end - reply.text)),
              "text is not UTF-8");
        check(reply.has_text || reply.text[0] == 0, "text without has_text");
    }
    free(line);
    return 0;
}
