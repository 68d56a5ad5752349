/*
 * thresholds.c — crossings, banners and e-mail items (spec semantics.md §5).
 *
 * Threshold p is crossed at the first whole second of the cycle where
 * used(t) > 0 and used(t) ≥ p% × total(t), at most once per cycle.  Between
 * instants only hosting accrues, so used(t) only grows and total(t) is
 * constant: the first second is found by bisection.  Runs cross on a run's
 * ts, at an instant.  Crossings of 50, 70, 80 and 90 are e-mail items; the
 * first second of a cycle below zero is a negative_balance item.
 */
#include "sim.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const int levels[6] = { 20, 50, 70, 80, 90, 100 };

void thresholds_new_cycle(struct sim *s)
{
    memset(s->crossed, 0, sizeof s->crossed);
    memset(s->crossed_at, 0, sizeof s->crossed_at);
    s->negative_raised = 0;
}

/* A crossing of 'threshold' % already recorded for the cycle (reconcile.c closed_current). */
void thresholds_mark(struct sim *s, enum pool pool, int threshold)
{
    for (size_t k = 0; k < sizeof levels / sizeof *levels; k++)
        if (levels[k] == threshold)
            s->crossed[pool][k] = 1;
}

static int64_t total_of(const struct sim *s, enum pool pool)
{
    return s->stmt[pool].opening + s->stmt[pool].granted;
}

/* used ≥ p% × total, exactly: 100 × used ≥ p × total (128-bit, no rounding). */
static int reached(int64_t used, int64_t total, int p)
{
    return used > 0 && (__int128)used * 100 >= (__int128)total * p;
}

static void figure(char *buf, enum pool pool, int64_t v)
{
    if (pool == POOL_RUNS)
        snprintf(buf, TLY_MONEY_LEN, "%lld", (long long)(v / TLY_MICRO));
    else
        tly_format_micro(buf, v);
}

static int record(struct sim *s, enum pool pool, int k, int64_t ts, int64_t used)
{
    int64_t total = total_of(s, pool);
    char u[TLY_MONEY_LEN], t[TLY_MONEY_LEN], pct[TLY_MONEY_LEN], key[96];
    const char *pname = pool == POOL_RUNS ? "runs" : "credits";
    json_t *detail;
    int err;

    s->crossed[pool][k] = 1;
    s->crossed_at[pool][k] = ts;
    if ((err = sim_crossing(s, pool, levels[k], ts)))
        return err;
    if (levels[k] == 20 || levels[k] == 100)
        return TLY_OK;                  /* banners only, no e-mail */
    figure(u, pool, used);
    figure(t, pool, total);
    tly_format_pct(pct, tly_pct_used(used, total));
    detail = json_pack("{s:s, s:s, s:s, s:s}", "used", u, "total", t, "pct", pct, "unit", pname);
    if (!detail)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "threshold:%s:%lld:%d", pname,
             (long long)s->stmt[pool].cycle_start, levels[k]);
    return sim_cycle_item(s, "threshold", pool, levels[k], ts, key, detail);
}

static int negative_item(struct sim *s, int64_t ts)
{
    char bal[TLY_MONEY_LEN], lim[TLY_MONEY_LEN], key[64];
    json_t *list = json_array(), *detail;
    int err;

    s->negative_raised = 1;
    if (!list)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if ((err = enforce_running_list(s, list))) {
        json_decref(list);
        return err;
    }
    tly_format_micro(bal, sim_balance_at(s, ts));
    tly_format_micro(lim, s->negative_limit);
    detail = json_pack("{s:s, s:s, s:o}", "balance", bal, "negative_limit", lim, "deployments", list);
    if (!detail)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "negative:%lld", (long long)s->stmt[POOL_CREDITS].cycle_start);
    return sim_cycle_item(s, "negative_balance", POOL_CREDITS, 0, ts, key, detail);
}

/* Conditions met inside [lo, hi], where only hosting accrues. */
int thresholds_search(struct sim *s, int64_t lo, int64_t hi)
{
    int64_t total = total_of(s, POOL_CREDITS), used_hi = sim_used_at(s, hi);
    int err;

    for (int k = 0; k < 6; k++) {
        int64_t a = lo, b = hi;
        if (s->crossed[POOL_CREDITS][k] || !reached(used_hi, total, levels[k]))
            continue;
        while (a < b) {
            int64_t mid = a + (b - a) / 2;
            if (reached(sim_used_at(s, mid), total, levels[k]))
                b = mid;
            else
                a = mid + 1;
        }
        if ((err = record(s, POOL_CREDITS, k, a, sim_used_at(s, a))))
            return err;
    }
    if (!s->negative_raised && sim_balance_at(s, hi) < 0) {
        int64_t a = lo, b = hi;
        while (a < b) {
            int64_t mid = a + (b - a) / 2;
            if (sim_balance_at(s, mid) < 0)
                b = mid;
            else
                a = mid + 1;
        }
        s->now = a;                     /* the running list is judged at that second */
        err = negative_item(s, a);
        s->now = lo - 1;
        return err;
    }
    return TLY_OK;
}

/* Crossings of one pool at instant 't', after its events. */
int thresholds_check_pool(struct sim *s, enum pool pool, int64_t t)
{
    int err;
    for (int k = 0; k < 6; k++)
        if (!s->crossed[pool][k] && reached(s->stmt[pool].used, total_of(s, pool), levels[k]) &&
            (err = record(s, pool, k, t, s->stmt[pool].used)))
            return err;
    return TLY_OK;
}

/* Whether 'used' reaches a threshold of 'pool' not crossed yet this cycle. */
int thresholds_would_cross(const struct sim *s, enum pool pool, int64_t used)
{
    for (int k = 0; k < 6; k++)
        if (!s->crossed[pool][k] && reached(used, total_of(s, pool), levels[k]))
            return 1;
    return 0;
}

/* Conditions at instant 't', after its events (§10 "One instant"). */
int thresholds_check(struct sim *s, int64_t t)
{
    int err;
    for (int pool = 0; pool < NPOOL; pool++)
        if ((err = thresholds_check_pool(s, (enum pool)pool, t)))
            return err;
    if (!s->negative_raised && tly_wallet_balance(&s->wallet[POOL_CREDITS]) < 0)
        return negative_item(s, t);
    return TLY_OK;
}

/* spec §5 "Banner": free-expired (fixed), 100 (fixed), the highest p crossed, or none. */
const char *thresholds_banner(struct sim *s, enum pool pool, char *buf, int free_expired)
{
    if (free_expired)
        return "free-expired";
    if (s->crossed[pool][5])
        return "100";
    for (int k = 4; k >= 0; k--)
        if (s->crossed[pool][k]) {
            snprintf(buf, 8, "%d", levels[k]);
            return buf;
        }
    return "none";
}
