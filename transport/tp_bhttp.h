/* Binary HTTP messages (RFC 9292), I/O-free: the inner messages of Oblivious HTTP.

   Decoding: requests in known-length (framing indicator 0) and indeterminate-length (2)
   form, responses in known-length (1) and indeterminate-length (3) form. Encoding: both
   kinds in both framings, with optional truncation of trailing empty sections and zero
   padding. The gateway decodes requests and encodes known-length responses; the client
   library does the reverse.

   Decoding is strict (RFC 9292 section 4 and RFC 9110 section 5):
   - every varint length is checked against struct tp_bhttp_limits before anything is
     allocated or read, and size arithmetic is checked for overflow;
   - a message may end at any section boundary after its control data (the omitted
     sections are empty, RFC 9292 section 3.8); the bytes after the message must all be
     zero (padding);
   - field names must be non-empty lowercase tokens (RFC 9110 tchar): uppercase, a
     leading ':' (pseudo-fields have no place in a field section) and any other byte
     are refused; field values must not contain NUL, CR or LF, nor start or end with
     SP or HTAB (RFC 9113 section 8.2.1, which RFC 9292 section 3.6 applies);
   - the method must be a token; the scheme, if not empty, must match RFC 3986's scheme
     grammar; authority and path must not contain controls, space or DEL.
   Errors: TP_ERR_TRUNCATED (input ends inside a section), TP_ERR_TOO_LARGE (over a
   limit, or a varint too large), TP_ERR_INVALID (malformed, or a refused name/value,
   or nonzero padding), TP_ERR_UNSUPPORTED (framing indicator of the wrong kind or
   unknown), TP_ERR_NOMEM.

   A decoded message borrows from the input: every string, and the content when it was
   sent in one piece, points into the caller's buffer, which must outlive the message.
   Only the field arrays (and content sent in several chunks) are allocated, in one
   block that the message owns until its _clear. */
#ifndef ZASLON_TRANSPORT_TP_BHTTP_H
#define ZASLON_TRANSPORT_TP_BHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_http.h"

/* Framing of an encoded message (RFC 9292 section 3.3). */
enum tp_bhttp_framing {
    TP_BHTTP_KNOWN_LENGTH = 0,
    TP_BHTTP_INDETERMINATE_LENGTH = 1,
};

/* Bounds for decoding. Each is checked before the bytes it describes are used. */
struct tp_bhttp_limits {
    size_t max_fields; /* field lines in the whole message, all sections together */
    size_t max_field_section; /* bytes of one field section; also bounds each control
                                 data string (method, scheme, authority, path) */
    size_t max_content;       /* bytes of content */
    size_t max_informational; /* 1xx responses before the final one (responses only) */
};

/* Reasonable defaults for a gateway: 128 fields, 64 KiB per section, 1 MiB content,
   4 informational responses. */
#define TP_BHTTP_LIMITS_DEFAULT ((struct tp_bhttp_limits){128, 65536, 1048576, 4})

/* A request. For encoding the caller fills it (everything borrowed, |mem| NULL); a
   decoded one borrows from the input buffer as explained above. Strings are not
   NUL-terminated. */
struct tp_bhttp_request {
    struct tp_str method;
    struct tp_str scheme;
    struct tp_str authority;
    struct tp_str path; /* path and query */
    const struct tp_header *headers;
    size_t n_headers;
    const uint8_t *content;
    size_t content_len;
    const struct tp_header *trailers;
    size_t n_trailers;
    void *mem; /* decoder's allocation; wiped and released by tp_bhttp_request_clear */
    size_t mem_len;
};

/* One informational (1xx) response. */
struct tp_bhttp_info {
    uint16_t status; /* 100..199 */
    const struct tp_header *fields;
    size_t n_fields;
};

/* A response: zero or more informational responses, then the final one. Ownership as
   for struct tp_bhttp_request. */
struct tp_bhttp_response {
    const struct tp_bhttp_info *informational;
    size_t n_informational;
    uint16_t status; /* 200..599 */
    const struct tp_header *headers;
    size_t n_headers;
    const uint8_t *content;
    size_t content_len;
    const struct tp_header *trailers;
    size_t n_trailers;
    void *mem; /* wiped and released by tp_bhttp_response_clear */
    size_t mem_len;
};

/* How to encode. A NULL options pointer means known-length, no truncation, no
   padding. */
struct tp_bhttp_encode_opts {
    enum tp_bhttp_framing framing;
    bool truncate;  /* leave out trailing empty sections (trailers, content, headers) */
    size_t padding; /* zero bytes appended after the message */
};

/* Decodes the request in |in| (|len| bytes) under |limits| (NULL for the defaults).
   On success fills *req, which borrows from |in| and owns its field arrays until
   tp_bhttp_request_clear. On failure returns a negative TP_ERR_* and leaves *req
   untouched. */
int tp_bhttp_request_decode(struct tp_bhttp_request *req, const uint8_t *in, size_t len,
                            const struct tp_bhttp_limits *limits);

/* Releases what a decode allocated and zeroes *req. Accepts NULL and a zeroed or
   caller-filled struct (it frees only |mem|). */
void tp_bhttp_request_clear(struct tp_bhttp_request *req);

/* Sets *len to the size tp_bhttp_request_encode needs for |req| with |opts|.
   TP_ERR_INVALID if |req| holds something the decoder would refuse, TP_ERR_TOO_LARGE
   if a length does not fit a varint or the total overflows size_t. */
int tp_bhttp_request_encoded_len(const struct tp_bhttp_request *req,
                                 const struct tp_bhttp_encode_opts *opts, size_t *len);

/* Encodes |req| into |out| (|cap| bytes) and sets *out_len. Validates as
   tp_bhttp_request_encoded_len does; TP_ERR_INVALID also if |cap| is too small. */
int tp_bhttp_request_encode(const struct tp_bhttp_request *req,
                            const struct tp_bhttp_encode_opts *opts, uint8_t *out,
                            size_t cap, size_t *out_len);

/* The same four for responses. */
int tp_bhttp_response_decode(struct tp_bhttp_response *res, const uint8_t *in, size_t len,
                             const struct tp_bhttp_limits *limits);
void tp_bhttp_response_clear(struct tp_bhttp_response *res);
int tp_bhttp_response_encoded_len(const struct tp_bhttp_response *res,
                                  const struct tp_bhttp_encode_opts *opts, size_t *len);
int tp_bhttp_response_encode(const struct tp_bhttp_response *res,
                             const struct tp_bhttp_encode_opts *opts, uint8_t *out,
                             size_t cap, size_t *out_len);

/* Returns true if |name| is a valid field name here: non-empty, lowercase, tchar only. */
bool tp_bhttp_field_name_ok(struct tp_str name);

/* Returns true if |value| contains no NUL, CR or LF and neither starts nor ends with
   SP or HTAB. */
bool tp_bhttp_field_value_ok(struct tp_str value);

#endif
