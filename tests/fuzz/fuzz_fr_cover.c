/* Feeds request fields to the cover site and the router.

   Input: lines separated by '\n', in this order: method, path, if-none-match,
   if-modified-since, if-match, if-unmodified-since, range, if-range, authority. A
   missing or empty line leaves the field absent (a line holding the single byte 0x7f
   gives a present but empty field). The site and the router are built once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_cover.h"
#include "fr_cover_internal.h"
#include "fr_route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1614834367

static struct fr_cover_site *site;
static struct fr_router *router;
static struct fr_cover_response resp;

static void die(const char *why)
{
    fprintf(stderr, "fuzz_fr_cover: invariant broken: %s\n", why);
    abort();
}

static void setup(void)
{
    static const char big[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    const struct fr_cover_entry e[] = {
        {"index.html", (const uint8_t *)"<html>index</html>\n", 19, T0},
        {"a.txt", (const uint8_t *)"hello world\n", 12, T0},
        {"dir/index.html", (const uint8_t *)"dir index\n", 10, T0},
        {"dir/sub/f.css", (const uint8_t *)"x", 1, T0},
        {"emptydir/", NULL, 0, 0},
        {"404.html", (const uint8_t *)"not found page\n", 15, T0},
        {"empty.txt", NULL, 0, T0},
        {"q?d/index.html", (const uint8_t *)"q", 1, T0},
        {"sp ace/b.bin", (const uint8_t *)big, sizeof(big) - 1, T0 + 1},
        {"idx/index.html/", NULL, 0, 0},
    };
    char err[256];
    if (fr_cover_load_entries(NULL, e, sizeof(e) / sizeof(e[0]), &site, err,
                              sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_fr_cover: %s\n", err);
        abort();
    }
    const struct fr_route_rule rules[] = {
        {"*.example.com", "/api", 1},
        {"vote.example", "/", 2},
        {NULL, "/static/", 3},
        {"[::1]", "/x/", 4},
    };
    if (fr_router_new(rules, sizeof(rules) / sizeof(rules[0]), &router) != 0)
        abort();
}

static bool has(const void *p, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    const char *h = p;
    for (size_t i = 0; h && i + m <= n; i++)
        if (memcmp(h + i, needle, m) == 0)
            return true;
    return false;
}

static void check(const struct fr_cover_request *r)
{
    static const int statuses[] = {200, 206, 301, 304, 400, 403, 404, 405, 412, 414, 416};
    bool known = false;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        known |= resp.status == statuses[i];
    if (!known)
        die("status");
    if (resp.nheaders > FR_COVER_MAX_HEADERS)
        die("header count");
    bool has_range = false;
    for (size_t i = 0; i < resp.nheaders; i++) {
        const struct tp_header *h = &resp.headers[i];
        if (h->name.len == 0 || !h->name.base || (h->value.len && !h->value.base))
            die("header strings");
        for (size_t k = 0; k < h->value.len; k++) {
            unsigned char c = (unsigned char)h->value.base[k];
            if (c == '\r' || c == '\n' || c == 0)
                die("control byte in a header value");
        }
        /* Location echoes the client's own path and query; nothing else may carry a
           name. */
        if (!tp_str_eq(h->name, "location") &&
            (has(h->value.base, h->value.len, "zaslon") ||
             has(h->value.base, h->value.len, "nginx")))
            die("product name in a header");
        has_range |= tp_str_eq(h->name, "content-range");
    }
    bool head = tp_str_eq(r->method, "HEAD");
    if (head && !resp.no_body)
        die("HEAD with a body");
    if (resp.no_body) {
        if (resp.body || resp.body_len)
            die("body without one");
        if (resp.status == 304 ? resp.content_length != -1 : resp.content_length < 0)
            die("announced length");
    } else {
        if (resp.content_length != (int64_t)resp.body_len)
            die("content_length");
        if (resp.body_len && !fr_cover_owns(site, resp.body, resp.body_len))
            die("body outside the site");
        if (has(resp.body, resp.body_len, "zaslon") ||
            has(resp.body, resp.body_len, "nginx"))
            die("product name in a body");
    }
    if ((resp.status == 206 || resp.status == 416) != has_range)
        die("content-range");
    if (resp.status == 206 && resp.content_length > 36)
        die("range longer than any file");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tp_str f[9] = {{0}};
    size_t nf = 0, start = 0;

    if (!site)
        setup();
    for (size_t i = 0; i <= size && nf < 9; i++) {
        if (i == size || data[i] == '\n') {
            size_t len = i - start;
            if (len == 1 && data[start] == 0x7f)
                f[nf] = (struct tp_str){(const char *)data + start, 0};
            else if (len > 0)
                f[nf] = (struct tp_str){(const char *)data + start, len};
            nf++;
            start = i + 1;
        }
    }
    struct fr_cover_request r = {
        .method = f[0].base ? f[0] : (struct tp_str){"GET", 3},
        .path = f[1].base ? f[1] : (struct tp_str){"/", 1},
        .if_none_match = f[2],
        .if_modified_since = f[3],
        .if_match = f[4],
        .if_unmodified_since = f[5],
        .range = f[6],
        .if_range = f[7],
    };
    fr_cover_serve(site, &r, &resp);
    check(&r);

    int t = fr_router_match(router, f[8], r.path);
    if (t < -1 || t > 4)
        die("router target");
    /* The helpers on their own, with a value as long as the input. */
    struct tp_str all = {(const char *)data, size};
    int64_t tm, s = 0, e = 0;
    (void)fr_cover_parse_time(all, &tm);
    enum fr_cover_range rr = fr_cover_parse_range(all.len >= 6 ? all : f[6], 36, &s, &e);
    if (rr == FR_COVER_RANGE_PARTIAL && !(s >= 0 && s < e && e <= 36))
        die("range bounds");
    return 0;
}
