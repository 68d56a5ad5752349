/*
 * enforce.c — low balance and the negative credit limit (spec semantics.md §6).
 *
 * New deployments are disabled while balance(t) < low_threshold or ≤ 0; the
 * platform still logs deploys then, so they are charged and listed.  Running
 * deployments may take the balance down to −negative_limit: the first whole
 * second below it (t*) stops every running charged deployment and fine-tuning
 * job, and the platform is told with one action each.  Time a stopped
 * deployment is seen running afterwards is an overrun: listed, not charged.
 */
#include "sim.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define STOP_MESSAGE "You've used all your available credits. " \
                     "Please add more credits to your account to continue."

static void money(char *buf, int64_t v)
{
    tly_format_micro(buf, v);
}

int enforce_check_deploy(struct sim *s, const struct dep_event *ev, const struct dep *d)
{
    int64_t balance = tly_wallet_balance(&s->wallet[POOL_CREDITS]);
    char detail[160], b[TLY_MONEY_LEN], lim[TLY_MONEY_LEN];

    /* not chargeable usage is "not charged or counted" (§10): nothing to list */
    if (!sim_dep_charged(s, d, ev->ts))
        return TLY_OK;
    money(b, balance);
    if (!strcmp(ev->action, "deploy")) {
        /* "deployment actions get disabled" below low_threshold or with no credits */
        if (balance >= s->low_threshold && balance > 0)
            return TLY_OK;
        money(lim, s->low_threshold);
        snprintf(detail, sizeof detail, "balance %s (low threshold %s)", b, lim);
        return sim_discrepancy(s, "deploy_while_disabled", ev->ts, d->category, d->resource_id,
                               d->deployment_id, 0, 0, detail, ev->ts);
    }
    if (balance > s->finetune_min)
        return TLY_OK;
    money(lim, s->finetune_min);
    snprintf(detail, sizeof detail, "balance %s (fine-tuning minimum %s)", b, lim);
    return sim_discrepancy(s, "finetune_below_minimum", ev->ts, d->category, d->resource_id,
                           d->deployment_id, 0, 0, detail, ev->ts);
}

/* spec §10 "Runs exhausted": the runs balance just before the run is ≤ 0. */
int enforce_run(struct sim *s, struct runnable *r, int64_t ts)
{
    if (tly_wallet_balance(&s->wallet[POOL_RUNS]) > 0)
        return TLY_OK;
    return sim_acc(s, ACC_EXHAUSTED, -1, (int)(r - s->runnables), ts, 0, 0, 1, 0, ts);
}

/*
 * The first second in [lo, hi] with balance < −negative_limit, or 0.  Only
 * accrual happens in that span, so the balance only falls: bisect.
 */
int64_t enforce_find_stop(const struct sim *s, int64_t lo, int64_t hi)
{
    if (sim_balance_at(s, hi) >= -s->negative_limit)
        return 0;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sim_balance_at(s, mid) < -s->negative_limit)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int enforce_running_list(const struct sim *s, void *json_array)
{
    for (size_t i = 0; i < s->ndeps; i++) {
        const struct dep *d = &s->deps[i];
        json_t *o;
        if (!d->running || !sim_dep_charged(s, d, s->now))
            continue;
        o = json_pack("{s:s, s:s, s:s, s:s?}", "category", d->category, "resource_id",
                      d->resource_id, "deployment_id", d->deployment_id, "name", sim_resource_name(s, d));
        if (!o || json_array_append_new(json_array, o))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    return TLY_OK;
}

/* t*: every running charged deployment and fine-tuning job stops at 't'. */
int enforce_stop_all(struct sim *s, int64_t t)
{
    json_t *list = json_array(), *detail;
    char key[64], when[TLY_TS_LEN];
    int err;

    if (!list)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if ((err = enforce_running_list(s, list))) {
        json_decref(list);
        return err;
    }
    for (size_t i = 0; i < s->ndeps; i++) {
        struct dep *d = &s->deps[i];
        if (!d->running || !sim_dep_charged(s, d, t))
            continue;
        if (sim_seg_open(s, d) && (err = sim_close_segment(s, d, t)))
            goto fail;
        d->running = 0;
        d->stopped = 1;
        d->stop_at = t;
        sim_dep_touch(d, t);
        if ((err = sim_action(s, d, t)))
            goto fail;
        if (tly_grow(&s->stops, &s->stops_cap, s->nstops + 1, sizeof *s->stops)) {
            err = tly_error(TLY_ERR_NOMEM, "out of memory");
            goto fail;
        }
        s->stops[s->nstops++] = (struct stop_record){ (int)i, t, d->hw, d->units, d->replicas, 0 };
    }
    tly_format_ts(when, t);
    detail = json_pack("{s:s, s:s, s:o}", "stop_at", when, "message", STOP_MESSAGE, "deployments", list);
    if (!detail)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "stopped:%lld", (long long)t);
    return sim_item(s, "deployments_stopped", "credits", 0, t, key, detail);
fail:
    json_decref(list);
    return err;
}

/* ------------------------------------------------------------- overruns */

struct overrun_ctx {
    struct sim *s;
    int dep;
    int err;
};

static void overrun_segment(void *ctx, int64_t from, int64_t to, int64_t charge)
{
    struct overrun_ctx *c = ctx;
    if (c->err)
        return;
    /*
     * Overruns move no money, so they are recomputed from every stop at each
     * run and never frozen: evidence that arrives after the stop's cycle
     * closed still shows, as it would in one run over all the data (§9.2).
     */
    c->err = sim_acc(c->s, ACC_OVERRUN, c->dep, -1, from, charge == TLY_UNPRICED ? 0 : charge,
                     to - from, 0, 1, INT64_MAX);
}

static int event_of(const struct sim *s, const struct dep *d, const struct dep_event *ev)
{
    if (!strcmp(ev->action, "delete"))
        return !strcmp(ev->category, d->is_job ? "model" : d->category) &&
               !strcmp(ev->resource_id, d->resource_id);
    (void)s;
    return !strcmp(sim_dep_key_category(ev), d->category) &&
           !strcmp(ev->deployment_id, d->deployment_id);
}

/*
 * spec §10 "Overrun needs evidence": after t*, a scale, undeploy or delete
 * (only a finetune_end for a job) shows the stopped deployment kept running.  The
 * overrun runs from t* to the first undeploy/delete/finetune_end; after a
 * scale with nothing else yet, to the next deploy or the as-of.  A deploy
 * with no evidence before it is a plain restart.
 */
static int one_overrun(struct sim *s, const struct stop_record *st)
{
    struct dep *d = &s->deps[st->dep];
    struct overrun_ctx c = { s, st->dep, TLY_OK };
    const struct tly_hardware *hw = st->hw;
    int64_t units = st->units, replicas = d->is_job ? 1 : st->replicas;
    int64_t from = st->at, end = 0;
    int evidence = 0;
    size_t i;

    for (i = 0; i < s->ndevs && !end; i++) {
        const struct dep_event *ev = &s->devs[i];
        /* an event the lifecycle ignored (a scale past the units bound) shows nothing */
        if (ev->ts <= st->at || ev->ignored || !event_of(s, d, ev))
            continue;
        /* a job's only evidence is its finetune_end (§10), which ends the overrun itself */
        if (d->is_job && !strcmp(ev->action, "delete"))
            return TLY_OK;
        if (sim_is_start(ev)) {
            if (!evidence)
                return TLY_OK;
            end = ev->ts;
        } else if (!strcmp(ev->action, "scale")) {
            evidence = 1;
            if (tly_meter_span(hw, units * replicas, from, ev->ts, overrun_segment, &c))
                s->overflow = 1;
            from = ev->ts;
            if (ev->hardware)
                hw = tly_card_find(s->card, ev->hardware);
            if (ev->units)
                units = ev->units;
            if (ev->replicas && !d->is_job)
                replicas = ev->replicas;
        } else {
            evidence = 1;
            end = ev->ts;
        }
    }
    if (!evidence)
        return TLY_OK;
    if (tly_meter_span(hw, units * replicas, from, end ? end : s->as_of, overrun_segment, &c))
        s->overflow = 1;
    return c.err;
}

int enforce_overruns(struct sim *s)
{
    int err;
    for (size_t i = 0; i < s->nstops; i++)
        if ((err = one_overrun(s, &s->stops[i])))
            return err;
    return TLY_OK;
}
