/*
 * timeutil.c — civil calendar, ISO 8601 parsing, cycle boundaries.
 */
#include "timeutil.h"

#include <stdio.h>
#include <time.h>

int64_t tly_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void tly_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, yy;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned tly_days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int64_t tly_day_of(int64_t ts)
{
    int64_t d = ts / TLY_DAY_SECONDS;
    return (ts % TLY_DAY_SECONDS < 0) ? d - 1 : d;
}

/* Reads exactly 'n' digits at s[*i]; -1 when any is not a digit. */
static int64_t digits(const char *s, size_t len, size_t *i, int n)
{
    int64_t v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

/*
 * YYYY-MM-DD at s + *i.  Returns 0, -1 when it is not of that form (the
 * caller names the form it wanted: a date or a timestamp), or -2 with
 * *why set when it is no calendar date.
 */
static int parse_ymd(const char *s, size_t len, size_t *i, int64_t *day, const char **why)
{
    int64_t y, m, d;

    y = digits(s, len, i, 4);
    if (y < 0 || *i >= len || s[(*i)++] != '-')
        return -1;
    m = digits(s, len, i, 2);
    if (m < 0 || *i >= len || s[(*i)++] != '-')
        return -1;
    d = digits(s, len, i, 2);
    if (d < 0)
        return -1;
    if (m < 1 || m > 12 || d < 1 || d > tly_days_in_month(y, (unsigned)m)) {
        *why = "not a calendar date";
        return -2;
    }
    *day = tly_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int tly_parse_date(const char *s, size_t len, int64_t *day, const char **why)
{
    size_t i = 0;
    int rc = parse_ymd(s, len, &i, day, why);

    if (rc == -2)
        return -1;
    if (rc || i != len) {
        *why = "not a date (YYYY-MM-DD)";
        return -1;
    }
    return 0;
}

int tly_parse_ts(const char *s, size_t len, int64_t *out, const char **why)
{
    size_t i = 0;
    int64_t day, hh, mm, ss, off = 0;
    int rc = parse_ymd(s, len, &i, &day, why);

    if (rc == -2)
        return -1;
    if (rc || i >= len || s[i++] != 'T')
        goto bad;
    hh = digits(s, len, &i, 2);
    if (hh < 0 || i >= len || s[i++] != ':')
        goto bad;
    mm = digits(s, len, &i, 2);
    if (mm < 0 || i >= len || s[i++] != ':')
        goto bad;
    ss = digits(s, len, &i, 2);
    if (ss < 0)
        goto bad;
    if (hh > 23 || mm > 59 || ss > 59) {
        *why = "time of day out of range";
        return -1;
    }
    if (i < len && s[i] == '.') {           /* fractions are truncated */
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            goto bad;
    }
    if (i >= len) {
        *why = "no UTC offset";
        return -1;
    }
    if (s[i] == 'Z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i++] == '-' ? -1 : 1;
        int64_t oh = digits(s, len, &i, 2), om;
        if (oh < 0 || i >= len || s[i++] != ':')
            goto bad;
        om = digits(s, len, &i, 2);
        if (om < 0 || oh > 23 || om > 59)
            goto bad;
        off = sign * (oh * 3600 + om * 60);
    } else {
        goto bad;
    }
    if (i != len)
        goto bad;
    *out = day * TLY_DAY_SECONDS + hh * 3600 + mm * 60 + ss - off;
    return 0;
bad:
    *why = "not an ISO 8601 timestamp with offset";
    return -1;
}

void tly_format_date(char *buf, int64_t day)
{
    int64_t y;
    unsigned m, d;
    tly_civil_from_days(day, &y, &m, &d);
    snprintf(buf, TLY_DATE_LEN, "%04d-%02u-%02u", (int)y, m, d);
}

void tly_format_ts(char *buf, int64_t ts)
{
    int64_t day = tly_day_of(ts), sec = ts - day * TLY_DAY_SECONDS, y;
    unsigned m, d;
    tly_civil_from_days(day, &y, &m, &d);
    snprintf(buf, TLY_TS_LEN, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d,
             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
}

/* spec semantics.md §4: months without the anchor day start on their last day. */
int64_t tly_cycle_start_day(unsigned anchor_day, int64_t y, unsigned m)
{
    unsigned dim = tly_days_in_month(y, m);
    return tly_days_from_civil(y, m, anchor_day < dim ? anchor_day : dim);
}

int64_t tly_cycle_containing(unsigned anchor_day, int64_t day)
{
    int64_t y, start;
    unsigned m, d;

    tly_civil_from_days(day, &y, &m, &d);
    start = tly_cycle_start_day(anchor_day, y, m);
    if (start <= day)
        return start;
    if (m == 1)
        return tly_cycle_start_day(anchor_day, y - 1, 12);
    return tly_cycle_start_day(anchor_day, y, m - 1);
}

int64_t tly_cycle_next(unsigned anchor_day, int64_t cycle_start_day)
{
    int64_t y, start;
    unsigned m, d;

    tly_civil_from_days(cycle_start_day, &y, &m, &d);
    start = tly_cycle_start_day(anchor_day, y, m);
    if (start > cycle_start_day)
        return start;
    return m == 12 ? tly_cycle_start_day(anchor_day, y + 1, 1)
                   : tly_cycle_start_day(anchor_day, y, m + 1);
}

/*
 * The anchor day that cut a whole cycle [start, end).  Each end is the
 * anchor day clamped to its month, and of two months in a row one has 31
 * days, where no anchor day is clamped: the larger day is the anchor.
 * (Not for the stub after an anchor change: two anchors cut it.)
 */
unsigned tly_cycle_anchor_of(int64_t cycle_start_day, int64_t cycle_end_day)
{
    int64_t y;
    unsigned m, start, end;

    tly_civil_from_days(cycle_start_day, &y, &m, &start);
    tly_civil_from_days(cycle_end_day, &y, &m, &end);
    return start > end ? start : end;
}

void tly_clock(struct timespec *now)
{
    clock_gettime(CLOCK_MONOTONIC, now);
}

double tly_elapsed(const struct timespec *since)
{
    struct timespec now;
    tly_clock(&now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}
