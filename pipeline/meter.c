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

int tly_card_load(struct tly_ledger *l, struct tly_card *card)
{
    sqlite3_stmt *st;
    size_t cap = 0, pcap = 0;
    int err, rc;

    memset(card, 0, sizeof *card);
    if ((err = tly_ledger_prepare(l,
            "SELECT hardware, category, description, vcpu, memory_gb, credits_per_hour,"
            " effective_from, effective_to FROM rates ORDER BY hardware, effective_from", &st)))
        return err;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        struct tly_hardware *hw = card->nhw ? &card->hw[card->nhw - 1] : NULL;
        struct tly_price *p;

        if (!hw || strcmp(hw->id, id)) {
            if (tly_grow(&card->hw, &cap, (size_t)card->nhw + 1, sizeof *card->hw))
                goto nomem;
            hw = &card->hw[card->nhw++];
            memset(hw, 0, sizeof *hw);
            pcap = 0;
            if (!(hw->id = tly_strdup(id)))
                goto nomem;
        }
        if (tly_grow(&hw->prices, &pcap, (size_t)hw->nprices + 1, sizeof *hw->prices))
            goto nomem;
        p = &hw->prices[hw->nprices++];
        memset(p, 0, sizeof *p);
        p->from = sqlite3_column_int64(st, 6);
        p->to = sqlite3_column_type(st, 7) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 7);
        p->per_hour = sqlite3_column_int64(st, 5);
        p->category = dup_col(st, 1);
        p->description = dup_col(st, 2);
        p->vcpu = dup_col(st, 3);
        p->memory_gb = dup_col(st, 4);
        if (!p->category || !p->description || !p->vcpu || !p->memory_gb)
            goto nomem;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        tly_card_release(card);
        return tly_ledger_error(l, "reading the rate card");
    }
    return TLY_OK;
nomem:
    sqlite3_finalize(st);
    tly_card_release(card);
    return tly_error(TLY_ERR_NOMEM, "out of memory");
}

void tly_card_release(struct tly_card *card)
{
    for (int i = 0; i < card->nhw; i++) {
        struct tly_hardware *hw = &card->hw[i];
        for (int k = 0; k < hw->nprices; k++) {
            tly_free(hw->prices[k].category);
            tly_free(hw->prices[k].description);
            tly_free(hw->prices[k].vcpu);
            tly_free(hw->prices[k].memory_gb);
        }
        tly_free(hw->prices);
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

const struct tly_price *tly_price_at(const struct tly_hardware *hw, int64_t t)
{
    if (!hw)
        return NULL;
    for (int i = 0; i < hw->nprices; i++)
        if (hw->prices[i].from <= t && t < hw->prices[i].to)
            return &hw->prices[i];
    return NULL;
}

int64_t tly_next_cut(const struct tly_hardware *hw, int64_t t)
{
    int64_t cut = (tly_day_of(t) + 1) * TLY_DAY_SECONDS;   /* the next UTC midnight */
    for (int i = 0; hw && i < hw->nprices; i++) {
        if (hw->prices[i].from > t && hw->prices[i].from < cut)
            cut = hw->prices[i].from;
        if (hw->prices[i].to > t && hw->prices[i].to < cut)
            cut = hw->prices[i].to;
    }
    return cut;
}

const char *tly_hardware_category(const struct tly_hardware *hw, int64_t t)
{
    const struct tly_price *p = tly_price_at(hw, t);
    if (p)
        return p->category;
    return hw && hw->nprices ? hw->prices[0].category : NULL;
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
