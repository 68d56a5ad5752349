/*
 * prefetch.c — a byte stream read one step ahead (see prefetch.h).
 *
 * A ring of SLOTS buffers: the thread fills the slot at 'head' with one
 * read_fn call, the reader empties the slot at 'tail'; head - tail slots
 * are full.  The two counters move only under the lock, which is what
 * publishes a slot's bytes to the other side.  The slot holding the final
 * value (<= 0) is never given back, so every later read returns it.
 */
#include "prefetch.h"
#include "alloc.h"
#include "error.h"

#include <pthread.h>
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
    unsigned head, tail;        /* slots filled, slots emptied (mod 2^32) */
    int stop;                   /* destroy asked the thread to end */
    int locks_ready, threaded;
    pthread_mutex_t lock;
    pthread_cond_t filled, emptied;
    pthread_t thread;
};

static void *produce(void *arg)
{
    struct tly_prefetch *p = arg;
    struct slot *s;

    do {
        pthread_mutex_lock(&p->lock);
        while (!p->stop && p->head - p->tail == SLOTS)
            pthread_cond_wait(&p->emptied, &p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        s = &p->slot[p->head % SLOTS];
        pthread_mutex_unlock(&p->lock);

        s->len = p->read(p->ctx, s->data, SLOT_SIZE);
        s->pos = 0;
        pthread_mutex_lock(&p->lock);
        p->head++;
        pthread_cond_signal(&p->filled);
        pthread_mutex_unlock(&p->lock);
    } while (s->len > 0);
    return NULL;
}

/* Without a thread, slot 0 holds the final value once there is one. */
static ssize_t read_directly(struct tly_prefetch *p, void *buf, size_t n)
{
    if (p->head)
        return p->slot[0].len;
    if ((p->slot[0].len = p->read(p->ctx, buf, n)) <= 0)
        p->head = 1;
    return p->slot[0].len;
}

static int start(struct tly_prefetch *p)
{
    if (pthread_mutex_init(&p->lock, NULL))
        return 0;
    if (pthread_cond_init(&p->filled, NULL)) {
        pthread_mutex_destroy(&p->lock);
        return 0;
    }
    if (pthread_cond_init(&p->emptied, NULL)) {
        pthread_cond_destroy(&p->filled);
        pthread_mutex_destroy(&p->lock);
        return 0;
    }
    p->locks_ready = 1;
    return pthread_create(&p->thread, NULL, produce, p) == 0;
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
    p->threaded = start(p);
    *out = p;
    return TLY_OK;
}

ssize_t tly_prefetch_read(struct tly_prefetch *p, void *buf, size_t n)
{
    struct slot *s;
    size_t take;

    if (!p->threaded)
        return read_directly(p, buf, n);
    pthread_mutex_lock(&p->lock);
    while (p->head == p->tail)
        pthread_cond_wait(&p->filled, &p->lock);
    s = &p->slot[p->tail % SLOTS];
    pthread_mutex_unlock(&p->lock);
    if (s->len <= 0)
        return s->len;

    take = (size_t)s->len - s->pos < n ? (size_t)s->len - s->pos : n;
    memcpy(buf, s->data + s->pos, take);
    if ((s->pos += take) == (size_t)s->len) {
        pthread_mutex_lock(&p->lock);
        p->tail++;
        pthread_cond_signal(&p->emptied);
        pthread_mutex_unlock(&p->lock);
    }
    return (ssize_t)take;
}

void tly_prefetch_destroy(struct tly_prefetch *p)
{
    if (!p)
        return;
    if (p->threaded) {
        pthread_mutex_lock(&p->lock);
        p->stop = 1;
        pthread_cond_signal(&p->emptied);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    if (p->locks_ready) {
        pthread_cond_destroy(&p->emptied);
        pthread_cond_destroy(&p->filled);
        pthread_mutex_destroy(&p->lock);
    }
    for (int i = 0; i < SLOTS; i++)
        tly_free(p->slot[i].data);
    tly_free(p);
}
