/*
 * test_keyspool.c — the key spool gives back every (key, run) pair added,
 * in SQLite's order (signed key, then run), from memory or merged from
 * its file; equal keys come out together; nothing is left on disk; and
 * its failures are clean (keyspool.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "keyspool.h"
#include "testkit.h"

struct pair {
    int64_t key, run;
};

static int by_key_then_run(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;

    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->run > y->run) - (x->run < y->run);
}

static char dir[] = "/tmp/tally-keyspool-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);          /* fails if the spool left a file behind */
}

static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* Adds 'n' pairs (every 'repeat'-th key equal to the one before, 0: none); checks the order out. */
static void spool_through(size_t n, size_t repeat)
{
    struct pair *want = malloc((n ? n : 1) * sizeof *want);
    struct tly_keyspool *ks;
    int64_t key, run;
    int got;

    assert_non_null(want);
    assert_int_equal(tly_keyspool_create(&ks, dir), TLY_OK);
    for (size_t i = 0; i < n; i++) {
        want[i].key = repeat && i && i % repeat == 0 ? want[i - 1].key : tk_spread_key(i);
        want[i].run = (int64_t)i + 1;
        assert_int_equal(tly_keyspool_add(ks, want[i].key, want[i].run), TLY_OK);
    }
    assert_int_equal(tly_keyspool_count(ks), (int64_t)n);
    assert_int_equal(tly_keyspool_sort(ks), TLY_OK);
    assert_int_equal(files_in_dir(), 0);                /* a spill file has no name */
    qsort(want, n, sizeof *want, by_key_then_run);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tly_keyspool_next(ks, &key, &run, &got), TLY_OK);
        assert_int_equal(got, 1);
        assert_true(key == want[i].key);
        assert_true(run == want[i].run);
    }
    assert_int_equal(tly_keyspool_next(ks, &key, &run, &got), TLY_OK);
    assert_int_equal(got, 0);
    tly_keyspool_destroy(ks);
    free(want);
}

static void test_keyspool_in_memory(void **state)
{
    (void)state;
    spool_through(0, 0);
    spool_through(1, 0);
    spool_through(100000, 0);
    spool_through(100000, 7);
}

/* More than a chunk (512Ki pairs): sorted ranges on file, merged; equal keys across ranges. */
static void test_keyspool_merged_from_file(void **state)
{
    (void)state;
    spool_through((1u << 19) + 1, 0);
    spool_through(3u * (1u << 19) + 12345, 0);
    spool_through(3u * (1u << 19) + 12345, 1000);
    spool_through(2u * (1u << 19), 1u << 19);           /* a key repeated right across a chunk edge */
}

/* Signed order, as SQLite keeps run_ids: negative keys first, then by run. */
static void test_keyspool_signed_order(void **state)
{
    const int64_t keys[] = { 5, INT64_MIN, -1, 0, INT64_MAX, -1, 5 };
    const int64_t order[][2] = { { INT64_MIN, 2 }, { -1, 3 }, { -1, 6 }, { 0, 4 }, { 5, 1 }, { 5, 7 },
                                 { INT64_MAX, 5 } };
    struct tly_keyspool *ks;
    int64_t key, run;
    int got;

    (void)state;
    assert_int_equal(tly_keyspool_create(&ks, dir), TLY_OK);
    for (int i = 0; i < 7; i++)
        assert_int_equal(tly_keyspool_add(ks, keys[i], i + 1), TLY_OK);
    assert_int_equal(tly_keyspool_sort(ks), TLY_OK);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(tly_keyspool_next(ks, &key, &run, &got), TLY_OK);
        assert_int_equal(got, 1);
        assert_true(key == order[i][0]);
        assert_true(run == order[i][1]);
    }
    tly_keyspool_destroy(ks);
}

/* A directory it cannot write in: an I/O error once a chunk fills, reported. */
static void test_keyspool_unwritable_dir(void **state)
{
    struct tly_keyspool *ks;
    int err = TLY_OK;

    (void)state;
    tly_error_quiet(1);
    assert_int_equal(tly_keyspool_create(&ks, "/nonexistent/tally"), TLY_OK);
    for (uint64_t i = 0; i <= (1u << 19) && !err; i++)
        err = tly_keyspool_add(ks, tk_spread_key(i), (int64_t)i);
    assert_int_equal(err, TLY_ERR_IO);
    tly_keyspool_destroy(ks);
    tly_error_quiet(0);
}

/* Every allocation, failed in turn: TLY_ERR_NOMEM, no leak (the sanitizer build checks). */
static void test_keyspool_allocation_fails(void **state)
{
    (void)state;
    tly_error_quiet(1);
    for (long n = 1;; n++) {
        struct tly_keyspool *ks = NULL;
        int64_t key, run;
        int err, got = 1;

        tly_alloc_fail_at(n);
        err = tly_keyspool_create(&ks, dir);
        for (uint64_t i = 0; i < (1u << 19) + 5000 && !err; i++)
            err = tly_keyspool_add(ks, tk_spread_key(i), (int64_t)i);
        if (!err)
            err = tly_keyspool_sort(ks);
        while (!err && got)
            err = tly_keyspool_next(ks, &key, &run, &got);
        tly_keyspool_destroy(ks);
        tly_alloc_fail_at(0);
        if (!err)
            break;              /* past the last allocation */
        assert_int_equal(err, TLY_ERR_NOMEM);
        assert_true(n < 100);
    }
    tly_error_quiet(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyspool_in_memory),
        cmocka_unit_test(test_keyspool_merged_from_file),
        cmocka_unit_test(test_keyspool_signed_order),
        cmocka_unit_test(test_keyspool_unwritable_dir),
        cmocka_unit_test(test_keyspool_allocation_fails),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
