/* Padding policy: sizes are rounded up to buckets so that the network and the front
   see only a few distinct lengths. */
#ifndef ZASLON_FRONTING_FR_PAD_H
#define ZASLON_FRONTING_FR_PAD_H

#include <stddef.h>

/* Returns the smallest power of two that is >= |len| and >= |min| (|min| is rounded up
   to a power of two too; 0 means 1). Returns |len| itself if the bucket would overflow
   size_t. */
size_t fr_pad_bucket(size_t len, size_t min);

#endif
