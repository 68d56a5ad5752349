/*
 * test_rates.c — the rate card, all or nothing (spec inputs.md "rates.csv").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "rates.h"

struct fx {
    char dir[64], db[128], card[128];
    struct tly_ledger *l;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tally-test-rates-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    snprintf(f->card, sizeof f->card, "%s/rates.csv", f->dir);
    assert_int_equal(tly_ledger_open(f->db, TLY_LEDGER_LOCK, &f->l), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[200];
    tly_ledger_close(f->l);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int load(struct fx *f, const char *text)
{
    FILE *o = fopen(f->card, "w");
    fputs(text, o);
    fclose(o);
    return tly_rates_load(f->l, f->card);
}

/* The card in force, one line per row, for before/after comparisons. */
static const char *card(struct fx *f)
{
    static char buf[2048];
    sqlite3_stmt *st;
    size_t n = 0;
    buf[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(f->l->db,
        "SELECT hardware, category, ifnull(description, '-'), ifnull(vcpu, '-'),"
        " ifnull(memory_gb, '-'), credits_per_hour, effective_from, ifnull(effective_to, '-'), line"
        " FROM rates ORDER BY hardware, effective_from", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < 9; c++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", c ? " " : "",
                                  (const char *)sqlite3_column_text(st, c));
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\n");
    }
    sqlite3_finalize(st);
    return buf;
}

static const char good[] =
    "hardware,category,description,vcpu,memory_gb,credits_per_hour,effective_from,effective_to\n"
    "cpu.small,script,2 vCPU / 4 GB,2,4.0,0.05,2026-01-01T00:00:00Z,2026-07-01T00:00:00Z\n"
    "cpu.small,script,2 vCPU / 4 GB,2,4.0,0.06,2026-07-01T00:00:00Z,\n"   /* adjacent: fine */
    "gpu.a100,model,NVIDIA A100 80GB,,,4,2026-01-01T00:00:00Z,\n";

static void test_rates_load_good_card(void **state)
{
    struct fx *f = *state;
    assert_int_equal(load(f, good), TLY_OK);
    assert_string_equal(card(f),
        "cpu.small script 2 vCPU / 4 GB 2 4.0 50000 1767225600 1782864000 2\n"
        "cpu.small script 2 vCPU / 4 GB 2 4.0 60000 1782864000 - 3\n"
        "gpu.a100 model NVIDIA A100 80GB - - 4000000 1767225600 - 4\n");
    /* the identical card again is fine and changes nothing */
    {
        char before[2048];
        strcpy(before, card(f));
        assert_int_equal(load(f, good), TLY_OK);
        assert_string_equal(card(f), before);
    }
}

/* inputs.md: overlapping periods of one hardware refuse the card; the old one stays */
static void test_rates_overlap_refused_old_card_stays(void **state)
{
    struct fx *f = *state;
    static const char *const overlapping[] = {
        "hardware,category,credits_per_hour,effective_from,effective_to\n"
        "h,model,1,2026-01-01T00:00:00Z,2026-03-01T00:00:00Z\n"
        "h,model,2,2026-02-01T00:00:00Z,\n",
        "hardware,category,credits_per_hour,effective_from,effective_to\n"
        "h,model,1,2026-01-01T00:00:00Z,\n"                 /* open-ended */
        "h,model,2,2027-01-01T00:00:00Z,\n",
        "hardware,category,credits_per_hour,effective_from\n"
        "h,model,1,2026-01-01T00:00:00Z\n"
        "h,model,1,2026-01-01T00:00:00Z\n",                 /* the same row twice */
    };
    char before[2048];
    assert_int_equal(load(f, good), TLY_OK);
    strcpy(before, card(f));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(load(f, overlapping[i]), TLY_ERR_INPUT);
        assert_string_equal(card(f), before);
    }
}

static void test_rates_bad_row_refused(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "hardware,category,credits_per_hour,effective_from\nh,model,1.1234567,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour,effective_from\nh,model,10000.5,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour,effective_from\nh,model,-1,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour,effective_from\nh,agent,1,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour,effective_from\nh,model,1,2026-01-01T00:00:00\n",
        "hardware,category,credits_per_hour,effective_from,effective_to\n"
        "h,model,1,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour\nh,model,1\n",          /* missing column */
        "hardware,category,credits_per_hour,effective_from\nh,model,1\n", /* field count */
        "hardware,category,credits_per_hour,effective_from\n\"h,model,1,2026-01-01T00:00:00Z\n",
        "hardware,category,credits_per_hour,effective_from\n",     /* no rows */
        "hardware,category,vcpu,credits_per_hour,effective_from\nh,model,two,1,2026-01-01T00:00:00Z\n",
    };
    char before[2048];
    assert_int_equal(load(f, good), TLY_OK);
    strcpy(before, card(f));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(load(f, bad[i]), TLY_ERR_INPUT);
        assert_string_equal(card(f), before);
    }
    assert_int_equal(tly_rates_load(f->l, "/nonexistent/rates.csv"), TLY_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rates_load_good_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_overlap_refused_old_card_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_bad_row_refused, setup, teardown),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
