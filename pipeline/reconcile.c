/*
 * reconcile.c — the reconcile stage's driver: per account, load, replay, write.
 *
 * For each account: its settings, the frozen state of its last closed cycle
 * (wallet snapshot, close marks), its events, then
 *
 *   1. closed time is replayed for the lifecycle only (sim_replay_closed),
 *      metering deployments with late events so what they add can be posted
 *      as late charges (semantics §8);
 *   2. open time is simulated from the frozen opening (sim_run);
 *   3. overruns are metered from the stops (enforce_overruns);
 *   4. the results are written; rows of cycles that closed in this run are
 *      written frozen.
 */
#include "reconcile.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "sim.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ statements */

enum q {
    Q_ACCOUNTS, Q_ACCOUNT, Q_CLOSE, Q_SNAPSHOT, Q_DEVS, Q_CREDITS, Q_RUNS, Q_RUN_DAYS, Q_LATE_RUNS,
    Q_FIRST_RUN, Q_FROZEN_STOPS, Q_FROZEN_USAGE, Q_FROZEN_LISTED, Q_FREE_EXPIRED, Q_COUNT_RUNS, Q_LAST_RUN_DAY,
    Q_RUN_NAME, Q_DAY_RUNS, Q_DAY_CHARGED, Q_FIRST_CYCLE, Q_FROZEN_DAY_ROWS, Q_CLOSED_STMT,
    Q_CLOSED_CROSSINGS, Q_HAS_USAGE, Q_CLOSED_CARDS, Q_OPEN_USAGE, W_STATEMENT, W_USAGE,
    W_USAGE_DELETE, W_DISC, W_ACTION,
    W_CROSSING, W_ITEM, W_ITEMS_CLEAR, W_DEP_STATE, W_RUNNABLE_STATE, W_ACCOUNT_STATE, W_SNAP_CLEAR,
    W_SNAP, W_CLOSE, W_LOT, NQ
};

static const char *const sql[NQ] = {
    /* run_day has every account of runs, in a few rows instead of one per run */
    [Q_ACCOUNTS] = "SELECT account_id FROM accounts UNION SELECT account_id FROM credits"
                   " UNION SELECT account_id FROM deployments UNION SELECT account_id FROM run_day"
                   " ORDER BY 1",
    [Q_ACCOUNT] = "SELECT name, edition, admin_email, cycle_anchor, negative_limit, low_threshold"
                  " FROM accounts WHERE account_id = ?1",
    [Q_CLOSE] = "SELECT closed_end, credits_mark, deployments_mark, runs_mark FROM closes"
                " WHERE account_id = ?1",
    [Q_SNAPSHOT] = "SELECT pool, txn_id, ts, expires_at, type, remaining FROM wallet_snapshot"
                   " WHERE account_id = ?1 ORDER BY pool, txn_id",
    [Q_DEVS] = "SELECT ts, rowid, event_id, category, action, resource_id, resource_name, owner,"
               " deployment_id, deployment_name, deployment_type, hardware, units, replicas,"
               " model_type, language, language_version, endpoint FROM deployments"
               " WHERE account_id = ?1 AND ts < ?2 ORDER BY ts, event_id",
    [Q_CREDITS] = "SELECT ts, txn_id, pool, type, amount, expires_at FROM credits"
                  " WHERE account_id = ?1 AND ts < ?2 AND (ts >= ?3 OR rowid > ?4)"
                  " ORDER BY ts, txn_id",
    /* runs are read one day at a time, the days with runs from run_day (migration 12) */
    [Q_RUNS] = "SELECT ts, event_id, kind, resource_id FROM runs"
               " WHERE day = ?4 AND account_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts, event_id",
    [Q_RUN_DAYS] = "SELECT day, MIN(first_ts) FROM run_day WHERE account_id = ?1 AND day >= ?2"
                   " AND day <= ?3 GROUP BY day ORDER BY day",
    /* late runs summed at ingest (rundays.h), by bundles loaded since the close */
    [Q_LATE_RUNS] = "SELECT MIN(first_ts), kind, resource_id, SUM(runs) FROM late_run_day"
                    " WHERE account_id = ?1 AND bundle_id > ?2 GROUP BY day, kind, resource_id"
                    " ORDER BY day, kind, resource_id",
    [Q_FIRST_RUN] = "SELECT MIN(first_ts) FROM run_day WHERE account_id = ?1 AND first_ts < ?2",
    [Q_FROZEN_STOPS] = "SELECT category, deployment_id, stop_at FROM actions"
                       " WHERE account_id = ?1 AND frozen = 1 ORDER BY stop_at, category, deployment_id",
    [Q_FROZEN_USAGE] = "SELECT COALESCE(SUM(credits), 0), COALESCE(SUM(seconds), 0) FROM usage_day"
                       " WHERE account_id = ?1 AND frozen = 1 AND day = ?2 AND category = ?3"
                       " AND deployment_id = ?4",
    [Q_FROZEN_LISTED] = "SELECT COALESCE(SUM(credits), 0), 0 FROM discrepancies"
                        " WHERE account_id = ?1 AND frozen = 1 AND kind = 'not_chargeable'"
                        " AND ts >= ?2 * 86400 AND ts < (?2 + 1) * 86400 AND category = ?3"
                        " AND deployment_id = ?4",
    [Q_FREE_EXPIRED] = "SELECT EXISTS(SELECT 1 FROM credits WHERE account_id = ?1 AND pool = ?2"
                       "   AND type = 'free' AND ts < ?3 AND expires_at <= ?3)"
                       " AND NOT EXISTS(SELECT 1 FROM credits WHERE account_id = ?1 AND pool = ?2"
                       "   AND type IN ('grant', 'topup') AND ts < ?3"
                       "   AND (expires_at IS NULL OR expires_at > ?3))",
    /* whole days from run_day, and the day of ?2 (= day ?3) up to it */
    [Q_COUNT_RUNS] = "SELECT COALESCE((SELECT SUM(runs) FROM run_day WHERE account_id = ?1 AND day < ?3), 0)"
                     " + (SELECT COUNT(*) FROM runs WHERE day = ?3 AND account_id = ?1 AND ts < ?2),"
                     " COALESCE((SELECT MIN(first_ts) FROM run_day WHERE account_id = ?1 AND day < ?3),"
                     "  (SELECT MIN(ts) FROM runs WHERE day = ?3 AND account_id = ?1 AND ts < ?2))",
    [Q_LAST_RUN_DAY] = "SELECT MAX(day) FROM usage_day WHERE account_id = ?1 AND category = ?2"
                       " AND resource_id = ?3 AND runs > 0",
    /* the runnable's days with runs, latest first (?5 = the day of ?4 - 1), until one names it */
    [Q_RUN_NAME] = "SELECT name FROM (SELECT (SELECT r.resource_name FROM runs r WHERE r.day = d.day"
                   "   AND r.account_id = ?1 AND r.ts < ?4 AND r.kind = ?2 AND r.resource_id = ?3"
                   "   AND r.resource_name IS NOT NULL ORDER BY r.ts DESC, r.event_id DESC LIMIT 1) AS name"
                   "  FROM run_day d WHERE d.account_id = ?1 AND d.kind = ?2 AND d.resource_id = ?3"
                   "  AND d.day <= ?5 ORDER BY d.day DESC) WHERE name IS NOT NULL LIMIT 1",
    [Q_DAY_RUNS] = "SELECT kind, resource_id, runs, first_ts FROM run_day"
                    " WHERE account_id = ?1 AND day = ?2",
    [Q_DAY_CHARGED] = "SELECT COALESCE(SUM(runs), 0) FROM run_day"
                      " WHERE account_id = ?1 AND day = ?2 AND kind = ?3",
    [Q_FIRST_CYCLE] = "SELECT MIN(cycle_start), card, cycle_end FROM statements"
                      " WHERE account_id = ?1 AND frozen = 1",
    [Q_FROZEN_DAY_ROWS] = "SELECT DISTINCT kind, category, COALESCE(deployment_id, resource_id), ts"
                          " FROM discrepancies WHERE account_id = ?1 AND frozen = 1"
                          " AND kind IN ('unpriced', 'not_chargeable')",
    /* the last closed cycle (days), when the as-of is its end: closed_current() */
    [Q_CLOSED_STMT] = "SELECT pool, cycle_start, opening, granted, used FROM statements"
                      " WHERE account_id = ?1 AND frozen = 1 AND cycle_end = ?2",
    [Q_CLOSED_CROSSINGS] = "SELECT pool, threshold FROM crossings"
                           " WHERE account_id = ?1 AND cycle_start = ?2",
    [Q_HAS_USAGE] = "SELECT EXISTS(SELECT 1 FROM usage_day WHERE account_id = ?1 AND category = ?2"
                    " AND deployment_id = ?3)",
    [Q_CLOSED_CARDS] = "SELECT cycle_start, cycle_end, card FROM statements"
                       " WHERE account_id = ?1 AND pool = 'credits' AND frozen = 1 ORDER BY cycle_start",
    /* in usage_order()'s order: sync_usage() merges the two */
    [Q_OPEN_USAGE] = "SELECT rowid, day, category, resource_id, deployment_id, late, credits, seconds,"
                     " runs FROM usage_day WHERE account_id = ?1 AND frozen = 0"
                     " ORDER BY day, category, resource_id, deployment_id, late, credits, seconds, runs",
    [W_STATEMENT] = "INSERT OR REPLACE INTO statements(account_id, pool, cycle_start, cycle_end, state,"
                    " opening, granted, used, used_models, used_finetune, used_guardrails,"
                    " used_scripts, used_ocr, used_browser, used_runs, adjusted, expired, late,"
                    " closing, carried_to_next, frozen, card)"
                    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)",
    [W_USAGE] = "INSERT INTO usage_day(account_id, day, category, resource_id, deployment_id,"
                " credits, seconds, runs, late, frozen) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [W_USAGE_DELETE] = "DELETE FROM usage_day WHERE rowid = ?1",
    [W_DISC] = "INSERT INTO discrepancies(account_id, kind, ts, category, resource_id,"
               " deployment_id, credits, detail, frozen) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [W_ACTION] = "INSERT INTO actions(account_id, category, resource_id, deployment_id, stop_at,"
                 " message, frozen) VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [W_CROSSING] = "INSERT OR REPLACE INTO crossings(account_id, pool, cycle_start, threshold, ts, frozen)"
                   " VALUES(?1,?2,?3,?4,?5,?6)",
    /* ?8, ?9: the cycle of an item raised once per cycle (sim_cycle_item), else NULL */
    [W_ITEM] = "INSERT OR IGNORE INTO items(account_id, item, pool, threshold, ts, key, detail)"
               " SELECT ?1,?2,?3,?4,?5,?6,?7 WHERE ?8 IS NULL OR NOT EXISTS(SELECT 1 FROM items"
               "  WHERE account_id = ?1 AND item = ?2 AND pool IS ?3 AND threshold IS ?4"
               "  AND ts >= ?8 AND ts < ?9)",
    [W_ITEMS_CLEAR] = "DELETE FROM items WHERE account_id = ?1 AND digest_id IS NULL AND ts >= ?2",
    [W_DEP_STATE] = "INSERT OR REPLACE INTO deployment_state(account_id, category, resource_id,"
                    " deployment_id, resource_name, deployment_name, deployment_type, owner,"
                    " model_type, language, language_version, endpoint, hardware, units, replicas,"
                    " status, last_deployed, last_updated, last_ts)"
                    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
    [W_RUNNABLE_STATE] = "INSERT OR REPLACE INTO runnable_state(account_id, kind, resource_id, name,"
                         " owner, status, last_active) VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [W_ACCOUNT_STATE] = "INSERT OR REPLACE INTO account_state(account_id, name, edition, admin_email,"
                        " as_of, cycle_start, cycle_end, runs_used, runs_total, runs_remaining,"
                        " credits_used, credits_total, credits_remaining, banner_credits,"
                        " banner_runs, stop_at)"
                        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
    [W_SNAP_CLEAR] = "DELETE FROM wallet_snapshot WHERE account_id = ?1",
    [W_SNAP] = "INSERT INTO wallet_snapshot(account_id, pool, txn_id, ts, expires_at, type, remaining)"
               " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [W_LOT] = "INSERT INTO lots(account_id, pool, txn_id, ts, expires_at, type, remaining)"
              " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [W_CLOSE] = "INSERT OR REPLACE INTO closes(account_id, closed_end, credits_mark,"
                " deployments_mark, runs_mark) VALUES(?1,?2,?3,?4,?5)",
};

struct disc {
    const char *kind;
    int64_t ts, credits, post_ts;
    int has_credits;
    char *category, *resource_id, *deployment_id, *detail;
};

/* An open usage_day row as sync_usage() compares it. */
struct usage_key {
    int64_t day;
    const char *category, *resource_id, *deployment_id;
    int late;
    int64_t credits, seconds, runs;
    size_t row;                        /* in sim.rows */
};

struct crossing {
    enum pool pool;
    int threshold;
    int64_t cycle_start, ts;
};

/* The writer side of a sim (sim.h's struct sim_out). */
struct sim_out {
    struct tly_ledger *l;
    sqlite3_stmt *q[NQ];
    const struct tly_reconcile_opts *o;
    const struct tly_cards *cards;     /* every version; a closed cycle notes the one in force */
    int64_t marks[3];                  /* max rowid of credits, deployments; max bundle id */
    struct disc *discs;
    size_t ndiscs, discs_cap;
    struct crossing *crossings;
    size_t ncrossings, crossings_cap;
    struct usage_key *usage;           /* sync_usage's buffers, kept from account to account */
    size_t usage_cap;
    int64_t *stale;
    size_t stale_cap;
    int err;
};

static const char *const pool_names[NPOOL] = { "credits", "runs" };

/* A pool column of the ledger ("credits" or "runs") as the enum. */
static enum pool pool_of(const unsigned char *name)
{
    return strcmp((const char *)name, pool_names[POOL_RUNS]) ? POOL_CREDITS : POOL_RUNS;
}

static void reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? tly_strdup((const char *)t) : NULL;
}

static int ledger_err(struct sim_out *w, const char *what)
{
    return tly_ledger_error(w->l, what);
}

int sim_ledger_error(struct sim *s, const char *what)
{
    return ledger_err(s->out, what);
}

/* -------------------------------------------------------- sim callbacks */

int sim_discrepancy(struct sim *s, const char *kind, int64_t ts, const char *category,
                    const char *resource_id, const char *deployment_id, int has_credits,
                    int64_t credits, const char *detail, int64_t post_ts)
{
    struct sim_out *w = s->out;
    struct disc *d;

    if (tly_grow(&w->discs, &w->discs_cap, w->ndiscs + 1, sizeof *w->discs))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    d = &w->discs[w->ndiscs];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->ts = ts;
    d->has_credits = has_credits;
    d->credits = credits;
    d->post_ts = post_ts;
    d->category = category ? tly_strdup(category) : NULL;
    d->resource_id = resource_id ? tly_strdup(resource_id) : NULL;
    d->deployment_id = deployment_id ? tly_strdup(deployment_id) : NULL;
    d->detail = detail ? tly_strdup(detail) : NULL;
    w->ndiscs++;
    if ((category && !d->category) || (resource_id && !d->resource_id) ||
        (deployment_id && !d->deployment_id) || (detail && !d->detail))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    return TLY_OK;
}

int sim_action(struct sim *s, const struct dep *d, int64_t at)
{
    (void)s;
    (void)d;
    (void)at;
    return TLY_OK;                      /* actions are written from s->stops */
}

int sim_crossing(struct sim *s, enum pool pool, int threshold, int64_t ts)
{
    struct sim_out *w = s->out;
    if (tly_grow(&w->crossings, &w->crossings_cap, w->ncrossings + 1, sizeof *w->crossings))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    w->crossings[w->ncrossings++] = (struct crossing){ pool, threshold, s->stmt[pool].cycle_start, ts };
    return TLY_OK;
}

static int write_item(struct sim *s, const char *item, const char *pool, int threshold, int64_t ts,
                      const char *key, void *detail, const struct statement *cycle)
{
    sqlite3_stmt *st = s->out->q[W_ITEM];
    char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    int err;

    json_decref(detail);
    if (!text)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item, -1, SQLITE_STATIC);
    tly_bind_text_or_null(st, 3, pool, pool ? -1 : 0);
    if (threshold)
        sqlite3_bind_int(st, 4, threshold);
    sqlite3_bind_int64(st, 5, ts);
    sqlite3_bind_text(st, 6, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, text, -1, SQLITE_STATIC);
    if (cycle) {
        sqlite3_bind_int64(st, 8, cycle->cycle_start);
        sqlite3_bind_int64(st, 9, cycle->cycle_end);
    }
    err = tly_ledger_step_done(s->out->l, st);
    sqlite3_clear_bindings(st);
    free(text);
    return err;
}

int sim_item(struct sim *s, const char *item, const char *pool, int threshold, int64_t ts,
             const char *key, void *detail)
{
    return write_item(s, item, pool, threshold, ts, key, detail, NULL);
}

/*
 * An item raised at most once per cycle (a threshold, a negative balance)
 * is keyed by its cycle's start, and is not raised again when an item of
 * its kind already falls inside the cycle: a cycle_anchor changed before
 * any close reshapes the open cycles, and the crossing an admin was already
 * e-mailed about would otherwise come again under the new cycle's key
 * (§5: "delivered exactly once across all runs").
 */
int sim_cycle_item(struct sim *s, const char *item, enum pool pool, int threshold, int64_t ts,
                   const char *key, void *detail)
{
    return write_item(s, item, pool_names[pool], threshold, ts, key, detail, &s->stmt[pool]);
}

/* Writes the wallet's lots (and debt as the pseudo-lot '') with statement 'st'. */
static int write_lots(struct sim *s, sqlite3_stmt *st, int keep_empty)
{
    struct sim_out *w = s->out;
    int err;

    for (int p = 0; p < NPOOL; p++) {
        const struct tly_wallet *wl = &s->wallet[p];
        for (size_t i = 0; i <= wl->nlots; i++) {
            /* the last pseudo-lot '' carries the debt as a negative remaining */
            const struct tly_lot *lot = i < wl->nlots ? &wl->lots[i] : NULL;
            if (lot ? lot->remaining <= 0 && !keep_empty : wl->debt == 0)
                continue;
            sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, pool_names[p], -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, lot ? lot->txn_id : "", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, lot ? lot->ts : 0);
            if (lot && lot->expires_at != TLY_NEVER)
                sqlite3_bind_int64(st, 5, lot->expires_at);
            else
                sqlite3_bind_null(st, 5);
            sqlite3_bind_text(st, 6, lot ? lot->type : "debt", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, lot ? lot->remaining : -wl->debt);
            if ((err = tly_ledger_step_done(w->l, st)))
                return err;
        }
    }
    return TLY_OK;
}

int sim_snapshot(struct sim *s, int64_t closed_end)
{
    int err;
    (void)closed_end;
    sqlite3_bind_text(s->out->q[W_SNAP_CLEAR], 1, s->account_id, -1, SQLITE_STATIC);
    if ((err = tly_ledger_step_done(s->out->l, s->out->q[W_SNAP_CLEAR])))
        return err;
    return write_lots(s, s->out->q[W_SNAP], 0);
}

/* ---------------------------------------------------------------- loading */

static int load_snapshot(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[Q_SNAPSHOT];
    int rc, err = TLY_OK;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !err) {
        enum pool p = pool_of(sqlite3_column_text(st, 0));
        const char *txn = (const char *)sqlite3_column_text(st, 1);
        int64_t remaining = sqlite3_column_int64(st, 5);
        if (!*txn) {
            s->wallet[p].debt = -remaining;
            continue;
        }
        err = tly_wallet_grant(&s->wallet[p], txn, (const char *)sqlite3_column_text(st, 4),
                               sqlite3_column_int64(st, 2),
                               sqlite3_column_type(st, 3) == SQLITE_NULL ? TLY_NEVER
                                                                         : sqlite3_column_int64(st, 3),
                               remaining);
    }
    reset(st);
    if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
        return ledger_err(s->out, "reading the wallet snapshot");
    return err;
}

static int64_t opt_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

static int load_devs(struct sim *s, int64_t dmark)
{
    sqlite3_stmt *st = s->out->q[Q_DEVS];
    size_t cap = 0;
    int rc;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s->as_of);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dep_event *e;
        if (tly_grow(&s->devs, &cap, s->ndevs + 1, sizeof *s->devs))
            goto nomem;
        e = &s->devs[s->ndevs++];
        memset(e, 0, sizeof *e);
        e->ts = sqlite3_column_int64(st, 0);
        e->late = dmark >= 0 && sqlite3_column_int64(st, 1) > dmark && e->ts < s->open_start;
#define DUP(f, c) if (sqlite3_column_type(st, c) != SQLITE_NULL && !(e->f = col_dup(st, c))) goto nomem
        DUP(event_id, 2); DUP(category, 3); DUP(action, 4); DUP(resource_id, 5);
        DUP(resource_name, 6); DUP(owner, 7); DUP(deployment_id, 8); DUP(deployment_name, 9);
        DUP(deployment_type, 10); DUP(hardware, 11); DUP(model_type, 14); DUP(language, 15);
        DUP(language_version, 16); DUP(endpoint, 17);
#undef DUP
        e->units = opt_int(st, 12);
        e->replicas = opt_int(st, 13);
    }
    reset(st);
    if (rc != SQLITE_DONE)
        return ledger_err(s->out, "reading deployments");
    return TLY_OK;
nomem:
    reset(st);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
}

static int load_credits(struct sim *s, int64_t cmark)
{
    sqlite3_stmt *st = s->out->q[Q_CREDITS];
    size_t cap = 0;
    int rc;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s->as_of);
    sqlite3_bind_int64(st, 3, s->open_start);
    sqlite3_bind_int64(st, 4, cmark);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct credit_event *e;
        if (tly_grow(&s->cevs, &cap, s->ncevs + 1, sizeof *s->cevs))
            goto nomem;
        e = &s->cevs[s->ncevs++];
        memset(e, 0, sizeof *e);
        e->ts = sqlite3_column_int64(st, 0);
        e->pool = pool_of(sqlite3_column_text(st, 2));
        e->amount = sqlite3_column_int64(st, 4);
        e->expires_at = sqlite3_column_type(st, 5) == SQLITE_NULL ? TLY_NEVER : sqlite3_column_int64(st, 5);
        if (!(e->txn_id = col_dup(st, 1)) || !(e->type = col_dup(st, 3)))
            goto nomem;
    }
    reset(st);
    if (rc != SQLITE_DONE)
        return ledger_err(s->out, "reading credits");
    return TLY_OK;
nomem:
    reset(st);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
}

static int load_frozen_stops(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[Q_FROZEN_STOPS];
    size_t cap = 0;
    int rc;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *cat = (const char *)sqlite3_column_text(st, 0);
        const char *dep = (const char *)sqlite3_column_text(st, 1);
        size_t lc = strlen(cat), ld = strlen(dep);
        struct frozen_stop *f;
        if (tly_grow(&s->frozen_stops, &cap, s->nfrozen_stops + 1, sizeof *s->frozen_stops))
            goto nomem;
        f = &s->frozen_stops[s->nfrozen_stops];
        if (!(f->key = tly_malloc(lc + ld + 2)))
            goto nomem;
        memcpy(f->key, cat, lc);
        f->key[lc] = '\x1f';
        memcpy(f->key + lc + 1, dep, ld + 1);
        f->at = sqlite3_column_int64(st, 2);
        s->nfrozen_stops++;
    }
    reset(st);
    if (rc != SQLITE_DONE)
        return ledger_err(s->out, "reading frozen actions");
    return TLY_OK;
nomem:
    reset(st);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
}

/*
 * What closed time now meters for deployments with late events, less what
 * their closed cycles already charged (frozen usage, including late charges
 * posted before): the rest is late (semantics §8).  A negative difference
 * (a late undeploy) is not refunded: closed cycles never change.  Late
 * not-chargeable time on a day its close listed is netted the same way
 * against the frozen rows' credits (simulate.c late_not_chargeable).
 */
static int subtract_frozen_usage(struct sim *s)
{
    for (size_t i = 0; i < s->nrows; i++) {
        struct acc_row *r = &s->rows[i];
        sqlite3_stmt *st;
        const struct dep *d;
        int rc;
        if (r->dep < 0 || (r->kind != ACC_LATE && !(r->kind == ACC_NOT_CHARGEABLE && r->less_listed)))
            continue;
        st = s->out->q[r->kind == ACC_LATE ? Q_FROZEN_USAGE : Q_FROZEN_LISTED];
        d = &s->deps[r->dep];
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r->day);
        sqlite3_bind_text(st, 3, d->category, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, d->deployment_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r->credits -= sqlite3_column_int64(st, 0);
            r->seconds -= sqlite3_column_int64(st, 1);
        }
        reset(st);
        if (rc != SQLITE_ROW)
            return ledger_err(s->out, "reading frozen usage");
        if (r->credits <= 0 || r->first_ts == INT64_MAX)
            r->kind = NACC;             /* nothing late for that day */
    }
    return TLY_OK;
}

/*
 * Closed days that were unpriced at their close, to be charged once priced
 * (sim_mark_unpriced), and closed days already listed as not chargeable.
 */
static int load_frozen_day_rows(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[Q_FROZEN_DAY_ROWS];
    int rc, err = TLY_OK;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *category = (const char *)sqlite3_column_text(st, 1);
        const char *id = (const char *)sqlite3_column_text(st, 2);
        int64_t ts = sqlite3_column_int64(st, 3);
        if (!strcmp((const char *)sqlite3_column_text(st, 0), "unpriced"))
            err = sim_mark_unpriced(s, category, id, ts);
        else
            err = sim_mark_listed(s, category, id, ts);
    }
    reset(st);
    if (!err && rc != SQLITE_DONE)
        err = ledger_err(s->out, "reading frozen discrepancies");
    return err;
}

/*
 * §10: the current cycle holds as-of − 1 s.  When the as-of is the very end
 * of the account's last closed cycle (with --grace 0, the run that closed
 * it, then a re-run or a report at that as-of), there is no open time
 * before the as-of and the current cycle is the closed one.  Its figures
 * are its frozen statement and crossings, the ones the closing run showed,
 * so the reports come out the same (§9.1).  Late data found by the replay
 * waits for a later as-of, as an event at the as-of does.
 */
static int closed_current(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[Q_CLOSED_STMT];
    int64_t cycle_start = 0;
    int rc, pools = 0;

    for (size_t i = 0; i < s->nrows; i++)
        s->rows[i].kind = NACC;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, tly_day_of(s->open_start));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct statement *m = &s->stmt[pool_of(sqlite3_column_text(st, 0))];
        memset(m, 0, sizeof *m);
        cycle_start = sqlite3_column_int64(st, 1);
        m->cycle_start = cycle_start * TLY_DAY_SECONDS;
        m->cycle_end = s->open_start;
        m->opening = sqlite3_column_int64(st, 2);
        m->granted = sqlite3_column_int64(st, 3);
        m->used = sqlite3_column_int64(st, 4);
        m->closed = 1;
        pools++;
    }
    reset(st);
    if (rc != SQLITE_DONE)
        return ledger_err(s->out, "reading the closed statement");
    if (pools != NPOOL)
        return tly_error(TLY_ERR_LEDGER, "account '%s': the cycle closed at the as-of has no statement",
                         s->account_id);
    st = s->out->q[Q_CLOSED_CROSSINGS];
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cycle_start);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        thresholds_mark(s, pool_of(sqlite3_column_text(st, 0)), sqlite3_column_int(st, 1));
    reset(st);
    if (rc != SQLITE_DONE)
        return ledger_err(s->out, "reading the closed crossings");
    /* t* on the as-of, as the closing run judged it (simulate.c instant) */
    s->charging = 1;
    s->now = s->open_start;
    if (tly_wallet_balance(&s->wallet[POOL_CREDITS]) < -s->negative_limit &&
        sim_anything_charged_running(s))
        return enforce_stop_all(s, s->open_start);
    return TLY_OK;
}

/* Late runs per runnable and date, from the bundles loaded since the close ('bundle_mark'). */
static int load_late_runs(struct sim *s, int64_t bundle_mark)
{
    sqlite3_stmt *st = s->out->q[Q_LATE_RUNS];
    int rc, err = TLY_OK;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, bundle_mark);
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(st, 0);
        struct runnable *r;
        /* a runnable may be first seen in late data: the lookup creates it */
        if ((err = sim_runnable(s, (const char *)sqlite3_column_text(st, 1),
                                (const char *)sqlite3_column_text(st, 2), &r)))
            break;
        /*
         * Runs the edition lacks are listed, never charged (§10 "Not
         * chargeable").  These runs are new input, so a date its close
         * listed gets a second row, as a late charge posts one: every
         * loaded run shows somewhere (§9.3).
         */
        err = sim_acc(s, r->chargeable ? ACC_LATE : ACC_NOT_CHARGEABLE, -1, (int)(r - s->runnables),
                      first, 0, 0, sqlite3_column_int64(st, 3), 0, s->open_start);
    }
    reset(st);
    if (!err && rc != SQLITE_DONE)
        return ledger_err(s->out, "reading late runs");
    return err;
}

/* -------------------------------------------------------------- writing */

/* new_closed_end is INT64_MIN when this run closes nothing: no instant is before it */
static int is_frozen(const struct sim *s, int64_t post_ts)
{
    return post_ts < s->new_closed_end;
}

static int write_statement(struct sim *s, const struct statement *m, enum pool p)
{
    sqlite3_stmt *st = s->out->q[W_STATEMENT];
    int64_t closing = m->opening + m->granted - m->used - m->adjusted - m->expired - m->late;
    static const enum cat order[] = { CAT_MODEL, CAT_FINETUNE, CAT_GUARDRAIL, CAT_SCRIPT,
                                      CAT_OCR, CAT_BROWSER };

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pool_names[p], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, tly_day_of(m->cycle_start));
    sqlite3_bind_int64(st, 4, tly_day_of(m->cycle_end));
    sqlite3_bind_text(st, 5, m->closed ? "closed" : "open", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, m->opening);
    sqlite3_bind_int64(st, 7, m->granted);
    sqlite3_bind_int64(st, 8, m->used);
    for (int c = 0; c < NCAT; c++)
        sqlite3_bind_int64(st, 9 + c, p == POOL_CREDITS ? m->used_cat[order[c]] : 0);
    sqlite3_bind_int64(st, 15, p == POOL_RUNS ? m->used : 0);
    sqlite3_bind_int64(st, 16, m->adjusted);
    sqlite3_bind_int64(st, 17, m->expired);
    sqlite3_bind_int64(st, 18, m->late);
    sqlite3_bind_int64(st, 19, closing);
    sqlite3_bind_int64(st, 20, closing < 0 ? closing : 0);
    sqlite3_bind_int(st, 21, m->closed);
    if (m->closed)
        sqlite3_bind_int64(st, 22, m->card ? m->card : s->out->cards->id[s->out->cards->n - 1]);
    else
        sqlite3_bind_null(st, 22);
    return tly_ledger_step_done(s->out->l, st);
}

static int write_statements(struct sim *s)
{
    int err;

    for (size_t i = 0; i < s->nstmts; i++)
        if ((err = write_statement(s, &s->stmts[i], (enum pool)(i % NPOOL))))
            return err;
    return TLY_OK;
}

static const char *row_category(const struct sim *s, const struct acc_row *r)
{
    return r->dep >= 0 ? s->deps[r->dep].category : s->runnables[r->runnable].kind;
}

static int write_usage_row(struct sim *s, const struct acc_row *r)
{
    sqlite3_stmt *st = s->out->q[W_USAGE];
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->day);
    sqlite3_bind_text(st, 3, row_category(s, r), -1, SQLITE_STATIC);
    if (r->dep >= 0) {
        sqlite3_bind_text(st, 4, s->deps[r->dep].resource_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, s->deps[r->dep].deployment_id, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_text(st, 4, s->runnables[r->runnable].resource_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, "", -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 6, r->credits);
    sqlite3_bind_int64(st, 7, r->seconds);
    sqlite3_bind_int64(st, 8, r->count);
    sqlite3_bind_int(st, 9, r->kind == ACC_LATE);
    sqlite3_bind_int(st, 10, is_frozen(s, r->post_ts));
    return tly_ledger_step_done(s->out->l, st);
}

static const char *hardware_category(const struct tly_hardware *hw, int64_t t)
{
    const char *category = tly_hardware_category(hw, t);
    return category ? category : "none";
}

/* The discrepancy row of a day-bucketed accumulator (semantics §10 "Discrepancy rows"). */
static int row_discrepancy(struct sim *s, const struct acc_row *r)
{
    static const char *const kinds[NACC] = {
        [ACC_UNPRICED] = "unpriced", [ACC_NOT_CHARGEABLE] = "not_chargeable",
        [ACC_OVERRUN] = "overrun", [ACC_EXHAUSTED] = "run_while_exhausted",
        [ACC_LATE] = "late_charge",
    };
    const struct dep *d = r->dep >= 0 ? &s->deps[r->dep] : NULL;
    char detail[256], cycle[TLY_DATE_LEN];

    if (!d) {
        /* runs: credits empty, detail the number of runs */
        snprintf(detail, sizeof detail, "%lld", (long long)r->count);
        return sim_discrepancy(s, kinds[r->kind], r->first_ts, row_category(s, r),
                               s->runnables[r->runnable].resource_id, NULL, 0, 0, detail, r->post_ts);
    }
    switch (r->kind) {
    case ACC_UNPRICED:
        snprintf(detail, sizeof detail, "%lld s on hardware '%.64s' with no price",
                 (long long)r->seconds, r->hardware ? r->hardware : "");
        break;
    case ACC_NOT_CHARGEABLE:
        if (!d->chargeable)
            snprintf(detail, sizeof detail, "category '%s' is not part of edition '%s'",
                     d->category, s->edition);
        else
            snprintf(detail, sizeof detail, "hardware '%.64s' is priced for category '%s'",
                     r->hardware ? r->hardware : "", hardware_category(r->hw, r->first_ts));
        break;
    case ACC_OVERRUN:
        snprintf(detail, sizeof detail, "ran %lld s after it was stopped for credits",
                 (long long)r->seconds);
        break;
    default:
        tly_format_date(cycle, tly_day_of(s->open_start));
        snprintf(detail, sizeof detail, "late usage posted to the cycle starting %s", cycle);
        break;
    }
    return sim_discrepancy(s, kinds[r->kind], r->first_ts, d->category, d->resource_id,
                           d->deployment_id, r->kind != ACC_UNPRICED, r->credits, detail, r->post_ts);
}

static int is_usage(const struct acc_row *r)
{
    return r->kind == ACC_USAGE || r->kind == ACC_LATE;
}

static struct usage_key usage_key_of(const struct sim *s, size_t i)
{
    const struct acc_row *r = &s->rows[i];
    const struct dep *d = r->dep >= 0 ? &s->deps[r->dep] : NULL;
    struct usage_key k = {
        .day = r->day, .category = row_category(s, r),
        .resource_id = d ? d->resource_id : s->runnables[r->runnable].resource_id,
        .deployment_id = d ? d->deployment_id : "", .late = r->kind == ACC_LATE,
        .credits = r->credits, .seconds = r->seconds, .runs = r->count, .row = i,
    };
    return k;
}

static int cmp_int(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* Q_OPEN_USAGE's order (text in SQLite's BINARY collation, as strcmp) */
static int usage_order(const struct usage_key *a, const struct usage_key *b)
{
    int c;
    if ((c = cmp_int(a->day, b->day)) || (c = strcmp(a->category, b->category)) ||
        (c = strcmp(a->resource_id, b->resource_id)) || (c = strcmp(a->deployment_id, b->deployment_id)) ||
        (c = cmp_int(a->late, b->late)) || (c = cmp_int(a->credits, b->credits)) ||
        (c = cmp_int(a->seconds, b->seconds)))
        return c;
    return cmp_int(a->runs, b->runs);
}

static int usage_cmp(const void *a, const void *b)
{
    return usage_order(a, b);
}

static struct usage_key usage_key_at(sqlite3_stmt *st)
{
    struct usage_key k = {
        .day = sqlite3_column_int64(st, 1), .category = (const char *)sqlite3_column_text(st, 2),
        .resource_id = (const char *)sqlite3_column_text(st, 3),
        .deployment_id = (const char *)sqlite3_column_text(st, 4), .late = sqlite3_column_int(st, 5),
        .credits = sqlite3_column_int64(st, 6), .seconds = sqlite3_column_int64(st, 7),
        .runs = sqlite3_column_int64(st, 8),
    };
    return k;
}

/*
 * Merges the account's open usage_day rows in the ledger (Q_OPEN_USAGE)
 * with the simulated ones, both in usage_order: a row in both is marked
 * kept (row = SIZE_MAX), a ledger row in no simulated one is noted stale.
 */
static int match_open_usage(struct sim *s, size_t n, size_t *nstale)
{
    struct sim_out *w = s->out;
    sqlite3_stmt *st = w->q[Q_OPEN_USAGE];
    size_t i = 0;
    int rc;

    *nstale = 0;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct usage_key old = usage_key_at(st);
        int c = 1;
        if (!old.category || !old.resource_id || !old.deployment_id) {   /* NOT NULL: SQLite's OOM */
            reset(st);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        while (i < n && (c = usage_order(&w->usage[i], &old)) < 0)
            i++;                                /* a simulated row the ledger lacks */
        if (c == 0) {
            w->usage[i++].row = SIZE_MAX;       /* in both: stays */
            continue;
        }
        if (tly_grow(&w->stale, &w->stale_cap, *nstale + 1, sizeof *w->stale)) {
            reset(st);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        w->stale[(*nstale)++] = sqlite3_column_int64(st, 0);
    }
    reset(st);
    return rc == SQLITE_DONE ? TLY_OK : ledger_err(w, "reading usage");
}

/*
 * usage_day's open rows are rewritten by difference.  A night re-simulates
 * the whole open cycle, but only its newest day brings new rows: deleting
 * and inserting every open row of every account was a quarter of a night's
 * reconcile.  The rows both in the ledger and in the simulation stay, the
 * others are deleted or inserted, so the account's open rows end as the
 * simulation's, as they did.  Their order in the table means nothing:
 * every reader sums or picks by key (rmodel.c, Q_HAS_USAGE, Q_LAST_RUN_DAY).
 * A row the simulation freezes is inserted as it is; its open copy in the
 * ledger matches no open row, so it goes as stale.  Every account with an
 * accounts row comes here; tly_reconcile clears the open rows of any other.
 */
static int sync_usage(struct sim *s)
{
    struct sim_out *w = s->out;
    size_t n = 0, nstale;
    int err;

    for (size_t i = 0; i < s->nrows; i++) {
        if (!is_usage(&s->rows[i]))
            continue;
        if (is_frozen(s, s->rows[i].post_ts)) {
            if ((err = write_usage_row(s, &s->rows[i])))
                return err;
            continue;
        }
        if (tly_grow(&w->usage, &w->usage_cap, n + 1, sizeof *w->usage))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        w->usage[n++] = usage_key_of(s, i);
    }
    if (n)
        qsort(w->usage, n, sizeof *w->usage, usage_cmp);      /* usage is NULL until a first row */
    if ((err = match_open_usage(s, n, &nstale)))
        return err;
    for (size_t i = 0; i < nstale; i++) {
        sqlite3_bind_int64(w->q[W_USAGE_DELETE], 1, w->stale[i]);
        if ((err = tly_ledger_step_done(w->l, w->q[W_USAGE_DELETE])))
            return err;
    }
    for (size_t i = 0; i < n; i++)
        if (w->usage[i].row != SIZE_MAX && (err = write_usage_row(s, &s->rows[w->usage[i].row])))
            return err;
    return TLY_OK;
}

static int write_rows(struct sim *s)
{
    int err;
    if ((err = sync_usage(s)))
        return err;
    for (size_t i = 0; i < s->nrows; i++) {
        const struct acc_row *r = &s->rows[i];
        if (r->kind != NACC && r->kind != ACC_USAGE && (err = row_discrepancy(s, r)))
            return err;
    }
    return TLY_OK;
}

static int write_discrepancies(struct sim *s)
{
    struct sim_out *w = s->out;
    sqlite3_stmt *st = w->q[W_DISC];
    int err;

    for (size_t i = 0; i < w->ndiscs; i++) {
        const struct disc *d = &w->discs[i];
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, d->ts);
        tly_bind_text_or_null(st, 4, d->category, -1);
        tly_bind_text_or_null(st, 5, d->resource_id, -1);
        tly_bind_text_or_null(st, 6, d->deployment_id, -1);
        if (d->has_credits)
            sqlite3_bind_int64(st, 7, d->credits);
        else
            sqlite3_bind_null(st, 7);
        tly_bind_text_or_null(st, 8, d->detail, -1);
        /* unknown_account is about no time: always recomputed */
        sqlite3_bind_int(st, 9, strcmp(d->kind, "unknown_account") && is_frozen(s, d->post_ts));
        if ((err = tly_ledger_step_done(w->l, st)))
            return err;
    }
    return TLY_OK;
}

static int write_actions(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[W_ACTION];
    int err;
    for (size_t i = 0; i < s->nstops; i++) {
        const struct dep *d = &s->deps[s->stops[i].dep];
        if (s->stops[i].frozen)
            continue;
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->category, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, d->resource_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, d->deployment_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, s->stops[i].at);
        sqlite3_bind_text(st, 6, "You've used all your available credits. Please add more credits"
                                 " to your account to continue.", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 7, is_frozen(s, s->stops[i].at));
        if ((err = tly_ledger_step_done(s->out->l, st)))
            return err;
    }
    return TLY_OK;
}

static int write_crossings(struct sim *s)
{
    struct sim_out *w = s->out;
    sqlite3_stmt *st = w->q[W_CROSSING];
    int err;
    for (size_t i = 0; i < w->ncrossings; i++) {
        const struct crossing *c = &w->crossings[i];
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, pool_names[c->pool], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, tly_day_of(c->cycle_start));
        sqlite3_bind_int(st, 4, c->threshold);
        sqlite3_bind_int64(st, 5, c->ts);
        sqlite3_bind_int(st, 6, is_frozen(s, c->ts));
        if ((err = tly_ledger_step_done(w->l, st)))
            return err;
    }
    return TLY_OK;
}

static void bind_opt_day(sqlite3_stmt *st, int col, int64_t day)
{
    if (day != TLY_NO_DAY)
        sqlite3_bind_int64(st, col, day);
    else
        sqlite3_bind_null(st, col);
}

/* A ghost (simulate.c keep_ghost) has a row only for the usage its closed cycles kept. */
static int has_usage(struct sim *s, const struct dep *d, int *out)
{
    sqlite3_stmt *st = s->out->q[Q_HAS_USAGE];
    int rc;

    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->category, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->deployment_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    reset(st);
    return rc == SQLITE_ROW ? TLY_OK : ledger_err(s->out, "reading usage");
}

static int write_dep_states(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[W_DEP_STATE];
    int err, used;

    for (size_t i = 0; i < s->ndeps; i++) {
        const struct dep *d = &s->deps[i];
        struct sim_resource_text t;
        if (d->ghost) {
            if ((err = has_usage(s, d, &used)))
                return err;
            if (!used)
                continue;
        } else if (!d->started || !d->billed) {
            continue;                   /* not chargeable usage makes no tab row (§10) */
        }
        sim_resource_text(s, d->is_job ? "model" : d->category, d->resource_id, INT64_MAX, d->ghost, &t);
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->category, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, d->resource_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, d->deployment_id, -1, SQLITE_STATIC);
        tly_bind_text_or_null(st, 5, t.name, -1);
        tly_bind_text_or_null(st, 6, d->deployment_name, -1);
        tly_bind_text_or_null(st, 7, d->deployment_type, -1);
        tly_bind_text_or_null(st, 8, t.owner, -1);
        tly_bind_text_or_null(st, 9, t.model_type, -1);
        tly_bind_text_or_null(st, 10, d->language, -1);
        tly_bind_text_or_null(st, 11, t.language_version, -1);
        tly_bind_text_or_null(st, 12, d->endpoint, -1);
        tly_bind_text_or_null(st, 13, d->hardware, -1);
        sqlite3_bind_int64(st, 14, d->units);
        sqlite3_bind_int64(st, 15, d->is_job ? 1 : d->replicas);
        sqlite3_bind_text(st, 16, d->deleted ? "Deleted" : d->running ? "Deployed" : "Undeployed",
                          -1, SQLITE_STATIC);
        bind_opt_day(st, 17, d->last_deployed);
        bind_opt_day(st, 18, d->last_updated);
        sqlite3_bind_int64(st, 19, d->last_ts);
        if ((err = tly_ledger_step_done(s->out->l, st)))
            return err;
    }
    return TLY_OK;
}

static int lookup_text(struct sim *s, enum q q, const struct runnable *r, char **out)
{
    sqlite3_stmt *st = s->out->q[q];
    int rc;
    *out = NULL;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->resource_id, -1, SQLITE_STATIC);
    if (q == Q_RUN_NAME) {
        sqlite3_bind_int64(st, 4, s->as_of);
        sqlite3_bind_int64(st, 5, tly_day_of(s->as_of - 1));
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL && !(*out = col_dup(st, 0))) {
        reset(st);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return ledger_err(s->out, "reading runs");
    return TLY_OK;
}

static int write_runnable_states(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[W_RUNNABLE_STATE];
    int err;

    for (size_t i = 0; i < s->nrunnables; i++) {
        struct runnable *r = &s->runnables[i];
        struct sim_resource_text t;
        char *fallback = NULL, *day = NULL;
        int64_t last = r->last_active;
        if (!r->deployed || !r->chargeable)
            continue;                   /* runs tabs list what was deployed at least once */
        sim_resource_text(s, r->kind, r->resource_id, INT64_MAX, 0, &t);
        if (!t.name && (err = lookup_text(s, Q_RUN_NAME, r, &fallback)))
            return err;
        if (last == TLY_NO_DAY) {
            if ((err = lookup_text(s, Q_LAST_RUN_DAY, r, &day)))
                return err;
            last = day ? strtoll(day, NULL, 10) : TLY_NO_DAY;
            tly_free(day);
        }
        sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->resource_id, -1, SQLITE_STATIC);
        tly_bind_text_or_null(st, 4, t.name ? t.name : fallback, -1);
        tly_bind_text_or_null(st, 5, t.owner, -1);
        sqlite3_bind_text(st, 6, r->status, -1, SQLITE_STATIC);
        bind_opt_day(st, 7, last);
        err = tly_ledger_step_done(s->out->l, st);
        tly_free(fallback);
        if (err)
            return err;
    }
    return TLY_OK;
}

static int free_expired(struct sim *s, enum pool p, int *yes)
{
    sqlite3_stmt *st = s->out->q[Q_FREE_EXPIRED];
    int rc;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pool_names[p], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->as_of);
    rc = sqlite3_step(st);
    *yes = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    reset(st);
    return rc == SQLITE_ROW ? TLY_OK : ledger_err(s->out, "reading credits");
}

static int write_account_state(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[W_ACCOUNT_STATE];
    char b0[8], b1[8];
    int fe[NPOOL], err;

    for (int p = 0; p < NPOOL; p++)
        if ((err = free_expired(s, (enum pool)p, &fe[p])))
            return err;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->edition, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->admin_email, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, s->as_of);
    sqlite3_bind_int64(st, 6, tly_day_of(s->stmt[0].cycle_start));
    sqlite3_bind_int64(st, 7, tly_day_of(s->stmt[0].cycle_end));
    for (int p = 0; p < NPOOL; p++) {
        int col = p == POOL_RUNS ? 8 : 11;
        sqlite3_bind_int64(st, col, s->stmt[p].used);
        sqlite3_bind_int64(st, col + 1, s->stmt[p].opening + s->stmt[p].granted);
        sqlite3_bind_int64(st, col + 2, tly_wallet_balance(&s->wallet[p]));
    }
    sqlite3_bind_text(st, 14, thresholds_banner(s, POOL_CREDITS, b0, fe[POOL_CREDITS]), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, thresholds_banner(s, POOL_RUNS, b1, fe[POOL_RUNS]), -1, SQLITE_STATIC);
    if (s->nstops)
        sqlite3_bind_int64(st, 16, s->stops[s->nstops - 1].at);
    else
        sqlite3_bind_null(st, 16);
    return tly_ledger_step_done(s->out->l, st);
}

static int write_close(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[W_CLOSE];
    if (s->new_closed_end == INT64_MIN)
        return TLY_OK;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s->new_closed_end);
    for (int i = 0; i < 3; i++)
        sqlite3_bind_int64(st, 3 + i, s->out->marks[i]);
    return tly_ledger_step_done(s->out->l, st);
}

static int write_results(struct sim *s)
{
    int err;
    if ((err = write_statements(s)) || (err = write_rows(s)) || (err = write_discrepancies(s)) ||
        (err = write_actions(s)) || (err = write_crossings(s)) || (err = write_dep_states(s)) ||
        (err = write_runnable_states(s)) || (err = write_account_state(s)) || (err = write_close(s)) ||
        (err = write_lots(s, s->out->q[W_LOT], 1)))
        return err;
    return TLY_OK;
}

/* ------------------------------------------------------------- accounts */

static void sim_release(struct sim *s)
{
    struct sim_out *w = s->out;
    tly_card_release(&s->layered);
    for (size_t i = 0; i < s->ndevs; i++) {
        struct dep_event *e = &s->devs[i];
        char **fields[] = { &e->event_id, &e->category, &e->action, &e->resource_id,
                            &e->resource_name, &e->owner, &e->deployment_id, &e->deployment_name,
                            &e->deployment_type, &e->hardware, &e->model_type, &e->language,
                            &e->language_version, &e->endpoint };
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            tly_free(*fields[k]);
    }
    tly_free(s->devs);
    for (size_t i = 0; i < s->ncevs; i++) {
        tly_free(s->cevs[i].txn_id);
        tly_free(s->cevs[i].type);
    }
    tly_free(s->cevs);
    for (size_t i = 0; i < s->ndeps; i++)
        tly_free(s->deps[i].key);
    tly_free(s->deps);
    tly_strmap_release(&s->dep_index);
    for (size_t i = 0; i < s->nrunnables; i++) {
        tly_free(s->runnables[i].map_key);
        tly_free(s->runnables[i].ids);
    }
    tly_free(s->runnables);
    tly_strmap_release(&s->runnable_index);
    tly_strmap_release(&s->runnable_deps);
    for (size_t i = 0; i < s->ndeleted; i++)
        tly_free(s->deleted[i]);
    tly_free(s->deleted);
    for (size_t i = 0; i < s->nlate_keys; i++)
        tly_free(s->late_key_store[i]);
    tly_free(s->late_key_store);
    tly_strmap_release(&s->late_keys);
    tly_strmap_release(&s->unpriced_days);
    tly_strmap_release(&s->listed_days);
    for (size_t i = 0; i < s->nfrozen_stops; i++)
        tly_free(s->frozen_stops[i].key);
    tly_free(s->frozen_stops);
    for (int p = 0; p < NPOOL; p++)
        tly_wallet_release(&s->wallet[p]);
    tly_free(s->stmts);
    tly_free(s->rows);
    tly_free(s->stops);
    tly_free(s->active);
    for (size_t i = 0; i < w->ndiscs; i++) {
        tly_free(w->discs[i].category);
        tly_free(w->discs[i].resource_id);
        tly_free(w->discs[i].deployment_id);
        tly_free(w->discs[i].detail);
    }
    w->ndiscs = 0;
    w->ncrossings = 0;
}

static int unknown_account(struct sim_out *w, const char *account_id, int64_t as_of, int *held)
{
    sqlite3_stmt *st = w->q[Q_COUNT_RUNS];
    struct sim s;
    long long n;
    int64_t first;
    char detail[96];
    int rc, err;

    /* held events: runs are counted with an index range; credits and deployments are few */
    sqlite3_bind_text(st, 1, account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, as_of);
    sqlite3_bind_int64(st, 3, tly_day_of(as_of));
    rc = sqlite3_step(st);
    n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    first = rc == SQLITE_ROW && n ? sqlite3_column_int64(st, 1) : INT64_MAX;
    reset(st);
    if (rc != SQLITE_ROW)
        return ledger_err(w, "counting runs");
    memset(&s, 0, sizeof s);
    s.account_id = account_id;
    s.as_of = as_of;
    s.open_start = s.new_closed_end = INT64_MIN;
    s.out = w;
    if ((err = load_devs(&s, -1)) || (err = load_credits(&s, INT64_MAX)))
        goto out;
    n += (long long)(s.ndevs + s.ncevs);
    if (s.ndevs && s.devs[0].ts < first)
        first = s.devs[0].ts;
    if (s.ncevs && s.cevs[0].ts < first)
        first = s.cevs[0].ts;
    *held = n > 0;
    if (n) {
        snprintf(detail, sizeof detail, "%lld events held until the account's row arrives", n);
        /* spec §10 "Unknown accounts": listed once until its row arrives */
        if (!(err = sim_discrepancy(&s, "unknown_account", first, NULL, NULL, NULL, 0, 0, detail, first)))
            err = write_discrepancies(&s);
    }
out:
    sim_release(&s);
    return err;
}

/* The account's first event before the as-of, INT64_MAX when none. */
static int first_event(struct sim *s, int64_t *out)
{
    sqlite3_stmt *st = s->out->q[Q_FIRST_RUN];
    int64_t first = INT64_MAX;
    int rc;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s->as_of);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        first = sqlite3_column_int64(st, 0);
    reset(st);
    if (rc != SQLITE_ROW)
        return ledger_err(s->out, "reading run_day");
    if (s->ndevs && s->devs[0].ts < first)
        first = s->devs[0].ts;
    if (s->ncevs && s->cevs[0].ts < first)
        first = s->cevs[0].ts;
    *out = first;
    return TLY_OK;
}

/*
 * §10: "Statements cover every cycle from the one holding the account's
 * first event".  Events dated before the first closed cycle can arrive
 * after it closed: they are late, posted into the earliest open cycle (§8),
 * and the cycles they fall in held nothing when the first one closed.
 * Those cycles are written as a run would have closed them then: closed,
 * frozen and all zero, ending where the first closed cycle starts (its
 * opening was 0, so the chain of closings still holds).  They are cut by
 * the anchor that cut the first closed cycle: a changed cycle_anchor
 * shapes only the cycles after the last closed one (§10).
 */
static int write_empty_early_cycles(struct sim *s)
{
    sqlite3_stmt *st = s->out->q[Q_FIRST_CYCLE];
    int64_t first, known = INT64_MIN, card = 0, day;
    unsigned anchor_day = 0;
    int rc, err;

    if ((err = first_event(s, &first)))
        return err;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        known = sqlite3_column_int64(st, 0);
        card = sqlite3_column_int64(st, 1);
        anchor_day = tly_cycle_anchor_of(known, sqlite3_column_int64(st, 2));
    }
    reset(st);
    if (rc != SQLITE_ROW)
        return ledger_err(s->out, "reading statements");
    if (first == INT64_MAX || known == INT64_MIN || tly_day_of(first) >= known)
        return TLY_OK;
    for (day = tly_cycle_containing(anchor_day, tly_day_of(first)); !err && day < known;) {
        /* closed by the run that closed the first cycle, or earlier: its card (account_card) */
        struct statement empty = { .cycle_start = day * TLY_DAY_SECONDS, .closed = 1, .card = card };
        day = tly_cycle_next(anchor_day, day);
        empty.cycle_end = day * TLY_DAY_SECONDS;
        for (int p = 0; p < NPOOL && !err; p++)
            err = write_statement(s, &empty, (enum pool)p);
    }
    return err;
}

/*
 * The card an account's time is priced at: the one in force, unless one of
 * its cycles closed under an older version; then the layered card, which
 * keeps closed time at the prices it was charged at (meter.h).
 */
static int account_card(struct sim *s)
{
    const struct tly_cards *cards = s->out->cards;
    sqlite3_stmt *st = s->out->q[Q_CLOSED_CARDS];
    int64_t current = cards->id[cards->n - 1];
    struct tly_closed_span *spans = NULL;
    size_t n = 0, cap = 0;
    int rc, older = 0, err = TLY_OK;

    s->card = tly_cards_current(cards);
    if (cards->n == 1)
        return TLY_OK;
    sqlite3_bind_text(st, 1, s->account_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (tly_grow(&spans, &cap, n + 1, sizeof *spans)) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            break;
        }
        spans[n].from = sqlite3_column_int64(st, 0) * TLY_DAY_SECONDS;
        spans[n].to = sqlite3_column_int64(st, 1) * TLY_DAY_SECONDS;
        spans[n].version = sqlite3_column_type(st, 2) == SQLITE_NULL ? current : sqlite3_column_int64(st, 2);
        older |= spans[n++].version != current;
    }
    /*
     * Time before the first closed cycle is in cycles that closed no later
     * than it, though with no statement (nothing happened in them): its
     * version, the latest they can have closed under, prices late data there.
     */
    if (n)
        spans[0].from = INT64_MIN;
    reset(st);
    if (!err && rc != SQLITE_DONE)
        err = ledger_err(s->out, "reading statements");
    if (!err && older && !(err = tly_card_layer(cards, spans, (int)n, &s->layered)))
        s->card = &s->layered;
    tly_free(spans);
    return err;
}

static int account(struct sim_out *w, const char *account_id, struct tly_reconcile_stats *stats)
{
    const struct tly_reconcile_opts *o = w->o;
    sqlite3_stmt *st = w->q[Q_ACCOUNT];
    static const char *const runnable_of[][2] = {
        { "gale", "agent" }, { "agent-platform", "tool" }, { "process", "workflow" },
    };
    struct sim s;
    int64_t marks[3] = { -1, -1, -1 }, start, anchor;
    int rc, err, held = 0;

    sqlite3_bind_text(st, 1, account_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        reset(st);
        if (rc != SQLITE_DONE)
            return ledger_err(w, "reading accounts");
        err = unknown_account(w, account_id, o->as_of, &held);
        stats->unknown_accounts += held;
        return err;
    }
    memset(&s, 0, sizeof s);
    s.out = w;
    s.account_id = account_id;
    s.as_of = o->as_of;
    s.grace = o->grace_seconds;
    s.finetune_min = o->finetune_min;
    s.close_cycles = o->close_cycles;
    s.name = (const char *)sqlite3_column_text(st, 0);
    s.edition = (const char *)sqlite3_column_text(st, 1);
    s.admin_email = (const char *)sqlite3_column_text(st, 2);
    anchor = sqlite3_column_int64(st, 3);
    s.negative_limit = sqlite3_column_int64(st, 4);
    s.low_threshold = sqlite3_column_int64(st, 5);
    {
        int64_t y;
        unsigned m, d;
        tly_civil_from_days(anchor, &y, &m, &d);
        s.anchor_day = d;
    }
    s.runnable_kind = "agent";
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(s.edition, runnable_of[i][0]))
            s.runnable_kind = runnable_of[i][1];
    for (int p = 0; p < NPOOL; p++)
        tly_wallet_init(&s.wallet[p]);
    s.open_start = s.new_closed_end = INT64_MIN;
    if ((err = account_card(&s)))
        goto out;

    /* the frozen state of the last closed cycle */
    sqlite3_bind_text(w->q[Q_CLOSE], 1, account_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(w->q[Q_CLOSE]);
    if (rc == SQLITE_ROW) {
        s.open_start = sqlite3_column_int64(w->q[Q_CLOSE], 0);
        for (int i = 0; i < 3; i++)
            marks[i] = sqlite3_column_int64(w->q[Q_CLOSE], 1 + i);
    }
    reset(w->q[Q_CLOSE]);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = ledger_err(w, "reading closes");
        goto out;
    }
    /* as_of_after_closes: the same rule for the one account balance asks about */
    if (s.open_start != INT64_MIN && o->as_of < s.open_start) {
        char when[TLY_TS_LEN];
        tly_format_ts(when, s.open_start);
        err = tly_error(TLY_ERR_USAGE, "account '%s': the as-of is inside a closed cycle; closed cycles"
                        " keep only their final statements, so the as-of must be %s or later",
                        account_id, when);
        goto out;
    }
    if ((err = load_devs(&s, marks[1])) ||
        (err = load_credits(&s, marks[0] >= 0 ? marks[0] : INT64_MAX)))
        goto out;
    if (marks[0] >= 0) {
        if ((err = load_snapshot(&s)) || (err = load_frozen_stops(&s)) ||
            (err = load_frozen_day_rows(&s)) || (err = sim_replay_closed(&s)))
            goto out;
        if (s.open_start == o->as_of) {
            if ((err = closed_current(&s)) || (err = enforce_overruns(&s)) || (err = write_results(&s)))
                goto out;
            stats->accounts++;
            goto out;
        }
        if ((err = subtract_frozen_usage(&s)) || (err = load_late_runs(&s, marks[2])))
            goto out;
        start = s.open_start;
    } else {
        int64_t first;
        if ((err = first_event(&s, &first)))
            goto out;
        start = tly_cycle_containing(s.anchor_day, tly_day_of(first != INT64_MAX ? first : o->as_of - 1))
                * TLY_DAY_SECONDS;
        /*
         * With no event yet, the all-zero current cycle (§10) only stands in
         * for statements to come: closing starts with the first event's cycle
         * (decisions, pipeline/README.md), or a --grace 0 run on a cycle end
         * would freeze a row a batch run never lists (§9.2).
         */
        if (first == INT64_MAX)
            s.close_cycles = 0;
    }
    sqlite3_bind_text(w->q[Q_RUNS], 1, account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->q[Q_RUNS], 3, o->as_of);
    sqlite3_bind_text(w->q[Q_RUN_DAYS], 1, account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->q[Q_RUN_DAYS], 3, tly_day_of(o->as_of - 1));
    s.runs = w->q[Q_RUNS];
    s.run_days = w->q[Q_RUN_DAYS];
    s.runs_from = start;
    s.last_run_ts = INT64_MIN;
    if (!o->every_run) {
        sqlite3_bind_text(w->q[Q_DAY_RUNS], 1, account_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->q[Q_DAY_CHARGED], 1, account_id, -1, SQLITE_STATIC);
        s.day_runs = w->q[Q_DAY_RUNS];
        s.day_charged = w->q[Q_DAY_CHARGED];
    }
    /*
     * Open time is recomputed (§8), and so are its items not yet in a
     * digest: one that new data moved or undid (a top-up before a crossing)
     * must not be sent as it was.  A delivered item stays, and is not sent
     * again (INSERT OR IGNORE by its key).
     */
    sqlite3_bind_text(w->q[W_ITEMS_CLEAR], 1, account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w->q[W_ITEMS_CLEAR], 2, start);
    if ((err = tly_ledger_step_done(w->l, w->q[W_ITEMS_CLEAR])))
        goto out;
    err = sim_run(&s, start);
    reset(w->q[Q_RUNS]);
    reset(w->q[Q_RUN_DAYS]);
    if (err || (err = enforce_overruns(&s)))
        goto out;
    if (s.overflow || s.wallet[POOL_CREDITS].overflow || s.wallet[POOL_RUNS].overflow) {
        err = tly_error(TLY_ERR_INPUT, "account '%s': a sum of credits or runs overflowed 64 bits", account_id);
        goto out;
    }
    if ((err = write_results(&s)) || (marks[0] >= 0 && (err = write_empty_early_cycles(&s))))
        goto out;
    stats->accounts++;
    for (size_t i = 0; i < s.nstmts; i += NPOOL)
        stats->cycles_closed += s.stmts[i].closed;
    stats->quiet_days += s.quiet_days;
out:
    reset(st);
    sim_release(&s);
    return err;
}

/* ---------------------------------------------------------------- stage */

static int max_rowid(struct tly_ledger *l, const char *table, int64_t *out)
{
    char q[96];
    sqlite3_stmt *st;
    int err;
    snprintf(q, sizeof q, "SELECT COALESCE(MAX(rowid), 0) FROM %s", table);   /* bundles: max id */
    if ((err = tly_ledger_prepare(l, q, &st)))
        return err;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return tly_ledger_error(l, "reading row marks");
    }
    *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return TLY_OK;
}

/*
 * §10: the current cycle holds as-of − 1 s.  A closed cycle keeps only its
 * final figures (§8), so an as-of inside one cannot be explained: say so,
 * once, with the as-of that every account can take, rather than show the
 * next cycle's figures as if current.
 */
static int as_of_after_closes(struct tly_ledger *l, int64_t as_of)
{
    sqlite3_stmt *st;
    char when[TLY_TS_LEN];
    int rc, err;

    if ((err = tly_ledger_prepare(l, "SELECT count(*), max(closed_end), min(account_id) FROM closes"
                                     " WHERE closed_end > ?1", &st)))
        return err;
    sqlite3_bind_int64(st, 1, as_of);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
        tly_format_ts(when, sqlite3_column_int64(st, 1));
        err = tly_error(TLY_ERR_USAGE, "the as-of is inside a closed cycle of %lld accounts (first '%s');"
                        " closed cycles keep only their final statements, so the as-of must be %s or later",
                        (long long)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 2), when);
    } else if (rc != SQLITE_ROW) {
        err = tly_ledger_error(l, "reading closes");
    }
    sqlite3_finalize(st);
    return err;
}

int tly_reconcile(struct tly_ledger *l, const struct tly_reconcile_opts *o,
                  struct tly_reconcile_stats *stats)
{
    struct sim_out w;
    struct tly_cards cards;
    sqlite3_stmt *accounts;
    int err, rc;

    memset(&w, 0, sizeof w);
    memset(stats, 0, sizeof *stats);
    w.l = l;
    w.o = o;
    if (!o->only_account && (err = as_of_after_closes(l, o->as_of)))
        return err;
    if ((err = tly_cards_load(l, &cards)))
        return err;
    w.cards = &cards;
    /* a card a run has priced with is kept as a version (rates.c) */
    if (cards.id[cards.n - 1] && (err = tly_ledger_set_int(l, "card_used", cards.id[cards.n - 1])))
        goto out;
    if ((err = max_rowid(l, "credits", &w.marks[0])) || (err = max_rowid(l, "deployments", &w.marks[1])) ||
        (err = max_rowid(l, "bundles", &w.marks[2])))
        goto out;
    /* open time is recomputed; closed cycles' rows (frozen) stay */
    if ((err = tly_ledger_exec(l,
            "DELETE FROM statements WHERE frozen = 0; DELETE FROM discrepancies WHERE frozen = 0; DELETE FROM actions WHERE frozen = 0;"
            " DELETE FROM crossings WHERE frozen = 0; DELETE FROM deployment_state;"
            " DELETE FROM runnable_state; DELETE FROM account_state; DELETE FROM lots;")))
        goto out;
    for (int i = 0; i < NQ; i++)
        if ((err = tly_ledger_prepare(l, sql[i], &w.q[i])))
            goto out;
    accounts = w.q[Q_ACCOUNTS];
    while ((rc = sqlite3_step(accounts)) == SQLITE_ROW) {
        char *id = col_dup(accounts, 0);
        if (!id) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            break;
        }
        if (!o->only_account || !strcmp(id, o->only_account))
            err = account(&w, id, stats);
        tly_free(id);
        if (err)
            break;
    }
    if (!err && rc != SQLITE_DONE)
        err = tly_ledger_error(l, "listing accounts");
    /*
     * sync_usage rewrites the open rows of the accounts it sees, which are
     * all with an accounts row (the others are unknown_account's, which
     * have none).  Whatever else holds open rows is cleared, as the delete
     * of every open row before sync_usage did.
     */
    if (!err && !o->only_account)
        err = tly_ledger_exec(l, "DELETE FROM usage_day WHERE frozen = 0"
                                 " AND account_id NOT IN (SELECT account_id FROM accounts)");
out:
    for (int i = 0; i < NQ; i++)
        sqlite3_finalize(w.q[i]);
    tly_free(w.discs);
    tly_free(w.usage);
    tly_free(w.stale);
    tly_free(w.crossings);
    tly_cards_release(&cards);
    return err;
}

int tly_default_as_of(struct tly_ledger *l, int64_t *as_of, int *found)
{
    return tly_ledger_get_int(l, "latest_period_end", as_of, found);
}
