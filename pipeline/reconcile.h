/*
 * reconcile.h — the reconcile stage: events + rate card + as-of → results.
 *
 * Recomputes every open cycle of every account from its frozen opening and
 * all its events (semantics §8), closes the cycles whose end + grace has
 * passed, and rewrites the result tables the report and notify stages read
 * (statements, usage_day, deployment_state, runnable_state, account_state,
 * discrepancies, actions, crossings) and adds new e-mail items.  Closed
 * cycles (frozen = 1) are never recomputed.
 *
 * Runs inside the caller's transaction: `run` and `report` commit it as one
 * stage; `balance` rolls it back, so a support query never closes a cycle or
 * changes the ledger.
 */
#ifndef TLY_RECONCILE_H
#define TLY_RECONCILE_H

#include <stdint.h>

#include "ledger.h"

struct tly_reconcile_opts {
    int64_t as_of;
    int64_t grace_seconds;      /* semantics §8, default 48 h */
    int64_t finetune_min;       /* semantics §6, micro-credits */
    int close_cycles;           /* run and report close cycles; balance does not */
    int every_run;              /* replay quiet days run by run (the differential test) */
    const char *only_account;   /* balance: reconcile this account alone (NULL: every one) */
};

struct tly_reconcile_stats {
    long accounts, unknown_accounts, cycles_closed;
    long quiet_days;            /* account-days applied from run_day (simulate.c) */
};

int tly_reconcile(struct tly_ledger *l, const struct tly_reconcile_opts *o,
                  struct tly_reconcile_stats *st);

/* The default as-of: the latest manifest period_end in the ledger (*found = 0 when none). */
int tly_default_as_of(struct tly_ledger *l, int64_t *as_of, int *found);

#endif
