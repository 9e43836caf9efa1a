#include "fr_pad.h"

#include <stdint.h>

size_t fr_pad_bucket(size_t len, size_t min)
{
    size_t b = 1;
    size_t want = len > min ? len : min;
    while (b < want) {
        if (b > SIZE_MAX / 2)
            return len;
        b <<= 1;
    }
    return b;
}
