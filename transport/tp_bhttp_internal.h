/* Test hooks of tp_bhttp.c (STYLE.md 3): only tp_bhttp.c and the unit tests include
   this file. */
#ifndef ZASLON_TRANSPORT_TP_BHTTP_INTERNAL_H
#define ZASLON_TRANSPORT_TP_BHTTP_INTERNAL_H

#ifdef ZASLON_TESTING
/* While positive, each allocation the decoder attempts fails and decrements it, so a
   test can check the TP_ERR_NOMEM path (the decoder makes at most one allocation per
   message). Not thread-safe; tests only. */
extern int tp_bhttp_test_fail_alloc;
#endif

#endif
