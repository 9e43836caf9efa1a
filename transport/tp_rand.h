/* The one source of randomness in zaslon (STYLE.md 6). Everything that needs random
   bytes (HPKE ephemeral keys, OHTTP response nonces, and whatever else comes) calls
   tp_rand_bytes, so a test or a fuzzer can make the output deterministic in one place,
   the way OSS-Fuzz's libsodium harnesses replace randombytes. */
#ifndef ZASLON_TRANSPORT_TP_RAND_H
#define ZASLON_TRANSPORT_TP_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fills |buf| with |len| bytes from libsodium's randombytes_buf (the kernel's CSPRNG).
   Thread-safe. Returns 0, or TP_ERR_CRYPTO if libsodium could not be initialised
   (the buffer is then zeroed, never left with stale contents). */
int tp_rand_bytes(void *buf, size_t len);

/* Fills |buf| with |len| random bytes meant to be sent in the clear (an OHTTP response
   nonce), from a per-thread pool that one randombytes_buf call refills
   TP_RAND_PUBLIC_POOL bytes at a time, so a nonce costs a copy rather than a system
   call. Never use it for anything secret: the pool's unused bytes stay readable in
   ordinary memory until they are handed out. A fork empties every pool (the child
   never repeats its parent's bytes); test pins (below) apply here too, first. Requests
   larger than the pool go straight to tp_rand_bytes. Thread-safe; returns as
   tp_rand_bytes does. */
#define TP_RAND_PUBLIC_POOL 512
int tp_rand_public(void *buf, size_t len);

#ifdef ZASLON_TESTING
/* Test builds only (ZASLON_TESTING): the next tp_rand_bytes calls made by THIS THREAD
   return |bytes| (copied; at most TP_RAND_PIN_MAX bytes, more is an assert), consumed
   front to back across calls; once they are used up, output is random again. A call
   asking for more bytes than remain gets the rest pinned and the tail random. Calling
   with len 0 drops whatever is still pinned. Typical use: pin an HPKE ephemeral private
   key (32 bytes) before an OHTTP request encapsulation, or a response nonce before a
   response encapsulation, to reproduce RFC vectors. Never compiled into production
   builds (configure with -DZASLON_TESTING=OFF). */
#define TP_RAND_PIN_MAX 256
void tp_rand_pin(const uint8_t *bytes, size_t len);

/* Test builds only: how many pinned bytes are still waiting to be consumed by this
   thread (lets a test assert that the code under test used exactly what it pinned). */
size_t tp_rand_pinned(void);
#endif

#endif
