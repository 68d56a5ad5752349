/*
 * keyspool.h — the (id key, run) pairs of a bulk load, sorted outside SQLite.
 *
 * A bulk load (ingest.c "bulk_end") fills run_ids at its end, in key
 * order.  SQLite did it by scanning the whole runs table (1.7 GB for 10M
 * runs) for two of its columns and sorting records through its sorter:
 * 7 s, against 3.5 s for inserting the same pairs already sorted.  The
 * spool takes each pair as its run is inserted, sorts them in chunks of
 * fixed-size integers (a radix sort), keeps the sorted chunks in an
 * unnamed temporary file beside the ledger, and gives them back merged.
 *
 * Order: by key as a signed 64-bit integer (SQLite's order of run_ids),
 * then by run; so equal keys come out next to each other.
 *
 * Usage:
 *     tly_keyspool_create(&ks, dir);          (dir: where a spill file may go)
 *     tly_keyspool_add(ks, key, run) ...;     (runs in increasing order)
 *     tly_keyspool_sort(ks);
 *     while (!(err = tly_keyspool_next(ks, &key, &run, &got)) && got) ...;
 *     tly_keyspool_destroy(ks);
 *
 * Memory: one chunk (8 MiB of pairs and as much for sorting) and a 64 KiB
 * read buffer per spilled chunk while merging; the file holds 16 bytes a
 * pair (160 MB for 10M runs) and has no name, so nothing is left behind
 * whatever happens.  Errors are reported: TLY_ERR_NOMEM, or TLY_ERR_IO for
 * the file.  The caller owns the spool; tly_keyspool_destroy accepts NULL.
 */
#ifndef TLY_KEYSPOOL_H
#define TLY_KEYSPOOL_H

#include <stdint.h>

struct tly_keyspool;

int tly_keyspool_create(struct tly_keyspool **out, const char *dir);
int tly_keyspool_add(struct tly_keyspool *ks, int64_t key, int64_t run);
int64_t tly_keyspool_count(const struct tly_keyspool *ks);
/* Ends adding; the pairs can then be read in order. */
int tly_keyspool_sort(struct tly_keyspool *ks);
/* The next pair (*got = 1), or *got = 0 past the last. */
int tly_keyspool_next(struct tly_keyspool *ks, int64_t *key, int64_t *run, int *got);
void tly_keyspool_destroy(struct tly_keyspool *ks);

#endif
