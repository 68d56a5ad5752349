/*
 * zipcheck.c — a zip's central directory and local headers name the same
 * files (see zipcheck.h).  Layouts: APPNOTE.TXT 4.3.6 (local header),
 * 4.3.12 (central directory header), 4.3.14-16 (zip64 end records),
 * 4.5.3 (zip64 extra field).
 */
#include "zipcheck.h"
#include "alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EOCD_SIZE      22
#define EOCD_SEARCH    (EOCD_SIZE + 65535)     /* the record and its longest comment */
#define CDH_SIZE       46
#define LFH_SIZE       30
#define NAME_MAX_BYTES 65535
#define NAMES_MAX_BYTES (4 << 20)       /* all the names of one directory */

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* 1 when all n bytes were read, 0 at end of file (or past any file), -1 on error. */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;

    if (off > (uint64_t)INT64_MAX - n)
        return 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        got += (size_t)r;
    }
    return 1;
}

/*
 * Where the central directory is, as libarchive's seekable reader finds it:
 * it ends where the end record (or the zip64 one) begins, so bytes put in
 * front of the zip shift every offset the zip states by 'shift'.
 */
struct cdir {
    uint64_t start, size, shift;
};

/* The zip64 end record, when a locator precedes the classic one: 1, 0 none, -1 error. */
static int zip64_end(int fd, uint64_t eocd_at, uint64_t *rec_at, uint64_t *size, uint64_t *offset)
{
    unsigned char loc[20], rec[56];
    int r;

    if (eocd_at < sizeof loc)
        return 0;
    if ((r = read_at(fd, loc, sizeof loc, eocd_at - sizeof loc)) <= 0)
        return r;
    if (memcmp(loc, "PK\6\7", 4))
        return 0;
    /* where the locator says, else (bytes in front) just before the locator */
    *rec_at = le(loc + 8, 8);
    if ((r = read_at(fd, rec, sizeof rec, *rec_at)) < 0)
        return r;
    if (r == 0 || memcmp(rec, "PK\6\6", 4)) {
        if (eocd_at - sizeof loc < sizeof rec)
            return 0;
        *rec_at = eocd_at - sizeof loc - sizeof rec;
        if ((r = read_at(fd, rec, sizeof rec, *rec_at)) <= 0)
            return r;
        if (memcmp(rec, "PK\6\6", 4))
            return 0;
    }
    *size = le(rec + 40, 8);
    *offset = le(rec + 48, 8);
    return 1;
}

/* One end record candidate at 'at': 1 it locates a directory, 0 it does not, -1 error. */
static int cdir_at(int fd, const unsigned char *e, uint64_t at, struct cdir *cd)
{
    uint64_t end = at, size = le(e + 12, 4), offset = le(e + 16, 4);
    int r = zip64_end(fd, at, &end, &size, &offset);

    if (r < 0)
        return -1;
    if (size > end || offset > end - size)
        return 0;
    cd->start = end - size;
    cd->size = size;
    cd->shift = cd->start - offset;
    return 1;
}

/* Finds the central directory: 1 found, 0 not a zip's end, -1 read error. */
static int find_cdir(int fd, struct cdir *cd)
{
    unsigned char tail[EOCD_SEARCH];
    struct stat st;
    off_t size;
    uint64_t base;
    size_t n;
    int r;

    /* fstat, not lseek: libarchive reads 'fd' on from its own offset */
    if (fstat(fd, &st) < 0)
        return -1;
    size = st.st_size;
    n = (uint64_t)size < sizeof tail ? (size_t)size : sizeof tail;
    if (n < EOCD_SIZE)
        return 0;
    base = (uint64_t)size - n;
    if ((r = read_at(fd, tail, n, base)) <= 0)
        return r;
    /*
     * As libarchive does: the last record that can end a directory, whatever
     * follows it (padding, a comment longer or shorter than it says).
     */
    for (size_t i = n - EOCD_SIZE + 1; i-- > 0;) {
        const unsigned char *e = tail + i;
        if (memcmp(e, "PK\5\6", 4))
            continue;
        if ((r = cdir_at(fd, e, base + i, cd)) != 0)
            return r;
    }
    return 0;
}

/* An entry's local header offset, from the zip64 extra field when needed. */
static uint64_t local_offset(const unsigned char *h, const unsigned char *extra, size_t len)
{
    uint64_t off = le(h + 42, 4);
    size_t skip = 0;

    if (off != 0xFFFFFFFF)
        return off;
    /* zip64 fields come in order, each only when its classic one overflowed */
    skip += le(h + 24, 4) == 0xFFFFFFFF ? 8 : 0;
    skip += le(h + 20, 4) == 0xFFFFFFFF ? 8 : 0;
    for (size_t i = 0; i + 4 <= len;) {
        size_t id = (size_t)le(extra + i, 2), sz = (size_t)le(extra + i + 2, 2);
        if (i + 4 + sz > len)
            break;
        if (id == 0x0001 && skip + 8 <= sz)
            return le(extra + i + 4 + skip, 8);
        i += 4 + sz;
    }
    return UINT64_MAX;
}

/* why: the entry by its place and its central directory name (printable bytes, cut at 64). */
static int disagree(char *why, size_t n, uint64_t k, const unsigned char *name, size_t len,
                    const char *what)
{
    char shown[65];
    size_t i;

    for (i = 0; i < len && i < sizeof shown - 1; i++)
        shown[i] = name[i] >= 0x20 && name[i] < 0x7F ? (char)name[i] : '?';
    shown[i] = '\0';
    snprintf(why, n, "central directory entry %llu ('%s'): %s", (unsigned long long)k + 1, shown,
             what);
    return 0;
}

struct named {
    uint64_t offset;
    char *name;
    size_t len;
};

static int by_offset(const void *x, const void *y)
{
    const struct named *a = x, *b = y;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Adds one checked entry; -1 out of memory (errno set). */
static int push(struct tly_zip_names *z, size_t *cap, uint64_t offset, const unsigned char *name,
                size_t len)
{
    struct named *e;

    if (z->n == *cap) {
        size_t want = *cap ? 2 * *cap : 64;
        struct named *grown = tly_realloc(z->entries, want * sizeof *grown);
        if (!grown) {
            errno = ENOMEM;
            return -1;
        }
        z->entries = grown;
        *cap = want;
    }
    e = &z->entries[z->n];
    if (!(e->name = tly_malloc(len + 1))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = len;
    e->offset = offset;
    z->n++;
    return 0;
}

static int read_entries(int fd, const struct cdir *cd, int64_t max_entries, unsigned char *buf,
                        struct tly_zip_names *z, char *why, size_t n)
{
    unsigned char *cname = buf, *lname = buf + NAME_MAX_BYTES, *extra = buf + 2 * NAME_MAX_BYTES;
    unsigned char h[CDH_SIZE], l[LFH_SIZE];
    uint64_t at = cd->start, end = cd->start + cd->size, k;
    size_t cap = 0, name_bytes = 0;
    int r;

    /* by the directory's bytes, not by the count the end record states */
    for (k = 0; at < end; k++) {
        size_t name_len, extra_len;
        uint64_t off;

        /* past the bound the caller rejects the zip (too_large) as libarchive yields them */
        if ((int64_t)k >= max_entries)
            break;
        if ((r = read_at(fd, h, sizeof h, at)) <= 0 || memcmp(h, "PK\1\2", 4))
            return r < 0 ? -1 : disagree(why, n, k, NULL, 0, "damaged header");
        name_len = (size_t)le(h + 28, 2);
        extra_len = (size_t)le(h + 30, 2);
        if ((name_bytes += name_len) > NAMES_MAX_BYTES)
            return disagree(why, n, k, NULL, 0, "the directory's names pass 4 MiB");
        if ((r = read_at(fd, cname, name_len, at + CDH_SIZE)) <= 0 ||
            (r = read_at(fd, extra, extra_len, at + CDH_SIZE + name_len)) <= 0)
            return r < 0 ? -1 : disagree(why, n, k, NULL, 0, "cut short");
        off = local_offset(h, extra, extra_len);
        if (off > UINT64_MAX - cd->shift ||
            (r = read_at(fd, l, sizeof l, off + cd->shift)) <= 0 || memcmp(l, "PK\3\4", 4))
            return r < 0 ? -1 : disagree(why, n, k, cname, name_len, "no local header where it points");
        if ((size_t)le(l + 26, 2) != name_len ||
            (r = read_at(fd, lname, name_len, off + cd->shift + LFH_SIZE)) <= 0 ||
            memcmp(cname, lname, name_len))
            return r < 0 ? -1 : disagree(why, n, k, cname, name_len, "its local header names another file");
        if (push(z, &cap, off, cname, name_len) < 0)
            return -1;
        at += CDH_SIZE + name_len + extra_len + le(h + 32, 2);
    }
    /* in local header order, as libarchive's reader yields them; one file per
     * header.  An empty directory has no array, and qsort may not take NULL. */
    if (z->n > 1)
        qsort(z->entries, z->n, sizeof *z->entries, by_offset);
    for (size_t i = 1; i < z->n; i++)
        if (z->entries[i].offset == z->entries[i - 1].offset)
            return snprintf(why, n, "entries '%.64s' and '%.64s' share one local header",
                            z->entries[i - 1].name, z->entries[i].name), 0;
    return 1;
}

/*
 * Bytes in front of a zip are allowed (a self-extractor's stub), but not
 * another zip's entries: `cat a.zip b.zip` is read as b alone, from the
 * last directory, and every file of a would be dropped without a word.
 * So the bytes before the first entry may not hold a local header's
 * signature.  1 when they do not, 0 when they do (why says so), -1 error.
 */
static int front_has_no_zip(int fd, uint64_t front, unsigned char *buf, size_t size, char *why, size_t n)
{
    uint64_t at = 0;

    while (at < front) {
        size_t want = front - at < size ? (size_t)(front - at) : size;
        int r = read_at(fd, buf, want, at);

        if (r == 0)     /* not met: the entries were found past these bytes */
            return snprintf(why, n, "cut short in front of its first entry"), 0;
        if (r < 0)
            return -1;
        for (size_t i = 0; i + 4 <= want; i++)
            if (!memcmp(buf + i, "PK\3\4", 4))
                return snprintf(why, n, "the %llu bytes in front of it hold another zip's entry"
                                " at byte %llu (zips joined end to end?)", (unsigned long long)front,
                                (unsigned long long)(at + i)), 0;
        if (at + want >= front)
            break;
        at += want - 3;         /* a signature across the cut is seen in the next read */
    }
    return 1;
}

int tly_zip_names_read(int fd, int64_t max_entries, struct tly_zip_names *z, char *why, size_t n)
{
    unsigned char *buf;
    struct cdir cd;
    int r;

    memset(z, 0, sizeof *z);
    if ((r = find_cdir(fd, &cd)) <= 0) {
        if (r == 0)
            snprintf(why, n, "no central directory");
        return r;
    }
    if (!(buf = tly_malloc(3 * NAME_MAX_BYTES))) {
        errno = ENOMEM;
        return -1;
    }
    r = read_entries(fd, &cd, max_entries, buf, z, why, n);
    if (r == 1 && z->n)
        r = front_has_no_zip(fd, z->entries[0].offset + cd.shift, buf, 3 * NAME_MAX_BYTES, why, n);
    tly_free(buf);
    if (r != 1)
        tly_zip_names_release(z);
    return r;
}

static int has_non_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

int tly_zip_names_next(struct tly_zip_names *z, const char *name, char *why, size_t n)
{
    const struct named *e;
    size_t len = strlen(name);

    if (z->next == z->n)
        return snprintf(why, n, "entry '%.64s' is not in the central directory", name), 0;
    e = &z->entries[z->next++];
    if (len == e->len && !memcmp(name, e->name, len))
        return 1;
    /* a name libarchive converted from the zip's own charset compares only as such */
    if (has_non_ascii(name, len) && has_non_ascii(e->name, e->len))
        return 1;
    return snprintf(why, n, "entry '%.64s' is read where the central directory has '%.64s'", name,
                    e->name), 0;
}

int tly_zip_names_done(const struct tly_zip_names *z, char *why, size_t n)
{
    if (z->next == z->n)
        return 1;
    return snprintf(why, n, "the central directory's '%.64s' was never read",
                    z->entries[z->next].name), 0;
}

void tly_zip_names_release(struct tly_zip_names *z)
{
    for (size_t i = 0; i < z->n; i++)
        tly_free(z->entries[i].name);
    tly_free(z->entries);
    memset(z, 0, sizeof *z);
}
