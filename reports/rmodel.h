/*
 * rmodel.h — the per-account report model: everything one account's Usage
 * page shows, read once from the engine's result tables.
 *
 * The reconciliation engine is the one source of every figure (account_state,
 * statements, usage_day, deployment_state, runnable_state; ledger.c
 * migration 1).  The model only selects, sums over the window and groups
 * what the engine stored; the CSV files and the workbooks are both written
 * from it (reports/account.c, reports/finance.c), so they cannot disagree.
 *
 * A reader holds one prepared statement per query kind and the rate card's
 * display columns; tly_rmodel_next() loads the next account (ordered by
 * account_id) into a model whose memory is reused from account to account,
 * so 1,000 accounts cost 1,000 indexed look-ups and bounded memory.
 *
 * Ownership: tly_rreader_open() returns a reader freed with
 * tly_rreader_free() (accepts NULL).  A model starts zeroed, is filled by
 * tly_rmodel_next() (its strings are valid until the next call) and is
 * released with tly_rmodel_release().
 */
#ifndef TLY_RMODEL_H
#define TLY_RMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "report.h"
#include "timeutil.h"

#define TLY_NO_INT INT64_MIN     /* an empty whole number (units, replicas) */

/* The editions (spec README "The three editions"). */
enum tly_edition { TLY_ED_GALE, TLY_ED_AGENT_PLATFORM, TLY_ED_PROCESS, TLY_ED_MAX };

/* The statement categories of the credits pool (spec README glossary). */
enum tly_rcat {
    TLY_RC_MODELS, TLY_RC_FINETUNE, TLY_RC_GUARDRAILS, TLY_RC_SCRIPTS, TLY_RC_OCR,
    TLY_RC_BROWSER, TLY_RC_MAX
};

/* The row lists behind the tab files (outputs.md "Per-account files"). */
enum tly_rsource {
    TLY_RS_RUNNABLES,       /* agents / tools / workflows */
    TLY_RS_MODELS,          /* one per model: hosting + fine-tuning */
    TLY_RS_DEPLOYMENTS,     /* one per model deployment and fine-tuning job */
    TLY_RS_GUARDRAILS,      /* one per guardrail */
    TLY_RS_SCRIPTS,         /* one per script */
    TLY_RS_OCR,             /* one per OCR deployment */
    TLY_RS_BROWSER,         /* one per browser-automation deployment */
    TLY_RS_MAX
};

/* The rate-card row shown for a hardware (outputs.md: in force at the as-of, else latest). */
struct tly_rhardware {
    const char *id, *description, *vcpu, *memory_gb;
};

/*
 * One row of a tab.  Text is NULL when empty; days are TLY_NO_DAY and
 * units/replicas TLY_NO_INT when there is nothing to show.  Credit, run
 * and second figures are sums over the window.
 */
struct tly_rrow {
    const char *resource_id, *deployment_id, *name, *owner, *model_type;
    const char *deployment_name, *deployment_type, *language_version, *hardware;
    const struct tly_rhardware *hw;         /* NULL: not on the card */
    const char *status;                     /* Deployed Undeployed Deleted */
    int64_t units, replicas;
    int64_t credits, hosting_credits, finetune_credits, seconds, runs;  /* credits = hosting + fine-tuning */
    int64_t last_active, last_deployed, last_updated;
    int64_t last_ts;                        /* the instant of last_updated: which deployment is latest */
    enum tly_rcat cat;                      /* TLY_RC_FINETUNE: a fine-tuning job */
};

/* One date of the window: the trend row. */
struct tly_rday {
    int64_t day, runs;
    int64_t credits[TLY_RC_MAX];
};

struct tly_rmodel {
    /* account_state: the current cycle at the as-of (semantics §4-5) */
    const char *account_id, *name, *edition_id, *banner_credits, *banner_runs;
    enum tly_edition edition;
    int64_t as_of, cycle_start, cycle_end;
    int64_t runs_used, runs_total, runs_remaining;          /* runs × 1,000,000 */
    int64_t credits_used, credits_total, credits_remaining; /* micro-credits */
    int64_t carried_to_next;    /* the current credits statement's */
    /* derived for display (semantics §1 percentages, §4 widget) */
    __int128 runs_used_pct, credits_used_pct, credits_remaining_pct;   /* money.h */
    const char *widget;
    /* the window (semantics §7) and its usage */
    int64_t from, to;
    struct tly_rday *days;
    size_t ndays;
    int64_t window_runs, window_credits, window_cat[TLY_RC_MAX];
    /* the tabs */
    struct tly_rrow *rows[TLY_RS_MAX];
    size_t nrows[TLY_RS_MAX];

    /* storage, reused by the next account */
    size_t days_cap, rows_cap[TLY_RS_MAX];
    struct tly_rrow *deps;                  /* every deployment and job */
    size_t ndeps, deps_cap;
    struct tly_rpool *pool;                 /* the strings */
};

struct tly_rreader;

/* Reading. */
int tly_rreader_open(struct tly_ledger *l, const struct tly_report_opts *o,
                     struct tly_rreader **out);
void tly_rreader_free(struct tly_rreader *r);
/* Loads the next account into 'm'; *loaded = 0 when there is none left. */
int tly_rmodel_next(struct tly_rreader *r, struct tly_rmodel *m, int *loaded);
void tly_rmodel_release(struct tly_rmodel *m);

/* Names. */
const char *tly_edition_product(enum tly_edition e);      /* "GALE" ... */
const char *tly_edition_runnable(enum tly_edition e);     /* "agent" ... */
const char *tly_edition_runs_label(enum tly_edition e);   /* "Agent runs" ... */

#endif
