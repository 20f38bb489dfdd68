/* What the code under test logs: stderr goes to a temporary file between
 * capture_begin() and capture_end(), which returns its text. For tests
 * that check a log line (a script's step names, a secret kept out). */
#ifndef M2M_TEST_CAPTURE_H
#define M2M_TEST_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

struct capture {
    FILE *file;
    int saved;      /* the real stderr */
};

static inline int capture_begin(struct capture *cap)
{
    cap->file = tmpfile();
    cap->saved = dup(STDERR_FILENO);
    if (!cap->file || cap->saved < 0)
        return -1;
    fflush(stderr);
    return dup2(fileno(cap->file), STDERR_FILENO) < 0 ? -1 : 0;
}

/* The log since capture_begin(), NUL-terminated in buf (cut at size - 1). */
static inline const char *capture_end(struct capture *cap, char *buf, size_t size)
{
    size_t n;

    fflush(stderr);
    dup2(cap->saved, STDERR_FILENO);
    close(cap->saved);
    rewind(cap->file);
    n = fread(buf, 1, size - 1, cap->file);
    buf[n] = '\0';
    fclose(cap->file);
    return buf;
}

#endif
