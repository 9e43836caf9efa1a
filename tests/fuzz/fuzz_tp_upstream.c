/* Feeds bytes to the upstream client's response parser as a backend would send them,
   through the same sans-I/O code the connections drive (tp_upstream_internal.h).

   Input: byte 0 chooses the set-up (bit 0: the request was HEAD; bit 1: a 256-byte
   header cap; bit 2: a 64-byte body cap; bit 3: parse a second response on the same
   connection), byte 1 the split size (0: everything at once), the rest is the wire.

   Invariants: errors are only the documented ones and consume nothing; without an error
   every byte is consumed until the response completes; body bytes never exceed the
   caps; a complete response has a final status and exactly its declared length (none
   for HEAD, 204, 304); header names are lowercase tokens. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "tp_err.h"
#include "tp_upstream_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_head(const struct tp_upstream_resp *r)
{
    check(r->status >= 200 && r->status <= 999);
    check(r->nfields <= TP_UPSTREAM_MAX_FIELDS);
    check(r->hsize <= r->max_header);
    for (size_t i = 0; i < r->nfields; i++) {
        struct tp_str n = r->view[i].name;
        check(n.len > 0);
        for (size_t k = 0; k < n.len; k++)
            check(!(n.base[k] >= 'A' && n.base[k] <= 'Z') && n.base[k] != ':' &&
                  n.base[k] != ' ' && n.base[k] != '\r' && n.base[k] != '\n');
        struct tp_str v = r->view[i].value;
        for (size_t k = 0; k < v.len; k++)
            check(v.base[k] != '\r' && v.base[k] != '\n' && v.base[k] != '\0');
    }
}

static bool allowed(int rv)
{
    return rv == TP_ERR_PROTO || rv == TP_ERR_TOO_LARGE || rv == TP_ERR_NOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t step = data[1] ? data[1] : SIZE_MAX;
    const char *wire = (const char *)data + 2;
    size = size - 2;
    bool head = mode & 1;
    size_t max_header = (mode & 2) ? 256 : 65536;
    int64_t max_body = (mode & 4) ? 64 : -1;

    struct tp_upstream_resp r;
    if (tp_upstream_resp_init(&r, max_header, max_body, head) != 0)
        return 0;
    size_t off = 0;
    for (unsigned round = 0; round < 2; round++) {
        int64_t total = 0;
        int rv = 0;
        while (off < size && !r.done) {
            size_t n = size - off < step ? size - off : step;
            size_t used = 1;
            rv = tp_upstream_resp_feed(&r, wire + off, n, &used);
            if (rv != 0) {
                check(allowed(rv) && used == 0);
                /* A failed parser stays failed. */
                check(tp_upstream_resp_feed(&r, wire, size, &used) == rv && used == 0);
                break;
            }
            check(used <= n);
            check(r.done || used == n);
            off += used;
            size_t bl = evbuffer_get_length(r.body);
            check(total + (int64_t)bl == r.body_len);
            total += (int64_t)bl;
            evbuffer_drain(r.body, bl);
            check(max_body < 0 || r.body_len <= max_body);
            if (r.head_done)
                check_head(&r);
        }
        if (rv == 0 && !r.done) {
            rv = tp_upstream_resp_eof(&r);
            check(rv == 0 ? r.done : (rv == TP_ERR_CLOSED || allowed(rv)));
            size_t bl = evbuffer_get_length(r.body);
            check(bl == 0);
        }
        if (rv != 0)
            break;
        check(r.done && r.head_done);
        check_head(&r);
        if (r.no_body)
            check(total == 0);
        else if (r.content_length >= 0)
            check(total == r.content_length);
        size_t used = 1;
        check(tp_upstream_resp_feed(&r, "x", 1, &used) == TP_ERR_STATE && used == 0);
        if (!(mode & 8) || !r.keep_alive)
            break;
        tp_upstream_resp_reset(&r, head);
    }
    tp_upstream_resp_clear(&r);
    return 0;
}
