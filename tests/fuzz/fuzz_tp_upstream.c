/* Feeds bytes to the upstream client's response parser as a backend would send them,
   through the same sans-I/O code the connections drive (tp_upstream_internal.h).

   Input: byte 0 chooses the set-up (bit 0: the request was HEAD; bit 1: a 256-byte
   header cap; bit 2: a 64-byte body cap; bit 3: parse a second response on the same
   connection), byte 1 the split size (0: everything at once), the rest is the wire.

   Invariants: errors are only the documented ones and consume nothing; without an error
   every byte is consumed until the response completes; body bytes never exceed the
   caps; a complete response has a final status and exactly its declared length (none
   for HEAD, 204, 304); header names are lowercase tokens.

   Split: the first response parsed in pieces of the chosen size gives exactly what one
   feed gives (outcome, status, fields, body, keep-alive, bytes taken).

   Oracle: libhttp-parser (Debian's, which this parser replaced; here only as an
   independent reference) reads the same bytes. Whenever our parser accepts a head, it
   accepts it too with the same status and fields; whenever ours completes a response,
   it completes it with the same body, declared length, keep-alive and end. Ours may
   refuse what it accepts (bare LF, obs-fold, lax chunk framing), never the reverse.
   The intended differences: in HTTP/1.0 "close" wins over "keep-alive", and any word of
   a Connection list counts (plain_connection limits the keep-alive comparison). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "tp_err.h"
#include "tp_upstream_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_head(const struct tp_upstream_resp *r)
{
    check(r->status >= 200 && r->status <= 999);
    check(r->nfields <= TP_UPSTREAM_MAX_FIELDS);
    check(r->hsize <= r->max_header);
    for (size_t i = 0; i < r->nfields; i++) {
        struct tp_str n = r->view[i].name;
        check(n.len > 0);
        for (size_t k = 0; k < n.len; k++)
            check(!(n.base[k] >= 'A' && n.base[k] <= 'Z') && n.base[k] != ':' &&
                  n.base[k] != ' ' && n.base[k] != '\r' && n.base[k] != '\n');
        struct tp_str v = r->view[i].value;
        for (size_t k = 0; k < v.len; k++)
            check(v.base[k] != '\r' && v.base[k] != '\n' && v.base[k] != '\0');
    }
}

static bool allowed(int rv)
{
    return rv == TP_ERR_PROTO || rv == TP_ERR_TOO_LARGE || rv == TP_ERR_NOMEM;
}

/* One response's outcome, fields as "name\0value\0" pairs. */
struct result {
    int rv; /* 0 complete, 1 incomplete, or TP_ERR_* */
    bool head_done;
    int status;
    int64_t content_length;
    bool keep_alive;
    size_t used;
    uint8_t *fields, *body;
    size_t flen, blen;
};

static void append(uint8_t **buf, size_t *len, const void *p, size_t n)
{
    uint8_t *nb = realloc(*buf, *len + n + 1);
    check(nb != NULL);
    memcpy(nb + *len, p, n);
    *buf = nb;
    *len += n;
}

static void result_clear(struct result *res)
{
    free(res->fields);
    free(res->body);
}

/* The first response of |wire|, |step| bytes at a time, then EOF if still going. */
static void parse_first(const char *wire, size_t size, size_t step, bool head,
                        size_t max_header, int64_t max_body, struct result *res)
{
    memset(res, 0, sizeof(*res));
    struct tp_upstream_resp r;
    if (tp_upstream_resp_init(&r, max_header, max_body, head) != 0) {
        res->rv = TP_ERR_NOMEM;
        return;
    }
    int rv = 0;
    size_t off = 0;
    while (off < size && !r.done) {
        size_t n = size - off < step ? size - off : step, used = 0;
        rv = tp_upstream_resp_feed(&r, wire + off, n, &used);
        if (rv != 0)
            break;
        off += used;
        size_t bl = evbuffer_get_length(r.body);
        if (bl > 0) {
            append(&res->body, &res->blen, evbuffer_pullup(r.body, -1), bl);
            evbuffer_drain(r.body, bl);
        }
    }
    if (rv == 0 && !r.done)
        rv = tp_upstream_resp_eof(&r);
    res->rv = rv;
    res->used = off;
    res->head_done = r.head_done;
    if (r.head_done) {
        res->status = r.status;
        res->content_length = r.content_length;
        for (size_t i = 0; i < r.nfields; i++) {
            append(&res->fields, &res->flen, r.view[i].name.base, r.view[i].name.len);
            append(&res->fields, &res->flen, "", 1);
            append(&res->fields, &res->flen, r.view[i].value.base, r.view[i].value.len);
            append(&res->fields, &res->flen, "", 1);
        }
    }
    if (rv == 0)
        res->keep_alive = r.keep_alive;
    tp_upstream_resp_clear(&r);
}

static bool same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

struct oracle {
    http_parser p;
    bool head, interim, headers, done, in_value;
    int status;
    int64_t content_length;
    bool keep_alive;
    uint8_t *fields, *body;
    size_t flen, blen;
    uint8_t *value; /* this field's value so far, trimmed when the field ends */
    size_t vlen;
};

static struct oracle *oracle_of(http_parser *p)
{
    return p->data;
}

static void oracle_end_value(struct oracle *o)
{
    if (!o->in_value)
        return;
    size_t n = o->vlen;
    while (n > 0 && (o->value[n - 1] == ' ' || o->value[n - 1] == '\t'))
        n--;
    append(&o->fields, &o->flen, o->value, n);
    append(&o->fields, &o->flen, "", 1);
    o->vlen = 0;
    o->in_value = false;
}

static int o_field(http_parser *p, const char *at, size_t len)
{
    struct oracle *o = oracle_of(p);
    if (o->headers)
        return 0; /* trailers */
    if (o->in_value)
        oracle_end_value(o);
    for (size_t i = 0; i < len; i++) {
        char c = at[i] >= 'A' && at[i] <= 'Z' ? (char)(at[i] - 'A' + 'a') : at[i];
        append(&o->fields, &o->flen, &c, 1);
    }
    return 0;
}

static int o_value(http_parser *p, const char *at, size_t len)
{
    struct oracle *o = oracle_of(p);
    if (o->headers)
        return 0;
    if (!o->in_value) {
        append(&o->fields, &o->flen, "", 1);
        o->in_value = true;
    }
    append(&o->value, &o->vlen, at, len);
    return 0;
}

static int o_headers_complete(http_parser *p)
{
    struct oracle *o = oracle_of(p);
    oracle_end_value(o);
    int st = (int)p->status_code;
    if (st < 200) {
        o->interim = true;
        o->flen = 0;
        return 1;
    }
    o->headers = true;
    o->status = st;
    if (st == 204)
        o->content_length = 0;
    else if ((p->flags & F_CHUNKED) || p->content_length == UINT64_MAX)
        o->content_length = -1;
    else
        o->content_length = (int64_t)p->content_length;
    return o->head || st == 204 || st == 304 ? 1 : 0;
}

static int o_body(http_parser *p, const char *at, size_t len)
{
    struct oracle *o = oracle_of(p);
    append(&o->body, &o->blen, at, len);
    return 0;
}

static int o_message_complete(http_parser *p)
{
    struct oracle *o = oracle_of(p);
    if (o->interim) {
        o->interim = false;
        return 0;
    }
    o->done = true;
    o->keep_alive = http_should_keep_alive(p) && !(p->flags & F_CONNECTION_CLOSE);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings oracle_settings = {
    .on_header_field = o_field,
    .on_header_value = o_value,
    .on_headers_complete = o_headers_complete,
    .on_body = o_body,
    .on_message_complete = o_message_complete,
};

/* libhttp-parser takes any field whose name starts with "transfer-encoding" for one
   (it notes the coding once the prefix matched), then refuses it beside Content-Length
   or reads the body until close: a quirk of the oracle, not a rule to copy. Such a
   name anywhere in |wire| (an interim head, trailers) skips the comparison. */
static bool oracle_quirk(const char *wire, size_t size)
{
    static const char te[] = "\ntransfer-encoding";
    const size_t n = sizeof(te) - 1;
    for (size_t i = 0; i + n < size; i++) {
        size_t k = 0;
        for (; k < n; k++) {
            char c = wire[i + k];
            if ((c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c) != te[k])
                break;
        }
        if (k == n && wire[i + n] != ':')
            return true;
    }
    return false;
}

/* Returns true if |s| (|n| bytes) starts with the lowercase |lit| in any case. */
static bool starts_caseless(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && strncasecmp(s, lit, l) == 0;
}

/* True when every line of |wire| that starts like a Connection or Proxy-Connection
   field (in the head, an interim head or the trailers) holds exactly one "close" or
   "keep-alive" in any case, blanks before it and SP after it, or there is none. Only
   then is keep-alive compared with the oracle: our parser takes any word of the list
   ("x close", ",\tclose", "close\t"), while libhttp-parser's matcher reads an option
   only from an element's first byte, followed by SP alone, and skips no HTAB after a
   comma. Those differences are deliberate and pinned by the unit tests. */
static bool plain_connection(const char *wire, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (i > 0 && wire[i - 1] != '\n')
            continue;
        const char *p = wire + i;
        size_t n = size - i, k;
        if (starts_caseless(p, n, "connection:"))
            k = 11;
        else if (starts_caseless(p, n, "proxy-connection:"))
            k = 17;
        else
            continue;
        while (k < n && (p[k] == ' ' || p[k] == '\t'))
            k++;
        if (starts_caseless(p + k, n - k, "close"))
            k += 5;
        else if (starts_caseless(p + k, n - k, "keep-alive"))
            k += 10;
        else
            return false;
        while (k < n && p[k] == ' ')
            k++;
        if (k < n && p[k] != '\r')
            return false;
    }
    return true;
}

/* Checks our whole-feed result |w| against libhttp-parser on the same bytes. */
static void against_oracle(const char *wire, size_t size, bool head,
                           const struct result *w)
{
    if (!w->head_done || oracle_quirk(wire, size))
        return;
    struct oracle o;
    memset(&o, 0, sizeof(o));
    o.head = head;
    http_parser_init(&o.p, HTTP_RESPONSE);
    o.p.data = &o;
    size_t n = http_parser_execute(&o.p, &oracle_settings, wire, size);
    enum http_errno e = HTTP_PARSER_ERRNO(&o.p);
    if (e == HPE_OK && !o.done && w->used == size)
        http_parser_execute(&o.p, &oracle_settings, NULL, 0);
    e = HTTP_PARSER_ERRNO(&o.p);
    /* Ours took the head: so does the oracle, with the same status and fields. */
    check(o.headers && o.status == w->status);
    check(same(o.fields, o.flen, w->fields, w->flen));
    if (w->rv == 0) {
        check(o.done && (e == HPE_OK || e == HPE_PAUSED) && !o.p.upgrade);
        check(o.content_length == w->content_length);
        check(o.keep_alive == w->keep_alive || !plain_connection(wire, size));
        check(same(o.body, o.blen, w->body, w->blen));
        check(w->used == size || n == w->used);
    }
    free(o.fields);
    free(o.body);
    free(o.value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t step = data[1] ? data[1] : SIZE_MAX;
    const char *wire = (const char *)data + 2;
    size = size - 2;
    bool head = mode & 1;
    size_t max_header = (mode & 2) ? 256 : 65536;
    int64_t max_body = (mode & 4) ? 64 : -1;

    struct result whole, split;
    parse_first(wire, size, SIZE_MAX, head, max_header, max_body, &whole);
    parse_first(wire, size, step, head, max_header, max_body, &split);
    /* After an error, what was taken before the failing feed depends on the split. */
    check(whole.rv == split.rv && whole.head_done == split.head_done &&
          whole.status == split.status && whole.content_length == split.content_length &&
          whole.keep_alive == split.keep_alive &&
          same(whole.fields, whole.flen, split.fields, split.flen) &&
          (whole.rv < 0 || (whole.used == split.used &&
                            same(whole.body, whole.blen, split.body, split.blen))));
    against_oracle(wire, size, head, &whole);
    result_clear(&whole);
    result_clear(&split);

    struct tp_upstream_resp r;
    if (tp_upstream_resp_init(&r, max_header, max_body, head) != 0)
        return 0;
    size_t off = 0;
    for (unsigned round = 0; round < 2; round++) {
        int64_t total = 0;
        int rv = 0;
        while (off < size && !r.done) {
            size_t n = size - off < step ? size - off : step;
            size_t used = 1;
            rv = tp_upstream_resp_feed(&r, wire + off, n, &used);
            if (rv != 0) {
                check(allowed(rv) && used == 0);
                /* A failed parser stays failed. */
                check(tp_upstream_resp_feed(&r, wire, size, &used) == rv && used == 0);
                break;
            }
            check(used <= n);
            check(r.done || used == n);
            off += used;
            size_t bl = evbuffer_get_length(r.body);
            check(total + (int64_t)bl == r.body_len);
            total += (int64_t)bl;
            evbuffer_drain(r.body, bl);
            check(max_body < 0 || r.body_len <= max_body);
            if (r.head_done)
                check_head(&r);
        }
        if (rv == 0 && !r.done) {
            rv = tp_upstream_resp_eof(&r);
            check(rv == 0 ? r.done : (rv == TP_ERR_CLOSED || allowed(rv)));
            size_t bl = evbuffer_get_length(r.body);
            check(bl == 0);
        }
        if (rv != 0)
            break;
        check(r.done && r.head_done);
        check_head(&r);
        if (r.no_body)
            check(total == 0);
        else if (r.content_length >= 0)
            check(total == r.content_length);
        size_t used = 1;
        check(tp_upstream_resp_feed(&r, "x", 1, &used) == TP_ERR_STATE && used == 0);
        if (!(mode & 8) || !r.keep_alive)
            break;
        tp_upstream_resp_reset(&r, head);
    }
    tp_upstream_resp_clear(&r);
    return 0;
}
