#include "tp_rand.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "tp_err.h"

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

/* Bumped in a forked child: every pool filled before the fork is stale there. */
static unsigned pool_gen;

static void forked_child(void)
{
    pool_gen++;
}

static void sodium_setup(void)
{
    /* sodium_init returns 1 when another caller already initialised it. */
    sodium_ok = sodium_init() >= 0 && pthread_atfork(NULL, NULL, forked_child) == 0;
}

static _Thread_local struct {
    uint8_t bytes[TP_RAND_PUBLIC_POOL];
    size_t off; /* bytes[off..] are unused; off == size: empty */
    unsigned gen;
    bool filled;
} pool;

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

/* Serves pinned bytes first (test builds); returns how many of |len| it wrote. */
static size_t take_pinned(uint8_t *p, size_t len)
{
#ifdef ZASLON_TESTING
    if (pin_off < pin_len) {
        size_t n = pin_len - pin_off;
        if (n > len)
            n = len;
        memcpy(p, pin_buf + pin_off, n);
        sodium_memzero(pin_buf + pin_off, n);
        pin_off += n;
        return n;
    }
#else
    (void)p;
    (void)len;
#endif
    return 0;
}

static bool sodium_ready(void)
{
    return pthread_once(&sodium_once, sodium_setup) == 0 && sodium_ok;
}

int tp_rand_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t n;

    if (len == 0)
        return 0;
    n = take_pinned(p, len);
    if (n == len)
        return 0;
    if (!sodium_ready()) {
        /* Never hand back pinned or stale bytes as if they were random. */
        sodium_memzero(buf, len);
        return TP_ERR_CRYPTO;
    }
    randombytes_buf(p + n, len - n);
    return 0;
}

int tp_rand_public(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t n;

    if (len == 0)
        return 0;
    n = take_pinned(p, len);
    if (n == len)
        return 0;
    p += n;
    len -= n;
    if (len > sizeof(pool.bytes))
        return tp_rand_bytes(p, len);
    if (!sodium_ready()) {
        sodium_memzero(buf, n + len);
        return TP_ERR_CRYPTO;
    }
    if (!pool.filled || pool.gen != pool_gen || sizeof(pool.bytes) - pool.off < len) {
        randombytes_buf(pool.bytes, sizeof(pool.bytes));
        pool.off = 0;
        pool.gen = pool_gen;
        pool.filled = true;
    }
    memcpy(p, pool.bytes + pool.off, len);
    /* Handed-out bytes are never handed out again. */
    sodium_memzero(pool.bytes + pool.off, len);
    pool.off += len;
    return 0;
}
