/* Small helpers shared by the unit suites. */
#ifndef ZASLON_TESTS_TU_UTIL_H
#define ZASLON_TESTS_TU_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Decodes hex (whitespace ignored) into a malloc'd buffer; *len receives its length.
   Returns NULL on bad input. Caller frees. */
uint8_t *tu_hex(const char *hex, size_t *len);

/* Reads a whole file from tests/vectors into a malloc'd NUL-terminated buffer. */
char *tu_read_vector(const char *name, size_t *len);

#endif
