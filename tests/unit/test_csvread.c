/*
 * test_csvread.c — the strict CSV reader (spec inputs.md "CSV rules"), on
 * in-memory input read in chunks of every small size, so that buffer
 * refills can fall anywhere in a row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvread.h"
#include "error.h"
#include "testkit.h"

static const char *const ab[] = { "a", "b" };

static struct tly_csv *open_text(struct tk_mem *m, const char *s, size_t n, size_t chunk, size_t maxf)
{
    struct tly_csv *r;
    m->s = s;
    m->n = n;
    m->pos = 0;
    m->chunk = chunk;
    assert_int_equal(tly_csv_open(&r, tk_mem_read, m, maxf), 0);
    return r;
}

static void assert_val(const struct tly_csv_row *row, int i, const char *expected)
{
    if (!expected) {
        assert_null(row->val[i]);
        return;
    }
    assert_non_null(row->val[i]);
    assert_int_equal(row->len[i], strlen(expected));
    assert_memory_equal(row->val[i], expected, strlen(expected));
}

static void assert_raw(const struct tly_csv_row *row, const char *expected)
{
    assert_int_equal(row->raw_len, strlen(expected));
    assert_memory_equal(row->raw, expected, strlen(expected));
}

/* inputs.md: BOM ignored, CRLF, header by name in any order */
static void test_csv_bom_crlf_header_any_order(void **state)
{
    static const char text[] = "\xef\xbb\xbf" "b,a\r\n2,1\r\n4,3\r\n";
    (void)state;
    for (size_t chunk = 0; chunk < 8; chunk++) {
        struct tk_mem m;
        struct tly_csv *r = open_text(&m, text, sizeof text - 1, chunk, 65536);
        struct tly_csv_row row;
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        assert_true(tly_csv_has_column(r, 0) && tly_csv_has_column(r, 1));
        assert_null(tly_csv_unknown_column(r, 0));
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.reject, TLY_CSV_OK);
        assert_int_equal(row.line, 2);
        assert_val(&row, 0, "1");
        assert_val(&row, 1, "2");
        assert_raw(&row, "2,1");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.line, 3);
        assert_val(&row, 0, "3");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        assert_int_equal(tly_csv_rows(r), 2);
        tly_csv_close(r);
    }
}

static void test_csv_missing_and_unknown_column(void **state)
{
    static const char text[] = "a,zzz,yy\n1,2,3\n";
    struct tk_mem m;
    struct tly_csv *r = open_text(&m, text, sizeof text - 1, 0, 65536);
    struct tly_csv_row row;
    (void)state;
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_true(tly_csv_has_column(r, 0));
    assert_false(tly_csv_has_column(r, 1));
    assert_string_equal(tly_csv_unknown_column(r, 0), "zzz");
    assert_string_equal(tly_csv_unknown_column(r, 1), "yy");
    assert_null(tly_csv_unknown_column(r, 2));
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(row.reject, TLY_CSV_OK);
    assert_val(&row, 0, "1");
    assert_val(&row, 1, NULL);          /* not in the header: absent */
    tly_csv_close(r);
}

/* inputs.md: a row spanning lines is named by its first line; blank lines count */
static void test_csv_quoted_newline_line_numbers(void **state)
{
    static const char text[] = "a,b\r\n1,\"x\r\ny\"\r\n\r\n3,\"\"\"q\"\"\"\n5,6";
    (void)state;
    for (size_t chunk = 0; chunk < 6; chunk++) {
        struct tk_mem m;
        struct tly_csv *r = open_text(&m, text, sizeof text - 1, chunk, 65536);
        struct tly_csv_row row;
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.line, 2);
        assert_val(&row, 1, "x\ny");
        assert_raw(&row, "1,\"x\r\ny\"");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.line, 5);
        assert_val(&row, 1, "\"q\"");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.line, 6);              /* last line, no line end */
        assert_val(&row, 1, "6");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        assert_int_equal(tly_csv_lines(r), 6);
        tly_csv_close(r);
    }
}

/* inputs.md: unquoted cells trimmed of spaces; empty cell = absent */
static void test_csv_trim_and_empty(void **state)
{
    static const char text[] = "a,b\n  1 ,\"\"\n\tx\t, \" y \" \n";
    struct tk_mem m;
    struct tly_csv *r = open_text(&m, text, sizeof text - 1, 0, 65536);
    struct tly_csv_row row;
    (void)state;
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_val(&row, 0, "1");
    assert_val(&row, 1, NULL);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_val(&row, 0, "\tx\t");       /* tabs are not spaces: kept (then a column rule decides) */
    assert_val(&row, 1, " y ");         /* quoted: kept as written */
    tly_csv_close(r);
}

/* Row rules: each reason, and the next row still loads with its own line. */
static void test_csv_row_rejects(void **state)
{
    static const char text[] =
        "a,b\n"
        "1,\xff\n"                      /* 2 bad_utf8 */
        "1,x\0y\n"                      /* 3 nul_byte */
        "1,123456789\n"                 /* 4 field_too_long (limit 8) */
        "1,2,3\n"                       /* 5 field_count */
        "1\n"                           /* 6 field_count */
        "\xc3\xa9,\xed\xa0\x80\n"        /* 7 bad_utf8 (surrogate) */
        "\xc3\xa9,12345678\n";          /* 8 fine */
    static const enum tly_csv_reject expected[] = {
        TLY_CSV_BAD_UTF8, TLY_CSV_NUL_BYTE, TLY_CSV_FIELD_TOO_LONG, TLY_CSV_FIELD_COUNT,
        TLY_CSV_FIELD_COUNT, TLY_CSV_BAD_UTF8, TLY_CSV_OK,
    };
    (void)state;
    for (size_t chunk = 0; chunk < 5; chunk++) {
        struct tk_mem m;
        struct tly_csv *r = open_text(&m, text, sizeof text - 1, chunk, 8);
        struct tly_csv_row row;
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
            assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
            assert_int_equal(row.line, (long)i + 2);
            assert_int_equal(row.reject, expected[i]);
        }
        assert_val(&row, 0, "\xc3\xa9");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        tly_csv_close(r);
    }
    assert_string_equal(tly_csv_reject_code(TLY_CSV_FIELD_COUNT), "field_count");
}

/* inputs.md: a quote error rejects the rest of the file from its line */
static void test_csv_quote_error_rejects_rest(void **state)
{
    static const char *const texts[] = {
        "a,b\n1,2\n3,x\"y\n5,6\n\n7,8\n",       /* stray quote in an unquoted field */
        "a,b\n1,2\n3,\"x\"y\n5,6\n\n7,8\n",     /* text after a closing quote */
        "a,b\n1,2\n3,\"x\n5,6\n\n7,8\n",        /* unterminated: runs to the end */
    };
    (void)state;
    for (size_t t = 0; t < 3; t++) {
        struct tk_mem m;
        struct tly_csv *r = open_text(&m, texts[t], strlen(texts[t]), t + 1, 65536);
        struct tly_csv_row row;
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_QUOTE_ERROR);
        assert_int_equal(row.line, 3);
        assert_true(row.raw_len >= 3 && !memcmp(row.raw, "3,", 2));
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        /* the manifest count: 1 good + the broken row + the non-blank lines after it */
        assert_int_equal(tly_csv_rows(r), 4);
        tly_csv_close(r);
    }
}

/*
 * The same count when the broken row is longer than the raw text kept
 * (TLY_CSV_RAW_MAX, read without libcsv), and when the header is broken:
 * its first line is no data row, every non-blank line after it is one.
 */
static void test_csv_quote_error_counts_rows_after_a_long_row(void **state)
{
    static const char *const heads[] = { "a,b\n1,2\n3,\"", "a,b\n1,2\n3,", "a,\"b" };
    static const char *const tails[] = { "\n5,6\n\n7,8\n", "\"y\n5,6\n\n7,8\n", "\n1,2\n3,4\n\n5,6" };
    static const long rows[] = { 4, 4, 3 };
    size_t pad = TLY_CSV_RAW_MAX + 100;
    (void)state;
    for (size_t t = 0; t < 3; t++) {
        size_t h = strlen(heads[t]), n = h + pad + strlen(tails[t]);
        char *text = malloc(n + 1);
        struct tly_csv_row row;
        struct tly_csv *r;
        struct tk_mem m;

        assert_non_null(text);
        memcpy(text, heads[t], h);
        memset(text + h, 'x', pad);
        strcpy(text + h + pad, tails[t]);
        r = open_text(&m, text, n, 4096, 65536);
        if (t < 2) {
            assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
            assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
            assert_int_equal(tly_csv_next(r, &row), TLY_CSV_QUOTE_ERROR);
            assert_int_equal(row.line, 3);
        } else {
            assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_QUOTE_ERROR);
        }
        while (tly_csv_next(r, &row) != TLY_CSV_END)
            ;
        assert_int_equal(tly_csv_rows(r), rows[t]);
        tly_csv_close(r);
        free(text);
    }
}

/*
 * A bare CR is data, not a line end (then the column rules refuse it),
 * the file's last byte too: only a CR before an LF ends a line.
 */
static void test_csv_bare_cr_is_data(void **state)
{
    static const char text[] = "a,b\n1\r2,3\r\n4,5\r";
    struct tk_mem m;
    struct tly_csv *r = open_text(&m, text, sizeof text - 1, 0, 65536);
    struct tly_csv_row row;
    (void)state;
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(row.reject, TLY_CSV_OK);
    assert_val(&row, 0, "1\r2");
    assert_val(&row, 1, "3");
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(row.line, 3);
    assert_val(&row, 0, "4");
    assert_val(&row, 1, "5\r");
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
    tly_csv_close(r);
}

static void test_csv_empty_file(void **state)
{
    static const char *const texts[] = { "", "\xef\xbb\xbf", "\n\n" };
    (void)state;
    for (size_t t = 0; t < 3; t++) {
        struct tk_mem m;
        struct tly_csv *r = open_text(&m, texts[t], strlen(texts[t]), 1, 65536);
        struct tly_csv_row row;
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_END);
        assert_false(tly_csv_has_column(r, 0));
        tly_csv_close(r);
    }
}

/*
 * A row longer than the reader holds is walked, not buffered: it is
 * field_too_long with its first 64 KiB as raw, and the rows after it load
 * with their right line numbers.  Unterminated, it is a quote error.
 */
static void test_csv_huge_row_bounded(void **state)
{
    size_t big = 5u << 20, n = 0;
    char *text = malloc(big + 100);
    struct tk_mem m;
    struct tly_csv *r;
    struct tly_csv_row row;
    (void)state;
    n += (size_t)sprintf(text, "a,b\n1,\"");
    memset(text + n, 'x', big);
    n += big;
    n += (size_t)sprintf(text + n, "\nx\"\n5,6\n");
    r = open_text(&m, text, n, 0, 1000);
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(row.reject, TLY_CSV_FIELD_TOO_LONG);
    assert_int_equal(row.line, 2);
    assert_int_equal(row.raw_len, TLY_CSV_RAW_MAX);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(row.reject, TLY_CSV_OK);
    assert_int_equal(row.line, 4);
    assert_val(&row, 1, "6");
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
    tly_csv_close(r);

    /* the same without the closing quote */
    n = (size_t)sprintf(text, "a,b\n1,2\n1,\"");
    memset(text + n, 'x', big);
    n += big;
    r = open_text(&m, text, n, 0, 1000);
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_QUOTE_ERROR);
    assert_int_equal(row.line, 3);
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
    tly_csv_close(r);
    free(text);
}

/*
 * A long row gets the reason an ordinary row would: inputs.md's stray quote
 * rejects the rest of the file from the row's line (it used to close the
 * quote parity of a later stray quote, loading a row after it), and a row
 * long only by its number of fields is field_count, not field_too_long.
 * Each is read in one read and in reads of 7 bytes.
 */
static void test_csv_long_row_reasons(void **state)
{
    size_t big = 1100000, n, chunks[] = { 0, 7 };       /* past the 1 MiB least cap */
    char *text = malloc(big + 4096);
    struct tk_mem m;
    struct tly_csv *r;
    struct tly_csv_row row;
    (void)state;
    for (int c = 0; c < 2; c++) {
        /* line 2: a long field of x, then x"x: a stray quote */
        n = (size_t)sprintf(text, "a,b\n1,");
        memset(text + n, 'x', big - 100);
        n += big - 100;
        n += (size_t)sprintf(text + n, "x\"x\n3,4\n5,\"6\n7,8\n");
        r = open_text(&m, text, n, chunks[c], 1000);
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_QUOTE_ERROR);
        assert_int_equal(row.line, 2);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        tly_csv_close(r);

        /* line 2: 1200 fields of 900 bytes against a header of 2 (limit 1000) */
        n = (size_t)sprintf(text, "a,b\n");
        for (int f = 0; f < 1200; f++) {
            memset(text + n, 'y', 900);
            n += 900;
            text[n++] = f < 1199 ? ',' : '\n';
        }
        n += (size_t)sprintf(text + n, "5,\"6\"\"\"\n");
        r = open_text(&m, text, n, chunks[c], 1000);
        assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.reject, TLY_CSV_FIELD_COUNT);
        assert_int_equal(row.nfields, 1200);
        assert_int_equal(row.line, 2);
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
        assert_int_equal(row.reject, TLY_CSV_OK);
        assert_val(&row, 1, "6\"");
        assert_int_equal(tly_csv_next(r, &row), TLY_CSV_END);
        tly_csv_close(r);
    }
    free(text);
}

static void test_csv_duplicate_header_name(void **state)
{
    static const char text[] = "a,a,b\n1,2,3\n";
    struct tk_mem m;
    struct tly_csv *r = open_text(&m, text, sizeof text - 1, 0, 65536);
    struct tly_csv_row row;
    (void)state;
    assert_int_equal(tly_csv_header(r, ab, 2, &row), TLY_CSV_ROW);
    assert_string_equal(tly_csv_unknown_column(r, 0), "a");
    assert_int_equal(tly_csv_next(r, &row), TLY_CSV_ROW);
    assert_val(&row, 0, "1");           /* the first 'a' is used */
    tly_csv_close(r);
}

static void test_utf8_validator(void **state)
{
    (void)state;
    assert_true(tly_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(tly_utf8_valid("\xc0\xaf", 2));           /* overlong */
    assert_false(tly_utf8_valid("\xe0\x80\xaf", 3));       /* overlong */
    assert_false(tly_utf8_valid("\xf4\x90\x80\x80", 4));   /* > U+10FFFF */
    assert_false(tly_utf8_valid("\xc3", 1));               /* cut */
    assert_false(tly_utf8_valid("\x80", 1));
}

/* Names from outside, shown: printable UTF-8 stays, other bytes become \xNN, whole pieces only. */
static void test_utf8_shown(void **state)
{
    static const char name[] = "caf\xe9/\x01r\xc2\x85\xe2\x82\xac.csv";   /* Latin-1, C0, C1, euro */
    char out[64];
    size_t used, n;

    (void)state;
    n = tly_utf8_shown(name, sizeof name - 1, out, sizeof out, &used);
    assert_string_equal(out, "caf\\xE9/\\x01r\\xC2\\x85\xe2\x82\xac.csv");
    assert_int_equal(n, strlen(out));
    assert_int_equal(used, sizeof name - 1);
    /* room for "caf" and not for the whole \xE9 */
    n = tly_utf8_shown(name, sizeof name - 1, out, 7, &used);
    assert_string_equal(out, "caf");
    assert_int_equal(used, 3);
    assert_int_equal(tly_utf8_printable("\t", 1), 1);
    assert_int_equal(tly_utf8_printable("\x7f", 1), 0);
    assert_int_equal(tly_utf8_printable("\xe2\x82", 2), 0);      /* cut short */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_bom_crlf_header_any_order),
        cmocka_unit_test(test_csv_missing_and_unknown_column),
        cmocka_unit_test(test_csv_quoted_newline_line_numbers),
        cmocka_unit_test(test_csv_trim_and_empty),
        cmocka_unit_test(test_csv_row_rejects),
        cmocka_unit_test(test_csv_quote_error_rejects_rest),
        cmocka_unit_test(test_csv_quote_error_counts_rows_after_a_long_row),
        cmocka_unit_test(test_csv_bare_cr_is_data),
        cmocka_unit_test(test_csv_empty_file),
        cmocka_unit_test(test_csv_huge_row_bounded),
        cmocka_unit_test(test_csv_long_row_reasons),
        cmocka_unit_test(test_csv_duplicate_header_name),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_utf8_shown),
    };
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
