/*
 * wallet.c — lots, draw order, debt and expiry (semantics §3).
 */
#include "wallet.h"
#include "alloc.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

void tly_wallet_init(struct tly_wallet *w)
{
    memset(w, 0, sizeof *w);
}

void tly_wallet_release(struct tly_wallet *w)
{
    for (size_t i = 0; i < w->nlots; i++)
        tly_free(w->lots[i].txn_id);
    tly_free(w->lots);
    tly_wallet_init(w);
}

/*
 * Draw order (semantics §3): the lot expiring first is consumed first, so
 * credits about to lapse are used before credits that would last; lots that
 * never expire come last; ties by ts, then txn_id, so the order is total.
 */
static int draws_before(const struct tly_lot *a, int64_t expires_at, int64_t ts, const char *txn_id)
{
    if (a->expires_at != expires_at)
        return a->expires_at < expires_at;
    if (a->ts != ts)
        return a->ts < ts;
    return strcmp(a->txn_id, txn_id) < 0;
}

/* Adds a lot with 'remaining' left, in draw order. */
static int add_lot(struct tly_wallet *w, const char *txn_id, const char *type, int64_t ts,
                   int64_t expires_at, int64_t remaining)
{
    size_t at = w->nlots;
    struct tly_lot *lot;

    if (tly_grow(&w->lots, &w->cap, w->nlots + 1, sizeof *w->lots))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    while (at > 0 && !draws_before(&w->lots[at - 1], expires_at, ts, txn_id))
        at--;
    memmove(&w->lots[at + 1], &w->lots[at], (w->nlots - at) * sizeof *w->lots);
    lot = &w->lots[at];
    memset(lot, 0, sizeof *lot);
    if (!(lot->txn_id = tly_strdup(txn_id))) {
        memmove(&w->lots[at], &w->lots[at + 1], (w->nlots - at) * sizeof *w->lots);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    w->nlots++;
    snprintf(lot->type, sizeof lot->type, "%s", type);
    lot->ts = ts;
    lot->expires_at = expires_at;
    lot->remaining = remaining;
    return TLY_OK;
}

int tly_wallet_grant(struct tly_wallet *w, const char *txn_id, const char *type, int64_t ts,
                     int64_t expires_at, int64_t amount)
{
    int64_t pay = amount < w->debt ? amount : w->debt, available;
    int err;

    if (__builtin_add_overflow(w->available, amount - pay, &available)) {
        w->overflow = 1;
        return TLY_OK;
    }
    /* "a later grant first pays the debt, then the rest is available" */
    if ((err = add_lot(w, txn_id, type, ts, expires_at, amount - pay)))
        return err;
    w->debt -= pay;
    w->available = available;
    return TLY_OK;
}

int tly_wallet_grant_expired(struct tly_wallet *w, const char *txn_id, const char *type, int64_t ts,
                             int64_t expires_at)
{
    return add_lot(w, txn_id, type, ts, expires_at, 0);
}

void tly_wallet_draw(struct tly_wallet *w, int64_t amount)
{
    int64_t debt;

    for (size_t i = 0; i < w->nlots && amount > 0; i++) {
        int64_t take = w->lots[i].remaining < amount ? w->lots[i].remaining : amount;
        w->lots[i].remaining -= take;
        w->available -= take;
        amount -= take;
    }
    if (__builtin_add_overflow(w->debt, amount, &debt))
        w->overflow = 1;
    else
        w->debt = debt;
}

int64_t tly_wallet_expire(struct tly_wallet *w, int64_t t)
{
    int64_t expired = 0;
    for (size_t i = 0; i < w->nlots; i++) {
        struct tly_lot *lot = &w->lots[i];
        if (lot->expires_at <= t && lot->remaining > 0) {
            expired += lot->remaining;
            w->available -= lot->remaining;
            lot->remaining = 0;
        }
    }
    return expired;
}

int64_t tly_wallet_next_expiry(const struct tly_wallet *w, int64_t t)
{
    int64_t next = TLY_NEVER;
    for (size_t i = 0; i < w->nlots; i++)
        if (w->lots[i].remaining > 0 && w->lots[i].expires_at > t && w->lots[i].expires_at < next)
            next = w->lots[i].expires_at;
    return next;
}
