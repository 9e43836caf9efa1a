/* Fuzzes the Binary HTTP decoder (transport/tp_bhttp.c) with the gateway's view of the
   input: a request, in either framing. Whatever decodes must re-encode, decode again
   to the same message, and never read outside the input (ASan). The same bytes also go
   through the response decoder, which the client library uses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_bhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_eq(struct tp_str a, struct tp_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static int fields_eq(const struct tp_header *a, size_t na, const struct tp_header *b,
                     size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
            return 0;
    return 1;
}

static int bytes_eq(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static void request_round_trip(const struct tp_bhttp_request *r,
                               const struct tp_bhttp_limits *lim, int framing)
{
    struct tp_bhttp_encode_opts o = {
        framing ? TP_BHTTP_INDETERMINATE_LENGTH : TP_BHTTP_KNOWN_LENGTH, framing == 1, 3};
    struct tp_bhttp_request again;
    size_t need = 0, n = 0;
    uint8_t *buf;
    if (tp_bhttp_request_encoded_len(r, &o, &need) != 0)
        abort(); /* the decoder accepted it, so the encoder must */
    buf = malloc(need ? need : 1);
    if (!buf)
        return;
    if (tp_bhttp_request_encode(r, &o, buf, need, &n) != 0 || n != need)
        abort();
    /* Limits are per message, and the re-encoding carries the same message. */
    if (tp_bhttp_request_decode(&again, buf, n, lim) != 0)
        abort();
    if (!str_eq(r->method, again.method) || !str_eq(r->scheme, again.scheme) ||
        !str_eq(r->authority, again.authority) || !str_eq(r->path, again.path) ||
        !fields_eq(r->headers, r->n_headers, again.headers, again.n_headers) ||
        !bytes_eq(r->content, r->content_len, again.content, again.content_len) ||
        !fields_eq(r->trailers, r->n_trailers, again.trailers, again.n_trailers))
        abort();
    tp_bhttp_request_clear(&again);
    free(buf);
}

static void response_round_trip(const struct tp_bhttp_response *r,
                                const struct tp_bhttp_limits *lim)
{
    struct tp_bhttp_response again;
    size_t need = 0, n = 0;
    uint8_t *buf;
    if (tp_bhttp_response_encoded_len(r, NULL, &need) != 0)
        abort();
    buf = malloc(need ? need : 1);
    if (!buf)
        return;
    if (tp_bhttp_response_encode(r, NULL, buf, need, &n) != 0 || n != need)
        abort();
    if (tp_bhttp_response_decode(&again, buf, n, lim) != 0)
        abort();
    if (r->status != again.status || r->n_informational != again.n_informational ||
        !fields_eq(r->headers, r->n_headers, again.headers, again.n_headers) ||
        !bytes_eq(r->content, r->content_len, again.content, again.content_len) ||
        !fields_eq(r->trailers, r->n_trailers, again.trailers, again.n_trailers))
        abort();
    for (size_t i = 0; i < r->n_informational; i++)
        if (r->informational[i].status != again.informational[i].status ||
            !fields_eq(r->informational[i].fields, r->informational[i].n_fields,
                       again.informational[i].fields, again.informational[i].n_fields))
            abort();
    tp_bhttp_response_clear(&again);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits so the fuzzer reaches them. */
    const struct tp_bhttp_limits lim = {16, 512, 4096, 3};
    struct tp_bhttp_request req;
    struct tp_bhttp_response res;

    if (tp_bhttp_request_decode(&req, data, size, &lim) == 0) {
        request_round_trip(&req, &lim, 0);
        request_round_trip(&req, &lim, 1);
        tp_bhttp_request_clear(&req);
    }
    if (tp_bhttp_response_decode(&res, data, size, &lim) == 0) {
        response_round_trip(&res, &lim);
        tp_bhttp_response_clear(&res);
    }
    return 0;
}
