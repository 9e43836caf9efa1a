/* Shared by the files of libzaslon-client (zaslon_client.c: options, keys, failover;
   zaslon_seal.c: sealing and opening, I/O-free; zaslon_curl.c: the libcurl transport)
   and by their unit tests and fuzz harness. Nothing else includes it. */
#ifndef ZASLON_CLIENT_ZASLON_CLIENT_INTERNAL_H
#define ZASLON_CLIENT_ZASLON_CLIENT_INTERNAL_H

#include "zaslon_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "tp_http.h"
#include "tp_ohttp.h"

/* A front as the client keeps it: owned copies of struct zaslon_front's strings. */
struct zaslon_front_conf {
    char *url;
    char *host;       /* NULL: the URL's host */
    char *connect_to; /* NULL: resolve */
    char *ca_file;    /* NULL: system store */
    bool insecure;
    bool h2c;
};

struct zaslon_client {
    struct zaslon_front_conf *fronts;
    size_t nfronts;
    long connect_timeout_ms;
    long timeout_ms;
    size_t pad_min; /* a power of two */
    size_t max_response;
    char *proxy;      /* NULL: no proxy */
    char *user_agent; /* NULL: none */

    bool have_key;
    struct tp_ohttp_key_config key;
    struct tp_ohttp_suite suite;

    CURL *curl; /* kept between exchanges so that connections are reused */
    int last_status;
    int last_front;
    char errmsg[512];
    char curl_err[CURL_ERROR_SIZE];
};

/* One HTTP exchange with one front, as zaslon_xfer_run performs it. The caller fills
   the first group; zaslon_xfer_run fills the second. */
struct zaslon_xfer {
    const char *path;    /* NULL: the front's URL; else a path resolved against it */
    const uint8_t *body; /* NULL: GET; else POST of |body_len| bytes */
    size_t body_len;
    const char *req_type; /* Content-Type of the POST body */
    const char *res_type; /* the media type a 200 must carry */
    size_t max;           /* most answer bytes kept */

    int status;    /* final HTTP status, 0 if none */
    bool answered; /* some byte of an answer arrived */
    uint8_t *data; /* the answer body (malloc'd, |len| bytes) */
    size_t len;
    size_t cap;
};

/* Performs |x| with front |i| of |c| on |c|'s libcurl handle, filling the second
   group of |x| (any previous |data| must have been released with zaslon_xfer_clear).
   Returns 0 for a complete 200 answer of type |x->res_type|; ZASLON_ERR_NOT_SEALED for
   any other answer (reading of its body is abandoned); ZASLON_ERR_TOO_LARGE past
   |x->max|; ZASLON_ERR_CONNECT / _TLS / _TIMEOUT / _TRANSPORT for transport failures
   (|x->answered| tells whether any answer byte had arrived); ZASLON_ERR_INVALID for a
   path that does not resolve; ZASLON_ERR_NOMEM. Writes a detail into |c->curl_err|
   (empty when there is none). */
int zaslon_xfer_run(struct zaslon_client *c, size_t i, struct zaslon_xfer *x);

/* Frees |x->data| and zeroes the result group. */
void zaslon_xfer_clear(struct zaslon_xfer *x);

/* Returns true if |url| parses (libcurl's URL parser) as an http:// or https:// URL
   with a host, and sets *https. */
bool zaslon_front_url_ok(const char *url, bool *https);

/* Returns true if |s| is "HOST:PORT" or "[V6]:PORT" with a port of 1..65535 and a host
   of letters, digits, '.', '-', '_' (or hex digits, ':', '.' and a "%zone" inside
   brackets). */
bool zaslon_connect_to_ok(const char *s);

/* Returns the smallest power of two that is >= |len| and >= |min| (|min| itself a
   power of two, at least 1), or 0 if that would overflow size_t. The same rounding as
   fronting's fr_pad_bucket, written again here because client/ may use only
   transport's I/O-free code. */
size_t zaslon_pad_bucket(size_t len, size_t min);

/* Splits the absolute URL |url| into lowercased scheme, lowercased authority and
   path+query (fragment dropped, empty path made "/"), written into |scratch| (|cap|
   bytes, at least strlen(url) + 2) and pointed at by the three strings.
   ZASLON_ERR_INVALID for a URL without "scheme://", a bad scheme, an empty authority,
   userinfo, or |cap| too small. */
int zaslon_url_split(const char *url, char *scratch, size_t cap, struct tp_str *scheme,
                     struct tp_str *authority, struct tp_str *path);

/* Decodes the Binary HTTP response |in| (|len| bytes, borrowed) with at most
   |max_content| content bytes and copies the final response into *out (one owned
   block; release with zaslon_response_clear). ZASLON_ERR_PROTO if it does not decode,
   ZASLON_ERR_NOMEM. *out untouched on failure. */
int zaslon_response_from_bhttp(const uint8_t *in, size_t len, size_t max_content,
                               struct zaslon_response *out);

#endif
