/*
 * rmodel.c — reading one account's report model from the result tables.
 *
 * Per account: one indexed query each for the trend (usage_day by day and
 * category), the usage of every deployment and runnable (usage_day grouped
 * by key, window sums and the latest day with hosting time), the
 * deployments (deployment_state), the runnables (runnable_state) and the
 * current statement's carry.  Rows are then joined and grouped in memory.
 */
#include "rmodel.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Strings: one pool per model, reused from account to account
 * ------------------------------------------------------------------------ */

#define POOL_CHUNK 65536

struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
};

struct tly_rpool {
    struct chunk *head, *cur;
};

static void pool_reset(struct tly_rpool *p)
{
    p->cur = p->head;
    if (p->cur)
        p->cur->used = 0;
}

static void pool_free(struct tly_rpool *p)
{
    if (!p)
        return;
    while (p->head) {
        struct chunk *next = p->head->next;
        tly_free(p->head);
        p->head = next;
    }
    tly_free(p);
}

/* A copy of 'n' bytes; NULL for an empty or absent value (shown as empty). */
static const char *pool_str(struct tly_rpool *p, const unsigned char *s, int n, int *nomem)
{
    struct chunk *c = p->cur;
    char *out;

    if (!s || n <= 0)
        return NULL;
    while (c && c->cap - c->used < (size_t)n + 1) {
        c = c->next;
        if (c)
            c->used = 0;
    }
    if (!c) {
        size_t cap = (size_t)n + 1 > POOL_CHUNK ? (size_t)n + 1 : POOL_CHUNK;
        if (!(c = tly_malloc(sizeof *c + cap))) {
            *nomem = 1;
            return NULL;
        }
        c->next = NULL;
        c->used = 0;
        c->cap = cap;
        if (p->cur) {               /* keep later chunks for reuse */
            c->next = p->cur->next;
            p->cur->next = c;
        } else {
            p->head = c;
        }
    }
    p->cur = c;
    out = c->data + c->used;
    memcpy(out, s, (size_t)n);
    out[n] = '\0';
    c->used += (size_t)n + 1;
    return out;
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

static const struct {
    const char *id, *product, *runnable, *runs_label;
} editions[TLY_ED_MAX] = {
    [TLY_ED_GALE]           = { "gale", "GALE", "agent", "Agent runs" },
    [TLY_ED_AGENT_PLATFORM] = { "agent-platform", "Agent Platform", "tool", "Tool runs" },
    [TLY_ED_PROCESS]        = { "process", "AI for Process", "workflow", "Workflow runs" },
};

const char *tly_edition_product(enum tly_edition e)
{
    return editions[e].product;
}

const char *tly_edition_runnable(enum tly_edition e)
{
    return editions[e].runnable;
}

const char *tly_edition_runs_label(enum tly_edition e)
{
    return editions[e].runs_label;
}

/*
 * Runs keep their runnable's kind: an agent and a tool may share a
 * resource_id (an edition changed after a close leaves runs of both), and
 * each tab row takes the runs of its own kind only.
 */
#define CAT_UNKNOWN (-1)
#define CAT_RUNS_FIRST (-2)                 /* then one below for each kind of runnables[] */
#define IS_RUNS(cat) ((cat) <= CAT_RUNS_FIRST)

/* usage_day / deployment_state category → statement category, or runs of a kind. */
static int category(const char *s)
{
    static const char *const runnables[] = { "agent", "workflow", "tool" };
    static const char *const names[TLY_RC_MAX] = {
        [TLY_RC_MODELS] = "model", [TLY_RC_FINETUNE] = "finetune",
        [TLY_RC_GUARDRAILS] = "guardrail", [TLY_RC_SCRIPTS] = "script",
        [TLY_RC_OCR] = "ocr", [TLY_RC_BROWSER] = "browser",
    };
    if (!s)
        return CAT_UNKNOWN;
    for (int i = 0; i < TLY_RC_MAX; i++)
        if (!strcmp(s, names[i]))
            return i;
    for (int i = 0; i < (int)(sizeof runnables / sizeof *runnables); i++)
        if (!strcmp(s, runnables[i]))
            return CAT_RUNS_FIRST - i;
    return CAT_UNKNOWN;
}

/* ------------------------------------------------------------------------
 * The reader
 * ------------------------------------------------------------------------ */

/* One usage_day key with its window sums (semantics §7). */
struct usage {
    int cat;
    const char *resource_id, *deployment_id;
    int64_t credits, seconds, runs, last_active;
    int joined;
};

struct tly_rreader {
    struct tly_ledger *l;
    const struct tly_report_opts *o;
    int64_t last_day;                   /* the date of as-of − 1 s */
    sqlite3_stmt *accounts, *days, *usage, *deps, *runnables, *carried;
    struct tly_rhardware *hw;           /* sorted by id */
    size_t nhw;
    struct tly_rpool *hw_pool;
    struct usage *use;                  /* the current account's, reused */
    size_t nuse, use_cap;
};

static const char sql_accounts[] =
    "SELECT account_id, name, edition, as_of, cycle_start, cycle_end,"
    " runs_used, runs_total, runs_remaining, credits_used, credits_total,"
    " credits_remaining, banner_credits, banner_runs"
    " FROM account_state WHERE ?1 IS NULL OR account_id = ?1 ORDER BY account_id";
/* usage_by_account(account_id, day) serves all three usage queries */
static const char sql_days[] =
    "SELECT day, category, SUM(credits), SUM(runs) FROM usage_day"
    " WHERE account_id = ?1 AND day BETWEEN ?2 AND ?3 GROUP BY day, category";
static const char sql_usage[] =
    "SELECT category, resource_id, deployment_id,"
    " SUM(CASE WHEN day BETWEEN ?2 AND ?3 THEN credits ELSE 0 END),"
    " SUM(CASE WHEN day BETWEEN ?2 AND ?3 THEN seconds ELSE 0 END),"
    " SUM(CASE WHEN day BETWEEN ?2 AND ?3 THEN runs ELSE 0 END),"
    " MAX(CASE WHEN seconds > 0 THEN day END)"
    " FROM usage_day WHERE account_id = ?1 AND day <= ?4"
    " GROUP BY category, resource_id, deployment_id";
static const char sql_deps[] =
    "SELECT category, resource_id, deployment_id, resource_name, owner, model_type,"
    " deployment_name, deployment_type, language_version, hardware, units, replicas,"
    " status, last_deployed, last_updated, last_ts"
    " FROM deployment_state WHERE account_id = ?1";
static const char sql_runnables[] =
    "SELECT resource_id, name, owner, status, last_active FROM runnable_state"
    " WHERE account_id = ?1 AND kind = ?2 ORDER BY resource_id";
static const char sql_carried[] =
    "SELECT carried_to_next FROM statements"
    " WHERE account_id = ?1 AND pool = 'credits' AND cycle_start = ?2";
/* outputs.md: the card row in force at the as-of, else the hardware's latest (of the card in force) */
static const char sql_rates[] =
    "SELECT hardware, description, vcpu, memory_gb FROM rates"
    " WHERE card = (SELECT MAX(card) FROM rates) ORDER BY hardware,"
    " (effective_from <= ?1 AND (effective_to IS NULL OR effective_to > ?1)) DESC,"
    " effective_from DESC";

static int load_rates(struct tly_rreader *r)
{
    sqlite3_stmt *st;
    size_t cap = 0;
    int err, rc, nomem = 0;

    if ((err = tly_ledger_prepare(r->l, sql_rates, &st)))
        return err;
    sqlite3_bind_int64(st, 1, r->o->as_of);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        struct tly_rhardware *h;
        if (r->nhw && !strcmp(r->hw[r->nhw - 1].id, (const char *)id))
            continue;               /* the first row of a hardware is the one shown */
        if (tly_grow(&r->hw, &cap, r->nhw + 1, sizeof *r->hw)) {
            nomem = 1;
            break;
        }
        h = &r->hw[r->nhw++];
        h->id = pool_str(r->hw_pool, id, sqlite3_column_bytes(st, 0), &nomem);
        h->description = pool_str(r->hw_pool, sqlite3_column_text(st, 1),
                                  sqlite3_column_bytes(st, 1), &nomem);
        h->vcpu = pool_str(r->hw_pool, sqlite3_column_text(st, 2),
                           sqlite3_column_bytes(st, 2), &nomem);
        h->memory_gb = pool_str(r->hw_pool, sqlite3_column_text(st, 3),
                                sqlite3_column_bytes(st, 3), &nomem);
        if (nomem || !h->id)
            break;
    }
    sqlite3_finalize(st);
    if (nomem)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return tly_ledger_error(r->l, "reading the rate card");
    return TLY_OK;
}

static int hw_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct tly_rhardware *)elem)->id);
}

static const struct tly_rhardware *find_hw(const struct tly_rreader *r, const char *id)
{
    if (!id || !r->nhw)
        return NULL;
    return bsearch(id, r->hw, r->nhw, sizeof *r->hw, hw_cmp);
}

int tly_rreader_open(struct tly_ledger *l, const struct tly_report_opts *o,
                     struct tly_rreader **out)
{
    struct tly_rreader *r = tly_calloc(1, sizeof *r);
    int err;

    *out = NULL;
    if (!r || !(r->hw_pool = tly_calloc(1, sizeof *r->hw_pool))) {
        tly_free(r);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    r->l = l;
    r->o = o;
    r->last_day = tly_day_of(o->as_of - 1);
    if ((err = tly_ledger_prepare(l, sql_accounts, &r->accounts)) ||
        (err = tly_ledger_prepare(l, sql_days, &r->days)) ||
        (err = tly_ledger_prepare(l, sql_usage, &r->usage)) ||
        (err = tly_ledger_prepare(l, sql_deps, &r->deps)) ||
        (err = tly_ledger_prepare(l, sql_runnables, &r->runnables)) ||
        (err = tly_ledger_prepare(l, sql_carried, &r->carried)) ||
        (err = load_rates(r))) {
        tly_rreader_free(r);
        return err;
    }
    if (o->account)
        sqlite3_bind_text(r->accounts, 1, o->account, -1, SQLITE_STATIC);
    *out = r;
    return TLY_OK;
}

void tly_rreader_free(struct tly_rreader *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->accounts);
    sqlite3_finalize(r->days);
    sqlite3_finalize(r->usage);
    sqlite3_finalize(r->deps);
    sqlite3_finalize(r->runnables);
    sqlite3_finalize(r->carried);
    pool_free(r->hw_pool);
    tly_free(r->hw);
    tly_free(r->use);
    tly_free(r);
}

void tly_rmodel_release(struct tly_rmodel *m)
{
    tly_free(m->days);
    for (int i = 0; i < TLY_RS_MAX; i++)
        tly_free(m->rows[i]);
    tly_free(m->deps);
    pool_free(m->pool);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------
 * One account
 * ------------------------------------------------------------------------ */

/* Loading state: errors of the column copies are collected, not returned. */
struct load {
    struct tly_rreader *r;
    struct tly_rmodel *m;
    int nomem, overflow;
};

static const char *col_text(struct load *ld, sqlite3_stmt *st, int i)
{
    return pool_str(ld->m->pool, sqlite3_column_text(st, i), sqlite3_column_bytes(st, i),
                    &ld->nomem);
}

static int64_t col_or(sqlite3_stmt *st, int i, int64_t none)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? none : sqlite3_column_int64(st, i);
}

static void add(struct load *ld, int64_t *acc, int64_t v)
{
    /* sums of engine figures: checked like every micro-credit sum */
    if (tly_add_checked(*acc, v, acc))
        ld->overflow = 1;
}

static int step_error(struct load *ld, const char *what)
{
    return tly_ledger_error(ld->r->l, what);
}

/* The engine writes only the categories of ledger.c; anything else is refused, not skipped. */
static int bad_category(struct load *ld, sqlite3_stmt *st, int col)
{
    int err = tly_error(TLY_ERR_LEDGER, "account '%s': unknown usage category '%s'",
                        ld->m->account_id, sqlite3_column_text(st, col));
    sqlite3_reset(st);
    return err;
}

/* semantics §7: whole UTC dates ending with the date of as-of − 1 s */
static void window(const struct tly_report_opts *o, int64_t last_day, int64_t cycle_start,
                   int64_t *from, int64_t *to)
{
    static const struct { const char *name; int days; } fixed[] = {
        { "24h", 1 }, { "7d", 7 }, { "30d", 30 }, { "90d", 90 },
    };
    *to = last_day;
    *from = cycle_start;                /* "cycle", the default */
    if (o->custom) {
        *from = o->from_day;
        *to = o->to_day;
        return;
    }
    for (size_t i = 0; o->window && i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(o->window, fixed[i].name))
            *from = last_day - fixed[i].days + 1;
}

static int load_days(struct load *ld)
{
    struct tly_rmodel *m = ld->m;
    sqlite3_stmt *st = ld->r->days;
    size_t n = (size_t)(m->to - m->from + 1);
    int rc;

    if (tly_grow(&m->days, &m->days_cap, n, sizeof *m->days))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    memset(m->days, 0, n * sizeof *m->days);
    m->ndays = n;
    for (size_t i = 0; i < n; i++)
        m->days[i].day = m->from + (int64_t)i;
    sqlite3_bind_text(st, 1, m->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->from);
    /* nothing after the as-of's last date counts (the tabs' rule too) */
    sqlite3_bind_int64(st, 3, m->to < ld->r->last_day ? m->to : ld->r->last_day);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tly_rday *d = &m->days[sqlite3_column_int64(st, 0) - m->from];
        int cat = category((const char *)sqlite3_column_text(st, 1));
        if (cat == CAT_UNKNOWN)
            return bad_category(ld, st, 1);
        if (IS_RUNS(cat))
            add(ld, &d->runs, sqlite3_column_int64(st, 3));
        else
            add(ld, &d->credits[cat], sqlite3_column_int64(st, 2));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return step_error(ld, "reading usage by day");
    /* the overview's window figures are the trend's sums (semantics §9 conservation) */
    for (size_t i = 0; i < n; i++) {
        add(ld, &m->window_runs, m->days[i].runs);
        for (int c = 0; c < TLY_RC_MAX; c++) {
            add(ld, &m->window_cat[c], m->days[i].credits[c]);
            add(ld, &m->window_credits, m->days[i].credits[c]);
        }
    }
    return TLY_OK;
}

/* Byte order, as SQLite's BINARY collation; NULL (empty) first. */
static int scmp(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int usage_cmp(const void *a, const void *b)
{
    const struct usage *x = a, *y = b;
    int c;
    if (x->cat != y->cat)
        return x->cat < y->cat ? -1 : 1;
    if ((c = scmp(x->resource_id, y->resource_id)))
        return c;
    return scmp(x->deployment_id, y->deployment_id);
}

static struct usage *find_usage(struct tly_rreader *r, int cat, const char *resource_id,
                                const char *deployment_id)
{
    struct usage key = { cat, resource_id, deployment_id, 0, 0, 0, 0, 0 };
    if (!r->nuse)
        return NULL;
    return bsearch(&key, r->use, r->nuse, sizeof *r->use, usage_cmp);
}

static int load_usage(struct load *ld)
{
    struct tly_rreader *r = ld->r;
    struct tly_rmodel *m = ld->m;
    sqlite3_stmt *st = r->usage;
    int rc;

    r->nuse = 0;
    sqlite3_bind_text(st, 1, m->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->from);
    sqlite3_bind_int64(st, 3, m->to);
    sqlite3_bind_int64(st, 4, r->last_day);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct usage *u;
        int cat = category((const char *)sqlite3_column_text(st, 0));
        if (cat == CAT_UNKNOWN)
            return bad_category(ld, st, 0);
        if (tly_grow(&r->use, &r->use_cap, r->nuse + 1, sizeof *r->use)) {
            ld->nomem = 1;
            break;
        }
        u = &r->use[r->nuse++];
        u->cat = cat;
        u->resource_id = col_text(ld, st, 1);
        u->deployment_id = col_text(ld, st, 2);
        u->credits = sqlite3_column_int64(st, 3);
        u->seconds = sqlite3_column_int64(st, 4);
        u->runs = sqlite3_column_int64(st, 5);
        u->last_active = col_or(st, 6, TLY_NO_DAY);
        u->joined = 0;
        if (ld->nomem)
            break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return step_error(ld, "reading usage");
    if (r->nuse)
        qsort(r->use, r->nuse, sizeof *r->use, usage_cmp);
    return TLY_OK;
}

static struct tly_rrow *new_dep(struct load *ld)
{
    struct tly_rmodel *m = ld->m;
    struct tly_rrow *d;

    if (tly_grow(&m->deps, &m->deps_cap, m->ndeps + 1, sizeof *m->deps)) {
        ld->nomem = 1;
        return NULL;
    }
    d = &m->deps[m->ndeps++];
    memset(d, 0, sizeof *d);
    d->units = d->replicas = TLY_NO_INT;
    d->last_active = d->last_deployed = d->last_updated = TLY_NO_DAY;
    return d;
}

/* A deployment's (or job's) window usage: hosting, or fine-tuning for a job. */
static void join_usage(struct load *ld, struct tly_rrow *d, struct usage *u)
{
    if (!u)
        return;
    u->joined = 1;
    add(ld, &d->credits, u->credits);
    if (d->cat == TLY_RC_FINETUNE) {
        add(ld, &d->finetune_credits, u->credits);    /* outputs.md: hosting_seconds 0 */
    } else {
        add(ld, &d->hosting_credits, u->credits);
        add(ld, &d->seconds, u->seconds);
        if (u->last_active > d->last_active)
            d->last_active = u->last_active;
    }
}

static int load_deployments(struct load *ld)
{
    struct tly_rreader *r = ld->r;
    struct tly_rmodel *m = ld->m;
    sqlite3_stmt *st = r->deps;
    int rc;

    m->ndeps = 0;
    sqlite3_bind_text(st, 1, m->account_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int cat = category((const char *)sqlite3_column_text(st, 0));
        struct tly_rrow *d;
        if (cat < 0)
            continue;               /* not a credit category: no tab shows it */
        if (!(d = new_dep(ld)))
            break;
        d->cat = (enum tly_rcat)cat;
        d->resource_id = col_text(ld, st, 1);
        d->deployment_id = col_text(ld, st, 2);
        d->name = col_text(ld, st, 3);
        d->owner = col_text(ld, st, 4);
        d->model_type = col_text(ld, st, 5);
        d->deployment_name = col_text(ld, st, 6);
        d->deployment_type = col_text(ld, st, 7);
        d->language_version = col_text(ld, st, 8);
        d->hardware = col_text(ld, st, 9);
        d->hw = find_hw(r, d->hardware);
        d->units = col_or(st, 10, TLY_NO_INT);
        d->replicas = col_or(st, 11, TLY_NO_INT);
        d->status = col_text(ld, st, 12);
        d->last_deployed = col_or(st, 13, TLY_NO_DAY);
        d->last_updated = col_or(st, 14, TLY_NO_DAY);
        d->last_ts = sqlite3_column_int64(st, 15);
        if (ld->nomem)
            break;
        join_usage(ld, d, find_usage(r, cat, d->resource_id, d->deployment_id));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return step_error(ld, "reading deployments");
    /*
     * Usage of a key with no deployment_state row would otherwise vanish
     * from the tabs while counting in the overview; keep the tabs' sums
     * equal to the window's (semantics §9) by listing it under its ids.
     */
    for (size_t i = 0; i < r->nuse && !ld->nomem; i++) {
        struct usage *u = &r->use[i];
        struct tly_rrow *d;
        if (u->joined || IS_RUNS(u->cat) || !(d = new_dep(ld)))
            continue;
        d->cat = (enum tly_rcat)u->cat;
        d->resource_id = u->resource_id;
        d->deployment_id = u->deployment_id;
        d->status = "Undeployed";
        join_usage(ld, d, u);
    }
    return TLY_OK;
}

static int load_runnables(struct load *ld)
{
    struct tly_rreader *r = ld->r;
    struct tly_rmodel *m = ld->m;
    sqlite3_stmt *st = r->runnables;
    const char *kind = tly_edition_runnable(m->edition);
    int rc;

    m->nrows[TLY_RS_RUNNABLES] = 0;
    sqlite3_bind_text(st, 1, m->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tly_rrow *d;
        struct usage *u;
        size_t *n = &m->nrows[TLY_RS_RUNNABLES];
        if (tly_grow(&m->rows[TLY_RS_RUNNABLES], &m->rows_cap[TLY_RS_RUNNABLES], *n + 1,
                     sizeof **m->rows)) {
            ld->nomem = 1;
            break;
        }
        d = &m->rows[TLY_RS_RUNNABLES][(*n)++];
        memset(d, 0, sizeof *d);
        d->units = d->replicas = TLY_NO_INT;
        d->last_deployed = d->last_updated = TLY_NO_DAY;
        d->resource_id = col_text(ld, st, 0);
        d->name = col_text(ld, st, 1);
        d->owner = col_text(ld, st, 2);
        d->status = col_text(ld, st, 3);
        d->last_active = col_or(st, 4, TLY_NO_DAY);
        if (ld->nomem)
            break;
        /* runs rows of usage_day have deployment_id '' */
        if ((u = find_usage(r, category(kind), d->resource_id, NULL)))
            d->runs = u->runs;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return step_error(ld, "reading runnables");
    return TLY_OK;
}

/* ------------------------------------------------------------------------
 * Grouping deployments into the tabs
 * ------------------------------------------------------------------------ */

/* The tab a deployment belongs to; models and their fine-tuning jobs share one. */
static int family(enum tly_rcat c)
{
    return c == TLY_RC_FINETUNE ? TLY_RC_MODELS : (int)c;
}

/* Family, resource, deployment, then hosting before a job (semantics §10). */
static int dep_cmp(const void *a, const void *b)
{
    const struct tly_rrow *x = a, *y = b;
    int c;
    if (family(x->cat) != family(y->cat))
        return family(x->cat) < family(y->cat) ? -1 : 1;
    if ((c = scmp(x->resource_id, y->resource_id)))
        return c;
    if ((c = scmp(x->deployment_id, y->deployment_id)))
        return c;
    return (x->cat == TLY_RC_FINETUNE) - (y->cat == TLY_RC_FINETUNE);
}

/* Is 'd' later than 'than'?  By its latest lifecycle event or stop. */
static int later(const struct tly_rrow *d, const struct tly_rrow *than)
{
    return !than || d->last_ts >= than->last_ts;
}

/* Keeps the value of the latest deployment that has one ("the latest non-empty"). */
static void latest_text(const char **out, const struct tly_rrow **from, const char *v,
                        const struct tly_rrow *d)
{
    if (v && later(d, *from)) {
        *out = v;
        *from = d;
    }
}

static int is(const char *status, const char *want)
{
    return status && !strcmp(status, want);
}

/*
 * One row per resource from its deployments g[0..n) (models with their
 * jobs, guardrails, scripts).  outputs.md: status is Deleted when deleted,
 * Deployed when any deployment runs at the as-of, else Undeployed; names
 * are the latest non-empty; hardware and units are what the running (else
 * the latest) deployment has.  A fine-tuning job is not a deployment, so it
 * does not make a model Deployed.
 */
static void rollup(struct load *ld, const struct tly_rrow *g, size_t n, struct tly_rrow *out)
{
    const struct tly_rrow *name_from = NULL, *owner_from = NULL, *type_from = NULL;
    const struct tly_rrow *lang_from = NULL, *current = NULL;
    int deleted = 0, deployed = 0;

    memset(out, 0, sizeof *out);
    out->cat = (enum tly_rcat)family(g[0].cat);
    out->resource_id = g[0].resource_id;
    out->last_active = out->last_deployed = out->last_updated = TLY_NO_DAY;
    for (size_t i = 0; i < n; i++) {
        const struct tly_rrow *d = &g[i];
        int running = d->cat != TLY_RC_FINETUNE && is(d->status, "Deployed");
        latest_text(&out->name, &name_from, d->name, d);
        latest_text(&out->owner, &owner_from, d->owner, d);
        latest_text(&out->model_type, &type_from, d->model_type, d);
        latest_text(&out->language_version, &lang_from, d->language_version, d);
        if (d->cat != TLY_RC_FINETUNE &&
            (!current || (running && !deployed) || (running == deployed && later(d, current))))
            current = d;
        deleted |= is(d->status, "Deleted");
        deployed |= running;
        add(ld, &out->credits, d->credits);
        add(ld, &out->hosting_credits, d->hosting_credits);
        add(ld, &out->finetune_credits, d->finetune_credits);
        add(ld, &out->seconds, d->seconds);
        if (d->last_active > out->last_active)
            out->last_active = d->last_active;
        if (d->last_deployed > out->last_deployed)
            out->last_deployed = d->last_deployed;
        if (d->last_updated > out->last_updated)
            out->last_updated = d->last_updated;
    }
    out->status = deleted ? "Deleted" : deployed ? "Deployed" : "Undeployed";
    out->units = out->replicas = TLY_NO_INT;
    if (current) {
        out->hardware = current->hardware;
        out->hw = current->hw;
        out->units = current->units;
        out->replicas = current->replicas;
    }
}

static struct tly_rrow *push(struct load *ld, enum tly_rsource s)
{
    struct tly_rmodel *m = ld->m;
    if (tly_grow(&m->rows[s], &m->rows_cap[s], m->nrows[s] + 1, sizeof **m->rows)) {
        ld->nomem = 1;
        return NULL;
    }
    return &m->rows[s][m->nrows[s]++];
}

static void group(struct load *ld)
{
    /* per family: the per-deployment tab and the per-resource tab (-1: none) */
    static const struct { int dep_tab, res_tab; } tabs[TLY_RC_MAX] = {
        [TLY_RC_MODELS]     = { TLY_RS_DEPLOYMENTS, TLY_RS_MODELS },
        [TLY_RC_GUARDRAILS] = { -1, TLY_RS_GUARDRAILS },
        [TLY_RC_SCRIPTS]    = { -1, TLY_RS_SCRIPTS },
        [TLY_RC_OCR]        = { TLY_RS_OCR, -1 },
        [TLY_RC_BROWSER]    = { TLY_RS_BROWSER, -1 },
    };
    struct tly_rmodel *m = ld->m;
    size_t i = 0;

    for (int s = 0; s < TLY_RS_MAX; s++)
        if (s != TLY_RS_RUNNABLES)
            m->nrows[s] = 0;
    if (m->ndeps)
        qsort(m->deps, m->ndeps, sizeof *m->deps, dep_cmp);
    while (i < m->ndeps && !ld->nomem) {
        const struct tly_rrow *g = &m->deps[i];
        int f = family(g->cat);
        size_t n = 1;
        struct tly_rrow *row;
        while (i + n < m->ndeps && family(g[n].cat) == f &&
               !scmp(g[n].resource_id, g->resource_id))
            n++;
        if (tabs[f].res_tab >= 0 && (row = push(ld, tabs[f].res_tab)))
            rollup(ld, g, n, row);
        for (size_t k = 0; k < n && tabs[f].dep_tab >= 0; k++)
            if ((row = push(ld, tabs[f].dep_tab)))
                *row = g[k];
        i += n;
    }
}

/* ------------------------------------------------------------------------
 * The account row
 * ------------------------------------------------------------------------ */

static int load_account(struct load *ld, sqlite3_stmt *st)
{
    struct tly_rmodel *m = ld->m;
    const struct tly_report_opts *o = ld->r->o;
    int e;

    m->account_id = col_text(ld, st, 0);
    m->name = col_text(ld, st, 1);
    m->edition_id = col_text(ld, st, 2);
    m->as_of = sqlite3_column_int64(st, 3);
    m->cycle_start = sqlite3_column_int64(st, 4);
    m->cycle_end = sqlite3_column_int64(st, 5);
    m->runs_used = sqlite3_column_int64(st, 6);
    m->runs_total = sqlite3_column_int64(st, 7);
    m->runs_remaining = sqlite3_column_int64(st, 8);
    m->credits_used = sqlite3_column_int64(st, 9);
    m->credits_total = sqlite3_column_int64(st, 10);
    m->credits_remaining = sqlite3_column_int64(st, 11);
    m->banner_credits = col_text(ld, st, 12);
    m->banner_runs = col_text(ld, st, 13);
    if (ld->nomem || !m->account_id)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    /* the account id names a folder (inputs.md: no '/'); never leave the output */
    if (strchr(m->account_id, '/') || m->account_id[0] == '.')
        return tly_error(TLY_ERR_LEDGER, "account '%s': not usable as a folder name",
                         m->account_id);
    for (e = 0; e < TLY_ED_MAX; e++)
        if (m->edition_id && !strcmp(m->edition_id, editions[e].id))
            break;
    if (e == TLY_ED_MAX)
        return tly_error(TLY_ERR_LEDGER, "account '%s': unknown edition '%s'", m->account_id,
                         m->edition_id ? m->edition_id : "");
    m->edition = (enum tly_edition)e;
    /* the figures must be the engine's at this very as-of */
    if (m->as_of != o->as_of)
        return tly_error(TLY_ERR_LEDGER, "account '%s': reconciled at another as-of",
                         m->account_id);
    m->runs_used_pct = tly_pct_used(m->runs_used, m->runs_total);
    m->credits_used_pct = tly_pct_used(m->credits_used, m->credits_total);
    m->credits_remaining_pct = tly_pct_remaining(m->credits_remaining, m->credits_total);
    m->widget = tly_widget(m->credits_remaining, m->credits_total);
    window(o, ld->r->last_day, m->cycle_start, &m->from, &m->to);
    if (m->from > m->to)
        return tly_error(TLY_ERR_LEDGER, "account '%s': the current cycle starts after the as-of",
                         m->account_id);
    return TLY_OK;
}

static int load_carried(struct load *ld)
{
    sqlite3_stmt *st = ld->r->carried;
    int rc;

    sqlite3_bind_text(st, 1, ld->m->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ld->m->cycle_start);
    rc = sqlite3_step(st);
    ld->m->carried_to_next = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return step_error(ld, "reading statements");
    return TLY_OK;
}

int tly_rmodel_next(struct tly_rreader *r, struct tly_rmodel *m, int *loaded)
{
    struct load ld = { r, m, 0, 0 };
    int rc, err;

    *loaded = 0;
    if (!m->pool && !(m->pool = tly_calloc(1, sizeof *m->pool)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    pool_reset(m->pool);
    m->window_runs = m->window_credits = 0;
    memset(m->window_cat, 0, sizeof m->window_cat);
    rc = sqlite3_step(r->accounts);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(r->accounts);
        return TLY_OK;
    }
    if (rc != SQLITE_ROW)
        return tly_ledger_error(r->l, "reading accounts");
    if ((err = load_account(&ld, r->accounts)) || (err = load_days(&ld)) ||
        (err = load_usage(&ld)) || (err = load_deployments(&ld)) ||
        (err = load_runnables(&ld)) || (err = load_carried(&ld)))
        return err;
    group(&ld);
    if (ld.nomem)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (ld.overflow)
        return tly_error(TLY_ERR_INPUT, "account '%s': a usage sum does not fit in 64 bits",
                         m->account_id);
    *loaded = 1;
    return TLY_OK;
}
