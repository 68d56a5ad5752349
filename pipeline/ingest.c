/*
 * ingest.c — bundles into the ledger (spec inputs.md; see ingest.h).
 *
 * A bundle is read entry by entry (bundle.h); each data file streams through
 * the CSV reader (csvread.h) and the column rules (fields.h) straight into
 * prepared INSERTs, inside one BEGIN IMMEDIATE ... COMMIT.  Nothing is
 * allocated per row: values point into the reader's arena and are bound
 * SQLITE_STATIC for the one step that uses them.
 *
 * Duplicates (inputs.md "Duplicates") cost little in the common case:
 * credits and deployments INSERT ... ON CONFLICT DO NOTHING, and only when
 * sqlite3_changes() says the id was there already is the row in force read
 * back; runs are looked up by their id key first (insert_event; why, in
 * pipeline/README.md "Loading").  The row in force is compared column by
 * column on the normalised values (instants as seconds, amounts as
 * micro-credits), to tell a duplicate from a conflict.
 *
 * Decisions where the spec is silent (documented in pipeline/README.md):
 *   - adjust amounts may be negative but not 0 (a zero adjust means nothing
 *     and is most likely a broken export);
 *   - units x replicas is checked when both are given; with one empty the
 *     meter applies the bound to the effective values;
 *   - a bundle holding only a manifest (an empty export) is valid;
 *   - more than max_rows_per_file rows in a file rejects the bundle
 *     (too_large), like the other size bounds;
 *   - a manifest whose period columns differ between rows, or that has a
 *     row the rules refuse, is a manifest_mismatch.
 */
#include "ingest.h"
#include "idfilter.h"
#include "keyspool.h"
#include "alloc.h"
#include "bundle.h"
#include "csvread.h"
#include "csvout.h"
#include "error.h"
#include "fields.h"
#include "money.h"
#include "prefetch.h"
#include "rowahead.h"
#include "rundays.h"
#include "runids.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REJECTS_SHOWN 10            /* row rejects named on stderr per bundle */
#define REASON_LEN    8192          /* a conflict's detail names a bundle and a path */

/* ------------------------------------------------------------------ */
/* File types: columns and their rules                                 */

enum ctype {
    T_ID,           /* identifier */
    T_ACCOUNT,      /* account_id: identifier without '/' */
    T_TEXT,         /* free text */
    T_ENUM,
    T_EMAIL,
    T_TS,
    T_DATE,
    T_AMOUNT,       /* decimal credits, |x| <= 1e9 */
    T_NONNEG,       /* decimal credits >= 0, <= 1e9 */
    T_UNITS,        /* integer 1..100,000 */
    T_COUNT,        /* integer >= 0 (manifest rows) */
    T_SHA,          /* 64 hex digits */
    T_LONG_TEXT,    /* free text past 512 bytes: a path inside the bundle, a URL */
};

struct column {
    const char *name;
    int required;
    enum ctype type;
    const char *const *values;      /* T_ENUM */
};

static const char *const editions[] = { "gale", "agent-platform", "process", NULL };
static const char *const pools[] = { "credits", "runs", NULL };
enum { POOL_CREDITS, POOL_RUNS };
static const char *const credit_types[] = { "free", "grant", "topup", "adjust", NULL };
enum { TYPE_FREE, TYPE_GRANT, TYPE_TOPUP, TYPE_ADJUST };
static const char *const kinds[] = { "agent", "workflow", "tool", NULL };
static const char *const categories[] = { "agent", "workflow", "tool", "model", "guardrail",
                                          "script", "ocr", "browser", NULL };
enum { CAT_AGENT, CAT_WORKFLOW, CAT_TOOL, CAT_MODEL, CAT_GUARDRAIL, CAT_SCRIPT, CAT_OCR,
       CAT_BROWSER };
static const char *const actions[] = { "deploy", "scale", "undeploy", "delete", "finetune_start",
                                       "finetune_end", NULL };
enum { ACT_DEPLOY, ACT_SCALE, ACT_UNDEPLOY, ACT_DELETE, ACT_FT_START, ACT_FT_END };
static const char *const outcomes[] = { "ok", "failed", NULL };
static const char *const model_types[] = { "base", "fine-tuned", NULL };

/* accounts.csv */
enum { A_ID, A_NAME, A_EDITION, A_EMAIL, A_ANCHOR, A_NEG, A_LOW, A_UPDATED, A_N };
static const struct column accounts_cols[A_N] = {
    { "account_id", 1, T_ACCOUNT, NULL }, { "name", 1, T_TEXT, NULL },
    { "edition", 1, T_ENUM, editions }, { "admin_email", 1, T_EMAIL, NULL },
    { "cycle_anchor", 1, T_DATE, NULL }, { "negative_limit", 0, T_NONNEG, NULL },
    { "low_threshold", 0, T_NONNEG, NULL }, { "updated_at", 1, T_TS, NULL },
};

/* credits.csv */
enum { C_TXN, C_ACCOUNT, C_TS, C_POOL, C_TYPE, C_AMOUNT, C_EXPIRES, C_REF, C_N };
static const struct column credits_cols[C_N] = {
    { "txn_id", 1, T_ID, NULL }, { "account_id", 1, T_ACCOUNT, NULL }, { "ts", 1, T_TS, NULL },
    { "pool", 1, T_ENUM, pools }, { "type", 1, T_ENUM, credit_types },
    { "amount", 1, T_AMOUNT, NULL }, { "expires_at", 0, T_TS, NULL },
    { "reference", 0, T_TEXT, NULL },
};

/* runs.csv */
enum { R_EVENT, R_ACCOUNT, R_TS, R_KIND, R_RESOURCE, R_RNAME, R_OWNER, R_OUTCOME, R_N };
static const struct column runs_cols[R_N] = {
    { "event_id", 1, T_ID, NULL }, { "account_id", 1, T_ACCOUNT, NULL }, { "ts", 1, T_TS, NULL },
    { "kind", 1, T_ENUM, kinds }, { "resource_id", 1, T_ID, NULL },
    { "resource_name", 0, T_TEXT, NULL }, { "owner", 0, T_TEXT, NULL },
    { "outcome", 0, T_ENUM, outcomes },
};

/* deployments.csv */
enum { D_EVENT, D_ACCOUNT, D_TS, D_CATEGORY, D_ACTION, D_RESOURCE, D_RNAME, D_OWNER, D_DEPID,
       D_DEPNAME, D_DEPTYPE, D_HARDWARE, D_UNITS, D_REPLICAS, D_MODEL_TYPE, D_LANG,
       D_LANG_VERSION, D_ENDPOINT, D_N };
static const struct column deployments_cols[D_N] = {
    { "event_id", 1, T_ID, NULL }, { "account_id", 1, T_ACCOUNT, NULL }, { "ts", 1, T_TS, NULL },
    { "category", 1, T_ENUM, categories }, { "action", 1, T_ENUM, actions },
    { "resource_id", 1, T_ID, NULL }, { "resource_name", 0, T_TEXT, NULL },
    { "owner", 0, T_TEXT, NULL }, { "deployment_id", 0, T_ID, NULL },
    { "deployment_name", 0, T_TEXT, NULL }, { "deployment_type", 0, T_TEXT, NULL },
    { "hardware", 0, T_ID, NULL }, { "units", 0, T_UNITS, NULL },
    { "replicas", 0, T_UNITS, NULL }, { "model_type", 0, T_ENUM, model_types },
    { "language", 0, T_TEXT, NULL }, { "language_version", 0, T_TEXT, NULL },
    { "endpoint", 0, T_LONG_TEXT, NULL },
};

/* manifest.csv */
enum { M_FILE, M_ROWS, M_SHA, M_PSTART, M_PEND, M_N };
static const struct column manifest_cols[M_N] = {
    { "file", 1, T_LONG_TEXT, NULL }, { "rows", 1, T_COUNT, NULL }, { "sha256", 1, T_SHA, NULL },
    { "period_start", 0, T_TS, NULL }, { "period_end", 0, T_TS, NULL },
};

#define MAX_COLS D_N

static const struct filetype {
    const struct column *cols;
    int ncols;
} filetypes[] = {
    [TLY_FILE_ACCOUNTS] = { accounts_cols, A_N },
    [TLY_FILE_CREDITS] = { credits_cols, C_N },
    [TLY_FILE_RUNS] = { runs_cols, R_N },
    [TLY_FILE_DEPLOYMENTS] = { deployments_cols, D_N },
    [TLY_FILE_MANIFEST] = { manifest_cols, M_N },
};

/* A validated value: present, and its parsed form by type. */
struct value {
    int present;
    int64_t i;              /* ts, date, micro, integer, enum index */
    const char *s;          /* text as read (ids, text, enums, email) */
    size_t n;
    char hex[65];           /* T_SHA */
};

/* ------------------------------------------------------------------ */
/* Event tables: one insert and one read-back per file type            */

/* A bound parameter, kept so that a conflict can compare it. */
struct bind {
    enum { B_NULL, B_INT, B_TEXT } k;
    int64_t i;
    const char *s;
    size_t n;
};

/* A run's binds: the 8 columns, file_id and line (insert_event), its id key. */
#define R_BINDS 8
#define R_KEY (R_BINDS + 2)

/*
 * Runs wait here with their texts copied (the parser's batch they point
 * into is handed back meanwhile) and go in RUNS_PER_INSERT to a statement
 * (flush_runs).  A bulk load flushes every RUNS_PER_INSERT runs, in the
 * order they came.  A night holds up to NIGHT_HELD_RUNS and inserts them in
 * the time index's order (day, account, ts): as they came, the accounts
 * interleave, and each run landed on a random page of the newest day's
 * part of runs_by_day; in its order they land one after the other.
 */
#define RUNS_PER_INSERT 64
#define NIGHT_HELD_RUNS 32768

struct held_run {
    struct bind b[R_KEY + 1];
    size_t at[R_BINDS];             /* where each text is in 'text' */
};

/* A held run's place in the time index (a night's flush sorts these). */
struct run_place {
    int64_t day, ts;
    const char *account;
    size_t account_n, run;
};

struct held_runs {
    struct held_run *runs;
    size_t n, cap, max;
    struct run_place *order;        /* the insert order of runs[0 .. n-1] */
    size_t order_cap;
    char *text;
    size_t used, text_cap;
    int64_t last_run;               /* the rowid of the last run inserted */
    sqlite3_stmt *insert;           /* RUNS_PER_INSERT rows */
};

/*
 * Parameters 1 and 2 are (account_id, id); then the 'ndata' compared data
 * columns; then file_id, line; then, for runs, the id key.  The SELECT
 * returns the data columns, then file_id and line of the row in force.
 * Runs have no unique index to insert against: they are looked up by key
 * first (find_run).
 */
static const struct table {
    const char *insert, *select;
    int ndata;
} tables[] = {
    [TLY_FILE_CREDITS] = {
        "INSERT INTO credits(account_id, txn_id, ts, pool, type, amount, expires_at, reference,"
        " file_id, line) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
        "SELECT ts, pool, type, amount, expires_at, reference, file_id, line FROM credits"
        " WHERE account_id = ?1 AND txn_id = ?2", 6 },
    [TLY_FILE_RUNS] = {
        "INSERT INTO runs(account_id, event_id, ts, kind, resource_id, resource_name, owner,"
        " outcome, file_id, line) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        "WITH ids(run) AS (SELECT run FROM run_ids_new WHERE id_key = ?11"
        "  UNION ALL SELECT run FROM run_ids WHERE id_key = ?11)"
        " SELECT r.ts, r.kind, r.resource_id, r.resource_name, r.owner, r.outcome, r.file_id, r.line"
        " FROM ids JOIN runs r ON r.rowid = ids.run WHERE r.account_id = ?1 AND r.event_id = ?2", 6 },
    [TLY_FILE_DEPLOYMENTS] = {
        "INSERT INTO deployments(account_id, event_id, ts, category, action, resource_id,"
        " resource_name, owner, deployment_id, deployment_name, deployment_type, hardware, units,"
        " replicas, model_type, language, language_version, endpoint, file_id, line)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
        " ?19, ?20) ON CONFLICT DO NOTHING",
        "SELECT ts, category, action, resource_id, resource_name, owner, deployment_id,"
        " deployment_name, deployment_type, hardware, units, replicas, model_type, language,"
        " language_version, endpoint, file_id, line FROM deployments"
        " WHERE account_id = ?1 AND event_id = ?2", 16 },
};

#define MAX_BINDS 20

/* ------------------------------------------------------------------ */
/* The state of one bundle's ingest                                    */

struct seen_file {
    char *path;
    long rows;
    char sha[65];
};

struct manifest_row {
    char *path;
    long rows;
    char sha[65];
    int matched;
};

struct ing {
    struct tly_ledger *l;
    const struct tly_settings *s;
    const char *name;               /* bundle base name */
    int64_t bundle_id;
    /* the current file */
    const char *path;
    int64_t file_id;
    enum tly_file_type type;
    /* statements */
    sqlite3_stmt *ins[TLY_FILE_MANIFEST], *sel[TLY_FILE_MANIFEST];
    sqlite3_stmt *ins_ver, *sel_ver, *put_acc, *ins_file, *ins_reject, *sel_prov;
    struct tly_runids_held *new_ids;        /* a night's keys for run_ids_new (runids.h) */
    struct tly_idfilter *filter;            /* loaded at a night's first run, built by a bulk load */
    /* counters of this bundle (added to the stats at commit) */
    long loaded, duplicates, quarantined, superseded;
    long row_rejects, printed;      /* printed: named on stderr (kept by a reload) */
    /* what the manifest check needs */
    struct seen_file *seen;
    size_t nseen, seen_cap;
    struct manifest_row *man;
    size_t nman, man_cap;
    int manifests;                  /* manifest files met */
    int known;                      /* files of a known type met */
    int has_start, has_end;         /* the manifest's period columns */
    int64_t period_start, period_end;
    int bulk;                       /* a bulk load into an empty runs table (bulk_plan) */
    char *day_index_sql;            /* bulk load: runs_by_day, to rebuild */
    struct tly_keyspool *spool;     /* bulk load: the runs' id keys, for run_ids */
    struct held_runs *held;         /* runs waiting for their INSERT */
    int bulk_duplicates;            /* the bulk load met duplicates: reload row by row */
    int reloading;                  /* this is that reload (see load_row_by_row) */
    struct tly_rundays *rundays;    /* run_day of the runs inserted (rundays.h) */
    char *skipped;                  /* newline-separated, for bundles.skipped */
    size_t skipped_len, skipped_cap;
    /* a bundle-level reject found while reading */
    char rej_code[32];
    char rej_file[1024];
    char rej_detail[512];
    char reason[REASON_LEN];
    /* the live row count on a terminal (show_progress) */
    struct timespec file_started;
    double progress_at;             /* seconds into the file of the last one shown */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/*
 * bundles.name: the base name of the path as given ("dir/" is "dir"), its
 * bytes that are not UTF-8 text escaped (tly_utf8_shown) as entry paths are.
 */
static void base_name(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path), start, used;

    while (n > 1 && path[n - 1] == '/')
        n--;
    start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    tly_utf8_shown(path + start, n - start, out, cap, &used);
}

static int push_str(char ***v, size_t *cap, long *n, const char *s)
{
    char *copy = tly_strdup(s);
    if (!copy || tly_grow(v, cap, (size_t)*n + 1, sizeof **v)) {
        tly_free(copy);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    (*v)[(*n)++] = copy;
    return TLY_OK;
}

static int push_id(struct tly_ingest_stats *st, int64_t id)
{
    if (tly_grow(&st->bundle_ids, &st->ids_cap, (size_t)st->nbundle_ids + 1, sizeof *st->bundle_ids))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    st->bundle_ids[st->nbundle_ids++] = id;
    return TLY_OK;
}

void tly_ingest_stats_release(struct tly_ingest_stats *st)
{
    for (long i = 0; st->skipped && i < st->files_skipped; i++)
        tly_free(st->skipped[i]);
    tly_free(st->skipped);
    tly_free(st->bundle_ids);
    st->skipped = NULL;
    st->bundle_ids = NULL;
    st->skipped_cap = st->ids_cap = 0;
    st->nbundle_ids = 0;
}

void tly_ingest_describe(char *buf, size_t size, const struct tly_ingest_stats *st, long nbundles)
{
    char earlier[96] = "";

    if (st->quarantined_earlier || st->bundles_already_rejected)
        snprintf(earlier, sizeof earlier, " (when first ingested: %ld quarantined, %ld rejected)",
                 st->quarantined_earlier, st->bundles_already_rejected);
    snprintf(buf, size,
             "%ld bundle%s (%ld loaded, %ld already ingested, %ld rejected), %ld row%s loaded, "
             "%ld duplicate%s, %ld quarantined%s, %ld file%s skipped",
             nbundles, tly_plural(nbundles), st->bundles_loaded, st->bundles_already,
             st->bundles_rejected, st->rows_loaded, tly_plural(st->rows_loaded), st->duplicates,
             tly_plural(st->duplicates), st->quarantined, earlier, st->files_skipped,
             tly_plural(st->files_skipped));
}

static void ing_release(struct ing *g)
{
    for (int t = 0; t < TLY_FILE_MANIFEST; t++) {
        sqlite3_finalize(g->ins[t]);
        sqlite3_finalize(g->sel[t]);
    }
    sqlite3_finalize(g->ins_ver);
    sqlite3_finalize(g->sel_ver);
    sqlite3_finalize(g->put_acc);
    sqlite3_finalize(g->ins_file);
    sqlite3_finalize(g->ins_reject);
    sqlite3_finalize(g->sel_prov);
    tly_runids_held_destroy(g->new_ids);
    tly_idfilter_destroy(g->filter);
    for (size_t i = 0; i < g->nseen; i++)
        tly_free(g->seen[i].path);
    tly_free(g->seen);
    for (size_t i = 0; i < g->nman; i++)
        tly_free(g->man[i].path);
    tly_free(g->man);
    tly_free(g->skipped);
    tly_free(g->day_index_sql);
    tly_keyspool_destroy(g->spool);
    if (g->held) {
        sqlite3_finalize(g->held->insert);
        tly_free(g->held->runs);
        tly_free(g->held->order);
        tly_free(g->held->text);
        tly_free(g->held);
    }
    tly_rundays_destroy(g->rundays);
}

static int prepare_all(struct ing *g)
{
    int err = TLY_OK;

    for (int t = TLY_FILE_CREDITS; t <= TLY_FILE_DEPLOYMENTS && !err; t++)
        if (!(err = tly_ledger_prepare(g->l, tables[t].insert, &g->ins[t])))
            err = tly_ledger_prepare(g->l, tables[t].select, &g->sel[t]);
    if (!err)
        err = tly_ledger_prepare(g->l,
            "INSERT INTO account_versions(account_id, name, edition, admin_email, cycle_anchor,"
            " negative_limit, low_threshold, updated_at, file_id, line)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11) ON CONFLICT DO NOTHING",
            &g->ins_ver);
    if (!err)
        err = tly_ledger_prepare(g->l,
            "SELECT name, edition, admin_email, cycle_anchor, negative_limit, low_threshold,"
            " file_id, line FROM account_versions WHERE account_id = ?1 AND updated_at = ?8",
            &g->sel_ver);
    if (!err)
        err = tly_ledger_prepare(g->l,
            "INSERT INTO accounts(account_id, name, edition, admin_email, cycle_anchor,"
            " negative_limit, low_threshold, updated_at, raw, file_id, line)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT(account_id) DO UPDATE SET"
            " name = ?2, edition = ?3, admin_email = ?4, cycle_anchor = ?5, negative_limit = ?6,"
            " low_threshold = ?7, updated_at = ?8, raw = ?9, file_id = ?10, line = ?11"
            " WHERE accounts.updated_at < ?8", &g->put_acc);
    if (!err)
        err = tly_runids_held_create(g->l, TLY_RUNIDS_HELD_MAX, &g->new_ids);
    if (!err)
        err = tly_ledger_prepare(g->l, "INSERT INTO files(bundle_id, path) VALUES(?1, ?2)",
                                 &g->ins_file);
    if (!err)
        err = tly_ledger_prepare(g->l,
            "INSERT INTO rejects(bundle, file, line, reason, raw, bundle_id)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &g->ins_reject);
    if (!err)
        err = tly_ledger_prepare(g->l,
            "SELECT b.name, f.path FROM files f JOIN bundles b ON b.id = f.bundle_id"
            " WHERE f.id = ?1", &g->sel_prov);
    return err;
}

/* ------------------------------------------------------------------ */
/* Rejects                                                             */

/*
 * A reload (load_row_by_row) reads the bundle a second time: what the first
 * pass said on stderr is not said again.  Only run conflicts are new, as
 * the first pass had no id index to find them with.
 */
static int said_before(const struct ing *g, const char *reason)
{
    return g->reloading && !(g->type == TLY_FILE_RUNS && !strncmp(reason, "conflict:", 9));
}

/*
 * Stores one reject of the current bundle (line 0 = NULL: bundle level)
 * and names the first few on stderr.
 */
static int add_reject(struct ing *g, const char *file, long line, const char *reason,
                      const char *raw, size_t raw_len)
{
    sqlite3_stmt *st = g->ins_reject;

    sqlite3_bind_text(st, 1, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, file ? file : "", -1, SQLITE_STATIC);
    if (line > 0)
        sqlite3_bind_int64(st, 3, line);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    if (raw)
        sqlite3_bind_blob(st, 5, raw, (int)raw_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    if (g->bundle_id > 0)
        sqlite3_bind_int64(st, 6, g->bundle_id);
    else
        sqlite3_bind_null(st, 6);
    if (line > 0)
        g->row_rejects++;
    if (line > 0 && g->printed < REJECTS_SHOWN && !said_before(g, reason)) {
        g->printed++;
        tly_note("'%s' entry '%s' line %ld: %s", g->name, file, line, reason);
    }
    return tly_ledger_step_done(g->l, st);
}

/* A row or file reject: "code: detail" with the row's raw text. */
static int quarantine(struct ing *g, long line, const char *raw, size_t raw_len,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int quarantine(struct ing *g, long line, const char *raw, size_t raw_len,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(g->reason, sizeof g->reason, fmt, ap) >= (int)sizeof g->reason) {
        /* cut: at a character's start, and said so, so no detail is taken for whole */
        size_t n = sizeof g->reason - 4;
        while (n > 0 && (g->reason[n] & 0xC0) == 0x80)
            n--;
        memcpy(g->reason + n, "\xe2\x80\xa6", 4);
    }
    va_end(ap);
    g->quarantined++;
    return add_reject(g, g->path, line, g->reason, raw, raw_len);
}

/* Remembers the first bundle-level reject; the caller rolls back. */
static void bundle_reject(struct ing *g, const char *code, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void bundle_reject(struct ing *g, const char *code, const char *file, const char *fmt, ...)
{
    va_list ap;

    if (g->rej_code[0])
        return;
    snprintf(g->rej_code, sizeof g->rej_code, "%s", code);
    snprintf(g->rej_file, sizeof g->rej_file, "%s", file ? file : "");
    va_start(ap, fmt);
    vsnprintf(g->rej_detail, sizeof g->rej_detail, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Column rules                                                        */

/* Checks one present cell by its column's type; -1 with *why. */
static int check_value(const struct column *c, const char *s, size_t n, struct value *v,
                       const char **why)
{
    int idx;

    v->s = s;
    v->n = n;
    switch (c->type) {
    case T_ID:
        return tly_field_id(s, n, 0, why);
    case T_ACCOUNT:
        return tly_field_id(s, n, 1, why);
    case T_TEXT:
        return tly_field_text(s, n, why);
    case T_ENUM:
        if (tly_field_enum(s, n, c->values, &idx, why))
            return -1;
        v->i = idx;
        return 0;
    case T_EMAIL:
        return tly_field_email(s, n, why);
    case T_TS:
        return tly_field_ts(s, n, &v->i, why);
    case T_DATE:
        return tly_field_date(s, n, &v->i, why);
    case T_AMOUNT:
        return tly_field_micro(s, n, TLY_AMOUNT_MAX, &v->i, why);
    case T_NONNEG:
        if (tly_field_micro(s, n, TLY_AMOUNT_MAX, &v->i, why))
            return -1;
        if (v->i < 0) {
            *why = "is negative";
            return -1;
        }
        return 0;
    case T_UNITS:
        return tly_field_int(s, n, 1, TLY_UNITS_MAX, &v->i, why);
    case T_COUNT:
        return tly_field_int(s, n, 0, INT64_MAX, &v->i, why);
    case T_SHA:
        return tly_field_sha256(s, n, v->hex, why);
    case T_LONG_TEXT:
        return tly_field_long_text(s, n, why);
    }
    *why = "unknown type";
    return -1;
}

/*
 * Validates every column of a row into v[]; returns the index of the
 * first bad column (and *why) or -1 when all are good.
 */
static int check_row(const struct filetype *ft, const struct tly_csv_row *row, struct value *v,
                     const char **why)
{
    for (int i = 0; i < ft->ncols; i++) {
        const struct column *c = &ft->cols[i];
        v[i].present = row->val[i] != NULL;
        if (!v[i].present) {
            v[i].s = NULL;
            v[i].n = 0;
            v[i].i = 0;
            if (c->required) {
                *why = "is empty";
                return i;
            }
            continue;
        }
        if (check_value(c, row->val[i], row->len[i], &v[i], why))
            return i;
    }
    return -1;
}

/* Cross-column rules of credits.csv; -1 = fine, else the bad column. */
static int check_credit(struct value *v, const char **why)
{
    int64_t type = v[C_TYPE].i, amount = v[C_AMOUNT].i;

    if (type != TYPE_ADJUST && amount <= 0) {
        *why = "must be > 0 for free, grant and topup";
        return C_AMOUNT;
    }
    if (type == TYPE_ADJUST && amount == 0) {
        *why = "must not be 0 for adjust";
        return C_AMOUNT;
    }
    if (v[C_POOL].i == POOL_RUNS && amount % TLY_MICRO != 0) {
        *why = "must be a whole number of runs";
        return C_AMOUNT;
    }
    if (v[C_EXPIRES].present) {
        if (type == TYPE_ADJUST) {
            *why = "not allowed for adjust";
            return C_EXPIRES;
        }
        if (v[C_EXPIRES].i <= v[C_TS].i) {
            *why = "must be after ts";
            return C_EXPIRES;
        }
    }
    return -1;
}

/* Cross-column rules of deployments.csv. */
static int check_deployment(struct value *v, const char **why)
{
    int64_t cat = v[D_CATEGORY].i, act = v[D_ACTION].i;
    int charged = cat >= CAT_MODEL;

    if ((act == ACT_FT_START || act == ACT_FT_END) && cat != CAT_MODEL) {
        *why = "finetune_start/finetune_end only for category model";
        return D_ACTION;
    }
    if (charged && (act == ACT_DEPLOY || act == ACT_SCALE || act == ACT_FT_START) &&
        !v[D_HARDWARE].present) {
        *why = "is required for a charged deploy, scale or finetune_start";
        return D_HARDWARE;
    }
    if (v[D_UNITS].present && v[D_REPLICAS].present &&
        v[D_UNITS].i * v[D_REPLICAS].i > TLY_UNITS_MAX) {
        *why = "times units exceeds 100000";
        return D_REPLICAS;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Loading one row                                                     */

/* Binds b[0 .. n-1] to parameters first .. first + n - 1. */
static void bind_from(sqlite3_stmt *st, int first, const struct bind *b, int n)
{
    for (int i = 0; i < n; i++) {
        switch (b[i].k) {
        case B_NULL:
            sqlite3_bind_null(st, first + i);
            break;
        case B_INT:
            sqlite3_bind_int64(st, first + i, b[i].i);
            break;
        case B_TEXT:
            sqlite3_bind_text(st, first + i, b[i].s, (int)b[i].n, SQLITE_STATIC);
            break;
        }
    }
}

static void bind_all(sqlite3_stmt *st, const struct bind *b, int n)
{
    bind_from(st, 1, b, n);
}

static int same_value(sqlite3_stmt *st, int col, const struct bind *b)
{
    int t = sqlite3_column_type(st, col);
    switch (b->k) {
    case B_NULL:
        return t == SQLITE_NULL;
    case B_INT:
        return t == SQLITE_INTEGER && sqlite3_column_int64(st, col) == b->i;
    case B_TEXT:
        return t == SQLITE_TEXT && (size_t)sqlite3_column_bytes(st, col) == b->n &&
               !memcmp(sqlite3_column_text(st, col), b->s, b->n);
    }
    return 0;
}

static void bind_text(struct bind *b, const struct value *v)
{
    b->k = v->present ? B_TEXT : B_NULL;
    b->s = v->s;
    b->n = v->n;
}

static void bind_int(struct bind *b, const struct value *v)
{
    b->k = v->present ? B_INT : B_NULL;
    b->i = v->i;
}

/* "conflict: ID differs from the version in force (bundle B, file F, line N)" */
static int conflict(struct ing *g, const struct tly_csv_row *row, const char *id, size_t idn,
                    int64_t file_id, int64_t line)
{
    sqlite3_stmt *st = g->sel_prov;
    int rc;
    char b[1024] = "?", f[4096] = "?";

    sqlite3_bind_int64(st, 1, file_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(b, sizeof b, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(f, sizeof f, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tly_ledger_error(g->l, "reading a row's provenance");
    return quarantine(g, row->line, row->raw, row->raw_len,
                      "conflict: %.*s differs from the version in force (bundle %s, file %s, line %lld)",
                      (int)idn, id, b, f, (long long)line);
}

/* 'sel' stepped onto the row in force: a duplicate, or a conflict. */
static int same_or_conflict(struct ing *g, const struct tly_csv_row *row, sqlite3_stmt *sel,
                            const struct bind *b)
{
    const struct table *t = &tables[g->type];
    int same = 1;
    int64_t file_id, line;

    /* inputs.md "Duplicates": same id, compare the normalised content */
    for (int i = 0; i < t->ndata && same; i++)
        same = same_value(sel, i, &b[2 + i]);
    file_id = sqlite3_column_int64(sel, t->ndata);
    line = sqlite3_column_int64(sel, t->ndata + 1);
    sqlite3_reset(sel);
    if (same) {
        g->duplicates++;
        return TLY_OK;
    }
    return conflict(g, row, b[1].s, b[1].n, file_id, line);
}

/*
 * Inserts an event row of a table with a unique (account, id) (credits,
 * deployments); when one is there already, reads the row in force back and
 * counts a duplicate or quarantines a conflict.  Runs go by insert_run.
 */
static int insert_event(struct ing *g, const struct tly_csv_row *row, struct bind *b, int nb,
                        int *inserted)
{
    sqlite3_stmt *ins = g->ins[g->type], *sel = g->sel[g->type];
    int err;

    *inserted = 0;
    b[nb].k = B_INT, b[nb].i = g->file_id;
    b[nb + 1].k = B_INT, b[nb + 1].i = row->line;
    bind_all(ins, b, nb + 2);
    if ((err = tly_ledger_step_done(g->l, ins)))
        return err;
    if ((*inserted = sqlite3_changes(g->l->db) > 0)) {
        g->loaded++;
        return TLY_OK;
    }
    bind_all(sel, b, 2);
    if (sqlite3_step(sel) != SQLITE_ROW) {
        sqlite3_reset(sel);
        return tly_ledger_error(g->l, "reading the row in force");
    }
    return same_or_conflict(g, row, sel, b);
}

static int load_credit(struct ing *g, const struct tly_csv_row *row, struct value *v)
{
    struct bind b[MAX_BINDS];
    int inserted;

    bind_text(&b[0], &v[C_ACCOUNT]);
    bind_text(&b[1], &v[C_TXN]);
    bind_int(&b[2], &v[C_TS]);
    bind_text(&b[3], &v[C_POOL]);
    bind_text(&b[4], &v[C_TYPE]);
    bind_int(&b[5], &v[C_AMOUNT]);      /* runs too: runs x 1,000,000 (ledger.c) */
    bind_int(&b[6], &v[C_EXPIRES]);
    bind_text(&b[7], &v[C_REF]);
    return insert_event(g, row, b, 8, &inserted);
}

static int by_time_index(const void *a, const void *b)
{
    const struct run_place *x = a, *y = b;
    int c;

    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    if ((c = memcmp(x->account, y->account, x->account_n < y->account_n ? x->account_n : y->account_n)))
        return c;
    if (x->account_n != y->account_n)
        return x->account_n < y->account_n ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->run > y->run) - (x->run < y->run);      /* as they came */
}

/* The held runs' texts where they are now, and the order to insert them in. */
static int place_held_runs(struct ing *g)
{
    struct held_runs *h = g->held;

    if (tly_grow(&h->order, &h->order_cap, h->n, sizeof *h->order))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < h->n; k++) {
        struct bind *b = h->runs[k].b;
        for (int i = 0; i < R_BINDS; i++)
            if (b[i].k == B_TEXT)
                b[i].s = h->text + h->runs[k].at[i];
        h->order[k] = (struct run_place){ .day = tly_day_of(b[2].i), .ts = b[2].i, .account = b[0].s,
                                          .account_n = b[0].n, .run = k };
    }
    if (!g->bulk)
        qsort(h->order, h->n, sizeof *h->order, by_time_index);
    return TLY_OK;
}

/* Inserts the held runs in their order: full batches, then one by one. */
static int insert_held_runs(struct ing *g)
{
    struct held_runs *h = g->held;
    sqlite3_stmt *one = g->ins[TLY_FILE_RUNS];
    size_t k = 0;
    int err = TLY_OK;

    for (; k + RUNS_PER_INSERT <= h->n && !err; k += RUNS_PER_INSERT) {
        for (int j = 0; j < RUNS_PER_INSERT; j++)
            bind_from(h->insert, 1 + j * (R_BINDS + 2), h->runs[h->order[k + (size_t)j].run].b, R_BINDS + 2);
        err = tly_ledger_step_done(g->l, h->insert);
    }
    for (; k < h->n && !err; k++) {
        bind_all(one, h->runs[h->order[k].run].b, R_BINDS + 2);
        err = tly_ledger_step_done(g->l, one);
    }
    return err;
}

/*
 * The held runs into the ledger, then their keys (into the spool in a bulk
 * load, else with the held keys for run_ids_new) and their days into
 * run_day.  An INSERT that names no rowid gives its rows max + 1 in order,
 * so the k-th run inserted is last_run + 1 + k.  That is checked: the
 * rowids are what run_ids will point at, so anything else is an error, not
 * a guess.
 */
static int flush_runs(struct ing *g)
{
    struct held_runs *h = g->held;
    int64_t last;
    int err;

    if ((err = place_held_runs(g)) || (err = insert_held_runs(g)))
        return err;
    if ((last = sqlite3_last_insert_rowid(g->l->db)) != h->last_run + (int64_t)h->n)
        return tly_error(TLY_ERR_LEDGER, "runs were given rowids up to %lld, not %lld",
                         (long long)last, (long long)(h->last_run + (int64_t)h->n));
    for (size_t k = 0; k < h->n && !err; k++) {
        const struct bind *b = h->runs[h->order[k].run].b;
        int64_t run = h->last_run + 1 + (int64_t)k;
        if (g->bulk)
            err = tly_keyspool_add(g->spool, b[R_KEY].i, run);
        else
            err = tly_runids_held_add(g->new_ids, b[R_KEY].i, run);
        if (!err)
            err = tly_rundays_add(g->rundays, b[0].s, b[0].n, b[3].s, b[3].n, b[4].s, b[4].n, b[2].i);
    }
    g->loaded += (long)h->n;
    h->last_run = last;
    h->n = 0;
    h->used = 0;
    return err;
}

/* A run held with a copy of its texts until the hold is full. */
static int hold_run(struct ing *g, const struct bind *b)
{
    struct held_runs *h = g->held;
    struct held_run *r;
    size_t need = 0;

    for (int i = 0; i < R_BINDS; i++)
        if (b[i].k == B_TEXT)
            need += b[i].n;
    if (tly_grow(&h->text, &h->text_cap, h->used + need, 1) ||
        tly_grow(&h->runs, &h->cap, h->n + 1, sizeof *h->runs))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    r = &h->runs[h->n];
    for (int i = 0; i < R_BINDS; i++)
        if (b[i].k == B_TEXT) {
            memcpy(h->text + h->used, b[i].s, b[i].n);
            r->at[i] = h->used;
            h->used += b[i].n;
        }
    memcpy(r->b, b, sizeof r->b);
    return ++h->n == h->max ? flush_runs(g) : TLY_OK;
}

/*
 * A night looks a run up only when the id filter may hold its key.  The
 * lookup must see every earlier run of the bundle: when the key may be one
 * still held (tly_runids_held_holds: a run sent twice in one bundle, or a
 * collision), the held runs and keys go in first.
 */
static int find_run(struct ing *g, const struct tly_csv_row *row, const struct bind *b, int *fresh)
{
    sqlite3_stmt *sel = g->sel[TLY_FILE_RUNS];
    int64_t key = b[R_KEY].i;
    int rc, err;

    *fresh = 1;
    if (!g->filter && (err = tly_idfilter_load(g->l, &g->filter)))
        return err;
    if (!tly_idfilter_may_hold(g->filter, key))
        return TLY_OK;
    if (tly_runids_held_holds(g->new_ids, key) &&
        ((g->held->n && (err = flush_runs(g))) || (err = tly_runids_held_flush(g->new_ids))))
        return err;
    bind_all(sel, b, R_KEY + 1);
    if ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        *fresh = 0;
        return same_or_conflict(g, row, sel, b);
    }
    sqlite3_reset(sel);
    return rc == SQLITE_DONE ? TLY_OK : tly_ledger_error(g->l, "reading the row in force");
}

/*
 * A runs row: held for its INSERT (flush_runs).  A bulk load does not look
 * for duplicates as it goes: every run is held, and bulk_end finds them in
 * the key spool.  A night holds only runs it did not find, and notes each
 * key in the id filter and as expected, so a later copy in the bundle is
 * looked for and found.
 */
static int insert_run(struct ing *g, const struct tly_csv_row *row, struct bind *b)
{
    int fresh, err;

    b[R_BINDS].k = B_INT, b[R_BINDS].i = g->file_id;
    b[R_BINDS + 1].k = B_INT, b[R_BINDS + 1].i = row->line;
    if (!g->bulk) {
        if ((err = find_run(g, row, b, &fresh)) || !fresh)
            return err;
        tly_idfilter_add(g->filter, b[R_KEY].i);
        if ((err = tly_runids_held_expect(g->new_ids, b[R_KEY].i)))
            return err;
    }
    return hold_run(g, b);
}

static int load_run(struct ing *g, const struct tly_csv_row *row, struct value *v)
{
    struct bind b[MAX_BINDS];

    bind_text(&b[0], &v[R_ACCOUNT]);
    bind_text(&b[1], &v[R_EVENT]);
    bind_int(&b[2], &v[R_TS]);
    bind_text(&b[3], &v[R_KIND]);
    bind_text(&b[4], &v[R_RESOURCE]);
    bind_text(&b[5], &v[R_RNAME]);
    bind_text(&b[6], &v[R_OWNER]);
    bind_text(&b[7], &v[R_OUTCOME]);
    b[R_KEY].k = B_INT;
    b[R_KEY].i = tly_ledger_run_key(v[R_ACCOUNT].s, v[R_ACCOUNT].n, v[R_EVENT].s, v[R_EVENT].n);
    return insert_run(g, row, b);
}

static int load_deployment(struct ing *g, const struct tly_csv_row *row, struct value *v)
{
    struct bind b[MAX_BINDS];
    int inserted;

    bind_text(&b[0], &v[D_ACCOUNT]);
    bind_text(&b[1], &v[D_EVENT]);
    bind_int(&b[2], &v[D_TS]);
    bind_text(&b[3], &v[D_CATEGORY]);
    bind_text(&b[4], &v[D_ACTION]);
    bind_text(&b[5], &v[D_RESOURCE]);
    bind_text(&b[6], &v[D_RNAME]);
    bind_text(&b[7], &v[D_OWNER]);
    /* inputs.md: deployment_id defaults to resource_id */
    bind_text(&b[8], v[D_DEPID].present ? &v[D_DEPID] : &v[D_RESOURCE]);
    bind_text(&b[9], &v[D_DEPNAME]);
    bind_text(&b[10], &v[D_DEPTYPE]);
    bind_text(&b[11], &v[D_HARDWARE]);
    bind_int(&b[12], &v[D_UNITS]);
    bind_int(&b[13], &v[D_REPLICAS]);
    bind_text(&b[14], &v[D_MODEL_TYPE]);
    bind_text(&b[15], &v[D_LANG]);
    bind_text(&b[16], &v[D_LANG_VERSION]);
    bind_text(&b[17], &v[D_ENDPOINT]);
    return insert_event(g, row, b, 18, &inserted);
}

/*
 * accounts.csv (inputs.md): every version is kept, one per (account,
 * updated_at), and the one with the latest updated_at is in force.  A
 * version seen before is a duplicate when its content is the same, else a
 * conflict (the first stays); an older new version is loaded but
 * superseded.
 */
static int load_account(struct ing *g, const struct tly_csv_row *row, struct value *v)
{
    struct bind b[12];
    struct value zero = { 1, 0, NULL, 0, "" };
    sqlite3_stmt *sel = g->sel_ver;
    int rc, same, err;
    int64_t file_id, line;

    bind_text(&b[0], &v[A_ID]);
    bind_text(&b[1], &v[A_NAME]);
    bind_text(&b[2], &v[A_EDITION]);
    bind_text(&b[3], &v[A_EMAIL]);
    bind_int(&b[4], &v[A_ANCHOR]);
    bind_int(&b[5], v[A_NEG].present ? &v[A_NEG] : &zero);    /* default 0 */
    bind_int(&b[6], v[A_LOW].present ? &v[A_LOW] : &zero);
    bind_int(&b[7], &v[A_UPDATED]);
    b[8].k = B_TEXT, b[8].s = row->raw, b[8].n = row->raw_len;
    b[9].k = B_INT, b[9].i = g->file_id;
    b[10].k = B_INT, b[10].i = row->line;
    bind_all(g->ins_ver, b, 11);
    if ((err = tly_ledger_step_done(g->l, g->ins_ver)))
        return err;
    if (sqlite3_changes(g->l->db) > 0) {
        bind_all(g->put_acc, b, 11);
        if ((err = tly_ledger_step_done(g->l, g->put_acc)))
            return err;
        g->loaded++;
        g->superseded += sqlite3_changes(g->l->db) == 0;
        return TLY_OK;
    }
    bind_all(sel, b, 8);
    if ((rc = sqlite3_step(sel)) != SQLITE_ROW) {
        sqlite3_reset(sel);
        return tly_ledger_error(g->l, "reading an account's version");
    }
    same = 1;
    for (int i = 0; i < 6 && same; i++)
        same = same_value(sel, i, &b[1 + i]);
    file_id = sqlite3_column_int64(sel, 6);
    line = sqlite3_column_int64(sel, 7);
    sqlite3_reset(sel);
    if (same) {
        g->duplicates++;
        return TLY_OK;
    }
    return conflict(g, row, b[0].s, b[0].n, file_id, line);
}

/*
 * A manifest row's file as the bundle's entries are named: "./runs.csv" (what
 * `tar -C export .` writes) is the entry "runs.csv".  An absolute path or one
 * with ".." names no entry and comes back empty.  NULL when memory ran out.
 */
static char *manifest_path(const char *file, size_t n)
{
    char *raw = tly_strndup(file, n), *path = raw ? tly_malloc(n + 1) : NULL;

    if (path && tly_bundle_normalize_path(raw, path) < 0)
        path[0] = '\0';
    tly_free(raw);
    return path;
}

/* Manifest rows are kept for the check at the end of the bundle. */
static int load_manifest_row(struct ing *g, const struct tly_csv_row *row, struct value *v)
{
    struct manifest_row *m;

    /*
     * inputs.md: period_start/period_end are the same on every row.  The
     * latest period_end becomes the default as-of, which closes cycles for
     * good: one before its own start, or past the latest as-of (stages.c),
     * is refused with its bundle rather than trusted.
     */
    if (g->nman == 0) {
        g->has_start = v[M_PSTART].present;
        g->has_end = v[M_PEND].present;
        g->period_start = v[M_PSTART].i;
        g->period_end = v[M_PEND].i;
        if (g->has_start && g->has_end && g->period_start > g->period_end) {
            bundle_reject(g, "manifest_mismatch", g->path, "line %ld: period_start is after period_end",
                          row->line);
            return TLY_OK;
        }
        if (g->has_end && g->period_end > TLY_LATEST_AS_OF) {
            bundle_reject(g, "manifest_mismatch", g->path,
                          "line %ld: period_end is after 9999-12-01T00:00:00Z, the latest as-of", row->line);
            return TLY_OK;
        }
    } else if (g->has_start != v[M_PSTART].present || g->has_end != v[M_PEND].present ||
               (g->has_start && g->period_start != v[M_PSTART].i) ||
               (g->has_end && g->period_end != v[M_PEND].i)) {
        bundle_reject(g, "manifest_mismatch", g->path,
                      "line %ld: period_start/period_end differ between rows", row->line);
        return TLY_OK;
    }
    if (tly_grow(&g->man, &g->man_cap, g->nman + 1, sizeof *g->man))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    m = &g->man[g->nman];
    if (!(m->path = manifest_path(v[M_FILE].s, v[M_FILE].n)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    g->nman++;
    if (!*m->path) {
        bundle_reject(g, "manifest_mismatch", g->path, "line %ld: '%.*s' is not a path inside the bundle",
                      row->line, (int)v[M_FILE].n, v[M_FILE].s);
        return TLY_OK;
    }
    m->rows = v[M_ROWS].i > LONG_MAX ? LONG_MAX : (long)v[M_ROWS].i;
    memcpy(m->sha, v[M_SHA].hex, sizeof m->sha);
    m->matched = 0;
    for (size_t i = 0; i + 1 < g->nman; i++)
        if (!strcmp(g->man[i].path, m->path))
            bundle_reject(g, "manifest_mismatch", g->path, "'%s' is listed twice", m->path);
    return TLY_OK;
}

/* One data row that passed the CSV rules: column rules, then the ledger. */
static int load_row(struct ing *g, const struct tly_csv_row *row)
{
    const struct filetype *ft = &filetypes[g->type];
    struct value v[MAX_COLS];
    const char *why = NULL;
    int bad = check_row(ft, row, v, &why);

    if (bad < 0) {
        switch (g->type) {
        case TLY_FILE_CREDITS:
            bad = check_credit(v, &why);
            break;
        case TLY_FILE_DEPLOYMENTS:
            bad = check_deployment(v, &why);
            break;
        default:
            break;
        }
    }
    if (bad >= 0) {
        if (g->type == TLY_FILE_MANIFEST) {
            bundle_reject(g, "manifest_mismatch", g->path, "line %ld: %s %s", row->line,
                          ft->cols[bad].name, why);
            return TLY_OK;
        }
        return quarantine(g, row->line, row->raw, row->raw_len, "bad_value: %s %s",
                          ft->cols[bad].name, why);
    }
    switch (g->type) {
    case TLY_FILE_ACCOUNTS:
        return load_account(g, row, v);
    case TLY_FILE_CREDITS:
        return load_credit(g, row, v);
    case TLY_FILE_RUNS:
        return load_run(g, row, v);
    case TLY_FILE_DEPLOYMENTS:
        return load_deployment(g, row, v);
    case TLY_FILE_MANIFEST:
        return load_manifest_row(g, row, v);
    default:
        return TLY_OK;
    }
}

/* ------------------------------------------------------------------ */
/* Loading one file                                                    */

struct source {
    struct tly_bundle *b;
    struct tly_bundle_reject *rej;
    struct tly_prefetch *ahead;
    int failed;                 /* the CSV reader was given the read failure (on
                                   the rowahead's thread: loading may not be there) */
};

/* The entry's bytes, on the prefetch's thread; *rej is filled on failure. */
static ssize_t source_read(void *ctx, void *buf, size_t n)
{
    struct source *src = ctx;

    return tly_bundle_read(src->b, buf, n, src->rej);
}

/*
 * The CSV reader's read function: the entry's bytes, read ahead
 * (prefetch.h).  A read failure counts when loading gets to it, as with a
 * direct read: one the prefetch or the rowahead met past the point where
 * loading stopped (a ledger error, a row bound) must not replace that
 * error.  So it counts only with the TLY_CSV_ERROR loading was handed
 * (load_file); it stays the bundle's, sticky, and is met again when the
 * rest of the entry is drained.
 */
static ssize_t ahead_read(void *ctx, void *buf, size_t n)
{
    struct source *src = ctx;
    ssize_t got = tly_prefetch_read(src->ahead, buf, n);

    if (got < 0)
        src->failed = 1;
    return got;
}

/* What a row rule the reader found says after its code (the field count has its own). */
/*
 * What a row reject means; a row's field_count names its counts instead, so
 * field_count here is a header's: one longer than TLY_CSV_HEADER_MAX.
 */
static const char *reject_detail(enum tly_csv_reject reject)
{
    return reject == TLY_CSV_FIELD_TOO_LONG ? "a field is longer than the limit"
           : reject == TLY_CSV_BAD_UTF8     ? "invalid UTF-8"
           : reject == TLY_CSV_NUL_BYTE     ? "a NUL byte"
                                            : "more than 1 MiB of text";
}

/*
 * A header that makes the file unusable: a manifest's is a manifest_mismatch
 * of the bundle, any other file is rejected whole at line 1 (inputs.md).
 */
static int reject_header(struct ing *g, const struct tly_csv_row *hdr, int ev, const char *manifest_why,
                         const char *reason)
{
    if (g->type == TLY_FILE_MANIFEST) {
        bundle_reject(g, "manifest_mismatch", g->path, "%s", manifest_why);
        return TLY_OK;
    }
    return quarantine(g, 1, hdr->raw, ev == TLY_CSV_ROW ? hdr->raw_len : 0, "%s", reason);
}

/* The header: warns about unknown columns; 1 when a required one is missing. */
static int check_header(struct ing *g, struct tly_csv *r, const struct tly_csv_row *hdr,
                        int ev, int *missing)
{
    const struct filetype *ft = &filetypes[g->type];
    char why[96], reason[192];

    *missing = 1;
    /* a header that breaks a row rule has no usable names: say why, not which one is "missing" */
    if (ev == TLY_CSV_ROW && hdr->reject != TLY_CSV_OK) {
        snprintf(why, sizeof why, "header: %s", tly_csv_reject_code(hdr->reject));
        snprintf(reason, sizeof reason, "%s: %s in the header, so the file is not loaded",
                 tly_csv_reject_code(hdr->reject), reject_detail(hdr->reject));
        return reject_header(g, hdr, ev, why, reason);
    }
    if (ev == TLY_CSV_ROW && tly_csv_header_has_cr(hdr))
        return reject_header(g, hdr, ev, "header: a CR inside it",
                             "missing_column: the header holds a CR (line ends must be CRLF or LF),"
                             " so the file is not loaded");
    for (int i = 0; i < ft->ncols; i++) {
        if (ft->cols[i].required && !tly_csv_has_column(r, i)) {
            /* inputs.md: a missing required column rejects the whole file */
            snprintf(why, sizeof why, "missing column '%s'", ft->cols[i].name);
            snprintf(reason, sizeof reason, "missing_column: %s%s", ft->cols[i].name,
                     ev == TLY_CSV_END ? " (empty file)" : "");
            return reject_header(g, hdr, ev, why, reason);
        }
    }
    *missing = 0;
    /* inputs.md: an unknown column is ignored with one warning */
    if (!g->reloading)
        tly_csv_warn_unknown_columns(r, g->name, g->path);
    return TLY_OK;
}

/*
 * Reads every row of the current entry.  Returns TLY_OK (a bundle reject,
 * if any, is in g->rej_code), or a hard error.  *rows is the entry's data
 * row count for the manifest.  'skip': the header was rejected.
 *
 * A file rejected from a line on (a bad header, a quote error) is one
 * rejects entry, but the summary's "quarantined" counts every data row it
 * kept out, so that loaded + duplicates + quarantined is the input's rows
 * (semantics §9.3).
 */
/*
 * issue 7: a progress display on a terminal says the stage, bundle, rows and
 * rate.  A first load is a minute of one file, so the count is redrawn
 * while it reads (at most once a second, looked at every 65,536 rows).
 */
static void show_progress(struct ing *g, long rows)
{
    const char *cmd = tly_error_command();
    double secs = tly_elapsed(&g->file_started);

    if (secs - g->progress_at < 1.0)
        return;
    g->progress_at = secs;
    tly_progress("%s: %s'%s' entry '%s': %ld rows, %.0f rows/s", cmd,
                 strcmp(cmd, "ingest") ? "ingest " : "", g->name, g->path, rows, rows / secs);
}

static int load_rows(struct ing *g, struct tly_csv *r, int skip, long *rows)
{
    struct tly_rowahead *ra;
    struct tly_csv_row row;
    long first_lost = skip ? 1 : 0;     /* data row the file stopped loading at */
    int ev, err;

    if ((err = tly_rowahead_create(&ra, r, filetypes[g->type].ncols)))
        return err;
    tly_clock(&g->file_started);
    g->progress_at = 0;
    while (!err && !g->rej_code[0] && (ev = tly_rowahead_next(ra, &row, rows)) != TLY_CSV_END) {
        if (ev == TLY_CSV_ERROR) {
            err = TLY_ERR_IO;           /* the caller tells a read failure from nomem */
            break;
        }
        if (!(*rows & 0xffff) && tly_progress_wanted())
            show_progress(g, *rows);
        if (*rows > g->s->max_rows_per_file) {
            bundle_reject(g, "too_large", g->path, "'%s' has more than %lld row%s", g->path,
                          (long long)g->s->max_rows_per_file, tly_plural(g->s->max_rows_per_file));
            break;
        }
        if (skip)
            continue;
        if (ev == TLY_CSV_QUOTE_ERROR) {
            /* inputs.md: the rest of the file from that line on is rejected */
            if (g->type == TLY_FILE_MANIFEST)
                bundle_reject(g, "manifest_mismatch", g->path, "quote error at line %ld", row.line);
            else
                err = quarantine(g, row.line, row.raw, row.raw_len,
                                 "quote_error: unterminated quote or stray '\"' in the row at "
                                 "line %ld; the rest of the file is not loaded", row.line);
            skip = 1;
            first_lost = row.index;     /* the rows after it may be counted already */
            continue;
        }
        if (row.reject != TLY_CSV_OK) {
            if (g->type == TLY_FILE_MANIFEST)
                bundle_reject(g, "manifest_mismatch", g->path, "line %ld: %s", row.line,
                              tly_csv_reject_code(row.reject));
            else if (row.reject == TLY_CSV_FIELD_COUNT)
                err = quarantine(g, row.line, row.raw, row.raw_len,
                                 "field_count: %d fields, the header has %d", row.nfields,
                                 tly_csv_header_fields(r));
            else
                err = quarantine(g, row.line, row.raw, row.raw_len, "%s: %s",
                                 tly_csv_reject_code(row.reject), reject_detail(row.reject));
            continue;
        }
        err = load_row(g, &row);
    }
    if (!err && !g->rej_code[0] && g->held && g->held->n)
        err = flush_runs(g);
    if (!err && !g->rej_code[0] && first_lost && *rows > first_lost)
        g->quarantined += *rows - first_lost;   /* its rejects entry counted one */
    tly_rowahead_destroy(ra);           /* r is ours again */
    return err;
}

static int insert_file(struct ing *g)
{
    int err;

    sqlite3_bind_int64(g->ins_file, 1, g->bundle_id);
    sqlite3_bind_text(g->ins_file, 2, g->path, -1, SQLITE_STATIC);
    if ((err = tly_ledger_step_done(g->l, g->ins_file)))
        return err;
    g->file_id = sqlite3_last_insert_rowid(g->l->db);
    return TLY_OK;
}

static int remember_file(struct ing *g, long rows, const char sha[65])
{
    struct seen_file *f;

    if (tly_grow(&g->seen, &g->seen_cap, g->nseen + 1, sizeof *g->seen))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    f = &g->seen[g->nseen];
    if (!(f->path = tly_strdup(g->path)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    g->nseen++;
    f->rows = rows;
    memcpy(f->sha, sha, 65);
    return TLY_OK;
}

/* One data file or manifest of the bundle, read to its end. */
static int load_file(struct ing *g, struct tly_bundle *b, const struct tly_bundle_entry *e)
{
    struct tly_bundle_reject rej = { "", "", NULL };
    struct source src = { b, &rej, NULL, 0 };
    struct tly_csv *r = NULL;
    struct tly_csv_row hdr;
    int err, ev, missing = 0;
    long rows = 0;
    char sha[65];
    const char *names[MAX_COLS];

    g->path = e->path;
    g->type = e->type;
    if (e->type == TLY_FILE_MANIFEST && ++g->manifests > 1) {
        /* inputs.md: a bundle holds at most one manifest */
        bundle_reject(g, "manifest_mismatch", e->path, "a second manifest '%s'", e->path);
        return TLY_OK;
    }
    if (e->type != TLY_FILE_MANIFEST && (err = insert_file(g)))
        return err;
    if ((err = tly_prefetch_create(&src.ahead, source_read, &src)))
        return err;
    if ((err = tly_csv_open(&r, ahead_read, &src, (size_t)g->s->max_field_bytes))) {
        tly_prefetch_destroy(src.ahead);
        return err;
    }
    for (int i = 0; i < filetypes[e->type].ncols; i++)
        names[i] = filetypes[e->type].cols[i].name;
    ev = tly_csv_header(r, names, filetypes[e->type].ncols, &hdr);
    if (ev == TLY_CSV_QUOTE_ERROR) {
        if (e->type == TLY_FILE_MANIFEST)
            bundle_reject(g, "manifest_mismatch", e->path, "quote error in the header");
        else
            err = quarantine(g, 1, hdr.raw, hdr.raw_len,
                             "quote_error: in the header; the file is not loaded");
        missing = 1;
    } else if (ev != TLY_CSV_ERROR) {
        err = check_header(g, r, &hdr, ev, &missing);
    }
    if (!err && ev != TLY_CSV_ERROR)
        err = load_rows(g, r, missing, &rows);
    tly_prefetch_destroy(src.ahead);    /* the bundle and *src.rej are ours again */
    if (ev == TLY_CSV_ERROR || err == TLY_ERR_IO) {
        tly_csv_close(r);
        if (src.failed && tly_bundle_failure(b) == TLY_QUARANTINED) {
            bundle_reject(g, rej.code, e->path, "%s", rej.detail);
            return TLY_OK;
        }
        return tly_bundle_failure(b) == TLY_ERR_NOMEM || !src.failed ? TLY_ERR_NOMEM : TLY_ERR_IO;
    }
    tly_csv_close(r);
    if (err || g->rej_code[0])
        return err;
    tly_bundle_entry_sha256(b, sha);
    if (e->type == TLY_FILE_MANIFEST)
        return TLY_OK;
    return remember_file(g, rows, sha);
}

/* ------------------------------------------------------------------ */
/* The manifest check                                                  */

/*
 * inputs.md "manifest.csv": every data file listed with its row count and
 * stored-bytes digest, and nothing listed that is missing.
 */
static void check_manifest(struct ing *g)
{
    if (!g->manifests)
        return;
    for (size_t i = 0; i < g->nseen && !g->rej_code[0]; i++) {
        struct seen_file *f = &g->seen[i];
        struct manifest_row *m = NULL;
        for (size_t k = 0; k < g->nman; k++)
            if (!strcmp(g->man[k].path, f->path))
                m = &g->man[k];
        if (!m)
            bundle_reject(g, "manifest_mismatch", f->path, "'%s' is not in the manifest", f->path);
        else if (m->rows != f->rows)
            bundle_reject(g, "manifest_mismatch", f->path, "'%s' has %ld rows, the manifest says %ld",
                          f->path, f->rows, m->rows);
        else if (strcmp(m->sha, f->sha))
            bundle_reject(g, "manifest_mismatch", f->path,
                          "'%s' sha256 %s differs from the manifest's %s", f->path, f->sha, m->sha);
        else
            m->matched = 1;
    }
    for (size_t k = 0; k < g->nman && !g->rej_code[0]; k++)
        if (!g->man[k].matched)
            bundle_reject(g, "manifest_mismatch", g->man[k].path,
                          "'%s' is in the manifest but not a data file of the bundle", g->man[k].path);
}

/* ------------------------------------------------------------------ */
/* One bundle                                                          */

/*
 * A skipped file (not <type>[<suffix>].csv[.gz]): named on stderr, kept
 * for the summary and run.json, and in bundles.skipped for re-runs.
 */
static int note_skipped(struct ing *g, struct tly_ingest_stats *st, const char *path, int store)
{
    char line[2048];
    size_t n = strlen(path);

    if (!g->reloading) {
        tly_note("'%s': skipped '%s'", g->name, path);
        snprintf(line, sizeof line, "%s: %s", g->name, path);
        if (push_str(&st->skipped, &st->skipped_cap, &st->files_skipped, line))
            return TLY_ERR_NOMEM;
    }
    if (!store)
        return TLY_OK;
    if (tly_grow(&g->skipped, &g->skipped_cap, g->skipped_len + n + 2, 1))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (g->skipped_len)
        g->skipped[g->skipped_len++] = '\n';
    memcpy(g->skipped + g->skipped_len, path, n);
    g->skipped_len += n;
    g->skipped[g->skipped_len] = '\0';
    return TLY_OK;
}

/* Every entry of the bundle; a bundle reject ends the walk. */
static int read_bundle(struct ing *g, const char *path, struct tly_ingest_stats *st)
{
    struct tly_bundle_reject rej = { "", "", NULL };
    struct tly_bundle_entry e;
    struct tly_bundle *b = NULL;
    int rc, err = TLY_OK;

    rc = tly_bundle_open(path, g->s, &b, &rej);
    if (rc == TLY_ERR_NOMEM || rc == TLY_ERR_IO)        /* reported; not the bundle's fault */
        return rc;
    if (rc != TLY_OK) {
        bundle_reject(g, rej.code[0] ? rej.code : "bad_archive", "", "%s", rej.detail);
        tly_bundle_close(b);
        return TLY_OK;
    }
    while ((rc = tly_bundle_next(b, &e, &rej)) == 1) {
        if (e.type == TLY_FILE_OTHER) {
            if ((err = note_skipped(g, st, e.path, 1)))
                break;
            continue;
        }
        g->known = 1;
        if ((err = load_file(g, b, &e)) || g->rej_code[0])
            break;
    }
    if (rc < 0) {
        if (tly_bundle_failure(b) == TLY_ERR_NOMEM)
            err = TLY_ERR_NOMEM;
        else
            bundle_reject(g, rej.code, "", "%s", rej.detail);
    }
    tly_bundle_close(b);
    return err;
}

/*
 * The bundle was ingested before (same content): changes nothing.
 * Returns 1 (handled, *result set), 0 (new), or an error < 0... as an
 * error code through *result with 1.
 */
static int already(struct ing *g, const char *hex, struct tly_ingest_stats *st, int *result)
{
    sqlite3_stmt *q;
    int rc, rejected, err;
    int64_t id, quarantined;
    char *skipped = NULL;

    if ((err = tly_ledger_prepare(g->l, "SELECT id, status, quarantined, skipped FROM bundles"
                                        " WHERE sha256 = ?1", &q))) {
        *result = err;
        return 1;
    }
    sqlite3_bind_text(q, 1, hex, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        if (rc == SQLITE_DONE)
            return 0;
        *result = tly_ledger_error(g->l, "reading bundles");
        return 1;
    }
    id = sqlite3_column_int64(q, 0);
    rejected = !strcmp((const char *)sqlite3_column_text(q, 1), "rejected");
    quarantined = sqlite3_column_int64(q, 2);
    if (sqlite3_column_type(q, 3) == SQLITE_TEXT &&
        !(skipped = tly_strdup((const char *)sqlite3_column_text(q, 3)))) {
        sqlite3_finalize(q);
        *result = tly_error(TLY_ERR_NOMEM, "out of memory");
        return 1;
    }
    sqlite3_finalize(q);
    tly_note("'%s': already ingested%s", g->name, rejected ? " (rejected)" : "");
    /* skipped files are named again, so a re-run reads like the first */
    err = TLY_OK;
    for (char *p = skipped, *nl; p && *p && !err; p = nl ? nl + 1 : p + strlen(p)) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        err = note_skipped(g, st, p, 0);
    }
    tly_free(skipped);
    if (!err)
        err = push_id(st, id);
    st->bundles_already++;
    st->bundles_already_rejected += rejected;
    st->quarantined_earlier += rejected ? 0 : quarantined;
    /* outputs.md: exit 3 is decided by the bundles named, also when ingested earlier */
    *result = err ? err : rejected || quarantined > 0 ? TLY_QUARANTINED : TLY_OK;
    return 1;
}

/*
 * Records a rejected bundle after the rollback: a bundles row (when its
 * content is known) so the same content is "already ingested (rejected)",
 * and the one reject row.
 */
static int record_rejected(struct ing *g, const char *hex, struct tly_ingest_stats *st)
{
    sqlite3_stmt *q = NULL;
    int err;
    char reason[640];

    /* rows quarantined before the bundle failed were printed, and are rolled back with it */
    tly_error(TLY_QUARANTINED, "'%s': rejected: %s: %s%s", g->name, g->rej_code, g->rej_detail,
              g->quarantined ? " (the whole bundle: its row rejects above are not kept)" : "");
    if ((err = tly_ledger_begin(g->l)))
        return err;
    g->bundle_id = 0;
    if (hex) {
        if ((err = tly_ledger_prepare(g->l,
                "INSERT INTO bundles(sha256, name, status, quarantined, skipped)"
                " VALUES(?1, ?2, 'rejected', 1, ?3)", &q)))
            goto fail;
        sqlite3_bind_text(q, 1, hex, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, g->name, -1, SQLITE_STATIC);
        tly_bind_text_or_null(q, 3, g->skipped, g->skipped ? (int)g->skipped_len : 0);
        err = tly_ledger_step_done(g->l, q);
        sqlite3_finalize(q);
        if (err)
            goto fail;
        g->bundle_id = sqlite3_last_insert_rowid(g->l->db);
    }
    snprintf(reason, sizeof reason, "%s: %s", g->rej_code, g->rej_detail);
    if ((err = add_reject(g, g->rej_file, 0, reason, NULL, 0)) || (err = tly_ledger_commit(g->l)))
        goto fail;
    st->bundles_rejected++;
    if (g->bundle_id > 0 && (err = push_id(st, g->bundle_id)))
        return err;
    return TLY_QUARANTINED;
fail:
    tly_ledger_rollback(g->l);
    return err;
}

/* The bundle loaded: its counts, its period, the default as-of. */
static int finish_loaded(struct ing *g)
{
    sqlite3_stmt *q;
    int err, found;
    int64_t latest;

    if ((err = tly_ledger_prepare(g->l,
            "UPDATE bundles SET quarantined = ?1, rows_loaded = ?2, duplicates = ?3,"
            " skipped = ?4, period_start = ?5, period_end = ?6 WHERE id = ?7", &q)))
        return err;
    sqlite3_bind_int64(q, 1, g->quarantined);
    sqlite3_bind_int64(q, 2, g->loaded);
    sqlite3_bind_int64(q, 3, g->duplicates);
    tly_bind_text_or_null(q, 4, g->skipped, g->skipped ? (int)g->skipped_len : 0);
    if (g->manifests && g->nman && g->has_start)
        sqlite3_bind_int64(q, 5, g->period_start);
    if (g->manifests && g->nman && g->has_end)
        sqlite3_bind_int64(q, 6, g->period_end);
    sqlite3_bind_int64(q, 7, g->bundle_id);
    err = tly_ledger_step_done(g->l, q);
    sqlite3_finalize(q);
    if (err || !(g->manifests && g->nman && g->has_end))
        return err;
    /* outputs.md: the default as-of is the latest period_end in the ledger */
    if ((err = tly_ledger_get_int(g->l, "latest_period_end", &latest, &found)))
        return err;
    if (!found || g->period_end > latest)
        err = tly_ledger_set_int(g->l, "latest_period_end", g->period_end);
    return err;
}

static int insert_bundle(struct ing *g, const char *hex)
{
    sqlite3_stmt *q;
    int err;

    if ((err = tly_ledger_prepare(g->l, "INSERT INTO bundles(sha256, name, status)"
                                        " VALUES(?1, ?2, 'loaded')", &q)))
        return err;
    sqlite3_bind_text(q, 1, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, g->name, -1, SQLITE_STATIC);
    err = tly_ledger_step_done(g->l, q);
    sqlite3_finalize(q);
    g->bundle_id = sqlite3_last_insert_rowid(g->l->db);
    return err;
}

/*
 * Bulk load: into an empty runs table (a first load, a backfill, the
 * benchmark), keeping the id keys and the time index row by row costs most
 * of the load.  Real exports carry random UUIDs as event ids, so every
 * insert lands on a random page: 10M runs took 148 s, against 44 s with the
 * time index dropped for the bundle, and both built once, by sorting, at
 * its end.  Runs are then inserted without the lookup by key (there is
 * nothing to look in yet), so a duplicate inside the bundle shows as two
 * equal keys in the key spool: the bundle is rolled back and read again
 * row by row (load_row_by_row), which tells duplicates from conflicts as
 * always.
 * bulk_plan decides before the bundle's transaction, since the journal mode
 * can change only outside one (the writer lock keeps the table as it read
 * it); the index is dropped inside it, so a rollback restores it.  It is
 * rebuilt from its stored definition: ledger.c stays the only place it is
 * spelled.
 */
static int bulk_plan(struct ing *g)
{
    sqlite3_stmt *q;
    int rc, err;

    if (g->reloading)
        return TLY_OK;
    if ((err = tly_ledger_prepare(g->l, "SELECT NOT EXISTS(SELECT 1 FROM runs),"
                                        " (SELECT sql FROM sqlite_master WHERE name = 'runs_by_day')",
                                  &q)))
        return err;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && (g->bulk = sqlite3_column_int(q, 0)) && sqlite3_column_type(q, 1) == SQLITE_TEXT &&
        !(g->day_index_sql = tly_strdup((const char *)sqlite3_column_text(q, 1)))) {
        sqlite3_finalize(q);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? TLY_OK : tly_ledger_error(g->l, "reading runs");
}

/* The ledger's directory, where the key spool may spill (it is writable: the ledger is). */
static int ledger_dir(const struct ing *g, char *dir, size_t cap)
{
    const char *slash = strrchr(g->l->path, '/');
    size_t n = !slash ? 1 : slash == g->l->path ? 1 : (size_t)(slash - g->l->path);

    if (n >= cap)
        return tly_error(TLY_ERR_USAGE, "ledger path too long");
    memcpy(dir, slash ? g->l->path : ".", n);
    dir[n] = '\0';
    return TLY_OK;
}

/*
 * The held runs' statement.  With one statement per run, starting and
 * ending statements cost as much as with run_ids' keys (store_bulk_keys):
 * the first load of 10M runs took 38-45 s, and 31-34 s at 64 runs to a
 * statement, with the same ledger to the byte.  Inside the bundle's
 * transaction: the last rowid stays the last.  OR FAIL: no statement
 * journal (ledger.h "Transactions").
 */
static int prepare_run_inserts(struct ing *g)
{
    static const char head[] = "INSERT OR FAIL INTO runs(account_id, event_id, ts, kind, resource_id,"
                               " resource_name, owner, outcome, file_id, line) VALUES";
    static const char row[] = "(?,?,?,?,?,?,?,?,?,?)";
    char sql[sizeof head + RUNS_PER_INSERT * sizeof row];
    size_t n = (size_t)snprintf(sql, sizeof sql, "%s", head);

    sqlite3_stmt *q;
    int rc, err;

    if (!(g->held = tly_calloc(1, sizeof *g->held)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    g->held->max = g->bulk ? RUNS_PER_INSERT : NIGHT_HELD_RUNS;
    for (int i = 0; i < RUNS_PER_INSERT; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s", i ? "," : "", row);
    if ((err = tly_ledger_prepare(g->l, sql, &g->held->insert)) ||
        (err = tly_ledger_prepare(g->l, "SELECT COALESCE(max(rowid), 0) FROM runs", &q)))
        return err;
    if ((rc = sqlite3_step(q)) == SQLITE_ROW)
        g->held->last_run = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? TLY_OK : tly_ledger_error(g->l, "reading runs");
}

/*
 * The held runs for any load; a bulk load's key spool, and its time index
 * dropped inside the bundle's transaction, so a rollback restores it.
 */
static int bulk_begin(struct ing *g)
{
    char dir[4096];
    int err;

    if (!g->bulk)
        return prepare_run_inserts(g);
    if ((err = ledger_dir(g, dir, sizeof dir)) || (err = tly_keyspool_create(&g->spool, dir)) ||
        (err = prepare_run_inserts(g)))
        return err;
    return g->day_index_sql ? tly_ledger_exec(g->l, "DROP INDEX runs_by_day") : TLY_OK;
}

/*
 * The load's id keys into run_ids and a new id filter, in key order from
 * the spool: SQLite inserts at the end of the table every time.  Two runs
 * of the load sharing a key (the same id twice, or a rare collision) come
 * out next to each other: they set g->bulk_duplicates, and the rest is
 * not worth storing (the bundle is read again row by row).
 */
static int store_bulk_keys(struct ing *g)
{
    struct tly_runids_writer w = { 0 };
    int64_t key, run, prev = 0, pending[TLY_RUNIDS_PER_INSERT][2];
    int err, got, first = 1;
    size_t n = 0;

    if ((err = tly_keyspool_sort(g->spool)) ||
        (err = tly_idfilter_new(tly_keyspool_count(g->spool), &g->filter)) ||
        (err = tly_runids_writer_prepare(&w, g->l, "run_ids")))
        goto done;
    while (!(err = tly_keyspool_next(g->spool, &key, &run, &got)) && got) {
        if (!first && key == prev) {
            g->bulk_duplicates = 1;
            break;
        }
        first = 0;
        prev = key;
        tly_idfilter_add(g->filter, key);
        pending[n][0] = key;
        pending[n][1] = run;
        if (++n == TLY_RUNIDS_PER_INSERT) {
            if ((err = tly_runids_writer_put(&w, (const int64_t(*)[2])pending, n)))
                break;
            n = 0;
        }
    }
    if (!err && !g->bulk_duplicates)
        err = tly_runids_writer_put(&w, (const int64_t(*)[2])pending, n);
    tly_idfilter_merged(g->filter);     /* they are run_ids' keys */
done:
    tly_runids_writer_finalize(&w);
    return err;
}

/*
 * The time index is an external sort of every run, on two sorter threads
 * (the machine has two cores).  The sorter sorts lists of up to cache_size
 * bytes in memory, as linked lists whose merge misses the CPU cache at
 * every step once a list outgrows it, then merges them from temporary
 * files.  So the cache is cut to 4 MiB meanwhile (SQLite's least list is
 * 250 pages, 4 MB): the lists sort inside the CPU cache, and the builds of
 * 10M runs took 9.5 s instead of 16 s with 32 MiB lists, in less memory.
 * run_ids was built by the same sorter, from a scan of the whole runs
 * table (7 s); the key spool sorts the pairs outside SQLite (keyspool.h).
 */
static int bulk_end(struct ing *g)
{
    int err, restored;

    if (!g->bulk)
        return TLY_OK;
    if ((err = store_bulk_keys(g)) || g->bulk_duplicates || !g->day_index_sql)
        return err;
    err = tly_ledger_exec(g->l, "PRAGMA threads = 2; PRAGMA cache_size = -4096;");
    if (!err)
        err = tly_ledger_exec(g->l, g->day_index_sql);
    restored = tly_ledger_exec(g->l, "PRAGMA threads = 0; PRAGMA cache_size = " TLY_LEDGER_CACHE);
    return err ? err : restored;
}

/*
 * A night's runs went into run_ids_new (migration 11).  Once it holds more
 * than an eighth of the runs, an eighth of the key space moves into
 * run_ids, the slices in turn (state "run_ids_slice"), one slice a bundle
 * until it is under the eighth again; all of it moves while run_ids is no
 * larger (a young ledger, a first load read row by row).  Keys are spread
 * evenly, so a slice of run_ids is an eighth of its pages.  Moving all of
 * run_ids_new at once rewrote every page of run_ids, more than the page
 * cache holds: 3 to 5 s more than a plain night's 2.5 s ingest, one night
 * in four, in the 10M-run bench.  An eighth of it fits the cache: 0.23 s
 * against 2.5 s for the whole (sqlite3 on a copy of one ledger).  The
 * eighth keeps run_ids_new small enough that a night's inserts into it
 * stay cheap.  max(rowid) stands for the count of runs, which are never
 * deleted.  The stored id filter covers run_ids, so it is saved with the
 * move (it was loaded before it, with the keys that move).  OR FAIL, or
 * SQLite copies every page it changes to a statement journal first
 * (ledger.h "Transactions").
 */
enum { ID_SLICES = 8, ID_SLICE_BITS = 61 };     /* 2^64 keys / 8 */

/* Runs SQL on the key range [lo, hi]; the rows it changed in *changed unless NULL. */
static int on_key_range(struct ing *g, const char *sql, int64_t lo, int64_t hi, int64_t *changed)
{
    sqlite3_stmt *q;
    int err;

    if ((err = tly_ledger_prepare(g->l, sql, &q)))
        return err;
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    err = tly_ledger_step_done(g->l, q);
    if (changed)
        *changed = sqlite3_changes(g->l->db);
    sqlite3_finalize(q);
    return err;
}

static int merge_new_ids(struct ing *g)
{
    sqlite3_stmt *q;
    int64_t fresh, runs, slice = 0, lo = INT64_MIN, hi = INT64_MAX, moved;
    int rc, err, found;

    if (g->bulk)
        return TLY_OK;
    if ((err = tly_ledger_prepare(g->l, "SELECT (SELECT count(*) FROM run_ids_new),"
                                        " (SELECT COALESCE(max(rowid), 0) FROM runs)", &q)))
        return err;
    rc = sqlite3_step(q);
    fresh = sqlite3_column_int64(q, 0);
    runs = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW)
        return tly_ledger_error(g->l, "counting run ids");
    if (fresh * 8 <= runs)
        return TLY_OK;
    if (fresh * 2 < runs) {     /* else run_ids is no larger: all of it moves */
        if ((err = tly_ledger_get_int(g->l, "run_ids_slice", &slice, &found)))
            return err;
        if (!found || slice < 0 || slice >= ID_SLICES)
            slice = 0;
        lo = (slice - ID_SLICES / 2) * (INT64_C(1) << ID_SLICE_BITS);     /* slice 0 from INT64_MIN */
        hi = lo + ((INT64_C(1) << ID_SLICE_BITS) - 1);
        if ((err = tly_ledger_set_int(g->l, "run_ids_slice", (slice + 1) % ID_SLICES)))
            return err;
    }
    if ((!g->filter && (err = tly_idfilter_load(g->l, &g->filter))) ||
        (err = on_key_range(g, "INSERT OR FAIL INTO run_ids SELECT id_key, run FROM run_ids_new"
                               " WHERE id_key BETWEEN ?1 AND ?2", lo, hi, &moved)) ||
        (err = on_key_range(g, "DELETE FROM run_ids_new WHERE id_key BETWEEN ?1 AND ?2", lo, hi, NULL)))
        return err;
    tly_idfilter_moved(g->filter, moved);
    return tly_idfilter_save(g->l, g->filter);
}

/*
 * A reload (load_row_by_row) started from an empty ledger, so its filter
 * was built for no runs and is full: build it again for the runs loaded,
 * as a bulk load would have.
 */
static int refit_filter(struct ing *g)
{
    if (!g->reloading || !g->filter)
        return TLY_OK;
    tly_idfilter_destroy(g->filter);
    g->filter = NULL;
    return tly_idfilter_build(g->l, &g->filter);
}

/*
 * Starts the bundle over after a bulk pass met duplicate ids (bulk_begin):
 * a fresh state that keeps the indexes and says nothing twice on stderr.
 */
static int load_row_by_row(struct ing *g)
{
    struct tly_ledger *l = g->l;
    const struct tly_settings *s = g->s;
    const char *name = g->name;
    long printed = g->printed;

    ing_release(g);
    memset(g, 0, sizeof *g);
    g->l = l;
    g->s = s;
    g->name = name;
    g->reloading = 1;
    g->printed = printed;
    return prepare_all(g);
}

/*
 * One pass over the bundle in its own transaction: committed when it
 * loaded; rolled back when it was rejected (g->rej_code) or a bulk pass
 * met duplicate ids (g->bulk_duplicates).  A bulk pass runs under the
 * rollback journal when it can (tly_ledger_append_journal), and the ledger
 * goes back to WAL mode whatever its outcome.
 */
static int load_pass(struct ing *g, const char *path, const char *hex, struct tly_ingest_stats *st)
{
    int err;

    if ((err = tly_ledger_begin(g->l)))
        return err;
    if ((err = bulk_begin(g)) || (err = insert_bundle(g, hex)) ||
        (err = tly_rundays_create(&g->rundays, g->l, g->bundle_id)) || (err = read_bundle(g, path, st)))
        goto fail;
    if (!g->rej_code[0] && !g->known)
        bundle_reject(g, "no_known_file", "", "no accounts, credits, runs, deployments or "
                      "manifest file");
    if (!g->rej_code[0])
        check_manifest(g);
    /* inputs.md: nothing of a rejected bundle is committed */
    if (g->rej_code[0] || (err = tly_rundays_flush(g->rundays)) || (err = bulk_end(g)) ||
        g->bulk_duplicates || (err = tly_runids_held_flush(g->new_ids)) || (err = merge_new_ids(g)) ||
        (err = refit_filter(g)) ||
        (g->filter && tly_idfilter_unsaved(g->filter) && (err = tly_idfilter_save(g->l, g->filter))))
        goto fail;
    if ((err = finish_loaded(g)) || (err = tly_ledger_commit(g->l)))
        goto fail;
    return TLY_OK;
fail:
    tly_ledger_rollback(g->l);
    return err;
}

static int load(struct ing *g, const char *path, const char *hex, struct tly_ingest_stats *st)
{
    int err, journal;

    if ((err = bulk_plan(g)))
        return err;
    journal = g->bulk && tly_ledger_append_journal(g->l);
    err = load_pass(g, path, hex, st);
    if (journal)
        tly_ledger_wal_again(g->l);
    return err;
}

static int ingest(struct ing *g, const char *path, struct tly_ingest_stats *st)
{
    struct tly_bundle_reject rej = { "", "", NULL };
    char hex[65], name_key[65], bounds_key[65];
    const char *key = hex;
    int rc, err;

    /* room for this bundle's id now, so nothing can fail after COMMIT */
    if (tly_grow(&st->bundle_ids, &st->ids_cap, (size_t)st->nbundle_ids + 1, sizeof *st->bundle_ids))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    rc = tly_bundle_identity(path, hex, &rej);
    if (rc == TLY_ERR_NOMEM || rc == TLY_ERR_IO)        /* reported; not the bundle's fault */
        return rc;
    if (rc == TLY_OK)
        memcpy(st->identity, hex, sizeof hex);
    if ((err = prepare_all(g)))
        return err;
    if (rc != TLY_OK) {
        /* unreadable: no content, so no bundles row, only the reject */
        bundle_reject(g, rej.code[0] ? rej.code : "bad_archive", "", "%s", rej.detail);
        return record_rejected(g, NULL, st);
    }
    if (tly_bundle_name_key(path, hex, name_key))
        key = name_key;
    tly_bundle_bounds_key(g->s, key, bounds_key);
    if (already(g, key, st, &rc) || already(g, bounds_key, st, &rc))
        return rc;
    if ((err = load(g, path, key, st)))
        return err;
    if (g->bulk_duplicates && ((err = load_row_by_row(g)) || (err = load(g, path, key, st))))
        return err;
    if (g->rej_code[0])
        return record_rejected(g, strcmp(g->rej_code, "too_large") ? key : bounds_key, st);
    if (g->row_rejects > g->printed)
        tly_note("'%s': %ld more rejects not shown here", g->name, g->row_rejects - g->printed);
    st->bundles_loaded++;
    st->rows_loaded += g->loaded;
    st->duplicates += g->duplicates;
    st->quarantined += g->quarantined;
    st->superseded += g->superseded;
    if ((err = push_id(st, g->bundle_id)))
        return err;
    return g->quarantined ? TLY_QUARANTINED : TLY_OK;
}

int tly_ingest_bundle(struct tly_ledger *l, const struct tly_settings *s, const char *path,
                      struct tly_ingest_stats *st)
{
    struct ing g;
    char name[256];
    int err;

    memset(&g, 0, sizeof g);
    st->identity[0] = '\0';
    base_name(path, name, sizeof name);
    g.l = l;
    g.s = s;
    g.name = name;
    err = ingest(&g, path, st);
    ing_release(&g);
    return err;
}

/* ------------------------------------------------------------------ */
/* rejects.csv                                                         */

int tly_rejects_mark(struct tly_ledger *l, int64_t *id)
{
    sqlite3_stmt *q;
    int err;

    if ((err = tly_ledger_prepare(l, "SELECT COALESCE(MAX(id), 0) FROM rejects", &q)))
        return err;
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return tly_ledger_error(l, "reading rejects");
    }
    *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return TLY_OK;
}

static const char *const rejects_header[] = { "bundle", "file", "line", "reason", "raw", NULL };

/* The rows of 'q' into w, which it closes. */
static int write_rejects_to(struct tly_ledger *l, sqlite3_stmt *q, struct csvout *w)
{
    int rc;

    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        csvout_text(w, (const char *)sqlite3_column_text(q, 0));
        csvout_text(w, (const char *)sqlite3_column_text(q, 1));
        if (sqlite3_column_type(q, 2) == SQLITE_NULL)
            csvout_empty(w);
        else
            csvout_int(w, sqlite3_column_int64(q, 2));
        csvout_text(w, (const char *)sqlite3_column_text(q, 3));
        if (sqlite3_column_type(q, 4) == SQLITE_NULL)
            csvout_empty(w);
        else
            csvout_raw(w, sqlite3_column_blob(q, 4), (size_t)sqlite3_column_bytes(q, 4));
        csvout_end_row(w);
    }
    if (rc != SQLITE_DONE) {
        csvout_abort(w);
        return tly_ledger_error(l, "reading rejects");
    }
    return csvout_close(w);
}

/*
 * A new file beside 'path' for the list, into 'tmp': created exclusively
 * (never through a link, never over a file), with the mode and owner of
 * the file it will replace.  -1 with errno when the directory refuses it.
 */
static int create_beside(const char *path, char *tmp, size_t cap)
{
    struct stat old;
    int fd = -1, have_old = stat(path, &old) == 0;

    for (int i = 0; fd < 0 && i < 100; i++) {
        if ((size_t)snprintf(tmp, cap, "%s.tally-%ld-%d.tmp", path, (long)getpid(), i) >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    if (fd >= 0 && have_old) {
        /* a list of raw customer rows keeps the access it had: its owner when
         * we may give it (root), and its mode (without set-id bits if not) */
        int owner_kept = fchown(fd, old.st_uid, old.st_gid) == 0;
        if (fchmod(fd, old.st_mode & (owner_kept ? 07777 : 0777)) != 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return -1;
        }
    }
    return fd;
}

/*
 * --rejects FILE is the caller's own file (the nightly wrapper files it away
 * beside a bundle): written as a new file beside it and renamed, so a full
 * disk never leaves a cut list under the name.  A FILE that is not a
 * regular file (/dev/stdout, a pipe, a link), or in a directory that does
 * not let a file be created beside it (EACCES, EPERM, EROFS), is written in
 * place; another failure to create one (a full disk) leaves FILE as it is.
 */
static int write_rejects(struct tly_ledger *l, sqlite3_stmt *q, const char *path)
{
    char tmp[4096];
    struct stat st;
    struct csvout *w;
    FILE *f;
    int fd, err;

    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        fd = -1;
    else if ((fd = create_beside(path, tmp, sizeof tmp)) < 0 &&
             errno != EACCES && errno != EPERM && errno != EROFS)
        return tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
    if (fd < 0) {
        if ((err = csvout_open(path, rejects_header, &w)))
            return err;
        return write_rejects_to(l, q, w);
    }
    if (!(f = fdopen(fd, "w"))) {
        err = tly_error(TLY_ERR_NOMEM, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
    } else if (!(err = csvout_open_stream(f, path, rejects_header, &w)) &&
               !(err = write_rejects_to(l, q, w)) && rename(tmp, path) != 0) {
        err = tly_error(TLY_ERR_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
    }
    if (err)
        unlink(tmp);
    return err;
}

int tly_rejects_write(struct tly_ledger *l, int64_t after_id, const char *path)
{
    sqlite3_stmt *q;
    int err;

    if ((err = tly_ledger_prepare(l, "SELECT bundle, file, line, reason, raw FROM rejects"
                                     " WHERE id > ?1 ORDER BY bundle, file, line, id", &q)))
        return err;
    sqlite3_bind_int64(q, 1, after_id);
    err = write_rejects(l, q, path);
    sqlite3_finalize(q);
    return err;
}

int tly_rejects_write_ingest(struct tly_ledger *l, int64_t after_id,
                             const struct tly_ingest_stats *st, const char *path)
{
    sqlite3_stmt *q;
    char *ids;
    size_t cap = 3 + (size_t)st->nbundle_ids * 21, n = 0;
    int err;

    if (!(ids = tly_malloc(cap)))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    ids[n++] = '[';
    for (long i = 0; i < st->nbundle_ids; i++)
        n += (size_t)snprintf(ids + n, cap - n, "%s%lld", i ? "," : "",
                              (long long)st->bundle_ids[i]);
    ids[n++] = ']';
    ids[n] = '\0';
    err = tly_ledger_prepare(l, "SELECT bundle, file, line, reason, raw FROM rejects"
                                " WHERE id > ?1 OR bundle_id IN (SELECT value FROM json_each(?2))"
                                " ORDER BY bundle, file, line, id", &q);
    if (!err) {
        sqlite3_bind_int64(q, 1, after_id);
        sqlite3_bind_text(q, 2, ids, -1, SQLITE_STATIC);
        err = write_rejects(l, q, path);
        sqlite3_finalize(q);
    }
    tly_free(ids);
    return err;
}
