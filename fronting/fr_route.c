#include "fr_route.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tp_err.h"

#define HOST_MAX 1024
#define PATH_MAX_LEN 1024

struct rule {
    const char *host; /* lowercase; for a wildcard, the suffix with its leading '.' */
    size_t host_len;
    bool any_host;
    bool wildcard;
    const char *path;
    size_t path_len;
    bool dir_prefix; /* prefix ends in '/': plain prefix match */
    int target;
};

struct fr_router {
    size_t n;
    struct rule *rules;
    char *pool; /* every host and path, NUL-separated */
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* A byte that may appear in a configured host name or IP literal. Anything else (space,
   control bytes, '/', '@', '*' outside the leading label) is a config mistake. */
static bool host_byte_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c >= 0x80;
}

/* Normalises a configured host into dst (which has room for strlen(src) + 1 bytes).
   Returns the length written, or 0 when the host is unusable. */
static size_t norm_rule_host(const char *src, char *dst, bool *wildcard)
{
    size_t len = strlen(src), o = 0;
    bool v6 = false;
    *wildcard = false;
    if (len >= 2 && src[0] == '*' && src[1] == '.') {
        *wildcard = true;
        dst[o++] = '.';
        src += 2;
        len -= 2;
    } else if (len >= 2 && src[0] == '[' && src[len - 1] == ']') {
        v6 = true;
        src++;
        len -= 2;
    }
    if (len > 0 && src[len - 1] == '.' && !v6)
        len--;
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (!(host_byte_ok(c) || (v6 && c == ':')))
            return 0;
        dst[o++] = (char)lower(c);
    }
    /* "*.." or "*.a." style leftovers: an empty label after the wildcard. */
    if (*wildcard && dst[1] == '.')
        return 0;
    dst[o] = '\0';
    return o;
}

static bool path_ok(const char *p)
{
    if (p[0] != '/')
        return false;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

int fr_router_new(const struct fr_route_rule *rules, size_t n, struct fr_router **out)
{
    struct fr_router *r = NULL;
    size_t pool_len = 0;

    if (n > FR_ROUTE_MAX_RULES || (n > 0 && !rules))
        return n > FR_ROUTE_MAX_RULES ? TP_ERR_TOO_LARGE : TP_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        size_t hl = rules[i].host ? strlen(rules[i].host) : 0;
        size_t pl = rules[i].path ? strlen(rules[i].path) : 1;
        if (hl > HOST_MAX || pl > PATH_MAX_LEN)
            return TP_ERR_TOO_LARGE;
        if (rules[i].target < -1 || (rules[i].path && !path_ok(rules[i].path)))
            return TP_ERR_INVALID;
        pool_len += hl + 1 + pl + 1;
    }

    r = calloc(1, sizeof(*r));
    if (!r)
        return TP_ERR_NOMEM;
    r->rules = calloc(n ? n : 1, sizeof(*r->rules));
    r->pool = malloc(pool_len ? pool_len : 1);
    if (!r->rules || !r->pool) {
        fr_router_free(r);
        return TP_ERR_NOMEM;
    }

    char *p = r->pool;
    for (size_t i = 0; i < n; i++) {
        struct rule *ru = &r->rules[i];
        if (rules[i].host) {
            size_t hl = norm_rule_host(rules[i].host, p, &ru->wildcard);
            if (hl == 0) {
                fr_router_free(r);
                return TP_ERR_INVALID;
            }
            ru->host = p;
            ru->host_len = hl;
            p += hl + 1;
        } else {
            ru->any_host = true;
        }
        const char *path = rules[i].path ? rules[i].path : "/";
        size_t pl = strlen(path);
        memcpy(p, path, pl + 1);
        ru->path = p;
        ru->path_len = pl;
        ru->dir_prefix = path[pl - 1] == '/';
        p += pl + 1;
        ru->target = rules[i].target;
    }
    r->n = n;
    *out = r;
    return 0;
}

void fr_router_free(struct fr_router *r)
{
    if (!r)
        return;
    free(r->rules);
    r->rules = NULL;
    free(r->pool);
    r->pool = NULL;
    free(r);
}

size_t fr_router_count(const struct fr_router *r)
{
    return r ? r->n : 0;
}

/* The host part of an authority: no port, no IPv6 brackets, no trailing dot. */
static struct tp_str authority_host(struct tp_str a)
{
    struct tp_str h = {a.base, 0};
    if (a.len == 0)
        return h;
    if (a.base[0] == '[') {
        const char *close = memchr(a.base, ']', a.len);
        if (close) {
            h.base = a.base + 1;
            h.len = (size_t)(close - h.base);
            return h;
        }
        /* Unterminated literal: keep it whole; it will match nothing configured. */
        h.len = a.len;
        return h;
    }
    const char *colon = memchr(a.base, ':', a.len);
    h.len = colon ? (size_t)(colon - a.base) : a.len;
    if (h.len > 0 && h.base[h.len - 1] == '.')
        h.len--;
    return h;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* True when the path part of |p| (before '?' or '#') has no "." or ".." segment once
   percent-decoded, with '/' and '\' both taken as separators (backends differ on
   both), no invalid escape and no encoded NUL. Such paths are the only ones a prefix
   can safely route: see the header. */
static bool path_is_clean(struct tp_str p)
{
    size_t seg = 0;
    bool dots = true;
    for (size_t i = 0; i <= p.len; i++) {
        int c;
        if (i == p.len || p.base[i] == '?' || p.base[i] == '#') {
            c = -1;
        } else if (p.base[i] == '%') {
            if (i + 2 >= p.len)
                return false;
            int hi = hexval((unsigned char)p.base[i + 1]);
            int lo = hexval((unsigned char)p.base[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi << 4 | lo;
            if (c == 0)
                return false;
            i += 2;
        } else {
            c = (unsigned char)p.base[i];
        }
        if (c == -1 || c == '/' || c == '\\') {
            if (dots && (seg == 1 || seg == 2))
                return false;
            if (c == -1)
                return true;
            seg = 0;
            dots = true;
            continue;
        }
        seg++;
        if (c != '.')
            dots = false;
    }
    return true;
}

static bool host_matches(const struct rule *ru, struct tp_str h)
{
    if (ru->any_host)
        return true;
    if (ru->wildcard)
        return h.len > ru->host_len &&
               caseeq(h.base + (h.len - ru->host_len), ru->host, ru->host_len);
    return h.len == ru->host_len && caseeq(h.base, ru->host, h.len);
}

static bool path_matches(const struct rule *ru, struct tp_str p)
{
    if (p.len < ru->path_len || memcmp(p.base, ru->path, ru->path_len) != 0)
        return false;
    if (ru->dir_prefix || p.len == ru->path_len)
        return true;
    return p.base[ru->path_len] == '/' || p.base[ru->path_len] == '?';
}

int fr_router_match(const struct fr_router *r, struct tp_str authority,
                    struct tp_str path)
{
    if (!r || r->n == 0 || path.len == 0 || path.base[0] != '/' || !path_is_clean(path))
        return -1;
    struct tp_str host = authority_host(authority);
    for (size_t i = 0; i < r->n; i++) {
        const struct rule *ru = &r->rules[i];
        if (host_matches(ru, host) && path_matches(ru, path))
            return ru->target;
    }
    return -1;
}
