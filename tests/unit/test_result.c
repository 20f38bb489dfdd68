/* at/result: the AT result iterator, walked over A7670 answers and URCs
 * (from the services' transcripts and the A76xx manual) and over what must
 * not be believed. Each row is a line and the reads made on it, in order. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "at/result.h"

enum op { STOP, NUM, NUM_DEF, STR, GREEDY, WORD, SKIP, OPEN, CLOSE, AT_END, NOT_END };

struct step {
    enum op op;
    int ret;
    const char *want;      /* the value read (numbers as "%d"); NULL: none */
    int min, max, dflt;
    size_t size;           /* the string buffer; 0: 64 */
};

#define N(ret, want) { NUM, ret, want, 0, 255, 0, 0 }
#define NR(min, max, ret, want) { NUM, ret, want, min, max, 0, 0 }
#define ND(dflt, ret, want) { NUM_DEF, ret, want, 0, 255, dflt, 0 }
#define S(ret, want) { STR, ret, want, 0, 0, 0, 0 }
#define SN(size, ret, want) { STR, ret, want, 0, 0, 0, size }
#define G(ret, want) { GREEDY, ret, want, 0, 0, 0, 0 }
#define W(ret, want) { WORD, ret, want, 0, 0, 0, 0 }
#define WN(size, ret, want) { WORD, ret, want, 0, 0, 0, size }
#define SKIP(ret) { SKIP, ret, NULL, 0, 0, 0, 0 }
#define OPEN(ret) { OPEN, ret, NULL, 0, 0, 0, 0 }
#define CLOSE(ret) { CLOSE, ret, NULL, 0, 0, 0, 0 }
#define END { AT_END, 0, NULL, 0, 0, 0, 0 }
#define MORE { NOT_END, 0, NULL, 0, 0, 0, 0 }

#define MAX_STEPS 14

struct row {
    const char *name;
    const char *line;
    const char *prefix;    /* NULL: the whole line is fields */
    struct step steps[MAX_STEPS];
};

static const struct row rows[] = {
    /* Numbers. */
    { "csq", "+CSQ: 14,99", "+CSQ:", { N(0, "14"), N(0, "99"), END } },
    { "csq without space", "+CSQ:20,99", "+CSQ:", { N(0, "20"), N(0, "99"), END } },
    { "the manual's spaces", "+CEREG: 2, 2", "+CEREG:", { N(0, "2"), N(0, "2"), END } },
    { "spaces around every field", "+CUSD: 2 , \"bye\" , 15 ", "+CUSD:",
      { N(0, "2"), S(0, "bye"), N(0, "15"), END } },
    { "cpsi: negative values need a signed range",
      "+CPSI: LTE,Online,262-01,0x1A2B,12345678,300,EUTRAN-BAND3,1300,5,5,-94,-1050,-720,15",
      "+CPSI:",
      { W(0, "LTE"), W(0, "Online"), W(0, "262-01"), W(0, "0x1A2B"),
        NR(0, INT_MAX, 0, "12345678"), SKIP(0), SKIP(0), SKIP(0), SKIP(0), SKIP(0),
        N(-EINVAL, NULL), NR(-200, 0, 0, "-94") } },
    { "a sign only where the range has one", "+CPMS: \"SM\",+1,-1", "+CPMS:",
      { SKIP(0), NR(-5, 5, -EINVAL, NULL), SKIP(0), N(-EINVAL, NULL), NR(-5, 5, 0, "-1") } },
    { "range", "+CSQ: 32,256", "+CSQ:",
      { NR(0, 31, -ERANGE, NULL), NR(0, 32, 0, "32"), N(-ERANGE, NULL), NR(0, 256, 0, "256") } },
    { "int limits", "+X: 2147483647,-2147483648,2147483648,-2147483649", "+X:",
      { NR(0, INT_MAX, 0, "2147483647"), NR(INT_MIN, 0, 0, "-2147483648"),
        NR(0, INT_MAX, -ERANGE, NULL), SKIP(0), NR(INT_MIN, 0, -ERANGE, NULL) } },
    { "no overflow, however long", "+CPMS: \"SM\",4294967326,99999999999999999999999,-0",
      "+CPMS:",
      { SKIP(0), NR(0, INT_MAX, -ERANGE, NULL), SKIP(0), NR(INT_MIN, INT_MAX, -ERANGE, NULL),
        SKIP(0), NR(-1, 1, 0, "0"), END } },
    { "saturation stays out of range for a sign", "+X: -21474836480", "+X:",
      { NR(INT_MIN, 0, -ERANGE, NULL) } },
    { "leading zeros", "+CMGR: 007", "+CMGR:", { N(0, "7"), END } },
    { "garbage after a number", "+CPMS: \"SM\",30x,3 0,-", "+CPMS:",
      { SKIP(0), N(-EINVAL, NULL), SKIP(0), N(-EINVAL, NULL), SKIP(0),
        NR(-1, 1, -EINVAL, NULL) } },
    { "not a number", "+CSQ: x,0x10,\"5\"", "+CSQ:",
      { N(-EINVAL, NULL), SKIP(0), N(-EINVAL, NULL), SKIP(0), N(-EINVAL, NULL) } },

    /* Empty and absent fields. */
    { "cmgr: empty alpha", "+CMGR: 0,,24", "+CMGR:",
      { N(0, "0"), N(-ENODATA, NULL), S(-ENODATA, NULL), W(-ENODATA, NULL), SKIP(0),
        N(0, "24"), END, N(-ENOENT, NULL), S(-ENOENT, NULL), SKIP(-ENOENT) } },
    { "clip: empty middle fields, defaults", "+CLIP: \"+4917000000000\",145,,,,0", "+CLIP:",
      { S(0, "+4917000000000"), N(0, "145"), ND(7, 0, "7"), SKIP(0), SKIP(0), ND(7, 0, "0"),
        END, ND(9, 0, "9") } },
    { "absent optional fields give the default", "+CUSD: 2", "+CUSD:",
      { N(0, "2"), END, ND(-1, 0, "-1"), END } },
    { "nothing after the prefix: one empty field", "+CSQ:", "+CSQ:",
      { MORE, N(-ENODATA, NULL), ND(3, 0, "3"), END, N(-ENOENT, NULL) } },
    { "trailing comma: an empty last field", "+CUSD: 0,", "+CUSD:",
      { N(0, "0"), MORE, S(-ENODATA, NULL), SKIP(0), END } },
    { "a bad number is not an empty one", "+X: y", "+X:", { ND(1, -EINVAL, NULL), MORE } },

    /* Strings. */
    { "cops", "+COPS: 0,0,\"Vodafone, DE\",7", "+COPS:",
      { N(0, "0"), N(0, "0"), S(0, "Vodafone, DE"), N(0, "7"), END } },
    { "cmgl: alpha with a comma", "+CMGL: 7,0,\"Alice, Bob\",24", "+CMGL:",
      { N(0, "7"), N(0, "0"), SKIP(0), N(0, "24"), END } },
    { "cmti", "+CMTI: \"SM\",3", "+CMTI:", { S(0, "SM"), N(0, "3"), END } },
    { "cnum: empty alpha, then the number", "+CNUM: ,\"+4917000000000\",145", "+CNUM:",
      { SKIP(0), S(0, "+4917000000000"), N(0, "145"), END } },
    { "empty string", "+CMGR: 1,\"\",24", "+CMGR:", { N(0, "1"), S(0, ""), N(0, "24") } },
    { "escapes are not the iterator's: kept as text", "+CUSD: 0,\"a\\22b\\\\\",15", "+CUSD:",
      { N(0, "0"), S(0, "a\\22b\\\\"), N(0, "15"), END } },
    { "a quote ends the string", "+CUSD: 0,\"say \"hi\", then\",15", "+CUSD:",
      { N(0, "0"), S(-EINVAL, NULL), G(0, "say \"hi\", then"), N(0, "15"), END } },
    { "greedy: only an unquoted field may follow", "+CUSD: 0,\"x\",15 \"y", "+CUSD:",
      { N(0, "0"), G(-EINVAL, NULL), S(0, "x"), N(-EINVAL, NULL) } },
    { "unterminated string", "+CPMS: \"SM,0,30", "+CPMS:",
      { S(-EINVAL, NULL), G(-EINVAL, NULL), SKIP(-EINVAL), W(-EINVAL, NULL) } },
    { "a lone quote", "+X: \"", "+X:", { S(-EINVAL, NULL), G(-EINVAL, NULL), SKIP(-EINVAL) } },
    { "garbage after a string", "+CUSD: 0,\"a\"b", "+CUSD:",
      { N(0, "0"), S(-EINVAL, NULL), SKIP(-EINVAL), MORE } },
    { "unquoted where a string belongs", "+CPMS: SM,0,30", "+CPMS:",
      { S(-EINVAL, NULL), W(0, "SM") } },
    { "bounded copy: exactly what fits", "+COPS: 0,0,\"Sim Telecom\",7", "+COPS:",
      { SKIP(0), SKIP(0), SN(11, -EMSGSIZE, NULL), SN(12, 0, "Sim Telecom"), N(0, "7") } },
    { "bounded copy: size 1", "+CMGR: 1,\"\",\"a\"", "+CMGR:",
      { SKIP(0), SN(1, 0, ""), SN(1, -EMSGSIZE, NULL),
        SN(2, 0, "a") } },

    /* Unquoted words. */
    { "cpin", "+CPIN: SIM PIN", "+CPIN:", { W(0, "SIM PIN"), END } },
    { "cpsi no service", "+CPSI: NO SERVICE,Online", "+CPSI:",
      { W(0, "NO SERVICE"), W(0, "Online"), END } },
    { "spaces around a word are not its", "+CPIN:   READY  ", "+CPIN:", { W(0, "READY"), END } },
    { "word bounded", "+CPIN: READY", "+CPIN:", { WN(5, -EMSGSIZE, NULL), WN(6, 0, "READY") } },
    { "a quote inside a word", "+X: ab\"c\",1", "+X:", { W(-EINVAL, NULL), SKIP(0), N(0, "1") } },
    { "bare digits (AT+CGSN)", "861234567890123", NULL, { W(0, "861234567890123"), END } },

    /* Lists: AT+COPS=? and AT+CPMS=?. */
    { "cops=?", "+COPS: (2,\"Vodafone.de\",\"Vodafone\",\"26202\",7),(3,\"Telekom.de\","
      "\"Telekom\",\"26201\",7),,(0-4),(0-2)", "+COPS:",
      { OPEN(0), N(0, "2"), S(0, "Vodafone.de"), CLOSE(0), OPEN(0), N(0, "3"), SKIP(0),
        S(0, "Telekom"), SKIP(0), N(0, "7"), N(-ENOENT, NULL), CLOSE(0) } },
    { "cops=?: empty field and ranges", "+COPS: (1),,(0-4),(0,1)", "+COPS:",
      { SKIP(0), OPEN(-ENODATA), SKIP(0), OPEN(0), N(-EINVAL, NULL), W(0, "0-4"),
        W(-ENOENT, NULL), CLOSE(0), OPEN(0), N(0, "0"), N(0, "1"), CLOSE(0) } },
    { "cpms=?", "+CPMS: (\"SM\",\"ME\"),(\"SM\",\"ME\"),(\"SM\",\"ME\")", "+CPMS:",
      { OPEN(0), S(0, "SM"), S(0, "ME"), S(-ENOENT, NULL), CLOSE(0), SKIP(0), OPEN(0),
        CLOSE(0), END, OPEN(-ENOENT) } },
    { "nested, with ')' and ',' inside strings", "+X: ((1,\")\"),(\",(\")),2", "+X:",
      { OPEN(0), OPEN(0), N(0, "1"), S(0, ")"), CLOSE(0), SKIP(0), CLOSE(0), N(0, "2"), END } },
    { "skipping a nested list whole", "+X: ((1,\")\"),(\",(\")),2", "+X:",
      { SKIP(0), N(0, "2"), END } },
    { "empty list", "+X: (),1", "+X:", { OPEN(0), N(-ENOENT, NULL), SKIP(-ENOENT), CLOSE(0),
                                         N(0, "1") } },
    { "a list is not a number", "+CPMS: (\"SM\"),1", "+CPMS:",
      { N(-EINVAL, NULL), S(-EINVAL, NULL), W(-EINVAL, NULL), SKIP(0), N(0, "1") } },
    { "close without open", "+X: 1)", "+X:", { CLOSE(-EINVAL), N(-EINVAL, NULL) } },
    { "unclosed list", "+X: (1,2", "+X:",
      { SKIP(-EINVAL), OPEN(0), N(0, "1"), N(0, "2"), CLOSE(-EINVAL) } },
    { "garbage after a list", "+X: (1)x,2", "+X:", { SKIP(-EINVAL), OPEN(0), CLOSE(-EINVAL) } },
    { "a quote unterminated inside a list", "+X: (\"a)", "+X:",
      { SKIP(-EINVAL), OPEN(0), CLOSE(-EINVAL) } },

    /* Garbage and other lines. */
    { "empty line", "", NULL, { MORE, N(-ENODATA, NULL), SKIP(0), END } },
    { "commas only", ",,", NULL, { SKIP(0), SKIP(0), SKIP(0), END, SKIP(-ENOENT) } },
    { "control bytes are text", "+X: \x01\x7f,\"\x1b\"", "+X:",
      { W(0, "\x01\x7f"), S(0, "\x1b"), END } },
};

static const char *op_name(enum op op)
{
    static const char *const names[] = { "stop", "number", "number_default", "string", "greedy",
                                         "unquoted", "skip", "open", "close", "at_end",
                                         "not at_end" };
    return names[op];
}

/* One step; returns what it returned and prints the value read to got. */
static int run_step(struct at_result_iter *it, const struct step *s, char *got, size_t gsize)
{
    char buf[64];
    size_t size = s->size ? s->size : sizeof(buf);
    int v = INT_MIN + 7, r = 0;

    memset(buf, '#', sizeof(buf));
    got[0] = '\0';
    switch (s->op) {
    case NUM: r = at_result_next_number(it, s->min, s->max, &v); break;
    case NUM_DEF: r = at_result_next_number_default(it, s->min, s->max, s->dflt, &v); break;
    case STR: r = at_result_next_string(it, buf, size); break;
    case GREEDY: r = at_result_next_string_greedy(it, buf, size); break;
    case WORD: r = at_result_next_unquoted(it, buf, size); break;
    case STOP: break;
    case SKIP: return at_result_skip_next(it);
    case OPEN: return at_result_open_list(it);
    case CLOSE: return at_result_close_list(it);
    case AT_END: return at_result_at_end(it) ? 0 : -1;
    case NOT_END: return at_result_at_end(it) ? -1 : 0;
    }
    if (s->op == NUM || s->op == NUM_DEF) {
        if (v != INT_MIN + 7)
            snprintf(got, gsize, "%d", v);
    } else if (buf[0] != '#' || r == 0) {
        /* Written only on success, NUL-terminated within size. */
        assert_non_null(memchr(buf, '\0', size));
        snprintf(got, gsize, "%s", buf);
    }
    return r;
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *row = &rows[i];
        /* An exactly sized copy: ASan sees a read past the end. */
        char *line = strdup(row->line);
        struct at_result_iter it;

        assert_non_null(line);
        at_result_iter_init(&it, line);
        if (!at_result_iter_next(&it, row->prefix))
            fail_msg("%s: prefix %s not matched", row->name, row->prefix);
        for (size_t k = 0; k < MAX_STEPS && row->steps[k].op != STOP; k++) {
            const struct step *s = &row->steps[k];
            struct at_result_iter before = it;
            char got[80];
            int r = run_step(&it, s, got, sizeof(got));

            if (r != s->ret)
                fail_msg("%s: step %zu (%s) returned %d, want %d", row->name, k + 1,
                         op_name(s->op), r, s->ret);
            if (r < 0 && memcmp(&before, &it, sizeof(it)) != 0)
                fail_msg("%s: step %zu (%s) failed but moved the iterator", row->name, k + 1,
                         op_name(s->op));
            if (r < 0 && got[0])
                fail_msg("%s: step %zu (%s) failed but wrote '%s'", row->name, k + 1,
                         op_name(s->op), got);
            if (s->want && strcmp(got, s->want) != 0)
                fail_msg("%s: step %zu (%s) read '%s', want '%s'", row->name, k + 1,
                         op_name(s->op), got, s->want);
        }
        free(line);
    }
}

static void test_prefix(void **state)
{
    struct at_result_iter it;
    int v = -1;

    (void)state;
    at_result_iter_init(&it, "+CREG: 1");
    assert_false(at_result_iter_next(&it, "+CEREG:"));
    assert_false(at_result_iter_next(&it, "+CREG: 1,"));   /* longer than the line */
    assert_true(at_result_iter_next(&it, "+CREG"));        /* then ": 1" is a word */
    assert_int_equal(at_result_next_number(&it, 0, 9, &v), -EINVAL);
    assert_true(at_result_iter_next(&it, "+CREG:"));
    assert_int_equal(at_result_next_number(&it, 0, 9, &v), 0);
    assert_int_equal(v, 1);
    assert_true(at_result_at_end(&it));
    /* Matching again starts over at the first field. */
    assert_true(at_result_iter_next(&it, "+CREG:"));
    assert_false(at_result_at_end(&it));
    assert_true(at_result_iter_next(&it, ""));
    assert_int_equal(at_result_next_number(&it, 0, 9, &v), -EINVAL);

    /* Free text (AT+CGMR): the rest of the line, from the current field. */
    at_result_iter_init(&it, "+CGMR:  A011B07, V1 ");
    assert_true(at_result_iter_next(&it, "+CGMR:"));
    assert_string_equal(at_result_rest(&it), "A011B07, V1 ");
    assert_int_equal(at_result_skip_next(&it), 0);
    assert_string_equal(at_result_rest(&it), "V1 ");
}

/* A line as long as the lexer allows, and a string as long as the line. */
static void test_long_line(void **state)
{
    enum { LEN = 3071 };
    char *line = malloc(LEN + 1), *buf = malloc(LEN);
    struct at_result_iter it;
    int v;

    (void)state;
    assert_non_null(line);
    assert_non_null(buf);
    memset(line, '0', LEN);
    memcpy(line, "+X: \"", 5);
    line[LEN - 1] = '"';
    line[LEN] = '\0';
    at_result_iter_init(&it, line);
    assert_true(at_result_iter_next(&it, "+X:"));
    assert_int_equal(at_result_next_string(&it, buf, LEN - 7), -EMSGSIZE);
    assert_int_equal(at_result_next_string(&it, buf, LEN - 5), 0);
    assert_int_equal(strlen(buf), LEN - 6);
    assert_true(at_result_at_end(&it));

    memset(line, '0', LEN);
    memcpy(line, "+X: ", 4);
    line[LEN - 1] = '7';
    at_result_iter_init(&it, line);
    assert_true(at_result_iter_next(&it, "+X:"));
    assert_int_equal(at_result_next_number(&it, 0, 9, &v), 0);
    assert_int_equal(v, 7);
    free(line);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
