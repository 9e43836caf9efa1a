/* The request pipeline: one function for every request, whatever connection it came
   on. It routes by authority and path, then serves the cover or hands the request to
   a backend adapter with its headers stripped to the backend's allowlist. */
#ifndef ZASLON_GATEWAY_GW_PIPELINE_H
#define ZASLON_GATEWAY_GW_PIPELINE_H

#include "tp_req.h"

struct gw_worker;

/* The status a client gets for an adapter error (ADAPTER_ERR_*): 504 for a timeout,
   503 when the backend takes no requests now, 502 otherwise. */
int gw_pipeline_adapter_status(int err);

/* Serves the cover site's answer to |req| (static or upstream). */
void gw_pipeline_serve_cover(struct gw_worker *w, struct tp_req *req);

/* tp_server_opts.on_request for a worker; |arg| is the struct gw_worker. */
void gw_pipeline_on_request(void *arg, struct tp_req *req);

#endif
