/*
 * rates.c — loading the rate card (spec inputs.md "rates.csv"; rates.h).
 *
 * The card is small (one row per hardware and price period), so it is read
 * whole into memory, checked whole (rows, then overlaps per hardware after
 * sorting by effective_from), and only then written, inside one
 * transaction.  Decision where the spec is silent: a card with no rows is
 * refused too (it would unprice everything, and is far more likely a broken
 * file than an intent).
 *
 * Cards are kept by version (ledger.c migration 15): a closed cycle's time
 * keeps the prices of the versions up to its close (semantics §10).  A card
 * equal to the one in force (but for line numbers) is no new version; one
 * that no run has priced with yet (state 'card_used') is replaced, since
 * nothing was ever charged at it.
 */
#include "rates.h"
#include "alloc.h"
#include "csvread.h"
#include "error.h"
#include "fields.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { H_HARDWARE, H_CATEGORY, H_DESCRIPTION, H_VCPU, H_MEMORY, H_PRICE, H_FROM, H_TO, H_N };

/*
 * Bound on what is read from outside: a card is a row per hardware and
 * price period, hundreds of rows; each costs about a kilobyte once loaded
 * and priced with (a million-row card took 1.2 GB).  A longer file is far
 * more likely a wrong file than a card, and is refused.
 */
#define CARD_MAX_ROWS 100000

static const char *const columns[H_N] = {
    "hardware", "category", "description", "vcpu", "memory_gb", "credits_per_hour",
    "effective_from", "effective_to",
};
static const int required[H_N] = { 1, 1, 0, 0, 0, 1, 1, 0 };

/* Charged categories only: agents, workflows and tools are never priced. */
static const char *const rate_categories[] = { "model", "guardrail", "script", "ocr", "browser",
                                               NULL };

struct rate {
    char *text[H_N];        /* hardware, category, description, vcpu, memory_gb as written */
    int64_t price, from, to;
    int has_to;
    long line;
};

struct card {
    const char *path;
    int fd;
    struct rate *v;
    size_t n, cap;
};

static ssize_t fd_read(void *ctx, void *buf, size_t n)
{
    struct card *c = ctx;
    ssize_t got;

    do
        got = read(c->fd, buf, n);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        tly_error(TLY_ERR_IO, "cannot read '%s': %s", c->path, strerror(errno));
    return got;
}

static void card_release(struct card *c)
{
    for (size_t i = 0; i < c->n; i++)
        for (int k = 0; k < H_N; k++)
            tly_free(c->v[i].text[k]);
    tly_free(c->v);
    if (c->fd >= 0)
        close(c->fd);
}

/* One row's column rules; -1 fine, else the bad column with *why. */
static int check_rate(const struct tly_csv_row *row, struct rate *r, const char **why)
{
    int64_t dummy;
    int idx;

    for (int k = 0; k < H_N; k++) {
        const char *s = row->val[k];
        size_t n = row->len[k];
        if (!s) {
            if (required[k]) {
                *why = "is empty";
                return k;
            }
            continue;
        }
        switch (k) {
        case H_HARDWARE:
            if (tly_field_id(s, n, 0, why))
                return k;
            break;
        case H_CATEGORY:
            if (tly_field_enum(s, n, rate_categories, &idx, why))
                return k;
            break;
        case H_DESCRIPTION:
            if (tly_field_text(s, n, why))
                return k;
            break;
        case H_VCPU:
        case H_MEMORY:
            if (tly_field_micro(s, n, TLY_AMOUNT_MAX, &dummy, why))
                return k;
            if (dummy < 0) {
                *why = "is negative";
                return k;
            }
            break;
        case H_PRICE:
            if (tly_field_micro(s, n, TLY_RATE_MAX, &r->price, why))
                return k;
            if (r->price < 0) {
                *why = "is negative";
                return k;
            }
            break;
        case H_FROM:
            if (tly_parse_ts(s, n, &r->from, why))
                return k;
            break;
        case H_TO:
            if (tly_parse_ts(s, n, &r->to, why))
                return k;
            r->has_to = 1;
            break;
        }
    }
    if (r->has_to && r->to <= r->from) {
        *why = "is not after effective_from";
        return H_TO;
    }
    return -1;
}

static int keep_rate(struct card *c, const struct tly_csv_row *row, const struct rate *r)
{
    struct rate *d;

    if (tly_grow(&c->v, &c->cap, c->n + 1, sizeof *c->v))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    d = &c->v[c->n++];
    *d = *r;
    d->line = row->line;
    for (int k = 0; k < H_N; k++) {
        d->text[k] = NULL;
        if (k <= H_MEMORY && row->val[k] && !(d->text[k] = tly_strndup(row->val[k], row->len[k])))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    return TLY_OK;
}

/* Reads and checks every row; the first problem refuses the card. */
static int read_card(struct card *c)
{
    struct tly_csv *r = NULL;
    struct tly_csv_row row;
    int ev, err;

    if ((err = tly_csv_open(&r, fd_read, c, 65536)))
        return err;
    ev = tly_csv_header(r, columns, H_N, &row);
    if (ev == TLY_CSV_ERROR) {
        err = TLY_ERR_IO;
        goto out;
    }
    if (ev == TLY_CSV_QUOTE_ERROR) {
        err = tly_error(TLY_ERR_INPUT, "'%s' line 1: quote_error: in the header", c->path);
        goto out;
    }
    if (ev == TLY_CSV_ROW && tly_csv_header_has_cr(&row)) {
        err = tly_error(TLY_ERR_INPUT, "'%s' line 1: missing_column: the header holds a CR"
                        " (line ends must be CRLF or LF)", c->path);
        goto out;
    }
    for (int k = 0; k < H_N; k++) {
        if (required[k] && !tly_csv_has_column(r, k)) {
            err = tly_error(TLY_ERR_INPUT, "'%s' line 1: missing_column: %s", c->path, columns[k]);
            goto out;
        }
    }
    /* inputs.md "CSV rules (all files)": an unknown column is ignored with one warning */
    tly_csv_warn_unknown_columns(r, c->path, NULL);
    while ((ev = tly_csv_next(r, &row)) == TLY_CSV_ROW) {
        struct rate rate = { { NULL }, 0, 0, 0, 0, 0 };
        const char *why = NULL;
        int bad;
        if (row.reject != TLY_CSV_OK) {
            err = tly_error(TLY_ERR_INPUT, "'%s' line %ld: %s", c->path, row.line,
                            tly_csv_reject_code(row.reject));
            goto out;
        }
        if ((bad = check_rate(&row, &rate, &why)) >= 0) {
            err = tly_error(TLY_ERR_INPUT, "'%s' line %ld: bad_value: %s %s", c->path, row.line,
                            columns[bad], why);
            goto out;
        }
        if (c->n == CARD_MAX_ROWS) {
            err = tly_error(TLY_ERR_INPUT, "'%s' line %ld: the rate card has more than %d rows",
                            c->path, row.line, CARD_MAX_ROWS);
            goto out;
        }
        if ((err = keep_rate(c, &row, &rate)))
            goto out;
    }
    if (ev == TLY_CSV_QUOTE_ERROR)
        err = tly_error(TLY_ERR_INPUT, "'%s' line %ld: quote_error: unterminated quote or stray '\"'",
                        c->path, row.line);
    else if (ev == TLY_CSV_ERROR)
        err = TLY_ERR_IO;
    else if (c->n == 0)
        err = tly_error(TLY_ERR_INPUT, "'%s': the rate card has no rows", c->path);
out:
    tly_csv_close(r);
    return err;
}

static int by_hardware_from(const void *x, const void *y)
{
    const struct rate *a = x, *b = y;
    int c = strcmp(a->text[H_HARDWARE], b->text[H_HARDWARE]);

    if (c)
        return c;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* inputs.md: two rows of one hardware whose periods overlap refuse the card. */
static int check_overlaps(struct card *c, long *nhardware)
{
    *nhardware = 0;
    qsort(c->v, c->n, sizeof *c->v, by_hardware_from);
    for (size_t i = 0; i < c->n; i++) {
        const struct rate *a = i ? &c->v[i - 1] : NULL, *b = &c->v[i];
        if (!a || strcmp(a->text[H_HARDWARE], b->text[H_HARDWARE])) {
            ++*nhardware;
            continue;
        }
        if (!a->has_to || b->from < a->to) {
            const struct rate *later = a->line > b->line ? a : b, *other = later == a ? b : a;
            return tly_error(TLY_ERR_INPUT, "'%s' line %ld: '%s' overlaps the period of line %ld",
                             c->path, later->line, b->text[H_HARDWARE], other->line);
        }
    }
    return TLY_OK;
}

/*
 * The card just stored as version 'next' becomes the one in force: dropped
 * when it equals version next - 1, which stays; else written over that
 * version when no run has used it ('used' is the last version one did).
 */
static const char *const settle_sql[] = {
    "DELETE FROM rates WHERE card = ?1 AND NOT EXISTS("
    "  SELECT hardware, category, description, vcpu, memory_gb, credits_per_hour, effective_from,"
    "    effective_to FROM rates WHERE card = ?1"
    "  EXCEPT SELECT hardware, category, description, vcpu, memory_gb, credits_per_hour,"
    "    effective_from, effective_to FROM rates WHERE card = ?1 - 1)"
    " AND NOT EXISTS("
    "  SELECT hardware, category, description, vcpu, memory_gb, credits_per_hour, effective_from,"
    "    effective_to FROM rates WHERE card = ?1 - 1"
    "  EXCEPT SELECT hardware, category, description, vcpu, memory_gb, credits_per_hour,"
    "    effective_from, effective_to FROM rates WHERE card = ?1)",
    "DELETE FROM rates WHERE card = ?1 - 1 AND ?2 < ?1 - 1"
    " AND EXISTS(SELECT 1 FROM rates WHERE card = ?1)",
    "UPDATE rates SET card = ?1 - 1 WHERE card = ?1 AND ?1 > 1"
    " AND NOT EXISTS(SELECT 1 FROM rates WHERE card = ?1 - 1)",
};

static int settle_version(struct tly_ledger *l, int64_t next)
{
    int64_t used = 0;
    int found, err;

    if ((err = tly_ledger_get_int(l, "card_used", &used, &found)))
        return err;
    for (size_t i = 0; i < sizeof settle_sql / sizeof settle_sql[0]; i++) {
        sqlite3_stmt *q;
        if ((err = tly_ledger_prepare(l, settle_sql[i], &q)))
            return err;
        sqlite3_bind_int64(q, 1, next);
        if (sqlite3_bind_parameter_count(q) >= 2)
            sqlite3_bind_int64(q, 2, used);
        err = tly_ledger_step_done(l, q);
        sqlite3_finalize(q);
        if (err)
            return err;
    }
    return TLY_OK;
}

static int store_card(struct tly_ledger *l, const struct card *c)
{
    sqlite3_stmt *q = NULL;
    int64_t next = 1;
    int err, rc;

    if ((err = tly_ledger_begin(l)))
        return err;
    if ((err = tly_ledger_prepare(l, "SELECT COALESCE(MAX(card), 0) + 1 FROM rates", &q)))
        goto fail;
    if ((rc = sqlite3_step(q)) == SQLITE_ROW)
        next = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = NULL;
    if (rc != SQLITE_ROW) {
        err = tly_ledger_error(l, "reading the rate card");
        goto fail;
    }
    if ((err = tly_ledger_prepare(l, "INSERT INTO rates(hardware, category, description, vcpu,"
                                     " memory_gb, credits_per_hour, effective_from, effective_to,"
                                     " line, card) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", &q)))
        goto fail;
    for (size_t i = 0; i < c->n; i++) {
        const struct rate *r = &c->v[i];
        for (int k = 0; k <= H_MEMORY; k++)
            tly_bind_text_or_null(q, k + 1, r->text[k], r->text[k] ? (int)strlen(r->text[k]) : 0);
        sqlite3_bind_int64(q, 6, r->price);
        sqlite3_bind_int64(q, 7, r->from);
        if (r->has_to)
            sqlite3_bind_int64(q, 8, r->to);
        else
            sqlite3_bind_null(q, 8);
        sqlite3_bind_int64(q, 9, r->line);
        sqlite3_bind_int64(q, 10, next);
        if ((err = tly_ledger_step_done(l, q)))
            goto fail;
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((err = settle_version(l, next)))
        goto fail;
    return tly_ledger_commit(l);
fail:
    sqlite3_finalize(q);
    tly_ledger_rollback(l);
    return err;
}

int tly_rates_load_stats(struct tly_ledger *l, const char *path, struct tly_rates_stats *st)
{
    struct card c = { path, -1, NULL, 0, 0 };
    long nhw = 0;
    int err;

    c.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c.fd < 0)
        return tly_error(TLY_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (!(err = read_card(&c)) && !(err = check_overlaps(&c, &nhw)))
        err = store_card(l, &c);
    if (!err && st) {
        st->rows = (long)c.n;
        st->hardware = nhw;
    }
    card_release(&c);
    return err;
}

int tly_rates_load(struct tly_ledger *l, const char *path)
{
    return tly_rates_load_stats(l, path, NULL);
}
