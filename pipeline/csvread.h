/*
 * csvread.h — the strict CSV reader every input file goes through
 * (spec inputs.md "CSV rules").
 *
 * Built on Debian's libcsv (CSV_STRICT) and fed one physical line at a
 * time, so the reader always knows the physical line a row starts on and
 * can hand out the row's raw text exactly as read.  It streams: input is
 * pulled through a caller-supplied read function into one buffer that only
 * grows while a single row is longer than it; nothing is allocated per row
 * or per field.
 *
 * What it decides (the rest, column types, is fields.h's job):
 *   - a UTF-8 BOM at the very start is dropped; CRLF or LF line ends;
 *   - blank lines are skipped (they still count as physical lines);
 *   - the first row is the header; columns are matched by exact name to the
 *     caller's column list, in any order; the caller asks which of its
 *     columns are missing and which header names are unknown;
 *   - unquoted cells lose leading/trailing spaces and tabs (libcsv); an
 *     empty cell (also "") is an absent value (value NULL);
 *   - row rejects, in this order of precedence: nul_byte, bad_utf8,
 *     field_too_long, field_count;
 *   - a quote error (unterminated quote, stray '"') ends the file: the
 *     reader reports it once with the line the broken row starts on, then
 *     only drains the input (so the caller can still hash it) and counts
 *     the remaining non-blank lines as rows; an unterminated quote's row
 *     runs to the end of the input, and its lines after the first are
 *     counted the same way.
 *
 * Usage:
 *     struct tly_csv *r;
 *     tly_csv_open(&r, my_read, my_ctx, max_field_bytes);
 *     ev = tly_csv_header(r, columns, ncolumns, &hdr);
 *     while ((ev = tly_csv_next(r, &row)) == TLY_CSV_ROW) ...;
 *     tly_csv_close(r);
 *
 * Ownership: the reader owns everything it hands out; a row (its raw text
 * and values) is valid until the next tly_csv_next()/tly_csv_close().
 * tly_csv_close() accepts NULL.
 */
#ifndef TLY_CSVREAD_H
#define TLY_CSVREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The input: returns bytes read (> 0), 0 at the end, -1 on an error the
 * function has already reported or recorded (the reader just stops).
 */
typedef ssize_t (*tly_csv_read_fn)(void *ctx, void *buf, size_t n);

/* What tly_csv_header() and tly_csv_next() return. */
enum tly_csv_event {
    TLY_CSV_ERROR = -1,     /* read function failed, or out of memory (reported) */
    TLY_CSV_END = 0,        /* no more rows (for the header: the file is empty) */
    TLY_CSV_ROW,            /* a row (or the header): see row->reject */
    TLY_CSV_QUOTE_ERROR,    /* quote error in the row starting at row->line; the
                               rest of the file is not parsed (next returns END) */
};

/* Row-level reject reasons (outputs.md reason codes), in precedence order. */
enum tly_csv_reject {
    TLY_CSV_OK = 0,
    TLY_CSV_NUL_BYTE,       /* "nul_byte" */
    TLY_CSV_BAD_UTF8,       /* "bad_utf8" */
    TLY_CSV_FIELD_TOO_LONG, /* "field_too_long" */
    TLY_CSV_FIELD_COUNT,    /* "field_count" */
};

#define TLY_CSV_RAW_MAX 65536   /* raw text kept for a row that is longer */
#define TLY_CSV_HEADER_MAX (1u << 20)  /* 1 MiB: a longer header is rejected (field_count) */

struct tly_csv_row {
    long line;              /* physical line the row starts on (header = 1) */
    long index;             /* data row number, 1-based (header = 0) */
    const char *raw;        /* the row's physical text as read, without the
                               final line end; at most TLY_CSV_RAW_MAX bytes */
    size_t raw_len;
    enum tly_csv_reject reject;
    int nfields;            /* fields the row had */
    int bad_field;          /* field_too_long: 0-based position in the file */
    /* Values by the caller's column index: NULL when empty or not in the
       header.  Not NUL-terminated; use len. */
    const char **val;
    size_t *len;
};

struct tly_csv;

const char *tly_csv_reject_code(enum tly_csv_reject r);

/* Opening and closing.  'max_field_bytes' is the 64 KiB rule (settings). */
int tly_csv_open(struct tly_csv **out, tly_csv_read_fn read, void *ctx, size_t max_field_bytes);
void tly_csv_close(struct tly_csv *r);

/*
 * Reads the header and maps the caller's 'ncolumns' names 'columns' to it.
 * Returns TLY_CSV_ROW (header read; *hdr describes it), TLY_CSV_END (empty
 * file), TLY_CSV_QUOTE_ERROR or TLY_CSV_ERROR.  A header name that occurs
 * twice is used once (the first) and the later one counts as unknown.
 */
int tly_csv_header(struct tly_csv *r, const char *const *columns, int ncolumns,
                   struct tly_csv_row *hdr);
/*
 * A header row holding a CR other than its CRLF's: most likely a file with
 * CR-only line ends (inputs.md allows CRLF or LF), read as one long header
 * whose rows would vanish behind "unknown column" warnings.
 */
int tly_csv_header_has_cr(const struct tly_csv_row *hdr);
/* After the header: is the caller's column 'i' present? */
int tly_csv_has_column(const struct tly_csv *r, int i);
/* After the header: the header names that matched none of the caller's
   columns, one by one (k = 0, 1, ...; NULL past the last).  Owned by r. */
const char *tly_csv_unknown_column(const struct tly_csv *r, int k);
/* Is that name one of the caller's columns again (a repeat: the first counts)? */
int tly_csv_unknown_repeats(const struct tly_csv *r, int k);
/*
 * inputs.md: an unknown column is ignored with one warning: one stderr line
 * per unknown or repeated name, "'FILE' entry 'ENTRY': unknown column 'NAME'
 * ignored" ('entry' may be NULL), the name shown as tly_utf8_shown() shows
 * it (a CR in it would break the line).  Past the 16th, one line counts the
 * rest: a 1 MiB header can hold half a million names.
 */
void tly_csv_warn_unknown_columns(const struct tly_csv *r, const char *file, const char *entry);

int tly_csv_next(struct tly_csv *r, struct tly_csv_row *row);

/* Data rows seen so far: parsed rows, plus after a quote error the
   non-blank lines from the error on (the manifest's row count). */
long tly_csv_rows(const struct tly_csv *r);
/* Fields in the header row (what every row must have). */
int tly_csv_header_fields(const struct tly_csv *r);
/* Physical lines read so far. */
long tly_csv_lines(const struct tly_csv *r);

/* Is [s, s+n) valid UTF-8 (no overlongs, surrogates, > U+10FFFF)? */
int tly_utf8_valid(const char *s, size_t n);
/*
 * Bytes of the printable character at [s, s+n): a valid UTF-8 sequence
 * that is not a control character (C0 but tab, DEL, C1), else 0.
 */
size_t tly_utf8_printable(const char *s, size_t n);
/*
 * [s, s+n) as text safe to show anywhere (names from outside: archive
 * entries, bundle paths): printable characters stay, every other byte
 * becomes \xNN.  Writes whole pieces only, at most cap - 1 bytes and a
 * NUL (cap > 0); returns the bytes written, and in *used the bytes of s
 * they show.
 */
size_t tly_utf8_shown(const char *s, size_t n, char *out, size_t cap, size_t *used);

#endif
