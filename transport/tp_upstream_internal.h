/* tp_upstream internals shared with its unit tests and fuzz harness: the sans-I/O
   HTTP/1.1 response parser the connection code drives (tp_upstream_resp.c), and pool
   counters. Nothing outside transport/tp_upstream*.c and its tests includes this file. */
#ifndef ZASLON_TRANSPORT_TP_UPSTREAM_INTERNAL_H
#define ZASLON_TRANSPORT_TP_UPSTREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_http.h"
#include "tp_upstream.h"

/* Header fields kept per response; more is TP_ERR_TOO_LARGE. */
#define TP_UPSTREAM_MAX_FIELDS 256
/* 1xx interim responses skipped before the final one; more is TP_ERR_PROTO. */
#define TP_UPSTREAM_MAX_INTERIM 8

struct tp_upstream_field {
    size_t name_off, name_len, value_off, value_len; /* into hbuf */
};

/* One response being parsed. Body bytes are appended to |body|, which the owner
   drains. Fields are read-only for the owner except |body|. */
struct tp_upstream_resp {
    size_t max_header; /* names + values + reason phrase, bytes */
    int64_t max_body;  /* -1: no cap */
    bool head_request; /* the request was HEAD: no body whatever the head says */

    char *hbuf; /* lowercased names and values of the final header block */
    size_t hlen, hcap;
    size_t hsize; /* header bytes counted against max_header */
    struct tp_upstream_field *fields;
    size_t nfields, fcap;
    struct tp_header *view; /* nfields entries pointing into hbuf, once head_done */
    size_t vcap;            /* entries allocated in view (kept across resets) */

    unsigned interim; /* 1xx responses skipped so far */
    int status;
    int64_t content_length; /* declared; -1 when absent or chunked */
    bool no_body;           /* HEAD, 204 or 304 */
    bool head_done;         /* the final header block is complete (view is valid) */
    bool done;              /* the final message is complete */
    bool keep_alive;        /* valid once done */
    int64_t body_len;       /* body bytes parsed so far */
    struct evbuffer *body;
    int err; /* first error, TP_ERR_* */

    /* Parser state, private to tp_upstream_resp.c. */
    char *lbuf; /* the start of a line split across feeds */
    size_t llen, lcap;
    unsigned state; /* enum resp_state */
    unsigned flags; /* F_* of the message being parsed */
    unsigned minor; /* HTTP/1.minor of the message being parsed */
    int code;       /* its status code, 1xx included */
    int64_t remain; /* declared Content-Length, then body or chunk bytes left */
};

/* Prepares |r| (allocating its body buffer). Returns 0 or TP_ERR_NOMEM; on failure
   |r| needs no clear. */
int tp_upstream_resp_init(struct tp_upstream_resp *r, size_t max_header, int64_t max_body,
                          bool head_request);

/* Readies |r| for the next response on the same connection; keeps its buffers and
   drops body bytes not yet taken. */
void tp_upstream_resp_reset(struct tp_upstream_resp *r, bool head_request);

/* Releases what |r| holds. */
void tp_upstream_resp_clear(struct tp_upstream_resp *r);

/* Parses up to |len| bytes of |data|. Stops right after the final message completes,
   so *used < len means bytes past the end of the response. Returns 0, or
   TP_ERR_PROTO (garbage, bad status line, bad framing), TP_ERR_TOO_LARGE (header block
   or body over its cap), TP_ERR_NOMEM, or TP_ERR_STATE once done or failed. */
int tp_upstream_resp_feed(struct tp_upstream_resp *r, const char *data, size_t len,
                          size_t *used);

/* Tells |r| the peer closed. Returns 0 if that completed the response (body read until
   close, or it was already complete), TP_ERR_CLOSED if the response was cut short or
   never started, or the earlier error. */
int tp_upstream_resp_eof(struct tp_upstream_resp *r);

/* Pool counters for tests. */
struct tp_upstream_stats {
    unsigned conns; /* open, idle or busy or connecting */
    unsigned idle;
    unsigned queued;
    const char *last_close; /* fixed reason of the last connection teardown, or NULL */
};

/* Fills |st| from |pool|. */
void tp_upstream_pool_stats(const struct tp_upstream_pool *pool,
                            struct tp_upstream_stats *st);

#endif
