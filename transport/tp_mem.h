/* An nghttp2 allocator that lets an idle HTTP/2 session give its outbound frame buffer
   back to the kernel.

   nghttp2 allocates one 16 KiB frame buffer per session when the session is created
   and keeps it for the session's life (lib/nghttp2_session.c, session_new), although
   its bytes are dead whenever nothing is being sent: nghttp2_session_mem_send has
   returned 0, so the active outbound item was reset. Held by thousands of idle
   connections, those buffers are most of an idle connection's memory.

   While "paged" is on (only around nghttp2_session_server_new3), blocks of at least
   TP_MEM_PAGED_MIN bytes come from their own anonymous mapping; every other block comes
   from malloc. tp_mem_trim then hands the mapped pages back with MADV_DONTNEED: they
   cost nothing until written again, and come back zeroed. The caller decides when that
   is safe (see tp_mem_trim). */
#ifndef ZASLON_TRANSPORT_TP_MEM_H
#define ZASLON_TRANSPORT_TP_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

/* Smaller blocks always come from malloc. */
#define TP_MEM_PAGED_MIN (8 * 1024)
/* Mapped blocks one allocator tracks; more large blocks come from malloc. */
#define TP_MEM_PAGED_SLOTS 2

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

/* Gives every mapped block's pages back to the kernel (their contents become zero) and
   returns how many blocks it trimmed. Only for blocks whose contents are dead: for a
   session created with paged on, that is whenever nghttp2_session_mem_send last
   returned 0 and no nghttp2 call is running. */
size_t tp_mem_trim(struct tp_mem *m);

/* How many blocks are mapped now (for tests). */
size_t tp_mem_paged_blocks(const struct tp_mem *m);

#endif
