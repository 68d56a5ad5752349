/*
 * wallet.h — one account's wallet for one pool (spec semantics.md §3).
 *
 * Grants (free, grant, topup, positive adjust) add a lot at their ts; a later
 * grant first pays any debt.  Consumption and debits draw from the lot that
 * expires first (no expiry = last; ties by ts, then txn_id), then run into
 * debt: the balance goes negative.  What is left of a lot at its expires_at
 * expires.  balance = Σ remaining − debt.
 *
 * Amounts are micro-credits (runs × 1,000,000 for the runs pool).
 * Ownership: the wallet copies txn ids; tly_wallet_release() frees them.
 */
#ifndef TLY_WALLET_H
#define TLY_WALLET_H

#include <stddef.h>
#include <stdint.h>

#define TLY_NEVER INT64_MAX     /* expires_at of a lot that never expires */

struct tly_lot {
    char *txn_id;
    char type[8];               /* free grant topup adjust */
    int64_t ts, expires_at;
    int64_t remaining;
};

struct tly_wallet {
    struct tly_lot *lots;       /* in draw order */
    size_t nlots, cap;
    int64_t available;          /* Σ remaining, kept in step */
    int64_t debt;               /* ≥ 0 */
    int overflow;               /* a grant or draw would have wrapped 64 bits and was
                                   left out: the caller refuses the account (exit 65) */
};

void tly_wallet_init(struct tly_wallet *w);
void tly_wallet_release(struct tly_wallet *w);

/* Adds a lot of 'amount' > 0, paying debt first. */
int tly_wallet_grant(struct tly_wallet *w, const char *txn_id, const char *type, int64_t ts,
                     int64_t expires_at, int64_t amount);
/*
 * Records a grant that had expired before it applied (a late one, §8): an
 * empty lot, which pays no debt and has nothing to draw.
 */
int tly_wallet_grant_expired(struct tly_wallet *w, const char *txn_id, const char *type, int64_t ts,
                             int64_t expires_at);
/* Draws 'amount' ≥ 0: lots first, the rest becomes debt. */
void tly_wallet_draw(struct tly_wallet *w, int64_t amount);
/* Expires what is left of every lot with expires_at ≤ t; returns the amount expired. */
int64_t tly_wallet_expire(struct tly_wallet *w, int64_t t);
/* The earliest expires_at > t of a lot with something left, or TLY_NEVER. */
int64_t tly_wallet_next_expiry(const struct tly_wallet *w, int64_t t);

static inline int64_t tly_wallet_balance(const struct tly_wallet *w)
{
    return w->available - w->debt;
}

#endif
