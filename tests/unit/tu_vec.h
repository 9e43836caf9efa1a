/* Reading "name: hex" values out of the files in tests/vectors, for the sealing
   suites. Header-only so that it needs no change to the unit-test build.
   A value is the hex after the LAST ':' of the line that starts with |name| (labels
   such as "response (binary HTTP, known length: 200): 0140c8" have colons of their
   own), joined with the following lines that hold only hex digits and spaces. */
#ifndef ZASLON_TESTS_TU_VEC_H
#define ZASLON_TESTS_TU_VEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tu_util.h"

static inline bool tu_vec_hexish(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F') || c == ' ' || c == '\t' || c == '\r'))
            return false;
    }
    return true;
}

/* Returns the decoded value of |name| in |text| (malloc'd, *len set), or NULL if the
   name is missing, appears twice, or its value is not hex. */
static inline uint8_t *tu_vec_get(const char *text, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *found = NULL;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *s = p;
        while (n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        if (*s != '#' && n > nl && strncmp(s, name, nl) == 0 &&
            (s[nl] == ':' || s[nl] == ' ')) {
            if (found)
                return NULL;
            found = s;
        }
        p = eol ? eol + 1 : p + n;
    }
    if (!found)
        return NULL;
    const char *eol = strchr(found, '\n');
    size_t n = eol ? (size_t)(eol - found) : strlen(found);
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (found[i] == ':')
            colon = found + i;
    if (!colon || !tu_vec_hexish(colon + 1, n - (size_t)(colon + 1 - found)))
        return NULL;
    /* Gather the value and its continuation lines into one string for tu_hex. */
    size_t cap = strlen(colon) + 1;
    char *hex = malloc(cap);
    if (!hex)
        return NULL;
    size_t o = 0;
    memcpy(hex, colon + 1, n - (size_t)(colon + 1 - found));
    o = n - (size_t)(colon + 1 - found);
    for (const char *p = eol ? eol + 1 : NULL; p && *p;) {
        const char *e2 = strchr(p, '\n');
        size_t m = e2 ? (size_t)(e2 - p) : strlen(p);
        bool blank = true;
        for (size_t i = 0; i < m; i++)
            blank &= p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
        if (blank || !tu_vec_hexish(p, m))
            break;
        memcpy(hex + o, p, m);
        o += m;
        hex[o++] = ' ';
        p = e2 ? e2 + 1 : NULL;
    }
    hex[o] = '\0';
    uint8_t *out = tu_hex(hex, len);
    free(hex);
    return out;
}

#endif
