/*
 * cmd_report.c — placeholder until the command lands.
 */
#include "cmd.h"
#include "error.h"

int cmd_report(int argc, char **argv, struct tly_ctx *ctx)
{
    (void)argc;
    (void)argv;
    (void)ctx;
    return tly_error(TLY_ERR_USAGE, "not implemented yet");
}
