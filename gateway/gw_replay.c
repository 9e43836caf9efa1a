#include "gw_replay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SHARDS 64
/* Linear probing looks at most this many slots: a full neighbourhood counts as full. */
#define PROBES 16

struct slot {
    uint8_t tag[16]; /* keyed hash of enc: enc values are attacker-chosen */
    time_t expires;  /* 0: empty */
};

struct shard {
    pthread_mutex_t lock;
    struct slot *slots;
};

struct gw_replay {
    atomic_uint refs;
    struct shard shards[SHARDS];
    size_t capacity; /* as asked for, before rounding */
    size_t per_shard; /* power of two */
    atomic_uint window_s; /* a reload may change it (gw_replay_set_window) */
    time_t start;
    uint8_t key[crypto_generichash_KEYBYTES];
};

int gw_replay_new(size_t capacity, unsigned window_s, time_t start, struct gw_replay **out)
{
    struct gw_replay *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    size_t per = 64;
    while (per * SHARDS < capacity)
        per *= 2;
    atomic_init(&r->refs, 1);
    r->capacity = capacity;
    r->per_shard = per;
    atomic_init(&r->window_s, window_s);
    r->start = start;
    randombytes_buf(r->key, sizeof(r->key));
    for (size_t i = 0; i < SHARDS; i++) {
        r->shards[i].slots = calloc(per, sizeof(struct slot));
        if (!r->shards[i].slots || pthread_mutex_init(&r->shards[i].lock, NULL) != 0) {
            free(r->shards[i].slots);
            r->shards[i].slots = NULL;
            gw_replay_free(r);
            return -1;
        }
    }
    *out = r;
    return 0;
}

struct gw_replay *gw_replay_ref(struct gw_replay *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

size_t gw_replay_capacity(const struct gw_replay *r)
{
    return r->capacity;
}

void gw_replay_set_window(struct gw_replay *r, unsigned window_s)
{
    unsigned old = atomic_exchange(&r->window_s, window_s);
    if (window_s <= old)
        return; /* entries kept longer than needed cost room, not safety */
    /* An entry lives a window past the later of its arrival and its Date: with a
       longer window, a copy could still be in it when the entry ends. Entries added
       since the exchange already have the new window and get a little extra. */
    time_t more = (time_t)(window_s - old);
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *sh = &r->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t k = 0; k < r->per_shard; k++)
            if (sh->slots[k].expires)
                sh->slots[k].expires += more;
        pthread_mutex_unlock(&sh->lock);
    }
}

void gw_replay_free(struct gw_replay *r)
{
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        if (!r->shards[i].slots)
            continue;
        free(r->shards[i].slots);
        pthread_mutex_destroy(&r->shards[i].lock);
    }
    sodium_memzero(r->key, sizeof(r->key));
    free(r);
}

const char *gw_replay_str(enum gw_replay_verdict v)
{
    switch (v) {
    case GW_REPLAY_OK: return "fresh";
    case GW_REPLAY_SEEN: return "replay";
    case GW_REPLAY_FULL: return "replay cache full";
    case GW_REPLAY_NO_DATE: return "date required";
    case GW_REPLAY_STALE: return "date outside window";
    }
    return "unknown";
}

enum gw_replay_verdict gw_replay_check(struct gw_replay *r, const uint8_t *enc,
                                       size_t enc_len, bool has_date, time_t date,
                                       time_t now, bool strict)
{
    time_t w = (time_t)atomic_load(&r->window_s);
    if (!has_date && strict)
        return GW_REPLAY_NO_DATE;
    if (has_date) {
        if (date < now - w || date > now + w)
            return GW_REPLAY_STALE;
        /* Within one window of a restart, anything dated before the start may be a
           copy of a request the old process accepted. */
        if (now < r->start + w && date < r->start)
            return GW_REPLAY_STALE;
    }
    uint8_t tag[16];
    crypto_generichash(tag, sizeof(tag), enc, enc_len, r->key, sizeof(r->key));
    uint64_t h;
    memcpy(&h, tag, sizeof(h));
    struct shard *sh = &r->shards[h % SHARDS];
    size_t mask = r->per_shard - 1;
    size_t base = (size_t)(h / SHARDS) & mask;
    /* An entry lives a whole window past the later of now and its Date: a copy can
       only be accepted while its Date is in the window, and that ends by then. */
    time_t expires = (has_date && date > now ? date : now) + w + 1;
    enum gw_replay_verdict v = GW_REPLAY_OK;
    pthread_mutex_lock(&sh->lock);
    struct slot *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        struct slot *s = &sh->slots[(base + i) & mask];
        bool live = s->expires > now;
        if (live && sodium_memcmp(s->tag, tag, sizeof(tag)) == 0) {
            v = GW_REPLAY_SEEN;
            break;
        }
        if (!live && !free_slot)
            free_slot = s;
        if (live && (!oldest || s->expires < oldest->expires))
            oldest = s;
    }
    if (v == GW_REPLAY_OK) {
        if (!free_slot && strict)
            v = GW_REPLAY_FULL;
        else {
            struct slot *s = free_slot ? free_slot : oldest;
            memcpy(s->tag, tag, sizeof(tag));
            s->expires = expires;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return v;
}
