/* The config schema: walks the tree conf_tree.c built, checks every key and value, and
   builds a conf_snapshot, or fails with "file:line: reason" and builds nothing.

   Bounds and defaults (kept in sync with the schema comment in conf_snapshot.h; the
   tables below are what the code enforces). No limit can be switched off and no
   timeout is "forever".

     key                            default   lower    upper
     workers                        auto      1        256
     limits.connections_per_worker  10000     1        1000000
     limits.max_concurrent_streams  100       1        1000
     limits.header_list_size        64k       1k       1m
     limits.header_fields           100       8        1000
     limits.max_continuations       8         1        64
     limits.stream_reset_burst      1000      1        100000
     limits.stream_reset_rate       33/s      1        10000
     limits.tls_handshake_timeout   10s       100ms    60m
     limits.header_timeout          10s       100ms    60m
     limits.idle_timeout            60s       100ms    60m
     limits.body_timeout            30s       100ms    60m
     limits.write_timeout           30s       100ms    60m
     limits.stream_timeout          60s       100ms    60m
     limits.drain_timeout           30s       100ms    60m
     limits.max_requests_per_connection 1000  1        1000000000
     limits.h2_data_padding         0         0        16k
     limits.output_buffer           256k      16k      64m
     limits.stream_buffer           64k       16k      16m
     limits.memory_budget           0 (off)   0        1048576m
     backends.NAME.pad_min          1k        1        1m
     sealed.replay_window           60s       1s       60m
     sealed.replay_cache            100000    1000     10000000
     sealed.max_request             64k       1k       16m
     sealed.max_response            1m        1k       64m
     listen port                    -         1        65535
     server_header length           none      1        128
     backends.NAME.headers entries  16 (list) 0        256
     one header name, bytes         -         1        128

   Sizes: k = 1024, m = 1048576 bytes. Durations: a plain number is seconds; "ms", "s"
   and "m" suffixes (60m is the one-hour cap). */
#include "conf_snapshot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_snapshot_internal.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define KIB 1024u
#define MIB (1024u * 1024u)
#define SECOND 1000u
#define MINUTE (60u * SECOND)

/* A backend's header allowlist: entries, and bytes per name. They also keep the
   duplicate check (quadratic) cheap. */
#define MAX_HEADERS 256
#define MAX_HEADER_NAME 128

/* Longest dotted key name we build for messages ("backends.NAME.KEY" and the like). */
#define NAME_MAX_LEN 160

#define FAIL(c, line, code, ...)                                                         \
    conf_errorf((c)->err, (c)->file, (line), (code), __VA_ARGS__)

struct ctx {
    const char *file;
    struct conf_error *err;
    struct conf_snapshot *snap;
    char *base; /* absolute directory relative paths resolve against; made on first use */
};

enum num_kind { NUM_COUNT, NUM_SIZE, NUM_DURATION };

/* A numeric key: NUM_SIZE fields are size_t, the others unsigned (durations in ms). */
struct num_field {
    const char *name;
    enum num_kind kind;
    size_t offset;
    uint64_t min, max;
};

static const struct num_field limit_fields[] = {
    {"connections_per_worker", NUM_COUNT,
     offsetof(struct conf_limits, connections_per_worker), 1, 1000000},
    {"max_concurrent_streams", NUM_COUNT,
     offsetof(struct conf_limits, max_concurrent_streams), 1, 1000},
    {"header_list_size", NUM_SIZE, offsetof(struct conf_limits, header_list_size), KIB,
     MIB},
    {"header_fields", NUM_COUNT, offsetof(struct conf_limits, header_fields), 8, 1000},
    {"max_continuations", NUM_COUNT, offsetof(struct conf_limits, max_continuations), 1,
     64},
    {"stream_reset_burst", NUM_COUNT, offsetof(struct conf_limits, stream_reset_burst), 1,
     100000},
    {"stream_reset_rate", NUM_COUNT, offsetof(struct conf_limits, stream_reset_rate), 1,
     10000},
    {"tls_handshake_timeout", NUM_DURATION,
     offsetof(struct conf_limits, tls_handshake_timeout_ms), 100, 60 * MINUTE},
    {"header_timeout", NUM_DURATION, offsetof(struct conf_limits, header_timeout_ms), 100,
     60 * MINUTE},
    {"idle_timeout", NUM_DURATION, offsetof(struct conf_limits, idle_timeout_ms), 100,
     60 * MINUTE},
    {"body_timeout", NUM_DURATION, offsetof(struct conf_limits, body_timeout_ms), 100,
     60 * MINUTE},
    {"write_timeout", NUM_DURATION, offsetof(struct conf_limits, write_timeout_ms), 100,
     60 * MINUTE},
    {"output_buffer", NUM_SIZE, offsetof(struct conf_limits, output_buffer), 16 * KIB,
     64 * MIB},
    {"stream_buffer", NUM_SIZE, offsetof(struct conf_limits, stream_buffer), 16 * KIB,
     16 * MIB},
    {"drain_timeout", NUM_DURATION, offsetof(struct conf_limits, drain_timeout_ms), 100,
     60 * MINUTE},
    {"max_requests_per_connection", NUM_COUNT,
     offsetof(struct conf_limits, max_requests_per_connection), 1, 1000000000},
    {"h2_data_padding", NUM_SIZE, offsetof(struct conf_limits, h2_data_padding), 0,
     16 * KIB},
    {"stream_timeout", NUM_DURATION, offsetof(struct conf_limits, stream_timeout_ms), 100,
     60 * MINUTE},
    {"memory_budget", NUM_SIZE, offsetof(struct conf_limits, memory_budget), 0,
     (uint64_t)MIB * MIB},
};

static const struct num_field sealed_fields[] = {
    {"replay_window", NUM_DURATION, offsetof(struct conf_sealed, replay_window_ms),
     SECOND, 60 * MINUTE},
    {"replay_cache", NUM_COUNT, offsetof(struct conf_sealed, replay_cache), 1000,
     10000000},
    {"max_request", NUM_SIZE, offsetof(struct conf_sealed, max_request), KIB, 16 * MIB},
    {"max_response", NUM_SIZE, offsetof(struct conf_sealed, max_response), KIB, 64 * MIB},
};

static const struct num_field workers_field = {"workers", NUM_COUNT, 0, 1, 256};
static const struct num_field pad_min_field = {"pad_min", NUM_SIZE, 0, 1, MIB};

#define DEFAULT_PAD_MIN 1024u
#define DEFAULT_ERROR_LOG "stderr"
#define DEFAULT_INDEX "index.html"
#define DEFAULT_NOT_FOUND "404.html"
#define DEFAULT_SEALED_PATH "/s/"
#define DEFAULT_KEYS_PATH "/.well-known/ohttp-gateway"
#define DEFAULT_ROUTE_PATH "/"

/* ---- small helpers ------------------------------------------------------------- */

/* snprintf for messages, where truncation is acceptable. */
__attribute__((format(printf, 3, 4))) static void bounded_format(char *out, size_t cap,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

static int nomem(struct ctx *c)
{
    return FAIL(c, 0, CONF_ERR_NOMEM, "out of memory");
}

static bool is(const struct conf_node *n, const char *key)
{
    return strcmp(n->key, key) == 0;
}

static const char *kind_name(enum conf_node_kind k)
{
    switch (k) {
    case CONF_NODE_SCALAR:
        return "a scalar";
    case CONF_NODE_MAP:
        return "a map";
    case CONF_NODE_SEQ:
        return "a sequence";
    }
    return "?";
}

/* Writes "|parent|.|key|" (or just |key|) into |out| for messages. */
static const char *dotted(char out[NAME_MAX_LEN], const char *parent, const char *key)
{
    char shown[CONF_SHOW_SIZE];
    conf_show(shown, key, strlen(key));
    if (parent)
        bounded_format(out, NAME_MAX_LEN, "%s.%s", parent, shown);
    else
        bounded_format(out, NAME_MAX_LEN, "%s", shown);
    return out;
}

static int unknown(struct ctx *c, const struct conf_node *n, const char *where)
{
    char shown[CONF_SHOW_SIZE];
    return FAIL(c, n->key_line, CONF_ERR_UNKNOWN, "unknown key \"%s\" in %s",
                conf_show(shown, n->key, strlen(n->key)), where);
}

static int missing(struct ctx *c, unsigned line, const char *key, const char *where)
{
    return FAIL(c, line, CONF_ERR_MISSING, "missing required key \"%s\" in %s", key,
                where);
}

/* Requires |n| to be of |kind|; a scalar must not be empty or null. */
static int want(struct ctx *c, const struct conf_node *n, enum conf_node_kind kind,
                const char *name)
{
    if (conf_node_is_null(n) || (kind == CONF_NODE_SCALAR && n->kind == kind && !n->len))
        return FAIL(c, n->line, CONF_ERR_TYPE, "%s: empty value (expected %s)", name,
                    kind_name(kind));
    if (n->kind != kind)
        return FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected %s, not %s", name,
                    kind_name(kind), kind_name(n->kind));
    return 0;
}

static bool visible(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static bool name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* Backend, adapter and parameter names: [a-z0-9_-]{1,64}. */
static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)s[i]))
            return false;
    return true;
}

static void lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Replaces *dst with a copy of |n|'s text. */
static int copy_text(struct ctx *c, const struct conf_node *n, char **dst)
{
    free(*dst);
    *dst = conf_strndup(n->text, n->len);
    return *dst ? 0 : nomem(c);
}

static int copy_str(struct ctx *c, const char *s, char **dst)
{
    free(*dst);
    *dst = conf_strndup(s, strlen(s));
    return *dst ? 0 : nomem(c);
}

/* ---- numbers ------------------------------------------------------------------- */

/* Formats one bound the way a user would write it. */
static void format_bound(char *out, size_t cap, enum num_kind kind, uint64_t v)
{
    unsigned long long x = v;
    switch (kind) {
    case NUM_COUNT:
        bounded_format(out, cap, "%llu", x);
        return;
    case NUM_SIZE:
        if (x && x % MIB == 0)
            bounded_format(out, cap, "%llum", x / MIB);
        else if (x && x % KIB == 0)
            bounded_format(out, cap, "%lluk", x / KIB);
        else
            bounded_format(out, cap, "%llu", x);
        return;
    case NUM_DURATION:
        if (x && x % MINUTE == 0)
            bounded_format(out, cap, "%llum", x / MINUTE);
        else if (x && x % SECOND == 0)
            bounded_format(out, cap, "%llus", x / SECOND);
        else
            bounded_format(out, cap, "%llums", x);
        return;
    }
}

static void describe(char *out, size_t cap, const struct num_field *f)
{
    char lo[32], hi[32];
    format_bound(lo, sizeof(lo), f->kind, f->min);
    format_bound(hi, sizeof(hi), f->kind, f->max);
    switch (f->kind) {
    case NUM_COUNT:
        bounded_format(out, cap, "an integer %s..%s", lo, hi);
        return;
    case NUM_SIZE:
        bounded_format(out, cap, "a size %s..%s (bytes, or a k/m suffix)", lo, hi);
        return;
    case NUM_DURATION:
        bounded_format(out, cap, "a duration %s..%s (seconds, or an ms/s/m suffix)", lo,
                       hi);
        return;
    }
}

/* Reads |s| as |kind|: returns 0 and *v (bytes or milliseconds), CONF_ERR_TYPE when it
   is not of that form, or CONF_ERR_RANGE when it does not fit 64 bits. */
static int parse_number(const char *s, enum num_kind kind, uint64_t *v)
{
    /* strtoull would skip spaces and take a sign; only digits may start a number. */
    if (*s < '0' || *s > '9')
        return CONF_ERR_TYPE;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    bool overflow = errno == ERANGE;
    uint64_t mult = 1;
    switch (kind) {
    case NUM_COUNT:
        break;
    case NUM_SIZE:
        if (*end == 'k' || *end == 'K') {
            mult = KIB;
            end++;
        } else if (*end == 'm' || *end == 'M') {
            mult = MIB;
            end++;
        }
        break;
    case NUM_DURATION:
        if (end[0] == 'm' && end[1] == 's') {
            mult = 1;
            end += 2;
        } else if (*end == 's') {
            mult = SECOND;
            end++;
        } else if (*end == 'm') {
            mult = MINUTE;
            end++;
        } else {
            mult = SECOND;
        }
        break;
    }
    if (*end != '\0')
        return CONF_ERR_TYPE;
    if (overflow || x > UINT64_MAX / mult)
        return CONF_ERR_RANGE;
    *v = (uint64_t)x * mult;
    return 0;
}

/* Parses |n| per |f| into *v. |name| names the key and |alt| (may be "") is put in front
   of the description, as in "\"auto\" or ". */
static int parse_num(struct ctx *c, const struct conf_node *n, const char *name,
                     const struct num_field *f, const char *alt, uint64_t *v)
{
    char desc[128];
    describe(desc, sizeof(desc), f);
    if (n->kind != CONF_NODE_SCALAR || conf_node_is_null(n) || n->len == 0)
        return FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected %s%s", name, alt, desc);
    int rc = parse_number(n->text, f->kind, v);
    if (rc == CONF_ERR_TYPE)
        return FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected %s%s", name, alt, desc);
    if (rc == CONF_ERR_RANGE || *v < f->min || *v > f->max) {
        char shown[CONF_SHOW_SIZE];
        return FAIL(c, n->line, CONF_ERR_RANGE, "%s: %s is out of range: expected %s%s",
                    name, conf_show(shown, n->text, n->len), alt, desc);
    }
    return 0;
}

/* Parses |n| per |f| and stores it at |f|'s offset in |base|. */
static int set_num(struct ctx *c, const struct conf_node *n, const char *parent,
                   const struct num_field *f, void *base)
{
    char name[NAME_MAX_LEN];
    uint64_t v;
    int rc = parse_num(c, n, dotted(name, parent, f->name), f, "", &v);
    if (rc)
        return rc;
    /* Every max in the tables fits an unsigned; a size_t is at least as wide. */
    if (f->kind == NUM_SIZE)
        *(size_t *)(void *)((char *)base + f->offset) = (size_t)v;
    else
        *(unsigned *)(void *)((char *)base + f->offset) = (unsigned)v;
    return 0;
}

/* Finds |n|'s key in |fields| and sets it; returns 1 when the key is not in the table. */
static int set_from_table(struct ctx *c, const struct conf_node *n, const char *parent,
                          const struct num_field *fields, size_t nfields, void *base)
{
    for (size_t i = 0; i < nfields; i++)
        if (is(n, fields[i].name))
            return set_num(c, n, parent, &fields[i], base);
    return 1;
}

static int parse_bool(struct ctx *c, const struct conf_node *n, const char *name,
                      bool *out)
{
    if (n->kind == CONF_NODE_SCALAR && strcmp(n->text, "true") == 0)
        *out = true;
    else if (n->kind == CONF_NODE_SCALAR && strcmp(n->text, "false") == 0)
        *out = false;
    else
        return FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected true or false", name);
    return 0;
}

/* Matches |n| against the NULL-terminated |choices|; *idx receives the position. */
static int parse_choice(struct ctx *c, const struct conf_node *n, const char *name,
                        const char *const *choices, const char *desc, unsigned *idx)
{
    if (n->kind == CONF_NODE_SCALAR)
        for (unsigned i = 0; choices[i]; i++)
            if (strcmp(n->text, choices[i]) == 0) {
                *idx = i;
                return 0;
            }
    return FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected %s", name, desc);
}

/* ---- paths and addresses ------------------------------------------------------- */

/* Sets c->base to the absolute directory of c->file (the current directory for "-" or
   a name with no '/'). */
static int make_base(struct ctx *c, unsigned line)
{
    const char *file = c->file;
    const char *slash = strrchr(file, '/');
    size_t dlen = slash ? (slash == file ? 1 : (size_t)(slash - file)) : 0;
    if (dlen && file[0] == '/') {
        c->base = conf_strndup(file, dlen);
        return c->base ? 0 : nomem(c);
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return FAIL(c, line, CONF_ERR_IO, "cannot resolve a relative path: getcwd: %s",
                    strerror(errno));
    size_t clen = strlen(cwd);
    bool sep = dlen && cwd[clen - 1] != '/';
    if (clen + sep + dlen >= PATH_MAX)
        return FAIL(c, line, CONF_ERR_RANGE, "config directory path too long");
    c->base = conf_malloc(clen + sep + dlen + 1);
    if (!c->base)
        return nomem(c);
    memcpy(c->base, cwd, clen);
    if (sep)
        c->base[clen] = '/';
    memcpy(c->base + clen + sep, file, dlen);
    c->base[clen + sep + dlen] = '\0';
    return 0;
}

/* A FILE or DIR value: relative ones resolve against the config file's directory. */
static int parse_fs_path(struct ctx *c, const struct conf_node *n, const char *name,
                         char **dst)
{
    int rc = want(c, n, CONF_NODE_SCALAR, name);
    if (rc)
        return rc;
    for (size_t i = 0; i < n->len; i++) {
        unsigned char ch = (unsigned char)n->text[i];
        if (ch < 0x20 || ch == 0x7f)
            return FAIL(c, n->line, CONF_ERR_TYPE, "%s: control character in path", name);
    }
    if (n->text[0] == '/') {
        if (n->len >= PATH_MAX)
            return FAIL(c, n->line, CONF_ERR_RANGE, "%s: path too long", name);
        return copy_text(c, n, dst);
    }
    if (!c->base && (rc = make_base(c, n->line)) != 0)
        return rc;
    size_t blen = strlen(c->base);
    bool sep = c->base[blen - 1] != '/';
    if (blen + sep + n->len >= PATH_MAX)
        return FAIL(c, n->line, CONF_ERR_RANGE, "%s: path too long", name);
    char *p = conf_malloc(blen + sep + n->len + 1);
    if (!p)
        return nomem(c);
    memcpy(p, c->base, blen);
    if (sep)
        p[blen] = '/';
    memcpy(p + blen + sep, n->text, n->len + 1);
    free(*dst);
    *dst = p;
    return 0;
}

/* A log destination: "stderr" as is, anything else a FILE. */
static int parse_log_dest(struct ctx *c, const struct conf_node *n, const char *name,
                          char **dst)
{
    if (n->kind == CONF_NODE_SCALAR && strcmp(n->text, "stderr") == 0)
        return copy_text(c, n, dst);
    return parse_fs_path(c, n, name, dst);
}

/* A URL path: "/" then visible ASCII other than '?' and '#'. */
static int parse_url_path(struct ctx *c, const struct conf_node *n, const char *name,
                          char **dst)
{
    int rc = want(c, n, CONF_NODE_SCALAR, name);
    if (rc)
        return rc;
    bool ok = n->text[0] == '/';
    for (size_t i = 0; ok && i < n->len; i++) {
        unsigned char ch = (unsigned char)n->text[i];
        ok = visible(ch) && ch != '?' && ch != '#';
    }
    if (!ok)
        return FAIL(c, n->line, CONF_ERR_TYPE,
                    "%s: expected a path starting with \"/\" (visible ASCII, no \"?\" or "
                    "\"#\")",
                    name);
    return copy_text(c, n, dst);
}

/* A file name inside the cover root: relative, visible ASCII, no ".." segment. */
static bool valid_inner_file(const char *s)
{
    if (s[0] == '/' || s[0] == '\0')
        return false;
    for (const char *p = s; *p; p++)
        if (!visible((unsigned char)*p))
            return false;
    for (const char *seg = s; seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg = end ? end + 1 : NULL;
    }
    return true;
}

/* Decimal port 1..65535 filling the whole of s[0..len). */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Copies s[0..len) into |buf| (of |cap| bytes) and checks it is an address of |af|;
   |canon| receives inet_ntop's spelling. */
static bool parse_ip(int af, const char *s, size_t len, char *canon, size_t canon_cap)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(af, buf, addr) != 1)
        return false;
    return inet_ntop(af, addr, canon, (socklen_t)canon_cap) != NULL;
}

/* "127.0.0.1:8443", "[::1]:8443" or "*:8443"; the host comes back in canonical form
   ("" for any). */
static bool parse_address(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    if (s[0] == '*' && s[1] == ':') {
        host[0] = '\0';
        return parse_port(s + 2, strlen(s + 2), port);
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return false;
        return parse_ip(AF_INET6, s + 1, (size_t)(close - s - 1), host, host_cap) &&
               parse_port(close + 2, strlen(close + 2), port);
    }
    const char *colon = strchr(s, ':');
    if (!colon)
        return false;
    return parse_ip(AF_INET, s, (size_t)(colon - s), host, host_cap) &&
           parse_port(colon + 1, strlen(colon + 1), port);
}

/* http:// or https://, an authority (name, IPv4 or [IPv6], optional :port, no
   userinfo), then an optional path of visible ASCII. */
static bool valid_url(const char *s)
{
    const char *p;
    if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return false;
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    const char *port = NULL;
    if (alen == 0)
        return false;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', alen);
        char canon[INET6_ADDRSTRLEN];
        if (!close ||
            !parse_ip(AF_INET6, p + 1, (size_t)(close - p - 1), canon, sizeof(canon)))
            return false;
        if (close + 1 != rest) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
    } else {
        const char *q = p;
        for (; q < rest && *q != ':'; q++) {
            char ch = *q;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
                return false;
        }
        if (q == p)
            return false;
        if (q < rest)
            port = q + 1;
    }
    uint16_t v;
    if (port && !parse_port(port, (size_t)(rest - port), &v))
        return false;
    for (; *rest; rest++)
        if (!visible((unsigned char)*rest))
            return false;
    return true;
}

/* A route host, already lowercased: DNS labels of [a-z0-9-] (no leading or trailing
   '-'), at most 253 bytes, optionally behind a leading "*." label. */
static bool valid_host(const char *s)
{
    size_t total = strlen(s);
    if (total == 0 || total > 253)
        return false;
    if (s[0] == '*' && s[1] == '.')
        s += 2;
    for (;;) {
        size_t len = 0;
        while (s[len] && s[len] != '.') {
            char ch = s[len];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
                return false;
            len++;
        }
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
            return false;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

/* RFC 9110 token characters. */
static bool valid_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch))))
            return false;
    }
    return true;
}

/* ---- sections ------------------------------------------------------------------ */

static int parse_workers(struct ctx *c, const struct conf_node *n)
{
    if (n->kind == CONF_NODE_SCALAR && strcmp(n->text, "auto") == 0) {
        c->snap->workers = 0;
        return 0;
    }
    uint64_t v;
    int rc = parse_num(c, n, "workers", &workers_field, "\"auto\" or ", &v);
    if (rc)
        return rc;
    c->snap->workers = (unsigned)v;
    return 0;
}

static int parse_server_header(struct ctx *c, const struct conf_node *n)
{
    int rc = want(c, n, CONF_NODE_SCALAR, "server_header");
    if (rc)
        return rc;
    bool ok = n->len <= 128 && n->text[0] != ' ' && n->text[n->len - 1] != ' ';
    for (size_t i = 0; ok && i < n->len; i++)
        ok = n->text[i] == ' ' || visible((unsigned char)n->text[i]);
    if (!ok)
        return FAIL(c, n->line, CONF_ERR_TYPE,
                    "server_header: expected 1..128 visible ASCII characters (inner "
                    "spaces allowed)");
    return copy_text(c, n, &c->snap->server_header);
}

static int parse_error_log(struct ctx *c, const struct conf_node *map)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    int rc = want(c, map, CONF_NODE_MAP, "error_log");
    if (rc)
        return rc;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "path")) {
            rc = parse_log_dest(c, n, "error_log.path", &c->snap->error_log);
        } else if (is(n, "level")) {
            unsigned idx = 0;
            rc = parse_choice(c, n, "error_log.level", levels,
                              "error, warn, info or debug", &idx);
            if (!rc)
                c->snap->log_level = (enum conf_log_level)idx;
        } else {
            rc = unknown(c, n, "error_log");
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_tls(struct ctx *c, const struct conf_node *map, struct conf_listen *l)
{
    int rc = want(c, map, CONF_NODE_MAP, "listen.tls");
    if (rc)
        return rc;
    l->tls = true;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "certificate"))
            rc = parse_fs_path(c, n, "listen.tls.certificate", &l->certificate);
        else if (is(n, "key"))
            rc = parse_fs_path(c, n, "listen.tls.key", &l->key);
        else if (is(n, "client_ca"))
            rc = parse_fs_path(c, n, "listen.tls.client_ca", &l->client_ca);
        else
            rc = unknown(c, n, "listen.tls");
        if (rc)
            return rc;
    }
    if (!l->certificate)
        return missing(c, map->line, "certificate", "listen.tls");
    if (!l->key)
        return missing(c, map->line, "key", "listen.tls");
    return 0;
}

static int parse_listen_entry(struct ctx *c, const struct conf_node *map,
                              struct conf_listen *l)
{
    int rc = want(c, map, CONF_NODE_MAP, "listen entry");
    if (rc)
        return rc;
    l->line = map->line;
    bool have_address = false;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "address")) {
            char host[INET6_ADDRSTRLEN];
            rc = want(c, n, CONF_NODE_SCALAR, "listen.address");
            if (rc)
                return rc;
            if (!parse_address(n->text, host, sizeof(host), &l->port))
                return FAIL(c, n->line, CONF_ERR_TYPE,
                            "listen.address: expected \"IPv4:port\", \"[IPv6]:port\" or "
                            "\"*:port\" with a port 1..65535");
            rc = copy_str(c, host, &l->host);
            have_address = true;
        } else if (is(n, "tls")) {
            rc = parse_tls(c, n, l);
        } else {
            rc = unknown(c, n, "listen entry");
        }
        if (rc)
            return rc;
    }
    if (!have_address)
        return missing(c, map->line, "address", "listen entry");
    return 0;
}

/* Writes "host:port" the way it was meant, for messages. */
static void format_address(char *out, size_t cap, const struct conf_listen *l)
{
    if (!*l->host)
        bounded_format(out, cap, "*:%u", l->port);
    else if (strchr(l->host, ':'))
        bounded_format(out, cap, "[%s]:%u", l->host, l->port);
    else
        bounded_format(out, cap, "%s:%u", l->host, l->port);
}

static int parse_listen(struct ctx *c, const struct conf_node *seq)
{
    struct conf_snapshot *s = c->snap;
    int rc = want(c, seq, CONF_NODE_SEQ, "listen");
    if (rc)
        return rc;
    if (seq->n == 0)
        return FAIL(c, seq->line, CONF_ERR_MISSING,
                    "listen: expected at least one entry");
    s->listen = conf_calloc(seq->n, sizeof(*s->listen));
    if (!s->listen)
        return nomem(c);
    s->nlisten = seq->n;
    size_t i = 0;
    for (const struct conf_node *n = seq->child; n; n = n->next, i++) {
        struct conf_listen *l = &s->listen[i];
        rc = parse_listen_entry(c, n, l);
        if (rc)
            return rc;
        /* "*" binds a dual-stack any-address socket, so it takes the port from every
           specific address too. */
        for (size_t j = 0; j < i; j++) {
            const struct conf_listen *o = &s->listen[j];
            if (o->port != l->port)
                continue;
            char a[INET6_ADDRSTRLEN + 16], b[INET6_ADDRSTRLEN + 16];
            format_address(a, sizeof(a), l);
            format_address(b, sizeof(b), o);
            if (strcmp(o->host, l->host) == 0)
                return FAIL(c, l->line, CONF_ERR_DUPLICATE,
                            "duplicate listen address \"%s\" (first on line %u)", a,
                            o->line);
            if (!*o->host || !*l->host)
                return FAIL(c, l->line, CONF_ERR_DUPLICATE,
                            "listen address \"%s\" overlaps \"%s\" on line %u", a, b,
                            o->line);
        }
    }
    return 0;
}

static int parse_limits(struct ctx *c, const struct conf_node *map)
{
    int rc = want(c, map, CONF_NODE_MAP, "limits");
    if (rc)
        return rc;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        rc = set_from_table(c, n, "limits", limit_fields,
                            sizeof(limit_fields) / sizeof(limit_fields[0]),
                            &c->snap->limits);
        if (rc == 1)
            rc = unknown(c, n, "limits");
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_cover(struct ctx *c, const struct conf_node *map)
{
    struct conf_cover *cv = &c->snap->cover;
    const struct conf_node *root = NULL, *upstream = NULL, *inner = NULL;
    int rc = want(c, map, CONF_NODE_MAP, "cover");
    if (rc)
        return rc;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "root")) {
            root = n;
            cv->line = n->key_line;
            rc = parse_fs_path(c, n, "cover.root", &cv->root);
        } else if (is(n, "upstream")) {
            upstream = n;
            cv->line = n->key_line;
            rc = want(c, n, CONF_NODE_SCALAR, "cover.upstream");
            if (!rc && !valid_url(n->text))
                rc = FAIL(c, n->line, CONF_ERR_TYPE,
                          "cover.upstream: expected an http:// or https:// URL");
            if (!rc)
                rc = copy_text(c, n, &cv->upstream);
        } else if (is(n, "index") || is(n, "not_found")) {
            char name[NAME_MAX_LEN];
            dotted(name, "cover", n->key);
            inner = inner ? inner : n;
            rc = want(c, n, CONF_NODE_SCALAR, name);
            if (!rc && !valid_inner_file(n->text))
                rc = FAIL(c, n->line, CONF_ERR_TYPE,
                          "%s: expected a file name relative to cover.root (no \"..\")",
                          name);
            if (!rc)
                rc = copy_text(c, n, is(n, "index") ? &cv->index : &cv->not_found);
        } else {
            rc = unknown(c, n, "cover");
        }
        if (rc)
            return rc;
    }
    if (root && upstream) {
        const struct conf_node *later =
            root->key_line > upstream->key_line ? root : upstream;
        return FAIL(c, later->key_line, CONF_ERR_TYPE,
                    "cover: root and upstream exclude each other");
    }
    if (inner && !root) {
        char name[NAME_MAX_LEN];
        return FAIL(c, inner->key_line, CONF_ERR_TYPE, "%s: only applies with cover.root",
                    dotted(name, "cover", inner->key));
    }
    return 0;
}

static int default_headers(struct ctx *c, struct conf_backend *be)
{
    size_t n = 0;
    while (conf_default_allowlist[n])
        n++;
    be->headers = conf_calloc(n + 1, sizeof(*be->headers));
    if (!be->headers)
        return nomem(c);
    be->nheaders = n;
    for (size_t i = 0; i < n; i++) {
        int rc = copy_str(c, conf_default_allowlist[i], &be->headers[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_headers(struct ctx *c, const struct conf_node *seq, const char *name,
                         struct conf_backend *be)
{
    int rc = want(c, seq, CONF_NODE_SEQ, name);
    if (rc)
        return rc;
    if (seq->n > MAX_HEADERS)
        return FAIL(c, seq->line, CONF_ERR_RANGE, "%s: more than %d entries", name,
                    MAX_HEADERS);
    /* One more for the NULL at the end; `headers: []` is an empty list, not NULL,
       so that it never reads as "use the default". */
    be->headers = conf_calloc(seq->n + 1, sizeof(*be->headers));
    if (!be->headers)
        return nomem(c);
    be->nheaders = seq->n;
    size_t i = 0;
    for (const struct conf_node *n = seq->child; n; n = n->next, i++) {
        char shown[CONF_SHOW_SIZE];
        rc = want(c, n, CONF_NODE_SCALAR, name);
        if (rc)
            return rc;
        if (!valid_token(n->text) || n->len > MAX_HEADER_NAME)
            return FAIL(c, n->line, CONF_ERR_TYPE,
                        "%s: \"%s\" is not a valid header name (a token of 1..%d bytes)",
                        name, conf_show(shown, n->text, n->len), MAX_HEADER_NAME);
        rc = copy_text(c, n, &be->headers[i]);
        if (rc)
            return rc;
        lowercase(be->headers[i]);
        if (strcmp(be->headers[i], "cookie") == 0)
            return FAIL(c, n->line, CONF_ERR_TYPE,
                        "%s: \"cookie\" is not listed here; use allow_cookie", name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(be->headers[j], be->headers[i]) == 0)
                return FAIL(c, n->line, CONF_ERR_DUPLICATE, "%s: duplicate \"%s\"", name,
                            be->headers[i]);
    }
    return 0;
}

static bool backend_key(const struct conf_node *n)
{
    return is(n, "adapter") || is(n, "headers") || is(n, "allow_cookie") ||
           is(n, "replay") || is(n, "pad_min");
}

/* One adapter parameter value; quoted "" is allowed (the adapter judges it). */
static int param_value(struct ctx *c, const struct conf_node *n, const char *name,
                       const char *key, struct conf_kv *kv)
{
    if (n->kind != CONF_NODE_SCALAR || conf_node_is_null(n))
        return FAIL(c, n->line, CONF_ERR_TYPE,
                    "%s: expected a scalar or a sequence of scalars", name);
    kv->line = n->line;
    int rc = copy_str(c, key, &kv->key);
    return rc ? rc : copy_text(c, n, &kv->value);
}

static int parse_backend(struct ctx *c, const struct conf_node *map,
                         struct conf_backend *be)
{
    char prefix[NAME_MAX_LEN], name[NAME_MAX_LEN], shown[CONF_SHOW_SIZE];
    size_t klen = strlen(map->key);
    if (!valid_name(map->key, klen))
        return FAIL(c, map->key_line, CONF_ERR_TYPE,
                    "backends: bad name \"%s\": expected [a-z0-9_-]{1,64}",
                    conf_show(shown, map->key, klen));
    be->line = map->key_line;
    be->pad_min = DEFAULT_PAD_MIN;
    int rc = copy_str(c, map->key, &be->name);
    if (rc)
        return rc;
    dotted(prefix, "backends", map->key);
    if ((rc = want(c, map, CONF_NODE_MAP, prefix)) != 0)
        return rc;

    /* Size the parameter array first, so it is allocated once and is always whole. */
    size_t nparams = 0;
    for (const struct conf_node *n = map->child; n; n = n->next)
        if (!backend_key(n))
            nparams += n->kind == CONF_NODE_SEQ ? n->n : 1;
    if (nparams) {
        be->params = conf_calloc(nparams, sizeof(*be->params));
        if (!be->params)
            return nomem(c);
        be->nparams = nparams;
    }

    bool have_headers = false;
    size_t k = 0;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        dotted(name, prefix, n->key);
        if (is(n, "adapter")) {
            rc = want(c, n, CONF_NODE_SCALAR, name);
            if (!rc && !valid_name(n->text, n->len))
                rc = FAIL(c, n->line, CONF_ERR_TYPE, "%s: expected [a-z0-9_-]{1,64}",
                          name);
            if (!rc)
                rc = copy_text(c, n, &be->adapter);
            be->adapter_line = n->key_line;
        } else if (is(n, "headers")) {
            have_headers = true;
            rc = parse_headers(c, n, name, be);
        } else if (is(n, "allow_cookie")) {
            rc = parse_bool(c, n, name, &be->allow_cookie);
        } else if (is(n, "replay")) {
            static const char *const modes[] = {"optional", "strict", NULL};
            unsigned idx = 0;
            rc = parse_choice(c, n, name, modes, "optional or strict", &idx);
            if (!rc)
                be->replay = idx ? CONF_REPLAY_STRICT : CONF_REPLAY_OPTIONAL;
        } else if (is(n, "pad_min")) {
            uint64_t v;
            rc = parse_num(c, n, name, &pad_min_field, "", &v);
            if (!rc)
                be->pad_min = (size_t)v;
        } else if (!valid_name(n->key, strlen(n->key))) {
            rc = FAIL(c, n->key_line, CONF_ERR_UNKNOWN,
                      "%s: bad key \"%s\": expected [a-z0-9_-]{1,64}", prefix,
                      conf_show(shown, n->key, strlen(n->key)));
        } else if (n->kind == CONF_NODE_SEQ) {
            if (n->n == 0)
                rc = FAIL(c, n->line, CONF_ERR_TYPE, "%s: empty sequence", name);
            for (const struct conf_node *e = n->child; e && !rc; e = e->next)
                rc = param_value(c, e, name, n->key, &be->params[k++]);
        } else {
            rc = param_value(c, n, name, n->key, &be->params[k++]);
        }
        if (rc)
            return rc;
    }
    if (!be->adapter)
        return missing(c, map->line, "adapter", prefix);
    if (!have_headers)
        return default_headers(c, be);
    return 0;
}

static int parse_backends(struct ctx *c, const struct conf_node *map)
{
    struct conf_snapshot *s = c->snap;
    int rc = want(c, map, CONF_NODE_MAP, "backends");
    if (rc)
        return rc;
    if (map->n == 0)
        return 0;
    s->backends = conf_calloc(map->n, sizeof(*s->backends));
    if (!s->backends)
        return nomem(c);
    s->nbackends = map->n;
    size_t i = 0;
    for (const struct conf_node *n = map->child; n; n = n->next, i++)
        if ((rc = parse_backend(c, n, &s->backends[i])) != 0)
            return rc;
    return 0;
}

static int parse_sealed(struct ctx *c, const struct conf_node *map)
{
    struct conf_sealed *se = &c->snap->sealed;
    int rc = want(c, map, CONF_NODE_MAP, "sealed");
    if (rc)
        return rc;
    se->enabled = true;
    unsigned paths_line = map->line; /* where path or keys_path was last given */
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "path") || is(n, "keys_path")) {
            paths_line = n->key_line;
            if (is(n, "path"))
                rc = parse_url_path(c, n, "sealed.path", &se->path);
            else
                rc = parse_url_path(c, n, "sealed.keys_path", &se->keys_path);
        } else if (is(n, "keys")) {
            se->keys_line = n->key_line;
            rc = parse_fs_path(c, n, "sealed.keys", &se->keys_dir);
        } else if ((rc = set_from_table(c, n, "sealed", sealed_fields,
                                        sizeof(sealed_fields) / sizeof(sealed_fields[0]),
                                        se)) == 1) {
            rc = unknown(c, n, "sealed");
        }
        if (rc)
            return rc;
    }
    se->line = map->line;
    if (!se->path && (rc = copy_str(c, DEFAULT_SEALED_PATH, &se->path)) != 0)
        return rc;
    if (!se->keys_path && (rc = copy_str(c, DEFAULT_KEYS_PATH, &se->keys_path)) != 0)
        return rc;
    if (strcmp(se->path, se->keys_path) == 0)
        return FAIL(c, paths_line, CONF_ERR_DUPLICATE,
                    "sealed: path and keys_path are both \"%s\"", se->path);
    return 0;
}

static int parse_handler(struct ctx *c, const struct conf_node *n, struct conf_route *r)
{
    int rc = want(c, n, CONF_NODE_SCALAR, "routes.handler");
    if (rc)
        return rc;
    if (strcmp(n->text, "cover") == 0) {
        r->handler = CONF_HANDLER_COVER;
        return 0;
    }
    if (strncmp(n->text, "backend ", 8) != 0 || !valid_name(n->text + 8, n->len - 8))
        return FAIL(c, n->line, CONF_ERR_TYPE,
                    "routes.handler: expected \"cover\" or \"backend NAME\"");
    r->handler = CONF_HANDLER_BACKEND;
    return copy_str(c, n->text + 8, &r->backend);
}

static int parse_route(struct ctx *c, const struct conf_node *map, struct conf_route *r)
{
    int rc = want(c, map, CONF_NODE_MAP, "routes entry");
    if (rc)
        return rc;
    r->line = map->line;
    bool have_handler = false;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "host")) {
            rc = want(c, n, CONF_NODE_SCALAR, "routes.host");
            if (!rc)
                rc = copy_text(c, n, &r->host);
            if (!rc) {
                lowercase(r->host);
                if (!valid_host(r->host))
                    rc = FAIL(c, n->line, CONF_ERR_TYPE,
                              "routes.host: expected a host name, optionally starting "
                              "with \"*.\" (ASCII, no port)");
            }
        } else if (is(n, "path")) {
            rc = parse_url_path(c, n, "routes.path", &r->path);
        } else if (is(n, "handler")) {
            have_handler = true;
            rc = parse_handler(c, n, r);
        } else {
            rc = unknown(c, n, "routes entry");
        }
        if (rc)
            return rc;
    }
    if (!have_handler)
        return missing(c, map->line, "handler", "routes entry");
    if (!r->path)
        return copy_str(c, DEFAULT_ROUTE_PATH, &r->path);
    return 0;
}

static int parse_routes(struct ctx *c, const struct conf_node *seq)
{
    struct conf_snapshot *s = c->snap;
    int rc = want(c, seq, CONF_NODE_SEQ, "routes");
    if (rc)
        return rc;
    if (seq->n == 0)
        return 0;
    s->routes = conf_calloc(seq->n, sizeof(*s->routes));
    if (!s->routes)
        return nomem(c);
    s->nroutes = seq->n;
    size_t i = 0;
    for (const struct conf_node *n = seq->child; n; n = n->next, i++) {
        struct conf_route *r = &s->routes[i];
        if ((rc = parse_route(c, n, r)) != 0)
            return rc;
        /* First match wins, so an exact repeat could never be reached. */
        for (size_t j = 0; j < i; j++) {
            const struct conf_route *o = &s->routes[j];
            bool same_host = (!o->host && !r->host) ||
                             (o->host && r->host && strcmp(o->host, r->host) == 0);
            if (same_host && strcmp(o->path, r->path) == 0)
                return FAIL(c, r->line, CONF_ERR_DUPLICATE,
                            "duplicate route (same host and path as line %u)", o->line);
        }
    }
    return 0;
}

/* Routes may name backends defined further down the file, so they are checked last. */
static int check_route_backends(struct ctx *c)
{
    const struct conf_snapshot *s = c->snap;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct conf_route *r = &s->routes[i];
        if (r->handler != CONF_HANDLER_BACKEND)
            continue;
        bool found = false;
        for (size_t j = 0; j < s->nbackends && !found; j++)
            found = strcmp(s->backends[j].name, r->backend) == 0;
        if (!found)
            return FAIL(c, r->line, CONF_ERR_UNKNOWN,
                        "route: no backend named \"%s\" in backends", r->backend);
    }
    return 0;
}

/* What each role needs and must not have. */
static int check_roles(struct ctx *c, unsigned role_line)
{
    struct conf_snapshot *s = c->snap;
    if (s->role == CONF_ROLE_RELAY) {
        if (!s->relay.enabled)
            return FAIL(c, role_line, CONF_ERR_MISSING,
                        "role relay needs a relay section (the gateway to forward to)");
        if (!s->sealed.enabled)
            return FAIL(c, role_line, CONF_ERR_MISSING,
                        "role relay needs a sealed section (the path it takes requests on)");
        if (s->sealed.keys_dir)
            return FAIL(c, s->sealed.keys_line, CONF_ERR_TYPE,
                        "sealed.keys: a relay holds no keys");
        return 0;
    }
    if (s->relay.enabled)
        return FAIL(c, s->relay.line, CONF_ERR_TYPE,
                    "relay: only for role relay");
    if (s->sealed.enabled && !s->sealed.keys_dir)
        return missing(c, s->sealed.line, "keys", "sealed");
    if (s->role == CONF_ROLE_GATEWAY) {
        if (s->gate.header)
            return FAIL(c, s->gate.line, CONF_ERR_TYPE,
                        "gate: not on a gateway (relays authenticate with client "
                        "certificates and carry no origin secret)");
        bool mtls = false;
        for (size_t i = 0; i < s->nlisten; i++)
            mtls = mtls || s->listen[i].client_ca;
        if (!mtls)
            return FAIL(c, role_line, CONF_ERR_MISSING,
                        "role gateway needs a listener with tls.client_ca (relays "
                        "authenticate with client certificates)");
        if (!s->sealed.enabled)
            return FAIL(c, role_line, CONF_ERR_MISSING, "role gateway needs a sealed section");
    }
    return 0;
}

static int parse_gate(struct ctx *c, const struct conf_node *map)
{
    struct conf_gate *g = &c->snap->gate;
    int rc = want(c, map, CONF_NODE_MAP, "gate");
    if (rc)
        return rc;
    g->line = map->key_line;
    const struct conf_node *secrets = NULL;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "header")) {
            char shown[CONF_SHOW_SIZE];
            rc = want(c, n, CONF_NODE_SCALAR, "gate.header");
            if (!rc && (!valid_token(n->text) || n->len > MAX_HEADER_NAME))
                rc = FAIL(c, n->line, CONF_ERR_TYPE,
                          "gate.header: \"%s\" is not a valid header name",
                          conf_show(shown, n->text, n->len));
            if (!rc && (rc = copy_text(c, n, &g->header)) == 0)
                lowercase(g->header);
        } else if (is(n, "secrets")) {
            secrets = n;
            rc = want(c, n, CONF_NODE_SEQ, "gate.secrets");
            if (!rc && (n->n < 1 || n->n > 16))
                rc = FAIL(c, n->line, CONF_ERR_RANGE, "gate.secrets: 1..16 values");
            if (!rc && !(g->secrets = conf_calloc(n->n + 1, sizeof(*g->secrets))))
                rc = nomem(c);
            for (const struct conf_node *v = rc ? NULL : n->child; v && !rc; v = v->next) {
                rc = want(c, v, CONF_NODE_SCALAR, "gate.secrets");
                bool ok = !rc && v->len >= 16 && v->len <= 256;
                for (size_t i = 0; ok && i < v->len; i++)
                    ok = visible((unsigned char)v->text[i]);
                if (!rc && !ok)
                    /* The value is a secret: never shown in a message. */
                    rc = FAIL(c, v->line, CONF_ERR_TYPE,
                              "gate.secrets: each value is 16..256 visible ASCII bytes");
                if (!rc)
                    rc = copy_text(c, v, &g->secrets[g->nsecrets++]);
            }
        } else {
            rc = unknown(c, n, "gate");
        }
        if (rc)
            return rc;
    }
    if (!g->header)
        return missing(c, map->line, "header", "gate");
    if (!secrets)
        return missing(c, map->line, "secrets", "gate");
    return 0;
}

static int parse_mount(struct ctx *c, const struct conf_node *n)
{
    int rc = parse_url_path(c, n, "mount", &c->snap->mount);
    if (rc)
        return rc;
    size_t len = strlen(c->snap->mount);
    if (len < 2 || c->snap->mount[len - 1] == '/' || len > 256)
        return FAIL(c, n->line, CONF_ERR_TYPE,
                    "mount: expected a prefix like \"/edge\" (no trailing slash)");
    return 0;
}

static const struct num_field relay_fields[] = {
    {"connections", NUM_COUNT, offsetof(struct conf_relay, connections), 1, 64},
    {"max_queue", NUM_COUNT, offsetof(struct conf_relay, max_queue), 1, 100000},
    {"timeout", NUM_DURATION, offsetof(struct conf_relay, timeout_ms), 100, 60 * MINUTE},
};

static int parse_relay(struct ctx *c, const struct conf_node *map)
{
    struct conf_relay *r = &c->snap->relay;
    int rc = want(c, map, CONF_NODE_MAP, "relay");
    if (rc)
        return rc;
    r->enabled = true;
    r->line = map->key_line;
    for (const struct conf_node *n = map->child; n; n = n->next) {
        if (is(n, "gateway")) {
            rc = want(c, n, CONF_NODE_SCALAR, "relay.gateway");
            if (!rc && strncmp(n->text, "https://", 8) != 0)
                rc = FAIL(c, n->line, CONF_ERR_TYPE,
                          "relay.gateway: expected an https:// URL (mutual TLS)");
            if (!rc && !valid_url(n->text))
                rc = FAIL(c, n->line, CONF_ERR_TYPE, "relay.gateway: not a valid URL");
            if (!rc)
                rc = copy_text(c, n, &r->gateway);
        } else if (is(n, "certificate")) {
            rc = parse_fs_path(c, n, "relay.certificate", &r->certificate);
        } else if (is(n, "key")) {
            rc = parse_fs_path(c, n, "relay.key", &r->key);
        } else if (is(n, "ca_file")) {
            rc = parse_fs_path(c, n, "relay.ca_file", &r->ca_file);
        } else if ((rc = set_from_table(c, n, "relay", relay_fields,
                                        sizeof(relay_fields) / sizeof(relay_fields[0]),
                                        r)) == 1) {
            rc = unknown(c, n, "relay");
        }
        if (rc)
            return rc;
    }
    if (!r->gateway)
        return missing(c, map->line, "gateway", "relay");
    if (!r->certificate)
        return missing(c, map->line, "certificate", "relay");
    if (!r->key)
        return missing(c, map->line, "key", "relay");
    return 0;
}

static int parse_top(struct ctx *c, const struct conf_node *root)
{
    unsigned role_line = 0;
    struct conf_snapshot *s = c->snap;
    /* No document, or one that is only "---", is an empty file to the user. */
    if (!root || conf_node_is_null(root))
        return FAIL(c, 1, CONF_ERR_MISSING,
                    "empty configuration: missing required key \"listen\"");
    if (root->kind != CONF_NODE_MAP)
        return FAIL(c, root->line, CONF_ERR_TYPE, "top level: expected a map, not %s",
                    kind_name(root->kind));
    bool have_listen = false;
    for (const struct conf_node *n = root->child; n; n = n->next) {
        int rc;
        if (is(n, "workers")) {
            rc = parse_workers(c, n);
        } else if (is(n, "role")) {
            static const char *const roles[] = {"edge", "relay", "gateway", NULL};
            static const enum conf_role values[] = {CONF_ROLE_EDGE, CONF_ROLE_RELAY,
                                                    CONF_ROLE_GATEWAY};
            unsigned idx = 0;
            rc = parse_choice(c, n, "role", roles, "\"edge\", \"relay\" or \"gateway\"",
                              &idx);
            if (!rc) {
                s->role = values[idx];
                role_line = n->key_line;
            }
        } else if (is(n, "gate")) {
            rc = parse_gate(c, n);
        } else if (is(n, "mount")) {
            rc = parse_mount(c, n);
        } else if (is(n, "open")) {
            rc = parse_bool(c, n, "open", &s->open);
        } else if (is(n, "relay")) {
            rc = parse_relay(c, n);
        } else if (is(n, "server_header")) {
            rc = parse_server_header(c, n);
        } else if (is(n, "error_log")) {
            rc = parse_error_log(c, n);
        } else if (is(n, "access_log")) {
            rc = parse_log_dest(c, n, "access_log", &s->access_log);
        } else if (is(n, "listen")) {
            have_listen = true;
            rc = parse_listen(c, n);
        } else if (is(n, "limits")) {
            rc = parse_limits(c, n);
        } else if (is(n, "cover")) {
            rc = parse_cover(c, n);
        } else if (is(n, "backends")) {
            rc = parse_backends(c, n);
        } else if (is(n, "sealed")) {
            rc = parse_sealed(c, n);
        } else if (is(n, "routes")) {
            rc = parse_routes(c, n);
        } else {
            rc = unknown(c, n, "top level");
        }
        if (rc)
            return rc;
    }
    if (!have_listen)
        return missing(c, root->line, "listen", "top level");
    int rc = check_roles(c, role_line ? role_line : root->line);
    return rc ? rc : check_route_backends(c);
}

/* Defaults that are strings, for keys the file left out. */
static int fill_defaults(struct ctx *c)
{
    struct conf_snapshot *s = c->snap;
    int rc = 0;
    if (!s->error_log)
        rc = copy_str(c, DEFAULT_ERROR_LOG, &s->error_log);
    if (!rc && !s->cover.index)
        rc = copy_str(c, DEFAULT_INDEX, &s->cover.index);
    if (!rc && !s->cover.not_found)
        rc = copy_str(c, DEFAULT_NOT_FOUND, &s->cover.not_found);
    if (!rc && !s->sealed.path)
        rc = copy_str(c, DEFAULT_SEALED_PATH, &s->sealed.path);
    if (!rc && !s->sealed.keys_path)
        rc = copy_str(c, DEFAULT_KEYS_PATH, &s->sealed.keys_path);
    return rc;
}

/* ---- public -------------------------------------------------------------------- */

int conf_snapshot_load_buffer(const char *file, const char *buf, size_t len,
                              struct conf_snapshot **out, struct conf_error *err)
{
    struct ctx c = {.file = file ? file : "-", .err = err};
    if (len > CONF_MAX_FILE)
        return FAIL(&c, 0, CONF_ERR_RANGE, "larger than %d bytes", CONF_MAX_FILE);
    if (!buf)
        len = 0;

    struct conf_node *root = NULL;
    int rc = conf_tree_parse(c.file, buf ? buf : "", len, &root, err);
    if (rc)
        return rc;

    c.snap = conf_calloc(1, sizeof(*c.snap));
    if (!c.snap) {
        conf_tree_free(root);
        return nomem(&c);
    }
    struct conf_snapshot *s = c.snap;
    s->workers = 0;
    s->role = CONF_ROLE_EDGE;
    s->log_level = CONF_LOG_INFO;
    conf_limits_default(&s->limits);
    s->sealed.replay_window_ms = 60 * SECOND;
    s->sealed.replay_cache = 100000;
    s->sealed.max_request = 64 * KIB;
    s->sealed.max_response = MIB;
    s->relay.connections = 2;
    s->relay.max_queue = 1024;
    s->relay.timeout_ms = 30 * SECOND;

    rc = copy_str(&c, c.file, &s->file);
    if (!rc)
        rc = parse_top(&c, root);
    if (!rc)
        rc = fill_defaults(&c);
    conf_tree_free(root);
    free(c.base);
    c.base = NULL;
    if (rc) {
        conf_snapshot_free(c.snap);
        return rc;
    }
    if (err) {
        err->msg[0] = '\0';
        err->line = 0;
    }
    *out = c.snap;
    return 0;
}

int conf_snapshot_load_file(const char *path, struct conf_snapshot **out,
                            struct conf_error *err)
{
    /* open/read rather than stdio: O_CLOEXEC, and the size cap is checked while
       reading, whatever fstat might say about a file that is still growing. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return conf_errorf(err, path, 0, CONF_ERR_IO, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap > CONF_MAX_FILE) {
                rc = conf_errorf(err, path, 0, CONF_ERR_RANGE, "larger than %d bytes",
                                 CONF_MAX_FILE);
                break;
            }
            size_t ncap = cap ? cap * 2 : 16 * KIB;
            if (ncap > (size_t)CONF_MAX_FILE + 1)
                ncap = (size_t)CONF_MAX_FILE + 1;
            char *nbuf = conf_malloc(ncap);
            if (!nbuf) {
                rc = conf_errorf(err, path, 0, CONF_ERR_NOMEM, "out of memory");
                break;
            }
            if (len)
                memcpy(nbuf, buf, len);
            if (buf)
                explicit_bzero(buf, len); /* it may hold the gate's secrets */
            free(buf);
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            rc = conf_errorf(err, path, 0, CONF_ERR_IO, "cannot read: %s",
                             strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    (void)close(fd);
    if (rc == 0 && len > CONF_MAX_FILE)
        rc = conf_errorf(err, path, 0, CONF_ERR_RANGE, "larger than %d bytes",
                         CONF_MAX_FILE);
    if (rc == 0)
        rc = conf_snapshot_load_buffer(path, buf, len, out, err);
    if (buf)
        explicit_bzero(buf, len); /* the gate's secrets live in the file */
    free(buf);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void conf_snapshot_free(struct conf_snapshot *s)
{
    if (!s)
        return;
    free(s->file);
    free(s->server_header);
    free(s->error_log);
    free(s->access_log);
    for (size_t i = 0; i < s->nlisten; i++) {
        free(s->listen[i].host);
        free(s->listen[i].certificate);
        free(s->listen[i].key);
        free(s->listen[i].client_ca);
    }
    free(s->listen);
    free(s->cover.root);
    free(s->cover.upstream);
    free(s->cover.index);
    free(s->cover.not_found);
    free(s->sealed.path);
    free(s->sealed.keys_dir);
    free(s->sealed.keys_path);
    free(s->gate.header);
    for (size_t i = 0; i < s->gate.nsecrets; i++)
        if (s->gate.secrets[i])
            explicit_bzero(s->gate.secrets[i], strlen(s->gate.secrets[i]));
    free_strv(s->gate.secrets, s->gate.nsecrets);
    free(s->mount);
    free(s->relay.gateway);
    free(s->relay.certificate);
    free(s->relay.key);
    free(s->relay.ca_file);
    for (size_t i = 0; i < s->nbackends; i++) {
        struct conf_backend *be = &s->backends[i];
        free(be->name);
        free(be->adapter);
        free_strv(be->headers, be->nheaders);
        for (size_t j = 0; j < be->nparams; j++) {
            free(be->params[j].key);
            free(be->params[j].value);
        }
        free(be->params);
    }
    free(s->backends);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].host);
        free(s->routes[i].path);
        free(s->routes[i].backend);
    }
    free(s->routes);
    free(s);
}

const char *conf_strerror(int err)
{
    switch (err) {
    case CONF_OK:
        return "success";
    case CONF_ERR_SYNTAX:
        return "YAML syntax error";
    case CONF_ERR_UNKNOWN:
        return "unknown key";
    case CONF_ERR_TYPE:
        return "wrong type or unparsable value";
    case CONF_ERR_RANGE:
        return "value out of range";
    case CONF_ERR_MISSING:
        return "required key missing";
    case CONF_ERR_DUPLICATE:
        return "duplicate";
    case CONF_ERR_IO:
        return "cannot read the file";
    case CONF_ERR_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}
