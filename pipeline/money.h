/*
 * money.h — micro-credits (spec semantics.md §1).
 *
 * Money is int64 micro-credits (1 credit = 1,000,000).  Products that could
 * overflow 64 bits are formed in __int128 and divided with explicit rounding:
 * round_half_even for charges, half away from zero for percentages.  No
 * floating point anywhere.
 */
#ifndef TLY_MONEY_H
#define TLY_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define TLY_MICRO 1000000LL
#define TLY_MONEY_LEN 32            /* formatted amount buffer */

/*
 * Parses "[-]digits[.digits]" (at most 6 decimals, no exponent, no
 * separators) into micro-credits.  Fails (returns -1, *why set) when the
 * text is malformed or |value| > max_micro.
 */
int tly_parse_micro(const char *s, size_t len, int64_t max_micro, int64_t *out,
                    const char **why);
/* Whole numbers only (units, replicas, runs amounts): 'lo'..'hi'. */
int tly_parse_int(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out,
                  const char **why);

/* round_half_even(num / den), den > 0. */
int64_t tly_div_half_even(__int128 num, int64_t den);
/* round half away from zero (num / den), den > 0. */
__int128 tly_div_half_up(__int128 num, int64_t den);

/* Charge of 's' seconds at 'rate' micro-credits per hour: rhe(rate*s/3600). */
int64_t tly_charge(int64_t rate_per_hour, int64_t seconds);

/*
 * A segment's rate, per_hour x multiplier (units x replicas), into *rate;
 * -1 when it is too large for a charge of 40 days to fit int64 (money.c).
 */
int tly_segment_rate(int64_t per_hour, int64_t multiplier, int64_t *rate);

/*
 * Percentage in hundredths: 100 * part / whole, half-up to 2 decimals.
 * A whole <= 0 gives 10000 when part > 0 (used) else 0 (spec §10); callers
 * of "remaining" percentages pass used=0 semantics via tly_pct_remaining.
 * The result is 128 bits wide: a large debit against a tiny allocation
 * (a 1 µ grant, a 10^9 credit adjust) makes a percentage whose hundredths
 * pass int64, and spec §1 wants it exact, not wrapped.
 */
__int128 tly_pct_used(int64_t part, int64_t whole);
__int128 tly_pct_remaining(int64_t part, int64_t whole);

/*
 * The Usage page widget from the 2-decimal remaining percentage (spec §4,
 * §10): green > 75, yellow 25–75 inclusive, red < 25 with something left,
 * exhausted when nothing is left.
 */
const char *tly_widget(int64_t remaining, int64_t total);

/* Checked arithmetic: return -1 on int64 overflow. */
int tly_add_checked(int64_t a, int64_t b, int64_t *out);

/* "12.500000", "-0.000063"; "96.80" for hundredths; runs as "301". */
void tly_format_micro(char *buf, int64_t micro);
void tly_format_pct(char *buf, __int128 hundredths);

#endif
