/*
 * rowahead.c — CSV rows parsed one step ahead (see rowahead.h).
 *
 * A ring (ring.h) of BATCHES arenas: the thread copies rows into a free
 * batch and publishes it when the next row does not fit (or the rows end);
 * the caller reads the oldest published batch record by record and gives
 * it back when it asks for the row after its last.  Locking per batch, not
 * per row, keeps the hand-over cheap: a batch holds a couple of thousand
 * runs.
 *
 * A record is a struct rec, the lengths of the caller's columns, the row's
 * raw text, then its values, padded to keep the next record aligned.
 */
#include "rowahead.h"
#include "alloc.h"
#include "error.h"
#include "ring.h"

#include <stdint.h>
#include <string.h>

#define BATCHES    4
#define BATCH_SIZE (256u << 10)
#define NO_VALUE   SIZE_MAX

struct rec {
    size_t size;                /* of the whole record, padded */
    int event;
    enum tly_csv_reject reject;
    int nfields, bad_field;
    long line, index, rows;
    size_t raw_len;
    size_t len[];               /* by column; NO_VALUE when absent */
};

struct batch {
    unsigned char *data;
    size_t cap, used;
};

struct tly_rowahead {
    struct tly_csv *r;
    int ncols;
    struct batch batch[BATCHES];
    struct tly_ring ring;       /* the thread fills batches, the caller reads them */

    /* the caller's side */
    int reading;                /* holds the batch 'slot' */
    int slot;
    size_t pos;                 /* next record in it */
    int final_event;            /* TLY_CSV_END or TLY_CSV_ERROR once met, else -2 */
    long final_rows;
    const char **val;
    size_t *len;
};

static size_t padded(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t header_size(const struct tly_rowahead *ra)
{
    return padded(sizeof(struct rec) + (size_t)ra->ncols * sizeof(size_t));
}

static int is_final(int ev)
{
    return ev == TLY_CSV_END || ev == TLY_CSV_ERROR;
}

/* Only a whole row has values; a quote error has its raw text alone. */
static int has_values(int ev)
{
    return ev == TLY_CSV_ROW;
}

/* END and ERROR carry no row: the reader does not fill one for them. */
static size_t record_size(const struct tly_rowahead *ra, int ev, const struct tly_csv_row *row)
{
    size_t n = header_size(ra);

    if (is_final(ev))
        return n;
    n += row->raw_len;
    for (int i = 0; i < ra->ncols && has_values(ev); i++)
        if (row->val[i])
            n += row->len[i];
    return padded(n);
}

static void put_record(const struct tly_rowahead *ra, struct batch *b, int ev,
                       const struct tly_csv_row *row, long rows, size_t size)
{
    struct rec *rec = (struct rec *)(b->data + b->used);
    unsigned char *p = b->data + b->used + header_size(ra);

    *rec = (struct rec){ .size = size, .event = ev, .rows = rows };
    for (int i = 0; i < ra->ncols; i++)
        rec->len[i] = NO_VALUE;
    if (!is_final(ev)) {
        rec->reject = row->reject;
        rec->nfields = row->nfields;
        rec->bad_field = row->bad_field;
        rec->line = row->line;
        rec->index = row->index;
        rec->raw_len = row->raw_len;
        memcpy(p, row->raw, row->raw_len);
        p += row->raw_len;
        for (int i = 0; i < ra->ncols && has_values(ev); i++)
            if (row->val[i]) {
                memcpy(p, row->val[i], row->len[i]);
                p += row->len[i];
                rec->len[i] = row->len[i];
            }
    }
    b->used += size;
}

/* The next batch to fill, emptied; NULL when destroy asked the thread to end. */
static struct batch *take_free(struct tly_rowahead *ra)
{
    int i = tly_ring_free_slot(&ra->ring);

    if (i < 0)
        return NULL;
    ra->batch[i].used = 0;
    return &ra->batch[i];
}

/* Room for 'size' bytes: a row larger than a batch gets one its size. */
static int fit(struct batch *b, size_t size)
{
    unsigned char *data;

    if (size <= b->cap)
        return 1;
    if (!(data = tly_realloc(b->data, size)))
        return 0;
    b->data = data;
    b->cap = size;
    return 1;
}

static void *produce(void *arg)
{
    struct tly_rowahead *ra = arg;
    struct batch *b = NULL;
    struct tly_csv_row row = { 0 };
    int ev;

    do {
        size_t size;
        long rows;

        ev = tly_csv_next(ra->r, &row);
        rows = tly_csv_rows(ra->r);
        size = record_size(ra, ev, &row);
        if (b && b->used && size > b->cap - b->used) {
            tly_ring_publish(&ra->ring);
            b = NULL;
        }
        if (!b && !(b = take_free(ra)))
            return NULL;
        if (!fit(b, b->used + size)) {      /* only an empty batch grows */
            tly_error(TLY_ERR_NOMEM, "out of memory");
            ev = TLY_CSV_ERROR;
            size = header_size(ra);
        }
        put_record(ra, b, ev, &row, rows, size);
    } while (!is_final(ev));
    tly_ring_publish(&ra->ring);
    return NULL;
}

int tly_rowahead_create(struct tly_rowahead **out, struct tly_csv *r, int ncolumns)
{
    struct tly_rowahead *ra = tly_calloc(1, sizeof *ra);

    *out = NULL;
    if (!ra)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    ra->r = r;
    ra->ncols = ncolumns;
    ra->final_event = -2;
    if (!(ra->val = tly_calloc((size_t)ncolumns + 1, sizeof *ra->val)) ||
        !(ra->len = tly_calloc((size_t)ncolumns + 1, sizeof *ra->len))) {
        tly_rowahead_destroy(ra);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < BATCHES; i++) {
        if (!(ra->batch[i].data = tly_malloc(BATCH_SIZE))) {
            tly_rowahead_destroy(ra);
            return tly_error(TLY_ERR_NOMEM, "out of memory");
        }
        ra->batch[i].cap = BATCH_SIZE;
    }
    tly_ring_start(&ra->ring, BATCHES, produce, ra);
    *out = ra;
    return TLY_OK;
}

/* The record after the last one taken, waiting for its batch if need be. */
static const struct rec *next_record(struct tly_rowahead *ra)
{
    const struct rec *rec;

    if (ra->reading && ra->pos == ra->batch[ra->slot].used) {
        tly_ring_give_back(&ra->ring);
        ra->reading = 0;
    }
    if (!ra->reading) {
        ra->slot = tly_ring_next_slot(&ra->ring);   /* the thread stops only in destroy */
        ra->reading = 1;
        ra->pos = 0;
    }
    rec = (const struct rec *)(ra->batch[ra->slot].data + ra->pos);
    ra->pos += rec->size;
    return rec;
}

int tly_rowahead_next(struct tly_rowahead *ra, struct tly_csv_row *row, long *rows)
{
    const struct rec *rec;
    const char *p;
    int ev;

    if (!ra->ring.threaded) {
        ev = tly_csv_next(ra->r, row);
        *rows = tly_csv_rows(ra->r);
        return ev;
    }
    if (ra->final_event != -2) {
        *rows = ra->final_rows;
        return ra->final_event;
    }
    rec = next_record(ra);
    *rows = rec->rows;
    if (is_final(rec->event)) {
        ra->final_event = rec->event;
        ra->final_rows = rec->rows;
        return rec->event;
    }
    p = (const char *)rec + header_size(ra);
    *row = (struct tly_csv_row){ .line = rec->line, .index = rec->index, .raw = p,
                                 .raw_len = rec->raw_len, .reject = rec->reject,
                                 .nfields = rec->nfields, .bad_field = rec->bad_field,
                                 .val = ra->val, .len = ra->len };
    p += rec->raw_len;
    for (int i = 0; i < ra->ncols; i++) {
        ra->val[i] = rec->len[i] == NO_VALUE ? NULL : p;
        ra->len[i] = rec->len[i] == NO_VALUE ? 0 : rec->len[i];
        p += ra->len[i];
    }
    return rec->event;
}

void tly_rowahead_destroy(struct tly_rowahead *ra)
{
    if (!ra)
        return;
    tly_ring_stop(&ra->ring);
    for (int i = 0; i < BATCHES; i++)
        tly_free(ra->batch[i].data);
    tly_free(ra->val);
    tly_free(ra->len);
    tly_free(ra);
}
