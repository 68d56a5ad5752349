/*
 * rtable.c — a report table's rows into CSV and XLSX at once.
 */
#include "rtable.h"
#include "csvread.h"
#include "error.h"
#include "fields.h"
#include "money.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tly_rcell tly_rcell_text(const char *s)
{
    struct tly_rcell c = { .s = s, .n = s ? strlen(s) : 0, .null = s == NULL };
    return c;
}

struct tly_rcell tly_rcell_num(int64_t v)
{
    struct tly_rcell c = { .v = v };
    return c;
}

struct tly_rcell tly_rcell_pct(__int128 hundredths)
{
    struct tly_rcell c = { .pct = hundredths };
    return c;
}

struct tly_rcell tly_rcell_null(void)
{
    struct tly_rcell c = { .null = 1 };
    return c;
}

static void write_header(struct tly_rtable *t)
{
    for (int i = 0; i < t->ncols; i++) {
        const struct tly_rcol *c = &t->cols[i];
        int text = c->kind == TLY_RK_TEXT || c->kind == TLY_RK_RAW;

        tly_xsheet_text(t->xs, t->header, (uint16_t)i, c->title, strlen(c->title),
                        text ? TLY_XF_HEADER : TLY_XF_HEADER_NUM);
    }
}

/* The last row data may take on a sheet: the one before the totals row's. */
static uint32_t last_data_row(uint32_t header_row)
{
    const char *env = getenv("TALLY_SHEET_ROWS");
    long rows = env ? strtol(env, NULL, 10) : 0;

    if (rows > (long)header_row + 2 && rows < LXW_ROW_MAX)
        return (uint32_t)rows - 2;
    return LXW_ROW_MAX - 2;
}

int tly_rtable_open(struct tly_rtable *t, const struct tly_rcol *cols, int ncols,
                    const char *csv_path, struct tly_xsheet *xs, uint32_t header_row)
{
    const char *names[TLY_RTABLE_MAXCOLS + 1];
    int err;

    assert(ncols > 0 && ncols <= TLY_RTABLE_MAXCOLS);
    memset(t, 0, sizeof *t);
    t->cols = cols;
    t->ncols = ncols;
    t->xs = xs;
    t->header = header_row;
    t->row = header_row + 1;
    t->last_row = last_data_row(header_row);
    if (csv_path) {
        for (int i = 0; i < ncols; i++)
            names[i] = cols[i].name;
        names[ncols] = NULL;
        if ((err = csvout_open(csv_path, names, &t->csv)))
            return err;
    }
    write_header(t);
    return TLY_OK;
}

/*
 * The sheet is full: its part is framed and kept, and the rows go on to a
 * new sheet named after the first, "Discrepancies (2)", from its row 1.
 */
static void next_sheet(struct tly_rtable *t)
{
    struct tly_xsheet *first = t->nparts ? t->parts[0].xs : t->xs;
    char name[48];                  /* at most 26 + " (64)": a sheet name has at most 31 */

    if (t->nparts == TLY_RTABLE_MAXPARTS - 1) {
        t->too_long = 1;
        t->xs = NULL;
        return;
    }
    tly_xsheet_table_frame(t->xs, t->header, t->row - 1, (uint16_t)t->ncols);
    t->parts[t->nparts++] = (struct tly_rpart){ t->xs, t->header + 1, t->row - 1 };
    snprintf(name, sizeof name, "%.26s (%d)", first->name, t->nparts + 1);
    t->xs = tly_xbook_sheet(first->book, name);     /* NULL: the book reports why */
    t->header = 0;
    t->row = 1;
    t->last_row = last_data_row(0);
    write_header(t);
}

/* Where the figure of a numeric kind goes in a sheet, and in which style. */
static double sheet_value(enum tly_rkind kind, __int128 v, enum tly_xfmt *f, int total)
{
    switch (kind) {
    case TLY_RK_MICRO:
        /* semantics §1: the only place a credit figure becomes a double */
        *f = total ? TLY_XF_TOTAL_CREDITS : TLY_XF_CREDITS;
        return (double)v / TLY_MICRO;
    case TLY_RK_SECONDS:
        *f = total ? TLY_XF_TOTAL_DURATION : TLY_XF_DURATION;
        return (double)v / 86400;
    default:
        *f = total ? TLY_XF_TOTAL_INT : TLY_XF_INT;
        return (double)v;
    }
}

/*
 * outputs.md has the card's vCPU and memory "written as in the card", and
 * a workbook's "numbers stored as numbers": the CSV keeps the card's text,
 * the sheet its value (rates.c checked it is a decimal, so the fallback to
 * text is only for a ledger edited by hand).
 */
static void write_decimal(struct tly_rtable *t, uint16_t col, const struct tly_rcell *c)
{
    const char *why;
    int64_t micro;

    if (c->n && tly_parse_micro(c->s, c->n, TLY_AMOUNT_MAX, &micro, &why) == 0) {
        if (t->csv)     /* a number, so no formula guard: "-0" stays "-0" */
            csvout_decimal(t->csv, c->s, c->n);
        tly_xsheet_number(t->xs, t->row, col, (double)micro / TLY_MICRO, TLY_XF_NUMBER);
        return;
    }
    if (t->csv)
        csvout_textn(t->csv, c->s, c->n);
    if (c->n)
        tly_xsheet_text(t->xs, t->row, col, c->s, c->n, TLY_XF_TEXT);
}

static void write_cell(struct tly_rtable *t, int i, const struct tly_rcell *c)
{
    enum tly_rkind kind = t->cols[i].kind;
    uint16_t col = (uint16_t)i;
    enum tly_xfmt f;
    double v;

    if (c->null) {
        if (t->csv)
            csvout_empty(t->csv);
        return;
    }
    if (kind == TLY_RK_TEXT && !tly_utf8_valid(c->s, c->n))
        kind = TLY_RK_RAW;      /* a name stored before bundle.c escaped them */
    switch (kind) {
    case TLY_RK_TEXT:
        if (t->csv)
            csvout_textn(t->csv, c->s, c->n);
        if (c->n)
            tly_xsheet_text(t->xs, t->row, col, c->s, c->n, TLY_XF_TEXT);
        return;
    case TLY_RK_RAW: {
        char buf[1100];
        size_t len = csvout_escape_raw(c->s, c->n, buf, sizeof buf);
        if (t->csv)
            csvout_textn(t->csv, buf, len);
        if (len)
            tly_xsheet_text(t->xs, t->row, col, buf, len, TLY_XF_TEXT);
        return;
    }
    case TLY_RK_DECIMAL:
        write_decimal(t, col, c);
        return;
    case TLY_RK_MICRO:
        if (t->csv)
            csvout_micro(t->csv, c->v);
        break;
    case TLY_RK_PCT:
        if (t->csv)
            csvout_pct(t->csv, c->pct);
        if (t->xs)
            tly_xsheet_number(t->xs, t->row, col, (double)c->pct / 10000, TLY_XF_PCT);
        return;
    case TLY_RK_DATE:
        if (t->csv)
            csvout_date(t->csv, c->v);
        if (t->xs)
            tly_xsheet_date(t->xs, t->row, col, c->v);
        return;
    case TLY_RK_TS:
        if (t->csv)
            csvout_ts(t->csv, c->v);
        if (t->xs)
            tly_xsheet_instant(t->xs, t->row, col, c->v);
        return;
    case TLY_RK_INT:
    case TLY_RK_SECONDS:
        if (t->csv)
            csvout_int(t->csv, c->v);
        break;
    }
    if (!t->xs)
        return;
    /* the sums the sheet's metrics and totals row show */
    if (kind == TLY_RK_INT || kind == TLY_RK_MICRO || kind == TLY_RK_SECONDS)
        t->sum[i] += c->v;
    v = sheet_value(kind, c->v, &f, 0);
    tly_xsheet_number(t->xs, t->row, col, v, f);
}

void tly_rtable_row(struct tly_rtable *t, const struct tly_rcell *cells)
{
    if (t->xs && t->row > t->last_row)
        next_sheet(t);
    for (int i = 0; i < t->ncols; i++)
        write_cell(t, i, &cells[i]);
    if (t->csv)
        csvout_end_row(t->csv);
    t->row++;
    t->nrows++;
}

/*
 * "SUM(C5:C1048574,'Discrepancies (2)'!C2:C90)": the column's rows on each
 * sheet of the table, a sheet named when it is not the one 'on'.  The names
 * are the reports' own, without quotes to escape.
 */
static void sum_formula(const struct tly_rtable *t, int col, const struct tly_xsheet *on,
                        char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "SUM(");

    for (int i = 0; i <= t->nparts && n < cap; i++) {
        struct tly_rpart p = i < t->nparts ? t->parts[i]
                                           : (struct tly_rpart){ t->xs, t->header + 1, t->row - 1 };
        char range[LXW_MAX_CELL_RANGE_LENGTH], sheet[LXW_MAX_SHEETNAME_LENGTH + 4] = "";

        if (p.xs != on)
            snprintf(sheet, sizeof sheet, "'%s'!", p.xs->name);
        lxw_rowcol_to_range(range, p.first, (lxw_col_t)col, p.last, (lxw_col_t)col);
        n += (size_t)snprintf(out + n, cap - n, "%s%s%s", i ? "," : "", sheet, range);
    }
    if (n < cap)
        snprintf(out + n, cap - n, ")");
}

void tly_rtable_sum_cell(const struct tly_rtable *t, int col, struct tly_xsheet *xs,
                         uint32_t row, uint16_t at, int bold)
{
    char formula[TLY_RTABLE_MAXPARTS * (LXW_MAX_SHEETNAME_LENGTH + LXW_MAX_CELL_RANGE_LENGTH + 8)];
    enum tly_xfmt f;
    double v;

    assert(col >= 0 && col < t->ncols);
    v = sheet_value(t->cols[col].kind, t->sum[col], &f, bold);

    /* an empty table has no range to sum (and the cell may sit right under it) */
    if (t->nrows == 0) {
        tly_xsheet_number(xs, row, at, 0, f);
        return;
    }
    if (!t->xs)                 /* a sheet could not be added: the book says why */
        return;
    sum_formula(t, col, xs, formula, sizeof formula);
    tly_xsheet_formula(xs, row, at, formula, v, f);
}

void tly_rtable_first_rows(const struct tly_rtable *t, uint32_t *first, uint32_t *last)
{
    *first = t->nparts ? t->parts[0].first : t->header + 1;
    *last = t->nparts ? t->parts[0].last : t->row - 1;
}

int tly_rtable_close(struct tly_rtable *t, int totals)
{
    int err = csvout_close(t->csv);
    uint32_t last = t->row - 1;

    t->csv = NULL;
    /*
     * The frame first: the totals row stays out of the filter range, and a
     * streamed book (xbook.h) refuses a filter that ends above the last row
     * written.
     */
    tly_xsheet_table_frame(t->xs, t->header, last, (uint16_t)t->ncols);
    if (t->xs && totals) {
        tly_xsheet_text(t->xs, t->row, 0, "Total", 5, TLY_XF_TOTAL_LABEL);
        for (int i = 1; i < t->ncols; i++) {
            if (t->cols[i].total)
                tly_rtable_sum_cell(t, i, t->xs, t->row, (uint16_t)i, 1);
            else
                tly_xsheet_blank(t->xs, t->row, (uint16_t)i, TLY_XF_TOTAL_LABEL);
        }
    }
    if (!err && t->too_long)
        err = tly_error(TLY_ERR_OUTPUT, "a table of %ld rows does not fit in %d sheets of a workbook",
                        t->nrows, TLY_RTABLE_MAXPARTS);
    return err;
}

void tly_rtable_abort(struct tly_rtable *t)
{
    csvout_abort(t->csv);
    t->csv = NULL;
}

int tly_rtable_query(struct tly_ledger *l, sqlite3_stmt *st, struct tly_rtable *const *tables,
                     int ntables)
{
    struct tly_rcell cells[TLY_RTABLE_MAXCOLS];
    const struct tly_rcol *cols = tables[0]->cols;
    int ncols = tables[0]->ncols, rc;

    assert(sqlite3_column_count(st) == ncols);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < ncols; i++) {
            struct tly_rcell *c = &cells[i];
            if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                *c = tly_rcell_null();
            } else if (cols[i].kind == TLY_RK_TEXT) {
                c->s = (const char *)sqlite3_column_text(st, i);
                c->n = (size_t)sqlite3_column_bytes(st, i);
                c->null = 0;
            } else if (cols[i].kind == TLY_RK_RAW) {
                c->s = sqlite3_column_blob(st, i);
                c->n = (size_t)sqlite3_column_bytes(st, i);
                c->null = 0;
            } else {
                *c = tly_rcell_num(sqlite3_column_int64(st, i));
            }
        }
        for (int k = 0; k < ntables; k++)
            tly_rtable_row(tables[k], cells);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return tly_ledger_error(l, "reading report rows");
    return TLY_OK;
}
