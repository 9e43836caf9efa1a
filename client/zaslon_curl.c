/* The client library's transport: one HTTP exchange with one front, over libcurl.

   Why libcurl (Debian's libcurl4-openssl-dev) rather than our own client on
   transport's nghttp2 and OpenSSL code: the client needs exactly the pieces that are
   long and easy to get wrong, and libcurl has had them right for years on every
   platform an app ships on: HTTP/2 negotiated through ALPN with a fallback to
   HTTP/1.1 and h2c with prior knowledge; TLS with certificate and host-name
   verification against the URL's host while SNI is that same front name; a custom
   Host header that it turns into :authority on HTTP/2 (domain fronting);
   CURLOPT_CONNECT_TO to reach a chosen address with no DNS query; connect and total
   timeouts; HTTP, HTTPS and SOCKS proxies (Tor's socks5h); connection reuse. It is
   the same library (with the same OpenSSL underneath) that curl(1) users already
   trust, it is packaged on Debian and on every mobile and desktop platform, and it
   keeps transport's server-side code out of apps. The daemon never links it.

   What we pin, whatever the environment says: no proxy unless the options name one
   (CURLOPT_PROXY "" disables the *_proxy variables), no redirects, http and https
   only, TLS 1.2 at least, no cookies, no content decoding, no Expect: 100-continue.

   The answer is judged as soon as its first body byte arrives: anything but 200 with
   the expected media type stops the transfer there (a cover site's page is of no use
   to us), and a body past the cap stops it too. The cap is enforced here rather than
   with CURLOPT_MAXFILESIZE, which would refuse a large cover page on its
   Content-Length before we could tell that it is a cover page. */
#include "zaslon_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct sink {
    CURL *h;
    struct zaslon_xfer *x;
    bool checked;   /* status and type looked at */
    bool refused;   /* not the answer we wait for */
    bool too_large; /* past x->max */
    bool nomem;
    char ctype[128]; /* Content-Type of the current answer, printable ASCII only */
};

void zaslon_xfer_clear(struct zaslon_xfer *x)
{
    free(x->data);
    x->data = NULL;
    x->len = 0;
    x->cap = 0;
    x->status = 0;
    x->answered = false;
}

bool zaslon_front_url_ok(const char *url, bool *https)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    if (!u)
        return false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0') {
        if (strcmp(scheme, "https") == 0) {
            ok = true;
            *https = true;
        } else if (strcmp(scheme, "http") == 0) {
            ok = true;
            *https = false;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static bool port_ok(const char *p)
{
    size_t n = strlen(p);
    unsigned long v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

bool zaslon_connect_to_ok(const char *s)
{
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end == s + 1 || end[1] != ':')
            return false;
        for (const char *p = s + 1; p < end; p++) {
            char ch = *p;
            bool hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                       (ch >= 'A' && ch <= 'F');
            if (!hex && ch != ':' && ch != '.' && ch != '%')
                return false;
        }
        return port_ok(end + 2);
    }
    const char *colon = strchr(s, ':');
    if (!colon || colon == s)
        return false;
    for (const char *p = s; p < colon; p++) {
        char ch = *p;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '-' || ch == '_'))
            return false;
    }
    return port_ok(colon + 1);
}

/* Compares the media type of a Content-Type value (before any parameters, without
   surrounding whitespace) with |want|, ignoring case. */
static bool media_type_is(const char *ctype, const char *want)
{
    size_t n = strcspn(ctype, ";");
    while (n && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(ctype, want, n) == 0;
}

static bool check(struct sink *s)
{
    long code = 0;
    s->checked = true;
    if (curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
        code = 0;
    s->x->status = code >= 0 && code <= 999 ? (int)code : 0;
    s->refused = !(code == 200 && media_type_is(s->ctype, s->x->res_type));
    return !s->refused;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    static const char ct[] = "content-type:";
    s->x->answered = true;
    /* A new status line (after a 1xx) starts a new set of fields. */
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        s->ctype[0] = '\0';
        return n;
    }
    if (n > sizeof(ct) - 1 && strncasecmp(buf, ct, sizeof(ct) - 1) == 0) {
        size_t i = sizeof(ct) - 1, o = 0;
        while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        for (; i < n && o < sizeof(s->ctype) - 1; i++) {
            unsigned char ch = (unsigned char)buf[i];
            if (ch == '\r' || ch == '\n')
                break;
            s->ctype[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        s->ctype[o] = '\0';
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    struct zaslon_xfer *x = s->x;
    /* Returning anything but n makes libcurl stop with CURLE_WRITE_ERROR. */
    if (!s->checked && !check(s))
        return 0;
    if (n > x->max - x->len) {
        s->too_large = true;
        return 0;
    }
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n)
            cap = cap > x->max / 2 ? x->max : cap * 2;
        uint8_t *d = realloc(x->data, cap);
        if (!d) {
            s->nomem = true;
            return 0;
        }
        x->data = d;
        x->cap = cap;
    }
    memcpy(x->data + x->len, p, n);
    x->len += n;
    return n;
}

static int map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:
        return ZASLON_ERR_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return ZASLON_ERR_TLS;
    case CURLE_OPERATION_TIMEDOUT:
        return ZASLON_ERR_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return ZASLON_ERR_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        return ZASLON_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ZASLON_ERR_INVALID;
    default:
        return ZASLON_ERR_TRANSPORT;
    }
}

/* Resolves |path| against |base| into a URL that the caller frees with curl_free. */
static int resolve(const char *base, const char *path, char **out)
{
    CURLU *u = curl_url();
    int rv = ZASLON_ERR_INVALID;
    if (!u)
        return ZASLON_ERR_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, path, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, out, 0) == CURLUE_OK)
        rv = 0;
    curl_url_cleanup(u);
    return rv;
}

/* Appends one header line to *l; false when out of memory (then *l is unchanged). */
static bool add_line(struct curl_slist **l, const char *a, const char *b)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s%s", a, b ? b : "");
    if (n < 0 || (size_t)n >= sizeof(line))
        return false;
    struct curl_slist *t = curl_slist_append(*l, line);
    if (!t)
        return false;
    *l = t;
    return true;
}

#define SETOPT(opt, val)                                                                 \
    do {                                                                                 \
        if ((rc = curl_easy_setopt(h, opt, val)) != CURLE_OK)                            \
            goto done;                                                                   \
    } while (0)

int zaslon_xfer_run(struct zaslon_client *c, size_t i, struct zaslon_xfer *x)
{
    const struct zaslon_front_conf *f = &c->fronts[i];
    CURL *h = c->curl;
    struct curl_slist *hdrs = NULL, *conn = NULL;
    char *url = NULL;
    struct sink s = {.h = h, .x = x};
    CURLcode rc = CURLE_OK;
    int rv;

    c->curl_err[0] = '\0';
    if (x->path) {
        rv = resolve(f->url, x->path, &url);
        if (rv != 0) {
            snprintf(c->curl_err, sizeof(c->curl_err), "the path does not resolve");
            return rv;
        }
    }
    /* Headers are bounded by zaslon_client_new's checks, so only memory can fail. */
    if ((f->host && !add_line(&hdrs, "Host: ", f->host)) ||
        (x->body && !add_line(&hdrs, "Content-Type: ", x->req_type)) ||
        !add_line(&hdrs, "Accept: ", x->res_type) || !add_line(&hdrs, "Expect:", NULL) ||
        (f->connect_to && !add_line(&conn, "::", f->connect_to))) {
        rc = CURLE_OUT_OF_MEMORY;
        goto done;
    }

    curl_easy_reset(h);
    SETOPT(CURLOPT_ERRORBUFFER, c->curl_err);
    SETOPT(CURLOPT_URL, url ? url : f->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_PROXY, c->proxy ? c->proxy : "");
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SETOPT(CURLOPT_HTTP_VERSION, f->h2c ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                        : (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SETOPT(CURLOPT_SSL_VERIFYPEER, f->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, f->insecure ? 0L : 2L);
    if (f->ca_file)
        SETOPT(CURLOPT_CAINFO, f->ca_file);
    /* libcurl before 8.0.0 (Debian 12 has 7.88.1) breaks a reused h2c prior-knowledge
       connection with "Error in the HTTP2 framing layer" (curl/curl#10634, fixed by
       #10643): give such fronts a connection per exchange. */
    if (f->h2c && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
    }
    if (conn)
        SETOPT(CURLOPT_CONNECT_TO, conn);
    if (c->user_agent)
        SETOPT(CURLOPT_USERAGENT, c->user_agent);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, &s);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, &s);
    if (x->body) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        SETOPT(CURLOPT_POSTFIELDS, x->body);
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
    }
    rc = curl_easy_perform(h);
done:
    if (s.nomem)
        rv = ZASLON_ERR_NOMEM;
    else if (s.refused)
        rv = ZASLON_ERR_NOT_SEALED;
    else if (s.too_large)
        rv = ZASLON_ERR_TOO_LARGE;
    else if (rc != CURLE_OK)
        rv = map_curl(rc);
    else
        rv = s.checked || check(&s) ? 0 : ZASLON_ERR_NOT_SEALED;
    if (rv != 0 && !s.checked && x->answered)
        check(&s); /* the status of an answer that broke off, for the record */
    if (rv == ZASLON_ERR_NOT_SEALED)
        snprintf(c->curl_err, sizeof(c->curl_err), "answered with status %d, %s%s",
                 x->status, s.ctype[0] ? "Content-Type " : "no Content-Type", s.ctype);
    else if (rv == ZASLON_ERR_TOO_LARGE)
        snprintf(c->curl_err, sizeof(c->curl_err), "answer larger than %zu bytes",
                 x->max);
    else if (rv != 0 && c->curl_err[0] == '\0')
        snprintf(c->curl_err, sizeof(c->curl_err), "%s", curl_easy_strerror(rc));
    /* The handle must not keep pointers to our stack and lists. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(conn);
    curl_free(url);
    return rv;
}
