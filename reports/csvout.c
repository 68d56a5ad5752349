/*
 * csvout.c — quoting, formula guard and raw-text escaping for CSV output.
 */
#include "csvout.h"
#include "alloc.h"
#include "csvread.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <errno.h>
#include <string.h>

int csvout_open_stream(FILE *f, const char *name, const char *const *header, struct csvout **out)
{
    struct csvout *w = tly_calloc(1, sizeof *w);

    *out = NULL;
    if (!w || !(w->path = tly_strdup(name))) {
        tly_free(w);
        fclose(f);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    w->f = f;
    for (int i = 0; header && header[i]; i++)
        csvout_textn(w, header[i], strlen(header[i]));
    if (header)
        csvout_end_row(w);
    *out = w;
    return TLY_OK;
}

int csvout_open(const char *path, const char *const *header, struct csvout **out)
{
    FILE *f = fopen(path, "w");

    *out = NULL;
    if (!f)
        return tly_error(TLY_ERR_OUTPUT, "cannot create '%s': %s", path, strerror(errno));
    return csvout_open_stream(f, path, header, out);
}

int csvout_close(struct csvout *w)
{
    int err = TLY_OK;
    if (!w)
        return TLY_OK;
    if (w->failed || ferror(w->f) || fflush(w->f))
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", w->path, strerror(errno));
    if (fclose(w->f) && !err)
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", w->path, strerror(errno));
    tly_free(w->path);
    tly_free(w);
    return err;
}

void csvout_abort(struct csvout *w)
{
    if (!w)
        return;
    fclose(w->f);
    tly_free(w->path);
    tly_free(w);
}

static void sep(struct csvout *w)
{
    if (w->ncol++ > 0)
        putc(',', w->f);
}

static void put_quoted(struct csvout *w, const char *prefix, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r') {
            quote = 1;
            break;
        }
    if (quote)
        putc('"', w->f);
    if (prefix)
        fputs(prefix, w->f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            putc('"', w->f);
        putc(s[i], w->f);
    }
    if (quote)
        putc('"', w->f);
}

void csvout_textn(struct csvout *w, const char *s, size_t n)
{
    /* outputs.md: text starting with = + - @ tab CR gets a leading ' */
    int guard = n > 0 && strchr("=+-@\t\r", s[0]) != NULL;
    sep(w);
    put_quoted(w, guard ? "'" : NULL, s, n);
}

void csvout_decimal(struct csvout *w, const char *s, size_t n)
{
    sep(w);
    put_quoted(w, NULL, s, n);
}

void csvout_text(struct csvout *w, const char *s)
{
    if (!s) {
        sep(w);
        return;
    }
    csvout_textn(w, s, strlen(s));
}

size_t csvout_escape_raw(const char *s, size_t n, char *buf, size_t cap)
{
    static const size_t limit = 1024;
    /* room for the cut's "…" and the NUL */
    size_t used, o = tly_utf8_shown(s, n, buf, cap - 3 < limit + 1 ? cap - 3 : limit + 1, &used);

    if (used < n) {
        memcpy(buf + o, "\xe2\x80\xa6", 4);   /* … and the NUL */
        o += 3;
    }
    return o;
}

void csvout_raw(struct csvout *w, const char *s, size_t n)
{
    char buf[1100];
    size_t len = csvout_escape_raw(s, n, buf, sizeof buf);
    csvout_textn(w, buf, len);
}

void csvout_int(struct csvout *w, int64_t v)
{
    sep(w);
    fprintf(w->f, "%lld", (long long)v);
}

void csvout_micro(struct csvout *w, int64_t micro)
{
    char buf[TLY_MONEY_LEN];
    tly_format_micro(buf, micro);
    sep(w);
    fputs(buf, w->f);
}

void csvout_pct(struct csvout *w, __int128 hundredths)
{
    char buf[TLY_MONEY_LEN];
    tly_format_pct(buf, hundredths);
    sep(w);
    fputs(buf, w->f);
}

void csvout_date(struct csvout *w, int64_t day)
{
    char buf[TLY_DATE_LEN];
    tly_format_date(buf, day);
    sep(w);
    fputs(buf, w->f);
}

void csvout_ts(struct csvout *w, int64_t ts)
{
    char buf[TLY_TS_LEN];
    tly_format_ts(buf, ts);
    sep(w);
    fputs(buf, w->f);
}

void csvout_empty(struct csvout *w)
{
    sep(w);
}

void csvout_end_row(struct csvout *w)
{
    if (putc('\n', w->f) == EOF)
        w->failed = 1;
    w->ncol = 0;
}
