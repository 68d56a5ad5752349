/*
 * test_idfilter.c — the Bloom filter of run id keys (idfilter.h): no key
 * of the ledger is ever reported absent, few absent keys are reported
 * present, and a stored filter that cannot be trusted is rebuilt.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "idfilter.h"
#include "ledger.h"
#include "testkit.h"

struct fx {
    struct tk_scratch t;
    struct tly_ledger *l;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    assert_int_equal(tk_scratch_make(&f->t, "idfilter"), 0);
    assert_int_equal(tly_ledger_open(f->t.db, TLY_LEDGER_LOCK, &f->l), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tly_ledger_close(f->l);
    assert_int_equal(tk_scratch_remove(&f->t), 0);
    free(f);
    return 0;
}

static void exec(struct fx *f, const char *sql)
{
    assert_int_equal(sqlite3_exec(f->l->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* the id filter's figures (idfilter.c) */
#define FILTER_KEYS "SELECT value FROM state WHERE key = 'run_filter_keys'"

static int64_t q_int(struct fx *f, const char *sql)
{
    sqlite3_stmt *q;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(f->l->db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* 'n' runs with the keys of ids "k0".."k<n-1>", in run_ids (or run_ids_new). */
static void put_keys(struct fx *f, int from, int n, const char *table)
{
    char sql[256], id[32];

    exec(f, "BEGIN");
    for (int i = from; i < from + n; i++) {
        snprintf(id, sizeof id, "k%d", i);
        snprintf(sql, sizeof sql, "INSERT INTO runs VALUES('acc', '%s', 0, 'agent', 'a', NULL, NULL, NULL,"
                 " 1, 1); INSERT INTO %s VALUES(%lld, last_insert_rowid())", id, table,
                 (long long)tly_ledger_run_key("acc", 3, id, strlen(id)));
        exec(f, sql);
    }
    exec(f, "COMMIT");
}

/*
 * Writes 'byte' at 'offset' of the stored blob; offset -1: over the first
 * nonzero byte after the byte-order mark (a key's bits lost).
 */
static void poke(struct fx *f, long offset, unsigned char byte)
{
    sqlite3_blob *blob;
    unsigned char c = 0;
    int n;

    assert_int_equal(sqlite3_blob_open(f->l->db, "main", "run_filter", "bits", 1, 1, &blob), SQLITE_OK);
    n = sqlite3_blob_bytes(blob);
    for (long i = 8; offset < 0 && i < n; i++) {
        assert_int_equal(sqlite3_blob_read(blob, &c, 1, (int)i), SQLITE_OK);
        if (c)
            offset = i;
    }
    assert_true(offset >= 0);
    assert_int_equal(sqlite3_blob_write(blob, &byte, 1, (int)offset), SQLITE_OK);
    sqlite3_blob_close(blob);
}

/* Saves 'filter' in a transaction of its own, as ingest does in a bundle's, and frees it. */
static void save_and_free(struct fx *f, struct tly_idfilter *filter)
{
    exec(f, "BEGIN");
    assert_int_equal(tly_idfilter_save(f->l, filter), TLY_OK);
    exec(f, "COMMIT");
    tly_idfilter_destroy(filter);
}

static int holds(const struct tly_idfilter *filter, int i)
{
    char id[32];

    snprintf(id, sizeof id, "k%d", i);
    return tly_idfilter_may_hold(filter, tly_ledger_run_key("acc", 3, id, strlen(id)));
}

/* Every key of both tables is held; of 100k absent keys, under 1% are "maybe". */
static void test_idfilter_no_false_negative(void **state)
{
    struct fx *f = *state;
    struct tly_idfilter *filter;
    int maybe = 0;

    put_keys(f, 0, 20000, "run_ids");
    put_keys(f, 20000, 5000, "run_ids_new");
    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    for (int i = 0; i < 25000; i++)
        assert_true(holds(filter, i));
    for (int i = 25000; i < 125000; i++)
        maybe += holds(filter, i);
    assert_true(maybe < 1000);          /* 16 bits per key: about 0.1% */
    tly_idfilter_destroy(filter);
}

/* Saved, loaded back, keys added since kept; then a foreign byte order rebuilds it. */
static void test_idfilter_saved_and_untrusted(void **state)
{
    struct fx *f = *state;
    struct tly_idfilter *filter;
    char sql[200];

    put_keys(f, 0, 100, "run_ids");
    assert_int_equal(tly_idfilter_build(f->l, &filter), TLY_OK);
    snprintf(sql, sizeof sql, "k%d", 100);
    tly_idfilter_add(filter, tly_ledger_run_key("acc", 3, sql, strlen(sql)));   /* not in the tables */
    save_and_free(f, filter);
    assert_int_equal(q_int(f, FILTER_KEYS), 100);  /* the keys of run_ids */
    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_true(holds(filter, 100));                        /* the stored one, not a rebuild */
    assert_false(tly_idfilter_unsaved(filter));
    tly_idfilter_destroy(filter);

    /* the first byte of the byte-order mark changed: rebuilt from the tables */
    poke(f, 0, 0xFF);
    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_false(holds(filter, 100));
    assert_true(holds(filter, 99));
    tly_idfilter_destroy(filter);
}

/* One byte of the blocks zeroed (a key's bit lost) does not match the checksum: rebuilt. */
static void test_idfilter_damaged_blob_rebuilt(void **state)
{
    struct fx *f = *state;
    struct tly_idfilter *filter;

    put_keys(f, 0, 100, "run_ids");
    assert_int_equal(tly_idfilter_build(f->l, &filter), TLY_OK);
    save_and_free(f, filter);
    poke(f, -1, 0);                                                 /* checksum and mark kept */
    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_true(tly_idfilter_unsaved(filter));                      /* rebuilt, not trusted */
    for (int i = 0; i < 100; i++)
        assert_true(holds(filter, i));
    tly_idfilter_destroy(filter);
}

/* Once the keys outnumber its capacity (8 bits each), the next load rebuilds it larger. */
static void test_idfilter_rebuilt_when_full(void **state)
{
    struct fx *f = *state;
    struct tly_idfilter *filter;
    int64_t bytes;

    put_keys(f, 0, 10, "run_ids");
    assert_int_equal(tly_idfilter_build(f->l, &filter), TLY_OK);
    save_and_free(f, filter);
    bytes = q_int(f, "SELECT length(bits) FROM run_filter");
    assert_int_equal(bytes, 8 + 1024 * 32);                 /* the least size */
    put_keys(f, 10, 40000, "run_ids_new");                  /* a load adds them: now full */
    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_true(tly_idfilter_unsaved(filter));
    for (int i = 0; i < 40010; i++)
        assert_true(holds(filter, i));
    save_and_free(f, filter);
    assert_int_equal(q_int(f, "SELECT length(bits) FROM run_filter"), 8 + 2501 * 32);   /* 2 × 40010 / 32 */
    assert_int_equal(q_int(f, FILTER_KEYS), 10);  /* the keys of run_ids */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idfilter_no_false_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idfilter_saved_and_untrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idfilter_damaged_blob_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idfilter_rebuilt_when_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
