/* The upstream client's response parser (transport/tp_upstream_resp.c), sans I/O: each
   rule with an input it refuses and one it accepts, every input fed whole, one byte at
   a time and in odd pieces with the same outcome. */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>

#include "unit_suites.h"

#include "tp_err.h"
#include "tp_upstream_internal.h"

/* The case tables name only what each case is about; the rest is zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define INCOMPLETE 1 /* expected rv: no error, response not complete yet */

struct outcome {
    int rv;
    int status;
    int64_t content_length;
    bool keep_alive, no_body;
    size_t used; /* bytes the response took; with body, not compared after an error */
    size_t nfields;
    char fields[512]; /* "name=value;" for each field */
    char body[512];
    size_t blen;
};

/* Feeds |wire| |step| bytes at a time (0: whole), then EOF if asked and still going. */
static void run(const char *wire, size_t len, size_t step, bool head, size_t max_header,
                int64_t max_body, bool eof, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    struct tp_upstream_resp r;
    CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_init(&r, max_header, max_body, head), 0);
    int rv = 0;
    size_t off = 0;
    while (off < len && !r.done) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        size_t used = 7;
        rv = tp_upstream_resp_feed(&r, wire + off, n, &used);
        if (rv != 0) {
            /* Errors consume nothing and stay. */
            CU_ASSERT_EQUAL(used, 0);
            CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, "H", 1, &used), rv);
            CU_ASSERT_EQUAL(tp_upstream_resp_eof(&r), rv);
            break;
        }
        CU_ASSERT_TRUE(used == n || r.done);
        off += used;
        size_t bl = evbuffer_get_length(r.body);
        if (o->blen + bl < sizeof(o->body))
            evbuffer_remove(r.body, o->body + o->blen, bl);
        o->blen += bl;
    }
    if (rv == 0 && !r.done)
        rv = eof ? tp_upstream_resp_eof(&r) : INCOMPLETE;
    o->rv = rv;
    o->used = off;
    if (r.head_done) {
        o->status = r.status;
        o->content_length = r.content_length;
        o->no_body = r.no_body;
        o->nfields = r.nfields;
        size_t fl = 0;
        for (size_t i = 0; i < r.nfields; i++) {
            int k = snprintf(o->fields + fl, sizeof(o->fields) - fl, "%.*s=%.*s;",
                             (int)r.view[i].name.len, r.view[i].name.base,
                             (int)r.view[i].value.len, r.view[i].value.base);
            if (k < 0 || (size_t)k >= sizeof(o->fields) - fl)
                break;
            fl += (size_t)k;
        }
    }
    if (rv == 0) {
        CU_ASSERT_TRUE(r.done);
        o->keep_alive = r.keep_alive;
        size_t used = 1;
        CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, "x", 1, &used), TP_ERR_STATE);
        CU_ASSERT_EQUAL(used, 0);
    }
    tp_upstream_resp_clear(&r);
}

struct rcase {
    const char *name;
    const char *wire;
    int rv; /* 0, INCOMPLETE or TP_ERR_* */
    int status;
    const char *body;
    bool keep_alive;
    const char *fields; /* NULL: not checked */
    bool head, eof;
    size_t max_header; /* 0: 4096 */
    int64_t max_body;  /* 0: no cap */
    size_t len;        /* 0: strlen(wire) */
};

/* Runs |c| whole, byte by byte and in pieces of 2, 3, 7 and 64 bytes: each must give the
   expected outcome, and all the same one. */
static void check_case(const struct rcase *c)
{
    size_t len = c->len ? c->len : strlen(c->wire);
    size_t mh = c->max_header ? c->max_header : 4096;
    int64_t mb = c->max_body ? c->max_body : -1;
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};
    struct outcome first;
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct outcome o;
        run(c->wire, len, steps[s], c->head, mh, mb, c->eof, &o);
        bool ok = o.rv == c->rv;
        if (ok && c->rv == 0) {
            ok = o.status == c->status && o.keep_alive == c->keep_alive &&
                 o.blen == strlen(c->body) && memcmp(o.body, c->body, o.blen) == 0 &&
                 (!c->fields || strcmp(o.fields, c->fields) == 0);
        }
        if (s == 0)
            first = o;
        else
            ok = ok && o.rv == first.rv && o.status == first.status &&
                 o.keep_alive == first.keep_alive &&
                 (o.rv < 0 || (o.used == first.used && o.blen == first.blen &&
                               memcmp(o.body, first.body, o.blen) == 0)) &&
                 o.content_length == first.content_length &&
                 strcmp(o.fields, first.fields) == 0;
        if (!ok)
            fprintf(stderr,
                    "\n  case \"%s\", step %zu: rv %d status %d ka %d body %zu "
                    "fields %s\n",
                    c->name, steps[s], o.rv, o.status, o.keep_alive, o.blen, o.fields);
        CU_ASSERT_TRUE(ok);
    }
}

static void run_cases(const struct rcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_case(&cases[i]);
}

#define OK200 "HTTP/1.1 200 OK\r\n"
#define CL0 "Content-Length: 0\r\n\r\n"

static void status_line(void)
{
    static const struct rcase cases[] = {
        {"plain", OK200 CL0, 0, 200, "", true, "content-length=0;"},
        {"no reason phrase", "HTTP/1.1 200\r\n" CL0, 0, 200, "", true},
        {"empty reason phrase", "HTTP/1.1 200 \r\n" CL0, 0, 200, "", true},
        {"reason with HTAB and obs-text", "HTTP/1.1 299 a\tb \xe9\r\n" CL0, 0, 299, "",
         true},
        {"HTTP/1.9", "HTTP/1.9 200 OK\r\n" CL0, 0, 200, "", true},
        {"code 999", "HTTP/1.1 999 X\r\n" CL0, 0, 999, "", true},
        {"letter in code", "HTTP/1.1 2x0 OK\r\n" CL0, TP_ERR_PROTO},
        {"four digits", "HTTP/1.1 0200 OK\r\n" CL0, TP_ERR_PROTO},
        {"two digits", "HTTP/1.1 20 OK\r\n" CL0, TP_ERR_PROTO},
        {"below 100", "HTTP/1.1 099 X\r\n" CL0, TP_ERR_PROTO},
        {"101 refused", "HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n", TP_ERR_PROTO},
        {"two spaces", "HTTP/1.1  200 OK\r\n" CL0, TP_ERR_PROTO},
        {"no space after code", "HTTP/1.1 200OK\r\n" CL0, TP_ERR_PROTO},
        {"HTTP/2", "HTTP/2.0 200 OK\r\n" CL0, TP_ERR_PROTO},
        {"HTTP/1.x", "HTTP/1.x 200 OK\r\n" CL0, TP_ERR_PROTO},
        {"lowercase", "http/1.1 200 OK\r\n" CL0, TP_ERR_PROTO},
        {"control in reason", "HTTP/1.1 200 O\x01K\r\n" CL0, TP_ERR_PROTO},
        {"DEL in reason", "HTTP/1.1 200 O\x7fK\r\n" CL0, TP_ERR_PROTO},
        {"empty line first", "\r\n" OK200 CL0, TP_ERR_PROTO},
        {"garbage, refused at once", "\x16\x03\x01", TP_ERR_PROTO},
        {"truncated status line", "HTTP/1.1 20", INCOMPLETE},
        {"truncated at EOF", "HTTP/1.1 200 OK\r\nA: b", TP_ERR_CLOSED, .eof = true},
        {"nothing at EOF", "", TP_ERR_CLOSED, .eof = true},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void fields(void)
{
    static const struct rcase cases[] = {
        {"names lowercased, values trimmed",
         OK200 "X-A_b.c~!: \t v1 \t\r\nEmpty:\r\nTab: a\tb\r\nObs: \x80\xff\r\n" CL0, 0,
         200, "", true, "x-a_b.c~!=v1;empty=;tab=a\tb;obs=\x80\xff;content-length=0;"},
        {"space before colon", OK200 "Content-Length : 0\r\n\r\n", TP_ERR_PROTO},
        {"non-token in name", OK200 "X@Y: 1\r\n" CL0, TP_ERR_PROTO},
        {"empty name", OK200 ": x\r\n" CL0, TP_ERR_PROTO},
        {"no colon", OK200 "Foo\r\n" CL0, TP_ERR_PROTO},
        {"control in value",
         OK200 "X-A: a\x01"
               "b\r\n" CL0,
         TP_ERR_PROTO},
        {"NUL in value", OK200 "X-A: a\0b\r\n" CL0, TP_ERR_PROTO, .len = 30},
        {"DEL in value",
         OK200 "X-A: a\x7f"
               "b\r\n" CL0,
         TP_ERR_PROTO},
        {"control deep in a long value",
         OK200 "X-A: aaaaaaaaaaaaaaaaaaaaaaaa\x1f"
               "aaaaaaaa\r\n" CL0,
         TP_ERR_PROTO},
        {"bare CR in value", OK200 "X-A: a\rb\r\n" CL0, TP_ERR_PROTO},
        {"bare LF ends a field line", OK200 "X-A: a\n" CL0, TP_ERR_PROTO},
        {"bare LF ends the status line", "HTTP/1.1 200 OK\n" CL0, TP_ERR_PROTO},
        {"bare LF ends the head", OK200 "Content-Length: 0\r\n\n", TP_ERR_PROTO},
        {"obs-fold, SP", OK200 "X-A: a\r\n b\r\n" CL0, TP_ERR_PROTO},
        {"obs-fold, HTAB", OK200 "X-A: a\r\n\tb\r\n" CL0, TP_ERR_PROTO},
        {"blank line start", OK200 " X-A: a\r\n" CL0, TP_ERR_PROTO},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void framing(void)
{
    static const struct rcase cases[] = {
        {"content-length", OK200 "Content-Length: 5\r\n\r\nhelloNEXT", 0, 200, "hello",
         true},
        {"content-length, trailing SP and leading zeros",
         OK200 "Content-Length:  005  \r\n\r\nhello", 0, 200, "hello", true},
        {"content-length, trailing HTAB", OK200 "Content-Length: 5\t\r\n\r\nhello",
         TP_ERR_PROTO},
        {"content-length, sign", OK200 "Content-Length: +5\r\n\r\nhello", TP_ERR_PROTO},
        {"content-length, negative", OK200 "Content-Length: -1\r\n\r\n", TP_ERR_PROTO},
        {"content-length, hex", OK200 "Content-Length: 0x5\r\n\r\nhello", TP_ERR_PROTO},
        {"content-length, list", OK200 "Content-Length: 5, 5\r\n\r\nhello", TP_ERR_PROTO},
        {"content-length, empty", OK200 "Content-Length:\r\n\r\n", TP_ERR_PROTO},
        {"content-length, overflow", OK200 "Content-Length: 99999999999999999999\r\n\r\n",
         TP_ERR_PROTO},
        {"content-length, two equal",
         OK200 "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", TP_ERR_PROTO},
        {"content-length, two different",
         OK200 "Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc", TP_ERR_PROTO},
        {"content-length and chunked",
         OK200 "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"chunked then content-length",
         OK200 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"chunked, any case, trailing SP",
         OK200 "Transfer-Encoding: ChunKed  \r\n\r\n2\r\nab\r\n0\r\n\r\n", 0, 200, "ab",
         true},
        {"gzip", OK200 "Transfer-Encoding: gzip\r\n\r\nxx", TP_ERR_PROTO, .eof = true},
        {"gzip, chunked", OK200 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"chunked, trailing HTAB", OK200 "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"two transfer-encoding fields",
         OK200
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"until close", OK200 "X: y\r\n\r\nuntil close", 0, 200, "until close", false,
         .eof = true},
        {"until close, not yet", OK200 "X: y\r\n\r\nuntil close", INCOMPLETE},
        {"cut short", OK200 "Content-Length: 9\r\n\r\nshort", TP_ERR_CLOSED, .eof = true},
        {"HEAD", OK200 "Content-Length: 5\r\n\r\nNEXT", 0, 200, "", true, .head = true},
        {"204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nNEXT", 0,
         204, "", true},
        {"304 has no body", "HTTP/1.1 304 NM\r\nContent-Length: 7\r\n\r\nNEXT", 0, 304,
         "", true},
        {"interim responses skipped",
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: "
         "</s>\r\n\r\n" OK200 "Content-Length: 2\r\n\r\nok",
         0, 200, "ok", true, "content-length=2;"},
        {"bad content-length in an interim response",
         "HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\n" OK200 CL0, TP_ERR_PROTO},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

#define CHUNKED OK200 "Transfer-Encoding: chunked\r\n\r\n"

static void chunked(void)
{
    static const struct rcase cases[] = {
        {"chunks, extensions, trailers",
         CHUNKED
         "3;a=b;c\r\nabc\r\nA ; x=\"y\"\r\n0123456789\r\n00\r\nT: x\r\nU: y\r\n\r\n"
         "NEXT",
         0, 200, "abc0123456789", true},
        {"hex digits in any case",
         CHUNKED "a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n", 0, 200,
         "01234567890123456789a", true},
        {"no size", CHUNKED "\r\nabc\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"bad hex", CHUNKED "zz\r\nhello\r\n", TP_ERR_PROTO},
        {"size then junk", CHUNKED "5x\r\nhello\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"size then HTAB", CHUNKED "5\t;x\r\nhello\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"size then SP then junk", CHUNKED "5 x\r\nhello\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"control in an extension", CHUNKED "5;a\x01\r\nhello\r\n0\r\n\r\n",
         TP_ERR_PROTO},
        {"bare LF in an extension", CHUNKED "5;a\nb\r\nhello\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"bare LF after the size", CHUNKED "5\nhello\r\n0\r\n\r\n", TP_ERR_PROTO},
        {"size overflow", CHUNKED "10000000000000000\r\n", TP_ERR_PROTO},
        {"no CRLF after data", CHUNKED "5\r\nhelloXX0\r\n\r\n", TP_ERR_PROTO},
        {"CR only after data", CHUNKED "5\r\nhello\rX0\r\n\r\n", TP_ERR_PROTO},
        {"bad trailer name", CHUNKED "0\r\nBad Name: x\r\n\r\n", TP_ERR_PROTO},
        {"control in a trailer", CHUNKED "0\r\nT: \x02\r\n\r\n", TP_ERR_PROTO},
        {"obs-fold in trailers", CHUNKED "0\r\nT: x\r\n y\r\n\r\n", TP_ERR_PROTO},
        {"content-length in trailers", CHUNKED "0\r\nContent-Length: 5\r\n\r\n",
         TP_ERR_PROTO},
        {"transfer-encoding in trailers",
         CHUNKED "0\r\nTransfer-Encoding: chunked\r\n\r\n", TP_ERR_PROTO},
        {"connection: close in trailers", CHUNKED "0\r\nConnection: close\r\n\r\n", 0,
         200, "", false},
        {"cut in a chunk", CHUNKED "5\r\nhel", TP_ERR_CLOSED, .eof = true},
        {"cut in trailers", CHUNKED "0\r\nT: x\r\n", TP_ERR_CLOSED, .eof = true},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void keep_alive(void)
{
    static const struct rcase cases[] = {
        {"1.1 default", OK200 CL0, 0, 200, "", true},
        {"1.1 close", OK200 "Connection: close\r\n" CL0, 0, 200, "", false},
        {"1.1 close in a list, any case", OK200 "Connection: foo,  CLOSE  \r\n" CL0, 0,
         200, "", false},
        {"1.1 closed", OK200 "Connection: closed\r\n" CL0, 0, 200, "", true},
        /* Every word of the list counts, whatever separates it (these four were
           missed while the parser copied libhttp-parser's matcher). */
        {"1.1 close after a broken match", OK200 "Connection: cl,close\r\n" CL0, 0, 200,
         "", false},
        {"1.1 close after HTAB", OK200 "Connection: x,\tclose\r\n" CL0, 0, 200, "",
         false},
        {"1.1 close then a word", OK200 "Connection: close x\r\n" CL0, 0, 200, "", false},
        {"1.1 close then HTAB", OK200 "Connection: close\t\r\n" CL0, 0, 200, "", false},
        {"1.1 close after SP", OK200 "Connection: x, close\r\n" CL0, 0, 200, "", false},
        {"1.1 close among empty elements", OK200 "Connection: ,,close,\r\n" CL0, 0, 200,
         "", false},
        {"1.1 close inside a word", OK200 "Connection: xclose, close-x\r\n" CL0, 0, 200,
         "", true},
        {"1.1 proxy-connection close", OK200 "Proxy-Connection: close\r\n" CL0, 0, 200,
         "", false},
        {"1.0 default", "HTTP/1.0 200 OK\r\n" CL0, 0, 200, "", false},
        {"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n" CL0, 0, 200,
         "", true},
        {"1.0 keep-alive after HTAB",
         "HTTP/1.0 200 OK\r\nConnection: x,\tKEEP-ALIVE\r\n" CL0, 0, 200, "", true},
        {"1.0 keep-alive then a word",
         "HTTP/1.0 200 OK\r\nProxy-Connection: keep-alive x\r\n" CL0, 0, 200, "", true},
        {"1.0 keep-alive, close in another field",
         "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: x\tClose\r\n" CL0, 0,
         200, "", false},
        {"1.0 keep-alive and close",
         "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n" CL0, 0, 200, "", false},
        {"1.0 keep-alive, until close",
         "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody", 0, 200, "body", false,
         .eof = true},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void caps(void)
{
    static char wide[1200];
    int n = snprintf(wide, sizeof(wide), "%sX:", OK200);
    memset(wide + n, ' ', 400);
    memcpy(wide + n + 400, "a\r\n" CL0, sizeof("a\r\n" CL0));
    static char longext[600];
    n = snprintf(longext, sizeof(longext), "%s5;", CHUNKED);
    memset(longext + n, 'e', 400);
    memcpy(longext + n + 400, "\r\nhello\r\n0\r\n\r\n", sizeof("\r\nhello\r\n0\r\n\r\n"));
    struct rcase cases[] = {
        /* Reason 2 + name 2 + value 4 = 8 of 8, then one byte too many. */
        {"head at its cap", OK200 "Ab: cdef\r\n\r\n", 0, 200, "", false, "ab=cdef;",
         .max_header = 8, .eof = true},
        {"head over its cap", OK200 "Ab: cdefg\r\n\r\n", TP_ERR_TOO_LARGE,
         .max_header = 8},
        {"reason phrase counts", "HTTP/1.1 200 OKAYOKAYX\r\n\r\n", TP_ERR_TOO_LARGE,
         .max_header = 8},
        /* Head 2 + 17 + 7 = 26, trailer 4. */
        {"trailers count", CHUNKED "0\r\nTr: ab\r\n\r\n", TP_ERR_TOO_LARGE,
         .max_header = 29},
        {"trailers within the cap", CHUNKED "0\r\nTr: ab\r\n\r\n", 0, 200, "", true,
         .max_header = 30},
        {"blanks beyond the line slack", wide, TP_ERR_TOO_LARGE, .max_header = 64},
        {"blanks within the line slack", wide, 0, 200, "", true, .max_header = 400},
        {"chunk extension over the header cap", longext, TP_ERR_TOO_LARGE,
         .max_header = 64},
        {"chunk extension within the header cap", longext, 0, 200, "hello", true,
         .max_header = 400},
        {"declared body over its cap", OK200 "Content-Length: 11\r\n\r\n",
         TP_ERR_TOO_LARGE, .max_body = 10},
        {"body at its cap", OK200 "Content-Length: 10\r\n\r\n0123456789", 0, 200,
         "0123456789", true, .max_body = 10},
        {"chunked body over its cap", CHUNKED "b\r\n0123456789a\r\n0\r\n\r\n",
         TP_ERR_TOO_LARGE, .max_body = 10},
        {"body until close over its cap", OK200 "\r\n0123456789a", TP_ERR_TOO_LARGE,
         .max_body = 10, .eof = true},
        {"HEAD ignores the body cap", OK200 "Content-Length: 11\r\n\r\n", 0, 200, "",
         true, .max_body = 10, .head = true},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* The connection code hands over whatever it has: the parser takes exactly the
   response and, in the steady state, no memory. */
static void reuse_and_stop(void)
{
#define SECOND "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\nok"
    static const char two[] = CHUNKED "3\r\nabc\r\n0\r\nT: x\r\n\r\n" SECOND;
    struct tp_upstream_resp r;
    CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_init(&r, 4096, -1, false), 0);
    size_t used = 0, len = sizeof(two) - 1;
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, two, len, &used), 0);
    CU_ASSERT_TRUE(r.done && r.keep_alive);
    CU_ASSERT_EQUAL(len - used, strlen(SECOND));
    CU_ASSERT_EQUAL(r.content_length, -1);
    CU_ASSERT_EQUAL(r.body_len, 3);
    for (int round = 0; round < 3; round++) {
        const char *hbuf = r.hbuf, *lbuf = r.lbuf;
        const struct tp_upstream_field *fp = r.fields;
        const struct tp_header *view = r.view;
        tp_upstream_resp_reset(&r, false);
        CU_ASSERT_EQUAL(evbuffer_get_length(r.body), 0);
        size_t off = used, u = 0;
        /* The second response in two pieces split inside a field name. */
        CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, two + off, 20, &u), 0);
        CU_ASSERT_EQUAL(u, 20);
        CU_ASSERT_EQUAL(tp_upstream_resp_feed(&r, two + off + 20, len - off - 20, &u), 0);
        CU_ASSERT_EQUAL(u, len - off - 20);
        CU_ASSERT_TRUE(r.done && r.keep_alive);
        CU_ASSERT_EQUAL(r.content_length, 2);
        CU_ASSERT_EQUAL(r.nfields, 2);
        if (round > 0) {
            CU_ASSERT_PTR_EQUAL(r.hbuf, hbuf);
            CU_ASSERT_PTR_EQUAL(r.lbuf, lbuf);
            CU_ASSERT_PTR_EQUAL(r.fields, fp);
            CU_ASSERT_PTR_EQUAL(r.view, view);
        }
        CU_ASSERT_TRUE(r.nfields == 2 && tp_str_eq(r.view[0].name, "server") &&
                       tp_str_eq(r.view[0].value, "x") &&
                       tp_str_eq(r.view[1].name, "content-length"));
    }
    tp_upstream_resp_clear(&r);
}

/* A chunked response with trailers, after an interim one, fed a byte at a time, gives
   what one feed gives: same fields, body, counts and stopping point. */
static void bytewise_equals_whole(void)
{
    static const char resp[] = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nServer: t\r\nX-Two: a \t\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"
                               "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n"
                               "Trail-A: x\r\nTrail-B: y\r\n\r\nHTTP/1.1";
    struct tp_upstream_resp w, b;
    CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_init(&w, 4096, -1, false), 0);
    CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_init(&b, 4096, -1, false), 0);
    size_t len = sizeof(resp) - 1, used = 0, off = 0;
    CU_ASSERT_EQUAL(tp_upstream_resp_feed(&w, resp, len, &used), 0);
    while (off < len && !b.done) {
        size_t u = 0;
        CU_ASSERT_EQUAL_FATAL(tp_upstream_resp_feed(&b, resp + off, 1, &u), 0);
        CU_ASSERT_EQUAL_FATAL(u, 1);
        off += u;
    }
    CU_ASSERT_TRUE(w.done && b.done);
    CU_ASSERT_EQUAL(used, len - 8);
    CU_ASSERT_EQUAL(off, used);
    CU_ASSERT_EQUAL(w.interim, 1);
    CU_ASSERT_EQUAL(b.interim, 1);
    CU_ASSERT_EQUAL(w.status, b.status);
    CU_ASSERT_EQUAL(w.hsize, b.hsize);
    CU_ASSERT_EQUAL(w.keep_alive, b.keep_alive);
    CU_ASSERT_EQUAL(w.body_len, 19);
    CU_ASSERT_EQUAL(b.body_len, 19);
    CU_ASSERT_EQUAL(w.nfields, 3);
    CU_ASSERT_EQUAL(b.nfields, 3);
    for (size_t i = 0; i < w.nfields && i < b.nfields; i++) {
        CU_ASSERT_EQUAL(w.view[i].name.len, b.view[i].name.len);
        CU_ASSERT_EQUAL(w.view[i].value.len, b.view[i].value.len);
        CU_ASSERT_EQUAL(
            memcmp(w.view[i].name.base, b.view[i].name.base, w.view[i].name.len), 0);
        CU_ASSERT_EQUAL(
            memcmp(w.view[i].value.base, b.view[i].value.base, w.view[i].value.len), 0);
    }
    CU_ASSERT_TRUE(tp_str_eq(w.view[1].value, "a"));
    char wb[32] = {0}, bb[32] = {0};
    evbuffer_remove(w.body, wb, sizeof(wb));
    evbuffer_remove(b.body, bb, sizeof(bb));
    CU_ASSERT_STRING_EQUAL(wb, "abc0123456789abcdef");
    CU_ASSERT_STRING_EQUAL(bb, "abc0123456789abcdef");
    tp_upstream_resp_clear(&w);
    tp_upstream_resp_clear(&b);
}

int test_tp_upstream_resp(void)
{
    CU_pSuite s = CU_add_suite("tp_upstream_resp", NULL, NULL);
    if (!s || !CU_add_test(s, "status line", status_line) ||
        !CU_add_test(s, "field lines", fields) || !CU_add_test(s, "framing", framing) ||
        !CU_add_test(s, "chunked bodies", chunked) ||
        !CU_add_test(s, "keep-alive", keep_alive) ||
        !CU_add_test(s, "header and body caps", caps) ||
        !CU_add_test(s, "reuse, stopping point", reuse_and_stop) ||
        !CU_add_test(s, "byte by byte equals whole", bytewise_equals_whole))
        return -1;
    return 0;
}
