/*
 * runids.c — writing run id keys (runids.h).
 *
 * The held set answers "does this key wait here?" with open addressing:
 * slots of keys, linear probing, at most half full; 0 marks an empty slot,
 * so a key of 0 is noted apart.  The keys in the slots are also listed, so
 * a flush clears their clusters only (clear_slots).  The keys are XXH3 values (ledger.c
 * tly_ledger_run_key): their low bits index the slots as they are.
 */
#include "runids.h"
#include "alloc.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>

#define MIN_SLOTS 4096

int tly_runids_writer_prepare(struct tly_runids_writer *w, struct tly_ledger *l, const char *table)
{
    char sql[96 + TLY_RUNIDS_PER_INSERT * sizeof "(?,?),"];
    size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT OR FAIL INTO %s(id_key, run) VALUES", table);
    int err;

    w->l = l;
    w->batch = w->one = NULL;
    for (int i = 0; i < TLY_RUNIDS_PER_INSERT; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s(?,?)", i ? "," : "");
    if ((err = tly_ledger_prepare(l, sql, &w->batch)))
        return err;
    snprintf(sql, sizeof sql, "INSERT INTO %s(id_key, run) VALUES(?1, ?2)", table);
    return tly_ledger_prepare(l, sql, &w->one);
}

int tly_runids_writer_put(struct tly_runids_writer *w, const int64_t (*pairs)[2], size_t n)
{
    size_t i = 0;
    int err = TLY_OK;

    for (; i + TLY_RUNIDS_PER_INSERT <= n && !err; i += TLY_RUNIDS_PER_INSERT) {
        for (int k = 0; k < TLY_RUNIDS_PER_INSERT; k++) {
            sqlite3_bind_int64(w->batch, 2 * k + 1, pairs[i + (size_t)k][0]);
            sqlite3_bind_int64(w->batch, 2 * k + 2, pairs[i + (size_t)k][1]);
        }
        err = tly_ledger_step_done(w->l, w->batch);
    }
    for (; i < n && !err; i++) {
        sqlite3_bind_int64(w->one, 1, pairs[i][0]);
        sqlite3_bind_int64(w->one, 2, pairs[i][1]);
        err = tly_ledger_step_done(w->l, w->one);
    }
    return err;
}

void tly_runids_writer_finalize(struct tly_runids_writer *w)
{
    sqlite3_finalize(w->batch);
    sqlite3_finalize(w->one);
    w->batch = w->one = NULL;
}

struct tly_runids_held {
    struct tly_runids_writer writer;    /* into run_ids_new */
    int64_t (*pairs)[2];                /* in arrival order until a flush sorts them */
    size_t n, cap, max;
    uint64_t *slots;
    size_t nslots;                      /* a power of two, >= 2 * nkeys */
    uint64_t *taken;                    /* the keys in the slots, so a flush finds them */
    size_t nkeys, taken_cap;
    int zero_held;
};

int tly_runids_held_create(struct tly_ledger *l, size_t max, struct tly_runids_held **out)
{
    struct tly_runids_held *h = tly_calloc(1, sizeof *h);
    int err;

    *out = h;
    if (!h)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    h->max = max;
    return (err = tly_runids_writer_prepare(&h->writer, l, "run_ids_new")) ? err : TLY_OK;
}

static size_t slot_of(const struct tly_runids_held *h, uint64_t key)
{
    return (size_t)key & (h->nslots - 1);
}

/* Puts a nonzero key in its slot; 1 when it took an empty one. */
static int place(struct tly_runids_held *h, uint64_t key)
{
    size_t i = slot_of(h, key);

    while (h->slots[i] && h->slots[i] != key)
        i = (i + 1) & (h->nslots - 1);
    if (h->slots[i])
        return 0;
    h->slots[i] = key;
    return 1;
}

/* Room for one more key: the slots at most half full once it is in. */
static int make_room(struct tly_runids_held *h)
{
    uint64_t *old = h->slots;
    size_t nslots = h->nslots ? h->nslots : MIN_SLOTS;

    if (tly_grow(&h->taken, &h->taken_cap, h->nkeys + 1, sizeof *h->taken))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    while (2 * (h->nkeys + 1) > nslots)
        nslots *= 2;
    if (nslots == h->nslots)
        return TLY_OK;
    if (!(h->slots = tly_calloc(nslots, sizeof *h->slots))) {
        h->slots = old;
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    h->nslots = nslots;
    for (size_t k = 0; k < h->nkeys; k++)
        place(h, h->taken[k]);
    tly_free(old);
    return TLY_OK;
}

int tly_runids_held_expect(struct tly_runids_held *h, int64_t key)
{
    int err;

    if (!key) {
        h->zero_held = 1;
        return TLY_OK;
    }
    if ((err = make_room(h)))
        return err;
    if (place(h, (uint64_t)key))
        h->taken[h->nkeys++] = (uint64_t)key;
    return TLY_OK;
}

int tly_runids_held_add(struct tly_runids_held *h, int64_t key, int64_t run)
{
    int err = TLY_OK;

    if ((h->n >= h->max && (err = tly_runids_held_flush(h))) ||
        tly_grow(&h->pairs, &h->cap, h->n + 1, sizeof *h->pairs))
        return err ? err : tly_error(TLY_ERR_NOMEM, "out of memory");
    if ((err = tly_runids_held_expect(h, key)))
        return err;
    h->pairs[h->n][0] = key;
    h->pairs[h->n][1] = run;
    h->n++;
    return TLY_OK;
}

int tly_runids_held_holds(const struct tly_runids_held *h, int64_t key)
{
    size_t i;

    if (!key)
        return h->zero_held;
    if (!h->nkeys)
        return 0;
    for (i = slot_of(h, (uint64_t)key); h->slots[i]; i = (i + 1) & (h->nslots - 1))
        if (h->slots[i] == (uint64_t)key)
            return 1;
    return 0;
}

/* run_ids' order: the key as a signed 64-bit integer, then the run */
static int pair_cmp(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/*
 * Empties the slots the keys took.  The table only grows, so a memset of it
 * all cost a night with many runs sent twice (a flush each) O(table) per
 * copy: 29 s instead of 3.7 s for 100k repeats among 700k runs.  Clearing
 * each key's cluster from its home slot to the next empty one costs what
 * was held.
 */
static void clear_slots(struct tly_runids_held *h)
{
    for (size_t k = 0; k < h->nkeys; k++)
        for (size_t i = slot_of(h, h->taken[k]); h->slots[i]; i = (i + 1) & (h->nslots - 1))
            h->slots[i] = 0;
    h->nkeys = 0;
    h->zero_held = 0;
}

int tly_runids_held_flush(struct tly_runids_held *h)
{
    int err;

    if (!h->n)
        return TLY_OK;
    qsort(h->pairs, h->n, sizeof *h->pairs, pair_cmp);
    if ((err = tly_runids_writer_put(&h->writer, (const int64_t(*)[2])h->pairs, h->n)))
        return err;
    clear_slots(h);
    h->n = 0;
    return TLY_OK;
}

void tly_runids_held_destroy(struct tly_runids_held *h)
{
    if (!h)
        return;
    tly_runids_writer_finalize(&h->writer);
    tly_free(h->pairs);
    tly_free(h->slots);
    tly_free(h->taken);
    tly_free(h);
}
