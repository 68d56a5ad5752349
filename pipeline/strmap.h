/*
 * strmap.h — a small open-addressing map from strings to int indexes.
 *
 * The reconcile loop looks up a runnable or deployment for every event, and
 * there are tens of millions of runs: a linear search would dominate.  Keys
 * are borrowed (the caller keeps them alive as long as the map).
 */
#ifndef TLY_STRMAP_H
#define TLY_STRMAP_H

#include <stddef.h>

struct tly_strmap {
    const char **keys;
    int *values;
    size_t cap, count;
};

void tly_strmap_init(struct tly_strmap *m);
void tly_strmap_release(struct tly_strmap *m);
/* The value for 'key', or -1. */
int tly_strmap_get(const struct tly_strmap *m, const char *key);
int tly_strmap_put(struct tly_strmap *m, const char *key, int value);

#endif
