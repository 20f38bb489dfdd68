/* libFuzzer target: the AT result iterator (at/result).
 *
 * The input is a length byte L, L op bytes, then one line as the chat
 * hands it over (NUL-terminated, in a buffer of exactly that size). The
 * line's text up to its first ':' is the prefix. Each op byte picks a
 * reader (low 3 bits) and its parameters (the high bits: a range for
 * numbers, a buffer size for strings, each buffer exactly that size).
 * Afterwards the line is walked to its end with at_result_skip_next.
 *
 * Checks: every reader returns 0 or one of its documented errors; a failed
 * read leaves the iterator and the output alone; a number lies in the
 * range asked for (or is the default); a string is NUL-terminated within
 * its buffer and its bytes are in the line; the iterator never points
 * past the line's NUL; the walk ends within as many steps as the line has
 * bytes (plus one). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at/result.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_result: invariant failed: %s\n", what);
        abort();
    }
}

static const struct {
    int min, max;
} ranges[] = { { 0, 255 }, { 0, INT_MAX }, { INT_MIN, INT_MAX }, { -200, 0 } };

static bool is_error(int r)
{
    return r == -ENOENT || r == -ENODATA || r == -EINVAL || r == -ERANGE || r == -EMSGSIZE;
}

/* A string read: terminated within size, its bytes taken from the line. */
static void check_string(const char *line, const char *buf, size_t size)
{
    const char *nul = memchr(buf, '\0', size);

    check(nul != NULL, "string not terminated within its buffer");
    check(nul == buf || strstr(line, buf) != NULL, "string bytes not from the line");
}

static void run_op(struct at_result_iter *it, uint8_t op, const char *line)
{
    const struct at_result_iter before = *it;
    size_t size = (size_t)(op >> 3) + 1;      /* 1..32 */
    char *buf = malloc(size);
    int v = 0x5a5a5a5a, min = ranges[(op >> 3) & 3].min, max = ranges[(op >> 3) & 3].max, r;

    check(buf != NULL, "malloc");
    memset(buf, 'Z', size);
    switch (op & 7) {
    case 0: r = at_result_next_number(it, min, max, &v); break;
    case 1: r = at_result_next_number_default(it, min, max, -7, &v); break;
    case 2: r = at_result_next_string(it, buf, size); break;
    case 3: r = at_result_next_string_greedy(it, buf, size); break;
    case 4: r = at_result_next_unquoted(it, buf, size); break;
    case 5: r = at_result_skip_next(it); break;
    case 6: r = (op & 8) ? at_result_close_list(it) : at_result_open_list(it); break;
    default:
        check(at_result_rest(it) >= line && at_result_rest(it) <= line + strlen(line),
              "rest outside the line");
        r = 0;
        break;
    }
    check(r == 0 || is_error(r), "return value");
    if (r < 0) {
        check(memcmp(&before, it, sizeof(*it)) == 0, "a failed read moved the iterator");
        check(v == 0x5a5a5a5a, "a failed read wrote its number");
        check(buf[0] == 'Z', "a failed read wrote its string");
    } else if ((op & 7) <= 1) {
        check((v >= min && v <= max) || ((op & 7) == 1 && v == -7), "number out of range");
    } else if ((op & 7) <= 4) {
        check_string(line, buf, size);
    }
    check(it->pos <= strlen(line), "iterator past the line");
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_ops = size ? data[0] : 0, steps = 0;
    const uint8_t *ops = data + 1;
    char *line, *prefix;
    const char *colon;
    struct at_result_iter it;

    if (size == 0 || n_ops > size - 1)
        return 0;
    line = malloc(size - 1 - n_ops + 1);
    check(line != NULL, "malloc");
    memcpy(line, ops + n_ops, size - 1 - n_ops);
    line[size - 1 - n_ops] = '\0';
    colon = strchr(line, ':');
    prefix = strndup(line, colon ? (size_t)(colon - line) + 1 : 0);
    check(prefix != NULL, "strndup");

    at_result_iter_init(&it, line);
    check(at_result_iter_next(&it, prefix), "the line's own prefix not matched");
    for (size_t i = 0; i < n_ops; i++)
        run_op(&it, ops[i], line);
    while (at_result_skip_next(&it) == 0)
        check(++steps <= strlen(line) + 1, "the walk does not end");
    free(prefix);
    free(line);
    return 0;
}
