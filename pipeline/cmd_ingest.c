/*
 * cmd_ingest.c — `tally ingest [--rejects FILE] BUNDLE...`: load bundles.
 *
 * Each bundle is its own transaction (ingest.h), so a failure in the third
 * bundle keeps the first two.  Exit status (outputs.md "Exit status"): 0;
 * 3 when anything of the bundles named was quarantined, now or when they
 * were first ingested; 65 when every bundle named was rejected; 74 on a
 * ledger error, which stops at that bundle.
 *
 * --rejects FILE writes, in rejects.csv's columns, what this command
 * quarantined plus the earlier rejects of the bundles named that were
 * already ingested, so the file explains the exit status of a re-run too.
 */
#include "cmd.h"
#include "error.h"
#include "ingest.h"
#include "opts.h"
#include "stages.h"

#include <stdio.h>

static const char *const ingest_usage[] = {
    "tally [--db FILE] ingest [--rejects FILE] BUNDLE...",
    NULL,
};

static struct {
    const char *rejects;
} opt;

/* Sorted by long name (tests/unit/test_ingest.c checks). */
static const struct tly_option ingest_options[] = {
    { "rejects", TLY_OPT_STRING, &opt.rejects, "FILE",
      "write what was quarantined as CSV (rejects.csv columns)" },
    { NULL, 0, NULL, NULL, NULL },
};

const struct tly_option *tly_ingest_options(void);
const struct tly_option *tly_ingest_options(void) { return ingest_options; }

/* outputs.md: every command ends with a one-line summary on stderr. */
static void summary(const struct tly_ingest_stats *st, long nbundles, double seconds)
{
    char what[512];

    tly_ingest_describe(what, sizeof what, st, nbundles);
    tly_summary("%s, %.1f s", what, seconds);
}

int cmd_ingest(int argc, char **argv, struct tly_ctx *ctx)
{
    struct tly_ingest_stats st = { 0 };
    struct timespec t0;
    int64_t mark = 0;
    int npos, err, result = TLY_OK, i;

    opt.rejects = NULL;
    if ((err = tly_opts_parse(argc, argv, ingest_options, ingest_usage, &npos)))
        return err;
    if (npos == 0) {
        tly_opts_usage(ingest_usage, ingest_options, 0);
        return tly_error(TLY_ERR_USAGE, "ingest needs at least one BUNDLE");
    }
    tly_clock(&t0);
    if ((err = tly_rejects_mark(ctx->ledger, &mark)))
        return err;
    for (i = 0; i < npos; i++) {
        int rc = tly_ingest_bundle(ctx->ledger, ctx->settings, argv[i], &st);
        if (rc != TLY_OK && rc != TLY_QUARANTINED) {
            result = rc;            /* ledger trouble: stop here, earlier bundles stay */
            break;
        }
        result = tly_err_worst(result, rc);
    }
    if (i == npos && st.bundles_rejected + st.bundles_already_rejected == npos)
        result = tly_error(TLY_ERR_INPUT, "every bundle given was rejected");
    tly_progress_clear();                   /* --rejects /dev/stdout on the same terminal */
    if (opt.rejects)
        result = tly_err_worst(result, tly_rejects_write_ingest(ctx->ledger, mark, &st,
                                                                opt.rejects));
    summary(&st, i, tly_elapsed(&t0));     /* outputs.md: the summary is the last line */
    tly_ingest_stats_release(&st);
    return result;
}
