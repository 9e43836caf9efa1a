/* The `http` backend adapter: forwards requests to one HTTP/1.1 origin (cleartext or
   TLS) through transport's upstream client, one keep-alive pool per worker.

   Config block keys (durations take ms/s/m suffixes, sizes k/m suffixes in KiB/MiB):
     url: http://host[:port][/base] | https://...   required; the base path is
                                       prepended to every request path
     host_header: NAME[:PORT]          Host sent upstream; default the url's authority
     verify: true|false                https: check certificate and name (default true)
     ca_file: FILE                     https: trust anchors (default the system store)
     sni: NAME                         https: server name sent and verified (default
                                       the url's host; never sent for an address)
     pool_size: 32                     idle keep-alive connections kept per worker
     max_connections: 256              connections per worker; more requests wait,
                                       in order, at most first_byte_timeout (then 504)
     max_queue: 1024                   requests waiting per worker (0..1024); beyond
                                       max_connections + max_queue: 503 at once
     connect_timeout: 5s               TCP connect plus TLS handshake
     first_byte_timeout: 30s           request sent -> first response byte
     idle_timeout: 60s                 no progress mid-exchange; idle pooled connection
     max_response: 0                   response body cap; 0 = unlimited (plain proxying)
     breaker_failures: 5               circuit breaker: this many backend failures in a
                                       row (per worker) open it; 0 = off
     breaker_cooldown: 5s              how long an open breaker fails requests fast
                                       (503, nothing sent) before one probe goes through

   Errors: refused or unreachable -> ADAPTER_ERR_CONNECT (502); any timeout ->
   ADAPTER_ERR_TIMEOUT (504); garbage -> ADAPTER_ERR_PROTO; body or header block over
   its cap -> ADAPTER_ERR_TOO_LARGE; closed mid-response -> ADAPTER_ERR_CLOSED; wait
   queue full or breaker open -> ADAPTER_ERR_UNAVAILABLE (503) from handle. Health is
   DOWN while the breaker is not closed or after AD_HTTP_DOWN_AFTER failures in a row,
   OK otherwise.

   The breaker (ad_breaker.h), one per worker instance: a failure is a request that
   ended before any response head with a refused or failed connect, a timeout (a wait
   in the queue included), garbage, a header block over its cap, or a close; any
   response head is a success. A request the client abandoned, or whose body the
   client got wrong (more or fewer bytes than declared), counts for nothing.

   Request bodies: the body op refuses more (or fewer) bytes than declared, and more
   than 256 KiB waiting for the socket (on_body_sent returns credit as bytes leave);
   a refusal fails the request, and on_error follows from the loop.

   Response heads go up as received minus hop-by-hop fields (and those the Connection
   field names) and content-length, whose value travels as the content_length argument.
   Header arrays passed to on_head are borrowed for the call. */
#ifndef ZASLON_ADAPTERS_AD_HTTP_H
#define ZASLON_ADAPTERS_AD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

#define AD_HTTP_DOWN_AFTER 5
#define AD_HTTP_BREAKER_FAILURES 5
#define AD_HTTP_BREAKER_COOLDOWN_MS 5000u

/* The adapter's operations, registered as "http" by adapter_register_builtin(). */
extern const struct adapter_ops ad_http_ops;

/* The parsed config block, as config_parse builds it. The gateway treats it as opaque;
   it is spelled out here for the adapter's unit tests. */
struct ad_http_config {
    char *backend; /* backend name, for log lines */
    bool tls;
    char *host; /* url host, without brackets */
    uint16_t port;
    char *base; /* base path without trailing '/', "" when none */
    size_t base_len;
    char *authority; /* Host sent upstream */
    bool verify;
    char *ca_file; /* NULL: system store */
    char *sni;     /* NULL: the url host */
    unsigned pool_size;
    unsigned max_connections;
    unsigned connect_timeout_ms;
    unsigned first_byte_timeout_ms;
    unsigned idle_timeout_ms;
    int64_t max_response; /* -1: unlimited */
    unsigned max_queue;
    unsigned breaker_failures; /* 0: off */
    unsigned breaker_cooldown_ms;
};

#endif
