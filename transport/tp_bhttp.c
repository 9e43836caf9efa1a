/* Binary HTTP (RFC 9292). The decoder runs twice over the same bytes: a scan that
   validates everything and counts fields and content without allocating, then, after
   one allocation sized from the counts, a fill that records the same fields. Both
   passes are the same code, so they cannot disagree about what the message is. */
#include "tp_bhttp.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tp_bhttp_internal.h"
#include "tp_err.h"

#define VARINT_MAX (((uint64_t)1 << 62) - 1)

#ifdef ZASLON_TESTING
int tp_bhttp_test_fail_alloc;
#endif

static void *block_alloc(size_t n)
{
#ifdef ZASLON_TESTING
    if (tp_bhttp_test_fail_alloc > 0) {
        tp_bhttp_test_fail_alloc--;
        return NULL;
    }
#endif
    return malloc(n);
}

/* ---- character classes ------------------------------------------------------------ */

/* RFC 9110 tchar, minus uppercase (field names are lowercase everywhere in zaslon,
   and RFC 9292 section 3.6 says they must be for HTTP/2 and HTTP/3 interop): a tchar
   whose lowercase form is itself. */
static bool name_char(uint8_t c)
{
    return c != 0 && tp_http_tchar_lower[c] == c;
}

bool tp_bhttp_field_name_ok(struct tp_str name)
{
    if (name.len == 0 || name.base[0] == ':')
        return false;
    for (size_t i = 0; i < name.len; i++)
        if (!name_char((uint8_t)name.base[i]))
            return false;
    return true;
}

bool tp_bhttp_field_value_ok(struct tp_str value)
{
    if (value.len &&
        (value.base[0] == ' ' || value.base[0] == '\t' ||
         value.base[value.len - 1] == ' ' || value.base[value.len - 1] == '\t'))
        return false;
    for (size_t i = 0; i < value.len; i++) {
        uint8_t c = (uint8_t)value.base[i];
        if (c == '\0' || c == '\r' || c == '\n')
            return false;
    }
    return true;
}

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), or empty (as for CONNECT). */
static bool scheme_ok(struct tp_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = (uint8_t)s.base[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alpha &&
            (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))
            return false;
    }
    return true;
}

/* No controls, space or DEL: these would split or corrupt a request replayed over
   HTTP/1.1. */
static bool target_ok(struct tp_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = (uint8_t)s.base[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* ---- decoding --------------------------------------------------------------------- */

struct dec {
    const uint8_t *p;
    const uint8_t *end;
    const struct tp_bhttp_limits *lim;
    bool fill;
    size_t n_fields; /* field lines so far, all sections */
    size_t n_info;
    size_t chunks;      /* content pieces seen */
    size_t content_len; /* content bytes so far */
    /* fill pass only */
    size_t scan_chunks; /* what the scan counted: 1 means borrow, more means copy */
    struct tp_header *fields;
    struct tp_bhttp_info *info;
    uint8_t *content_buf;
    const uint8_t *content;
};

static size_t left(const struct dec *d)
{
    return (size_t)(d->end - d->p);
}

/* QUIC variable-length integer (RFC 9000 section 16). */
static int rd_varint(struct dec *d, uint64_t *v)
{
    if (d->p == d->end)
        return TP_ERR_TRUNCATED;
    size_t n = (size_t)1 << (d->p[0] >> 6);
    if (left(d) < n)
        return TP_ERR_TRUNCATED;
    uint64_t x = d->p[0] & 0x3f;
    for (size_t i = 1; i < n; i++)
        x = x << 8 | d->p[i];
    d->p += n;
    *v = x;
    return 0;
}

/* A length-prefixed string of at most |max| bytes. The length is compared with the
   limit before it is compared with what is left, so an oversized length reads as
   TP_ERR_TOO_LARGE whatever follows. */
static int rd_string(struct dec *d, size_t max, struct tp_str *out)
{
    uint64_t n;
    int rv = rd_varint(d, &n);
    if (rv != 0)
        return rv;
    if (n > max)
        return TP_ERR_TOO_LARGE;
    if (n > left(d))
        return TP_ERR_TRUNCATED;
    out->base = (const char *)d->p;
    out->len = (size_t)n;
    d->p += n;
    return 0;
}

static int add_field(struct dec *d, struct tp_str name, struct tp_str value)
{
    if (!tp_bhttp_field_name_ok(name) || !tp_bhttp_field_value_ok(value))
        return TP_ERR_INVALID;
    if (d->n_fields >= d->lim->max_fields)
        return TP_ERR_TOO_LARGE;
    if (d->fill)
        d->fields[d->n_fields] = (struct tp_header){name, value};
    d->n_fields++;
    return 0;
}

/* One field section; its lines are fields[*first .. *first + *count). */
static int field_section(struct dec *d, bool known, size_t *first, size_t *count)
{
    int rv;
    *first = d->n_fields;
    if (known) {
        uint64_t len;
        rv = rd_varint(d, &len);
        if (rv != 0)
            return rv;
        if (len > d->lim->max_field_section)
            return TP_ERR_TOO_LARGE;
        if (len > left(d))
            return TP_ERR_TRUNCATED;
        /* Parse the section as its own buffer: a line that runs past the declared
           length is malformed, not truncated. */
        struct dec sec = *d;
        sec.end = d->p + len;
        while (sec.p < sec.end) {
            struct tp_str name, value;
            rv = rd_string(&sec, SIZE_MAX, &name);
            if (rv == 0)
                rv = rd_string(&sec, SIZE_MAX, &value);
            if (rv != 0)
                return rv == TP_ERR_TRUNCATED ? TP_ERR_INVALID : rv;
            rv = add_field(&sec, name, value);
            if (rv != 0)
                return rv;
        }
        d->p = sec.end;
        d->n_fields = sec.n_fields;
    } else {
        size_t used = 0;
        for (;;) {
            const uint8_t *line = d->p;
            struct tp_str name, value;
            uint64_t name_len;
            rv = rd_varint(d, &name_len);
            if (rv != 0)
                return rv;
            if (name_len == 0)
                break; /* the section's terminator: names are never empty */
            d->p = line;
            size_t budget = d->lim->max_field_section - used;
            rv = rd_string(d, budget, &name);
            if (rv == 0)
                rv = rd_string(d, budget, &value);
            if (rv != 0)
                return rv;
            used += (size_t)(d->p - line);
            if (used > d->lim->max_field_section)
                return TP_ERR_TOO_LARGE;
            rv = add_field(d, name, value);
            if (rv != 0)
                return rv;
        }
    }
    *count = d->n_fields - *first;
    return 0;
}

static int content_piece(struct dec *d, const uint8_t *p, size_t n)
{
    if (n > d->lim->max_content - d->content_len)
        return TP_ERR_TOO_LARGE;
    if (d->fill) {
        if (d->scan_chunks == 1)
            d->content = p;
        else
            memcpy(d->content_buf + d->content_len, p, n);
    }
    d->content_len += n;
    d->chunks++;
    return 0;
}

static int content(struct dec *d, bool known)
{
    int rv;
    if (known) {
        uint64_t len;
        rv = rd_varint(d, &len);
        if (rv != 0)
            return rv;
        if (len > d->lim->max_content)
            return TP_ERR_TOO_LARGE;
        if (len > left(d))
            return TP_ERR_TRUNCATED;
        if (len) {
            rv = content_piece(d, d->p, (size_t)len);
            if (rv != 0)
                return rv;
        }
        d->p += len;
        return 0;
    }
    for (;;) {
        uint64_t len;
        rv = rd_varint(d, &len);
        if (rv != 0)
            return rv;
        if (len == 0)
            return 0;
        if (len > d->lim->max_content)
            return TP_ERR_TOO_LARGE;
        if (len > left(d))
            return TP_ERR_TRUNCATED;
        rv = content_piece(d, d->p, (size_t)len);
        if (rv != 0)
            return rv;
        d->p += len;
    }
}

/* Where one message's sections landed in the field array. */
struct layout {
    size_t h_first, h_count, t_first, t_count;
};

/* Header section, content, trailer section, padding: the common tail of requests and
   responses. Each may be cut off at a section boundary. */
/* True if |n| bytes at |p| are all zero: padding (RFC 9292 section 3.8), hundreds of
   bytes in every padded message, so read eight at a time rather than byte by byte. */
static bool all_zero(const uint8_t *p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + sizeof(w) <= n; i += sizeof(w)) {
        memcpy(&w, p + i, sizeof(w));
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int message_tail(struct dec *d, bool known, struct layout *lay)
{
    int rv;
    lay->h_first = lay->t_first = d->n_fields;
    lay->h_count = lay->t_count = 0;
    if (d->p == d->end)
        return 0;
    rv = field_section(d, known, &lay->h_first, &lay->h_count);
    if (rv != 0)
        return rv;
    lay->t_first = d->n_fields;
    if (d->p == d->end)
        return 0;
    rv = content(d, known);
    if (rv != 0)
        return rv;
    if (d->p == d->end)
        return 0;
    rv = field_section(d, known, &lay->t_first, &lay->t_count);
    if (rv != 0)
        return rv;
    if (!all_zero(d->p, (size_t)(d->end - d->p)))
        return TP_ERR_INVALID;
    d->p = d->end;
    return 0;
}

struct req_parse {
    struct tp_str method, scheme, authority, path;
    struct layout lay;
};

static int parse_request(struct dec *d, struct req_parse *r)
{
    uint64_t framing;
    int rv = rd_varint(d, &framing);
    if (rv != 0)
        return rv;
    if (framing != 0 && framing != 2)
        return TP_ERR_UNSUPPORTED;
    size_t max = d->lim->max_field_section;
    if ((rv = rd_string(d, max, &r->method)) != 0 ||
        (rv = rd_string(d, max, &r->scheme)) != 0 ||
        (rv = rd_string(d, max, &r->authority)) != 0 ||
        (rv = rd_string(d, max, &r->path)) != 0)
        return rv;
    if (!tp_http_is_token(r->method) || !scheme_ok(r->scheme) ||
        !target_ok(r->authority) || !target_ok(r->path))
        return TP_ERR_INVALID;
    return message_tail(d, framing == 0, &r->lay);
}

struct res_parse {
    uint16_t status;
    struct layout lay;
};

static int parse_response(struct dec *d, struct res_parse *r)
{
    uint64_t framing, status;
    int rv = rd_varint(d, &framing);
    if (rv != 0)
        return rv;
    if (framing != 1 && framing != 3)
        return TP_ERR_UNSUPPORTED;
    bool known = framing == 1;
    for (;;) {
        rv = rd_varint(d, &status);
        if (rv != 0)
            return rv;
        if (status < 100 || status > 599)
            return TP_ERR_INVALID;
        if (status >= 200)
            break;
        if (d->n_info >= d->lim->max_informational)
            return TP_ERR_TOO_LARGE;
        size_t first, count;
        /* An informational response is never the end of a message. */
        rv = field_section(d, known, &first, &count);
        if (rv != 0)
            return rv;
        if (d->fill)
            d->info[d->n_info] = (struct tp_bhttp_info){
                (uint16_t)status, count ? d->fields + first : NULL, count};
        d->n_info++;
    }
    r->status = (uint16_t)status;
    return message_tail(d, known, &r->lay);
}

/* Sizes the one block a decoded message owns: field array, informational array, and
   a content buffer when the content came in more than one chunk. */
static int alloc_block(struct dec *d, const struct dec *scan, void **mem, size_t *mem_len)
{
    size_t fields_sz, info_sz, total, content_sz;
    content_sz = scan->chunks > 1 ? scan->content_len : 0;
    if (scan->n_fields > SIZE_MAX / sizeof(struct tp_header) ||
        scan->n_info > SIZE_MAX / sizeof(struct tp_bhttp_info))
        return TP_ERR_TOO_LARGE;
    fields_sz = scan->n_fields * sizeof(struct tp_header);
    info_sz = scan->n_info * sizeof(struct tp_bhttp_info);
    if (info_sz > SIZE_MAX - fields_sz || content_sz > SIZE_MAX - fields_sz - info_sz)
        return TP_ERR_TOO_LARGE;
    total = fields_sz + info_sz + content_sz;
    *mem = NULL;
    *mem_len = total;
    if (total == 0)
        return 0;
    uint8_t *m = block_alloc(total);
    if (!m)
        return TP_ERR_NOMEM;
    /* tp_header (pointers) first, then tp_bhttp_info (pointers too), then bytes:
       every piece stays aligned. */
    d->fields = scan->n_fields ? (struct tp_header *)(void *)m : NULL;
    d->info = scan->n_info ? (struct tp_bhttp_info *)(void *)(m + fields_sz) : NULL;
    d->content_buf = content_sz ? m + fields_sz + info_sz : NULL;
    *mem = m;
    return 0;
}

static void dec_init(struct dec *d, const uint8_t *in, size_t len,
                     const struct tp_bhttp_limits *lim)
{
    memset(d, 0, sizeof(*d));
    d->p = in;
    d->end = in + len;
    d->lim = lim;
}

static const struct tp_header *section_ptr(const struct dec *d, size_t first, size_t n)
{
    return n ? d->fields + first : NULL;
}

static const uint8_t *content_ptr(const struct dec *d)
{
    if (d->content_len == 0)
        return NULL;
    return d->scan_chunks == 1 ? d->content : d->content_buf;
}

int tp_bhttp_request_decode(struct tp_bhttp_request *req, const uint8_t *in, size_t len,
                            const struct tp_bhttp_limits *limits)
{
    const struct tp_bhttp_limits def = TP_BHTTP_LIMITS_DEFAULT;
    struct dec scan, fill;
    struct req_parse r;
    void *mem = NULL;
    size_t mem_len = 0;
    int rv;

    if (!in || len == 0)
        return TP_ERR_TRUNCATED;
    if (!limits)
        limits = &def;
    dec_init(&scan, in, len, limits);
    rv = parse_request(&scan, &r);
    if (rv != 0)
        return rv;
    dec_init(&fill, in, len, limits);
    rv = alloc_block(&fill, &scan, &mem, &mem_len);
    if (rv != 0)
        return rv;
    fill.fill = true;
    fill.scan_chunks = scan.chunks;
    rv = parse_request(&fill, &r);
    if (rv != 0) {
        free(mem); /* cannot happen: the scan accepted the same bytes */
        return rv;
    }
    *req = (struct tp_bhttp_request){
        .method = r.method,
        .scheme = r.scheme,
        .authority = r.authority,
        .path = r.path,
        .headers = section_ptr(&fill, r.lay.h_first, r.lay.h_count),
        .n_headers = r.lay.h_count,
        .content = content_ptr(&fill),
        .content_len = fill.content_len,
        .trailers = section_ptr(&fill, r.lay.t_first, r.lay.t_count),
        .n_trailers = r.lay.t_count,
        .mem = mem,
        .mem_len = mem_len,
    };
    return 0;
}

void tp_bhttp_request_clear(struct tp_bhttp_request *req)
{
    if (!req)
        return;
    /* The block may hold joined content chunks: plaintext from inside a seal. */
    if (req->mem)
        OPENSSL_cleanse(req->mem, req->mem_len);
    free(req->mem);
    memset(req, 0, sizeof(*req));
}

int tp_bhttp_response_decode(struct tp_bhttp_response *res, const uint8_t *in, size_t len,
                             const struct tp_bhttp_limits *limits)
{
    const struct tp_bhttp_limits def = TP_BHTTP_LIMITS_DEFAULT;
    struct dec scan, fill;
    struct res_parse r;
    void *mem = NULL;
    size_t mem_len = 0;
    int rv;

    if (!in || len == 0)
        return TP_ERR_TRUNCATED;
    if (!limits)
        limits = &def;
    dec_init(&scan, in, len, limits);
    rv = parse_response(&scan, &r);
    if (rv != 0)
        return rv;
    dec_init(&fill, in, len, limits);
    rv = alloc_block(&fill, &scan, &mem, &mem_len);
    if (rv != 0)
        return rv;
    fill.fill = true;
    fill.scan_chunks = scan.chunks;
    rv = parse_response(&fill, &r);
    if (rv != 0) {
        free(mem);
        return rv;
    }
    *res = (struct tp_bhttp_response){
        .informational = fill.n_info ? fill.info : NULL,
        .n_informational = fill.n_info,
        .status = r.status,
        .headers = section_ptr(&fill, r.lay.h_first, r.lay.h_count),
        .n_headers = r.lay.h_count,
        .content = content_ptr(&fill),
        .content_len = fill.content_len,
        .trailers = section_ptr(&fill, r.lay.t_first, r.lay.t_count),
        .n_trailers = r.lay.t_count,
        .mem = mem,
        .mem_len = mem_len,
    };
    return 0;
}

void tp_bhttp_response_clear(struct tp_bhttp_response *res)
{
    if (!res)
        return;
    if (res->mem)
        OPENSSL_cleanse(res->mem, res->mem_len);
    free(res->mem);
    memset(res, 0, sizeof(*res));
}

/* ---- encoding --------------------------------------------------------------------- */

/* One code path both measures and writes: with |out| NULL only |len| advances. */
struct enc {
    uint8_t *out;
    size_t cap;
    size_t len;
};

static int varint_size(uint64_t v, size_t *n)
{
    if (v > VARINT_MAX)
        return TP_ERR_TOO_LARGE;
    *n = v < 64 ? 1 : v < 16384 ? 2 : v < ((uint64_t)1 << 30) ? 4 : 8;
    return 0;
}

static int reserve(struct enc *e, size_t n)
{
    if (n > SIZE_MAX - e->len)
        return TP_ERR_TOO_LARGE;
    if (e->out && n > e->cap - e->len)
        return TP_ERR_INVALID;
    return 0;
}

static int put_varint(struct enc *e, uint64_t v)
{
    size_t n;
    int rv = varint_size(v, &n);
    if (rv == 0)
        rv = reserve(e, n);
    if (rv != 0)
        return rv;
    if (e->out) {
        uint8_t *p = e->out + e->len;
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
        p[0] |= (uint8_t)((n == 1 ? 0 : n == 2 ? 1 : n == 4 ? 2 : 3) << 6);
    }
    e->len += n;
    return 0;
}

static int put_bytes(struct enc *e, const void *p, size_t n)
{
    int rv = reserve(e, n);
    if (rv != 0)
        return rv;
    if (e->out && n)
        memcpy(e->out + e->len, p, n);
    e->len += n;
    return 0;
}

static int put_string(struct enc *e, const void *p, size_t n)
{
    int rv = put_varint(e, n);
    return rv ? rv : put_bytes(e, p, n);
}

static int put_zeros(struct enc *e, size_t n)
{
    int rv = reserve(e, n);
    if (rv != 0)
        return rv;
    if (e->out && n)
        memset(e->out + e->len, 0, n);
    e->len += n;
    return 0;
}

static int put_field_lines(struct enc *e, const struct tp_header *f, size_t n)
{
    if (n && !f)
        return TP_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (!f[i].name.base || (f[i].value.len && !f[i].value.base) ||
            !tp_bhttp_field_name_ok(f[i].name) || !tp_bhttp_field_value_ok(f[i].value))
            return TP_ERR_INVALID;
        int rv = put_string(e, f[i].name.base, f[i].name.len);
        if (rv == 0)
            rv = put_string(e, f[i].value.base, f[i].value.len);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int put_field_section(struct enc *e, bool known, const struct tp_header *f,
                             size_t n)
{
    int rv;
    if (known) {
        struct enc m = {NULL, 0, 0};
        rv = put_field_lines(&m, f, n);
        if (rv == 0)
            rv = put_varint(e, m.len);
        if (rv == 0)
            rv = put_field_lines(e, f, n);
        return rv;
    }
    rv = put_field_lines(e, f, n);
    return rv ? rv : put_varint(e, 0);
}

static int put_content(struct enc *e, bool known, const uint8_t *p, size_t n)
{
    int rv;
    if (n && !p)
        return TP_ERR_INVALID;
    if (known)
        return put_string(e, p, n);
    /* Indeterminate: the whole content as one chunk, then the terminator. */
    if (n) {
        rv = put_string(e, p, n);
        if (rv != 0)
            return rv;
    }
    return put_varint(e, 0);
}

/* Header section, content, trailer section (each left out if truncating and nothing
   non-empty follows), then padding. */
static int put_tail(struct enc *e, const struct tp_bhttp_encode_opts *o,
                    const struct tp_header *h, size_t nh, const uint8_t *c, size_t nc,
                    const struct tp_header *t, size_t nt)
{
    bool known = o->framing == TP_BHTTP_KNOWN_LENGTH;
    int sections = 3;
    int rv = 0;
    if (o->truncate)
        sections = nt ? 3 : nc ? 2 : nh ? 1 : 0;
    if (sections >= 1)
        rv = put_field_section(e, known, h, nh);
    if (rv == 0 && sections >= 2)
        rv = put_content(e, known, c, nc);
    if (rv == 0 && sections >= 3)
        rv = put_field_section(e, known, t, nt);
    if (rv == 0)
        rv = put_zeros(e, o->padding);
    return rv;
}

static bool str_ok(struct tp_str s)
{
    return s.base || s.len == 0;
}

static int put_request(struct enc *e, const struct tp_bhttp_request *r,
                       const struct tp_bhttp_encode_opts *o)
{
    int rv;
    if (o->framing != TP_BHTTP_KNOWN_LENGTH &&
        o->framing != TP_BHTTP_INDETERMINATE_LENGTH)
        return TP_ERR_INVALID;
    if (!str_ok(r->method) || !str_ok(r->scheme) || !str_ok(r->authority) ||
        !str_ok(r->path) || !tp_http_is_token(r->method) || !scheme_ok(r->scheme) ||
        !target_ok(r->authority) || !target_ok(r->path))
        return TP_ERR_INVALID;
    if ((rv = put_varint(e, o->framing == TP_BHTTP_KNOWN_LENGTH ? 0 : 2)) != 0 ||
        (rv = put_string(e, r->method.base, r->method.len)) != 0 ||
        (rv = put_string(e, r->scheme.base, r->scheme.len)) != 0 ||
        (rv = put_string(e, r->authority.base, r->authority.len)) != 0 ||
        (rv = put_string(e, r->path.base, r->path.len)) != 0)
        return rv;
    return put_tail(e, o, r->headers, r->n_headers, r->content, r->content_len,
                    r->trailers, r->n_trailers);
}

static int put_response(struct enc *e, const struct tp_bhttp_response *r,
                        const struct tp_bhttp_encode_opts *o)
{
    bool known = o->framing == TP_BHTTP_KNOWN_LENGTH;
    int rv;
    if (o->framing != TP_BHTTP_KNOWN_LENGTH &&
        o->framing != TP_BHTTP_INDETERMINATE_LENGTH)
        return TP_ERR_INVALID;
    if (r->status < 200 || r->status > 599 || (r->n_informational && !r->informational))
        return TP_ERR_INVALID;
    rv = put_varint(e, known ? 1 : 3);
    for (size_t i = 0; rv == 0 && i < r->n_informational; i++) {
        const struct tp_bhttp_info *inf = &r->informational[i];
        if (inf->status < 100 || inf->status > 199)
            return TP_ERR_INVALID;
        rv = put_varint(e, inf->status);
        if (rv == 0)
            rv = put_field_section(e, known, inf->fields, inf->n_fields);
    }
    if (rv == 0)
        rv = put_varint(e, r->status);
    if (rv != 0)
        return rv;
    return put_tail(e, o, r->headers, r->n_headers, r->content, r->content_len,
                    r->trailers, r->n_trailers);
}

static const struct tp_bhttp_encode_opts default_opts = {TP_BHTTP_KNOWN_LENGTH, false, 0};

int tp_bhttp_request_encoded_len(const struct tp_bhttp_request *req,
                                 const struct tp_bhttp_encode_opts *opts, size_t *len)
{
    struct enc e = {NULL, 0, 0};
    int rv = put_request(&e, req, opts ? opts : &default_opts);
    if (rv == 0)
        *len = e.len;
    return rv;
}

int tp_bhttp_request_encode(const struct tp_bhttp_request *req,
                            const struct tp_bhttp_encode_opts *opts, uint8_t *out,
                            size_t cap, size_t *out_len)
{
    struct enc e = {out, cap, 0};
    if (!out)
        return TP_ERR_INVALID;
    int rv = put_request(&e, req, opts ? opts : &default_opts);
    if (rv == 0)
        *out_len = e.len;
    return rv;
}

int tp_bhttp_response_encoded_len(const struct tp_bhttp_response *res,
                                  const struct tp_bhttp_encode_opts *opts, size_t *len)
{
    struct enc e = {NULL, 0, 0};
    int rv = put_response(&e, res, opts ? opts : &default_opts);
    if (rv == 0)
        *len = e.len;
    return rv;
}

int tp_bhttp_response_encode(const struct tp_bhttp_response *res,
                             const struct tp_bhttp_encode_opts *opts, uint8_t *out,
                             size_t cap, size_t *out_len)
{
    struct enc e = {out, cap, 0};
    if (!out)
        return TP_ERR_INVALID;
    int rv = put_response(&e, res, opts ? opts : &default_opts);
    if (rv == 0)
        *out_len = e.len;
    return rv;
}
