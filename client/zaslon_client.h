/* libzaslon-client: seal HTTP requests with Oblivious HTTP (RFC 9458) and send them
   through a front, the one public header of the library.

   What it does, in the order an app uses it:
   1. Key configurations. zaslon_client_set_keys takes an application/ohttp-keys body
      (RFC 9458 section 3.2), typically from a signed bootstrap bundle;
      zaslon_client_fetch_keys fetches one from a path on the relay's origin through the
      same fronted transport (then it is only as trustworthy as the TLS session to the
      front and whoever terminates it). A list with anything malformed is refused whole.
      The choice is deterministic: the first configuration that lists a suite this
      build supports (KEM X25519/HKDF-SHA256; KDF HKDF-SHA256; AEAD AES-128-GCM,
      AES-256-GCM or ChaCha20-Poly1305), and in it the first such suite, in list order.
   2. Sealing (zaslon_seal, or inside zaslon_client_send): the request becomes a
      known-length Binary HTTP request (RFC 9292): method, scheme, authority and
      path+query taken from an absolute URL, the caller's header fields (names
      lowercased), a Date field in IMF-fixdate unless the caller gave one (the
      gateway's replay window needs it and ballot backends insist on it), the body, and
      zero padding chosen so that the whole message/ohttp-req is a power of two of at
      least |pad_min| bytes (default 1 KiB): the network and the front see only bucket
      sizes. Then HPKE encapsulation to the chosen key.
   3. Transport (zaslon_client_send): POST of the sealed bytes as message/ohttp-req to
      each front's URL, over libcurl: HTTP/2 through ALPN when the URL is https://
      (HTTP/1.1 if the server does not offer h2), h2c with prior knowledge when asked
      for an http:// URL, TLS verification on, SNI = the URL's host (the front name),
      Host / :authority = the hidden edge name when given, an optional fixed address to
      connect to (no DNS query for an address literal), timeouts, a bounded answer.
      The answer must be 200 with Content-Type message/ohttp-res; anything else is
      ZASLON_ERR_NOT_SEALED: the edge answered like its cover site, i.e. it refused the
      request before opening it. A sealed answer whose inner status is 4xx or 5xx is a
      successful exchange: look at zaslon_response.status.
   4. Opening (zaslon_open, or inside zaslon_client_send): the answer is decapsulated
      and decoded into status, header fields, trailer fields and body (the decoder
      drops trailing zero padding; informational 1xx responses are dropped).

   Failover. The options list several fronts. zaslon_client_send and
   zaslon_client_fetch_keys try them in order, moving to the next one only on a
   transport failure before any byte of an answer arrived (connection refused, DNS or
   proxy failure, TLS handshake or certificate failure, a timeout or a closed
   connection before the status line). Once a front answered, its answer is final:
   a cover answer (ZASLON_ERR_NOT_SEALED) does not fail over. The request is sealed
   once and the SAME sealed bytes go to the next front, never a re-sealed copy. That is
   safe even for ballots: if an earlier front did deliver the request after all (a
   timeout after the bytes left), the gateway's replay cache remembers its HPKE `enc`
   and refuses the second copy, whereas a re-sealed request would have a fresh `enc`
   and be counted twice.

   Conventions. Functions that can fail return 0 or a negative ZASLON_ERR_*
   (zaslon_strerror names them); outputs are the last parameters and are left
   untouched on failure. Every _free accepts NULL. Strings given to the library are
   NUL-terminated and borrowed for the call only (the client copies what it keeps). A
   client, and an exchange, are used by one thread at a time; separate clients may be
   used from separate threads. The library never prints and never writes files.

   Secrets: HPKE contexts and every plaintext buffer that held request or response
   content are wiped before they are freed; zaslon_response_clear wipes the response.
   The caller's own copies (request body, header values) are the caller's to wipe. */
#ifndef ZASLON_CLIENT_ZASLON_CLIENT_H
#define ZASLON_CLIENT_ZASLON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes. */
enum zaslon_err {
    ZASLON_OK = 0,
    ZASLON_ERR_INVALID = -1,    /* a bad argument: option, URL, header field, path */
    ZASLON_ERR_TOO_LARGE = -2,  /* a request or an answer over its limit */
    ZASLON_ERR_NO_KEYS = -3,    /* no key configuration set yet */
    ZASLON_ERR_KEYS = -4,       /* key configuration list malformed, or none usable */
    ZASLON_ERR_CONNECT = -5,    /* could not connect (refused, DNS, proxy) */
    ZASLON_ERR_TLS = -6,        /* TLS handshake or certificate verification failed */
    ZASLON_ERR_TIMEOUT = -7,    /* connect or total timeout */
    ZASLON_ERR_TRANSPORT = -8,  /* the connection failed in another way */
    ZASLON_ERR_NOT_SEALED = -9, /* answered, but not 200 message/ohttp-res (or, for a
                                   key fetch, not 200 application/ohttp-keys): the
                                   edge's cover answer, refused before opening */
    ZASLON_ERR_CRYPTO = -10,    /* the sealed answer does not authenticate */
    ZASLON_ERR_PROTO = -11,     /* the sealed answer is malformed (too short, or its
                                   Binary HTTP does not decode) */
    ZASLON_ERR_STATE = -12,     /* the exchange was already opened, or failed */
    ZASLON_ERR_NOMEM = -101,    /* out of memory */
};

/* Defaults and limits. */
#define ZASLON_PAD_MIN_DEFAULT 1024u                   /* smallest bucket */
#define ZASLON_MAX_RESPONSE_DEFAULT (2u * 1024 * 1024) /* answer body cap */
#define ZASLON_CONNECT_TIMEOUT_MS_DEFAULT 10000L       /* TCP + TLS, per front */
#define ZASLON_TIMEOUT_MS_DEFAULT 30000L               /* whole exchange, per front */
#define ZASLON_MAX_FRONTS 16
#define ZASLON_MAX_HEADERS 100                /* caller's request fields */
#define ZASLON_MAX_SEALED (64u * 1024 * 1024) /* largest message/ohttp-req */
#define ZASLON_MAX_KEYS_LEN 65536             /* largest key list accepted */

/* One way in: a front (or a relay, or the gateway itself). */
struct zaslon_front {
    const char *url;        /* http:// or https:// URL to POST to, e.g.
                               "https://front.example/prefix/s/"; its host is the TLS
                               SNI and the name the certificate is checked against */
    const char *host;       /* Host / :authority to send (the hidden edge's name,
                               optionally with ":port"); NULL = the URL's host */
    const char *connect_to; /* "ADDR:PORT" or "[V6ADDR]:PORT" to connect to instead of
                               resolving the URL's host (an address literal means no
                               DNS query at all; a name is resolved); NULL = resolve */
    const char *ca_file;    /* PEM trust anchors; NULL = the system store */
    bool insecure;          /* skip certificate and name verification (tests only) */
    bool h2c;               /* http:// URLs only: HTTP/2 with prior knowledge */
};

/* Client options. A zeroed struct (or NULL) is valid: no fronts (seal and open only),
   default timeouts, padding and limits. */
struct zaslon_client_opts {
    const struct zaslon_front *fronts; /* tried in order; copied by zaslon_client_new */
    size_t nfronts;                    /* 0..ZASLON_MAX_FRONTS */
    long connect_timeout_ms;           /* <= 0: ZASLON_CONNECT_TIMEOUT_MS_DEFAULT */
    long timeout_ms;                   /* <= 0: ZASLON_TIMEOUT_MS_DEFAULT */
    size_t pad_min;      /* smallest bucket, rounded up to a power of two; 0: default */
    size_t max_response; /* largest answer body accepted; 0: default */
    const char *proxy;   /* libcurl proxy URL ("socks5h://127.0.0.1:9050"); NULL: none
                            (proxy environment variables are ignored, deliberately) */
    const char *user_agent; /* User-Agent sent to the front; NULL: none */
};

/* A client: options, fronts and the chosen key configuration (opaque). */
struct zaslon_client;

/* One sealed request awaiting its answer (opaque): the HPKE context that opens it. */
struct zaslon_exchange;

/* A header field. In a request both strings are the caller's; in a response they point
   into the response's own memory. */
struct zaslon_header {
    const char *name;
    const char *value;
};

/* A request to seal. Everything is borrowed for the call. */
struct zaslon_request {
    const char *method; /* a token ("GET", "POST"); NULL: GET, or POST with a body */
    const char *url;    /* the INNER absolute URL, e.g. "https://vote.example/ballot?x":
                           scheme and host are lowercased, the fragment dropped, an empty
                           path becomes "/"; userinfo ("user@") is refused */
    const struct zaslon_header *headers; /* names any case (sent lowercase); values
                                            without NUL, CR, LF or edge whitespace.
                                            Refused: host (the URL has the authority),
                                            content-length (Binary HTTP frames the
                                            body), hop-by-hop fields, pseudo-fields */
    size_t nheaders;                     /* 0..ZASLON_MAX_HEADERS */
    const uint8_t *body;
    size_t body_len;
};

/* An opened response. Every pointer points into one block the struct owns (|mem_|);
   release it with zaslon_response_clear, never field by field. Header names are
   lowercase; names and values are NUL-terminated; |body| is followed by a NUL byte
   that |body_len| does not count (handy for text; the body itself may hold NULs). */
struct zaslon_response {
    int status; /* the inner, final status: 200..599 */
    const struct zaslon_header *headers;
    size_t nheaders;
    const struct zaslon_header *trailers;
    size_t ntrailers;
    const uint8_t *body;
    size_t body_len;
    void *mem_;      /* internal */
    size_t mem_len_; /* internal */
};

/* Returns a fixed English string for |err| (any int); never NULL. */
const char *zaslon_strerror(int err);

/* Creates a client from |opts| (NULL: all defaults, no fronts) into *out; everything in
   |opts| is copied. ZASLON_ERR_INVALID for a front without a URL or with a scheme other
   than http/https, h2c on an https URL, a malformed connect_to, a host or other string
   with control characters or spaces, or more than ZASLON_MAX_FRONTS fronts. Also
   initialises libcurl (curl_global_init is thread-safe in the libcurl this builds
   against). The caller frees the client with zaslon_client_free. */
int zaslon_client_new(const struct zaslon_client_opts *opts, struct zaslon_client **out);

/* Frees |c| and everything it holds (its libcurl handle and connections). Accepts
   NULL. */
void zaslon_client_free(struct zaslon_client *c);

/* Parses the application/ohttp-keys body |keys| (|len| bytes, borrowed) and chooses a
   configuration and suite as explained at the top. ZASLON_ERR_KEYS if the list is
   malformed anywhere, empty, longer than ZASLON_MAX_KEYS_LEN, or holds nothing this
   build can use. On any failure the client keeps its previous choice. */
int zaslon_client_set_keys(struct zaslon_client *c, const uint8_t *keys, size_t len);

/* Fetches an application/ohttp-keys body with GET from |path| (starting with one "/",
   may carry a query) on the origin of the fronts' URLs, through the fronts with
   failover, and sets it as zaslon_client_set_keys does. The answer must be 200
   application/ohttp-keys (else ZASLON_ERR_NOT_SEALED); transport errors as for
   zaslon_client_send; ZASLON_ERR_INVALID for a bad path or no fronts. */
int zaslon_client_fetch_keys(struct zaslon_client *c, const char *path);

/* Sets *key_id, *kdf_id and *aead_id (each may be NULL) to the chosen configuration's
   key id and suite. ZASLON_ERR_NO_KEYS if none is set. */
int zaslon_client_key(const struct zaslon_client *c, uint8_t *key_id, uint16_t *kdf_id,
                      uint16_t *aead_id);

/* Seals |r|, sends it through the fronts with failover and opens the answer into *out
   (which the caller then releases with zaslon_response_clear; it is not freed first,
   so clear it before reuse). Returns 0 for any opened answer, whatever its inner
   status. Errors: those of zaslon_seal, then ZASLON_ERR_CONNECT / _TLS / _TIMEOUT /
   _TRANSPORT (of the last front tried, once every front failed, or of the front that
   broke off mid-answer), ZASLON_ERR_NOT_SEALED, ZASLON_ERR_TOO_LARGE (answer over
   max_response), then those of zaslon_open. ZASLON_ERR_INVALID without fronts. */
int zaslon_client_send(struct zaslon_client *c, const struct zaslon_request *r,
                       struct zaslon_response *out);

/* After zaslon_client_send or zaslon_client_fetch_keys: the outer HTTP status of the
   last answer received (for ZASLON_ERR_NOT_SEALED, the cover answer's), 0 if no front
   answered. */
int zaslon_client_last_status(const struct zaslon_client *c);

/* After zaslon_client_send or zaslon_client_fetch_keys: the index in the options'
   fronts of the last front tried (the one that answered, on success), -1 if none. */
int zaslon_client_last_front(const struct zaslon_client *c);

/* A human-readable detail of the last send or fetch failure ("front 1: Failed to
   connect to ... Connection refused"; "" after a success). It may name the fronts and
   addresses of the options, so it is for the user's own eyes, not for a shared log.
   Owned by |c|, valid until the next call on |c|. */
const char *zaslon_client_last_error(const struct zaslon_client *c);

/* The I/O-free half, for apps with their own transport. Seals |r| with |c|'s key
   configuration and padding: on success *sealed is a malloc'd message/ohttp-req of
   *len bytes (ciphertext; the caller frees it with free()), and *ex the exchange that
   opens its answer (free it with zaslon_exchange_free). ZASLON_ERR_NO_KEYS before a
   key is set; ZASLON_ERR_INVALID for a malformed request (see struct zaslon_request);
   ZASLON_ERR_TOO_LARGE if the sealed request would exceed ZASLON_MAX_SEALED. */
int zaslon_seal(struct zaslon_client *c, const struct zaslon_request *r, uint8_t **sealed,
                size_t *len, struct zaslon_exchange **ex);

/* Opens the message/ohttp-res |res| (|len| bytes, borrowed) answering |ex|'s request
   into *out (release it with zaslon_response_clear). Once per exchange: after a
   success, or after ZASLON_ERR_CRYPTO (the exchange is then over), it gives
   ZASLON_ERR_STATE. ZASLON_ERR_PROTO if |res| is too short to be sealed or its Binary
   HTTP response does not decode; ZASLON_ERR_TOO_LARGE if it exceeds the client's
   max_response as it was when |ex| was sealed. */
int zaslon_open(struct zaslon_exchange *ex, const uint8_t *res, size_t len,
                struct zaslon_response *out);

/* Wipes and frees |ex|. Accepts NULL. */
void zaslon_exchange_free(struct zaslon_exchange *ex);

/* Wipes and frees what |r| owns and zeroes it. Accepts NULL and a zeroed struct. */
void zaslon_response_clear(struct zaslon_response *r);

#endif
