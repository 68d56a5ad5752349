/*
 * test_fields.c — column type rules (spec inputs.md "CSV rules"):
 * timestamps, dates, decimals and their bounds, integers, identifiers,
 * free text, enumerations, e-mail addr-specs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "fields.h"
#include "money.h"

static int ts(const char *s, int64_t *out)
{
    const char *why = NULL;
    int rc = tly_field_ts(s, strlen(s), out, &why);
    if (rc)
        assert_non_null(why);
    return rc;
}

static void test_fields_timestamps(void **state)
{
    int64_t v;
    static const char *const bad[] = {
        "2026-01-01T24:00:00Z",         /* hour 24 */
        "2026-12-31T23:59:60Z",         /* leap second */
        "2026-02-30T00:00:00Z",         /* not a date */
        "2026-01-01T00:00:00",          /* no offset */
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.Z",
        "2026-01-01",
        "2026-13-01T00:00:00Z",
        " 2026-01-01T00:00:00Z",
        "",
        "0000-12-31T23:59:59Z",         /* a real date, but YYYY-MM-DD cannot write its cycle */
        "0001-01-01T00:30:00+01:00",    /* year 0000 in UTC */
        "9999-12-31T23:00:00-05:00",    /* 10000 in UTC */
    };
    (void)state;
    assert_int_equal(ts("1970-01-01T00:00:00Z", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ts("2026-01-31T23:59:59Z", &v), 0);
    assert_int_equal(v, 1769903999);
    assert_int_equal(ts("2026-02-01T00:59:59+01:00", &v), 0);   /* offsets to UTC */
    assert_int_equal(v, 1769903999);
    assert_int_equal(ts("2026-01-31T18:59:59-05:00", &v), 0);
    assert_int_equal(v, 1769903999);
    assert_int_equal(ts("2026-01-31T23:59:59.999999Z", &v), 0); /* fractions truncated */
    assert_int_equal(v, 1769903999);
    assert_int_equal(ts("2024-02-29T12:00:00Z", &v), 0);        /* leap day */
    assert_int_equal(ts("9999-12-31T23:59:59Z", &v), 0);        /* the last instant */
    assert_int_equal(v, 253402300799);
    assert_int_equal(ts("0001-01-01T00:00:00Z", &v), 0);        /* the first */
    assert_int_equal(v, -62135596800);
    assert_int_equal(ts("1969-12-31T23:59:59Z", &v), 0);
    assert_int_equal(v, -1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ts(bad[i], &v), -1);
}

static void test_fields_dates(void **state)
{
    int64_t d;
    const char *why;
    (void)state;
    assert_int_equal(tly_field_date("2026-10-01", 10, &d, &why), 0);
    assert_int_equal(d, 20727);     /* 2026-01-01 is day 20454, + 273 */
    assert_int_equal(tly_field_date("2026-02-29", 10, &d, &why), -1);
    assert_int_equal(tly_field_date("2026-10-01T00:00:00Z", 20, &d, &why), -1);
    assert_int_equal(tly_field_date("26-10-01", 8, &d, &why), -1);
    assert_int_equal(tly_field_date("0000-12-31", 10, &d, &why), -1);
    assert_int_equal(tly_field_date("0001-01-01", 10, &d, &why), 0);
    assert_int_equal(d, -719162);
    assert_int_equal(tly_field_date("9999-12-31", 10, &d, &why), 0);
    assert_int_equal(d, 2932896);
}

static int dec(const char *s, int64_t max, int64_t *v)
{
    const char *why = NULL;
    return tly_field_micro(s, strlen(s), max, v, &why);
}

static void test_fields_decimals(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(dec("12.5", TLY_AMOUNT_MAX, &v), 0);
    assert_int_equal(v, 12500000);
    assert_int_equal(dec("0.000001", TLY_AMOUNT_MAX, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(dec("-3.25", TLY_AMOUNT_MAX, &v), 0);
    assert_int_equal(v, -3250000);
    assert_int_equal(dec("1000000000", TLY_AMOUNT_MAX, &v), 0);          /* 1e9 credits */
    assert_int_equal(dec("1000000000.000001", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("-1000000000.000001", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("99999999999999999999999", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("10000", TLY_RATE_MAX, &v), 0);                 /* credits_per_hour */
    assert_int_equal(dec("10000.000001", TLY_RATE_MAX, &v), -1);
    assert_int_equal(dec("1.1234567", TLY_AMOUNT_MAX, &v), -1);          /* 7 decimals: never rounded */
    assert_int_equal(dec("1.0000000", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("1e3", TLY_AMOUNT_MAX, &v), -1);                /* exponent */
    assert_int_equal(dec("1,000", TLY_AMOUNT_MAX, &v), -1);              /* separator */
    assert_int_equal(dec("+1", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec(".5", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("5.", TLY_AMOUNT_MAX, &v), -1);
    assert_int_equal(dec("", TLY_AMOUNT_MAX, &v), -1);
}

static void test_fields_integers(void **state)
{
    int64_t v;
    const char *why;
    (void)state;
    assert_int_equal(tly_field_int("1", 1, 1, TLY_UNITS_MAX, &v, &why), 0);
    assert_int_equal(tly_field_int("100000", 6, 1, TLY_UNITS_MAX, &v, &why), 0);
    assert_int_equal(v, 100000);
    assert_int_equal(tly_field_int("100001", 6, 1, TLY_UNITS_MAX, &v, &why), -1);
    assert_int_equal(tly_field_int("0", 1, 1, TLY_UNITS_MAX, &v, &why), -1);
    assert_int_equal(tly_field_int("-1", 2, 1, TLY_UNITS_MAX, &v, &why), -1);
    assert_int_equal(tly_field_int("1.0", 3, 1, TLY_UNITS_MAX, &v, &why), -1);
    assert_int_equal(tly_field_int("99999999999999999999", 20, 1, TLY_UNITS_MAX, &v, &why), -1);
}

static int id(const char *s, int account)
{
    const char *why = NULL;
    return tly_field_id(s, strlen(s), account, &why);
}

static void test_fields_ids(void **state)
{
    char long_id[130];
    (void)state;
    assert_int_equal(id("a", 0), 0);
    assert_int_equal(id("gpu.a100-80g", 0), 0);
    assert_int_equal(id("0ev_1:x@y/z-9", 0), 0);
    assert_int_equal(id("proj/agent-1", 0), 0);
    assert_int_equal(id("proj/agent-1", 1), -1);    /* account ids hold no '/' */
    assert_int_equal(id("gale-northwind", 1), 0);
    assert_int_equal(id("-a", 0), -1);
    assert_int_equal(id(".a", 0), -1);
    assert_int_equal(id("a b", 0), -1);
    assert_int_equal(id("a,b", 0), -1);
    assert_int_equal(id("caf\xc3\xa9", 0), -1);
    assert_int_equal(id("", 0), -1);
    memset(long_id, 'x', 128);
    long_id[128] = '\0';
    assert_int_equal(id(long_id, 0), 0);
    long_id[128] = 'x';
    long_id[129] = '\0';
    assert_int_equal(id(long_id, 0), -1);
}

static int text(const char *s, size_t n)
{
    const char *why = NULL;
    return tly_field_text(s, n, &why);
}

static void test_fields_free_text(void **state)
{
    char buf[600];
    (void)state;
    assert_int_equal(text("Northwind Traders", 17), 0);
    assert_int_equal(text("caf\xc3\xa9 \xe2\x82\xac", 9), 0);
    assert_int_equal(text("a\tb", 3), 0);                  /* tab allowed */
    assert_int_equal(text("a\nb", 3), -1);
    assert_int_equal(text("a\rb", 3), -1);
    assert_int_equal(text("a\x7f", 2), -1);                /* DEL */
    assert_int_equal(text("a\xc2\x85", 3), -1);            /* C1 NEL */
    assert_int_equal(text("a\xc2\xa0", 3), 0);             /* NBSP is text */
    assert_int_equal(text("\xff", 1), -1);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(text(buf, 512), 0);
    assert_int_equal(text(buf, 513), -1);
}

static void test_fields_enums(void **state)
{
    static const char *const pools[] = { "credits", "runs", NULL };
    int idx = -1;
    const char *why;
    (void)state;
    assert_int_equal(tly_field_enum("runs", 4, pools, &idx, &why), 0);
    assert_int_equal(idx, 1);
    assert_int_equal(tly_field_enum("Runs", 4, pools, &idx, &why), -1);
    assert_int_equal(tly_field_enum("run", 3, pools, &idx, &why), -1);
}

static int email(const char *s)
{
    const char *why = NULL;
    return tly_field_email(s, strlen(s), &why);
}

static void test_fields_email(void **state)
{
    static const char *const good[] = {
        "ops@northwind.example", "first.last+tag@example.co.uk", "a@b",
        "\"john doe\"@example.com", "\"a@b\"@example.com", "\"q\\\"x\"@example.com",
        "user@[192.168.0.1]", "x!#$%&'*+/=?^_`{|}~-@example.com",
    };
    static const char *const bad[] = {
        "plain", "a@", "@b.c", "a..b@c", ".a@b", "a.@b", "a@b..c", "a@.b", "a b@c",
        "a@b\r\nBcc: x@y", "\"a\nb\"@c", "a@b@c", "a(comment)@b", "<a@b>", "\"unterminated@b",
        "caf\xc3\xa9@example.com", "a@b c", "\"a\tb\"@example.com", "\"a\\\tb\"@example.com",
    };
    char local[80];
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(email(good[i]), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(email(bad[i]), -1);
    memset(local, 'x', 65);
    strcpy(local + 65, "@b.c");
    assert_int_equal(email(local), -1);                     /* local part > 64 */
    strcpy(local + 64, "@b.c");
    assert_int_equal(email(local), 0);
}

static void test_fields_sha256(void **state)
{
    char hex[65];
    const char *why;
    static const char up[] = "22E45C00EC866FF594ADB00D67A118F8FED40A7D8879B8B7E817B6D818FEE376";
    (void)state;
    assert_int_equal(tly_field_sha256(up, 64, hex, &why), 0);
    assert_string_equal(hex, "22e45c00ec866ff594adb00d67a118f8fed40a7d8879b8b7e817b6d818fee376");
    assert_int_equal(tly_field_sha256(up, 63, hex, &why), -1);
    assert_int_equal(tly_field_sha256("g2e45c00ec866ff594adb00d67a118f8fed40a7d8879b8b7e817b6d818fee376",
                                      64, hex, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_timestamps),
        cmocka_unit_test(test_fields_dates),
        cmocka_unit_test(test_fields_decimals),
        cmocka_unit_test(test_fields_integers),
        cmocka_unit_test(test_fields_ids),
        cmocka_unit_test(test_fields_free_text),
        cmocka_unit_test(test_fields_enums),
        cmocka_unit_test(test_fields_email),
        cmocka_unit_test(test_fields_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
