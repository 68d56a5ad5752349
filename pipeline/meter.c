/*
 * meter.c — the rate card in memory and segment arithmetic (semantics §2).
 */
#include "meter.h"
#include "alloc.h"
#include "error.h"
#include "money.h"
#include "timeutil.h"

#include <stdlib.h>
#include <string.h>

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    return tly_strdup(s ? (const char *)s : "");
}

/* The statement's row, one price of a hardware, into 'card' (rows come by hardware, then from). */
static int add_price(struct tly_card *card, size_t *cap, size_t *pcap, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    struct tly_hardware *hw = card->nhw ? &card->hw[card->nhw - 1] : NULL;
    struct tly_price *p;

    if (!hw || strcmp(hw->id, id)) {
        if (tly_grow(&card->hw, cap, (size_t)card->nhw + 1, sizeof *card->hw))
            return TLY_ERR_NOMEM;
        hw = &card->hw[card->nhw++];
        memset(hw, 0, sizeof *hw);
        *pcap = 0;
        if (!(hw->id = tly_strdup(id)))
            return TLY_ERR_NOMEM;
    }
    if (tly_grow(&hw->prices, pcap, (size_t)hw->nprices + 1, sizeof *hw->prices))
        return TLY_ERR_NOMEM;
    p = &hw->prices[hw->nprices++];
    memset(p, 0, sizeof *p);
    p->from = sqlite3_column_int64(st, 7);
    p->to = sqlite3_column_type(st, 8) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 8);
    p->per_hour = sqlite3_column_int64(st, 6);
    p->category = dup_col(st, 2);
    p->description = dup_col(st, 3);
    p->vcpu = dup_col(st, 4);
    p->memory_gb = dup_col(st, 5);
    return p->category && p->description && p->vcpu && p->memory_gb ? TLY_OK : TLY_ERR_NOMEM;
}

int tly_cards_load(struct tly_ledger *l, struct tly_cards *cards)
{
    sqlite3_stmt *st;
    size_t vcap = 0, idcap = 0, cap = 0, pcap = 0;
    int err = TLY_OK, rc;

    memset(cards, 0, sizeof *cards);
    if ((err = tly_ledger_prepare(l,
            "SELECT card, hardware, category, description, vcpu, memory_gb, credits_per_hour,"
            " effective_from, effective_to FROM rates ORDER BY card, hardware, effective_from", &st)))
        return err;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (!cards->n || cards->id[cards->n - 1] != id) {
            if (tly_grow(&cards->v, &vcap, (size_t)cards->n + 1, sizeof *cards->v) ||
                tly_grow(&cards->id, &idcap, (size_t)cards->n + 1, sizeof *cards->id)) {
                err = TLY_ERR_NOMEM;
                break;
            }
            memset(&cards->v[cards->n], 0, sizeof *cards->v);
            cards->id[cards->n++] = id;
            cap = 0;
        }
        if ((err = add_price(&cards->v[cards->n - 1], &cap, &pcap, st)))
            break;
    }
    sqlite3_finalize(st);
    if (err || rc != SQLITE_DONE) {
        tly_cards_release(cards);
        return err ? tly_error(TLY_ERR_NOMEM, "out of memory") : tly_ledger_error(l, "reading the rate card");
    }
    if (!cards->n) {                /* no card yet: an empty one is in force */
        if (!(cards->v = tly_calloc(1, sizeof *cards->v)) || !(cards->id = tly_calloc(1, sizeof *cards->id))) {
            tly_cards_release(cards);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        cards->n = 1;
    }
    return TLY_OK;
}

void tly_cards_release(struct tly_cards *cards)
{
    for (int i = 0; i < cards->n && cards->v; i++)
        tly_card_release(&cards->v[i]);
    tly_free(cards->v);
    tly_free(cards->id);
    memset(cards, 0, sizeof *cards);
}

const struct tly_card *tly_cards_current(const struct tly_cards *cards)
{
    return &cards->v[cards->n - 1];
}

void tly_card_release(struct tly_card *card)
{
    for (int i = 0; i < card->nhw; i++) {
        struct tly_hardware *hw = &card->hw[i];
        for (int k = 0; k < hw->nprices && !card->borrowed; k++) {
            tly_free(hw->prices[k].category);
            tly_free(hw->prices[k].description);
            tly_free(hw->prices[k].vcpu);
            tly_free(hw->prices[k].memory_gb);
        }
        tly_free(hw->prices);
        if (!card->borrowed)
            tly_free(hw->id);
    }
    tly_free(card->hw);
    memset(card, 0, sizeof *card);
}

static int cmp_hw(const void *key, const void *elem)
{
    return strcmp(key, ((const struct tly_hardware *)elem)->id);
}

const struct tly_hardware *tly_card_find(const struct tly_card *card, const char *id)
{
    if (!id || !card->nhw)
        return NULL;
    return bsearch(id, card->hw, (size_t)card->nhw, sizeof *card->hw, cmp_hw);
}

/*
 * One piece of a layered hardware's history, [from, to) at the price row
 * 'p' of some version; it extends the last piece when both come from the
 * same row (the texts are the row's own, so their address names it), so a
 * layered card cuts time only at its rows' own bounds.
 */
static int add_piece(struct tly_hardware *hw, size_t *cap, const struct tly_price *p, int64_t from, int64_t to)
{
    struct tly_price *last = hw->nprices ? &hw->prices[hw->nprices - 1] : NULL;

    if (last && last->to == from && last->category == p->category) {
        last->to = to;
        return TLY_OK;
    }
    if (tly_grow(&hw->prices, cap, (size_t)hw->nprices + 1, sizeof *hw->prices))
        return TLY_ERR_NOMEM;
    hw->prices[hw->nprices] = *p;
    hw->prices[hw->nprices].from = from;
    hw->prices[hw->nprices].to = to;
    hw->nprices++;
    return TLY_OK;
}

/*
 * [from, to) of hardware 'id', each instant at the first version from
 * 'first' on that prices it.  The instants are taken in runs between the
 * bounds of every such version's rows, inside which no version's price
 * changes.
 */
static int layer_zone(const struct tly_cards *cards, const char *id, int first, int64_t from, int64_t to,
                      struct tly_hardware *out, size_t *cap)
{
    for (int64_t x = from, y; x < to; x = y) {
        const struct tly_price *p = NULL;
        y = to;
        for (int j = first; j < cards->n; j++) {
            const struct tly_hardware *hw = tly_card_find(&cards->v[j], id);
            for (int k = 0; hw && k < hw->nprices; k++) {
                if (hw->prices[k].from > x && hw->prices[k].from < y)
                    y = hw->prices[k].from;
                if (hw->prices[k].to > x && hw->prices[k].to < y)
                    y = hw->prices[k].to;
            }
            if (!p)
                p = tly_price_at(hw, x);
        }
        if (p && add_piece(out, cap, p, x, y))
            return TLY_ERR_NOMEM;
    }
    return TLY_OK;
}

static int version_index(const struct tly_cards *cards, int64_t version)
{
    for (int i = 0; i < cards->n; i++)
        if (cards->id[i] == version)
            return i;
    return cards->n - 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every hardware id of every version, sorted, once each; borrowed from the cards. */
static int all_hardware(const struct tly_cards *cards, const char ***out, size_t *n)
{
    size_t cap = 0, k = 0;

    *out = NULL;
    *n = 0;
    for (int v = 0; v < cards->n; v++)
        for (int i = 0; i < cards->v[v].nhw; i++) {
            if (tly_grow(out, &cap, *n + 1, sizeof **out))
                return TLY_ERR_NOMEM;
            (*out)[(*n)++] = cards->v[v].hw[i].id;
        }
    if (!*n)
        return TLY_OK;
    qsort(*out, *n, sizeof **out, cmp_str);
    for (size_t i = 1; i < *n; i++)
        if (strcmp((*out)[i], (*out)[k]))
            (*out)[++k] = (*out)[i];
    *n = k + 1;
    return TLY_OK;
}

static int layer_hardware(const struct tly_cards *cards, const char *id, const struct tly_closed_span *spans,
                          int nspans, struct tly_hardware *hw)
{
    size_t cap = 0;
    int64_t at = INT64_MIN;
    int err = TLY_OK;

    memset(hw, 0, sizeof *hw);
    hw->id = (char *)id;
    for (int i = 0; i < nspans && !err; i++) {
        int64_t from = spans[i].from > at ? spans[i].from : at;
        if (at < from)
            err = layer_zone(cards, id, cards->n - 1, at, from, hw, &cap);
        if (!err && from < spans[i].to) {
            err = layer_zone(cards, id, version_index(cards, spans[i].version), from, spans[i].to, hw, &cap);
            at = spans[i].to;
        }
    }
    return err ? err : layer_zone(cards, id, cards->n - 1, at, INT64_MAX, hw, &cap);
}

int tly_card_layer(const struct tly_cards *cards, const struct tly_closed_span *spans, int nspans,
                   struct tly_card *out)
{
    const char **ids;
    size_t nids, cap = 0;
    int err;

    memset(out, 0, sizeof *out);
    out->borrowed = 1;
    if ((err = all_hardware(cards, &ids, &nids)))
        goto fail;
    for (size_t i = 0; i < nids; i++) {
        struct tly_hardware hw;
        if ((err = layer_hardware(cards, ids[i], spans, nspans, &hw)) ||
            (hw.nprices && (err = tly_grow(&out->hw, &cap, (size_t)out->nhw + 1, sizeof *out->hw)))) {
            tly_free(hw.prices);
            goto fail;
        }
        if (hw.nprices)
            out->hw[out->nhw++] = hw;
    }
    tly_free(ids);
    return TLY_OK;
fail:
    tly_free(ids);
    tly_card_release(out);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
}

const struct tly_price *tly_price_at(const struct tly_hardware *hw, int64_t t)
{
    if (!hw)
        return NULL;
    for (int i = 0; i < hw->nprices; i++)
        if (hw->prices[i].from <= t && t < hw->prices[i].to)
            return &hw->prices[i];
    return NULL;
}

int64_t tly_next_row_edge(const struct tly_hardware *hw, int64_t t)
{
    int64_t edge = INT64_MAX;
    for (int i = 0; hw && i < hw->nprices; i++) {
        if (hw->prices[i].from > t && hw->prices[i].from < edge)
            edge = hw->prices[i].from;
        if (hw->prices[i].to > t && hw->prices[i].to < edge)
            edge = hw->prices[i].to;
    }
    return edge;
}

int64_t tly_next_cut(const struct tly_hardware *hw, int64_t t)
{
    int64_t midnight = (tly_day_of(t) + 1) * TLY_DAY_SECONDS, edge = tly_next_row_edge(hw, t);
    return edge < midnight ? edge : midnight;
}

const char *tly_hardware_category(const struct tly_hardware *hw, int64_t t)
{
    const struct tly_price *p = tly_price_at(hw, t);
    return p ? p->category : NULL;
}

int tly_meter_span(const struct tly_hardware *hw, int64_t mult, int64_t from, int64_t to,
                   tly_segment_fn fn, void *ctx)
{
    while (from < to) {
        int64_t cut = tly_next_cut(hw, from), end = cut < to ? cut : to, rate;
        const struct tly_price *p = tly_price_at(hw, from);
        if (p && tly_segment_rate(p->per_hour, mult, &rate))
            return -1;
        fn(ctx, from, end, p ? tly_charge(rate, end - from) : TLY_UNPRICED);
        from = end;
    }
    return 0;
}
