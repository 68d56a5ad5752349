/*
 * cmd_balance.c — `tally balance ACCOUNT [--as-of TS]`: explain a balance.
 *
 * What support staff need on one screen: the current cycle's figures, the
 * statement of every cycle, each grant with what is left and when it expires,
 * usage by category, threshold crossings, stops for credits and the
 * discrepancies.  The account is reconciled at the as-of inside a
 * transaction that is rolled back: balance never closes a cycle nor changes
 * the ledger (semantics §8).
 */
#include "cmd.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "opts.h"
#include "stages.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

static const char *const balance_usage[] = {
    "tally [--db FILE] balance ACCOUNT [--as-of TS]",
    NULL,
};

/* Column kinds for the generic table printer. */
enum col { C_TEXT, C_MONEY, C_RUNS, C_DATE, C_TS, C_INT };

struct section {
    const char *title;
    const char *sql;                    /* ?1 = account */
    const char *const *heads;
    const enum col *cols;
    int ncols;
    int runs_pool_col;                  /* column holding the pool, -1: money is money */
};

static void cell(char *buf, size_t n, sqlite3_stmt *st, int i, enum col c, int runs)
{
    char tmp[TLY_TS_LEN > TLY_MONEY_LEN ? TLY_TS_LEN : TLY_MONEY_LEN];
    int64_t v = sqlite3_column_int64(st, i);

    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        snprintf(buf, n, "-");
        return;
    }
    switch (c) {
    case C_MONEY:
        if (runs)
            snprintf(buf, n, "%lld", (long long)(v / TLY_MICRO));
        else {
            tly_format_micro(tmp, v);
            snprintf(buf, n, "%s", tmp);
        }
        break;
    case C_RUNS:
        snprintf(buf, n, "%lld", (long long)(v / TLY_MICRO));
        break;
    case C_DATE:
        tly_format_date(tmp, v);
        snprintf(buf, n, "%s", tmp);
        break;
    case C_TS:
        tly_format_ts(tmp, v);
        snprintf(buf, n, "%s", tmp);
        break;
    case C_INT:
        snprintf(buf, n, "%lld", (long long)v);
        break;
    default:
        snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, i));
    }
}

/* Prints 'cells' (nrows × ncols, row-major) with every column as wide as its widest cell. */
static void print_aligned(char **cells, int nrows, int ncols)
{
    int width[16] = { 0 };
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncols; c++) {
            int w = (int)strlen(cells[r * ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (int r = 0; r < nrows; r++) {
        for (int c = 0; c < ncols; c++)
            printf("  %-*s", c == ncols - 1 ? 0 : width[c], cells[r * ncols + c]);
        putchar('\n');
    }
}

static int print_section(struct tly_ledger *l, const struct section *sec, const char *account)
{
    sqlite3_stmt *st;
    char **cells = NULL;
    size_t cap = 0, n = 0;
    int rc, err = TLY_OK, rows = 0;

    if ((err = tly_ledger_prepare(l, sec->sql, &st)))
        return err;
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    printf("\n%s\n", sec->title);
    for (int i = 0; i < sec->ncols && !err; i++) {
        if (tly_grow(&cells, &cap, n + 1, sizeof *cells) || !(cells[n] = tly_strdup(sec->heads[i])))
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
        else
            n++;
    }
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int runs = sec->runs_pool_col >= 0 &&
                   !strcmp((const char *)sqlite3_column_text(st, sec->runs_pool_col), "runs");
        for (int i = 0; i < sec->ncols && !err; i++) {
            char buf[600];
            cell(buf, sizeof buf, st, i, sec->cols[i], runs);
            if (tly_grow(&cells, &cap, n + 1, sizeof *cells) || !(cells[n] = tly_strdup(buf)))
                err = tly_error(TLY_ERR_NOMEM, "out of memory");
            else
                n++;
        }
        rows++;
    }
    sqlite3_finalize(st);
    if (!err && rc != SQLITE_DONE)
        err = tly_ledger_error(l, "reading results");
    if (!err) {
        if (rows)
            print_aligned(cells, rows + 1, sec->ncols);
        else
            puts("  (none)");
    }
    for (size_t i = 0; i < n; i++)
        tly_free(cells[i]);
    tly_free(cells);
    return err;
}

static const char *const h_stmt[] = { "pool", "cycle_start", "cycle_end", "state", "opening",
                                      "granted", "used", "adjusted", "expired", "late", "closing",
                                      "carried_to_next" };
static const enum col c_stmt[] = { C_TEXT, C_DATE, C_DATE, C_TEXT, C_MONEY, C_MONEY, C_MONEY,
                                   C_MONEY, C_MONEY, C_MONEY, C_MONEY, C_MONEY };
static const char *const h_lots[] = { "pool", "txn_id", "type", "ts", "amount", "left", "expires_at" };
static const enum col c_lots[] = { C_TEXT, C_TEXT, C_TEXT, C_TS, C_MONEY, C_MONEY, C_TS };
static const char *const h_cat[] = { "cycle_start", "models", "finetune", "guardrails", "scripts",
                                     "ocr", "browser", "runs" };
static const enum col c_cat[] = { C_DATE, C_MONEY, C_MONEY, C_MONEY, C_MONEY, C_MONEY, C_MONEY, C_RUNS };
static const char *const h_cross[] = { "pool", "cycle_start", "threshold", "crossed_at" };
static const enum col c_cross[] = { C_TEXT, C_DATE, C_INT, C_TS };
static const char *const h_act[] = { "stop_at", "category", "resource_id", "deployment_id" };
static const enum col c_act[] = { C_TS, C_TEXT, C_TEXT, C_TEXT };
static const char *const h_disc[] = { "kind", "ts", "category", "resource_id", "deployment_id",
                                      "credits", "detail" };
static const enum col c_disc[] = { C_TEXT, C_TS, C_TEXT, C_TEXT, C_TEXT, C_MONEY, C_TEXT };

static const struct section sections[] = {
    { "Statements (every cycle; runs-pool amounts in runs)",
      "SELECT pool, cycle_start, cycle_end, state, opening, granted, used, adjusted, expired, late,"
      " closing, carried_to_next FROM statements WHERE account_id = ?1 ORDER BY cycle_start, pool",
      h_stmt, c_stmt, 12, 0 },
    { "Grants at the as-of (drawn earliest-expiry first; debt shown as txn '';"
      " grants spent or expired before the first open cycle are not listed)",
      "SELECT l.pool, l.txn_id, l.type, nullif(l.ts, 0), c.amount, l.remaining, l.expires_at FROM lots l"
      " LEFT JOIN credits c ON c.account_id = l.account_id AND c.txn_id = l.txn_id"
      " WHERE l.account_id = ?1 ORDER BY l.pool, l.expires_at IS NULL, l.expires_at, l.ts, l.txn_id",
      h_lots, c_lots, 7, 0 },
    { "Usage by category",
      "SELECT s.cycle_start, s.used_models, s.used_finetune, s.used_guardrails, s.used_scripts,"
      " s.used_ocr, s.used_browser, r.used_runs FROM statements s JOIN statements r"
      " ON r.account_id = s.account_id AND r.cycle_start = s.cycle_start AND r.pool = 'runs'"
      " WHERE s.account_id = ?1 AND s.pool = 'credits' ORDER BY s.cycle_start",
      h_cat, c_cat, 8, -1 },
    { "Threshold crossings",
      "SELECT pool, cycle_start, threshold, ts FROM crossings WHERE account_id = ?1"
      " ORDER BY cycle_start, pool, threshold", h_cross, c_cross, 4, -1 },
    { "Stops for credits (t*)",
      "SELECT stop_at, category, resource_id, deployment_id FROM actions WHERE account_id = ?1"
      " ORDER BY stop_at, category, deployment_id", h_act, c_act, 4, -1 },
    { "Discrepancies",
      "SELECT kind, ts, category, resource_id, deployment_id, credits, detail FROM discrepancies"
      " WHERE account_id = ?1 ORDER BY ts, kind, category, resource_id, deployment_id, detail", h_disc, c_disc, 7, -1 },
};

static int print_overview(struct tly_ledger *l, const char *account, int *found)
{
    sqlite3_stmt *st;
    int rc, err;

    if ((err = tly_ledger_prepare(l,
            "SELECT name, edition, admin_email, as_of, cycle_start, cycle_end, credits_used,"
            " credits_total, credits_remaining, banner_credits, runs_used, runs_total,"
            " runs_remaining, banner_runs, stop_at,"
            " (SELECT negative_limit FROM accounts a WHERE a.account_id = s.account_id),"
            " (SELECT low_threshold FROM accounts a WHERE a.account_id = s.account_id)"
            " FROM account_state s WHERE account_id = ?1", &st)))
        return err;
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        char asof[TLY_TS_LEN], cs[TLY_DATE_LEN], ce[TLY_DATE_LEN], u[TLY_MONEY_LEN],
             t[TLY_MONEY_LEN], r[TLY_MONEY_LEN], up[TLY_MONEY_LEN], rp[TLY_MONEY_LEN];
        int64_t used = sqlite3_column_int64(st, 6), total = sqlite3_column_int64(st, 7),
                rem = sqlite3_column_int64(st, 8);
        int64_t rused = sqlite3_column_int64(st, 10), rtotal = sqlite3_column_int64(st, 11),
                rrem = sqlite3_column_int64(st, 12);
        tly_format_ts(asof, sqlite3_column_int64(st, 3));
        tly_format_date(cs, sqlite3_column_int64(st, 4));
        tly_format_date(ce, sqlite3_column_int64(st, 5));
        printf("Account %s: %s (%s), admin %s\n", account, sqlite3_column_text(st, 0),
               sqlite3_column_text(st, 1), sqlite3_column_text(st, 2));
        printf("As of %s; current cycle %s to %s (exclusive)\n", asof, cs, ce);
        /* what decides stops and e-mails (semantics §5, §6), in force for all open time */
        tly_format_micro(u, sqlite3_column_int64(st, 15));
        tly_format_micro(t, sqlite3_column_int64(st, 16));
        printf("Settings: negative limit %s, low threshold %s\n", u, t);
        tly_format_micro(u, used);
        tly_format_micro(t, total);
        tly_format_micro(r, rem);
        tly_format_pct(up, tly_pct_used(used, total));
        tly_format_pct(rp, tly_pct_remaining(rem, total));
        printf("Credits: used %s of %s (%s%%), balance %s (%s%%), widget %s, banner %s\n", u, t, up,
               r, rp, tly_widget(rem, total), sqlite3_column_text(st, 9));
        tly_format_pct(up, tly_pct_used(rused, rtotal));
        printf("Runs:    used %lld of %lld (%s%%), balance %lld, banner %s\n",
               (long long)(rused / TLY_MICRO), (long long)(rtotal / TLY_MICRO), up,
               (long long)(rrem / TLY_MICRO), sqlite3_column_text(st, 13));
        if (sqlite3_column_type(st, 14) != SQLITE_NULL) {
            tly_format_ts(asof, sqlite3_column_int64(st, 14));
            printf("Last stop for credits: %s (balance below the negative limit)\n", asof);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tly_ledger_error(l, "reading account state");
    return TLY_OK;
}

/*
 * semantics §10 "Unknown accounts": events of an account with no
 * accounts.csv row yet are loaded and held.  Support asking about one gets
 * what is held and why, not "no such account".
 */
static int print_held(struct tly_ledger *l, const char *account, int *found)
{
    sqlite3_stmt *st;
    int rc, err;

    if ((err = tly_ledger_prepare(l, "SELECT (SELECT count(*) FROM credits WHERE account_id = ?1),"
                                     " (SELECT count(*) FROM deployments WHERE account_id = ?1),"
                                     " (SELECT coalesce(sum(runs), 0) FROM run_day WHERE account_id = ?1)",
                                  &st)))
        return err;
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && (sqlite3_column_int64(st, 0) || sqlite3_column_int64(st, 1) ||
                                                  sqlite3_column_int64(st, 2))) {
        *found = 1;
        printf("Account %s: no accounts.csv row yet.  Its events are held, not computed, and it is\n"
               "listed as discrepancy unknown_account until its row arrives (semantics §10).\n", account);
        printf("Held: %lld credits rows, %lld deployment events, %lld runs\n",
               (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
               (long long)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? TLY_OK : tly_ledger_error(l, "reading held events");
}

int cmd_balance(int argc, char **argv, struct tly_ctx *ctx)
{
    const char *as_of_text = NULL;
    const struct tly_option options[] = {
        { "as-of", TLY_OPT_STRING, &as_of_text, "TS", "explain the balance at this instant (default: latest manifest period_end)" },
        { NULL, 0, NULL, NULL, NULL },
    };
    struct tly_reconcile_stats rs;
    struct timespec t0;
    int64_t as_of;
    int npos, err, found = 0;

    if ((err = tly_opts_parse(argc, argv, options, balance_usage, &npos)))
        return err;
    if (npos != 1) {
        tly_opts_usage(balance_usage, options, 0);
        return tly_error(TLY_ERR_USAGE, "balance takes one ACCOUNT");
    }
    tly_clock(&t0);
    if (!ctx->ledger)               /* balance only reads: it never creates one (CMD_READ) */
        err = tly_error(TLY_ERR_USAGE, "no ledger at '%s' (--db names the nightly run's)", ctx->db_path);
    else if (!(err = tly_resolve_as_of(ctx, as_of_text, &as_of)) &&
             !(err = tly_stage_reconcile(ctx, as_of, 0, 0, argv[0], &rs))) {
        err = print_overview(ctx->ledger, argv[0], &found);
        if (!err && !found)
            err = print_held(ctx->ledger, argv[0], &found);
        if (!err && !found)
            err = tly_error(TLY_ERR_USAGE, "no account '%s' in the ledger", argv[0]);
        for (size_t i = 0; !err && i < sizeof sections / sizeof sections[0]; i++)
            err = print_section(ctx->ledger, &sections[i], argv[0]);
        tly_ledger_rollback(ctx->ledger);
    }
    /* outputs.md: the summary ends every run of the command, a failed one too */
    tly_summary("%d account%s explained, %.1f s", !err, tly_plural(!err), tly_elapsed(&t0));
    return err;
}
