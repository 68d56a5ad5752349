/*
 * runids.h — writing run id keys: the (id_key, run) pairs of run_ids and
 * run_ids_new (ledger.c migration 11).
 *
 * The writer inserts pairs 64 to a statement: one statement per key spent
 * more time starting and ending statements than inserting (10M keys of a
 * bulk load: 9.5 s, against 4 s for INSERT ... SELECT).
 *
 * The held keys are a night's, on their way to run_ids_new.  A night's runs
 * are nearly all new and their keys random: inserted as they came, each
 * landed on a random page of run_ids_new, a third of a night's ingest.
 * They wait here instead and go in in key order (tly_runids_held_flush), so
 * the inserts walk the table's pages once, left to right.  A lookup of the
 * run in force must still see every earlier run: before one, the caller
 * asks tly_runids_held_holds() and flushes when the key waits here, which
 * happens only for a run sent twice in one bundle (or a rare key collision).
 * At most 'max' pairs wait; the next add flushes them.  A run that itself
 * waits to be inserted (ingest.c "held runs") has its key expected: held
 * from tly_runids_held_expect until the flush after its pair is added, so
 * the caller inserts such runs before it flushes the keys.
 *
 * Usage:
 *     tly_runids_held_create(l, TLY_RUNIDS_HELD_MAX, &h);
 *     if (tly_runids_held_holds(h, key)) tly_runids_held_flush(h);   before a lookup
 *     tly_runids_held_expect(h, key) ...;                            (optional)
 *     tly_runids_held_add(h, key, run) ...;
 *     tly_runids_held_flush(h);                                      before the commit
 *     tly_runids_held_destroy(h);
 *
 * Ownership: each owns its statements and buffers; the ledger must outlive
 * them.  Errors: TLY_ERR_NOMEM, or the ledger's.  destroy and finalize
 * accept what create or prepare left after a failure (and NULL).
 */
#ifndef TLY_RUNIDS_H
#define TLY_RUNIDS_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "ledger.h"

#define TLY_RUNIDS_PER_INSERT 64
/* 8 MiB of pairs; with 32,768 held runs expected, at most 2^21 slots
 * (16 MiB) and a list of their keys (8 MiB) */
#define TLY_RUNIDS_HELD_MAX (1 << 19)

struct tly_runids_writer {
    struct tly_ledger *l;
    sqlite3_stmt *batch, *one;
};

/* Prepares the inserts into 'table' (run_ids or run_ids_new), OR FAIL (ledger.h "Transactions"). */
int tly_runids_writer_prepare(struct tly_runids_writer *w, struct tly_ledger *l, const char *table);
/* Inserts n pairs: full batches, then the rest one by one. */
int tly_runids_writer_put(struct tly_runids_writer *w, const int64_t (*pairs)[2], size_t n);
void tly_runids_writer_finalize(struct tly_runids_writer *w);

struct tly_runids_held;

int tly_runids_held_create(struct tly_ledger *l, size_t max, struct tly_runids_held **out);
int tly_runids_held_add(struct tly_runids_held *h, int64_t key, int64_t run);
int tly_runids_held_expect(struct tly_runids_held *h, int64_t key);
int tly_runids_held_holds(const struct tly_runids_held *h, int64_t key);
/* Inserts the waiting pairs into run_ids_new in key order; none wait after. */
int tly_runids_held_flush(struct tly_runids_held *h);
void tly_runids_held_destroy(struct tly_runids_held *h);

#endif
