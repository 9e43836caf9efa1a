/* The HTTP/1.1 server side, on libhttp-parser.

   libhttp-parser (strict build) refuses bad tokens, duplicate Content-Length and
   Content-Length with Transfer-Encoding; a small scanner in front of it also refuses
   what it tolerates and a front could smuggle with: bare LF, bare CR, NUL bytes and
   obs-fold lines in a request head. One request is handled at a time; pipelined
   requests wait in the input buffer until the current response has ended.

   Re-entrancy: handler calls (respond, write, end, reset, consume) never run the state
   machine or free anything themselves; they schedule the connection's "kick" event,
   which runs on the next loop turn. So a handler may call them from anywhere. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>

#include "tp_conn_internal.h"
#include "tp_err.h"
#include "tp_req.h"

struct field {
    uint32_t name_off, name_len, value_off, value_len;
};

struct h1_req {
    struct tp_req req; /* first: tp_req pointers convert to h1_req */
    struct tp_h1 *h1;
    struct tp_header *headers;
    struct evbuffer *body; /* request body bytes handed to the handler */
    uint64_t delivered, consumed;
    bool message_complete;
    bool body_end_sent;
    bool responded, ended, chunked, head_only;
    int64_t remaining; /* declared response bytes still to send, or -1 */
    bool want_writable;
    uint64_t start_ms; /* head complete: stream_timeout and the small-body deadline */
};

struct tp_h1 {
    struct tp_conn *c;
    http_parser parser;
    struct event *kick;
    /* The head being parsed: URL and fields, lowercased names, in one bounded buffer. */
    char *head;
    size_t head_len, head_alloc, head_cap;
    struct field *fields;
    unsigned nfields;
    uint32_t url_off, url_len;
    bool in_field_value;
    bool head_too_large;
    bool head_nomem; /* the head buffer could not grow */
    unsigned host_count;
    /* Strict head scanner state. */
    bool scan_in_head;
    char scan_prev;
    bool scan_cr_end;   /* saw the empty line's CR; its LF ends the head */
    bool scan_have_line; /* the request line has started */
    unsigned scan_te_pos; /* "transfer-encoding:" bytes matched on this line, or a mark */
    bool in_body;        /* head done: field callbacks are trailers, ignored */
    /* Current request. */
    struct h1_req *cur;
    bool keep_alive;
    bool close_pending; /* a handler asked for a reset, or an error */
    bool reading_blocked; /* the handler has not taken a window of body yet */
    bool input_full;      /* read_max bytes wait in the input buffer */
    size_t read_max;
};

static const struct tp_req_ops h1_ops;
static void scan_reset(struct tp_h1 *h1);
static void h1_process(struct tp_h1 *h1);
static void schedule(struct tp_h1 *h1);

/* ------------------------------------------------------------------ responses --- */

/* Returns false when a byte could not be queued (out of memory). */
static bool add_common_headers(struct tp_conn *c, struct evbuffer *out)
{
    const char *server = c->server->opts.server_header;
    bool ok = !server || evbuffer_add_printf(out, "Server: %s\r\n", server) >= 0;
    return evbuffer_add_printf(out, "Date: %s\r\n", tp_server_date(c->server)) >= 0 && ok;
}

/* A fixed error page for requests the transport refuses before any handler sees them.
   It reads like an ordinary web server's and names no product. */
static void send_error_and_close(struct tp_h1 *h1, int status)
{
    struct tp_conn *c = h1->c;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *reason = tp_http_reason(status);
    char body[256];
    size_t n = tp_http_error_page(status, body, sizeof(body));
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
    add_common_headers(c, out);
    evbuffer_add_printf(out,
                        "Content-Type: text/html\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n",
                        n);
    evbuffer_add(out, body, n);
    tp_conn_event(c, status == 503 ? TP_EV_OVER_BUDGET : TP_EV_PROTOCOL_ERROR);
    tp_conn_close_after_flush(c, true);
}

/* Header names are lowercase inside zaslon; on HTTP/1.1 they go out capitalised the
   way common servers write them ("Content-Type", "ETag"), so nothing stands out. */
static bool write_name(struct evbuffer *out, struct tp_str name)
{
    static const char *const special[] = {"ETag", "WWW-Authenticate", "Content-MD5",
                                          "X-XSS-Protection", "DNT", NULL};
    for (size_t i = 0; special[i]; i++)
        if (tp_str_caseeq(name, special[i]))
            return evbuffer_add(out, special[i], name.len) == 0;
    char cap[64];
    size_t done = 0;
    bool up = true;
    while (done < name.len) {
        size_t n = name.len - done < sizeof(cap) ? name.len - done : sizeof(cap);
        for (size_t k = 0; k < n; k++) {
            char ch = name.base[done + k];
            cap[k] = (up && ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
            up = ch == '-';
        }
        if (evbuffer_add(out, cap, n) != 0)
            return false;
        done += n;
    }
    return true;
}

static bool status_has_body(int status)
{
    return !(status / 100 == 1 || status == 204 || status == 304);
}

static int h1_respond(struct tp_req *req, int status, const struct tp_header *hs, size_t n,
                      int64_t content_length, bool end)
{
    struct h1_req *r = (struct h1_req *)req;
    struct tp_h1 *h1 = r->h1;
    struct tp_conn *c = h1->c;
    if (r->responded || status < 200 || status > 999)
        return TP_ERR_STATE;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    r->responded = true;
    r->head_only = end || !status_has_body(status) || tp_str_eq(req->method, "HEAD");
    bool http10 = h1->parser.http_minor == 0;
    if (!r->head_only && content_length < 0) {
        if (http10)
            h1->keep_alive = false; /* close-delimited */
        else
            r->chunked = true;
    }
    r->remaining = r->head_only ? 0 : content_length;
    if (c->draining || c->nreqs >= c->limits.max_requests_per_conn)
        h1->keep_alive = false;
    /* Answered before the request body is in: the connection is announced as closing
       and never reused, and the close lingers (reading and discarding) so the answer is
       not lost to a reset. Reusing it after discarding the promised length would be
       unsafe behind a front that reuses its connections: if the front gives up on the
       rest of that body, the next client's bytes would be read as its remainder, and a
       request hidden at that offset would be served. */
    if (!r->message_complete && req->has_body)
        h1->keep_alive = false;
    const char *reason = tp_http_reason(status);
    bool ok = evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status,
                                  *reason ? reason : "Unknown") >= 0;
    ok = add_common_headers(c, out) && ok;
    for (size_t i = 0; i < n; i++) {
        struct tp_str name = hs[i].name;
        if (tp_http_hop_by_hop(name) || tp_str_eq(name, "content-length") ||
            tp_str_eq(name, "date") || tp_str_eq(name, "server"))
            continue;
        ok = write_name(out, name) && evbuffer_add(out, ": ", 2) == 0 &&
             evbuffer_add(out, hs[i].value.base, hs[i].value.len) == 0 &&
             evbuffer_add(out, "\r\n", 2) == 0 && ok;
    }
    if (content_length >= 0 && (status_has_body(status) || status == 304))
        ok = evbuffer_add_printf(out, "Content-Length: %lld\r\n",
                                 (long long)content_length) >= 0 && ok;
    if (r->chunked)
        ok = evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28) == 0 && ok;
    if (!h1->keep_alive)
        ok = evbuffer_add(out, "Connection: close\r\n", 19) == 0 && ok;
    else if (http10)
        ok = evbuffer_add(out, "Connection: keep-alive\r\n", 24) == 0 && ok;
    ok = evbuffer_add(out, "\r\n", 2) == 0 && ok;
    if (!ok) {
        /* Out of memory part-way: a torn head must never reach the client. The
           connection closes without flushing (close_pending), and the caller resets. */
        r->ended = true;
        h1->close_pending = true;
        schedule(h1);
        return TP_ERR_NOMEM;
    }
    if (end)
        req->ops->end(req);
    return 0;
}

static bool below_mark(struct tp_h1 *h1)
{
    return evbuffer_get_length(bufferevent_get_output(h1->c->bev)) <
           h1->c->limits.stream_buffer;
}

/* Closes the connection without flushing its output, on the next loop turn. */
static void torn(struct tp_h1 *h1)
{
    h1->close_pending = true;
    schedule(h1);
}

static bool h1_write_common(struct h1_req *r, size_t len, struct evbuffer *data,
                            const void *ref)
{
    struct tp_h1 *h1 = r->h1;
    struct evbuffer *out = bufferevent_get_output(h1->c->bev);
    if (!r->responded || r->ended || r->head_only || len == 0 || h1->close_pending) {
        if (data)
            evbuffer_drain(data, evbuffer_get_length(data));
        return true;
    }
    if (r->remaining >= 0) {
        if ((uint64_t)r->remaining < len) {
            /* More than announced: a handler bug or a lying backend. Never send
               bytes that would be read as the next response. */
            len = (size_t)r->remaining;
            h1->keep_alive = false;
        }
        r->remaining -= (int64_t)len;
    }
    bool queued = !r->chunked || evbuffer_add_printf(out, "%zx\r\n", len) >= 0;
    if (data) {
        queued = queued && evbuffer_remove_buffer(data, out, len) == (int)len;
        evbuffer_drain(data, evbuffer_get_length(data));
    } else {
        queued = queued && evbuffer_add_reference(out, ref, len, NULL, NULL) == 0;
    }
    if (r->chunked)
        queued = queued && evbuffer_add(out, "\r\n", 2) == 0;
    if (!queued) {
        /* Out of memory: bytes are missing from a response whose head promised them,
           so the connection closes without flushing (the client sees a cut response,
           never a wrong one) and the handler hears on_abort. */
        torn(h1);
        return true;
    }
    bool ok = below_mark(h1);
    if (!ok)
        r->want_writable = true;
    return ok;
}

static bool h1_write(struct tp_req *req, struct evbuffer *data)
{
    return h1_write_common((struct h1_req *)req, evbuffer_get_length(data), data, NULL);
}

static bool h1_write_ref(struct tp_req *req, const void *p, size_t len)
{
    return h1_write_common((struct h1_req *)req, len, NULL, p);
}

static void schedule(struct tp_h1 *h1)
{
    event_active(h1->kick, EV_TIMEOUT, 1);
}

static void h1_end(struct tp_req *req)
{
    struct h1_req *r = (struct h1_req *)req;
    if (r->ended)
        return;
    r->ended = true;
    if (!r->head_only && r->chunked &&
        evbuffer_add(bufferevent_get_output(r->h1->c->bev), "0\r\n\r\n", 5) != 0) {
        /* Without its last chunk the response would never end for the client. */
        torn(r->h1);
        return;
    }
    if (r->remaining > 0)
        r->h1->keep_alive = false; /* short body: the client must see the close */
    schedule(r->h1);
}

static void h1_reset(struct tp_req *req)
{
    struct h1_req *r = (struct h1_req *)req;
    r->ended = true;
    r->h1->close_pending = true;
    r->req.handler = NULL; /* no on_abort after a handler's own reset */
    schedule(r->h1);
}

static void h1_consume(struct tp_req *req, size_t n)
{
    struct h1_req *r = (struct h1_req *)req;
    r->consumed += n;
    if (r->h1->reading_blocked)
        schedule(r->h1);
}

static size_t h1_pending(const struct tp_req *req)
{
    const struct h1_req *r = (const struct h1_req *)req;
    return evbuffer_get_length(bufferevent_get_output(r->h1->c->bev));
}

static void h1_set_close(struct tp_req *req)
{
    ((struct h1_req *)req)->h1->keep_alive = false;
}

static const struct tp_req_ops h1_ops = {
    .respond = h1_respond,
    .write = h1_write,
    .write_ref = h1_write_ref,
    .end = h1_end,
    .reset = h1_reset,
    .consume = h1_consume,
    .pending = h1_pending,
    .set_close = h1_set_close,
};

/* ------------------------------------------------------------------- requests --- */

static void req_free(struct h1_req *r)
{
    if (!r)
        return;
    if (r->body) { /* NULL when build_request ran out of memory */
        tp_conn_budget_untrack(r->h1->c, r->body);
        evbuffer_free(r->body);
    }
    free(r->headers);
    free(r);
}

/* Ends the current request: the client left, or its response is done. As on the
   HTTP/2 side, the handler hears on_abort unless it has nothing left to hear: its
   response ended and it got the end of any body it reads. */
static void finish_request(struct tp_h1 *h1)
{
    struct h1_req *r = h1->cur;
    if (!r)
        return;
    h1->cur = NULL;
    const struct tp_req_handler *h = r->req.handler;
    if (h && h->on_abort && (!r->ended || (h->on_body && !r->body_end_sent)))
        h->on_abort(&r->req);
    req_free(r);
}

/* Appends to the head buffer, growing it up to the header-list cap. Past the cap the
   head is marked too large: parsing goes on to its end, then the answer is 431. */
static void head_append(struct tp_h1 *h1, const char *at, size_t len, bool lower)
{
    if (h1->head_too_large || len > h1->head_cap - h1->head_len) {
        h1->head_too_large = true;
        return;
    }
    if (h1->head_len + len > h1->head_alloc) {
        size_t n = h1->head_alloc ? h1->head_alloc : 1024;
        while (n < h1->head_len + len)
            n *= 2;
        if (n > h1->head_cap)
            n = h1->head_cap;
        char *nb = realloc(h1->head, n);
        if (!nb) {
            /* Refused like an oversized head, but answered 500: it is ours. */
            h1->head_too_large = h1->head_nomem = true;
            return;
        }
        h1->head = nb;
        h1->head_alloc = n;
    }
    char *dst = h1->head + h1->head_len;
    if (lower) {
        for (size_t i = 0; i < len; i++) {
            char ch = at[i];
            dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
    } else {
        memcpy(dst, at, len);
    }
    h1->head_len += len;
}

static int on_message_begin(http_parser *p)
{
    struct tp_h1 *h1 = p->data;
    h1->head_len = 0;
    h1->nfields = 0;
    h1->url_off = h1->url_len = 0;
    h1->in_field_value = false;
    h1->head_too_large = h1->head_nomem = false;
    h1->host_count = 0;
    h1->in_body = false;
    tp_conn_set_deadline(h1->c, TP_DL_HEADER);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct tp_h1 *h1 = p->data;
    if (h1->url_len == 0)
        h1->url_off = (uint32_t)h1->head_len;
    size_t before = h1->head_len;
    head_append(h1, at, len, false);
    h1->url_len += (uint32_t)(h1->head_len - before);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct tp_h1 *h1 = p->data;
    if (h1->head_too_large || h1->in_body)
        return 0;
    if (h1->nfields == 0 || h1->in_field_value) {
        if (h1->nfields >= h1->c->limits.header_fields) {
            h1->head_too_large = true;
            return 0;
        }
        struct field *f = &h1->fields[h1->nfields++];
        f->name_off = (uint32_t)h1->head_len;
        f->name_len = f->value_len = 0;
        f->value_off = 0;
        h1->in_field_value = false;
    }
    struct field *f = &h1->fields[h1->nfields - 1];
    size_t before = h1->head_len;
    head_append(h1, at, len, true);
    f->name_len += (uint32_t)(h1->head_len - before);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct tp_h1 *h1 = p->data;
    if (h1->head_too_large || h1->in_body || h1->nfields == 0)
        return 0;
    struct field *f = &h1->fields[h1->nfields - 1];
    if (!h1->in_field_value) {
        h1->in_field_value = true;
        f->value_off = (uint32_t)h1->head_len;
    }
    size_t before = h1->head_len;
    head_append(h1, at, len, false);
    f->value_len += (uint32_t)(h1->head_len - before);
    return 0;
}

static struct tp_str head_str(struct tp_h1 *h1, uint32_t off, uint32_t len)
{
    return (struct tp_str){h1->head + off, len};
}

/* Trims optional whitespace around a field value (RFC 9112 5.1). */
static struct tp_str trim(struct tp_str s)
{
    while (s.len && (s.base[0] == ' ' || s.base[0] == '\t')) {
        s.base++;
        s.len--;
    }
    while (s.len && (s.base[s.len - 1] == ' ' || s.base[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Builds the request object from the parsed head. Returns 0, or an HTTP status to
   refuse the request with. */
static int build_request(struct tp_h1 *h1)
{
    struct tp_conn *c = h1->c;
    http_parser *p = &h1->parser;
    if (h1->head_too_large)
        return h1->head_nomem ? 500 : 431;
    if (p->http_major != 1)
        return 505;
    struct h1_req *r = calloc(1, sizeof(*r));
    if (!r)
        return 500;
    r->h1 = h1;
    r->body = evbuffer_new();
    r->headers = calloc(h1->nfields ? h1->nfields : 1, sizeof(*r->headers));
    if (!r->body || !r->headers) {
        req_free(r);
        return 500;
    }
    tp_conn_budget_track(h1->c, r->body);
    struct tp_req *req = &r->req;
    req->ops = &h1_ops;
    req->version = TP_HTTP_11;
    req->tls = c->tls;
    req->conn_serial = c->serial;
    req->scheme = c->tls ? TP_STR_LIT("https") : TP_STR_LIT("http");
    req->method = (struct tp_str){http_method_str((enum http_method)p->method), 0};
    req->method.len = strlen(req->method.base);
    req->path = head_str(h1, h1->url_off, h1->url_len);
    int status = 0;
    unsigned te_count = 0;
    size_t n = 0;
    for (unsigned i = 0; i < h1->nfields; i++) {
        struct field *f = &h1->fields[i];
        struct tp_str name = head_str(h1, f->name_off, f->name_len);
        struct tp_str value = trim(head_str(h1, f->value_off, f->value_len));
        /* Whitespace before the colon, or any non-token byte, is a request to refuse
           (RFC 9112 5.1): fronts and backends may read such a name differently. */
        if (!tp_http_is_token(name))
            status = 400;
        /* The only transfer coding a request may use here is a lone "chunked": any
           other, or a list, or one in HTTP/1.0, is refused rather than guessed at. */
        if (tp_str_eq(name, "transfer-encoding") &&
            (!tp_str_caseeq(value, "chunked") || p->http_minor == 0 || ++te_count > 1))
            status = 400;
        if (tp_str_eq(name, "host")) {
            if (++h1->host_count > 1)
                status = 400;
            req->authority = value;
            /* Lowercase in place: authorities compare case-insensitively. */
            for (size_t k = 0; k < value.len; k++) {
                char *ch = (char *)value.base + k;
                if (*ch >= 'A' && *ch <= 'Z')
                    *ch = (char)(*ch + 32);
            }
            continue;
        }
        /* An h2c upgrade is refused on TLS (RFC 9113 3.2: h2c is cleartext only) and
           ignored in cleartext, where only prior knowledge is offered. */
        if (tp_str_eq(name, "upgrade") && c->tls) {
            for (size_t k = 0; k + 3 <= value.len; k++)
                if (strncasecmp(value.base + k, "h2c", 3) == 0)
                    status = 400;
        }
        r->headers[n].name = name;
        r->headers[n].value = value;
        n++;
    }
    req->headers = r->headers;
    req->nheaders = n;
    /* Origin-form only, or "*" for OPTIONS: absolute-form and authority-form targets
       are a proxy's business, and a classic smuggling surface behind a front. */
    if (req->path.len == 0 ||
        !(req->path.base[0] == '/' ||
          (req->path.len == 1 && req->path.base[0] == '*' &&
           tp_str_eq(req->method, "OPTIONS"))))
        status = 400;
    if (p->http_minor >= 1 && h1->host_count == 0)
        status = 400;
    if (p->method == HTTP_CONNECT)
        status = 400;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    req->content_length = (!chunked && p->content_length != ULLONG_MAX)
                              ? (int64_t)p->content_length
                              : -1;
    req->has_body = chunked || (req->content_length > 0);
    if (status) {
        req_free(r);
        return status;
    }
    h1->keep_alive = http_should_keep_alive(p) != 0;
    h1->cur = r;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct tp_h1 *h1 = p->data;
    h1->in_body = true;
    int status = build_request(h1);
    if (status) {
        h1->close_pending = true;
        send_error_and_close(h1, status);
        return -1; /* stop parsing: the connection is closing */
    }
    struct tp_conn *c = h1->c;
    struct h1_req *r = h1->cur;
    if (tp_server_over_budget()) {
        /* Memory budget spent: refuse before a handler takes anything on. */
        h1->close_pending = true;
        send_error_and_close(h1, 503);
        return -1;
    }
    c->nreqs++;
    r->start_ms = tp_conn_now_ms(c);
    tp_conn_set_deadline(c, r->req.has_body ? TP_DL_BODY : TP_DL_NONE);
    /* The handler is called here, inside the parser, so it is installed before any
       body byte arrives; it cannot free anything synchronously (see top comment). */
    c->server->opts.on_request(c->server->opts.arg, &r->req);
    if (!r->responded && r->req.has_body) {
        const struct tp_header *expect = tp_req_header(&r->req, "expect");
        if (expect && tp_str_caseeq(expect->value, "100-continue"))
            evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n",
                         25);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct tp_h1 *h1 = p->data;
    struct h1_req *r = h1->cur;
    if (!r)
        return 0;
    tp_conn_touch(h1->c);
    if (!r->req.handler || !r->req.handler->on_body) {
        /* Nobody reads this body: discard and credit at once. */
        r->delivered += len;
        r->consumed += len;
        return 0;
    }
    if (evbuffer_add(r->body, at, len) != 0) {
        /* Out of memory with a handler holding the request (and maybe answering it):
           no error page may follow, the connection closes. */
        torn(h1);
        return -1;
    }
    r->delivered += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct tp_h1 *h1 = p->data;
    if (h1->cur)
        h1->cur->message_complete = true;
    scan_reset(h1);
    /* One request at a time: stop here until the response has ended. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

#define TE_NO_MATCH 0xffu
#define TE_MATCHED 0xfeu

/* One step of matching "transfer-encoding:" case-insensitively from a line's start. */
static unsigned te_step(unsigned pos, char ch)
{
    static const char te[] = "transfer-encoding:";
    char lc = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    if (pos >= sizeof(te) - 1 || lc != te[pos])
        return TE_NO_MATCH;
    return pos + 1 == sizeof(te) - 1 ? TE_MATCHED : pos + 1;
}

/* Scans the bytes of a request head that libhttp-parser would tolerate and we do not.
   Returns false on bare LF, bare CR, NUL, obs-fold, or a tab anywhere in a
   Transfer-Encoding line: legal whitespace, and a classic way to make one hop see
   "chunked" where another does not (the parser strips it before we could see it).
   Stops at the end of the head. */
static bool scan_head(struct tp_h1 *h1, const char *p, size_t n)
{
    for (size_t i = 0; i < n && h1->scan_in_head; i++) {
        char ch = p[i];
        char prev = h1->scan_prev;
        h1->scan_prev = ch;
        if (ch == '\0' || (prev == '\r' && ch != '\n'))
            return false;
        if (ch == '\n') {
            if (prev != '\r')
                return false;
            if (h1->scan_cr_end)
                h1->scan_in_head = false;
            continue;
        }
        if (prev != '\n') {
            if (h1->scan_te_pos == TE_MATCHED) {
                if (ch == '\t')
                    return false;
            } else if (h1->scan_te_pos != TE_NO_MATCH) {
                h1->scan_te_pos = te_step(h1->scan_te_pos, ch);
            }
            continue;
        }
        /* At the start of a line. */
        h1->scan_te_pos = te_step(0, ch);
        if (ch == '\r') {
            /* An empty line ends the head, unless no line came yet: leading empty
               lines before a request line are tolerated (RFC 9112 2.2). */
            h1->scan_cr_end = h1->scan_have_line;
        } else if (ch == ' ' || ch == '\t') {
            return false; /* obs-fold, or whitespace before the request line */
        } else {
            h1->scan_have_line = true;
        }
    }
    return true;
}

static void scan_reset(struct tp_h1 *h1)
{
    h1->scan_in_head = true;
    h1->scan_prev = '\n';
    h1->scan_have_line = false;
    h1->scan_cr_end = false;
    h1->scan_te_pos = TE_NO_MATCH;
}

/* Delivers buffered body bytes (and the end) to the handler. */
static void deliver_body(struct h1_req *r)
{
    bool end = r->message_complete && !r->body_end_sent;
    if (evbuffer_get_length(r->body) == 0 && !end)
        return;
    if (!r->req.handler || !r->req.handler->on_body || r->ended) {
        /* Nobody reads the rest: discard it and credit it, so it keeps flowing. */
        size_t n = evbuffer_get_length(r->body);
        evbuffer_drain(r->body, n);
        r->consumed += n;
        return;
    }
    r->body_end_sent = r->message_complete;
    r->req.handler->on_body(&r->req, r->body, r->message_complete);
}

/* Reading stops while the handler has a window of body still to take (|blocked|), or
   while read_max bytes wait in the input buffer (a pipelined request behind one not yet
   answered). The second is what a libevent read high-water mark would do, but
   bufferevent_setwatermark in libevent 2.1.12 dereferences an allocation it never
   checks, so the limit is kept here: libevent reads at most 16 KiB past it. */
static void set_reading(struct tp_h1 *h1, bool blocked)
{
    struct bufferevent *bev = h1->c->bev;
    bool full = evbuffer_get_length(bufferevent_get_input(bev)) >= h1->read_max;
    if (blocked != h1->reading_blocked) {
        h1->reading_blocked = blocked;
        /* A stall on our side (backend slow to take the body) is not the client's: the
           body deadline pauses while we do not read. */
        if (h1->cur && !h1->cur->message_complete)
            tp_conn_set_deadline(h1->c, blocked ? TP_DL_NONE : TP_DL_BODY);
    } else if (full == h1->input_full) {
        return;
    }
    h1->input_full = full;
    if (blocked || full)
        bufferevent_disable(bev, EV_READ);
    else if (tp_conn_read_on(h1->c) != 0) {
        /* Without its read event the connection would sit until a deadline. */
        h1->close_pending = true;
        schedule(h1);
    }
}

/* Feeds buffered input to the parser as far as the current state allows. */
static void h1_process(struct tp_h1 *h1)
{
    struct tp_conn *c = h1->c;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    bool blocked = false;
    while (!h1->close_pending && c->phase == TP_PHASE_ACTIVE) {
        struct h1_req *r = h1->cur;
        if (r && r->message_complete)
            break; /* the next request waits for this response */
        size_t room = SIZE_MAX;
        if (r) {
            uint64_t unconsumed = r->delivered - r->consumed;
            if (unconsumed >= c->limits.stream_buffer) {
                blocked = true;
                break;
            }
            room = c->limits.stream_buffer - (size_t)unconsumed;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t len = v.iov_len < room ? v.iov_len : room;
        if (h1->scan_in_head && !scan_head(h1, v.iov_base, len)) {
            send_error_and_close(h1, 400);
            return;
        }
        size_t done = http_parser_execute(&h1->parser, &parser_settings, v.iov_base, len);
        enum http_errno err = HTTP_PARSER_ERRNO(&h1->parser);
        /* send_error_and_close leaves output queued, so the connection still exists
           here; it is in the closing phase and reads no more. */
        if (h1->close_pending || c->phase != TP_PHASE_ACTIVE)
            return;
        evbuffer_drain(in, done);
        if (err == HPE_PAUSED) {
            http_parser_pause(&h1->parser, 0);
        } else if (err != HPE_OK) {
            h1->close_pending = true;
            send_error_and_close(h1, 400);
            return;
        }
        if (h1->cur)
            deliver_body(h1->cur);
        if (done == 0)
            break;
    }
    if (h1->cur && h1->cur->ended && h1->cur->message_complete)
        schedule(h1); /* the body ended after the answer: finish the request */
    set_reading(h1, blocked);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_h1 *h1 = arg;
    struct tp_conn *c = h1->c;
    if (c->phase != TP_PHASE_ACTIVE)
        return;
    if (h1->close_pending) {
        tp_conn_close(c, TP_EV__COUNT);
        return;
    }
    struct h1_req *r = h1->cur;
    if (r && r->ended) {
        bool reuse = h1->keep_alive && r->message_complete && !c->draining;
        bool body_unread = !r->message_complete;
        finish_request(h1);
        if (!reuse) {
            tp_conn_close_after_flush(c, body_unread);
            return;
        }
        tp_conn_set_deadline(c, TP_DL_IDLE);
    }
    h1_process(h1);
}

int tp_h1_start(struct tp_conn *c)
{
    struct tp_h1 *h1 = calloc(1, sizeof(*h1));
    if (!h1)
        return TP_ERR_NOMEM;
    h1->c = c;
    h1->head_cap = c->limits.header_list_size;
    h1->fields = calloc(c->limits.header_fields, sizeof(*h1->fields));
    h1->kick = event_new(c->server->base, -1, 0, kick_cb, h1);
    if (!h1->fields || !h1->kick) {
        free(h1->fields);
        if (h1->kick)
            event_free(h1->kick);
        free(h1);
        return TP_ERR_NOMEM;
    }
    http_parser_init(&h1->parser, HTTP_REQUEST);
    h1->parser.data = h1;
    scan_reset(h1);
    c->p.h1 = h1;
    /* A response past this many queued bytes pauses its producer; the write callback
       fires once half of it has drained. */
    bufferevent_setwatermark(c->bev, EV_WRITE, c->limits.stream_buffer / 2, 0);
    /* The input buffer holds at most one request head or one window of body (see
       set_reading). */
    h1->read_max = (c->limits.header_list_size > c->limits.stream_buffer
                        ? c->limits.header_list_size
                        : c->limits.stream_buffer) +
                   16384;
    tp_conn_set_deadline(c, c->nreqs ? TP_DL_IDLE : TP_DL_HEADER);
    return 0;
}

void tp_h1_on_read(struct tp_conn *c)
{
    h1_process(c->p.h1);
}

void tp_h1_on_write(struct tp_conn *c)
{
    struct tp_h1 *h1 = c->p.h1;
    struct h1_req *r = h1->cur;
    if (r && r->want_writable && below_mark(h1)) {
        r->want_writable = false;
        if (r->req.handler && r->req.handler->on_writable)
            r->req.handler->on_writable(&r->req);
    }
}

void tp_h1_on_deadline(struct tp_conn *c)
{
    static const enum tp_server_event ev[] = {
        [TP_DL_NONE] = TP_EV_IDLE_TIMEOUT,     [TP_DL_HANDSHAKE] = TP_EV_HEADER_TIMEOUT,
        [TP_DL_IDLE] = TP_EV_IDLE_TIMEOUT,     [TP_DL_HEADER] = TP_EV_HEADER_TIMEOUT,
        [TP_DL_BODY] = TP_EV_BODY_TIMEOUT,
    };
    tp_conn_close(c, ev[c->deadline]);
}

void tp_h1_expire(struct tp_conn *c, uint64_t now_ms)
{
    struct h1_req *r = c->p.h1->cur;
    if (!r)
        return;
    const struct tp_server_limits *l = &c->limits;
    uint64_t age = now_ms - r->start_ms;
    /* As on HTTP/2: a body that fits one window must be complete body_timeout after
       the head, however it trickles; a stall on our side does not count. */
    if (r->req.has_body && !r->message_complete && !c->p.h1->reading_blocked &&
        r->delivered < l->stream_buffer && age >= l->body_timeout_ms)
        tp_conn_close(c, TP_EV_BODY_TIMEOUT);
    else if (age >= l->stream_timeout_ms)
        tp_conn_close(c, TP_EV_STREAM_TIMEOUT);
}

void tp_h1_drain(struct tp_conn *c, bool final)
{
    struct tp_h1 *h1 = c->p.h1;
    h1->keep_alive = false;
    /* An idle connection is closed only at the final step, a second on: a request
       already on its way (on a new connection, or on a kept-alive one) is served with
       Connection: close instead of meeting a close it would have to resend. */
    if (final && !h1->cur && c->phase == TP_PHASE_ACTIVE)
        tp_conn_close(c, TP_EV__COUNT);
}

void tp_h1_free(struct tp_conn *c)
{
    struct tp_h1 *h1 = c->p.h1;
    if (!h1)
        return;
    finish_request(h1);
    event_free(h1->kick);
    free(h1->head);
    free(h1->fields);
    free(h1);
    c->p.h1 = NULL;
}
