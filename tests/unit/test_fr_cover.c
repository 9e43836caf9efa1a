/* The cover site against the answers a stock nginx 1.22 (Debian 12) gives for the same
   tree and requests ("error_page 404 /404.html; max_ranges 1; absolute_redirect off"),
   minus nginx's signature line. Expected bytes below were taken from such an nginx. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "fr_cover.h"
#include "fr_cover_internal.h"
#include "tp_err.h"

/* 2021-03-04 05:06:07 UTC: ETag "60406abf-<size>". */
#define T0 1614834367
#define LM0 "Thu, 04 Mar 2021 05:06:07 GMT"

#define PAGE(code_text)                                                                  \
    "<html>\r\n<head><title>" code_text                                                  \
    "</title></head>\r\n<body>\r\n<center><h1>" code_text                                \
    "</h1></center>\r\n</body>\r\n</html>\r\n"

static char root[64];
static struct fr_cover_site *site;
static struct fr_cover_response resp;
static unsigned checked;

/* ---- tree helpers ---- */

static int put(const char *rel, const char *content, time_t mtime)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1)
        return -1;
    size_t len = strlen(content);
    if (write(fd, content, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    int rc = futimens(fd, ts);
    close(fd);
    return rc;
}

static int mkd(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return mkdir(path, 0755);
}

static int lnk(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    return symlink(target, path);
}

static int rm_tree_at(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd == -1)
        return unlinkat(parent, name, 0);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            rm_tree_at(dirfd(d), de->d_name);
    closedir(d);
    return unlinkat(parent, name, AT_REMOVEDIR);
}

static int rm_tree(const char *path)
{
    return rm_tree_at(AT_FDCWD, path);
}

static int suite_init(void)
{
    char err[256];
    snprintf(root, sizeof(root), "/tmp/fr_cover_XXXXXX");
    if (!mkdtemp(root))
        return -1;
    /* The same tree the reference nginx served. */
    if (put("index.html", "<html>index</html>\n", T0) ||
        put("a.txt", "hello world\n", T0) || mkd("dir") ||
        put("dir/index.html", "dir index\n", T0) || mkd("dir/sub") ||
        put("dir/sub/f.css", "x", T0) || mkd("emptydir") ||
        put("404.html", "not found page\n", T0) || put("empty.txt", "", T0) ||
        put("m.mjs", "mjs", T0) || put("U.HTML", "upper", T0) ||
        put(".hidden", "dot", T0) || mkd("sp ace") || put("sp ace/q.txt", "q", T0) ||
        mkd("q?d") || put("q?d/index.html", "x", T0) || mkd("\xc3\xa9") || mkd("h#d") ||
        mkd("p%d") || mkd("dir/index.html.d") || mkd("idxdir") ||
        mkd("idxdir/index.html"))
        return -1;
    /* Links: inside the root (served), outside, dangling, a loop; and a FIFO. */
    char outside[128];
    snprintf(outside, sizeof(outside), "%s.outside", root);
    int fd = open(outside, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || write(fd, "secret", 6) != 6)
        return -1;
    close(fd);
    if (lnk("a.txt", "link.txt") || lnk(outside, "out.txt") || lnk("../", "up") ||
        lnk("nowhere", "dangling") || lnk(".", "loop") || lnk("dir", "dirlink"))
        return -1;
    char fifo[512];
    snprintf(fifo, sizeof(fifo), "%s/fifo", root);
    if (mkfifo(fifo, 0644))
        return -1;
    struct fr_cover_opts o = {.root = root};
    if (fr_cover_load(&o, &site, err, sizeof(err)) != 0) {
        fprintf(stderr, "fr_cover_load: %s\n", err);
        return -1;
    }
    return 0;
}

static int suite_clean(void)
{
    char outside[128];
    fr_cover_free(site);
    site = NULL;
    snprintf(outside, sizeof(outside), "%s.outside", root);
    unlink(outside);
    return rm_tree(root);
}

/* ---- request helpers ---- */

static struct tp_str S(const char *s) {
    struct tp_str t = {s, s ? strlen(s) : 0};
    return t;
}

static bool
contains_ci(const void *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    const char *h = hay;
    for (size_t i = 0; h && i + m <= n; i++)
        if (strncasecmp(h + i, needle, m) == 0)
            return true;
    return false;
}

/* Whatever the cover sends must never name the product, nginx, or a version. */
static void check_anonymous(const struct fr_cover_response *r)
{
    static const char *const banned[] = {"zaslon", "nginx", "<hr>", "server", "version"};
    for (size_t b = 0; b < sizeof(banned) / sizeof(banned[0]); b++) {
        for (size_t i = 0; i < r->nheaders; i++) {
            CU_ASSERT_FALSE(
                contains_ci(r->headers[i].name.base, r->headers[i].name.len, banned[b]));
            CU_ASSERT_FALSE(contains_ci(r->headers[i].value.base, r->headers[i].value.len,
                                        banned[b]));
        }
        CU_ASSERT_FALSE(contains_ci(r->body, r->body_len, banned[b]));
    }
    checked++;
}

/* serve(site, method, path, field, value, ..., NULL): the optional fields are named
   by their lowercase header name. */
static const struct fr_cover_response *serve_on(const struct fr_cover_site *s,
                                                const char *method, const char *path, ...)
{
    struct fr_cover_request r = {.method = S(method), .path = S(path)};
    va_list ap;
    va_start(ap, path);
    for (const char *name; (name = va_arg(ap, const char *));) {
        struct tp_str v = S(va_arg(ap, const char *));
        if (!strcmp(name, "if-none-match"))
            r.if_none_match = v;
        else if (!strcmp(name, "if-modified-since"))
            r.if_modified_since = v;
        else if (!strcmp(name, "if-match"))
            r.if_match = v;
        else if (!strcmp(name, "if-unmodified-since"))
            r.if_unmodified_since = v;
        else if (!strcmp(name, "range"))
            r.range = v;
        else if (!strcmp(name, "if-range"))
            r.if_range = v;
        else
            CU_FAIL("unknown field in test");
    }
    va_end(ap);
    memset(&resp, 0xa5, sizeof(resp));
    fr_cover_serve(s, &r, &resp);
    check_anonymous(&resp);
    /* Invariants of every answer. */
    CU_ASSERT(resp.nheaders <= FR_COVER_MAX_HEADERS);
    if (resp.no_body) {
        CU_ASSERT_PTR_NULL(resp.body);
        CU_ASSERT_EQUAL(resp.body_len, 0);
    } else {
        CU_ASSERT_EQUAL(resp.content_length, (int64_t)resp.body_len);
        CU_ASSERT(resp.body_len == 0 || fr_cover_owns(s, resp.body, resp.body_len));
    }
    return &resp;
}

#define serve(...) serve_on(site, __VA_ARGS__)

static const char *hdr(const struct fr_cover_response *r, const char *name)
{
    static char buf[32768];
    for (size_t i = 0; i < r->nheaders; i++)
        if (tp_str_eq(r->headers[i].name, name)) {
            size_t n = r->headers[i].value.len < sizeof(buf) - 1 ? r->headers[i].value.len
                                                                 : sizeof(buf) - 1;
            memcpy(buf, r->headers[i].value.base, n);
            buf[n] = '\0';
            return buf;
        }
    return NULL;
}

/* The header list, in order: "name: value\n" each. */
static const char *hdrs(const struct fr_cover_response *r)
{
    static char buf[65536];
    size_t o = 0;
    for (size_t i = 0; i < r->nheaders && o + 4 < sizeof(buf); i++) {
        int n = snprintf(buf + o, sizeof(buf) - o, "%.*s: %.*s\n",
                         (int)r->headers[i].name.len, r->headers[i].name.base,
                         (int)r->headers[i].value.len, r->headers[i].value.base);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    buf[o < sizeof(buf) ? o : sizeof(buf) - 1] = '\0';
    return buf;
}

static bool body_is(const struct fr_cover_response *r, const char *want)
{
    size_t n = strlen(want);
    return r->body_len == n && (n == 0 || memcmp(r->body, want, n) == 0);
}

#define EXPECT(r, want_status, want_headers, want_body)                                  \
    do {                                                                                 \
        const struct fr_cover_response *r_ = (r);                                        \
        CU_ASSERT_EQUAL(r_->status, want_status);                                        \
        CU_ASSERT_STRING_EQUAL(hdrs(r_), want_headers);                                  \
        if (!body_is(r_, want_body)) {                                                   \
            fprintf(stderr, "\n%s:%d: body %.*s\n", __FILE__, __LINE__,                  \
                    (int)r_->body_len, r_->body ? (const char *)r_->body : "");          \
            CU_FAIL("body differs");                                                     \
        }                                                                                \
    } while (0)

#define A_TXT "content-type: text/plain\nlast-modified: " LM0 "\netag: \"60406abf-c\"\n"
#define NOTFOUND "content-type: text/html\netag: \"60406abf-f\"\n"

/* ---- tests ---- */

static void plain_get_head(void)
{
    EXPECT(serve("GET", "/a.txt", NULL), 200, A_TXT "accept-ranges: bytes\n",
           "hello world\n");
    CU_ASSERT_EQUAL(resp.content_length, 12);
    CU_ASSERT_FALSE(resp.no_body);

    EXPECT(serve("HEAD", "/a.txt", NULL), 200, A_TXT "accept-ranges: bytes\n", "");
    CU_ASSERT_TRUE(resp.no_body);
    CU_ASSERT_EQUAL(resp.content_length, 12);

    EXPECT(serve("GET", "/", NULL), 200,
           "content-type: text/html\nlast-modified: " LM0
           "\netag: \"60406abf-13\"\naccept-ranges: bytes\n",
           "<html>index</html>\n");
    EXPECT(serve("GET", "/empty.txt", NULL), 200,
           "content-type: text/plain\nlast-modified: " LM0
           "\netag: \"60406abf-0\"\naccept-ranges: bytes\n",
           "");
    CU_ASSERT_EQUAL(resp.content_length, 0);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt?x=1&y", NULL)->status, 200);
}

static void content_types(void)
{
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/m.mjs", NULL), "content-type"),
                           "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/U.HTML", NULL), "content-type"),
                           "text/html");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir/sub/f.css", NULL), "content-type"),
                           "text/css");
    EXPECT(serve("GET", "/.hidden", NULL), 200,
           "content-type: application/octet-stream\nlast-modified: " LM0
           "\netag: \"60406abf-3\"\naccept-ranges: bytes\n",
           "dot");
    struct {
        const char *name, *type;
    } t[] = {
        {"a.html", "text/html"},
        {"a.htm", "text/html"},
        {"a.css", "text/css"},
        {"a.js", "application/javascript"},
        {"A.JS", "application/javascript"},
        {"a.json", "application/json"},
        {"a.txt", "text/plain"},
        {"a.xml", "text/xml"},
        {"a.svg", "image/svg+xml"},
        {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.webp", "image/webp"},
        {"favicon.ico", "image/x-icon"},
        {"a.woff", "font/woff"},
        {"a.woff2", "font/woff2"},
        {"a.pdf", "application/pdf"},
        {"a.mp4", "video/mp4"},
        {"a.webm", "video/webm"},
        {"a.wasm", "application/wasm"},
        {"a.avif", "image/avif"},
        {"a.ttf", "application/octet-stream"},
        {"a.map", "application/octet-stream"},
        {"a.mjs", "application/octet-stream"},
        {"noext", "application/octet-stream"},
        {"a.", "application/octet-stream"},
        {".htaccess", "application/octet-stream"},
        {"a.tar.gz", "application/octet-stream"},
        {"a.b.zip", "application/zip"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        CU_ASSERT_STRING_EQUAL(fr_mime_type(t[i].name, strlen(t[i].name)), t[i].type);
}

#define REDIRECT(loc) "content-type: text/html\nlocation: " loc "\n"

static void directories(void)
{
    EXPECT(serve("GET", "/dir", NULL), 301, REDIRECT("/dir/"),
           PAGE("301 Moved Permanently"));
    EXPECT(serve("GET", "/dir?x=1", NULL), 301, REDIRECT("/dir/?x=1"),
           PAGE("301 Moved Permanently"));
    EXPECT(serve("GET", "/dir?", NULL), 301, REDIRECT("/dir/"),
           PAGE("301 Moved Permanently"));
    EXPECT(serve("HEAD", "/dir", NULL), 301, REDIRECT("/dir/"), "");
    CU_ASSERT_EQUAL(resp.content_length, (int64_t)strlen(PAGE("301 Moved Permanently")));
    EXPECT(serve("GET", "/dir/", NULL), 200,
           "content-type: text/html\nlast-modified: " LM0
           "\netag: \"60406abf-a\"\naccept-ranges: bytes\n",
           "dir index\n");
    EXPECT(serve("GET", "/emptydir/", NULL), 403, "content-type: text/html\n",
           PAGE("403 Forbidden"));
    EXPECT(serve("GET", "/nope/", NULL), 404, NOTFOUND, "not found page\n");
    EXPECT(serve("GET", "/a.txt/", NULL), 404, NOTFOUND, "not found page\n");
    EXPECT(serve("GET", "/dir/sub/", NULL), 403, "content-type: text/html\n",
           PAGE("403 Forbidden"));
    /* dir/index.html is a directory here: nginx's internal redirect then sends the
       client on to it with a slash. */
    EXPECT(serve("GET", "/idxdir/", NULL), 301, REDIRECT("/idxdir/index.html/"),
           PAGE("301 Moved Permanently"));
    EXPECT(serve("GET", "/dir/sub", NULL), 301, REDIRECT("/dir/sub/"),
           PAGE("301 Moved Permanently"));
}

static void methods(void)
{
    EXPECT(serve("POST", "/a.txt", NULL), 405, "content-type: text/html\n",
           PAGE("405 Not Allowed"));
    EXPECT(serve("POST", "/nope", NULL), 404, NOTFOUND, "not found page\n");
    EXPECT(serve("POST", "/dir", NULL), 301, REDIRECT("/dir/"),
           PAGE("301 Moved Permanently"));
    EXPECT(serve("POST", "/dir/", NULL), 405, "content-type: text/html\n",
           PAGE("405 Not Allowed"));
    EXPECT(serve("POST", "/emptydir/", NULL), 403, "content-type: text/html\n",
           PAGE("403 Forbidden"));
    static const char *const not_allowed[] = {"PUT",   "DELETE",  "OPTIONS", "PATCH",
                                              "TRACE", "CONNECT", "FOO",     "GE-T",
                                              "G_T",   "PROPFIND"};
    for (size_t i = 0; i < sizeof(not_allowed) / sizeof(not_allowed[0]); i++) {
        EXPECT(serve(not_allowed[i], "/a.txt", NULL), 405, "content-type: text/html\n",
               PAGE("405 Not Allowed"));
        CU_ASSERT_EQUAL(serve(not_allowed[i], "/nope", NULL)->status, 405);
        CU_ASSERT_EQUAL(serve(not_allowed[i], "/", NULL)->status, 405);
        CU_ASSERT_FALSE(resp.no_body);
    }
    static const char *const bad[] = {"foo", "G1T", "", "GET ", "get", "H\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT(serve(bad[i], "/a.txt", NULL), 400, "content-type: text/html\n",
               PAGE("400 Bad Request"));
    /* HEAD errors announce the page but send nothing. */
    EXPECT(serve("HEAD", "/nope", NULL), 404, NOTFOUND, "");
    CU_ASSERT_EQUAL(resp.content_length, 15);
    CU_ASSERT_TRUE(resp.no_body);
    EXPECT(serve("HEAD", "/%zz", NULL), 400, "content-type: text/html\n", "");
    CU_ASSERT_EQUAL(resp.content_length, (int64_t)strlen(PAGE("400 Bad Request")));
}

static void paths(void)
{
    static const char *const bad[] = {
        "/a%00b",
        "/a%zz",
        "/a.txt%",
        "/a.txt%4",
        "/../a.txt",
        "/..",
        "/dir/../..",
        "/%2e%2e/a.txt",
        "a.txt",
        "*",
        "",
        "/a b",
        "/a\x7f",
        "/a\tb",
        "/a.txt?x y",
        "/a\r\nx: y",
        "/dir/%2E%2E/%2e%2e/",
        "/a%0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT(serve("GET", bad[i], NULL), 400, "content-type: text/html\n",
               PAGE("400 Bad Request"));
    static const char *const same[] = {
        "/dir/../a.txt",     "//a.txt",         "/./a.txt",     "/dir/%2e%2e/a.txt",
        "/a.txt#frag",       "/%61.txt",        "/a%2Etxt",     "/dir/sub/../../a.txt",
        "///dir//..//a.txt", "/dir/./../a.txt", "/a.txt?a=%zz",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        EXPECT(serve("GET", same[i], NULL), 200, A_TXT "accept-ranges: bytes\n",
               "hello world\n");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir/.", NULL), "etag"), "\"60406abf-a\"");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir/..", NULL), "etag"), "\"60406abf-13\"");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir%2Fsub", NULL), "location"),
                           "/dir/sub/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir#frag?x", NULL), "location"), "/dir/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/dir?x#frag", NULL), "location"), "/dir/?x");
    /* A decoded '?' or '#' is part of a name, not a delimiter. */
    EXPECT(serve("GET", "/q%3fd/", NULL), 200,
           "content-type: text/html\nlast-modified: " LM0
           "\netag: \"60406abf-1\"\naccept-ranges: bytes\n",
           "x");
    CU_ASSERT_EQUAL(serve("GET", "/sp%20ace/q.txt", NULL)->status, 200);
    CU_ASSERT_TRUE(body_is(&resp, "q"));
}

static void location_escaping(void)
{
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/sp%20ace", NULL), "location"),
                           "/sp%20ace/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/q%3Fd", NULL), "location"), "/q%3Fd/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/h%23d", NULL), "location"), "/h%23d/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/p%25d", NULL), "location"), "/p%25d/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/%C3%A9", NULL), "location"), "/%C3%A9/");
    CU_ASSERT_STRING_EQUAL(hdr(serve("GET", "/%c3%a9?a=%20b", NULL), "location"),
                           "/%C3%A9/?a=%20b");
    /* A decoded CR LF can never split the header. */
    CU_ASSERT_EQUAL(serve("GET", "/dir%0d%0aSet-Cookie:%20a", NULL)->status, 404);

    /* A decoded CR LF in a directory name is escaped, and so is every byte of the
       longest raw path (raw bytes >= 0x80 are allowed in a target): escaping triples
       it and it must still fit. */
    static char path[FR_COVER_TARGET_MAX + 2];
    static char want[3 * FR_COVER_TARGET_MAX + 8];
    static char dname[FR_COVER_TARGET_MAX + 2];
    size_t nd = 8176; /* the longest target a GET may have, less its '/' */
    memset(dname, 0x80, nd);
    dname[nd] = '/';
    dname[nd + 1] = '\0';
    struct fr_cover_entry e[] = {{dname, NULL, 0, 0}, {"a\r\nb/", NULL, 0, 0}};
    struct fr_cover_site *s = NULL;
    char err[128];
    CU_ASSERT_EQUAL_FATAL(fr_cover_load_entries(NULL, e, 2, &s, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(hdr(serve_on(s, "GET", "/a%0D%0Ab?x", NULL), "location"),
                           "/a%0D%0Ab/?x");
    size_t w = 0;
    path[0] = '/';
    memcpy(path + 1, dname, nd);
    path[nd + 1] = '\0';
    want[w++] = '/';
    for (size_t i = 0; i < nd; i++) {
        memcpy(want + w, "%80", 3);
        w += 3;
    }
    want[w++] = '/';
    want[w] = '\0';
    CU_ASSERT_EQUAL(strlen(path), 8177);
    CU_ASSERT_STRING_EQUAL(hdr(serve_on(s, "GET", path, NULL), "location"), want);
    fr_cover_free(s);
}

static void long_targets(void)
{
    /* "GET " + target + " HTTP/1.1\r\n" must fit in 8192 bytes: targets up to 8177. */
    static char path[FR_COVER_TARGET_MAX + 2];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[8178] = '\0';
    EXPECT(serve("GET", path, NULL), 414, "content-type: text/html\n",
           PAGE("414 Request-URI Too Large"));
    CU_ASSERT_EQUAL(serve("POST", path, NULL)->status, 414);
    path[8177] = '\0';
    CU_ASSERT_EQUAL(serve("GET", path, NULL)->status, 404);
    CU_ASSERT_EQUAL(serve("POST", path, NULL)->status, 414);
    CU_ASSERT_EQUAL(serve("PUT", path, NULL)->status, 405);
    CU_ASSERT_EQUAL(serve("HEAD", path, NULL)->status, 414);
    path[8177] = 'a';
    path[FR_COVER_TARGET_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(serve("GET", path, NULL)->status, 414);
    /* A long query on a directory: Location keeps it whole. */
    path[8177] = '\0';
    memcpy(path, "/dir?", 5);
    CU_ASSERT_EQUAL(serve("GET", path, NULL)->status, 301);
    CU_ASSERT_EQUAL(strlen(hdr(&resp, "location")), 8178);
}

#define NM "last-modified: " LM0 "\netag: \"60406abf-c\"\n"

static void conditional(void)
{
    const char *et = "\"60406abf-c\"";
    EXPECT(serve("GET", "/a.txt", "if-none-match", et, NULL), 304, NM, "");
    CU_ASSERT_EQUAL(resp.content_length, -1);
    CU_ASSERT_TRUE(resp.no_body);
    EXPECT(serve("HEAD", "/a.txt", "if-none-match", et, NULL), 304, NM, "");
    EXPECT(serve("GET", "/a.txt", "if-none-match", "W/\"60406abf-c\"", NULL), 304, NM,
           "");
    EXPECT(serve("GET", "/a.txt", "if-none-match", "\"x\", \"60406abf-c\"", NULL), 304,
           NM, "");
    EXPECT(serve("GET", "/a.txt", "if-none-match", "\"x\",W/\"60406abf-c\" ,\"y\"", NULL),
           304, NM, "");
    EXPECT(serve("GET", "/a.txt", "if-none-match", "*", NULL), 304, NM, "");
    EXPECT(serve("GET", "/a.txt", "if-none-match", "  \"60406abf-c\" ", NULL), 304, NM,
           "");
    static const char *const no[] = {"\"60406abf-c\"x",
                                     "**",
                                     "\"60406abf-d\"",
                                     "60406abf-c",
                                     "\"60406ABF-C\"",
                                     "",
                                     "W/",
                                     "\"x\""};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        EXPECT(serve("GET", "/a.txt", "if-none-match", no[i], NULL), 200,
               A_TXT "accept-ranges: bytes\n", "hello world\n");

    /* If-Modified-Since: exact match only, in any of the three formats. */
    static const char *const same[] = {
        LM0,
        "Thursday, 04-Mar-21 05:06:07 GMT",
        "Thu Mar  4 05:06:07 2021",
        "Thu, 04 Mar 2021 05:06:07",
        "Xyz, 04 Mar 2021 05:06:07 XYZ",
        "Thu, 04 Mar 2021 05:06:07 GMTjunk",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        EXPECT(serve("GET", "/a.txt", "if-modified-since", same[i], NULL), 304, NM, "");
    static const char *const other[] = {"Thu, 04 Mar 2021 05:06:08 GMT",
                                        "Thu, 04 Mar 2021 05:06:06 GMT", "garbage", "",
                                        "Fri, 05 Mar 2021 05:06:07 GMT"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        EXPECT(serve("GET", "/a.txt", "if-modified-since", other[i], NULL), 200,
               A_TXT "accept-ranges: bytes\n", "hello world\n");

    /* Both present: both must agree (nginx, not RFC 9110's precedence). */
    CU_ASSERT_EQUAL(
        serve("GET", "/a.txt", "if-none-match", "\"x\"", "if-modified-since", LM0, NULL)
            ->status,
        200);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-none-match", et, "if-modified-since",
                          "Thu, 04 Mar 2021 05:06:08 GMT", NULL)
                        ->status,
                    200);
    CU_ASSERT_EQUAL(
        serve("GET", "/a.txt", "if-none-match", et, "if-modified-since", LM0, NULL)
            ->status,
        304);

    /* Preconditions. */
    const char *const p412 = PAGE("412 Precondition Failed");
    EXPECT(serve("GET", "/a.txt", "if-match", "\"x\"", NULL), 412,
           "content-type: text/html\n", p412);
    EXPECT(serve("GET", "/a.txt", "if-match", "W/\"60406abf-c\"", NULL), 412,
           "content-type: text/html\n", p412);
    EXPECT(serve("GET", "/a.txt", "if-match", "", NULL), 412, "content-type: text/html\n",
           p412);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-match", "*", NULL)->status, 200);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-match", et, NULL)->status, 200);
    CU_ASSERT_EQUAL(
        serve("GET", "/a.txt", "if-match", "\"a\", \"60406abf-c\"", NULL)->status, 200);
    EXPECT(serve("GET", "/a.txt", "if-unmodified-since", "garbage", NULL), 412,
           "content-type: text/html\n", p412);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-unmodified-since",
                          "Thu, 04 Mar 2021 05:06:06 GMT", NULL)
                        ->status,
                    412);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-unmodified-since", LM0, NULL)->status,
                    200);
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "if-unmodified-since",
                          "Sat, 01 Jan 2022 00:00:00 GMT", NULL)
                        ->status,
                    200);
    CU_ASSERT_EQUAL(
        serve("GET", "/a.txt", "if-none-match", et, "if-match", "\"nope\"", NULL)->status,
        412);
    /* Conditionals do not apply to error answers, nor to the 404 page. */
    EXPECT(serve("GET", "/nope", "if-none-match", "*", "if-match", "\"x\"", NULL), 404,
           NOTFOUND, "not found page\n");
}

#define PART(cr)                                                                         \
    "content-type: text/plain\nlast-modified: " LM0                                      \
    "\netag: \"60406abf-c\"\ncontent-range: " cr "\n"
#define UNSAT(size) "content-type: text/html\ncontent-range: bytes */" size "\n"
#define FULL A_TXT "accept-ranges: bytes\n"

static void ranges(void)
{
    const char *const p416 = PAGE("416 Requested Range Not Satisfiable");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-4", NULL), 206, PART("bytes 0-4/12"),
           "hello");
    CU_ASSERT_EQUAL(resp.content_length, 5);
    EXPECT(serve("GET", "/a.txt", "range", "bytes=6-", NULL), 206, PART("bytes 6-11/12"),
           "world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=-3", NULL), 206, PART("bytes 9-11/12"),
           "ld\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes= 0 - 1 ", NULL), 206,
           PART("bytes 0-1/12"), "he");
    EXPECT(serve("GET", "/a.txt", "range", "BYTES=0-1", NULL), 206, PART("bytes 0-1/12"),
           "he");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1,5-2", NULL), 206,
           PART("bytes 0-1/12"), "he");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-", NULL), 206, PART("bytes 0-11/12"),
           "hello world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-100", NULL), 206,
           PART("bytes 0-11/12"), "hello world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=-100", NULL), 206,
           PART("bytes 0-11/12"), "hello world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=11-11", NULL), 206,
           PART("bytes 11-11/12"), "\n");
    EXPECT(serve("HEAD", "/a.txt", "range", "bytes=0-1", NULL), 206, PART("bytes 0-1/12"),
           "");
    CU_ASSERT_EQUAL(resp.content_length, 2);

    static const char *const unsat[] = {
        "bytes=20-30",
        "bytes=abc",
        "bytes=5-2",
        "bytes=0-1,",
        "bytes=0-1,x",
        "bytes=-0",
        "bytes=99999999999999999999-",
        "bytes=0-99999999999999999999",
        "bytes=1",
        "bytes=12-",
        "bytes=--1",
        "bytes=1-2-3",
    };
    for (size_t i = 0; i < sizeof(unsat) / sizeof(unsat[0]); i++)
        EXPECT(serve("GET", "/a.txt", "range", unsat[i], NULL), 416, UNSAT("12"), p416);

    static const char *const whole[] = {
        "bytes=0-1,3-4",  "items=0-1", "bytes=", "bytes=0-0,0-0",
        "bytes=0-11,0-0", "",          "bytes",  "bytes=0-1,3-4,x",
    };
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
        EXPECT(serve("GET", "/a.txt", "range", whole[i], NULL), 200, FULL,
               "hello world\n");

    /* If-Range */
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1", "if-range", "\"zz\"", NULL), 200,
           FULL, "hello world\n");
    EXPECT(
        serve("GET", "/a.txt", "range", "bytes=0-1", "if-range", "\"60406abf-c\"", NULL),
        206, PART("bytes 0-1/12"), "he");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1", "if-range", "W/\"60406abf-c\"",
                 NULL),
           200, FULL, "hello world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1", "if-range", LM0, NULL), 206,
           PART("bytes 0-1/12"), "he");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1", "if-range",
                 "Thu, 04 Mar 2021 05:06:08 GMT", NULL),
           200, FULL, "hello world\n");
    EXPECT(serve("GET", "/a.txt", "range", "bytes=0-1", "if-range", "", NULL), 200, FULL,
           "hello world\n");
    /* An If-Range that fails turns even a bad range into the full body. */
    EXPECT(serve("GET", "/a.txt", "range", "bytes=99-", "if-range", "\"zz\"", NULL), 200,
           FULL, "hello world\n");

    /* Empty file. */
    EXPECT(serve("GET", "/empty.txt", "range", "bytes=0-1", NULL), 200,
           "content-type: text/plain\nlast-modified: " LM0
           "\netag: \"60406abf-0\"\naccept-ranges: bytes\n",
           "");
    EXPECT(serve("GET", "/empty.txt", "range", "bytes=-5", NULL), 200,
           "content-type: text/plain\nlast-modified: " LM0
           "\netag: \"60406abf-0\"\naccept-ranges: bytes\n",
           "");
    EXPECT(serve("GET", "/empty.txt", "range", "bytes=1-", NULL), 416, UNSAT("0"), p416);

    /* The not-modified check comes first. */
    CU_ASSERT_EQUAL(serve("GET", "/a.txt", "range", "bytes=0-1", "if-none-match",
                          "\"60406abf-c\"", NULL)
                        ->status,
                    304);
    CU_ASSERT_EQUAL(
        serve("GET", "/a.txt", "range", "bytes=0-1", "if-match", "\"x\"", NULL)->status,
        412);
    /* Errors and the 404 page ignore Range. */
    EXPECT(serve("GET", "/nope", "range", "bytes=0-1", NULL), 404, NOTFOUND,
           "not found page\n");
    CU_ASSERT_EQUAL(serve("GET", "/dir", "range", "bytes=0-1", NULL)->status, 301);
}

static void range_parser(void)
{
    int64_t s = -1, e = -1;
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=2-5"), 10, &s, &e),
                    FR_COVER_RANGE_PARTIAL);
    CU_ASSERT_EQUAL(s, 2);
    CU_ASSERT_EQUAL(e, 6);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=-4"), 10, &s, &e),
                    FR_COVER_RANGE_PARTIAL);
    CU_ASSERT_EQUAL(s, 6);
    CU_ASSERT_EQUAL(e, 10);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=9223372036854775807-"), 10, &s, &e),
                    FR_COVER_RANGE_UNSATISFIABLE);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=9223372036854775808-"), 10, &s, &e),
                    FR_COVER_RANGE_UNSATISFIABLE);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=0-9223372036854775807"), 10, &s, &e),
                    FR_COVER_RANGE_PARTIAL);
    CU_ASSERT_EQUAL(e, 10);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=0-0"), 0, &s, &e),
                    FR_COVER_RANGE_IGNORE);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=1-1,2-2"), 10, &s, &e),
                    FR_COVER_RANGE_IGNORE);
    CU_ASSERT_EQUAL(fr_cover_parse_range(S("bytes=20-30,2-2"), 10, &s, &e),
                    FR_COVER_RANGE_PARTIAL);
    CU_ASSERT_EQUAL(s, 2);
    /* A value cut short is read as if it ended there, never past its length. */
    struct tp_str cut = {"bytes=1-2,3-4", 9};
    CU_ASSERT_EQUAL(fr_cover_parse_range(cut, 10, &s, &e), FR_COVER_RANGE_PARTIAL);
    CU_ASSERT_EQUAL(e, 3);
}

static void time_parser(void)
{
    int64_t t = 0;
    static const char *const ok[] = {
        LM0,
        "Thursday, 04-Mar-21 05:06:07 GMT",
        "Thu Mar  4 05:06:07 2021",
        "Thu Mar 4 05:06:07 2021",
        "Thu,   04 Mar 2021 05:06:07 GMT",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        t = 0;
        CU_ASSERT_TRUE(fr_cover_parse_time(S(ok[i]), &t));
        CU_ASSERT_EQUAL(t, T0);
    }
    CU_ASSERT_TRUE(fr_cover_parse_time(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t));
    CU_ASSERT_EQUAL(t, 784111777);
    CU_ASSERT_TRUE(fr_cover_parse_time(S("Thu, 01 Jan 1970 00:00:00 GMT"), &t));
    CU_ASSERT_EQUAL(t, 0);
    CU_ASSERT_TRUE(fr_cover_parse_time(S("Sunday, 06-Nov-94 08:49:37 GMT"), &t));
    CU_ASSERT_EQUAL(t, 784111777);
    CU_ASSERT_TRUE(fr_cover_parse_time(S("Tue, 29 Feb 2000 00:00:00 GMT"), &t));
    CU_ASSERT_EQUAL(t, 951782400);
    CU_ASSERT_TRUE(fr_cover_parse_time(S("Wed, 01 Dec 2100 23:59:59 GMT"), &t));
    CU_ASSERT_EQUAL(t, 4131388799LL);
    static const char *const bad[] = {
        "",
        "garbage",
        "Thu, 04 Mar 2021",
        "Thu, 4 Mar 2021 05:06:07 GMT",
        "Thu, 04 Xar 2021 05:06:07 GMT",
        "Thu, 04 Mar 2021 24:06:07 GMT",
        "Thu, 04 Mar 2021 05:60:07 GMT",
        "Thu, 04 Mar 2021 05:06:60 GMT",
        "Thu, 31 Apr 2021 05:06:07 GMT",
        "Mon, 29 Feb 2021 00:00:00 GMT",
        "Mon, 29 Feb 1900 00:00:00 GMT",
        "Thu, 04-Mar-2021 05:06:07 GMT",
        "Thu, 04 Mar 21 05:06:07 GMT",
        "Thu Mar  4 05:06:07",
        "Thu, 04 Mar 2021 5:06:07 GMT",
        "Thu,",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_FALSE(fr_cover_parse_time(S(bad[i]), &t));
    /* Never reads past the given length. */
    struct tp_str cut = {LM0, 20};
    CU_ASSERT_FALSE(fr_cover_parse_time(cut, &t));
}

static void normalizer(void)
{
    struct {
        const char *in, *out, *query;
    } t[] = {
        {"/", "/", NULL},
        {"/a/b/../c", "/a/c", NULL},
        {"/a/./b/", "/a/b/", NULL},
        {"/a/.", "/a/", NULL},
        {"/a/..", "/", NULL},
        {"//a///b", "/a/b", NULL},
        {"/a%2fb", "/a/b", NULL},
        {"/%2e%2E/", NULL, NULL},
        {"/a/%2e%2e", "/", NULL},
        {"/a?b=c#d", "/a", "b=c"},
        {"/a?", "/a", ""},
        {"/a#b?c", "/a", NULL},
        {"/a%3Fb?c", "/a?b", "c"},
        {"/a%23b", "/a#b", NULL},
        {"/a%25b", "/a%b", NULL},
        {"/a/...", "/a/...", NULL},
        {"/a/..b/", "/a/..b/", NULL},
        {"/.a", "/.a", NULL},
        {"/%ff", "/\xff", NULL},
        {"/a/%2e%2e%2f%2e%2e", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[64];
        size_t n = 0;
        struct tp_str q;
        int rc = fr_cover_normalize(S(t[i].in), out, sizeof(out), &n, &q);
        if (!t[i].out) {
            CU_ASSERT_EQUAL(rc, 400);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(n, strlen(t[i].out));
        CU_ASSERT_NSTRING_EQUAL(out, t[i].out, n);
        if (t[i].query) {
            CU_ASSERT_PTR_NOT_NULL(q.base);
            CU_ASSERT_TRUE(tp_str_eq(q, t[i].query));
        } else {
            CU_ASSERT_PTR_NULL(q.base);
        }
    }
    char small[4];
    size_t n;
    struct tp_str q;
    CU_ASSERT_EQUAL(fr_cover_normalize(S("/abcdef"), small, sizeof(small), &n, &q), 414);
}

static void not_found_page(void)
{
    EXPECT(serve("GET", "/nope", NULL), 404, NOTFOUND, "not found page\n");
    CU_ASSERT_EQUAL(resp.content_length, 15);
    /* The page itself is an ordinary file. */
    EXPECT(serve("GET", "/404.html", NULL), 200,
           "content-type: text/html\nlast-modified: " LM0
           "\netag: \"60406abf-f\"\naccept-ranges: bytes\n",
           "not found page\n");

    /* Without a 404 page (or with it turned off), nginx's own. */
    struct fr_cover_site *s = NULL;
    char err[256];
    struct fr_cover_opts o = {.root = root, .not_found = ""};
    CU_ASSERT_EQUAL_FATAL(fr_cover_load(&o, &s, err, sizeof(err)), 0);
    EXPECT(serve_on(s, "GET", "/nope", NULL), 404, "content-type: text/html\n",
           PAGE("404 Not Found"));
    fr_cover_free(s);

    o.not_found = "/dir/sub/f.css";
    CU_ASSERT_EQUAL_FATAL(fr_cover_load(&o, &s, err, sizeof(err)), 0);
    EXPECT(serve_on(s, "GET", "/nope", NULL), 404,
           "content-type: text/css\netag: \"60406abf-1\"\n", "x");
    fr_cover_free(s);

    o.not_found = "dir"; /* a directory is no page */
    CU_ASSERT_EQUAL_FATAL(fr_cover_load(&o, &s, err, sizeof(err)), 0);
    CU_ASSERT_TRUE(body_is(serve_on(s, "GET", "/nope", NULL), PAGE("404 Not Found")));
    fr_cover_free(s);

    o.not_found = NULL;
    o.index = "a.txt";
    CU_ASSERT_EQUAL_FATAL(fr_cover_load(&o, &s, err, sizeof(err)), 0);
    CU_ASSERT_TRUE(body_is(serve_on(s, "GET", "/", NULL), "hello world\n"));
    CU_ASSERT_EQUAL(serve_on(s, "GET", "/dir/", NULL)->status, 403);
    fr_cover_free(s);
}

static void links_and_specials(void)
{
    EXPECT(serve("GET", "/link.txt", NULL), 200, A_TXT "accept-ranges: bytes\n",
           "hello world\n");
    CU_ASSERT_EQUAL(serve("GET", "/out.txt", NULL)->status, 404);
    CU_ASSERT_EQUAL(serve("GET", "/up/", NULL)->status, 404);
    CU_ASSERT_EQUAL(serve("GET", "/dangling", NULL)->status, 404);
    CU_ASSERT_EQUAL(serve("GET", "/fifo", NULL)->status, 404);
    CU_ASSERT_EQUAL(serve("GET", "/loop/", NULL)->status, 404);
    CU_ASSERT_TRUE(body_is(serve("GET", "/dirlink/", NULL), "dir index\n"));
    CU_ASSERT_EQUAL(serve("GET", "/dirlink/sub/f.css", NULL)->status, 200);
    /* Nothing outside the root was read. */
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_FALSE(
            contains_ci(serve("GET", "/out.txt", NULL)->body, resp.body_len, "secret"));
    /* 11 regular files, one more through link.txt and two through dirlink. */
    CU_ASSERT_EQUAL(fr_cover_count(site), 14);
}

static void builtin_site(void)
{
    struct fr_cover_site *s = NULL;
    char err[64];
    time_t before = time(NULL);
    CU_ASSERT_EQUAL_FATAL(fr_cover_load(NULL, &s, err, sizeof(err)), 0);
    const struct fr_cover_response *r = serve_on(s, "GET", "/", NULL);
    CU_ASSERT_EQUAL(r->status, 200);
    CU_ASSERT_STRING_EQUAL(hdr(r, "content-type"), "text/html");
    CU_ASSERT_TRUE(contains_ci(r->body, r->body_len, "<!DOCTYPE html>"));
    CU_ASSERT_TRUE(contains_ci(r->body, r->body_len, "<body>\n</body>"));
    /* Its mtime is the load time, so its ETag differs between gateways. */
    int64_t lm = 0;
    CU_ASSERT_TRUE(fr_cover_parse_time(S(hdr(r, "last-modified")), &lm));
    CU_ASSERT(lm >= (int64_t)before && lm <= (int64_t)time(NULL));
    CU_ASSERT_EQUAL(serve_on(s, "GET", "/index.html", NULL)->status, 200);
    EXPECT(serve_on(s, "GET", "/favicon.ico", NULL), 404, "content-type: text/html\n",
           PAGE("404 Not Found"));
    CU_ASSERT_EQUAL(serve_on(s, "POST", "/", NULL)->status, 405);
    CU_ASSERT_EQUAL(fr_cover_count(s), 1);
    fr_cover_free(s);
    fr_cover_free(NULL);
}

static void load_limits(void)
{
    struct fr_cover_site *s = NULL;
    char err[256];
    struct fr_cover_opts o = {.root = root, .max_file = 11};

    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NULL(s);
    /* Named relative to the root; never the root's own path, never contents. */
    CU_ASSERT_PTR_NULL(strstr(err, root));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "max_file"));
    CU_ASSERT_PTR_NULL(strstr(err, "hello"));

    o.max_file = 0;
    o.max_total = 50;
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "max_total"));

    o.max_total = 0;
    o.max_files = 5;
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 5 files"));

    o.max_files = 0;
    o.index = "a/b";
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_INVALID);
    o.index = "..";
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_INVALID);
    o.index = "";
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_INVALID);
    o.index = NULL;

    char missing[128];
    snprintf(missing, sizeof(missing), "%s/does-not-exist", root);
    o.root = missing;
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cover root"));
    /* A file is not a root. */
    snprintf(missing, sizeof(missing), "%s/a.txt", root);
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, err, sizeof(err)), TP_ERR_IO);
    CU_ASSERT_PTR_NULL(s);
    /* err may be absent. */
    CU_ASSERT_EQUAL(fr_cover_load(&o, &s, NULL, 0), TP_ERR_IO);
}

static void load_depth_and_names(void)
{
    char deep[64], path[1024], err[256];
    struct fr_cover_site *s = NULL;
    snprintf(deep, sizeof(deep), "/tmp/fr_deep_XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(deep));
    size_t o = (size_t)snprintf(path, sizeof(path), "%s", deep);
    for (int i = 0; i < FR_COVER_DEPTH_MAX; i++) {
        o += (size_t)snprintf(path + o, sizeof(path) - o, "/d");
        CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    }
    struct fr_cover_opts opts = {.root = deep};
    CU_ASSERT_EQUAL(fr_cover_load(&opts, &s, err, sizeof(err)), 0);
    fr_cover_free(s);
    s = NULL;
    o += (size_t)snprintf(path + o, sizeof(path) - o, "/d");
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    CU_ASSERT_EQUAL(fr_cover_load(&opts, &s, err, sizeof(err)), TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "deeper"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "d/d/d"));
    CU_ASSERT_PTR_NULL(strstr(err, deep));
    rm_tree(deep);

    /* A hostile file name cannot forge lines in the error. */
    snprintf(deep, sizeof(deep), "/tmp/fr_name_XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(deep));
    snprintf(path, sizeof(path), "%s/evil\nline", deep);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    CU_ASSERT_NOT_EQUAL_FATAL(fd, -1);
    CU_ASSERT_EQUAL(write(fd, "0123456789", 10), 10);
    close(fd);
    opts.max_file = 5;
    CU_ASSERT_EQUAL(fr_cover_load(&opts, &s, err, sizeof(err)), TP_ERR_TOO_LARGE);
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "evil\\x0aline"));
    rm_tree(deep);
}

static void entries(void)
{
    struct fr_cover_site *s = NULL;
    char err[256];
    const uint8_t body[] = "abc";
    struct fr_cover_entry ok[] = {
        {"/x/y/z.txt", body, 3, T0},
        {"x/w.html", body, 2, T0 + 1},
        {"e/", NULL, 0, 0},
        {"n.bin", NULL, 0, -5},
    };
    CU_ASSERT_EQUAL_FATAL(fr_cover_load_entries(NULL, ok, 4, &s, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(fr_cover_count(s), 3);
    EXPECT(serve_on(s, "GET", "/x/y/z.txt", NULL), 200,
           "content-type: text/plain\nlast-modified: " LM0
           "\netag: \"60406abf-3\"\naccept-ranges: bytes\n",
           "abc");
    CU_ASSERT_STRING_EQUAL(hdr(serve_on(s, "GET", "/x/y", NULL), "location"), "/x/y/");
    CU_ASSERT_EQUAL(serve_on(s, "GET", "/x/y/", NULL)->status, 403);
    CU_ASSERT_EQUAL(serve_on(s, "GET", "/e/", NULL)->status, 403);
    CU_ASSERT_EQUAL(serve_on(s, "GET", "/", NULL)->status, 403);
    CU_ASSERT_STRING_EQUAL(hdr(serve_on(s, "GET", "/n.bin", NULL), "etag"), "\"0-0\"");
    /* The site keeps its own copy. */
    CU_ASSERT_FALSE(serve_on(s, "GET", "/x/w.html", NULL)->body == body);
    fr_cover_free(s);

    struct fr_cover_entry bad[][2] = {
        {{"a", body, 1, 0}, {"a", body, 1, 0}},
        {{"a", body, 1, 0}, {"a/b", body, 1, 0}},
        {{"a/", NULL, 0, 0}, {"a", body, 1, 0}},
        {{"a//b", body, 1, 0}, {"c", body, 1, 0}},
        {{"a/./b", body, 1, 0}, {"c", body, 1, 0}},
        {{"../b", body, 1, 0}, {"c", body, 1, 0}},
        {{"", body, 1, 0}, {"c", body, 1, 0}},
        {{"/", body, 1, 0}, {"c", body, 1, 0}},
        {{NULL, body, 1, 0}, {"c", body, 1, 0}},
        {{"c", NULL, 1, 0}, {"d", body, 1, 0}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = NULL;
        CU_ASSERT_EQUAL(fr_cover_load_entries(NULL, bad[i], 2, &s, err, sizeof(err)),
                        TP_ERR_INVALID);
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_NOT_EQUAL(err[0], '\0');
    }
    struct fr_cover_opts o = {.max_file = 2};
    CU_ASSERT_EQUAL(fr_cover_load_entries(&o, ok, 1, &s, err, sizeof(err)),
                    TP_ERR_TOO_LARGE);
    o = (struct fr_cover_opts){.max_total = 4};
    CU_ASSERT_EQUAL(fr_cover_load_entries(&o, ok, 2, &s, err, sizeof(err)),
                    TP_ERR_TOO_LARGE);
    o = (struct fr_cover_opts){.max_files = 3};
    CU_ASSERT_EQUAL(fr_cover_load_entries(&o, ok, 4, &s, err, sizeof(err)),
                    TP_ERR_TOO_LARGE);
}

static void anonymous(void)
{
    /* Every answer above went through check_anonymous. */
    CU_ASSERT(checked > 200);
}

int test_fr_cover(void)
{
    CU_pSuite s = CU_add_suite("fr_cover", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "GET and HEAD", plain_get_head) ||
        !CU_add_test(s, "content types", content_types) ||
        !CU_add_test(s, "directories and index", directories) ||
        !CU_add_test(s, "methods", methods) || !CU_add_test(s, "paths", paths) ||
        !CU_add_test(s, "location escaping", location_escaping) ||
        !CU_add_test(s, "long targets", long_targets) ||
        !CU_add_test(s, "conditional requests", conditional) ||
        !CU_add_test(s, "ranges", ranges) ||
        !CU_add_test(s, "range parser", range_parser) ||
        !CU_add_test(s, "time parser", time_parser) ||
        !CU_add_test(s, "path normaliser", normalizer) ||
        !CU_add_test(s, "404 page", not_found_page) ||
        !CU_add_test(s, "links and special files", links_and_specials) ||
        !CU_add_test(s, "built-in site", builtin_site) ||
        !CU_add_test(s, "load limits", load_limits) ||
        !CU_add_test(s, "load depth and names", load_depth_and_names) ||
        !CU_add_test(s, "entries", entries) ||
        !CU_add_test(s, "nothing names the product", anonymous))
        return -1;
    return 0;
}
