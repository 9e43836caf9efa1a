#include "conf_snapshot.h"

/* End-to-end fields a backend needs to understand a request and nothing that
   identifies the client: no cookies, no forwarding fields, no user agent. */
const char *const conf_default_allowlist[] = {
    "accept", "accept-encoding", "accept-language", "cache-control", "content-encoding",
    "content-language", "content-length", "content-type", "date", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "range",
    "authorization", NULL,
};

void conf_limits_default(struct conf_limits *l)
{
    l->connections_per_worker = 10000;
    l->max_concurrent_streams = 100;
    l->header_list_size = 64 * 1024;
    l->header_fields = 100;
    l->max_continuations = 8;
    l->stream_reset_burst = 1000;
    l->stream_reset_rate = 33;
    l->tls_handshake_timeout_ms = 10000;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->body_timeout_ms = 30000;
    l->write_timeout_ms = 30000;
    l->output_buffer = 256 * 1024;
    l->stream_buffer = 64 * 1024;
    l->drain_timeout_ms = 30000;
    l->max_requests_per_connection = 1000;
    l->stream_timeout_ms = 60000;
    l->memory_budget = 0;
}
