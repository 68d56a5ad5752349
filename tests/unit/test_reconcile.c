/*
 * test_reconcile.c — the engine against hand-computed figures
 * (spec semantics.md §2–§6, §8, §10).  Each test writes events straight into
 * a fresh ledger, reconciles at an as-of and reads the result tables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "error.h"
#include "ledger.h"
#include "money.h"
#include "reconcile.h"
#include "timeutil.h"
#include "wallet.h"

static char dbpath[64];

static struct tly_ledger *fresh(void)
{
    struct tly_ledger *l;
    snprintf(dbpath, sizeof dbpath, "/tmp/tally-test-%d.db", (int)getpid());
    unlink(dbpath);
    assert_int_equal(tly_ledger_open(dbpath, 0, &l), TLY_OK);
    assert_int_equal(tly_ledger_exec(l, "INSERT INTO bundles(sha256, name, status) VALUES('x', 'b', 'loaded');"
                                        "INSERT INTO files(bundle_id, path) VALUES(1, 'f.csv');"), TLY_OK);
    return l;
}

static void done(struct tly_ledger *l)
{
    char p[80];
    tly_ledger_close(l);
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
}

static int64_t ts(const char *s)
{
    int64_t t;
    const char *why;
    assert_int_equal(tly_parse_ts(s, strlen(s), &t, &why), 0);
    return t;
}

static void sql(struct tly_ledger *l, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_int_equal(tly_ledger_exec(l, buf), TLY_OK);
}

static void account(struct tly_ledger *l, const char *id, const char *edition, const char *anchor,
                    const char *negative_limit)
{
    int64_t day;
    const char *why;
    assert_int_equal(tly_parse_date(anchor, strlen(anchor), &day, &why), 0);
    sql(l, "INSERT INTO accounts VALUES('%s', 'Name', '%s', 'a@b.example', %lld, %s, 0, 0, '', 1, 2)",
        id, edition, (long long)day, negative_limit);
}

static void credit(struct tly_ledger *l, const char *id, const char *txn, const char *when,
                   const char *pool, const char *type, int64_t micro, const char *expires)
{
    char exp[32] = "NULL";
    if (expires)
        snprintf(exp, sizeof exp, "%lld", (long long)ts(expires));
    sql(l, "INSERT INTO credits VALUES('%s', '%s', %lld, '%s', '%s', %lld, %s, NULL, 1, 2)", id, txn,
        (long long)ts(when), pool, type, (long long)micro, exp);
}

static void dep(struct tly_ledger *l, const char *id, const char *ev, const char *when,
                const char *category, const char *action, const char *resource, const char *hw)
{
    char hwq[64] = "NULL";
    if (hw)
        snprintf(hwq, sizeof hwq, "'%s'", hw);
    sql(l, "INSERT INTO deployments(account_id, event_id, ts, category, action, resource_id,"
           " deployment_id, hardware, file_id, line) VALUES('%s', '%s', %lld, '%s', '%s', '%s', '%s', %s, 1, 2)",
        id, ev, (long long)ts(when), category, action, resource, resource, hwq);
}

static void run_event(struct tly_ledger *l, const char *id, const char *ev, const char *when,
                      const char *kind, const char *resource)
{
    sql(l, "INSERT INTO runs VALUES('%s', '%s', %lld, '%s', '%s', NULL, NULL, 'ok', 1, 2)", id, ev,
        (long long)ts(when), kind, resource);
    /* what ingest keeps beside every run it loads (rundays.h), each run its own bundle */
    sql(l, "INSERT INTO bundles(sha256, name, status) VALUES('%s', 'b', 'loaded')", ev);
    sql(l, "INSERT INTO run_day VALUES('%s', %lld, '%s', '%s', 1, %lld) ON CONFLICT DO UPDATE"
        " SET runs = runs + 1, first_ts = min(first_ts, excluded.first_ts)", id,
        (long long)tly_day_of(ts(when)), kind, resource, (long long)ts(when));
    sql(l, "INSERT INTO late_run_day SELECT account_id, (SELECT MAX(id) FROM bundles), %lld, '%s', '%s',"
        " 1, %lld FROM closes WHERE account_id = '%s' AND %lld < closed_end", (long long)tly_day_of(ts(when)),
        kind, resource, (long long)ts(when), id, (long long)ts(when));
}

static void rate(struct tly_ledger *l, const char *hw, const char *category, int64_t micro_per_hour)
{
    sql(l, "INSERT INTO rates(hardware, category, description, vcpu, memory_gb, credits_per_hour, effective_from, effective_to, line) VALUES('%s', '%s', NULL, NULL, NULL, %lld, %lld, NULL, 2)", hw, category,
        (long long)micro_per_hour, (long long)ts("2020-01-01T00:00:00Z"));
}

/* Returns the quiet days applied from run_day (none when every_run). */
static long reconcile_mode(struct tly_ledger *l, const char *as_of, int every_run)
{
    struct tly_reconcile_opts o = { .as_of = ts(as_of), .grace_seconds = 48 * 3600,
                                    .finetune_min = 25 * TLY_MICRO, .close_cycles = 1,
                                    .every_run = every_run };
    struct tly_reconcile_stats st;
    assert_int_equal(tly_ledger_begin(l), TLY_OK);
    assert_int_equal(tly_reconcile(l, &o, &st), TLY_OK);
    assert_int_equal(tly_ledger_commit(l), TLY_OK);
    return st.quiet_days;
}

static void reconcile(struct tly_ledger *l, const char *as_of)
{
    reconcile_mode(l, as_of, 0);
}

/* The first column of the first row of 'query', as an integer (-1 when no row). */
static int64_t one(struct tly_ledger *l, const char *fmt, ...)
{
    char buf[1024];
    sqlite3_stmt *st;
    int64_t v = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_int_equal(tly_ledger_prepare(l, buf, &st), TLY_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---------------------------------------------------------------- §3 */

static void test_wallet_draws_earliest_expiry_first(void **state)
{
    struct tly_wallet w;
    (void)state;
    tly_wallet_init(&w);
    assert_int_equal(tly_wallet_grant(&w, "a", "grant", 1, 10, 2), 0);
    assert_int_equal(tly_wallet_grant(&w, "b", "grant", 1, TLY_NEVER, 5), 0);
    assert_int_equal(tly_wallet_grant(&w, "c", "free", 2, 5, 2), 0);
    tly_wallet_draw(&w, 3);                      /* c (expires 5) then a (expires 10) */
    assert_string_equal(w.lots[0].txn_id, "c");
    assert_int_equal(w.lots[0].remaining, 0);
    assert_int_equal(w.lots[1].remaining, 1);
    assert_int_equal(w.lots[2].remaining, 5);
    assert_int_equal(tly_wallet_expire(&w, 10), 1);
    assert_int_equal(tly_wallet_balance(&w), 5);
    tly_wallet_release(&w);
}

static void test_wallet_debt_paid_by_next_grant(void **state)
{
    struct tly_wallet w;
    (void)state;
    tly_wallet_init(&w);
    tly_wallet_draw(&w, 5);
    assert_int_equal(tly_wallet_balance(&w), -5);
    assert_int_equal(tly_wallet_grant(&w, "g", "grant", 1, TLY_NEVER, 8), 0);
    assert_int_equal(w.debt, 0);
    assert_int_equal(tly_wallet_balance(&w), 3);
    tly_wallet_release(&w);
}

/* inputs.md "Decimals": a sum that would wrap is flagged and left out, never wrapped */
static void test_wallet_overflow_flagged_not_wrapped(void **state)
{
    struct tly_wallet w;
    (void)state;
    tly_wallet_init(&w);
    assert_int_equal(tly_wallet_grant(&w, "a", "topup", 1, TLY_NEVER, INT64_MAX - 10), 0);
    assert_int_equal(tly_wallet_grant(&w, "b", "topup", 2, TLY_NEVER, 11), 0);
    assert_int_equal(w.overflow, 1);
    assert_true(tly_wallet_balance(&w) == INT64_MAX - 10);
    tly_wallet_release(&w);
    tly_wallet_init(&w);
    tly_wallet_draw(&w, INT64_MAX);
    tly_wallet_draw(&w, 1);
    assert_int_equal(w.overflow, 1);
    assert_true(w.debt == INT64_MAX);
    tly_wallet_release(&w);
}

/* ---------------------------------------------------------------- §4 */

static void test_cycle_anchor_31_through_february(void **state)
{
    char buf[TLY_DATE_LEN];
    int64_t d = tly_days_from_civil(2026, 1, 31);
    static const char *const expect[] = { "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31" };
    (void)state;
    for (int i = 0; i < 4; i++) {
        d = tly_cycle_next(31, d);
        tly_format_date(buf, d);
        assert_string_equal(buf, expect[i]);
    }
    tly_format_date(buf, tly_cycle_containing(31, tly_days_from_civil(2026, 3, 15)));
    assert_string_equal(buf, "2026-02-28");
    tly_format_date(buf, tly_cycle_containing(31, tly_days_from_civil(2024, 3, 1)));
    assert_string_equal(buf, "2024-02-29");
    tly_format_date(buf, tly_cycle_containing(31, tly_days_from_civil(2026, 1, 30)));
    assert_string_equal(buf, "2025-12-31");  /* cycles before the anchor exist too */
}

/*
 * The as-of bounds (timeutil.h): with every anchor, the cycle holding the
 * earliest as-of's last second starts in year 0000 or later, and the one
 * holding the latest's ends by 9999-12-31; both are four-digit dates.
 */
static void test_cycle_dates_of_the_as_of_bounds_have_four_digit_years(void **state)
{
    char first[TLY_DATE_LEN], last[TLY_DATE_LEN];

    (void)state;
    assert_true(TLY_EARLIEST_AS_OF == tly_days_from_civil(1, 1, 1) * TLY_DAY_SECONDS);
    assert_true(TLY_LATEST_AS_OF == tly_days_from_civil(9999, 12, 1) * TLY_DAY_SECONDS);
    for (unsigned anchor = 1; anchor <= 31; anchor++) {
        int64_t start = tly_cycle_containing(anchor, tly_day_of(TLY_EARLIEST_AS_OF - 1));
        int64_t end = tly_cycle_next(anchor, tly_cycle_containing(anchor, tly_day_of(TLY_LATEST_AS_OF - 1)));
        tly_format_date(first, start);
        tly_format_date(last, end);
        assert_int_equal(strlen(first), 10);
        assert_true(strcmp(first, "0000-12-01") >= 0);
        assert_int_equal(strlen(last), 10);
        assert_true(strcmp(last, "9999-12-31") <= 0);
    }
}

/*
 * Cycles before the first closed one are cut by the anchor that cut it, read
 * back from its dates (write_empty_early_cycles): every anchor day, every
 * cycle of four years with a leap February, gives its own anchor back.
 */
static void test_cycle_anchor_read_back_from_its_dates(void **state)
{
    (void)state;
    for (unsigned anchor = 1; anchor <= 31; anchor++) {
        int64_t day = tly_cycle_containing(anchor, tly_days_from_civil(2023, 1, 1));
        while (day < tly_days_from_civil(2027, 1, 1)) {
            int64_t next = tly_cycle_next(anchor, day);
            assert_int_equal(tly_cycle_anchor_of(day, next), anchor);
            day = next;
        }
    }
}

/* ------------------------------------------------------------ §6 t* */

/*
 * 1 credit, a model at 3.6 credits/h (1,000 µ/s) from 00:00, negative_limit 0:
 * at 1,000 s the balance is exactly 0 (not below); at 1,001 s it is −0.001,
 * so t* = 00:16:41 and the charge is rhe(3,600,000 × 1,001 / 3,600) = 1.001.
 * The undeploy logged at 01:00 is evidence of an overrun of 2,599 s = 2.599.
 */
static void test_negative_limit_stop_and_overrun(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 3600000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "deploy", "m1", "gpu.x");
    dep(l, "a1", "e2", "2026-10-02T01:00:00Z", "model", "undeploy", "m1", NULL);
    /*
     * The e-mail names the resource as its tabs do, from any applied event
     * so far: here another deployment's, deployed and undeployed in one
     * second (nothing charged); e01 undeploys it again, ignored, and its
     * name counts for nothing.
     */
    dep(l, "a1", "e0", "2026-10-01T12:00:00Z", "model", "deploy", "m1", "gpu.x");
    dep(l, "a1", "e00", "2026-10-01T12:00:00Z", "model", "undeploy", "m1", NULL);
    dep(l, "a1", "e01", "2026-10-01T13:00:00Z", "model", "undeploy", "m1", NULL);
    sql(l, "UPDATE deployments SET deployment_id = 'm1-old' WHERE event_id IN ('e0', 'e00', 'e01')");
    sql(l, "UPDATE deployments SET resource_name = 'Llama' WHERE event_id = 'e0'");
    sql(l, "UPDATE deployments SET resource_name = 'Ignored' WHERE event_id = 'e01'");
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_int_equal(one(l, "SELECT detail LIKE '%%\"name\":\"Llama\"%%' FROM items"
                            " WHERE item = 'deployments_stopped'"), 1);
    assert_int_equal(one(l, "SELECT stop_at FROM actions WHERE account_id = 'a1'"), ts("2026-10-02T00:16:41Z"));
    assert_int_equal(one(l, "SELECT used_models FROM statements WHERE pool = 'credits'"), 1001000);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits'"), -1000);
    assert_int_equal(one(l, "SELECT credits FROM discrepancies WHERE kind = 'overrun'"), 2599000);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'odd_lifecycle'"), 1);   /* e01 */
    assert_int_equal(one(l, "SELECT COUNT(*) FROM items WHERE item = 'deployments_stopped'"), 1);
    assert_int_equal(one(l, "SELECT ts FROM items WHERE item = 'negative_balance'"), ts("2026-10-02T00:16:41Z"));
    done(l);
}

/* A deploy after t* while still below the limit is stopped at once (§6). */
static void test_restart_below_limit_stopped_at_once(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 3600000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "deploy", "m1", "gpu.x");
    dep(l, "a1", "e2", "2026-10-02T05:00:00Z", "model", "deploy", "m1", "gpu.x");
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM actions"), 2);
    assert_int_equal(one(l, "SELECT MAX(stop_at) FROM actions"), ts("2026-10-02T05:00:00Z"));
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'deploy_while_disabled'"), 1);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'overrun'"), 0);
    assert_int_equal(one(l, "SELECT used_models FROM statements WHERE pool = 'credits'"), 1001000);
    done(l);
}

/* ------------------------------------------------------ §2 odd lifecycle */

static void test_odd_lifecycle_rows_and_scale_by_deploy(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 1000000);          /* 1 credit/h */
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", 100 * TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "undeploy", "m1", NULL);   /* odd */
    dep(l, "a1", "e2", "2026-10-02T01:00:00Z", "model", "scale", "m1", NULL);      /* odd */
    dep(l, "a1", "e3", "2026-10-02T02:00:00Z", "model", "deploy", "m1", "gpu.x");
    sql(l, "INSERT INTO deployments(account_id, event_id, ts, category, action, resource_id,"
           " deployment_id, hardware, replicas, file_id, line) VALUES('a1', 'e4', %lld, 'model',"
           " 'deploy', 'm1', 'm1', 'gpu.x', 3, 1, 2)", (long long)ts("2026-10-02T03:00:00Z"));
    dep(l, "a1", "e5", "2026-10-02T04:00:00Z", "model", "delete", "m1", NULL);
    dep(l, "a1", "e6", "2026-10-02T05:00:00Z", "model", "deploy", "m1", "gpu.x");  /* after delete */
    reconcile(l, "2026-10-03T00:00:00Z");
    /* 1 h at 1/h, then 1 h at 3 replicas: 4 credits */
    assert_int_equal(one(l, "SELECT used_models FROM statements WHERE pool = 'credits'"), 4 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'odd_lifecycle'"), 4);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM deployment_state WHERE status = 'Deleted'"), 1);
    done(l);
}

static void dep_sized(struct tly_ledger *l, const char *ev, const char *when, const char *action,
                      const char *hw, int64_t units, int64_t replicas)
{
    sql(l, "INSERT INTO deployments(account_id, event_id, ts, category, action, resource_id,"
           " deployment_id, hardware, units, replicas, file_id, line) VALUES('a1', '%s', %lld, 'model',"
           " '%s', 'm1', 'm1', %s%s%s, %lld, %lld, 1, 2)", ev, (long long)ts(when), action,
        hw ? "'" : "", hw ? hw : "NULL", hw ? "'" : "", (long long)units, (long long)replicas);
}

/*
 * §1, §2: the largest rate inputs.md allows (10,000 credits/h x units 100 x
 * replicas 1,000 = 10^9 credits/h) is charged exactly, though r x s passes
 * 64 bits within the hour: 3 h cost 3 x 10^9 credits.  A scale that
 * combines in-bound units and replicas of different rows past the
 * units x replicas bound is ignored and listed (pipeline/README.md).
 */
static void test_largest_rate_charged_exactly(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.max", "model", 10000 * TLY_MICRO);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "topup", 4000000000LL * TLY_MICRO, NULL);
    dep_sized(l, "e1", "2026-10-02T00:00:00Z", "deploy", "gpu.max", 100, 1000);
    dep_sized(l, "e2", "2026-10-02T03:00:00Z", "undeploy", NULL, 0, 0);
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_true(one(l, "SELECT used_models FROM statements WHERE pool = 'credits'") == 3000000000LL * TLY_MICRO);
    done(l);
}

static void test_scale_past_units_bound_ignored(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.max", "model", 10000 * TLY_MICRO);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "topup", 1000 * TLY_MICRO, NULL);
    dep_sized(l, "e1", "2026-10-02T00:00:00Z", "deploy", "gpu.max", 1, 100000);
    dep_sized(l, "e2", "2026-10-02T01:00:00Z", "scale", NULL, 100000, 0);
    reconcile(l, "2026-10-03T00:00:00Z");
    /* 10^9 credits/h: the first second uses 277,777.777778 and t* is 00:00:01 */
    assert_int_equal(one(l, "SELECT used_models FROM statements WHERE pool = 'credits'"),
                     277777777778LL);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'odd_lifecycle'"
                            " AND detail = 'scale to 100000 units x 100000 replicas, over 100000: ignored'"), 1);
    /* ignored, so it is no evidence that the stopped deployment ran on */
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'overrun'"), 0);
    done(l);
}

/*
 * §10 "Statements cover every cycle from the one holding the account's
 * first event": a late event before the first closed cycle adds the cycles
 * from its own to the first closed one, closed and all zero (reconcile.c
 * write_empty_early_cycles), cut by the anchor that cut the first closed
 * cycle; an anchor changed since adds nothing by itself.
 */
static void test_late_event_before_first_cycle_adds_its_statement(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    credit(l, "a1", "g1", "2026-10-05T00:00:00Z", "credits", "grant", 10 * TLY_MICRO, NULL);
    reconcile(l, "2026-11-10T00:00:00Z");                       /* October closes */
    assert_int_equal(one(l, "SELECT COUNT(*) FROM statements WHERE state = 'closed'"), 2);
    /* the anchor moves to the 15th: October stays as it closed, nothing before it */
    sql(l, "UPDATE accounts SET cycle_anchor = %lld", (long long)tly_day_of(ts("2026-10-15T00:00:00Z")));
    reconcile(l, "2026-11-11T00:00:00Z");
    assert_int_equal(one(l, "SELECT MIN(cycle_start) FROM statements"), tly_day_of(ts("2026-10-01T00:00:00Z")));
    /*
     * a top-up dated Aug 20 arrives: the cycles from the one holding it are
     * listed, empty, cut as October was (anchor day 1: Aug 1 and Sep 1), not
     * by the new anchor (§10: it shapes only the cycles after the last closed)
     */
    credit(l, "a1", "t1", "2026-08-20T00:00:00Z", "credits", "topup", 5 * TLY_MICRO, NULL);
    reconcile(l, "2026-11-12T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM statements WHERE cycle_start = %lld AND cycle_end = %lld"
                            " AND state = 'closed' AND frozen = 1 AND opening = 0 AND granted = 0 AND closing = 0",
                         (long long)tly_day_of(ts("2026-08-01T00:00:00Z")),
                         (long long)tly_day_of(ts("2026-09-01T00:00:00Z"))), 2);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM statements WHERE cycle_start = %lld AND cycle_end = %lld"
                            " AND state = 'closed' AND frozen = 1 AND opening = 0 AND granted = 0 AND closing = 0",
                         (long long)tly_day_of(ts("2026-09-01T00:00:00Z")),
                         (long long)tly_day_of(ts("2026-10-01T00:00:00Z"))), 2);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM statements WHERE cycle_start < %lld",
                         (long long)tly_day_of(ts("2026-08-01T00:00:00Z"))), 0);
    done(l);
}

/*
 * inputs.md "rates.csv": unpriced time is charged by "the first run after
 * the rate card covers it ... as a late charge when that cycle has
 * closed" (§8).  gr-1 ran Sep 29 00:00-04:00 on unpriced cpu.late; gr-2
 * ran Sep 28 00:00-01:00 on cpu.std at 1/h.  September closes at Oct 3.
 * A card pricing cpu.late at 0.25/h and raising cpu.std to 2/h charges
 * 4 h x 0.25 = 1 credit late into October, once, and leaves the priced
 * day of gr-2 as it closed.
 */
static void test_unpriced_closed_time_charged_late_once_priced(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "cpu.std", "guardrail", 1000000);
    credit(l, "a1", "g1", "2026-09-01T00:00:00Z", "credits", "topup", 10 * TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-09-28T00:00:00Z", "guardrail", "deploy", "gr-2", "cpu.std");
    dep(l, "a1", "e2", "2026-09-28T01:00:00Z", "guardrail", "undeploy", "gr-2", NULL);
    dep(l, "a1", "e3", "2026-09-29T00:00:00Z", "guardrail", "deploy", "gr-1", "cpu.late");
    dep(l, "a1", "e4", "2026-09-29T04:00:00Z", "guardrail", "undeploy", "gr-1", NULL);
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits' AND state = 'closed'"),
                     9 * TLY_MICRO);
    /* the new card */
    sql(l, "UPDATE rates SET credits_per_hour = 2000000 WHERE hardware = 'cpu.std'");
    rate(l, "cpu.late", "guardrail", 250000);
    reconcile(l, "2026-10-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT late FROM statements WHERE pool = 'credits' AND state = 'open'"), TLY_MICRO);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits' AND state = 'open'"),
                     8 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'late_charge' AND credits = %lld"
                            " AND deployment_id = 'gr-1'", (long long)TLY_MICRO), 1);
    /* October closes with it; November does not charge it again */
    reconcile(l, "2026-11-03T00:00:00Z");
    reconcile(l, "2026-11-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT late FROM statements WHERE pool = 'credits' AND cycle_start = %lld",
                         (long long)tly_day_of(ts("2026-10-01T00:00:00Z"))), TLY_MICRO);
    assert_int_equal(one(l, "SELECT late FROM statements WHERE pool = 'credits' AND cycle_start = %lld",
                         (long long)tly_day_of(ts("2026-11-01T00:00:00Z"))), 0);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits' AND cycle_start = %lld",
                         (long long)tly_day_of(ts("2026-11-01T00:00:00Z"))), 8 * TLY_MICRO);
    done(l);
}

/* §10 "Not chargeable": the row names the hardware that was not chargeable, not the last one */
static void test_not_chargeable_names_its_hardware(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.g", "guardrail", 1000000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", 100 * TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "deploy", "m1", "gpu.g");
    dep(l, "a1", "e2", "2026-10-02T02:00:00Z", "model", "scale", "m1", "gpu.none");
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'not_chargeable' AND credits ="
                            " 2000000 AND detail = 'hardware ''gpu.g'' is priced for category ''guardrail'''"), 1);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'unpriced'"), 1);
    assert_int_equal(one(l, "SELECT used FROM statements WHERE pool = 'credits'"), 0);
    done(l);
}

/* ------------------------------------------------- §10 same-ts order */

/* credits apply before runs at one instant, so the run is not exhausted */
static void test_same_instant_credits_before_runs(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    credit(l, "a1", "r1", "2026-10-02T00:00:00Z", "runs", "free", 1 * TLY_MICRO, NULL);
    run_event(l, "a1", "x1", "2026-10-02T00:00:00Z", "agent", "ag");
    run_event(l, "a1", "x2", "2026-10-02T00:00:00Z", "agent", "ag");
    reconcile(l, "2026-10-03T00:00:00Z");
    assert_int_equal(one(l, "SELECT CAST(detail AS INTEGER) FROM discrepancies WHERE kind = 'run_while_exhausted'"), 1);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'runs'"), -1 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT ts FROM crossings WHERE pool = 'runs' AND threshold = 100"),
                     ts("2026-10-02T00:00:00Z"));
    done(l);
}

/*
 * A runnable that deployments.csv never names takes the name of its latest
 * named run before the as-of (ties in a second: the greatest event id),
 * found day by day from run_day.
 */
static void test_runnable_named_by_latest_run(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "agent", "deploy", "ag", NULL);
    run_event(l, "a1", "x1", "2026-10-02T01:00:00Z", "agent", "ag");
    run_event(l, "a1", "x0", "2026-10-03T01:00:00Z", "agent", "ag");
    run_event(l, "a1", "x2", "2026-10-03T01:00:00Z", "agent", "ag");
    run_event(l, "a1", "x3", "2026-10-03T02:00:00Z", "agent", "ag");          /* no name */
    run_event(l, "a1", "x4", "2026-10-05T01:00:00Z", "agent", "ag");          /* after the as-of */
    sql(l, "UPDATE runs SET resource_name = CASE event_id WHEN 'x1' THEN 'Old' WHEN 'x0' THEN 'Tie'"
           " WHEN 'x2' THEN 'New' WHEN 'x4' THEN 'Future' END");
    reconcile(l, "2026-10-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT name = 'New' FROM runnable_state WHERE resource_id = 'ag'"), 1);
    done(l);
}

/* ------------------------------------------------------- §3 expiry, §5 */

static void test_free_grant_expires_and_banner(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 1000000);
    credit(l, "a1", "f1", "2026-10-01T00:00:00Z", "credits", "free", 10 * TLY_MICRO, "2026-10-05T00:00:00Z");
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "deploy", "m1", "gpu.x");
    dep(l, "a1", "e2", "2026-10-02T04:00:00Z", "model", "undeploy", "m1", NULL);
    reconcile(l, "2026-10-06T00:00:00Z");
    assert_int_equal(one(l, "SELECT expired FROM statements WHERE pool = 'credits'"), 6 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits'"), 0);
    assert_int_equal(one(l, "SELECT banner_credits = 'free-expired' FROM account_state"), 1);
    done(l);
}

/* ------------------------------------------------------------ §8 late */

/*
 * October closes at as-of Nov 4 (Nov 1 + 48 h).  Then a model deploy for
 * Oct 31 20:00 arrives (1 credit/h, undeployed Nov 1 02:00) with a run for
 * Oct 15: 4 credits and 1 run are late charges of November; the 2 hours of
 * November are ordinary usage.  October's statement does not change.
 */
static void test_late_usage_posted_into_open_cycle(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 1000000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", 100 * TLY_MICRO, NULL);
    credit(l, "a1", "r1", "2026-10-01T00:00:00Z", "runs", "free", 10 * TLY_MICRO, NULL);
    run_event(l, "a1", "x1", "2026-10-10T00:00:00Z", "agent", "ag");
    reconcile(l, "2026-11-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT frozen FROM statements WHERE cycle_start = %lld AND pool = 'credits'",
                         (long long)tly_day_of(ts("2026-10-01T00:00:00Z"))), 1);
    dep(l, "a1", "e1", "2026-10-31T20:00:00Z", "model", "deploy", "m1", "gpu.x");
    dep(l, "a1", "e2", "2026-11-01T02:00:00Z", "model", "undeploy", "m1", NULL);
    run_event(l, "a1", "x2", "2026-10-15T00:00:00Z", "agent", "ag");
    reconcile(l, "2026-11-05T00:00:00Z");
    reconcile(l, "2026-11-05T00:00:00Z");        /* idempotent: not posted twice */
    assert_int_equal(one(l, "SELECT late FROM statements WHERE pool = 'credits' AND state = 'open'"), 4 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT used FROM statements WHERE pool = 'credits' AND state = 'open'"), 2 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT late FROM statements WHERE pool = 'runs' AND state = 'open'"), TLY_MICRO);
    assert_int_equal(one(l, "SELECT closing FROM statements WHERE pool = 'credits' AND state = 'open'"), 94 * TLY_MICRO);
    assert_int_equal(one(l, "SELECT used FROM statements WHERE pool = 'credits' AND state = 'closed'"), 0);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'late_charge'"), 2);
    done(l);
}

/*
 * A stop in October (closed at Nov 4), its overrun evidence (the undeploy)
 * logged on Nov 10: the overrun runs from t* to Nov 10 whether the data came
 * in two nights or one (incremental = batch, §9).  1 credit/h, 1 credit
 * granted: t* = Oct 2 01:00:01 (balance −0.000278 at the 3,601st second);
 * the overrun is metered per day from t* to Nov 10.
 */
static void overrun_case(struct tly_ledger *l)
{
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 1000000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T00:00:00Z", "model", "deploy", "m1", "gpu.x");
}

static void test_overrun_evidence_after_close_incremental_equals_batch(void **state)
{
    struct tly_ledger *l = fresh();
    int64_t inc_rows, inc_sum;
    (void)state;
    overrun_case(l);
    reconcile(l, "2026-11-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT stop_at FROM actions"), ts("2026-10-02T01:00:01Z"));
    dep(l, "a1", "e2", "2026-11-10T00:00:00Z", "model", "undeploy", "m1", NULL);
    reconcile(l, "2026-11-12T00:00:00Z");
    inc_rows = one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'overrun'");
    inc_sum = one(l, "SELECT SUM(credits) FROM discrepancies WHERE kind = 'overrun'");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM actions"), 1);
    done(l);

    l = fresh();
    overrun_case(l);
    dep(l, "a1", "e2", "2026-11-10T00:00:00Z", "model", "undeploy", "m1", NULL);
    reconcile(l, "2026-11-12T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'overrun'"), inc_rows);
    assert_int_equal(one(l, "SELECT SUM(credits) FROM discrepancies WHERE kind = 'overrun'"), inc_sum);
    /* Oct 2 … Nov 9: 39 dates; the first 82,799 s → 22.999722, then 38 whole days of 24 */
    assert_int_equal(inc_rows, 39);
    assert_int_equal(inc_sum, 22999722 + 38 * 24000000LL);
    done(l);
}

/*
 * Quiet days (simulate.c) against the replay run by run.  2 runs granted:
 * Oct 2 has 3 runs (the third exhausted: a mixed day, replayed), Oct 3 two
 * runs with the pool already exhausted (a quiet exhausted day), Oct 4 an
 * agent run and a tool run (not chargeable in GALE).  Both ways give the
 * same rows: exhausted 1 + 2 + 1, used 6 runs, closing -4.
 */
static void test_quiet_days_equal_replay(void **state)
{
    static const char *const checks[] = {
        "SELECT COUNT(*) FROM discrepancies WHERE kind = 'run_while_exhausted'",
        "SELECT SUM(CAST(detail AS INTEGER) * (ts %% 86400 + 1) * (ts / 86400 - 20725))"
        " FROM discrepancies WHERE kind = 'run_while_exhausted'",
        "SELECT SUM(runs * (day - 20725)) FROM usage_day WHERE category = 'agent'",
        "SELECT COUNT(*) FROM discrepancies WHERE kind = 'not_chargeable'",
        "SELECT used FROM statements WHERE pool = 'runs'",
        "SELECT closing FROM statements WHERE pool = 'runs'",
        "SELECT COUNT(*) FROM crossings WHERE pool = 'runs'",
    };
    int64_t got[2][sizeof checks / sizeof checks[0]];
    long quiet[2];

    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        struct tly_ledger *l = fresh();
        account(l, "a1", "gale", "2026-10-01", "0");
        credit(l, "a1", "r1", "2026-10-01T00:00:00Z", "runs", "grant", 2 * TLY_MICRO, NULL);
        run_event(l, "a1", "x1", "2026-10-02T10:00:00Z", "agent", "ag");
        run_event(l, "a1", "x2", "2026-10-02T11:00:00Z", "agent", "ag");
        run_event(l, "a1", "x3", "2026-10-02T12:00:00Z", "agent", "ag");
        run_event(l, "a1", "x4", "2026-10-03T15:00:00Z", "agent", "ag");
        run_event(l, "a1", "x5", "2026-10-03T09:00:00Z", "agent", "ag");
        run_event(l, "a1", "x6", "2026-10-04T08:00:00Z", "tool", "tl");
        run_event(l, "a1", "x7", "2026-10-04T07:00:00Z", "agent", "ag");
        quiet[mode] = reconcile_mode(l, "2026-10-05T00:00:00Z", mode);
        for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
            got[mode][i] = one(l, checks[i]);
        done(l);
    }
    assert_int_equal(quiet[0], 2);     /* Oct 3 (exhausted) and Oct 4 */
    assert_int_equal(quiet[1], 0);
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        assert_int_equal(got[0][i], got[1][i]);
    assert_int_equal(got[0][0], 3);
    /* Oct 2 (day 20728) 12:00 x1, Oct 3 09:00 x2, Oct 4 07:00 x1 */
    assert_int_equal(got[0][1], 1 * (43200 + 1) * 3 + 2 * (32400 + 1) * 4 + 1 * (25200 + 1) * 5);
    assert_int_equal(got[0][2], 3 * 3 + 2 * 4 + 1 * 5);
    assert_int_equal(got[0][3], 1);
    assert_int_equal(got[0][4], 6 * TLY_MICRO);
    assert_int_equal(got[0][5], -4 * TLY_MICRO);
    assert_int_equal(got[0][6], 6);
}

/*
 * Lazy days (simulate.c): a day is noted from run_day and its runs read
 * only when one must be applied.  Oct 2 is quiet.  Oct 3's first run is at
 * the instant of a credits grant, so the instant reads the noted day.  The
 * as-of falls inside Oct 4, whose run after it is no run of this as-of.
 * Both ways: 5 runs used, on Oct 2 (2), Oct 3 (2) and Oct 4 (1).
 */
static void test_lazy_day_read_at_an_instant_and_an_as_of_inside_a_day(void **state)
{
    int64_t used[2], weighted[2];
    long quiet[2];

    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        struct tly_ledger *l = fresh();
        account(l, "a1", "gale", "2026-10-01", "0");
        credit(l, "a1", "r1", "2026-10-01T00:00:00Z", "runs", "grant", 100 * TLY_MICRO, NULL);
        credit(l, "a1", "g1", "2026-10-03T10:00:00Z", "credits", "grant", 5 * TLY_MICRO, NULL);
        run_event(l, "a1", "x1", "2026-10-02T09:00:00Z", "agent", "ag");
        run_event(l, "a1", "x2", "2026-10-02T17:00:00Z", "agent", "ag");
        run_event(l, "a1", "x3", "2026-10-03T10:00:00Z", "agent", "ag");
        run_event(l, "a1", "x4", "2026-10-03T12:00:00Z", "agent", "ag");
        run_event(l, "a1", "x5", "2026-10-04T08:00:00Z", "agent", "ag");
        run_event(l, "a1", "x6", "2026-10-04T20:00:00Z", "agent", "ag");
        quiet[mode] = reconcile_mode(l, "2026-10-04T12:00:00Z", mode);
        used[mode] = one(l, "SELECT used FROM statements WHERE pool = 'runs'");
        weighted[mode] = one(l, "SELECT SUM(runs * (day - 20725)) FROM usage_day WHERE category = 'agent'");
        done(l);
    }
    assert_int_equal(quiet[0], 1);     /* Oct 2 */
    assert_int_equal(quiet[1], 0);
    for (int mode = 0; mode < 2; mode++) {
        assert_int_equal(used[mode], 5 * TLY_MICRO);
        assert_int_equal(weighted[mode], 2 * 3 + 2 * 4 + 1 * 5);
    }
}

/* Every usage_day row in one text, in a fixed order (the table's own is no order). */
static char *usage_rows(struct tly_ledger *l)
{
    sqlite3_stmt *st;
    char *text;
    assert_int_equal(tly_ledger_prepare(l, "SELECT group_concat(r, ';') FROM (SELECT day || ',' || category"
                                           " || ',' || resource_id || ',' || deployment_id || ',' || credits"
                                           " || ',' || seconds || ',' || runs || ',' || late || ',' || frozen"
                                           " AS r FROM usage_day ORDER BY r)", &st), TLY_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    text = strdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    sqlite3_finalize(st);
    assert_non_null(text);
    return text;
}

static void usage_case(struct tly_ledger *l)
{
    account(l, "a1", "gale", "2026-10-01", "0");
    rate(l, "gpu.x", "model", 1000000);
    credit(l, "a1", "g1", "2026-10-01T00:00:00Z", "credits", "grant", 1000 * TLY_MICRO, NULL);
    credit(l, "a1", "r1", "2026-10-01T00:00:00Z", "runs", "grant", 100 * TLY_MICRO, NULL);
    dep(l, "a1", "e1", "2026-10-02T06:00:00Z", "model", "deploy", "m1", "gpu.x");
    run_event(l, "a1", "x1", "2026-10-02T09:00:00Z", "agent", "ag");
    run_event(l, "a1", "x2", "2026-10-03T09:00:00Z", "agent", "ag");
}

/*
 * reconcile.c sync_usage: a night keeps the open rows that did not change
 * (same rowid), replaces the ones that did, adds the new day's, and ends
 * with the rows a batch run writes.  Oct 2–3 at the first as-of; one more
 * day; then a late run on Oct 2, which changes that day's agent row only.
 */
static void test_usage_rows_rewritten_by_difference(void **state)
{
    struct tly_ledger *l = fresh();
    char *incremental, *batch;
    int64_t hosting_oct2, agent_oct2, last;
    (void)state;
    usage_case(l);
    reconcile(l, "2026-10-04T00:00:00Z");
    hosting_oct2 = one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'model'");
    agent_oct2 = one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'agent'");
    run_event(l, "a1", "x3", "2026-10-04T09:00:00Z", "agent", "ag");
    reconcile(l, "2026-10-05T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM usage_day"), 6);   /* 3 days × (hosting, agent) */
    assert_int_equal(one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'model'"), hosting_oct2);
    assert_int_equal(one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'agent'"), agent_oct2);
    run_event(l, "a1", "x4", "2026-10-02T10:00:00Z", "agent", "ag");
    reconcile(l, "2026-10-05T00:00:00Z");
    assert_int_equal(one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'model'"), hosting_oct2);
    assert_true(one(l, "SELECT rowid FROM usage_day WHERE day = 20728 AND category = 'agent'") != agent_oct2);
    assert_int_equal(one(l, "SELECT runs FROM usage_day WHERE day = 20728 AND category = 'agent'"), 2);
    last = one(l, "SELECT MAX(rowid) FROM usage_day");
    reconcile(l, "2026-10-05T00:00:00Z");                              /* nothing new: nothing written */
    assert_int_equal(one(l, "SELECT MAX(rowid) FROM usage_day"), last);
    assert_int_equal(one(l, "SELECT COUNT(*) FROM usage_day"), 6);
    incremental = usage_rows(l);
    done(l);

    l = fresh();
    usage_case(l);
    run_event(l, "a1", "x3", "2026-10-04T09:00:00Z", "agent", "ag");
    run_event(l, "a1", "x4", "2026-10-02T10:00:00Z", "agent", "ag");
    reconcile(l, "2026-10-05T00:00:00Z");
    batch = usage_rows(l);
    done(l);
    assert_string_equal(incremental, batch);
    /* 18 h of Oct 2 and two whole days at 1 credit/h */
    assert_non_null(strstr(batch, "20728,model,m1,m1,18000000,64800,0,0,0"));
    free(incremental);
    free(batch);
}

/*
 * An account's open rows go with its accounts row (a repair by hand, say):
 * sync_usage never sees the account again, and tly_reconcile clears them,
 * as the delete of every open row before each run did.
 */
static void test_open_usage_of_an_account_gone_is_cleared(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    usage_case(l);
    reconcile(l, "2026-10-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM usage_day WHERE frozen = 0"), 4);
    sql(l, "DELETE FROM accounts");
    reconcile(l, "2026-10-04T00:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM usage_day"), 0);
    done(l);
}

/*
 * §10 "Unknown accounts": held and listed once until the row arrives.  The
 * count takes whole days from run_day and the as-of's own day up to it.
 */
static void test_unknown_account_listed_once(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    run_event(l, "ghost", "x1", "2026-10-10T00:00:00Z", "agent", "ag");
    run_event(l, "ghost", "x2", "2026-10-11T00:00:00Z", "agent", "ag");
    run_event(l, "ghost", "x3", "2026-10-12T05:00:00Z", "agent", "ag");
    run_event(l, "ghost", "x4", "2026-10-12T06:00:00Z", "agent", "ag");     /* at the as-of: after it */
    reconcile(l, "2026-10-12T06:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'unknown_account'"), 1);
    assert_int_equal(one(l, "SELECT detail = '3 events held until the account''s row arrives' FROM discrepancies"), 1);
    assert_int_equal(one(l, "SELECT ts FROM discrepancies"), ts("2026-10-10T00:00:00Z"));
    assert_int_equal(one(l, "SELECT COUNT(*) FROM statements"), 0);
    account(l, "ghost", "gale", "2026-10-01", "0");
    reconcile(l, "2026-10-12T06:00:00Z");
    assert_int_equal(one(l, "SELECT COUNT(*) FROM discrepancies WHERE kind = 'unknown_account'"), 0);
    assert_int_equal(one(l, "SELECT used_runs FROM statements WHERE pool = 'runs'"), 3 * TLY_MICRO);
    done(l);
}

/* A held account whose only runs are on the as-of's day, before it. */
static void test_unknown_account_runs_on_asof_day(void **state)
{
    struct tly_ledger *l = fresh();
    (void)state;
    run_event(l, "ghost", "x1", "2026-10-12T05:00:00Z", "agent", "ag");
    reconcile(l, "2026-10-12T06:00:00Z");
    assert_int_equal(one(l, "SELECT detail = '1 events held until the account''s row arrives' FROM discrepancies"), 1);
    assert_int_equal(one(l, "SELECT ts FROM discrepancies"), ts("2026-10-12T05:00:00Z"));
    done(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wallet_draws_earliest_expiry_first),
        cmocka_unit_test(test_wallet_debt_paid_by_next_grant),
        cmocka_unit_test(test_wallet_overflow_flagged_not_wrapped),
        cmocka_unit_test(test_largest_rate_charged_exactly),
        cmocka_unit_test(test_scale_past_units_bound_ignored),
        cmocka_unit_test(test_late_event_before_first_cycle_adds_its_statement),
        cmocka_unit_test(test_unpriced_closed_time_charged_late_once_priced),
        cmocka_unit_test(test_cycle_anchor_31_through_february),
        cmocka_unit_test(test_cycle_anchor_read_back_from_its_dates),
        cmocka_unit_test(test_cycle_dates_of_the_as_of_bounds_have_four_digit_years),
        cmocka_unit_test(test_negative_limit_stop_and_overrun),
        cmocka_unit_test(test_restart_below_limit_stopped_at_once),
        cmocka_unit_test(test_odd_lifecycle_rows_and_scale_by_deploy),
        cmocka_unit_test(test_not_chargeable_names_its_hardware),
        cmocka_unit_test(test_same_instant_credits_before_runs),
        cmocka_unit_test(test_free_grant_expires_and_banner),
        cmocka_unit_test(test_late_usage_posted_into_open_cycle),
        cmocka_unit_test(test_unknown_account_listed_once),
        cmocka_unit_test(test_unknown_account_runs_on_asof_day),
        cmocka_unit_test(test_runnable_named_by_latest_run),
        cmocka_unit_test(test_quiet_days_equal_replay),
        cmocka_unit_test(test_lazy_day_read_at_an_instant_and_an_as_of_inside_a_day),
        cmocka_unit_test(test_usage_rows_rewritten_by_difference),
        cmocka_unit_test(test_open_usage_of_an_account_gone_is_cleared),
        cmocka_unit_test(test_overrun_evidence_after_close_incremental_equals_batch),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
