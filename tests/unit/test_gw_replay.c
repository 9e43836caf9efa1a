/* The replay cache: verdicts, the Date window, the restart rule, fullness, threads. */
#include <pthread.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"
#include "gw_replay.h"

static void enc_of(unsigned i, uint8_t enc[32])
{
    memset(enc, 0, 32);
    memcpy(enc, &i, sizeof(i));
    enc[31] = 0x5a;
}

static void verdicts(void)
{
    struct gw_replay *r;
    time_t start = 1000000, now = start + 3600;
    CU_ASSERT_FATAL(gw_replay_new(1000, 60, start, &r) == 0);
    uint8_t e[32];
    enc_of(1, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now, now, true), GW_REPLAY_OK);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now, now, true), GW_REPLAY_SEEN);
    /* A copy stays refused for as long as its Date is inside the window. */
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now, now + 60, false), GW_REPLAY_SEEN);
    /* ... and after that the Date itself refuses it. */
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now, now + 61, false), GW_REPLAY_STALE);
    enc_of(2, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, false, 0, now, true), GW_REPLAY_NO_DATE);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, false, 0, now, false), GW_REPLAY_OK);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, false, 0, now, false), GW_REPLAY_SEEN);
    enc_of(3, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now - 61, now, false), GW_REPLAY_STALE);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now + 61, now, false), GW_REPLAY_STALE);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now + 60, now, false), GW_REPLAY_OK);
    CU_ASSERT_STRING_EQUAL(gw_replay_str(GW_REPLAY_SEEN), "replay");
    gw_replay_free(r);
}

static void restart_window(void)
{
    /* Within one window of the start, anything dated before the start is refused:
       the previous process may have accepted it. */
    struct gw_replay *r;
    time_t start = 2000000;
    CU_ASSERT_FATAL(gw_replay_new(1000, 60, start, &r) == 0);
    uint8_t e[32];
    enc_of(7, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, start - 1, start + 5, false),
                    GW_REPLAY_STALE);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, start, start + 5, false), GW_REPLAY_OK);
    enc_of(8, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, start + 59, start + 61, false),
                    GW_REPLAY_OK);
    gw_replay_free(r);
}

static void full_cache(void)
{
    /* Fill far past capacity: strict requests are refused rather than evict, others
       evict and are accepted; no strict entry ever becomes acceptable again. */
    struct gw_replay *r;
    time_t now = 3000000;
    CU_ASSERT_FATAL(gw_replay_new(1000, 60, now - 3600, &r) == 0);
    uint8_t e[32];
    unsigned full = 0, ok = 0;
    for (unsigned i = 0; i < 20000; i++) {
        enc_of(100 + i, e);
        enum gw_replay_verdict v = gw_replay_check(r, e, 32, true, now, now, true);
        full += v == GW_REPLAY_FULL;
        ok += v == GW_REPLAY_OK;
    }
    CU_ASSERT_TRUE(full > 0);
    CU_ASSERT_TRUE(ok >= 1000);
    /* Every strict request that was accepted is still refused as a replay. */
    unsigned replays = 0;
    for (unsigned i = 0; i < 20000; i++) {
        enc_of(100 + i, e);
        enum gw_replay_verdict v = gw_replay_check(r, e, 32, true, now, now, true);
        replays += v == GW_REPLAY_SEEN;
    }
    CU_ASSERT_EQUAL(replays, ok);
    /* Non-strict requests still get in by evicting. */
    enc_of(999999, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now, now, false), GW_REPLAY_OK);
    /* Once the window has passed, room comes back for strict requests too. */
    enc_of(888888, e);
    CU_ASSERT_EQUAL(gw_replay_check(r, e, 32, true, now + 200, now + 200, true), GW_REPLAY_OK);
    gw_replay_free(r);
}

struct race {
    struct gw_replay *r;
    time_t now;
    unsigned accepted;
};

static void *racer(void *arg)
{
    struct race *x = arg;
    uint8_t e[32];
    for (unsigned i = 0; i < 5000; i++) {
        enc_of(i, e); /* both threads present the same 5000 values */
        if (gw_replay_check(x->r, e, 32, true, x->now, x->now, false) == GW_REPLAY_OK)
            x->accepted++;
    }
    return NULL;
}

static void two_threads(void)
{
    /* A value presented on two workers at once is accepted exactly once. */
    struct gw_replay *r;
    time_t now = 4000000;
    CU_ASSERT_FATAL(gw_replay_new(100000, 60, now - 3600, &r) == 0);
    struct race a = {r, now, 0}, b = {r, now, 0};
    pthread_t ta, tb;
    CU_ASSERT_FATAL(pthread_create(&ta, NULL, racer, &a) == 0);
    CU_ASSERT_FATAL(pthread_create(&tb, NULL, racer, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT_EQUAL(a.accepted + b.accepted, 5000);
    gw_replay_free(r);
}

int test_gw_replay(void)
{
    CU_pSuite s = CU_add_suite("gw_replay", NULL, NULL);
    if (!s || !CU_add_test(s, "verdicts and the Date window", verdicts) ||
        !CU_add_test(s, "restart window", restart_window) ||
        !CU_add_test(s, "full cache: strict refuses, others evict", full_cache) ||
        !CU_add_test(s, "two threads, one acceptance", two_threads))
        return -1;
    return 0;
}
