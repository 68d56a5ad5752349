/*
 * test_ledger.c — which error a failed ledger statement gives (ledger.c
 * failure_code): SQLite's lock held by another connection past the busy
 * timeout is TLY_ERR_LOCKED (exit 75, try again later), for a transaction
 * refused and for a statement stepped alike; a conflict inside the one
 * connection (SQLITE_LOCKED) is a bug, TLY_ERR_LEDGER (74), like any other
 * SQLite failure; and the next statement after a busy one is judged on its
 * own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>

#include "error.h"
#include "ledger.h"
#include "testkit.h"

struct two {
    struct tk_scratch dir;
    struct tly_ledger *holder, *other;
};

static int setup(void **state)
{
    static struct two t;

    if (tk_scratch_make(&t.dir, "ledger") ||
        tly_ledger_open(t.dir.db, 0, &t.holder) != TLY_OK ||
        tly_ledger_open(t.dir.db, 0, &t.other) != TLY_OK)
        return -1;
    sqlite3_busy_timeout(t.other->db, 20);     /* the 5 s of a run, shortened */
    *state = &t;
    return 0;
}

static int teardown(void **state)
{
    struct two *t = *state;

    tly_ledger_rollback(t->holder);
    tly_ledger_rollback(t->other);
    tly_ledger_close(t->holder);
    tly_ledger_close(t->other);
    return tk_scratch_remove(&t->dir);
}

static void test_ledger_busy_transaction_is_locked(void **state)
{
    struct two *t = *state;

    assert_int_equal(tly_ledger_begin(t->holder), TLY_OK);
    assert_int_equal(tly_ledger_begin(t->other), TLY_ERR_LOCKED);
    assert_int_equal(tly_exit_code(TLY_ERR_LOCKED), 75);
    assert_int_equal(tly_ledger_commit(t->holder), TLY_OK);
    assert_int_equal(tly_ledger_begin(t->other), TLY_OK);     /* once free, it gets in */
    assert_int_equal(tly_ledger_commit(t->other), TLY_OK);
}

static void test_ledger_busy_statement_is_locked(void **state)
{
    struct two *t = *state;
    sqlite3_stmt *st;

    assert_int_equal(tly_ledger_begin(t->holder), TLY_OK);
    assert_int_equal(tly_ledger_exec(t->holder, "INSERT INTO state VALUES('held', 1)"), TLY_OK);
    /* autocommit write on the other connection: stepped, not begun */
    assert_int_equal(tly_ledger_prepare(t->other, "INSERT INTO state VALUES('other', 2)", &st), TLY_OK);
    assert_int_equal(tly_ledger_step_done(t->other, st), TLY_ERR_LOCKED);
    sqlite3_finalize(st);
    /* a failure after it is judged on its own code, not the last busy one */
    assert_int_equal(tly_ledger_exec(t->other, "SELECT * FROM no_such_table"), TLY_ERR_LEDGER);
}

static void test_ledger_own_conflict_is_ledger_error(void **state)
{
    struct two *t = *state;
    sqlite3_stmt *reading;

    assert_int_equal(tly_ledger_exec(t->holder, "CREATE TABLE scratch(x); INSERT INTO scratch VALUES(1), (2)"),
                     TLY_OK);
    assert_int_equal(tly_ledger_prepare(t->holder, "SELECT x FROM scratch", &reading), TLY_OK);
    assert_int_equal(sqlite3_step(reading), SQLITE_ROW);
    /* dropping a table one's own statement still reads: SQLITE_LOCKED */
    assert_int_equal(tly_ledger_exec(t->holder, "DROP TABLE scratch"), TLY_ERR_LEDGER);
    assert_int_equal(sqlite3_errcode(t->holder->db) & 0xff, SQLITE_LOCKED);
    sqlite3_finalize(reading);
    assert_int_equal(tly_ledger_exec(t->holder, "DROP TABLE scratch"), TLY_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ledger_busy_transaction_is_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_busy_statement_is_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_own_conflict_is_ledger_error, setup, teardown),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
