/* The per-backend circuit breaker (see ad_breaker.h). */
#include "ad_breaker.h"

void ad_breaker_init(struct ad_breaker *b, unsigned threshold, unsigned cooldown_ms)
{
    *b = (struct ad_breaker){.threshold = threshold, .cooldown_ms = cooldown_ms};
}

enum ad_breaker_ticket ad_breaker_admit(struct ad_breaker *b, uint64_t now_ms)
{
    if (b->threshold == 0 || b->state == AD_BREAKER_CLOSED)
        return AD_BREAKER_PASS;
    if (b->state == AD_BREAKER_OPEN && now_ms >= b->open_until_ms) {
        b->state = AD_BREAKER_HALF_OPEN;
        b->probing = false;
    }
    if (b->state == AD_BREAKER_HALF_OPEN && !b->probing) {
        b->probing = true;
        return AD_BREAKER_PROBE;
    }
    b->refused++;
    return AD_BREAKER_REFUSED;
}

static void open_now(struct ad_breaker *b, uint64_t now_ms)
{
    b->state = AD_BREAKER_OPEN;
    b->probing = false;
    b->failures = 0;
    b->open_until_ms = now_ms + b->cooldown_ms;
    b->opened++;
}

void ad_breaker_success(struct ad_breaker *b, enum ad_breaker_ticket t)
{
    if (b->threshold == 0)
        return;
    if (t == AD_BREAKER_PROBE && b->state == AD_BREAKER_HALF_OPEN) {
        b->state = AD_BREAKER_CLOSED;
        b->probing = false;
        b->failures = 0;
    } else if (t == AD_BREAKER_PASS && b->state == AD_BREAKER_CLOSED) {
        b->failures = 0;
    }
}

bool ad_breaker_failure(struct ad_breaker *b, enum ad_breaker_ticket t, uint64_t now_ms)
{
    if (b->threshold == 0)
        return false;
    if (t == AD_BREAKER_PROBE && b->state == AD_BREAKER_HALF_OPEN) {
        open_now(b, now_ms);
        return true;
    }
    if (t != AD_BREAKER_PASS || b->state != AD_BREAKER_CLOSED)
        return false;
    if (++b->failures < b->threshold)
        return false;
    open_now(b, now_ms);
    return true;
}

void ad_breaker_abandon(struct ad_breaker *b, enum ad_breaker_ticket t)
{
    if (t == AD_BREAKER_PROBE && b->state == AD_BREAKER_HALF_OPEN)
        b->probing = false;
}
