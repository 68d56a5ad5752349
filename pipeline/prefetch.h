/*
 * prefetch.h — a byte stream read one step ahead, on a second thread.
 *
 * Ingest is one thread of SQLite inserts, and before this every byte of a
 * runs.csv.gz was also read, hashed and gunzipped on that thread: 12% of
 * a first load.  A prefetch runs the stream's read function on a thread of
 * its own, a few buffers ahead of the reader, so the machine's second core
 * decompresses while the first parses and inserts.  The bytes, their order
 * and every error are the same as reading directly; only the time differs.
 *
 * Usage:
 *     tly_prefetch_create(&p, read_fn, ctx);   (read_fn(ctx, ...) now runs
 *                                               on the prefetch's thread)
 *     while ((n = tly_prefetch_read(p, buf, sizeof buf)) > 0) ...;
 *     tly_prefetch_destroy(p);                 (ctx is the caller's again)
 *
 * Between create and destroy the caller must not touch what read_fn uses:
 * read_fn's writes become visible to the caller when destroy has returned.
 * read_fn returns > 0 bytes, 0 at the end or < 0 on failure, and the first
 * value <= 0 is final: the prefetch never calls read_fn after it, and
 * tly_prefetch_read returns it from then on.  When no thread can be
 * started, the prefetch calls read_fn itself, in tly_prefetch_read.
 *
 * The prefetch reads up to its buffers' worth past what the reader took:
 * read_fn's failure there (the reader stopped first) is read_fn's to keep
 * or forget; the prefetch never returns it.  Allocations read_fn makes
 * happen on the thread, so with allocation fault injection the one that
 * fails first may differ from run to run (every later one fails too).
 *
 * Ownership: create allocates every buffer on the caller's thread; destroy
 * stops the thread after its current read_fn call and frees everything.
 * tly_prefetch_destroy() accepts NULL.
 */
#ifndef TLY_PREFETCH_H
#define TLY_PREFETCH_H

#include <stddef.h>
#include <sys/types.h>

typedef ssize_t tly_prefetch_read_fn(void *ctx, void *buf, size_t n);

struct tly_prefetch;

/* TLY_OK or TLY_ERR_NOMEM (reported). */
int tly_prefetch_create(struct tly_prefetch **out, tly_prefetch_read_fn *read, void *ctx);
/* As read_fn would: > 0 bytes copied into buf, 0 at the end, < 0 failed. */
ssize_t tly_prefetch_read(struct tly_prefetch *p, void *buf, size_t n);
void tly_prefetch_destroy(struct tly_prefetch *p);

#endif
