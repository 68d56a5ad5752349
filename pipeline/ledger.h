/*
 * ledger.h — the embedded SQLite ledger: open, lock, migrate, transact.
 *
 * The ledger is one SQLite file in WAL mode.  Its schema is created and
 * upgraded by the numbered migrations in ledger.c (PRAGMA user_version);
 * the tables, and which stage writes each, are described there and in
 * pipeline/README.md.  Prepared statements only.
 *
 * Writers take an exclusive, non-blocking flock() on "<db>.lock" before
 * opening, so two Tally processes never write one ledger at once: the second
 * gets TLY_ERR_LOCKED (exit 75) at once.
 *
 * Ownership: tly_ledger_open() returns a ledger the caller closes with
 * tly_ledger_close(), which accepts NULL and a half-opened ledger.
 */
#ifndef TLY_LEDGER_H
#define TLY_LEDGER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct tly_ledger {
    sqlite3 *db;
    int lock_fd;            /* -1 when not locked */
    char *path;
};

#define TLY_LEDGER_LOCK 1   /* take the writer lock */
#define TLY_LEDGER_CACHE "-65536"   /* PRAGMA cache_size: 64 MiB of pages */

/*
 * A run's id key: XXH3-64 (libxxhash) of its event_id, seeded with that of
 * its account_id, as a signed integer.  runs.id_key holds it and
 * runs_by_id indexes it (migration 9), so it is fixed for good.  Equal
 * keys do not mean equal ids: readers compare the ids too.  Every
 * connection also has it as the SQL function tally_run_key(account, id).
 */
int64_t tly_ledger_run_key(const char *account, size_t account_len, const char *event, size_t event_len);

/* Opening and closing. */
int tly_ledger_open(const char *path, unsigned flags, struct tly_ledger **out);
void tly_ledger_close(struct tly_ledger *l);

/*
 * Transactions: one per bundle or per stage.  A statement that fails fails
 * its transaction: the caller rolls back, never goes on.  So a statement
 * that writes many rows into pages that already exist says INSERT OR FAIL
 * (ingest's runs and run ids): by default SQLite keeps a statement journal
 * for it, a copy of each existing page the statement changes, so that a
 * constraint error can undo that statement alone.  That journal is a
 * temporary file that a night's ingest of 340k runs filled with 634 MB,
 * and a night that merges run_ids_new with a copy of all of run_ids.  A
 * failed OR FAIL statement keeps its earlier rows, and the rollback takes
 * them; an I/O error makes SQLite roll the transaction back itself, which
 * tly_ledger_rollback allows for.
 */
int tly_ledger_begin(struct tly_ledger *l);
int tly_ledger_commit(struct tly_ledger *l);
void tly_ledger_rollback(struct tly_ledger *l);

/*
 * A load of mostly new pages (a first load) runs faster under a rollback
 * journal.  tly_ledger_append_journal switches to it when nothing else
 * has the file open, and says whether it did; tly_ledger_wal_again goes
 * back, warning if it cannot.  Outside a transaction only; neither fails
 * the caller (ledger.c says why it is safe).
 */
int tly_ledger_append_journal(struct tly_ledger *l);
void tly_ledger_wal_again(struct tly_ledger *l);

/* Statements: prepare (error reported), and step-and-check helpers. */
int tly_ledger_prepare(struct tly_ledger *l, const char *sql, sqlite3_stmt **out);
int tly_ledger_exec(struct tly_ledger *l, const char *sql);   /* no parameters */
/* Steps a statement that returns no rows (INSERT/UPDATE/DELETE) and resets it. */
int tly_ledger_step_done(struct tly_ledger *l, sqlite3_stmt *st);
/*
 * Reports the current SQLite error with 'what': TLY_ERR_LOCKED when another
 * program held SQLite's lock past the busy timeout, else TLY_ERR_LEDGER.
 */
int tly_ledger_error(struct tly_ledger *l, const char *what);

/* Small key/value state (e.g. "latest_period_end"). */
int tly_ledger_get_int(struct tly_ledger *l, const char *key, int64_t *value, int *found);
int tly_ledger_set_int(struct tly_ledger *l, const char *key, int64_t value);

/*
 * Binding text that may be empty: binds NULL for NULL/"" (empty = absent).
 * The text is not copied (SQLITE_STATIC), so the bind cannot fail for want
 * of memory: 's' must stay as it is until the statement has been stepped.
 */
int tly_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s, int len);

#endif
