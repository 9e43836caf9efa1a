/* Routing: picks a handler for a request from its authority and raw path.

   A router is an ordered list of rules built once (at start-up or reload) and then
   shared read-only by every worker: matching allocates nothing and takes no lock.
   The first rule that matches wins; no match means the cover site.

   Authority. Compared without ASCII case, after dropping a ":port" suffix (also after
   "[v6]" literals, whose brackets are dropped too) and one trailing dot, so
   "Vote.Example.:443" is "vote.example". A rule host "*.example.com" matches any name
   with at least one more label ("a.example.com", "a.b.example.com") and never
   "example.com" itself.

   Path. Matched on the raw bytes as received, with no percent-decoding: the backend
   receives those same bytes, so routing on a decoded form would let "/api%2Fx" or
   "/%61pi/" be routed by one reading and served by another. A prefix ending in '/'
   matches by plain prefix; any other prefix matches the exact path or the prefix
   followed by '/' or '?' ("/api" matches "/api", "/api/x" and "/api?q", not "/apix").
   A path whose segments, once percent-decoded and split at '/' or '\', include "."
   or "..", or that does not start with '/', matches no rule: such a path could climb
   out of the prefix once the backend normalises it ("/api/..%2Fadmin"), and it goes
   to the cover, which normalises it as nginx would. */
#ifndef ZASLON_FRONTING_FR_ROUTE_H
#define ZASLON_FRONTING_FR_ROUTE_H

#include <stddef.h>

#include "tp_http.h"

/* One rule, as the caller describes it. */
struct fr_route_rule {
    const char *host; /* NULL = any authority; "name" exact or "*.name" for subdomains */
    const char *path; /* prefix, starts with '/'; NULL means "/" */
    int target;       /* the caller's handler id, >= 0; or -1: the cover, which lets an
                         early rule keep a path from the rules after it */
};

struct fr_router;

/* Builds a router from |rules[0..n)|, which are copied (hosts lowercased, one trailing
   dot dropped, brackets around an IPv6 literal dropped), so the caller may free them
   afterwards. n may be 0 (everything goes to the cover). Returns 0 and sets *out, or
   TP_ERR_INVALID (a host that is empty or has '*' anywhere but a leading "*.", a path
   not starting with '/', a target below -1), TP_ERR_TOO_LARGE (more than
   FR_ROUTE_MAX_RULES rules, or a host or path over 1024 bytes) or TP_ERR_NOMEM; *out
   is untouched on failure. The caller frees the router with fr_router_free. */
#define FR_ROUTE_MAX_RULES 4096
int fr_router_new(const struct fr_route_rule *rules, size_t n, struct fr_router **out);

/* Frees |r| and everything it owns. Accepts NULL. */
void fr_router_free(struct fr_router *r);

/* Returns the target of the first rule matching |authority| (":authority" or Host, may
   be empty) and |path| (the raw request target in origin form, query included), or -1
   when none does (serve the cover). Both strings are borrowed for the call only.
   Allocates nothing; safe to call from any thread on a router nobody is freeing. */
int fr_router_match(const struct fr_router *r, struct tp_str authority,
                    struct tp_str path);

/* Returns the number of rules in |r|. */
size_t fr_router_count(const struct fr_router *r);

#endif
