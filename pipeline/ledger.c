/*
 * ledger.c — SQLite ledger: schema migrations, WAL, the writer lock.
 *
 * The schema (migration 1) in one place.  Tables by the stage that writes
 * them:
 *
 *   ingest     bundles, files, accounts, credits, deployments, runs, rejects
 *   rates      rates
 *   reconcile  statements, usage_day, deployment_state, runnable_state,
 *              account_state, discrepancies, actions, crossings, items,
 *              closes, wallet_snapshot
 *   notify     digests (and items.digest_id)
 *
 * Conventions: instants are INTEGER seconds since the epoch (UTC); dates
 * ("day") are INTEGER days since 1970-01-01; money is INTEGER micro-credits;
 * runs-pool amounts are runs × 1,000,000 so both pools share the statement
 * arithmetic.  An empty CSV cell is stored as NULL.  Reconcile results for
 * closed cycles carry frozen = 1 and are never rewritten (semantics §8).
 */
#include "ledger.h"
#include "iofault.h"
#include "alloc.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>

/* tly_ledger_run_key's values are stored, and XXH3's output is frozen from 0.8.0 on */
#if XXH_VERSION_NUMBER < 800
#error "libxxhash 0.8.0 or later is needed"
#endif

/* migration 12 adds a generated column (SQLite 3.31), migration 16 drops
 * a column (3.35); Debian 12 has 3.40 */
#if SQLITE_VERSION_NUMBER < 3035000
#error "SQLite 3.35 or later is needed"
#endif

static const char *const migrations[] = {
    /* 1: the initial schema */
    "CREATE TABLE bundles("
    "  id INTEGER PRIMARY KEY,"          /* ingest order */
    "  sha256 TEXT NOT NULL UNIQUE,"     /* identity: the content */
    "  name TEXT NOT NULL,"              /* base name as first named */
    "  status TEXT NOT NULL,"            /* loaded | rejected */
    "  quarantined INTEGER NOT NULL DEFAULT 0," /* rejects it caused: exit 3 on re-run */
    "  rows_loaded INTEGER NOT NULL DEFAULT 0,"
    "  duplicates INTEGER NOT NULL DEFAULT 0,"
    "  skipped TEXT,"                    /* skipped files, one per line */
    "  period_start INTEGER, period_end INTEGER);"
    "CREATE TABLE files("
    "  id INTEGER PRIMARY KEY, bundle_id INTEGER NOT NULL, path TEXT NOT NULL);"
    "CREATE TABLE accounts("
    "  account_id TEXT PRIMARY KEY, name TEXT NOT NULL, edition TEXT NOT NULL,"
    "  admin_email TEXT NOT NULL, cycle_anchor INTEGER NOT NULL," /* day */
    "  negative_limit INTEGER NOT NULL, low_threshold INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL, raw TEXT NOT NULL,"           /* for conflict tests */
    "  file_id INTEGER NOT NULL, line INTEGER NOT NULL);"
    "CREATE TABLE credits("
    "  account_id TEXT NOT NULL, txn_id TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  pool TEXT NOT NULL, type TEXT NOT NULL, amount INTEGER NOT NULL,"
    "  expires_at INTEGER, reference TEXT,"
    "  file_id INTEGER NOT NULL, line INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, txn_id));"
    "CREATE TABLE deployments("
    "  account_id TEXT NOT NULL, event_id TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  category TEXT NOT NULL, action TEXT NOT NULL, resource_id TEXT NOT NULL,"
    "  resource_name TEXT, owner TEXT,"
    "  deployment_id TEXT NOT NULL,"     /* defaulted to resource_id at ingest */
    "  deployment_name TEXT, deployment_type TEXT, hardware TEXT,"
    "  units INTEGER, replicas INTEGER, model_type TEXT, language TEXT,"
    "  language_version TEXT, endpoint TEXT,"
    "  file_id INTEGER NOT NULL, line INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, event_id));"
    "CREATE TABLE runs("
    "  account_id TEXT NOT NULL, event_id TEXT NOT NULL, ts INTEGER NOT NULL,"
    "  kind TEXT NOT NULL, resource_id TEXT NOT NULL, resource_name TEXT,"
    "  owner TEXT, outcome TEXT,"
    "  file_id INTEGER NOT NULL, line INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX runs_by_id ON runs(account_id, event_id);"
    "CREATE INDEX runs_by_time ON runs(account_id, ts);"
    "CREATE TABLE rejects("
    "  id INTEGER PRIMARY KEY, bundle TEXT NOT NULL, file TEXT NOT NULL,"
    "  line INTEGER,"                    /* NULL for bundle-level rejects */
    "  reason TEXT NOT NULL, raw BLOB);"
    "CREATE TABLE rates("
    "  hardware TEXT NOT NULL, category TEXT NOT NULL, description TEXT,"
    "  vcpu TEXT, memory_gb TEXT,"       /* as written in the card, for display */
    "  credits_per_hour INTEGER NOT NULL, effective_from INTEGER NOT NULL,"
    "  effective_to INTEGER, line INTEGER NOT NULL);"
    "CREATE TABLE state(key TEXT PRIMARY KEY, value INTEGER);"

    /* reconcile results; statements cover every cycle up to the as-of */
    "CREATE TABLE statements("
    "  account_id TEXT NOT NULL, pool TEXT NOT NULL,"
    "  cycle_start INTEGER NOT NULL, cycle_end INTEGER NOT NULL," /* days */
    "  state TEXT NOT NULL,"
    "  opening INTEGER NOT NULL, granted INTEGER NOT NULL, used INTEGER NOT NULL,"
    "  used_models INTEGER NOT NULL, used_finetune INTEGER NOT NULL,"
    "  used_guardrails INTEGER NOT NULL, used_scripts INTEGER NOT NULL,"
    "  used_ocr INTEGER NOT NULL, used_browser INTEGER NOT NULL,"
    "  used_runs INTEGER NOT NULL, adjusted INTEGER NOT NULL,"
    "  expired INTEGER NOT NULL, late INTEGER NOT NULL, closing INTEGER NOT NULL,"
    "  carried_to_next INTEGER NOT NULL, frozen INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(account_id, pool, cycle_start));"
    /* day buckets of chargeable usage: hosting/finetune (credits, seconds) and runs */
    "CREATE TABLE usage_day("
    "  account_id TEXT NOT NULL, day INTEGER NOT NULL,"
    "  category TEXT NOT NULL,"          /* model finetune guardrail script ocr browser | agent workflow tool */
    "  resource_id TEXT NOT NULL, deployment_id TEXT NOT NULL," /* '' for runs */
    "  credits INTEGER NOT NULL DEFAULT 0, seconds INTEGER NOT NULL DEFAULT 0,"
    "  runs INTEGER NOT NULL DEFAULT 0,"
    "  late INTEGER NOT NULL DEFAULT 0,"  /* 1: posted as a late charge */
    "  frozen INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX usage_by_account ON usage_day(account_id, day);"
    /* every deployment or fine-tuning job that ever started, at the as-of */
    "CREATE TABLE deployment_state("
    "  account_id TEXT NOT NULL, category TEXT NOT NULL," /* finetune for jobs */
    "  resource_id TEXT NOT NULL, deployment_id TEXT NOT NULL,"
    "  resource_name TEXT, deployment_name TEXT, deployment_type TEXT, owner TEXT,"
    "  model_type TEXT, language TEXT, language_version TEXT, endpoint TEXT,"
    "  hardware TEXT, units INTEGER, replicas INTEGER,"
    "  status TEXT NOT NULL,"            /* Deployed Undeployed Deleted */
    "  last_deployed INTEGER, last_updated INTEGER," /* days */
    "  first_ts INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, category, deployment_id));"
    /* agents/workflows/tools deployed at least once */
    "CREATE TABLE runnable_state("
    "  account_id TEXT NOT NULL, kind TEXT NOT NULL, resource_id TEXT NOT NULL,"
    "  name TEXT, owner TEXT, status TEXT NOT NULL, last_active INTEGER,"
    "  PRIMARY KEY(account_id, kind, resource_id));"
    /* the overview's current-cycle figures at the as-of */
    "CREATE TABLE account_state("
    "  account_id TEXT PRIMARY KEY, name TEXT, edition TEXT, admin_email TEXT,"
    "  as_of INTEGER NOT NULL, cycle_start INTEGER NOT NULL, cycle_end INTEGER NOT NULL,"
    "  runs_used INTEGER NOT NULL, runs_total INTEGER NOT NULL,"
    "  runs_remaining INTEGER NOT NULL, credits_used INTEGER NOT NULL,"
    "  credits_total INTEGER NOT NULL, credits_remaining INTEGER NOT NULL,"
    "  banner_credits TEXT NOT NULL, banner_runs TEXT NOT NULL,"
    "  stop_at INTEGER);"                /* latest stop for credits, if any */
    "CREATE TABLE discrepancies("
    "  account_id TEXT NOT NULL, kind TEXT NOT NULL, ts INTEGER,"
    "  category TEXT, resource_id TEXT, deployment_id TEXT,"
    "  credits INTEGER, detail TEXT, frozen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE actions("
    "  account_id TEXT NOT NULL, category TEXT NOT NULL, resource_id TEXT NOT NULL,"
    "  deployment_id TEXT NOT NULL, stop_at INTEGER NOT NULL, message TEXT NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE crossings("
    "  account_id TEXT NOT NULL, pool TEXT NOT NULL, cycle_start INTEGER NOT NULL,"
    "  threshold INTEGER NOT NULL, ts INTEGER NOT NULL, frozen INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(account_id, pool, cycle_start, threshold));"
    /*
     * E-mail items.  'key' is the item's natural identity, so recomputing
     * open cycles never creates an item twice; an item, once created, stays
     * (it may already have been delivered).  'detail' is JSON with the
     * figures the templates show.  digest_id is set by notify.
     */
    "CREATE TABLE items("
    "  id INTEGER PRIMARY KEY, account_id TEXT NOT NULL,"
    "  item TEXT NOT NULL,"              /* threshold negative_balance deployments_stopped script_deployed script_undeployed */
    "  pool TEXT, threshold INTEGER, ts INTEGER NOT NULL,"
    "  key TEXT NOT NULL, detail TEXT NOT NULL, digest_id INTEGER,"
    "  UNIQUE(account_id, key));"
    "CREATE TABLE digests("
    "  id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, as_of INTEGER NOT NULL,"
    "  message_id TEXT NOT NULL, recipient TEXT NOT NULL, message BLOB NOT NULL,"
    "  handed_off INTEGER NOT NULL DEFAULT 0,"    /* 0 waits, 1 done, 2 outbox only (digest.c) */
    "  UNIQUE(account_id, as_of));"
    /*
     * The last closed cycle of each account, with the rowid high-water marks
     * of the event tables at the moment it closed: an event above the mark
     * whose ts is before closed_end arrived late (semantics §8).
     */
    "CREATE TABLE closes("
    "  account_id TEXT PRIMARY KEY, closed_end INTEGER NOT NULL," /* instant */
    "  credits_mark INTEGER NOT NULL, deployments_mark INTEGER NOT NULL,"
    "  runs_mark INTEGER NOT NULL);"
    /* every grant's lot at the as-of, for `tally balance` (rewritten by reconcile) */
    "CREATE TABLE lots("
    "  account_id TEXT NOT NULL, pool TEXT NOT NULL, txn_id TEXT NOT NULL,"
    "  ts INTEGER NOT NULL, expires_at INTEGER, type TEXT NOT NULL,"
    "  remaining INTEGER NOT NULL);"
    /* wallet lots at closed_end (txn_id '' holds the debt as a negative remaining) */
    "CREATE TABLE wallet_snapshot("
    "  account_id TEXT NOT NULL, pool TEXT NOT NULL, txn_id TEXT NOT NULL,"
    "  ts INTEGER NOT NULL, expires_at INTEGER, type TEXT NOT NULL,"
    "  remaining INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, pool, txn_id));",

    /*
     * 2 (ingest): a reject knows the bundles row it belongs to, so
     * `ingest --rejects` can list the earlier rejects of a bundle offered
     * again (it exits 3 as the first time; the file says why).  NULL for a
     * bundle that could not be read at all.
     */
    "ALTER TABLE rejects ADD COLUMN bundle_id INTEGER;"
    "CREATE INDEX rejects_by_bundle ON rejects(bundle_id);",

    /*
     * 3 (reconcile): the runs of one account in time order are read from
     * the index alone.  Without the extra columns every row cost a lookup
     * in the table, whose pages mix all accounts (rows arrive in time
     * order): a third of reconcile's time went to those page reads.
     */
    "DROP INDEX runs_by_time;"
    "CREATE INDEX runs_by_time ON runs(account_id, ts, event_id, kind, resource_id, resource_name);",

    /*
     * 4 (ingest): the dedup index leads with event_id.  Exports number
     * their events in time order, so new ids land at the index's right
     * edge instead of in a thousand account ranges: 18% off a first load
     * of a million runs.  Still unique per (account, id), and still the
     * index of the conflict lookup by both columns.
     */
    "DROP INDEX runs_by_id;"
    "CREATE UNIQUE INDEX runs_by_id ON runs(event_id, account_id);",

    /*
     * 5 (reconcile): runs_by_time without resource_name.  A runnable takes
     * its name from runs.csv only when deployments.csv never names it, and
     * reconcile then asks once per runnable; carrying the name in the index
     * cost every run row its bytes twice.
     */
    "DROP INDEX runs_by_time;"
    "CREATE INDEX runs_by_time ON runs(account_id, ts, event_id, kind, resource_id);",

    /*
     * 6 (reconcile): runs per account, UTC day and runnable, kept by ingest
     * in the bundle's transaction (rundays.c).  A night re-simulates the
     * open cycle; its quiet days are read from here, a few rows a day,
     * instead of one index row per run (simulate.c "quiet days").
     */
    "CREATE TABLE run_day("
    "  account_id TEXT NOT NULL, day INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  resource_id TEXT NOT NULL, runs INTEGER NOT NULL, first_ts INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, day, kind, resource_id)) WITHOUT ROWID;"
    "INSERT INTO run_day SELECT account_id,"
    "  CASE WHEN ts >= 0 THEN ts / 86400 ELSE (ts - 86399) / 86400 END," /* floor */
    "  kind, resource_id, count(*), min(ts)"
    "  FROM runs GROUP BY 1, 2, 3, 4;",

    /*
     * 7 (reconcile): late runs are summed at ingest (rundays.h) under the
     * loading bundle, and closes.runs_mark becomes the last bundle id at the
     * close.  Reconcile used to find them as runs above a rowid mark before
     * the close: a scan of the account's whole closed history every night.
     * The runs still pending (above the old mark, before the close) move
     * here; the old mark, the max rowid at the close, names its bundle.
     */
    "CREATE TABLE late_run_day("
    "  account_id TEXT NOT NULL, bundle_id INTEGER NOT NULL, day INTEGER NOT NULL,"
    "  kind TEXT NOT NULL, resource_id TEXT NOT NULL, runs INTEGER NOT NULL,"
    "  first_ts INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, bundle_id, day, kind, resource_id)) WITHOUT ROWID;"
    "INSERT INTO late_run_day SELECT r.account_id, f.bundle_id,"
    "  CASE WHEN r.ts >= 0 THEN r.ts / 86400 ELSE (r.ts - 86399) / 86400 END,"
    "  r.kind, r.resource_id, count(*), min(r.ts)"
    "  FROM runs r JOIN closes c ON c.account_id = r.account_id JOIN files f ON f.id = r.file_id"
    "  WHERE r.rowid > c.runs_mark AND r.ts < c.closed_end GROUP BY 1, 2, 3, 4, 5;"
    "UPDATE closes SET runs_mark = COALESCE((SELECT f.bundle_id FROM runs r"
    "  JOIN files f ON f.id = r.file_id WHERE r.rowid = closes.runs_mark), 0);",

    /*
     * 8 (ingest): runs_by_time narrows to the columns of its order.  Since
     * quiet days (6) reconcile reads only a few days run by run, so the
     * covering columns (migration 3) no longer pay for their bytes: building
     * the wide index was a third of a bulk load.
     */
    "DROP INDEX runs_by_time;"
    "CREATE INDEX runs_by_time ON runs(account_id, ts, event_id);",

    /*
     * 9 (ingest): runs_by_id indexes a 64-bit key of (account_id,
     * event_id) instead of the two texts (tly_ledger_run_key).  Event ids
     * are random UUIDs, so one night's runs land on nearly every page of
     * the id index, and the night rewrites it whole: 573 MB for 10M runs
     * keyed by text, a third of that by integer.  A first load sorts
     * integers instead of strings.  Not unique: ingest compares the ids of
     * equal keys, so a collision costs a comparison, never a wrong
     * duplicate.
     */
    "ALTER TABLE runs ADD COLUMN id_key INTEGER NOT NULL DEFAULT 0;"
    "UPDATE runs SET id_key = tally_run_key(account_id, event_id);"
    "DROP INDEX runs_by_id;"
    "CREATE INDEX runs_by_id ON runs(id_key);",

    /*
     * 10 (reconcile): every night reads each account's deployment events in
     * time order, from its first (the lifecycle of closed time is replayed).
     * The rows of one account are scattered over the table in arrival
     * order, so that was one table lookup per event, from pages the night's
     * ingest had pushed out of the cache: 40% of a night's reconcile.  This
     * index holds every column the read needs, in its order.
     */
    "CREATE INDEX deployments_by_time ON deployments(account_id, ts, event_id, category, action,"
    "  resource_id, resource_name, owner, deployment_id, deployment_name, deployment_type, hardware,"
    "  units, replicas, model_type, language, language_version, endpoint);",

    /*
     * 11 (ingest): the id keys leave the runs table for two tables of
     * their own, a large one (run_ids) and a small one for the latest
     * bundles (run_ids_new).  A night's random keys touched every page of
     * the one index (172 MB for 10M runs, written twice through the WAL);
     * now they touch only the small table's pages, and the large one is
     * only read.  Ingest moves the small table into the large one, an
     * eighth of the key space at a time, once it outgrows an eighth of
     * the runs (ingest.c "merge_new_ids").
     */
    "CREATE TABLE run_ids(id_key INTEGER NOT NULL, run INTEGER NOT NULL,"
    "  PRIMARY KEY(id_key, run)) WITHOUT ROWID;"
    "CREATE TABLE run_ids_new(id_key INTEGER NOT NULL, run INTEGER NOT NULL,"
    "  PRIMARY KEY(id_key, run)) WITHOUT ROWID;"
    "INSERT INTO run_ids SELECT id_key, rowid FROM runs ORDER BY 1, 2;"
    "DROP INDEX runs_by_id;",

    /*
     * 12 (ingest): the time index leads with the UTC day (runs_by_day).  A
     * night's runs landed at the end of every account's range of
     * runs_by_time, some 4 pages rewritten per account (5.6k for 1000
     * accounts), which was 45% of a night's ingest.  Day first, they all
     * land in the newest day's few hundred pages.  Reconcile reads an
     * account's runs one day at a time (the days from run_day); the 36-byte
     * event id is not in the index: SQLite sorts the ties of each second.
     */
    "ALTER TABLE runs ADD COLUMN day INTEGER GENERATED ALWAYS AS"
    "  (CASE WHEN ts >= 0 THEN ts / 86400 ELSE (ts - 86399) / 86400 END) VIRTUAL;"  /* floor */
    "DROP INDEX runs_by_time;"
    "CREATE INDEX runs_by_day ON runs(day, account_id, ts);",

    /*
     * 13 (ingest): the Bloom filter of the run id keys (idfilter.h), one
     * row; its figures are in state.  Ingest builds it when it finds none.
     */
    "CREATE TABLE run_filter(id INTEGER PRIMARY KEY CHECK (id = 1), bits BLOB NOT NULL);",

    /*
     * 14 (ingest): every accounts.csv version, one per (account,
     * updated_at).  With only the version in force kept, a row with the
     * updated_at of an older version but other content passed as loaded,
     * and the same row re-sent was not a duplicate (inputs.md "accounts.csv":
     * the same updated_at with different content is a conflict).
     */
    "CREATE TABLE account_versions("
    "  account_id TEXT NOT NULL, updated_at INTEGER NOT NULL, name TEXT NOT NULL,"
    "  edition TEXT NOT NULL, admin_email TEXT NOT NULL, cycle_anchor INTEGER NOT NULL,"
    "  negative_limit INTEGER NOT NULL, low_threshold INTEGER NOT NULL,"
    "  file_id INTEGER NOT NULL, line INTEGER NOT NULL,"
    "  PRIMARY KEY(account_id, updated_at)) WITHOUT ROWID;"
    "INSERT INTO account_versions SELECT account_id, updated_at, name, edition, admin_email,"
    "  cycle_anchor, negative_limit, low_threshold, file_id, line FROM accounts;",

    /*
     * 15 (rates, reconcile): every rate card a run priced with is kept, by
     * version (rates.card; the highest is in force), and a closed cycle's
     * statements note the version in force at its close.  Late data
     * re-meters closed time at the prices it was charged at (semantics §10:
     * prices change only open time; meter.c tly_card_layer).  Cycles closed
     * before this migration take the card then in force, the one they were
     * last metered at; state 'card_used' is the last version a run used.
     */
    "ALTER TABLE rates ADD COLUMN card INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE statements ADD COLUMN card INTEGER;"
    "UPDATE statements SET card = 1 WHERE frozen = 1;"
    "INSERT OR REPLACE INTO state(key, value) SELECT 'card_used', 1"
    "  WHERE EXISTS(SELECT 1 FROM rates) AND EXISTS(SELECT 1 FROM statements);",

    /*
     * 16 (ingest): runs.id_key goes.  Since migration 11 the keys live in
     * run_ids and run_ids_new; the column was kept for a bulk load to
     * build run_ids from, which the key spool now does (keyspool.h).  Its
     * 9 bytes a run were 5% of the table.  SQLite rewrites the table once:
     * about 11 s for 10M runs.
     */
    "ALTER TABLE runs DROP COLUMN id_key;",

    /*
     * 17 (notify): the as-of of the run whose swapped-in outbox first held
     * each digest (digest.h "Outbox backlog"); NULL until then.  Digests
     * stored before are taken as shown at their own as-of.
     */
    "ALTER TABLE digests ADD COLUMN shown_as_of INTEGER;"
    "UPDATE digests SET shown_as_of = as_of;",

    /*
     * 18 (reconcile): items by time.  An item raised once per cycle looks
     * for its cycle's copy (reconcile.c W_ITEM), and a recompute clears the
     * undelivered items of open time (W_ITEMS_CLEAR); both read an
     * account's items from an instant on.  Through UNIQUE(account_id, key)
     * alone they read all of them, so an account in debt for N cycles cost
     * N^2: `balance` at an as-of 500 years on took 4.2 s for one account.
     */
    "CREATE INDEX items_by_time ON items(account_id, ts);",

    /*
     * 19 (reconcile, report): a deployment's instant of its latest event
     * or stop, not of its first: of a resource's deployments, the one
     * updated last gives the hardware "it last ran with" (outputs.md), and
     * the first start picked one that had stopped earlier the same day.
     * Reconcile rewrites the table, so the values follow with it.
     */
    "ALTER TABLE deployment_state RENAME COLUMN first_ts TO last_ts;",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/*
 * Another run is kept out by the lock file (exit 75 at once), but another
 * program (a sqlite3 shell in a transaction, a backup) holds SQLite's own
 * lock, and SQLite gives up after the busy timeout.  That is the same
 * condition for whoever runs Tally: the ledger is busy, nothing is wrong
 * with it, and a run later succeeds.  So it is 75 too, not the 74 of a
 * failed disk, and the nightly wrapper and the timer treat it alike.
 */
static enum tly_err failure_code(struct tly_ledger *l)
{
    /* not SQLITE_LOCKED: without a shared cache, that is a conflict inside
     * Tally's own connection, a bug that no retry mends */
    int busy = l->db && (sqlite3_errcode(l->db) & 0xff) == SQLITE_BUSY;
    return busy ? TLY_ERR_LOCKED : TLY_ERR_LEDGER;
}

static const char *busy_hint(enum tly_err code)
{
    return code == TLY_ERR_LOCKED ? " (another program holds the ledger; try again later)" : "";
}

int tly_ledger_error(struct tly_ledger *l, const char *what)
{
    enum tly_err code = failure_code(l);
    return tly_error(code, "ledger '%s': %s: %s%s", l->path, what,
                     l->db ? sqlite3_errmsg(l->db) : "not open", busy_hint(code));
}

int tly_ledger_exec(struct tly_ledger *l, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(l->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        enum tly_err code = failure_code(l);
        int err = tly_error(code, "ledger '%s': %s%s", l->path, msg ? msg : "error", busy_hint(code));
        sqlite3_free(msg);
        return err;
    }
    return TLY_OK;
}

int64_t tly_ledger_run_key(const char *account, size_t account_len, const char *event, size_t event_len)
{
    XXH64_hash_t h = XXH3_64bits_withSeed(event, event_len, XXH3_64bits(account, account_len));
    int64_t key;

    memcpy(&key, &h, sizeof key);
    return key;
}

static void sql_run_key(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    const char *account = (const char *)sqlite3_value_text(argv[0]);
    size_t account_len = (size_t)sqlite3_value_bytes(argv[0]);
    const char *event = (const char *)sqlite3_value_text(argv[1]);
    size_t event_len = (size_t)sqlite3_value_bytes(argv[1]);

    (void)argc;
    if (!account || !event)
        sqlite3_result_null(cx);
    else
        sqlite3_result_int64(cx, tly_ledger_run_key(account, account_len, event, event_len));
}

static int lock(struct tly_ledger *l)
{
    char lockpath[4096];
    if (snprintf(lockpath, sizeof lockpath, "%s.lock", l->path) >= (int)sizeof lockpath)
        return tly_error(TLY_ERR_USAGE, "ledger path too long");
    l->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->lock_fd < 0)
        return tly_error(TLY_ERR_IO, "cannot open '%s': %s", lockpath, strerror(errno));
    if (flock(l->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return tly_error(TLY_ERR_LOCKED, "ledger '%s' is locked by another run", l->path);
        return tly_error(TLY_ERR_IO, "cannot lock '%s': %s", lockpath, strerror(errno));
    }
    return TLY_OK;
}

static int migrate(struct tly_ledger *l)
{
    sqlite3_stmt *st;
    int version, err;

    if ((err = tly_ledger_prepare(l, "PRAGMA user_version", &st)))
        return err;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return tly_ledger_error(l, "reading the schema version");
    }
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > NMIGRATIONS)
        return tly_error(TLY_ERR_LEDGER, "ledger '%s' has schema %d, newer than this tally (%d)",
                         l->path, version, NMIGRATIONS);
    for (; version < NMIGRATIONS; version++) {
        char pragma[64];
        if ((err = tly_ledger_begin(l)))
            return err;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version + 1);
        if ((err = tly_ledger_exec(l, migrations[version])) || (err = tly_ledger_exec(l, pragma))) {
            tly_ledger_rollback(l);
            return err;
        }
        if ((err = tly_ledger_commit(l)))
            return err;
    }
    return TLY_OK;
}

/* Sets a journal mode; 1 when SQLite reports the one wanted. */
static int journal_mode(struct tly_ledger *l, const char *pragma, const char *want)
{
    sqlite3_stmt *st;
    int got;

    if (sqlite3_prepare_v2(l->db, pragma, -1, &st, NULL) != SQLITE_OK)
        return 0;
    got = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
          !strcmp((const char *)sqlite3_column_text(st, 0), want);
    sqlite3_finalize(st);
    return got;
}

int tly_ledger_open(const char *path, unsigned flags, struct tly_ledger **out)
{
    struct tly_ledger *l;
    int err;

    *out = NULL;
    l = tly_calloc(1, sizeof *l);
    if (!l)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    l->lock_fd = -1;
    if (!(l->path = tly_strdup(path))) {
        err = tly_error(TLY_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((flags & TLY_LEDGER_LOCK) && (err = lock(l)))
        goto fail;
    /* one connection used by one thread: SQLite's own mutexes are pure cost */
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        tly_iofault_vfs()) != SQLITE_OK) {
        err = tly_ledger_error(l, "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(l->db, 5000);
    if (sqlite3_create_function_v2(l->db, "tally_run_key", 2,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                   sql_run_key, NULL, NULL, NULL) != SQLITE_OK) {
        err = tly_ledger_error(l, "registering tally_run_key");
        goto fail;
    }
    /*
     * 16 KiB pages: fewer B-tree levels for the runs indexes (only a new
     * file takes it).  WAL with synchronous=NORMAL is durable; a ledger
     * that stays in rollback-journal mode (another connection kept it from
     * switching) needs FULL for that.
     */
    if ((err = tly_ledger_exec(l, "PRAGMA page_size=16384;")))
        goto fail;
    if ((err = tly_ledger_exec(l, journal_mode(l, "PRAGMA journal_mode=WAL", "wal")
                                  ? "PRAGMA synchronous=NORMAL;" : "PRAGMA synchronous=FULL;")) ||
        (err = tly_ledger_exec(l, "PRAGMA foreign_keys=OFF; PRAGMA cache_size=" TLY_LEDGER_CACHE ";"
                                  " PRAGMA temp_store=FILE;")))
        goto fail;
    if ((err = migrate(l)))
        goto fail;
    *out = l;
    return TLY_OK;
fail:
    tly_ledger_close(l);
    return err;
}

void tly_ledger_close(struct tly_ledger *l)
{
    if (!l)
        return;
    if (l->db)
        sqlite3_close(l->db);
    if (l->lock_fd >= 0)
        close(l->lock_fd);      /* releases the flock */
    tly_free(l->path);
    tly_free(l);
}

int tly_ledger_begin(struct tly_ledger *l)
{
    return tly_ledger_exec(l, "BEGIN IMMEDIATE");
}

int tly_ledger_commit(struct tly_ledger *l)
{
    return tly_ledger_exec(l, "COMMIT");
}

void tly_ledger_rollback(struct tly_ledger *l)
{
    if (l && l->db && !sqlite3_get_autocommit(l->db))
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * In WAL mode every page of a transaction is written twice: to the WAL,
 * then into the file by the checkpoint.  A rollback journal keeps only the
 * pages that existed when the transaction began; pages added to the end of
 * the file are written once, and a rollback truncates them away.  A first
 * load of 10M runs is 2 GB of new pages, so it takes 17% less time this
 * way.  It is as safe: a killed load leaves a hot journal that the next
 * open rolls back before anything reads the file, and synchronous=FULL
 * gives the journal the power-loss safety WAL has with NORMAL.
 *
 * It is only an optimisation, so it never fails a load.  Leaving WAL needs
 * the file to itself: with another connection open (a sqlite3 shell) the
 * pragma reports "wal" or an error, and the load runs in WAL as before.
 * Going back can meet a reader too, after the bundle is committed: that is
 * a warning, and the next open goes back to WAL.
 */
int tly_ledger_append_journal(struct tly_ledger *l)
{
    if (!journal_mode(l, "PRAGMA journal_mode=DELETE", "delete"))
        return 0;
    if (sqlite3_exec(l->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) == SQLITE_OK)
        return 1;
    tly_ledger_wal_again(l);        /* never a rollback journal without FULL */
    return 0;
}

void tly_ledger_wal_again(struct tly_ledger *l)
{
    if (!journal_mode(l, "PRAGMA journal_mode=WAL", "wal") ||
        sqlite3_exec(l->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        tly_warn("'%s' stays in rollback-journal mode until the next run: %s", l->path,
                 sqlite3_errmsg(l->db));
}

int tly_ledger_prepare(struct tly_ledger *l, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v2(l->db, sql, -1, out, NULL) != SQLITE_OK) {
        *out = NULL;
        return tly_ledger_error(l, "preparing a statement");
    }
    return TLY_OK;
}

int tly_ledger_step_done(struct tly_ledger *l, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return tly_ledger_error(l, "writing");
    return TLY_OK;
}

int tly_ledger_get_int(struct tly_ledger *l, const char *key, int64_t *value, int *found)
{
    sqlite3_stmt *st;
    int err, rc;

    if ((err = tly_ledger_prepare(l, "SELECT value FROM state WHERE key = ?", &st)))
        return err;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (*found)
        *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tly_ledger_error(l, "reading state");
    return TLY_OK;
}

int tly_ledger_set_int(struct tly_ledger *l, const char *key, int64_t value)
{
    sqlite3_stmt *st;
    int err;

    if ((err = tly_ledger_prepare(l, "INSERT INTO state(key, value) VALUES(?, ?)"
                                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st)))
        return err;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    err = tly_ledger_step_done(l, st);
    sqlite3_finalize(st);
    return err;
}

int tly_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s, int len)
{
    if (!s || len == 0)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, len, SQLITE_STATIC);
}
