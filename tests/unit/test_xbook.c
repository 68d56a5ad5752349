/*
 * test_xbook.c — workbooks written on the writer threads (xbook.h) are the
 * same bytes as written directly; a failed book is reported once, on one
 * line, without libxlsxwriter's own; and a muted stderr (error.h) still
 * carries Tally's messages from any thread; cells hold what the CSV shows,
 * in XML every reader accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "alloc.h"
#include "error.h"
#include "timeutil.h"
#include "xbook.h"

#define BOOKS 7                 /* more than the writer's slots */

static char root[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/tally-xbook-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Book i: a sheet of 20 * (i + 1) rows, so the books differ in size. */
static int build(const char *dir, int i, struct tly_xbook **out)
{
    struct tly_xsheet *s;
    char path[128], text[48];
    int err;

    snprintf(path, sizeof path, "%s/book%d.xlsx", dir, i);
    if ((err = tly_xbook_open(path, "Usage", 1790000000, root, 0, out)))
        return err;
    if ((s = tly_xbook_sheet(*out, "Usage")))
        for (uint32_t r = 0; r < 20u * (uint32_t)(i + 1); r++) {
            snprintf(text, sizeof text, "row %u of book %d", r, i);
            tly_xsheet_text(s, r, 0, text, strlen(text), TLY_XF_TEXT);
            tly_xsheet_number(s, r, 1, r * 1.25, TLY_XF_CREDITS);
        }
    return TLY_OK;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

static void test_xwriter_writes_the_bytes_of_a_direct_close(void **state)
{
    struct tly_xwriter *w;
    struct tly_xbook *b;
    char direct[96], threaded[96];

    (void)state;
    snprintf(direct, sizeof direct, "%s/direct", root);
    snprintf(threaded, sizeof threaded, "%s/threaded", root);
    assert_int_equal(mkdir(direct, 0755), 0);
    assert_int_equal(mkdir(threaded, 0755), 0);
    for (int i = 0; i < BOOKS; i++) {
        assert_int_equal(build(direct, i, &b), TLY_OK);
        assert_int_equal(tly_xbook_close(b), TLY_OK);
    }
    /* no tly_xbook_close between create and finish (xbook.h): gmtime() */
    assert_int_equal(tly_xwriter_create(&w), TLY_OK);
    for (int i = 0; i < BOOKS; i++) {
        assert_int_equal(build(threaded, i, &b), TLY_OK);
        assert_int_equal(tly_xwriter_close(w, b), TLY_OK);
    }
    assert_int_equal(tly_xwriter_finish(w), TLY_OK);
    for (int i = 0; i < BOOKS; i++) {
        char a[128], c[128];
        size_t na, nc;
        char *x, *y;

        snprintf(a, sizeof a, "%s/book%d.xlsx", direct, i);
        snprintf(c, sizeof c, "%s/book%d.xlsx", threaded, i);
        assert_non_null(x = slurp(a, &na));
        assert_non_null(y = slurp(c, &nc));
        assert_true(na > 1000);
        assert_int_equal(na, nc);
        assert_memory_equal(x, y, na);
        free(x);
        free(y);
    }
}

/* Runs fn with descriptor 2 sent to a file; returns what reached it. */
static char *capture_stderr(void (*fn)(void))
{
    char path[96];
    size_t len;
    int fd, saved;
    char *text;

    snprintf(path, sizeof path, "%s/stderr", root);
    fflush(stderr);
    assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
    assert_true((saved = dup(STDERR_FILENO)) >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    assert_non_null(text = slurp(path, &len));
    return text;
}

static int lines_starting(const char *text, const char *prefix)
{
    int n = 0;

    for (const char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

static int failed_result;

/* Book 2 of 6 goes to a folder that does not exist: the caller stops at the first failure. */
static void hand_over_a_failing_book(void)
{
    struct tly_xwriter *w;
    struct tly_xbook *b;
    char ok[96], missing[96];
    int err = TLY_OK;

    snprintf(ok, sizeof ok, "%s/ok", root);
    snprintf(missing, sizeof missing, "%s/missing", root);
    assert_int_equal(mkdir(ok, 0755), 0);
    assert_int_equal(tly_xwriter_create(&w), TLY_OK);
    for (int i = 0; i < 6 && !err; i++) {
        assert_int_equal(build(i == 2 ? missing : ok, i, &b), TLY_OK);
        err = tly_xwriter_close(w, b);
    }
    if (err)
        tly_xwriter_abort(w);
    else
        err = tly_xwriter_finish(w);
    failed_result = err;
}

static void test_xwriter_reports_a_failed_book_once(void **state)
{
    char *text;

    (void)state;
    text = capture_stderr(hand_over_a_failing_book);
    assert_int_equal(failed_result, TLY_ERR_OUTPUT);
    assert_int_equal(lines_starting(text, "tally: "), 1);
    assert_non_null(strstr(text, "missing/book2.xlsx': No such file or directory"));
    assert_null(strstr(text, "[ERROR]"));        /* libxlsxwriter's own line stayed muted */
    free(text);
}

static void *warn_from_a_thread(void *arg)
{
    (void)arg;
    tly_warn("from a thread");
    return NULL;
}

static void muted_messages(void)
{
    pthread_t t;

    tly_stderr_mute();
    fprintf(stderr, "[ERROR] a library line\n");
    tly_stderr_mute();                          /* a second writer thread */
    tly_warn("from the caller");
    assert_int_equal(pthread_create(&t, NULL, warn_from_a_thread, NULL), 0);
    pthread_join(t, NULL);
    tly_stderr_unmute();
    fprintf(stderr, "[ERROR] still muted\n");
    tly_stderr_unmute();
    fprintf(stderr, "heard again\n");
}

static void test_stderr_mute_keeps_tally_lines(void **state)
{
    char *text;

    (void)state;
    text = capture_stderr(muted_messages);
    assert_non_null(strstr(text, "tally: warning: from the caller\n"));
    assert_non_null(strstr(text, "tally: warning: from a thread\n"));
    assert_null(strstr(text, "[ERROR]"));
    assert_non_null(strstr(text, "heard again\n"));
    free(text);
}

/* alloc.h fault injection through open, build, hand-over and finish: clean NOMEM, no leak. */
static void test_xwriter_out_of_memory_is_clean(void **state)
{
    char dir[96];
    int err = TLY_ERR_NOMEM;
    long n;

    (void)state;
    snprintf(dir, sizeof dir, "%s/oom", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    tly_error_quiet(1);
    for (n = 1; n < 1000 && err == TLY_ERR_NOMEM; n++) {
        struct tly_xwriter *w = NULL;
        struct tly_xbook *b;

        tly_alloc_fail_at(n);
        err = tly_xwriter_create(&w);
        for (int i = 0; i < 5 && !err; i++)
            if (!(err = build(dir, i, &b)))
                err = tly_xwriter_close(w, b);
        if (err)
            tly_xwriter_abort(w);
        else
            err = tly_xwriter_finish(w);
        tly_alloc_fail_at(0);
        if (err)
            assert_int_equal(err, TLY_ERR_NOMEM);
    }
    tly_error_quiet(0);
    assert_int_equal(err, TLY_OK);
    assert_true(n > 10);
}

/* One part of a written book (libarchive reads the zip), NUL-terminated. */
static char *book_part(const char *path, const char *part)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    char *text = NULL;

    assert_non_null(a);
    assert_int_equal(archive_read_support_format_zip(a), ARCHIVE_OK);
    assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
    while (!text && archive_read_next_header(a, &e) == ARCHIVE_OK)
        if (!strcmp(archive_entry_pathname(e), part)) {
            la_int64_t n = archive_entry_size(e);
            assert_true(n > 0);
            assert_non_null(text = malloc((size_t)n + 1));
            assert_int_equal(archive_read_data(a, text, (size_t)n), n);
            text[n] = 0;
        }
    archive_read_free(a);
    assert_non_null(text);
    return text;
}

/*
 * Copies the zip 'from' to 'to', the part named 'part' changed by 'edit'
 * (what a full scratch directory does to libxlsxwriter's parts).
 */
static void copy_editing(const char *from, const char *to, const char *part,
                         size_t (*edit)(char *data, size_t n))
{
    struct archive *in = archive_read_new(), *out = archive_write_new();
    struct archive_entry *e;
    static char data[1 << 20];

    assert_int_equal(archive_read_support_format_zip(in), ARCHIVE_OK);
    assert_int_equal(archive_read_open_filename(in, from, 16384), ARCHIVE_OK);
    assert_int_equal(archive_write_set_format_zip(out), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(out, to), ARCHIVE_OK);
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
        la_ssize_t got = archive_read_data(in, data, sizeof data);
        size_t n;
        assert_true(got >= 0 && (size_t)got < sizeof data);
        n = (size_t)got;
        if (!strcmp(archive_entry_pathname(e), part))
            n = edit(data, n);
        archive_entry_set_size(e, (la_int64_t)n);
        assert_int_equal(archive_write_header(out, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(out, data, n), (la_ssize_t)n);
    }
    archive_read_free(in);
    assert_int_equal(archive_write_close(out), ARCHIVE_OK);
    archive_write_free(out);
}

static size_t keep_all(char *data, size_t n) { (void)data; return n; }
static size_t drop_last_byte(char *data, size_t n) { (void)data; return n - 1; }
static size_t drop_200_bytes(char *data, size_t n) { (void)data; return n - 200; }

/* Moves what follows 'from' to 'skip' bytes past 'at': the bytes between are lost. */
static size_t lose_between(char *data, size_t n, const char *at, size_t skip, const char *from)
{
    char *a = strstr(data, at), *b;
    assert_non_null(a);
    a += skip;
    assert_non_null(b = strstr(a, from));
    memmove(a, b, n - (size_t)(b - data));
    return n - (size_t)(b - a);
}

/* The copy of the rows stopped inside row 40's first cell, the end tags written after it. */
static size_t lose_rows_mid_cell(char *data, size_t n)
{
    data[n] = '\0';
    return lose_between(data, n, "<c r=\"A40\"", 5, "</sheetData>");
}

/* ... and at a row's end: well nested, but short of the rows written. */
static size_t lose_rows_at_a_row(char *data, size_t n)
{
    data[n] = '\0';
    return lose_between(data, n, "<row r=\"40\"", 0, "</sheetData>");
}

/*
 * libxlsxwriter does not check its writes to the scratch files, so closing
 * reads the book back: a part whose elements do not all close, or a sheet
 * short of the rows written, is named, whether it lost its last bytes, a
 * run of rows mid-element or whole rows.
 */
static void test_xbook_cut_part_finds_a_sheet_cut_short(void **state)
{
    static const uint32_t rows[] = { 60 };      /* book 2: a sheet of 60 rows */
    struct tly_xbook *b;
    char good[128], bad[128], what[160];
    (void)state;

    assert_int_equal(build(root, 2, &b), TLY_OK);
    assert_int_equal(tly_xbook_close(b), TLY_OK);
    snprintf(good, sizeof good, "%s/book2.xlsx", root);
    assert_int_equal(tly_xbook_cut_part(good, rows, 1, what, sizeof what), 0);
    snprintf(bad, sizeof bad, "%s/cut.xlsx", root);
    copy_editing(good, bad, "xl/worksheets/sheet1.xml", keep_all);      /* the copy itself is whole */
    assert_int_equal(tly_xbook_cut_part(bad, rows, 1, what, sizeof what), 0);
    copy_editing(good, bad, "xl/worksheets/sheet1.xml", drop_last_byte);
    assert_int_equal(tly_xbook_cut_part(bad, rows, 1, what, sizeof what), 1);
    assert_string_equal(what, "xl/worksheets/sheet1.xml");
    copy_editing(good, bad, "xl/styles.xml", drop_200_bytes);
    assert_int_equal(tly_xbook_cut_part(bad, rows, 1, what, sizeof what), 1);
    assert_string_equal(what, "xl/styles.xml");
    copy_editing(good, bad, "xl/worksheets/sheet1.xml", lose_rows_mid_cell);
    assert_int_equal(tly_xbook_cut_part(bad, rows, 1, what, sizeof what), 1);
    copy_editing(good, bad, "xl/worksheets/sheet1.xml", lose_rows_at_a_row);
    assert_int_equal(tly_xbook_cut_part(bad, rows, 1, what, sizeof what), 1);
    assert_string_equal(what, "xl/worksheets/sheet1.xml");
    assert_int_equal(tly_xbook_cut_part(bad, NULL, 0, what, sizeof what), 0);  /* rows not known */
    assert_int_equal(tly_xbook_cut_part("/nonexistent/book.xlsx", rows, 1, what, sizeof what), -1);
}

/* One sheet: text needing ST_Xstring escapes, then dates on both sides of 1900-03-01. */
static void write_escapes_and_dates(const char *path, const char *title)
{
    struct tly_xbook *b;
    struct tly_xsheet *s;
    static const char *const texts[] = {
        "Bot\xEF\xBF\xBF",                  /* U+FFFF: no XML 1.0 character */
        "\xEF\xBF\xBEx",                     /* U+FFFE */
        "_x0041_cme",                          /* Excel would show "Acme" */
        "x_x000D__x000a_y_x12_",               /* lower-case hex too; "_x12_" is no escape */
    };

    assert_int_equal(tly_xbook_open(path, title, 1790000000, root, 0, &b), TLY_OK);
    assert_non_null(s = tly_xbook_sheet(b, "Sheet"));
    for (uint32_t r = 0; r < 4; r++)
        tly_xsheet_text(s, r, 0, texts[r], strlen(texts[r]), TLY_XF_TEXT);
    tly_xsheet_date(s, 4, 0, tly_days_from_civil(1900, 3, 1));
    tly_xsheet_date(s, 5, 0, tly_days_from_civil(1900, 2, 28));
    tly_xsheet_instant(s, 6, 0, tly_days_from_civil(1899, 12, 31) * TLY_DAY_SECONDS + 3661);
    tly_xsheet_instant(s, 7, 0, tly_days_from_civil(1970, 1, 2) * TLY_DAY_SECONDS + 43200);
    assert_int_equal(tly_xbook_close(b), TLY_OK);
}

static void test_xsheet_text_escapes_what_xml_or_excel_would_misread(void **state)
{
    char path[96], *strings, *core;

    (void)state;
    snprintf(path, sizeof path, "%s/escapes.xlsx", root);
    write_escapes_and_dates(path, "Acme \xEF\xBF\xBE\xEF\xBF\xBF usage");
    strings = book_part(path, "xl/sharedStrings.xml");
    assert_null(strstr(strings, "\xEF\xBF\xBE"));
    assert_null(strstr(strings, "\xEF\xBF\xBF"));
    assert_non_null(strstr(strings, ">Bot_xFFFF_<"));
    assert_non_null(strstr(strings, ">_xFFFE_x<"));
    assert_non_null(strstr(strings, ">_x005F_x0041_cme<"));
    assert_non_null(strstr(strings, ">x_x005F_x000D__x005F_x000a_y_x12_<"));
    core = book_part(path, "docProps/core.xml");
    assert_non_null(strstr(core, "<dc:title>Acme \xEF\xBF\xBD\xEF\xBF\xBD usage</dc:title>"));
    free(strings);
    free(core);
}

static void test_xsheet_dates_excel_cannot_show_are_text(void **state)
{
    char path[96], *sheet, *strings;

    (void)state;
    snprintf(path, sizeof path, "%s/dates.xlsx", root);
    write_escapes_and_dates(path, "dates");
    sheet = book_part(path, "xl/worksheets/sheet1.xml");
    strings = book_part(path, "xl/sharedStrings.xml");
    /* 1900-03-01 is serial 61; 1970-01-02 12:00 is 25570.5 */
    assert_non_null(strstr(sheet, "<c r=\"A5\" s=\""));
    assert_non_null(strstr(sheet, "<v>61</v>"));
    assert_non_null(strstr(sheet, "<v>25570.5</v>"));
    /* before it, Excel's serials run a day late and then go negative */
    assert_non_null(strstr(strings, ">1900-02-28<"));
    assert_non_null(strstr(strings, ">1899-12-31T01:01:01Z<"));
    assert_null(strstr(sheet, "<v>60</v>"));
    assert_null(strstr(sheet, "<v>-"));
    free(sheet);
    free(strings);
}

/*
 * A cell holds at most 32,767 characters: a longer text (a rejected entry's
 * path) is cut at a character boundary and marked, not a failed book.
 * 'ä' is two bytes, one character; "_x0041_" is escaped to "_x005F_x0041_".
 */
static void test_xsheet_text_longer_than_a_cell_is_cut(void **state)
{
    size_t len = 40000 * 2 + 7, chars = 0;
    char path[96], *text = malloc(len), *strings, *cell, *end;
    struct tly_xbook *b;
    struct tly_xsheet *s;

    (void)state;
    assert_non_null(text);
    memcpy(text, "_x0041_", 7);
    for (size_t i = 7; i < len; i += 2)
        memcpy(text + i, "\xC3\xA4", 2);
    snprintf(path, sizeof path, "%s/long.xlsx", root);
    assert_int_equal(tly_xbook_open(path, "long", 1790000000, root, 0, &b), TLY_OK);
    assert_non_null(s = tly_xbook_sheet(b, "Sheet"));
    tly_xsheet_text(s, 0, 0, text, len, TLY_XF_TEXT);
    tly_xsheet_text(s, 1, 0, text + 7, 32767 * 2, TLY_XF_TEXT);        /* 32,767: whole */
    assert_int_equal(tly_xbook_close(b), TLY_OK);
    strings = book_part(path, "xl/sharedStrings.xml");
    assert_non_null(cell = strstr(strings, ">_x005F_x0041_\xC3\xA4"));
    assert_non_null(end = strstr(cell, "\xE2\x80\xA6<"));
    for (const char *p = cell + 1; p < end + 3; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    assert_int_equal(chars, 32767);
    assert_int_equal(end - cell - 1, 13 + (32766 - 13) * 2);
    assert_null(strstr(end + 3, "\xE2\x80\xA6"));          /* the second cell is whole */
    free(strings);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_xwriter_writes_the_bytes_of_a_direct_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_xwriter_reports_a_failed_book_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stderr_mute_keeps_tally_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xwriter_out_of_memory_is_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xbook_cut_part_finds_a_sheet_cut_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xsheet_text_escapes_what_xml_or_excel_would_misread,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_xsheet_text_longer_than_a_cell_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xsheet_dates_excel_cannot_show_are_text, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
