#include <stdint.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "fr_pad.h"

static void buckets(void)
{
    CU_ASSERT_EQUAL(fr_pad_bucket(0, 1024), 1024);
    CU_ASSERT_EQUAL(fr_pad_bucket(1024, 1024), 1024);
    CU_ASSERT_EQUAL(fr_pad_bucket(1025, 1024), 2048);
    CU_ASSERT_EQUAL(fr_pad_bucket(5000, 1000), 8192);
    CU_ASSERT_EQUAL(fr_pad_bucket(3, 0), 4);
    CU_ASSERT_EQUAL(fr_pad_bucket(SIZE_MAX - 5, 1024), SIZE_MAX - 5);
}

int test_fr_pad(void)
{
    CU_pSuite s = CU_add_suite("fr_pad", NULL, NULL);
    if (!s || !CU_add_test(s, "buckets", buckets))
        return -1;
    return 0;
}
