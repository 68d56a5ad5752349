/*
 * test_runids.c — the held keys of a night (runids.h): every key added or
 * expected is held until a flush and no other is (0 and negative keys
 * included, past the growth of the slots); a flush puts every pair into
 * run_ids_new and holds nothing after, however large the slots grew; at most 'max' pairs wait; the
 * writer inserts any count, in full batches and singles; failures are
 * clean.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "ledger.h"
#include "runids.h"
#include "testkit.h"

static char dbpath[64];

static int setup(void **state)
{
    struct tly_ledger *l;
    snprintf(dbpath, sizeof dbpath, "/tmp/tally-runids-%d.db", (int)getpid());
    unlink(dbpath);
    if (tly_ledger_open(dbpath, 0, &l) != TLY_OK)
        return -1;
    *state = l;
    return tly_ledger_begin(l) == TLY_OK ? 0 : -1;
}

static int teardown(void **state)
{
    char p[80];
    tly_ledger_rollback(*state);
    tly_ledger_close(*state);
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
    return 0;
}

static int64_t count(struct tly_ledger *l, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n;
    assert_int_equal(tly_ledger_prepare(l, sql, &st), TLY_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* 0, a negative key, and one key twice (a collision: two runs, one key) */
static void test_runids_held_until_flushed(void **state)
{
    struct tly_ledger *l = *state;
    struct tly_runids_held *h;

    assert_int_equal(tly_runids_held_create(l, TLY_RUNIDS_HELD_MAX, &h), TLY_OK);
    assert_false(tly_runids_held_holds(h, 0));
    assert_false(tly_runids_held_holds(h, 7));
    assert_int_equal(tly_runids_held_add(h, 7, 1), TLY_OK);
    assert_int_equal(tly_runids_held_add(h, 0, 2), TLY_OK);
    assert_int_equal(tly_runids_held_add(h, INT64_MIN, 3), TLY_OK);
    assert_int_equal(tly_runids_held_add(h, 7, 4), TLY_OK);
    assert_true(tly_runids_held_holds(h, 7));
    assert_true(tly_runids_held_holds(h, 0));
    assert_true(tly_runids_held_holds(h, INT64_MIN));
    assert_false(tly_runids_held_holds(h, 7 + 4096));     /* same slot, another key */
    assert_int_equal(tly_runids_held_expect(h, 99), TLY_OK);   /* a run not inserted yet */
    assert_true(tly_runids_held_holds(h, 99));
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 0);
    assert_int_equal(tly_runids_held_flush(h), TLY_OK);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 4);
    assert_int_equal(count(l, "SELECT sum(run) FROM run_ids_new WHERE id_key = 7"), 1 + 4);
    assert_int_equal(count(l, "SELECT run FROM run_ids_new WHERE id_key = 0"), 2);
    assert_int_equal(count(l, "SELECT run FROM run_ids_new WHERE id_key = -9223372036854775808"), 3);
    assert_false(tly_runids_held_holds(h, 7));
    assert_false(tly_runids_held_holds(h, 0));
    assert_false(tly_runids_held_holds(h, 99));
    assert_int_equal(tly_runids_held_flush(h), TLY_OK);   /* nothing waits: nothing written */
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 4);
    tly_runids_held_destroy(h);
}

/* 20,000 keys grow the slots from 4,096 to 65,536; 20,000 others are not held */
static void test_runids_held_across_growth(void **state)
{
    struct tly_ledger *l = *state;
    struct tly_runids_held *h;

    assert_int_equal(tly_runids_held_create(l, TLY_RUNIDS_HELD_MAX, &h), TLY_OK);
    for (uint64_t i = 1; i <= 20000; i++)
        assert_int_equal(tly_runids_held_add(h, tk_spread_key(i), (int64_t)i), TLY_OK);
    for (uint64_t i = 1; i <= 20000; i++) {
        assert_true(tly_runids_held_holds(h, tk_spread_key(i)));
        assert_false(tly_runids_held_holds(h, tk_spread_key(i + 20000)));
    }
    assert_int_equal(tly_runids_held_flush(h), TLY_OK);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 20000);
    assert_int_equal(count(l, "SELECT sum(run) FROM run_ids_new"), 20000LL * 20001 / 2);
    tly_runids_held_destroy(h);
}

/*
 * 100,000 keys grow the slots to 262,144; a flush empties them, and so do
 * a thousand small flushes after it (each clears its keys' clusters only,
 * not the whole table).  Three keys of the last slot wrap round to slots
 * 0 and 1, so a cluster cleared past the table's end is covered: with the
 * last slot taken again, a key left behind there would be found.
 */
static void test_runids_flush_clears_clusters(void **state)
{
    struct tly_ledger *l = *state;
    struct tly_runids_held *h;
    const int64_t last = 262143, wrap[] = { last, last + 262144, last + 2 * 262144 };

    assert_int_equal(tly_runids_held_create(l, TLY_RUNIDS_HELD_MAX, &h), TLY_OK);
    for (uint64_t i = 1; i <= 100000; i++)
        assert_int_equal(tly_runids_held_add(h, tk_spread_key(i), (int64_t)i), TLY_OK);
    assert_int_equal(tly_runids_held_flush(h), TLY_OK);
    for (uint64_t i = 1; i <= 100000; i++)
        assert_false(tly_runids_held_holds(h, tk_spread_key(i)));
    for (int64_t round = 0; round < 1000; round++) {
        for (int k = 0; k < 3; k++)
            assert_int_equal(tly_runids_held_add(h, wrap[k], 100001 + 3 * round + k), TLY_OK);
        assert_int_equal(tly_runids_held_expect(h, 1), TLY_OK);    /* home slot 1, taken */
        for (int k = 0; k < 3; k++)
            assert_true(tly_runids_held_holds(h, wrap[k]));
        assert_true(tly_runids_held_holds(h, 1));
        assert_false(tly_runids_held_holds(h, 2));
        assert_int_equal(tly_runids_held_flush(h), TLY_OK);
        for (int k = 0; k < 3; k++)
            assert_false(tly_runids_held_holds(h, wrap[k]));
        assert_false(tly_runids_held_holds(h, 1));
        /* the last slot taken again: a key left in slot 0 or 1 would be found */
        assert_int_equal(tly_runids_held_add(h, wrap[0], 200000 + round), TLY_OK);
        assert_false(tly_runids_held_holds(h, wrap[1]));
        assert_false(tly_runids_held_holds(h, wrap[2]));
        assert_false(tly_runids_held_holds(h, 1));
        assert_int_equal(tly_runids_held_flush(h), TLY_OK);
    }
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 104000);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new WHERE id_key = 262143"), 2000);
    tly_runids_held_destroy(h);
}

/* max 100: the 101st and 201st adds flush what waits */
static void test_runids_held_at_most_max(void **state)
{
    struct tly_ledger *l = *state;
    struct tly_runids_held *h;

    assert_int_equal(tly_runids_held_create(l, 100, &h), TLY_OK);
    for (uint64_t i = 1; i <= 250; i++)
        assert_int_equal(tly_runids_held_add(h, tk_spread_key(i), (int64_t)i), TLY_OK);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 200);
    assert_false(tly_runids_held_holds(h, tk_spread_key(200)));
    assert_true(tly_runids_held_holds(h, tk_spread_key(201)));
    assert_int_equal(tly_runids_held_flush(h), TLY_OK);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 250);
    tly_runids_held_destroy(h);
}

/* 64 × 2 + 7 pairs: two full batches and seven singles, each pair once */
static void test_runids_writer_batches_and_singles(void **state)
{
    struct tly_ledger *l = *state;
    struct tly_runids_writer w;
    int64_t pairs[2 * TLY_RUNIDS_PER_INSERT + 7][2];
    size_t n = sizeof pairs / sizeof pairs[0];

    for (size_t i = 0; i < n; i++) {
        pairs[i][0] = tk_spread_key(i + 1);
        pairs[i][1] = (int64_t)i + 1;
    }
    assert_int_equal(tly_runids_writer_prepare(&w, l, "run_ids"), TLY_OK);
    assert_int_equal(tly_runids_writer_put(&w, (const int64_t(*)[2])pairs, n), TLY_OK);
    assert_int_equal(tly_runids_writer_put(&w, (const int64_t(*)[2])pairs, 0), TLY_OK);
    tly_runids_writer_finalize(&w);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids"), (int64_t)n);
    assert_int_equal(count(l, "SELECT count(DISTINCT id_key) FROM run_ids"), (int64_t)n);
    assert_int_equal(count(l, "SELECT sum(run) FROM run_ids"), (int64_t)(n * (n + 1) / 2));
}

/* every allocation failed in turn: an error, never a crash, and no leak (ASan) */
static void test_runids_out_of_memory_is_clean(void **state)
{
    struct tly_ledger *l = *state;
    int done = 0;

    for (long n = 1; !done && n < 10000; n++) {
        struct tly_runids_held *h = NULL;
        int err;
        assert_int_equal(tly_ledger_exec(l, "DELETE FROM run_ids_new"), TLY_OK);
        tly_alloc_fail_at(n);
        err = tly_runids_held_create(l, 1000, &h);
        for (uint64_t i = 1; i <= 5000 && !err; i++)
            err = tly_runids_held_add(h, tk_spread_key(i), (int64_t)i);
        if (!err)
            err = tly_runids_held_flush(h);
        tly_alloc_fail_at(0);
        tly_runids_held_destroy(h);
        if (err)
            assert_true(err == TLY_ERR_NOMEM || err == TLY_ERR_LEDGER);
        else
            done = 1;
    }
    assert_true(done);
    assert_int_equal(count(l, "SELECT count(*) FROM run_ids_new"), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runids_held_until_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runids_held_across_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runids_flush_clears_clusters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runids_held_at_most_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runids_writer_batches_and_singles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runids_out_of_memory_is_clean, setup, teardown),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
