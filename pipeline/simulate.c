/*
 * simulate.c — one account's timeline (spec semantics.md §2, §3, §4, §8, §10).
 *
 * The account is replayed instant by instant.  The instants are every event
 * (credits, deployments, runs), every expiry, every cycle start, every
 * segment cut of a running deployment (midnights, price bounds) and the
 * as-of.  Between two instants nothing happens but hosting accrual, so the
 * conditions that fall inside (threshold crossings, the first second below
 * zero, the negative limit t*) are found by binary search on the accrual
 * formula (enforce.c, thresholds.c).  At an instant t the order of §10 "One
 * instant" applies: accrual up to t, expiries at t, the cycle starting at t,
 * then the events at t (credits, deployments, runs, each by id), and only
 * then are balance(t), used(t) and total(t) judged.
 */
#include "sim.h"
#include "alloc.h"
#include "error.h"
#include "fields.h"
#include "money.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const cat_names[NCAT] = {
    [CAT_MODEL] = "model", [CAT_FINETUNE] = "finetune", [CAT_GUARDRAIL] = "guardrail",
    [CAT_SCRIPT] = "script", [CAT_OCR] = "ocr", [CAT_BROWSER] = "browser",
};

/* Sums of money must never wrap (spec inputs.md "Decimals": overflow is exit 65). */
static void add(struct sim *s, int64_t *sum, int64_t v)
{
    if (__builtin_add_overflow(*sum, v, sum))
        s->overflow = 1;
}

/* ---------------------------------------------------------------- rows */

/*
 * Adds to the day-bucketed row of ('kind', owner, day of 'ts').  Rows of one
 * owner and kind arrive in time order, so merging into the owner's last row
 * is enough to keep one row per date.
 */
int sim_acc(struct sim *s, enum acc_kind kind, int dep, int runnable, int64_t ts,
            int64_t credits, int64_t seconds, int64_t count, int priced, int64_t post_ts)
{
    int *last = dep >= 0 ? &s->deps[dep].last_acc[kind] : &s->runnables[runnable].last_acc[kind];
    int64_t day = tly_day_of(ts);
    struct acc_row *r;

    if (*last >= 0 && s->rows[*last].day == day) {
        r = &s->rows[*last];
    } else {
        if (tly_grow(&s->rows, &s->rows_cap, s->nrows + 1, sizeof *s->rows))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        *last = (int)s->nrows;
        r = &s->rows[s->nrows++];
        memset(r, 0, sizeof *r);
        r->kind = kind;
        r->dep = dep;
        r->runnable = runnable;
        r->day = day;
        r->first_ts = ts;
        r->post_ts = post_ts;
    }
    add(s, &r->credits, credits);
    r->seconds += seconds;
    r->count += count;
    r->priced |= priced;
    return TLY_OK;
}

/* ------------------------------------------------------------ segments */

/* spec §10 "Not chargeable": the edition lacks the category, or the hardware is another category's. */
static int segment_billable(const struct dep *d, int64_t t)
{
    const char *hwcat;
    if (!d->chargeable)
        return 0;
    hwcat = tly_hardware_category(d->hw, t);
    return !hwcat || !strcmp(hwcat, d->is_job ? "model" : d->category);
}

/*
 * Closed time is replayed without cutting segments at the card's rows
 * (nothing is charged there), so one segment may span rows of several
 * categories and gaps.  Its deployment has a tab row when any of that
 * time bills it, as the run that metered the time open found: a re-run
 * or a later night must list what a batch run lists (§9).
 */
static int span_billable(const struct dep *d, int64_t from, int64_t to)
{
    for (int64_t t = from; t < to; t = tly_next_row_edge(d->hw, t))
        if (segment_billable(d, t))
            return 1;
    return 0;
}

int64_t sim_dep_multiplier(const struct dep *d)
{
    return d->units * (d->is_job ? 1 : d->replicas);
}

int sim_dep_charged(const struct sim *s, const struct dep *d, int64_t t)
{
    (void)s;
    return d->chargeable && segment_billable(d, t);
}

/*
 * The instant too, not only the day: of a resource's deployments, the
 * report shows the hardware of the one updated last, which one day cannot
 * tell (reports/rmodel.c "later").
 */
void sim_dep_touch(struct dep *d, int64_t t)
{
    d->last_updated = tly_day_of(t);
    d->last_ts = t;
}

/* Fine-tuning jobs are keyed among jobs, deployments by their category (§10). */
const char *sim_dep_key_category(const struct dep_event *ev)
{
    return !strncmp(ev->action, "finetune_", 9) ? "finetune" : ev->category;
}

int sim_is_start(const struct dep_event *ev)
{
    return !strcmp(ev->action, "deploy") || !strcmp(ev->action, "finetune_start");
}

static void recompute_next_cut(struct sim *s)
{
    s->next_cut = INT64_MAX;
    for (size_t i = 0; i < s->nactive; i++)
        if (s->deps[s->active[i]].seg_end < s->next_cut)
            s->next_cut = s->deps[s->active[i]].seg_end;
}

static int start_segment(struct sim *s, struct dep *d, int64_t t)
{
    const struct tly_price *p;
    int64_t cut;

    d->billed |= segment_billable(d, t);
    if (!s->charging) {
        d->seg_start = t;
        return TLY_OK;
    }
    if (t >= s->as_of)
        return TLY_OK;
    p = tly_price_at(d->hw, t);
    cut = tly_next_cut(d->hw, t);
    d->seg_start = t;
    d->seg_end = cut < s->as_of ? cut : s->as_of;
    d->seg_rate = TLY_UNPRICED;
    if (p && tly_segment_rate(p->per_hour, sim_dep_multiplier(d), &d->seg_rate))
        s->overflow = 1;
    d->seg_billable = segment_billable(d, t);
    d->seg_consumed = 0;
    if (tly_grow(&s->active, &s->active_cap, s->nactive + 1, sizeof *s->active))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    s->active[s->nactive++] = (int)(d - s->deps);
    if (d->seg_end < s->next_cut)
        s->next_cut = d->seg_end;
    return TLY_OK;
}

int sim_seg_open(const struct sim *s, const struct dep *d)
{
    for (size_t i = 0; i < s->nactive; i++)
        if (&s->deps[s->active[i]] == d)
            return 1;
    return 0;
}

struct late_ctx {
    struct sim *s;
    int dep;
    int err;
};

/* Ids are at most 128 bytes (inputs.md, checked at ingest): "cat\x1fid\x1fday" fits. */
static int day_value(const struct tly_strmap *m, const char *key, int64_t day)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s\x1f%lld", key, (long long)day);
    return tly_strmap_get(m, probe);
}

/* The second of a closed day from which it ran unpriced at its close, or -1. */
static int unpriced_since(const struct sim *s, const struct dep *d, int64_t day)
{
    return day_value(&s->unpriced_days, d->key, day);
}

int sim_listed(const struct sim *s, const char *key, int64_t day)
{
    return day_value(&s->listed_days, key, day) >= 0;
}

/*
 * The first instant of a closed day's late usage (spec §10: a late_charge
 * row's ts), or INT64_MAX when it can have none: from the deployment's
 * first late event on, since before it the lifecycle is the one its closed
 * cycle charged, and from the first second the day ran unpriced at its
 * close, since a card may price that now.  A day that was priced when it
 * closed is not priced again (decisions, pipeline/README.md).
 */
static int64_t late_start(const struct sim *s, const struct dep *d, int64_t day)
{
    int64_t day_start = day * TLY_DAY_SECONDS, start = INT64_MAX;
    int unpriced = unpriced_since(s, d, day);

    if (d->late_flag == LATE_EVENTS && day >= tly_day_of(d->late_from))
        start = d->late_from > day_start ? d->late_from : day_start;
    if (unpriced >= 0 && day_start + unpriced < start)
        start = day_start + unpriced;
    return start;
}

static int acc_with_hardware(struct sim *s, struct dep *d, enum acc_kind kind, int64_t ts,
                             int64_t charge, int64_t secs, int64_t post_ts);

/*
 * Closed time metered again.  The whole day is summed, since its frozen
 * usage is subtracted whole (reconcile.c subtract_frozen_usage); the row's
 * instant is where the late usage starts.  Late time with no price, on a
 * day that had none at its close, is listed as unpriced like open time:
 * a later card charges it (§8), and it is never dropped silently.
 */
static void late_segment(void *ctx, int64_t from, int64_t to, int64_t charge)
{
    struct late_ctx *c = ctx;
    struct dep *d = &c->s->deps[c->dep];
    int64_t day = tly_day_of(from), start;

    if (c->err || (start = late_start(c->s, d, day)) == INT64_MAX)
        return;
    if (charge != TLY_UNPRICED)
        c->err = sim_acc(c->s, ACC_LATE, c->dep, -1, from > start ? from : start, charge, to - from, 0, 1,
                         c->s->open_start);
    else if (d->late_flag == LATE_EVENTS && from >= d->late_from && unpriced_since(c->s, d, day) < 0)
        c->err = acc_with_hardware(c->s, d, ACC_UNPRICED, from, 0, to - from, c->s->open_start);
}

/*
 * Late closed time that is not chargeable: listed with what it would have
 * cost (§10), from the first late event on.  A day its close listed
 * already is summed whole, like late usage, and reconcile.c
 * (subtract_frozen_usage) nets out what its frozen rows listed, so late
 * events never hide and time is never listed twice; time before the first
 * late event counts only for that, the row starts where not-chargeable
 * time does after it (none: no row).  What is left to list is known by
 * its credits alone: late time that is also unpriced (0 credits) on such
 * a day adds nothing.
 */
static void late_not_chargeable(void *ctx, int64_t from, int64_t to, int64_t charge)
{
    struct late_ctx *c = ctx;
    struct sim *s = c->s;
    struct dep *d = &s->deps[c->dep];
    int64_t credits = charge == TLY_UNPRICED ? 0 : charge;
    struct acc_row *r;
    int listed;

    if (c->err || d->late_flag != LATE_EVENTS || tly_day_of(from) < tly_day_of(d->late_from))
        return;
    listed = sim_listed(s, d->key, tly_day_of(from));
    if (from < d->late_from) {
        if (!listed || (c->err = sim_acc(s, ACC_NOT_CHARGEABLE, c->dep, -1, from, credits, to - from,
                                         0, 1, s->open_start)))
            return;
    } else if ((c->err = acc_with_hardware(s, d, ACC_NOT_CHARGEABLE, from, credits, to - from,
                                           s->open_start))) {
        return;
    }
    r = &s->rows[d->last_acc[ACC_NOT_CHARGEABLE]];
    /* a day's pieces come in time order: the first past the late event starts the row */
    if (from < d->late_from)
        r->first_ts = INT64_MAX;
    else if (r->first_ts == INT64_MAX)
        r->first_ts = from;
    r->less_listed |= listed;
}

/* A piece of closed time metered again, judged chargeable at its own start (§10, a card's rows differ). */
static void late_piece(void *ctx, int64_t from, int64_t to, int64_t charge)
{
    struct late_ctx *c = ctx;

    if (segment_billable(&c->s->deps[c->dep], from))
        late_segment(ctx, from, to, charge);
    else
        late_not_chargeable(ctx, from, to, charge);
}

/*
 * A not-chargeable or unpriced segment.  Its row names the hardware of the
 * date's first such segment: the deployment's hardware at the end of the
 * replay may be another (a scale onto priced hardware since), and a nightly
 * run that froze the row must agree with a batch one (spec §9.2).
 */
static int acc_with_hardware(struct sim *s, struct dep *d, enum acc_kind kind, int64_t ts,
                             int64_t charge, int64_t secs, int64_t post_ts)
{
    struct acc_row *r;
    int err = sim_acc(s, kind, (int)(d - s->deps), -1, ts, charge, secs, 0,
                      kind == ACC_NOT_CHARGEABLE, post_ts);

    if (err)
        return err;
    r = &s->rows[d->last_acc[kind]];
    if (!r->hardware) {
        r->hardware = d->hardware ? d->hardware : "";
        r->hw = d->hw;
    }
    return TLY_OK;
}

/*
 * Ends the open segment of 'd' at 't' (accrual up to t is already consumed)
 * and books it by UTC date: chargeable time as usage, unpriced time and
 * not-chargeable time as discrepancies.  While replaying closed time the
 * segment is only metered, for deployments whose late events may change it.
 */
int sim_close_segment(struct sim *s, struct dep *d, int64_t t)
{
    int idx = (int)(d - s->deps), err = TLY_OK;
    int64_t charge;

    if (!s->charging) {
        d->billed |= !d->billed && span_billable(d, d->seg_start, t);
        if (d->late_flag && t > d->seg_start) {
            struct late_ctx c = { s, idx, TLY_OK };
            if (tly_meter_span(d->hw, sim_dep_multiplier(d), d->seg_start, t, late_piece, &c))
                s->overflow = 1;
            return c.err;
        }
        return TLY_OK;
    }
    for (size_t i = 0; i < s->nactive; i++)
        if (s->active[i] == idx) {
            s->active[i] = s->active[--s->nactive];
            break;
        }
    if (t > d->seg_start) {
        int64_t secs = t - d->seg_start;
        charge = d->seg_rate == TLY_UNPRICED ? 0 : tly_charge(d->seg_rate, secs);
        if (!d->seg_billable)
            err = acc_with_hardware(s, d, ACC_NOT_CHARGEABLE, d->seg_start, charge, secs, d->seg_start);
        else if (d->seg_rate == TLY_UNPRICED)
            err = acc_with_hardware(s, d, ACC_UNPRICED, d->seg_start, 0, secs, d->seg_start);
        else
            err = sim_acc(s, ACC_USAGE, idx, -1, d->seg_start, charge, secs, 0, 1, d->seg_start);
    }
    recompute_next_cut(s);
    return err;
}

/* ------------------------------------------------------------- accrual */

/*
 * The accrual not yet consumed, and the figures it moves, are summed in 128
 * bits and saturated: past int64 an account is refused anyway (its used
 * overflows in add()), and the bisections that ask must not wrap first.
 */
static int64_t saturate(__int128 v)
{
    return v > INT64_MAX ? INT64_MAX : v < -INT64_MAX ? -INT64_MAX : (int64_t)v;
}

static __int128 pending_at(const struct sim *s, int64_t t)
{
    __int128 sum = 0;
    for (size_t i = 0; i < s->nactive; i++) {
        const struct dep *d = &s->deps[s->active[i]];
        if (d->seg_billable && d->seg_rate != TLY_UNPRICED)
            sum += tly_charge(d->seg_rate, t - d->seg_start) - d->seg_consumed;
    }
    return sum;
}

int64_t sim_balance_at(const struct sim *s, int64_t t)
{
    return saturate(tly_wallet_balance(&s->wallet[POOL_CREDITS]) - pending_at(s, t));
}

int64_t sim_used_at(const struct sim *s, int64_t t)
{
    return saturate(s->stmt[POOL_CREDITS].used + pending_at(s, t));
}

static int accruing(const struct sim *s)
{
    for (size_t i = 0; i < s->nactive; i++) {
        const struct dep *d = &s->deps[s->active[i]];
        if (d->seg_billable && d->seg_rate != TLY_UNPRICED && d->seg_rate > 0)
            return 1;
    }
    return 0;
}

/* Consumes hosting accrued up to 't' (semantics §3: drawn second by second). */
static void accrue_to(struct sim *s, int64_t t)
{
    for (size_t i = 0; i < s->nactive; i++) {
        struct dep *d = &s->deps[s->active[i]];
        int64_t a;
        if (!d->seg_billable || d->seg_rate == TLY_UNPRICED)
            continue;
        a = tly_charge(d->seg_rate, t - d->seg_start) - d->seg_consumed;
        if (!a)
            continue;
        d->seg_consumed += a;
        tly_wallet_draw(&s->wallet[POOL_CREDITS], a);
        add(s, &s->stmt[POOL_CREDITS].used, a);
        add(s, &s->stmt[POOL_CREDITS].used_cat[d->cat], a);
    }
}

int sim_anything_charged_running(const struct sim *s)
{
    for (size_t i = 0; i < s->ndeps; i++) {
        const struct dep *d = &s->deps[i];
        if (d->running && d->chargeable && segment_billable(d, s->now))
            return 1;
    }
    return 0;
}

/* -------------------------------------------------------------- cycles */

static int64_t cycle_end_of(const struct sim *s, int64_t start)
{
    return tly_cycle_next(s->anchor_day, tly_day_of(start)) * TLY_DAY_SECONDS;
}

static void open_cycle(struct sim *s, int64_t t)
{
    for (int p = 0; p < NPOOL; p++) {
        memset(&s->stmt[p], 0, sizeof s->stmt[p]);
        s->stmt[p].cycle_start = t;
        s->stmt[p].cycle_end = cycle_end_of(s, t);
        /* opening = balance at the start, after expiries at that instant */
        s->stmt[p].opening = tly_wallet_balance(&s->wallet[p]);
    }
    thresholds_new_cycle(s);
}

/* spec §8: a cycle closes at the first run or report whose as-of is ≥ end + grace. */
static int finish_cycle(struct sim *s, int64_t end)
{
    int closing = s->close_cycles && end + s->grace <= s->as_of;
    for (int p = 0; p < NPOOL; p++) {
        if (tly_grow(&s->stmts, &s->stmts_cap, s->nstmts + 1, sizeof *s->stmts))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        s->stmt[p].closed = closing;
        s->stmts[s->nstmts++] = s->stmt[p];
    }
    if (closing) {
        s->new_closed_end = end;
        return sim_snapshot(s, end);
    }
    return TLY_OK;
}

/* ------------------------------------------------------------ entities */

static int join_key(char **out, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    *out = tly_malloc(la + lb + 2);
    if (!*out)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    memcpy(*out, a, la);
    (*out)[la] = '\x1f';
    memcpy(*out + la + 1, b, lb + 1);
    return TLY_OK;
}

static enum cat cat_of(const char *category)
{
    for (int c = 0; c < NCAT; c++)
        if (!strcmp(cat_names[c], category))
            return (enum cat)c;
    return CAT_MODEL;
}

/* spec README "The three editions": which credit categories each edition charges. */
static int edition_has(const struct sim *s, const char *category)
{
    if (!strcmp(category, "model") || !strcmp(category, "guardrail") || !strcmp(category, "finetune"))
        return 1;
    if (!strcmp(category, "script"))
        return strcmp(s->edition, "gale") != 0;
    if (!strcmp(category, "ocr") || !strcmp(category, "browser"))
        return !strcmp(s->edition, "process");
    return 0;
}

static struct dep *find_dep(struct sim *s, const char *category, const char *deployment_id,
                            char **keybuf)
{
    int idx;
    if (join_key(keybuf, category, deployment_id))
        return NULL;
    idx = tly_strmap_get(&s->dep_index, *keybuf);
    return idx >= 0 ? &s->deps[idx] : NULL;
}

/* The instant of the first event of 'd' that arrived after its cycle closed (mark_late_keys). */
static int64_t first_late_event(const struct sim *s, const struct dep *d)
{
    for (size_t i = 0; i < s->ndevs; i++) {
        const struct dep_event *ev = &s->devs[i];
        if (ev->late && strcmp(ev->action, "delete") && !strcmp(sim_dep_key_category(ev), d->category) &&
            !strcmp(ev->deployment_id, d->deployment_id))
            return ev->ts;
    }
    return INT64_MAX;
}

static int new_dep(struct sim *s, char *key, const struct dep_event *ev, int is_job, struct dep **out)
{
    struct dep *d;
    if (tly_grow(&s->deps, &s->deps_cap, s->ndeps + 1, sizeof *s->deps)) {
        tly_free(key);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    d = &s->deps[s->ndeps];
    memset(d, 0, sizeof *d);
    d->key = key;
    d->is_job = is_job;
    d->category = is_job ? "finetune" : ev->category;
    d->cat = cat_of(d->category);
    d->resource_id = ev->resource_id;
    d->deployment_id = ev->deployment_id;
    d->chargeable = edition_has(s, d->category);
    d->last_deployed = d->last_updated = TLY_NO_DAY;
    d->last_ts = INT64_MIN;
    d->late_flag = tly_strmap_get(&s->late_keys, key);
    if (d->late_flag < 0)
        d->late_flag = LATE_NONE;
    d->late_from = d->late_flag == LATE_EVENTS ? first_late_event(s, d) : INT64_MAX;
    for (int k = 0; k < NACC; k++)
        d->last_acc[k] = -1;
    s->ndeps++;                         /* owns 'key' from here: freed with the sim */
    if (tly_strmap_put(&s->dep_index, key, (int)s->ndeps - 1))
        return TLY_ERR_NOMEM;
    *out = d;
    return TLY_OK;
}

int sim_runnable(struct sim *s, const char *kind, const char *resource_id, struct runnable **out)
{
    char probe[320], *key;
    size_t lk = strlen(kind), lr = strlen(resource_id);
    int idx, err;
    struct runnable *r;

    /*
     * The lookup runs once per run row: no allocation unless the runnable is
     * new.  Ids are at most 128 bytes (inputs.md, checked at ingest), so the
     * probe always holds the key.
     */
    if (lk + lr + 2 > sizeof probe)
        return tly_error(TLY_ERR_INPUT, "runnable id '%.40s…' longer than ingest allows", resource_id);
    memcpy(probe, kind, lk);
    probe[lk] = '\x1f';
    memcpy(probe + lk + 1, resource_id, lr + 1);
    if ((idx = tly_strmap_get(&s->runnable_index, probe)) >= 0) {
        *out = &s->runnables[idx];
        return TLY_OK;
    }
    if ((err = join_key(&key, kind, resource_id)))
        return err;
    if (tly_grow(&s->runnables, &s->runnables_cap, s->nrunnables + 1, sizeof *s->runnables)) {
        tly_free(key);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    r = &s->runnables[s->nrunnables];
    memset(r, 0, sizeof *r);
    r->map_key = key;
    if (!(r->ids = tly_malloc(lk + lr + 2))) {
        tly_free(key);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    memcpy(r->ids, kind, lk + 1);
    memcpy(r->ids + lk + 1, resource_id, lr + 1);
    r->kind = r->ids;
    r->resource_id = r->ids + lk + 1;
    r->chargeable = !strcmp(kind, s->runnable_kind);
    r->status = "Undeployed";
    r->last_active = TLY_NO_DAY;
    for (int k = 0; k < NACC; k++)
        r->last_acc[k] = -1;
    s->nrunnables++;                    /* owned from here: freed with the sim */
    if ((err = tly_strmap_put(&s->runnable_index, r->map_key, (int)s->nrunnables - 1)))
        return err;
    *out = r;
    return TLY_OK;
}

static int resource_deleted(const struct sim *s, const char *category, const char *resource_id)
{
    size_t lc = strlen(category);
    for (size_t i = 0; i < s->ndeleted; i++)
        if (!strncmp(s->deleted[i], category, lc) && s->deleted[i][lc] == '\x1f' &&
            !strcmp(s->deleted[i] + lc + 1, resource_id))
            return 1;
    return 0;
}

/* ----------------------------------------------------------- lifecycle */

/*
 * Closed time is replayed without listing what its cycles already listed;
 * an event that arrived after its cycle closed is listed now, and frozen
 * with the late charges of the open cycle (§8).
 */
static int odd(struct sim *s, const struct dep_event *ev, const char *why)
{
    if (!s->charging && !ev->late)
        return TLY_OK;
    return sim_discrepancy(s, "odd_lifecycle", ev->ts, sim_dep_key_category(ev), ev->resource_id,
                           ev->deployment_id, 0, 0, why, ev->late ? s->open_start : ev->ts);
}

/*
 * An event the odd-lifecycle table ignores (§2): listed, and kept out of
 * every tab column, names included (§10 "Ignored events ... appear only in
 * discrepancies.csv").  'ev' is one of s->devs.
 */
static int ignored(struct sim *s, const struct dep_event *ev, const char *why)
{
    s->devs[ev - s->devs].ignored = 1;
    return odd(s, ev, why);
}

static int ignored_not_running(struct sim *s, const struct dep_event *ev)
{
    return ignored(s, ev, !strcmp(ev->action, "scale") ? "scale of a deployment not running: ignored"
                          : !strcmp(ev->action, "finetune_end") ? "finetune_end without start: ignored"
                                                                : "undeploy of a deployment not running: ignored");
}

static void take_params(struct dep *d, const struct dep_event *ev, int first)
{
    if (ev->hardware) {
        d->hardware = ev->hardware;
    }
    if (ev->units)
        d->units = ev->units;
    else if (first)
        d->units = 1;
    if (ev->replicas)
        d->replicas = ev->replicas;
    else if (first)
        d->replicas = 1;
}

static void take_display(struct dep *d, const struct dep_event *ev)
{
#define TAKE(f) if (ev->f) d->f = ev->f
    TAKE(deployment_name);
    TAKE(deployment_type);
    TAKE(language);
    TAKE(endpoint);
#undef TAKE
}

/*
 * outputs.md "Where each tab column comes from": name and owner are the
 * latest non-empty values in the resource's deployments.csv events.  A
 * model's type and a script's language version are columns of the resource
 * too (models.csv, scripts.csv), so they follow the same rule rather than
 * whichever deployment changed last (decisions, pipeline/README.md).  An
 * event the odd-lifecycle table ignored counts for none (§10), but for a
 * ghost's row (keep_ghost): its closed charge ran on them.  Called once a
 * deployment for the tabs, and for the few e-mail items: a scan.
 */
void sim_resource_text(const struct sim *s, const char *category, const char *resource_id, int64_t upto,
                       int with_ignored, struct sim_resource_text *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < s->ndevs && s->devs[i].ts <= upto; i++) {
        const struct dep_event *ev = &s->devs[i];
        if ((ev->ignored && !with_ignored) || strcmp(ev->category, category) ||
            strcmp(ev->resource_id, resource_id))
            continue;
        if (ev->resource_name)
            t->name = ev->resource_name;
        if (ev->owner)
            t->owner = ev->owner;
        if (ev->model_type)
            t->model_type = ev->model_type;
        if (ev->language_version)
            t->language_version = ev->language_version;
    }
}

/* An undeploy or a fine-tuning job's events seldom repeat the name: the tabs' one so far. */
const char *sim_resource_name(const struct sim *s, const struct dep *d)
{
    struct sim_resource_text t;
    sim_resource_text(s, d->is_job ? "model" : d->category, d->resource_id, s->now, 0, &t);
    return t.name;
}

static int script_item(struct sim *s, const struct dep *d, const struct dep_event *ev, const char *item)
{
    char key[256];
    json_t *j;

    /* not chargeable usage makes "no e-mail item" (§10), on another category's hardware too */
    if (!s->charging || d->cat != CAT_SCRIPT || !sim_dep_charged(s, d, ev->ts))
        return TLY_OK;
    j = json_pack("{s:s, s:s, s:s?, s:s?}", "resource_id", d->resource_id, "deployment_id",
                  d->deployment_id, "name", sim_resource_name(s, d), "endpoint", d->endpoint);
    if (!j)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(key, sizeof key, "%s:%.200s", item, ev->event_id);
    return sim_item(s, item, NULL, 0, ev->ts, key, j);
}

/*
 * A running deployment takes a scale's (or a redeploy's) parameters from
 * its instant on.  Its segment ends there in both passes: the closed replay
 * meters it too, for late data (a late deploy before an in-time one).
 */
static int scale_running(struct sim *s, struct dep *d, const struct dep_event *ev)
{
    int err;
    if ((s->charging ? sim_seg_open(s, d) : 1) && (err = sim_close_segment(s, d, ev->ts)))
        return err;
    take_params(d, ev, 0);
    d->hw = tly_card_find(s->card, d->hardware);
    return start_segment(s, d, ev->ts);
}

/* deploy / finetune_start: starts a deployment, or acts as scale when it runs (§2 table). */
static int on_start(struct sim *s, struct dep *d, const struct dep_event *ev)
{
    int err;
    /* outputs.md: "the date of the latest `deploy`", one acting as scale too */
    if (!d->is_job)
        d->last_deployed = tly_day_of(ev->ts);
    if (d->running) {
        /*
         * Still a deploy (§6 lists every deploy while disabled), acting as
         * scale (§2): judged on the hardware it moves to, as a first deploy is.
         */
        if ((err = odd(s, ev, d->is_job ? "finetune_start of a running job: acts as scale"
                                        : "deploy of a running deployment: acts as scale")) ||
            (err = scale_running(s, d, ev)))
            return err;
        return s->charging ? enforce_check_deploy(s, ev, d) : TLY_OK;
    }
    take_params(d, ev, 1);
    d->hw = tly_card_find(s->card, d->hardware);
    d->running = d->started = 1;
    d->stopped = 0;
    if (s->charging) {
        if ((err = enforce_check_deploy(s, ev, d)))
            return err;
        if (!strcmp(ev->action, "deploy") && (err = script_item(s, d, ev, "script_deployed")))
            return err;
    }
    return start_segment(s, d, ev->ts);
}

static int on_scale(struct sim *s, struct dep *d, const struct dep_event *ev)
{
    if (!d->running) {
        take_params(d, ev, 0);          /* a stopped one scaling is overrun evidence */
        d->hw = tly_card_find(s->card, d->hardware);
        return TLY_OK;
    }
    return scale_running(s, d, ev);
}

static int end_running(struct sim *s, struct dep *d, int64_t t)
{
    int err = TLY_OK;
    if (d->running && (s->charging ? sim_seg_open(s, d) : 1))
        err = sim_close_segment(s, d, t);
    d->running = 0;
    return err;
}

static int on_end(struct sim *s, struct dep *d, const struct dep_event *ev)
{
    int err;
    if (!d->running) {
        /*
         * Stopped for credits: this is the overrun's evidence and its end
         * (enforce.c), so a later undeploy or scale is odd again (§2 table).
         */
        d->stopped = 0;
        return TLY_OK;
    }
    if ((err = end_running(s, d, ev->ts)))
        return err;
    if (!strcmp(ev->action, "undeploy"))
        return script_item(s, d, ev, "script_undeployed");
    return TLY_OK;
}

/* spec §10 "Delete": ends every deployment and job of the resource. */
static int on_delete(struct sim *s, const struct dep_event *ev)
{
    char *key;
    int err;

    if ((err = join_key(&key, ev->category, ev->resource_id)))
        return err;
    if (tly_grow(&s->deleted, &s->deleted_cap, s->ndeleted + 1, sizeof *s->deleted)) {
        tly_free(key);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    s->deleted[s->ndeleted++] = key;
    for (size_t i = 0; i < s->ndeps; i++) {
        struct dep *d = &s->deps[i];
        const char *cat = d->is_job ? "model" : d->category;
        if (strcmp(cat, ev->category) || strcmp(d->resource_id, ev->resource_id))
            continue;
        if ((err = end_running(s, d, ev->ts)))
            return err;
        d->deleted = 1;
        sim_dep_touch(d, ev->ts);
    }
    return TLY_OK;
}

static int keep_key(struct sim *s, char *key);

/*
 * An agent, tool or workflow may have several deployments (§10: keyed by
 * category and deployment_id); it is Deployed while any of them runs
 * (outputs.md), and the odd-lifecycle table applies to each one.
 */
static int runnable_event(struct sim *s, const struct dep_event *ev)
{
    struct runnable *r;
    char *key;
    int err, running, deploy = !strcmp(ev->action, "deploy");

    if ((err = sim_runnable(s, ev->category, ev->resource_id, &r)))
        return err;
    if (!strcmp(ev->action, "delete")) {
        r->status = "Deleted";
        return on_delete(s, ev);
    }
    if ((err = join_key(&key, ev->category, ev->deployment_id)))
        return err;
    running = tly_strmap_get(&s->runnable_deps, key) == 1;
    if (deploy == running) {            /* a deploy of a running one; anything else of one not running */
        tly_free(key);
        return running ? odd(s, ev, "deploy of a running deployment") : ignored_not_running(s, ev);
    }
    if (!strcmp(ev->action, "scale")) {
        tly_free(key);                  /* nothing a runs tab shows changes */
        return TLY_OK;
    }
    running = !running;
    r->running += running ? 1 : -1;
    r->deployed |= running;
    r->status = r->running ? "Deployed" : "Undeployed";
    if ((err = keep_key(s, key)))
        return err;
    return tly_strmap_put(&s->runnable_deps, key, running);
}

static int is_runnable_category(const char *c)
{
    return !strcmp(c, "agent") || !strcmp(c, "workflow") || !strcmp(c, "tool");
}

/* A scale's value: the event's, or the one kept when it is empty (§10 "Scale"). */
static int64_t kept(int64_t given, int64_t current)
{
    return given ? given : current;
}

/*
 * inputs.md bounds units × replicas to 100,000 ("a row error"), but a
 * scale that leaves one of them empty keeps the deployment's value, so
 * only the lifecycle knows the product.  Such a scale (or a deploy acting
 * as one) is ignored and listed, as a refused row is: charging it would
 * bill capacity the input rules forbid.  A start takes 1 for an empty one,
 * and a job has no replicas, so neither can pass the bound.
 */
static int over_units_bound(const struct dep *d, const struct dep_event *ev)
{
    int scale = !strcmp(ev->action, "scale") || (d->running && !strcmp(ev->action, "deploy"));
    return scale && !d->is_job && kept(ev->units, d->units) * kept(ev->replicas, d->replicas) > TLY_UNITS_MAX;
}

static int ignored_over_units_bound(struct sim *s, const struct dep *d, const struct dep_event *ev)
{
    char why[160];
    snprintf(why, sizeof why, "%s to %lld units x %lld replicas, over %d: ignored", ev->action,
             (long long)kept(ev->units, d->units), (long long)kept(ev->replicas, d->replicas),
             TLY_UNITS_MAX);
    return ignored(s, ev, why);
}

/*
 * A late delete dated before every event of a deployment makes the replay
 * ignore them all, "after delete" (§2), while the charge its closed cycles
 * metered from them stands (§8).  Its tab row must still show that charge
 * (the tabs sum to the window's credits, §9), so the deployment is kept as
 * a ghost: never started, Deleted, with the hardware and names of the
 * events its closed time ran on.  reconcile.c writes a ghost's row only when
 * the ledger holds usage of it.
 */
static int keep_ghost(struct sim *s, const struct dep_event *ev)
{
    int is_job = !strncmp(ev->action, "finetune_", 9);
    int start = sim_is_start(ev);
    char *key = NULL;
    struct dep *d;
    int err;

    if (!strcmp(ev->action, "delete"))
        return TLY_OK;
    d = find_dep(s, sim_dep_key_category(ev), ev->deployment_id, &key);
    if (!key)
        return TLY_ERR_NOMEM;
    if (d) {
        tly_free(key);
        if (!d->ghost)
            return TLY_OK;              /* a real row, from before the delete */
    } else if (!start) {
        tly_free(key);
        return TLY_OK;
    } else {
        if ((err = new_dep(s, key, ev, is_job, &d)))
            return err;
        d->ghost = d->deleted = 1;
    }
    take_params(d, ev, start && !d->units);
    take_display(d, ev);
    if (start && !is_job)
        d->last_deployed = tly_day_of(ev->ts);
    sim_dep_touch(d, ev->ts);
    return TLY_OK;
}

static int apply_dep_event(struct sim *s, const struct dep_event *ev)
{
    int is_job = !strncmp(ev->action, "finetune_", 9);
    char *key = NULL;
    struct dep *d;
    int err;

    if (resource_deleted(s, ev->category, ev->resource_id)) {
        if (!is_runnable_category(ev->category) && (err = keep_ghost(s, ev)))
            return err;
        return ignored(s, ev, "event after delete of the resource: ignored");
    }
    if (is_runnable_category(ev->category))
        return runnable_event(s, ev);
    if (!strcmp(ev->action, "delete"))
        return on_delete(s, ev);
    d = find_dep(s, sim_dep_key_category(ev), ev->deployment_id, &key);
    if (!key)
        return TLY_ERR_NOMEM;
    if (!d) {
        if (!sim_is_start(ev)) {
            tly_free(key);
            return ignored_not_running(s, ev);
        }
        if ((err = new_dep(s, key, ev, is_job, &d)))
            return err;
    } else {
        tly_free(key);
    }
    if (!d->running && !d->stopped && !sim_is_start(ev))
        return ignored_not_running(s, ev);
    if (over_units_bound(d, ev))
        return ignored_over_units_bound(s, d, ev);
    take_display(d, ev);
    sim_dep_touch(d, ev->ts);
    if (sim_is_start(ev))
        return on_start(s, d, ev);
    if (!strcmp(ev->action, "scale"))
        return on_scale(s, d, ev);
    return on_end(s, d, ev);
}

/* --------------------------------------------------------------- wallet */

static int apply_credit(struct sim *s, const struct credit_event *ev)
{
    struct statement *st = &s->stmt[ev->pool];
    if (!strcmp(ev->type, "adjust") && ev->amount < 0) {
        /* a negative adjust is a debit at ts: the statement's "adjusted" */
        tly_wallet_draw(&s->wallet[ev->pool], -ev->amount);
        add(s, &st->adjusted, -ev->amount);
        return TLY_OK;
    }
    add(s, &st->granted, ev->amount);
    return tly_wallet_grant(&s->wallet[ev->pool], ev->txn_id, ev->type, ev->ts,
                            ev->expires_at, ev->amount);
}

/*
 * A late credit applies at the open start (§8).  A grant whose expires_at
 * had passed by then is granted and expires there in full: it was gone
 * before any debt of the open cycle, so it pays none, and no debit can draw
 * from it (pipeline/README.md "Late credits").
 */
static int apply_late_credit(struct sim *s, const struct credit_event *ev, int64_t start)
{
    struct statement *st = &s->stmt[ev->pool];
    if (ev->amount <= 0 || ev->expires_at > start)
        return apply_credit(s, ev);
    add(s, &st->granted, ev->amount);
    add(s, &st->expired, ev->amount);
    return tly_wallet_grant_expired(&s->wallet[ev->pool], ev->txn_id, ev->type, ev->ts, ev->expires_at);
}

static int apply_run(struct sim *s, int64_t ts, const char *kind, const char *resource_id)
{
    struct runnable *r;
    int err;

    if ((err = sim_runnable(s, kind, resource_id, &r)))
        return err;
    s->last_run_ts = ts;
    if (!r->chargeable)
        return sim_acc(s, ACC_NOT_CHARGEABLE, -1, (int)(r - s->runnables), ts, 0, 0, 1, 0, ts);
    if ((err = enforce_run(s, r, ts)))
        return err;
    tly_wallet_draw(&s->wallet[POOL_RUNS], TLY_MICRO);
    add(s, &s->stmt[POOL_RUNS].used, TLY_MICRO);
    r->last_active = tly_day_of(ts);
    return sim_acc(s, ACC_USAGE, -1, (int)(r - s->runnables), ts, 0, 0, 1, 0, ts);
}

/* -------------------------------------------------------------- the loop */

static int64_t next_run_ts(struct sim *s)
{
    if (s->runs_pending)
        return s->pending_first;
    return s->runs_has_row ? sqlite3_column_int64(s->runs, 0) : INT64_MAX;
}

/*
 * The runs cursor reads one day at a time (the time index leads with the
 * day, ledger.c migration 12): s->run_days yields the account's days with
 * runs and the first instant of each, and s->runs the runs of one of them,
 * from the instant sought on.
 *
 * Lazy days.  Most days are quiet, and a quiet day needs only its first
 * instant, which run_day holds.  Reading its first run instead cost an
 * index seek and a row of the runs table, whose pages mix every account:
 * a quarter of a night's reconcile.  So a day that starts whole (no run of
 * it before the instant sought, none at or after the as-of) is only noted
 * (runs_pending) until a run of it must be applied (read_pending_day).
 * TALLY_REPLAY_EVERY_RUN (no day_runs) keeps the eager cursor: it is the
 * differential test of this shortcut too.
 */
static int day_is_whole(const struct sim *s, int64_t day, int64_t from)
{
    return s->day_runs && day * TLY_DAY_SECONDS >= from && (day + 1) * TLY_DAY_SECONDS <= s->as_of;
}

/* Binds s->runs to the runs of 'day' from 'from' on; returns its first step. */
static int read_day(struct sim *s, int64_t day, int64_t from)
{
    sqlite3_reset(s->runs);
    sqlite3_bind_int64(s->runs, 2, from);
    sqlite3_bind_int64(s->runs, 4, day);
    return sqlite3_step(s->runs);
}

/* After a step of s->runs that did not end its day. */
static int on_row(struct sim *s, int rc)
{
    s->runs_has_row = rc == SQLITE_ROW;
    return rc == SQLITE_ROW ? TLY_OK : sim_ledger_error(s, "reading runs");
}

/* Goes on to the next day with runs after the current one's are read. */
static int next_day(struct sim *s, int64_t from)
{
    int rc = SQLITE_DONE, day_rc;

    s->runs_has_row = 0;
    while (rc == SQLITE_DONE) {
        int64_t day;
        if ((day_rc = sqlite3_step(s->run_days)) != SQLITE_ROW)
            return day_rc == SQLITE_DONE ? TLY_OK : sim_ledger_error(s, "reading runs");
        day = sqlite3_column_int64(s->run_days, 0);
        if (day_is_whole(s, day, from)) {
            s->runs_pending = 1;
            s->pending_day = day;
            s->pending_first = sqlite3_column_int64(s->run_days, 1);
            return TLY_OK;
        }
        rc = read_day(s, day, from);
    }
    return on_row(s, rc);
}

static int step_runs(struct sim *s)
{
    int rc = sqlite3_step(s->runs);

    if (rc == SQLITE_DONE)          /* run_days is on the day just read */
        return next_day(s, (sqlite3_column_int64(s->run_days, 0) + 1) * TLY_DAY_SECONDS);
    return on_row(s, rc);
}

/* Reads the runs of the day only noted so far. */
static int read_pending_day(struct sim *s)
{
    int rc = read_day(s, s->pending_day, s->pending_day * TLY_DAY_SECONDS);

    s->runs_pending = 0;
    if (rc == SQLITE_DONE)
        return next_day(s, (s->pending_day + 1) * TLY_DAY_SECONDS);
    return on_row(s, rc);
}

/* Puts the cursor on the first run at or after 'from'. */
static int seek_runs(struct sim *s, int64_t from)
{
    sqlite3_reset(s->run_days);
    sqlite3_bind_int64(s->run_days, 2, tly_day_of(from));
    s->runs_pending = 0;
    return next_day(s, from);
}

/* Applies the runs at instant t, in event_id order. */
static int apply_runs_at(struct sim *s, int64_t t)
{
    int err;

    if (s->runs_pending && s->pending_first == t && (err = read_pending_day(s)))
        return err;
    while (next_run_ts(s) == t) {
        if ((err = apply_run(s, t, (const char *)sqlite3_column_text(s->runs, 2),
                             (const char *)sqlite3_column_text(s->runs, 3))))
            return err;
        if ((err = step_runs(s)))
            return err;
    }
    return TLY_OK;
}

/*
 * Moves time to 'target' through the accrual-only seconds before it.  When
 * the negative limit is passed inside, time stops there instead (t*), the
 * deployments stop and *early is set.
 */
static int advance(struct sim *s, int64_t target, int *early)
{
    int err;
    *early = 0;
    if (target - 1 > s->now && accruing(s)) {
        int64_t lo = s->now + 1, hi = target - 1, tstar = 0;
        if (sim_anything_charged_running(s))
            tstar = enforce_find_stop(s, lo, hi);
        if (tstar)
            hi = tstar;
        if ((err = thresholds_search(s, lo, hi)))
            return err;
        if (tstar) {
            accrue_to(s, tstar);
            s->now = tstar;
            *early = 1;
            return enforce_stop_all(s, tstar);
        }
    }
    accrue_to(s, target);
    s->now = target;
    return TLY_OK;
}

static int cut_segments(struct sim *s, int64_t t)
{
    int err;
    for (size_t i = 0; i < s->nactive;) {
        struct dep *d = &s->deps[s->active[i]];
        if (d->seg_end != t) {
            i++;
            continue;
        }
        if ((err = sim_close_segment(s, d, t)))   /* removes it from active */
            return err;
        if (d->running && (err = start_segment(s, d, t)))
            return err;
    }
    return TLY_OK;
}

static int events_at(struct sim *s, int64_t t, size_t *ci, size_t *di)
{
    int err;
    while (*ci < s->ncevs && s->cevs[*ci].ts == t)
        if ((err = apply_credit(s, &s->cevs[(*ci)++])))
            return err;
    while (*di < s->ndevs && s->devs[*di].ts == t)
        if ((err = apply_dep_event(s, &s->devs[(*di)++])))
            return err;
    return apply_runs_at(s, t);
}

/* The next instant that touches credits (runs are handled by runs_instant). */
static int64_t next_instant(struct sim *s, size_t ci, size_t di)
{
    int64_t t = s->as_of, x;
    if (ci < s->ncevs && s->cevs[ci].ts < t)
        t = s->cevs[ci].ts;
    if (di < s->ndevs && s->devs[di].ts < t)
        t = s->devs[di].ts;
    for (int p = 0; p < NPOOL; p++)
        if ((x = tly_wallet_next_expiry(&s->wallet[p], s->now)) < t)
            t = x;
    if (s->stmt[0].cycle_end < t)
        t = s->stmt[0].cycle_end;
    if (s->next_cut < t)
        t = s->next_cut;
    return t;
}

/*
 * At instant 't' after accrual: cuts, expiries, the cycle starting at t,
 * the events at t, then the judgements (§10 "One instant").
 */
static int instant(struct sim *s, int64_t t, size_t *ci, size_t *di)
{
    int err;

    if ((err = cut_segments(s, t)))
        return err;
    for (int p = 0; p < NPOOL; p++)
        add(s, &s->stmt[p].expired, tly_wallet_expire(&s->wallet[p], t));
    if (t == s->stmt[0].cycle_end && t < s->as_of) {
        if ((err = finish_cycle(s, t)))
            return err;
        open_cycle(s, t);
    }
    if (t < s->as_of && (err = events_at(s, t, ci, di)))
        return err;
    /*
     * An as-of on the cycle's end is the next cycle's first second, whose
     * crossings and negative balance a later as-of judges (in a batch run
     * too); t* is no cycle's, and is judged now.
     */
    if (!(t == s->as_of && t == s->stmt[0].cycle_end) && (err = thresholds_check(s, t)))
        return err;
    /* accrual up to t is consumed: the wallet's balance is balance(t) */
    if (tly_wallet_balance(&s->wallet[POOL_CREDITS]) < -s->negative_limit &&
        sim_anything_charged_running(s))
        return enforce_stop_all(s, t);
    return TLY_OK;
}

/*
 * An instant with nothing but runs.  Runs draw only on the runs pool, so
 * the credits side (accrual, t*, credit crossings) need not be brought to
 * it: the next instant that touches credits finds anything that happened in
 * between by bisection.  This keeps per-run work to a lookup and a draw.
 */
static int runs_instant(struct sim *s, int64_t t)
{
    int err = apply_runs_at(s, t);
    return err ? err : thresholds_check_pool(s, POOL_RUNS, t);
}

/*
 * Quiet days.  A night re-simulates the whole open cycle, and run by run
 * that is one index row per run.  But on most days nothing happens to the
 * runs pool except the runs: no runs grant or adjustment, no lot expiring,
 * no threshold reached, and the balance either positive before every run
 * or already exhausted before the first.  On such a day the order of its
 * runs changes nothing: each draws one run and is counted on its runnable's
 * day row (and, when exhausted, on its run_while_exhausted row), so the day
 * is applied from run_day (a few rows) and the runs cursor jumps to the
 * next day.  The credits side does not look at the runs pool, and no runs
 * crossing can fall inside the day, so the instants of the day that are
 * still to come see what they would have seen.  A day that fails any test
 * is replayed run by run.
 */
enum day_kind { DAY_REPLAY, DAY_FUNDED, DAY_EXHAUSTED };

static int day_charged_runs(struct sim *s, int64_t day, int64_t *n)
{
    sqlite3_stmt *st = s->day_charged;
    int rc;

    sqlite3_bind_int64(st, 2, day);
    sqlite3_bind_text(st, 3, s->runnable_kind, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return sim_ledger_error(s, "reading run_day");
    return TLY_OK;
}

/* Runs in micro-units, or INT64_MAX when that would not fit (the day is then replayed). */
static int64_t runs_micro(int64_t n)
{
    int64_t m;
    return __builtin_mul_overflow(n, TLY_MICRO, &m) ? INT64_MAX : m;
}

static int classify_day(struct sim *s, int64_t day, int64_t end, size_t ci, enum day_kind *kind)
{
    int64_t n, balance = tly_wallet_balance(&s->wallet[POOL_RUNS]), used;
    int err;

    *kind = DAY_REPLAY;
    if (!s->day_runs || day * TLY_DAY_SECONDS < s->runs_from || end > s->as_of ||
        end > s->stmt[0].cycle_end || (s->last_run_ts != INT64_MIN && tly_day_of(s->last_run_ts) == day) ||
        tly_wallet_next_expiry(&s->wallet[POOL_RUNS], s->now) < end)
        return TLY_OK;
    for (size_t j = ci; j < s->ncevs && s->cevs[j].ts < end; j++)
        if (s->cevs[j].pool == POOL_RUNS)
            return TLY_OK;
    if ((err = day_charged_runs(s, day, &n)))
        return err;
    if (n > 0 && (runs_micro(n) == INT64_MAX ||
                  __builtin_add_overflow(s->stmt[POOL_RUNS].used, runs_micro(n), &used) ||
                  thresholds_would_cross(s, POOL_RUNS, used)))
        return TLY_OK;
    /* enforce_run: a run is exhausted when the balance before it is not positive */
    if (n == 0 || (__int128)balance > (__int128)(n - 1) * TLY_MICRO)
        *kind = DAY_FUNDED;
    else if (balance <= 0)
        *kind = DAY_EXHAUSTED;
    return TLY_OK;
}

static int apply_day_row(struct sim *s, sqlite3_stmt *st, int64_t day, int exhausted, int64_t *charged)
{
    int64_t n = sqlite3_column_int64(st, 2), first = sqlite3_column_int64(st, 3);
    struct runnable *r;
    int idx, err;

    if ((err = sim_runnable(s, (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1), &r)))
        return err;
    idx = (int)(r - s->runnables);
    if (!r->chargeable)
        return sim_acc(s, ACC_NOT_CHARGEABLE, -1, idx, first, 0, 0, n, 0, first);
    *charged += n;
    r->last_active = day;
    if (exhausted && (err = sim_acc(s, ACC_EXHAUSTED, -1, idx, first, 0, 0, n, 0, first)))
        return err;
    return sim_acc(s, ACC_USAGE, -1, idx, first, 0, 0, n, 0, first);
}

static int apply_quiet_day(struct sim *s, int64_t day, int64_t end, int exhausted)
{
    sqlite3_stmt *st = s->day_runs;
    int64_t charged = 0;
    int rc, err = TLY_OK;

    sqlite3_bind_int64(st, 2, day);
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = apply_day_row(s, st, day, exhausted, &charged);
    sqlite3_reset(st);
    if (!err && rc != SQLITE_DONE)
        return sim_ledger_error(s, "reading run_day");
    if (err)
        return err;
    /* classify_day checked that the day's charged runs fit */
    tly_wallet_draw(&s->wallet[POOL_RUNS], runs_micro(charged));
    add(s, &s->stmt[POOL_RUNS].used, runs_micro(charged));
    s->quiet_days++;
    /* the runs cursor goes on from the next day */
    return seek_runs(s, end);
}

/* Applies the day of 'tr' (the next run, before the next instant) when it is quiet. */
static int quiet_day(struct sim *s, int64_t tr, size_t ci, int *applied)
{
    int64_t day = tly_day_of(tr), end = (day + 1) * TLY_DAY_SECONDS;
    enum day_kind kind;
    int err;

    *applied = 0;
    if ((err = classify_day(s, day, end, ci, &kind)) || kind == DAY_REPLAY)
        return err;
    *applied = 1;
    return apply_quiet_day(s, day, end, kind == DAY_EXHAUSTED);
}

/* spec §8: late usage is a debit at the start of the earliest open cycle. */
static int post_late(struct sim *s)
{
    int64_t credits = 0, runs = 0;
    for (size_t i = 0; i < s->nrows; i++) {
        if (s->rows[i].kind != ACC_LATE)
            continue;
        if (s->rows[i].dep >= 0)
            add(s, &credits, s->rows[i].credits);
        else
            runs += s->rows[i].count;
    }
    if (credits) {
        tly_wallet_draw(&s->wallet[POOL_CREDITS], credits);
        add(s, &s->stmt[POOL_CREDITS].late, credits);
    }
    if (runs) {
        tly_wallet_draw(&s->wallet[POOL_RUNS], runs * TLY_MICRO);
        add(s, &s->stmt[POOL_RUNS].late, runs * TLY_MICRO);
    }
    return TLY_OK;
}

int sim_run(struct sim *s, int64_t start)
{
    size_t ci = 0, di = 0;
    int err, early;

    s->charging = 1;
    s->now = start;
    s->next_cut = INT64_MAX;
    while (di < s->ndevs && s->devs[di].ts < start)
        di++;                           /* replayed already (sim_replay_closed) */
    open_cycle(s, start);
    for (size_t i = 0; i < s->ndeps; i++)
        if (s->deps[i].running && (err = start_segment(s, &s->deps[i], start)))
            return err;
    if ((err = post_late(s)))
        return err;
    if ((err = seek_runs(s, s->runs_from)))
        return err;
    /* credits before 'start' are late ones: they apply at 'start' */
    while (ci < s->ncevs && s->cevs[ci].ts < start)
        if ((err = apply_late_credit(s, &s->cevs[ci++], start)))
            return err;
    if ((err = instant(s, start, &ci, &di)))
        return err;
    while (s->now < s->as_of) {
        int64_t t = next_instant(s, ci, di), tr = next_run_ts(s);
        if (tr < t) {
            int applied;
            if ((err = quiet_day(s, tr, ci, &applied)))
                return err;
            if (!applied && (err = runs_instant(s, tr)))
                return err;
            continue;
        }
        if ((err = advance(s, t, &early)))
            return err;
        if (early)
            continue;
        if ((err = instant(s, t, &ci, &di)))
            return err;
    }
    return finish_cycle(s, s->stmt[0].cycle_end) ;
}

/*
 * Closed time (before the first open cycle) is replayed for the lifecycle
 * only: which deployments run at the open start, with what, and their stops
 * (frozen actions).  Deployments with late events are also metered, so the
 * caller can compare with what their closed cycles charged (§8).
 */
static int apply_frozen_stops(struct sim *s, size_t *si, int64_t upto)
{
    int err;
    for (; *si < s->nfrozen_stops && s->frozen_stops[*si].at <= upto; (*si)++) {
        const struct frozen_stop *f = &s->frozen_stops[*si];
        int idx = tly_strmap_get(&s->dep_index, f->key);
        struct dep *d;
        if (idx < 0)
            continue;
        d = &s->deps[idx];
        if ((err = end_running(s, d, f->at)))
            return err;
        /* kept for the overrun pass, which looks at every stop (enforce.c) */
        if (tly_grow(&s->stops, &s->stops_cap, s->nstops + 1, sizeof *s->stops))
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        s->stops[s->nstops++] = (struct stop_record){ idx, f->at, d->hw, d->units, d->replicas, 1 };
        d->stopped = 1;
        d->stop_at = f->at;
        /*
         * Only a deployment charged at t* stops (§6), so a run that met the
         * stop open billed it, if only at that instant (a card row turning
         * it chargeable then): its tab row stays on every later night.
         */
        d->billed = 1;
        sim_dep_touch(d, f->at);
    }
    return TLY_OK;
}

/* The maps borrow their keys; the sim owns them in late_key_store, freed with it. */
static int keep_key(struct sim *s, char *key)
{
    if (tly_grow(&s->late_key_store, &s->late_key_cap, s->nlate_keys + 1, sizeof *s->late_key_store)) {
        tly_free(key);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    s->late_key_store[s->nlate_keys++] = key;
    return TLY_OK;
}

static int mark_late_keys(struct sim *s)
{
    for (size_t i = 0; i < s->ndevs; i++) {
        const struct dep_event *ev = &s->devs[i];
        char *key;
        int err;
        if (!ev->late || is_runnable_category(ev->category) || !strcmp(ev->action, "delete"))
            continue;
        if ((err = join_key(&key, sim_dep_key_category(ev), ev->deployment_id)))
            return err;
        if (tly_strmap_get(&s->late_keys, key) == LATE_EVENTS) {
            tly_free(key);
            continue;
        }
        if ((err = keep_key(s, key)) || (err = tly_strmap_put(&s->late_keys, key, LATE_EVENTS)))
            return err;
    }
    return TLY_OK;
}

/* Puts "key\x1fday" in 'm' (the sim keeps the string) with 'value'. */
static int put_day(struct sim *s, struct tly_strmap *m, const char *key, int64_t day, int value)
{
    size_t n = strlen(key) + 24;
    char *day_key = tly_malloc(n);
    int err;

    if (!day_key)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    snprintf(day_key, n, "%s\x1f%lld", key, (long long)day);
    if ((err = keep_key(s, day_key)))
        return err;
    return tly_strmap_put(m, day_key, value);
}

int sim_mark_listed(struct sim *s, const char *category, const char *id, int64_t ts)
{
    char *key;
    int err;

    if ((err = join_key(&key, category, id)))
        return err;
    err = put_day(s, &s->listed_days, key, tly_day_of(ts), 1);
    tly_free(key);
    return err;
}

/*
 * inputs.md "rates.csv": unpriced time is charged by the first run after
 * the rate card covers it, as a late charge when its cycle has closed.
 * reconcile.c names the closed days that were unpriced at their close, and
 * from which second; those days are metered again (late_segment), and what
 * they cost now beyond their frozen usage is the late charge (§8).
 */
int sim_mark_unpriced(struct sim *s, const char *category, const char *deployment_id, int64_t from)
{
    int64_t day = tly_day_of(from);
    char *key;
    int err;

    if ((err = join_key(&key, category, deployment_id)))
        return err;
    if ((err = put_day(s, &s->unpriced_days, key, day, (int)(from - day * TLY_DAY_SECONDS)))) {
        tly_free(key);
        return err;
    }
    if (tly_strmap_get(&s->late_keys, key) >= 0) {
        tly_free(key);
        return TLY_OK;
    }
    if ((err = keep_key(s, key)))
        return err;
    return tly_strmap_put(&s->late_keys, key, LATE_UNPRICED);
}

int sim_replay_closed(struct sim *s)
{
    size_t di = 0, si = 0;
    int err;

    s->charging = 0;
    if ((err = mark_late_keys(s)))
        return err;
    while (di < s->ndevs && s->devs[di].ts < s->open_start) {
        int64_t t = s->devs[di].ts;
        /* stops before t come first; a stop at t follows t's events */
        if ((err = apply_frozen_stops(s, &si, t - 1)))
            return err;
        while (di < s->ndevs && s->devs[di].ts == t)
            if ((err = apply_dep_event(s, &s->devs[di++])))
                return err;
        if ((err = apply_frozen_stops(s, &si, t)))
            return err;
    }
    if ((err = apply_frozen_stops(s, &si, s->open_start - 1)))
        return err;
    for (size_t i = 0; i < s->ndeps; i++)
        if (s->deps[i].running && (err = sim_close_segment(s, &s->deps[i], s->open_start)))
            return err;
    return TLY_OK;
}
