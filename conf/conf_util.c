/* Allocation wrappers with a test hook, and error formatting. */
#include "conf_snapshot_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned long conf_alloc_fail_countdown;

/* True when the test hook says this allocation must fail. */
static bool alloc_should_fail(void)
{
    if (conf_alloc_fail_countdown == 0)
        return false;
    return --conf_alloc_fail_countdown == 0;
}

void *conf_malloc(size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *conf_calloc(size_t nmemb, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    return calloc(nmemb, size);
}

char *conf_strndup(const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *d = conf_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

int conf_errorf(struct conf_error *err, const char *file, unsigned line, int code,
                const char *fmt, ...)
{
    if (!err)
        return code;
    if (!file)
        file = "-";
    int n;
    if (line)
        n = snprintf(err->msg, sizeof(err->msg), "%s:%u: ", file, line);
    else
        n = snprintf(err->msg, sizeof(err->msg), "%s: ", file);
    /* A file name that fills the buffer leaves no room for the reason; the message is
       truncated, which the struct's contract allows. */
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof(err->msg)) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    err->line = line;
    return code;
}

const char *conf_show(char out[CONF_SHOW_SIZE], const char *s, size_t len)
{
    size_t n = len > CONF_SHOW_MAX ? CONF_SHOW_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > CONF_SHOW_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}
