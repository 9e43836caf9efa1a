/* adapter.h: the one interface a backend plugs into.

   An adapter is a table of operations registered by name ("http"). Its configuration
   reaches it as an opaque block of key/value pairs with line numbers, which it
   validates itself, so conf/ never learns adapter details. It never sees a client
   connection, a socket or a client address: it gets a request view (method, target,
   filtered headers, streamed body) and answers through callbacks.

   Threading: config_parse runs once at start-up or reload; create runs once per worker
   on that worker's thread, and everything after it on that thread. */
#ifndef ZASLON_ADAPTERS_ADAPTER_H
#define ZASLON_ADAPTERS_ADAPTER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_http.h"

struct event_base;
struct evbuffer;

enum adapter_err {
    ADAPTER_OK = 0,
    ADAPTER_ERR_CONFIG = -1,      /* bad config block; the message says where */
    ADAPTER_ERR_NOMEM = -2,
    ADAPTER_ERR_UNAVAILABLE = -3, /* cannot take requests now -> 503 */
    ADAPTER_ERR_CONNECT = -4,     /* backend refused or unreachable -> 502 */
    ADAPTER_ERR_TIMEOUT = -5,     /* -> 504 */
    ADAPTER_ERR_PROTO = -6,       /* backend answered garbage -> 502 */
    ADAPTER_ERR_TOO_LARGE = -7,   /* response over the cap -> 502 */
    ADAPTER_ERR_CLOSED = -8,      /* backend closed mid-response -> 502 */
};

enum adapter_health { ADAPTER_HEALTH_OK, ADAPTER_HEALTH_DEGRADED, ADAPTER_HEALTH_DOWN };

enum adapter_log_level { ADAPTER_LOG_ERROR, ADAPTER_LOG_WARN, ADAPTER_LOG_INFO,
                         ADAPTER_LOG_DEBUG };

/* One key of the adapter's config block. Values are scalars; lists arrive as one key
   per element with the same name. */
struct adapter_kv {
    const char *key;
    const char *value;
    unsigned line;
};

struct adapter_config {
    const char *backend_name; /* the backend's name in the config file */
    const char *file;         /* config file path, for messages */
    const struct adapter_kv *items;
    size_t nitems;
    /* Where config_parse writes "file:line: reason" on failure. */
    char *errbuf;
    size_t errlen;
};

/* What the gateway hands an adapter instance: its worker's loop and a logger that has
   no client address to give. */
struct adapter_host {
    struct event_base *base;
    void (*log)(void *ctx, enum adapter_log_level level, const char *fmt, va_list ap);
    void *log_ctx;
};

/* The request as an adapter sees it. Strings are borrowed until the request ends. */
struct adapter_request {
    struct tp_str method;
    struct tp_str authority;
    struct tp_str path;
    const struct tp_header *headers; /* already stripped to the backend's allowlist */
    size_t nheaders;
    int64_t content_length; /* -1 unknown */
    bool has_body;
};

/* How an adapter answers. Order: on_head once, on_data any number of times, then
   exactly one of on_end or on_error; after either the adapter forgets the request. */
struct adapter_response_cb {
    void (*on_head)(void *arg, int status, const struct tp_header *headers, size_t n,
                    int64_t content_length);
    /* Body bytes; the callee drains |data|. Returns false when the client side is
       full: the adapter stops producing until its resume op is called. */
    bool (*on_data)(void *arg, struct evbuffer *data);
    void (*on_end)(void *arg);
    /* |err| is an ADAPTER_ERR_*; |head_sent| tells whether on_head was called. */
    void (*on_error)(void *arg, int err, bool head_sent);
    /* |n| request-body bytes left for the backend: credit for the client. */
    void (*on_body_sent)(void *arg, size_t n);
};

struct adapter_ops {
    const char *name;
    /* Validates the block and builds an immutable config shared by all workers.
       Returns 0 and *cfg, or ADAPTER_ERR_CONFIG with cfg->errbuf filled. */
    int (*config_parse)(const struct adapter_config *conf, void **cfg);
    void (*config_free)(void *cfg);
    /* Creates a per-worker instance. Returns 0 and *inst, or ADAPTER_ERR_*. */
    int (*create)(const void *cfg, const struct adapter_host *host, void **inst);
    void (*destroy)(void *inst);
    /* Starts |req|. Callbacks are never called from inside handle. Returns 0 and an
       opaque *handle for body/resume/cancel, or ADAPTER_ERR_*. */
    int (*handle)(void *inst, const struct adapter_request *req,
                  const struct adapter_response_cb *cb, void *arg, void **handle);
    /* Request-body bytes (moved out of |data|, which may be NULL with |end|). */
    int (*body)(void *handle, struct evbuffer *data, bool end);
    /* The client side has room again after on_data returned false. */
    void (*resume)(void *handle);
    /* The client went away: stop, call nothing, forget the request. */
    void (*cancel)(void *handle);
    enum adapter_health (*health)(void *inst);
};

/* Registers |ops| under ops->name. Returns 0, or -1 if the name is taken or the table
   is full. The built-in adapters are registered by adapter_register_builtin(). */
int adapter_register(const struct adapter_ops *ops);
void adapter_register_builtin(void);

/* Returns the adapter registered as |name|, or NULL. */
const struct adapter_ops *adapter_lookup(const char *name);

/* Writes "file:line: message" into conf->errbuf; returns ADAPTER_ERR_CONFIG. */
int adapter_config_error(const struct adapter_config *conf, unsigned line,
                         const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
