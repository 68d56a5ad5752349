/*
 * rowahead.h — CSV rows parsed one step ahead, on a second thread.
 *
 * With the bytes read ahead (prefetch.h), a first load's thread still
 * parsed every row before inserting it: libcsv and the row rules were a
 * fifth of it.  A rowahead runs tly_csv_next() on a thread of its own and
 * hands over copies of the rows a few batches behind, so the second core
 * parses while the first checks and inserts.  The events, rows and counts
 * are those of calling tly_csv_next() directly, in the same order; only
 * the time differs.
 *
 * Usage (after tly_csv_header(), which stays on the caller's thread):
 *     tly_rowahead_create(&ra, r, ncolumns);  (r is now the thread's)
 *     while ((ev = tly_rowahead_next(ra, &row, &rows)) != TLY_CSV_END) ...;
 *     tly_rowahead_destroy(ra);               (r is the caller's again)
 *
 * Between create and destroy the caller must not use r, nor what its read
 * function uses, but for tly_csv_header_fields() and the other header
 * facts, which parsing does not change.  'rows' is tly_csv_rows() as it
 * was when the row was parsed.  The thread parses at most a few batches
 * past the row the caller took last: stopping early (destroy) leaves r
 * somewhere past it, and a read failure met there is the read function's
 * to keep or forget, never returned.  The final event (TLY_CSV_END or
 * TLY_CSV_ERROR) is returned for good.  When no thread can be started,
 * tly_rowahead_next() calls tly_csv_next() itself.
 *
 * Ownership: create allocates the batches on the caller's thread; a row
 * too large for a batch grows it on the thread (out of memory there is
 * reported and ends the rows with TLY_CSV_ERROR).  A row is valid until
 * the next tly_rowahead_next() or destroy.  tly_rowahead_destroy() accepts
 * NULL.
 */
#ifndef TLY_ROWAHEAD_H
#define TLY_ROWAHEAD_H

#include "csvread.h"

struct tly_rowahead;

/* TLY_OK or TLY_ERR_NOMEM (reported).  'ncolumns' as given to tly_csv_header(). */
int tly_rowahead_create(struct tly_rowahead **out, struct tly_csv *r, int ncolumns);
/* As tly_csv_next(r, row), with *rows = tly_csv_rows(r) after it. */
int tly_rowahead_next(struct tly_rowahead *ra, struct tly_csv_row *row, long *rows);
void tly_rowahead_destroy(struct tly_rowahead *ra);

#endif
