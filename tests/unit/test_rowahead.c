/*
 * test_rowahead.c — rows parsed on the rowahead's thread are the rows the
 * reader gives directly: same events, lines, raw text, values and counts,
 * in order, through rejects, a quote error, rows larger than a batch and
 * a failing read; and it stops cleanly when left early (rowahead.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "csvread.h"
#include "error.h"
#include "rowahead.h"

static const char *const columns[] = { "a", "b", "c" };
#define NCOLS 3
#define MAX_FIELD (600u << 10)          /* lets a row outgrow a 256 KiB batch */

struct mem {
    const char *s;
    size_t n, pos;
    size_t fail_at;                     /* reads past this byte fail (0: never) */
};

static ssize_t mem_read(void *ctx, void *buf, size_t n)
{
    struct mem *m = ctx;
    size_t k = m->n - m->pos;

    if (m->fail_at && m->pos >= m->fail_at)
        return -1;
    if (k > n)
        k = n;
    if (k > 4099)
        k = 4099;                       /* refills fall anywhere in a row */
    memcpy(buf, m->s + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

struct text {
    char *s;
    size_t n, cap;
};

static void add(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static void adds(struct text *t, const char *s)
{
    add(t, s, strlen(s));
}

/* 'rows' rows of every kind the reader tells apart; a quote error at the end if asked. */
static struct text make_csv(int rows, int quote_error)
{
    struct text t = { 0 };
    char line[200];

    adds(&t, "a,b,c\n");
    for (int i = 0; i < rows; i++) {
        switch (i % 97) {
        case 5:
            adds(&t, "x,\"two\nlines\",\n");           /* a value across lines; c empty */
            break;
        case 11:
            adds(&t, "only,two\n");                    /* field_count */
            break;
        case 13:
            adds(&t, "bad,\xff\xfe,utf8\n");           /* bad_utf8 */
            break;
        case 17:
            adds(&t, "\n");                            /* a blank line */
            break;
        case 19:
            adds(&t, "  spaced  ,\"\",\"q\"\"uote\"\r\n");
            break;
        default:
            snprintf(line, sizeof line, "acct-%d,run-%08d,%d\n", i % 13, i, i * 7);
            adds(&t, line);
        }
        if (i == rows / 2) {                           /* one value larger than a batch */
            char *big = malloc(300u << 10);
            assert_non_null(big);
            memset(big, 'z', 300u << 10);
            adds(&t, "big,");
            add(&t, big, 300u << 10);
            adds(&t, ",end\n");
            free(big);
        }
    }
    if (quote_error)
        adds(&t, "a,\"never closed\nb,c\nd,e,f\n");
    return t;
}

static struct tly_csv *open_reader(struct mem *m, const struct text *t, size_t fail_at)
{
    struct tly_csv *r;
    struct tly_csv_row hdr;

    *m = (struct mem){ t->s, t->n, 0, fail_at };
    assert_int_equal(tly_csv_open(&r, mem_read, m, MAX_FIELD), TLY_OK);
    assert_int_equal(tly_csv_header(r, columns, NCOLS, &hdr), TLY_CSV_ROW);
    return r;
}

static void assert_same_row(const struct tly_csv_row *a, const struct tly_csv_row *b)
{
    assert_int_equal(a->line, b->line);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->nfields, b->nfields);
    if (a->reject == TLY_CSV_FIELD_TOO_LONG)
        assert_int_equal(a->bad_field, b->bad_field);
    assert_int_equal(a->raw_len, b->raw_len);
    assert_memory_equal(a->raw, b->raw, a->raw_len);
    for (int i = 0; i < NCOLS; i++) {
        if (!a->val[i]) {
            assert_null(b->val[i]);
            continue;
        }
        assert_non_null(b->val[i]);
        assert_int_equal(a->len[i], b->len[i]);
        assert_memory_equal(a->val[i], b->val[i], a->len[i]);
    }
}

/* Reads 't' directly and through a rowahead side by side; returns the rows seen. */
static long read_both(const struct text *t, size_t fail_at)
{
    struct mem m1, m2;
    struct tly_csv *direct = open_reader(&m1, t, fail_at), *ahead = open_reader(&m2, t, fail_at);
    struct tly_rowahead *ra;
    struct tly_csv_row a, b;
    long rows, seen = 0;
    int ev;

    assert_int_equal(tly_rowahead_create(&ra, ahead, NCOLS), TLY_OK);
    do {
        ev = tly_csv_next(direct, &a);
        assert_int_equal(tly_rowahead_next(ra, &b, &rows), ev);
        assert_int_equal(rows, tly_csv_rows(direct));
        if (ev == TLY_CSV_ROW || ev == TLY_CSV_QUOTE_ERROR) {
            assert_same_row(&a, &b);
            seen++;
        }
    } while (ev != TLY_CSV_END && ev != TLY_CSV_ERROR);
    assert_int_equal(tly_rowahead_next(ra, &b, &rows), ev);        /* for good */
    assert_int_equal(rows, tly_csv_rows(direct));
    tly_rowahead_destroy(ra);
    assert_int_equal(tly_csv_rows(ahead), tly_csv_rows(direct));
    assert_int_equal(tly_csv_lines(ahead), tly_csv_lines(direct));
    tly_csv_close(direct);
    tly_csv_close(ahead);
    return seen;
}

/* The data rows of make_csv(rows, 0): blank lines are none, and the large row is one more. */
static long rows_made(int rows)
{
    long n = rows > 0;

    for (int i = 0; i < rows; i++)
        n += i % 97 != 17;
    return n;
}

static void test_rowahead_rows_as_read_directly(void **state)
{
    struct text t;

    (void)state;
    t = make_csv(0, 0);
    assert_int_equal(read_both(&t, 0), rows_made(0));
    free(t.s);
    t = make_csv(1, 0);
    assert_int_equal(read_both(&t, 0), rows_made(1));
    free(t.s);
    t = make_csv(50000, 0);             /* many batches, one grown for the large row */
    assert_int_equal(read_both(&t, 0), rows_made(50000));
    free(t.s);
}

static void test_rowahead_quote_error(void **state)
{
    struct text t = make_csv(3000, 1);

    (void)state;
    assert_int_equal(read_both(&t, 0), rows_made(3000) + 1);
    free(t.s);
    t = make_csv(0, 1);                 /* the first data row: no row before it to copy from */
    assert_int_equal(read_both(&t, 0), 1);
    free(t.s);
}

/* A read failure comes out as TLY_CSV_ERROR where the direct reader meets it. */
static void test_rowahead_read_failure(void **state)
{
    struct text t = make_csv(20000, 0);

    (void)state;
    tly_error_quiet(1);
    read_both(&t, t.n / 3);
    read_both(&t, 10);
    tly_error_quiet(0);
    free(t.s);
}

/* Left early (a ledger error): destroy stops the thread with the input unread. */
static void test_rowahead_left_early(void **state)
{
    struct text t = make_csv(200000, 0);
    struct mem m;
    struct tly_csv *r = open_reader(&m, &t, 0);
    struct tly_rowahead *ra;
    struct tly_csv_row row;
    long rows;

    (void)state;
    assert_int_equal(tly_rowahead_create(&ra, r, NCOLS), TLY_OK);
    assert_int_equal(tly_rowahead_next(ra, &row, &rows), TLY_CSV_ROW);
    assert_int_equal(rows, 1);
    tly_rowahead_destroy(ra);
    assert_true(m.pos < m.n);
    tly_rowahead_destroy(NULL);
    tly_csv_close(r);
    free(t.s);
}

/* Its own allocations fail cleanly (they are made on the caller's thread). */
static void test_rowahead_allocation_fails(void **state)
{
    struct text t = make_csv(10, 0);
    struct mem m;
    struct tly_csv *r = open_reader(&m, &t, 0);
    struct tly_rowahead *ra = (struct tly_rowahead *)&m;

    (void)state;
    tly_error_quiet(1);
    for (long n = 1; n <= 7; n++) {
        tly_alloc_fail_at(n);
        assert_int_equal(tly_rowahead_create(&ra, r, NCOLS), TLY_ERR_NOMEM);
        assert_null(ra);
    }
    tly_alloc_fail_at(0);
    tly_error_quiet(0);
    tly_csv_close(r);
    read_both(&t, 0);
    free(t.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rowahead_rows_as_read_directly),
        cmocka_unit_test(test_rowahead_quote_error),
        cmocka_unit_test(test_rowahead_read_failure),
        cmocka_unit_test(test_rowahead_left_early),
        cmocka_unit_test(test_rowahead_allocation_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
