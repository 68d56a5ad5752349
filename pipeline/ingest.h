/*
 * ingest.h — bundles into the ledger (spec inputs.md; outputs.md rejects).
 *
 * One bundle is one transaction: it is loaded whole, or rejected whole and
 * leaves only its reject row and a `bundles` row with status 'rejected' (so
 * the same content offered again is "already ingested (rejected)").  A
 * bundle whose content (tly_bundle_identity) was ingested before changes
 * nothing.  Every input row ends as exactly one of: loaded, duplicate,
 * quarantined (a row of `rejects`); a file-level reject (missing_column,
 * quote_error) is one quarantined row for the rows it covers.
 *
 * The tables written: bundles, files, accounts, credits, deployments, runs,
 * rejects, and state "latest_period_end" (the largest manifest period_end
 * of a loaded bundle: the run's default as-of).
 */
#ifndef TLY_INGEST_H
#define TLY_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "settings.h"

/*
 * Counters across the bundles of one command; zero it before the first
 * call (struct tly_ingest_stats st = {0}) and release it after the last.
 */
struct tly_ingest_stats {
    long bundles_loaded, bundles_already, bundles_rejected;
    long rows_loaded, duplicates, quarantined;   /* quarantined = row+file rejects */
    long files_skipped;
    /* added beyond the lead's API */
    long bundles_already_rejected;  /* of bundles_already: rejected when first seen */
    long superseded;                /* accounts rows loaded but older than the one in force */
    long quarantined_earlier;       /* rejects of already-ingested bundles, from their first time */
    char **skipped;                 /* "BUNDLE: PATH" per skipped file; owned, see release */
    int64_t *bundle_ids;            /* bundles rows this command touched (new or already) */
    char identity[65];              /* the last bundle's sha256 identity, "" when unreadable */
    long nbundle_ids;
    size_t skipped_cap, ids_cap;
};

/*
 * Ingests one bundle in one transaction.  Returns TLY_OK (loaded, or already
 * ingested: same content hash → changes nothing, says so on stderr),
 * TLY_QUARANTINED when the bundle was rejected whole or any row/file of it
 * was quarantined — now or when it was first ingested (bundles.quarantined),
 * or a hard error (ledger I/O: TLY_ERR_LEDGER, TLY_ERR_NOMEM).  Skipped files
 * are named on stderr one line each ("tally: ingest: 'b.tar.gz': skipped
 * 'README.md'") and appended to st->skipped.  The first few row rejects of a
 * bundle are named on stderr too, then one line says how many more.
 */
int tly_ingest_bundle(struct tly_ledger *l, const struct tly_settings *s, const char *path,
                      struct tly_ingest_stats *st);

/*
 * The ingest part of a command's summary line (outputs.md), into buf:
 * "2 bundles (1 loaded, 1 already ingested, 0 rejected), 10 rows loaded,
 * 1 duplicate, 0 quarantined (when first ingested: 2 quarantined, 0
 * rejected), 1 file skipped".  The parenthesis after "quarantined" appears
 * only for bundles ingested before, so that a re-run exiting 3 says why.
 */
void tly_ingest_describe(char *buf, size_t size, const struct tly_ingest_stats *st, long nbundles);

/* Frees what the stats own (skipped, bundle_ids) and zeroes them. */
void tly_ingest_stats_release(struct tly_ingest_stats *st);

/* Writes rejects with id > after_id to a CSV with rejects.csv columns
   (bundle,file,line,reason,raw). */
int tly_rejects_write(struct tly_ledger *l, int64_t after_id, const char *path);

/*
 * What `tally ingest --rejects FILE` writes: the rejects with id > after_id
 * plus every earlier reject of the bundles in st->bundle_ids (a re-sent
 * bundle shows why it still exits 3).  Sorted by bundle, file, line.
 */
int tly_rejects_write_ingest(struct tly_ledger *l, int64_t after_id,
                             const struct tly_ingest_stats *st, const char *path);

/* The largest rejects.id now (0 when none): the mark for after_id. */
int tly_rejects_mark(struct tly_ledger *l, int64_t *id);

#endif
