/* The replay cache for sealed requests.

   Every accepted request's encapsulated key (enc) is remembered until its Date window
   has passed; a second request with the same enc is a replay and is refused. The cache
   is shared by all workers (a replay may arrive on any of them), so it is split into
   shards, each behind its own mutex: the only lock on the sealed path, held for a
   few hash probes. It is sized at start and never grows: when a shard is full,
   requests to strict backends are refused rather than let an old entry go (a replayed
   ballot must never be accepted), and others evict the entry closest to expiry.

   Time: requests dated before the process started are refused for one window after
   the start, so that a restart (which empties the cache) lets nothing replay. An
   undated request (allowed only for non-strict backends) is protected for one window
   only: its copy is refused while remembered, and nothing dates it after that.

   A reload keeps the cache and its start time (a new, empty cache would let through a
   copy of a request the old one accepted, or the running generation still accepts
   while it drains). Its window may change then; its size only at a restart. */
#ifndef ZASLON_GATEWAY_GW_REPLAY_H
#define ZASLON_GATEWAY_GW_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct gw_replay;

enum gw_replay_verdict {
    GW_REPLAY_OK = 0,       /* fresh: remembered now */
    GW_REPLAY_SEEN = 1,     /* a replay */
    GW_REPLAY_FULL = 2,     /* no room, and the caller asked for strictness */
    GW_REPLAY_NO_DATE = 3,  /* strict and no Date */
    GW_REPLAY_STALE = 4,    /* Date outside the window, or before the start */
};

/* Creates a cache for |capacity| entries (rounded up) and a window of |window_s|
   seconds either side of now. |start| is the process start time. Returns 0 and *out, or
   -1. */
int gw_replay_new(size_t capacity, unsigned window_s, time_t start, struct gw_replay **out);

/* Takes one more reference on |r| and returns it: a reload hands the cache to the new
   runtime while the old generation still checks against it, so a replay is caught
   whichever generation each copy reaches. Thread-safe. */
struct gw_replay *gw_replay_ref(struct gw_replay *r);

/* Returns the capacity |r| was made with (as asked, before rounding). */
size_t gw_replay_capacity(const struct gw_replay *r);

/* Changes the window (a reload). A longer window also lengthens every remembered
   entry's life, so no copy outlives its entry. Thread-safe. */
void gw_replay_set_window(struct gw_replay *r, unsigned window_s);

/* Drops one reference; the last one frees the cache. Accepts NULL. */
void gw_replay_free(struct gw_replay *r);

/* Checks and records one request. |enc| is its encapsulated key, |has_date| and |date|
   its Date field, |now| the current time, |strict| whether the backend requires a Date
   and refuses rather than evicts. Thread-safe. */
enum gw_replay_verdict gw_replay_check(struct gw_replay *r, const uint8_t *enc,
                                       size_t enc_len, bool has_date, time_t date,
                                       time_t now, bool strict);

/* Returns a fixed English reason for |v|. */
const char *gw_replay_str(enum gw_replay_verdict v);

#endif
