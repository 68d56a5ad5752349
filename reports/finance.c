/*
 * finance.c — the global files: summary.csv, statements.csv,
 * discrepancies.csv, rejects.csv, actions.csv and the finance workbook
 * (outputs.md "Global files" and "Workbooks").
 *
 * summary.csv and the Summary and Usage by category sheets take one row per
 * account from the report model as report.c walks the accounts; the other
 * tables go straight from their result table to CSV and sheet
 * (tly_rtable_query()), sorted by their first columns.  Every sheet is a
 * titled table with a frozen, filtered header; Summary, Carry-over and
 * Usage by category end in a totals row of SUM() formulas carrying their
 * values, which equal the sums of the CSV columns.
 */
#include "rfiles.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

#define NCOLS(a) ((int)(sizeof a / sizeof a[0]))
#define COL(name, title, kind) { name, title, kind, 0, 0 }
#define SUMMED(name, title, kind) { name, title, kind, 1, 0 }
#define TEXT TLY_RK_TEXT
#define INT TLY_RK_INT
#define MICRO TLY_RK_MICRO
#define PCT TLY_RK_PCT
#define DATE TLY_RK_DATE
#define TS TLY_RK_TS

#define HEADER_ROW 3        /* title, note, blank, then the table */

/* ------------------------------------------------------------------------
 * Columns (names as in the CSV file or column each sheet column shows)
 * ------------------------------------------------------------------------ */

const struct tly_rcol tly_statement_cols[TLY_STATEMENT_NCOLS] = {
    COL("account_id", "Account", TEXT),
    COL("pool", "Pool", TEXT),
    COL("cycle_start", "Cycle start", DATE),
    COL("cycle_end", "Cycle end", DATE),
    COL("state", "State", TEXT),
    COL("opening", "Opening", MICRO),
    COL("granted", "Granted", MICRO),
    COL("used", "Used", MICRO),
    COL("used_models", "Models (hosting)", MICRO),
    COL("used_finetune", "Fine-tuning", MICRO),
    COL("used_guardrails", "Guardrails", MICRO),
    COL("used_scripts", "Custom scripts", MICRO),
    COL("used_ocr", "OCR", MICRO),
    COL("used_browser", "Browser automation", MICRO),
    COL("used_runs", "Runs used", MICRO),      /* outputs.md: whole runs, 6 decimals */
    COL("adjusted", "Adjusted", MICRO),
    COL("expired", "Expired", MICRO),
    COL("late", "Late", MICRO),
    COL("closing", "Closing", MICRO),
    COL("carried_to_next", "Carried to next", MICRO),
};

static const struct tly_rcol discrepancy_cols[] = {
    COL("account_id", "Account", TEXT),
    COL("kind", "Kind", TEXT),
    COL("ts", "When", TS),
    COL("category", "Category", TEXT),
    COL("resource_id", "Resource ID", TEXT),
    COL("deployment_id", "Deployment ID", TEXT),
    COL("credits", "Credits", MICRO),
    COL("detail", "Detail", TEXT),
};

static const struct tly_rcol reject_cols[] = {
    COL("bundle", "Bundle", TEXT),
    COL("file", "File", TEXT),
    COL("line", "Line", INT),
    COL("reason", "Reason", TEXT),
    COL("raw", "Raw input", TLY_RK_RAW),
};

static const struct tly_rcol action_cols[] = {
    COL("account_id", "Account", TEXT),
    COL("category", "Category", TEXT),
    COL("resource_id", "Resource ID", TEXT),
    COL("deployment_id", "Deployment ID", TEXT),
    COL("stop_at", "Stop at", TS),
    COL("message", "Message", TEXT),
};

/* Summary: one row per account, the current cycle's credits (and runs) */
static const struct tly_rcol summary_cols[] = {
    COL("account_id", "Account", TEXT),
    COL("account_name", "Name", TEXT),
    COL("edition", "Edition", TEXT),
    COL("cycle_start", "Cycle start", DATE),
    COL("cycle_end", "Next cycle", DATE),
    SUMMED("credits_total", "Credits total", MICRO),
    SUMMED("credits_used", "Credits used", MICRO),
    COL("credits_used_pct", "Used %", PCT),
    SUMMED("credits_remaining", "Remaining", MICRO),
    COL("widget", "Widget", TEXT),
    SUMMED("carried_to_next", "Carried to next cycle", MICRO),
    SUMMED("runs_used", "Runs used", INT),
    SUMMED("runs_total", "Runs total", INT),
    COL("runs_used_pct", "Runs used %", PCT),
};
#define SUMMARY_WIDGET 9

/* Usage by category: account × category credits in the account's window */
static const struct tly_rcol usage_cols[] = {
    COL("account_id", "Account", TEXT),
    COL("account_name", "Name", TEXT),
    COL("edition", "Edition", TEXT),
    COL("window_from", "Window from", DATE),
    COL("window_to", "Window to", DATE),
    SUMMED("window_models", "Models (hosting)", MICRO),
    SUMMED("window_finetune", "Fine-tuning", MICRO),
    SUMMED("window_guardrails", "Guardrails", MICRO),
    SUMMED("window_scripts", "Custom scripts", MICRO),
    SUMMED("window_ocr", "OCR", MICRO),
    SUMMED("window_browser", "Browser automation", MICRO),
    SUMMED("window_credits", "Total credits", MICRO),
    SUMMED("window_runs", "Runs", INT),
};
#define USAGE_CAT0 5        /* usage_cols[USAGE_CAT0 + c] is category c */

/* Carry-over: closed credit cycles that ended in debt (semantics §4) */
static const struct tly_rcol carry_cols[] = {
    COL("account_id", "Account", TEXT),
    COL("account_name", "Name", TEXT),
    COL("edition", "Edition", TEXT),
    COL("cycle_start", "Cycle start", DATE),
    COL("cycle_end", "Cycle end", DATE),
    SUMMED("opening", "Opening", MICRO),
    SUMMED("granted", "Granted", MICRO),
    SUMMED("used", "Used", MICRO),
    SUMMED("adjusted", "Adjusted", MICRO),
    SUMMED("expired", "Expired", MICRO),
    SUMMED("late", "Late", MICRO),
    SUMMED("closing", "Closing", MICRO),
    SUMMED("carried_to_next", "Carried to next cycle", MICRO),
};

/* ------------------------------------------------------------------------
 * The query tables
 * ------------------------------------------------------------------------ */

/* The account filter is ?1 (NULL: every account), where the table has accounts. */
static const struct query_table {
    const char *sheet;          /* NULL: CSV only */
    const char *file;           /* NULL: sheet only */
    const char *note;
    const struct tly_rcol *cols;
    int ncols;
    int totals;
    const char *sql;
} query_tables[] = {
    { "Statements", "statements.csv",
      "Every account \xc3\x97 pool \xc3\x97 cycle up to the as-of; runs-pool amounts are whole runs",
      tly_statement_cols, TLY_STATEMENT_NCOLS, 0,
      "SELECT " TLY_STATEMENT_COLUMNS " FROM statements WHERE ?1 IS NULL OR account_id = ?1"
      " ORDER BY account_id, pool, cycle_start" },
    { "Carry-over", NULL,
      "Closed cycles of the credits pool whose debt was carried into the next cycle",
      carry_cols, NCOLS(carry_cols), 1,
      "SELECT s.account_id, a.name, a.edition, s.cycle_start, s.cycle_end, s.opening,"
      " s.granted, s.used, s.adjusted, s.expired, s.late, s.closing, s.carried_to_next"
      " FROM statements s LEFT JOIN account_state a ON a.account_id = s.account_id"
      " WHERE s.pool = 'credits' AND s.state = 'closed' AND s.carried_to_next < 0"
      " AND (?1 IS NULL OR s.account_id = ?1) ORDER BY s.account_id, s.cycle_start" },
    { "Discrepancies", "discrepancies.csv", "What support must look at",
      discrepancy_cols, NCOLS(discrepancy_cols), 0,
      "SELECT account_id, kind, ts, category, resource_id, deployment_id, credits, detail"
      " FROM discrepancies WHERE ?1 IS NULL OR account_id = ?1"
      " ORDER BY account_id, kind, ts, category, resource_id, deployment_id, credits, detail" },
    /*
     * Rejects name no account: they are the same whatever --account says
     * (rejects.csv is "every input row and bundle quarantined, ever").
     */
    { "Rejects", "rejects.csv", "Every input row and bundle quarantined, ever",
      reject_cols, NCOLS(reject_cols), 0,
      "SELECT bundle, file, line, reason, raw FROM rejects"
      " ORDER BY bundle, file, line, reason, raw" },
    { NULL, "actions.csv", NULL, action_cols, NCOLS(action_cols), 0,
      "SELECT account_id, category, resource_id, deployment_id, stop_at, message"
      " FROM actions WHERE ?1 IS NULL OR account_id = ?1"
      " ORDER BY account_id, category, resource_id, deployment_id, stop_at, message" },
};
#define NQUERY ((int)(sizeof query_tables / sizeof query_tables[0]))

/* ------------------------------------------------------------------------
 * The workbook
 * ------------------------------------------------------------------------ */

/* outputs.md "Workbooks": the finance workbook's sheets, in this order */
static const char *const sheet_order[] = {
    "Summary", "Statements", "Carry-over", "Usage by category", "Discrepancies", "Rejects",
};

struct tly_finance {
    struct tly_ledger *l;
    const struct tly_report_opts *o;
    char *dir;
    struct tly_xbook *book;
    struct tly_xsheet *summary_xs, *usage_xs, *query_xs[NQUERY];
    struct tly_rtable summary_csv, summary, usage;
    int tables_open;
    long accounts;
};

static void heading(struct tly_finance *f, struct tly_xsheet *xs, const char *title,
                    const char *note)
{
    char line[512], as_of[TLY_TS_LEN];
    int n;

    tly_format_ts(as_of, f->o->as_of);
    tly_xsheet_text(xs, 0, 0, title, strlen(title), TLY_XF_TITLE);
    n = snprintf(line, sizeof line, "%s \xc2\xb7 as of %s%s%s", note, as_of,
                 f->o->account ? " \xc2\xb7 account " : "", f->o->account ? f->o->account : "");
    if (n > 0)
        tly_xsheet_text(xs, 1, 0, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
                        TLY_XF_NOTE);
}

static int file_path(const struct tly_finance *f, char *buf, size_t cap, const char *file)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", f->dir, file) >= cap)
        return tly_error(TLY_ERR_OUTPUT, "path too long for '%s'", file);
    return TLY_OK;
}

void tly_finance_abort(struct tly_finance *f)
{
    if (!f)
        return;
    if (f->tables_open) {
        tly_rtable_abort(&f->summary_csv);
        tly_rtable_abort(&f->summary);
        tly_rtable_abort(&f->usage);
    }
    tly_xbook_abort(f->book);
    tly_free(f->dir);
    tly_free(f);
}

int tly_finance_open(struct tly_ledger *l, const struct tly_report_opts *o, const char *dir,
                     struct tly_finance **out)
{
    struct tly_finance *f = tly_calloc(1, sizeof *f);
    char file[4096], title[128], as_of[TLY_TS_LEN];
    int err;

    *out = NULL;
    if (!f || !(f->dir = tly_strdup(dir))) {
        tly_free(f);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    f->l = l;
    f->o = o;
    tly_format_ts(as_of, o->as_of);
    snprintf(title, sizeof title, "Tally finance report \xe2\x80\x94 as of %s", as_of);
    if ((err = file_path(f, file, sizeof file, "finance.xlsx")) ||
        (err = tly_xbook_open(file, title, o->as_of, o->scratch_dir ? o->scratch_dir : dir, 1,
                               &f->book)))
        goto fail;
    for (size_t i = 0; i < sizeof sheet_order / sizeof sheet_order[0]; i++) {
        struct tly_xsheet *xs = tly_xbook_sheet(f->book, sheet_order[i]);
        if (!strcmp(sheet_order[i], "Summary"))
            f->summary_xs = xs;
        else if (!strcmp(sheet_order[i], "Usage by category"))
            f->usage_xs = xs;
        for (int q = 0; q < NQUERY; q++)
            if (query_tables[q].sheet && !strcmp(sheet_order[i], query_tables[q].sheet))
                f->query_xs[q] = xs;
    }
    if ((err = file_path(f, file, sizeof file, "summary.csv")) ||
        (err = tly_rtable_open(&f->summary_csv, tly_overview_cols, TLY_OVERVIEW_NCOLS, file,
                               NULL, 0)))
        goto fail;
    /* a streamed book's rows go out in order (xbook.h): headings first */
    heading(f, f->summary_xs, "Summary", "Each account's current cycle");
    heading(f, f->usage_xs, "Usage by category",
            "Credits used in each account's report window, by category");
    /* sheet-only tables cannot fail to open */
    tly_rtable_open(&f->summary, summary_cols, NCOLS(summary_cols), NULL, f->summary_xs,
                    HEADER_ROW);
    tly_rtable_open(&f->usage, usage_cols, NCOLS(usage_cols), NULL, f->usage_xs, HEADER_ROW);
    f->tables_open = 1;
    *out = f;
    return TLY_OK;
fail:
    tly_finance_abort(f);
    return err;
}

static enum tly_xfmt widget_style(const char *widget)
{
    static const struct { const char *state; enum tly_xfmt f; } styles[] = {
        { "green", TLY_XF_GREEN }, { "yellow", TLY_XF_YELLOW }, { "red", TLY_XF_RED },
    };
    for (size_t i = 0; i < sizeof styles / sizeof styles[0]; i++)
        if (!strcmp(widget, styles[i].state))
            return styles[i].f;
    return TLY_XF_EXHAUSTED;
}

void tly_finance_account(struct tly_finance *f, const struct tly_rmodel *m)
{
    struct tly_rcell c[TLY_RTABLE_MAXCOLS];
    int i = 0;

    tly_overview_cells(m, c);
    tly_rtable_row(&f->summary_csv, c);

    c[i++] = tly_rcell_text(m->account_id);
    c[i++] = tly_rcell_text(m->name);
    c[i++] = tly_rcell_text(m->edition_id);
    c[i++] = tly_rcell_num(m->cycle_start);
    c[i++] = tly_rcell_num(m->cycle_end);
    c[i++] = tly_rcell_num(m->credits_total);
    c[i++] = tly_rcell_num(m->credits_used);
    c[i++] = tly_rcell_pct(m->credits_used_pct);
    c[i++] = tly_rcell_num(m->credits_remaining);
    c[i++] = tly_rcell_text(m->widget);
    c[i++] = tly_rcell_num(m->carried_to_next);
    c[i++] = tly_rcell_num(m->runs_used / TLY_MICRO);
    c[i++] = tly_rcell_num(m->runs_total / TLY_MICRO);
    c[i++] = tly_rcell_pct(m->runs_used_pct);
    tly_rtable_row(&f->summary, c);
    /* the widget state as a coloured cell, as on the Usage page */
    tly_xsheet_text(f->summary.xs, f->summary.row - 1, SUMMARY_WIDGET, m->widget,
                    strlen(m->widget), widget_style(m->widget));

    i = 0;
    c[i++] = tly_rcell_text(m->account_id);
    c[i++] = tly_rcell_text(m->name);
    c[i++] = tly_rcell_text(m->edition_id);
    c[i++] = tly_rcell_num(m->from);
    c[i++] = tly_rcell_num(m->to);
    for (int k = 0; k < TLY_RC_MAX; k++)
        c[i++] = tly_rcell_num(m->window_cat[k]);
    c[i++] = tly_rcell_num(m->window_credits);
    c[i++] = tly_rcell_num(m->window_runs);
    tly_rtable_row(&f->usage, c);
    f->accounts++;
}

/*
 * A column chart of the totals row: credits by category over all accounts.
 * The totals row is on the table's last sheet (rtable.h: continuation
 * sheets), with the header of that sheet.
 */
static void usage_chart(struct tly_finance *f)
{
    lxw_chart *chart = tly_xbook_chart(f->book, LXW_CHART_COLUMN);
    struct tly_xsheet *xs = f->usage.xs;
    lxw_chart_series *s;
    uint32_t totals = f->usage.row;         /* the row after the data */

    if (!chart || !xs)
        return;
    if (!(s = chart_add_series(chart, NULL, NULL))) {
        tly_xbook_check(f->book, LXW_ERROR_MEMORY_MALLOC_FAILED);
        return;
    }
    chart_series_set_categories(s, xs->name, f->usage.header, USAGE_CAT0, f->usage.header,
                                USAGE_CAT0 + TLY_RC_MAX - 1);
    chart_series_set_values(s, xs->name, totals, USAGE_CAT0, totals, USAGE_CAT0 + TLY_RC_MAX - 1);
    chart_series_set_name(s, "Credits");
    chart_title_set_name(chart, "Credits by category, all accounts");
    chart_axis_set_num_format(chart->y_axis, "#,##0");
    chart_legend_set_position(chart, LXW_CHART_LEGEND_NONE);
    /* under the totals row it charts */
    tly_xsheet_chart(xs, totals + 2, 0, chart, 1.4, 1.2);
}

static int write_query_table(struct tly_finance *f, int q, long *files)
{
    const struct query_table *t = &query_tables[q];
    struct tly_rtable tab, *tabp = &tab;
    sqlite3_stmt *st;
    char file[4096];
    int err;

    if (t->file && (err = file_path(f, file, sizeof file, t->file)))
        return err;
    if ((err = tly_ledger_prepare(f->l, t->sql, &st)))
        return err;
    if (f->o->account && sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_text(st, 1, f->o->account, -1, SQLITE_STATIC);
    if (f->query_xs[q])
        heading(f, f->query_xs[q], t->sheet, t->note);
    if ((err = tly_rtable_open(&tab, t->cols, t->ncols, t->file ? file : NULL, f->query_xs[q],
                               HEADER_ROW))) {
        sqlite3_finalize(st);
        return err;
    }
    err = tly_rtable_query(f->l, st, &tabp, 1);
    sqlite3_finalize(st);
    if (err) {
        tly_rtable_abort(&tab);
        return err;
    }
    if ((err = tly_rtable_close(&tab, t->totals)))
        return err;
    if (t->file)
        (*files)++;
    return TLY_OK;
}

int tly_finance_close(struct tly_finance *f, long *files)
{
    int err;

    f->tables_open = 0;
    err = tly_rtable_close(&f->summary_csv, 0);
    if (!err)
        err = tly_rtable_close(&f->summary, 1);
    if (!err)
        err = tly_rtable_close(&f->usage, 1);
    if (err) {
        tly_finance_abort(f);
        return err;
    }
    (*files)++;                             /* summary.csv */
    usage_chart(f);
    for (int q = 0; q < NQUERY; q++)
        if ((err = write_query_table(f, q, files))) {
            tly_finance_abort(f);
            return err;
        }
    err = tly_xbook_close(f->book);
    f->book = NULL;
    if (!err)
        (*files)++;                         /* finance.xlsx */
    tly_finance_abort(f);
    return err;
}
