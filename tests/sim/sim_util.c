/* Small pure helpers of the simulator: parameter lists, numbers, hex. */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int sim_params_parse(const char *arg, struct sim_params *p)
{
    memset(p, 0, sizeof(*p));
    const char *c = arg;
    if (*c == '\0')
        return 0;
    for (;;) {
        if (p->n == SIM_PARAMS_MAX)
            return -EINVAL;
        char *v = p->v[p->n];
        size_t len = 0;
        while (*c == ' ')
            c++;
        if (*c == '"') {
            const char *end = strchr(c + 1, '"');
            if (!end)
                return -EINVAL;
            len = (size_t)(end - c - 1);
            if (len >= SIM_PARAM_LEN)
                return -EINVAL;
            memcpy(v, c + 1, len);
            p->quoted[p->n] = true;
            c = end + 1;
            while (*c == ' ')
                c++;
            if (*c != ',' && *c != '\0')
                return -EINVAL;
        } else {
            const char *end = c + strcspn(c, ",");
            len = (size_t)(end - c);
            while (len > 0 && c[len - 1] == ' ')
                len--;
            if (len >= SIM_PARAM_LEN || memchr(c, '"', len))
                return -EINVAL;
            memcpy(v, c, len);
            c = end;
        }
        v[len] = '\0';
        p->n++;
        if (*c == '\0')
            return 0;
        c++; /* ',' */
    }
}

bool sim_parse_long(const char *str, long min, long max, long *out)
{
    if (!isdigit((unsigned char)str[0]) && !(str[0] == '-' && isdigit((unsigned char)str[1])))
        return false;
    errno = 0;
    char *end;
    long v = strtol(str, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool sim_param_int(const struct sim_params *p, size_t i, long min, long max, long *out)
{
    if (i >= p->n || p->quoted[i])
        return false;
    return sim_parse_long(p->v[i], min, max, out);
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long sim_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_nibble(hex[i]), lo = hex_nibble(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

void sim_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

bool sim_prefix_ci(const char *str, const char *prefix)
{
    return strncasecmp(str, prefix, strlen(prefix)) == 0;
}

int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sim_ucs2_hex(const char *in, char *out, size_t size)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;

    while (*p) {
        unsigned long cp;
        int extra;
        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xE0) == 0xC0) {
            cp = *p & 0x1F;
            extra = 1;
        } else if ((*p & 0xF0) == 0xE0) {
            cp = *p & 0x0F;
            extra = 2;
        } else if ((*p & 0xF8) == 0xF0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return false;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3F);
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            if (o + 9 > size)
                return false;
            o += (size_t)snprintf(out + o, size - o, "%04lX%04lX", 0xD800 + (cp >> 10),
                                  0xDC00 + (cp & 0x3FF));
        } else {
            if (o + 5 > size)
                return false;
            o += (size_t)snprintf(out + o, size - o, "%04lX", cp);
        }
    }
    out[o] = '\0';
    return true;
}


const char *sim_te_str(const struct sim *s, const char *utf8, char *buf, size_t size)
{
    if (!sim_cscs_ucs2(s))
        return utf8;
    if (!sim_ucs2_hex(utf8, buf, size))
        buf[0] = '\0';
    return buf;
}

bool sim_cscs_ucs2(const struct sim *s)
{
    return strcmp(s->sms.cscs, "UCS2") == 0;
}
