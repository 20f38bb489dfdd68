/* AT result iterator. See result.h.
 *
 * Each reader works on a copy of the iterator and stores it back only on
 * success: a failed read changes nothing, so a caller may try another kind
 * of field at the same place. */
#include "at/result.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "at/chat.h"

void at_result_iter_init(struct at_result_iter *it, const char *line)
{
    *it = (struct at_result_iter){ .line = line };
}

static size_t skip_spaces(const char *s, size_t p)
{
    while (s[p] == ' ')
        p++;
    return p;
}

bool at_result_iter_next(struct at_result_iter *it, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;

    if (strncmp(it->line, prefix ? prefix : "", n) != 0)
        return false;
    *it = (struct at_result_iter){ .line = it->line, .pos = skip_spaces(it->line, n) };
    return true;
}

/* Where a field ends inside the open list: its ')'. */
static bool closes_list(const struct at_result_iter *it, size_t p)
{
    return it->line[p] == ')' && it->depth > 0;
}

/* The start of the current field, after its spaces; -ENOENT when there is
 * none, -ENODATA when it is empty. */
static int field_start(const struct at_result_iter *it, size_t *p)
{
    if (it->end)
        return -ENOENT;
    *p = skip_spaces(it->line, it->pos);
    if (closes_list(it, *p))
        return -ENOENT;
    return it->line[*p] == ',' || it->line[*p] == '\0' ? -ENODATA : 0;
}

/* The field's content ended before p: only spaces may follow, then a
 * comma (consumed), the open list's ')' (left for close_list) or the end
 * of the line. */
static int field_end(struct at_result_iter *it, size_t p)
{
    p = skip_spaces(it->line, p);
    if (it->line[p] == ',')
        p++;
    else if (it->line[p] == '\0')
        it->end = true;
    else if (!closes_list(it, p))
        return -EINVAL;
    it->pos = p;
    return 0;
}

/* Digits (and the sign) at p, which field_start found non-empty. */
static int parse_number(struct at_result_iter *t, size_t p, int min, int max, int *out)
{
    const char *s = t->line;
    bool neg = min < 0 && s[p] == '-';
    long long v = 0;

    p += neg;
    if (s[p] < '0' || s[p] > '9')
        return -EINVAL;
    /* Saturates beyond every int, of either sign: never overflows. */
    for (; s[p] >= '0' && s[p] <= '9'; p++)
        v = v > INT_MAX ? (long long)INT_MAX + 2 : v * 10 + (s[p] - '0');
    if (field_end(t, p) < 0)
        return -EINVAL;
    v = neg ? -v : v;
    if (v < min || v > max)
        return -ERANGE;
    *out = (int)v;
    return 0;
}

int at_result_next_number(struct at_result_iter *it, int min, int max, int *out)
{
    struct at_result_iter t = *it;
    size_t p;
    int r = field_start(&t, &p);

    if (r == 0)
        r = parse_number(&t, p, min, max, out);
    if (r == 0)
        *it = t;
    return r;
}

int at_result_next_number_default(struct at_result_iter *it, int min, int max, int dflt,
                                  int *out)
{
    struct at_result_iter t = *it;
    size_t p;
    int r = field_start(&t, &p);

    if (r == 0)
        return at_result_next_number(it, min, max, out);
    if (r == -ENODATA)
        field_end(&t, p);      /* at a comma or the line's end: cannot fail */
    *out = dflt;
    *it = t;
    return 0;
}

/* Copies len bytes at s as a string, or -EMSGSIZE. */
static int copy_out(const char *s, size_t len, char *buf, size_t size)
{
    if (len >= size)
        return -EMSGSIZE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

/* Past the closing quote of the string that opens at p: the next '"', or
 * with greedy the line's last one. p when there is none. */
static size_t string_end(const char *s, size_t p, bool greedy)
{
    size_t end = p;

    for (size_t q = p + 1; s[q]; q++) {
        if (s[q] != '"')
            continue;
        end = q + 1;
        if (!greedy)
            break;
    }
    return end;
}

static int read_string(struct at_result_iter *it, bool greedy, char *buf, size_t size)
{
    struct at_result_iter t = *it;
    size_t p, end;
    int r = field_start(&t, &p);

    if (r < 0)
        return r;
    if (t.line[p] != '"' || (end = string_end(t.line, p, greedy)) == p || field_end(&t, end) < 0)
        return -EINVAL;
    r = copy_out(t.line + p + 1, end - p - 2, buf, size);
    if (r == 0)
        *it = t;
    return r;
}

int at_result_next_string(struct at_result_iter *it, char *buf, size_t size)
{
    return read_string(it, false, buf, size);
}

int at_result_next_string_greedy(struct at_result_iter *it, char *buf, size_t size)
{
    return read_string(it, true, buf, size);
}

/* Where an unquoted field that starts at p ends: its comma, the line's
 * end or the open list's ')'. */
static size_t unquoted_end(const struct at_result_iter *it, size_t p)
{
    while (it->line[p] && it->line[p] != ',' && !closes_list(it, p))
        p++;
    return p;
}

int at_result_next_unquoted(struct at_result_iter *it, char *buf, size_t size)
{
    struct at_result_iter t = *it;
    size_t p, e, q;
    int r = field_start(&t, &p);

    if (r < 0)
        return r;
    q = e = unquoted_end(&t, p);
    while (e > p && t.line[e - 1] == ' ')
        e--;
    if (t.line[p] == '(' || memchr(t.line + p, '"', e - p))
        return -EINVAL;
    field_end(&t, q);          /* at a comma, the end or ')': cannot fail */
    r = copy_out(t.line + p, e - p, buf, size);
    if (r == 0)
        *it = t;
    return r;
}

/* Past the list that opens at p (nested lists and strings inside it
 * included), or p when it is not closed. */
static size_t list_end(const char *s, size_t p)
{
    unsigned depth = 0;

    for (size_t q = p; s[q]; q++) {
        if (s[q] == '"') {
            size_t e = string_end(s, q, false);
            if (e == q)
                return p;
            q = e - 1;
        } else if (s[q] == '(')
            depth++;
        else if (s[q] == ')' && --depth == 0)
            return q + 1;
    }
    return p;
}

int at_result_skip_next(struct at_result_iter *it)
{
    struct at_result_iter t = *it;
    size_t p, e;
    int r = field_start(&t, &p);

    if (r == -ENOENT)
        return r;
    if (r == -ENODATA)
        e = p;
    else if (t.line[p] == '"')
        e = string_end(t.line, p, false);
    else if (t.line[p] == '(')
        e = list_end(t.line, p);
    else
        e = unquoted_end(&t, p);
    /* e == p: an unterminated string or list (an empty field has no end
     * to check either, but cannot fail it) */
    if ((e == p && r == 0) || field_end(&t, e) < 0)
        return -EINVAL;
    *it = t;
    return 0;
}

int at_result_open_list(struct at_result_iter *it)
{
    size_t p;
    int r = field_start(it, &p);

    if (r < 0)
        return r;
    if (it->line[p] != '(')
        return -EINVAL;
    it->pos = p + 1;
    it->depth++;
    return 0;
}

int at_result_close_list(struct at_result_iter *it)
{
    struct at_result_iter t = *it;
    size_t p;
    int r;

    if (t.depth == 0)
        return -EINVAL;
    while ((r = at_result_skip_next(&t)) == 0)
        ;
    p = skip_spaces(t.line, t.pos);
    if (r != -ENOENT || t.end || t.line[p] != ')')
        return -EINVAL;
    t.depth--;
    if (field_end(&t, p + 1) < 0)
        return -EINVAL;
    *it = t;
    return 0;
}

const char *at_result_rest(const struct at_result_iter *it)
{
    return it->line + skip_spaces(it->line, it->pos);
}

bool at_result_at_end(const struct at_result_iter *it)
{
    return it->end;
}

static const char *const final_names[] = {
    [AT_FINAL_OK] = "OK",
    [AT_FINAL_ERROR] = "ERROR",
    [AT_FINAL_CME] = "+CME ERROR",
    [AT_FINAL_CMS] = "+CMS ERROR",
    [AT_FINAL_NO_CARRIER] = "NO CARRIER",
    [AT_FINAL_BUSY] = "BUSY",
    [AT_FINAL_NO_ANSWER] = "NO ANSWER",
    [AT_FINAL_NO_DIALTONE] = "NO DIALTONE",
    [AT_FINAL_TIMEOUT] = "TIMEOUT",
    [AT_FINAL_CANCELLED] = "CANCELLED",
    [AT_FINAL_OUT_OF_STEP] = "OUT OF STEP",
};

const char *at_result_final_name(enum at_final f)
{
    if ((unsigned)f >= sizeof(final_names) / sizeof(final_names[0]))
        return "?";
    return final_names[f];
}
