/*
 * test_prefetch.c — the read-ahead thread gives the stream's bytes in
 * order, its final value for good, and stops cleanly when left early
 * (prefetch.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "prefetch.h"

/* A stream of 'total' bytes (byte i is i * 7 mod 251) in reads of varying size. */
struct stream {
    size_t total, pos;
    ssize_t final;          /* what ends it: 0 or a failure */
    int calls_after_end;    /* read_fn called again after its final value */
    int ended;
};

static ssize_t stream_read(void *ctx, void *buf, size_t n)
{
    struct stream *s = ctx;
    size_t k = 1 + (s->pos * 31) % 70000;       /* 1 .. 70,000 bytes a call */

    if (s->ended) {
        s->calls_after_end++;
        return s->final;
    }
    if (s->pos == s->total) {
        s->ended = 1;
        return s->final;
    }
    if (k > n)
        k = n;
    if (k > s->total - s->pos)
        k = s->total - s->pos;
    for (size_t i = 0; i < k; i++)
        ((unsigned char *)buf)[i] = (unsigned char)((s->pos + i) * 7 % 251);
    s->pos += k;
    return (ssize_t)k;
}

/* Reads the whole stream through a prefetch in 'step'-byte asks; checks every byte. */
static void read_through(size_t total, ssize_t final, size_t step)
{
    struct stream s = { total, 0, final, 0, 0 };
    struct tly_prefetch *p;
    unsigned char *buf = malloc(step);
    size_t got = 0;
    ssize_t r;

    assert_non_null(buf);
    assert_int_equal(tly_prefetch_create(&p, stream_read, &s), TLY_OK);
    while ((r = tly_prefetch_read(p, buf, step)) > 0) {
        assert_true((size_t)r <= step);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != (unsigned char)((got + (size_t)i) * 7 % 251))
                fail_msg("byte %zu differs", got + (size_t)i);
        got += (size_t)r;
    }
    assert_int_equal(r, final);
    assert_int_equal(tly_prefetch_read(p, buf, step), final);     /* for good */
    tly_prefetch_destroy(p);
    assert_int_equal(got, total);
    assert_int_equal(s.calls_after_end, 0);
    free(buf);
}

static void test_prefetch_bytes_in_order(void **state)
{
    (void)state;
    read_through(0, 0, 4096);
    read_through(1, 0, 1);
    read_through(5u << 20, 0, 1u << 20);        /* more than the ring holds */
    read_through(3u << 20, 0, 4093);            /* asks smaller than the slots */
}

static void test_prefetch_failure_is_final(void **state)
{
    (void)state;
    read_through(2u << 20, -1, 65536);
    read_through(0, -1, 65536);
}

/* Left early (a rejected bundle): destroy stops the thread with the stream unread. */
static void test_prefetch_left_early(void **state)
{
    struct stream s = { 64u << 20, 0, 0, 0, 0 };
    struct tly_prefetch *p;
    char buf[100];

    (void)state;
    assert_int_equal(tly_prefetch_create(&p, stream_read, &s), TLY_OK);
    assert_int_equal(tly_prefetch_read(p, buf, sizeof buf), 1);    /* the first read is 1 byte */
    tly_prefetch_destroy(p);
    assert_true(s.pos < s.total);
    tly_prefetch_destroy(NULL);
}

/* Its own allocations fail cleanly (they are made on the caller's thread). */
static void test_prefetch_allocation_fails(void **state)
{
    struct stream s = { 10, 0, 0, 0, 0 };
    struct tly_prefetch *p = (struct tly_prefetch *)&s;

    (void)state;
    tly_error_quiet(1);
    for (long n = 1; n <= 5; n++) {
        tly_alloc_fail_at(n);
        assert_int_equal(tly_prefetch_create(&p, stream_read, &s), TLY_ERR_NOMEM);
        assert_null(p);
    }
    tly_alloc_fail_at(0);
    tly_error_quiet(0);
    read_through(10, 0, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_bytes_in_order),
        cmocka_unit_test(test_prefetch_failure_is_final),
        cmocka_unit_test(test_prefetch_left_early),
        cmocka_unit_test(test_prefetch_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
