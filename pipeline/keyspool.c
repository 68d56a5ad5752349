/*
 * keyspool.c — bulk-load id keys sorted outside SQLite (see keyspool.h).
 *
 * Pairs gather in one chunk; a full chunk is radix-sorted and appended to
 * the spill file as one sorted range.  tly_keyspool_sort sorts the last
 * chunk and, when there are ranges on file, writes it as one more, then
 * merges the ranges through a binary heap, each read 64 KiB at a time.
 * A spool that never filled a chunk is read from memory.
 *
 * Keys are kept with their sign bit flipped, so that unsigned order (the
 * radix sort's) is SQLite's signed order.
 */
#include "keyspool.h"
#include "alloc.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_PAIRS (1u << 19)          /* 8 MiB of pairs */
#define READ_PAIRS  4096                /* 64 KiB a range while merging */
#define SIGN        (UINT64_C(1) << 63)

struct pair {
    uint64_t key;                       /* sign bit flipped */
    int64_t run;
};

struct range {                          /* a sorted chunk on file */
    off_t next, end;                    /* bytes not yet read */
    struct pair *buf;
    size_t n, i;                        /* pairs in buf, next one */
};

struct tly_keyspool {
    char *dir;
    struct pair *chunk, *scratch;
    size_t n, cap;                      /* pairs in chunk */
    int64_t count;                      /* pairs added */
    int fd;                             /* the spill file, -1 until a chunk fills */
    off_t size;
    struct range *ranges;
    size_t nranges, ranges_cap;
    size_t *heap, nheap;                /* range indexes, smallest head first */
    size_t next;                        /* reading from memory: next pair */
};

int tly_keyspool_create(struct tly_keyspool **out, const char *dir)
{
    struct tly_keyspool *ks = tly_calloc(1, sizeof *ks);

    *out = NULL;
    if (!ks || !(ks->dir = tly_strdup(dir))) {
        tly_free(ks);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    ks->fd = -1;
    *out = ks;
    return TLY_OK;
}

void tly_keyspool_destroy(struct tly_keyspool *ks)
{
    if (!ks)
        return;
    if (ks->fd >= 0)
        close(ks->fd);
    for (size_t i = 0; i < ks->nranges; i++)
        tly_free(ks->ranges[i].buf);
    tly_free(ks->ranges);
    tly_free(ks->heap);
    tly_free(ks->chunk);
    tly_free(ks->scratch);
    tly_free(ks->dir);
    tly_free(ks);
}

int64_t tly_keyspool_count(const struct tly_keyspool *ks)
{
    return ks->count;
}

/* LSD radix sort by key, a byte a pass: stable, so equal keys keep their runs' order. */
static void radix_sort(struct pair *a, struct pair *tmp, size_t n)
{
    if (n < 2)
        return;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[256] = { 0 }, sum = 0;

        for (size_t i = 0; i < n; i++)
            count[(a[i].key >> shift) & 0xff]++;
        for (int d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i].key >> shift) & 0xff]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

static int io_error(const struct tly_keyspool *ks, const char *what)
{
    return tly_error(TLY_ERR_IO, "cannot %s the run id keys' scratch file in '%s': %s", what, ks->dir,
                     strerror(errno));
}

/* An unnamed file beside the ledger (O_TMPFILE); else a named one, unlinked at once. */
static int open_file(struct tly_keyspool *ks)
{
    size_t n = strlen(ks->dir) + sizeof "/.tally-keys-XXXXXX";
    char *path;

    if ((ks->fd = open(ks->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
        return TLY_OK;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return io_error(ks, "create");
    if (!(path = tly_malloc(n)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/.tally-keys-XXXXXX", ks->dir);
    ks->fd = mkostemp(path, O_CLOEXEC);
    if (ks->fd >= 0)
        unlink(path);
    tly_free(path);
    return ks->fd >= 0 ? TLY_OK : io_error(ks, "create");
}

static int write_all(struct tly_keyspool *ks, const void *data, size_t n)
{
    const char *p = data;

    while (n) {
        ssize_t w = write(ks->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return io_error(ks, "write");
        }
        p += w;
        n -= (size_t)w;
    }
    return TLY_OK;
}

static int sort_chunk(struct tly_keyspool *ks)
{
    if (!ks->scratch && ks->n > 1 && !(ks->scratch = tly_malloc(ks->cap * sizeof *ks->scratch)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    radix_sort(ks->chunk, ks->scratch, ks->n);
    return TLY_OK;
}

/* The chunk, sorted, as one more range on file. */
static int spill(struct tly_keyspool *ks)
{
    size_t bytes = ks->n * sizeof *ks->chunk;
    int err;

    if ((err = sort_chunk(ks)) || (ks->fd < 0 && (err = open_file(ks))))
        return err;
    if (tly_grow(&ks->ranges, &ks->ranges_cap, ks->nranges + 1, sizeof *ks->ranges))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if ((err = write_all(ks, ks->chunk, bytes)))
        return err;
    ks->ranges[ks->nranges++] = (struct range){ .next = ks->size, .end = ks->size + (off_t)bytes };
    ks->size += (off_t)bytes;
    ks->n = 0;
    return TLY_OK;
}

int tly_keyspool_add(struct tly_keyspool *ks, int64_t key, int64_t run)
{
    int err;

    if (ks->n == CHUNK_PAIRS && (err = spill(ks)))
        return err;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 4096;
        struct pair *chunk = tly_realloc(ks->chunk, (cap < CHUNK_PAIRS ? cap : CHUNK_PAIRS) * sizeof *chunk);
        if (!chunk)
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        ks->chunk = chunk;
        ks->cap = cap < CHUNK_PAIRS ? cap : CHUNK_PAIRS;
        tly_free(ks->scratch);          /* sized for the chunk when next needed */
        ks->scratch = NULL;
    }
    ks->chunk[ks->n++] = (struct pair){ (uint64_t)key ^ SIGN, run };
    ks->count++;
    return TLY_OK;
}

/* The range's next pair into its buffer's head; 0 when it has none left. */
static int fill(struct tly_keyspool *ks, struct range *r, int *more)
{
    size_t want;
    ssize_t got;

    *more = 1;
    if (r->i < r->n)
        return TLY_OK;
    if (r->next == r->end) {
        *more = 0;
        return TLY_OK;
    }
    want = (size_t)(r->end - r->next) < READ_PAIRS * sizeof *r->buf ? (size_t)(r->end - r->next)
                                                                    : READ_PAIRS * sizeof *r->buf;
    do
        got = pread(ks->fd, r->buf, want, r->next);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return io_error(ks, "read");
    if ((size_t)got != want) {
        errno = EIO;                    /* the file is ours: short means damaged */
        return io_error(ks, "read");
    }
    r->next += got;
    r->n = want / sizeof *r->buf;
    r->i = 0;
    return TLY_OK;
}

static int less(const struct tly_keyspool *ks, size_t a, size_t b)
{
    const struct pair *x = &ks->ranges[a].buf[ks->ranges[a].i], *y = &ks->ranges[b].buf[ks->ranges[b].i];

    return x->key < y->key || (x->key == y->key && x->run < y->run);
}

static void sift_down(struct tly_keyspool *ks, size_t i)
{
    for (;;) {
        size_t least = i, l = 2 * i + 1, r = l + 1, t;

        if (l < ks->nheap && less(ks, ks->heap[l], ks->heap[least]))
            least = l;
        if (r < ks->nheap && less(ks, ks->heap[r], ks->heap[least]))
            least = r;
        if (least == i)
            return;
        t = ks->heap[i];
        ks->heap[i] = ks->heap[least];
        ks->heap[least] = t;
        i = least;
    }
}

int tly_keyspool_sort(struct tly_keyspool *ks)
{
    int err, more;

    if (ks->fd < 0)
        return sort_chunk(ks);
    if (ks->n && (err = spill(ks)))
        return err;
    tly_free(ks->chunk);
    tly_free(ks->scratch);
    ks->chunk = ks->scratch = NULL;
    if (!(ks->heap = tly_malloc(ks->nranges * sizeof *ks->heap)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ks->nranges; i++) {
        if (!(ks->ranges[i].buf = tly_malloc(READ_PAIRS * sizeof *ks->ranges[i].buf)))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        if ((err = fill(ks, &ks->ranges[i], &more)))
            return err;
        ks->heap[ks->nheap++] = i;      /* every range holds a pair */
    }
    for (size_t i = ks->nheap / 2; i-- > 0;)
        sift_down(ks, i);
    return TLY_OK;
}

int tly_keyspool_next(struct tly_keyspool *ks, int64_t *key, int64_t *run, int *got)
{
    struct range *r;
    struct pair p;
    int err, more;

    *got = 0;
    if (ks->fd < 0) {
        if (ks->next == ks->n)
            return TLY_OK;
        p = ks->chunk[ks->next++];
    } else {
        if (!ks->nheap)
            return TLY_OK;
        r = &ks->ranges[ks->heap[0]];
        p = r->buf[r->i++];
        if ((err = fill(ks, r, &more)))
            return err;
        if (!more)
            ks->heap[0] = ks->heap[--ks->nheap];
        sift_down(ks, 0);
    }
    p.key ^= SIGN;
    memcpy(key, &p.key, sizeof *key);   /* the bits back, as ledger.c made them */
    *run = p.run;
    *got = 1;
    return TLY_OK;
}
