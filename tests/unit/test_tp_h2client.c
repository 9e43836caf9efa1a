/* The HTTP/2 client (tp_h2client) against zaslon's own server side (tp_server over TLS
   with a client CA), in-process on one event_base, with throwaway certificates made
   here: a CA issuing the server's certificate (DNS:localhost only) and a client
   certificate, and a second CA issuing another client certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "unit_suites.h"
#include "tp_h2client.h"
#include "tp_h2client_internal.h"
#include "tp_server.h"
#include "tp_tls.h"

/* --------------------------------------------------------------- certificates --- */

struct pki {
    char dir[64];
    char ca[128], srv_cert[128], srv_key[128], cli_cert[128], cli_key[128];
    char ca2[128], cli2_cert[128], cli2_key[128];
};

static bool write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = x ? PEM_write_X509(f, x) == 1
                : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && ok;
}

/* A P-256 certificate for |cn|, signed by |issuer| (self-signed when NULL). */
static X509 *make_cert(const char *cn, const char *san, const char *eku, bool ca,
                       X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY **key_out,
                       long serial)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool ok = key && x;
    if (ok) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, key);
        X509_NAME *nm = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
                                   -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
        const char *exts[4][2] = {
            {"basicConstraints", ca ? "critical,CA:TRUE" : "CA:FALSE"},
            {"keyUsage",
             ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"},
            {san ? "subjectAltName" : NULL, san},
            {eku ? "extendedKeyUsage" : NULL, eku},
        };
        for (int i = 0; i < 4 && ok; i++) {
            if (!exts[i][0])
                continue;
            X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
            ok = e && X509_add_ext(x, e, -1) == 1;
            X509_EXTENSION_free(e);
        }
        ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
    }
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(key);
        return NULL;
    }
    *key_out = key;
    return x;
}

static bool pki_setup(struct pki *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/zaslon-h2c-XXXXXX");
    if (!mkdtemp(p->dir))
        return false;
#define P(field, name) snprintf(p->field, sizeof(p->field), "%s/%s", p->dir, name)
    P(ca, "ca.pem");
    P(srv_cert, "srv.pem");
    P(srv_key, "srv.key");
    P(cli_cert, "cli.pem");
    P(cli_key, "cli.key");
    P(ca2, "ca2.pem");
    P(cli2_cert, "cli2.pem");
    P(cli2_key, "cli2.key");
#undef P
    EVP_PKEY *cak = NULL, *srvk = NULL, *clik = NULL, *ca2k = NULL, *cli2k = NULL;
    X509 *ca = make_cert("h2c test CA", NULL, NULL, true, NULL, NULL, &cak, 1);
    X509 *srv = ca ? make_cert("localhost", "DNS:localhost", "serverAuth", false, ca, cak,
                               &srvk, 2)
                   : NULL;
    X509 *cli =
        ca ? make_cert("relay", NULL, "clientAuth", false, ca, cak, &clik, 3) : NULL;
    X509 *ca2 = make_cert("h2c other CA", NULL, NULL, true, NULL, NULL, &ca2k, 4);
    X509 *cli2 =
        ca2 ? make_cert("relay", NULL, "clientAuth", false, ca2, ca2k, &cli2k, 5) : NULL;
    bool ok = ca && srv && cli && ca2 && cli2 && write_pem(p->ca, ca, NULL) &&
              write_pem(p->srv_cert, srv, NULL) && write_pem(p->srv_key, NULL, srvk) &&
              write_pem(p->cli_cert, cli, NULL) && write_pem(p->cli_key, NULL, clik) &&
              write_pem(p->ca2, ca2, NULL) && write_pem(p->cli2_cert, cli2, NULL) &&
              write_pem(p->cli2_key, NULL, cli2k);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    X509_free(ca2);
    X509_free(cli2);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(srvk);
    EVP_PKEY_free(clik);
    EVP_PKEY_free(ca2k);
    EVP_PKEY_free(cli2k);
    return ok;
}

static void pki_teardown(struct pki *p)
{
    const char *files[] = {p->ca,      p->srv_cert, p->srv_key,   p->cli_cert,
                           p->cli_key, p->ca2,      p->cli2_cert, p->cli2_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(p->dir);
}

/* --------------------------------------------------------------------- server --- */

#define SRV_MAX 64

struct srv_rec {
    char method[8];
    char path[64];
    char authority[64];
    char fields[256]; /* "name: value\n" for every regular field */
    size_t nfields;
    size_t body_len;
    uint64_t conn_serial;
};

struct srv {
    struct event_base *base;
    struct tp_server *server;
    SSL_CTX *ctx;
    uint16_t port;
    unsigned nreqs, aborts;
    struct srv_rec recs[SRV_MAX];
    size_t big; /* /big answers with this many bytes */
};

struct srv_x {
    struct srv *srv;
    struct tp_req *req;
    struct evbuffer *body;
};

static void copy_str(char *dst, size_t cap, struct tp_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.base, n);
    dst[n] = '\0';
}

static void srv_x_free(struct srv_x *x)
{
    evbuffer_free(x->body);
    free(x);
}

static void srv_answer(struct srv_x *x)
{
    struct tp_req *req = x->req;
    struct evbuffer *b = evbuffer_new();
    if (tp_str_eq(req->path, "/reset")) {
        tp_req_reset(req);
    } else if (tp_str_eq(req->path, "/big")) {
        static const struct tp_header ct = {TP_STR_LIT("content-type"),
                                            TP_STR_LIT("application/octet-stream")};
        tp_req_respond(req, 200, &ct, 1, (int64_t)x->srv->big, false);
        char *blob = calloc(1, x->srv->big);
        evbuffer_add(b, blob, x->srv->big);
        free(blob);
        tp_req_write(req, b);
        tp_req_end(req);
    } else if (tp_str_eq(req->path, "/keys")) {
        static const struct tp_header ct = {TP_STR_LIT("content-type"),
                                            TP_STR_LIT("application/ohttp-keys")};
        tp_req_respond(req, 200, &ct, 1, 4, false);
        evbuffer_add(b, "KEYS", 4);
        tp_req_write(req, b);
        tp_req_end(req);
    } else {
        static const struct tp_header hs[] = {
            {TP_STR_LIT("content-type"), TP_STR_LIT("message/ohttp-res")},
            {TP_STR_LIT("x-extra"), TP_STR_LIT("1")},
        };
        size_t n = evbuffer_get_length(x->body);
        tp_req_respond(req, 200, hs, 2, (int64_t)(n + 5), false);
        evbuffer_add(b, "echo:", 5);
        evbuffer_add_buffer(b, x->body);
        tp_req_write(req, b);
        tp_req_end(req);
    }
    evbuffer_free(b);
    req->handler = NULL;
    srv_x_free(x);
}

static void srv_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct srv_x *x = req->handler_data;
    size_t n = evbuffer_get_length(data);
    evbuffer_add_buffer(x->body, data);
    tp_req_consume(req, n);
    if (!end)
        return;
    struct srv_rec *rec = &x->srv->recs[(x->srv->nreqs - 1) % SRV_MAX];
    rec->body_len = evbuffer_get_length(x->body);
    if (tp_str_eq(req->path, "/hold"))
        return; /* never answered: the client's deadline or cancel ends it */
    srv_answer(x);
}

static void srv_abort(struct tp_req *req)
{
    struct srv_x *x = req->handler_data;
    x->srv->aborts++;
    srv_x_free(x);
}

static const struct tp_req_handler srv_handler = {.on_body = srv_body,
                                                  .on_abort = srv_abort};

static void srv_on_request(void *arg, struct tp_req *req)
{
    struct srv *s = arg;
    struct srv_rec *rec = &s->recs[s->nreqs++ % SRV_MAX];
    memset(rec, 0, sizeof(*rec));
    copy_str(rec->method, sizeof(rec->method), req->method);
    copy_str(rec->path, sizeof(rec->path), req->path);
    copy_str(rec->authority, sizeof(rec->authority), req->authority);
    rec->conn_serial = req->conn_serial;
    rec->nfields = req->nheaders;
    size_t o = 0;
    for (size_t i = 0; i < req->nheaders && o < sizeof(rec->fields); i++) {
        int n = snprintf(rec->fields + o, sizeof(rec->fields) - o, "%.*s: %.*s\n",
                         (int)req->headers[i].name.len, req->headers[i].name.base,
                         (int)req->headers[i].value.len, req->headers[i].value.base);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    struct srv_x *x = calloc(1, sizeof(*x));
    x->srv = s;
    x->req = req;
    x->body = evbuffer_new();
    tp_req_set_handler(req, &srv_handler, x);
    if (!req->has_body)
        srv_body(req, x->body, true);
}

static bool srv_start(struct srv *s, struct event_base *base, const struct pki *p,
                      const char *client_ca, unsigned max_streams, unsigned max_reqs)
{
    memset(s, 0, sizeof(*s));
    s->base = base;
    char err[256];
    if (tp_tls_server_ctx_new_client_ca(p->srv_cert, p->srv_key, client_ca, &s->ctx, err,
                                        sizeof(err)) != 0) {
        fprintf(stderr, "server ctx: %s\n", err);
        return false;
    }
    struct tp_server_opts o = {.on_request = srv_on_request, .arg = s};
    tp_server_limits_default(&o.limits);
    if (max_streams)
        o.limits.max_concurrent_streams = max_streams;
    if (max_reqs)
        o.limits.max_requests_per_conn = max_reqs;
    int fd;
    if (tp_server_new(base, &o, &s->server) != 0 ||
        tp_listen_socket("127.0.0.1", 0, &fd) != 0)
        return false;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    if (getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
        return false;
    s->port = ntohs(sin.sin_port);
    return tp_server_listen(s->server, fd, s->ctx) == 0;
}

static void srv_stop(struct srv *s)
{
    tp_server_free(s->server);
    SSL_CTX_free(s->ctx);
}

/* --------------------------------------------------------------------- client --- */

struct result {
    bool called;
    int err;
    int status;
    char ctype[64];
    char body[128];
    size_t body_len;
    unsigned *counter;
    struct tp_h2client_req *cancel_other; /* cancelled from inside this callback */
};

static void on_done(void *arg, int err, const struct tp_h2client_resp *resp)
{
    struct result *r = arg;
    r->called = true;
    r->err = err;
    if (resp) {
        r->status = resp->status;
        copy_str(r->ctype, sizeof(r->ctype), resp->content_type);
        r->body_len = resp->body_len;
        size_t n =
            resp->body_len < sizeof(r->body) - 1 ? resp->body_len : sizeof(r->body) - 1;
        if (n)
            memcpy(r->body, resp->body, n);
        r->body[n] = '\0';
    }
    if (r->cancel_other)
        tp_h2client_cancel(r->cancel_other);
    if (r->counter)
        (*r->counter)++;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

static bool run_until(struct event_base *base, const unsigned *count, unsigned want,
                      unsigned ms)
{
    bool timed_out = false;
    struct event *t = evtimer_new(base, deadline_cb, &timed_out);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t, &tv);
    while ((!count || *count < want) && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return count && *count >= want;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static SSL_CTX *client_ctx(const char *ca, const char *cert, const char *key)
{
    SSL_CTX *ctx = NULL;
    char err[256];
    if (tp_tls_client_ctx_new(ca, cert, key, &ctx, err, sizeof(err)) != 0)
        fprintf(stderr, "client ctx: %s\n", err);
    return ctx;
}

static struct tp_h2client *client_for(struct event_base *base, SSL_CTX *ctx,
                                      const char *host, uint16_t port, unsigned conns,
                                      unsigned queue, unsigned timeout_ms)
{
    char url[128];
    snprintf(url, sizeof(url), "https://%s:%u/s/", host, (unsigned)port);
    struct tp_h2client_opts o = {
        .url = url,
        .ssl_ctx = ctx,
        .connections = conns,
        .max_queue = queue,
        .timeout_ms = timeout_ms,
        .max_response = 1024,
    };
    struct tp_h2client *c = NULL;
    CU_ASSERT_EQUAL(tp_h2client_new(base, &o, &c), 0);
    return c;
}

static int post(struct tp_h2client *c, const char *path, const char *body,
                struct result *r, unsigned *counter, struct tp_h2client_req **out)
{
    memset(r, 0, sizeof(*r));
    r->counter = counter;
    struct tp_h2client_desc d = {
        .method = TP_STR_LIT("POST"),
        .path = path ? (struct tp_str){path, strlen(path)} : (struct tp_str){NULL, 0},
        .content_type = TP_STR_LIT("message/ohttp-req"),
        .body = (const uint8_t *)body,
        .body_len = strlen(body),
        .has_body = true,
    };
    struct tp_h2client_req *req = NULL;
    int rv = tp_h2client_request(c, &d, on_done, r, &req);
    if (out)
        *out = req;
    return rv;
}

/* ---------------------------------------------------------------------- tests --- */

struct fixture {
    struct pki pki;
    struct event_base *base;
    struct srv srv;
    SSL_CTX *cctx; /* our CA, our client certificate */
};

static bool fx_setup(struct fixture *f, unsigned max_streams, unsigned max_reqs)
{
    memset(f, 0, sizeof(*f));
    if (!pki_setup(&f->pki))
        return false;
    f->base = event_base_new();
    if (!f->base ||
        !srv_start(&f->srv, f->base, &f->pki, f->pki.ca, max_streams, max_reqs))
        return false;
    f->cctx = client_ctx(f->pki.ca, f->pki.cli_cert, f->pki.cli_key);
    return f->cctx != NULL;
}

static void fx_teardown(struct fixture *f)
{
    srv_stop(&f->srv);
    SSL_CTX_free(f->cctx);
    event_base_free(f->base);
    pki_teardown(&f->pki);
}

static void exchange_and_reuse(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    struct tp_h2client *c =
        client_for(f.base, f.cctx, "localhost", f.srv.port, 2, 16, 5000);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r[8];

    /* Sequential: one connection carries them all. */
    for (unsigned i = 0; i < 3; i++) {
        char body[16];
        snprintf(body, sizeof(body), "sealed-%u", i);
        CU_ASSERT_EQUAL(post(c, NULL, body, &r[i], &fin, NULL), 0);
        CU_ASSERT_FALSE(r[i].called); /* never from inside the call */
        CU_ASSERT_TRUE(run_until(f.base, &fin, i + 1, 5000));
        CU_ASSERT_EQUAL(r[i].err, 0);
        CU_ASSERT_EQUAL(r[i].status, 200);
        CU_ASSERT_STRING_EQUAL(r[i].ctype, "message/ohttp-res");
        char want[32];
        snprintf(want, sizeof(want), "echo:%s", body);
        CU_ASSERT_STRING_EQUAL(r[i].body, want);
    }
    CU_ASSERT_EQUAL(f.srv.nreqs, 3);
    for (unsigned i = 0; i < 3; i++) {
        struct srv_rec *rec = &f.srv.recs[i];
        CU_ASSERT_STRING_EQUAL(rec->method, "POST");
        CU_ASSERT_STRING_EQUAL(rec->path, "/s/");
        char auth[32];
        snprintf(auth, sizeof(auth), "localhost:%u", (unsigned)f.srv.port);
        CU_ASSERT_STRING_EQUAL(rec->authority, auth);
        /* Only the two fields, nothing identifying. */
        CU_ASSERT_EQUAL(rec->nfields, 2);
        CU_ASSERT_STRING_EQUAL(rec->fields,
                               "content-type: message/ohttp-req\ncontent-length: 8\n");
        CU_ASSERT_EQUAL(rec->body_len, 8);
        CU_ASSERT_EQUAL(rec->conn_serial, f.srv.recs[0].conn_serial);
    }

    /* Concurrent: multiplexed on the same connection. */
    for (unsigned i = 3; i < 8; i++)
        CU_ASSERT_EQUAL(post(c, NULL, "x", &r[i], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 8, 5000));
    for (unsigned i = 3; i < 8; i++) {
        CU_ASSERT_EQUAL(r[i].err, 0);
        CU_ASSERT_STRING_EQUAL(r[i].body, "echo:x");
        CU_ASSERT_EQUAL(f.srv.recs[i].conn_serial, f.srv.recs[0].conn_serial);
    }
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.connects, 1);
    CU_ASSERT_EQUAL(st.conns, 1);

    /* A GET with no body carries no field at all, to another path. */
    struct result g;
    memset(&g, 0, sizeof(g));
    g.counter = &fin;
    struct tp_h2client_desc d = {.method = TP_STR_LIT("GET"),
                                 .path = TP_STR_LIT("/keys")};
    struct tp_h2client_req *req;
    CU_ASSERT_EQUAL(tp_h2client_request(c, &d, on_done, &g, &req), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 9, 5000));
    CU_ASSERT_EQUAL(g.err, 0);
    CU_ASSERT_EQUAL(g.status, 200);
    CU_ASSERT_STRING_EQUAL(g.ctype, "application/ohttp-keys");
    CU_ASSERT_STRING_EQUAL(g.body, "KEYS");
    CU_ASSERT_STRING_EQUAL(f.srv.recs[8].method, "GET");
    CU_ASSERT_STRING_EQUAL(f.srv.recs[8].path, "/keys");
    CU_ASSERT_EQUAL(f.srv.recs[8].nfields, 0);

    /* Requests that cannot be sent as given. */
    struct tp_h2client_desc bad = {.method = TP_STR_LIT("GE T")};
    CU_ASSERT_EQUAL(tp_h2client_request(c, &bad, on_done, &g, &req), TP_ERR_INVALID);
    bad = (struct tp_h2client_desc){.method = TP_STR_LIT("GET"),
                                    .path = TP_STR_LIT("/a b")};
    CU_ASSERT_EQUAL(tp_h2client_request(c, &bad, on_done, &g, &req), TP_ERR_INVALID);
    bad = (struct tp_h2client_desc){.method = TP_STR_LIT("POST"),
                                    .content_type = TP_STR_LIT("a\r\nb: c"),
                                    .has_body = true};
    CU_ASSERT_EQUAL(tp_h2client_request(c, &bad, on_done, &g, &req), TP_ERR_INVALID);

    tp_h2client_free(c);
    fx_teardown(&f);
}

static void queue_full(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 1, 0)); /* one stream per connection */
    struct tp_h2client *c =
        client_for(f.base, f.cctx, "localhost", f.srv.port, 1, 2, 5000);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r[6];
    struct tp_h2client_req *hold = NULL;
    /* No connection yet: two wait, the third is refused at once, with no callback. */
    CU_ASSERT_EQUAL(post(c, "/hold", "a", &r[0], &fin, &hold), 0);
    CU_ASSERT_EQUAL(post(c, NULL, "b", &r[1], &fin, NULL), 0);
    CU_ASSERT_EQUAL(post(c, NULL, "c", &r[2], &fin, NULL), TP_ERR_TOO_LARGE);
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.queued, 2);
    /* The held request takes the only stream slot; "b" waits for it. */
    run_until(f.base, NULL, 0, 300);
    CU_ASSERT_EQUAL(f.srv.nreqs, 1);
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.queued, 1);
    CU_ASSERT_EQUAL(st.streams, 1);
    CU_ASSERT_EQUAL(post(c, NULL, "d", &r[3], &fin, NULL), 0);
    CU_ASSERT_EQUAL(post(c, NULL, "e", &r[4], &fin, NULL), TP_ERR_TOO_LARGE);
    /* Cancelling the held stream frees the slot: the queue drains in order. */
    tp_h2client_cancel(hold);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 5000));
    CU_ASSERT_FALSE(r[0].called);
    CU_ASSERT_EQUAL(r[1].err, 0);
    CU_ASSERT_STRING_EQUAL(r[1].body, "echo:b");
    CU_ASSERT_EQUAL(r[3].err, 0);
    CU_ASSERT_STRING_EQUAL(r[3].body, "echo:d");
    CU_ASSERT_STRING_EQUAL(f.srv.recs[1].path, "/s/");
    CU_ASSERT_EQUAL(f.srv.recs[1].body_len, 1);
    run_until(f.base, &f.srv.aborts, 1, 2000);
    CU_ASSERT_EQUAL(f.srv.aborts, 1); /* the cancel reached the server as RST_STREAM */
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.connects, 1);
    tp_h2client_free(c);
    fx_teardown(&f);
}

static void timeout_and_cancel(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    struct tp_h2client *c =
        client_for(f.base, f.cctx, "localhost", f.srv.port, 1, 8, 400);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r[4];
    uint64_t t0 = mono_ms();
    CU_ASSERT_EQUAL(post(c, "/hold", "a", &r[0], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 1, 3000));
    uint64_t took = mono_ms() - t0;
    CU_ASSERT_EQUAL(r[0].err, TP_ERR_TIMEOUT);
    CU_ASSERT_TRUE(took >= 390 && took < 1500);
    run_until(f.base, &f.srv.aborts, 1, 2000);
    CU_ASSERT_EQUAL(f.srv.aborts, 1);

    /* The connection survives a timed-out stream. Cancel from inside a callback: the
       first answer cancels the held second request, whose callback never comes. */
    struct tp_h2client_req *held = NULL;
    CU_ASSERT_EQUAL(post(c, NULL, "b", &r[1], &fin, NULL), 0);
    CU_ASSERT_EQUAL(post(c, "/hold", "c", &r[2], &fin, &held), 0);
    r[1].cancel_other = held;
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(r[1].err, 0);
    run_until(f.base, NULL, 0, 600);
    CU_ASSERT_FALSE(r[2].called);
    CU_ASSERT_EQUAL(fin, 2);
    CU_ASSERT_EQUAL(f.srv.aborts, 2);
    /* A queued request cancelled before anything happened. */
    struct tp_h2client_req *q = NULL;
    CU_ASSERT_EQUAL(post(c, NULL, "d", &r[3], &fin, &q), 0);
    tp_h2client_cancel(q);
    run_until(f.base, NULL, 0, 200);
    CU_ASSERT_FALSE(r[3].called);
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.connects, 1);
    tp_h2client_free(c);
    fx_teardown(&f);
}

static void idle_close(void)
{
    /* An idle connection says GOAWAY and goes; the next request opens another. */
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    char url[64];
    snprintf(url, sizeof(url), "https://localhost:%u/s/", (unsigned)f.srv.port);
    struct tp_h2client_opts o = {.url = url,
                                 .ssl_ctx = f.cctx,
                                 .connections = 1,
                                 .max_queue = 4,
                                 .timeout_ms = 5000,
                                 .idle_timeout_ms = 200,
                                 .max_response = 64};
    struct tp_h2client *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tp_h2client_new(f.base, &o, &c), 0);
    unsigned fin = 0;
    struct result r[2];
    CU_ASSERT_EQUAL(post(c, NULL, "a", &r[0], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 1, 5000));
    CU_ASSERT_EQUAL(r[0].err, 0);
    run_until(f.base, NULL, 0, 600);
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.conns, 0);
    CU_ASSERT_PTR_NOT_NULL(st.last_close);
    if (st.last_close)
        CU_ASSERT_STRING_EQUAL(st.last_close, "idle");
    CU_ASSERT_EQUAL(tp_server_connections(f.srv.server), 0);
    CU_ASSERT_EQUAL(post(c, NULL, "b", &r[1], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(r[1].err, 0);
    CU_ASSERT_STRING_EQUAL(r[1].body, "echo:b");
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.connects, 2);
    CU_ASSERT_EQUAL(st.retries, 0);
    tp_h2client_free(c);
    fx_teardown(&f);
}

static void never_resent(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    f.srv.big = 4096;
    struct tp_h2client *c =
        client_for(f.base, f.cctx, "localhost", f.srv.port, 1, 8, 5000);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r[2];
    /* The server read it, then reset the stream: it was sent, so it is not sent again. */
    CU_ASSERT_EQUAL(post(c, "/reset", "a", &r[0], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 1, 5000));
    CU_ASSERT_EQUAL(r[0].err, TP_ERR_CLOSED);
    run_until(f.base, NULL, 0, 200);
    CU_ASSERT_EQUAL(f.srv.nreqs, 1);
    /* Over max_response. */
    CU_ASSERT_EQUAL(post(c, "/big", "a", &r[1], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(r[1].err, TP_ERR_TOO_LARGE);
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.retries, 0);
    CU_ASSERT_EQUAL(st.connects, 1);
    tp_h2client_free(c);
    fx_teardown(&f);
}

/* ---- a minimal nghttp2 server that refuses streams as RFC 9113 allows: in "goaway"
   mode it processes stream 1 only, sends GOAWAY(last-stream-id 1) and ignores later
   streams; in "refuse" mode it resets every stream with REFUSED_STREAM. */

struct mini {
    struct event_base *base;
    struct evconnlistener *lis;
    SSL_CTX *ctx;
    uint16_t port;
    bool refuse_all;
    unsigned accepts, processed, refused;
    struct bufferevent *bevs[8];
    nghttp2_session *sessions[8];
    struct mini_conn *mcs[8];
    unsigned n;
};

struct mini_conn {
    struct mini *m;
    unsigned idx;
};

static ssize_t mini_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                         void *ud)
{
    struct mini_conn *mc = ud;
    if (bufferevent_write(mc->m->bevs[mc->idx], data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int mini_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct mini_conn *mc = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (mc->m->refuse_all) {
        mc->m->refused++;
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
    } else if (f->hd.stream_id == 1) {
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0);
    } else {
        mc->m->refused++; /* above the GOAWAY: never looked at */
    }
    return 0;
}

static int mini_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct mini_conn *mc = ud;
    if (mc->m->refuse_all || f->hd.stream_id != 1 ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    mc->m->processed++;
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"content-type", (uint8_t *)"message/ohttp-res", 12, 17, 0},
    };
    nghttp2_submit_response(s, 1, nv, 2, NULL);
    return 0;
}

static void mini_read(struct bufferevent *bev, void *arg)
{
    struct mini_conn *mc = arg;
    nghttp2_session *s = mc->m->sessions[mc->idx];
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)len);
    if (nghttp2_session_mem_recv(s, p, len) < 0)
        return;
    evbuffer_drain(in, len);
    nghttp2_session_send(s);
}

static void mini_event(struct bufferevent *bev, short what, void *arg)
{
    struct mini_conn *mc = arg;
    if (what & BEV_EVENT_CONNECTED) {
        nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
        nghttp2_submit_settings(mc->m->sessions[mc->idx], NGHTTP2_FLAG_NONE, &iv, 1);
        nghttp2_session_send(mc->m->sessions[mc->idx]);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_disable(bev, EV_READ);
}

static void mini_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int len, void *arg)
{
    struct mini *m = arg;
    if (m->n == 8) {
        close(fd);
        return;
    }
    unsigned idx = m->n++;
    m->accepts++;
    struct mini_conn *mc = calloc(1, sizeof(*mc));
    mc->m = m;
    mc->idx = idx;
    m->mcs[idx] = mc;
    SSL *ssl = SSL_new(m->ctx);
    m->bevs[idx] = bufferevent_openssl_socket_new(
        m->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, mini_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, mini_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, mini_frame_recv);
    nghttp2_session_server_new(&m->sessions[idx], cbs, mc);
    nghttp2_session_callbacks_del(cbs);
    bufferevent_setcb(m->bevs[idx], mini_read, NULL, mini_event, mc);
    bufferevent_enable(m->bevs[idx], EV_READ | EV_WRITE);
}

static bool mini_start(struct mini *m, struct event_base *base, const struct pki *p)
{
    memset(m, 0, sizeof(*m));
    m->base = base;
    char err[256];
    if (tp_tls_server_ctx_new(p->srv_cert, p->srv_key, &m->ctx, err, sizeof(err)) != 0)
        return false;
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(0x7f000001)};
    m->lis = evconnlistener_new_bind(base, mini_accept, m,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                     (struct sockaddr *)&sin, sizeof(sin));
    if (!m->lis)
        return false;
    socklen_t sl = sizeof(sin);
    getsockname(evconnlistener_get_fd(m->lis), (struct sockaddr *)&sin, &sl);
    m->port = ntohs(sin.sin_port);
    return true;
}

static void mini_stop(struct mini *m)
{
    for (unsigned i = 0; i < m->n; i++) {
        nghttp2_session_del(m->sessions[i]);
        bufferevent_free(m->bevs[i]);
        free(m->mcs[i]);
    }
    evconnlistener_free(m->lis);
    SSL_CTX_free(m->ctx);
}

static void goaway_refused_retry(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    SSL_CTX *nocert = client_ctx(f.pki.ca, NULL, NULL);
    struct mini m;
    CU_ASSERT_FATAL(mini_start(&m, f.base, &f.pki));
    struct tp_h2client *c = client_for(f.base, nocert, "localhost", m.port, 1, 8, 5000);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r[3];
    /* Both go out in the first flight; the server takes one per connection: the second
       is above its GOAWAY, so it was not processed and is sent once more, on a new
       connection. */
    CU_ASSERT_EQUAL(post(c, NULL, "a", &r[0], &fin, NULL), 0);
    CU_ASSERT_EQUAL(post(c, NULL, "b", &r[1], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(r[0].err, 0);
    CU_ASSERT_EQUAL(r[1].err, 0);
    CU_ASSERT_EQUAL(r[0].status, 200);
    CU_ASSERT_EQUAL(r[1].status, 200);
    CU_ASSERT_EQUAL(m.processed, 2);
    CU_ASSERT_EQUAL(m.refused, 1);
    CU_ASSERT_EQUAL(m.accepts, 2);
    struct tp_h2client_stats st;
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.connects, 2);
    CU_ASSERT_EQUAL(st.retries, 1);
    /* Refused again on the retry: that is the end of it (once only). */
    m.refuse_all = true;
    m.refused = 0;
    CU_ASSERT_EQUAL(post(c, NULL, "c", &r[2], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 3, 5000));
    CU_ASSERT_EQUAL(r[2].err, TP_ERR_CLOSED);
    CU_ASSERT_EQUAL(m.refused, 2);
    tp_h2client_stats(c, &st);
    CU_ASSERT_EQUAL(st.retries, 2);
    tp_h2client_free(c);
    mini_stop(&m);
    SSL_CTX_free(nocert);
    fx_teardown(&f);
}

static void expect_connect_error(struct fixture *f, SSL_CTX *ctx, const char *host,
                                 uint16_t port, const char *what)
{
    struct tp_h2client *c = client_for(f->base, ctx, host, port, 1, 8, 5000);
    CU_ASSERT_FATAL(c != NULL);
    unsigned fin = 0;
    struct result r;
    unsigned before = f->srv.nreqs;
    CU_ASSERT_EQUAL(post(c, NULL, "a", &r, &fin, NULL), 0);
    CU_ASSERT_FALSE(r.called);
    if (!run_until(f->base, &fin, 1, 5000) || r.err != TP_ERR_CONNECT)
        fprintf(stderr, "\n  %s: err %d\n", what, r.err);
    CU_ASSERT_EQUAL(r.err, TP_ERR_CONNECT);
    CU_ASSERT_EQUAL(f->srv.nreqs, before);
    tp_h2client_free(c);
}

static void certificates(void)
{
    struct fixture f;
    CU_ASSERT_FATAL(fx_setup(&f, 0, 0));
    /* No client certificate: the server refuses the handshake (in TLS 1.3, after the
       client thinks it is done: still a connect error, nothing was sent). */
    SSL_CTX *nocert = client_ctx(f.pki.ca, NULL, NULL);
    expect_connect_error(&f, nocert, "localhost", f.srv.port, "no client certificate");
    /* A client certificate from a CA the server does not trust. */
    SSL_CTX *other = client_ctx(f.pki.ca, f.pki.cli2_cert, f.pki.cli2_key);
    expect_connect_error(&f, other, "localhost", f.srv.port,
                         "untrusted client certificate");
    /* The server's certificate from a CA we do not trust. */
    SSL_CTX *wrongca = client_ctx(f.pki.ca2, f.pki.cli_cert, f.pki.cli_key);
    expect_connect_error(&f, wrongca, "localhost", f.srv.port, "untrusted server");
    /* The right CA, but the certificate does not name 127.0.0.1. */
    expect_connect_error(&f, f.cctx, "127.0.0.1", f.srv.port, "wrong name");
    /* Nobody listening. */
    int fd;
    CU_ASSERT_EQUAL_FATAL(tp_listen_socket("127.0.0.1", 0, &fd), 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd);
    expect_connect_error(&f, f.cctx, "127.0.0.1", ntohs(sin.sin_port), "refused");
    /* A peer that takes the TCP connection but never answers the TLS handshake: a
       connect error at the connect deadline when that comes first, a timeout when the
       whole-exchange deadline does. */
    int silent;
    CU_ASSERT_EQUAL_FATAL(tp_listen_socket("127.0.0.1", 0, &silent), 0);
    sl = sizeof(sin);
    CU_ASSERT_EQUAL(getsockname(silent, (struct sockaddr *)&sin, &sl), 0);
    char url[64];
    snprintf(url, sizeof(url), "https://localhost:%u/s/", (unsigned)ntohs(sin.sin_port));
    for (int k = 0; k < 2; k++) {
        struct tp_h2client_opts o = {.url = url,
                                     .ssl_ctx = f.cctx,
                                     .connections = 1,
                                     .max_queue = 4,
                                     .timeout_ms = k ? 300 : 2000,
                                     .connect_timeout_ms = k ? 2000 : 300,
                                     .max_response = 64};
        struct tp_h2client *sc = NULL;
        CU_ASSERT_EQUAL_FATAL(tp_h2client_new(f.base, &o, &sc), 0);
        unsigned sfin = 0;
        struct result sr;
        uint64_t t0 = mono_ms();
        CU_ASSERT_EQUAL(post(sc, NULL, "a", &sr, &sfin, NULL), 0);
        CU_ASSERT_TRUE(run_until(f.base, &sfin, 1, 5000));
        uint64_t took = mono_ms() - t0;
        CU_ASSERT_EQUAL(sr.err, k ? TP_ERR_TIMEOUT : TP_ERR_CONNECT);
        CU_ASSERT_TRUE(took >= 290 && took < 1500);
        tp_h2client_free(sc);
    }
    close(silent);
    /* The same server without client certificates asked for takes a client without one;
       with the CA, the trusted client certificate works (control). */
    struct srv open;
    CU_ASSERT_FATAL(srv_start(&open, f.base, &f.pki, NULL, 0, 0));
    struct tp_h2client *c =
        client_for(f.base, nocert, "localhost", open.port, 1, 8, 5000);
    unsigned fin = 0;
    struct result r[2];
    CU_ASSERT_EQUAL(post(c, NULL, "a", &r[0], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 1, 5000));
    CU_ASSERT_EQUAL(r[0].err, 0);
    tp_h2client_free(c);
    c = client_for(f.base, f.cctx, "localhost", f.srv.port, 1, 8, 5000);
    CU_ASSERT_EQUAL(post(c, NULL, "b", &r[1], &fin, NULL), 0);
    CU_ASSERT_TRUE(run_until(f.base, &fin, 2, 5000));
    CU_ASSERT_EQUAL(r[1].err, 0);
    CU_ASSERT_STRING_EQUAL(r[1].body, "echo:b");
    tp_h2client_free(c);
    srv_stop(&open);
    SSL_CTX_free(nocert);
    SSL_CTX_free(other);
    SSL_CTX_free(wrongca);

    /* Contexts and URLs that are refused up front. */
    char err[256];
    SSL_CTX *x = NULL;
    CU_ASSERT_EQUAL(
        tp_tls_client_ctx_new(f.pki.ca, f.pki.cli_cert, NULL, &x, err, sizeof(err)),
        TP_ERR_INVALID);
    CU_ASSERT_EQUAL(
        tp_tls_client_ctx_new("/nonexistent/ca.pem", NULL, NULL, &x, err, sizeof(err)),
        TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_tls_client_ctx_new(f.pki.ca, f.pki.cli_cert, f.pki.srv_key, &x,
                                          err, sizeof(err)),
                    TP_ERR_INVALID);
    CU_ASSERT_PTR_NULL(x);
    CU_ASSERT_NOT_EQUAL(tp_tls_server_ctx_new_client_ca(f.pki.srv_cert, f.pki.srv_key,
                                                        "/nonexistent/ca.pem", &x, err,
                                                        sizeof(err)),
                        0);
    const char *bad_urls[] = {"http://localhost/s/",
                              "https://",
                              "https://u@localhost/",
                              "https://localhost:0/",
                              "https://localhost:99999/",
                              "https://[127.0.0.1]/",
                              "https://localhost/#f",
                              "https://local host/",
                              NULL};
    for (size_t i = 0; bad_urls[i]; i++) {
        struct tp_h2client_opts o = {.url = bad_urls[i],
                                     .ssl_ctx = f.cctx,
                                     .connections = 1,
                                     .max_queue = 1,
                                     .timeout_ms = 1000,
                                     .max_response = 1};
        struct tp_h2client *bc = NULL;
        CU_ASSERT_EQUAL(tp_h2client_new(f.base, &o, &bc), TP_ERR_INVALID);
    }
    fx_teardown(&f);
}

int test_tp_h2client(void)
{
    CU_pSuite s = CU_add_suite("tp_h2client", NULL, NULL);
    if (!s || !CU_add_test(s, "exchange, fields, reuse", exchange_and_reuse) ||
        !CU_add_test(s, "queue full", queue_full) ||
        !CU_add_test(s, "timeout and cancel", timeout_and_cancel) ||
        !CU_add_test(s, "idle connection closed", idle_close) ||
        !CU_add_test(s, "never resent", never_resent) ||
        !CU_add_test(s, "GOAWAY: refused stream retried once", goaway_refused_retry) ||
        !CU_add_test(s, "certificates and mutual TLS", certificates))
        return -1;
    return 0;
}
