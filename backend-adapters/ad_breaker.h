/* A circuit breaker for one backend in one worker: I/O-free, the caller passes the
   time. Any adapter can keep one per instance; the http adapter does.

   CLOSED: requests pass; |threshold| failures in a row open it (a success resets the
   count). OPEN: requests fail fast, touching nothing, for |cooldown_ms|. HALF-OPEN
   (the cooldown is over): exactly one request passes as the probe and the others fail
   fast until it ends; a probe that succeeds closes the breaker, one that fails opens
   it for another cooldown, one that is abandoned (client gone, a local error) lets the
   next request probe. Results of requests admitted before the breaker opened change
   nothing while it is open or half-open. |threshold| 0 turns the breaker off. */
#ifndef ZASLON_ADAPTERS_AD_BREAKER_H
#define ZASLON_ADAPTERS_AD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum ad_breaker_state { AD_BREAKER_CLOSED, AD_BREAKER_OPEN, AD_BREAKER_HALF_OPEN };

struct ad_breaker {
    unsigned threshold;   /* failures in a row that open it; 0 = off */
    unsigned cooldown_ms; /* how long it stays open */
    unsigned failures;    /* in a row, while closed */
    enum ad_breaker_state state;
    bool probing;         /* half-open and the probe is out */
    uint64_t open_until_ms;
    uint64_t opened;      /* times it opened, for logs and tests */
    uint64_t refused;     /* requests failed fast */
};

/* What a request admitted by ad_breaker_admit carries to its result. */
enum ad_breaker_ticket { AD_BREAKER_REFUSED, AD_BREAKER_PASS, AD_BREAKER_PROBE };

void ad_breaker_init(struct ad_breaker *b, unsigned threshold, unsigned cooldown_ms);

/* Decides one request at |now_ms| (a monotonic clock): AD_BREAKER_REFUSED (fail it
   fast), AD_BREAKER_PASS, or AD_BREAKER_PROBE (the half-open probe). */
enum ad_breaker_ticket ad_breaker_admit(struct ad_breaker *b, uint64_t now_ms);

/* The backend answered (a response head came). */
void ad_breaker_success(struct ad_breaker *b, enum ad_breaker_ticket t);

/* The backend failed the request: refused, unreachable, timed out, garbage, or closed
   before a response head. Returns true if this opened the breaker. */
bool ad_breaker_failure(struct ad_breaker *b, enum ad_breaker_ticket t, uint64_t now_ms);

/* The request ended saying nothing about the backend (cancelled, local error). */
void ad_breaker_abandon(struct ad_breaker *b, enum ad_breaker_ticket t);

#endif
