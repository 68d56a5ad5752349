/*
 * mustache.h — a small logic-less template renderer (Mustache subset).
 *
 * Debian packages no C Mustache library, and the digest e-mails need only a
 * little of it, so this is one file.  Supported tags:
 *
 *   {{name}}          the value, HTML-escaped in an HTML template (flag
 *                     TLY_MUSTACHE_HTML), raw in a text template
 *   {{{name}}}        the value, never escaped (also {{& name}})
 *   {{#name}}…{{/name}}  section: once per element of an array (the element
 *                     becomes the innermost context), once with an object
 *                     pushed, once for any other truthy value
 *   {{^name}}…{{/name}}  inverted section: once when 'name' is falsy
 *   {{! comment }}    nothing
 *
 * Names are [A-Za-z0-9_-] words joined by dots ("account.name"), or "." for
 * the innermost context.  A name is looked up from the innermost context
 * outwards.  Falsy: missing, null, false, 0, "" and the empty array.
 * Strings print as they are, integers in decimal, true as "true", null and
 * false as nothing.
 *
 * As in the Mustache spec, a section, inverted, closing or comment tag alone
 * on its line ("standalone") takes its whole line with it, so templates can
 * put them on lines of their own without leaving blank lines.
 *
 * Not supported, and refused with an error naming the template and line:
 * partials ({{> x}}), delimiter changes ({{=<% %>=}}) and anything else that
 * is not a tag above.  Unclosed tags and sections, and a closing tag that
 * does not match, are errors too.  With TLY_MUSTACHE_STRICT a {{name}} that
 * resolves to nothing is an error when rendering (a misspelt name in a
 * template must not silently send an e-mail with a hole in it); sections
 * over missing names stay legal, as that is how optional parts are written.
 *
 * Errors are reported with tly_error() and returned: TLY_ERR_INPUT for a bad
 * template, TLY_ERR_IO for an unreadable file, TLY_ERR_NOMEM.
 *
 * Ownership: tly_mustache_parse() and tly_mustache_load() return a template
 * the caller frees with tly_mustache_free() (NULL is a no-op); the template
 * keeps its own copy of the text.  tly_mustache_render() returns a NUL-
 * terminated buffer the caller frees with tly_free(); the context is only
 * read.
 */
#ifndef TLY_MUSTACHE_H
#define TLY_MUSTACHE_H

#include <jansson.h>
#include <stddef.h>

#define TLY_MUSTACHE_HTML   1u  /* {{name}} is HTML-escaped */
#define TLY_MUSTACHE_STRICT 2u  /* a {{name}} that resolves to nothing is an error */

struct tly_mustache;

/* Parsing: 'name' is used in error messages (usually the file's path). */
int tly_mustache_parse(const char *name, const char *text, size_t len, unsigned flags,
                       struct tly_mustache **out);
/* Reads and parses 'path'; a path ending in ".html" adds TLY_MUSTACHE_HTML. */
int tly_mustache_load(const char *path, unsigned flags, struct tly_mustache **out);
void tly_mustache_free(struct tly_mustache *t);

/* Rendering with 'ctx' (any JSON value; usually an object). */
int tly_mustache_render(const struct tly_mustache *t, const json_t *ctx, char **out,
                        size_t *outlen);

/* HTML-escapes & < > " ' of 's' into a new buffer (tly_free); NULL when out of memory. */
char *tly_mustache_html_escape(const char *s, size_t n, size_t *outlen);

#endif
