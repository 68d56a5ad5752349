/*
 * csvout.h — the CSV writer every report uses (outputs.md "CSV conventions").
 *
 * RFC 4180, UTF-8 without BOM, LF line ends, quoting only where needed.
 * Text cells that start with '=', '+', '-', '@', tab or CR get a leading
 * apostrophe so a spreadsheet never runs them as formulas; numbers, dates
 * and instants are written with the plain writers and are never guarded.
 *
 * Ownership: csvout_open() returns a writer the caller ends with
 * csvout_close() (which reports write errors, e.g. a full disk) or abandons
 * with csvout_abort() (also accepts NULL).  Rows are written in full or the
 * error is remembered and returned by csvout_close().
 */
#ifndef TLY_CSVOUT_H
#define TLY_CSVOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct csvout {
    FILE *f;
    char *path;
    int ncol;           /* cells written in the current row */
    int failed;
};

int csvout_open(const char *path, const char *const *header, struct csvout **out);
/* The same over a stream already open ('f', taken whatever it returns); 'name' in messages. */
int csvout_open_stream(FILE *f, const char *name, const char *const *header, struct csvout **out);
int csvout_close(struct csvout *w);
void csvout_abort(struct csvout *w);

/* Cells of the current row; csvout_end_row() writes the LF. */
void csvout_text(struct csvout *w, const char *s);           /* NULL = empty; formula-guarded */
void csvout_textn(struct csvout *w, const char *s, size_t n);
void csvout_raw(struct csvout *w, const char *s, size_t n);  /* rejects' raw: \xNN, 1,024-byte cut */
void csvout_decimal(struct csvout *w, const char *s, size_t n); /* checked "-0.5" as written: no guard */
void csvout_int(struct csvout *w, int64_t v);
void csvout_micro(struct csvout *w, int64_t micro);          /* 12.500000 */
void csvout_pct(struct csvout *w, __int128 hundredths);      /* 96.80 */
void csvout_date(struct csvout *w, int64_t day);             /* YYYY-MM-DD */
void csvout_ts(struct csvout *w, int64_t ts);                /* YYYY-MM-DDThh:mm:ssZ */
void csvout_empty(struct csvout *w);
void csvout_end_row(struct csvout *w);

/*
 * Makes raw input bytes printable: valid UTF-8 stays, every invalid byte
 * and control character other than tab becomes \xNN, cut at 1,024 bytes
 * with a trailing "…".  Writes at most 'cap' (>= 4) bytes incl. NUL into 'buf'.
 */
size_t csvout_escape_raw(const char *s, size_t n, char *buf, size_t cap);

#endif
