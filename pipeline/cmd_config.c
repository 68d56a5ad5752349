/*
 * cmd_config.c — `tally config`: the effective settings and their sources,
 * then the checks run and notify make of them before committing anything.
 */
#include "cmd.h"
#include "digest.h"
#include "error.h"
#include "opts.h"

#include <stdio.h>

static const char *const config_usage[] = {
    "tally [--config FILE] config",
    NULL,
};

static const struct tly_option config_options[] = {
    { NULL, 0, NULL, NULL, NULL },
};

int cmd_config(int argc, char **argv, struct tly_ctx *ctx)
{
    int npos, err;

    if ((err = tly_opts_parse(argc, argv, config_options, config_usage, &npos)))
        return err;
    if (npos) {
        tly_opts_usage(config_usage, config_options, 0);
        return tly_error(TLY_ERR_USAGE, "config takes no arguments");
    }
    tly_settings_print(ctx->settings, stdout);
    /* what run and notify would refuse before committing anything, found now */
    if ((err = tly_notify_check(ctx->settings)))
        return err;
    tly_summary("settings printed");
    return TLY_OK;
}
