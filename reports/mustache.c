/*
 * mustache.c — the logic-less renderer behind the digest templates.
 *
 * A template is parsed once into a flat array of nodes (text, variable,
 * section, inverted, close); a section node knows the index of its closing
 * node, so rendering is a loop that recurses only into sections.  All syntax
 * errors are found by the parser, with the line of the offending tag; the
 * renderer can only fail on a value (strict mode, a list where text belongs)
 * or memory.
 */
#include "mustache.h"
#include "alloc.h"
#include "error.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 32                    /* nested sections; templates are small */
#define MAX_TEMPLATE_BYTES (1 << 20)    /* a template is text a person wrote */

enum node_kind { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED, N_CLOSE };

struct node {
    enum node_kind kind;
    size_t off, len;        /* the text, or the tag's name, in t->text */
    int line;               /* where the tag starts (text: unused) */
    size_t close;           /* sections: index of the matching N_CLOSE */
};

struct tly_mustache {
    char *name;
    char *text;
    size_t len;
    unsigned flags;
    struct node *nodes;
    size_t n, cap;
};

/* ------------------------------------------------------------------------
 * Output buffer
 * ---------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->n - 1)        /* checked before the sum (style §10) */
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (tly_grow(&b->p, &b->cap, b->n + n + 1, 1))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return TLY_OK;
}

static int buf_add_escaped(struct buf *b, const char *s, size_t n)
{
    size_t run = 0;
    int err;

    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        if ((err = buf_add(b, s + run, i - run)) || (err = buf_add(b, rep, strlen(rep))))
            return err;
        run = i + 1;
    }
    return buf_add(b, s + run, n - run);
}

char *tly_mustache_html_escape(const char *s, size_t n, size_t *outlen)
{
    struct buf b = { NULL, 0, 0 };

    /* buf_add reports NOMEM itself; this helper only returns NULL. */
    if (buf_add(&b, "", 0) || buf_add_escaped(&b, s, n)) {
        tly_free(b.p);
        return NULL;
    }
    if (outlen)
        *outlen = b.n;
    return b.p;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

static int add_node(struct tly_mustache *t, enum node_kind kind, size_t off, size_t len, int line)
{
    if (kind == N_TEXT && len == 0)
        return TLY_OK;
    if (tly_grow(&t->nodes, &t->cap, t->n + 1, sizeof *t->nodes))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    t->nodes[t->n++] = (struct node){ kind, off, len, line, 0 };
    return TLY_OK;
}

static int count_lines(const char *s, size_t from, size_t to)
{
    int n = 0;
    for (size_t i = from; i < to; i++)
        n += s[i] == '\n';
    return n;
}

static const char *find(const char *hay, size_t from, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = from; i + nl <= len; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nl))
            return hay + i;
    return NULL;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 1 && s[0] == '.')
        return 1;
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.' && s[i - 1] == '.')
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* The tag as the author wrote it, made printable and cut, for messages. */
static void tag_excerpt(char *out, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < cap; i++)
        out[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (j + 4 >= cap && n > j) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static int syntax_error(const struct tly_mustache *t, int line, const char *what, const char *s,
                        size_t n)
{
    char ex[64];
    tag_excerpt(ex, sizeof ex, s, n);
    return tly_error(TLY_ERR_INPUT, "template '%s' line %d: %s '%s'", t->name, line, what, ex);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int parse(struct tly_mustache *t)
{
    const char *s = t->text;
    size_t pos = 0, stack[MAX_DEPTH];
    int depth = 0, line = 1, err;

    for (;;) {
        const char *open = find(s, pos, t->len, "{{"), *close, *delim = "}}";
        size_t o, p, q, end, ls, next = 0;
        enum node_kind kind = N_VAR;
        int tag_line, standalone = 0, comment = 0;

        if (!open) {
            if ((err = add_node(t, N_TEXT, pos, t->len - pos, line)))
                return err;
            if (depth > 0) {
                const struct node *sec = &t->nodes[stack[depth - 1]];
                return syntax_error(t, sec->line, "unclosed section", s + sec->off, sec->len);
            }
            return TLY_OK;
        }
        o = (size_t)(open - s);
        tag_line = line + count_lines(s, pos, o);
        p = o + 2;
        if (p < t->len) {
            switch (s[p]) {
            case '{': kind = N_RAW; delim = "}}}"; p++; break;
            case '&': kind = N_RAW; p++; break;
            case '#': kind = N_SECTION; p++; break;
            case '^': kind = N_INVERTED; p++; break;
            case '/': kind = N_CLOSE; p++; break;
            case '!': comment = 1; p++; break;
            default: break;
            }
        }
        close = find(s, p, t->len, delim);
        if (!close)
            return syntax_error(t, tag_line, "unclosed tag", s + o,
                                t->len - o > 20 ? 20 : t->len - o);
        end = (size_t)(close - s) + strlen(delim);
        q = (size_t)(close - s);
        while (p < q && is_blank(s[p]))
            p++;
        while (q > p && is_blank(s[q - 1]))
            q--;
        if (!comment && !name_ok(s + p, q - p))
            return syntax_error(t, tag_line, "unknown tag", s + o, end - o);

        /* Mustache "standalone" lines: the tag and its line's blanks and newline go. */
        if (comment || kind == N_SECTION || kind == N_INVERTED || kind == N_CLOSE) {
            size_t r = end;
            ls = o;
            while (ls > pos && is_blank(s[ls - 1]))
                ls--;
            while (r < t->len && is_blank(s[r]))
                r++;
            if (ls == 0 || s[ls - 1] == '\n') {
                if (r == t->len)
                    standalone = 1, next = r;
                else if (s[r] == '\n')
                    standalone = 1, next = r + 1;
                else if (s[r] == '\r' && r + 1 < t->len && s[r + 1] == '\n')
                    standalone = 1, next = r + 2;
            }
        }
        if (!standalone) {
            ls = o;
            next = end;
        }
        if ((err = add_node(t, N_TEXT, pos, ls - pos, line)))
            return err;
        line = tag_line + count_lines(s, o, next);
        pos = next;
        if (comment)
            continue;

        if (kind == N_CLOSE) {
            struct node *sec;
            if (depth == 0)
                return syntax_error(t, tag_line, "closing tag without a section", s + o, end - o);
            sec = &t->nodes[stack[depth - 1]];
            if (sec->len != q - p || memcmp(s + sec->off, s + p, q - p)) {
                char opened[64];
                tag_excerpt(opened, sizeof opened, s + sec->off, sec->len);
                return tly_error(TLY_ERR_INPUT,
                                 "template '%s' line %d: '{{/%.*s}}' does not close section '%s' "
                                 "opened on line %d", t->name, tag_line,
                                 (int)(q - p > 40 ? 40 : q - p), s + p, opened, sec->line);
            }
            depth--;
        }
        if ((err = add_node(t, kind, p, q - p, tag_line)))
            return err;
        if (kind == N_CLOSE)
            t->nodes[stack[depth]].close = t->n - 1;
        if (kind == N_SECTION || kind == N_INVERTED) {
            if (depth == MAX_DEPTH)
                return syntax_error(t, tag_line, "sections nested too deeply at", s + o, end - o);
            stack[depth++] = t->n - 1;
        }
    }
}

/* Offset of the first byte that is not valid UTF-8, or 'n' when all are. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3
                   : (s[i] & 0xf8) == 0xf0 ? 4 : 0;
        uint32_t c = len == 2 ? s[i] & 0x1fu : len == 3 ? s[i] & 0x0fu : s[i] & 0x07u;
        static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (len == 0 || len > n - i)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            c = (c << 6) | (s[i + k] & 0x3fu);
        }
        if (len > 1 && (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)))
            return i;
        i += len;
    }
    return n;
}

int tly_mustache_parse(const char *name, const char *text, size_t len, unsigned flags,
                       struct tly_mustache **out)
{
    struct tly_mustache *t;
    size_t bad;
    int err;

    *out = NULL;
    /* templates become UTF-8 e-mail bodies: refuse what would not be */
    if ((bad = utf8_invalid_at((const unsigned char *)text, len)) < len)
        return tly_error(TLY_ERR_INPUT, "template '%s' line %d: not valid UTF-8", name,
                         1 + count_lines(text, 0, bad));
    if (!(t = tly_calloc(1, sizeof *t)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    t->flags = flags;
    t->len = len;
    if (!(t->name = tly_strdup(name)) || !(t->text = tly_malloc(len + 1))) {
        tly_mustache_free(t);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    if ((err = parse(t))) {
        tly_mustache_free(t);
        return err;
    }
    *out = t;
    return TLY_OK;
}

void tly_mustache_free(struct tly_mustache *t)
{
    if (!t)
        return;
    tly_free(t->name);
    tly_free(t->text);
    tly_free(t->nodes);
    tly_free(t);
}

int tly_mustache_load(const char *path, unsigned flags, struct tly_mustache **out)
{
    struct buf b = { NULL, 0, 0 };
    char chunk[8192];
    size_t n, plen = strlen(path);
    FILE *f;
    int err;

    *out = NULL;
    if (!(f = fopen(path, "rb")))
        return tly_error(TLY_ERR_IO, "cannot open template '%s': %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + n > MAX_TEMPLATE_BYTES) {
            fclose(f);
            tly_free(b.p);
            return tly_error(TLY_ERR_INPUT, "template '%s' is larger than %d bytes", path,
                             MAX_TEMPLATE_BYTES);
        }
        if ((err = buf_add(&b, chunk, n))) {
            fclose(f);
            tly_free(b.p);
            return err;
        }
    }
    if (ferror(f)) {
        err = tly_error(TLY_ERR_IO, "cannot read template '%s': %s", path, strerror(errno));
        fclose(f);
        tly_free(b.p);
        return err;
    }
    fclose(f);
    if (plen >= 5 && !strcmp(path + plen - 5, ".html"))
        flags |= TLY_MUSTACHE_HTML;
    err = tly_mustache_parse(path, b.p ? b.p : "", b.n, flags, out);
    tly_free(b.p);
    return err;
}

/* ------------------------------------------------------------------------
 * Rendering
 * ---------------------------------------------------------------------- */

struct render {
    const struct tly_mustache *t;
    const json_t *stack[MAX_DEPTH + 1];
    int depth;
    struct buf out;
};

/* Innermost-out lookup of 'name' (dotted); NULL when it resolves to nothing. */
static const json_t *lookup(const struct render *r, const char *name, size_t n)
{
    const char *dot = memchr(name, '.', n);
    size_t first = dot ? (size_t)(dot - name) : n;
    const json_t *v = NULL;

    if (n == 1 && name[0] == '.')
        return r->stack[r->depth - 1];
    for (int i = r->depth - 1; i >= 0 && !v; i--)
        if (json_is_object(r->stack[i]))
            v = json_object_getn(r->stack[i], name, first);
    while (v && dot) {
        const char *part = dot + 1;
        dot = memchr(part, '.', n - (size_t)(part - name));
        first = dot ? (size_t)(dot - part) : n - (size_t)(part - name);
        v = json_is_object(v) ? json_object_getn(v, part, first) : NULL;
    }
    return v;
}

static int truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_NULL:
    case JSON_FALSE: return 0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    default: return 1;
    }
}

static int value_error(const struct render *r, const struct node *nd, const char *what)
{
    const struct tly_mustache *t = r->t;
    return tly_error(TLY_ERR_INPUT, "template '%s' line %d: %s '%.*s'", t->name, nd->line, what,
                     (int)nd->len, t->text + nd->off);
}

static int render_var(struct render *r, const struct node *nd)
{
    const json_t *v = lookup(r, r->t->text + nd->off, nd->len);
    int esc = nd->kind == N_VAR && (r->t->flags & TLY_MUSTACHE_HTML);
    char num[64];
    const char *s = num;
    size_t n;

    if (!v) {
        if (r->t->flags & TLY_MUSTACHE_STRICT)
            return value_error(r, nd, "no value for");
        return TLY_OK;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        n = (size_t)snprintf(num, sizeof num, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        s = "true";
        n = 4;
        break;
    case JSON_FALSE:
    case JSON_NULL:
        return TLY_OK;
    default:
        return value_error(r, nd, "a list or object cannot be printed: use a section for");
    }
    return esc ? buf_add_escaped(&r->out, s, n) : buf_add(&r->out, s, n);
}

static int render_range(struct render *r, size_t from, size_t to);

static int render_with(struct render *r, const json_t *ctx, size_t from, size_t to)
{
    int err;
    /* depth is bounded by the parser's MAX_DEPTH nesting, plus the root */
    r->stack[r->depth++] = ctx;
    err = render_range(r, from, to);
    r->depth--;
    return err;
}

static int render_range(struct render *r, size_t from, size_t to)
{
    const struct tly_mustache *t = r->t;
    int err;

    for (size_t i = from; i < to; i++) {
        const struct node *nd = &t->nodes[i];
        const json_t *v;

        switch (nd->kind) {
        case N_TEXT:
            if ((err = buf_add(&r->out, t->text + nd->off, nd->len)))
                return err;
            break;
        case N_VAR:
        case N_RAW:
            if ((err = render_var(r, nd)))
                return err;
            break;
        case N_SECTION:
            v = lookup(r, t->text + nd->off, nd->len);
            if (truthy(v) && json_is_array(v)) {
                for (size_t k = 0; k < json_array_size(v); k++)
                    if ((err = render_with(r, json_array_get(v, k), i + 1, nd->close)))
                        return err;
            } else if (truthy(v) && (err = render_with(r, v, i + 1, nd->close))) {
                return err;
            }
            i = nd->close;
            break;
        case N_INVERTED:
            v = lookup(r, t->text + nd->off, nd->len);
            if (!truthy(v) && (err = render_range(r, i + 1, nd->close)))
                return err;
            i = nd->close;
            break;
        case N_CLOSE:
            break;
        }
    }
    return TLY_OK;
}

int tly_mustache_render(const struct tly_mustache *t, const json_t *ctx, char **out,
                        size_t *outlen)
{
    struct render r;
    int err;

    *out = NULL;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.stack[r.depth++] = ctx;
    if ((err = buf_add(&r.out, "", 0)) || (err = render_range(&r, 0, t->n))) {
        tly_free(r.out.p);
        return err;
    }
    *out = r.out.p;
    if (outlen)
        *outlen = r.out.n;
    return TLY_OK;
}
