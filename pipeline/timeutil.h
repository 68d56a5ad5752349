/*
 * timeutil.h — instants and dates (spec semantics.md §1, inputs.md "Timestamps").
 *
 * An instant is int64 seconds since 1970-01-01T00:00:00Z; a day is int64 days
 * since 1970-01-01 (UTC date).  No libc time zone code is used: the civil
 * calendar arithmetic is Howard Hinnant's days_from_civil, exact for every
 * proleptic Gregorian date.
 */
#ifndef TLY_TIMEUTIL_H
#define TLY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TLY_DAY_SECONDS 86400
#define TLY_TS_LEN 32          /* "YYYY-MM-DDThh:mm:ssZ" + NUL, with room */
#define TLY_DATE_LEN 24        /* "YYYY-MM-DD" + NUL, with room */
/*
 * The as-ofs whose cycles YYYY-MM-DD can write (0001-01-01T00:00:00Z and
 * 9999-12-01T00:00:00Z): an earlier one's cycle starts in year -1, a
 * later one's may end in year 10000.
 */
#define TLY_EARLIEST_AS_OF INT64_C(-62135596800)
#define TLY_LATEST_AS_OF INT64_C(253399622400)
/* A date that never happened: day numbers before 1970 are negative, so not -1. */
#define TLY_NO_DAY INT64_MIN

/* Calendar. */
int64_t tly_days_from_civil(int64_t y, unsigned m, unsigned d);
void tly_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
unsigned tly_days_in_month(int64_t y, unsigned m);
int64_t tly_day_of(int64_t ts);          /* floor division: the UTC date */

/*
 * Parsing.  Both return 0 and set *out, or return -1 and set *why to a static
 * message ("no offset", "not a calendar date", ...).  'len' bytes of 's' are
 * read; no NUL is needed.
 */
int tly_parse_ts(const char *s, size_t len, int64_t *out, const char **why);
int tly_parse_date(const char *s, size_t len, int64_t *day, const char **why);

/* Formatting into caller buffers of TLY_TS_LEN / TLY_DATE_LEN bytes. */
void tly_format_ts(char *buf, int64_t ts);
void tly_format_date(char *buf, int64_t day);

/* Monthly cycles (semantics.md §4): the anchor's day of month, clamped. */
int64_t tly_cycle_start_day(unsigned anchor_day, int64_t y, unsigned m);
int64_t tly_cycle_containing(unsigned anchor_day, int64_t day);
int64_t tly_cycle_next(unsigned anchor_day, int64_t cycle_start_day);
unsigned tly_cycle_anchor_of(int64_t cycle_start_day, int64_t cycle_end_day);

/* Wall time for timings and progress: a monotonic start, the seconds since it. */
struct timespec;
void tly_clock(struct timespec *now);
double tly_elapsed(const struct timespec *since);

#endif
