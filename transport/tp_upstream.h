/* HTTP/1.1 client to one upstream origin, with a per-worker keep-alive pool.

   One tp_upstream_pool per (worker, origin). Requests stream both ways with
   backpressure. A request is never sent twice once any of its bytes left, unless its
   method is idempotent (GET, HEAD, OPTIONS) and no response byte arrived: a ballot
   must never arrive twice. A pooled connection is checked for a peer close before
   reuse, so a non-idempotent request is not lost to a stale keep-alive connection. */
#ifndef ZASLON_TRANSPORT_TP_UPSTREAM_H
#define ZASLON_TRANSPORT_TP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_err.h"
#include "tp_http.h"

struct event_base;
struct evbuffer;
struct tp_upstream_pool;
struct tp_upstream_req;

struct tp_upstream_opts {
    const char *host;     /* address or name resolved at pool creation (start-up) */
    uint16_t port;
    bool tls;
    const char *sni;      /* NULL: |host| when it is a name; never sent for addresses */
    bool verify;          /* certificate and host name verification; default true */
    const char *ca_file;  /* NULL: the system store */
    unsigned max_idle;    /* idle keep-alive connections kept, per worker */
    unsigned max_conns;   /* connections open at once, per worker; 0 = no cap */
    unsigned connect_timeout_ms;
    unsigned first_byte_timeout_ms; /* after the request is fully sent */
    unsigned idle_timeout_ms;       /* no progress while reading or writing, and pooled */
    size_t max_response_header;     /* bytes */
    int64_t max_response_body;      /* bytes; -1 = no cap */
    size_t buffer_cap;              /* response bytes buffered before reading pauses */
};

/* Fills |o| with defaults: verify on, max_idle 32, connect 5 s, first byte 30 s,
   idle 60 s, header 64 KiB, body unlimited, buffer 256 KiB. */
void tp_upstream_opts_default(struct tp_upstream_opts *o);

/* Creates a pool on |base|. Copies what it keeps from |opts|. Resolves the host once.
   Returns 0 and *out, or TP_ERR_*. */
int tp_upstream_pool_new(struct event_base *base, const struct tp_upstream_opts *opts,
                         struct tp_upstream_pool **out);

/* Closes idle connections and frees the pool. Requests still running must have been
   cancelled first. Accepts NULL. */
void tp_upstream_pool_free(struct tp_upstream_pool *pool);

/* Number of failures in a row (connect errors, timeouts); 0 after a success. */
unsigned tp_upstream_pool_failures(const struct tp_upstream_pool *pool);

struct tp_upstream_desc {
    struct tp_str method;
    struct tp_str path;       /* origin-form */
    struct tp_str authority;  /* sent as Host */
    const struct tp_header *headers; /* end-to-end fields only; copied */
    size_t nheaders;
    int64_t content_length;   /* -1: chunked body follows; 0 with !has_body: none */
    bool has_body;
};

/* News from the request, in this order: on_head once, on_data any number of times,
   then exactly one of on_end (success) or on_error. After on_end or on_error the
   request is freed by the pool and must not be touched. on_sent reports request-body
   bytes written to the socket (credit for the client). */
struct tp_upstream_cb {
    void (*on_head)(void *arg, int status, const struct tp_header *headers, size_t n,
                    int64_t content_length);
    /* Response body bytes; the callee drains |data|. Return false to pause reading
       until tp_upstream_resume(). */
    bool (*on_data)(void *arg, struct evbuffer *data);
    void (*on_end)(void *arg);
    /* |err|: TP_ERR_CONNECT (nothing sent), TP_ERR_TIMEOUT, TP_ERR_PROTO,
       TP_ERR_TOO_LARGE, TP_ERR_CLOSED. |head_sent| tells whether on_head was called. */
    void (*on_error)(void *arg, int err, bool head_sent);
    void (*on_sent)(void *arg, size_t n);
};

/* Starts a request. Copies |desc|. Returns 0 and *out, or TP_ERR_*. The callbacks are
   never called from inside this function. */
int tp_upstream_request(struct tp_upstream_pool *pool, const struct tp_upstream_desc *desc,
                        const struct tp_upstream_cb *cb, void *arg,
                        struct tp_upstream_req **out);

/* Adds request-body bytes (moves them out of |data|; |data| may be NULL when only |end|
   is signalled). Returns 0 or TP_ERR_*. */
int tp_upstream_send(struct tp_upstream_req *req, struct evbuffer *data, bool end);

/* Resumes reading the response after on_data returned false. */
void tp_upstream_resume(struct tp_upstream_req *req);

/* Cancels: no callback is called afterwards; the connection is closed unless it can be
   kept cleanly. Accepts NULL. */
void tp_upstream_cancel(struct tp_upstream_req *req);

#endif
