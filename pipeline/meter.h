/*
 * meter.h — hosting metering (spec semantics.md §2).
 *
 * The rate card in memory, price lookups and segment cutting.  A running
 * deployment's time is cut into segments at its own lifecycle instants, every
 * UTC midnight, every effective_from/effective_to of its hardware, the as-of
 * and a stop for credits; a segment of s seconds at r micro-credits per hour
 * costs round_half_even(r × s / 3600), and inside a segment started at a the
 * charge accrued by t is round_half_even(r × (t − a) / 3600).
 *
 * Ownership: tly_cards_load() fills the card versions the caller frees with
 * tly_cards_release(); tly_card_layer() a card borrowing from them, freed
 * with tly_card_release() before them; hardware pointers returned by
 * tly_card_find() are owned by the card.
 */
#ifndef TLY_METER_H
#define TLY_METER_H

#include <stdint.h>

#include "ledger.h"

#define TLY_UNPRICED (-1)

struct tly_price {
    int64_t from, to;               /* [from, to); to = INT64_MAX when open */
    int64_t per_hour;               /* micro-credits for one unit for one hour */
    char *category, *description, *vcpu, *memory_gb;
};

struct tly_hardware {
    char *id;
    struct tly_price *prices;       /* sorted by from, non-overlapping */
    int nprices;
};

struct tly_card {
    struct tly_hardware *hw;        /* sorted by id */
    int nhw;
    int borrowed;                   /* a layered card: ids and texts are the versions' */
};

/* Every version of the card the ledger keeps (rates.c), oldest first; the last is in force. */
struct tly_cards {
    struct tly_card *v;
    int64_t *id;                    /* rates.card of each */
    int n;                          /* at least 1: an empty card when none was loaded */
};

/* A closed cycle [from, to) and the card version in force at its close. */
struct tly_closed_span {
    int64_t from, to, version;
};

/* Loading and lookup. */
int tly_cards_load(struct tly_ledger *l, struct tly_cards *cards);
void tly_cards_release(struct tly_cards *cards);
const struct tly_card *tly_cards_current(const struct tly_cards *cards);
void tly_card_release(struct tly_card *card);
const struct tly_hardware *tly_card_find(const struct tly_card *card, const char *id);

/*
 * The card one account's time is priced at (semantics §10: prices change
 * only open time).  'spans' are its closed cycles in time order.  An instant
 * of a closed cycle takes the price of the first version, from the one in
 * force at its close on, that prices it: the price it was charged at, or
 * for time unpriced then, the card that first covered it (inputs.md
 * "rates.csv"); any other instant the price in force.  The result borrows
 * from 'cards' (release it first, with tly_card_release).
 */
int tly_card_layer(const struct tly_cards *cards, const struct tly_closed_span *spans, int nspans,
                   struct tly_card *out);

/* The price row in force at t, or NULL (unpriced). */
const struct tly_price *tly_price_at(const struct tly_hardware *hw, int64_t t);
/* The first instant after t at which a price row begins or ends, else INT64_MAX. */
int64_t tly_next_row_edge(const struct tly_hardware *hw, int64_t t);
/* The first instant after t at which a segment must be cut: midnight or a price bound. */
int64_t tly_next_cut(const struct tly_hardware *hw, int64_t t);
/*
 * The rate-card category of a hardware: the row in force at t's, else NULL.
 * Time with no row is unpriced (inputs.md: never guessed), whatever
 * category the hardware's other rows name.
 */
const char *tly_hardware_category(const struct tly_hardware *hw, int64_t t);

/*
 * Meters [from, to) at 'mult' × the hardware's price (units × replicas),
 * cutting at midnights and price bounds, and calls 'fn' for every segment
 * with its charge, or TLY_UNPRICED where the card has no price.  Used where
 * time is metered without charging it: overruns, late-data comparisons.
 * Returns -1, metering no further, at a rate tly_segment_rate refuses.
 */
typedef void (*tly_segment_fn)(void *ctx, int64_t from, int64_t to, int64_t charge);
int tly_meter_span(const struct tly_hardware *hw, int64_t mult, int64_t from, int64_t to,
                   tly_segment_fn fn, void *ctx);

#endif
