/* The runtime: everything built from one config snapshot that workers share read-only
   (TLS contexts, router, cover site, backends with their parsed adapter configs and
   header allowlists). Built and validated before anything listens, so `zaslon -t` and
   `zaslonctl check-config` run exactly the checks a start would. */
#ifndef ZASLON_GATEWAY_GW_RUNTIME_H
#define ZASLON_GATEWAY_GW_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "adapter.h"
#include "conf_snapshot.h"
#include "fr_cover.h"
#include "fr_headers.h"
#include "fr_route.h"
#include "gw_keystore.h"
#include "gw_replay.h"
#include "tp_server.h"

struct gw_gate;

struct gw_backend {
    const char *name;                /* borrowed from the snapshot */
    const struct adapter_ops *ops;
    void *adapter_cfg;               /* from ops->config_parse */
    struct fr_allowlist *allowlist;
    bool strict;    /* replay: strict — sealed requests need a fresh Date */
    size_t pad_min; /* sealed responses are padded to powers of two from this */
};

/* Route target for the cover, as returned by fr_router_match. */
#define GW_TARGET_COVER (-1)

struct gw_runtime {
    struct conf_snapshot *snap; /* owned */
    SSL_CTX **ssl_ctx;          /* one per listen entry; NULL for cleartext */
    struct fr_router *router;
    struct fr_cover_site *cover; /* static cover, or NULL with cover_backend */
    int cover_backend;           /* index into backends for `cover: upstream`, or -1 */
    struct gw_backend *backends;
    size_t nbackends;            /* configured backends, plus the cover upstream */
    struct tp_server_limits limits;
    unsigned workers;
    struct gw_keystore *keystore; /* with sealed.enabled, except in role relay */
    struct gw_replay *replay;     /* shared by all workers; internally locked */
    struct gw_gate *gate;         /* the access gate; NULL when none is configured */
    SSL_CTX *relay_ssl_ctx;       /* role relay: client TLS (and certificate) toward
                                     relay.gateway; NULL otherwise */
};

/* Builds a runtime from |snap|, taking ownership of it (freed on failure too).
   Returns 0 and *out, or -1 with "file:line: reason" or "file: reason" in |err|. */
int gw_runtime_new(struct conf_snapshot *snap, struct gw_runtime **out, char *err,
                   size_t errlen);

/* Loads |path| and builds a runtime: the whole of a config check. */
int gw_runtime_load(const char *path, struct gw_runtime **out, char *err, size_t errlen);

/* SIGHUP: after building |rt| for the new config, carries over from |old| (the running
   runtime; its workers may still use it) what must outlive a config: the replay
   cache, then shared by both generations, so a copy is caught whichever one it
   reaches. Changes nothing that |old|'s workers see. */
void gw_runtime_inherit(struct gw_runtime *rt, const struct gw_runtime *old);

/* Once |rt|'s generation serves: applies what changes shared state, i.e. the new
   sealed.replay_window on the inherited replay cache. */
void gw_runtime_commit(struct gw_runtime *rt);

/* Returns 0 when a running process may switch from |old| to |rt|, or -1 with
   "file: reason" or "file:line: reason" in |err| for a change only a restart applies:
   error_log (path and level) and access_log, opened once at start, and
   sealed.replay_cache (the cache is kept, with its size). */
int gw_runtime_reloadable(const struct gw_runtime *old, const struct gw_runtime *rt,
                          char *err, size_t errlen);

/* Frees everything. Accepts NULL. */
void gw_runtime_free(struct gw_runtime *rt);

#endif
