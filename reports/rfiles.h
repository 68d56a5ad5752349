/*
 * rfiles.h — the writers of report.c's files, shared inside reports/.
 *
 *   account.c  accounts/ACCOUNT/: the tab CSVs, statement.csv, usage.xlsx
 *   finance.c  summary.csv, statements.csv, discrepancies.csv, rejects.csv,
 *              actions.csv and finance.xlsx
 *
 * Both take their figures from the report model (rmodel.h) or straight
 * from the result tables through rtable.h, never computing one themselves.
 *
 * Ownership: each *_open() returns an object ended by its *_close() (which
 * writes what is left) or *_free()/_abort() (accept NULL).  Files written
 * are counted into the 'files' counters.
 */
#ifndef TLY_RFILES_H
#define TLY_RFILES_H

#include "report.h"
#include "rmodel.h"
#include "rtable.h"

/* The columns of statements.csv and statement.csv, in this order. */
#define TLY_STATEMENT_COLUMNS \
    "account_id, pool, cycle_start, cycle_end, state, opening, granted, used," \
    " used_models, used_finetune, used_guardrails, used_scripts, used_ocr, used_browser," \
    " used_runs, adjusted, expired, late, closing, carried_to_next"
#define TLY_STATEMENT_NCOLS 20
extern const struct tly_rcol tly_statement_cols[TLY_STATEMENT_NCOLS];

/* The columns of overview.csv and summary.csv, and one account's row. */
#define TLY_OVERVIEW_NCOLS 28
extern const struct tly_rcol tly_overview_cols[TLY_OVERVIEW_NCOLS];
void tly_overview_cells(const struct tly_rmodel *m, struct tly_rcell *cells);

/* The credit categories' titles, and the editions that have each (spec README). */
extern const struct tly_rcat_name {
    const char *title;              /* "Models (hosting)" */
    unsigned editions;              /* bit (1 << edition) when the edition has it */
} tly_rcat_names[TLY_RC_MAX];

/* account.c */
struct tly_account_writer;
int tly_account_writer_open(struct tly_ledger *l, const char *dir, const char *scratch_dir,
                            struct tly_account_writer **out);
int tly_account_write(struct tly_account_writer *w, const struct tly_rmodel *m, long *files);
/* Waits until every workbook handed over is written; its first failure. */
int tly_account_writer_finish(struct tly_account_writer *w);
void tly_account_writer_free(struct tly_account_writer *w);

/* finance.c */
struct tly_finance;
int tly_finance_open(struct tly_ledger *l, const struct tly_report_opts *o, const char *dir,
                     struct tly_finance **out);
void tly_finance_account(struct tly_finance *f, const struct tly_rmodel *m);
int tly_finance_close(struct tly_finance *f, long *files);
void tly_finance_abort(struct tly_finance *f);

#endif
