/* The relay role: sealed requests forwarded, unopened, to a gateway.

   A relay (role: relay) holds no key: it creates no key store, opens no key file and
   never decapsulates. The sealed route's head checks (gw_sealed.c: gate, method,
   content type, declared length) run as on any edge; what passes is read whole (at
   most sealed.max_request) and POSTed through the worker's tp_h2client to
   relay.gateway over HTTP/2 with mutual TLS, carrying only Content-Type and
   Content-Length. A GET or HEAD of sealed.keys_path (RFC 9540 key discovery) is
   forwarded as a GET with no fields to the same path on the gateway's origin, so
   clients can learn the keys through the relay.

   What goes back: a gateway's sealed answer (200, message/ohttp-res) or key list (200,
   application/ohttp-keys) with its body, as the edge itself would send it
   (Content-Type and Cache-Control: no-store, the relay's own Date and Server, nothing
   of the gateway's fields). Anything else, whether the gateway refused (its cover's
   answer) or could not be reached, timed out or the queue was full, gets the relay's
   own refusal (gw_sealed_refuse: its cover site's answer): to a prober without keys, a
   relay whose gateway is down and a gateway refusing garbage look the same, and the
   gateway's own cover never shows through. */
#ifndef ZASLON_GATEWAY_GW_RELAY_H
#define ZASLON_GATEWAY_GW_RELAY_H

#include <stddef.h>

#include "tp_req.h"

struct gw_worker;

/* Creates the worker's HTTP/2 client to relay.gateway when the role is relay (sets
   w->relay; leaves it NULL otherwise). Resolves the gateway's name: call at start-up.
   Returns 0, or -1 with a reason in |err|. */
int gw_relay_worker_init(struct gw_worker *w, char *err, size_t errlen);

/* Closes the worker's connections to the gateway. Requests must have been cancelled
   (the server is freed first). Accepts a worker without a relay client. */
void gw_relay_worker_free(struct gw_worker *w);

/* Takes |req|, a sealed request whose head passed the sealed route's checks: reads its
   body and forwards it. Call from on_request, before returning. */
void gw_relay_forward(struct gw_worker *w, struct tp_req *req);

/* Takes |req|, a GET or HEAD of the key-configuration path that passed the gate, and
   answers it with the gateway's key list. Call from on_request, before returning. */
void gw_relay_keys(struct gw_worker *w, struct tp_req *req);

#endif
