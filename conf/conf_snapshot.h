/* conf/: the config file, parsed into an immutable snapshot.

   The file is YAML (libyaml). The parser is strict: an unknown key, a wrong type, a
   value out of range, a duplicate key or a missing required key is an error carrying
   "file:line: reason", and no snapshot is made. conf/ never prints and knows nothing of
   sockets, routing or adapters: a backend's adapter-specific keys are kept as an
   opaque list of (key, value, line) for the adapter to validate.

   Schema (every key optional unless marked required; sizes take k/m suffixes (KiB,
   MiB), durations take ms/s/m suffixes):

     workers: auto | 1..256                 # auto = number of online CPUs
     role: edge                             # edge (only role in this release)
     server_header: "nginx"                 # Server field on every response; absent = none
     error_log: { path: stderr | FILE, level: error|warn|info|debug }
     access_log: FILE                       # optional; route, status, bytes, duration only
     listen:                                # required, at least one
       - address: "127.0.0.1:8443" | "[::1]:8443" | "*:8443"
         tls:                               # absent = cleartext (HTTP/1.1 and h2c)
           certificate: FILE                # required with tls; PEM chain
           key: FILE                        # required with tls
     limits:
       connections_per_worker: 10000
       max_concurrent_streams: 100
       header_list_size: 64k               # decoded
       header_fields: 100
       max_continuations: 8
       stream_reset_burst: 1000
       stream_reset_rate: 33                # per second
       tls_handshake_timeout: 10s
       header_timeout: 10s                  # absolute, from the first byte of a request
       idle_timeout: 60s
       body_timeout: 30s                    # no request-body progress
       write_timeout: 30s                   # no write progress
       output_buffer: 256k                  # per connection
       stream_buffer: 64k                   # per stream, each direction
       drain_timeout: 30s
     cover:                                 # exactly one of root / upstream; default: a
       root: DIR                            #   built-in blank page
       upstream: "http://127.0.0.1:8081"
       index: index.html
       not_found: 404.html                  # the directory's own 404 page, if present
     backends:                              # map of name -> block
       NAME:
         adapter: http                      # required
         headers: [accept, content-type]    # allowlist (default: conf_default_allowlist)
         allow_cookie: false
         replay: optional | strict          # strict: sealed requests need a fresh Date
         pad_min: 1k                        # sealed responses padded to powers of two
         <anything else>: passed to the adapter as (key, value, line)
     sealed:                                # the OHTTP gateway; absent = off
       path: /s/                            # sealed request path (POST message/ohttp-req)
       keys: DIR                            # required; key files written by zaslonctl keygen
       keys_path: /.well-known/ohttp-gateway # key configurations (GET), behind the gate
       replay_window: 60s
       replay_cache: 100000                 # remembered enc values
       max_request: 64k
       max_response: 1m
     routes:                                # first match wins; no match -> cover
       - host: "vote.example" | "*.example" # absent = any authority
         path: "/api/"                      # prefix; default "/"
         handler: cover | "backend NAME"
*/
#ifndef ZASLON_CONF_CONF_SNAPSHOT_H
#define ZASLON_CONF_CONF_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_err {
    CONF_OK = 0,
    CONF_ERR_SYNTAX = -1,   /* YAML the parser refused */
    CONF_ERR_UNKNOWN = -2,  /* unknown key */
    CONF_ERR_TYPE = -3,     /* wrong kind of node or unparsable value */
    CONF_ERR_RANGE = -4,    /* value out of bounds */
    CONF_ERR_MISSING = -5,  /* required key absent */
    CONF_ERR_DUPLICATE = -6,
    CONF_ERR_IO = -7,       /* cannot read the file */
    CONF_ERR_NOMEM = -8,
};

/* Where a failed load says why: "file:line: reason", NUL-terminated, truncated to fit. */
struct conf_error {
    char msg[512];
    unsigned line;
};

enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };

struct conf_listen {
    char *host;       /* "127.0.0.1", "::1", or "" for any */
    uint16_t port;
    bool tls;
    char *certificate; /* NULL unless tls */
    char *key;
    unsigned line;
};

struct conf_limits {
    unsigned connections_per_worker;
    unsigned max_concurrent_streams;
    size_t header_list_size;
    unsigned header_fields;
    unsigned max_continuations;
    unsigned stream_reset_burst;
    unsigned stream_reset_rate;
    unsigned tls_handshake_timeout_ms;
    unsigned header_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned body_timeout_ms;
    unsigned write_timeout_ms;
    size_t output_buffer;
    size_t stream_buffer;
    unsigned drain_timeout_ms;
};

struct conf_kv {
    char *key;
    char *value;
    unsigned line;
};

enum conf_replay { CONF_REPLAY_OPTIONAL, CONF_REPLAY_STRICT };

struct conf_backend {
    char *name;
    char *adapter;
    char **headers;   /* allowlist, lowercase */
    size_t nheaders;
    bool allow_cookie;
    enum conf_replay replay;
    size_t pad_min;   /* default 1024 */
    struct conf_kv *params; /* adapter-specific keys, in file order */
    size_t nparams;
    unsigned line;
};

enum conf_handler { CONF_HANDLER_COVER, CONF_HANDLER_BACKEND };

struct conf_route {
    char *host;      /* NULL = any; lowercase; may start with "*." */
    char *path;      /* prefix, starts with '/' */
    enum conf_handler handler;
    char *backend;   /* name, with CONF_HANDLER_BACKEND; checked to exist */
    unsigned line;
};

struct conf_cover {
    char *root;      /* static directory, or NULL */
    char *upstream;  /* URL, or NULL */
    char *index;     /* default "index.html" */
    char *not_found; /* default "404.html" */
};

struct conf_sealed {
    bool enabled;
    char *path;
    char *keys_dir;
    char *keys_path;
    unsigned replay_window_ms;
    unsigned replay_cache;
    size_t max_request;
    size_t max_response;
};

struct conf_snapshot {
    char *file;
    unsigned workers; /* 0 = auto */
    char *server_header; /* NULL = none */
    char *error_log;     /* "stderr" or a path */
    enum conf_log_level log_level;
    char *access_log;    /* NULL = off */
    struct conf_listen *listen;
    size_t nlisten;
    struct conf_limits limits;
    struct conf_cover cover;
    struct conf_sealed sealed;
    struct conf_backend *backends;
    size_t nbackends;
    struct conf_route *routes;
    size_t nroutes;
};

/* The default backend header allowlist (lowercase, NULL-terminated). */
extern const char *const conf_default_allowlist[];

/* Parses |len| bytes of YAML. |file| names the source in messages. Returns 0 and a new
   snapshot in *out (caller frees with conf_snapshot_free), or a CONF_ERR_* with |err|
   filled and *out untouched. */
int conf_snapshot_load_buffer(const char *file, const char *buf, size_t len,
                              struct conf_snapshot **out, struct conf_error *err);

/* Reads |path| and calls conf_snapshot_load_buffer. */
int conf_snapshot_load_file(const char *path, struct conf_snapshot **out,
                            struct conf_error *err);

/* Frees everything. Accepts NULL. */
void conf_snapshot_free(struct conf_snapshot *snap);

/* Fills |l| with the documented defaults. */
void conf_limits_default(struct conf_limits *l);

#endif
