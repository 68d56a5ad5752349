/*
 * csvread.c — strict, streaming CSV on top of libcsv (see csvread.h).
 *
 * How the pieces fit:
 *   - The input is read into one buffer.  Lines are cut with memchr and fed
 *     to libcsv one physical line at a time; a row that spans lines (quoted
 *     line breaks) stays contiguous in the buffer from its first byte, so its
 *     raw text is a pointer, not a copy.  The buffer only grows while one row
 *     is longer than it, up to the row cap.
 *   - libcsv calls field_cb for every field and row_cb at a row end.  The
 *     fields the caller wants are copied into a reused arena; the others are
 *     only counted.
 *   - A CR right before LF is cut before feeding (CRLF files); a CR anywhere
 *     else, or a tab, is rare, and only for lines holding one do we switch
 *     libcsv's terminator test to "LF only" and its space test to "space
 *     only" (the default tests cost nothing; custom ones cost a call per byte).
 *     So a bare CR is data (then refused by the column rules), and a tab at
 *     the edge of an unquoted cell is kept (inputs.md trims spaces).
 *   - One pass over each line collects "has a control byte" and "has a byte
 *     >= 0x80"; only rows with those pay for the NUL and UTF-8 checks.
 *   - A row longer than the row cap cannot be held.  It is walked without
 *     libcsv, tracking only quote parity (in strict CSV a row continues past
 *     a line end exactly when it has an odd number of quotes so far), and
 *     rejected as field_too_long: some field of it must be over the limit.
 *     At the end of the input with odd parity it is an unterminated quote.
 */
#include "csvread.h"
#include "alloc.h"
#include "error.h"

#include <csv.h>
#include <string.h>

#define READ_CHUNK   (1u << 20)          /* bytes asked of the read function */
#define HEADER_CAP   TLY_CSV_HEADER_MAX  /* a header longer than this is unusable */
#define ROW_CAP_MAX  (16u << 20)         /* keeps peak memory small whatever the input */
#define WARNED_COLUMNS 16                /* unknown columns named one by one */
#define NO_FIELD     ((size_t)-1)

#define SCAN_CTRL 1u                     /* a byte < 0x20 */
#define SCAN_HIGH 2u                     /* a byte >= 0x80 */

enum state { READING, DRAINING, DONE };

struct tly_csv {
    tly_csv_read_fn read;
    void *ctx;
    size_t max_field;
    struct csv_parser p;
    int parser_live;

    /* input buffer: [pos, end) unread; a pending row starts at row_start */
    char *buf;
    size_t cap, pos, end, scan;
    int eof, failed, nomem, at_start;
    enum state state;

    long line;                  /* physical lines consumed */
    long rows;                  /* data rows */
    int drain_mid_line;         /* draining starts inside the broken row's last line */
    size_t row_cap;

    /* the row being built */
    int pending;
    size_t row_start;
    long row_line;
    unsigned row_flags;
    int nfields, row_done, too_long, bad_field;
    char *arena;
    size_t arena_len, arena_cap;

    /* header mode: every field is kept (names) */
    int header_mode;
    size_t *hoff;               /* header name offsets in the arena, then in hnames */
    size_t hcap;
    int nhdr;                   /* names kept */

    /* the column map, after the header */
    int ncols_file;             /* fields in the header */
    int *map;                   /* file position -> caller column, or -1 */
    const char *const *columns; /* the caller's column names (borrowed) */
    int ncolumns;               /* caller's */
    size_t *voff, *vlen;        /* per caller column; voff NO_FIELD = absent */
    const char **val;
    size_t *len;
    int *present;               /* per caller column: in the header */
    char *hnames;               /* header names, NUL-terminated, at hoff[] */
    int *unknown;               /* header positions of unknown names */
    int nunknown;

    char *side;                 /* raw text of a row longer than the cap */
    size_t side_len;
};

/* ------------------------------------------------------------------ */
/* UTF-8 and the byte scan                                             */

int tly_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80)
                return 0;
            i += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (i + 2 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80)
                return 0;
            if ((c == 0xe0 && s[i + 1] < 0xa0) ||     /* overlong */
                (c == 0xed && s[i + 1] > 0x9f))       /* surrogate */
                return 0;
            i += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (i + 3 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 ||
                (s[i + 3] & 0xc0) != 0x80)
                return 0;
            if ((c == 0xf0 && s[i + 1] < 0x90) ||     /* overlong */
                (c == 0xf4 && s[i + 1] > 0x8f))       /* > U+10FFFF */
                return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

size_t tly_utf8_printable(const char *str, size_t n)
{
    const unsigned char *u = (const unsigned char *)str;
    unsigned char c = n ? u[0] : 0;
    size_t len;

    if (!n)
        return 0;
    if (c < 0x80)
        return (c >= 0x20 && c < 0x7f) || c == '\t';
    len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (len > n || !tly_utf8_valid(str, len))
        return 0;
    return c == 0xc2 && u[1] < 0xa0 ? 0 : len;     /* U+0080-U+009F: C1 controls */
}

size_t tly_utf8_shown(const char *s, size_t n, char *out, size_t cap, size_t *used)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, i = 0;

    while (i < n) {
        size_t len = tly_utf8_printable(s + i, n - i);
        unsigned char c = (unsigned char)s[i];

        if (o + (len ? len : 4) >= cap)
            break;
        if (len) {
            memcpy(out + o, s + i, len);
            o += len, i += len;
        } else {
            out[o++] = '\\', out[o++] = 'x', out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
            i++;
        }
    }
    out[o] = '\0';
    *used = i;
    return o;
}

/* SCAN_CTRL / SCAN_HIGH for [s, s+n), eight bytes at a time. */
static unsigned scan_bytes(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t hi = 0, ctrl = 0;
    size_t i = 0;
    unsigned flags = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        hi |= w;
        ctrl |= (w - ones * 0x20) & ~w;  /* "has a byte < 0x20" (hasless) */
    }
    if (hi & highs)
        flags |= SCAN_HIGH;
    if (ctrl & highs)
        flags |= SCAN_CTRL;
    for (; i < n; i++) {
        if (s[i] >= 0x80)
            flags |= SCAN_HIGH;
        else if (s[i] < 0x20)
            flags |= SCAN_CTRL;
    }
    return flags;
}

/* ------------------------------------------------------------------ */
/* libcsv glue                                                         */

static int term_lf_only(unsigned char c) { return c == '\n'; }
static int space_only(unsigned char c) { return c == ' '; }

static int parser_start(struct tly_csv *r)
{
    if (r->parser_live)
        csv_free(&r->p);
    /* STRICT: a stray quote is CSV_EPARSE; the end of input is handled here */
    if (csv_init(&r->p, CSV_STRICT) != 0)
        return -1;
    csv_set_realloc_func(&r->p, tly_realloc);
    csv_set_free_func(&r->p, tly_free);
    csv_set_blk_size(&r->p, 64 * 1024);   /* libcsv grows linearly by this */
    r->parser_live = 1;
    return 0;
}

static int arena_put(struct tly_csv *r, const void *s, size_t n, size_t *off)
{
    if (tly_grow(&r->arena, &r->arena_cap, r->arena_len + n + 1, 1)) {
        r->nomem = 1;
        return -1;
    }
    memcpy(r->arena + r->arena_len, s, n);
    *off = r->arena_len;
    r->arena_len += n;
    return 0;
}

static void field_cb(void *field, size_t n, void *data)
{
    struct tly_csv *r = data;
    int j = r->nfields++;
    size_t off;

    if (n > r->max_field) {
        if (!r->too_long) {
            r->too_long = 1;
            r->bad_field = j;
        }
        return;
    }
    if (r->header_mode) {
        /* every name is kept: a required column may come after any number of others */
        if (tly_grow(&r->hoff, &r->hcap, (size_t)j + 1, sizeof *r->hoff)) {
            r->nomem = 1;
            return;
        }
        if (arena_put(r, field, n, &off))
            return;
        r->arena[r->arena_len++] = '\0';      /* names are C strings */
        r->hoff[j] = off;
        r->nhdr = j + 1;
        return;
    }
    if (j < r->nhdr && r->map[j] >= 0 && n > 0 && !arena_put(r, field, n, &off)) {
        r->voff[r->map[j]] = off;
        r->vlen[r->map[j]] = n;
    }
}

static void row_cb(int c, void *data)
{
    (void)c;
    ((struct tly_csv *)data)->row_done = 1;
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

const char *tly_csv_reject_code(enum tly_csv_reject rej)
{
    static const char *const codes[] = {
        [TLY_CSV_OK] = "ok",
        [TLY_CSV_NUL_BYTE] = "nul_byte",
        [TLY_CSV_BAD_UTF8] = "bad_utf8",
        [TLY_CSV_FIELD_TOO_LONG] = "field_too_long",
        [TLY_CSV_FIELD_COUNT] = "field_count",
    };
    return (unsigned)rej <= TLY_CSV_FIELD_COUNT ? codes[rej] : "unknown";
}

int tly_csv_open(struct tly_csv **out, tly_csv_read_fn read, void *ctx, size_t max_field_bytes)
{
    struct tly_csv *r = tly_calloc(1, sizeof *r);

    *out = NULL;
    if (!r)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    r->read = read;
    r->ctx = ctx;
    r->max_field = max_field_bytes;
    r->cap = READ_CHUNK;
    r->row_cap = HEADER_CAP;
    r->at_start = 1;
    r->buf = tly_malloc(r->cap);
    if (!r->buf || parser_start(r)) {
        tly_csv_close(r);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return TLY_OK;
}

void tly_csv_close(struct tly_csv *r)
{
    if (!r)
        return;
    if (r->parser_live)
        csv_free(&r->p);
    tly_free(r->buf);
    tly_free(r->arena);
    tly_free(r->hoff);
    tly_free(r->map);
    tly_free(r->voff);
    tly_free(r->vlen);
    tly_free(r->val);
    tly_free(r->len);
    tly_free(r->unknown);
    tly_free(r->present);
    tly_free(r->hnames);
    tly_free(r->side);
    tly_free(r);
}

long tly_csv_rows(const struct tly_csv *r) { return r->rows; }
long tly_csv_lines(const struct tly_csv *r) { return r->line; }
int tly_csv_header_fields(const struct tly_csv *r) { return r->ncols_file; }

/* ------------------------------------------------------------------ */
/* Input                                                               */

/*
 * Makes room and reads more.  Keeps [keep, end) (the pending row or the
 * unread rest), moving it to the front.  Returns 1 when bytes were added,
 * 0 at the end of input, -1 on a read error or when the kept bytes already
 * fill the buffer at its largest (the caller walks the row as too long).
 */
static int fill(struct tly_csv *r, size_t keep)
{
    ssize_t n;

    if (r->eof || r->failed)
        return r->failed ? -1 : 0;
    if (keep > 0) {
        memmove(r->buf, r->buf + keep, r->end - keep);
        r->end -= keep;
        r->pos -= keep;
        r->scan -= keep;
        if (r->pending)
            r->row_start -= keep;
    }
    if (r->cap - r->end < READ_CHUNK / 4) {
        size_t ncap = r->cap * 2;
        char *nb;
        if (r->end >= r->row_cap + READ_CHUNK)
            return -1;                      /* caller: row too long */
        if (ncap > r->row_cap + READ_CHUNK)
            ncap = r->row_cap + READ_CHUNK;
        if (ncap <= r->cap)
            return -1;
        if (!(nb = tly_realloc(r->buf, ncap))) {
            r->nomem = 1;
            return -1;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    n = r->read(r->ctx, r->buf + r->end, r->cap - r->end);
    if (n < 0) {
        r->failed = 1;
        return -1;
    }
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    r->end += (size_t)n;
    return 1;
}

/* inputs.md: a UTF-8 BOM at the start of the file is ignored. */
static int skip_bom(struct tly_csv *r)
{
    int rc = 1;

    while (r->end < 3 && (rc = fill(r, 0)) > 0)
        ;
    if (rc < 0)
        return -1;
    if (r->end >= 3 && !memcmp(r->buf, "\xef\xbb\xbf", 3))
        r->pos = r->scan = 3;
    r->at_start = 0;
    return 0;
}

/*
 * The next physical line: [*ls, *le) without its LF; the LF (if any) is
 * consumed.  Returns 1, 0 at the end of input, -1 on error, 2 when the
 * pending row outgrew the cap (nothing consumed).
 */
static int next_line(struct tly_csv *r, size_t *ls, size_t *le)
{
    if (r->at_start && skip_bom(r))
        return -1;
    for (;;) {
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        size_t start = r->pending ? r->row_start : r->pos;
        int rc;
        /*
         * The cap is judged on the row's bytes up to the end of this line,
         * found or not yet, so the verdict never depends on how the input
         * happened to be cut into reads.
         */
        if (nl) {
            if ((size_t)(nl - r->buf) - start > r->row_cap)
                return 2;
            *ls = r->pos;
            *le = (size_t)(nl - r->buf);
            r->pos = r->scan = *le + 1;
            return 1;
        }
        r->scan = r->end;
        if (r->end - start > r->row_cap)
            return 2;
        rc = fill(r, start);
        if (rc < 0)
            return r->failed || r->nomem ? -1 : 2;
        if (rc == 0) {
            if (r->pos == r->end)
                return 0;
            *ls = r->pos;                       /* last line, no LF */
            *le = r->pos = r->scan = r->end;
            return 1;
        }
    }
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Rows                                                                */

static void row_begin(struct tly_csv *r, size_t start)
{
    r->pending = 1;
    r->row_start = start;
    r->row_line = r->line + 1;
    r->row_flags = 0;
    r->nfields = 0;
    r->row_done = 0;
    r->too_long = 0;
    r->bad_field = -1;
    r->arena_len = 0;
    r->side_len = 0;
    for (int i = 0; i < r->ncolumns; i++)
        r->voff[i] = NO_FIELD;
}

static void row_values(struct tly_csv *r, struct tly_csv_row *row)
{
    for (int i = 0; i < r->ncolumns; i++) {
        r->val[i] = r->voff[i] == NO_FIELD ? NULL : r->arena + r->voff[i];
        r->len[i] = r->voff[i] == NO_FIELD ? 0 : r->vlen[i];
    }
    row->val = r->val;
    row->len = r->len;
}

/* Fills 'row' for the finished row [row_start, row_end). */
static void row_finish(struct tly_csv *r, size_t row_end, struct tly_csv_row *row)
{
    const char *raw = r->side_len ? r->side : r->buf + r->row_start;
    size_t n = r->side_len ? r->side_len : row_end - r->row_start;

    row->line = r->row_line;
    row->raw = raw;
    row->raw_len = n > TLY_CSV_RAW_MAX ? TLY_CSV_RAW_MAX : n;
    row->nfields = r->nfields;
    row->bad_field = r->bad_field;
    row->reject = TLY_CSV_OK;
    /* inputs.md "CSV rules", checked in the order of csvread.h */
    if ((r->row_flags & SCAN_CTRL) && memchr(raw, '\0', n))
        row->reject = TLY_CSV_NUL_BYTE;
    else if ((r->row_flags & SCAN_HIGH) && !tly_utf8_valid(raw, n))
        row->reject = TLY_CSV_BAD_UTF8;
    else if (r->too_long)
        row->reject = TLY_CSV_FIELD_TOO_LONG;
    else if (!r->header_mode && r->nfields != r->ncols_file)
        row->reject = TLY_CSV_FIELD_COUNT;
    if (r->ncolumns)
        row_values(r, row);
    else
        row->val = NULL, row->len = NULL;
    r->pending = 0;
    if (!r->header_mode)
        row->index = ++r->rows;
    else
        row->index = 0;
}

/* Feeds [s, s+n) to libcsv; 0, or -1 with *quote_error set / nomem. */
static int feed(struct tly_csv *r, const char *s, size_t n, int *quote_error)
{
    size_t done = csv_parse(&r->p, s, n, field_cb, row_cb, r);
    if (done < n || csv_error(&r->p) != CSV_SUCCESS) {
        if (csv_error(&r->p) == CSV_EPARSE)
            *quote_error = 1;
        else
            r->nomem = 1;
        return -1;
    }
    return r->nomem ? -1 : 0;
}

/*
 * A line's length without its line end.  A CR is part of one only before
 * the LF (inputs.md: CRLF or LF): a CR that is the file's last byte is
 * data, as a bare CR anywhere else is, and the column rules judge it.
 */
static size_t line_len(const struct tly_csv *r, size_t ls, size_t le)
{
    return le - ls - (le < r->end && le > ls && r->buf[le - 1] == '\r');
}

/* One physical line [ls, le) of the pending row. */
static int feed_line(struct tly_csv *r, size_t ls, size_t le, int *quote_error)
{
    size_t n = line_len(r, ls, le);
    unsigned flags;
    int custom = 0, rc;
    const char *s = r->buf + ls;

    flags = scan_bytes(s, n);
    r->row_flags |= flags;
    if (flags & SCAN_CTRL) {
        if (memchr(s, '\r', n)) {
            csv_set_term_func(&r->p, term_lf_only);
            custom = 1;
        }
        if (memchr(s, '\t', n)) {
            csv_set_space_func(&r->p, space_only);
            custom = 1;
        }
    }
    if (le < r->end && n == le - ls)
        rc = feed(r, s, n + 1, quote_error);    /* the line with its LF, one call */
    else if (!(rc = feed(r, s, n, quote_error)))
        rc = feed(r, "\n", 1, quote_error);
    if (custom) {
        csv_set_term_func(&r->p, NULL);
        csv_set_space_func(&r->p, NULL);
    }
    return rc;
}

/*
 * Lines as the row count after a quote error sees them: every line ended,
 * and those with more than spaces, tabs and CRs in them (blank lines are
 * no rows).  The line still open at the end counts too.
 */
struct lines_seen {
    long ended, nonblank;
    int open, open_nonblank;
};

static void lines_seen_byte(struct lines_seen *l, char c)
{
    if (c == '\n') {
        l->ended++;
        l->nonblank += l->open_nonblank;
        l->open = l->open_nonblank = 0;
    } else {
        l->open = 1;
        l->open_nonblank |= c != ' ' && c != '\t' && c != '\r';
    }
}

static long lines_seen_nonblank(const struct lines_seen *l)
{
    return l->nonblank + l->open_nonblank;
}

/*
 * After a quote error: counts the lines and non-blank lines left (the
 * manifest's row count), byte by byte, keeping nothing.
 */
static int drain(struct tly_csv *r)
{
    struct lines_seen seen = { 0, 0, 0, 0 };
    int rc;

    r->pending = 0;
    for (;;) {
        for (; r->pos < r->end; r->pos++) {
            char c = r->buf[r->pos];
            if (!r->drain_mid_line) {
                lines_seen_byte(&seen, c);
            } else if (c == '\n') {        /* the broken row's line: counted with it */
                r->drain_mid_line = 0;
                r->line++;
            }
        }
        r->scan = r->end;
        if ((rc = fill(r, r->pos)) <= 0)
            break;
    }
    r->line += seen.ended + (seen.open || r->drain_mid_line);
    r->rows += lines_seen_nonblank(&seen);
    r->state = DONE;
    return rc < 0 ? TLY_CSV_ERROR : TLY_CSV_END;
}

/*
 * An unterminated quote swallows the rest of the file into one broken row.
 * Counted as a stray quote's rest is (drain), the broken row's first line
 * is one row (or the header) and every later non-blank line another: the
 * rows the export meant, and the manifest counted.  'lines' are the
 * non-blank lines from the row's start to the end of the input; call it
 * after quote_error_row(), which numbered the broken row.
 */
static int count_unterminated(struct tly_csv *r, long lines, int event)
{
    if (lines > 1)
        r->rows += lines - 1;
    r->state = DONE;
    return event;
}

static long nonblank_lines(const char *s, size_t n)
{
    struct lines_seen seen = { 0, 0, 0, 0 };

    for (size_t i = 0; i < n; i++)
        lines_seen_byte(&seen, s[i]);
    return lines_seen_nonblank(&seen);
}

/*
 * A row too long for libcsv, read byte by byte as libcsv reads a row in
 * strict mode: a quote opens a field (after spaces) or is stray, "" inside
 * quotes is one quote, and only spaces may follow a closing quote.  It
 * counts the fields and keeps the longest, so the row gets the reason an
 * ordinary row would (field_too_long or field_count, csvread.h order).
 */
struct long_row {
    int quoted, quote_seen, closed, started, nul;
    size_t field_len, max_len;
    int fields;
    struct lines_seen seen;     /* from the row's start, for count_unterminated */
};

static void long_row_field_end(struct long_row *w)
{
    if (w->field_len > w->max_len)
        w->max_len = w->field_len;
    w->fields++;
    w->field_len = 0;
    w->started = w->closed = 0;
}

/* 1 at the row's end (a LF outside quotes), -1 at a stray quote, else 0. */
static int long_row_step(struct long_row *w, char c)
{
    if (c == '\0')
        w->nul = 1;
    lines_seen_byte(&w->seen, c);
    if (w->quote_seen) {
        w->quote_seen = 0;
        if (c == '"') {
            w->field_len++;
            return 0;
        }
        w->quoted = 0;
        w->closed = 1;
    }
    if (w->quoted) {
        if (c == '"')
            w->quote_seen = 1;
        else
            w->field_len++;
        return 0;
    }
    switch (c) {
    case '"':
        if (w->started || w->closed)
            return -1;
        w->quoted = 1;
        return 0;
    case ',':
        long_row_field_end(w);
        return 0;
    case '\n':
        long_row_field_end(w);
        return 1;
    case ' ':
    case '\r':
        if (w->started)
            w->field_len++;
        return 0;
    default:
        if (w->closed)
            return -1;
        w->started = 1;
        w->field_len++;
        return 0;
    }
}

/*
 * A quote error's row: its line and raw text (cut to TLY_CSV_RAW_MAX), and
 * no values, as the row never ended.  Every field is set, so a caller that
 * copies the row (rowahead.c) never reads what an earlier row left.
 */
static int quote_error_row(struct tly_csv *r, struct tly_csv_row *row, const char *raw, size_t n)
{
    row->line = r->row_line;
    row->index = r->header_mode ? 0 : r->rows;
    row->raw = raw;
    row->raw_len = n > TLY_CSV_RAW_MAX ? TLY_CSV_RAW_MAX : n;
    row->reject = TLY_CSV_OK;
    row->nfields = 0;
    row->bad_field = 0;
    for (int i = 0; i < r->ncolumns; i++)
        r->val[i] = NULL, r->len[i] = 0;
    row->val = r->ncolumns ? r->val : NULL;
    row->len = r->ncolumns ? r->len : NULL;
    return TLY_CSV_QUOTE_ERROR;
}

/*
 * The pending row outgrew the cap: keep its first TLY_CSV_RAW_MAX bytes,
 * then walk to its end without libcsv.  Returns TLY_CSV_ROW (its reason
 * set), TLY_CSV_QUOTE_ERROR or TLY_CSV_ERROR.
 */
static int skip_long_row(struct tly_csv *r, struct tly_csv_row *row)
{
    size_t keep = r->end - r->row_start, from = r->row_start;
    struct long_row w = { 0 };
    int step;

    if (keep > TLY_CSV_RAW_MAX)
        keep = TLY_CSV_RAW_MAX;
    if (!r->side && !(r->side = tly_malloc(TLY_CSV_RAW_MAX))) {
        r->nomem = 1;
        return TLY_CSV_ERROR;
    }
    memcpy(r->side, r->buf + r->row_start, keep);
    r->side_len = keep ? keep : 1;
    /* the lines libcsv was fed are walked again; their LFs are counted already */
    for (; from < r->pos; from++)
        if (long_row_step(&w, r->buf[from]) < 0)
            goto quote;
    for (;;) {
        for (; r->pos < r->end; r->pos++) {
            char c = r->buf[r->pos];
            if (c == '\n')
                r->line++;
            if ((step = long_row_step(&w, c)) < 0)
                goto quote;
            if (step > 0) {
                r->pos++;
                goto ended;
            }
        }
        r->pending = 0;                          /* nothing to keep */
        r->scan = r->end;
        int rc = fill(r, r->pos);
        if (rc < 0)
            return TLY_CSV_ERROR;
        if (rc == 0) {
            r->line++;                            /* the last line had no LF */
            if (w.quoted && !w.quote_seen) {
                r->rows += !r->header_mode;
                return count_unterminated(r, lines_seen_nonblank(&w.seen),
                                          quote_error_row(r, row, r->side, r->side_len));
            }
            long_row_field_end(&w);
            goto ended;
        }
    }
ended:
    r->scan = r->pos;
    r->pending = 1;
    r->too_long = 1;
    if (parser_start(r)) {
        r->nomem = 1;
        return TLY_CSV_ERROR;
    }
    row_finish(r, 0, row);
    /* raw is cut: no UTF-8 verdict; a row of all-maximal fields fits the cap */
    row->reject = w.nul ? TLY_CSV_NUL_BYTE
                  : w.max_len > r->max_field || w.fields == r->ncols_file ? TLY_CSV_FIELD_TOO_LONG
                                                                          : TLY_CSV_FIELD_COUNT;
    row->nfields = w.fields;
    for (int i = 0; i < r->ncolumns; i++)
        r->val[i] = NULL, r->len[i] = 0;
    return TLY_CSV_ROW;
quote:
    /* a stray quote: the rest of its line belongs to it, the lines after are drained */
    r->rows += !r->header_mode;
    r->state = DRAINING;
    r->drain_mid_line = 1;
    return quote_error_row(r, row, r->side, r->side_len);
}

/* The next row of any kind; the engine behind header and next. */
static int read_row(struct tly_csv *r, struct tly_csv_row *row)
{
    size_t ls, le;
    int rc;

    if (r->state == DRAINING)
        return drain(r);
    if (r->state == DONE)
        return TLY_CSV_END;
    for (;;) {
        int quote_error = 0;
        rc = next_line(r, &ls, &le);
        if (rc < 0)
            goto fail;
        if (rc == 2) {
            if (!r->pending)
                row_begin(r, r->pos);
            rc = skip_long_row(r, row);
            if (rc == TLY_CSV_ERROR)
                goto fail;
            return rc;
        }
        if (rc == 0) {
            r->state = DONE;
            if (!r->pending)
                return TLY_CSV_END;
            /* inputs.md: an unterminated quote is a quote error */
            r->rows += !r->header_mode;
            r->pending = 0;
            return count_unterminated(r, nonblank_lines(r->buf + r->row_start, r->end - r->row_start),
                                      quote_error_row(r, row, r->buf + r->row_start,
                                                      r->end - r->row_start));
        }
        if (!r->pending) {
            if (is_blank(r->buf + ls, line_len(r, ls, le))) {
                r->line++;
                continue;
            }
            row_begin(r, ls);
        }
        if (feed_line(r, ls, le, &quote_error)) {
            r->line++;
            if (!quote_error)
                goto fail;
            r->rows += !r->header_mode;
            r->pending = 0;
            r->state = DRAINING;
            return quote_error_row(r, row, r->buf + r->row_start, le - r->row_start);
        }
        r->line++;
        if (r->row_done) {
            row_finish(r, ls + line_len(r, ls, le), row);
            return TLY_CSV_ROW;
        }
    }
fail:
    r->state = DONE;
    if (r->nomem)
        tly_error(TLY_ERR_NOMEM, "out of memory");
    return TLY_CSV_ERROR;
}

/* ------------------------------------------------------------------ */
/* Header and rows                                                     */

/* Maps header names (kept NUL-terminated in r->hnames) to the caller's columns. */
static int build_map(struct tly_csv *r, const char *const *columns, int ncolumns)
{
    int n = r->nhdr;
    size_t nc = (size_t)ncolumns + 1;

    r->ncolumns = ncolumns;
    r->columns = columns;
    r->map = tly_malloc(sizeof *r->map * (size_t)(n + 1));
    r->unknown = tly_malloc(sizeof *r->unknown * (size_t)(n + 1));
    r->present = tly_calloc(nc, sizeof *r->present);
    r->voff = tly_malloc(sizeof *r->voff * nc);
    r->vlen = tly_malloc(sizeof *r->vlen * nc);
    r->val = tly_malloc(sizeof *r->val * nc);
    r->len = tly_malloc(sizeof *r->len * nc);
    if (!r->map || !r->unknown || !r->present || !r->voff || !r->vlen || !r->val || !r->len)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ncolumns; i++)
        r->voff[i] = NO_FIELD;
    for (int j = 0; j < n; j++) {
        const char *name = r->hnames + r->hoff[j];
        r->map[j] = -1;
        for (int i = 0; i < ncolumns; i++) {
            if (!r->present[i] && !strcmp(columns[i], name)) {
                r->map[j] = i;
                r->present[i] = 1;
                break;
            }
        }
        if (r->map[j] < 0)
            r->unknown[r->nunknown++] = j;
    }
    return TLY_OK;
}

int tly_csv_header(struct tly_csv *r, const char *const *columns, int ncolumns,
                   struct tly_csv_row *hdr)
{
    int ev;
    uint64_t cap;

    r->header_mode = 1;
    ev = read_row(r, hdr);
    r->header_mode = 0;
    if (ev != TLY_CSV_ROW || hdr->reject != TLY_CSV_OK)
        r->nhdr = 0;                            /* unusable: every column missing */
    r->ncols_file = ev == TLY_CSV_ROW ? r->nfields : 0;
    /* the names move out of the arena, which rows reuse */
    if (!(r->hnames = tly_malloc(r->arena_len + 1))) {
        tly_error(TLY_ERR_NOMEM, "out of memory");
        return TLY_CSV_ERROR;
    }
    if (r->arena_len)
        memcpy(r->hnames, r->arena, r->arena_len);
    r->hnames[r->arena_len] = '\0';
    if (build_map(r, columns, ncolumns))
        return TLY_CSV_ERROR;
    /* a row of all-maximal fields fits; more is surely field_too_long */
    cap = (uint64_t)(r->ncols_file ? r->ncols_file : 1) * (2 * (uint64_t)r->max_field + 3) + 2;
    r->row_cap = cap > ROW_CAP_MAX ? ROW_CAP_MAX : cap < HEADER_CAP ? HEADER_CAP : (size_t)cap;
    return ev;
}

int tly_csv_header_has_cr(const struct tly_csv_row *hdr)
{
    return hdr->raw_len > 1 &&
           memchr(hdr->raw, '\r', hdr->raw_len - (hdr->raw[hdr->raw_len - 1] == '\r')) != NULL;
}

int tly_csv_has_column(const struct tly_csv *r, int i)
{
    return i >= 0 && i < r->ncolumns && r->present[i];
}

const char *tly_csv_unknown_column(const struct tly_csv *r, int k)
{
    if (k < 0 || k >= r->nunknown)
        return NULL;
    return r->hnames + r->hoff[r->unknown[k]];
}

int tly_csv_unknown_repeats(const struct tly_csv *r, int k)
{
    const char *name = tly_csv_unknown_column(r, k);
    for (int i = 0; name && i < r->ncolumns; i++)
        if (!strcmp(r->columns[i], name))
            return 1;
    return 0;
}

void tly_csv_warn_unknown_columns(const struct tly_csv *r, const char *file, const char *entry)
{
    const char *name;
    char shown[256];
    size_t used;

    for (int k = 0; k < WARNED_COLUMNS && (name = tly_csv_unknown_column(r, k)); k++) {
        tly_utf8_shown(name, strlen(name), shown, sizeof shown, &used);
        tly_warn("'%s'%s%s%s: %s column '%s' ignored", file, entry ? " entry '" : "", entry ? entry : "",
                 entry ? "'" : "", tly_csv_unknown_repeats(r, k) ? "repeated" : "unknown", shown);
    }
    if (r->nunknown > WARNED_COLUMNS)
        tly_warn("'%s'%s%s%s: %d more unknown or repeated columns ignored", file, entry ? " entry '" : "",
                 entry ? entry : "", entry ? "'" : "", r->nunknown - WARNED_COLUMNS);
}

int tly_csv_next(struct tly_csv *r, struct tly_csv_row *row)
{
    if (!r->map)                                /* no header read: nothing to map to */
        return TLY_CSV_ERROR;
    return read_row(r, row);
}
