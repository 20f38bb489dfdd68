/* Importing a journal of the earlier format (see journal.c; journal_int.h
 * for the other files): dir/pending/<seq>.rec with .started and .result
 * beside, dir/journal.seq and dir/published become entries of the log,
 * then the old files are removed. */
#include "core/journal_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
/* ---- the earlier format ---- */

static bool old_name(const char *name, const char *suffix, uint64_t *seq)
{
    uint64_t v = 0;
    for (int i = 0; i < OLD_SEQ_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (strcmp(name + OLD_SEQ_DIGITS, suffix) != 0 || v == 0)
        return false;
    *seq = v;
    return true;
}

/* A small file in dirfd, at most max bytes: 0 with *out malloc'd, or -errno. */
static int slurp(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len)
{
    struct stat st;
    int ret, fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    *out = NULL;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        ret = -errno;
    else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
        ret = -EBADMSG;
    else if (!(*out = malloc((size_t)st.st_size + 1)))
        ret = -ENOMEM;
    else
        ret = jnl_pread_all(fd, *out, (size_t)st.st_size, 0);
    if (ret < 0) {
        free(*out);
        *out = NULL;
    } else {
        *len = (size_t)st.st_size;
    }
    close(fd);
    return ret;
}

static int import_entry(struct journal *j, int type, uint64_t seq, uint32_t a, const void *p1,
                        size_t l1, const void *p2, size_t l2, uint32_t b)
{
    size_t len;
    uint8_t *e = jnl_entry_build(type, seq, a, p1, l1, p2, l2, b, &len);
    int ret = e ? jnl_write_locked(j, e, len, NULL) : -ENOMEM;

    free(e);
    return ret;
}

/* One legacy record with its marks. Corrupt ones are dropped, as the
 * earlier format did at replay. */
static int import_one(struct journal *j, int pendfd, const char *name, uint64_t seq)
{
    char side[OLD_SEQ_DIGITS + 16];
    uint8_t *buf = NULL;
    size_t n = 0;
    int ret = slurp(pendfd, name, OLD_HDR_LEN + JOURNAL_TOPIC_MAX + JOURNAL_PAYLOAD_MAX, &buf, &n);

    if (ret < 0 || n < OLD_HDR_LEN || memcmp(buf, OLD_MAGIC, 4) != 0 ||
        jnl_get_le32(buf + 4) == 0 || jnl_get_le32(buf + 4) > JOURNAL_TOPIC_MAX ||
        jnl_get_le32(buf + 8) > JOURNAL_PAYLOAD_MAX ||
        (uint64_t)OLD_HDR_LEN + jnl_get_le32(buf + 4) + jnl_get_le32(buf + 8) != n ||
        jnl_crc32_update(0, buf + OLD_HDR_LEN, n - OLD_HDR_LEN) != jnl_get_le32(buf + 12) ||
        memchr(buf + OLD_HDR_LEN, '\0', jnl_get_le32(buf + 4))) {
        log_warn("journal: dropping corrupt record %s/pending/%s", j->dir, name);
        free(buf);
        return ret == -ENOMEM ? ret : 0;
    }
    uint32_t t = jnl_get_le32(buf + 4), p = jnl_get_le32(buf + 8);
    ret = import_entry(j, E_RECORD, seq, t, buf + OLD_HDR_LEN, t, buf + OLD_HDR_LEN + t, p, p);
    free(buf);
    snprintf(side, sizeof(side), "%020" PRIu64 ".started", seq);
    if (ret == 0 && slurp(pendfd, side, 4, &buf, &n) != -ENOENT) {
        /* Empty or unreadable: assume the worst, never run it again. */
        uint32_t part = buf && n == 4 && jnl_get_le32(buf) ? jnl_get_le32(buf) : 1;
        ret = import_entry(j, E_STARTED, seq, part, NULL, 0, NULL, 0, 0);
    }
    free(buf);
    buf = NULL;
    snprintf(side, sizeof(side), "%020" PRIu64 ".result", seq);
    if (ret == 0 &&
        slurp(pendfd, side, OLD_RESULT_HDR_LEN + JOURNAL_PAYLOAD_MAX, &buf, &n) == 0 &&
        n >= OLD_RESULT_HDR_LEN && memcmp(buf, OLD_RESULT_MAGIC, 4) == 0 &&
        jnl_get_le32(buf + 4) == n - OLD_RESULT_HDR_LEN &&
        jnl_crc32_update(0, buf + OLD_RESULT_HDR_LEN, n - OLD_RESULT_HDR_LEN) ==
            jnl_get_le32(buf + 8))
        ret = import_entry(j, E_RESULT, seq, 0, buf + OLD_RESULT_HDR_LEN,
                           n - OLD_RESULT_HDR_LEN, NULL, 0, (uint32_t)(n - OLD_RESULT_HDR_LEN));
    free(buf);
    return ret;
}

/* Imports dir/pending, dir/journal.seq and dir/published into the log (not
 * yet durable: the compaction after it is). *found: whether there was any. */
int jnl_import_old(struct journal *j, bool *found)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int ret = 0;

    *found = false;
    if (slurp(j->dirfd, "journal.seq", 31, &buf, &n) == 0) {
        buf[n] = '\0';
        uint64_t v = strtoull((const char *)buf, NULL, 10);
        if (v >= j->next)
            j->next = v + 1;
        *found = true;
    }
    free(buf);
    buf = NULL;
    if (slurp(j->dirfd, "published", (size_t)JOURNAL_PUBLISHED_MAX * (PUBLISHED_ID_MAX + 1), &buf,
              &n) == 0) {
        char *save = NULL;
        buf[n] = '\0';
        for (char *id = strtok_r((char *)buf, "\n", &save); id; id = strtok_r(NULL, "\n", &save))
            if (jnl_id_ok(id, strlen(id)))
                jnl_pub_add(j, id, strlen(id));
        *found = true;
    }
    free(buf);

    int pendfd = openat(j->dirfd, "pending", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pendfd < 0)
        return 0;
    *found = true;
    DIR *d = fdopendir(dup(pendfd));
    if (!d) {
        close(pendfd);
        return -errno;
    }
    struct dirent *de;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        uint64_t seq;
        if (old_name(de->d_name, ".rec", &seq))
            ret = import_one(j, pendfd, de->d_name, seq);
    }
    closedir(d);
    close(pendfd);
    return ret;
}

/* Once the imported entries are durable in the log. */
void jnl_remove_old(struct journal *j)
{
    int pendfd = openat(j->dirfd, "pending", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pendfd >= 0) {
        DIR *d = fdopendir(dup(pendfd));
        struct dirent *de;
        uint64_t seq;
        while (d && (de = readdir(d)) != NULL)
            if (old_name(de->d_name, ".rec", &seq) || old_name(de->d_name, ".started", &seq) ||
                old_name(de->d_name, ".result", &seq) || old_name(de->d_name, ".tmp", &seq) ||
                old_name(de->d_name, ".stmp", &seq) || old_name(de->d_name, ".rtmp", &seq))
                unlinkat(pendfd, de->d_name, 0);
        if (d)
            closedir(d);
        close(pendfd);
        if (unlinkat(j->dirfd, "pending", AT_REMOVEDIR) < 0 && errno != ENOENT)
            log_warn("journal: %s/pending holds files that are not the journal's; left there",
                     j->dir);
    }
    unlinkat(j->dirfd, "journal.seq", 0);
    unlinkat(j->dirfd, "journal.seq.tmp", 0);
    unlinkat(j->dirfd, "published", 0);
    unlinkat(j->dirfd, "published.tmp", 0);
    fsync(j->dirfd);
}

