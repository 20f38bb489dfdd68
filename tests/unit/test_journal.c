/* core/journal: durability across close and reopen, binary payloads,
 * corrupt records, sequence numbers, locking and threads. Each test works
 * in its own mkdtemp directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
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

#include "core/journal.h"

struct rec {
    uint64_t seq;
    char topic[64];
    uint8_t payload[64];
    size_t len;
};

struct seen {
    struct rec recs[256];
    size_t n;
    struct journal *j; /* for callbacks that call back into the journal */
    int done_in_cb;
    int append_in_cb;
};

static void collect(void *ctx, uint64_t seq, const char *topic, const uint8_t *payload,
                    size_t len)
{
    struct seen *s = ctx;
    assert_true(s->n < 256);
    struct rec *r = &s->recs[s->n++];
    r->seq = seq;
    assert_true(strlen(topic) < sizeof(r->topic));
    strcpy(r->topic, topic);
    /* Keeps a prefix: a 1 MiB record is checked by its length. */
    if (len)
        memcpy(r->payload, payload, len < sizeof(r->payload) ? len : sizeof(r->payload));
    r->len = len;
    if (s->done_in_cb)
        assert_int_equal(journal_done(s->j, seq), 0);
    if (s->append_in_cb) {
        uint64_t x;
        assert_int_equal(journal_append(s->j, "t/new", "n", 1, &x), 0);
        assert_true(x > seq);
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    char *dir = strdup("/tmp/m2m-journal-XXXXXX");
    if (!dir || !mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

/* A journal in a subdirectory that does not exist yet: open creates it. */
static char *state_dir(void **state)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/state", (char *)*state);
    return path;
}

static void write_raw(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/pending/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static int count_pending(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/pending", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static const uint8_t binary[] = { 0x00, 0xff, 0x0d, 0x0a, 0x1a, 0x00, 'M', '2', 'J', '1', 0x80 };

static void test_append_replay_reopen(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    uint64_t s1 = 0, s2 = 0, s3 = 0;

    assert_int_equal(journal_open(dir, &j), 0);
    assert_non_null(j);
    assert_int_equal(journal_append(j, "modem/sms/send", "{\"to\":\"+49\"}", 12, &s1), 0);
    assert_int_equal(journal_append(j, "modem/raw", binary, sizeof(binary), &s2), 0);
    assert_int_equal(journal_append(j, "modem/call/hangup", NULL, 0, &s3), 0);
    assert_true(s1 > 0);
    assert_true(s2 > s1);
    assert_true(s3 > s2);
    journal_close(j);

    assert_int_equal(journal_open(dir, &j), 0);
    struct seen s = { 0 };
    assert_int_equal(journal_replay(j, collect, &s), 3);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.recs[0].seq, s1);
    assert_string_equal(s.recs[0].topic, "modem/sms/send");
    assert_int_equal(s.recs[0].len, 12);
    assert_memory_equal(s.recs[0].payload, "{\"to\":\"+49\"}", 12);
    assert_int_equal(s.recs[1].seq, s2);
    assert_string_equal(s.recs[1].topic, "modem/raw");
    assert_int_equal(s.recs[1].len, sizeof(binary));
    assert_memory_equal(s.recs[1].payload, binary, sizeof(binary));
    assert_int_equal(s.recs[2].seq, s3);
    assert_int_equal(s.recs[2].len, 0);

    /* Replay does not consume: only done does. */
    assert_int_equal(journal_done(j, s2), 0);
    assert_int_equal(journal_done(j, s2), -ENOENT);
    assert_int_equal(journal_done(j, 424242), -ENOENT);
    journal_close(j);

    assert_int_equal(journal_open(dir, &j), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(journal_replay(j, collect, &s), 2);
    assert_int_equal(s.recs[0].seq, s1);
    assert_int_equal(s.recs[1].seq, s3);
    journal_close(j);
}

static void test_seq_monotonic_across_reopen(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    uint64_t last = 0, seq = 0;

    for (int round = 0; round < 3; round++) {
        assert_int_equal(journal_open(dir, &j), 0);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(journal_append(j, "t", "x", 1, &seq), 0);
            assert_true(seq > last);
            last = seq;
            /* Everything done: the pending directory is empty at close. */
            assert_int_equal(journal_done(j, seq), 0);
        }
        journal_close(j);
        assert_int_equal(count_pending(dir), 0);
    }

    /* Without the high-water mark, seqs still continue after the largest
     * pending record. */
    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_append(j, "t", "x", 1, &seq), 0);
    last = seq;
    journal_close(j);
    char path[512];
    snprintf(path, sizeof(path), "%s/journal.seq", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_append(j, "t", "y", 1, &seq), 0);
    assert_int_equal(seq, last + 1);
    journal_close(j);

    /* A corrupt high-water mark is ignored the same way. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("garbage", f);
    fclose(f);
    last = seq;
    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_append(j, "t", "z", 1, &seq), 0);
    assert_int_equal(seq, last + 1);
    journal_close(j);
}

/* Header, "a/b", "payload". */
#define VALID_LEN (16 + 3 + 7)

/* Builds a valid record by appending it in a scratch journal. */
static void valid_record(void **state, uint8_t *buf, size_t size)
{
    char scratch[300];
    snprintf(scratch, sizeof(scratch), "%s/scratch", (char *)*state);
    struct journal *j = NULL;
    uint64_t seq = 0;
    assert_int_equal(journal_open(scratch, &j), 0);
    assert_int_equal(journal_append(j, "a/b", "payload", 7, &seq), 0);
    journal_close(j);
    char path[512];
    snprintf(path, sizeof(path), "%s/pending/%020llu.rec", scratch, (unsigned long long)seq);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    fclose(f);
    assert_int_equal(n, VALID_LEN);
}

static void test_corrupt_records(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    uint8_t rec[64];
    const size_t len = VALID_LEN;
    valid_record(state, rec, sizeof(rec));

    /* Creates the directories. */
    assert_int_equal(journal_open(dir, &j), 0);
    journal_close(j);

    uint8_t bad[64];
    write_raw(dir, "00000000000000000001.rec", rec, len); /* valid */
    write_raw(dir, "00000000000000000002.rec", rec, 10);  /* truncated header */
    write_raw(dir, "00000000000000000003.rec", rec, len - 2); /* truncated payload */
    memcpy(bad, rec, len);
    bad[0] = 'X';
    write_raw(dir, "00000000000000000004.rec", bad, len); /* bad magic */
    memcpy(bad, rec, len);
    bad[len - 1] ^= 0x01;
    write_raw(dir, "00000000000000000005.rec", bad, len); /* checksum */
    memcpy(bad, rec, len);
    bad[len] = 0;
    write_raw(dir, "00000000000000000006.rec", bad, len + 1); /* trailing byte */
    write_raw(dir, "00000000000000000007.rec", NULL, 0); /* empty */
    memcpy(bad, rec, len);
    bad[4] = 0xff;
    bad[5] = 0xff;
    bad[6] = 0xff;
    bad[7] = 0xff;
    write_raw(dir, "00000000000000000008.rec", bad, len); /* absurd length */
    write_raw(dir, "00000000000000000009.rec", rec, len); /* valid */
    write_raw(dir, "00000000000000000010.tmp", rec, len); /* crashed append */
    write_raw(dir, "README", "keep", 4);                  /* not ours: left alone */
    write_raw(dir, "123.rec", rec, len);                  /* not 20 digits: ignored */

    assert_int_equal(journal_open(dir, &j), 0);
    assert_false(exists(dir, "pending/00000000000000000010.tmp"));
    struct seen s = { 0 };
    assert_int_equal(journal_replay(j, collect, &s), 2);
    assert_int_equal(s.recs[0].seq, 1);
    assert_int_equal(s.recs[1].seq, 9);
    assert_string_equal(s.recs[1].topic, "a/b");
    assert_memory_equal(s.recs[1].payload, "payload", 7);
    for (int i = 2; i <= 8; i++) {
        char name[64];
        snprintf(name, sizeof(name), "pending/%020d.rec", i);
        assert_false(exists(dir, name));
    }
    assert_true(exists(dir, "pending/00000000000000000001.rec"));
    assert_true(exists(dir, "pending/README"));
    assert_true(exists(dir, "pending/123.rec"));

    /* The .tmp seq counts: the next seq is beyond it. */
    uint64_t seq = 0;
    assert_int_equal(journal_append(j, "t", "x", 1, &seq), 0);
    assert_true(seq > 10);

    /* A second replay sees the survivors only. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(journal_replay(j, collect, &s), 3);
    journal_close(j);
}

static void test_callbacks_reenter(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    assert_int_equal(journal_open(dir, &j), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(journal_append(j, "t/old", &i, sizeof(i), NULL), 0);

    struct seen s = { .j = j, .done_in_cb = 1, .append_in_cb = 1 };
    assert_int_equal(journal_replay(j, collect, &s), 5);
    assert_int_equal(s.n, 5);

    /* Only the 5 records appended from inside the callbacks remain. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(journal_replay(j, collect, &s), 5);
    for (size_t i = 0; i < s.n; i++)
        assert_string_equal(s.recs[i].topic, "t/new");
    journal_close(j);
}

static void test_bad_arguments_and_lock(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL, *j2 = NULL;
    assert_int_equal(journal_open(NULL, &j), -EINVAL);
    assert_int_equal(journal_open("", &j), -EINVAL);
    assert_int_equal(journal_open(dir, &j), 0);

    /* One state_dir per instance. */
    assert_int_equal(journal_open(dir, &j2), -EBUSY);
    assert_null(j2);

    assert_int_equal(journal_append(j, "", "x", 1, NULL), -EINVAL);
    assert_int_equal(journal_append(j, NULL, "x", 1, NULL), -EINVAL);
    assert_int_equal(journal_append(j, "t", NULL, 1, NULL), -EINVAL);
    size_t big = 1024 * 1024 + 1;
    uint8_t *p = calloc(1, big);
    assert_non_null(p);
    assert_int_equal(journal_append(j, "t", p, big, NULL), -EMSGSIZE);
    assert_int_equal(journal_append(j, "t", p, big - 1, NULL), 0); /* the limit itself */
    free(p);
    char *topic = malloc(70000);
    assert_non_null(topic);
    memset(topic, 'a', 69999);
    topic[69999] = '\0';
    assert_int_equal(journal_append(j, topic, "x", 1, NULL), -EMSGSIZE);
    free(topic);
    assert_int_equal(journal_done(j, 0), -EINVAL);
    assert_int_equal(journal_replay(j, NULL, NULL), -EINVAL);
    journal_close(j);
    journal_close(NULL);

    /* Released on close. */
    assert_int_equal(journal_open(dir, &j2), 0);
    struct seen s = { 0 };
    assert_int_equal(journal_replay(j2, collect, &s), 1);
    assert_int_equal(s.recs[0].len, 1024 * 1024);
    assert_int_equal(journal_done(j2, s.recs[0].seq), 0);
    journal_close(j2);
}

/* A path whose parent is a regular file cannot hold a journal. */
static void test_open_failure(void **state)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/file", (char *)*state);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/file/state", (char *)*state);
    struct journal *j = (struct journal *)1;
    assert_int_equal(journal_open(path, &j), -ENOTDIR);
    assert_null(j);
}

#define THREADS 4
#define PER_THREAD 25

struct worker {
    struct journal *j;
    int id;
    uint64_t seqs[PER_THREAD];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof(payload), "%d:%d", w->id, i);
        if (journal_append(w->j, "t/thread", payload, (size_t)n, &w->seqs[i]) != 0)
            w->seqs[i] = 0;
    }
    return NULL;
}

static void test_threads(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    assert_int_equal(journal_open(dir, &j), 0);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .j = j, .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    /* Each thread's seqs increase; all are distinct. */
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < PER_THREAD; k++) {
            assert_true(w[i].seqs[k] > 0);
            if (k)
                assert_true(w[i].seqs[k] > w[i].seqs[k - 1]);
        }
    }
    struct seen s = { 0 };
    assert_int_equal(journal_replay(j, collect, &s), THREADS * PER_THREAD);
    for (size_t i = 1; i < s.n; i++)
        assert_true(s.recs[i].seq > s.recs[i - 1].seq);
    journal_close(j);
}

/* A command whose effect began (an SMS about to leave) is known as such
 * after a crash, so the bridge answers it instead of running it twice. */
static void test_started_mark(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    uint64_t a, b;
    char path[512];

    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_append(j, "m/sms/send", "{}", 2, &a), 0);
    assert_int_equal(journal_append(j, "m/sms/send", "{}", 2, &b), 0);
    assert_false(journal_is_started(j, a));
    assert_int_equal(journal_started(j, a, 1), 0);
    assert_true(journal_is_started(j, a));
    assert_int_equal(journal_started_part(j, a), 1);
    /* Part 2 of a multipart SMS begins: the mark says which. */
    assert_int_equal(journal_started(j, a, 2), 0);
    assert_int_equal(journal_started_part(j, a), 2);
    assert_int_equal(journal_started_part(j, b), 0);
    assert_false(journal_is_started(j, b));
    journal_close(j);

    /* "Crash": reopen; the mark survived. */
    assert_int_equal(journal_open(dir, &j), 0);
    assert_true(journal_is_started(j, a));
    assert_false(journal_is_started(j, b));
    /* done removes the mark with the record */
    assert_int_equal(journal_done(j, a), 0);
    assert_false(journal_is_started(j, a));
    snprintf(path, sizeof(path), "%s/pending/%020llu.started", dir, (unsigned long long)a);
    assert_int_equal(access(path, F_OK), -1);
    journal_close(j);

    /* An orphan mark (done interrupted between its two unlinks) is removed
     * at open, so a later record with that number cannot inherit it. */
    write_raw(dir, "00000000000000099999.started", NULL, 0);
    assert_int_equal(journal_open(dir, &j), 0);
    snprintf(path, sizeof(path), "%s/pending/00000000000000099999.started", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(journal_started(NULL, 1, 1), -EINVAL);
    assert_int_equal(journal_started(j, 0, 1), -EINVAL);
    assert_int_equal(journal_started(j, 1, 0), -EINVAL);
    journal_close(j);
}

/* A result is stored with its command until the broker has it: it
 * survives a crash, done removes it, a damaged one is reported. */
static void test_result(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    uint64_t a, b;
    uint8_t *blob = NULL;
    size_t len = 0;
    static const uint8_t res[] = "m/sms/send/result\0\0\0\0\0\0{\"ok\":true}";

    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_append(j, "m/sms/send", "{}", 2, &a), 0);
    assert_int_equal(journal_append(j, "m/sms/send", "{}", 2, &b), 0);
    assert_int_equal(journal_result_load(j, a, &blob, &len), -ENOENT);
    assert_int_equal(journal_result(j, a, res, sizeof(res)), 0);
    journal_close(j);

    assert_int_equal(journal_open(dir, &j), 0);
    assert_int_equal(journal_result_load(j, a, &blob, &len), 0);
    assert_int_equal(len, sizeof(res));
    assert_memory_equal(blob, res, sizeof(res));
    free(blob);
    assert_int_equal(journal_result_load(j, b, &blob, &len), -ENOENT);
    assert_int_equal(journal_done(j, a), 0);
    assert_int_equal(journal_result_load(j, a, &blob, &len), -ENOENT);
    /* A torn result file: not taken for a result. */
    char name[64];
    snprintf(name, sizeof(name), "%020llu.result", (unsigned long long)b);
    write_raw(dir, name, "M2R1\x05\0\0\0\0\0\0\0ab", 14);
    assert_int_equal(journal_result_load(j, b, &blob, &len), -EBADMSG);
    assert_null(blob);
    journal_close(j);
}

/* Acknowledged incoming messages: remembered across restarts, the oldest
 * forgotten beyond JOURNAL_PUBLISHED_MAX. */
static void test_published(void **state)
{
    const char *dir = state_dir(state);
    struct journal *j = NULL;
    char key[32];

    assert_int_equal(journal_open(dir, &j), 0);
    assert_false(journal_was_published(j, "0123456789abcdef@3"));
    assert_int_equal(journal_mark_published(j, "0123456789abcdef@3"), 0);
    assert_int_equal(journal_mark_published(j, "bad key"), -EINVAL);
    assert_int_equal(journal_mark_published(j, ""), -EINVAL);
    journal_close(j);
    assert_int_equal(journal_open(dir, &j), 0);
    assert_true(journal_was_published(j, "0123456789abcdef@3"));
    assert_false(journal_was_published(j, "0123456789abcdef@4"));
    for (int i = 0; i < JOURNAL_PUBLISHED_MAX; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(journal_mark_published(j, key), 0);
    }
    assert_false(journal_was_published(j, "0123456789abcdef@3"));
    journal_close(j);
    assert_int_equal(journal_open(dir, &j), 0);
    assert_true(journal_was_published(j, "k0"));
    snprintf(key, sizeof(key), "k%d", JOURNAL_PUBLISHED_MAX - 1);
    assert_true(journal_was_published(j, key));
    journal_close(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_replay_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_monotonic_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_reenter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_started_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
