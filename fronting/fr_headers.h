/* Header allowlists: what of a client's request may reach a backend, and what of a
   backend's response may reach the client. This is the privacy core of the gateway:
   a backend must never learn who asked, so a request carries only the fields its
   backend's allowlist names, and never any field that can carry a client address, a
   CDN's view of the client, or a trace id that links requests, whatever the list says.

   Header names are lowercase (the transport lowercases them). The allowlist compares
   names exactly, so a name that somehow arrives with capitals is simply not allowed;
   the deny checks ignore case, so it is still denied. Values are never inspected. */
#ifndef ZASLON_FRONTING_FR_HEADERS_H
#define ZASLON_FRONTING_FR_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "tp_http.h"

struct fr_allowlist;

/* Builds an allowlist from |names[0..n)| (NUL-terminated field names; lowercased and
   copied, so the caller keeps ownership of its strings). Duplicates are harmless.
   |allow_cookie| lets "cookie" through even if |names| does not list it; without it
   "cookie" is dropped even if listed. Names that are always dropped (see
   fr_headers_always_dropped) may be listed but never pass. Returns 0 and sets *out, or
   TP_ERR_INVALID (a NULL, empty or non-token name), TP_ERR_TOO_LARGE (more than
   FR_ALLOWLIST_MAX names, or a name over 256 bytes) or TP_ERR_NOMEM; *out is untouched
   on failure. Free with fr_allowlist_free. */
#define FR_ALLOWLIST_MAX 1024
int fr_allowlist_new(const char *const *names, size_t n, bool allow_cookie,
                     struct fr_allowlist **out);

/* Frees |a|. Accepts NULL. */
void fr_allowlist_free(struct fr_allowlist *a);

/* Returns true if a request field named |name| may reach a backend under |a|. */
bool fr_allowlist_allows(const struct fr_allowlist *a, struct tp_str name);

/* Copies, in order, the fields of |in[0..n)| that may reach the backend into |out|,
   which must have room for n fields and may be |in| itself (filtering in place). The
   copied fields borrow their strings from |in|'s owner. Returns the number copied. */
size_t fr_headers_filter_request(const struct fr_allowlist *a, const struct tp_header *in,
                                 size_t n, struct tp_header *out);

/* Copies, in order, the fields of a backend response |in[0..n)| that may reach the
   client into |out| (room for n fields; may be |in|). Drops every always-dropped field,
   product and stack banners (server, x-powered-by, x-aspnet-version,
   x-aspnetmvc-version), via, and fields that would make the client contact another
   host on its own or report on its network (alt-svc, nel, report-to,
   reporting-endpoints): a backend must not be able to steer a censored client to a
   direct connection. The caller adds its own Server field if configured. Returns the
   number copied. */
size_t fr_headers_filter_response(const struct tp_header *in, size_t n,
                                  struct tp_header *out);

/* Returns true for a field that never crosses the gateway in either direction: hop-by-
   hop fields (tp_http_hop_by_hop), host (the authority travels separately), expect,
   proxy-authorization and proxy-authenticate, pseudo-header names (leading ':'), and
   every field that carries a client address, a front's view of the client or a trace
   context: forwarded, x-forwarded and x-forwarded-*, x-real-ip, true-client-ip,
   client-ip, x-client-ip, x-cluster-client-ip, x-originating-ip, x-remote-ip,
   x-remote-addr, x-original-forwarded-for, x-envoy-external-address,
   x-nf-client-connection-ip, fly-client-ip, akamai-origin-hop, via, cdn-loop, cf-*,
   fastly-*, cloudfront-viewer-*, x-amz-cf-*, x-azure-*, x-vercel-*, x-appengine-*,
   x-cloud-trace-context, traceparent, tracestate. Case is ignored. */
bool fr_headers_always_dropped(struct tp_str name);

#endif
