#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "fr_route.h"
#include "tp_err.h"

static struct tp_str S(const char *s) {
    struct tp_str t = {s, s ? strlen(s) : 0};
    return t;
}

static int
match(const struct fr_router *r, const char *authority, const char *path)
{
    return fr_router_match(r, S(authority), S(path));
}

static struct fr_router *make(const struct fr_route_rule *rules, size_t n)
{
    struct fr_router *r = NULL;
    CU_ASSERT_EQUAL_FATAL(fr_router_new(rules, n, &r), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

static void exact_host(void)
{
    const struct fr_route_rule rules[] = {{"vote.example", "/", 1}};
    struct fr_router *r = make(rules, 1);
    CU_ASSERT_EQUAL(match(r, "vote.example", "/"), 1);
    CU_ASSERT_EQUAL(match(r, "VOTE.Example", "/x"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example:443", "/"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example.", "/"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example.:8443", "/"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example:", "/"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example..", "/"), -1); /* only one dot is dropped */
    CU_ASSERT_EQUAL(match(r, "a.vote.example", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "vote.examplex", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "xvote.example", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "", "/"), -1);
    CU_ASSERT_EQUAL(fr_router_count(r), 1);
    fr_router_free(r);
}

static void wildcard_host(void)
{
    const struct fr_route_rule rules[] = {{"*.Example.COM.", "/", 7}};
    struct fr_router *r = make(rules, 1);
    CU_ASSERT_EQUAL(match(r, "a.example.com", "/"), 7);
    CU_ASSERT_EQUAL(match(r, "a.b.example.com", "/"), 7);
    CU_ASSERT_EQUAL(match(r, "A.EXAMPLE.COM:443", "/"), 7);
    CU_ASSERT_EQUAL(match(r, "a.example.com.", "/"), 7);
    CU_ASSERT_EQUAL(match(r, "example.com", "/"), -1);
    CU_ASSERT_EQUAL(match(r, ".example.com", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "aexample.com", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "a.example.co", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "a.example.com.evil", "/"), -1);
    fr_router_free(r);
}

static void ipv6_host(void)
{
    const struct fr_route_rule rules[] = {
        {"[::1]", "/", 3}, {"2001:db8::2", "/", 4}, {"127.0.0.1", "/", 5}};
    struct fr_route_rule bad = {"2001:db8::2", "/", 4};
    struct fr_router *r = NULL;
    /* An unbracketed literal with colons reads like "host:port": refused. */
    CU_ASSERT_EQUAL(fr_router_new(&bad, 1, &r), TP_ERR_INVALID);
    CU_ASSERT_PTR_NULL(r);
    struct fr_route_rule ok[] = {rules[0], {"[2001:DB8::2]", "/", 4}, rules[2]};
    r = make(ok, 3);
    CU_ASSERT_EQUAL(match(r, "[::1]:8443", "/"), 3);
    CU_ASSERT_EQUAL(match(r, "[::1]", "/"), 3);
    CU_ASSERT_EQUAL(match(r, "[2001:db8::2]:443", "/"), 4);
    CU_ASSERT_EQUAL(match(r, "127.0.0.1:80", "/"), 5);
    CU_ASSERT_EQUAL(match(r, "[::2]", "/"), -1);
    CU_ASSERT_EQUAL(match(r, "[::1", "/"), -1);
    fr_router_free(r);
}

static void any_host_and_order(void)
{
    const struct fr_route_rule rules[] = {
        {"vote.example", "/api/private/", -1}, /* kept on the cover */
        {"vote.example", "/api/", 1},
        {NULL, "/api/", 2},
        {"vote.example", "/", 3},
        {NULL, NULL, 4},
    };
    struct fr_router *r = make(rules, 5);
    CU_ASSERT_EQUAL(match(r, "vote.example", "/api/x"), 1);
    CU_ASSERT_EQUAL(match(r, "vote.example", "/api/private/x"), -1);
    CU_ASSERT_EQUAL(match(r, "other.example", "/api/private/x"), 2);
    CU_ASSERT_EQUAL(match(r, "other.example", "/api/x"), 2);
    CU_ASSERT_EQUAL(match(r, "", "/api/x"), 2);
    CU_ASSERT_EQUAL(match(r, "vote.example", "/index.html"), 3);
    CU_ASSERT_EQUAL(match(r, "other.example", "/index.html"), 4);
    CU_ASSERT_EQUAL(match(r, NULL, "/"), 4);
    fr_router_free(r);
}

static void path_prefixes(void)
{
    const struct fr_route_rule rules[] = {{NULL, "/api", 1}, {NULL, "/static/", 2}};
    struct fr_router *r = make(rules, 2);
    CU_ASSERT_EQUAL(match(r, "h", "/api"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/x"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api?q=1"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/apix"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/ap"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/API"), -1); /* paths are case-sensitive */
    CU_ASSERT_EQUAL(match(r, "h", "/static/a.css"), 2);
    CU_ASSERT_EQUAL(match(r, "h", "/static/"), 2);
    CU_ASSERT_EQUAL(match(r, "h", "/static"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/static?x"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/"), -1);
    fr_router_free(r);
}

static void raw_paths(void)
{
    const struct fr_route_rule rules[] = {{NULL, "/api/", 1}, {NULL, "/b", 2}};
    struct fr_router *r = make(rules, 2);
    /* No decoding: an encoded prefix is not the prefix. */
    CU_ASSERT_EQUAL(match(r, "h", "/%61pi/x"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api%2Fx"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/b%2Fx"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/a%20b"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/%2F"), 1);
    /* Dot segments, however spelled, could climb out of the prefix at the backend. */
    CU_ASSERT_EQUAL(match(r, "h", "/api/../admin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/./x"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/.."), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/%2e%2e/admin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/.%2E/admin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/..%2Fadmin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/..%5cadmin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/..\\admin"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/b/.."), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/x%00"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/%zz"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/%2"), -1);
    /* Dots that are not whole segments, and dots in the query, are fine. */
    CU_ASSERT_EQUAL(match(r, "h", "/api/...x/a.b/.well-known"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/x?next=/../y"), 1);
    CU_ASSERT_EQUAL(match(r, "h", "/api/x?q=%zz"), 1);
    /* Not origin form. */
    CU_ASSERT_EQUAL(match(r, "h", "*"), -1);
    CU_ASSERT_EQUAL(match(r, "h", "api/x"), -1);
    CU_ASSERT_EQUAL(match(r, "h", ""), -1);
    fr_router_free(r);
}

static void bad_rules(void)
{
    struct fr_router *r = NULL;
    const struct fr_route_rule bad[] = {
        {"", "/", 1},         {"*", "/", 1},   {"*.", "/", 1},    {"a.*.com", "/", 1},
        {"host:443", "/", 1}, {"a b", "/", 1}, {"h", "api", 1},   {"h", "", 1},
        {"h", "/a b", 1},     {"h", "/", -2},  {"*.*.x", "/", 1}, {".", "/", 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(fr_router_new(&bad[i], 1, &r), TP_ERR_INVALID);
        CU_ASSERT_PTR_NULL(r);
    }
    struct fr_route_rule *many = calloc(FR_ROUTE_MAX_RULES + 1, sizeof(*many));
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    for (size_t i = 0; i <= FR_ROUTE_MAX_RULES; i++)
        many[i] = (struct fr_route_rule){NULL, "/", 0};
    CU_ASSERT_EQUAL(fr_router_new(many, FR_ROUTE_MAX_RULES + 1, &r), TP_ERR_TOO_LARGE);
    CU_ASSERT_EQUAL(fr_router_new(many, FR_ROUTE_MAX_RULES, &r), 0);
    fr_router_free(r);
    free(many);
    fr_router_free(NULL);
}

static void empty_router_and_copies(void)
{
    struct fr_router *r = NULL;
    CU_ASSERT_EQUAL_FATAL(fr_router_new(NULL, 0, &r), 0);
    CU_ASSERT_EQUAL(match(r, "h", "/"), -1);
    CU_ASSERT_EQUAL(fr_router_count(r), 0);
    fr_router_free(r);

    /* The router keeps its own copies of the rule strings. */
    char host[] = "Vote.Example", path[] = "/api/";
    struct fr_route_rule rule = {host, path, 9};
    r = make(&rule, 1);
    memset(host, 'x', sizeof(host) - 1);
    memset(path + 1, 'y', sizeof(path) - 2);
    CU_ASSERT_EQUAL(match(r, "vote.example", "/api/v"), 9);
    fr_router_free(r);
}

int test_fr_route(void)
{
    CU_pSuite s = CU_add_suite("fr_route", NULL, NULL);
    if (!s || !CU_add_test(s, "exact host", exact_host) ||
        !CU_add_test(s, "wildcard host", wildcard_host) ||
        !CU_add_test(s, "ipv6 host", ipv6_host) ||
        !CU_add_test(s, "any host and rule order", any_host_and_order) ||
        !CU_add_test(s, "path prefixes", path_prefixes) ||
        !CU_add_test(s, "raw paths and dot segments", raw_paths) ||
        !CU_add_test(s, "bad rules", bad_rules) ||
        !CU_add_test(s, "empty router and copies", empty_router_and_copies))
        return -1;
    return 0;
}
