/* libFuzzer target: the +RXDTMF reader of modem/call (a key the far end
 * pressed, published as B/call/dtmf/received).
 *
 * The input is one line as the chat hands it to the URC handler:
 * NUL-terminated, in a buffer of exactly that size. On success the key is
 * one of 0-9 * # A-D and the line is exactly "+RXDTMF:", spaces, that key,
 * spaces: nothing else of the line can reach the event. On failure the
 * key is untouched. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem/call.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_call: invariant failed: %s\n", what);
        abort();
    }
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    char key = 'x';
    const char *p;
    int rc;

    check(line != NULL, "malloc");
    memcpy(line, data, size);
    line[size] = 0;
    rc = call_parse_rxdtmf(line, &key);
    check(rc == 0 || rc == -EINVAL, "return value");
    if (rc == 0) {
        check(key && strchr("0123456789*#ABCD", key), "not a DTMF key");
        check(strncmp(line, "+RXDTMF:", 8) == 0, "prefix");
        p = skip_spaces(line + 8);
        check(*p == key, "key is not the line's");
        check(*skip_spaces(p + 1) == 0, "more than the key on the line");
    } else {
        check(key == 'x', "key written on failure");
    }
    free(line);
    return 0;
}
