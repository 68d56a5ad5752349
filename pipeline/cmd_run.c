/*
 * cmd_run.c — `tally run`: the nightly run (spec outputs.md "Command line").
 *
 * rates + ingest + reconcile + report + notify, unattended.  Each stage
 * commits atomically (the rate card, each bundle, reconcile, the digests);
 * the reports are built beside DIR and swapped in only when complete, so a
 * run killed at any instant and run again gives the same outputs (§9).
 */
#include "alloc.h"
#include "cmd.h"
#include "digest.h"
#include "error.h"
#include "ingest.h"
#include "opts.h"
#include "outdir.h"
#include "rates.h"
#include "report.h"
#include "runjson.h"
#include "stages.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

static const char *const run_usage[] = {
    "tally [--db FILE] run --rates FILE [--as-of TS] --out DIR [WINDOW] [--grace HOURS]\n"
    "                      [--sendmail CMD] BUNDLE...",
    "WINDOW = --window 24h|7d|30d|90d|cycle  |  --from DATE --to DATE",
    NULL,
};

struct run_args {
    const char *rates, *as_of, *out, *window, *from, *to, *grace, *sendmail;
};

enum { ST_RATES, ST_INGEST, ST_RECONCILE, ST_REPORT, ST_NOTIFY, NSTAGES };

struct run {
    struct tly_ctx *ctx;
    struct run_args a;
    char **bundles;
    int nbundles;
    char **sha;                         /* bundle identities for run.json, one per bundle */
    struct tly_outdir_keep *keep;       /* what the swap of DIR must not destroy */
    struct tly_ingest_stats ingest;
    struct tly_reconcile_stats recon;
    struct tly_report_stats report;
    struct tly_notify_stats notify;
    struct tly_report_opts window;      /* parsed before anything is committed */
    struct tly_runjson_stage stages[NSTAGES];
    int64_t as_of;
    int as_of_known;                    /* given, or resolved after ingest */
};

static int stage_ingest(struct run *r, enum tly_err *status)
{
    int err;

    for (int i = 0; i < r->nbundles; i++) {
        struct timespec t0;
        long rows = r->ingest.rows_loaded;
        double secs;
        tly_progress("run: ingest '%s' (%d of %d)", r->bundles[i], i + 1, r->nbundles);
        tly_clock(&t0);
        err = tly_ingest_bundle(r->ctx->ledger, r->ctx->settings, r->bundles[i], &r->ingest);
        /* the identity ingest hashed, for run.json: a bundle is read once */
        if (r->ingest.identity[0] && !(r->sha[i] = tly_strdup(r->ingest.identity)))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        secs = tly_elapsed(&t0);
        tly_progress("run: ingest '%s': %ld rows in %.1f s (%.0f rows/s)", r->bundles[i],
                     r->ingest.rows_loaded - rows, secs,
                     secs > 0 ? (double)(r->ingest.rows_loaded - rows) / secs : 0.0);
        if (err == TLY_QUARANTINED)
            *status = tly_err_worst(*status, TLY_QUARANTINED);
        else if (err)
            return err;
    }
    /* spec: 65 when every bundle given was rejected, so nothing could be loaded */
    if (r->nbundles > 0 &&
        r->ingest.bundles_rejected + r->ingest.bundles_already_rejected == r->nbundles)
        *status = tly_err_worst(*status, tly_error(TLY_ERR_INPUT, "every bundle given was rejected"));
    return TLY_OK;
}

static int stage_outputs(struct run *r, const char *dir)
{
    struct timespec t0;
    char outbox[4096], csv[4096];
    int err;

    r->window.as_of = r->as_of;
    r->window.scratch_dir = tly_scratch_dir(r->ctx);
    tly_clock(&t0);
    tly_progress("run: report");
    if ((err = tly_report_write(r->ctx->ledger, &r->window, dir, &r->report)))
        return err;
    r->stages[ST_REPORT].seconds = tly_elapsed(&t0);

    tly_clock(&t0);
    tly_progress("run: notify");
    snprintf(outbox, sizeof outbox, "%s/outbox", dir);
    snprintf(csv, sizeof csv, "%s/notifications.csv", dir);
    if (r->a.sendmail &&
        (err = tly_settings_set(r->ctx->settings, "notify", "sendmail", r->a.sendmail, TLY_SRC_OPTION)))
        return err;
    if ((err = tly_mkdir(outbox)) ||
        (err = tly_notify_run(r->ctx->ledger, r->ctx->settings, r->as_of, outbox, csv,
                              r->ctx->settings->sendmail, &r->notify)))
        return err;
    r->stages[ST_NOTIFY].seconds = tly_elapsed(&t0);
    return TLY_OK;
}

static int write_runjson(struct run *r, const char *dir)
{
    const struct tly_runjson_count counts[] = {
        { "bundles_loaded", r->ingest.bundles_loaded },
        { "bundles_already_ingested", r->ingest.bundles_already },
        { "bundles_rejected", r->ingest.bundles_rejected },
        { "rows_loaded", r->ingest.rows_loaded },
        { "duplicates", r->ingest.duplicates },
        { "rows_quarantined", r->ingest.quarantined },
        /* of the bundles already ingested (by tally-nightly's own ingest, say) */
        { "bundles_already_rejected", r->ingest.bundles_already_rejected },
        { "rows_quarantined_earlier", r->ingest.quarantined_earlier },
        { "files_skipped", r->ingest.files_skipped },
        { "accounts_reported", r->report.accounts },
        { "cycles_closed", r->recon.cycles_closed },
        { "quiet_days", r->recon.quiet_days },
        { "digests", r->notify.digests_shown },
        { "digests_new", r->notify.digests_created },
        { "items", r->notify.items },
        { "handed_off", r->notify.handed_off },
        { "handoff_failed", r->notify.handoff_failed },
        { "digests_skipped", r->notify.skipped },
    };
    return tly_runjson_write(dir, r->as_of, counts, (int)(sizeof counts / sizeof counts[0]),
                             r->bundles, r->sha, r->nbundles, r->ingest.skipped, r->ingest.files_skipped,
                             r->stages, NSTAGES);
}

static void summary(const struct run *r, double seconds)
{
    char when[TLY_TS_LEN] = "not known", what[512];

    if (r->as_of_known)
        tly_format_ts(when, r->as_of);
    tly_ingest_describe(what, sizeof what, &r->ingest, r->nbundles);
    tly_summary("as-of %s, %s, %ld account%s reported, %ld digest%s (%ld new), %.1f s", when, what,
             r->report.accounts, tly_plural(r->report.accounts), r->notify.digests_shown,
             tly_plural(r->notify.digests_shown), r->notify.digests_created, seconds);
}

int cmd_run(int argc, char **argv, struct tly_ctx *ctx)
{
    struct run r;
    const struct tly_option options[] = {
        { "as-of", TLY_OPT_STRING, &r.a.as_of, "TS", "compute up to this instant (default: latest manifest period_end)" },
        { "from", TLY_OPT_STRING, &r.a.from, "DATE", "custom window start (inclusive)" },
        { "grace", TLY_OPT_STRING, &r.a.grace, "HOURS", "hours after a cycle end before it closes (default: setting grace_hours, 48)" },
        { "out", TLY_OPT_STRING, &r.a.out, "DIR", "report directory, replaced atomically" },
        { "rates", TLY_OPT_STRING, &r.a.rates, "FILE", "the rate card to load first" },
        { "sendmail", TLY_OPT_STRING, &r.a.sendmail, "CMD", "hand each new digest to this command" },
        { "to", TLY_OPT_STRING, &r.a.to, "DATE", "custom window end (inclusive)" },
        { "window", TLY_OPT_STRING, &r.a.window, "W", "24h, 7d, 30d, 90d or cycle (default)" },
        { NULL, 0, NULL, NULL, NULL },
    };
    struct tly_outdir out = { NULL, NULL };
    enum tly_err status = TLY_OK;
    struct timespec t0, all;
    int npos, err;

    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    tly_clock(&all);
    if ((err = tly_opts_parse(argc, argv, options, run_usage, &npos)))
        return err;
    if (!r.a.rates || !r.a.out || npos == 0) {
        tly_opts_usage(run_usage, options, 0);
        err = tly_error(TLY_ERR_USAGE, !r.a.rates || !r.a.out ? "--rates and --out are required"
                                                               : "run needs at least one BUNDLE");
        goto done;
    }
    r.bundles = argv;
    r.nbundles = npos;
    /* every usage error is found before the first stage commits anything */
    if ((err = tly_apply_grace(ctx, r.a.grace)) ||
        (err = tly_report_parse_window(r.a.window, r.a.from, r.a.to, &r.window)) ||
        (r.a.as_of && (err = tly_resolve_as_of(ctx, r.a.as_of, &r.as_of))) ||
        (err = tly_notify_check(ctx->settings)))
        goto done;
    r.as_of_known = r.a.as_of != NULL;
    if (!(r.keep = tly_keep_list(ctx, r.a.rates, r.bundles, r.nbundles))) {
        err = TLY_ERR_NOMEM;
        goto done;
    }
    if (!(r.sha = tly_calloc((size_t)npos + 1, sizeof *r.sha))) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* a DIR it cannot replace is found before anything is committed */
    if ((err = tly_outdir_check(r.a.out, r.keep)))
        goto done;

    /* a refused rate card stops the run before anything is committed */
    tly_clock(&t0);
    tly_progress("run: rates '%s'", r.a.rates);
    if ((err = tly_rates_load(ctx->ledger, r.a.rates)))
        goto done;
    r.stages[ST_RATES] = (struct tly_runjson_stage){ "rates", tly_elapsed(&t0) };

    tly_clock(&t0);
    if ((err = stage_ingest(&r, &status)))
        goto done;
    r.stages[ST_INGEST] = (struct tly_runjson_stage){ "ingest", tly_elapsed(&t0) };
    if (!r.a.as_of && (err = tly_resolve_as_of(ctx, NULL, &r.as_of)))
        goto done;
    r.as_of_known = 1;

    tly_clock(&t0);
    tly_progress("run: reconcile");
    if ((err = tly_stage_reconcile(ctx, r.as_of, 1, 1, NULL, &r.recon)))
        goto done;
    r.stages[ST_RECONCILE] = (struct tly_runjson_stage){ "reconcile", tly_elapsed(&t0) };
    r.stages[ST_REPORT].name = "report";
    r.stages[ST_NOTIFY].name = "notify";

    if ((err = tly_outdir_begin(r.a.out, r.keep, &out)))
        goto done;
    if ((err = stage_outputs(&r, out.tmp)) || (err = write_runjson(&r, out.tmp))) {
        tly_outdir_abort(&out);
        r.report.accounts = r.notify.digests_shown = 0;    /* the summary counts what DIR holds */
        goto done;
    }
    /* the outbox is in place: its digests, backlog included, were shown (digest.h) */
    if (!(err = tly_outdir_commit(&out)))
        err = tly_notify_shown(ctx->ledger, r.as_of);
    else
        r.report.accounts = r.notify.digests_shown = 0;
    /* a digest that could not be handed off is retried next run: say so in
     * the status, before the summary, which is stderr's last line */
    if (!err && r.notify.handoff_failed)
        err = tly_error(TLY_ERR_OUTPUT, "%ld digest%s could not be handed off; the next run retries %s",
                        r.notify.handoff_failed, tly_plural(r.notify.handoff_failed),
                        r.notify.handoff_failed == 1 ? "it" : "them");
done:
    summary(&r, tly_elapsed(&all));
    for (int i = 0; r.sha && i < r.nbundles; i++)
        tly_free(r.sha[i]);
    tly_free(r.sha);
    tly_free(r.keep);
    tly_ingest_stats_release(&r.ingest);
    /* every bundle rejected and so no period_end for the as-of: 65, not 64 */
    return (int)tly_err_worst((enum tly_err)err, status);
}
