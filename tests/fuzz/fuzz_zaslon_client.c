/* Fuzzes what libzaslon-client parses (client/zaslon_*.c). The first byte picks:
     0  an opened Binary HTTP response copied into a struct zaslon_response (what a
        gateway, or anyone holding its key, controls)
     1  an application/ohttp-keys list given to zaslon_client_set_keys (what the key
        path, a bundle or a front may hand us), then a request sealed with the choice
     2  an inner URL split for sealing, and the same bytes as a --connect-to value and
        as a front URL
   Whatever parses must keep the library's promises (NUL-terminated strings, buckets,
   the chosen key's id on the wire). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zaslon_client.h"
#include "zaslon_client_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void response(const uint8_t *p, size_t n)
{
    struct zaslon_response r;
    memset(&r, 0, sizeof(r));
    if (zaslon_response_from_bhttp(p, n, 1 << 20, &r) != 0) {
        if (r.mem_)
            abort();
        return;
    }
    if (r.status < 200 || r.status > 599 || r.body[r.body_len] != 0)
        abort();
    for (size_t i = 0; i < r.nheaders; i++)
        if (r.headers[i].name[0] == '\0' || strlen(r.headers[i].value) > n)
            abort();
    for (size_t i = 0; i < r.ntrailers; i++)
        if (r.trailers[i].name[0] == '\0')
            abort();
    zaslon_response_clear(&r);
}

static void keys(const uint8_t *p, size_t n)
{
    static struct zaslon_client *c;
    if (!c && zaslon_client_new(NULL, &c) != 0)
        abort();
    uint8_t id = 0;
    if (zaslon_client_set_keys(c, p, n) != 0 ||
        zaslon_client_key(c, &id, NULL, NULL) != 0)
        return;
    struct zaslon_request r = {"POST", "https://vote.example/ballot", NULL,
                               0,      (const uint8_t *)"x",          1};
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    if (zaslon_seal(c, &r, &sealed, &len, &ex) != 0)
        abort();
    if (len != ZASLON_PAD_MIN_DEFAULT || sealed[0] != id)
        abort();
    free(sealed);
    zaslon_exchange_free(ex);
}

static void url(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    char *scratch = malloc(n + 2);
    if (!s || !scratch)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    struct tp_str scheme, authority, path;
    if (zaslon_url_split(s, scratch, n + 2, &scheme, &authority, &path) == 0) {
        size_t ulen = strlen(s);
        if (scheme.len == 0 || authority.len == 0 || path.len == 0 ||
            path.base[0] != '/' || scheme.len + authority.len + path.len > ulen + 1)
            abort();
    }
    (void)zaslon_connect_to_ok(s);
    bool https;
    (void)zaslon_front_url_ok(s, &https);
    free(scratch);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        response(data + 1, size - 1);
        break;
    case 1:
        keys(data + 1, size - 1);
        break;
    default:
        url(data + 1, size - 1);
        break;
    }
    return 0;
}
