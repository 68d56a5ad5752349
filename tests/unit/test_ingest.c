/*
 * test_ingest.c — bundles into a temporary ledger (spec inputs.md
 * "Duplicates", "manifest.csv", "accounts.csv", the row rules; outputs.md
 * rejects).  Each test writes small directory bundles and checks exact
 * counts and stored values, on both the loaded and the rejected side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "idfilter.h"
#include "ingest.h"
#include "ledger.h"
#include "opts.h"
#include "settings.h"
#include "testkit.h"

const struct tly_option *tly_ingest_options(void);

struct fx {
    struct tk_scratch t;
    struct tly_ledger *l;
    struct tly_settings s;
    struct tly_ingest_stats st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char conf[160];
    FILE *c;

    assert_int_equal(tk_scratch_make(&f->t, "ingest"), 0);
    snprintf(conf, sizeof conf, "%s/empty.conf", f->t.dir);
    c = fopen(conf, "w");
    fclose(c);
    assert_int_equal(tly_settings_load(&f->s, conf), 0);
    assert_int_equal(tly_ledger_open(f->t.db, TLY_LEDGER_LOCK, &f->l), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tly_ingest_stats_release(&f->st);
    tly_ledger_close(f->l);
    tly_settings_release(&f->s);
    assert_int_equal(tk_scratch_remove(&f->t), 0);
    free(f);
    return 0;
}

/* Writes DIR/BUNDLE/NAME; returns the bundle path in a static buffer. */
static const char *put(struct fx *f, const char *bundle, const char *name, const char *text)
{
    static char path[256];
    char file[300];
    FILE *o;

    snprintf(path, sizeof path, "%s/%s", f->t.dir, bundle);
    mkdir(path, 0755);
    snprintf(file, sizeof file, "%s/%s", path, name);
    o = fopen(file, "w");
    assert_non_null(o);
    fputs(text, o);
    fclose(o);
    return path;
}

static const char *bundle_path(struct fx *f, const char *bundle)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", f->t.dir, bundle);
    return path;
}

static int ingest(struct fx *f, const char *bundle)
{
    return tly_ingest_bundle(f->l, &f->s, bundle_path(f, bundle), &f->st);
}

/* the id filter's figures (idfilter.c) */
#define FILTER_KEYS "SELECT value FROM state WHERE key = 'run_filter_keys'"
#define FILTER_CAPACITY "SELECT value FROM state WHERE key = 'run_filter_capacity'"

/* First column of the first row of 'sql' as an integer. */
static int64_t q_int(struct fx *f, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -999;
    assert_int_equal(sqlite3_prepare_v2(f->l->db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* First column of the first row of 'sql' as text (static buffer; "" for none). */
static const char *q_text(struct fx *f, const char *sql)
{
    static char buf[4096];
    sqlite3_stmt *st;
    buf[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(f->l->db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static const char accounts_csv[] =
    "account_id,name,edition,admin_email,cycle_anchor,negative_limit,low_threshold,updated_at\n"
    "acc-1,Northwind,gale,ops@northwind.example,2026-10-01,5.5,,2026-09-19T12:00:00Z\n";
static const char credits_csv[] =
    "txn_id,account_id,ts,pool,type,amount,expires_at,reference\n"
    "t1,acc-1,2026-09-20T00:00:00+02:00,credits,free,75,2026-12-20T00:00:00Z,Free tier\n"
    "t2,acc-1,2026-09-20T00:00:00Z,runs,grant,10000,,\n"
    "t3,acc-1,2026-09-21T00:00:00Z,credits,adjust,-2.5,,ticket 7\n";
static const char runs_csv[] =
    "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
    "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n"
    "r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,failed\n"
    "r3,acc-1,2026-09-20T12:00:00.5Z,agent,ag-1,,,\n";
static const char deployments_csv[] =
    "event_id,account_id,ts,category,action,resource_id,resource_name,owner,deployment_id,"
    "deployment_name,deployment_type,hardware,units,replicas,model_type,language,language_version,endpoint\n"
    "d1,acc-1,2026-09-20T09:00:00Z,guardrail,deploy,gr-1,Toxicity,,,,,cpu.small,1,2,,,,\n"
    "d2,acc-1,2026-09-20T09:00:00Z,model,finetune_start,m-1,Llama,,job-1,,,gpu.a100,8,,fine-tuned,,,\n";

static void put_good(struct fx *f, const char *b)
{
    put(f, b, "accounts.csv", accounts_csv);
    put(f, b, "credits.csv", credits_csv);
    put(f, b, "runs.csv", runs_csv);
    put(f, b, "deployments.csv", deployments_csv);
}

/* Every row loaded; values stored normalised (ledger.c conventions). */
static void test_ingest_loads_and_normalises(void **state)
{
    struct fx *f = *state;
    put_good(f, "b1");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(f->st.bundles_loaded, 1);
    assert_int_equal(f->st.rows_loaded, 1 + 3 + 3 + 2);
    assert_int_equal(f->st.duplicates, 0);
    assert_int_equal(f->st.quarantined, 0);
    /* amounts in micro-credits; runs pool x 1,000,000; ts as UTC seconds */
    assert_int_equal(q_int(f, "SELECT amount FROM credits WHERE txn_id='t1'"), 75000000);
    assert_int_equal(q_int(f, "SELECT ts FROM credits WHERE txn_id='t1'"), 1789855200);  /* 2026-09-19T22:00:00Z */
    assert_int_equal(q_int(f, "SELECT expires_at FROM credits WHERE txn_id='t1'"), 1797724800);
    assert_int_equal(q_int(f, "SELECT amount FROM credits WHERE txn_id='t2'"), 10000000000LL);
    assert_int_equal(q_int(f, "SELECT amount FROM credits WHERE txn_id='t3'"), -2500000);
    assert_int_equal(q_int(f, "SELECT expires_at IS NULL AND reference IS NULL FROM credits"
                              " WHERE txn_id='t2'"), 1);
    assert_int_equal(q_int(f, "SELECT ts FROM runs WHERE event_id='r3'"), 1789905600);  /* .5 truncated */
    assert_int_equal(q_int(f, "SELECT outcome IS NULL FROM runs WHERE event_id='r3'"), 1);
    /* accounts: anchor as a day, defaults 0 */
    assert_int_equal(q_int(f, "SELECT cycle_anchor FROM accounts"), 20727);
    assert_int_equal(q_int(f, "SELECT negative_limit FROM accounts"), 5500000);
    assert_int_equal(q_int(f, "SELECT low_threshold FROM accounts"), 0);
    /* deployment_id defaults to resource_id */
    assert_string_equal(q_text(f, "SELECT deployment_id FROM deployments WHERE event_id='d1'"), "gr-1");
    assert_string_equal(q_text(f, "SELECT deployment_id FROM deployments WHERE event_id='d2'"), "job-1");
    assert_int_equal(q_int(f, "SELECT replicas IS NULL FROM deployments WHERE event_id='d2'"), 1);
    /* provenance: every row keeps its file and line */
    assert_string_equal(q_text(f, "SELECT f.path || ':' || r.line FROM runs r JOIN files f"
                                  " ON f.id = r.file_id WHERE event_id='r2'"), "runs.csv:3");
    assert_string_equal(q_text(f, "SELECT name || ' ' || status FROM bundles"), "b1 loaded");
}

/* run_day (rundays.h) sums exactly the runs loaded: no duplicate, conflict or reject in it */
static void assert_run_day_sums_runs(struct fx *f)
{
    assert_int_equal(q_int(f, "SELECT count(*) FROM (SELECT account_id, ts / 86400, kind, resource_id,"
                              " count(*), min(ts) FROM runs GROUP BY 1, 2, 3, 4 EXCEPT SELECT account_id,"
                              " day, kind, resource_id, runs, first_ts FROM run_day)"), 0);
    assert_int_equal(q_int(f, "SELECT COALESCE(SUM(runs), 0) FROM run_day"), q_int(f, "SELECT count(*) FROM runs"));
}

/* inputs.md "Duplicates": same id and content = duplicate; other content = conflict */
static void test_ingest_duplicate_and_conflict(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "runs.csv", runs_csv);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put(f, "b2", "runs-eu.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r1,acc-1,2026-09-20T12:00:00+02:00,agent,ag-1,Support,,ok\n"   /* same instant: duplicate */
        "r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,ok\n"               /* outcome differs */
        "r9,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,ok\n"
        "r9,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,ok\n"               /* same file: duplicate */
        "r1,acc-2,2026-09-20T11:00:00Z,agent,ag-1,,,ok\n");             /* other account: new */
    assert_int_equal(ingest(f, "b2"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3 + 2);
    assert_int_equal(f->st.duplicates, 2);
    assert_int_equal(f->st.quarantined, 1);
    assert_string_equal(q_text(f, "SELECT reason FROM rejects"),
                        "conflict: r2 differs from the version in force (bundle b1, file runs.csv, line 3)");
    assert_string_equal(q_text(f, "SELECT bundle || ' ' || file || ' ' || line || ' ' || raw FROM rejects"),
                        "b2 runs-eu.csv 3 r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,ok");
    /* the first stays in force */
    assert_string_equal(q_text(f, "SELECT outcome FROM runs WHERE event_id='r2'"), "failed");
    assert_int_equal(q_int(f, "SELECT quarantined FROM bundles WHERE name='b2'"), 1);
    assert_int_equal(q_int(f, "SELECT duplicates FROM bundles WHERE name='b2'"), 2);
    /* 2026-09-20 is day 20716; acc-1's first run is r1 at 10:00 */
    assert_string_equal(q_text(f, "SELECT group_concat(account_id || ' ' || day || ' ' || runs || ' ' || first_ts,"
                                  " '; ') FROM run_day"), "acc-1 20716 4 1789898400; acc-2 20716 1 1789902000");
    assert_run_day_sums_runs(f);
}

/* idfilter.h: the stored filter holds the key of every run. */
static void assert_filter_holds_every_key(struct fx *f)
{
    struct tly_idfilter *filter;
    sqlite3_stmt *q;

    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_int_equal(sqlite3_prepare_v2(f->l->db, "SELECT tally_run_key(account_id, event_id) FROM runs",
                                        -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW)
        assert_true(tly_idfilter_may_hold(filter, sqlite3_column_int64(q, 0)));
    sqlite3_finalize(q);
    assert_false(tly_idfilter_may_hold(filter, tly_ledger_run_key("acc-1", 5, "never", 5)));
    tly_idfilter_destroy(filter);
}

/* A load finds the stored filter whole: assert_filter_holds_every_key tested it, not a rebuild. */
static void assert_filter_stored(struct fx *f)
{
    struct tly_idfilter *filter;

    assert_int_equal(tly_idfilter_load(f->l, &filter), TLY_OK);
    assert_false(tly_idfilter_unsaved(filter));
    tly_idfilter_destroy(filter);
}

/*
 * Every run has its id key in exactly one of run_ids and run_ids_new
 * (migration 11) and in the id filter, nothing else is there, and the time
 * index is in place, in WAL mode.
 */
static void assert_runs_indexes(struct fx *f)
{
    assert_filter_holds_every_key(f);
    assert_int_equal(q_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'"
                              " AND name = 'runs_by_day'"), 1);
    assert_int_equal(q_int(f, "SELECT (SELECT count(*) FROM run_ids) + (SELECT count(*) FROM run_ids_new)"),
                     q_int(f, "SELECT count(*) FROM runs"));
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs r WHERE"
                              " (SELECT count(*) FROM run_ids i WHERE i.run = r.rowid"
                              "  AND i.id_key = tally_run_key(r.account_id, r.event_id))"
                              " + (SELECT count(*) FROM run_ids_new i WHERE i.run = r.rowid"
                              "  AND i.id_key = tally_run_key(r.account_id, r.event_id)) != 1"), 0);
    assert_string_equal(q_text(f, "PRAGMA integrity_check"), "ok");
    /* even after a bulk pass, run under the rollback journal (tly_ledger_append_journal) */
    assert_string_equal(q_text(f, "PRAGMA journal_mode"), "wal");
}

/*
 * ingest.c bulk_begin: a first load builds the runs indexes at its end; a
 * duplicate id inside it makes the load start over row by row, with the
 * same figures, rejects and skipped files as a row-by-row load, said once.
 */
static void put_bulk_duplicates(struct fx *f, const char *b)
{
    put(f, b, "README.txt", "not data\n");
    put(f, b, "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n"
        "r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,ok\n"
        "r5,acc-1,2026-09-20T10:00:00Z,robot,ag-1,Support,,ok\n"       /* bad_value */
        "r1,acc-1,2026-09-20T12:00:00+02:00,agent,ag-1,Support,,ok\n"  /* duplicate */
        "r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,,,failed\n"          /* conflict */
        "r3,acc-1,2026-09-21T11:00:00Z,agent,ag-1,,,ok\n");
}

static void test_ingest_bulk_load_with_duplicates(void **state)
{
    struct fx *f = *state;
    put_bulk_duplicates(f, "b1");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(f->st.quarantined, 2);
    assert_int_equal(f->st.files_skipped, 1);
    assert_int_equal(f->st.bundles_loaded, 1);
    assert_string_equal(q_text(f, "SELECT group_concat(line || ' ' || reason, '; ') FROM"
                                  " (SELECT line, reason FROM rejects ORDER BY line)"),
                        "4 bad_value: kind not one of the allowed values; "
                        "6 conflict: r2 differs from the version in force (bundle b1, file runs.csv, line 3)");
    assert_string_equal(q_text(f, "SELECT outcome FROM runs WHERE event_id='r2'"), "ok");
    assert_int_equal(q_int(f, "SELECT count(*) FROM bundles"), 1);
    assert_int_equal(q_int(f, "SELECT duplicates FROM bundles"), 1);
    assert_string_equal(q_text(f, "SELECT skipped FROM bundles"), "README.txt");
    assert_runs_indexes(f);
    assert_run_day_sums_runs(f);
}

/*
 * ingest.c refit_filter: the reload after a first load with a duplicate
 * builds its id filter for the runs it loaded, not for the empty ledger it
 * started from (which would be full, and rebuilt the next night).
 */
static void test_ingest_bulk_reload_sizes_filter(void **state)
{
    struct fx *f = *state;
    enum { N = 40000 };
    size_t cap = 64 + (size_t)N * 64;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");

    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "r%d,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n", i);
    snprintf(text + len, cap - len, "r7,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n");      /* duplicate */
    put(f, "b1", "runs.csv", text);
    free(text);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(q_int(f, FILTER_KEYS), N);
    assert_true(q_int(f, FILTER_CAPACITY) >= N);  /* not the least size, 32768 */
    assert_runs_indexes(f);
}

/* A first load without duplicates keeps its single pass and leaves both indexes. */
static void test_ingest_bulk_load_builds_indexes(void **state)
{
    struct fx *f = *state;
    put_good(f, "b1");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(f->st.rows_loaded, 1 + 3 + 3 + 2);
    assert_runs_indexes(f);
    assert_run_day_sums_runs(f);
    put(f, "b2", "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n");   /* duplicate of b1 */
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_int_equal(f->st.duplicates, 1);
}

/* ledger.h tly_ledger_run_key: equal keys are not equal ids; the ids decide */
static void test_ingest_run_key_collision(void **state)
{
    struct fx *f = *state;
    char sql[320];

    put(f, "b1", "runs.csv", runs_csv);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    /* another run whose key is r9's */
    /* (the filter is dropped, so the next ingest rebuilds it with this key) */
    snprintf(sql, sizeof sql, "INSERT INTO runs VALUES('acc-1', 'zz', 0, 'agent', 'ag-1', NULL, NULL,"
             " NULL, 1, 2); INSERT INTO run_ids_new VALUES(%lld, last_insert_rowid());"
             " DELETE FROM run_filter", (long long)tly_ledger_run_key("acc-1", 5, "r9", 2));
    assert_int_equal(sqlite3_exec(f->l->db, sql, NULL, NULL, NULL), SQLITE_OK);
    put(f, "b2", "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r9,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n"
        "r9,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n");
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_int_equal(f->st.rows_loaded, 3 + 1);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs WHERE event_id IN ('r9', 'zz')"), 2);
    assert_int_equal(q_int(f, "SELECT count(*) FROM (SELECT id_key FROM run_ids UNION ALL"
                              " SELECT id_key FROM run_ids_new) WHERE id_key = tally_run_key('acc-1', 'r9')"), 2);
    assert_string_equal(q_text(f, "PRAGMA integrity_check"), "ok");
}

/* A runs.csv of 'n' runs of acc-1, ids PREFIX0.., a minute apart from 10:00. */
static void put_runs(struct fx *f, const char *b, const char *prefix, int n, const char *extra)
{
    char text[4096];
    int len = snprintf(text, sizeof text, "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");

    for (int i = 0; i < n; i++)
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "%s%d,acc-1,2026-09-20T10:%02d:00Z,agent,ag-1,,,ok\n", prefix, i, i);
    snprintf(text + len, sizeof text - (size_t)len, "%s", extra);
    put(f, b, "runs.csv", text);
}

/*
 * ingest.c store_bulk_keys: a bulk load's keys go into run_ids from the key
 * spool, 64 to a statement and the rest one by one: 200 runs are three
 * batches and 8 more, every one under its own key; sent again, each is
 * found by it.
 */
static void test_ingest_bulk_keys_in_batches(void **state)
{
    struct fx *f = *state;
    static char text[32768];
    int len = 0;

    for (int b = 0; b < 2; b++) {
        len = snprintf(text, sizeof text, "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");
        for (int i = 0; i < 200 + b; i++)
            len += snprintf(text + len, sizeof text - (size_t)len,
                            "run-%d,acc-%d,2026-09-20T%02d:%02d:00Z,agent,ag-1,,,ok\n", i, i % 3, i / 60, i % 60);
        put(f, b ? "b2" : "b1", "runs.csv", text);
        assert_int_equal(ingest(f, b ? "b2" : "b1"), TLY_OK);
    }
    assert_int_equal(f->st.rows_loaded, 200 + 1);   /* b1, then b2: run-200 */
    assert_int_equal(f->st.duplicates, 200);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids"), 200);
    assert_runs_indexes(f);
}

/*
 * ingest.c hold_run/flush_runs: a bulk load's runs wait 64 at a time with
 * their texts copied.  Two runs files of one bundle (150 and 71 runs, the
 * first with a rejected row), names of up to 500 bytes so the copies'
 * buffer grows while runs wait: every run keeps its own texts, its key
 * points at its own row, and run_day counts each once.
 */
static void test_ingest_bulk_runs_held_across_files(void **state)
{
    static const char *const files[2] = { "runs.csv", "runs-eu.csv" };
    static const int counts[2] = { 150, 71 };
    static char text[1 << 20];
    struct fx *f = *state;

    for (int fi = 0; fi < 2; fi++) {
        int len = snprintf(text, sizeof text,
                           "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");
        for (int i = 0; i < counts[fi]; i++) {
            char name[600];
            size_t n = (size_t)(i * 7 % 500);

            memset(name, 'a' + i % 26, n);
            name[n] = '\0';
            if (fi == 0 && i == 30)
                len += snprintf(text + len, sizeof text - (size_t)len,
                                "bad,acc-1,notadate,agent,ag-1,,,ok\n");
            len += snprintf(text + len, sizeof text - (size_t)len,
                            "f%d-r%d,acc-%d,2026-09-%02dT%02d:%02d:00Z,agent,ag-%d,%s,,ok\n", fi, i,
                            i % 5, 10 + i % 9, i % 24, i % 60, i % 3, name);
        }
        put(f, "b1", files[fi], text);
    }
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 150 + 71);
    assert_int_equal(f->st.quarantined, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs r JOIN run_ids i ON i.run = r.rowid"
                              " WHERE i.id_key = tally_run_key(r.account_id, r.event_id)"), 150 + 71);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs WHERE COALESCE(length(resource_name), 0)"
                              " != CAST(substr(event_id, instr(event_id, '-r') + 2) AS INT) * 7 % 500"), 0);
    assert_runs_indexes(f);
    assert_run_day_sums_runs(f);
}

/* 'n' runs of three accounts, ids PREFIX0.., into BUNDLE/runs.csv */
static void put_many_runs(struct fx *f, const char *bundle, const char *prefix, int n)
{
    static char text[1 << 16];
    int len = snprintf(text, sizeof text, "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");

    for (int i = 0; i < n; i++)
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "%s%d,acc-%d,2026-09-20T%02d:%02d:00Z,agent,ag-1,,,ok\n", prefix, i, i % 3, i / 60, i % 60);
    put(f, bundle, "runs.csv", text);
}

/*
 * ingest.c merge_new_ids: a night's keys go to run_ids_new, and once it
 * holds more than an eighth of the runs an eighth of the key space moves
 * into run_ids, slice by slice in turn; duplicates and conflicts are found
 * in either table.
 */
#define SLICE_OF(key) "((" key " >> 61) + 4)"       /* 0 for INT64_MIN.., 7 for ..INT64_MAX */
#define SLICE_OF_KEY SLICE_OF("id_key")
#define SLICE_OF_RUN SLICE_OF("tally_run_key(account_id, event_id)")
#define NEXT_SLICE "SELECT value FROM state WHERE key = 'run_ids_slice'"

static void test_ingest_new_run_ids_merge(void **state)
{
    struct fx *f = *state;

    put_runs(f, "b1", "a", 40, "");                         /* a bulk load: all in run_ids */
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids"), 40);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids_new"), 0);
    put_runs(f, "b2", "b", 4, "a3,acc-1,2026-09-20T10:03:00Z,agent,ag-1,,,ok\n");
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_int_equal(f->st.duplicates, 1);                   /* found in run_ids */
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids_new"), 4);   /* 8 × 4 <= 44 */
    assert_int_equal(q_int(f, FILTER_KEYS), 40);  /* covers run_ids: not written */
    assert_runs_indexes(f);
    put_runs(f, "b3", "c", 8, "b0,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n"
                              "b0,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,failed\n");
    assert_int_equal(ingest(f, "b3"), TLY_QUARANTINED);
    assert_int_equal(q_int(f, "SELECT duplicates FROM bundles WHERE name = 'b3'"), 1);   /* in run_ids_new */
    assert_int_equal(q_int(f, "SELECT quarantined FROM bundles WHERE name = 'b3'"), 1);
    /* 8 × 12 > 52 and 2 × 12 < 52: slice 0 moved, the next is 1 */
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids_new WHERE " SLICE_OF_KEY " = 0"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids WHERE " SLICE_OF_KEY " = 0 AND run > 40"),
                     q_int(f, "SELECT count(*) FROM runs WHERE rowid > 40 AND " SLICE_OF_RUN " = 0"));
    assert_int_equal(q_int(f, NEXT_SLICE), 1);
    assert_true(q_int(f, "SELECT count(*) FROM run_ids_new") > 0);      /* the other slices wait */
    assert_int_equal(q_int(f, FILTER_KEYS), q_int(f, "SELECT count(*) FROM run_ids"));  /* written with the move */
    assert_filter_stored(f);
    assert_runs_indexes(f);
    put_runs(f, "b4", "d", 0, "c1,acc-1,2026-09-20T10:01:00Z,agent,ag-1,,,failed\n");
    assert_int_equal(ingest(f, "b4"), TLY_QUARANTINED);      /* b3's run, in either table */
    assert_string_equal(q_text(f, "SELECT reason FROM rejects WHERE bundle = 'b4'"),
                        "conflict: c1 differs from the version in force (bundle b3, file runs.csv, line 3)");
    assert_runs_indexes(f);
}

/*
 * The slices move in turn, one a bundle while run_ids_new holds more than
 * an eighth of the runs, and wrap around; each move takes every key of
 * its slice out of run_ids_new.  Bundles of 20 new runs and a copy of an
 * old one keep the eighth passed (and run_ids the larger), so slices 1 to
 * 7 and then 0 again move in 8 bundles.
 */
static void test_ingest_new_run_ids_slices_in_turn(void **state)
{
    struct fx *f = *state;
    char name[8], prefix[8], sql[160], added[200];

    put_many_runs(f, "b1", "a", 400);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put_many_runs(f, "n0", "n", 60);                         /* 8 × 60 > 460: slice 0 */
    assert_int_equal(ingest(f, "n0"), TLY_OK);
    assert_int_equal(q_int(f, NEXT_SLICE), 1);
    for (int k = 1; k <= 8; k++) {
        int64_t last_run = q_int(f, "SELECT max(rowid) FROM runs"), others;

        snprintf(sql, sizeof sql, "SELECT count(*) FROM run_ids_new WHERE " SLICE_OF_KEY " != %d", k % 8);
        others = q_int(f, sql);
        snprintf(name, sizeof name, "n%d", k);
        snprintf(prefix, sizeof prefix, "k%d-", k);
        put_runs(f, name, prefix, 20, "a0,acc-0,2026-09-20T00:00:00Z,agent,ag-1,,,ok\n");
        assert_int_equal(ingest(f, name), TLY_OK);
        /* the other slices kept their keys and gained the bundle's */
        snprintf(added, sizeof added, "SELECT count(*) FROM runs WHERE rowid > %lld AND " SLICE_OF_RUN " != %d",
                 (long long)last_run, k % 8);
        assert_int_equal(q_int(f, sql), others + q_int(f, added));
        snprintf(sql, sizeof sql, "SELECT duplicates FROM bundles WHERE name = '%s'", name);
        assert_int_equal(q_int(f, sql), 1);
        assert_int_equal(q_int(f, NEXT_SLICE), (k + 1) % 8);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM run_ids_new WHERE " SLICE_OF_KEY " = %d", k % 8);
        assert_int_equal(q_int(f, sql), 0);
        assert_int_equal(q_int(f, FILTER_KEYS), q_int(f, "SELECT count(*) FROM run_ids"));
        assert_filter_stored(f);
        assert_runs_indexes(f);
    }
    assert_true(q_int(f, "SELECT count(*) FROM run_ids_new") > 0);
}

/*
 * SQLite's statement journals, counted where it opens them.  main() makes
 * every statement journal a file from its first byte (spill threshold 0),
 * and this VFS, SQLite's default one but for xOpen, counts those files.
 * A transaction opens at most one and reuses it for each statement, so
 * the count is of transactions that journaled any statement.
 */
static sqlite3_vfs *default_vfs;
static sqlite3_vfs counting_vfs;
static int statement_journals;

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    if (flags & SQLITE_OPEN_SUBJOURNAL)
        statement_journals++;
    return default_vfs->xOpen(default_vfs, name, file, flags, out);
}

static int count_statement_journals(void)
{
    if (sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 0) != SQLITE_OK || !(default_vfs = sqlite3_vfs_find(NULL)))
        return -1;
    counting_vfs = *default_vfs;
    counting_vfs.zName = "tally-test-counting";
    counting_vfs.xOpen = counting_open;
    return sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/*
 * ledger.h "Transactions": a night's inserts of many rows keep no
 * statement journal.  With one, each copied every existing page it changed
 * to a temporary file: 634 MB for a night of 340k runs, all of run_ids for
 * a night that merges run_ids_new.  A bulk load of 200 runs, then a night
 * of 200 more: its runs and keys go in 64 to a statement, and its keys
 * move into run_ids (8 x 200 > 400); then a night of 60 of which one
 * slice of keys moves.  The bulk load is not counted: its CREATE INDEX of
 * the time index, a schema statement, is journaled anyway.
 */
static void test_ingest_many_row_inserts_keep_no_statement_journal(void **state)
{
    struct fx *f = *state;

    put_many_runs(f, "b1", "a", 200);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put_many_runs(f, "b2", "b", 200);
    statement_journals = 0;
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids_new"), 0);      /* merged */
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_ids"), 400);
    put_many_runs(f, "b3", "c", 60);                        /* 8 × 60 > 460 > 2 × 60: a slice moves */
    assert_int_equal(ingest(f, "b3"), TLY_OK);
    assert_int_equal(q_int(f, NEXT_SLICE), 1);
    assert_int_equal(statement_journals, 0);
    assert_runs_indexes(f);
}

/*
 * ingest.c hold_run: a night holds its runs and inserts them in the time
 * index's order (day, account, ts), each key pointing at its own row.  A
 * copy of a held run later in the bundle is found as a duplicate, another
 * version of it as a conflict naming its line.
 */
static void test_ingest_night_runs_in_time_index_order(void **state)
{
    struct fx *f = *state;

    put_runs(f, "b1", "a", 3, "");                          /* a bulk load */
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put(f, "b2", "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "n1,acc-2,2026-09-21T10:00:00Z,agent,ag-1,,,ok\n"
        "n2,acc-1,2026-09-21T11:00:00Z,agent,ag-1,,,ok\n"
        "n3,acc-2,2026-09-20T23:00:00Z,agent,ag-1,,,ok\n"
        "n4,acc-1,2026-09-21T09:00:00Z,agent,ag-1,,,ok\n"
        "n1,acc-2,2026-09-21T10:00:00Z,agent,ag-1,,,ok\n"     /* held: a duplicate */
        "n2,acc-1,2026-09-21T11:00:00Z,agent,ag-1,,,failed\n" /* held: a conflict */
        "n5,acc-1,2026-09-21T09:00:00Z,agent,ag-1,,,ok\n");
    assert_int_equal(ingest(f, "b2"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3 + 5);
    assert_int_equal(f->st.duplicates, 1);
    assert_string_equal(q_text(f, "SELECT reason FROM rejects"),
                        "conflict: n2 differs from the version in force (bundle b2, file runs.csv, line 3)");
    /* the first flush (at the duplicate) took n1..n4; n5 came in the second */
    assert_string_equal(q_text(f, "SELECT group_concat(event_id, ' ') FROM (SELECT event_id FROM runs"
                                  " WHERE rowid > 3 ORDER BY rowid)"), "n3 n4 n2 n1 n5");
    assert_runs_indexes(f);
    assert_run_day_sums_runs(f);
}

/*
 * More runs than a night holds (NIGHT_HELD_RUNS, 32768): the hold is
 * flushed on the way; the last run is the first one again, whose run is in
 * the ledger and whose key still waits for run_ids_new.
 */
static void test_ingest_night_hold_flushed_when_full(void **state)
{
    struct fx *f = *state;
    const int n = 40000;
    size_t cap = 64 + (size_t)n * 64, len;
    char *text = malloc(cap);

    assert_non_null(text);
    put_runs(f, "b1", "a", 3, "");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    len = (size_t)snprintf(text, cap, "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "x%d,acc-%d,2026-09-21T%02d:%02d:00Z,agent,ag-1,,,ok\n",
                                i, i % 7, (i / 60) % 24, i % 60);
    snprintf(text + len, cap - len, "x0,acc-0,2026-09-21T00:00:00Z,agent,ag-1,,,ok\n");
    put(f, "b2", "runs.csv", text);
    free(text);
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_int_equal(f->st.rows_loaded, 3 + n);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 3 + n);
    assert_runs_indexes(f);
    assert_run_day_sums_runs(f);
}

/* inputs.md "accounts.csv": the latest updated_at wins; same updated_at, other content: conflict */
static void test_ingest_accounts_latest_updated_at(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "accounts.csv",
        "account_id,name,edition,admin_email,cycle_anchor,updated_at\n"
        "acc-1,Old,gale,a@x.example,2026-10-01,2026-09-19T12:00:00Z\n"
        "acc-1,New,gale,a@x.example,2026-10-05,2026-09-20T12:00:00Z\n"     /* newer: replaces */
        "acc-1,Older,gale,a@x.example,2026-10-01,2026-09-01T12:00:00Z\n"   /* older: superseded */
        "acc-1,New,gale,a@x.example,2026-10-05,2026-09-20T14:00:00+02:00\n" /* identical: duplicate */
        "acc-1,Other,gale,a@x.example,2026-10-05,2026-09-20T12:00:00Z\n"); /* conflict */
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3);
    assert_int_equal(f->st.superseded, 1);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(f->st.quarantined, 1);
    assert_string_equal(q_text(f, "SELECT name || ' ' || line FROM accounts"), "New 3");
    assert_string_equal(q_text(f, "SELECT reason FROM rejects"),
                        "conflict: acc-1 differs from the version in force (bundle b1, file accounts.csv, line 3)");
    /* every version is kept: an older one re-sent is a duplicate, other content a conflict */
    put(f, "b2", "accounts.csv",
        "account_id,name,edition,admin_email,cycle_anchor,updated_at\n"
        "acc-1,Older,gale,a@x.example,2026-10-01,2026-09-01T12:00:00Z\n"   /* b1 line 4 again */
        "acc-1,Changed,gale,a@x.example,2026-10-01,2026-09-01T12:00:00Z\n" /* conflict with it */
        "acc-1,Oldest,gale,a@x.example,2026-10-01,2026-08-01T12:00:00Z\n"); /* superseded */
    assert_int_equal(ingest(f, "b2"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3 + 1);     /* the counts add up over both bundles */
    assert_int_equal(f->st.superseded, 1 + 1);
    assert_int_equal(f->st.duplicates, 1 + 1);
    assert_int_equal(f->st.quarantined, 1 + 1);
    assert_string_equal(q_text(f, "SELECT name || ' ' || line FROM accounts"), "New 3");
    assert_string_equal(q_text(f, "SELECT reason FROM rejects WHERE bundle = 'b2'"),
                        "conflict: acc-1 differs from the version in force (bundle b1, file accounts.csv, line 4)");
    assert_int_equal(q_int(f, "SELECT count(*) FROM account_versions"), 4);
}

/* Dumps every ingest table, for the idempotence check. */
static char *dump(struct fx *f)
{
    static const char *const sql[] = {
        "SELECT * FROM accounts ORDER BY 1", "SELECT * FROM credits ORDER BY 1, 2",
        "SELECT * FROM runs ORDER BY 1, 2", "SELECT * FROM deployments ORDER BY 1, 2",
        "SELECT * FROM rejects ORDER BY 1", "SELECT * FROM files ORDER BY 1",
        "SELECT * FROM bundles ORDER BY 1", "SELECT * FROM state ORDER BY 1",
    };
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(f->l->db, sql[i], -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *t = (const char *)sqlite3_column_text(st, c);
                n += (size_t)snprintf(out + n, cap - n, "%s|", t ? t : "NULL");
                assert_true(n < cap);
            }
        sqlite3_finalize(st);
    }
    return out;
}

/* semantics §9: ingesting twice changes nothing; the second says so */
static void test_ingest_twice_is_idempotent(void **state)
{
    struct fx *f = *state;
    char *before, *after;
    put_good(f, "b1");
    put(f, "b1", "runs-bad.csv",
        "event_id,account_id,ts,kind,resource_id\nx1,acc-1,2026-02-30T00:00:00Z,agent,a\n");
    put(f, "b1", "README.md", "not data\n");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    before = dump(f);
    tly_ingest_stats_release(&f->st);
    memset(&f->st, 0, sizeof f->st);
    /* a re-run exits as the first did (3), names the skipped file again, loads nothing */
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_already, 1);
    assert_int_equal(f->st.bundles_loaded, 0);
    assert_int_equal(f->st.rows_loaded, 0);
    assert_int_equal(f->st.files_skipped, 1);
    assert_string_equal(f->st.skipped[0], "b1: README.md");
    after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void sha_hex(const char *text, char hex[65])
{
    struct sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, strlen(text), (const uint8_t *)text);
    sha256_digest(&c, 32, d);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
}

static void put_manifest(struct fx *f, const char *b, long runs_rows, const char *extra)
{
    char text[1024], h1[65], h2[65];
    sha_hex(runs_csv, h1);
    sha_hex(credits_csv, h2);
    snprintf(text, sizeof text,
             "file,rows,sha256,period_start,period_end\n"
             "runs.csv,%ld,%s,2026-09-20T00:00:00Z,2026-11-05T00:00:00Z\n"
             "credits.csv,3,%s,2026-09-20T00:00:00Z,2026-11-05T00:00:00Z\n%s",
             runs_rows, h1, h2, extra);
    put(f, b, "manifest.csv", text);
}

static void test_ingest_manifest_ok_sets_period_end(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "runs.csv", runs_csv);
    put(f, "b1", "credits.csv", credits_csv);
    put_manifest(f, "b1", 3, "");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(f->st.rows_loaded, 6);
    assert_int_equal(q_int(f, "SELECT value FROM state WHERE key='latest_period_end'"), 1793836800);
    assert_int_equal(q_int(f, "SELECT period_end FROM bundles"), 1793836800);
}

/* inputs.md: a manifest read after the data rolls the bundle back */
static void test_ingest_manifest_mismatch_rolls_back(void **state)
{
    struct fx *f = *state;
    static const char *const cases[] = { "count", "digest", "missing", "extra" };
    (void)cases;
    for (int k = 0; k < 4; k++) {
        char b[8];
        snprintf(b, sizeof b, "m%d", k);
        put(f, b, "runs.csv", runs_csv);
        if (k != 2)
            put(f, b, "credits.csv", k == 1 ? "txn_id,account_id,ts,pool,type,amount\n" : credits_csv);
        put_manifest(f, b, k == 0 ? 4 : 3, k == 3 ? "" : "");
        if (k == 3)
            put(f, b, "accounts.csv", accounts_csv);      /* data file not listed */
        assert_int_equal(ingest(f, b), TLY_QUARANTINED);
    }
    assert_int_equal(f->st.bundles_rejected, 4);
    assert_int_equal(f->st.rows_loaded, 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM credits"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM files"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM state"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM bundles WHERE status='rejected'"), 4);
    assert_string_equal(q_text(f, "SELECT reason FROM rejects WHERE bundle='m0'"),
                        "manifest_mismatch: 'runs.csv' has 3 rows, the manifest says 4");
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects WHERE line IS NULL AND reason LIKE"
                              " 'manifest_mismatch: %'"), 4);
    assert_string_equal(q_text(f, "SELECT file FROM rejects WHERE bundle='m2'"), "credits.csv");
    /* the same content again: already ingested (rejected), still exit 3 */
    assert_int_equal(ingest(f, "m0"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_already_rejected, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 4);
}

/* semantics §8: a run before its account's last close is late, summed under its bundle */
static void test_ingest_late_runs_summed_per_bundle(void **state)
{
    struct fx *f = *state;
    /* acc-1 closed at 2026-09-21 00:00 (day 20717); acc-2 never closed */
    assert_int_equal(tly_ledger_exec(f->l, "INSERT INTO closes VALUES('acc-1', 1789948800, 0, 0, 0)"), TLY_OK);
    put(f, "b1", "runs.csv",
        "event_id,account_id,ts,kind,resource_id\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1\n"
        "r2,acc-1,2026-09-20T09:00:00Z,agent,ag-1\n"
        "r3,acc-1,2026-09-21T00:00:00Z,agent,ag-1\n"     /* at the close: not late */
        "r4,acc-2,2026-09-20T09:00:00Z,agent,ag-1\n");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put(f, "b2", "runs.csv",
        "event_id,account_id,ts,kind,resource_id\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1\n"     /* duplicate: not counted again */
        "r5,acc-1,2026-09-19T23:59:59Z,agent,ag-1\n"
        "r6,acc-2,2026-09-21T01:30:00+02:00,tool,tl-1\n");  /* 2026-09-20T23:30Z */
    assert_int_equal(ingest(f, "b2"), TLY_OK);
    assert_string_equal(q_text(f, "SELECT group_concat(account_id || ' ' || bundle_id || ' ' || day || ' '"
                                  " || runs || ' ' || first_ts, '; ') FROM late_run_day"),
                        "acc-1 1 20716 2 1789894800; acc-1 2 20715 1 1789862399");
    assert_string_equal(q_text(f, "SELECT group_concat(day || ' ' || kind || ' ' || runs || ' ' || first_ts, '; ')"
                                  " FROM run_day WHERE account_id = 'acc-2'"),
                        "20716 agent 1 1789894800; 20716 tool 1 1789947000");
    assert_run_day_sums_runs(f);
}

/* A bundle rolled back leaves run_day as it was; groups past one flush add up. */
static void test_ingest_run_day_rollback_and_flushes(void **state)
{
    struct fx *f = *state;
    char *big;
    size_t cap = 2 * 70000 * 64 + 64, n = 0;

    put(f, "m0", "runs.csv", runs_csv);
    put_manifest(f, "m0", 4, "");                       /* a mismatch: rolled back */
    assert_int_equal(ingest(f, "m0"), TLY_QUARANTINED);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_day"), 0);

    /* 70,000 runnables (one group each, more than a flush holds), then each again */
    assert_non_null(big = malloc(cap));
    n += (size_t)snprintf(big + n, cap - n, "event_id,account_id,ts,kind,resource_id\n");
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 70000; i++)
            n += (size_t)snprintf(big + n, cap - n, "e%d-%d,acc-1,2026-09-20T%02d:00:00Z,agent,ag-%d\n",
                                  pass, i, 10 - pass, i);
    put(f, "b1", "runs.csv", big);
    free(big);
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_day"), 70000);
    assert_int_equal(q_int(f, "SELECT count(*) FROM run_day WHERE runs = 2 AND first_ts = 1789894800"),
                     70000);                            /* 09:00, the second pass */
}

static void test_ingest_two_manifests(void **state)
{
    struct fx *f = *state;
    char dir[300];
    put(f, "b1", "runs.csv", runs_csv);
    put_manifest(f, "b1", 3, "");
    snprintf(dir, sizeof dir, "%s/b1/sub", f->t.dir);
    mkdir(dir, 0755);
    put(f, "b1/sub", "manifest.csv", "file,rows,sha256\n");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_rejected, 1);
    assert_string_equal(q_text(f, "SELECT substr(reason, 1, 18) FROM rejects"), "manifest_mismatch:");
}

static void test_ingest_no_known_file(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "README.md", "hello\n");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_rejected, 1);
    assert_int_equal(f->st.files_skipped, 1);
    assert_string_equal(q_text(f, "SELECT reason FROM rejects"),
                        "no_known_file: no accounts, credits, runs, deployments or manifest file");
}

/* inputs.md: a missing required column rejects that file; the rest of the bundle loads */
static void test_ingest_missing_column_rejects_file(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "runs.csv", "event_id,account_id,kind,resource_id,color\nr1,acc-1,agent,a,red\n");
    put(f, "b1", "credits.csv", credits_csv);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 3);
    assert_int_equal(f->st.quarantined, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 0);
    assert_string_equal(q_text(f, "SELECT file || ' ' || line || ' ' || reason FROM rejects"),
                        "runs.csv 1 missing_column: ts");
}

/*
 * inputs.md: a quote error rejects the rest of the file, listed at its
 * line; after 'good' loaded rows, or as the first data row (nothing before
 * it for the parsing thread to copy from).
 */
static void check_quote_error(struct fx *f, int good, const char *want)
{
    char text[512];
    int len = snprintf(text, sizeof text, "event_id,account_id,ts,kind,resource_id\n");

    for (int i = 0; i < good; i++)
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "r%d,acc-1,2026-09-20T10:00:00Z,agent,a\n", i);
    snprintf(text + len, sizeof text - (size_t)len,
             "rq,acc-1,2026-09-20T10:00:00Z,agent,a\"b\n"
             "rz,acc-1,2026-09-20T10:00:00Z,agent,a\n");
    put(f, "b1", "runs.csv", text);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, good);
    assert_int_equal(f->st.quarantined, 2);         /* rq and rz, in one rejects entry */
    assert_string_equal(q_text(f, "SELECT line || ' ' || substr(reason, 1, 12) FROM rejects"), want);
}

static void test_ingest_quote_error(void **state)
{
    check_quote_error(*state, 1, "3 quote_error:");
}

static void test_ingest_quote_error_in_first_row(void **state)
{
    check_quote_error(*state, 0, "2 quote_error:");
}

/* Row rules with their reason; each bad row is quarantined, the others load. */
static void test_ingest_row_rules(void **state)
{
    struct fx *f = *state;
    sqlite3_stmt *st;
    static const char *const expected[] = {
        "3 bad_value: amount must be > 0 for free, grant and topup",
        "4 bad_value: amount must not be 0 for adjust",
        "5 bad_value: amount must be a whole number of runs",
        "6 bad_value: expires_at must be after ts",
        "7 bad_value: expires_at not allowed for adjust",
        "8 bad_value: amount more than 6 decimals",
        "9 bad_value: account_id has a '/'",
        "10 bad_value: ts no UTC offset",
        "11 bad_value: pool not one of the allowed values",
        "12 bad_value: reference has a control character",
        "14 bad_value: txn_id is empty",        /* c12 spans lines 12-13 */
        "15 field_count: 7 fields, the header has 8",
        "16 bad_utf8: invalid UTF-8",
        "18 bad_value: ts not an ISO 8601 timestamp with offset",   /* not "not a date" */
        "19 bad_value: ts not a calendar date",
    };
    put(f, "b1", "credits.csv",
        "txn_id,account_id,ts,pool,type,amount,expires_at,reference\n"
        "ok1,acc-1,2026-09-20T00:00:00Z,credits,topup,1.5,,\n"
        "c3,acc-1,2026-09-20T00:00:00Z,credits,free,0,,\n"
        "c4,acc-1,2026-09-20T00:00:00Z,credits,adjust,0,,\n"
        "c5,acc-1,2026-09-20T00:00:00Z,runs,grant,1.5,,\n"
        "c6,acc-1,2026-09-20T00:00:00Z,credits,grant,1,2026-09-20T00:00:00Z,\n"
        "c7,acc-1,2026-09-20T00:00:00Z,credits,adjust,1,2026-10-20T00:00:00Z,\n"
        "c8,acc-1,2026-09-20T00:00:00Z,credits,grant,1.0000001,,\n"
        "c9,acc/1,2026-09-20T00:00:00Z,credits,grant,1,,\n"
        "c10,acc-1,2026-09-20T00:00:00,credits,grant,1,,\n"
        "c11,acc-1,2026-09-20T00:00:00Z,Credits,grant,1,,\n"
        "c12,acc-1,2026-09-20T00:00:00Z,credits,grant,1,,\"a\nb\"\n"
        ",acc-1,2026-09-20T00:00:00Z,credits,grant,1,,\n"
        "c14,acc-1,2026-09-20T00:00:00Z,credits,grant,1,\n"
        "c15,acc-1,2026-09-20T00:00:00Z,credits,grant,1,,caf\xe9\n"
        "ok2,acc-1,2026-09-20T00:00:00Z,credits,adjust,-1,,\n"
        "c18,acc-1,2026-9-20T00:00:00Z,credits,grant,1,,\n"
        "c19,acc-1,2026-02-30T00:00:00Z,credits,grant,1,,\n");
    put(f, "b1", "deployments.csv",
        "event_id,account_id,ts,category,action,resource_id,hardware,units,replicas\n"
        "d1,acc-1,2026-09-20T00:00:00Z,model,deploy,m,,1,1\n"
        "d2,acc-1,2026-09-20T00:00:00Z,guardrail,finetune_start,g,cpu,1,1\n"
        "d3,acc-1,2026-09-20T00:00:00Z,model,deploy,m,gpu,1000,101\n"
        "d4,acc-1,2026-09-20T00:00:00Z,model,scale,m,gpu,0,\n"
        "d5,acc-1,2026-09-20T00:00:00Z,agent,deploy,ag,,,\n"
        "d6,acc-1,2026-09-20T00:00:00Z,model,undeploy,m,,,\n"
        "d7,acc-1,2026-09-20T00:00:00Z,model,deploy,m,gpu,1000,100\n");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded, 2 + 3);
    assert_int_equal(f->st.quarantined, 15 + 4);
    assert_int_equal(sqlite3_prepare_v2(f->l->db,
        "SELECT line || ' ' || reason FROM rejects WHERE file='credits.csv' ORDER BY line",
        -1, &st, NULL), SQLITE_OK);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), expected[i]);
    }
    sqlite3_finalize(st);
    assert_string_equal(q_text(f, "SELECT group_concat(line || ' ' || reason, ' / ') FROM"
                                  " (SELECT * FROM rejects WHERE file='deployments.csv' ORDER BY line)"),
                        "2 bad_value: hardware is required for a charged deploy, scale or finetune_start / "
                        "3 bad_value: action finetune_start/finetune_end only for category model / "
                        "4 bad_value: replicas times units exceeds 100000 / "
                        "5 bad_value: units out of bounds");
}

/* Every input row is exactly one of loaded, duplicate, quarantined. */
static void test_ingest_every_row_accounted(void **state)
{
    struct fx *f = *state;
    put_good(f, "b1");
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    put(f, "b2", "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n"      /* duplicate */
        "r2,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n"      /* conflict */
        "r4,acc-1,2026-09-20T10:00:00Z,agent,ag-1,Support,,ok\n"      /* loaded */
        "r5,acc-1,2026-09-20T10:00:00Z,robot,ag-1,Support,,ok\n");    /* bad_value */
    assert_int_equal(ingest(f, "b2"), TLY_QUARANTINED);
    assert_int_equal(f->st.rows_loaded + f->st.duplicates + f->st.quarantined, 9 + 4);
    assert_int_equal(f->st.duplicates, 1);
    assert_int_equal(f->st.quarantined, 2);
    assert_run_day_sums_runs(f);
}

/*
 * semantics §9.3 also for a file rejected from a line on: its one rejects
 * entry stands for every data row it kept out, and the counts say so.
 */
static void test_ingest_rows_of_a_rejected_file_accounted(void **state)
{
    struct fx *f = *state;
    put(f, "b1", "runs.csv",
        "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n"
        "r1,acc-1,2026-09-20T10:00:00Z,agent,ag-1,,,ok\n"
        "r2,acc-1,2026-09-20T11:00:00Z,agent,ag-1,x\"y,,ok\n"         /* quote error: kept out */
        "r3,acc-1,2026-09-20T12:00:00Z,agent,ag-1,,,ok\n"              /* kept out */
        "r4,acc-1,2026-09-20T13:00:00Z,agent,ag-1,,,ok\n");            /* kept out */
    put(f, "b1", "credits.csv",                                        /* no type column */
        "txn_id,account_id,ts,pool,amount\n"
        "c1,acc-1,2026-09-20T10:00:00Z,credits,5\n"
        "c2,acc-1,2026-09-20T10:00:00Z,credits,5\n");
    put(f, "b1", "deployments.csv", "event_id,account_id\n");         /* header only */
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 3);
    assert_int_equal(f->st.rows_loaded, 1);
    assert_int_equal(f->st.duplicates, 0);
    assert_int_equal(f->st.quarantined, 3 + 2 + 1);   /* the empty file's entry still counts */
    assert_int_equal(q_int(f, "SELECT quarantined FROM bundles WHERE name = 'b1'"), 6);
}

/* --rejects: this ingest's rejects plus the earlier ones of bundles offered again */
static void test_ingest_rejects_csv(void **state)
{
    struct fx *f = *state;
    char out[200], text[1024];
    FILE *in;
    size_t n;
    int64_t mark;
    put(f, "b1", "runs.csv",
        "event_id,account_id,ts,kind,resource_id\n=r1,acc-1,2026-09-20T10:00:00Z,agent,a\n");
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(tly_rejects_mark(f->l, &mark), 0);
    assert_int_equal(mark, 1);
    tly_ingest_stats_release(&f->st);
    memset(&f->st, 0, sizeof f->st);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);        /* already ingested */
    snprintf(out, sizeof out, "%s/rejects.csv", f->t.dir);
    assert_int_equal(tly_rejects_write_ingest(f->l, mark, &f->st, out), 0);
    in = fopen(out, "r");
    n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    assert_string_equal(text,
        "bundle,file,line,reason,raw\n"
        "b1,runs.csv,2,bad_value: event_id does not start with a letter or digit,"
        "\"'=r1,acc-1,2026-09-20T10:00:00Z,agent,a\"\n");   /* formula-guarded, quoted */
    assert_int_equal(tly_rejects_write(f->l, mark, out), 0);     /* nothing new */
    in = fopen(out, "r");
    n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    assert_string_equal(text, "bundle,file,line,reason,raw\n");
}

static void test_ingest_unreadable_bundle(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest(f, "does-not-exist"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_rejected, 1);
    assert_string_equal(q_text(f, "SELECT bundle FROM rejects"), "does-not-exist");
    assert_int_equal(q_int(f, "SELECT count(*) FROM bundles"), 0);
}

/* A size bound of the bundle: more rows in a file than max_rows_per_file */
static void test_ingest_max_rows_per_file(void **state)
{
    struct fx *f = *state;
    f->s.max_rows_per_file = 2;
    put(f, "b1", "runs.csv", runs_csv);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_rejected, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 0);
    assert_string_equal(q_text(f, "SELECT reason FROM rejects"),
                        "too_large: 'runs.csv' has more than 2 rows");
}

/*
 * A too_large refusal is kept by content and bounds: sent again under the
 * same bounds the bundle is already ingested (no second reject row); once
 * an admin raises the bound it loads, and then it is already ingested
 * whatever the bounds.
 */
static void test_ingest_too_large_retried_under_new_bounds(void **state)
{
    struct fx *f = *state;

    f->s.max_rows_per_file = 2;
    put(f, "b1", "runs.csv", runs_csv);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_rejected, 1);
    assert_int_equal(ingest(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(f->st.bundles_already_rejected, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 1);

    f->s.max_rows_per_file = 1000;
    assert_int_equal(ingest(f, "b1"), TLY_OK);
    assert_int_equal(f->st.bundles_loaded, 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 3);
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 1);     /* history kept */

    f->s.max_rows_per_file = 2;
    assert_int_equal(ingest(f, "b1"), TLY_OK);                          /* loaded: final */
    assert_int_equal(f->st.bundles_already, 2);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 3);
}

/*
 * Fault injection (style.md §14): failing the Nth allocation, for N = 1, 2,
 * ... until the ingest of 'bundle' gets through, gives a clean
 * TLY_ERR_NOMEM each time, with nothing half-loaded and both runs indexes
 * in place.  Returns the status of the ingest that got through.
 */
static int ingest_through_every_failure(struct fx *f, const char *bundle)
{
    int rc = -1;
    for (long n = 1; n < 100000; n++) {
        tly_alloc_fail_at(n);
        rc = ingest(f, bundle);
        tly_alloc_fail_at(0);
        if (rc != TLY_ERR_NOMEM)
            break;
        assert_int_equal(q_int(f, "SELECT count(*) FROM bundles"), 0);
        assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 0);
        assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 0);
        assert_runs_indexes(f);
    }
    return rc;
}

static void test_ingest_out_of_memory_is_clean(void **state)
{
    struct fx *f = *state;
    put_good(f, "b1");
    assert_int_equal(ingest_through_every_failure(f, "b1"), TLY_OK);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 3);
    assert_int_equal(q_int(f, "SELECT count(*) FROM bundles"), 1);
}

/* the bulk pass and its reload (ingest.c load_row_by_row) fail as cleanly */
static void test_ingest_bulk_reload_out_of_memory_is_clean(void **state)
{
    struct fx *f = *state;
    put_bulk_duplicates(f, "b1");
    assert_int_equal(ingest_through_every_failure(f, "b1"), TLY_QUARANTINED);
    assert_int_equal(q_int(f, "SELECT count(*) FROM runs"), 3);
    assert_int_equal(q_int(f, "SELECT count(*) FROM rejects"), 2);
    assert_run_day_sums_runs(f);
}

/* ledger.h: run keys are stored in ledgers, so their values never change */
static void test_ingest_run_key_is_fixed(void **state)
{
    struct fx *f = *state;
    assert_true(tly_ledger_run_key("acc-1", 5, "r1", 2) == -5777049797921921772LL);
    assert_true(q_int(f, "SELECT tally_run_key('acc-1', 'r1')") == -5777049797921921772LL);
}

static void test_ingest_options_sorted(void **state)
{
    (void)state;
    assert_int_equal(tly_opts_check_table(tly_ingest_options()), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_loads_and_normalises, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_duplicate_and_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_load_with_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_load_builds_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_reload_sizes_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_run_key_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_run_key_is_fixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_keys_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_runs_held_across_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_new_run_ids_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_new_run_ids_slices_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_many_row_inserts_keep_no_statement_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_night_runs_in_time_index_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_night_hold_flushed_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bulk_reload_out_of_memory_is_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_late_runs_summed_per_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_run_day_rollback_and_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_accounts_latest_updated_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_twice_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_manifest_ok_sets_period_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_manifest_mismatch_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_two_manifests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_no_known_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_missing_column_rejects_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_quote_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_quote_error_in_first_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_row_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_every_row_accounted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_rows_of_a_rejected_file_accounted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_rejects_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_unreadable_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_max_rows_per_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_too_large_retried_under_new_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_out_of_memory_is_clean, setup, teardown),
        cmocka_unit_test(test_ingest_options_sorted),
    };
    if (count_statement_journals())
        return 1;
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
