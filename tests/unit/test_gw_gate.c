/* The access gate: the origin secret (several values, wrong length, empty, absent, the
   header name's case, repeated fields), stripping it from forwarded fields, the mount
   (which paths are the edge's, and what the cover answers above and below it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "conf_snapshot.h"
#include "fr_cover.h"
#include "gw_gate.h"
#include "gw_runtime.h"

#define S1 "0123456789abcdef-first-secret"
#define S2 "second~secret~value~with~more~bytes~than~the~first~one"
#define S3 "third-secret-16b"

static char s1[] = S1, s2[] = S2, s3[] = S3;
static char *secrets3[] = {s1, s2, s3, NULL};
static char hdr_xo[] = "x-o";

static struct gw_gate *make(const char *header, char **secrets, size_t n)
{
    struct conf_gate cg = {.header = (char *)header, .secrets = secrets, .nsecrets = n};
    struct gw_gate *g = (struct gw_gate *)(void *)&cg; /* never returned as is */
    CU_ASSERT_EQUAL_FATAL(gw_gate_new(&cg, &g), 0);
    return g;
}

/* One field |name|: |value|, as the transport hands it over. */
static bool check1(const struct gw_gate *g, const char *name, const char *value)
{
    struct tp_header h = {{name, strlen(name)}, {value, strlen(value)}};
    return gw_gate_check(g, &h, 1);
}

static void no_gate_passes_all(void)
{
    struct conf_gate cg = {0};
    struct gw_gate *g = (struct gw_gate *)(void *)&cg;
    CU_ASSERT_EQUAL(gw_gate_new(&cg, &g), 0);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT_TRUE(gw_gate_check(NULL, NULL, 0));
    CU_ASSERT_TRUE(check1(NULL, "x-origin-secret", "anything"));
    struct tp_header hs[2] = {{TP_STR_LIT("a"), TP_STR_LIT("1")},
                              {TP_STR_LIT("b"), TP_STR_LIT("2")}};
    CU_ASSERT_EQUAL(gw_gate_strip(NULL, hs, 2), 2);
    gw_gate_free(NULL);
}

static void several_secrets(void)
{
    struct gw_gate *g = make("x-origin-secret", secrets3, 3);
    CU_ASSERT_TRUE(check1(g, "x-origin-secret", S1));
    CU_ASSERT_TRUE(check1(g, "x-origin-secret", S2));
    CU_ASSERT_TRUE(check1(g, "x-origin-secret", S3));
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", "0123456789abcdef-first-secreT"));
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", "not-any-of-the-three-values"));
    /* one secret's value under another name is nothing */
    CU_ASSERT_FALSE(check1(g, "x-origin-secret2", S1));
    CU_ASSERT_FALSE(check1(g, "origin-secret", S1));
    gw_gate_free(g);
}

static void wrong_length_and_empty(void)
{
    struct gw_gate *g = make("x-origin-secret", secrets3, 3);
    /* prefixes and extensions of an accepted value */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", S1);
    buf[strlen(S1) - 1] = '\0';
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", buf));
    snprintf(buf, sizeof(buf), "%sx", S1);
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", buf));
    snprintf(buf, sizeof(buf), "%s%s", S3, S3);
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", buf));
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", "t"));
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", ""));
    /* an accepted value with a NUL and more after it is not that value */
    struct tp_header h = {TP_STR_LIT("x-origin-secret"), {S3 "\0zz", sizeof(S3) + 2}};
    CU_ASSERT_FALSE(gw_gate_check(g, &h, 1));
    /* a very long value */
    char *big = malloc(70000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    CU_ASSERT_FALSE(check1(g, "x-origin-secret", big));
    free(big);
    gw_gate_free(g);
}

static void header_absent_or_repeated(void)
{
    struct gw_gate *g = make("x-origin-secret", secrets3, 3);
    CU_ASSERT_FALSE(gw_gate_check(g, NULL, 0));
    struct tp_header hs[4] = {
        {TP_STR_LIT("accept"), TP_STR_LIT(S1)},
        {TP_STR_LIT("x-origin-secret"), TP_STR_LIT("client-sent-guess-of-the-secret")},
        {TP_STR_LIT("content-type"), TP_STR_LIT("message/ohttp-req")},
        {TP_STR_LIT("x-origin-secret"), TP_STR_LIT(S2)},
    };
    /* only other fields, even one holding a secret's value */
    CU_ASSERT_FALSE(gw_gate_check(g, hs, 1));
    CU_ASSERT_FALSE(gw_gate_check(g, hs, 3));
    /* the front's field after a client's: every occurrence is tried */
    CU_ASSERT_TRUE(gw_gate_check(g, hs, 4));
    gw_gate_free(g);
}

static void header_name_case(void)
{
    /* conf/ lowercases the name; a gate built from capitals works the same */
    struct gw_gate *g = make("X-Origin-Secret", secrets3, 3);
    CU_ASSERT_TRUE(check1(g, "x-origin-secret", S1));
    CU_ASSERT_TRUE(check1(g, "X-ORIGIN-SECRET", S2));
    CU_ASSERT_TRUE(check1(g, "X-Origin-Secret", S3));
    CU_ASSERT_FALSE(check1(g, "X-Origin-Secret", "wrong-value-of-some-length"));
    gw_gate_free(g);
}

static void one_secret_and_sixteen(void)
{
    char *one[] = {s3, NULL};
    struct gw_gate *g = make("x-o", one, 1);
    CU_ASSERT_TRUE(check1(g, "x-o", S3));
    CU_ASSERT_FALSE(check1(g, "x-o", S1));
    gw_gate_free(g);
    char vals[GW_GATE_MAX_SECRETS + 1][32];
    char *many[GW_GATE_MAX_SECRETS + 2];
    for (int i = 0; i < GW_GATE_MAX_SECRETS + 1; i++) {
        snprintf(vals[i], sizeof(vals[0]), "rotation-value-%02d", i);
        many[i] = vals[i];
    }
    many[GW_GATE_MAX_SECRETS + 1] = NULL;
    g = make("x-o", many, GW_GATE_MAX_SECRETS);
    for (int i = 0; i < GW_GATE_MAX_SECRETS; i++)
        CU_ASSERT_TRUE(check1(g, "x-o", vals[i]));
    CU_ASSERT_FALSE(check1(g, "x-o", "rotation-value-16"));
    gw_gate_free(g);
    /* more than the gate holds, or none: refused (conf/ refuses them first) */
    struct conf_gate cg = {
        .header = hdr_xo, .secrets = many, .nsecrets = GW_GATE_MAX_SECRETS + 1};
    struct gw_gate *untouched = (struct gw_gate *)(void *)&cg;
    CU_ASSERT_EQUAL(gw_gate_new(&cg, &untouched), GW_GATE_ERR_INVALID);
    CU_ASSERT_PTR_EQUAL(untouched, (void *)&cg);
    cg.nsecrets = 0;
    CU_ASSERT_EQUAL(gw_gate_new(&cg, &untouched), GW_GATE_ERR_INVALID);
}

static void strip_everywhere(void)
{
    struct gw_gate *g = make("x-origin-secret", secrets3, 3);
    struct tp_header hs[5] = {
        {TP_STR_LIT("x-origin-secret"), TP_STR_LIT(S1)},
        {TP_STR_LIT("accept"), TP_STR_LIT("a")},
        {TP_STR_LIT("X-Origin-Secret"), TP_STR_LIT(S2)},
        {TP_STR_LIT("x-origin-secrets"), TP_STR_LIT("kept: another field")},
        {TP_STR_LIT("date"), TP_STR_LIT("d")},
    };
    size_t n = gw_gate_strip(g, hs, 5);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_TRUE(tp_str_eq(hs[0].name, "accept"));
    CU_ASSERT_TRUE(tp_str_eq(hs[1].name, "x-origin-secrets"));
    CU_ASSERT_TRUE(tp_str_eq(hs[2].name, "date"));
    gw_gate_free(g);
}

/* ---- the mount ---- */

static bool local(const struct gw_runtime *rt, const char *path, const char *want)
{
    struct tp_str l;
    bool in = gw_gate_local_path(rt, (struct tp_str){path, strlen(path)}, &l);
    if (want)
        return in && l.len == strlen(want) && memcmp(l.base, want, l.len) == 0;
    return !in && l.len == strlen(path) && l.base == path;
}

static void mount_paths(void)
{
    struct conf_snapshot snap = {0};
    struct gw_runtime rt = {0};
    rt.snap = &snap;
    CU_ASSERT_TRUE(local(&rt, "/s/", "/s/"));
    CU_ASSERT_TRUE(local(&rt, "*", "*"));
    char mount[] = "/edge";
    snap.mount = mount;
    CU_ASSERT_TRUE(local(&rt, "/edge/s/", "/s/"));
    CU_ASSERT_TRUE(local(&rt, "/edge/", "/"));
    CU_ASSERT_TRUE(local(&rt, "/edge/index.html?x=1", "/index.html?x=1"));
    CU_ASSERT_TRUE(local(&rt, "/edge//x", "//x"));
    CU_ASSERT_TRUE(local(&rt, "/edge", NULL));
    CU_ASSERT_TRUE(local(&rt, "/edge?x", NULL));
    CU_ASSERT_TRUE(local(&rt, "/edges/x", NULL));
    CU_ASSERT_TRUE(local(&rt, "/Edge/x", NULL));
    CU_ASSERT_TRUE(local(&rt, "/%65dge/x", NULL));
    CU_ASSERT_TRUE(local(&rt, "/s/", NULL));
    CU_ASSERT_TRUE(local(&rt, "/", NULL));
    CU_ASSERT_TRUE(local(&rt, "*", NULL));
}

static const char *field(const struct fr_cover_response *r, const char *name)
{
    static char v[512];
    for (size_t i = 0; i < r->nheaders; i++)
        if (tp_str_eq(r->headers[i].name, name)) {
            snprintf(v, sizeof(v), "%.*s", (int)r->headers[i].value.len,
                     r->headers[i].value.base);
            return v;
        }
    return NULL;
}

static int serve(const struct fr_cover_site *site, const char *method, const char *path,
                 const char *prefix, bool outside, struct fr_cover_response *out)
{
    struct fr_cover_request r = {
        .method = {method, strlen(method)},
        .path = {path, strlen(path)},
        .prefix =
            prefix ? (struct tp_str){prefix, strlen(prefix)} : (struct tp_str){NULL, 0},
        .outside = outside,
    };
    fr_cover_serve(site, &r, out);
    return out->status;
}

static void mount_cover(void)
{
    static const uint8_t page[] = "<p>menu</p>";
    static const uint8_t nf[] = "<p>not here</p>";
    struct fr_cover_entry e[] = {
        {"index.html", page, sizeof(page) - 1, 1614834367},
        {"menu/index.html", page, sizeof(page) - 1, 1614834367},
        {"404.html", nf, sizeof(nf) - 1, 1614834367},
    };
    struct fr_cover_opts o = {0};
    struct fr_cover_site *site = NULL;
    char err[128];
    CU_ASSERT_EQUAL_FATAL(fr_cover_load_entries(&o, e, 3, &site, err, sizeof(err)), 0);
    struct fr_cover_response *r = malloc(sizeof(*r));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    /* below the mount: the directory redirect carries the prefix back */
    CU_ASSERT_EQUAL(serve(site, "GET", "/menu", "/edge", false, r), 301);
    CU_ASSERT_STRING_EQUAL(field(r, "location"), "/edge/menu/");
    CU_ASSERT_EQUAL(serve(site, "GET", "/menu?a=1&b", "/edge", false, r), 301);
    CU_ASSERT_STRING_EQUAL(field(r, "location"), "/edge/menu/?a=1&b");
    CU_ASSERT_EQUAL(serve(site, "POST", "/m%65nu", "/edge", false, r), 301);
    CU_ASSERT_STRING_EQUAL(field(r, "location"), "/edge/menu/");
    /* not mounted: as before */
    CU_ASSERT_EQUAL(serve(site, "GET", "/menu", NULL, false, r), 301);
    CU_ASSERT_STRING_EQUAL(field(r, "location"), "/menu/");
    CU_ASSERT_EQUAL(serve(site, "GET", "/", "/edge", false, r), 200);
    CU_ASSERT_EQUAL(r->body_len, sizeof(page) - 1);
    /* outside the mount: a path that names nothing, after the method and target
       checks, with the site's own 404 page */
    CU_ASSERT_EQUAL(serve(site, "GET", "/index.html", NULL, true, r), 404);
    CU_ASSERT_EQUAL(r->body_len, sizeof(nf) - 1);
    CU_ASSERT_EQUAL(serve(site, "GET", "/menu", NULL, true, r), 404);
    CU_ASSERT_PTR_NULL(field(r, "location"));
    CU_ASSERT_EQUAL(serve(site, "HEAD", "/", NULL, true, r), 404);
    CU_ASSERT_TRUE(r->no_body);
    CU_ASSERT_EQUAL(serve(site, "PUT", "/index.html", NULL, true, r), 405);
    CU_ASSERT_EQUAL(serve(site, "GET", "/%zz", NULL, true, r), 400);
    CU_ASSERT_EQUAL(serve(site, "get", "/", NULL, true, r), 400);
    /* the request line nginx sees includes the prefix */
    size_t n = FR_COVER_TARGET_MAX - 12 - 3 - 4; /* fits, but not with "/edge" */
    char *longp = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longp);
    memset(longp, 'a', n);
    longp[0] = '/';
    longp[n] = '\0';
    CU_ASSERT_EQUAL(serve(site, "GET", longp, NULL, false, r), 404);
    CU_ASSERT_EQUAL(serve(site, "GET", longp, "/edge", false, r), 414);
    longp[n - 5] = '\0';
    CU_ASSERT_EQUAL(serve(site, "GET", longp, "/edge", false, r), 404);
    free(longp);
    free(r);
    fr_cover_free(site);
}

int test_gw_gate(void)
{
    CU_pSuite s = CU_add_suite("gw_gate", NULL, NULL);
    if (!s || !CU_add_test(s, "no gate: everything passes", no_gate_passes_all) ||
        !CU_add_test(s, "several accepted values", several_secrets) ||
        !CU_add_test(s, "wrong length, empty, long", wrong_length_and_empty) ||
        !CU_add_test(s, "header absent or repeated", header_absent_or_repeated) ||
        !CU_add_test(s, "case of the header name", header_name_case) ||
        !CU_add_test(s, "one value and sixteen", one_secret_and_sixteen) ||
        !CU_add_test(s, "stripped wherever forwarded", strip_everywhere) ||
        !CU_add_test(s, "mount: the edge's paths", mount_paths) ||
        !CU_add_test(s, "mount: the cover above and below it", mount_cover))
        return -1;
    return 0;
}
