/* Binary HTTP (transport/tp_bhttp.c): the worked examples of RFC 9292 section 5
   (tests/vectors/rfc9292-examples.txt) and the inner messages of RFC 9458 Appendix A,
   byte for byte in both directions; truncation at every length; the refusals; random
   round trips. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "tp_bhttp.h"
#include "tp_bhttp_internal.h"
#include "tp_err.h"
#include "tp_http.h"
#include "tp_rand.h"
#include "tu_util.h"
#include "tu_vec.h"

struct bytes {
    uint8_t *p;
    size_t n;
};

static struct bytes example(const char *name)
{
    struct bytes b = {NULL, 0};
    char *text = tu_read_vector("rfc9292-examples.txt", NULL);
    if (text)
        b.p = tu_vec_get(text, name, &b.n);
    free(text);
    return b;
}

static bool str_is(struct tp_str s, const char *lit)
{
    return tp_str_eq(s, lit);
}

static bool field_is(const struct tp_header *h, const char *name, const char *value)
{
    return tp_str_eq(h->name, name) && tp_str_eq(h->value, value);
}

#define H(n, v)                                                                          \
    {                                                                                    \
        TP_STR_LIT(n), TP_STR_LIT(v)                                                     \
    }

/* The request of RFC 9292 Figure 7. */
static const struct tp_header fig7_headers[] = {
    H("user-agent", "curl/7.16.3 libcurl/7.16.3 OpenSSL/0.9.7l zlib/1.2.3"),
    H("host", "www.example.com"),
    H("accept-language", "en, mi"),
};

static struct tp_bhttp_request fig7_request(void)
{
    return (struct tp_bhttp_request){
        .method = TP_STR_LIT("GET"),
        .scheme = TP_STR_LIT("https"),
        .authority = TP_STR_LIT(""),
        .path = TP_STR_LIT("/hello.txt"),
        .headers = fig7_headers,
        .n_headers = 3,
    };
}

static bool fields_equal(const struct tp_header *a, size_t na, const struct tp_header *b,
                         size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].name.len != b[i].name.len || a[i].value.len != b[i].value.len ||
            memcmp(a[i].name.base, b[i].name.base, a[i].name.len) != 0 ||
            (a[i].value.len && memcmp(a[i].value.base, b[i].value.base, a[i].value.len)))
            return false;
    return true;
}

static bool sstr_eq(struct tp_str a, struct tp_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static bool requests_equal(const struct tp_bhttp_request *a,
                           const struct tp_bhttp_request *b)
{
    return sstr_eq(a->method, b->method) && sstr_eq(a->scheme, b->scheme) &&
           sstr_eq(a->authority, b->authority) && sstr_eq(a->path, b->path) &&
           fields_equal(a->headers, a->n_headers, b->headers, b->n_headers) &&
           a->content_len == b->content_len &&
           (a->content_len == 0 || memcmp(a->content, b->content, a->content_len) == 0) &&
           fields_equal(a->trailers, a->n_trailers, b->trailers, b->n_trailers);
}

static bool responses_equal(const struct tp_bhttp_response *a,
                            const struct tp_bhttp_response *b)
{
    if (a->n_informational != b->n_informational || a->status != b->status)
        return false;
    for (size_t i = 0; i < a->n_informational; i++)
        if (a->informational[i].status != b->informational[i].status ||
            !fields_equal(a->informational[i].fields, a->informational[i].n_fields,
                          b->informational[i].fields, b->informational[i].n_fields))
            return false;
    return fields_equal(a->headers, a->n_headers, b->headers, b->n_headers) &&
           a->content_len == b->content_len &&
           (a->content_len == 0 || memcmp(a->content, b->content, a->content_len) == 0) &&
           fields_equal(a->trailers, a->n_trailers, b->trailers, b->n_trailers);
}

static void check_encode_req(const struct tp_bhttp_request *r,
                             const struct tp_bhttp_encode_opts *o, struct bytes want)
{
    size_t need = 0, n = 0;
    uint8_t *buf;
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_encoded_len(r, o, &need), 0);
    CU_ASSERT_EQUAL(need, want.n);
    buf = malloc(need + 1);
    CU_ASSERT_FATAL(buf != NULL);
    CU_ASSERT_EQUAL(tp_bhttp_request_encode(r, o, buf, need, &n), 0);
    CU_ASSERT(n == want.n && memcmp(buf, want.p, n) == 0);
    /* One byte short never writes past the end and says so. */
    if (need)
        CU_ASSERT_EQUAL(tp_bhttp_request_encode(r, o, buf, need - 1, &n), TP_ERR_INVALID);
    free(buf);
}

static void check_encode_res(const struct tp_bhttp_response *r,
                             const struct tp_bhttp_encode_opts *o, struct bytes want)
{
    size_t need = 0, n = 0;
    uint8_t *buf;
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_encoded_len(r, o, &need), 0);
    CU_ASSERT_EQUAL(need, want.n);
    buf = malloc(need + 1);
    CU_ASSERT_FATAL(buf != NULL);
    CU_ASSERT_EQUAL(tp_bhttp_response_encode(r, o, buf, need, &n), 0);
    CU_ASSERT(n == want.n && memcmp(buf, want.p, n) == 0);
    if (need)
        CU_ASSERT_EQUAL(tp_bhttp_response_encode(r, o, buf, need - 1, &n),
                        TP_ERR_INVALID);
    free(buf);
}

/* ---- RFC 9292 section 5 ----------------------------------------------------------- */

static void rfc9292_known_length_request(void)
{
    struct bytes ex = example("known_length_request");
    struct tp_bhttp_request want = fig7_request(), got;
    CU_ASSERT_FATAL(ex.p != NULL && ex.n == 135);

    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, ex.p, ex.n, NULL), 0);
    CU_ASSERT(str_is(got.method, "GET") && str_is(got.scheme, "https") &&
              got.authority.len == 0 && str_is(got.path, "/hello.txt"));
    CU_ASSERT_EQUAL(got.n_headers, 3);
    CU_ASSERT(field_is(&got.headers[1], "host", "www.example.com"));
    CU_ASSERT(requests_equal(&got, &want));
    /* Borrowed from the input, not copied. */
    CU_ASSERT((const uint8_t *)got.path.base > ex.p &&
              (const uint8_t *)got.path.base < ex.p + ex.n);
    tp_bhttp_request_clear(&got);

    check_encode_req(&want, NULL, ex);

    /* "the last two bytes ... can each be removed without altering the semantics" */
    for (size_t cut = 1; cut <= 2; cut++) {
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n - cut, NULL), 0);
        CU_ASSERT(requests_equal(&got, &want));
        tp_bhttp_request_clear(&got);
    }
    /* Every other prefix either ends at a section boundary (after the control data, 23
       bytes; after the header section, 133) or is refused as truncated. */
    for (size_t len = 0; len < ex.n; len++) {
        int rv = tp_bhttp_request_decode(&got, ex.p, len, NULL);
        if (len == 23 || len >= 133) {
            CU_ASSERT_EQUAL(rv, 0);
            CU_ASSERT_EQUAL(got.n_headers, len == 23 ? 0 : 3);
            tp_bhttp_request_clear(&got);
        } else {
            CU_ASSERT_EQUAL(rv, TP_ERR_TRUNCATED);
        }
    }
    /* The encoder's truncation leaves out the two empty sections. */
    struct tp_bhttp_encode_opts trunc = {TP_BHTTP_KNOWN_LENGTH, true, 0};
    struct bytes shorter = {ex.p, ex.n - 2};
    check_encode_req(&want, &trunc, shorter);
    free(ex.p);
}

static void rfc9292_indeterminate_request(void)
{
    struct bytes ex = example("indeterminate_length_request");
    struct tp_bhttp_request want = fig7_request(), got;
    struct tp_bhttp_encode_opts ind = {TP_BHTTP_INDETERMINATE_LENGTH, false, 10};
    CU_ASSERT_FATAL(ex.p != NULL && ex.n == 144);

    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, ex.p, ex.n, NULL), 0);
    CU_ASSERT(requests_equal(&got, &want));
    tp_bhttp_request_clear(&got);

    check_encode_req(&want, &ind, ex);

    /* "anything up to 12 bytes can be removed from this message without affecting its
       meaning"; the 13th is the header section's terminator. */
    for (size_t cut = 0; cut <= 12; cut++) {
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n - cut, NULL), 0);
        CU_ASSERT(requests_equal(&got, &want));
        tp_bhttp_request_clear(&got);
    }
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n - 13, NULL),
                    TP_ERR_TRUNCATED);
    for (size_t len = 0; len < ex.n - 12; len++) {
        int rv = tp_bhttp_request_decode(&got, ex.p, len, NULL);
        if (len == 23) {
            CU_ASSERT_EQUAL(rv, 0); /* control data only */
            tp_bhttp_request_clear(&got);
        } else {
            CU_ASSERT_EQUAL(rv, TP_ERR_TRUNCATED);
        }
    }
    /* Padding must be zeros, wherever the nonzero byte is. */
    for (size_t pos = ex.n - 10; pos < ex.n; pos++) {
        ex.p[pos] = 0x01;
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, NULL), TP_ERR_INVALID);
        ex.p[pos] = 0x00;
    }
    free(ex.p);
}

static const struct tp_header fig10_102[] = {H("running", "\"sleep 15\"")};
static const struct tp_header fig10_103[] = {
    H("link", "</style.css>; rel=preload; as=style"),
    H("link", "</script.js>; rel=preload; as=script"),
};
static const struct tp_header fig10_200[] = {
    H("date", "Mon, 27 Jul 2009 12:28:53 GMT"),
    H("server", "Apache"),
    H("last-modified", "Wed, 22 Jul 2009 19:15:56 GMT"),
    H("etag", "\"34aa387-d-1568eb00\""),
    H("accept-ranges", "bytes"),
    H("content-length", "51"),
    H("vary", "Accept-Encoding"),
    H("content-type", "text/plain"),
};
static const char fig10_body[] = "Hello World! My content includes a trailing CRLF.\r\n";

static struct tp_bhttp_response fig10_response(void)
{
    static const struct tp_bhttp_info info[] = {
        {102, fig10_102, 1},
        {103, fig10_103, 2},
    };
    return (struct tp_bhttp_response){
        .informational = info,
        .n_informational = 2,
        .status = 200,
        .headers = fig10_200,
        .n_headers = 8,
        .content = (const uint8_t *)fig10_body,
        .content_len = sizeof(fig10_body) - 1,
    };
}

static void rfc9292_response_with_informational(void)
{
    struct bytes ex = example("indeterminate_length_response");
    struct tp_bhttp_response want = fig10_response(), got, again;
    struct tp_bhttp_encode_opts ind = {TP_BHTTP_INDETERMINATE_LENGTH, false, 0};
    struct tp_bhttp_encode_opts known = {TP_BHTTP_KNOWN_LENGTH, false, 0};
    uint8_t buf[512];
    size_t n = 0;
    CU_ASSERT_FATAL(ex.p != NULL && ex.n == 368);
    CU_ASSERT_EQUAL(want.content_len, 51);

    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&got, ex.p, ex.n, NULL), 0);
    CU_ASSERT_EQUAL(got.n_informational, 2);
    CU_ASSERT_EQUAL(got.informational[0].status, 102);
    CU_ASSERT_EQUAL(got.informational[1].status, 103);
    CU_ASSERT_EQUAL(got.status, 200);
    CU_ASSERT(responses_equal(&got, &want));
    tp_bhttp_response_clear(&got);

    check_encode_res(&want, &ind, ex);

    /* The gateway sends known-length: the same message survives that framing too. */
    CU_ASSERT_EQUAL(tp_bhttp_response_encode(&want, &known, buf, sizeof(buf), &n), 0);
    CU_ASSERT_EQUAL(buf[0], 0x01);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&again, buf, n, NULL), 0);
    CU_ASSERT(responses_equal(&again, &want));
    tp_bhttp_response_clear(&again);

    /* Prefixes: only the empty trailer section may go (RFC 9292 section 3.8); the
       content is not empty, so its terminator must stay. */
    for (size_t len = 0; len < ex.n; len++) {
        int rv = tp_bhttp_response_decode(&got, ex.p, len, NULL);
        if (len == ex.n - 1) {
            CU_ASSERT_EQUAL(rv, 0);
            CU_ASSERT(responses_equal(&got, &want));
            tp_bhttp_response_clear(&got);
        } else if (rv == 0) {
            /* After the final status (no headers) or after the header section. */
            CU_ASSERT(got.content_len == 0 && got.n_informational == 2);
            tp_bhttp_response_clear(&got);
        } else {
            CU_ASSERT_EQUAL(rv, TP_ERR_TRUNCATED);
        }
    }
    /* Only one informational response allowed: refused before anything is allocated. */
    struct tp_bhttp_limits lim = TP_BHTTP_LIMITS_DEFAULT;
    lim.max_informational = 1;
    tp_bhttp_test_fail_alloc = 1; /* an allocation now would fail the test below */
    CU_ASSERT_EQUAL(tp_bhttp_response_decode(&got, ex.p, ex.n, &lim), TP_ERR_TOO_LARGE);
    CU_ASSERT_EQUAL(tp_bhttp_test_fail_alloc, 1);
    tp_bhttp_test_fail_alloc = 0;
    free(ex.p);
}

static void rfc9292_known_length_response(void)
{
    struct bytes ex = example("known_length_response");
    static const struct tp_header trailers[] = {H("trailer", "text")};
    static const char body[] = "This content contains CRLF.\r\n";
    struct tp_bhttp_response want = {.status = 200,
                                     .content = (const uint8_t *)body,
                                     .content_len = sizeof(body) - 1,
                                     .trailers = trailers,
                                     .n_trailers = 1},
                             got;
    CU_ASSERT_FATAL(ex.p != NULL && ex.n == 48);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&got, ex.p, ex.n, NULL), 0);
    CU_ASSERT(responses_equal(&got, &want));
    CU_ASSERT_EQUAL(got.n_headers, 0);
    CU_ASSERT(got.headers == NULL);
    tp_bhttp_response_clear(&got);
    check_encode_res(&want, NULL, ex);
    free(ex.p);
}

/* RFC 9458 Appendix A's inner messages: a request cut after its control data, and a
   response that is only a status. */
static void rfc9458_inner_messages(void)
{
    char *text = tu_read_vector("rfc9458-appendix-a.txt", NULL);
    struct bytes req = {NULL, 0}, res = {NULL, 0};
    CU_ASSERT_FATAL(text != NULL);
    req.p = tu_vec_get(text, "request", &req.n);
    res.p = tu_vec_get(text, "response", &res.n);
    free(text);
    CU_ASSERT_FATAL(req.p && res.p);

    struct tp_bhttp_request r = {.method = TP_STR_LIT("GET"),
                                 .scheme = TP_STR_LIT("https"),
                                 .authority = TP_STR_LIT("example.com"),
                                 .path = TP_STR_LIT("/")},
                            got;
    struct tp_bhttp_encode_opts trunc = {TP_BHTTP_KNOWN_LENGTH, true, 0};
    check_encode_req(&r, &trunc, req);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, req.p, req.n, NULL), 0);
    CU_ASSERT(requests_equal(&got, &r));
    CU_ASSERT(got.mem == NULL); /* nothing to allocate for a message without fields */
    tp_bhttp_request_clear(&got);

    struct tp_bhttp_response s = {.status = 200}, sgot;
    check_encode_res(&s, &trunc, res);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&sgot, res.p, res.n, NULL), 0);
    CU_ASSERT(responses_equal(&sgot, &s));
    tp_bhttp_response_clear(&sgot);
    free(req.p);
    free(res.p);
}

/* ---- refusals --------------------------------------------------------------------- */

/* Builds a known-length request whose one header is |name|: |value|. */
static size_t req_with_field(uint8_t *out, const char *name, size_t nl, const char *value,
                             size_t vl)
{
    size_t o = 0;
    static const uint8_t head[] = {0x00, 3,   'G', 'E', 'T', 5, 'h', 't',
                                   't',  'p', 's', 1,   'a', 1, '/'};
    memcpy(out, head, sizeof(head));
    o = sizeof(head);
    out[o++] = (uint8_t)(2 + nl + vl);
    out[o++] = (uint8_t)nl;
    memcpy(out + o, name, nl);
    o += nl;
    out[o++] = (uint8_t)vl;
    memcpy(out + o, value, vl);
    return o + vl;
}

static void field_refusals(void)
{
    struct tp_bhttp_request got;
    uint8_t buf[128];
    size_t n;
    const char *bad_names[] = {"User-agent", "X",   ":authority", ":path",
                               "a b",        "a(b", "a:b",        "a\x80",
                               "a\"",        "a,b", "a/b",        "a@b"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        n = req_with_field(buf, bad_names[i], strlen(bad_names[i]), "v", 1);
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), TP_ERR_INVALID);
        CU_ASSERT_FALSE(
            tp_bhttp_field_name_ok((struct tp_str){bad_names[i], strlen(bad_names[i])}));
    }
    /* NUL is no tchar, though its table entry (0) equals the byte. */
    n = req_with_field(buf, "a\0b", 3, "v", 1);
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), TP_ERR_INVALID);
    CU_ASSERT_FALSE(tp_bhttp_field_name_ok((struct tp_str){"\0", 1}));
    /* Every one-byte name: a tchar other than uppercase, and not ':'. */
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool want = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        CU_ASSERT_EQUAL(tp_bhttp_field_name_ok((struct tp_str){&b, 1}), want);
    }
    const char *good_names[] = {"x", "user-agent", "a!#$%&'*+-.^_`|~09"};
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++) {
        n = req_with_field(buf, good_names[i], strlen(good_names[i]), "v", 1);
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), 0);
        tp_bhttp_request_clear(&got);
    }
    /* Values: NUL, CR, LF refused anywhere, SP and HTAB at either end (RFC 9113
       section 8.2.1, which RFC 9292 section 3.6 applies); other bytes allowed. */
    const char bad_values[][4] = {"a\rb", "a\nb", "\r\n", "ab\n", " ab",
                                  "ab ",  "\tab", "ab\t", " "};
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        n = req_with_field(buf, "x", 1, bad_values[i], strlen(bad_values[i]));
        CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), TP_ERR_INVALID);
    }
    n = req_with_field(buf, "x", 1, "a\0b", 3);
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), TP_ERR_INVALID);
    n = req_with_field(buf, "x", 1, "a\tb \x01\xff", 6);
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), 0);
    tp_bhttp_request_clear(&got);
    n = req_with_field(buf, "x", 1, "", 0);
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, buf, n, NULL), 0);
    CU_ASSERT(got.n_headers == 1 && got.headers[0].value.len == 0);
    tp_bhttp_request_clear(&got);

    /* The same rules on the way out. */
    struct tp_header h = H("Upper", "v");
    struct tp_bhttp_request r = {.method = TP_STR_LIT("GET"),
                                 .path = TP_STR_LIT("/"),
                                 .headers = &h,
                                 .n_headers = 1};
    CU_ASSERT_EQUAL(tp_bhttp_request_encoded_len(&r, NULL, &n), TP_ERR_INVALID);
    h = (struct tp_header)H(":method", "GET");
    CU_ASSERT_EQUAL(tp_bhttp_request_encoded_len(&r, NULL, &n), TP_ERR_INVALID);
    h = (struct tp_header)H("x", "a\r\nInjected: 1");
    CU_ASSERT_EQUAL(tp_bhttp_request_encoded_len(&r, NULL, &n), TP_ERR_INVALID);
    struct tp_bhttp_response s = {.status = 200, .trailers = &h, .n_trailers = 1};
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), TP_ERR_INVALID);
    h = (struct tp_header)H("x", "ok");
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), 0);
    s.status = 199;
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), TP_ERR_INVALID);
    s.status = 600;
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), TP_ERR_INVALID);
    struct tp_bhttp_info inf = {200, NULL, 0};
    s = (struct tp_bhttp_response){
        .status = 200, .informational = &inf, .n_informational = 1};
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), TP_ERR_INVALID);
    inf.status = 103;
    CU_ASSERT_EQUAL(tp_bhttp_response_encoded_len(&s, NULL, &n), 0);
}

static void control_data_refusals(void)
{
    struct tp_bhttp_request got;
    struct {
        const char *hex;
        int rv;
    } cases[] = {
        /* framing indicators of responses, and unknown ones */
        {"01 03474554 00 00 00", TP_ERR_UNSUPPORTED},
        {"03 03474554 00 00 00", TP_ERR_UNSUPPORTED},
        {"04 03474554 00 00 00", TP_ERR_UNSUPPORTED},
        {"4004 03474554 00 00 00", TP_ERR_UNSUPPORTED},
        {"4000 03474554 00 00 00", 0}, /* 0 written in two bytes is still 0 */
        {"", TP_ERR_TRUNCATED},
        {"40", TP_ERR_TRUNCATED},
        /* method: empty, space, control */
        {"00 00 00 00 00", TP_ERR_INVALID},
        {"00 04474554 20 00 00 00", TP_ERR_INVALID},
        {"00 03470054 00 00 00", TP_ERR_INVALID},
        /* scheme: must start with a letter */
        {"00 03474554 0131 00 00", TP_ERR_INVALID},
        {"00 03474554 02682f 00 00", TP_ERR_INVALID},
        /* authority and path: no space, controls or DEL */
        {"00 03474554 00 0361 2062 00", TP_ERR_INVALID},
        {"00 03474554 00 00 022f0a", TP_ERR_INVALID},
        {"00 03474554 00 00 022f7f", TP_ERR_INVALID},
        /* lengths past the end */
        {"00 03474554 00 00 02 2f", TP_ERR_TRUNCATED},
        {"00 0547", TP_ERR_TRUNCATED},
        /* lengths past every limit (8-byte varints up to 2^62 - 1) */
        {"00 ffffffffffffffff", TP_ERR_TOO_LARGE},
        {"00 03474554 c000000000010001", TP_ERR_TOO_LARGE},
        {"00 03474554 00 00 012f bfffffffffffffff", TP_ERR_TOO_LARGE},
        {"00 03474554 00 00 012f 00 ffffffffffffffff", TP_ERR_TOO_LARGE},
        {"00 03474554 00 00 012f 00 80100001", TP_ERR_TOO_LARGE},
        {"02 03474554 00 00 012f 00 ffffffffffffffff", TP_ERR_TOO_LARGE},
        {"02 03474554 00 00 012f 0178 ffffffffffffffff", TP_ERR_TOO_LARGE},
        {"02 03474554 00 00 012f 00 80ffffff 00", TP_ERR_TOO_LARGE},
        /* a known-length section whose line runs past it is malformed */
        {"00 03474554 00 00 012f 03 01 78 05 7878787878", TP_ERR_INVALID},
        {"00 03474554 00 00 012f 02 01 78", TP_ERR_INVALID},
        /* an indeterminate section cut before its terminator is truncated */
        {"02 03474554 00 00 012f 0178 0178", TP_ERR_TRUNCATED},
        {"02 03474554 00 00 012f 00 03 6162", TP_ERR_TRUNCATED},
        {"02 03474554 00 00 012f 00 03 616263", TP_ERR_TRUNCATED},
        /* nonzero bytes after the message */
        {"00 03474554 00 00 012f 00 00 00 01", TP_ERR_INVALID},
        {"02 03474554 00 00 012f 00 00 00 0000ff", TP_ERR_INVALID},
        /* fine: minimal, and non-minimal varints */
        {"00 03474554 00 00 012f", 0},
        {"00 4003474554 4000 800000 00 c000000000000001 2f", 0},
        {"02 03474554 00 00 012f 00 01 61 01 62 00 00 0000", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        uint8_t *b = tu_hex(cases[i].hex, &n);
        CU_ASSERT_FATAL(b != NULL);
        int rv = tp_bhttp_request_decode(&got, b, n, NULL);
        if (rv != cases[i].rv)
            fprintf(stderr, "\ncase %zu (%s): got %d want %d\n", i, cases[i].hex, rv,
                    cases[i].rv);
        CU_ASSERT_EQUAL(rv, cases[i].rv);
        if (rv == 0)
            tp_bhttp_request_clear(&got);
        free(b);
    }
    /* Chunked content is reassembled (copied), a single chunk is borrowed. */
    size_t n;
    uint8_t *b = tu_hex("02 03474554 00 00 012f 00 01 61 02 6263 00 00", &n);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, b, n, NULL), 0);
    CU_ASSERT(got.content_len == 3 && memcmp(got.content, "abc", 3) == 0);
    CU_ASSERT(got.content < b || got.content >= b + n);
    tp_bhttp_request_clear(&got);
    free(b);
    b = tu_hex("02 03474554 00 00 012f 00 03 616263 00", &n);
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, b, n, NULL), 0);
    CU_ASSERT(got.content_len == 3 && got.content == b + 11);
    tp_bhttp_request_clear(&got);
    free(b);
}

static void response_refusals(void)
{
    struct tp_bhttp_response got;
    struct {
        const char *hex;
        int rv;
    } cases[] = {
        {"00 40c8", TP_ERR_UNSUPPORTED},
        {"02 40c8", TP_ERR_UNSUPPORTED},
        {"01", TP_ERR_TRUNCATED},
        {"01 4063", TP_ERR_INVALID},   /* 99 */
        {"01 4258", TP_ERR_INVALID},   /* 600 */
        {"01 4064", TP_ERR_TRUNCATED}, /* 100, then nothing: no final status */
        {"01 4064 00", TP_ERR_TRUNCATED},
        {"01 4064 00 40c8", 0},
        {"03 4064 00 40c8 00 00 00", 0},
        {"03 4064 0178 0179 00 40c8", 0},
        {"03 4064 0158 0179 00 40c8", TP_ERR_INVALID}, /* uppercase in a 1xx */
        {"01 40c8 00 ffffffffffffffff", TP_ERR_TOO_LARGE},
        {"01 40c8 00 00 00 01", TP_ERR_INVALID},
        {"01 40c8 03 013a 00", TP_ERR_INVALID}, /* ":" */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        uint8_t *b = tu_hex(cases[i].hex, &n);
        CU_ASSERT_FATAL(b != NULL);
        int rv = tp_bhttp_response_decode(&got, b, n, NULL);
        if (rv != cases[i].rv)
            fprintf(stderr, "\ncase %zu (%s): got %d want %d\n", i, cases[i].hex, rv,
                    cases[i].rv);
        CU_ASSERT_EQUAL(rv, cases[i].rv);
        if (rv == 0)
            tp_bhttp_response_clear(&got);
        free(b);
    }
}

static void limits(void)
{
    struct bytes ex = example("known_length_request");
    struct tp_bhttp_request got;
    struct tp_bhttp_limits lim = TP_BHTTP_LIMITS_DEFAULT;
    CU_ASSERT_FATAL(ex.p != NULL);
    /* Three fields, a 108-byte header section, a 10-byte path. */
    lim.max_fields = 2;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), TP_ERR_TOO_LARGE);
    lim.max_fields = 3;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), 0);
    tp_bhttp_request_clear(&got);
    lim.max_field_section = 107;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), TP_ERR_TOO_LARGE);
    lim.max_field_section = 108;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), 0);
    tp_bhttp_request_clear(&got);
    lim.max_field_section = 9; /* the path is longer */
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, 23, &lim), TP_ERR_TOO_LARGE);
    free(ex.p);

    /* The indeterminate form counts its section bytes as it goes. */
    ex = example("indeterminate_length_request");
    lim = TP_BHTTP_LIMITS_DEFAULT;
    lim.max_field_section = 107; /* the three lines take 108, as in Figure 8 */
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), TP_ERR_TOO_LARGE);
    lim.max_field_section = 108;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, &lim), 0);
    tp_bhttp_request_clear(&got);
    free(ex.p);

    /* Content limits, in one piece and in chunks. */
    size_t n;
    uint8_t *b = tu_hex("02 03474554 00 00 012f 00 02 6162 02 6364 00 00", &n);
    lim = TP_BHTTP_LIMITS_DEFAULT;
    lim.max_content = 3;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, b, n, &lim), TP_ERR_TOO_LARGE);
    lim.max_content = 4;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, b, n, &lim), 0);
    tp_bhttp_request_clear(&got);
    free(b);
    b = tu_hex("00 03474554 00 00 012f 00 04 61626364", &n);
    lim.max_content = 3;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, b, n, &lim), TP_ERR_TOO_LARGE);
    free(b);
}

static void allocation_failure(void)
{
    struct bytes ex = example("known_length_request");
    struct bytes rs = example("indeterminate_length_response");
    struct tp_bhttp_request got;
    struct tp_bhttp_response rgot;
    CU_ASSERT_FATAL(ex.p && rs.p);
    memset(&got, 0x5a, sizeof(got));
    tp_bhttp_test_fail_alloc = 1;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, NULL), TP_ERR_NOMEM);
    CU_ASSERT_EQUAL(tp_bhttp_test_fail_alloc, 0);
    /* Untouched on failure. */
    CU_ASSERT_EQUAL(((uint8_t *)&got)[0], 0x5a);
    tp_bhttp_test_fail_alloc = 1;
    CU_ASSERT_EQUAL(tp_bhttp_response_decode(&rgot, rs.p, rs.n, NULL), TP_ERR_NOMEM);
    tp_bhttp_test_fail_alloc = 0;
    CU_ASSERT_EQUAL(tp_bhttp_request_decode(&got, ex.p, ex.n, NULL), 0);
    tp_bhttp_request_clear(&got);
    tp_bhttp_request_clear(NULL);
    tp_bhttp_response_clear(NULL);
    free(ex.p);
    free(rs.p);
}

/* ---- random round trips ----------------------------------------------------------- */

static uint32_t rnd(uint32_t n)
{
    uint32_t v = 0;
    tp_rand_bytes(&v, sizeof(v));
    return n ? v % n : 0;
}

/* Fills |s| with |n| random characters drawn from |set|. */
static void rnd_chars(char *s, size_t n, const char *set)
{
    size_t k = strlen(set);
    for (size_t i = 0; i < n; i++)
        s[i] = set[rnd((uint32_t)k)];
}

static const char name_set[] = "abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~";
static const char value_set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
                                "456789 \t\"(),/:;<=>?@[]\x80\xff";

struct rnd_fields {
    struct tp_header h[40];
    char store[40][2][300];
};

static size_t rnd_section(struct rnd_fields *f)
{
    size_t n = rnd(8) == 0 ? 0 : rnd(40);
    for (size_t i = 0; i < n; i++) {
        /* Sizes cross the 1- and 2-byte varint boundaries (63/64). */
        size_t nl = 1 + rnd(rnd(4) == 0 ? 299 : 70), vl = rnd(rnd(4) == 0 ? 300 : 70);
        rnd_chars(f->store[i][0], nl, name_set);
        rnd_chars(f->store[i][1], vl, value_set);
        if (vl) { /* no whitespace at either end */
            f->store[i][1][0] = 'v';
            f->store[i][1][vl - 1] = 'w';
        }
        f->h[i] = (struct tp_header){{f->store[i][0], nl}, {f->store[i][1], vl}};
    }
    return n;
}

static void random_round_trips(void)
{
    static struct rnd_fields hf, tf, if1;
    static uint8_t content[20000], buf[200000];
    static char path[2000];
    struct tp_bhttp_limits lim = {200, 1 << 20, 1 << 20, 4};
    for (int iter = 0; iter < 400; iter++) {
        struct tp_bhttp_encode_opts o = {rnd(2) ? TP_BHTTP_KNOWN_LENGTH
                                                : TP_BHTTP_INDETERMINATE_LENGTH,
                                         rnd(2) == 0, rnd(3) ? 0 : rnd(300)};
        size_t path_len = 1 + rnd(rnd(3) ? 100 : sizeof(path) - 1);
        path[0] = '/';
        rnd_chars(path + 1, path_len - 1, "abc/?=&%-._~0123456789");
        size_t clen = rnd(4) == 0 ? 0 : rnd(rnd(3) ? 200 : sizeof(content));
        tp_rand_bytes(content, clen);
        struct tp_bhttp_request r = {
            .method = rnd(2) ? TP_STR_LIT("POST") : TP_STR_LIT("GET"),
            .scheme = rnd(4) ? TP_STR_LIT("https") : TP_STR_LIT(""),
            .authority = rnd(3) ? TP_STR_LIT("vote.example:8443") : TP_STR_LIT(""),
            .path = {path, path_len},
            .headers = hf.h,
            .n_headers = rnd_section(&hf),
            .content = content,
            .content_len = clen,
            .trailers = tf.h,
            .n_trailers = rnd_section(&tf),
        };
        size_t need = 0, n = 0;
        struct tp_bhttp_request got;
        CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_encoded_len(&r, &o, &need), 0);
        CU_ASSERT_FATAL(need <= sizeof(buf));
        CU_ASSERT_EQUAL(tp_bhttp_request_encode(&r, &o, buf, sizeof(buf), &n), 0);
        CU_ASSERT_EQUAL(n, need);
        CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, buf, n, &lim), 0);
        CU_ASSERT(requests_equal(&got, &r));
        tp_bhttp_request_clear(&got);

        struct tp_bhttp_info info[2] = {{100, if1.h, rnd_section(&if1)}, {103, NULL, 0}};
        struct tp_bhttp_response s = {
            .informational = info,
            .n_informational = rnd(3),
            .status = (uint16_t)(200 + rnd(400)),
            .headers = hf.h,
            .n_headers = r.n_headers,
            .content = content,
            .content_len = clen,
            .trailers = tf.h,
            .n_trailers = r.n_trailers,
        };
        struct tp_bhttp_response sgot;
        CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_encoded_len(&s, &o, &need), 0);
        CU_ASSERT_FATAL(need <= sizeof(buf));
        CU_ASSERT_EQUAL(tp_bhttp_response_encode(&s, &o, buf, sizeof(buf), &n), 0);
        CU_ASSERT_EQUAL(n, need);
        CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&sgot, buf, n, &lim), 0);
        CU_ASSERT(responses_equal(&sgot, &s));
        tp_bhttp_response_clear(&sgot);
    }
}

int test_tp_bhttp(void)
{
    CU_pSuite s = CU_add_suite("tp_bhttp", NULL, NULL);
    if (!s ||
        !CU_add_test(s, "RFC 9292 known-length request", rfc9292_known_length_request) ||
        !CU_add_test(s, "RFC 9292 indeterminate request with padding",
                     rfc9292_indeterminate_request) ||
        !CU_add_test(s, "RFC 9292 response with 1xx responses",
                     rfc9292_response_with_informational) ||
        !CU_add_test(s, "RFC 9292 known-length response",
                     rfc9292_known_length_response) ||
        !CU_add_test(s, "RFC 9458 Appendix A inner messages", rfc9458_inner_messages) ||
        !CU_add_test(s, "field refusals", field_refusals) ||
        !CU_add_test(s, "control data and framing refusals", control_data_refusals) ||
        !CU_add_test(s, "response refusals", response_refusals) ||
        !CU_add_test(s, "limits", limits) ||
        !CU_add_test(s, "allocation failure", allocation_failure) ||
        !CU_add_test(s, "random round trips", random_round_trips))
        return -1;
    return 0;
}
