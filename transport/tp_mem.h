/* An nghttp2 allocator that lets an idle HTTP/2 session give most of its memory back.

   nghttp2 allocates a 16 KiB outbound frame buffer when a session is created and keeps
   it for the session's life (lib/nghttp2_session.c, session_new), although its bytes
   are dead whenever nothing is being sent: nghttp2_session_mem_send has returned 0, so
   the active outbound item was reset. It also allocates a 4 KiB stream hash table
   (nghttp2_map_init, 256 buckets) that is all zeros whenever no stream is open. Held by
   thousands of idle connections, those two are most of an idle session's memory.

   While "paged" is on (only around nghttp2_session_server_new3), blocks of at least
   TP_MEM_PAGED_MIN bytes come from their own anonymous mapping; every other block comes
   from malloc. tp_mem_trim hands mapped pages back with MADV_DONTNEED: they cost nothing
   until written again, and come back zeroed. Untouched pages of a fresh mapping cost
   nothing either, so a table that is only ever read stays free. */
#ifndef ZASLON_TRANSPORT_TP_MEM_H
#define ZASLON_TRANSPORT_TP_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

/* Smaller blocks always come from malloc. */
#define TP_MEM_PAGED_MIN 4096
/* Mapped blocks one allocator tracks; more large blocks come from malloc. */
#define TP_MEM_PAGED_SLOTS 4

/* Embedded in its owner (tp_h2); the fields are the allocator's own. */
struct tp_mem {
    nghttp2_mem mem;
    bool paged; /* new large blocks are mapped */
    struct {
        void *p;
        size_t len; /* the mapping's length, a whole number of pages */
    } blocks[TP_MEM_PAGED_SLOTS];
};

/* Sets |m| up with paged allocation off and no blocks. */
void tp_mem_init(struct tp_mem *m);

/* Unmaps any block still mapped. Call after the session using |m| is deleted. */
void tp_mem_clear(struct tp_mem *m);

/* The nghttp2_mem to hand to nghttp2; it points into |m|, which must outlive it. */
nghttp2_mem *tp_mem_nghttp2(struct tp_mem *m);

/* Turns mapping of large blocks on or off for blocks allocated from now on. */
void tp_mem_set_paged(struct tp_mem *m, bool on);

/* Gives mapped pages back to the kernel and returns how many blocks it trimmed.
   Blocks of at least |dead_min| bytes are trimmed whatever they hold: the caller
   vouches that their contents are dead (for a session created with paged on and
   |dead_min| TP_MEM_H2_FRAMEBUF, whenever nghttp2_session_mem_send last returned 0 and
   no nghttp2 call is running). Smaller blocks are trimmed only when every byte is zero,
   which trimming leaves unchanged, so that is always safe. */
size_t tp_mem_trim(struct tp_mem *m, size_t dead_min);

/* nghttp2's outbound frame buffer: header, pad length and one maximal payload. */
#define TP_MEM_H2_FRAMEBUF (9 + 1 + 16384)

/* How many blocks are mapped now (for tests). */
size_t tp_mem_paged_blocks(const struct tp_mem *m);

#endif
