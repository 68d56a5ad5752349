/*
 * alloc.c — allocation wrappers with a fail-the-Nth hook (see alloc.h).
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* atomic: ingest's prefetch thread allocates too (zlib's window) */
static _Atomic long fail_at = -1;       /* -1: not read from the environment yet */
static _Atomic long calls;

void tly_alloc_fail_at(long n)
{
    fail_at = n;
    calls = 0;
}

static int should_fail(void)
{
    if (fail_at < 0) {
        const char *env = getenv("TALLY_FAULT_ALLOC");      /* read before any thread starts */
        fail_at = env ? strtol(env, NULL, 10) : 0;
    }
    return fail_at > 0 && ++calls >= fail_at;
}

void *tly_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *tly_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *tly_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *tly_strndup(const char *s, size_t n)
{
    char *d = tly_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *tly_strdup(const char *s)
{
    return tly_strndup(s, strlen(s));
}

void tly_free(void *p)
{
    free(p);
}

int tly_grow(void *items_ptr, size_t *cap, size_t need, size_t size)
{
    void **items = items_ptr;
    size_t ncap;
    void *p;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    if (ncap > SIZE_MAX / size)
        return -1;
    p = tly_realloc(*items, ncap * size);
    if (!p)
        return -1;
    *items = p;
    *cap = ncap;
    return 0;
}
