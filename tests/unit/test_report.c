/*
 * test_report.c — the report files against hand-written result tables
 * (spec outputs.md "Files under --out DIR", semantics.md §7, §9).
 *
 * Each test fills a fresh ledger's result tables as the engine would
 * (one account per edition), writes the reports and compares whole CSV
 * files with hand-computed expected text.  The workbooks are checked for
 * what a unit test can see: determinism, inert text, charts, sheets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "fields.h"
#include "ledger.h"
#include "money.h"
#include "report.h"
#include "timeutil.h"

static char root[64];           /* the test's scratch directory */
static struct tly_ledger *ledger;

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int64_t D(const char *s)
{
    int64_t d;
    const char *why;
    assert_int_equal(tly_parse_date(s, strlen(s), &d, &why), 0);
    return d;
}

static int64_t T(const char *s)
{
    int64_t t;
    const char *why;
    assert_int_equal(tly_parse_ts(s, strlen(s), &t, &why), 0);
    return t;
}

/* Credits as written in the spec, "52.4" → 52,400,000 micro-credits. */
static long long M(const char *s)
{
    int64_t v;
    const char *why;
    assert_int_equal(tly_parse_micro(s, strlen(s), INT64_MAX / 2, &v, &why), 0);
    return (long long)v;
}

static void sql(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_int_equal(tly_ledger_exec(ledger, buf), TLY_OK);
}

static void usage(const char *acct, const char *day, const char *cat, const char *res,
                  const char *dep, const char *credits, long long seconds, long long runs, int late)
{
    sql("INSERT INTO usage_day VALUES('%s', %lld, '%s', '%s', '%s', %lld, %lld, %lld, %d, 0)",
        acct, (long long)D(day), cat, res, dep, M(credits), seconds, runs, late);
}

static void runs(const char *acct, const char *day, const char *kind, const char *res, long long n)
{
    usage(acct, day, kind, res, "", "0", 0, n, 0);
}

/* 'text' NULL → SQL NULL; otherwise quoted with '' doubled. */
static const char *q(char *buf, size_t cap, const char *text)
{
    size_t o = 0;
    if (!text)
        return "NULL";
    buf[o++] = '\'';
    for (; *text && o + 3 < cap; text++) {
        if (*text == '\'')
            buf[o++] = '\'';
        buf[o++] = *text;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

struct dep {
    const char *acct, *cat, *res, *dep, *name, *dep_name, *dep_type, *model_type, *lang, *hw;
    int units, replicas;
    const char *status, *last_deployed, *last_updated, *first_ts;
};

static void dep_state(const struct dep *d)
{
    char a[600], b[600], c[600], e[600], f[600], g[600];
    char ld[32] = "NULL";
    if (d->last_deployed)
        snprintf(ld, sizeof ld, "%lld", (long long)D(d->last_deployed));
    sql("INSERT INTO deployment_state VALUES('%s', '%s', '%s', '%s', %s, %s, %s, NULL, %s, NULL,"
        " %s, NULL, %s, %d, %d, '%s', %s, %lld, %lld)",
        d->acct, d->cat, d->res, d->dep, q(a, sizeof a, d->name), q(b, sizeof b, d->dep_name),
        q(c, sizeof c, d->dep_type), q(e, sizeof e, d->model_type), q(f, sizeof f, d->lang),
        q(g, sizeof g, d->hw), d->units, d->replicas, d->status, ld,
        (long long)D(d->last_updated), (long long)T(d->first_ts));
}

static void runnable(const char *acct, const char *kind, const char *res, const char *name,
                     const char *owner, const char *status, const char *last_active)
{
    char a[600], b[600], la[32] = "NULL";
    if (last_active)
        snprintf(la, sizeof la, "%lld", (long long)D(last_active));
    sql("INSERT INTO runnable_state VALUES('%s', '%s', '%s', %s, %s, '%s', %s)", acct, kind, res,
        q(a, sizeof a, name), q(b, sizeof b, owner), status, la);
}

static void account(const char *acct, const char *name, const char *edition, const char *as_of,
                    const char *cycle_start, const char *cycle_end, long long runs_used,
                    long long runs_total, const char *used, const char *total,
                    const char *remaining, const char *banner_credits, const char *banner_runs)
{
    sql("INSERT INTO account_state VALUES('%s', '%s', '%s', 'admin@x.example', %lld, %lld, %lld,"
        " %lld, %lld, %lld, %lld, %lld, %lld, '%s', '%s', NULL)",
        acct, name, edition, (long long)T(as_of), (long long)D(cycle_start), (long long)D(cycle_end),
        runs_used * TLY_MICRO, runs_total * TLY_MICRO, (runs_total - runs_used) * TLY_MICRO,
        M(used), M(total), M(remaining), banner_credits, banner_runs);
}

/* opening, granted, used, the six categories, used_runs, adjusted, expired, late, closing, carried */
static void statement(const char *acct, const char *pool, const char *start, const char *end,
                      const char *state, const char *const v[15])
{
    sql("INSERT INTO statements VALUES('%s', '%s', %lld, %lld, '%s', %lld, %lld, %lld, %lld, %lld,"
        " %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, 0, NULL)",
        acct, pool, (long long)D(start), (long long)D(end), state, M(v[0]), M(v[1]), M(v[2]),
        M(v[3]), M(v[4]), M(v[5]), M(v[6]), M(v[7]), M(v[8]), M(v[9]), M(v[10]), M(v[11]),
        M(v[12]), M(v[13]), M(v[14]));
}

static void rate(const char *hw, const char *cat, const char *desc, const char *vcpu,
                 const char *mem, const char *from, const char *to)
{
    char a[600], b[64], c[64], e[32] = "NULL";
    if (to)
        snprintf(e, sizeof e, "%lld", (long long)T(to));
    sql("INSERT INTO rates(hardware, category, description, vcpu, memory_gb, credits_per_hour, effective_from, effective_to, line) VALUES('%s', '%s', %s, %s, %s, 1000000, %lld, %s, 1)", hw, cat,
        q(a, sizeof a, desc), q(b, sizeof b, vcpu), q(c, sizeof c, mem), (long long)T(from), e);
}

/* ------------------------------------------------------------------------
 * The three accounts
 * ------------------------------------------------------------------------ */

static const char HYPERLINK[] = "=HYPERLINK(\"http://evil.example\",\"x\")";

static void rate_card(void)
{
    rate("gpu.a10g-24g", "model", "NVIDIA A10G 24GB", NULL, NULL, "2026-01-01T00:00:00Z", NULL);
    rate("cpu.guard-small", "guardrail", "2 vCPU / 4 GB", "2", "4", "2026-01-01T00:00:00Z", NULL);
    /* in force at the as-of: the newer row; before it, the older */
    rate("gpu.a100-80g", "model", "NVIDIA A100 80GB (2025)", NULL, NULL, "2025-01-01T00:00:00Z",
         "2026-01-01T00:00:00Z");
    rate("gpu.a100-80g", "model", "NVIDIA A100 80GB", NULL, NULL, "2026-01-01T00:00:00Z", NULL);
    rate("cpu.script-1x2", "script", "1 vCPU / 2 GB", "1", "2", "2026-01-01T00:00:00Z", NULL);
    rate("cpu.script-2x4", "script", "2 vCPU / 4 GB", "2", "4", "2026-01-01T00:00:00Z", NULL);
    /* none in force at the as-of: the latest row is shown */
    rate("gpu.t4-ocr", "ocr", "NVIDIA T4 (2025)", NULL, NULL, "2025-01-01T00:00:00Z",
         "2026-01-01T00:00:00Z");
    rate("gpu.t4-ocr", "ocr", "NVIDIA T4 (2027)", NULL, NULL, "2027-01-01T00:00:00Z", NULL);
    rate("cpu.browser", "browser", "Headless browser", "1", "1", "2026-01-01T00:00:00Z", NULL);
}

/*
 * GALE, as in the spec's gale-free-grant example, plus an agent that never
 * ran (named like a formula) and 5 runs of one never deployed.
 */
static void gale(void)
{
    static const char *const credits[15] = { "0", "75", "52.4", "42", "0", "10.4", "0", "0", "0",
                                             "0", "0", "0", "0", "22.6", "0" };
    static const char *const runsp[15] = { "0", "10000", "306", "0", "0", "0", "0", "0", "0",
                                           "306", "0", "0", "0", "9694", "0" };
    static const char *const guard_days[] = { "2026-10-02", "2026-10-03", "2026-10-04",
                                              "2026-10-05", "2026-10-06", "2026-10-07",
                                              "2026-10-08", "2026-10-09" };
    struct dep llama = { "acct-gale", "model", "llama-3-8b", "dep-llama-prod", "Llama 3 8B", "prod",
                         "dedicated", "base", NULL, "gpu.a10g-24g", 1, 2, "Undeployed",
                         "2026-10-03", "2026-10-04", "2026-10-03T20:00:00Z" };
    struct dep guard = { "acct-gale", "guardrail", "gr-toxicity", "gr-toxicity", "Toxicity filter",
                         NULL, NULL, NULL, NULL, "cpu.guard-small", 1, 1, "Deployed",
                         "2026-10-01", "2026-10-01", "2026-10-01T08:00:00Z" };

    account("acct-gale", "Northwind Agents", "gale", "2026-10-10T00:00:00Z", "2026-10-01",
            "2026-11-01", 306, 10000, "52.4", "75", "22.6", "50", "none");
    statement("acct-gale", "credits", "2026-10-01", "2026-11-01", "open", credits);
    statement("acct-gale", "runs", "2026-10-01", "2026-11-01", "open", runsp);
    dep_state(&llama);
    dep_state(&guard);
    usage("acct-gale", "2026-10-03", "model", "llama-3-8b", "dep-llama-prod", "16", 14400, 0, 0);
    usage("acct-gale", "2026-10-04", "model", "llama-3-8b", "dep-llama-prod", "26", 23400, 0, 0);
    usage("acct-gale", "2026-10-01", "guardrail", "gr-toxicity", "gr-toxicity", "0.8", 57600, 0, 0);
    for (size_t i = 0; i < sizeof guard_days / sizeof guard_days[0]; i++)
        usage("acct-gale", guard_days[i], "guardrail", "gr-toxicity", "gr-toxicity", "1.2", 86400,
              0, 0);
    runnable("acct-gale", "agent", "agent-support", "Support Agent", "maria@northwind.example",
             "Deployed", "2026-10-05");
    runnable("acct-gale", "agent", "agent-billing", "Billing Agent", "li@northwind.example",
             "Deployed", "2026-10-02");
    runnable("acct-gale", "agent", "agent-idle", HYPERLINK, "+1", "Undeployed", NULL);
    runs("acct-gale", "2026-10-01", "agent", "agent-support", 100);
    runs("acct-gale", "2026-10-05", "agent", "agent-support", 100);
    runs("acct-gale", "2026-10-02", "agent", "agent-billing", 101);
    runs("acct-gale", "2026-10-06", "agent", "agent-ghost", 5);
}

/*
 * Agent Platform, anchor the 15th, as-of 2026-10-25: a fine-tuning job that
 * shares its deployment_id with a hosting deployment, a deleted model, a
 * script with two deployments, usage in the previous (closed, in debt) cycle.
 */
static void agent_platform(void)
{
    static const char *const credits_prev[15] = { "0", "0", "2.3", "0", "0", "0", "2.3", "0", "0",
                                                  "0", "0", "0", "0", "-2.3", "-2.3" };
    static const char *const credits[15] = { "-2.3", "502.3", "124", "53", "30", "2.4", "38.6",
                                             "0", "0", "0", "0", "0", "0", "376", "0" };
    static const char *const runs_prev[15] = { "0", "10000", "7", "0", "0", "0", "0", "0", "0",
                                               "7", "0", "0", "0", "9993", "0" };
    static const char *const runsp[15] = { "9993", "0", "157", "0", "0", "0", "0", "0", "0",
                                           "157", "0", "0", "0", "9836", "0" };
    static const char *const enrich[][3] = {
        { "2026-10-12", "2", "36000" }, { "2026-10-18", "3.6", "64800" },
        { "2026-10-19", "4.8", "86400" }, { "2026-10-20", "5.4", "86400" },
        { "2026-10-21", "6", "86400" }, { "2026-10-22", "6", "86400" },
        { "2026-10-23", "6", "86400" }, { "2026-10-24", "6", "86400" },
    };
    const struct dep deps[] = {
        { "acct-ap", "model", "mistral-7b", "dep-shared", "Mistral 7B", "support-ft", "dedicated",
          "fine-tuned", NULL, "gpu.a100-80g", 1, 1, "Undeployed", "2026-10-21", "2026-10-22",
          "2026-10-21T14:00:00Z" },
        /* a running job does not make the model Deployed */
        { "acct-ap", "finetune", "mistral-7b", "dep-shared", "Mistral 7B", NULL, NULL, NULL, NULL,
          "gpu.a100-80g", 2, 1, "Deployed", NULL, "2026-10-19", "2026-10-19T10:00:00Z" },
        { "acct-ap", "model", "gpt-del", "gpt-del-1", "-2", NULL, NULL, "base", NULL,
          "gpu.a100-80g", 1, 1, "Deleted", "2026-10-16", "2026-10-17", "2026-10-16T00:00:00Z" },
        { "acct-ap", "guardrail", "gr-pii", "gr-pii", "@x", NULL, NULL, NULL, NULL,
          "cpu.guard-small", 1, 1, "Undeployed", "2026-10-16", "2026-10-17", "2026-10-16T00:00:00Z" },
        { "acct-ap", "script", "s-enrich", "s-enrich", "Lead enrichment", NULL, NULL, NULL, "3.11",
          "cpu.script-1x2", 1, 1, "Deployed", "2026-10-18", "2026-10-18", "2026-10-18T06:00:00Z" },
        /* one script, two deployments: names from the latest, hardware from the running one */
        { "acct-ap", "script", "s-multi", "s-multi-a", "Multi new", NULL, NULL, NULL, "3.12",
          "cpu.script-1x2", 1, 1, "Undeployed", "2026-10-16", "2026-10-17", "2026-10-16T00:00:00Z" },
        { "acct-ap", "script", "s-multi", "s-multi-b", "Multi old", NULL, NULL, NULL, "3.10",
          "cpu.script-2x4", 2, 1, "Deployed", "2026-10-10", "2026-10-10", "2026-10-10T00:00:00Z" },
    };
    char day[16];

    account("acct-ap", "Contoso Tools", "agent-platform", "2026-10-25T00:00:00Z", "2026-10-15",
            "2026-11-15", 157, 9993, "124", "500", "376", "20", "none");
    statement("acct-ap", "credits", "2026-09-15", "2026-10-15", "closed", credits_prev);
    statement("acct-ap", "credits", "2026-10-15", "2026-11-15", "open", credits);
    statement("acct-ap", "runs", "2026-09-15", "2026-10-15", "closed", runs_prev);
    statement("acct-ap", "runs", "2026-10-15", "2026-11-15", "open", runsp);
    for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++)
        dep_state(&deps[i]);
    for (size_t i = 0; i < sizeof enrich / sizeof enrich[0]; i++)
        usage("acct-ap", enrich[i][0], "script", "s-enrich", "s-enrich", enrich[i][1],
              atoll(enrich[i][2]), 0, 0);
    usage("acct-ap", "2026-10-16", "script", "s-multi", "s-multi-a", "0.5", 7200, 0, 0);
    usage("acct-ap", "2026-10-10", "script", "s-multi", "s-multi-b", "0.3", 86400, 0, 0);
    usage("acct-ap", "2026-10-22", "script", "s-multi", "s-multi-b", "0.3", 86400, 0, 0);
    usage("acct-ap", "2026-10-19", "finetune", "mistral-7b", "dep-shared", "30", 13500, 0, 0);
    usage("acct-ap", "2026-10-21", "model", "mistral-7b", "dep-shared", "40", 36000, 0, 0);
    usage("acct-ap", "2026-10-22", "model", "mistral-7b", "dep-shared", "8", 7200, 0, 0);
    usage("acct-ap", "2026-10-16", "model", "gpt-del", "gpt-del-1", "5", 3600, 0, 0);
    usage("acct-ap", "2026-10-16", "guardrail", "gr-pii", "gr-pii", "2.4", 86400, 0, 0);
    runnable("acct-ap", "tool", "tool-search", "Web search", "sam@contoso.example", "Deployed",
             "2026-10-24");
    runnable("acct-ap", "tool", "tool-crm", "CRM lookup", "ana@contoso.example", "Deployed",
             "2026-10-24");
    runs("acct-ap", "2026-10-10", "tool", "tool-search", 7);
    for (int d = 15; d <= 24; d++) {
        snprintf(day, sizeof day, "2026-10-%02d", d);
        runs("acct-ap", day, "tool", "tool-search", 12);
        if (d >= 16)
            runs("acct-ap", day, "tool", "tool-crm", d == 24 ? 5 : 4);
    }
}

/*
 * AI for Process, as-of 2026-11-10: October closed in debt (carried to
 * November), OCR every day (and a late row for one of its days), a browser
 * deployment without usage, a workflow without runs.
 */
static void process(void)
{
    static const char *const oct[15] = { "0", "30", "42.5", "0", "0", "0", "6.5", "36", "0", "0",
                                         "0", "0", "0", "-12.5", "-12.5" };
    static const char *const nov[15] = { "-12.5", "50", "28.25", "0", "0", "0", "0", "27", "1.25",
                                         "0", "0", "0", "0.5", "8.75", "0" };
    static const char *const runs_oct[15] = { "0", "10000", "3", "0", "0", "0", "0", "0", "0", "3",
                                              "0", "0", "0", "9997", "0" };
    static const char *const runs_nov[15] = { "9997", "0", "10", "0", "0", "0", "0", "0", "0",
                                              "10", "0", "0", "0", "9987", "0" };
    const struct dep deps[] = {
        { "acct-proc", "ocr", "ocr-invoices", "ocr-invoices-eu", "Invoice OCR", NULL, NULL, NULL,
          NULL, "gpu.t4-ocr", 1, 1, "Deployed", "2026-10-20", "2026-10-20", "2026-10-20T00:00:00Z" },
        { "acct-proc", "browser", "br-scrape", "br-scrape-1", "Scraper", NULL, NULL, NULL, NULL,
          "cpu.browser", 1, 1, "Deployed", "2026-11-02", "2026-11-02", "2026-11-02T00:00:00Z" },
        { "acct-proc", "browser", "br-scrape", "br-scrape-2", "Scraper", NULL, NULL, NULL, NULL,
          "cpu.browser", 1, 1, "Undeployed", "2026-10-01", "2026-10-02", "2026-10-01T12:00:00Z" },
        { "acct-proc", "script", "s-notify", "s-notify", "Notify AP", NULL, NULL, NULL, "3.12",
          "cpu.script-1x2", 1, 1, "Undeployed", "2026-10-27", "2026-10-30", "2026-10-27T07:00:00Z" },
    };
    char day[16];

    account("acct-proc", "Fabrikam Ops", "process", "2026-11-10T00:00:00Z", "2026-11-01",
            "2026-12-01", 10, 9997, "28.25", "37.5", "8.75", "70", "none");
    statement("acct-proc", "credits", "2026-10-01", "2026-11-01", "closed", oct);
    statement("acct-proc", "credits", "2026-11-01", "2026-12-01", "open", nov);
    statement("acct-proc", "runs", "2026-10-01", "2026-11-01", "closed", runs_oct);
    statement("acct-proc", "runs", "2026-11-01", "2026-12-01", "open", runs_nov);
    for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++)
        dep_state(&deps[i]);
    for (int d = 20; d <= 40; d++) {        /* Oct 20 … Nov 9 */
        snprintf(day, sizeof day, d <= 31 ? "2026-10-%02d" : "2026-11-%02d", d <= 31 ? d : d - 31);
        usage("acct-proc", day, "ocr", "ocr-invoices", "ocr-invoices-eu", "3", 86400, 0, 0);
    }
    usage("acct-proc", "2026-10-25", "ocr", "ocr-invoices", "ocr-invoices-eu", "0.5", 0, 0, 1);
    usage("acct-proc", "2026-11-02", "browser", "br-scrape", "br-scrape-1", "1.25", 36000, 0, 0);
    usage("acct-proc", "2026-10-27", "script", "s-notify", "s-notify", "1.7", 61200, 0, 0);
    usage("acct-proc", "2026-10-28", "script", "s-notify", "s-notify", "2.4", 86400, 0, 0);
    usage("acct-proc", "2026-10-29", "script", "s-notify", "s-notify", "2.4", 86400, 0, 0);
    runnable("acct-proc", "workflow", "wf-invoice", "Invoice intake", "kim@fabrikam.example",
             "Deployed", "2026-11-03");
    runnable("acct-proc", "workflow", "wf-onboarding", "Supplier onboarding",
             "kim@fabrikam.example", "Deployed", NULL);
    runs("acct-proc", "2026-10-02", "workflow", "wf-invoice", 3);
    runs("acct-proc", "2026-11-03", "workflow", "wf-invoice", 10);
}

static void global_rows(void)
{
    sql("INSERT INTO discrepancies VALUES('acct-proc', 'late_charge', %lld, 'ocr', 'ocr-invoices',"
        " 'ocr-invoices-eu', 500000, NULL, 0)", (long long)T("2026-10-25T00:00:00Z"));
    sql("INSERT INTO discrepancies VALUES('acct-gale', 'run_while_exhausted', %lld, 'agent',"
        " 'agent-support', NULL, NULL, '-3 runs, \"late\"', 0)", (long long)T("2026-10-05T10:00:00Z"));
    sql("INSERT INTO discrepancies VALUES('acct-ap', 'odd_lifecycle', %lld, 'script', 's-multi',"
        " 's-multi-a', NULL, 'undeploy of a deployment not running', 0)",
        (long long)T("2026-10-17T00:00:00Z"));
    sql("INSERT INTO rejects(bundle, file, line, reason, raw) VALUES('b1.tar.gz', 'runs.csv', 17,"
        " 'bad_value: ts', X'72756E2D312CFF002C3D636D64')");
    sql("INSERT INTO rejects(bundle, file, line, reason, raw) VALUES('b0.tar.gz', 'manifest.json',"
        " NULL, 'manifest_mismatch: sha256', NULL)");
    sql("INSERT INTO rejects(bundle, file, line, reason, raw) VALUES('b1.tar.gz', 'credits.csv', 3,"
        " 'field_count: 9 fields', '=1+1,x')");
    sql("INSERT INTO actions VALUES('acct-proc', 'script', 's-notify', 's-notify', %lld,"
        " 'You''ve used all your available credits. Please add more credits to your account to"
        " continue.', 0)", (long long)T("2026-10-29T12:00:00Z"));
}

/* ------------------------------------------------------------------------
 * Fixture: a fresh ledger with the three accounts, and an output folder
 * ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    char db[128];
    (void)state;
    snprintf(root, sizeof root, "/tmp/tally-report-XXXXXX");
    if (!mkdtemp(root))
        return -1;
    snprintf(db, sizeof db, "%s/ledger.db", root);
    if (tly_ledger_open(db, 0, &ledger))
        return -1;
    rate_card();
    gale();
    agent_platform();
    process();
    global_rows();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tly_ledger_close(ledger);
    ledger = NULL;
    rm_rf(root);
    return 0;
}

/* Writes the reports into ROOT/NAME with a window; returns the result. */
static int report(const char *name, const char *as_of, const char *window, const char *from,
                  const char *to, const char *account, struct tly_report_stats *st)
{
    struct tly_report_opts o = { 0 };
    struct tly_report_stats ignored;
    char dir[128];

    snprintf(dir, sizeof dir, "%s/%s", root, name);
    rm_rf(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(tly_report_parse_window(window, from, to, &o), TLY_OK);
    o.as_of = T(as_of);
    o.account = account;
    return tly_report_write(ledger, &o, dir, st ? st : &ignored);
}

static char *slurp(const char *name, const char *file)
{
    char path[256];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof path, "%s/%s/%s", root, name, file);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void expect_file(const char *name, const char *file, const char *expected)
{
    char *got = slurp(name, file);
    if (!got)
        fail_msg("missing %s/%s", name, file);
    if (strcmp(got, expected))
        print_error("%s/%s:\n--- expected\n%s--- got\n%s", name, file, expected, got);
    assert_string_equal(got, expected);
    free(got);
}

static int exists(const char *name, const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s/%s", root, name, file);
    return access(path, F_OK) == 0;
}

/* The credits in 'column' of data row 'line' (1 = first); no quoted commas expected. */
static int64_t cell_micro(const char *name, const char *file, int line, const char *column)
{
    char *text = slurp(name, file), *rest, *header, *row = NULL, *cell;
    int col = -1;
    int64_t v = 0;
    const char *why;

    assert_non_null(text);
    rest = text;
    header = strsep(&rest, "\n");
    for (int k = 0; k < line; k++)
        row = strsep(&rest, "\n");
    assert_non_null(row);
    for (int i = 0; (cell = strsep(&header, ",")); i++)
        if (!strcmp(cell, column))
            col = i;
    assert_true(col >= 0);
    for (int i = 0; (cell = strsep(&row, ",")); i++)
        if (i == col)
            assert_int_equal(tly_parse_micro(cell, strlen(cell), INT64_MAX, &v, &why), 0);
    free(text);
    return v;
}

static int lines(const char *name, const char *file)
{
    char *text = slurp(name, file);
    int n = 0;
    assert_non_null(text);
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n - 1;               /* without the header */
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

static const char OVERVIEW_HEADER[] =
    "account_id,account_name,edition,as_of,window_from,window_to,cycle_start,cycle_end,"
    "runs_used,runs_total,runs_used_pct,runs_remaining,credits_used,credits_total,"
    "credits_used_pct,credits_remaining,credits_remaining_pct,widget,banner_credits,banner_runs,"
    "window_runs,window_credits,window_models,window_finetune,window_guardrails,window_scripts,"
    "window_ocr,window_browser\n";
static const char TREND_HEADER[] =
    "date,runs,models,finetune,guardrails,scripts,ocr,browser,credits\n";

/* outputs.md, semantics §7 default window: the cycle up to the date of as-of − 1 s */
static void test_report_gale_cycle_window_tabs(void **state)
{
    char expected[4096];
    (void)state;
    assert_int_equal(report("gale", "2026-10-10T00:00:00Z", NULL, NULL, NULL, "acct-gale", NULL),
                     TLY_OK);
    snprintf(expected, sizeof expected, "%s%s", OVERVIEW_HEADER,
             "acct-gale,Northwind Agents,gale,2026-10-10T00:00:00Z,2026-10-01,2026-10-09,"
             "2026-10-01,2026-11-01,306,10000,3.06,9694,52.400000,75.000000,69.87,22.600000,30.13,"
             "yellow,50,none,306,52.400000,42.000000,0.000000,10.400000,0.000000,0.000000,"
             "0.000000\n");
    expect_file("gale", "accounts/acct-gale/overview.csv", expected);
    snprintf(expected, sizeof expected, "%s%s", TREND_HEADER,
             "2026-10-01,100,0.000000,0.000000,0.800000,0.000000,0.000000,0.000000,0.800000\n"
             "2026-10-02,101,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n"
             "2026-10-03,0,16.000000,0.000000,1.200000,0.000000,0.000000,0.000000,17.200000\n"
             "2026-10-04,0,26.000000,0.000000,1.200000,0.000000,0.000000,0.000000,27.200000\n"
             "2026-10-05,100,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n"
             "2026-10-06,5,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n"
             "2026-10-07,0,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n"
             "2026-10-08,0,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n"
             "2026-10-09,0,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n");
    expect_file("gale", "accounts/acct-gale/trend.csv", expected);
    /* semantics §7: only runnables deployed at least once, 0 runs included */
    expect_file("gale", "accounts/acct-gale/agents.csv",
                "resource_id,name,runs,owner,last_active_on,status\n"
                "agent-billing,Billing Agent,101,li@northwind.example,2026-10-02,Deployed\n"
                "agent-idle,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",0,'+1,,Undeployed\n"
                "agent-support,Support Agent,200,maria@northwind.example,2026-10-05,Deployed\n");
    expect_file("gale", "accounts/acct-gale/models.csv",
                "model_id,model_name,type,credits_used,hosting_credits,finetune_credits,"
                "last_deployed_on,status\n"
                "llama-3-8b,Llama 3 8B,base,42.000000,42.000000,0.000000,2026-10-03,Undeployed\n");
    expect_file("gale", "accounts/acct-gale/model_deployments.csv",
                "model_id,deployment_id,deployment_name,deployment_type,credits_used,"
                "hosting_credits,finetune_credits,hardware,hardware_description,units,replicas,"
                "hosting_seconds,last_updated_on,status\n"
                "llama-3-8b,dep-llama-prod,prod,dedicated,42.000000,42.000000,0.000000,"
                "gpu.a10g-24g,NVIDIA A10G 24GB,1,2,37800,2026-10-04,Undeployed\n");
    /* spec example gale-free-grant: deployed_seconds 748800 */
    expect_file("gale", "accounts/acct-gale/guardrails.csv",
                "guardrail_id,name,credits,deployed_seconds,last_deployed_on,status,hardware,"
                "hardware_description,units\n"
                "gr-toxicity,Toxicity filter,10.400000,748800,2026-10-01,Deployed,cpu.guard-small,"
                "2 vCPU / 4 GB,1\n");
    expect_file("gale", "accounts/acct-gale/statement.csv",
                "account_id,pool,cycle_start,cycle_end,state,opening,granted,used,used_models,"
                "used_finetune,used_guardrails,used_scripts,used_ocr,used_browser,used_runs,"
                "adjusted,expired,late,closing,carried_to_next\n"
                "acct-gale,credits,2026-10-01,2026-11-01,open,0.000000,75.000000,52.400000,"
                "42.000000,0.000000,10.400000,0.000000,0.000000,0.000000,0.000000,0.000000,"
                "0.000000,0.000000,22.600000,0.000000\n"
                "acct-gale,runs,2026-10-01,2026-11-01,open,0.000000,10000.000000,306.000000,"
                "0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,306.000000,0.000000,"
                "0.000000,0.000000,9694.000000,0.000000\n");
    /* GALE has neither custom scripts, OCR nor browser automation */
    assert_false(exists("gale", "accounts/acct-gale/scripts.csv"));
    assert_false(exists("gale", "accounts/acct-gale/ocr.csv"));
    assert_false(exists("gale", "accounts/acct-gale/tools.csv"));
    assert_true(exists("gale", "accounts/acct-gale/usage.xlsx"));
}

/* semantics §7: 24h is the single date of as-of − 1 s; 7d the seven dates ending there */
static void test_report_window_24h_and_7d(void **state)
{
    (void)state;
    assert_int_equal(report("w24", "2026-10-10T00:00:00Z", "24h", NULL, NULL, "acct-gale", NULL),
                     TLY_OK);
    expect_file("w24", "accounts/acct-gale/trend.csv",
                "date,runs,models,finetune,guardrails,scripts,ocr,browser,credits\n"
                "2026-10-09,0,0.000000,0.000000,1.200000,0.000000,0.000000,0.000000,1.200000\n");
    expect_file("w24", "accounts/acct-gale/guardrails.csv",
                "guardrail_id,name,credits,deployed_seconds,last_deployed_on,status,hardware,"
                "hardware_description,units\n"
                "gr-toxicity,Toxicity filter,1.200000,86400,2026-10-01,Deployed,cpu.guard-small,"
                "2 vCPU / 4 GB,1\n");
    /* "last … on" is up to the as-of, whatever the window */
    expect_file("w24", "accounts/acct-gale/agents.csv",
                "resource_id,name,runs,owner,last_active_on,status\n"
                "agent-billing,Billing Agent,0,li@northwind.example,2026-10-02,Deployed\n"
                "agent-idle,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",0,'+1,,Undeployed\n"
                "agent-support,Support Agent,0,maria@northwind.example,2026-10-05,Deployed\n");

    assert_int_equal(report("w7", "2026-10-10T00:00:00Z", "7d", NULL, NULL, "acct-gale", NULL),
                     TLY_OK);
    assert_int_equal(lines("w7", "accounts/acct-gale/trend.csv"), 7);
    expect_file("w7", "accounts/acct-gale/overview.csv",
                "account_id,account_name,edition,as_of,window_from,window_to,cycle_start,cycle_end,"
                "runs_used,runs_total,runs_used_pct,runs_remaining,credits_used,credits_total,"
                "credits_used_pct,credits_remaining,credits_remaining_pct,widget,banner_credits,"
                "banner_runs,window_runs,window_credits,window_models,window_finetune,"
                "window_guardrails,window_scripts,window_ocr,window_browser\n"
                "acct-gale,Northwind Agents,gale,2026-10-10T00:00:00Z,2026-10-03,2026-10-09,"
                "2026-10-01,2026-11-01,306,10000,3.06,9694,52.400000,75.000000,69.87,22.600000,"
                "30.13,yellow,50,none,105,50.400000,42.000000,0.000000,8.400000,0.000000,0.000000,"
                "0.000000\n");
}

/*
 * A custom window across the previous cycle's end: the window sums take both
 * cycles' dates while the unprefixed figures stay the current cycle's.
 * Also: a job and a hosting deployment sharing an id (hosting first), a
 * deleted model, a running job that does not make its model Deployed, a
 * script's last_active_on outside the window.
 */
static void test_report_custom_window_straddles_cycle_end(void **state)
{
    (void)state;
    assert_int_equal(report("custom", "2026-10-25T00:00:00Z", NULL, "2026-10-10", "2026-10-20",
                            "acct-ap", NULL), TLY_OK);
    expect_file("custom", "accounts/acct-ap/overview.csv",
                "account_id,account_name,edition,as_of,window_from,window_to,cycle_start,cycle_end,"
                "runs_used,runs_total,runs_used_pct,runs_remaining,credits_used,credits_total,"
                "credits_used_pct,credits_remaining,credits_remaining_pct,widget,banner_credits,"
                "banner_runs,window_runs,window_credits,window_models,window_finetune,"
                "window_guardrails,window_scripts,window_ocr,window_browser\n"
                "acct-ap,Contoso Tools,agent-platform,2026-10-25T00:00:00Z,2026-10-10,2026-10-20,"
                "2026-10-15,2026-11-15,157,9993,1.57,9836,124.000000,500.000000,24.80,376.000000,"
                "75.20,green,20,none,99,54.000000,5.000000,30.000000,2.400000,16.600000,0.000000,"
                "0.000000\n");
    assert_int_equal(lines("custom", "accounts/acct-ap/trend.csv"), 11);
    expect_file("custom", "accounts/acct-ap/tools.csv",
                "resource_id,name,runs,owner,last_active_on,status\n"
                "tool-crm,CRM lookup,20,ana@contoso.example,2026-10-24,Deployed\n"
                "tool-search,Web search,79,sam@contoso.example,2026-10-24,Deployed\n");
    expect_file("custom", "accounts/acct-ap/scripts.csv",
                "script_id,name,language_version,credits_used,hosting_seconds,last_active_on,"
                "status,hardware,vcpu,memory_gb\n"
                "s-enrich,Lead enrichment,3.11,15.800000,273600,2026-10-24,Deployed,"
                "cpu.script-1x2,1,2\n"
                "s-multi,Multi new,3.12,0.800000,93600,2026-10-22,Deployed,cpu.script-2x4,2,4\n");
    expect_file("custom", "accounts/acct-ap/models.csv",
                "model_id,model_name,type,credits_used,hosting_credits,finetune_credits,"
                "last_deployed_on,status\n"
                "gpt-del,'-2,base,5.000000,5.000000,0.000000,2026-10-16,Deleted\n"
                "mistral-7b,Mistral 7B,fine-tuned,30.000000,0.000000,30.000000,2026-10-21,"
                "Undeployed\n");
    /* semantics §10: a job sharing a hosting deployment's id is a second row, hosting first */
    expect_file("custom", "accounts/acct-ap/model_deployments.csv",
                "model_id,deployment_id,deployment_name,deployment_type,credits_used,"
                "hosting_credits,finetune_credits,hardware,hardware_description,units,replicas,"
                "hosting_seconds,last_updated_on,status\n"
                "gpt-del,gpt-del-1,,,5.000000,5.000000,0.000000,gpu.a100-80g,NVIDIA A100 80GB,1,1,"
                "3600,2026-10-17,Deleted\n"
                "mistral-7b,dep-shared,support-ft,dedicated,0.000000,0.000000,0.000000,"
                "gpu.a100-80g,NVIDIA A100 80GB,1,1,0,2026-10-22,Undeployed\n"
                "mistral-7b,dep-shared,,,30.000000,0.000000,30.000000,gpu.a100-80g,"
                "NVIDIA A100 80GB,2,1,0,2026-10-19,Deployed\n");
    expect_file("custom", "accounts/acct-ap/guardrails.csv",
                "guardrail_id,name,credits,deployed_seconds,last_deployed_on,status,hardware,"
                "hardware_description,units\n"
                "gr-pii,'@x,2.400000,86400,2026-10-16,Undeployed,cpu.guard-small,2 vCPU / 4 GB,1\n");
    assert_false(exists("custom", "accounts/acct-ap/ocr.csv"));
    assert_false(exists("custom", "accounts/acct-ap/agents.csv"));
}

/* semantics §9 conservation, for every account and window */
static void test_report_conservation_tabs_and_trend(void **state)
{
    static const char *const windows[] = { "24h", "7d", "30d", "90d", "cycle" };
    static const struct { const char *id, *as_of; } accts[] = {
        { "acct-gale", "2026-10-10T00:00:00Z" },
        { "acct-ap", "2026-10-25T00:00:00Z" },
        { "acct-proc", "2026-11-10T00:00:00Z" },
    };
    static const struct { const char *file, *column; } tabs[] = {
        { "models.csv", "credits_used" }, { "guardrails.csv", "credits" },
        { "scripts.csv", "credits_used" }, { "ocr.csv", "credits_used" },
        { "browser.csv", "credits_used" },
    };
    (void)state;
    for (size_t a = 0; a < sizeof accts / sizeof accts[0]; a++)
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            char file[128];
            int64_t tab_sum = 0, trend_sum = 0, deps_sum = 0, window;
            assert_int_equal(report("cons", accts[a].as_of, windows[w], NULL, NULL, accts[a].id,
                                    NULL), TLY_OK);
            snprintf(file, sizeof file, "accounts/%s/overview.csv", accts[a].id);
            window = cell_micro("cons", file, 1, "window_credits");
            for (size_t t = 0; t < sizeof tabs / sizeof tabs[0]; t++) {
                snprintf(file, sizeof file, "accounts/%s/%s", accts[a].id, tabs[t].file);
                if (!exists("cons", file))
                    continue;
                for (int r = 1; r <= lines("cons", file); r++)
                    tab_sum += cell_micro("cons", file, r, tabs[t].column);
            }
            snprintf(file, sizeof file, "accounts/%s/trend.csv", accts[a].id);
            for (int r = 1; r <= lines("cons", file); r++)
                trend_sum += cell_micro("cons", file, r, "credits");
            snprintf(file, sizeof file, "accounts/%s/model_deployments.csv", accts[a].id);
            for (int r = 1; r <= lines("cons", file); r++)
                deps_sum += cell_micro("cons", file, r, "credits_used");
            snprintf(file, sizeof file, "accounts/%s/models.csv", accts[a].id);
            for (int r = 1; r <= lines("cons", file); r++)
                deps_sum -= cell_micro("cons", file, r, "credits_used");
            assert_int_equal(tab_sum, window);
            assert_int_equal(trend_sum, window);
            assert_int_equal(deps_sum, 0);
        }
}

/*
 * Process: 30 days across the closed October, a late row summed with its
 * day, the rate-card row shown when none is in force at the as-of (the
 * latest), a deployment with no usage still listed, a workflow with no runs.
 */
static void test_report_process_tabs(void **state)
{
    (void)state;
    assert_int_equal(report("proc", "2026-11-10T00:00:00Z", "30d", NULL, NULL, "acct-proc", NULL),
                     TLY_OK);
    assert_int_equal(lines("proc", "accounts/acct-proc/trend.csv"), 30);
    expect_file("proc", "accounts/acct-proc/ocr.csv",
                "resource_id,deployment_id,name,credits_used,hosting_seconds,hardware,"
                "hardware_description,last_active_on,status\n"
                "ocr-invoices,ocr-invoices-eu,Invoice OCR,63.500000,1814400,gpu.t4-ocr,"
                "NVIDIA T4 (2027),2026-11-09,Deployed\n");
    expect_file("proc", "accounts/acct-proc/browser.csv",
                "resource_id,deployment_id,name,credits_used,hosting_seconds,hardware,"
                "hardware_description,last_active_on,status\n"
                "br-scrape,br-scrape-1,Scraper,1.250000,36000,cpu.browser,Headless browser,"
                "2026-11-02,Deployed\n"
                "br-scrape,br-scrape-2,Scraper,0.000000,0,cpu.browser,Headless browser,,"
                "Undeployed\n");
    expect_file("proc", "accounts/acct-proc/scripts.csv",
                "script_id,name,language_version,credits_used,hosting_seconds,last_active_on,"
                "status,hardware,vcpu,memory_gb\n"
                "s-notify,Notify AP,3.12,6.500000,234000,2026-10-29,Undeployed,cpu.script-1x2,1,2\n");
    expect_file("proc", "accounts/acct-proc/workflows.csv",
                "resource_id,name,runs,owner,last_active_on,status\n"
                "wf-invoice,Invoice intake,10,kim@fabrikam.example,2026-11-03,Deployed\n"
                "wf-onboarding,Supplier onboarding,0,kim@fabrikam.example,,Deployed\n");
    expect_file("proc", "accounts/acct-proc/overview.csv",
                "account_id,account_name,edition,as_of,window_from,window_to,cycle_start,cycle_end,"
                "runs_used,runs_total,runs_used_pct,runs_remaining,credits_used,credits_total,"
                "credits_used_pct,credits_remaining,credits_remaining_pct,widget,banner_credits,"
                "banner_runs,window_runs,window_credits,window_models,window_finetune,"
                "window_guardrails,window_scripts,window_ocr,window_browser\n"
                "acct-proc,Fabrikam Ops,process,2026-11-10T00:00:00Z,2026-10-11,2026-11-09,"
                "2026-11-01,2026-12-01,10,9997,0.10,9987,28.250000,37.500000,75.33,8.750000,23.33,"
                "red,70,none,10,71.250000,0.000000,0.000000,0.000000,6.500000,63.500000,1.250000\n");
    expect_file("proc", "accounts/acct-proc/models.csv",
                "model_id,model_name,type,credits_used,hosting_credits,finetune_credits,"
                "last_deployed_on,status\n");
}

/* outputs.md "Global files": every row, sorted by the first columns, conventions applied */
static void test_report_global_files(void **state)
{
    struct tly_report_stats st;
    char *summary;
    (void)state;
    assert_int_equal(report("all", "2026-10-25T00:00:00Z", NULL, NULL, NULL, NULL, &st),
                     TLY_ERR_LEDGER);   /* gale and process were reconciled at other as-ofs */
    sql("UPDATE account_state SET as_of = %lld", (long long)T("2026-10-25T00:00:00Z"));
    assert_int_equal(report("all", "2026-10-25T00:00:00Z", "7d", NULL, NULL, NULL, &st), TLY_OK);
    assert_int_equal(st.accounts, 3);
    /* 6 global files; per account overview, trend, runs, models, deployments,
       guardrails, statement, usage.xlsx (+ scripts; + ocr, browser) */
    assert_int_equal(st.files, 6 + 8 + 9 + 11);
    summary = slurp("all", "summary.csv");
    assert_non_null(summary);
    assert_true(strncmp(summary, OVERVIEW_HEADER, strlen(OVERVIEW_HEADER)) == 0);
    assert_non_null(strstr(summary, "\nacct-ap,Contoso Tools,"));
    assert_true(strstr(summary, "\nacct-ap,") < strstr(summary, "\nacct-gale,"));
    assert_true(strstr(summary, "\nacct-gale,") < strstr(summary, "\nacct-proc,"));
    free(summary);
    expect_file("all", "discrepancies.csv",
                "account_id,kind,ts,category,resource_id,deployment_id,credits,detail\n"
                "acct-ap,odd_lifecycle,2026-10-17T00:00:00Z,script,s-multi,s-multi-a,,"
                "undeploy of a deployment not running\n"
                "acct-gale,run_while_exhausted,2026-10-05T10:00:00Z,agent,agent-support,,,"
                "\"'-3 runs, \"\"late\"\"\"\n"
                "acct-proc,late_charge,2026-10-25T00:00:00Z,ocr,ocr-invoices,ocr-invoices-eu,"
                "0.500000,\n");
    expect_file("all", "rejects.csv",
                "bundle,file,line,reason,raw\n"
                "b0.tar.gz,manifest.json,,manifest_mismatch: sha256,\n"
                "b1.tar.gz,credits.csv,3,field_count: 9 fields,\"'=1+1,x\"\n"
                "b1.tar.gz,runs.csv,17,bad_value: ts,\"run-1,\\xFF\\x00,=cmd\"\n");
    expect_file("all", "actions.csv",
                "account_id,category,resource_id,deployment_id,stop_at,message\n"
                "acct-proc,script,s-notify,s-notify,2026-10-29T12:00:00Z,You've used all your "
                "available credits. Please add more credits to your account to continue.\n");
    assert_int_equal(lines("all", "statements.csv"), 10);
    expect_file("all", "accounts/acct-ap/statement.csv",
                "account_id,pool,cycle_start,cycle_end,state,opening,granted,used,used_models,"
                "used_finetune,used_guardrails,used_scripts,used_ocr,used_browser,used_runs,"
                "adjusted,expired,late,closing,carried_to_next\n"
                "acct-ap,credits,2026-09-15,2026-10-15,closed,0.000000,0.000000,2.300000,0.000000,"
                "0.000000,0.000000,2.300000,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,"
                "-2.300000,-2.300000\n"
                "acct-ap,credits,2026-10-15,2026-11-15,open,-2.300000,502.300000,124.000000,"
                "53.000000,30.000000,2.400000,38.600000,0.000000,0.000000,0.000000,0.000000,"
                "0.000000,0.000000,376.000000,0.000000\n"
                "acct-ap,runs,2026-09-15,2026-10-15,closed,0.000000,10000.000000,7.000000,0.000000,"
                "0.000000,0.000000,0.000000,0.000000,0.000000,7.000000,0.000000,0.000000,0.000000,"
                "9993.000000,0.000000\n"
                "acct-ap,runs,2026-10-15,2026-11-15,open,9993.000000,0.000000,157.000000,0.000000,"
                "0.000000,0.000000,0.000000,0.000000,0.000000,157.000000,0.000000,0.000000,"
                "0.000000,9836.000000,0.000000\n");
    assert_true(exists("all", "finance.xlsx"));
}

/* --account: that account's folder, and the global files restricted to it */
static void test_report_account_filter(void **state)
{
    struct tly_report_stats st;
    (void)state;
    assert_int_equal(report("one", "2026-11-10T00:00:00Z", NULL, NULL, NULL, "acct-proc", &st),
                     TLY_OK);
    assert_int_equal(st.accounts, 1);
    assert_false(exists("one", "accounts/acct-gale"));
    assert_int_equal(lines("one", "summary.csv"), 1);
    assert_int_equal(lines("one", "statements.csv"), 4);
    assert_int_equal(lines("one", "discrepancies.csv"), 1);
    assert_int_equal(lines("one", "actions.csv"), 1);
    assert_int_equal(lines("one", "rejects.csv"), 3);   /* rejects name no account */
    assert_int_equal(report("none", "2026-11-10T00:00:00Z", NULL, NULL, NULL, "acct-nobody", NULL),
                     TLY_ERR_USAGE);
}

static void test_report_parse_window(void **state)
{
    static const struct { const char *window, *from, *to; int err; } cases[] = {
        { NULL, NULL, NULL, TLY_OK }, { "24h", NULL, NULL, TLY_OK },
        { "90d", NULL, NULL, TLY_OK }, { "cycle", NULL, NULL, TLY_OK },
        { NULL, "2026-10-01", "2026-10-01", TLY_OK },
        { "1d", NULL, NULL, TLY_ERR_USAGE }, { "", NULL, NULL, TLY_ERR_USAGE },
        { "7d", "2026-10-01", "2026-10-02", TLY_ERR_USAGE },
        { NULL, "2026-10-01", NULL, TLY_ERR_USAGE }, { NULL, NULL, "2026-10-01", TLY_ERR_USAGE },
        { NULL, "2026-10-02", "2026-10-01", TLY_ERR_USAGE },
        { NULL, "2026-02-30", "2026-03-01", TLY_ERR_USAGE },
        { NULL, "2026-10-01T00:00:00Z", "2026-10-02", TLY_ERR_USAGE },
        { NULL, "2000-01-01", "2026-01-01", TLY_ERR_USAGE },
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tly_report_opts o = { 0 };
        assert_int_equal(tly_report_parse_window(cases[i].window, cases[i].from, cases[i].to, &o),
                         cases[i].err);
        if (cases[i].err == TLY_OK && cases[i].window)
            assert_string_equal(o.window, cases[i].window);
        if (cases[i].err == TLY_OK && cases[i].from) {
            assert_true(o.custom);
            assert_int_equal(o.from_day, D(cases[i].from));
            assert_int_equal(o.to_day, D(cases[i].to));
        }
    }
}

/* ------------------------------------------------------------------------
 * The workbooks
 * ------------------------------------------------------------------------ */

/* The bytes of 'entry' inside the zip at ROOT/NAME/FILE, or NULL when absent. */
static char *zip_entry(const char *name, const char *file, const char *entry)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    char path[256], *out = NULL;

    snprintf(path, sizeof path, "%s/%s/%s", root, name, file);
    archive_read_support_format_zip(a);
    assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        if (strcmp(archive_entry_pathname(e), entry))
            continue;
        size_t cap = 1 << 20, n = 0;
        ssize_t r;
        out = malloc(cap);
        assert_non_null(out);
        while ((r = archive_read_data(a, out + n, cap - 1 - n)) > 0)
            n += (size_t)r;
        out[n] = '\0';
        break;
    }
    archive_read_free(a);
    return out;
}

/* outputs.md: text is always text, never a formula */
static void test_report_formula_text_stays_inert_in_xlsx(void **state)
{
    char *strings, *sheet;
    (void)state;
    assert_int_equal(report("inj", "2026-10-10T00:00:00Z", NULL, NULL, NULL, "acct-gale", NULL),
                     TLY_OK);
    strings = zip_entry("inj", "accounts/acct-gale/usage.xlsx", "xl/sharedStrings.xml");
    assert_non_null(strings);
    assert_non_null(strstr(strings, "<t>=HYPERLINK(\"http://evil.example\",\"x\")</t>"));
    assert_non_null(strstr(strings, "<t>+1</t>"));
    free(strings);
    /* sheet 3 is Agents: no formula mentions the name */
    sheet = zip_entry("inj", "accounts/acct-gale/usage.xlsx", "xl/worksheets/sheet3.xml");
    assert_non_null(sheet);
    assert_null(strstr(sheet, "HYPERLINK"));
    assert_non_null(strstr(sheet, "<f>SUM(C"));       /* Total runs: an auditable SUM */
    free(sheet);
    /* the Usage page's charts: pie, credits per day, runs per day */
    for (int i = 1; i <= 3; i++) {
        char entry[64], *chart;
        snprintf(entry, sizeof entry, "xl/charts/chart%d.xml", i);
        assert_non_null(chart = zip_entry("inj", "accounts/acct-gale/usage.xlsx", entry));
        free(chart);
    }
    assert_non_null(strings = zip_entry("inj", "accounts/acct-gale/usage.xlsx", "docProps/core.xml"));
    assert_non_null(strstr(strings, "<dcterms:created xsi:type=\"dcterms:W3CDTF\">2026-10-10T00:00:00Z"));
    free(strings);
}

/* usage.xlsx's title names the account whole, its id and name at their longest */
static void test_report_workbook_title_is_never_cut(void **state)
{
    char id[TLY_ID_MAX + 1], name[TLY_TEXT_MAX + 1], file[300], want[TLY_ID_MAX + 32], *core;

    (void)state;
    memset(id, 'i', TLY_ID_MAX);
    id[TLY_ID_MAX] = '\0';
    memset(name, 'n', TLY_TEXT_MAX);
    name[TLY_TEXT_MAX] = '\0';
    account(id, name, "gale", "2026-10-10T00:00:00Z", "2026-10-01", "2026-11-01", 0, 0, "0", "0",
            "0", "none", "none");
    assert_int_equal(report("long", "2026-10-10T00:00:00Z", NULL, NULL, NULL, id, NULL), TLY_OK);
    snprintf(file, sizeof file, "accounts/%s/usage.xlsx", id);
    assert_non_null(core = zip_entry("long", file, "docProps/core.xml"));
    snprintf(want, sizeof want, "nn (%s)</dc:title>", id);
    assert_non_null(strstr(core, want));
    free(core);
}

/* outputs.md: the same inputs and as-of give byte-identical workbooks */
static void test_report_xlsx_deterministic(void **state)
{
    static const char *const files[] = { "finance.xlsx", "accounts/acct-proc/usage.xlsx" };
    (void)state;
    assert_int_equal(report("d1", "2026-11-10T00:00:00Z", NULL, NULL, NULL, "acct-proc", NULL),
                     TLY_OK);
    sleep(1);                   /* a clock in the output would now differ */
    assert_int_equal(report("d2", "2026-11-10T00:00:00Z", NULL, NULL, NULL, "acct-proc", NULL),
                     TLY_OK);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char a[256], b[256], cmd[600];
        snprintf(a, sizeof a, "%s/d1/%s", root, files[i]);
        snprintf(b, sizeof b, "%s/d2/%s", root, files[i]);
        snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
        assert_int_equal(system(cmd), 0);
    }
}

/* outputs.md "Workbooks": finance sheets and their SUM() totals rows */
static void test_report_finance_workbook(void **state)
{
    char *book, *summary;
    (void)state;
    assert_int_equal(report("fin", "2026-11-10T00:00:00Z", NULL, NULL, NULL, "acct-proc", NULL),
                     TLY_OK);
    book = zip_entry("fin", "finance.xlsx", "xl/workbook.xml");
    assert_non_null(book);
    assert_true(strstr(book, "name=\"Summary\"") < strstr(book, "name=\"Statements\""));
    assert_true(strstr(book, "name=\"Statements\"") < strstr(book, "name=\"Carry-over\""));
    assert_true(strstr(book, "name=\"Carry-over\"") < strstr(book, "name=\"Usage by category\""));
    assert_true(strstr(book, "name=\"Usage by category\"") < strstr(book, "name=\"Discrepancies\""));
    assert_true(strstr(book, "name=\"Discrepancies\"") < strstr(book, "name=\"Rejects\""));
    free(book);
    /* the Summary's totals row: SUM over the column, with its value (credits total 37.5) */
    summary = zip_entry("fin", "finance.xlsx", "xl/worksheets/sheet1.xml");
    assert_non_null(summary);
    assert_non_null(strstr(summary, "<f>SUM(F5)</f><v>37.5</v>"));
    assert_non_null(strstr(summary, "<autoFilter ref=\"A4:N5\"/>"));
    assert_non_null(strstr(summary, "ySplit=\"4\""));
    free(summary);
    /* Carry-over: October's debt */
    summary = zip_entry("fin", "finance.xlsx", "xl/worksheets/sheet3.xml");
    assert_non_null(summary);
    assert_non_null(strstr(summary, "<f>SUM(M5)</f><v>-12.5</v>"));
    free(summary);
    assert_non_null(book = zip_entry("fin", "finance.xlsx", "xl/charts/chart1.xml"));
    free(book);
}

/* ------------------------------------------------------------------------
 * Failures
 * ------------------------------------------------------------------------ */

/* A write error (a full disk) is reported as an output error, exit 73. */
static void test_report_write_error_is_output_error(void **state)
{
    struct tly_report_opts o = { 0 };
    struct tly_report_stats st;
    char dir[128], link[160];
    (void)state;
    snprintf(dir, sizeof dir, "%s/full", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(link, sizeof link, "%s/summary.csv", dir);
    assert_int_equal(symlink("/dev/full", link), 0);
    o.as_of = T("2026-11-10T00:00:00Z");
    o.account = "acct-proc";
    assert_int_equal(tly_report_write(ledger, &o, dir, &st), TLY_ERR_OUTPUT);
    assert_int_equal(tly_report_write(ledger, &o, "/nonexistent/out", &st), TLY_ERR_OUTPUT);
}

/* alloc.h fault injection: every allocation failure is a clean TLY_ERR_NOMEM */
static void test_report_out_of_memory_is_clean(void **state)
{
    int err = TLY_ERR_NOMEM;
    long n;
    (void)state;
    for (n = 1; n < 5000 && err == TLY_ERR_NOMEM; n++) {
        struct tly_report_opts o = { 0 };
        struct tly_report_stats st;
        char dir[128];
        snprintf(dir, sizeof dir, "%s/oom", root);
        rm_rf(dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        o.as_of = T("2026-10-25T00:00:00Z");
        o.account = "acct-ap";
        tly_alloc_fail_at(n);
        err = tly_report_write(ledger, &o, dir, &st);
        tly_alloc_fail_at(0);
        if (err != TLY_OK)
            assert_int_equal(err, TLY_ERR_NOMEM);
    }
    assert_int_equal(err, TLY_OK);
    assert_true(n > 10);
}

/*
 * test_report --fixture DIR writes the three accounts' reports into DIR, all
 * at the as-of 2026-11-10, for tests/e2e/t50-xlsx-readback.sh while
 * `tally run` cannot build a ledger yet.
 */
static int write_fixture(const char *dir)
{
    struct tly_report_opts o = { 0 };
    struct tly_report_stats st;
    int err;

    if (setup(NULL))
        return 1;
    o.as_of = T("2026-11-10T00:00:00Z");
    sql("UPDATE account_state SET as_of = %lld", (long long)o.as_of);
    err = mkdir(dir, 0755) ? TLY_ERR_OUTPUT : tly_report_write(ledger, &o, dir, &st);
    teardown(NULL);
    return err != TLY_OK;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_gale_cycle_window_tabs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_window_24h_and_7d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_custom_window_straddles_cycle_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_conservation_tabs_and_trend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_process_tabs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_global_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_account_filter, setup, teardown),
        cmocka_unit_test(test_report_parse_window),
        cmocka_unit_test_setup_teardown(test_report_formula_text_stays_inert_in_xlsx, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_report_workbook_title_is_never_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_xlsx_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_finance_workbook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_write_error_is_output_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_out_of_memory_is_clean, setup, teardown),
    };
    if (argc == 3 && !strcmp(argv[1], "--fixture"))
        return write_fixture(argv[2]);
    tly_error_quiet(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
