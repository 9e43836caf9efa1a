/* conf/: the config file, parsed into an immutable snapshot.

   The file is YAML (libyaml). The parser is strict: an unknown key, a wrong type, a
   value out of range, a duplicate key or a missing required key is an error carrying
   "file:line: reason", and no snapshot is made. conf/ never prints and knows nothing of
   sockets, routing or adapters: a backend's adapter-specific keys are kept as an
   opaque list of (key, value, line) for the adapter to validate.

   Schema (every key optional unless marked required; "# a..b" gives the accepted
   range, and the value shown is the default):

   A reload (SIGHUP) applies every key but error_log, access_log (opened once at
   start) and sealed.replay_cache (the replay cache is kept across reloads, with its
   size): a reload that changes them is refused. See README.md, "Signals".

     workers: auto | 1..256                 # auto = number of online CPUs
     role: edge | relay | gateway           # edge: relay and gateway in one process;
                                            #   relay: no keys, forwards sealed bodies to
                                            #   relay.gateway over h2 + mutual TLS;
                                            #   gateway: sealed requests only from relays
                                            #   presenting a client certificate
     gate:                                  # the access gate for sealed traffic and keys
       header: x-origin-secret              # a field the front injects (a token)
       secrets: [VALUE, ...]                # 1..16 accepted values (rotation), 16..256
                                            #   visible ASCII each; compared in constant time
     mount: /prefix                         # the edge is mounted under this path prefix
                                            #   (a front forwards /prefix/...); "/x", no
                                            #   trailing slash
     open: false                            # RFC-style answers (422, problem+json, public
                                            #   key path) for open, uncensored deployments
     relay:                                 # required with role: relay, refused otherwise
       gateway: https://gw.internal:8443/s/ # required; the gateway's sealed URL
       certificate: FILE                    # required; the relay's client certificate
       key: FILE                            # required
       ca_file: FILE                        # the gateway's CA; default: the system store
       connections: 2                       # 1..64 HTTP/2 connections per worker
       max_queue: 1024                      # 1..100000 requests waiting per worker
       timeout: 30s                         # 100ms..60m, whole exchange
     server_header: "nginx"                 # Server field on every response; absent =
                                            #   none; 1..128 visible ASCII (inner spaces)
     error_log: { path: stderr | FILE, level: error|warn|info|debug }
                                            # default { path: stderr, level: info }
     access_log: stderr | FILE              # optional; route, status, bytes, duration
     listen:                                # required, at least one, no two alike
       - address: "127.0.0.1:8443" | "[::1]:8443" | "*:8443"
                                            # required; port 1..65535; "*" = any, v4+v6
         tls:                               # absent = cleartext (HTTP/1.1 and h2c)
           certificate: FILE                # required with tls; PEM chain
           key: FILE                        # required with tls
           client_ca: FILE                  # require and verify client certificates
                                            #   (role: gateway needs one such listener)
     limits:
       connections_per_worker: 10000        # 1..1000000
       max_concurrent_streams: 100          # 1..1000
       header_list_size: 64k                # 1k..1m, decoded
       header_fields: 100                   # 8..1000
       max_continuations: 8                 # 1..64
       stream_reset_burst: 1000             # 1..100000
       stream_reset_rate: 33                # 1..10000, per second
       tls_handshake_timeout: 10s           # 100ms..60m (every timeout)
       header_timeout: 10s                  # absolute, from the first byte of a request
       idle_timeout: 60s
       body_timeout: 30s                    # no request-body progress; absolute from
                                            #   the head for a body of at most one
                                            #   stream_buffer (a sealed request)
       write_timeout: 30s                   # no write progress
       stream_timeout: 60s                  # absolute, per request (HTTP/2 stream or
                                            #   HTTP/1.1 exchange), from its head's end
       output_buffer: 256k                  # 16k..64m, per connection
       stream_buffer: 64k                   # 16k..16m, per stream, each direction
       drain_timeout: 30s                   # SIGTERM, and an old generation after a
                                            #   reload (SIGHUP): in-flight requests get
                                            #   this long, then what is left is closed
       max_requests_per_connection: 1000    # then a graceful GOAWAY / Connection: close
       h2_data_padding: 0                   # 0..16k: pad HTTP/2 DATA frames to multiples
                                            #   of this (where zaslon terminates users'
                                            #   TLS itself); 0 = off
       memory_budget: 0                     # 0 (off) ..1048576m, whole process: fixed
                                            #   per-connection cost + bytes queued in
                                            #   connections and their requests; past it
                                            #   new connections wait, new h2 streams get
                                            #   REFUSED_STREAM, new HTTP/1.1 requests
                                            #   503 + close
     cover:                                 # at most one of root / upstream; neither: a
       root: DIR                            #   built-in blank page
       upstream: "http://127.0.0.1:8081"    # http:// or https://, no userinfo
       index: index.html                    # relative to root (only with root)
       not_found: 404.html                  # the directory's own 404 page, if present
     backends:                              # map of name -> block
       NAME:                                # [a-z0-9_-]{1,64}
         adapter: http                      # required; [a-z0-9_-]{1,64}
         headers: [accept, content-type]    # allowlist: 0..256 tokens of 1..128 bytes,
                                            #   lowercased, no duplicates, no "cookie"
                                            #   (default: conf_default_allowlist)
         allow_cookie: false
         replay: optional | strict          # strict: sealed requests need a fresh Date
         pad_min: 1k                        # 1..1m; sealed responses padded to powers
                                            #   of two
         <anything else>: passed to the adapter as (key, value, line); the key is
                                            # [a-z0-9_-]{1,64}, the value a scalar or a
                                            # sequence of scalars (one entry per element)
     sealed:                                # the OHTTP gateway; absent = off
       path: /s/                            # sealed request path (POST message/ohttp-req)
       keys: DIR                            # required; zaslonctl keygen's key files
       keys_path: /.well-known/ohttp-gateway # key configurations (GET), behind the gate
       replay_window: 60s                   # 1s..60m
       replay_cache: 100000                 # 1000..10000000 remembered enc values
       max_request: 64k                     # 1k..16m
       max_response: 1m                     # 1k..64m
     routes:                                # first match wins; no match -> cover
       - host: "vote.example" | "*.example" # absent = any authority; lowercased; "*."
                                            #   only as the first label; no port
         path: "/api/"                      # prefix; default "/"
         handler: cover | "backend NAME"    # required; NAME must be in backends

   Values. Integers are decimal digits only (no sign, no spaces). Sizes are bytes, or
   a number with a k or m suffix (KiB, MiB; either case). Durations are seconds, or a
   number with an ms, s or m suffix (lowercase). Booleans are true or false. A key
   with no value (or ~ / null) is an error wherever it appears. Paths (URL paths in
   routes and sealed) start with "/" and hold visible ASCII other than "?" and "#".

   Host names are ASCII (an IDN in its xn-- form).

   Files. FILE and DIR values that are relative resolve against the directory of the
   config file, and the snapshot stores the result as an absolute path (the current
   directory is prefixed when the config file's own path is relative). A buffer named
   "-", or named without any "/", resolves against the current directory. The special
   log destination "stderr" is kept as is. conf/ does not open any of these files.

   Input caps: at most CONF_MAX_FILE bytes, CONF_MAX_DEPTH levels of nesting,
   CONF_MAX_NODES nodes (scalars, maps and sequences, keys included) and CONF_MAX_SCALAR
   bytes per scalar. Anchors, aliases, tags and more than one document are refused.
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

/* Input caps (see the schema comment). */
enum {
    CONF_MAX_FILE = 1024 * 1024, /* bytes of YAML */
    CONF_MAX_DEPTH = 16,         /* nested maps and sequences */
    CONF_MAX_NODES = 10000,      /* scalars, maps and sequences, keys included */
    CONF_MAX_SCALAR = 4096,      /* bytes in one scalar */
};

/* Where a failed load says why: "file:line: reason", NUL-terminated, truncated to fit.
   |line| is 1-based; when no line applies (the file cannot be read, is too large, or
   memory ran out) it is 0 and |msg| reads "file: reason". */
struct conf_error {
    char msg[512];
    unsigned line;
};

enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };

enum conf_role { CONF_ROLE_EDGE, CONF_ROLE_RELAY, CONF_ROLE_GATEWAY };

struct conf_listen {
    char *host;       /* "127.0.0.1", "::1", or "" for any */
    uint16_t port;
    bool tls;
    char *certificate; /* NULL unless tls */
    char *key;
    char *client_ca;   /* NULL: no client certificates asked for */
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
    unsigned max_requests_per_connection; /* then GOAWAY / Connection: close */
    size_t h2_data_padding;               /* 0 = off */
    unsigned stream_timeout_ms;           /* absolute, per request */
    size_t memory_budget;                 /* bytes, whole process; 0 = off */
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
    char **headers;   /* allowlist, lowercase; never NULL and NULL-terminated: a copy of
                         conf_default_allowlist when the key is absent, empty (nheaders
                         0) for `headers: []` */
    size_t nheaders;
    bool allow_cookie;
    enum conf_replay replay;
    size_t pad_min;   /* default 1024 */
    struct conf_kv *params; /* adapter-specific keys, in file order */
    size_t nparams;
    unsigned line;
    unsigned adapter_line; /* the adapter: key, for messages about the adapter */
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
    unsigned line;   /* the root: or upstream: key, 0 when neither is given */
};

struct conf_sealed {
    bool enabled;
    char *path;
    char *keys_dir;
    unsigned keys_line;
    unsigned line; /* the sealed: key */
    char *keys_path;
    unsigned replay_window_ms;
    unsigned replay_cache;
    size_t max_request;
    size_t max_response;
};

/* A loaded config. Every string and array is owned by the snapshot; nothing in it
   changes after load, so any number of threads may read it at once. */
struct conf_gate {
    char *header;   /* lowercase; NULL: no origin secret required */
    char **secrets; /* nsecrets values */
    size_t nsecrets;
    unsigned line;
};

struct conf_relay {
    bool enabled;
    char *gateway;     /* https URL */
    char *certificate; /* client certificate chain */
    char *key;
    char *ca_file;     /* NULL: system store */
    unsigned connections;
    unsigned max_queue;
    unsigned timeout_ms;
    unsigned line;
};

struct conf_snapshot {
    char *file;          /* the name given to the loader */
    unsigned workers; /* 0 = auto */
    enum conf_role role;
    char *server_header; /* NULL = none */
    char *error_log;     /* "stderr" or a path */
    enum conf_log_level log_level;
    char *access_log;    /* NULL = off */
    struct conf_listen *listen;
    size_t nlisten;
    struct conf_limits limits;
    struct conf_cover cover;
    struct conf_sealed sealed;
    struct conf_gate gate;
    char *mount;  /* NULL: not mounted under a prefix */
    bool open;    /* RFC-style answers for open deployments */
    struct conf_relay relay;
    struct conf_backend *backends;
    size_t nbackends;
    struct conf_route *routes;
    size_t nroutes;
};

/* The default backend header allowlist (lowercase, NULL-terminated). */
extern const char *const conf_default_allowlist[];

/* Parses |len| bytes of YAML (|buf| need not be NUL-terminated; over CONF_MAX_FILE
   bytes is refused). |file| names the source in messages and fixes the directory that
   relative FILE and DIR values resolve against (see "Files" above); NULL reads as "-".
   Returns 0 and a new snapshot in *out (caller frees with conf_snapshot_free), or a
   CONF_ERR_* with |err| filled (if not NULL) and *out untouched. Nothing is built in
   part: on failure everything allocated so far is freed. |file| and |buf| are borrowed
   and not kept (the snapshot holds its own copy of the name). On success |err| is
   cleared. Touches no file; may call getcwd. */
int conf_snapshot_load_buffer(const char *file, const char *buf, size_t len,
                              struct conf_snapshot **out, struct conf_error *err);

/* Reads |path| and calls conf_snapshot_load_buffer with |path| as the file name. Same
   results and ownership, plus, with line 0: CONF_ERR_IO when the file cannot be opened
   or read, CONF_ERR_RANGE when it holds more than CONF_MAX_FILE bytes. */
int conf_snapshot_load_file(const char *path, struct conf_snapshot **out,
                            struct conf_error *err);

/* Frees |snap| and everything it points to. Accepts NULL. */
void conf_snapshot_free(struct conf_snapshot *snap);

/* Fills |l| with the documented defaults. */
void conf_limits_default(struct conf_limits *l);

/* Returns a static, human-readable name for a CONF_ERR_* code (or CONF_OK). */
const char *conf_strerror(int err);

#endif
