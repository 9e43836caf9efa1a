/* HTTP/2 client to one origin over TLS (see tp_h2client.h).

   Shape follows nghttp2's libevent client example, with the additions STYLE.md asks
   for: SNI and certificate checks, a deadline on every wait, checked allocations.
   The session reads from the bufferevent's input with nghttp2_session_mem_recv and
   writes into its output with nghttp2_session_mem_send.

   Three kinds of object:
     client   per worker: the resolved origin, the connections, the FIFO wait queue,
              every live request;
     conn     one TLS connection and its nghttp2 session, torn down in exactly one
              place, conn_close(), with a fixed reason;
     stream   one request on the wire: hangs off nghttp2's stream user data, holds
              the request body being sent and the response being received, and dies
              in on_stream_close (or with its connection). It points at its request
              while someone waits for it; a cancelled request leaves the stream behind.
   A request (tp_h2client_req) lives from tp_h2client_request until its callback
   returns. User callbacks run only from the request's own event, never from inside
   nghttp2 or the connection code: finishing a request only records the outcome and
   activates that event. */
#include "tp_h2client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tp_addr.h"
#include "tp_h2client_internal.h"

#define ADDR_MAX 8                 /* resolved addresses kept */
#define STREAMS_MAX 256            /* our own cap on streams per connection */
#define OUTPUT_CAP (256 * 1024)    /* bytes queued for the socket before we stop */
#define HEADER_CAP (64 * 1024)     /* response header block, RFC 9113 6.5.2 counting */
#define CTYPE_CAP 256              /* content-type value kept */
#define STREAM_WINDOW (256 * 1024) /* our SETTINGS_INITIAL_WINDOW_SIZE */
#define CONN_WINDOW (1024 * 1024)
#define HOLDOFF_MS 1000 /* after a failed connect, no extra connection for this long */
#define CLOSE_GRACE_MS 1000 /* a GOAWAY we send gets this long to leave */
#define DEFAULT_IDLE_MS 30000
#define REQUEUE_MAX 8 /* connections that died before a request's HEADERS left */

enum conn_state {
    C_CONNECTING, /* TCP and TLS */
    C_SETTINGS,   /* TLS up, preface sent, waiting for the server's SETTINGS */
    C_READY,      /* carries requests (unless goaway) */
    C_CLOSING,    /* our GOAWAY is leaving; then close */
};

enum req_state { R_QUEUED, R_ACTIVE, R_DONE };

struct conn;
struct stream;

struct tp_h2client_req {
    struct tp_h2client *client;
    tp_h2client_done_cb done;
    void *arg;
    enum req_state state;
    char *strs; /* method, path and content type, back to back */
    struct tp_str method, path, content_type;
    uint8_t *body;
    size_t body_len;
    bool has_body;
    bool retried;
    unsigned requeues;
    bool in_cb;
    struct stream *stream; /* R_ACTIVE */
    int err;               /* R_DONE */
    int status;
    char ctype[CTYPE_CAP];
    size_t ctype_len;
    struct evbuffer *resp_body;
    struct event *ev; /* the whole-exchange deadline, then the delivery */
    TAILQ_ENTRY(tp_h2client_req) qlink;
    TAILQ_ENTRY(tp_h2client_req) alink;
};

struct stream {
    struct conn *conn;
    int32_t id;
    struct tp_h2client_req *req; /* NULL once nobody waits */
    struct evbuffer *out;        /* request body not yet framed */
    bool sent;                   /* our HEADERS went into the socket's queue */
    bool dead;                   /* HEADERS never sent: nghttp2 dropped it */
    bool end_recv;               /* END_STREAM from the server */
    bool final;                  /* a final (non-1xx) response head arrived */
    bool too_large;
    int block_status; /* :status of the header block being received */
    int status;
    char ctype[CTYPE_CAP];
    size_t ctype_len;
    size_t hbytes;
    struct evbuffer *body;
    TAILQ_ENTRY(stream) link;
};

TAILQ_HEAD(stream_list, stream);

struct conn {
    struct tp_h2client *client;
    uint64_t serial;
    struct bufferevent *bev;
    nghttp2_session *session;
    enum conn_state state;
    bool goaway;        /* no new streams: GOAWAY received, or ids ran out */
    const char *doomed; /* a teardown decided where it could not happen: its reason */
    size_t tries;       /* addresses tried for this connect */
    size_t addr_idx;
    struct event *timer; /* connect deadline, idle, close grace */
    struct event *kick;  /* deferred flush or teardown */
    struct stream_list streams;
    unsigned nstreams; /* open or about to open (not dead) */
    TAILQ_ENTRY(conn) link;
};

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(req_list, tp_h2client_req);

struct tp_h2client {
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    char *host;      /* for getaddrinfo, without brackets */
    char *authority; /* host[:port] as the URL gives it (lowercased) */
    char *path;
    bool host_is_ip;
    uint16_t port;
    struct sockaddr_storage addrs[ADDR_MAX];
    socklen_t addrlens[ADDR_MAX];
    size_t naddrs;
    size_t addr_pref;
    unsigned connections, max_queue;
    unsigned timeout_ms, connect_timeout_ms, idle_timeout_ms;
    size_t max_response;
    nghttp2_session_callbacks *cbs;
    struct conn_list conns;
    unsigned nconns;
    struct req_list queue;
    unsigned nqueue;
    struct req_list reqs; /* every live request */
    struct event *kick;   /* deferred queue processing */
    uint64_t holdoff_until_ms;
    uint64_t next_serial;
    uint64_t connects, retries;
    const char *last_close;
    bool freeing;
};

static void conn_close(struct conn *c, const char *reason);
static void client_schedule(struct tp_h2client *cl);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval ms_tv(unsigned ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
}

/* ------------------------------------------------------------------ requests --- */

static void queue_remove(struct tp_h2client_req *r)
{
    TAILQ_REMOVE(&r->client->queue, r, qlink);
    r->client->nqueue--;
}

static void queue_push(struct tp_h2client_req *r, bool front)
{
    struct tp_h2client *cl = r->client;
    r->state = R_QUEUED;
    r->stream = NULL;
    if (front)
        TAILQ_INSERT_HEAD(&cl->queue, r, qlink);
    else
        TAILQ_INSERT_TAIL(&cl->queue, r, qlink);
    cl->nqueue++;
}

/* Frees |r| wherever it is, without a callback. Leaves its stream, if any, behind. */
static void req_free(struct tp_h2client_req *r)
{
    if (r->state == R_QUEUED)
        queue_remove(r);
    if (r->stream)
        r->stream->req = NULL;
    r->stream = NULL;
    TAILQ_REMOVE(&r->client->reqs, r, alink);
    if (r->ev)
        event_free(r->ev);
    r->ev = NULL;
    if (r->resp_body)
        evbuffer_free(r->resp_body);
    r->resp_body = NULL;
    free(r->strs);
    r->strs = NULL;
    free(r->body);
    r->body = NULL;
    free(r);
}

/* Records the outcome; the callback runs from the request's event. */
static void req_finish(struct tp_h2client_req *r, int err)
{
    if (r->state == R_QUEUED)
        queue_remove(r);
    if (r->stream)
        r->stream->req = NULL;
    r->stream = NULL;
    r->state = R_DONE;
    r->err = err;
    event_del(r->ev);
    event_active(r->ev, EV_TIMEOUT, 0);
}

/* A request back in line: at the front, it has waited longest. A server that keeps
   dropping connections before anything is sent gets no endless reconnect loop: the
   request fails as unreachable (still nothing sent). */
static void req_requeue(struct tp_h2client_req *r)
{
    if (r->stream)
        r->stream->req = NULL;
    r->stream = NULL;
    if (++r->requeues > REQUEUE_MAX) {
        r->state = R_ACTIVE; /* on no queue */
        req_finish(r, TP_ERR_CONNECT);
        return;
    }
    queue_push(r, true);
    client_schedule(r->client);
}

static void deliver(struct tp_h2client_req *r)
{
    struct tp_h2client_resp resp;
    memset(&resp, 0, sizeof(resp));
    if (r->err == 0) {
        resp.status = r->status;
        resp.content_type = (struct tp_str){r->ctype, r->ctype_len};
        size_t len = r->resp_body ? evbuffer_get_length(r->resp_body) : 0;
        resp.body_len = len;
        resp.body =
            len ? evbuffer_pullup(r->resp_body, (ev_ssize_t)len) : (const uint8_t *)"";
        if (len && !resp.body)
            r->err = TP_ERR_NOMEM;
    }
    r->in_cb = true;
    r->done(r->arg, r->err, r->err == 0 ? &resp : NULL);
    req_free(r);
}

static void conn_schedule(struct conn *c)
{
    event_active(c->kick, EV_TIMEOUT, 0);
}

/* Resets the request's stream (if it went out) and forgets it. */
static void req_abandon_stream(struct tp_h2client_req *r)
{
    struct stream *s = r->stream;
    if (!s)
        return;
    s->req = NULL;
    r->stream = NULL;
    struct conn *c = s->conn;
    if (!s->dead && c->session) {
        /* Before its HEADERS left, nghttp2 cancels them instead: nothing is sent. A
           stream that cannot be reset takes its connection down with it. */
        if (nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id,
                                      NGHTTP2_CANCEL) != 0)
            c->doomed = "out of memory";
        conn_schedule(c);
    }
}

static void req_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_h2client_req *r = arg;
    (void)fd;
    (void)what;
    if (r->state == R_DONE) {
        deliver(r);
        return;
    }
    /* The whole-exchange deadline. */
    if (r->state == R_QUEUED)
        queue_remove(r);
    else
        req_abandon_stream(r);
    r->state = R_DONE;
    r->err = TP_ERR_TIMEOUT;
    deliver(r);
}

/* ------------------------------------------------------------------- streams --- */

static void stream_free(struct stream *s)
{
    if (s->req)
        s->req->stream = NULL;
    if (s->out)
        evbuffer_free(s->out);
    if (s->body)
        evbuffer_free(s->body);
    free(s);
}

static struct stream *find_stream(struct conn *c, int32_t id)
{
    struct stream *s;
    TAILQ_FOREACH(s, &c->streams, link)
    {
        if (s->id == id)
            return s;
    }
    return NULL;
}

/* The stream is over: tells its request, if anyone still waits, how it went. */
static void stream_outcome(struct stream *s, uint32_t error_code)
{
    struct tp_h2client_req *r = s->req;
    if (!r)
        return;
    struct tp_h2client *cl = r->client;
    s->req = NULL;
    r->stream = NULL;
    if (s->too_large) {
        req_finish(r, TP_ERR_TOO_LARGE);
    } else if (s->end_recv && s->final) {
        r->status = s->status;
        memcpy(r->ctype, s->ctype, s->ctype_len);
        r->ctype_len = s->ctype_len;
        r->resp_body = s->body;
        s->body = NULL;
        req_finish(r, 0);
    } else if (!s->sent) {
        /* Nothing of it left: not a resend. */
        req_requeue(r);
    } else if (error_code == NGHTTP2_REFUSED_STREAM && s->hbytes == 0 && !r->retried) {
        /* RFC 9113 8.7: refused (by RST_STREAM, or above a GOAWAY's last-stream-id)
           means not processed; one retry. */
        r->retried = true;
        cl->retries++;
        req_requeue(r);
    } else {
        req_finish(r,
                   error_code == NGHTTP2_PROTOCOL_ERROR ? TP_ERR_PROTO : TP_ERR_CLOSED);
    }
}

static ssize_t body_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags,
                            nghttp2_data_source *source, void *user_data)
{
    struct stream *s = source->ptr;
    (void)session;
    (void)stream_id;
    (void)user_data;
    int n = evbuffer_remove(s->out, buf, length);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (evbuffer_get_length(s->out) == 0)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return n;
}

/* ------------------------------------------------------- nghttp2 callbacks --- */

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    struct conn *c = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            return 0;
        if (c->state == C_SETTINGS) {
            /* The server is really there and took our certificate. */
            c->state = C_READY;
            evtimer_del(c->timer);
        }
        client_schedule(c->client); /* maybe more stream slots */
        return 0;
    case NGHTTP2_GOAWAY:
        /* nghttp2 closes our streams above last_stream_id with REFUSED_STREAM. */
        c->goaway = true;
        client_schedule(c->client);
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
        struct stream *s =
            nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!s)
            return 0;
        if (frame->hd.type == NGHTTP2_HEADERS && !s->final) {
            if (s->block_status >= 200) {
                s->final = true;
                s->status = s->block_status;
            } else {
                s->ctype_len = 0; /* an interim response's fields are not kept */
            }
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            s->end_recv = true;
        return 0;
    }
    default:
        return 0;
    }
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    (void)user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s)
        s->block_status = 0;
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s)
        return 0;
    s->hbytes += namelen + valuelen + 32;
    if (s->hbytes > HEADER_CAP) {
        s->too_large = true;
        /* Resets this stream (INTERNAL_ERROR); the connection lives on. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (s->final)
        return 0; /* trailers: not kept */
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        /* nghttp2 has checked it is three digits. */
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            v = v * 10 + (value[i] - '0');
        s->block_status = v;
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        if (valuelen > CTYPE_CAP) {
            s->too_large = true;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        memcpy(s->ctype, value, valuelen);
        s->ctype_len = valuelen;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct conn *c = user_data;
    (void)flags;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    /* Nobody waits for it: dropped (nghttp2 still returns the window). */
    if (!s || !s->req || s->too_large)
        return 0;
    size_t have = evbuffer_get_length(s->body);
    if (len > c->client->max_response || have > c->client->max_response - len) {
        s->too_large = true;
        if (nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                                      NGHTTP2_CANCEL) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset by nghttp2 instead */
        return 0;
    }
    if (evbuffer_add(s->body, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    /* From here on the request counts as sent: its bytes are in the socket's queue. */
    if (s)
        s->sent = true;
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
                             int lib_error_code, void *user_data)
{
    struct conn *c = user_data;
    (void)session;
    (void)lib_error_code;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *s = find_stream(c, frame->hd.stream_id);
    if (!s || s->dead)
        return 0;
    /* GOAWAY came first, ids ran out, or a cancel withdrew it: nothing left. The
       stream object stays until nghttp2 is surely done with it (conn_sweep). */
    s->dead = true;
    c->nstreams--;
    c->goaway = c->goaway || lib_error_code != NGHTTP2_ERR_STREAM_CLOSING;
    if (s->req)
        req_requeue(s->req);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct conn *c = user_data;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (!s->dead)
        c->nstreams--;
    stream_outcome(s, error_code);
    TAILQ_REMOVE(&c->streams, s, link);
    stream_free(s);
    client_schedule(c->client); /* a slot is free */
    return 0;
}

static nghttp2_session_callbacks *callbacks_new(void)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    return cbs;
}

/* -------------------------------------------------------------- connections --- */

/* Frees streams nghttp2 dropped before opening them (after mem_send returned, any
   close it would report has been reported). */
static void conn_sweep(struct conn *c)
{
    struct stream *s, *next;
    for (s = TAILQ_FIRST(&c->streams); s; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->dead && !nghttp2_session_find_stream(c->session, s->id)) {
            TAILQ_REMOVE(&c->streams, s, link);
            stream_free(s);
        }
    }
}

static void conn_arm(struct conn *c, unsigned ms)
{
    struct timeval tv = ms_tv(ms);
    evtimer_add(c->timer, &tv);
}

/* Sends what the session has, within OUTPUT_CAP. Returns false if |c| is gone. */
static bool conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (evbuffer_get_length(out) < OUTPUT_CAP) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            conn_close(c, "h2 send failed");
            return false;
        }
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0) {
            conn_close(c, "out of memory");
            return false;
        }
    }
    conn_sweep(c);
    if (!nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session) && evbuffer_get_length(out) == 0) {
        conn_close(c, "session ended");
        return false;
    }
    if (c->state == C_READY && c->nstreams == 0 && !evtimer_pending(c->timer, NULL))
        conn_arm(c, c->client->idle_timeout_ms);
    return true;
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state == C_CONNECTING) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        ssize_t n = nghttp2_session_mem_recv(c->session, v.iov_base, v.iov_len);
        if (n < 0) {
            conn_close(c, n == NGHTTP2_ERR_FLOODED ? "h2 flood" : "h2 protocol error");
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    conn_flush(c);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state == C_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_close(c, "idle");
        return;
    }
    if (c->state >= C_SETTINGS)
        conn_flush(c);
}

static int conn_connect(struct conn *c);

static int session_start(struct conn *c)
{
    struct tp_h2client *cl = c->client;
    nghttp2_option *opt = NULL;
    if (nghttp2_option_new(&opt) != 0)
        return TP_ERR_NOMEM;
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    int rv = nghttp2_session_client_new2(&c->session, cl->cbs, c, opt);
    nghttp2_option_del(opt);
    if (rv != 0) {
        c->session = NULL;
        return TP_ERR_NOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEADER_CAP},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv,
                                sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              CONN_WINDOW) != 0)
        return TP_ERR_NOMEM;
    return 0;
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct tp_h2client *cl = c->client;
    if (what & BEV_EVENT_CONNECTED) {
        cl->addr_pref = c->addr_idx;
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *alpn = NULL;
        unsigned int alpnlen = 0;
        if (ssl)
            SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
        if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
            conn_close(c, "server did not select h2");
            return;
        }
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        /* Small requests should not wait for Nagle; failure only costs latency. */
        if (fd != -1 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
            errno = 0;
        if (session_start(c) != 0) {
            conn_close(c, "out of memory");
            return;
        }
        c->state = C_SETTINGS;
        if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0) {
            conn_close(c, "cannot read");
            return;
        }
        conn_flush(c);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    bool tls_err = false;
    while (bufferevent_get_openssl_error(bev) != 0)
        tls_err = true;
    ERR_clear_error();
    if (c->state == C_CONNECTING) {
        /* Refused or unreachable: the next address, within the same deadline. */
        if (!tls_err && (what & BEV_EVENT_ERROR) && c->tries < cl->naddrs) {
            bufferevent_free(c->bev);
            c->bev = NULL;
            if (conn_connect(c) == 0)
                return;
        }
        conn_close(c, tls_err ? "tls handshake failed" : "connect failed");
        return;
    }
    if (c->state == C_SETTINGS)
        conn_close(c, tls_err ? "tls refused" : "closed before settings");
    else
        conn_close(c, (what & BEV_EVENT_EOF) ? "closed by peer" : "connection error");
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case C_CONNECTING:
    case C_SETTINGS:
        conn_close(c, "connect timeout");
        return;
    case C_READY:
        if (c->nstreams > 0)
            return; /* the requests' own deadlines run */
        /* Idle: say goodbye properly, then close once it has left. */
        c->state = C_CLOSING;
        if (nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR) != 0) {
            conn_close(c, "idle");
            return;
        }
        conn_arm(c, CLOSE_GRACE_MS);
        if (conn_flush(c) && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_close(c, "idle");
        return;
    case C_CLOSING:
    default:
        conn_close(c, "idle");
        return;
    }
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->doomed) {
        conn_close(c, c->doomed);
        return;
    }
    if (c->state >= C_SETTINGS && c->state != C_CLOSING)
        conn_flush(c);
}

static int conn_connect(struct conn *c)
{
    struct tp_h2client *cl = c->client;
    const int flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    while (c->tries < cl->naddrs) {
        size_t idx = (cl->addr_pref + c->tries) % cl->naddrs;
        c->tries++;
        SSL *ssl = SSL_new(cl->ssl_ctx);
        if (!ssl)
            return TP_ERR_NOMEM;
        bool ok = true;
        if (!cl->host_is_ip && SSL_set_tlsext_host_name(ssl, cl->host) != 1)
            ok = false;
        if (ok && cl->host_is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cl->host) == 1;
        } else if (ok) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, cl->host) == 1;
        }
        if (!ok) {
            SSL_free(ssl);
            ERR_clear_error();
            return TP_ERR_CRYPTO;
        }
        struct bufferevent *bev = bufferevent_openssl_socket_new(
            cl->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, flags);
        if (!bev) /* libevent freed |ssl| (BEV_OPT_CLOSE_ON_FREE) */
            return TP_ERR_NOMEM;
        c->bev = bev;
        c->addr_idx = idx;
        bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
        if (bufferevent_socket_connect(bev, (struct sockaddr *)&cl->addrs[idx],
                                       (int)cl->addrlens[idx]) == 0)
            return 0;
        bufferevent_free(bev);
        c->bev = NULL;
    }
    ERR_clear_error();
    return TP_ERR_CONNECT;
}

/* Returns true if |c| can take new streams now or soon. */
static bool conn_live(const struct conn *c)
{
    return !c->goaway && !c->doomed && c->state != C_CLOSING;
}

static unsigned conn_slots(const struct conn *c)
{
    if (c->state != C_READY || !conn_live(c))
        return 0;
    uint32_t max = nghttp2_session_get_remote_settings(
        c->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (max > STREAMS_MAX)
        max = STREAMS_MAX;
    return c->nstreams >= max ? 0 : max - c->nstreams;
}

/* The one teardown of a connection. Requests on it whose HEADERS never left go back
   in line; the others fail (TP_ERR_CLOSED: never resent). A connection that never got
   ready fails the queue with TP_ERR_CONNECT when no other connection is coming. */
static void conn_close(struct conn *c, const char *reason)
{
    struct tp_h2client *cl = c->client;
    bool never_ready = c->state == C_CONNECTING || c->state == C_SETTINGS;
    cl->last_close = reason;
    struct stream *s;
    while ((s = TAILQ_FIRST(&c->streams))) {
        TAILQ_REMOVE(&c->streams, s, link);
        struct tp_h2client_req *r = s->req;
        if (r && !cl->freeing) {
            if (!s->sent || s->dead)
                req_requeue(r);
            else
                req_finish(r, TP_ERR_CLOSED);
        }
        stream_free(s);
    }
    TAILQ_REMOVE(&cl->conns, c, link);
    cl->nconns--;
    /* No stream callbacks from here: nghttp2_session_del calls none. */
    if (c->session)
        nghttp2_session_del(c->session);
    c->session = NULL;
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->timer)
        event_free(c->timer);
    c->timer = NULL;
    if (c->kick)
        event_free(c->kick);
    c->kick = NULL;
    free(c);
    if (cl->freeing)
        return;
    if (never_ready) {
        cl->holdoff_until_ms = now_ms() + HOLDOFF_MS;
        bool other = false;
        struct conn *o;
        TAILQ_FOREACH(o, &cl->conns, link)
        {
            other = other || conn_live(o);
        }
        if (!other) {
            /* Nobody left to carry them: the gateway is unreachable right now. */
            struct tp_h2client_req *r;
            while ((r = TAILQ_FIRST(&cl->queue)))
                req_finish(r, TP_ERR_CONNECT);
        }
    }
    client_schedule(cl);
}

static int conn_new(struct tp_h2client *cl, struct conn **out)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return TP_ERR_NOMEM;
    c->client = cl;
    c->serial = ++cl->next_serial;
    c->state = C_CONNECTING;
    TAILQ_INIT(&c->streams);
    c->timer = evtimer_new(cl->base, conn_timer_cb, c);
    c->kick = event_new(cl->base, -1, 0, conn_kick_cb, c);
    if (!c->timer || !c->kick) {
        if (c->timer)
            event_free(c->timer);
        if (c->kick)
            event_free(c->kick);
        free(c);
        return TP_ERR_NOMEM;
    }
    TAILQ_INSERT_TAIL(&cl->conns, c, link);
    cl->nconns++;
    cl->connects++;
    conn_arm(c, cl->connect_timeout_ms);
    if (conn_connect(c) != 0) {
        /* Torn down from the loop, like any other connect failure. */
        c->doomed = "connect failed";
        conn_schedule(c);
    }
    *out = c;
    return 0;
}

/* Puts |r| on |c| as a new stream. Returns 0, or TP_ERR_STATE (the connection can
   take no more streams; |r| untouched) or TP_ERR_NOMEM. */
static int conn_submit(struct conn *c, struct tp_h2client_req *r)
{
    struct tp_h2client *cl = c->client;
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return TP_ERR_NOMEM;
    s->conn = c;
    s->body = evbuffer_new();
    s->out = evbuffer_new();
    if (!s->body || !s->out ||
        (r->body_len && evbuffer_add(s->out, r->body, r->body_len))) {
        stream_free(s);
        return TP_ERR_NOMEM;
    }
    char clen[24];
    int cn = snprintf(clen, sizeof(clen), "%zu", r->body_len);
    if (cn < 0 || (size_t)cn >= sizeof(clen)) {
        stream_free(s);
        return TP_ERR_NOMEM;
    }
    nghttp2_nv nva[6];
    size_t k = 0;
#define NV(N, NL, V, VL)                                                                 \
    nva[k++] = (nghttp2_nv){(uint8_t *)(N), (uint8_t *)(V), NL, VL, NGHTTP2_NV_FLAG_NONE}
    NV(":method", 7, r->method.base, r->method.len);
    NV(":scheme", 7, "https", 5);
    NV(":authority", 10, cl->authority, strlen(cl->authority));
    NV(":path", 5, r->path.base, r->path.len);
    if (r->has_body) {
        if (r->content_type.len)
            NV("content-type", 12, r->content_type.base, r->content_type.len);
        NV("content-length", 14, clen, (size_t)cn);
    }
#undef NV
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = body_read_cb};
    int32_t id =
        nghttp2_submit_request(c->session, NULL, nva, k, r->has_body ? &prd : NULL, s);
    if (id < 0) {
        stream_free(s);
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
            c->goaway = true;
            return TP_ERR_STATE;
        }
        return TP_ERR_NOMEM;
    }
    s->id = id;
    s->req = r;
    TAILQ_INSERT_TAIL(&c->streams, s, link);
    c->nstreams++;
    r->stream = s;
    r->state = R_ACTIVE;
    evtimer_del(c->timer); /* not idle */
    conn_schedule(c);
    return 0;
}

/* ------------------------------------------------------------------- client --- */

/* Hands waiting requests to connections in FIFO order, opening one when needed.
   Calls no user callback. */
static void client_kick(struct tp_h2client *cl)
{
    while (!TAILQ_EMPTY(&cl->queue) && !cl->freeing) {
        struct tp_h2client_req *r = TAILQ_FIRST(&cl->queue);
        struct conn *c, *pick = NULL;
        unsigned live = 0, connecting = 0;
        TAILQ_FOREACH(c, &cl->conns, link)
        {
            if (!conn_live(c))
                continue;
            live++;
            if (c->state != C_READY)
                connecting++;
            else if (!pick && conn_slots(c) > 0)
                pick = c;
        }
        if (pick) {
            queue_remove(r);
            int rv = conn_submit(pick, r);
            if (rv == TP_ERR_STATE) {
                queue_push(r, true);
                continue;
            }
            if (rv != 0) {
                r->state = R_ACTIVE; /* off the queue already */
                req_finish(r, rv);
            }
            continue;
        }
        /* One connection attempt at a time; after a failure, more only once the
           hold-off passed (a lone connection is always retried). */
        if (connecting > 0 || live >= cl->connections ||
            (live > 0 && now_ms() < cl->holdoff_until_ms))
            return;
        struct conn *nc;
        if (conn_new(cl, &nc) != 0) {
            queue_remove(r);
            r->state = R_ACTIVE;
            req_finish(r, TP_ERR_NOMEM);
            continue;
        }
        return;
    }
}

static void client_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_kick(arg);
}

static void client_schedule(struct tp_h2client *cl)
{
    if (!cl->freeing)
        event_active(cl->kick, EV_TIMEOUT, 0);
}

static char *dup_mem(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Visible ASCII, no space. */
static bool is_vchars(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static bool is_field_value(struct tp_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Splits "https://host[:port][/path]". Sets cl->host, authority, path, port. */
static int parse_url(struct tp_h2client *cl, const char *url)
{
    if (!url || strncmp(url, "https://", 8) != 0)
        return TP_ERR_INVALID;
    const char *p = url + 8;
    size_t alen = strcspn(p, "/?#");
    const char *rest = p + alen;
    if (alen == 0 || memchr(p, '@', alen) || strchr(rest, '#') ||
        !is_vchars(p, strlen(p)))
        return TP_ERR_INVALID;
    const char *hb = p, *he, *port = NULL;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', alen);
        if (!close)
            return TP_ERR_INVALID;
        hb = p + 1;
        he = close;
        if (close + 1 != rest) {
            if (close[1] != ':')
                return TP_ERR_INVALID;
            port = close + 2;
        }
    } else {
        he = memchr(p, ':', alen);
        if (he)
            port = he + 1;
        else
            he = rest;
    }
    if (he == hb)
        return TP_ERR_INVALID;
    unsigned long pv = 443;
    if (port) {
        if (port == rest || rest - port > 5)
            return TP_ERR_INVALID;
        pv = 0;
        for (const char *q = port; q < rest; q++) {
            if (*q < '0' || *q > '9')
                return TP_ERR_INVALID;
            pv = pv * 10 + (unsigned long)(*q - '0');
        }
        if (pv == 0 || pv > 65535)
            return TP_ERR_INVALID;
    }
    cl->port = (uint16_t)pv;
    cl->host = dup_mem(hb, (size_t)(he - hb));
    cl->authority = dup_mem(p, alen);
    cl->path = *rest == '/' ? dup_mem(rest, strlen(rest)) : dup_mem("/", 1);
    if (!cl->host || !cl->authority || !cl->path)
        return TP_ERR_NOMEM;
    for (char *q = cl->authority; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    for (char *q = cl->host; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    unsigned char buf[sizeof(struct in6_addr)];
    bool v6 = inet_pton(AF_INET6, cl->host, buf) == 1;
    cl->host_is_ip = v6 || inet_pton(AF_INET, cl->host, buf) == 1;
    /* Brackets for IPv6 only, and only around an address. */
    if ((p[0] == '[') != v6)
        return TP_ERR_INVALID;
    return 0;
}

static int client_resolve(struct tp_h2client *cl)
{
    return tp_addr_resolve(cl->host, cl->port, cl->addrs, cl->addrlens, ADDR_MAX,
                           &cl->naddrs);
}

int tp_h2client_new(struct event_base *base, const struct tp_h2client_opts *opts,
                    struct tp_h2client **out)
{
    if (!base || !opts || !out || !opts->ssl_ctx || opts->connections == 0 ||
        opts->connections > 64 || opts->max_queue == 0 || opts->timeout_ms == 0 ||
        opts->max_response == 0)
        return TP_ERR_INVALID;
    struct tp_h2client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return TP_ERR_NOMEM;
    cl->base = base;
    TAILQ_INIT(&cl->conns);
    TAILQ_INIT(&cl->queue);
    TAILQ_INIT(&cl->reqs);
    cl->connections = opts->connections;
    cl->max_queue = opts->max_queue;
    cl->timeout_ms = opts->timeout_ms;
    cl->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : opts->timeout_ms;
    cl->idle_timeout_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : DEFAULT_IDLE_MS;
    cl->max_response = opts->max_response;
    int rv = parse_url(cl, opts->url);
    if (rv != 0)
        goto fail;
    rv = TP_ERR_NOMEM;
    cl->cbs = callbacks_new();
    cl->kick = event_new(base, -1, 0, client_kick_cb, cl);
    if (!cl->cbs || !cl->kick)
        goto fail;
    rv = client_resolve(cl);
    if (rv != 0)
        goto fail;
    if (SSL_CTX_up_ref(opts->ssl_ctx) != 1) {
        rv = TP_ERR_CRYPTO;
        goto fail;
    }
    cl->ssl_ctx = opts->ssl_ctx;
    *out = cl;
    return 0;
fail:
    tp_h2client_free(cl);
    return rv;
}

void tp_h2client_free(struct tp_h2client *cl)
{
    if (!cl)
        return;
    cl->freeing = true;
    while (!TAILQ_EMPTY(&cl->reqs))
        req_free(TAILQ_FIRST(&cl->reqs));
    while (!TAILQ_EMPTY(&cl->conns))
        conn_close(TAILQ_FIRST(&cl->conns), "client freed");
    if (cl->kick)
        event_free(cl->kick);
    cl->kick = NULL;
    if (cl->cbs)
        nghttp2_session_callbacks_del(cl->cbs);
    cl->cbs = NULL;
    SSL_CTX_free(cl->ssl_ctx);
    cl->ssl_ctx = NULL;
    free(cl->host);
    cl->host = NULL;
    free(cl->authority);
    cl->authority = NULL;
    free(cl->path);
    cl->path = NULL;
    free(cl);
}

int tp_h2client_request(struct tp_h2client *cl, const struct tp_h2client_desc *desc,
                        tp_h2client_done_cb done, void *arg, struct tp_h2client_req **out)
{
    if (!cl || !desc || !done || !out || cl->freeing)
        return TP_ERR_INVALID;
    struct tp_str path =
        desc->path.len ? desc->path : (struct tp_str){cl->path, strlen(cl->path)};
    if (!tp_http_is_token(desc->method) || path.base[0] != '/' ||
        !is_vchars(path.base, path.len) || !is_field_value(desc->content_type) ||
        (desc->body_len && !desc->body) || (desc->body_len && !desc->has_body))
        return TP_ERR_INVALID;
    if (cl->nqueue >= cl->max_queue)
        return TP_ERR_TOO_LARGE;
    struct tp_h2client_req *r = calloc(1, sizeof(*r));
    if (!r)
        return TP_ERR_NOMEM;
    r->client = cl;
    r->done = done;
    r->arg = arg;
    r->state = R_DONE; /* not queued yet, for req_free */
    TAILQ_INSERT_TAIL(&cl->reqs, r, alink);
    size_t n = desc->method.len + path.len + desc->content_type.len;
    r->strs = malloc(n + 1);
    r->body = desc->body_len ? malloc(desc->body_len) : NULL;
    r->ev = evtimer_new(cl->base, req_event_cb, r);
    if (!r->strs || (desc->body_len && !r->body) || !r->ev) {
        req_free(r);
        return TP_ERR_NOMEM;
    }
    char *p = r->strs;
    memcpy(p, desc->method.base, desc->method.len);
    r->method = (struct tp_str){p, desc->method.len};
    p += desc->method.len;
    memcpy(p, path.base, path.len);
    r->path = (struct tp_str){p, path.len};
    p += path.len;
    if (desc->content_type.len)
        memcpy(p, desc->content_type.base, desc->content_type.len);
    r->content_type = (struct tp_str){p, desc->content_type.len};
    if (desc->body_len)
        memcpy(r->body, desc->body, desc->body_len);
    r->body_len = desc->body_len;
    r->has_body = desc->has_body;
    struct timeval tv = ms_tv(cl->timeout_ms);
    if (evtimer_add(r->ev, &tv) != 0) {
        req_free(r);
        return TP_ERR_NOMEM;
    }
    queue_push(r, false);
    *out = r;
    client_kick(cl);
    return 0;
}

void tp_h2client_cancel(struct tp_h2client_req *req)
{
    if (!req || req->in_cb)
        return;
    if (req->state == R_ACTIVE)
        req_abandon_stream(req);
    req_free(req);
}

void tp_h2client_stats(const struct tp_h2client *cl, struct tp_h2client_stats *st)
{
    memset(st, 0, sizeof(*st));
    const struct conn *c;
    TAILQ_FOREACH(c, &cl->conns, link)
    {
        st->conns++;
        if (c->state == C_READY && conn_live(c))
            st->ready++;
        st->streams += c->nstreams;
    }
    st->queued = cl->nqueue;
    st->connects = cl->connects;
    st->retries = cl->retries;
    st->last_close = cl->last_close;
}
