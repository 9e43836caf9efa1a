#include "gw_gate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "gw_runtime.h"
#include "gw_worker.h"
#include "tp_rand.h"

#define DIGEST_LEN 32
#define HEADER_MAX 256

/* Lives in sodium_malloc memory: the digests stand for the secrets and are treated as
   secrets themselves. */
struct gw_gate {
    uint8_t key[crypto_generichash_KEYBYTES];
    uint8_t digest[GW_GATE_MAX_SECRETS][DIGEST_LEN];
    /* 1 for a slot holding an accepted value, 0 for padding: every slot is compared. */
    uint8_t used[GW_GATE_MAX_SECRETS];
    char header[HEADER_MAX + 1];
    size_t header_len;
};

/* Returns 0, or -1 (never, with these lengths; then |out| matches nothing). */
static int digest(const struct gw_gate *g, const void *v, size_t len,
                  uint8_t out[DIGEST_LEN])
{
    /* Keyed, so the digests say nothing about the secrets to anyone who reads memory
       without the key, and a candidate cannot be precomputed. */
    if (crypto_generichash(out, DIGEST_LEN, v, len, g->key, sizeof(g->key)) != 0) {
        memset(out, 0, DIGEST_LEN);
        return -1;
    }
    return 0;
}

int gw_gate_new(const struct conf_gate *cg, struct gw_gate **out)
{
    if (!cg->header) {
        *out = NULL;
        return GW_GATE_OK;
    }
    size_t hlen = strlen(cg->header);
    if (hlen == 0 || hlen > HEADER_MAX || cg->nsecrets == 0 ||
        cg->nsecrets > GW_GATE_MAX_SECRETS)
        return GW_GATE_ERR_INVALID;
    for (size_t i = 0; i < cg->nsecrets; i++)
        if (!cg->secrets[i] || cg->secrets[i][0] == '\0')
            return GW_GATE_ERR_INVALID;
    if (sodium_init() < 0)
        return GW_GATE_ERR_CRYPTO;
    struct gw_gate *g = sodium_malloc(sizeof(*g));
    if (!g)
        return GW_GATE_ERR_NOMEM;
    memset(g, 0, sizeof(*g));
    if (tp_rand_bytes(g->key, sizeof(g->key)) != 0) {
        gw_gate_free(g);
        return GW_GATE_ERR_CRYPTO;
    }
    for (size_t i = 0; i < GW_GATE_MAX_SECRETS; i++) {
        if (i < cg->nsecrets) {
            if (digest(g, cg->secrets[i], strlen(cg->secrets[i]), g->digest[i]) != 0) {
                gw_gate_free(g);
                return GW_GATE_ERR_CRYPTO;
            }
            g->used[i] = 1;
        } else {
            /* Padding slots hold random bytes, never a digest of anything. */
            if (tp_rand_bytes(g->digest[i], DIGEST_LEN) != 0) {
                gw_gate_free(g);
                return GW_GATE_ERR_CRYPTO;
            }
        }
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = cg->header[i];
        g->header[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    g->header_len = hlen;
    if (sodium_mprotect_readonly(g) == -1) {
        gw_gate_free(g);
        return GW_GATE_ERR_NOMEM;
    }
    *out = g;
    return GW_GATE_OK;
}

void gw_gate_free(struct gw_gate *g)
{
    /* sodium_free wipes the memory before releasing it. */
    if (g)
        sodium_free(g);
}

static bool is_gate_field(const struct gw_gate *g, struct tp_str name)
{
    return name.len == g->header_len && strncasecmp(name.base, g->header, name.len) == 0;
}

/* 1 if the digest |d| equals any accepted value's, 0 otherwise; the same work for any
   |d|: every slot is compared in constant time and the results are combined without a
   branch. */
static unsigned match_any(const struct gw_gate *g, const uint8_t d[DIGEST_LEN])
{
    unsigned ok = 0;
    for (size_t i = 0; i < GW_GATE_MAX_SECRETS; i++) {
        /* sodium_memcmp returns 0 (equal) or -1: 1 + it is 1 or 0. */
        unsigned eq = (unsigned)(1 + sodium_memcmp(d, g->digest[i], DIGEST_LEN));
        ok |= eq & g->used[i];
    }
    return ok;
}

bool gw_gate_check(const struct gw_gate *g, const struct tp_header *hs, size_t n)
{
    if (!g)
        return true;
    uint8_t d[DIGEST_LEN];
    unsigned ok = 0;
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (!is_gate_field(g, hs[i].name))
            continue;
        seen = true;
        unsigned hashed = digest(g, hs[i].value.base, hs[i].value.len, d) == 0;
        ok |= match_any(g, d) & hashed;
    }
    if (!seen) {
        /* No header: the same digest and comparisons, so the answer to a request
           without it costs what a wrong value costs. The result goes nowhere but a
           volatile sink, so the compiler keeps the work. */
        volatile unsigned sink = (unsigned)digest(g, "", 0, d);
        sink = match_any(g, d);
        (void)sink;
    }
    sodium_memzero(d, sizeof(d));
    return ok != 0;
}

size_t gw_gate_strip(const struct gw_gate *g, struct tp_header *hs, size_t n)
{
    if (!g)
        return n;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_gate_field(g, hs[i].name))
            hs[m++] = hs[i];
    return m;
}

bool gw_gate_allows(struct gw_worker *w, const struct tp_req *req)
{
    return gw_gate_check(w->rt->gate, req->headers, req->nheaders);
}

bool gw_gate_local_path(const struct gw_runtime *rt, struct tp_str path,
                        struct tp_str *local)
{
    *local = path;
    const char *mount = rt->snap->mount;
    if (!mount)
        return true;
    size_t m = strlen(mount);
    if (path.len <= m || memcmp(path.base, mount, m) != 0 || path.base[m] != '/')
        return false;
    local->base = path.base + m;
    local->len = path.len - m;
    return true;
}

/* ------------------------------------------------------ open deployments --- */

#define OHTTP_KEY_TYPE "https://iana.org/assignments/http-problem-types#ohttp-key"

int gw_gate_problem(struct tp_req *req, enum gw_refusal why, const char *allow)
{
    /* With about:blank the title is the status's phrase (RFC 9457 section 4.2.1), as
       RFC 9110 spells it. */
    int status = 400;
    const char *type = "about:blank";
    const char *title = "Bad Request";
    switch (why) {
    case GW_REFUSE_GATE:
        status = 403;
        title = "Forbidden";
        break;
    case GW_REFUSE_METHOD:
        status = 405;
        title = "Method Not Allowed";
        break;
    case GW_REFUSE_EXPECT:
        status = 417;
        title = "Expectation Failed";
        break;
    case GW_REFUSE_TYPE:
        status = 415;
        title = "Unsupported Media Type";
        break;
    case GW_REFUSE_LENGTH:
        status = 411;
        title = "Length Required";
        break;
    case GW_REFUSE_TOO_LARGE:
        status = 413;
        title = "Content Too Large";
        break;
    case GW_REFUSE_KEY:
        /* RFC 9458 section 6.4: 422 for a key identifier the gateway does not know;
           section 5.3 names the problem type. */
        status = 422;
        type = OHTTP_KEY_TYPE;
        title = "key identifier unknown";
        break;
    case GW_REFUSE_DECRYPT:
        /* Section 6.4 again: a known key that does not open the request. */
        status = 422;
        type = OHTTP_KEY_TYPE;
        title = "encapsulated request could not be decrypted";
        break;
    case GW_REFUSE_MALFORMED:
    case GW_REFUSE_OTHER:
        break;
    }
    char body[256];
    int len =
        snprintf(body, sizeof(body), "{\"type\":\"%s\",\"title\":\"%s\",\"status\":%d}",
                 type, title, status);
    if (len < 0 || (size_t)len >= sizeof(body)) {
        tp_req_reset(req);
        return 0;
    }
    struct tp_header hs[3] = {
        {TP_STR_LIT("content-type"), TP_STR_LIT("application/problem+json")},
        {TP_STR_LIT("cache-control"), TP_STR_LIT("no-store")},
    };
    size_t n = 2;
    if (why == GW_REFUSE_METHOD) {
        const char *a = allow ? allow : "POST";
        hs[n++] = (struct tp_header){TP_STR_LIT("allow"), {a, strlen(a)}};
    }
    bool head = tp_str_eq(req->method, "HEAD");
    if (tp_req_respond(req, status, hs, n, len, head) != 0) {
        tp_req_reset(req);
        return 0;
    }
    if (!head) {
        struct evbuffer *b = evbuffer_new();
        if (!b || evbuffer_add(b, body, (size_t)len) != 0) {
            if (b)
                evbuffer_free(b);
            tp_req_reset(req);
            return 0;
        }
        tp_req_write(req, b);
        evbuffer_free(b);
        tp_req_end(req);
    }
    return status;
}
