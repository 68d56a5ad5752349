/*
 * test_bundle.c — reading bundles and refusing hostile ones
 * (spec inputs.md "Bundles", "manifest.csv"; semantics §10 "Bundle identity").
 *
 * Every archive is written here with libarchive's writer into a scratch
 * directory, so each hostile case is exactly the one its name says.  Test
 * helpers use plain malloc so that the fault-injection test fails only the
 * allocations of the code under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <locale.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "bundle.h"
#include "error.h"

#define MiB (1024 * 1024)

static char scratch[] = "/tmp/tally-test-bundle-XXXXXX";

/* ---------------------------------------------------------------------------
 * Helpers: paths, files, gzip, archives
 * ------------------------------------------------------------------------ */

/* 'name' inside the scratch directory; four results may be alive at once. */
static const char *tmp(const char *name)
{
    static char ring[4][512];
    static int next;
    char *p = ring[next++ % 4];

    snprintf(p, sizeof ring[0], "%s/%s", scratch, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void truncate_file(const char *path, off_t len)
{
    assert_int_equal(truncate(path, len), 0);
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* The file's bytes, malloc'd. */
static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;

    assert_non_null(f);
    *len = (size_t)file_size(path);
    assert_non_null(data = malloc(*len + 1));
    assert_int_equal(fread(data, 1, *len, f), *len);
    assert_int_equal(fclose(f), 0);
    return data;
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];

    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* gzip of 'data' ('len' bytes), or of 'len' zero bytes when 'data' is NULL. */
static unsigned char *gzip_bytes(const void *data, size_t len, size_t *out_len)
{
    static const unsigned char zeros[64 * 1024];
    size_t cap = len / 100 + 4096;
    unsigned char *out = malloc(cap);
    z_stream z = { 0 };
    size_t done = 0;
    int flush;

    assert_non_null(out);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    do {
        size_t chunk = len - done < sizeof zeros ? len - done : sizeof zeros;

        z.next_in = (unsigned char *)(data ? (const unsigned char *)data + done : zeros);
        z.avail_in = (uInt)chunk;
        done += chunk;
        flush = done == len ? Z_FINISH : Z_NO_FLUSH;
        do {
            if (z.total_out + 65536 > cap) {
                cap *= 2;
                assert_non_null(out = realloc(out, cap));
            }
            z.next_out = out + z.total_out;
            z.avail_out = (uInt)(cap - z.total_out);
            assert_true(deflate(&z, flush) != Z_STREAM_ERROR);
        } while (z.avail_in > 0 || (flush == Z_FINISH && z.avail_out == 0));
    } while (flush != Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* CSV-looking text that compresses like a real log (a few times, not 1000x). */
static char *csv_text(size_t rows, size_t *len)
{
    char *t = malloc(rows * 80 + 64);
    size_t n = (size_t)sprintf(t, "event_id,account_id,ts,kind,resource_id\n");
    uint32_t x = 12345;

    assert_non_null(t);
    for (size_t i = 0; i < rows; i++) {
        x = x * 1103515245u + 12345u;
        n += (size_t)sprintf(t + n, "evt-%08x,acct-%03u,2026-10-%02uT%02u:%02u:00Z,agent,res-%05u\n",
                             x, x % 997, 1 + x % 28, x % 24, (x >> 8) % 60, (x >> 4) % 99991);
    }
    *len = n;
    return t;
}

struct tentry {
    const char *path;
    const void *data;       /* NULL: 'len' zero bytes */
    size_t len;
    unsigned type;          /* 0: regular file */
    const char *link;       /* symlink target (AE_IFLNK) or hardlink target */
};

static void write_entry(struct archive *a, const struct tentry *t)
{
    static const char zeros[MiB];
    struct archive_entry *e = archive_entry_new();
    size_t done = 0;

    assert_non_null(e);
    archive_entry_set_pathname(e, t->path);
    archive_entry_set_filetype(e, t->type ? t->type : AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 1790000000, 0);
    if (t->type == AE_IFLNK)
        archive_entry_set_symlink(e, t->link);
    else if (t->link)
        archive_entry_set_hardlink(e, t->link);
    if (!t->type && !t->link)
        archive_entry_set_size(e, (la_int64_t)t->len);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    while (!t->type && !t->link && done < t->len) {
        size_t chunk = t->len - done < sizeof zeros ? t->len - done : sizeof zeros;
        const void *p = t->data ? (const char *)t->data + done : zeros;

        assert_int_equal(archive_write_data(a, p, chunk), (la_ssize_t)chunk);
        done += chunk;
    }
    archive_entry_free(e);
}

/* Writes 'n' entries to 'path' in libarchive format 'format' with 'filter' and 'options'. */
static void write_archive_opts(const char *path, int format, int filter, const char *options,
                               const struct tentry *t, size_t n)
{
    struct archive *a = archive_write_new();

    assert_non_null(a);
    assert_int_equal(archive_write_set_format(a, format), ARCHIVE_OK);
    if (filter != ARCHIVE_FILTER_NONE)
        assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
    if (options)
        assert_int_equal(archive_write_set_options(a, options), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++)
        write_entry(a, &t[i]);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    assert_int_equal(archive_write_free(a), ARCHIVE_OK);
}

static void write_archive(const char *path, int format, int filter, const struct tentry *t,
                          size_t n)
{
    write_archive_opts(path, format, filter, NULL, t, n);
}

#define TAR ARCHIVE_FORMAT_TAR_PAX_RESTRICTED
#define ZIP ARCHIVE_FORMAT_ZIP
#define NOF ARCHIVE_FILTER_NONE
#define GZ  ARCHIVE_FILTER_GZIP
#define ZST ARCHIVE_FILTER_ZSTD
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------
 * Helpers: reading bundles
 * ------------------------------------------------------------------------ */

static struct tly_settings bounds(void)
{
    struct tly_settings s;

    memset(&s, 0, sizeof s);
    s.max_entry_bytes = 8LL << 30;
    s.max_bundle_bytes = 32LL << 30;
    s.max_entries = 10000;
    s.max_ratio = 200;
    s.ratio_after_bytes = 64 * MiB;
    return s;
}

/* Small bounds that stop a bomb after a megabyte. */
static struct tly_settings tight(void)
{
    struct tly_settings s = bounds();

    s.ratio_after_bytes = 1 * MiB;
    return s;
}

struct outcome {
    int rc;                     /* 0 read cleanly, else the failing call's result */
    int64_t bytes;              /* text bytes read before the end or the failure */
    struct tly_bundle_reject rej;
};

/* Opens 'path' and walks every entry, reading each to its end unless 'skip'. */
static struct outcome walk_bundle(const char *path, const struct tly_settings *s, int skip)
{
    struct outcome o = { 0 };
    struct tly_bundle *b;
    struct tly_bundle_entry e;
    static char buf[64 * 1024];
    ssize_t n = 0;
    int rc;

    if ((o.rc = tly_bundle_open(path, s, &b, &o.rej)) != TLY_OK)
        return o;
    while ((rc = tly_bundle_next(b, &e, &o.rej)) == 1) {
        if (skip)
            continue;
        while ((n = tly_bundle_read(b, buf, sizeof buf, &o.rej)) > 0)
            o.bytes += n;
        if (n < 0)
            break;
    }
    o.rc = rc < 0 || n < 0 ? -1 : 0;
    tly_bundle_close(b);
    return o;
}

/* The bundle at 'path' is rejected with 'code' and a detail containing 'detail'. */
static void expect_reject_s(const char *path, const struct tly_settings *s, int skip,
                            const char *code, const char *detail)
{
    struct outcome o = walk_bundle(path, s, skip);

    assert_true(o.rc == -1 || o.rc == TLY_QUARANTINED);
    assert_string_equal(o.rej.code, code);
    if (detail && !strstr(o.rej.detail, detail))
        fail_msg("detail '%s' lacks '%s'", o.rej.detail, detail);
}

static void expect_reject(const char *path, const char *code, const char *detail)
{
    struct tly_settings s = bounds();

    expect_reject_s(path, &s, 0, code, detail);
}

/* Reads the current entry to its end into a malloc'd string, 'step' bytes a call. */
static char *read_entry(struct tly_bundle *b, size_t step, size_t *len)
{
    struct tly_bundle_reject rej;
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    ssize_t r;

    assert_non_null(t);
    do {
        if (n + step + 1 > cap) {
            cap = 2 * (n + step + 1);
            assert_non_null(t = realloc(t, cap));
        }
        r = tly_bundle_read(b, t + n, step, &rej);
        if (r < 0)
            fail_msg("read failed: %s: %s", rej.code, rej.detail);
        n += (size_t)r;
    } while (r > 0);
    t[n] = '\0';
    *len = n;
    return t;
}

struct expect {
    const char *path;
    enum tly_file_type type;
    int gzipped;
    const char *text;           /* NULL: do not read this entry */
    size_t text_len;
    const void *stored;         /* the bytes as stored, for the sha256 */
    size_t stored_len;
};

/* The bundle holds exactly these entries, in this order, with this content. */
static void expect_entries(const char *path, const struct tly_settings *s, const struct expect *x,
                           size_t n, size_t step)
{
    struct tly_bundle *b;
    struct tly_bundle_entry e;
    struct tly_bundle_reject rej;
    char hex[65], want[65];

    assert_int_equal(tly_bundle_open(path, s, &b, &rej), TLY_OK);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *got;

        if (tly_bundle_next(b, &e, &rej) != 1)
            fail_msg("entry %zu (%s): %s: %s", i, x[i].path, rej.code, rej.detail);
        assert_string_equal(e.path, x[i].path);
        assert_int_equal(e.type, x[i].type);
        assert_int_equal(e.gzipped, x[i].gzipped);
        if (!x[i].text)
            continue;
        got = read_entry(b, step, &len);
        assert_int_equal(len, x[i].text_len);
        assert_memory_equal(got, x[i].text, len);
        free(got);
        tly_bundle_entry_sha256(b, hex);
        sha256_hex(x[i].stored, x[i].stored_len, want);
        assert_string_equal(hex, want);
    }
    assert_int_equal(tly_bundle_next(b, &e, &rej), 0);
    assert_int_equal(tly_bundle_next(b, &e, &rej), 0);
    tly_bundle_close(b);
}

/* ---------------------------------------------------------------------------
 * File-name rule
 * ------------------------------------------------------------------------ */

static void test_file_type_name_rule(void **state)
{
    static const struct { const char *name; enum tly_file_type type; int gz; } cases[] = {
        { "runs.csv", TLY_FILE_RUNS, 0 },
        { "runs-0001.csv.gz", TLY_FILE_RUNS, 1 },
        { "runs_eu.csv", TLY_FILE_RUNS, 0 },
        { "credits.2026-10.csv", TLY_FILE_CREDITS, 0 },
        { "accounts.csv", TLY_FILE_ACCOUNTS, 0 },
        { "deployments-eu.csv.gz", TLY_FILE_DEPLOYMENTS, 1 },
        { "manifest.csv", TLY_FILE_MANIFEST, 0 },
        { "runsx.csv", TLY_FILE_OTHER, 0 },
        { "runs.csv.bak", TLY_FILE_OTHER, 0 },
        { "runs.txt", TLY_FILE_OTHER, 0 },
        { "runs", TLY_FILE_OTHER, 0 },
        { "README", TLY_FILE_OTHER, 0 },
        { "._runs.csv", TLY_FILE_OTHER, 0 },
        { "Runs.csv", TLY_FILE_OTHER, 0 },
        { ".csv", TLY_FILE_OTHER, 0 },
        { "notes.csv.gz", TLY_FILE_OTHER, 1 },
        { "run.csv", TLY_FILE_OTHER, 0 },
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        int gz = -1;

        if (tly_bundle_file_type(cases[i].name, &gz) != cases[i].type || gz != cases[i].gz)
            fail_msg("'%s': type %d gz %d", cases[i].name,
                     tly_bundle_file_type(cases[i].name, NULL), gz);
    }
}

/* ---------------------------------------------------------------------------
 * Valid bundles
 * ------------------------------------------------------------------------ */

/* spec inputs.md "Bundles": a directory is walked in sorted path order; a README is skipped. */
static void test_directory_nested_sorted(void **state)
{
    static const char runs[] = "event_id\ne1\n", credits[] = "txn_id\nt1\n", eu[] = "event_id\ne2\n";
    struct tly_settings s = bounds();
    const struct expect x[] = {
        { "README", TLY_FILE_OTHER, 0, "hello\n", 6, "hello\n", 6 },
        { "a/credits.csv", TLY_FILE_CREDITS, 0, credits, strlen(credits), credits, strlen(credits) },
        { "a/deep/er/runs_eu.csv", TLY_FILE_RUNS, 0, eu, strlen(eu), eu, strlen(eu) },
        { "runs.csv", TLY_FILE_RUNS, 0, runs, strlen(runs), runs, strlen(runs) },
    };
    (void)state;
    assert_int_equal(mkdir(tmp("dir"), 0755), 0);
    assert_int_equal(mkdir(tmp("dir/a"), 0755), 0);
    assert_int_equal(mkdir(tmp("dir/a/deep"), 0755), 0);
    assert_int_equal(mkdir(tmp("dir/a/deep/er"), 0755), 0);
    assert_int_equal(mkdir(tmp("dir/empty"), 0755), 0);
    write_file(tmp("dir/runs.csv"), runs, strlen(runs));
    write_file(tmp("dir/README"), "hello\n", 6);
    write_file(tmp("dir/a/credits.csv"), credits, strlen(credits));
    write_file(tmp("dir/a/deep/er/runs_eu.csv"), eu, strlen(eu));
    expect_entries(tmp("dir"), &s, x, N(x), 5);
}

/* spec inputs.md "Bundles": a directory holding a symlink, FIFO ... is rejected. */
static void test_directory_symlink_rejected(void **state)
{
    (void)state;
    assert_int_equal(mkdir(tmp("dlink"), 0755), 0);
    assert_int_equal(mkdir(tmp("dlink/sub"), 0755), 0);
    write_file(tmp("dlink/runs.csv"), "a\n", 2);
    assert_int_equal(symlink("/etc/passwd", tmp("dlink/sub/credits.csv")), 0);
    expect_reject(tmp("dlink"), "link_or_device", "entry 'sub/credits.csv'");
}

static void test_directory_fifo_rejected(void **state)
{
    char hex[65];
    struct tly_bundle_reject rej;

    (void)state;
    assert_int_equal(mkdir(tmp("dfifo"), 0755), 0);
    write_file(tmp("dfifo/runs.csv"), "a\n", 2);
    assert_int_equal(mkfifo(tmp("dfifo/pipe"), 0644), 0);
    expect_reject(tmp("dfifo"), "link_or_device", "entry 'pipe'");
    assert_int_equal(tly_bundle_identity(tmp("dfifo"), hex, &rej), TLY_QUARANTINED);
    assert_string_equal(rej.code, "link_or_device");
}

/*
 * A .tar.gz holding runs-0001.csv.gz: read() gives the gunzipped text and
 * the sha256 is of the bytes as stored (spec inputs.md "manifest.csv").
 * A realistic 3 MiB log read with the ratio guard on after 1 MiB is no bomb.
 */
static void test_targz_with_csv_gz_inside(void **state)
{
    size_t text_len, gz_len, log_len, m1_len, m2_len;
    char *text = csv_text(2000, &text_len), *log = csv_text(60000, &log_len);
    unsigned char *gz = gzip_bytes(text, text_len, &gz_len);
    unsigned char *m1 = gzip_bytes("a,b\n", 4, &m1_len), *m2 = gzip_bytes("1,2\n", 4, &m2_len);
    unsigned char *two = malloc(m1_len + m2_len);
    struct tly_settings s = tight();
    const struct tentry t[] = {
        { "./", NULL, 0, AE_IFDIR, NULL },
        { "./eu/", NULL, 0, AE_IFDIR, NULL },
        { "./eu/runs-0001.csv.gz", gz, gz_len, 0, NULL },
        { "./__MACOSX/._runs.csv", "junk", 4, 0, NULL },
        { "./runs.csv", log, log_len, 0, NULL },
        { "two-members.csv.gz", two, m1_len + m2_len, 0, NULL },
    };
    const struct expect x[] = {
        { "eu/runs-0001.csv.gz", TLY_FILE_RUNS, 1, text, text_len, gz, gz_len },
        { "__MACOSX/._runs.csv", TLY_FILE_OTHER, 0, NULL, 0, NULL, 0 },
        { "runs.csv", TLY_FILE_RUNS, 0, log, log_len, log, log_len },
        { "two-members.csv.gz", TLY_FILE_OTHER, 1, "a,b\n1,2\n", 8, two, m1_len + m2_len },
    };
    (void)state;
    assert_true(log_len > 3 * MiB);
    memcpy(two, m1, m1_len);
    memcpy(two + m1_len, m2, m2_len);
    write_archive(tmp("ok.tar.gz"), TAR, GZ, t, N(t));
    expect_entries(tmp("ok.tar.gz"), &s, x, N(x), 64 * 1024);
    expect_entries(tmp("ok.tar.gz"), &s, x, N(x), 7);
    free(text);
    free(log);
    free(gz);
    free(m1);
    free(m2);
    free(two);
}

static void test_zip_tar_tarzst_valid(void **state)
{
    static const char runs[] = "event_id\ne1\n", acc[] = "account_id\na1\n";
    size_t gz_len;
    unsigned char *gz = gzip_bytes(acc, strlen(acc), &gz_len);
    struct tly_settings s = bounds();
    const struct tentry t[] = {
        { "runs.csv", runs, strlen(runs), 0, NULL },
        { "sub/accounts.csv.gz", gz, gz_len, 0, NULL },
    };
    const struct expect x[] = {
        { "runs.csv", TLY_FILE_RUNS, 0, runs, strlen(runs), runs, strlen(runs) },
        { "sub/accounts.csv.gz", TLY_FILE_ACCOUNTS, 1, acc, strlen(acc), gz, gz_len },
    };
    (void)state;
    write_archive(tmp("ok.zip"), ZIP, NOF, t, N(t));
    write_archive(tmp("ok.tar"), TAR, NOF, t, N(t));
    write_archive(tmp("ok.tar.zst"), TAR, ZST, t, N(t));
    write_archive(tmp("ok.tgz"), TAR, GZ, t, N(t));
    expect_entries(tmp("ok.zip"), &s, x, N(x), 3);
    expect_entries(tmp("ok.tar"), &s, x, N(x), 3);
    expect_entries(tmp("ok.tar.zst"), &s, x, N(x), 3);
    expect_entries(tmp("ok.tgz"), &s, x, N(x), 3);
    free(gz);
}

/*
 * A zip read in many blocks, stored and deflated: zipcheck.c must not move
 * the descriptor libarchive reads (an lseek() to the end made every zip past
 * its first 128 KiB block "truncated").
 */
static void test_zip_larger_than_a_read_block(void **state)
{
    size_t len;
    char *log = csv_text(20000, &len);
    const struct tentry t[] = {
        { "runs.csv", log, len, 0, NULL },
        { "credits.csv", log, len / 2, 0, NULL },
    };
    struct tly_settings s = bounds();
    struct outcome o;

    (void)state;
    assert_true(len > 1 * MiB);
    write_archive_opts(tmp("big-stored.zip"), ZIP, NOF, "compression=store", t, N(t));
    write_archive(tmp("big.zip"), ZIP, NOF, t, N(t));
    o = walk_bundle(tmp("big-stored.zip"), &s, 0);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.bytes, (int64_t)(len + len / 2));
    o = walk_bundle(tmp("big.zip"), &s, 0);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.bytes, (int64_t)(len + len / 2));
    free(log);
}

/* spec inputs.md "Bundles": a single NAME.csv[.gz] is a bundle of one entry, its base name. */
static void test_single_csv_and_csv_gz(void **state)
{
    static const char text[] = "txn_id,account_id\nt1,a1\n";
    size_t gz_len;
    unsigned char *gz = gzip_bytes(text, strlen(text), &gz_len);
    struct tly_settings s = bounds();
    const struct expect plain[] = {
        { "credits.csv", TLY_FILE_CREDITS, 0, text, strlen(text), text, strlen(text) } };
    const struct expect gzipped[] = {
        { "credits-1.csv.gz", TLY_FILE_CREDITS, 1, text, strlen(text), gz, gz_len } };
    (void)state;
    write_file(tmp("credits.csv"), text, strlen(text));
    write_file(tmp("credits-1.csv.gz"), gz, gz_len);
    expect_entries(tmp("credits.csv"), &s, plain, 1, 4);
    expect_entries(tmp("credits-1.csv.gz"), &s, gzipped, 1, 4);
    free(gz);
}

/* ---------------------------------------------------------------------------
 * Unsafe names and entry kinds
 * ------------------------------------------------------------------------ */

static void test_zip_slip_rejected(void **state)
{
    const struct tentry up[] = { { "runs.csv", "a\n", 2, 0, NULL }, { "../x.csv", "a\n", 2, 0, NULL } };
    const struct tentry deep[] = { { "a/b/../../../x.csv", "a\n", 2, 0, NULL } };
    (void)state;
    write_archive(tmp("slip.tar.gz"), TAR, GZ, up, N(up));
    write_archive(tmp("slip.zip"), ZIP, NOF, deep, N(deep));
    expect_reject(tmp("slip.tar.gz"), "unsafe_path", "entry '../x.csv'");
    expect_reject(tmp("slip.zip"), "unsafe_path", "entry 'a/b/../../../x.csv'");
}

/*
 * A zip names each entry in its local header and again in its central
 * directory; libarchive lists by the one and names by the other.  Either
 * renamed in place (same length) is a corrupt zip, not a hidden data file
 * (zipcheck.h); a zip64 one that agrees loads.
 */
static void rename_nth(const char *path, const char *from, const char *to, int nth)
{
    size_t len, n = strlen(from);
    char *zip = read_whole(path, &len), *at = zip;

    assert_int_equal(strlen(to), n);
    for (int i = 0; i <= nth; i++) {
        at = memmem(i ? at + 1 : zip, len - (size_t)(i ? at + 1 - zip : 0), from, n);
        assert_non_null(at);
    }
    memcpy(at, to, n);
    write_file(path, zip, len);
    free(zip);
}

/* A zip of a data file whose name has the length of README.txx, to rename in place. */
static const struct tentry names_zip[] = { { "accounts.csv", "a\n", 2, 0, NULL },
                                           { "runs_x.csv", "r\n", 2, 0, NULL } };
static const struct expect names_zip_read[] = {
    { "accounts.csv", TLY_FILE_ACCOUNTS, 0, "a\n", 2, "a\n", 2 },
    { "runs_x.csv", TLY_FILE_RUNS, 0, "r\n", 2, "r\n", 2 },
};

static void test_zip_local_and_central_names_agree(void **state)
{
    struct tly_settings s = bounds();
    (void)state;
    write_archive(tmp("names.zip"), ZIP, NOF, names_zip, N(names_zip));
    expect_entries(tmp("names.zip"), &s, names_zip_read, N(names_zip_read), 4096);
    rename_nth(tmp("names.zip"), "runs_x.csv", "README.txx", 1);    /* the central directory's */
    expect_reject(tmp("names.zip"), "bad_archive",
                  "central directory entry 2 ('README.txx'): its local header names another file");
    write_archive(tmp("names.zip"), ZIP, NOF, names_zip, N(names_zip));
    rename_nth(tmp("names.zip"), "runs_x.csv", "README.txx", 0);    /* the local header's */
    expect_reject(tmp("names.zip"), "bad_archive", "('runs_x.csv'): its local header names another file");
    write_archive_opts(tmp("names64.zip"), ZIP, NOF, "zip64", names_zip, N(names_zip));
    expect_entries(tmp("names64.zip"), &s, names_zip_read, N(names_zip_read), 4096);
}

/* Bytes put around a zip, or an end record that undercounts: the check still holds. */
static void reshape(const char *path, size_t front, size_t back, int undercount)
{
    size_t len;
    char *zip = read_whole(path, &len), *out = calloc(1, front + len + back), *eocd;

    assert_non_null(out);
    memset(out, 'x', front);
    memcpy(out + front, zip, len);
    if (undercount) {
        eocd = out + front + len - 22;
        assert_memory_equal(eocd, "PK\5\6", 4);
        eocd[8]--;                      /* entries on this disk, and in all */
        eocd[10]--;
    }
    write_file(path, out, front + len + back);
    free(out);
    free(zip);
}

static void test_zip_name_check_follows_what_libarchive_reads(void **state)
{
    struct tly_settings s = bounds();
    (void)state;
    /* bytes after the end (padding), in front (a self-extractor's stub): still a zip */
    write_archive(tmp("shaped.zip"), ZIP, NOF, names_zip, N(names_zip));
    reshape(tmp("shaped.zip"), 0, 100, 0);
    expect_entries(tmp("shaped.zip"), &s, names_zip_read, N(names_zip_read), 4096);
    write_archive(tmp("shaped.zip"), ZIP, NOF, names_zip, N(names_zip));
    reshape(tmp("shaped.zip"), 7, 100, 0);
    expect_entries(tmp("shaped.zip"), &s, names_zip_read, N(names_zip_read), 4096);
    /* ... and still checked */
    write_archive(tmp("shaped.zip"), ZIP, NOF, names_zip, N(names_zip));
    rename_nth(tmp("shaped.zip"), "runs_x.csv", "README.txx", 1);
    reshape(tmp("shaped.zip"), 7, 0, 0);
    expect_reject(tmp("shaped.zip"), "bad_archive", "its local header names another file");
    /* an end record that counts one entry less hides nothing: libarchive reads them all */
    write_archive(tmp("shaped.zip"), ZIP, NOF, names_zip, N(names_zip));
    rename_nth(tmp("shaped.zip"), "runs_x.csv", "README.txx", 1);
    reshape(tmp("shaped.zip"), 0, 0, 1);
    expect_reject(tmp("shaped.zip"), "bad_archive", "central directory entry 2 ('README.txx')");
}

static void test_absolute_path_rejected(void **state)
{
    const struct tentry t[] = { { "/etc/runs.csv", "a\n", 2, 0, NULL } };
    const struct tentry dot[] = { { ".", "a\n", 2, 0, NULL } };
    (void)state;
    write_archive(tmp("abs.tar"), TAR, NOF, t, N(t));
    write_archive(tmp("abs.zip"), ZIP, NOF, t, N(t));
    write_archive(tmp("dot.tar"), ARCHIVE_FORMAT_TAR_USTAR, NOF, dot, N(dot));
    expect_reject(tmp("abs.tar"), "unsafe_path", "entry '/etc/runs.csv'");
    expect_reject(tmp("abs.zip"), "unsafe_path", "entry '/etc/runs.csv'");
    /* a file with no name once "./" is gone */
    expect_reject(tmp("dot.tar"), "unsafe_path", "entry '");
}

static void test_symlink_and_device_entries_rejected(void **state)
{
    const struct tentry sym[] = { { "runs.csv", NULL, 0, AE_IFLNK, "/etc/passwd" } };
    const struct tentry fifo[] = { { "runs.csv", NULL, 0, AE_IFIFO, NULL } };
    const struct tentry dev[] = { { "runs.csv", NULL, 0, AE_IFCHR, NULL } };
    (void)state;
    write_archive(tmp("sym.tar.gz"), TAR, GZ, sym, N(sym));
    write_archive(tmp("sym.zip"), ZIP, NOF, sym, N(sym));
    write_archive(tmp("fifo.tar"), TAR, NOF, fifo, N(fifo));
    write_archive(tmp("dev.tar"), TAR, NOF, dev, N(dev));
    expect_reject(tmp("sym.tar.gz"), "link_or_device", "entry 'runs.csv'");
    expect_reject(tmp("sym.zip"), "link_or_device", "entry 'runs.csv'");
    expect_reject(tmp("fifo.tar"), "link_or_device", "entry 'runs.csv'");
    expect_reject(tmp("dev.tar"), "link_or_device", "entry 'runs.csv'");
}

static void test_hardlink_entry_rejected(void **state)
{
    const struct tentry t[] = {
        { "runs.csv", "event_id\n", 9, 0, NULL },
        { "runs-2.csv", NULL, 0, 0, "runs.csv" },
    };
    (void)state;
    write_archive(tmp("hard.tar"), TAR, NOF, t, N(t));
    expect_reject(tmp("hard.tar"), "link_or_device", "entry 'runs-2.csv'");
}

/* spec inputs.md "Bundles": the same path twice, "./" aside. */
static void test_duplicate_path_rejected(void **state)
{
    const struct tentry t[] = {
        { "eu/runs.csv", "a\n", 2, 0, NULL },
        { "README", "x", 1, 0, NULL },
        { "./eu//./runs.csv", "b\n", 2, 0, NULL },
    };
    (void)state;
    write_archive(tmp("dup.tar.gz"), TAR, GZ, t, N(t));
    expect_reject(tmp("dup.tar.gz"), "duplicate_path", "entry './eu//./runs.csv'");
}

/* A directory entry is a path too: "sub/" and a file "sub" are the same path twice. */
static void test_directory_and_file_same_path_rejected(void **state)
{
    const struct tentry file_after_dir[] = {
        { "runs.csv", "a\n", 2, 0, NULL },
        { "sub/", NULL, 0, AE_IFDIR, NULL },
        { "sub", "x", 1, 0, NULL },
    };
    const struct tentry dir_after_file[] = {
        { "x.csv", "x", 1, 0, NULL },
        { "./x.csv/", NULL, 0, AE_IFDIR, NULL },
    };
    (void)state;
    write_archive(tmp("dirfile.tar"), TAR, NOF, file_after_dir, N(file_after_dir));
    expect_reject(tmp("dirfile.tar"), "duplicate_path", "entry 'sub'");
    write_archive(tmp("filedir.zip"), ZIP, NOF, dir_after_file, N(dir_after_file));
    expect_reject(tmp("filedir.zip"), "duplicate_path", "entry './x.csv/'");
}

/*
 * Entry names reach Tally as UTF-8 whatever the process locale: a zip
 * entry flagged UTF-8 (Python's, Java's) used to come back without a name
 * in the C locale and reject the bundle.  A name that is not UTF-8 (a
 * Latin-1 tar) is shown with \xNN escapes, so reports stay UTF-8.
 */
static void test_entry_names_utf8_and_escaped(void **state)
{
    const struct tentry utf8[] = {
        { "notes/Caf\xc3\xa9.txt", "x", 1, 0, NULL },
        { "runs.csv", "a\n", 2, 0, NULL },
    };
    const struct tentry latin1[] = {
        { "caf\xe9/runs.csv", "a\n", 2, 0, NULL },
    };
    const struct expect x_utf8[] = {
        { "notes/Caf\xc3\xa9.txt", TLY_FILE_OTHER, 0, NULL, 0, NULL, 0 },
        { "runs.csv", TLY_FILE_RUNS, 0, "a\n", 2, "a\n", 2 },
    };
    const struct expect x_latin1[] = {
        { "caf\\xE9/runs.csv", TLY_FILE_RUNS, 0, "a\n", 2, "a\n", 2 },
    };
    struct tly_settings s = bounds();
    locale_t utf8_locale, was;
    size_t len;
    char *zip;
    (void)state;
    /* written as Python would, from a UTF-8 locale; read back in this one (C) */
    assert_non_null(utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0));
    was = uselocale(utf8_locale);
    write_archive_opts(tmp("utf8.zip"), ZIP, NOF, "hdrcharset=UTF-8", utf8, N(utf8));
    uselocale(was);
    freelocale(utf8_locale);
    zip = read_whole(tmp("utf8.zip"), &len);
    assert_true(zip[7] & 0x08);         /* the first entry's flag bit 11: its name is UTF-8 */
    free(zip);
    expect_entries(tmp("utf8.zip"), &s, x_utf8, N(x_utf8), 4096);
    write_archive(tmp("latin1.tar"), ARCHIVE_FORMAT_TAR_GNUTAR, NOF, latin1, N(latin1));
    expect_entries(tmp("latin1.tar"), &s, x_latin1, N(x_latin1), 4096);
}

/*
 * inputs.md: "other formats are refused, not attempted" — a zip entry
 * compressed with bzip2 (method 12) or lzma (14) is refused at its header.
 * libarchive writes only stored and deflated zips, so the method fields of
 * a stored zip are patched.
 */
static void test_zip_other_methods_refused(void **state)
{
    const struct tentry t[] = { { "runs.csv", "a\n", 2, 0, NULL } };
    static const unsigned char methods[] = { 12, 14 };
    (void)state;
    for (size_t i = 0; i < N(methods); i++) {
        size_t len;
        unsigned char *z, *p;

        write_archive_opts(tmp("method.zip"), ZIP, NOF, "compression=store", t, N(t));
        z = (unsigned char *)read_whole(tmp("method.zip"), &len);
        assert_memory_equal(z, "PK\x03\x04", 4);
        z[8] = methods[i];                                     /* local header */
        assert_non_null(p = memmem(z, len, "PK\x01\x02", 4));
        p[10] = methods[i];                                    /* central directory */
        write_file(tmp("method.zip"), z, len);
        free(z);
        expect_reject(tmp("method.zip"), "unsupported_format", "entry 'runs.csv'");
    }
}

/* ---------------------------------------------------------------------------
 * Size bounds and the ratio guard
 * ------------------------------------------------------------------------ */

/* spec inputs.md "Bundles": the ratio guard stops a bomb early, counting bytes as read. */
static void test_gzip_bomb_stopped_early(void **state)
{
    const struct tentry t[] = { { "runs.csv", NULL, 50 * MiB, 0, NULL } };
    struct tly_settings s = tight();
    struct outcome o;

    (void)state;
    write_archive(tmp("bomb.tar.gz"), TAR, GZ, t, N(t));
    assert_true(file_size(tmp("bomb.tar.gz")) < 1 * MiB);
    o = walk_bundle(tmp("bomb.tar.gz"), &s, 0);
    assert_int_equal(o.rc, -1);
    assert_string_equal(o.rej.code, "too_large");
    assert_non_null(strstr(o.rej.detail, "entry 'runs.csv'"));
    assert_true(o.bytes < 4 * MiB);
}

/* A .csv.gz bomb inside a plain tar, and one in a zip: the gunzip ratio too. */
static void test_csv_gz_bomb_inside_bundle(void **state)
{
    size_t gz_len;
    unsigned char *gz = gzip_bytes(NULL, 50 * MiB, &gz_len);
    const struct tentry t[] = { { "runs.csv.gz", gz, gz_len, 0, NULL } };
    struct tly_settings s = tight();

    (void)state;
    write_archive(tmp("gzbomb.tar"), TAR, NOF, t, N(t));
    write_archive(tmp("gzbomb.zip"), ZIP, NOF, t, N(t));
    write_file(tmp("runs-bomb.csv.gz"), gz, gz_len);
    expect_reject_s(tmp("gzbomb.tar"), &s, 0, "too_large", "entry 'runs.csv.gz'");
    expect_reject_s(tmp("gzbomb.zip"), &s, 0, "too_large", "entry 'runs.csv.gz'");
    expect_reject_s(tmp("runs-bomb.csv.gz"), &s, 0, "too_large", "entry 'runs-bomb.csv.gz'");
    free(gz);
}

/*
 * libarchive reads ahead: a small .tar.zst is read whole at its first
 * header, so its second entry seemed stored in no bytes and a 4.8:1 log
 * tripped a 20:1 guard.  Each entry is credited with what was read ahead.
 */
static void test_ratio_guard_allows_read_ahead(void **state)
{
    size_t log_len;
    char *log = csv_text(3000, &log_len);
    const struct tentry t[] = {
        { "accounts.csv", "account_id\n", 11, 0, NULL },
        { "runs.csv", log, log_len, 0, NULL },
    };
    struct tly_settings s = bounds();
    struct outcome o;

    (void)state;
    s.max_ratio = 20;
    s.ratio_after_bytes = log_len / 4;
    write_archive(tmp("small.tar.zst"), TAR, ZST, t, N(t));
    assert_true(file_size(tmp("small.tar.zst")) * 20 > (off_t)log_len);
    o = walk_bundle(tmp("small.tar.zst"), &s, 0);
    if (o.rc)
        fail_msg("%s: %s", o.rej.code, o.rej.detail);
    assert_int_equal(o.bytes, 11 + log_len);
    free(log);
}

/* A bomb in an entry the caller skips is still read to reach the next header: still stopped. */
static void test_bomb_in_skipped_entry(void **state)
{
    const struct tentry t[] = {
        { "README", NULL, 50 * MiB, 0, NULL },
        { "runs.csv", "a\n", 2, 0, NULL },
    };
    struct tly_settings s = tight();

    (void)state;
    write_archive(tmp("skipbomb.tar.gz"), TAR, GZ, t, N(t));
    write_archive(tmp("skipbomb.zip"), ZIP, NOF, t, N(t));
    expect_reject_s(tmp("skipbomb.tar.gz"), &s, 1, "too_large", "entry 'README'");
    expect_reject_s(tmp("skipbomb.zip"), &s, 1, "too_large", "entry 'README'");
}

static void test_entry_and_bundle_size_bounds(void **state)
{
    const struct tentry t[] = {
        { "runs-1.csv", NULL, 2000, 0, NULL },
        { "runs-2.csv", NULL, 2000, 0, NULL },
    };
    struct tly_settings entry = bounds(), bundle = bounds(), exact = bounds();
    size_t gz_len;
    unsigned char *gz = gzip_bytes(NULL, 2000, &gz_len);
    const struct tentry g[] = { { "runs.csv.gz", gz, gz_len, 0, NULL } };
    struct outcome o;

    (void)state;
    entry.max_entry_bytes = 1999;
    bundle.max_bundle_bytes = 3999;
    exact.max_entry_bytes = 2000;
    exact.max_bundle_bytes = 4000;
    write_archive(tmp("sizes.tar.gz"), TAR, GZ, t, N(t));
    write_archive(tmp("sizes-gz.zip"), ZIP, NOF, g, N(g));
    expect_reject_s(tmp("sizes.tar.gz"), &entry, 0, "too_large", "entry 'runs-1.csv'");
    expect_reject_s(tmp("sizes.tar.gz"), &bundle, 0, "too_large", "entry 'runs-2.csv'");
    /* decompressed bytes count, not the stored ones */
    expect_reject_s(tmp("sizes-gz.zip"), &entry, 0, "too_large", "entry 'runs.csv.gz'");
    o = walk_bundle(tmp("sizes.tar.gz"), &exact, 0);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.bytes, 4000);
    free(gz);
}

static void test_max_entries(void **state)
{
    const struct tentry t[] = {
        { "a/", NULL, 0, AE_IFDIR, NULL },
        { "a/runs.csv", "a\n", 2, 0, NULL },
        { "credits.csv", "b\n", 2, 0, NULL },
    };
    struct tly_settings s = bounds();

    (void)state;
    s.max_entries = 2;
    write_archive(tmp("many.zip"), ZIP, NOF, t, N(t));
    expect_reject_s(tmp("many.zip"), &s, 0, "too_large", "entry 'credits.csv'");
    assert_int_equal(mkdir(tmp("manydir"), 0755), 0);
    assert_int_equal(mkdir(tmp("manydir/a"), 0755), 0);
    write_file(tmp("manydir/a/runs.csv"), "a\n", 2);
    write_file(tmp("manydir/credits.csv"), "b\n", 2);
    expect_reject_s(tmp("manydir"), &s, 0, "too_large", "more than 2 entries");
    s.max_entries = 3;
    assert_int_equal(walk_bundle(tmp("many.zip"), &s, 0).rc, 0);
    assert_int_equal(walk_bundle(tmp("manydir"), &s, 0).rc, 0);
}

/* ---------------------------------------------------------------------------
 * Truncated, corrupt and unsupported archives
 * ------------------------------------------------------------------------ */

static void write_log_archive(const char *path, int format, int filter)
{
    size_t len;
    char *log = csv_text(5000, &len);
    const struct tentry t[] = {
        { "runs.csv", log, len, 0, NULL },
        { "credits.csv", log, len / 2, 0, NULL },
    };

    write_archive(path, format, filter, t, N(t));
    free(log);
}

/*
 * Cut near the end, in the middle, and just after the magic.  A plain tar
 * is only cut in the middle: its tail is zero padding, and 12 bytes of it
 * carry no magic at all.
 */
static void test_truncated_archives_rejected(void **state)
{
    static const struct { const char *name; int format, filter; } cases[] = {
        { "cut.tar.gz", TAR, GZ }, { "cut.zip", ZIP, NOF }, { "cut.tar.zst", TAR, ZST },
        { "cut.tar", TAR, NOF },
    };
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        const char *p = tmp(cases[i].name);
        int plain = cases[i].format == TAR && cases[i].filter == NOF;
        off_t full;

        write_log_archive(p, cases[i].format, cases[i].filter);
        full = file_size(p);
        if (!plain) {
            truncate_file(p, full - 700);
            expect_reject(p, "bad_archive", NULL);
        }
        truncate_file(p, full / 2);
        expect_reject(p, "bad_archive", NULL);
        if (!plain) {
            truncate_file(p, 12);
            expect_reject(p, "bad_archive", NULL);
        }
    }
}

/* libarchive ends a plain tar quietly at a block boundary: cut between entries, still refused. */
static void test_plain_tar_cut_between_entries(void **state)
{
    static char data[1024];
    const struct tentry t[] = {
        { "runs.csv", data, sizeof data, 0, NULL },
        { "credits.csv", data, sizeof data, 0, NULL },
    };
    (void)state;
    memset(data, 'x', sizeof data);
    write_archive(tmp("cut2.tar"), ARCHIVE_FORMAT_TAR_USTAR, NOF, t, N(t));
    truncate_file(tmp("cut2.tar"), 512 + 1024);
    expect_reject(tmp("cut2.tar"), "bad_archive", "truncated");
}

/*
 * A tar cut between entries and then compressed whole is a valid gzip or
 * zstd stream of a truncated tar: still refused (the end-of-archive blocks
 * are checked in the tar stream, after decompression).
 */
static void test_compressed_tar_cut_between_entries(void **state)
{
    static char data[1024];
    const struct tentry t[] = {
        { "runs.csv", data, sizeof data, 0, NULL },
        { "credits.csv", data, sizeof data, 0, NULL },
    };
    static const struct { const char *name; int filter; } cases[] = {
        { "cut3.tar.gz", GZ }, { "cut3.tar.zst", ZST },
    };
    size_t len;
    char *tar;
    (void)state;
    memset(data, 'x', sizeof data);
    write_archive(tmp("cut3.tar"), ARCHIVE_FORMAT_TAR_USTAR, NOF, t, N(t));
    tar = read_whole(tmp("cut3.tar"), &len);
    for (size_t i = 0; i < N(cases); i++) {
        const struct tentry whole[] = { { "cut3.tar", tar, 512 + 1024, 0, NULL } };

        write_archive(tmp(cases[i].name), ARCHIVE_FORMAT_RAW, cases[i].filter, whole, 1);
        expect_reject(tmp(cases[i].name), "bad_archive", "truncated");
        /* the whole tar, compressed the same way, reads */
        {
            const struct tentry full[] = { { "cut3.tar", tar, len, 0, NULL } };
            struct outcome o;
            struct tly_settings sb = bounds();

            write_archive(tmp(cases[i].name), ARCHIVE_FORMAT_RAW, cases[i].filter, full, 1);
            o = walk_bundle(tmp(cases[i].name), &sb, 0);
            assert_int_equal(o.rc, 0);
            assert_int_equal(o.bytes, 2 * sizeof data);
        }
    }
    free(tar);
}

/* Two archives of one 1 KiB file each, a (accounts.csv) and b (runs.csv), as bytes. */
#define JOINED_FILE_BYTES 1024
struct two_archives {
    char *a, *b;
    size_t la, lb;
};

static struct two_archives two_archives(int format, const char *a_name, const char *b_name)
{
    static char data[JOINED_FILE_BYTES];
    const struct tentry ta[] = { { "accounts.csv", data, sizeof data, 0, NULL } };
    const struct tentry tb[] = { { "runs.csv", data, sizeof data, 0, NULL } };
    struct two_archives t;

    memset(data, 'x', sizeof data);
    write_archive(tmp(a_name), format, NOF, ta, N(ta));
    write_archive(tmp(b_name), format, NOF, tb, N(tb));
    t.a = read_whole(tmp(a_name), &t.la);
    t.b = read_whole(tmp(b_name), &t.lb);
    return t;
}

/*
 * libarchive's tar reader stops at the first zero block: tars joined end to
 * end (or split by a lone zero block) read as the first alone.  Refused
 * whole, bare or compressed; zeros after the end are padding and read.
 */
static void test_tars_joined_end_to_end_rejected(void **state)
{
    static const struct { const char *name; int filter; } cases[] = {
        { "joined.tar", NOF }, { "joined.tar.gz", GZ }, { "joined.tar.zst", ZST },
    };
    struct two_archives t = two_archives(ARCHIVE_FORMAT_TAR_USTAR, "a.tar", "b.tar");
    size_t la = t.la, lb = t.lb, a_entries = 512 + JOINED_FILE_BYTES;  /* a's header and data */
    char *joined;
    struct tly_settings sb = bounds();
    (void)state;
    joined = malloc(la + lb + MiB + 1);
    assert_non_null(joined);
    for (size_t i = 0; i < N(cases); i++) {
        const char *p = tmp(cases[i].name);
        struct outcome o;
        /* whole tars, end to end; then split by one zero block; then zeros after the end */
        const struct { size_t a_len, zeros, b_len; const char *code, *detail; } shapes[] = {
            { la, 0, lb, "bad_archive", "data after the tar's end-of-archive blocks" },
            { a_entries, 512, lb, "bad_archive", "data after the tar's end-of-archive blocks" },
            { la, 4096, 0, NULL, NULL },
            { la, MiB + 1, 0, "too_large", "after the tar's end" },
        };
        for (size_t k = 0; k < N(shapes); k++) {
            size_t len = shapes[k].a_len + shapes[k].zeros + shapes[k].b_len;

            memcpy(joined, t.a, shapes[k].a_len);
            memset(joined + shapes[k].a_len, 0, shapes[k].zeros);
            memcpy(joined + shapes[k].a_len + shapes[k].zeros, t.b, shapes[k].b_len);
            if (cases[i].filter == NOF) {
                write_file(p, joined, len);
            } else {
                const struct tentry whole[] = { { "joined.tar", joined, len, 0, NULL } };
                write_archive(p, ARCHIVE_FORMAT_RAW, cases[i].filter, whole, 1);
            }
            if (shapes[k].code) {
                expect_reject(p, shapes[k].code, shapes[k].detail);
                continue;
            }
            o = walk_bundle(p, &sb, 0);
            assert_int_equal(o.rc, 0);
            assert_int_equal(o.bytes, JOINED_FILE_BYTES);
        }
    }
    free(joined);
    free(t.b);
    free(t.a);
}

/* zips joined end to end read as the last alone (its directory): refused whole. */
static void test_zips_joined_end_to_end_rejected(void **state)
{
    struct two_archives t = two_archives(ZIP, "a.zip", "b.zip");
    size_t la = t.la, lb = t.lb;
    char *a = t.a, *b = t.b, *joined;
    (void)state;
    joined = malloc(la + lb);
    assert_non_null(joined);
    memcpy(joined, a, la);
    memcpy(joined + la, b, lb);
    write_file(tmp("joined.zip"), joined, la + lb);
    expect_reject(tmp("joined.zip"), "bad_archive", "in front of it hold another zip's entry at byte 0");
    memcpy(joined, b, lb);
    memcpy(joined + lb, a, la);
    write_file(tmp("joined.zip"), joined, la + lb);
    expect_reject(tmp("joined.zip"), "bad_archive", "in front of it hold another zip's entry");
    free(joined);
    free(b);
    free(a);
}

static void flip_byte(const char *path, off_t at)
{
    unsigned char c;
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x55;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    assert_int_equal(close(fd), 0);
}

static void test_corrupt_archives_rejected(void **state)
{
    size_t len, gz_len;
    char *log = csv_text(500, &len);
    const struct tentry t[] = { { "runs.csv", log, len, 0, NULL } };
    unsigned char *gz = gzip_bytes(log, len, &gz_len), *junk = malloc(gz_len + 7);

    (void)state;
    /* a stored zip entry with one byte changed: bad CRC, reported as ARCHIVE_WARN */
    write_archive_opts(tmp("crc.zip"), ZIP, NOF, "zip:compression=store", t, N(t));
    flip_byte(tmp("crc.zip"), 2000);
    expect_reject(tmp("crc.zip"), "bad_archive", "entry 'runs.csv'");
    /* the same in deflated data, and in a .tar.gz */
    write_archive(tmp("inflate.zip"), ZIP, NOF, t, N(t));
    flip_byte(tmp("inflate.zip"), 2000);
    expect_reject(tmp("inflate.zip"), "bad_archive", "entry 'runs.csv'");
    write_archive(tmp("inflate.tar.gz"), TAR, GZ, t, N(t));
    flip_byte(tmp("inflate.tar.gz"), 2000);
    expect_reject(tmp("inflate.tar.gz"), "bad_archive", NULL);
    /* a single .csv.gz cut inside its member; with junk after its member */
    write_file(tmp("runs-cut.csv.gz"), gz, gz_len - 4);
    expect_reject(tmp("runs-cut.csv.gz"), "bad_archive", "truncated gzip member");
    memcpy(junk, gz, gz_len);
    memcpy(junk + gz_len, "garbage", 7);
    write_file(tmp("runs-junk.csv.gz"), junk, gz_len + 7);
    expect_reject(tmp("runs-junk.csv.gz"), "bad_archive", "entry 'runs-junk.csv.gz'");
    /* a wrong CRC in the gzip trailer */
    write_file(tmp("runs-crc.csv.gz"), gz, gz_len);
    flip_byte(tmp("runs-crc.csv.gz"), (off_t)gz_len - 6);
    expect_reject(tmp("runs-crc.csv.gz"), "bad_archive", "entry 'runs-crc.csv.gz'");
    free(log);
    free(gz);
    free(junk);
}

/* Appends 'len' bytes to the file at 'path'; returns its size before. */
static off_t append_file(const char *path, const void *data, size_t len)
{
    struct stat st;
    FILE *f;

    assert_int_equal(stat(path, &st), 0);
    assert_non_null(f = fopen(path, "ab"));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return st.st_size;
}

/*
 * libarchive checks no gzip trailer and stops at the tar's end: the stream
 * of a .tar.gz is read to its end by zlib (bundle.c gzip_verify).
 */
static void test_tar_gz_stream_checked_to_its_end(void **state)
{
    size_t len, pad_len, bomb_len;
    char *log = csv_text(50, &len);
    const struct tentry t[] = { { "runs.csv", log, len, 0, NULL } };
    static const unsigned char zeros[4096];
    unsigned char *pad = gzip_bytes(NULL, 4096, &pad_len);
    unsigned char *bomb = gzip_bytes(NULL, 2u << 20, &bomb_len);
    struct outcome o;
    off_t size;
    struct tly_settings s = bounds();

    (void)state;
    /* a wrong CRC-32 in the last trailer, far past the tar's end-of-archive blocks */
    write_archive(tmp("crc.tar.gz"), TAR, GZ, t, N(t));
    size = append_file(tmp("crc.tar.gz"), "", 0);
    flip_byte(tmp("crc.tar.gz"), size - 8);
    expect_reject(tmp("crc.tar.gz"), "bad_archive", "gzip stream: incorrect data check");
    /* a second member (4 KiB of zeros, a record's padding) and zero bytes load */
    write_archive(tmp("pad.tar.gz"), TAR, GZ, t, N(t));
    append_file(tmp("pad.tar.gz"), pad, pad_len);
    append_file(tmp("pad.tar.gz"), zeros, sizeof zeros);
    o = walk_bundle(tmp("pad.tar.gz"), &s, 0);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.bytes, len);
    /* anything else after the last member; 2 MiB past the tar's end */
    append_file(tmp("pad.tar.gz"), "junk", 4);
    expect_reject(tmp("pad.tar.gz"), "bad_archive", "gzip stream: incorrect header check");
    write_archive(tmp("tail.tar.gz"), TAR, GZ, t, N(t));
    append_file(tmp("tail.tar.gz"), bomb, bomb_len);
    expect_reject(tmp("tail.tar.gz"), "too_large", "after the tar's end");
    free(log);
    free(pad);
    free(bomb);
}

/* A valid zip with no entry holds no file of a known type (python's zipfile writes it). */
static void test_empty_zip_has_no_known_file(void **state)
{
    static const unsigned char end_record[22] = { 'P', 'K', 5, 6 };

    (void)state;
    write_file(tmp("empty.zip"), end_record, sizeof end_record);
    expect_reject(tmp("empty.zip"), "no_known_file", "an empty zip archive");
}

/* spec inputs.md "Bundles": other formats are refused, not attempted. */
static void test_unsupported_formats(void **state)
{
    const struct tentry t[] = { { "runs.csv", "event_id\ne1\n", 12, 0, NULL } };
    static const struct { const char *name; int format, filter; } cases[] = {
        { "bz2.tar", TAR, ARCHIVE_FILTER_BZIP2 },
        { "bz2.tar.gz", TAR, ARCHIVE_FILTER_BZIP2 },
        { "xz.tar", TAR, ARCHIVE_FILTER_XZ },
        { "cpio.tar", ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, NOF },
        { "cpio-gz.tar.gz", ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, GZ },
        { "seven.zip", ARCHIVE_FORMAT_7ZIP, NOF },
        { "runs.tar.bz2", TAR, ARCHIVE_FILTER_BZIP2 },
    };
    unsigned char noise[5000];
    uint32_t x = 99;

    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        write_archive(tmp(cases[i].name), cases[i].format, cases[i].filter, t, N(t));
        expect_reject(tmp(cases[i].name), "unsupported_format", NULL);
    }
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
    write_file(tmp("noise.tar.gz"), noise, sizeof noise);
    write_file(tmp("notes.txt"), "hi", 2);
    write_file(tmp("empty.zip"), "", 0);
    expect_reject(tmp("noise.tar.gz"), "unsupported_format", NULL);
    expect_reject(tmp("notes.txt"), "unsupported_format", NULL);
    expect_reject(tmp("empty.zip"), "unsupported_format", NULL);
    expect_reject(tmp("no-such-bundle.tar.gz"), "bad_archive", "No such file");
}

/* ---------------------------------------------------------------------------
 * Identity, failures, allocation faults
 * ------------------------------------------------------------------------ */

/* semantics §10 "Bundle identity": content, not name; a directory's paths count. */
static void test_identity(void **state)
{
    struct tly_bundle_reject rej;
    char a[65], b[65], want[65];

    (void)state;
    write_file(tmp("id.tar.gz"), "some bytes", 10);
    assert_int_equal(tly_bundle_identity(tmp("id.tar.gz"), a, &rej), TLY_OK);
    sha256_hex("some bytes", 10, want);
    assert_string_equal(a, want);

    assert_int_equal(mkdir(tmp("id1"), 0755), 0);
    assert_int_equal(mkdir(tmp("id1/sub"), 0755), 0);
    write_file(tmp("id1/runs.csv"), "r\n", 2);
    write_file(tmp("id1/sub/credits.csv"), "c\n", 2);
    assert_int_equal(tly_bundle_identity(tmp("id1"), a, &rej), TLY_OK);
    assert_int_equal(tly_bundle_identity(tmp("id1"), b, &rej), TLY_OK);
    assert_string_equal(a, b);
    assert_string_not_equal(a, want);

    write_file(tmp("id1/runs.csv"), "R\n", 2);
    assert_int_equal(tly_bundle_identity(tmp("id1"), b, &rej), TLY_OK);
    assert_string_not_equal(a, b);

    write_file(tmp("id1/runs.csv"), "r\n", 2);
    assert_int_equal(rename(tmp("id1/sub/credits.csv"), tmp("id1/sub/credits-2.csv")), 0);
    assert_int_equal(tly_bundle_identity(tmp("id1"), b, &rej), TLY_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(rename(tmp("id1/sub/credits-2.csv"), tmp("id1/sub/credits.csv")), 0);
    assert_int_equal(tly_bundle_identity(tmp("id1"), b, &rej), TLY_OK);
    assert_string_equal(a, b);

    assert_int_equal(tly_bundle_identity(tmp("id-missing"), b, &rej), TLY_QUARANTINED);
    assert_string_equal(rej.code, "bad_archive");
}

/* A rejected bundle stays rejected: later calls repeat the reject. */
static void test_failure_is_sticky(void **state)
{
    const struct tentry t[] = { { "runs.csv", "a\n", 2, 0, NULL }, { "../x.csv", "a\n", 2, 0, NULL } };
    struct tly_settings s = bounds();
    struct tly_bundle *b;
    struct tly_bundle_entry e;
    struct tly_bundle_reject rej;
    char buf[16];

    (void)state;
    write_archive(tmp("sticky.tar"), TAR, NOF, t, N(t));
    assert_int_equal(tly_bundle_open(tmp("sticky.tar"), &s, &b, &rej), TLY_OK);
    assert_int_equal(tly_bundle_failure(b), TLY_OK);
    assert_int_equal(tly_bundle_next(b, &e, &rej), 1);
    assert_int_equal(tly_bundle_next(b, &e, &rej), -1);
    memset(&rej, 0, sizeof rej);
    assert_int_equal(tly_bundle_read(b, buf, sizeof buf, &rej), -1);
    assert_string_equal(rej.code, "unsafe_path");
    memset(&rej, 0, sizeof rej);
    assert_int_equal(tly_bundle_next(b, &e, &rej), -1);
    assert_string_equal(rej.code, "unsafe_path");
    assert_int_equal(tly_bundle_failure(b), TLY_QUARANTINED);
    tly_bundle_close(b);
    tly_bundle_close(NULL);
}

/*
 * SQLite's faultsim idea: fail the Nth allocation for every N; each run ends
 * cleanly (read, or out of memory with no reject code), never leaks (ASan).
 */
static void test_allocation_faults(void **state)
{
    size_t gz_len;
    unsigned char *gz = gzip_bytes("a,b\n1,2\n", 8, &gz_len);
    const struct tentry t[] = {
        { "runs.csv.gz", gz, gz_len, 0, NULL }, { "eu/runs.csv", "x\n", 2, 0, NULL },
        { "credits.csv", "y\n", 2, 0, NULL },
    };
    const char *paths[] = { tmp("oom.tar.gz"), tmp("oomdir") };
    struct tly_settings s = bounds();

    (void)state;
    write_archive(paths[0], TAR, GZ, t, N(t));
    assert_int_equal(mkdir(paths[1], 0755), 0);
    assert_int_equal(mkdir(tmp("oomdir/eu"), 0755), 0);
    write_file(tmp("oomdir/eu/runs.csv"), "x\n", 2);
    write_file(tmp("oomdir/runs.csv.gz"), gz, gz_len);
    for (size_t p = 0; p < N(paths); p++) {
        for (long n = 1; n < 200; n++) {
            struct outcome o;
            char hex[65];
            struct tly_bundle_reject rej;
            int id;

            tly_alloc_fail_at(n);
            o = walk_bundle(paths[p], &s, 0);
            id = tly_bundle_identity(paths[p], hex, &rej);
            tly_alloc_fail_at(0);
            assert_true(id == TLY_OK || id == TLY_ERR_NOMEM);
            assert_true(o.rc == 0 || o.rc == TLY_ERR_NOMEM || o.rc == -1);
            assert_string_equal(o.rej.code, "");
            if (o.rc == 0 && id == TLY_OK)
                break;
        }
    }
    free(gz);
}

/* ---------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    tly_error_quiet(1);
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(scratch, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_type_name_rule),
        cmocka_unit_test(test_directory_nested_sorted),
        cmocka_unit_test(test_directory_symlink_rejected),
        cmocka_unit_test(test_directory_fifo_rejected),
        cmocka_unit_test(test_targz_with_csv_gz_inside),
        cmocka_unit_test(test_zip_tar_tarzst_valid),
        cmocka_unit_test(test_zip_larger_than_a_read_block),
        cmocka_unit_test(test_single_csv_and_csv_gz),
        cmocka_unit_test(test_zip_slip_rejected),
        cmocka_unit_test(test_zip_local_and_central_names_agree),
        cmocka_unit_test(test_zip_name_check_follows_what_libarchive_reads),
        cmocka_unit_test(test_absolute_path_rejected),
        cmocka_unit_test(test_symlink_and_device_entries_rejected),
        cmocka_unit_test(test_hardlink_entry_rejected),
        cmocka_unit_test(test_duplicate_path_rejected),
        cmocka_unit_test(test_directory_and_file_same_path_rejected),
        cmocka_unit_test(test_entry_names_utf8_and_escaped),
        cmocka_unit_test(test_zip_other_methods_refused),
        cmocka_unit_test(test_ratio_guard_allows_read_ahead),
        cmocka_unit_test(test_gzip_bomb_stopped_early),
        cmocka_unit_test(test_csv_gz_bomb_inside_bundle),
        cmocka_unit_test(test_bomb_in_skipped_entry),
        cmocka_unit_test(test_entry_and_bundle_size_bounds),
        cmocka_unit_test(test_max_entries),
        cmocka_unit_test(test_truncated_archives_rejected),
        cmocka_unit_test(test_plain_tar_cut_between_entries),
        cmocka_unit_test(test_compressed_tar_cut_between_entries),
        cmocka_unit_test(test_tars_joined_end_to_end_rejected),
        cmocka_unit_test(test_zips_joined_end_to_end_rejected),
        cmocka_unit_test(test_corrupt_archives_rejected),
        cmocka_unit_test(test_tar_gz_stream_checked_to_its_end),
        cmocka_unit_test(test_empty_zip_has_no_known_file),
        cmocka_unit_test(test_unsupported_formats),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_allocation_faults),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
