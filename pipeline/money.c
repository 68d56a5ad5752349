/*
 * money.c — decimal parsing, rounding and formatting of micro-credits.
 */
#include "money.h"

#include <stdio.h>

int tly_parse_micro(const char *s, size_t len, int64_t max_micro, int64_t *out,
                    const char **why)
{
    size_t i = 0;
    int neg = 0, ndig = 0, nfrac = 0;
    __int128 v = 0;

    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
        v = v * 10 + (s[i] - '0');
        if (v > (__int128)max_micro)     /* stop early: bounded below anyway */
            goto big;
    }
    if (ndig == 0)
        goto bad;
    v *= TLY_MICRO;
    if (i < len && s[i] == '.') {
        __int128 scale = TLY_MICRO / 10;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nfrac++) {
            if (nfrac == 6) {
                *why = "more than 6 decimals";
                return -1;
            }
            v += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (nfrac == 0)
            goto bad;
    }
    if (i != len)
        goto bad;
    if (v > (__int128)max_micro)
        goto big;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
big:
    *why = "out of bounds";
    return -1;
bad:
    *why = "not a decimal";
    return -1;
}

int tly_parse_int(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out,
                  const char **why)
{
    size_t i = 0;
    int neg = 0;
    int64_t v = 0;

    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == len)
        goto bad;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto bad;
        if (v > (INT64_MAX - 9) / 10) {
            *why = "out of bounds";
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (neg)
        v = -v;
    if (v < lo || v > hi) {
        *why = "out of bounds";
        return -1;
    }
    *out = v;
    return 0;
bad:
    *why = "not a whole number";
    return -1;
}

int64_t tly_div_half_even(__int128 num, int64_t den)
{
    __int128 q = num / den, r = num % den;
    if (r < 0) {                    /* floor division */
        q -= 1;
        r += den;
    }
    if (2 * r > den || (2 * r == den && (q & 1)))
        q += 1;
    return (int64_t)q;
}

__int128 tly_div_half_up(__int128 num, int64_t den)
{
    int neg = num < 0;
    __int128 a = neg ? -num : num;
    /* half away from zero: q = floor((2a + den) / (2 den)) */
    __int128 q = (2 * a + den) / (2 * (__int128)den);
    return neg ? -q : q;
}

int64_t tly_charge(int64_t rate_per_hour, int64_t seconds)
{
    int64_t product, q, r;

    /* spec §2: one segment costs round_half_even(r × s / 3600) */
    if (__builtin_mul_overflow(rate_per_hour, seconds, &product) || product < 0)
        return tly_div_half_even((__int128)rate_per_hour * seconds, 3600);
    /* the common case fits 64 bits, where division is many times cheaper */
    q = product / 3600;
    r = product % 3600;
    if (r > 1800 || (r == 1800 && (q & 1)))
        q++;
    return q;
}

/*
 * Segments are cut at every UTC midnight, so no charge is asked of a rate
 * for more than a day; the bound leaves room for 40.  What must fit 64 bits
 * is the charge r x s / 3600, not r x s, which tly_charge forms in 128 bits
 * when it must.  Within inputs.md's bounds a rate is at most 10^15 micro-
 * credits an hour (10,000 credits x 100,000), far inside the bound; only a
 * scale that combines units and replicas from different rows can pass it,
 * and that account is refused (exit 65) rather than wrapped.
 */
int tly_segment_rate(int64_t per_hour, int64_t multiplier, int64_t *rate)
{
    __int128 r = (__int128)per_hour * multiplier;

    if (r < 0 || r > INT64_MAX / (40LL * 24))
        return -1;
    *rate = (int64_t)r;
    return 0;
}

__int128 tly_pct_used(int64_t part, int64_t whole)
{
    if (whole <= 0)
        return part > 0 ? 10000 : 0;
    return tly_div_half_up((__int128)part * 10000, whole);
}

__int128 tly_pct_remaining(int64_t part, int64_t whole)
{
    if (whole <= 0)
        return 0;
    return tly_div_half_up((__int128)part * 10000, whole);
}

int tly_add_checked(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

void tly_format_micro(char *buf, int64_t micro)
{
    uint64_t a = micro < 0 ? 0 - (uint64_t)micro : (uint64_t)micro;
    snprintf(buf, TLY_MONEY_LEN, "%s%llu.%06llu", micro < 0 ? "-" : "",
             (unsigned long long)(a / TLY_MICRO), (unsigned long long)(a % TLY_MICRO));
}

/* printf has no 128-bit conversion: the digits are written from the right */
void tly_format_pct(char *buf, __int128 hundredths)
{
    unsigned __int128 a = hundredths < 0 ? -(unsigned __int128)hundredths
                                         : (unsigned __int128)hundredths;
    char digits[48], *p = digits + sizeof digits;
    int n = 0;

    *--p = '\0';
    do {
        if (n++ == 2)
            *--p = '.';
        *--p = (char)('0' + (int)(a % 10));
        a /= 10;
    } while (a || n < 3);
    snprintf(buf, TLY_MONEY_LEN, "%s%s", hundredths < 0 ? "-" : "", p);
}

const char *tly_widget(int64_t remaining, int64_t total)
{
    __int128 pct = tly_pct_remaining(remaining, total);
    if (remaining <= 0)
        return "exhausted";
    if (pct > 7500)
        return "green";
    if (pct >= 2500)
        return "yellow";
    return "red";
}
