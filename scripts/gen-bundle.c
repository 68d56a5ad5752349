/*
 * gen-bundle.c — deterministic generator of large, valid Tally bundles.
 *
 *   gen-bundle [--accounts N] [--runs N] [--deployments N] [--days N]
 *              [--seed N] [--start YYYY-MM-DD] [--gzip] [--level 1-9]
 *              [--day K | --from-day K --to-day L] OUTDIR
 *
 * Writes OUTDIR/{accounts,credits,deployments,runs}.csv (".csv.gz" with
 * --gzip), OUTDIR/manifest.csv (file, rows, sha256 of the bytes as stored,
 * period_start, period_end) and the rate card every hardware id comes from,
 * OUTDIR/rates.csv (not a bundle file: Tally lists it as skipped when the
 * directory is ingested; pass it to --rates).
 *
 * The bundle describes --days days from --start (default 2026-10-01):
 * --runs runs and --deployments deployments.csv events spread evenly over
 * them.  --day K (or --from-day/--to-day) writes only those days, for an
 * incremental night: day K >= --days continues at the same density, and
 * its ids never collide with the full bundle's because every id derives
 * from a global position (run number, event number, day).  The same
 * options always give the same bytes: all randomness comes from
 * splitmix64 streams seeded from (--seed, day, stream), never rand().
 *
 * Memory does not grow with --runs: runs are formatted straight into a
 * 1 MiB buffer, and deployments are generated one day at a time (a day's
 * events are sorted by time, then each one moves its deployment's state
 * machine, so every lifecycle is consistent: deploy, scale*, undeploy, ...;
 * finetune_start, finetune_end, ...).  With --day K the days before K are
 * replayed without output to rebuild that state.
 *
 * What the data looks like (valid per inputs.md, nothing quarantined):
 * account i is edition gale / agent-platform / process by i mod 3; it deploys
 * three runnables of its edition's kind on day 0 and runs only those; it has
 * eight charged deployment slots over its edition's categories (models,
 * fine-tuning jobs, guardrails, scripts, OCR, browser automation); it gets
 * the free grant (75 credits, 10,000 runs) on day 0 and a plan grant of
 * credits and runs at every cycle start, plus an occasional top-up.
 */
#include <errno.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define BUF_CAP   (1u << 20)    /* output buffer; drained at a row boundary */
#define ROW_MAX   4096          /* no row is longer; drain leaves this free */
#define RUNNABLES 3             /* runnables per account */
#define SLOTS     8             /* charged deployment slots per account */

/* ------------------------------------------------------------------ PRNG */

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, full period. */
struct rng {
    uint64_t s;
};

/* splitmix64's finaliser: a bijection of 64-bit values. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(struct rng *r)
{
    return mix64(r->s += 0x9E3779B97F4A7C15ull);
}

/* A uniform integer in [0, n), n < 2^32 (multiply-shift, no modulo bias worth naming). */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* An independent stream for (seed, day, stream id). */
static struct rng rng_for(uint64_t seed, uint64_t day, uint64_t stream)
{
    struct rng r = { seed ^ 0x5EEDull };
    r.s = rng_next(&r) ^ (day * 0xD1B54A32D192ED03ull);
    r.s = rng_next(&r) ^ (stream * 0x8CB92BA72F3D8DD7ull);
    (void)rng_next(&r);
    return r;
}

/* ------------------------------------------------------------------ dates */

/* Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static unsigned days_in_month(int y, unsigned m)
{
    static const unsigned n[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : n[m - 1];
}

/* "YYYY-MM-DD" of a day number into 'out' (11 bytes). */
static void format_date(char *out, int64_t day)
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 11, "%04d-%02u-%02u", y, m, d);
}

/* ------------------------------------------------------------------ output */

/*
 * One output file: rows are appended to 'buf' (never failing: the caller
 * drains at each row end, which keeps ROW_MAX bytes free); a drain deflates
 * (--gzip) and writes, hashing exactly the bytes stored.
 */
struct out {
    const char *name;           /* base name, e.g. "runs.csv.gz" */
    char path[4096];
    FILE *f;
    int gz;
    z_stream z;
    unsigned char *zbuf;
    struct sha256_ctx sha;
    char *buf;
    size_t len;
    uint64_t rows;              /* data rows (header excluded) */
};

static int write_stored(struct out *o, const void *p, size_t n)
{
    sha256_update(&o->sha, n, p);
    if (n && fwrite(p, 1, n, o->f) != n) {
        fprintf(stderr, "gen-bundle: cannot write '%s': %s\n", o->path, strerror(errno));
        return -1;
    }
    return 0;
}

static int deflate_some(struct out *o, int flush)
{
    int rc;
    do {
        o->z.next_out = o->zbuf;
        o->z.avail_out = BUF_CAP;
        rc = deflate(&o->z, flush);
        if (rc == Z_STREAM_ERROR) {
            fprintf(stderr, "gen-bundle: deflate failed on '%s'\n", o->path);
            return -1;
        }
        if (write_stored(o, o->zbuf, BUF_CAP - o->z.avail_out))
            return -1;
    } while (o->z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    return 0;
}

static int out_drain(struct out *o)
{
    if (!o->len)
        return 0;
    if (o->gz) {
        o->z.next_in = (unsigned char *)o->buf;
        o->z.avail_in = (uInt)o->len;
        if (deflate_some(o, Z_NO_FLUSH))
            return -1;
    } else if (write_stored(o, o->buf, o->len)) {
        return -1;
    }
    o->len = 0;
    return 0;
}

static int out_open(struct out *o, const char *dir, const char *base, int gz, int level)
{
    memset(o, 0, sizeof *o);
    o->gz = gz;
    if ((size_t)snprintf(o->path, sizeof o->path, "%s/%s%s", dir, base, gz ? ".gz" : "")
        >= sizeof o->path) {
        fprintf(stderr, "gen-bundle: path too long: '%s'\n", dir);
        return -1;
    }
    o->name = strrchr(o->path, '/') + 1;
    sha256_init(&o->sha);
    o->buf = malloc(BUF_CAP);
    o->zbuf = gz ? malloc(BUF_CAP) : NULL;
    if (!o->buf || (gz && !o->zbuf)) {
        fprintf(stderr, "gen-bundle: out of memory\n");
        return -1;
    }
    /* windowBits 15 + 16: a gzip wrapper with mtime 0 and no name (gzip -n). */
    if (gz && deflateInit2(&o->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        fprintf(stderr, "gen-bundle: deflateInit2 failed\n");
        free(o->zbuf);
        o->zbuf = NULL;
        o->gz = 0;
        return -1;
    }
    o->f = fopen(o->path, "wb");
    if (!o->f) {
        fprintf(stderr, "gen-bundle: cannot create '%s': %s\n", o->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Finishes the file; 'hex' receives the sha256 of the stored bytes (65 bytes). */
static int out_close(struct out *o, char *hex)
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    int err = 0;

    if (o->f) {
        err = out_drain(o);
        if (!err && o->gz) {
            o->z.next_in = NULL;
            o->z.avail_in = 0;
            err = deflate_some(o, Z_FINISH);
        }
        if (fclose(o->f) != 0 && !err) {
            fprintf(stderr, "gen-bundle: cannot write '%s': %s\n", o->path, strerror(errno));
            err = -1;
        }
        o->f = NULL;
    }
    if (o->gz)
        deflateEnd(&o->z);
    sha256_digest(&o->sha, sizeof digest, digest);
    for (size_t i = 0; hex && i < sizeof digest; i++) {
        hex[2 * i] = "0123456789abcdef"[digest[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[digest[i] & 15];
    }
    if (hex)
        hex[2 * sizeof digest] = '\0';
    free(o->buf);
    free(o->zbuf);
    o->buf = NULL;
    o->zbuf = NULL;
    return err;
}

static void put(struct out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(struct out *o, char c)
{
    o->buf[o->len++] = c;
}

/* Decimal, by hand: snprintf per field would dominate the run time. */
static void putu(struct out *o, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        o->buf[o->len++] = tmp[--n];
}

/* Zero-padded to 'width' digits. */
static void putu_w(struct out *o, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o->buf[o->len + (size_t)i] = (char)('0' + v % 10);
        v /= 10;
    }
    o->len += (size_t)width;
}

/* 'digits' lowercase hex digits of the low bits of v. */
static void putx_w(struct out *o, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        o->buf[o->len + (size_t)i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
    o->len += (size_t)digits;
}

/*
 * Run n's event_id, shaped like the random UUIDs real exports carry.  Random
 * ids are what make the dedup index expensive (sequential ones only append
 * to it), so the benchmark must have them.  The first 64 bits are a
 * bijection of n, so two runs never share an id.
 */
static void put_run_id(struct out *o, uint64_t n)
{
    uint64_t hi = mix64(n + 0x9E3779B97F4A7C15ull), lo = mix64(hi ^ 0x52554E5F49445321ull);

    putx_w(o, hi >> 32, 8);
    putc_(o, '-');
    putx_w(o, hi >> 16, 4);
    putc_(o, '-');
    putx_w(o, hi, 4);
    putc_(o, '-');
    putx_w(o, lo >> 48, 4);
    putc_(o, '-');
    putx_w(o, lo, 12);
}

/* An instant: the day's "YYYY-MM-DDT" prefix plus hh:mm:ssZ of 'sec' in it. */
static void put_ts(struct out *o, const char *date, uint32_t sec)
{
    put(o, date, 10);
    putc_(o, 'T');
    putu_w(o, sec / 3600, 2);
    putc_(o, ':');
    putu_w(o, sec / 60 % 60, 2);
    putc_(o, ':');
    putu_w(o, sec % 60, 2);
    putc_(o, 'Z');
}

/* Ends a data row: counts it and drains when the buffer is nearly full. */
static int end_row(struct out *o)
{
    putc_(o, '\n');
    o->rows++;
    return o->len > BUF_CAP - ROW_MAX ? out_drain(o) : 0;
}

/* ------------------------------------------------------------------ model */

struct opts {
    uint64_t accounts, runs, deployments, days, seed;
    int64_t start;              /* day number of day 0 */
    uint64_t from_day, to_day;  /* inclusive */
    int gz, level;
    const char *dir;
};

enum edition { GALE, AGENT_PLATFORM, PROCESS };
static const char *const edition_id[] = { "gale", "agent-platform", "process" };
static const char *const runnable_kind[] = { "agent", "tool", "workflow" };

/* The fixed rate card.  Prices in micro-credits per hour are only for reading. */
static const struct hw {
    const char *id, *category, *description, *vcpu, *memory_gb, *price;
} rate_card[] = {
    { "cpu.browser-2x4", "browser",   "Headless Chromium 2 vCPU / 4 GB", "2", "4", "0.150000" },
    { "cpu.guard-small", "guardrail", "2 vCPU / 4 GB",                   "2", "4", "0.050000" },
    { "cpu.script-1x2",  "script",    "1 vCPU / 2 GB",                   "1", "2", "0.100000" },
    { "cpu.script-2x4",  "script",    "2 vCPU / 4 GB",                   "2", "4", "0.200000" },
    { "gpu.a100-80g",    "model",     "NVIDIA A100 80GB",                "",  "",  "4.000000" },
    { "gpu.a10g-24g",    "model",     "NVIDIA A10G 24GB",                "",  "",  "2.000000" },
    { "gpu.l4-24g",      "model",     "NVIDIA L4 24GB",                  "",  "",  "0.800000" },
    { "gpu.t4-ocr",      "ocr",       "NVIDIA T4 16GB",                  "",  "",  "0.125000" },
};

/* Slot kinds and which hardware they may use. */
enum slot_kind { S_MODEL, S_FINETUNE, S_GUARDRAIL, S_SCRIPT, S_OCR, S_BROWSER };
static const char *const slot_category[] = { "model", "model", "guardrail", "script", "ocr", "browser" };
static const char *const slot_prefix[] = { "model", "model", "gr", "script", "ocr", "browser" };

/* The eight slots of an account of each edition (what its tabs show). */
static const enum slot_kind edition_slots[3][SLOTS] = {
    { S_MODEL, S_MODEL, S_MODEL, S_FINETUNE, S_GUARDRAIL, S_GUARDRAIL, S_MODEL, S_GUARDRAIL },
    { S_MODEL, S_MODEL, S_FINETUNE, S_GUARDRAIL, S_SCRIPT, S_SCRIPT, S_SCRIPT, S_GUARDRAIL },
    { S_MODEL, S_FINETUNE, S_GUARDRAIL, S_SCRIPT, S_OCR, S_OCR, S_BROWSER, S_BROWSER },
};

static const char *slot_hardware(enum slot_kind k, unsigned slot)
{
    switch (k) {
    case S_MODEL:     return (const char *[]){ "gpu.a10g-24g", "gpu.l4-24g", "gpu.a100-80g" }[slot % 3];
    case S_FINETUNE:  return "gpu.a100-80g";
    case S_GUARDRAIL: return "cpu.guard-small";
    case S_SCRIPT:    return slot % 2 ? "cpu.script-2x4" : "cpu.script-1x2";
    case S_OCR:       return "gpu.t4-ocr";
    case S_BROWSER:   return "cpu.browser-2x4";
    }
    return "";
}

/* Per-slot state; 'gen' numbers fine-tuning jobs so each start has its own id. */
struct slot {
    uint8_t running, units, replicas;
    uint32_t gen;
};

static enum edition account_edition(uint64_t a)
{
    return (enum edition)(a % 3);
}

/* Items spread evenly over days: how many of 'total' fall on day d (d may be >= days). */
static uint64_t share(uint64_t total, uint64_t days, uint64_t d, uint64_t *before)
{
    /* 128-bit: total * (d + 1) may pass 2^64 for absurd inputs. */
    unsigned __int128 lo = (unsigned __int128)total * d / days;
    unsigned __int128 hi = (unsigned __int128)total * (d + 1) / days;
    *before = (uint64_t)lo;
    return (uint64_t)(hi - lo);
}

/* ------------------------------------------------------------------ files */

static int write_rates(const struct opts *op)
{
    char path[4200];
    FILE *f;
    int err = 0;

    snprintf(path, sizeof path, "%s/rates.csv", op->dir);
    if (!(f = fopen(path, "wb"))) {
        fprintf(stderr, "gen-bundle: cannot create '%s': %s\n", path, strerror(errno));
        return -1;
    }
    if (fputs("hardware,category,description,vcpu,memory_gb,credits_per_hour,"
              "effective_from,effective_to\n", f) < 0)
        err = -1;
    for (size_t i = 0; !err && i < sizeof rate_card / sizeof rate_card[0]; i++) {
        const struct hw *h = &rate_card[i];
        if (fprintf(f, "%s,%s,%s,%s,%s,%s,2000-01-01T00:00:00Z,\n", h->id, h->category,
                    h->description, h->vcpu, h->memory_gb, h->price) < 0)
            err = -1;
    }
    if (fclose(f) != 0)
        err = -1;
    if (err)
        fprintf(stderr, "gen-bundle: cannot write '%s': %s\n", path, strerror(errno));
    return err;
}

static void put_account(struct out *o, uint64_t a)
{
    puts_(o, "acct-");
    putu_w(o, a, 6);
}

/* Day number (relative to day 0) of account a's cycle anchor: up to 27 days before the data. */
static int64_t account_anchor(const struct opts *op, uint64_t a)
{
    return op->start - (int64_t)(a % 28);
}

static int write_accounts(const struct opts *op, struct out *o)
{
    char date[11];
    puts_(o, "account_id,name,edition,admin_email,cycle_anchor,negative_limit,"
             "low_threshold,updated_at\n");
    for (uint64_t a = 0; a < op->accounts; a++) {
        put_account(o, a);
        puts_(o, ",Account ");
        putu_w(o, a, 6);
        putc_(o, ',');
        puts_(o, edition_id[account_edition(a)]);
        puts_(o, ",admin@acct-");
        putu_w(o, a, 6);
        puts_(o, ".example,");
        format_date(date, account_anchor(op, a));
        put(o, date, 10);
        putc_(o, ',');
        putu(o, a % 4 == 0 ? 100 : 0);          /* a quarter may carry debt */
        putc_(o, ',');
        putu(o, a % 5 * 10);
        putc_(o, ',');
        format_date(date, op->start - 1);
        put_ts(o, date, 12 * 3600);
        if (end_row(o))
            return -1;
    }
    return 0;
}

static void put_credit(struct out *o, uint64_t a, const char *date, uint32_t sec, uint64_t day,
                       unsigned k, const char *pool, const char *type, uint64_t amount,
                       const char *ref)
{
    puts_(o, "txn-");
    putu_w(o, day, 5);
    putc_(o, '-');
    putu_w(o, a, 6);
    putc_(o, '-');
    putu(o, k);
    putc_(o, ',');
    put_account(o, a);
    putc_(o, ',');
    put_ts(o, date, sec);
    putc_(o, ',');
    puts_(o, pool);
    putc_(o, ',');
    puts_(o, type);
    putc_(o, ',');
    putu(o, amount);
    puts_(o, ",,");
    puts_(o, ref);
}

/* Is day number 'day' a cycle start of an account anchored on day number 'anchor'? */
static int is_cycle_start(int64_t anchor, int64_t day)
{
    int ay, y;
    unsigned am, ad, m, d;
    civil_from_days(anchor, &ay, &am, &ad);
    civil_from_days(day, &y, &m, &d);
    return d == (ad < days_in_month(y, m) ? ad : days_in_month(y, m));
}

/* Credits of day d: free grants on day 0, plan grants at cycle starts, some top-ups. */
static int write_credits_day(const struct opts *op, struct out *o, uint64_t d)
{
    char date[11];
    int64_t day = op->start + (int64_t)d;
    uint64_t runs_month = op->runs / (op->accounts ? op->accounts : 1) * 31 / op->days * 2 + 1000;
    struct rng r = rng_for(op->seed, d, 3);

    format_date(date, day);
    for (uint64_t a = 0; a < op->accounts; a++) {
        unsigned k = 0;
        if (d == 0) {
            put_credit(o, a, date, 0, d, k++, "credits", "free", 75, "Free tier");
            if (end_row(o))
                return -1;
            put_credit(o, a, date, 0, d, k++, "runs", "free", 10000, "Free tier");
            if (end_row(o))
                return -1;
        }
        if (d == 0 || is_cycle_start(account_anchor(op, a), day)) {
            put_credit(o, a, date, 0, d, k++, "credits", "grant", 10000 + a % 7 * 5000, "Plan");
            if (end_row(o))
                return -1;
            put_credit(o, a, date, 0, d, k++, "runs", "grant", runs_month, "Plan");
            if (end_row(o))
                return -1;
        }
        if (rng_below(&r, 100) < 3) {
            put_credit(o, a, date, 9 * 3600 + rng_below(&r, 8 * 3600), d, k++, "credits",
                       "topup", 100 * (1 + rng_below(&r, 10)), "Order");
            if (end_row(o))
                return -1;
        }
    }
    return 0;
}

/* One generated deployments.csv event of a day, before sorting. */
struct devent {
    uint32_t sec;
    uint32_t idx;
    uint32_t account;           /* < accounts (checked at startup) */
    uint8_t slot;
};

static int cmp_devent(const void *x, const void *y)
{
    const struct devent *a = x, *b = y;
    if (a->sec != b->sec)
        return a->sec < b->sec ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void put_runnable(struct out *o, uint64_t a, unsigned k)
{
    puts_(o, runnable_kind[account_edition(a)]);
    putc_(o, '-');
    putu_w(o, a, 6);
    putc_(o, '-');
    putu(o, k);
}

/* Row prefix shared by every deployments.csv row. */
static void put_dep_head(struct out *o, uint64_t id, uint64_t a, const char *date, uint32_t sec,
                         const char *category, const char *action)
{
    puts_(o, "dep-");
    putu_w(o, id, 10);
    putc_(o, ',');
    put_account(o, a);
    putc_(o, ',');
    put_ts(o, date, sec);
    putc_(o, ',');
    puts_(o, category);
    putc_(o, ',');
    puts_(o, action);
    putc_(o, ',');
}

/*
 * Writes (o != NULL) or only replays (o == NULL) the deployments.csv events of
 * day d, moving 'slots' and '*next_id' exactly the same way in both cases.
 * 'ev' has room for one day's events (checked by the caller's sizing).
 */
static int deployments_day(const struct opts *op, struct out *o, uint64_t d, struct slot *slots,
                           uint64_t *next_id, struct devent *ev)
{
    char date[11];
    uint64_t before, n = share(op->deployments - op->accounts * RUNNABLES, op->days, d, &before);
    struct rng r = rng_for(op->seed, d, 2);

    format_date(date, op->start + (int64_t)d);
    if (d == 0) {
        /* Every account deploys its runnables at 00:00 of day 0. */
        for (uint64_t a = 0; a < op->accounts; a++)
            for (unsigned k = 0; k < RUNNABLES; k++) {
                uint64_t id = (*next_id)++;
                if (!o)
                    continue;
                put_dep_head(o, id, a, date, 0, runnable_kind[account_edition(a)], "deploy");
                put_runnable(o, a, k);
                puts_(o, ",Runnable ");
                putu(o, k);
                puts_(o, ",owner@acct-");
                putu_w(o, a, 6);
                puts_(o, ".example,,,,,,,,,,");
                if (end_row(o))
                    return -1;
            }
    }
    for (uint64_t i = 0; i < n; i++) {
        ev[i].sec = rng_below(&r, 86400);
        ev[i].idx = (uint32_t)i;
        ev[i].account = rng_below(&r, (uint32_t)op->accounts);
        ev[i].slot = (uint8_t)rng_below(&r, SLOTS);
    }
    qsort(ev, n, sizeof *ev, cmp_devent);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t a = ev[i].account, id = (*next_id)++;
        unsigned s = ev[i].slot;
        struct slot *st = &slots[a * SLOTS + s];
        enum slot_kind kind = edition_slots[account_edition(a)][s];
        const char *action;
        int first = 0;

        /* The state machine: what this slot can do next. */
        if (kind == S_FINETUNE) {
            action = st->running ? "finetune_end" : "finetune_start";
            if (!st->running)
                st->gen++;
            st->running = !st->running;
            st->units = 2;
            st->replicas = 1;
        } else if (!st->running) {
            action = "deploy";
            st->running = 1;
            st->units = 1;
            st->replicas = (uint8_t)(1 + rng_below(&r, 2));
            first = 1;
        } else if (rng_below(&r, 10) < 3) {
            action = "scale";
            st->replicas = (uint8_t)(1 + rng_below(&r, 3));
        } else {
            action = "undeploy";
            st->running = 0;
        }
        if (!o)
            continue;

        put_dep_head(o, id, a, date, ev[i].sec, slot_category[kind], action);
        /* resource_id, resource_name */
        puts_(o, slot_prefix[kind]);
        putc_(o, '-');
        putu_w(o, a, 6);
        putc_(o, '-');
        putu(o, kind == S_FINETUNE ? 0 : s);
        putc_(o, ',');
        if (first || kind == S_FINETUNE) {
            puts_(o, slot_category[kind]);
            putc_(o, ' ');
            putu(o, s);
        }
        puts_(o, ",,");                          /* owner left empty */
        /* deployment_id, deployment_name, deployment_type */
        if (kind == S_MODEL) {
            puts_(o, "dep-");
            putu_w(o, a, 6);
            putc_(o, '-');
            putu(o, s);
            puts_(o, first ? ",prod,dedicated," : ",,,");
        } else if (kind == S_FINETUNE) {
            puts_(o, "ft-");
            putu_w(o, a, 6);
            putc_(o, '-');
            putu(o, st->gen);
            puts_(o, ",,,");
        } else {
            puts_(o, ",,,");
        }
        /* hardware, units, replicas (charged deploy/scale/finetune_start) */
        if (strcmp(action, "undeploy") && strcmp(action, "finetune_end")) {
            puts_(o, slot_hardware(kind, s));
            putc_(o, ',');
            putu(o, st->units);
            putc_(o, ',');
            if (kind != S_FINETUNE)
                putu(o, st->replicas);
        } else {
            puts_(o, ",,");
        }
        putc_(o, ',');
        /* model_type, language, language_version, endpoint */
        if (kind == S_MODEL && first)
            puts_(o, s % 2 ? "fine-tuned" : "base");
        putc_(o, ',');
        if (kind == S_SCRIPT && first) {
            puts_(o, "python,3.1");
            putu(o, 1 + s % 3);
            puts_(o, ",https://api.acct-");
            putu_w(o, a, 6);
            puts_(o, ".example/scripts/");
            putu(o, s);
        } else {
            putc_(o, ',');
            putc_(o, ',');
        }
        if (end_row(o))
            return -1;
    }
    return 0;
}

/*
 * Runs of day d: share(runs) of them, their seconds non-decreasing so the file
 * is sorted by ts; ids derive from the run's global number, so days never
 * collide.
 */
static int runs_day(const struct opts *op, struct out *o, uint64_t d)
{
    char date[11];
    uint64_t first, n = share(op->runs, op->days, d, &first);
    struct rng r = rng_for(op->seed, d, 1);

    format_date(date, op->start + (int64_t)d);
    for (uint64_t j = 0; j < n; j++) {
        uint32_t sec = (uint32_t)((unsigned __int128)j * 86400 / n);
        uint64_t a = rng_below(&r, (uint32_t)op->accounts);
        unsigned k = rng_below(&r, RUNNABLES);

        put_run_id(o, first + j);
        putc_(o, ',');
        put_account(o, a);
        putc_(o, ',');
        put_ts(o, date, sec);
        putc_(o, ',');
        puts_(o, runnable_kind[account_edition(a)]);
        putc_(o, ',');
        put_runnable(o, a, k);
        puts_(o, ",Runnable ");
        putu(o, k);
        puts_(o, rng_below(&r, 100) < 3 ? ",,failed" : ",,ok");
        if (end_row(o))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ main */

static const char usage_text[] =
    "usage: gen-bundle [--accounts N] [--runs N] [--deployments N] [--days N] [--seed N]\n"
    "                  [--start YYYY-MM-DD] [--gzip] [--level 1-9]\n"
    "                  [--day K | --from-day K --to-day L] OUTDIR\n"
    "defaults: --accounts 10 --runs 10000 --deployments 1000 --days 30 --seed 1\n"
    "          --start 2026-10-01 --level 1; all days of --days unless --day/--from-day\n";

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    unsigned long long x;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

static int parse_date(const char *s, int64_t *day)
{
    unsigned y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || sscanf(s, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3 ||
        s[4] != '-' || s[7] != '-' || m < 1 || m > 12 || d < 1 || d > days_in_month((int)y, m) ||
        y < 1970 || y > 9000)
        return -1;
    *day = days_from_civil(y, m, d);
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *op)
{
    int have_from = 0, have_to = 0;
    uint64_t level = 1;

    *op = (struct opts){ 10, 10000, 1000, 30, 1, 0, 0, 0, 0, 1, NULL };
    if (parse_date("2026-10-01", &op->start))
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dest = NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            exit(fflush(stdout) ? 74 : 0);
        } else if (!strcmp(a, "--gzip")) {
            op->gz = 1;
            continue;
        } else if (!strcmp(a, "--start")) {
            if (parse_date(v, &op->start)) {
                fprintf(stderr, "gen-bundle: --start wants YYYY-MM-DD\n");
                return -1;
            }
            i++;
            continue;
        } else if (!strcmp(a, "--accounts")) {
            dest = &op->accounts;
        } else if (!strcmp(a, "--runs")) {
            dest = &op->runs;
        } else if (!strcmp(a, "--deployments")) {
            dest = &op->deployments;
        } else if (!strcmp(a, "--days")) {
            dest = &op->days;
        } else if (!strcmp(a, "--seed")) {
            dest = &op->seed;
        } else if (!strcmp(a, "--level")) {
            dest = &level;
        } else if (!strcmp(a, "--day")) {
            dest = &op->from_day;
            have_from = have_to = 2;
        } else if (!strcmp(a, "--from-day")) {
            dest = &op->from_day;
            have_from = 1;
        } else if (!strcmp(a, "--to-day")) {
            dest = &op->to_day;
            have_to = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "gen-bundle: unknown option '%s'\n%s", a, usage_text);
            return -1;
        } else if (!op->dir) {
            op->dir = a;
            continue;
        } else {
            fprintf(stderr, "gen-bundle: one OUTDIR only ('%s')\n", a);
            return -1;
        }
        if (parse_u64(v, dest)) {
            fprintf(stderr, "gen-bundle: %s wants a non-negative integer\n", a);
            return -1;
        }
        i++;
        if (have_from == 2)
            op->to_day = op->from_day;
    }
    if (!op->dir) {
        fputs(usage_text, stderr);
        return -1;
    }
    if (op->accounts < 1 || op->accounts > 999999 || op->days < 1 || op->days > 36500) {
        fprintf(stderr, "gen-bundle: --accounts must be 1..999999 and --days 1..36500\n");
        return -1;
    }
    if (op->deployments < op->accounts * RUNNABLES) {
        fprintf(stderr, "gen-bundle: --deployments must be at least %d per account (%llu): "
                "every account deploys its runnables\n", RUNNABLES,
                (unsigned long long)(op->accounts * RUNNABLES));
        return -1;
    }
    if (level < 1 || level > 9) {
        fprintf(stderr, "gen-bundle: --level must be 1..9\n");
        return -1;
    }
    op->level = (int)level;
    if (!have_from && !have_to)
        op->to_day = op->days - 1;
    else if (have_from == 1 && !have_to)
        op->to_day = op->from_day;
    if (op->to_day < op->from_day || op->to_day > 36500) {
        fprintf(stderr, "gen-bundle: need --from-day <= --to-day <= 36500\n");
        return -1;
    }
    /* A day's deployment events are held in memory to sort them: bound it. */
    if (op->deployments / op->days > 100000000) {
        fprintf(stderr, "gen-bundle: more than 10^8 deployment events a day\n");
        return -1;
    }
    return 0;
}

static int write_manifest(const struct opts *op, struct out *files, char hex[][65], size_t n)
{
    char path[4200], from[11], to[11];
    FILE *f;
    int err = 0;

    snprintf(path, sizeof path, "%s/manifest.csv", op->dir);
    format_date(from, op->start + (int64_t)op->from_day);
    format_date(to, op->start + (int64_t)op->to_day + 1);
    if (!(f = fopen(path, "wb"))) {
        fprintf(stderr, "gen-bundle: cannot create '%s': %s\n", path, strerror(errno));
        return -1;
    }
    if (fputs("file,rows,sha256,period_start,period_end\n", f) < 0)
        err = -1;
    for (size_t i = 0; !err && i < n; i++)
        if (fprintf(f, "%s,%llu,%s,%sT00:00:00Z,%sT00:00:00Z\n", files[i].name,
                    (unsigned long long)files[i].rows, hex[i], from, to) < 0)
            err = -1;
    if (fclose(f) != 0)
        err = -1;
    if (err)
        fprintf(stderr, "gen-bundle: cannot write '%s': %s\n", path, strerror(errno));
    return err;
}

int main(int argc, char **argv)
{
    struct opts op;
    struct out files[4];
    char hex[4][65];
    size_t nfiles = 0;
    struct slot *slots = NULL;
    struct devent *ev = NULL;
    uint64_t next_id = 0, max_day_events;
    int err = 0, full;

    if (parse_args(argc, argv, &op))
        return 64;
    full = op.from_day == 0;
    if (mkdir(op.dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen-bundle: cannot create '%s': %s\n", op.dir, strerror(errno));
        return 73;
    }
    slots = calloc(op.accounts * SLOTS, sizeof *slots);
    max_day_events = (op.deployments - op.accounts * RUNNABLES) / op.days + 2;
    ev = malloc(max_day_events * sizeof *ev);
    if (!slots || !ev) {
        fprintf(stderr, "gen-bundle: out of memory\n");
        err = -1;
        goto out;
    }
    if ((err = write_rates(&op)))
        goto out;

    /* accounts.csv only with day 0: a later day's bundle adds events, not accounts. */
    if (full) {
        if ((err = out_open(&files[nfiles++], op.dir, "accounts.csv", op.gz, op.level)) ||
            (err = write_accounts(&op, &files[nfiles - 1])))
            goto out;
    }

    if ((err = out_open(&files[nfiles++], op.dir, "credits.csv", op.gz, op.level)))
        goto out;
    puts_(&files[nfiles - 1], "txn_id,account_id,ts,pool,type,amount,expires_at,reference\n");
    for (uint64_t d = op.from_day; !err && d <= op.to_day; d++)
        err = write_credits_day(&op, &files[nfiles - 1], d);
    if (err)
        goto out;

    if ((err = out_open(&files[nfiles++], op.dir, "deployments.csv", op.gz, op.level)))
        goto out;
    puts_(&files[nfiles - 1], "event_id,account_id,ts,category,action,resource_id,resource_name,"
          "owner,deployment_id,deployment_name,deployment_type,hardware,units,replicas,"
          "model_type,language,language_version,endpoint\n");
    for (uint64_t d = 0; !err && d < op.from_day; d++)         /* replay, no output */
        err = deployments_day(&op, NULL, d, slots, &next_id, ev);
    for (uint64_t d = op.from_day; !err && d <= op.to_day; d++)
        err = deployments_day(&op, &files[nfiles - 1], d, slots, &next_id, ev);
    if (err)
        goto out;

    if ((err = out_open(&files[nfiles++], op.dir, "runs.csv", op.gz, op.level)))
        goto out;
    puts_(&files[nfiles - 1], "event_id,account_id,ts,kind,resource_id,resource_name,owner,outcome\n");
    for (uint64_t d = op.from_day; !err && d <= op.to_day; d++)
        err = runs_day(&op, &files[nfiles - 1], d);

out:
    for (size_t i = 0; i < nfiles; i++)
        if (out_close(&files[i], hex[i]))
            err = -1;
    if (!err)
        err = write_manifest(&op, files, hex, nfiles);
    free(slots);
    free(ev);
    return err ? 74 : 0;
}
