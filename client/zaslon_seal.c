/* Sealing and opening, I/O-free: the request as a padded known-length Binary HTTP
   message encapsulated with Oblivious HTTP, and the answer decapsulated and copied
   into a struct zaslon_response. */
#include "zaslon_client_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_http.h"
#include "tp_ohttp.h"

struct zaslon_exchange {
    struct tp_ohttp_client *oc;
    size_t max_response;
    bool done;
};

/* Fields and sizes of decoded responses: generous for any web answer, bounded for a
   hostile gateway. */
#define RES_MAX_FIELDS 256
#define RES_MAX_SECTION 65536

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

size_t zaslon_pad_bucket(size_t len, size_t min)
{
    size_t b = 1;
    size_t want = len > min ? len : min;
    while (b < want) {
        if (b > SIZE_MAX / 2)
            return 0;
        b <<= 1;
    }
    return b;
}

int zaslon_url_split(const char *url, char *scratch, size_t cap, struct tp_str *scheme,
                     struct tp_str *authority, struct tp_str *path)
{
    size_t len = strlen(url);
    const char *sep = strstr(url, "://");
    if (!sep || sep == url || len > SIZE_MAX - 2 || cap < len + 2)
        return ZASLON_ERR_INVALID;
    size_t slen = (size_t)(sep - url);
    if (!alpha(url[0]))
        return ZASLON_ERR_INVALID;
    for (size_t i = 1; i < slen; i++) {
        char ch = url[i];
        if (!alpha(ch) && !(ch >= '0' && ch <= '9') && ch != '+' && ch != '-' &&
            ch != '.')
            return ZASLON_ERR_INVALID;
    }
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *p = a + alen;
    size_t plen = strcspn(p, "#");
    if (alen == 0 || memchr(a, '@', alen) || a[0] == ':')
        return ZASLON_ERR_INVALID;

    char *o = scratch;
    for (size_t i = 0; i < slen; i++)
        o[i] = lower(url[i]);
    *scheme = (struct tp_str){o, slen};
    o += slen;
    for (size_t i = 0; i < alen; i++)
        o[i] = lower(a[i]);
    *authority = (struct tp_str){o, alen};
    o += alen;
    /* An origin-form target always starts with "/" (RFC 9112 3.2.1). */
    size_t extra = plen == 0 || p[0] != '/' ? 1 : 0;
    if (extra)
        o[0] = '/';
    memcpy(o + extra, p, plen);
    *path = (struct tp_str){o, plen + extra};
    return 0;
}

/* Refused in a sealed request: the URL carries the authority, Binary HTTP frames the
   body, and connection-specific fields mean nothing inside a seal. */
static bool refused_field(struct tp_str name)
{
    return tp_str_eq(name, "host") || tp_str_eq(name, "content-length") ||
           tp_http_hop_by_hop(name);
}

static int map_encode_err(int rv)
{
    switch (rv) {
    case TP_ERR_TOO_LARGE:
        return ZASLON_ERR_TOO_LARGE;
    case TP_ERR_NOMEM:
        return ZASLON_ERR_NOMEM;
    default:
        return ZASLON_ERR_INVALID;
    }
}

/* Builds the padded Binary HTTP request for |r| into a malloc'd *out (*out_len bytes,
   plaintext: the caller wipes it) such that *out_len + TP_OHTTP_REQ_OVERHEAD is a
   bucket. */
static int encode_request(const struct zaslon_client *c, const struct zaslon_request *r,
                          uint8_t **out, size_t *out_len)
{
    size_t ulen = r->url ? strlen(r->url) : 0;
    size_t names_len = 0;
    bool has_date = false;
    char date[TP_HTTP_DATE_LEN + 1];
    char *scratch = NULL, *names = NULL;
    struct tp_header *h = NULL;
    uint8_t *buf = NULL;
    size_t blen = 0, nh = 0, total = 0;
    struct tp_bhttp_request br = {0};
    int rv;

    if (!r->url || (r->nheaders && !r->headers) || (r->body_len && !r->body) ||
        r->nheaders > ZASLON_MAX_HEADERS || ulen > SIZE_MAX - 2)
        return ZASLON_ERR_INVALID;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!r->headers[i].name || !r->headers[i].value)
            return ZASLON_ERR_INVALID;
        size_t n = strlen(r->headers[i].name);
        if (n > SIZE_MAX - names_len)
            return ZASLON_ERR_INVALID;
        names_len += n;
    }
    scratch = malloc(ulen + 2);
    names = malloc(names_len ? names_len : 1);
    h = calloc(r->nheaders + 1, sizeof(*h));
    if (!scratch || !names || !h) {
        rv = ZASLON_ERR_NOMEM;
        goto out;
    }

    const char *method = r->method ? r->method : r->body_len ? "POST" : "GET";
    br.method = (struct tp_str){method, strlen(method)};
    rv = zaslon_url_split(r->url, scratch, ulen + 2, &br.scheme, &br.authority, &br.path);
    if (rv != 0)
        goto out;

    char *np = names;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name;
        size_t n = strlen(name);
        for (size_t k = 0; k < n; k++)
            np[k] = lower(name[k]);
        h[nh].name = (struct tp_str){np, n};
        h[nh].value = (struct tp_str){r->headers[i].value, strlen(r->headers[i].value)};
        np += n;
        if (refused_field(h[nh].name) || !tp_bhttp_field_name_ok(h[nh].name) ||
            !tp_bhttp_field_value_ok(h[nh].value)) {
            rv = ZASLON_ERR_INVALID;
            goto out;
        }
        if (tp_str_eq(h[nh].name, "date"))
            has_date = true;
        nh++;
    }
    if (!has_date) {
        size_t dl = tp_http_date(time(NULL), date);
        h[nh].name = TP_STR_LIT("date");
        h[nh].value = (struct tp_str){date, dl};
        nh++;
    }
    br.headers = h;
    br.n_headers = nh;
    br.content = r->body;
    br.content_len = r->body_len;

    struct tp_bhttp_encode_opts eo = {TP_BHTTP_KNOWN_LENGTH, false, 0};
    rv = tp_bhttp_request_encoded_len(&br, &eo, &blen);
    if (rv != 0) {
        rv = map_encode_err(rv);
        goto out;
    }
    if (blen > ZASLON_MAX_SEALED - TP_OHTTP_REQ_OVERHEAD) {
        rv = ZASLON_ERR_TOO_LARGE;
        goto out;
    }
    size_t bucket = zaslon_pad_bucket(blen + TP_OHTTP_REQ_OVERHEAD, c->pad_min);
    if (bucket == 0 || bucket > ZASLON_MAX_SEALED) {
        rv = ZASLON_ERR_TOO_LARGE;
        goto out;
    }
    eo.padding = bucket - TP_OHTTP_REQ_OVERHEAD - blen;
    total = blen + eo.padding;
    buf = malloc(total);
    if (!buf) {
        rv = ZASLON_ERR_NOMEM;
        goto out;
    }
    rv = tp_bhttp_request_encode(&br, &eo, buf, total, &blen);
    if (rv != 0) {
        rv = map_encode_err(rv);
        goto out;
    }
    *out = buf;
    *out_len = blen;
    buf = NULL;
out:
    if (buf) {
        sodium_memzero(buf, total);
        free(buf);
    }
    /* The URL and the field names are request content too. */
    if (scratch)
        sodium_memzero(scratch, ulen + 2);
    free(scratch);
    if (names)
        sodium_memzero(names, names_len ? names_len : 1);
    free(names);
    free(h);
    return rv;
}

int zaslon_seal(struct zaslon_client *c, const struct zaslon_request *r, uint8_t **sealed,
                size_t *len, struct zaslon_exchange **ex)
{
    uint8_t *bhttp = NULL, *out = NULL;
    size_t blen = 0, olen = 0;
    struct zaslon_exchange *e = NULL;
    int rv;

    if (!c || !r || !sealed || !len || !ex)
        return ZASLON_ERR_INVALID;
    if (!c->have_key)
        return ZASLON_ERR_NO_KEYS;
    rv = encode_request(c, r, &bhttp, &blen);
    if (rv != 0)
        return rv;
    e = calloc(1, sizeof(*e));
    out = malloc(blen + TP_OHTTP_REQ_OVERHEAD);
    if (!e || !out) {
        rv = ZASLON_ERR_NOMEM;
        goto out;
    }
    e->max_response = c->max_response;
    rv = tp_ohttp_client_new(&e->oc);
    if (rv != 0) {
        rv = rv == TP_ERR_NOMEM ? ZASLON_ERR_NOMEM : ZASLON_ERR_CRYPTO;
        goto out;
    }
    rv = tp_ohttp_client_encap(e->oc, &c->key, c->suite, bhttp, blen, out,
                               blen + TP_OHTTP_REQ_OVERHEAD, &olen);
    if (rv != 0) {
        rv = rv == TP_ERR_UNSUPPORTED ? ZASLON_ERR_KEYS
             : rv == TP_ERR_NOMEM     ? ZASLON_ERR_NOMEM
                                      : ZASLON_ERR_CRYPTO;
        goto out;
    }
    *sealed = out;
    *len = olen;
    *ex = e;
    out = NULL;
    e = NULL;
out:
    if (bhttp) {
        sodium_memzero(bhttp, blen);
        free(bhttp);
    }
    free(out);
    zaslon_exchange_free(e);
    return rv;
}

void zaslon_exchange_free(struct zaslon_exchange *ex)
{
    if (!ex)
        return;
    tp_ohttp_client_free(ex->oc);
    free(ex);
}

int zaslon_response_from_bhttp(const uint8_t *in, size_t len, size_t max_content,
                               struct zaslon_response *out)
{
    struct tp_bhttp_limits lim = {RES_MAX_FIELDS, RES_MAX_SECTION, max_content, 4};
    struct tp_bhttp_response br;
    int rv = tp_bhttp_response_decode(&br, in, len, &lim);
    if (rv != 0)
        return rv == TP_ERR_NOMEM ? ZASLON_ERR_NOMEM : ZASLON_ERR_PROTO;

    /* One block: the header array, then "name\0value\0" strings, then the body and a
       NUL. The limits above keep every sum far from overflow. */
    size_t nf = br.n_headers + br.n_trailers;
    size_t size = nf * sizeof(struct zaslon_header);
    for (size_t i = 0; i < nf; i++) {
        const struct tp_header *f =
            i < br.n_headers ? &br.headers[i] : &br.trailers[i - br.n_headers];
        size += f->name.len + f->value.len + 2;
    }
    size += br.content_len + 1;
    uint8_t *mem = malloc(size);
    if (!mem) {
        tp_bhttp_response_clear(&br);
        return ZASLON_ERR_NOMEM;
    }
    struct zaslon_header *arr = (struct zaslon_header *)(void *)mem;
    char *s = (char *)mem + nf * sizeof(struct zaslon_header);
    for (size_t i = 0; i < nf; i++) {
        const struct tp_header *f =
            i < br.n_headers ? &br.headers[i] : &br.trailers[i - br.n_headers];
        arr[i].name = s;
        memcpy(s, f->name.base, f->name.len);
        s[f->name.len] = '\0';
        s += f->name.len + 1;
        arr[i].value = s;
        if (f->value.len)
            memcpy(s, f->value.base, f->value.len);
        s[f->value.len] = '\0';
        s += f->value.len + 1;
    }
    uint8_t *body = (uint8_t *)s;
    if (br.content_len)
        memcpy(body, br.content, br.content_len);
    body[br.content_len] = 0;

    *out = (struct zaslon_response){
        .status = br.status,
        .headers = arr,
        .nheaders = br.n_headers,
        .trailers = arr + br.n_headers,
        .ntrailers = br.n_trailers,
        .body = body,
        .body_len = br.content_len,
        .mem_ = mem,
        .mem_len_ = size,
    };
    tp_bhttp_response_clear(&br);
    return 0;
}

int zaslon_open(struct zaslon_exchange *ex, const uint8_t *res, size_t len,
                struct zaslon_response *out)
{
    if (!ex || (!res && len) || !out)
        return ZASLON_ERR_INVALID;
    if (ex->done)
        return ZASLON_ERR_STATE;
    if (len > ex->max_response)
        return ZASLON_ERR_TOO_LARGE;
    if (len < TP_HPKE_TAG_LEN)
        return ZASLON_ERR_PROTO;
    uint8_t *plain = malloc(len);
    size_t plen = 0;
    if (!plain)
        return ZASLON_ERR_NOMEM;
    int rv = tp_ohttp_client_decap_response(ex->oc, res, len, plain, len, &plen);
    switch (rv) {
    case 0:
        ex->done = true;
        rv = zaslon_response_from_bhttp(plain, plen, ex->max_response, out);
        break;
    case TP_ERR_CRYPTO:
        ex->done = true;
        rv = ZASLON_ERR_CRYPTO;
        break;
    case TP_ERR_STATE:
        rv = ZASLON_ERR_STATE;
        break;
    case TP_ERR_NOMEM:
        rv = ZASLON_ERR_NOMEM;
        break;
    default:
        rv = ZASLON_ERR_PROTO;
        break;
    }
    sodium_memzero(plain, len);
    free(plain);
    return rv;
}

void zaslon_response_clear(struct zaslon_response *r)
{
    if (!r)
        return;
    if (r->mem_) {
        sodium_memzero(r->mem_, r->mem_len_);
        free(r->mem_);
    }
    memset(r, 0, sizeof(*r));
}
