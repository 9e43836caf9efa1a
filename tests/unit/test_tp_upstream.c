/* tp_upstream against a scripted backend: a real loopback listener on 127.0.0.1:0 in the
   same event_base, which parses each request (http_parser, request mode), records what
   it saw, and answers, stalls or closes as the test says. Every test makes its own
   event_base; every loop is bounded in time. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "unit_suites.h"

#include "tp_upstream.h"
#include "tp_upstream_internal.h"

/* ------------------------------------------------------------------------------------ */
/* Loop helpers                                                                         */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs |base| until *count >= want or |ms| pass. Returns true if the count was reached.
 */
static bool run_count(struct event_base *base, const unsigned *count, unsigned want,
                      unsigned ms)
{
    bool timed_out = false;
    struct event *t = evtimer_new(base, deadline_cb, &timed_out);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t, &tv);
    for (unsigned i = 0; i < 1000000 && (!count || *count < want) && !timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return count && *count >= want;
}

static void run_for(struct event_base *base, unsigned ms)
{
    run_count(base, NULL, 0, ms);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

#define FNV0 2166136261u

/* ------------------------------------------------------------------------------------ */
/* Scripted backend                                                                     */

#define BE_MAX_CONNS 32
#define BE_MAX_REQS 64
#define BE_RAW 8192

struct be;

struct be_conn {
    struct be *be;
    struct bufferevent *bev;
    http_parser parser;
    unsigned idx;  /* accept order, from 0 */
    unsigned nreq; /* requests completed on this connection */
    bool close_after_write;
    char raw[BE_RAW];
    size_t raw_len;
    struct evbuffer *body;
};

struct be_req {
    char raw[BE_RAW]; /* request bytes as received (head and framed body), truncated */
    size_t raw_len;
    char method[16];
    char path[256];
    size_t body_len;
    uint32_t body_sum;
    char body_start[64]; /* first bytes of the decoded body, NUL-terminated */
    unsigned conn_idx;
    unsigned conn_nreq;
};

struct be {
    struct event_base *base;
    struct evconnlistener *lis;
    uint16_t port;
    SSL_CTX *tls;
    bool silent; /* read and ignore everything */
    char sni[256];
    unsigned accepts;
    unsigned nreqs;
    unsigned closed; /* connections the client closed */
    struct be_req reqs[BE_MAX_REQS];
    struct be_conn *conns[BE_MAX_CONNS];
    void (*on_req)(struct be *be, struct be_conn *bc, const struct be_req *rq);
    const char *canned; /* the answer when on_req is NULL */
    void *ud;
};

static void be_conn_free(struct be_conn *bc)
{
    if (!bc)
        return;
    if (bc->be->conns[bc->idx] == bc)
        bc->be->conns[bc->idx] = NULL;
    bufferevent_free(bc->bev);
    evbuffer_free(bc->body);
    free(bc);
}

static void be_write(struct be_conn *bc, const char *s)
{
    bufferevent_write(bc->bev, s, strlen(s));
}

static void be_write_close(struct be_conn *bc, const char *s)
{
    be_write(bc, s);
    bc->close_after_write = true;
}

static int be_on_url(http_parser *p, const char *at, size_t len)
{
    struct be_conn *bc = p->data;
    (void)bc;
    (void)at;
    (void)len;
    return 0;
}

static int be_on_body(http_parser *p, const char *at, size_t len)
{
    struct be_conn *bc = p->data;
    evbuffer_add(bc->body, at, len);
    return 0;
}

static int be_on_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings be_settings = {
    .on_url = be_on_url,
    .on_body = be_on_body,
    .on_message_complete = be_on_complete,
};

static void be_record(struct be_conn *bc, struct be_req *rq)
{
    memset(rq, 0, sizeof(*rq));
    memcpy(rq->raw, bc->raw, bc->raw_len);
    rq->raw_len = bc->raw_len;
    rq->raw[rq->raw_len < BE_RAW ? rq->raw_len : BE_RAW - 1] = '\0';
    const char *sp = memchr(rq->raw, ' ', rq->raw_len);
    if (sp && (size_t)(sp - rq->raw) < sizeof(rq->method)) {
        memcpy(rq->method, rq->raw, (size_t)(sp - rq->raw));
        const char *sp2 = memchr(sp + 1, ' ', rq->raw_len - (size_t)(sp + 1 - rq->raw));
        if (sp2 && (size_t)(sp2 - sp - 1) < sizeof(rq->path))
            memcpy(rq->path, sp + 1, (size_t)(sp2 - sp - 1));
    }
    rq->body_len = evbuffer_get_length(bc->body);
    unsigned char *b = evbuffer_pullup(bc->body, -1);
    rq->body_sum = fnv(FNV0, b, rq->body_len);
    size_t sl = rq->body_len < sizeof(rq->body_start) - 1 ? rq->body_len
                                                          : sizeof(rq->body_start) - 1;
    if (sl)
        memcpy(rq->body_start, b, sl);
    evbuffer_drain(bc->body, rq->body_len);
    rq->conn_idx = bc->idx;
    rq->conn_nreq = bc->nreq;
}

static void be_readcb(struct bufferevent *bev, void *arg)
{
    struct be_conn *bc = arg;
    struct be *be = bc->be;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (be->silent) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    while (evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in);
        const char *p = (const char *)evbuffer_pullup(in, -1);
        size_t n = http_parser_execute(&bc->parser, &be_settings, p, len);
        size_t room = BE_RAW - 1 - bc->raw_len;
        memcpy(bc->raw + bc->raw_len, p, n < room ? n : room);
        bc->raw_len += n < room ? n : room;
        evbuffer_drain(in, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&bc->parser);
        if (e == HPE_PAUSED) {
            bc->nreq++;
            struct be_req *rq =
                &be->reqs[be->nreqs < BE_MAX_REQS ? be->nreqs : BE_MAX_REQS - 1];
            be_record(bc, rq);
            if (be->nreqs < BE_MAX_REQS)
                be->nreqs++;
            bc->raw_len = 0;
            http_parser_init(&bc->parser, HTTP_REQUEST);
            bc->parser.data = bc;
            if (be->on_req)
                be->on_req(be, bc, rq);
            else
                be_write(bc, be->canned);
            return; /* |bc| may be gone */
        }
        if (e != HPE_OK) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
    }
}

static void be_writecb(struct bufferevent *bev, void *arg)
{
    struct be_conn *bc = arg;
    if (bc->close_after_write && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        be_conn_free(bc);
}

static void be_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct be_conn *bc = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bc->be->closed++;
        be_conn_free(bc);
    }
}

static int be_sni_cb(SSL *ssl, int *al, void *arg)
{
    struct be *be = arg;
    (void)al;
    const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(be->sni, sizeof(be->sni), "%s", n ? n : "");
    return SSL_TLSEXT_ERR_OK;
}

static void be_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct be *be = arg;
    (void)l;
    (void)sa;
    (void)salen;
    struct be_conn *bc = calloc(1, sizeof(*bc));
    if (!bc || be->accepts >= BE_MAX_CONNS) {
        free(bc);
        close(fd);
        return;
    }
    bc->be = be;
    bc->idx = be->accepts++;
    bc->body = evbuffer_new();
    const int flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (be->tls) {
        SSL *ssl = SSL_new(be->tls);
        bc->bev = bufferevent_openssl_socket_new(be->base, fd, ssl,
                                                 BUFFEREVENT_SSL_ACCEPTING, flags);
    } else {
        bc->bev = bufferevent_socket_new(be->base, fd, flags);
    }
    http_parser_init(&bc->parser, HTTP_REQUEST);
    bc->parser.data = bc;
    be->conns[bc->idx] = bc;
    bufferevent_setcb(bc->bev, be_readcb, be_writecb, be_eventcb, bc);
    bufferevent_enable(bc->bev, EV_READ | EV_WRITE);
}

static struct be *be_new(struct event_base *base, SSL_CTX *tls)
{
    struct be *be = calloc(1, sizeof(*be));
    CU_ASSERT_PTR_NOT_NULL_FATAL(be);
    be->base = base;
    be->tls = tls;
    if (tls) {
        SSL_CTX_set_tlsext_servername_callback(tls, be_sni_cb);
        SSL_CTX_set_tlsext_servername_arg(tls, be);
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    be->lis = evconnlistener_new_bind(base, be_accept, be,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                      (struct sockaddr *)&sin, sizeof(sin));
    CU_ASSERT_PTR_NOT_NULL_FATAL(be->lis);
    socklen_t sl = sizeof(sin);
    CU_ASSERT_FATAL(
        getsockname(evconnlistener_get_fd(be->lis), (struct sockaddr *)&sin, &sl) == 0);
    be->port = ntohs(sin.sin_port);
    be->canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    return be;
}

static void be_free(struct be *be)
{
    if (!be)
        return;
    for (unsigned i = 0; i < BE_MAX_CONNS; i++)
        be_conn_free(be->conns[i]);
    evconnlistener_free(be->lis);
    free(be);
}

static unsigned be_count(const struct be *be, const char *method, const char *path)
{
    unsigned n = 0;
    for (unsigned i = 0; i < be->nreqs; i++)
        if (strcmp(be->reqs[i].method, method) == 0 &&
            strcmp(be->reqs[i].path, path) == 0)
            n++;
    return n;
}

/* ------------------------------------------------------------------------------------ */
/* Client side                                                                          */

struct cl {
    struct event_base *base;
    struct tp_upstream_req *req;
    int status;
    int64_t clen;
    char hdrs[2048];
    size_t hdrs_len;
    struct evbuffer *body;
    unsigned heads, ends, errors, datas, after_final;
    int err;
    bool err_head_sent;
    size_t sent;
    unsigned *finished; /* shared counter of requests that ended either way */
    unsigned *order;    /* shared sequence, for FIFO checks */
    unsigned seq;
    /* behaviour */
    unsigned pause_every; /* return false from every Nth on_data, resume by timer */
    bool paused;
    unsigned data_while_paused;
    unsigned pauses;
    size_t max_chunk;
    struct event *resume_ev;
    bool cancel_in_head, cancel_in_data;
    uint32_t sum;
    size_t total;
    bool keep_body; /* keep the body in |body| (else only sum and total) */
};

static void cl_final(struct cl *c)
{
    if (c->order)
        c->seq = ++*c->order;
    if (c->finished)
        ++*c->finished;
    c->req = NULL;
}

static void cl_head(void *arg, int status, const struct tp_header *h, size_t n,
                    int64_t clen)
{
    struct cl *c = arg;
    if (c->ends || c->errors)
        c->after_final++;
    c->heads++;
    c->status = status;
    c->clen = clen;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(c->hdrs + c->hdrs_len, sizeof(c->hdrs) - c->hdrs_len,
                         "%.*s: %.*s\n", (int)h[i].name.len, h[i].name.base,
                         (int)h[i].value.len, h[i].value.base);
        if (w > 0 && (size_t)w < sizeof(c->hdrs) - c->hdrs_len)
            c->hdrs_len += (size_t)w;
    }
    if (c->cancel_in_head) {
        tp_upstream_cancel(c->req);
        c->req = NULL;
        if (c->finished)
            ++*c->finished;
    }
}

static void cl_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cl *c = arg;
    (void)fd;
    (void)what;
    c->paused = false;
    tp_upstream_resume(c->req);
}

static bool cl_data(void *arg, struct evbuffer *data)
{
    struct cl *c = arg;
    if (c->ends || c->errors)
        c->after_final++;
    if (c->paused)
        c->data_while_paused++;
    c->datas++;
    size_t n = evbuffer_get_length(data);
    if (n > c->max_chunk)
        c->max_chunk = n;
    c->total += n;
    struct evbuffer_iovec v[16];
    int nv = evbuffer_peek(data, -1, NULL, v, 16);
    if (nv > 16) {
        unsigned char *p = evbuffer_pullup(data, -1);
        c->sum = fnv(c->sum, p, n);
    } else {
        for (int i = 0; i < nv; i++)
            c->sum = fnv(c->sum, v[i].iov_base, v[i].iov_len);
    }
    if (c->keep_body)
        evbuffer_add_buffer(c->body, data);
    else
        evbuffer_drain(data, n);
    if (c->cancel_in_data) {
        tp_upstream_cancel(c->req);
        c->req = NULL;
        if (c->finished)
            ++*c->finished;
        return true;
    }
    if (c->pause_every && c->datas % c->pause_every == 0) {
        c->paused = true;
        c->pauses++;
        struct timeval tv = {0, 1000};
        evtimer_add(c->resume_ev, &tv);
        return false;
    }
    return true;
}

static void cl_end(void *arg)
{
    struct cl *c = arg;
    if (c->ends || c->errors)
        c->after_final++;
    c->ends++;
    cl_final(c);
}

static void cl_error(void *arg, int err, bool head_sent)
{
    struct cl *c = arg;
    if (c->ends || c->errors)
        c->after_final++;
    c->errors++;
    c->err = err;
    c->err_head_sent = head_sent;
    cl_final(c);
}

static void cl_sent(void *arg, size_t n)
{
    struct cl *c = arg;
    if (c->ends || c->errors)
        c->after_final++;
    c->sent += n;
}

static const struct tp_upstream_cb cl_cb = {cl_head, cl_data, cl_end, cl_error, cl_sent};

static void cl_init(struct cl *c, struct event_base *base, unsigned *finished)
{
    memset(c, 0, sizeof(*c));
    c->base = base;
    c->body = evbuffer_new();
    c->finished = finished;
    c->sum = FNV0;
    c->keep_body = true;
    c->resume_ev = evtimer_new(base, cl_resume_cb, c);
}

static void cl_clear(struct cl *c)
{
    evbuffer_free(c->body);
    event_free(c->resume_ev);
}

/* The body received so far, NUL-terminated, in a static buffer. */
static const char *cl_body(struct cl *c)
{
    static char buf[4096];
    size_t n = evbuffer_get_length(c->body);
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    evbuffer_copyout(c->body, buf, n);
    buf[n] = '\0';
    return buf;
}

static void opts_for(struct tp_upstream_opts *o, uint16_t port)
{
    tp_upstream_opts_default(o);
    o->host = "127.0.0.1";
    o->port = port;
    o->connect_timeout_ms = 2000;
    o->first_byte_timeout_ms = 2000;
    o->idle_timeout_ms = 2000;
}

static struct tp_upstream_pool *pool_for(struct event_base *base,
                                         const struct tp_upstream_opts *o)
{
    struct tp_upstream_pool *p = NULL;
    CU_ASSERT_EQUAL_FATAL(tp_upstream_pool_new(base, o, &p), 0);
    return p;
}

static int start(struct tp_upstream_pool *p, struct cl *c, const char *method,
                 const char *path, const struct tp_header *h, size_t nh, int64_t clen,
                 bool has_body)
{
    struct tp_upstream_desc d = {
        .method = {method, strlen(method)},
        .path = {path, strlen(path)},
        .authority = TP_STR_LIT("backend.test"),
        .headers = h,
        .nheaders = nh,
        .content_length = clen,
        .has_body = has_body,
    };
    return tp_upstream_request(p, &d, &cl_cb, c, &c->req);
}

static int send_str(struct tp_upstream_req *r, const char *s, bool end)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    int rv = tp_upstream_send(r, b, end);
    evbuffer_free(b);
    return rv;
}

static void stats(struct tp_upstream_pool *p, struct tp_upstream_stats *st)
{
    tp_upstream_pool_stats(p, st);
}

/* ------------------------------------------------------------------------------------ */
/* Tests                                                                                */

static void simple_get(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->canned = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: Yes\r\n"
                 "Connection: keep-alive\r\n\r\nhello";
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    const struct tp_header h[] = {
        {TP_STR_LIT("accept"), TP_STR_LIT("*/*")},
        {TP_STR_LIT("connection"), TP_STR_LIT("close")},
        {TP_STR_LIT("Host"), TP_STR_LIT("evil.example")},
        {TP_STR_LIT("te"), TP_STR_LIT("trailers")},
        {TP_STR_LIT("content-length"), TP_STR_LIT("99")},
        {TP_STR_LIT("X-Mixed"), TP_STR_LIT("v a\tl")},
    };
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/a?b=1", h, 6, 0, false), 0);
    /* Never from inside tp_upstream_request. */
    CU_ASSERT_EQUAL(c.heads + c.ends + c.errors, 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(c.ends, 1);
    CU_ASSERT_EQUAL(c.errors, 0);
    CU_ASSERT_EQUAL(c.status, 200);
    CU_ASSERT_EQUAL(c.clen, 5);
    CU_ASSERT_STRING_EQUAL(cl_body(&c), "hello");
    CU_ASSERT_PTR_NOT_NULL(strstr(c.hdrs, "x-test: Yes\n"));
    CU_ASSERT_EQUAL(be->nreqs, 1);
    CU_ASSERT_STRING_EQUAL(be->reqs[0].raw,
                           "GET /a?b=1 HTTP/1.1\r\nhost: backend.test\r\n"
                           "accept: */*\r\nx-mixed: v a\tl\r\n\r\n");
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 1);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_EQUAL(tp_upstream_pool_failures(p), 0);
    CU_ASSERT_EQUAL(c.after_final, 0);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void post_content_length(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->canned = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "POST", "/vote", NULL, 0, 11, true), 0);
    /* Body bytes may come before the connection is up. */
    CU_ASSERT_EQUAL(send_str(c.req, "ballot=", false), 0);
    CU_ASSERT_EQUAL(send_str(c.req, "1234", false), 0); /* ends by count */
    CU_ASSERT_EQUAL(tp_upstream_send(c.req, NULL, true), 0);
    CU_ASSERT_EQUAL(send_str(c.req, "x", false), TP_ERR_STATE);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(c.ends, 1);
    CU_ASSERT_EQUAL(c.status, 201);
    CU_ASSERT_EQUAL(c.clen, 0);
    CU_ASSERT_EQUAL(c.sent, 11);
    CU_ASSERT_EQUAL(be->nreqs, 1);
    CU_ASSERT_STRING_EQUAL(be->reqs[0].body_start, "ballot=1234");
    CU_ASSERT_PTR_NOT_NULL(strstr(be->reqs[0].raw, "\r\ncontent-length: 11\r\n"));
    CU_ASSERT_PTR_NULL(strstr(be->reqs[0].raw, "transfer-encoding"));
    /* A POST without a body still declares its length. */
    struct cl c2;
    cl_init(&c2, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c2, "POST", "/empty", NULL, 0, 0, false), 0);
    CU_ASSERT_EQUAL(send_str(c2.req, "x", false), TP_ERR_STATE);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(c2.ends, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(be->reqs[1].raw, "\r\ncontent-length: 0\r\n"));
    CU_ASSERT_EQUAL(be->accepts, 1);
    /* More body than declared fails the request (from the loop), and the backend never
       sees a complete request; it is not the backend's failure. */
    struct cl c3, c4;
    cl_init(&c3, base, &fin);
    cl_init(&c4, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c3, "POST", "/over", NULL, 0, 3, true), 0);
    CU_ASSERT_EQUAL(send_str(c3.req, "abcd", false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(send_str(c3.req, "abc", true), TP_ERR_STATE);
    CU_ASSERT_EQUAL(c3.errors, 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    CU_ASSERT_EQUAL(c3.errors, 1);
    CU_ASSERT_EQUAL(c3.err, TP_ERR_INVALID);
    /* Fewer, once attached to a connection. */
    CU_ASSERT_EQUAL(start(p, &c4, "POST", "/under", NULL, 0, 3, true), 0);
    run_for(base, 50);
    CU_ASSERT_EQUAL(send_str(c4.req, "ab", true), TP_ERR_INVALID);
    CU_ASSERT_TRUE(run_count(base, &fin, 4, 3000));
    CU_ASSERT_EQUAL(c4.err, TP_ERR_INVALID);
    run_for(base, 50);
    CU_ASSERT_EQUAL(be->nreqs, 2);
    CU_ASSERT_EQUAL(tp_upstream_pool_failures(p), 0);
    cl_clear(&c3);
    cl_clear(&c4);
    cl_clear(&c);
    cl_clear(&c2);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void chunked_request(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.buffer_cap = 16;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "PUT", "/up", NULL, 0, -1, true), 0);
    CU_ASSERT_EQUAL(send_str(c.req, "abc", false), 0);
    run_for(base, 50);
    CU_ASSERT_EQUAL(c.sent, 3);
    CU_ASSERT_EQUAL(send_str(c.req, "defgh", false), 0);
    run_for(base, 50);
    CU_ASSERT_EQUAL(c.sent, 8);
    CU_ASSERT_EQUAL(be->nreqs, 0);
    CU_ASSERT_EQUAL(tp_upstream_send(c.req, NULL, true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(c.ends, 1);
    CU_ASSERT_EQUAL(c.sent, 8);
    CU_ASSERT_EQUAL(be->nreqs, 1);
    CU_ASSERT_STRING_EQUAL(be->reqs[0].body_start, "abcdefgh");
    CU_ASSERT_PTR_NOT_NULL(strstr(be->reqs[0].raw, "\r\ntransfer-encoding: chunked\r\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(be->reqs[0].raw, "\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"));
    CU_ASSERT_PTR_NULL(strstr(be->reqs[0].raw, "content-length"));
    /* More than buffer_cap waiting for the socket (no credit yet): the request fails. */
    struct cl d;
    cl_init(&d, base, &fin);
    CU_ASSERT_EQUAL(start(p, &d, "PUT", "/up2", NULL, 0, -1, true), 0);
    CU_ASSERT_EQUAL(send_str(d.req, "0123456789", false), 0);
    CU_ASSERT_EQUAL(send_str(d.req, "0123456789", false), TP_ERR_TOO_LARGE);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(d.err, TP_ERR_TOO_LARGE);
    cl_clear(&d);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void chunked_response(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->canned = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                 "6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(c.ends, 1);
    CU_ASSERT_EQUAL(c.clen, -1);
    CU_ASSERT_STRING_EQUAL(cl_body(&c), "hello world");
    CU_ASSERT_PTR_NULL(strstr(c.hdrs, "x-trailer"));
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 1);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void close_on_req(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    if (strcmp(rq->path, "/11") == 0)
        be_write_close(bc, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close");
    else if (strcmp(rq->path, "/10") == 0)
        be_write_close(bc, "HTTP/1.0 200 OK\r\n\r\nold");
    else if (strcmp(rq->path, "/short") == 0)
        be_write_close(bc, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
    else if (strcmp(rq->path, "/cl-close") == 0)
        be_write_close(
            bc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    else
        be_write_close(bc, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

static void read_until_close(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = close_on_req;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c[5];
    const char *paths[5] = {"/11", "/10", "/short", "/cl-close", "/empty"};
    for (int i = 0; i < 5; i++) {
        cl_init(&c[i], base, &fin);
        CU_ASSERT_EQUAL(start(p, &c[i], "GET", paths[i], NULL, 0, 0, false), 0);
        CU_ASSERT_TRUE(run_count(base, &fin, (unsigned)i + 1, 3000));
    }
    CU_ASSERT_EQUAL(c[0].ends, 1);
    CU_ASSERT_EQUAL(c[0].clen, -1);
    CU_ASSERT_STRING_EQUAL(cl_body(&c[0]), "until close");
    CU_ASSERT_EQUAL(c[1].ends, 1);
    CU_ASSERT_STRING_EQUAL(cl_body(&c[1]), "old");
    CU_ASSERT_EQUAL(c[2].errors, 1);
    CU_ASSERT_EQUAL(c[2].err, TP_ERR_CLOSED);
    CU_ASSERT_TRUE(c[2].err_head_sent);
    CU_ASSERT_EQUAL(c[3].ends, 1);
    CU_ASSERT_STRING_EQUAL(cl_body(&c[3]), "ok");
    CU_ASSERT_EQUAL(c[4].ends, 1);
    CU_ASSERT_EQUAL(c[4].total, 0);
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_EQUAL(be->accepts, 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(c[i].after_final, 0);
        cl_clear(&c[i]);
    }
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void status_on_req(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    if (strcmp(rq->method, "HEAD") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    else if (strcmp(rq->path, "/204") == 0)
        be_write(bc, "HTTP/1.1 204 No Content\r\n\r\n");
    else if (strcmp(rq->path, "/304") == 0)
        be_write(bc,
                 "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"x\"\r\n\r\n");
    else if (strcmp(rq->path, "/100") == 0)
        be_write(bc,
                 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n"
                 "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    else if (strcmp(rq->path, "/101") == 0)
        be_write(bc,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade"
                 "\r\n\r\n");
    else
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
}

static void keep_alive_reuse(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = status_on_req;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c[6];
    const char *m[6] = {"GET", "GET", "HEAD", "GET", "GET", "GET"};
    const char *paths[6] = {"/a", "/b", "/h", "/204", "/304", "/100"};
    for (int i = 0; i < 6; i++) {
        cl_init(&c[i], base, &fin);
        CU_ASSERT_EQUAL(start(p, &c[i], m[i], paths[i], NULL, 0, 0, false), 0);
        CU_ASSERT_TRUE(run_count(base, &fin, (unsigned)i + 1, 3000));
        CU_ASSERT_EQUAL(c[i].ends, 1);
        CU_ASSERT_EQUAL(c[i].errors, 0);
    }
    CU_ASSERT_STRING_EQUAL(cl_body(&c[0]), "abc");
    CU_ASSERT_STRING_EQUAL(cl_body(&c[1]), "abc");
    CU_ASSERT_EQUAL(c[2].clen, 100);
    CU_ASSERT_EQUAL(c[2].total, 0);
    CU_ASSERT_EQUAL(c[3].status, 204);
    CU_ASSERT_EQUAL(c[3].clen, 0);
    CU_ASSERT_EQUAL(c[4].status, 304);
    CU_ASSERT_EQUAL(c[4].total, 0);
    CU_ASSERT_EQUAL(c[5].status, 200);
    CU_ASSERT_EQUAL(c[5].heads, 1);
    CU_ASSERT_STRING_EQUAL(cl_body(&c[5]), "ok");
    CU_ASSERT_PTR_NULL(strstr(c[5].hdrs, "link"));
    /* One TCP connection carried all six. */
    CU_ASSERT_EQUAL(be->accepts, 1);
    CU_ASSERT_EQUAL(be->nreqs, 6);
    CU_ASSERT_EQUAL(be->reqs[5].conn_nreq, 6);
    /* 101 is never acceptable: we do not ask to switch. */
    struct cl u;
    cl_init(&u, base, &fin);
    CU_ASSERT_EQUAL(start(p, &u, "GET", "/101", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 7, 3000));
    CU_ASSERT_EQUAL(u.errors, 1);
    CU_ASSERT_EQUAL(u.err, TP_ERR_PROTO);
    for (int i = 0; i < 6; i++)
        cl_clear(&c[i]);
    cl_clear(&u);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void pool_cap_and_queue(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.max_conns = 1;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0, order = 0;
    struct cl c[3];
    const char *paths[3] = {"/1", "/2", "/3"};
    for (int i = 0; i < 3; i++) {
        cl_init(&c[i], base, &fin);
        c[i].order = &order;
        CU_ASSERT_EQUAL(start(p, &c[i], "GET", paths[i], NULL, 0, 0, false), 0);
    }
    struct tp_upstream_stats st;
    stats(p, &st);
    /* Connections are given out from the loop, all requests of a turn at once; the
       one connection allowed then serves the three in order (one accept, below). */
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_EQUAL(st.queued, 3);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(c[i].ends, 1);
        CU_ASSERT_EQUAL(c[i].seq, (unsigned)i + 1);
        CU_ASSERT_STRING_EQUAL(be->reqs[i].path, paths[i]);
        cl_clear(&c[i]);
    }
    CU_ASSERT_EQUAL(be->accepts, 1);
    tp_upstream_pool_free(p);

    /* The queue is bounded: past TP_UPSTREAM_QUEUE_MAX waiting, fail fast. */
    be->silent = true;
    p = pool_for(base, &o);
    struct cl *many = calloc(TP_UPSTREAM_QUEUE_MAX + 2, sizeof(*many));
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    fin = 0;
    for (unsigned i = 0; i < TP_UPSTREAM_QUEUE_MAX + 1; i++) {
        cl_init(&many[i], base, &fin);
        CU_ASSERT_EQUAL(start(p, &many[i], "GET", "/q", NULL, 0, 0, false), 0);
    }
    cl_init(&many[TP_UPSTREAM_QUEUE_MAX + 1], base, &fin);
    CU_ASSERT_EQUAL(
        start(p, &many[TP_UPSTREAM_QUEUE_MAX + 1], "GET", "/q", NULL, 0, 0, false),
        TP_ERR_TOO_LARGE);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.queued, TP_UPSTREAM_QUEUE_MAX + 1);
    event_base_loop(base, EVLOOP_NONBLOCK);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.queued, TP_UPSTREAM_QUEUE_MAX);
    CU_ASSERT_EQUAL(start(p, &many[TP_UPSTREAM_QUEUE_MAX + 1], "GET", "/q", NULL, 0, 0, false),
                    TP_ERR_TOO_LARGE);
    run_for(base, 50);
    /* Cancelling the one in flight lets the next in line have the connection slot. */
    tp_upstream_cancel(many[0].req);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.queued, TP_UPSTREAM_QUEUE_MAX - 1);
    CU_ASSERT_EQUAL(st.conns, 1);
    for (unsigned i = 1; i < TP_UPSTREAM_QUEUE_MAX + 1; i++)
        tp_upstream_cancel(many[i].req);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.queued, 0);
    CU_ASSERT_EQUAL(st.conns, 0);
    run_for(base, 50);
    CU_ASSERT_EQUAL(fin, 0);
    for (unsigned i = 0; i < TP_UPSTREAM_QUEUE_MAX + 2; i++)
        cl_clear(&many[i]);
    free(many);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void queue_deadline(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->silent = true;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.max_conns = 1;
    o.first_byte_timeout_ms = 150;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/a", NULL, 0, 0, false), 0);
    CU_ASSERT_EQUAL(start(p, &b, "GET", "/b", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(a.err, TP_ERR_TIMEOUT);
    CU_ASSERT_EQUAL(b.err, TP_ERR_TIMEOUT);
    CU_ASSERT_FALSE(b.err_head_sent);
    cl_clear(&a);
    cl_clear(&b);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void stale_pooled_post(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/warm", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(a.ends, 1);
    /* The backend drops the idle connection; the loop has not seen it yet. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(be->conns[0]);
    /* libevent closes a freed bufferevent's socket from the loop: shut it down now. */
    CU_ASSERT(shutdown(bufferevent_getfd(be->conns[0]->bev), SHUT_RDWR) == 0);
    be_conn_free(be->conns[0]);
    usleep(20000);
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_EQUAL(start(p, &b, "POST", "/ballot", NULL, 0, 4, true), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    stats(p, &st);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st.last_close);
    CU_ASSERT_STRING_EQUAL(st.last_close, "stale idle connection");
    CU_ASSERT_EQUAL(send_str(b.req, "yes!", true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(b.ends, 1);
    CU_ASSERT_EQUAL(b.status, 200);
    run_for(base, 100);
    CU_ASSERT_EQUAL(be_count(be, "POST", "/ballot"), 1);
    CU_ASSERT_EQUAL(be->accepts, 2);
    cl_clear(&a);
    cl_clear(&b);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* The backend drops an idle pooled connection and the loop runs: the read event kept
   armed while idle closes it, so no request is ever written to it. */
static void idle_close_seen(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/warm", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(be->conns[0]);
    CU_ASSERT(shutdown(bufferevent_getfd(be->conns[0]->bev), SHUT_RDWR) == 0);
    be_conn_free(be->conns[0]);
    run_for(base, 100);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 0);
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st.last_close);
    CU_ASSERT_STRING_EQUAL(st.last_close, "idle connection closed by peer");
    CU_ASSERT_EQUAL(start(p, &b, "POST", "/ballot", NULL, 0, 4, true), 0);
    CU_ASSERT_EQUAL(send_str(b.req, "yes!", true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(b.ends, 1);
    CU_ASSERT_EQUAL(b.status, 200);
    run_for(base, 100);
    CU_ASSERT_EQUAL(be_count(be, "POST", "/ballot"), 1);
    CU_ASSERT_EQUAL(be->accepts, 2);
    cl_clear(&a);
    cl_clear(&b);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* The same close, not yet seen by the loop, under a GET: the liveness check finds
   it, so the GET goes out once, on a fresh connection. */
static void stale_pooled_get(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/warm", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(be->conns[0]);
    CU_ASSERT(shutdown(bufferevent_getfd(be->conns[0]->bev), SHUT_RDWR) == 0);
    be_conn_free(be->conns[0]);
    usleep(20000);
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_EQUAL(start(p, &b, "GET", "/again", NULL, 0, 0, false), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    stats(p, &st);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st.last_close);
    CU_ASSERT_STRING_EQUAL(st.last_close, "stale idle connection");
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(b.ends, 1);
    CU_ASSERT_EQUAL(b.errors, 0);
    CU_ASSERT_EQUAL(b.status, 200);
    run_for(base, 100);
    CU_ASSERT_EQUAL(be_count(be, "GET", "/again"), 1);
    CU_ASSERT_EQUAL(be->accepts, 2);
    cl_clear(&a);
    cl_clear(&b);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* A body that trickles in for longer than the idle timeout, every piece written
   straight to the socket (nothing is ever queued): each write is progress and
   re-arms the deadline, as a drained output buffer does. */
struct trickle {
    struct cl *cl;
    struct event *ev;
    unsigned sent, pieces;
};

static void trickle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct trickle *t = arg;
    (void)fd;
    (void)what;
    if (t->cl->errors || t->cl->ends)
        return;
    t->sent++;
    CU_ASSERT_EQUAL(send_str(t->cl->req, "0123456789", t->sent == t->pieces), 0);
    if (t->sent < t->pieces) {
        struct timeval tv = {0, 80 * 1000};
        evtimer_add(t->ev, &tv);
    }
}

static void trickled_body_direct(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.idle_timeout_ms = 250;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl w, post;
    cl_init(&w, base, &fin);
    cl_init(&post, base, &fin);
    /* Warm the pool, so the POST's head goes out at once on a pooled connection. */
    CU_ASSERT_EQUAL(start(p, &w, "GET", "/warm", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    struct trickle t = {&post, NULL, 0, 10};
    t.ev = evtimer_new(base, trickle_cb, &t);
    CU_ASSERT_EQUAL(start(p, &post, "POST", "/slow-upload", NULL, 0, 100, true), 0);
    struct timeval tv = {0, 80 * 1000};
    evtimer_add(t.ev, &tv);
    /* Ten pieces 80 ms apart: 800 ms of sending against a 250 ms idle timeout. */
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(post.errors, 0);
    CU_ASSERT_EQUAL(post.ends, 1);
    CU_ASSERT_EQUAL(post.status, 200);
    CU_ASSERT_EQUAL(post.sent, 100);
    CU_ASSERT_EQUAL(t.sent, 10);
    event_free(t.ev);
    cl_clear(&w);
    cl_clear(&post);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* Answers the first request of each connection, reads the second and hangs up. */
static void second_closes(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    (void)rq;
    if (bc->nreq >= 2)
        be_conn_free(bc);
    else
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

static void reused_conn_closes_after_request(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = second_closes;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;

    /* A ballot on a reused connection that dies after reading it: one copy, an error. */
    struct cl w, post;
    cl_init(&w, base, &fin);
    cl_init(&post, base, &fin);
    CU_ASSERT_EQUAL(start(p, &w, "GET", "/warm", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(start(p, &post, "POST", "/ballot", NULL, 0, 4, true), 0);
    CU_ASSERT_EQUAL(send_str(post.req, "vote", true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(post.errors, 1);
    CU_ASSERT_EQUAL(post.err, TP_ERR_CLOSED);
    CU_ASSERT_FALSE(post.err_head_sent);
    run_for(base, 300);
    CU_ASSERT_EQUAL(be_count(be, "POST", "/ballot"), 1);
    CU_ASSERT_EQUAL(be->accepts, 1);
    CU_ASSERT_EQUAL(post.after_final, 0);

    /* The same for a GET: never resent either (the backend read it; a close with no
       answer does not say it did nothing with it). */
    struct cl w2, get;
    cl_init(&w2, base, &fin);
    cl_init(&get, base, &fin);
    CU_ASSERT_EQUAL(start(p, &w2, "GET", "/warm2", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    CU_ASSERT_EQUAL(be->accepts, 2);
    CU_ASSERT_EQUAL(start(p, &get, "GET", "/again", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 4, 3000));
    CU_ASSERT_EQUAL(get.errors, 1);
    CU_ASSERT_EQUAL(get.err, TP_ERR_CLOSED);
    CU_ASSERT_FALSE(get.err_head_sent);
    run_for(base, 300);
    CU_ASSERT_EQUAL(be_count(be, "GET", "/again"), 1);
    CU_ASSERT_EQUAL(be->accepts, 2);
    cl_clear(&w);
    cl_clear(&post);
    cl_clear(&w2);
    cl_clear(&get);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void hang_up(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    (void)rq;
    be_conn_free(bc);
}

static void fresh_conn_closes_after_request(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = hang_up;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl post, get;
    cl_init(&post, base, &fin);
    cl_init(&get, base, &fin);
    CU_ASSERT_EQUAL(start(p, &post, "POST", "/ballot", NULL, 0, 4, true), 0);
    CU_ASSERT_EQUAL(send_str(post.req, "vote", true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(post.errors, 1);
    CU_ASSERT_EQUAL(post.err, TP_ERR_CLOSED);
    run_for(base, 300);
    CU_ASSERT_EQUAL(be_count(be, "POST", "/ballot"), 1);
    CU_ASSERT_EQUAL(be->accepts, 1);
    /* A fresh connection is not retried, even for a GET. */
    CU_ASSERT_EQUAL(start(p, &get, "GET", "/g", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(get.err, TP_ERR_CLOSED);
    run_for(base, 100);
    CU_ASSERT_EQUAL(be_count(be, "GET", "/g"), 1);
    CU_ASSERT_EQUAL(tp_upstream_pool_failures(p), 2);
    cl_clear(&post);
    cl_clear(&get);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
        if (fd != -1)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(sin.sin_port);
}

static void connect_refused_and_localhost(void)
{
    struct event_base *base = event_base_new();
    struct tp_upstream_opts o;
    uint16_t port = closed_port();
    CU_ASSERT_NOT_EQUAL_FATAL(port, 0);
    opts_for(&o, port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(c.errors, 1);
    CU_ASSERT_EQUAL(c.err, TP_ERR_CONNECT);
    CU_ASSERT_FALSE(c.err_head_sent);
    CU_ASSERT_EQUAL(tp_upstream_pool_failures(p), 1);
    cl_clear(&c);
    tp_upstream_pool_free(p);

    /* "localhost" may resolve to ::1 first; the listener is on 127.0.0.1 only. */
    struct be *be = be_new(base, NULL);
    opts_for(&o, be->port);
    o.host = "localhost";
    p = pool_for(base, &o);
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(c.ends, 1);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);

    /* Names that do not resolve, and bad options, fail at creation. */
    opts_for(&o, 80);
    o.host = "no-such-host.invalid";
    p = NULL;
    CU_ASSERT_EQUAL(tp_upstream_pool_new(base, &o, &p), TP_ERR_CONNECT);
    CU_ASSERT_PTR_NULL(p);
    opts_for(&o, 0);
    CU_ASSERT_EQUAL(tp_upstream_pool_new(base, &o, &p), TP_ERR_INVALID);
    event_base_free(base);
}

static void stall_on_req(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    if (strcmp(rq->path, "/part") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    /* anything else: never answer */
}

static void timeouts(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = stall_on_req;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.first_byte_timeout_ms = 200;
    o.idle_timeout_ms = 200;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;

    struct cl fb;
    cl_init(&fb, base, &fin);
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(start(p, &fb, "GET", "/slow", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    uint64_t dt = now_ms() - t0;
    CU_ASSERT_EQUAL(fb.err, TP_ERR_TIMEOUT);
    CU_ASSERT_FALSE(fb.err_head_sent);
    CU_ASSERT_TRUE(dt >= 180 && dt < 2000);

    struct cl mid;
    cl_init(&mid, base, &fin);
    CU_ASSERT_EQUAL(start(p, &mid, "GET", "/part", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(mid.heads, 1);
    CU_ASSERT_EQUAL(mid.err, TP_ERR_TIMEOUT);
    CU_ASSERT_TRUE(mid.err_head_sent);
    CU_ASSERT_STRING_EQUAL(cl_body(&mid), "partial");
    CU_ASSERT_EQUAL(tp_upstream_pool_failures(p), 0); /* a head arrived in between */
    tp_upstream_pool_free(p);

    /* An idle pooled connection goes after idle_timeout. */
    be->on_req = NULL;
    p = pool_for(base, &o);
    struct cl ok;
    cl_init(&ok, base, &fin);
    CU_ASSERT_EQUAL(start(p, &ok, "GET", "/", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.idle, 1);
    run_for(base, 400);
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_PTR_NOT_NULL(st.last_close);
    if (st.last_close)
        CU_ASSERT_STRING_EQUAL(st.last_close, "idle timeout");
    tp_upstream_pool_free(p);

    /* The connect deadline covers the TLS handshake: a peer that never answers it. */
    be->silent = true;
    opts_for(&o, be->port);
    o.tls = true;
    o.verify = false;
    o.connect_timeout_ms = 200;
    p = pool_for(base, &o);
    struct cl hs;
    cl_init(&hs, base, &fin);
    t0 = now_ms();
    CU_ASSERT_EQUAL(start(p, &hs, "GET", "/", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 4, 3000));
    dt = now_ms() - t0;
    CU_ASSERT_EQUAL(hs.err, TP_ERR_TIMEOUT);
    CU_ASSERT_FALSE(hs.err_head_sent);
    CU_ASSERT_TRUE(dt >= 180 && dt < 2000);
    CU_ASSERT_EQUAL(be->nreqs, 3);
    cl_clear(&fb);
    cl_clear(&mid);
    cl_clear(&ok);
    cl_clear(&hs);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static char big_header[3000];

static void bad_on_req(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)be;
    const char *p = rq->path;
    if (strcmp(p, "/bighead") == 0)
        be_write(bc, big_header);
    else if (strcmp(p, "/declared") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    else if (strcmp(p, "/streamed") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n");
    else if (strcmp(p, "/longer") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
    else if (strcmp(p, "/garbage") == 0)
        be_write(bc, "FOO BAR\r\n\r\n");
    else if (strcmp(p, "/status") == 0)
        be_write(bc, "HTTP/1.1 2x0 OK\r\n\r\n");
    else if (strcmp(p, "/gzip") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx");
    else if (strcmp(p, "/twocl") == 0)
        be_write(bc,
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc");
    else if (strcmp(p, "/spacename") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n");
    else if (strcmp(p, "/ctlvalue") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n");
    else if (strcmp(p, "/badchunk") == 0)
        be_write(bc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    else
        be_write(bc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

static void response_limits_and_garbage(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = bad_on_req;
    int n = snprintf(big_header, sizeof(big_header), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big_header + n, 'a', 2000);
    memcpy(big_header + n + 2000, "\r\nContent-Length: 0\r\n\r\n", 24);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.max_response_header = 1024;
    o.max_response_body = 10;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct {
        const char *path;
        int err;
        bool head;
    } cases[] = {
        /* An error found in the same bytes as the head comes before on_head, so the
           caller can still answer 502 cleanly. */
        {"/bighead", TP_ERR_TOO_LARGE, false},  {"/declared", TP_ERR_TOO_LARGE, false},
        {"/streamed", TP_ERR_TOO_LARGE, false}, {"/longer", TP_ERR_PROTO, false},
        {"/garbage", TP_ERR_PROTO, false},      {"/status", TP_ERR_PROTO, false},
        {"/gzip", TP_ERR_PROTO, false},         {"/twocl", TP_ERR_PROTO, false},
        {"/badchunk", TP_ERR_PROTO, false},     {"/spacename", TP_ERR_PROTO, false},
        {"/ctlvalue", TP_ERR_PROTO, false},
    };
    const unsigned ncases = sizeof(cases) / sizeof(cases[0]);
    for (unsigned i = 0; i < ncases; i++) {
        struct cl c;
        cl_init(&c, base, &fin);
        CU_ASSERT_EQUAL(start(p, &c, "GET", cases[i].path, NULL, 0, 0, false), 0);
        CU_ASSERT_TRUE(run_count(base, &fin, i + 1, 3000));
        CU_ASSERT_EQUAL(c.errors, 1);
        CU_ASSERT_EQUAL(c.ends, 0);
        if (c.err != cases[i].err || c.err_head_sent != cases[i].head)
            fprintf(stderr, "\n  case %s: err %d head %d\n", cases[i].path, c.err,
                    c.err_head_sent);
        CU_ASSERT_EQUAL(c.err, cases[i].err);
        CU_ASSERT_EQUAL(c.err_head_sent, cases[i].head);
        cl_clear(&c);
    }
    /* Every failed connection was closed, none pooled. */
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_EQUAL(be->accepts, ncases);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

static void request_validation(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    const struct tp_header cr[] = {
        {TP_STR_LIT("x-a"), TP_STR_LIT("ok\r\nx-smuggled: 1")}};
    const struct tp_header lf[] = {{TP_STR_LIT("x-a"), TP_STR_LIT("ok\nx: 1")}};
    const struct tp_header nul[] = {{TP_STR_LIT("x-a"), {"a\0b", 3}}};
    const struct tp_header name_sp[] = {{TP_STR_LIT("x a"), TP_STR_LIT("v")}};
    const struct tp_header name_colon[] = {{TP_STR_LIT("x:a"), TP_STR_LIT("v")}};
    const struct tp_header name_empty[] = {{TP_STR_LIT(""), TP_STR_LIT("v")}};
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", cr, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", lf, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", nul, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", name_sp, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", name_colon, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/", name_empty, 1, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/a b", NULL, 0, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/a\r\nx: y", NULL, 0, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "a", NULL, 0, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "", NULL, 0, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "GE T", "/", NULL, 0, 0, false), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(start(p, &c, "", "/", NULL, 0, 0, false), TP_ERR_INVALID);
    struct tp_upstream_desc d = {
        .method = TP_STR_LIT("GET"),
        .path = TP_STR_LIT("/"),
        .authority = TP_STR_LIT("a\r\nb"),
    };
    CU_ASSERT_EQUAL(tp_upstream_request(p, &d, &cl_cb, &c, &c.req), TP_ERR_INVALID);
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    run_for(base, 50);
    CU_ASSERT_EQUAL(be->accepts, 0);
    CU_ASSERT_EQUAL(c.heads + c.ends + c.errors, 0);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

#define BIG (4u * 1024 * 1024)

static unsigned char *big_body(void)
{
    unsigned char *b = malloc(BIG);
    for (size_t i = 0; b && i < BIG; i++)
        b[i] = (unsigned char)(i * 31 + 7 + (i >> 12));
    return b;
}

static void big_on_req(struct be *be, struct be_conn *bc, const struct be_req *rq)
{
    (void)rq;
    char head[128];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
                     BIG);
    bufferevent_write(bc->bev, head, (size_t)n);
    bufferevent_write(bc->bev, be->ud, BIG);
}

static void backpressure(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    unsigned char *body = big_body();
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    be->ud = body;
    be->on_req = big_on_req;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.buffer_cap = 64 * 1024;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl c;
    cl_init(&c, base, &fin);
    c.keep_body = false;
    c.pause_every = 3;
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/big", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 20000));
    CU_ASSERT_EQUAL(c.ends, 1);
    CU_ASSERT_EQUAL(c.total, BIG);
    CU_ASSERT_EQUAL(c.sum, fnv(FNV0, body, BIG));
    CU_ASSERT_TRUE(c.pauses > 10);
    CU_ASSERT_EQUAL(c.data_while_paused, 0);
    /* Bounded delivery: at most the cap plus one parse chunk at a time. */
    CU_ASSERT_TRUE(c.max_chunk <= o.buffer_cap + 16384);
    CU_ASSERT_EQUAL(c.after_final, 0);
    cl_clear(&c);
    tp_upstream_pool_free(p);
    be_free(be);
    free(body);
    event_base_free(base);
}

static void cancel_paths(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->on_req = stall_on_req;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;

    /* Inside on_data, mid-body. */
    struct cl a;
    cl_init(&a, base, &fin);
    a.cancel_in_data = true;
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/part", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    run_for(base, 100);
    CU_ASSERT_EQUAL(a.heads, 1);
    CU_ASSERT_EQUAL(a.datas, 1);
    CU_ASSERT_EQUAL(a.ends + a.errors, 0);
    CU_ASSERT_EQUAL(be->closed, 1);

    /* Inside on_head. */
    struct cl b;
    cl_init(&b, base, &fin);
    b.cancel_in_head = true;
    CU_ASSERT_EQUAL(start(p, &b, "GET", "/part", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    run_for(base, 100);
    CU_ASSERT_EQUAL(b.heads, 1);
    CU_ASSERT_EQUAL(b.datas + b.ends + b.errors, 0);
    CU_ASSERT_EQUAL(be->closed, 2);

    /* From outside, while waiting for the answer; and right after starting. */
    struct cl c, d;
    cl_init(&c, base, &fin);
    cl_init(&d, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/never", NULL, 0, 0, false), 0);
    run_for(base, 50);
    tp_upstream_cancel(c.req);
    CU_ASSERT_EQUAL(start(p, &d, "POST", "/never", NULL, 0, -1, true), 0);
    CU_ASSERT_EQUAL(send_str(d.req, "x", false), 0);
    tp_upstream_cancel(d.req);
    run_for(base, 100);
    CU_ASSERT_EQUAL(c.heads + c.datas + c.ends + c.errors + d.heads + d.ends + d.errors,
                    0);
    CU_ASSERT_TRUE(be->closed >= 3);
    CU_ASSERT_EQUAL(be_count(be, "GET", "/never"), 1);
    CU_ASSERT_EQUAL(be_count(be, "POST", "/never"), 0);
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    tp_upstream_cancel(NULL);

    /* A request whose answer was complete may leave its connection in the pool. */
    be->on_req = NULL;
    struct cl e;
    cl_init(&e, base, &fin);
    e.cancel_in_data = true;
    CU_ASSERT_EQUAL(start(p, &e, "GET", "/ok", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    run_for(base, 50);
    stats(p, &st);
    CU_ASSERT_EQUAL(e.ends, 0);
    CU_ASSERT_EQUAL(st.idle, 1);
    cl_clear(&a);
    cl_clear(&b);
    cl_clear(&c);
    cl_clear(&d);
    cl_clear(&e);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* --- TLS ---------------------------------------------------------------------------- */

struct tls_fixture {
    char dir[64];
    char ca[128];
    SSL_CTX *srv;
};

static bool tls_setup(struct tls_fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zaslon-up-XXXXXX");
    if (!mkdtemp(f->dir))
        return false;
    snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool ok = key && x;
    if (ok) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, key);
        X509_NAME *nm = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"localhost", -1, -1, 0);
        X509_set_issuer_name(x, nm);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        const char *exts[][2] = {{"subjectAltName", "DNS:localhost,IP:127.0.0.1"},
                                 {"basicConstraints", "critical,CA:TRUE"}};
        for (int i = 0; i < 2 && ok; i++) {
            X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
            ok = e && X509_add_ext(x, e, -1) == 1;
            X509_EXTENSION_free(e);
        }
        ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    }
    FILE *fp = ok ? fopen(f->ca, "w") : NULL;
    ok = fp && PEM_write_X509(fp, x) == 1;
    if (fp)
        fclose(fp);
    if (ok) {
        f->srv = SSL_CTX_new(TLS_server_method());
        ok = f->srv && SSL_CTX_use_certificate(f->srv, x) == 1 &&
             SSL_CTX_use_PrivateKey(f->srv, key) == 1;
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

static void tls_teardown(struct tls_fixture *f)
{
    SSL_CTX_free(f->srv);
    unlink(f->ca);
    rmdir(f->dir);
}

static void tls_verify(void)
{
    struct tls_fixture f;
    CU_ASSERT_FATAL(tls_setup(&f));
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, f.srv);
    struct tp_upstream_opts o;
    unsigned fin = 0;

    /* verify on, our CA, SNI "localhost" toward 127.0.0.1: accepted, and kept alive. */
    opts_for(&o, be->port);
    o.tls = true;
    o.ca_file = f.ca;
    o.sni = "localhost";
    struct tp_upstream_pool *p = pool_for(base, &o);
    struct cl a, a2;
    cl_init(&a, base, &fin);
    cl_init(&a2, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/tls", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 5000));
    CU_ASSERT_EQUAL(a.ends, 1);
    CU_ASSERT_STRING_EQUAL(cl_body(&a), "ok");
    CU_ASSERT_STRING_EQUAL(be->sni, "localhost");
    CU_ASSERT_EQUAL(start(p, &a2, "POST", "/tls2", NULL, 0, 3, true), 0);
    CU_ASSERT_EQUAL(send_str(a2.req, "abc", true), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(a2.ends, 1);
    CU_ASSERT_EQUAL(a2.sent, 3);
    CU_ASSERT_EQUAL(be->accepts, 1);
    CU_ASSERT_STRING_EQUAL(be->reqs[1].body_start, "abc");
    tp_upstream_pool_free(p);

    /* verify on, system store: our throwaway CA is unknown. */
    opts_for(&o, be->port);
    o.tls = true;
    o.sni = "localhost";
    p = pool_for(base, &o);
    struct cl b;
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &b, "GET", "/tls", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 5000));
    CU_ASSERT_EQUAL(b.err, TP_ERR_CONNECT);
    CU_ASSERT_FALSE(b.err_head_sent);
    tp_upstream_pool_free(p);

    /* verify on, our CA, but the wrong name. */
    opts_for(&o, be->port);
    o.tls = true;
    o.ca_file = f.ca;
    o.sni = "other.example";
    p = pool_for(base, &o);
    struct cl n;
    cl_init(&n, base, &fin);
    CU_ASSERT_EQUAL(start(p, &n, "GET", "/tls", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 4, 5000));
    CU_ASSERT_EQUAL(n.err, TP_ERR_CONNECT);
    tp_upstream_pool_free(p);

    /* verify on, our CA, no SNI override: the address is checked against IP SANs and
       no SNI is sent for an address. */
    opts_for(&o, be->port);
    o.tls = true;
    o.ca_file = f.ca;
    be->sni[0] = '\0';
    p = pool_for(base, &o);
    struct cl ip;
    cl_init(&ip, base, &fin);
    CU_ASSERT_EQUAL(start(p, &ip, "GET", "/tls", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 5, 5000));
    CU_ASSERT_EQUAL(ip.ends, 1);
    CU_ASSERT_STRING_EQUAL(be->sni, "");
    tp_upstream_pool_free(p);

    /* verify off: accepted without a CA. */
    opts_for(&o, be->port);
    o.tls = true;
    o.verify = false;
    o.sni = "localhost";
    p = pool_for(base, &o);
    struct cl c;
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/tls", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 6, 5000));
    CU_ASSERT_EQUAL(c.ends, 1);
    tp_upstream_pool_free(p);

    /* A CA file that does not exist fails at creation. */
    opts_for(&o, be->port);
    o.tls = true;
    o.ca_file = "/nonexistent/ca.pem";
    p = NULL;
    CU_ASSERT_EQUAL(tp_upstream_pool_new(base, &o, &p), TP_ERR_INVALID);

    cl_clear(&a);
    cl_clear(&a2);
    cl_clear(&b);
    cl_clear(&n);
    cl_clear(&ip);
    cl_clear(&c);
    be_free(be);
    event_base_free(base);
    tls_teardown(&f);
}

/* --- the sans-I/O parser ------------------------------------------------------------ */

static void parser_bytewise(void)
{
    static const char resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Two: a \t\r\n"
                               "Set-Cookie: s=1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n2\r\nde\r\n0\r\nTrail: x\r\n\r\nNEXT";
    struct tp_upstream_resp r;
    CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_init(&r, 4096, -1, false), 0);
    size_t total = sizeof(resp) - 1, off = 0;
    while (off < total && !r.done) {
        size_t used = 0;
        CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_feed(&r, resp + off, 1, &used), 0);
        off += used;
        if (used == 0)
            break;
    }
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_TRUE(r.keep_alive);
    CU_ASSERT_EQUAL(total - off, 4); /* "NEXT" is not part of it */
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.interim, 1);
    CU_ASSERT_EQUAL(r.nfields, 4);
    if (r.nfields == 4) {
        CU_ASSERT_TRUE(tp_str_eq(r.view[0].name, "x-empty"));
        CU_ASSERT_EQUAL(r.view[0].value.len, 0);
        CU_ASSERT_TRUE(tp_str_eq(r.view[1].name, "x-two"));
        CU_ASSERT_TRUE(tp_str_eq(r.view[1].value, "a"));
        CU_ASSERT_TRUE(tp_str_eq(r.view[2].name, "set-cookie"));
        CU_ASSERT_TRUE(tp_str_eq(r.view[3].value, "chunked"));
    }
    CU_ASSERT_EQUAL(evbuffer_get_length(r.body), 5);
    size_t used = 0;
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, "x", 1, &used), TP_ERR_STATE);
    /* Reuse for a second response, read until close. */
    tp_upstream_resp_reset(&r, false);
    static const char r2[] = "HTTP/1.0 200 OK\r\n\r\nuntil eof";
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, r2, sizeof(r2) - 1, &used), 0);
    CU_ASSERT_EQUAL(used, sizeof(r2) - 1);
    CU_ASSERT_FALSE(r.done);
    CU_ASSERT_EQUAL(tp_upstream_resp_eof(&r), 0);
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_FALSE(r.keep_alive);
    CU_ASSERT_EQUAL(evbuffer_get_length(r.body), 9);
    /* EOF before anything, and mid-head. */
    tp_upstream_resp_reset(&r, false);
    CU_ASSERT_EQUAL(tp_upstream_resp_eof(&r), TP_ERR_CLOSED);
    tp_upstream_resp_reset(&r, false);
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, "HTTP/1.1 200", 12, &used), 0);
    CU_ASSERT_EQUAL(tp_upstream_resp_eof(&r), TP_ERR_CLOSED);
    /* Too many fields, and too many interim responses. */
    tp_upstream_resp_reset(&r, false);
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, "HTTP/1.1 200 OK\r\n", 17, &used), 0);
    int rv = 0;
    for (unsigned i = 0; i <= TP_UPSTREAM_MAX_FIELDS && rv == 0; i++)
        rv = tp_upstream_resp_feed(&r, "a: b\r\n", 6, &used);
    CU_ASSERT_EQUAL(rv, TP_ERR_TOO_LARGE);
    tp_upstream_resp_reset(&r, false);
    rv = 0;
    for (unsigned i = 0; i <= TP_UPSTREAM_MAX_INTERIM && rv == 0; i++)
        rv = tp_upstream_resp_feed(&r, "HTTP/1.1 100 Continue\r\n\r\n", 25, &used);
    CU_ASSERT_EQUAL(rv, TP_ERR_PROTO);
    tp_upstream_resp_clear(&r);
}

static void keepalive_off(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.max_idle = 0;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/1", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(start(p, &b, "GET", "/2", NULL, 0, 0, false), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(a.ends + b.ends, 2);
    CU_ASSERT_EQUAL(be->accepts, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(be->reqs[0].raw, "\r\nconnection: close\r\n"));
    struct tp_upstream_stats st;
    stats(p, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    cl_clear(&a);
    cl_clear(&b);
    tp_upstream_pool_free(p);
    be_free(be);
    event_base_free(base);
}

/* A pool freed with requests still live (a caller bug) frees them without callbacks. */
static void pool_free_with_live_requests(void)
{
    struct event_base *base = event_base_new();
    struct be *be = be_new(base, NULL);
    be->silent = true;
    struct tp_upstream_opts o;
    opts_for(&o, be->port);
    o.max_conns = 1;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl a, b, c;
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    cl_init(&c, base, &fin);
    CU_ASSERT_EQUAL(start(p, &a, "GET", "/a", NULL, 0, 0, false), 0);
    CU_ASSERT_EQUAL(start(p, &b, "POST", "/b", NULL, 0, -1, true), 0);
    CU_ASSERT_EQUAL(send_str(b.req, "queued body", false), 0);
    run_for(base, 50);
    tp_upstream_pool_free(p);
    run_for(base, 50);
    CU_ASSERT_EQUAL(fin, 0);
    /* And one whose connect failed but has not been told yet. */
    opts_for(&o, closed_port());
    p = pool_for(base, &o);
    CU_ASSERT_EQUAL(start(p, &c, "GET", "/c", NULL, 0, 0, false), 0);
    tp_upstream_pool_free(p);
    tp_upstream_pool_free(NULL);
    run_for(base, 50);
    CU_ASSERT_EQUAL(fin, 0);
    cl_clear(&a);
    cl_clear(&b);
    cl_clear(&c);
    be_free(be);
    event_base_free(base);
}

/* ------------------------------------------------------------------------------------ */
/* Out of memory at each point of an exchange                                           */

/* libevent's allocator, failing the Nth call once armed (0: never). It goes on
   serving plain malloc memory, so swapping it in with blocks already allocated is safe. */
static unsigned long oom_countdown;
static bool oom_fired;

static bool oom_now(void)
{
    if (oom_countdown == 0 || --oom_countdown != 0)
        return false;
    oom_fired = true;
    return true;
}

static void *oom_malloc(size_t n)
{
    return oom_now() ? NULL : malloc(n);
}

static void *oom_realloc(void *p, size_t n)
{
    return n != 0 && oom_now() ? NULL : realloc(p, n);
}

/* Reads up to a full request head; returns its length, 0 at EOF or on garbage. */
static size_t echo_read_head(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        buf[*have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end)
            return (size_t)(end - buf) + 4;
        if (*have + 1 >= cap)
            return 0;
        ssize_t n = read(fd, buf + *have, cap - 1 - *have);
        if (n <= 0)
            return 0;
        *have += (size_t)n;
    }
}

/* One backend connection, in its own process: keep-alive requests with a
   Content-Length body (or none), each answered with the body length in 4 digits. */
static void echo_serve(int fd)
{
    char buf[8192];
    size_t have = 0;
    for (;;) {
        size_t hl = echo_read_head(fd, buf, sizeof(buf), &have);
        if (hl == 0)
            return;
        unsigned long clen = 0;
        const char *cl = strstr(buf, "\r\ncontent-length: ");
        if (cl && cl < buf + hl)
            clen = strtoul(cl + 18, NULL, 10);
        size_t got = have - hl;
        memmove(buf, buf + hl, got);
        /* Body bytes beyond the buffer are only counted. */
        while (got < clen) {
            char sink[4096];
            ssize_t n = read(fd, sink, sizeof(sink));
            if (n <= 0)
                return;
            got += (size_t)n;
        }
        have = got - clen;
        memmove(buf, buf + clen, have);
        char resp[128];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n%04lu", clen % 10000);
        if (send(fd, resp, (size_t)n, MSG_NOSIGNAL) != n)
            return;
    }
}

/* A backend in a child process (a process per connection below it), so that only
   the client side meets the failing allocator. Returns its pid, or -1. */
static pid_t echo_backend(uint16_t *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd == -1)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(lfd, 64) == -1 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) == -1) {
        close(lfd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        /* Never outlive the test (a crash there must not leave us holding its pipes),
           and never run longer than a minute. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
        signal(SIGCHLD, SIG_IGN); /* connection processes reap themselves */
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            if (fd == -1)
                continue;
            if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(lfd);
                echo_serve(fd);
                _exit(0);
            }
            close(fd);
        }
    }
    close(lfd);
    return pid;
}

/* Runs |base| until *count >= want or |ms| pass, allocating nothing itself. */
static bool run_bare(struct event_base *base, const unsigned *count, unsigned want,
                     unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (*count < want && now_ms() < end) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (*count < want)
            usleep(500);
    }
    return *count >= want;
}

static struct evbuffer *body_of(size_t n)
{
    struct evbuffer *b = evbuffer_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (size_t i = 0; i < n; i++)
        evbuffer_add(b, "b", 1);
    return b;
}

/* One POST through a fresh pool while the kth libevent allocation fails (over a
   pooled connection when |warm|), then a POST with nothing failing. Returns whether
   the failure happened; *failed counts failed POSTs. */
static bool oom_round(struct event_base *base, uint16_t port, unsigned k, bool warm,
                      unsigned *failed)
{
    static const unsigned char want[4] = "3000";
    struct tp_upstream_opts o;
    opts_for(&o, port);
    /* A request left waiting shows as a hang here, not as a timeout. */
    o.connect_timeout_ms = o.first_byte_timeout_ms = o.idle_timeout_ms = 10000;
    struct tp_upstream_pool *p = pool_for(base, &o);
    unsigned fin = 0;
    struct cl w, a, b;
    cl_init(&w, base, &fin);
    cl_init(&a, base, &fin);
    cl_init(&b, base, &fin);
    w.keep_body = a.keep_body = b.keep_body = false;
    struct evbuffer *w1 = body_of(3000), *a1 = body_of(1000), *a2 = body_of(2000),
                    *b1 = body_of(3000);
    if (warm) {
        CU_ASSERT_EQUAL(start(p, &w, "POST", "/w", NULL, 0, 3000, true), 0);
        CU_ASSERT_EQUAL(tp_upstream_send(w.req, w1, true), 0);
        CU_ASSERT_TRUE(run_bare(base, &fin, 1, 3000));
        CU_ASSERT_EQUAL(w.ends, 1);
    }
    unsigned base_fin = fin;
    oom_fired = false;
    oom_countdown = k;
    int rv = start(p, &a, "POST", "/a", NULL, 0, 3000, true);
    if (rv == 0 && tp_upstream_send(a.req, a1, false) == 0) {
        /* The rest once the request has had a chance to go out. */
        for (int i = 0; i < 20 && a.req && fin == base_fin; i++) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            usleep(200);
        }
        if (a.req && fin == base_fin)
            tp_upstream_send(a.req, a2, true);
    }
    if (rv == 0)
        CU_ASSERT_TRUE(run_bare(base, &fin, base_fin + 1, 3000));
    oom_countdown = 0;
    bool fired = oom_fired;
    if (a.errors || rv != 0)
        ++*failed;
    else
        CU_ASSERT_TRUE(a.ends == 1 && a.total == 4 && a.sum == fnv(FNV0, want, 4));
    unsigned before = fin;
    CU_ASSERT_EQUAL(start(p, &b, "POST", "/b", NULL, 0, 3000, true), 0);
    CU_ASSERT_EQUAL(tp_upstream_send(b.req, b1, true), 0);
    CU_ASSERT_TRUE(run_bare(base, &fin, before + 1, 3000));
    CU_ASSERT_EQUAL(b.ends, 1);
    CU_ASSERT_EQUAL(b.status, 200);
    CU_ASSERT_TRUE(b.total == 4 && b.sum == fnv(FNV0, want, 4));
    if (a.req)
        tp_upstream_cancel(a.req);
    tp_upstream_pool_free(p);
    evbuffer_free(w1);
    evbuffer_free(a1);
    evbuffer_free(a2);
    evbuffer_free(b1);
    cl_clear(&w);
    cl_clear(&a);
    cl_clear(&b);
    return fired;
}

/* A POST whose every libevent allocation in turn fails (the body buffer, connecting,
   the head and body in two parts, reading, over a new and over a pooled connection):
   it always ends, on_end or on_error, long before any deadline, and the next POST on
   the same pool succeeds at once. A connection left mid-exchange and put back into the
   pool would take that next request's head for the rest of the failed one's body, and
   never answer it. Before libevent's read watermark was dropped, failing the
   allocation inside bufferevent_setwatermark crashed here. */
static void oom_each_allocation(void)
{
    uint16_t port = 0;
    pid_t be = echo_backend(&port);
    CU_ASSERT_FATAL(be > 0);
    event_set_mem_functions(oom_malloc, oom_realloc, free);
    struct event_base *base = event_base_new();
    for (int warm = 0; warm < 2; warm++) {
        unsigned k, failed = 0;
        for (k = 1; k < 1000; k++)
            if (!oom_round(base, port, k, warm, &failed) || CU_get_number_of_failures() > 0)
                break;
        /* The failure met every allocation of the exchange, and some of them ended it. */
        CU_ASSERT_TRUE(k > 3);
        CU_ASSERT_TRUE(failed > 0);
    }
    event_base_free(base);
    kill(be, SIGKILL);
    waitpid(be, NULL, 0);
}

static int suite_init(void)
{
    /* Writes to a peer that left must not kill the test binary. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) == -1 ? -1 : 0;
}

int test_tp_upstream(void)
{
    CU_pSuite s = CU_add_suite("tp_upstream", suite_init, NULL);
    if (!s || !CU_add_test(s, "parser, byte by byte", parser_bytewise) ||
        !CU_add_test(s, "simple GET", simple_get) ||
        !CU_add_test(s, "POST with content-length", post_content_length) ||
        !CU_add_test(s, "chunked request body", chunked_request) ||
        !CU_add_test(s, "chunked response", chunked_response) ||
        !CU_add_test(s, "read until close", read_until_close) ||
        !CU_add_test(s, "keep-alive reuse, HEAD, 204, 304, 1xx", keep_alive_reuse) ||
        !CU_add_test(s, "keep-alive off", keepalive_off) ||
        !CU_add_test(s, "pool cap and FIFO queue", pool_cap_and_queue) ||
        !CU_add_test(s, "queue deadline", queue_deadline) ||
        !CU_add_test(s, "stale pooled connection, POST", stale_pooled_post) ||
        !CU_add_test(s, "idle connection closed by the backend", idle_close_seen) ||
        !CU_add_test(s, "stale pooled connection, GET", stale_pooled_get) ||
        !CU_add_test(s, "trickled body written directly", trickled_body_direct) ||
        !CU_add_test(s, "reused connection closes after request",
                     reused_conn_closes_after_request) ||
        !CU_add_test(s, "fresh connection closes after request",
                     fresh_conn_closes_after_request) ||
        !CU_add_test(s, "connect refused, localhost", connect_refused_and_localhost) ||
        !CU_add_test(s, "timeouts", timeouts) ||
        !CU_add_test(s, "response limits and garbage", response_limits_and_garbage) ||
        !CU_add_test(s, "request validation", request_validation) ||
        !CU_add_test(s, "backpressure, 4 MiB", backpressure) ||
        !CU_add_test(s, "cancel", cancel_paths) ||
        !CU_add_test(s, "pool freed with live requests", pool_free_with_live_requests) ||
        !CU_add_test(s, "TLS verification", tls_verify) ||
        !CU_add_test(s, "out of memory at each allocation of a POST", oom_each_allocation))
        return -1;
    return 0;
}
