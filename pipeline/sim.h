/*
 * sim.h — one account's reconciliation state, shared by the engine's files.
 *
 * The engine replays one account at a time (reconcile.c loads its events
 * and writes its results).  The rules live by spec section:
 *
 *   simulate.c    the timeline: instants, segments, wallet, cycles,
 *                 statements, late data (semantics §2, §3, §4, §8, §10)
 *   enforce.c     disabled deployments, the fine-tuning minimum, runs
 *                 exhausted, the negative limit t*, overruns (§6)
 *   thresholds.c  crossings, banners, e-mail items (§5)
 *
 * Nothing here is visible outside the engine: the public entry point is
 * reconcile.h.
 */
#ifndef TLY_SIM_H
#define TLY_SIM_H

#include <stdint.h>

#include <sqlite3.h>

#include "meter.h"
#include "strmap.h"
#include "wallet.h"

enum pool { POOL_CREDITS, POOL_RUNS, NPOOL };

/* Statement categories: the used_* columns (semantics §4). */
enum cat { CAT_MODEL, CAT_FINETUNE, CAT_GUARDRAIL, CAT_SCRIPT, CAT_OCR, CAT_BROWSER, NCAT };

/* Day-bucketed rows the engine writes (usage_day and per-date discrepancies). */
enum acc_kind {
    ACC_USAGE,          /* usage_day: chargeable credits + seconds, or runs */
    ACC_UNPRICED,       /* discrepancy unpriced */
    ACC_NOT_CHARGEABLE, /* discrepancy not_chargeable */
    ACC_OVERRUN,        /* discrepancy overrun */
    ACC_EXHAUSTED,      /* discrepancy run_while_exhausted */
    ACC_LATE,           /* usage_day late = 1 and discrepancy late_charge */
    NACC
};

struct acc_row {
    enum acc_kind kind;
    int dep;            /* index into deps, or -1 */
    int runnable;       /* index into runnables, or -1 */
    int64_t day, first_ts;
    int64_t credits, seconds, count;
    int priced;         /* credits is meaningful (else the cell is empty) */
    int64_t post_ts;    /* the instant that decides frozen-ness */
    int less_listed;    /* late not-chargeable time: the day's frozen rows are netted out */
    /* not_chargeable and unpriced hosting: the hardware of the date's first segment */
    const char *hardware;
    const struct tly_hardware *hw;
};

struct dep_event {
    int64_t ts;
    int late;                     /* arrived after its cycle closed (§8) */
    int ignored;                  /* by the odd-lifecycle table: in no tab column (§10) */
    char *event_id, *category, *action, *resource_id, *resource_name, *owner;
    char *deployment_id, *deployment_name, *deployment_type, *hardware;
    int64_t units, replicas;      /* 0 = absent */
    char *model_type, *language, *language_version, *endpoint;
};

struct credit_event {
    int64_t ts, amount, expires_at;
    char *txn_id, *type;
    enum pool pool;
};

/* A hosting deployment or a fine-tuning job (semantics §10 "keyed by"). */
struct dep {
    char *key;                  /* "category\x1fdeployment_id" ("finetune" for jobs) */
    const char *category;       /* model guardrail script ocr browser finetune */
    enum cat cat;
    const char *resource_id, *deployment_id;   /* borrowed from events */
    int is_job;
    int chargeable;             /* edition has the category (hardware checked per segment) */
    /* lifecycle */
    int started, running, stopped, deleted;
    int billed;                 /* some of its time was chargeable: it has a tab row */
    int ghost;                  /* only events after a delete: never started (keep_ghost) */
    int64_t stop_at;
    const char *hardware;
    const struct tly_hardware *hw;
    int64_t units, replicas;
    /* display (deployment_state; the resource's own columns: reconcile.c resource_text) */
    const char *deployment_name, *deployment_type, *language, *endpoint;
    int64_t last_deployed, last_updated;        /* days, TLY_NO_DAY = never */
    int64_t last_ts;                            /* the instant of last_updated (sim_dep_touch) */
    /* the open segment */
    int64_t seg_start, seg_end, seg_rate;       /* rate TLY_UNPRICED when no price */
    int seg_billable;                           /* charged (vs. only metered) */
    int64_t seg_consumed;
    /* phase 1: meter closed time for late-data comparison */
    int late_flag;                              /* enum late */
    int64_t late_from;                          /* its first late event (LATE_EVENTS) */
    int last_acc[NACC];
};

/*
 * Why a deployment's closed time is metered again (sim_replay_closed): it
 * has late events (the closed days from the first one on), or closed days
 * that were unpriced at their close and may be priced now (those days,
 * sim_mark_unpriced).
 */
enum late { LATE_NONE, LATE_EVENTS, LATE_UNPRICED };

struct runnable {
    char *map_key;              /* "kind\x1fresource_id", the index's key */
    char *ids;                  /* "kind\0resource_id": kind and resource_id point here */
    const char *kind, *resource_id;
    int chargeable, deployed, status_set;
    int running;                /* its deployments running (§10: keyed by deployment_id) */
    const char *status;
    int64_t last_active;        /* day, TLY_NO_DAY */
    int last_acc[NACC];
};

struct statement {
    int64_t cycle_start, cycle_end;             /* instants */
    int64_t opening, granted, used, used_cat[NCAT], adjusted, expired, late;
    int closed;
    int64_t card;                               /* closed: its card version, 0 = the one in force */
};

struct stop_record {
    int dep;
    int64_t at;
    const struct tly_hardware *hw;  /* what it ran with when stopped */
    int64_t units, replicas;
    int frozen;                     /* a closed cycle's stop: its action is already written */
};

/* A stop of a closed cycle (frozen action), applied while replaying closed time. */
struct frozen_stop {
    char *key;                  /* dep key: "category\x1fdeployment_id" */
    int64_t at;
};

struct sim {
    /* account */
    const char *account_id, *edition, *admin_email, *name;
    unsigned anchor_day;
    int64_t negative_limit, low_threshold, finetune_min;
    const char *runnable_kind;                  /* agent tool workflow */
    const struct tly_card *card;                /* the one in force, or 'layered' */
    struct tly_card layered;                    /* closed time at its prices (account_card) */
    int64_t as_of, grace;
    int close_cycles;
    /* timeline */
    int64_t now, open_start, new_closed_end;
    int charging;                               /* 0 while replaying closed time */
    struct tly_wallet wallet[NPOOL];
    struct statement stmt[NPOOL];
    struct statement *stmts;                    /* finished cycles of both pools */
    size_t nstmts, stmts_cap;
    int crossed[NPOOL][6];                      /* this cycle: 20 50 70 80 90 100 */
    int64_t crossed_at[NPOOL][6];
    int negative_raised;                        /* this cycle */
    /* events */
    struct dep_event *devs;
    size_t ndevs;
    struct credit_event *cevs;
    size_t ncevs;
    /* entities */
    struct dep *deps;
    size_t ndeps, deps_cap;
    struct tly_strmap dep_index;
    struct runnable *runnables;
    size_t nrunnables, runnables_cap;
    struct tly_strmap runnable_index;
    struct tly_strmap runnable_deps;            /* "kind\x1fdeployment_id": 1 running, 0 not */
    char **deleted;                             /* "category\x1fresource_id" */
    size_t ndeleted, deleted_cap;
    int64_t next_cut;                           /* min seg_end of running deps */
    /* outputs */
    struct acc_row *rows;
    size_t nrows, rows_cap;
    struct stop_record *stops;
    size_t nstops, stops_cap;
    struct sim_out *out;                        /* reconcile.c's writer */
    /* inputs streamed or preloaded by reconcile.c */
    sqlite3_stmt *runs;                         /* a day's runs, by ts, event_id (step_runs) */
    sqlite3_stmt *run_days;                     /* the account's days with runs and their first instants */
    int runs_has_row;
    int runs_pending;                           /* a day noted, its runs not read (simulate.c "Lazy days") */
    int64_t pending_day, pending_first;
    int64_t runs_from;                          /* the first instant of the runs read */
    int64_t last_run_ts;                        /* the last run applied, or INT64_MIN */
    sqlite3_stmt *day_runs, *day_charged;       /* run_day of (account, day), NULL: none */
    long quiet_days;                            /* days applied from run_day */
    struct frozen_stop *frozen_stops;           /* stops of closed cycles, by time */
    size_t nfrozen_stops;
    struct tly_strmap late_keys;                /* deps whose closed time is re-metered (enum late) */
    struct tly_strmap unpriced_days;            /* "key\x1fday" of closed days that were unpriced */
    struct tly_strmap listed_days;              /* "key\x1fday" with a frozen not_chargeable row */
    char **late_key_store;                      /* owns the keys of both maps */
    size_t nlate_keys, late_key_cap;
    int overflow;                               /* a sum left int64: exit 65 */
    int *active;                                /* deps with an open segment */
    size_t nactive, active_cap;
};

/* Row output, implemented by reconcile.c. */
int sim_snapshot(struct sim *s, int64_t closed_end);
/* A failed read of the simulation's own statements, reported naming the ledger. */
int sim_ledger_error(struct sim *s, const char *what);
int sim_discrepancy(struct sim *s, const char *kind, int64_t ts, const char *category,
                    const char *resource_id, const char *deployment_id, int has_credits,
                    int64_t credits, const char *detail, int64_t post_ts);
int sim_action(struct sim *s, const struct dep *d, int64_t at);
int sim_crossing(struct sim *s, enum pool pool, int threshold, int64_t ts);
/* 'detail' is a JSON object; the writer takes ownership of it. */
int sim_item(struct sim *s, const char *item, const char *pool, int threshold, int64_t ts,
             const char *key, void *detail);
int sim_cycle_item(struct sim *s, const char *item, enum pool pool, int threshold, int64_t ts,
                   const char *key, void *detail);

/* simulate.c */
int sim_run(struct sim *s, int64_t start);
int sim_acc(struct sim *s, enum acc_kind kind, int dep, int runnable, int64_t ts,
            int64_t credits, int64_t seconds, int64_t count, int priced, int64_t post_ts);
int sim_close_segment(struct sim *s, struct dep *d, int64_t t);
int64_t sim_balance_at(const struct sim *s, int64_t t);
int64_t sim_used_at(const struct sim *s, int64_t t);
int sim_anything_charged_running(const struct sim *s);
int sim_dep_charged(const struct sim *s, const struct dep *d, int64_t t);
/* A lifecycle event or stop of 'd' at t: its "last updated on" (outputs.md). */
void sim_dep_touch(struct dep *d, int64_t t);
int64_t sim_dep_multiplier(const struct dep *d);
/* What a tab shows of a resource as a whole, whichever deployment it ran as. */
struct sim_resource_text {
    const char *name, *owner, *model_type, *language_version;
};
/* From the resource's events up to 'upto' (simulate.c: the rule and why). */
void sim_resource_text(const struct sim *s, const char *category, const char *resource_id, int64_t upto,
                       int with_ignored, struct sim_resource_text *t);
/* The name an e-mail gives the resource of 'd': its tab name so far. */
const char *sim_resource_name(const struct sim *s, const struct dep *d);
int sim_seg_open(const struct sim *s, const struct dep *d);
const char *sim_dep_key_category(const struct dep_event *ev);
/* A deploy or a finetune_start: the events that can start a deployment or job. */
int sim_is_start(const struct dep_event *ev);
int sim_replay_closed(struct sim *s);
/* A closed day on which deployment (category, deployment_id) ran unpriced from instant 'from'. */
int sim_mark_unpriced(struct sim *s, const char *category, const char *deployment_id, int64_t from);
/*
 * The day of 'ts' has a frozen not_chargeable row for a deployment
 * (category, deployment_id) or a runnable (kind, resource_id): late data
 * adds no second one (§10: one row per deployment or runnable and date).
 */
int sim_mark_listed(struct sim *s, const char *category, const char *id, int64_t ts);
int sim_listed(const struct sim *s, const char *key, int64_t day);
int sim_runnable(struct sim *s, const char *kind, const char *resource_id, struct runnable **out);

/* enforce.c */
int enforce_check_deploy(struct sim *s, const struct dep_event *ev, const struct dep *d);
int enforce_run(struct sim *s, struct runnable *r, int64_t ts);
int enforce_stop_all(struct sim *s, int64_t t);
int64_t enforce_find_stop(const struct sim *s, int64_t lo, int64_t hi);
int enforce_overruns(struct sim *s);
int enforce_running_list(const struct sim *s, void *json_array);

/* thresholds.c */
int thresholds_search(struct sim *s, int64_t lo, int64_t hi);
int thresholds_check(struct sim *s, int64_t t);
int thresholds_check_pool(struct sim *s, enum pool pool, int64_t t);
int thresholds_would_cross(const struct sim *s, enum pool pool, int64_t used);
void thresholds_new_cycle(struct sim *s);
void thresholds_mark(struct sim *s, enum pool pool, int threshold);
const char *thresholds_banner(struct sim *s, enum pool pool, char *buf, int free_expired);

#endif
