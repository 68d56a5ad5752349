/*
 * test_ring.c — slots handed between two threads (ring.h): in order, never
 * more than the ring holds, in either direction, and a stop that drains
 * what was published and wakes a waiting filler.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ring.h"

#define SLOTS 3
#define ITEMS 20000

struct pipe {
    struct tly_ring ring;
    long slot[SLOTS];
    long taken[ITEMS];      /* what the taking thread saw, in order */
    long ntaken;
    int max_in_flight;
};

/* The thread as filler: publishes 1 .. ITEMS, then stops by itself. */
static void *fill(void *arg)
{
    struct pipe *p = arg;

    for (long v = 1; v <= ITEMS; v++) {
        int i = tly_ring_free_slot(&p->ring);
        if (i < 0)
            return NULL;
        p->slot[i] = v;
        tly_ring_publish(&p->ring);
    }
    return NULL;
}

static void test_ring_thread_fills_in_order(void **state)
{
    static struct pipe p;

    (void)state;
    memset(&p, 0, sizeof p);
    assert_int_equal(tly_ring_start(&p.ring, SLOTS, fill, &p), 1);
    for (long v = 1; v <= ITEMS; v++) {
        int i = tly_ring_next_slot(&p.ring);
        assert_in_range(i, 0, SLOTS - 1);
        assert_int_equal(p.slot[i], v);
        tly_ring_give_back(&p.ring);
    }
    tly_ring_stop(&p.ring);
}

/* The thread as taker until the ring is stopped and drained. */
static void *take(void *arg)
{
    struct pipe *p = arg;
    int i;

    while ((i = tly_ring_next_slot(&p->ring)) >= 0) {
        pthread_mutex_lock(&p->ring.lock);
        if ((int)p->ring.in_use > p->max_in_flight)
            p->max_in_flight = (int)p->ring.in_use;
        pthread_mutex_unlock(&p->ring.lock);
        p->taken[p->ntaken++] = p->slot[i];
        tly_ring_give_back(&p->ring);
    }
    return NULL;
}

static void test_ring_stop_drains_what_was_published(void **state)
{
    static struct pipe p;

    (void)state;
    memset(&p, 0, sizeof p);
    assert_int_equal(tly_ring_start(&p.ring, SLOTS, take, &p), 1);
    for (long v = 1; v <= ITEMS; v++) {
        int i = tly_ring_free_slot(&p.ring);
        assert_in_range(i, 0, SLOTS - 1);
        p.slot[i] = v;
        tly_ring_publish(&p.ring);
    }
    tly_ring_stop(&p.ring);         /* joins: the taker has seen everything */
    assert_int_equal(p.ntaken, ITEMS);
    for (long v = 1; v <= ITEMS; v++)
        assert_int_equal(p.taken[v - 1], v);
    assert_in_range(p.max_in_flight, 1, SLOTS);
}

/* A filler blocked on a full ring returns -1 when stopped. */
static void *fill_forever(void *arg)
{
    struct pipe *p = arg;
    int i;

    while ((i = tly_ring_free_slot(&p->ring)) >= 0) {
        p->slot[i] = 1;
        tly_ring_publish(&p->ring);
        p->ntaken++;
    }
    return NULL;
}

static void test_ring_stop_wakes_a_waiting_filler(void **state)
{
    static struct pipe p;

    (void)state;
    memset(&p, 0, sizeof p);
    assert_int_equal(tly_ring_start(&p.ring, SLOTS, fill_forever, &p), 1);
    assert_true(tly_ring_next_slot(&p.ring) >= 0);      /* it is running */
    tly_ring_stop(&p.ring);
    assert_in_range(p.ntaken, 1, SLOTS);                /* never more than the ring holds */
}

static void test_ring_stop_of_a_ring_never_started(void **state)
{
    struct tly_ring r;

    (void)state;
    memset(&r, 0, sizeof r);
    tly_ring_stop(&r);
    tly_ring_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_thread_fills_in_order),
        cmocka_unit_test(test_ring_stop_drains_what_was_published),
        cmocka_unit_test(test_ring_stop_wakes_a_waiting_filler),
        cmocka_unit_test(test_ring_stop_of_a_ring_never_started),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
