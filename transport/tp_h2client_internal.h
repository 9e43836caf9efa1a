/* tp_h2client internals shared with its unit tests: counters.
   Nothing outside transport/tp_h2client.c and its tests includes this file. */
#ifndef ZASLON_TRANSPORT_TP_H2CLIENT_INTERNAL_H
#define ZASLON_TRANSPORT_TP_H2CLIENT_INTERNAL_H

#include <stdint.h>

#include "tp_h2client.h"

struct tp_h2client_stats {
    unsigned conns;         /* open: connecting, waiting for SETTINGS, ready or closing */
    unsigned ready;         /* of which carry requests (ready and no GOAWAY) */
    unsigned queued;        /* requests waiting */
    unsigned streams;       /* requests on the wire */
    uint64_t connects;      /* connections attempted since creation */
    uint64_t retries;       /* refused streams sent again (at most once each) */
    const char *last_close; /* fixed reason of the last connection teardown, or NULL */
};

/* Fills |st| from |c|. */
void tp_h2client_stats(const struct tp_h2client *c, struct tp_h2client_stats *st);

#endif
