/*
 * error.c — reporting and the exit-code table (spec outputs.md "Exit status").
 */
#include "error.h"

#include <stdio.h>

static const char *command_name;
static int quiet;

static const struct {
    const char *text;
    int exit_code;
    int rank;          /* "the first of 75, 74, 73, 65, 3 wins" */
} error_table[TLY_ERR_MAX] = {
    [TLY_OK]          = { "ok", 0, 0 },
    [TLY_QUARANTINED] = { "input quarantined", 3, 1 },
    [TLY_HELP]        = { "help shown", 0, 0 },
    [TLY_ERR_USAGE]   = { "bad usage", 64, 2 },
    [TLY_ERR_INPUT]   = { "unusable input", 65, 3 },
    [TLY_ERR_OUTPUT]  = { "cannot write output", 73, 4 },
    [TLY_ERR_IO]      = { "I/O error", 74, 5 },
    [TLY_ERR_NOMEM]   = { "out of memory", 74, 5 },
    [TLY_ERR_LEDGER]  = { "ledger error", 74, 5 },
    [TLY_ERR_LOCKED]  = { "ledger locked by another run", 75, 6 },
};

void tly_error_set_command(const char *name) { command_name = name; }
void tly_error_quiet(int q) { quiet = q; }

static void vreport(const char *kind, const char *fmt, va_list ap)
{
    if (quiet)
        return;
    flockfile(stderr);          /* one line, whole: ingest's prefetch thread reports too */
    fputs("tally: ", stderr);
    if (command_name)
        fprintf(stderr, "%s: ", command_name);
    if (kind)
        fputs(kind, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

int tly_error(enum tly_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(NULL, fmt, ap);
    va_end(ap);
    return code;
}

void tly_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}

void tly_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(NULL, fmt, ap);
    va_end(ap);
}

const char *tly_strerror(enum tly_err code)
{
    if ((unsigned)code >= TLY_ERR_MAX)
        return "unknown error";
    return error_table[code].text;
}

int tly_exit_code(enum tly_err code)
{
    if ((unsigned)code >= TLY_ERR_MAX)
        return 74;
    return error_table[code].exit_code;
}

enum tly_err tly_err_worst(enum tly_err a, enum tly_err b)
{
    int ra = (unsigned)a < TLY_ERR_MAX ? error_table[a].rank : 5;
    int rb = (unsigned)b < TLY_ERR_MAX ? error_table[b].rank : 5;
    return rb > ra ? b : a;
}
