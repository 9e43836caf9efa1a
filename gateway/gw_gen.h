/* Generations: one runtime and the workers serving it.

   A start makes the first generation; each SIGHUP that loads a good config makes the
   next one and then drains the one before, which keeps its own runtime (TLS contexts,
   key store, adapter configs) until its last worker has ended. Only the main thread
   calls these functions.

   Listening sockets belong to a pool on the main thread, not to a generation: a
   generation's workers listen on duplicates, spread over them (socket k of an address
   to worker k mod workers). A new generation reuses every open socket of an address
   its config still lists and binds new ones only for new addresses (or when it has
   more workers than sockets), so a socket with connections in its accept queue never
   closes during a reload: none is refused. Sockets of an address the new config drops
   close once no live generation uses them. */
#ifndef ZASLON_GATEWAY_GW_GEN_H
#define ZASLON_GATEWAY_GW_GEN_H

#include <stdbool.h>
#include <stddef.h>

#include "gw_runtime.h"

struct gw_sockets;
struct gw_gen;

/* Creates an empty socket pool. Returns 0 and *out, or -1 (out of memory). */
int gw_sockets_new(struct gw_sockets **out);

/* Closes every socket in the pool and frees it. Every generation must be freed
   first. Accepts NULL. */
void gw_sockets_free(struct gw_sockets *p);

/* Shutdown: closes the pool's copy of every socket now, so each closes as soon as the
   draining workers have closed theirs (new connections are refused from then on).
   The sockets stay in the pool, closed, until their generations are freed. */
void gw_sockets_close(struct gw_sockets *p);

/* Number of listening sockets in the pool. */
size_t gw_sockets_count(const struct gw_sockets *p);

/* Makes a generation from |rt| (takes ownership: freed with the generation, or now on
   failure): takes or binds its sockets in |pool| and creates rt->workers workers,
   not yet running. |id| names it in log lines. Returns 0 and *out, or -1 with
   "file:line: reason" (or "reason") in |err|, leaving the pool as it was. */
int gw_gen_new(struct gw_sockets *pool, struct gw_runtime *rt, unsigned id,
               struct gw_gen **out, char *err, size_t errlen);

/* Starts the workers' threads; |on_exit|(|arg|) runs on each worker's thread as it
   ends (see gw_gen_finished). Returns 0, or -1 (the workers started so far drain). */
int gw_gen_start(struct gw_gen *g, void (*on_exit)(void *arg), void *arg);

/* Asks every worker to drain. A second call does nothing. */
void gw_gen_drain(struct gw_gen *g);

/* True once every worker's loop has ended: gw_gen_free will not wait. */
bool gw_gen_finished(const struct gw_gen *g);

bool gw_gen_draining(const struct gw_gen *g);
unsigned gw_gen_id(const struct gw_gen *g);
const struct gw_runtime *gw_gen_runtime(const struct gw_gen *g);

/* Joins the workers, frees them and the runtime, and closes the pool's sockets no
   other generation uses. Accepts NULL. */
void gw_gen_free(struct gw_gen *g);

#endif
