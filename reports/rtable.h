/*
 * rtable.h — one report table, written to its CSV file and its XLSX sheet
 * from the same cells.
 *
 * Every table of the reports is a list of typed columns (struct tly_rcol)
 * and rows of cells.  A struct tly_rtable takes each row once and writes it
 * to a CSV file (reports/csvout.h formatting) and/or to a worksheet (the
 * same figure as a number, date or duration cell), so the CSV reports and
 * the workbooks cannot disagree (outputs.md: the workbook totals "equal the
 * sums of the CSVs").  It also keeps the column sums that the workbooks show
 * in their metrics and totals rows.
 *
 * Ownership: cells only borrow their text for the duration of
 * tly_rtable_row().  A table opened with tly_rtable_open() is ended with
 * tly_rtable_close() (reports write errors) or tly_rtable_abort().
 */
#ifndef TLY_RTABLE_H
#define TLY_RTABLE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "csvout.h"
#include "ledger.h"
#include "xbook.h"

#define TLY_RTABLE_MAXCOLS 32

/* What a column holds, and so how each writer shows it. */
enum tly_rkind {
    TLY_RK_TEXT,        /* text; formula-guarded in CSV, a string cell in XLSX */
    TLY_RK_RAW,         /* rejected input bytes: \xNN-escaped, cut at 1,024 bytes */
    TLY_RK_INT,         /* whole number (runs, units) */
    TLY_RK_MICRO,       /* micro-credits: 6 decimals; #,##0.00 */
    TLY_RK_PCT,         /* hundredths of a percent: 2 decimals; 0.00% */
    TLY_RK_DATE,        /* day number: YYYY-MM-DD; a date cell */
    TLY_RK_TS,          /* instant: YYYY-MM-DDThh:mm:ssZ; a date-time cell */
    TLY_RK_SECONDS,     /* duration: whole seconds; [h]:mm */
    TLY_RK_DECIMAL,     /* a rate card's decimal (vCPU, memory): as written; a number cell */
};

struct tly_rcol {
    const char *name;           /* CSV header (outputs.md) */
    const char *title;          /* XLSX header */
    enum tly_rkind kind;
    int total;                  /* summed in the workbook's totals row */
    int field;                  /* the caller's id of the value shown (reports/account.c) */
};

/* One cell: 'null' = empty; text in s/n, numbers in v, percentages in pct. */
struct tly_rcell {
    const char *s;
    size_t n;
    int64_t v;
    __int128 pct;               /* hundredths, which may pass int64 (money.h) */
    int null;
};

/*
 * A sheet holds 1,048,576 rows, and a table may hold more (rejects are
 * cumulative, an unpriced hardware makes a row per deployment and day).
 * The rows that do not fit go on continuation sheets "NAME (2)", "NAME
 * (3)" ... each with the header, and every SUM() of the table covers all
 * of its parts, so the totals still equal the CSV's sums.
 */
#define TLY_RTABLE_MAXPARTS 64

struct tly_rpart {
    struct tly_xsheet *xs;
    uint32_t first, last;       /* its data rows */
};

struct tly_rtable {
    const struct tly_rcol *cols;
    int ncols;
    struct csvout *csv;         /* NULL: no CSV file */
    struct tly_xsheet *xs;      /* NULL: no sheet; else the sheet rows go to now */
    uint32_t header, row;       /* rows of xs: the header, the next data row */
    uint32_t last_row;          /* the last row data may take on a sheet */
    struct tly_rpart parts[TLY_RTABLE_MAXPARTS - 1];   /* full sheets before xs */
    int nparts;
    long nrows;
    /*
     * Column sums for totals rows and metrics, in 128 bits: several legal
     * debts add past int64, and the sheet shows a double anyway (at most
     * 64 sheets of 2^20 int64 values cannot leave 128 bits).
     */
    __int128 sum[TLY_RTABLE_MAXCOLS];
    int too_long;               /* more rows than TLY_RTABLE_MAXPARTS sheets hold */
};

/* Cell constructors. */
struct tly_rcell tly_rcell_text(const char *s);             /* NULL = empty */
struct tly_rcell tly_rcell_num(int64_t v);
struct tly_rcell tly_rcell_pct(__int128 hundredths);
struct tly_rcell tly_rcell_null(void);

/*
 * Opens 'csv_path' (NULL: none) with the column names as header and writes
 * the column titles in row 'header_row' of 'xs' (NULL: none).  A test may
 * set TALLY_SHEET_ROWS=N in the environment to end every sheet at row N
 * (1-based) instead of the last row the totals row leaves free.
 */
int tly_rtable_open(struct tly_rtable *t, const struct tly_rcol *cols, int ncols,
                    const char *csv_path, struct tly_xsheet *xs, uint32_t header_row);
void tly_rtable_row(struct tly_rtable *t, const struct tly_rcell *cells);
/*
 * Ends the table: frames the sheet's table (frozen header, autofilter) and,
 * with 'totals', adds a totals row of SUM() formulas with their values for
 * the columns marked 'total', on the table's last sheet.  Returns the CSV's
 * write error, if any.
 */
int tly_rtable_close(struct tly_rtable *t, int totals);
void tly_rtable_abort(struct tly_rtable *t);

/*
 * Writes a column's sum to a sheet cell as "SUM(<column's data ranges>)"
 * with its value: metrics above a table and totals rows stay auditable.
 */
void tly_rtable_sum_cell(const struct tly_rtable *t, int col, struct tly_xsheet *xs,
                         uint32_t row, uint16_t at, int bold);

/* The data rows of the table's first sheet: where a chart of it points. */
void tly_rtable_first_rows(const struct tly_rtable *t, uint32_t *first, uint32_t *last);

/*
 * Steps 'st' to the end and feeds every result row to each of 'tables'
 * (all with the same columns): result column i is read as column i's kind.
 */
int tly_rtable_query(struct tly_ledger *l, sqlite3_stmt *st, struct tly_rtable *const *tables,
                     int ntables);

#endif
