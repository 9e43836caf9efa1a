#include "gw_relay.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "gw_log.h"
#include "gw_runtime.h"
#include "gw_sealed.h"
#include "gw_worker.h"
#include "tp_h2client.h"
#include "tp_ohttp.h"

/* A relay connection to the gateway gets this long to connect (TCP, TLS, SETTINGS),
   within the whole-exchange relay.timeout. */
#define CONNECT_TIMEOUT_MS 10000
/* Below zaslon's default idle_timeout (60 s), so that the gateway rarely closes a
   connection under a request in flight. */
#define IDLE_TIMEOUT_MS 30000
/* A sealed answer is the backend's body (at most sealed.max_response), its fields and
   Binary HTTP framing, padded to a power of two, plus nonce and tag: at most about
   twice max_response. */
#define ANSWER_SLACK (128 * 1024)
/* Transport failures are worth a warning, but a dead gateway must not flood the log. */
#define WARN_INTERVAL_MS 1000

/* One forwarded exchange. Lives until the gateway's answer went back (or the client
   left) and nobody can call into it any more. */
struct relay_x {
    struct gw_worker *w;
    struct tp_req *req;
    struct evbuffer *in; /* the sealed request as it arrives */
    bool too_large;
    bool keys; /* a key-configuration fetch */
    bool head; /* HEAD: the answer's fields without its body */
    struct tp_h2client_req *up;
    uint64_t start_us;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void relay_free(struct relay_x *x)
{
    if (x->in)
        evbuffer_free(x->in);
    x->in = NULL;
    free(x);
}

/* The exchange is over: the transport calls nothing more of ours. After a reset the
   request is the transport's alone (|reset|): not touched again. */
static void relay_done(struct relay_x *x, bool reset)
{
    if (!reset)
        x->req->handler = NULL;
    relay_free(x);
}

static void warn_transport(struct gw_worker *w, int err)
{
    /* Per worker thread: each worker logs at most once per interval. */
    static _Thread_local uint64_t last_us;
    uint64_t now = now_us();
    if (last_us && now - last_us < (uint64_t)WARN_INTERVAL_MS * 1000u)
        return;
    last_us = now;
    gw_log(GW_LOG_WARN, "worker=%u relay: gateway %s", w->index, tp_strerror(err));
}

/* Answers as the edge answers a sealed request or a key fetch, with the gateway's
   body; nothing else of the gateway's answer goes through. Returns false if it had to
   reset the request instead. */
static bool answer(struct relay_x *x, const struct tp_h2client_resp *resp,
                   const char *ctype)
{
    const struct tp_header hs[] = {
        {TP_STR_LIT("content-type"), {ctype, strlen(ctype)}},
        /* Never cached by a front (as the edge says for both kinds of answer). */
        {TP_STR_LIT("cache-control"), TP_STR_LIT("no-store")},
    };
    struct tp_req *req = x->req;
    if (tp_req_respond(req, 200, hs, 2, (int64_t)resp->body_len, x->head) != 0) {
        tp_req_reset(req);
        return false;
    }
    gw_log_access(x->keys ? "relay-keys" : "relay", 200, x->head ? 0 : resp->body_len,
                  now_us() - x->start_us);
    if (x->head)
        return true;
    struct evbuffer *b = evbuffer_new();
    if (!b || (resp->body_len && evbuffer_add(b, resp->body, resp->body_len) != 0)) {
        if (b)
            evbuffer_free(b);
        tp_req_reset(req);
        return false;
    }
    tp_req_write(req, b);
    evbuffer_free(b);
    tp_req_end(req);
    return true;
}

static void up_done(void *arg, int err, const struct tp_h2client_resp *resp)
{
    struct relay_x *x = arg;
    x->up = NULL;
    const char *want = x->keys ? TP_OHTTP_KEYS_MEDIA_TYPE : TP_OHTTP_RES_MEDIA_TYPE;
    if (err != 0)
        warn_transport(x->w, err);
    bool answered = true;
    if (err == 0 && resp->status == 200 && tp_str_caseeq(resp->content_type, want))
        answered = answer(x, resp, want);
    else
        /* The gateway refused (a request it could not open, a key fetch it did not
           allow) or could not be reached: the relay's own cover answers. */
        gw_sealed_refuse(x->w, x->req);
    relay_done(x, !answered);
}

/* Sends the exchange on its way; on a failure to even queue it, refuses at once. */
static void relay_start(struct relay_x *x)
{
    const struct conf_snapshot *snap = x->w->rt->snap;
    struct tp_h2client_desc d;
    memset(&d, 0, sizeof(d));
    if (x->keys) {
        d.method = TP_STR_LIT("GET");
        d.path = (struct tp_str){snap->sealed.keys_path, strlen(snap->sealed.keys_path)};
    } else {
        size_t len = evbuffer_get_length(x->in);
        d.method = TP_STR_LIT("POST");
        d.content_type = TP_STR_LIT(TP_OHTTP_REQ_MEDIA_TYPE);
        d.body = len ? evbuffer_pullup(x->in, (ev_ssize_t)len) : NULL;
        d.body_len = len;
        d.has_body = true;
        if (len && !d.body) {
            gw_sealed_refuse(x->w, x->req);
            relay_done(x, false);
            return;
        }
    }
    int rv = tp_h2client_request(x->w->relay, &d, up_done, x, &x->up);
    if (rv != 0) {
        /* Queue full (TP_ERR_TOO_LARGE) or out of memory: as if the gateway were down. */
        warn_transport(x->w, rv);
        x->up = NULL;
        gw_sealed_refuse(x->w, x->req);
        relay_done(x, false);
        return;
    }
    /* The sealed bytes now live in the client's copy. */
    evbuffer_drain(x->in, evbuffer_get_length(x->in));
}

static void rq_on_body(struct tp_req *req, struct evbuffer *data, bool end)
{
    struct relay_x *x = req->handler_data;
    size_t len = evbuffer_get_length(data);
    size_t cap = x->w->rt->snap->sealed.max_request;
    if (x->keys || x->up || x->too_large || evbuffer_get_length(x->in) + len > cap) {
        /* The head declared at most max_request; a body that grows past it is refused
           like one that declared more. */
        x->too_large = x->too_large || !x->keys;
        evbuffer_drain(data, len);
    } else if (evbuffer_add_buffer(x->in, data) != 0) {
        x->too_large = true;
        evbuffer_drain(data, evbuffer_get_length(data));
    }
    tp_req_consume(req, len);
    if (!end || x->keys || x->up)
        return;
    if (x->too_large) {
        gw_sealed_refuse(x->w, req);
        relay_done(x, false);
        return;
    }
    relay_start(x);
}

static void rq_on_abort(struct tp_req *req)
{
    struct relay_x *x = req->handler_data;
    /* The client left: the gateway's answer would go nowhere. */
    tp_h2client_cancel(x->up);
    x->up = NULL;
    relay_free(x);
}

static const struct tp_req_handler relay_handler = {
    .on_body = rq_on_body,
    .on_abort = rq_on_abort,
};

static struct relay_x *relay_new(struct gw_worker *w, struct tp_req *req)
{
    struct relay_x *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->w = w;
    x->req = req;
    x->start_us = now_us();
    x->in = evbuffer_new();
    if (!x->in) {
        relay_free(x);
        return NULL;
    }
    return x;
}

void gw_relay_forward(struct gw_worker *w, struct tp_req *req)
{
    struct relay_x *x = w->relay ? relay_new(w, req) : NULL;
    if (!x) {
        tp_req_reset(req);
        return;
    }
    tp_req_set_handler(req, &relay_handler, x);
}

void gw_relay_keys(struct gw_worker *w, struct tp_req *req)
{
    struct relay_x *x = w->relay ? relay_new(w, req) : NULL;
    if (!x) {
        tp_req_reset(req);
        return;
    }
    x->keys = true;
    x->head = tp_str_eq(req->method, "HEAD");
    /* Any body is discarded by the handler; the fetch starts now, as the edge answers
       a key fetch at once. */
    tp_req_set_handler(req, &relay_handler, x);
    relay_start(x);
}

int gw_relay_worker_init(struct gw_worker *w, char *err, size_t errlen)
{
    const struct gw_runtime *rt = w->rt;
    const struct conf_snapshot *snap = rt->snap;
    w->relay = NULL;
    if (snap->role != CONF_ROLE_RELAY)
        return 0;
    unsigned timeout = snap->relay.timeout_ms;
    size_t max = snap->sealed.max_response;
    struct tp_h2client_opts o = {
        .url = snap->relay.gateway,
        .ssl_ctx = rt->relay_ssl_ctx,
        .connections = snap->relay.connections,
        .max_queue = snap->relay.max_queue,
        .timeout_ms = timeout,
        .connect_timeout_ms = timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS,
        .idle_timeout_ms = IDLE_TIMEOUT_MS,
        .max_response =
            max > (SIZE_MAX - ANSWER_SLACK) / 2 ? SIZE_MAX : 2 * max + ANSWER_SLACK,
    };
    int rv = tp_h2client_new(w->base, &o, &w->relay);
    if (rv != 0) {
        snprintf(err, errlen, "%s:%u: relay.gateway: %s", snap->file ? snap->file : "-",
                 snap->relay.line,
                 rv == TP_ERR_CONNECT ? "cannot resolve the gateway's name"
                                      : tp_strerror(rv));
        w->relay = NULL;
        return -1;
    }
    return 0;
}

void gw_relay_worker_free(struct gw_worker *w)
{
    tp_h2client_free(w->relay);
    w->relay = NULL;
}
