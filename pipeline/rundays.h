/*
 * rundays.h — run_day and late_run_day: runs per account, UTC day and runnable.
 *
 * Reconcile replays an open cycle every night, and most of its days are
 * quiet for the runs pool (no grant, expiry or threshold inside): such a
 * day is applied from its summary rows instead of run by run (simulate.c,
 * "quiet days").  Ingest keeps the summary: it counts the runs it inserts
 * into this in-memory aggregate and upserts it into run_day inside the
 * bundle's transaction, so run_day always sums exactly the runs table.
 *
 * A run whose time is before its account's last close (closes.closed_end)
 * arrived late (semantics §8).  Closes only move in reconcile, so lateness
 * is known for good when the run is loaded: late runs are also summed into
 * late_run_day under the loading bundle's id, which is what the next
 * reconcile posts, instead of searching the account's closed history.
 *
 *   tly_rundays_create / _destroy   the aggregate (the caller owns it)
 *   tly_rundays_add                 one inserted run; flushes when full
 *   tly_rundays_flush               upserts into run_day and empties it
 *
 * After a rollback the caller destroys the aggregate: nothing of it is kept.
 */
#ifndef TLY_RUNDAYS_H
#define TLY_RUNDAYS_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"

struct tly_rundays;

/* Reads the closes as they are now: call inside the bundle's transaction. */
int tly_rundays_create(struct tly_rundays **out, struct tly_ledger *l, int64_t bundle_id);
void tly_rundays_destroy(struct tly_rundays *rd);
/* Ids are at most 128 bytes (checked by ingest). */
int tly_rundays_add(struct tly_rundays *rd, const char *account_id, size_t alen,
                    const char *kind, size_t klen, const char *resource_id, size_t rlen, int64_t ts);
int tly_rundays_flush(struct tly_rundays *rd);

#endif
