/* Workers: one thread each, with its own event_base, its own SO_REUSEPORT listening
   sockets, its own adapter instances and upstream pools. Nothing is shared on the
   request path but the read-only runtime. */
#ifndef ZASLON_GATEWAY_GW_WORKER_H
#define ZASLON_GATEWAY_GW_WORKER_H

#include <pthread.h>
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
    struct event *drain_ev;     /* activated from the main thread */
    struct event *drain_deadline;
    struct event *drain_check;
    int *listen_fds;            /* per listen entry, until handed to the server */
    uint64_t events[TP_EV__COUNT];
    int exit_status;
};

/* Creates the worker's loop, sockets and server (on the calling thread: bind errors
   surface before anything starts). Returns 0, or -1 with a reason in |err|. */
int gw_worker_init(struct gw_worker *w, unsigned index, const struct gw_runtime *rt,
                   char *err, size_t errlen);

/* Starts the worker's thread. Returns 0 or -1. */
int gw_worker_start(struct gw_worker *w);

/* Asks the worker to drain (thread-safe). */
void gw_worker_drain(struct gw_worker *w);

/* Waits for the thread and frees everything. */
void gw_worker_join(struct gw_worker *w);

#endif
