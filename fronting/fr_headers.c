#include "fr_headers.h"

#include <stdlib.h>
#include <string.h>

#include "tp_err.h"

#define NAME_MAX_LEN 256

/* A lowercase literal with its length, so that matching never calls strlen. */
struct lit {
    const char *s;
    size_t n;
};
#define LIT(x)                                                                           \
    {                                                                                    \
        x, sizeof(x) - 1                                                                 \
    }

struct fr_allowlist {
    size_t n;
    struct tp_str *names; /* sorted by (length, bytes) for bsearch */
    char *pool;
    bool allow_cookie;
};

/* Exact names that never cross, besides hop-by-hop fields. Lowercase. */
static const struct lit dropped_exact[] = {
    LIT("host"),
    LIT("expect"),
    LIT("proxy-authorization"),
    LIT("proxy-authenticate"),
    LIT("forwarded"),
    LIT("x-forwarded"),
    LIT("x-real-ip"),
    LIT("true-client-ip"),
    LIT("client-ip"),
    LIT("x-client-ip"),
    LIT("x-cluster-client-ip"),
    LIT("x-originating-ip"),
    LIT("x-remote-ip"),
    LIT("x-remote-addr"),
    LIT("x-original-forwarded-for"),
    LIT("x-envoy-external-address"),
    LIT("x-nf-client-connection-ip"),
    LIT("fly-client-ip"),
    LIT("akamai-origin-hop"),
    LIT("via"),
    LIT("cdn-loop"),
    LIT("x-cloud-trace-context"),
    LIT("traceparent"),
    LIT("tracestate"),
};

/* Prefixes: every field a front adds under these names describes the client or its
   path through the front (Cloudflare's cf-connecting-ip, cf-ipcountry, cf-ray...;
   CloudFront's viewer address and country; App Engine's user IP and city). */
static const struct lit dropped_prefix[] = {
    LIT("x-forwarded-"), LIT("cf-"),      LIT("fastly-"),   LIT("cloudfront-viewer-"),
    LIT("x-amz-cf-"),    LIT("x-azure-"), LIT("x-vercel-"), LIT("x-appengine-"),
};

/* Response fields that advertise the stack or send the client elsewhere. */
static const struct lit response_dropped[] = {
    LIT("server"),           LIT("x-powered-by"),
    LIT("x-aspnet-version"), LIT("x-aspnetmvc-version"),
    LIT("alt-svc"),          LIT("nel"),
    LIT("report-to"),        LIT("reporting-endpoints"),
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* |s| equals the lowercase literal |lit| of length |n|, ignoring case in |s|. */
static bool caseeq_n(struct tp_str s, const char *lit, size_t n)
{
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.base[i]) != lit[i])
            return false;
    return true;
}

static const struct lit hop_by_hop[] = {
    LIT("connection"),
    LIT("keep-alive"),
    LIT("proxy-connection"),
    LIT("transfer-encoding"),
    LIT("te"),
    LIT("upgrade"),
    LIT("trailer"),
    LIT("http2-settings"),
};

/* Longer than every exact name and every prefix in the lists above. */
#define LOW_MAX 32

/* A field name lowercased once (its first LOW_MAX bytes), so that each list entry
   costs a length or first-byte comparison and rarely a memcmp. */
struct low {
    char b[LOW_MAX];
    size_t len;  /* of the whole name */
    size_t have; /* bytes in b */
};

static void low_init(struct low *l, struct tp_str name)
{
    l->len = name.len;
    l->have = name.len < LOW_MAX ? name.len : LOW_MAX;
    for (size_t i = 0; i < l->have; i++)
        l->b[i] = (char)lower((unsigned char)name.base[i]);
}

static bool low_in(const struct low *l, const struct lit *list, size_t n)
{
    if (l->len > LOW_MAX || l->len == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (list[i].n == l->len && list[i].s[0] == l->b[0] &&
            memcmp(list[i].s, l->b, l->len) == 0)
            return true;
    return false;
}

static bool low_prefixed(const struct low *l, const struct lit *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].n <= l->have && list[i].s[0] == l->b[0] &&
            memcmp(list[i].s, l->b, list[i].n) == 0)
            return true;
    return false;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool low_dropped(const struct low *l)
{
    return low_in(l, hop_by_hop, COUNT(hop_by_hop)) ||
           low_in(l, dropped_exact, COUNT(dropped_exact)) ||
           low_prefixed(l, dropped_prefix, COUNT(dropped_prefix));
}

bool fr_headers_always_dropped(struct tp_str name)
{
    if (name.len == 0 || name.base[0] == ':')
        return true;
    struct low l;
    low_init(&l, name);
    return low_dropped(&l);
}

static bool is_cookie(struct tp_str name)
{
    return caseeq_n(name, "cookie", 6) || caseeq_n(name, "cookie2", 7);
}

static int name_cmp(const void *a, const void *b)
{
    const struct tp_str *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->base, y->base, x->len);
}

int fr_allowlist_new(const char *const *names, size_t n, bool allow_cookie,
                     struct fr_allowlist **out)
{
    size_t pool_len = 0;
    if (n > FR_ALLOWLIST_MAX)
        return TP_ERR_TOO_LARGE;
    if (n > 0 && !names)
        return TP_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0])
            return TP_ERR_INVALID;
        size_t l = strlen(names[i]);
        if (l > NAME_MAX_LEN)
            return TP_ERR_TOO_LARGE;
        for (size_t j = 0; j < l; j++)
            if (!tp_http_is_tchar((unsigned char)names[i][j]))
                return TP_ERR_INVALID;
        pool_len += l;
    }

    struct fr_allowlist *a = calloc(1, sizeof(*a));
    if (!a)
        return TP_ERR_NOMEM;
    a->names = calloc(n ? n : 1, sizeof(*a->names));
    a->pool = malloc(pool_len ? pool_len : 1);
    if (!a->names || !a->pool) {
        fr_allowlist_free(a);
        return TP_ERR_NOMEM;
    }
    char *p = a->pool;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        for (size_t j = 0; j < l; j++)
            p[j] = (char)lower((unsigned char)names[i][j]);
        a->names[i].base = p;
        a->names[i].len = l;
        p += l;
    }
    qsort(a->names, n, sizeof(*a->names), name_cmp);
    a->n = n;
    a->allow_cookie = allow_cookie;
    *out = a;
    return 0;
}

void fr_allowlist_free(struct fr_allowlist *a)
{
    if (!a)
        return;
    free(a->names);
    a->names = NULL;
    free(a->pool);
    a->pool = NULL;
    free(a);
}

bool fr_allowlist_allows(const struct fr_allowlist *a, struct tp_str name)
{
    if (!a || fr_headers_always_dropped(name))
        return false;
    if (is_cookie(name))
        return a->allow_cookie && tp_str_eq(name, "cookie");
    return a->n > 0 &&
           bsearch(&name, a->names, a->n, sizeof(*a->names), name_cmp) != NULL;
}

size_t fr_headers_filter_request(const struct fr_allowlist *a, const struct tp_header *in,
                                 size_t n, struct tp_header *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (fr_allowlist_allows(a, in[i].name))
            out[o++] = in[i];
    return o;
}

size_t fr_headers_filter_response(const struct tp_header *in, size_t n,
                                  struct tp_header *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        struct tp_str name = in[i].name;
        if (name.len == 0 || name.base[0] == ':')
            continue;
        struct low l;
        low_init(&l, name);
        if (low_dropped(&l) || low_in(&l, response_dropped, COUNT(response_dropped)))
            continue;
        out[o++] = in[i];
    }
    return o;
}
