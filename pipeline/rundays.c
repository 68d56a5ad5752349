/*
 * rundays.c — the in-memory run_day aggregate of one ingest (see rundays.h).
 *
 * A bundle of ten million runs holds a few hundred thousand (account, day,
 * runnable) groups; the aggregate holds at most FLUSH_AT of them before it
 * is written out, so memory stays bounded whatever the bundle's size.  A
 * group may be flushed several times: the upsert adds to what is there.
 */
#include "rundays.h"
#include "alloc.h"
#include "error.h"
#include "strmap.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

#define FLUSH_AT 65536
#define ID_MAX 128

struct group {
    char *key;                  /* "account\x1fkind\x1fresource\x1fday" */
    unsigned char alen, klen, rlen;
    int late;                   /* the day is before the account's last close */
    int64_t day, runs, first_ts;
};

struct tly_rundays {
    struct tly_ledger *l;
    int64_t bundle_id;
    sqlite3_stmt *upsert, *upsert_late;
    struct tly_strmap index;    /* key -> groups[] */
    struct group *groups;
    size_t ngroups, cap;
    struct tly_strmap closes;   /* account_id -> closed_ends[] */
    char **close_ids;           /* the map's keys, owned */
    int64_t *closed_ends;
    size_t ncloses, ids_cap, ends_cap;
};

static const char upsert_sql[] =
    "INSERT INTO run_day(account_id, day, kind, resource_id, runs, first_ts)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,"
    " first_ts = min(first_ts, excluded.first_ts)";
static const char upsert_late_sql[] =
    "INSERT INTO late_run_day(account_id, day, kind, resource_id, runs, first_ts, bundle_id)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,"
    " first_ts = min(first_ts, excluded.first_ts)";

static int load_closes(struct tly_rundays *rd)
{
    sqlite3_stmt *q;
    int rc, err;

    if ((err = tly_ledger_prepare(rd->l, "SELECT account_id, closed_end FROM closes", &q)))
        return err;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char *id;
        if (tly_grow(&rd->close_ids, &rd->ids_cap, rd->ncloses + 1, sizeof *rd->close_ids) ||
            tly_grow(&rd->closed_ends, &rd->ends_cap, rd->ncloses + 1, sizeof *rd->closed_ends))
            break;
        if (!(id = tly_strdup((const char *)sqlite3_column_text(q, 0))))
            break;
        rd->close_ids[rd->ncloses] = id;
        rd->closed_ends[rd->ncloses] = sqlite3_column_int64(q, 1);
        if (tly_strmap_put(&rd->closes, id, (int)rd->ncloses)) {
            tly_free(id);
            break;
        }
        rd->ncloses++;
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (rc != SQLITE_DONE)
        return tly_ledger_error(rd->l, "reading closes");
    return TLY_OK;
}

int tly_rundays_create(struct tly_rundays **out, struct tly_ledger *l, int64_t bundle_id)
{
    struct tly_rundays *rd = tly_calloc(1, sizeof *rd);
    int err;

    *out = NULL;
    if (!rd)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    rd->l = l;
    rd->bundle_id = bundle_id;
    tly_strmap_init(&rd->index);
    tly_strmap_init(&rd->closes);
    if ((err = tly_ledger_prepare(l, upsert_sql, &rd->upsert)) ||
        (err = tly_ledger_prepare(l, upsert_late_sql, &rd->upsert_late)) ||
        (err = load_closes(rd))) {
        tly_rundays_destroy(rd);
        return err;
    }
    *out = rd;
    return TLY_OK;
}

void tly_rundays_clear(struct tly_rundays *rd)
{
    for (size_t i = 0; i < rd->ngroups; i++)
        tly_free(rd->groups[i].key);
    rd->ngroups = 0;
    tly_strmap_release(&rd->index);
}

void tly_rundays_destroy(struct tly_rundays *rd)
{
    if (!rd)
        return;
    tly_rundays_clear(rd);
    tly_free(rd->groups);
    sqlite3_finalize(rd->upsert);
    sqlite3_finalize(rd->upsert_late);
    for (size_t i = 0; i < rd->ncloses; i++)
        tly_free(rd->close_ids[i]);
    tly_free(rd->close_ids);
    tly_free(rd->closed_ends);
    tly_strmap_release(&rd->closes);
    tly_free(rd);
}

static int upsert(struct tly_rundays *rd, sqlite3_stmt *st, const struct group *g)
{
    sqlite3_bind_text(st, 1, g->key, g->alen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, g->day);
    sqlite3_bind_text(st, 3, g->key + g->alen + 1, g->klen, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, g->key + g->alen + g->klen + 2, g->rlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, g->runs);
    sqlite3_bind_int64(st, 6, g->first_ts);
    if (st == rd->upsert_late)
        sqlite3_bind_int64(st, 7, rd->bundle_id);
    return tly_ledger_step_done(rd->l, st);
}

int tly_rundays_flush(struct tly_rundays *rd)
{
    int err = TLY_OK;

    for (size_t i = 0; i < rd->ngroups && !err; i++) {
        const struct group *g = &rd->groups[i];
        if (!(err = upsert(rd, rd->upsert, g)) && g->late)
            err = upsert(rd, rd->upsert_late, g);
    }
    tly_rundays_clear(rd);
    return err;
}

static size_t make_key(char *key, const char *a, size_t alen, const char *k, size_t klen,
                       const char *r, size_t rlen, int64_t day)
{
    size_t n = 0;
    memcpy(key, a, alen);
    n += alen;
    key[n++] = '\x1f';
    memcpy(key + n, k, klen);
    n += klen;
    key[n++] = '\x1f';
    memcpy(key + n, r, rlen);
    n += rlen;
    key[n++] = '\x1f';
    return n + (size_t)snprintf(key + n, 24, "%lld", (long long)day);
}

static int new_group(struct tly_rundays *rd, const char *key, size_t n, size_t alen, size_t klen,
                     size_t rlen, int64_t day, int64_t ts)
{
    struct group *g;
    char *copy;

    if (tly_grow(&rd->groups, &rd->cap, rd->ngroups + 1, sizeof *rd->groups) ||
        !(copy = tly_strndup(key, n)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (tly_strmap_put(&rd->index, copy, (int)rd->ngroups)) {
        tly_free(copy);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    g = &rd->groups[rd->ngroups++];
    *g = (struct group){ copy, (unsigned char)alen, (unsigned char)klen, (unsigned char)rlen,
                         0, day, 1, ts };
    return TLY_OK;
}

int tly_rundays_add(struct tly_rundays *rd, const char *account_id, size_t alen,
                    const char *kind, size_t klen, const char *resource_id, size_t rlen, int64_t ts)
{
    char key[3 * ID_MAX + 32];
    int64_t day = tly_day_of(ts);
    size_t n;
    int idx, err;

    if (alen > ID_MAX || klen > ID_MAX || rlen > ID_MAX)
        return tly_error(TLY_ERR_INPUT, "run id longer than %d bytes", ID_MAX);
    n = make_key(key, account_id, alen, kind, klen, resource_id, rlen, day);
    if ((idx = tly_strmap_get(&rd->index, key)) >= 0) {
        struct group *g = &rd->groups[idx];
        g->runs++;
        if (ts < g->first_ts)
            g->first_ts = ts;
        return TLY_OK;
    }
    if (rd->ngroups >= FLUSH_AT && (err = tly_rundays_flush(rd)))
        return err;
    if ((err = new_group(rd, key, n, alen, klen, rlen, day, ts)))
        return err;
    /* closed_end is a UTC midnight: a day is late as a whole */
    key[alen] = '\0';
    if ((idx = tly_strmap_get(&rd->closes, key)) >= 0)
        rd->groups[rd->ngroups - 1].late = ts < rd->closed_ends[idx];
    return TLY_OK;
}
