/*
 * xbook.h — the XLSX side of the reports: one workbook, its cell styles, and
 * sheets that remember how wide their columns must be (libxlsxwriter).
 *
 * Why a wrapper and not libxlsxwriter directly: every workbook of the spec
 * (outputs.md "Workbooks") must look the same way — numbers stored as
 * numbers in fixed formats, text always as text, fitted column widths, a
 * deterministic file — and every libxlsxwriter call can fail.  The cell
 * writers below remember the first failure, as csvout does, and
 * tly_xbook_close() reports it, so call sites stay one line each and no
 * error is lost.
 *
 * Text is only ever written with worksheet_write_string(), so a name such as
 * "=HYPERLINK(...)" stays an inert string cell.  Formulas are written only by
 * tly_xsheet_formula(), whose text the reports build themselves (SUM ranges),
 * always together with the computed value.
 *
 * Ownership: tly_xbook_open() returns a book the caller ends with
 * tly_xbook_close() (writes the file), tly_xwriter_close() (has it written
 * on the writer's thread) or tly_xbook_abort() (writes nothing; accepts
 * NULL).  Sheets and charts belong to the book.
 */
#ifndef TLY_XBOOK_H
#define TLY_XBOOK_H

#include <stddef.h>
#include <stdint.h>
#include <xlsxwriter.h>

/* The styles every workbook has (created once per book). */
enum tly_xfmt {
    TLY_XF_TEXT,            /* text, indented a step from a number on its left */
    TLY_XF_TITLE,           /* sheet title: bold, larger */
    TLY_XF_NOTE,            /* the line under a title: italic, grey */
    TLY_XF_LABEL,           /* a metric's label: bold */
    TLY_XF_HEADER,          /* table header: bold, filled, bottom border */
    TLY_XF_HEADER_NUM,      /* ... over a column of numbers: right-aligned */
    TLY_XF_INT,             /* #,##0 */
    TLY_XF_NUMBER,          /* General: a decimal shown with the digits it has */
    TLY_XF_CREDITS,         /* #,##0.00 */
    TLY_XF_PCT,             /* 0.00% of a fraction */
    TLY_XF_DATE,            /* yyyy-mm-dd */
    TLY_XF_TS,              /* yyyy-mm-dd hh:mm:ss */
    TLY_XF_DURATION,        /* [h]:mm of a fraction of days */
    TLY_XF_TOTAL_LABEL,     /* totals row: bold with a top border ... */
    TLY_XF_TOTAL_INT,
    TLY_XF_TOTAL_CREDITS,
    TLY_XF_TOTAL_DURATION,
    TLY_XF_GREEN,           /* the credits widget states (outputs.md) */
    TLY_XF_YELLOW,
    TLY_XF_RED,
    TLY_XF_EXHAUSTED,
    TLY_XF_MAX
};

struct tly_xsheet {
    struct tly_xbook *book;
    lxw_worksheet *ws;
    char *name;
    double *width;          /* widest content per column, in characters */
    int nwidth;
    uint32_t rows;          /* rows with a cell: 1 + the last one written */
};

struct tly_xbook {
    lxw_workbook *wb;
    char *path;
    lxw_format *fmt[TLY_XF_MAX];
    struct tly_xsheet **sheets;
    size_t nsheets, cap;
    lxw_error err;          /* the first failure, reported by close */
    int nomem;              /* our own allocation failed */
    lxw_error closed;       /* what writing the file met ... */
    int close_errno;        /* ... and errno then */
    int readback;           /* tly_xbook_cut_part's verdict on the written file ... */
    int readback_errno;     /* ... errno when it could not be read ... */
    char readback_what[160];/* ... and the part cut short, or why */
};

/*
 * Opening and closing.  'title' goes into the document properties, with
 * 'created' (the as-of) as the creation time: libxlsxwriter would stamp the
 * current time, and the spec wants a byte-identical file for the same
 * inputs.  'tmpdir' holds libxlsxwriter's scratch files (unlinked at once).
 * A 'streamed' book keeps no sheet in memory (libxlsxwriter's constant
 * memory mode): each sheet's rows go out in order as they are written, so
 * a cell may never be written above the last row written, and text is
 * stored inline.  finance.xlsx is streamed: its Discrepancies and Rejects
 * grow with the ledger's history (about 1 KB of memory a row otherwise).
 */
int tly_xbook_open(const char *path, const char *title, int64_t created, const char *tmpdir,
                   int streamed, struct tly_xbook **out);
int tly_xbook_close(struct tly_xbook *b);
void tly_xbook_abort(struct tly_xbook *b);

/*
 * libxlsxwriter assembles each XML part in a scratch file and never checks
 * those writes, so a full scratch directory gives a workbook whose sheets
 * end mid-row, or lack rows, with success.  Closing reads the file back:
 * in every XML part the elements must nest and all be closed, and sheet N
 * (xl/worksheets/sheetN.xml, the Nth added) must reach rows[N - 1] rows.
 * Returns 0 when all is whole; 1 with 'what' naming the first part that is
 * not; -1 with 'what' saying why the file could not be read (errno set).
 * No message, no tly_ allocation: it runs on the writer thread.
 */
int tly_xbook_cut_part(const char *path, const uint32_t *rows, size_t nsheets, char *what,
                       size_t cap);

/*
 * Writing books on a thread of their own.  Writing a file (its XML parts,
 * zlib, the zip) was 70% of a report's time, so the report hands each
 * account's finished book to a writer and goes on to the next account
 * while the machine's other core writes it.
 * The files are the same bytes as with tly_xbook_close().
 *
 *   tly_xwriter_close(w, b)  takes b, whatever it returns.  Returns a
 *                            failure of b's sheets or of a book handed over
 *                            before (a book's own write failure shows at a
 *                            later call or at finish), reported.  After a
 *                            failure the caller stops and aborts.
 *   tly_xwriter_finish(w)    waits until every book is written; returns the
 *                            first failure, reported.  Frees w.
 *   tly_xwriter_abort(w)     waits and frees without reporting anything
 *                            more (the caller failed and reported first).
 *                            Both accept NULL.
 *
 * Without a thread, close writes the book at once.  Messages and frees of
 * our allocations happen on the caller's thread; the writer thread only
 * runs libxlsxwriter's workbook_close(), which shares nothing with the
 * building of the next book but one non-reentrant call, gmtime().  So the
 * caller must not write a workbook itself (tly_xbook_close) between create
 * and finish: the report writes finance.xlsx after the accounts' books.
 */
struct tly_xwriter;
int tly_xwriter_create(struct tly_xwriter **out);
int tly_xwriter_close(struct tly_xwriter *w, struct tly_xbook *b);
int tly_xwriter_finish(struct tly_xwriter *w);
void tly_xwriter_abort(struct tly_xwriter *w);

/* Sheets and charts (NULL on failure, remembered for close). */
struct tly_xsheet *tly_xbook_sheet(struct tly_xbook *b, const char *name);
lxw_chart *tly_xbook_chart(struct tly_xbook *b, uint8_t type);
void tly_xsheet_chart(struct tly_xsheet *s, uint32_t row, uint16_t col, lxw_chart *chart,
                      double x_scale, double y_scale);
/* Records a failure of a libxlsxwriter call made outside these writers. */
void tly_xbook_check(struct tly_xbook *b, lxw_error err);

/*
 * Cells.  Widths are fitted to what is written unless the style is a title
 * or note (those may run across empty neighbours).
 */
void tly_xsheet_text(struct tly_xsheet *s, uint32_t row, uint16_t col, const char *text,
                     size_t len, enum tly_xfmt f);
void tly_xsheet_number(struct tly_xsheet *s, uint32_t row, uint16_t col, double v,
                       enum tly_xfmt f);
void tly_xsheet_formula(struct tly_xsheet *s, uint32_t row, uint16_t col, const char *formula,
                        double value, enum tly_xfmt f);
void tly_xsheet_blank(struct tly_xsheet *s, uint32_t row, uint16_t col, enum tly_xfmt f);

/* A table's frame: bold header already written; freeze above 'first_data', filter. */
void tly_xsheet_table_frame(struct tly_xsheet *s, uint32_t header_row, uint32_t last_row,
                            uint16_t ncols);

/*
 * Dates and instants as date cells: Excel serial numbers, days since
 * 1899-12-30 (1970-01-01 is 25569).  Excel cannot show a date before
 * 1900-03-01 (its 1900 holds a 29 February, and no serial is negative),
 * so an earlier one is written as text, as the CSV writes it.
 */
void tly_xsheet_date(struct tly_xsheet *s, uint32_t row, uint16_t col, int64_t day);
void tly_xsheet_instant(struct tly_xsheet *s, uint32_t row, uint16_t col, int64_t ts);

#endif
