/*
 * test_mustache.c — the template renderer behind the digest e-mails
 * (reports/mustache.h; spec outputs.md "Digest e-mails": templates).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "mustache.h"

/* Renders 'tpl' with the JSON text 'ctx'; returns the output (tly_free) or NULL on error. */
static char *render(const char *tpl, const char *ctx, unsigned flags, int *err)
{
    struct tly_mustache *t = NULL;
    json_t *j = json_loads(ctx, 0, NULL);
    char *out = NULL;

    assert_non_null(j);
    *err = tly_mustache_parse("t.txt", tpl, strlen(tpl), flags, &t);
    if (!*err) {
        *err = tly_mustache_render(t, j, &out, NULL);
        tly_mustache_free(t);
    }
    json_decref(j);
    return out;
}

static void expect(const char *tpl, const char *ctx, unsigned flags, const char *expected)
{
    int err;
    char *got = render(tpl, ctx, flags, &err);
    assert_int_equal(err, TLY_OK);
    assert_non_null(got);
    assert_string_equal(got, expected);
    tly_free(got);
}

/* Captures stderr around a failing parse/render and returns the message. */
static void expect_error(const char *tpl, const char *ctx, unsigned flags, const char *fragment)
{
    char path[] = "/tmp/tally-mustache-XXXXXX", msg[512] = "";
    int fd = mkstemp(path), saved, err;
    FILE *f;
    char *got;

    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    tly_error_quiet(0);
    got = render(tpl, ctx, flags, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    f = fopen(path, "r");
    assert_non_null(f);
    if (!fgets(msg, sizeof msg, f))
        msg[0] = '\0';
    fclose(f);
    unlink(path);
    assert_null(got);
    assert_int_equal(err, TLY_ERR_INPUT);
    if (!strstr(msg, fragment))
        fail_msg("message '%s' lacks '%s'", msg, fragment);
}

static void test_mustache_variables(void **state)
{
    (void)state;
    expect("Hello {{name}}!", "{\"name\":\"Ada\"}", 0, "Hello Ada!");
    expect("{{ name }} {{n}} {{yes}}[{{no}}][{{nil}}]",
           "{\"name\":\"x\",\"n\":-42,\"yes\":true,\"no\":false,\"nil\":null}", 0, "x -42 true[][]");
    expect("[{{missing}}]", "{}", 0, "[]");
    expect("{{a.b.c}}/{{a.x}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", 0, "deep/");
    expect("no tags at all\n", "{}", 0, "no tags at all\n");
    expect("", "{}", 0, "");
    expect("{ {x} } }}", "{}", 0, "{ {x} } }}");
}

static void test_mustache_escaping_html(void **state)
{
    static const char ctx[] = "{\"v\":\"<script>alert('x')</script> & \\\"q\\\"\"}";
    (void)state;
    expect("{{v}}", ctx, TLY_MUSTACHE_HTML,
           "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    expect("{{{v}}}", ctx, TLY_MUSTACHE_HTML, "<script>alert('x')</script> & \"q\"");
    expect("{{& v}}", ctx, TLY_MUSTACHE_HTML, "<script>alert('x')</script> & \"q\"");
    /* text templates are raw: escaping there would show &amp; to the reader */
    expect("{{v}}", ctx, 0, "<script>alert('x')</script> & \"q\"");
}

static void test_mustache_sections_over_lists(void **state)
{
    (void)state;
    expect("{{#l}}<{{n}}>{{/l}}", "{\"l\":[{\"n\":1},{\"n\":2},{\"n\":3}]}", 0, "<1><2><3>");
    expect("{{#l}}{{.}},{{/l}}", "{\"l\":[\"a\",\"b\"]}", 0, "a,b,");
    /* outer names stay visible inside a section */
    expect("{{#l}}{{p}}{{n}} {{/l}}", "{\"p\":\"#\",\"l\":[{\"n\":1},{\"n\":2}]}", 0, "#1 #2 ");
    expect("{{#o}}{{k}}{{/o}}", "{\"o\":{\"k\":\"v\"}}", 0, "v");
    expect("{{#t}}yes{{/t}}{{#f}}no{{/f}}{{#e}}no{{/e}}{{#z}}no{{/z}}{{#s}}no{{/s}}",
           "{\"t\":true,\"f\":false,\"e\":[],\"z\":0,\"s\":\"\"}", 0, "yes");
    expect("{{#a}}{{#b}}{{x}}{{/b}}{{/a}}", "{\"a\":[{\"b\":[{\"x\":1},{\"x\":2}]},{\"b\":[]}]}", 0,
           "12");
}

static void test_mustache_inverted(void **state)
{
    (void)state;
    expect("{{^l}}none{{/l}}", "{\"l\":[]}", 0, "none");
    expect("{{^l}}none{{/l}}", "{}", 0, "none");
    expect("{{^l}}none{{/l}}", "{\"l\":[1]}", 0, "");
    expect("{{#e}}has {{e}}{{/e}}{{^e}}no endpoint{{/e}}", "{\"e\":\"https://x\"}", 0,
           "has https://x");
}

static void test_mustache_standalone_lines(void **state)
{
    (void)state;
    expect("a\n{{#l}}\n- {{.}}\n{{/l}}\nb\n", "{\"l\":[1,2]}", 0, "a\n- 1\n- 2\nb\n");
    expect("a\n  {{! a comment }}  \nb\n", "{}", 0, "a\nb\n");
    expect("a\r\n{{^x}}\r\nnone\r\n{{/x}}\r\n", "{}", 0, "a\r\nnone\r\n");
    /* not alone on its line: the line stays */
    expect("a {{#t}}\nx\n{{/t}} b", "{\"t\":true}", 0, "a \nx\n b");
    /* variables are never standalone */
    expect("{{v}}\nz", "{\"v\":\"\"}", 0, "\nz");
    expect("{{#t}}\nlast{{/t}}", "{\"t\":true}", 0, "last");
}

static void test_mustache_error_unknown_tag_names_file_and_line(void **state)
{
    (void)state;
    expect_error("one\ntwo {{> partial}}\n", "{}", 0, "template 't.txt' line 2: unknown tag '{{> partial}}'");
    expect_error("{{=<% %>=}}", "{}", 0, "line 1: unknown tag");
    expect_error("\n\n\n{{two words}}", "{}", 0, "line 4: unknown tag '{{two words}}'");
    expect_error("{{}}", "{}", 0, "line 1: unknown tag");
    expect_error("{{a..b}}", "{}", 0, "line 1: unknown tag");
    expect_error("ok\nbad \xff byte", "{}", 0, "line 2: not valid UTF-8");
    expect_error("\xc0\xaf overlong", "{}", 0, "line 1: not valid UTF-8");
}

static void test_mustache_error_unclosed(void **state)
{
    (void)state;
    expect_error("a\n{{#items}}\nx\n", "{}", 0, "line 2: unclosed section 'items'");
    expect_error("a\n{{#a}}{{#b}}{{/b}}\n", "{}", 0, "line 2: unclosed section 'a'");
    expect_error("x\ny {{name", "{}", 0, "line 2: unclosed tag '{{name'");
    expect_error("{{{raw}}", "{}", 0, "line 1: unclosed tag");
    expect_error("{{#a}}\n{{/b}}", "{}", 0, "line 2: '{{/b}}' does not close section 'a' opened on line 1");
    expect_error("x\n{{/a}}", "{}", 0, "line 2: closing tag without a section '{{/a}}'");
}

static void test_mustache_strict_unknown_name(void **state)
{
    (void)state;
    expect_error("ok\n{{#l}}{{nme}}{{/l}}", "{\"l\":[{\"name\":1}]}", TLY_MUSTACHE_STRICT,
                 "template 't.txt' line 2: no value for 'nme'");
    /* sections over missing names are how optional parts are written */
    expect("{{#endpoint}}x{{/endpoint}}", "{}", TLY_MUSTACHE_STRICT, "");
    expect_error("{{l}}", "{\"l\":[1]}", 0, "line 1: a list or object cannot be printed");
}

static void test_mustache_load_infers_html_from_extension(void **state)
{
    char dir[] = "/tmp/tally-mustache-dir-XXXXXX", path[256];
    struct tly_mustache *t;
    json_t *j = json_pack("{s:s}", "v", "<b>");
    char *out;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.html", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("<p>{{v}}</p>\n", f);
    fclose(f);
    assert_int_equal(tly_mustache_load(path, 0, &t), TLY_OK);
    assert_int_equal(tly_mustache_render(t, j, &out, NULL), TLY_OK);
    assert_string_equal(out, "<p>&lt;b&gt;</p>\n");
    tly_free(out);
    tly_mustache_free(t);
    unlink(path);
    tly_error_quiet(1);
    assert_int_equal(tly_mustache_load(path, 0, &t), TLY_ERR_IO);
    assert_null(t);
    tly_error_quiet(0);
    rmdir(dir);
    json_decref(j);
}

/* Every allocation failing in turn gives a clean TLY_ERR_NOMEM (style §14). */
static void test_mustache_out_of_memory_is_clean(void **state)
{
    static const char tpl[] = "{{#l}}<{{n}}>{{/l}} {{v}}";
    json_t *j = json_loads("{\"l\":[{\"n\":1},{\"n\":2}],\"v\":\"<&>\"}", 0, NULL);
    int done = 0;
    (void)state;

    tly_error_quiet(1);
    for (long n = 1; n < 200 && !done; n++) {
        struct tly_mustache *t = NULL;
        char *out = NULL;
        int err;
        tly_alloc_fail_at(n);
        err = tly_mustache_parse("t", tpl, strlen(tpl), TLY_MUSTACHE_HTML, &t);
        if (!err)
            err = tly_mustache_render(t, j, &out, NULL);
        tly_alloc_fail_at(0);
        if (err) {
            assert_int_equal(err, TLY_ERR_NOMEM);
        } else {
            assert_string_equal(out, "<1><2> &lt;&amp;&gt;");
            done = 1;
        }
        tly_free(out);
        tly_mustache_free(t);
    }
    tly_error_quiet(0);
    assert_true(done);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mustache_variables),
        cmocka_unit_test(test_mustache_escaping_html),
        cmocka_unit_test(test_mustache_sections_over_lists),
        cmocka_unit_test(test_mustache_inverted),
        cmocka_unit_test(test_mustache_standalone_lines),
        cmocka_unit_test(test_mustache_error_unknown_tag_names_file_and_line),
        cmocka_unit_test(test_mustache_error_unclosed),
        cmocka_unit_test(test_mustache_strict_unknown_name),
        cmocka_unit_test(test_mustache_load_infers_html_from_extension),
        cmocka_unit_test(test_mustache_out_of_memory_is_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
