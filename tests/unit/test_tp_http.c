#include <string.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "tp_http.h"

static void date_roundtrip(void)
{
    char buf[TP_HTTP_DATE_LEN + 1];
    CU_ASSERT_EQUAL(tp_http_date(784111777, buf), TP_HTTP_DATE_LEN);
    CU_ASSERT_STRING_EQUAL(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    time_t t = 0;
    CU_ASSERT_EQUAL(tp_http_date_parse((struct tp_str){buf, TP_HTTP_DATE_LEN}, &t), 0);
    CU_ASSERT_EQUAL(t, 784111777);
    CU_ASSERT_EQUAL(tp_http_date_parse(TP_STR_LIT("Sun, 06 Nov 1994 08:49:37 UTC"), &t), -1);
    CU_ASSERT_EQUAL(tp_http_date_parse(TP_STR_LIT("Sun, 06 Xyz 1994 08:49:37 GMT"), &t), -1);
    /* A leap day, and a date past 2038. */
    CU_ASSERT_EQUAL(tp_http_date_parse(TP_STR_LIT("Thu, 29 Feb 2024 00:00:00 GMT"), &t), 0);
    CU_ASSERT_EQUAL(t, 1709164800);
    CU_ASSERT_EQUAL(tp_http_date_parse(TP_STR_LIT("Sat, 01 Jan 2050 00:00:00 GMT"), &t), 0);
    CU_ASSERT_EQUAL(t, 2524608000);
}

static void methods_and_fields(void)
{
    CU_ASSERT_TRUE(tp_http_method_idempotent(TP_STR_LIT("GET")));
    CU_ASSERT_TRUE(tp_http_method_idempotent(TP_STR_LIT("HEAD")));
    CU_ASSERT_FALSE(tp_http_method_idempotent(TP_STR_LIT("POST")));
    CU_ASSERT_FALSE(tp_http_method_idempotent(TP_STR_LIT("PUT")));
    CU_ASSERT_TRUE(tp_http_hop_by_hop(TP_STR_LIT("transfer-encoding")));
    CU_ASSERT_FALSE(tp_http_hop_by_hop(TP_STR_LIT("content-length")));
    CU_ASSERT_STRING_EQUAL(tp_http_reason(404), "Not Found");
    CU_ASSERT_TRUE(tp_str_caseeq(TP_STR_LIT("Content-Type"), "content-type"));
}

int test_tp_http(void)
{
    CU_pSuite s = CU_add_suite("tp_http", NULL, NULL);
    if (!s || !CU_add_test(s, "date round trip", date_roundtrip) ||
        !CU_add_test(s, "methods and fields", methods_and_fields))
        return -1;
    return 0;
}
