/* conf/: the example configs, defaults, every kind of error with its line, bounds at
   their edges, input caps, path resolution, and a failing-allocation loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "conf_snapshot.h"
#include "conf_snapshot_internal.h"

/* The example configs live in conf/, two levels above tests/vectors. */
#define CONF_DIR ZASLON_TEST_VECTORS "/../../conf"

/* Every inline config starts with this line, so errors below it are on line 2+. */
#define L1 "listen: [{address: '*:1'}]\n"

static int load(const char *yaml, struct conf_snapshot **out, struct conf_error *err)
{
    return conf_snapshot_load_buffer("t.yaml", yaml, strlen(yaml), out, err);
}

/* Loads |yaml| and checks it succeeds; returns the snapshot (or NULL, after failing). */
static struct conf_snapshot *load_ok(const char *yaml)
{
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};
    int rc = load(yaml, &s, &err);
    if (rc != 0)
        fprintf(stderr, "\nunexpected failure (%d) \"%s\" for:\n%s\n", rc, err.msg, yaml);
    CU_ASSERT_EQUAL(rc, 0);
    return s;
}

struct bad {
    const char *yaml;
    int code;
    unsigned line;
    const char *reason; /* substring of the message */
};

static void expect_bad(const struct bad *b)
{
    static struct conf_snapshot canary_obj;
    struct conf_snapshot *const canary = &canary_obj;
    struct conf_snapshot *s = canary; /* must stay untouched */
    struct conf_error err = {{0}, 0};
    int rc = load(b->yaml, &s, &err);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "t.yaml:%u: ", b->line);
    bool ok = rc == b->code && err.line == b->line && strstr(err.msg, b->reason) &&
              strncmp(err.msg, prefix, strlen(prefix)) == 0 && s == canary;
    if (!ok)
        fprintf(stderr, "\nfor:\n%s\nwant %d line %u \"%s\"\ngot  %d line %u \"%s\"\n",
                b->yaml, b->code, b->line, b->reason, rc, err.line, err.msg);
    CU_ASSERT_TRUE(ok);
    if (rc == 0 && s != canary)
        conf_snapshot_free(s);
}

static void expect_all_bad(const struct bad *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_bad(&cases[i]);
}

#define EXPECT_ALL_BAD(cases) expect_all_bad(cases, sizeof(cases) / sizeof(cases[0]))

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static bool str_is(const char *got, const char *want)
{
    bool ok = got && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "\nwant \"%s\", got \"%s\"\n", want, got ? got : "(null)");
    return ok;
}

/* ---- the example configs ------------------------------------------------------- */

static void demo_config(void)
{
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};
    int rc = conf_snapshot_load_file(CONF_DIR "/demo.yaml", &s, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(err.line, 0);
    CU_ASSERT_TRUE(str_is(s->file, CONF_DIR "/demo.yaml"));
    CU_ASSERT_EQUAL(s->workers, 1);
    CU_ASSERT_EQUAL(s->log_level, CONF_LOG_DEBUG);
    CU_ASSERT_TRUE(str_is(s->error_log, "stderr"));
    CU_ASSERT_PTR_NULL(s->server_header);
    CU_ASSERT_PTR_NULL(s->access_log);
    CU_ASSERT_EQUAL_FATAL(s->nlisten, 2);
    CU_ASSERT_TRUE(str_is(s->listen[0].host, "127.0.0.1"));
    CU_ASSERT_EQUAL(s->listen[0].port, 8443);
    CU_ASSERT_TRUE(s->listen[0].tls);
    /* ZASLON_TEST_VECTORS is absolute, so the config's directory is used as is. */
    CU_ASSERT_TRUE(str_is(s->listen[0].certificate, CONF_DIR "/demo-cert.pem"));
    CU_ASSERT_TRUE(str_is(s->listen[0].key, CONF_DIR "/demo-key.pem"));
    CU_ASSERT_TRUE(str_is(s->listen[1].host, "127.0.0.1"));
    CU_ASSERT_EQUAL(s->listen[1].port, 8080);
    CU_ASSERT_FALSE(s->listen[1].tls);
    CU_ASSERT_PTR_NULL(s->listen[1].certificate);
    CU_ASSERT_TRUE(str_is(s->cover.root, CONF_DIR "/demo-cover"));
    CU_ASSERT_PTR_NULL(s->cover.upstream);
    CU_ASSERT_TRUE(str_is(s->cover.index, "index.html"));
    CU_ASSERT_TRUE(str_is(s->cover.not_found, "404.html"));
    CU_ASSERT_EQUAL_FATAL(s->nbackends, 1);
    const struct conf_backend *be = &s->backends[0];
    CU_ASSERT_TRUE(str_is(be->name, "demo"));
    CU_ASSERT_TRUE(str_is(be->adapter, "http"));
    CU_ASSERT_EQUAL_FATAL(be->nparams, 1);
    CU_ASSERT_TRUE(str_is(be->params[0].key, "url"));
    CU_ASSERT_TRUE(str_is(be->params[0].value, "http://127.0.0.1:9080"));
    CU_ASSERT_TRUE(be->params[0].line > 1);
    size_t ndef = 0;
    while (conf_default_allowlist[ndef])
        ndef++;
    CU_ASSERT_EQUAL_FATAL(be->nheaders, ndef);
    for (size_t i = 0; i < ndef; i++)
        CU_ASSERT_TRUE(str_is(be->headers[i], conf_default_allowlist[i]));
    CU_ASSERT_PTR_NULL(be->headers[ndef]);
    CU_ASSERT_FALSE(be->allow_cookie);
    CU_ASSERT_EQUAL(be->replay, CONF_REPLAY_OPTIONAL);
    CU_ASSERT_EQUAL(be->pad_min, 1024);
    CU_ASSERT_EQUAL_FATAL(s->nroutes, 1);
    CU_ASSERT_TRUE(str_is(s->routes[0].host, "demo.example"));
    CU_ASSERT_TRUE(str_is(s->routes[0].path, "/"));
    CU_ASSERT_EQUAL(s->routes[0].handler, CONF_HANDLER_BACKEND);
    CU_ASSERT_TRUE(str_is(s->routes[0].backend, "demo"));
    CU_ASSERT_FALSE(s->sealed.enabled);
    conf_snapshot_free(s);
}

static void cdn_config(void)
{
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};
    int rc = conf_snapshot_load_file(CONF_DIR "/edge-behind-cdn.yaml", &s, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(s->workers, 0);
    CU_ASSERT_EQUAL(s->role, CONF_ROLE_EDGE);
    CU_ASSERT_TRUE(str_is(s->server_header, "nginx"));
    CU_ASSERT_EQUAL(s->log_level, CONF_LOG_WARN);
    CU_ASSERT_PTR_NULL(s->access_log);
    CU_ASSERT_EQUAL_FATAL(s->nlisten, 1);
    CU_ASSERT_TRUE(str_is(s->listen[0].host, ""));
    CU_ASSERT_EQUAL(s->listen[0].port, 8080);
    CU_ASSERT_FALSE(s->listen[0].tls);
    CU_ASSERT_EQUAL(s->limits.connections_per_worker, 2000);
    CU_ASSERT_EQUAL(s->limits.max_concurrent_streams, 250);
    CU_ASSERT_EQUAL(s->limits.idle_timeout_ms, 300000);
    CU_ASSERT_EQUAL(s->limits.body_timeout_ms, 20000);
    CU_ASSERT_EQUAL(s->limits.drain_timeout_ms, 60000);
    CU_ASSERT_EQUAL(s->limits.header_fields, 100); /* left at its default */
    CU_ASSERT_TRUE(str_is(s->cover.root, "/var/www/cover"));
    CU_ASSERT_EQUAL_FATAL(s->nbackends, 3);
    const struct conf_backend *v = &s->backends[0], *id = &s->backends[1];
    CU_ASSERT_TRUE(str_is(v->name, "voting"));
    CU_ASSERT_EQUAL(v->replay, CONF_REPLAY_STRICT);
    CU_ASSERT_EQUAL(v->pad_min, 16384);
    CU_ASSERT_EQUAL_FATAL(v->nheaders, 4);
    CU_ASSERT_TRUE(str_is(v->headers[3], "date"));
    CU_ASSERT_EQUAL_FATAL(v->nparams, 2);
    CU_ASSERT_TRUE(str_is(v->params[1].key, "connect_timeout"));
    CU_ASSERT_TRUE(str_is(v->params[1].value, "2s"));
    CU_ASSERT_TRUE(str_is(id->name, "identity"));
    CU_ASSERT_EQUAL_FATAL(id->nparams, 2);
    CU_ASSERT_TRUE(str_is(id->params[1].value, "/etc/zaslon/backend-ca.pem"));
    CU_ASSERT_FALSE(id->allow_cookie);
    CU_ASSERT_EQUAL(id->pad_min, 4096);
    CU_ASSERT_TRUE(str_is(s->backends[2].name, "service"));
    CU_ASSERT_TRUE(s->sealed.enabled);
    CU_ASSERT_TRUE(str_is(s->sealed.path, "/static/js/app.bundle/"));
    CU_ASSERT_TRUE(str_is(s->sealed.keys_dir, "/etc/zaslon/keys"));
    CU_ASSERT_TRUE(str_is(s->sealed.keys_path, "/static/js/manifest.json"));
    CU_ASSERT_EQUAL(s->sealed.replay_window_ms, 60000);
    CU_ASSERT_EQUAL(s->sealed.replay_cache, 200000);
    CU_ASSERT_EQUAL(s->sealed.max_request, 65536);
    CU_ASSERT_EQUAL(s->sealed.max_response, 1048576);
    CU_ASSERT_EQUAL_FATAL(s->nroutes, 3);
    CU_ASSERT_TRUE(str_is(s->routes[2].host, "*.service.example"));
    CU_ASSERT_TRUE(str_is(s->routes[2].backend, "service"));
    conf_snapshot_free(s);
}

/* ---- defaults and values ------------------------------------------------------- */

static void defaults(void)
{
    struct conf_snapshot *s = load_ok(L1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct conf_limits d;
    memset(&d, 0, sizeof(d)); /* padding too, for memcmp */
    conf_limits_default(&d);
    CU_ASSERT_EQUAL(memcmp(&s->limits, &d, sizeof(d)), 0);
    CU_ASSERT_EQUAL(s->limits.stream_timeout_ms, 60000);
    CU_ASSERT_EQUAL(s->limits.memory_budget, 0); /* off */
    CU_ASSERT_EQUAL(s->workers, 0);
    CU_ASSERT_EQUAL(s->role, CONF_ROLE_EDGE);
    CU_ASSERT_PTR_NULL(s->server_header);
    CU_ASSERT_TRUE(str_is(s->error_log, "stderr"));
    CU_ASSERT_EQUAL(s->log_level, CONF_LOG_INFO);
    CU_ASSERT_PTR_NULL(s->access_log);
    CU_ASSERT_TRUE(str_is(s->listen[0].host, ""));
    CU_ASSERT_EQUAL(s->listen[0].port, 1);
    CU_ASSERT_EQUAL(s->listen[0].line, 1);
    CU_ASSERT_PTR_NULL(s->cover.root);
    CU_ASSERT_PTR_NULL(s->cover.upstream);
    CU_ASSERT_TRUE(str_is(s->cover.index, "index.html"));
    CU_ASSERT_TRUE(str_is(s->cover.not_found, "404.html"));
    CU_ASSERT_FALSE(s->sealed.enabled);
    CU_ASSERT_PTR_NULL(s->sealed.keys_dir);
    CU_ASSERT_TRUE(str_is(s->sealed.path, "/s/"));
    CU_ASSERT_TRUE(str_is(s->sealed.keys_path, "/.well-known/ohttp-gateway"));
    CU_ASSERT_EQUAL(s->sealed.replay_window_ms, 60000);
    CU_ASSERT_EQUAL(s->sealed.replay_cache, 100000);
    CU_ASSERT_EQUAL(s->sealed.max_request, 64 * 1024);
    CU_ASSERT_EQUAL(s->sealed.max_response, 1024 * 1024);
    CU_ASSERT_EQUAL(s->nbackends, 0);
    CU_ASSERT_EQUAL(s->nroutes, 0);
    conf_snapshot_free(s);

    /* sealed with only its required key takes every other default. */
    s = load_ok(L1 "sealed: {keys: /k}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_TRUE(s->sealed.enabled);
    CU_ASSERT_TRUE(str_is(s->sealed.keys_dir, "/k"));
    CU_ASSERT_TRUE(str_is(s->sealed.path, "/s/"));
    conf_snapshot_free(s);
}

/* Each limit lands in its own field (the table's offsets and types match the struct). */
static void every_limit(void)
{
    struct conf_snapshot *s = load_ok(L1 "limits:\n"
                                         "  connections_per_worker: 11\n"
                                         "  max_concurrent_streams: 12\n"
                                         "  header_list_size: 13k\n"
                                         "  header_fields: 14\n"
                                         "  max_continuations: 15\n"
                                         "  stream_reset_burst: 16\n"
                                         "  stream_reset_rate: 17\n"
                                         "  tls_handshake_timeout: 18s\n"
                                         "  header_timeout: 19s\n"
                                         "  idle_timeout: 20s\n"
                                         "  body_timeout: 21s\n"
                                         "  write_timeout: 22s\n"
                                         "  output_buffer: 23k\n"
                                         "  stream_buffer: 24k\n"
                                         "  drain_timeout: 25s\n"
                                         "  stream_timeout: 26s\n"
                                         "  memory_budget: 27m\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const struct conf_limits *l = &s->limits;
    CU_ASSERT_EQUAL(l->connections_per_worker, 11);
    CU_ASSERT_EQUAL(l->max_concurrent_streams, 12);
    CU_ASSERT_EQUAL(l->header_list_size, 13 * 1024);
    CU_ASSERT_EQUAL(l->header_fields, 14);
    CU_ASSERT_EQUAL(l->max_continuations, 15);
    CU_ASSERT_EQUAL(l->stream_reset_burst, 16);
    CU_ASSERT_EQUAL(l->stream_reset_rate, 17);
    CU_ASSERT_EQUAL(l->tls_handshake_timeout_ms, 18000);
    CU_ASSERT_EQUAL(l->header_timeout_ms, 19000);
    CU_ASSERT_EQUAL(l->idle_timeout_ms, 20000);
    CU_ASSERT_EQUAL(l->body_timeout_ms, 21000);
    CU_ASSERT_EQUAL(l->write_timeout_ms, 22000);
    CU_ASSERT_EQUAL(l->output_buffer, 23 * 1024);
    CU_ASSERT_EQUAL(l->stream_buffer, 24 * 1024);
    CU_ASSERT_EQUAL(l->drain_timeout_ms, 25000);
    CU_ASSERT_EQUAL(l->stream_timeout_ms, 26000);
    CU_ASSERT_EQUAL(l->memory_budget, 27u << 20);
    conf_snapshot_free(s);
}

struct edge {
    const char *limit; /* "key: value" under limits, or a full top-level line */
    bool ok;
    unsigned long long want; /* stored value when ok (bytes, ms or count) */
};

static void bounds(void)
{
    static const struct edge edges[] = {
        {"limits: {connections_per_worker: 1}", true, 1},
        {"limits: {connections_per_worker: 1000000}", true, 1000000},
        {"limits: {connections_per_worker: 0}", false, 0},
        {"limits: {connections_per_worker: 1000001}", false, 0},
        {"limits: {max_concurrent_streams: 1000}", true, 1000},
        {"limits: {max_concurrent_streams: 1001}", false, 0},
        {"limits: {header_list_size: 1k}", true, 1024},
        {"limits: {header_list_size: 1024}", true, 1024},
        {"limits: {header_list_size: 1023}", false, 0},
        {"limits: {header_list_size: 1m}", true, 1048576},
        {"limits: {header_list_size: 1M}", true, 1048576},
        {"limits: {header_list_size: 1024K}", true, 1048576},
        {"limits: {header_list_size: 1025k}", false, 0},
        {"limits: {header_fields: 8}", true, 8},
        {"limits: {header_fields: 7}", false, 0},
        {"limits: {header_fields: 1000}", true, 1000},
        {"limits: {header_fields: 1001}", false, 0},
        {"limits: {max_continuations: 1}", true, 1},
        {"limits: {max_continuations: 0}", false, 0},
        {"limits: {max_continuations: 64}", true, 64},
        {"limits: {max_continuations: 65}", false, 0},
        {"limits: {stream_reset_burst: 100000}", true, 100000},
        {"limits: {stream_reset_burst: 100001}", false, 0},
        {"limits: {stream_reset_rate: 10000}", true, 10000},
        {"limits: {stream_reset_rate: 0}", false, 0},
        {"limits: {idle_timeout: 100ms}", true, 100},
        {"limits: {idle_timeout: 99ms}", false, 0},
        {"limits: {idle_timeout: 60m}", true, 3600000},
        {"limits: {idle_timeout: 3600}", true, 3600000},
        {"limits: {idle_timeout: 3600000ms}", true, 3600000},
        {"limits: {idle_timeout: 3601s}", false, 0},
        {"limits: {idle_timeout: 61m}", false, 0},
        {"limits: {idle_timeout: 0}", false, 0},
        {"limits: {drain_timeout: 1}", true, 1000},
        {"limits: {output_buffer: 16k}", true, 16384},
        {"limits: {output_buffer: 16383}", false, 0},
        {"limits: {output_buffer: 64m}", true, 64u << 20},
        {"limits: {output_buffer: 65537k}", false, 0},
        {"limits: {stream_buffer: 16m}", true, 16u << 20},
        {"limits: {stream_buffer: 16385k}", false, 0},
        {"limits: {stream_timeout: 100ms}", true, 100},
        {"limits: {stream_timeout: 99ms}", false, 0},
        {"limits: {stream_timeout: 60m}", true, 3600000},
        {"limits: {stream_timeout: 61m}", false, 0},
        {"limits: {memory_budget: 0}", true, 0},
        {"limits: {memory_budget: 1}", true, 1},
        {"limits: {memory_budget: 512m}", true, 512u << 20},
        {"limits: {memory_budget: 1048576m}", true, 1ull << 40},
        {"limits: {memory_budget: 1048577m}", false, 0},
        /* Overflow in the digits and in the suffix both come out as out of range. */
        {"limits: {stream_buffer: 99999999999999999999999}", false, 0},
        {"limits: {stream_buffer: 18446744073709551615k}", false, 0},
        {"limits: {idle_timeout: 18446744073709551615}", false, 0},
        {"workers: 1", true, 1},
        {"workers: 256", true, 256},
        {"workers: 257", false, 0},
        {"workers: 0", false, 0},
        {"sealed: {keys: /k, replay_window: 1s}", true, 1000},
        {"sealed: {keys: /k, replay_window: 999ms}", false, 0},
        {"sealed: {keys: /k, replay_cache: 1000}", true, 1000},
        {"sealed: {keys: /k, replay_cache: 999}", false, 0},
        {"sealed: {keys: /k, replay_cache: 10000000}", true, 10000000},
        {"sealed: {keys: /k, max_request: 16m}", true, 16u << 20},
        {"sealed: {keys: /k, max_request: 16385k}", false, 0},
        {"sealed: {keys: /k, max_response: 64m}", true, 64u << 20},
        {"sealed: {keys: /k, max_response: 1023}", false, 0},
        {"backends: {b: {adapter: http, pad_min: 1}}", true, 1},
        {"backends: {b: {adapter: http, pad_min: 0}}", false, 0},
        {"backends: {b: {adapter: http, pad_min: 1m}}", true, 1048576},
        {"backends: {b: {adapter: http, pad_min: 1025k}}", false, 0},
    };
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        const struct edge *e = &edges[i];
        char yaml[256];
        snprintf(yaml, sizeof(yaml), L1 "%s\n", e->limit);
        struct conf_snapshot *s = NULL;
        struct conf_error err = {{0}, 0};
        int rc = load(yaml, &s, &err);
        bool ok;
        if (!e->ok) {
            ok = rc == CONF_ERR_RANGE && err.line == 2 && strstr(err.msg, "out of range");
        } else if (rc != 0) {
            ok = false;
        } else {
            unsigned long long got = 0;
            if (strncmp(e->limit, "workers", 7) == 0)
                got = s->workers;
            else if (strncmp(e->limit, "backends", 8) == 0)
                got = s->backends[0].pad_min;
            else if (strstr(e->limit, "replay_window"))
                got = s->sealed.replay_window_ms;
            else if (strstr(e->limit, "replay_cache"))
                got = s->sealed.replay_cache;
            else if (strstr(e->limit, "max_request"))
                got = s->sealed.max_request;
            else if (strstr(e->limit, "max_response"))
                got = s->sealed.max_response;
            else if (strstr(e->limit, "connections_per_worker"))
                got = s->limits.connections_per_worker;
            else if (strstr(e->limit, "max_concurrent_streams"))
                got = s->limits.max_concurrent_streams;
            else if (strstr(e->limit, "header_list_size"))
                got = s->limits.header_list_size;
            else if (strstr(e->limit, "header_fields"))
                got = s->limits.header_fields;
            else if (strstr(e->limit, "max_continuations"))
                got = s->limits.max_continuations;
            else if (strstr(e->limit, "stream_reset_burst"))
                got = s->limits.stream_reset_burst;
            else if (strstr(e->limit, "stream_reset_rate"))
                got = s->limits.stream_reset_rate;
            else if (strstr(e->limit, "idle_timeout"))
                got = s->limits.idle_timeout_ms;
            else if (strstr(e->limit, "drain_timeout"))
                got = s->limits.drain_timeout_ms;
            else if (strstr(e->limit, "output_buffer"))
                got = s->limits.output_buffer;
            else if (strstr(e->limit, "stream_buffer"))
                got = s->limits.stream_buffer;
            else if (strstr(e->limit, "stream_timeout"))
                got = s->limits.stream_timeout_ms;
            else if (strstr(e->limit, "memory_budget"))
                got = s->limits.memory_budget;
            ok = got == e->want;
        }
        if (!ok)
            fprintf(stderr, "\nbound case \"%s\": rc %d \"%s\"\n", e->limit, rc, err.msg);
        CU_ASSERT_TRUE(ok);
        conf_snapshot_free(s);
    }
}

static void bad_values(void)
{
    static const struct bad cases[] = {
        {L1 "workers: x\n", CONF_ERR_TYPE, 2,
         "workers: expected \"auto\" or an integer 1..256"},
        {L1 "workers: 0\n", CONF_ERR_RANGE, 2,
         "workers: 0 is out of range: expected \"auto\" or an integer 1..256"},
        {L1 "workers: -1\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "workers: +4\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "workers: ' 4'\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "workers: 4.0\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "workers: 0x10\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "workers: [4]\n", CONF_ERR_TYPE, 2, "workers: expected"},
        {L1 "limits:\n  header_list_size: 1kb\n", CONF_ERR_TYPE, 3,
         "limits.header_list_size: expected a size 1k..1m"},
        {L1 "limits:\n  header_list_size: 1 k\n", CONF_ERR_TYPE, 3, "expected a size"},
        {L1 "limits:\n  header_list_size: 2g\n", CONF_ERR_TYPE, 3, "expected a size"},
        {L1 "limits:\n  idle_timeout: 1h\n", CONF_ERR_TYPE, 3,
         "limits.idle_timeout: expected a duration 100ms..60m"},
        {L1 "limits:\n  idle_timeout: 10S\n", CONF_ERR_TYPE, 3, "expected a duration"},
        {L1 "limits:\n  idle_timeout: 1.5s\n", CONF_ERR_TYPE, 3, "expected a duration"},
        {L1 "limits:\n  idle_timeout: s\n", CONF_ERR_TYPE, 3, "expected a duration"},
        {L1 "limits:\n  header_fields: 1_000\n", CONF_ERR_TYPE, 3,
         "limits.header_fields: expected an integer 8..1000"},
        {L1 "role: satellite\n", CONF_ERR_TYPE, 2,
         "role: expected \"edge\", \"relay\" or \"gateway\""},
        {L1 "role: relay\n", CONF_ERR_MISSING, 2, "role relay needs a relay section"},
        {L1 "role: gateway\nsealed: {keys: /k}\n", CONF_ERR_MISSING, 2,
         "role gateway needs a listener with tls.client_ca"},
        {L1 "relay: {gateway: https://g/s/, certificate: /c, key: /k}\n", CONF_ERR_TYPE, 2,
         "relay: only for role relay"},
        {L1 "role: relay\nrelay: {gateway: https://g/s/, certificate: /c, key: /k}\n"
            "sealed: {path: /s/, keys: /k}\n", CONF_ERR_TYPE, 4,
         "sealed.keys: a relay holds no keys"},
        {L1 "relay: {gateway: http://g/s/}\nrole: relay\n", CONF_ERR_TYPE, 2,
         "relay.gateway: expected an https:// URL"},
        {L1 "gate: {header: x-origin-secret, secrets: [short]}\n", CONF_ERR_TYPE, 2,
         "gate.secrets: each value is 16..256"},
        {L1 "gate: {header: \"bad header\", secrets: [0123456789abcdef]}\n", CONF_ERR_TYPE, 2,
         "gate.header"},
        {L1 "gate: {header: x-s}\n", CONF_ERR_MISSING, 2, "missing required key \"secrets\""},
        {L1 "mount: /edge/\n", CONF_ERR_TYPE, 2, "mount: expected a prefix"},
        {L1 "role: gateway\ngate: {header: x-s, secrets: [0123456789abcdef]}\n"
            "sealed: {keys: /k}\n", CONF_ERR_TYPE, 3, "gate: not on a gateway"},
        {L1 "error_log: {level: verbose}\n", CONF_ERR_TYPE, 2,
         "error_log.level: expected error, warn, info or debug"},
        {L1 "backends: {b: {adapter: http, allow_cookie: yes}}\n", CONF_ERR_TYPE, 2,
         "backends.b.allow_cookie: expected true or false"},
        {L1 "backends: {b: {adapter: http, allow_cookie: 'True'}}\n", CONF_ERR_TYPE, 2,
         "expected true or false"},
        {L1 "backends: {b: {adapter: http, replay: always}}\n", CONF_ERR_TYPE, 2,
         "backends.b.replay: expected optional or strict"},
        {L1 "server_header: ' nginx'\n", CONF_ERR_TYPE, 2, "server_header: expected"},
        {L1 "server_header: \"a\\tb\"\n", CONF_ERR_TYPE, 2, "server_header: expected"},
        {L1 "server_header:\n", CONF_ERR_TYPE, 2, "server_header: empty value"},
        {L1 "server_header: ~\n", CONF_ERR_TYPE, 2, "server_header: empty value"},
        {L1 "server_header: ''\n", CONF_ERR_TYPE, 2, "server_header: empty value"},
        {L1 "access_log: \"a\\nb\"\n", CONF_ERR_TYPE, 2,
         "access_log: control character in path"},
    };
    EXPECT_ALL_BAD(cases);

    /* Strings accepted as they are: a 128-byte Server field, inner spaces. */
    char yaml[512];
    snprintf(yaml, sizeof(yaml), L1 "server_header: '%0128d'\n", 0);
    struct conf_snapshot *s = load_ok(yaml);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(strlen(s->server_header), 128);
    conf_snapshot_free(s);
    snprintf(yaml, sizeof(yaml), L1 "server_header: '%0129d'\n", 0);
    struct bad too_long = {yaml, CONF_ERR_TYPE, 2, "server_header: expected 1..128"};
    expect_bad(&too_long);
    s = load_ok(L1 "server_header: Apache/2.4 (Debian)\nerror_log: {level: error}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_TRUE(str_is(s->server_header, "Apache/2.4 (Debian)"));
    CU_ASSERT_EQUAL(s->log_level, CONF_LOG_ERROR);
    conf_snapshot_free(s);
}

/* ---- structure errors ---------------------------------------------------------- */

static void bad_structure(void)
{
    static const struct bad cases[] = {
        {L1 "listn: 1\n", CONF_ERR_UNKNOWN, 2, "unknown key \"listn\" in top level"},
        {L1 "limits:\n  idle: 5s\n", CONF_ERR_UNKNOWN, 3,
         "unknown key \"idle\" in limits"},
        {L1 "cover: {rot: /x}\n", CONF_ERR_UNKNOWN, 2, "unknown key \"rot\" in cover"},
        {L1 "sealed: {keys: /k, pth: /x/}\n", CONF_ERR_UNKNOWN, 2,
         "unknown key \"pth\" in sealed"},
        {L1 "error_log: {file: x}\n", CONF_ERR_UNKNOWN, 2,
         "unknown key \"file\" in error_log"},
        {"listen:\n  - address: '*:1'\n    tsl: {}\n", CONF_ERR_UNKNOWN, 3,
         "unknown key \"tsl\" in listen entry"},
        {"listen:\n  - address: '*:1'\n    tls: {certificate: c, key: k, ca: x}\n",
         CONF_ERR_UNKNOWN, 3, "unknown key \"ca\" in listen.tls"},
        {L1 "routes:\n  - handler: cover\n    hots: a.example\n", CONF_ERR_UNKNOWN, 4,
         "unknown key \"hots\" in routes entry"},
        {L1 "workers: 1\nworkers: 2\n", CONF_ERR_DUPLICATE, 3,
         "duplicate key \"workers\" (first on line 2)"},
        {L1 "limits:\n  idle_timeout: 1\n  idle_timeout: 2\n", CONF_ERR_DUPLICATE, 4,
         "duplicate key \"idle_timeout\" (first on line 3)"},
        {L1 "backends:\n  a: {adapter: http}\n  a: {adapter: http}\n", CONF_ERR_DUPLICATE,
         4, "duplicate key \"a\""},
        {L1 "limits: 5\n", CONF_ERR_TYPE, 2, "limits: expected a map, not a scalar"},
        {L1 "limits: [1]\n", CONF_ERR_TYPE, 2, "limits: expected a map, not a sequence"},
        {L1 "limits:\n", CONF_ERR_TYPE, 2, "limits: empty value (expected a map)"},
        {"listen: {address: '*:1'}\n", CONF_ERR_TYPE, 1,
         "listen: expected a sequence, not a map"},
        {"listen: ['*:1']\n", CONF_ERR_TYPE, 1, "listen entry: expected a map"},
        {L1 "cover: {root: [a]}\n", CONF_ERR_TYPE, 2, "cover.root: expected a scalar"},
        {"workers: 1\n", CONF_ERR_MISSING, 1,
         "missing required key \"listen\" in top level"},
        {"", CONF_ERR_MISSING, 1, "empty configuration"},
        {"# only a comment\n", CONF_ERR_MISSING, 1, "empty configuration"},
        {"---\n", CONF_ERR_MISSING, 1, "empty configuration"},
        {"~\n", CONF_ERR_MISSING, 1, "empty configuration"},
        {"''\n", CONF_ERR_TYPE, 1, "top level: expected a map, not a scalar"},
        {"hello\n", CONF_ERR_TYPE, 1, "top level: expected a map, not a scalar"},
        {"- a\n", CONF_ERR_TYPE, 1, "top level: expected a map, not a sequence"},
        {"listen: []\n", CONF_ERR_MISSING, 1, "listen: expected at least one entry"},
        {"workers: 1\nlisten:\n  - tls: {certificate: c, key: k}\n", CONF_ERR_MISSING, 3,
         "missing required key \"address\" in listen entry"},
        {"listen:\n  - address: '*:1'\n    tls: {certificate: c}\n", CONF_ERR_MISSING, 3,
         "missing required key \"key\" in listen.tls"},
        {"listen:\n  - address: '*:1'\n    tls: {key: k}\n", CONF_ERR_MISSING, 3,
         "missing required key \"certificate\" in listen.tls"},
        {"listen:\n  - address: '*:1'\n    tls:\n", CONF_ERR_TYPE, 3,
         "listen.tls: empty value"},
        {L1 "backends:\n  b:\n    url: x\n", CONF_ERR_MISSING, 4,
         "missing required key \"adapter\" in backends.b"},
        {L1 "sealed:\n  path: /s/\n", CONF_ERR_MISSING, 3,
         "missing required key \"keys\" in sealed"},
        {L1 "routes:\n  - host: a.example\n", CONF_ERR_MISSING, 3,
         "missing required key \"handler\" in routes entry"},
        {L1 "? [a, b]\n: 1\n", CONF_ERR_TYPE, 2, "keys must be scalars"},
        {L1 "{a: 1}: 2\n", CONF_ERR_TYPE, 2, "keys must be scalars, not maps"},
    };
    EXPECT_ALL_BAD(cases);
}

static void bad_yaml(void)
{
    static const struct bad cases[] = {
        {L1 "workers: &w 4\n", CONF_ERR_SYNTAX, 2, "anchors are not allowed"},
        {L1 "limits: &l {}\n", CONF_ERR_SYNTAX, 2, "anchors are not allowed"},
        {L1 "routes: &r []\n", CONF_ERR_SYNTAX, 2, "anchors are not allowed"},
        /* The alias is refused even before anything it names is seen. */
        {L1 "workers: *w\n", CONF_ERR_SYNTAX, 2, "aliases are not allowed"},
        /* Billion laughs stops at the first anchor. */
        {"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n",
         CONF_ERR_SYNTAX, 1, "anchors are not allowed"},
        {L1 "workers: !!int 4\n", CONF_ERR_SYNTAX, 2, "tags are not allowed"},
        {L1 "limits: !!map {}\n", CONF_ERR_SYNTAX, 2, "tags are not allowed"},
        {L1 "---\nworkers: 1\n", CONF_ERR_SYNTAX, 2, "more than one document"},
        {"---\n" L1 "...\n---\nworkers: 1\n", CONF_ERR_SYNTAX, 4,
         "more than one document"},
        {"---\n" L1 "---\n", CONF_ERR_SYNTAX, 3, "more than one document"},
        {L1 "workers: [1, 2\n", CONF_ERR_SYNTAX, 3, "syntax error"},
        {L1 "  workers: 1\n", CONF_ERR_SYNTAX, 2, "syntax error"},
        {L1 "workers: \"abc\n", CONF_ERR_SYNTAX, 3, "syntax error"},
        {L1 "workers: 1\n\tx: 2\n", CONF_ERR_SYNTAX, 3, "syntax error"},
        {L1 "x: \xff\xfe\n", CONF_ERR_SYNTAX, 2, "syntax error"},
        {L1 "server_header: \"a\\0b\"\n", CONF_ERR_TYPE, 2, "NUL byte in a scalar"},
        {L1 "\"work\\0ers\": 1\n", CONF_ERR_TYPE, 2, "NUL byte in a scalar"},
    };
    EXPECT_ALL_BAD(cases);
}

/* Builds "listen: ...\nx: " then |depth| nested flow sequences around a scalar. */
static char *nested(unsigned depth)
{
    size_t cap = strlen(L1) + 8 + 2 * depth + 2;
    char *p = malloc(cap);
    if (!p)
        return NULL;
    size_t o = 0;
    memcpy(p, L1 "x: ", strlen(L1) + 3);
    o = strlen(L1) + 3;
    for (unsigned i = 0; i < depth; i++)
        p[o++] = '[';
    p[o++] = '1';
    for (unsigned i = 0; i < depth; i++)
        p[o++] = ']';
    p[o++] = '\n';
    p[o] = '\0';
    return p;
}

static void caps(void)
{
    /* The top-level map is level 1: 15 nested sequences fit, 16 do not. */
    char *y = nested(CONF_MAX_DEPTH - 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    struct bad fits = {y, CONF_ERR_UNKNOWN, 2, "unknown key \"x\""};
    expect_bad(&fits);
    free(y);
    y = nested(CONF_MAX_DEPTH);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    struct bad deep = {y, CONF_ERR_RANGE, 2, "nesting deeper than 16 levels"};
    expect_bad(&deep);
    free(y);
    y = nested(100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    struct bad deeper = {y, CONF_ERR_RANGE, 2, "nesting deeper than 16 levels"};
    expect_bad(&deeper);
    free(y);

    /* Node count: the top map, its key and the sequence are 3; then one per element,
       plus the listen line's 5 (key, sequence, map, key, value). */
    size_t cap = 64 + 3 * CONF_MAX_NODES;
    char *big = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (unsigned extra = 0; extra < 2; extra++) {
        size_t o = (size_t)snprintf(big, cap, L1 "x: [");
        unsigned elems = CONF_MAX_NODES - 8 + extra;
        for (unsigned i = 0; i < elems; i++) {
            memcpy(big + o, i ? ",1" : "1", i ? 2 : 1);
            o += i ? 2 : 1;
        }
        memcpy(big + o, "]\n", 3);
        struct bad b = extra
                           ? (struct bad){big, CONF_ERR_RANGE, 2, "too many nodes"}
                           : (struct bad){big, CONF_ERR_UNKNOWN, 2, "unknown key \"x\""};
        expect_bad(&b);
    }
    free(big);

    /* Scalars: 4096 bytes pass (as an adapter parameter), 4097 do not. */
    char *sc = malloc(CONF_MAX_SCALAR + 128);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    for (unsigned extra = 0; extra < 2; extra++) {
        int o = snprintf(sc, 128, L1 "backends: {b: {adapter: http, blob: ");
        memset(sc + o, 'a', CONF_MAX_SCALAR + extra);
        memcpy(sc + o + CONF_MAX_SCALAR + extra, "}}\n", 4);
        if (extra) {
            struct bad b = {sc, CONF_ERR_RANGE, 2, "scalar longer than 4096 bytes"};
            expect_bad(&b);
        } else {
            struct conf_snapshot *s = load_ok(sc);
            CU_ASSERT_PTR_NOT_NULL_FATAL(s);
            CU_ASSERT_EQUAL(strlen(s->backends[0].params[0].value), CONF_MAX_SCALAR);
            conf_snapshot_free(s);
        }
    }
    free(sc);

    /* The buffer itself: over 1 MiB is refused before parsing, with no line. */
    char *huge = malloc(CONF_MAX_FILE + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    memset(huge, '#', CONF_MAX_FILE + 1);
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};
    CU_ASSERT_EQUAL(
        conf_snapshot_load_buffer("t.yaml", huge, CONF_MAX_FILE + 1, &s, &err),
        CONF_ERR_RANGE);
    CU_ASSERT_EQUAL(err.line, 0);
    CU_ASSERT_TRUE(str_is(err.msg, "t.yaml: larger than 1048576 bytes"));
    CU_ASSERT_PTR_NULL(s);
    /* Exactly 1 MiB of comment is read (and is empty). */
    CU_ASSERT_EQUAL(conf_snapshot_load_buffer("t.yaml", huge, CONF_MAX_FILE, &s, &err),
                    CONF_ERR_MISSING);
    free(huge);
}

/* ---- listen, routes, backends, cover, sealed ----------------------------------- */

static void listen_addresses(void)
{
    struct conf_snapshot *s = load_ok("listen:\n"
                                      "  - address: '127.0.0.1:8443'\n"
                                      "  - address: '[::1]:8443'\n"
                                      "  - address: '[2001:DB8:0:0::1]:65535'\n"
                                      "  - address: '*:80'\n"
                                      "  - address: 10.1.2.3:81\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->nlisten, 5);
    CU_ASSERT_TRUE(str_is(s->listen[0].host, "127.0.0.1"));
    CU_ASSERT_TRUE(str_is(s->listen[1].host, "::1"));
    CU_ASSERT_EQUAL(s->listen[1].port, 8443);
    CU_ASSERT_TRUE(str_is(s->listen[2].host, "2001:db8::1"));
    CU_ASSERT_EQUAL(s->listen[2].port, 65535);
    CU_ASSERT_TRUE(str_is(s->listen[3].host, ""));
    CU_ASSERT_EQUAL(s->listen[4].line, 6);
    conf_snapshot_free(s);

    static const char *const refused[] = {
        "localhost:80",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:",
        "[::1]8443",
        "::1:8443",
        "[::1]:",
        "*:80x",
        "*:",
        "*",
        "127.0.0.1:+80",
        "127.0.0.1:-1",
        "[fe80::1%eth0]:80",
        "0:80",
        "1.2.3:80",
        "[127.0.0.1]:80",
        "[::1]:100000",
        ":80",
        "127.0.0.1:80 ",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "listen:\n  - address: '%s'\n", refused[i]);
        struct bad b = {yaml, CONF_ERR_TYPE, 2, "listen.address: expected \"IPv4:port\""};
        expect_bad(&b);
    }

    static const struct bad cases[] = {
        {"listen:\n  - address: '127.0.0.1:80'\n  - address: '127.0.0.1:80'\n",
         CONF_ERR_DUPLICATE, 3,
         "duplicate listen address \"127.0.0.1:80\" (first on line 2)"},
        {"listen:\n  - address: '[::1]:80'\n  - address: '[0:0::1]:80'\n",
         CONF_ERR_DUPLICATE, 3, "duplicate listen address \"[::1]:80\""},
        {"listen:\n  - address: '*:80'\n  - address: '*:80'\n", CONF_ERR_DUPLICATE, 3,
         "duplicate listen address \"*:80\""},
        {"listen:\n  - address: '*:80'\n  - address: '127.0.0.1:80'\n",
         CONF_ERR_DUPLICATE, 3,
         "listen address \"127.0.0.1:80\" overlaps \"*:80\" on line 2"},
        {"listen:\n  - address: '[::1]:80'\n  - address: '*:80'\n", CONF_ERR_DUPLICATE, 3,
         "overlaps"},
    };
    EXPECT_ALL_BAD(cases);

    /* The same port on two specific addresses, and two ports on one, are fine. */
    s = load_ok("listen:\n  - address: '127.0.0.1:80'\n  - address: '[::1]:80'\n"
                "  - address: '127.0.0.1:81'\n");
    conf_snapshot_free(s);
}

static void routes(void)
{
    struct conf_snapshot *s = load_ok(L1 "routes:\n"
                                         "  - host: Vote.EXAMPLE\n"
                                         "    path: /api/\n"
                                         "    handler: backend vote-1\n"
                                         "  - host: '*.Example.com'\n"
                                         "    handler: cover\n"
                                         "  - path: /x\n"
                                         "    handler: cover\n"
                                         "backends:\n"
                                         "  vote-1: {adapter: http}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->nroutes, 3);
    CU_ASSERT_TRUE(str_is(s->routes[0].host, "vote.example"));
    CU_ASSERT_TRUE(str_is(s->routes[0].path, "/api/"));
    CU_ASSERT_EQUAL(s->routes[0].handler, CONF_HANDLER_BACKEND);
    CU_ASSERT_TRUE(str_is(s->routes[0].backend, "vote-1"));
    CU_ASSERT_EQUAL(s->routes[0].line, 3);
    CU_ASSERT_TRUE(str_is(s->routes[1].host, "*.example.com"));
    CU_ASSERT_EQUAL(s->routes[1].handler, CONF_HANDLER_COVER);
    CU_ASSERT_PTR_NULL(s->routes[1].backend);
    CU_ASSERT_PTR_NULL(s->routes[2].host);
    CU_ASSERT_TRUE(str_is(s->routes[2].path, "/x"));
    conf_snapshot_free(s);

    static const struct bad cases[] = {
        /* The route's own line, even though the backends come later. */
        {L1 "routes:\n  - host: a.example\n    handler: backend nope\n"
            "backends: {b: {adapter: http}}\n",
         CONF_ERR_UNKNOWN, 3, "route: no backend named \"nope\" in backends"},
        {L1 "routes:\n  - handler: backend nope\n", CONF_ERR_UNKNOWN, 3,
         "no backend named"},
        {L1 "routes:\n  - handler: backend\n", CONF_ERR_TYPE, 3,
         "routes.handler: expected \"cover\" or \"backend NAME\""},
        {L1 "routes:\n  - handler: backend  b\n", CONF_ERR_TYPE, 3, "routes.handler"},
        {L1 "routes:\n  - handler: backend B\n", CONF_ERR_TYPE, 3, "routes.handler"},
        {L1 "routes:\n  - handler: proxy b\n", CONF_ERR_TYPE, 3, "routes.handler"},
        {L1 "routes:\n  - handler: Cover\n", CONF_ERR_TYPE, 3, "routes.handler"},
        {L1 "routes:\n  - {host: a.*.example, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host: expected a host name"},
        {L1 "routes:\n  - {host: '*', handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: '*.', handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: '**.a', handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: 'a.example:443', handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: -a.example, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: a..example, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: a.example., handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {host: a_b.example, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.host"},
        {L1 "routes:\n  - {path: api/, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.path: expected a path starting with \"/\""},
        {L1 "routes:\n  - {path: /a?b, handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.path"},
        {L1 "routes:\n  - {path: '/a b', handler: cover}\n", CONF_ERR_TYPE, 3,
         "routes.path"},
        {L1 "routes:\n  - {host: a.example, handler: cover}\n"
            "  - {host: A.example, path: /, handler: cover}\n",
         CONF_ERR_DUPLICATE, 4, "duplicate route (same host and path as line 3)"},
        {L1 "routes:\n  - {handler: cover}\n  - {path: /, handler: cover}\n",
         CONF_ERR_DUPLICATE, 4, "duplicate route"},
    };
    EXPECT_ALL_BAD(cases);

    /* A 63-byte label and a 253-byte name pass; 64 and 254 do not. */
    char host[300], yaml[512];
    memset(host, 'a', 63);
    host[63] = '\0';
    snprintf(yaml, sizeof(yaml), L1 "routes: [{host: %s.example, handler: cover}]\n",
             host);
    conf_snapshot_free(load_ok(yaml));
    memset(host, 'a', 64);
    host[64] = '\0';
    snprintf(yaml, sizeof(yaml), L1 "routes: [{host: %s.example, handler: cover}]\n",
             host);
    struct bad label = {yaml, CONF_ERR_TYPE, 2, "routes.host"};
    expect_bad(&label);
    /* 4 labels of 63 plus dots = 255; trim to 253 with a last label of 61. */
    snprintf(host, sizeof(host), "%063d.%063d.%063d.%061d", 0, 0, 0, 0);
    snprintf(yaml, sizeof(yaml), L1 "routes: [{host: '%s', handler: cover}]\n", host);
    conf_snapshot_free(load_ok(yaml));
    snprintf(host, sizeof(host), "%063d.%063d.%063d.%062d", 0, 0, 0, 0);
    snprintf(yaml, sizeof(yaml), L1 "routes: [{host: '%s', handler: cover}]\n", host);
    expect_bad(&label);
}

static void backends(void)
{
    struct conf_snapshot *s =
        load_ok(L1 "backends:\n"
                   "  b_1:\n"
                   "    url: http://x\n"
                   "    adapter: http\n"
                   "    headers: [Accept, X-Custom-1, \"a!#$%&'*+-.^_`|~\"]\n"
                   "    allow_cookie: true\n"
                   "    replay: strict\n"
                   "    pad_min: 512\n"
                   "    upstreams:\n"
                   "      - one\n"
                   "      - two\n"
                   "    empty: ''\n"
                   "    tls-verify: 'false'\n"
                   "  c:\n"
                   "    adapter: mix\n"
                   "    headers: []\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->nbackends, 2);
    const struct conf_backend *b = &s->backends[0];
    CU_ASSERT_TRUE(str_is(b->name, "b_1"));
    CU_ASSERT_EQUAL(b->line, 3);
    CU_ASSERT_TRUE(str_is(b->adapter, "http"));
    CU_ASSERT_EQUAL_FATAL(b->nheaders, 3);
    CU_ASSERT_TRUE(str_is(b->headers[0], "accept"));
    CU_ASSERT_TRUE(str_is(b->headers[1], "x-custom-1"));
    CU_ASSERT_TRUE(b->allow_cookie);
    CU_ASSERT_EQUAL(b->replay, CONF_REPLAY_STRICT);
    CU_ASSERT_EQUAL(b->pad_min, 512);
    CU_ASSERT_EQUAL_FATAL(b->nparams, 5);
    CU_ASSERT_TRUE(str_is(b->params[0].key, "url"));
    CU_ASSERT_TRUE(str_is(b->params[0].value, "http://x"));
    CU_ASSERT_EQUAL(b->params[0].line, 4);
    CU_ASSERT_TRUE(str_is(b->params[1].key, "upstreams"));
    CU_ASSERT_TRUE(str_is(b->params[1].value, "one"));
    CU_ASSERT_EQUAL(b->params[1].line, 11);
    CU_ASSERT_TRUE(str_is(b->params[2].key, "upstreams"));
    CU_ASSERT_TRUE(str_is(b->params[2].value, "two"));
    CU_ASSERT_EQUAL(b->params[2].line, 12);
    CU_ASSERT_TRUE(str_is(b->params[3].key, "empty"));
    CU_ASSERT_TRUE(str_is(b->params[3].value, ""));
    CU_ASSERT_TRUE(str_is(b->params[4].key, "tls-verify"));
    CU_ASSERT_TRUE(str_is(b->params[4].value, "false"));
    CU_ASSERT_PTR_NULL(b->headers[3]);
    CU_ASSERT_EQUAL(s->backends[1].nheaders, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->backends[1].headers);
    CU_ASSERT_PTR_NULL(s->backends[1].headers[0]);
    CU_ASSERT_EQUAL(s->backends[1].nparams, 0);
    conf_snapshot_free(s);

    /* 256 headers of 128 bytes pass; 257 headers, or 129 bytes, do not. */
    size_t cap = 64 + 257 * 140;
    char *big = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (unsigned round = 0; round < 3; round++) {
        unsigned count = round == 1 ? 257 : 256;
        int namelen = round == 2 ? 129 : 128;
        size_t o =
            (size_t)snprintf(big, cap, L1 "backends: {b: {adapter: http, headers: [");
        for (unsigned i = 0; i < count; i++)
            o += (size_t)snprintf(big + o, cap - o, "%s%0*u", i ? "," : "", namelen, i);
        snprintf(big + o, cap - o, "]}}\n");
        if (round == 0) {
            s = load_ok(big);
            CU_ASSERT_PTR_NOT_NULL_FATAL(s);
            CU_ASSERT_EQUAL(s->backends[0].nheaders, 256);
            CU_ASSERT_EQUAL(strlen(s->backends[0].headers[255]), 128);
            conf_snapshot_free(s);
        } else {
            struct bad bad = round == 1 ? (struct bad){big, CONF_ERR_RANGE, 2,
                                                       "headers: more than 256 entries"}
                                        : (struct bad){big, CONF_ERR_TYPE, 2,
                                                       "is not a valid header name"};
            expect_bad(&bad);
        }
    }
    free(big);

    char yaml[256];
    snprintf(yaml, sizeof(yaml), L1 "backends: {%064d: {adapter: http}}\n", 0);
    conf_snapshot_free(load_ok(yaml));
    snprintf(yaml, sizeof(yaml), L1 "backends: {%065d: {adapter: http}}\n", 0);
    struct bad long_name = {yaml, CONF_ERR_TYPE, 2, "backends: bad name"};
    expect_bad(&long_name);

    static const struct bad cases[] = {
        {L1 "backends:\n  Demo: {adapter: http}\n", CONF_ERR_TYPE, 3,
         "backends: bad name \"Demo\": expected [a-z0-9_-]{1,64}"},
        {L1 "backends:\n  'a b': {adapter: http}\n", CONF_ERR_TYPE, 3,
         "bad name \"a b\""},
        {L1 "backends:\n  '': {adapter: http}\n", CONF_ERR_TYPE, 3, "bad name"},
        {L1 "backends:\n  b: http\n", CONF_ERR_TYPE, 3, "backends.b: expected a map"},
        {L1 "backends:\n  b:\n", CONF_ERR_TYPE, 3, "backends.b: empty value"},
        {L1 "backends: []\n", CONF_ERR_TYPE, 2, "backends: expected a map"},
        {L1 "backends:\n  b: {adapter: HTTP}\n", CONF_ERR_TYPE, 3,
         "backends.b.adapter: expected [a-z0-9_-]{1,64}"},
        {L1 "backends:\n  b:\n    adapter: http\n    headers: [accept, 'a b']\n",
         CONF_ERR_TYPE, 5, "backends.b.headers: \"a b\" is not a valid header name"},
        {L1 "backends:\n  b:\n    adapter: http\n    headers: [':path']\n", CONF_ERR_TYPE,
         5, "not a valid header name"},
        {L1 "backends:\n  b:\n    adapter: http\n    headers: ['']\n", CONF_ERR_TYPE, 5,
         "empty value"},
        {L1 "backends:\n  b:\n    adapter: http\n    headers:\n      - accept\n      - "
            "Accept\n",
         CONF_ERR_DUPLICATE, 7, "backends.b.headers: duplicate \"accept\""},
        {L1 "backends:\n  b:\n    adapter: http\n    headers: [Cookie]\n", CONF_ERR_TYPE,
         5, "use allow_cookie"},
        {L1 "backends:\n  b:\n    adapter: http\n    headers: accept\n", CONF_ERR_TYPE, 5,
         "backends.b.headers: expected a sequence"},
        {L1 "backends:\n  b:\n    adapter: http\n    url: {a: 1}\n", CONF_ERR_TYPE, 5,
         "backends.b.url: expected a scalar or a sequence of scalars"},
        {L1 "backends:\n  b:\n    adapter: http\n    url:\n", CONF_ERR_TYPE, 5,
         "backends.b.url: expected a scalar"},
        {L1 "backends:\n  b:\n    adapter: http\n    url: []\n", CONF_ERR_TYPE, 5,
         "backends.b.url: empty sequence"},
        {L1 "backends:\n  b:\n    adapter: http\n    url: [a, [b]]\n", CONF_ERR_TYPE, 5,
         "backends.b.url: expected a scalar"},
        {L1 "backends:\n  b:\n    adapter: http\n    URL: x\n", CONF_ERR_UNKNOWN, 5,
         "backends.b: bad key \"URL\""},
        {L1 "backends:\n  b:\n    adapter: http\n    adapter: mix\n", CONF_ERR_DUPLICATE,
         5, "duplicate key \"adapter\" (first on line 4)"},
        {L1 "backends:\n  b:\n    adapter: http\n    url: a\n    url: b\n",
         CONF_ERR_DUPLICATE, 6, "duplicate key \"url\""},
    };
    EXPECT_ALL_BAD(cases);
}

static void cover_and_sealed(void)
{
    struct conf_snapshot *s = load_ok(L1 "cover:\n  upstream: https://[::1]:8081/site\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_TRUE(str_is(s->cover.upstream, "https://[::1]:8081/site"));
    CU_ASSERT_PTR_NULL(s->cover.root);
    conf_snapshot_free(s);
    s = load_ok(L1
                "cover: {root: /srv/www, index: home/index.htm, not_found: e/404.htm}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_TRUE(str_is(s->cover.index, "home/index.htm"));
    CU_ASSERT_TRUE(str_is(s->cover.not_found, "e/404.htm"));
    conf_snapshot_free(s);
    conf_snapshot_free(load_ok(L1 "cover: {upstream: 'http://cover.internal'}\n"));
    conf_snapshot_free(load_ok(L1 "cover: {upstream: 'http://10.0.0.1:80'}\n"));
    conf_snapshot_free(load_ok(L1 "cover: {}\n"));

    static const struct bad cases[] = {
        {L1 "cover:\n  root: /a\n  upstream: http://b\n", CONF_ERR_TYPE, 4,
         "cover: root and upstream exclude each other"},
        {L1 "cover:\n  index: i.html\n", CONF_ERR_TYPE, 3,
         "cover.index: only applies with cover.root"},
        {L1 "cover:\n  upstream: http://b\n  not_found: e.html\n", CONF_ERR_TYPE, 4,
         "cover.not_found: only applies with cover.root"},
        {L1 "cover: {root: /a, index: ../etc/passwd}\n", CONF_ERR_TYPE, 2,
         "cover.index: expected a file name relative to cover.root"},
        {L1 "cover: {root: /a, index: /etc/passwd}\n", CONF_ERR_TYPE, 2, "cover.index"},
        {L1 "cover: {root: /a, index: a/../../b}\n", CONF_ERR_TYPE, 2, "cover.index"},
        {L1 "cover: {root: /a, index: a/}\n", CONF_ERR_TYPE, 2, "cover.index"},
        {L1 "cover: {upstream: 'ftp://x'}\n", CONF_ERR_TYPE, 2,
         "cover.upstream: expected an http:// or https:// URL"},
        {L1 "cover: {upstream: 'http://'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "cover: {upstream: 'http://u:p@x'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "cover: {upstream: 'http://x:0'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "cover: {upstream: 'http://x:'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "cover: {upstream: 'http://[::1'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "cover: {upstream: 'http://x/a b'}\n", CONF_ERR_TYPE, 2, "cover.upstream"},
        {L1 "sealed: {keys: /k, path: s}\n", CONF_ERR_TYPE, 2,
         "sealed.path: expected a path"},
        {L1 "sealed: {keys: /k, keys_path: /k#}\n", CONF_ERR_TYPE, 2, "sealed.keys_path"},
        {L1 "sealed:\n  keys: /k\n  path: /.well-known/ohttp-gateway\n",
         CONF_ERR_DUPLICATE, 4, "sealed: path and keys_path are both"},
        {L1 "sealed: {keys: /k, keys_path: /s/}\n", CONF_ERR_DUPLICATE, 2,
         "sealed: path and keys_path are both \"/s/\""},
        {L1 "sealed:\n", CONF_ERR_TYPE, 2, "sealed: empty value"},
        {L1 "sealed: {}\n", CONF_ERR_MISSING, 2,
         "missing required key \"keys\" in sealed"},
    };
    EXPECT_ALL_BAD(cases);
}

/* ---- file names and paths ------------------------------------------------------ */

static void relative_paths(void)
{
    static const char yaml[] = "listen:\n"
                               "  - address: '*:1'\n"
                               "    tls: {certificate: c.pem, key: /abs/k.pem}\n"
                               "cover: {root: ./www}\n"
                               "sealed: {keys: keys/}\n"
                               "error_log: {path: log/err.log}\n"
                               "access_log: stderr\n";
    char cwd[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};

    CU_ASSERT_EQUAL_FATAL(
        conf_snapshot_load_buffer("/etc/zaslon/z.yaml", yaml, strlen(yaml), &s, &err), 0);
    CU_ASSERT_TRUE(str_is(s->listen[0].certificate, "/etc/zaslon/c.pem"));
    CU_ASSERT_TRUE(str_is(s->listen[0].key, "/abs/k.pem"));
    CU_ASSERT_TRUE(str_is(s->cover.root, "/etc/zaslon/./www"));
    CU_ASSERT_TRUE(str_is(s->sealed.keys_dir, "/etc/zaslon/keys/"));
    CU_ASSERT_TRUE(str_is(s->error_log, "/etc/zaslon/log/err.log"));
    CU_ASSERT_TRUE(str_is(s->access_log, "stderr"));
    conf_snapshot_free(s);

    CU_ASSERT_EQUAL_FATAL(
        conf_snapshot_load_buffer("/z.yaml", yaml, strlen(yaml), &s, &err), 0);
    CU_ASSERT_TRUE(str_is(s->listen[0].certificate, "/c.pem"));
    conf_snapshot_free(s);

    /* "-", a bare name and NULL resolve against the current directory. */
    const char *bare[] = {"-", "z.yaml", NULL};
    char *want = join(cwd, "c.pem");
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(
            conf_snapshot_load_buffer(bare[i], yaml, strlen(yaml), &s, &err), 0);
        CU_ASSERT_TRUE(str_is(s->listen[0].certificate, want));
        CU_ASSERT_TRUE(str_is(s->file, bare[i] ? bare[i] : "-"));
        conf_snapshot_free(s);
    }
    free(want);

    /* A relative config path: the current directory, then the file's own directory. */
    want = join(cwd, "sub/dir/c.pem");
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL_FATAL(
        conf_snapshot_load_buffer("sub/dir/z.yaml", yaml, strlen(yaml), &s, &err), 0);
    CU_ASSERT_TRUE(str_is(s->listen[0].certificate, want));
    conf_snapshot_free(s);
    free(want);

    /* The file name is what messages start with. */
    static const char bad[] = "listen: [{address: '*:1'}]\nlistn: 1\n";
    CU_ASSERT_EQUAL(
        conf_snapshot_load_buffer("conf/demo.yaml", bad, strlen(bad), &s, &err),
        CONF_ERR_UNKNOWN);
    CU_ASSERT_TRUE(
        str_is(err.msg, "conf/demo.yaml:2: unknown key \"listn\" in top level"));
    CU_ASSERT_EQUAL(err.line, 2);
    CU_ASSERT_EQUAL(conf_snapshot_load_buffer(NULL, bad, strlen(bad), &s, NULL),
                    CONF_ERR_UNKNOWN);
    CU_ASSERT_EQUAL(conf_snapshot_load_buffer(NULL, NULL, 0, &s, &err), CONF_ERR_MISSING);
    CU_ASSERT_TRUE(str_is(err.msg, "-:1: empty configuration: missing required key "
                                   "\"listen\""));
}

static void files(void)
{
    struct conf_snapshot *s = NULL;
    struct conf_error err = {{0}, 0};
    CU_ASSERT_EQUAL(conf_snapshot_load_file("/nonexistent/zaslon.yaml", &s, &err),
                    CONF_ERR_IO);
    CU_ASSERT_EQUAL(err.line, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/zaslon.yaml: cannot open: "));
    CU_ASSERT_EQUAL(conf_snapshot_load_file(CONF_DIR, &s, &err), CONF_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot read"));
    CU_ASSERT_PTR_NULL(s);

    /* Exactly the cap is read; one byte more is refused. */
    char path[] = "/tmp/zaslon-conf-test-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_NOT_EQUAL_FATAL(fd, -1);
    FILE *f = fdopen(fd, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    const char head[] = "listen: [{address: '*:1'}]\n";
    fputs(head, f);
    for (size_t i = strlen(head); i < CONF_MAX_FILE - 1; i++)
        fputc('#', f);
    fputc('\n', f);
    fflush(f);
    CU_ASSERT_EQUAL(conf_snapshot_load_file(path, &s, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(s);
    conf_snapshot_free(s);
    s = NULL;
    fputc('\n', f);
    fclose(f);
    CU_ASSERT_EQUAL(conf_snapshot_load_file(path, &s, &err), CONF_ERR_RANGE);
    CU_ASSERT_EQUAL(err.line, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "larger than 1048576 bytes"));
    CU_ASSERT_PTR_NULL(s);
    unlink(path);
}

/* ---- allocation failures ------------------------------------------------------- */

static void failing_allocations(void)
{
    /* Fail each allocation in turn, through the file reader and the parser; every
       failure must come back as CONF_ERR_NOMEM with nothing leaked (ASan checks). */
    unsigned long n;
    unsigned failures = 0;
    for (n = 1; n < 100000; n++) {
        struct conf_snapshot *s = NULL;
        struct conf_error err = {{0}, 0};
        conf_alloc_fail_countdown = n;
        int rc = conf_snapshot_load_file(CONF_DIR "/edge-behind-cdn.yaml", &s, &err);
        bool fired = conf_alloc_fail_countdown == 0;
        conf_alloc_fail_countdown = 0;
        if (!fired) {
            CU_ASSERT_EQUAL(rc, 0);
            conf_snapshot_free(s);
            break;
        }
        if (rc != CONF_ERR_NOMEM || s)
            failures++;
        CU_ASSERT_EQUAL(err.line, 0);
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_TRUE(n > 50 && n < 100000);

    /* And with the demo, which resolves relative paths. */
    for (n = 1; n < 100000; n++) {
        struct conf_snapshot *s = NULL;
        conf_alloc_fail_countdown = n;
        int rc = conf_snapshot_load_file(CONF_DIR "/demo.yaml", &s, NULL);
        bool fired = conf_alloc_fail_countdown == 0;
        conf_alloc_fail_countdown = 0;
        if (!fired) {
            CU_ASSERT_EQUAL(rc, 0);
            conf_snapshot_free(s);
            break;
        }
        CU_ASSERT_EQUAL(rc, CONF_ERR_NOMEM);
    }
}

static void misc(void)
{
    conf_snapshot_free(NULL);
    CU_ASSERT_TRUE(str_is(conf_strerror(CONF_OK), "success"));
    CU_ASSERT_TRUE(str_is(conf_strerror(CONF_ERR_DUPLICATE), "duplicate"));
    CU_ASSERT_TRUE(str_is(conf_strerror(-1000), "unknown error"));
    /* A long file name truncates the message rather than overflowing it. */
    char name[1024];
    memset(name, 'f', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    struct conf_snapshot *s = NULL;
    struct conf_error err;
    CU_ASSERT_EQUAL(conf_snapshot_load_buffer(name, "x: 1\n", 5, &s, &err),
                    CONF_ERR_UNKNOWN);
    CU_ASSERT_EQUAL(strlen(err.msg), sizeof(err.msg) - 1);
    CU_ASSERT_EQUAL(err.line, 1);
    /* Keys are shown printable and bounded in messages. */
    CU_ASSERT_EQUAL(load(L1 "\"a\\x01b\": 1\n", &s, &err), CONF_ERR_UNKNOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown key \"a?b\""));
    char yaml[256];
    snprintf(yaml, sizeof(yaml), L1 "%0100d: 1\n", 0);
    CU_ASSERT_EQUAL(load(yaml, &s, &err), CONF_ERR_UNKNOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "...\" in top level"));
    CU_ASSERT_PTR_NULL(s);
}

int test_conf_snapshot(void)
{
    CU_pSuite s = CU_add_suite("conf_snapshot", NULL, NULL);
    if (!s || !CU_add_test(s, "demo.yaml", demo_config) ||
        !CU_add_test(s, "edge-behind-cdn.yaml", cdn_config) ||
        !CU_add_test(s, "defaults", defaults) ||
        !CU_add_test(s, "every limit lands in its field", every_limit) ||
        !CU_add_test(s, "bounds at their edges", bounds) ||
        !CU_add_test(s, "bad values", bad_values) ||
        !CU_add_test(s, "bad structure", bad_structure) ||
        !CU_add_test(s, "bad yaml, anchors, aliases, documents", bad_yaml) ||
        !CU_add_test(s, "input caps", caps) ||
        !CU_add_test(s, "listen addresses", listen_addresses) ||
        !CU_add_test(s, "routes", routes) || !CU_add_test(s, "backends", backends) ||
        !CU_add_test(s, "cover and sealed", cover_and_sealed) ||
        !CU_add_test(s, "relative paths and file names", relative_paths) ||
        !CU_add_test(s, "files", files) ||
        !CU_add_test(s, "failing allocations", failing_allocations) ||
        !CU_add_test(s, "misc", misc))
        return -1;
    return 0;
}
