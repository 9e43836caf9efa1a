#include "tu_util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nibble(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

uint8_t *tu_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *out = malloc(n / 2 + 1);
    size_t o = 0;
    int hi = -1;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)hex[i]))
            continue;
        int v = nibble((unsigned char)hex[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        if (hi < 0) {
            hi = v;
        } else {
            out[o++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0) {
        free(out);
        return NULL;
    }
    *len = o;
    return out;
}

char *tu_read_vector(const char *name, size_t *len)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "%s/%s", ZASLON_TEST_VECTORS, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)sz + 1);
            if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
                buf[sz] = '\0';
                if (len)
                    *len = (size_t)sz;
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}
