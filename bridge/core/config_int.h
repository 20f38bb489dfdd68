/* The configuration's key tables and value checks (config_keys.c), shared
 * with the reader (config.c) and the command line (config_cli.c). Internal
 * to core/config*.c: core/config.h is the API. */
#ifndef M2M_CORE_CONFIG_INT_H
#define M2M_CORE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct cJSON;

/* Bounds. A config is a few KiB; anything near these is a mistake. */
#define ALLOW_TO_MAX        256
#define CALL_CODE_MAX       32      /* what ATD takes after the '+' (JSON_DIAL_MAX) */
#define INIT_MAX            32
#define AT_LINE_MAX         1024    /* the A7670 takes 3071; ours are short */
#define REMOTE_LIST_MAX     32
#define REMOTE_TOPIC_MAX    1024    /* AT+CMQTTTOPIC / AT+CMQTTSUBTOPIC limit */
#define REMOTE_WILL_MAX     1024    /* AT+CMQTTWILLMSG: what the bridge sends (cmqtt.h) */
#define TOPIC_MAX           1024

#define CLIENT_ID_MAX       256

/* A value check: NULL when the value is fine, else the reason. */
typedef const char *(*str_check)(const char *s);

enum kind {
    K_STR,      /* string */
    K_NSTR,     /* string or null */
    K_INT,      /* integer min..max */
    K_BAUD,     /* integer, one of std_bauds */
    K_BOOL,
    K_OBJ,      /* nested table; .off: a bool set true when present (or SIZE_MAX) */
    K_LIST,     /* array of strings; .off the char **, .off_n the size_t */
    K_SUBS,     /* remote.subscribe */
    K_FWDS,     /* remote.forward */
    K_MODEMS,   /* modems: checked, then applied after the rest (config_build) */
};

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t off_n;
    str_check check;
    int min, max;
    const struct key *sub;
    size_t max_items;
};

#define OFF(f) offsetof(struct config, f)
#define STR(n, f, chk)  {.name = n, .kind = K_STR, .off = OFF(f), .check = chk}
#define NSTR(n, f, chk) {.name = n, .kind = K_NSTR, .off = OFF(f), .check = chk}
#define INT(n, f, lo, hi) {.name = n, .kind = K_INT, .off = OFF(f), .min = lo, .max = hi}
#define BOOL(n, f)      {.name = n, .kind = K_BOOL, .off = OFF(f)}
#define LIST(n, f, cnt, chk, mx) \
    {.name = n, .kind = K_LIST, .off = OFF(f), .off_n = OFF(cnt), .check = chk, .max_items = mx}
#define OBJ(n, tbl)     {.name = n, .kind = K_OBJ, .off = SIZE_MAX, .sub = tbl}

/* One remote.subscribe[] or remote.forward[] entry's fields. */
struct entry_field {
    const char *name;
    bool required;
    bool nullable;
    str_check check;     /* NULL: the qos integer */
    size_t off;          /* in the entry struct */
};
/* The file's keys, the environment's variables (in the README's order),
 * the command line's options (--port, --broker, --base-topic,
 * --log-level: the order of struct config_cli's fields), and the fields
 * of remote.subscribe[] and remote.forward[] entries. */
extern const struct key config_root_keys[];
extern const struct key config_env_keys[];
extern const struct key config_cli_keys[];
/* The keys of one "modems" entry (offsets into that modem's config). */
extern const struct key config_modem_entry_keys[];
extern const struct entry_field config_sub_fields[];
extern const struct entry_field config_fwd_fields[];

extern const char config_baud_why[];

/* Decimal digits only: "115200". No sign, no spaces, no 0x. */
bool config_parse_uint(const char *s, int *out);

/* A config being built (config.c) and where its errors go. */
struct config_ctx {
    struct config *cfg;           /* being built: the top level's, or a modem's */
    char *err;
    size_t err_size;
    const struct cJSON *modems;   /* the file's "modems" array, or NULL */
    char prefix[40];              /* "modems[3]." while a modem's is checked, else "" */
};

/* The field at offset off of a config. */
#define SLOT(cfg, off, type) ((type *)(void *)((char *)(cfg) + (off)))

/* config_read.c. The message into c->err; -EINVAL (fail), -ENOMEM (oom). */
__attribute__((format(printf, 2, 3)))
int config_fail(struct config_ctx *c, const char *fmt, ...);
int config_oom(struct config_ctx *c);
/* A copy of v (NULL: none) replaces *slot. 0 or -ENOMEM. */
int config_set_str(char **slot, const char *v);
/* A value from the environment or the command line, as text, under name. */
int config_put_text(struct config_ctx *c, const struct key *k, const char *v, const char *name);
/* The file's text as a JSON object in *root (the caller deletes it). */
int config_parse_json(struct config_ctx *c, const char *json, size_t len, struct cJSON **root);
/* Every key of obj into c->cfg by the table keys; path names obj in errors
 * ("" for the top level). "modems" is only checked (into c->modems). */
int config_walk(struct config_ctx *c, const struct cJSON *obj, const struct key *keys,
                const char *path);
void config_free_list(char **list, size_t n);
void config_free_subs(struct config_remote_sub *s, size_t n);
void config_free_fwds(struct config_remote_fwd *f, size_t n);

/* A one-line message into err (which may be NULL); returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
int config_fail_to(char *err, size_t size, const char *fmt, ...);

#endif
