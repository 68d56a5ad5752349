/*
 * opts.h — declarative option tables for the commands (git parse-options).
 *
 * Each command keeps, at the top of its file, a NULL-terminated usage array
 * and a table of struct tly_option sorted by long name.  tly_opts_parse()
 * fills the destinations, moves positional arguments to the front of argv and
 * handles --help (usage to stdout, TLY_HELP) and bad usage (stderr, 64).
 */
#ifndef TLY_OPTS_H
#define TLY_OPTS_H

enum tly_opt_kind {
    TLY_OPT_STRING,     /* --name VALUE or --name=VALUE: const char **dest */
    TLY_OPT_FLAG,       /* --name: int *dest = 1 */
};

struct tly_option {
    const char *long_name;      /* without the leading "--" */
    enum tly_opt_kind kind;
    void *dest;
    const char *arg;            /* placeholder shown in help, e.g. "FILE" */
    const char *help;
};

/*
 * Parses argv[1..argc) (argv[0] is the command name).  On TLY_OK, *npos is
 * the number of positional arguments, now at argv[0..*npos).  Returns
 * TLY_HELP after printing usage for --help/-h, TLY_ERR_USAGE after printing
 * the problem and usage to stderr.
 */
int tly_opts_parse(int argc, char **argv, const struct tly_option *opts,
                   const char *const *usage, int *npos);

/* Prints usage and the option table; to stdout for --help, else stderr. */
void tly_opts_usage(const char *const *usage, const struct tly_option *opts, int to_stdout);

/* Returns 0 when 'opts' is sorted by long name with no duplicates (tested). */
int tly_opts_check_table(const struct tly_option *opts);

#endif
