/*
 * rundays.c — the in-memory run_day aggregate of one ingest (see rundays.h).
 *
 * A bundle of ten million runs holds a few hundred thousand (account, day,
 * runnable) groups; the aggregate holds at most FLUSH_AT of them before it
 * is written out, so memory stays bounded whatever the bundle's size.  A
 * group may be flushed several times: the upsert adds to what is there.
 */
#include "rundays.h"
#include "alloc.h"
#include "error.h"
#include "strmap.h"
#include "timeutil.h"

#include <stdint.h>
#include <string.h>

#define FLUSH_AT 65536            /* groups held before an upsert */
#define NSLOTS (2 * FLUSH_AT)     /* the index stays at most half full */
#define ID_MAX 128

/*
 * One (account, day, runnable).  Its key, "account\x1fkind\x1fresource\x1f"
 * then the day's 8 bytes, is in the key arena; the hash is kept so a probe
 * compares keys only on a full hash match (the table is touched once per
 * run loaded: it must cost a cache miss or two, not a string compare chain).
 */
struct group {
    uint64_t hash;
    size_t key_off;
    unsigned short key_len;
    unsigned char alen, klen, rlen;
    int late;                   /* the day is before the account's last close */
    int64_t day, runs, first_ts;
};

struct tly_rundays {
    struct tly_ledger *l;
    int64_t bundle_id;
    sqlite3_stmt *upsert, *upsert_late;
    uint32_t *slots;            /* NSLOTS; 0 = empty, else a groups[] index + 1 */
    struct group *groups;
    size_t ngroups, cap;
    char *keys;                 /* the key arena */
    size_t keys_len, keys_cap;
    struct tly_strmap closes;   /* account_id -> closed_ends[] */
    char **close_ids;           /* the map's keys, owned */
    int64_t *closed_ends;
    size_t ncloses, ids_cap, ends_cap;
};

static const char upsert_sql[] =
    "INSERT INTO run_day(account_id, day, kind, resource_id, runs, first_ts)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,"
    " first_ts = min(first_ts, excluded.first_ts)";
static const char upsert_late_sql[] =
    "INSERT INTO late_run_day(account_id, day, kind, resource_id, runs, first_ts, bundle_id)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,"
    " first_ts = min(first_ts, excluded.first_ts)";

static int load_closes(struct tly_rundays *rd)
{
    sqlite3_stmt *q;
    int rc, err;

    if ((err = tly_ledger_prepare(rd->l, "SELECT account_id, closed_end FROM closes", &q)))
        return err;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char *id;
        if (tly_grow(&rd->close_ids, &rd->ids_cap, rd->ncloses + 1, sizeof *rd->close_ids) ||
            tly_grow(&rd->closed_ends, &rd->ends_cap, rd->ncloses + 1, sizeof *rd->closed_ends))
            break;
        if (!(id = tly_strdup((const char *)sqlite3_column_text(q, 0))))
            break;
        rd->close_ids[rd->ncloses] = id;
        rd->closed_ends[rd->ncloses] = sqlite3_column_int64(q, 1);
        if (tly_strmap_put(&rd->closes, id, (int)rd->ncloses)) {
            tly_free(id);
            break;
        }
        rd->ncloses++;
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    if (rc != SQLITE_DONE)
        return tly_ledger_error(rd->l, "reading closes");
    return TLY_OK;
}

int tly_rundays_create(struct tly_rundays **out, struct tly_ledger *l, int64_t bundle_id)
{
    struct tly_rundays *rd = tly_calloc(1, sizeof *rd);
    int err;

    *out = NULL;
    if (!rd)
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    rd->l = l;
    rd->bundle_id = bundle_id;
    tly_strmap_init(&rd->closes);
    err = (rd->slots = tly_calloc(NSLOTS, sizeof *rd->slots)) ? TLY_OK
          : tly_error(TLY_ERR_NOMEM, "out of memory");
    if (err || (err = tly_ledger_prepare(l, upsert_sql, &rd->upsert)) ||
        (err = tly_ledger_prepare(l, upsert_late_sql, &rd->upsert_late)) || (err = load_closes(rd))) {
        tly_rundays_destroy(rd);
        return err;
    }
    *out = rd;
    return TLY_OK;
}

static void clear(struct tly_rundays *rd)
{
    if (rd->ngroups && rd->slots)
        memset(rd->slots, 0, NSLOTS * sizeof *rd->slots);
    rd->ngroups = 0;
    rd->keys_len = 0;
}

void tly_rundays_destroy(struct tly_rundays *rd)
{
    if (!rd)
        return;
    tly_free(rd->slots);
    tly_free(rd->groups);
    tly_free(rd->keys);
    sqlite3_finalize(rd->upsert);
    sqlite3_finalize(rd->upsert_late);
    for (size_t i = 0; i < rd->ncloses; i++)
        tly_free(rd->close_ids[i]);
    tly_free(rd->close_ids);
    tly_free(rd->closed_ends);
    tly_strmap_release(&rd->closes);
    tly_free(rd);
}

static int upsert(struct tly_rundays *rd, sqlite3_stmt *st, const struct group *g)
{
    const char *key = rd->keys + g->key_off;
    sqlite3_bind_text(st, 1, key, g->alen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, g->day);
    sqlite3_bind_text(st, 3, key + g->alen + 1, g->klen, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, key + g->alen + g->klen + 2, g->rlen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, g->runs);
    sqlite3_bind_int64(st, 6, g->first_ts);
    if (st == rd->upsert_late)
        sqlite3_bind_int64(st, 7, rd->bundle_id);
    return tly_ledger_step_done(rd->l, st);
}

int tly_rundays_flush(struct tly_rundays *rd)
{
    int err = TLY_OK;

    for (size_t i = 0; i < rd->ngroups && !err; i++) {
        const struct group *g = &rd->groups[i];
        if (!(err = upsert(rd, rd->upsert, g)) && g->late)
            err = upsert(rd, rd->upsert_late, g);
    }
    clear(rd);
    return err;
}

static size_t make_key(char *key, const char *a, size_t alen, const char *k, size_t klen,
                       const char *r, size_t rlen, int64_t day)
{
    size_t n = 0;
    memcpy(key, a, alen);
    n += alen;
    key[n++] = '\x1f';
    memcpy(key + n, k, klen);
    n += klen;
    key[n++] = '\x1f';
    memcpy(key + n, r, rlen);
    n += rlen;
    key[n++] = '\x1f';
    memcpy(key + n, &day, sizeof day);
    return n + sizeof day;
}

/* A word-at-a-time mix (splitmix64's finaliser): good spread, no per-byte loop. */
static uint64_t hash_key(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebULL;
    return h ^ (h >> 29);
}

static int new_group(struct tly_rundays *rd, uint32_t *slot, uint64_t h, const char *key, size_t n,
                     size_t alen, size_t klen, size_t rlen, int64_t day, int64_t ts)
{
    struct group *g;

    if (tly_grow(&rd->groups, &rd->cap, rd->ngroups + 1, sizeof *rd->groups) ||
        tly_grow(&rd->keys, &rd->keys_cap, rd->keys_len + n, 1))
        return tly_error(TLY_ERR_NOMEM, "out of memory");
    memcpy(rd->keys + rd->keys_len, key, n);
    g = &rd->groups[rd->ngroups++];
    *g = (struct group){ h, rd->keys_len, (unsigned short)n, (unsigned char)alen, (unsigned char)klen,
                         (unsigned char)rlen, 0, day, 1, ts };
    rd->keys_len += n;
    *slot = (uint32_t)rd->ngroups;
    return TLY_OK;
}

/* The slot of 'key': its group's, or the empty one where it goes. */
static uint32_t *find(struct tly_rundays *rd, uint64_t h, const char *key, size_t n)
{
    for (size_t i = h & (NSLOTS - 1);; i = (i + 1) & (NSLOTS - 1)) {
        const struct group *g;
        if (!rd->slots[i])
            return &rd->slots[i];
        g = &rd->groups[rd->slots[i] - 1];
        if (g->hash == h && g->key_len == n && !memcmp(rd->keys + g->key_off, key, n))
            return &rd->slots[i];
    }
}

int tly_rundays_add(struct tly_rundays *rd, const char *account_id, size_t alen,
                    const char *kind, size_t klen, const char *resource_id, size_t rlen, int64_t ts)
{
    char key[3 * ID_MAX + 16];
    int64_t day = tly_day_of(ts);
    uint64_t h;
    uint32_t *slot;
    size_t n;
    int idx, err;

    if (alen > ID_MAX || klen > ID_MAX || rlen > ID_MAX)
        return tly_error(TLY_ERR_INPUT, "run id longer than %d bytes", ID_MAX);
    n = make_key(key, account_id, alen, kind, klen, resource_id, rlen, day);
    h = hash_key(key, n);
    slot = find(rd, h, key, n);
    if (*slot) {
        struct group *g = &rd->groups[*slot - 1];
        g->runs++;
        if (ts < g->first_ts)
            g->first_ts = ts;
        return TLY_OK;
    }
    if (rd->ngroups >= FLUSH_AT) {
        if ((err = tly_rundays_flush(rd)))
            return err;
        slot = find(rd, h, key, n);
    }
    if ((err = new_group(rd, slot, h, key, n, alen, klen, rlen, day, ts)))
        return err;
    /* closed_end is a UTC midnight: a day is late as a whole */
    key[alen] = '\0';
    if ((idx = tly_strmap_get(&rd->closes, key)) >= 0)
        rd->groups[rd->ngroups - 1].late = ts < rd->closed_ends[idx];
    return TLY_OK;
}
