/* core/refmap: sent SMS by reference for delivery reports. Lookup by
 * (reference, recipient), the wrap of TP-MR, expiry, the bound, restarts,
 * torn and corrupt files. Each test works in its own mkdtemp directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/refmap.h"

#define T0 1795237200            /* 2026-11-21T05:00:00Z */
#define TO "+491701234567"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/m2m-refmap-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/" REFMAP_FILE, dir);
    return 0;
}

static int teardown(void **state)
{
    char tmp[160];

    (void)state;
    unlink(path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    rmdir(dir);
    return 0;
}

static struct refmap *open_at(int64_t now)
{
    struct refmap *m = NULL;

    assert_int_equal(refmap_open(dir, now, &m), 0);
    assert_non_null(m);
    return m;
}

static size_t file_lines(void)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c, last = '\n';

    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    fclose(f);
    assert_int_equal(last, '\n');        /* appending stays safe */
    return n;
}

/* Part `part` of `parts`; takes id. */
static void add_part(struct refmap *m, cJSON *id, const char *to, int ref, unsigned part,
                     unsigned parts, int64_t now)
{
    assert_int_equal(refmap_add(m, id, to, ref, part, parts, now), 0);
    cJSON_Delete(id);
}

/* A single-part SMS. */
static void add(struct refmap *m, cJSON *id, const char *to, int ref, int64_t now)
{
    add_part(m, id, to, ref, 1, 1, now);
}

static void expect(const struct refmap *m, int ref, const char *to, int64_t now, const char *id,
                   unsigned part, unsigned parts)
{
    const struct refmap_entry *e = refmap_find(m, ref, to, now);

    if (!id) {
        assert_null(e);
        return;
    }
    assert_non_null(e);
    assert_int_equal(e->reference, ref);
    assert_string_equal(e->id, id);
    assert_int_equal(e->part, part);
    assert_int_equal(e->parts, parts);
}

static void test_add_find(void **state)
{
    struct refmap *m = open_at(T0);

    (void)state;
    expect(m, 5, TO, T0, NULL, 0, 0);
    add(m, cJSON_CreateNumber(42), TO, 5, T0);
    expect(m, 5, TO, T0, "42", 1, 1);
    expect(m, 5, "+491709999999", T0, NULL, 0, 0);
    expect(m, 6, TO, T0, NULL, 0, 0);
    /* Parts 1 and 3 of 3 (part 2 got no reference from the module). */
    add_part(m, cJSON_CreateString("abc"), TO, 10, 1, 3, T0);
    add_part(m, cJSON_CreateString("abc"), TO, 12, 3, 3, T0);
    expect(m, 10, TO, T0, "\"abc\"", 1, 3);
    expect(m, 12, TO, T0, "\"abc\"", 3, 3);
    expect(m, 11, TO, T0, NULL, 0, 0);
    /* A command without an id: the part is still known. */
    add(m, NULL, TO, 5, T0 + 1);
    expect(m, 5, TO, T0 + 1, "null", 1, 1);
    assert_int_equal(file_lines(), 4);           /* one line per part */
    /* What would break the line format or make no sense is refused. */
    assert_int_equal(refmap_add(m, NULL, "+49 170", 5, 1, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, "", 5, 1, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, TO, -1, 1, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, TO, 256, 1, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, TO, 5, 0, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, TO, 5, 2, 1, T0), -EINVAL);
    assert_int_equal(refmap_add(m, NULL, TO, 5, 256, 256, T0), -EINVAL);
    assert_int_equal(file_lines(), 4);
    expect(m, 5, TO, T0 + 1, "null", 1, 1);
    refmap_close(m);
}

/* TP-MR is one octet: after 256 SMS the module hands out 7 again. The
 * newest entry for (7, recipient) wins; other recipients keep theirs. */
static void test_wrap_prefers_newest(void **state)
{
    struct refmap *m = open_at(T0);

    (void)state;
    add(m, cJSON_CreateString("old"), TO, 7, T0);
    add(m, cJSON_CreateString("other"), "+48601234567", 7, T0 + 5);
    add(m, cJSON_CreateString("new"), TO, 7, T0 + 10);
    expect(m, 7, TO, T0 + 10, "\"new\"", 1, 1);
    expect(m, 7, "+48601234567", T0 + 10, "\"other\"", 1, 1);
    refmap_close(m);
    m = open_at(T0 + 20);                        /* the same after a restart */
    expect(m, 7, TO, T0 + 20, "\"new\"", 1, 1);
    refmap_close(m);
}

static void test_expiry(void **state)
{
    struct refmap *m = open_at(T0);

    (void)state;
    add(m, cJSON_CreateNumber(1), TO, 1, T0);
    add(m, cJSON_CreateNumber(2), TO, 2, T0 + 3600);
    expect(m, 1, TO, T0 + REFMAP_MAX_AGE_S, "1", 1, 1);
    expect(m, 1, TO, T0 + REFMAP_MAX_AGE_S + 1, NULL, 0, 0);
    refmap_close(m);
    /* Reopened a day later: the expired line is gone from the file too. */
    m = open_at(T0 + REFMAP_MAX_AGE_S + 1);
    assert_int_equal(file_lines(), 1);
    expect(m, 2, TO, T0 + REFMAP_MAX_AGE_S + 1, "2", 1, 1);
    refmap_close(m);
}

/* At most REFMAP_MAX parts, the oldest go first; the file is compacted
 * when it reaches twice that, so it never grows without bound. */
static void test_bound(void **state)
{
    struct refmap *m = open_at(T0);
    char to[32];
    size_t n = 2 * REFMAP_MAX + 52;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        int ref = (int)(i % 256);
        snprintf(to, sizeof(to), "+4917000%05zu", i);
        add(m, cJSON_CreateNumber((double)i), to, ref, T0);
        assert_true(file_lines() < 2 * REFMAP_MAX);
    }
    snprintf(to, sizeof(to), "+4917000%05zu", n - REFMAP_MAX - 1);
    expect(m, (int)((n - REFMAP_MAX - 1) % 256), to, T0, NULL, 0, 0);
    snprintf(to, sizeof(to), "+4917000%05zu", n - REFMAP_MAX);
    {
        char id[16];
        snprintf(id, sizeof(id), "%zu", n - REFMAP_MAX);
        expect(m, (int)((n - REFMAP_MAX) % 256), to, T0, id, 1, 1);
    }
    assert_int_equal(file_lines(), 52 + REFMAP_MAX);
    refmap_close(m);
    m = open_at(T0);                             /* more lines than kept: compacted */
    assert_int_equal(file_lines(), REFMAP_MAX);
    refmap_close(m);
}

/* Ids come back as the JSON the user sent: numbers, strings with quotes,
 * backslashes, non-ASCII; one too long to keep comes back null. */
static void test_restart_ids(void **state)
{
    char long_id[REFMAP_ID_MAX + 10];
    struct refmap *m = open_at(T0);

    (void)state;
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    add(m, cJSON_CreateNumber(42.5), TO, 1, T0);
    add(m, cJSON_CreateString("a \"b\" \\ \xc3\xbc"), TO, 2, T0);
    add(m, cJSON_CreateString(long_id), TO, 3, T0);
    add(m, cJSON_CreateTrue(), TO, 4, T0);          /* not an id: null */
    refmap_close(m);
    m = open_at(T0 + 60);
    expect(m, 1, TO, T0 + 60, "42.5", 1, 1);
    expect(m, 2, TO, T0 + 60, "\"a \\\"b\\\" \\\\ \xc3\xbc\"", 1, 1);
    expect(m, 3, TO, T0 + 60, "null", 1, 1);
    expect(m, 4, TO, T0 + 60, "null", 1, 1);
    refmap_close(m);
}

/* A power cut mid-append, or a file someone edited: what parses stays,
 * the rest is dropped and the file rewritten, so the next append starts
 * on a line of its own. */
static void test_torn_and_corrupt(void **state)
{
    FILE *f = fopen(path, "w");
    struct refmap *m;

    (void)state;
    assert_non_null(f);
    fprintf(f, "%d 3 1 2 " TO " \"keep\"\n", T0);
    fprintf(f, "garbage\n");
    fprintf(f, "%d 11 1 1 " TO " \"%0400d\"\n", T0, 0);  /* too long */
    fprintf(f, "%d 300 1 1 " TO " 1\n", T0);        /* reference out of range */
    fprintf(f, "%d 4 3 2 " TO " 1\n", T0);          /* part beyond parts */
    fprintf(f, "%d 5 1 1 " TO " {\"x\":1}\n", T0);  /* id not a string or number */
    fprintf(f, "%d 7 1 1 " TO " \"id\" x\n", T0);    /* more after the id */
    fprintf(f, "%d 8 1 1 " TO " 42x\n", T0);
    fwrite("1 2\0 x\n", 1, 7, f);                  /* a NUL (a zero-filled block) */
    fprintf(f, "%d 10 1 1 " TO " \"after\"\n", T0); /* ...does not cost the next line */
    fprintf(f, "%d 6 1 1 " TO " \"to", T0);         /* torn */
    fclose(f);
    m = open_at(T0);
    assert_int_equal(file_lines(), 2);
    expect(m, 3, TO, T0, "\"keep\"", 1, 2);
    expect(m, 10, TO, T0, "\"after\"", 1, 1);
    for (int ref = 4; ref <= 8; ref++)
        expect(m, ref, TO, T0, NULL, 0, 0);
    expect(m, 11, TO, T0, NULL, 0, 0);
    add(m, cJSON_CreateNumber(9), TO, 9, T0);
    refmap_close(m);
    m = open_at(T0);
    expect(m, 3, TO, T0, "\"keep\"", 1, 2);
    expect(m, 9, TO, T0, "9", 1, 1);
    assert_int_equal(file_lines(), 3);
    refmap_close(m);
}

/* The file holds phone numbers: 0600 also after a rewrite, whatever the
 * umask lets through. */
static void test_private_after_compaction(void **state)
{
    struct stat st;
    struct refmap *m;
    mode_t old = umask(022);
    FILE *f = fopen(path, "w");

    (void)state;
    assert_non_null(f);
    fprintf(f, "garbage\n");                  /* makes the open compact */
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    m = open_at(T0);
    umask(old);
    add(m, cJSON_CreateNumber(1), TO, 1, T0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(file_lines(), 1);
    refmap_close(m);
}

static void test_same_number(void **state)
{
    static const struct {
        const char *a, *b;
        bool same;
    } rows[] = {
        { TO, TO, true },
        { TO, "01701234567", true },               /* the SC reports the national form */
        { "01701234567", TO, true },
        { "00491701234567", TO, true },
        { TO, "+491701234568", false },
        { "+4917012345678", "01701234567", false },
        { "8888", "8888", true },                  /* short codes: only as they are */
        { "8888", "+498888", false },
        { "08888", "+498888", false },             /* too short to tell */
        { "01701234567", "01701234567", true },
        { "01701234567", "+4912301701234567", false },  /* no 1-3 digit country code */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (refmap_same_number(rows[i].a, rows[i].b) != rows[i].same)
            fail_msg("%s vs %s: expected %s", rows[i].a, rows[i].b,
                     rows[i].same ? "same" : "different");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap_prefers_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_after_compaction, setup, teardown),
        cmocka_unit_test(test_same_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
