/* zaslonctl request: send one sealed request through a front with libzaslon-client and
   print the opened answer.

     zaslonctl request [options] METHOD URL

   URL is the INNER request's URL (https://vote.example/ballot). Per-front options
   (--host, --connect-to, --cacert, --insecure, --h2c) given before the first --relay
   apply to every relay; given after a --relay, to that relay only. Exit status: 0 when
   a sealed answer was opened (whatever its inner status), 1 on errors, 2 on usage. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ctl.h"
#include "tp_http.h"
#include "zaslon_client.h"

#define MAX_DATA ZASLON_MAX_SEALED

#define USAGE                                                                            \
    "[options] METHOD URL  seal a request for the inner URL, send it through a front\n"  \
    "      --relay URL (repeatable: tried in order)  --keys FILE | --keys-path PATH\n"   \
    "      --host NAME  --connect-to ADDR:PORT  --cacert FILE  --insecure  --h2c\n"      \
    "        (before any --relay: for every relay; after one: for that relay only)\n"    \
    "      -H 'Name: value'  --data STRING | --data-file FILE|-  --pad-min SIZE\n"       \
    "      --timeout SECONDS  --proxy URL  --json"

struct args {
    struct zaslon_front defaults;
    struct zaslon_front fronts[ZASLON_MAX_FRONTS];
    size_t nfronts;
    const char *keys_file;
    const char *keys_path;
    struct zaslon_header headers[ZASLON_MAX_HEADERS];
    size_t nheaders;
    const char *data;
    const char *data_file;
    size_t pad_min;
    long timeout_ms;
    const char *proxy;
    bool json;
    const char *method;
    const char *url;
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("zaslonctl request: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* If argv[*i] is option |name| ("--name VALUE", "--name=VALUE", or for a one-letter
   option also "-xVALUE"), sets *val (NULL when the value is missing) and returns true,
   advancing *i past a separate value. *val always points into argv[*i]. */
static bool opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return false;
    if (n == 2 && argv[*i][n] != '\0') {
        *val = argv[*i] + n;
        return true;
    }
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return true;
    }
    if (argv[*i][n] != '\0')
        return false;
    *val = *i + 1 < argc ? argv[++*i] : NULL;
    return true;
}

/* "1024", "4k", "1m" (KiB, MiB). */
static bool parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return false;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    if (*end != '\0' || v == 0 || v > MAX_DATA / mul)
        return false;
    *out = (size_t)(v * mul);
    return true;
}

/* Seconds, possibly fractional, in (0, 3600]. */
static bool parse_seconds(const char *s, long *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v > 0.0 && v <= 3600.0))
        return false;
    *ms = (long)(v * 1000.0 + 0.5);
    if (*ms < 1)
        *ms = 1;
    return true;
}

/* Splits "Name: value" in place (the name gets a NUL where the colon was). */
static bool parse_header(char *s, struct zaslon_header *h)
{
    char *colon = strchr(s, ':');
    if (!colon || colon == s)
        return false;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        v[--n] = '\0';
    h->name = s;
    h->value = v;
    return true;
}

/* The front that per-front options apply to right now. */
static struct zaslon_front *current(struct args *a)
{
    return a->nfronts ? &a->fronts[a->nfronts - 1] : &a->defaults;
}

/* Returns 0, or 2 after a usage message. */
static int parse_args(int argc, char **argv, struct args *a)
{
    int i;
    const char *v = NULL;
    for (i = 0; i < argc; i++) {
        char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break;
        if (opt(argc, argv, &i, "--relay", &v)) {
            if (!v)
                goto missing;
            if (a->nfronts == ZASLON_MAX_FRONTS) {
                fail("at most %d relays", ZASLON_MAX_FRONTS);
                return 2;
            }
            a->fronts[a->nfronts++] = (struct zaslon_front){.url = v};
        } else if (opt(argc, argv, &i, "--host", &v)) {
            if (!v)
                goto missing;
            current(a)->host = v;
        } else if (opt(argc, argv, &i, "--connect-to", &v)) {
            if (!v)
                goto missing;
            current(a)->connect_to = v;
        } else if (opt(argc, argv, &i, "--cacert", &v)) {
            if (!v)
                goto missing;
            current(a)->ca_file = v;
        } else if (strcmp(arg, "--insecure") == 0 || strcmp(arg, "-k") == 0) {
            current(a)->insecure = true;
        } else if (strcmp(arg, "--h2c") == 0) {
            current(a)->h2c = true;
        } else if (opt(argc, argv, &i, "--keys", &v)) {
            if (!v)
                goto missing;
            a->keys_file = v;
        } else if (opt(argc, argv, &i, "--keys-path", &v)) {
            if (!v)
                goto missing;
            a->keys_path = v;
        } else if (opt(argc, argv, &i, "-H", &v) || opt(argc, argv, &i, "--header", &v)) {
            if (!v)
                goto missing;
            if (a->nheaders == ZASLON_MAX_HEADERS) {
                fail("at most %d header fields", ZASLON_MAX_HEADERS);
                return 2;
            }
            /* v points into argv[i], and argv strings are ours to modify. */
            if (!parse_header(argv[i] + (v - argv[i]), &a->headers[a->nheaders])) {
                fail("bad header field \"%s\" (want 'Name: value')", v);
                return 2;
            }
            a->nheaders++;
        } else if (opt(argc, argv, &i, "--data", &v) || opt(argc, argv, &i, "-d", &v)) {
            if (!v)
                goto missing;
            a->data = v;
        } else if (opt(argc, argv, &i, "--data-file", &v)) {
            if (!v)
                goto missing;
            a->data_file = v;
        } else if (opt(argc, argv, &i, "--pad-min", &v)) {
            if (!v || !parse_size(v, &a->pad_min)) {
                fail("--pad-min wants a size (1024, 4k, 1m), not \"%s\"", v ? v : "");
                return 2;
            }
        } else if (opt(argc, argv, &i, "--timeout", &v)) {
            if (!v || !parse_seconds(v, &a->timeout_ms)) {
                fail("--timeout wants seconds in (0, 3600], not \"%s\"", v ? v : "");
                return 2;
            }
        } else if (opt(argc, argv, &i, "--proxy", &v)) {
            if (!v)
                goto missing;
            a->proxy = v;
        } else if (strcmp(arg, "--json") == 0) {
            a->json = true;
        } else {
            fail("unknown option %s", arg);
            return 2;
        }
    }
    if (argc - i != 2) {
        fail("want METHOD and URL after the options");
        return 2;
    }
    a->method = argv[i];
    a->url = argv[i + 1];
    if (a->nfronts == 0) {
        fail("no --relay given");
        return 2;
    }
    if (!a->keys_file == !a->keys_path) {
        fail("give exactly one of --keys FILE and --keys-path PATH");
        return 2;
    }
    if (a->data && a->data_file) {
        fail("give at most one of --data and --data-file");
        return 2;
    }
    /* Per-front options not given after a --relay come from before the first one. */
    for (size_t f = 0; f < a->nfronts; f++) {
        struct zaslon_front *fr = &a->fronts[f];
        if (!fr->host)
            fr->host = a->defaults.host;
        if (!fr->connect_to)
            fr->connect_to = a->defaults.connect_to;
        if (!fr->ca_file)
            fr->ca_file = a->defaults.ca_file;
        fr->insecure = fr->insecure || a->defaults.insecure;
        fr->h2c = fr->h2c || a->defaults.h2c;
    }
    return 0;
missing:
    fail("option %s needs a value", argv[i]);
    return 2;
}

/* Reads all of |path| ("-" for stdin), at most |max| bytes, into a malloc'd *out. */
static bool read_all(const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    bool ok = false;
    if (!f) {
        fprintf(stderr, "zaslonctl request: %s: %s\n", path, strerror(errno));
        return false;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                fprintf(stderr, "zaslonctl request: %s: larger than %zu bytes\n", path,
                        max);
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                fail("out of memory");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "zaslonctl request: %s: read error\n", path);
        goto out;
    }
    if (n > max) {
        fprintf(stderr, "zaslonctl request: %s: larger than %zu bytes\n", path, max);
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
    ok = true;
out:
    if (buf) {
        sodium_memzero(buf, cap);
        free(buf);
    }
    if (f != stdin)
        fclose(f);
    return ok;
}

/* Returns the length of the valid UTF-8 sequence at |p| (at most |n| bytes), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* Writes |p| as a JSON string. Bytes that are not valid UTF-8 are taken as Latin-1
   (header values may carry obs-text); bodies that are not UTF-8 go out as base64. */
static void json_string(FILE *out, const uint8_t *p, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t l = c >= 0x80 ? utf8_seq(p + i, n - i) : 1;
        if (c >= 0x80 && l > 1) {
            fwrite(p + i, 1, l, out);
            i += l;
            continue;
        }
        i++;
        switch (c) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (c < 0x20 || c >= 0x7f)
                fprintf(out, "\\u%04x", (unsigned)c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

static void json_fields(FILE *out, const struct zaslon_header *h, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",[" : "[", out);
        json_string(out, (const uint8_t *)h[i].name, strlen(h[i].name));
        fputc(',', out);
        json_string(out, (const uint8_t *)h[i].value, strlen(h[i].value));
        fputc(']', out);
    }
    fputc(']', out);
}

/* Returns false if the body could not be encoded (out of memory). */
static bool print_json(FILE *out, const struct zaslon_response *r)
{
    fprintf(out, "{\"status\":%d,\"headers\":", r->status);
    json_fields(out, r->headers, r->nheaders);
    if (r->ntrailers) {
        fputs(",\"trailers\":", out);
        json_fields(out, r->trailers, r->ntrailers);
    }
    if (utf8_ok(r->body, r->body_len)) {
        fputs(",\"body\":", out);
        json_string(out, r->body, r->body_len);
    } else {
        size_t blen =
            sodium_base64_ENCODED_LEN(r->body_len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(blen);
        if (!b64)
            return false;
        sodium_bin2base64(b64, blen, r->body, r->body_len,
                          sodium_base64_VARIANT_ORIGINAL);
        fprintf(out, ",\"body_base64\":\"%s\"", b64);
        sodium_memzero(b64, blen);
        free(b64);
    }
    fputs("}\n", out);
    return true;
}

/* Like curl -i: status line, fields, a blank line, the body as it came. */
static void print_plain(FILE *out, const struct zaslon_response *r)
{
    const char *reason = tp_http_reason(r->status);
    fprintf(out, "HTTP %d%s%s\r\n", r->status, reason[0] ? " " : "", reason);
    for (size_t i = 0; i < r->nheaders; i++)
        fprintf(out, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
    fputs("\r\n", out);
    fwrite(r->body, 1, r->body_len, out);
    for (size_t i = 0; i < r->ntrailers; i++)
        fprintf(stderr, "trailer %s: %s\n", r->trailers[i].name, r->trailers[i].value);
}

static void report(struct zaslon_client *c, const char *what, int rv)
{
    const char *detail = zaslon_client_last_error(c);
    if (rv == ZASLON_ERR_NOT_SEALED) {
        fprintf(stderr,
                "zaslonctl request: the edge refused the %s before opening it (cover "
                "answer, status %d)\n",
                what, zaslon_client_last_status(c));
        return;
    }
    fprintf(stderr, "zaslonctl request: %s: %s%s%s%s\n", what, zaslon_strerror(rv),
            detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
}

static int request(int argc, char **argv)
{
    struct args a;
    memset(&a, 0, sizeof(a));
    int rv = parse_args(argc, argv, &a);
    if (rv != 0)
        return rv;

    uint8_t *keys = NULL, *body = NULL;
    size_t keys_len = 0, body_len = 0;
    struct zaslon_client *c = NULL;
    struct zaslon_response res;
    memset(&res, 0, sizeof(res));
    int status = 1;

    if (a.keys_file && !read_all(a.keys_file, ZASLON_MAX_KEYS_LEN, &keys, &keys_len))
        goto out;
    if (a.data_file && !read_all(a.data_file, MAX_DATA, &body, &body_len))
        goto out;
    long timeout = a.timeout_ms ? a.timeout_ms : ZASLON_TIMEOUT_MS_DEFAULT;
    struct zaslon_client_opts o = {
        .fronts = a.fronts,
        .nfronts = a.nfronts,
        .connect_timeout_ms = timeout < ZASLON_CONNECT_TIMEOUT_MS_DEFAULT
                                  ? timeout
                                  : ZASLON_CONNECT_TIMEOUT_MS_DEFAULT,
        .timeout_ms = timeout,
        .pad_min = a.pad_min,
        .proxy = a.proxy,
    };
    rv = zaslon_client_new(&o, &c);
    if (rv != 0) {
        fprintf(stderr,
                "zaslonctl request: %s (check the --relay URLs: http:// or https://, "
                "--h2c only with http://; --connect-to ADDR:PORT or [V6]:PORT; --host)\n",
                zaslon_strerror(rv));
        status = rv == ZASLON_ERR_INVALID ? 2 : 1;
        goto out;
    }
    if (keys) {
        rv = zaslon_client_set_keys(c, keys, keys_len);
        if (rv != 0) {
            fprintf(stderr, "zaslonctl request: %s: %s\n", a.keys_file,
                    zaslon_strerror(rv));
            goto out;
        }
    } else {
        rv = zaslon_client_fetch_keys(c, a.keys_path);
        if (rv == ZASLON_ERR_INVALID && zaslon_client_last_front(c) < 0) {
            fail("--keys-path wants a path starting with one \"/\", not \"%s\"",
                 a.keys_path);
            status = 2;
            goto out;
        }
        if (rv != 0) {
            report(c, "key configuration request", rv);
            goto out;
        }
    }

    struct zaslon_request r = {
        .method = a.method,
        .url = a.url,
        .headers = a.headers,
        .nheaders = a.nheaders,
        .body = a.data ? (const uint8_t *)a.data : body,
        .body_len = a.data ? strlen(a.data) : body_len,
    };
    rv = zaslon_client_send(c, &r, &res);
    if (rv == ZASLON_ERR_INVALID && zaslon_client_last_front(c) < 0) {
        fprintf(
            stderr,
            "zaslonctl request: cannot seal this request: check METHOD (a token), URL "
            "(absolute, no user@) and the -H fields (no Host, Content-Length or "
            "hop-by-hop fields)\n");
        status = 2;
        goto out;
    }
    if (rv != 0) {
        report(c, "request", rv);
        goto out;
    }
    if (a.json) {
        if (!print_json(stdout, &res)) {
            fail("out of memory");
            goto out;
        }
    } else {
        print_plain(stdout, &res);
    }
    if (fflush(stdout) == EOF || ferror(stdout)) {
        fail("cannot write the answer to standard output");
        goto out;
    }
    status = 0;
out:
    zaslon_response_clear(&res);
    zaslon_client_free(c);
    free(keys);
    if (body) {
        sodium_memzero(body, body_len);
        free(body);
    }
    return status;
}

const struct ctl_command ctl_request_commands[] = {
    {"request", USAGE, request},
    {NULL, NULL, NULL},
};
