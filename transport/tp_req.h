/* The request object: one request, whatever connection it came on (HTTP/1.1 or HTTP/2,
   TLS or cleartext). HTTP versions stop here: handlers above transport/ see only this.

   Lifecycle. The transport allocates a tp_req when a request's header block is
   complete and hands it to the server's on_request callback (tp_server_opts). The
   handler installs its callbacks with tp_req_set_handler() and answers with
   tp_req_respond(), tp_req_write() and tp_req_end(). The transport frees the request
   after the response has ended and the request body has been read or discarded, or
   when the client goes away; in the second case it first calls handler->on_abort, and
   the handler must never touch the request again after that call returns.

   Flow control. Request body bytes arrive through handler->on_body; the handler returns
   credit with tp_req_consume() once it has passed them on (for a proxy: once they have
   left for the backend). Unconsumed bytes are bounded by the stream window: the
   transport stops reading (HTTP/1.1) or withholds WINDOW_UPDATE (HTTP/2) until credit
   comes back. Response bytes go out through tp_req_write(), which returns false once
   the request's queued output passes its high-water mark; the handler then stops
   producing until handler->on_writable is called. */
#ifndef ZASLON_TRANSPORT_TP_REQ_H
#define ZASLON_TRANSPORT_TP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_http.h"

struct evbuffer;
struct tp_req;

struct tp_req_handler {
    /* Request body bytes; |data| is the transport's buffer and the handler must drain
       it (evbuffer_remove_buffer / evbuffer_drain) before returning. |end| is true
       on the last call (which may carry no bytes). May be NULL if the handler reads no
       body: the transport then discards and credits bytes itself. */
    void (*on_body)(struct tp_req *req, struct evbuffer *data, bool end);
    /* Queued output fell below the low-water mark after tp_req_write returned false. */
    void (*on_writable)(struct tp_req *req);
    /* The client went away or reset the stream. Release everything; do not touch |req|
       after returning. */
    void (*on_abort)(struct tp_req *req);
};

enum tp_req_version { TP_HTTP_11 = 11, TP_HTTP_2 = 20 };

struct tp_req {
    /* Read-only for handlers; valid until the request is freed. */
    struct tp_str method;
    struct tp_str scheme;    /* "https" or "http" */
    struct tp_str authority; /* :authority or Host, lowercased; may be empty */
    struct tp_str path;      /* origin-form target, with query */
    const struct tp_header *headers; /* regular fields, lowercase names, no pseudo */
    size_t nheaders;
    int64_t content_length; /* -1 when not declared */
    bool has_body;          /* false when the request is known to carry no body */
    enum tp_req_version version;
    bool tls;
    uint64_t conn_serial; /* per-worker connection serial, for logs; never an address */

    /* Handler state. */
    const struct tp_req_handler *handler;
    void *handler_data;

    /* Transport-private. */
    const struct tp_req_ops *ops;
};

/* Installs |h| and |data|. Call from on_request before returning. */
void tp_req_set_handler(struct tp_req *req, const struct tp_req_handler *h, void *data);

/* Sends the response head. |headers| are copied. If |content_length| >= 0 it is
   announced (content-length) and exactly that many body bytes must follow unless
   |end| is true (HEAD, 304). If |end| is true no body follows and the response is
   complete. Hop-by-hop fields in |headers| are dropped. Returns 0 or TP_ERR_*. */
int tp_req_respond(struct tp_req *req, int status, const struct tp_header *headers,
                   size_t nheaders, int64_t content_length, bool end);

/* Queues body bytes: moves everything out of |data|. Returns true while the handler
   may keep writing, false once the queue is past its high-water mark (the bytes were
   still taken). */
bool tp_req_write(struct tp_req *req, struct evbuffer *data);

/* Same, for a borrowed memory region that stays valid until the request is freed
   (the cover site's in-memory files): added by reference, without a copy. */
bool tp_req_write_ref(struct tp_req *req, const void *data, size_t len);

/* Ends the response body. The transport frees the request once everything is sent
   (or the client leaves); on_abort is not called after a successful end unless the
   body had not been read yet and the client then resets. */
void tp_req_end(struct tp_req *req);

/* Aborts the response (backend failed mid-body): resets the stream (HTTP/2) or closes
   the connection (HTTP/1.1). The transport frees the request; on_abort is not called. */
void tp_req_reset(struct tp_req *req);

/* Asks that the connection close after this response (HTTP/1.1: Connection: close,
   decided whatever the timing of the answer; HTTP/2: no effect). Call before
   tp_req_respond. */
void tp_req_set_close(struct tp_req *req);

/* Returns |n| bytes of request-body credit to the client (see Flow control). */
void tp_req_consume(struct tp_req *req, size_t n);

/* Returns the number of response bytes queued and not yet handed to the socket. */
size_t tp_req_pending(const struct tp_req *req);

/* Returns the first header named |name| (lowercase), or NULL. */
const struct tp_header *tp_req_header(const struct tp_req *req, const char *name);

/* Transport-private operations table, one per protocol. */
struct tp_req_ops {
    int (*respond)(struct tp_req *req, int status, const struct tp_header *headers,
                   size_t nheaders, int64_t content_length, bool end);
    bool (*write)(struct tp_req *req, struct evbuffer *data);
    bool (*write_ref)(struct tp_req *req, const void *data, size_t len);
    void (*end)(struct tp_req *req);
    void (*reset)(struct tp_req *req);
    void (*consume)(struct tp_req *req, size_t n);
    size_t (*pending)(const struct tp_req *req);
    void (*set_close)(struct tp_req *req);
};

#endif
