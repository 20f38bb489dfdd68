/* What the remote-broker service reads, says and matches, without state:
 * the module's answers and their <e> codes (in words, and which of them
 * mean the session is gone), the session state names, and MQTT 3.1.1
 * topic filter matching. Pure. */
#include <string.h>

#include "at/result.h"
#include "modem/cmqtt.h"
#include "modem/cmqtt_int.h"

static const char *const error_texts[] = {
    [0] = "ok",
    [1] = "failed",
    [2] = "bad UTF-8 string",
    [3] = "socket connect failed",
    [4] = "socket create failed",
    [5] = "socket close failed",
    [6] = "message receive failed",
    [7] = "network open failed",
    [8] = "network close failed",
    [9] = "network not opened",
    [10] = "client index error",
    [11] = "no connection",
    [12] = "invalid parameter",
    [13] = "not supported operation",
    [14] = "client is busy",
    [15] = "require connection failed",
    [16] = "socket sending failed",
    [17] = "timeout",
    [18] = "topic is empty",
    [19] = "client is used",
    [20] = "client not acquired",
    [21] = "client not released",
    [22] = "length out of range",
    [23] = "network is opened",
    [24] = "packet failed",
    [25] = "DNS error",
    [26] = "socket is closed by server",
    [27] = "connection refused: unaccepted protocol version",
    [28] = "connection refused: identifier rejected",
    [29] = "connection refused: server unavailable",
    [30] = "connection refused: bad user name or password",
    [31] = "connection refused: not authorized",
    [32] = "handshake failed",
    [33] = "not set certificate",
    [34] = "open session failed",
    [35] = "disconnect from server failed",
};

const char *cmqtt_error_text(int e)
{
    if (e >= 0 && (size_t)e < sizeof(error_texts) / sizeof(error_texts[0]))
        return error_texts[e];
    return "unknown error";
}

/* The <e> of a "+CMQTT...: [<client>,]<e>" line (its last number); -1
 * for any other line. */
static int line_code(const char *line)
{
    const char *colon = strchr(line, ':');
    struct at_result_iter it;
    int v = -1, n = 0;

    if (strncmp(line, "+CMQTT", 6) != 0 || !colon)
        return -1;
    at_result_iter_init(&it, colon + 1);
    while (n < 2 && at_result_next_number(&it, 0, 999, &v) == 0)
        n++;
    return n > 0 && at_result_at_end(&it) ? v : -1;
}

int cmqtt_answer_code(const struct at_response *rsp)
{
    for (size_t i = rsp->n_lines; i-- > 0;)
        if (strncmp(rsp->lines[i], "+CMQTT", 6) == 0)
            return line_code(rsp->lines[i]);
    return -1;
}

bool cmqtt_answer_ok(const struct at_response *rsp)
{
    const char *last = rsp->n_lines > 0 ? rsp->lines[rsp->n_lines - 1] : NULL;

    if (rsp->final != AT_FINAL_OK)
        return false;
    return !last || strncmp(last, "+CMQTT", 6) != 0 || line_code(last) == 0;
}

bool cmqtt_conn_code(int e)
{
    switch (e) {
    case 3: case 4: case 5: case 6: case 9: case 11: case 15: case 16: case 17: case 26:
        return true;
    default:
        return false;
    }
}

const char *cmqtt_state_name(enum cmqtt_state st)
{
    switch (st) {
    case CMQTT_DISABLED: return "disabled";
    case CMQTT_CONNECTING: return "connecting";
    case CMQTT_CONNECTED: return "connected";
    case CMQTT_DISCONNECTED: return "disconnected";
    default: return "disconnected";
    }
}

bool cmqtt_topic_match(const char *f, const char *t, size_t tlen)
{
    const char *end = t + tlen;

    /* $SYS-style topics are not matched by a leading wildcard (4.7.2). */
    if (tlen > 0 && t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (f[0] == '#' && f[1] == '\0')
            return true;
        const char *fs = strchr(f, '/');
        size_t flen = fs ? (size_t)(fs - f) : strlen(f);
        const char *ts = memchr(t, '/', (size_t)(end - t));
        size_t lvl = ts ? (size_t)(ts - t) : (size_t)(end - t);

        if (!(flen == 1 && f[0] == '+') && (flen != lvl || memcmp(f, t, lvl) != 0))
            return false;
        if (!fs && !ts)
            return true;
        if (!fs)
            return false;
        if (!ts)
            /* "a/#" matches "a" too */
            return strcmp(fs + 1, "#") == 0;
        f = fs + 1;
        t = ts + 1;
    }
}
