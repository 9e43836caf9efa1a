/* The HTTP/2 server side, driven in-process by an nghttp2 client session over a real
   loopback connection (h2c with prior knowledge) on one event_base. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "unit_suites.h"
#include "tp_server.h"

/* ---- server side: /echo counts the body; /big/N streams N bytes with backpressure */

struct srv_req {
    struct tp_req *req;
    size_t body;
    size_t left; /* /big: bytes still to write */
    uint8_t next;
    size_t fields; /* /fields/N: answer 203 with N x-f fields among forbidden ones */
};

static unsigned aborts;

static void big_pump(struct tp_req *req)
{
    struct srv_req *r = req->handler_data;
    struct evbuffer *b = evbuffer_new();
    while (r->left) {
        uint8_t chunk[8192];
        size_t n = r->left < sizeof(chunk) ? r->left : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = r->next++;
        evbuffer_add(b, chunk, n);
        r->left -= n;
        if (!tp_req_write(req, b))
            break; /* wait for on_writable */
    }
    evbuffer_free(b);
    if (r->left == 0) {
        tp_req_end(req);
        req->handler = NULL;
        free(r);
    }
}

static void srv_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct srv_req *r = req->handler_data;
    size_t n = evbuffer_get_length(data);
    r->body += n;
    evbuffer_drain(data, n);
    tp_req_consume(req, n);
    if (!end)
        return;
    if (r->left) {
        struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("application/octet-stream")};
        tp_req_respond(req, 200, &ct, 1, (int64_t)r->left, false);
        big_pump(req);
        return;
    }
    char out[128];
    int len = snprintf(out, sizeof(out), "%.*s body=%zu", (int)req->path.len, req->path.base,
                       r->body);
    if (r->fields) {
        /* Fields the server writes itself or HTTP/2 forbids, around N that pass. */
        static const struct tp_header drop[] = {
            {TP_STR_LIT("connection"), TP_STR_LIT("x-f0")},
            {TP_STR_LIT("content-length"), TP_STR_LIT("99")},
            {TP_STR_LIT("date"), TP_STR_LIT("yesterday")},
            {TP_STR_LIT("server"), TP_STR_LIT("leak")},
            {TP_STR_LIT(":path"), TP_STR_LIT("/x")},
            {TP_STR_LIT(":ab"), TP_STR_LIT("x")},
            {TP_STR_LIT("http2-settings"), TP_STR_LIT("x")},
            {TP_STR_LIT("transfer-encoding"), TP_STR_LIT("chunked")},
            {TP_STR_LIT("te"), TP_STR_LIT("trailers")},
        };
        size_t nd = sizeof(drop) / sizeof(drop[0]), nh = r->fields + nd;
        struct tp_header *h = calloc(nh, sizeof(*h));
        char(*names)[16] = calloc(r->fields, sizeof(*names));
        for (size_t i = 0; i < nd; i++)
            h[i] = drop[i];
        for (size_t i = 0; i < r->fields; i++) {
            int nl = snprintf(names[i], sizeof(names[i]), "x-f%zu", i);
            h[nd + i] = (struct tp_header){{names[i], (size_t)nl}, TP_STR_LIT("v")};
        }
        tp_req_respond(req, 203, h, nh, len, false);
        free(names);
        free(h);
    } else {
        tp_req_respond(req, 200, NULL, 0, len, false);
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, out, (size_t)len);
    tp_req_write(req, b);
    evbuffer_free(b);
    tp_req_end(req);
    req->handler = NULL;
    free(r);
}

static void srv_abort(struct tp_req *req)
{
    aborts++;
    free(req->handler_data);
}

static const struct tp_req_handler srv_handler = {
    .on_body = srv_body, .on_writable = big_pump, .on_abort = srv_abort};

static unsigned served;

static void on_request(void *arg, struct tp_req *req)
{
    served++;
    struct srv_req *r = calloc(1, sizeof(*r));
    r->req = req;
    /* Request strings carry lengths, not terminators: copy before strtoul. */
    char num[32];
    if (req->path.len > 5 && req->path.len - 5 < sizeof(num) &&
        memcmp(req->path.base, "/big/", 5) == 0) {
        memcpy(num, req->path.base + 5, req->path.len - 5);
        num[req->path.len - 5] = '\0';
        r->left = strtoul(num, NULL, 10);
    }
    if (req->path.len > 8 && req->path.len - 8 < sizeof(num) &&
        memcmp(req->path.base, "/fields/", 8) == 0) {
        memcpy(num, req->path.base + 8, req->path.len - 8);
        num[req->path.len - 8] = '\0';
        r->fields = strtoul(num, NULL, 10);
    }
    tp_req_set_handler(req, &srv_handler, r);
}

/* ---- client side */

struct cstream {
    int32_t id;
    int status;
    size_t received;
    uint8_t expect; /* /big: the next byte value expected */
    bool pattern_ok;
    bool closed;
    uint32_t error;
    char body[256];
    bool has_date, has_server;
    unsigned xf, dates, others; /* x-f* fields; date fields; any other but :status */
    char clen[24];              /* the content-length value */
    const uint8_t *upload;
    size_t upload_len, upload_off;
    unsigned data_frames, unaligned_frames; /* DATA frames; those not a multiple of 256 */
};

struct client {
    struct event_base *base;
    struct bufferevent *bev;
    nghttp2_session *s;
    struct cstream *streams;
    size_t nstreams, open;
};

static struct cstream *find(struct client *c, int32_t id)
{
    for (size_t i = 0; i < c->nstreams; i++)
        if (c->streams[i].id == id)
            return &c->streams[i];
    return NULL;
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                       size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct cstream *cs = find(ud, f->hd.stream_id);
    if (!cs)
        return 0;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        cs->status = atoi((const char *)value);
    if (nl == 4 && memcmp(name, "date", 4) == 0)
        cs->has_date = true;
    if (nl == 6 && memcmp(name, "server", 6) == 0)
        cs->has_server = true;
    if (nl == 4 && memcmp(name, "date", 4) == 0)
        cs->dates++;
    else if (nl > 3 && memcmp(name, "x-f", 3) == 0)
        cs->xf++;
    else if (nl == 14 && memcmp(name, "content-length", 14) == 0 && vl < sizeof(cs->clen))
        memcpy(cs->clen, value, vl);
    else if (!(nl == 7 && memcmp(name, ":status", 7) == 0))
        cs->others++;
    return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d,
                     size_t len, void *ud)
{
    struct cstream *cs = find(ud, id);
    if (!cs)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (d[i] != cs->expect++)
            cs->pattern_ok = false;
    size_t room = sizeof(cs->body) - 1 - (cs->received < sizeof(cs->body) ? cs->received : sizeof(cs->body) - 1);
    size_t n = len < room ? len : room;
    memcpy(cs->body + (cs->received < sizeof(cs->body) - 1 ? cs->received : sizeof(cs->body) - 1), d, n);
    cs->received += len;
    return 0;
}

static int c_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct cstream *cs = find(ud, f->hd.stream_id);
    if (!cs || f->hd.type != NGHTTP2_DATA || f->hd.length == 0)
        return 0;
    cs->data_frames++;
    /* The frame's length includes the Pad Length byte and the padding. */
    if (f->hd.length % 256 != 0)
        cs->unaligned_frames++;
    return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
    struct client *c = ud;
    struct cstream *cs = find(c, id);
    if (cs) {
        cs->closed = true;
        cs->error = err;
    }
    if (--c->open == 0)
        event_base_loopexit(c->base, NULL);
    return 0;
}

static ssize_t c_upload(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct cstream *cs = src->ptr;
    size_t n = cs->upload_len - cs->upload_off;
    if (n > len)
        n = len;
    memcpy(buf, cs->upload + cs->upload_off, n);
    cs->upload_off += n;
    if (cs->upload_off == cs->upload_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void c_flush(struct client *c)
{
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->s, &data)) > 0)
        bufferevent_write(c->bev, data, (size_t)n);
}

static void c_read(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);
    if (nghttp2_session_mem_recv(c->s, p, len) < 0) {
        event_base_loopexit(c->base, NULL);
        return;
    }
    evbuffer_drain(in, len);
    c_flush(c);
}

static void c_write(struct bufferevent *bev, void *arg)
{
    c_flush(arg);
}

static void c_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    event_base_loopexit(c->base, NULL);
}

/* Runs |n| requests (paths[i], with an optional upload body) over one connection to
   a fresh server; fills streams[]. */
static void run(const char *const *paths, size_t n, struct cstream *streams,
                const nghttp2_nv *extra, size_t nextra, const struct tp_server_limits *lim)
{
    struct event_base *base = event_base_new();
    struct tp_server_opts opts = {.on_request = on_request};
    if (lim)
        opts.limits = *lim;
    else
        tp_server_limits_default(&opts.limits);
    struct tp_server *srv;
    CU_ASSERT_FATAL(tp_server_new(base, &opts, &srv) == 0);
    int fd;
    CU_ASSERT_FATAL(tp_listen_socket("127.0.0.1", 0, &fd) == 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    CU_ASSERT_FATAL(tp_server_listen(srv, fd, NULL) == 0);

    struct client c = {.base = base, .streams = streams, .nstreams = n, .open = n};
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_on_frame);
    nghttp2_session_client_new(&c.s, cbs, &c);
    nghttp2_session_callbacks_del(cbs);
    /* Windows in whole KiB, so DATA padding can stay block-aligned at their edges. */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65536}};
    nghttp2_submit_settings(c.s, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(c.s, NGHTTP2_FLAG_NONE, 0, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        nghttp2_nv nva[64];
        size_t k = 0;
        const char *method = streams[i].upload ? "POST" : "GET";
#define NV(N, V) nva[k++] = (nghttp2_nv){(uint8_t *)(N), (uint8_t *)(V), strlen(N), strlen(V), 0}
        NV(":method", method);
        NV(":scheme", "http");
        NV(":authority", "unit.test");
        NV(":path", paths[i]);
#undef NV
        for (size_t e = 0; e < nextra && k < 64; e++)
            nva[k++] = extra[e];
        streams[i].pattern_ok = true;
        nghttp2_data_provider prd = {.source.ptr = &streams[i], .read_callback = c_upload};
        streams[i].id = nghttp2_submit_request(c.s, NULL, nva, k,
                                               streams[i].upload ? &prd : NULL, NULL);
    }
    c.bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c.bev, c_read, c_write, c_event, &c);
    bufferevent_enable(c.bev, EV_READ | EV_WRITE);
    bufferevent_socket_connect(c.bev, (struct sockaddr *)&sin, sizeof(sin));
    c_flush(&c);
    struct timeval tv = {20, 0};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    nghttp2_session_del(c.s);
    bufferevent_free(c.bev);
    tp_server_free(srv);
    event_base_free(base);
}

static void get_and_post(void)
{
    static uint8_t upload[300000];
    for (size_t i = 0; i < sizeof(upload); i++)
        upload[i] = (uint8_t)i;
    const char *paths[] = {"/a?x=1", "/upload"};
    struct cstream st[2] = {0};
    st[1].upload = upload;
    st[1].upload_len = sizeof(upload);
    aborts = 0;
    run(paths, 2, st, NULL, 0, NULL);
    CU_ASSERT_EQUAL(st[0].status, 200);
    CU_ASSERT_STRING_EQUAL(st[0].body, "/a?x=1 body=0");
    CU_ASSERT_TRUE(st[0].has_date);
    CU_ASSERT_FALSE(st[0].has_server);
    /* 300 KB is more than the stream window: it only arrives if credit flows back. */
    CU_ASSERT_EQUAL(st[1].status, 200);
    CU_ASSERT_STRING_EQUAL(st[1].body, "/upload body=300000");
    CU_ASSERT_EQUAL(aborts, 0);
}

/* A response's fields: the status digits, Content-Length written by the server, the
   fields it writes itself or HTTP/2 forbids dropped, and every other field kept, with
   few fields and with more than fit the response's stack array. */
static void response_fields(void)
{
    const char *paths[] = {"/fields/3", "/fields/40"};
    struct cstream st[2] = {0};
    run(paths, 2, st, NULL, 0, NULL);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(st[i].status, 203);
        CU_ASSERT_TRUE(st[i].closed);
        CU_ASSERT_EQUAL(st[i].error, 0);
        CU_ASSERT_EQUAL(st[i].dates, 1);
        CU_ASSERT_FALSE(st[i].has_server);
        CU_ASSERT_EQUAL(st[i].others, 0);
    }
    CU_ASSERT_EQUAL(st[0].xf, 3);
    CU_ASSERT_STRING_EQUAL(st[0].body, "/fields/3 body=0");
    CU_ASSERT_STRING_EQUAL(st[0].clen, "16");
    CU_ASSERT_EQUAL(st[1].xf, 40);
    CU_ASSERT_STRING_EQUAL(st[1].body, "/fields/40 body=0");
    CU_ASSERT_STRING_EQUAL(st[1].clen, "17");
}

static void big_download_with_backpressure(void)
{
    const char *paths[] = {"/big/4000000", "/big/1000000", "/small"};
    struct cstream st[3] = {0};
    run(paths, 3, st, NULL, 0, NULL);
    CU_ASSERT_EQUAL(st[0].status, 200);
    CU_ASSERT_EQUAL(st[0].received, 4000000);
    CU_ASSERT_TRUE(st[0].pattern_ok);
    CU_ASSERT_EQUAL(st[1].received, 1000000);
    CU_ASSERT_TRUE(st[1].pattern_ok);
    CU_ASSERT_STRING_EQUAL(st[2].body, "/small body=0");
}

static void oversized_headers(void)
{
    struct tp_server_limits l;
    tp_server_limits_default(&l);
    l.header_fields = 10;
    nghttp2_nv extra[12];
    static char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        extra[i] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)"v", strlen(names[i]), 1, 0};
    }
    const char *paths[] = {"/many"};
    struct cstream st[1] = {0};
    run(paths, 1, st, extra, 12, &l);
    CU_ASSERT_EQUAL(st[0].status, 431);
    CU_ASSERT_PTR_NULL(strstr(st[0].body, "zaslon"));
}

static void many_streams(void)
{
    enum { N = 300 };
    static char pathbuf[N][32];
    const char *paths[N];
    static struct cstream st[N];
    memset(st, 0, sizeof(st));
    for (int i = 0; i < N; i++) {
        snprintf(pathbuf[i], sizeof(pathbuf[i]), "/s/%d", i);
        paths[i] = pathbuf[i];
    }
    run(paths, N, st, NULL, 0, NULL);
    unsigned ok = 0;
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "/s/%d body=0", i);
        ok += st[i].status == 200 && strcmp(st[i].body, want) == 0;
    }
    /* The client respects MAX_CONCURRENT_STREAMS, so every stream completes. */
    CU_ASSERT_EQUAL(ok, N);
}

static void data_padding(void)
{
    struct tp_server_limits l;
    tp_server_limits_default(&l);
    l.h2_data_padding = 256;
    const char *paths[] = {"/big/100000", "/p"};
    struct cstream st[2] = {0};
    run(paths, 2, st, NULL, 0, &l);
    CU_ASSERT_EQUAL(st[0].received, 100000);
    CU_ASSERT_TRUE(st[0].pattern_ok);
    CU_ASSERT_TRUE(st[0].data_frames > 1);
    CU_ASSERT_STRING_EQUAL(st[1].body, "/p body=0");
    /* Every DATA frame is padded to a multiple of 256, except a last one that may be
       capped by the peer's max frame size (16384, itself a multiple). */
    CU_ASSERT_EQUAL(st[0].unaligned_frames, 0);
    CU_ASSERT_EQUAL(st[1].unaligned_frames, 0);
    /* And without padding, frames carry exact lengths. */
    struct cstream plain[1] = {0};
    const char *p2[] = {"/p"};
    run(p2, 1, plain, NULL, 0, NULL);
    CU_ASSERT_EQUAL(plain[0].unaligned_frames, 1);
}

static void cap_refuses_late_streams(void)
{
    /* The GOAWAY after the capped request declares later streams unprocessed, so they
       must not be served: a client would resend them and they would run twice. */
    struct tp_server_limits l;
    tp_server_limits_default(&l);
    l.max_requests_per_conn = 1;
    const char *paths[] = {"/one", "/two", "/three"};
    struct cstream st[3] = {0};
    served = 0;
    run(paths, 3, st, NULL, 0, &l);
    CU_ASSERT_EQUAL(served, 1);
    CU_ASSERT_EQUAL(st[0].status, 200);
    CU_ASSERT_STRING_EQUAL(st[0].body, "/one body=0");
    CU_ASSERT_EQUAL(st[1].status, 0);
    CU_ASSERT_EQUAL(st[2].status, 0);
    CU_ASSERT_EQUAL(st[1].error, NGHTTP2_REFUSED_STREAM);
    CU_ASSERT_EQUAL(st[2].error, NGHTTP2_REFUSED_STREAM);
}


/* ---- raw frames: floods and budgets */

struct raw {
    struct event_base *base;
    struct evbuffer *in;
    int goaway;     /* error code of the server's GOAWAY, or -1 */
    uint32_t goaway_last; /* its last stream id */
    bool ping_ack;  /* the PING ACK for our final PING arrived */
    bool eof;
    unsigned rsts;  /* RST_STREAM frames received */
};

static void raw_scan(struct raw *r)
{
    for (;;) {
        size_t have = evbuffer_get_length(r->in);
        if (have < 9)
            return;
        uint8_t *h = evbuffer_pullup(r->in, 9);
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        if (have < 9 + len)
            return;
        uint8_t *f = evbuffer_pullup(r->in, (ev_ssize_t)(9 + len));
        if (f[3] == NGHTTP2_GOAWAY && len >= 8) {
            r->goaway = f[9 + 4] << 24 | f[9 + 5] << 16 | f[9 + 6] << 8 | f[9 + 7];
            r->goaway_last = (uint32_t)(f[9] & 0x7f) << 24 | (uint32_t)f[10] << 16 |
                             (uint32_t)f[11] << 8 | f[12];
        }
        if (f[3] == NGHTTP2_PING && (f[4] & NGHTTP2_FLAG_ACK) && len == 8 &&
            memcmp(f + 9, "zlpingzl", 8) == 0) {
            r->ping_ack = true;
            event_base_loopexit(r->base, NULL);
        }
        if (f[3] == NGHTTP2_RST_STREAM)
            r->rsts++;
        evbuffer_drain(r->in, 9 + len);
    }
}

static void raw_read(struct bufferevent *bev, void *arg)
{
    struct raw *r = arg;
    evbuffer_add_buffer(r->in, bufferevent_get_input(bev));
    raw_scan(r);
}

static void raw_event(struct bufferevent *bev, short what, void *arg)
{
    struct raw *r = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    r->eof = true;
    event_base_loopexit(r->base, NULL);
}

static void frame(struct evbuffer *b, uint8_t type, uint8_t flags, uint32_t sid,
                  const void *payload, size_t len)
{
    uint8_t h[9] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
                    (uint8_t)(sid >> 24 & 0x7f), (uint8_t)(sid >> 16),
                    (uint8_t)(sid >> 8), (uint8_t)sid};
    evbuffer_add(b, h, 9);
    if (len)
        evbuffer_add(b, payload, len);
}

/* GET / with authority a.b, as HPACK: indexed :method, :scheme, :path; literal
   :authority without indexing. */
static const uint8_t get_block[] = {0x82, 0x86, 0x84, 0x01, 0x03, 'a', '.', 'b'};

struct later {
    struct bufferevent *bev;
    struct evbuffer *data;
};

static void send_later(evutil_socket_t fd, short what, void *arg)
{
    struct later *l = arg;
    struct evbuffer *out = bufferevent_get_output(l->bev);
    evbuffer_add_buffer(out, l->data);
    frame(out, NGHTTP2_PING, 0, 0, "zlpingzl", 8);
}

/* Connects to a fresh server with |lim|, sends the preface, an empty SETTINGS, then
   |attack|, then a PING; with |later|, that and the PING follow |later_ms| after
   |attack|. Runs until the PING's ACK, the close, or 10 s. */
static void raw_run(const struct tp_server_limits *lim, struct evbuffer *attack,
                    struct evbuffer *later, unsigned later_ms, struct raw *r)
{
    struct event_base *base = event_base_new();
    struct tp_server_opts opts = {.on_request = on_request, .limits = *lim};
    struct tp_server *srv;
    CU_ASSERT_FATAL(tp_server_new(base, &opts, &srv) == 0);
    int fd;
    CU_ASSERT_FATAL(tp_listen_socket("127.0.0.1", 0, &fd) == 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    CU_ASSERT_FATAL(tp_server_listen(srv, fd, NULL) == 0);
    *r = (struct raw){.base = base, .in = evbuffer_new(), .goaway = -1};
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, raw_read, NULL, raw_event, r);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin));
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add(out, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    frame(out, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    evbuffer_add_buffer(out, attack);
    struct later lt = {bev, later};
    if (later) {
        struct timeval d = {later_ms / 1000, (suseconds_t)(later_ms % 1000) * 1000};
        event_base_once(base, -1, EV_TIMEOUT, send_later, &lt, &d);
    } else {
        frame(out, NGHTTP2_PING, 0, 0, "zlpingzl", 8);
    }
    struct timeval tv = {10, 0};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    bufferevent_free(bev);
    evbuffer_free(r->in);
    tp_server_free(srv);
    event_base_free(base);
}

static void small_budget(struct tp_server_limits *l)
{
    tp_server_limits_default(l);
    l->stream_reset_burst = 20;
    l->stream_reset_rate = 1;
}

static void glitch_budget(void)
{
    struct tp_server_limits l;
    small_budget(&l);
    /* Each kind alone, within the burst: answered, connection kept. Over it: calm. */
    for (int kind = 0; kind < 4; kind++) {
        for (int n = 15; n <= 60; n += 45) {
            struct evbuffer *a = evbuffer_new();
            for (int i = 0; i < n; i++) {
                uint32_t sid = (uint32_t)(2 * i + 1);
                static const uint8_t prio[5] = {0, 0, 0, 0, 16};
                switch (kind) {
                case 0: /* an unknown frame type */
                    frame(a, 0x42, 0, 0, "junk", 4);
                    break;
                case 1: /* PRIORITY */
                    frame(a, NGHTTP2_PRIORITY, 0, sid, prio, 5);
                    break;
                case 2: /* empty DATA without END_STREAM, on one open stream */
                    if (i == 0)
                        frame(a, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, get_block,
                              sizeof(get_block));
                    frame(a, NGHTTP2_DATA, 0, 1, NULL, 0);
                    break;
                case 3: /* HEADERS then empty CONTINUATION frames, finished at the end */
                    if (i == 0)
                        frame(a, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, get_block,
                              sizeof(get_block));
                    frame(a, NGHTTP2_CONTINUATION,
                          i == n - 1 ? NGHTTP2_FLAG_END_HEADERS : 0, 1, NULL, 0);
                    break;
                }
            }
            struct raw r;
            struct tp_server_limits lk = l;
            if (kind == 3)
                lk.max_continuations = 100; /* the budget, not nghttp2's cap, is tested */
            raw_run(&lk, a, NULL, 0, &r);
            evbuffer_free(a);
            if (n < 20) {
                CU_ASSERT_TRUE(r.ping_ack);
                CU_ASSERT_EQUAL(r.goaway, -1);
            } else {
                CU_ASSERT_FALSE(r.ping_ack);
                CU_ASSERT_EQUAL(r.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
                CU_ASSERT_TRUE(r.eof);
            }
        }
    }
}

static void priority_update_not_counted(void)
{
    /* RFC 9218 PRIORITY_UPDATE is what a browser sends once RFC 7540 priorities are
       off: 60 of them (three times the burst) on open streams do not end anything. */
    struct tp_server_limits l;
    small_budget(&l);
    struct evbuffer *a = evbuffer_new();
    for (int i = 0; i < 60; i++) {
        uint32_t sid = (uint32_t)(2 * i + 1);
        frame(a, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, sid,
              get_block, sizeof(get_block));
        /* Prioritized stream id, then the Priority Field Value "u=1". */
        uint8_t pu[7] = {(uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8),
                         (uint8_t)sid, 'u', '=', '1'};
        frame(a, NGHTTP2_PRIORITY_UPDATE, 0, 0, pu, sizeof(pu));
    }
    struct raw r;
    raw_run(&l, a, NULL, 0, &r);
    evbuffer_free(a);
    CU_ASSERT_TRUE(r.ping_ack);
    CU_ASSERT_EQUAL(r.goaway, -1);
}

static void budget_refills(void)
{
    /* Burst 20, 10 per second: 15 glitches, then 15 more. Sent together they end the
       connection; with 1.5 s between them (15 tokens back) they do not. */
    struct tp_server_limits l;
    small_budget(&l);
    l.stream_reset_rate = 10;
    for (int pause = 0; pause <= 1500; pause += 1500) {
        struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
        for (int i = 0; i < 15; i++) {
            frame(a, 0x42, 0, 0, "junk", 4);
            frame(b, 0x42, 0, 0, "junk", 4);
        }
        struct raw r;
        raw_run(&l, a, b, (unsigned)pause, &r);
        evbuffer_free(a);
        evbuffer_free(b);
        if (pause) {
            CU_ASSERT_TRUE(r.ping_ack);
            CU_ASSERT_EQUAL(r.goaway, -1);
        } else {
            CU_ASSERT_FALSE(r.ping_ack);
            CU_ASSERT_EQUAL(r.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
        }
    }
}

static void provoked_reset_budget(void)
{
    /* A WINDOW_UPDATE that overflows a stream's window makes the server reset it
       (FLOW_CONTROL_ERROR): 15 such streams are within the burst of 20, 40 are not. */
    struct tp_server_limits l;
    small_budget(&l);
    for (int n = 15; n <= 40; n += 25) {
        struct evbuffer *a = evbuffer_new();
        for (int i = 0; i < n; i++) {
            uint32_t sid = (uint32_t)(2 * i + 1);
            frame(a, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                  sid, get_block, sizeof(get_block));
            frame(a, NGHTTP2_WINDOW_UPDATE, 0, sid, "\x7f\xff\xff\xff", 4);
        }
        struct raw r;
        raw_run(&l, a, NULL, 0, &r);
        evbuffer_free(a);
        if (n < 20) {
            CU_ASSERT_TRUE(r.ping_ack);
            CU_ASSERT_EQUAL(r.goaway, -1);
            CU_ASSERT_EQUAL(r.rsts, (unsigned)n);
        } else {
            CU_ASSERT_FALSE(r.ping_ack);
            CU_ASSERT_EQUAL(r.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
            /* The 21st invalid frame, on the 21st stream (41), spent the last token:
               the GOAWAY names that stream as the last one processed. */
            CU_ASSERT_EQUAL(r.goaway_last, 41);
            CU_ASSERT_TRUE(r.eof);
        }
    }
}

int test_tp_h2(void)
{
    CU_pSuite s = CU_add_suite("tp_h2", NULL, NULL);
    if (!s || !CU_add_test(s, "GET and flow-controlled POST", get_and_post) ||
        !CU_add_test(s, "big downloads with backpressure", big_download_with_backpressure) ||
        !CU_add_test(s, "response fields: status, content-length, dropped and kept",
                     response_fields) ||
        !CU_add_test(s, "oversized header list gets 431", oversized_headers) ||
        !CU_add_test(s, "300 streams on one connection", many_streams) ||
        !CU_add_test(s, "DATA frames padded to a block", data_padding) ||
        !CU_add_test(s, "streams past the per-connection cap are refused",
                     cap_refuses_late_streams) ||
        !CU_add_test(s, "glitch floods spend the budget, then GOAWAY(ENHANCE_YOUR_CALM)",
                     glitch_budget) ||
        !CU_add_test(s, "provoked resets spend the budget", provoked_reset_budget) ||
        !CU_add_test(s, "the budget refills at its rate", budget_refills) ||
        !CU_add_test(s, "PRIORITY_UPDATE is not a glitch", priority_update_not_counted))
        return -1;
    return 0;
}
