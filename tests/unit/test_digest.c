/*
 * test_digest.c — notification digests (reports/digest.h): which digests
 * exist, their order and figures, golden e-mails, exactly-once across
 * re-runs, crashes and hand-off failures, and hostile input
 * (spec semantics.md §5, §10 "One digest per account and as-of";
 * outputs.md "Digest e-mails", notifications.csv).
 *
 * Goldens: tests/golden/digest/ACCOUNT.eml, compared byte for byte.  After
 * an intended change of templates or layout, regenerate them with
 *     TALLY_REGEN_GOLDEN=1 build/tests/test_digest
 * and review the diff.  Run from the top of the tree (as `make check`
 * does), or set TALLY_SRCDIR.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "digest.h"
#include "error.h"
#include "ledger.h"
#include "settings.h"
#include "testkit.h"
#include "timeutil.h"

/* ------------------------------------------------------------------------
 * Fixture: a temporary ledger with accounts and items
 * ---------------------------------------------------------------------- */

struct fx {
    struct tk_scratch t;
    char tpl[512];
    struct tly_ledger *l;
    struct tly_settings s;
    int nout;               /* outboxes made so far */
    char outbox[600];       /* the latest run's outbox */
    char csv[700];
};

static const char *srcdir(void)
{
    const char *d = getenv("TALLY_SRCDIR");
    return d && d[0] ? d : ".";
}

static int64_t ts(const char *text)
{
    int64_t v = 0;
    const char *why = NULL;
    if (tly_parse_ts(text, strlen(text), &v, &why))
        fail_msg("bad test timestamp '%s': %s", text, why);
    return v;
}

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof *f);

    assert_non_null(f);
    assert_int_equal(tk_scratch_make(&f->t, "digest"), 0);
    assert_int_equal(tly_ledger_open(f->t.db, TLY_LEDGER_LOCK, &f->l), TLY_OK);
    snprintf(f->tpl, sizeof f->tpl, "%s/templates", srcdir());
    f->s.sender = "Tally Billing <billing-noreply@tally.invalid>";
    f->s.sendmail = "";
    f->s.templates_dir = f->tpl;
    f->s.db = f->t.db;
    return f;
}

static void fx_free(struct fx *f)
{
    tly_ledger_close(f->l);
    assert_int_equal(tk_scratch_remove(&f->t), 0);
    free(f);
}

static void exec_sql(struct fx *f, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(f->l->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql '%s': %s", sql, msg);
}

static void add_account(struct fx *f, const char *id, const char *name, const char *edition,
                        const char *email)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->l->db,
        "INSERT INTO accounts(account_id, name, edition, admin_email, cycle_anchor,"
        " negative_limit, low_threshold, updated_at, raw, file_id, line)"
        " VALUES(?, ?, ?, ?, 20454, 40000000, 0, 0, '', 1, 2)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, edition, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, email, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* What the engine writes (pipeline/thresholds.c, enforce.c, simulate.c); returns the item id. */
static int64_t add_item(struct fx *f, const char *account, const char *item, const char *pool,
                        int threshold, int64_t at, const char *detail)
{
    static int key;
    sqlite3_stmt *st;
    char k[32];
    int64_t id;

    snprintf(k, sizeof k, "k%d", ++key);
    assert_int_equal(sqlite3_prepare_v2(f->l->db,
        "INSERT INTO items(account_id, item, pool, threshold, ts, key, detail)"
        " VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item, -1, SQLITE_STATIC);
    if (pool)
        sqlite3_bind_text(st, 3, pool, -1, SQLITE_STATIC);
    if (threshold)
        sqlite3_bind_int(st, 4, threshold);
    sqlite3_bind_int64(st, 5, at);
    sqlite3_bind_text(st, 6, k, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, detail, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    id = sqlite3_last_insert_rowid(f->l->db);
    return id;
}

#define D_THRESHOLD_CREDITS \
    "{\"used\":\"37.500375\",\"total\":\"75.000000\",\"pct\":\"50.00\",\"unit\":\"credits\"}"
#define D_THRESHOLD_RUNS \
    "{\"used\":\"9000\",\"total\":\"10000\",\"pct\":\"90.00\",\"unit\":\"runs\"}"
#define D_NEGATIVE \
    "{\"balance\":\"-0.000063\",\"negative_limit\":\"40.000000\",\"deployments\":[" \
    "{\"category\":\"ocr\",\"resource_id\":\"ocr-invoices\",\"deployment_id\":\"ocr-invoices-eu\"," \
    "\"name\":\"Invoice OCR\"},{\"category\":\"finetune\",\"resource_id\":\"llama-ft\"," \
    "\"deployment_id\":\"ft-job-7\",\"name\":\"Support tone tuning\"}]}"
#define D_STOPPED \
    "{\"stop_at\":\"2026-10-28T19:06:41Z\",\"message\":\"You've used all your available credits. " \
    "Please add more credits to your account to continue.\",\"deployments\":[" \
    "{\"category\":\"ocr\",\"resource_id\":\"ocr-invoices\",\"deployment_id\":\"ocr-invoices-eu\"," \
    "\"name\":\"Invoice OCR\"},{\"category\":\"model\",\"resource_id\":\"llama-3\"," \
    "\"deployment_id\":\"llama-3\"}]}"
#define D_DEPLOYED \
    "{\"resource_id\":\"s-enrich\",\"deployment_id\":\"s-enrich\",\"name\":\"Lead enrichment\"," \
    "\"endpoint\":\"https://scripts.example.com/v1/s-enrich\"}"
#define D_UNDEPLOYED \
    "{\"resource_id\":\"s-enrich\",\"deployment_id\":\"s-enrich\",\"name\":\"Lead enrichment\"}"

/* Runs notify into a fresh outbox that is never put in place (a failed swap). */
static int run_unshown(struct fx *f, int64_t as_of, const char *sendmail, struct tly_notify_stats *st)
{
    snprintf(f->outbox, sizeof f->outbox, "%s/outbox-%d", f->t.dir, ++f->nout);
    assert_int_equal(mkdir(f->outbox, 0755), 0);
    snprintf(f->csv, sizeof f->csv, "%s/notifications.csv", f->outbox);
    return tly_notify_run(f->l, &f->s, as_of, f->outbox, f->csv, sendmail, st);
}

/* Runs notify into a fresh outbox and puts it in place (as `run` does); returns its code. */
static int run(struct fx *f, int64_t as_of, const char *sendmail, struct tly_notify_stats *st)
{
    int err = run_unshown(f, as_of, sendmail, st);

    if (err == TLY_OK)
        assert_int_equal(tly_notify_shown(f->l, as_of), TLY_OK);
    return err;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return buf;
}

static char *outbox_file(struct fx *f, const char *name, size_t *len)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", f->outbox, name);
    return slurp(path, len);
}

static int has_file(struct fx *f, const char *name)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", f->outbox, name);
    return access(path, F_OK) == 0;
}

static int64_t count(struct fx *f, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n;
    assert_int_equal(sqlite3_prepare_v2(f->l->db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* ------------------------------------------------------------------------
 * Reading a message back with GMime
 * ---------------------------------------------------------------------- */

static GMimeMessage *parse(const char *bytes, size_t len)
{
    GMimeStream *mem = g_mime_stream_mem_new_with_buffer(bytes, len);
    GMimeParser *p = g_mime_parser_new_with_stream(mem);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(mem);
    assert_non_null(m);
    return m;
}

/* The decoded content of a leaf part (caller frees with g_free). */
static char *part_text(GMimeObject *o)
{
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
    GMimeStream *mem = g_mime_stream_mem_new();
    GByteArray *b;
    char *s;

    assert_non_null(w);
    assert_true(g_mime_data_wrapper_write_to_stream(w, mem) >= 0);
    b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    s = g_strndup((const char *)b->data, b->len);
    g_object_unref(mem);
    return s;
}

struct parsed {
    GMimeMessage *m;
    char *text, *html;
};

/*
 * Parses and checks the structure every digest has: RFC 5322 headers,
 * multipart/alternative with text/plain then text/html, UTF-8,
 * quoted-printable, 7-bit lines of at most 998 octets, LF only.
 */
static struct parsed parse_digest(const char *bytes, size_t len)
{
    struct parsed r;
    GMimeObject *body;
    GMimeMultipart *mp;
    GMimeContentType *ct;
    size_t line = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        assert_true(c < 0x80);                  /* every octet 7-bit: QP bodies, encoded words */
        assert_true(c != '\r' && c != '\0');
        line = c == '\n' ? 0 : line + 1;
        assert_true(line <= 998);
    }
    assert_true(len > 0 && bytes[len - 1] == '\n');
    r.m = parse(bytes, len);
    assert_non_null(g_mime_object_get_header(GMIME_OBJECT(r.m), "From"));
    assert_non_null(g_mime_object_get_header(GMIME_OBJECT(r.m), "To"));
    assert_non_null(g_mime_object_get_header(GMIME_OBJECT(r.m), "Date"));
    assert_non_null(g_mime_object_get_header(GMIME_OBJECT(r.m), "Subject"));
    assert_non_null(g_mime_message_get_message_id(r.m));
    assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(r.m), "MIME-Version"), "1.0");
    body = g_mime_message_get_mime_part(r.m);
    assert_true(GMIME_IS_MULTIPART(body));
    ct = g_mime_object_get_content_type(body);
    assert_true(g_mime_content_type_is_type(ct, "multipart", "alternative"));
    mp = GMIME_MULTIPART(body);
    assert_int_equal(g_mime_multipart_get_count(mp), 2);
    for (int i = 0; i < 2; i++) {
        GMimeObject *part = g_mime_multipart_get_part(mp, i);
        assert_true(GMIME_IS_TEXT_PART(part));
        assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(part), "text",
                                                i == 0 ? "plain" : "html"));
        assert_string_equal(g_mime_object_get_content_type_parameter(part, "charset"), "utf-8");
        assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(part)),
                         GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    }
    r.text = part_text(g_mime_multipart_get_part(mp, 0));
    r.html = part_text(g_mime_multipart_get_part(mp, 1));
    assert_true(g_utf8_validate(r.text, -1, NULL));
    assert_true(g_utf8_validate(r.html, -1, NULL));
    return r;
}

static void parsed_free(struct parsed *r)
{
    g_object_unref(r->m);
    g_free(r->text);
    g_free(r->html);
}

static struct parsed parse_file(struct fx *f, const char *name)
{
    size_t len;
    char *bytes = outbox_file(f, name, &len);
    struct parsed r;
    assert_non_null(bytes);
    r = parse_digest(bytes, len);
    free(bytes);
    return r;
}

static const char *subject_of(GMimeMessage *m)
{
    return g_mime_message_get_subject(m);      /* decoded */
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' not found in:\n%s", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("'%s' unexpectedly found in:\n%s", needle, hay);
}

/* ------------------------------------------------------------------------
 * Which digests exist, in which order, with which figures
 * ---------------------------------------------------------------------- */

static void test_digest_one_per_account_with_undelivered_items(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    char *csv;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_account(f, "bolt", "Bolt", "process", "ops@bolt.example");
    add_account(f, "calm", "Calm", "agent-platform", "it@calm.example");
    add_item(f, "bolt", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-21T08:00:00Z"), D_DEPLOYED);
    /* at or after the as-of: not yet (§10 "Events at or after the as-of") */
    add_item(f, "calm", "script_deployed", NULL, 0, ts("2026-10-29T00:00:01Z"), D_DEPLOYED);
    add_item(f, "acme", "script_undeployed", NULL, 0, ts("2026-10-29T00:00:00Z"), D_UNDEPLOYED);

    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 2);
    assert_int_equal(st.digests_shown, 2);
    assert_int_equal(st.items, 3);
    assert_int_equal(st.handed_off, 0);
    assert_int_equal(st.skipped, 0);
    assert_true(has_file(f, "acme.eml"));
    assert_true(has_file(f, "bolt.eml"));
    assert_false(has_file(f, "calm.eml"));

    csv = slurp(f->csv, NULL);
    assert_string_equal(csv,
        "account_id,item,pool,threshold,ts,recipient,digest\n"
        "acme,script_deployed,,,2026-10-21T08:00:00Z,admin@acme.example,"
        "<tally.822b33ad87c148a0a20a5ba7.20261029T000000Z@tally.invalid>\n"
        "acme,script_undeployed,,,2026-10-29T00:00:00Z,admin@acme.example,"
        "<tally.822b33ad87c148a0a20a5ba7.20261029T000000Z@tally.invalid>\n"
        "bolt,threshold,credits,50,2026-10-20T10:00:00Z,ops@bolt.example,"
        "<tally.d0b3cba71f725563d316ea35.20261029T000000Z@tally.invalid>\n");
    free(csv);
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM digests"), 2);
    fx_free(f);
}

static void test_digest_items_oldest_first_ts_then_id(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    struct parsed p;
    const char *a, *b, *c;
    char *csv;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    /* inserted newest first; in the e-mail two share a ts and go by item id */
    add_item(f, "acme", "deployments_stopped", "credits", 0, ts("2026-10-28T19:06:41Z"), D_STOPPED);
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "acme", "negative_balance", "credits", 0, ts("2026-10-20T10:00:00Z"), D_NEGATIVE);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);

    /* notifications.csv follows the CSV convention: sorted by its first columns */
    csv = slurp(f->csv, NULL);
    a = strstr(csv, "acme,threshold");
    b = strstr(csv, "acme,negative_balance");
    c = strstr(csv, "acme,deployments_stopped");
    assert_true(a && b && c && c < b && b < a);
    free(csv);

    p = parse_file(f, "acme.eml");
    a = strstr(p.text, "You have used 50.00%");
    b = strstr(p.text, "below zero (");
    c = strstr(p.text, "You've used all");
    assert_true(a && b && c && a < b && b < c);
    a = strstr(p.html, "You have used 50.00%");
    b = strstr(p.html, "below zero (");
    c = strstr(p.html, "You&#39;ve used all");
    assert_true(a && b && c && a < b && b < c);
    parsed_free(&p);
    fx_free(f);
}

/*
 * One run can cross 70, 80 and 90 at once (2 of 2 runs): each item names its
 * threshold, and its figures say what was used then (100.00%), not the
 * threshold (outputs.md: "the figures (used / total / %)").
 */
static void test_digest_thresholds_crossed_together_show_the_real_percentage(void **state)
{
    static const char detail[] = "{\"used\":\"2\",\"total\":\"2\",\"pct\":\"100.00\",\"unit\":\"runs\"}";
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    struct parsed p;
    (void)state;

    add_account(f, "acme", "Acme Analytics", "agent-platform", "admin@acme.example");
    for (int k = 70; k <= 90; k += 10)
        add_item(f, "acme", "threshold", "runs", k, ts("2026-10-21T10:00:00Z"), detail);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    p = parse_file(f, "acme.eml");
    assert_contains(p.text, "70% of your tool runs used");
    assert_contains(p.text, "90% of your tool runs used");
    assert_contains(p.text, "You have used 100.00% of your tool runs (2 of 2 runs).");
    assert_lacks(p.text, "You have used 70");
    assert_lacks(p.html, "You have used 70");
    parsed_free(&p);
    fx_free(f);
}

static void test_digest_body_has_the_figures_and_what_to_do(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    struct parsed p;
    (void)state;

    add_account(f, "acme", "Acme Analytics", "agent-platform", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "acme", "threshold", "runs", 90, ts("2026-10-21T10:00:00Z"), D_THRESHOLD_RUNS);
    add_item(f, "acme", "negative_balance", "credits", 0, ts("2026-10-22T10:00:00Z"), D_NEGATIVE);
    add_item(f, "acme", "deployments_stopped", "credits", 0, ts("2026-10-28T19:06:41Z"), D_STOPPED);
    add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-23T10:00:00Z"), D_DEPLOYED);
    add_item(f, "acme", "script_undeployed", NULL, 0, ts("2026-10-24T10:00:00Z"), D_UNDEPLOYED);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);

    p = parse_file(f, "acme.eml");
    for (int i = 0; i < 2; i++) {
        const char *b = i == 0 ? p.text : p.html;
        assert_contains(b, "You have used 50.00% of your credits (37.50 of 75.00 credits).");
        assert_contains(b, "You have used 90.00% of your tool runs (9,000 of 10,000 runs).");
        assert_contains(b, "contact support");
        assert_contains(b, "top up your credits");
        assert_contains(b, "(-0.000063 credits)");
        assert_contains(b, "negative limit of 40.00 credits");
        assert_contains(b, "Invoice OCR (OCR, ocr-invoices-eu)");
        assert_contains(b, "Support tone tuning (fine-tuning job, ft-job-7)");
        assert_contains(b, "Please add more credits to your account to continue.");
        assert_contains(b, "were stopped at");
        assert_contains(b, "2026-10-28 19:06:41 UTC:");
        assert_contains(b, "llama-3 (model)");         /* no name: the resource id */
        assert_contains(b, "has been deployed.");
        assert_contains(b, "https://scripts.example.com/v1/s-enrich");
        assert_contains(b, "has been undeployed.");
        assert_contains(b, "2026-10-20 10:00:00 UTC");
        assert_contains(b, "Agent Platform");
    }
    assert_contains(p.text, "Your custom script Lead enrichment has been deployed.");
    assert_contains(p.text, "API endpoint: https://scripts.example.com/v1/s-enrich");
    assert_contains(p.text, "You've used all your available credits. Please add more credits to "
                            "your account to continue.");
    assert_contains(p.html, "<strong>Lead enrichment</strong> has been deployed.");
    parsed_free(&p);
    fx_free(f);
}

static void test_digest_headers_and_subject(void **state)
{
    static const struct {
        const char *id, *edition, *product;
    } ed[] = {
        { "g", "gale", "GALE" },
        { "a", "agent-platform", "Agent Platform" },
        { "p", "process", "AI for Process" },
    };
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    int64_t as_of = ts("2026-10-29T00:00:00Z");
    (void)state;

    for (size_t i = 0; i < 3; i++)
        add_account(f, ed[i].id, "X", ed[i].edition, "admin@x.example");
    /* gale: a threshold of 90 outranks 50 and the script items */
    add_item(f, "g", "script_deployed", NULL, 0, ts("2026-10-20T00:00:00Z"), D_DEPLOYED);
    add_item(f, "g", "threshold", "credits", 50, ts("2026-10-21T00:00:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "g", "threshold", "runs", 90, ts("2026-10-22T00:00:00Z"), D_THRESHOLD_RUNS);
    /* agent-platform: the stop outranks the negative balance */
    add_item(f, "a", "deployments_stopped", "credits", 0, ts("2026-10-22T00:00:00Z"), D_STOPPED);
    add_item(f, "a", "negative_balance", "credits", 0, ts("2026-10-23T00:00:00Z"), D_NEGATIVE);
    /* process: one script item */
    add_item(f, "p", "script_undeployed", NULL, 0, ts("2026-10-24T00:00:00Z"), D_UNDEPLOYED);
    assert_int_equal(run(f, as_of, "", &st), TLY_OK);

    for (size_t i = 0; i < 3; i++) {
        char name[16];
        struct parsed p;
        GDateTime *d;
        InternetAddressList *to;

        snprintf(name, sizeof name, "%s.eml", ed[i].id);
        p = parse_file(f, name);
        assert_true(!strncmp(subject_of(p.m), ed[i].product, strlen(ed[i].product)));
        d = g_mime_message_get_date(p.m);
        assert_non_null(d);
        assert_int_equal(g_date_time_to_unix(d), as_of);
        assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(p.m), "Date"),
                            "Thu, 29 Oct 2026 00:00:00 +0000");
        to = g_mime_message_get_addresses(p.m, GMIME_ADDRESS_TYPE_TO);
        assert_int_equal(internet_address_list_length(to), 1);
        assert_string_equal(internet_address_mailbox_get_addr(
            INTERNET_ADDRESS_MAILBOX(internet_address_list_get_address(to, 0))), "admin@x.example");
        assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(p.m), "From"),
                            "Tally Billing <billing-noreply@tally.invalid>");
        assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(p.m), "Auto-Submitted"),
                            "auto-generated");
        assert_true(!strncmp(g_mime_message_get_message_id(p.m), "tally.", 6));
        assert_contains(g_mime_message_get_message_id(p.m), ".20261029T000000Z@tally.invalid");
        parsed_free(&p);
    }
    {
        struct parsed p = parse_file(f, "g.eml");
        assert_string_equal(subject_of(p.m),
                            "GALE: you have used 90% of your agent runs (and 2 more notifications)");
        parsed_free(&p);
        p = parse_file(f, "a.eml");
        assert_string_equal(subject_of(p.m), "Agent Platform: your deployments were stopped, "
                                             "no credits left (and 1 more notification)");
        parsed_free(&p);
        p = parse_file(f, "p.eml");
        assert_string_equal(subject_of(p.m),
                            "AI for Process: your custom script has been undeployed");
        parsed_free(&p);
    }
    fx_free(f);
}

/* ------------------------------------------------------------------------
 * Goldens, one per item kind plus a mixed digest
 * ---------------------------------------------------------------------- */

static void compare_golden(struct fx *f, const char *account)
{
    char path[600], name[160];
    size_t glen = 0, len = 0;
    char *got, *golden;

    snprintf(name, sizeof name, "%s.eml", account);
    snprintf(path, sizeof path, "%s/tests/golden/digest/%s", srcdir(), name);
    got = outbox_file(f, name, &len);
    assert_non_null(got);
    if (getenv("TALLY_REGEN_GOLDEN") && !strcmp(getenv("TALLY_REGEN_GOLDEN"), "1")) {
        FILE *fp = fopen(path, "wb");
        if (!fp)
            fail_msg("cannot write '%s': %s", path, strerror(errno));
        assert_int_equal(fwrite(got, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
    }
    golden = slurp(path, &glen);
    if (!golden)
        fail_msg("golden '%s' missing: run with TALLY_REGEN_GOLDEN=1", path);
    if (glen != len || memcmp(golden, got, len))
        fail_msg("'%s' differs from golden '%s' (TALLY_REGEN_GOLDEN=1 to accept):\n%s", name,
                 path, got);
    free(got);
    free(golden);
}

static void test_digest_golden_per_item_kind(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    static const char *const golden[] = {
        "threshold", "negative-balance", "deployments-stopped", "script-deployed",
        "script-undeployed", "mixed",
    };
    (void)state;

    add_account(f, "threshold", "Acme Analytics", "gale", "admin@acme.example");
    add_item(f, "threshold", "threshold", "credits", 50, ts("2026-10-20T10:15:00Z"), D_THRESHOLD_CREDITS);
    add_account(f, "negative-balance", "Bolt Logistics GmbH", "process", "billing@bolt.example");
    add_item(f, "negative-balance", "negative_balance", "credits", 0, ts("2026-10-27T23:59:59Z"),
             D_NEGATIVE);
    add_account(f, "deployments-stopped", "Calm Clinics", "process", "it@calm.example");
    add_item(f, "deployments-stopped", "deployments_stopped", "credits", 0,
             ts("2026-10-28T19:06:41Z"), D_STOPPED);
    add_account(f, "script-deployed", "Delta Sales", "agent-platform", "ops@delta.example");
    add_item(f, "script-deployed", "script_deployed", NULL, 0, ts("2026-10-21T08:30:00Z"), D_DEPLOYED);
    add_account(f, "script-undeployed", "Echo Media", "agent-platform", "ops@echo.example");
    add_item(f, "script-undeployed", "script_undeployed", NULL, 0, ts("2026-10-22T17:45:12Z"),
             D_UNDEPLOYED);
    add_account(f, "mixed", "Foxtrot Søftware «Ünïcødé»", "gale", "first.last+billing@fox.example");
    add_item(f, "mixed", "script_deployed", NULL, 0, ts("2026-10-18T09:00:00Z"),
             "{\"resource_id\":\"s-clean\",\"deployment_id\":\"s-clean\",\"name\":\"CRM cleanup\"}");
    add_item(f, "mixed", "threshold", "credits", 50, ts("2026-10-20T10:15:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "mixed", "threshold", "runs", 90, ts("2026-10-21T12:00:00Z"), D_THRESHOLD_RUNS);
    add_item(f, "mixed", "negative_balance", "credits", 0, ts("2026-10-27T23:59:59Z"),
             "{\"balance\":\"-1234.5\",\"negative_limit\":\"40.000000\",\"deployments\":[]}");
    add_item(f, "mixed", "deployments_stopped", "credits", 0, ts("2026-10-28T19:06:41Z"), D_STOPPED);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 6);

    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        char name[64];
        struct parsed p;
        compare_golden(f, golden[i]);
        snprintf(name, sizeof name, "%s.eml", golden[i]);
        p = parse_file(f, name);
        parsed_free(&p);
    }
    {
        struct parsed p = parse_file(f, "mixed.eml");
        assert_contains(p.text, "Foxtrot Søftware «Ünïcødé»");
        assert_contains(p.text, "(-1,234.50 credits)");
        assert_contains(p.text, "Running deployments and fine-tuning jobs stop when it reaches");
        parsed_free(&p);
    }
    fx_free(f);
}

/* ------------------------------------------------------------------------
 * Exactly once (§5, §10)
 * ---------------------------------------------------------------------- */

static void test_digest_rerun_same_as_of_same_bytes_creates_none(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    int64_t as_of = ts("2026-10-29T00:00:00Z");
    size_t l1, l2, c1, c2;
    char *e1, *e2, *csv1, *csv2;
    int64_t late;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    assert_int_equal(run(f, as_of, "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    e1 = outbox_file(f, "acme.eml", &l1);
    csv1 = slurp(f->csv, &c1);

    /* new data at the same as-of: its item waits for the next as-of (§10) */
    late = add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-25T00:00:00Z"), D_DEPLOYED);
    add_account(f, "bolt", "Bolt", "gale", "ops@bolt.example");
    add_item(f, "bolt", "script_deployed", NULL, 0, ts("2026-10-25T00:00:00Z"), D_DEPLOYED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run(f, as_of, "", &st), TLY_OK);
        assert_int_equal(st.digests_created, 0);
        assert_int_equal(st.digests_shown, 1);
        assert_int_equal(st.items, 1);
        e2 = outbox_file(f, "acme.eml", &l2);
        csv2 = slurp(f->csv, &c2);
        assert_int_equal(l1, l2);
        assert_memory_equal(e1, e2, l1);
        assert_int_equal(c1, c2);
        assert_memory_equal(csv1, csv2, c1);
        assert_false(has_file(f, "bolt.eml"));
        free(e2);
        free(csv2);
    }
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"), 2);

    /* the next night: a new digest with only the waiting items */
    assert_int_equal(run(f, ts("2026-10-30T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 2);
    assert_int_equal(st.items, 2);
    e2 = outbox_file(f, "acme.eml", &l2);
    {
        struct parsed p = parse_digest(e2, l2);
        assert_contains(p.text, "has been deployed");
        assert_lacks(p.text, "You have used 50.00%");
        assert_contains(g_mime_message_get_message_id(p.m), ".20261030T000000Z@");
        parsed_free(&p);
    }
    {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM items i JOIN digests d ON d.id ="
                 " i.digest_id WHERE i.id = %lld AND d.as_of = %lld", (long long)late,
                 (long long)ts("2026-10-30T00:00:00Z"));
        assert_int_equal(count(f, sql), 1);
    }
    free(e2);
    free(e1);
    free(csv1);
    fx_free(f);
}

static void test_digest_later_as_of_without_new_items_makes_none(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    char *csv;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(run(f, ts("2026-10-30T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 0);
    assert_int_equal(st.digests_shown, 0);
    assert_false(has_file(f, "acme.eml"));
    csv = slurp(f->csv, NULL);
    assert_string_equal(csv, "account_id,item,pool,threshold,ts,recipient,digest\n");
    free(csv);
    /* an earlier as-of creates nothing either: items are never taken twice */
    assert_int_equal(run(f, ts("2026-10-25T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM digests"), 1);
    fx_free(f);
}

/*
 * digest.h "Outbox backlog": digests whose outbox was never put in place
 * (the swap failed, or the run died first) are in the next outbox, under
 * ACCOUNT+AS-OF.eml with their items in notifications.csv; a re-run at
 * that as-of shows them again, and the outbox after it no more.
 */
static void test_digest_outbox_never_in_place_shown_by_the_next(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    size_t l1, l2;
    char *lost, *shown, *csv;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    assert_int_equal(run_unshown(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    lost = outbox_file(f, "acme.eml", &l1);

    add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-29T10:00:00Z"), D_DEPLOYED);
    for (int i = 0; i < 2; i++) {           /* the next night, then its re-run */
        assert_int_equal(run(f, ts("2026-10-30T00:00:00Z"), "", &st), TLY_OK);
        assert_int_equal(st.digests_created, i == 0);
        assert_int_equal(st.digests_shown, 2);
        assert_int_equal(st.items, 2);
        assert_true(has_file(f, "acme.eml"));
        shown = outbox_file(f, "acme+20261029T000000Z.eml", &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(lost, shown, l1);   /* the stored bytes, not a new e-mail */
        free(shown);
        csv = slurp(f->csv, NULL);
        assert_contains(csv, "acme,script_deployed,");
        assert_contains(csv, "acme,threshold,credits,50,2026-10-20T10:00:00Z,");
        free(csv);
    }
    assert_int_equal(run(f, ts("2026-10-31T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_shown, 0);
    assert_false(has_file(f, "acme+20261029T000000Z.eml"));
    free(lost);
    fx_free(f);
}

static void test_digest_crash_between_commit_and_files_gives_identical_files(void **state)
{
    struct fx *f = fx_new(), *g = fx_new();
    struct tly_notify_stats st;
    int64_t as_of = ts("2026-10-29T00:00:00Z");
    char missing[128], *want, *got;
    size_t wl, gl;
    (void)state;

    for (int i = 0; i < 2; i++) {
        struct fx *x = i ? g : f;
        add_account(x, "acme", "Acme", "gale", "admin@acme.example");
        add_item(x, "acme", "negative_balance", "credits", 0, ts("2026-10-27T00:00:00Z"), D_NEGATIVE);
    }
    /* the control: an uninterrupted run on an identical ledger */
    assert_int_equal(run(g, as_of, "", &st), TLY_OK);
    want = outbox_file(g, "acme.eml", &wl);

    /* the crash: committed, then no file could be written (the outbox is gone) */
    snprintf(missing, sizeof missing, "%s/no-such-dir", f->t.dir);
    tly_error_quiet(1);
    assert_int_equal(tly_notify_run(f->l, &f->s, as_of, missing, "/dev/null", "", &st),
                     TLY_ERR_OUTPUT);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(count(f, "SELECT count(*) FROM digests"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"), 0);

    /* the re-run writes the same bytes, from the ledger */
    assert_int_equal(run(f, as_of, "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 0);
    got = outbox_file(f, "acme.eml", &gl);
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
    free(got);

    /* and again after the file is lost from a finished outbox */
    {
        char path[800];
        snprintf(path, sizeof path, "%s/acme.eml", f->outbox);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(run(f, as_of, "", &st), TLY_OK);
    got = outbox_file(f, "acme.eml", &gl);
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
    free(got);
    free(want);
    fx_free(f);
    fx_free(g);
}

/* A sendmail stand-in: fails while 'marker' is absent (creating it), else appends stdin to 'log'. */
static void make_sendmail(struct fx *f, char *cmd, size_t cap, char *log, size_t logcap)
{
    char script[128];
    FILE *fp;

    snprintf(script, sizeof script, "%s/fake-sendmail", f->t.dir);
    snprintf(log, logcap, "%s/sent.log", f->t.dir);
    fp = fopen(script, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n"
                "# fails once: while the marker is absent\n"
                "if [ ! -e '%s/marker' ]; then : > '%s/marker'; exit 75; fi\n"
                "[ \"$1\" = -t ] && [ \"$2\" = -i ] || exit 64\n"
                "{ echo \"== $TALLY_ACCOUNT_ID $TALLY_MESSAGE_ID\"; cat; } >> '%s'\n",
            f->t.dir, f->t.dir, log);
    fclose(fp);
    assert_int_equal(chmod(script, 0755), 0);
    snprintf(cmd, cap, "'%s' -t -i", script);
}

static void test_digest_sendmail_fails_once_then_sent_once(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    int64_t as_of = ts("2026-10-29T00:00:00Z");
    char cmd[256], log[128], *sent, *eml;
    size_t el;
    (void)state;

    make_sendmail(f, cmd, sizeof cmd, log, sizeof log);
    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);

    /* night 1: the hand-off fails; reported, not fatal, not recorded */
    tly_error_quiet(1);
    assert_int_equal(run(f, as_of, cmd, &st), TLY_OK);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(st.handed_off, 0);
    assert_int_equal(st.handoff_failed, 1);
    assert_int_equal(count(f, "SELECT handed_off FROM digests"), 0);
    assert_null(slurp(log, NULL));
    eml = outbox_file(f, "acme.eml", &el);

    /* the retry (a re-run at the same as-of): sent once, recorded */
    assert_int_equal(run(f, as_of, cmd, &st), TLY_OK);
    assert_int_equal(st.digests_created, 0);
    assert_int_equal(st.handed_off, 1);
    assert_int_equal(st.handoff_failed, 0);
    assert_int_equal(count(f, "SELECT handed_off FROM digests"), 1);

    /* later runs, with or without new digests, never send it again */
    add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-29T10:00:00Z"), D_DEPLOYED);
    assert_int_equal(run(f, as_of, cmd, &st), TLY_OK);
    assert_int_equal(st.handed_off, 0);
    assert_int_equal(run(f, ts("2026-10-30T00:00:00Z"), cmd, &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(st.handed_off, 1);         /* only the new one */
    assert_int_equal(run(f, ts("2026-10-31T00:00:00Z"), cmd, &st), TLY_OK);
    assert_int_equal(st.handed_off, 0);

    sent = slurp(log, NULL);
    assert_non_null(sent);
    {
        /* exactly two messages, the first byte for byte the stored one */
        const char *first = strstr(sent, "== acme <tally."), *second;
        assert_non_null(first);
        second = strstr(first + 1, "== acme <tally.");
        assert_non_null(second);
        assert_null(strstr(second + 1, "== acme <tally."));
        first = strchr(first, '\n') + 1;
        assert_true((size_t)(second - first) == el);
        assert_memory_equal(first, eml, el);
        assert_contains(second, ".20261030T000000Z@tally.invalid>");
    }
    free(sent);
    free(eml);
    fx_free(f);
}

static void test_digest_sendmail_that_does_not_read_is_a_failure_not_a_crash(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    char big[200000];
    (void)state;

    /* a long name makes the message larger than a pipe's buffer: EPIPE, not SIGPIPE */
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    add_account(f, "acme", big, "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    tly_error_quiet(1);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "exit 0", &st), TLY_OK);
    assert_int_equal(st.handoff_failed, 1);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "exit 1", &st), TLY_OK);
    assert_int_equal(st.handoff_failed, 1);
    tly_error_quiet(0);
    assert_int_equal(count(f, "SELECT handed_off FROM digests"), 0);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "cat > /dev/null", &st), TLY_OK);
    assert_int_equal(st.handed_off, 1);
    assert_int_equal(count(f, "SELECT handed_off FROM digests"), 1);
    fx_free(f);
}

/* ------------------------------------------------------------------------
 * Hostile input and the guards
 * ---------------------------------------------------------------------- */

static void test_digest_hostile_names_cannot_break_headers_or_html(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    struct parsed p;
    json_t *d;
    char *detail, *longname;
    const char *evil = "Evil\r\nBcc: victim@example.com\r\n\r\n<script>alert('x')</script>"
                       " & \"Ünïcødé ☃\"\x01\x7f";
    (void)state;

    longname = malloc(3001);
    assert_non_null(longname);
    for (int i = 0; i < 3000; i++)
        longname[i] = "abcdefghijklmnopqrstuvwxyz"[i % 26];
    longname[3000] = '\0';
    add_account(f, "acme", evil, "gale", "admin@acme.example");
    d = json_pack("{s:s, s:s, s:s, s:s}", "resource_id", "s-evil", "deployment_id", "s-evil",
                  "name", evil, "endpoint", "javascript:alert(1)\"><script>x</script>\r\nX: y");
    detail = json_dumps(d, 0);
    add_item(f, "acme", "script_deployed", NULL, 0, ts("2026-10-20T10:00:00Z"), detail);
    free(detail);
    json_decref(d);
    d = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:s}]}", "stop_at", "2026-10-21T00:00:00Z",
                  "message", "Stop\r\nSubject: spoofed", "balance", "-1",
                  "deployments", "category", "ocr\r\nX-Evil: 1", "resource_id", "r",
                  "deployment_id", "d", "name", longname);
    detail = json_dumps(d, 0);
    add_item(f, "acme", "deployments_stopped", "credits", 0, ts("2026-10-21T00:00:00Z"), detail);
    free(detail);
    json_decref(d);

    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    p = parse_file(f, "acme.eml");         /* 7-bit, lines <= 998, LF only: checked there */
    assert_null(g_mime_object_get_header(GMIME_OBJECT(p.m), "Bcc"));
    assert_null(g_mime_object_get_header(GMIME_OBJECT(p.m), "X-Evil"));
    assert_null(g_mime_object_get_header(GMIME_OBJECT(p.m), "X"));
    assert_lacks(subject_of(p.m), "spoofed");
    assert_lacks(subject_of(p.m), "Evil");
    assert_int_equal(internet_address_list_length(
        g_mime_message_get_addresses(p.m, GMIME_ADDRESS_TYPE_TO)), 1);
    assert_int_equal(internet_address_list_length(
        g_mime_message_get_addresses(p.m, GMIME_ADDRESS_TYPE_BCC)), 0);
    /* the body keeps the name, with control characters as spaces */
    assert_contains(p.text, "Evil  Bcc: victim@example.com    <script>alert('x')</script> & "
                            "\"Ünïcødé ☃\"  ");
    assert_contains(p.text, longname);
    assert_contains(p.text, "Stop  Subject: spoofed");
    /* the HTML part escapes every value */
    assert_lacks(p.html, "<script");
    assert_lacks(p.html, "\"><");
    assert_contains(p.html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                            "&quot;Ünïcødé ☃&quot;");
    assert_contains(p.html, "javascript:alert(1)&quot;&gt;&lt;script&gt;");
    assert_lacks(p.html, "href=");
    assert_contains(p.html, longname);
    parsed_free(&p);
    free(longname);
    fx_free(f);
}

static void test_digest_invalid_address_refused_items_wait(void **state)
{
    static const char *const bad[] = {
        "a@b.example\r\nBcc: victim@example.com", "a@b.example\n", "no-at-sign",
        "Name <a@b.example>", "a@b.example, c@d.example", "ünï@b.example", "a@b..example",
        ".a@b.example", "a b@c.example", "a@", "@b.example", "a@b.example (comment)", "",
    };
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    char id[16];
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(id, sizeof id, "bad%zu", i);
        add_account(f, id, "Bad", "gale", bad[i]);
        add_item(f, id, "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    }
    add_account(f, "good", "Good", "gale", "admin@good.example");
    add_item(f, "good", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    tly_error_quiet(1);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(st.skipped, (long)(sizeof bad / sizeof bad[0]));
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"),
                     (int64_t)(sizeof bad / sizeof bad[0]));
    assert_false(has_file(f, "bad0.eml"));

    /* fixed at ingest later: the waiting items go out at the next as-of */
    exec_sql(f, "UPDATE accounts SET admin_email = 'fixed@bad.example' WHERE account_id = 'bad0'");
    tly_error_quiet(1);
    assert_int_equal(run(f, ts("2026-10-30T00:00:00Z"), "", &st), TLY_OK);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 1);
    assert_true(has_file(f, "bad0.eml"));
    fx_free(f);
}

static void test_digest_address_guard(void **state)
{
    static const char *const good[] = {
        "a@b.c", "first.last+tag@sub.example.com", "x_y-z!#$%&'*/=?^`{|}~@example.org",
        "\"john doe\"@example.com", "\"q\\\"uote\"@example.com", "admin@[192.0.2.1]",
    };
    static const char *const bad[] = {
        "", "a", "a@", "@b", "a@@b.c", "a.@b.c", "a..b@c.d", "a@b.c.", "a@b..c", "a\r@b.c",
        "a@b.c\r\n", "\"unterminated@b.c", "\"x\"y@b.c", "a@[1.2.3.4", "<a@b.c>", "a@b.c>",
        "é@b.c", "a@b,c.d", "a b@c.d",
    };
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!tly_digest_valid_address(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tly_digest_valid_address(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_true(tly_digest_valid_account_id("acme-01:eu@x.y_z"));
    assert_false(tly_digest_valid_account_id("_acme"));
    assert_false(tly_digest_valid_account_id("../etc"));
    assert_false(tly_digest_valid_account_id("a/b"));
    assert_false(tly_digest_valid_account_id(".hidden"));
    assert_false(tly_digest_valid_account_id(""));
}

static void test_digest_unreadable_detail_skips_account(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    (void)state;

    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    add_item(f, "acme", "threshold", "credits", 70, ts("2026-10-21T10:00:00Z"), "{\"used\":\"x\"}");
    add_account(f, "bolt", "Bolt", "gale", "admin@bolt.example");
    add_item(f, "bolt", "negative_balance", "credits", 0, ts("2026-10-20T10:00:00Z"), "not json");
    add_account(f, "calm", "Calm", "gale", "admin@calm.example");
    add_item(f, "calm", "mystery", NULL, 0, ts("2026-10-20T10:00:00Z"), "{}");
    add_account(f, "dart", "Dart", "gale", "admin@dart.example");
    add_item(f, "dart", "script_deployed", NULL, 0, ts("2026-10-20T10:00:00Z"), D_DEPLOYED);
    tly_error_quiet(1);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 1);
    assert_int_equal(st.skipped, 3);
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"), 4);
    assert_true(has_file(f, "dart.eml"));
    fx_free(f);
}

static void test_digest_template_error_stores_nothing(void **state)
{
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    char cmd[1200];
    (void)state;

    snprintf(f->tpl, sizeof f->tpl, "%s/tpl", f->t.dir);
    snprintf(cmd, sizeof cmd, "cp -r '%s/templates' '%s' && printf 'oops {{#x}}\\n' >> '%s/item-threshold.txt'",
             srcdir(), f->tpl, f->tpl);
    assert_int_equal(system(cmd), 0);
    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    tly_error_quiet(1);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_ERR_INPUT);
    tly_error_quiet(0);
    assert_int_equal(st.digests_created, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM digests"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM state WHERE key = 'notify_as_of'"), 0);

    /* fixed templates: the same as-of now works, as if the failed run never happened */
    snprintf(f->tpl, sizeof f->tpl, "%s/templates", srcdir());
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    assert_int_equal(st.digests_created, 1);
    fx_free(f);
}

/*
 * A {{name}} with no value is found only when a template meets it, so the
 * check renders a sample digest of every kind, with and without optional
 * values: a misspelt name, or an optional one outside its section, is
 * refused before a run commits anything.
 */
static void test_digest_check_renders_every_kind_of_item(void **state)
{
    static const struct {
        const char *file, *sed;
    } breaks[] = {
        { "item-negative_balance.html", "s|{{balance}}|{{balanse}}|" },
        { "item-script_deployed.txt", "s|{{[#/]endpoint}}||g" },      /* the value outside its section */
        { "item-deployments_stopped.txt", "s|{{name}}|{{other_id}}|" },
        { "item-negative_balance.txt", "s|{{name}}|{{other_id}}|" },
        { "subject.txt", "s|{{#others}}|{{others}}&|" },
        { "digest.html", "s|{{count}}|{{cuont}}|" },                  /* only a digest of many */
    };
    struct fx *f = fx_new();
    char cmd[8192];
    (void)state;

    assert_int_equal(tly_notify_check(&f->s), TLY_OK);
    snprintf(f->tpl, sizeof f->tpl, "%s/tpl", f->t.dir);
    for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/templates' '%s' && sed -i '%s' '%s/%s' && "
                 "! cmp -s '%s/templates/%s' '%s/%s'", f->tpl, srcdir(), f->tpl, breaks[i].sed,
                 f->tpl, breaks[i].file, srcdir(), breaks[i].file, f->tpl, breaks[i].file);
        assert_int_equal(system(cmd), 0);
        tly_error_quiet(1);
        if (tly_notify_check(&f->s) != TLY_ERR_INPUT)
            fail_msg("%s edited by '%s' passed the check", breaks[i].file, breaks[i].sed);
        tly_error_quiet(0);
    }
    fx_free(f);
}

static void test_digest_bad_sender_setting_is_an_error(void **state)
{
    /* GMime would read the last two as a@b.c, dropping what follows */
    static const char *const bad[] = { "", "not an address", "a@b.c, d@e.f", "Tally <a@b.c>\r\nBcc: x@y.z",
                                       "a@b.c # billing", "Tally <a@b.c> (old)",
                                       "Tally <a@b.c> # billing ->", "Tally <a@b.c>>",
                                       "Tally <a@b.c> # <>" };
    struct fx *f = fx_new();
    struct tly_notify_stats st;
    (void)state;

    tly_error_quiet(1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->s.sender = bad[i];
        assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_ERR_USAGE);
        assert_int_equal(tly_notify_check(&f->s), TLY_ERR_USAGE);
    }
    tly_error_quiet(0);
    /* a configured sender: its domain names the Message-IDs */
    f->s.sender = "Ünïcødé Billing <billing@mail.example.com>";
    add_account(f, "acme", "Acme", "gale", "admin@acme.example");
    add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
    assert_int_equal(run(f, ts("2026-10-29T00:00:00Z"), "", &st), TLY_OK);
    {
        struct parsed p = parse_file(f, "acme.eml");
        assert_contains(g_mime_message_get_message_id(p.m), "@mail.example.com");
        assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(
            internet_address_list_get_address(g_mime_message_get_from(p.m), 0))),
            "billing@mail.example.com");
        assert_string_equal(internet_address_get_name(
            internet_address_list_get_address(g_mime_message_get_from(p.m), 0)), "Ünïcødé Billing");
        parsed_free(&p);
    }
    fx_free(f);
}

/*
 * Every allocation failing in turn (style §14): each run either fails
 * cleanly or succeeds, and the ledger is always consistent: an item is
 * taken exactly when its digest exists.  A run that failed after its
 * commit is finished by the next one with the same bytes.
 */
static void test_digest_out_of_memory_is_clean_and_exactly_once(void **state)
{
    int64_t as_of = ts("2026-10-29T00:00:00Z");
    char *want = NULL;
    size_t wl = 0;
    int done = 0;
    (void)state;

    for (long n = 1; n < 5000 && !done; n++) {
        struct fx *f = fx_new();
        struct tly_notify_stats st;
        int err;

        add_account(f, "acme", "Acme", "gale", "admin@acme.example");
        add_item(f, "acme", "threshold", "credits", 50, ts("2026-10-20T10:00:00Z"), D_THRESHOLD_CREDITS);
        add_item(f, "acme", "deployments_stopped", "credits", 0, ts("2026-10-28T19:06:41Z"), D_STOPPED);
        tly_error_quiet(1);
        tly_alloc_fail_at(n);
        err = run(f, as_of, "", &st);
        tly_alloc_fail_at(0);
        tly_error_quiet(0);
        if (err == TLY_OK) {
            done = 1;
            if (getenv("TALLY_TEST_VERBOSE"))
                fprintf(stderr, "allocation faults tried: %ld\n", n - 1);
        }
        else
            assert_true(err == TLY_ERR_NOMEM || err == TLY_ERR_LEDGER || err == TLY_ERR_OUTPUT);
        assert_int_equal(count(f, "SELECT count(*) FROM items WHERE digest_id IS NULL"),
                         count(f, "SELECT count(*) FROM digests") ? 0 : 2);
        assert_int_equal(run(f, as_of, "", &st), TLY_OK);
        if (!want) {
            want = outbox_file(f, "acme.eml", &wl);
            assert_non_null(want);
        } else {
            size_t gl;
            char *got = outbox_file(f, "acme.eml", &gl);
            assert_non_null(got);
            assert_int_equal(gl, wl);
            assert_memory_equal(got, want, wl);
            free(got);
        }
        fx_free(f);
    }
    assert_true(done);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_one_per_account_with_undelivered_items),
        cmocka_unit_test(test_digest_items_oldest_first_ts_then_id),
        cmocka_unit_test(test_digest_thresholds_crossed_together_show_the_real_percentage),
        cmocka_unit_test(test_digest_body_has_the_figures_and_what_to_do),
        cmocka_unit_test(test_digest_headers_and_subject),
        cmocka_unit_test(test_digest_golden_per_item_kind),
        cmocka_unit_test(test_digest_rerun_same_as_of_same_bytes_creates_none),
        cmocka_unit_test(test_digest_later_as_of_without_new_items_makes_none),
        cmocka_unit_test(test_digest_outbox_never_in_place_shown_by_the_next),
        cmocka_unit_test(test_digest_crash_between_commit_and_files_gives_identical_files),
        cmocka_unit_test(test_digest_sendmail_fails_once_then_sent_once),
        cmocka_unit_test(test_digest_sendmail_that_does_not_read_is_a_failure_not_a_crash),
        cmocka_unit_test(test_digest_hostile_names_cannot_break_headers_or_html),
        cmocka_unit_test(test_digest_invalid_address_refused_items_wait),
        cmocka_unit_test(test_digest_address_guard),
        cmocka_unit_test(test_digest_unreadable_detail_skips_account),
        cmocka_unit_test(test_digest_template_error_stores_nothing),
        cmocka_unit_test(test_digest_check_renders_every_kind_of_item),
        cmocka_unit_test(test_digest_bad_sender_setting_is_an_error),
        cmocka_unit_test(test_digest_out_of_memory_is_clean_and_exactly_once),
    };
    g_mime_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
