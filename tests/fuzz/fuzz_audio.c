/* libFuzzer target: the readers of modem/audio, which see the module's
 * lines (+AUDIOSTATE, +WAVSTATE, +RECSTATE URCs; AT+FSLS and AT+FSATTRI
 * answers) and, for the file name rule, a user's MQTT string.
 *
 * The first byte picks the reader, the rest is the input:
 *   0  one URC line: audio_parse_urc gives 0 and a known state, the line
 *      being exactly one of the five texts (spaces after the colon
 *      allowed), or -EINVAL with *out untouched;
 *   1  one +FSATTRI line: 0 with a size >= 0 that is the line's number, or
 *      -EINVAL with *size untouched;
 *   2  a file name: audio_file_valid accepts only "c:/" (any case) and
 *      1-64 of A-Z a-z 0-9 _ - . not starting or ending with '.' and
 *      with a '.' inside, so nothing in it can close a quote or end an
 *      AT command, nor read as a line of the module's own;
 *   3  an AT+FSLS answer, one line per LF: at most max entries, each
 *      "c:/" and a line that is no header, NUL-terminated in its buffer,
 *      size -1. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "modem/audio.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_audio: invariant failed: %s\n", what);
        abort();
    }
}

static void urc(const char *line)
{
    static const char *const texts[] = { "+AUDIOSTATE:", "+WAVSTATE:", "+RECSTATE:" };
    enum audio_urc u = (enum audio_urc)77;
    int rc = audio_parse_urc(line, &u);
    bool prefix = false;

    check(rc == 0 || rc == -EINVAL, "urc: return value");
    if (rc != 0) {
        check(u == (enum audio_urc)77, "urc: out written on failure");
        return;
    }
    check(u == AUDIO_URC_PLAY || u == AUDIO_URC_PLAY_STOP || u == AUDIO_URC_REC_STOP,
          "urc: unknown state");
    for (size_t i = 0; i < 3; i++)
        prefix |= strncmp(line, texts[i], strlen(texts[i])) == 0;
    check(prefix, "urc: prefix");
    check(!strpbrk(line, "\r\n"), "urc: more than one line");
}

static void fsattri(const char *line)
{
    long size = -7;
    int rc = audio_parse_fsattri(line, &size);

    check(rc == 0 || rc == -EINVAL, "fsattri: return value");
    if (rc == 0)
        check(size >= 0 && strncmp(line, "+FSATTRI:", 9) == 0 &&
                  strtol(line + 9, NULL, 10) == size, "fsattri: size is not the line's");
    else
        check(size == -7, "fsattri: size written on failure");
}

static void name(const char *file)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";
    size_t n = strlen(file);

    if (!audio_file_valid(file))
        return;
    check(n >= 4 && n <= 3 + AUDIO_NAME_MAX && n < AUDIO_FILE_MAX, "name: length");
    check(strncasecmp(file, "c:/", 3) == 0, "name: not on c:/");
    check(strspn(file + 3, set) == n - 3, "name: a character outside the set");
    check(file[3] != '.' && file[n - 1] != '.', "name: a dot at an end");
    check(strchr(file + 3, '.') != NULL, "name: no extension");
}

static void fsls(char *text)
{
    const char *lines[64];
    struct audio_entry out[8];
    size_t n_lines = 0, n;

    for (char *p = text; n_lines < 64;) {
        char *lf = strchr(p, '\n');
        lines[n_lines++] = p;
        if (!lf)
            break;
        *lf = 0;
        p = lf + 1;
    }
    n = audio_parse_fsls(lines, n_lines, out, 8);
    check(n <= 8 && n <= n_lines, "fsls: count");
    for (size_t i = 0; i < n; i++) {
        check(memchr(out[i].name, 0, sizeof(out[i].name)) != NULL, "fsls: not terminated");
        check(strncmp(out[i].name, "c:/", 3) == 0 && out[i].name[3], "fsls: name");
        check(strncmp(out[i].name + 3, "+FSLS:", 6) != 0, "fsls: a header as a name");
        check(out[i].size == -1, "fsls: size");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size < 1)
        return 0;
    text = malloc(size);
    check(text != NULL, "malloc");
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    switch (data[0] % 4) {
    case 0: urc(text); break;
    case 1: fsattri(text); break;
    case 2: name(text); break;
    default: fsls(text); break;
    }
    free(text);
    return 0;
}
