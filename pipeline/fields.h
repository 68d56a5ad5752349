/*
 * fields.h — the column type rules of inputs.md "CSV rules".
 *
 * Each check reads 'n' bytes of 's' (no NUL needed), returns 0 when the
 * value is valid (and stores it where there is an out parameter) or -1 with
 * *why set to a static phrase for the reject detail, so a caller writes
 * "bad_value: <column> <why>".  Timestamps, dates and decimals are the
 * core's (timeutil.h, money.h); this module adds the bounds the inputs
 * spec puts on them.  No allocation, no state: safe to fuzz directly.
 */
#ifndef TLY_FIELDS_H
#define TLY_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#define TLY_ID_MAX    128           /* bytes in an identifier */
#define TLY_TEXT_MAX  512           /* bytes in free text */
#define TLY_EMAIL_MAX 254           /* RFC 5321 path limit less the brackets */

/* Magnitude bounds in micro-credits (inputs.md "Decimals"). */
#define TLY_AMOUNT_MAX   (1000000000LL * 1000000LL)
#define TLY_RATE_MAX     (10000LL * 1000000LL)
#define TLY_UNITS_MAX    100000     /* units, replicas and their product */

/* Identifiers: 1-128 bytes of [A-Za-z0-9._:@/-], first a letter or digit;
   'account' also refuses '/' (an account id names report folders). */
int tly_field_id(const char *s, size_t n, int account, const char **why);

/* Free text: up to 512 bytes of UTF-8 without control characters (C0, DEL,
   C1) other than tab. */
int tly_field_text(const char *s, size_t n, const char **why);

/* Free text without the 512-byte bound (the CSV field bound applies):
   manifest.csv's 'file', a path inside a bundle, which has no bound of its
   own, and a script's 'endpoint', a URL, which can be longer and whose
   refusal would leave the script's hosting unmetered. */
int tly_field_long_text(const char *s, size_t n, const char **why);

/* Enumerations: the index of 's' in the NULL-terminated 'values'. */
int tly_field_enum(const char *s, size_t n, const char *const *values, int *index,
                   const char **why);

/* RFC 5322 addr-spec: dot-atom or quoted-string local part (no CFWS, no
   CR/LF or other controls), '@', a dot-atom domain or a domain literal;
   ASCII only; at most 254 bytes, local part at most 64 (RFC 5321). */
int tly_field_email(const char *s, size_t n, const char **why);

/*
 * Instants (offset required) to UTC seconds; dates to day numbers.  A
 * bundle's instants and dates fall in 0001-01-01 .. 9999-12-31 UTC, the
 * years the reports can write with four digits (YYYY-MM-DD): a year 0000
 * instant, or one that an offset moves into year 10000, is a bad_value.
 * The rate card's periods, never printed, take any calendar date
 * (tly_parse_ts).
 */
int tly_field_ts(const char *s, size_t n, int64_t *out, const char **why);
int tly_field_date(const char *s, size_t n, int64_t *day, const char **why);

/* Decimals to micro-credits, |value| <= max_micro. */
int tly_field_micro(const char *s, size_t n, int64_t max_micro, int64_t *out,
                    const char **why);
/* Whole numbers in lo..hi. */
int tly_field_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out,
                  const char **why);

/* 64 hex digits (either case) to lowercase in hex[65]. */
int tly_field_sha256(const char *s, size_t n, char hex[65], const char **why);

#endif
