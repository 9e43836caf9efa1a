/* The sealed route: Oblivious HTTP (RFC 9458) on the edge.

   A POST of Content-Type message/ohttp-req to the configured sealed path is read (up to
   sealed.max_request), decapsulated with the key store, decoded (Binary HTTP), checked
   against the replay cache and its Date window, routed by the inner authority and path
   to a backend adapter with the backend's header allowlist, and the backend's response
   is encoded, padded to the backend's size bucket, encapsulated and answered as
   200 message/ohttp-res with Cache-Control: no-store. Nothing from the backend is
   visible outside the seal; errors after decapsulation travel inside it.

   Every failure before decapsulation succeeds is answered by gw_sealed_refuse, the one
   place that decides what a prober sees. */
#ifndef ZASLON_GATEWAY_GW_SEALED_H
#define ZASLON_GATEWAY_GW_SEALED_H

#include <stdbool.h>

#include "tp_req.h"

struct gw_worker;

/* Takes |req| if it is for the sealed path or the key-configuration path (below the
   mount; with `open: true`, also the RFC 9540 well-known path) and returns true;
   returns false (leaving |req| alone) otherwise. Who may use them: gw_gate.h. */
bool gw_sealed_route(struct gw_worker *w, struct tp_req *req);

/* The answer to a request refused before decapsulation succeeded: the cover site's
   answer for its method and path (with `open: true`, a 400 problem details). */
void gw_sealed_refuse(struct gw_worker *w, struct tp_req *req);

#endif
