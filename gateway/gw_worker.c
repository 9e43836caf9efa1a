#include "gw_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "gw_log.h"
#include "gw_pipeline.h"
#include "gw_relay.h"
#include "tp_server.h"

static void on_server_event(void *arg, enum tp_server_event ev, uint64_t serial)
{
    struct gw_worker *w = arg;
    w->events[ev]++;
    /* Peer-triggered events are counted; a line only at debug level, and it carries
       the connection's serial and a fixed reason, never an address. */
    gw_log(GW_LOG_DEBUG, "worker=%u conn=%llu %s", w->index, (unsigned long long)serial,
           tp_server_event_str(ev));
}

static void adapter_log(void *ctx, enum adapter_log_level level, const char *fmt,
                        va_list ap) __attribute__((format(printf, 3, 0)));

static void adapter_log(void *ctx, enum adapter_log_level level, const char *fmt, va_list ap)
{
    gw_logv((enum gw_log_level)level, fmt, ap);
}

struct event_base *gw_worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    struct event_base *base = NULL;
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int gw_worker_init(struct gw_worker *w, unsigned index, const struct gw_runtime *rt,
                   const struct gw_worker_socket *socks, size_t nsocks, char *err,
                   size_t errlen)
{
    memset(w, 0, sizeof(*w));
    atomic_init(&w->finished, false);
    w->drain_fd = -1;
    w->index = index;
    w->rt = rt;
    const struct conf_snapshot *snap = rt->snap;
    w->base = gw_worker_base_new();
    w->adapters = calloc(rt->nbackends ? rt->nbackends : 1, sizeof(void *));
    if (!w->base || !w->adapters) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct tp_server_opts opts = {
        .limits = rt->limits,
        .on_request = gw_pipeline_on_request,
        .on_event = on_server_event,
        .arg = w,
        .server_header = snap->server_header,
    };
    if (tp_server_new(w->base, &opts, &w->server) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nsocks; i++) {
        int fd = fcntl(socks[i].fd, F_DUPFD_CLOEXEC, 0);
        if (fd == -1) {
            snprintf(err, errlen, "cannot duplicate a listening socket: %s",
                     strerror(errno));
            return -1;
        }
        if (tp_server_listen(w->server, fd, rt->ssl_ctx[socks[i].listen]) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    struct adapter_host host = {.base = w->base, .log = adapter_log, .log_ctx = w};
    for (size_t i = 0; i < rt->nbackends; i++) {
        const struct gw_backend *b = &rt->backends[i];
        if (b->ops->create(b->adapter_cfg, &host, &w->adapters[i]) != 0) {
            snprintf(err, errlen, "backend \"%s\": cannot start its adapter", b->name);
            return -1;
        }
    }
    return gw_relay_worker_init(w, err, errlen);
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    if (tp_server_connections(w->server) == 0)
        event_base_loopbreak(w->base);
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    size_t left = tp_server_connections(w->server);
    if (left)
        gw_log(GW_LOG_WARN, "worker=%u drain deadline: closing %zu connections", w->index,
               left);
    event_base_loopbreak(w->base);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    uint64_t n;
    /* Empty the counter; the event is not persistent, so later asks are never read. */
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
        gw_log(GW_LOG_WARN, "worker=%u drain signal: %s", w->index, strerror(errno));
    /* A reload and then SIGTERM both ask; the first drain's deadline stands. */
    if (w->draining)
        return;
    w->draining = true;
    /* tp_server_drain sends the shutdown notice (GOAWAY, last stream id 2^31-1) now and
       the GOAWAY with the real last stream id a second later. */
    tp_server_drain(w->server);
    unsigned ms = w->rt->snap->limits.drain_timeout_ms;
    struct timeval dl = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    struct timeval tick = {0, 50 * 1000};
    w->drain_deadline = evtimer_new(w->base, drain_deadline_cb, w);
    w->drain_check = event_new(w->base, -1, EV_PERSIST, drain_check_cb, w);
    if (!w->drain_deadline || !w->drain_check) {
        event_base_loopbreak(w->base);
        return;
    }
    event_add(w->drain_deadline, &dl);
    event_add(w->drain_check, &tick);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    event_base_dispatch(w->base);
    void (*on_exit)(void *) = w->on_exit;
    void *exit_arg = w->on_exit_arg;
    /* After this store the main thread may join and free |w|: read it no more. */
    atomic_store(&w->finished, true);
    if (on_exit)
        on_exit(exit_arg);
    return NULL;
}

int gw_worker_start(struct gw_worker *w, void (*on_exit)(void *arg), void *arg)
{
    w->on_exit = on_exit;
    w->on_exit_arg = arg;
    /* The main thread's only way in: its loop is not ours to touch (no locks), so it
       writes to this eventfd, which our loop watches. Armed before pthread_create, which
       orders everything built on this thread before the worker's first step. */
    w->drain_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->drain_fd == -1)
        return -1;
    w->drain_ev = event_new(w->base, w->drain_fd, EV_READ, drain_cb, w);
    if (!w->drain_ev || event_add(w->drain_ev, NULL) != 0)
        return -1;
    /* Signals belong to the main thread: workers block them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rv = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv != 0)
        return -1;
    w->started = true;
    return 0;
}

void gw_worker_drain(struct gw_worker *w)
{
    /* A write to the eventfd is all another thread may do: it never touches |w|'s
       loop. A worker that has ended ignores it. */
    uint64_t one = 1;
    if (w->drain_fd != -1 && write(w->drain_fd, &one, sizeof(one)) == -1)
        gw_log(GW_LOG_WARN, "worker=%u cannot signal a drain: %s", w->index,
               strerror(errno));
}

void gw_worker_join(struct gw_worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    /* Connections go first: their requests cancel adapter and relay work that still
       runs. */
    tp_server_free(w->server);
    gw_relay_worker_free(w);
    if (w->adapters)
        for (size_t i = 0; i < w->rt->nbackends; i++)
            if (w->adapters[i])
                w->rt->backends[i].ops->destroy(w->adapters[i]);
    free(w->adapters);
    if (w->drain_ev)
        event_free(w->drain_ev);
    if (w->drain_fd != -1)
        close(w->drain_fd);
    if (w->drain_deadline)
        event_free(w->drain_deadline);
    if (w->drain_check)
        event_free(w->drain_check);
    if (w->base)
        event_base_free(w->base);
    memset(w, 0, sizeof(*w));
}
