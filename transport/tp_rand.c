#include "tp_rand.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "tp_err.h"

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

static void sodium_setup(void)
{
    /* sodium_init returns 1 when another caller already initialised it. */
    sodium_ok = sodium_init() >= 0;
}

#ifdef ZASLON_TESTING
static _Thread_local uint8_t pin_buf[TP_RAND_PIN_MAX];
static _Thread_local size_t pin_len;
static _Thread_local size_t pin_off;

void tp_rand_pin(const uint8_t *bytes, size_t len)
{
    assert(len <= TP_RAND_PIN_MAX);
    sodium_memzero(pin_buf, sizeof(pin_buf));
    pin_off = 0;
    pin_len = 0;
    if (len == 0 || len > TP_RAND_PIN_MAX)
        return;
    memcpy(pin_buf, bytes, len);
    pin_len = len;
}

size_t tp_rand_pinned(void)
{
    return pin_len - pin_off;
}
#endif

int tp_rand_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t total = len;
    if (len == 0)
        return 0;
#ifdef ZASLON_TESTING
    if (pin_off < pin_len) {
        size_t n = pin_len - pin_off;
        if (n > len)
            n = len;
        memcpy(p, pin_buf + pin_off, n);
        sodium_memzero(pin_buf + pin_off, n);
        pin_off += n;
        p += n;
        len -= n;
        if (len == 0)
            return 0;
    }
#endif
    if (pthread_once(&sodium_once, sodium_setup) != 0 || !sodium_ok) {
        /* Never hand back pinned or stale bytes as if they were random. */
        sodium_memzero(buf, total);
        return TP_ERR_CRYPTO;
    }
    randombytes_buf(p, len);
    return 0;
}
