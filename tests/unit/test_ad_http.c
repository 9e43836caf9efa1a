/* The `http` adapter: config validation with line numbers, and requests end to end
   through adapter_ops against a small scripted backend on 127.0.0.1:0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "unit_suites.h"

#include "ad_http.h"
#include "adapter.h"
#include "tp_upstream.h"

/* ------------------------------------------------------------------------------------ */
/* Config                                                                               */

#define CONF_FILE "/etc/zaslon/zaslon.yaml"

static int parse(const struct adapter_kv *items, size_t n, char *err, size_t errlen,
                 void **cfg)
{
    struct adapter_config conf = {
        .backend_name = "vote",
        .file = CONF_FILE,
        .items = items,
        .nitems = n,
        .errbuf = err,
        .errlen = errlen,
    };
    err[0] = '\0';
    *cfg = NULL;
    return ad_http_ops.config_parse(&conf, cfg);
}

static void config_good(void)
{
    char err[512];
    void *p = NULL;
    const struct adapter_kv good[] = {
        {"url", "https://Vote.Example:8443/api/v1/", 10},
        {"ca_file", "/dev/null", 11},
        {"verify", "false", 12},
        {"sni", "vote.internal", 13},
        {"pool_size", "8", 14},
        {"max_connections", "64", 15},
        {"connect_timeout", "500ms", 16},
        {"first_byte_timeout", "10s", 17},
        {"idle_timeout", "2m", 18},
        {"max_response", "1m", 19},
        {"host_header", "Vote.Example", 9}, /* before or after the url: same result */
        {"max_queue", "0", 20},
        {"breaker_failures", "0", 21},
        {"breaker_cooldown", "750ms", 22},
    };
    CU_ASSERT_EQUAL_FATAL(parse(good, 14, err, sizeof(err), &p), 0);
    const struct ad_http_config *c = p;
    CU_ASSERT_TRUE(c->tls);
    CU_ASSERT_STRING_EQUAL(c->host, "vote.example");
    CU_ASSERT_EQUAL(c->port, 8443);
    CU_ASSERT_STRING_EQUAL(c->base, "/api/v1");
    CU_ASSERT_EQUAL(c->base_len, 7);
    CU_ASSERT_STRING_EQUAL(c->authority, "vote.example");
    CU_ASSERT_FALSE(c->verify);
    CU_ASSERT_STRING_EQUAL(c->ca_file, "/dev/null");
    CU_ASSERT_STRING_EQUAL(c->sni, "vote.internal");
    CU_ASSERT_EQUAL(c->pool_size, 8);
    CU_ASSERT_EQUAL(c->max_connections, 64);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 500);
    CU_ASSERT_EQUAL(c->first_byte_timeout_ms, 10000);
    CU_ASSERT_EQUAL(c->idle_timeout_ms, 120000);
    CU_ASSERT_EQUAL(c->max_response, 1024 * 1024);
    CU_ASSERT_EQUAL(c->max_queue, 0);
    CU_ASSERT_EQUAL(c->breaker_failures, 0);
    CU_ASSERT_EQUAL(c->breaker_cooldown_ms, 750);
    ad_http_ops.config_free(p);

    /* Defaults. */
    const struct adapter_kv plain[] = {{"url", "http://127.0.0.1:8080", 3}};
    CU_ASSERT_EQUAL_FATAL(parse(plain, 1, err, sizeof(err), &p), 0);
    c = p;
    CU_ASSERT_FALSE(c->tls);
    CU_ASSERT_EQUAL(c->port, 8080);
    CU_ASSERT_STRING_EQUAL(c->base, "");
    CU_ASSERT_STRING_EQUAL(c->authority, "127.0.0.1:8080");
    CU_ASSERT_TRUE(c->verify);
    CU_ASSERT_PTR_NULL(c->ca_file);
    CU_ASSERT_EQUAL(c->pool_size, 32);
    CU_ASSERT_EQUAL(c->max_connections, 256);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 5000);
    CU_ASSERT_EQUAL(c->first_byte_timeout_ms, 30000);
    CU_ASSERT_EQUAL(c->idle_timeout_ms, 60000);
    CU_ASSERT_EQUAL(c->max_response, -1);
    CU_ASSERT_EQUAL(c->max_queue, TP_UPSTREAM_QUEUE_MAX);
    CU_ASSERT_EQUAL(c->breaker_failures, AD_HTTP_BREAKER_FAILURES);
    CU_ASSERT_EQUAL(c->breaker_cooldown_ms, AD_HTTP_BREAKER_COOLDOWN_MS);
    ad_http_ops.config_free(p);

    const struct adapter_kv limits[] = {{"url", "http://a", 1},
                                        {"max_queue", "1024", 2},
                                        {"breaker_failures", "1000", 3},
                                        {"breaker_cooldown", "60m", 4}};
    CU_ASSERT_EQUAL_FATAL(parse(limits, 4, err, sizeof(err), &p), 0);
    c = p;
    CU_ASSERT_EQUAL(c->max_queue, 1024);
    CU_ASSERT_EQUAL(c->breaker_failures, 1000);
    CU_ASSERT_EQUAL(c->breaker_cooldown_ms, 3600u * 1000u);
    ad_http_ops.config_free(p);

    const struct adapter_kv v6[] = {{"url", "http://[::1]/x/", 3},
                                    {"max_response", "0", 4}};
    CU_ASSERT_EQUAL_FATAL(parse(v6, 2, err, sizeof(err), &p), 0);
    c = p;
    CU_ASSERT_STRING_EQUAL(c->host, "::1");
    CU_ASSERT_EQUAL(c->port, 80);
    CU_ASSERT_STRING_EQUAL(c->authority, "[::1]");
    CU_ASSERT_STRING_EQUAL(c->base, "/x");
    CU_ASSERT_EQUAL(c->max_response, -1);
    ad_http_ops.config_free(p);

    const struct adapter_kv tls[] = {{"url", "HTTPS://backend", 3}};
    CU_ASSERT_EQUAL_FATAL(parse(tls, 1, err, sizeof(err), &p), 0);
    c = p;
    CU_ASSERT_TRUE(c->tls);
    CU_ASSERT_EQUAL(c->port, 443);
    CU_ASSERT_STRING_EQUAL(c->authority, "backend");
    ad_http_ops.config_free(p);
    ad_http_ops.config_free(NULL);
}

/* Expects |items| refused with a message starting "CONF_FILE:line: " + |start|. */
static void refused(const struct adapter_kv *items, size_t n, unsigned line,
                    const char *start)
{
    char err[512], want[512];
    void *p = (void *)1;
    CU_ASSERT_EQUAL(parse(items, n, err, sizeof(err), &p), ADAPTER_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(p);
    snprintf(want, sizeof(want), "%s:%u: %s", CONF_FILE, line, start);
    if (strncmp(err, want, strlen(want)) != 0) {
        fprintf(stderr, "\n  got:  %s\n  want: %s...\n", err, want);
        CU_FAIL("config message");
    }
}

static void config_errors(void)
{
    const struct adapter_kv unknown[] = {{"url", "http://a", 11}, {"colour", "blue", 12}};
    refused(unknown, 2, 12, "unknown key \"colour\" in http backend \"vote\"");

    const char *bad_urls[] = {
        "ftp://a/",    "vote.example", "http://u:p@a/",   "http://a/?q=1",
        "http://a/#f", "http://a:0/",  "http://a:99999/", "",
        "http://",     "http:///path", "http://a b/"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        const struct adapter_kv u[] = {{"pool_size", "1", 6}, {"url", bad_urls[i], 7}};
        refused(u, 2, 7, "bad url \"");
    }
    const struct adapter_kv creds[] = {{"url", "http://user:pw@a/", 5}};
    refused(creds, 1, 5,
            "bad url \"http://user:pw@a/\" in http backend \"vote\": credentials");

    const struct adapter_kv missing[] = {{"pool_size", "1", 21}, {"verify", "true", 22}};
    refused(missing, 2, 21, "http backend \"vote\" needs a url");
    refused(NULL, 0, 0, "http backend \"vote\" needs a url");

    const char *bad_durations[] = {"5",  "5x",  "-1s",  "0s",
                                   "2h", "61m", "1.5s", "",
                                   "s",  " 5s", "5 s",  "99999999999999999999ms"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++) {
        const struct adapter_kv d[] = {{"url", "http://a", 1},
                                       {"first_byte_timeout", bad_durations[i], 30}};
        refused(d, 2, 30, "bad value \"");
    }
    const struct adapter_kv dur[] = {{"url", "http://a", 1}, {"idle_timeout", "10x", 8}};
    refused(
        dur, 2, 8,
        "bad value \"10x\" for idle_timeout in http backend \"vote\": want a duration");

    const char *bad_sizes[] = {"1g", "k", "-1", "1.5m", "99999999999999999m"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        const struct adapter_kv s[] = {{"url", "http://a", 1},
                                       {"max_response", bad_sizes[i], 4}};
        refused(s, 2, 4, "bad value \"");
    }
    const struct adapter_kv vb[] = {{"url", "https://a", 1}, {"verify", "yes", 2}};
    refused(vb, 2, 2, "bad value \"yes\" for verify");
    const struct adapter_kv ps[] = {{"url", "http://a", 1}, {"pool_size", "many", 2}};
    refused(ps, 2, 2, "bad value \"many\" for pool_size");
    const struct adapter_kv mc[] = {{"url", "http://a", 1}, {"max_connections", "0", 2}};
    refused(mc, 2, 2, "bad value \"0\" for max_connections");
    const struct adapter_kv hh[] = {{"url", "http://a", 1}, {"host_header", "a b", 3}};
    refused(hh, 2, 3, "bad value \"a b\" for host_header");
    const struct adapter_kv sn[] = {{"url", "https://a", 1}, {"sni", "a_b!", 3}};
    refused(sn, 2, 3, "bad value \"a_b!\" for sni");
    const struct adapter_kv dup[] = {{"url", "http://a", 1}, {"url", "http://b", 2}};
    refused(dup, 2, 2,
            "duplicate key \"url\" in http backend \"vote\" (first at line 1)");
    const struct adapter_kv tlsonly[] = {{"verify", "false", 4}, {"url", "http://a", 5}};
    refused(tlsonly, 2, 4, "verify in http backend \"vote\" needs an https url");
    const struct adapter_kv ca[] = {{"url", "https://a", 1},
                                    {"ca_file", "/nonexistent/zaslon-ca.pem", 9}};
    refused(ca, 2, 9, "cannot read ca_file \"/nonexistent/zaslon-ca.pem\"");
    const struct adapter_kv mq[] = {{"url", "http://a", 1}, {"max_queue", "1025", 6}};
    refused(mq, 2, 6,
            "bad value \"1025\" for max_queue in http backend \"vote\": want a count "
            "from 0 to 1024");
    const char *bad_failures[] = {"1001", "-1", "five", "", "5 ", "0x5"};
    for (size_t i = 0; i < sizeof(bad_failures) / sizeof(bad_failures[0]); i++) {
        const struct adapter_kv bf[] = {{"url", "http://a", 1},
                                        {"breaker_failures", bad_failures[i], 7}};
        refused(bf, 2, 7, "bad value \"");
    }
    const struct adapter_kv bf[] = {{"url", "http://a", 1}, {"breaker_failures", "x", 7}};
    refused(bf, 2, 7,
            "bad value \"x\" for breaker_failures in http backend \"vote\": want a count "
            "from 0 (off) to 1000");
    const struct adapter_kv bc[] = {{"url", "http://a", 1}, {"breaker_cooldown", "0s", 8}};
    refused(bc, 2, 8,
            "bad value \"0s\" for breaker_cooldown in http backend \"vote\": want a "
            "duration");
    const struct adapter_kv bcd[] = {{"url", "http://a", 1},
                                     {"breaker_cooldown", "1s", 8},
                                     {"breaker_cooldown", "2s", 9}};
    refused(bcd, 3, 9,
            "duplicate key \"breaker_cooldown\" in http backend \"vote\" (first at "
            "line 8)");
    const struct adapter_kv noval[] = {{"url", NULL, 3}};
    refused(noval, 1, 3, "key \"url\" in http backend \"vote\" needs a value");

    /* A message that does not fit is cut, never overflowed. */
    char small[16];
    void *p = NULL;
    CU_ASSERT_EQUAL(parse(unknown, 2, small, sizeof(small), &p), ADAPTER_ERR_CONFIG);
    CU_ASSERT_TRUE(strlen(small) < sizeof(small));
}

static void registry(void)
{
    adapter_register_builtin();
    CU_ASSERT_PTR_EQUAL(adapter_lookup("http"), &ad_http_ops);
    /* Registering twice finds the name taken. */
    CU_ASSERT_EQUAL(adapter_register(&ad_http_ops), -1);
}

/* ------------------------------------------------------------------------------------ */
/* Scripted backend: reads one request (head, then content-length body), records it,
   answers the canned response (or nothing when silent).                              */

struct mini {
    struct event_base *base;
    struct evconnlistener *lis;
    uint16_t port;
    bool silent;
    const char *canned;
    unsigned accepts, nreqs;
    char last[4096];
    struct bufferevent *conns[8];
};

struct mini_conn {
    struct mini *m;
    struct bufferevent *bev;
    unsigned idx;
};

static void mini_conn_free(struct mini_conn *mc)
{
    if (mc->idx < 8 && mc->m->conns[mc->idx] == mc->bev)
        mc->m->conns[mc->idx] = NULL;
    bufferevent_free(mc->bev);
    free(mc);
}

static void mini_read(struct bufferevent *bev, void *arg)
{
    struct mini_conn *mc = arg;
    struct mini *m = mc->m;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (m->silent) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        return;
    size_t head = (size_t)end.pos + 4, body = 0;
    char hb[4096];
    size_t hl = head < sizeof(hb) - 1 ? head : sizeof(hb) - 1;
    evbuffer_copyout(in, hb, hl);
    hb[hl] = '\0';
    const char *cl = strstr(hb, "\r\ncontent-length: ");
    if (cl)
        body = strtoul(cl + 18, NULL, 10);
    if (evbuffer_get_length(in) < head + body)
        return;
    size_t n = head + body < sizeof(m->last) - 1 ? head + body : sizeof(m->last) - 1;
    evbuffer_remove(in, m->last, n);
    m->last[n] = '\0';
    evbuffer_drain(in, evbuffer_get_length(in));
    m->nreqs++;
    bufferevent_write(bev, m->canned, strlen(m->canned));
}

static void mini_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        mini_conn_free(arg);
}

static void mini_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int len, void *arg)
{
    struct mini *m = arg;
    (void)l;
    (void)sa;
    (void)len;
    struct mini_conn *mc = calloc(1, sizeof(*mc));
    if (!mc) {
        close(fd);
        return;
    }
    mc->m = m;
    mc->idx = m->accepts++;
    mc->bev = bufferevent_socket_new(m->base, fd,
                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (mc->idx < 8)
        m->conns[mc->idx] = mc->bev;
    bufferevent_setcb(mc->bev, mini_read, NULL, mini_event, mc);
    bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
}

static void mini_start(struct mini *m, struct event_base *base)
{
    memset(m, 0, sizeof(*m));
    m->base = base;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m->lis = evconnlistener_new_bind(base, mini_accept, m,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof(sin));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->lis);
    socklen_t sl = sizeof(sin);
    CU_ASSERT_FATAL(
        getsockname(evconnlistener_get_fd(m->lis), (struct sockaddr *)&sin, &sl) == 0);
    m->port = ntohs(sin.sin_port);
    m->canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
}

static void mini_stop(struct mini *m)
{
    for (int i = 0; i < 8; i++) {
        if (m->conns[i]) {
            struct mini_conn *mc = NULL;
            bufferevent_getcb(m->conns[i], NULL, NULL, NULL, (void **)&mc);
            mini_conn_free(mc);
        }
    }
    evconnlistener_free(m->lis);
}

/* ------------------------------------------------------------------------------------ */
/* Adapter client                                                                       */

struct ac {
    unsigned heads, datas, ends, errors;
    int status;
    int64_t clen;
    char hdrs[1024];
    size_t hl;
    struct evbuffer *body;
    int err;
    bool head_sent;
    size_t sent;
    unsigned *fin;
};

static void ac_head(void *arg, int status, const struct tp_header *h, size_t n,
                    int64_t clen)
{
    struct ac *a = arg;
    a->heads++;
    a->status = status;
    a->clen = clen;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(a->hdrs + a->hl, sizeof(a->hdrs) - a->hl, "%.*s: %.*s\n",
                         (int)h[i].name.len, h[i].name.base, (int)h[i].value.len,
                         h[i].value.base);
        if (w > 0 && (size_t)w < sizeof(a->hdrs) - a->hl)
            a->hl += (size_t)w;
    }
}

static bool ac_data(void *arg, struct evbuffer *data)
{
    struct ac *a = arg;
    a->datas++;
    evbuffer_add_buffer(a->body, data);
    return true;
}

static void ac_end(void *arg)
{
    struct ac *a = arg;
    a->ends++;
    ++*a->fin;
}

static void ac_error(void *arg, int err, bool head_sent)
{
    struct ac *a = arg;
    a->errors++;
    a->err = err;
    a->head_sent = head_sent;
    ++*a->fin;
}

static void ac_sent(void *arg, size_t n)
{
    struct ac *a = arg;
    a->sent += n;
}

static const struct adapter_response_cb ac_cb = {ac_head, ac_data, ac_end, ac_error,
                                                 ac_sent};

static void ac_init(struct ac *a, unsigned *fin)
{
    memset(a, 0, sizeof(*a));
    a->body = evbuffer_new();
    a->fin = fin;
}

static void deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

static bool run_count(struct event_base *base, const unsigned *count, unsigned want,
                      unsigned ms)
{
    bool timed_out = false;
    struct event *t = evtimer_new(base, deadline, &timed_out);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t, &tv);
    for (unsigned i = 0; i < 1000000 && (!count || *count < want) && !timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return count && *count >= want;
}

static unsigned nlogs;

static void test_log(void *ctx, enum adapter_log_level level, const char *fmt, va_list ap)
{
    (void)ctx;
    (void)level;
    (void)fmt;
    (void)ap;
    nlogs++;
}

static void *make(struct event_base *base, const struct adapter_kv *items, size_t n,
                  void **cfg)
{
    char err[512];
    CU_ASSERT_EQUAL_FATAL(parse(items, n, err, sizeof(err), cfg), 0);
    struct adapter_host host = {base, test_log, NULL};
    void *inst = NULL;
    CU_ASSERT_EQUAL_FATAL(ad_http_ops.create(*cfg, &host, &inst), 0);
    return inst;
}

static struct adapter_request get_req(const char *method, const char *path)
{
    return (struct adapter_request){
        .method = {method, strlen(method)},
        .authority = TP_STR_LIT("hidden.example"),
        .path = {path, strlen(path)},
        .content_length = -1,
    };
}

static void end_to_end(void)
{
    struct event_base *base = event_base_new();
    struct mini m;
    mini_start(&m, base);
    m.canned =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\n"
        "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nX-Keep: 2\r\nServer: be\r\n\r\nhello";
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/base/", m.port);
    const struct adapter_kv items[] = {{"url", url, 1},
                                       {"host_header", "svc.internal", 2}};
    void *cfg = NULL;
    void *inst = make(base, items, 2, &cfg);
    CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_OK);
    unsigned fin = 0;

    struct ac a;
    ac_init(&a, &fin);
    const struct tp_header h[] = {{TP_STR_LIT("accept"), TP_STR_LIT("*/*")}};
    struct adapter_request r = get_req("GET", "/x?y=1");
    r.headers = h;
    r.nheaders = 1;
    r.content_length = 0;
    void *hd = NULL;
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &a, &hd), 0);
    CU_ASSERT_EQUAL(a.heads + a.ends + a.errors, 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(a.ends, 1);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_EQUAL(a.clen, 5);
    CU_ASSERT_STRING_EQUAL(m.last, "GET /base/x?y=1 HTTP/1.1\r\nhost: svc.internal\r\n"
                                   "accept: */*\r\n\r\n");
    CU_ASSERT_STRING_EQUAL(a.hdrs, "x-keep: 2\nserver: be\n");
    char b[16] = {0};
    evbuffer_copyout(a.body, b, sizeof(b) - 1);
    CU_ASSERT_STRING_EQUAL(b, "hello");

    /* A body through the body op, with credit coming back. */
    struct ac p;
    ac_init(&p, &fin);
    struct adapter_request pr = get_req("POST", "/vote");
    pr.content_length = 6;
    pr.has_body = true;
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &pr, &ac_cb, &p, &hd), 0);
    struct evbuffer *eb = evbuffer_new();
    evbuffer_add(eb, "choice", 6);
    CU_ASSERT_EQUAL(ad_http_ops.body(hd, eb, true), 0);
    CU_ASSERT_EQUAL(evbuffer_get_length(eb), 0);
    evbuffer_free(eb);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(p.ends, 1);
    CU_ASSERT_EQUAL(p.sent, 6);
    CU_ASSERT_PTR_NOT_NULL(strstr(m.last, "POST /base/vote HTTP/1.1\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m.last, "\r\ncontent-length: 6\r\n\r\nchoice"));
    CU_ASSERT_EQUAL(m.accepts, 1);

    /* A body longer than declared is refused, and the request then fails. */
    struct ac o;
    ac_init(&o, &fin);
    pr = get_req("POST", "/vote");
    pr.content_length = 2;
    pr.has_body = true;
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &pr, &ac_cb, &o, &hd), 0);
    eb = evbuffer_new();
    evbuffer_add(eb, "abc", 3);
    CU_ASSERT_EQUAL(ad_http_ops.body(hd, eb, true), ADAPTER_ERR_PROTO);
    evbuffer_free(eb);
    CU_ASSERT_EQUAL(o.errors, 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 3, 3000));
    CU_ASSERT_EQUAL(o.errors, 1);
    CU_ASSERT_EQUAL(o.err, ADAPTER_ERR_PROTO);
    CU_ASSERT_FALSE(o.head_sent);
    evbuffer_free(o.body);

    /* Cancel before anything came back: no callback afterwards. */
    struct ac c;
    ac_init(&c, &fin);
    m.silent = true;
    r = get_req("GET", "/never");
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &c, &hd), 0);
    run_count(base, NULL, 0, 50);
    ad_http_ops.resume(hd);
    ad_http_ops.cancel(hd);
    run_count(base, NULL, 0, 50);
    CU_ASSERT_EQUAL(c.heads + c.ends + c.errors, 0);
    CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_OK);

    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);
    evbuffer_free(a.body);
    evbuffer_free(p.body);
    evbuffer_free(c.body);
    mini_stop(&m);
    event_base_free(base);
}

/* Fields a response's Connection options name are dropped: options in any case, over
   several Connection fields, and past the eight the adapter collects up front. */
static void connection_options(void)
{
    struct event_base *base = event_base_new();
    struct mini m;
    mini_start(&m, base);
    m.canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive, X-A\r\n"
               "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nconnection: x-B\r\n\r\nok";
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", m.port);
    const struct adapter_kv items[] = {{"url", url, 1}};
    void *cfg = NULL;
    void *inst = make(base, items, 1, &cfg);
    unsigned fin = 0;
    void *hd = NULL;

    struct ac a;
    ac_init(&a, &fin);
    struct adapter_request r = get_req("GET", "/a");
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &a, &hd), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(a.ends, 1);
    CU_ASSERT_STRING_EQUAL(a.hdrs, "x-c: 3\n");

    m.canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
               "Connection: o1, o2, o3, o4, o5, o6, o7, o8, X-Late\r\n"
               "X-Late: 1\r\nX-Stay: 2\r\nO3: 3\r\n\r\nok";
    struct ac b;
    ac_init(&b, &fin);
    r = get_req("GET", "/b");
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &b, &hd), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 2, 3000));
    CU_ASSERT_EQUAL(b.ends, 1);
    CU_ASSERT_STRING_EQUAL(b.hdrs, "x-stay: 2\n");

    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);
    evbuffer_free(a.body);
    evbuffer_free(b.body);
    mini_stop(&m);
    event_base_free(base);
}

static void errors_and_health(void)
{
    struct event_base *base = event_base_new();
    unsigned fin = 0;

    /* Refused -> ADAPTER_ERR_CONNECT; DOWN after AD_HTTP_DOWN_AFTER in a row. */
    struct mini gone;
    mini_start(&gone, base);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", gone.port);
    mini_stop(&gone);
    const struct adapter_kv items[] = {{"url", url, 1}};
    void *cfg = NULL;
    void *inst = make(base, items, 1, &cfg);
    for (unsigned i = 0; i < AD_HTTP_DOWN_AFTER; i++) {
        CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_OK);
        struct ac a;
        ac_init(&a, &fin);
        struct adapter_request r = get_req("GET", "/");
        void *hd = NULL;
        CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &a, &hd), 0);
        CU_ASSERT_TRUE(run_count(base, &fin, i + 1, 3000));
        CU_ASSERT_EQUAL(a.err, ADAPTER_ERR_CONNECT);
        CU_ASSERT_FALSE(a.head_sent);
        evbuffer_free(a.body);
    }
    CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_DOWN);
    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);

    /* First-byte timeout -> ADAPTER_ERR_TIMEOUT; full queue -> UNAVAILABLE from handle.
     */
    struct mini m;
    mini_start(&m, base);
    m.silent = true;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", m.port);
    const struct adapter_kv slow[] = {
        {"url", url, 1}, {"first_byte_timeout", "200ms", 2}, {"max_connections", "1", 3}};
    inst = make(base, slow, 3, &cfg);
    fin = 0;
    struct ac t;
    ac_init(&t, &fin);
    struct adapter_request r = get_req("GET", "/slow");
    void *hd = NULL;
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &t, &hd), 0);
    CU_ASSERT_TRUE(run_count(base, &fin, 1, 3000));
    CU_ASSERT_EQUAL(t.err, ADAPTER_ERR_TIMEOUT);
    evbuffer_free(t.body);

    void **hs = calloc(TP_UPSTREAM_QUEUE_MAX + 1, sizeof(*hs));
    struct ac *many = calloc(TP_UPSTREAM_QUEUE_MAX + 2, sizeof(*many));
    CU_ASSERT_PTR_NOT_NULL_FATAL(hs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    for (unsigned i = 0; i < TP_UPSTREAM_QUEUE_MAX + 1; i++) {
        ac_init(&many[i], &fin);
        CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &many[i], &hs[i]), 0);
    }
    ac_init(&many[TP_UPSTREAM_QUEUE_MAX + 1], &fin);
    void *over = NULL;
    CU_ASSERT_EQUAL(
        ad_http_ops.handle(inst, &r, &ac_cb, &many[TP_UPSTREAM_QUEUE_MAX + 1], &over),
        ADAPTER_ERR_UNAVAILABLE);
    for (unsigned i = 0; i < TP_UPSTREAM_QUEUE_MAX + 1; i++)
        ad_http_ops.cancel(hs[i]);
    run_count(base, NULL, 0, 50);
    CU_ASSERT_EQUAL(fin, 1);
    for (unsigned i = 0; i < TP_UPSTREAM_QUEUE_MAX + 2; i++)
        evbuffer_free(many[i].body);
    free(many);
    free(hs);
    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);
    mini_stop(&m);

    /* A name that does not resolve fails at create, with a log line. */
    const struct adapter_kv bad[] = {{"url", "http://no-such-host.invalid", 1}};
    char err[256];
    CU_ASSERT_EQUAL_FATAL(parse(bad, 1, err, sizeof(err), &cfg), 0);
    struct adapter_host host = {base, test_log, NULL};
    nlogs = 0;
    inst = NULL;
    CU_ASSERT_EQUAL(ad_http_ops.create(cfg, &host, &inst), ADAPTER_ERR_CONNECT);
    CU_ASSERT_PTR_NULL(inst);
    CU_ASSERT_EQUAL(nlogs, 1);
    ad_http_ops.config_free(cfg);
    event_base_free(base);
}

/* One GET through |inst|; returns handle's result, and runs the loop until it ends. */
static int one_get(struct event_base *base, void *inst, struct ac *a, unsigned *fin)
{
    ac_init(a, fin);
    struct adapter_request r = get_req("GET", "/b");
    void *hd = NULL;
    unsigned before = *fin;
    int rv = ad_http_ops.handle(inst, &r, &ac_cb, a, &hd);
    if (rv == 0)
        CU_ASSERT_TRUE(run_count(base, fin, before + 1, 3000));
    evbuffer_free(a->body);
    return rv;
}

static void breaker_and_queue(void)
{
    struct event_base *base = event_base_new();
    unsigned fin = 0;
    struct mini m;
    mini_start(&m, base);
    const char *good = m.canned;
    m.canned = "SPLAT 200 nonsense\r\n\r\n";
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", m.port);
    const struct adapter_kv items[] = {
        {"url", url, 1}, {"breaker_failures", "3", 2}, {"breaker_cooldown", "300ms", 3}};
    void *cfg = NULL;
    void *inst = make(base, items, 3, &cfg);
    struct ac a;

    /* Three garbage answers in a row open it... */
    for (unsigned i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_OK);
        CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), 0);
        CU_ASSERT_EQUAL(a.err, ADAPTER_ERR_PROTO);
    }
    CU_ASSERT_EQUAL(m.nreqs, 3);
    /* ... and then requests fail fast, without a connection. */
    unsigned accepts = m.accepts;
    for (unsigned i = 0; i < 20; i++)
        CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), ADAPTER_ERR_UNAVAILABLE);
    run_count(base, NULL, 0, 20);
    CU_ASSERT_EQUAL(m.accepts, accepts);
    CU_ASSERT_EQUAL(m.nreqs, 3);
    CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_DOWN);

    /* After the cooldown one probe goes; a failed probe opens it again at once. */
    run_count(base, NULL, 0, 400);
    CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), 0);
    CU_ASSERT_EQUAL(a.err, ADAPTER_ERR_PROTO);
    CU_ASSERT_EQUAL(m.nreqs, 4);
    CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), ADAPTER_ERR_UNAVAILABLE);

    /* Next cooldown: the probe is alone (others fail fast while it is out); it
       succeeds and closes the breaker. */
    m.canned = good;
    run_count(base, NULL, 0, 400);
    struct ac probe, other;
    ac_init(&probe, &fin);
    ac_init(&other, &fin);
    struct adapter_request r = get_req("GET", "/probe");
    void *hp = NULL, *ho = NULL;
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &probe, &hp), 0);
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &other, &ho),
                    ADAPTER_ERR_UNAVAILABLE);
    unsigned before = fin;
    CU_ASSERT_TRUE(run_count(base, &fin, before + 1, 3000));
    CU_ASSERT_EQUAL(probe.ends, 1);
    CU_ASSERT_EQUAL(probe.status, 200);
    evbuffer_free(probe.body);
    evbuffer_free(other.body);
    CU_ASSERT_EQUAL(ad_http_ops.health(inst), ADAPTER_HEALTH_OK);
    for (unsigned i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), 0);
        CU_ASSERT_EQUAL(a.ends, 1);
    }
    CU_ASSERT_EQUAL(m.nreqs, 10);

    /* A cancelled probe frees the slot for the next request. */
    m.canned = "SPLAT\r\n\r\n";
    for (unsigned i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), 0);
    CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), ADAPTER_ERR_UNAVAILABLE);
    run_count(base, NULL, 0, 400);
    m.silent = true;
    ac_init(&probe, &fin);
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &probe, &hp), 0);
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &other, &ho),
                    ADAPTER_ERR_UNAVAILABLE);
    ad_http_ops.cancel(hp);
    ac_init(&other, &fin);
    CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &other, &ho), 0);
    ad_http_ops.cancel(ho);
    evbuffer_free(probe.body);
    evbuffer_free(other.body);
    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);

    /* Queue limit: max_connections 1 + max_queue 2 in flight; the next is refused at
       once, and cancelled requests give their places back. */
    const struct adapter_kv lim[] = {{"url", url, 1},
                                     {"max_connections", "1", 2},
                                     {"max_queue", "2", 3},
                                     {"breaker_failures", "0", 4}};
    inst = make(base, lim, 4, &cfg);
    struct ac q[4];
    void *hq[4] = {0};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 4; i++) {
            ac_init(&q[i], &fin);
            CU_ASSERT_EQUAL(ad_http_ops.handle(inst, &r, &ac_cb, &q[i], &hq[i]),
                            i < 3 ? 0 : ADAPTER_ERR_UNAVAILABLE);
        }
        run_count(base, NULL, 0, 30);
        for (int i = 0; i < 3; i++)
            ad_http_ops.cancel(hq[i]);
        for (int i = 0; i < 4; i++) {
            CU_ASSERT_EQUAL(q[i].heads + q[i].ends + q[i].errors, 0);
            evbuffer_free(q[i].body);
        }
    }
    /* Breaker off: failures never make it refuse. */
    m.silent = false;
    for (unsigned i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(one_get(base, inst, &a, &fin), 0);
        CU_ASSERT_EQUAL(a.err, ADAPTER_ERR_PROTO);
    }
    ad_http_ops.destroy(inst);
    ad_http_ops.config_free(cfg);
    run_count(base, NULL, 0, 50);
    mini_stop(&m);
    event_base_free(base);
}

static int suite_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) == -1 ? -1 : 0;
}

int test_ad_http(void)
{
    CU_pSuite s = CU_add_suite("ad_http", suite_init, NULL);
    if (!s || !CU_add_test(s, "config: good blocks and defaults", config_good) ||
        !CU_add_test(s, "config: refusals with line numbers", config_errors) ||
        !CU_add_test(s, "registry", registry) ||
        !CU_add_test(s, "end to end", end_to_end) ||
        !CU_add_test(s, "Connection options drop the fields they name",
                     connection_options) ||
        !CU_add_test(s, "errors and health", errors_and_health) ||
        !CU_add_test(s, "circuit breaker and queue limit", breaker_and_queue))
        return -1;
    return 0;
}
