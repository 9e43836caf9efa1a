#include <stdio.h>
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

/* tchar written out from RFC 9110 5.6.2, apart from the table under test. */
static bool rfc_tchar(int c)
{
    static const char specials[] = "!#$%&'*+-.^_`|~";
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    for (size_t i = 0; i < sizeof(specials) - 1; i++)
        if (c == (unsigned char)specials[i])
            return true;
    return false;
}

static void tchar_table(void)
{
    int count = 0;
    for (int c = 0; c < 256; c++) {
        unsigned char low = tp_http_tchar_lower[c];
        int want = !rfc_tchar(c) ? 0 : c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
        if (low != want || tp_http_is_tchar((unsigned char)c) != rfc_tchar(c))
            fprintf(stderr, "\n  byte 0x%02x: table 0x%02x, want 0x%02x\n", c, low, want);
        CU_ASSERT_EQUAL(low, want);
        CU_ASSERT_EQUAL(tp_http_is_tchar((unsigned char)c), rfc_tchar(c));
        count += low != 0;
    }
    /* 52 letters, 10 digits, 15 specials. */
    CU_ASSERT_EQUAL(count, 77);
}

static void tokens(void)
{
    static const struct {
        struct tp_str s;
        bool token;
    } cases[] = {
        {{NULL, 0}, false},
        {TP_STR_LIT(""), false},
        {TP_STR_LIT("x"), true},
        {TP_STR_LIT(" "), false},
        {TP_STR_LIT("a b"), false},
        {TP_STR_LIT("name:"), false},
        {TP_STR_LIT("caf\xc3\xa9"), false},
        {{"ab\0c", 4}, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CU_ASSERT_EQUAL(tp_http_is_token(cases[i].s), cases[i].token);
    char good[300];
    static const char set[] = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "abcdefghijklmnopqrstuvwxyz";
    for (size_t i = 0; i < sizeof(good); i++)
        good[i] = set[i % (sizeof(set) - 1)];
    CU_ASSERT_TRUE(tp_http_is_token((struct tp_str){good, sizeof(good)}));
    /* One bad byte anywhere, the last one too, spoils it. */
    for (size_t at = 0; at < sizeof(good); at += 37) {
        char keep = good[at];
        good[at] = '"';
        CU_ASSERT_FALSE(tp_http_is_token((struct tp_str){good, sizeof(good)}));
        good[at] = keep;
    }
    good[sizeof(good) - 1] = '\x7f';
    CU_ASSERT_FALSE(tp_http_is_token((struct tp_str){good, sizeof(good)}));
}

/* Splits |value| with tp_http_list_word and returns the words joined by '|'. */
static const char *words(struct tp_str value)
{
    static char out[256];
    size_t n = 0;
    struct tp_str w;
    out[0] = '\0';
    while (tp_http_list_word(&value, &w)) {
        CU_ASSERT_TRUE(w.len > 0);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%.*s", n ? "|" : "",
                              (int)w.len, w.base);
    }
    /* Nothing is left once the words run out. */
    CU_ASSERT_EQUAL(value.len, 0);
    return out;
}

static void list_words(void)
{
    /* Each value, and its words joined by '|'. Bytes other than the three separators
       belong to a word, whatever they are. */
    static const char *const cases[][2] = {
        {"", ""},
        {" ,\t, ,,\t ", ""},
        {"close", "close"},
        {"  close \t", "close"},
        {"\tclose", "close"},
        {"a,b", "a|b"},
        {"a , b", "a|b"},
        {"a,\tb", "a|b"},
        {"a b", "a|b"},
        {",,a,,", "a"},
        {"Keep-Alive, Upgrade,x-y", "Keep-Alive|Upgrade|x-y"},
        {"a;q=1,\"b\"", "a;q=1|\"b\""},
    };
    CU_ASSERT_STRING_EQUAL(words((struct tp_str){NULL, 0}), "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = words((struct tp_str){cases[i][0], strlen(cases[i][0])});
        if (strcmp(got, cases[i][1]) != 0)
            fprintf(stderr, "\n  \"%s\": got \"%s\"\n", cases[i][0], got);
        CU_ASSERT_STRING_EQUAL(got, cases[i][1]);
    }

    /* The last word ends exactly at the end of the value: no byte past it is read. */
    char tail[] = {' ', 'x', ',', 'c', 'l', 'o', 's', 'e'};
    struct tp_str rest = {tail, sizeof(tail)}, w;
    CU_ASSERT_TRUE(tp_http_list_word(&rest, &w));
    CU_ASSERT_TRUE(w.base == tail + 1 && w.len == 1);
    CU_ASSERT_TRUE(tp_http_list_word(&rest, &w));
    CU_ASSERT_TRUE(w.base == tail + 3 && w.len == 5);
    CU_ASSERT_TRUE(rest.len == 0);
    CU_ASSERT_FALSE(tp_http_list_word(&rest, &w));
    CU_ASSERT_EQUAL(w.len, 0);
}

int test_tp_http(void)
{
    CU_pSuite s = CU_add_suite("tp_http", NULL, NULL);
    if (!s || !CU_add_test(s, "date round trip", date_roundtrip) ||
        !CU_add_test(s, "methods and fields", methods_and_fields) ||
        !CU_add_test(s, "tchar table", tchar_table) ||
        !CU_add_test(s, "tokens", tokens) || !CU_add_test(s, "list words", list_words))
        return -1;
    return 0;
}
