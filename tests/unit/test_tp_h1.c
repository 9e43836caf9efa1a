/* The HTTP/1.1 server side, driven in-process: a real tp_server on 127.0.0.1:0 and a
   client bufferevent on the same event_base sending raw bytes. */
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

#include "unit_suites.h"
#include "tp_server.h"

struct echo_req {
    struct tp_req *req;
    size_t body;
};

static unsigned requests_seen;

static void echo_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct echo_req *e = req->handler_data;
    size_t n = evbuffer_get_length(data);
    e->body += n;
    evbuffer_drain(data, n);
    tp_req_consume(req, n);
    if (!end)
        return;
    char out[256];
    int len = snprintf(out, sizeof(out), "%.*s %.*s host=%.*s fields=%zu body=%zu",
                       (int)req->method.len, req->method.base, (int)req->path.len,
                       req->path.base, (int)req->authority.len, req->authority.base,
                       req->nheaders, e->body);
    struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("text/plain")};
    tp_req_respond(req, 200, &ct, 1, len, false);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, out, (size_t)len);
    tp_req_write(req, b);
    evbuffer_free(b);
    tp_req_end(req);
    free(e);
    req->handler = NULL;
}

static void echo_abort(struct tp_req *req)
{
    free(req->handler_data);
}

static const struct tp_req_handler echo_handler = {
    .on_body = echo_body,
    .on_abort = echo_abort,
};

static void on_request(void *arg, struct tp_req *req)
{
    requests_seen++;
    struct echo_req *e = calloc(1, sizeof(*e));
    e->req = req;
    tp_req_set_handler(req, &echo_handler, e);
}

struct client {
    struct evbuffer *got;
    bool closed;
    struct event_base *base;
};

static void client_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    evbuffer_add_buffer(cl->got, bufferevent_get_input(bev));
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        evbuffer_add_buffer(cl->got, bufferevent_get_input(bev));
        cl->closed = true;
        event_base_loopexit(cl->base, NULL);
    }
}

/* Sends |raw| to a fresh server and returns what came back within |ms| (NUL-
   terminated, caller frees); *closed tells whether the server closed. */
static char *exchange(const char *raw, size_t rawlen, unsigned ms, bool *closed,
                      const struct tp_server_limits *limits)
{
    struct event_base *base = event_base_new();
    struct tp_server_opts opts = {.on_request = on_request};
    if (limits)
        opts.limits = *limits;
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

    struct client cl = {.got = evbuffer_new(), .base = base};
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, client_read, NULL, client_event, &cl);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    CU_ASSERT_FATAL(bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    bufferevent_write(bev, raw, rawlen);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    *closed = cl.closed;
    size_t n = evbuffer_get_length(cl.got);
    char *out = malloc(n + 1);
    evbuffer_remove(cl.got, out, n);
    out[n] = '\0';
    evbuffer_free(cl.got);
    bufferevent_free(bev);
    tp_server_free(srv);
    event_base_free(base);
    return out;
}

#define SEND(lit, closed) exchange(lit, sizeof(lit) - 1, 300, closed, NULL)

static void simple_get(void)
{
    bool closed;
    requests_seen = 0;
    char *r = SEND("GET /a?b=c HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n", &closed);
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "HTTP/1.1 200 OK\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "GET /a?b=c host=example.com fields=1 body=0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "\r\nDate: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "\r\nContent-Length: "));
    CU_ASSERT_PTR_NULL(strstr(r, "Server:"));
    CU_ASSERT_FALSE(closed); /* keep-alive */
    CU_ASSERT_EQUAL(requests_seen, 1);
    free(r);
}

static void pipelined_and_bodies(void)
{
    bool closed;
    requests_seen = 0;
    char *r = SEND("POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                   "POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
                   "GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                   &closed);
    const char *one = strstr(r, "POST /one host=h fields=1 body=5");
    const char *two = strstr(r, "POST /two host=h fields=1 body=7");
    const char *three = strstr(r, "GET /three host=h fields=1 body=0");
    CU_ASSERT_PTR_NOT_NULL(one);
    CU_ASSERT_PTR_NOT_NULL(two);
    CU_ASSERT_PTR_NOT_NULL(three);
    CU_ASSERT_TRUE(one && two && three && one < two && two < three);
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "Connection: close"));
    CU_ASSERT_TRUE(closed);
    CU_ASSERT_EQUAL(requests_seen, 3);
    free(r);
}

/* Every one of these must get 400 and a close, and never reach the handler. */
static void smuggling_refused(void)
{
    #define C(lit) {lit, sizeof(lit) - 1}
    static const struct {
        const char *p;
        size_t len;
    } bad[] = {
        C("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        C("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc"),
        C("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        C("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"),
        C("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n"),           /* obs-fold */
        C("GET / HTTP/1.1\nHost: h\n\n"),                                  /* bare LF */
        C("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),                      /* bare LF */
        C("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"),                      /* bare CR */
        C("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"),                 /* NUL */
        C("GET http://other.example/ HTTP/1.1\r\nHost: h\r\n\r\n"),        /* absolute-form */
        C("CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n"),
        C("GET / HTTP/1.1\r\n\r\n"),                                       /* no Host */
        C("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),                 /* two Hosts */
        C("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
        C("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool closed;
        requests_seen = 0;
        char *r = exchange(bad[i].p, bad[i].len, 300, &closed, NULL);
        int ok = strncmp(r, "HTTP/1.1 400 Bad Request\r\n", 26) == 0 ||
                 strncmp(r, "HTTP/1.1 505 ", 13) == 0;
        if (!ok || !closed || requests_seen)
            fprintf(stderr, "\ncase %zu: got \"%.40s\" closed=%d seen=%u\n", i, r, closed,
                    requests_seen);
        CU_ASSERT_TRUE(ok);
        CU_ASSERT_TRUE(closed);
        CU_ASSERT_EQUAL(requests_seen, 0);
        CU_ASSERT_PTR_NULL(strstr(r, "zaslon"));
        free(r);
    }
#undef C
}

static void header_limits(void)
{
    bool closed;
    struct tp_server_limits l;
    tp_server_limits_default(&l);
    l.header_fields = 8;
    char raw[1024] = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 9; i++)
        snprintf(raw + strlen(raw), sizeof(raw) - strlen(raw), "X-%d: v\r\n", i);
    strcat(raw, "\r\n");
    requests_seen = 0;
    char *r = exchange(raw, strlen(raw), 300, &closed, &l);
    CU_ASSERT_EQUAL(strncmp(r, "HTTP/1.1 431 ", 13), 0);
    CU_ASSERT_EQUAL(requests_seen, 0);
    free(r);

    tp_server_limits_default(&l);
    l.header_list_size = 1024;
    char *big = malloc(4096);
    snprintf(big, 4096, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %02000d\r\n\r\n", 0);
    r = exchange(big, strlen(big), 300, &closed, &l);
    CU_ASSERT_EQUAL(strncmp(r, "HTTP/1.1 431 ", 13), 0);
    free(r);
    free(big);
}

static void header_deadline_is_absolute(void)
{
    /* A head that never completes is closed by the header deadline. */
    bool closed;
    struct tp_server_limits l;
    tp_server_limits_default(&l);
    l.header_timeout_ms = 200;
    requests_seen = 0;
    char *r = exchange("GET / HTTP/1.1\r\nHost: h\r\n", 26, 1500, &closed, &l);
    CU_ASSERT_TRUE(closed);
    CU_ASSERT_EQUAL(requests_seen, 0);
    free(r);
}

static void expect_continue(void)
{
    bool closed;
    char *r = SEND("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                   "Expect: 100-continue\r\n\r\nok",
                   &closed);
    CU_ASSERT_EQUAL(strncmp(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "body=2"));
    free(r);
}

int test_tp_h1(void)
{
    CU_pSuite s = CU_add_suite("tp_h1", NULL, NULL);
    if (!s || !CU_add_test(s, "simple GET", simple_get) ||
        !CU_add_test(s, "pipelined requests with bodies", pipelined_and_bodies) ||
        !CU_add_test(s, "smuggling shapes refused", smuggling_refused) ||
        !CU_add_test(s, "header count and size limits", header_limits) ||
        !CU_add_test(s, "header deadline", header_deadline_is_absolute) ||
        !CU_add_test(s, "expect 100-continue", expect_continue))
        return -1;
    return 0;
}
