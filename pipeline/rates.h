/*
 * rates.h — the rate card (spec inputs.md "rates.csv").
 *
 * The card is configuration, all or nothing: any bad row, or two rows of
 * one hardware whose [effective_from, effective_to) periods overlap,
 * refuses the whole card and the card in force stays.  A good card
 * becomes the one in force in one transaction; the one it replaces stays
 * as a version once a run has priced with it, for closed time (rates.c;
 * loading the same card again is harmless).  Prices are micro-credits per
 * unit-hour; vcpu, memory_gb and description are kept as written, for
 * display.
 */
#ifndef TLY_RATES_H
#define TLY_RATES_H

#include "ledger.h"

/* What a load did, for the command's summary line. */
struct tly_rates_stats {
    long rows;              /* rate rows now in force */
    long hardware;          /* distinct hardware ids */
};

/*
 * Loads the rate card FILE as the card in force, in one transaction;
 * a bad row or overlapping periods refuse it whole: TLY_ERR_INPUT with one
 * stderr line naming file and line; the old card stays.  Ledger errors are
 * TLY_ERR_LEDGER, an unreadable file TLY_ERR_IO.
 */
int tly_rates_load(struct tly_ledger *l, const char *path);
/* The same, with counts. */
int tly_rates_load_stats(struct tly_ledger *l, const char *path, struct tly_rates_stats *st);

#endif
