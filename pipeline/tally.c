/*
 * tally.c — main(): global options, the command table, exit status.
 *
 *   tally [--db FILE] [--config FILE] COMMAND [OPTIONS] [ARGS]
 *
 * Only this file exits.  Everything below returns an enum tly_err.
 */
#include "alloc.h"
#include "cmd.h"
#include "error.h"
#include "stages.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

static const struct tly_cmd {
    const char *name;
    int (*fn)(int argc, char **argv, struct tly_ctx *ctx);
    unsigned flags;
    const char *summary;
} commands[] = {
    { "balance", cmd_balance, CMD_DB | CMD_LOCK | CMD_READ, "explain one account's balance (support)" },
    { "config",  cmd_config,  0,      "print the effective settings and their sources" },
    { "ingest",  cmd_ingest,  CMD_DB | CMD_LOCK, "load bundles into the ledger" },
    { "notify",  cmd_notify,  CMD_DB | CMD_LOCK, "write the notification digests" },
    { "rates",   cmd_rates,   CMD_DB | CMD_LOCK, "load or replace the rate card" },
    { "report",  cmd_report,  CMD_DB | CMD_LOCK, "reconcile and write the reports" },
    { "run",     cmd_run,     CMD_DB | CMD_LOCK, "the nightly run: rates, ingest, reconcile, report, notify" },
};

static void usage(FILE *f)
{
    fputs("usage: tally [--db FILE] [--config FILE] COMMAND [OPTIONS] [ARGS]\n\n"
          "commands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "    %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\n'tally COMMAND --help' describes a command's options.\n"
          "exit status: 0 done; 3 done, input quarantined; 64 usage; 65 unusable input;\n"
          "73 cannot write output; 74 I/O error; 75 ledger locked by another run\n", f);
}

static const struct tly_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    }
    return 0;
}

/* git's run_builtin(): a command's stdout must really reach its destination. */
static int finish_stdout(void)
{
    if (fflush(stdout) || ferror(stdout))
        return tly_error(TLY_ERR_IO, "write failure on standard output");
    return TLY_OK;
}

/*
 * A report builds and frees one workbook per account, and zlib takes and
 * gives back a quarter-MiB state for each part of it.  With glibc's
 * defaults the freed top of the heap went back to the kernel every time and
 * came back as fresh zeroed pages: a third of the report's system time (brk,
 * page faults, page clearing).  The heap now keeps up to 64 MiB of freed
 * memory for reuse (never more than it once held), and only blocks of
 * 4 MiB or more (the key spool's chunks) are mapped on their own.  A full
 * run's peak RSS went from 119 to 128 MiB.  A tuning only: an allocator
 * that refuses it (the sanitizers' do) changes nothing else.
 */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
    (void)mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
}

/*
 * git's sanitize_stdfds(): a descriptor 0, 1 or 2 left closed by whoever
 * started Tally would be the next file opened, and then messages to stderr
 * (or the report's muting of descriptor 2, error.h) would land in a report
 * file.  /dev/null fills the gaps; if it cannot be opened there is nothing
 * better to do than go on.
 */
static void open_standard_fds(void)
{
    int fd = open("/dev/null", O_RDWR);

    while (fd >= 0 && fd <= STDERR_FILENO)
        fd = open("/dev/null", O_RDWR);
    if (fd > STDERR_FILENO)
        close(fd);
}

int main(int argc, char **argv)
{
    struct tly_settings settings;
    struct tly_ctx ctx = { &settings, NULL, NULL, NULL };
    const char *db = NULL, *config = NULL;
    const struct tly_cmd *cmd;
    struct timespec t0;
    int i, err;

    /*
     * One thread uses SQLite, and nothing reads its memory statistics:
     * keeping them took a global mutex on every SQLite allocation, 2% of
     * a bulk load.  Only possible before SQLite is first used.
     */
    open_standard_fds();
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
        tly_warn("SQLite kept its memory statistics");
    keep_freed_memory();
    /* jansson's allocations (items, run.json) go through alloc.h too, so
     * TALLY_FAULT_ALLOC reaches them */
    json_set_alloc_funcs(tly_malloc, tly_free);
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if ((!strcmp(argv[i], "--db") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
            *(argv[i][2] == 'd' ? &db : &config) = argv[i + 1];
            i++;
        } else if (!strncmp(argv[i], "--db=", 5)) {
            db = argv[i] + 5;
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config = argv[i] + 9;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return finish_stdout() ? 74 : 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("tally %s\n", TALLY_VERSION);
            return finish_stdout() ? 74 : 0;
        } else {
            tly_error(TLY_ERR_USAGE, "unknown option '%s'", argv[i]);
            usage(stderr);
            return 64;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 64;
    }
    cmd = find_command(argv[i]);
    if (!cmd) {
        tly_error(TLY_ERR_USAGE, "'%s' is not a tally command", argv[i]);
        usage(stderr);
        return 64;
    }
    tly_error_set_command(cmd->name);
    tly_clock(&t0);
    argc -= i;
    argv += i;

    if ((err = tly_settings_load(&settings, config)))
        goto out;
    if (db && (err = tly_settings_set(&settings, "ledger", "db", db, TLY_SRC_OPTION)))
        goto out;
    ctx.db_path = settings.db;
    ctx.config_path = settings.file;
    if ((cmd->flags & CMD_DB) && !wants_help(argc, argv)) {
        /* the command says so after its options are checked (cmd.h) */
        if ((cmd->flags & CMD_READ) && access(ctx.db_path, F_OK) != 0)
            goto run;
        err = tly_ledger_open(ctx.db_path, (cmd->flags & CMD_LOCK) ? TLY_LEDGER_LOCK : 0,
                              &ctx.ledger);
        if (err)
            goto out;
    }
run:
    err = cmd->fn(argc, argv, &ctx);
    err = tly_err_worst(err, finish_stdout());
out:
    /*
     * outputs.md: every command ends with a one-line summary, also one that
     * never began or stopped at its options; --help alone says nothing more.
     */
    if (err && err != TLY_HELP && !tly_summary_printed())
        tly_summary("nothing done (%s), %.1f s", tly_strerror((enum tly_err)err), tly_elapsed(&t0));
    tly_ledger_close(ctx.ledger);
    tly_settings_release(&settings);
    return tly_exit_code(err);
}
