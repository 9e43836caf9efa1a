/* HTTP/2 client to one origin over TLS, for small, fully buffered exchanges: a relay
   forwarding sealed requests to its gateway.

   One tp_h2client per worker, on that worker's event_base. It keeps up to
   |connections| TLS connections (ALPN h2 required, the server's certificate and host
   name verified, SNI from the URL's host, a client certificate when the SSL_CTX has
   one) and multiplexes requests on them, never more streams on one connection than
   the server's SETTINGS_MAX_CONCURRENT_STREAMS. A connection carries requests only
   once the server's SETTINGS frame has arrived, so a handshake the server rejects late
   (TLS 1.3 sends the verdict on a client certificate after the client's Finished) is a
   connect failure with nothing of the request sent. Requests that find no connection
   or no stream slot wait in a FIFO queue of at most |max_queue|; past that,
   tp_h2client_request fails at once.

   A request carries only :method, :scheme, :authority, :path and, with a body,
   content-type and content-length: never Via, Forwarded, X-Forwarded-*, a user agent
   or anything else that identifies the sender.

   The never-resend rule: a request whose HEADERS frame has been handed to the socket is
   never sent again, with one exception RFC 9113 8.7 makes safe: a stream the server
   refused without processing it (REFUSED_STREAM, or a stream above the last-stream-id
   of a GOAWAY, which nghttp2 closes with REFUSED_STREAM) is retried once, on another
   connection. A request whose HEADERS never left is simply queued again. */
#ifndef ZASLON_TRANSPORT_TP_H2CLIENT_H
#define ZASLON_TRANSPORT_TP_H2CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "tp_err.h"
#include "tp_http.h"

struct event_base;
struct tp_h2client;
struct tp_h2client_req;

struct tp_h2client_opts {
    /* "https://host[:port][/path]": the origin (host is a DNS name, an IPv4 address or
       a bracketed IPv6 one; port defaults to 443) and the default request path
       (defaults to "/"). No userinfo, no fragment. The host is resolved once, at
       creation; it is also the SNI (for names) and the name the certificate must
       carry (DNS or IP subjectAltName). */
    const char *url;
    /* A client context from tp_tls_client_ctx_new (ALPN h2, verification on, and the
       client certificate if any). The client takes its own reference. */
    SSL_CTX *ssl_ctx;
    unsigned connections;        /* 1..64: connections open at once */
    unsigned max_queue;          /* >= 1: requests waiting for a connection or slot */
    unsigned timeout_ms;         /* whole exchange, from tp_h2client_request to the end */
    unsigned connect_timeout_ms; /* TCP, TLS and the server's SETTINGS; 0: timeout_ms */
    unsigned idle_timeout_ms;    /* a connection without streams is closed (GOAWAY)
                                    after this; 0: 30 s. Keep it below the server's
                                    own idle timeout. */
    size_t max_response;         /* response body bytes; more is TP_ERR_TOO_LARGE */
};

/* Creates a client on |base|. Copies what it keeps from |opts|; resolves the host with
   getaddrinfo (call at start-up, not on a running loop, unless the host is an
   address) and opens no connection yet. Returns 0 and *out, or TP_ERR_INVALID (a URL
   it cannot use, no SSL_CTX, a zero count or timeout), TP_ERR_CONNECT (the name does
   not resolve), TP_ERR_NOMEM. The process must ignore SIGPIPE. */
int tp_h2client_new(struct event_base *base, const struct tp_h2client_opts *opts,
                    struct tp_h2client **out);

/* Closes every connection at once and frees the client. Requests still pending are
   dropped without a callback: cancel them first if anyone is waiting. Not from inside
   a callback. Accepts NULL. */
void tp_h2client_free(struct tp_h2client *c);

struct tp_h2client_desc {
    struct tp_str method;       /* "POST", "GET", ...; a token */
    struct tp_str path;         /* origin-form; {NULL, 0}: the URL's path */
    struct tp_str content_type; /* sent with a body; {NULL, 0}: none */
    const uint8_t *body;        /* copied; NULL with body_len 0: no body */
    size_t body_len;
    bool has_body; /* send content-length (and the body, even an empty one) */
};

/* A complete response, borrowed for the duration of the callback. */
struct tp_h2client_resp {
    int status;                 /* the final status (1xx responses are skipped) */
    struct tp_str content_type; /* {"" , 0} when absent */
    const uint8_t *body; /* never NULL, even when body_len is 0 */
    size_t body_len;
};

/* Called exactly once per request, always from the event loop (never from inside
   tp_h2client_request or tp_h2client_cancel). |err| is 0 and |resp| the response, or
   |resp| is NULL and |err| is:
     TP_ERR_CONNECT   no connection could be made (TCP, TLS, ALPN, certificates, no
                      SETTINGS from the server): nothing of the request was sent;
     TP_ERR_TIMEOUT   the whole-exchange deadline passed (the stream, if any, is
                      reset with CANCEL);
     TP_ERR_CLOSED    the connection died or the server reset the stream after the
                      request left (it was not resent);
     TP_ERR_PROTO     the server broke HTTP/2 or HTTP semantics on this stream;
     TP_ERR_TOO_LARGE the response body was over max_response (or its header block
                      over 64 KiB);
     TP_ERR_NOMEM.
   The request is freed when the callback returns. The callback may start new
   requests and cancel other ones, but must not free the client. */
typedef void (*tp_h2client_done_cb)(void *arg, int err,
                                    const struct tp_h2client_resp *resp);

/* Starts a request. Copies |desc|. Returns 0 and *out (a handle for
   tp_h2client_cancel, valid until |done| is called), or TP_ERR_TOO_LARGE (the wait
   queue is full: max_queue requests already wait), TP_ERR_INVALID (a method, path or
   content type that cannot be sent), TP_ERR_NOMEM. On failure nothing is called. */
int tp_h2client_request(struct tp_h2client *c, const struct tp_h2client_desc *desc,
                        tp_h2client_done_cb done, void *arg,
                        struct tp_h2client_req **out);

/* Cancels: |done| is not called. A stream on the wire is reset with CANCEL; the
   connection stays. Safe from inside any callback (a cancel of the request whose own
   callback is running does nothing). Accepts NULL. */
void tp_h2client_cancel(struct tp_h2client_req *req);

#endif
