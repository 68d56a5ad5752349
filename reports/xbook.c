/*
 * xbook.c — workbook, styles, fitted columns and error capture over
 * libxlsxwriter (outputs.md "Workbooks").
 */
#include "xbook.h"
#include "alloc.h"
#include "error.h"
#include "ring.h"
#include "timeutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XLSX_EPOCH_DAY 25569        /* Excel serial of 1970-01-01 */
#define WIDTH_MIN 6.0
#define WIDTH_MAX 60.0

/* ------------------------------------------------------------------------
 * Styles
 * ------------------------------------------------------------------------ */

/* One row per style: what a finance user sees (outputs.md "Workbooks"). */
static const struct {
    const char *num_format;
    unsigned bold : 1, italic : 1, top : 1, bottom : 1, wrap : 1, center : 1, right : 1;
    unsigned indent : 1;            /* text keeps a space from the number left of it */
    uint16_t size;
    lxw_color_t fg, bg;             /* 0 = default */
} styles[TLY_XF_MAX] = {
    /*                        format                 b  i  t  b  w  c  r  in size font      fill */
    [TLY_XF_TEXT]           = { NULL,                  0, 0, 0, 0, 0, 0, 0,  1, 0,  0,        0 },
    [TLY_XF_TITLE]          = { NULL,                  1, 0, 0, 0, 0, 0, 0,  0, 14, 0x1F3864, 0 },
    [TLY_XF_NOTE]           = { NULL,                  0, 1, 0, 0, 0, 0, 0,  0, 0,  0x595959, 0 },
    [TLY_XF_LABEL]          = { NULL,                  1, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_HEADER]         = { NULL,                  1, 0, 0, 1, 1, 0, 0,  1, 0,  0,        0xD9E1F2 },
    [TLY_XF_HEADER_NUM]     = { NULL,                  1, 0, 0, 1, 1, 0, 1,  0, 0,  0,        0xD9E1F2 },
    [TLY_XF_INT]            = { "#,##0",               0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_NUMBER]         = { "General",             0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_CREDITS]        = { "#,##0.00",            0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_PCT]            = { "0.00%",               0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_DATE]           = { "yyyy-mm-dd",          0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_TS]             = { "yyyy-mm-dd hh:mm:ss", 0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_DURATION]       = { "[h]:mm",              0, 0, 0, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_TOTAL_LABEL]    = { NULL,                  1, 0, 1, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_TOTAL_INT]      = { "#,##0",               1, 0, 1, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_TOTAL_CREDITS]  = { "#,##0.00",            1, 0, 1, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_TOTAL_DURATION] = { "[h]:mm",              1, 0, 1, 0, 0, 0, 0,  0, 0,  0,        0 },
    [TLY_XF_GREEN]          = { NULL,                  1, 0, 0, 0, 0, 1, 0,  0, 0,  0x006100, 0xC6EFCE },
    [TLY_XF_YELLOW]         = { NULL,                  1, 0, 0, 0, 0, 1, 0,  0, 0,  0x9C5700, 0xFFEB9C },
    [TLY_XF_RED]            = { NULL,                  1, 0, 0, 0, 0, 1, 0,  0, 0,  0x9C0006, 0xFFC7CE },
    [TLY_XF_EXHAUSTED]      = { NULL,                  1, 0, 0, 0, 0, 1, 0,  0, 0,  0x404040, 0xD9D9D9 },
};

static int add_styles(struct tly_xbook *b)
{
    for (int i = 0; i < TLY_XF_MAX; i++) {
        lxw_format *f;
        if (!(f = workbook_add_format(b->wb)))
            return -1;
        if (styles[i].num_format)
            format_set_num_format(f, styles[i].num_format);
        if (styles[i].bold)
            format_set_bold(f);
        if (styles[i].italic)
            format_set_italic(f);
        if (styles[i].top)
            format_set_top(f, LXW_BORDER_THIN);
        if (styles[i].bottom)
            format_set_bottom(f, LXW_BORDER_THIN);
        if (styles[i].wrap) {
            format_set_text_wrap(f);
            format_set_align(f, LXW_ALIGN_VERTICAL_TOP);
        }
        if (styles[i].center)
            format_set_align(f, LXW_ALIGN_CENTER);
        if (styles[i].right)
            format_set_align(f, LXW_ALIGN_RIGHT);
        if (styles[i].indent) {
            format_set_align(f, LXW_ALIGN_LEFT);
            format_set_indent(f, 1);
        }
        if (styles[i].size)
            format_set_font_size(f, styles[i].size);
        if (styles[i].fg)
            format_set_font_color(f, styles[i].fg);
        if (styles[i].bg)
            format_set_bg_color(f, styles[i].bg);
        b->fmt[i] = f;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Workbook
 * ------------------------------------------------------------------------ */

void tly_xbook_check(struct tly_xbook *b, lxw_error err)
{
    if (err != LXW_NO_ERROR && b->err == LXW_NO_ERROR)
        b->err = err;
}

/* U+FFFE or U+FFFF (EF BF BE/BF) starts at u: UTF-8 that XML 1.0 does not allow. */
static int xml_nonchar(const unsigned char *u, size_t left)
{
    return left >= 3 && u[0] == 0xEF && u[1] == 0xBF && (u[2] == 0xBE || u[2] == 0xBF);
}

/*
 * The title goes into docProps/core.xml, plain XML: U+FFFE and U+FFFF
 * become U+FFFD there (same length).
 */
static void title_sanitize(char *t)
{
    size_t n = strlen(t);

    for (size_t i = 0; i < n; i++)
        if (xml_nonchar((unsigned char *)t + i, n - i))
            t[i + 2] = (char)0xBD;
}

int tly_xbook_open(const char *path, const char *title, int64_t created, const char *tmpdir,
                   int streamed, struct tly_xbook **out)
{
    lxw_workbook_options opt = { 0 };
    lxw_doc_properties props = { 0 };
    struct tly_xbook *b;
    char *safe_title;

    *out = NULL;
    if (!(b = tly_calloc(1, sizeof *b)) || !(b->path = tly_strdup(path))) {
        tly_free(b);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    /* a usage.xlsx writes its metrics above its tables, after them: in memory */
    opt.constant_memory = streamed ? LXW_TRUE : LXW_FALSE;
    opt.tmpdir = (char *)tmpdir;
    if (!(b->wb = workbook_new_opt(path, &opt)) || add_styles(b)) {
        tly_xbook_abort(b);
        return tly_error(TLY_ERR_NOMEM, "cannot start '%s': out of memory", path);
    }
    if (!(safe_title = tly_strdup(title))) {
        tly_xbook_abort(b);
        return tly_error(TLY_ERR_NOMEM, "cannot start '%s': out of memory", path);
    }
    title_sanitize(safe_title);
    props.title = safe_title;
    props.author = "Tally";
    props.company = "Tally usage billing";
    /* a created time of 0 means "now" to libxlsxwriter: keep it fixed */
    props.created = (time_t)(created != 0 ? created : 1);
    /* libxlsxwriter copies the properties' strings */
    tly_xbook_check(b, workbook_set_properties(b->wb, &props));
    tly_free(safe_title);
    *out = b;
    return TLY_OK;
}

static void free_sheets(struct tly_xbook *b)
{
    for (size_t i = 0; i < b->nsheets; i++) {
        tly_free(b->sheets[i]->name);
        tly_free(b->sheets[i]->width);
        tly_free(b->sheets[i]);
    }
    tly_free(b->sheets);
}

void tly_xbook_abort(struct tly_xbook *b)
{
    if (!b)
        return;
    lxw_workbook_free(b->wb);       /* frees without writing a file */
    free_sheets(b);
    tly_free(b->path);
    tly_free(b);
}

static void fit_columns(struct tly_xsheet *s)
{
    for (int c = 0; c < s->nwidth; c++) {
        double w = s->width[c] + 2;
        if (s->width[c] == 0)
            continue;
        w = w < WIDTH_MIN ? WIDTH_MIN : w > WIDTH_MAX ? WIDTH_MAX : w;
        tly_xbook_check(s->book, worksheet_set_column(s->ws, (lxw_col_t)c, (lxw_col_t)c, w, NULL));
    }
}

/*
 * The read-back's scan of one XML part: elements must nest (every end tag
 * closes one opened, and all are closed at the end), and in a sheet the
 * last <row r="N"> must reach the rows written.  libxlsxwriter's XML is
 * regular: no comments or CDATA, '<' and '>' escaped in text and
 * attributes, and a row's r attribute first.
 */
enum scan_state { IN_TEXT, TAG_START, IN_OPEN, IN_CLOSE, IN_DECL };

struct part_scan {
    enum scan_state state;
    long depth, elements;
    int unbalanced;
    char prev;                  /* the char before, inside a tag */
    char tag[16];               /* an opening tag's first bytes: "row r=\"984\"" */
    size_t ntag;
    uint32_t last_row;          /* the last row's r, 1-based (0: none) */
};

static void end_open_tag(struct part_scan *p)
{
    p->tag[p->ntag] = '\0';
    if (!strncmp(p->tag, "row r=\"", 7))
        p->last_row = (uint32_t)strtoul(p->tag + 7, NULL, 10);
    if (p->prev == '/')
        p->depth--;             /* <x .../> opens and closes */
}

/* The scan over the next n bytes; memchr() between the '<' and '>' (most of a part is cells). */
static void scan_bytes(struct part_scan *p, const char *buf, size_t n)
{
    const char *c = buf, *end = buf + n, *gt, *stop;
    size_t take;

    while (c < end) {
        switch (p->state) {
        case IN_TEXT:
            if (!(c = memchr(c, '<', (size_t)(end - c))))
                return;
            c++;
            p->state = TAG_START;
            break;
        case TAG_START:
            if (*c == '/') {
                p->state = IN_CLOSE;
            } else if (*c == '?' || *c == '!') {
                p->state = IN_DECL;
            } else {
                p->state = IN_OPEN;
                p->depth++;
                p->elements++;
                p->tag[0] = *c;
                p->ntag = 1;
            }
            p->prev = *c++;
            break;
        case IN_OPEN:
            gt = memchr(c, '>', (size_t)(end - c));
            stop = gt ? gt : end;
            take = (size_t)(stop - c) < sizeof p->tag - 1 - p->ntag ? (size_t)(stop - c)
                                                                   : sizeof p->tag - 1 - p->ntag;
            memcpy(p->tag + p->ntag, c, take);
            p->ntag += take;
            if (stop > c)
                p->prev = stop[-1];
            if (!gt)
                return;
            end_open_tag(p);
            p->state = IN_TEXT;
            c = gt + 1;
            break;
        case IN_CLOSE:
        case IN_DECL:
            if (!(gt = memchr(c, '>', (size_t)(end - c))))
                return;
            if (p->state == IN_CLOSE && --p->depth < 0)
                p->unbalanced = 1;
            p->state = IN_TEXT;
            c = gt + 1;
            break;
        }
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The rows sheet part 'name' must reach: "xl/worksheets/sheetN.xml" is the Nth sheet added. */
static uint32_t rows_wanted(const char *name, const uint32_t *rows, size_t nsheets)
{
    unsigned long n;
    char *end;

    if (strncmp(name, "xl/worksheets/sheet", 19))
        return 0;
    n = strtoul(name + 19, &end, 10);
    return strcmp(end, ".xml") || n == 0 || n > nsheets ? 0 : rows[n - 1];
}

/* Reads one part: 0 whole, 1 cut short, -1 unreadable (why in 'why'). */
static int check_part(struct archive *a, const char *name, uint32_t rows, char *why, size_t cap)
{
    struct part_scan p = { .state = IN_TEXT };
    char buf[16384];
    la_ssize_t n;

    while ((n = archive_read_data(a, buf, sizeof buf)) > 0)
        scan_bytes(&p, buf, (size_t)n);
    if (n < 0) {
        snprintf(why, cap, "%s: %s", name, archive_error_string(a) ? archive_error_string(a) : "?");
        return -1;
    }
    return p.unbalanced || p.depth != 0 || p.elements == 0 || p.state != IN_TEXT ||
           p.last_row < rows;
}

int tly_xbook_cut_part(const char *path, const uint32_t *rows, size_t nsheets, char *what,
                       size_t cap)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int rc = ARCHIVE_FATAL, found = 0;

    what[0] = '\0';
    if (!a) {
        snprintf(what, cap, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    if (archive_read_support_format_zip(a) == ARCHIVE_OK &&
        archive_read_open_filename(a, path, 65536) == ARCHIVE_OK)
        while (!found && (rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
            const char *name = archive_entry_pathname(e);
            if (name && (ends_with(name, ".xml") || ends_with(name, ".rels")) &&
                (found = check_part(a, name, rows_wanted(name, rows, nsheets), what, cap)) > 0)
                snprintf(what, cap, "%s", name);
        }
    if (!found && rc != ARCHIVE_EOF) {
        snprintf(what, cap, "%s", archive_error_string(a) ? archive_error_string(a) : "not a zip file");
        found = -1;
    }
    if (found < 0)
        errno = archive_errno(a) > 0 ? archive_errno(a) : EIO;
    archive_read_free(a);
    return found;
}

/*
 * workbook_close() with the library's own stderr lines held back (error.h
 * "Muting").  Sets b->closed and b->close_errno (errno as the failing
 * write left it, 0 when the close succeeded), then reads the file back.
 */
static void close_quietly(struct tly_xbook *b)
{
    uint32_t rows[64] = { 0 }, *want = rows;

    tly_stderr_mute();
    errno = 0;
    b->closed = workbook_close(b->wb);      /* writes the file and frees the workbook */
    b->wb = NULL;
    b->close_errno = b->closed != LXW_NO_ERROR ? errno : 0;
    tly_stderr_unmute();
    if (b->closed != LXW_NO_ERROR)
        return;
    /* malloc, not tly_malloc: this may run on the writer thread (no messages there) */
    if (b->nsheets > sizeof rows / sizeof rows[0] && !(want = malloc(b->nsheets * sizeof *want))) {
        b->readback = -1;
        b->readback_errno = ENOMEM;
        snprintf(b->readback_what, sizeof b->readback_what, "out of memory");
        return;
    }
    for (size_t i = 0; i < b->nsheets; i++)
        want[i] = b->sheets[i]->rows;
    b->readback = tly_xbook_cut_part(b->path, want, b->nsheets, b->readback_what,
                                     sizeof b->readback_what);
    b->readback_errno = b->readback < 0 ? errno : 0;
    if (want != rows)
        free(want);
}

/* Fits the columns; the failure the cell writers met, reported, or TLY_OK. */
static int finish_sheets(struct tly_xbook *b)
{
    for (size_t i = 0; i < b->nsheets; i++)
        fit_columns(b->sheets[i]);
    if (b->nomem)
        return tly_error(TLY_ERR_NOMEM, "cannot write '%s': out of memory", b->path);
    if (b->err != LXW_NO_ERROR)
        return tly_error(b->err == LXW_ERROR_MEMORY_MALLOC_FAILED ? TLY_ERR_NOMEM : TLY_ERR_OUTPUT,
                         "cannot write '%s': %s", b->path, lxw_strerror(b->err));
    return TLY_OK;
}

/* What close_quietly() met, reported when 'report' (else only returned); frees b. */
static int closed_result(struct tly_xbook *b, int report)
{
    int rc;

    if (b->closed == LXW_NO_ERROR && b->readback == 0)
        rc = TLY_OK;
    else if (b->closed == LXW_NO_ERROR && b->readback > 0)
        rc = !report ? TLY_ERR_OUTPUT
                     : tly_error(TLY_ERR_OUTPUT, "cannot write '%s': its part %s came out cut short"
                                 " (is the scratch directory, report.scratch_dir, full?)", b->path,
                                 b->readback_what);
    else if (b->closed == LXW_NO_ERROR && !report)
        rc = b->readback_errno == ENOMEM ? TLY_ERR_NOMEM : TLY_ERR_IO;
    else if (b->closed == LXW_NO_ERROR)
        rc = tly_error(b->readback_errno == ENOMEM ? TLY_ERR_NOMEM : TLY_ERR_IO,
                       "cannot read '%s' back: %s", b->path, b->readback_what);
    else if (!report)
        rc = b->closed == LXW_ERROR_MEMORY_MALLOC_FAILED ? TLY_ERR_NOMEM : TLY_ERR_OUTPUT;
    else if (b->close_errno && b->closed != LXW_ERROR_MEMORY_MALLOC_FAILED)
        /* a full disk shows as a zip error: name the system's reason instead */
        rc = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", b->path, strerror(b->close_errno));
    else
        rc = tly_error(b->closed == LXW_ERROR_MEMORY_MALLOC_FAILED ? TLY_ERR_NOMEM : TLY_ERR_OUTPUT,
                       "cannot write '%s': %s", b->path, lxw_strerror(b->closed));
    tly_xbook_abort(b);
    return rc;
}

int tly_xbook_close(struct tly_xbook *b)
{
    int rc = finish_sheets(b);

    if (rc) {
        tly_xbook_abort(b);
        return rc;
    }
    close_quietly(b);
    return closed_result(b, 1);
}

/* ------------------------------------------------------------------------
 * The writer thread
 * ------------------------------------------------------------------------ */

/*
 * One thread with two slots: one book being written while the next is
 * built.  One thread, not two: workbook_close() calls gmtime(), whose
 * result is one static struct for the whole process, so two books must
 * never be written at once (and a second writer gained little: building
 * the books is most of what is left).  A slot keeps its book after the
 * thread has written it, until the caller needs the slot again (or
 * finishes): the caller then reports the result and frees the book, so
 * every message and every tly_free happens on its thread.
 */
#define WRITER_SLOTS 2

struct tly_xwriter {
    struct tly_ring ring;           /* the caller fills slots, the thread writes them */
    struct tly_xbook *slot[WRITER_SLOTS];
    int failed;                     /* a failure was reported: later ones are not */
};

static void *write_books(void *arg)
{
    struct tly_xwriter *w = arg;
    int i;

    while ((i = tly_ring_next_slot(&w->ring)) >= 0) {
        close_quietly(w->slot[i]);
        tly_ring_give_back(&w->ring);
    }
    return NULL;
}

int tly_xwriter_create(struct tly_xwriter **out)
{
    struct tly_xwriter *w = tly_calloc(1, sizeof *w);

    *out = NULL;
    if (!w)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    tly_ring_start(&w->ring, WRITER_SLOTS, write_books, w);
    *out = w;
    return TLY_OK;
}

/* The written book in slot i, if any: its result (reported until one failed), freed. */
static int collect(struct tly_xwriter *w, int i)
{
    int rc;

    if (!w->slot[i])
        return TLY_OK;
    rc = closed_result(w->slot[i], !w->failed);
    w->slot[i] = NULL;
    return rc;
}

int tly_xwriter_close(struct tly_xwriter *w, struct tly_xbook *b)
{
    int rc = finish_sheets(b), i;

    if (rc) {
        tly_xbook_abort(b);
    } else if (!w->ring.threaded) {
        close_quietly(b);
        rc = closed_result(b, 1);
    } else {
        i = tly_ring_free_slot(&w->ring);       /* the thread stops only in finish */
        rc = collect(w, i);
        w->slot[i] = b;
        tly_ring_publish(&w->ring);
    }
    if (rc)
        w->failed = 1;
    return rc;
}

int tly_xwriter_finish(struct tly_xwriter *w)
{
    int rc = TLY_OK, err;

    if (!w)
        return TLY_OK;
    tly_ring_stop(&w->ring);                /* every book handed over is written */
    /* oldest first: the slot the next hand-over would have filled */
    for (unsigned k = 0; k < WRITER_SLOTS; k++)
        if ((err = collect(w, (int)((w->ring.fill_at + k) % WRITER_SLOTS))) && !rc) {
            rc = err;
            w->failed = 1;
        }
    tly_free(w);
    return rc;
}

void tly_xwriter_abort(struct tly_xwriter *w)
{
    if (w) {
        w->failed = 1;              /* the caller has reported its own failure */
        tly_xwriter_finish(w);
    }
}

struct tly_xsheet *tly_xbook_sheet(struct tly_xbook *b, const char *name)
{
    struct tly_xsheet *s;

    if (tly_grow(&b->sheets, &b->cap, b->nsheets + 1, sizeof *b->sheets) ||
        !(s = tly_calloc(1, sizeof *s))) {
        b->nomem = 1;
        return NULL;
    }
    if (!(s->name = tly_strdup(name))) {
        tly_free(s);
        b->nomem = 1;
        return NULL;
    }
    s->book = b;
    b->sheets[b->nsheets++] = s;
    if (!(s->ws = workbook_add_worksheet(b->wb, name))) {
        tly_xbook_check(b, LXW_ERROR_PARAMETER_VALIDATION);
        return NULL;
    }
    /* printable as finished pages: landscape, one page wide */
    worksheet_set_landscape(s->ws);
    worksheet_set_paper(s->ws, 9);          /* A4 */
    worksheet_fit_to_pages(s->ws, 1, 0);
    return s;
}

lxw_chart *tly_xbook_chart(struct tly_xbook *b, uint8_t type)
{
    lxw_chart *c = workbook_add_chart(b->wb, type);
    if (!c)
        tly_xbook_check(b, LXW_ERROR_MEMORY_MALLOC_FAILED);
    return c;
}

void tly_xsheet_chart(struct tly_xsheet *s, uint32_t row, uint16_t col, lxw_chart *chart,
                      double x_scale, double y_scale)
{
    lxw_chart_options o = { 0 };
    o.x_scale = x_scale;
    o.y_scale = y_scale;
    o.x_offset = 4;
    o.y_offset = 4;
    tly_xbook_check(s->book, worksheet_insert_chart_opt(s->ws, row, col, chart, &o));
}

/* ------------------------------------------------------------------------
 * Cells
 * ------------------------------------------------------------------------ */

/* The rows a sheet has cells in, for the read-back (close_quietly). */
static void note_row(struct tly_xsheet *s, uint32_t row)
{
    if (row >= s->rows)
        s->rows = row + 1;
}

static void track(struct tly_xsheet *s, uint16_t col, double chars)
{
    if (col >= s->nwidth) {
        size_t cap = (size_t)s->nwidth;
        double *w = s->width;
        if (tly_grow(&w, &cap, (size_t)col + 1, sizeof *w)) {
            s->book->nomem = 1;
            return;
        }
        memset(w + s->nwidth, 0, (cap - (size_t)s->nwidth) * sizeof *w);
        s->width = w;
        s->nwidth = (int)cap;
    }
    if (chars > s->width[col])
        s->width[col] = chars;
}

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static double text_width(const char *t, size_t len)
{
    double n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)t[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* The width of a number as its style shows it. */
static double number_width(double v, enum tly_xfmt f)
{
    char buf[64];
    int n, digits;

    switch (f) {
    case TLY_XF_DATE:
        return 10;
    case TLY_XF_TS:
        return 19;
    case TLY_XF_PCT:
        return snprintf(buf, sizeof buf, "%.2f%%", v * 100);
    case TLY_XF_NUMBER:
        return snprintf(buf, sizeof buf, "%.10g", v);
    case TLY_XF_DURATION:
    case TLY_XF_TOTAL_DURATION:
        return snprintf(buf, sizeof buf, "%.0f", floor(fabs(v) * 24)) + 3;
    case TLY_XF_CREDITS:
    case TLY_XF_TOTAL_CREDITS:
        n = snprintf(buf, sizeof buf, "%.2f", v);
        digits = n - 3 - (v < 0);
        return n + (digits - 1) / 3;
    default:
        n = snprintf(buf, sizeof buf, "%.0f", v);
        digits = n - (v < 0);
        return n + (digits - 1) / 3;
    }
}

static int fitted(enum tly_xfmt f)
{
    return f != TLY_XF_TITLE && f != TLY_XF_NOTE;
}

/*
 * A sheet's text is an ST_Xstring: "_xHHHH_" in it stands for U+HHHH, and
 * XML 1.0 allows neither U+FFFE nor U+FFFF, which the bundle's free text may
 * hold (inputs.md excludes only control characters).  So a literal "_xHHHH_"
 * gets its underscore escaped ("_x005F_"), and those two characters are
 * written as escapes: the cell shows the CSV's text exactly.
 * xstring_escape() writes the escaped text and its NUL to out, or with out
 * NULL only measures it; it returns the length without the NUL.
 *
 * A cell holds at most 32,767 characters (libxlsxwriter refuses more, and
 * one refused cell fails the book).  Only a rejected entry's path inside an
 * archive can be that long (zip allows 65,535 bytes), and it is kept in the
 * ledger for good, so failing would fail every later report: the cell is
 * cut at a character boundary and ends with "…"; rejects.csv has it whole.
 */
#define XLSX_CELL_CHARS 32767
#define XLSX_CUT_MARK "\xE2\x80\xA6"
static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static const char *xstring_escape_at(const char *t, size_t left, size_t *used)
{
    const unsigned char *u = (const unsigned char *)t;

    if (left >= 7 && t[0] == '_' && t[1] == 'x' && is_hex(t[2]) && is_hex(t[3]) &&
        is_hex(t[4]) && is_hex(t[5]) && t[6] == '_') {
        *used = 1;
        return "_x005F_";
    }
    if (xml_nonchar(u, left)) {
        *used = 3;
        return u[2] == 0xBE ? "_xFFFE_" : "_xFFFF_";
    }
    return NULL;
}

/* The piece of escaped text at text[i]: its bytes, their length, its characters. */
static size_t xstring_piece(const char *text, size_t i, size_t len, const char **piece,
                            size_t *piece_len, size_t *piece_chars)
{
    size_t used;

    if ((*piece = xstring_escape_at(text + i, len - i, &used))) {
        *piece_len = *piece_chars = 7;
        return used;
    }
    *piece = text + i;
    *piece_len = 1;
    *piece_chars = ((unsigned char)text[i] & 0xC0) != 0x80;    /* a UTF-8 lead byte */
    return 1;
}

static size_t xstring_escape(const char *text, size_t len, char *out)
{
    size_t n = 0, chars = 0, piece_len, piece_chars;
    const char *piece;
    int cut;

    for (size_t i = 0; i < len; chars += piece_chars)
        i += xstring_piece(text, i, len, &piece, &piece_len, &piece_chars);
    cut = chars > XLSX_CELL_CHARS;
    chars = 0;
    for (size_t i = 0, used; i < len; i += used) {
        used = xstring_piece(text, i, len, &piece, &piece_len, &piece_chars);
        if (cut && chars + piece_chars > XLSX_CELL_CHARS - 1) {
            piece = XLSX_CUT_MARK;
            piece_len = strlen(XLSX_CUT_MARK);
            len = i;                /* the last piece */
        }
        if (out)
            memcpy(out + n, piece, piece_len);
        n += piece_len;
        chars += piece_chars;
    }
    if (out)
        out[n] = '\0';
    return n;
}

void tly_xsheet_text(struct tly_xsheet *s, uint32_t row, uint16_t col, const char *text,
                     size_t len, enum tly_xfmt f)
{
    char small[256], *buf = small;
    size_t room;

    if (!s)
        return;
    /* libxlsxwriter wants a NUL-terminated string */
    room = xstring_escape(text, len, NULL) + 1;
    if (room > sizeof small && !(buf = tly_malloc(room))) {
        s->book->nomem = 1;
        return;
    }
    xstring_escape(text, len, buf);
    note_row(s, row);
    tly_xbook_check(s->book, worksheet_write_string(s->ws, row, col, buf, s->book->fmt[f]));
    if (buf != small)
        tly_free(buf);
    if (fitted(f))
        track(s, col, text_width(text, len) * (f == TLY_XF_TEXT ? 1 : 1.1) + styles[f].indent * 2);
}

void tly_xsheet_number(struct tly_xsheet *s, uint32_t row, uint16_t col, double v,
                       enum tly_xfmt f)
{
    if (!s)
        return;
    note_row(s, row);
    tly_xbook_check(s->book, worksheet_write_number(s->ws, row, col, v, s->book->fmt[f]));
    track(s, col, number_width(v, f));
}

void tly_xsheet_formula(struct tly_xsheet *s, uint32_t row, uint16_t col, const char *formula,
                        double value, enum tly_xfmt f)
{
    if (!s)
        return;
    note_row(s, row);
    tly_xbook_check(s->book, worksheet_write_formula_num(s->ws, row, col, formula,
                                                         s->book->fmt[f], value));
    track(s, col, number_width(value, f));
}

void tly_xsheet_blank(struct tly_xsheet *s, uint32_t row, uint16_t col, enum tly_xfmt f)
{
    if (!s)
        return;
    note_row(s, row);
    tly_xbook_check(s->book, worksheet_write_blank(s->ws, row, col, s->book->fmt[f]));
}

void tly_xsheet_table_frame(struct tly_xsheet *s, uint32_t header_row, uint32_t last_row,
                            uint16_t ncols)
{
    if (!s || ncols == 0)
        return;
    worksheet_freeze_panes(s->ws, header_row + 1, 0);
    tly_xbook_check(s->book, worksheet_autofilter(s->ws, header_row, 0,
                                                  last_row < header_row ? header_row : last_row,
                                                  (lxw_col_t)(ncols - 1)));
    /* printed pages repeat the header row */
    tly_xbook_check(s->book, worksheet_repeat_rows(s->ws, header_row, header_row));
}

#define XLSX_FIRST_DAY (-25508)     /* 1900-03-01, serial 61 */

void tly_xsheet_date(struct tly_xsheet *s, uint32_t row, uint16_t col, int64_t day)
{
    char text[TLY_DATE_LEN];

    if (day >= XLSX_FIRST_DAY) {
        tly_xsheet_number(s, row, col, (double)(day + XLSX_EPOCH_DAY), TLY_XF_DATE);
        return;
    }
    tly_format_date(text, day);
    tly_xsheet_text(s, row, col, text, strlen(text), TLY_XF_TEXT);
}

void tly_xsheet_instant(struct tly_xsheet *s, uint32_t row, uint16_t col, int64_t ts)
{
    int64_t day = tly_day_of(ts);
    char text[TLY_TS_LEN];

    if (day >= XLSX_FIRST_DAY) {
        /* whole days exactly, then the second of the day as a fraction */
        tly_xsheet_number(s, row, col, (double)(day + XLSX_EPOCH_DAY) +
                          (double)(ts - day * TLY_DAY_SECONDS) / TLY_DAY_SECONDS, TLY_XF_TS);
        return;
    }
    tly_format_ts(text, ts);
    tly_xsheet_text(s, row, col, text, strlen(text), TLY_XF_TEXT);
}
