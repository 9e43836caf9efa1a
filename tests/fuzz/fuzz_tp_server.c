/* Feeds arbitrary bytes to the real server side, as a client would: a tp_server with
   zaslon's limits accepts one end of a socketpair, the input is written into the other
   end, and the loop runs until the connection closes or a short deadline passes. Bytes
   that start with the HTTP/2 preface reach the nghttp2 session with zaslon's callbacks
   and options; anything else reaches the HTTP/1.1 side (libhttp-parser plus our
   scanner). A small handler reads bodies with credit and answers each request, so
   responses, flow control and stream teardown are all exercised. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "tp_conn_internal.h"
#include "tp_server.h"

static void on_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    size_t n = evbuffer_get_length(data);
    evbuffer_drain(data, n);
    tp_req_consume(req, n);
    if (!end)
        return;
    static const char body[] = "fuzz";
    struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("text/plain")};
    if (tp_req_respond(req, 200, &ct, 1, sizeof(body) - 1, false) == 0) {
        tp_req_write_ref(req, body, sizeof(body) - 1);
        tp_req_end(req);
    }
    req->handler = NULL;
}

static void on_abort(struct tp_req *req)
{
}

static const struct tp_req_handler handler = {.on_body = on_body, .on_abort = on_abort};

static void on_request(void *arg, struct tp_req *req)
{
    /* Touch every field the transport promises, so a bad pointer shows under ASan. */
    volatile size_t sum = req->method.len + req->path.len + req->authority.len;
    for (size_t i = 0; i < req->nheaders; i++)
        sum += req->headers[i].name.len + req->headers[i].value.len +
               (size_t)(unsigned char)(req->headers[i].value.len ? req->headers[i].value.base[0] : 0);
    (void)sum;
    tp_req_set_handler(req, &handler, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        signal(SIGPIPE, SIG_IGN);
        once = true;
    }
    int sv[2];
    if (size > 1 << 20 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
        return 0;
    struct event_base *base = event_base_new();
    struct tp_server_opts opts = {.on_request = on_request};
    tp_server_limits_default(&opts.limits);
    /* Short deadlines keep each input bounded; small buffers reach the caps. */
    opts.limits.header_timeout_ms = 200;
    opts.limits.idle_timeout_ms = 200;
    opts.limits.body_timeout_ms = 200;
    opts.limits.write_timeout_ms = 200;
    opts.limits.stream_buffer = 16 * 1024;
    opts.limits.output_buffer = 32 * 1024;
    struct tp_server *srv = NULL;
    if (!base || tp_server_new(base, &opts, &srv) != 0) {
        close(sv[0]);
        close(sv[1]);
        if (base)
            event_base_free(base);
        return 0;
    }
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    tp_conn_accept(srv, sv[0], NULL);
    /* The input goes in as the socket buffer takes it; the rest of the time the
       server's answers are drained so it never blocks on a full pipe. */
    size_t off = 0;
    struct event *stop = evtimer_new(base, stop_cb, base);
    struct timeval tv = {0, 300 * 1000};
    evtimer_add(stop, &tv);
    for (int round = 0; round < 200 && tp_server_connections(srv) > 0; round++) {
        if (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);
            if (n > 0)
                off += (size_t)n;
            if (off == size)
                shutdown(sv[1], SHUT_WR);
        }
        char sink[65536];
        while (read(sv[1], sink, sizeof(sink)) > 0)
            ;
        if (event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == -1 ||
            event_base_got_break(base))
            break;
        if (off == size && size == 0)
            shutdown(sv[1], SHUT_WR);
    }
    event_free(stop);
    tp_server_free(srv);
    event_base_free(base);
    close(sv[1]);
    return 0;
}
