#include "gw_sealed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "adapter.h"
#include "fr_headers.h"
#include "fr_pad.h"
#include "fr_route.h"
#include "gw_gate.h"
#include "gw_keystore.h"
#include "gw_log.h"
#include "gw_pipeline.h"
#include "gw_relay.h"
#include "gw_replay.h"
#include "gw_runtime.h"
#include "gw_worker.h"
#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_ohttp.h"

#define MAX_FIELDS 256
#define DEFAULT_PAD_MIN 1024
#define PLAIN_STACK 4096 /* a padded response this small is encoded on the stack */

/* One sealed exchange, from the first body byte to the sealed answer. */
struct sealed {
    struct tp_req *req;
    struct gw_worker *w;
    struct evbuffer *in; /* the message/ohttp-req as it arrives */
    bool too_large;
    struct tp_ohttp_gateway *ogw;
    uint8_t *plain; /* the Binary HTTP request (wiped on free) */
    size_t plain_len;
    struct tp_bhttp_request breq;
    bool breq_valid;
    const struct gw_backend *backend;
    void *handle;
    /* The backend's answer, collected whole: it is sealed as one message. */
    int status;
    struct tp_header *fields; /* followed, in the same allocation, by their bytes */
    size_t nfields;
    struct evbuffer *body; /* then the sealed answer on its way out */
    bool overflow;
    struct event *finish; /* deferred 502 after an overflow */
    bool adapter_running;
    bool req_gone;
    bool answered;
    bool refused;   /* answered by gw_sealed_refuse */
    uint64_t bytes; /* sealed bytes sent, for the access log */
    uint64_t start_us;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* In an open deployment the gateway's URIs (sealed.path, keys_path and the RFC 9540
   well-known path) answer GET and HEAD with the keys and POST with the gateway. */
#define OPEN_ALLOW "GET, HEAD, POST"

/* The one decision about a request refused before decapsulation succeeded. */
static void refuse(struct gw_worker *w, struct tp_req *req, enum gw_refusal why)
{
    if (!w->rt->snap->open) {
        /* Whatever went wrong before the seal was opened, a prober gets the cover
           site's own answer for this method and path: nothing says a sealed endpoint
           is here, and |why| goes nowhere. */
        gw_pipeline_serve_cover(w, req);
        return;
    }
    int status = gw_gate_problem(req, why, OPEN_ALLOW);
    if (status)
        gw_log_access("sealed", status, 0, 0);
}

void gw_sealed_refuse(struct gw_worker *w, struct tp_req *req)
{
    refuse(w, req, GW_REFUSE_OTHER);
}

static void sealed_free(struct sealed *s)
{
    if (s->breq_valid)
        tp_bhttp_request_clear(&s->breq);
    if (s->plain) {
        sodium_memzero(s->plain, s->plain_len);
        free(s->plain);
    }
    tp_ohttp_gateway_free(s->ogw);
    if (s->in) /* NULL when gw_sealed_route ran out of memory */
        evbuffer_free(s->in);
    if (s->body)
        evbuffer_free(s->body);
    free(s->fields);
    if (s->finish)
        event_free(s->finish);
    free(s);
}

static void sealed_done(struct sealed *s)
{
    if (s->adapter_running || !(s->answered || s->req_gone))
        return;
    if (!s->refused)
        gw_log_access(s->backend ? s->backend->name : "sealed", s->status, s->bytes,
                      now_us() - s->start_us);
    if (!s->req_gone)
        s->req->handler = NULL;
    sealed_free(s);
}

static void free_ref(const void *data, size_t len, void *extra)
{
    free((void *)data);
}

/* Encodes, pads, seals and sends one Binary HTTP response. */
static void answer(struct sealed *s, int status, const struct tp_header *hs, size_t n,
                   const uint8_t *body, size_t body_len)
{
    s->answered = true;
    s->status = status;
    struct tp_bhttp_response res = {
        .status = (uint16_t)status,
        .headers = hs,
        .n_headers = n,
        .content = body,
        .content_len = body_len,
    };
    struct tp_bhttp_encode_opts eo = {.framing = TP_BHTTP_KNOWN_LENGTH};
    size_t plain_len = 0;
    if (tp_bhttp_response_encoded_len(&res, &eo, &plain_len) != 0) {
        tp_req_reset(s->req);
        s->req_gone = true;
        return;
    }
    size_t pad_min = s->backend && s->backend->pad_min ? s->backend->pad_min : DEFAULT_PAD_MIN;
    size_t padded = fr_pad_bucket(plain_len, pad_min);
    eo.padding = padded - plain_len;
    uint8_t small[PLAIN_STACK];
    uint8_t *plain = padded <= sizeof(small) ? small : malloc(padded);
    size_t sealed_cap = tp_ohttp_gateway_response_len(s->ogw, padded);
    uint8_t *sealed = sealed_cap ? malloc(sealed_cap) : NULL;
    size_t got = 0, sealed_len = 0;
    int rv = -1;
    if (plain && sealed &&
        tp_bhttp_response_encode(&res, &eo, plain, padded, &got) == 0 && got == padded)
        rv = tp_ohttp_gateway_encap_response(s->ogw, plain, padded, sealed, sealed_cap,
                                             &sealed_len);
    if (plain) {
        sodium_memzero(plain, padded);
        if (plain != small)
            free(plain);
    }
    if (rv != 0) {
        free(sealed);
        tp_req_reset(s->req);
        s->req_gone = true;
        return;
    }
    static const struct tp_header outer[] = {
        {TP_STR_LIT("content-type"), TP_STR_LIT(TP_OHTTP_RES_MEDIA_TYPE)},
        {TP_STR_LIT("cache-control"), TP_STR_LIT("no-store")},
    };
    /* The backend's body, if any, is sealed by now: its buffer carries the answer. */
    struct evbuffer *b = s->body;
    evbuffer_drain(b, evbuffer_get_length(b));
    if (tp_req_respond(s->req, 200, outer, 2, (int64_t)sealed_len, false) != 0) {
        free(sealed);
        tp_req_reset(s->req);
        s->req_gone = true;
        return;
    }
    s->bytes = sealed_len;
    /* The ciphertext travels by reference and is freed once sent: no copy. */
    if (evbuffer_add_reference(b, sealed, sealed_len, free_ref, NULL) != 0) {
        /* Not referenced, so still ours; the head went out promising it: reset. */
        free(sealed);
        tp_req_reset(s->req);
        s->req_gone = true;
        return;
    }
    tp_req_write(s->req, b);
    evbuffer_drain(b, evbuffer_get_length(b));
    tp_req_end(s->req);
}

/* A sealed error: a fixed reason as text/plain inside the seal. */
static void answer_error(struct sealed *s, int status, const char *reason)
{
    static const struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("text/plain")};
    answer(s, status, &ct, 1, (const uint8_t *)reason, strlen(reason));
}

/* ---------------------------------------------------------- backend side --- */

static void ad_on_head(void *arg, int status, const struct tp_header *hs, size_t n,
                       int64_t content_length)
{
    struct sealed *s = arg;
    struct tp_header kept[MAX_FIELDS];
    if (n > MAX_FIELDS)
        n = MAX_FIELDS;
    size_t m = fr_headers_filter_response(hs, n, kept);
    /* The callback's strings are borrowed: copy what the seal will carry. */
    size_t bytes = m * sizeof(*s->fields);
    for (size_t i = 0; i < m; i++)
        bytes += kept[i].name.len + kept[i].value.len;
    s->fields = malloc(bytes ? bytes : 1);
    if (!s->fields) {
        s->overflow = true;
        return;
    }
    char *p = (char *)(s->fields + m);
    for (size_t i = 0; i < m; i++) {
        /* content-length is the Binary HTTP framing's business. */
        if (tp_str_eq(kept[i].name, "content-length"))
            continue;
        memcpy(p, kept[i].name.base, kept[i].name.len);
        s->fields[s->nfields].name = (struct tp_str){p, kept[i].name.len};
        p += kept[i].name.len;
        memcpy(p, kept[i].value.base, kept[i].value.len);
        s->fields[s->nfields].value = (struct tp_str){p, kept[i].value.len};
        p += kept[i].value.len;
        s->nfields++;
    }
    s->status = status;
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sealed *s = arg;
    if (s->adapter_running) {
        s->backend->ops->cancel(s->handle);
        s->adapter_running = false;
    }
    if (!s->req_gone && !s->answered)
        answer_error(s, 502, "response too large");
    sealed_done(s);
}

static bool ad_on_data(void *arg, struct evbuffer *data)
{
    struct sealed *s = arg;
    size_t cap = s->w->rt->snap->sealed.max_response;
    if (s->overflow || evbuffer_get_length(s->body) + evbuffer_get_length(data) > cap ||
        evbuffer_add_buffer(s->body, data) != 0) {
        /* Too big to seal (or out of memory): pause the backend, then cancel it outside
           its callback. */
        evbuffer_drain(data, evbuffer_get_length(data));
        if (!s->overflow) {
            s->overflow = true;
            event_active(s->finish, EV_TIMEOUT, 1);
        }
        return false;
    }
    return true;
}

static void ad_on_end(void *arg)
{
    struct sealed *s = arg;
    s->adapter_running = false;
    if (s->overflow) {
        if (!event_pending(s->finish, EV_TIMEOUT, NULL))
            event_active(s->finish, EV_TIMEOUT, 1);
        return;
    }
    if (!s->req_gone) {
        size_t len = evbuffer_get_length(s->body);
        const uint8_t *body = evbuffer_pullup(s->body, (ev_ssize_t)len);
        if (len && !body) /* out of memory making the body contiguous */
            answer_error(s, 502, tp_http_reason(502));
        else
            answer(s, s->status, s->fields, s->nfields, body, len);
    }
    sealed_done(s);
}

static void ad_on_error(void *arg, int err, bool head_sent)
{
    struct sealed *s = arg;
    s->adapter_running = false;
    int st = gw_pipeline_adapter_status(err);
    if (!s->req_gone && !s->answered)
        answer_error(s, st, tp_http_reason(st));
    sealed_done(s);
}

static void ad_on_body_sent(void *arg, size_t n)
{
}

static const struct adapter_response_cb adapter_cb = {
    .on_head = ad_on_head,
    .on_data = ad_on_data,
    .on_end = ad_on_end,
    .on_error = ad_on_error,
    .on_body_sent = ad_on_body_sent,
};

static const struct tp_header *find_field(const struct tp_bhttp_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (tp_str_eq(r->headers[i].name, name))
            return &r->headers[i];
    return NULL;
}

/* The seal is open: check freshness, route, and hand the inner request on. */
static void forward(struct sealed *s)
{
    const struct gw_runtime *rt = s->w->rt;
    const struct tp_bhttp_request *br = &s->breq;
    int target = fr_router_match(rt->router, br->authority, br->path);
    if (target < 0) {
        answer_error(s, 404, "no such service");
        return;
    }
    s->backend = &rt->backends[target];
    const struct tp_header *date = find_field(br, "date");
    time_t when = 0;
    bool has_date = date && tp_http_date_parse(date->value, &when) == 0;
    if (date && !has_date) {
        answer_error(s, 400, "bad date");
        return;
    }
    size_t enc_len = 0;
    const uint8_t *enc = tp_ohttp_gateway_enc(s->ogw, &enc_len);
    enum gw_replay_verdict v = gw_replay_check(rt->replay, enc, enc_len, has_date, when,
                                               time(NULL), s->backend->strict);
    if (v != GW_REPLAY_OK) {
        answer_error(s, v == GW_REPLAY_FULL ? 503 : v == GW_REPLAY_SEEN ? 409 : 400,
                     gw_replay_str(v));
        return;
    }
    struct tp_header fields[MAX_FIELDS];
    size_t n = br->n_headers < MAX_FIELDS ? br->n_headers : MAX_FIELDS;
    /* The allowlist never passes Expect: the body is already here. Nor the origin
       secret, should a client seal one in, whatever the allowlist says. */
    n = fr_headers_filter_request(s->backend->allowlist, br->headers, n, fields);
    n = gw_gate_strip(rt->gate, fields, n);
    struct adapter_request ar = {
        .method = br->method,
        .authority = br->authority,
        .path = br->path,
        .headers = fields,
        .nheaders = n,
        .content_length = (int64_t)br->content_len,
        .has_body = br->content_len > 0,
    };
    void *inst = s->w->adapters[target];
    int rv = s->backend->ops->handle(inst, &ar, &adapter_cb, s, &s->handle);
    if (rv != 0) {
        int st = gw_pipeline_adapter_status(rv);
        answer_error(s, st, tp_http_reason(st));
        return;
    }
    s->adapter_running = true;
    if (ar.has_body) {
        /* The content lives in s->plain until the exchange ends: no copy. It travels
           in s->in, whose sealed bytes are spent. */
        struct evbuffer *b = s->in;
        evbuffer_drain(b, evbuffer_get_length(b));
        if (evbuffer_add_reference(b, br->content, br->content_len, NULL, NULL) != 0) {
            /* Without its body the backend request would wait for it until a
               deadline, then answer a timeout: end it now. */
            s->backend->ops->cancel(s->handle);
            s->adapter_running = false;
            answer_error(s, 500, "out of memory");
            return;
        }
        s->backend->ops->body(s->handle, b, true);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
}

/* Costs what opening a request costs (one X25519, the key schedule, one AEAD pass),
   for the failures tp_ohttp_gateway_decap finds before it does that work itself (too
   short, too long): every failure after the body is read costs about what a success
   costs, so timing does not tell them apart. */
static void decap_dummy(struct tp_ohttp_gateway *ogw)
{
    /* Key id 0 with no lookup (so tp_ohttp's stand-in key), enc the X25519 base point. */
    static const uint8_t msg[TP_OHTTP_REQ_OVERHEAD + 64] = {0x00, 0x00, 0x20, 0x00,
                                                            0x01, 0x00, 0x01, 0x09};
    uint8_t out[64];
    size_t got = 0;
    (void)tp_ohttp_gateway_decap(ogw, msg, sizeof(msg), NULL, NULL, out, sizeof(out),
                                 &got);
}

static enum gw_refusal decap_refusal(int rv)
{
    switch (rv) {
    case TP_ERR_UNSUPPORTED: return GW_REFUSE_KEY;
    case TP_ERR_CRYPTO:
    case TP_ERR_PROTO: return GW_REFUSE_DECRYPT;
    case TP_ERR_TOO_LARGE: return GW_REFUSE_TOO_LARGE;
    case TP_ERR_INVALID: return GW_REFUSE_MALFORMED;
    default: return GW_REFUSE_OTHER;
    }
}

/* The whole message/ohttp-req is here. */
static void open_seal(struct sealed *s)
{
    struct gw_worker *w = s->w;
    const struct gw_runtime *rt = w->rt;
    size_t len = evbuffer_get_length(s->in);
    /* An empty body is judged like any other too-short one. */
    const uint8_t *msg =
        len ? evbuffer_pullup(s->in, (ev_ssize_t)len) : (const uint8_t *)"";
    s->plain_len = len > TP_OHTTP_REQ_OVERHEAD ? len - TP_OHTTP_REQ_OVERHEAD : 0;
    s->plain = malloc(s->plain_len ? s->plain_len : 1);
    size_t got = 0;
    int rv = TP_ERR_NOMEM;
    if (msg && s->plain && tp_ohttp_gateway_new(&s->ogw) == 0)
        rv = s->too_large
                 ? TP_ERR_TOO_LARGE
                 : tp_ohttp_gateway_decap(s->ogw, msg, len, gw_keystore_lookup,
                                          rt->keystore, s->plain, s->plain_len, &got);
    if (rv != 0) {
        if (rv == TP_ERR_INVALID || rv == TP_ERR_TOO_LARGE)
            decap_dummy(s->ogw);
        s->answered = true;
        s->refused = true; /* the refusal writes the access line */
        /* The cover answers such a request at its head, before the body is in, and so
           never reuses the connection: neither does this answer, which had to read the
           body first. */
        if (!rt->snap->open)
            tp_req_set_close(s->req);
        refuse(w, s->req, decap_refusal(rv));
        return;
    }
    struct tp_bhttp_limits lim = TP_BHTTP_LIMITS_DEFAULT;
    lim.max_content = rt->snap->sealed.max_request;
    if (tp_bhttp_request_decode(&s->breq, s->plain, got, &lim) != 0) {
        answer_error(s, 400, "malformed request");
        return;
    }
    s->breq_valid = true;
    forward(s);
}

/* ----------------------------------------------------------- client side --- */

static void rq_on_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct sealed *s = req->handler_data;
    size_t len = evbuffer_get_length(data);
    size_t cap = s->w->rt->snap->sealed.max_request;
    if (s->too_large || evbuffer_get_length(s->in) + len > cap) {
        s->too_large = true;
        evbuffer_drain(data, len);
    } else {
        evbuffer_add_buffer(s->in, data);
    }
    tp_req_consume(req, len);
    if (!end)
        return;
    open_seal(s);
    sealed_done(s);
}

static void rq_on_writable(struct tp_req *req)
{
}

static void rq_on_abort(struct tp_req *req)
{
    struct sealed *s = req->handler_data;
    s->req_gone = true;
    if (s->adapter_running) {
        s->backend->ops->cancel(s->handle);
        s->adapter_running = false;
    }
    sealed_done(s);
}

static const struct tp_req_handler sealed_handler = {
    .on_body = rq_on_body,
    .on_writable = rq_on_writable,
    .on_abort = rq_on_abort,
};

/* What the head says, before a byte of the body is read: true to read on; false, with
   the reason in |why|, when the request is refused now (when the cover answers). */
static bool head_ok(struct gw_worker *w, const struct tp_req *req, enum gw_refusal *why)
{
    const struct tp_header *ct = tp_req_header(req, "content-type");
    /* A sealed request must declare its length (an OHTTP client always knows it): one
       without a length, or longer than max_request, is refused here rather than read,
       exactly as the cover answers such a request. */
    if (!gw_gate_allows(w, req))
        *why = GW_REFUSE_GATE;
    else if (tp_req_header(req, "expect"))
        /* An OHTTP client has its whole body and never waits for 100 Continue; the
           transport would send one for a request read on, and the cover never does. */
        *why = GW_REFUSE_EXPECT;
    else if (!tp_str_eq(req->method, "POST"))
        *why = GW_REFUSE_METHOD;
    else if (!ct || !tp_str_caseeq(ct->value, TP_OHTTP_REQ_MEDIA_TYPE))
        *why = GW_REFUSE_TYPE;
    else if (!req->has_body)
        *why = GW_REFUSE_MALFORMED;
    else if (req->content_length < 0)
        *why = GW_REFUSE_LENGTH;
    else if ((uint64_t)req->content_length > w->rt->snap->sealed.max_request)
        *why = GW_REFUSE_TOO_LARGE;
    else
        return true;
    return false;
}

static bool path_is(struct tp_str path, const char *want)
{
    size_t n = strlen(want);
    /* The query string is not part of the match. */
    size_t plen = path.len;
    const char *q = memchr(path.base, '?', path.len);
    if (q)
        plen = (size_t)(q - path.base);
    return plen == n && memcmp(path.base, want, n) == 0;
}

static void serve_keys(struct gw_worker *w, struct tp_req *req)
{
    if (w->rt->snap->role == CONF_ROLE_RELAY) {
        gw_relay_keys(w, req); /* no key store here: the gateway's list */
        return;
    }
    size_t len = 0;
    const uint8_t *keys = gw_keystore_configs(w->rt->keystore, &len);
    static const struct tp_header hs[] = {
        {TP_STR_LIT("content-type"), TP_STR_LIT(TP_OHTTP_KEYS_MEDIA_TYPE)},
        /* Never cached by a front: a cached copy would reach requests that never
           passed the gate. */
        {TP_STR_LIT("cache-control"), TP_STR_LIT("no-store")},
    };
    bool head = tp_str_eq(req->method, "HEAD");
    if (tp_req_respond(req, 200, hs, 2, (int64_t)len, head) != 0)
        return;
    if (!head) {
        tp_req_write_ref(req, keys, len);
        tp_req_end(req);
    }
}

bool gw_sealed_route(struct gw_worker *w, struct tp_req *req)
{
    const struct conf_sealed *cs = &w->rt->snap->sealed;
    if (!cs->enabled)
        return false;
    /* The paths are the edge's own, below the mount (the pipeline hands over only
       requests inside it). */
    struct tp_str path;
    (void)gw_gate_local_path(w->rt, req->path, &path);
    bool open = w->rt->snap->open;
    bool get = tp_str_eq(req->method, "GET") || tp_str_eq(req->method, "HEAD");
    if (path_is(path, cs->keys_path) || (open && path_is(path, GW_GATE_WELL_KNOWN)) ||
        (open && get && path_is(path, cs->path))) {
        /* Behind the gate, or public in an open deployment (RFC 9540: a GET of the
           gateway's URI gives its key configurations; a POST there is a request). */
        if (get && (open || gw_gate_allows(w, req))) {
            serve_keys(w, req);
            return true;
        }
        if (!open || !tp_str_eq(req->method, "POST")) {
            refuse(w, req, GW_REFUSE_METHOD);
            return true;
        }
    } else if (!path_is(path, cs->path)) {
        return false;
    }
    /* Everything that can be judged from the head is judged now, at the moment the
       cover would answer. */
    enum gw_refusal why = GW_REFUSE_OTHER;
    if (!head_ok(w, req, &why)) {
        refuse(w, req, why);
        return true;
    }
    if (w->rt->snap->role == CONF_ROLE_RELAY) {
        gw_relay_forward(w, req); /* never opened here: forwarded to the gateway */
        return true;
    }
    struct sealed *s = calloc(1, sizeof(*s));
    if (s) {
        s->in = evbuffer_new();
        s->body = evbuffer_new();
        s->finish = evtimer_new(w->base, finish_cb, s);
    }
    if (!s || !s->in || !s->body || !s->finish) {
        if (s)
            sealed_free(s);
        tp_req_reset(req);
        return true;
    }
    s->req = req;
    s->w = w;
    s->start_us = now_us();
    tp_req_set_handler(req, &sealed_handler, s);
    return true;
}
