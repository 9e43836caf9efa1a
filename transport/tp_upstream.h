/* HTTP/1.1 client to one upstream origin, with a per-worker keep-alive pool.

   One tp_upstream_pool per (worker, origin). Requests stream both ways with
   backpressure. A request is never sent twice, whatever its method: once any of its
   bytes left, the backend may have acted on them (a ballot must never arrive twice).
   A pooled connection is checked for a peer close before reuse, so a request is not
   lost to a stale keep-alive connection the backend had already closed. */
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
    size_t buffer_cap;              /* per direction: response bytes buffered before
                                       reading pauses; request-body bytes waiting for
                                       the socket (tp_upstream_send) */
};

/* Fills |o| with defaults: verify on, max_idle 32, max_conns 256, connect 5 s, first
   byte 30 s, idle 60 s, header 64 KiB, body unlimited, buffer 256 KiB. */
void tp_upstream_opts_default(struct tp_upstream_opts *o);

/* Creates a pool on |base|. Copies what it keeps from |opts|. Resolves the host once
   (getaddrinfo: call at start-up, not on a running loop unless |host| is numeric) and
   tries its addresses in order until one connects ("localhost" may give ::1 first).
   Builds the pool's TLS context (TLS 1.2+, ALPN http/1.1) when opts->tls. Returns 0 and
   *out, or TP_ERR_INVALID (bad options, unreadable CA file), TP_ERR_CONNECT (the name
   does not resolve), TP_ERR_CRYPTO, TP_ERR_NOMEM.
   The process must ignore SIGPIPE (writes to a peer that closed would raise it). */
int tp_upstream_pool_new(struct event_base *base, const struct tp_upstream_opts *opts,
                         struct tp_upstream_pool **out);

/* Closes idle connections and frees the pool. Requests still running must have been
   cancelled first. Accepts NULL. */
void tp_upstream_pool_free(struct tp_upstream_pool *pool);

/* Number of failures in a row: requests that failed before a response head arrived
   (connect errors, timeouts, peer closes, garbage); 0 after a response head. */
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
    /* The final response head (1xx interim responses are skipped). |headers| holds
       every field as received, names lowercased, borrowed for the call. |content_length|
       is the declared length, -1 when absent or chunked. For HEAD requests and 204/304
       no body follows, whatever the head declares: on_end comes next. */
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

/* Longest wait queue per pool: a request that finds max_conns connections busy waits
   in FIFO order (at most first_byte_timeout_ms, then TP_ERR_TIMEOUT); past this many
   waiting, tp_upstream_request fails fast with TP_ERR_TOO_LARGE. */
#define TP_UPSTREAM_QUEUE_MAX 1024

/* Starts a request. Copies |desc|. Returns 0 and *out, or TP_ERR_INVALID (a method,
   path, authority or field that cannot be sent as given: CR, LF, NUL or another control
   character, a name that is not a token), TP_ERR_TOO_LARGE (wait queue full), or
   TP_ERR_NOMEM. Host, hop-by-hop fields, content-length and transfer-encoding in
   |desc->headers| are not sent: framing follows desc->content_length and has_body.
   The callbacks are never called from inside this function.
   Retries: none. A connection that closes or resets before the answer fails its
   request with TP_ERR_CLOSED. */
int tp_upstream_request(struct tp_upstream_pool *pool, const struct tp_upstream_desc *desc,
                        const struct tp_upstream_cb *cb, void *arg,
                        struct tp_upstream_req **out);

/* Adds request-body bytes (moves them out of |data|; |data| may be NULL when only |end|
   is signalled). With a declared content_length the body ends by itself once that many
   bytes were added. Returns 0, TP_ERR_STATE (no body expected, after the end, or the
   request is failing; nothing else changes), or an error that fails the request:
   TP_ERR_TOO_LARGE (more than buffer_cap body bytes would be waiting for the socket:
   wait for on_sent credit), TP_ERR_INVALID (more or fewer bytes than declared),
   TP_ERR_NOMEM. A failed request still gets on_error(err) from the loop, unless it is
   cancelled first. Never calls a callback itself. */
int tp_upstream_send(struct tp_upstream_req *req, struct evbuffer *data, bool end);

/* Resumes reading the response after on_data returned false. */
void tp_upstream_resume(struct tp_upstream_req *req);

/* Cancels: no callback is called afterwards; the connection is closed unless it can be
   kept cleanly. Accepts NULL. May be called from inside the request's own callbacks
   (not from on_end or on_error, after which the request is gone). */
void tp_upstream_cancel(struct tp_upstream_req *req);

#endif
