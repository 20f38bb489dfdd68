/* MQTT topic rules. See topic.h. */
#include "core/topic.h"

#include <stdint.h>

#include "core/utf8.h"

static const char CONTROL[] = "must not contain control characters (U+0000-U+001F, U+007F-U+009F)";
static const char NONCHAR[] = "must not contain Unicode noncharacters (U+FFFE, U+FFFF, "
                              "U+FDD0-U+FDEF)";

const char *topic_check(const char *t, size_t n, bool filter)
{
    const uint8_t *p = (const uint8_t *)t;

    if (!t || n == 0)
        return "must not be empty";
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return "must be valid UTF-8";
        uint32_t cp = utf8_decode(p + i, k);
        if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
            return CONTROL;
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
            return NONCHAR;
        i += k;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i] != '+' && t[i] != '#')
            continue;
        if (!filter)
            return "must not contain '+' or '#' (a topic name, not a filter)";
        bool starts = i == 0 || t[i - 1] == '/';
        bool ends = i + 1 == n || t[i + 1] == '/';
        if (!starts || !ends || (t[i] == '#' && i + 1 != n))
            return "must use '+' and '#' only as whole levels, '#' only as the last";
    }
    return NULL;
}
