/*
 * idfilter.c — the Bloom filter of run id keys (idfilter.h).
 *
 * The blob in run_filter.bits is a byte-order mark (the 64-bit number
 * BYTE_ORDER_MARK as this machine stores it) and then the blocks, each
 * eight 32-bit words in this machine's order.  A ledger carried to a
 * machine of the other byte order sees a foreign mark and rebuilds.  The
 * state table holds the XXH3 of the whole blob (a damaged blob is
 * rebuilt: one cleared bit would let a duplicate through) and the count of
 * the keys of run_ids it holds (with those of run_ids_new a load reads,
 * they decide when it is full).
 */
#include "idfilter.h"
#include "alloc.h"
#include "error.h"

#include <string.h>
#include <xxhash.h>

#define BYTE_ORDER_MARK UINT64_C(0x0102030405060708)
#define HEADER_BYTES 8
#define BLOCK_WORDS 8
#define BLOCK_BYTES (BLOCK_WORDS * 4)
#define MIN_BLOCKS 1024                                /* 32 KiB */
#define MAX_BLOCKS ((64u << 20) / BLOCK_BYTES)         /* 64 MiB */

/* the filter's figures, in the state table */
enum { META_KEYS, META_CAPACITY, META_CHECKSUM, NMETA };
static const char *const meta_key[NMETA] = {
    [META_KEYS] = "run_filter_keys",            /* the keys of run_ids it holds */
    [META_CAPACITY] = "run_filter_capacity",    /* keys at which it is full */
    [META_CHECKSUM] = "run_filter_checksum",    /* XXH3 of the blob */
};

struct tly_idfilter {
    unsigned char *blob;        /* HEADER_BYTES + nblocks * BLOCK_BYTES */
    uint32_t *words;            /* blob + HEADER_BYTES */
    uint64_t nblocks;
    int64_t old_keys;           /* of run_ids (run_filter.keys) */
    int64_t new_keys;           /* of run_ids_new, read or added since */
    int64_t capacity;           /* keys at which it is rebuilt (8 bits per key) */
    int unsaved;                /* built since the last save */
};

/* The salts of Parquet's split block Bloom filter: one bit per word. */
static const uint32_t salt[BLOCK_WORDS] = {
    0x47b6137bU, 0x44974d91U, 0x8824ad5bU, 0xa2b7289dU,
    0x705495c7U, 0x2df1424bU, 0x9efc4947U, 0x5c6bfb31U,
};

/* The key is an XXH3 value already: its high half picks the block, its low half the bits. */
static uint32_t *block_of(const struct tly_idfilter *f, int64_t key)
{
    uint64_t high = (uint64_t)key >> 32;
    return f->words + ((high * f->nblocks) >> 32) * BLOCK_WORDS;
}

static uint32_t bit_of(int64_t key, int word)
{
    return UINT32_C(1) << (((uint32_t)key * salt[word]) >> 27);
}

void tly_idfilter_add(struct tly_idfilter *f, int64_t key)
{
    uint32_t *block = block_of(f, key);

    for (int i = 0; i < BLOCK_WORDS; i++)
        block[i] |= bit_of(key, i);
    f->new_keys++;
}

int tly_idfilter_may_hold(const struct tly_idfilter *f, int64_t key)
{
    const uint32_t *block = block_of(f, key);

    for (int i = 0; i < BLOCK_WORDS; i++)
        if (!(block[i] & bit_of(key, i)))
            return 0;
    return 1;
}

void tly_idfilter_destroy(struct tly_idfilter *f)
{
    if (!f)
        return;
    tly_free(f->blob);
    tly_free(f);
}

static int create(struct tly_idfilter **out, uint64_t nblocks)
{
    struct tly_idfilter *f = tly_calloc(1, sizeof *f);
    uint64_t mark = BYTE_ORDER_MARK;

    if (!f || !(f->blob = tly_calloc(1, HEADER_BYTES + nblocks * BLOCK_BYTES))) {
        tly_free(f);
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    }
    memcpy(f->blob, &mark, sizeof mark);
    f->words = (uint32_t *)(void *)(f->blob + HEADER_BYTES);
    f->nblocks = nblocks;
    f->capacity = (int64_t)(nblocks * BLOCK_BYTES);     /* 8 bits per key */
    *out = f;
    return TLY_OK;
}

static int query_int(struct tly_ledger *l, const char *sql, int64_t *value)
{
    sqlite3_stmt *q;
    int rc, err;

    if ((err = tly_ledger_prepare(l, sql, &q)))
        return err;
    rc = sqlite3_step(q);
    *value = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? TLY_OK : tly_ledger_error(l, "reading run ids");
}

/* Adds every key 'sql' yields. */
static int add_all(struct tly_ledger *l, struct tly_idfilter *f, const char *sql)
{
    sqlite3_stmt *q;
    int rc, err;

    if ((err = tly_ledger_prepare(l, sql, &q)))
        return err;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        tly_idfilter_add(f, sqlite3_column_int64(q, 0));
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? TLY_OK : tly_ledger_error(l, "reading run ids");
}

/*
 * Sized for twice the runs there are (max(rowid) counts them: runs are
 * never deleted), so it serves until they have doubled.
 */
int tly_idfilter_new(int64_t runs, struct tly_idfilter **out)
{
    uint64_t nblocks = ((uint64_t)runs * 2 + BLOCK_BYTES - 1) / BLOCK_BYTES;
    int err;

    nblocks = nblocks < MIN_BLOCKS ? MIN_BLOCKS : nblocks > MAX_BLOCKS ? MAX_BLOCKS : nblocks;
    if ((err = create(out, nblocks)))
        return err;
    (*out)->unsaved = 1;
    return TLY_OK;
}

int tly_idfilter_build(struct tly_ledger *l, struct tly_idfilter **out)
{
    struct tly_idfilter *f;
    int64_t runs;
    int err;

    *out = NULL;
    if ((err = query_int(l, "SELECT COALESCE(max(rowid), 0) FROM runs", &runs)) ||
        (err = tly_idfilter_new(runs, &f)))
        return err;
    if ((err = add_all(l, f, "SELECT id_key FROM run_ids")))
        goto fail;
    tly_idfilter_merged(f);
    if ((err = add_all(l, f, "SELECT id_key FROM run_ids_new")))
        goto fail;
    *out = f;
    return TLY_OK;
fail:
    tly_idfilter_destroy(f);
    return err;
}

/* A count past run_ids_new's is clamped: the counts only decide when the filter is full. */
void tly_idfilter_moved(struct tly_idfilter *f, int64_t keys)
{
    if (keys > f->new_keys)
        keys = f->new_keys;
    if (keys > 0) {
        f->old_keys += keys;
        f->new_keys -= keys;
    }
}

void tly_idfilter_merged(struct tly_idfilter *f)
{
    tly_idfilter_moved(f, f->new_keys);
}

/* The stored filter, or NULL when there is none to trust. */
static int read_stored(struct tly_ledger *l, struct tly_idfilter **out)
{
    sqlite3_stmt *q;
    sqlite3_blob *blob = NULL;
    struct tly_idfilter *f = NULL;
    int64_t bytes = 0, meta[NMETA];
    uint64_t mark = BYTE_ORDER_MARK;
    int rc, err, found = 1;

    *out = NULL;
    for (int i = 0; i < NMETA; i++) {
        int here;
        if ((err = tly_ledger_get_int(l, meta_key[i], &meta[i], &here)))
            return err;
        found &= here;
    }
    if ((err = tly_ledger_prepare(l, "SELECT length(bits) FROM run_filter WHERE id = 1", &q)))
        return err;
    if ((rc = sqlite3_step(q)) == SQLITE_ROW)
        bytes = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tly_ledger_error(l, "reading run_filter");
    if (rc == SQLITE_DONE || !found || bytes < HEADER_BYTES + MIN_BLOCKS * BLOCK_BYTES ||
        bytes > HEADER_BYTES + (int64_t)MAX_BLOCKS * BLOCK_BYTES || (bytes - HEADER_BYTES) % BLOCK_BYTES)
        return TLY_OK;
    if ((err = create(&f, (uint64_t)(bytes - HEADER_BYTES) / BLOCK_BYTES)))
        return err;
    if (sqlite3_blob_open(l->db, "main", "run_filter", "bits", 1, 0, &blob) != SQLITE_OK ||
        sqlite3_blob_read(blob, f->blob, (int)bytes, 0) != SQLITE_OK) {
        err = tly_ledger_error(l, "reading run_filter");
        sqlite3_blob_close(blob);
        tly_idfilter_destroy(f);
        return err;
    }
    sqlite3_blob_close(blob);
    if (memcmp(f->blob, &mark, sizeof mark) || meta[META_KEYS] < 0 || meta[META_CAPACITY] != f->capacity ||
        meta[META_CHECKSUM] != (int64_t)XXH3_64bits(f->blob, (size_t)bytes)) {
        tly_idfilter_destroy(f);
        return TLY_OK;
    }
    f->old_keys = meta[META_KEYS];
    *out = f;
    return TLY_OK;
}

int tly_idfilter_load(struct tly_ledger *l, struct tly_idfilter **out)
{
    struct tly_idfilter *f;
    int err;

    if ((err = read_stored(l, &f)))
        return err;
    if (f && (err = add_all(l, f, "SELECT id_key FROM run_ids_new"))) {
        tly_idfilter_destroy(f);
        return err;
    }
    if (f && (f->old_keys + f->new_keys <= f->capacity || f->nblocks == MAX_BLOCKS)) {
        *out = f;
        return TLY_OK;
    }
    tly_idfilter_destroy(f);
    return tly_idfilter_build(l, out);
}

int tly_idfilter_unsaved(const struct tly_idfilter *f)
{
    return f->unsaved;
}

/*
 * The row keeps its size from save to save, so the blob is written in
 * place.  Its figures go to the state table: an UPDATE of the row would
 * rewrite the whole 20 MB record.  Saved with the keys of run_ids, which
 * a load does not add again.
 */
int tly_idfilter_save(struct tly_ledger *l, struct tly_idfilter *f)
{
    sqlite3_stmt *q;
    sqlite3_blob *blob = NULL;
    int64_t bytes = HEADER_BYTES + (int64_t)(f->nblocks * BLOCK_BYTES);
    int rc, err, same_size;

    if ((err = tly_ledger_prepare(l, "SELECT EXISTS(SELECT 1 FROM run_filter WHERE id = 1 AND length(bits) = ?1)",
                                  &q)))
        return err;
    sqlite3_bind_int64(q, 1, bytes);
    rc = sqlite3_step(q);
    same_size = rc == SQLITE_ROW && sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW)
        return tly_ledger_error(l, "reading run_filter");
    if (!same_size) {
        if ((err = tly_ledger_prepare(l, "INSERT OR REPLACE INTO run_filter(id, bits) VALUES(1, zeroblob(?1))",
                                      &q)))
            return err;
        sqlite3_bind_int64(q, 1, bytes);
        err = tly_ledger_step_done(l, q);
        sqlite3_finalize(q);
        if (err)
            return err;
    }
    if (sqlite3_blob_open(l->db, "main", "run_filter", "bits", 1, 1, &blob) != SQLITE_OK ||
        sqlite3_blob_write(blob, f->blob, (int)bytes, 0) != SQLITE_OK) {
        err = tly_ledger_error(l, "writing run_filter");
        sqlite3_blob_close(blob);
        return err;
    }
    if (sqlite3_blob_close(blob) != SQLITE_OK)
        return tly_ledger_error(l, "writing run_filter");
    if ((err = tly_ledger_set_int(l, meta_key[META_KEYS], f->old_keys)) ||
        (err = tly_ledger_set_int(l, meta_key[META_CAPACITY], f->capacity)) ||
        (err = tly_ledger_set_int(l, meta_key[META_CHECKSUM], (int64_t)XXH3_64bits(f->blob, (size_t)bytes))))
        return err;
    f->unsaved = 0;
    return TLY_OK;
}
