/* Workers: one thread each, with its own event_base, its own SO_REUSEPORT listening
   sockets, its own adapter instances and upstream pools. Nothing is shared on the
   request path but the read-only runtime.

   A worker belongs to one generation (gw_gen.h): it serves one runtime from start to
   exit. Its listening sockets are duplicates of the main thread's, so a worker that
   drains (and closes its copies) never closes a socket that a newer generation still
   accepts on. */
#ifndef ZASLON_GATEWAY_GW_WORKER_H
#define ZASLON_GATEWAY_GW_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_runtime.h"

struct event_base;
struct event;
struct tp_h2client;
struct tp_server;

struct gw_worker {
    unsigned index;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct tp_server *server;
    const struct gw_runtime *rt;
    void **adapters;            /* one instance per rt->backends entry */
    struct tp_h2client *relay;  /* role relay: HTTP/2 to the gateway; NULL otherwise */
    int drain_fd;               /* eventfd the main thread writes to ask a drain */
    struct event *drain_ev;     /* reads drain_fd on the worker's loop */
    struct event *drain_deadline;
    struct event *drain_check;
    bool draining;              /* the worker's thread only */
    uint64_t events[TP_EV__COUNT];
    void (*on_exit)(void *arg); /* called on the worker's thread as it ends */
    void *on_exit_arg;
    atomic_bool finished;       /* the loop has ended: a join will not wait */
};

/* A new event_base that takes no locks (EVENT_BASE_FLAG_NOLOCK; the daemon never calls
   evthread_use_pthreads). Its events and buffers must be touched by one thread at a
   time: another thread wakes it only through a file descriptor it watches. Returns
   NULL when out of memory; the caller frees it with event_base_free. */
struct event_base *gw_worker_base_new(void);

/* One listening socket for a worker: |fd| is duplicated (the caller keeps its own),
   |listen| indexes rt->snap->listen (and rt->ssl_ctx). */
struct gw_worker_socket {
    int fd;
    size_t listen;
};

/* Creates the worker's loop, server and adapters on the calling thread, listening on
   duplicates of the |nsocks| sockets in |socks| (borrowed). |rt| is borrowed and must
   outlive the worker. Returns 0, or -1 with a reason in |err|; either way the worker
   is freed with gw_worker_join. */
int gw_worker_init(struct gw_worker *w, unsigned index, const struct gw_runtime *rt,
                   const struct gw_worker_socket *socks, size_t nsocks, char *err,
                   size_t errlen);

/* Starts the worker's thread; |on_exit|(|arg|) runs on that thread when its loop has
   ended (after which gw_worker_join returns at once). Returns 0 or -1. */
int gw_worker_start(struct gw_worker *w, void (*on_exit)(void *arg), void *arg);

/* Asks the worker to drain: stop accepting, GOAWAY, finish what is in flight within
   limits.drain_timeout, end its loop. Thread-safe; a second call does nothing. */
void gw_worker_drain(struct gw_worker *w);

/* Waits for the thread and frees everything. */
void gw_worker_join(struct gw_worker *w);

#endif
