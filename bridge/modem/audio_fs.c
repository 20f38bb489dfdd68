/* The module's file system for the audio service (audio_int.h lists the
 * files): upload and listing, each a chain of commands.
 *
 * Upload: AT+FSDEL="<file>" first (AT+CFTRANRX does not overwrite a file;
 * an ERROR there only says there was none), then
 * AT+CFTRANRX="<file>",<n>[,0,<offset>] per chunk of at most
 * AUDIO_CHUNK_MAX bytes: the module prompts with '>' (no line feed),
 * takes exactly n raw bytes, which may hold CR, LF, NUL, '>' or Ctrl-Z and
 * are never read as a command, and answers OK. The first chunk creates the
 * file, the others continue it at <location> = the bytes written so far.
 *
 * Listing: AT+FSCD=C:/, AT+FSLS=2 (files only: "+FSLS: FILES:" and one
 * name a line), then AT+FSATTRI="c:/<name>" (+FSATTRI: <size>) for each
 * name audio_file_valid accepts; another is listed with size -1, as it
 * cannot be quoted safely. */
#include "modem/audio_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "at/result.h"
#include "core/log.h"
#include "modem/modem.h"

#define CHUNK_TIMEOUT_MS 20000    /* 10 KiB at 9600 baud, and the flash write */

struct fs_req {
    struct audio *a;
    char file[AUDIO_FILE_MAX];
    uint8_t *data;
    size_t len, done;             /* upload: bytes in all, bytes written */
    struct audio_entry files[AUDIO_LIST_MAX];
    size_t n_files, next;         /* list: names, the next to ask the size of */
    audio_done_cb cb;
    audio_list_cb list_cb;
    void *ctx;
};

static void fs_end(struct fs_req *r, const struct m2m_error *err)
{
    struct audio *a = r->a;

    a->fs_busy = false;
    if (r->cb)
        r->cb(r->ctx, err);
    else
        r->list_cb(r->ctx, err, err ? NULL : r->files, err ? 0 : r->n_files);
    free(r->data);
    free(r);
}

/* Sends the next command of the chain; on refusal the chain ends. */
static void fs_next(struct fs_req *r, const char *cmd, const struct at_cmd_opts *o,
                    at_done_cb fn)
{
    struct m2m_error err;

    if (audio_send(r->a, cmd, o, fn, r, &err) < 0)
        fs_end(r, &err);
}

/* An answered command: false (and the chain ended with its error) unless
 * it was OK and the service goes on. The module's own error names the
 * command. The callers let the service go (audio_req_done) only after
 * this and what follows, which still use it. */
static bool fs_answer_ok(struct fs_req *r, const struct at_response *rsp, const char *what)
{
    struct m2m_error err;

    if (rsp->final == AT_FINAL_OK && !r->a->freed)
        return true;
    if (rsp->final == AT_FINAL_OK)
        m2m_error_set(&err, "unavailable", "the bridge stopped during %s", what);
    else
        m2m_error_from_at(&err, rsp, what);
    fs_end(r, &err);
    return false;
}

/* --- upload ------------------------------------------------------------------------ */

static void chunk_done(void *ctx, const struct at_response *rsp);

static void send_chunk(struct fs_req *r)
{
    size_t n = r->len - r->done < AUDIO_CHUNK_MAX ? r->len - r->done : AUDIO_CHUNK_MAX;
    const struct at_cmd_opts o = { .timeout_ms = CHUNK_TIMEOUT_MS, .data = r->data + r->done,
                                   .data_len = n };
    char cmd[AUDIO_FILE_MAX + 48];

    if (r->done == 0)
        snprintf(cmd, sizeof(cmd), "AT+CFTRANRX=\"%s\",%zu", r->file, n);
    else
        snprintf(cmd, sizeof(cmd), "AT+CFTRANRX=\"%s\",%zu,0,%zu", r->file, n, r->done);
    r->done += n;
    fs_next(r, cmd, &o, chunk_done);
}

static void chunk_done(void *ctx, const struct at_response *rsp)
{
    struct fs_req *r = ctx;
    struct audio *a = r->a;

    if (fs_answer_ok(r, rsp, "AT+CFTRANRX")) {
        if (r->done < r->len)
            send_chunk(r);
        else
            fs_end(r, NULL);
    }
    audio_req_done(a);
}

static void fsdel_done(void *ctx, const struct at_response *rsp)
{
    struct fs_req *r = ctx;
    struct audio *a = r->a;
    /* ERROR: no such file, which is what was wanted. A timeout or a lost
     * modem is not. */
    const struct at_response ok = { .final = AT_FINAL_OK };
    bool gone = rsp->final == AT_FINAL_TIMEOUT || rsp->final == AT_FINAL_CANCELLED;

    if (fs_answer_ok(r, gone ? rsp : &ok, "AT+FSDEL"))
        send_chunk(r);
    audio_req_done(a);
}

static struct fs_req *fs_begin(struct audio *a, audio_done_cb cb, audio_list_cb list_cb,
                               void *ctx)
{
    struct fs_req *r;
    struct m2m_error err;

    if (!a->ready || a->fs_busy) {
        m2m_error_set(&err, a->ready ? "busy" : "unavailable",
                      a->ready ? "an upload or a listing runs" : "the modem is not ready");
    } else if (!(r = calloc(1, sizeof(*r)))) {
        m2m_error_set(&err, "unavailable", "out of memory");
    } else {
        *r = (struct fs_req){ .a = a, .cb = cb, .list_cb = list_cb, .ctx = ctx };
        a->fs_busy = true;
        return r;
    }
    if (cb)
        cb(ctx, &err);
    else
        list_cb(ctx, &err, NULL, 0);
    return NULL;
}

void audio_upload(struct audio *a, const char *file, uint8_t *data, size_t len,
                  audio_done_cb cb, void *ctx)
{
    struct fs_req *r;
    char cmd[AUDIO_FILE_MAX + 16];

    if (!audio_file_valid(file)) {
        free(data);
        audio_reject(cb, ctx, "invalid_request", AUDIO_FILE_RULE);
        return;
    }
    if (len < 1 || len > AUDIO_UPLOAD_MAX) {
        free(data);
        audio_reject(cb, ctx, len ? "too_long" : "invalid_request",
                     "'data' must decode to 1-524288 bytes");
        return;
    }
    /* The module would refuse to delete it with a bare ERROR, which also
     * means "no such file": say why here, before anything is written. */
    if (a->st.state != AUDIO_IDLE && strcasecmp(a->st.file, file) == 0) {
        free(data);
        audio_reject(cb, ctx, "busy", a->st.state == AUDIO_PLAYING
                                          ? "'file' plays; stop it first"
                                          : "'file' is being recorded; stop it first");
        return;
    }
    if (!(r = fs_begin(a, cb, NULL, ctx))) {
        free(data);
        return;
    }
    snprintf(r->file, sizeof(r->file), "%s", file);
    r->data = data;
    r->len = len;
    snprintf(cmd, sizeof(cmd), "AT+FSDEL=\"%s\"", file);
    fs_next(r, cmd, NULL, fsdel_done);
}

/* --- list -------------------------------------------------------------------------- */

static void fsattri_done(void *ctx, const struct at_response *rsp);

/* The size of the next name we may quote, or the end of the chain. */
static void ask_next_size(struct fs_req *r)
{
    const struct at_cmd_opts o = { .info_prefix = "+FSATTRI:", .expect_info = true };
    char cmd[AUDIO_LIST_NAME_MAX + 16];

    while (r->next < r->n_files && !audio_file_valid(r->files[r->next].name))
        r->next++;
    if (r->next >= r->n_files) {
        fs_end(r, NULL);
        return;
    }
    snprintf(cmd, sizeof(cmd), "AT+FSATTRI=\"%s\"", r->files[r->next].name);
    fs_next(r, cmd, &o, fsattri_done);
}

static void fsattri_done(void *ctx, const struct at_response *rsp)
{
    struct fs_req *r = ctx;
    struct audio *a = r->a;

    if (fs_answer_ok(r, rsp, "AT+FSATTRI")) {
        for (size_t i = 0; i < rsp->n_lines; i++)
            if (audio_parse_fsattri(rsp->lines[i], &r->files[r->next].size) == 0)
                break;
        r->next++;
        ask_next_size(r);
    }
    audio_req_done(a);
}

static void fsls_done(void *ctx, const struct at_response *rsp)
{
    struct fs_req *r = ctx;
    struct audio *a = r->a;

    if (fs_answer_ok(r, rsp, "AT+FSLS")) {
        if (rsp->truncated)
            log_warn("audio: the module listed more than the bridge keeps");
        r->n_files = audio_parse_fsls(rsp->lines, rsp->n_lines, r->files, AUDIO_LIST_MAX);
        ask_next_size(r);
    }
    audio_req_done(a);
}

static void fscd_done(void *ctx, const struct at_response *rsp)
{
    struct fs_req *r = ctx;
    struct audio *a = r->a;

    if (fs_answer_ok(r, rsp, "AT+FSCD"))
        fs_next(r, "AT+FSLS=2", NULL, fsls_done);
    audio_req_done(a);
}

void audio_list(struct audio *a, audio_list_cb cb, void *ctx)
{
    struct fs_req *r = fs_begin(a, NULL, cb, ctx);

    if (r)
        fs_next(r, "AT+FSCD=C:/", NULL, fscd_done);
}

/* --- pure -------------------------------------------------------------------------- */

size_t audio_parse_fsls(const char *const *lines, size_t n_lines, struct audio_entry *out,
                        size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < n_lines && n < max; i++) {
        const char *l = lines[i];
        if (l[0] == '\0' || strncmp(l, "+FSLS:", 6) == 0)
            continue;
        if (strlen(l) + 3 >= sizeof(out[n].name))
            continue;   /* longer than any name the module allows */
        snprintf(out[n].name, sizeof(out[n].name), "c:/%s", l);
        out[n].size = -1;
        n++;
    }
    return n;
}

int audio_parse_fsattri(const char *line, long *size)
{
    struct at_result_iter it;
    int v;

    if (!line)
        return -EINVAL;
    at_result_iter_init(&it, line);
    /* A file on the module's flash is far below 2 GiB. */
    if (!at_result_iter_next(&it, "+FSATTRI:") || at_result_next_number(&it, 0, INT32_MAX, &v) < 0)
        return -EINVAL;
    *size = v;
    return 0;
}
