/* One client connection: accept, TLS handshake or cleartext sniffing, protocol
   dispatch, the connection's deadline, and the single teardown function. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tp_conn_internal.h"
#include "tp_err.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/* How long a closing connection lingers for the client's own close. */
#define LINGER_MS 2000
#define H2_PREFACE_LEN 24
#define TLS_RECORD_MAX 16384 /* plaintext bytes of one TLS record */

uint64_t tp_conn_now_ms(struct tp_conn *c)
{
    struct timeval tv;
    event_base_gettimeofday_cached(c->server->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static unsigned deadline_ms(struct tp_conn *c)
{
    switch (c->deadline) {
    case TP_DL_HANDSHAKE:
        /* Cleartext has no handshake: its first bytes are a request head. */
        return c->tls ? c->limits.tls_handshake_timeout_ms : c->limits.header_timeout_ms;
    case TP_DL_IDLE: return c->limits.idle_timeout_ms;
    case TP_DL_HEADER: return c->limits.header_timeout_ms;
    case TP_DL_BODY: return c->limits.body_timeout_ms;
    case TP_DL_NONE: break;
    }
    return 0;
}

static void arm(struct tp_conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    /* Growing the timer heap may need memory. Without the timer the connection would
       have no deadline at all: run the callback now instead, which re-arms for the time
       left (or closes, when closing). */
    if (event_add(c->timer, &tv) != 0)
        event_active(c->timer, EV_TIMEOUT, 1);
}

void tp_conn_set_deadline(struct tp_conn *c, enum tp_deadline d)
{
    /* Cleartext sniffing already ran under the header deadline: the first head (or
       the h2c SETTINGS after a trickled preface) continues that clock. */
    bool keep = !c->tls && c->deadline == TP_DL_HANDSHAKE && d == TP_DL_HEADER;
    uint64_t now = tp_conn_now_ms(c);
    c->deadline = d;
    if (!keep)
        c->deadline_start_ms = now;
    uint64_t limit = deadline_ms(c), elapsed = now - c->deadline_start_ms;
    if (d == TP_DL_NONE)
        event_del(c->timer);
    else
        arm(c, elapsed < limit ? limit - elapsed : 0);
}

void tp_conn_touch(struct tp_conn *c)
{
    /* The header deadline is absolute: trickling bytes must not extend it. */
    if (c->deadline != TP_DL_HEADER && c->deadline != TP_DL_HANDSHAKE)
        c->deadline_start_ms = tp_conn_now_ms(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_conn *c = arg;
    if (c->phase == TP_PHASE_CLOSING) {
        /* Armed once, for the flush or the linger: no lazy re-arming here. */
        tp_conn_close(c, c->lingering ? TP_EV__COUNT : TP_EV_WRITE_TIMEOUT);
        return;
    }
    uint64_t limit = deadline_ms(c);
    uint64_t elapsed = tp_conn_now_ms(c) - c->deadline_start_ms;
    if (c->deadline == TP_DL_NONE)
        return;
    if (elapsed < limit) {
        /* Progress happened since the timer was armed: sleep for the remainder. */
        arm(c, limit - elapsed);
        return;
    }
    switch (c->phase) {
    case TP_PHASE_HANDSHAKE:
        tp_conn_close(c, c->tls ? TP_EV_TLS_TIMEOUT : TP_EV_HEADER_TIMEOUT);
        return;
    case TP_PHASE_CLOSING:
    case TP_PHASE_ACTIVE:
        break;
    }
    if (c->proto == TP_PROTO_H2)
        tp_h2_on_deadline(c);
    else
        tp_h1_on_deadline(c);
}

void tp_conn_event(struct tp_conn *c, enum tp_server_event ev)
{
    if (c->server->opts.on_event)
        c->server->opts.on_event(c->server->opts.arg, ev, c->serial);
}

void tp_conn_close(struct tp_conn *c, enum tp_server_event ev)
{
    if (ev != TP_EV__COUNT)
        tp_conn_event(c, ev);
    /* Protocol state first: it may call handlers' on_abort, which must still find
       the connection intact. */
    if (c->proto == TP_PROTO_H2)
        tp_h2_free(c);
    else if (c->proto == TP_PROTO_H1)
        tp_h1_free(c);
    c->proto = TP_PROTO_NONE;
    tp_conn_server_detach(c);
    if (c->timer)
        event_free(c->timer);
    if (c->bev) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl)
            /* No close_notify wait: a quiet shutdown frees at once. */
            SSL_set_quiet_shutdown(ssl, 1);
        bufferevent_free(c->bev);
    }
    free(c);
}

static void closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
    tp_conn_close(arg, TP_EV__COUNT);
}

/* Bytes still arriving while a closing connection lingers are thrown away. */
static void closing_read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void closing_write_cb(struct bufferevent *bev, void *arg)
{
    struct tp_conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0 || c->lingering)
        return;
    if (!c->linger) {
        tp_conn_close(c, TP_EV__COUNT);
        return;
    }
    /* Lingering close (as nginx's lingering_close): half-close, then read and discard
       until the client closes or a short deadline passes. Closing with unread input
       would make the kernel send a reset, which can destroy the answer in flight. */
    int fd = bufferevent_getfd(bev);
    c->lingering = true;
    if (fd == -1 || shutdown(fd, SHUT_WR) == -1) {
        arm(c, 0); /* close from the timer: callers may still hold |c| */
        return;
    }
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
    bufferevent_setcb(bev, closing_read_cb, NULL, closing_event_cb, c);
    bufferevent_enable(bev, EV_READ);
    c->deadline_start_ms = tp_conn_now_ms(c);
    arm(c, LINGER_MS < c->limits.write_timeout_ms ? LINGER_MS : c->limits.write_timeout_ms);
}

void tp_conn_close_after_flush(struct tp_conn *c, bool linger)
{
    if (c->phase == TP_PHASE_CLOSING)
        return;
    c->linger = linger;
    c->phase = TP_PHASE_CLOSING;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(c->bev, closing_read_cb, closing_write_cb, closing_event_cb, c);
    /* Flushing is bounded by the write timeout. */
    c->deadline = TP_DL_IDLE;
    c->deadline_start_ms = tp_conn_now_ms(c);
    arm(c, c->limits.write_timeout_ms);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        if (linger)
            closing_write_cb(c->bev, c);
        else
            arm(c, 0); /* close from the timer: callers may still hold |c| */
    }
}

static void read_cb(struct bufferevent *bev, void *arg);

static void proto_write_cb(struct bufferevent *bev, void *arg)
{
    struct tp_conn *c = arg;
    if (c->proto == TP_PROTO_H2)
        tp_h2_on_write(c);
    else if (c->proto == TP_PROTO_H1)
        tp_h1_on_write(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg);

static int start_proto(struct tp_conn *c, enum tp_conn_proto proto)
{
    c->proto = proto;
    c->phase = TP_PHASE_ACTIVE;
    bufferevent_setcb(c->bev, read_cb, proto_write_cb, event_cb, c);
    /* Write low-water mark: the write callback fires once queued output falls to
       half the connection's cap, which is when producers may resume. */
    bufferevent_setwatermark(c->bev, EV_WRITE, c->limits.output_buffer / 2, 0);
    int rv = proto == TP_PROTO_H2 ? tp_h2_start(c) : tp_h1_start(c);
    if (rv != 0) {
        c->proto = TP_PROTO_NONE;
        return rv;
    }
    return 0;
}

/* Cleartext: the first bytes say whether this is HTTP/2 with prior knowledge (the
   connection preface) or HTTP/1.1. */
static int sniff(struct tp_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
    unsigned char buf[H2_PREFACE_LEN];
    if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n)
        return -1;
    if (memcmp(buf, h2_preface, n) != 0)
        return start_proto(c, TP_PROTO_H1) == 0 ? 1 : -1;
    if (n < H2_PREFACE_LEN)
        return 0; /* need more */
    return start_proto(c, TP_PROTO_H2) == 0 ? 1 : -1;
}

/* TLS connections read ahead (tp_tls.c): OpenSSL reads what the socket holds and
   hands back one record per SSL_read, and libevent 2.1 stops once the current record's
   plaintext is taken (SSL_pending), leaving later records in OpenSSL's buffer until the
   next packet arrives. Those are taken here, before the protocol reads. A record that
   fails (a forged or damaged one, or the peer's close_notify), or no memory to take it
   into, ends the connection from the loop, as libevent's own read would, once what came
   before it is handled: left alone, nothing would meet it before the next packet or the
   idle deadline. */
static void tls_drain(struct tp_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    short end = BEV_EVENT_ERROR;
    while (SSL_has_pending(ssl)) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, TLS_RECORD_MAX, &v, 1) != 1)
            goto fail;
        int n = SSL_read(ssl, v.iov_base, v.iov_len < INT_MAX ? (int)v.iov_len : INT_MAX);
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return; /* a record still arriving */
            if (e == SSL_ERROR_ZERO_RETURN)
                end = BEV_EVENT_EOF;
            goto fail;
        }
        v.iov_len = (size_t)n;
        if (evbuffer_commit_space(in, &v, 1) != 0)
            goto fail;
    }
    return;
fail:
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_trigger_event(c->bev, BEV_EVENT_READING | end, BEV_TRIG_DEFER_CALLBACKS);
}

int tp_conn_read_on(struct tp_conn *c)
{
    if (bufferevent_get_enabled(c->bev) & EV_READ)
        return 0;
    if (bufferevent_enable(c->bev, EV_READ) != 0)
        return -1;
    /* Records already read ahead wait for no packet: read them from the loop. */
    if (c->tls && SSL_has_pending(bufferevent_openssl_get_ssl(c->bev)))
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct tp_conn *c = arg;
    if (c->tls)
        tls_drain(c);
    if (c->proto == TP_PROTO_NONE) {
        int rv = sniff(c);
        if (rv < 0) {
            tp_conn_close(c, TP_EV_NOMEM);
            return;
        }
        if (rv == 0)
            return;
    }
    if (c->proto == TP_PROTO_H2)
        tp_h2_on_read(c);
    else
        tp_h1_on_read(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct tp_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* TLS handshake done: ALPN decides the protocol. */
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *alpn = NULL;
        unsigned int alpnlen = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
        bool h2 = alpnlen == 2 && memcmp(alpn, "h2", 2) == 0;
        if (start_proto(c, h2 ? TP_PROTO_H2 : TP_PROTO_H1) != 0) {
            tp_conn_close(c, TP_EV_NOMEM);
            return;
        }
        /* Bytes that arrived with the handshake's last flight. */
        if (evbuffer_get_length(bufferevent_get_input(bev)) > 0 || SSL_has_pending(ssl))
            read_cb(bev, c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        tp_conn_close(c, TP_EV_WRITE_TIMEOUT);
        return;
    }
    if (c->phase == TP_PHASE_HANDSHAKE && c->tls && (what & BEV_EVENT_ERROR)) {
        tp_conn_close(c, TP_EV_TLS_FAILED);
        return;
    }
    /* EOF or error: the protocol side decides what a half-close means for requests
       in flight; here the connection simply ends. */
    tp_conn_close(c, TP_EV__COUNT);
}

void tp_conn_accept(struct tp_server *s, int fd, SSL_CTX *ssl_ctx)
{
    struct tp_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->server = s;
    c->limits = s->opts.limits;
    c->serial = ++s->next_serial;
    c->tls = ssl_ctx != NULL;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (ssl_ctx) {
        SSL *ssl = SSL_new(ssl_ctx);
        if (!ssl) {
            close(fd);
            free(c);
            return;
        }
        /* With BEV_OPT_CLOSE_ON_FREE the SSL is libevent's from here on, even when
           this fails (libevent 2.1 frees it on its error path): freeing it again
           here was a double free. */
        c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                flags);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(s->base, fd, flags);
    }
    if (!c->bev) {
        close(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(s->base, timer_cb, c);
    if (!c->timer) {
        bufferevent_free(c->bev);
        free(c);
        return;
    }
    LIST_INSERT_HEAD(&s->conns, c, link);
    s->nconns++;
    tp_conn_server_attach(c);
    c->phase = TP_PHASE_HANDSHAKE;
    /* Cleartext waits for its first bytes under the header deadline. */
    c->deadline = TP_DL_HANDSHAKE;
    c->deadline_start_ms = tp_conn_now_ms(c);
    arm(c, deadline_ms(c));
    struct timeval wt = {(time_t)(c->limits.write_timeout_ms / 1000),
                         (suseconds_t)(c->limits.write_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    /* Adding the socket to the event loop may need memory: without it the connection
       would sit unread until its deadline. */
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
        tp_conn_close(c, TP_EV_NOMEM);
}
