/*
 * ring.h — slots handed from one thread to another, in order: the shared
 * core of the read-ahead (prefetch.h), the parsing thread (rowahead.h) and
 * the report's workbook writer (xbook.h).
 *
 * One side fills a slot and publishes it; the other side takes published
 * slots in the same order and gives each back when done with it.  The ring
 * only counts: the slots themselves (buffers, workbooks) are an array of
 * the caller's, indexed by what these functions return.  The counters move
 * only under the lock, which is also what makes a slot's contents visible
 * to the other side.  Either side may be the started thread.
 *
 *     filler:  i = tly_ring_free_slot(r);  fill slot i;  tly_ring_publish(r);
 *     taker:   i = tly_ring_next_slot(r);  use slot i;   tly_ring_give_back(r);
 *
 * tly_ring_start() runs fn(arg) on a thread and returns whether it runs;
 * when it does not (no thread could be started), the caller does the work
 * itself, and every user has such a direct mode.  tly_ring_stop() asks the
 * thread to end, joins it and frees the locks: from then on a filler
 * waiting for a free slot gets -1, and a taker gets -1 once it has taken
 * every slot published before.  It accepts a ring that was never started
 * (zeroed) or that failed to start.
 */
#ifndef TLY_RING_H
#define TLY_RING_H

#include <pthread.h>

struct tly_ring {
    unsigned slots;
    unsigned fill_at, take_at;  /* the next slot to fill, the next to take */
    unsigned in_use;            /* published and not yet given back */
    int stop;                   /* tly_ring_stop() asked the thread to end */
    int locks_ready, threaded;
    pthread_mutex_t lock;
    pthread_cond_t published, given_back;
    pthread_t thread;
};

/* 1 when fn(arg) runs on a thread of its own, 0 when the caller must work directly. */
int tly_ring_start(struct tly_ring *r, unsigned slots, void *(*fn)(void *), void *arg);
void tly_ring_stop(struct tly_ring *r);

/* The filler's side: the slot to fill next (waits while all are full), or -1 once stopped. */
int tly_ring_free_slot(struct tly_ring *r);
void tly_ring_publish(struct tly_ring *r);

/* The taker's side: the oldest published slot (waits for one), or -1 once stopped and drained. */
int tly_ring_next_slot(struct tly_ring *r);
void tly_ring_give_back(struct tly_ring *r);

#endif
