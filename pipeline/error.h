/*
 * error.h — Tally's one error enum, its messages, and the exit-code map.
 *
 * Every function that can fail returns an enum tly_err (TLY_OK on success).
 * The first place that knows what failed reports it with tly_error(), which
 * prints one line to stderr in git's grammar ("tally: ingest: 'x.tar' entry
 * 'runs.csv' line 17: bad timestamp") and returns the code, so call sites
 * read `return tly_error(TLY_ERR_IO, "cannot open '%s': %s", p, strerror(e));`.
 * Callers above only pass the code up.  Only main() turns a code into an
 * exit status, through tly_exit_code(): the one place the spec's numbers live.
 */
#ifndef TLY_ERROR_H
#define TLY_ERROR_H

#include <stdarg.h>

enum tly_err {
    TLY_OK = 0,
    TLY_QUARANTINED,   /* done, but rows or bundles were quarantined: exit 3 */
    TLY_HELP,          /* --help was printed: exit 0 */
    TLY_ERR_USAGE,     /* bad command line: exit 64 */
    TLY_ERR_INPUT,     /* unusable input (refused rate card, overflow): 65 */
    TLY_ERR_OUTPUT,    /* cannot create or write an output file: 73 */
    TLY_ERR_IO,        /* I/O error reading input or the ledger: 74 */
    TLY_ERR_NOMEM,     /* out of memory: reported as an I/O class error, 74 */
    TLY_ERR_LEDGER,    /* SQLite failed (disk full, corrupt): 74 */
    TLY_ERR_LOCKED,    /* another run holds the ledger's lock: 75 */
    TLY_ERR_MAX
};

/* Reporting: print one stderr line, return 'code' (tly_warn returns nothing). */
int tly_error(enum tly_err code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tly_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tly_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A command's one-line summary (outputs.md: every command ends with one):
 * printed like tly_note, and remembered, so that main() adds "nothing
 * done (why)" for a command that failed before it reached its own.
 */
void tly_summary(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tly_summary_printed(void);

/* "s" unless n is 1: the summary lines say "1 duplicate", "2 duplicates". */
const char *tly_plural(long n);

/*
 * Progress, only when stderr is a terminal: "tally: ..." drawn over the
 * previous progress line (cut to the terminal's width) and cleared by the
 * next message, so the terminal keeps only the messages and the summary.
 * tly_progress_wanted() says whether anything would be shown.
 */
void tly_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tly_vprogress(const char *fmt, va_list ap);
int tly_progress_wanted(void);
/* Erases the progress line, if one is drawn, before output on stdout. */
void tly_progress_clear(void);

/*
 * Muting the libraries: libxlsxwriter prints "[ERROR][packager.c:...]"
 * lines of its own, and Tally's contract is one clear line per error,
 * which Tally writes.  While any thread holds a mute (they are counted),
 * descriptor 2 points at /dev/null; the messages above still reach the
 * real stderr, whole, from any thread.
 */
void tly_stderr_mute(void);
void tly_stderr_unmute(void);

/* The command name that prefixes messages ("tally: ingest: ..."). */
void tly_error_set_command(const char *name);
const char *tly_error_command(void);

/* Mapping and combining. */
const char *tly_strerror(enum tly_err code);
int tly_exit_code(enum tly_err code);
enum tly_err tly_err_worst(enum tly_err a, enum tly_err b);

/* Tests silence stderr chatter with this; errors are still returned. */
void tly_error_quiet(int quiet);

#endif
