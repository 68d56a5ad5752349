/*
 * cmd_rates.c — `tally rates FILE`: load or replace the rate card.
 *
 * All or nothing (inputs.md "rates.csv"): a bad row or overlapping periods
 * refuse the card with one line naming file and line, exit 65, and the
 * card in force stays.
 */
#include "cmd.h"
#include "error.h"
#include "opts.h"
#include "rates.h"
#include "stages.h"

#include <stdio.h>

static const char *const rates_usage[] = {
    "tally [--db FILE] rates FILE",
    NULL,
};

/* No options but --help; the table stays so the help lists them alike. */
static const struct tly_option rates_options[] = {
    { NULL, 0, NULL, NULL, NULL },
};

int cmd_rates(int argc, char **argv, struct tly_ctx *ctx)
{
    struct tly_rates_stats st = { 0, 0 };
    struct timespec t0;
    int npos, err;

    if ((err = tly_opts_parse(argc, argv, rates_options, rates_usage, &npos)))
        return err;
    if (npos != 1) {
        tly_opts_usage(rates_usage, rates_options, 0);
        return tly_error(TLY_ERR_USAGE, "rates takes one FILE");
    }
    tly_clock(&t0);
    if ((err = tly_rates_load_stats(ctx->ledger, argv[0], &st))) {
        tly_summary("'%s': rate card %s, 0 rates loaded; the card in force stays, %.1f s", argv[0],
                 err == TLY_ERR_INPUT ? "refused" : "not read", tly_elapsed(&t0));
        return err;
    }
    tly_summary("'%s': %ld rate%s for %ld hardware profile%s loaded, %.1f s", argv[0], st.rows,
             tly_plural(st.rows), st.hardware, tly_plural(st.hardware), tly_elapsed(&t0));
    return TLY_OK;
}
