/* The server side of transport/: listening sockets, TLS and cleartext connections,
   the HTTP/1.1 and HTTP/2 protocol sides, all producing tp_req objects.

   One tp_server per worker thread, on that worker's event_base. Each worker has its
   own SO_REUSEPORT listening socket per listen address, so the kernel spreads
   connections and nothing on the request path takes a lock. */
#ifndef ZASLON_TRANSPORT_TP_SERVER_H
#define ZASLON_TRANSPORT_TP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "tp_req.h"

struct event_base;
struct tp_server;

struct tp_server_limits {
    unsigned max_conns;              /* per worker; accepting pauses at the cap */
    unsigned max_concurrent_streams; /* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS */
    size_t header_list_size;         /* decoded bytes (name + value + 32 per field) */
    unsigned header_fields;
    unsigned max_continuations;
    unsigned stream_reset_burst;     /* nghttp2 stream-reset rate limit */
    unsigned stream_reset_rate;      /* per second */
    unsigned tls_handshake_timeout_ms;
    unsigned header_timeout_ms;      /* absolute, from the first byte of a request head */
    unsigned idle_timeout_ms;        /* no request in progress */
    unsigned body_timeout_ms;        /* no request-body progress */
    unsigned write_timeout_ms;       /* no write progress while output is pending */
    size_t output_buffer;            /* per connection: bytes queued for the socket */
    size_t stream_buffer;            /* per request, each direction */
    unsigned max_requests_per_conn;  /* then a graceful close / GOAWAY */
    size_t h2_data_padding;          /* pad HTTP/2 DATA payloads to multiples of this; 0 off */
    unsigned stream_timeout_ms;      /* absolute, per request, from its head */
    size_t memory_budget;            /* whole process (every server); 0 = off */
};

/* Fills |l| with the defaults documented in the README. */
void tp_server_limits_default(struct tp_server_limits *l);

/* Fixed reasons for connection-level events; never an address. */
enum tp_server_event {
    TP_EV_ACCEPT_PAUSED,     /* descriptor limit, connection cap or memory budget */
    TP_EV_TLS_FAILED,
    TP_EV_TLS_TIMEOUT,
    TP_EV_HEADER_TIMEOUT,
    TP_EV_IDLE_TIMEOUT,
    TP_EV_BODY_TIMEOUT,
    TP_EV_WRITE_TIMEOUT,
    TP_EV_PROTOCOL_ERROR,
    TP_EV_FLOOD,
    TP_EV_NOMEM,
    TP_EV_STREAM_TIMEOUT,    /* a request outlived stream_timeout */
    TP_EV_OVER_BUDGET,       /* a request refused: the memory budget is spent */
    TP_EV__COUNT
};

/* Returns the fixed string for |ev| ("tls handshake timeout", ...). */
const char *tp_server_event_str(enum tp_server_event ev);

struct tp_server_opts {
    struct tp_server_limits limits;
    /* A request's head is complete. The callee must install a handler or respond
       before returning. */
    void (*on_request)(void *arg, struct tp_req *req);
    /* A connection-level event, for counters and rate-limited logs. May be NULL. */
    void (*on_event)(void *arg, enum tp_server_event ev, uint64_t conn_serial);
    void *arg;
    /* Server field value on every response, or NULL for none. Borrowed: must outlive
       the server. Every response also gets a Date field. */
    const char *server_header;
};

/* Opens a listening TCP socket on |host| ("" or NULL = any, IPv4 or IPv6 literal) and
   |port| with SO_REUSEPORT, non-blocking and close-on-exec. Returns 0 and *fd, or
   TP_ERR_IO (errno is kept). */
int tp_listen_socket(const char *host, uint16_t port, int *fd);

/* Creates a server on |base|. Copies |opts|. Returns 0 and *out, or TP_ERR_NOMEM. */
int tp_server_new(struct event_base *base, const struct tp_server_opts *opts,
                  struct tp_server **out);

/* Adds a listening socket; takes ownership of |fd|. |ssl_ctx| NULL means cleartext
   (HTTP/1.1 and h2c with prior knowledge); otherwise the server takes a reference
   on it (TLS with ALPN h2 and http/1.1). Returns 0 or TP_ERR_*. */
int tp_server_listen(struct tp_server *s, int fd, SSL_CTX *ssl_ctx);

/* Replaces the limits used by connections accepted from now on. */
void tp_server_set_limits(struct tp_server *s, const struct tp_server_limits *l);

/* Starts a graceful shutdown: stops accepting, closes the listening sockets, sends
   GOAWAY on HTTP/2 connections (a second one with the real last stream id after one
   second) and closes HTTP/1.1 connections once their current response ends. */
void tp_server_drain(struct tp_server *s);

/* Number of open connections. */
size_t tp_server_connections(const struct tp_server *s);

/* The process-wide memory budget, shared by every server (so every worker): a fixed
   estimate per open connection plus the bytes buffered in connections' input and
   output queues and in their requests' body and response queues. The limit is the memory_budget of the limits most recently given to
   any server (tp_server_new, tp_server_set_limits); 0 turns it off, and connections
   accepted while it is off are not counted. */

/* Bytes currently charged to the budget. */
size_t tp_server_memory_used(void);

/* True when a budget is set and the charged bytes have reached it: new connections
   wait, new HTTP/2 streams are refused and new HTTP/1.1 requests get 503. */
bool tp_server_over_budget(void);

/* Closes every connection at once (in-flight requests get on_abort) and frees the
   server. Accepts NULL. */
void tp_server_free(struct tp_server *s);

/* Creates a server TLS context: TLS 1.2 and 1.3 only, ALPN h2 and http/1.1, the
   certificate chain and key from PEM files, no renegotiation, no compression.
   Returns 0 and *out (caller owns the reference: SSL_CTX_free), or TP_ERR_* with a
   reason (never key bytes) in |err|. */
int tp_tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **out,
                          char *err, size_t errlen);

#endif
