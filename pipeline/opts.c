/*
 * opts.c — the option parser shared by every command.
 */
#include "opts.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

void tly_opts_usage(const char *const *usage, const struct tly_option *opts, int to_stdout)
{
    FILE *f = to_stdout ? stdout : stderr;
    /* another form of the command is an "or:", a note on the forms is not */
    for (int i = 0; usage[i]; i++)
        fprintf(f, "%s%s\n", i == 0 ? "usage: " : strncmp(usage[i], "tally ", 6) ? "       " : "   or: ",
                usage[i]);
    if (opts && opts[0].long_name) {
        fputc('\n', f);
        for (const struct tly_option *o = opts; o->long_name; o++) {
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", o->long_name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
            fprintf(f, "    %-24s %s\n", left, o->help);
        }
    }
    fputs("    --help                   show this help\n", f);
}

static const struct tly_option *find(const struct tly_option *opts, const char *name, size_t n)
{
    for (const struct tly_option *o = opts; o && o->long_name; o++)
        if (strlen(o->long_name) == n && !strncmp(o->long_name, name, n))
            return o;
    return NULL;
}

int tly_opts_parse(int argc, char **argv, const struct tly_option *opts,
                   const char *const *usage, int *npos)
{
    int pos = 0, only_pos = 0;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        const struct tly_option *o;
        const char *eq, *value = NULL;
        size_t n;

        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[pos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tly_opts_usage(usage, opts, 1);
            return TLY_HELP;
        }
        if (a[1] != '-')
            goto unknown;
        eq = strchr(a + 2, '=');
        n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        o = find(opts, a + 2, n);
        if (!o)
            goto unknown;
        if (o->kind == TLY_OPT_FLAG) {
            if (eq) {
                tly_error(TLY_ERR_USAGE, "option '--%s' takes no value", o->long_name);
                goto bad;
            }
            *(int *)o->dest = 1;
            continue;
        }
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            tly_error(TLY_ERR_USAGE, "option '--%s' needs a value", o->long_name);
            goto bad;
        }
        *(const char **)o->dest = value;
        continue;
unknown:
        tly_error(TLY_ERR_USAGE, "unknown option '%s'", a);
        goto bad;
    }
    *npos = pos;
    return TLY_OK;
bad:
    tly_opts_usage(usage, opts, 0);
    return TLY_ERR_USAGE;
}

int tly_opts_check_table(const struct tly_option *opts)
{
    for (const struct tly_option *o = opts; o->long_name; o++)
        if (o[1].long_name && strcmp(o->long_name, o[1].long_name) >= 0)
            return -1;
    return 0;
}
