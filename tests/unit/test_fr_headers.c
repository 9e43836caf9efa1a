#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "fr_headers.h"
#include "tp_err.h"

static struct tp_str S(const char *s) {
    struct tp_str t = {s, strlen(s)};
    return t;
}

static struct tp_header
H(const char *n, const char *v) {
    struct tp_header h = {S(n), S(v)};
    return h;
}

/* Every field that must never reach a backend, whatever its allowlist says. */
static const char *const never[] = {
    "forwarded",
    "x-forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "cf-ipcountry",
    "cf-ray",
    "cf-visitor",
    "cf-worker",
    "fastly-client-ip",
    "fastly-ff",
    "cloudfront-viewer-address",
    "cloudfront-viewer-country",
    "cloudfront-viewer-city",
    "x-amz-cf-id",
    "x-amz-cf-pop",
    "x-appengine-user-ip",
    "x-appengine-city",
    "x-appengine-country",
    "x-cloud-trace-context",
    "traceparent",
    "tracestate",
    "via",
    "cdn-loop",
    "x-client-ip",
    "x-cluster-client-ip",
    "client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-original-forwarded-for",
    "x-envoy-external-address",
    "x-nf-client-connection-ip",
    "fly-client-ip",
    "akamai-origin-hop",
    "x-azure-clientip",
    "x-azure-socketip",
    "x-vercel-forwarded-for",
    "x-vercel-ip-country",
    /* hop-by-hop, and what travels separately */
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "trailer",
    "http2-settings",
    "host",
    "expect",
    "proxy-authorization",
    "proxy-authenticate",
};
#define NNEVER (sizeof(never) / sizeof(never[0]))

static void always_dropped_even_if_allowed(void)
{
    const char *names[NNEVER + 1];
    struct tp_header in[NNEVER + 2], out[NNEVER + 2];
    struct fr_allowlist *a = NULL;

    for (size_t i = 0; i < NNEVER; i++) {
        names[i] = never[i];
        in[i] = H(never[i], "203.0.113.7");
        CU_ASSERT_TRUE(fr_headers_always_dropped(S(never[i])));
    }
    names[NNEVER] = "accept";
    in[NNEVER] = H("accept", "text/html");
    in[NNEVER + 1] = H("x-forwarded-for", "198.51.100.1");
    CU_ASSERT_EQUAL_FATAL(fr_allowlist_new(names, NNEVER + 1, true, &a), 0);
    size_t n = fr_headers_filter_request(a, in, NNEVER + 2, out);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_TRUE(tp_str_eq(out[0].name, "accept"));
    CU_ASSERT_TRUE(tp_str_eq(out[0].value, "text/html"));
    for (size_t i = 0; i < NNEVER; i++)
        CU_ASSERT_FALSE(fr_allowlist_allows(a, S(never[i])));
    fr_allowlist_free(a);
}

static void prefixes_and_case(void)
{
    static const char *const drop[] = {
        "x-forwarded-for",
        "x-forwarded-host",
        "X-Forwarded-For",
        "X-FORWARDED-PROTO",
        "cloudfront-viewer-address",
        "CloudFront-Viewer-Country",
        "x-appengine-user-ip",
        "X-AppEngine-Country",
        "CF-Connecting-IP",
        "Via",
        "Forwarded",
        "Connection",
        "TE",
        "Host",
        ":authority",
        ":path",
        "",
    };
    static const char *const keep[] = {
        "x-forwarded", /* exact name is dropped; checked below */
        "accept",       "x-forward-for", "cloudfront-is-mobile-viewer",
        "forwarded-x",  "x-appengin",    "cfx",
        "viaduct",      "authorization", "cookie",
        "content-type", "x-request-id",  "trace",
    };
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        CU_ASSERT_TRUE(fr_headers_always_dropped(S(drop[i])));
    CU_ASSERT_TRUE(fr_headers_always_dropped(S(keep[0])));
    for (size_t i = 1; i < sizeof(keep) / sizeof(keep[0]); i++)
        CU_ASSERT_FALSE(fr_headers_always_dropped(S(keep[i])));
    /* Names longer than the matcher's lowercase window (32 bytes): prefixes still
       match, exact names cannot, a bare prefix is itself dropped. */
    CU_ASSERT_TRUE(
        fr_headers_always_dropped(S("X-Forwarded-Something-Very-Long-Indeed-1234")));
    CU_ASSERT_TRUE(
        fr_headers_always_dropped(S("CloudFront-Viewer-Address-And-A-Long-Tail-9")));
    CU_ASSERT_TRUE(fr_headers_always_dropped(S("cf-")));
    CU_ASSERT_FALSE(
        fr_headers_always_dropped(S("connection-but-much-longer-than-32-bytes")));
    CU_ASSERT_FALSE(fr_headers_always_dropped(S("x-nf-client-connection-ipx")));
    CU_ASSERT_TRUE(fr_headers_always_dropped(S("X-NF-Client-Connection-IP")));
}

static void order_and_values(void)
{
    static const char *const names[] = {
        "accept",         "accept-encoding",     "accept-language",
        "cache-control",  "content-encoding",    "content-language",
        "content-length", "content-type",        "date",
        "if-match",       "if-modified-since",   "if-none-match",
        "if-range",       "if-unmodified-since", "range",
        "authorization",
    };
    struct fr_allowlist *a = NULL;
    CU_ASSERT_EQUAL_FATAL(
        fr_allowlist_new(names, sizeof(names) / sizeof(names[0]), false, &a), 0);
    struct tp_header in[] = {
        H("user-agent", "Mozilla/5.0"),
        H("content-type", "application/json"),
        H("x-forwarded-for", "203.0.113.7"),
        H("accept", "a/b"),
        H("referer", "https://x.example/"),
        H("cookie", "sid=1"),
        H("accept", "c/d"),
        H("authorization", "Bearer t"),
        H("content-length", "12"),
        H("origin", "https://x.example"),
        H("range", "bytes=0-1"),
        H("sec-ch-ua", "x"),
    };
    struct tp_header out[sizeof(in) / sizeof(in[0])];
    size_t n = fr_headers_filter_request(a, in, sizeof(in) / sizeof(in[0]), out);
    const char *want[][2] = {
        {"content-type", "application/json"},
        {"accept", "a/b"},
        {"accept", "c/d"},
        {"authorization", "Bearer t"},
        {"content-length", "12"},
        {"range", "bytes=0-1"},
    };
    CU_ASSERT_EQUAL_FATAL(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE(tp_str_eq(out[i].name, want[i][0]));
        CU_ASSERT_TRUE(tp_str_eq(out[i].value, want[i][1]));
    }
    /* In place gives the same. */
    n = fr_headers_filter_request(a, in, sizeof(in) / sizeof(in[0]), in);
    CU_ASSERT_EQUAL(n, sizeof(want) / sizeof(want[0]));
    CU_ASSERT_TRUE(tp_str_eq(in[0].name, "content-type"));
    CU_ASSERT_TRUE(tp_str_eq(in[5].value, "bytes=0-1"));
    /* Nothing at all. */
    CU_ASSERT_EQUAL(fr_headers_filter_request(a, in, 0, out), 0);
    fr_allowlist_free(a);
}

static void cookies(void)
{
    const char *with_cookie[] = {"accept", "cookie", "cookie2"};
    struct tp_header in[] = {H("cookie", "sid=1"), H("accept", "x"), H("cookie2", "a"),
                             H("Cookie", "sid=2")};
    struct tp_header out[4];
    struct fr_allowlist *a = NULL;

    /* Listed but not allowed: dropped. */
    CU_ASSERT_EQUAL_FATAL(fr_allowlist_new(with_cookie, 3, false, &a), 0);
    CU_ASSERT_EQUAL(fr_headers_filter_request(a, in, 4, out), 1);
    CU_ASSERT_TRUE(tp_str_eq(out[0].name, "accept"));
    fr_allowlist_free(a);

    /* Allowed, even though not listed; only the current "cookie" name. */
    CU_ASSERT_EQUAL_FATAL(fr_allowlist_new(with_cookie, 1, true, &a), 0);
    CU_ASSERT_EQUAL(fr_headers_filter_request(a, in, 4, out), 2);
    CU_ASSERT_TRUE(tp_str_eq(out[0].name, "cookie"));
    CU_ASSERT_TRUE(tp_str_eq(out[0].value, "sid=1"));
    CU_ASSERT_TRUE(tp_str_eq(out[1].name, "accept"));
    fr_allowlist_free(a);
}

static void allowlist_names(void)
{
    struct fr_allowlist *a = NULL;
    const char *upper[] = {"Accept", "X-Custom", "accept"};
    CU_ASSERT_EQUAL_FATAL(fr_allowlist_new(upper, 3, false, &a), 0);
    CU_ASSERT_TRUE(fr_allowlist_allows(a, S("accept")));
    CU_ASSERT_TRUE(fr_allowlist_allows(a, S("x-custom")));
    /* Names arrive lowercased; a capitalised one is not on the list. */
    CU_ASSERT_FALSE(fr_allowlist_allows(a, S("Accept")));
    CU_ASSERT_FALSE(fr_allowlist_allows(a, S("accep")));
    CU_ASSERT_FALSE(fr_allowlist_allows(a, S("accepts")));
    CU_ASSERT_FALSE(fr_allowlist_allows(a, S("user-agent")));
    fr_allowlist_free(a);

    const char *bad1[] = {"accept", ""};
    const char *bad2[] = {"bad name"};
    const char *bad3[] = {"a:b"};
    const char *bad4[] = {NULL};
    a = NULL;
    CU_ASSERT_EQUAL(fr_allowlist_new(bad1, 2, false, &a), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(fr_allowlist_new(bad2, 1, false, &a), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(fr_allowlist_new(bad3, 1, false, &a), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(fr_allowlist_new(bad4, 1, false, &a), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(fr_allowlist_new(NULL, 1, false, &a), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(fr_allowlist_new(bad1, FR_ALLOWLIST_MAX + 1, false, &a),
                    TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NULL(a);

    /* An empty list lets nothing through. */
    CU_ASSERT_EQUAL_FATAL(fr_allowlist_new(NULL, 0, false, &a), 0);
    CU_ASSERT_FALSE(fr_allowlist_allows(a, S("accept")));
    fr_allowlist_free(a);
    fr_allowlist_free(NULL);
    CU_ASSERT_FALSE(fr_allowlist_allows(NULL, S("accept")));
}

static void response_fields(void)
{
    struct tp_header in[] = {
        H("content-type", "text/html"),
        H("server", "Apache/2.4.1"),
        H("x-powered-by", "PHP/8.1"),
        H("Server", "x"),
        H("cache-control", "no-store"),
        H("via", "1.1 backend"),
        H("connection", "close"),
        H("transfer-encoding", "chunked"),
        H("alt-svc", "h3=\":443\""),
        H("nel", "{}"),
        H("report-to", "{}"),
        H("reporting-endpoints", "a=x"),
        H("x-aspnet-version", "4.0"),
        H("x-aspnetmvc-version", "5"),
        H("set-cookie", "a=b"),
        H("x-forwarded-for", "10.0.0.1"),
        H("cf-ray", "1"),
        H("etag", "\"x\""),
        H("content-length", "5"),
        H("x-amz-cf-id", "y"),
    };
    struct tp_header out[sizeof(in) / sizeof(in[0])];
    size_t n = fr_headers_filter_response(in, sizeof(in) / sizeof(in[0]), out);
    const char *want[] = {"content-type", "cache-control", "set-cookie", "etag",
                          "content-length"};
    CU_ASSERT_EQUAL_FATAL(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_TRUE(tp_str_eq(out[i].name, want[i]));
    CU_ASSERT_TRUE(tp_str_eq(out[1].value, "no-store"));
    CU_ASSERT_EQUAL(fr_headers_filter_response(in, sizeof(in) / sizeof(in[0]), in), n);
    CU_ASSERT_TRUE(tp_str_eq(in[4].name, "content-length"));
}

int test_fr_headers(void)
{
    CU_pSuite s = CU_add_suite("fr_headers", NULL, NULL);
    if (!s ||
        !CU_add_test(s, "always dropped even if allowlisted",
                     always_dropped_even_if_allowed) ||
        !CU_add_test(s, "prefixes and case", prefixes_and_case) ||
        !CU_add_test(s, "order and values kept", order_and_values) ||
        !CU_add_test(s, "cookies", cookies) ||
        !CU_add_test(s, "allowlist names", allowlist_names) ||
        !CU_add_test(s, "response fields", response_fields))
        return -1;
    return 0;
}
