/*
 * fuzz_values.c — libFuzzer target for the value parsers: timestamps and
 * dates (timeutil.h), decimals and integers (money.h), and the column
 * rules built on them (fields.h).
 *
 * Byte 0 picks the parser; the rest is the cell.  Beyond "no crash, no UB":
 * whatever parses must round-trip — a timestamp formatted as
 * YYYY-MM-DDThh:mm:ssZ parses back to the same second, a decimal formatted
 * with 6 decimals parses back to the same micro-credits, a date likewise —
 * and must respect the bounds inputs.md puts on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "money.h"
#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ts(const char *s, size_t n)
{
    int64_t v, back;
    const char *why = NULL;
    char buf[TLY_TS_LEN];

    if (tly_parse_ts(s, n, &v, &why)) {
        if (!why)
            abort();
        return;
    }
    /* an offset can move the instant out of years 0000-9999, which the
       4-digit format cannot show: only those round-trip */
    if (v < tly_days_from_civil(0, 1, 1) * TLY_DAY_SECONDS ||
        v >= tly_days_from_civil(10000, 1, 1) * TLY_DAY_SECONDS)
        return;
    tly_format_ts(buf, v);
    if (tly_parse_ts(buf, strlen(buf), &back, &why) || back != v)
        abort();
}

static void check_date(const char *s, size_t n)
{
    int64_t d, back;
    const char *why = NULL;
    char buf[TLY_DATE_LEN];

    if (tly_parse_date(s, n, &d, &why))
        return;
    tly_format_date(buf, d);
    if (tly_parse_date(buf, strlen(buf), &back, &why) || back != d)
        abort();
}

static void check_micro(const char *s, size_t n, int64_t max)
{
    int64_t v, back;
    const char *why = NULL;
    char buf[TLY_MONEY_LEN];

    if (tly_parse_micro(s, n, max, &v, &why)) {
        if (!why)
            abort();
        return;
    }
    if (v > max || v < -max)
        abort();
    tly_format_micro(buf, v);
    if (tly_parse_micro(buf, strlen(buf), max, &back, &why) || back != v)
        abort();
}

static void check_int(const char *s, size_t n)
{
    int64_t v;
    const char *why = NULL;

    if (!tly_parse_int(s, n, 1, TLY_UNITS_MAX, &v, &why) && (v < 1 || v > TLY_UNITS_MAX))
        abort();
}

static void check_fields(const char *s, size_t n)
{
    const char *why = NULL;
    char hex[65];

    if (!tly_field_id(s, n, 1, &why) && (n == 0 || n > TLY_ID_MAX || memchr(s, '/', n)))
        abort();
    if (!tly_field_text(s, n, &why) && (n > TLY_TEXT_MAX || memchr(s, '\n', n) || memchr(s, '\0', n)))
        abort();
    if (!tly_field_email(s, n, &why) && (n > TLY_EMAIL_MAX || !memchr(s, '@', n) ||
                                         memchr(s, '\r', n) || memchr(s, '\n', n)))
        abort();
    (void)tly_field_sha256(s, n, hex, &why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s;
    size_t n;

    if (size < 1)
        return 0;
    s = (const char *)data + 1;
    n = size - 1;
    switch (data[0] % 6) {
    case 0: check_ts(s, n); break;
    case 1: check_date(s, n); break;
    case 2: check_micro(s, n, TLY_AMOUNT_MAX); break;
    case 3: check_micro(s, n, TLY_RATE_MAX); break;
    case 4: check_int(s, n); break;
    default: check_fields(s, n); break;
    }
    return 0;
}
