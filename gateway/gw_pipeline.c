#include "gw_pipeline.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "adapter.h"
#include "fr_cover.h"
#include "fr_headers.h"
#include "fr_route.h"
#include "gw_gate.h"
#include "gw_log.h"
#include "gw_runtime.h"
#include "gw_sealed.h"
#include "gw_worker.h"

/* Most header fields a request or response carries through the pipeline; more are
   refused by the transport's header_fields limit long before. */
#define MAX_FIELDS 1024

/* A request handed to a backend adapter. Lives until the adapter is done with it and
   the transport is done with the request (see tp_req.h on on_abort). */
struct exchange {
    struct tp_req *req;
    struct gw_worker *w;
    const struct gw_backend *backend;
    void *inst;
    void *handle;
    int status;
    uint64_t bytes;
    uint64_t start_us;
    bool adapter_done; /* on_end or on_error came, or cancel was called */
    bool body_done;    /* the request body's end was passed on (or there is none) */
    bool req_gone;     /* the transport let go of the request */
    bool head_sent;
    struct tp_str prefix; /* the mount, when the path was taken from below it */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void exchange_log(struct exchange *x)
{
    gw_log_access(x->backend->name, x->status, x->bytes, now_us() - x->start_us);
}

/* Frees |x| once nobody can call into it any more. */
static void exchange_maybe_free(struct exchange *x)
{
    if (!x->adapter_done || !(x->req_gone || x->body_done))
        return;
    if (!x->req_gone)
        /* The transport keeps the request until it has sent everything; it calls
           nothing more of ours now that the body's end has been heard. */
        x->req->handler = NULL;
    exchange_log(x);
    free(x);
}

/* An error page as an ordinary server writes one, naming no product. Returns false
   when it could not even be started and |req| was reset instead (the transport then
   lets go of it without on_abort). */
static bool respond_status(struct tp_req *req, int status)
{
    char body[256];
    size_t n = tp_http_error_page(status, body, sizeof(body));
    struct tp_header ct = {TP_STR_LIT("content-type"), TP_STR_LIT("text/html")};
    if (tp_req_respond(req, status, &ct, 1, (int64_t)n, false) != 0) {
        tp_req_reset(req); /* no answer at all would leave the client waiting */
        return false;
    }
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add(b, body, n);
        tp_req_write(req, b);
        evbuffer_free(b);
    }
    tp_req_end(req);
    return true;
}

/* ------------------------------------------------------- adapter -> client --- */

/* Behind a mount, a backend's root-relative redirect ("/x", not "//host/x") gets the
   prefix back, as nginx's default proxy_redirect does: the backend sees paths below
   the mount, the client the paths above it. The new value is built in *mem (the
   caller frees it). Returns false only when memory runs out. */
static bool rewrite_location(struct tp_str prefix, struct tp_header *hs, size_t n,
                             char **mem)
{
    for (size_t i = 0; i < n; i++) {
        struct tp_str v = hs[i].value;
        if (!tp_str_eq(hs[i].name, "location") || v.len == 0 || v.base[0] != '/' ||
            (v.len > 1 && v.base[1] == '/'))
            continue;
        char *p = malloc(prefix.len + v.len);
        if (!p)
            return false;
        memcpy(p, prefix.base, prefix.len);
        memcpy(p + prefix.len, v.base, v.len);
        hs[i].value = (struct tp_str){p, prefix.len + v.len};
        *mem = p;
        return true; /* one Location: a response with several is the backend's mess */
    }
    return true;
}

/* The response cannot go on (memory ran out): resets the client's request and
   cancels the adapter, which may be in the middle of calling us. The transport calls
   no on_abort after a reset, so nothing may touch x->req afterwards. */
static void exchange_reset(struct exchange *x)
{
    tp_req_reset(x->req);
    x->req_gone = true;
    if (!x->adapter_done) {
        x->backend->ops->cancel(x->handle);
        x->adapter_done = true;
    }
    exchange_maybe_free(x);
}

static void ad_on_head(void *arg, int status, const struct tp_header *hs, size_t n,
                       int64_t content_length)
{
    struct exchange *x = arg;
    struct tp_header out[MAX_FIELDS];
    if (n > MAX_FIELDS)
        n = MAX_FIELDS;
    size_t m = fr_headers_filter_response(hs, n, out);
    x->status = status;
    x->head_sent = true;
    char *loc = NULL;
    bool ok = !x->prefix.len || rewrite_location(x->prefix, out, m, &loc);
    if (ok && tp_req_respond(x->req, status, out, m, content_length, false) != 0)
        ok = false;
    free(loc); /* the transport copied the fields */
    if (!ok)
        exchange_reset(x);
}

static bool ad_on_data(void *arg, struct evbuffer *data)
{
    struct exchange *x = arg;
    x->bytes += evbuffer_get_length(data);
    return tp_req_write(x->req, data);
}

static void ad_on_end(void *arg)
{
    struct exchange *x = arg;
    x->adapter_done = true;
    tp_req_end(x->req);
    exchange_maybe_free(x);
}

int gw_pipeline_adapter_status(int err)
{
    switch (err) {
    case ADAPTER_ERR_TIMEOUT: return 504;
    case ADAPTER_ERR_UNAVAILABLE: return 503;
    default: return 502;
    }
}

static void ad_on_error(void *arg, int err, bool head_sent)
{
    struct exchange *x = arg;
    x->adapter_done = true;
    if (head_sent || x->head_sent) {
        tp_req_reset(x->req);
        x->req_gone = true; /* a reset request gets no on_abort */
    } else {
        x->status = gw_pipeline_adapter_status(err);
        if (!respond_status(x->req, x->status))
            x->req_gone = true;
    }
    exchange_maybe_free(x);
}

static void ad_on_body_sent(void *arg, size_t n)
{
    struct exchange *x = arg;
    tp_req_consume(x->req, n);
}

static const struct adapter_response_cb adapter_cb = {
    .on_head = ad_on_head,
    .on_data = ad_on_data,
    .on_end = ad_on_end,
    .on_error = ad_on_error,
    .on_body_sent = ad_on_body_sent,
};

/* ------------------------------------------------------- client -> adapter --- */

static void rq_on_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct exchange *x = req->handler_data;
    size_t len = evbuffer_get_length(data);
    if (x->adapter_done || !req->has_body) {
        evbuffer_drain(data, len);
        if (len)
            tp_req_consume(req, len);
    } else if (x->backend->ops->body(x->handle, data, end) != 0) {
        /* The adapter refused the bytes: it will report the error itself. */
        evbuffer_drain(data, evbuffer_get_length(data));
    }
    if (end) {
        x->body_done = true;
        exchange_maybe_free(x);
    }
}

static void rq_on_writable(struct tp_req *req)
{
    struct exchange *x = req->handler_data;
    if (!x->adapter_done)
        x->backend->ops->resume(x->handle);
}

static void rq_on_abort(struct tp_req *req)
{
    struct exchange *x = req->handler_data;
    x->req_gone = true;
    if (!x->adapter_done) {
        x->backend->ops->cancel(x->handle);
        x->adapter_done = true;
        x->status = 499; /* nginx's "client closed request", for the access log */
    }
    exchange_maybe_free(x);
}

static const struct tp_req_handler exchange_handler = {
    .on_body = rq_on_body,
    .on_writable = rq_on_writable,
    .on_abort = rq_on_abort,
};

/* Hands |req| to backend |index| with the target |path| (|req|'s own, or the part
   below the mount, in which case |prefix| is the mount, for redirects). */
static void to_backend(struct gw_worker *w, struct tp_req *req, int index,
                       struct tp_str path, struct tp_str prefix)
{
    const struct gw_backend *b = &w->rt->backends[index];
    struct exchange *x = calloc(1, sizeof(*x));
    if (!x) {
        tp_req_reset(req);
        return;
    }
    x->req = req;
    x->w = w;
    x->backend = b;
    x->inst = w->adapters[index];
    x->start_us = now_us();
    x->body_done = !req->has_body;
    x->prefix = prefix;
    struct tp_header fields[MAX_FIELDS];
    size_t n = req->nheaders < MAX_FIELDS ? req->nheaders : MAX_FIELDS;
    n = fr_headers_filter_request(b->allowlist, req->headers, n, fields);
    /* The origin secret stops here, whatever an allowlist says. */
    n = gw_gate_strip(w->rt->gate, fields, n);
    struct adapter_request ar = {
        .method = req->method,
        .authority = req->authority,
        .path = path,
        .headers = fields,
        .nheaders = n,
        .content_length = req->content_length,
        .has_body = req->has_body,
    };
    int rv = b->ops->handle(x->inst, &ar, &adapter_cb, x, &x->handle);
    if (rv != 0) {
        x->status = gw_pipeline_adapter_status(rv);
        respond_status(req, x->status);
        x->adapter_done = true;
        x->req_gone = true;
        exchange_log(x);
        free(x);
        return;
    }
    tp_req_set_handler(req, &exchange_handler, x);
}

/* ------------------------------------------------------------------- cover --- */

/* The mount as a string view, or {NULL, 0}. */
static struct tp_str mount_of(const struct gw_runtime *rt)
{
    const char *m = rt->snap->mount;
    return m ? (struct tp_str){m, strlen(m)} : (struct tp_str){NULL, 0};
}

void gw_pipeline_serve_cover(struct gw_worker *w, struct tp_req *req)
{
    const struct gw_runtime *rt = w->rt;
    /* The cover reads no request body, so an HTTP/1.1 connection that carried one is
       closed after its answer (see tp_h1.c). Deciding it here, from the request and
       not from the timing, makes the answer the same whether it is given at the head
       or after a body was read (a sealed request refused after decapsulation failed). */
    if (req->has_body && rt->cover_backend < 0)
        tp_req_set_close(req);
    /* Below the mount the cover serves the part of the path after it (and puts the
       prefix back into its redirects); outside it, the site has nothing (404). */
    struct tp_str path;
    bool inside = gw_gate_local_path(rt, req->path, &path);
    struct tp_str prefix = inside ? mount_of(rt) : (struct tp_str){NULL, 0};
    if (rt->cover_backend >= 0) {
        /* An upstream cover answers for itself outside the mount: it gets the target
           as it came. */
        to_backend(w, req, rt->cover_backend, path, prefix);
        return;
    }
    struct fr_cover_request cr = {
        .method = req->method,
        .path = path,
        .prefix = prefix,
        .outside = !inside,
    };
    /* Absent fields stay {NULL, 0}: the cover tells absent from empty, as nginx does. */
    static const struct {
        const char *name;
        size_t off;
    } conds[] = {
        {"if-none-match", offsetof(struct fr_cover_request, if_none_match)},
        {"if-modified-since", offsetof(struct fr_cover_request, if_modified_since)},
        {"if-match", offsetof(struct fr_cover_request, if_match)},
        {"if-unmodified-since", offsetof(struct fr_cover_request, if_unmodified_since)},
        {"range", offsetof(struct fr_cover_request, range)},
        {"if-range", offsetof(struct fr_cover_request, if_range)},
    };
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++) {
        const struct tp_header *h = tp_req_header(req, conds[i].name);
        if (h)
            *(struct tp_str *)((char *)&cr + conds[i].off) = h->value;
    }
    struct fr_cover_response resp;
    fr_cover_serve(rt->cover, &cr, &resp);
    bool end = resp.no_body || resp.body_len == 0;
    if (tp_req_respond(req, resp.status, resp.headers, resp.nheaders, resp.content_length,
                       end) != 0) {
        tp_req_reset(req);
        return;
    }
    if (!end) {
        tp_req_write_ref(req, resp.body, resp.body_len);
        tp_req_end(req);
    }
    gw_log_access("cover", resp.status, resp.no_body ? 0 : resp.body_len, 0);
}

void gw_pipeline_on_request(void *arg, struct tp_req *req)
{
    struct gw_worker *w = arg;
    /* Outside the mount nothing of ours exists: the cover's answer, as for a path it
       does not have. Inside it, routes and the sealed route see the path below it. */
    struct tp_str path;
    if (!gw_gate_local_path(w->rt, req->path, &path)) {
        gw_pipeline_serve_cover(w, req);
        return;
    }
    if (gw_sealed_route(w, req))
        return;
    int target = fr_router_match(w->rt->router, req->authority, path);
    if (target == GW_TARGET_COVER)
        gw_pipeline_serve_cover(w, req);
    else
        to_backend(w, req, target, path, mount_of(w->rt));
}
