/* libFuzzer target: the file of core/refmap (state_dir/sms-references),
 * read at start-up after a power cut, a full disk or someone's editor.
 *
 * The input is the file's content; the target appends one valid line of
 * its own after a newline. refmap_open must accept any content (what does
 * not parse is dropped, never an error) and still find the appended entry,
 * as the one that came last; the file it leaves is 0600, ends with a
 * newline and is stable: opening it again changes nothing (every line
 * that was kept reads back as itself). Works in a directory of its own,
 * on tmpfs when there is one (each input is written, maybe rewritten and
 * fsynced). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/refmap.h"

#define NOW 1795237200          /* 2026-11-21T05:00:00Z */
#define TO "+491701234567"

static char dir[64], path[128], tmp[160];

static void cleanup(void)
{
    unlink(path);
    unlink(tmp);
    rmdir(dir);
}

/* libFuzzer keeps the input; the directory goes (abort skips atexit). */
static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_refmap: invariant failed: %s\n", what);
        cleanup();
        abort();
    }
}

static void make_dir(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    snprintf(dir, sizeof(dir), "%s/m2m-fuzz-refmap-XXXXXX", base);
    check(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/" REFMAP_FILE, dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    atexit(cleanup);
}

static void write_file(const uint8_t *data, size_t size)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "\n%d 7 2 3 " TO " \"fuzz\"\n", NOW);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    check(fd >= 0, "open for writing");
    check(write(fd, data, size) == (ssize_t)size, "write");
    check(write(fd, line, (size_t)n) == n, "write");
    close(fd);
}

/* The file's bytes (caller frees); *len its size. */
static char *read_file(size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;

    check(fd >= 0 && fstat(fd, &st) == 0, "open for reading");
    check((st.st_mode & 07777) == 0600, "the file is not 0600");
    buf = malloc((size_t)st.st_size + 1);
    check(buf != NULL, "malloc");
    check(read(fd, buf, (size_t)st.st_size) == st.st_size, "read");
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

/* Opens the map, checks the appended entry and closes it again. */
static void open_and_find(void)
{
    struct refmap *m = NULL;
    const struct refmap_entry *e;

    check(refmap_open(dir, NOW, &m) == 0 && m != NULL, "refmap_open failed");
    e = refmap_find(m, 7, TO, NOW);
    check(e != NULL, "the last, valid line was lost");
    check(strcmp(e->id, "\"fuzz\"") == 0 && e->part == 2 && e->parts == 3,
          "the last line came back changed");
    refmap_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *first, *second;
    size_t n1, n2;

    if (!dir[0])
        make_dir();
    unlink(tmp);
    write_file(data, size);
    open_and_find();
    first = read_file(&n1);
    check(n1 > 0 && first[n1 - 1] == '\n', "the file does not end with a newline");
    open_and_find();
    second = read_file(&n2);
    check(n1 == n2 && memcmp(first, second, n1) == 0, "a second open changed the file");
    free(first);
    free(second);
    return 0;
}
