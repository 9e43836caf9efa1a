/* The upstream client's sans-I/O HTTP/1.1 response parser (tp_upstream_internal.h).

   Line by line: memchr finds each line end, one table checks and lowercases a field
   name, values are checked a word at a time and copied into hbuf, which a connection
   keeps across its responses. Only a line split across feeds is copied aside (lbuf)
   until its end arrives, and every check is made on whole lines (but for the status
   line's first bytes, so that garbage fails at once), so a head split at any byte
   parses exactly as one feed does.

   Framing follows RFC 9112 and is stricter than libhttp-parser, which this replaced:
   every line ends in CRLF (no bare LF or CR), obs-fold is refused (5.2), nothing may
   come before the status line, the status code is three digits after one SP, the CRLF
   after chunk data is checked, and trailers may not carry Content-Length or
   Transfer-Encoding. */
#include "tp_upstream_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tp_err.h"

/* Bytes a line may hold beyond the name, value or reason phrase it counts against
   max_header: version and code, colon, blanks around a value, CRLF. */
#define LINE_SLACK 256

enum resp_state {
    S_STATUS,     /* status line */
    S_FIELDS,     /* field lines, up to the empty line */
    S_BODY_LEN,   /* |remain| bytes of a Content-Length body */
    S_BODY_EOF,   /* body until the peer closes */
    S_CHUNK_SIZE, /* chunk-size line */
    S_CHUNK_DATA, /* |remain| bytes of chunk data */
    S_CHUNK_CR,   /* the CRLF after chunk data */
    S_CHUNK_LF,
    S_TRAILERS, /* trailer lines after the last chunk */
    S_DONE,
};

/* Flags of the message being parsed. */
#define F_CLOSE 1u   /* a "close" connection option */
#define F_KEEP 2u    /* a "keep-alive" connection option */
#define F_LENGTH 4u  /* Content-Length seen (value in |remain|) */
#define F_CHUNKED 8u /* Transfer-Encoding: chunked seen */

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Bytes no field value or reason phrase may hold: controls but HTAB, and DEL
   (RFC 9110 5.5). */
static const bool bad_tab[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1, [0x0e] = 1,
    [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1,
    [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1,
    [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [0x7f] = 1,
};

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Returns nonzero if a byte of |x| may be bad: below 0x20 (HTAB too) or DEL. */
static uint64_t word_suspect(const char *s)
{
    uint64_t x, d;
    memcpy(&x, s, 8);
    d = x ^ (ONES * 0x7f);
    return (((x - ONES * 0x20) & ~x) | ((d - ONES) & ~d)) & HIGHS;
}

static bool bytes_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bad_tab[(unsigned char)s[i]])
            return false;
    return true;
}

/* Field values and reason phrases: eight bytes at a time, the last word overlapping
   the one before; a suspect word (HTAB sets the test off too) is looked at bytewise. */
static bool text_ok(const char *s, size_t n)
{
    if (n < 8)
        return bytes_ok(s, n);
    for (size_t i = 0; i + 8 < n; i += 8)
        if (word_suspect(s + i) && !bytes_ok(s + i, 8))
            return false;
    return !word_suspect(s + n - 8) || bytes_ok(s + n - 8, 8);
}

/* Header bytes still allowed: names + values + reason phrase up to max_header. */
static size_t room(const struct tp_upstream_resp *r)
{
    return r->max_header - r->hsize;
}

static size_t line_limit(size_t budget)
{
    return budget > SIZE_MAX - LINE_SLACK ? SIZE_MAX : budget + LINE_SLACK;
}

/* Returns |buf| reallocated to at least |need| elements of |elem| bytes (doubling from
 *cap, or from |first|), *cap updated; NULL with |buf| untouched when out of memory. */
static void *grow(void *buf, size_t *cap, size_t need, size_t elem, size_t first)
{
    size_t c = *cap ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return NULL;
        c *= 2;
    }
    void *nb = realloc(buf, c * elem);
    if (nb)
        *cap = c;
    return nb;
}

/* Takes the next line from |data| at *off. Returns 1 with the line, CRLF stripped, in
   *line and *n (valid until the next call; (*line)[*n] is its CR); 0 when the line goes
   on past |len| (its start waits in lbuf, *off moves to len); TP_ERR_TOO_LARGE for a
   line, CRLF included, longer than |limit|, found before its end arrives; TP_ERR_PROTO
   for a line not ended by CRLF. */
static inline int next_line(struct tp_upstream_resp *r, const char *data, size_t len,
                            size_t *off, size_t limit, const char **line, size_t *n)
{
    const char *p = data + *off;
    size_t avail = len - *off;
    const char *lf = memchr(p, '\n', avail);
    size_t take = lf ? (size_t)(lf - p) + 1 : avail;
    size_t total = r->llen + take;
    if (total > limit || (!lf && total == limit))
        return TP_ERR_TOO_LARGE;
    *off += take;
    const char *s = p;
    if (r->llen > 0 || !lf) {
        if (total > r->lcap) {
            char *nb = grow(r->lbuf, &r->lcap, total, 1, 128);
            if (!nb)
                return TP_ERR_NOMEM;
            r->lbuf = nb;
        }
        memcpy(r->lbuf + r->llen, p, take);
        r->llen = total;
        if (!lf)
            return 0;
        s = r->lbuf;
        r->llen = 0;
    }
    if (total < 2 || s[total - 2] != '\r')
        return TP_ERR_PROTO;
    *line = s;
    *n = total - 2;
    return 1;
}

/* HTTP/1.x SP 3DIGIT [ SP reason-phrase ] (RFC 9112 4). */
static int status_line(struct tp_upstream_resp *r, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' ||
        s[8] != ' ' || (n > 12 && s[12] != ' '))
        return TP_ERR_PROTO;
    int code = 0;
    for (size_t i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TP_ERR_PROTO;
        code = code * 10 + (s[i] - '0');
    }
    /* Below 100 is no status; 101 would switch protocols, which we never ask for. */
    if (code < 100 || code == 101)
        return TP_ERR_PROTO;
    const char *reason = s + (n > 12 ? 13 : 12);
    size_t rlen = n > 12 ? n - 13 : 0;
    if (!text_ok(reason, rlen))
        return TP_ERR_PROTO;
    /* The reason phrase is not kept, but it counts against the cap. */
    if (rlen > room(r))
        return TP_ERR_TOO_LARGE;
    r->hsize += rlen;
    r->code = code;
    r->minor = (unsigned)(s[7] - '0');
    r->flags = 0;
    r->state = S_FIELDS;
    return 0;
}

enum name_kind { N_OTHER, N_LENGTH, N_TE, N_CONNECTION };

/* |s| is lowercase. */
static enum name_kind name_kind(const char *s, size_t n)
{
    switch (n) {
    case 10:
        return memcmp(s, "connection", 10) == 0 ? N_CONNECTION : N_OTHER;
    case 14:
        return memcmp(s, "content-length", 14) == 0 ? N_LENGTH : N_OTHER;
    case 16:
        /* Older peers still send it; libhttp-parser read it as Connection. */
        return memcmp(s, "proxy-connection", 16) == 0 ? N_CONNECTION : N_OTHER;
    case 17:
        return memcmp(s, "transfer-encoding", 17) == 0 ? N_TE : N_OTHER;
    default:
        return N_OTHER;
    }
}

static bool option_is(const char *s, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tp_http_tchar_lower[(unsigned char)s[i]] != (unsigned char)lit[i])
            return false;
    return true;
}

/* Notes "close" and "keep-alive" among the connection options of |v|: any word of the
   list (tp_http_list_word) equal to one of them in any case, so "a, close", ",\tclose"
   and "x close" all carry close. Reading a malformed element as two words can only end
   a connection that might have been kept, or keep an HTTP/1.0 one whose response was
   framed anyway (never one read to the peer's close). */
static void connection_options(struct tp_upstream_resp *r, const char *v, size_t n)
{
    struct tp_str rest = {v, n}, w;
    while (tp_http_list_word(&rest, &w)) {
        if (option_is(w.base, w.len, "close", 5))
            r->flags |= F_CLOSE;
        else if (option_is(w.base, w.len, "keep-alive", 10))
            r->flags |= F_KEEP;
    }
}

/* 1*DIGIT *SP, leading blanks already skipped. */
static int content_length(const char *v, size_t n, int64_t *out)
{
    size_t i = 0;
    int64_t x = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
        int d = v[i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return TP_ERR_PROTO;
        x = x * 10 + d;
    }
    if (i == 0)
        return TP_ERR_PROTO;
    while (i < n && v[i] == ' ')
        i++;
    if (i != n)
        return TP_ERR_PROTO;
    *out = x;
    return 0;
}

/* "chunked" in any case, then only SP: only that coding alone can be passed on
   faithfully, as any other would be dropped with the hop-by-hop field. */
static bool chunked_only(const char *v, size_t n)
{
    if (n < 7 || !option_is(v, 7, "chunked", 7))
        return false;
    for (size_t i = 7; i < n; i++)
        if (v[i] != ' ')
            return false;
    return true;
}

/* A field line of the head, or of the trailers (checked and counted, not kept). */
static int field_line(struct tp_upstream_resp *r, const char *s, size_t n, bool trailer)
{
    char small[17];
    char *dst = small;
    size_t i = 0;
    if (!trailer) {
        if (r->nfields == TP_UPSTREAM_MAX_FIELDS)
            return TP_ERR_TOO_LARGE;
        if (n > r->hcap - r->hlen) {
            char *nb = grow(r->hbuf, &r->hcap, r->hlen + n, 1, 1024);
            if (!nb)
                return TP_ERR_NOMEM;
            r->hbuf = nb;
        }
        dst = r->hbuf + r->hlen;
        /* s[n] is the line's CR, no tchar: the scan needs no bound. */
        for (unsigned char c; (c = tp_http_tchar_lower[(unsigned char)s[i]]) != 0; i++)
            dst[i] = (char)c;
    } else {
        for (unsigned char c; (c = tp_http_tchar_lower[(unsigned char)s[i]]) != 0; i++)
            if (i < sizeof(small))
                small[i] = (char)c;
    }
    /* An empty name, a blank before the colon, or a line starting with a blank
       (obs-fold) all end up here. */
    size_t nlen = i;
    if (nlen == 0 || i == n || s[i] != ':')
        return TP_ERR_PROTO;
    for (i++; i < n && blank(s[i]); i++)
        ;
    const char *v = s + i;
    size_t vraw = n - i;
    if (!text_ok(v, vraw))
        return TP_ERR_PROTO;
    if (nlen + vraw > room(r))
        return TP_ERR_TOO_LARGE;
    r->hsize += nlen + vraw;
    enum name_kind kind = nlen <= 17 ? name_kind(dst, nlen) : N_OTHER;
    if (kind == N_CONNECTION) {
        connection_options(r, v, vraw);
    } else if (kind != N_OTHER && trailer) {
        /* Framing has been settled by then (RFC 9110 6.5.1). */
        return TP_ERR_PROTO;
    } else if (kind == N_LENGTH) {
        /* A second one, even equal, is refused: response smuggling. */
        if ((r->flags & F_LENGTH) || content_length(v, vraw, &r->remain) != 0)
            return TP_ERR_PROTO;
        r->flags |= F_LENGTH;
    } else if (kind == N_TE) {
        if ((r->flags & F_CHUNKED) || !chunked_only(v, vraw))
            return TP_ERR_PROTO;
        r->flags |= F_CHUNKED;
    }
    if (trailer)
        return 0;
    if (r->nfields == r->fcap) {
        struct tp_upstream_field *nf =
            grow(r->fields, &r->fcap, r->nfields + 1, sizeof(*r->fields), 16);
        if (!nf)
            return TP_ERR_NOMEM;
        r->fields = nf;
    }
    /* Trailing blanks are not part of a field value (RFC 9110 5.5). */
    size_t vlen = vraw;
    while (vlen > 0 && blank(v[vlen - 1]))
        vlen--;
    memcpy(dst + nlen, v, vlen);
    struct tp_upstream_field *f = &r->fields[r->nfields++];
    f->name_off = r->hlen;
    f->name_len = nlen;
    f->value_off = r->hlen + nlen;
    f->value_len = vlen;
    r->hlen += nlen + vlen;
    return 0;
}

static void finish(struct tp_upstream_resp *r, bool at_eof)
{
    r->state = S_DONE;
    r->done = true;
    /* HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive" and no "close"
       (RFC 9112 9.3); a body read to the peer's close ends the connection. */
    bool keep = r->minor > 0 ? true : (r->flags & F_KEEP) != 0;
    r->keep_alive = keep && !(r->flags & F_CLOSE) && !at_eof;
}

static int head_end(struct tp_upstream_resp *r)
{
    if ((r->flags & F_CHUNKED) && (r->flags & F_LENGTH))
        return TP_ERR_PROTO;
    if (r->code < 200) {
        /* Interim (100 Continue, 103 Early Hints): skipped. */
        if (++r->interim > TP_UPSTREAM_MAX_INTERIM)
            return TP_ERR_PROTO;
        r->nfields = 0;
        r->hlen = 0;
        r->hsize = 0;
        r->state = S_STATUS;
        return 0;
    }
    r->status = r->code;
    if (r->flags & F_CHUNKED)
        r->content_length = -1;
    else
        r->content_length = (r->flags & F_LENGTH) ? r->remain : -1;
    r->no_body = r->head_request || r->code == 204 || r->code == 304;
    if (r->code == 204)
        r->content_length = 0;
    if (!r->no_body && r->max_body >= 0 && r->content_length > r->max_body)
        return TP_ERR_TOO_LARGE;
    if (r->nfields > r->vcap) {
        struct tp_header *nv = grow(r->view, &r->vcap, r->nfields, sizeof(*r->view), 16);
        if (!nv)
            return TP_ERR_NOMEM;
        r->view = nv;
    }
    for (size_t i = 0; i < r->nfields; i++) {
        const struct tp_upstream_field *f = &r->fields[i];
        r->view[i].name = (struct tp_str){r->hbuf + f->name_off, f->name_len};
        r->view[i].value = (struct tp_str){r->hbuf + f->value_off, f->value_len};
    }
    r->head_done = true;
    if (r->no_body || (!(r->flags & F_CHUNKED) && r->content_length == 0)) {
        finish(r, false);
    } else if (r->flags & F_CHUNKED) {
        r->state = S_CHUNK_SIZE;
    } else if (r->flags & F_LENGTH) {
        r->state = S_BODY_LEN;
    } else {
        r->state = S_BODY_EOF;
    }
    return 0;
}

/* 1*HEXDIG [ ( ";" / SP ) chunk-ext ], the extensions skipped (RFC 9112 7.1.1). */
static int chunk_size(struct tp_upstream_resp *r, const char *s, size_t n)
{
    size_t i = 0;
    int64_t x = 0;
    for (; i < n; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            break;
        if (x > (INT64_MAX >> 4))
            return TP_ERR_PROTO;
        x = x * 16 + d;
    }
    if (i == 0)
        return TP_ERR_PROTO;
    if (i < n && s[i] == ' ') {
        while (i < n && blank(s[i]))
            i++;
        if (i < n && s[i] != ';')
            return TP_ERR_PROTO;
    } else if (i < n && s[i] != ';') {
        return TP_ERR_PROTO;
    }
    if (!text_ok(s + i, n - i))
        return TP_ERR_PROTO;
    r->remain = x;
    r->state = x == 0 ? S_TRAILERS : S_CHUNK_DATA;
    return 0;
}

static int body(struct tp_upstream_resp *r, const char *at, size_t n)
{
    if ((uint64_t)n > (uint64_t)(INT64_MAX - r->body_len))
        return TP_ERR_TOO_LARGE;
    r->body_len += (int64_t)n;
    if (r->max_body >= 0 && r->body_len > r->max_body)
        return TP_ERR_TOO_LARGE;
    if (evbuffer_add(r->body, at, n) == -1)
        return TP_ERR_NOMEM;
    return 0;
}

/* Bytes of a body part with |remain| left: consumes what |data| holds of it. */
static int body_part(struct tp_upstream_resp *r, const char *data, size_t len,
                     size_t *off)
{
    size_t n = len - *off;
    if ((uint64_t)n > (uint64_t)r->remain)
        n = (size_t)r->remain;
    int rv = body(r, data + *off, n);
    if (rv != 0)
        return rv;
    *off += n;
    r->remain -= (int64_t)n;
    return 0;
}

/* One step of the state machine over data[*off..len). */
static int step(struct tp_upstream_resp *r, const char *data, size_t len, size_t *off)
{
    const char *line;
    size_t n;
    int rv;
    switch (r->state) {
    case S_STATUS:
        /* Garbage fails at its first byte, not a line later. */
        for (size_t k = r->llen, i = *off; k < 7 && i < len; k++, i++)
            if (data[i] != "HTTP/1."[k])
                return TP_ERR_PROTO;
        rv = next_line(r, data, len, off, line_limit(room(r)), &line, &n);
        return rv <= 0 ? rv : status_line(r, line, n);
    case S_FIELDS:
    case S_TRAILERS:
        rv = next_line(r, data, len, off, line_limit(room(r)), &line, &n);
        if (rv <= 0)
            return rv;
        if (n == 0) {
            if (r->state == S_FIELDS)
                return head_end(r);
            finish(r, false);
            return 0;
        }
        return field_line(r, line, n, r->state == S_TRAILERS);
    case S_BODY_LEN:
        rv = body_part(r, data, len, off);
        if (rv == 0 && r->remain == 0)
            finish(r, false);
        return rv;
    case S_BODY_EOF:
        rv = body(r, data + *off, len - *off);
        *off = len;
        return rv;
    case S_CHUNK_SIZE:
        /* Extensions are skipped, within the header cap. */
        rv = next_line(r, data, len, off, line_limit(r->max_header), &line, &n);
        return rv <= 0 ? rv : chunk_size(r, line, n);
    case S_CHUNK_DATA:
        rv = body_part(r, data, len, off);
        if (rv == 0 && r->remain == 0)
            r->state = S_CHUNK_CR;
        return rv;
    case S_CHUNK_CR:
    case S_CHUNK_LF:
        if (data[*off] != (r->state == S_CHUNK_CR ? '\r' : '\n'))
            return TP_ERR_PROTO;
        (*off)++;
        r->state = r->state == S_CHUNK_CR ? S_CHUNK_LF : S_CHUNK_SIZE;
        return 0;
    default:
        return TP_ERR_STATE;
    }
}

int tp_upstream_resp_init(struct tp_upstream_resp *r, size_t max_header, int64_t max_body,
                          bool head_request)
{
    memset(r, 0, sizeof(*r));
    r->body = evbuffer_new();
    if (!r->body)
        return TP_ERR_NOMEM;
    r->max_header = max_header;
    r->max_body = max_body;
    tp_upstream_resp_reset(r, head_request);
    return 0;
}

void tp_upstream_resp_reset(struct tp_upstream_resp *r, bool head_request)
{
    r->head_request = head_request;
    r->hlen = r->hsize = 0;
    r->nfields = 0;
    r->llen = 0;
    r->state = S_STATUS;
    r->flags = 0;
    r->minor = 0;
    r->code = 0;
    r->remain = 0;
    r->interim = 0;
    r->status = 0;
    r->content_length = -1;
    r->no_body = r->head_done = r->done = r->keep_alive = false;
    r->body_len = 0;
    r->err = 0;
    if (r->body)
        evbuffer_drain(r->body, evbuffer_get_length(r->body));
}

void tp_upstream_resp_clear(struct tp_upstream_resp *r)
{
    free(r->hbuf);
    r->hbuf = NULL;
    free(r->fields);
    r->fields = NULL;
    free(r->view);
    r->view = NULL;
    r->vcap = 0;
    free(r->lbuf);
    r->lbuf = NULL;
    r->lcap = 0;
    if (r->body)
        evbuffer_free(r->body);
    r->body = NULL;
}

int tp_upstream_resp_feed(struct tp_upstream_resp *r, const char *data, size_t len,
                          size_t *used)
{
    *used = 0;
    if (r->err)
        return r->err;
    if (r->done)
        return TP_ERR_STATE;
    size_t off = 0;
    while (off < len && !r->done) {
        int rv = step(r, data, len, &off);
        if (rv != 0) {
            r->err = rv;
            return rv;
        }
    }
    *used = off;
    return 0;
}

int tp_upstream_resp_eof(struct tp_upstream_resp *r)
{
    if (r->err)
        return r->err;
    if (r->done)
        return 0;
    if (r->state == S_BODY_EOF) {
        finish(r, true);
        return 0;
    }
    r->err = TP_ERR_CLOSED;
    return r->err;
}
