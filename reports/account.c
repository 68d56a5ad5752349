/*
 * account.c — one account's folder: overview.csv, trend.csv, the tab CSVs
 * of its edition, statement.csv and usage.xlsx (outputs.md "Per-account
 * files" and "Workbooks").
 *
 * The tabs are data, not code: tabs[] below says, per file, which
 * editions have it, which row list of the model it shows, its columns
 * (each naming the model field it shows) and the metrics its sheet puts
 * above the table.  One writer walks that table for the CSV and the sheet
 * at once (rtable.h).
 */
#include "rfiles.h"
#include "alloc.h"
#include "error.h"
#include "fields.h"
#include "money.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ED(e) (1u << (e))
#define ALL_EDITIONS (ED(TLY_ED_GALE) | ED(TLY_ED_AGENT_PLATFORM) | ED(TLY_ED_PROCESS))
#define NCOLS(a) ((int)(sizeof a / sizeof a[0]))

/* ------------------------------------------------------------------------
 * Columns
 * ------------------------------------------------------------------------ */

/* The model fields a tab column can show (struct tly_rrow). */
enum field {
    F_RESOURCE_ID, F_DEPLOYMENT_ID, F_NAME, F_OWNER, F_TYPE, F_DEPLOYMENT_NAME,
    F_DEPLOYMENT_TYPE, F_LANGUAGE_VERSION, F_CREDITS, F_HOSTING_CREDITS,
    F_FINETUNE_CREDITS, F_SECONDS, F_RUNS, F_HARDWARE, F_HW_DESCRIPTION, F_VCPU,
    F_MEMORY_GB, F_UNITS, F_REPLICAS, F_LAST_ACTIVE, F_LAST_DEPLOYED, F_LAST_UPDATED,
    F_STATUS
};

#define COL(name, title, kind, field) { name, title, kind, 0, field }
#define TEXT TLY_RK_TEXT
#define INT TLY_RK_INT
#define MICRO TLY_RK_MICRO
#define DATE TLY_RK_DATE
#define SECONDS TLY_RK_SECONDS

/* outputs.md "Per-account files", column for column */
static const struct tly_rcol runs_cols[] = {
    COL("resource_id", "ID", TEXT, F_RESOURCE_ID),
    COL("name", "Name", TEXT, F_NAME),
    COL("runs", "Runs", INT, F_RUNS),
    COL("owner", "Owner", TEXT, F_OWNER),
    COL("last_active_on", "Last active on", DATE, F_LAST_ACTIVE),
    COL("status", "Status", TEXT, F_STATUS),
};

static const struct tly_rcol model_cols[] = {
    COL("model_id", "Model ID", TEXT, F_RESOURCE_ID),
    COL("model_name", "Model", TEXT, F_NAME),
    COL("type", "Type", TEXT, F_TYPE),
    COL("credits_used", "Credits used", MICRO, F_CREDITS),
    COL("hosting_credits", "Hosting credits", MICRO, F_HOSTING_CREDITS),
    COL("finetune_credits", "Fine-tuning credits", MICRO, F_FINETUNE_CREDITS),
    COL("last_deployed_on", "Last deployed on", DATE, F_LAST_DEPLOYED),
    COL("status", "Status", TEXT, F_STATUS),
};

static const struct tly_rcol deployment_cols[] = {
    COL("model_id", "Model ID", TEXT, F_RESOURCE_ID),
    COL("deployment_id", "Deployment ID", TEXT, F_DEPLOYMENT_ID),
    COL("deployment_name", "Deployment", TEXT, F_DEPLOYMENT_NAME),
    COL("deployment_type", "Deployment type", TEXT, F_DEPLOYMENT_TYPE),
    COL("credits_used", "Credits used", MICRO, F_CREDITS),
    COL("hosting_credits", "Hosting credits", MICRO, F_HOSTING_CREDITS),
    COL("finetune_credits", "Fine-tuning credits", MICRO, F_FINETUNE_CREDITS),
    COL("hardware", "Hardware", TEXT, F_HARDWARE),
    COL("hardware_description", "Hardware description", TEXT, F_HW_DESCRIPTION),
    COL("units", "Units", INT, F_UNITS),
    COL("replicas", "Replicas", INT, F_REPLICAS),
    COL("hosting_seconds", "Hosting time", SECONDS, F_SECONDS),
    COL("last_updated_on", "Last updated on", DATE, F_LAST_UPDATED),
    COL("status", "Status", TEXT, F_STATUS),
};

static const struct tly_rcol guardrail_cols[] = {
    COL("guardrail_id", "Guardrail ID", TEXT, F_RESOURCE_ID),
    COL("name", "Name", TEXT, F_NAME),
    COL("credits", "Credits", MICRO, F_CREDITS),
    COL("deployed_seconds", "Deployed time", SECONDS, F_SECONDS),
    COL("last_deployed_on", "Last deployed on", DATE, F_LAST_DEPLOYED),
    COL("status", "Status", TEXT, F_STATUS),
    COL("hardware", "Hardware", TEXT, F_HARDWARE),
    COL("hardware_description", "Hardware description", TEXT, F_HW_DESCRIPTION),
    COL("units", "Units", INT, F_UNITS),
};

static const struct tly_rcol script_cols[] = {
    COL("script_id", "Script ID", TEXT, F_RESOURCE_ID),
    COL("name", "Name", TEXT, F_NAME),
    COL("language_version", "Language version", TEXT, F_LANGUAGE_VERSION),
    COL("credits_used", "Credits used", MICRO, F_CREDITS),
    COL("hosting_seconds", "Hosting time", SECONDS, F_SECONDS),
    COL("last_active_on", "Last active on", DATE, F_LAST_ACTIVE),
    COL("status", "Status", TEXT, F_STATUS),
    COL("hardware", "Hardware", TEXT, F_HARDWARE),
    COL("vcpu", "vCPU", TLY_RK_DECIMAL, F_VCPU),
    COL("memory_gb", "Memory (GB)", TLY_RK_DECIMAL, F_MEMORY_GB),
};

/* ocr.csv and browser.csv */
static const struct tly_rcol hosted_cols[] = {
    COL("resource_id", "Resource ID", TEXT, F_RESOURCE_ID),
    COL("deployment_id", "Deployment ID", TEXT, F_DEPLOYMENT_ID),
    COL("name", "Name", TEXT, F_NAME),
    COL("credits_used", "Credits used", MICRO, F_CREDITS),
    COL("hosting_seconds", "Hosting time", SECONDS, F_SECONDS),
    COL("hardware", "Hardware", TEXT, F_HARDWARE),
    COL("hardware_description", "Hardware description", TEXT, F_HW_DESCRIPTION),
    COL("last_active_on", "Last active on", DATE, F_LAST_ACTIVE),
    COL("status", "Status", TEXT, F_STATUS),
};

static const struct tly_rcol trend_cols[] = {
    COL("date", "Date", DATE, 0),
    COL("runs", "Runs", INT, 0),
    COL("models", "Models (hosting)", MICRO, 0),
    COL("finetune", "Fine-tuning", MICRO, 0),
    COL("guardrails", "Guardrails", MICRO, 0),
    COL("scripts", "Custom scripts", MICRO, 0),
    COL("ocr", "OCR", MICRO, 0),
    COL("browser", "Browser automation", MICRO, 0),
    COL("credits", "Credits", MICRO, 0),
};
#define TREND_CAT0 2        /* trend_cols[TREND_CAT0 + c] is category c */

const struct tly_rcat_name tly_rcat_names[TLY_RC_MAX] = {
    [TLY_RC_MODELS]     = { "Models (hosting)", ALL_EDITIONS },
    [TLY_RC_FINETUNE]   = { "Fine-tuning", ALL_EDITIONS },
    [TLY_RC_GUARDRAILS] = { "Guardrails", ALL_EDITIONS },
    [TLY_RC_SCRIPTS]    = { "Custom scripts", ED(TLY_ED_AGENT_PLATFORM) | ED(TLY_ED_PROCESS) },
    [TLY_RC_OCR]        = { "OCR", ED(TLY_ED_PROCESS) },
    [TLY_RC_BROWSER]    = { "Browser automation", ED(TLY_ED_PROCESS) },
};

const struct tly_rcol tly_overview_cols[TLY_OVERVIEW_NCOLS] = {
    COL("account_id", "Account", TEXT, 0),
    COL("account_name", "Name", TEXT, 0),
    COL("edition", "Edition", TEXT, 0),
    COL("as_of", "As of", TLY_RK_TS, 0),
    COL("window_from", "Window from", DATE, 0),
    COL("window_to", "Window to", DATE, 0),
    COL("cycle_start", "Cycle start", DATE, 0),
    COL("cycle_end", "Next cycle", DATE, 0),
    COL("runs_used", "Runs used", INT, 0),
    COL("runs_total", "Runs total", INT, 0),
    COL("runs_used_pct", "Runs used %", TLY_RK_PCT, 0),
    COL("runs_remaining", "Runs remaining", INT, 0),
    COL("credits_used", "Credits used", MICRO, 0),
    COL("credits_total", "Credits total", MICRO, 0),
    COL("credits_used_pct", "Credits used %", TLY_RK_PCT, 0),
    COL("credits_remaining", "Credits remaining", MICRO, 0),
    COL("credits_remaining_pct", "Credits remaining %", TLY_RK_PCT, 0),
    COL("widget", "Widget", TEXT, 0),
    COL("banner_credits", "Credits banner", TEXT, 0),
    COL("banner_runs", "Runs banner", TEXT, 0),
    COL("window_runs", "Window runs", INT, 0),
    COL("window_credits", "Window credits", MICRO, 0),
    COL("window_models", "Models (hosting)", MICRO, 0),
    COL("window_finetune", "Fine-tuning", MICRO, 0),
    COL("window_guardrails", "Guardrails", MICRO, 0),
    COL("window_scripts", "Custom scripts", MICRO, 0),
    COL("window_ocr", "OCR", MICRO, 0),
    COL("window_browser", "Browser automation", MICRO, 0),
};

void tly_overview_cells(const struct tly_rmodel *m, struct tly_rcell *c)
{
    int i = 0;

    c[i++] = tly_rcell_text(m->account_id);
    c[i++] = tly_rcell_text(m->name);
    c[i++] = tly_rcell_text(m->edition_id);
    c[i++] = tly_rcell_num(m->as_of);
    c[i++] = tly_rcell_num(m->from);
    c[i++] = tly_rcell_num(m->to);
    c[i++] = tly_rcell_num(m->cycle_start);
    c[i++] = tly_rcell_num(m->cycle_end);
    /* outputs.md: run counts are plain integers here (the ledger holds runs × 10^6) */
    c[i++] = tly_rcell_num(m->runs_used / TLY_MICRO);
    c[i++] = tly_rcell_num(m->runs_total / TLY_MICRO);
    c[i++] = tly_rcell_pct(m->runs_used_pct);
    c[i++] = tly_rcell_num(m->runs_remaining / TLY_MICRO);
    c[i++] = tly_rcell_num(m->credits_used);
    c[i++] = tly_rcell_num(m->credits_total);
    c[i++] = tly_rcell_pct(m->credits_used_pct);
    c[i++] = tly_rcell_num(m->credits_remaining);
    c[i++] = tly_rcell_pct(m->credits_remaining_pct);
    c[i++] = tly_rcell_text(m->widget);
    c[i++] = tly_rcell_text(m->banner_credits);
    c[i++] = tly_rcell_text(m->banner_runs);
    c[i++] = tly_rcell_num(m->window_runs);
    c[i++] = tly_rcell_num(m->window_credits);
    for (int k = 0; k < TLY_RC_MAX; k++)
        c[i++] = tly_rcell_num(m->window_cat[k]);
}

static struct tly_rcell day_or_null(int64_t day)
{
    return day == TLY_NO_DAY ? tly_rcell_null() : tly_rcell_num(day);
}

static struct tly_rcell field_cell(const struct tly_rrow *r, int f)
{
    switch ((enum field)f) {
    case F_RESOURCE_ID:      return tly_rcell_text(r->resource_id);
    case F_DEPLOYMENT_ID:    return tly_rcell_text(r->deployment_id);
    case F_NAME:             return tly_rcell_text(r->name);
    case F_OWNER:            return tly_rcell_text(r->owner);
    case F_TYPE:             return tly_rcell_text(r->model_type);
    case F_DEPLOYMENT_NAME:  return tly_rcell_text(r->deployment_name);
    case F_DEPLOYMENT_TYPE:  return tly_rcell_text(r->deployment_type);
    case F_LANGUAGE_VERSION: return tly_rcell_text(r->language_version);
    case F_CREDITS:          return tly_rcell_num(r->credits);
    case F_HOSTING_CREDITS:  return tly_rcell_num(r->hosting_credits);
    case F_FINETUNE_CREDITS: return tly_rcell_num(r->finetune_credits);
    case F_SECONDS:          return tly_rcell_num(r->seconds);
    case F_RUNS:             return tly_rcell_num(r->runs);
    case F_HARDWARE:         return tly_rcell_text(r->hardware);
    case F_HW_DESCRIPTION:   return tly_rcell_text(r->hw ? r->hw->description : NULL);
    case F_VCPU:             return tly_rcell_text(r->hw ? r->hw->vcpu : NULL);
    case F_MEMORY_GB:        return tly_rcell_text(r->hw ? r->hw->memory_gb : NULL);
    case F_UNITS:
        return r->units == TLY_NO_INT ? tly_rcell_null() : tly_rcell_num(r->units);
    case F_REPLICAS:
        return r->replicas == TLY_NO_INT ? tly_rcell_null() : tly_rcell_num(r->replicas);
    case F_LAST_ACTIVE:      return day_or_null(r->last_active);
    case F_LAST_DEPLOYED:    return day_or_null(r->last_deployed);
    case F_LAST_UPDATED:     return day_or_null(r->last_updated);
    case F_STATUS:           return tly_rcell_text(r->status);
    }
    return tly_rcell_null();
}

/* ------------------------------------------------------------------------
 * The tabs
 * ------------------------------------------------------------------------ */

/* A figure above a tab's table: the rows counted, or a column summed. */
struct metric {
    const char *label;
    const char *column;         /* NULL: the number of rows */
};

#define MAX_METRICS 4

static const struct tab {
    const char *file, *sheet;
    unsigned editions;
    enum tly_rsource source;
    const struct tly_rcol *cols;
    int ncols;
    struct metric metrics[MAX_METRICS];
} tabs[] = {
    { "agents.csv", "Agents", ED(TLY_ED_GALE), TLY_RS_RUNNABLES, runs_cols, NCOLS(runs_cols),
      { { "Total agents", NULL }, { "Total runs", "runs" } } },
    { "tools.csv", "Tools", ED(TLY_ED_AGENT_PLATFORM), TLY_RS_RUNNABLES, runs_cols,
      NCOLS(runs_cols), { { "Total tools", NULL }, { "Total runs", "runs" } } },
    { "workflows.csv", "Workflows", ED(TLY_ED_PROCESS), TLY_RS_RUNNABLES, runs_cols,
      NCOLS(runs_cols), { { "Total workflows", NULL }, { "Total runs", "runs" } } },
    { "models.csv", "Models", ALL_EDITIONS, TLY_RS_MODELS, model_cols, NCOLS(model_cols),
      { { "Total models", NULL }, { "Total credits", "credits_used" },
        { "Fine-tuning credits", "finetune_credits" }, { "Hosting credits", "hosting_credits" } } },
    { "guardrails.csv", "Guardrails", ALL_EDITIONS, TLY_RS_GUARDRAILS, guardrail_cols,
      NCOLS(guardrail_cols),
      { { "Total guardrails", NULL }, { "Total credits", "credits" }, { "Time", "deployed_seconds" } } },
    { "scripts.csv", "Custom scripts", ED(TLY_ED_AGENT_PLATFORM) | ED(TLY_ED_PROCESS),
      TLY_RS_SCRIPTS, script_cols, NCOLS(script_cols),
      { { "Total scripts", NULL }, { "Hosting credits", "credits_used" },
        { "Hosting time", "hosting_seconds" } } },
    { "ocr.csv", "OCR", ED(TLY_ED_PROCESS), TLY_RS_OCR, hosted_cols, NCOLS(hosted_cols),
      { { "Total OCR deployments", NULL }, { "Total credits", "credits_used" },
        { "Time", "hosting_seconds" } } },
    { "browser.csv", "Browser automation", ED(TLY_ED_PROCESS), TLY_RS_BROWSER, hosted_cols,
      NCOLS(hosted_cols),
      { { "Total automations", NULL }, { "Total credits", "credits_used" },
        { "Time", "hosting_seconds" } } },
    { "model_deployments.csv", "Model deployments", ALL_EDITIONS, TLY_RS_DEPLOYMENTS,
      deployment_cols, NCOLS(deployment_cols),
      { { "Total deployments", NULL }, { "Total credits", "credits_used" },
        { "Fine-tuning credits", "finetune_credits" }, { "Hosting time", "hosting_seconds" } } },
};

/* Sheet rows: title, note, blank, then the metrics, a blank row and the table. */
#define FIRST_METRIC_ROW 3

struct tly_account_writer {
    struct tly_ledger *l;
    sqlite3_stmt *statement;
    char *dir;                  /* DIR/accounts */
    const char *scratch_dir;    /* borrowed; NULL: the account's folder */
    struct tly_xwriter *books;  /* writes each usage.xlsx while the next account is built */
};

/* The folder and file names of one account, and what was written. */
struct out {
    struct tly_account_writer *w;
    const struct tly_rmodel *m;
    struct tly_xbook *book;
    char dir[4096];
    long files;
};

static int path(struct out *o, char *buf, size_t cap, const char *file)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", o->dir, file) >= cap)
        return tly_error(TLY_ERR_OUTPUT, "path too long for '%s'", file);
    return TLY_OK;
}

/* Row 0 and 1 of every sheet: what it is, whose, which dates ('windowed': the tabs). */
static void heading(struct out *o, struct tly_xsheet *xs, const char *title, int windowed)
{
    char note[1024], dates[64], from[TLY_DATE_LEN], to[TLY_DATE_LEN], as_of[TLY_TS_LEN];
    const struct tly_rmodel *m = o->m;
    int n;

    tly_format_date(from, m->from);
    tly_format_date(to, m->to);
    tly_format_ts(as_of, m->as_of);
    if (windowed)
        snprintf(dates, sizeof dates, "window %s to %s", from, to);
    else
        snprintf(dates, sizeof dates, "every cycle up to the as-of");
    tly_xsheet_text(xs, 0, 0, title, strlen(title), TLY_XF_TITLE);
    n = snprintf(note, sizeof note, "%s (%s) \xc2\xb7 %s \xc2\xb7 as of %s",
                 m->name ? m->name : m->account_id, m->account_id, dates, as_of);
    if (n > 0)
        tly_xsheet_text(xs, 1, 0, note, (size_t)n < sizeof note ? (size_t)n : sizeof note - 1,
                        TLY_XF_NOTE);
}

static int col_index(const struct tab *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name))
            return i;
    return -1;
}

static int nmetrics(const struct tab *t)
{
    int n = 0;
    while (n < MAX_METRICS && t->metrics[n].label)
        n++;
    return n;
}

/* One tab: its CSV and its sheet, from the model's row list. */
static int write_tab(struct out *o, const struct tab *t)
{
    const struct tly_rmodel *m = o->m;
    struct tly_rcell cells[TLY_RTABLE_MAXCOLS];
    struct tly_rtable tab;
    struct tly_xsheet *xs = tly_xbook_sheet(o->book, t->sheet);
    uint32_t header = FIRST_METRIC_ROW + (uint32_t)nmetrics(t) + 1;
    char file[4096];
    int err;

    if ((err = path(o, file, sizeof file, t->file)) ||
        (err = tly_rtable_open(&tab, t->cols, t->ncols, file, xs, header)))
        return err;
    heading(o, xs, t->sheet, 1);
    for (size_t r = 0; r < m->nrows[t->source]; r++) {
        for (int c = 0; c < t->ncols; c++)
            cells[c] = field_cell(&m->rows[t->source][r], t->cols[c].field);
        tly_rtable_row(&tab, cells);
    }
    for (int k = 0; k < nmetrics(t); k++) {
        uint32_t row = FIRST_METRIC_ROW + (uint32_t)k;
        const struct metric *mt = &t->metrics[k];
        tly_xsheet_text(xs, row, 0, mt->label, strlen(mt->label), TLY_XF_LABEL);
        if (mt->column)
            tly_rtable_sum_cell(&tab, col_index(t, mt->column), xs, row, 1, 0);
        else
            tly_xsheet_number(xs, row, 1, (double)tab.nrows, TLY_XF_INT);
    }
    if ((err = tly_rtable_close(&tab, 0)))
        return err;
    o->files++;
    return TLY_OK;
}

/* A title or note names the account whole: its name and id at their longest. */
#define TITLE_LEN (TLY_TEXT_MAX + TLY_ID_MAX + 64)

/* trend.csv and the Trend sheet: one row per date of the window, zeros included. */
static int write_trend(struct out *o, struct tly_xsheet *xs, struct tly_rtable *tab)
{
    const struct tly_rmodel *m = o->m;
    struct tly_rcell cells[NCOLS(trend_cols)];
    char file[4096];
    int err;

    if ((err = path(o, file, sizeof file, "trend.csv")) ||
        (err = tly_rtable_open(tab, trend_cols, NCOLS(trend_cols), file, xs, 3)))
        return err;
    heading(o, xs, "Usage trend", 1);
    for (size_t i = 0; i < m->ndays; i++) {
        const struct tly_rday *d = &m->days[i];
        int64_t credits = 0;
        cells[0] = tly_rcell_num(d->day);
        cells[1] = tly_rcell_num(d->runs);
        for (int c = 0; c < TLY_RC_MAX; c++) {
            cells[TREND_CAT0 + c] = tly_rcell_num(d->credits[c]);
            /* bounded by the window total, which was summed with checks */
            credits += d->credits[c];
        }
        cells[TREND_CAT0 + TLY_RC_MAX] = tly_rcell_num(credits);
        tly_rtable_row(tab, cells);
    }
    if ((err = tly_rtable_close(tab, 0)))
        return err;
    o->files++;
    return TLY_OK;
}

static int write_overview_csv(struct out *o)
{
    struct tly_rcell cells[TLY_OVERVIEW_NCOLS];
    struct tly_rtable tab;
    char file[4096];
    int err;

    if ((err = path(o, file, sizeof file, "overview.csv")) ||
        (err = tly_rtable_open(&tab, tly_overview_cols, TLY_OVERVIEW_NCOLS, file, NULL, 0)))
        return err;
    tly_overview_cells(o->m, cells);
    tly_rtable_row(&tab, cells);
    if ((err = tly_rtable_close(&tab, 0)))
        return err;
    o->files++;
    return TLY_OK;
}

static int write_statement(struct out *o)
{
    struct tly_xsheet *xs = tly_xbook_sheet(o->book, "Statement");
    struct tly_rtable tab, *tabp = &tab;
    sqlite3_stmt *st = o->w->statement;
    char file[4096];
    int err;

    if ((err = path(o, file, sizeof file, "statement.csv")) ||
        (err = tly_rtable_open(&tab, tly_statement_cols, TLY_STATEMENT_NCOLS, file, xs, 3)))
        return err;
    heading(o, xs, "Statement", 0);
    sqlite3_bind_text(st, 1, o->m->account_id, -1, SQLITE_STATIC);
    if ((err = tly_rtable_query(o->w->l, st, &tabp, 1))) {
        tly_rtable_abort(&tab);
        return err;
    }
    if ((err = tly_rtable_close(&tab, 0)))
        return err;
    o->files++;
    return TLY_OK;
}

/* ------------------------------------------------------------------------
 * The Overview sheet
 * ------------------------------------------------------------------------ */

static const char *banner_text(const char *banner, int credits)
{
    static const struct { const char *code, *credits, *runs; } texts[] = {
        { "none", "no banner", "no banner" },
        { "20", "20% of the credits used", "20% of the runs used" },
        { "50", "50% of the credits used", "50% of the runs used" },
        { "70", "70% of the credits used", "70% of the runs used" },
        { "80", "80% of the credits used", "80% of the runs used" },
        { "90", "90% of the credits used", "90% of the runs used" },
        { "100", "all credits used", "all runs used" },
        { "free-expired", "the free credits have expired", "the free runs have expired" },
    };
    for (size_t i = 0; banner && i < sizeof texts / sizeof texts[0]; i++)
        if (!strcmp(banner, texts[i].code))
            return credits ? texts[i].credits : texts[i].runs;
    return "";
}

static enum tly_xfmt widget_style(const char *widget)
{
    if (!strcmp(widget, "green"))
        return TLY_XF_GREEN;
    if (!strcmp(widget, "yellow"))
        return TLY_XF_YELLOW;
    if (!strcmp(widget, "red"))
        return TLY_XF_RED;
    return TLY_XF_EXHAUSTED;
}

static void text_cell(struct tly_xsheet *xs, uint32_t row, uint16_t col, const char *s,
                      enum tly_xfmt f)
{
    if (s)
        tly_xsheet_text(xs, row, col, s, strlen(s), f);
}

static void label_row(struct tly_xsheet *xs, uint32_t row, const char *label)
{
    text_cell(xs, row, 0, label, TLY_XF_LABEL);
}

/*
 * A chart series over one column of the Trend sheet.  A window's days fit
 * one sheet; were the table ever continued (rtable.h), the chart would
 * show its first sheet's days.
 */
static void trend_series(struct tly_xbook *b, lxw_chart *chart, const struct tly_rtable *trend,
                         int col, const char *name)
{
    lxw_chart_series *s = chart_add_series(chart, NULL, NULL);
    uint32_t first, last;

    if (!s) {
        tly_xbook_check(b, LXW_ERROR_MEMORY_MALLOC_FAILED);
        return;
    }
    tly_rtable_first_rows(trend, &first, &last);
    chart_series_set_categories(s, "Trend", first, 0, last, 0);
    chart_series_set_values(s, "Trend", first, (lxw_col_t)col, last, (lxw_col_t)col);
    chart_series_set_name(s, name);      /* fixed text, never data: '=' would be a reference */
}

static void trend_charts(struct out *o, struct tly_xsheet *xs, const struct tly_rtable *trend,
                         uint32_t row, const char *runs_label)
{
    struct tly_xbook *b = o->book;
    lxw_chart *credits = tly_xbook_chart(b, LXW_CHART_COLUMN_STACKED);
    lxw_chart *runs = tly_xbook_chart(b, LXW_CHART_LINE);
    char title[64];

    if (!credits || !runs)
        return;
    for (int c = 0; c < TLY_RC_MAX; c++)
        if (tly_rcat_names[c].editions & ED(o->m->edition))
            trend_series(b, credits, trend, TREND_CAT0 + c, tly_rcat_names[c].title);
    chart_title_set_name(credits, "Credits per day");
    chart_axis_set_num_format(credits->x_axis, "mm-dd");
    chart_axis_set_num_format(credits->y_axis, "#,##0.00");
    chart_axis_set_min(credits->y_axis, 0);
    chart_legend_set_position(credits, LXW_CHART_LEGEND_BOTTOM);
    tly_xsheet_chart(xs, row, 0, credits, 1.3, 1.1);

    trend_series(b, runs, trend, 1, runs_label);
    snprintf(title, sizeof title, "%s per day", runs_label);
    chart_title_set_name(runs, title);
    chart_axis_set_num_format(runs->x_axis, "mm-dd");
    chart_axis_set_num_format(runs->y_axis, "#,##0");
    chart_axis_set_min(runs->y_axis, 0);
    chart_legend_set_position(runs, LXW_CHART_LEGEND_NONE);
    tly_xsheet_chart(xs, row, 7, runs, 1.1, 1.1);
}

/*
 * The Usage page's Overview tab (outputs.md "Workbooks"): the runs and
 * credits blocks, the widget and banners, the window's credits by
 * category with a pie chart, and the per-day trend charts.
 */
static void write_overview_sheet(struct out *o, struct tly_xsheet *xs,
                                 const struct tly_rtable *trend)
{
    static const char *const heads[] = { "Current cycle", "Used", "Total", "Used %",
                                         "Remaining", "Remaining %" };
    const struct tly_rmodel *m = o->m;
    const char *runs_label = tly_edition_runs_label(m->edition);
    char title[TITLE_LEN], note[TITLE_LEN], as_of[TLY_TS_LEN];
    struct tly_xbook *b = o->book;
    uint32_t first, row;
    double shown = 0;
    int64_t shown_micro = 0;
    lxw_chart *pie;

    if (!xs)
        return;
    snprintf(title, sizeof title, "%s \xe2\x80\x94 usage", m->name ? m->name : m->account_id);
    tly_format_ts(as_of, m->as_of);
    snprintf(note, sizeof note, "%s \xc2\xb7 account %s \xc2\xb7 as of %s",
             tly_edition_product(m->edition), m->account_id, as_of);
    worksheet_gridlines(xs->ws, LXW_HIDE_ALL_GRIDLINES);
    worksheet_fit_to_pages(xs->ws, 1, 1);          /* the page prints whole */
    text_cell(xs, 0, 0, title, TLY_XF_TITLE);
    text_cell(xs, 1, 0, note, TLY_XF_NOTE);

    /* the runs and credits blocks: the current cycle (semantics §4) */
    for (uint16_t c = 0; c < 6; c++)
        text_cell(xs, 3, c, heads[c], c ? TLY_XF_HEADER_NUM : TLY_XF_HEADER);
    label_row(xs, 4, runs_label);
    tly_xsheet_number(xs, 4, 1, (double)(m->runs_used / TLY_MICRO), TLY_XF_INT);
    tly_xsheet_number(xs, 4, 2, (double)(m->runs_total / TLY_MICRO), TLY_XF_INT);
    tly_xsheet_number(xs, 4, 3, (double)m->runs_used_pct / 10000, TLY_XF_PCT);
    tly_xsheet_number(xs, 4, 4, (double)(m->runs_remaining / TLY_MICRO), TLY_XF_INT);
    label_row(xs, 5, "Model credits");
    tly_xsheet_number(xs, 5, 1, (double)m->credits_used / TLY_MICRO, TLY_XF_CREDITS);
    tly_xsheet_number(xs, 5, 2, (double)m->credits_total / TLY_MICRO, TLY_XF_CREDITS);
    tly_xsheet_number(xs, 5, 3, (double)m->credits_used_pct / 10000, TLY_XF_PCT);
    tly_xsheet_number(xs, 5, 4, (double)m->credits_remaining / TLY_MICRO, TLY_XF_CREDITS);
    tly_xsheet_number(xs, 5, 5, (double)m->credits_remaining_pct / 10000, TLY_XF_PCT);

    label_row(xs, 7, "Cycle start");
    tly_xsheet_date(xs, 7, 1, m->cycle_start);
    label_row(xs, 8, "Next cycle starts");
    tly_xsheet_date(xs, 8, 1, m->cycle_end);
    label_row(xs, 9, "Credits status");
    text_cell(xs, 9, 1, m->widget, widget_style(m->widget));
    label_row(xs, 10, "Credits banner");
    text_cell(xs, 10, 1, m->banner_credits, TLY_XF_TEXT);
    text_cell(xs, 10, 2, banner_text(m->banner_credits, 1), TLY_XF_NOTE);
    label_row(xs, 11, "Runs banner");
    text_cell(xs, 11, 1, m->banner_runs, TLY_XF_TEXT);
    text_cell(xs, 11, 2, banner_text(m->banner_runs, 0), TLY_XF_NOTE);

    /* the window's credits by category: the pie chart's data */
    text_cell(xs, 13, 0, "Usage in the window", TLY_XF_HEADER);
    text_cell(xs, 13, 1, "Credits", TLY_XF_HEADER_NUM);
    label_row(xs, 14, "Window from");
    tly_xsheet_date(xs, 14, 1, m->from);
    label_row(xs, 15, "Window to");
    tly_xsheet_date(xs, 15, 1, m->to);
    first = row = 16;
    for (int c = 0; c < TLY_RC_MAX; c++) {
        if (!(tly_rcat_names[c].editions & ED(m->edition)))
            continue;
        label_row(xs, row, tly_rcat_names[c].title);
        tly_xsheet_number(xs, row, 1, (double)m->window_cat[c] / TLY_MICRO, TLY_XF_CREDITS);
        /* the categories an edition lacks are never charged (semantics §10) */
        shown_micro += m->window_cat[c];
        row++;
    }
    shown = (double)shown_micro / TLY_MICRO;
    {
        char formula[64], range[LXW_MAX_CELL_RANGE_LENGTH];
        lxw_rowcol_to_range(range, first, 1, row - 1, 1);
        snprintf(formula, sizeof formula, "SUM(%s)", range);
        text_cell(xs, row, 0, "Total credits", TLY_XF_TOTAL_LABEL);
        tly_xsheet_formula(xs, row, 1, formula, shown, TLY_XF_TOTAL_CREDITS);
    }
    label_row(xs, row + 1, runs_label);
    tly_xsheet_number(xs, row + 1, 1, (double)m->window_runs, TLY_XF_INT);

    if ((pie = tly_xbook_chart(b, LXW_CHART_PIE))) {
        lxw_chart_series *s = chart_add_series(pie, NULL, NULL);
        if (s) {
            chart_series_set_categories(s, "Overview", first, 0, row - 1, 0);
            chart_series_set_values(s, "Overview", first, 1, row - 1, 1);
            chart_series_set_name(s, "Credits");
            chart_series_set_labels_options(s, LXW_FALSE, LXW_FALSE, LXW_FALSE);
            chart_series_set_labels_percentage(s);
        } else {
            tly_xbook_check(b, LXW_ERROR_MEMORY_MALLOC_FAILED);
        }
        chart_title_set_name(pie, "Credits by category in the window");
        chart_legend_set_position(pie, LXW_CHART_LEGEND_RIGHT);
        tly_xsheet_chart(xs, 3, 7, pie, 1.1, 1.15);
    }
    trend_charts(o, xs, trend, row + 3, runs_label);
}

/* ------------------------------------------------------------------------
 * One account
 * ------------------------------------------------------------------------ */

int tly_account_writer_open(struct tly_ledger *l, const char *dir, const char *scratch_dir,
                            struct tly_account_writer **out)
{
    struct tly_account_writer *w = tly_calloc(1, sizeof *w);
    size_t n = strlen(dir) + sizeof "/accounts";
    int err;

    *out = NULL;
    if (!w || !(w->dir = tly_malloc(n))) {
        tly_free(w);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    w->l = l;
    w->scratch_dir = scratch_dir;
    snprintf(w->dir, n, "%s/accounts", dir);
    if (mkdir(w->dir, 0777) && errno != EEXIST) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot create '%s': %s", w->dir, strerror(errno));
        tly_account_writer_free(w);
        return err;
    }
    if ((err = tly_ledger_prepare(l, "SELECT " TLY_STATEMENT_COLUMNS " FROM statements"
                                     " WHERE account_id = ?1 ORDER BY pool, cycle_start",
                                  &w->statement)) ||
        (err = tly_xwriter_create(&w->books))) {
        tly_account_writer_free(w);
        return err;
    }
    *out = w;
    return TLY_OK;
}

void tly_account_writer_free(struct tly_account_writer *w)
{
    if (!w)
        return;
    tly_xwriter_abort(w->books);
    sqlite3_finalize(w->statement);
    tly_free(w->dir);
    tly_free(w);
}

int tly_account_writer_finish(struct tly_account_writer *w)
{
    int err = tly_xwriter_finish(w->books);

    w->books = NULL;
    return err;
}

int tly_account_write(struct tly_account_writer *w, const struct tly_rmodel *m, long *files)
{
    struct out o = { w, m, NULL, { 0 }, 0 };
    struct tly_xsheet *overview, *trend_sheet;
    struct tly_rtable trend;
    char file[4096], title[TITLE_LEN];
    int err;

    if ((size_t)snprintf(o.dir, sizeof o.dir, "%s/%s", w->dir, m->account_id) >= sizeof o.dir)
        return tly_error(TLY_ERR_OUTPUT, "path too long for account '%s'", m->account_id);
    if (mkdir(o.dir, 0777) && errno != EEXIST)
        return tly_error(TLY_ERR_OUTPUT, "cannot create '%s': %s", o.dir, strerror(errno));
    snprintf(title, sizeof title, "Usage \xe2\x80\x94 %s (%s)", m->name ? m->name : m->account_id,
             m->account_id);
    if ((err = path(&o, file, sizeof file, "usage.xlsx")) ||
        (err = tly_xbook_open(file, title, m->as_of, w->scratch_dir ? w->scratch_dir : o.dir, 0, &o.book)))
        return err;
    /* sheet order: Overview, Trend, the edition's tabs, Model deployments, Statement */
    overview = tly_xbook_sheet(o.book, "Overview");
    trend_sheet = tly_xbook_sheet(o.book, "Trend");
    if ((err = write_overview_csv(&o)) || (err = write_trend(&o, trend_sheet, &trend)))
        goto fail;
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++)
        if ((tabs[i].editions & ED(m->edition)) && (err = write_tab(&o, &tabs[i])))
            goto fail;
    if ((err = write_statement(&o)))
        goto fail;
    write_overview_sheet(&o, overview, &trend);
    err = tly_xwriter_close(w->books, o.book);
    o.book = NULL;
    if (err)
        return err;
    *files += o.files + 1;
    return TLY_OK;
fail:
    tly_xbook_abort(o.book);
    return err;
}
