/*
 * fields.c — column type rules (spec inputs.md "CSV rules"; see fields.h).
 */
#include "fields.h"
#include "csvread.h"
#include "money.h"
#include "timeutil.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Identifiers and text                                                */

/*
 * inputs.md "Identifiers": [A-Za-z0-9._:@/-], and no '/' in an account id
 * (it names report files and folders).  Every run's three ids pass here
 * (600M bytes for 10M runs), and uuids mix digits and letters at random:
 * a table look-up per byte, where the ranges tested cost a mispredicted
 * branch every other byte.
 */
#define ANY_ID     1                    /* the byte may be in an id */
#define ACCOUNT_ID 2                    /* ... and in an account id */
#define ID_BITS(c)                                                                       \
    ((((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9') || \
      (c) == '.' || (c) == '_' || (c) == ':' || (c) == '@' || (c) == '-')                \
         ? ANY_ID | ACCOUNT_ID                                                           \
     : (c) == '/' ? ANY_ID                                                               \
                  : 0)
#define ID_BITS4(c)  ID_BITS(c), ID_BITS((c) + 1), ID_BITS((c) + 2), ID_BITS((c) + 3)
#define ID_BITS16(c) ID_BITS4(c), ID_BITS4((c) + 4), ID_BITS4((c) + 8), ID_BITS4((c) + 12)
#define ID_BITS64(c) ID_BITS16(c), ID_BITS16((c) + 16), ID_BITS16((c) + 32), ID_BITS16((c) + 48)
static const unsigned char id_bits[256] = { ID_BITS64(0), ID_BITS64(64), ID_BITS64(128), ID_BITS64(192) };

int tly_field_id(const char *s, size_t n, int account, const char **why)
{
    const unsigned char *u = (const unsigned char *)s;

    if (n == 0 || n > TLY_ID_MAX) {
        *why = "not 1-128 bytes";
        return -1;
    }
    /* inputs.md "Identifiers": starting with a letter or digit */
    if (!((u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z') ||
          (u[0] >= '0' && u[0] <= '9'))) {
        *why = "does not start with a letter or digit";
        return -1;
    }
    for (size_t i = 1; i < n; i++) {
        if (!(id_bits[u[i]] & (account ? ACCOUNT_ID : ANY_ID))) {
            *why = u[i] == '/' ? "has a '/'" : "has a character outside [A-Za-z0-9._:@/-]";
            return -1;
        }
    }
    return 0;
}

int tly_field_text(const char *s, size_t n, const char **why)
{
    if (n > TLY_TEXT_MAX) {
        *why = "longer than 512 bytes";
        return -1;
    }
    return tly_field_long_text(s, n, why);
}

int tly_field_long_text(const char *s, size_t n, const char **why)
{
    const unsigned char *u = (const unsigned char *)s;

    if (!tly_utf8_valid(s, n)) {
        *why = "not UTF-8";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* C0 except tab, DEL, and C1 (U+0080..U+009F = C2 80..C2 9F) */
        if ((u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f ||
            (u[i] == 0xc2 && i + 1 < n && u[i + 1] <= 0x9f)) {
            *why = "has a control character";
            return -1;
        }
    }
    return 0;
}

int tly_field_enum(const char *s, size_t n, const char *const *values, int *index,
                   const char **why)
{
    for (int i = 0; values[i]; i++) {
        if (strlen(values[i]) == n && !memcmp(values[i], s, n)) {
            *index = i;
            return 0;
        }
    }
    *why = "not one of the allowed values";
    return -1;
}

/* ------------------------------------------------------------------ */
/* E-mail addr-spec (RFC 5322 §3.4.1)                                  */

static int atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* dot-atom-text: 1*atext *("." 1*atext) */
static int dot_atom(const unsigned char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i - 1] == '.')
                return 0;
        } else if (!atext(s[i])) {
            return 0;
        }
    }
    return 1;
}

/*
 * quoted-string without folding: DQUOTE *(qtext / quoted-pair / SP) DQUOTE.
 * RFC 5322 also allows a tab there, but no digest is sent to an address
 * holding a control character (reports/digest.c): refused here, where
 * support sees why, rather than items waiting for ever.
 */
static int quoted_string(const unsigned char *s, size_t n)
{
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return 0;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = s[i];
        if (c == '\\') {
            /* quoted-pair: "\" (VCHAR / SP) */
            if (++i >= n - 1 || !((s[i] >= 0x21 && s[i] <= 0x7e) || s[i] == ' '))
                return 0;
        } else if (c == '"' || !((c >= 0x21 && c <= 0x7e) || c == ' ')) {
            return 0;   /* qtext is %d33 / %d35-91 / %d93-126; CR, LF and controls never */
        }
    }
    return 1;
}

/* domain-literal without folding: "[" *dtext "]", dtext %d33-90 / %d94-126 */
static int domain_literal(const unsigned char *s, size_t n)
{
    if (n < 2 || s[0] != '[' || s[n - 1] != ']')
        return 0;
    for (size_t i = 1; i < n - 1; i++)
        if (!((s[i] >= 33 && s[i] <= 90) || (s[i] >= 94 && s[i] <= 126)))
            return 0;
    return 1;
}

int tly_field_email(const char *str, size_t n, const char **why)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t at;

    if (n > TLY_EMAIL_MAX) {
        *why = "longer than 254 bytes";
        return -1;
    }
    /* the last '@' splits: a quoted local part may hold '@' */
    for (at = n; at > 0 && s[at - 1] != '@'; at--)
        ;
    if (at == 0) {
        *why = "not an e-mail address (no '@')";
        return -1;
    }
    at--;
    if (at > 64) {
        *why = "local part longer than 64 bytes";
        return -1;
    }
    if (!dot_atom(s, at) && !quoted_string(s, at)) {
        *why = "not an e-mail address (local part)";
        return -1;
    }
    if (!dot_atom(s + at + 1, n - at - 1) && !domain_literal(s + at + 1, n - at - 1)) {
        *why = "not an e-mail address (domain)";
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Numbers and instants: the core parsers plus inputs.md bounds        */

#define FIRST_DAY (-719162)           /* 0001-01-01 */
#define END_DAY   2932897             /* 10000-01-01 */

static int day_in_range(int64_t day, const char **why)
{
    if (day < FIRST_DAY || day >= END_DAY) {
        *why = "outside 0001-01-01 .. 9999-12-31 (UTC)";
        return -1;
    }
    return 0;
}

int tly_field_ts(const char *s, size_t n, int64_t *out, const char **why)
{
    if (tly_parse_ts(s, n, out, why))
        return -1;
    return day_in_range(tly_day_of(*out), why);
}

int tly_field_date(const char *s, size_t n, int64_t *day, const char **why)
{
    if (tly_parse_date(s, n, day, why))
        return -1;
    return day_in_range(*day, why);
}

int tly_field_micro(const char *s, size_t n, int64_t max_micro, int64_t *out, const char **why)
{
    return tly_parse_micro(s, n, max_micro, out, why);
}

int tly_field_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out,
                  const char **why)
{
    return tly_parse_int(s, n, lo, hi, out, why);
}

int tly_field_sha256(const char *s, size_t n, char hex[65], const char **why)
{
    if (n != 64) {
        *why = "not 64 hex digits";
        return -1;
    }
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            *why = "not 64 hex digits";
            return -1;
        }
        hex[i] = c;
    }
    hex[64] = '\0';
    return 0;
}
