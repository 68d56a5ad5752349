/*
 * cmd_notify.c — `tally notify`: deliver the e-mail items as digests
 * (spec outputs.md "Command line" and "Digest e-mails", semantics.md §5, §10).
 *
 *   tally [--db FILE] notify [--as-of TS] --outbox DIR [--sendmail CMD]
 *
 * notify computes at its as-of (the spec's "a run of the pipeline"): it
 * reconciles the ledger there first, without closing a cycle (semantics.md
 * §8: "balance and notify never close a cycle"), so the items up to the
 * as-of are known, then delivers them; to include new bundles, run `tally
 * run` (whose notify stage is this same code, reports/digest.h).  --as-of
 * defaults to the latest manifest period_end in the ledger; with none it is
 * a usage error (64).
 *
 * DIR gets the digests of this as-of (ACCOUNT.eml), the earlier ones no
 * outbox in place has shown (ACCOUNT+AS-OF.eml, reports/digest.h "Outbox
 * backlog") and notifications.csv.
 * Like `--out`, it is replaced as a whole (pipeline/outdir.h): everything is
 * written into a temporary directory beside it, which is swapped in only
 * when complete, so DIR always holds one complete notify and a failed one
 * leaves it as it was.  DIR is created when missing; its parent must exist.
 *
 * --sendmail CMD (else the `notify.sendmail` setting) hands each new digest
 * to CMD, and every earlier one whose hand-off failed (a digest created
 * with no command went to the outbox only); a failed hand-off is reported,
 * retried by the next run, and makes the exit status 73 once everything
 * else is done.
 */
#include "alloc.h"
#include "cmd.h"
#include "digest.h"
#include "error.h"
#include "opts.h"
#include "outdir.h"
#include "stages.h"

#include <stdio.h>
#include <string.h>

static const char *const notify_usage[] = {
    "tally [--db FILE] notify [--as-of TS] --outbox DIR [--sendmail CMD]",
    NULL,
};

static struct {
    const char *as_of, *outbox, *sendmail;
} arg;

/* sorted by long name (tly_opts_check_table) */
static const struct tly_option notify_options[] = {
    { "as-of", TLY_OPT_STRING, &arg.as_of, "TS",
      "deliver the items up to TS (default: the latest period_end)" },
    { "outbox", TLY_OPT_STRING, &arg.outbox, "DIR",
      "write ACCOUNT.eml and notifications.csv here (required)" },
    { "sendmail", TLY_OPT_STRING, &arg.sendmail, "CMD",
      "pipe each new digest, and each failed earlier, to CMD (like sendmail -t -i)" },
    { NULL, 0, NULL, NULL, NULL },
};

/* Reconciles at the as-of and writes the outbox beside DIR, swapped in whole. */
static int notify_outbox(struct tly_ctx *ctx, struct tly_notify_stats *st)
{
    struct tly_reconcile_stats rs;
    struct tly_outdir_keep *keep;
    struct tly_outdir out = { NULL, NULL };
    char csv[4400];
    int64_t as_of;
    int err;

    if (arg.sendmail &&
        (err = tly_settings_set(ctx->settings, "notify", "sendmail", arg.sendmail, TLY_SRC_OPTION)))
        return err;
    if ((err = tly_notify_check(ctx->settings)) ||
        (err = tly_resolve_as_of(ctx, arg.as_of, &as_of)) ||
        (err = tly_stage_reconcile(ctx, as_of, 0, 1, NULL, &rs)))
        return err;

    /* built beside DIR and swapped in whole, as --out (outputs.md "Files under --out DIR") */
    if (!(keep = tly_keep_list(ctx, NULL, NULL, 0)))
        return TLY_ERR_NOMEM;
    err = tly_outdir_begin(arg.outbox, keep, &out);
    tly_free(keep);
    if (err)
        return err;
    if (snprintf(csv, sizeof csv, "%s/notifications.csv", out.tmp) >= (int)sizeof csv) {
        tly_outdir_abort(&out);
        return tly_error(TLY_ERR_USAGE, "--outbox path too long");
    }
    err = tly_notify_run(ctx->ledger, ctx->settings, as_of, out.tmp, csv,
                         ctx->settings->sendmail, st);
    if (err) {
        tly_outdir_abort(&out);
        return err;
    }
    if ((err = tly_outdir_commit(&out)))
        return err;
    return tly_notify_shown(ctx->ledger, as_of);
}

int cmd_notify(int argc, char **argv, struct tly_ctx *ctx)
{
    struct tly_notify_stats st;
    struct timespec t0;
    char extra[96];
    int npos, err;

    tly_clock(&t0);
    memset(&arg, 0, sizeof arg);
    memset(&st, 0, sizeof st);
    if ((err = tly_opts_parse(argc, argv, notify_options, notify_usage, &npos)))
        return err;
    if (npos) {
        err = tly_error(TLY_ERR_USAGE, "notify takes no arguments ('%s')", argv[0]);
        tly_opts_usage(notify_usage, notify_options, 0);
        return err;
    }
    if (!arg.outbox || !arg.outbox[0]) {
        err = tly_error(TLY_ERR_USAGE, "--outbox DIR is required");
        tly_opts_usage(notify_usage, notify_options, 0);
        return err;
    }
    /* outputs.md: the summary ends every run of the command, a failed one too */
    if ((err = notify_outbox(ctx, &st)))
        st.digests_shown = st.items = 0;        /* no outbox landed */

    extra[0] = '\0';
    if (st.handoff_failed)
        snprintf(extra, sizeof extra, ", %ld hand-off%s failed", st.handoff_failed,
                 tly_plural(st.handoff_failed));
    if (st.skipped)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", %ld account%s skipped",
                 st.skipped, tly_plural(st.skipped));
    tly_summary("%ld digest%s (%ld new), %ld item%s, %ld handed off%s, %.1f s", st.digests_shown,
             tly_plural(st.digests_shown), st.digests_created, st.items, tly_plural(st.items),
             st.handed_off, extra, tly_elapsed(&t0));
    if (err)
        return err;
    /* a failed hand-off is retried next run; the exit status still says it failed */
    return st.handoff_failed ? TLY_ERR_OUTPUT : TLY_OK;
}
