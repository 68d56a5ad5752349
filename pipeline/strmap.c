/*
 * strmap.c — FNV-1a hashed, linear-probing string map (see strmap.h).
 */
#include "strmap.h"
#include "alloc.h"
#include "error.h"

#include <stdint.h>
#include <string.h>

void tly_strmap_init(struct tly_strmap *m)
{
    memset(m, 0, sizeof *m);
}

void tly_strmap_release(struct tly_strmap *m)
{
    tly_free(m->keys);
    tly_free(m->values);
    tly_strmap_init(m);
}

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

int tly_strmap_get(const struct tly_strmap *m, const char *key)
{
    if (!m->cap)
        return -1;
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i])
            return -1;
        if (!strcmp(m->keys[i], key))
            return m->values[i];
    }
}

static void insert(const char **keys, int *values, size_t cap, const char *key, int value)
{
    size_t i = hash(key) & (cap - 1);
    while (keys[i] && strcmp(keys[i], key))
        i = (i + 1) & (cap - 1);
    keys[i] = key;
    values[i] = value;
}

int tly_strmap_put(struct tly_strmap *m, const char *key, int value)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        const char **nkeys = tly_calloc(ncap, sizeof *nkeys);
        int *nvalues = tly_calloc(ncap, sizeof *nvalues);
        if (!nkeys || !nvalues) {
            tly_free(nkeys);
            tly_free(nvalues);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                insert(nkeys, nvalues, ncap, m->keys[i], m->values[i]);
        tly_free(m->keys);
        tly_free(m->values);
        m->keys = nkeys;
        m->values = nvalues;
        m->cap = ncap;
    }
    if (tly_strmap_get(m, key) < 0)
        m->count++;
    insert(m->keys, m->values, m->cap, key, value);
    return TLY_OK;
}
