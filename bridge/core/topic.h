/* MQTT topic names and filters as a broker accepts them: pure. One rule
 * for the config (remote and local topics) and the command codecs, so a
 * topic the bridge takes is never one the broker drops the client for. */
#ifndef M2M_CORE_TOPIC_H
#define M2M_CORE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* NULL when the n bytes at t (not NUL-terminated) are a valid topic name
 * (filter false) or topic filter (filter true); else why not, a static
 * sentence to put after the field's name ("must not be empty"):
 *  - not empty, valid UTF-8 (MQTT 3.1.1 section 1.5.3);
 *  - no U+0000, no C0 or C1 control (U+0001-U+001F, U+007F-U+009F) and no
 *    noncharacter (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF): mosquitto refuses
 *    them and drops the connection that sent them;
 *  - a filter has '+' only as a whole level and '#' only as the whole
 *    last level; a name has neither (section 4.7).
 * The length limit is the caller's (the module takes 1-1024 bytes). */
const char *topic_check(const char *t, size_t n, bool filter);

#endif
