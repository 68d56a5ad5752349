/*
 * report.c — the report stage: WINDOW options, and every file of an as-of
 * from the engine's result tables (outputs.md "Files under --out DIR").
 */
#include "report.h"
#include "error.h"
#include "rfiles.h"
#include "timeutil.h"

#include <string.h>

/* ------------------------------------------------------------------------
 * WINDOW = --window 24h|7d|30d|90d|cycle | --from DATE --to DATE
 * ------------------------------------------------------------------------ */

static int parse_day(const char *option, const char *text, int64_t *day)
{
    const char *why = "";
    if (tly_parse_date(text, strlen(text), day, &why))
        return tly_error(TLY_ERR_USAGE, "%s: bad date '%s': %s", option, text, why);
    return TLY_OK;
}

int tly_report_parse_window(const char *window, const char *from, const char *to,
                            struct tly_report_opts *o)
{
    static const char *const windows[] = { "24h", "7d", "30d", "90d", "cycle" };
    int err;

    o->window = NULL;
    o->custom = 0;
    if (window && (from || to))
        return tly_error(TLY_ERR_USAGE, "--window cannot be combined with --from/--to");
    if (!from != !to)
        return tly_error(TLY_ERR_USAGE, "--from and --to go together");
    if (from) {
        if ((err = parse_day("--from", from, &o->from_day)) ||
            (err = parse_day("--to", to, &o->to_day)))
            return err;
        if (o->from_day > o->to_day)
            return tly_error(TLY_ERR_USAGE, "--from '%s' is after --to '%s'", from, to);
        if (o->to_day - o->from_day >= TLY_REPORT_MAX_DAYS)
            return tly_error(TLY_ERR_USAGE, "a window of more than %d dates", TLY_REPORT_MAX_DAYS);
        o->custom = 1;
        return TLY_OK;
    }
    if (!window)
        return TLY_OK;              /* semantics §7: the current cycle */
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++)
        if (!strcmp(window, windows[i])) {
            o->window = windows[i];
            return TLY_OK;
        }
    return tly_error(TLY_ERR_USAGE, "unknown window '%s' (24h, 7d, 30d, 90d or cycle)", window);
}

/* ------------------------------------------------------------------------
 * The files
 * ------------------------------------------------------------------------ */

static int write_all(struct tly_ledger *l, const struct tly_report_opts *o, const char *dir,
                     struct tly_report_stats *st)
{
    struct tly_rreader *r = NULL;
    struct tly_account_writer *w = NULL;
    struct tly_finance *f = NULL;
    struct tly_rmodel m = { 0 };
    int err, loaded;

    if ((err = tly_rreader_open(l, o, &r)) || (err = tly_account_writer_open(l, dir, o->scratch_dir, &w)) ||
        (err = tly_finance_open(l, o, dir, &f)))
        goto done;
    for (;;) {
        if ((err = tly_rmodel_next(r, &m, &loaded)) || !loaded)
            break;
        if ((err = tly_account_write(w, &m, &st->files)))
            break;
        tly_finance_account(f, &m);
        st->accounts++;
    }
    if (!err)
        err = tly_account_writer_finish(w);
    if (!err && o->account && st->accounts == 0)
        err = tly_error(TLY_ERR_USAGE, "no account '%s' in the ledger", o->account);
    if (!err) {
        err = tly_finance_close(f, &st->files);
        f = NULL;
    }
done:
    tly_finance_abort(f);
    tly_account_writer_free(w);
    tly_rmodel_release(&m);
    tly_rreader_free(r);
    return err;
}

int tly_report_write(struct tly_ledger *l, const struct tly_report_opts *o, const char *dir,
                     struct tly_report_stats *st)
{
    /* one read transaction: every file describes the same ledger state */
    int own = sqlite3_get_autocommit(l->db), err;

    st->accounts = st->files = 0;
    if (own && (err = tly_ledger_exec(l, "BEGIN")))
        return err;
    err = write_all(l, o, dir, st);
    if (own)
        tly_ledger_rollback(l);     /* read only: nothing to keep */
    return err;
}
