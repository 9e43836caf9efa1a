/* The `http` backend adapter: config validation, and a thin bridge from adapter_ops to
   tp_upstream (one pool per worker). */
#include "ad_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "ad_breaker.h"
#include "tp_err.h"
#include "tp_http.h"
#include "tp_upstream.h"

#define MAX_TIMEOUT_MS (60u * 60u * 1000u) /* an hour: no wait is forever */
#define MAX_CONNECTIONS 65535u
#define MAX_URL 2048
#define MAX_BREAKER_FAILURES 1000u

struct http_inst {
    const struct ad_http_config *cfg;
    struct tp_upstream_pool *pool;
    struct adapter_host host;
    struct ad_breaker breaker;
    unsigned in_flight; /* requests handed to the pool and not yet ended */
};

struct http_req {
    struct http_inst *inst;
    struct tp_upstream_req *up;
    struct adapter_response_cb cb;
    void *arg;
    enum ad_breaker_ticket ticket;
    bool answered;   /* a response head came: the breaker heard of it */
    bool local_fail; /* the body op refused the client's bytes: not the backend's fault */
};

/* ------------------------------------------------------------------------------------ */
/* Config                                                                               */

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parses "500ms", "5s", "1m" into milliseconds within [1 ms, 1 h]. */
static int parse_duration(const char *s, unsigned *out)
{
    if (!is_digit(s[0]))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    unsigned long long mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else
        return -1;
    if (v == 0 || v > MAX_TIMEOUT_MS / mult)
        return -1;
    *out = (unsigned)(v * mult);
    return 0;
}

/* Parses "1048576", "64k", "1m" (KiB, MiB) into bytes. */
static int parse_size(const char *s, uint64_t *out)
{
    if (!is_digit(s[0]))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    unsigned long long mult;
    if (*end == '\0')
        mult = 1;
    else if (strcmp(end, "k") == 0 || strcmp(end, "K") == 0)
        mult = 1024;
    else if (strcmp(end, "m") == 0 || strcmp(end, "M") == 0)
        mult = 1024 * 1024;
    else
        return -1;
    if (v > (unsigned long long)INT64_MAX / mult)
        return -1;
    *out = (uint64_t)(v * mult);
    return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (!is_digit(s[0]))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

/* A DNS name as SNI takes it: letters, digits, '-', '.', at most 253 bytes. */
static bool is_dns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* An authority as a Host field: visible ASCII, no '/', '?', '#', '@'. */
static bool is_authority(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("/?#@", c))
            return false;
    }
    return true;
}

static struct tp_str url_field(const char *u, const struct http_parser_url *pu, int f)
{
    return (struct tp_str){u + pu->field_data[f].off, pu->field_data[f].len};
}

static int parse_url(const struct adapter_config *conf, const struct adapter_kv *kv,
                     struct ad_http_config *cfg)
{
    const char *u = kv->value;
    size_t len = strlen(u);
    struct http_parser_url pu;
    http_parser_url_init(&pu);
    const char *why = NULL;
    if (len == 0 || len > MAX_URL || http_parser_parse_url(u, len, 0, &pu) != 0)
        why = "not an absolute http(s) URL";
    else if (!(pu.field_set & (1 << UF_SCHEMA)) || !(pu.field_set & (1 << UF_HOST)))
        why = "not an absolute http(s) URL";
    else if (pu.field_set & (1 << UF_USERINFO))
        why = "credentials do not belong in the URL";
    else if (pu.field_set & ((1 << UF_QUERY) | (1 << UF_FRAGMENT)))
        why = "a query or fragment is not a base path";
    else if ((pu.field_set & (1 << UF_PORT)) && pu.port == 0)
        why = "port 0";
    if (!why) {
        struct tp_str scheme = url_field(u, &pu, UF_SCHEMA);
        if (tp_str_caseeq(scheme, "https"))
            cfg->tls = true;
        else if (tp_str_caseeq(scheme, "http"))
            cfg->tls = false;
        else
            why = "the scheme must be http or https";
    }
    struct tp_str host = url_field(u, &pu, UF_HOST);
    if (!why && host.len == 0)
        why = "no host";
    if (why)
        return adapter_config_error(conf, kv->line,
                                    "bad url \"%s\" in http backend \"%s\": %s", u,
                                    conf->backend_name, why);

    cfg->port = (pu.field_set & (1 << UF_PORT)) ? pu.port : (cfg->tls ? 443 : 80);
    /* The authority as written (brackets and explicit port included) is the default
       Host; the host alone is what we resolve and verify. */
    size_t a_start = pu.field_data[UF_HOST].off;
    size_t a_end = a_start + host.len;
    if (a_start > 0 && u[a_start - 1] == '[') {
        a_start--;
        a_end++;
    }
    if (pu.field_set & (1 << UF_PORT))
        a_end = (size_t)pu.field_data[UF_PORT].off + pu.field_data[UF_PORT].len;
    free(cfg->host);
    free(cfg->authority);
    free(cfg->base);
    cfg->host = dup_n(host.base, host.len);
    cfg->authority = dup_n(u + a_start, a_end - a_start);
    size_t plen = 0;
    const char *path = "";
    if (pu.field_set & (1 << UF_PATH)) {
        path = u + pu.field_data[UF_PATH].off;
        plen = pu.field_data[UF_PATH].len;
        while (plen > 0 && path[plen - 1] == '/')
            plen--;
    }
    cfg->base = dup_n(path, plen);
    cfg->base_len = plen;
    if (!cfg->host || !cfg->authority || !cfg->base)
        return adapter_config_error(conf, kv->line, "out of memory");
    lower(cfg->host);
    lower(cfg->authority);
    return 0;
}

enum key_id {
    K_URL,
    K_HOST_HEADER,
    K_VERIFY,
    K_CA_FILE,
    K_SNI,
    K_POOL_SIZE,
    K_MAX_CONNECTIONS,
    K_CONNECT_TIMEOUT,
    K_FIRST_BYTE_TIMEOUT,
    K_IDLE_TIMEOUT,
    K_MAX_RESPONSE,
    K_MAX_QUEUE,
    K_BREAKER_FAILURES,
    K_BREAKER_COOLDOWN,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    [K_URL] = "url",
    [K_HOST_HEADER] = "host_header",
    [K_VERIFY] = "verify",
    [K_CA_FILE] = "ca_file",
    [K_SNI] = "sni",
    [K_POOL_SIZE] = "pool_size",
    [K_MAX_CONNECTIONS] = "max_connections",
    [K_CONNECT_TIMEOUT] = "connect_timeout",
    [K_FIRST_BYTE_TIMEOUT] = "first_byte_timeout",
    [K_IDLE_TIMEOUT] = "idle_timeout",
    [K_MAX_RESPONSE] = "max_response",
    [K_MAX_QUEUE] = "max_queue",
    [K_BREAKER_FAILURES] = "breaker_failures",
    [K_BREAKER_COOLDOWN] = "breaker_cooldown",
};

static void config_free(void *p)
{
    struct ad_http_config *cfg = p;
    if (!cfg)
        return;
    free(cfg->backend);
    free(cfg->host);
    free(cfg->base);
    free(cfg->authority);
    free(cfg->ca_file);
    free(cfg->sni);
    free(cfg);
}

static int bad_value(const struct adapter_config *conf, const struct adapter_kv *kv,
                     const char *want)
{
    return adapter_config_error(conf, kv->line,
                                "bad value \"%s\" for %s in http backend \"%s\": want %s",
                                kv->value, kv->key, conf->backend_name, want);
}

/* A count key in lo..hi; the message names the range ("0 (off)" when |off|). */
static int count_key(const struct adapter_config *conf, const struct adapter_kv *kv,
                     unsigned lo, unsigned hi, bool off, unsigned *out)
{
    if (parse_uint(kv->value, lo, hi, out) == 0)
        return 0;
    char want[64];
    snprintf(want, sizeof(want), "a count from %u%s to %u", lo, off ? " (off)" : "", hi);
    return bad_value(conf, kv, want);
}

static int duration_key(const struct adapter_config *conf, const struct adapter_kv *kv,
                        unsigned *out)
{
    return parse_duration(kv->value, out) == 0
               ? 0
               : bad_value(conf, kv, "a duration such as 500ms, 5s or 1m, up to 1h");
}

static int set_key(const struct adapter_config *conf, const struct adapter_kv *kv,
                   enum key_id id, struct ad_http_config *cfg)
{
    const char *v = kv->value;
    uint64_t size = 0;
    switch (id) {
    case K_URL:
        return parse_url(conf, kv, cfg);
    case K_VERIFY:
        return parse_bool(v, &cfg->verify) == 0 ? 0
                                                : bad_value(conf, kv, "true or false");
    case K_CA_FILE: {
        if (v[0] == '\0')
            return bad_value(conf, kv, "a PEM file");
        /* Fail at load time rather than when the first worker starts. */
        FILE *f = fopen(v, "r");
        if (!f)
            return adapter_config_error(
                conf, kv->line, "cannot read ca_file \"%s\" for http backend \"%s\": %s",
                v, conf->backend_name, strerror(errno));
        fclose(f);
        free(cfg->ca_file);
        cfg->ca_file = dup_n(v, strlen(v));
        return cfg->ca_file ? 0 : adapter_config_error(conf, kv->line, "out of memory");
    }
    case K_SNI:
        if (!is_dns_name(v))
            return bad_value(conf, kv, "a DNS name");
        free(cfg->sni);
        cfg->sni = dup_n(v, strlen(v));
        if (!cfg->sni)
            return adapter_config_error(conf, kv->line, "out of memory");
        lower(cfg->sni);
        return 0;
    case K_POOL_SIZE:
        return count_key(conf, kv, 0, MAX_CONNECTIONS, false, &cfg->pool_size);
    case K_MAX_CONNECTIONS:
        return count_key(conf, kv, 1, MAX_CONNECTIONS, false, &cfg->max_connections);
    case K_CONNECT_TIMEOUT:
        return duration_key(conf, kv, &cfg->connect_timeout_ms);
    case K_FIRST_BYTE_TIMEOUT:
        return duration_key(conf, kv, &cfg->first_byte_timeout_ms);
    case K_IDLE_TIMEOUT:
        return duration_key(conf, kv, &cfg->idle_timeout_ms);
    case K_MAX_RESPONSE:
        if (parse_size(v, &size) < 0)
            return bad_value(conf, kv, "a size such as 0 (unlimited), 64k or 1m");
        cfg->max_response = size == 0 ? -1 : (int64_t)size;
        return 0;
    case K_MAX_QUEUE:
        return count_key(conf, kv, 0, TP_UPSTREAM_QUEUE_MAX, false, &cfg->max_queue);
    case K_BREAKER_FAILURES:
        return count_key(conf, kv, 0, MAX_BREAKER_FAILURES, true, &cfg->breaker_failures);
    case K_BREAKER_COOLDOWN:
        return duration_key(conf, kv, &cfg->breaker_cooldown_ms);
    case K_HOST_HEADER: /* applied by config_parse after the url */
    case K_COUNT:
    default:
        return bad_value(conf, kv, "nothing");
    }
}

static int config_parse(const struct adapter_config *conf, void **out)
{
    struct ad_http_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return adapter_config_error(conf, 0, "out of memory");
    const char *name = conf->backend_name ? conf->backend_name : "";
    cfg->backend = dup_n(name, strlen(name));
    cfg->verify = true;
    cfg->pool_size = 32;
    cfg->max_connections = 256;
    cfg->connect_timeout_ms = 5000;
    cfg->first_byte_timeout_ms = 30000;
    cfg->idle_timeout_ms = 60000;
    cfg->max_response = -1;
    cfg->max_queue = TP_UPSTREAM_QUEUE_MAX;
    cfg->breaker_failures = AD_HTTP_BREAKER_FAILURES;
    cfg->breaker_cooldown_ms = AD_HTTP_BREAKER_COOLDOWN_MS;
    unsigned seen[K_COUNT] = {0}; /* line of each key's first use */
    char *host_header = NULL;
    if (!cfg->backend) {
        adapter_config_error(conf, 0, "out of memory");
        goto fail;
    }

    for (size_t i = 0; i < conf->nitems; i++) {
        const struct adapter_kv *kv = &conf->items[i];
        enum key_id id = K_COUNT;
        for (int k = 0; k < K_COUNT; k++)
            if (kv->key && strcmp(kv->key, key_names[k]) == 0)
                id = (enum key_id)k;
        if (id == K_COUNT) {
            adapter_config_error(conf, kv->line,
                                 "unknown key \"%s\" in http backend \"%s\"",
                                 kv->key ? kv->key : "", name);
            goto fail;
        }
        if (seen[id]) {
            adapter_config_error(
                conf, kv->line,
                "duplicate key \"%s\" in http backend \"%s\" (first at line %u)", kv->key,
                name, seen[id]);
            goto fail;
        }
        seen[id] = kv->line ? kv->line : 1;
        if (!kv->value) {
            adapter_config_error(conf, kv->line,
                                 "key \"%s\" in http backend \"%s\" needs a value",
                                 kv->key, name);
            goto fail;
        }
        if (id == K_HOST_HEADER) {
            /* Applied after the url, whatever the order in the file. */
            if (!is_authority(kv->value)) {
                bad_value(conf, kv, "a host[:port]");
                goto fail;
            }
            host_header = dup_n(kv->value, strlen(kv->value));
            if (!host_header) {
                adapter_config_error(conf, kv->line, "out of memory");
                goto fail;
            }
            continue;
        }
        if (set_key(conf, kv, id, cfg) != 0)
            goto fail;
    }
    if (!seen[K_URL]) {
        adapter_config_error(conf, conf->nitems ? conf->items[0].line : 0,
                             "http backend \"%s\" needs a url", name);
        goto fail;
    }
    if (!cfg->tls) {
        static const enum key_id tls_only[] = {K_VERIFY, K_CA_FILE, K_SNI};
        for (size_t k = 0; k < sizeof(tls_only) / sizeof(tls_only[0]); k++) {
            if (seen[tls_only[k]]) {
                adapter_config_error(conf, seen[tls_only[k]],
                                     "%s in http backend \"%s\" needs an https url",
                                     key_names[tls_only[k]], name);
                goto fail;
            }
        }
    }
    if (host_header) {
        free(cfg->authority);
        cfg->authority = host_header;
        host_header = NULL;
        lower(cfg->authority);
    }
    *out = cfg;
    return 0;
fail:
    free(host_header);
    config_free(cfg);
    return ADAPTER_ERR_CONFIG;
}

/* ------------------------------------------------------------------------------------ */
/* Instances and requests                                                               */

static void inst_log(const struct http_inst *in, enum adapter_log_level level,
                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void inst_log(const struct http_inst *in, enum adapter_log_level level,
                     const char *fmt, ...)
{
    if (!in->host.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    in->host.log(in->host.log_ctx, level, fmt, ap);
    va_end(ap);
}

static int create(const void *cfgp, const struct adapter_host *host, void **out)
{
    const struct ad_http_config *cfg = cfgp;
    if (!cfg || !host || !host->base)
        return ADAPTER_ERR_CONFIG;
    struct http_inst *in = calloc(1, sizeof(*in));
    if (!in)
        return ADAPTER_ERR_NOMEM;
    in->cfg = cfg;
    in->host = *host;
    ad_breaker_init(&in->breaker, cfg->breaker_failures, cfg->breaker_cooldown_ms);
    struct tp_upstream_opts o;
    tp_upstream_opts_default(&o);
    o.host = cfg->host;
    o.port = cfg->port;
    o.tls = cfg->tls;
    o.sni = cfg->sni;
    o.verify = cfg->verify;
    o.ca_file = cfg->ca_file;
    o.max_conns = cfg->max_connections;
    o.max_idle =
        cfg->pool_size < cfg->max_connections ? cfg->pool_size : cfg->max_connections;
    o.connect_timeout_ms = cfg->connect_timeout_ms;
    o.first_byte_timeout_ms = cfg->first_byte_timeout_ms;
    o.idle_timeout_ms = cfg->idle_timeout_ms;
    o.max_response_body = cfg->max_response;
    int rv = tp_upstream_pool_new(host->base, &o, &in->pool);
    if (rv < 0) {
        /* The backend name is config, not a client's: fine to log. */
        inst_log(in, ADAPTER_LOG_ERROR, "http backend \"%s\": cannot set up upstream: %s",
                 cfg->backend, tp_strerror(rv));
        free(in);
        switch (rv) {
        case TP_ERR_NOMEM:
            return ADAPTER_ERR_NOMEM;
        case TP_ERR_INVALID:
            return ADAPTER_ERR_CONFIG;
        case TP_ERR_CONNECT:
            return ADAPTER_ERR_CONNECT;
        default:
            return ADAPTER_ERR_UNAVAILABLE;
        }
    }
    *out = in;
    return 0;
}

static void destroy(void *p)
{
    struct http_inst *in = p;
    if (!in)
        return;
    tp_upstream_pool_free(in->pool);
    in->pool = NULL;
    free(in);
}

static int map_error(int err)
{
    switch (err) {
    case TP_ERR_CONNECT:
        return ADAPTER_ERR_CONNECT;
    case TP_ERR_TIMEOUT:
        return ADAPTER_ERR_TIMEOUT;
    case TP_ERR_TOO_LARGE:
        return ADAPTER_ERR_TOO_LARGE;
    case TP_ERR_CLOSED:
        return ADAPTER_ERR_CLOSED;
    case TP_ERR_NOMEM:
        return ADAPTER_ERR_NOMEM;
    case TP_ERR_PROTO:
    default:
        return ADAPTER_ERR_PROTO;
    }
}

/* Field names from the upstream parser are lowercase: compare by length, then bytes,
   since these run for every field of every response. */
static bool is_connection(struct tp_str name)
{
    return name.len == 10 && memcmp(name.base, "connection", 10) == 0;
}

static bool is_content_length(struct tp_str name)
{
    return name.len == 14 && memcmp(name.base, "content-length", 14) == 0;
}

/* The Connection options a response names beyond keep-alive (itself hop-by-hop, and
   what nearly every HTTP/1.1 origin sends), collected once per response into |tok|
   (|cap| entries). Returns how many, or cap + 1 when there are more. Options of 64
   bytes or more are no field name we pass on and are skipped. */
#define CONN_TOKENS 8

/* The next option of the Connection field value left in |*rest| (a word of the list,
   tp_http_list_word); false when none is left. Options of 64 bytes or more are
   skipped. */
static bool next_option(struct tp_str *rest, struct tp_str *opt)
{
    while (tp_http_list_word(rest, opt))
        if (opt->len < 64)
            return true;
    return false;
}

static bool option_is(struct tp_str opt, struct tp_str name)
{
    return opt.len == name.len && strncasecmp(opt.base, name.base, name.len) == 0;
}

static size_t connection_tokens(const struct tp_header *h, size_t n, struct tp_str *tok,
                                size_t cap)
{
    const struct tp_str keep_alive = TP_STR_LIT("keep-alive");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_connection(h[i].name))
            continue;
        struct tp_str rest = h[i].value, opt;
        while (next_option(&rest, &opt)) {
            if (option_is(opt, keep_alive))
                continue;
            if (k == cap)
                return cap + 1;
            tok[k++] = opt;
        }
    }
    return k;
}

/* Returns true if one of the |ntok| options in |tok| is |name| (lowercase already; an
   option may not be). */
static bool named_by(struct tp_str name, const struct tp_str *tok, size_t ntok)
{
    for (size_t i = 0; i < ntok; i++)
        if (option_is(tok[i], name))
            return true;
    return false;
}

/* Returns true if the Connection field(s) among |h| name |name|: the slow path, for a
   response with more than CONN_TOKENS options. */
static bool named_by_connection(struct tp_str name, const struct tp_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_connection(h[i].name))
            continue;
        struct tp_str rest = h[i].value, opt;
        while (next_option(&rest, &opt))
            if (option_is(opt, name))
                return true;
    }
    return false;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The request leaves the instance: it no longer counts against the limits. */
static void req_done(struct http_req *r)
{
    if (r->inst->in_flight > 0)
        r->inst->in_flight--;
}

/* Tells the breaker how the backend did on |r|, once. */
static void breaker_result(struct http_req *r, int err)
{
    struct http_inst *in = r->inst;
    struct ad_breaker *b = &in->breaker;
    if (r->answered)
        return;
    r->answered = true;
    enum ad_breaker_state before = b->state;
    if (err == 0) {
        ad_breaker_success(b, r->ticket);
        if (before != AD_BREAKER_CLOSED && b->state == AD_BREAKER_CLOSED)
            inst_log(in, ADAPTER_LOG_INFO,
                     "http backend \"%s\": answering again, circuit breaker closed",
                     in->cfg->backend);
        return;
    }
    bool backend_fault = !r->local_fail &&
                         (err == TP_ERR_CONNECT || err == TP_ERR_TIMEOUT ||
                          err == TP_ERR_PROTO || err == TP_ERR_CLOSED ||
                          err == TP_ERR_TOO_LARGE);
    if (!backend_fault) {
        ad_breaker_abandon(b, r->ticket);
        return;
    }
    if (ad_breaker_failure(b, r->ticket, now_ms()))
        inst_log(in, ADAPTER_LOG_WARN,
                 "http backend \"%s\": circuit breaker open for %u ms (%s)",
                 in->cfg->backend, b->cooldown_ms,
                 r->ticket == AD_BREAKER_PROBE ? "the probe failed"
                                               : "failures in a row");
}

static void up_head(void *arg, int status, const struct tp_header *h, size_t n,
                    int64_t content_length)
{
    struct http_req *r = arg;
    breaker_result(r, 0);
    struct tp_header *keep = n ? calloc(n, sizeof(*keep)) : NULL;
    if (n && !keep) {
        /* Cannot pass the head on: end the request as a failure. */
        struct adapter_response_cb cb = r->cb;
        void *a = r->arg;
        tp_upstream_cancel(r->up);
        req_done(r);
        free(r);
        if (cb.on_error)
            cb.on_error(a, ADAPTER_ERR_NOMEM, false);
        return;
    }
    /* The Connection options are read once, not once per field: most responses name
       none but keep-alive, and then no field is checked against them. */
    struct tp_str tok[CONN_TOKENS];
    size_t ntok = connection_tokens(h, n, tok, CONN_TOKENS);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct tp_str name = h[i].name;
        if (tp_http_hop_by_hop(name) || is_content_length(name))
            continue;
        if (ntok > CONN_TOKENS ? named_by_connection(name, h, n) : named_by(name, tok, ntok))
            continue;
        keep[k++] = h[i];
    }
    /* |r| may be cancelled and freed inside on_head: do not touch it afterwards. */
    r->cb.on_head(r->arg, status, keep, k, content_length);
    free(keep);
}

static bool up_data(void *arg, struct evbuffer *data)
{
    struct http_req *r = arg;
    return r->cb.on_data(r->arg, data);
}

static void up_end(void *arg)
{
    struct http_req *r = arg;
    struct adapter_response_cb cb = r->cb;
    void *a = r->arg;
    breaker_result(r, 0);
    req_done(r);
    free(r);
    cb.on_end(a);
}

static void up_error(void *arg, int err, bool head_sent)
{
    struct http_req *r = arg;
    struct adapter_response_cb cb = r->cb;
    void *a = r->arg;
    breaker_result(r, err);
    req_done(r);
    free(r);
    cb.on_error(a, map_error(err), head_sent);
}

static void up_sent(void *arg, size_t n)
{
    struct http_req *r = arg;
    if (r->cb.on_body_sent)
        r->cb.on_body_sent(r->arg, n);
}

static const struct tp_upstream_cb up_cb = {
    .on_head = up_head,
    .on_data = up_data,
    .on_end = up_end,
    .on_error = up_error,
    .on_sent = up_sent,
};

static int handle(void *p, const struct adapter_request *req,
                  const struct adapter_response_cb *cb, void *arg, void **out)
{
    struct http_inst *in = p;
    if (!in || !req || !cb || !out || !cb->on_head || !cb->on_data || !cb->on_end ||
        !cb->on_error)
        return ADAPTER_ERR_PROTO;
    const struct ad_http_config *cfg = in->cfg;
    /* Limits first, then the breaker, so a refusal for load does not use up a probe.
       Both fail fast: nothing is sent, nothing waits. */
    if (in->in_flight >= cfg->max_connections + cfg->max_queue)
        return ADAPTER_ERR_UNAVAILABLE;
    enum ad_breaker_ticket ticket = ad_breaker_admit(&in->breaker, now_ms());
    if (ticket == AD_BREAKER_REFUSED)
        return ADAPTER_ERR_UNAVAILABLE;
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r) {
        ad_breaker_abandon(&in->breaker, ticket);
        return ADAPTER_ERR_NOMEM;
    }
    r->inst = in;
    r->cb = *cb;
    r->arg = arg;
    r->ticket = ticket;

    char *path = NULL;
    struct tp_str tpath = req->path;
    if (cfg->base_len > 0) {
        if (req->path.len > SIZE_MAX - cfg->base_len - 1) {
            ad_breaker_abandon(&in->breaker, ticket);
            free(r);
            return ADAPTER_ERR_NOMEM;
        }
        path = malloc(cfg->base_len + req->path.len + 1);
        if (!path) {
            ad_breaker_abandon(&in->breaker, ticket);
            free(r);
            return ADAPTER_ERR_NOMEM;
        }
        memcpy(path, cfg->base, cfg->base_len);
        if (req->path.len)
            memcpy(path + cfg->base_len, req->path.base, req->path.len);
        tpath = (struct tp_str){path, cfg->base_len + req->path.len};
    }
    struct tp_upstream_desc d = {
        .method = req->method,
        .path = tpath,
        .authority = {cfg->authority, strlen(cfg->authority)},
        .headers = req->headers,
        .nheaders = req->nheaders,
        .content_length = req->content_length,
        .has_body = req->has_body,
    };
    int rv = tp_upstream_request(in->pool, &d, &up_cb, r, &r->up);
    free(path);
    if (rv < 0) {
        ad_breaker_abandon(&in->breaker, ticket);
        free(r);
        switch (rv) {
        case TP_ERR_TOO_LARGE:
            return ADAPTER_ERR_UNAVAILABLE;
        case TP_ERR_NOMEM:
            return ADAPTER_ERR_NOMEM;
        default:
            return ADAPTER_ERR_PROTO; /* a request we refuse to send as given */
        }
    }
    in->in_flight++;
    *out = r;
    return 0;
}

static int body(void *h, struct evbuffer *data, bool end)
{
    struct http_req *r = h;
    /* A refusal fails the upstream request, so on_error follows from the loop. */
    int rv = tp_upstream_send(r->up, data, end);
    if (rv != 0 && rv != TP_ERR_STATE)
        r->local_fail = true;
    switch (rv) {
    case 0:
        return 0;
    case TP_ERR_NOMEM:
        return ADAPTER_ERR_NOMEM;
    case TP_ERR_TOO_LARGE:
        return ADAPTER_ERR_TOO_LARGE;
    default:
        return ADAPTER_ERR_PROTO;
    }
}

static void resume(void *h)
{
    struct http_req *r = h;
    tp_upstream_resume(r->up);
}

static void cancel(void *h)
{
    struct http_req *r = h;
    if (!r)
        return;
    tp_upstream_cancel(r->up);
    if (!r->answered)
        ad_breaker_abandon(&r->inst->breaker, r->ticket);
    req_done(r);
    free(r);
}

static enum adapter_health health(void *p)
{
    struct http_inst *in = p;
    if (in->breaker.state != AD_BREAKER_CLOSED)
        return ADAPTER_HEALTH_DOWN;
    return tp_upstream_pool_failures(in->pool) >= AD_HTTP_DOWN_AFTER ? ADAPTER_HEALTH_DOWN
                                                                     : ADAPTER_HEALTH_OK;
}

const struct adapter_ops ad_http_ops = {
    .name = "http",
    .config_parse = config_parse,
    .config_free = config_free,
    .create = create,
    .destroy = destroy,
    .handle = handle,
    .body = body,
    .resume = resume,
    .cancel = cancel,
    .health = health,
};
