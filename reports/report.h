/*
 * report.h — writing the report files of an as-of (spec outputs.md "Files
 * under --out DIR").
 *
 * The reconciliation engine has filled the result tables of the ledger;
 * this module reads them and writes, under one directory:
 *
 *   summary.csv statements.csv discrepancies.csv rejects.csv actions.csv
 *   finance.xlsx
 *   accounts/ACCOUNT/ overview.csv trend.csv agents|tools|workflows.csv
 *                     models.csv model_deployments.csv guardrails.csv
 *                     [scripts.csv] [ocr.csv browser.csv] statement.csv
 *                     usage.xlsx
 *
 * It never recomputes a figure the engine computed: each account's figures
 * are read once into a model (reports/rmodel.h) that feeds both the CSV
 * files and the workbooks.  notifications.csv, outbox/ and run.json belong
 * to other stages.
 */
#ifndef TLY_REPORT_H
#define TLY_REPORT_H

#include <stdint.h>

#include "ledger.h"

/* A custom --from/--to window is at most this many dates (ten years). */
#define TLY_REPORT_MAX_DAYS 3660

struct tly_report_opts {
    int64_t as_of;              /* instant */
    const char *window;         /* "24h" "7d" "30d" "90d" "cycle" (default when NULL and !custom) */
    int custom;                 /* --from/--to given: */
    int64_t from_day, to_day;   /* inclusive days */
    const char *account;        /* only this account (and the global files restricted to it), or NULL */
    const char *scratch_dir;    /* workbooks' scratch files; NULL: beside each workbook */
};

struct tly_report_stats {
    long accounts, files;
};

/*
 * Writes every report file under 'dir', which exists and is empty (the
 * caller builds it beside the final DIR and swaps it in atomically).  Reads
 * the ledger in one read transaction when none is open, so every file
 * describes the same state.  Fails with TLY_ERR_USAGE when o->account is
 * not a known account, TLY_ERR_OUTPUT when a file cannot be written,
 * TLY_ERR_LEDGER when the result tables cannot be read or were computed at
 * another as-of; 'dir' then holds a partial set the caller discards.
 */
int tly_report_write(struct tly_ledger *l, const struct tly_report_opts *o, const char *dir,
                     struct tly_report_stats *st);

/*
 * Parses the WINDOW options of a command (--window, or --from and --to,
 * NULL when absent) into o->window / o->custom / o->from_day / o->to_day.
 * Returns TLY_ERR_USAGE, with the message printed, for an unknown window,
 * a bad date, --from after --to, a window longer than TLY_REPORT_MAX_DAYS,
 * --from without --to, or --window with --from/--to.
 */
int tly_report_parse_window(const char *window, const char *from, const char *to,
                            struct tly_report_opts *o);

#endif
