/*
 * cmd_report.c — `tally report`: reconcile up to an as-of and write the reports.
 *
 * Works on the ledger as the nightly run left it (nothing is ingested), so
 * support can re-run the reports for another window or one account.  Like
 * `run`, it closes cycles whose end + grace has passed (semantics §8).
 */
#include "alloc.h"
#include "cmd.h"
#include "error.h"
#include "opts.h"
#include "outdir.h"
#include "report.h"
#include "stages.h"

#include <string.h>

static const char *const report_usage[] = {
    "tally [--db FILE] report [--as-of TS] --out DIR [WINDOW] [--grace HOURS] [--account ID]",
    "WINDOW = --window 24h|7d|30d|90d|cycle  |  --from DATE --to DATE",
    NULL,
};

int cmd_report(int argc, char **argv, struct tly_ctx *ctx)
{
    const char *as_of = NULL, *out = NULL, *window = NULL, *from = NULL, *to = NULL;
    const char *grace = NULL, *account = NULL;
    const struct tly_option options[] = {
        { "account", TLY_OPT_STRING, &account, "ID", "only this account's reports" },
        { "as-of", TLY_OPT_STRING, &as_of, "TS", "compute up to this instant (default: latest manifest period_end)" },
        { "from", TLY_OPT_STRING, &from, "DATE", "custom window start (inclusive)" },
        { "grace", TLY_OPT_STRING, &grace, "HOURS", "hours after a cycle end before it closes (default: setting grace_hours, 48)" },
        { "out", TLY_OPT_STRING, &out, "DIR", "report directory, replaced atomically" },
        { "to", TLY_OPT_STRING, &to, "DATE", "custom window end (inclusive)" },
        { "window", TLY_OPT_STRING, &window, "W", "24h, 7d, 30d, 90d or cycle (default)" },
        { NULL, 0, NULL, NULL, NULL },
    };
    struct tly_reconcile_stats rs;
    struct tly_report_stats st;
    struct tly_report_opts ro;
    struct tly_outdir_keep *keep = NULL;
    struct tly_outdir dir;
    struct timespec t0;
    int npos, err;

    tly_clock(&t0);
    memset(&ro, 0, sizeof ro);
    memset(&st, 0, sizeof st);
    memset(&rs, 0, sizeof rs);
    if ((err = tly_opts_parse(argc, argv, options, report_usage, &npos)))
        return err;
    if (!out || npos) {
        tly_opts_usage(report_usage, options, 0);
        err = tly_error(TLY_ERR_USAGE, npos ? "report takes no arguments" : "--out is required");
        goto done;
    }
    if ((err = tly_report_parse_window(window, from, to, &ro)) || (err = tly_apply_grace(ctx, grace)) ||
        (err = tly_resolve_as_of(ctx, as_of, &ro.as_of)))
        goto done;
    ro.account = account;
    ro.scratch_dir = tly_scratch_dir(ctx);
    /* a DIR that cannot take the reports is refused before reconcile closes a cycle */
    if (!(keep = tly_keep_list(ctx, NULL, NULL, 0))) {
        err = TLY_ERR_NOMEM;
        goto done;
    }
    if ((err = tly_outdir_check(out, keep)) ||
        (err = tly_stage_reconcile(ctx, ro.as_of, 1, 1, NULL, &rs)) ||
        (err = tly_outdir_begin(out, keep, &dir)))
        goto done;
    if ((err = tly_report_write(ctx->ledger, &ro, dir.tmp, &st))) {
        tly_outdir_abort(&dir);
        goto done;
    }
    err = tly_outdir_commit(&dir);
done:
    tly_free(keep);
    /* outputs.md: every command ends with a one-line summary, failed or not */
    long accounts = err ? 0 : st.accounts, files = err ? 0 : st.files;

    tly_summary("%ld account%s reported, %ld file%s, %ld cycle%s closed, %.1f s", accounts,
             tly_plural(accounts), files, tly_plural(files), rs.cycles_closed,
             tly_plural(rs.cycles_closed), tly_elapsed(&t0));
    return err;
}
