/* The access gate: who may see sealed traffic and the key configurations, where the
   edge's own part of the URL space begins (the mount), and what an open deployment
   tells a request it refuses.

   The gate is the config's `gate: {header, secrets}`: a request passes only if it
   carries the header (the origin secret a front injects) with one of the accepted
   values. Values are compared through a keyed BLAKE2b digest (a key drawn at start-up)
   with sodium_memcmp against the digest of every accepted value, each time: the work
   does not depend on which value matched, on how long the secrets are, or on how many
   are configured (always GW_GATE_MAX_SECRETS slots). Without `gate:` every request
   passes — for local tests and open deployments only. The header never reaches a
   backend (gw_gate_strip, on top of the allowlists) and is never logged.

   The path half of the gate is the sealed route's own paths (sealed.path and
   sealed.keys_path, which may be secret): only a request on one of them and through
   the gate sees anything but the cover site. */
#ifndef ZASLON_GATEWAY_GW_GATE_H
#define ZASLON_GATEWAY_GW_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf_snapshot.h"
#include "tp_req.h"

struct gw_worker;
struct gw_runtime;

/* Most accepted values (conf/ allows 1..16). */
#define GW_GATE_MAX_SECRETS 16

/* The RFC 9540 key path, answered publicly in open deployments. */
#define GW_GATE_WELL_KNOWN "/.well-known/ohttp-gateway"

enum gw_gate_err {
    GW_GATE_OK = 0,
    GW_GATE_ERR_INVALID = -1, /* a header name or value conf/ should have refused */
    GW_GATE_ERR_NOMEM = -2,
    GW_GATE_ERR_CRYPTO = -3, /* libsodium could not start or draw the key */
};

struct gw_gate;

/* Builds a gate from |g| (borrowed; its secrets are digested, not copied). Sets *out to
   NULL when |g| configures no gate (g->header NULL): a NULL gate lets every request
   through. Returns 0, or a GW_GATE_ERR_* with *out untouched. Free with gw_gate_free. */
int gw_gate_new(const struct conf_gate *g, struct gw_gate **out);

/* Wipes and frees |g|. Accepts NULL. */
void gw_gate_free(struct gw_gate *g);

/* True when the fields |hs[0..n)| carry the gate's header (name compared without
   regard to case; every occurrence is tried) with an accepted value. A NULL gate
   passes everything. Pure: touches nothing but |g| and |hs|, and reveals through its
   timing neither which value matched nor the accepted values' lengths. */
bool gw_gate_check(const struct gw_gate *g, const struct tp_header *hs, size_t n);

/* Removes every field named like the gate's header (case ignored) from |hs[0..n)| in
   place, keeping the order of the rest; returns how many remain. With a NULL gate
   returns |n|. Applied to whatever is forwarded, inner or outer: the origin secret
   never reaches a backend, whatever an allowlist says. */
size_t gw_gate_strip(const struct gw_gate *g, struct tp_header *hs, size_t n);

/* The request-level question "may |req| see sealed traffic and key configurations?":
   gw_gate_check over |req|'s fields with the worker's gate. The path half is the
   caller's (gw_sealed_route asks only for its own paths). */
bool gw_gate_allows(struct gw_worker *w, const struct tp_req *req);

/* The mount: with `mount: /prefix`, a front forwards /prefix/... to the edge. Sets
   *local to |path| with the prefix removed (it starts with '/'; the query stays) and
   returns true when |path| begins with the prefix and a '/'; returns false, with
   *local = |path|, for a path outside the mount. Without a mount, *local = |path| and
   true. Matching is on the raw target, byte for byte, as a front's path rule matches
   it. */
bool gw_gate_local_path(const struct gw_runtime *rt, struct tp_str path,
                        struct tp_str *local);

/* Why a request to the sealed route was refused before its seal was opened. */
enum gw_refusal {
    GW_REFUSE_OTHER,     /* any other reason */
    GW_REFUSE_GATE,      /* no accepted origin secret */
    GW_REFUSE_METHOD,    /* not POST (not GET, HEAD or POST on the open key path) */
    GW_REFUSE_EXPECT,    /* an Expect field (100-continue is never needed) */
    GW_REFUSE_TYPE,      /* Content-Type is not message/ohttp-req */
    GW_REFUSE_LENGTH,    /* no declared length */
    GW_REFUSE_TOO_LARGE, /* longer than sealed.max_request */
    GW_REFUSE_MALFORMED, /* not an encapsulated request at all (too short) */
    GW_REFUSE_KEY,       /* unknown key id, or a suite it does not offer */
    GW_REFUSE_DECRYPT,   /* the key is known but the request does not open (tag, enc) */
};

/* The answer an open deployment (`open: true`) gives a refusal: RFC 9457 problem
   details (application/problem+json, Cache-Control: no-store) with the status and
   type RFC 9458 asks for — 422 and the "ohttp-key" type for a key problem (section
   6.4 and 5.3), 405 with Allow, 415, 411, 413, 417, 403 for the gate, 400 otherwise.
   |allow| is the Allow field for GW_REFUSE_METHOD (NULL: "POST"). Returns the status
   sent, or 0 when the transport refused the head (the request was then reset). Never used
   when `open` is false: a censored deployment shows only the cover site. */
int gw_gate_problem(struct tp_req *req, enum gw_refusal why, const char *allow);

#endif
