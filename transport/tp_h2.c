/* The HTTP/2 server side, on nghttp2.

   Shape follows nghttp2's libevent server example: the session reads from the
   bufferevent's input with nghttp2_session_mem_recv and writes frames into its output
   with nghttp2_session_mem_send. Response bodies leave through NO_COPY data providers:
   send_data moves evbuffer chains from the stream's queue to the socket's queue
   without copying. Request bodies are credited to the client only when the handler has
   passed them on (nghttp2_session_consume), so a slow backend slows the client instead
   of filling memory.

   Handlers may call tp_req_* from anywhere, including nghttp2 callbacks: those calls
   only submit frames and schedule the connection's "kick", which sends on the next loop
   turn. Streams die only in on_stream_close (or when the session is freed).

   Two per-connection budgets sit beside nghttp2's own limits (SETTINGS, outbound ACK,
   CONTINUATION count, incoming RST_STREAM rate): one for "glitches", frames an honest
   peer has little reason to send (invalid frames, PRIORITY, empty DATA without
   END_STREAM, empty CONTINUATION, unknown frame types), and one for the resets the
   peer provokes us into sending ("MadeYouReset"). Both are token buckets with the
   reset budget's burst and rate; an empty one ends the connection with
   GOAWAY(ENHANCE_YOUR_CALM). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "tp_conn_internal.h"
#include "tp_err.h"
#include "tp_mem.h"
#include "tp_req.h"

/* Connection-level receive window: bounds request-body bytes held for all streams. */
#define CONN_WINDOW (1024 * 1024)

struct field {
    uint32_t name_off, name_len, value_off, value_len;
};

enum pseudo { PS_METHOD, PS_SCHEME, PS_AUTHORITY, PS_PATH, PS_HOST, PS__COUNT };

struct h2_stream {
    struct tp_req req; /* first: tp_req pointers convert to h2_stream */
    struct tp_h2 *h2;
    int32_t id;
    /* The header block: names and values in one growable buffer, by offset. */
    char *hbuf;
    size_t hlen, halloc, hsize;
    struct field *fields;
    unsigned nfields, fields_alloc;
    struct field pseudo[PS__COUNT];
    bool have_pseudo[PS__COUNT];
    bool too_large;
    struct tp_header *headers;
    /* Request body. */
    struct evbuffer *body;
    uint64_t delivered;
    bool body_complete;  /* END_STREAM received */
    bool body_end_sent;  /* handler was told */
    /* Response. */
    struct evbuffer *out;
    bool dispatched, responded, ended, head_only, deferred, want_writable, notify;
    int64_t remaining;
    uint64_t start_ms; /* head began: stream_timeout and the small-body deadline */
    bool expired;      /* reset by tp_h2_expire */
    bool lost;         /* response bytes that could not be queued (out of memory) */
    TAILQ_ENTRY(h2_stream) link;
    struct h2_stream *next_spare;
};

/* Closed streams are kept per worker, with their two buffers and the header storage
   they grew, up to this many: a request then allocates none of them. Header storage
   past the bounds below is given back rather than kept. Under AddressSanitizer a kept
   stream is poisoned until it is reused, so a stale pointer to it is still caught. */
#define SPARE_MAX 128
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_ASAN 1
#endif
#endif
#ifdef SPARE_ASAN
#include <sanitizer/asan_interface.h>
#define SPARE_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SPARE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SPARE_POISON(p, n) ((void)(p), (void)(n))
#define SPARE_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#define SPARE_HBUF_MAX 4096
#define SPARE_FIELDS_MAX 64

/* A token bucket in thousandths of a token, refilled from the connection's clock. */
struct budget {
    uint64_t milli;
    uint64_t stamp_ms;
};

struct tp_h2 {
    struct tp_conn *c;
    nghttp2_session *session;
    struct event *kick;
    TAILQ_HEAD(, h2_stream) streams;
    unsigned nstreams;
    bool got_settings;
    bool in_header_block;
    bool goaway_final;
    bool calm;               /* a budget ran out: GOAWAY(ENHANCE_YOUR_CALM) queued */
    bool goaway_error;       /* a GOAWAY with an error code went out */
    struct budget glitches;  /* frames an honest peer has little reason to send */
    struct budget resets;    /* RST_STREAM we were made to send */
    unsigned own_refusals;   /* REFUSED_STREAM we queued for our own reasons */
    struct evbuffer *sink; /* where frames go during h2_flush */
    /* The session's allocator: frame buffer and stream table go back while idle. */
    struct tp_mem mem;
    bool ob_idle;  /* nghttp2_session_mem_send last returned 0 */
    bool ob_dirty; /* frames were built since the last trim */
};

static const struct tp_req_ops h2_ops;

static void schedule(struct tp_h2 *h2)
{
    event_active(h2->kick, EV_TIMEOUT, 1);
}

static void update_deadline(struct tp_h2 *h2)
{
    struct tp_conn *c = h2->c;
    if (!h2->got_settings || h2->in_header_block) {
        if (c->deadline != TP_DL_HEADER)
            tp_conn_set_deadline(c, TP_DL_HEADER);
    } else if (h2->nstreams == 0) {
        if (c->deadline != TP_DL_IDLE)
            tp_conn_set_deadline(c, TP_DL_IDLE);
    } else if (c->deadline != TP_DL_NONE) {
        tp_conn_set_deadline(c, TP_DL_NONE);
    }
}

/* -------------------------------------------------------------------- budgets --- */

static void budget_init(struct budget *b, const struct tp_server_limits *l, uint64_t now)
{
    b->milli = (uint64_t)l->stream_reset_burst * 1000;
    b->stamp_ms = now;
}

/* Takes one token; false when the bucket is empty. */
static bool budget_take(struct budget *b, const struct tp_server_limits *l, uint64_t now)
{
    uint64_t cap = (uint64_t)l->stream_reset_burst * 1000;
    if (now > b->stamp_ms) {
        /* ms times tokens per second is thousandths of a token. */
        b->milli += (now - b->stamp_ms) * l->stream_reset_rate;
        if (b->milli > cap)
            b->milli = cap;
        b->stamp_ms = now;
    }
    if (b->milli < 1000)
        return false;
    b->milli -= 1000;
    return true;
}

/* Spends one token of |b|; an empty bucket queues GOAWAY(ENHANCE_YOUR_CALM) naming the
   last stream processed, and tp_h2_on_read stops reading and closes after the flush. */
static void spend(struct tp_h2 *h2, struct budget *b)
{
    struct tp_conn *c = h2->c;
    if (h2->calm || c->limits.stream_reset_burst == 0 ||
        budget_take(b, &c->limits, tp_conn_now_ms(c)))
        return;
    h2->calm = true;
    tp_conn_event(c, TP_EV_FLOOD);
    nghttp2_session_terminate_session(h2->session, NGHTTP2_ENHANCE_YOUR_CALM);
    schedule(h2);
}

/* -------------------------------------------------------------------- streams --- */

static void stream_release(struct h2_stream *s)
{
    /* stream_new may fail half-way: evbuffer_free does not take NULL */
    if (s->body)
        evbuffer_free(s->body);
    if (s->out)
        evbuffer_free(s->out);
    free(s->hbuf);
    free(s->fields);
    free(s->headers);
    free(s);
}

static void stream_free(struct h2_stream *s)
{
    struct tp_server *srv = s->h2->c->server;
    tp_conn_budget_untrack(s->h2->c, s->body);
    tp_conn_budget_untrack(s->h2->c, s->out);
    if (!s->body || !s->out || srv->h2_nspare >= SPARE_MAX) {
        stream_release(s);
        return;
    }
    /* Drained buffers hold no chains; nothing else is attached to them once the
       budget callbacks are off. */
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    evbuffer_drain(s->out, evbuffer_get_length(s->out));
    free(s->headers);
    s->headers = NULL;
    if (s->halloc > SPARE_HBUF_MAX) {
        free(s->hbuf);
        s->hbuf = NULL;
        s->halloc = 0;
    }
    if (s->fields_alloc > SPARE_FIELDS_MAX) {
        free(s->fields);
        s->fields = NULL;
        s->fields_alloc = 0;
    }
    s->next_spare = srv->h2_spare;
    srv->h2_spare = s;
    srv->h2_nspare++;
    SPARE_POISON(s, offsetof(struct h2_stream, next_spare));
}

/* A spare stream with everything but its buffers reset, or a new one. */
static struct h2_stream *stream_alloc(struct tp_server *srv)
{
    struct h2_stream *s = srv->h2_spare;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return NULL;
        s->body = evbuffer_new();
        s->out = evbuffer_new();
        if (!s->body || !s->out) {
            stream_release(s);
            return NULL;
        }
        return s;
    }
    srv->h2_spare = s->next_spare;
    srv->h2_nspare--;
    SPARE_UNPOISON(s, offsetof(struct h2_stream, next_spare));
    struct h2_stream keep = *s;
    memset(s, 0, sizeof(*s));
    s->body = keep.body;
    s->out = keep.out;
    s->hbuf = keep.hbuf;
    s->halloc = keep.halloc;
    s->fields = keep.fields;
    s->fields_alloc = keep.fields_alloc;
    return s;
}

static struct h2_stream *stream_new(struct tp_h2 *h2, int32_t id)
{
    struct h2_stream *s = stream_alloc(h2->c->server);
    if (!s)
        return NULL;
    s->h2 = h2;
    s->id = id;
    s->remaining = -1;
    tp_conn_budget_track(h2->c, s->body);
    tp_conn_budget_track(h2->c, s->out);
    s->req.ops = &h2_ops;
    s->req.version = TP_HTTP_2;
    s->req.tls = h2->c->tls;
    s->req.conn_serial = h2->c->serial;
    s->req.content_length = -1;
    s->start_ms = tp_conn_now_ms(h2->c);
    TAILQ_INSERT_TAIL(&h2->streams, s, link);
    h2->nstreams++;
    return s;
}

/* Tells the handler the client is gone, unless it has nothing left to hear. */
static void stream_abort(struct h2_stream *s)
{
    const struct tp_req_handler *h = s->req.handler;
    if (!s->dispatched || !h || !h->on_abort)
        return;
    bool body_pending = h->on_body && !s->body_end_sent;
    if (!s->ended || body_pending)
        h->on_abort(&s->req);
}

static void stream_close(struct tp_h2 *h2, struct h2_stream *s)
{
    TAILQ_REMOVE(&h2->streams, s, link);
    h2->nstreams--;
    stream_abort(s);
    stream_free(s);
}

static int append(struct h2_stream *s, const uint8_t *p, size_t len, struct tp_h2 *h2,
                  uint32_t *off)
{
    if (s->hlen + len > s->halloc) {
        size_t n = s->halloc ? s->halloc : 512;
        while (n < s->hlen + len)
            n *= 2;
        char *nb = realloc(s->hbuf, n);
        if (!nb)
            return -1;
        s->hbuf = nb;
        s->halloc = n;
    }
    memcpy(s->hbuf + s->hlen, p, len);
    *off = (uint32_t)s->hlen;
    s->hlen += len;
    return 0;
}

/* --------------------------------------------------------------- tp_req ops --- */

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *flags, nghttp2_data_source *src,
                            void *user_data)
{
    struct h2_stream *s = src->ptr;
    size_t avail = evbuffer_get_length(s->out);
    size_t n = avail < length ? avail : length;
    if (n == 0 && !s->ended) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->ended && n == avail)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void kick_data(struct h2_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->h2->session, s->id);
    }
    schedule(s->h2);
}

static bool status_has_body(int status)
{
    return !(status / 100 == 1 || status == 204 || status == 304);
}

/* Fields h2_respond writes itself, or that HTTP/2 forbids: by length first, since this
   runs for every field of every response (names are lowercase by now). */
static bool respond_drops(struct tp_str name)
{
    if (name.len == 0)
        return false;
    if (name.base[0] == ':')
        return true;
    switch (name.len) {
    case 4: return memcmp(name.base, "date", 4) == 0;
    case 6: return memcmp(name.base, "server", 6) == 0;
    case 14:
        return memcmp(name.base, "content-length", 14) == 0 || tp_http_hop_by_hop(name);
    default: return tp_http_hop_by_hop(name);
    }
}

/* Writes |v| in decimal into the 20 bytes before |end|, right-aligned; returns where
   the digits start. No snprintf: this runs once per response. */
static char *u64_digits(uint64_t v, char *end)
{
    char *p = end;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    return p;
}

/* The header block of most responses fits here, saving an allocation per response. */
#define RESPOND_NV_STACK 24

static int h2_respond(struct tp_req *req, int status, const struct tp_header *hs, size_t n,
                      int64_t content_length, bool end)
{
    struct h2_stream *s = (struct h2_stream *)req;
    struct tp_h2 *h2 = s->h2;
    struct tp_conn *c = h2->c;
    if (s->responded || status < 200 || status > 999)
        return TP_ERR_STATE;
    nghttp2_nv stack_nva[RESPOND_NV_STACK];
    nghttp2_nv *nva = stack_nva;
    if (n > RESPOND_NV_STACK - 4) {
        nva = n < SIZE_MAX / sizeof(*nva) - 4 ? calloc(n + 4, sizeof(*nva)) : NULL;
        if (!nva)
            return TP_ERR_NOMEM;
    }
    char st[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                  (char)('0' + status % 10)};
    char cl[20];
    size_t k = 0;
#define NV(N, NL, V, VL) nva[k++] = (nghttp2_nv){(uint8_t *)(N), (uint8_t *)(V), NL, VL, 0}
    NV(":status", 7, st, 3);
    const char *server = c->server->opts.server_header;
    if (server)
        NV("server", 6, server, strlen(server));
    NV("date", 4, tp_server_date(c->server), TP_HTTP_DATE_LEN);
    for (size_t i = 0; i < n; i++) {
        struct tp_str name = hs[i].name;
        if (respond_drops(name))
            continue;
        NV(name.base, name.len, hs[i].value.base, hs[i].value.len);
    }
    if (content_length >= 0 && (status_has_body(status) || status == 304)) {
        char *d = u64_digits((uint64_t)content_length, cl + sizeof(cl));
        NV("content-length", 14, d, (size_t)(cl + sizeof(cl) - d));
    }
#undef NV
    s->responded = true;
    s->head_only = end || !status_has_body(status) || tp_str_eq(req->method, "HEAD");
    s->remaining = s->head_only ? 0 : content_length;
    if (s->head_only)
        s->ended = true;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read_cb};
    int rv = nghttp2_submit_response(h2->session, s->id, nva, k, s->head_only ? NULL : &prd);
    if (nva != stack_nva)
        free(nva);
    if (rv != 0)
        return TP_ERR_STATE;
    schedule(h2);
    return 0;
}

static bool h2_write_common(struct h2_stream *s, size_t len, struct evbuffer *data,
                            const void *ref)
{
    if (!s->responded || s->ended || len == 0) {
        if (data)
            evbuffer_drain(data, evbuffer_get_length(data));
        return true;
    }
    if (s->remaining >= 0) {
        if ((uint64_t)s->remaining < len)
            len = (size_t)s->remaining; /* never more than announced */
        s->remaining -= (int64_t)len;
    }
    if (data) {
        evbuffer_remove_buffer(data, s->out, len);
        evbuffer_drain(data, evbuffer_get_length(data));
    } else {
        evbuffer_add_reference(s->out, ref, len, NULL, NULL);
    }
    kick_data(s);
    if (evbuffer_get_length(s->out) < s->h2->c->limits.stream_buffer)
        return true;
    s->want_writable = true;
    return false;
}

static bool h2_write(struct tp_req *req, struct evbuffer *data)
{
    return h2_write_common((struct h2_stream *)req, evbuffer_get_length(data), data, NULL);
}

static bool h2_write_ref(struct tp_req *req, const void *p, size_t len)
{
    return h2_write_common((struct h2_stream *)req, len, NULL, p);
}

static void h2_end(struct tp_req *req)
{
    struct h2_stream *s = (struct h2_stream *)req;
    if (s->ended)
        return;
    s->ended = true;
    if (s->remaining > 0) {
        /* Shorter than announced: the client must not take it for complete. */
        nghttp2_submit_rst_stream(s->h2->session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
        s->req.handler = NULL;
    }
    kick_data(s);
}

static void h2_reset(struct tp_req *req)
{
    struct h2_stream *s = (struct h2_stream *)req;
    s->ended = true;
    s->req.handler = NULL; /* no on_abort after the handler's own reset */
    nghttp2_submit_rst_stream(s->h2->session, NGHTTP2_FLAG_NONE, s->id,
                              NGHTTP2_INTERNAL_ERROR);
    schedule(s->h2);
}

static void h2_consume(struct tp_req *req, size_t n)
{
    struct h2_stream *s = (struct h2_stream *)req;
    nghttp2_session_consume(s->h2->session, s->id, n);
    schedule(s->h2);
}

static size_t h2_pending(const struct tp_req *req)
{
    return evbuffer_get_length(((const struct h2_stream *)req)->out);
}

static void h2_set_close(struct tp_req *req)
{
}

static const struct tp_req_ops h2_ops = {
    .respond = h2_respond,
    .write = h2_write,
    .write_ref = h2_write_ref,
    .end = h2_end,
    .reset = h2_reset,
    .consume = h2_consume,
    .pending = h2_pending,
    .set_close = h2_set_close,
};

/* ----------------------------------------------------------- nghttp2 callbacks --- */

static struct h2_stream *get_stream(struct tp_h2 *h2, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h2->session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    struct tp_h2 *h2 = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST ||
        h2->calm)
        return 0;
    h2->in_header_block = true;
    update_deadline(h2);
    struct tp_conn *c = h2->c;
    if (c->nreqs >= c->limits.max_requests_per_conn) {
        /* Past the cap the GOAWAY below declared this stream unprocessed, so the client
           may resend it elsewhere: it must not be served here too. Streams that arrive
           before the GOAWAY has left are refused, never dispatched. */
        h2->own_refusals++;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    if (tp_server_over_budget()) {
        /* Memory budget spent: refused streams are safe for the client to retry. */
        tp_conn_event(c, TP_EV_OVER_BUDGET);
        h2->own_refusals++;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    struct h2_stream *s = stream_new(h2, frame->hd.stream_id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    if (++c->nreqs == c->limits.max_requests_per_conn)
        /* Enough requests on one connection: finish this one, take no more. */
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_NO_ERROR, NULL, 0);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    struct tp_h2 *h2 = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are not passed on */
    struct h2_stream *s = get_stream(h2, frame->hd.stream_id);
    if (!s)
        return 0;
    struct tp_conn *c = h2->c;
    /* RFC 9113 6.5.2 accounting: name + value + 32 per field. Past the cap the block
       is still decoded (HPACK state must stay in step) but nothing more is kept. */
    s->hsize += namelen + valuelen + 32;
    if (s->hsize > c->limits.header_list_size || s->nfields >= c->limits.header_fields) {
        if (!s->too_large)
            spend(h2, &h2->glitches);
        s->too_large = true;
        /* Far past the cap (an HPACK bomb: one big table entry referenced thousands of
           times) the stream is reset instead of answered, so nghttp2 stops handing
           over, and checking, the fields of the rest of the block. */
        if (s->hsize > 4 * c->limits.header_list_size)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    struct field f = {0};
    f.name_len = (uint32_t)namelen;
    f.value_len = (uint32_t)valuelen;
    if (append(s, name, namelen, h2, &f.name_off) != 0 ||
        append(s, value, valuelen, h2, &f.value_off) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (namelen > 0 && name[0] == ':') {
        /* nghttp2 has checked that pseudo-fields are known, single and first. */
        int ps = -1;
        if (namelen == 7 && memcmp(name, ":method", 7) == 0)
            ps = PS_METHOD;
        else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
            ps = PS_SCHEME;
        else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
            ps = PS_AUTHORITY;
        else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
            ps = PS_PATH;
        if (ps >= 0) {
            s->pseudo[ps] = f;
            s->have_pseudo[ps] = true;
        }
        return 0;
    }
    if (namelen == 4 && memcmp(name, "host", 4) == 0 && !s->have_pseudo[PS_HOST]) {
        s->pseudo[PS_HOST] = f;
        s->have_pseudo[PS_HOST] = true;
        return 0;
    }
    if (s->nfields == s->fields_alloc) {
        unsigned n = s->fields_alloc ? s->fields_alloc * 2 : 16;
        struct field *nf = realloc(s->fields, n * sizeof(*nf));
        if (!nf)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        s->fields = nf;
        s->fields_alloc = n;
    }
    s->fields[s->nfields++] = f;
    return 0;
}

static struct tp_str fstr(struct h2_stream *s, uint32_t off, uint32_t len)
{
    return (struct tp_str){s->hbuf + off, len};
}

static void respond_error(struct h2_stream *s, int status)
{
    char body[256];
    size_t n = tp_http_error_page(status, body, sizeof(body));
    struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("text/html")};
    s->dispatched = true;
    if (h2_respond(&s->req, status, &ct, 1, (int64_t)n, false) == 0) {
        /* The page lives on this call's stack: copy it into the queue. */
        evbuffer_add(s->out, body, n);
        s->remaining = 0;
        h2_end(&s->req);
    }
}

static bool field_is(struct h2_stream *s, const struct field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && memcmp(s->hbuf + f->name_off, name, n) == 0;
}

/* HTTP/2 may split Cookie into crumbs; an HTTP/1.1 backend must get them joined with
   "; " into one field (RFC 9113 8.2.3). The joined value goes at the end of hbuf and
   replaces the first crumb; the others are marked empty. */
static int join_cookies(struct h2_stream *s)
{
    unsigned count = 0;
    size_t len = 0;
    for (unsigned i = 0; i < s->nfields; i++)
        if (field_is(s, &s->fields[i], "cookie")) {
            count++;
            len += s->fields[i].value_len + 2;
        }
    if (count < 2)
        return 0;
    uint8_t *joined = malloc(len);
    if (!joined)
        return -1;
    size_t o = 0;
    struct field *first = NULL;
    for (unsigned i = 0; i < s->nfields; i++) {
        struct field *f = &s->fields[i];
        if (!field_is(s, f, "cookie"))
            continue;
        if (o) {
            joined[o++] = ';';
            joined[o++] = ' ';
        }
        memcpy(joined + o, s->hbuf + f->value_off, f->value_len);
        o += f->value_len;
        if (!first)
            first = f;
        else
            f->name_len = 0;
    }
    uint32_t off;
    int rv = append(s, joined, o, s->h2, &off);
    free(joined);
    if (rv != 0)
        return -1;
    first->value_off = off;
    first->value_len = (uint32_t)o;
    return 0;
}

static void dispatch(struct tp_h2 *h2, struct h2_stream *s)
{
    struct tp_conn *c = h2->c;
    if (s->too_large) {
        respond_error(s, 431);
        return;
    }
    s->headers = calloc(s->nfields ? s->nfields : 1, sizeof(*s->headers));
    if (!s->headers || join_cookies(s) != 0) {
        nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* Pointers into hbuf are taken only now: nothing is appended after this. */
    size_t n = 0;
    for (unsigned i = 0; i < s->nfields; i++) {
        if (s->fields[i].name_len == 0)
            continue; /* a cookie crumb merged into the first */
        s->headers[n].name = fstr(s, s->fields[i].name_off, s->fields[i].name_len);
        s->headers[n].value = fstr(s, s->fields[i].value_off, s->fields[i].value_len);
        n++;
    }
    struct tp_req *req = &s->req;
    req->headers = s->headers;
    req->nheaders = n;
    struct field *f = s->pseudo;
    req->method = fstr(s, f[PS_METHOD].value_off, f[PS_METHOD].value_len);
    req->scheme = fstr(s, f[PS_SCHEME].value_off, f[PS_SCHEME].value_len);
    req->path = fstr(s, f[PS_PATH].value_off, f[PS_PATH].value_len);
    int a = s->have_pseudo[PS_AUTHORITY] ? PS_AUTHORITY : PS_HOST;
    if (s->have_pseudo[a]) {
        req->authority = fstr(s, f[a].value_off, f[a].value_len);
        for (size_t k = 0; k < req->authority.len; k++) {
            char *ch = s->hbuf + f[a].value_off + k;
            if (*ch >= 'A' && *ch <= 'Z')
                *ch = (char)(*ch + 32);
        }
    }
    int64_t cl = -1;
    const struct tp_header *clh = tp_req_header(req, "content-length");
    if (clh) {
        /* nghttp2 has validated it against the DATA it will accept. */
        cl = 0;
        for (size_t k = 0; k < clh->value.len; k++)
            cl = cl * 10 + (clh->value.base[k] - '0');
    }
    req->content_length = cl;
    req->has_body = !s->body_complete && cl != 0;
    /* A request whose path is not origin-form (CONNECT, "*" outside OPTIONS) gets 400
       as from an ordinary server; nghttp2 already refused malformed ones. */
    if (req->path.len == 0 || (req->path.base[0] != '/' && !tp_str_eq(req->path, "*")) ||
        tp_str_eq(req->method, "CONNECT")) {
        respond_error(s, 400);
        return;
    }
    s->dispatched = true;
    c->server->opts.on_request(c->server->opts.arg, req);
}

static void deliver_body(struct tp_h2 *h2, struct h2_stream *s)
{
    const struct tp_req_handler *h = s->req.handler;
    bool end = s->body_complete && !s->body_end_sent;
    size_t len = evbuffer_get_length(s->body);
    if (len == 0 && !end)
        return;
    if (!s->dispatched || !h || !h->on_body || s->ended) {
        /* Nobody reads this body: discard and credit at once. */
        if (len) {
            evbuffer_drain(s->body, len);
            nghttp2_session_consume(h2->session, s->id, len);
        }
        s->body_end_sent = s->body_complete;
        return;
    }
    s->body_end_sent = s->body_complete;
    h->on_body(&s->req, s->body, s->body_complete);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    struct tp_h2 *h2 = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        h2->got_settings = true;
        update_deadline(h2);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    bool request_head =
        frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST;
    if (request_head) {
        h2->in_header_block = false;
        update_deadline(h2);
    }
    struct h2_stream *s = get_stream(h2, frame->hd.stream_id);
    if (!s)
        return 0; /* refused past the cap, or already closed */
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        s->body_complete = true;
    if (request_head)
        dispatch(h2, s);
    if (s->dispatched)
        deliver_body(h2, s);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct tp_h2 *h2 = user_data;
    struct h2_stream *s = get_stream(h2, stream_id);
    if (!s || !s->dispatched || s->ended || !s->req.handler || !s->req.handler->on_body) {
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (evbuffer_add(s->body, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->delivered += len;
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    struct tp_h2 *h2 = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        h2->goaway_error = true;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        /* Resets answering the peer's protocol errors (flow control, frames on a closed
           stream, streams beyond the limit) are ones it can provoke at will. Those for
           our own reasons (a failed backend, an early response, the per-connection
           cap, the memory budget) are not counted: an honest connection must not pay
           for them. */
        uint32_t e = frame->rst_stream.error_code;
        if (e == NGHTTP2_REFUSED_STREAM && h2->own_refusals > 0)
            h2->own_refusals--;
        else if (e != NGHTTP2_NO_ERROR && e != NGHTTP2_INTERNAL_ERROR &&
                 e != NGHTTP2_CANCEL)
            spend(h2, &h2->resets);
        return 0;
    }
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *s = get_stream(h2, frame->hd.stream_id);
    /* The response is complete but the request body is not: tell the client to stop
       sending (RFC 9113 8.1). */
    if (s && !s->body_complete)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    return 0;
}

/* Frame headers, before their payload: the glitches nghttp2 accepts quietly. */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd,
                          void *user_data)
{
    struct tp_h2 *h2 = user_data;
    bool glitch;
    switch (hd->type) {
    case NGHTTP2_DATA:
        glitch = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
        break;
    case NGHTTP2_CONTINUATION:
        glitch = hd->length == 0;
        break;
    case NGHTTP2_PRIORITY:
        /* We announce SETTINGS_NO_RFC7540_PRIORITIES: these only cost us work. */
        glitch = true;
        break;
    default:
        /* Other extension types reach here because start() registers them. */
        glitch = hd->type > NGHTTP2_CONTINUATION;
        break;
    }
    if (glitch)
        spend(h2, &h2->glitches);
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame,
                            int lib_error_code, void *user_data)
{
    struct tp_h2 *h2 = user_data;
    /* WINDOW_UPDATE of 0, window overflow, a stream depending on itself, ... */
    spend(h2, &h2->glitches);
    return 0;
}

/* Unknown frame types are registered as extensions only so that on_begin_frame sees
   them; their payloads are dropped. */
static int on_extension_chunk(nghttp2_session *session, const nghttp2_frame_hd *hd,
                              const uint8_t *data, size_t len, void *user_data)
{
    return 0;
}

static int unpack_extension(nghttp2_session *session, void **payload,
                            const nghttp2_frame_hd *hd, void *user_data)
{
    return NGHTTP2_ERR_CANCEL;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct tp_h2 *h2 = user_data;
    struct h2_stream *s = get_stream(h2, stream_id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_close(h2, s);
    update_deadline(h2);
    return 0;
}

static int send_data(nghttp2_session *session, nghttp2_frame *frame,
                     const uint8_t *framehd, size_t length, nghttp2_data_source *src,
                     void *user_data)
{
    struct tp_h2 *h2 = user_data;
    struct h2_stream *s = src->ptr;
    struct evbuffer *out = h2->sink;
    if (evbuffer_add(out, framehd, 9) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t padlen = frame->data.padlen;
    if (padlen > 0) {
        uint8_t pl = (uint8_t)(padlen - 1);
        evbuffer_add(out, &pl, 1);
    }
    if (evbuffer_remove_buffer(s->out, out, length) != (int)length)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (padlen > 1) {
        static const uint8_t zeros[256];
        evbuffer_add(out, zeros, padlen - 1);
    }
    if (s->want_writable && evbuffer_get_length(s->out) < h2->c->limits.stream_buffer / 2)
        s->notify = true;
    return 0;
}

/* Pads DATA frames so the network sees lengths in steps of h2_data_padding rather
   than exact sizes (RFC 9113 6.1; nghttp2 writes the Pad Length field itself). */
static ssize_t select_padding(nghttp2_session *session, const nghttp2_frame *frame,
                              size_t max_payloadlen, void *user_data)
{
    struct tp_h2 *h2 = user_data;
    size_t block = h2->c->limits.h2_data_padding;
    size_t len = frame->hd.length;
    if (block == 0 || frame->hd.type != NGHTTP2_DATA || len == 0)
        return (ssize_t)len;
    size_t padded = (len + block - 1) / block * block;
    if (padded <= max_payloadlen)
        return (ssize_t)padded;
    /* The flow-control window or the frame size caps this frame: fill it, which is
       itself block-aligned whenever the peer's windows are. */
    return (ssize_t)max_payloadlen;
}

/* ------------------------------------------------------------------- I/O glue --- */

/* The largest TLS record payload. */
#define TLS_RECORD 16384

/* Moves |stage| to |out| in contiguous pieces of up to one TLS record. libevent's TLS
   bufferevent calls SSL_write once per evbuffer chain, and each call is one record and
   one write(2): frames built one at a time (a HEADERS, a DATA frame header, a body
   chain) would otherwise leave as three records and three system calls. Copying a few
   KiB costs far less than a record and a system call. */
static int move_in_records(struct evbuffer *stage, struct evbuffer *out)
{
    size_t len;
    while ((len = evbuffer_get_length(stage)) > 0) {
        size_t want = len < TLS_RECORD ? len : TLS_RECORD;
        struct evbuffer_iovec v;
        if (evbuffer_peek(stage, -1, NULL, &v, 1) < 1)
            return -1;
        if (v.iov_len == want) {
            /* Already exactly one piece: moved, not copied. (A larger chain is
               copied: moving it would make SSL_write cut a short record after each
               16 KiB.) */
            if (evbuffer_remove_buffer(stage, out, want) != (int)want)
                return -1;
            continue;
        }
        if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) != 1 || v.iov_len < want)
            return -1;
        if (evbuffer_remove(stage, v.iov_base, want) != (int)want)
            return -1;
        v.iov_len = want;
        if (evbuffer_commit_space(out, &v, 1) != 0)
            return -1;
    }
    return 0;
}

/* Sends what the session has to send, within the connection's output cap. Returns
   false if the connection was freed. */
static bool h2_flush(struct tp_h2 *h2)
{
    struct tp_conn *c = h2->c;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* TLS: frames gather in the worker's staging buffer (empty between calls) and
       leave in whole records. Cleartext: writev already takes every chain at once. */
    struct evbuffer *stage = out;
    /* The staging buffer is the worker's: a flush of another connection nested in
       this one (none is known to happen) writes straight to its own output. */
    if (c->tls && !c->server->h2_stage_busy) {
        if (!c->server->h2_stage)
            c->server->h2_stage = evbuffer_new();
        stage = c->server->h2_stage;
        if (!stage) {
            tp_conn_close(c, TP_EV_NOMEM);
            return false;
        }
        c->server->h2_stage_busy = true;
    }
    h2->sink = stage;
    size_t queued = stage == out ? 0 : evbuffer_get_length(out);
    bool fail = false;
    enum tp_server_event why = TP_EV_NOMEM;
    while (queued + evbuffer_get_length(stage) < c->limits.output_buffer) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2->session, &data);
        if (n < 0) {
            fail = true;
            why = TP_EV_PROTOCOL_ERROR;
            break;
        }
        if (n == 0) {
            h2->ob_idle = true;
            break;
        }
        h2->ob_idle = false;
        h2->ob_dirty = true;
        /* An RST_STREAM starts a record of its own. A client that reads record by
           record (libcurl 7.88 over OpenSSL) then finishes the response before it
           sees the reset that follows it (the NO_ERROR one of on_frame_send): in the
           same record, libcurl fails a complete response whose upload was cut. */
        if (stage != out && n >= 9 && data[3] == NGHTTP2_RST_STREAM &&
            evbuffer_get_length(stage) > 0 && move_in_records(stage, out) != 0) {
            fail = true;
            break;
        }
        if (evbuffer_add(stage, data, (size_t)n) != 0) {
            fail = true;
            break;
        }
    }
    if (!fail && stage != out && move_in_records(stage, out) != 0)
        fail = true;
    if (stage != out) {
        evbuffer_drain(stage, evbuffer_get_length(stage));
        c->server->h2_stage_busy = false;
    }
    if (fail) {
        tp_conn_close(c, why);
        return false;
    }
    /* Streams whose queue drained get on_writable; handlers only queue and schedule,
       so nothing here can free the connection. */
    struct h2_stream *s;
    TAILQ_FOREACH(s, &h2->streams, link)
    {
        if (s->notify) {
            s->notify = false;
            s->want_writable = false;
            if (s->req.handler && s->req.handler->on_writable)
                s->req.handler->on_writable(&s->req);
        }
    }
    if (!nghttp2_session_want_read(h2->session) && !nghttp2_session_want_write(h2->session)) {
        /* After an error GOAWAY the peer is likely still sending: closing with its
           bytes unread would reset the connection and could destroy the GOAWAY. */
        tp_conn_close_after_flush(c, h2->goaway_error);
        return true;
    }
    /* A peer that does not read stops being read: floods of PING or SETTINGS cannot
       grow our output without bound. */
    if (evbuffer_get_length(out) >= c->limits.output_buffer)
        bufferevent_disable(c->bev, EV_READ);
    else if (tp_conn_read_on(c) != 0)
        tp_conn_close_after_flush(c, false); /* could not read again: end, do not hang */
    return true;
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_h2 *h2 = arg;
    if (h2->c->phase == TP_PHASE_ACTIVE)
        h2_flush(h2);
}

void tp_h2_on_read(struct tp_conn *c)
{
    struct tp_h2 *h2 = c->p.h2;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        struct evbuffer_iovec v;
        if (h2->calm) {
            /* Out of budget: nothing more from this peer is read. The GOAWAY goes out
               and the session, wanting neither to read nor write, closes after it. */
            evbuffer_drain(in, evbuffer_get_length(in));
            break;
        }
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        ssize_t n = nghttp2_session_mem_recv(h2->session, v.iov_base, v.iov_len);
        if (n < 0) {
            tp_conn_close(c, n == NGHTTP2_ERR_FLOODED ? TP_EV_FLOOD : TP_EV_PROTOCOL_ERROR);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    h2_flush(h2);
}

void tp_h2_on_write(struct tp_conn *c)
{
    h2_flush(c->p.h2);
}

void tp_h2_on_deadline(struct tp_conn *c)
{
    struct tp_h2 *h2 = c->p.h2;
    enum tp_server_event ev =
        c->deadline == TP_DL_HEADER ? TP_EV_HEADER_TIMEOUT : TP_EV_IDLE_TIMEOUT;
    tp_conn_event(c, ev);
    /* Say goodbye properly when idle; a stalled header block gets no courtesy. */
    if (c->deadline == TP_DL_IDLE) {
        nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h2->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        if (h2_flush(h2))
            tp_conn_close_after_flush(c, false);
        return;
    }
    tp_conn_close(c, TP_EV__COUNT);
}

void tp_h2_expire(struct tp_conn *c, uint64_t now_ms)
{
    struct tp_h2 *h2 = c->p.h2;
    const struct tp_server_limits *l = &c->limits;
    bool any = false;
    struct h2_stream *s;
    TAILQ_FOREACH(s, &h2->streams, link)
    {
        uint64_t age = now_ms - s->start_ms;
        /* A body that has not yet filled the stream window (a sealed request) has no
           flow-control excuse to be slow, even if the handler is: it must be complete
           body_timeout after the head. */
        bool body_late = !s->body_complete && s->delivered < l->stream_buffer &&
                         age >= l->body_timeout_ms;
        if (s->expired || (age < l->stream_timeout_ms && !body_late))
            continue;
        s->expired = true;
        any = true;
        tp_conn_event(c, body_late ? TP_EV_BODY_TIMEOUT : TP_EV_STREAM_TIMEOUT);
        /* The handler hears on_abort when the stream closes. */
        nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    }
    if (any)
        schedule(h2);
    /* Idle since the last sweep or longer: the frame buffer's bytes are dead (the last
       mem_send returned 0), so its pages go back to the kernel until the next frame,
       and so does the stream table if it is empty (all zero). */
    if (h2->ob_dirty && h2->ob_idle && h2->nstreams == 0) {
        tp_mem_trim(&h2->mem, TP_MEM_H2_FRAMEBUF);
        h2->ob_dirty = false;
    }
}

void tp_h2_drain(struct tp_conn *c, bool final)
{
    struct tp_h2 *h2 = c->p.h2;
    if (final) {
        if (h2->goaway_final)
            return;
        h2->goaway_final = true;
        nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h2->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
    } else {
        nghttp2_submit_shutdown_notice(h2->session);
    }
    schedule(h2);
}

/* The callbacks table is read-only once built: one per server (so per worker), freed
   with it. */
static nghttp2_session_callbacks *callbacks(struct tp_server *srv)
{
    if (srv->h2_callbacks)
        return srv->h2_callbacks;
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
    nghttp2_session_callbacks_set_select_padding_callback(cbs, select_padding);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_extension_chunk_recv_callback(cbs,
                                                                   on_extension_chunk);
    nghttp2_session_callbacks_set_unpack_extension_callback(cbs, unpack_extension);
    srv->h2_callbacks = cbs;
    return cbs;
}

void tp_h2_callbacks_free(struct tp_server *srv)
{
    nghttp2_session_callbacks_del(srv->h2_callbacks);
    srv->h2_callbacks = NULL;
    if (srv->h2_stage)
        evbuffer_free(srv->h2_stage);
    srv->h2_stage = NULL;
    while (srv->h2_spare) {
        struct h2_stream *s = srv->h2_spare;
        srv->h2_spare = s->next_spare;
        SPARE_UNPOISON(s, offsetof(struct h2_stream, next_spare));
        stream_release(s);
    }
    srv->h2_nspare = 0;
}

int tp_h2_start(struct tp_conn *c)
{
    struct tp_h2 *h2 = calloc(1, sizeof(*h2));
    if (!h2)
        return TP_ERR_NOMEM;
    h2->c = c;
    tp_mem_init(&h2->mem);
    h2->ob_idle = true;
    TAILQ_INIT(&h2->streams);
    budget_init(&h2->glitches, &c->limits, tp_conn_now_ms(c));
    budget_init(&h2->resets, &c->limits, tp_conn_now_ms(c));
    nghttp2_session_callbacks *cbs = callbacks(c->server);
    nghttp2_option *opt = NULL;
    if (!cbs || nghttp2_option_new(&opt) != 0)
        goto fail;
    const struct tp_server_limits *l = &c->limits;
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
#ifdef ZASLON_HAVE_NGHTTP2_RESET_RATE_LIMIT
    nghttp2_option_set_stream_reset_rate_limit(opt, l->stream_reset_burst,
                                               l->stream_reset_rate);
#endif
#ifdef ZASLON_HAVE_NGHTTP2_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(opt, l->max_continuations);
#endif
    /* Every type past the RFC 9113 ones, so that a flood of them is seen and counted
       (nghttp2 skips unregistered ones without a callback); all but RFC 9218's
       PRIORITY_UPDATE, which browsers send once RFC 7540 priorities are off. */
    for (unsigned t = NGHTTP2_CONTINUATION + 1; t <= 255; t++)
        if (t != NGHTTP2_PRIORITY_UPDATE)
            nghttp2_option_set_user_recv_extension_type(opt, (uint8_t)t);
    /* Only blocks nghttp2 allocates while creating the session are mapped (tp_mem.h):
       the stream table, and the outbound frame buffer, the only block that large and so
       the only one whose contents tp_mem_trim discards. */
    tp_mem_set_paged(&h2->mem, true);
    int rv = nghttp2_session_server_new3(&h2->session, cbs, h2, opt,
                                         tp_mem_nghttp2(&h2->mem));
    tp_mem_set_paged(&h2->mem, false);
    nghttp2_option_del(opt);
    if (rv != 0)
        goto fail;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)l->stream_buffer},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)l->header_list_size},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, iv,
                                sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(h2->session, NGHTTP2_FLAG_NONE, 0,
                                              CONN_WINDOW) != 0)
        goto fail;
    h2->kick = event_new(c->server->base, -1, 0, kick_cb, h2);
    if (!h2->kick)
        goto fail;
    c->p.h2 = h2;
    update_deadline(h2);
    schedule(h2);
    return 0;
fail:
    if (h2->session)
        nghttp2_session_del(h2->session);
    tp_mem_clear(&h2->mem);
    free(h2);
    return TP_ERR_NOMEM;
}

void tp_h2_free(struct tp_conn *c)
{
    struct tp_h2 *h2 = c->p.h2;
    if (!h2)
        return;
    struct h2_stream *s;
    while ((s = TAILQ_FIRST(&h2->streams)))
        stream_close(h2, s);
    nghttp2_session_del(h2->session);
    tp_mem_clear(&h2->mem);
    event_free(h2->kick);
    free(h2);
    c->p.h2 = NULL;
}
