#include "tp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "tp_conn_internal.h"
#include "tp_err.h"

/* Accepting resumes this long after EMFILE/ENFILE: short enough to serve again well
   within a second, long enough not to spin on a full descriptor table. */
#define ACCEPT_RETRY_MS 100

/* What one open connection costs the memory budget beyond its queued bytes: the
   connection and bufferevent, their buffers' first chains, and a TLS object or an
   nghttp2 session with its HPACK tables. An estimate, on the generous side of what
   test_slow.py measures for idle and slow connections. */
#define CONN_COST (16 * 1024)

/* Per-request deadlines are checked by one sweep per server, every tenth of the
   shortest such deadline, within these bounds. */
#define SWEEP_MIN_MS 50
#define SWEEP_MAX_MS 1000

/* The budget is one counter for the whole process: workers charge and release with
   relaxed atomics (an exact order does not matter, only the running sum). */
static atomic_size_t budget_used;
static atomic_size_t budget_limit;

static const char *const event_names[TP_EV__COUNT] = {
    [TP_EV_ACCEPT_PAUSED] = "accept paused",
    [TP_EV_TLS_FAILED] = "tls handshake failed",
    [TP_EV_TLS_TIMEOUT] = "tls handshake timeout",
    [TP_EV_HEADER_TIMEOUT] = "request header timeout",
    [TP_EV_IDLE_TIMEOUT] = "idle timeout",
    [TP_EV_BODY_TIMEOUT] = "request body timeout",
    [TP_EV_WRITE_TIMEOUT] = "write timeout",
    [TP_EV_PROTOCOL_ERROR] = "protocol error",
    [TP_EV_FLOOD] = "flood",
    [TP_EV_NOMEM] = "out of memory",
    [TP_EV_STREAM_TIMEOUT] = "stream timeout",
    [TP_EV_OVER_BUDGET] = "memory budget spent",
};

const char *tp_server_event_str(enum tp_server_event ev)
{
    return ev < TP_EV__COUNT && event_names[ev] ? event_names[ev] : "unknown";
}

void tp_server_limits_default(struct tp_server_limits *l)
{
    l->max_conns = 10000;
    l->max_concurrent_streams = 100;
    l->header_list_size = 64 * 1024;
    l->header_fields = 100;
    l->max_continuations = 8;
    l->stream_reset_burst = 1000;
    l->stream_reset_rate = 33;
    l->tls_handshake_timeout_ms = 10000;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->body_timeout_ms = 30000;
    l->write_timeout_ms = 30000;
    l->output_buffer = 256 * 1024;
    l->stream_buffer = 64 * 1024;
    l->max_requests_per_conn = 1000;
    l->stream_timeout_ms = 60000;
    l->memory_budget = 0;
}

size_t tp_server_memory_used(void)
{
    return atomic_load_explicit(&budget_used, memory_order_relaxed);
}

bool tp_server_over_budget(void)
{
    size_t limit = atomic_load_explicit(&budget_limit, memory_order_relaxed);
    return limit != 0 &&
           atomic_load_explicit(&budget_used, memory_order_relaxed) >= limit;
}

static void charge(struct tp_conn *c, size_t add, size_t sub)
{
    c->budget_charged = c->budget_charged + add - sub;
    if (add >= sub)
        atomic_fetch_add_explicit(&budget_used, add - sub, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&budget_used, sub - add, memory_order_relaxed);
}

/* Every change to a connection's input or output queue moves the budget. */
static void budget_buffer_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                             void *arg)
{
    charge(arg, info->n_added, info->n_deleted);
}

int tp_listen_socket(const char *host, uint16_t port, int *out)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (!host || !*host) {
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons(port);
        sslen = sizeof(*s6);
    } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        sslen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        sslen = sizeof(*s6);
    } else {
        errno = EINVAL;
        return TP_ERR_INVALID;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return TP_ERR_IO;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    /* "*" listens on both families through one dual-stack socket. */
    if (ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (!host || !*host) ? &zero : &one,
                   sizeof(int)) == -1)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 || listen(fd, 4096) == -1)
        goto fail;
    *out = fd;
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return TP_ERR_IO;
}

int tp_server_new(struct event_base *base, const struct tp_server_opts *opts,
                  struct tp_server **out)
{
    struct tp_server *s = calloc(1, sizeof(*s));
    if (!s)
        return TP_ERR_NOMEM;
    s->base = base;
    s->opts = *opts;
    atomic_store_explicit(&budget_limit, opts->limits.memory_budget,
                          memory_order_relaxed);
    LIST_INIT(&s->listeners);
    LIST_INIT(&s->conns);
    *out = s;
    return 0;
}

static void watch_budget(struct tp_server *s);

void tp_server_set_limits(struct tp_server *s, const struct tp_server_limits *l)
{
    s->opts.limits = *l;
    atomic_store_explicit(&budget_limit, l->memory_budget, memory_order_relaxed);
    if (!LIST_EMPTY(&s->listeners))
        watch_budget(s);
}

static void set_accepting(struct tp_server *s, bool on)
{
    struct tp_listener *l;
    LIST_FOREACH(l, &s->listeners, link)
    {
        if (on)
            evconnlistener_enable(l->lev);
        else
            evconnlistener_disable(l->lev);
    }
    s->accept_paused = !on;
}

static void arm_resume(struct tp_server *s)
{
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    event_add(s->resume_accept, &tv);
}

static void resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_server *s = arg;
    if (s->draining)
        return;
    /* Over budget, new connections wait in the kernel's backlog: look again soon. */
    if (tp_server_over_budget())
        arm_resume(s);
    else if (s->nconns < s->opts.limits.max_conns)
        set_accepting(s, true);
}

static void pause_accept(struct tp_server *s, bool retry)
{
    if (s->accept_paused)
        return;
    set_accepting(s, false);
    if (s->opts.on_event)
        s->opts.on_event(s->opts.arg, TP_EV_ACCEPT_PAUSED, 0);
    if (retry && s->resume_accept)
        arm_resume(s);
}

/* Another worker may spend the budget: every worker looks at it a few times a second
   while a budget is set, so that all of them stop accepting, not only the one that
   happens to accept next. */
static void budget_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_server *s = arg;
    if (!s->draining && tp_server_over_budget())
        pause_accept(s, true);
}

static void watch_budget(struct tp_server *s)
{
    bool on = atomic_load_explicit(&budget_limit, memory_order_relaxed) != 0;
    if (!on) {
        if (s->budget_watch)
            event_del(s->budget_watch);
        return;
    }
    if (!s->budget_watch &&
        !(s->budget_watch = event_new(s->base, -1, EV_PERSIST, budget_watch_cb, s)))
        return; /* without the watch, each worker still pauses on its next accept */
    if (!evtimer_pending(s->budget_watch, NULL)) {
        struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
        event_add(s->budget_watch, &tv);
    }
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct tp_listener *l = arg;
    struct tp_server *s = l->server;
    /* The peer address is deliberately not kept anywhere. */
    if (s->draining) {
        close(fd);
        return;
    }
    tp_conn_accept(s, fd, l->ssl_ctx);
    if (s->nconns >= s->opts.limits.max_conns)
        pause_accept(s, false);
    else if (tp_server_over_budget())
        pause_accept(s, true);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct tp_listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors: pause instead of spinning on a listener that stays
       readable, and try again shortly (OpenBSD httpd's server_accept_reserve). */
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        pause_accept(l->server, true);
}

int tp_server_listen(struct tp_server *s, int fd, SSL_CTX *ssl_ctx)
{
    struct tp_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return TP_ERR_NOMEM;
    }
    if (!s->resume_accept && !(s->resume_accept = evtimer_new(s->base, resume_accept_cb, s))) {
        free(l);
        close(fd);
        return TP_ERR_NOMEM;
    }
    l->server = s;
    l->lev = evconnlistener_new(s->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!l->lev) {
        free(l);
        close(fd);
        return TP_ERR_NOMEM;
    }
    evconnlistener_set_error_cb(l->lev, accept_error_cb);
    if (ssl_ctx) {
        SSL_CTX_up_ref(ssl_ctx);
        l->ssl_ctx = ssl_ctx;
    }
    LIST_INSERT_HEAD(&s->listeners, l, link);
    watch_budget(s);
    return 0;
}

static unsigned sweep_ms(const struct tp_server_limits *l)
{
    unsigned ms = l->stream_timeout_ms < l->body_timeout_ms ? l->stream_timeout_ms
                                                            : l->body_timeout_ms;
    ms /= 10;
    return ms < SWEEP_MIN_MS ? SWEEP_MIN_MS : ms > SWEEP_MAX_MS ? SWEEP_MAX_MS : ms;
}

static void arm_sweep(struct tp_server *s)
{
    unsigned ms = sweep_ms(&s->opts.limits);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(s->sweep, &tv);
}

/* Absolute per-request deadlines: no byte a client trickles re-arms them. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tp_server *s = arg;
    struct tp_conn *c, *next;
    for (c = LIST_FIRST(&s->conns); c; c = next) {
        next = LIST_NEXT(c, link);
        if (c->phase != TP_PHASE_ACTIVE)
            continue;
        if (c->proto == TP_PROTO_H2)
            tp_h2_expire(c, tp_conn_now_ms(c));
        else if (c->proto == TP_PROTO_H1)
            tp_h1_expire(c, tp_conn_now_ms(c));
    }
    if (s->nconns)
        arm_sweep(s);
}

void tp_conn_budget_track(struct tp_conn *c, struct evbuffer *buf)
{
    if (c->budget_charged && buf)
        evbuffer_add_cb(buf, budget_buffer_cb, c);
}

void tp_conn_budget_untrack(struct tp_conn *c, struct evbuffer *buf)
{
    if (c->budget_charged && buf && evbuffer_remove_cb(buf, budget_buffer_cb, c) == 0)
        charge(c, 0, evbuffer_get_length(buf));
}

/* Called from tp_conn_accept once |c| is counted: it starts paying for itself. */
void tp_conn_server_attach(struct tp_conn *c)
{
    struct tp_server *s = c->server;
    /* With no budget set, connections skip the accounting (a reload that sets one
       counts the connections accepted from then on). */
    if (atomic_load_explicit(&budget_limit, memory_order_relaxed) != 0) {
        charge(c, CONN_COST, 0);
        evbuffer_add_cb(bufferevent_get_input(c->bev), budget_buffer_cb, c);
        evbuffer_add_cb(bufferevent_get_output(c->bev), budget_buffer_cb, c);
    }
    if (!s->sweep)
        s->sweep = evtimer_new(s->base, sweep_cb, s);
    if (s->sweep && !evtimer_pending(s->sweep, NULL))
        arm_sweep(s);
}

/* Called from tp_conn_close: a slot is free again. */
void tp_conn_server_detach(struct tp_conn *c)
{
    struct tp_server *s = c->server;
    LIST_REMOVE(c, link);
    s->nconns--;
    if (c->budget_charged) {
        evbuffer_remove_cb(bufferevent_get_input(c->bev), budget_buffer_cb, c);
        evbuffer_remove_cb(bufferevent_get_output(c->bev), budget_buffer_cb, c);
        charge(c, 0, c->budget_charged);
    }
    if (s->accept_paused && !s->draining && s->nconns < s->opts.limits.max_conns &&
        !evtimer_pending(s->resume_accept, NULL)) {
        if (tp_server_over_budget())
            arm_resume(s);
        else
            set_accepting(s, true);
    }
}

static void free_listeners(struct tp_server *s)
{
    struct tp_listener *l;
    while ((l = LIST_FIRST(&s->listeners))) {
        LIST_REMOVE(l, link);
        evconnlistener_free(l->lev);
        SSL_CTX_free(l->ssl_ctx);
        free(l);
    }
}

static void drain_all(struct tp_server *s, bool final)
{
    struct tp_conn *c, *next;
    for (c = LIST_FIRST(&s->conns); c; c = next) {
        next = LIST_NEXT(c, link);
        c->draining = true;
        if (c->proto == TP_PROTO_H2)
            tp_h2_drain(c, final);
        else if (c->proto == TP_PROTO_H1)
            tp_h1_drain(c, final);
        else if (final)
            tp_conn_close(c, TP_EV_IDLE_TIMEOUT);
    }
}

static void drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    drain_all(arg, true);
}

void tp_server_drain(struct tp_server *s)
{
    if (s->draining)
        return;
    s->draining = true;
    free_listeners(s);
    if (s->resume_accept)
        event_del(s->resume_accept);
    if (s->budget_watch)
        event_del(s->budget_watch);
    /* First GOAWAY now (last stream id 2^31-1 per RFC 9113 6.8), the real one a
       second later, so requests already in flight on the wire are not lost. */
    drain_all(s, false);
    s->drain_timer = evtimer_new(s->base, drain_timer_cb, s);
    if (s->drain_timer) {
        struct timeval tv = {1, 0};
        event_add(s->drain_timer, &tv);
    } else {
        drain_all(s, true);
    }
}

const char *tp_server_date(struct tp_server *s)
{
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    if (tv.tv_sec != s->date_sec) {
        s->date_sec = tv.tv_sec;
        tp_http_date(tv.tv_sec, s->date);
    }
    return s->date;
}

size_t tp_server_connections(const struct tp_server *s)
{
    return s->nconns;
}

void tp_server_free(struct tp_server *s)
{
    if (!s)
        return;
    struct tp_conn *c;
    while ((c = LIST_FIRST(&s->conns)))
        tp_conn_close(c, TP_EV_IDLE_TIMEOUT);
    free_listeners(s);
    if (s->resume_accept)
        event_free(s->resume_accept);
    if (s->drain_timer)
        event_free(s->drain_timer);
    if (s->sweep)
        event_free(s->sweep);
    if (s->budget_watch)
        event_free(s->budget_watch);
    tp_h2_callbacks_free(s);
    free(s);
}
