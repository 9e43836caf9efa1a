/* Shared by tp_server.c, tp_conn.c, tp_h1.c and tp_h2.c only (and their unit tests). */
#ifndef ZASLON_TRANSPORT_TP_CONN_INTERNAL_H
#define ZASLON_TRANSPORT_TP_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "tp_http.h"
#include "tp_server.h"

struct bufferevent;
struct evbuffer;
struct evconnlistener;
struct tp_h1;
struct tp_h2;

struct tp_listener {
    struct tp_server *server;
    struct evconnlistener *lev;
    SSL_CTX *ssl_ctx; /* NULL: cleartext */
    LIST_ENTRY(tp_listener) link;
};

struct tp_server {
    struct event_base *base;
    struct tp_server_opts opts;
    LIST_HEAD(, tp_listener) listeners;
    LIST_HEAD(, tp_conn) conns;
    size_t nconns;
    uint64_t next_serial;
    struct event *resume_accept; /* re-enables accepting after EMFILE or the cap */
    bool accept_paused;
    bool draining;
    struct event *drain_timer; /* the second GOAWAY, one second in */
    struct event *sweep;       /* per-request deadlines (tp_server.c) */
    struct event *budget_watch; /* pauses accepting when the memory budget is spent */
    struct nghttp2_session_callbacks *h2_callbacks; /* built on first use */
    /* HTTP/2 output staging (tp_h2.c): empty between flushes. */
    struct evbuffer *h2_stage;
    bool h2_stage_busy;
    /* Closed HTTP/2 streams kept for reuse, with their buffers (tp_h2.c). */
    struct h2_stream *h2_spare;
    unsigned h2_nspare;
    time_t date_sec;           /* the cached Date value's second */
    char date[TP_HTTP_DATE_LEN + 1];
};

/* Returns the current IMF-fixdate, formatted at most once a second per worker. */
const char *tp_server_date(struct tp_server *s);

enum tp_conn_proto { TP_PROTO_NONE, TP_PROTO_H1, TP_PROTO_H2 };

enum tp_conn_phase {
    TP_PHASE_HANDSHAKE, /* TLS handshake, or waiting for the first bytes (cleartext) */
    TP_PHASE_ACTIVE,
    TP_PHASE_CLOSING,   /* flushing output, then close */
};

/* The connection's single deadline kind, re-armed lazily: progress updates a time
   stamp, and the timer callback compares (h2o's update_idle_timeout, without an
   event_add per read). */
enum tp_deadline { TP_DL_NONE, TP_DL_HANDSHAKE, TP_DL_IDLE, TP_DL_HEADER, TP_DL_BODY };

struct tp_conn {
    struct tp_server *server;
    struct bufferevent *bev;
    struct tp_server_limits limits; /* as of accept: a reload never changes a live one */
    uint64_t serial;
    bool tls;
    enum tp_conn_proto proto;
    enum tp_conn_phase phase;
    struct event *timer;
    enum tp_deadline deadline;
    uint64_t deadline_start_ms; /* when the current deadline's clock started */
    bool draining;
    bool linger;                /* closing: linger after the flush */
    bool lingering;             /* closing: write side shut, discarding input */
    unsigned nreqs;             /* requests started on this connection */
    union {
        struct tp_h1 *h1;
        struct tp_h2 *h2;
    } p;
    LIST_ENTRY(tp_conn) link;
    size_t budget_charged;      /* bytes this connection holds of the memory budget */
};

/* Monotonic milliseconds (cached per loop iteration by libevent). */
uint64_t tp_conn_now_ms(struct tp_conn *c);

/* Sets the connection's deadline kind and starts its clock now. */
void tp_conn_set_deadline(struct tp_conn *c, enum tp_deadline d);

/* Restarts the current deadline's clock (progress). Cheap: no event_add. */
void tp_conn_touch(struct tp_conn *c);

/* Tears the connection down: the one place that frees it. |reason| is a fixed string
   used only for the event hook. After this returns, |c| is gone: return at once. */
void tp_conn_close(struct tp_conn *c, enum tp_server_event ev);

/* Closes after the pending output has been written (or the write timeout fires).
   With |linger|, the write side is shut first and input is read and discarded until
   the client closes or two seconds pass: for a client that may still be sending, whose
   kernel would otherwise turn our close into a reset that destroys the answer. Never
   frees |c| before returning. */
void tp_conn_close_after_flush(struct tp_conn *c, bool linger);

/* Turns reading back on. Returns 0, or -1 when the read event could not be added. */
int tp_conn_read_on(struct tp_conn *c);

/* Accepts a new connection on |fd| (called by the listener). */
void tp_conn_accept(struct tp_server *s, int fd, SSL_CTX *ssl_ctx);

/* Reports an event through the server's hook. */
void tp_conn_event(struct tp_conn *c, enum tp_server_event ev);

/* Called by tp_conn_close for each protocol. */
void tp_conn_server_detach(struct tp_conn *c);

/* Called by tp_conn_accept once |c| is listed and counted (memory budget, sweep). */
void tp_conn_server_attach(struct tp_conn *c);

/* Counts an empty per-request queue |buf| of |c| against the memory budget while it
   lives (nothing when |c| is not accounted); call tp_conn_budget_untrack before
   freeing it. */
void tp_conn_budget_track(struct tp_conn *c, struct evbuffer *buf);
void tp_conn_budget_untrack(struct tp_conn *c, struct evbuffer *buf);

/* HTTP/1.1 side (tp_h1.c). */
int tp_h1_start(struct tp_conn *c);
void tp_h1_on_read(struct tp_conn *c);
void tp_h1_on_write(struct tp_conn *c);
void tp_h1_on_deadline(struct tp_conn *c);
void tp_h1_drain(struct tp_conn *c, bool final);
void tp_h1_free(struct tp_conn *c);
/* Per-request deadlines, from the server's sweep: a request past stream_timeout, or
   a body of at most one window (stream_buffer) still incomplete body_timeout after
   the head, ends the request. May free |c| (HTTP/1.1). */
void tp_h1_expire(struct tp_conn *c, uint64_t now_ms);

/* HTTP/2 side (tp_h2.c). */
int tp_h2_start(struct tp_conn *c);
void tp_h2_on_read(struct tp_conn *c);
void tp_h2_on_write(struct tp_conn *c);
void tp_h2_on_deadline(struct tp_conn *c);
void tp_h2_drain(struct tp_conn *c, bool final);
void tp_h2_free(struct tp_conn *c);
void tp_h2_callbacks_free(struct tp_server *s);
void tp_h2_expire(struct tp_conn *c, uint64_t now_ms); /* as tp_h1_expire; resets streams */

#endif
