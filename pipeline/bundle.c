/*
 * bundle.c — reading a bundle entry by entry (see bundle.h; spec inputs.md
 * "Bundles").
 *
 * Three sources sit behind one cursor: a directory (walked once at open into
 * a sorted list of its regular files), a single NAME.csv[.gz], and an archive
 * read by libarchive.  Every byte handed out passes through raw_read() and
 * account(), which hash it, count it and enforce the size bounds and the
 * ratio guard as it is read; .csv.gz entries are gunzipped on the fly by
 * zlib.  Memory is fixed (one buffer, zlib's window, libarchive's read-ahead)
 * apart from the list of paths, which max_entries bounds.
 *
 * A failure is sticky: once next() or read() returned -1, every later call
 * returns -1 with the same reject.
 */
#include "bundle.h"
#include "zipcheck.h"
#include "csvread.h"
#include "alloc.h"
#include "error.h"
#include "strmap.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BUF_SIZE       (256 * 1024)    /* gzip input, draining, hashing */
#define ARCHIVE_BLOCK  (128 * 1024)    /* libarchive's reads from the file */
#define READ_MAX       (1u << 30)      /* one read() call; fits zlib's uInt */
#define READ_AHEAD     (2 * ARCHIVE_BLOCK) /* what libarchive may read of the next entry */
#define TAR_TAIL_MAX   (1 << 20)       /* a .tar.gz's bytes after the tar's end (gzip_verify) */

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

enum source { SRC_DIR, SRC_SINGLE, SRC_ARCHIVE };

struct list {
    char **v;
    size_t n, cap;
};

struct tly_bundle {
    enum source kind;
    int64_t max_entry, max_bundle, max_entries, max_ratio, ratio_after;
    char *single_path;          /* SRC_SINGLE: the file as named */
    int root_fd;                /* SRC_DIR: the directory */
    int fd;                     /* the archive, or the entry being read */
    struct archive *a;
    locale_t utf8;              /* SRC_ARCHIVE: for reading entry names (archive_next) */
    struct list files;          /* SRC_DIR, SRC_SINGLE: entries in order */
    size_t next_file;
    struct list paths;          /* SRC_ARCHIVE: every path seen ... */
    struct tly_strmap seen;     /* ... and their index, for duplicate_path */
    int64_t entries, bundle_bytes;
    int done;                   /* next() returned 0 */
    /* the current entry */
    struct tly_bundle_entry cur;
    char *shown;                /* cur.path escaped (show_path), or NULL */
    int in_entry, src_eof;
    int64_t e_out;              /* bytes its container gave */
    int64_t e_csv;              /* bytes gunzip made of them */
    int64_t e_counted;          /* max(e_out, e_csv) already in bundle_bytes */
    int64_t e_stored;           /* bytes the bundle file gave up meanwhile */
    int64_t e_raw_start;
    int64_t tar_data_end;       /* tar stream offset after the last header or data read */
    int zip_checked, is_zip;    /* zip_name_checked() read the directory: a zip's, into zip */
    struct tly_zip_names zip;
    struct sha256_ctx sha;
    z_stream z;
    int z_ready, member_done;
    unsigned char *buf;
    /* the sticky failure */
    int status;                 /* TLY_OK, TLY_QUARANTINED or TLY_ERR_NOMEM */
    struct tly_bundle_reject rej;
};

/* ---------------------------------------------------------------------------
 * Rejects and small helpers
 * ------------------------------------------------------------------------ */

static const char *path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/*
 * Fills 'rej'; a detail ends without the newline some libarchive messages
 * carry, and names in it that are not UTF-8 text are shown escaped: it
 * goes into rejects.csv and the workbook.
 */
static int vreject(struct tly_bundle_reject *rej, const char *code, const char *fmt, va_list ap)
{
    char detail[sizeof rej->detail];
    size_t n, used;

    snprintf(rej->code, sizeof rej->code, "%s", code);
    vsnprintf(detail, sizeof detail, fmt, ap);
    n = strlen(detail);
    while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
        n--;
    tly_utf8_shown(detail, n, rej->detail, sizeof rej->detail, &used);
    return TLY_QUARANTINED;
}

__attribute__((format(printf, 3, 4)))
static int reject(struct tly_bundle_reject *rej, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreject(rej, code, fmt, ap);
    va_end(ap);
    return TLY_QUARANTINED;
}

/*
 * A bundle the file system will not let us read (permissions, an I/O
 * error, no file descriptors left) is not bad input: an I/O error (exit
 * 74) that records nothing, so the next run reads it again once the
 * operator fixed it.  A rejected bundle is never retried, and an upload
 * with the wrong owner would otherwise become a reject for good.  Other
 * failures (a path that names nothing) reject the bundle as before.
 */
static int environmental(int err)
{
    return err == EACCES || err == EPERM || err == EIO || err == EMFILE || err == ENFILE ||
           err == ENOMEM;
}

__attribute__((format(printf, 4, 5)))
static int unreadable(struct tly_bundle_reject *rej, int err, const char *code, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    if (environmental(err)) {
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        if (rej->bundle)        /* with several bundles named, say which */
            return tly_error(TLY_ERR_IO, "'%s': %s: %s", path_base(rej->bundle), what, strerror(err));
        return tly_error(TLY_ERR_IO, "%s: %s", what, strerror(err));
    }
    vreject(rej, code, fmt, ap);
    va_end(ap);
    snprintf(rej->detail + strlen(rej->detail), sizeof rej->detail - strlen(rej->detail), ": %s",
             strerror(err));
    return TLY_QUARANTINED;
}

/* Rejects the bundle for good: next() and read() return -1 from now on. */
__attribute__((format(printf, 4, 5)))
static int fail(struct tly_bundle *b, struct tly_bundle_reject *rej, const char *code,
                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreject(&b->rej, code, fmt, ap);
    va_end(ap);
    b->status = TLY_QUARANTINED;
    *rej = b->rej;
    return -1;
}

static int nomem(void)
{
    return tly_error(TLY_ERR_NOMEM, "out of memory reading a bundle");
}

/*
 * Out of memory is not the bundle's fault: no reject code, see
 * tly_bundle_failure().  'report' is 0 where the callee already reported it.
 */
static int fail_nomem(struct tly_bundle *b, struct tly_bundle_reject *rej, int report)
{
    if (report)
        nomem();
    memset(&b->rej, 0, sizeof b->rej);
    snprintf(b->rej.detail, sizeof b->rej.detail, "out of memory");
    b->status = TLY_ERR_NOMEM;
    *rej = b->rej;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

static void digest_hex(struct sha256_ctx *ctx, char hex[65])
{
    uint8_t d[SHA256_DIGEST_SIZE];

    sha256_digest(ctx, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int list_push(struct list *l, char *s)
{
    if (tly_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v) < 0)
        return -1;
    l->v[l->n++] = s;
    return 0;
}

static void list_release(struct list *l)
{
    for (size_t i = 0; i < l->n; i++)
        tly_free(l->v[i]);
    tly_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_path(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static ssize_t read_fd(int fd, void *buf, size_t n)
{
    ssize_t r;

    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

/* ---------------------------------------------------------------------------
 * File-name rule
 * ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum tly_file_type type;
} file_types[] = {
    { "accounts", TLY_FILE_ACCOUNTS },
    { "credits", TLY_FILE_CREDITS },
    { "deployments", TLY_FILE_DEPLOYMENTS },
    { "manifest", TLY_FILE_MANIFEST },
    { "runs", TLY_FILE_RUNS },
};

/*
 * spec inputs.md "Bundles": a base name counts when it is
 * <type>[<suffix>].csv[.gz], the suffix empty or starting with '-', '_' or
 * '.', so "runs-0001.csv.gz" and "runs_eu.csv" are runs but "runsx.csv" is not.
 */
enum tly_file_type tly_bundle_file_type(const char *base_name, int *gzipped)
{
    size_t stem;
    int gz = ends_with(base_name, ".csv.gz");

    if (gzipped)
        *gzipped = gz;
    if (gz)
        stem = strlen(base_name) - strlen(".csv.gz");
    else if (ends_with(base_name, ".csv"))
        stem = strlen(base_name) - strlen(".csv");
    else
        return TLY_FILE_OTHER;
    for (size_t i = 0; i < sizeof file_types / sizeof file_types[0]; i++) {
        size_t k = strlen(file_types[i].name);

        if (stem < k || memcmp(base_name, file_types[i].name, k))
            continue;
        if (stem == k || base_name[k] == '-' || base_name[k] == '_' || base_name[k] == '.')
            return file_types[i].type;
    }
    return TLY_FILE_OTHER;
}

/* ---------------------------------------------------------------------------
 * Directory walk
 * ------------------------------------------------------------------------ */

static const char *special_kind(mode_t mode)
{
    if (S_ISLNK(mode))
        return "symlink";
    if (S_ISFIFO(mode))
        return "FIFO";
    if (S_ISSOCK(mode))
        return "socket";
    return "device or special file";
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir), k = strlen(name);
    char *p = tly_malloc(n + k + 2);

    if (p)
        snprintf(p, n + k + 2, "%s%s%s", dir, n ? "/" : "", name);
    return p;
}

struct walk {
    int root_fd;
    int64_t limit, count;
    struct list *files;
    struct tly_bundle_reject *rej;
};

/*
 * Files 'name' of directory 'd' (at relative path 'rel'): a regular file into
 * w->files, a directory into 'subdirs'.  Anything else rejects the bundle
 * (spec inputs.md "Bundles": a directory bundle holding a symlink, FIFO,
 * socket or device file is rejected); lstat semantics, links never followed.
 */
static int walk_one(struct walk *w, DIR *d, const char *rel, const char *name,
                    struct list *subdirs)
{
    struct stat st;
    char *path = join(rel, name);
    int rc = TLY_OK;

    if (!path)
        return nomem();
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        rc = reject(w->rej, "bad_archive", "entry '%s': %s", path, strerror(errno));
    else if (++w->count > w->limit)
        rc = reject(w->rej, "too_large", "entry '%s': more than %lld entries", path,
                    (long long)w->limit);
    else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        rc = reject(w->rej, "link_or_device", "entry '%s': %s", path,
                    special_kind(st.st_mode));
    else if (list_push(S_ISDIR(st.st_mode) ? subdirs : w->files, path) < 0)
        rc = nomem();
    else
        return TLY_OK;
    tly_free(path);
    return rc;
}

/*
 * Lists the regular files under 'rel' ("" for the top) into w->files,
 * counting every entry against w->limit.  Each directory is read whole and
 * closed before its subdirectories are visited, so one directory stream is
 * open whatever the depth.
 */
static int walk(struct walk *w, const char *rel)
{
    struct list subdirs = { 0 };
    struct dirent *de;
    int rc = TLY_OK;
    int fd = openat(w->root_fd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);

    if (!d) {
        rc = unreadable(w->rej, errno, "bad_archive", "cannot read directory '%s'", *rel ? rel : ".");
        if (fd >= 0)
            close(fd);
        return rc;
    }
    while (rc == TLY_OK) {
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno)
                rc = unreadable(w->rej, errno, "bad_archive", "cannot read directory '%s'",
                                *rel ? rel : ".");
            break;
        }
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            rc = walk_one(w, d, rel, de->d_name, &subdirs);
    }
    closedir(d);
    for (size_t i = 0; i < subdirs.n && rc == TLY_OK; i++)
        rc = walk(w, subdirs.v[i]);
    list_release(&subdirs);
    return rc;
}

/* The regular files of the directory 'root_fd', in sorted path order. */
static int list_dir(int root_fd, int64_t limit, struct list *files, int64_t *count,
                    struct tly_bundle_reject *rej)
{
    struct walk w = { root_fd, limit, 0, files, rej };
    int rc = walk(&w, "");

    if (rc == TLY_OK && files->n > 1)
        qsort(files->v, files->n, sizeof *files->v, cmp_path);
    *count = w.count;
    return rc;
}

/* ---------------------------------------------------------------------------
 * Identity
 * ------------------------------------------------------------------------ */

/* Hashes everything 'fd' holds into 'ctx'; -1 with errno on a read error. */
static int hash_fd(int fd, struct sha256_ctx *ctx, unsigned char *buf)
{
    ssize_t r;

    while ((r = read_fd(fd, buf, BUF_SIZE)) > 0)
        sha256_update(ctx, (size_t)r, buf);
    return r < 0 ? -1 : 0;
}

static int hash_file(int dir_fd, const char *path, int flags, struct sha256_ctx *ctx,
                     unsigned char *buf, struct tly_bundle_reject *rej)
{
    struct stat st;
    int fd = openat(dir_fd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | flags);
    int rc = TLY_OK;

    if (fd < 0)
        return unreadable(rej, errno, errno == ELOOP ? "link_or_device" : "bad_archive",
                          "entry '%s'", path);
    if (fstat(fd, &st) < 0 || hash_fd(fd, ctx, buf) < 0)
        rc = unreadable(rej, errno, "bad_archive", "entry '%s'", path);
    else if (!S_ISREG(st.st_mode))
        rc = reject(rej, "link_or_device", "entry '%s': %s", path, special_kind(st.st_mode));
    close(fd);
    return rc;
}

/*
 * A directory's identity hashes, per regular file in sorted path order, its
 * relative path, a NUL and the SHA-256 of its bytes: paths hold no NUL and
 * digests are 32 bytes, so two different trees never encode alike, and no
 * size has to be known before the bytes are read.
 */
static int dir_identity(const char *path, struct sha256_ctx *ctx, unsigned char *buf,
                        struct tly_bundle_reject *rej)
{
    struct list files = { 0 };
    int64_t count;
    int rc, root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (root_fd < 0)
        return unreadable(rej, errno, "bad_archive", "cannot read the bundle");
    rc = list_dir(root_fd, INT64_MAX, &files, &count, rej);
    for (size_t i = 0; i < files.n && rc == TLY_OK; i++) {
        struct sha256_ctx file_ctx;
        uint8_t d[SHA256_DIGEST_SIZE];

        sha256_init(&file_ctx);
        rc = hash_file(root_fd, files.v[i], O_NOFOLLOW, &file_ctx, buf, rej);
        sha256_digest(&file_ctx, sizeof d, d);
        sha256_update(ctx, strlen(files.v[i]) + 1, (const uint8_t *)files.v[i]);
        sha256_update(ctx, sizeof d, d);
    }
    list_release(&files);
    close(root_fd);
    return rc;
}

/* semantics §10 "Bundle identity": the content, never the name. */
static int is_archive_name(const char *path)
{
    static const char *const suffixes[] = { ".tar", ".tar.gz", ".tgz", ".tar.zst", ".zip" };

    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(path, suffixes[i]))
            return 1;
    return 0;
}

/*
 * A file bundle's form is chosen by its name, and so is a single file's
 * type.  A name that gives neither is refused by the name alone
 * (tly_bundle_name_key() keeps such a refusal by name and content).
 */
static int refuse_name(const char *path, struct tly_bundle_reject *rej)
{
    int gz;

    if (is_archive_name(path))
        return TLY_OK;
    if (!ends_with(path, ".csv") && !ends_with(path, ".csv.gz"))
        return reject(rej, "unsupported_format",
                      "not a directory, .tar, .tar.gz, .tgz, .tar.zst, .zip, .csv or .csv.gz");
    if (tly_bundle_file_type(path_base(path), &gz) == TLY_FILE_OTHER)
        return reject(rej, "no_known_file", "a single file must be named accounts, credits, runs,"
                      " deployments or manifest[-suffix].csv[.gz]");
    return TLY_OK;
}

int tly_bundle_name_key(const char *path, const char hex[65], char key[65])
{
    struct tly_bundle_reject rej;
    const char *base = path_base(path);
    struct sha256_ctx ctx;
    struct stat st;

    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || refuse_name(path, &rej) == TLY_OK)
        return 0;
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(base) + 1, (const uint8_t *)base);
    sha256_update(&ctx, 64, (const uint8_t *)hex);
    digest_hex(&ctx, key);
    return 1;
}

void tly_bundle_bounds_key(const struct tly_settings *s, const char hex[65], char key[65])
{
    char bounds[160];
    struct sha256_ctx ctx;
    int n = snprintf(bounds, sizeof bounds, "too_large %lld %lld %lld %lld %lld %lld",
                     (long long)s->max_entry_bytes, (long long)s->max_bundle_bytes,
                     (long long)s->max_entries, (long long)s->max_ratio,
                     (long long)s->ratio_after_bytes, (long long)s->max_rows_per_file);

    sha256_init(&ctx);
    sha256_update(&ctx, 64, (const uint8_t *)hex);
    sha256_update(&ctx, 1, (const uint8_t *)"");
    sha256_update(&ctx, (size_t)n, (const uint8_t *)bounds);
    digest_hex(&ctx, key);
}

int tly_bundle_identity(const char *path, char hex[65], struct tly_bundle_reject *rej)
{
    struct sha256_ctx ctx;
    struct stat st;
    unsigned char *buf;
    int rc;

    memset(rej, 0, sizeof *rej);
    rej->bundle = path;
    hex[0] = '\0';
    if (stat(path, &st) < 0)
        return unreadable(rej, errno, "bad_archive", "cannot read the bundle");
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return reject(rej, "link_or_device", "the bundle is not a regular file or directory");
    if (!(buf = tly_malloc(BUF_SIZE)))
        return nomem();
    sha256_init(&ctx);
    if (S_ISDIR(st.st_mode))
        rc = dir_identity(path, &ctx, buf, rej);
    else
        rc = hash_file(AT_FDCWD, path, 0, &ctx, buf, rej);
    tly_free(buf);
    if (rc == TLY_OK)
        digest_hex(&ctx, hex);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Counting and reading the current entry
 * ------------------------------------------------------------------------ */

/*
 * The one place bytes are counted (spec inputs.md "Bundles": sizes are
 * counted as bytes are read, a declared size is never trusted).  An entry's
 * decompressed size is the larger of what its container gave and what gunzip
 * made of it, so a .csv.gz counts alike read or skipped.  Its stored size is
 * what the bundle file gave up meanwhile, so a .csv.gz inside a .tar.gz is
 * measured end to end: a bomb inside a bomb multiplies and is stopped early.
 *
 * But libarchive reads ahead (ARCHIVE_BLOCK at a time, and a decompressor
 * holds more), so part of an entry may have been read before it began: a
 * small .tar.zst is read whole at its first header, and its second entry
 * seemed stored in 0 bytes.  The ratio guard credits each entry with up to
 * READ_AHEAD bytes read before it, which still stops a bomb at once past
 * ratio_after (64 MiB by default: 200 x 256 KiB is 50 MiB).
 */
static int account(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    int64_t big = b->e_out > b->e_csv ? b->e_out : b->e_csv;
    int64_t stored = b->e_stored > 0 ? b->e_stored : 0;

    if (b->kind == SRC_ARCHIVE)
        stored += b->e_raw_start < READ_AHEAD ? b->e_raw_start : READ_AHEAD;
    b->bundle_bytes += big - b->e_counted;
    b->e_counted = big;
    if (big > b->max_entry)
        return fail(b, rej, "too_large", "entry '%s': over %lld bytes decompressed", b->cur.path,
                    (long long)b->max_entry);
    if (b->bundle_bytes > b->max_bundle)
        return fail(b, rej, "too_large", "entry '%s': bundle over %lld bytes decompressed",
                    b->cur.path, (long long)b->max_bundle);
    /* stored * ratio is only formed when it cannot overflow */
    if (big > b->ratio_after && (stored <= INT64_MAX / b->max_ratio && big > stored * b->max_ratio))
        return fail(b, rej, "too_large", "entry '%s': over %lld times its stored size",
                    b->cur.path, (long long)b->max_ratio);
    return 0;
}

static int archive_fail(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    const char *why = archive_error_string(b->a);

    if (archive_errno(b->a) == ENOMEM)
        return fail_nomem(b, rej, 1);
    if (!why)
        why = "corrupt or truncated";
    if (b->in_entry)
        return fail(b, rej, "bad_archive", "entry '%s': %s", b->cur.path, why);
    return fail(b, rej, "bad_archive", "%s", why);
}

/*
 * Reads the current entry's next stored bytes into 'buf': hashed (the
 * manifest's sha256 is of the bytes as stored, inputs.md "manifest.csv") and
 * counted.  0 at the entry's end.
 */
static ssize_t raw_read(struct tly_bundle *b, void *buf, size_t n, struct tly_bundle_reject *rej)
{
    ssize_t r;

    if (b->src_eof)
        return 0;
    if (b->kind == SRC_ARCHIVE) {
        /* negative: FATAL, or WARN for a bad CRC or size, all data loss */
        if ((r = archive_read_data(b->a, buf, n)) < 0)
            return archive_fail(b, rej);
        b->e_stored = archive_filter_bytes(b->a, -1) - b->e_raw_start;
    } else {
        if ((r = read_fd(b->fd, buf, n)) < 0)
            return fail(b, rej, "bad_archive", "entry '%s': %s", b->cur.path, strerror(errno));
        b->e_stored += r;
    }
    if (r == 0) {
        b->src_eof = 1;
        return 0;
    }
    sha256_update(&b->sha, (size_t)r, buf);
    b->e_out += r;
    return account(b, rej) < 0 ? -1 : r;
}

static int zlib_fail(struct tly_bundle *b, int zr, struct tly_bundle_reject *rej)
{
    if (zr == Z_MEM_ERROR)
        return fail_nomem(b, rej, 1);
    return fail(b, rej, "bad_archive", "entry '%s': bad gzip data (%s)", b->cur.path,
                b->z.msg ? b->z.msg : zError(zr));
}

/*
 * Gunzips the current .csv.gz entry into 'out', streaming through b->buf.
 * Concatenated gzip members are read as one stream (as zcat does); anything
 * else after a member is corrupt, and the entry ending inside a member is a
 * truncated member: both bad_archive.
 */
static ssize_t gunzip_read(struct tly_bundle *b, unsigned char *out, size_t n,
                           struct tly_bundle_reject *rej)
{
    ssize_t got;

    b->z.next_out = out;
    b->z.avail_out = (uInt)n;
    while (b->z.avail_out == n) {
        int zr;

        if (b->z.avail_in == 0) {
            ssize_t r = raw_read(b, b->buf, BUF_SIZE, rej);

            if (r < 0)
                return -1;
            if (r == 0 && b->member_done)
                return 0;
            if (r == 0)
                return fail(b, rej, "bad_archive", "entry '%s': truncated gzip member",
                            b->cur.path);
            b->z.next_in = b->buf;
            b->z.avail_in = (uInt)r;
        }
        if (b->member_done && inflateReset(&b->z) != Z_OK)
            return zlib_fail(b, Z_STREAM_ERROR, rej);
        b->member_done = 0;
        zr = inflate(&b->z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END)
            b->member_done = 1;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return zlib_fail(b, zr, rej);
    }
    got = (ssize_t)(n - b->z.avail_out);
    b->e_csv += got;
    return account(b, rej) < 0 ? -1 : got;
}

ssize_t tly_bundle_read(struct tly_bundle *b, void *buf, size_t n, struct tly_bundle_reject *rej)
{
    if (b->status != TLY_OK) {
        *rej = b->rej;
        return -1;
    }
    if (!b->in_entry || n == 0)
        return 0;
    if (n > READ_MAX)
        n = READ_MAX;
    if (b->cur.gzipped)
        return gunzip_read(b, buf, n, rej);
    return raw_read(b, buf, n, rej);
}

void tly_bundle_entry_sha256(struct tly_bundle *b, char hex[65])
{
    struct sha256_ctx copy = b->sha;    /* digesting resets the context */

    digest_hex(&copy, hex);
}

/* ---------------------------------------------------------------------------
 * Moving to the next entry
 * ------------------------------------------------------------------------ */

/*
 * An entry's path as Tally shows and stores it: the path itself, or when
 * it is not UTF-8 text (a Latin-1 tar, a file name in another charset) a
 * copy with those bytes escaped (tly_utf8_shown), so reports and
 * workbooks stay valid UTF-8.  Duplicates are found on the bytes.
 */
static int show_path(struct tly_bundle *b, const char *path, struct tly_bundle_reject *rej)
{
    size_t n = strlen(path), used;

    tly_free(b->shown);
    b->shown = NULL;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = tly_utf8_printable(path + i, n - i))) {
            if (!(b->shown = tly_malloc(4 * n + 1)))
                return fail_nomem(b, rej, 1);
            tly_utf8_shown(path, n, b->shown, 4 * n + 1, &used);
            break;
        }
    b->cur.path = b->shown ? b->shown : path;
    return 0;
}

static int begin_entry(struct tly_bundle *b, const char *path, struct tly_bundle_reject *rej)
{
    int gz;

    if (show_path(b, path, rej) < 0)
        return -1;
    b->cur.type = tly_bundle_file_type(path_base(b->cur.path), &gz);
    b->cur.gzipped = gz;
    b->in_entry = 1;
    b->src_eof = 0;
    b->e_out = b->e_csv = b->e_counted = b->e_stored = 0;
    b->e_raw_start = b->a ? archive_filter_bytes(b->a, -1) : 0;
    sha256_init(&b->sha);
    b->member_done = 0;
    b->z.avail_in = 0;
    if (gz && inflateReset(&b->z) != Z_OK)
        return zlib_fail(b, Z_STREAM_ERROR, rej);
    return 1;
}

/*
 * Leaves the current entry.  An archive's skipped bytes are still read and
 * counted: libarchive would decompress them anyway to reach the next header,
 * so a bomb in a README is stopped like one in runs.csv, and a bad CRC
 * anywhere rejects the bundle.
 */
static int finish_entry(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    ssize_t r = 0;

    if (!b->in_entry)
        return 0;
    if (b->kind == SRC_ARCHIVE) {
        while ((r = raw_read(b, b->buf, BUF_SIZE, rej)) > 0)
            ;
        b->tar_data_end = archive_filter_bytes(b->a, 0);
    } else if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
    b->in_entry = 0;
    return r < 0 ? -1 : 0;
}

static int file_next(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    const char *path;
    struct stat st;

    if (b->next_file == b->files.n)
        return 0;
    path = b->files.v[b->next_file++];
    if (b->kind == SRC_SINGLE)      /* the path the user named: links followed */
        b->fd = open(b->single_path, O_RDONLY | O_CLOEXEC);
    else
        b->fd = openat(b->root_fd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (b->fd < 0)
        return fail(b, rej, errno == ELOOP ? "link_or_device" : "bad_archive", "entry '%s': %s",
                    path, strerror(errno));
    if (fstat(b->fd, &st) < 0)
        return fail(b, rej, "bad_archive", "entry '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))   /* replaced since the walk */
        return fail(b, rej, "link_or_device", "entry '%s': %s", path, special_kind(st.st_mode));
    return begin_entry(b, path, rej);
}

int tly_bundle_normalize_path(const char *name, char *out)
{
    char *o = out;

    if (name[0] == '/')
        return -1;
    while (*name) {
        size_t k = strcspn(name, "/");

        if (k == 2 && name[0] == '.' && name[1] == '.')
            return -1;
        if (k && !(k == 1 && name[0] == '.')) {
            if (o != out)
                *o++ = '/';
            memcpy(o, name, k);
            o += k;
        }
        name += k + (name[k] == '/');
    }
    *o = '\0';
    return 0;
}

static int is_link_or_device(struct archive_entry *ae)
{
    /* a hardlink is typed regular; check every form of its target's name */
    if (archive_entry_hardlink(ae) || archive_entry_hardlink_utf8(ae) ||
        archive_entry_hardlink_w(ae))
        return 1;
    return archive_entry_filetype(ae) != AE_IFREG;
}

/*
 * inputs.md "Bundles": gzip, zstd or no compression, "other formats are
 * refused, not attempted".  A zip compresses each entry by a method of its
 * own; deflate (gzip's), zstd and none are those, while bzip2, lzma, xz,
 * ppmd and the rest are refused.  libarchive names the method only in the
 * format name of the entry just read ("ZIP 2.0 (deflation)"); a name it
 * does not give is refused too.
 */
static int zip_method_supported(struct archive *a)
{
    const char *name, *method;

    if ((archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) != ARCHIVE_FORMAT_ZIP)
        return 1;
    name = archive_format_name(a);
    method = name ? strrchr(name, '(') : NULL;
    return method && (!strcmp(method, "(uncompressed)") || !strcmp(method, "(deflation)") ||
                      !strcmp(method, "(zstd)"));
}

/*
 * Takes an archive entry named 'raw' as the current one, or says why not.
 * spec inputs.md "Bundles": entry names are checked by the program itself,
 * libarchive's extraction guards do not apply to reading in memory.
 */
static int take_entry(struct tly_bundle *b, struct archive_entry *ae, const char *raw,
                      struct tly_bundle_reject *rej)
{
    char *path = tly_malloc(strlen(raw) + 1);

    if (!path)
        return fail_nomem(b, rej, 1);
    if (tly_bundle_normalize_path(raw, path) < 0) {
        tly_free(path);
        return fail(b, rej, "unsafe_path", "entry '%s'", raw);
    }
    if (!*path) {
        tly_free(path);
        if (archive_entry_filetype(ae) == AE_IFDIR)     /* "./": GNU tar's top */
            return 0;
        return fail(b, rej, "unsafe_path", "entry '%s'", raw);
    }
    if (archive_entry_filetype(ae) != AE_IFDIR && is_link_or_device(ae)) {
        tly_free(path);
        return fail(b, rej, "link_or_device", "entry '%s'", raw);
    }
    /* a directory's path too: "sub/" and a file "sub" are the same path twice */
    if (tly_strmap_get(&b->seen, path) >= 0) {
        tly_free(path);
        return fail(b, rej, "duplicate_path", "entry '%s'", raw);
    }
    if (list_push(&b->paths, path) < 0) {
        tly_free(path);
        return fail_nomem(b, rej, 1);
    }
    if (tly_strmap_put(&b->seen, path, (int)b->paths.n - 1) != TLY_OK)
        return fail_nomem(b, rej, 0);
    if (archive_entry_filetype(ae) == AE_IFDIR)
        return 0;
    if (archive_entry_is_encrypted(ae))
        return fail(b, rej, "unsupported_format", "entry '%s': encrypted", raw);
    if (!zip_method_supported(b->a))
        return fail(b, rej, "unsupported_format", "entry '%s': %s: a zip entry must be stored,"
                    " deflated or zstd", raw, archive_format_name(b->a));
    return begin_entry(b, path, rej);
}

/*
 * libarchive ends a tar quietly at a block boundary ("some writers omit the
 * block of nulls"), so a tar cut between two entries would read as a
 * smaller complete bundle; so would a tar cut short and then compressed
 * whole (gzip and zstd check only their own stream).  Writers (GNU tar,
 * bsdtar, libarchive) end a tar with zero blocks, which libarchive's tar
 * reader consumes as it meets the end, so a tar whose reader stopped less
 * than one block past the end of its last entry's data (padded to its
 * block) had no end-of-archive block: it is taken as truncated (inputs.md
 * "Bundles": a truncated bundle is rejected whole).  Positions are in the
 * tar stream, after decompression (archive_filter_bytes of filter 0).
 */
static int tar_cut_short(struct tly_bundle *b)
{
    int64_t padded = (b->tar_data_end + 511) / 512 * 512;

    return (archive_format(b->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_TAR &&
           archive_filter_bytes(b->a, 0) < padded + 512;
}

/*
 * After a tar's end-of-archive blocks only zeros may follow (the rest of
 * its last record).  libarchive's tar reader stops at the first zero
 * block, so `cat a.tar b.tar` read as a alone and b's files were dropped
 * without a word (GNU tar does the same without -i), and a lone zero block
 * between two entries ended the archive there.  So the tail is read to its
 * end, at most TAR_TAIL_MAX bytes, and anything but zeros rejects the
 * bundle whole (inputs.md "Bundles": corrupt; nothing is dropped
 * silently).  A .tar.gz's tail is checked as gzip_verify reads the stream
 * again, a .tar.zst's by reading its stream again (tar_tail), a bare tar's
 * straight from the file.  Positions are in the tar stream.
 *
 * tail_zeros checks the n bytes at stream position 'at' that lie past
 * 'tar_end'.
 */
static int tail_zeros(struct tly_bundle *b, const unsigned char *p, size_t n, int64_t at, int64_t tar_end,
                      struct tly_bundle_reject *rej)
{
    for (size_t i = at >= tar_end ? 0 : (size_t)(tar_end - at); i < n; i++)
        if (p[i])
            return fail(b, rej, "bad_archive", "data after the tar's end-of-archive blocks, at byte %lld"
                        " of the tar (tars joined end to end?)", (long long)(at + (int64_t)i));
    if (at + (int64_t)n > tar_end + TAR_TAIL_MAX)
        return fail(b, rej, "too_large", "over %d bytes after the tar's end", TAR_TAIL_MAX);
    return 0;
}

/* The second reader's input: the bundle's bytes by pread, libarchive's own offset untouched. */
struct reread {
    int fd;
    int64_t at;
    unsigned char *buf;
    size_t size;
};

static la_ssize_t reread_block(struct archive *a, void *arg, const void **out)
{
    struct reread *r = arg;
    ssize_t n = pread(r->fd, r->buf, r->size, r->at);

    if (n < 0) {
        archive_set_error(a, errno, "%s", strerror(errno));
        return -1;
    }
    r->at += n;
    *out = r->buf;
    return n;
}

static int reread_fail(struct tly_bundle *b, struct archive *ra, struct tly_bundle_reject *rej)
{
    const char *why = archive_error_string(ra);

    if (archive_errno(ra) == ENOMEM)
        return fail_nomem(b, rej, 1);
    return fail(b, rej, "bad_archive", "zstd stream: %s", why ? why : "corrupt");
}

static int zstd_tail(struct tly_bundle *b, int64_t tar_end, struct tly_bundle_reject *rej)
{
    const size_t half = BUF_SIZE / 2;
    struct reread in = { b->fd, 0, b->buf, half };
    unsigned char *out = b->buf + half;
    struct archive *ra = archive_read_new();
    struct archive_entry *ae;
    int64_t made = 0;
    int err = 0;

    if (!ra)
        return fail_nomem(b, rej, 1);
    if (archive_read_support_filter_zstd(ra) != ARCHIVE_OK || archive_read_support_format_raw(ra) != ARCHIVE_OK ||
        archive_read_open(ra, &in, NULL, reread_block, NULL) != ARCHIVE_OK ||
        archive_read_next_header(ra, &ae) != ARCHIVE_OK)
        err = reread_fail(b, ra, rej);
    while (!err) {
        la_ssize_t n = archive_read_data(ra, out, half);

        if (n < 0)
            err = reread_fail(b, ra, rej);
        else if (n == 0)
            break;
        else if (!(err = tail_zeros(b, out, (size_t)n, made, tar_end, rej)))
            made += n;
    }
    archive_read_free(ra);
    return err;
}

static int bare_tail(struct tly_bundle *b, int64_t tar_end, struct tly_bundle_reject *rej)
{
    for (int64_t at = tar_end;;) {
        ssize_t n = pread(b->fd, b->buf, BUF_SIZE, at);

        if (n < 0)
            return fail(b, rej, "bad_archive", "cannot read the tar's end: %s", strerror(errno));
        if (n == 0)
            return 0;
        if (tail_zeros(b, b->buf, (size_t)n, at, tar_end, rej) < 0)
            return -1;
        at += n;
    }
}

static int tar_tail(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    int64_t tar_end = archive_filter_bytes(b->a, 0);

    if ((archive_format(b->a) & ARCHIVE_FORMAT_BASE_MASK) != ARCHIVE_FORMAT_TAR)
        return 0;
    switch (archive_filter_code(b->a, 0)) {
    case ARCHIVE_FILTER_GZIP:
        return 0;               /* gzip_verify */
    case ARCHIVE_FILTER_ZSTD:
        return zstd_tail(b, tar_end, rej);
    default:
        return bare_tail(b, tar_end, rej);
    }
}

/*
 * libarchive's gzip filter never checks a member's CRC-32 and length ("XXX
 * TODO: Verify the length and CRC"), and the tar reader stops at the
 * end-of-archive blocks, before the last trailer: a .tar.gz whose bytes
 * were damaged (a stored block edited, a flipped bit in deflate data that
 * still decodes) would load.  So once the archive has been read to its end
 * without fault, its gzip stream is read again by zlib, which checks every
 * member's trailer, and the bundle is rejected whole (inputs.md "Bundles":
 * corrupt) unless every member is sound and nothing but zero padding
 * follows the last one.  The first read decompressed the tar up to its
 * end-of-archive blocks under the size bounds; what follows them, never
 * counted, may only be zeros, a tar record's padding, and at most
 * TAR_TAIL_MAX bytes of them (tail_zeros), so a bomb hidden there is
 * stopped early.  Costs a second gunzip of .tar.gz bundles only.
 */
static int archive_gzipped(struct archive *a)
{
    for (int i = 0; i < archive_filter_count(a); i++)
        if (archive_filter_code(a, i) == ARCHIVE_FILTER_GZIP)
            return 1;
    return 0;
}

static int gzip_verify(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    const size_t half = BUF_SIZE / 2;
    unsigned char *in = b->buf, *out = b->buf + half;
    int64_t stored = 0, made = 0, tar_end = archive_filter_bytes(b->a, 0);
    int member_done = 0;

    if (inflateReset(&b->z) != Z_OK)
        return fail(b, rej, "bad_archive", "gzip stream: %s", zError(Z_STREAM_ERROR));
    b->z.avail_in = 0;
    for (;;) {
        int zr;

        if (b->z.avail_in == 0) {
            ssize_t r = pread(b->fd, in, half, stored);

            if (r < 0)
                return fail(b, rej, "bad_archive", "gzip stream: %s", strerror(errno));
            if (r == 0)
                break;
            stored += r;
            b->z.next_in = in;
            b->z.avail_in = (uInt)r;
        }
        if (member_done) {
            /* zeros after a member are a tape's or dd's padding, as gzip(1) allows */
            while (b->z.avail_in && *b->z.next_in == 0) {
                b->z.next_in++;
                b->z.avail_in--;
            }
            if (!b->z.avail_in)
                continue;
            if (inflateReset(&b->z) != Z_OK)
                return fail(b, rej, "bad_archive", "gzip stream: %s", zError(Z_STREAM_ERROR));
        }
        member_done = 0;
        b->z.next_out = out;
        b->z.avail_out = (uInt)half;
        zr = inflate(&b->z, Z_NO_FLUSH);
        if (tail_zeros(b, out, half - b->z.avail_out, made, tar_end, rej) < 0)
            return -1;
        made += (int64_t)(half - b->z.avail_out);
        if (zr == Z_STREAM_END)
            member_done = 1;
        else if (zr == Z_MEM_ERROR)
            return fail_nomem(b, rej, 1);
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return fail(b, rej, "bad_archive", "gzip stream: %s",
                        b->z.msg ? b->z.msg : zError(zr));
    }
    if (!member_done)
        return fail(b, rej, "bad_archive", "gzip stream: truncated member");
    return 0;
}

/*
 * A zip whose local headers name other files than its central directory is
 * corrupt (zipcheck.h).  The directory is read once libarchive has taken
 * the file for a zip, whatever its first bytes (data may come before a
 * zip), at its first header, before any entry is read; then every entry
 * libarchive yields must be the directory's next, and at its end the
 * directory must be used up.  0, or -1 with the bundle rejected.
 */
static int zip_name_checked(struct tly_bundle *b, const char *name, struct tly_bundle_reject *rej)
{
    char why[200];
    int r;

    if (!b->zip_checked) {
        b->zip_checked = 1;
        if ((archive_format(b->a) & ARCHIVE_FORMAT_BASE_MASK) != ARCHIVE_FORMAT_ZIP)
            return 0;
        r = tly_zip_names_read(b->fd, b->max_entries, &b->zip, why, sizeof why);
        if (r < 0 && errno == ENOMEM)
            return fail_nomem(b, rej, 1);
        if (r < 0)
            return fail(b, rej, "bad_archive", "cannot read the zip's directory: %s", strerror(errno));
        if (r == 0)
            return fail(b, rej, "bad_archive", "corrupt zip: %s", why);
        b->is_zip = 1;
    }
    if (!b->is_zip)
        return 0;
    r = name ? tly_zip_names_next(&b->zip, name, why, sizeof why)
             : tly_zip_names_done(&b->zip, why, sizeof why);
    return r ? 0 : fail(b, rej, "bad_archive", "corrupt zip: %s", why);
}

/*
 * A header WARN (a name not convertible to the C locale, an unknown pax
 * keyword, odd metadata) still delivers a whole entry, and its bytes are
 * checked as they are read (read_data returns WARN on a bad CRC or size), so
 * only FAILED, RETRY ("damaged tar archive") and FATAL reject here.
 */
static int archive_next_header(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    for (;;) {
        struct archive_entry *ae;
        const char *raw;
        int r = archive_read_next_header(b->a, &ae);

        if (r == ARCHIVE_EOF && tar_cut_short(b))
            return fail(b, rej, "bad_archive", "truncated tar (no end-of-archive blocks)");
        if (r == ARCHIVE_EOF && archive_gzipped(b->a) && gzip_verify(b, rej) < 0)
            return -1;
        if (r == ARCHIVE_EOF && tar_tail(b, rej) < 0)
            return -1;
        if (r == ARCHIVE_EOF && zip_name_checked(b, NULL, rej) < 0)
            return -1;
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return archive_fail(b, rej);
        b->tar_data_end = archive_filter_bytes(b->a, 0);
        raw = archive_entry_pathname_utf8(ae);
        if (!raw)
            raw = archive_entry_pathname(ae);
        if (!raw)
            return fail(b, rej, "bad_archive", "entry without a name");
        if (++b->entries > b->max_entries)
            return fail(b, rej, "too_large", "entry '%s': more than %lld entries", raw,
                        (long long)b->max_entries);
        if (zip_name_checked(b, raw, rej) < 0)
            return -1;
        if ((r = take_entry(b, ae, raw, rej)) != 0)
            return r;
    }
}

/*
 * Entry names are converted by libarchive from the archive's charset
 * (UTF-8 for a zip entry flagged so, or a pax name) to the locale's, and
 * the C locale has no form for "é": the name came back NULL and a valid
 * zip was rejected.  The headers are read in a UTF-8 locale for this
 * thread only (uselocale), so names reach Tally as UTF-8; a name that is
 * not UTF-8 is shown escaped (begin_entry).  Without a UTF-8 locale on
 * the system, names are read as before.
 */
static int archive_next(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    locale_t was = b->utf8 ? uselocale(b->utf8) : (locale_t)0;
    int rc = archive_next_header(b, rej);

    if (b->utf8)
        uselocale(was);
    return rc;
}

int tly_bundle_next(struct tly_bundle *b, struct tly_bundle_entry *e,
                    struct tly_bundle_reject *rej)
{
    int rc;

    if (b->status != TLY_OK) {
        *rej = b->rej;
        return -1;
    }
    if (b->done)
        return 0;
    if (finish_entry(b, rej) < 0)
        return -1;
    rc = b->kind == SRC_ARCHIVE ? archive_next(b, rej) : file_next(b, rej);
    if (rc == 1)
        *e = b->cur;
    b->done = rc == 0;
    return rc;
}

int tly_bundle_failure(const struct tly_bundle *b)
{
    return b->status;
}

/* ---------------------------------------------------------------------------
 * Opening and closing
 * ------------------------------------------------------------------------ */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return tly_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    tly_free(p);
}

static struct tly_bundle *bundle_new(const struct tly_settings *s)
{
    struct tly_bundle *b = tly_calloc(1, sizeof *b);

    if (!b)
        return NULL;
    b->fd = b->root_fd = -1;
    b->max_entry = s->max_entry_bytes;
    b->max_bundle = s->max_bundle_bytes;
    b->max_entries = s->max_entries;
    b->max_ratio = s->max_ratio > 0 ? s->max_ratio : 1;
    b->ratio_after = s->ratio_after_bytes;
    tly_strmap_init(&b->seen);
    b->z.zalloc = z_alloc;
    b->z.zfree = z_free;
    /* 15 + 16: a gzip wrapper only, never raw deflate or zlib */
    b->z_ready = inflateInit2(&b->z, 15 + 16) == Z_OK;
    b->buf = tly_malloc(BUF_SIZE);
    if (!b->z_ready || !b->buf) {
        tly_bundle_close(b);
        return NULL;
    }
    return b;
}

static int open_dir(struct tly_bundle *b, const char *path, struct tly_bundle_reject *rej)
{
    b->kind = SRC_DIR;
    b->root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->root_fd < 0)
        return unreadable(rej, errno, "bad_archive", "cannot read the bundle");
    return list_dir(b->root_fd, b->max_entries, &b->files, &b->entries, rej);
}

/* spec inputs.md "Bundles": a single NAME.csv[.gz] is one entry, its base name. */
static int open_single(struct tly_bundle *b, const char *path)
{
    char *base = tly_strdup(path_base(path));

    b->kind = SRC_SINGLE;
    b->entries = 1;
    if (!base || list_push(&b->files, base) < 0) {
        tly_free(base);
        return nomem();
    }
    if (!(b->single_path = tly_strdup(path)))
        return nomem();
    return TLY_OK;
}

/*
 * Whether the file starts like a container we read (gzip, zstd, zip, ustar):
 * libarchive says "unrecognized" both for a format it was not asked to read
 * and for a supported one cut short before its first header.
 */
static int supported_magic(int fd)
{
    unsigned char m[263];
    ssize_t n = pread(fd, m, sizeof m, 0);

    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        return 1;
    if (n >= 4 && !memcmp(m, "\x28\xb5\x2f\xfd", 4))
        return 1;
    if (n >= 4 && !memcmp(m, "PK\x03\x04", 4))
        return 1;
    return n == (ssize_t)sizeof m && !memcmp(m + 257, "ustar", 5);
}

/*
 * An empty zip is nothing but its end record ("PK\5\6", 0 entries), which
 * libarchive's seekable reader does not open: a zip that holds no file.
 */
static int empty_zip(int fd)
{
    unsigned char m[22];

    return pread(fd, m, sizeof m, 0) == (ssize_t)sizeof m && !memcmp(m, "PK\x05\x06", 4) &&
           m[10] == 0 && m[11] == 0;
}

static int open_failure(struct tly_bundle *b, struct tly_bundle_reject *rej)
{
    const char *why = archive_error_string(b->a);

    if (archive_errno(b->a) == ENOMEM)
        return nomem();
    if (empty_zip(b->fd))
        return reject(rej, "no_known_file", "an empty zip archive");
    if (!why)
        why = "corrupt or truncated";
    if (archive_format(b->a) != 0)
        return reject(rej, "bad_archive", "%s", why);
    /* a known compression around an unknown format (cpio.gz), or no known start */
    if (archive_filter_count(b->a) > 1 || !supported_magic(b->fd))
        return reject(rej, "unsupported_format",
                      "not a tar or zip archive with gzip, zstd or no compression");
    return reject(rej, "bad_archive", "cut short or corrupt before its first entry (%s)", why);
}

/*
 * spec inputs.md "Bundles": only the tar and zip formats and the gzip and
 * zstd filters are enabled, never "all formats", and only their built-in
 * decoders (ARCHIVE_WARN would mean an external program).  Zip is read from
 * its central directory only (the seekable reader): the streaming reader
 * takes a zip cut inside its central directory as complete.
 */
static int open_archive(struct tly_bundle *b, const char *path, struct tly_bundle_reject *rej)
{
    b->kind = SRC_ARCHIVE;
    b->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (b->fd < 0)
        return unreadable(rej, errno, "bad_archive", "cannot read the bundle");
    if (!(b->a = archive_read_new()))
        return nomem();
    b->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (archive_read_support_format_tar(b->a) != ARCHIVE_OK ||
        archive_read_support_format_zip_seekable(b->a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(b->a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(b->a) != ARCHIVE_OK)
        return tly_error(TLY_ERR_IO, "libarchive lacks built-in tar, zip, gzip or zstd support: %s",
                         archive_error_string(b->a));
    if (archive_read_open_fd(b->a, b->fd, ARCHIVE_BLOCK) != ARCHIVE_OK)
        return open_failure(b, rej);
    return TLY_OK;
}

/* spec inputs.md "Bundles": the form is chosen by the name (a directory by being one). */
int tly_bundle_open(const char *path, const struct tly_settings *s, struct tly_bundle **out,
                    struct tly_bundle_reject *rej)
{
    struct tly_bundle *b;
    struct stat st;
    int rc;

    *out = NULL;
    memset(rej, 0, sizeof *rej);
    rej->bundle = path;
    if (stat(path, &st) < 0)
        return unreadable(rej, errno, "bad_archive", "cannot read the bundle");
    if (!(b = bundle_new(s)))
        return nomem();
    if (S_ISDIR(st.st_mode))
        rc = open_dir(b, path, rej);
    else if (!S_ISREG(st.st_mode))
        rc = reject(rej, "link_or_device", "the bundle is not a regular file or directory");
    else if (!(rc = refuse_name(path, rej)))
        rc = is_archive_name(path) ? open_archive(b, path, rej) : open_single(b, path);
    if (rc != TLY_OK) {
        tly_bundle_close(b);
        return rc;
    }
    *out = b;
    return TLY_OK;
}

void tly_bundle_close(struct tly_bundle *b)
{
    if (!b)
        return;
    if (b->a)
        archive_read_free(b->a);    /* reading only: nothing to flush, nothing to report */
    if (b->utf8)
        freelocale(b->utf8);
    if (b->fd >= 0)
        close(b->fd);
    if (b->root_fd >= 0)
        close(b->root_fd);
    if (b->z_ready)
        inflateEnd(&b->z);
    list_release(&b->files);
    list_release(&b->paths);
    tly_zip_names_release(&b->zip);
    tly_strmap_release(&b->seen);
    tly_free(b->single_path);
    tly_free(b->shown);
    tly_free(b->buf);
    tly_free(b);
}
