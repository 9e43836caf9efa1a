#include "gw_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw_gate.h"
#include "tp_tls.h"

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void limits_from_conf(const struct conf_limits *c, struct tp_server_limits *l)
{
    tp_server_limits_default(l);
    l->max_conns = c->connections_per_worker;
    l->max_concurrent_streams = c->max_concurrent_streams;
    l->header_list_size = c->header_list_size;
    l->header_fields = c->header_fields;
    l->max_continuations = c->max_continuations;
    l->stream_reset_burst = c->stream_reset_burst;
    l->stream_reset_rate = c->stream_reset_rate;
    l->tls_handshake_timeout_ms = c->tls_handshake_timeout_ms;
    l->header_timeout_ms = c->header_timeout_ms;
    l->idle_timeout_ms = c->idle_timeout_ms;
    l->body_timeout_ms = c->body_timeout_ms;
    l->write_timeout_ms = c->write_timeout_ms;
    l->output_buffer = c->output_buffer;
    l->stream_buffer = c->stream_buffer;
    l->max_requests_per_conn = c->max_requests_per_connection;
    l->h2_data_padding = c->h2_data_padding;
    l->stream_timeout_ms = c->stream_timeout_ms;
    l->memory_budget = c->memory_budget;
}

static int backend_init(struct gw_backend *b, const char *file, const char *name,
                        const char *adapter, unsigned adapter_line,
                        const struct conf_kv *params, size_t nparams, unsigned line, const char *const *headers, size_t nheaders,
                        bool allow_cookie, char *err, size_t errlen)
{
    b->name = name;
    b->ops = adapter_lookup(adapter);
    if (!b->ops)
        return errf(err, errlen, "%s:%u: unknown adapter \"%s\" for backend \"%s\"", file,
                    adapter_line ? adapter_line : line, adapter, name);
    struct adapter_kv *kv = calloc(nparams ? nparams : 1, sizeof(*kv));
    if (!kv)
        return errf(err, errlen, "%s: out of memory", file);
    for (size_t i = 0; i < nparams; i++)
        kv[i] = (struct adapter_kv){params[i].key, params[i].value, params[i].line};
    struct adapter_config ac = {
        .backend_name = name, .file = file, .items = kv, .nitems = nparams,
        .errbuf = err, .errlen = errlen,
    };
    int rv = b->ops->config_parse(&ac, &b->adapter_cfg);
    free(kv);
    if (rv != 0)
        return -1;
    if (fr_allowlist_new(headers, nheaders, allow_cookie, &b->allowlist) != 0)
        return errf(err, errlen, "%s:%u: invalid header allowlist for backend \"%s\"", file,
                    line, name);
    return 0;
}

static size_t count_list(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

int gw_runtime_new(struct conf_snapshot *snap, struct gw_runtime **out, char *err,
                   size_t errlen)
{
    struct gw_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        conf_snapshot_free(snap);
        return errf(err, errlen, "out of memory");
    }
    rt->snap = snap;
    rt->cover_backend = -1;
    const char *file = snap->file ? snap->file : "-";
    limits_from_conf(&snap->limits, &rt->limits);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    rt->workers = snap->workers ? snap->workers : (cpus > 0 ? (unsigned)cpus : 1);

    rt->ssl_ctx = calloc(snap->nlisten ? snap->nlisten : 1, sizeof(*rt->ssl_ctx));
    rt->backends = calloc(snap->nbackends + 1, sizeof(*rt->backends));
    if (!rt->ssl_ctx || !rt->backends)
        goto nomem;
    for (size_t i = 0; i < snap->nlisten; i++) {
        const struct conf_listen *l = &snap->listen[i];
        if (!l->tls)
            continue;
        char why[384];
        /* tls.client_ca: a listener for relays only; a client without a certificate
           from that CA fails the handshake (it does not even see the cover). */
        if (tp_tls_server_ctx_new_client_ca(l->certificate, l->key, l->client_ca,
                                            &rt->ssl_ctx[i], why, sizeof(why)) != 0) {
            errf(err, errlen, "%s:%u: %s", file, l->line, why);
            goto fail;
        }
    }
    for (size_t i = 0; i < snap->nbackends; i++) {
        const struct conf_backend *b = &snap->backends[i];
        const char *const *hdrs = (const char *const *)b->headers;
        size_t nh = b->nheaders;
        if (!hdrs) {
            hdrs = conf_default_allowlist;
            nh = count_list(conf_default_allowlist);
        }
        /* Counted first, so that a half-built backend is freed with the rest. */
        rt->nbackends++;
        if (backend_init(&rt->backends[i], file, b->name, b->adapter, b->adapter_line,
                         b->params, b->nparams, b->line, hdrs, nh, b->allow_cookie, err,
                         errlen) != 0)
            goto fail;
        rt->backends[i].strict = b->replay == CONF_REPLAY_STRICT;
        rt->backends[i].pad_min = b->pad_min;
    }
    int grv = gw_gate_new(&snap->gate, &rt->gate);
    if (grv == GW_GATE_ERR_NOMEM)
        goto nomem;
    if (grv != 0) {
        errf(err, errlen, "%s:%u: gate: cannot set up the origin secret check", file,
             snap->gate.line);
        goto fail;
    }
    if (snap->role == CONF_ROLE_GATEWAY) {
        /* A gateway takes sealed requests only from relays it trusts: a listener
           without client certificates would let anyone in. */
        for (size_t i = 0; i < snap->nlisten; i++)
            if (!snap->listen[i].client_ca) {
                errf(err, errlen,
                     "%s:%u: role gateway: every listener needs tls.client_ca (only "
                     "relays with a client certificate may connect)",
                     file, snap->listen[i].line);
                goto fail;
            }
    }
    if (snap->role == CONF_ROLE_RELAY) {
        /* A relay holds no key: no key store, no replay cache (the gateway keeps
           both), only the client side of mutual TLS toward the gateway. */
        char why[384];
        if (tp_tls_client_ctx_new(snap->relay.ca_file, snap->relay.certificate,
                                  snap->relay.key, &rt->relay_ssl_ctx, why,
                                  sizeof(why)) != 0) {
            errf(err, errlen, "%s:%u: relay: %s", file, snap->relay.line, why);
            goto fail;
        }
    } else if (snap->sealed.enabled) {
        char why[512];
        if (gw_keystore_load(snap->sealed.keys_dir, &rt->keystore, why, sizeof(why)) != 0) {
            errf(err, errlen, "%s:%u: sealed.keys: %s", file, snap->sealed.keys_line, why);
            goto fail;
        }
        if (gw_replay_new(snap->sealed.replay_cache, snap->sealed.replay_window_ms / 1000,
                          time(NULL), &rt->replay) != 0)
            goto nomem;
    }
    if (snap->cover.upstream) {
        /* `cover: upstream URL` is an http backend like any other, with the default
           allowlist: the cover's web server never learns more than a backend does. */
        char key[] = "url";
        struct conf_kv url = {key, snap->cover.upstream, 0};
        rt->cover_backend = (int)rt->nbackends++;
        url.line = snap->cover.line;
        if (backend_init(&rt->backends[rt->cover_backend], file, "cover", "http",
                         snap->cover.line, &url, 1, snap->cover.line, conf_default_allowlist,
                         count_list(conf_default_allowlist), false, err, errlen) != 0)
            goto fail;
    } else {
        struct fr_cover_opts co = {
            .root = snap->cover.root,
            .index = snap->cover.index,
            .not_found = snap->cover.not_found,
        };
        char why[384];
        if (fr_cover_load(&co, &rt->cover, why, sizeof(why)) != 0) {
            if (snap->cover.line)
                errf(err, errlen, "%s:%u: cover: %s", file, snap->cover.line, why);
            else
                errf(err, errlen, "%s: cover: %s", file, why);
            goto fail;
        }
    }
    struct fr_route_rule *rules = calloc(snap->nroutes ? snap->nroutes : 1, sizeof(*rules));
    if (!rules)
        goto nomem;
    for (size_t i = 0; i < snap->nroutes; i++) {
        const struct conf_route *r = &snap->routes[i];
        int target = GW_TARGET_COVER;
        if (r->handler == CONF_HANDLER_BACKEND)
            for (size_t k = 0; k < snap->nbackends; k++)
                if (strcmp(snap->backends[k].name, r->backend) == 0)
                    target = (int)k;
        rules[i] = (struct fr_route_rule){r->host, r->path, target};
    }
    int rv = fr_router_new(rules, snap->nroutes, &rt->router);
    free(rules);
    if (rv != 0) {
        errf(err, errlen, "%s: invalid routes", file);
        goto fail;
    }
    *out = rt;
    return 0;
nomem:
    errf(err, errlen, "%s: out of memory", file);
fail:
    gw_runtime_free(rt);
    return -1;
}

int gw_runtime_load(const char *path, struct gw_runtime **out, char *err, size_t errlen)
{
    struct conf_snapshot *snap = NULL;
    struct conf_error cerr;
    memset(&cerr, 0, sizeof(cerr));
    if (conf_snapshot_load_file(path, &snap, &cerr) != 0)
        return errf(err, errlen, "%s", cerr.msg);
    return gw_runtime_new(snap, out, err, errlen);
}

void gw_runtime_inherit(struct gw_runtime *rt, const struct gw_runtime *old)
{
    if (!rt->replay || !old->replay)
        return;
    gw_replay_free(rt->replay);
    rt->replay = gw_replay_ref(old->replay);
}

void gw_runtime_commit(struct gw_runtime *rt)
{
    if (rt->replay)
        gw_replay_set_window(rt->replay, rt->snap->sealed.replay_window_ms / 1000);
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int gw_runtime_reloadable(const struct gw_runtime *old, const struct gw_runtime *rt,
                          char *err, size_t errlen)
{
    const struct conf_snapshot *o = old->snap, *n = rt->snap;
    const char *file = n->file ? n->file : "-";
    if (!same_str(o->error_log, n->error_log) || o->log_level != n->log_level)
        return errf(err, errlen, "%s: error_log changed: the log is opened at start; "
                    "restart to apply it", file);
    if (!same_str(o->access_log, n->access_log))
        return errf(err, errlen, "%s: access_log changed: the log is opened at start; "
                    "restart to apply it", file);
    /* An empty cache would let copies of what the running one accepted through. */
    if (old->replay && rt->replay &&
        gw_replay_capacity(old->replay) != n->sealed.replay_cache)
        return errf(err, errlen, "%s:%u: sealed.replay_cache changed: the replay cache "
                    "keeps its size until a restart", file, n->sealed.line);
    return 0;
}

void gw_runtime_free(struct gw_runtime *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->nbackends; i++) {
        struct gw_backend *b = &rt->backends[i];
        if (b->ops && b->adapter_cfg)
            b->ops->config_free(b->adapter_cfg);
        fr_allowlist_free(b->allowlist);
    }
    free(rt->backends);
    if (rt->ssl_ctx)
        for (size_t i = 0; i < rt->snap->nlisten; i++)
            SSL_CTX_free(rt->ssl_ctx[i]);
    free(rt->ssl_ctx);
    fr_router_free(rt->router);
    gw_keystore_free(rt->keystore);
    gw_replay_free(rt->replay);
    gw_gate_free(rt->gate);
    SSL_CTX_free(rt->relay_ssl_ctx);
    fr_cover_free(rt->cover);
    conf_snapshot_free(rt->snap);
    free(rt);
}
