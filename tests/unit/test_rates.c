/*
 * test_rates.c — the rate card, all or nothing (spec inputs.md "rates.csv"),
 * and its versions: closed time keeps its prices (semantics §10).
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
#include "meter.h"
#include "rates.h"
#include "testkit.h"
#include "timeutil.h"

struct fx {
    struct tk_scratch t;
    char card[128];
    struct tly_ledger *l;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_int_equal(tk_scratch_make(&f->t, "rates"), 0);
    snprintf(f->card, sizeof f->card, "%s/rates.csv", f->t.dir);
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

static int load(struct fx *f, const char *text)
{
    FILE *o = fopen(f->card, "w");
    fputs(text, o);
    fclose(o);
    return tly_rates_load(f->l, f->card);
}

/* Every version's rows, one line per row, for before/after comparisons. */
static const char *card(struct fx *f)
{
    static char buf[2048];
    sqlite3_stmt *st;
    size_t n = 0;
    buf[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(f->l->db,
        "SELECT hardware, category, ifnull(description, '-'), ifnull(vcpu, '-'),"
        " ifnull(memory_gb, '-'), credits_per_hour, effective_from, ifnull(effective_to, '-'), line,"
        " 'v' || card FROM rates ORDER BY card, hardware, effective_from", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < 10; c++)
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
        "cpu.small script 2 vCPU / 4 GB 2 4.0 50000 1767225600 1782864000 2 v1\n"
        "cpu.small script 2 vCPU / 4 GB 2 4.0 60000 1782864000 - 3 v1\n"
        "gpu.a100 model NVIDIA A100 80GB - - 4000000 1767225600 - 4 v1\n");
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

/* A card is bounded: 100,000 rows load, one more refuses the card. */
static void test_rates_row_bound(void **state)
{
    struct fx *f = *state;
    FILE *o;

    for (int rows = 100000; rows <= 100001; rows++) {
        assert_non_null(o = fopen(f->card, "w"));
        fputs("hardware,category,credits_per_hour,effective_from\n", o);
        for (int i = 0; i < rows; i++)
            fprintf(o, "h%d,model,1,2026-01-01T00:00:00Z\n", i);
        fclose(o);
        assert_int_equal(tly_rates_load(f->l, f->card), rows == 100000 ? TLY_OK : TLY_ERR_INPUT);
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

static const char card_b[] =
    "hardware,category,credits_per_hour,effective_from,effective_to\n"
    "h,model,1,2026-01-01T00:00:00Z,2026-10-02T12:00:00Z\n";
static const char card_c[] =
    "hardware,category,credits_per_hour,effective_from\n"
    "h,model,0.4,2026-01-01T00:00:00Z\n"
    "g,model,2,2026-01-01T00:00:00Z\n";

/*
 * A card a run priced with stays, as a version, when another replaces it;
 * one no run used is written over, and the same card again is no version.
 */
static void test_rates_versions_kept_once_priced_with(void **state)
{
    struct fx *f = *state;
    struct tly_cards cards;

    assert_int_equal(load(f, good), TLY_OK);
    assert_int_equal(load(f, card_b), TLY_OK);          /* v1 never used: replaced */
    assert_string_equal(card(f), "h model - - - 1000000 1767225600 1790942400 2 v1\n");
    assert_int_equal(tly_ledger_set_int(f->l, "card_used", 1), TLY_OK);   /* a run priced with it */
    assert_int_equal(load(f, card_b), TLY_OK);          /* the same card: no version */
    assert_int_equal(load(f, good), TLY_OK);            /* v2, replaced by the next */
    assert_int_equal(load(f, card_c), TLY_OK);
    assert_string_equal(card(f),
        "h model - - - 1000000 1767225600 1790942400 2 v1\n"
        "g model - - - 2000000 1767225600 - 3 v2\n"
        "h model - - - 400000 1767225600 - 2 v2\n");
    assert_int_equal(tly_cards_load(f->l, &cards), TLY_OK);
    assert_int_equal(cards.n, 2);
    assert_int_equal(cards.id[0], 1);
    assert_int_equal(cards.id[1], 2);
    assert_int_equal(tly_cards_current(&cards)->nhw, 2);
    tly_cards_release(&cards);
}

static int64_t T(const char *s)
{
    int64_t t;
    const char *why;
    assert_int_equal(tly_parse_ts(s, strlen(s), &t, &why), 0);
    return t;
}

static void assert_price(const struct tly_hardware *hw, int i, const char *from, const char *to, int64_t per_hour)
{
    assert_true(i < hw->nprices);
    assert_int_equal(hw->prices[i].from, T(from));
    assert_int_equal(hw->prices[i].to, to ? T(to) : INT64_MAX);
    assert_int_equal(hw->prices[i].per_hour, per_hour);
}

/*
 * semantics §10 "prices change only open time": October closed under v1
 * (h at 1/h until Oct 2 12:00, unpriced after); v2 prices h at 0.4 and adds
 * g.  October keeps 1/h where v1 priced it; its unpriced time, and all time
 * outside closed cycles, take v2.  Pieces of one row are not cut apart.
 */
static void test_card_layer_closed_time_keeps_its_prices(void **state)
{
    struct fx *f = *state;
    struct tly_cards cards;
    struct tly_card layered;
    struct tly_closed_span october = { T("2026-10-01T00:00:00Z"), T("2026-11-01T00:00:00Z"), 1 };
    const struct tly_hardware *h, *g;

    assert_int_equal(load(f, card_b), TLY_OK);
    assert_int_equal(tly_ledger_set_int(f->l, "card_used", 1), TLY_OK);
    assert_int_equal(load(f, card_c), TLY_OK);
    assert_int_equal(tly_cards_load(f->l, &cards), TLY_OK);
    assert_int_equal(tly_card_layer(&cards, &october, 1, &layered), TLY_OK);
    assert_int_equal(layered.nhw, 2);
    assert_non_null(h = tly_card_find(&layered, "h"));
    assert_int_equal(h->nprices, 3);
    assert_price(h, 0, "2026-01-01T00:00:00Z", "2026-10-01T00:00:00Z", 400000);
    assert_price(h, 1, "2026-10-01T00:00:00Z", "2026-10-02T12:00:00Z", 1000000);
    assert_price(h, 2, "2026-10-02T12:00:00Z", NULL, 400000);
    assert_non_null(g = tly_card_find(&layered, "g"));
    assert_int_equal(g->nprices, 1);
    assert_price(g, 0, "2026-01-01T00:00:00Z", NULL, 2000000);
    tly_card_release(&layered);
    /* closed under the card in force: the same prices as that card */
    october.version = 2;
    assert_int_equal(tly_card_layer(&cards, &october, 1, &layered), TLY_OK);
    assert_non_null(h = tly_card_find(&layered, "h"));
    assert_int_equal(h->nprices, 1);
    assert_price(h, 0, "2026-01-01T00:00:00Z", NULL, 400000);
    tly_card_release(&layered);
    tly_cards_release(&cards);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rates_load_good_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_overlap_refused_old_card_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_bad_row_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_row_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_versions_kept_once_priced_with, setup, teardown),
        cmocka_unit_test_setup_teardown(test_card_layer_closed_time_keeps_its_prices, setup, teardown),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
