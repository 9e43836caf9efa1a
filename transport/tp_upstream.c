/* HTTP/1.1 upstream client with a per-worker keep-alive pool.

   Layout: the pool, its connections (conn_*) and requests (req_*); the sans-I/O
   response parser they drive is tp_upstream_resp.c. Each connection is torn down in
   exactly one place, conn_close(), with a fixed reason string. User callbacks are called only
   from event handlers, through wrappers that notice a cancel made from inside the
   callback; after anything that may tear a connection down, the caller returns. */
#include "tp_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tp_addr.h"
#include "tp_upstream_internal.h"

#define ADDR_MAX 8            /* resolved addresses kept per pool */
#define PARSE_CHUNK 16384     /* bytes handed to the parser at once */
#define PROCESS_ROUNDS 64     /* parse/deliver rounds per callback (CPU bound) */
#define READ_HIGH_WATER 65536 /* socket bytes read ahead of the parser (see
                                 conn_watch_input) */
#define READ_SIZE 32768       /* one cleartext read, unless a body needs more */
#define RECS_MAX 256          /* request-body accounting records per connection */

/* ------------------------------------------------------------------------------------ */
/* Pool, connections, requests                                                          */

enum conn_state { C_CONNECTING, C_ACTIVE, C_IDLE };
enum req_state { R_QUEUED, R_ACTIVE, R_DONE };

/* Request-body accounting: |skip| framing bytes, then |body| body bytes, in the order
   they sit in the connection's output buffer. */
struct rec {
    size_t skip;
    size_t body;
};

struct conn {
    struct tp_upstream_pool *pool;
    struct bufferevent *bev;
    struct evbuffer_cb_entry *outcb;
    struct event *timer;
    struct event *work; /* deferred input processing and deferred errors */
    struct event *rev;  /* cleartext: our own read event (see conn_sock_readcb) */
    enum conn_state state;
    size_t addr_idx; /* address being tried or in use */
    size_t tries;    /* addresses tried for this connect */
    bool reused;     /* served a response before the current request */
    bool in_idle;
    struct tp_upstream_req *req;
    struct tp_upstream_resp resp;
    bool resp_byte;     /* a response byte arrived for the current request */
    bool paused;        /* on_data said stop */
    bool input_full;    /* READ_HIGH_WATER bytes wait for the parser: not reading */
    bool sent_all;      /* the whole request left the output buffer */
    bool final_written; /* the whole request is in the output buffer */
    bool peer_gone;     /* EOF or error seen on the socket */
    bool peer_error;
    int deferred_err;
    struct rec recs[RECS_MAX];
    size_t rfirst, rcount;
    size_t credit; /* body bytes written, not yet reported through on_sent */
    TAILQ_ENTRY(conn) link;
    TAILQ_ENTRY(conn) ilink;
};

struct tp_upstream_req {
    struct tp_upstream_pool *pool;
    struct tp_upstream_cb cb;
    void *arg;
    char *head; /* serialized request line and fields, in this allocation */
    size_t head_len;
    bool idempotent, is_head, chunked, expects_body;
    int64_t content_length;
    uint64_t body_added;   /* body bytes taken through tp_upstream_send */
    uint64_t body_written; /* of which written to the socket */
    bool end_seen;
    struct evbuffer *pending; /* body bytes not yet in a connection's output; NULL
                                 for a request without a body */
    struct conn *conn;
    enum req_state state;
    bool head_delivered;
    bool cancelled, finished;
    bool failed; /* tp_upstream_send refused bytes: on_error is coming */
    unsigned in_cb;
    int pending_err;
    struct event *ev; /* queue deadline, and deferred errors; in this allocation */
    TAILQ_ENTRY(tp_upstream_req) qlink;
    TAILQ_ENTRY(tp_upstream_req) alink; /* every live request of the pool */
};

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(req_list, tp_upstream_req);

struct tp_upstream_pool {
    struct event_base *base;
    struct tp_upstream_opts opts; /* string members point at the copies below */
    char *host;
    char *tls_name; /* SNI and verification name, or NULL */
    bool tls_name_is_ip;
    char *ca_file;
    struct sockaddr_storage addrs[ADDR_MAX];
    socklen_t addrlens[ADDR_MAX];
    size_t naddrs;
    size_t addr_pref; /* the address that last connected */
    SSL_CTX *ssl_ctx;
    struct conn_list conns;
    struct conn_list idle; /* most recently used first */
    unsigned nconns, nidle;
    struct req_list queue;
    unsigned nqueue;
    struct req_list reqs; /* every live request, for pool_free */
    unsigned failures;
    bool kicking, kick_again, freeing;
    struct event *kick; /* new requests are given connections from the loop */
    const char *last_close;
};

static void pool_kick(struct tp_upstream_pool *pool);
static void pool_kick_cb(evutil_socket_t fd, short what, void *arg);
static bool conn_process(struct conn *c);
static void conn_fail(struct conn *c, int err, const char *reason);
static void conn_defer_error(struct conn *c, int err);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_sock_readcb(evutil_socket_t fd, short what, void *arg);

static struct timeval ms_tv(unsigned ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
}

/* --- requests ----------------------------------------------------------------------- */

static void req_free(struct tp_upstream_req *r)
{
    if (!r)
        return;
    TAILQ_REMOVE(&r->pool->reqs, r, alink);
    /* The event was assigned into this allocation: deleted, never freed. */
    if (r->ev)
        event_del(r->ev);
    r->ev = NULL;
    if (r->pending)
        evbuffer_free(r->pending);
    r->pending = NULL;
    r->head = NULL;
    free(r);
}

static void queue_remove(struct tp_upstream_req *r)
{
    struct tp_upstream_pool *pool = r->pool;
    TAILQ_REMOVE(&pool->queue, r, qlink);
    pool->nqueue--;
}

/* Final callbacks: |r| is detached from any connection and queue; freed afterwards. */
static void req_finish_end(struct tp_upstream_req *r)
{
    r->state = R_DONE;
    r->finished = true;
    r->in_cb++;
    if (r->cb.on_end)
        r->cb.on_end(r->arg);
    req_free(r);
}

static void req_finish_error(struct tp_upstream_req *r, int err)
{
    r->state = R_DONE;
    r->finished = true;
    r->in_cb++;
    if (r->cb.on_error)
        r->cb.on_error(r->arg, err, r->head_delivered);
    req_free(r);
}

static void req_cancel_now(struct tp_upstream_req *r);

/* Non-final callbacks go through these; each returns false when the request was
   cancelled from inside the callback, in which case everything it held is gone. */
static bool req_call_head(struct tp_upstream_req *r, const struct tp_upstream_resp *resp)
{
    r->in_cb++;
    if (r->cb.on_head)
        r->cb.on_head(r->arg, resp->status, resp->view, resp->nfields,
                      resp->content_length);
    r->in_cb--;
    if (r->cancelled) {
        req_cancel_now(r);
        return false;
    }
    return true;
}

static bool req_call_data(struct tp_upstream_req *r, struct evbuffer *data, bool *more)
{
    r->in_cb++;
    *more = r->cb.on_data ? r->cb.on_data(r->arg, data) : true;
    if (!r->cb.on_data)
        evbuffer_drain(data, evbuffer_get_length(data));
    r->in_cb--;
    if (r->cancelled) {
        req_cancel_now(r);
        return false;
    }
    return true;
}

static bool req_call_sent(struct tp_upstream_req *r, size_t n)
{
    r->in_cb++;
    if (r->cb.on_sent)
        r->cb.on_sent(r->arg, n);
    r->in_cb--;
    if (r->cancelled) {
        req_cancel_now(r);
        return false;
    }
    return true;
}

static void req_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_upstream_req *r = arg;
    (void)fd;
    (void)what;
    if (r->pending_err) {
        req_finish_error(r, r->pending_err);
        return;
    }
    if (r->state == R_QUEUED) {
        /* No connection freed up in time. */
        queue_remove(r);
        req_finish_error(r, TP_ERR_TIMEOUT);
    }
}

/* Reports |err| for a request that holds no connection, from the loop. */
static void req_defer_error(struct tp_upstream_req *r, int err)
{
    r->pending_err = err;
    r->state = R_DONE;
    event_active(r->ev, EV_TIMEOUT, 0);
}

/* Queues |r| under its deadline. Returns TP_ERR_NOMEM, with |r| not queued, when the
   deadline could not be armed (growing the timer heap needs memory). */
static int queue_push(struct tp_upstream_req *r)
{
    struct tp_upstream_pool *pool = r->pool;
    struct timeval tv = ms_tv(pool->opts.first_byte_timeout_ms);
    if (evtimer_add(r->ev, &tv) != 0)
        return TP_ERR_NOMEM;
    r->state = R_QUEUED;
    TAILQ_INSERT_TAIL(&pool->queue, r, qlink);
    pool->nqueue++;
    return 0;
}

/* --- request serialisation ---------------------------------------------------------- */

/* Visible ASCII only: no space, no control, no NUL, no 8-bit (a target or authority
   must be percent-encoded by now). */
static bool is_vchars(struct tp_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* A field value may hold HTAB, SP and 8-bit bytes, but no CR, LF, NUL or other
   control: anything else would let a value end the line and smuggle a field. */
static bool is_field_value(struct tp_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Returns true for fields we never forward as given: hop-by-hop ones, and those whose
   value we decide (host, framing). Names are compared without regard to case. */
static bool field_dropped(struct tp_str name)
{
    char low[32];
    if (name.len >= sizeof(low))
        return false;
    for (size_t i = 0; i < name.len; i++) {
        char c = name.base[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    struct tp_str l = {low, name.len};
    return tp_http_hop_by_hop(l) || tp_str_eq(l, "host") ||
           tp_str_eq(l, "content-length");
}

/* Appends to a head being serialized. With |p| NULL only the length is counted, so
   the same code sizes the buffer and then fills it. */
struct headw {
    char *p;
    size_t len;
};

static void put(struct headw *w, const char *s, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_lower(struct headw *w, struct tp_str s)
{
    if (w->p)
        for (size_t i = 0; i < s.len; i++) {
            char c = s.base[i];
            w->p[w->len + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    w->len += s.len;
}

static void write_head(struct headw *w, const struct tp_upstream_pool *pool,
                       const struct tp_upstream_desc *d, const struct tp_upstream_req *r,
                       const char *cl, size_t cl_len)
{
    put(w, d->method.base, d->method.len);
    put(w, " ", 1);
    put(w, d->path.base, d->path.len);
    put(w, " HTTP/1.1\r\nhost: ", 17);
    put(w, d->authority.base, d->authority.len);
    put(w, "\r\n", 2);
    for (size_t i = 0; i < d->nheaders; i++) {
        const struct tp_header *h = &d->headers[i];
        if (field_dropped(h->name))
            continue;
        put_lower(w, h->name);
        put(w, ": ", 2);
        put(w, h->value.base, h->value.len);
        put(w, "\r\n", 2);
    }
    if (r->expects_body && r->chunked)
        put(w, "transfer-encoding: chunked\r\n", 28);
    else
        put(w, cl, cl_len);
    if (pool->opts.max_idle == 0)
        put(w, "connection: close\r\n", 19);
    put(w, "\r\n", 2);
}

/* Checks |d| and serializes its head into one allocation that also holds the request
   object and its event (one malloc per request instead of five). */
static int build_req(struct tp_upstream_pool *pool, const struct tp_upstream_desc *d,
                     const struct tp_upstream_req *proto, struct tp_upstream_req **out)
{
    if (!tp_http_is_token(d->method) || d->path.len == 0 || !is_vchars(d->path) ||
        !(d->path.base[0] == '/' || tp_str_eq(d->path, "*")) || !is_vchars(d->authority))
        return TP_ERR_INVALID;
    if (d->nheaders > 0 && !d->headers)
        return TP_ERR_INVALID;
    for (size_t i = 0; i < d->nheaders; i++)
        if (!tp_http_is_token(d->headers[i].name) || !is_field_value(d->headers[i].value))
            return TP_ERR_INVALID;
    char cl[64];
    size_t cl_len = 0;
    if (!(proto->expects_body && proto->chunked) &&
        (proto->expects_body || !proto->idempotent)) {
        /* A POST without a body still says so: some servers want a length. */
        int n = snprintf(cl, sizeof(cl), "content-length: %lld\r\n",
                         (long long)(proto->expects_body ? proto->content_length : 0));
        if (n < 0 || (size_t)n >= sizeof(cl))
            return TP_ERR_INVALID;
        cl_len = (size_t)n;
    }
    struct headw w = {NULL, 0};
    write_head(&w, pool, d, proto, cl, cl_len);
    const size_t align = 16;
    size_t ev_off = (sizeof(*proto) + align - 1) / align * align;
    size_t head_off = ev_off + event_get_struct_event_size();
    if (w.len > SIZE_MAX - head_off)
        return TP_ERR_TOO_LARGE;
    char *block = malloc(head_off + w.len);
    if (!block)
        return TP_ERR_NOMEM;
    struct tp_upstream_req *r = (struct tp_upstream_req *)(void *)block;
    *r = *proto;
    r->ev = (struct event *)(void *)(block + ev_off);
    r->head = block + head_off;
    r->head_len = w.len;
    struct headw fill = {r->head, 0};
    write_head(&fill, pool, d, r, cl, cl_len);
    if (event_assign(r->ev, pool->base, -1, 0, req_event_cb, r) != 0) {
        free(block);
        return TP_ERR_NOMEM;
    }
    *out = r;
    return 0;
}

/* --- connections -------------------------------------------------------------------- */

static void rec_reset(struct conn *c)
{
    c->rfirst = c->rcount = 0;
    c->credit = 0;
}

static void rec_add(struct conn *c, size_t skip, size_t body)
{
    if (c->rcount > 0) {
        struct rec *last = &c->recs[(c->rfirst + c->rcount - 1) % RECS_MAX];
        if (last->body == 0) {
            last->skip += skip;
            last->body = body;
            return;
        }
        if (skip == 0) {
            last->body += body;
            return;
        }
    }
    /* conn_flush_body keeps two records free before adding. */
    c->recs[(c->rfirst + c->rcount) % RECS_MAX] = (struct rec){skip, body};
    c->rcount++;
}

/* Output drained by |n| bytes: moves written body bytes to credit. Runs inside
   libevent's write path, so it only counts and re-arms; on_sent is called from the
   write callback. */
static void rec_consume(struct conn *c, size_t n)
{
    while (n > 0 && c->rcount > 0) {
        struct rec *r = &c->recs[c->rfirst];
        size_t take = n < r->skip ? n : r->skip;
        r->skip -= take;
        n -= take;
        take = n < r->body ? n : r->body;
        r->body -= take;
        n -= take;
        c->credit += take;
        if (c->req)
            c->req->body_written += take;
        if (r->skip == 0 && r->body == 0) {
            c->rfirst = (c->rfirst + 1) % RECS_MAX;
            c->rcount--;
        }
    }
}

static void conn_arm_timer(struct conn *c)
{
    const struct tp_upstream_opts *o = &c->pool->opts;
    unsigned ms;
    switch (c->state) {
    case C_CONNECTING:
        ms = o->connect_timeout_ms;
        break;
    case C_IDLE:
        ms = o->idle_timeout_ms;
        break;
    case C_ACTIVE:
    default:
        if (c->paused) {
            /* The reader is slow, not the backend: the client side has its own
               deadlines. */
            evtimer_del(c->timer);
            return;
        }
        ms = (!c->resp_byte && c->sent_all) ? o->first_byte_timeout_ms
                                            : o->idle_timeout_ms;
        break;
    }
    struct timeval tv = ms_tv(ms);
    /* Growing the timer heap may need memory; a connection without its deadline could
       wait forever, so it fails from the loop instead. */
    if (evtimer_add(c->timer, &tv) != 0)
        conn_defer_error(c, TP_ERR_NOMEM);
}

static void conn_detach(struct conn *c)
{
    if (c->req) {
        c->req->conn = NULL;
        c->req = NULL;
    }
}

/* Reading on or off: our own read event on a cleartext connection, the
   bufferevent's on a TLS one. Returns 0, or -1 when the event could not be added. */
static int conn_set_reading(struct conn *c, bool on)
{
    if (c->rev)
        return on ? event_add(c->rev, NULL) : event_del(c->rev);
    return on ? bufferevent_enable(c->bev, EV_READ) : bufferevent_disable(c->bev, EV_READ);
}

static bool conn_reading(const struct conn *c)
{
    if (c->rev)
        return event_pending(c->rev, EV_READ, NULL) != 0;
    return (bufferevent_get_enabled(c->bev) & EV_READ) != 0;
}

static void conn_drop_bev(struct conn *c)
{
    if (c->rev)
        event_free(c->rev);
    c->rev = NULL;
    if (!c->bev)
        return;
    if (c->outcb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->outcb);
    c->outcb = NULL;
    bufferevent_free(c->bev);
    c->bev = NULL;
}

/* The one teardown of a connection. |c| is freed; the request, if any, must have been
   detached (it is detached here otherwise, without callbacks). */
static void conn_close(struct conn *c, const char *reason)
{
    struct tp_upstream_pool *pool = c->pool;
    pool->last_close = reason;
    conn_detach(c);
    if (c->in_idle) {
        TAILQ_REMOVE(&pool->idle, c, ilink);
        pool->nidle--;
        c->in_idle = false;
    }
    TAILQ_REMOVE(&pool->conns, c, link);
    pool->nconns--;
    conn_drop_bev(c);
    if (c->timer)
        event_free(c->timer);
    c->timer = NULL;
    if (c->work)
        event_free(c->work);
    c->work = NULL;
    tp_upstream_resp_clear(&c->resp);
    free(c);
    pool_kick(pool);
}

static void conn_defer_error(struct conn *c, int err)
{
    if (!c->deferred_err)
        c->deferred_err = err;
    event_active(c->work, EV_TIMEOUT, 0);
}

/* Notices that the whole request has left: from then on the first-byte deadline runs. */
static void conn_check_sent(struct conn *c)
{
    if (c->final_written && !c->sent_all &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        c->sent_all = true;
        conn_arm_timer(c);
    }
}

/* Stops reading while READ_HIGH_WATER bytes wait for the parser and reads again once
   they are taken. This is libevent's read high-water mark kept by hand: in libevent
   2.1.12 bufferevent_setwatermark dereferences an allocation it never checks. A read
   paused by the reader (c->paused) or ended by the peer stays off. */
static void conn_watch_input(struct conn *c)
{
    bool full = evbuffer_get_length(bufferevent_get_input(c->bev)) >= READ_HIGH_WATER;
    if (full == c->input_full)
        return;
    c->input_full = full;
    if (full)
        conn_set_reading(c, false);
    else if (!c->paused && !c->peer_gone && conn_set_reading(c, true) != 0)
        conn_defer_error(c, TP_ERR_NOMEM);
}

/* Body bytes written straight to the socket. Their credit goes out from the loop:
   on_sent is never called from inside a call. */
static void conn_body_written(struct conn *c, size_t n)
{
    c->credit += n;
    c->req->body_written += n;
    /* Progress, as conn_outcb counts it for buffered bytes. */
    conn_arm_timer(c);
    event_active(c->work, EV_TIMEOUT, 0);
}

/* Moves waiting body bytes into the output, with chunk framing when chunked. */
static int conn_flush_body(struct conn *c)
{
    struct tp_upstream_req *r = c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t n = r->pending ? evbuffer_get_length(r->pending) : 0;
    if (n > 0 && c->rcount + 2 <= RECS_MAX) {
        if (r->chunked) {
            char pre[32];
            int pl = snprintf(pre, sizeof(pre), "%zx\r\n", n);
            if (pl < 0 || (size_t)pl >= sizeof(pre))
                return TP_ERR_INVALID;
            if (evbuffer_add(out, pre, (size_t)pl) == -1 ||
                evbuffer_add_buffer(out, r->pending) == -1 ||
                evbuffer_add(out, "\r\n", 2) == -1)
                return TP_ERR_NOMEM;
            rec_add(c, (size_t)pl, n);
            rec_add(c, 2, 0);
        } else {
            /* Cleartext with nothing queued: written now, as the head is. */
            size_t done = 0;
            if (!c->pool->ssl_ctx && evbuffer_get_length(out) == 0) {
                evutil_socket_t fd = bufferevent_getfd(c->bev);
                int w = fd == -1 ? -1 : evbuffer_write(r->pending, fd);
                if (w > 0) {
                    done = (size_t)w;
                    conn_body_written(c, done);
                } else {
                    errno = 0;
                }
            }
            if (n > done) {
                if (evbuffer_add_buffer(out, r->pending) == -1)
                    return TP_ERR_NOMEM;
                rec_add(c, 0, n - done);
            }
        }
    }
    if (r->end_seen && (!r->pending || evbuffer_get_length(r->pending) == 0) &&
        !c->final_written) {
        if (r->chunked) {
            if (evbuffer_add(out, "0\r\n\r\n", 5) == -1)
                return TP_ERR_NOMEM;
            rec_add(c, 5, 0);
        }
        c->final_written = true;
        conn_check_sent(c);
    }
    return 0;
}

#define DIRECT_IOV 8 /* head + body pieces written by one sendmsg */

/* Cleartext with nothing queued: the head, and as much of a Content-Length body as is
   already waiting, go out in this one system call instead of waiting a loop turn for
   writability (two epoll_ctl and a wake-up). Returns the head bytes written; body
   bytes written are taken from the request's pending buffer. Whatever is not written,
   an error included, is left to the bufferevent, whose own write then reports the
   error. */
static size_t write_head_now(struct conn *c)
{
    struct tp_upstream_req *r = c->req;
    if (c->pool->ssl_ctx || evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
        return 0;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd == -1)
        return 0;
    struct iovec iov[DIRECT_IOV];
    size_t niov = 1;
    iov[0] = (struct iovec){.iov_base = r->head, .iov_len = r->head_len};
    if (r->pending && !r->chunked) {
        struct evbuffer_iovec v[DIRECT_IOV - 1];
        int k = evbuffer_peek(r->pending, -1, NULL, v, DIRECT_IOV - 1);
        for (int i = 0; i < k && i < DIRECT_IOV - 1; i++)
            iov[niov++] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = v[i].iov_len};
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = niov};
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) {
        errno = 0;
        return 0;
    }
    size_t head = (size_t)n < r->head_len ? (size_t)n : r->head_len;
    size_t body = (size_t)n - head;
    if (body > 0) {
        evbuffer_drain(r->pending, body);
        conn_body_written(c, body);
    }
    return head;
}

static void conn_write_request(struct conn *c)
{
    struct tp_upstream_req *r = c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->state = C_ACTIVE;
    rec_reset(c);
    if (!r->expects_body)
        r->end_seen = true;
    size_t done = write_head_now(c);
    if (done < r->head_len &&
        evbuffer_add(out, r->head + done, r->head_len - done) == -1) {
        conn_defer_error(c, TP_ERR_NOMEM);
        return;
    }
    rec_add(c, r->head_len - done, 0);
    int rv = conn_flush_body(c);
    if (rv < 0) {
        conn_defer_error(c, rv);
        return;
    }
    conn_arm_timer(c);
}

/* Gives |r| to |c|: written now if |c| is connected, once it connects otherwise. */
static void conn_attach(struct conn *c, struct tp_upstream_req *r)
{
    c->req = r;
    r->conn = c;
    r->state = R_ACTIVE;
    tp_upstream_resp_reset(&c->resp, r->is_head);
    c->resp_byte = c->paused = c->sent_all = c->final_written = false;
    c->input_full = false;
    /* deferred_err stays: a connection that failed (a deadline it could not arm)
       fails the request it is given, from the loop. */
    c->peer_gone = c->peer_error = false;
    rec_reset(c);
    if (c->state == C_IDLE) {
        /* Idle connections keep reading and writing enabled; enabling writing again
           would arm the write event with nothing to write (an epoll_ctl, a wake-up,
           another epoll_ctl). */
        if ((!(bufferevent_get_enabled(c->bev) & EV_WRITE) &&
             bufferevent_enable(c->bev, EV_WRITE) != 0) ||
            (!conn_reading(c) && conn_set_reading(c, true) != 0)) {
            conn_defer_error(c, TP_ERR_NOMEM);
            return;
        }
        conn_write_request(c);
    }
}

/* Returns true if an idle connection can carry a request: nothing unread, and the
   peer has not closed. Idle connections keep their read event armed, so a close or
   stray bytes normally close them from conn_eventcb or conn_readcb before anyone asks.
   What remains is a close the loop has not dispatched yet: one MSG_PEEK catches a
   close already in the socket. Nothing is ever resent, so a close racing past this
   check costs that request an error, never a second copy. */
static bool conn_alive(struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return false;
    /* Reading stops when EOF or an error is read (by libevent on a TLS connection,
       before our deferred event callback has run). */
    if (!conn_reading(c))
        return false;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd == -1)
        return false;
    char b;
    for (int i = 0; i < 2; i++) {
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == -1 && errno == EINTR)
            continue;
        return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return false;
}

/* Back to the idle pool (or closed if the pool is full). */
static void conn_release(struct conn *c)
{
    struct tp_upstream_pool *pool = c->pool;
    conn_detach(c);
    c->state = C_IDLE;
    c->reused = true;
    c->paused = c->input_full = false;
    rec_reset(c);
    tp_upstream_resp_reset(&c->resp, false);
    if (pool->nidle >= pool->opts.max_idle) {
        conn_close(c, "idle pool full");
        return;
    }
    /* Keep reading while idle, to notice the peer's close or stray bytes at once; an
       idle connection that cannot read could not tell a close from silence. */
    if (conn_set_reading(c, true) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    TAILQ_INSERT_HEAD(&pool->idle, c, ilink);
    c->in_idle = true;
    pool->nidle++;
    conn_arm_timer(c);
    pool_kick(pool);
}

/* The response is complete and its body delivered. */
static void conn_complete(struct conn *c)
{
    struct tp_upstream_req *r = c->req;
    struct tp_upstream_pool *pool = c->pool;
    bool reuse = c->resp.keep_alive && c->final_written && !c->deferred_err &&
                 evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
                 !c->peer_gone &&
                 evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
                 pool->opts.max_idle > 0;
    const char *why = !c->resp.keep_alive        ? "response asked close"
                      : pool->opts.max_idle == 0 ? "keep-alive disabled"
                                                 : "connection not reusable";
    conn_detach(c);
    if (reuse)
        conn_release(c);
    else
        conn_close(c, why);
    req_finish_end(r);
}

/* Fails the current request and closes |c|. Never a resend: once a request's bytes
   have left, the backend may have acted on them (a ballot must not arrive twice, and
   a close with no answer does not say it did not), whatever the method. */
static void conn_fail(struct conn *c, int err, const char *reason)
{
    struct tp_upstream_pool *pool = c->pool;
    struct tp_upstream_req *r = c->req;
    /* Deferred errors are ours (memory, a refused body), not the backend's. */
    bool local = c->deferred_err != 0;
    conn_detach(c);
    conn_close(c, reason);
    if (!r)
        return;
    if (!r->head_delivered && !local && pool->failures < UINT_MAX)
        pool->failures++;
    req_finish_error(r, err);
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->state != C_ACTIVE || !c->req) {
        conn_close(c, "data on idle connection");
        return;
    }
    c->resp_byte = true;
    conn_arm_timer(c);
    if (!conn_process(c))
        return;
    conn_watch_input(c);
}

/* Reads a cleartext connection (the bufferevent reads TLS ones). libevent 2.1 asks
   FIONREAD before every read and reads at most 4 KiB: two system calls per read where
   one does, five of each for a 16 KiB body. Here one readv takes up to READ_SIZE, or
   the whole rest of a body whose length the head gave, never past the read high-water
   mark. EOF and errors reach conn_eventcb as the bufferevent reports them. */
static void conn_sock_readcb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t inlen = evbuffer_get_length(in);
    if (inlen >= READ_HIGH_WATER)
        return;
    size_t want = READ_SIZE;
    const struct tp_upstream_resp *resp = &c->resp;
    if (resp->head_done && !resp->done && !resp->no_body && resp->content_length >= 0) {
        uint64_t have = (uint64_t)resp->body_len + inlen;
        if (have < (uint64_t)resp->content_length &&
            (uint64_t)resp->content_length - have > want)
            want = (size_t)((uint64_t)resp->content_length - have);
    }
    if (want > READ_HIGH_WATER - inlen)
        want = READ_HIGH_WATER - inlen;
    /* The bufferevent keeps its input's end frozen outside its own reads. */
    evbuffer_unfreeze(in, 0);
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
    if (nv < 1) {
        evbuffer_freeze(in, 0);
        conn_defer_error(c, TP_ERR_NOMEM);
        return;
    }
    struct iovec iov[2];
    size_t room = want;
    for (int i = 0; i < nv; i++) {
        size_t n = v[i].iov_len < room ? v[i].iov_len : room;
        iov[i] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = n};
        room -= n;
    }
    ssize_t n = readv(fd, iov, nv);
    int rv = 0;
    if (n > 0) {
        size_t left = (size_t)n;
        int used = 0;
        for (; used < nv && left > 0; used++) {
            v[used].iov_len = left < iov[used].iov_len ? left : iov[used].iov_len;
            left -= v[used].iov_len;
        }
        rv = evbuffer_commit_space(in, v, used);
    }
    evbuffer_freeze(in, 0);
    if (n > 0) {
        if (rv != 0)
            conn_defer_error(c, TP_ERR_NOMEM);
        else
            conn_readcb(c->bev, c);
        return;
    }
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        errno = 0;
        return;
    }
    conn_set_reading(c, false);
    conn_eventcb(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    struct tp_upstream_req *r = c->req;
    if (c->state != C_ACTIVE || !r)
        return;
    int rv = conn_flush_body(c);
    if (rv < 0) {
        conn_fail(c, rv, "out of memory");
        return;
    }
    conn_check_sent(c);
    if (c->credit > 0) {
        size_t n = c->credit;
        c->credit = 0;
        if (!req_call_sent(r, n))
            return;
    }
}

static void conn_outcb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                       void *arg)
{
    struct conn *c = arg;
    (void)buf;
    if (info->n_deleted == 0)
        return;
    rec_consume(c, info->n_deleted);
    if (c->state == C_ACTIVE)
        conn_arm_timer(c);
}

static int conn_connect(struct conn *c);

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct tp_upstream_pool *pool = c->pool;

    if (what & BEV_EVENT_CONNECTED) {
        pool->addr_pref = c->addr_idx;
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        /* Small requests should not wait for Nagle; failure only costs latency. */
        if (fd != -1 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
            errno = 0;
        if (c->req) {
            if (!pool->ssl_ctx && fd != -1)
                c->rev = event_new(pool->base, fd, EV_READ | EV_PERSIST, conn_sock_readcb, c);
            if ((!pool->ssl_ctx && !c->rev) || bufferevent_enable(bev, EV_WRITE) != 0 ||
                conn_set_reading(c, true) != 0) {
                conn_defer_error(c, TP_ERR_NOMEM);
                return;
            }
            conn_write_request(c);
        } else {
            conn_close(c, "connected without a request");
        }
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;

    if (c->state == C_CONNECTING) {
        bool tls_err = false;
        if (pool->ssl_ctx) {
            while (bufferevent_get_openssl_error(bev) != 0)
                tls_err = true;
        }
        ERR_clear_error();
        /* Refused or unreachable: try the next address, within the same deadline. */
        if (!tls_err && (what & BEV_EVENT_ERROR) && c->tries < pool->naddrs) {
            conn_drop_bev(c);
            if (conn_connect(c) == 0)
                return;
        }
        conn_fail(c, TP_ERR_CONNECT, tls_err ? "tls handshake failed" : "connect failed");
        return;
    }
    if (c->state == C_IDLE || !c->req) {
        conn_close(c, "idle connection closed by peer");
        return;
    }
    ERR_clear_error();
    c->peer_gone = true;
    c->peer_error = (what & BEV_EVENT_ERROR) != 0;
    /* Bytes read before the close are parsed first (unless the reader paused us). */
    if (!c->paused)
        conn_process(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case C_CONNECTING:
        conn_fail(c, TP_ERR_TIMEOUT, "connect timeout");
        return;
    case C_IDLE:
        conn_close(c, "idle timeout");
        return;
    case C_ACTIVE:
    default:
        conn_fail(c, TP_ERR_TIMEOUT,
                  c->resp_byte  ? "response idle timeout"
                  : c->sent_all ? "first byte timeout"
                                : "request send timeout");
        return;
    }
}

static void conn_work_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->deferred_err) {
        conn_fail(c, c->deferred_err, "local error");
        return;
    }
    /* Body bytes written directly by conn_flush_body. */
    if (c->state == C_ACTIVE && c->req && c->credit > 0) {
        size_t n = c->credit;
        c->credit = 0;
        if (!req_call_sent(c->req, n))
            return;
    }
    if (c->state == C_ACTIVE && c->req && !c->paused && conn_process(c))
        conn_watch_input(c);
}

/* Parses what was read and delivers it. Returns false if |c| (or its request) is gone
   and must not be touched. */
static bool conn_process(struct conn *c)
{
    struct tp_upstream_req *r = c->req;
    struct tp_upstream_pool *pool = c->pool;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t cap = pool->opts.buffer_cap ? pool->opts.buffer_cap : PARSE_CHUNK;

    for (unsigned round = 0; round < PROCESS_ROUNDS; round++) {
        bool progress = false;
        while (!c->resp.done && evbuffer_get_length(c->resp.body) < cap &&
               evbuffer_get_length(in) > 0) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
                break;
            size_t len = v.iov_len < PARSE_CHUNK ? v.iov_len : PARSE_CHUNK;
            size_t used = 0;
            int rv = tp_upstream_resp_feed(&c->resp, v.iov_base, len, &used);
            if (rv < 0) {
                conn_fail(c, rv,
                          rv == TP_ERR_TOO_LARGE ? "response too large"
                                                 : "malformed response");
                return false;
            }
            evbuffer_drain(in, used);
            progress = true;
        }
        if (c->resp.done && evbuffer_get_length(in) > 0) {
            conn_fail(c, TP_ERR_PROTO, "bytes after the response");
            return false;
        }
        /* The peer closed and everything it sent is parsed: that may end a body read
           until close, or cut the response short. */
        if (c->peer_gone && !c->resp.done && evbuffer_get_length(in) == 0) {
            int rv = c->peer_error ? TP_ERR_CLOSED : tp_upstream_resp_eof(&c->resp);
            if (rv < 0) {
                conn_fail(c, rv, "closed mid-response");
                return false;
            }
            progress = true;
        }
        if (c->resp.head_done && !r->head_delivered) {
            r->head_delivered = true;
            pool->failures = 0;
            if (!req_call_head(r, &c->resp))
                return false;
            progress = true;
        }
        size_t blen = evbuffer_get_length(c->resp.body);
        if (r->head_delivered && !c->paused && blen > 0) {
            bool more = true;
            if (!req_call_data(r, c->resp.body, &more))
                return false;
            if (evbuffer_get_length(c->resp.body) != blen)
                progress = true;
            if (!more) {
                c->paused = true;
                conn_set_reading(c, false);
                conn_arm_timer(c);
            }
        }
        if (c->resp.done && evbuffer_get_length(c->resp.body) == 0) {
            conn_complete(c);
            return false;
        }
        if (c->paused || !progress)
            return true;
    }
    /* Bounded work per callback: continue on the next loop turn. */
    event_active(c->work, EV_TIMEOUT, 0);
    return true;
}

static int conn_connect(struct conn *c)
{
    struct tp_upstream_pool *pool = c->pool;
    const int flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

    while (c->tries < pool->naddrs) {
        size_t idx = (pool->addr_pref + c->tries) % pool->naddrs;
        c->tries++;
        struct bufferevent *bev = NULL;
        if (pool->ssl_ctx) {
            SSL *ssl = SSL_new(pool->ssl_ctx);
            if (!ssl)
                return TP_ERR_NOMEM;
            bool ok = true;
            if (pool->tls_name && !pool->tls_name_is_ip &&
                SSL_set_tlsext_host_name(ssl, pool->tls_name) != 1)
                ok = false;
            if (ok && pool->opts.verify && pool->tls_name) {
                if (pool->tls_name_is_ip) {
                    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                       pool->tls_name) == 1;
                } else {
                    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                    ok = SSL_set1_host(ssl, pool->tls_name) == 1;
                }
            }
            if (!ok) {
                SSL_free(ssl);
                ERR_clear_error();
                return TP_ERR_CRYPTO;
            }
            bev = bufferevent_openssl_socket_new(pool->base, -1, ssl,
                                                 BUFFEREVENT_SSL_CONNECTING, flags);
            if (!bev) /* libevent freed |ssl| (BEV_OPT_CLOSE_ON_FREE) */
                return TP_ERR_NOMEM;
        } else {
            bev = bufferevent_socket_new(pool->base, -1, flags);
            if (!bev)
                return TP_ERR_NOMEM;
        }
        c->bev = bev;
        c->addr_idx = idx;
        bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
        c->outcb = evbuffer_add_cb(bufferevent_get_output(bev), conn_outcb, c);
        if (!c->outcb) {
            conn_drop_bev(c);
            return TP_ERR_NOMEM;
        }
        /* The write callback after every write that leaves at most buffer_cap queued:
           that is where on_sent credit goes out. */
        bufferevent_setwatermark(bev, EV_WRITE, pool->opts.buffer_cap, 0);
        if (bufferevent_socket_connect(bev, (struct sockaddr *)&pool->addrs[idx],
                                       (int)pool->addrlens[idx]) == 0)
            return 0;
        conn_drop_bev(c);
    }
    ERR_clear_error();
    return TP_ERR_CONNECT;
}

static int conn_new(struct tp_upstream_pool *pool, struct conn **out)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return TP_ERR_NOMEM;
    c->pool = pool;
    c->state = C_CONNECTING;
    if (tp_upstream_resp_init(&c->resp, pool->opts.max_response_header,
                              pool->opts.max_response_body, false) < 0) {
        free(c);
        return TP_ERR_NOMEM;
    }
    c->timer = evtimer_new(pool->base, conn_timer_cb, c);
    c->work = event_new(pool->base, -1, 0, conn_work_cb, c);
    if (!c->timer || !c->work) {
        if (c->timer)
            event_free(c->timer);
        if (c->work)
            event_free(c->work);
        tp_upstream_resp_clear(&c->resp);
        free(c);
        return TP_ERR_NOMEM;
    }
    TAILQ_INSERT_TAIL(&pool->conns, c, link);
    pool->nconns++;
    int rv = conn_connect(c);
    if (rv < 0) {
        conn_close(c, "connect failed");
        return rv;
    }
    conn_arm_timer(c);
    *out = c;
    return 0;
}

/* Assigns connections to waiting requests in FIFO order. Calls no user callback. */
static void pool_kick(struct tp_upstream_pool *pool)
{
    if (pool->freeing)
        return;
    if (pool->kicking) {
        pool->kick_again = true;
        return;
    }
    pool->kicking = true;
    do {
        pool->kick_again = false;
        while (!TAILQ_EMPTY(&pool->queue)) {
            struct tp_upstream_req *r = TAILQ_FIRST(&pool->queue);
            struct conn *c = NULL;
            while (!c && !TAILQ_EMPTY(&pool->idle)) {
                struct conn *ic = TAILQ_FIRST(&pool->idle);
                TAILQ_REMOVE(&pool->idle, ic, ilink);
                ic->in_idle = false;
                pool->nidle--;
                if (conn_alive(ic))
                    c = ic;
                else
                    conn_close(ic, "stale idle connection");
            }
            if (!c) {
                if (pool->opts.max_conns && pool->nconns >= pool->opts.max_conns)
                    break;
                queue_remove(r);
                evtimer_del(r->ev);
                int rv = conn_new(pool, &c);
                if (rv < 0) {
                    if (pool->failures < UINT_MAX)
                        pool->failures++;
                    req_defer_error(r, rv);
                    continue;
                }
            } else {
                queue_remove(r);
                evtimer_del(r->ev);
                evtimer_del(c->timer);
            }
            conn_attach(c, r);
        }
    } while (pool->kick_again);
    pool->kicking = false;
}

static void pool_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_kick(arg);
}

/* --- cancel ------------------------------------------------------------------------- */

static void req_cancel_now(struct tp_upstream_req *r)
{
    struct conn *c = r->conn;
    if (r->state == R_QUEUED) {
        queue_remove(r);
    } else if (c) {
        bool clean = c->resp.done && !c->deferred_err &&
                     evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 &&
                     c->resp.keep_alive && c->final_written && !c->peer_gone &&
                     evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
        conn_detach(c);
        if (clean)
            conn_release(c);
        else
            conn_close(c, "request cancelled");
    }
    req_free(r);
}

void tp_upstream_cancel(struct tp_upstream_req *req)
{
    if (!req || req->finished)
        return;
    if (req->in_cb) {
        req->cancelled = true;
        return;
    }
    req_cancel_now(req);
}

/* --- public API --------------------------------------------------------------------- */

void tp_upstream_opts_default(struct tp_upstream_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->verify = true;
    o->max_idle = 32;
    o->max_conns = 256;
    o->connect_timeout_ms = 5000;
    o->first_byte_timeout_ms = 30000;
    o->idle_timeout_ms = 60000;
    o->max_response_header = 64 * 1024;
    o->max_response_body = -1;
    o->buffer_cap = 256 * 1024;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int pool_tls_init(struct tp_upstream_pool *pool)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return TP_ERR_NOMEM;
    int rv = TP_ERR_CRYPTO;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        goto fail;
    if (pool->opts.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (pool->ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, pool->ca_file, NULL) != 1) {
                rv = TP_ERR_INVALID;
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    pool->ssl_ctx = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rv;
}

static int pool_resolve(struct tp_upstream_pool *pool)
{
    return tp_addr_resolve(pool->host, pool->opts.port, pool->addrs, pool->addrlens,
                           ADDR_MAX, &pool->naddrs);
}

int tp_upstream_pool_new(struct event_base *base, const struct tp_upstream_opts *opts,
                         struct tp_upstream_pool **out)
{
    if (!base || !opts || !out || !opts->host || !opts->host[0] || opts->port == 0 ||
        opts->connect_timeout_ms == 0 || opts->first_byte_timeout_ms == 0 ||
        opts->idle_timeout_ms == 0 || opts->max_response_header == 0 ||
        opts->buffer_cap == 0)
        return TP_ERR_INVALID;
    struct tp_upstream_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return TP_ERR_NOMEM;
    int rv = TP_ERR_NOMEM;
    pool->base = base;
    pool->opts = *opts;
    TAILQ_INIT(&pool->conns);
    TAILQ_INIT(&pool->idle);
    TAILQ_INIT(&pool->queue);
    TAILQ_INIT(&pool->reqs);
    pool->kick = event_new(base, -1, 0, pool_kick_cb, pool);
    pool->host = dup_str(opts->host);
    if (!pool->kick || !pool->host)
        goto fail;
    pool->opts.host = pool->host;
    pool->opts.sni = NULL;
    pool->opts.ca_file = NULL;
    if (opts->tls) {
        const char *name = opts->sni && opts->sni[0] ? opts->sni : opts->host;
        pool->tls_name = dup_str(name);
        if (!pool->tls_name)
            goto fail;
        pool->tls_name_is_ip = is_ip_literal(name);
        pool->opts.sni = pool->tls_name;
        if (opts->ca_file) {
            pool->ca_file = dup_str(opts->ca_file);
            if (!pool->ca_file)
                goto fail;
            pool->opts.ca_file = pool->ca_file;
        }
        rv = pool_tls_init(pool);
        if (rv < 0)
            goto fail;
    }
    rv = pool_resolve(pool);
    if (rv < 0)
        goto fail;
    *out = pool;
    return 0;
fail:
    tp_upstream_pool_free(pool);
    return rv;
}

void tp_upstream_pool_free(struct tp_upstream_pool *pool)
{
    if (!pool)
        return;
    pool->freeing = true;
    /* Requests should have been cancelled; whatever is left goes without callbacks. */
    while (!TAILQ_EMPTY(&pool->queue)) {
        struct tp_upstream_req *r = TAILQ_FIRST(&pool->queue);
        queue_remove(r);
        req_free(r);
    }
    while (!TAILQ_EMPTY(&pool->conns)) {
        struct conn *c = TAILQ_FIRST(&pool->conns);
        conn_detach(c);
        conn_close(c, "pool freed");
    }
    while (!TAILQ_EMPTY(&pool->reqs))
        req_free(TAILQ_FIRST(&pool->reqs));
    if (pool->kick)
        event_free(pool->kick);
    pool->kick = NULL;
    if (pool->ssl_ctx)
        SSL_CTX_free(pool->ssl_ctx);
    pool->ssl_ctx = NULL;
    free(pool->host);
    pool->host = NULL;
    free(pool->tls_name);
    pool->tls_name = NULL;
    free(pool->ca_file);
    pool->ca_file = NULL;
    free(pool);
}

unsigned tp_upstream_pool_failures(const struct tp_upstream_pool *pool)
{
    return pool ? pool->failures : 0;
}

void tp_upstream_pool_stats(const struct tp_upstream_pool *pool,
                            struct tp_upstream_stats *st)
{
    st->conns = pool->nconns;
    st->idle = pool->nidle;
    st->queued = pool->nqueue;
    st->last_close = pool->last_close;
}

int tp_upstream_request(struct tp_upstream_pool *pool,
                        const struct tp_upstream_desc *desc,
                        const struct tp_upstream_cb *cb, void *arg,
                        struct tp_upstream_req **out)
{
    if (!pool || !desc || !cb || !out || pool->freeing)
        return TP_ERR_INVALID;
    /* Queued requests take the idle connections and the room for new ones at the
       next kick; past those, at most TP_UPSTREAM_QUEUE_MAX wait. */
    if (pool->opts.max_conns != 0) {
        unsigned room = pool->nidle + (pool->nconns < pool->opts.max_conns
                                           ? pool->opts.max_conns - pool->nconns
                                           : 0);
        if (pool->nqueue >= room && pool->nqueue - room >= TP_UPSTREAM_QUEUE_MAX)
            return TP_ERR_TOO_LARGE;
    }

    struct tp_upstream_req proto;
    memset(&proto, 0, sizeof(proto));
    proto.pool = pool;
    proto.cb = *cb;
    proto.arg = arg;
    proto.idempotent = tp_http_method_idempotent(desc->method);
    proto.is_head = tp_str_eq(desc->method, "HEAD");
    proto.expects_body = desc->has_body || desc->content_length > 0;
    proto.chunked = proto.expects_body && desc->content_length < 0;
    proto.content_length = proto.expects_body ? desc->content_length : 0;
    /* A declared empty body is complete from the start. */
    proto.end_seen = proto.expects_body && proto.content_length == 0;
    struct tp_upstream_req *r;
    int rv = build_req(pool, desc, &proto, &r);
    if (rv < 0)
        return rv;
    TAILQ_INSERT_TAIL(&pool->reqs, r, alink);
    if (r->expects_body) {
        r->pending = evbuffer_new();
        if (!r->pending) {
            req_free(r);
            return TP_ERR_NOMEM;
        }
    }
    if (queue_push(r) != 0) {
        req_free(r);
        return TP_ERR_NOMEM;
    }
    *out = r;
    /* Connections are given out from the loop, after whatever else this turn of it
       handles: the requests of one client read (and of every connection that was
       ready) leave together, so a backend woken by the first finds the rest waiting
       instead of going back to sleep between them (on loopback the sender pays for
       each wake-up: an inter-processor interrupt, in a VM an exit). A request body
       that arrives meanwhile leaves in the same write as the head. */
    event_active(pool->kick, EV_TIMEOUT, 0);
    return 0;
}

/* A refused body leaves the request unable to complete: it fails from the loop. */
static int send_fail(struct tp_upstream_req *req, int err)
{
    req->failed = true;
    if (req->conn) {
        conn_defer_error(req->conn, err);
    } else if (req->state == R_QUEUED) {
        queue_remove(req);
        evtimer_del(req->ev);
        req_defer_error(req, err);
    }
    return err;
}

int tp_upstream_send(struct tp_upstream_req *req, struct evbuffer *data, bool end)
{
    if (!req || req->finished || req->cancelled || req->failed || req->state == R_DONE)
        return TP_ERR_STATE;
    size_t n = data ? evbuffer_get_length(data) : 0;
    if (!req->expects_body || req->end_seen)
        return n > 0 ? TP_ERR_STATE : 0;
    if (!req->chunked) {
        uint64_t total = req->body_added + n;
        if (total > (uint64_t)req->content_length ||
            (end && total != (uint64_t)req->content_length))
            return send_fail(req, TP_ERR_INVALID);
    }
    if (req->body_added - req->body_written + n > req->pool->opts.buffer_cap)
        return send_fail(req, TP_ERR_TOO_LARGE);
    if (n > 0 && evbuffer_add_buffer(req->pending, data) == -1)
        return send_fail(req, TP_ERR_NOMEM);
    req->body_added += n;
    if (end || (!req->chunked && req->body_added == (uint64_t)req->content_length))
        req->end_seen = true;
    struct conn *c = req->conn;
    if (c && c->state == C_ACTIVE) {
        int rv = conn_flush_body(c);
        if (rv < 0)
            return send_fail(req, rv);
    }
    return 0;
}

void tp_upstream_resume(struct tp_upstream_req *req)
{
    if (!req || req->finished || req->cancelled || !req->conn)
        return;
    struct conn *c = req->conn;
    if (!c->paused)
        return;
    c->paused = false;
    if (!c->peer_gone && !c->input_full && conn_set_reading(c, true) != 0) {
        conn_defer_error(c, TP_ERR_NOMEM);
        return;
    }
    conn_arm_timer(c);
    /* Buffered bytes are delivered from the loop, never from inside this call. */
    event_active(c->work, EV_TIMEOUT, 0);
}
