/*
 * testkit.h — what several tests share, so that each keeps only its own
 * scenario:
 *
 *   tk_scratch_make / tk_scratch_remove   a scratch directory and a ledger path in it
 *   tk_mem_read                           input from memory, in chunks of any size
 *   tk_spread_key                         64-bit keys spread over every bit
 *
 * Header-only (static inline): each unit test is one translation unit
 * linked against the library, and the fuzz targets read from memory too.
 * Nothing here asserts, so it needs no cmocka; the callers assert.
 */
#ifndef TALLY_TESTKIT_H
#define TALLY_TESTKIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* /tmp/tally-test-NAME-XXXXXX, and the path of a ledger inside it */
struct tk_scratch {
    char dir[64];
    char db[128];
};

/* Makes S's directory: 0, or -1 when it cannot. */
static inline int tk_scratch_make(struct tk_scratch *s, const char *name)
{
    int n = snprintf(s->dir, sizeof s->dir, "/tmp/tally-test-%s-XXXXXX", name);

    if (n < 0 || (size_t)n >= sizeof s->dir || !mkdtemp(s->dir))
        return -1;
    snprintf(s->db, sizeof s->db, "%s/t.db", s->dir);
    return 0;
}

/* Removes S's directory and everything in it: 0, or -1. */
static inline int tk_scratch_remove(const struct tk_scratch *s)
{
    char cmd[sizeof s->dir + 16];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/*
 * Bytes S[0..N) handed over at most CHUNK at a time (0: as many as asked),
 * so that a reader's buffer refills can fall anywhere in a row.
 */
struct tk_mem {
    const void *s;
    size_t n, pos, chunk;
};

/* A read callback over a struct tk_mem: the bytes copied, 0 at the end. */
static inline ssize_t tk_mem_read(void *ctx, void *buf, size_t n)
{
    struct tk_mem *m = ctx;
    size_t k = m->n - m->pos;

    if (k > n)
        k = n;
    if (m->chunk && k > m->chunk)
        k = m->chunk;
    memcpy(buf, (const char *)m->s + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

/* splitmix64 of I: keys spread over every bit, negative ones included */
static inline int64_t tk_spread_key(uint64_t i)
{
    uint64_t z = i * UINT64_C(0x9e3779b97f4a7c15);
    int64_t key;

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    memcpy(&key, &z, sizeof key);
    return key;
}

#endif
