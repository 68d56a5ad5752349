/*
 * prefetch.c — a byte stream read one step ahead (see prefetch.h).
 *
 * A ring (ring.h) of SLOTS buffers: the thread fills a slot with one
 * read_fn call, the reader empties it and gives it back.  The slot holding
 * the final value (<= 0) is never given back, so every later read returns
 * it.
 */
#include "prefetch.h"
#include "alloc.h"
#include "error.h"
#include "ring.h"

#include <string.h>

#define SLOTS     4
#define SLOT_SIZE (1u << 20)    /* what the CSV reader asks for at once */

struct slot {
    unsigned char *data;
    ssize_t len;                /* read_fn's value; <= 0 ends the stream */
    size_t pos;                 /* bytes already handed to the reader */
};

struct tly_prefetch {
    tly_prefetch_read_fn *read;
    void *ctx;
    struct slot slot[SLOTS];
    struct tly_ring ring;       /* the thread fills slots, the reader empties them */
    int ended;                  /* without a thread: slot 0 holds the final value */
};

static void *produce(void *arg)
{
    struct tly_prefetch *p = arg;
    ssize_t len;

    do {
        int i = tly_ring_free_slot(&p->ring);
        if (i < 0)
            return NULL;
        p->slot[i].len = len = p->read(p->ctx, p->slot[i].data, SLOT_SIZE);
        p->slot[i].pos = 0;
        tly_ring_publish(&p->ring);
    } while (len > 0);
    return NULL;
}

static ssize_t read_directly(struct tly_prefetch *p, void *buf, size_t n)
{
    if (p->ended)
        return p->slot[0].len;
    if ((p->slot[0].len = p->read(p->ctx, buf, n)) <= 0)
        p->ended = 1;
    return p->slot[0].len;
}

int tly_prefetch_create(struct tly_prefetch **out, tly_prefetch_read_fn *read, void *ctx)
{
    struct tly_prefetch *p = tly_calloc(1, sizeof *p);

    *out = NULL;
    if (!p)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    p->read = read;
    p->ctx = ctx;
    for (int i = 0; i < SLOTS; i++)
        if (!(p->slot[i].data = tly_malloc(SLOT_SIZE))) {
            tly_prefetch_destroy(p);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
    tly_ring_start(&p->ring, SLOTS, produce, p);
    *out = p;
    return TLY_OK;
}

ssize_t tly_prefetch_read(struct tly_prefetch *p, void *buf, size_t n)
{
    struct slot *s;
    size_t take;

    if (!p->ring.threaded)
        return read_directly(p, buf, n);
    s = &p->slot[tly_ring_next_slot(&p->ring)];     /* the thread stops only in destroy */
    if (s->len <= 0)
        return s->len;

    take = (size_t)s->len - s->pos < n ? (size_t)s->len - s->pos : n;
    memcpy(buf, s->data + s->pos, take);
    if ((s->pos += take) == (size_t)s->len)
        tly_ring_give_back(&p->ring);
    return (ssize_t)take;
}

void tly_prefetch_destroy(struct tly_prefetch *p)
{
    if (!p)
        return;
    tly_ring_stop(&p->ring);
    for (int i = 0; i < SLOTS; i++)
        tly_free(p->slot[i].data);
    tly_free(p);
}
