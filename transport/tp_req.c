#include "tp_req.h"

#include <string.h>

void tp_req_set_handler(struct tp_req *req, const struct tp_req_handler *h, void *data)
{
    req->handler = h;
    req->handler_data = data;
}

int tp_req_respond(struct tp_req *req, int status, const struct tp_header *headers,
                   size_t nheaders, int64_t content_length, bool end)
{
    return req->ops->respond(req, status, headers, nheaders, content_length, end);
}

bool tp_req_write(struct tp_req *req, struct evbuffer *data)
{
    return req->ops->write(req, data);
}

bool tp_req_write_ref(struct tp_req *req, const void *data, size_t len)
{
    return req->ops->write_ref(req, data, len);
}

void tp_req_end(struct tp_req *req)
{
    req->ops->end(req);
}

void tp_req_reset(struct tp_req *req)
{
    req->ops->reset(req);
}

void tp_req_consume(struct tp_req *req, size_t n)
{
    req->ops->consume(req, n);
}

void tp_req_set_close(struct tp_req *req)
{
    req->ops->set_close(req);
}

size_t tp_req_pending(const struct tp_req *req)
{
    return req->ops->pending(req);
}

const struct tp_header *tp_req_header(const struct tp_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct tp_header *h = &req->headers[i];
        if (h->name.len == n && memcmp(h->name.base, name, n) == 0)
            return h;
    }
    return NULL;
}
