/* The circuit breaker's state machine, on a clock the test moves. */
#include <CUnit/CUnit.h>

#include "unit_suites.h"
#include "ad_breaker.h"

#define T AD_BREAKER_PASS

static void opens_and_fails_fast(void)
{
    struct ad_breaker b;
    ad_breaker_init(&b, 3, 1000);
    uint64_t now = 50000;
    /* Two failures, a success: the count starts again. */
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, now), T);
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, now));
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, now));
    ad_breaker_success(&b, T);
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, now));
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, now));
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_CLOSED);
    CU_ASSERT_TRUE(ad_breaker_failure(&b, T, now));
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.opened, 1);
    /* Open: refused for the whole cooldown, whatever late results come in. */
    for (uint64_t t = now; t < now + 1000; t += 100)
        CU_ASSERT_EQUAL(ad_breaker_admit(&b, t), AD_BREAKER_REFUSED);
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, now + 10));
    ad_breaker_success(&b, T);
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.refused, 10);
}

static void half_open(void)
{
    struct ad_breaker b;
    ad_breaker_init(&b, 1, 500);
    CU_ASSERT_TRUE(ad_breaker_failure(&b, T, 1000));
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 1499), AD_BREAKER_REFUSED);
    /* One probe at the end of the cooldown; the rest wait for its result. */
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 1500), AD_BREAKER_PROBE);
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_HALF_OPEN);
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 1501), AD_BREAKER_REFUSED);
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 9999), AD_BREAKER_REFUSED);
    /* A late pass result says nothing about the probe. */
    ad_breaker_success(&b, T);
    CU_ASSERT_FALSE(ad_breaker_failure(&b, T, 1600));
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_HALF_OPEN);
    /* The probe fails: open again, for a full cooldown from now. */
    CU_ASSERT_TRUE(ad_breaker_failure(&b, AD_BREAKER_PROBE, 2000));
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.opened, 2);
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 2499), AD_BREAKER_REFUSED);
    /* An abandoned probe lets the next request probe. */
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 2500), AD_BREAKER_PROBE);
    ad_breaker_abandon(&b, AD_BREAKER_PROBE);
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_HALF_OPEN);
    CU_ASSERT_EQUAL(ad_breaker_admit(&b, 2501), AD_BREAKER_PROBE);
    /* It succeeds: closed, everything passes, the count starts from zero. */
    ad_breaker_success(&b, AD_BREAKER_PROBE);
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_CLOSED);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(ad_breaker_admit(&b, 2600), T);
    CU_ASSERT_EQUAL(b.failures, 0);
    /* Abandoning a plain request changes nothing. */
    ad_breaker_abandon(&b, T);
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_CLOSED);
}

static void off(void)
{
    struct ad_breaker b;
    ad_breaker_init(&b, 0, 500);
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT_EQUAL(ad_breaker_admit(&b, (uint64_t)i), T);
        CU_ASSERT_FALSE(ad_breaker_failure(&b, T, (uint64_t)i));
    }
    CU_ASSERT_EQUAL(b.state, AD_BREAKER_CLOSED);
    CU_ASSERT_EQUAL(b.opened, 0);
    CU_ASSERT_EQUAL(b.refused, 0);
}

int test_ad_breaker(void)
{
    CU_pSuite s = CU_add_suite("ad_breaker", NULL, NULL);
    if (!s || !CU_add_test(s, "opens after N in a row, fails fast", opens_and_fails_fast) ||
        !CU_add_test(s, "half-open: one probe, reopen, close", half_open) ||
        !CU_add_test(s, "threshold 0 is off", off))
        return -1;
    return 0;
}
