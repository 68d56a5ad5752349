/*
 * alloc.h — every heap allocation of Tally goes through these.
 *
 * They behave as their libc namesakes (tly_free(NULL) is a no-op) and add one
 * thing: fault injection.  With TALLY_FAULT_ALLOC=N in the environment the
 * Nth allocation (and every later one) fails, so tests can loop N = 1, 2, ...
 * and assert a clean error, no leak and an intact ledger (SQLite's
 * do_faultsim_test idea).  Allocation failure is an ordinary error path:
 * callers return TLY_ERR_NOMEM.
 */
#ifndef TLY_ALLOC_H
#define TLY_ALLOC_H

#include <stddef.h>

void *tly_malloc(size_t n);
void *tly_calloc(size_t count, size_t size);
void *tly_realloc(void *p, size_t n);          /* old pointer invalid on success */
char *tly_strdup(const char *s);
char *tly_strndup(const char *s, size_t n);
void tly_free(void *p);

/* Growing arrays: ensure room for 'need' items of 'size' bytes in *items. */
int tly_grow(void *items_ptr, size_t *cap, size_t need, size_t size);

/* Fault injection: fail from the Nth allocation on (0 = never). */
void tly_alloc_fail_at(long n);

#endif
