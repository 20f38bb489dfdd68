/* AT result iterator: reads the fields of one response or URC line, in the
 * style of oFono's GAtResultIter. Pure: no allocation, no I/O.
 *
 *   struct at_result_iter it;
 *   int rssi, ber;
 *   at_result_iter_init(&it, "+CSQ: 14,99");
 *   if (at_result_iter_next(&it, "+CSQ:") &&
 *       at_result_next_number(&it, 0, 99, &rssi) == 0 &&
 *       at_result_next_number(&it, 0, 99, &ber) == 0) ...
 *
 * A line is fields separated by commas: numbers (14, -94), quoted strings
 * ("Vodafone, DE": commas and spaces inside are the string's), unquoted
 * words (LTE, SIM PIN, 0x1A2B, a range 0-4) and parenthesised lists
 * ("(1,2)"), any of which may be empty (",,"). Spaces around a field are
 * not part of it (the A76xx manual's examples put one after each comma).
 * A field ends at a comma, at the end of the line, or at the ')' of the
 * list it is in; anything else after it makes it malformed ("30x", "3 0",
 * "\"a\"b").
 *
 * The line is borrowed (it must outlive the iterator) and NUL-terminated;
 * nothing reads past its NUL.
 *
 * Every reader returns 0 and moves to the next field, or a negative errno
 * and leaves the iterator (and its output) as it was:
 *   -ENOENT   no field left: the line (or the open list) ended;
 *   -ENODATA  the field is empty;
 *   -EINVAL   the field is not of the kind asked for, or malformed;
 *   -ERANGE   a number outside the range asked for;
 *   -EMSGSIZE a string that does not fit the buffer (never cut). */
#ifndef M2M_AT_RESULT_H
#define M2M_AT_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "at/chat.h"

struct at_result_iter {
    const char *line;    /* borrowed */
    size_t pos;          /* where the current field starts */
    unsigned depth;      /* lists opened and not yet closed */
    bool end;            /* the last field was read */
};

/* Positions the iterator at the start of line (its first field). */
void at_result_iter_init(struct at_result_iter *it, const char *line);

/* Whether the line starts with prefix (case-sensitive, "+CSQ:"); if so,
 * the first field is the text after it and the spaces that follow. prefix
 * NULL or "": the whole line is fields (AT+CGSN answers bare digits).
 * Without a match the iterator is unchanged. */
bool at_result_iter_next(struct at_result_iter *it, const char *prefix);

/* A decimal number within [min, max]. Digits only; a leading '-' only when
 * min < 0 (the A76xx prints signed values such as RSRP so, and never a
 * '+'). Leading zeros are allowed; no value overflows, however many digits
 * it has (-ERANGE). */
int at_result_next_number(struct at_result_iter *it, int min, int max, int *out);

/* As at_result_next_number, but an empty field, or none at all (the line
 * ended: trailing optional fields are left out), gives dflt. */
int at_result_next_number_default(struct at_result_iter *it, int min, int max, int dflt,
                                  int *out);

/* A quoted string: its content, copied to buf without the quotes and
 * NUL-terminated. It ends at the next '"' (the module escapes nothing: a
 * backslash is kept as it is); an unterminated one is -EINVAL, content of
 * size bytes or more -EMSGSIZE. An empty field is -ENODATA; "" is an empty
 * string (0). */
int at_result_next_string(struct at_result_iter *it, char *buf, size_t size);

/* As at_result_next_string, but the string ends at the line's last '"'.
 * For modules that print raw text with quotes inside (the A7670's +CUSD
 * under AT+CSCS="IRA"); only a field without quotes may follow it. */
int at_result_next_string_greedy(struct at_result_iter *it, char *buf, size_t size);

/* An unquoted field's text, copied to buf without the spaces around it
 * ("NO SERVICE", "0x1A2B", "0-4"). A field that starts with '"' or '(' or
 * holds a '"' is -EINVAL. */
int at_result_next_unquoted(struct at_result_iter *it, char *buf, size_t size);

/* Steps over one field of any kind, an empty one included. -ENOENT at the
 * end, -EINVAL for an unterminated string or list. */
int at_result_skip_next(struct at_result_iter *it);

/* Enters a "(...)" list field: the readers then read its elements, and
 * -ENOENT at its ')'. */
int at_result_open_list(struct at_result_iter *it);

/* Leaves the innermost open list, stepping over the elements not read,
 * and moves to the field after it. -EINVAL when no list is open or it is
 * malformed. */
int at_result_close_list(struct at_result_iter *it);

/* The unread rest of the line from the current field on, its leading
 * spaces skipped (borrowed from the line): free text such as the AT+CGMR
 * answer, which is no field list. */
const char *at_result_rest(const struct at_result_iter *it);

/* Whether no field is left (a line's optional fields may be absent). */
bool at_result_at_end(const struct at_result_iter *it);

/* at_final_name(): here, so that code that only reads responses (a
 * script's log) needs no chat object. */
const char *at_result_final_name(enum at_final f);

#endif
