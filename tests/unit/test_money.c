/*
 * test_money.c — micro-credit parsing, rounding and percentages
 * (spec semantics.md §1, inputs.md "Decimals").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "money.h"

static int64_t parse(const char *s)
{
    int64_t v = -42;
    const char *why;
    assert_int_equal(tly_parse_micro(s, strlen(s), 1000000000 * TLY_MICRO, &v, &why), 0);
    return v;
}

static void test_decimal_to_micro(void **state)
{
    (void)state;
    assert_int_equal(parse("12.5"), 12500000);
    assert_int_equal(parse("-0.000063"), -63);
    assert_int_equal(parse("75"), 75000000);
    assert_int_equal(parse("1000000000"), 1000000000 * TLY_MICRO);
}

static void test_decimal_rejects(void **state)
{
    static const char *bad[] = { "1.2345678", "1e3", "1,000", "", "-", ".5", "5.", "1000000000.000001", " 1" };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        const char *why = NULL;
        assert_int_equal(tly_parse_micro(bad[i], strlen(bad[i]), 1000000000 * TLY_MICRO, &v, &why), -1);
        assert_non_null(why);
    }
}

static void test_round_half_even_ties(void **state)
{
    (void)state;
    assert_int_equal(tly_div_half_even(5, 2), 2);     /* 2.5 -> 2 */
    assert_int_equal(tly_div_half_even(7, 2), 4);     /* 3.5 -> 4 */
    assert_int_equal(tly_div_half_even(-5, 2), -2);
    assert_int_equal(tly_div_half_even(-7, 2), -4);
    assert_int_equal(tly_div_half_even(10, 3), 3);
    /* spec example: 4,000,000 µ/h for 16,267 s -> 18,074,444.4 -> 18,074,444 */
    assert_int_equal(tly_charge(4000000, 16267), 18074444);
    assert_int_equal(tly_charge(50000, 16267), 225931);
    /* 125,000 µ/h for 68,801 s = 2,388,923.6 -> 2,388,924 */
    assert_int_equal(tly_charge(125000, 68801), 2388924);
}

/*
 * inputs.md "Decimals" bounds a rate at 10,000 credits/h x 100,000 = 10^15
 * micro-credits/h.  A 3 h segment at that rate forms r x s = 1.08 x 10^19,
 * past int64 (semantics §1: computed in 128 bits), and costs 3 x 10^15.
 */
static void test_charge_at_the_largest_rate(void **state)
{
    int64_t rate = -1;
    (void)state;
    assert_int_equal(tly_segment_rate(10000000000LL, 100000, &rate), 0);
    assert_true(rate == 1000000000000000LL);
    assert_true(tly_charge(rate, 3 * 3600) == 3000000000000000LL);
    assert_true(tly_charge(rate, 86400) == 24000000000000000LL);
    /* a day's charge of 1 s less: 10^15 x 86,399 / 3600 = 23,999,722,222,222,222.2 */
    assert_true(tly_charge(rate, 86399) == 23999722222222222LL);
    /* a scale combining units and replicas of different rows: 10^20 µ/h, refused */
    assert_int_equal(tly_segment_rate(10000000000LL, 10000000000LL, &rate), -1);
    assert_int_equal(tly_segment_rate(INT64_MAX / (40LL * 24), 1, &rate), 0);
    assert_int_equal(tly_segment_rate(INT64_MAX / (40LL * 24) + 1, 1, &rate), -1);
}

static void test_pct_half_up(void **state)
{
    (void)state;
    assert_int_equal(tly_pct_used(12899, 13325), 9680);
    assert_int_equal(tly_pct_used(301, 10000), 301);
    assert_int_equal(tly_pct_used(212160000, 300000000), 7072);
    assert_int_equal(tly_pct_used(52400000, 75000000), 6987);
    assert_int_equal(tly_pct_used(5, 0), 10000);
    assert_int_equal(tly_pct_used(0, 0), 0);
    assert_int_equal(tly_pct_remaining(5, -3), 0);
    assert_int_equal(tly_pct_used(1, 8), 1250);      /* 12.5 exactly */
    assert_int_equal(tly_pct_used(1, 80000), 0);     /* 0.00125 -> 0.00 */
    assert_int_equal(tly_pct_used(1, 20000), 1);     /* 0.005 -> 0.01 (half up) */
    assert_int_equal(tly_pct_remaining(-1, 20000), -1);  /* away from zero */
}

/*
 * Spec §1: a product that could overflow 64 bits is computed in 128 bits.
 * A 999,000,000 credit debit against a 1 µ allocation is -99,899,999,999,
 * 999,900.00 %: its hundredths pass int64, and used to wrap to a positive
 * figure.
 */
static void test_pct_past_int64(void **state)
{
    char buf[TLY_MONEY_LEN];
    (void)state;
    tly_format_pct(buf, tly_pct_remaining(-998999999999999LL, 1));
    assert_string_equal(buf, "-99899999999999900.00");
    tly_format_pct(buf, tly_pct_used(INT64_MAX, 1));
    assert_string_equal(buf, "922337203685477580700.00");
    tly_format_pct(buf, tly_pct_remaining(INT64_MIN, 1));
    assert_string_equal(buf, "-922337203685477580800.00");
    assert_string_equal(tly_widget(-998999999999999LL, 1), "exhausted");
    assert_string_equal(tly_widget(INT64_MAX, 1), "green");
}

static void test_format(void **state)
{
    char buf[TLY_MONEY_LEN];
    (void)state;
    tly_format_micro(buf, -63);
    assert_string_equal(buf, "-0.000063");
    tly_format_micro(buf, 12500000);
    assert_string_equal(buf, "12.500000");
    tly_format_pct(buf, 9680);
    assert_string_equal(buf, "96.80");
    tly_format_pct(buf, 5);
    assert_string_equal(buf, "0.05");
    tly_format_pct(buf, 0);
    assert_string_equal(buf, "0.00");
    tly_format_pct(buf, -100);
    assert_string_equal(buf, "-1.00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_to_micro),
        cmocka_unit_test(test_decimal_rejects),
        cmocka_unit_test(test_round_half_even_ties),
        cmocka_unit_test(test_charge_at_the_largest_rate),
        cmocka_unit_test(test_pct_half_up),
        cmocka_unit_test(test_pct_past_int64),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
