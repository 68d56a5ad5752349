/*
 * cmd.h — the command table's contract.
 *
 * Adding a command:
 *   1. write pipeline/cmd_<name>.c with <name>_usage[], its sorted option
 *      table, and `int cmd_<name>(int argc, char **argv, struct tly_ctx *ctx)`;
 *   2. declare cmd_<name> below;
 *   3. add one row to commands[] in pipeline/tally.c with the setup flags it
 *      needs (CMD_DB opens the ledger into ctx->ledger; CMD_LOCK also takes
 *      the writer lock, so a second writer fails with exit 75 at once).
 * A command returns an enum tly_err; main() maps it to the exit status and
 * checks that stdout was written.  A command never exits.
 */
#ifndef TLY_CMD_H
#define TLY_CMD_H

#include "ledger.h"
#include "settings.h"

#define CMD_DB   1u     /* open the ledger before the command runs */
#define CMD_LOCK 2u     /* ... and hold the exclusive writer lock */
#define CMD_READ 4u     /* ... when it exists: a command that only reads never creates
                           one, and finds ctx->ledger NULL without it */

struct tly_ctx {
    struct tly_settings *settings;
    struct tly_ledger *ledger;      /* NULL unless CMD_DB (and the file, for CMD_READ) */
    const char *db_path;
    const char *config_path;        /* the INI file read (--config or the default), or NULL */
};

int cmd_balance(int argc, char **argv, struct tly_ctx *ctx);
int cmd_config(int argc, char **argv, struct tly_ctx *ctx);
int cmd_ingest(int argc, char **argv, struct tly_ctx *ctx);
int cmd_notify(int argc, char **argv, struct tly_ctx *ctx);
int cmd_rates(int argc, char **argv, struct tly_ctx *ctx);
int cmd_report(int argc, char **argv, struct tly_ctx *ctx);
int cmd_run(int argc, char **argv, struct tly_ctx *ctx);

#endif
