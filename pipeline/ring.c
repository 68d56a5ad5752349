/*
 * ring.c — slots handed from one thread to another (see ring.h).
 *
 * Two positions that go round the slots and a count between them: the
 * filler waits while every slot is in use, the taker while none is.
 */
#include "ring.h"

static int init_locks(struct tly_ring *r)
{
    if (pthread_mutex_init(&r->lock, NULL))
        return 0;
    if (pthread_cond_init(&r->published, NULL)) {
        pthread_mutex_destroy(&r->lock);
        return 0;
    }
    if (pthread_cond_init(&r->given_back, NULL)) {
        pthread_cond_destroy(&r->published);
        pthread_mutex_destroy(&r->lock);
        return 0;
    }
    return r->locks_ready = 1;
}

int tly_ring_start(struct tly_ring *r, unsigned slots, void *(*fn)(void *), void *arg)
{
    r->slots = slots;
    r->fill_at = r->take_at = r->in_use = 0;
    r->stop = 0;
    r->threaded = init_locks(r) && pthread_create(&r->thread, NULL, fn, arg) == 0;
    return r->threaded;
}

void tly_ring_stop(struct tly_ring *r)
{
    if (r->threaded) {
        pthread_mutex_lock(&r->lock);
        r->stop = 1;
        pthread_cond_broadcast(&r->published);
        pthread_cond_broadcast(&r->given_back);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        r->threaded = 0;
    }
    if (r->locks_ready) {
        pthread_cond_destroy(&r->given_back);
        pthread_cond_destroy(&r->published);
        pthread_mutex_destroy(&r->lock);
        r->locks_ready = 0;
    }
}

int tly_ring_free_slot(struct tly_ring *r)
{
    int slot = -1;

    pthread_mutex_lock(&r->lock);
    while (!r->stop && r->in_use == r->slots)
        pthread_cond_wait(&r->given_back, &r->lock);
    if (!r->stop)
        slot = (int)r->fill_at;
    pthread_mutex_unlock(&r->lock);
    return slot;
}

void tly_ring_publish(struct tly_ring *r)
{
    pthread_mutex_lock(&r->lock);
    r->fill_at = (r->fill_at + 1) % r->slots;
    r->in_use++;
    pthread_cond_signal(&r->published);
    pthread_mutex_unlock(&r->lock);
}

int tly_ring_next_slot(struct tly_ring *r)
{
    int slot = -1;

    pthread_mutex_lock(&r->lock);
    while (!r->stop && r->in_use == 0)
        pthread_cond_wait(&r->published, &r->lock);
    if (r->in_use)
        slot = (int)r->take_at;
    pthread_mutex_unlock(&r->lock);
    return slot;
}

void tly_ring_give_back(struct tly_ring *r)
{
    pthread_mutex_lock(&r->lock);
    r->take_at = (r->take_at + 1) % r->slots;
    r->in_use--;
    pthread_cond_signal(&r->given_back);
    pthread_mutex_unlock(&r->lock);
}
