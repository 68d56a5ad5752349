/*
 * idfilter.h — a Bloom filter of the run id keys, kept in the ledger.
 *
 * A night's runs are nearly all new, yet each was looked up in run_ids, a
 * B-tree far larger than the cache: a fifth of a night's ingest.  The
 * filter answers "certainly new" for all but about one key in fifty, so
 * only those are looked up; and since the lookups are then rare, no
 * staging table sorted for the lookups is needed.
 *
 * It is a split block Bloom filter (as in Apache Parquet): each key sets 8
 * bits in one 32-byte block, so a test is one cache line.  It is sized at
 * 16 bits per key when built and rebuilt from the key tables once the keys
 * have doubled (8 bits per key: about 2% false positives), within 64 MiB.
 *
 * The stored filter (run_filter, one row) holds every key of run_ids; a
 * load adds the keys of run_ids_new, which is small, in memory.  So a
 * night writes it only when run_ids changes: a bulk load, a move of
 * keys from run_ids_new, or a rebuild.  Saved after a move of some of
 * run_ids_new (a slice), it holds the rest too; a load adds those again,
 * which sets no new bit.  It is written in the transaction that
 * changes run_ids, so a rollback takes both back.  A missing row, a
 * foreign byte order or a blob whose XXH3 differs from the one stored
 * with it is rebuilt, never trusted.
 *
 *   tly_idfilter_load       the filter of run_ids and run_ids_new
 *   tly_idfilter_new        an empty filter for that many runs (a bulk load fills it)
 *   tly_idfilter_build      a new filter of every key in the key tables
 *   tly_idfilter_add        one new key (it goes to run_ids_new)
 *   tly_idfilter_merged     run_ids_new moved into run_ids
 *   tly_idfilter_moved      that many keys of run_ids_new moved into run_ids
 *   tly_idfilter_may_hold   0: the key is certainly not in the ledger
 *   tly_idfilter_unsaved    built or rebuilt since the last save or load
 *   tly_idfilter_save       writes it into run_filter
 *   tly_idfilter_destroy
 *
 * The caller owns the filter (create by load or build, free by destroy).
 */
#ifndef TLY_IDFILTER_H
#define TLY_IDFILTER_H

#include <stdint.h>

#include "ledger.h"

struct tly_idfilter;

int tly_idfilter_load(struct tly_ledger *l, struct tly_idfilter **out);
/* Sized as build sizes it for 'runs' runs; unsaved.  Keys added then count as
   run_ids_new's until tly_idfilter_merged. */
int tly_idfilter_new(int64_t runs, struct tly_idfilter **out);
int tly_idfilter_build(struct tly_ledger *l, struct tly_idfilter **out);
void tly_idfilter_add(struct tly_idfilter *f, int64_t key);
void tly_idfilter_merged(struct tly_idfilter *f);
void tly_idfilter_moved(struct tly_idfilter *f, int64_t keys);
int tly_idfilter_may_hold(const struct tly_idfilter *f, int64_t key);
int tly_idfilter_unsaved(const struct tly_idfilter *f);
int tly_idfilter_save(struct tly_ledger *l, struct tly_idfilter *f);
void tly_idfilter_destroy(struct tly_idfilter *f);

#endif
